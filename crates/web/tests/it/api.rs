//! The JSON API through `app(state)`, request by request, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use cutover_app::{App, NewUser, Packs, ProjectSpec};
use cutover_core::{Email, OrgName, PartyKind, ProjectKey, Role, Text};
use cutover_testkit::TestDb;
use cutover_web::{WebState, app};
use serde_json::Value;
use tower::ServiceExt;

const PW: &str = "correct horse battery";

async fn setup(db: &TestDb) -> App {
    let a = App::open(&db.url, Packs::Builtin).await.unwrap();
    let user = |email: &str, party, org: Option<&str>| NewUser {
        email: Email::parse(email).unwrap(),
        name: Text::parse("N").unwrap(),
        party,
        org: org.map(|o| OrgName::parse(o).unwrap()),
        role: Role::Admin,
        password: Some(PW.into()),
    };
    let v = a.add_user(None, user("vera@vendor.no", PartyKind::Vendor, None)).await.unwrap();
    a.add_user(Some(&v), user("cora@acme.no", PartyKind::Customer, Some("Acme"))).await.unwrap();
    a.add_user(Some(&v), user("otto@other.no", PartyKind::Customer, Some("Other"))).await.unwrap();
    a.add_user(Some(&v), NewUser { role: Role::Member, ..user("carl@acme.no", PartyKind::Customer, Some("Acme")) })
        .await
        .unwrap();
    a.add_user(Some(&v), NewUser { role: Role::Member, ..user("vidar@vendor.no", PartyKind::Vendor, None) })
        .await
        .unwrap();
    for (k, org) in [("acme", "Acme"), ("other", "Other")] {
        let spec = ProjectSpec {
            key: ProjectKey::parse(k).unwrap(),
            name: Text::parse(k).unwrap(),
            org: OrgName::parse(org).unwrap(),
            pack: "omikai".into(),
            v1_url: Some("postgres://u:secret@h/v1".into()),
            v2_url: None,
        };
        a.create_project(&v, spec).await.unwrap();
    }
    a
}

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
    let json = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    (status, set_cookie, json)
}

async fn login(a: &App, email: &str) -> String {
    let (status, cookie, body) =
        call(a, "POST", "/api/login", None, Some(serde_json::json!({"email": email, "password": PW}))).await;
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
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let a = setup(&db).await;
            f(a.clone()).await;
            a.store().close().await;
        });
    }
}

#[test]
fn login_sets_a_session_and_wrong_passwords_do_not() {
    each_backend(|a| async move {
        let (s, cookie, body) = call(
            &a,
            "POST",
            "/api/login",
            None,
            Some(serde_json::json!({"email": "cora@acme.no", "password": "wrong password!"})),
        )
        .await;
        assert_eq!(
            (s, cookie, body["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, None, Some("bad_credentials"))
        );
        let (s, _, body) =
            call(&a, "POST", "/api/login", None, Some(serde_json::json!({"email": "nobody@x.no", "password": PW})))
                .await;
        assert_eq!((s, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("bad_credentials")));
        let c = login(&a, "cora@acme.no").await;
        let (s, _, me) = call(&a, "GET", "/api/me", Some(&c), None).await;
        assert_eq!((s, me["email"].as_str()), (StatusCode::OK, Some("cora@acme.no")));
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
        let vendor = login(&a, "vera@vendor.no").await;
        let (_, _, all) = call(&a, "GET", "/api/projects", Some(&vendor), None).await;
        assert_eq!(all.as_array().unwrap().len(), 2);
        let cora = login(&a, "cora@acme.no").await;
        let (_, _, mine) = call(&a, "GET", "/api/projects", Some(&cora), None).await;
        let keys: Vec<&str> = mine.as_array().unwrap().iter().map(|p| p["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["acme"]);
        let (s, _, p) = call(&a, "GET", "/api/projects/acme", Some(&cora), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(p["phase"], "plan");
        assert_eq!(p["blocked_by"].as_array().unwrap().len(), 4);
        assert_eq!(p["v1_url"], "postgres://u:***@h/v1");
        assert!(!p.to_string().contains("secret"));
        let (s, _, err) = call(&a, "GET", "/api/projects/other", Some(&cora), None).await;
        assert_eq!((s, err["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
        assert_eq!(call(&a, "GET", "/api/projects/Bad%20Key", Some(&cora), None).await.0, StatusCode::BAD_REQUEST);
    });
}

#[test]
fn every_route_for_every_role() {
    each_backend(|a| async move {
        // (who, route, method, expected status), for anonymous, customer member, customer admin,
        // another organisation's customer, vendor member and vendor admin.
        let who = [
            None,
            Some("carl@acme.no"),
            Some("cora@acme.no"),
            Some("otto@other.no"),
            Some("vidar@vendor.no"),
            Some("vera@vendor.no"),
        ];
        let table: [(&str, &str, [u16; 6]); 4] = [
            ("GET", "/api/me", [401, 200, 200, 200, 200, 200]),
            ("GET", "/api/projects", [401, 200, 200, 200, 200, 200]),
            ("GET", "/api/projects/acme", [401, 200, 200, 404, 200, 200]),
            ("POST", "/api/logout", [204, 204, 204, 204, 204, 204]),
        ];
        for (method, route, expected) in table {
            for (user, want) in who.iter().zip(expected) {
                let cookie = match user {
                    Some(u) => Some(login(&a, u).await),
                    None => None,
                };
                let (status, _, body) = call(&a, method, route, cookie.as_deref(), None).await;
                assert_eq!(status.as_u16(), want, "{method} {route} as {user:?}: {body}");
            }
        }
        // What each sees in the list.
        for (u, n) in [("carl@acme.no", 1), ("otto@other.no", 1), ("vidar@vendor.no", 2)] {
            let c = login(&a, u).await;
            assert_eq!(call(&a, "GET", "/api/projects", Some(&c), None).await.2.as_array().unwrap().len(), n, "{u}");
        }
    });
}

#[test]
fn logins_are_rate_limited_per_account() {
    each_backend(|a| async move {
        let state = WebState::new(a.clone());
        let bad = serde_json::json!({"email": "cora@acme.no", "password": "not the password"});
        for _ in 0..cutover_web::LOGIN_ATTEMPTS {
            assert_eq!(
                call_with(&state, "POST", "/api/login", None, Some(bad.clone())).await.0,
                StatusCode::UNAUTHORIZED
            );
        }
        let good = serde_json::json!({"email": "cora@acme.no", "password": PW});
        let (s, cookie, body) = call_with(&state, "POST", "/api/login", None, Some(good)).await;
        assert_eq!(
            (s, cookie, body["error"]["code"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, None, Some("too_many_attempts"))
        );
        // Other accounts are not locked out.
        let other = serde_json::json!({"email": "otto@other.no", "password": PW});
        assert_eq!(call_with(&state, "POST", "/api/login", None, Some(other)).await.0, StatusCode::OK);
    });
}
