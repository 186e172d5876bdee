//! PostgreSQL's binary COPY format, for the v2 load: the server copies a UUID, an integer or a
//! date as bytes instead of parsing its text, which is most of what a text COPY costs it.

use crate::value::{Type, Value};

/// A column type the binary encoder writes; any other type keeps the table on text COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    Uuid,
    Date,
    Bytea,
}

impl PgType {
    /// The type of a column, by `pg_type.typname`.
    pub(crate) fn from_typname(name: &str) -> Option<PgType> {
        Some(match name {
            "bool" => PgType::Bool,
            "int2" => PgType::Int2,
            "int4" => PgType::Int4,
            "int8" => PgType::Int8,
            "float4" => PgType::Float4,
            "float8" => PgType::Float8,
            "text" | "varchar" | "bpchar" | "name" => PgType::Text,
            "uuid" => PgType::Uuid,
            "date" => PgType::Date,
            "bytea" => PgType::Bytea,
            _ => return None,
        })
    }
}

/// The signature, flags and header extension that start every binary COPY stream.
pub(crate) const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The end of a binary COPY stream: a tuple with -1 fields.
pub(crate) const TRAILER: &[u8] = &[0xff, 0xff];

/// Days from 1970-01-01 (the Julian day 2440588) to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_JULIAN: i32 = 2_451_545;

/// Appends one tuple, after the [`HEADER`] when `buf` is empty. A value that does not fit its
/// column is an error naming the column's position; nothing is appended then.
pub(crate) fn write_row(buf: &mut Vec<u8>, row: &[Value], types: &[PgType]) -> Result<(), String> {
    if buf.is_empty() {
        buf.extend_from_slice(HEADER);
        return write_tuple(buf, row, types).inspect_err(|_| buf.clear());
    }
    write_tuple(buf, row, types)
}

/// Appends one tuple and nothing else (a stream's header is its writer's); on error, nothing.
pub(crate) fn write_tuple(buf: &mut Vec<u8>, row: &[Value], types: &[PgType]) -> Result<(), String> {
    let start = buf.len();
    let fields = i16::try_from(row.len()).map_err(|_| "too many columns".to_owned())?;
    buf.extend_from_slice(&fields.to_be_bytes());
    for (i, (v, ty)) in row.iter().zip(types).enumerate() {
        if let Err(e) = write_field(buf, v, *ty) {
            buf.truncate(start);
            return Err(format!("column {}: {e}", i + 1));
        }
    }
    Ok(())
}

fn sized(buf: &mut Vec<u8>, bytes: &[u8]) -> Result<(), String> {
    let n = i32::try_from(bytes.len()).map_err(|_| "value larger than 2 GiB".to_owned())?;
    buf.extend_from_slice(&n.to_be_bytes());
    buf.extend_from_slice(bytes);
    Ok(())
}

fn write_field(buf: &mut Vec<u8>, v: &Value, ty: PgType) -> Result<(), String> {
    let out_of_range = || format!("{v} is out of range for {ty:?}");
    match (v, ty) {
        (Value::Null, _) => buf.extend_from_slice(&(-1i32).to_be_bytes()),
        (Value::Bool(b), PgType::Bool) => sized(buf, &[u8::from(*b)])?,
        (Value::Int(i), PgType::Int8) => sized(buf, &i.to_be_bytes())?,
        (Value::Int(i), PgType::Int4) => sized(buf, &i32::try_from(*i).map_err(|_| out_of_range())?.to_be_bytes())?,
        (Value::Int(i), PgType::Int2) => sized(buf, &i16::try_from(*i).map_err(|_| out_of_range())?.to_be_bytes())?,
        (Value::Int(i), PgType::Float8) => sized(buf, &(*i as f64).to_be_bytes())?,
        (Value::Int(i), PgType::Float4) => sized(buf, &(*i as f32).to_be_bytes())?,
        (Value::Float(f), PgType::Float8) => sized(buf, &f.to_be_bytes())?,
        (Value::Float(f), PgType::Float4) => sized(buf, &(*f as f32).to_be_bytes())?,
        (Value::Text(s), PgType::Text) => sized(buf, s.as_bytes())?,
        (Value::Uuid(u), PgType::Uuid) => sized(buf, u.as_bytes())?,
        (Value::Uuid(u), PgType::Text) => {
            sized(buf, u.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).as_bytes())?
        }
        (Value::Date(d), PgType::Date) => sized(buf, &(d.to_julian_day() - PG_EPOCH_JULIAN).to_be_bytes())?,
        (Value::Bytes(b), PgType::Bytea) => sized(buf, b)?,
        (Value::Text(s), PgType::Uuid) => {
            let u = uuid::Uuid::parse_str(s.trim()).map_err(|e| format!("'{s}' is not a UUID: {e}"))?;
            sized(buf, u.as_bytes())?;
        }
        (other, PgType::Text) => sized(buf, other.to_string().as_bytes())?,
        (other, ty) => {
            return Err(format!("a {} value cannot be stored in a {ty:?} column", crate::connect::type_of(other)));
        }
    }
    Ok(())
}

/// The SQL cast that gives a column of logical type `ty` the binary form [`Decoder`] reads.
pub(crate) fn cast_for(ty: Type) -> &'static str {
    match ty {
        Type::Int => "int8",
        Type::Float => "float8",
        Type::Bool => "bool",
        Type::Uuid => "uuid",
        Type::Date => "date",
        Type::Bytes => "bytea",
        Type::Text | Type::Null => "text",
    }
}

/// One step through a stream: a row (`None` at the trailer) and where the next starts.
type Step = (Option<Vec<Value>>, usize);

