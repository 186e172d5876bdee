//! The JSON API through `app(state)`, request by request, on SQLite and PostgreSQL.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use cutover_app::App;
use cutover_testkit::TestDb;
use cutover_web::{WebState, app};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::fixture::{CARL, CORA, OTTO, PW, VERA, VIDAR, world};

async fn call(
    a: &App,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    call_with(&WebState::new(a.clone()), method, uri, cookie, body).await
}

async fn call_with(
    state: &WebState,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    let body = match body {
        Some(b) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let res = app(state.clone()).oneshot(req.body(body).unwrap()).await.unwrap();
    let status = res.status();
    let set_cookie = res.headers().get(header::SET_COOKIE).map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, set_cookie, json)
}

async fn login(a: &App, email: &str) -> String {
    let (status, cookie, body) =
        call(a, "POST", "/api/login", None, Some(json!({"email": email, "password": PW}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let c = cookie.unwrap();
    assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict"), "{c}");
    c.split(';').next().unwrap().to_owned()
}

fn each_backend<F, Fut>(f: F)
where
    F: Fn(App) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for db in TestDb::all() {
        eprintln!("api test on {}", db.backend());
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let a = world(&db.url, dir.path()).await;
            f(a.clone()).await;
            a.store().close().await;
        });
    }
}

