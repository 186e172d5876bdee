//! `cutover demo-data` and `cutover demo`: generated Omikai 1 data, and a whole project walked on it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cutover_app::{App, MigrateRequest, NewUser, Packs, ProjectSpec};
use cutover_core::checklist::{ItemStatus, ItemUpdate};
use cutover_core::documents::DocKind;
use cutover_core::plan::ScopeChange;
use cutover_core::{Command, Email, OrgName, PartyKind, ProjectKey, Role, RunKind, Text};
use cutover_demo::{DEFAULT_CUTOFF, Spec};

use crate::args::{DemoArgs, DemoDataArgs};
use crate::commands::date;
use crate::out;

pub fn demo_data(a: DemoDataArgs, json: bool) -> Result<u8> {
    let cutoff = a.cutoff.as_deref().map(|c| date(c, "cutoff")).transpose()?.unwrap_or(DEFAULT_CUTOFF);
    let spec = Spec { customers: a.customers, seed: a.seed, cutoff };
    let server = a.out.contains("://") && !a.out.starts_with("sqlite:");
    if a.hostile {
        if server {
            anyhow::bail!(cutover_core::DomainError::Invalid {
                field: "out",
                reason: "the hostile corpus is a SQLite file: it holds bytes other databases refuse".into(),
            });
        }
        let path = PathBuf::from(a.out.strip_prefix("sqlite://").unwrap_or(&a.out));
        let planted = cutover_demo::hostile(&path, spec)?;
        if json {
            out::json(&planted)?;
        } else {
            println!("wrote a hostile legacy database: {}", path.display());
            let rows: Vec<Vec<String>> = planted
                .iter()
                .map(|p| vec![format!("{}:{}", p.table, p.key), p.what.to_owned(), p.outcome.to_owned()])
                .collect();
            out::table(&["record", "what is wrong", "must end"], &rows);
        }
        return Ok(0);
    }
    let (file, temp) = if server {
        let t = std::env::temp_dir().join(format!("cutover-demo-{}.db", std::process::id()));
        (t.clone(), Some(t))
    } else {
        (PathBuf::from(a.out.strip_prefix("sqlite://").unwrap_or(&a.out)), None)
    };
    let m = cutover_demo::generate(&file, spec)?;
    if server {
        // The connectors block on a runtime of their own: not on this one's thread.
        let copied = std::thread::scope(|s| s.spawn(|| copy_v1(&file, &a.out)).join())
            .unwrap_or_else(|_| Err(anyhow::anyhow!("copying the demo data stopped unexpectedly")));
        if let Some(t) = &temp {
            let _ = std::fs::remove_file(t);
        }
        copied?;
    }
    let manifest_path = a
        .manifest
        .clone()
        .unwrap_or_else(|| if server { PathBuf::from("omikai1.manifest.json") } else { manifest_path(&file) });
    std::fs::write(&manifest_path, serde_json::to_string_pretty(&m)?)
        .with_context(|| format!("writing {}", manifest_path.display()))?;
    if json {
        out::json(&m)?;
    } else {
        println!(
            "wrote {} ({} rows, {} customers, seed {})",
            cutover_core::mask_url(&a.out),
            m.rows(),
            m.customers,
            m.seed
        );
        println!("expected outcomes for cut-off {}: {}", m.cutoff, manifest_path.display());
    }
    Ok(0)
}

/// Puts the Omikai 1 tables of a SQLite file into a PostgreSQL or MariaDB database.
fn copy_v1(file: &std::path::Path, url: &str) -> Result<u64> {
    let schema = cutover_engine::ddl::parse("v1.sql", cutover_demo::V1_SQL)?;
    let mut src = cutover_engine::connect::SourceConfig::Sqlite { path: file.to_owned() }.build()?;
    if cutover_engine::mysql::is_mysql_url(url) {
        return Ok(cutover_engine::mysql::load_tables(&schema, src.as_mut(), url)?);
    }
    let mut tgt = cutover_engine::connect::TargetConfig::from_url(url)?.build()?;
    // Replaced, as a SQLite file is: drop what is there first.
    let tables: Vec<String> = schema.tables.iter().map(|t| tgt.dialect().ident(&t.name)).collect();
    tgt.exec_sql(&format!("DROP TABLE IF EXISTS {}", tables.join(", ")))?;
    Ok(cutover_engine::connect::copy_tables(&schema, src.as_mut(), tgt.as_mut())?)
}

