//! The portal's HTTP layer: `app(state) -> Router` with the HTML pages and the JSON API. Every
//! action goes through the same application services as the CLI, so authorisation has one code
//! path; every view of a project is one JSON value ([`views`]) that the API returns and the
//! pages render.

pub mod api;
pub mod auth;
mod chart;
pub mod error;
mod pages;
mod templates;
pub mod views;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use cutover_app::App;

pub use auth::{COOKIE, Session};
pub use error::{PageError, WebError};

/// Failed logins allowed per e-mail within [`LOGIN_WINDOW`].
pub const LOGIN_ATTEMPTS: usize = 5;
/// The window of the login rate limit.
pub const LOGIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

type Failures = std::collections::HashMap<String, Vec<std::time::Instant>>;
/// Project key → (version, day, summary).
type Listings = std::collections::HashMap<Option<String>, ((i64, i64), std::sync::Arc<Vec<(String, i64)>>)>;
type Summaries = std::collections::HashMap<String, (i64, time::Date, std::sync::Arc<Summary>)>;

/// A project's summary as JSON, as JSON text and as its dashboard row, computed once per version and day.
#[derive(Debug)]
pub struct Summary {
    /// The value ([`views::summary`]).
    pub value: serde_json::Value,
    /// The value as JSON text.
    pub json: String,
    /// The dashboard row, escaped HTML.
    pub row_html: String,
}

impl Summary {
    fn new(p: &cutover_core::Project, today: time::Date) -> Result<Self, WebError> {
        let value = views::summary(p, today);
        let row_html = templates::render("dashboard_row.html", &serde_json::json!({"p": value}))?.0;
        Ok(Summary { json: value.to_string(), value, row_html })
    }
}

/// What handlers share.
#[derive(Debug, Clone)]
pub struct WebState {
    /// The application.
    pub app: App,
    /// Recent failed logins per e-mail (lower-cased).
    failures: std::sync::Arc<std::sync::Mutex<Failures>>,
    /// Dashboard rows of projects at the version and day they were computed for.
    summaries: std::sync::Arc<std::sync::Mutex<Summaries>>,
    /// Per organisation (`None`: all), the project keys and versions at a [`App::projects_mark`].
    listings: std::sync::Arc<std::sync::Mutex<Listings>>,
}

impl WebState {
    /// State for serving `app`.
    pub fn new(app: App) -> Self {
        Self {
            app,
            failures: std::sync::Arc::default(),
            summaries: std::sync::Arc::default(),
            listings: std::sync::Arc::default(),
        }
    }

    /// A project the user may see, by the key as written in a path.
    pub(crate) async fn project(
        &self,
        user: &cutover_core::User,
        key: &str,
    ) -> Result<cutover_core::Project, WebError> {
        let key = cutover_core::ProjectKey::parse(key)?;
        Ok(self.app.project(user, &key).await?.project)
    }

    /// Applies a command to a project the user may see; the core decides.
    pub(crate) async fn act(
        &self,
        user: &cutover_core::User,
        key: &str,
        cmd: cutover_core::Command,
    ) -> Result<cutover_core::Project, WebError> {
        let key = cutover_core::ProjectKey::parse(key)?;
        Ok(self.app.execute(user, &key, cmd).await?.project)
    }

    /// Key and version of every project the user may see: one single-row query when nothing
    /// was created or saved since the last listing of the same organisation.
    async fn versions(&self, user: &cutover_core::User) -> Result<std::sync::Arc<Vec<(String, i64)>>, WebError> {
        let scope = user.party.org().map(ToString::to_string);
        let mark = self.app.projects_mark(user).await?;
        {
            let listings = self.listings.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((m, v)) = listings.get(&scope)
                && *m == mark
            {
                return Ok(v.clone());
            }
        }
        // Read the mark again with the list: a save in between shows as a changed mark next time.
        let versions = std::sync::Arc::new(self.app.project_versions(user).await?);
        let mark = if versions.len() as i64 == mark.0 && versions.iter().map(|v| v.1).sum::<i64>() == mark.1 {
            mark
        } else {
            (-1, -1)
        };
        let mut listings = self.listings.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        listings.insert(scope, (mark, versions.clone()));
        Ok(versions)
    }

