//! Harnesses for the fuzz targets in `fuzz/` and for the test that replays their seed corpus.
//! Each takes any bytes and must return, whatever they hold: an error for bad input, never a
//! panic, an overflowed stack or a hang.

use time::macros::date;

use crate::expr::{Env, EvalCtx, Fail, Lookup, ValueMap, compile};
use crate::pack::PackSource;
use crate::value::{Type, Value};

/// A `mapping.toml` of the built-in Omikai pack, compiled against its template and schemas.
pub fn mapping(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = PackSource::Builtin.load_with_mapping("omikai", text) {
        // Every error says where: file, line and column.
        assert!(e.file.starts_with("mapping.toml:") || e.file.contains(".sql"), "unlocated error: {e:?}");
    }
}

/// A schema file, its keys turned into indexes and its IN lists into comparisons and its
/// UUIDs and dates given text affinity, as the SQLite target does.
pub fn schema(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(s) = crate::ddl::parse("v2.sql", text) {
        for stmt in &s.statements {
            let (table, _) = crate::ddl::keys_as_indexes(stmt);
            let _ = crate::ddl::text_affinity(&crate::ddl::in_lists_as_comparisons(&table));
        }
    }
}

struct Parents;

impl Lookup for Parents {
    fn lookup(&self, _: usize, key: &Value) -> Result<Value, Fail> {
        match key {
            Value::Int(i) if i % 3 == 0 => Ok(Value::Uuid(uuid::Uuid::from_u128(*i as u128))),
            Value::Int(i) if i % 3 == 1 => Err(Fail::Cascade { reason: "gone".into(), message: "excluded".into() }),
            _ => Err(Fail::Reject { reason: "orphan".into(), message: "no parent".into() }),
        }
    }
}

/// An expression, compiled against columns of every type, and when it compiles, evaluated on
/// rows of ordinary and extreme values.
pub fn expression(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else { return };
    let columns: Vec<(String, Type)> = [
        ("NAME", Type::Text),
        ("WHEN", Type::Text),
        ("QTY", Type::Int),
        ("PRICE", Type::Float),
        ("DAY", Type::Date),
        ("OK", Type::Bool),
        ("BLOB", Type::Bytes),
        ("ID", Type::Uuid),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_owned(), t))
    .collect();
    let maps = vec![ValueMap {
        name: "code".into(),
        entries: [("A".to_owned(), Value::Text("alpha".into())), ("1".to_owned(), Value::Int(1))].into_iter().collect(),
        ty: Type::Text,
        unknown_reason: "invalid_value".into(),
        case_insensitive: true,
    }];
    let lookups = vec![("parent".to_owned(), 0)];
    let options = vec!["mode".to_owned()];
    let env = Env { columns: &columns, maps: &maps, lookups: &lookups, options: &options };
    let Ok((node, _)) = compile(src, &env, None) else { return };
    let chosen = vec!["yes".to_owned()];
    let cx = EvalCtx { cutoff: date!(2019 - 11 - 01), options: &chosen, maps: &maps, lookup: &Parents };
    let rows = [
        vec![
            Value::Text(" Hansen, Kari ".into()),
            Value::Text("31.02.2019".into()),
            Value::Int(3),
            Value::Float(2.675),
            Value::Date(date!(2024 - 02 - 29)),
            Value::Bool(true),
            Value::Bytes(vec![0, 255]),
            Value::Uuid(uuid::Uuid::nil()),
        ],
        vec![Value::Null; 8],
        vec![
            Value::Text("\u{0}\u{7f}«ø»𝄞".into()),
            Value::Text("0000-00-00".into()),
            Value::Int(i64::MIN),
            Value::Float(f64::NAN),
            Value::Date(time::Date::MIN),
            Value::Bool(false),
            Value::Bytes(Vec::new()),
            Value::Uuid(uuid::Uuid::max()),
        ],
        vec![
            Value::Text(String::new()),
            Value::Text("9999-12-31".into()),
            Value::Int(i64::MAX),
            Value::Float(f64::INFINITY),
            Value::Date(time::Date::MAX),
            Value::Bool(true),
            Value::Bytes(vec![b'x'; 4096]),
            Value::Uuid(uuid::Uuid::from_u128(7)),
        ],
    ];
    for row in &rows {
        let _ = node.eval(row, &cx);
    }
}
