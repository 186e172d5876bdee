//! The server-rendered HTML pages and their forms. Pages read through the same views as the API
//! and act through the same application services as the CLI; every form checks its CSRF token.

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use cutover_core::checklist::{ItemStatus, ItemUpdate};
use cutover_core::documents::DocKind;
use cutover_core::plan::{ActivityId, ActivityStatus};
use cutover_core::{Command, Hours, PartyKind, Project, ProjectKey, Text};
use cutover_store::LedgerFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{PageSession, Session};
use crate::error::{PageError, WebError};
use crate::{WebState, chart, templates, views};

/// Rows of the "not migrated" table per page.
pub const LEDGER_PAGE: u32 = 100;

type PageResult = Result<Response, PageError>;

/// Renders a page with what every page shows: the user, the CSRF token, and the project's header.
fn page(name: &str, session: &Session, project: Option<(&Project, &str)>, mut ctx: Value) -> PageResult {
    let today = time::OffsetDateTime::now_utc().date();
    ctx["me"] = views::user(&session.user);
    ctx["csrf"] = json!(session.csrf);
    if let Some((p, tab)) = project {
        ctx["p"] = views::summary(p, today);
        ctx["timeline"] = views::timeline(p);
        ctx["tab"] = json!(tab);
    }
    Ok(templates::render(name, &ctx)?.into_response())
}

/// What a form did, shown once above the page it returns to. Only these fixed texts are shown.
#[derive(Debug, Deserialize, Default)]
pub struct Done {
    #[serde(default)]
    done: Option<String>,
}

fn done_text(d: &Done) -> Option<&'static str> {
    Some(match d.done.as_deref()? {
        "signed" => "Signed.",
        "item" => "Checklist result recorded.",
        "added" => "Checklist item added.",
        "accepted" => "Checklist accepted.",
        "activity" => "Activity updated.",
        "time" => "Time logged.",
        _ => return None,
    })
}

fn back(key: &str, tab: &str, done: &str) -> Response {
    Redirect::to(&format!("/projects/{key}/{tab}?done={done}")).into_response()
}

/// `GET /`: every project the user may see, where it stands and what is at risk.
pub async fn dashboard(State(s): State<WebState>, PageSession(session): PageSession) -> PageResult {
    let today = time::OffsetDateTime::now_utc().date();
    let rows = s.summaries(&session.user).await?;
    let at_risk = rows.iter().filter(|r| r.value["at_risk"] == true).count();
    let html: String = rows.iter().map(|r| r.row_html.as_str()).collect();
    let ctx = json!({"me": views::user(&session.user), "csrf": session.csrf, "rows": html, "count": rows.len(),
                     "at_risk": at_risk, "today": today.to_string()});
    Ok(templates::render("dashboard.html", &ctx)?.into_response())
}

/// `GET /projects/{key}`.
pub async fn project(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path(key): Path<String>,
) -> PageResult {
    let p = s.project(&session.user, &key).await?;
    page("project.html", &session, Some((&p, "overview")), json!({}))
}

/// `GET /projects/{key}/plan`.
pub async fn plan(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path(key): Path<String>,
    Query(d): Query<Done>,
) -> PageResult {
    let p = s.project(&session.user, &key).await?;
    let today = time::OffsetDateTime::now_utc().date();
    let statuses = ["planned", "in-progress", "done", "cancelled"];
    page(
        "plan.html",
        &session,
        Some((&p, "plan")),
        json!({"plan": views::plan(&p, today), "done": done_text(&d), "statuses": statuses, "today": today.to_string()}),
    )
}

/// `GET /projects/{key}/contracts`.
pub async fn contracts(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path(key): Path<String>,
) -> PageResult {
    let p = s.project(&session.user, &key).await?;
    page("contracts.html", &session, Some((&p, "contracts")), json!({"contracts": views::contracts(&p)}))
}

