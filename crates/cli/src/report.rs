//! `cutover report`: a run's counts per entity and reason, and the records not migrated.

use anyhow::Result;
use cutover_app::{App, RunView};
use cutover_core::{DomainError, ProjectKey, User};
use cutover_engine::run::RunReport;
use cutover_store::LedgerFilter;
use serde_json::json;

use crate::args::ReportArgs;
use crate::out;

/// Prints the per-entity table of a run.
pub fn print_counts(r: &RunReport) {
    let mut rows: Vec<Vec<String>> = r
        .entities
        .iter()
        .map(|e| {
            vec![
                e.entity.clone(),
                e.source.clone(),
                e.target.clone().unwrap_or_else(|| "-".into()),
                e.read.to_string(),
                e.migrated.to_string(),
                e.warned.to_string(),
                e.excluded.to_string(),
                e.rejected.to_string(),
            ]
        })
        .collect();
    let t = r.totals();
    rows.push(vec![
        "total".into(),
        String::new(),
        String::new(),
        t.read.to_string(),
        t.migrated.to_string(),
        t.warned.to_string(),
        t.excluded.to_string(),
        t.rejected.to_string(),
    ]);
    out::table(&["entity", "v1", "v2", "read", "migrated", "warned", "excluded", "rejected"], &rows);
}

pub async fn report(app: &App, user: &User, a: ReportArgs, json_flag: bool) -> Result<u8> {
    let key = ProjectKey::parse(&a.key)?;
    let RunView { run, report, final_report } = app.run_view(user, &key, a.run).await?;
    let run_no = run.run;
    let format = if json_flag { "json" } else { a.format.as_str() };
    match format {
        "text" => {
            println!(
                "{key}, run {run_no} ({} {}migration, {}): started {} by {}",
                run.outcome,
                if run.dry_run { "dry-run " } else { "" },
                run.kind,
                run.started_at,
                run.started_by
            );
            if let Some(e) = &run.error {
                println!("error: {e}");
            }
            if let Some(r) = &report {
                print_counts(r);
                if let Some(f) = &final_report {
                    print_delta(f);
                }
                println!();
                let mut rows = Vec::new();
                for e in &r.entities {
                    for (k, n) in &e.reasons {
                        let (bucket, reason) = k.split_once(':').unwrap_or((k, ""));
                        rows.push(vec![e.entity.clone(), bucket.to_owned(), reason.to_owned(), n.to_string()]);
                    }
                }
                out::table(&["entity", "bucket", "reason", "records"], &rows);
                println!(
                    "\nevery record not migrated, with its original values: cutover report {key} --run {run_no} --format csv"
                );
            }
        }
        "json" => {
            out::json(&json!({
                "project": key, "run": run_no, "kind": run.kind, "dry_run": run.dry_run, "outcome": run.outcome,
                "started_at": run.started_at, "finished_at": run.finished_at, "error": run.error, "report": report,
                "delta": final_report.as_ref().map(|f| &f.tables), "recovery_bundle": final_report.as_ref().map(|f| &f.bundle),
                "preview_reused": final_report.as_ref().map(|f| f.preview_reused),
            }))?;
        }
        "csv" => {
            let mut buckets = vec!["excluded".to_owned(), "rejected".to_owned()];
            if a.warnings {
                buckets.push("warned".into());
            }
            let f = LedgerFilter { entity: a.entity, reason: a.reason, buckets, ..Default::default() };
            let (rows, _) = app.not_migrated(user, &key, run_no, &f).await?;
            let mut w = std::io::stdout().lock();
            cutover_app::write_ledger_csv(&mut w, &rows)?;
        }
        other => {
            return Err(DomainError::Invalid {
                field: "format",
                reason: format!("'{other}' is not one of text, json, csv"),
            }
            .into());
        }
    }
    Ok(0)
}

