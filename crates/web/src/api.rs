//! The JSON API under `/api/`: the same operations as the pages, and its OpenAPI document, built
//! from the one route table the router is built from.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use cutover_core::documents::DocKind;
use cutover_core::plan::{ActivityId, ActivityStatus};
use cutover_core::{Command, PartyKind, ProjectKey, Text};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{self, Session};
use crate::error::WebError;
use crate::pages::{LedgerQuery, csv_response, item_update, log_time};
use crate::{WebState, views};

type ApiResult = Result<Json<Value>, WebError>;

/// One route of the API: what the router serves and what the OpenAPI document says of it.
#[derive(Debug, Clone, Copy)]
pub struct ApiRoute {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path with `{param}` placeholders.
    pub path: &'static str,
    /// One line.
    pub summary: &'static str,
    /// Whether a session is needed.
    pub auth: bool,
    /// Name of the request body schema in [`schemas`], for POSTs with a body.
    pub body: Option<&'static str>,
    /// Query parameters (all optional strings).
    pub query: &'static [&'static str],
}

const fn r(method: &'static str, path: &'static str, summary: &'static str) -> ApiRoute {
    ApiRoute { method, path, summary, auth: true, body: None, query: &[] }
}

/// Every route of the API.
pub const ROUTES: &[ApiRoute] = &[
    ApiRoute { auth: false, body: Some("Login"), ..r("POST", "/api/login", "Log in; sets the session cookie") },
    ApiRoute { auth: false, ..r("POST", "/api/logout", "Log out; ends the session") },
    ApiRoute { auth: false, ..r("GET", "/api/openapi.json", "This document") },
    r("GET", "/api/me", "The logged-in user"),
    r("GET", "/api/projects", "Every project the user may see, where it stands"),
    r("GET", "/api/projects/{key}", "A project: phase, next gate and what blocks it, timeline"),
    r("GET", "/api/projects/{key}/plan", "Plan activities and scope"),
    ApiRoute {
        body: Some("ActivityStatus"),
        ..r("POST", "/api/projects/{key}/plan/{activity}", "Set an activity's status")
    },
    r("GET", "/api/projects/{key}/contracts", "The three documents, their hashes and signatures"),
    r("GET", "/api/projects/{key}/contracts/{kind}", "One document (migration, license or go-live)"),
    ApiRoute {
        body: Some("Sign"),
        ..r("POST", "/api/projects/{key}/contracts/{kind}/sign", "Sign for the user's own party")
    },
    r("GET", "/api/projects/{key}/checklist", "The joint checklist and its acceptances"),
    ApiRoute { body: Some("NewItem"), ..r("POST", "/api/projects/{key}/checklist", "Add an item of the user's party") },
    r("POST", "/api/projects/{key}/checklist/accept", "Accept the checklist for the user's party"),
    ApiRoute {
        body: Some("ItemResult"),
        ..r("POST", "/api/projects/{key}/checklist/{item}", "Record a checklist result")
    },
    r("GET", "/api/projects/{key}/runs", "Migration runs, newest first"),
    r("GET", "/api/projects/{key}/runs/{run}", "A run's report: buckets per entity and reason"),
    ApiRoute {
        query: &["entity", "reason", "bucket", "page", "format"],
        ..r(
            "GET",
            "/api/projects/{key}/runs/{run}/not-migrated",
            "Records not migrated, with original values (JSON or CSV)",
        )
    },
    r("GET", "/api/projects/{key}/verifications", "Verifications, newest first"),
    r("GET", "/api/projects/{key}/verifications/{id}", "A verification's full report with the spot-check"),
    r("GET", "/api/projects/{key}/preview", "What the final migration would overwrite now"),
    r("GET", "/api/projects/{key}/recovery", "Recovery bundles of final migrations"),
    r("GET", "/api/projects/{key}/retainer", "Retainer hours, entries and extras"),
    ApiRoute {
        body: Some("LogTime"),
        ..r("POST", "/api/projects/{key}/time", "Log time against the retainer (vendor)")
    },
    r("GET", "/api/projects/{key}/audit", "The project's hash-chained audit log and whether it is intact"),
];