/// `GET /projects/{key}/contracts/{kind}`: the rendered document, its hash, signatures and a sign button.
pub async fn contract(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path((key, kind)): Path<(String, String)>,
    Query(d): Query<Done>,
) -> PageResult {
    let p = s.project(&session.user, &key).await?;
    let kind = DocKind::parse(&kind).map_err(WebError::from)?;
    let mut c = views::contract(&p, kind, Some(&session.user));
    c["html"] = json!(templates::markdown(&p.document(kind).markdown));
    page("contract.html", &session, Some((&p, "contracts")), json!({"c": c, "done": done_text(&d)}))
}

/// The sign form: the party the user signs for (the core refuses any but the user's own).
#[derive(Debug, Deserialize)]
pub struct SignForm {
    csrf: String,
    #[serde(default)]
    party: Option<String>,
}

/// `POST /projects/{key}/contracts/{kind}/sign`.
pub async fn sign(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path((key, kind)): Path<(String, String)>,
    Form(f): Form<SignForm>,
) -> PageResult {
    session.check_csrf(&f.csrf)?;
    let kind = DocKind::parse(&kind).map_err(WebError::from)?;
    let party =
        f.party.as_deref().filter(|p| !p.is_empty()).map(PartyKind::parse).transpose().map_err(WebError::from)?;
    s.act(&session.user, &key, Command::Sign { kind, party }).await?;
    Ok(back(&key, &format!("contracts/{kind}"), "signed"))
}

/// Filters of the "not migrated" table.
#[derive(Debug, Deserialize, Default)]
pub struct LedgerQuery {
    #[serde(default)]
    pub(crate) entity: Option<String>,
    #[serde(default)]
    pub(crate) reason: Option<String>,
    #[serde(default)]
    pub(crate) bucket: Option<String>,
    #[serde(default)]
    pub(crate) page: Option<u32>,
}

impl LedgerQuery {
    /// The store filter; `bucket` is one of excluded, rejected, warned, or empty for excluded and rejected.
    pub(crate) fn filter(&self, limit: Option<u32>) -> Result<LedgerFilter, WebError> {
        let some = |o: &Option<String>| o.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let buckets = match some(&self.bucket).as_deref() {
            None => vec!["excluded".to_owned(), "rejected".to_owned()],
            Some(b @ ("excluded" | "rejected" | "warned")) => vec![b.to_owned()],
            Some(other) => {
                return Err(WebError::invalid(format!("bucket '{other}' is not one of excluded, rejected, warned")));
            }
        };
        let offset = self.page.unwrap_or(0).saturating_mul(limit.unwrap_or(0));
        Ok(LedgerFilter { entity: some(&self.entity), reason: some(&self.reason), buckets, limit, offset })
    }
}

/// `GET /projects/{key}/runs`.
pub async fn runs(State(s): State<WebState>, PageSession(session): PageSession, Path(key): Path<String>) -> PageResult {
    let p = s.project(&session.user, &key).await?;
    let runs = s.app.runs(&session.user, &p.key).await.map_err(WebError::from)?;
    page("runs.html", &session, Some((&p, "runs")), json!({"runs": views::runs(&p, &runs)}))
}

