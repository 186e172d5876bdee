//! The engine against generated Omikai 1 data: exact buckets, both targets, idempotence, dry runs.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use cutover_demo::{DEFAULT_CUTOFF, Manifest, Spec};
use cutover_engine::connect::{SourceConfig, Target, TargetConfig};
use cutover_engine::pack::{Pack, PackSource};
use cutover_engine::run::{Bucket, LedgerRecord, RunReport, RunSpec, resolved_references, run};
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
        cancel: None,
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

fn migrate_account(p: &Pack, v1: &Path, v2: &str, account: &str) -> RunReport {
    let mut source = SourceConfig::Sqlite { path: v1.to_owned() }.build().unwrap();
    let mut target = TargetConfig::from_url(v2).unwrap().build().unwrap();
    let opts = BTreeMap::new();
    let scope = all_scope(p);
    let spec = RunSpec {
        pack: p,
        account_key: account,
        account_name: account,
        included: &scope,
        cutoff: DEFAULT_CUTOFF,
        options: &opts,
        progress: false,
        cancel: None,
    };
    run(&spec, source.as_mut(), Some(target.as_mut()), &mut |_| Ok(())).unwrap_or_else(|e| panic!("run failed: {e}"))
}

/// A first migration into an empty PostgreSQL database builds keys and indexes after the load;
/// one into a database that holds another account's rows keeps them. Either way every
/// constraint is there afterwards and no account's rows are touched by another's run.
#[test]
fn accounts_sharing_a_postgres_database_keep_their_rows_and_every_constraint() {
    let Some(pg) = TestDb::postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (v1, _) = generate(dir.path(), 60);
    let p = pack();
    let mut t = TargetConfig::from_url(&pg.url).unwrap().build().unwrap();
    let constraints = |t: &mut Box<dyn Target>| {
        let cols = [("conname".to_owned(), cutover_engine::value::Type::Text)];
        t.read_rows("pg_constraint", &cols, None).unwrap()
    };
    let count = |t: &mut Box<dyn Target>, account: &str| {
        let id = cutover_engine::run::account_uuid(account);
        let cols = [("id".to_owned(), cutover_engine::value::Type::Uuid)];
        t.read_rows("customer", &cols, Some(id)).unwrap().len()
    };
    let acme = migrate_account(&p, &v1, &pg.url, "acme");
    let after_first = constraints(&mut t);
    assert!(after_first.len() > 20, "{after_first:?}");
    let customers = acme.entity("customer").unwrap().migrated as usize;
    assert_eq!(count(&mut t, "acme"), customers);
    migrate_account(&p, &v1, &pg.url, "nordlys");
    assert_eq!(constraints(&mut t), after_first);
    assert_eq!(count(&mut t, "nordlys"), customers);
    // Running acme again replaces only acme's rows.
    migrate_account(&p, &v1, &pg.url, "acme");
    assert_eq!(constraints(&mut t), after_first);
    assert_eq!((count(&mut t, "acme"), count(&mut t, "nordlys")), (customers, customers));
}

/// A first load into tables it emptied leaves a tenth of every page free for the final
/// migration's rewrites, unless a table has a fill factor of its own, and leaves every table
/// analyzed.
#[test]
fn a_first_load_into_postgres_leaves_room_in_its_pages_unless_a_table_says_otherwise() {
    let Some(pg) = TestDb::postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (v1, _) = generate(dir.path(), 20);
    let p = pack();
    let tables: std::collections::BTreeSet<String> =
        p.entities.iter().filter_map(|e| e.target.as_ref().map(|t| format!("'{}'", t.table))).collect();
    let list = tables.iter().cloned().collect::<Vec<_>>().join(", ");
    // A SELECT's row count is what the server says it affected.
    let with = |ff: u8| {
        cutover_testkit::exec(
            &pg.url,
            &format!("SELECT 1 FROM pg_class WHERE relname IN ({list}) AND 'fillfactor={ff}' = ANY(reloptions)"),
        )
        .unwrap()
    };
    migrate_account(&p, &v1, &pg.url, "acme");
    assert_eq!(with(cutover_engine::connect::LOAD_FILLFACTOR), tables.len() as u64);
    // Every table loaded, and the row state, has its statistics once the run returns (taken
    // after the commit, on two connections).
    let analyzed = cutover_testkit::exec(
        &pg.url,
        &format!(
            "SELECT 1 FROM pg_stat_user_tables WHERE relname IN ({list}, 'cutover_state') AND last_analyze IS NOT NULL"
        ),
    )
    .unwrap();
    assert_eq!(analyzed, tables.len() as u64 + 1);
    cutover_testkit::exec(&pg.url, "ALTER TABLE customer SET (fillfactor = 70)").unwrap();
    migrate_account(&p, &v1, &pg.url, "acme");
    assert_eq!((with(cutover_engine::connect::LOAD_FILLFACTOR), with(70)), (tables.len() as u64 - 1, 1));
}

