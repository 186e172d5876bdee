//! Reads a SQLite v1 table's rows straight from its b-tree pages, through SQLite's own
//! connection (`sqlite_dbpage`), for the scans that read a table as stored.
//!
//! A row read through a query goes through SQLite's bytecode: a step for the row, one for each
//! column, a call for each value. TPC-H's line items, 16 columns: about 0.7 µs a row of a reader
//! thread's time, where walking the table alone takes 0.1 µs. A table's rows are records in the
//! leaves of its b-tree (the file format is documented and stable since 2004), so a reader takes
//! the pages one query each and decodes the records itself.
//!
//! The pages come through the scan's own connection, in its read transaction: the same snapshot
//! as any query on it, with SQLite's locks, journal and WAL handled by SQLite (a descriptor of
//! our own would drop the process's POSIX locks when closed). Whatever this reader does not
//! know how to read gives way to SQL: a serial type it does not know, by re-reading that row; a
//! page that is not what the b-tree says it should be, by reading the rest of the scan through
//! SQL, which then reports the database's own error if the file is damaged. A record shorter
//! than the table (written before a column was added) lacks the columns SQLite then gives their
//! declared default for: that value is asked of SQL once, for the first row that lacks it.

use rusqlite::types::ValueRef;

use crate::connect::Dialect;

/// Where a scanned column's value is: a field of the record, or the rowid (a column declared
/// `INTEGER PRIMARY KEY` is the rowid, and its field holds `NULL`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    /// The record's field at this position; `true` when the column's affinity is REAL, whose
    /// integral values SQLite stores as integers and gives back as floats.
    Record(usize, bool),
    /// The rowid.
    Rowid,
}

/// How to read one table's records: its b-tree's root page and where each scanned column is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TablePlan {
    root: u32,
    fields: Vec<Field>,
    /// The highest record field a scanned column needs.
    needs: usize,
    /// The query for one column of one row, by the record field's position: how a value a
    /// shorter record lacks is asked of SQL.
    column_sql: Vec<String>,
}