/// `GET /projects/{key}/runs/{run}`: counts per entity and reason, and the "not migrated" table.
pub async fn run(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path((key, run)): Path<(String, i64)>,
    Query(q): Query<LedgerQuery>,
) -> PageResult {
    let p = s.project(&session.user, &key).await?;
    let view = s.app.run_view(&session.user, &p.key, Some(run)).await.map_err(WebError::from)?;
    let filter = q.filter(Some(LEDGER_PAGE))?;
    let (rows, total) = s.app.not_migrated(&session.user, &p.key, run, &filter).await.map_err(WebError::from)?;
    let page_no = q.page.unwrap_or(0);
    let entities: Vec<&str> = view.report.iter().flat_map(|r| r.entities.iter()).map(|e| e.entity.as_str()).collect();
    let mut reasons: Vec<String> = view
        .report
        .iter()
        .flat_map(|r| r.entities.iter())
        .flat_map(|e| e.reasons.keys())
        .map(|k| k.split_once(':').map_or(k.as_str(), |x| x.1).to_owned())
        .collect();
    reasons.sort();
    reasons.dedup();
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"entity": r.entity, "legacy_ref": r.legacy_ref, "key": r.v1_key, "bucket": r.bucket,
                        "reason": r.reason, "message": r.message, "original": r.original})
        })
        .collect();
    let mut query = Vec::new();
    for (k, v) in [("entity", &q.entity), ("reason", &q.reason), ("bucket", &q.bucket)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            query.push(format!("{k}={}", urlencode(v)));
        }
    }
    let query = query.join("&");
    let pages = (total as u64).div_ceil(u64::from(LEDGER_PAGE));
    page(
        "run.html",
        &session,
        Some((&p, "runs")),
        json!({
            "run": views::run(&view), "rows": rows, "total": total, "page": page_no, "pages": pages,
            "prev": page_no.checked_sub(1), "next": if u64::from(page_no) + 1 < pages { Some(page_no + 1) } else { None },
            "entities": entities, "reasons": reasons, "query": query,
            "f": {"entity": q.entity, "reason": q.reason, "bucket": q.bucket},
        }),
    )
}

/// Percent-encodes a query value.
pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The ledger as CSV, as a download.
pub(crate) fn csv_response(key: &str, run: i64, rows: &[cutover_store::LedgerRow]) -> Result<Response, WebError> {
    let mut out = Vec::new();
    cutover_app::write_ledger_csv(&mut out, rows).map_err(|_| WebError::internal("csv"))?;
    let mut res = out.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    let name = format!("attachment; filename=\"{key}-run-{run}-not-migrated.csv\"");
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&name).map_err(|_| WebError::internal("header"))?);
    Ok(res)
}

/// `GET /projects/{key}/runs/{run}/not-migrated.csv`: every matching record with its original values.
pub async fn run_csv(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path((key, run)): Path<(String, i64)>,
    Query(q): Query<LedgerQuery>,
) -> PageResult {
    let k = ProjectKey::parse(&key).map_err(WebError::from)?;
    let (rows, _) = s.app.not_migrated(&session.user, &k, run, &q.filter(None)?).await.map_err(WebError::from)?;
    Ok(csv_response(k.as_str(), run, &rows)?)
}

/// `GET /projects/{key}/verifications`.
pub async fn verifications(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path(key): Path<String>,
) -> PageResult {
    let p = s.project(&session.user, &key).await?;
    page(
        "verifications.html",
        &session,
        Some((&p, "verifications")),
        json!({"verifications": views::verifications(&p)}),
    )
}

/// `GET /projects/{key}/verifications/{id}`: counts, totals, differences and the side-by-side spot-check.
pub async fn verification(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path((key, id)): Path<(String, i64)>,
) -> PageResult {
    let p = s.project(&session.user, &key).await?;
    let report = s.app.verification(&session.user, &p.key, id).await.map_err(WebError::from)?;
    // The spot-check pairs each v1 field with what v2 holds, row by row.
    let samples: Vec<Value> = report
        .samples
        .iter()
        .map(|smp| {
            let v1: Vec<Value> = smp.v1.iter().map(|(k, v)| json!([k, v.to_string()])).collect();
            let v2: Vec<Value> =
                smp.v2.iter().filter(|(k, _)| *k != "account_id").map(|(k, v)| json!([k, v.to_string()])).collect();
            let n = v1.len().max(v2.len());
            let pairs: Vec<Value> = (0..n).map(|i| json!([v1.get(i), v2.get(i)])).collect();
            json!({"entity": smp.entity, "legacy_ref": smp.legacy_ref, "pairs": pairs, "missing": smp.v2.is_empty()})
        })
        .collect();
    let meta = p
        .verifications
        .iter()
        .find(|v| i64::from(v.id) == id)
        .map(|v| json!({"id": v.id, "by": v.by, "at": views::when(v.at), "clean": v.clean, "summary": v.summary}));
    page(
        "verification.html",
        &session,
        Some((&p, "verifications")),
        json!({"v": meta, "report": report, "clean": report.clean(), "samples": samples}),
    )
}

