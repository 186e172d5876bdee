//! The compliance suite every connector passes: SQLite and PostgreSQL sources, SQLite and
//! PostgreSQL targets. PostgreSQL is required under CI.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use cutover_demo::{DEFAULT_CUTOFF, Spec};
use cutover_engine::connect::{
    ConnectorError, LoadOrderRow, Reference, Scan, Source, SourceConfig, Target, TargetConfig, copy_tables,
};
use cutover_engine::ddl;
use cutover_engine::pack::PackSource;
use cutover_engine::run::{RunSpec, run};
use cutover_engine::value::{Type, Value, fingerprint};
use cutover_testkit::TestDb;
use time::macros::date;
use uuid::Uuid;

struct Fixture {
    _dir: tempfile::TempDir,
    v1_sqlite: std::path::PathBuf,
    _pg: Option<TestDb>,
    _mysql: Option<TestDb>,
    sources: Vec<(&'static str, String)>,
}

/// Demo data in SQLite, and the same data copied into PostgreSQL and MariaDB when they are there.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1.db");
    cutover_demo::generate(&v1, Spec { customers: 80, seed: 3, cutoff: DEFAULT_CUTOFF }).unwrap();
    let mut sources = vec![("sqlite", v1.display().to_string())];
    let pg = TestDb::postgres();
    if let Some(db) = &pg {
        let schema = ddl::parse("v1.sql", cutover_demo::V1_SQL).unwrap();
        let mut src = SourceConfig::from_url(&sources[0].1).unwrap().build().unwrap();
        let mut tgt = TargetConfig::from_url(&db.url).unwrap().build().unwrap();
        copy_tables(&schema, src.as_mut(), tgt.as_mut()).unwrap();
        sources.push(("postgres", db.url.clone()));
    }
    let my = TestDb::mysql();
    if let Some(db) = &my {
        let schema = ddl::parse("v1.sql", cutover_demo::V1_SQL).unwrap();
        let mut src = SourceConfig::from_url(&sources[0].1).unwrap().build().unwrap();
        cutover_engine::mysql::load_tables(&schema, src.as_mut(), &db.url).unwrap();
        sources.push(("mysql", db.url.clone()));
    }
    Fixture { _dir: dir, v1_sqlite: v1, _pg: pg, _mysql: my, sources }
}

fn targets() -> Vec<(&'static str, TestDb, String)> {
    let mut v = Vec::new();
    let lite = TestDb::sqlite();
    let url = lite.dir.as_ref().unwrap().path().join("v2.db").display().to_string();
    v.push(("sqlite", lite, url));
    if let Some(pg) = TestDb::postgres() {
        let url = pg.url.clone();
        v.push(("postgres", pg, url));
    }
    v
}

