//! Values that flow from v1 rows through field rules into v2 rows, and their types.

use std::fmt;

use time::Date;
use uuid::Uuid;

/// The type of a value, known at pack load for every expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    /// The type of the `null` literal: fits anywhere.
    Null,
    /// true / false.
    Bool,
    /// 64-bit integer.
    Int,
    /// 64-bit float (legacy money, measures).
    Float,
    /// Text.
    Text,
    /// Calendar date.
    Date,
    /// Binary data.
    Bytes,
    /// UUID (v2 ids).
    Uuid,
}

impl Type {
    /// Parses a type name used in packs and DDL.
    pub fn from_sql(name: &str) -> Option<Type> {
        let n = name.to_ascii_uppercase();
        let base = n.split(['(', ' ']).next().unwrap_or("");
        Some(match base {
            "INTEGER" | "INT" | "BIGINT" | "SMALLINT" => Type::Int,
            "REAL" | "FLOAT" | "DOUBLE" | "NUMERIC" | "DECIMAL" => Type::Float,
            "TEXT" | "VARCHAR" | "CHAR" | "CHARACTER" => Type::Text,
            "DATE" => Type::Date,
            "BLOB" | "BYTEA" => Type::Bytes,
            "UUID" => Type::Uuid,
            "BOOLEAN" | "BOOL" => Type::Bool,
            _ => return None,
        })
    }

    /// Whether a value of type `self` may be stored where `to` is expected.
    pub fn fits(self, to: Type) -> bool {
        self == to || self == Type::Null || (self == Type::Int && to == Type::Float)
    }

    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Type::Null => "null",
            Type::Bool => "bool",
            Type::Int => "int",
            Type::Float => "float",
            Type::Text => "text",
            Type::Date => "date",
            Type::Bytes => "bytes",
            Type::Uuid => "uuid",
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value.
///
/// The tag is a whole word: with a one-byte tag, a value moved from one place to another (every
/// expression returns one) was copied by pieces of different widths, and reading it back stalled
/// on the pieces just written; a dry run of TPC-H's mapping at scale 0.5, alternated three times,
/// 7.05-7.15 s to 6.36-6.58 s. The size is the same: 32 bytes.
#[derive(Debug, Clone, PartialEq)]
#[repr(u64)]
pub enum Value {
    /// Absent.
    Null,
    /// Boolean.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Text.
    Text(String),
    /// Date.
    Date(Date),
    /// Bytes.
    Bytes(Vec<u8>),
    /// UUID.
    Uuid(Uuid),
}

impl Value {
    /// Whether the value is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as JSON, for ledgers and spot-checks (bytes are summarised, not copied).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
            Value::Text(s) => s.as_str().into(),
            Value::Date(d) => d.to_string().into(),
            Value::Bytes(b) => format!("<{} bytes>", b.len()).into(),
            Value::Uuid(u) => u.to_string().into(),
        }
    }

    /// The value as JSON with nothing left out: bytes as `{"hex": "…"}`. For row state and recovery.
    pub fn to_json_exact(&self) -> serde_json::Value {
        match self {
            Value::Bytes(b) => serde_json::json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
            other => other.to_json(),
        }
    }

    /// Appends the value's bytes for a fingerprint, with a tag so that `1` and `"1"` differ.
    pub fn hash_bytes(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(NULL_TAG),
            Value::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
            // A tag and eight bytes in one piece: this runs for every value of every row read.
            Value::Int(i) => hash_int(out, *i),
            Value::Float(f) => hash_float(out, *f),
            Value::Text(s) => hash_tagged_bytes(out, TEXT_TAG, s.as_bytes()),
            Value::Date(d) => {
                out.push(5);
                out.extend_from_slice(&d.to_julian_day().to_le_bytes());
            }
            Value::Bytes(b) => hash_tagged_bytes(out, BYTES_TAG, b),
            Value::Uuid(u) => {
                out.push(7);
                out.extend_from_slice(u.as_bytes());
            }
        }
    }
}