#[test]
fn login_sets_a_session_and_wrong_passwords_do_not() {
    each_backend(|a| async move {
        let (s, cookie, body) =
            call(&a, "POST", "/api/login", None, Some(json!({"email": CORA, "password": "wrong password!"}))).await;
        assert_eq!(
            (s, cookie, body["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, None, Some("bad_credentials"))
        );
        let (s, _, body) =
            call(&a, "POST", "/api/login", None, Some(json!({"email": "nobody@x.no", "password": PW}))).await;
        assert_eq!((s, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("bad_credentials")));
        let c = login(&a, CORA).await;
        let (s, _, me) = call(&a, "GET", "/api/me", Some(&c), None).await;
        assert_eq!((s, me["email"].as_str()), (StatusCode::OK, Some(CORA)));
        // Logging out ends the session for good.
        let (s, cleared, _) = call(&a, "POST", "/api/logout", Some(&c), None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        assert!(cleared.unwrap().contains("Max-Age=0"));
        assert_eq!(call(&a, "GET", "/api/me", Some(&c), None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(&a, "GET", "/api/me", Some("cutover_session=forged"), None).await.0, StatusCode::UNAUTHORIZED);
    });
}

#[test]
fn customers_see_only_their_organisation_and_secrets_stay_masked() {
    each_backend(|a| async move {
        assert_eq!(call(&a, "GET", "/api/projects", None, None).await.0, StatusCode::UNAUTHORIZED);
        let vendor = login(&a, VERA).await;
        let (_, _, all) = call(&a, "GET", "/api/projects", Some(&vendor), None).await;
        assert_eq!(all.as_array().unwrap().len(), 2);
        let (_, _, other) = call(&a, "GET", "/api/projects/other", Some(&vendor), None).await;
        assert_eq!(other["phase"], "plan");
        assert_eq!(other["blocked_by"].as_array().unwrap().len(), 4, "{other}");
        assert_eq!(other["v1_url"], "postgres://u:***@h/v1");
        assert!(!other.to_string().contains("secret"));
        let cora = login(&a, CORA).await;
        let (_, _, mine) = call(&a, "GET", "/api/projects", Some(&cora), None).await;
        let keys: Vec<&str> = mine.as_array().unwrap().iter().map(|p| p["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["acme"]);
        let (s, _, p) = call(&a, "GET", "/api/projects/acme", Some(&cora), None).await;
        assert_eq!((s, p["phase"].as_str()), (StatusCode::OK, Some("parallel")));
        assert_eq!(p["timeline"]["phases"][2]["state"], "current");
        let (s, _, err) = call(&a, "GET", "/api/projects/other", Some(&cora), None).await;
        assert_eq!((s, err["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
        // Nothing of another organisation's project leaks through any of its routes.
        for route in ["plan", "contracts", "checklist", "runs", "audit", "retainer"] {
            let (s, _, body) = call(&a, "GET", &format!("/api/projects/other/{route}"), Some(&cora), None).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{route}");
            assert!(!body.to_string().contains("Other to Omikai"), "{route}: {body}");
        }
        assert_eq!(call(&a, "GET", "/api/projects/Bad%20Key", Some(&cora), None).await.0, StatusCode::BAD_REQUEST);
    });
}

/// Every API route, for (in this order) anonymous, customer member, customer admin, another
/// organisation's customer admin, vendor member and vendor admin. Rows run in order, so a row
/// may depend on what an earlier row did.
const AUTHZ: &[(&str, &str, Option<&str>, [u16; 6])] = &[
    ("POST", "/api/login", Some(r#"{"email":"nobody@x.no","password":"x"}"#), [401, 401, 401, 401, 401, 401]),
    ("GET", "/api/openapi.json", None, [200, 200, 200, 200, 200, 200]),
    ("GET", "/api/me", None, [401, 200, 200, 200, 200, 200]),
    ("GET", "/api/projects", None, [401, 200, 200, 200, 200, 200]),
    ("GET", "/api/projects/{key}", None, [401, 200, 200, 404, 200, 200]),
    ("GET", "/api/projects/{key}/plan", None, [401, 200, 200, 404, 200, 200]),
    // Customers record progress on customer activities; vendors on all.
    (
        "POST",
        "/api/projects/{key}/plan/{activity}",
        Some(r#"{"status":"in-progress"}"#),
        [401, 200, 200, 404, 200, 200],
    ),
    ("GET", "/api/projects/{key}/contracts", None, [401, 200, 200, 404, 200, 200]),
    ("GET", "/api/projects/{key}/contracts/{kind}", None, [401, 200, 200, 404, 200, 200]),
    // Members may not sign; admins may, but the migration contract only in the plan phase.
    ("POST", "/api/projects/{key}/contracts/{kind}/sign", Some("{}"), [401, 403, 409, 404, 403, 409]),
    ("GET", "/api/projects/{key}/checklist", None, [401, 200, 200, 404, 200, 200]),
    ("POST", "/api/projects/{key}/checklist", Some(r#"{"title":"Invoices print"}"#), [401, 200, 200, 404, 200, 200]),
    // C1 is a customer test: the vendor cannot record its result.
    ("POST", "/api/projects/{key}/checklist/{item}", Some(r#"{"status":"passed"}"#), [401, 200, 200, 404, 403, 403]),
    // Only admins accept, and not while items are open.
    ("POST", "/api/projects/{key}/checklist/accept", None, [401, 403, 409, 404, 403, 409]),
    ("GET", "/api/projects/{key}/runs", None, [401, 200, 200, 404, 200, 200]),
    ("GET", "/api/projects/{key}/runs/{run}", None, [401, 200, 200, 404, 200, 200]),
    ("GET", "/api/projects/{key}/runs/{run}/not-migrated", None, [401, 200, 200, 404, 200, 200]),
    ("GET", "/api/projects/{key}/verifications", None, [401, 200, 200, 404, 200, 200]),
    ("GET", "/api/projects/{key}/verifications/{id}", None, [401, 200, 200, 404, 200, 200]),
    ("GET", "/api/projects/{key}/preview", None, [401, 200, 200, 404, 200, 200]),
    ("GET", "/api/projects/{key}/recovery", None, [401, 200, 200, 404, 200, 200]),
    ("GET", "/api/projects/{key}/retainer", None, [401, 200, 200, 404, 200, 200]),
    (
        "POST",
        "/api/projects/{key}/time",
        Some(r#"{"activity":"A1","hours":"1.5","date":"2026-11-20"}"#),
        [401, 403, 403, 404, 200, 200],
    ),
    ("GET", "/api/projects/{key}/audit", None, [401, 200, 200, 404, 200, 200]),
    ("POST", "/api/logout", None, [204, 204, 204, 204, 204, 204]),
];

fn concrete(route: &str) -> String {
    route
        .replace("{key}", "acme")
        .replace("{activity}", "A5")
        .replace("{kind}", "migration")
        .replace("{item}", "C1")
        .replace("{run}", "1")
        .replace("{id}", "1")
}

#[test]
fn every_route_for_every_role() {
    // The table covers exactly the routes the API serves and documents.
    let mut routes: Vec<(&str, &str)> = cutover_web::api::ROUTES.iter().map(|r| (r.method, r.path)).collect();
    let mut covered: Vec<(&str, &str)> = AUTHZ.iter().map(|r| (r.0, r.1)).collect();
    routes.sort_unstable();
    covered.sort_unstable();
    assert_eq!(covered, routes);
    each_backend(|a| async move {
        let who = [None, Some(CARL), Some(CORA), Some(OTTO), Some(VIDAR), Some(VERA)];
        for (method, route, body, expected) in AUTHZ {
            for (user, want) in who.iter().zip(expected) {
                let cookie = match user {
                    Some(u) => Some(login(&a, u).await),
                    None => None,
                };
                let body = body.map(|b| serde_json::from_str::<Value>(b).unwrap());
                let uri = concrete(route);
                let (status, _, answer) = call(&a, method, &uri, cookie.as_deref(), body).await;
                assert_eq!(status.as_u16(), *want, "{method} {uri} as {user:?}: {answer}");
                if status.is_client_error() && status.as_u16() != 401 || status.as_u16() == 409 {
                    assert!(answer["error"]["code"].is_string(), "{method} {uri}: {answer}");
                }
            }
        }
        // What each sees in the list.
        for (u, n) in [(CARL, 1), (OTTO, 1), (VIDAR, 2)] {
            let c = login(&a, u).await;
            assert_eq!(call(&a, "GET", "/api/projects", Some(&c), None).await.2.as_array().unwrap().len(), n, "{u}");
        }
    });
}

#[test]
fn the_not_migrated_list_filters_and_downloads_as_csv() {
    each_backend(|a| async move {
        let c = login(&a, CARL).await;
        let (_, _, all) = call(&a, "GET", "/api/projects/acme/runs/1/not-migrated", Some(&c), None).await;
        let total = all["total"].as_i64().unwrap();
        assert!(total > 0, "{all}");
        let (_, _, rejected) =
            call(&a, "GET", "/api/projects/acme/runs/1/not-migrated?bucket=rejected", Some(&c), None).await;
        let rows = rejected["rows"].as_array().unwrap();
        assert!(!rows.is_empty() && rows.iter().all(|r| r["bucket"] == "rejected"), "{rejected}");
        let reason = rows[0]["reason"].as_str().unwrap().to_owned();
        let (_, _, by_reason) =
            call(&a, "GET", &format!("/api/projects/acme/runs/1/not-migrated?reason={reason}"), Some(&c), None).await;
        assert!(by_reason["rows"].as_array().unwrap().iter().all(|r| r["reason"] == reason.as_str()));
        // The CSV holds every matching record (no paging), one line each plus the header.
        let (s, _, csv) = call(&a, "GET", "/api/projects/acme/runs/1/not-migrated?format=csv", Some(&c), None).await;
        assert_eq!(s, StatusCode::OK);
        let csv = csv.as_str().unwrap();
        assert!(csv.starts_with("entity,legacy_ref,key,bucket,reason,message,original\n"), "{csv}");
        let records = csv.lines().count() as i64 - 1;
        assert!(records >= total, "CSV has {records} lines for {total} records");
        let (s, _, err) = call(&a, "GET", "/api/projects/acme/runs/1/not-migrated?bucket=lost", Some(&c), None).await;
        assert_eq!((s, err["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_input")));
    });
}

#[test]
fn the_openapi_document_lists_every_route() {
    let doc = cutover_web::api::openapi_document();
    assert_eq!(doc["openapi"], "3.1.0");
    for r in cutover_web::api::ROUTES {
        let op = &doc["paths"][r.path][r.method.to_lowercase()];
        assert!(op["responses"].is_object(), "{} {} is not documented", r.method, r.path);
        if let Some(body) = r.body {
            assert!(doc["components"]["schemas"][body].is_object(), "schema {body}");
        }
    }
    let ids: std::collections::BTreeSet<String> = cutover_web::api::ROUTES
        .iter()
        .map(|r| doc["paths"][r.path][r.method.to_lowercase()]["operationId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), cutover_web::api::ROUTES.len(), "operation ids are unique");
}

#[test]
fn pages_need_a_session_and_forms_need_the_csrf_token() {
    each_backend(|a| async move {
        let state = WebState::new(a.clone());
        let page = |uri: &str, cookie: Option<&str>, form: Option<&str>| {
            let mut req = Request::builder().uri(uri).method(if form.is_some() { "POST" } else { "GET" });
            if let Some(c) = cookie {
                req = req.header(header::COOKIE, c);
            }
            if form.is_some() {
                req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            }
            let req = req.body(Body::from(form.unwrap_or("").to_owned())).unwrap();
            let app = app(state.clone());
            async move {
                let res = app.oneshot(req).await.unwrap();
                let status = res.status();
                let location = res.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_owned());
                let bytes = axum::body::to_bytes(res.into_body(), 1 << 22).await.unwrap();
                (status, location, String::from_utf8_lossy(&bytes).into_owned())
            }
        };
        let (s, location, _) = page("/projects/acme", None, None).await;
        assert_eq!((s, location.as_deref()), (StatusCode::SEE_OTHER, Some("/login")));
        let cora = login(&a, CORA).await;
        let (s, _, html) = page("/projects/acme/checklist", Some(&cora), None).await;
        assert_eq!(s, StatusCode::OK);
        let token = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        // Without the token, or with another session's, the form is refused and nothing changes.
        let before = a.audit(&a.actor(Some(CORA)).await.unwrap(), Some(&"acme".parse_key())).await.unwrap().len();
        for bad in ["", "0000", &token[1..]] {
            let form = format!("csrf={bad}&title=Injected");
            let (s, _, html) = page("/projects/acme/checklist", Some(&cora), Some(&form)).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{html}");
            assert!(html.contains("data-code=\"csrf\""), "{html}");
        }
        let carl = login(&a, CARL).await;
        let form = format!("csrf={token}&title=Injected");
        assert_eq!(page("/projects/acme/checklist", Some(&carl), Some(&form)).await.0, StatusCode::FORBIDDEN);
        let after = a.audit(&a.actor(Some(CORA)).await.unwrap(), Some(&"acme".parse_key())).await.unwrap().len();
        assert_eq!(before, after);
        // With it, the item is added and the browser goes back to the checklist.
        let (s, location, _) = page("/projects/acme/checklist", Some(&cora), Some(&form)).await;
        assert_eq!((s, location.as_deref()), (StatusCode::SEE_OTHER, Some("/projects/acme/checklist?done=added")));
        // The login form has its own token, a double-submit cookie.
        let (s, _, html) = page("/login", None, Some(&format!("csrf=abc&email={CORA}&password={PW}"))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{html}");
    });
}

trait ParseKey {
    fn parse_key(&self) -> cutover_core::ProjectKey;
}

impl ParseKey for &str {
    fn parse_key(&self) -> cutover_core::ProjectKey {
        cutover_core::ProjectKey::parse(self).unwrap()
    }
}

#[test]
fn logins_are_rate_limited_per_account() {
    each_backend(|a| async move {
        let state = WebState::new(a.clone());
        let bad = json!({"email": CORA, "password": "not the password"});
        for _ in 0..cutover_web::LOGIN_ATTEMPTS {
            assert_eq!(
                call_with(&state, "POST", "/api/login", None, Some(bad.clone())).await.0,
                StatusCode::UNAUTHORIZED
            );
        }
        let good = json!({"email": CORA, "password": PW});
        let (s, cookie, body) = call_with(&state, "POST", "/api/login", None, Some(good)).await;
        assert_eq!(
            (s, cookie, body["error"]["code"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, None, Some("too_many_attempts"))
        );
        // Other accounts are not locked out.
        let other = json!({"email": OTTO, "password": PW});
        assert_eq!(call_with(&state, "POST", "/api/login", None, Some(other)).await.0, StatusCode::OK);
    });
}

#[test]
fn the_project_list_follows_every_change() {
    each_backend(|a| async move {
        let vera = login(&a, VERA).await;
        let blocked =
            |v: &Value| v.as_array().unwrap().iter().find(|p| p["key"] == "acme").unwrap()["blocked_by"].clone();
        let (_, _, before) = call(&a, "GET", "/api/projects", Some(&vera), None).await;
        let (_, _, again) = call(&a, "GET", "/api/projects", Some(&vera), None).await;
        assert_eq!(before, again);
        let n = blocked(&before).as_array().unwrap().len();
        // A change through the API shows in the next listing, for the vendor and the customer alike.
        let (s, _, _) =
            call(&a, "POST", "/api/projects/acme/checklist", Some(&vera), Some(json!({"title": "Backups restore"})))
                .await;
        assert_eq!(s, StatusCode::OK);
        let (_, _, after) = call(&a, "GET", "/api/projects", Some(&vera), None).await;
        assert_eq!(blocked(&after).as_array().unwrap().len(), n + 1, "{after}");
        // So does a change made outside the portal (the CLI uses the same store).
        let cora = a.actor(Some(CORA)).await.unwrap();
        let key = cutover_core::ProjectKey::parse("acme").unwrap();
        let title = cutover_core::Text::parse("Payroll export").unwrap();
        a.execute(&cora, &key, cutover_core::Command::ChecklistAdd { title }).await.unwrap();
        let c = login(&a, CORA).await;
        let (_, _, mine) = call(&a, "GET", "/api/projects", Some(&c), None).await;
        assert_eq!(blocked(&mine).as_array().unwrap().len(), n + 2, "{mine}");
        let (_, _, all) = call(&a, "GET", "/api/projects", Some(&vera), None).await;
        assert_eq!(blocked(&all).as_array().unwrap().len(), n + 2, "{all}");
    });
}

#[test]
fn sessions_expire_and_connection_passwords_stay_masked_on_pages() {
    each_backend(|a| async move {
        let vera = login(&a, VERA).await;
        assert_eq!(call(&a, "GET", "/api/me", Some(&vera), None).await.0, StatusCode::OK);
        // The project page shows where v1 is, its password masked.
        let req = Request::builder().uri("/projects/other").header(header::COOKIE, &vera).body(Body::empty()).unwrap();
        let res = app(WebState::new(a.clone())).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let html = String::from_utf8_lossy(&axum::body::to_bytes(res.into_body(), 1 << 22).await.unwrap()).into_owned();
        assert!(html.contains("u:***@h") && !html.contains("secret"), "{html}");
        // Eight hours on, every session has expired: the same cookie is refused.
        a.store().execute_raw("UPDATE sessions SET expires_at = 1").await.unwrap();
        let (s, _, body) = call(&a, "GET", "/api/me", Some(&vera), None).await;
        assert_eq!((s, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthenticated")), "{body}");
    });
}

/// A migration of a hostile legacy database: every injection string it holds reaches the
/// pages escaped, in the "not migrated" list and in the verification's side-by-side sample.
#[test]
fn hostile_data_reaches_the_pages_escaped() {
    each_backend(|a| async move {
        let dir = tempfile::tempdir().unwrap();
        let v1 = dir.path().join("hostile.db");
        cutover_demo::hostile(&v1, cutover_demo::Spec { customers: 20, seed: 4, cutoff: cutover_demo::DEFAULT_CUTOFF })
            .unwrap();
        let vera = a.actor(Some(VERA)).await.unwrap();
        let cora = a.actor(Some(CORA)).await.unwrap();
        let key = cutover_core::ProjectKey::parse("hostile").unwrap();
        let spec = cutover_app::ProjectSpec {
            key: key.clone(),
            name: cutover_core::Text::parse("Hostile data").unwrap(),
            org: cutover_core::OrgName::parse("Acme").unwrap(),
            pack: "omikai".into(),
            v1_url: Some(v1.display().to_string()),
            v2_url: Some(dir.path().join("v2.db").display().to_string()),
        };
        a.create_project(&vera, spec).await.unwrap();
        for kind in [cutover_core::documents::DocKind::Migration, cutover_core::documents::DocKind::License] {
            a.execute(&vera, &key, cutover_core::Command::Sign { kind, party: None }).await.unwrap();
            a.execute(&cora, &key, cutover_core::Command::Sign { kind, party: None }).await.unwrap();
        }
        let req = cutover_app::MigrateRequest {
            kind: cutover_core::RunKind::First,
            dry_run: false,
            reason: None,
            progress: false,
            ack_overwrite: None,
        };
        let done = a.migrate(&vera, &key, req).await.unwrap();
        a.verify(&vera, &key, cutover_engine::verify::VerifyOptions { entity: Some("customer".into()), sample: 200 })
            .await
            .unwrap();
        let c = login(&a, VERA).await;
        for uri in [
            format!("/projects/hostile/runs/{}?reason=missing_key", done.run),
            format!("/projects/hostile/runs/{}?entity=job&reason=orphan", done.run),
            "/projects/hostile/verifications/1".to_owned(),
        ] {
            let req = Request::builder().uri(&uri).header(header::COOKIE, &c).body(Body::empty()).unwrap();
            let res = app(WebState::new(a.clone())).oneshot(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{uri}");
            let html =
                String::from_utf8_lossy(&axum::body::to_bytes(res.into_body(), 1 << 26).await.unwrap()).into_owned();
            for raw in ["<script>alert", "<img src=x", "onerror=alert(1)>"] {
                assert!(!html.contains(raw), "{uri}: {raw} unescaped");
            }
            assert!(
                html.contains("&lt;script&gt;alert") || html.contains("&lt;img src=x"),
                "{uri}: escaped form shown"
            );
        }
    });
}

#[test]
fn malformed_requests_get_the_api_error_shape() {
    each_backend(|a| async move {
        let vera = login(&a, VERA).await;
        let send = |method: &str, uri: &str, ctype: Option<&str>, body: &str| {
            let mut req = Request::builder().method(method).uri(uri).header(header::COOKIE, &vera);
            if let Some(t) = ctype {
                req = req.header(header::CONTENT_TYPE, t);
            }
            let req = req.body(Body::from(body.to_owned())).unwrap();
            let app = app(WebState::new(a.clone()));
            async move {
                let res = app.oneshot(req).await.unwrap();
                let status = res.status();
                let json: Value =
                    serde_json::from_slice(&axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap()).unwrap();
                (status, json["error"]["code"].as_str().unwrap_or_default().to_owned())
            }
        };
        let cases = [
            ("GET", "/api/projects/acme/runs/not-a-number", None, "", StatusCode::BAD_REQUEST, "invalid_input"),
            ("GET", "/api/projects/acme/runs/1/not-migrated?page=", None, "", StatusCode::BAD_REQUEST, "invalid_input"),
            (
                "POST",
                "/api/projects/acme/checklist",
                Some("text/plain"),
                "x",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            (
                "POST",
                "/api/projects/acme/checklist",
                Some("application/json"),
                "[null]",
                StatusCode::BAD_REQUEST,
                "invalid_input",
            ),
            (
                "POST",
                "/api/projects/acme/checklist",
                Some("application/json"),
                "{",
                StatusCode::BAD_REQUEST,
                "invalid_input",
            ),
        ];
        for (method, uri, ctype, body, status, code) in cases {
            assert_eq!(send(method, uri, ctype, body).await, (status, code.to_owned()), "{method} {uri} {body}");
        }
    });
}
