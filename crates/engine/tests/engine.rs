//! The engine against generated Omikai 1 data: exact buckets, both targets, idempotence, dry runs.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use cutover_demo::{DEFAULT_CUTOFF, Manifest, Spec};
use cutover_engine::connect::{SourceConfig, Target, TargetConfig};
use cutover_engine::pack::{Pack, PackSource};
use cutover_engine::run::{Bucket, LedgerRecord, RunReport, RunSpec, run};
use cutover_testkit::TestDb;

fn pack() -> Pack {
    PackSource::Builtin.load("omikai").unwrap()
}

fn all_scope(p: &Pack) -> Vec<String> {
    p.template.entities.iter().map(|e| e.name.clone()).collect()
}

fn migrate(p: &Pack, v1: &Path, v2: Option<&str>, included: &[String]) -> (RunReport, Vec<LedgerRecord>) {
    let mut source = SourceConfig::Sqlite { path: v1.to_owned() }.build().unwrap();
    let mut target = v2.map(|u| TargetConfig::from_url(u).unwrap().build().unwrap());
    let opts = BTreeMap::new();
    let spec = RunSpec {
        pack: p,
        account_key: "acme",
        account_name: "Acme Print AS",
        included,
        cutoff: DEFAULT_CUTOFF,
        options: &opts,
        progress: false,
    };
    let mut ledger = Vec::new();
    let report = run(&spec, source.as_mut(), target.as_deref_mut().map(|t| t as &mut dyn Target), &mut |batch| {
        ledger.extend(batch);
        Ok(())
    })
    .unwrap_or_else(|e| panic!("run failed: {e}"));
    (report, ledger)
}

fn generate(dir: &Path, customers: u32) -> (std::path::PathBuf, Manifest) {
    let path = dir.join("v1.db");
    let m = cutover_demo::generate(&path, Spec { customers, seed: 42, cutoff: DEFAULT_CUTOFF }).unwrap();
    (path, m)
}

/// Every entity's counts equal what the generator planted, reason by reason.
fn assert_matches_manifest(report: &RunReport, m: &Manifest) {
    for (name, exp) in &m.entities {
        let got = report.entity(name).unwrap_or_else(|| panic!("no report for {name}"));
        assert!(got.adds_up(), "{name}: read {} != {} + {} + {}", got.read, got.migrated, got.excluded, got.rejected);
        assert_eq!(got.read, exp.read, "{name}: read");
        assert_eq!(
            got.migrated,
            exp.bucket("migrated"),
            "{name}: migrated; expected {:?}, got {:?}",
            exp.outcomes,
            got.reasons
        );
        assert_eq!(
            got.excluded,
            exp.bucket("excluded"),
            "{name}: excluded; expected {:?}, got {:?}",
            exp.outcomes,
            got.reasons
        );
        assert_eq!(
            got.rejected,
            exp.bucket("rejected"),
            "{name}: rejected; expected {:?}, got {:?}",
            exp.outcomes,
            got.reasons
        );
        for (k, v) in exp.outcomes.iter().filter(|(k, _)| *k != "migrated") {
            assert_eq!(got.reasons.get(k).copied().unwrap_or(0), *v, "{name}: {k}");
        }
        let unexpected: Vec<_> = got.reasons.keys().filter(|k| !exp.outcomes.contains_key(*k)).collect();
        assert!(unexpected.is_empty(), "{name}: unexpected reasons {unexpected:?}");
    }
    assert_eq!(report.entities.len(), m.entities.len());
}

#[test]
fn sqlite_to_sqlite_buckets_match_the_planted_cases() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, m) = generate(dir.path(), 600);
    let p = pack();
    let v2 = dir.path().join("v2.db");
    let (report, ledger) = migrate(&p, &v1, Some(v2.to_str().unwrap()), &all_scope(&p));
    assert_matches_manifest(&report, &m);
    // The ledger holds exactly the records that were not simply migrated, with their originals.
    let t = report.totals();
    assert_eq!(ledger.len() as u64, t.warned + t.excluded + t.rejected);
    let deleted = ledger.iter().find(|l| l.entity == "customer" && l.reason == "deleted_in_v1").unwrap();
    assert!(deleted.original.contains("\"STATUS\":\"X\""), "{}", deleted.original);
    let orphan = ledger.iter().find(|l| l.entity == "contact" && l.reason == "orphan").unwrap();
    assert!(orphan.message.contains("does not exist in v1"), "{}", orphan.message);
    assert_eq!(orphan.bucket, Bucket::Rejected);
    // v2 holds exactly the migrated rows, and its constraints hold.
    let c = rusqlite::Connection::open(&v2).unwrap();
    for e in &report.entities {
        if let Some(table) = &e.target {
            let n: i64 = c
                .query_row(&format!("SELECT COUNT(*) FROM {table} WHERE legacy_ref LIKE '{}:%'", e.source), [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(n as u64, e.migrated, "{table}");
        }
    }
    let fk: i64 = c.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).unwrap();
    assert_eq!(fk, 0);
    let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    // Children of a merged duplicate point at the survivor.
    let merged = ledger.iter().find(|l| l.reason == "merged_duplicate").unwrap();
    assert!(merged.message.contains("CUST:"), "{}", merged.message);
}