impl TablePlan {
    /// The plan for reading `columns` of `table` from its pages through `conn`, or `None` when
    /// the table is not one this reader reads as SQL would: a view, a virtual or `WITHOUT
    /// ROWID` table, generated columns, a database not in UTF-8, a column it cannot place.
    pub(crate) fn new(conn: &rusqlite::Connection, table: &str, columns: &[&str]) -> Option<Self> {
        let encoding: String = conn.query_row("PRAGMA encoding", [], |r| r.get(0)).ok()?;
        if encoding != "UTF-8" {
            return None;
        }
        let (root, sql): (i64, String) = conn
            .query_row(
                "SELECT rootpage, sql FROM sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
                [table],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok()?;
        let root = u32::try_from(root).ok().filter(|r| *r > 1)?;
        // A WITHOUT ROWID table's tree is an index's: its pages would say so below, but its
        // columns are laid out otherwise; not read here at all.
        if sql.to_ascii_uppercase().split_whitespace().collect::<String>().contains("WITHOUTROWID") {
            return None;
        }
        // cid, name, declared type, pk, hidden (generated columns are hidden 2 or 3).
        let mut st = conn.prepare(&format!("PRAGMA table_xinfo({})", Dialect::Sqlite.ident(table))).ok()?;
        let cols: Vec<(String, String, i64, i64)> = st
            .query_map([], |r| {
                Ok((r.get(1)?, r.get::<_, Option<String>>(2)?.unwrap_or_default(), r.get(5)?, r.get(6)?))
            })
            .ok()?
            .collect::<Result<_, _>>()
            .ok()?;
        if cols.iter().any(|c| c.3 != 0) {
            return None;
        }
        // The rowid alias: the one primary key column declared exactly INTEGER, unless SQLite
        // made an index for the key (`INTEGER PRIMARY KEY DESC`, say), which it does only when
        // the key is not the rowid.
        let pk: Vec<usize> = (0..cols.len()).filter(|&i| cols[i].2 > 0).collect();
        let pk_index: bool = conn
            .query_row("SELECT count(*) FROM pragma_index_list(?1) WHERE origin = 'pk'", [table], |r| {
                r.get::<_, i64>(0)
            })
            .ok()?
            > 0;
        let alias = match pk.as_slice() {
            [i] if cols[*i].1.eq_ignore_ascii_case("INTEGER") && !pk_index => Some(*i),
            _ => None,
        };
        let mut fields = Vec::with_capacity(columns.len());
        for name in columns {
            let i = cols.iter().position(|c| c.0.eq_ignore_ascii_case(name))?;
            fields.push(if Some(i) == alias { Field::Rowid } else { Field::Record(i, real_affinity(&cols[i].1)) });
        }
        let needs = fields.iter().filter_map(|f| if let Field::Record(i, _) = f { Some(*i) } else { None }).max();
        let rowid = crate::connect::rowid_name(cols.iter().map(|c| c.0.as_str()))?;
        let t = Dialect::Sqlite.ident(table);
        let column_sql = cols
            .iter()
            .map(|c| format!("SELECT {} FROM {t} WHERE {rowid} = ?1", Dialect::Sqlite.ident(&c.0)))
            .collect();
        Some(Self { root, fields, needs: needs.unwrap_or(0), column_sql })
    }
}

/// Whether a column declared `ty` has REAL affinity, by SQLite's own rules (`sqlite3AffinityType`):
/// the first of its substrings, read left to right, that settles it.
fn real_affinity(ty: &str) -> bool {
    #[derive(PartialEq)]
    enum Aff {
        Numeric,
        Text,
        Blob,
        Real,
    }
    let b = ty.to_ascii_lowercase().into_bytes();
    let mut aff = Aff::Numeric;
    for i in 0..b.len() {
        let w = &b[i..];
        if w.starts_with(b"char") || w.starts_with(b"clob") || w.starts_with(b"text") {
            aff = Aff::Text;
        } else if w.starts_with(b"blob") && matches!(aff, Aff::Numeric | Aff::Real) {
            aff = Aff::Blob;
        } else if (w.starts_with(b"real") || w.starts_with(b"floa") || w.starts_with(b"doub")) && aff == Aff::Numeric {
            aff = Aff::Real;
        } else if w.starts_with(b"int") {
            // INTEGER affinity, whatever came before.
            return false;
        }
    }
    aff == Aff::Real
}

/// What stopped a read of pages before the range's end.
#[derive(Debug)]
pub(crate) enum Stop<E> {
    /// The row handler's error, or its wish to stop (`None`).
    Handler(Option<E>),
    /// A page or record this reader cannot read; rows up to `after` (a rowid, when any) were
    /// given. The rest is for SQL.
    Unreadable { after: Option<i64>, why: String },
}

/// What [`Pages::rows`] hands each row to: its rowid and its record, or `None` for a row to
/// read through SQL; `Ok(false)` to stop.
pub(crate) type OnRow<'f, E> = dyn FnMut(i64, Option<&Record<'_>>) -> Result<bool, E> + 'f;

/// A record as found in its leaf: its rowid and where each scanned column's value is.
pub(crate) struct Record<'a> {
    rowid: i64,
    bytes: &'a [u8],
    /// (serial type, offset in `bytes`) of each field.
    fields: &'a [(u64, usize)],
    plan: &'a TablePlan,
    /// The values SQL gives for the fields a shorter record lacks, by position.
    missing: &'a [Option<rusqlite::types::Value>],
}

impl<'a> Record<'a> {
    /// The value of the `j`-th scanned column, as SQLite's query would give it.
    #[inline]
    pub(crate) fn get(&self, j: usize) -> ValueRef<'a> {
        match self.plan.fields[j] {
            Field::Rowid => ValueRef::Integer(self.rowid),
            Field::Record(i, real) => {
                // `Pages` only hands over records whose every field is of a known serial type
                // and within the record, and has the value of each field they lack.
                let Some(&(t, at)) = self.fields.get(i) else {
                    return self.missing.get(i).and_then(Option::as_ref).map_or(ValueRef::Null, ValueRef::from);
                };
                let v = value(t, &self.bytes[at..]).unwrap_or(ValueRef::Null);
                match (v, real) {
                    (ValueRef::Integer(n), true) => ValueRef::Real(n as f64),
                    (v, _) => v,
                }
            }
        }
    }
}

/// One table's pages on one connection, read through `sqlite_dbpage`, and the buffers a read
/// of its rows reuses.
pub(crate) struct Pages<'c> {
    conn: &'c rusqlite::Connection,
    st: rusqlite::Statement<'c>,
    plan: TablePlan,
    /// The values SQL gave for fields records lacked, by position.
    missing: Vec<Option<rusqlite::types::Value>>,
    page_size: usize,
    usable: usize,
    /// One page buffer for each level of the tree being walked.
    levels: Vec<Vec<u8>>,
    /// A record that spills to overflow pages, put together.
    spilled: Vec<u8>,
    overflow: Vec<u8>,
    fields: Vec<(u64, usize)>,
    /// The rowid of the last row handed over.
    last: Option<i64>,
}

