//! The portal's HTTP layer: `app(state) -> Router`. Every action goes through the same
//! application services as the CLI, so authorisation has one code path.

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cutover_app::{App, AppError, SESSION_SECONDS};
use cutover_core::{DomainError, Project, ProjectKey, User, mask_url};
use serde::Deserialize;
use serde_json::json;

/// Name of the session cookie.
pub const COOKIE: &str = "cutover_session";

/// Failed logins allowed per e-mail within [`LOGIN_WINDOW`].
pub const LOGIN_ATTEMPTS: usize = 5;
/// The window of the login rate limit.
pub const LOGIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// What handlers share.
#[derive(Debug, Clone)]
pub struct WebState {
    /// The application.
    pub app: App,
    /// Recent failed logins per e-mail (lower-cased).
    failures: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<std::time::Instant>>>>,
}

impl WebState {
    /// State for serving `app`.
    pub fn new(app: App) -> Self {
        Self { app, failures: std::sync::Arc::default() }
    }

    /// Recent failures of an e-mail, after dropping the old ones.
    fn recent_failures(&self, email: &str) -> usize {
        let mut m = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let v = m.entry(email.to_lowercase()).or_default();
        v.retain(|t| t.elapsed() < LOGIN_WINDOW);
        v.len()
    }

    fn record_failure(&self, email: &str) {
        let mut m = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.entry(email.to_lowercase()).or_default().push(std::time::Instant::now());
    }
}

/// The one error type of the web layer: a status and a stable code for clients; internals are logged, not shown.
#[derive(Debug)]
pub struct WebError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl WebError {
    fn unauthenticated() -> Self {
        Self { status: StatusCode::UNAUTHORIZED, code: "unauthenticated", message: "log in first".into() }
    }
}

impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        let status = match &e {
            AppError::Domain(DomainError::NotFound(_)) => StatusCode::NOT_FOUND,
            AppError::Domain(DomainError::Forbidden(_)) => StatusCode::FORBIDDEN,
            AppError::Domain(DomainError::GateClosed { .. } | DomainError::WrongPhase { .. })
            | AppError::StalePreview { .. } => StatusCode::CONFLICT,
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

/// The logged-in user, from the session cookie.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

impl FromRequestParts<WebState> for CurrentUser {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        let token = session_token(&parts.headers).ok_or_else(WebError::unauthenticated)?;
        match state.app.session_user(&token).await? {
            Some(u) => Ok(CurrentUser(u)),
            None => Err(WebError::unauthenticated()),
        }
    }
}

/// The router of the portal and the API.
pub fn app(state: WebState) -> Router {
    Router::new()
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/projects", get(projects))
        .route("/api/projects/{key}", get(project))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
struct LoginBody {
    email: String,
    password: String,
}

fn user_json(u: &User) -> serde_json::Value {
    json!({"email": u.email, "name": u.name, "party": u.party, "role": u.role})
}

async fn login(State(s): State<WebState>, Json(body): Json<LoginBody>) -> Result<Response, WebError> {
    // Password guessing is slowed per account: past the limit the password is not even checked.
    if s.recent_failures(&body.email) >= LOGIN_ATTEMPTS {
        tracing::warn!(email = %body.email, "login rate limit reached");
        return Err(WebError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "too_many_attempts",
            message: format!("too many failed logins; try again in {} minutes", LOGIN_WINDOW.as_secs() / 60),
        });
    }
    let Some((token, user)) = s.app.open_session(&body.email, &body.password).await? else {
        s.record_failure(&body.email);
        return Err(WebError {
            status: StatusCode::UNAUTHORIZED,
            code: "bad_credentials",
            message: "wrong e-mail or password".into(),
        });
    };
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SESSION_SECONDS}");
    let mut res = Json(user_json(&user)).into_response();
    let value = HeaderValue::from_str(&cookie).map_err(|_| WebError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "internal",
        message: "cookie".into(),
    })?;
    res.headers_mut().insert(header::SET_COOKIE, value);
    Ok(res)
}

async fn logout(State(s): State<WebState>, headers: HeaderMap) -> Result<Response, WebError> {
    if let Some(token) = session_token(&headers) {
        s.app.close_session(&token).await?;
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("cutover_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    Ok(res)
}

async fn me(CurrentUser(u): CurrentUser) -> Json<serde_json::Value> {
    Json(user_json(&u))
}

fn project_json(p: &Project) -> serde_json::Value {
    let st = p.status();
    json!({
        "key": p.key, "name": p.name, "org": p.org, "pack": p.pack,
        "v1_url": p.v1_url.as_deref().map(mask_url), "v2_url": p.v2_url.as_deref().map(mask_url),
        "phase": st.phase, "next_step": st.next_step,
        "blocked_by": st.blocked_by.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "next_deadline": p.plan.next_deadline(), "retainer": p.retainer.summary(),
    })
}

async fn projects(State(s): State<WebState>, CurrentUser(u): CurrentUser) -> Result<Json<serde_json::Value>, WebError> {
    let list = s.app.projects(&u).await?;
    Ok(Json(json!(list.iter().map(project_json).collect::<Vec<_>>())))
}

async fn project(
    State(s): State<WebState>,
    CurrentUser(u): CurrentUser,
    Path(key): Path<String>,
) -> Result<Json<serde_json::Value>, WebError> {
    let key = ProjectKey::parse(&key)?;
    let p = s.app.project(&u, &key).await?.project;
    Ok(Json(project_json(&p)))
}

/// Serves the portal until the process ends.
pub async fn serve(app_state: WebState, addr: &str) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr, "serving the portal");
    axum::serve(listener, app(app_state)).await
}
