//! The overwrite preview lists exactly the rows edited, created and deleted in v2 since the last run.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use cutover_demo::{DEFAULT_CUTOFF, Spec};
use cutover_engine::connect::{SourceConfig, TargetConfig};
use cutover_engine::pack::PackSource;
use cutover_engine::preview::{ChangeKind, preview, preview_alone};
use cutover_engine::run::{RunSpec, run};
use cutover_testkit::TestDb;

fn exec(url: &str, sql: &str) {
    cutover_testkit::exec(url, sql).unwrap();
}

fn edits_creations_and_deletions_appear_exactly(v2: &str) {
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1.db");
    cutover_demo::generate(&v1, Spec { customers: 100, seed: 4, cutoff: DEFAULT_CUTOFF }).unwrap();
    let pack = PackSource::Builtin.load("omikai").unwrap();
    let included: Vec<String> = pack.template.entities.iter().map(|e| e.name.clone()).collect();
    let opts = BTreeMap::new();
    let spec = RunSpec {
        pack: &pack,
        account_key: "acme",
        account_name: "Acme",
        included: &included,
        cutoff: DEFAULT_CUTOFF,
        options: &opts,
        progress: false,
        cancel: None,
    };
    let migrate = || {
        let mut src = SourceConfig::Sqlite { path: v1.clone() }.build().unwrap();
        let mut tgt = TargetConfig::from_url(v2).unwrap().build().unwrap();
        run(&spec, src.as_mut(), Some(tgt.as_mut()), &mut |_| Ok(())).unwrap();
    };
    let stamped = || {
        let mut tgt = TargetConfig::from_url(v2).unwrap().build().unwrap();
        preview_alone(&pack, tgt.as_mut(), "acme").unwrap()
    };
    let look = || stamped().0;
    let pg = v2.starts_with("postgres");
    migrate();
    // A SQLite file outside WAL mode has a change stamp, and so has a PostgreSQL server, the
    // same while nothing is written: a preview writes nothing. The server's changes with any
    // write on it, other tests' (and the autovacuum's analyses) too: read until two previews
    // in a row find it alike, as a SQLite file's always does.
    let stamp = (0..100)
        .find_map(|_| {
            let (a, b) = (stamped().1, stamped().1);
            (a.is_some() && a == b).then_some(a)
        })
        .flatten();
    assert!(stamp.is_some(), "no two previews in a row found v2's change stamp alike");
    // On PostgreSQL the preview compares the rows written since the load, and counts the
    // account's rows as it goes: enough to tell later that they are the same.
    let census = stamp.as_ref().and_then(|s| s.census.clone());
    assert_eq!(census.as_ref().map(|c| c.rows.len()), pg.then_some(pack.v2.tables.len() - 1), "{census:?}");
    let quiet = look();
    assert!(quiet.items.is_empty(), "{:?}", quiet.items);
    assert!(quiet.rows_checked > 1000);

    exec(v2, "UPDATE customer SET name = 'Renamed in v2', city = 'Bodø' WHERE legacy_ref = 'CUST:1'");
    exec(v2, "DELETE FROM invoice_line WHERE legacy_ref = (SELECT MIN(legacy_ref) FROM invoice_line)");
    // A contact typed in whose id shares its leading bits with a contact deleted in v2: counted
    // by those bits, the two would hide each other.
    let unquoted = "SELECT id FROM contact x WHERE NOT EXISTS (SELECT 1 FROM quote q WHERE q.contact_id = x.id) \
                    AND legacy_ref != 'v2:new-contact' ORDER BY id LIMIT 1";
    exec(
        v2,
        &format!(
            "INSERT INTO contact (id, account_id, legacy_ref, customer_id, first_name, last_name, email, phone, is_primary) \
             SELECT {}, c.account_id, 'v2:new-contact', c.id, 'Nina', 'New', NULL, NULL, {} \
             FROM customer c, contact d WHERE c.legacy_ref = 'CUST:1' AND d.id = ({unquoted})",
            if pg {
                "(substr(d.id::text, 1, 4) || '0000-0000-4000-8000-0000000000aa')::uuid"
            } else {
                "substr(d.id, 1, 4) || '0000-0000-4000-8000-0000000000aa'"
            },
            if pg { "false" } else { "0" }
        ),
    );
    exec(v2, &format!("DELETE FROM contact WHERE id = ({unquoted})"));
    let p = look();
    let kinds: Vec<(ChangeKind, &str)> = p.items.iter().map(|i| (i.kind, i.table.as_str())).collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert!(
        kinds.contains(&(ChangeKind::Changed, "customer"))
            && kinds.contains(&(ChangeKind::Created, "contact"))
            && kinds.contains(&(ChangeKind::Deleted, "contact"))
            && kinds.contains(&(ChangeKind::Deleted, "invoice_line")),
        "{kinds:?}"
    );
    let (new, gone) = (
        &p.items.iter().find(|i| i.kind == ChangeKind::Created).unwrap().id,
        &p.items.iter().find(|i| i.kind == ChangeKind::Deleted && i.table == "contact").unwrap().id,
    );
    assert_eq!(new.as_bytes()[..2], gone.as_bytes()[..2]);
    assert_eq!(p.counts()["contact"], [0, 1, 1]);
    let changed = p.items.iter().find(|i| i.kind == ChangeKind::Changed).unwrap();
    assert_eq!(changed.legacy_ref, "CUST:1");
    let cols: Vec<&str> = changed.fields.iter().map(|f| f.column.as_str()).collect();
    assert_eq!(cols, ["name", "city"]);
    assert_eq!(changed.fields[0].now, "Renamed in v2");
    assert_ne!(changed.fields[0].as_loaded, changed.fields[0].now);
    let deleted = p.items.iter().find(|i| i.kind == ChangeKind::Deleted && i.table == "invoice_line").unwrap();
    assert!(
        deleted.legacy_ref.starts_with("INVLINE:")
            && deleted.fields.iter().any(|f| f.column == "unit_price_minor" && f.now.is_null())
    );
    assert_eq!(p.counts()["customer"], [1, 0, 0]);
    assert_ne!(stamped().1, stamp, "every commit changes the stamp");
    // The id names this content: the same again, another after a further edit.
    assert_eq!(look().id, p.id);
    exec(v2, "UPDATE customer SET city = 'Oslo' WHERE legacy_ref = 'CUST:1'");
    let oslo = look().id;
    assert_ne!(oslo, p.id);
    // Where the target has snapshots (PostgreSQL), a preview taken on its own sees v2 as it
    // was when it began: an edit committed meanwhile is in the next one, not half in this one.
    let mut tgt = TargetConfig::from_url(v2).unwrap().build().unwrap();
    assert_eq!(tgt.begin_snapshot().unwrap(), pg);
    exec(v2, "UPDATE customer SET city = 'Bergen' WHERE legacy_ref = 'CUST:1'");
    let during = preview(&pack, tgt.as_mut(), "acme").unwrap();
    if pg {
        tgt.rollback().unwrap();
        assert_eq!(during.id, oslo, "the edit after the snapshot is not in it");
    } else {
        assert_ne!(during.id, oslo);
    }
    assert_ne!(look().id, oslo);
    // A new trial migration replaces the account's rows: nothing left to overwrite.
    migrate();
    assert!(look().items.is_empty());
}