/// Tags of [`Value::hash_bytes`]'s layout, which a lazy reader lays SQLite's values out in too.
pub(crate) const NULL_TAG: u8 = 0;
pub(crate) const INT_TAG: u8 = 2;
pub(crate) const FLOAT_TAG: u8 = 3;
pub(crate) const TEXT_TAG: u8 = 4;
pub(crate) const BYTES_TAG: u8 = 6;

/// An integer as [`Value::hash_bytes`] lays it out.
#[inline]
pub(crate) fn hash_int(out: &mut Vec<u8>, i: i64) {
    out.extend_from_slice(&tagged(INT_TAG, i.to_le_bytes()));
}

/// A float as [`Value::hash_bytes`] lays it out.
#[inline]
pub(crate) fn hash_float(out: &mut Vec<u8>, f: f64) {
    out.extend_from_slice(&tagged(FLOAT_TAG, f.to_bits().to_le_bytes()));
}

/// Text or bytes as [`Value::hash_bytes`] lays them out: the tag, the length, the bytes.
#[inline]
pub(crate) fn hash_tagged_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.extend_from_slice(&tagged(tag, (bytes.len() as u64).to_le_bytes()));
    out.extend_from_slice(bytes);
}

/// `tag` followed by `bytes`.
#[inline]
fn tagged(tag: u8, bytes: [u8; 8]) -> [u8; 9] {
    let mut out = [tag; 9];
    out[1..].copy_from_slice(&bytes);
    out
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => f.write_str(s),
            Value::Date(d) => write!(f, "{d}"),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::Uuid(u) => write!(f, "{u}"),
        }
    }
}

impl Value {
    /// The value as a column of type `ty` stores it: an integer in a float column reads back as a float.
    pub fn stored_as(&self, ty: Type) -> Value {
        match (self, ty) {
            (Value::Int(i), Type::Float) => Value::Float(*i as f64),
            (v, _) => v.clone(),
        }
    }
}

/// Appends `{"col": value, …}` to `out` without building a JSON tree: the row state and the
/// ledger write one per record. It parses back to what [`Value::to_json_exact`] (or, with
/// `exact` false, [`Value::to_json`]) gives.
pub fn write_json_row<'a>(out: &mut String, columns: impl Iterator<Item = &'a str>, values: &[Value], exact: bool) {
    out.push('{');
    for (i, (c, v)) in columns.zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, c);
        out.push(':');
        write_json_value(out, v, exact);
    }
    out.push('}');
}

/// Number of leading columns every v2 row has and the row state keeps apart from the row's
/// values: `id`, `account_id`, `legacy_ref`.
pub const KEY_COLUMNS: usize = 3;

fn write_json_value(out: &mut String, v: &Value, exact: bool) {
    use std::fmt::Write;
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f}");
        }
        Value::Float(_) => out.push_str("null"),
        Value::Text(t) => json_str(out, t),
        Value::Date(d) => {
            let _ = write!(out, "\"{d}\"");
        }
        Value::Uuid(u) => {
            out.push('"');
            out.push_str(u.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
            out.push('"');
        }
        Value::Bytes(b) if exact => {
            out.push_str("{\"hex\":\"");
            for x in b {
                let _ = write!(out, "{x:02x}");
            }
            out.push_str("\"}");
        }
        Value::Bytes(b) => {
            let _ = write!(out, "\"<{} bytes>\"", b.len());
        }
    }
}

fn json_str(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    // Runs of characters that need no escape are copied at once.
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.push_str(&s[plain..i]);
        plain = i + 1;
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c => {
                let _ = write!(out, "\\u{:04x}", c);
            }
        }
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