/// Levels a table's tree has at most here: SQLite's own trees stay under 20 however large the
/// table; a deeper one is a damaged page pointing back up.
const MAX_DEPTH: usize = 40;

/// A payload larger than this is not read from pages (SQLite's own default limit on a value).
const MAX_PAYLOAD: u64 = 1_000_000_000;

impl<'c> Pages<'c> {
    /// The reader of `plan`'s table on `conn`, or `None` when SQLite was built without
    /// `sqlite_dbpage`.
    pub(crate) fn new(conn: &'c rusqlite::Connection, plan: TablePlan) -> Option<Self> {
        let page_size = usize::try_from(conn.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0)).ok()?).ok()?;
        let mut st = conn.prepare("SELECT data FROM sqlite_dbpage WHERE pgno = ?1").ok()?;
        // Bytes at the end of every page that belong to an extension (byte 20 of the header).
        let reserved = st.query_row([1], |r| Ok(r.get_ref(0)?.as_blob()?.get(20).copied())).ok()??;
        let usable = page_size.checked_sub(usize::from(reserved)).filter(|u| *u >= 480)?;
        Some(Self {
            conn,
            st,
            plan,
            missing: Vec::new(),
            page_size,
            usable,
            levels: Vec::new(),
            spilled: Vec::new(),
            overflow: Vec::new(),
            fields: Vec::new(),
            last: None,
        })
    }

    /// Hands every row of the table with `lo <= rowid <= hi` to `f`, in rowid order: its
    /// record, or `None` for a row to read through SQL instead. `f` returns `Ok(false)` to stop.
    pub(crate) fn rows<E>(&mut self, lo: i64, hi: i64, f: &mut OnRow<'_, E>) -> Result<(), Stop<E>> {
        self.last = None;
        match self.visit(self.plan.root, 0, lo, hi, f) {
            Ok(_) => Ok(()),
            Err(Stop::Unreadable { why, .. }) => Err(Stop::Unreadable { after: self.last, why }),
            Err(e) => Err(e),
        }
    }

    /// Reads page `pgno` into `buf`.
    fn fetch(st: &mut rusqlite::Statement<'_>, page_size: usize, pgno: u32, buf: &mut Vec<u8>) -> Result<(), String> {
        buf.clear();
        st.query_row([pgno], |r| {
            buf.extend_from_slice(r.get_ref(0)?.as_blob()?);
            Ok(())
        })
        .map_err(|e| format!("page {pgno}: {e}"))?;
        if buf.len() != page_size {
            return Err(format!("page {pgno}: {} bytes, not {page_size}", buf.len()));
        }
        Ok(())
    }

    /// Walks the subtree at `pgno` for rows in `lo..=hi`; `Ok(false)` once past `hi`.
    fn visit<E>(&mut self, pgno: u32, depth: usize, lo: i64, hi: i64, f: &mut OnRow<'_, E>) -> Result<bool, Stop<E>> {
        let bad = |why: String| Stop::Unreadable { after: None, why };
        if depth >= MAX_DEPTH {
            return Err(bad(format!("page {pgno}: the tree is deeper than {MAX_DEPTH} levels")));
        }
        if self.levels.len() <= depth {
            self.levels.resize_with(depth + 1, Vec::new);
        }
        let mut page = std::mem::take(&mut self.levels[depth]);
        let out = Self::fetch(&mut self.st, self.page_size, pgno, &mut page)
            .map_err(bad)
            .and_then(|()| self.walk(pgno, &page, depth, lo, hi, f));
        self.levels[depth] = page;
        out
    }

    fn walk<E>(
        &mut self,
        pgno: u32,
        page: &[u8],
        depth: usize,
        lo: i64,
        hi: i64,
        f: &mut OnRow<'_, E>,
    ) -> Result<bool, Stop<E>> {
        let bad = |why: &str| Stop::Unreadable { after: None, why: format!("page {pgno}: {why}") };
        let usable = self.usable;
        let kind = page[0];
        let cells = usize::from(u16::from_be_bytes([page[3], page[4]]));
        let (head, leaf) = match kind {
            0x05 => (12, false),
            0x0d => (8, true),
            _ => return Err(bad(&format!("type {kind:#04x} where a table's page should be"))),
        };
        if head + 2 * cells > usable {
            return Err(bad("more cells than the page holds"));
        }
        // A cell starts past the pointers to the cells and at least 4 bytes before the end,
        // as SQLite itself requires of a page it reads.
        let cells_from = head + 2 * cells;
        let cell_at = |i: usize| -> Result<usize, Stop<E>> {
            let at = usize::from(u16::from_be_bytes([page[head + 2 * i], page[head + 2 * i + 1]]));
            if at < cells_from || at + 4 > usable {
                return Err(bad("a cell outside the page's cell area"));
            }
            Ok(at)
        };
        if !leaf {
            for i in 0..cells {
                let at = cell_at(i)?;
                let child = page.get(at..at + 4).ok_or_else(|| bad("a cell past the page's end"))?;
                let child = u32::from_be_bytes([child[0], child[1], child[2], child[3]]);
                let (key, _) = varint(&page[..usable], at + 4).ok_or_else(|| bad("a cell past the page's end"))?;
                let key = key as i64;
                // The child holds the rowids up to `key`, above the cell's before it.
                if key < lo {
                    continue;
                }
                if !self.visit(child, depth + 1, lo, hi, f)? {
                    return Ok(false);
                }
                if key >= hi {
                    return Ok(false);
                }
            }
            let right = u32::from_be_bytes([page[8], page[9], page[10], page[11]]);
            return self.visit(right, depth + 1, lo, hi, f);
        }
        let page = &page[..usable];
        for i in 0..cells {
            let at = cell_at(i)?;
            let (size, a) = varint(page, at).ok_or_else(|| bad("a cell past the page's end"))?;
            let (rowid, b) = varint(page, at + a).ok_or_else(|| bad("a cell past the page's end"))?;
            let rowid = rowid as i64;
            if rowid < lo {
                continue;
            }
            if rowid > hi {
                return Ok(false);
            }
            // A tree's leaves hold each rowid once, in order: anything else is a damaged tree
            // (a page listed twice, say), which SQL then reads or reports.
            if self.last.is_some_and(|last| rowid <= last) {
                return Err(bad("rowids out of order"));
            }
            if size > MAX_PAYLOAD {
                return Err(bad("a record larger than SQLite's own limit"));
            }
            let size = size as usize;
            let start = at + a + b;
            let local = local_size(size, usable);
            let bytes: &[u8] = if local == size {
                page.get(start..start + size).ok_or_else(|| bad("a record past the page's end"))?
            } else {
                let first = page.get(start..start + local + 4).ok_or_else(|| bad("a record past the page's end"))?;
                self.spill(first, size).map_err(|why| bad(&why))?;
                &self.spilled
            };
            let whole = parse(bytes, &mut self.fields).is_some()
                && (self.fields.len() > self.plan.needs
                    || Self::lacking(self.conn, &self.plan, rowid, self.fields.len(), &mut self.missing));
            let go = if whole {
                let rec = Record { rowid, bytes, fields: &self.fields, plan: &self.plan, missing: &self.missing };
                f(rowid, Some(&rec))
            } else {
                f(rowid, None)
            };
            self.last = Some(rowid);
            match go {
                Ok(true) => {}
                Ok(false) => return Err(Stop::Handler(None)),
                Err(e) => return Err(Stop::Handler(Some(e))),
            }
        }
        Ok(true)
    }

    /// Whether the values of the fields from `has` on, which the record of `rowid` lacks, are
    /// known: SQL gives a field a record lacks the column's declared default, the same for
    /// every such record, so it is asked once, for the first row that lacks it.
    fn lacking(
        conn: &rusqlite::Connection,
        plan: &TablePlan,
        rowid: i64,
        has: usize,
        missing: &mut Vec<Option<rusqlite::types::Value>>,
    ) -> bool {
        if missing.len() <= plan.needs {
            missing.resize(plan.needs + 1, None);
        }
        for (i, slot) in missing.iter_mut().enumerate().take(plan.needs + 1).skip(has) {
            if slot.is_some() {
                continue;
            }
            let asked = plan.column_sql.get(i).and_then(|sql| {
                conn.prepare_cached(sql).ok()?.query_row([rowid], |r| r.get::<_, rusqlite::types::Value>(0)).ok()
            });
            match asked {
                Some(v) => *slot = Some(v),
                None => return false,
            }
        }
        true
    }

    /// Puts a record that spills to overflow pages together in `spilled`: `first` is its part
    /// in the leaf followed by the number of its first overflow page.
    fn spill(&mut self, first: &[u8], size: usize) -> Result<(), String> {
        let (local, next) = first.split_at(first.len() - 4);
        let mut next = u32::from_be_bytes([next[0], next[1], next[2], next[3]]);
        self.spilled.clear();
        self.spilled.extend_from_slice(local);
        let room = self.usable - 4;
        while self.spilled.len() < size {
            if next == 0 {
                return Err("a record's overflow pages end before it does".into());
            }
            Self::fetch(&mut self.st, self.page_size, next, &mut self.overflow)?;
            let (buf, take) = (&self.overflow, room.min(size - self.spilled.len()));
            self.spilled.extend_from_slice(&buf[4..4 + take]);
            next = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        }
        Ok(())
    }
}