/// Reads a binary COPY stream, as the server sends it in chunks that do not follow rows.
#[derive(Debug)]
pub(crate) struct Decoder {
    types: Vec<Type>,
    pending: Vec<u8>,
    header_read: bool,
    done: bool,
}

impl Decoder {
    /// A decoder for rows of these columns, each cast with [`cast_for`].
    pub(crate) fn new(types: Vec<Type>) -> Self {
        Self { types, pending: Vec::new(), header_read: false, done: false }
    }

    /// Decodes every whole row of `chunk` (with what earlier chunks left over) into `out`.
    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut Vec<Vec<Value>>) -> Result<(), String> {
        self.pending.extend_from_slice(chunk);
        let mut at = 0;
        if !self.header_read {
            if self.pending.len() < HEADER.len() {
                return Ok(());
            }
            if !self.pending.starts_with(&HEADER[..11]) {
                return Err("not a binary COPY stream".into());
            }
            let ext = be_u32(&self.pending[15..19]) as usize;
            if self.pending.len() < HEADER.len() + ext {
                return Ok(());
            }
            at = HEADER.len() + ext;
            self.header_read = true;
        }
        while !self.done {
            match self.row(at)? {
                Some((row, next)) => {
                    at = next;
                    match row {
                        Some(r) => out.push(r),
                        None => self.done = true,
                    }
                }
                None => break,
            }
        }
        self.pending.drain(..at);
        Ok(())
    }

    /// The row at `at` and where the next starts; `None` if the row is not complete yet, an
    /// inner `None` at the trailer.
    fn row(&self, at: usize) -> Result<Option<Step>, String> {
        let buf = &self.pending;
        let Some(n) = buf.get(at..at + 2) else { return Ok(None) };
        let n = i16::from_be_bytes([n[0], n[1]]);
        if n == -1 {
            return Ok(Some((None, at + 2)));
        }
        if usize::try_from(n).ok() != Some(self.types.len()) {
            return Err(format!("a row has {n} fields, {} were asked for", self.types.len()));
        }
        let mut pos = at + 2;
        let mut row = Vec::with_capacity(self.types.len());
        for ty in &self.types {
            let Some(len) = buf.get(pos..pos + 4) else { return Ok(None) };
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            pos += 4;
            if len < 0 {
                row.push(Value::Null);
                continue;
            }
            let Some(field) = buf.get(pos..pos + len as usize) else { return Ok(None) };
            pos += len as usize;
            row.push(read_field(field, *ty)?);
        }
        Ok(Some((Some(row), pos)))
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn read_field(b: &[u8], ty: Type) -> Result<Value, String> {
    let bad = || format!("a {ty:?} field of {} bytes", b.len());
    Ok(match ty {
        Type::Int => Value::Int(i64::from_be_bytes(b.try_into().map_err(|_| bad())?)),
        Type::Float => Value::Float(f64::from_be_bytes(b.try_into().map_err(|_| bad())?)),
        Type::Bool => Value::Bool(b.first().is_some_and(|x| *x != 0)),
        Type::Uuid => Value::Uuid(uuid::Uuid::from_slice(b).map_err(|_| bad())?),
        Type::Date => {
            let days = i32::from_be_bytes(b.try_into().map_err(|_| bad())?);
            let d = time::Date::from_julian_day(days.checked_add(PG_EPOCH_JULIAN).ok_or_else(bad)?)
                .map_err(|e| format!("date out of range: {e}"))?;
            Value::Date(d)
        }
        Type::Bytes => Value::Bytes(b.to_vec()),
        Type::Text | Type::Null => Value::Text(String::from_utf8(b.to_vec()).map_err(|e| e.to_string())?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_encoder_writes_the_decoder_reads_in_any_chunking() {
        let rows = vec![
            vec![
                Value::Uuid(uuid::Uuid::from_u128(42)),
                Value::Int(-7),
                Value::Text("tab\there «ø»".into()),
                Value::Date(time::macros::date!(1996 - 03 - 13)),
                Value::Null,
                Value::Float(2.5),
                Value::Bool(true),
                Value::Bytes(vec![0, 255]),
            ];
            3
        ];
        let pg = [
            PgType::Uuid,
            PgType::Int8,
            PgType::Text,
            PgType::Date,
            PgType::Text,
            PgType::Float8,
            PgType::Bool,
            PgType::Bytea,
        ];
        let ty = vec![Type::Uuid, Type::Int, Type::Text, Type::Date, Type::Text, Type::Float, Type::Bool, Type::Bytes];
        let mut buf = Vec::new();
        for r in &rows {
            write_row(&mut buf, r, &pg).unwrap();
        }
        buf.extend_from_slice(TRAILER);
        for chunk in [1, 7, 64, buf.len()] {
            let mut d = Decoder::new(ty.clone());
            let mut out = Vec::new();
            for c in buf.chunks(chunk) {
                d.feed(c, &mut out).unwrap();
            }
            assert_eq!(out, rows, "chunks of {chunk}");
            assert!(d.done);
        }
    }

    #[test]
    fn dates_count_days_from_2000() {
        let mut b = Vec::new();
        write_field(&mut b, &Value::Date(time::macros::date!(2000 - 01 - 02)), PgType::Date).unwrap();
        assert_eq!(b, [0, 0, 0, 4, 0, 0, 0, 1]);
    }

    #[test]
    fn a_value_that_does_not_fit_appends_nothing() {
        let mut b = Vec::new();
        write_row(&mut b, &[Value::Int(1)], &[PgType::Int8]).unwrap();
        let len = b.len();
        let err = write_row(&mut b, &[Value::Int(1), Value::Int(1 << 40)], &[PgType::Int8, PgType::Int4]).unwrap_err();
        assert!(err.contains("column 2"), "{err}");
        assert_eq!(b.len(), len);
    }
}
