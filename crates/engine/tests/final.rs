//! The final migration: restores v1's values over v2 edits, writes only what changed, deletes
//! what v1 no longer gives, and saves everything it overwrites first.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use cutover_demo::{DEFAULT_CUTOFF, Spec};
use cutover_engine::connect::{SourceConfig, TargetConfig};
use cutover_engine::delta::{final_begin, final_run, final_run_checked};
use cutover_engine::pack::{Pack, PackSource};
use cutover_engine::preview::{ChangeKind, StampedPreview, preview, preview_alone};
use cutover_engine::run::{RunSpec, run};
use cutover_engine::value::{Type, Value};
use cutover_testkit::{Session, TestDb, typed_in_contact};

fn exec_v2(url: &str, sql: &str) {
    cutover_testkit::exec(url, sql).unwrap();
}

fn snapshot(pack: &Pack, url: &str) -> Vec<(String, Vec<Vec<Value>>)> {
    let mut t = TargetConfig::from_url(url).unwrap().build().unwrap();
    pack.v2
        .tables
        .iter()
        .map(|table| {
            let cols: Vec<_> = table.columns.iter().map(|c| (c.name.clone(), c.ty)).collect();
            (table.name.clone(), t.read_rows(&table.name, &cols, None).unwrap())
        })
        .collect()
}

/// Every entity of the pack in scope, default options.
fn scope(pack: &Pack) -> (Vec<String>, BTreeMap<String, String>) {
    (pack.template.entities.iter().map(|e| e.name.clone()).collect(), BTreeMap::new())
}

/// What most tests here start from: a demo v1 of `customers` customers (seed `seed`) in a
/// temporary folder, and the Omikai pack with every entity in scope, default options.
struct Demo {
    dir: tempfile::TempDir,
    v1: std::path::PathBuf,
    pack: Pack,
    included: Vec<String>,
    opts: BTreeMap<String, String>,
}

fn demo(customers: u32, seed: u64) -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1.db");
    cutover_demo::generate(&v1, Spec { customers, seed, cutoff: DEFAULT_CUTOFF }).unwrap();
    let pack = PackSource::Builtin.load("omikai").unwrap();
    let (included, opts) = scope(&pack);
    Demo { dir, v1, pack, included, opts }
}

fn acme<'a>(pack: &'a Pack, included: &'a [String], opts: &'a BTreeMap<String, String>) -> RunSpec<'a> {
    RunSpec {
        pack,
        account_key: "acme",
        account_name: "Acme",
        included,
        cutoff: DEFAULT_CUTOFF,
        options: opts,
        progress: false,
        cancel: None,
    }
}

/// Runs a scenario on two new SQLite v2 files: the one it works on and a fresh one.
fn on_sqlite(scenario: fn(&str, &str)) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("v2.db"), dir.path().join("fresh.db"));
    scenario(a.to_str().unwrap(), b.to_str().unwrap());
}

/// Runs a scenario on two new PostgreSQL databases (skipped outside CI without a server).
fn on_postgres(scenario: fn(&str, &str)) {
    let (Some(a), Some(b)) = (TestDb::postgres(), TestDb::postgres()) else { return };
    scenario(&a.url, &b.url);
}

/// The preview of v2 finds nothing a final migration would overwrite.
fn assert_nothing_to_overwrite(pack: &Pack, v2: &str) {
    let mut tgt = TargetConfig::from_url(v2).unwrap().build().unwrap();
    let p = preview(pack, tgt.as_mut(), "acme").unwrap();
    assert!(p.items.is_empty(), "{:?}", p.items);
}

fn first_migration(spec: &RunSpec<'_>, v1: &std::path::Path, url: &str) -> cutover_engine::run::RunReport {
    let mut src = SourceConfig::Sqlite { path: v1.to_owned() }.build().unwrap();
    let mut tgt = TargetConfig::from_url(url).unwrap().build().unwrap();
    run(spec, src.as_mut(), Some(tgt.as_mut()), &mut |_| Ok(())).unwrap()
}

