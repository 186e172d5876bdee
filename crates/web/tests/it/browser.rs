//! The portal in a real browser: Debian's headless Chromium driven through chromedriver
//! (WebDriver) against `cutover serve` on loopback. Saves screenshots of the main pages into
//! `docs/screenshots/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cutover_app::App;
use cutover_core::checklist::{ItemStatus, ItemUpdate};
use cutover_core::documents::DocKind;
use cutover_core::{PartyKind, Phase, ProjectKey};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::fixture::{CORA, PW, VERA, world};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver, stopped when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_driver() -> Option<(Driver, u16)> {
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        let why = format!("{CHROMEDRIVER} or {CHROMIUM} is missing (apt-get install chromium chromium-driver)");
        assert!(!cutover_testkit::in_ci(), "browser tests are required under CI: {why}");
        eprintln!("skipping the browser test: {why}");
        return None;
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((driver, port))
}

async fn browser(port: u16, downloads: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-background-networking", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000", "--hide-scrollbars"],
            "prefs": {"download.default_directory": downloads.display().to_string(),
                      "download.prompt_for_download": false},
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session in headless Chromium")
}

fn screenshots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    let dir = screenshots_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Clicks something that loads a new page, and waits until the new page is there.
async fn click_and_load(c: &Client, e: fantoccini::elements::Element) {
    c.execute("window.__before_click = true; return true;", vec![]).await.unwrap();
    e.click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let gone = c
            .execute("return window.__before_click === undefined && document.readyState === 'complete';", vec![])
            .await;
        if gone.is_ok_and(|v| v == json!(true)) {
            return;
        }
        assert!(Instant::now() < deadline, "the page did not load after the click");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap()
}

async fn log_in(c: &Client, base: &str, email: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Id("email")).await.unwrap().send_keys(email).await.unwrap();
    c.find(Locator::Id("password")).await.unwrap().send_keys(PW).await.unwrap();
    click_and_load(c, c.find(Locator::Id("login")).await.unwrap()).await;
    c.wait().for_element(Locator::Id("projects")).await.unwrap();
    assert!(text(c, "#whoami").await.contains(email));
}

async fn log_out(c: &Client) {
    click_and_load(c, c.find(Locator::Id("logout")).await.unwrap()).await;
    c.wait().for_element(Locator::Id("login-form")).await.unwrap();
}

async fn dashboard_keys(c: &Client) -> Vec<String> {
    let mut keys = Vec::new();
    for row in c.find_all(Locator::Css("#projects tbody tr[data-key]")).await.unwrap() {
        keys.push(row.attr("data-key").await.unwrap().unwrap());
    }
    keys
}

/// Waits for a file to finish downloading into `dir`.
fn downloaded(dir: &Path) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "csv"))
            .collect();
        if let Some(p) = done.into_iter().next() {
            return p;
        }
        assert!(Instant::now() < deadline, "no CSV arrived in {}", dir.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn customer_and_vendor_work_in_the_portal_in_headless_chromium() {
    let Some((_driver, driver_port)) = start_driver() else { return };
    let dir = tempfile::tempdir().unwrap();
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let db = dir.path().join("cutover.db").display().to_string();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let app = world(&db, dir.path()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = cutover_web::app(cutover_web::WebState::new(app.clone()));
        tokio::spawn(async move { axum::serve(listener, router).await });
        let c = browser(driver_port, &downloads).await;
        let outcome = walk(&c, &base, &app, &downloads).await;
        let _ = c.close().await;
        outcome
    });
}