/// `GET /projects/{key}/checklist`.
pub async fn checklist(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path(key): Path<String>,
    Query(d): Query<Done>,
) -> PageResult {
    let p = s.project(&session.user, &key).await?;
    page(
        "checklist.html",
        &session,
        Some((&p, "checklist")),
        json!({"checklist": views::checklist(&p), "done": done_text(&d)}),
    )
}

/// A checklist result.
#[derive(Debug, Deserialize)]
pub struct ItemForm {
    csrf: String,
    status: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    evidence: Option<String>,
}

/// Builds the update from form or JSON input: one parser for both.
pub(crate) fn item_update(status: &str, note: Option<String>, evidence: Vec<String>) -> Result<ItemUpdate, WebError> {
    let status = ItemStatus::parse(status)?;
    let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    let evidence: Vec<String> = evidence.into_iter().map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect();
    for e in &evidence {
        cutover_core::checklist::validate_evidence(e)?;
    }
    Ok(ItemUpdate { status, note, evidence })
}

/// `POST /projects/{key}/checklist/{item}`.
pub async fn checklist_set(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path((key, item)): Path<(String, String)>,
    Form(f): Form<ItemForm>,
) -> PageResult {
    session.check_csrf(&f.csrf)?;
    let evidence = f.evidence.unwrap_or_default().split([',', ' ']).map(str::to_owned).collect();
    let update = item_update(&f.status, f.note, evidence)?;
    s.act(&session.user, &key, Command::ChecklistSet { item, update }).await?;
    Ok(back(&key, "checklist", "item"))
}

/// A new checklist item.
#[derive(Debug, Deserialize)]
pub struct AddItemForm {
    csrf: String,
    title: String,
}

/// `POST /projects/{key}/checklist`: adds an item of the user's party.
pub async fn checklist_add(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path(key): Path<String>,
    Form(f): Form<AddItemForm>,
) -> PageResult {
    session.check_csrf(&f.csrf)?;
    let title = Text::parse(&f.title).map_err(WebError::from)?;
    s.act(&session.user, &key, Command::ChecklistAdd { title }).await?;
    Ok(back(&key, "checklist", "added"))
}

/// A form with only its token.
#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

/// `POST /projects/{key}/checklist/accept`.
pub async fn checklist_accept(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path(key): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> PageResult {
    session.check_csrf(&f.csrf)?;
    s.act(&session.user, &key, Command::ChecklistAccept).await?;
    Ok(back(&key, "checklist", "accepted"))
}

/// An activity's new status.
#[derive(Debug, Deserialize)]
pub struct ActivityForm {
    csrf: String,
    status: String,
}

/// `POST /projects/{key}/plan/{id}`.
pub async fn activity_set(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path((key, id)): Path<(String, String)>,
    Form(f): Form<ActivityForm>,
) -> PageResult {
    session.check_csrf(&f.csrf)?;
    let cmd = Command::SetActivityStatus {
        id: ActivityId::parse(&id).map_err(WebError::from)?,
        status: ActivityStatus::parse(&f.status).map_err(WebError::from)?,
    };
    s.act(&session.user, &key, cmd).await?;
    Ok(back(&key, "plan", "activity"))
}

/// Time against the retainer.
#[derive(Debug, Deserialize)]
pub struct TimeForm {
    csrf: String,
    activity: String,
    hours: String,
    date: String,
    #[serde(default)]
    note: Option<String>,
}

/// Parses time input from the form or the API: one parser for both.
pub(crate) fn log_time(activity: &str, hours: &str, date: &str, note: Option<String>) -> Result<Command, WebError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(date.trim(), format)
        .map_err(|_| WebError::invalid(format!("date '{date}' is not a day such as 2026-11-25")))?;
    Ok(Command::LogTime {
        activity: ActivityId::parse(activity)?,
        hours: Hours::parse(hours)?,
        date,
        note: note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()),
    })
}