#[test]
fn sources_list_count_and_scan_in_key_order() {
    let f = fixture();
    let lite = rusqlite::Connection::open(&f.v1_sqlite).unwrap();
    let expected_lines: i64 = lite.query_row("SELECT COUNT(*) FROM QUOTELINE", [], |r| r.get(0)).unwrap();
    for (name, url) in &f.sources {
        let mut s = SourceConfig::from_url(url).unwrap().build().unwrap();
        let cols = s.table_columns("CUST").unwrap();
        assert!(cols.iter().any(|c| c.eq_ignore_ascii_case("CREDITLIMIT")), "{name}: {cols:?}");
        assert!(s.table_columns("NO_SUCH_TABLE").unwrap().is_empty(), "{name}");
        assert_eq!(s.count("QUOTELINE").unwrap() as i64, expected_lines, "{name}");
        let columns = vec![
            ("QUOTENO".to_owned(), Type::Int),
            ("LINENO".to_owned(), Type::Int),
            ("UNITPRICE".to_owned(), Type::Float),
        ];
        let order = vec!["QUOTENO".to_owned(), "LINENO".to_owned()];
        let mut keys = Vec::new();
        s.scan(&Scan { table: "QUOTELINE", columns: &columns, extra: &[], order_by: &order, lazy: None }, &mut |r| {
            assert!(r.bad.is_none());
            // A final migration keeps a record by the fingerprint its reader took.
            assert_eq!(r.fingerprint(), cutover_engine::value::fingerprint(&r.values), "{name}");
            if let [Value::Int(q), Value::Int(l), Value::Float(_)] = r.values.as_slice() {
                keys.push((*q, *l));
            } else {
                panic!("{name}: unexpected row {:?}", r.values);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(keys.len() as i64, expected_lines, "{name}");
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{name}: not in key order");
        // Computed columns: the invoice's sum of lines.
        let columns = vec![("INVNO".to_owned(), Type::Int), ("LINES_TOTAL".to_owned(), Type::Float)];
        let extra = vec![(
            "LINES_TOTAL".to_owned(),
            "(SELECT SUM(l.QTY * l.UNITPRICE) FROM INVLINE l WHERE l.INVNO = t.INVNO)".to_owned(),
        )];
        let mut totals = 0;
        s.scan(
            &Scan { table: "INVOICE", columns: &columns, extra: &extra, order_by: &["INVNO".to_owned()], lazy: None },
            &mut |r| {
                if matches!(r.values[1], Value::Float(x) if x > 0.0) {
                    totals += 1;
                }
                Ok(())
            },
        )
        .unwrap();
        assert!(totals > 0, "{name}");
    }
}

/// A v1 SQLite file made by `sql`, in a folder that lives as long as the result, and the
/// columns (`A` int, `B` text, `V` text) and key order (`A`, `B`) its tables are scanned with.
fn abv_v1(sql: &str) -> (tempfile::TempDir, std::path::PathBuf, Vec<(String, Type)>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    rusqlite::Connection::open(&path).unwrap().execute_batch(sql).unwrap();
    let columns = vec![("A".to_owned(), Type::Int), ("B".to_owned(), Type::Text), ("V".to_owned(), Type::Text)];
    (dir, path, columns, vec!["A".to_owned(), "B".to_owned()])
}

/// A SQLite scan comes in key order, duplicates of a key next to each other, however the
/// table is stored: in key order or not, with a column named rowid, without a rowid.
#[test]
fn sqlite_scans_come_in_key_order_however_the_table_is_stored() {
    let (_dir, path, columns, order) = abv_v1(
        "CREATE TABLE IN_ORDER (A INTEGER, B TEXT, V TEXT, PRIMARY KEY (A, B));
         CREATE TABLE SHUFFLED (A INTEGER, B TEXT, V TEXT, PRIMARY KEY (A, B));
         CREATE TABLE NO_KEY (A INTEGER, B TEXT, V TEXT);
         CREATE TABLE OWN_ROWID (rowid INTEGER, A INTEGER, B TEXT, V TEXT, PRIMARY KEY (A, B));
         CREATE TABLE CLUSTERED (A INTEGER, B TEXT, V TEXT, PRIMARY KEY (A, B)) WITHOUT ROWID;",
    );
    let c = rusqlite::Connection::open(&path).unwrap();
    let keys: Vec<(i64, String)> = (0..300i64).flat_map(|a| ["x", "y"].map(|b| (a, b.to_owned()))).collect();
    // A fixed shuffle: every 7th key of the list, wrapping around.
    let shuffled: Vec<&(i64, String)> = (0..keys.len()).map(|i| &keys[(i * 7) % keys.len()]).collect();
    for (table, rows) in [
        ("IN_ORDER", keys.iter().collect::<Vec<_>>()),
        ("SHUFFLED", shuffled.clone()),
        // In key order but for one late record, with a duplicate key stored far from its twin.
        ("NO_KEY", keys.iter().chain([&keys[10]]).collect()),
        ("OWN_ROWID", shuffled.clone()),
        ("CLUSTERED", shuffled.clone()),
    ] {
        for (i, (a, b)) in rows.into_iter().enumerate() {
            if table == "OWN_ROWID" {
                c.execute(
                    &format!("INSERT INTO {table} VALUES (?1, ?2, ?3, ?4)"),
                    rusqlite::params![-(i as i64), a, b, i],
                )
                .unwrap();
            } else {
                c.execute(&format!("INSERT INTO {table} VALUES (?1, ?2, ?3)"), rusqlite::params![a, b, i]).unwrap();
            }
        }
    }
    drop(c);
    let mut s = SourceConfig::Sqlite { path }.build().unwrap();
    for table in ["IN_ORDER", "SHUFFLED", "NO_KEY", "OWN_ROWID", "CLUSTERED"] {
        let mut seen: Vec<(i64, String)> = Vec::new();
        s.scan(&Scan { table, columns: &columns, extra: &[], order_by: &order, lazy: None }, &mut |r| {
            match r.values.as_slice() {
                [Value::Int(a), Value::Text(b), _] => seen.push((*a, b.clone())),
                other => panic!("{table}: unexpected row {other:?}"),
            }
            Ok(())
        })
        .unwrap();
        let mut expected = keys.clone();
        if table == "NO_KEY" {
            expected.insert(11, keys[10].clone());
        }
        assert_eq!(seen, expected, "{table}: not in key order");
    }
}

/// A big table stored in key order is read by two threads, block by block: every row comes
/// once, in key order, across blocks left empty by deleted rows; a mapping that stops halfway
/// stops the readers and gets its own error back.
#[test]
fn a_big_sqlite_table_read_by_two_readers_comes_whole_and_in_key_order() {
    let (_dir, path, columns, order) = abv_v1(
        "CREATE TABLE BIG (A INTEGER, B TEXT, V TEXT, PRIMARY KEY (A, B));
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
         INSERT INTO BIG SELECT i / 2, CASE i % 2 WHEN 0 THEN 'a' ELSE 'b' END, 'v' || i FROM n;
         DELETE FROM BIG WHERE rowid BETWEEN 40001 AND 130000;",
    );
    let expected: Vec<(i64, String, String)> = (1..=200_000i64)
        .filter(|i| !(40_001..=130_000).contains(i))
        .map(|i| (i / 2, if i % 2 == 0 { "a" } else { "b" }.to_owned(), format!("v{i}")))
        .collect();
    let mut s = SourceConfig::Sqlite { path }.build().unwrap();
    let scan = Scan { table: "BIG", columns: &columns, extra: &[], order_by: &order, lazy: None };
    let mut seen = Vec::with_capacity(expected.len());
    s.scan(&scan, &mut |r| {
        // Taken again for each row a recycled batch holds.
        assert_eq!(r.fingerprint(), cutover_engine::value::fingerprint(&r.values));
        match r.values.as_slice() {
            [Value::Int(a), Value::Text(b), Value::Text(v)] => seen.push((*a, b.clone(), v.clone())),
            other => panic!("unexpected row {other:?}"),
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(seen.len(), expected.len());
    assert!(seen == expected, "rows missing, repeated or out of key order");
    let mut n = 0;
    let stopped = s.scan(&scan, &mut |_| {
        n += 1;
        if n == 50_000 {
            return Err(cutover_engine::connect::ConnectorError::Query {
                what: "mapping".into(),
                reason: "stop".into(),
            });
        }
        Ok(())
    });
    assert!(
        matches!(stopped, Err(cutover_engine::connect::ConnectorError::Query { ref reason, .. }) if reason == "stop")
    );
    assert_eq!(n, 50_000);
}

/// A big table keyed by its rowid (an `INTEGER PRIMARY KEY`) is read by two threads too, in
/// ranges of its keys: every row comes once and in key order, with keys below zero and keys
/// so far apart that ranges of the usual size would number in the billions.
#[test]
fn a_big_sqlite_table_keyed_by_its_rowid_comes_whole_and_in_key_order() {
    let (_dir, path, _, _) = abv_v1(
        "CREATE TABLE BIG (A INTEGER PRIMARY KEY, B TEXT, V TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150000)
         INSERT INTO BIG SELECT i, 'b', 'v' || i FROM n;
         INSERT INTO BIG VALUES (-7, 'b', 'low'), (4000000000000000, 'b', 'far'), (9223372036854775807, 'b', 'last');",
    );
    let columns = vec![("A".to_owned(), Type::Int), ("B".to_owned(), Type::Text), ("V".to_owned(), Type::Text)];
    let order = vec!["A".to_owned()];
    let mut expected: Vec<(i64, String)> = vec![(-7, "low".to_owned())];
    expected.extend((1..=150_000i64).map(|i| (i, format!("v{i}"))));
    expected.push((4_000_000_000_000_000, "far".to_owned()));
    expected.push((i64::MAX, "last".to_owned()));
    let mut s = SourceConfig::Sqlite { path }.build().unwrap();
    let mut seen = Vec::with_capacity(expected.len());
    s.scan(&Scan { table: "BIG", columns: &columns, extra: &[], order_by: &order, lazy: None }, &mut |r| {
        match r.values.as_slice() {
            [Value::Int(a), Value::Text(_), Value::Text(v)] => seen.push((*a, v.clone())),
            other => panic!("unexpected row {other:?}"),
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(seen.len(), expected.len());
    assert!(seen == expected, "rows missing, repeated or out of key order");
}

/// A scan said to come next is got ready on a thread while another is read: it then reads
/// what it would have read without, and a scan other than the one said, or one whose table
/// is missing, is opened as it would have been, with its own error.
#[test]
fn a_sqlite_scan_got_ready_ahead_reads_what_it_would_have() {
    let (_dir, path, columns, order) = abv_v1(
        "CREATE TABLE ONE (A INTEGER, B TEXT, V TEXT, PRIMARY KEY (A, B));
         CREATE TABLE TWO (A INTEGER PRIMARY KEY, B TEXT, V TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000)
         INSERT INTO ONE SELECT i, 'b', 'one' || i FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000)
         INSERT INTO TWO SELECT i, 'b', 'two' || i FROM n;",
    );
    let by_a = vec!["A".to_owned()];
    let one = Scan { table: "ONE", columns: &columns, extra: &[], order_by: &order, lazy: None };
    let two = Scan { table: "TWO", columns: &columns, extra: &[], order_by: &by_a, lazy: None };
    let missing = Scan { table: "GONE", columns: &columns, extra: &[], order_by: &by_a, lazy: None };
    let mut s = SourceConfig::Sqlite { path }.build().unwrap();
    let read = |s: &mut Box<dyn Source>, scan: &Scan<'_>| {
        let mut v = Vec::new();
        s.scan(scan, &mut |r| {
            v.push(r.values[2].to_string());
            Ok(())
        })
        .map(|()| v)
    };
    let expect = |name: &str| (1..=60_000).map(|i| format!("{name}{i}")).collect::<Vec<_>>();
    s.prepare(&two);
    assert!(read(&mut s, &one).unwrap() == expect("one"));
    assert!(read(&mut s, &two).unwrap() == expect("two"));
    // Said, then another scan runs first.
    s.prepare(&two);
    assert!(read(&mut s, &one).unwrap() == expect("one"));
    assert!(read(&mut s, &two).unwrap() == expect("two"));
    s.prepare(&missing);
    assert!(read(&mut s, &one).unwrap() == expect("one"));
    let e = read(&mut s, &missing).unwrap_err().to_string();
    assert!(e.contains("GONE"), "{e}");
}

/// A table wider than a SQL function takes arguments, and a scan with an expression column,
/// read with a sort or without: every value of every row comes, in key order.
#[test]
fn sqlite_scans_read_wide_tables_and_expressions() {
    let width = 1100;
    let cols: Vec<String> = (0..width).map(|i| format!("C{i} INTEGER")).collect();
    let (_dir, path, _, _) = abv_v1(&format!(
        "CREATE TABLE WIDE (K INTEGER PRIMARY KEY, {});
         CREATE TABLE LOOSE (K INTEGER, V TEXT);",
        cols.join(", ")
    ));
    let c = rusqlite::Connection::open(&path).unwrap();
    for k in [3i64, 1, 2] {
        let values: Vec<String> = (0..width).map(|i| (k * 10_000 + i).to_string()).collect();
        c.execute_batch(&format!("INSERT INTO WIDE VALUES ({k}, {});", values.join(", "))).unwrap();
        c.execute("INSERT INTO LOOSE VALUES (?1, ?2)", rusqlite::params![k, format!("v{k}")]).unwrap();
    }
    drop(c);
    let mut s = SourceConfig::Sqlite { path }.build().unwrap();
    let mut columns = vec![("K".to_owned(), Type::Int)];
    columns.extend((0..width).map(|i| (format!("C{i}"), Type::Int)));
    let key = vec!["K".to_owned()];
    let mut rows = Vec::new();
    s.scan(&Scan { table: "WIDE", columns: &columns, extra: &[], order_by: &key, lazy: None }, &mut |r| {
        rows.push(r.values.clone());
        Ok(())
    })
    .unwrap();
    let expected: Vec<Vec<Value>> = (1..=3i64)
        .map(|k| std::iter::once(Value::Int(k)).chain((0..width).map(|i| Value::Int(k * 10_000 + i))).collect())
        .collect();
    assert!(rows == expected, "wide rows differ");
    // No index on K: SQLite sorts.
    let columns = vec![("K".to_owned(), Type::Int), ("V".to_owned(), Type::Text), ("UP".to_owned(), Type::Text)];
    let extra = vec![("UP".to_owned(), "upper(t.V) || '!'".to_owned())];
    let mut seen = Vec::new();
    s.scan(&Scan { table: "LOOSE", columns: &columns, extra: &extra, order_by: &key, lazy: None }, &mut |r| {
        seen.push(r.values.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, ["1 v1 V1!", "2 v2 V2!", "3 v3 V3!"]);
}

#[test]
fn sqlite_source_reports_values_that_do_not_fit_their_type() {
    let f = fixture();
    let c = rusqlite::Connection::open(&f.v1_sqlite).unwrap();
    c.execute("UPDATE JOB SET QTY = 'ten thousand' WHERE JOBNO = 3", []).unwrap();
    c.execute("UPDATE CUST SET NAME = CAST(X'FFFE41' AS TEXT) WHERE CUSTNO = 2", []).unwrap();
    drop(c);
    let mut s = SourceConfig::Sqlite { path: f.v1_sqlite.clone() }.build().unwrap();
    let mut bad = Vec::new();
    for (table, col, key) in [("JOB", "QTY", "JOBNO"), ("CUST", "NAME", "CUSTNO")] {
        let ty = if col == "QTY" { Type::Int } else { Type::Text };
        let columns = vec![(key.to_owned(), Type::Int), (col.to_owned(), ty)];
        s.scan(&Scan { table, columns: &columns, extra: &[], order_by: &[key.to_owned()], lazy: None }, &mut |r| {
            if let Some((_, why)) = &r.bad {
                bad.push(why.clone());
            }
            Ok(())
        })
        .unwrap();
    }
    assert_eq!(
        bad,
        ["column QTY holds 'ten thousand', not a whole number", "column NAME holds invalid UTF-8 (3 bytes)"]
    );
}

#[test]
fn every_source_gives_the_same_migration() {
    let f = fixture();
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
    let mut reports = Vec::new();
    let v2_dir = tempfile::tempdir().unwrap();
    for (name, url) in &f.sources {
        let mut s = SourceConfig::from_url(url).unwrap().build().unwrap();
        let mut ledger = Vec::new();
        let v2 = v2_dir.path().join(format!("{name}.db")).display().to_string();
        let mut t = TargetConfig::from_url(&v2).unwrap().build().unwrap();
        let r = run(&spec, s.as_mut(), Some(t.as_mut()), &mut |b| {
            ledger.extend(b);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        // The same v2, row for row.
        let rows = cutover_engine::verify::table_fingerprints(t.as_mut(), &pack.v2, None).unwrap();
        reports.push((name, (r.entities, rows), ledger.len()));
    }
    for w in reports.windows(2) {
        assert_eq!(w[0].1, w[1].1, "{} and {} differ", w[0].0, w[1].0);
        assert_eq!(w[0].2, w[1].2);
    }
}

fn probe_schema() -> ddl::Schema {
    ddl::parse(
        "probe.sql",
        "CREATE TABLE parent (id UUID PRIMARY KEY, account_id UUID NOT NULL);
         CREATE TABLE probe (id UUID PRIMARY KEY, account_id UUID NOT NULL, parent_id UUID REFERENCES parent (id), t TEXT, n BIGINT, f DOUBLE PRECISION, d DATE, b BOOLEAN, x BYTEA);",
    )
    .unwrap()
}

const COLS: [&str; 9] = ["id", "account_id", "parent_id", "t", "n", "f", "d", "b", "x"];

fn probe_rows(parent: Uuid, account: Uuid) -> Vec<Vec<Value>> {
    vec![
        vec![
            Value::Uuid(Uuid::from_u128(1)),
            Value::Uuid(account),
            Value::Uuid(parent),
            Value::Text("tab\\there\nnew line \\N back\\slash, «ünïcode» 'quote' \"dq\"".into()),
            Value::Int(-9_007_199_254_740_993),
            Value::Float(2.675),
            Value::Date(date!(2024 - 02 - 29)),
            Value::Bool(true),
            Value::Bytes(vec![0, 1, 92, 255, 10, 9]),
        ],
        vec![
            Value::Uuid(Uuid::from_u128(2)),
            Value::Uuid(account),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Bool(false),
            Value::Null,
        ],
    ]
}

/// Loads a parent row and `rows` of `probe` under it, and commits.
fn load_probes(t: &mut dyn Target, parent: Uuid, account: Uuid, rows: &[Vec<Value>]) {
    t.begin().unwrap();
    load_probes_in_tx(t, parent, account, rows);
    t.commit().unwrap();
}

/// Writes a parent row and `rows` of `probe` under it, in the transaction already begun.
fn load_probes_in_tx(t: &mut dyn Target, parent: Uuid, account: Uuid, rows: &[Vec<Value>]) {
    t.start_table("parent", &["id".into(), "account_id".into()]).unwrap();
    t.write_row(&[Value::Uuid(parent), Value::Uuid(account)]).unwrap();
    t.finish_table().unwrap();
    t.start_table("probe", &COLS.map(String::from)).unwrap();
    for r in rows {
        t.write_row(r).unwrap();
    }
    t.finish_table().unwrap();
}

fn cols_typed(schema: &ddl::Schema, table: &str) -> Vec<(String, Type)> {
    schema.table(table).unwrap().columns.iter().map(|c| (c.name.clone(), c.ty)).collect()
}

#[test]
fn targets_write_read_back_exactly_and_roll_back() {
    let schema = probe_schema();
    let account = Uuid::from_u128(77);
    let parent = Uuid::from_u128(100);
    for (name, _db, url) in targets() {
        let mut t = TargetConfig::from_url(&url).unwrap().build().unwrap();
        assert!(t.ensure_schema(&schema).unwrap(), "{name}: created");
        assert!(!t.ensure_schema(&schema).unwrap(), "{name}: second time is a no-op");
        load_probes(t.as_mut(), parent, account, &probe_rows(parent, account));
        let back = t.read_rows("probe", &cols_typed(&schema, "probe"), Some(account)).unwrap();
        assert_eq!(back, probe_rows(parent, account), "{name}");
        assert!(
            t.read_rows("probe", &cols_typed(&schema, "probe"), Some(Uuid::from_u128(78))).unwrap().is_empty(),
            "{name}"
        );
        // A rolled-back run leaves nothing behind.
        t.begin().unwrap();
        assert_eq!(t.exec_with_uuid("DELETE FROM probe WHERE account_id = $1", account).unwrap(), 2, "{name}");
        t.rollback().unwrap();
        assert_eq!(t.read_rows("probe", &cols_typed(&schema, "probe"), None).unwrap().len(), 2, "{name}");
    }
}

/// Rows across many batches and two tables of different widths, text and bytes of every
/// length and type at the same positions, one value of 2 MiB: written and read back exactly
/// (the SQLite target fills the batches the writer is done with again in place).
#[test]
fn targets_write_many_batches_exactly_whatever_the_values_before() {
    let schema = probe_schema();
    let account = Uuid::from_u128(77);
    let parents: Vec<Uuid> = (0..300).map(|i| Uuid::from_u128(10_000 + i)).collect();
    let rows: Vec<Vec<Value>> = (0..1_000u32)
        .map(|i| {
            let t = match i % 5 {
                _ if i == 500 => Value::Text("y".repeat(2 << 20)),
                0 => Value::Text("x".repeat(i as usize % 50)),
                1 => Value::Null,
                2 => Value::Text("é".repeat(200 - i as usize % 200)),
                3 => Value::Text(String::new()),
                _ => Value::Text(format!("row {i}")),
            };
            let x = match i % 3 {
                0 => Value::Bytes(vec![i as u8; i as usize % 70]),
                1 => Value::Null,
                _ => Value::Bytes(vec![255; 3]),
            };
            vec![
                Value::Uuid(Uuid::from_u128(u128::from(i) + 1)),
                Value::Uuid(account),
                if i % 2 == 0 { Value::Uuid(parents[i as usize % parents.len()]) } else { Value::Null },
                t,
                if i % 7 == 0 { Value::Null } else { Value::Int(i64::from(i) * 1_000_003) },
                Value::Float(f64::from(i) / 8.0),
                Value::Null,
                Value::Bool(i % 2 == 1),
                x,
            ]
        })
        .collect();
    for (name, _db, url) in targets() {
        let mut t = TargetConfig::from_url(&url).unwrap().build().unwrap();
        t.ensure_schema(&schema).unwrap();
        t.begin().unwrap();
        t.start_table("parent", &["id".into(), "account_id".into()]).unwrap();
        for p in &parents {
            t.write_row(&[Value::Uuid(*p), Value::Uuid(account)]).unwrap();
        }
        t.finish_table().unwrap();
        t.start_table("probe", &COLS.map(String::from)).unwrap();
        for r in &rows {
            t.write_row(r).unwrap();
        }
        t.finish_table().unwrap();
        t.commit().unwrap();
        let back = t.read_rows("probe", &cols_typed(&schema, "probe"), Some(account)).unwrap();
        assert_eq!(back.len(), rows.len(), "{name}");
        for (got, want) in back.iter().zip(&rows) {
            assert_eq!(got, want, "{name}");
        }
        let ids = t.read_rows("parent", &[("id".to_owned(), Type::Uuid)], Some(account)).unwrap();
        assert_eq!(ids, parents.iter().map(|p| vec![Value::Uuid(*p)]).collect::<Vec<_>>(), "{name}");
    }
}

#[test]
fn targets_refuse_a_load_whose_foreign_keys_do_not_hold() {
    let schema = probe_schema();
    let account = Uuid::from_u128(5);
    for (name, _db, url) in targets() {
        let mut t = TargetConfig::from_url(&url).unwrap().build().unwrap();
        t.ensure_schema(&schema).unwrap();
        t.begin().unwrap();
        t.start_table("probe", &COLS.map(String::from)).unwrap();
        let mut row = probe_rows(Uuid::from_u128(999), account).remove(0);
        row[0] = Value::Uuid(Uuid::from_u128(3));
        let written = t.write_row(&row).and_then(|()| t.finish_table()).and_then(|()| t.commit());
        let err = written.expect_err("a dangling parent must not commit").to_string();
        assert_key_error(name, &err);
        let _ = t.rollback();
        drop(t);
        let mut t = TargetConfig::from_url(&url).unwrap().build().unwrap();
        assert!(
            t.read_rows("probe", &cols_typed(&schema, "probe"), None).unwrap().is_empty(),
            "{name}: nothing committed"
        );
    }
}

/// Fails unless `err` is a foreign key's refusal (cutover's words, or SQLite's).
fn assert_key_error(name: &str, err: &str) {
    assert!(err.contains("foreign key") || err.contains("FOREIGN KEY"), "{name}: {err}");
}

/// A commit that must hold (`done` is `Ok`), or that a dangling `b_id` must stop with a key's
/// refusal, after which the transaction is rolled back.
fn assert_commit(t: &mut dyn Target, what: &str, done: Result<(), ConnectorError>, holds: bool) {
    if holds {
        done.unwrap_or_else(|e| panic!("{what}: {e}"));
    } else {
        let err = done.expect_err("a dangling b_id must not commit").to_string();
        assert_key_error(what, &err);
        t.rollback().unwrap();
    }
}

/// A parent table and a child with two foreign keys to it, and the one of them (`a_id`) a run
/// says it resolved itself.
fn two_keys() -> (ddl::Schema, [Reference; 1]) {
    let schema = ddl::parse(
        "two.sql",
        "CREATE TABLE parent (id UUID PRIMARY KEY, account_id UUID NOT NULL);
         CREATE TABLE child (id UUID PRIMARY KEY, account_id UUID NOT NULL,
             a_id UUID REFERENCES parent (id), b_id UUID REFERENCES parent (id), UNIQUE (account_id, a_id));",
    )
    .unwrap();
    let resolved =
        Reference { table: "child".into(), column: "a_id".into(), parent: "parent".into(), parent_column: "id".into() };
    (schema, [resolved])
}

/// The schema of [`two_keys`] on a fresh PostgreSQL database, a target on it, and the key a
/// run says it resolved; `None` where PostgreSQL is not reachable outside CI.
fn two_keys_on_postgres() -> Option<(TestDb, Box<dyn Target>, [Reference; 1])> {
    let db = TestDb::postgres()?;
    let (schema, resolved) = two_keys();
    let mut t = TargetConfig::from_url(&db.url).unwrap().build().unwrap();
    t.ensure_schema(&schema).unwrap();
    Some((db, t, resolved))
}

/// PostgreSQL selects an account's ids by their first two bytes through the id's index,
/// exactly those of the buckets asked for, the first and the last bucket included; past a
/// thousand buckets, or for none, it leaves the caller to read every id.
#[test]
fn postgres_selects_ids_by_their_first_two_bytes() {
    let Some((db, mut t, _)) = two_keys_on_postgres() else { return };
    let (mine, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
    // Ids at both ends of a bucket and in between, in buckets 0, 1, 0x1234 and 0xffff, and
    // another account's id in a bucket asked for.
    let bucket = |b: u128, low: u128| Uuid::from_u128((b << 112) | low);
    let ends = (1u128 << 112) - 1;
    let ids =
        [bucket(0, 0), bucket(0, ends), bucket(1, 5), bucket(0x1234, 0), bucket(0x1234, ends), bucket(0xffff, ends)];
    let mut sql = String::new();
    for id in ids {
        sql.push_str(&format!("INSERT INTO parent (id, account_id) VALUES ('{id}', '{mine}');"));
    }
    sql.push_str(&format!("INSERT INTO parent (id, account_id) VALUES ('{}', '{other}');", bucket(0x1234, 7)));
    cutover_testkit::exec(&db.url, &sql).unwrap();
    let mut got = t.ids_with_prefix("parent", mine, &[0, 0x1234, 0xffff]).unwrap().expect("selected by PostgreSQL");
    got.sort();
    assert_eq!(got, [ids[0], ids[1], ids[3], ids[4], ids[5]]);
    assert_eq!(t.ids_with_prefix("parent", mine, &[2]).unwrap(), Some(vec![]));
    let many: Vec<u16> = (0..=1024).collect();
    assert_eq!(t.ids_with_prefix("parent", mine, &many).unwrap(), None);
    assert_eq!(t.ids_with_prefix("parent", mine, &[]).unwrap(), None);
}

/// A first load may tell a target which foreign keys it resolved itself; every other one,
/// even of the same table, is still checked at commit.
#[test]
fn targets_check_every_foreign_key_a_run_did_not_resolve_itself() {
    let (schema, resolved) = two_keys();
    let (account, parent) = (Uuid::from_u128(5), Uuid::from_u128(6));
    for (name, _db, url) in targets() {
        for (b_id, holds) in [(parent, true), (Uuid::from_u128(999), false)] {
            let mut t = TargetConfig::from_url(&url).unwrap().build().unwrap();
            t.ensure_schema(&schema).unwrap();
            t.begin().unwrap();
            t.exec_with_uuid("DELETE FROM child WHERE account_id = $1", account).unwrap();
            t.exec_with_uuid("DELETE FROM parent WHERE account_id = $1", account).unwrap();
            if t.defer_constraints(&["child", "parent"]).unwrap() {
                t.trust_references(&resolved);
            }
            t.start_table("parent", &["id".into(), "account_id".into()]).unwrap();
            t.write_row(&[Value::Uuid(parent), Value::Uuid(account)]).unwrap();
            t.finish_table().unwrap();
            let cols = ["id", "account_id", "a_id", "b_id"].map(String::from);
            t.start_table("child", &cols).unwrap();
            t.write_row(&[
                Value::Uuid(Uuid::from_u128(7)),
                Value::Uuid(account),
                Value::Uuid(parent),
                Value::Uuid(b_id),
            ])
            .unwrap();
            let done = t.finish_table().and_then(|()| t.commit());
            assert_commit(t.as_mut(), name, done, holds);
            let child = [("id".to_owned(), Type::Uuid), ("b_id".to_owned(), Type::Uuid)];
            // The refused run left the load before it as it was.
            let rows = t.read_rows("child", &child, None).unwrap();
            assert_eq!(rows, vec![vec![Value::Uuid(Uuid::from_u128(7)), Value::Uuid(parent)]], "{name}: b_id {b_id}");
        }
    }
}

/// PostgreSQL: a first load puts a foreign key the run resolved itself back before the child's
/// rows come, while the child is empty (adding it then reads no rows; at commit it would read
/// them all again), with the parent's keys built first; a key it did not resolve is put back
/// at commit, where adding it checks every row. Both hold, validated, once committed.
#[test]
fn postgres_puts_back_a_resolved_key_before_the_rows_and_the_others_at_commit() {
    let Some((_db, mut t, resolved)) = two_keys_on_postgres() else { return };
    let (account, parent) = (Uuid::from_u128(5), Uuid::from_u128(6));
    let has = |t: &mut dyn Target, what: &str| {
        let sql = match what {
            "parent_pkey" => "SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('parent_pkey')".to_owned(),
            c => format!("SELECT 1 FROM pg_constraint WHERE conname = '{c}' AND convalidated"),
        };
        t.exec_sql(&sql).unwrap() == 1
    };
    t.begin().unwrap();
    assert!(t.defer_constraints(&["child", "parent"]).unwrap(), "empty tables");
    t.trust_references(&resolved);
    assert!(!has(t.as_mut(), "parent_pkey") && !has(t.as_mut(), "child_a_id_fkey"), "taken off for the load");
    t.start_table("parent", &["id".into(), "account_id".into()]).unwrap();
    t.write_row(&[Value::Uuid(parent), Value::Uuid(account)]).unwrap();
    t.finish_table().unwrap();
    assert!(!has(t.as_mut(), "parent_pkey"), "built after the load");
    t.start_table("child", &["id", "account_id", "a_id", "b_id"].map(String::from)).unwrap();
    assert!(has(t.as_mut(), "parent_pkey"), "the parent's key before its child's rows");
    assert!(has(t.as_mut(), "child_a_id_fkey"), "the resolved key before the rows");
    assert!(!has(t.as_mut(), "child_b_id_fkey"), "the other one at commit");
    assert!(!has(t.as_mut(), "child_pkey"), "the child's own keys at commit");
    t.write_row(&[Value::Uuid(Uuid::from_u128(7)), Value::Uuid(account), Value::Uuid(parent), Value::Uuid(parent)])
        .unwrap();
    t.finish_table().and_then(|()| t.commit()).unwrap();
    for k in ["parent_pkey", "child_pkey", "child_a_id_fkey", "child_b_id_fkey", "child_account_id_a_id_key"] {
        assert!(has(t.as_mut(), k), "{k} after the commit");
    }
}

/// PostgreSQL: a key from a loaded table to a table of another schema with the same name as
/// the run's parent is not one the run resolved (its lookups answer with the run's own rows):
/// it is put back at commit, where a value missing there is refused.
#[test]
fn postgres_checks_a_key_to_a_table_of_another_schema_at_commit() {
    let Some((db, mut t, resolved)) = two_keys_on_postgres() else { return };
    let (account, parent) = (Uuid::from_u128(5), Uuid::from_u128(6));
    cutover_testkit::exec(
        &db.url,
        "CREATE SCHEMA other; CREATE TABLE other.parent (id UUID PRIMARY KEY);
         ALTER TABLE child DROP CONSTRAINT child_a_id_fkey;
         ALTER TABLE child ADD CONSTRAINT child_a_id_fkey FOREIGN KEY (a_id) REFERENCES other.parent (id)",
    )
    .unwrap();
    t.begin().unwrap();
    assert!(t.defer_constraints(&["child", "parent"]).unwrap(), "empty tables");
    t.trust_references(&resolved);
    t.start_table("parent", &["id".into(), "account_id".into()]).unwrap();
    t.write_row(&[Value::Uuid(parent), Value::Uuid(account)]).unwrap();
    t.finish_table().unwrap();
    t.start_table("child", &["id", "account_id", "a_id", "b_id"].map(String::from)).unwrap();
    t.write_row(&[Value::Uuid(Uuid::from_u128(7)), Value::Uuid(account), Value::Uuid(parent), Value::Null]).unwrap();
    let done = t.finish_table().and_then(|()| t.commit());
    assert_commit(t.as_mut(), "a key to other.parent", done, false);
    assert!(t.read_rows("child", &[("id".to_owned(), Type::Uuid)], None).unwrap().is_empty(), "nothing committed");
}

/// PostgreSQL, per-row checks off (a final migration's upserts and deletes): a key to a table
/// of another schema named like the run's parent is checked against that table, never taken
/// for one the run resolved; and a row of another schema pointing at a row the run deletes
/// stops the delete.
#[test]
fn postgres_upserts_and_deletes_keep_keys_across_schemas() {
    let Some((db, mut t, resolved)) = two_keys_on_postgres() else { return };
    let (account, parent, theirs) = (Uuid::from_u128(5), Uuid::from_u128(6), Uuid::from_u128(8));
    t.begin().unwrap();
    t.start_table("parent", &["id".into(), "account_id".into()]).unwrap();
    t.write_row(&[Value::Uuid(parent), Value::Uuid(account)]).unwrap();
    t.write_row(&[Value::Uuid(theirs), Value::Uuid(account)]).unwrap();
    t.finish_table().and_then(|()| t.commit()).unwrap();
    cutover_testkit::exec(
        &db.url,
        &format!(
            "CREATE SCHEMA other; CREATE TABLE other.parent (id UUID PRIMARY KEY);
             INSERT INTO other.parent VALUES ('{theirs}');
             ALTER TABLE child DROP CONSTRAINT child_a_id_fkey;
             ALTER TABLE child ADD CONSTRAINT child_a_id_fkey FOREIGN KEY (a_id) REFERENCES other.parent (id);
             CREATE TABLE other.ref (id UUID PRIMARY KEY, parent_id UUID REFERENCES public.parent (id));
             INSERT INTO other.ref VALUES ('{theirs}', '{theirs}')"
        ),
    )
    .unwrap();
    let cols = ["id", "account_id", "a_id", "b_id"].map(String::from);
    for (a_id, commits) in [(parent, false), (theirs, true)] {
        t.begin_consistent().unwrap();
        t.trust_references(&resolved);
        assert_eq!(
            t.exec_sql("SELECT 1 WHERE current_setting('session_replication_role') = 'replica'").unwrap(),
            1,
            "per-row checks off"
        );
        let row = vec![Value::Uuid(Uuid::from_u128(7)), Value::Uuid(account), Value::Uuid(a_id), Value::Null];
        let done = t.upsert_rows("child", &cols, &["id"], &[row]).and_then(|()| t.commit());
        assert_commit(t.as_mut(), &format!("a_id {a_id} → other.parent"), done, commits);
    }
    t.begin_consistent().unwrap();
    let done = t.delete_ids("parent", &[theirs]).and_then(|_| t.commit());
    let err = done.expect_err("other.ref still points at it").to_string();
    assert!(err.contains("other") && err.contains("ref"), "{err}");
    t.rollback().unwrap();
    let ids = t.read_rows("parent", &[("id".to_owned(), Type::Uuid)], None).unwrap();
    assert_eq!(ids.len(), 2, "nothing deleted");
}

/// PostgreSQL: a v2 table with a trigger of its own (here an audit log) has it fire for every
/// row cutover writes, in a first load and in an upsert: switching the per-row key checks off
/// would switch it off too, so such a schema keeps them.
#[test]
fn postgres_fires_the_v2_schemas_own_triggers() {
    let Some((_db, mut t, resolved)) = two_keys_on_postgres() else { return };
    let (account, parent) = (Uuid::from_u128(5), Uuid::from_u128(6));
    // One statement at a time: the function's body has semicolons of its own.
    for sql in [
        "CREATE TABLE audit (child_id UUID NOT NULL)",
        "CREATE FUNCTION log_child() RETURNS trigger LANGUAGE plpgsql AS
           'BEGIN INSERT INTO audit VALUES (NEW.id); RETURN NEW; END'",
        "CREATE TRIGGER child_audit AFTER INSERT OR UPDATE ON child FOR EACH ROW EXECUTE FUNCTION log_child()",
    ] {
        t.exec_sql(sql).unwrap();
    }
    let origin = "SELECT 1 WHERE current_setting('session_replication_role') = 'origin'";
    t.begin().unwrap();
    assert!(t.defer_constraints(&["child", "parent"]).unwrap(), "empty tables");
    t.trust_references(&resolved);
    assert_eq!(t.exec_sql(origin).unwrap(), 1, "per-row checks and triggers on");
    t.start_table("parent", &["id".into(), "account_id".into()]).unwrap();
    t.write_row(&[Value::Uuid(parent), Value::Uuid(account)]).unwrap();
    t.finish_table().unwrap();
    let cols = ["id", "account_id", "a_id", "b_id"].map(String::from);
    t.start_table("child", &cols).unwrap();
    t.write_row(&[Value::Uuid(Uuid::from_u128(7)), Value::Uuid(account), Value::Uuid(parent), Value::Null]).unwrap();
    t.finish_table().and_then(|()| t.commit()).unwrap();
    t.begin_consistent().unwrap();
    assert_eq!(t.exec_sql(origin).unwrap(), 1, "per-row checks and triggers on");
    let row = vec![Value::Uuid(Uuid::from_u128(8)), Value::Uuid(Uuid::from_u128(9)), Value::Uuid(parent), Value::Null];
    t.upsert_rows("child", &cols, &["id"], &[row]).and_then(|()| t.commit()).unwrap();
    let logged = t.read_rows("audit", &[("child_id".to_owned(), Type::Uuid)], None).unwrap();
    assert_eq!(logged, vec![vec![Value::Uuid(Uuid::from_u128(7))], vec![Value::Uuid(Uuid::from_u128(8))]]);
}

/// PostgreSQL: a foreign key of two columns (a child's parent within its own account) holds for
/// upserts too; cutover checks single-column keys itself, so such a schema keeps the per-row
/// checks, and a row pointing at another account's parent is refused.
#[test]
fn postgres_keeps_a_foreign_key_of_two_columns() {
    let Some((db, mut t, resolved)) = two_keys_on_postgres() else { return };
    let (account, other, parent) = (Uuid::from_u128(5), Uuid::from_u128(50), Uuid::from_u128(6));
    cutover_testkit::exec(
        &db.url,
        "ALTER TABLE parent ADD CONSTRAINT parent_account_id_id_key UNIQUE (account_id, id);
         ALTER TABLE child ADD CONSTRAINT child_same_account FOREIGN KEY (account_id, b_id)
           REFERENCES parent (account_id, id)",
    )
    .unwrap();
    t.begin().unwrap();
    t.start_table("parent", &["id".into(), "account_id".into()]).unwrap();
    t.write_row(&[Value::Uuid(parent), Value::Uuid(account)]).unwrap();
    t.finish_table().and_then(|()| t.commit()).unwrap();
    let cols = ["id", "account_id", "a_id", "b_id"].map(String::from);
    for (n, (owner, commits)) in [(other, false), (account, true)].into_iter().enumerate() {
        t.begin_consistent().unwrap();
        t.trust_references(&resolved);
        let row =
            vec![Value::Uuid(Uuid::from_u128(7 + n as u128)), Value::Uuid(owner), Value::Null, Value::Uuid(parent)];
        let done = t.upsert_rows("child", &cols, &["id"], &[row]).and_then(|()| t.commit());
        assert_commit(t.as_mut(), &format!("b_id of account {owner}"), done, commits);
    }
    let ids = t.read_rows("child", &[("id".to_owned(), Type::Uuid)], None).unwrap();
    assert_eq!(ids, vec![vec![Value::Uuid(Uuid::from_u128(8))]]);
}

/// A login role of its own on the test database, owner of the database and its schema but
/// not a superuser (as an application's role is): it may not switch the per-row key checks
/// off. Dropped, with what it owns handed back, when the guard goes.
struct OrdinaryRole {
    name: String,
    db_url: String,
    url: String,
}

impl OrdinaryRole {
    fn new(db_url: &str) -> OrdinaryRole {
        let name = format!("cutover_app_{}", std::process::id());
        let db = db_url.rsplit('/').next().unwrap();
        cutover_testkit::exec(
            db_url,
            &format!(
                "DROP ROLE IF EXISTS {name}; CREATE ROLE {name} LOGIN PASSWORD 'app' NOSUPERUSER;
                 ALTER DATABASE \"{db}\" OWNER TO {name}; ALTER SCHEMA public OWNER TO {name}"
            ),
        )
        .unwrap();
        let (scheme, rest) = db_url.split_once("://").unwrap();
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        OrdinaryRole { url: format!("{scheme}://{name}:app@{host}"), name, db_url: db_url.to_owned() }
    }
}

impl Drop for OrdinaryRole {
    fn drop(&mut self) {
        let n = &self.name;
        let _ =
            cutover_testkit::exec(&self.db_url, &format!("REASSIGN OWNED BY {n} TO CURRENT_USER; DROP OWNED BY {n}"));
        let _ = cutover_testkit::exec(&cutover_testkit::pg_admin_url(), &format!("DROP ROLE IF EXISTS {n}"));
    }
}

/// PostgreSQL: a final migration's delete never lets a key's ON DELETE action take rows of
/// another table with it (rows the recovery bundle does not hold): with the per-row checks
/// off (a superuser) or on (an ordinary role), a parent row another table points at with
/// `ON DELETE CASCADE` stays, the delete refused, and the pointing row stays too.
#[test]
fn postgres_deletes_take_no_other_rows_with_them() {
    let Some(db) = TestDb::postgres() else { return };
    let role = OrdinaryRole::new(&db.url);
    let (account, parent) = (Uuid::from_u128(5), Uuid::from_u128(6));
    // The role's own tables, as an application's are.
    let mut t = TargetConfig::from_url(&role.url).unwrap().build().unwrap();
    t.ensure_schema(&two_keys().0).unwrap();
    t.begin().unwrap();
    t.start_table("parent", &["id".into(), "account_id".into()]).unwrap();
    t.write_row(&[Value::Uuid(parent), Value::Uuid(account)]).unwrap();
    t.finish_table().and_then(|()| t.commit()).unwrap();
    cutover_testkit::exec(
        &role.url,
        &format!(
            "CREATE TABLE note (id UUID PRIMARY KEY, parent_id UUID REFERENCES parent (id) ON DELETE CASCADE);
             INSERT INTO note VALUES ('{parent}', '{parent}')"
        ),
    )
    .unwrap();
    drop(t);
    for (who, url) in [("superuser", &db.url), ("ordinary role", &role.url)] {
        let mut t = TargetConfig::from_url(url).unwrap().build().unwrap();
        t.begin_consistent().unwrap();
        let done = t.delete_ids("parent", &[parent]).and_then(|_| t.commit());
        let err = done.expect_err("a note points at it").to_string();
        assert!(err.contains("note.parent_id"), "{who}: {err}");
        t.rollback().unwrap();
        assert_eq!(t.read_rows("note", &[("id".to_owned(), Type::Uuid)], None).unwrap().len(), 1, "{who}");
        assert_eq!(t.read_rows("parent", &[("id".to_owned(), Type::Uuid)], None).unwrap().len(), 1, "{who}");
    }
}

/// PostgreSQL as a role that may not switch the per-row key checks off: a first load puts
/// every key back at commit, where adding it checks every row, so a dangling value is refused
/// even in a column the run says it resolved; what commits has every key, validated.
#[test]
fn postgres_as_an_ordinary_role_checks_every_key_at_commit() {
    let Some(db) = TestDb::postgres() else { return };
    let role = OrdinaryRole::new(&db.url);
    let (schema, resolved) = two_keys();
    let (account, parent) = (Uuid::from_u128(5), Uuid::from_u128(6));
    let mut t = TargetConfig::from_url(&role.url).unwrap().build().unwrap();
    t.ensure_schema(&schema).unwrap();
    let valid = "SELECT 1 FROM pg_constraint WHERE contype IN ('p', 'u', 'f') AND convalidated \
                 AND conrelid IN ('parent'::regclass, 'child'::regclass) HAVING count(*) = 5";
    for (a_id, b_id, holds) in
        [(Uuid::from_u128(999), parent, false), (parent, Uuid::from_u128(999), false), (parent, parent, true)]
    {
        t.begin().unwrap();
        assert!(t.defer_constraints(&["child", "parent"]).unwrap(), "empty tables");
        t.trust_references(&resolved);
        assert_eq!(
            t.exec_sql("SELECT 1 WHERE current_setting('session_replication_role') = 'origin'").unwrap(),
            1,
            "the per-row checks stay on for this role"
        );
        t.start_table("parent", &["id".into(), "account_id".into()]).unwrap();
        t.write_row(&[Value::Uuid(parent), Value::Uuid(account)]).unwrap();
        t.finish_table().unwrap();
        t.start_table("child", &["id", "account_id", "a_id", "b_id"].map(String::from)).unwrap();
        assert_eq!(t.exec_sql(valid).unwrap(), 0, "the keys are put back at commit");
        t.write_row(&[Value::Uuid(Uuid::from_u128(7)), Value::Uuid(account), Value::Uuid(a_id), Value::Uuid(b_id)])
            .unwrap();
        let done = t.finish_table().and_then(|()| t.commit());
        assert_commit(t.as_mut(), &format!("a_id {a_id}, b_id {b_id}"), done, holds);
        assert_eq!(t.exec_sql(valid).unwrap(), 1, "every key back, validated");
    }
    let child = [("a_id".to_owned(), Type::Uuid), ("b_id".to_owned(), Type::Uuid)];
    assert_eq!(t.read_rows("child", &child, None).unwrap(), vec![vec![Value::Uuid(parent), Value::Uuid(parent)]]);
    drop(t);
}

/// A first load builds its keys at commit; two rows with one id do not commit, and the target
/// takes the next run as before.
#[test]
fn targets_refuse_a_first_load_that_breaks_a_key() {
    let schema = probe_schema();
    let account = Uuid::from_u128(8);
    let parent = [Value::Uuid(Uuid::from_u128(9)), Value::Uuid(account)];
    for (name, _db, url) in targets() {
        let mut t = TargetConfig::from_url(&url).unwrap().build().unwrap();
        t.ensure_schema(&schema).unwrap();
        for twice in [true, false] {
            t.begin().unwrap();
            assert!(t.defer_constraints(&["parent", "probe"]).unwrap(), "{name}: empty tables");
            t.start_table("parent", &["id".into(), "account_id".into()]).unwrap();
            t.write_row(&parent).unwrap();
            if twice {
                t.write_row(&parent).unwrap();
            }
            let done = t.finish_table().and_then(|()| t.commit());
            if twice {
                let err = done.expect_err("two rows with one id must not commit").to_string();
                assert!(err.to_lowercase().contains("unique") || err.contains("duplicate"), "{name}: {err}");
                t.rollback().unwrap();
                let cols = [("id".to_owned(), Type::Uuid)];
                assert!(t.read_rows("parent", &cols, None).unwrap().is_empty(), "{name}: nothing committed");
            } else {
                done.unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }
}

/// A value outside a CHECK constraint's IN list does not commit, in a first load or any
/// other; the SQLite target writes such lists as comparisons, which must refuse the same rows.
#[test]
fn targets_refuse_a_value_outside_a_check_list() {
    let schema = ddl::parse(
        "checks.sql",
        "CREATE TABLE coded (id UUID PRIMARY KEY, account_id UUID NOT NULL,
             s TEXT CHECK (s IN ('open', 'won', 'lost')), n BIGINT NOT NULL CHECK (n NOT IN (1, 2, 3)));",
    )
    .unwrap();
    let account = Uuid::from_u128(8);
    let cols = ["id", "account_id", "s", "n"].map(String::from);
    let row = |i: u128, s: Value, n: i64| vec![Value::Uuid(Uuid::from_u128(i)), Value::Uuid(account), s, Value::Int(n)];
    for (name, _db, url) in targets() {
        let mut t = TargetConfig::from_url(&url).unwrap().build().unwrap();
        t.ensure_schema(&schema).unwrap();
        for first in [true, false] {
            for (bad, what) in
                [(row(3, Value::Text("Won".into()), 4), "s"), (row(3, Value::Text("won".into()), 2), "n")]
            {
                t.begin().unwrap();
                if first {
                    assert!(t.defer_constraints(&["coded"]).unwrap(), "{name}: empty table");
                }
                t.start_table("coded", &cols).unwrap();
                t.write_row(&row(1, Value::Text("open".into()), 0)).unwrap();
                t.write_row(&row(2, Value::Null, 7)).unwrap();
                let done = t.write_row(&bad).and_then(|()| t.finish_table()).and_then(|()| t.commit());
                let err = done.expect_err("a value outside the list must not commit").to_string();
                assert!(err.to_lowercase().contains("check"), "{name}, {what}: {err}");
                t.rollback().unwrap();
                let back = t.read_rows("coded", &[("id".to_owned(), Type::Uuid)], None).unwrap();
                assert!(back.is_empty(), "{name}, {what}: nothing committed");
            }
        }
        // The rows in the lists (and NULL, which a CHECK lets through) commit.
        t.begin().unwrap();
        t.start_table("coded", &cols).unwrap();
        for (i, s) in ["open", "won", "lost"].into_iter().enumerate() {
            t.write_row(&row(i as u128 + 1, Value::Text(s.into()), i as i64 + 4)).unwrap();
        }
        t.write_row(&row(9, Value::Null, 0)).unwrap();
        t.finish_table().and_then(|()| t.commit()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.read_rows("coded", &[("id".to_owned(), Type::Uuid)], None).unwrap().len(), 4, "{name}");
    }
}

/// The final migration's writes (upserts and deletes by id) keep every key too: a row pointing
/// at no parent, or a parent deleted under its children, never commits.
#[test]
fn targets_refuse_upserts_and_deletes_that_break_a_key() {
    let schema = probe_schema();
    let account = Uuid::from_u128(6);
    let parent = Uuid::from_u128(200);
    for (name, _db, url) in targets() {
        let mut t = TargetConfig::from_url(&url).unwrap().build().unwrap();
        t.ensure_schema(&schema).unwrap();
        load_probes(t.as_mut(), parent, account, &probe_rows(parent, account)[..1]);
        let cols: Vec<String> = COLS.map(String::from).to_vec();
        let before = t.read_rows("probe", &cols_typed(&schema, "probe"), None).unwrap();

        // Upserts pointing at no parent: two rows, at the same missing one.
        t.begin().unwrap();
        let mut dangling = probe_rows(parent, account);
        for r in &mut dangling {
            r[2] = Value::Uuid(Uuid::from_u128(404));
        }
        let r = t.upsert_rows("probe", &cols, &["id"], &dangling).and_then(|()| t.commit());
        let err = r.expect_err("an upsert to a missing parent must not commit").to_string();
        assert_key_error(name, &err);
        if name != "sqlite" {
            // The rows are counted, not the values they point at.
            assert!(err.contains("2 rows would point at no parent"), "{name}: {err}");
        }
        t.rollback().unwrap();
        if name != "sqlite" {
            // PostgreSQL writes an upsert after it returns: the next call that reads says what
            // broke, not only that the transaction is aborted. (SQLite checks at commit.)
            t.begin().unwrap();
            let typed = cols_typed(&schema, "probe");
            let r = t.upsert_rows("probe", &cols, &["id"], &dangling).and_then(|()| t.read_rows("probe", &typed, None));
            let err = r.expect_err("a read after an upsert to a missing parent").to_string();
            assert!(err.contains("2 rows would point at no parent"), "{name}: {err}");
            t.rollback().unwrap();
        }

        // Deleting the parent its child still points at.
        t.begin().unwrap();
        let r = t.delete_ids("parent", &[parent]).and_then(|_| t.commit());
        let err = r.expect_err("deleting a referenced parent must not commit").to_string();
        assert_key_error(name, &err);
        t.rollback().unwrap();
        drop(t);
        let mut t = TargetConfig::from_url(&url).unwrap().build().unwrap();
        assert_eq!(t.read_rows("probe", &cols_typed(&schema, "probe"), None).unwrap(), before, "{name}: unchanged");
        assert_eq!(t.read_rows("parent", &cols_typed(&schema, "parent"), None).unwrap().len(), 1, "{name}");
    }
}

/// A final migration tells its target which foreign keys it resolved itself (every value the
/// id of a row it keeps or writes first): its upserts take those at the run's word, without
/// looking a value up, and check every other key, even of the same table.
#[test]
fn upserts_check_every_foreign_key_a_run_did_not_resolve_itself() {
    let (schema, resolved) = two_keys();
    let (account, parent, nowhere) = (Uuid::from_u128(5), Uuid::from_u128(6), Uuid::from_u128(999));
    let cols = ["id", "account_id", "a_id", "b_id"].map(String::from);
    let typed = [("id".to_owned(), Type::Uuid), ("a_id".to_owned(), Type::Uuid), ("b_id".to_owned(), Type::Uuid)];
    for (name, _db, url) in targets() {
        let mut t = TargetConfig::from_url(&url).unwrap().build().unwrap();
        t.ensure_schema(&schema).unwrap();
        t.begin().unwrap();
        t.start_table("parent", &["id".into(), "account_id".into()]).unwrap();
        t.write_row(&[Value::Uuid(parent), Value::Uuid(account)]).unwrap();
        t.finish_table().and_then(|()| t.commit()).unwrap_or_else(|e| panic!("{name}: {e}"));
        // (a_id, b_id): whether the upsert commits. PostgreSQL looks each key up on its own
        // for every batch: a_id is not looked at. (SQLite checks a table's keys together, at
        // commit: one it must look at has it look at them all.)
        let mut cases = vec![(parent, parent, true), (parent, nowhere, false)];
        if name != "sqlite" {
            cases.push((nowhere, parent, true));
        }
        for (n, (a_id, b_id, commits)) in cases.into_iter().enumerate() {
            t.begin_consistent().unwrap();
            t.trust_references(&resolved);
            // An account each: a child's a_id is unique within its account.
            let (id, account) = (Uuid::from_u128(10 + n as u128), Uuid::from_u128(100 + n as u128));
            let row = vec![Value::Uuid(id), Value::Uuid(account), Value::Uuid(a_id), Value::Uuid(b_id)];
            let done = t.upsert_rows("child", &cols, &["id"], &[row]).and_then(|()| t.commit());
            assert_commit(t.as_mut(), &format!("{name}: a_id {a_id}, b_id {b_id}"), done, commits);
        }
        // The keys are the run's word for one transaction only: the next checks a_id again.
        t.begin_consistent().unwrap();
        let row = vec![Value::Uuid(Uuid::from_u128(20)), Value::Uuid(account), Value::Uuid(nowhere), Value::Null];
        let done = t.upsert_rows("child", &cols, &["id"], &[row]).and_then(|()| t.commit());
        let err = done.expect_err("a_id is checked once the run that resolved it is over").to_string();
        assert_key_error(name, &err);
        t.rollback().unwrap();
        let ids: Vec<Value> = t.read_rows("child", &typed, None).unwrap().into_iter().map(|r| r[0].clone()).collect();
        let mut committed = vec![Value::Uuid(Uuid::from_u128(10))];
        if name != "sqlite" {
            committed.push(Value::Uuid(Uuid::from_u128(12)));
        }
        assert_eq!(ids, committed, "{name}");
    }
}

/// A value binary COPY has no encoding for (text for an integer column) still upserts: the
/// batch goes as text, which the database parses.
#[test]
fn upserts_take_values_binary_copy_cannot_encode() {
    let schema = probe_schema();
    let account = Uuid::from_u128(7);
    let parent = Uuid::from_u128(300);
    for (name, _db, url) in targets() {
        let mut t = TargetConfig::from_url(&url).unwrap().build().unwrap();
        t.ensure_schema(&schema).unwrap();
        load_probes(t.as_mut(), parent, account, &probe_rows(parent, account));
        let mut rows = probe_rows(parent, account);
        rows[0][4] = Value::Text("42".into());
        rows[1][3] = Value::Text("upserted".into());
        t.begin().unwrap();
        t.upsert_rows("probe", &COLS.map(String::from), &["id"], &rows).unwrap();
        t.commit().unwrap();
        let typed = cols_typed(&schema, "probe");
        let ids = [Uuid::from_u128(1), Uuid::from_u128(2)];
        let after = t.read_rows_by_id("probe", &typed, account, &ids).unwrap();
        assert_eq!(after[0][4], Value::Int(42), "{name}");
        assert_eq!(after[0][3], probe_rows(parent, account)[0][3], "{name}: the rest as given");
        assert_eq!(after[1][3], Value::Text("upserted".into()), "{name}");
    }
}

/// The final migration reads its recovery bundle on a second connection while it writes. On
/// PostgreSQL that connection sees v2 as the run's transaction began: neither the run's own
/// writes nor what others commit meanwhile. Only a transaction with one snapshot throughout
/// has one to share; SQLite has no such connection and says so.
#[test]
fn a_snapshot_reader_sees_v2_as_the_transaction_began() {
    let schema = probe_schema();
    let account = Uuid::from_u128(9);
    let parent = Uuid::from_u128(400);
    let ids = [Uuid::from_u128(1), Uuid::from_u128(2)];
    for (name, _db, url) in targets() {
        let mut t = TargetConfig::from_url(&url).unwrap().build().unwrap();
        t.ensure_schema(&schema).unwrap();
        load_probes(t.as_mut(), parent, account, &probe_rows(parent, account));
        let typed = cols_typed(&schema, "probe");
        let before = t.read_rows_by_id("probe", &typed, account, &ids).unwrap();
        assert_eq!(before, probe_rows(parent, account), "{name}");

        assert!(t.snapshot_reader().unwrap().is_none(), "{name}: outside a transaction");
        t.begin().unwrap();
        assert!(t.snapshot_reader().unwrap().is_none(), "{name}: a transaction that sees each commit");
        t.rollback().unwrap();

        t.begin_consistent().unwrap();
        if name == "sqlite" {
            assert!(t.snapshot_reader().unwrap().is_none(), "SQLite has no second connection to the same snapshot");
            t.rollback().unwrap();
            continue;
        }
        // After the run began, someone else changes the second row and commits; the run
        // writes the first. Only then is the second connection opened.
        cutover_testkit::exec(
            &url,
            "UPDATE probe SET t = 'edited elsewhere' WHERE id = '00000000-0000-0000-0000-000000000002'",
        )
        .unwrap();
        let mut changed = probe_rows(parent, account).remove(0);
        changed[3] = Value::Text("written by the run".into());
        t.upsert_rows("probe", &COLS.map(String::from), &["id"], std::slice::from_ref(&changed)).unwrap();
        let mut reader = t.snapshot_reader().unwrap().expect("PostgreSQL shares the transaction's snapshot");
        assert_eq!(reader.read_rows_by_id("probe", &typed, account, &ids).unwrap(), before, "{name}: as it began");
        assert_eq!(
            t.read_rows_by_id("probe", &typed, account, &ids[..1]).unwrap(),
            vec![changed],
            "{name}: the run's own"
        );
        drop(reader);
        t.commit().unwrap();
        let after = t.read_rows_by_id("probe", &typed, account, &ids).unwrap();
        assert_eq!(after[0][3], Value::Text("written by the run".into()), "{name}");
        assert_eq!(after[1][3], Value::Text("edited elsewhere".into()), "{name}");
    }
}

/// PostgreSQL tells which of an account's rows were written since the runs that wrote the
/// row state (the overwrite preview compares only those); SQLite cannot, and says so.
#[test]
fn targets_tell_rows_written_since_a_run_or_say_they_cannot() {
    let schema = probe_schema();
    let account = Uuid::from_u128(8);
    let parent = Uuid::from_u128(300);
    for (name, _db, url) in targets() {
        let mut t = TargetConfig::from_url(&url).unwrap().build().unwrap();
        t.ensure_schema(&schema).unwrap();
        t.ensure_state_table().unwrap();
        t.begin().unwrap();
        t.start_table("parent", &["id".into(), "account_id".into()]).unwrap();
        t.write_row(&[Value::Uuid(parent), Value::Uuid(account)]).unwrap();
        t.finish_table().unwrap();
        t.start_table("probe", &COLS.map(String::from)).unwrap();
        let rows = probe_rows(parent, account);
        for r in &rows {
            t.write_row(r).unwrap();
            let Value::Uuid(id) = r[0] else { unreachable!() };
            let entry = cutover_engine::state::StateEntry {
                account,
                table: "probe",
                id,
                legacy_ref: "P:1",
                v1_fp: 1,
                v2_fp: 2,
                values: &r[3..],
            };
            t.write_state(&entry).unwrap();
        }
        t.finish_table().unwrap();
        t.commit().unwrap();
        let mut heads = Vec::new();
        t.scan_state(account, "probe", true, &mut |h| {
            heads.push(h);
            Ok(())
        })
        .unwrap();
        assert_eq!(heads.iter().map(|h| h.n as usize).sum::<usize>(), rows.len(), "{name}");
        let xids: Vec<i64> = heads.iter().map(|h| h.xid).collect();
        let cols = cols_typed(&schema, "probe");
        let written = |t: &mut Box<dyn cutover_engine::connect::Target>| {
            let mut seen = Vec::new();
            let counts = t.count_written_since("probe", account, &xids).unwrap();
            if counts.is_some() {
                t.scan_written_since("probe", &cols, account, &xids, &mut |r| {
                    seen.push(r[0].clone());
                    Ok(())
                })
                .unwrap();
            }
            (counts, seen)
        };
        if name == "sqlite" {
            assert_eq!(written(&mut t).0, None, "SQLite cannot tell");
            continue;
        }
        let n = rows.len() as u64;
        assert_eq!(written(&mut t), (Some((n, 0)), Vec::new()), "{name}: nothing written since");
        cutover_testkit::exec(&url, "UPDATE probe SET t = 'edited' WHERE id = '00000000-0000-0000-0000-000000000001'")
            .unwrap();
        assert_eq!(written(&mut t), (Some((n, 1)), vec![Value::Uuid(Uuid::from_u128(1))]), "{name}: the edit");
    }
}

/// A load far larger than one COPY's worth of rows, with its row state, some 20 MiB of each
/// (PostgreSQL streams a table's rows as one COPY until the row state held back is written
/// between them): every row and every row-state entry comes back as written. A row the
/// database refuses deep into the stream fails the load, commits nothing, and the target loads
/// again after it.
#[test]
fn targets_load_rows_and_row_state_across_many_copies_and_stop_at_a_refused_row() {
    use cutover_engine::state::{StateEntry, decode_loaded};
    let schema = probe_schema();
    let account = Uuid::from_u128(12);
    let parent = Uuid::from_u128(400);
    // Text that does not compress (the row state is compressed): 10 KiB of hex a row.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut noise = |len: usize| {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b"0123456789abcdef"[(seed % 16) as usize])
            })
            .collect::<String>()
    };
    let rows: Vec<Vec<Value>> = (0..2_000u32)
        .map(|i| {
            vec![
                Value::Uuid(Uuid::from_u128(u128::from(i) + 1)),
                Value::Uuid(account),
                if i % 3 == 0 { Value::Uuid(parent) } else { Value::Null },
                Value::Text(noise(10_240)),
                Value::Int(i64::from(i)),
                Value::Null,
                Value::Null,
                Value::Bool(i % 2 == 0),
                Value::Null,
            ]
        })
        .collect();
    let load = |t: &mut Box<dyn Target>, refuse_at: Option<usize>| -> Result<(), String> {
        t.begin().map_err(|e| e.to_string())?;
        t.start_table("parent", &["id".into(), "account_id".into()]).unwrap();
        t.write_row(&[Value::Uuid(parent), Value::Uuid(account)]).unwrap();
        t.finish_table().unwrap();
        t.start_table("probe", &COLS.map(String::from)).unwrap();
        for (i, r) in rows.iter().enumerate() {
            let mut r = r.clone();
            if refuse_at == Some(i) {
                // Refused by the database as it meets the row, not by cutover.
                r[1] = Value::Null;
            }
            t.write_row(&r).map_err(|e| e.to_string())?;
            let Value::Uuid(id) = r[0] else { unreachable!() };
            let legacy_ref = format!("P:{i}");
            let entry = StateEntry {
                account,
                table: "probe",
                id,
                legacy_ref: &legacy_ref,
                v1_fp: i as i64,
                v2_fp: -(i as i64),
                values: &r[3..],
            };
            t.write_state(&entry).map_err(|e| e.to_string())?;
        }
        t.finish_table().and_then(|()| t.commit()).map_err(|e| e.to_string())
    };
    for (name, _db, url) in targets() {
        let mut t = TargetConfig::from_url(&url).unwrap().build().unwrap();
        t.ensure_schema(&schema).unwrap();
        t.ensure_state_table().unwrap();
        let err = load(&mut t, Some(1_700)).expect_err("a row without its account must not commit");
        assert!(err.to_lowercase().contains("null"), "{name}: {err}");
        t.rollback().unwrap();
        assert!(t.read_rows("probe", &cols_typed(&schema, "probe"), None).unwrap().is_empty(), "{name}");
        let mut heads = Vec::new();
        t.scan_state(account, "probe", false, &mut |h| {
            heads.push(h);
            Ok(())
        })
        .unwrap();
        assert!(heads.is_empty(), "{name}: no row state either");

        load(&mut t, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let back = t.read_rows("probe", &cols_typed(&schema, "probe"), Some(account)).unwrap();
        assert_eq!(back.len(), rows.len(), "{name}");
        assert!(back == rows, "{name}: the rows come back as written");
        t.scan_state(account, "probe", true, &mut |h| {
            heads.push(h);
            Ok(())
        })
        .unwrap();
        let mut ids = Vec::new();
        let mut fps = Vec::new();
        for h in &heads {
            for i in 0..h.n as usize {
                ids.push(h.id(i).unwrap());
                fps.push(h.fps(i).unwrap());
            }
        }
        let want_ids: Vec<Uuid> = (0..rows.len() as u128).map(|i| Uuid::from_u128(i + 1)).collect();
        assert_eq!(ids, want_ids, "{name}: every entry once, in order");
        assert!(fps.iter().enumerate().all(|(i, fp)| *fp == (i as i64, -(i as i64))), "{name}");
        let chunks: Vec<_> = heads.iter().map(|h| (h.generation, h.chunk)).collect();
        let mut loaded = Vec::new();
        for (_, raw) in t.read_state_loaded(account, "probe", &chunks).unwrap() {
            loaded.extend(decode_loaded(&raw).unwrap());
        }
        assert_eq!(loaded.len(), rows.len(), "{name}");
        for (i, (legacy_ref, values)) in loaded.iter().enumerate() {
            assert_eq!(legacy_ref, &format!("P:{i}"), "{name}");
            assert!(values[..] == rows[i][3..], "{name}: row {i} as loaded");
        }
    }
}

/// A server whose sessions time out statements, or transactions left idle, does not cut a run
/// short: a migration's statements and its transaction take as long as the data does. Nor does
/// it compile cutover's big scans to machine code first (JIT).
#[test]
fn postgres_sessions_outlast_the_servers_timeouts() {
    let Some(db) = TestDb::postgres() else { return };
    let schema = probe_schema();
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    cutover_testkit::exec(
        &db.url,
        &format!(
            "ALTER DATABASE \"{name}\" SET statement_timeout = '100ms';
             ALTER DATABASE \"{name}\" SET idle_in_transaction_session_timeout = '100ms';
             ALTER DATABASE \"{name}\" SET jit = on"
        ),
    )
    .unwrap();
    // The settings hold for a session that does not change them.
    let err = cutover_testkit::exec(&db.url, "SELECT pg_sleep(0.3)").unwrap_err();
    assert!(err.contains("statement timeout"), "{err}");

    let mut t = TargetConfig::from_url(&db.url).unwrap().build().unwrap();
    assert_eq!(t.exec_sql("SELECT 1 WHERE current_setting('jit') = 'off'").unwrap(), 1, "JIT off for the session");
    t.ensure_schema(&schema).unwrap();
    t.begin().unwrap();
    t.exec_sql("SELECT pg_sleep(0.3)").unwrap();
    // Idle in the transaction, as while v1 is read.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (parent, account) = (Uuid::from_u128(500), Uuid::from_u128(5));
    load_probes_in_tx(t.as_mut(), parent, account, &probe_rows(parent, account));
    t.commit().unwrap();
    let back = t.read_rows("probe", &cols_typed(&schema, "probe"), None).unwrap();
    assert_eq!(back, probe_rows(Uuid::from_u128(500), Uuid::from_u128(5)));
}

/// A MariaDB or MySQL v1 keeps sending a table to a run that stops taking rows for a while
/// (a slow v2, a lock held there): the server drops a client that takes nothing for
/// `net_write_timeout` seconds, and the scan would end halfway.
#[test]
fn mysql_scans_outlast_the_servers_write_timeout() {
    let Some(db) = TestDb::mysql() else { return };
    // More rows than the sockets' buffers hold, so that the server has to wait for the reader.
    cutover_testkit::exec(&db.url, "CREATE TABLE BIG (ID BIGINT PRIMARY KEY, PAD LONGTEXT)").unwrap();
    let rows = 40_000;
    for start in (0..rows).step_by(1_000) {
        let values: Vec<String> = (start..start + 1_000).map(|i| format!("({i}, REPEAT('x', 1000))")).collect();
        cutover_testkit::exec(&db.url, &format!("INSERT INTO BIG VALUES {}", values.join(", "))).unwrap();
    }
    // A session takes the server's default when it connects: a second, for this one only.
    cutover_testkit::exec(&db.url, "SET GLOBAL net_write_timeout = 1").unwrap();
    let opened = SourceConfig::from_url(&db.url).and_then(|c| c.build());
    cutover_testkit::exec(&db.url, "SET GLOBAL net_write_timeout = DEFAULT").unwrap();
    let mut s = opened.unwrap();
    let columns = vec![("ID".to_owned(), Type::Int), ("PAD".to_owned(), Type::Text)];
    let order = vec!["ID".to_owned()];
    let mut seen = 0;
    s.scan(&Scan { table: "BIG", columns: &columns, extra: &[], order_by: &order, lazy: None }, &mut |r| {
        if seen == 0 {
            std::thread::sleep(std::time::Duration::from_millis(2_500));
        }
        assert_eq!(r.values[0], Value::Int(seen));
        seen += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, rows);
}

/// A run reads v1 as it was when the run began, every table alike, while the legacy
/// application goes on writing beside a trial migration: an order and its line added after
/// the run read the orders are not half there (the line an orphan).
#[test]
fn server_sources_read_every_table_in_one_snapshot() {
    let ids = |s: &mut dyn Source, table: &str| -> Vec<i64> {
        let columns = vec![("id".to_owned(), Type::Int)];
        let mut seen = Vec::new();
        s.scan(&Scan { table, columns: &columns, extra: &[], order_by: &["id".to_owned()], lazy: None }, &mut |r| {
            seen.push(match r.values[0] {
                Value::Int(n) => n,
                ref other => panic!("{other:?}"),
            });
            Ok(())
        })
        .unwrap();
        seen
    };
    for db in [TestDb::postgres(), TestDb::mysql()].into_iter().flatten() {
        let name = db.backend();
        cutover_testkit::exec(
            &db.url,
            "CREATE TABLE parent (id BIGINT PRIMARY KEY); CREATE TABLE child (id BIGINT PRIMARY KEY, parent_id BIGINT); \
             INSERT INTO parent VALUES (1); INSERT INTO child VALUES (10, 1)",
        )
        .unwrap();
        let mut s = SourceConfig::from_url(&db.url).unwrap().build().unwrap();
        assert_eq!(ids(s.as_mut(), "parent"), [1], "{name}");
        cutover_testkit::exec(&db.url, "INSERT INTO parent VALUES (2); INSERT INTO child VALUES (20, 2)").unwrap();
        assert_eq!(ids(s.as_mut(), "child"), [10], "{name}: a line whose order the run did not read");
        assert_eq!(s.count("child").unwrap(), 1, "{name}");
        assert_eq!(ids(s.as_mut(), "parent"), [1], "{name}");
        // A run that begins after sees both.
        let mut later = SourceConfig::from_url(&db.url).unwrap().build().unwrap();
        assert_eq!(ids(later.as_mut(), "child"), [10, 20], "{name}");
    }
}

/// A final migration reads a big table's row state a part at a time: the parts of one
/// generation, read one after another, are that generation's chunks in order, and nothing of
/// a later generation.
#[test]
fn targets_give_one_generation_of_row_state_a_part_at_a_time() {
    use cutover_engine::state::{CHUNK_ROWS, Part, StateEntry};
    let schema = probe_schema();
    let account = Uuid::from_u128(9);
    for (name, _db, url) in targets() {
        let mut t = TargetConfig::from_url(&url).unwrap().build().unwrap();
        t.ensure_schema(&schema).unwrap();
        t.ensure_state_table().unwrap();
        let values = [Value::Text("x".into())];
        let write = |t: &mut Box<dyn cutover_engine::connect::Target>, generation: i32, ids: std::ops::Range<u128>| {
            t.set_state_generation(generation);
            t.begin().unwrap();
            t.start_table("probe", &COLS.map(String::from)).unwrap();
            for i in ids {
                let e = StateEntry {
                    account,
                    table: "probe",
                    id: Uuid::from_u128(i),
                    legacy_ref: "P:1",
                    v1_fp: i as i64,
                    v2_fp: -(i as i64),
                    values: &values,
                };
                t.write_state(&e).unwrap();
            }
            t.finish_table().unwrap();
            t.commit().unwrap();
        };
        let n = 3 * CHUNK_ROWS as u128 + 5;
        write(&mut t, 1, 0..n);
        write(&mut t, 2, n..n + 10);
        let mut whole = Vec::new();
        t.scan_state(account, "probe", true, &mut |h| {
            whole.push(h);
            Ok(())
        })
        .unwrap();
        let first: Vec<_> = whole.iter().filter(|h| h.generation == 1).map(|h| (h.chunk, h.ids.clone())).collect();
        assert_eq!(first.len(), 4, "{name}: four chunks in generation 1");
        let mut parts = Vec::new();
        let mut after = -1;
        loop {
            let mut part = Vec::new();
            t.scan_state_part(account, "probe", Part { generation: 1, after, limit: 3 }, &mut |h| {
                part.push((h.chunk, h.ids.clone(), h.fps(0)));
                Ok(())
            })
            .unwrap();
            let Some(last) = part.last() else { break };
            assert!(part.len() <= 3, "{name}: a part holds at most its limit");
            after = last.0;
            parts.push(part);
        }
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [3, 1], "{name}");
        let read: Vec<_> = parts.iter().flatten().map(|(c, ids, _)| (*c, ids.clone())).collect();
        assert_eq!(read, first, "{name}: the parts are generation 1's chunks, in order");
        assert_eq!(parts[0][0].2, Some((0, 0)), "{name}: with their fingerprints");
    }
}

#[test]
fn targets_scan_rows_in_the_order_they_were_loaded() {
    // Ids fall as rows are loaded: a scan in id order gives them backwards. The PostgreSQL table
    // is over a quarter of the default shared buffers, where a scan starts where the last scan
    // of the table stopped or reported being (synchronized scans), unless told not to.
    for (name, _db, url) in targets() {
        let pg = name == "postgres";
        let n: i64 = if pg { 250_000 } else { 5_000 };
        let create = if pg {
            format!(
                "CREATE TABLE big (id uuid PRIMARY KEY, n bigint NOT NULL, pad text NOT NULL); \
                 INSERT INTO big SELECT lpad(to_hex({n} - i), 32, '0')::uuid, i, repeat('x', 150) \
                 FROM generate_series(1, {n}) i"
            )
        } else {
            format!(
                "CREATE TABLE big (id TEXT PRIMARY KEY, n INTEGER NOT NULL, pad TEXT NOT NULL); \
                 WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) \
                 INSERT INTO big SELECT printf('%032x', {n} - i), i, 'x' FROM s"
            )
        };
        cutover_testkit::exec(&url, &create).unwrap();
        if pg {
            // Another session reads the table first, and stops halfway.
            let half =
                format!("SET max_parallel_workers_per_gather = 0; SELECT n FROM big WHERE n > {} LIMIT 1", n / 2);
            cutover_testkit::exec(&url, &half).unwrap();
        }
        let mut t = TargetConfig::from_url(&url).unwrap().build().unwrap();
        let mut got = Vec::new();
        t.scan_rows("big", &[("id".into(), Type::Uuid), ("n".into(), Type::Int)], None, &mut |r| {
            if let Some(Value::Int(x)) = r.get(1) {
                got.push(*x);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(got.len(), n as usize, "{name}");
        let first_out = got.iter().zip(1..).position(|(x, want)| *x != want);
        assert_eq!(first_out, None, "{name}: not in load order from row {first_out:?}: {:?}", &got[..3]);
    }
}

/// Every row [`Target::rows_in_load_order`] gives of an account's `table`, 7 a page, each
/// with its values' fingerprint.
fn paged_in_load_order(t: &mut dyn Target, table: &str, cols: &[(String, Type)], acct: Uuid) -> Vec<LoadOrderRow> {
    let (mut rows, mut after) = (Vec::new(), i64::MIN);
    loop {
        let page = t.rows_in_load_order(table, cols, acct, after, 7).unwrap().unwrap();
        let Some(last) = page.last() else { return rows };
        after = last.at;
        assert!(page.iter().all(|r| r.fingerprint == fingerprint(&r.values)), "{table}");
        rows.extend(page);
    }
}

/// Every row [`Target::pages_ahead`] gives of an account's `table`, in pages of 7 at most,
/// each given back to be filled again once read, as a preview does; the end stays the end.
fn read_ahead(t: &mut dyn Target, table: &str, cols: &[(String, Type)], acct: Uuid) -> Vec<LoadOrderRow> {
    let mut ahead = t.pages_ahead(table, cols, acct, 7).unwrap().expect("a reader ahead");
    let mut rows = Vec::new();
    loop {
        let page = ahead.next_page().unwrap();
        if page.is_empty() {
            assert!(ahead.next_page().unwrap().is_empty(), "{table}: the end stays the end");
            return rows;
        }
        assert!(page.len() <= 7, "{table}");
        assert!(page.iter().all(|r| r.fingerprint == fingerprint(&r.values)), "{table}");
        rows.extend(page.iter().cloned());
        ahead.give_back(page);
    }
}

#[test]
fn targets_page_an_accounts_rows_in_load_order_or_say_they_cannot() {
    let (a, b) = (Uuid::from_u128(0xa), Uuid::from_u128(0xb));
    for (name, _db, url) in targets() {
        let mut t = TargetConfig::from_url(&url).unwrap().build().unwrap();
        let cols = [("id".to_owned(), Type::Uuid), ("n".to_owned(), Type::Int)];
        if name == "postgres" {
            cutover_testkit::exec(&url, "CREATE TABLE paged (id uuid PRIMARY KEY, account_id uuid NOT NULL, n bigint)")
                .unwrap();
            assert!(t.rows_in_load_order("paged", &cols, a, 0, 10).unwrap().is_none(), "{name}");
            assert!(t.pages_ahead("paged", &cols, a, 10).unwrap().is_none(), "{name}");
            continue;
        }
        // Ids fall as rows are loaded, two accounts take turns, and an index starts with the
        // account: neither the id's order nor the index's may show through.
        cutover_testkit::exec(
            &url,
            "CREATE TABLE paged (id TEXT PRIMARY KEY, account_id TEXT NOT NULL, n INTEGER); \
             CREATE INDEX paged_account ON paged (account_id, n); \
             WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 100) \
             INSERT INTO paged SELECT printf('%032x', 1000 - i), \
             CASE WHEN i % 3 = 0 THEN '00000000-0000-0000-0000-00000000000b' ELSE '00000000-0000-0000-0000-00000000000a' END, \
             (i * 37) % 101 FROM s",
        )
        .unwrap();
        let want = |acct: Uuid| -> Vec<i64> {
            (1..=100i64).filter(|i| (i % 3 == 0) == (acct == b)).map(|i| (i * 37) % 101).collect()
        };
        for acct in [a, b] {
            let (mut after, mut got, mut pages) = (0, Vec::new(), 0);
            loop {
                let page = t.rows_in_load_order("paged", &cols, acct, after, 7).unwrap().unwrap();
                if page.is_empty() {
                    break;
                }
                assert!(page.len() <= 7);
                for r in page {
                    assert!(r.at > after, "{name}: positions rise");
                    after = r.at;
                    match r.values.as_slice() {
                        [Value::Uuid(_), Value::Int(n)] => got.push(*n),
                        other => panic!("{other:?}"),
                    }
                }
                pages += 1;
            }
            assert_eq!(got, want(acct), "{name}: the account's rows in load order");
            assert_eq!(pages, want(acct).len().div_ceil(7));
        }
        // Asked again from the start, or from anywhere, a page is the same.
        let first = |t: &mut Box<dyn Target>, after| {
            let page = t.rows_in_load_order("paged", &cols, a, after, 7).unwrap().unwrap();
            page.into_iter().map(|r| (r.at, r.values[1].clone())).collect::<Vec<_>>()
        };
        let from_start = first(&mut t, 0);
        let from_third = first(&mut t, from_start[2].0);
        assert_eq!(from_third[..4], from_start[3..], "{name}");
        assert_eq!(first(&mut t, 0), from_start, "{name}");
        // Read ahead on connections of their own (with two cores or more; here two threads,
        // each a block of 7 rowids in turn): the same rows in the same order, 7 a page at most.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        if cores > 1 {
            for acct in [a, b] {
                let paged = paged_in_load_order(t.as_mut(), "paged", &cols, acct);
                assert_eq!(read_ahead(t.as_mut(), "paged", &cols, acct), paged, "{name}: read ahead");
            }
            // Rowids of 0 and less, and rowids so far apart that a block holds more rows than
            // a page: every row comes once, in order, either way.
            cutover_testkit::exec(
                &url,
                "CREATE TABLE spread (id TEXT PRIMARY KEY, account_id TEXT NOT NULL, n INTEGER); \
                 WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 60) \
                 INSERT INTO spread (rowid, id, account_id, n) \
                 SELECT CASE WHEN i <= 30 THEN i - 10 ELSE i * 1000000000000 END, printf('%032x', i), \
                 '00000000-0000-0000-0000-00000000000a', i FROM s",
            )
            .unwrap();
            let paged = paged_in_load_order(t.as_mut(), "spread", &cols, a);
            let ns: Vec<Value> = paged.iter().map(|r| r.values[1].clone()).collect();
            assert_eq!(ns, (1..=60).map(Value::Int).collect::<Vec<_>>(), "{name}: every row, in order");
            assert_eq!(read_ahead(t.as_mut(), "spread", &cols, a), paged, "{name}: read ahead");
            // Another connection sees what the run's transaction sees until it writes.
            t.begin().unwrap();
            assert!(t.pages_ahead("paged", &cols, a, 7).unwrap().is_some(), "{name}");
            t.exec_sql("UPDATE paged SET n = n + 1000 WHERE rowid = 1").unwrap();
            assert!(t.pages_ahead("paged", &cols, a, 7).unwrap().is_none(), "{name}: after a write");
            t.rollback().unwrap();
        }
        // A value that is not its column's type is refused when its page is asked for.
        cutover_testkit::exec(
            &url,
            "UPDATE paged SET id = 'not a uuid' WHERE n = (SELECT n FROM paged WHERE rowid = 50)",
        )
        .unwrap();
        let (mut after, mut before) = (0, Vec::new());
        let refused = loop {
            match t.rows_in_load_order("paged", &cols, a, after, 7) {
                Ok(Some(page)) if !page.is_empty() => {
                    after = page.last().unwrap().at;
                    before.extend(page.into_iter().map(|r| r.at));
                }
                Ok(_) => panic!("{name}: the bad id was not refused"),
                Err(e) => break e.to_string(),
            }
        };
        assert!(
            before.iter().all(|&r| r < 50) && before.len() >= 28,
            "{name}: the pages before it come whole: {before:?}"
        );
        assert!(refused.contains("paged.id"), "{refused}");
        if cores > 1 {
            let mut ahead = t.pages_ahead("paged", &cols, a, 7).unwrap().unwrap();
            let refused = loop {
                match ahead.next_page() {
                    Ok(page) if !page.is_empty() => {}
                    Ok(_) => panic!("{name}: the bad id was not refused when read ahead"),
                    Err(e) => break e.to_string(),
                }
            };
            assert!(refused.contains("paged.id"), "{refused}");
        }
    }
}