/// A row's fingerprint: xxh3 over its tagged values, laid out in a buffer each thread reuses
/// (one hash call a row; feeding a streaming hasher value by value cost several times that).
pub fn fingerprint(row: &[Value]) -> u64 {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        for v in row {
            v.hash_bytes(&mut b);
        }
        let h = xxhash_rust::xxh3::xxh3_64(&b);
        if b.capacity() > 1 << 20 {
            // A row with a large value: do not keep its buffer for every row after it.
            *b = Vec::new();
        }
        h
    })
}

/// Rounds a float amount to minor units (hundredths), half away from zero, tolerating
/// binary representation (2.675 is 267.49999… × 100 in binary; it is meant as 267.5).
pub fn to_minor(x: f64) -> Option<i64> {
    if !x.is_finite() {
        return None;
    }
    let scaled = x * 100.0;
    if scaled.abs() > 9.0e15 {
        return None;
    }
    let frac = scaled.abs().fract();
    let away = (frac - 0.5).abs() < 1e-6;
    let r = if away { scaled.signum() * (scaled.abs().trunc() + 1.0) } else { scaled.round() };
    Some(r as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value is moved for every expression evaluated: a whole-word tag must not make it larger.
    #[test]
    fn a_value_takes_four_words() {
        assert_eq!(std::mem::size_of::<Value>(), 32);
    }

    /// Fingerprints are kept in the row state between runs: a final migration compares this
    /// build's against those an earlier build stored, so their bytes must never change.
    #[test]
    fn fingerprints_stay_what_earlier_builds_stored() {
        let row = [
            Value::Null,
            Value::Bool(true),
            Value::Int(-42),
            Value::Float(2.5),
            Value::Text("line ünï".into()),
            Value::Date(time::Date::from_calendar_date(1995, time::Month::March, 19).unwrap()),
            Value::Bytes(vec![0, 255]),
            Value::Uuid(uuid::Uuid::from_u128(7)),
        ];
        assert_eq!(fingerprint(&row), 0x4102_0832_cef2_a424);
    }

    #[test]
    fn minor_units_round_half_away_from_zero() {
        assert_eq!(to_minor(2.675), Some(268));
        assert_eq!(to_minor(-2.675), Some(-268));
        assert_eq!(to_minor(1.005), Some(101));
        assert_eq!(to_minor(10.0), Some(1000));
        assert_eq!(to_minor(0.125), Some(13));
        assert_eq!(to_minor(99.994), Some(9999));
        assert_eq!(to_minor(f64::NAN), None);
        assert_eq!(to_minor(1e300), None);
    }

    #[test]
    fn json_rows_parse_back_to_the_same_values() {
        let vals = vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(-42),
            Value::Float(2.675),
            Value::Float(-0.5e-7),
            Value::Float(f64::NAN),
            Value::Text("tab\t \"quote\" back\\slash \u{1} «ø»".into()),
            Value::Date(time::macros::date!(2024 - 02 - 29)),
            Value::Uuid(Uuid::from_u128(7)),
            Value::Bytes(vec![0, 255, 16]),
        ];
        let cols: Vec<String> = (0..vals.len()).map(|i| format!("c{i}")).collect();
        for exact in [true, false] {
            let mut s = String::new();
            write_json_row(&mut s, cols.iter().map(String::as_str), &vals, exact);
            let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&s).unwrap();
            let expected: serde_json::Map<String, serde_json::Value> = cols
                .iter()
                .zip(&vals)
                .map(|(c, v)| (c.clone(), if exact { v.to_json_exact() } else { v.to_json() }))
                .collect();
            assert_eq!(parsed, expected, "{s}");
        }
    }

    #[test]
    fn types_from_sql() {
        assert_eq!(Type::from_sql("varchar(20)"), Some(Type::Text));
        assert_eq!(Type::from_sql("BIGINT"), Some(Type::Int));
        assert_eq!(Type::from_sql("bytea"), Some(Type::Bytes));
        assert_eq!(Type::from_sql("geometry"), None);
        assert!(Type::Int.fits(Type::Float));
        assert!(!Type::Float.fits(Type::Int));
        assert!(Type::Null.fits(Type::Uuid));
    }
}