/// The handler of a route in [`ROUTES`].
fn handler(route: &ApiRoute) -> MethodRouter<WebState> {
    match (route.method, route.path) {
        ("POST", "/api/login") => post(auth::api_login),
        ("POST", "/api/logout") => post(auth::api_logout),
        ("GET", "/api/openapi.json") => get(openapi),
        ("GET", "/api/me") => get(auth::api_me),
        ("GET", "/api/projects") => get(projects),
        ("GET", "/api/projects/{key}") => get(project),
        ("GET", "/api/projects/{key}/plan") => get(plan),
        ("POST", "/api/projects/{key}/plan/{activity}") => post(activity_set),
        ("GET", "/api/projects/{key}/contracts") => get(contracts),
        ("GET", "/api/projects/{key}/contracts/{kind}") => get(contract),
        ("POST", "/api/projects/{key}/contracts/{kind}/sign") => post(sign),
        ("GET", "/api/projects/{key}/checklist") => get(checklist),
        ("POST", "/api/projects/{key}/checklist") => post(checklist_add),
        ("POST", "/api/projects/{key}/checklist/accept") => post(checklist_accept),
        ("POST", "/api/projects/{key}/checklist/{item}") => post(checklist_set),
        ("GET", "/api/projects/{key}/runs") => get(runs),
        ("GET", "/api/projects/{key}/runs/{run}") => get(run),
        ("GET", "/api/projects/{key}/runs/{run}/not-migrated") => get(not_migrated),
        ("GET", "/api/projects/{key}/verifications") => get(verifications),
        ("GET", "/api/projects/{key}/verifications/{id}") => get(verification),
        ("GET", "/api/projects/{key}/preview") => get(preview),
        ("GET", "/api/projects/{key}/recovery") => get(recovery),
        ("GET", "/api/projects/{key}/retainer") => get(retainer),
        ("POST", "/api/projects/{key}/time") => post(time_log),
        ("GET", "/api/projects/{key}/audit") => get(audit),
        _ => get(unrouted),
    }
}

async fn unrouted() -> WebError {
    WebError::internal("a route of the table has no handler")
}

/// The API's routes.
pub fn router() -> Router<WebState> {
    let mut r = Router::new();
    for route in ROUTES {
        r = r.route(route.path, handler(route));
    }
    r.layer(axum::middleware::map_response(json_errors))
}

/// A request the extractors refuse (a malformed path, query or body, a body that is not JSON)
/// is answered like every other API error: `{"error": {"code", "message"}}`, as JSON.
async fn json_errors(res: Response) -> Response {
    let status = res.status();
    let json = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let code = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        s if s.is_server_error() => "internal",
        _ => "invalid_input",
    };
    // A body of the wrong shape is invalid input like any other (400), not a separate 422.
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { status };
    let bytes = axum::body::to_bytes(res.into_body(), 64 << 10).await.unwrap_or_default();
    let message = match String::from_utf8_lossy(&bytes).trim() {
        "" => status.canonical_reason().unwrap_or("error").to_owned(),
        m => m.to_owned(),
    };
    WebError::new(status, code, message).into_response()
}

fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

