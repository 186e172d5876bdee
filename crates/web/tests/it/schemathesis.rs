//! schemathesis against the served portal's OpenAPI document: requests generated for every
//! operation, as the vendor admin, with a bounded number of examples. No request may make the
//! server fail, and every answer must be one the document declares: status code, content
//! type, and for errors the error schema. Required under CI (`pip install schemathesis`).

use std::process::Command;

use crate::fixture::{PW, VERA, world};

#[test]
fn the_api_answers_schemathesis_as_documented() {
    if Command::new("schemathesis").arg("--version").output().is_err() {
        assert!(!cutover_testkit::in_ci(), "schemathesis is required under CI: pip install schemathesis");
        eprintln!("skipping the schemathesis test: schemathesis is not installed (pip install schemathesis)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cutover.db").display().to_string();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let out = rt.block_on(async {
        let app = world(&db, dir.path()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = cutover_web::app(cutover_web::WebState::new(app.clone()));
        tokio::spawn(async move { axum::serve(listener, router).await });
        let (token, _) = app.open_session(VERA, PW).await.unwrap().unwrap();
        tokio::task::spawn_blocking(move || {
            Command::new("schemathesis")
                .args(["run", &format!("{base}/api/openapi.json")])
                .args(["--max-examples", "25", "--generation-deterministic", "--request-timeout", "20"])
                // Logging out would end the session the rest of the run uses.
                .args(["--exclude-path", "/api/logout"])
                .args([
                    "--checks",
                    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                ])
                .args(["-H", &format!("Cookie: {}={token}", cutover_web::COOKIE)])
                .env("NO_COLOR", "1")
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    });
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found failures:\n{report}");
    let summary: Vec<&str> = report.lines().filter(|l| l.contains("generated") || l.contains("passed")).collect();
    eprintln!("schemathesis: {}", summary.join(" | "));
}