/// `cutover verify`: runs (or shows) a verification; exits 5 when it found anything unexplained.
pub async fn verify(app: &App, user: &User, a: crate::args::VerifyArgs, json_flag: bool) -> Result<u8> {
    let key = ProjectKey::parse(&a.key)?;
    let (id, report, decided) = match a.show {
        Some(n) => (u32::try_from(n).unwrap_or(0), app.verification(user, &key, n).await?, Vec::new()),
        None => {
            let opts = cutover_engine::verify::VerifyOptions { entity: a.entity, sample: a.sample };
            let v = app.verify(user, &key, opts).await?;
            (v.id, v.report, v.decided)
        }
    };
    let code = if report.clean() { 0 } else { crate::exit::INTEGRITY };
    if json_flag {
        let decided: Vec<_> = decided.iter().map(|(i, p)| json!({"item": i, "passed": p})).collect();
        out::json(&json!({"verification": id, "clean": report.clean(), "report": report, "checklist": decided}))?;
        return Ok(code);
    }
    println!("{key}: verification {id}: {}", cutover_app::verify_summary(&report));
    let rows: Vec<Vec<String>> = report
        .entities
        .iter()
        .map(|e| {
            vec![
                e.entity.clone(),
                e.table.clone().unwrap_or_else(|| "-".into()),
                e.read.to_string(),
                e.migrated.to_string(),
                e.excluded.to_string(),
                e.rejected.to_string(),
                e.actual.to_string(),
                if e.explained { "ok".into() } else { "UNEXPLAINED".into() },
            ]
        })
        .collect();
    out::table(&["entity", "v2", "v1 read", "migrated", "excluded", "rejected", "in v2", "counts"], &rows);
    if !report.aggregates.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = report
            .aggregates
            .iter()
            .map(|g| {
                vec![
                    g.name.clone(),
                    g.group.clone(),
                    g.expected.join(" / "),
                    g.actual.join(" / "),
                    if g.equal { "ok".into() } else { "DIFFERS".into() },
                ]
            })
            .collect();
        out::table(&["total", "group", "from v1", "in v2", ""], &rows);
    }
    if report.differences_total > 0 {
        println!(
            "\n{} rows differ{}:",
            report.differences_total,
            if report.differences_total as usize > report.differences.len() { " (first ones listed)" } else { "" }
        );
        for d in &report.differences {
            let fields: Vec<String> =
                d.fields.iter().map(|f| format!("{}: {} → {}", f.column, f.expected, f.actual)).collect();
            println!("  {:?} {} {} {}", d.kind, d.table, d.legacy_ref, fields.join("; "));
        }
    }
    for s in &report.samples {
        println!("\n{} {}", s.entity, s.legacy_ref);
        let v1: Vec<String> = s.v1.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let v2: Vec<String> =
            s.v2.iter().filter(|(k, _)| *k != "account_id").map(|(k, v)| format!("{k}={v}")).collect();
        println!("  v1: {}", v1.join(", "));
        println!("  v2: {}", if v2.is_empty() { "(missing in v2)".into() } else { v2.join(", ") });
    }
    for (item, passed) in &decided {
        println!("checklist {item}: {} (evidence verify:{id})", if *passed { "passed" } else { "failed" });
    }
    Ok(code)
}

/// `cutover preview`: what the final migration will overwrite.
pub async fn preview(app: &App, user: &User, key: &str, json_flag: bool) -> Result<u8> {
    let key = ProjectKey::parse(key)?;
    let p = app.preview(user, &key).await?;
    if json_flag {
        out::json(&p)?;
        return Ok(0);
    }
    println!("{key}: overwrite preview {} ({} v2 rows checked)", p.id, p.rows_checked);
    if p.items.is_empty() {
        println!("nothing was changed, created or deleted in v2 since the last migration");
        return Ok(0);
    }
    let rows: Vec<Vec<String>> =
        p.counts().into_iter().map(|(t, [c, n, d])| vec![t, c.to_string(), n.to_string(), d.to_string()]).collect();
    out::table(&["table", "changed", "created", "deleted"], &rows);
    for i in &p.items {
        println!("\n{:?} {} {} ({})", i.kind, i.table, i.legacy_ref, i.id);
        for f in &i.fields {
            println!("  {}: as loaded {} | now {}", f.column, f.as_loaded, f.now);
        }
    }
    println!(
        "\nthe final migration overwrites all of the above with Omikai 1's data; it needs --ack-overwrite {}",
        p.id
    );
    Ok(0)
}

/// Prints what a final migration rewrote, kept and deleted, and where its recovery bundle is.
pub fn print_delta(f: &cutover_engine::delta::FinalReport) {
    println!();
    let mut rows: Vec<Vec<String>> = f
        .tables
        .iter()
        .map(|(t, c)| {
            vec![
                t.clone(),
                c.rewritten.to_string(),
                c.inserted.to_string(),
                c.deleted.to_string(),
                c.unchanged.to_string(),
            ]
        })
        .collect();
    let t = f.totals();
    rows.push(vec![
        "total".into(),
        t.rewritten.to_string(),
        t.inserted.to_string(),
        t.deleted.to_string(),
        t.unchanged.to_string(),
    ]);
    out::table(&["v2 table", "rewritten", "inserted", "deleted", "unchanged"], &rows);
    println!(
        "recovery bundle: {} ({} rows: {} overwritten, {} deleted; sha256 {})",
        f.bundle.path, f.bundle.rows, f.bundle.overwritten, f.bundle.deleted, f.bundle.sha256
    );
    if f.preview_reused {
        println!("overwrite preview {}: v2 unchanged since it was taken, not taken again", f.bundle.preview_id);
    }
}

/// `cutover recovery show`: the bundles of a project's final migrations.
pub async fn recovery(app: &App, user: &User, key: &str, json_flag: bool) -> Result<u8> {
    let key = ProjectKey::parse(key)?;
    let bundles = app.recovery_bundles(user, &key).await?;
    if json_flag {
        out::json(&bundles)?;
        return Ok(0);
    }
    if bundles.is_empty() {
        println!("{key}: no final migration has run; nothing was overwritten");
    }
    for cutover_app::RecoveryBundle { run: r, finished_at: at, bundle: b } in &bundles {
        println!(
            "run {r} ({at}): {} rows ({} overwritten, {} deleted), preview {}",
            b.rows, b.overwritten, b.deleted, b.preview_id
        );
        println!("  {}/rows.jsonl (sha256 {})", b.path, b.sha256);
    }
    Ok(0)
}