    /// The summary of every project the user may see, by key. A summary is computed from the
    /// project's state once per version and day, so a dashboard of a thousand projects reads
    /// only their versions when nothing changed.
    pub async fn summaries(&self, user: &cutover_core::User) -> Result<Vec<std::sync::Arc<Summary>>, WebError> {
        let today = time::OffsetDateTime::now_utc().date();
        let versions = self.versions(user).await?;
        let mut out: Vec<Option<std::sync::Arc<Summary>>> = {
            let cache = self.summaries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            versions
                .iter()
                .map(|(k, v)| cache.get(k).filter(|c| c.0 == *v && c.1 == today).map(|c| c.2.clone()))
                .collect()
        };
        let stale = out.iter().filter(|o| o.is_none()).count();
        if stale == 0 {
            return Ok(out.into_iter().flatten().collect());
        }
        // Many stale (a cold cache): one read of all; a few: read just those.
        let fresh: Vec<cutover_store::StoredProject> = if stale > 16 {
            self.app.stored_projects(user).await?
        } else {
            let mut v = Vec::with_capacity(stale);
            for ((k, _), o) in versions.iter().zip(&out) {
                if o.is_none() {
                    v.push(self.app.project(user, &cutover_core::ProjectKey::parse(k)?).await?);
                }
            }
            v
        };
        let index: std::collections::HashMap<&str, usize> =
            versions.iter().enumerate().map(|(i, (k, _))| (k.as_str(), i)).collect();
        let mut cache = self.summaries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for sp in fresh {
            let key = sp.project.key.to_string();
            let summary = std::sync::Arc::new(Summary::new(&sp.project, today)?);
            if let Some(&i) = index.get(key.as_str()) {
                out[i] = Some(summary.clone());
            }
            cache.insert(key, (sp.version, today, summary));
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Recent failures of an e-mail, after dropping the old ones.
    fn recent_failures(&self, email: &str) -> usize {
        let mut m = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let v = m.entry(email.trim().to_lowercase()).or_default();
        v.retain(|t| t.elapsed() < LOGIN_WINDOW);
        v.len()
    }

    fn record_failure(&self, email: &str) {
        let mut m = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.entry(email.trim().to_lowercase()).or_default().push(std::time::Instant::now());
    }
}

/// Headers every response carries: no framing by other sites, no sniffing, no inline scripts.
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    res
}

/// The router of the portal and the API.
pub fn app(state: WebState) -> Router {
    use pages as p;
    let pages = Router::new()
        .route("/", get(p::dashboard))
        .route("/login", get(auth::login_form).post(auth::login_submit))
        .route("/logout", post(auth::logout_submit))
        .route("/static/style.css", get(p::style))
        .route("/projects/{key}", get(p::project))
        .route("/projects/{key}/plan", get(p::plan))
        .route("/projects/{key}/plan/{id}", post(p::activity_set))
        .route("/projects/{key}/contracts", get(p::contracts))
        .route("/projects/{key}/contracts/{kind}", get(p::contract))
        .route("/projects/{key}/contracts/{kind}/sign", post(p::sign))
        .route("/projects/{key}/runs", get(p::runs))
        .route("/projects/{key}/runs/{run}", get(p::run))
        .route("/projects/{key}/runs/{run}/not-migrated.csv", get(p::run_csv))
        .route("/projects/{key}/verifications", get(p::verifications))
        .route("/projects/{key}/verifications/{id}", get(p::verification))
        .route("/projects/{key}/checklist", get(p::checklist).post(p::checklist_add))
        .route("/projects/{key}/checklist/accept", post(p::checklist_accept))
        .route("/projects/{key}/checklist/{item}", post(p::checklist_set))
        .route("/projects/{key}/preview", get(p::preview))
        .route("/projects/{key}/recovery", get(p::recovery))
        .route("/projects/{key}/retainer", get(p::retainer))
        .route("/projects/{key}/retainer.svg", get(p::retainer_svg))
        .route("/projects/{key}/time", post(p::time_log))
        .route("/projects/{key}/audit", get(p::audit))
        .fallback(p::not_found);
    Router::new().merge(api::router()).merge(pages).layer(axum::middleware::from_fn(security_headers)).with_state(state)
}

/// Serves the portal until the process ends.
pub async fn serve(app_state: WebState, addr: &str) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr, "serving the portal");
    axum::serve(listener, app(app_state)).await
}