/// The TPC-H benchmark pack compiles and maps a small TPC-H database: every row in a bucket,
/// enums, minor units and dates as the pack says, an orphan line rejected, and lines of an
/// order before the history cut-off following it out.
#[test]
fn the_tpch_pack_maps_a_small_tpch_database() {
    let p = PackSource::Builtin.load("tpch").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1.db");
    let c = rusqlite::Connection::open(&v1).unwrap();
    c.execute_batch(include_str!("../../../packs/tpch/v1.sql")).unwrap();
    c.execute_batch(
        "INSERT INTO REGION VALUES (0, 'EUROPE', 'r');
         INSERT INTO NATION VALUES (7, 'NORWAY', 0, 'n');
         INSERT INTO SUPPLIER VALUES (1, 'Supplier#1', 'addr', 7, '10-1', 12.5, 's');
         INSERT INTO PART VALUES (1, 'green bolt', 'Manufacturer#1', 'Brand#11', 'PROMO BRUSHED TIN', 5, 'SM BOX', 901.0, 'p');
         INSERT INTO PARTSUPP VALUES (1, 1, 10, 2.675, 'ps');
         INSERT INTO CUSTOMER VALUES (1, 'Customer#1', 'addr', 7, '10-2', -3.5, 'BUILDING', 'c');
         INSERT INTO ORDERS VALUES (1, 1, 'O', 100.10, '1996-01-02', '5-LOW', 'Clerk#1', 0, 'o');
         INSERT INTO ORDERS VALUES (2, 1, 'F', 50.0, '1990-05-01', '1-URGENT', 'Clerk#2', 0, 'old');
         INSERT INTO LINEITEM VALUES (1, 1, 1, 1, 17.0, 267.5, 0.04, 0.02, 'N', 'O', '1996-03-13', '1996-02-12', '1996-03-22', 'DELIVER IN PERSON', 'TRUCK', 'l1');
         INSERT INTO LINEITEM VALUES (1, 99, 1, 2, 1.0, 1.0, 0.0, 0.0, 'N', 'O', '1996-03-13', '1996-02-12', '1996-03-22', 'NONE', 'MAIL', 'orphan');
         INSERT INTO LINEITEM VALUES (2, 1, 1, 1, 1.0, 1.0, 0.0, 0.0, 'R', 'F', '1990-06-01', '1990-06-01', '1990-06-02', 'NONE', 'REG AIR', 'old');",
    )
    .unwrap();
    drop(c);
    let v2 = dir.path().join("v2.db");
    let mut source = SourceConfig::Sqlite { path: v1.clone() }.build().unwrap();
    let mut target = TargetConfig::from_url(v2.to_str().unwrap()).unwrap().build().unwrap();
    let opts = BTreeMap::new();
    let scope = all_scope(&p);
    let spec = RunSpec {
        pack: &p,
        account_key: "tpch",
        account_name: "TPC-H",
        included: &scope,
        cutoff: time::macros::date!(1992 - 01 - 01),
        options: &opts,
        progress: false,
        cancel: None,
    };
    let mut ledger = Vec::new();
    let report = run(&spec, source.as_mut(), Some(target.as_mut()), &mut |b| {
        ledger.extend(b);
        Ok(())
    })
    .unwrap();
    let t = report.totals();
    assert!(t.adds_up());
    assert_eq!((t.read, t.migrated, t.excluded, t.rejected), (11, 8, 2, 1), "{report:#?}");
    let lines = report.entity("order_line").unwrap();
    assert_eq!(lines.reason(Bucket::Rejected, "orphan"), 1);
    assert_eq!(lines.reason(Bucket::Excluded, "history_cutoff"), 1);
    let orphan = ledger.iter().find(|r| r.reason == "orphan").unwrap();
    assert_eq!(orphan.legacy_ref, "LINEITEM:1/2");
    assert!(orphan.message.contains("part 99"), "{}", orphan.message);
    use cutover_engine::value::{Type, Value};
    let cols: Vec<(String, Type)> = [
        ("quantity", Type::Int),
        ("extended_price_minor", Type::Int),
        ("discount_bp", Type::Int),
        ("tax_bp", Type::Int),
        ("return_flag", Type::Text),
        ("ship_mode", Type::Text),
        ("ship_instruction", Type::Text),
        ("shipped_on", Type::Date),
    ]
    .into_iter()
    .map(|(c, t)| (c.to_owned(), t))
    .collect();
    let rows = target.read_rows("order_line", &cols, None).unwrap();
    assert_eq!(
        rows,
        vec![vec![
            Value::Int(17),
            Value::Int(26750),
            Value::Int(400),
            Value::Int(200),
            Value::Text("none".into()),
            Value::Text("truck".into()),
            Value::Text("deliver_in_person".into()),
            Value::Date(time::macros::date!(1996 - 03 - 13)),
        ]]
    );
    let cost = target.read_rows("part_supplier", &[("supply_cost_minor".to_owned(), Type::Int)], None).unwrap();
    assert_eq!(cost, vec![vec![Value::Int(268)]], "2.675 rounds half away from zero");
}

