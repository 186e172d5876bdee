//! Verification finds exactly the differences planted in v2, on SQLite and PostgreSQL targets.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use cutover_demo::{DEFAULT_CUTOFF, Spec};
use cutover_engine::connect::{SourceConfig, TargetConfig};
use cutover_engine::pack::{Pack, PackSource};
use cutover_engine::run::{RunSpec, run};
use cutover_engine::verify::{DiffKind, VerifyOptions, verify};
use cutover_testkit::{TestDb, typed_in_contact};

fn spec<'a>(pack: &'a Pack, included: &'a [String], opts: &'a BTreeMap<String, String>) -> RunSpec<'a> {
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

fn exec(url: &str, sql: &str) {
    cutover_testkit::exec(url, sql).unwrap();
}

/// Demo v1 data of `customers` in `dir`, and the omikai pack with every entity in scope.
fn demo(dir: &std::path::Path, customers: u32, seed: u64) -> (std::path::PathBuf, Pack, Vec<String>) {
    let v1 = dir.join("v1.db");
    cutover_demo::generate(&v1, Spec { customers, seed, cutoff: DEFAULT_CUTOFF }).unwrap();
    let pack = PackSource::Builtin.load("omikai").unwrap();
    let included: Vec<String> = pack.template.entities.iter().map(|e| e.name.clone()).collect();
    (v1, pack, included)
}

fn planted_differences_are_found_and_nothing_else(v2: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (v1, pack, included) = demo(dir.path(), 150, 9);
    let opts = BTreeMap::new();
    let s = spec(&pack, &included, &opts);
    let mut src = SourceConfig::Sqlite { path: v1 }.build().unwrap();
    let mut tgt = TargetConfig::from_url(v2).unwrap().build().unwrap();
    run(&s, src.as_mut(), Some(tgt.as_mut()), &mut |_| Ok(())).unwrap();

    let vo = VerifyOptions { entity: None, sample: 3 };
    let clean = verify(&s, src.as_mut(), tgt.as_mut(), &vo).unwrap();
    assert!(clean.clean(), "{:?}", clean.differences);
    assert!(clean.rows_compared > 1000);
    assert!(clean.aggregates.iter().any(|a| a.name == "invoice totals per currency and status"));
    assert_eq!(clean.samples.iter().filter(|x| x.entity == "customer").count(), 3);
    let sample = clean.samples.iter().find(|x| x.entity == "invoice").unwrap();
    assert!(sample.v1.contains_key("TOTAL_EX_VAT") && sample.v2.contains_key("total_ex_vat_minor"), "{sample:?}");
    // Same sample the second time: reports are reproducible.
    assert_eq!(verify(&s, src.as_mut(), tgt.as_mut(), &vo).unwrap().samples, clean.samples);

    // Plant one changed field, one missing row and one extra row.
    let customer: String =
        clean.samples.iter().find(|x| x.entity == "customer").unwrap().v2["legacy_ref"].as_str().unwrap().to_owned();
    let line = clean.samples.iter().find(|x| x.entity == "invoice_line").unwrap().v2["legacy_ref"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(tgt);
    exec(v2, &format!("UPDATE customer SET name = 'Changed in v2' WHERE legacy_ref = '{customer}'"));
    exec(v2, &format!("DELETE FROM invoice_line WHERE legacy_ref = '{line}'"));
    exec(v2, &typed_in_contact(v2, "00000000-0000-4000-8000-000000000001", "NEW:1", ("Nina", "New"), &customer));
    // And 60 unchanged lines moved to the end of the table: v2 no longer gives them in the
    // order v1 does, which verify must not take for a difference.
    exec(
        v2,
        &format!(
            "CREATE TEMP TABLE moved AS SELECT * FROM invoice_line WHERE legacy_ref IN \
             (SELECT legacy_ref FROM invoice_line WHERE legacy_ref <> '{line}' ORDER BY legacy_ref LIMIT 60); \
             DELETE FROM invoice_line WHERE legacy_ref IN (SELECT legacy_ref FROM moved); \
             INSERT INTO invoice_line SELECT * FROM moved"
        ),
    );
    let mut tgt = TargetConfig::from_url(v2).unwrap().build().unwrap();
    let r = verify(&s, src.as_mut(), tgt.as_mut(), &vo).unwrap();
    assert_eq!(r.differences_total, 3, "{:#?}", r.differences);
    let kinds: Vec<(DiffKind, &str, &str)> =
        r.differences.iter().map(|d| (d.kind, d.table.as_str(), d.legacy_ref.as_str())).collect();
    assert!(kinds.contains(&(DiffKind::Changed, "customer", customer.as_str())), "{kinds:?}");
    assert!(kinds.contains(&(DiffKind::Missing, "invoice_line", line.as_str())), "{kinds:?}");
    assert!(kinds.contains(&(DiffKind::Extra, "contact", "NEW:1")), "{kinds:?}");
    let changed = r.differences.iter().find(|d| d.kind == DiffKind::Changed).unwrap();
    assert_eq!(changed.fields.len(), 1);
    assert_eq!((changed.fields[0].column.as_str(), changed.fields[0].actual.as_str()), ("name", Some("Changed in v2")));
    // Counts are flagged exactly where rows are missing or extra.
    let flagged: Vec<&str> = r.entities.iter().filter(|e| !e.explained).map(|e| e.entity.as_str()).collect();
    assert_eq!(
        flagged,
        ["invoice_line"],
        "the extra contact has no v1 source table, so it shows as a row, not a count"
    );
    assert!(r.aggregates.iter().all(|a| a.equal), "totals of other tables are unaffected");
    assert!(!r.clean());
    // Verifying one entity looks at its table only.
    let one =
        verify(&s, src.as_mut(), tgt.as_mut(), &VerifyOptions { entity: Some("customer".into()), sample: 0 }).unwrap();
    assert_eq!(one.differences_total, 1);
    assert_eq!(one.entities.len(), 1);
}

#[test]
fn sqlite_target() {
    let dir = tempfile::tempdir().unwrap();
    planted_differences_are_found_and_nothing_else(dir.path().join("v2.db").to_str().unwrap());
}

#[test]
fn postgres_target() {
    let Some(db) = TestDb::postgres() else { return };
    planted_differences_are_found_and_nothing_else(&db.url);
}

/// A v2 table verify cannot read stops it with an error that names the table: the thread
/// reading v2 beside the mapping reports it instead of leaving the mapping waiting.
#[test]
fn a_v2_table_that_cannot_be_read_stops_verify_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, pack, included) = demo(dir.path(), 20, 3);
    let opts = BTreeMap::new();
    let s = spec(&pack, &included, &opts);
    let v2 = dir.path().join("v2.db");
    let v2 = v2.to_str().unwrap();
    let mut src = SourceConfig::Sqlite { path: v1 }.build().unwrap();
    let mut tgt = TargetConfig::from_url(v2).unwrap().build().unwrap();
    run(&s, src.as_mut(), Some(tgt.as_mut()), &mut |_| Ok(())).unwrap();
    drop(tgt);
    exec(v2, "PRAGMA foreign_keys = OFF; ALTER TABLE invoice_line RENAME TO invoice_line_gone");
    let mut tgt = TargetConfig::from_url(v2).unwrap().build().unwrap();
    let err = verify(&s, src.as_mut(), tgt.as_mut(), &VerifyOptions::default()).unwrap_err().to_string();
    assert!(err.contains("invoice_line") && !err.contains("thread stopped"), "{err}");
}