#[test]
fn sqlite_to_postgres_gives_the_same_buckets_and_rows() {
    let Some(pg) = TestDb::postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (v1, m) = generate(dir.path(), 300);
    let p = pack();
    let (report, _) = migrate(&p, &v1, Some(&pg.url), &all_scope(&p));
    assert_matches_manifest(&report, &m);
    let v2 = dir.path().join("v2.db");
    let (lite, _) = migrate(&p, &v1, Some(v2.to_str().unwrap()), &all_scope(&p));
    assert_eq!(report.entities, lite.entities);
    // Same rows in both targets, value for value.
    let mut pg_t = TargetConfig::from_url(&pg.url).unwrap().build().unwrap();
    let mut lite_t = TargetConfig::from_url(v2.to_str().unwrap()).unwrap().build().unwrap();
    for table in &p.v2.tables {
        let cols: Vec<_> = table.columns.iter().map(|c| (c.name.clone(), c.ty)).collect();
        let a = pg_t.read_rows(&table.name, &cols, None).unwrap();
        let b = lite_t.read_rows(&table.name, &cols, None).unwrap();
        assert_eq!(a.len(), b.len(), "{}", table.name);
        assert_eq!(a, b, "{}", table.name);
    }
}

#[test]
fn running_twice_gives_the_same_v2_and_dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, m) = generate(dir.path(), 150);
    let p = pack();
    let scope = all_scope(&p);
    let dry_path = dir.path().join("dry.db");
    let (dry, dry_ledger) = migrate(&p, &v1, None, &scope);
    assert!(dry.dry_run);
    assert_eq!(dry.written, 0);
    assert!(!dry_path.exists());
    assert_matches_manifest(&dry, &m);
    let v2 = dir.path().join("v2.db");
    let url = v2.to_str().unwrap();
    let (first, ledger) = migrate(&p, &v1, Some(url), &scope);
    assert_eq!(first.entities, dry.entities);
    assert_eq!(ledger, dry_ledger);
    let snapshot = |url: &str| {
        let mut t = TargetConfig::from_url(url).unwrap().build().unwrap();
        p.v2.tables
            .iter()
            .map(|table| {
                let cols: Vec<_> = table.columns.iter().map(|c| (c.name.clone(), c.ty)).collect();
                t.read_rows(&table.name, &cols, None).unwrap()
            })
            .collect::<Vec<_>>()
    };
    let before = snapshot(url);
    let (second, _) = migrate(&p, &v1, Some(url), &scope);
    assert_eq!(second.entities, first.entities);
    assert_eq!(snapshot(url), before);
}

#[test]
fn excluding_an_entity_by_scope_cascades_to_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, m) = generate(dir.path(), 150);
    let p = pack();
    let scope: Vec<String> = all_scope(&p).into_iter().filter(|e| e != "quote").collect();
    let v2 = dir.path().join("v2.db");
    let (r, _) = migrate(&p, &v1, Some(v2.to_str().unwrap()), &scope);
    let q = r.entity("quote").unwrap();
    assert_eq!((q.excluded, q.reason(Bucket::Excluded, "excluded_by_scope")), (q.read, m.entities["quote"].read));
    let ql = r.entity("quote_line").unwrap();
    assert_eq!(ql.excluded, ql.read);
    // Documents of quotes follow their quote out of scope; the others are untouched.
    let docs = r.entity("document").unwrap();
    assert!(docs.reason(Bucket::Excluded, "excluded_by_scope") > 0);
    assert!(docs.adds_up());
}