/// How much of a table leaf's record of `size` bytes stays on its page (the file format's
/// rule, with `usable` bytes to a page).
fn local_size(size: usize, usable: usize) -> usize {
    let max = usable - 35;
    if size <= max {
        return size;
    }
    let min = (usable - 12) * 32 / 255 - 23;
    let k = min + (size - min) % (usable - 4);
    if k <= max { k } else { min }
}

/// A varint at `at`: its value and length.
#[inline(always)]
fn varint(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let first = *b.get(at)?;
    if first < 0x80 {
        return Some((u64::from(first), 1));
    }
    let mut v = 0u64;
    for i in 0..8 {
        let c = *b.get(at + i)?;
        v = (v << 7) | u64::from(c & 0x7f);
        if c < 0x80 {
            return Some((v, i + 1));
        }
    }
    Some(((v << 8) | u64::from(*b.get(at + 8)?), 9))
}

/// The bytes a value of serial type `t` takes, `None` for the types the format reserves.
#[inline]
fn serial_len(t: u64) -> Option<usize> {
    Some(match t {
        0 | 8 | 9 => 0,
        1..=4 => t as usize,
        5 => 6,
        6 | 7 => 8,
        10 | 11 => return None,
        _ => usize::try_from((t - 12) / 2).ok()?,
    })
}