#[test]
fn sqlite_target() {
    let dir = tempfile::tempdir().unwrap();
    edits_creations_and_deletions_appear_exactly(dir.path().join("v2.db").to_str().unwrap());
}

#[test]
fn postgres_target() {
    let Some(db) = TestDb::postgres() else { return };
    edits_creations_and_deletions_appear_exactly(&db.url);
}

/// The child half of `reading_the_change_stamp_keeps_the_runs_lock`: exits 3 when another
/// process holds the write lock on the file it is given, 0 when it could take it.
#[test]
#[ignore = "run by reading_the_change_stamp_keeps_the_runs_lock, in a process of its own"]
fn child_takes_the_write_lock_if_it_can() {
    let path = std::env::var("CUTOVER_LOCK_PROBE").expect("the file to lock");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.busy_timeout(std::time::Duration::ZERO).unwrap();
    let locked = c.execute_batch("BEGIN IMMEDIATE").is_err();
    std::process::exit(if locked { 3 } else { 0 });
}

/// SQLite's locks are POSIX advisory locks: closing any descriptor of the file drops every lock
/// the process holds on it. Reading the change stamp inside the final migration's transaction
/// must not let another process write meanwhile.
#[test]
fn reading_the_change_stamp_keeps_the_runs_lock() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().join("v2.db");
    let url = v2.to_str().unwrap();
    exec(url, "CREATE TABLE note (body TEXT); INSERT INTO note VALUES ('x')");
    let probe = || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_takes_the_write_lock_if_it_can", "--ignored", "--test-threads=1"])
            .env("CUTOVER_LOCK_PROBE", &v2)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(probe(), Some(0));
    let mut tgt = TargetConfig::from_url(url).unwrap().build().unwrap();
    tgt.begin_consistent().unwrap();
    assert_eq!(probe(), Some(3), "the run's transaction holds the write lock");
    let stamp = tgt.change_stamp().unwrap();
    assert!(stamp.is_some());
    assert_eq!(probe(), Some(3), "still held after the stamp was read");
    assert_eq!(tgt.change_stamp().unwrap(), stamp);
    tgt.rollback().unwrap();
    assert_eq!(probe(), Some(0));
}