fn final_migration_restores_v1_and_keeps_what_it_overwrites(v2: &str, fresh: &str) {
    let Demo { dir, v1, pack, included, opts } = demo(100, 8);
    let spec = acme(&pack, &included, &opts);
    let first = |url: &str| first_migration(&spec, &v1, url);
    first(v2);

    // The parallel phase: the customer works in v2 ...
    exec_v2(v2, "UPDATE customer SET name = 'Renamed in v2' WHERE legacy_ref = 'CUST:1'");
    exec_v2(v2, "DELETE FROM invoice_line WHERE legacy_ref = (SELECT MIN(legacy_ref) FROM invoice_line)");
    let tia = ("Tia", "Typed");
    exec_v2(v2, &typed_in_contact(v2, "00000000-0000-4000-8000-0000000000bb", "v2:typed-in", tia, "CUST:1"));
    // ... and in v1, which stays the system of record until go-live.
    let c = rusqlite::Connection::open(&v1).unwrap();
    let jobs: Vec<i64> = {
        let mut st = c
            .prepare("SELECT JOBNO FROM JOB WHERE STATUS IN ('10', '20') AND CUSTNO < 1000000 ORDER BY JOBNO LIMIT 5")
            .unwrap();
        st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    for j in &jobs {
        c.execute("UPDATE JOB SET TITLE = 'changed in v1' WHERE JOBNO = ?1", [j]).unwrap();
    }
    let gone_contact: i64 = c
        .query_row("SELECT MAX(CONTNO) FROM CONTACT WHERE CUSTNO IN (SELECT CUSTNO FROM CUST WHERE STATUS = 'A') AND CONTNO NOT IN (SELECT CONTNO FROM QUOTE WHERE CONTNO IS NOT NULL) AND EMAIL LIKE '%@kunde.no'", [], |r| r.get(0))
        .unwrap();
    c.execute("DELETE FROM CONTACT WHERE CONTNO = ?1", [gone_contact]).unwrap();
    c.execute("INSERT INTO CUST (CUSTNO, NAME, COUNTRY, PAYTERMS, CURRENCY, STATUS, CREATED) VALUES (5000, 'Nykunde AS', 'Norway', '30D', 'NOK', 'A', '2026-11-01')", []).unwrap();
    drop(c);

    let mut tgt = TargetConfig::from_url(v2).unwrap().build().unwrap();
    let p = preview(&pack, tgt.as_mut(), "acme").unwrap();
    assert_eq!(p.items.len(), 3);
    let bundle_dir = dir.path().join("recovery/run-2");
    let mut src = SourceConfig::Sqlite { path: v1.clone() }.build().unwrap();
    let r = final_run(&spec, src.as_mut(), tgt.as_mut(), &p.id, &bundle_dir, &mut |_| Ok(())).unwrap();
    drop(tgt);

    // v2 is exactly what a fresh migration of today's v1 gives.
    first(fresh);
    assert_eq!(snapshot(&pack, v2), snapshot(&pack, fresh));
    let t = r.totals();
    assert_eq!(r.tables["sales_order"].rewritten, jobs.len() as u64);
    assert_eq!(r.tables["customer"].rewritten, 1, "the renamed customer gets v1's name back");
    assert_eq!(r.tables["customer"].inserted, 1, "the new v1 customer");
    assert_eq!(r.tables["invoice_line"].rewritten, 1, "the line deleted in v2 comes back");
    assert_eq!(r.tables["contact"].deleted, 2, "the contact gone from v1 and the one typed into v2");
    assert_eq!(t.rewritten + t.inserted + t.deleted, jobs.len() as u64 + 5);
    assert!(t.unchanged > 1000);
    // The bundle holds the parallel-phase values, and its manifest names its content.
    let rows = std::fs::read_to_string(bundle_dir.join("rows.jsonl")).unwrap();
    assert_eq!(rows.lines().count() as u64, r.bundle.rows);
    assert_eq!(r.bundle.overwritten, jobs.len() as u64 + 2);
    assert!(rows.lines().any(|l| l.contains("\"Renamed in v2\"") && l.contains("changed in v2")), "{rows}");
    assert!(
        rows.lines().any(|l| l.contains("\"Typed\"") && l.contains("created in v2") && l.contains("\"deleted\"")),
        "{rows}"
    );
    assert!(
        rows.lines().any(|l| l.contains(&format!("CONTACT:{gone_contact}")) && l.contains("its v1 record is gone")),
        "{rows}"
    );
    // Rows read back from v2 (on PostgreSQL by a second connection, while the run wrote) are
    // as they were before the run.
    let changed: Vec<&str> = rows.lines().filter(|l| l.contains("its v1 record changed")).collect();
    assert_eq!(changed.len(), jobs.len(), "{rows}");
    assert!(changed.iter().all(|l| !l.contains("changed in v1")), "{rows}");
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(rows.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, r.bundle.sha256);
    let manifest = std::fs::read_to_string(bundle_dir.join("manifest.json")).unwrap();
    assert!(manifest.contains(&p.id));
    // Nothing is left to overwrite.
    assert_nothing_to_overwrite(&pack, v2);
}

#[test]
fn sqlite_target() {
    on_sqlite(final_migration_restores_v1_and_keeps_what_it_overwrites);
}

#[test]
fn postgres_target() {
    on_postgres(final_migration_restores_v1_and_keeps_what_it_overwrites);
}

/// A final migration that rewrites more rows of a table than one upsert takes (on
/// PostgreSQL they are written while the run still reads v1, a batch as soon as it is full):
/// v2 ends as a fresh migration gives it, and the recovery bundle holds every overwritten row
/// as it was before the run, the parallel phase's edits included.
fn a_final_migration_rewriting_many_rows(v2: &str, fresh: &str) {
    let Demo { dir, v1, pack, included, opts } = demo(700, 9);
    let spec = acme(&pack, &included, &opts);
    first_migration(&spec, &v1, v2);
    exec_v2(v2, "UPDATE order_signature SET pages = pages + 1000 WHERE signature_number = 1");
    let cols = [("legacy_ref".to_owned(), Type::Text), ("pages".to_owned(), Type::Int)];
    let before: BTreeMap<String, Value> = {
        let mut t = TargetConfig::from_url(v2).unwrap().build().unwrap();
        t.read_rows("order_signature", &cols, None)
            .unwrap()
            .into_iter()
            .map(|r| match r.as_slice() {
                [Value::Text(k), pages] => (k.clone(), pages.clone()),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert!(before.len() > 5_000, "more than one batch of order signatures: {}", before.len());
    let c = rusqlite::Connection::open(&v1).unwrap();
    c.execute("UPDATE JOBSIG SET PAGES = PAGES + 1", []).unwrap();
    // A new order, read before every other, with its signatures: they go in the table's first
    // batch, written while the run still reads, and their key check needs the order written
    // when its own table ended.
    let job: i64 =
        before.keys().filter_map(|k| k.strip_prefix("JOBSIG:")?.split('/').next()?.parse().ok()).min().unwrap();
    c.execute_batch(&format!(
        "CREATE TEMP TABLE j AS SELECT * FROM JOB WHERE JOBNO = {job}; UPDATE j SET JOBNO = 0; INSERT INTO JOB SELECT * FROM j; \
         CREATE TEMP TABLE s AS SELECT * FROM JOBSIG WHERE JOBNO = {job}; UPDATE s SET JOBNO = 0; INSERT INTO JOBSIG SELECT * FROM s;"
    ))
    .unwrap();
    let new_signatures: u64 = c.query_row("SELECT COUNT(*) FROM JOBSIG WHERE JOBNO = 0", [], |r| r.get(0)).unwrap();
    drop(c);

    let mut tgt = TargetConfig::from_url(v2).unwrap().build().unwrap();
    let p = preview(&pack, tgt.as_mut(), "acme").unwrap();
    let drifted = p.items.len();
    assert!(drifted > 100, "{drifted}");
    // Each as it was loaded: many of a chunk's rows, read from it once.
    for i in &p.items {
        let pages = i.fields.iter().find(|f| f.column == "pages").unwrap();
        assert_eq!(pages.now.as_i64().unwrap() - 1000, pages.as_loaded.as_i64().unwrap(), "{}", i.legacy_ref);
        assert_eq!(i.fields.len(), 1, "{:?}", i.fields);
    }
    let bundle_dir = dir.path().join("recovery/run-2");
    let mut src = SourceConfig::Sqlite { path: v1.clone() }.build().unwrap();
    let r = final_run(&spec, src.as_mut(), tgt.as_mut(), &p.id, &bundle_dir, &mut |_| Ok(())).unwrap();
    drop(tgt);

    first_migration(&spec, &v1, fresh);
    assert_eq!(snapshot(&pack, v2), snapshot(&pack, fresh));
    assert_eq!(r.tables["order_signature"].rewritten, before.len() as u64);
    assert_eq!((r.tables["sales_order"].inserted, r.tables["order_signature"].inserted), (1, new_signatures));
    assert_eq!(r.totals().rewritten, before.len() as u64, "{:?}", r.tables);
    // Every line of the bundle is an order signature as v2 had it before the run.
    let rows = std::fs::read_to_string(bundle_dir.join("rows.jsonl")).unwrap();
    let mut saved = BTreeMap::new();
    for line in rows.lines() {
        let l: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(l["table"], "order_signature", "{line}");
        let key = l["legacy_ref"].as_str().unwrap().to_owned();
        saved.insert(key, Value::Int(l["values"]["pages"].as_i64().unwrap()));
    }
    assert_eq!(saved, before);
    let reasons = |r: &str| rows.lines().filter(|l| l.contains(r)).count();
    assert_eq!(reasons("\"changed in v2\""), drifted, "the parallel phase's edits");
}

#[test]
fn many_rows_sqlite_target() {
    on_sqlite(a_final_migration_rewriting_many_rows);
}

#[test]
fn many_rows_postgres_target() {
    on_postgres(a_final_migration_rewriting_many_rows);
}

/// A v1 change to one record can change how untouched records map: a customer that becomes a
/// duplicate of a lower-numbered one is merged into it, and its contacts (unchanged in v1)
/// must follow to the survivor. The final migration compares what the mapping gives now with
/// what it loaded, not only the v1 records, so v2 again equals a fresh migration.
fn a_merge_in_v1_repoints_unchanged_children(v2: &str, fresh: &str) {
    let Demo { dir, v1, pack, included, opts } = demo(80, 3);
    let spec = acme(&pack, &included, &opts);
    let first = |url: &str| first_migration(&spec, &v1, url);
    first(v2);
    let c = rusqlite::Connection::open(&v1).unwrap();
    // An active customer with contacts becomes a duplicate of the lowest active customer with a VAT number.
    let (survivor, vat): (i64, String) = c
        .query_row(
            "SELECT CUSTNO, VATNO FROM CUST WHERE STATUS = 'A' AND trim(coalesce(VATNO, '')) != '' ORDER BY CUSTNO LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let merged: i64 = c
        .query_row(
            "SELECT MAX(c.CUSTNO) FROM CUST c WHERE c.STATUS = 'A' AND c.CUSTNO > ?1 \
             AND EXISTS (SELECT 1 FROM CONTACT k WHERE k.CUSTNO = c.CUSTNO) \
             AND (SELECT COUNT(*) FROM CUST d WHERE upper(replace(trim(coalesce(d.VATNO, '')), ' ', '')) = upper(replace(trim(coalesce(c.VATNO, '')), ' ', ''))) = 1",
            [survivor],
            |r| r.get(0),
        )
        .unwrap();
    c.execute("UPDATE CUST SET VATNO = ?1 WHERE CUSTNO = ?2", rusqlite::params![vat, merged]).unwrap();
    drop(c);

    let mut tgt = TargetConfig::from_url(v2).unwrap().build().unwrap();
    let p = preview(&pack, tgt.as_mut(), "acme").unwrap();
    assert!(p.items.is_empty(), "{:?}", p.items);
    let bundle_dir = dir.path().join("recovery/run-2");
    let mut src = SourceConfig::Sqlite { path: v1.clone() }.build().unwrap();
    let r = final_run(&spec, src.as_mut(), tgt.as_mut(), &p.id, &bundle_dir, &mut |_| Ok(()))
        .unwrap_or_else(|e| panic!("final migration failed: {e}"));
    drop(tgt);
    first(fresh);
    assert_eq!(snapshot(&pack, v2), snapshot(&pack, fresh));
    assert_eq!(r.tables["customer"].deleted, 1, "the merged customer");
    assert!(r.tables["contact"].rewritten >= 1, "its contacts point at the survivor now");
}

#[test]
fn merge_in_v1_sqlite_target() {
    on_sqlite(a_merge_in_v1_repoints_unchanged_children);
}

#[test]
fn merge_in_v1_postgres_target() {
    on_postgres(a_merge_in_v1_repoints_unchanged_children);
}

/// After a final migration the row state has two generations: the first migration's, and the
/// rows the final wrote. The preview then lists exactly the new edits, with the values the
/// last run loaded (of either generation), and the engine's final migration over such a state
/// (the app runs one per project) again leaves v2 equal to a fresh migration.
fn a_second_final_migration(v2: &str, fresh: &str) {
    let Demo { dir, v1, pack, included, opts } = demo(100, 5);
    let spec = acme(&pack, &included, &opts);
    first_migration(&spec, &v1, v2);
    let retitle = |n: usize| {
        let c = rusqlite::Connection::open(&v1).unwrap();
        c.execute(
            "UPDATE JOB SET TITLE = 'changed in v1' WHERE JOBNO IN (SELECT JOBNO FROM JOB WHERE STATUS IN ('10', '20') \
             AND CUSTNO < 1000000 AND TITLE != 'changed in v1' ORDER BY JOBNO LIMIT ?1)",
            [n],
        )
        .unwrap()
    };
    let final_migration = |bundle: &str| {
        let mut tgt = TargetConfig::from_url(v2).unwrap().build().unwrap();
        let p = preview(&pack, tgt.as_mut(), "acme").unwrap();
        let mut src = SourceConfig::Sqlite { path: v1.clone() }.build().unwrap();
        let r = final_run(&spec, src.as_mut(), tgt.as_mut(), &p.id, &dir.path().join(bundle), &mut |_| Ok(())).unwrap();
        (p, r)
    };
    exec_v2(v2, "UPDATE customer SET name = 'Renamed in v2' WHERE legacy_ref = 'CUST:1'");
    assert_eq!(retitle(4), 4);
    rusqlite::Connection::open(&v1)
        .unwrap()
        .execute("INSERT INTO CUST (CUSTNO, NAME, COUNTRY, PAYTERMS, CURRENCY, STATUS, CREATED) VALUES (5000, 'Nykunde AS', 'Norway', '30D', 'NOK', 'A', '2026-11-01')", [])
        .unwrap();
    let (_, r) = final_migration("recovery/run-2");
    assert_eq!((r.tables["customer"].rewritten, r.tables["customer"].inserted), (1, 1));
    let names = || -> BTreeMap<String, Value> {
        let mut t = TargetConfig::from_url(v2).unwrap().build().unwrap();
        let cols = [("legacy_ref".to_owned(), Type::Text), ("name".to_owned(), Type::Text)];
        t.read_rows("customer", &cols, None)
            .unwrap()
            .into_iter()
            .map(|r| match r.as_slice() {
                [Value::Text(k), name] => (k.clone(), name.clone()),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let loaded = names();

    // More edits in v2: a row the final rewrote, a row it inserted, one only the first
    // migration wrote; a line deleted, a contact typed in.
    let other = loaded.keys().filter(|k| !["CUST:1", "CUST:5000"].contains(&k.as_str())).max().unwrap().clone();
    exec_v2(
        v2,
        &format!("UPDATE customer SET name = 'Edited again' WHERE legacy_ref IN ('CUST:1', 'CUST:5000', '{other}')"),
    );
    exec_v2(v2, "DELETE FROM invoice_line WHERE legacy_ref = (SELECT MAX(legacy_ref) FROM invoice_line)");
    let tor = ("Tor", "Typed");
    exec_v2(v2, &typed_in_contact(v2, "00000000-0000-4000-8000-0000000000cc", "v2:typed-in", tor, "CUST:5000"));
    assert_eq!(retitle(2), 2);
    let (p, r) = final_migration("recovery/run-3");
    let mut changed: Vec<(&str, &serde_json::Value)> = p
        .items
        .iter()
        .filter(|i| i.kind == ChangeKind::Changed)
        .map(|i| {
            assert_eq!(i.table, "customer");
            let name = i.fields.iter().find(|f| f.column == "name").unwrap();
            assert_eq!(name.now, "Edited again");
            (i.legacy_ref.as_str(), &name.as_loaded)
        })
        .collect();
    changed.sort_by_key(|c| c.0);
    let as_loaded = |k: &str| match &loaded[k] {
        Value::Text(s) => serde_json::Value::String(s.clone()),
        other => panic!("{other:?}"),
    };
    let want = [as_loaded("CUST:1"), as_loaded("CUST:5000"), as_loaded(&other)];
    let mut want: Vec<(&str, &serde_json::Value)> =
        ["CUST:1", "CUST:5000", other.as_str()].into_iter().zip(want.iter()).collect();
    want.sort_by_key(|c| c.0);
    assert_eq!(changed, want, "the values the last run loaded, of either generation");
    assert_eq!(want.iter().find(|w| w.0 == "CUST:5000").unwrap().1, "Nykunde AS");
    assert_eq!(p.counts().values().map(|c| c.iter().sum::<u64>()).sum::<u64>(), 5, "{:?}", p.counts());
    assert_eq!((p.counts()["invoice_line"], p.counts()["contact"]), ([0, 0, 1], [0, 1, 0]));

    first_migration(&spec, &v1, fresh);
    assert_eq!(snapshot(&pack, v2), snapshot(&pack, fresh));
    assert_eq!(r.tables["customer"].rewritten, 3);
    assert_eq!(r.tables["sales_order"].rewritten, 2);
    assert_eq!(r.tables["invoice_line"].rewritten, 1);
    assert_eq!(r.tables["contact"].deleted, 1);
    let t = r.totals();
    assert_eq!(t.rewritten + t.inserted + t.deleted, 7, "{:?}", r.tables);
    assert_nothing_to_overwrite(&pack, v2);
}

/// A v2 row whose legacy reference the customer edited gets v1's back, as any other field.
fn an_edited_legacy_reference_is_restored(v2: &str, fresh: &str) {
    let Demo { dir, v1, pack, included, opts } = demo(60, 13);
    let spec = acme(&pack, &included, &opts);
    first_migration(&spec, &v1, v2);
    exec_v2(v2, "UPDATE customer SET legacy_ref = 'CUST:edited', name = 'Edited' WHERE legacy_ref = 'CUST:2'");
    exec_v2(v2, "UPDATE customer SET name = 'Renamed' WHERE legacy_ref = 'CUST:3'");
    let mut tgt = TargetConfig::from_url(v2).unwrap().build().unwrap();
    let p = preview(&pack, tgt.as_mut(), "acme").unwrap();
    let edited: Vec<Vec<&str>> = p.items.iter().map(|i| i.fields.iter().map(|f| f.column.as_str()).collect()).collect();
    assert_eq!(edited, [vec!["legacy_ref", "name"], vec!["name"]], "{:?}", p.items);
    let mut src = SourceConfig::Sqlite { path: v1.clone() }.build().unwrap();
    let bundle = dir.path().join("recovery");
    let r = final_run(&spec, src.as_mut(), tgt.as_mut(), &p.id, &bundle, &mut |_| Ok(())).unwrap();
    drop(tgt);
    assert_eq!(r.tables["customer"].rewritten, 2);
    first_migration(&spec, &v1, fresh);
    assert_eq!(snapshot(&pack, v2), snapshot(&pack, fresh));
}

#[test]
fn edited_legacy_reference_sqlite_target() {
    on_sqlite(an_edited_legacy_reference_is_restored);
}

#[test]
fn edited_legacy_reference_postgres_target() {
    on_postgres(an_edited_legacy_reference_is_restored);
}

/// A preview kept with v2's change stamp stands in for taking it again in the final migration's
/// transaction only while nothing changed v2: the run then does exactly what it does after
/// taking it again; an edit after the preview, or another file, makes the run take it again.
#[test]
fn a_kept_preview_stands_in_only_while_v2_is_unchanged() {
    let Demo { dir, v1, pack, included, opts } = demo(100, 12);
    let spec = acme(&pack, &included, &opts);
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (v2, copy, edited) = (path("v2.db"), path("copy.db"), path("edited.db"));
    first_migration(&spec, &v1, &v2);
    rename_in_v2_and_change_in_v1(&[&v2], &v1);
    std::fs::copy(&v2, &copy).unwrap();
    std::fs::copy(&v2, &edited).unwrap();
    let kept_of = |url: &str| {
        let mut tgt = TargetConfig::from_url(url).unwrap().build().unwrap();
        let (p, stamp) = preview_alone(&pack, tgt.as_mut(), "acme").unwrap();
        StampedPreview::new("acme", &pack, stamp.unwrap(), p)
    };
    let final_with = |url: &str, kept: &StampedPreview, bundle: &str| {
        let mut tgt = TargetConfig::from_url(url).unwrap().build().unwrap();
        let checked = final_begin(&pack, tgt.as_mut(), "acme", &kept.preview.id, Some(kept.clone()))?;
        let mut src = SourceConfig::Sqlite { path: v1.clone() }.build().unwrap();
        final_run_checked(&spec, src.as_mut(), tgt.as_mut(), checked, &dir.path().join(bundle), &mut |_| Ok(()))
    };

    // Edited after its preview was kept: the run takes it again, finds the edit, and stops.
    let stale = kept_of(&edited);
    let mut tgt = TargetConfig::from_url(&edited).unwrap().build().unwrap();
    assert!(stale.holds(&pack, tgt.as_mut(), "acme"));
    exec_v2(&edited, "UPDATE customer SET name = 'Edited after the preview' WHERE legacy_ref = 'CUST:2'");
    assert!(!stale.holds(&pack, tgt.as_mut(), "acme"));
    drop(tgt);
    let refused = final_with(&edited, &stale, "recovery-edited").unwrap_err();
    assert!(matches!(refused, cutover_engine::run::EngineError::StalePreview { .. }), "{refused}");
    // Kept for another account or pack, or altered, it is not taken either.
    let mut tgt = TargetConfig::from_url(&v2).unwrap().build().unwrap();
    let kept = kept_of(&v2);
    assert!(kept.holds(&pack, tgt.as_mut(), "acme"));
    assert!(!kept.holds(&pack, tgt.as_mut(), "other"));
    assert!(!StampedPreview { pack_digest: pack.digest ^ 1, ..kept.clone() }.holds(&pack, tgt.as_mut(), "acme"));
    let mut altered = kept.clone();
    altered.preview.items.clear();
    assert!(!altered.holds(&pack, tgt.as_mut(), "acme"));
    drop(tgt);

    // Unchanged: the kept preview is taken as it is, and the run does what it does on the copy,
    // an identical file that is not the one the preview was kept for.
    let reused = final_with(&v2, &kept, "recovery-v2").unwrap();
    let again = final_with(&copy, &kept, "recovery-copy").unwrap();
    assert_kept_does_what_taken_again_does(&pack, (&reused, &v2), (&again, &copy));
}

/// The v1 change and the v2 edit both kept-preview tests make after the first migration: a
/// customer renamed in v2, a job's title changed in v1.
fn rename_in_v2_and_change_in_v1(v2: &[&str], v1: &std::path::Path) {
    for url in v2 {
        exec_v2(url, "UPDATE customer SET name = 'Renamed in v2' WHERE legacy_ref = 'CUST:1'");
    }
    let c = rusqlite::Connection::open(v1).unwrap();
    c.execute("UPDATE JOB SET TITLE = 'changed in v1' WHERE JOBNO = (SELECT MIN(JOBNO) FROM JOB)", []).unwrap();
}

/// A final migration that took the kept preview (`reused`, on v2 `a`) did exactly what one that
/// took it again (`again`, on the identical v2 `b`) did, after the edits of
/// [`rename_in_v2_and_change_in_v1`].
fn assert_kept_does_what_taken_again_does(
    pack: &Pack,
    (reused, a): (&cutover_engine::delta::FinalReport, &str),
    (again, b): (&cutover_engine::delta::FinalReport, &str),
) {
    assert!(reused.preview_reused && !again.preview_reused);
    assert_eq!(reused.tables, again.tables);
    assert_eq!(reused.run.entities, again.run.entities);
    assert_eq!(reused.tables["customer"].rewritten, 1);
    assert_eq!(reused.tables["sales_order"].rewritten, 1);
    assert_eq!((reused.bundle.rows, reused.bundle.sha256.clone()), (again.bundle.rows, again.bundle.sha256.clone()));
    assert_eq!(snapshot(pack, a), snapshot(pack, b));
    assert_nothing_to_overwrite(pack, a);
}

/// On PostgreSQL the change stamp is the server's, and any write on the server moves it. The
/// preview also counts the account's rows and row state in its snapshot: a kept preview stands
/// in for taking it again while the run counts the same, none of them written since that
/// snapshot. An edit, a deletion, or a write by a transaction in progress while the preview was
/// taken makes the run take it again; writes elsewhere (another database, another account's
/// rows) do not, and taken as kept the run does exactly what it does after taking it again.
#[test]
fn a_kept_preview_stands_in_on_postgres_while_the_account_is_unchanged() {
    let (Some(a), Some(b)) = (TestDb::postgres(), TestDb::postgres()) else { return };
    let Demo { dir, v1, pack, included, opts } = demo(100, 12);
    let spec = acme(&pack, &included, &opts);
    for url in [&a.url, &b.url] {
        first_migration(&spec, &v1, url);
    }
    rename_in_v2_and_change_in_v1(&[&a.url, &b.url], &v1);
    let target = |url: &str| TargetConfig::from_url(url).unwrap().build().unwrap();
    let source = || SourceConfig::Sqlite { path: v1.clone() }.build().unwrap();
    // Taken in a snapshot, the preview has the snapshot's stamp however busy the server is.
    let kept_of = |url: &str| {
        let (p, stamp) = preview_alone(&pack, target(url).as_mut(), "acme").unwrap();
        let stamp = stamp.expect("a preview taken in a snapshot comes with its stamp");
        let customers = target(url).read_rows("customer", &[("id".into(), Type::Uuid)], None).unwrap().len() as u64;
        assert!(
            stamp.census.as_ref().is_some_and(|c| c.rows["customer"] == customers && c.state_chunks > 0),
            "{stamp:?}"
        );
        StampedPreview::new("acme", &pack, stamp, p)
    };
    let holds = |kept: &StampedPreview| kept.holds(&pack, target(&a.url).as_mut(), "acme");
    // A row written after a transaction in progress during the preview began counts as
    // written since (whether a savepoint of that transaction wrote it cannot be told), so a
    // preview that must hold is taken while no other test is writing.
    let quiet_kept_of = |url: &str| {
        (0..200)
            .find_map(|_| {
                let kept = kept_of(url);
                let quiet = kept.stamp.ends_with(':');
                if !quiet {
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                quiet.then_some(kept)
            })
            .expect("a preview taken while no transaction wrote")
    };

    // Edited after its preview was kept: the run takes it again, finds the edit, and stops.
    let stale = kept_of(&a.url);
    exec_v2(&a.url, "UPDATE customer SET name = name || ' (edited)' WHERE legacy_ref = 'CUST:2'");
    assert!(!holds(&stale));
    let mut tgt = target(&a.url);
    let refused = final_begin(&pack, tgt.as_mut(), "acme", &stale.preview.id, Some(stale.clone())).unwrap_err();
    assert!(matches!(refused, cutover_engine::run::EngineError::StalePreview { .. }), "{refused}");
    drop(tgt);
    // Edited back, the rows read the same but were written since: taken again all the same.
    exec_v2(&a.url, "UPDATE customer SET name = left(name, -length(' (edited)')) WHERE legacy_ref = 'CUST:2'");
    assert!(!holds(&stale));

    // A row deleted after the preview: the account has one row fewer. Put back, it was
    // written since.
    let kept = kept_of(&a.url);
    let line = "(SELECT min(legacy_ref) FROM invoice_line)";
    exec_v2(
        &a.url,
        &format!(
            "CREATE TABLE gone AS SELECT * FROM invoice_line WHERE legacy_ref = {line}; DELETE FROM invoice_line WHERE id IN (SELECT id FROM gone)"
        ),
    );
    assert!(!holds(&kept));
    exec_v2(&a.url, "INSERT INTO invoice_line SELECT * FROM gone; DROP TABLE gone");
    assert!(!holds(&kept));

    // A transaction in progress while the preview was taken, committed after it: the preview
    // did not see what it wrote, in a savepoint here. A later transaction committed first, so
    // the preview's snapshot lists it as in progress, below the first id it did not see.
    let mut writer = Session::open(&a.url).unwrap();
    writer
        .exec("BEGIN; SAVEPOINT s; UPDATE customer SET name = name || ' (meanwhile)' WHERE legacy_ref = 'CUST:3'")
        .unwrap();
    exec_v2(&b.url, "CREATE TABLE committed_meanwhile (x integer)");
    let kept = kept_of(&a.url);
    let snapshot: Vec<&str> = kept.stamp.split(':').skip(3).collect();
    assert!(
        snapshot[0].parse::<u64>().unwrap() < snapshot[1].parse().unwrap() && !snapshot[2].is_empty(),
        "{snapshot:?}"
    );
    writer.exec("RELEASE SAVEPOINT s; COMMIT").unwrap();
    drop(writer);
    assert!(!holds(&kept));
    exec_v2(&a.url, "UPDATE customer SET name = left(name, -length(' (meanwhile)')) WHERE legacy_ref = 'CUST:3'");

    // Writes elsewhere move the stamp, not the account's rows: another database, another
    // account's row in the same table (typed in, then removed).
    let kept = quiet_kept_of(&a.url);
    exec_v2(&b.url, "CREATE TABLE written_elsewhere (x integer)");
    let other = "'00000000-0000-4000-8000-0000000000bb'";
    exec_v2(
        &a.url,
        &format!(
            "INSERT INTO account (id, name, legacy_ref) VALUES ({other}, 'Other', 'other'); \
             CREATE TEMP TABLE c AS SELECT * FROM customer WHERE legacy_ref = 'CUST:4'; \
             UPDATE c SET id = '00000000-0000-4000-8000-0000000000cc', account_id = {other}; \
             INSERT INTO customer SELECT * FROM c"
        ),
    );
    assert_ne!(target(&a.url).change_stamp().unwrap().as_deref(), Some(kept.stamp.as_str()));
    assert!(holds(&kept));
    exec_v2(
        &a.url,
        &format!("DELETE FROM customer WHERE account_id = {other}; DELETE FROM account WHERE id = {other}"),
    );
    assert!(holds(&kept));
    // Kept in another database's snapshot, it does not hold here.
    assert!(!kept_of(&b.url).holds(&pack, target(&a.url).as_mut(), "acme"));

    // The run takes it as kept, a checkpoint between them or not, and does what a run that took
    // it again does.
    exec_v2(&a.url, "CHECKPOINT");
    let mut tgt = target(&a.url);
    let checked = final_begin(&pack, tgt.as_mut(), "acme", &kept.preview.id, Some(kept.clone())).unwrap();
    assert!(checked.reused);
    let bundle = dir.path().join("recovery-a");
    let reused = final_run_checked(&spec, source().as_mut(), tgt.as_mut(), checked, &bundle, &mut |_| Ok(())).unwrap();
    drop(tgt);
    let ack = kept_of(&b.url).preview.id;
    let bundle = dir.path().join("recovery-b");
    let again = final_run(&spec, source().as_mut(), target(&b.url).as_mut(), &ack, &bundle, &mut |_| Ok(())).unwrap();
    assert_kept_does_what_taken_again_does(&pack, (&reused, &a.url), (&again, &b.url));
    // After the run, the preview it took as kept no longer holds: the run wrote the rows.
    assert!(!holds(&kept));
    // Nor does one whose row state was written since, though no v2 row was.
    let kept = quiet_kept_of(&b.url);
    assert!(kept.holds(&pack, target(&b.url).as_mut(), "acme"));
    exec_v2(&b.url, "UPDATE cutover_state SET n = n WHERE ctid = (SELECT min(ctid) FROM cutover_state)");
    assert!(!kept.holds(&pack, target(&b.url).as_mut(), "acme"));
}

#[test]
fn second_final_sqlite_target() {
    on_sqlite(a_second_final_migration);
}

#[test]
fn second_final_postgres_target() {
    on_postgres(a_second_final_migration);
}

/// The final migration keeps an unchanged record's row without mapping it again, but only
/// when nothing else that decides its mapping changed: its warnings are reported again, a
/// parent that drops out takes its unchanged children along, and a changed option or scope
/// maps every record anew. Each time v2 equals a fresh migration of the same v1.
fn what_the_final_migration_keeps_and_what_it_maps_again(v2: &str, fresh: &str) {
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1.db");
    cutover_demo::generate(&v1, Spec { customers: 80, seed: 5, cutoff: DEFAULT_CUTOFF }).unwrap();
    // An order's quantity stored as text with a no-break space after it, which SQLite keeps as
    // text and the reader takes for the number: its record fingerprints as loaded only once decoded (the final migration reads
    // v1 lazily, the key decoded and the rest as stored), and must be kept all the same.
    let c = rusqlite::Connection::open(&v1).unwrap();
    let tabbed = c
        .execute(
            "UPDATE JOB SET QTY = CAST(QTY AS TEXT) || char(160) WHERE JOBNO = (SELECT MAX(JOBNO) FROM JOB \
             WHERE STATUS IN ('10', '20') AND QTY IS NOT NULL)",
            [],
        )
        .unwrap();
    assert_eq!(tabbed, 1);
    let stored: String =
        c.query_row("SELECT typeof(QTY) FROM JOB WHERE QTY LIKE '%' || char(160)", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, "text");
    drop(c);
    let pack = PackSource::Builtin.load("omikai").unwrap();
    let (included, opts) = scope(&pack);
    let spec = acme(&pack, &included, &opts);
    let loaded = first_migration(&spec, &v1, v2);
    let final_of = |spec: &RunSpec<'_>, run_no: u32| {
        let mut tgt = TargetConfig::from_url(v2).unwrap().build().unwrap();
        let p = preview(&pack, tgt.as_mut(), "acme").unwrap();
        let mut src = SourceConfig::Sqlite { path: v1.clone() }.build().unwrap();
        let bundle = dir.path().join(format!("recovery/run-{run_no}"));
        final_run(spec, src.as_mut(), tgt.as_mut(), &p.id, &bundle, &mut |_| Ok(())).unwrap()
    };

    // Nothing changed: every row is kept, and every warning is reported again.
    let r = final_of(&spec, 2);
    let (t, first_t) = (r.totals(), loaded.totals());
    assert_eq!((t.inserted, t.rewritten, t.deleted), (0, 0, 0), "{:?}", r.tables);
    assert_eq!(t.unchanged, first_t.migrated);
    assert!(first_t.warned > 0, "the demo data has warnings");
    let rt = r.run.totals();
    assert_eq!(
        (rt.migrated, rt.warned, rt.excluded, rt.rejected),
        (first_t.migrated, first_t.warned, first_t.excluded, first_t.rejected)
    );
    assert_eq!(rt.reasons, first_t.reasons);

    // An open order with editions falls before the history cut-off now: its editions, unchanged
    // in v1, are excluded with it and leave v2.
    let c = rusqlite::Connection::open(&v1).unwrap();
    let (job, editions): (i64, i64) = c
        .query_row(
            "SELECT j.JOBNO, COUNT(*) FROM JOB j JOIN JOBEDITION e ON e.JOBNO = j.JOBNO WHERE j.STATUS IN ('10', '20') \
             GROUP BY j.JOBNO ORDER BY j.JOBNO LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    c.execute("UPDATE JOB SET STATUS = '90', ORDERDATE = '01.01.2001' WHERE JOBNO = ?1", [job]).unwrap();
    drop(c);
    let r = final_of(&spec, 3);
    first_migration(&spec, &v1, fresh);
    assert_eq!(snapshot(&pack, v2), snapshot(&pack, fresh));
    assert_eq!(r.tables["sales_order"].deleted, 1);
    assert_eq!(r.tables["order_edition"].deleted, editions as u64);

    // Another option: customers sharing a VAT number are no longer merged, so the duplicates
    // come in as customers of their own and their children point at them.
    let no_merge: BTreeMap<String, String> = [("merge_duplicate_customers".to_owned(), "no".to_owned())].into();
    let spec = acme(&pack, &included, &no_merge);
    let r = final_of(&spec, 4);
    first_migration(&spec, &v1, fresh);
    assert_eq!(snapshot(&pack, v2), snapshot(&pack, fresh));
    assert!(r.tables["customer"].inserted >= 1, "{:?}", r.tables);
    assert_eq!(r.run.totals().reason(cutover_engine::run::Bucket::Excluded, "merged_duplicate"), 0);
}

#[test]
fn keep_or_map_again_sqlite_target() {
    on_sqlite(what_the_final_migration_keeps_and_what_it_maps_again);
}

#[test]
fn keep_or_map_again_postgres_target() {
    on_postgres(what_the_final_migration_keeps_and_what_it_maps_again);
}

/// Fingerprints of rows, per table.
type TableRows = Vec<(String, Vec<u64>)>;
/// Row-state chunks: table, generation, chunk, transaction.
type Chunks = Vec<(String, i32, i32, i64)>;

/// Every v2 row of an account, fingerprinted, per table; and its row-state chunks.
fn account_rows(pack: &Pack, url: &str, key: &str) -> (TableRows, Chunks) {
    let id = cutover_engine::run::account_uuid(key);
    let mut t = TargetConfig::from_url(url).unwrap().build().unwrap();
    let rows = cutover_engine::verify::table_fingerprints(t.as_mut(), &pack.v2, Some(id)).unwrap();
    let mut chunks = Vec::new();
    for table in pack.entities.iter().filter_map(|e| e.target.as_ref()) {
        t.scan_state(id, &table.table, true, &mut |h| {
            chunks.push((table.table.clone(), h.generation, h.chunk, h.xid));
            Ok(())
        })
        .unwrap();
    }
    (rows, chunks)
}

/// Two accounts in one PostgreSQL database: migrating, verifying, previewing and the final
/// migration of one never show or change the other's rows, nor its row state.
#[test]
fn tenants_sharing_a_database_never_touch_each_other() {
    let Some(pg) = TestDb::postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (v1_acme, v1_nord) = (dir.path().join("acme.db"), dir.path().join("nordlys.db"));
    cutover_demo::generate(&v1_acme, Spec { customers: 60, seed: 21, cutoff: DEFAULT_CUTOFF }).unwrap();
    cutover_demo::generate(&v1_nord, Spec { customers: 50, seed: 22, cutoff: DEFAULT_CUTOFF }).unwrap();
    let pack = PackSource::Builtin.load("omikai").unwrap();
    let (included, opts) = scope(&pack);
    let acme_spec = acme(&pack, &included, &opts);
    let nord_spec = RunSpec { account_key: "nordlys", account_name: "Nordlys", ..acme_spec.clone() };
    first_migration(&acme_spec, &v1_acme, &pg.url);
    let nord_first = first_migration(&nord_spec, &v1_nord, &pg.url);
    // Each has drifted in v2; acme's drift stays acme's business.
    exec_v2(
        &pg.url,
        &format!(
            "UPDATE customer SET name = 'acme edit' WHERE account_id = '{}' AND legacy_ref = 'CUST:1'",
            cutover_engine::run::account_uuid("acme")
        ),
    );
    let acme_before = account_rows(&pack, &pg.url, "acme");
    exec_v2(
        &pg.url,
        &format!(
            "UPDATE customer SET name = 'nordlys edit' WHERE account_id = '{}' AND legacy_ref = 'CUST:2'",
            cutover_engine::run::account_uuid("nordlys")
        ),
    );

    let mut tgt = TargetConfig::from_url(&pg.url).unwrap().build().unwrap();
    let mut src = SourceConfig::Sqlite { path: v1_nord.clone() }.build().unwrap();
    let v = cutover_engine::verify::verify(&nord_spec, src.as_mut(), tgt.as_mut(), &Default::default()).unwrap();
    let nord_rows: u64 = nord_first.entities.iter().map(|e| e.migrated).sum();
    assert_eq!(v.rows_compared, nord_rows, "only nordlys's rows are compared");
    assert_eq!(v.differences_total, 1, "{:?}", v.differences);
    assert!(v.differences.iter().all(|d| d.legacy_ref == "CUST:2"));
    let p = preview(&pack, tgt.as_mut(), "nordlys").unwrap();
    assert_eq!(p.items.len(), 1, "{:?}", p.items);
    assert_eq!((p.items[0].legacy_ref.as_str(), p.items[0].now_row["name"].as_str()), ("CUST:2", Some("nordlys edit")));

    // nordlys's v1 changes, and its final migration runs.
    let c = rusqlite::Connection::open(&v1_nord).unwrap();
    c.execute("UPDATE JOB SET TITLE = TITLE || ' (rev)' WHERE JOBNO % 5 = 0", []).unwrap();
    c.execute("DELETE FROM CONTACT WHERE CONTNO = (SELECT MAX(CONTNO) FROM CONTACT)", []).unwrap();
    drop(c);
    let bundle = dir.path().join("recovery/nordlys");
    let r = final_run(&nord_spec, src.as_mut(), tgt.as_mut(), &p.id, &bundle, &mut |_| Ok(())).unwrap();
    assert!(r.totals().rewritten > 0);
    drop(tgt);
    assert_eq!(account_rows(&pack, &pg.url, "acme"), acme_before, "acme's rows and row state are as they were");
    let rows = std::fs::read_to_string(bundle.join("rows.jsonl")).unwrap();
    assert!(!rows.contains("acme edit") && rows.contains("nordlys edit"), "{rows}");
    // And acme's own preview still shows its own drift, and only that.
    let mut tgt = TargetConfig::from_url(&pg.url).unwrap().build().unwrap();
    let p = preview(&pack, tgt.as_mut(), "acme").unwrap();
    assert_eq!(p.items.len(), 1, "{:?}", p.items);
    assert_eq!(p.items[0].now_row["name"].as_str(), Some("acme edit"));
}