async fn projects(State(s): State<WebState>, session: Session) -> Result<Response, WebError> {
    let list = s.summaries(&session.user).await?;
    // The cached JSON texts, joined: no value is re-serialised per request.
    let mut body = String::with_capacity(list.iter().map(|x| x.json.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (i, x) in list.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&x.json);
    }
    body.push(']');
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn project(State(s): State<WebState>, session: Session, Path(key): Path<String>) -> ApiResult {
    let p = s.project(&session.user, &key).await?;
    let mut v = views::summary(&p, today());
    v["timeline"] = views::timeline(&p);
    Ok(Json(v))
}

async fn plan(State(s): State<WebState>, session: Session, Path(key): Path<String>) -> ApiResult {
    Ok(Json(views::plan(&s.project(&session.user, &key).await?, today())))
}

#[derive(Debug, Deserialize)]
struct ActivityBody {
    status: String,
}

async fn activity_set(
    State(s): State<WebState>,
    session: Session,
    Path((key, id)): Path<(String, String)>,
    Json(b): Json<ActivityBody>,
) -> ApiResult {
    let cmd = Command::SetActivityStatus { id: ActivityId::parse(&id)?, status: ActivityStatus::parse(&b.status)? };
    Ok(Json(views::plan(&s.act(&session.user, &key, cmd).await?, today())))
}

async fn contracts(State(s): State<WebState>, session: Session, Path(key): Path<String>) -> ApiResult {
    Ok(Json(views::contracts(&s.project(&session.user, &key).await?)))
}

async fn contract(State(s): State<WebState>, session: Session, Path((key, kind)): Path<(String, String)>) -> ApiResult {
    let p = s.project(&session.user, &key).await?;
    Ok(Json(views::contract(&p, DocKind::parse(&kind)?, Some(&session.user))))
}

#[derive(Debug, Deserialize, Default)]
struct SignBody {
    #[serde(default)]
    party: Option<String>,
}

async fn sign(
    State(s): State<WebState>,
    session: Session,
    Path((key, kind)): Path<(String, String)>,
    body: Option<Json<SignBody>>,
) -> ApiResult {
    let kind = DocKind::parse(&kind)?;
    let party = body.and_then(|b| b.0.party).map(|p| PartyKind::parse(&p)).transpose()?;
    let p = s.act(&session.user, &key, Command::Sign { kind, party }).await?;
    Ok(Json(views::contract(&p, kind, Some(&session.user))))
}

async fn checklist(State(s): State<WebState>, session: Session, Path(key): Path<String>) -> ApiResult {
    Ok(Json(views::checklist(&s.project(&session.user, &key).await?)))
}

#[derive(Debug, Deserialize)]
struct NewItemBody {
    title: String,
}

async fn checklist_add(
    State(s): State<WebState>,
    session: Session,
    Path(key): Path<String>,
    Json(b): Json<NewItemBody>,
) -> ApiResult {
    let p = s.act(&session.user, &key, Command::ChecklistAdd { title: Text::parse(&b.title)? }).await?;
    Ok(Json(views::checklist(&p)))
}

async fn checklist_accept(State(s): State<WebState>, session: Session, Path(key): Path<String>) -> ApiResult {
    Ok(Json(views::checklist(&s.act(&session.user, &key, Command::ChecklistAccept).await?)))
}

#[derive(Debug, Deserialize)]
struct ItemBody {
    status: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    evidence: Vec<String>,
}

async fn checklist_set(
    State(s): State<WebState>,
    session: Session,
    Path((key, item)): Path<(String, String)>,
    Json(b): Json<ItemBody>,
) -> ApiResult {
    let update = item_update(&b.status, b.note, b.evidence)?;
    Ok(Json(views::checklist(&s.act(&session.user, &key, Command::ChecklistSet { item, update }).await?)))
}

async fn runs(State(s): State<WebState>, session: Session, Path(key): Path<String>) -> ApiResult {
    let p = s.project(&session.user, &key).await?;
    let runs = s.app.runs(&session.user, &p.key).await?;
    Ok(Json(views::runs(&p, &runs)))
}

async fn run(State(s): State<WebState>, session: Session, Path((key, run)): Path<(String, i64)>) -> ApiResult {
    let key = ProjectKey::parse(&key)?;
    Ok(Json(views::run(&s.app.run_view(&session.user, &key, Some(run)).await?)))
}

#[derive(Debug, Deserialize, Default)]
struct NotMigratedQuery {
    #[serde(flatten)]
    ledger: LedgerQuery,
    #[serde(default)]
    format: Option<String>,
}

async fn not_migrated(
    State(s): State<WebState>,
    session: Session,
    Path((key, run)): Path<(String, i64)>,
    Query(q): Query<NotMigratedQuery>,
) -> Result<Response, WebError> {
    let key = ProjectKey::parse(&key)?;
    match q.format.as_deref().unwrap_or("json") {
        "csv" => {
            let (rows, _) = s.app.not_migrated(&session.user, &key, run, &q.ledger.filter(None)?).await?;
            csv_response(key.as_str(), run, &rows)
        }
        "json" => {
            let (rows, total) = s
                .app
                .not_migrated(&session.user, &key, run, &q.ledger.filter(Some(crate::pages::LEDGER_PAGE))?)
                .await?;
            let rows: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let original: Value =
                        serde_json::from_str(&r.original).unwrap_or(Value::String(r.original.clone()));
                    json!({"entity": r.entity, "legacy_ref": r.legacy_ref, "key": r.v1_key, "bucket": r.bucket,
                           "reason": r.reason, "message": r.message, "original": original})
                })
                .collect();
            Ok(Json(json!({"total": total, "page": q.ledger.page.unwrap_or(0), "page_size": crate::pages::LEDGER_PAGE,
                           "rows": rows}))
            .into_response())
        }
        other => Err(WebError::invalid(format!("format '{other}' is not one of json, csv"))),
    }
}

async fn verifications(State(s): State<WebState>, session: Session, Path(key): Path<String>) -> ApiResult {
    Ok(Json(views::verifications(&s.project(&session.user, &key).await?)))
}

async fn verification(State(s): State<WebState>, session: Session, Path((key, id)): Path<(String, i64)>) -> ApiResult {
    let key = ProjectKey::parse(&key)?;
    let report = s.app.verification(&session.user, &key, id).await?;
    Ok(Json(json!({"id": id, "clean": report.clean(), "report": report})))
}

async fn preview(State(s): State<WebState>, session: Session, Path(key): Path<String>) -> ApiResult {
    let key = ProjectKey::parse(&key)?;
    let p = s.app.preview(&session.user, &key).await?;
    Ok(Json(json!(p)))
}

async fn recovery(State(s): State<WebState>, session: Session, Path(key): Path<String>) -> ApiResult {
    let key = ProjectKey::parse(&key)?;
    Ok(Json(views::recovery(&s.app.recovery_bundles(&session.user, &key).await?)))
}