/// The record's fields as (serial type, offset); `None` when its header does not fit it.
#[inline]
fn parse(rec: &[u8], fields: &mut Vec<(u64, usize)>) -> Option<()> {
    fields.clear();
    let (head, mut at) = varint(rec, 0)?;
    let head = usize::try_from(head).ok().filter(|h| *h <= rec.len())?;
    let mut off = head;
    while at < head {
        let (t, n) = varint(&rec[..head], at)?;
        at += n;
        fields.push((t, off));
        off = off.checked_add(serial_len(t)?)?;
    }
    (off <= rec.len()).then_some(())
}

/// The value of serial type `t` at the start of `b`, as SQLite gives it (`NaN` reads as
/// `NULL`, as SQLite reads it).
#[inline]
fn value(t: u64, b: &[u8]) -> Option<ValueRef<'_>> {
    let int = |n: usize| -> Option<i64> {
        let bytes = b.get(..n)?;
        // Sign-extended from the first byte.
        let mut v: i64 = i64::from(bytes[0] as i8);
        for &x in &bytes[1..] {
            v = (v << 8) | i64::from(x);
        }
        Some(v)
    };
    Some(match t {
        0 => ValueRef::Null,
        1..=4 => ValueRef::Integer(int(t as usize)?),
        5 => ValueRef::Integer(int(6)?),
        6 => ValueRef::Integer(int(8)?),
        7 => {
            let x = f64::from_bits(u64::from_be_bytes(b.get(..8)?.try_into().ok()?));
            if x.is_nan() { ValueRef::Null } else { ValueRef::Real(x) }
        }
        8 => ValueRef::Integer(0),
        9 => ValueRef::Integer(1),
        10 | 11 => return None,
        _ => {
            let len = usize::try_from((t - 12) / 2).ok()?;
            let bytes = b.get(..len)?;
            if t.is_multiple_of(2) { ValueRef::Blob(bytes) } else { ValueRef::Text(bytes) }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tables whose rows SQL would give otherwise than their records say are not read from
    /// pages at all; a tree that is not a table's gives way.
    #[test]
    fn only_plain_rowid_tables_in_utf8_are_planned() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE T (K INTEGER PRIMARY KEY, A TEXT, B REAL);
             CREATE TABLE D (K INTEGER PRIMARY KEY DESC, A TEXT);
             CREATE TABLE W (K INTEGER PRIMARY KEY, A TEXT) WITHOUT ROWID;
             CREATE TABLE G (K INTEGER PRIMARY KEY, A TEXT, L INTEGER GENERATED ALWAYS AS (length(A)));
             CREATE VIEW V AS SELECT * FROM T;
             CREATE INDEX T_A ON T (A);
             INSERT INTO T VALUES (1, 'a', 1), (2, 'b', 2);",
        )
        .unwrap();
        let plan = TablePlan::new(&c, "t", &["B", "K"]).unwrap();
        assert_eq!(plan.fields, [Field::Record(2, true), Field::Rowid]);
        // DESC makes the key an ordinary column with an index of its own.
        assert_eq!(TablePlan::new(&c, "D", &["K"]).unwrap().fields, [Field::Record(0, false)]);
        for t in ["W", "G", "V", "missing"] {
            assert_eq!(TablePlan::new(&c, t, &["K"]), None, "{t}");
        }
        assert_eq!(TablePlan::new(&c, "T", &["nope"]), None);
        // Pages of an index are not a table's: the read gives way before any row.
        let index_root: i64 =
            c.query_row("SELECT rootpage FROM sqlite_schema WHERE name = 'T_A'", [], |r| r.get(0)).unwrap();
        let wrong = TablePlan { root: u32::try_from(index_root).unwrap(), ..plan.clone() };
        let mut seen = Vec::new();
        let mut f = |rowid: i64, _: Option<&Record<'_>>| -> Result<bool, ()> {
            seen.push(rowid);
            Ok(true)
        };
        let mut pages = Pages::new(&c, wrong).unwrap();
        assert!(matches!(pages.rows(i64::MIN, i64::MAX, &mut f), Err(Stop::Unreadable { after: None, .. })));
        Pages::new(&c, plan).unwrap().rows(2, 9, &mut f).unwrap();
        assert_eq!(seen, [2]);
        let utf16 = rusqlite::Connection::open_in_memory().unwrap();
        utf16.execute_batch("PRAGMA encoding = 'UTF-16le'; CREATE TABLE T (K INTEGER PRIMARY KEY, A TEXT);").unwrap();
        assert_eq!(TablePlan::new(&utf16, "T", &["K"]), None);
    }

    #[test]
    fn affinity_follows_sqlites_rules() {
        for (ty, real) in [
            ("REAL", true),
            ("double precision", true),
            ("FLOAT", true),
            ("INTEGER", false),
            ("floating point", false), // "int" in "point"
            ("TEXT", false),
            ("NUMERIC", false),
            ("", false),
            ("REALTEXT", false),
            ("BLOBREAL", false),
            ("REALBLOB", false),
        ] {
            assert_eq!(real_affinity(ty), real, "{ty}");
        }
    }

    #[test]
    fn varints_and_serial_values() {
        assert_eq!(varint(&[0x7f], 0), Some((127, 1)));
        assert_eq!(varint(&[0x81, 0x00], 0), Some((128, 2)));
        assert_eq!(varint(&[0xff; 9], 0), Some((u64::MAX, 9)));
        assert_eq!(varint(&[0x81], 0), None);
        assert_eq!(value(1, &[0xff]), Some(ValueRef::Integer(-1)));
        assert_eq!(value(3, &[0x80, 0, 0]), Some(ValueRef::Integer(-(1 << 23))));
        assert_eq!(value(5, &[0, 0, 1, 0, 0, 0]), Some(ValueRef::Integer(1 << 24)));
        assert_eq!(value(7, &f64::NAN.to_bits().to_be_bytes()), Some(ValueRef::Null));
        assert_eq!(value(19, b"abc"), Some(ValueRef::Text(b"abc")));
        assert_eq!(value(18, b"abc"), Some(ValueRef::Blob(b"abc")));
        assert_eq!(value(19, b"ab"), None);
        assert_eq!(value(10, b""), None);
    }

    #[test]
    fn local_sizes_follow_the_file_format() {
        // 4,096-byte pages: up to 4,061 bytes stay on the page; past that, M or K.
        assert_eq!(local_size(4061, 4096), 4061);
        let min = (4096 - 12) * 32 / 255 - 23;
        assert_eq!(min, 489);
        // K = M + (P - M) % (U - 4) when K fits, M when it does not.
        assert_eq!(local_size(4062, 4096), min);
        assert_eq!(local_size(100_000, 4096), 1792);
    }
}