/// `POST /projects/{key}/time` (vendor only; the core decides).
pub async fn time_log(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path(key): Path<String>,
    Form(f): Form<TimeForm>,
) -> PageResult {
    session.check_csrf(&f.csrf)?;
    let cmd = log_time(&f.activity, &f.hours, &f.date, f.note)?;
    s.act(&session.user, &key, cmd).await?;
    Ok(back(&key, "retainer", "time"))
}

/// `GET /projects/{key}/preview`: what the final migration would overwrite now.
pub async fn preview(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path(key): Path<String>,
) -> PageResult {
    let p = s.project(&session.user, &key).await?;
    let (preview, error) = match s.app.preview(&session.user, &p.key).await {
        Ok(pr) => {
            let counts: Vec<Value> = pr
                .counts()
                .into_iter()
                .map(|(t, [c, n, d])| json!({"table": t, "changed": c, "created": n, "deleted": d}))
                .collect();
            (Some(json!({"id": pr.id, "rows_checked": pr.rows_checked, "items": pr.items, "counts": counts})), None)
        }
        // A project without a v2 account yet has nothing to preview: say so on the page.
        Err(e @ (cutover_app::AppError::Config(_) | cutover_app::AppError::Domain(_))) => (None, Some(e.to_string())),
        Err(e) => return Err(WebError::from(e).into()),
    };
    page("preview.html", &session, Some((&p, "preview")), json!({"preview": preview, "error": error}))
}

/// `GET /projects/{key}/recovery`.
pub async fn recovery(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path(key): Path<String>,
) -> PageResult {
    let p = s.project(&session.user, &key).await?;
    let bundles = s.app.recovery_bundles(&session.user, &p.key).await.map_err(WebError::from)?;
    page("recovery.html", &session, Some((&p, "recovery")), json!({"bundles": views::recovery(&bundles)}))
}

/// `GET /projects/{key}/retainer`: the chart, the entries and the extras.
pub async fn retainer(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path(key): Path<String>,
    Query(d): Query<Done>,
) -> PageResult {
    let p = s.project(&session.user, &key).await?;
    let today = time::OffsetDateTime::now_utc().date();
    let activities: Vec<Value> = p.plan.activities.iter().map(|a| json!({"id": a.id, "title": a.title})).collect();
    page(
        "retainer.html",
        &session,
        Some((&p, "retainer")),
        json!({"retainer": views::retainer(&p), "chart": chart::retainer_svg(&p, today), "done": done_text(&d),
               "activities": activities, "today": today.to_string()}),
    )
}

/// `GET /projects/{key}/retainer.svg`.
pub async fn retainer_svg(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path(key): Path<String>,
) -> PageResult {
    let p = s.project(&session.user, &key).await?;
    let svg = chart::retainer_svg(&p, time::OffsetDateTime::now_utc().date());
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

/// `GET /projects/{key}/audit`: the hash-chained log, checked on every view.
pub async fn audit(
    State(s): State<WebState>,
    PageSession(session): PageSession,
    Path(key): Path<String>,
) -> PageResult {
    let p = s.project(&session.user, &key).await?;
    let entries = s.app.audit(&session.user, Some(&p.key)).await.map_err(WebError::from)?;
    let broken = cutover_core::audit::verify(&entries).err().map(|b| b.seq);
    page("audit.html", &session, Some((&p, "audit")), json!({"audit": views::audit(&entries, broken)}))
}

/// Any other path: a JSON error under `/api/`, a page elsewhere.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    let e =
        |what: &str| WebError::new(axum::http::StatusCode::NOT_FOUND, "not_found", format!("there is no such {what}"));
    if uri.path().starts_with("/api/") { e("API route").into_response() } else { PageError(e("page")).into_response() }
}

/// `GET /static/style.css`.
pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../templates/style.css"))
}