async fn walk(c: &Client, base: &str, app: &App, downloads: &Path) {
    let acme = ProjectKey::parse("acme").unwrap();
    let vera = app.actor(Some(VERA)).await.unwrap();

    // A customer admin logs in (a project link first sends the browser to the login page).
    c.goto(&format!("{base}/projects/acme")).await.unwrap();
    c.wait().for_element(Locator::Id("login-form")).await.unwrap();
    log_in(c, base, CORA).await;
    assert_eq!(dashboard_keys(c).await, ["acme"], "a customer sees its own organisation's projects only");

    // Another organisation's project does not exist for this customer.
    c.goto(&format!("{base}/projects/other")).await.unwrap();
    let err = c.find(Locator::Id("error")).await.unwrap();
    assert_eq!(err.attr("data-code").await.unwrap().as_deref(), Some("not_found"));
    assert!(!c.source().await.unwrap().contains("Other to Omikai 2"));

    // Ticks every customer item of the checklist.
    c.goto(&format!("{base}/projects/acme/checklist")).await.unwrap();
    shot(c, "checklist-before").await;
    loop {
        let mut next = None;
        for row in c.find_all(Locator::Css("#checklist tbody tr")).await.unwrap() {
            if row.attr("data-status").await.unwrap().as_deref() != Some("passed")
                && let Ok(form) = row.find(Locator::Css("form.item-form")).await
            {
                next = Some(form);
                break;
            }
        }
        let Some(form) = next else { break };
        form.find(Locator::Css("select[name=status]")).await.unwrap().select_by_value("passed").await.unwrap();
        let note = form.find(Locator::Css("input[name=note]")).await.unwrap();
        note.clear().await.unwrap();
        note.send_keys("checked in Omikai 2 by Cora").await.unwrap();
        click_and_load(c, form.find(Locator::Css("button.tick")).await.unwrap()).await;
        assert_eq!(text(c, "#flash").await, "Checklist result recorded.");
    }
    let p = app.project(&vera, &acme).await.unwrap().project;
    let customer_items: Vec<_> = p.checklist.items.iter().filter(|i| i.kind == PartyKind::Customer).collect();
    assert!(!customer_items.is_empty());
    for i in customer_items {
        assert_eq!(i.status, ItemStatus::Passed, "{}", i.id);
        assert_eq!(i.by.as_ref().map(|e| e.as_str()), Some(CORA));
        assert_eq!(i.note.as_deref(), Some("checked in Omikai 2 by Cora"));
    }
    shot(c, "checklist").await;

    // Downloads the "not migrated" CSV of the first run; it is exactly what the store holds.
    c.goto(&format!("{base}/projects/acme/runs/1")).await.unwrap();
    let total: usize = text(c, "#not-migrated-total").await.split(' ').next().unwrap().parse().unwrap();
    assert!(total > 0);
    shot(c, "run-report").await;
    c.find(Locator::Id("csv")).await.unwrap().click().await.unwrap();
    let file = downloaded(downloads);
    assert_eq!(file.file_name().unwrap().to_str().unwrap(), "acme-run-1-not-migrated.csv");
    let csv = std::fs::read_to_string(&file).unwrap();
    let filter =
        cutover_store::LedgerFilter { buckets: vec!["excluded".into(), "rejected".into()], ..Default::default() };
    let (rows, _) = app.not_migrated(&vera, &acme, 1, &filter).await.unwrap();
    let mut expected = Vec::new();
    cutover_app::write_ledger_csv(&mut expected, &rows).unwrap();
    assert_eq!(csv, String::from_utf8(expected).unwrap());
    assert_eq!(rows.len(), total);

    // The vendor's side of the parallel phase, done through the application; then the customer accepts.
    for item in p.checklist.items.iter().filter(|i| i.kind == PartyKind::Vendor && !i.status.is_done()) {
        let update = ItemUpdate { status: ItemStatus::Passed, note: None, evidence: vec!["run:1".into()] };
        app.execute(&vera, &acme, cutover_core::Command::ChecklistSet { item: item.id.clone(), update }).await.unwrap();
    }
    app.execute(&vera, &acme, cutover_core::Command::ChecklistAccept).await.unwrap();
    c.goto(&format!("{base}/projects/acme/checklist")).await.unwrap();
    click_and_load(c, c.find(Locator::Id("accept")).await.unwrap()).await;
    assert_eq!(text(c, "#flash").await, "Checklist accepted.");
    assert_eq!(app.project(&vera, &acme).await.unwrap().project.phase, Phase::Approval);

    // Signs the go-live approval for the customer.
    c.goto(&format!("{base}/projects/acme/contracts/go-live")).await.unwrap();
    let button = text(c, "#sign").await;
    assert_eq!(button, "Sign the go-live approval for the customer");
    let hash = text(c, "#doc-hash").await;
    click_and_load(c, c.find(Locator::Id("sign")).await.unwrap()).await;
    assert_eq!(text(c, "#flash").await, "Signed.");
    assert!(c.find(Locator::Id("sign")).await.is_err(), "no second sign button once signed");
    let status = app.project(&vera, &acme).await.unwrap().project.signature_status(DocKind::GoLive);
    let customer = status.iter().find(|s| s.party == PartyKind::Customer).unwrap();
    let sig = customer.signature.as_ref().unwrap();
    assert_eq!((sig.by.as_str(), sig.document_hash.as_str()), (CORA, hash.as_str()));
    shot(c, "contract-go-live").await;

    // ...and not for the vendor: the page offers no such button, and a forged form is refused.
    let forged = c
        .execute(
            r#"const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
               for (const [k, v] of [['csrf', document.querySelector('input[name=csrf]').value], ['party', 'vendor']]) {
                 const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
               }
               document.body.appendChild(f); f.submit(); return true;"#,
            vec![json!("/projects/acme/contracts/go-live/sign")],
        )
        .await
        .unwrap();
    assert_eq!(forged, json!(true));
    c.wait().for_element(Locator::Id("error")).await.unwrap();
    let err = c.find(Locator::Id("error")).await.unwrap();
    assert_eq!(err.attr("data-code").await.unwrap().as_deref(), Some("forbidden"));
    assert!(err.text().await.unwrap().contains("cannot sign for the vendor"), "{}", err.text().await.unwrap());
    let status = app.project(&vera, &acme).await.unwrap().project.signature_status(DocKind::GoLive);
    assert!(status.iter().find(|s| s.party == PartyKind::Vendor).unwrap().signature.is_none());
    c.goto(&format!("{base}/")).await.unwrap();
    log_out(c).await;

    // A vendor user sees every project on the dashboard.
    log_in(c, base, VERA).await;
    let mut keys = dashboard_keys(c).await;
    keys.sort();
    assert_eq!(keys, ["acme", "other"]);
    shot(c, "dashboard").await;
    for (path, name, marker) in [
        ("/projects/acme", "project", "#timeline"),
        ("/projects/acme/plan", "plan", "#plan"),
        ("/projects/acme/contracts", "contracts", "#contracts"),
        ("/projects/acme/verifications/1", "verification", "#entity-checks"),
        ("/projects/acme/preview", "preview", "#preview-id"),
        ("/projects/acme/retainer", "retainer", "#retainer-chart svg"),
        ("/projects/acme/audit", "audit", "#audit-status"),
    ] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        c.find(Locator::Css(marker)).await.unwrap_or_else(|e| panic!("{path}: {marker}: {e}"));
        shot(c, name).await;
    }
    assert!(text(c, "#audit-status").await.contains("intact"));
    // The vendor logs time; the chart and the total follow.
    c.goto(&format!("{base}/projects/acme/retainer")).await.unwrap();
    let form = c.find(Locator::Id("log-time")).await.unwrap();
    form.find(Locator::Css("input[name=hours]")).await.unwrap().send_keys("1.5").await.unwrap();
    form.find(Locator::Css("input[name=note]")).await.unwrap().send_keys("go-live rehearsal").await.unwrap();
    click_and_load(c, form.find(Locator::Css("button")).await.unwrap()).await;
    assert_eq!(text(c, "#flash").await, "Time logged.");
    assert!(text(c, "#entries").await.contains("go-live rehearsal"));
    let summary = app.project(&vera, &acme).await.unwrap().project.retainer.summary();
    assert_eq!(summary.used_hours.to_string(), "11");
    let points = c.find(Locator::Css("#retainer-chart svg circle")).await.unwrap();
    assert!(points.attr("cx").await.unwrap().is_some());
    assert_eq!(c.find_all(Locator::Css("#retainer-chart svg circle")).await.unwrap().len(), 4);
    shot(c, "retainer").await;

    // The vendor signs the go-live approval and runs the final migration (the CLI's part)
    // against the preview the portal shows: v2 unchanged since, the run takes that preview as
    // kept, and the run's page says so.
    c.goto(&format!("{base}/projects/acme/preview")).await.unwrap();
    let id = text(c, "#preview-id").await;
    app.execute(&vera, &acme, cutover_core::Command::Sign { kind: DocKind::GoLive, party: None }).await.unwrap();
    let req = cutover_app::MigrateRequest {
        kind: cutover_core::RunKind::Final,
        dry_run: false,
        reason: None,
        progress: false,
        ack_overwrite: Some(id.clone()),
    };
    let done = app.migrate(&vera, &acme, req).await.unwrap();
    assert!(done.final_report.as_ref().is_some_and(|f| f.preview_reused));
    c.goto(&format!("{base}/projects/acme/runs/{}", done.run)).await.unwrap();
    let reused = text(c, "#preview-reused").await;
    assert!(reused.contains(&id[..12]) && reused.contains("v2 unchanged since it was taken"), "{reused}");
    log_out(c).await;
}
