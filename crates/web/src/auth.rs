//! Sessions, login and CSRF.
//!
//! The session cookie is HttpOnly and SameSite=Strict. Every HTML form carries a CSRF token
//! derived from the session token (so a page of another site can neither read nor forge it);
//! the login form, which has no session yet, uses a double-submit cookie. The JSON API needs no
//! token: it takes only `application/json` bodies, which a page of another site cannot send
//! without a CORS preflight that this server never grants.

use axum::Json;
use axum::extract::{Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cutover_app::SESSION_SECONDS;
use cutover_core::User;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{PageError, WebError};
use crate::{WebState, templates, views};

/// Name of the session cookie.
pub const COOKIE: &str = "cutover_session";
/// Name of the login form's double-submit cookie.
pub const LOGIN_CSRF_COOKIE: &str = "cutover_login_csrf";

/// The logged-in user of a request, from the session cookie.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who.
    pub user: User,
    /// The CSRF token of this session's forms.
    pub csrf: String,
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The CSRF token of a session: only someone who holds the session token can compute it.
fn csrf_for(session_token: &str) -> String {
    hex(&Sha256::digest(format!("cutover-csrf:{session_token}").as_bytes()))
}

/// Compares without leaking where the first difference is.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Session {
    /// Refuses a form whose token is not this session's.
    pub fn check_csrf(&self, given: &str) -> Result<(), WebError> {
        if same(&self.csrf, given) {
            Ok(())
        } else {
            tracing::warn!(user = %self.user.email, "form refused: CSRF token does not match");
            Err(WebError::csrf())
        }
    }
}

impl FromRequestParts<WebState> for Session {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        let token = cookie(&parts.headers, COOKIE).ok_or_else(WebError::unauthenticated)?;
        match state.app.session_user(&token).await? {
            Some(user) => Ok(Session { user, csrf: csrf_for(&token) }),
            None => Err(WebError::unauthenticated()),
        }
    }
}

/// A [`Session`] on a page: without one, the browser is sent to the login page.
#[derive(Debug, Clone)]
pub struct PageSession(pub Session);

impl FromRequestParts<WebState> for PageSession {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        Ok(PageSession(Session::from_request_parts(parts, state).await?))
    }
}

fn session_cookie(token: &str) -> Result<HeaderValue, WebError> {
    HeaderValue::from_str(&format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SESSION_SECONDS}"))
        .map_err(|_| WebError::internal("cookie"))
}

const CLEARED: &str = "cutover_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0";

/// Checks the rate limit and the password; opens a session.
async fn open(s: &WebState, email: &str, password: &str) -> Result<(String, User), WebError> {
    // Password guessing is slowed per account: past the limit the password is not even checked.
    if s.recent_failures(email) >= crate::LOGIN_ATTEMPTS {
        tracing::warn!(email, "login rate limit reached");
        return Err(WebError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed logins; try again in {} minutes", crate::LOGIN_WINDOW.as_secs() / 60),
        ));
    }
    match s.app.open_session(email, password).await? {
        Some(opened) => Ok(opened),
        None => {
            s.record_failure(email);
            tracing::info!(email, "login failed");
            Err(WebError::new(StatusCode::UNAUTHORIZED, "bad_credentials", "wrong e-mail or password"))
        }
    }
}

/// The body of `POST /api/login`.
#[derive(Debug, Deserialize)]
pub struct LoginBody {
    email: String,
    password: String,
}

/// `POST /api/login`.
pub async fn api_login(State(s): State<WebState>, Json(body): Json<LoginBody>) -> Result<Response, WebError> {
    let (token, user) = open(&s, &body.email, &body.password).await?;
    let mut res = Json(views::user(&user)).into_response();
    res.headers_mut().insert(header::SET_COOKIE, session_cookie(&token)?);
    Ok(res)
}

/// `POST /api/logout` (and the end of `POST /logout`): the session is deleted in the store.
pub async fn api_logout(State(s): State<WebState>, headers: HeaderMap) -> Result<Response, WebError> {
    if let Some(token) = cookie(&headers, COOKIE) {
        s.app.close_session(&token).await?;
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static(CLEARED));
    Ok(res)
}

/// `GET /api/me`.
pub async fn api_me(session: Session) -> Json<serde_json::Value> {
    Json(views::user(&session.user))
}

fn login_page(token: &str, error: Option<&str>, email: &str, status: StatusCode) -> Result<Response, WebError> {
    let html = templates::render("login.html", &serde_json::json!({"csrf": token, "error": error, "email": email}))?;
    let mut res = (status, html).into_response();
    let c = HeaderValue::from_str(&format!("{LOGIN_CSRF_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/login"))
        .map_err(|_| WebError::internal("cookie"))?;
    res.headers_mut().insert(header::SET_COOKIE, c);
    Ok(res)
}

/// `GET /login`.
pub async fn login_form(headers: HeaderMap) -> Result<Response, PageError> {
    // Keep the token of an open login form, so two tabs do not invalidate each other.
    let token = cookie(&headers, LOGIN_CSRF_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(cutover_app::random_token);
    Ok(login_page(&token, None, "", StatusCode::OK)?)
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    csrf: String,
}

/// `POST /login`.
pub async fn login_submit(
    State(s): State<WebState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, PageError> {
    match cookie(&headers, LOGIN_CSRF_COOKIE) {
        Some(c) if same(&c, &f.csrf) => {}
        _ => return Err(WebError::csrf().into()),
    }
    match open(&s, &f.email, &f.password).await {
        Ok((token, _)) => {
            let mut res = Redirect::to("/").into_response();
            res.headers_mut().insert(header::SET_COOKIE, session_cookie(&token)?);
            Ok(res)
        }
        Err(e) if matches!(e.code, "bad_credentials" | "too_many_attempts") => {
            Ok(login_page(&f.csrf, Some(&e.message), &f.email, e.status)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// The logout form.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `POST /logout`.
pub async fn logout_submit(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    session.check_csrf(&f.csrf)?;
    api_logout(State(s), headers).await?;
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static(CLEARED));
    Ok(res)
}