/// A hostile legacy database (lost keys, invalid UTF-8, NULLs, a 10 MB text, extreme numbers,
/// zero dates, control characters, injection strings): the run completes, every record ends
/// in a bucket with a reason, counts add up against the v1 tables, the planted records end as
/// they must, text reaches v2 verbatim, and both targets agree.
#[test]
fn a_hostile_legacy_database_ends_every_record_in_a_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("hostile.db");
    let planted = cutover_demo::hostile(&v1, Spec { customers: 60, seed: 11, cutoff: DEFAULT_CUTOFF }).unwrap();
    let p = pack();
    let lite = rusqlite::Connection::open(&v1).unwrap();
    let mut targets = vec![dir.path().join("v2.db").display().to_string()];
    let pg = TestDb::postgres();
    targets.extend(pg.as_ref().map(|d| d.url.clone()));
    let mut reports = Vec::new();
    for v2 in &targets {
        let (report, ledger) = migrate(&p, &v1, Some(v2), &all_scope(&p));
        for e in &report.entities {
            assert!(e.adds_up(), "{v2} {}: {e:?}", e.entity);
            let rows: u64 = lite.query_row(&format!("SELECT COUNT(*) FROM {}", e.source), [], |r| r.get(0)).unwrap();
            assert_eq!(e.read, rows, "{v2}: every {} record is read", e.source);
        }
        assert!(
            ledger.iter().all(|l| !l.reason.is_empty() && !l.message.is_empty()),
            "{v2}: a reason for every record"
        );
        for want in &planted {
            let legacy = format!("{}:{}", want.table, want.key);
            let got: Vec<String> = ledger
                .iter()
                .filter(|l| l.legacy_ref == legacy)
                .map(|l| format!("{}:{}", l.bucket.as_str(), l.reason))
                .collect();
            if want.outcome == "migrated" {
                assert!(got.is_empty(), "{v2} {legacy} ({}): {got:?}", want.what);
            } else {
                assert_eq!(
                    got.iter().filter(|g| *g == want.outcome).count(),
                    1,
                    "{v2} {legacy} ({}): {got:?}",
                    want.what
                );
            }
        }
        // Text reaches v2 as v1 holds it: injection strings, control characters, 10 MB.
        let mut t = TargetConfig::from_url(v2).unwrap().build().unwrap();
        let names: Vec<String> = t
            .read_rows("customer", &[("name".into(), cutover_engine::value::Type::Text)], None)
            .unwrap()
            .into_iter()
            .filter_map(|r| match r.into_iter().next() {
                Some(cutover_engine::value::Value::Text(s)) => Some(s),
                _ => None,
            })
            .collect();
        for s in
            [cutover_demo::INJECTIONS[0], cutover_demo::INJECTIONS[2], cutover_demo::INJECTIONS[3], "Ten Megabytes AS"]
        {
            assert!(names.iter().any(|n| n == s), "{v2}: {s} in v2");
        }
        let notes = t.read_rows("customer", &[("note".into(), cutover_engine::value::Type::Text)], None).unwrap();
        assert!(
            notes
                .iter()
                .any(|r| matches!(r.first(), Some(cutover_engine::value::Value::Text(n)) if n.len() == 10 << 20)),
            "{v2}: the 10 MB note"
        );
        reports.push(report.entities);
    }
    if reports.len() == 2 {
        assert_eq!(reports[0], reports[1], "SQLite and PostgreSQL targets agree");
    }
}

/// A first load tells its target which foreign keys it filled only with ids of rows it wrote:
/// every account_id, and a column whose rule is a lookup alone. Anything else stays for the
/// database to check.
#[test]
fn a_first_load_trusts_only_the_references_it_resolved_itself() {
    let has = |refs: &[cutover_engine::connect::Reference], t: &str, c: &str, p: &str| {
        refs.iter().any(|r| r.table == t && r.column == c && r.parent == p && r.parent_column == "id")
    };
    let refs = resolved_references(&pack());
    assert!(has(&refs, "contact", "account_id", "account"));
    assert!(has(&refs, "contact", "customer_id", "customer"));
    assert!(has(&refs, "order_edition", "order_id", "sales_order"));
    assert!(has(&refs, "quote", "contact_id", "contact"), "lookup_opt resolves too");
    assert!(!refs.iter().any(|r| r.column == "first_name"));
    assert!(!has(&refs, "document", "customer_id", "customer"), "a lookup inside an if is not alone");
    let mapping = include_str!("../../../packs/omikai/mapping.toml");
    let rule = "customer_id = \"lookup('customer', CUSTNO)\"\nfirst_name";
    assert!(mapping.contains(rule));
    let computed = mapping.replace(
        rule,
        "customer_id = \"coalesce(lookup('customer', CUSTNO), lookup('customer', CUSTNO))\"\nfirst_name",
    );
    let refs = resolved_references(&PackSource::Builtin.load_with_mapping("omikai", &computed).unwrap());
    assert!(!has(&refs, "contact", "customer_id", "customer"), "a computed reference is checked");
    assert!(has(&refs, "contact", "account_id", "account"));
    assert!(has(&refs, "quote", "customer_id", "customer"), "other tables keep theirs");
}
