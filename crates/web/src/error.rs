//! The one error type of the web layer: a status and a stable code for clients; internals are
//! logged, never shown. The API answers it as JSON, the pages as an HTML page.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cutover_app::AppError;
use cutover_core::DomainError;
use serde_json::json;

/// An error as clients see it.
#[derive(Debug)]
pub struct WebError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl WebError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub(crate) fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", "log in first")
    }

    pub(crate) fn csrf() -> Self {
        Self::new(StatusCode::FORBIDDEN, "csrf", "the form is stale or did not come from this portal; reload the page")
    }

    pub(crate) fn internal(what: &str) -> Self {
        tracing::error!(what, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; it has been logged")
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }
}

impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        let status = match &e {
            AppError::Domain(DomainError::NotFound(_)) => StatusCode::NOT_FOUND,
            AppError::Domain(DomainError::Forbidden(_)) => StatusCode::FORBIDDEN,
            AppError::Domain(DomainError::GateClosed { .. } | DomainError::WrongPhase { .. })
            | AppError::StalePreview { .. }
            | AppError::Locked { .. } => StatusCode::CONFLICT,
            AppError::Domain(DomainError::Invalid { .. }) | AppError::Password(_) | AppError::Config(_) => {
                StatusCode::BAD_REQUEST
            }
            AppError::NoActor | AppError::UnknownUser(_) => StatusCode::UNAUTHORIZED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "request failed");
            "internal error; it has been logged".to_owned()
        } else {
            e.to_string()
        };
        WebError { status, code: e.code(), message }
    }
}

impl From<DomainError> for WebError {
    fn from(e: DomainError) -> Self {
        AppError::from(e).into()
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": {"code": self.code, "message": self.message}}))).into_response()
    }
}

/// A [`WebError`] on a page: rendered as HTML, or a redirect to the login page when there is no session.
#[derive(Debug)]
pub struct PageError(pub WebError);

impl<E: Into<WebError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        if e.status == StatusCode::UNAUTHORIZED {
            return Redirect::to("/login").into_response();
        }
        let ctx = json!({"status": e.status.as_u16(), "code": e.code, "message": e.message,
                         "reason": e.status.canonical_reason().unwrap_or("error")});
        match crate::templates::render("error.html", &ctx) {
            Ok(html) => (e.status, html).into_response(),
            Err(_) => (e.status, e.message).into_response(),
        }
    }
}