fn manifest_path(db: &std::path::Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".manifest.json");
    PathBuf::from(s)
}

fn step(n: u8, title: &str) {
    println!("\n== phase {n}/6: {title}");
}

/// Walks a demo project as far as the product goes, on SQLite files in `a.dir`.
pub async fn demo(a: &DemoArgs, packs: Option<PathBuf>) -> Result<u8> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let dir = a.dir.canonicalize()?;
    let (store, v1, v2) = (dir.join("cutover.db"), dir.join("omikai1.db"), dir.join("omikai2.db"));
    for f in [&store, &v1, &v2] {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = f.as_os_str().to_owned();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
    }
    println!("cutover demo in {}", dir.display());
    let m = cutover_demo::generate(&v1, Spec { customers: a.customers, seed: 1, cutoff: DEFAULT_CUTOFF })?;
    println!("generated Omikai 1 demo data: {} ({} rows, {} customers)", v1.display(), m.rows(), m.customers);

    let app = App::open(store.to_str().context("non-UTF-8 folder")?, packs.map_or(Packs::Builtin, Packs::Dir)).await?;
    // Logins for the portal exist only when it is served: a fresh random password each time.
    let password = || a.serve.then(|| cutover_app::random_token()[..16].to_owned());
    let (vendor_pw, customer_pw) = (password(), password());
    let vendor = app
        .add_user(
            None,
            NewUser {
                email: Email::parse("vera@vendor.example")?,
                name: Text::parse("Vera Vendor")?,
                party: PartyKind::Vendor,
                org: None,
                role: Role::Admin,
                password: vendor_pw.clone(),
            },
        )
        .await?;
    let org = OrgName::parse("Trykkeriet AS")?;
    let customer = app
        .add_user(
            Some(&vendor),
            NewUser {
                email: Email::parse("cora@trykkeriet.example")?,
                name: Text::parse("Cora Customer")?,
                party: PartyKind::Customer,
                org: Some(org.clone()),
                role: Role::Admin,
                password: customer_pw.clone(),
            },
        )
        .await?;
    let key = ProjectKey::parse("trykkeriet")?;

    step(1, "plan");
    let p = app
        .create_project(
            &vendor,
            ProjectSpec {
                key: key.clone(),
                name: Text::parse("Trykkeriet to Omikai 2")?,
                org,
                pack: "omikai".into(),
                v1_url: Some(v1.display().to_string()),
                v2_url: Some(v2.display().to_string()),
            },
        )
        .await?;
    println!(
        "project {} created with {} plan activities and {} checklist items",
        p.key,
        p.plan.activities.len(),
        p.checklist.items.len()
    );
    app.execute(&vendor, &key, Command::SetScope(ScopeChange { cutoff: Some(DEFAULT_CUTOFF), ..Default::default() }))
        .await?;
    println!("history cut-off set to {DEFAULT_CUTOFF}");
    let dry = app
        .migrate(
            &vendor,
            &key,
            MigrateRequest { kind: RunKind::First, dry_run: true, reason: None, progress: true, ack_overwrite: None },
        )
        .await?;
    println!("dry run {}: {}", dry.run, cutover_app::summary(&dry.report));
    let blocked = app.project(&vendor, &key).await?.project.status().blocked_by;
    println!("first migration is blocked by:");
    for b in &blocked {
        println!("  - {b}");
    }
    for kind in [DocKind::Migration, DocKind::License] {
        app.execute(&vendor, &key, Command::Sign { kind, party: None }).await?;
        app.execute(&customer, &key, Command::Sign { kind, party: None }).await?;
        println!("{} signed by both parties", kind.title());
    }

    let today = app.now().date();
    for (activity, hours, days_ago, note) in [
        ("A1", "3", 20, "kick-off and plan"),
        ("A2", "2.5", 12, "scope and cut-off agreed"),
        ("A3", "4", 5, "trial run"),
    ] {
        let date = today.checked_sub(time::Duration::days(days_ago)).unwrap_or(today);
        let cmd = Command::LogTime {
            activity: cutover_core::plan::ActivityId::parse(activity)?,
            hours: cutover_core::Hours::parse(hours)?,
            date,
            note: Some(note.into()),
        };
        app.execute(&vendor, &key, cmd).await?;
    }
    println!("9.5 retainer hours logged");

    step(2, "first migration");
    let first = app
        .migrate(
            &vendor,
            &key,
            MigrateRequest { kind: RunKind::First, dry_run: false, reason: None, progress: true, ack_overwrite: None },
        )
        .await?;
    println!("run {}: {}", first.run, cutover_app::summary(&first.report));
    crate::report::print_counts(&first.report);
    println!("v2 account written to {}", v2.display());

    step(3, "parallel phase");
    let verified = app.verify(&vendor, &key, cutover_engine::verify::VerifyOptions { entity: None, sample: 0 }).await?;
    println!("verification {}: {}", verified.id, cutover_app::verify_summary(&verified.report));
    for (item, passed) in &verified.decided {
        println!("checklist {item} decided by the automated check: {}", if *passed { "passed" } else { "failed" });
    }
    let project = app.project(&vendor, &key).await?.project;
    for item in project.checklist.items.iter().filter(|i| i.status != ItemStatus::Passed) {
        let actor = if item.kind == PartyKind::Vendor { &vendor } else { &customer };
        let update = ItemUpdate {
            status: ItemStatus::Passed,
            note: Some("checked in the demo".into()),
            evidence: vec![format!("run:{}", first.run)],
        };
        app.execute(actor, &key, Command::ChecklistSet { item: item.id.clone(), update }).await?;
    }
    println!("the other checklist items passed by their parties");
    // The customer keeps working in v2 during the parallel phase.
    let edited = rusqlite::Connection::open(&v2)?.execute(
        "UPDATE customer SET phone = '+47 99 99 99 99', note = 'typed into Omikai 2 during the parallel phase' \
         WHERE legacy_ref = (SELECT MIN(legacy_ref) FROM customer)",
        [],
    )?;
    println!("simulated: the customer edited {edited} customer in Omikai 2 during the parallel phase");
    app.execute(&vendor, &key, Command::ChecklistAccept).await?;
    app.execute(&customer, &key, Command::ChecklistAccept).await?;
    println!("checklist accepted by both parties");

    step(4, "approval");
    app.execute(&vendor, &key, Command::Sign { kind: DocKind::GoLive, party: None }).await?;
    app.execute(&customer, &key, Command::Sign { kind: DocKind::GoLive, party: None }).await?;
    println!("go-live approval signed by both parties");

    step(5, "final migration");
    let preview = app.preview(&vendor, &key).await?;
    println!(
        "overwrite preview {}: {} rows changed in Omikai 2 since the first migration",
        preview.id,
        preview.items.len()
    );
    for item in &preview.items {
        for f in &item.fields {
            println!(
                "  {:?} {} {}: {} was {}, is {}",
                item.kind, item.table, item.legacy_ref, f.column, f.as_loaded, f.now
            );
        }
    }
    let last = app
        .migrate(
            &vendor,
            &key,
            MigrateRequest {
                kind: RunKind::Final,
                dry_run: false,
                reason: None,
                progress: true,
                ack_overwrite: Some(preview.id.clone()),
            },
        )
        .await?;
    println!("final migration, run {}: {}", last.run, cutover_app::summary(&last.report));
    if let Some(f) = &last.final_report {
        crate::report::print_delta(f);
    }

    step(6, "go-live");
    let p = app.go_live(&vendor, &key).await?;
    if let Some(seal) = &p.archive {
        println!("{}", seal.read_only);
        println!("archive sealed: {} tables, {} rows", seal.tables.len(), seal.tables.iter().map(|t| t.1).sum::<u64>());
    }
    let intact = app.archive_verify(&vendor, &key).await?.iter().all(|c| c.intact);
    println!("archive check: {}", if intact { "intact" } else { "CHANGED" });
    println!("\nphase now: {}; live since {}", p.phase, p.live_since().map(|d| d.to_string()).unwrap_or_default());
    if let (true, Some(vp), Some(cp)) = (a.serve, vendor_pw, customer_pw) {
        let nina_pw = second_project(&app, &vendor, &dir, a.customers).await?;
        println!("\nportal: http://{}/  (Ctrl-C stops)", a.addr);
        println!("  vendor admin:   vera@vendor.example      password {vp}");
        println!("  customer admin: cora@trykkeriet.example  password {cp}   (project trykkeriet, live)");
        println!("  customer admin: nina@nordlys.example     password {nina_pw}   (project nordlys, parallel phase)");
        let served = cutover_web::serve(cutover_web::WebState::new(app.clone()), &a.addr).await;
        app.store().close().await;
        served.with_context(|| format!("serving the portal on {}", a.addr))?;
        return Ok(0);
    }
    let db = store.display();
    println!("\nlook next:");
    println!("  cutover --db {db} --as vera@vendor.example project show {key}");
    println!("  cutover --db {db} --as vera@vendor.example report {key} --format csv");
    println!("  cutover --db {db} --as vera@vendor.example scope show {key}");
    println!("  cutover --db {db} --as vera@vendor.example recovery show {key}");
    println!("  cutover --db {db} --as vera@vendor.example archive verify {key}");
    println!("  cutover --db {db} --as vera@vendor.example audit {key} --verify");
    app.store().close().await;
    Ok(0)
}