async fn retainer(State(s): State<WebState>, session: Session, Path(key): Path<String>) -> ApiResult {
    Ok(Json(views::retainer(&s.project(&session.user, &key).await?)))
}

#[derive(Debug, Deserialize)]
struct TimeBody {
    activity: String,
    hours: String,
    date: String,
    #[serde(default)]
    note: Option<String>,
}

async fn time_log(
    State(s): State<WebState>,
    session: Session,
    Path(key): Path<String>,
    Json(b): Json<TimeBody>,
) -> ApiResult {
    let cmd = log_time(&b.activity, &b.hours, &b.date, b.note)?;
    Ok(Json(views::retainer(&s.act(&session.user, &key, cmd).await?)))
}

async fn audit(State(s): State<WebState>, session: Session, Path(key): Path<String>) -> ApiResult {
    let key = ProjectKey::parse(&key)?;
    let entries = s.app.audit(&session.user, Some(&key)).await?;
    let broken = cutover_core::audit::verify(&entries).err().map(|b| b.seq);
    Ok(Json(views::audit(&entries, broken)))
}

/// Request body schemas, by name.
fn schemas() -> Value {
    let obj = |required: &[&str], props: Value| json!({"type": "object", "required": required, "properties": props});
    let s = json!({"type": "string"});
    json!({
        "Login": obj(&["email", "password"], json!({"email": s, "password": s})),
        "ActivityStatus": obj(&["status"], json!({"status": {"type": "string", "enum": ["planned", "in-progress", "done", "cancelled"]}})),
        "Sign": obj(&[], json!({"party": {"type": "string", "enum": ["vendor", "customer"]}})),
        "NewItem": obj(&["title"], json!({"title": s})),
        "ItemResult": obj(&["status"], json!({
            "status": {"type": "string", "enum": ["open", "passed", "failed", "waived"]},
            "note": s, "evidence": {"type": "array", "items": s}})),
        "LogTime": obj(&["activity", "hours", "date"], json!({
            "activity": {"type": "string", "example": "A1"}, "hours": {"type": "string", "example": "1.5"},
            "date": {"type": "string", "format": "date"}, "note": s})),
        "Error": obj(&["error"], json!({"error": obj(&["code", "message"], json!({"code": s, "message": s}))})),
    })
}

/// The OpenAPI 3.1 document of [`ROUTES`].
pub fn openapi_document() -> Value {
    let mut paths = serde_json::Map::new();
    for route in ROUTES {
        let mut params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|x| x.strip_suffix('}')))
            .map(|name| {
                let schema =
                    if matches!(name, "run" | "id") { json!({"type": "integer"}) } else { json!({"type": "string"}) };
                json!({"name": name, "in": "path", "required": true, "schema": schema})
            })
            .collect();
        params.extend(
            route
                .query
                .iter()
                .map(|q| json!({"name": q, "in": "query", "required": false, "schema": {"type": "string"}})),
        );
        let error = json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        let mut responses = serde_json::Map::new();
        responses.insert("200".into(), json!({"description": "OK", "content": {"application/json": {}}}));
        if route.path == "/api/logout" {
            responses.clear();
            responses.insert("204".into(), json!({"description": "Logged out"}));
        }
        for (code, what) in [
            ("400", "Invalid input"),
            ("401", "No session"),
            ("403", "Not allowed for this user"),
            ("404", "Not found, or another organisation's"),
            ("409", "A gate or the phase refuses it"),
            ("415", "The body is not JSON (Content-Type: application/json)"),
            ("429", "Too many failed logins"),
        ] {
            responses.insert(code.into(), json!({"description": what, "content": error["content"]}));
        }
        let mut op = json!({"summary": route.summary, "operationId": operation_id(route), "parameters": params,
                            "responses": responses});
        if route.auth {
            op["security"] = json!([{"session": []}]);
        }
        if let Some(body) = route.body {
            op["requestBody"] = json!({"required": route.path != "/api/projects/{key}/contracts/{kind}/sign",
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}});
        }
        let entry = paths.entry(route.path.to_owned()).or_insert_with(|| json!({}));
        entry[route.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "cutover portal API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Log in with POST /api/login; the session cookie authorises the rest. Another organisation's project answers 404."},
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": auth::COOKIE}},
        },
    })
}

fn operation_id(route: &ApiRoute) -> String {
    let mut id = route.method.to_lowercase();
    for seg in route.path.trim_start_matches("/api/").split('/') {
        let seg = seg.trim_start_matches('{').trim_end_matches('}').replace(['-', '.'], "_");
        id.push('_');
        id.push_str(&seg);
    }
    id
}

async fn openapi() -> Json<Value> {
    Json(openapi_document())
}