/// A second customer's project, left in the parallel phase with its checklist to tick, for the portal.
async fn second_project(
    app: &App,
    vendor: &cutover_core::User,
    dir: &std::path::Path,
    customers: u32,
) -> Result<String> {
    let (v1, v2) = (dir.join("nordlys-omikai1.db"), dir.join("nordlys-omikai2.db"));
    cutover_demo::generate(&v1, Spec { customers: (customers / 4).max(20), seed: 2, cutoff: DEFAULT_CUTOFF })?;
    let org = OrgName::parse("Nordlys Regnskap AS")?;
    let pw = cutover_app::random_token()[..16].to_owned();
    let nina = app
        .add_user(
            Some(vendor),
            NewUser {
                email: Email::parse("nina@nordlys.example")?,
                name: Text::parse("Nina Nordlys")?,
                party: PartyKind::Customer,
                org: Some(org.clone()),
                role: Role::Admin,
                password: Some(pw.clone()),
            },
        )
        .await?;
    let key = ProjectKey::parse("nordlys")?;
    let spec = ProjectSpec {
        key: key.clone(),
        name: Text::parse("Nordlys to Omikai 2")?,
        org,
        pack: "omikai".into(),
        v1_url: Some(v1.display().to_string()),
        v2_url: Some(v2.display().to_string()),
    };
    app.create_project(vendor, spec).await?;
    app.execute(vendor, &key, Command::SetScope(ScopeChange { cutoff: Some(DEFAULT_CUTOFF), ..Default::default() }))
        .await?;
    for kind in [DocKind::Migration, DocKind::License] {
        app.execute(vendor, &key, Command::Sign { kind, party: None }).await?;
        app.execute(&nina, &key, Command::Sign { kind, party: None }).await?;
    }
    let req =
        MigrateRequest { kind: RunKind::First, dry_run: false, reason: None, progress: false, ack_overwrite: None };
    let first = app.migrate(vendor, &key, req).await?;
    app.verify(vendor, &key, cutover_engine::verify::VerifyOptions { entity: None, sample: 3 }).await?;
    let today = app.now().date();
    let cmd = Command::LogTime {
        activity: cutover_core::plan::ActivityId::parse("A1")?,
        hours: cutover_core::Hours::parse("17")?,
        date: today.checked_sub(time::Duration::days(3)).unwrap_or(today),
        note: Some("data clean-up with the customer".into()),
    };
    app.execute(vendor, &key, cmd).await?;
    println!(
        "\nsecond project nordlys: first migration run {} ({}), left in the parallel phase",
        first.run,
        cutover_app::summary(&first.report)
    );
    Ok(pw)
}
