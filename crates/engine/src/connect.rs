//! Connectors: where v1 rows come from and where v2 rows go.
//!
//! Each connector is a config (serde, `deny_unknown_fields`), a build function and a runtime
//! struct behind the [`Source`] or [`Target`] trait. Every connector passes the same
//! compliance suite (`tests/connectors.rs`).

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use futures_util::TryStreamExt;
use rusqlite::types::ValueRef;
use serde::Deserialize;
use sqlx::{Column as _, Connection as _, Row as _, TypeInfo as _};
use time::Date;
use uuid::Uuid;

use crate::ddl::Schema;
use crate::pgcopy::{self, PgType};
use crate::state::{self, ChunkHead, StateEntry};
use crate::value::{Type, Value};

/// Errors of connectors.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The database could not be opened or reached.
    #[error("cannot open {what}: {reason}")]
    Open {
        /// Which database (URL with the password masked).
        what: String,
        /// Why.
        reason: String,
    },
    /// A statement failed.
    #[error("{what}: {reason}")]
    Query {
        /// What was being done.
        what: String,
        /// The database's message.
        reason: String,
    },
    /// The URL names no connector.
    #[error(
        "unsupported URL '{0}': use a SQLite file path, sqlite://PATH, postgres://… or (v1 only) mysql://… or mariadb://…"
    )]
    Url(String),
}

pub(crate) fn q(what: impl Into<String>) -> impl FnOnce(String) -> ConnectorError {
    let what = what.into();
    move |reason| ConnectorError::Query { what, reason }
}

/// SQL dialects, for quoting identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: identifiers as written.
    Sqlite,
    /// PostgreSQL: unquoted identifiers are folded to lower case, so quoted ones are too.
    Postgres,
    /// MariaDB and MySQL (v1 sources only): identifiers as written, in backticks.
    Mysql,
}

impl Dialect {
    /// Quotes an identifier.
    pub fn ident(self, name: &str) -> String {
        match self {
            Dialect::Sqlite => format!("\"{}\"", name.replace('"', "\"\"")),
            Dialect::Postgres => format!("\"{}\"", name.to_lowercase().replace('"', "\"\"")),
            Dialect::Mysql => format!("`{}`", name.replace('`', "``")),
        }
    }

    /// Rewrites a schema statement written in the portable subset for this dialect.
    pub fn ddl(self, stmt: &str) -> String {
        match self {
            Dialect::Sqlite | Dialect::Mysql => stmt.to_owned(),
            Dialect::Postgres => {
                let mut out = String::with_capacity(stmt.len());
                for (i, word) in stmt.split(' ').enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    let (core, rest) = word.split_at(word.find([',', ')']).unwrap_or(word.len()));
                    match core {
                        "BLOB" => out.push_str("BYTEA"),
                        "REAL" => out.push_str("DOUBLE PRECISION"),
                        _ => out.push_str(core),
                    }
                    out.push_str(rest);
                }
                out
            }
        }
    }
}

/// A connection URL with its password masked, for messages.
pub(crate) fn masked(url: &str) -> String {
    cutover_core::mask_url(url)
}

// ---------------------------------------------------------------- configs

/// Where v1 data is read from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceConfig {
    /// A SQLite file, opened read-only.
    Sqlite {
        /// File path.
        path: PathBuf,
    },
    /// A PostgreSQL database.
    Postgres {
        /// Connection URL.
        url: String,
    },
    /// A MariaDB or MySQL database.
    Mysql {
        /// Connection URL (`mysql://` or `mariadb://`).
        url: String,
    },
}

/// Where v2 rows are written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum TargetConfig {
    /// A SQLite file (created if missing).
    Sqlite {
        /// File path.
        path: PathBuf,
    },
    /// A PostgreSQL database, loaded with COPY.
    Postgres {
        /// Connection URL.
        url: String,
    },
}

fn sqlite_path(url: &str) -> Option<PathBuf> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return None;
    }
    let p = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    if p.contains("://") { None } else { Some(PathBuf::from(p)) }
}

impl SourceConfig {
    /// From a URL or file path.
    pub fn from_url(url: &str) -> Result<Self, ConnectorError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(SourceConfig::Postgres { url: url.to_owned() });
        }
        if crate::mysql::is_mysql_url(url) {
            return Ok(SourceConfig::Mysql { url: url.to_owned() });
        }
        sqlite_path(url).map(|path| SourceConfig::Sqlite { path }).ok_or_else(|| ConnectorError::Url(masked(url)))
    }

    /// Opens the source.
    pub fn build(&self) -> Result<Box<dyn Source>, ConnectorError> {
        match self {
            SourceConfig::Sqlite { path } => Ok(Box::new(SqliteSource::open(path)?)),
            SourceConfig::Postgres { url } => Ok(Box::new(PgSource::open(url)?)),
            SourceConfig::Mysql { url } => Ok(Box::new(crate::mysql::MysqlSource::open(url)?)),
        }
    }
}

impl TargetConfig {
    /// From a URL or file path.
    pub fn from_url(url: &str) -> Result<Self, ConnectorError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(TargetConfig::Postgres { url: url.to_owned() });
        }
        sqlite_path(url).map(|path| TargetConfig::Sqlite { path }).ok_or_else(|| ConnectorError::Url(masked(url)))
    }

    /// Opens the target.
    pub fn build(&self) -> Result<Box<dyn Target>, ConnectorError> {
        match self {
            TargetConfig::Sqlite { path } => Ok(Box::new(SqliteTarget::open(path)?)),
            TargetConfig::Postgres { url } => Ok(Box::new(PgTarget::open(url)?)),
        }
    }
}

// ---------------------------------------------------------------- traits

/// What to read: a table's columns (plus computed extras), in key order.
#[derive(Debug, Clone, Copy)]
pub struct Scan<'a> {
    /// v1 table.
    pub table: &'a str,
    /// Columns with their declared types; the last `extra.len()` are computed.
    pub columns: &'a [(String, Type)],
    /// Computed columns: name and SQL (the table is aliased `t`).
    pub extra: &'a [(String, String)],
    /// Key columns, the order of the scan.
    pub order_by: &'a [String],
    /// Positions of the key's columns when the caller keeps most rows by their fingerprint
    /// alone (a final migration): a source may then decode only these values and hand the
    /// others over as stored ([`SourceRow::is_lazy`]). `None`: every value decoded.
    pub lazy: Option<&'a [usize]>,
}

/// A row as read: values in scan order, and the first value that could not be decoded.
#[derive(Debug, Clone)]
pub struct SourceRow {
    /// Values; an undecodable value is `Null` here.
    pub values: Vec<Value>,
    /// Column index and what was wrong, when a value did not fit its declared type.
    pub bad: Option<(usize, String)>,
    /// [`fingerprint`](crate::value::fingerprint) of `values`, taken by the thread that decoded
    /// them while they are in its cache: a final migration keeps most records by this alone,
    /// and the mapping thread then never reads their text.
    fp: u64,
    /// A lazy row's values as stored ([`raw_value`]): `values` holds only its key's.
    raw: Vec<u8>,
    lazy: bool,
}

impl SourceRow {
    /// A row with room for `n` values and none yet, to be filled.
    fn empty(n: usize) -> SourceRow {
        SourceRow { values: Vec::with_capacity(n), bad: None, fp: 0, raw: Vec::new(), lazy: false }
    }

    /// A row of `values`, fingerprinted.
    pub fn new(values: Vec<Value>, bad: Option<(usize, String)>) -> SourceRow {
        let fp = crate::value::fingerprint(&values);
        SourceRow { values, bad, fp, raw: Vec::new(), lazy: false }
    }

    /// The fingerprint of the row's values. For a lazy row, of its values as stored: the same
    /// as its decoded row's whenever every text is UTF-8 and every value already of its
    /// column's type, and another (the row then looks changed) otherwise.
    pub fn fingerprint(&self) -> u64 {
        self.fp
    }

    /// Whether only the values of the key were decoded ([`Scan::lazy`]), the others not even
    /// checked: [`Self::decoded`] gives the whole row.
    pub fn is_lazy(&self) -> bool {
        self.lazy
    }

    /// The row with every value decoded and coerced to `cols`, fingerprinted, as a scan that
    /// is not lazy gives it. A row that is not lazy comes back as it is.
    pub fn decoded(&self, cols: &[(String, Type)]) -> SourceRow {
        if !self.lazy {
            return self.clone();
        }
        let mut row = SourceRow::empty(cols.len());
        if decode_raw(&self.raw, &mut row.values).is_none() || row.values.len() != cols.len() {
            row.values.resize(cols.len(), Value::Null);
            row.bad = Some((0, "the row could not be read back as it was stored".into()));
        }
        coerce_row(&mut row, cols);
        row.fp = crate::value::fingerprint(&row.values);
        row
    }
}

/// A single-column foreign key: `table.column` references `parent.parent_column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The referencing table.
    pub table: String,
    /// Its column.
    pub column: String,
    /// The referenced table.
    pub parent: String,
    /// The referenced column.
    pub parent_column: String,
}

impl Reference {
    fn is(&self, table: &str, column: &str, parent: &str, parent_column: &str) -> bool {
        self.table.eq_ignore_ascii_case(table)
            && self.column.eq_ignore_ascii_case(column)
            && self.parent.eq_ignore_ascii_case(parent)
            && self.parent_column.eq_ignore_ascii_case(parent_column)
    }
}

/// A v1 database.
pub trait Source: Send {
    /// The SQL dialect.
    fn dialect(&self) -> Dialect;
    /// Column names of a table, to check the pack against the real database.
    fn table_columns(&mut self, table: &str) -> Result<Vec<String>, ConnectorError>;
    /// Number of rows of a table (for progress).
    fn count(&mut self, table: &str) -> Result<u64, ConnectorError>;
    /// Streams the rows of a scan, in key order. A row is lent to `f`: a source may reuse its
    /// buffers for the rows after it.
    fn scan(
        &mut self,
        scan: &Scan<'_>,
        f: &mut dyn FnMut(&SourceRow) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError>;
    /// Says which scan comes after the next one: a source may get it ready meanwhile, on a
    /// thread of its own, so that it starts at once. Only a hint; the default ignores it.
    fn prepare(&mut self, scan: &Scan<'_>) {
        let _ = scan;
    }
}

/// Reads rows by id, as [`Target::read_rows_by_id`] does, on a connection of its own.
pub trait RowsById: Send {
    /// Reads the rows of a table with the given ids (`id` and `account_id` columns), ordered by the first column.
    fn read_rows_by_id(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<Vec<Value>>, ConnectorError>;
    /// The chunks of one part of an account's table's row state, with their entries, as
    /// [`Target::scan_state_part`] gives them.
    fn state_part(&mut self, account: Uuid, table: &str, part: state::Part) -> Result<Vec<ChunkHead>, ConnectorError> {
        let _ = (account, part);
        Err(q(format!("reading the row state of {table}"))("not supported by this reader".into()))
    }
    /// Calls `f` with the id of every row of the account in `table`, in no order.
    fn scan_ids(&mut self, table: &str, account: Uuid, f: &mut dyn FnMut(Uuid)) -> Result<(), ConnectorError> {
        let _ = (account, f);
        Err(q(format!("reading the ids of {table}"))("not supported by this reader".into()))
    }
}

/// A row read in load order ([`Target::rows_in_load_order`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOrderRow {
    /// Its position in load order.
    pub at: i64,
    /// Its values, of the columns asked for.
    pub values: Vec<Value>,
    /// [`crate::value::fingerprint`] of its values, taken by the thread that read them, while
    /// they are in its core's cache (on the caller's thread it was a fifth of a SQLite v2's
    /// overwrite preview).
    pub fingerprint: u64,
}

impl LoadOrderRow {
    /// The row of `values` at `at`, fingerprinted.
    pub fn new(at: i64, values: Vec<Value>) -> Self {
        let fingerprint = crate::value::fingerprint(&values);
        Self { at, values, fingerprint }
    }
}

/// Rows read in load order ([`Target::rows_in_load_order`]).
pub type LoadOrderPage = Vec<LoadOrderRow>;

/// A page read ahead: its rows, and whether it ends its block of rowids.
type AheadPage = Result<(LoadOrderPage, bool), ConnectorError>;

/// Pages of rows in load order, read ahead on threads of their own ([`Target::pages_ahead`]):
/// the table's rowids in blocks, block k read by thread k mod n, the pages handed over in
/// order. Dropped, it stops its threads and waits for them, so that their connections are closed.
#[derive(Debug)]
pub struct PagesAhead {
    table: String,
    rxs: Vec<mpsc::Receiver<AheadPage>>,
    blocks: usize,
    /// The block the next page comes from.
    block: usize,
    /// Where each thread takes pages back ([`PagesAhead::give_back`]), by thread.
    backs: Vec<mpsc::Sender<LoadOrderPage>>,
    /// The thread the last page came from.
    last: usize,
    threads: Vec<JoinHandle<()>>,
}

impl PagesAhead {
    /// The next page with rows; an empty one is the end, after which there are no more.
    pub fn next_page(&mut self) -> Result<LoadOrderPage, ConnectorError> {
        while self.block < self.blocks {
            let from = self.block % self.rxs.len().max(1);
            match self.rxs.get(from).map(mpsc::Receiver::recv) {
                Some(Ok(Ok((page, last)))) => {
                    self.last = from;
                    if last {
                        self.block += 1;
                    }
                    if !page.is_empty() {
                        return Ok(page);
                    }
                }
                Some(Ok(Err(e))) => return Err(e),
                // A thread that ends before its blocks do must not pass for the table's end.
                _ => {
                    return Err(q(format!("reading {} in load order", self.table))(format!(
                        "a reading thread stopped before block {} of {}",
                        self.block + 1,
                        self.blocks
                    )));
                }
            }
        }
        Ok(Vec::new())
    }

    /// Hands the last page back to the thread that read it, to be filled again.
    pub fn give_back(&mut self, page: LoadOrderPage) {
        if let Some(back) = self.backs.get(self.last) {
            let _ = back.send(page);
        }
    }
}

impl Drop for PagesAhead {
    fn drop(&mut self) {
        // A thread waiting to hand a page over gives up once nobody can take it.
        self.rxs.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What an overwrite preview counted of an account in v2, all in the one snapshot its change
/// stamp names: the account's rows in each table it compared, and the chunks of their row
/// state. With the stamp it lets a later transaction tell, by counting again, that nothing
/// changed the account's rows since ([`Target::unchanged_since`]), when other writes on the
/// server moved the stamp itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
pub struct Census {
    /// The account's rows in each v2 table.
    pub rows: std::collections::BTreeMap<String, u64>,
    /// The row state's chunks of the account for these tables.
    pub state_chunks: u64,
    /// The transactions that wrote those chunks, the runs': any row one of them wrote was
    /// there before the preview.
    #[serde(default)]
    pub runs: Vec<i64>,
}

/// A v2 database.
pub trait Target: Send {
    /// The SQL dialect.
    fn dialect(&self) -> Dialect;
    /// Creates the v2 schema unless its first table exists.
    fn ensure_schema(&mut self, v2: &Schema) -> Result<bool, ConnectorError>;
    /// Starts the transaction of a run.
    fn begin(&mut self) -> Result<(), ConnectorError>;
    /// Starts a transaction that sees one snapshot of the database throughout, and fails
    /// rather than overwrite a row someone else changes meanwhile: the final migration's, whose
    /// preview and writes must be about the same v2.
    fn begin_consistent(&mut self) -> Result<(), ConnectorError> {
        self.begin()
    }
    /// Starts a read-only transaction whose statements all see the database as it is when this
    /// returns, where the target has such snapshots without holding anyone up (PostgreSQL);
    /// `false` where it does not, and its statements each see the database as it is then.
    /// Ended by [`Target::rollback`].
    fn begin_snapshot(&mut self) -> Result<bool, ConnectorError> {
        Ok(false)
    }
    /// A token that two calls give alike only if no transaction changed the database between
    /// them, read while nobody can commit (inside the caller's transaction, or a read
    /// transaction of its own) or, where transactions see snapshots, of the snapshot the
    /// caller's transaction sees; `None` where the target keeps no such mark. An overwrite
    /// preview taken under a stamp still holds while the stamp does.
    fn change_stamp(&mut self) -> Result<Option<String>, ConnectorError> {
        Ok(None)
    }
    /// Whether the account's rows that `census` counted under the change stamp `then` are, in
    /// the caller's transaction (whose stamp is `now`), provably the very rows they were: the
    /// same number in every table and in the row state, and none written by a transaction the
    /// snapshot of `then` did not see. `false` where the target cannot tell; the caller then
    /// takes the preview again.
    fn unchanged_since(
        &mut self,
        then: &str,
        now: &str,
        account: Uuid,
        census: &Census,
    ) -> Result<bool, ConnectorError> {
        let _ = (then, now, account, census);
        Ok(false)
    }
    /// Runs a statement with one UUID parameter (`$1`), e.g. deleting an account's rows.
    fn exec_with_uuid(&mut self, sql: &str, id: Uuid) -> Result<u64, ConnectorError>;
    /// Starts loading a table.
    fn start_table(&mut self, table: &str, columns: &[String]) -> Result<(), ConnectorError>;
    /// Adds a row to the table being loaded.
    fn write_row(&mut self, row: &[Value]) -> Result<(), ConnectorError>;
    /// Ends loading the table.
    fn finish_table(&mut self) -> Result<(), ConnectorError>;
    /// Commits the run.
    fn commit(&mut self) -> Result<(), ConnectorError>;
    /// Rolls the run back (also done when a target is dropped mid-run).
    fn rollback(&mut self) -> Result<(), ConnectorError>;
    /// Runs a statement without parameters.
    fn exec_sql(&mut self, sql: &str) -> Result<u64, ConnectorError>;
    /// Whether a run replaces the account's rows (a first migration) rather than changing them in place.
    fn replaces_account(&self) -> bool {
        true
    }
    /// Inserts rows, or updates the ones whose `conflict` columns already exist. A target may
    /// write them after it returns, in order with its other writes; a failure then comes back
    /// from a later call (at the latest [`Target::commit`]).
    fn upsert_rows(
        &mut self,
        table: &str,
        columns: &[String],
        conflict: &[&str],
        rows: &[Vec<Value>],
    ) -> Result<(), ConnectorError> {
        let _ = (columns, conflict, rows);
        Err(q(format!("upsert into {table}"))("not supported by this target".into()))
    }
    /// Deletes rows by id.
    fn delete_ids(&mut self, table: &str, ids: &[Uuid]) -> Result<u64, ConnectorError> {
        let _ = ids;
        Err(q(format!("delete from {table}"))("not supported by this target".into()))
    }
    /// Called once a first migration has emptied the account's rows of `tables` (and of the
    /// row state), before loading. A target may take the tables' keys, unique constraints,
    /// indexes and foreign keys off for the load and rebuild them at commit, where building an
    /// index from sorted data and validating a key set-based is far cheaper than maintaining
    /// them row by row. Only when every one of the tables is empty: another account's rows
    /// keep their indexes. Returns whether it did.
    fn defer_constraints(&mut self, tables: &[&str]) -> Result<bool, ConnectorError> {
        let _ = tables;
        Ok(false)
    }
    /// Foreign keys whose every value the run resolved itself to a row that is in v2 when the
    /// row pointing at it is written: one it writes in the same transaction (a first load, once
    /// [`Target::defer_constraints`] took the keys off), or one a final migration keeps as it is
    /// (a lookup answers only with the id of a record migrated in the run). A target that
    /// validates foreign keys by looking up every row's parent, at commit or for each batch it
    /// upserts, may skip these; every other foreign key, of every table, is still checked.
    /// Forgotten at commit or rollback.
    fn trust_references(&mut self, refs: &[Reference]) {
        let _ = refs;
    }
    /// Creates the row-state table ([`crate::state`]) unless it exists, outside any run's
    /// transaction (so that no run holds a lock on it for longer than a moment).
    fn ensure_state_table(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
    /// Adds a row to the row state, in the run's transaction.
    fn write_state(&mut self, e: &StateEntry<'_>) -> Result<(), ConnectorError>;
    /// Whether the target keeps row state at all (verification's does not): the run then does
    /// not fingerprint what it writes.
    fn wants_state(&self) -> bool {
        true
    }
    /// Records in the row state that these rows of `table` were deleted.
    fn write_state_deleted(&mut self, account: Uuid, table: &str, ids: &[Uuid]) -> Result<(), ConnectorError> {
        let _ = (account, ids);
        Err(q(format!("row state of {table}"))("not supported by this target".into()))
    }
    /// The generation of the row state written from now on (1 unless set).
    fn set_state_generation(&mut self, generation: i32) {
        let _ = generation;
    }
    /// Streams the row-state chunks of an account's table, oldest generation first, with their
    /// ids and fingerprints when `entries`.
    fn scan_state(
        &mut self,
        account: Uuid,
        table: &str,
        entries: bool,
        f: &mut dyn FnMut(ChunkHead) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        let _ = (account, entries, f);
        Err(q(format!("row state of {table}"))("not supported by this target".into()))
    }
    /// As [`Target::scan_state`] with entries, for one part of one generation's chunks only:
    /// a large table's state read a part at a time, as a run meets its records.
    fn scan_state_part(
        &mut self,
        account: Uuid,
        table: &str,
        part: state::Part,
        f: &mut dyn FnMut(ChunkHead) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        let _ = (account, part, f);
        Err(q(format!("row state of {table}"))("not supported by this target".into()))
    }
    /// The compressed rows as loaded of these (generation, chunk) of an account's table.
    fn read_state_loaded(
        &mut self,
        account: Uuid,
        table: &str,
        chunks: &[state::ChunkId],
    ) -> Result<state::LoadedChunks, ConnectorError> {
        let _ = (account, chunks);
        Err(q(format!("row state of {table}"))("not supported by this target".into()))
    }
    /// How many rows the account has in `table`, and how many of them a transaction other than
    /// `xids` (those that wrote the row state) wrote since. `None` when the target cannot tell
    /// which transaction wrote a row: the caller then compares every row.
    fn count_written_since(
        &mut self,
        table: &str,
        account: Uuid,
        xids: &[i64],
    ) -> Result<Option<(u64, u64)>, ConnectorError> {
        let _ = (table, account, xids);
        Ok(None)
    }
    /// Streams the rows [`Target::count_written_since`] counts as written since.
    fn scan_written_since(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Uuid,
        xids: &[i64],
        f: &mut dyn FnMut(Vec<Value>) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        let _ = (columns, account, xids, f);
        Err(q(format!("reading the rows of {table} written since"))("not supported by this target".into()))
    }
    /// The ids of the rows of `account` in `table` whose first two bytes, read big-endian, are
    /// one of `prefixes`, selected by the target itself through the id's index; `None` where it
    /// does not (the caller then reads every id).
    fn ids_with_prefix(
        &mut self,
        table: &str,
        account: Uuid,
        prefixes: &[u16],
    ) -> Result<Option<Vec<Uuid>>, ConnectorError> {
        let _ = (table, account, prefixes);
        Ok(None)
    }
    /// Final migration: whether the row `id`, whose v1 record now fingerprints to `v1_fp`
    /// (see [`crate::run::state_v1_fp`]), is exactly as the last run loaded it, under the same
    /// mapping, and untouched in v2 since; the run then keeps it without mapping the record
    /// again. Only the final migration's target can tell: every other one says no.
    fn keep_unchanged(&mut self, id: &Uuid, v1_fp: i64) -> bool {
        let _ = (id, v1_fp);
        false
    }
    /// Final migration: the id of the row the state holds next, in the order the last run met
    /// its records, when that record fingerprinted to `v1_fp` then as the one just read does
    /// now; kept as [`Target::keep_unchanged`] keeps a row. The record just read is that row's:
    /// a record's fingerprint covers its key, so its id need not be derived from the key again
    /// (a UUIDv5 is a SHA-1: a third of the mapping thread's time in a final migration). `None`
    /// otherwise: the caller derives the id and asks [`Target::keep_unchanged`].
    fn keep_next_unchanged(&mut self, v1_fp: i64) -> Option<Uuid> {
        let _ = v1_fp;
        None
    }
    /// Whether [`Target::keep_unchanged`] can say yes (the final migration's target): the run
    /// then reads v1 lazily ([`Scan::lazy`]), the records it keeps never decoded past their key.
    fn keeps_unchanged(&self) -> bool {
        false
    }
    /// Final migration: whether every row the last run loaded into `table` was given again,
    /// with its own id, by the entity just run. Only then may its children be kept unmapped:
    /// a parent that is gone, merged, excluded or rejected now changes what its children map
    /// to. Every target but the final migration's says no.
    fn all_given_again(&mut self, table: &str) -> bool {
        let _ = table;
        false
    }
    /// Streams rows of a table (`WHERE account_id = id` when given), in no particular order
    /// (callers sort what they keep), without holding the table in memory.
    fn scan_rows(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Option<Uuid>,
        f: &mut dyn FnMut(Vec<Value>) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        for r in self.read_rows(table, columns, account)? {
            f(r)?;
        }
        Ok(())
    }
    /// A page of an account's rows of `table` in load order: at most `limit` rows after the
    /// position `after` (`i64::MIN` before the first: a rowid can be 0 or less), each with its
    /// position. An empty page is the end; `None` where the target cannot read in load order,
    /// which the caller then does not rely on.
    fn rows_in_load_order(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Uuid,
        after: i64,
        limit: usize,
    ) -> Result<Option<LoadOrderPage>, ConnectorError> {
        let _ = (table, columns, account, after, limit);
        Ok(None)
    }
    /// The rows [`Target::rows_in_load_order`] gives, in the same order, in pages of at most
    /// `limit` rows, read by threads with connections of their own while the caller works on
    /// the page before; `None` where the target has no such readers, or they would not see
    /// exactly what this connection sees (the caller then pages through
    /// [`Target::rows_in_load_order`]).
    fn pages_ahead(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Uuid,
        limit: usize,
    ) -> Result<Option<PagesAhead>, ConnectorError> {
        let _ = (table, columns, account, limit);
        Ok(None)
    }
    /// Reads the rows of a table with the given ids (`id` and `account_id` columns), ordered by the first column.
    fn read_rows_by_id(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<Vec<Value>>, ConnectorError> {
        let _ = (columns, account, ids);
        Err(q(format!("reading {table} by id"))("not supported by this target".into()))
    }
    /// A second connection that sees v2 as this target's transaction (begun with
    /// [`Target::begin_consistent`]) saw it when it began, none of its writes included: work
    /// that reads the old rows can then run beside the transaction's own writes. `None` where
    /// the target has no such thing (SQLite) or cannot open one now; callers read through the
    /// target first instead. An error leaves the transaction unusable.
    fn snapshot_reader(&mut self) -> Result<Option<Box<dyn RowsById>>, ConnectorError> {
        Ok(None)
    }
    /// Reads rows of a table (`WHERE account_id = id` when given), ordered by the first column.
    fn read_rows(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Option<Uuid>,
    ) -> Result<Vec<Vec<Value>>, ConnectorError>;
}

/// `SELECT cols FROM table [WHERE account_id = <param>] ORDER BY <order>`, the query every row
/// read uses: `order` is `1` (the first column, the id) or SQLite's `rowid` (load order).
fn select_rows_sql(d: Dialect, table: &str, columns: &[(String, Type)], account: bool, order: &str) -> String {
    let cols: Vec<String> = columns.iter().map(|(c, _)| d.ident(c)).collect();
    let filter = match (account, d) {
        (false, _) => String::new(),
        (true, Dialect::Sqlite) => format!(" WHERE {SQLITE_ACCOUNT} = ?1"),
        (true, _) => " WHERE account_id = $1".to_owned(),
    };
    format!("SELECT {} FROM {}{filter} ORDER BY {order}", cols.join(", "), d.ident(table))
}

/// Appends one row in COPY text format.
fn copy_row(buf: &mut Vec<u8>, row: &[Value]) {
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            buf.push(b'\t');
        }
        copy_value(buf, v);
    }
    buf.push(b'\n');
}

fn upsert_sql(d: Dialect, table: &str, columns: &[String], conflict: &[&str], from: &str) -> String {
    upsert_sql_setting(d, table, columns, columns, conflict, from)
}

/// [`upsert_sql`] whose update sets only `set` (the conflict's columns left out).
fn upsert_sql_setting(
    d: Dialect,
    table: &str,
    columns: &[String],
    set: &[String],
    conflict: &[&str],
    from: &str,
) -> String {
    let cols: Vec<String> = columns.iter().map(|c| d.ident(c)).collect();
    let keys: Vec<String> = conflict.iter().map(|c| d.ident(c)).collect();
    let set: Vec<String> = set
        .iter()
        .filter(|c| !conflict.contains(&c.as_str()))
        .map(|c| format!("{0} = excluded.{0}", d.ident(c)))
        .collect();
    format!(
        "INSERT INTO {} ({}) {from} ON CONFLICT ({}) DO UPDATE SET {}",
        d.ident(table),
        cols.join(", "),
        keys.join(", "),
        set.join(", ")
    )
}

/// Ranges of ids one query selects at most ([`Target::ids_with_prefix`]).
const ID_RANGES: usize = 1024;

/// The account column as SQLite's `WHERE` compares it: with a unary `+`, which keeps SQLite from
/// reading a table through an index that starts with the account (a v2 key such as
/// `(account_id, legacy_ref)`). Without statistics SQLite takes `account_id = ?` for a
/// selective test, where in a v2 of one account every row passes it: a read by id went through
/// that index over every row instead of the id's (TPC-H's order lines: 1.6 s against 6 ms for
/// 500 ids), and a read in load order went through it too and then sorted every row.
const SQLITE_ACCOUNT: &str = "+account_id";

fn id_list(ids: &[Uuid]) -> String {
    // Ids are generated UUIDs: their text form is safe as a literal.
    ids.iter().map(|u| format!("'{}'", u.hyphenated())).collect::<Vec<_>>().join(", ")
}

/// Coerces a decoded value to the declared type; `Err` says why it does not fit.
fn coerce(v: Value, ty: Type) -> Result<Value, String> {
    Ok(match (v, ty) {
        (Value::Null, _) => Value::Null,
        (Value::Int(i), Type::Int) => Value::Int(i),
        (Value::Int(i), Type::Float) => Value::Float(i as f64),
        (Value::Float(f), Type::Float) => Value::Float(f),
        (Value::Float(f), Type::Int) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::Int(f as i64),
        (Value::Text(s), Type::Int) => match s.trim().parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => return Err(format!("holds '{s}', not a whole number")),
        },
        (Value::Text(s), Type::Float) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Value::Float(f),
            _ => return Err(format!("holds '{s}', not a number")),
        },
        (Value::Int(i), Type::Text) => Value::Text(i.to_string()),
        (Value::Float(f), Type::Text) => Value::Text(f.to_string()),
        (Value::Text(s), Type::Text) => Value::Text(s),
        (Value::Bytes(b), Type::Bytes) => Value::Bytes(b),
        (Value::Text(s), Type::Bytes) => Value::Bytes(s.into_bytes()),
        (Value::Bytes(b), Type::Text) => match String::from_utf8(b) {
            Ok(s) => Value::Text(s),
            Err(e) => return Err(format!("holds invalid UTF-8 ({} bytes)", e.as_bytes().len())),
        },
        (Value::Bool(b), Type::Bool) => Value::Bool(b),
        (Value::Int(i), Type::Bool) => Value::Bool(i != 0),
        (Value::Date(d), Type::Date) => Value::Date(d),
        (Value::Date(d), Type::Text) => Value::Text(d.to_string()),
        (Value::Uuid(u), Type::Uuid) => Value::Uuid(u),
        (v, t) => return Err(format!("holds a {} value, expected {t}", type_of(&v))),
    })
}

pub(crate) fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Text(_) => "text",
        Value::Date(_) => "date",
        Value::Bytes(_) => "bytes",
        Value::Uuid(_) => "uuid",
    }
}

pub(crate) fn finish_row(raw: Vec<Value>, cols: &[(String, Type)]) -> SourceRow {
    let mut bad = None;
    let values = raw
        .into_iter()
        .zip(cols)
        .enumerate()
        .map(|(i, (v, (name, ty)))| match coerce(v, *ty) {
            Ok(v) => v,
            Err(why) => {
                bad.get_or_insert((i, format!("column {name} {why}")));
                Value::Null
            }
        })
        .collect();
    SourceRow::new(values, bad)
}

pub(crate) fn select_sql(d: Dialect, s: &Scan<'_>) -> String {
    format!("SELECT {} FROM {} t ORDER BY {}", select_list(d, s, true), d.ident(s.table), key_order(d, s))
}

/// The scan's columns as a `SELECT` lists them: the table's own, then the pack's expressions
/// (`AS` their names when `named`).
fn select_list(d: Dialect, s: &Scan<'_>, named: bool) -> String {
    let plain = s.columns.len() - s.extra.len();
    let mut cols: Vec<String> = s.columns[..plain].iter().map(|(c, _)| format!("t.{}", d.ident(c))).collect();
    cols.extend(s.extra.iter().map(|(name, sql)| match named {
        true => format!("{sql} AS {}", d.ident(name)),
        false => format!("({sql})"),
    }));
    cols.join(", ")
}

/// The scan's `ORDER BY` list: its key columns, qualified by the table's alias `t`.
fn key_order(d: Dialect, s: &Scan<'_>) -> String {
    s.order_by.iter().map(|c| format!("t.{}", d.ident(c))).collect::<Vec<_>>().join(", ")
}

/// The steps of SQLite's plan for `sql` (`EXPLAIN QUERY PLAN`'s details), its parameters left
/// unbound: they do not change the plan's shape.
fn query_plan(conn: &rusqlite::Connection, sql: &str) -> Option<Vec<String>> {
    let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).ok()?;
    let mut rows = explain.raw_query();
    let mut plan = Vec::new();
    while let Some(step) = rows.next().ok()? {
        plan.push(step.get::<_, String>(3).ok()?);
    }
    Some(plan)
}

/// A scan that reads the table as stored: its `SELECT … FROM table t` without an order, the
/// name the rowid answers to, and the first and last rowid.
#[derive(Debug, PartialEq)]
struct StoredOrder {
    head: String,
    rowid: &'static str,
    first: i64,
    last: i64,
}

impl StoredOrder {
    /// The whole scan, in storage order.
    fn sql(&self) -> String {
        format!("{} ORDER BY t.{}", self.head, self.rowid)
    }
    /// The scan of one range of rowids, `?1 <= rowid <= ?2`, in storage order.
    fn range_sql(&self) -> String {
        format!("{} WHERE t.{r} BETWEEN ?1 AND ?2 ORDER BY t.{r}", self.head, r = self.rowid)
    }
}

/// The name the rowid answers to in a table with columns `names`: a column may be named like
/// the rowid, which then answers to another of its names; `None` when all three are taken.
pub(crate) fn rowid_name<'a>(names: impl Iterator<Item = &'a str> + Clone) -> Option<&'static str> {
    ["_rowid_", "rowid", "oid"].into_iter().find(|n| !names.clone().any(|c| c.eq_ignore_ascii_case(n)))
}

/// The scan reading the table as stored when that gives its rows in key order, or `None`: a
/// scan by ranges of rowids, which two readers can share.
///
/// SQLite reads a table in the order of a key that is not its rowid through the key's index,
/// with a seek into the table for every row: three times the work of reading the table as
/// stored (TPC-H's line items: 3.0 s against 0.95 s). A legacy table filled in key order, the
/// usual case, stores its rows in that order; one pass over the index alone (0.11 s there)
/// proves it, in the read transaction the scan then runs in, so both see the same rows. The
/// rows come in exactly the order of the index, duplicate keys included (the index orders them
/// by rowid too). A table whose key is its rowid (an `INTEGER PRIMARY KEY`) is stored in key
/// order by definition: SQLite's plan, a plain scan without a sort, says so, and no pass is
/// needed. Any doubt, or an error, leaves the scan as it was.
fn storage_order(conn: &rusqlite::Connection, table: &str, order: &str, sql: &str) -> Option<StoredOrder> {
    let plan = query_plan(conn, sql)?;
    // A sort is not worth a pass that may prove nothing.
    if plan.iter().any(|d| d.contains("B-TREE")) {
        return None;
    }
    // A plain scan that needs no sort reads the table in key order already: its rowid order,
    // or the key's own for a WITHOUT ROWID table, which has no rowid to split by (the query
    // for the ends below fails there).
    let by_rowid = match plan.as_slice() {
        [only] if only == "SCAN t" => true,
        _ if plan.iter().any(|d| d.starts_with("SCAN t USING INDEX ")) => false,
        _ => return None,
    };
    // A column may be named like the rowid; the rowid then answers to another of its names.
    let names: Vec<String> = {
        let mut st = conn.prepare(&format!("PRAGMA table_info({})", Dialect::Sqlite.ident(table))).ok()?;
        st.query_map([], |r| r.get::<_, String>(1)).ok()?.collect::<Result<_, _>>().ok()?
    };
    let rowid = rowid_name(names.iter().map(String::as_str))?;
    let head = sql.strip_suffix(&format!(" ORDER BY {order}"))?.to_owned();
    if by_rowid {
        let ends = format!("SELECT min(t.{rowid}), max(t.{rowid}) FROM {} t", Dialect::Sqlite.ident(table));
        let (first, last) =
            conn.query_row(&ends, [], |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?))).ok()?;
        return Some(StoredOrder { head, rowid, first: first?, last: last? });
    }
    let started = std::time::Instant::now();
    let (first, last) = rowids_ascend(conn, table, rowid, order)?;
    tracing::debug!(table, ms = started.elapsed().as_millis() as u64, "rows stored in key order: read as stored");
    Some(StoredOrder { head, rowid, first, last })
}

/// The SQL function [`rowids_ascend`] passes each rowid to, in key order: true while every
/// rowid is above the one before.
const ASCENDS_FN: &str = "cutover_rowid_ascends";

/// The first and last rowid of `table` in the key order `order` when its rowids ascend in
/// that order, strictly; `None` when they do not, when the table is empty, or on any error.
///
/// The pass is one statement that returns no row unless a rowid comes out of order: its test
/// runs inside SQLite as the index is walked, with no step back to the caller for each of the
/// table's rows (TPC-H's line items alone on a core: 3 M steps, 0.18 s; as one statement 0.11 s,
/// of which 0.075 s is walking the index). A statement that sorts would test the rows before
/// sorting them: it falls back to reading every rowid in key order.
fn rowids_ascend(conn: &rusqlite::Connection, table: &str, rowid: &str, order: &str) -> Option<(i64, i64)> {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
    let t = Dialect::Sqlite.ident(table);
    // Seen any row, the first rowid, the last.
    let seen = std::sync::Arc::new((AtomicBool::new(false), AtomicI64::new(0), AtomicI64::new(i64::MIN)));
    let tracked = std::sync::Arc::clone(&seen);
    // Not deterministic: SQLite then calls it for every row, as the rows come.
    let registered =
        conn.create_scalar_function(ASCENDS_FN, 1, rusqlite::functions::FunctionFlags::SQLITE_UTF8, move |ctx| {
            let (any, first, last) = &*tracked;
            let ValueRef::Integer(id) = ctx.get_raw(0) else { return Ok(false) };
            if any.load(Relaxed) && id <= last.load(Relaxed) {
                return Ok(false);
            }
            if !any.swap(true, Relaxed) {
                first.store(id, Relaxed);
            }
            last.store(id, Relaxed);
            Ok(true)
        });
    let one_pass = format!("SELECT 1 FROM {t} t WHERE NOT {ASCENDS_FN}(t.{rowid}) ORDER BY {order} LIMIT 1");
    let sorts =
        registered.is_err() || query_plan(conn, &one_pass).is_none_or(|p| p.iter().any(|d| d.contains("B-TREE")));
    // Whatever the outcome, the function goes again below.
    let ends = (|| {
        if sorts {
            let mut st = conn.prepare(&format!("SELECT t.{rowid} FROM {t} t ORDER BY {order}")).ok()?;
            let mut rows = st.query([]).ok()?;
            let (mut first, mut last) = (None, i64::MIN);
            while let Some(r) = rows.next().ok()? {
                let id: i64 = r.get(0).ok()?;
                if id <= last {
                    return None;
                }
                first.get_or_insert(id);
                last = id;
            }
            first.map(|first| (first, last))
        } else {
            let mut st = conn.prepare(&one_pass).ok()?;
            let out_of_order = st.exists([]).ok()?;
            let (any, first, last) = &*seen;
            (!out_of_order && any.load(Relaxed)).then(|| (first.load(Relaxed), last.load(Relaxed)))
        }
    })();
    if registered.is_ok() {
        let _ = conn.remove_function(ASCENDS_FN, 1);
    }
    ends
}

// ---------------------------------------------------------------- SQLite

/// A SQLite v1 database, opened read-only.
#[derive(Debug)]
pub struct SqliteSource {
    conn: rusqlite::Connection,
    path: PathBuf,
    /// Scans got ready ahead ([`Source::prepare`]), the last [`AHEAD`] said: their queries
    /// and what opens them. A run says the next scan before it starts the one it got ready.
    ahead: VecDeque<(String, JoinHandle<Option<Opened>>)>,
    /// Whether scans that read a table as stored read its pages ([`crate::pages`]).
    read_pages: bool,
    /// What the last scan read from pages and through SQL.
    last_counts: ReadCounts,
}

/// A scan's first connection, in the read transaction the scan runs in, and the way it reads
/// the table ([`storage_order`]): what takes a pass over a big table's index before its first
/// row, so worth doing while the table before it is read.
#[derive(Debug)]
struct Opened {
    conn: rusqlite::Connection,
    stored: Option<StoredOrder>,
}

impl Opened {
    fn open(path: &std::path::Path, table: &str, order: &str, sql: &str) -> Result<Self, ConnectorError> {
        let conn = SqliteSource::connect(path)?;
        // One snapshot for the order check and the scan; the connection's end ends it.
        conn.execute_batch("BEGIN").map_err(|e| q(format!("reading {table}"))(e.to_string()))?;
        let stored = storage_order(&conn, table, order, sql);
        Ok(Self { conn, stored })
    }
}

/// Scans a SQLite source keeps ready ahead at most: the one about to run and the one after it.
const AHEAD: usize = 2;

/// Rows handed from the reader thread to the mapping thread at a time.
pub(crate) const READ_BATCH: usize = 1024;

impl SqliteSource {
    /// Opens the file read-only; a missing file is an error, not a new database.
    pub fn open(path: &std::path::Path) -> Result<Self, ConnectorError> {
        Ok(Self {
            conn: Self::connect(path)?,
            path: path.to_owned(),
            ahead: VecDeque::new(),
            read_pages: true,
            last_counts: ReadCounts::default(),
        })
    }

    /// Whether scans that read a table as stored take its rows from its pages (the default)
    /// or every row through SQL, as a comparison for the same rows.
    pub fn set_read_pages(&mut self, on: bool) {
        self.read_pages = on;
    }

    /// Rows the last scan decoded from the table's pages, and rows it read through SQL.
    pub fn last_read(&self) -> (u64, u64) {
        (self.last_counts.pages, self.last_counts.sql)
    }

    fn connect(path: &std::path::Path) -> Result<rusqlite::Connection, ConnectorError> {
        rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| ConnectorError::Open { what: path.display().to_string(), reason: e.to_string() })
    }
}

fn sqlite_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => Value::Text(s.to_owned()),
            Err(_) => Value::Bytes(t.to_vec()),
        },
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

impl Source for SqliteSource {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    fn table_columns(&mut self, table: &str) -> Result<Vec<String>, ConnectorError> {
        let mut st = self
            .conn
            .prepare(&format!("PRAGMA table_info({})", Dialect::Sqlite.ident(table)))
            .map_err(|e| q(table)(e.to_string()))?;
        st.query_map([], |r| r.get::<_, String>(1)).and_then(Iterator::collect).map_err(|e| q(table)(e.to_string()))
    }
    fn count(&mut self, table: &str) -> Result<u64, ConnectorError> {
        self.conn
            .query_row(&format!("SELECT COUNT(*) FROM {}", Dialect::Sqlite.ident(table)), [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| q(format!("counting {table}"))(e.to_string()))
    }
    fn scan(
        &mut self,
        s: &Scan<'_>,
        f: &mut dyn FnMut(&SourceRow) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        // Reader threads with their own connections decode rows while this thread maps them;
        // bounded channels keep memory bounded whatever the table's size. Batches come back
        // once mapped, and their reader fills the same rows again: their strings keep their
        // buffers, so a row costs no allocation and no free on the other thread.
        let reading = |why: String| q(format!("reading {}", s.table))(why);
        let sql = select_sql(Dialect::Sqlite, s);
        // Got ready ahead when it was the scan said to come; anything else (another scan, a
        // thread that could not open it) opens it now, as it would have been.
        let ready = match self.ahead.iter().position(|(ahead, _)| *ahead == sql) {
            Some(i) => self.ahead.remove(i).and_then(|(_, handle)| handle.join().ok().flatten()),
            None => None,
        };
        let Opened { conn, stored } = match ready {
            Some(opened) => opened,
            None => Opened::open(&self.path, s.table, &key_order(Dialect::Sqlite, s), &sql)?,
        };
        let block = parallel_block(s.columns.len());
        let mut blocks_in_all = 1;
        // Each reader: its connection, its query, the ranges of rowids it reads (`None`: all),
        // and the query for one range when the scan reads the table as stored.
        let readers = match stored {
            Some(stored) => {
                let blocks = split_rowids(stored.first, stored.last, block);
                let range_sql = stored.range_sql();
                match self.second_reader(&conn, s, blocks.len()) {
                    Some(other) => {
                        blocks_in_all = blocks.len();
                        let even = blocks.iter().step_by(2).copied().map(Some).collect();
                        let odd = blocks.iter().skip(1).step_by(2).copied().map(Some).collect();
                        vec![
                            (conn, range_sql.clone(), even, Some(range_sql.clone())),
                            (other, range_sql.clone(), odd, Some(range_sql)),
                        ]
                    }
                    None => vec![(conn, stored.sql(), vec![None], Some(range_sql))],
                }
            }
            None => vec![(conn, sql, vec![None], None)],
        };
        let pages_on = self.read_pages;
        // A reader runs a whole block ahead of the mapping when there are two.
        let depth = if readers.len() > 1 { block as usize / READ_BATCH + 1 } else { 4 };
        std::thread::scope(|scope| {
            let mut rxs = Vec::new();
            let mut backs = Vec::new();
            let mut handles = Vec::new();
            for (conn, sql, ranges, range_sql) in readers {
                let (tx, rx) = mpsc::sync_channel::<Result<Batch, ConnectorError>>(depth);
                let (back_tx, back_rx) = mpsc::channel::<Vec<SourceRow>>();
                let spawned = std::thread::Builder::new().name("sqlite-reader".into()).spawn_scoped(scope, move || {
                    match read_blocks(&conn, &sql, ranges, range_sql.as_deref(), pages_on, s, &tx, &back_rx) {
                        Ok(counts) => counts,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            ReadCounts::default()
                        }
                    }
                });
                handles.push(spawned);
                rxs.push(rx);
                backs.push(back_tx);
            }
            // Block k comes from reader k mod n.
            let mut result = Ok(());
            let mut block = 0;
            while block < blocks_in_all {
                let i = block % rxs.len();
                match rxs[i].recv() {
                    Ok(Ok(Batch { rows, used, last })) => {
                        if let Err(e) = rows[..used].iter().try_for_each(&mut *f) {
                            result = Err(e);
                            break;
                        }
                        let _ = backs[i].send(rows);
                        if last {
                            block += 1;
                        }
                    }
                    Ok(Err(e)) => {
                        result = Err(e);
                        break;
                    }
                    // A reader that ends before its blocks do must not pass for the table's end.
                    Err(_) => {
                        result = Err(reading(format!(
                            "a reader thread stopped before block {} of {blocks_in_all}",
                            block + 1
                        )));
                        break;
                    }
                }
            }
            drop(rxs);
            let mut counts = ReadCounts::default();
            for h in handles {
                match h {
                    Ok(h) => match h.join() {
                        Ok(c) => counts += c,
                        Err(_) => result = result.and(Err(reading("a reader thread failed".into()))),
                    },
                    Err(e) => {
                        result = result.and(Err(reading(format!("no reader thread: {e}"))));
                    }
                }
            }
            tracing::debug!(
                table = s.table,
                from_pages = counts.pages,
                by_sql = counts.sql,
                gave_way = counts.gave_way,
                "read"
            );
            self.last_counts = counts;
            result
        })
    }
    fn prepare(&mut self, s: &Scan<'_>) {
        let sql = select_sql(Dialect::Sqlite, s);
        let (path, table, order) = (self.path.clone(), s.table.to_owned(), key_order(Dialect::Sqlite, s));
        let job = sql.clone();
        let spawned = std::thread::Builder::new()
            .name("sqlite-ahead".into())
            .spawn(move || Opened::open(&path, &table, &order, &job).ok());
        if let Ok(handle) = spawned {
            // Scans said before and not run are dropped: their threads end on their own.
            if self.ahead.len() == AHEAD {
                self.ahead.pop_front();
            }
            self.ahead.push_back((sql, handle));
        }
    }
}

/// Rowids in a block of a scan split between two readers: about 4 MiB of decoded rows, so that
/// the blocks in flight stay a few MiB however wide the table (TPC-H's line items: 5,120).
fn parallel_block(columns: usize) -> i64 {
    let rows = (4 << 20) / (48 * columns.max(1));
    (rows / READ_BATCH).clamp(1, 32) as i64 * READ_BATCH as i64
}

/// Blocks a scan is split into at most: rowids far apart (a table whose keys are its rowids
/// and jump by millions) make larger blocks rather than a list as long as the span.
const MAX_BLOCKS: i64 = 1 << 16;

/// `first..=last` in blocks of `block` rowids, or of more when that would make more than
/// [`MAX_BLOCKS`] blocks.
fn split_rowids(first: i64, last: i64, block: i64) -> Vec<(i64, i64)> {
    let span = i128::from(last) - i128::from(first) + 1;
    let block = i64::try_from(span / i128::from(MAX_BLOCKS) + 1).map_or(i64::MAX, |wide| wide.max(block));
    let mut blocks = Vec::new();
    let mut lo = first;
    while lo <= last {
        let hi = lo.saturating_add(block - 1).min(last);
        blocks.push((lo, hi));
        if hi == i64::MAX {
            break;
        }
        lo = hi + 1;
    }
    blocks
}

impl SqliteSource {
    /// A second connection that sees exactly the rows `first` sees, for a table of `blocks`
    /// blocks, enough to split between two reader threads on a machine with two cores or more;
    /// or `None`.
    ///
    /// `first` holds its read transaction's shared lock: in SQLite's rollback-journal modes no
    /// writer can commit until it lets go, so a transaction the second connection starts now
    /// reads the same database. In WAL mode a writer can, so the scan keeps one reader there.
    fn second_reader(&self, first: &rusqlite::Connection, s: &Scan<'_>, blocks: usize) -> Option<rusqlite::Connection> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        if cores < 2 || blocks < 4 {
            return None;
        }
        let mode: String = first.query_row("PRAGMA journal_mode", [], |r| r.get(0)).ok()?;
        if mode.eq_ignore_ascii_case("wal") {
            return None;
        }
        let other = Self::connect(&self.path).ok()?;
        other.execute_batch("BEGIN").ok()?;
        // Its first read takes its shared lock, now, while `first` holds its own.
        let sql = format!("SELECT count(*) FROM (SELECT 1 FROM {} LIMIT 1)", Dialect::Sqlite.ident(s.table));
        other.query_row(&sql, [], |r| r.get::<_, i64>(0)).ok()?;
        Some(other)
    }
}

/// Rows a reader decoded: the first `used` of `rows` (the others keep their buffers for later
/// batches), and whether they end a range of rowids.
struct Batch {
    rows: Vec<SourceRow>,
    used: usize,
    last: bool,
}

/// One reader's part of a scan: the rows of `sql` for each range of rowids in `ranges` (`None`:
/// the query has no range), in batches down `tx`, each range's last batch flagged. Stops quietly when the
/// mapping side stopped: its error is the one reported.
///
/// `by_rowid`, the query for one range of rowids, says the scan reads the table as stored: its
/// rows are then read from the table's pages where they can be ([`crate::pages`]), and that
/// query reads the rows the pages cannot give.
#[allow(clippy::too_many_arguments)]
fn read_blocks(
    conn: &rusqlite::Connection,
    sql: &str,
    ranges: Vec<Option<(i64, i64)>>,
    by_rowid: Option<&str>,
    pages_on: bool,
    s: &Scan<'_>,
    tx: &mpsc::SyncSender<Result<Batch, ConnectorError>>,
    back_rx: &mpsc::Receiver<Vec<SourceRow>>,
) -> Result<ReadCounts, ConnectorError> {
    let err = |e: rusqlite::Error| q(format!("reading {}", s.table))(e.to_string());
    let (mut st, taken) = match row_taking(conn, s, sql) {
        Some(st) => (st, true),
        None => (conn.prepare(sql).map_err(err)?, false),
    };
    let mut out = Out { tx, back_rx, batch: Vec::new(), used: 0, n: s.columns.len() };
    out.batch = out.fresh();
    let mut counts = ReadCounts::default();
    let names: Vec<&str> = s.columns.iter().map(|(c, _)| c.as_str()).collect();
    let mut pages = match by_rowid {
        Some(_) if pages_on && s.extra.is_empty() => {
            crate::pages::TablePlan::new(conn, s.table, &names).and_then(|plan| crate::pages::Pages::new(conn, plan))
        }
        _ => None,
    };
    let keys = lazy_keys(s);
    let mut fallback: Option<(rusqlite::Statement<'_>, bool)> = None;
    // Set once a page gave way: the rest of the scan is read through SQL, with one warning.
    let mut gave_way = false;
    for range in ranges {
        if gave_way {
            pages = None;
        }
        let go = match (pages.as_mut(), by_rowid) {
            (Some(p), Some(range_sql)) => {
                let (lo, hi) = range.unwrap_or((i64::MIN, i64::MAX));
                // A row the pages cannot give is read by the range query, on its own.
                let mut by_sql = |range: (i64, i64), out: &mut Out<'_>, counts: &mut ReadCounts| {
                    let (st, taken) = match &mut fallback {
                        Some(st) => st,
                        None => fallback.insert(match row_taking(conn, s, range_sql) {
                            Some(st) => (st, true),
                            None => (conn.prepare(range_sql).map_err(err)?, false),
                        }),
                    };
                    sql_rows(st, Some(range), *taken, s, out, counts)
                };
                let mut handler = |rowid: i64, rec: Option<&crate::pages::Record<'_>>| match rec {
                    Some(rec) => {
                        let row = out.slot();
                        row.bad = None;
                        take_values(&mut row.values, &mut row.raw, keys.as_deref(), s.columns.len(), |i| rec.get(i));
                        seal_row(row, s, s.lazy.is_some());
                        counts.pages += 1;
                        Ok(out.done())
                    }
                    None => by_sql((rowid, rowid), &mut out, &mut counts),
                };
                match p.rows(lo, hi, &mut handler) {
                    Ok(()) => true,
                    Err(crate::pages::Stop::Handler(None)) => false,
                    Err(crate::pages::Stop::Handler(Some(e))) => return Err(e),
                    Err(crate::pages::Stop::Unreadable { after, why }) => {
                        tracing::warn!(
                            table = s.table,
                            after,
                            why,
                            "a page could not be read as expected: the rest of the scan read through SQL"
                        );
                        counts.gave_way += 1;
                        gave_way = true;
                        match after {
                            Some(last) if last >= hi => true,
                            Some(last) => by_sql((last + 1, hi), &mut out, &mut counts)?,
                            None => by_sql((lo, hi), &mut out, &mut counts)?,
                        }
                    }
                }
            }
            _ => sql_rows(&mut st, range, taken, s, &mut out, &mut counts)?,
        };
        if !go || !out.end() {
            break;
        }
    }
    Ok(counts)
}

/// Rows a scan's reader read from the table's pages, and through SQL.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadCounts {
    /// Rows decoded from the table's pages.
    pub pages: u64,
    /// Rows read through a query.
    pub sql: u64,
    /// Readers whose pages gave way ([`crate::pages::Stop::Unreadable`]): the rest of their
    /// part of the scan was read through SQL.
    pub gave_way: u64,
}

impl std::ops::AddAssign for ReadCounts {
    fn add_assign(&mut self, o: Self) {
        self.pages += o.pages;
        self.sql += o.sql;
        self.gave_way += o.gave_way;
    }
}

/// A reader's batch being filled, and where it goes.
struct Out<'a> {
    tx: &'a mpsc::SyncSender<Result<Batch, ConnectorError>>,
    back_rx: &'a mpsc::Receiver<Vec<SourceRow>>,
    batch: Vec<SourceRow>,
    used: usize,
    n: usize,
}

impl Out<'_> {
    /// A batch the mapping side gave back, or a new one.
    fn fresh(&self) -> Vec<SourceRow> {
        self.back_rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(READ_BATCH))
    }
    /// The next row to fill.
    fn slot(&mut self) -> &mut SourceRow {
        if self.used == self.batch.len() {
            self.batch.push(SourceRow::empty(self.n));
        }
        &mut self.batch[self.used]
    }
    /// The row [`Out::slot`] gave is filled; false when the mapping side is gone.
    fn done(&mut self) -> bool {
        self.used += 1;
        self.used < READ_BATCH || self.send(false)
    }
    /// Ends a range: its last batch goes, flagged.
    fn end(&mut self) -> bool {
        self.send(true)
    }
    fn send(&mut self, last: bool) -> bool {
        let fresh = self.fresh();
        let rows = std::mem::replace(&mut self.batch, fresh);
        let used = std::mem::take(&mut self.used);
        self.tx.send(Ok(Batch { rows, used, last })).is_ok()
    }
}

/// The rows of `st` (for `range` when it has one) into `out`; false when the mapping side is
/// gone. `taken`: `st` passes its rows to [`ROW_FN`].
fn sql_rows(
    st: &mut rusqlite::Statement<'_>,
    range: Option<(i64, i64)>,
    taken: bool,
    s: &Scan<'_>,
    out: &mut Out<'_>,
    counts: &mut ReadCounts,
) -> Result<bool, ConnectorError> {
    let err = |e: rusqlite::Error| q(format!("reading {}", s.table))(e.to_string());
    let n = s.columns.len();
    let mut rows = match range {
        Some((lo, hi)) => st.query([lo, hi]),
        None => st.query([]),
    }
    .map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        let row = out.slot();
        row.bad = None;
        if taken {
            TAKEN.with(|t| std::mem::swap(&mut row.values, &mut t.borrow_mut()));
            if row.values.len() != n {
                return Err(q(format!("reading {}", s.table))("a row came without its values".into()));
            }
            if s.lazy.is_some() {
                TAKEN_RAW.with(|t| std::mem::swap(&mut row.raw, &mut t.borrow_mut()));
            }
        } else {
            row.values.resize(n, Value::Null);
            for i in 0..n {
                fill_value(&mut row.values[i], r.get_ref(i).map_err(err)?);
            }
        }
        seal_row(row, s, taken && s.lazy.is_some());
        counts.sql += 1;
        if !out.done() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Coerces a row just read and fingerprints it; `lazy`: only its key's values were decoded,
/// the others laid out as stored in its `raw`.
fn seal_row(row: &mut SourceRow, s: &Scan<'_>, lazy: bool) {
    row.lazy = lazy;
    match s.lazy.filter(|_| lazy) {
        // The other values of a lazy row are null until it is decoded whole, which
        // coerces them then.
        Some(keys) => coerce_columns(row, s.columns, keys.iter().copied()),
        None => coerce_row(row, s.columns),
    }
    row.fp = if lazy { xxhash_rust::xxh3::xxh3_64(&row.raw) } else { crate::value::fingerprint(&row.values) };
}

/// For a lazy scan, which of its columns are the key's ([`Scan::lazy`]).
fn lazy_keys(s: &Scan<'_>) -> Option<Vec<bool>> {
    s.lazy.map(|keys| (0..s.columns.len()).map(|i| keys.contains(&i)).collect())
}

/// Takes a row's `n` values, `get(i)` each, into `values`: all of them decoded, or for a lazy
/// scan (`keys`) only the key's, with every value laid out as stored in `raw` ([`raw_value`]).
fn take_values<'v>(
    values: &mut Vec<Value>,
    raw: &mut Vec<u8>,
    keys: Option<&[bool]>,
    n: usize,
    get: impl Fn(usize) -> ValueRef<'v>,
) {
    values.resize(n, Value::Null);
    match keys {
        None => {
            for (i, slot) in values.iter_mut().enumerate() {
                fill_value(slot, get(i));
            }
        }
        Some(keys) => {
            raw.clear();
            for (i, slot) in values.iter_mut().enumerate() {
                let v = get(i);
                raw_value(raw, v);
                if keys.get(i).copied().unwrap_or(false) {
                    fill_value(slot, v);
                } else if !matches!(slot, Value::Null) {
                    *slot = Value::Null;
                }
            }
        }
    }
}

thread_local! {
    /// The row [`ROW_FN`] took last on this thread.
    static TAKEN: std::cell::RefCell<Vec<Value>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The values of that row as stored, for a lazy scan ([`raw_value`]).
    static TAKEN_RAW: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Appends a value as SQLite stores it, laid out as [`Value::hash_bytes`] lays out the value
/// [`fill_value`] decodes it to when it is not text, or is text in UTF-8: a lazy row's
/// fingerprint is then its decoded row's without a text being checked or copied (TPC-H's
/// line items: a sixth of a reader's time went on checking their text was UTF-8).
#[inline]
fn raw_value(out: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => out.push(crate::value::NULL_TAG),
        ValueRef::Integer(i) => crate::value::hash_int(out, i),
        ValueRef::Real(f) => crate::value::hash_float(out, f),
        ValueRef::Text(t) => crate::value::hash_tagged_bytes(out, crate::value::TEXT_TAG, t),
        ValueRef::Blob(b) => crate::value::hash_tagged_bytes(out, crate::value::BYTES_TAG, b),
    }
}

/// Decodes the values [`raw_value`] laid out in `raw` into `out`, as [`fill_value`] would have
/// (text that is not UTF-8 as bytes); `None` if `raw` is not such a layout.
fn decode_raw(raw: &[u8], out: &mut Vec<Value>) -> Option<()> {
    let mut at = 0;
    let word = |at: usize| -> Option<[u8; 8]> { raw.get(at..at + 8)?.try_into().ok() };
    while at < raw.len() {
        let tag = raw[at];
        at += 1;
        match tag {
            crate::value::NULL_TAG => out.push(Value::Null),
            crate::value::INT_TAG => {
                out.push(Value::Int(i64::from_le_bytes(word(at)?)));
                at += 8;
            }
            crate::value::FLOAT_TAG => {
                out.push(Value::Float(f64::from_bits(u64::from_le_bytes(word(at)?))));
                at += 8;
            }
            crate::value::TEXT_TAG | crate::value::BYTES_TAG => {
                let len = usize::try_from(u64::from_le_bytes(word(at)?)).ok()?;
                at += 8;
                let bytes = raw.get(at..at.checked_add(len)?)?;
                at += len;
                let mut slot = Value::Null;
                let v = if tag == crate::value::TEXT_TAG { ValueRef::Text(bytes) } else { ValueRef::Blob(bytes) };
                fill_value(&mut slot, v);
                out.push(slot);
            }
            _ => return None,
        }
    }
    Some(())
}

/// The SQL function a reader's query passes every column of a row to: it takes their values
/// into [`TAKEN`] and returns nothing.
const ROW_FN: &str = "cutover_take_row";

/// The scan's query with its columns passed to [`ROW_FN`], prepared on `conn` with the function
/// in place; `None` where that cannot be (the reader then asks for each column).
///
/// A function's arguments come as SQLite values, read with one call each for their type and
/// content; a result column costs three or four calls through the statement, each checking
/// it and taking the connection's mutex. TPC-H's line items: a sixth fewer instructions a row.
///
/// Only for a query that returns each row as it reads it: one that sorts (`ORDER BY` a key
/// without an index, say) works out its result columns before it sorts, so the function would
/// see every row before the first is returned.
fn row_taking<'c>(conn: &'c rusqlite::Connection, s: &Scan<'_>, sql: &str) -> Option<rusqlite::Statement<'c>> {
    let head = format!("SELECT {} FROM ", select_list(Dialect::Sqlite, s, true));
    let rest = sql.strip_prefix(&head)?;
    let n = i32::try_from(s.columns.len()).ok()?;
    let wrapped = format!("SELECT {ROW_FN}({}) FROM {rest}", select_list(Dialect::Sqlite, s, false));
    // A lazy scan decodes the key's values only, and lays every value out as stored.
    let keys = lazy_keys(s);
    conn.create_scalar_function(ROW_FN, n, rusqlite::functions::FunctionFlags::SQLITE_UTF8, move |ctx| {
        TAKEN.with(|t| {
            TAKEN_RAW.with(|r| {
                take_values(&mut t.borrow_mut(), &mut r.borrow_mut(), keys.as_deref(), ctx.len(), |i| ctx.get_raw(i));
            });
        });
        Ok(rusqlite::types::Null)
    })
    .ok()?;
    if query_plan(conn, &wrapped)?.iter().any(|d| d.contains("B-TREE")) {
        return None;
    }
    conn.prepare(&wrapped).ok()
}

/// Whether a buffer of `capacity` bytes is worth filling again with `len` bytes: a buffer a
/// very long value grew is not kept for the short ones after it.
fn reusable(capacity: usize, len: usize) -> bool {
    capacity <= (1 << 20).max(len * 2)
}

/// Sets `slot` to `v`, reusing the string or bytes `slot` holds when it has the room
/// ([`reusable`]).
fn refill(slot: &mut Value, v: &Value) {
    match (&mut *slot, v) {
        (Value::Text(buf), Value::Text(s)) if reusable(buf.capacity(), s.len()) => buf.clone_from(s),
        (Value::Bytes(buf), Value::Bytes(b)) if reusable(buf.capacity(), b.len()) => buf.clone_from(b),
        _ => *slot = v.clone(),
    }
}

/// Sets `slot` to a value as SQLite gives it, reusing the string `slot` holds.
fn fill_value(slot: &mut Value, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => *slot = Value::Null,
        ValueRef::Integer(i) => *slot = Value::Int(i),
        ValueRef::Real(f) => *slot = Value::Float(f),
        ValueRef::Text(t) => match (std::str::from_utf8(t), slot) {
            (Ok(text), Value::Text(buf)) if reusable(buf.capacity(), text.len()) => {
                buf.clear();
                buf.push_str(text);
            }
            (Ok(text), slot) => *slot = Value::Text(text.to_owned()),
            (Err(_), slot) => *slot = Value::Bytes(t.to_vec()),
        },
        ValueRef::Blob(b) => *slot = Value::Bytes(b.to_vec()),
    }
}

/// Sets `slot` to [`sqlite_typed`]'s value, reusing the string `slot` holds for text.
fn fill_typed(slot: &mut Value, v: ValueRef<'_>, ty: Type) -> Result<(), String> {
    match (v, ty, &mut *slot) {
        (ValueRef::Text(t), Type::Text, Value::Text(buf)) if reusable(buf.capacity(), t.len()) => {
            let Ok(text) = std::str::from_utf8(t) else { return sqlite_typed(v, ty).map(|_| ()) };
            buf.clear();
            buf.push_str(text);
        }
        _ => *slot = sqlite_typed(v, ty)?,
    }
    Ok(())
}

/// Coerces a row's values in place to the declared types; the first that does not fit is
/// `Null`, with what was wrong in `bad`.
fn coerce_row(row: &mut SourceRow, cols: &[(String, Type)]) {
    for (i, (slot, (name, ty))) in row.values.iter_mut().zip(cols).enumerate() {
        coerce_slot(slot, *ty, || (i, name), &mut row.bad);
    }
}

/// [`coerce_row`] for the columns at `at` only.
fn coerce_columns(row: &mut SourceRow, cols: &[(String, Type)], at: impl Iterator<Item = usize>) {
    for i in at {
        if let (Some(slot), Some((name, ty))) = (row.values.get_mut(i), cols.get(i)) {
            coerce_slot(slot, *ty, || (i, name), &mut row.bad);
        }
    }
}

/// Coerces one value in place to `ty`; one that does not fit is `Null`, and `bad` says why
/// unless it holds an earlier column's reason. `at` names the column, asked only for a value
/// that does not fit: with the index and name passed as such the full scan of TPC-H's order
/// lines took 4.5 % more instructions (callgrind, scale 0.05: 2,342.7 M against 2,242.4 M),
/// 0.45 % more forced inline.
fn coerce_slot<'n>(
    slot: &mut Value,
    ty: Type,
    at: impl FnOnce() -> (usize, &'n String),
    bad: &mut Option<(usize, String)>,
) {
    let fits = matches!(
        (&*slot, ty),
        (Value::Null, _)
            | (Value::Int(_), Type::Int)
            | (Value::Float(_), Type::Float)
            | (Value::Text(_), Type::Text)
            | (Value::Bytes(_), Type::Bytes)
    );
    if fits {
        return;
    }
    match coerce(std::mem::replace(slot, Value::Null), ty) {
        Ok(v) => *slot = v,
        Err(why) => {
            let (i, name) = at();
            bad.get_or_insert((i, format!("column {name} {why}")));
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value as V};
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(V::Null),
            Value::Bool(b) => ToSqlOutput::Owned(V::Integer(i64::from(*b))),
            Value::Int(i) => ToSqlOutput::Owned(V::Integer(*i)),
            Value::Float(f) => ToSqlOutput::Owned(V::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Date(d) => ToSqlOutput::Owned(V::Text(d.to_string())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Uuid(u) => ToSqlOutput::Owned(V::Text(u.hyphenated().to_string())),
        })
    }
}

/// A SQLite v2 database. Rows are inserted many at a time, with cached prepared statements,
/// by a writer thread, so that mapping the next rows overlaps with SQLite storing the last
/// ones. During a run, foreign keys are checked once for the whole load at commit rather than
/// row by row.
#[derive(Debug)]
pub struct SqliteTarget {
    conn: Arc<Mutex<rusqlite::Connection>>,
    /// The database file, whose header [`Target::change_stamp`] reads.
    path: std::path::PathBuf,
    jobs: Option<mpsc::SyncSender<SqliteJob>>,
    worker: Option<JoinHandle<()>>,
    /// The table being loaded and its quoted column list.
    insert: (String, String),
    /// Values of the rows not yet sent to the writer, row after row: the first `filled`. A
    /// batch the writer is done with comes back down `spare` and is filled again in place, so
    /// that a text value costs a copy into a string that has the room, rather than an
    /// allocation here and a free on the writer's thread.
    batch: Vec<Value>,
    /// Values of `batch` in use; the slots after them keep their buffers for the next rows.
    filled: usize,
    /// Batches the writer has inserted, sent back to be filled again.
    spare: mpsc::Receiver<Vec<Value>>,
    columns: usize,
    in_tx: bool,
    /// Indexes dropped for a first load into empty tables, created again at commit.
    deferred: Vec<String>,
    /// Foreign keys the run resolved itself (see [`Target::trust_references`]).
    trusted: Vec<Reference>,
    /// The row state being gathered into chunks.
    state: state::Builder,
    /// The connection's count of rows changed when the run's transaction began: while it
    /// holds, the transaction has written no row another connection cannot see.
    changes_at_begin: u64,
}

/// Work for the SQLite writer thread, done in order.
enum SqliteJob {
    /// A multi-row INSERT: table, quoted columns, number of columns, and the rows' values,
    /// the first of them as many as the last number says.
    Rows(String, String, usize, Vec<Value>, usize),
    /// A row-state chunk's row to insert.
    State(Vec<Value>),
    /// Reports the first failure since the last sync, once everything before it is done.
    Sync(mpsc::Sender<Result<(), ConnectorError>>),
}

impl std::fmt::Debug for SqliteJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteJob")
    }
}

/// The rows an INSERT of `rows` rows of `columns` columns takes: `(?1, ?2), (?3, ?4), …`.
fn multi_insert_sql(table: &str, cols: &str, columns: usize, rows: usize) -> String {
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let p: Vec<String> = (1..=columns).map(|i| format!("?{}", r * columns + i)).collect();
            format!("({})", p.join(", "))
        })
        .collect();
    format!("INSERT INTO {table} ({cols}) VALUES {}", tuples.join(", "))
}

/// The writer's last multi-row INSERT: a batch of the same table and size as the one before
/// (nearly every batch) reuses its text rather than writing thousands of placeholders again.
#[derive(Default)]
struct InsertSql {
    shape: (String, String, usize, usize),
    sql: String,
}

impl InsertSql {
    fn get(&mut self, table: &str, cols: &str, columns: usize, rows: usize) -> &str {
        let s = &self.shape;
        if s.0 != table || s.1 != cols || s.2 != columns || s.3 != rows || self.sql.is_empty() {
            self.shape = (table.to_owned(), cols.to_owned(), columns, rows);
            self.sql = multi_insert_sql(table, cols, columns, rows);
        }
        &self.sql
    }
}

/// Binds a statement's parameters to `values` and runs it. UUIDs and dates become text
/// through a scratch buffer, not a string each, which SQLite copies at once.
fn execute_values(st: &mut rusqlite::Statement<'_>, values: &[Value]) -> rusqlite::Result<usize> {
    if st.parameter_count() != values.len() {
        return Err(rusqlite::Error::InvalidParameterCount(values.len(), st.parameter_count()));
    }
    let mut scratch = Vec::with_capacity(40);
    for (i, v) in values.iter().enumerate() {
        match v {
            Value::Uuid(u) => {
                let mut tmp = [0u8; 36];
                st.raw_bind_parameter(i + 1, &*u.hyphenated().encode_lower(&mut tmp))?;
            }
            Value::Date(d) => {
                scratch.clear();
                push_date(&mut scratch, *d);
                st.raw_bind_parameter(i + 1, rusqlite::types::ToSqlOutput::Borrowed(ValueRef::Text(&scratch)))?;
            }
            v => st.raw_bind_parameter(i + 1, v)?,
        }
    }
    st.raw_execute()
}

/// Inserts rows in one statement; when SQLite refuses it (nothing of it is stored then), finds
/// the row it refuses, for the message.
fn insert_rows(
    conn: &rusqlite::Connection,
    sql: &mut InsertSql,
    table: &str,
    cols: &str,
    columns: usize,
    values: &[Value],
) -> Result<(), ConnectorError> {
    let rows = values.len() / columns.max(1);
    let done =
        conn.prepare_cached(sql.get(table, cols, columns, rows)).and_then(|mut st| execute_values(&mut st, values));
    if let Err(e) = done {
        let one = multi_insert_sql(table, cols, columns, 1);
        for row in values.chunks(columns.max(1)) {
            let r = conn.prepare_cached(&one).and_then(|mut st| execute_values(&mut st, row));
            if let Err(e) = r {
                return Err(q(format!("INSERT INTO {table} with {}", describe_row(row)))(e.to_string()));
            }
        }
        return Err(q(format!("INSERT INTO {table}"))(e.to_string()));
    }
    Ok(())
}

fn insert_chunk(conn: &rusqlite::Connection, row: &[Value]) -> Result<(), ConnectorError> {
    let params: Vec<String> = (1..=state::COLUMNS.len()).map(|i| format!("?{i}")).collect();
    let sql =
        format!("INSERT INTO {} ({}) VALUES ({})", state::STATE_TABLE, state::COLUMNS.join(", "), params.join(", "));
    let mut st = conn.prepare_cached(&sql).map_err(|e| q("preparing row state")(e.to_string()))?;
    execute_values(&mut st, row).map_err(|e| q("writing row state")(e.to_string()))?;
    Ok(())
}

/// The SQLite target's page cache, KiB. A first load fills it with dirty pages, and the
/// commit's index builds sort beside it: TPC-H SQLite→SQLite, six alternated pairs at scale
/// 0.5, peak RSS 212-221 MiB with 64 MiB against 148-154 MiB with 32, in 25.2-26.6 s against
/// 25.3-27.3 s (scale 2: 243 against 197 MiB, 128 s against 126 s).
const SQLITE_CACHE_KIB: u32 = 32_768;

/// Jobs queued for the SQLite writer thread, each an INSERT of at most 128 rows. The writer
/// stops now and then for a while (SQLite spilling its page cache, the kernel holding back a
/// write of dirty pages); the mapping goes on meanwhile only while the queue has room. TPC-H
/// SQLite→SQLite at scale 0.5, alternated: 4 jobs 15.2-16.3 s, 16 jobs 14.3-14.8 s, 64 jobs
/// 13.6-14.3 s, for about 20 MiB more at the peak.
const SQLITE_QUEUE: usize = 64;

impl SqliteTarget {
    /// Opens (creating) the file with foreign keys enforced, and starts the writer thread.
    pub fn open(path: &std::path::Path) -> Result<Self, ConnectorError> {
        let conn = rusqlite::Connection::open(path)
            .map_err(|e| ConnectorError::Open { what: path.display().to_string(), reason: e.to_string() })?;
        // A rollback journal, not WAL: a run is one large transaction, and with WAL every page
        // read during it searches a write-ahead log that has grown to the size of the load.
        conn.execute_batch(&format!("PRAGMA foreign_keys = ON; PRAGMA journal_mode = DELETE; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -{SQLITE_CACHE_KIB};"))
            .map_err(|e| ConnectorError::Open { what: path.display().to_string(), reason: e.to_string() })?;
        conn.set_prepared_statement_cache_capacity(64);
        let conn = Arc::new(Mutex::new(conn));
        let (tx, rx) = mpsc::sync_channel::<SqliteJob>(SQLITE_QUEUE);
        let (back, spare) = mpsc::channel::<Vec<Value>>();
        let shared = Arc::clone(&conn);
        let worker = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                // The first failure is kept and reported at the next sync; later work is skipped.
                let mut failed: Option<ConnectorError> = None;
                let mut sql = InsertSql::default();
                for job in rx {
                    match job {
                        SqliteJob::Sync(reply) => {
                            let _ = reply.send(failed.take().map_or(Ok(()), Err));
                        }
                        _ if failed.is_some() => {}
                        job => {
                            let Ok(conn) = shared.lock() else {
                                failed = Some(q("SQLite writer")("the connection is poisoned".into()));
                                continue;
                            };
                            let r = match job {
                                SqliteJob::Rows(table, cols, n, values, used) => {
                                    let r = insert_rows(&conn, &mut sql, &table, &cols, n, &values[..used]);
                                    let _ = back.send(values);
                                    r
                                }
                                SqliteJob::State(row) => insert_chunk(&conn, &row),
                                SqliteJob::Sync(_) => Ok(()),
                            };
                            if let Err(e) = r {
                                failed = Some(e);
                            }
                        }
                    }
                }
            })
            .map_err(|e| ConnectorError::Open { what: "writer thread".into(), reason: e.to_string() })?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            jobs: Some(tx),
            worker: Some(worker),
            insert: (String::new(), String::new()),
            batch: Vec::new(),
            filled: 0,
            spare,
            columns: 0,
            in_tx: false,
            deferred: Vec::new(),
            trusted: Vec::new(),
            state: state::Builder::new(1),
            changes_at_begin: 0,
        })
    }

    /// Rows a multi-row INSERT takes: every execution of a statement sets up its CHECK
    /// constraints again (an `IN (…)` list of a schema cutover did not create is a small
    /// table SQLite builds), so fewer executions. Within SQLite's limit of 32,766 parameters.
    fn batch_rows(&self) -> usize {
        (32_000 / self.columns.max(1)).clamp(1, 128)
    }

    fn send(&self, job: SqliteJob) -> Result<(), ConnectorError> {
        let gone = || q("SQLite writer")("the writer thread stopped".into());
        self.jobs.as_ref().ok_or_else(gone)?.send(job).map_err(|_| gone())
    }

    /// Hands the rows gathered so far to the writer.
    fn flush_rows(&mut self) -> Result<(), ConnectorError> {
        if self.filled == 0 || self.columns == 0 {
            return Ok(());
        }
        let cap = self.batch_rows() * self.columns;
        let next = self.spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(cap));
        let values = std::mem::replace(&mut self.batch, next);
        let used = std::mem::take(&mut self.filled);
        self.send(SqliteJob::Rows(self.insert.0.clone(), self.insert.1.clone(), self.columns, values, used))
    }

    /// Waits until the writer has done everything handed to it; its first failure, if any.
    fn sync(&mut self) -> Result<(), ConnectorError> {
        self.flush_rows()?;
        let (tx, rx) = mpsc::channel();
        self.send(SqliteJob::Sync(tx))?;
        rx.recv().map_err(|_| q("SQLite writer")("the writer thread stopped".into()))?
    }

    /// The connection, once the writer is idle.
    fn conn(&mut self) -> Result<std::sync::MutexGuard<'_, rusqlite::Connection>, ConnectorError> {
        self.sync()?;
        self.conn.lock().map_err(|_| q("SQLite")("the connection is poisoned".into()))
    }

    fn flush_state(&mut self) -> Result<(), ConnectorError> {
        match self.state.take() {
            Some(c) => self.send_state(c),
            None => Ok(()),
        }
    }

    /// [`Target::scan_state`], or one part of it.
    fn scan_state_in(
        &mut self,
        account: Uuid,
        table: &str,
        entries: bool,
        part: Option<state::Part>,
        f: &mut dyn FnMut(ChunkHead) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        let sql = format!(
            "SELECT generation, chunk, kind, xid, n{} FROM {} WHERE account_id = ?1 AND table_name = ?2{}",
            if entries { ", ids, fps" } else { "" },
            state::STATE_TABLE,
            state::Part::sql(part)
        );
        let err = |e: rusqlite::Error| q("reading the row state")(e.to_string());
        let conn = self.conn()?;
        let mut st = conn.prepare(&sql).map_err(err)?;
        let mut rows = st.query(rusqlite::params![account.hyphenated().to_string(), table]).map_err(err)?;
        let n = if entries { 7 } else { 5 };
        while let Some(r) = rows.next().map_err(err)? {
            let row: Vec<Value> =
                (0..n).map(|i| r.get_ref(i).map(sqlite_value)).collect::<Result<_, _>>().map_err(err)?;
            let head =
                ChunkHead::from_row(row).ok_or_else(|| q("reading the row state")("a chunk is malformed".into()))?;
            f(head)?;
        }
        Ok(())
    }

    /// Hands a row-state chunk to the writer, compressed here: the writer thread is what a
    /// load waits for.
    fn send_state(&self, c: state::Chunk) -> Result<(), ConnectorError> {
        self.send(SqliteJob::State(c.into_row(0)))
    }
}

/// Rows whose foreign key finds no parent, in every table of the database. A table whose every
/// foreign key is in `trusted` is not looked at: looking up the parent of every row of a large
/// table is most of what a first load's commit would cost, and the run resolved these itself.
fn sqlite_foreign_key_violations(conn: &rusqlite::Connection, trusted: &[Reference]) -> Result<i64, ConnectorError> {
    let err = |e: rusqlite::Error| q("checking foreign keys")(e.to_string());
    if trusted.is_empty() {
        return conn.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).map_err(err);
    }
    // Each table's foreign keys: id, the number of its columns, and its one column's names.
    let mut st = conn
        .prepare(
            "SELECT m.name, k.id, COUNT(*), MIN(k.\"from\"), MIN(k.\"table\"), MIN(k.\"to\") \
             FROM sqlite_schema AS m, pragma_foreign_key_list(m.name) AS k WHERE m.type = 'table' \
             GROUP BY m.name, k.id",
        )
        .map_err(err)?;
    // A table with a foreign key the run did not resolve, or None.
    let unresolved = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Option<String>> {
        let (table, n, parent): (String, i64, String) = (r.get(0)?, r.get(2)?, r.get(4)?);
        let (from, to): (Option<String>, Option<String>) = (r.get(3)?, r.get(5)?);
        let resolved = n == 1
            && matches!((from, to), (Some(from), Some(to)) if trusted.iter().any(|t| t.is(&table, &from, &parent, &to)));
        Ok((!resolved).then_some(table))
    };
    let mut to_check: Vec<String> = st
        .query_map([], unresolved)
        .map_err(err)?
        .filter_map(Result::transpose)
        .collect::<Result<_, _>>()
        .map_err(err)?;
    to_check.sort_unstable();
    to_check.dedup();
    tracing::debug!(tables = ?to_check, "foreign keys to look up");
    let mut violations = 0;
    for table in &to_check {
        let n: i64 =
            conn.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check(?1)", [table], |r| r.get(0)).map_err(err)?;
        violations += n;
    }
    Ok(violations)
}

/// A SQLite file's change counter, page count and schema cookie (its header's bytes 24-31 and
/// 40-43), with its size, inode and modification time. Outside WAL mode SQLite adds one to the
/// change counter with every transaction that changes the file (it is how other processes learn
/// that their cached pages are stale); the rest tells a file replaced or restored.
///
/// The header is read through `conn` (`sqlite_dbpage`), never on a descriptor of its own: SQLite's
/// locks are POSIX advisory locks, and closing any descriptor of the file drops every lock the
/// process holds on it, the run's write lock included. The rest comes from `stat`, which opens
/// nothing.
fn sqlite_file_stamp(conn: &rusqlite::Connection, path: &std::path::Path) -> Result<String, ConnectorError> {
    use rusqlite::OptionalExtension;
    let page: Option<Vec<u8>> = conn
        .query_row("SELECT data FROM sqlite_dbpage WHERE pgno = 1", [], |r| r.get(0))
        .optional()
        .map_err(|e| q("reading the v2 file's header")(e.to_string()))?;
    // A file no transaction has written yet has no page: its header reads as zeros.
    let mut header = page.unwrap_or_default();
    header.resize(100, 0);
    let word = |at: usize| u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let meta = std::fs::metadata(path).map_err(|e| q("reading the v2 file's size and times")(e.to_string()))?;
    let modified =
        meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    #[cfg(unix)]
    let inode = {
        use std::os::unix::fs::MetadataExt;
        format!("{}:{}", meta.dev(), meta.ino())
    };
    #[cfg(not(unix))]
    let inode = String::new();
    Ok(format!("sqlite:{}:{}:{}:{}:{inode}:{modified}", word(24), word(28), word(40), meta.len()))
}

fn describe_row(row: &[Value]) -> String {
    let parts: Vec<String> = row.iter().take(3).map(ToString::to_string).collect();
    format!("row ({}…)", parts.join(", "))
}

/// The `SELECT` of the rows of `table` with one of `ids`, the account `?1`'s, by id.
fn sqlite_rows_by_id_sql(table: &str, columns: &[(String, Type)], ids: &[Uuid]) -> String {
    let d = Dialect::Sqlite;
    let cols: Vec<String> = columns.iter().map(|(c, _)| d.ident(c)).collect();
    format!(
        "SELECT {} FROM {} WHERE id IN ({}) AND {SQLITE_ACCOUNT} = ?1 ORDER BY 1",
        cols.join(", "),
        d.ident(table),
        id_list(ids)
    )
}

fn sqlite_read(
    conn: &rusqlite::Connection,
    table: &str,
    columns: &[(String, Type)],
    account: Option<Uuid>,
) -> Result<Vec<Vec<Value>>, ConnectorError> {
    let sql = select_rows_sql(Dialect::Sqlite, table, columns, account.is_some(), "1");
    sqlite_collect(conn, table, &sql, columns, account)
}

/// Runs a SELECT (with the account as `?1` when given) and decodes its rows to the column types.
fn sqlite_collect(
    conn: &rusqlite::Connection,
    table: &str,
    sql: &str,
    columns: &[(String, Type)],
    account: Option<Uuid>,
) -> Result<Vec<Vec<Value>>, ConnectorError> {
    let mut out = Vec::new();
    sqlite_each(conn, table, sql, columns, account, &mut |r| {
        out.push(r);
        Ok(())
    })?;
    Ok(out)
}

/// Runs a SELECT (with the account as `?1` when given), handing each decoded row to `f`.
fn sqlite_each(
    conn: &rusqlite::Connection,
    table: &str,
    sql: &str,
    columns: &[(String, Type)],
    account: Option<Uuid>,
    f: &mut dyn FnMut(Vec<Value>) -> Result<(), ConnectorError>,
) -> Result<(), ConnectorError> {
    let err = |e: rusqlite::Error| q(format!("reading {table}"))(e.to_string());
    let mut st = conn.prepare(sql).map_err(err)?;
    let mut rows = match account {
        Some(a) => st.query([a.hyphenated().to_string()]),
        None => st.query([]),
    }
    .map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        let mut row = Vec::with_capacity(columns.len());
        for (i, (name, ty)) in columns.iter().enumerate() {
            let v = sqlite_typed(r.get_ref(i).map_err(err)?, *ty).map_err(|e| q(format!("{table}.{name}"))(e))?;
            row.push(v);
        }
        f(row)?;
    }
    Ok(())
}

/// Whether a SQLite table has rowids (one declared `WITHOUT ROWID` has not).
fn sqlite_has_rowid(conn: &rusqlite::Connection, table: &str) -> bool {
    conn.prepare_cached(&format!("SELECT rowid FROM {} LIMIT 0", Dialect::Sqlite.ident(table))).is_ok()
}

/// A v2 value read from SQLite as its column's type. UUIDs and dates are parsed from the
/// stored text's bytes: making a string of each first, then parsing it through a format
/// description, was a sixth of a SQLite v2's overwrite preview.
fn sqlite_typed(v: ValueRef<'_>, ty: Type) -> Result<Value, String> {
    match (v, ty) {
        (ValueRef::Text(t), Type::Uuid) => Uuid::try_parse_ascii(t).map(Value::Uuid).map_err(|e| e.to_string()),
        (ValueRef::Text(t), Type::Date) => match iso_date(t) {
            Some(d) => Ok(Value::Date(d)),
            None => Date::parse(&String::from_utf8_lossy(t), time::macros::format_description!("[year]-[month]-[day]"))
                .map(Value::Date)
                .map_err(|e| e.to_string()),
        },
        (v, ty) => coerce(sqlite_value(v), ty),
    }
}

/// A date written `YYYY-MM-DD`, as cutover stores dates in SQLite; `None` for anything else,
/// which `Date::parse` then reads or refuses as before.
fn iso_date(t: &[u8]) -> Option<Date> {
    let &[y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = t else { return None };
    let digit = |c: u8| c.is_ascii_digit().then(|| c - b'0');
    let year = [y0, y1, y2, y3].into_iter().try_fold(0i32, |n, c| Some(n * 10 + i32::from(digit(c)?)))?;
    let month = time::Month::try_from(digit(m0)? * 10 + digit(m1)?).ok()?;
    Date::from_calendar_date(year, month, digit(d0)? * 10 + digit(d1)?).ok()
}

impl Target for SqliteTarget {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    fn ensure_schema(&mut self, v2: &Schema) -> Result<bool, ConnectorError> {
        let Some(first) = v2.tables.first() else { return Ok(false) };
        let mut conn = self.conn()?;
        let exists: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [&first.name], |r| {
                r.get(0)
            })
            .map_err(|e| q("checking the v2 schema")(e.to_string()))?;
        if exists > 0 {
            return Ok(false);
        }
        let tx = conn.transaction().map_err(|e| q("creating the v2 schema")(e.to_string()))?;
        for s in &v2.statements {
            // Keys as unique indexes of their own: a first load drops and rebuilds them. IN
            // lists as comparisons, which SQLite checks without building a table per INSERT;
            // UUIDs and dates with text affinity, which SQLite does not try as numbers.
            let (table, indexes) = crate::ddl::keys_as_indexes(s);
            let table = crate::ddl::text_affinity(&crate::ddl::in_lists_as_comparisons(&table));
            for stmt in std::iter::once(&table).chain(&indexes) {
                tx.execute_batch(stmt).map_err(|e| q(format!("creating the v2 schema: {stmt}"))(e.to_string()))?;
            }
        }
        tx.commit().map_err(|e| q("creating the v2 schema")(e.to_string()))?;
        Ok(true)
    }
    fn begin(&mut self) -> Result<(), ConnectorError> {
        // The pragma cannot change inside a transaction; commit checks every key of the load instead.
        let conn = self.conn()?;
        conn.execute_batch("PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE").map_err(|e| q("BEGIN")(e.to_string()))?;
        let changes = conn.total_changes();
        drop(conn);
        self.changes_at_begin = changes;
        self.in_tx = true;
        Ok(())
    }
    fn change_stamp(&mut self) -> Result<Option<String>, ConnectorError> {
        let err = |e: rusqlite::Error| q("reading the v2 file's change counter")(e.to_string());
        let path = self.path.clone();
        let conn = self.conn()?;
        // With a write-ahead log a commit need not touch the file's header. (This connection
        // took the file out of WAL mode when it opened it, and cannot open it while another
        // holds it in WAL mode: a guard, should that ever change.)
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).map_err(err)?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(None);
        }
        // A read transaction's shared lock: nobody can write the file while it is held.
        let own = conn.is_autocommit();
        if own {
            conn.execute_batch("BEGIN").map_err(err)?;
        }
        let read = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))
            .map_err(err)
            .and_then(|_| sqlite_file_stamp(&conn, &path));
        let ended = if own { conn.execute_batch("COMMIT").map_err(err) } else { Ok(()) };
        // The read's own error first: the transaction's end fails mostly because of it.
        let stamp = read?;
        ended?;
        Ok(Some(stamp))
    }
    fn exec_with_uuid(&mut self, sql: &str, id: Uuid) -> Result<u64, ConnectorError> {
        let sql = sql.replace("$1", "?1");
        self.conn()?
            .execute(&sql, [id.hyphenated().to_string()])
            .map(|n| n as u64)
            .map_err(|e| q(sql.clone())(e.to_string()))
    }
    fn start_table(&mut self, table: &str, columns: &[String]) -> Result<(), ConnectorError> {
        self.flush_rows()?;
        let d = Dialect::Sqlite;
        let cols: Vec<String> = columns.iter().map(|c| d.ident(c)).collect();
        self.insert = (d.ident(table), cols.join(", "));
        self.columns = columns.len();
        Ok(())
    }
    fn write_row(&mut self, row: &[Value]) -> Result<(), ConnectorError> {
        if row.len() != self.columns {
            return Err(q(format!("INSERT INTO {}", self.insert.0))(format!(
                "a row of {} values for {} columns",
                row.len(),
                self.columns
            )));
        }
        for v in row {
            match self.batch.get_mut(self.filled) {
                Some(slot) => refill(slot, v),
                None => self.batch.push(v.clone()),
            }
            self.filled += 1;
        }
        if self.filled >= self.batch_rows() * self.columns {
            self.flush_rows()?;
        }
        Ok(())
    }
    fn finish_table(&mut self) -> Result<(), ConnectorError> {
        self.flush_rows()?;
        self.flush_state()
    }
    fn commit(&mut self) -> Result<(), ConnectorError> {
        self.flush_state()?;
        let deferred = std::mem::take(&mut self.deferred);
        let trusted = std::mem::take(&mut self.trusted);
        let conn = self.conn()?;
        if !deferred.is_empty() {
            // The writer is idle now: an index build sorts on the second core too. Each sorting
            // thread takes up to the page cache's size, and sorts of that smaller size were
            // faster as well (5.6 s rather than 9.7 s for TPC-H's indexes at scale 0.5).
            conn.execute_batch(&format!("PRAGMA threads = 1; PRAGMA cache_size = -{}", SQLITE_CACHE_KIB / 4))
                .map_err(|e| q("PRAGMA threads")(e.to_string()))?;
        }
        let rebuilt = deferred.iter().try_for_each(|sql| {
            let started = std::time::Instant::now();
            conn.execute_batch(sql).map_err(|e| q(sql.clone())(e.to_string()))?;
            tracing::debug!(statement = %sql, ms = started.elapsed().as_millis() as u64, "rebuilt after the load");
            Ok(())
        });
        // Back to one thread and the whole cache, whether the indexes could be built or not;
        // a failed build is the error to report.
        let reset = if deferred.is_empty() {
            Ok(())
        } else {
            conn.execute_batch(&format!("PRAGMA threads = 0; PRAGMA cache_size = -{SQLITE_CACHE_KIB}"))
                .map_err(|e| q("PRAGMA threads")(e.to_string()))
        };
        rebuilt?;
        reset?;
        // The foreign keys of the whole database, checked once for the load.
        let started = std::time::Instant::now();
        let violations = sqlite_foreign_key_violations(&conn, &trusted)?;
        tracing::debug!(ms = started.elapsed().as_millis() as u64, trusted = trusted.len(), "checked the foreign keys");
        if violations > 0 {
            return Err(q("commit")(format!("{violations} foreign key violations")));
        }
        conn.execute_batch("COMMIT; PRAGMA foreign_keys = ON").map_err(|e| q("COMMIT")(e.to_string()))?;
        drop(conn);
        self.in_tx = false;
        Ok(())
    }
    fn defer_constraints(&mut self, tables: &[&str]) -> Result<bool, ConnectorError> {
        let names: Vec<&str> = tables.to_vec();
        let d = Dialect::Sqlite;
        let err = |e: rusqlite::Error| q("deferring indexes")(e.to_string());
        let conn = self.conn()?;
        for t in &names {
            let any: bool = conn
                .query_row(&format!("SELECT EXISTS (SELECT 1 FROM {})", d.ident(t)), [], |r| r.get(0))
                .map_err(err)?;
            if any {
                return Ok(false);
            }
        }
        // Only indexes of their own (keys declared in a table cannot be dropped in SQLite).
        let list: Vec<String> = names.iter().map(|t| format!("'{}'", t.replace('\'', "''"))).collect();
        let indexes: Vec<(String, String)> = {
            let mut st = conn
                .prepare(&format!(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({})",
                    list.join(", ")
                ))
                .map_err(err)?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(err)?.collect::<Result<_, _>>().map_err(err)?
        };
        let mut deferred = Vec::new();
        for (name, sql) in indexes {
            conn.execute_batch(&format!("DROP INDEX {}", d.ident(&name))).map_err(err)?;
            deferred.push(sql);
        }
        drop(conn);
        self.deferred = deferred;
        Ok(!self.deferred.is_empty())
    }
    fn trust_references(&mut self, refs: &[Reference]) {
        self.trusted = refs.to_vec();
    }
    fn rollback(&mut self) -> Result<(), ConnectorError> {
        self.deferred.clear();
        self.trusted.clear();
        self.batch.clear();
        self.filled = 0;
        self.state = state::Builder::new(self.state.generation());
        // Whatever the writer still had failed or is moot now.
        let _ = self.sync();
        if self.in_tx {
            self.in_tx = false;
            let conn = self.conn.lock().map_err(|_| q("ROLLBACK")("the connection is poisoned".into()))?;
            conn.execute_batch("ROLLBACK; PRAGMA foreign_keys = ON").map_err(|e| q("ROLLBACK")(e.to_string()))?;
        }
        Ok(())
    }
    fn exec_sql(&mut self, sql: &str) -> Result<u64, ConnectorError> {
        self.conn()?.execute(sql, []).map(|n| n as u64).map_err(|e| q(sql)(e.to_string()))
    }
    fn ensure_state_table(&mut self) -> Result<(), ConnectorError> {
        let conn = self.conn()?;
        for sql in state::ddl(Dialect::Sqlite) {
            conn.execute_batch(&sql).map_err(|e| q("creating the row-state table")(e.to_string()))?;
        }
        Ok(())
    }
    fn write_state(&mut self, e: &StateEntry<'_>) -> Result<(), ConnectorError> {
        match self.state.push(e) {
            Some(c) => self.send_state(c),
            None => Ok(()),
        }
    }
    fn write_state_deleted(&mut self, account: Uuid, table: &str, ids: &[Uuid]) -> Result<(), ConnectorError> {
        for c in self.state.deleted(account, table, ids) {
            self.send_state(c)?;
        }
        Ok(())
    }
    fn set_state_generation(&mut self, generation: i32) {
        self.state.set_generation(generation);
    }
    fn scan_state(
        &mut self,
        account: Uuid,
        table: &str,
        entries: bool,
        f: &mut dyn FnMut(ChunkHead) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        // What this run wrote so far is part of what it reads back.
        self.flush_state()?;
        self.scan_state_in(account, table, entries, None, f)
    }
    fn scan_state_part(
        &mut self,
        account: Uuid,
        table: &str,
        part: state::Part,
        f: &mut dyn FnMut(ChunkHead) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        // A part is of a generation before this run's: nothing to flush first.
        self.scan_state_in(account, table, true, Some(part), f)
    }
    fn read_state_loaded(
        &mut self,
        account: Uuid,
        table: &str,
        chunks: &[state::ChunkId],
    ) -> Result<state::LoadedChunks, ConnectorError> {
        let err = |e: rusqlite::Error| q("reading the row state")(e.to_string());
        let conn = self.conn()?;
        let mut out = Vec::new();
        for part in chunks.chunks(200) {
            let list: Vec<String> = part.iter().map(|(g, c)| format!("({g}, {c})")).collect();
            let sql = format!(
                "SELECT generation, chunk, loaded FROM {} WHERE account_id = ?1 AND table_name = ?2 AND (generation, chunk) IN (VALUES {})",
                state::STATE_TABLE,
                list.join(", ")
            );
            let mut st = conn.prepare(&sql).map_err(err)?;
            let mut rows = st.query(rusqlite::params![account.hyphenated().to_string(), table]).map_err(err)?;
            while let Some(r) = rows.next().map_err(err)? {
                out.push(((r.get(0).map_err(err)?, r.get(1).map_err(err)?), r.get(2).map_err(err)?));
            }
        }
        Ok(out)
    }
    fn upsert_rows(
        &mut self,
        table: &str,
        columns: &[String],
        conflict: &[&str],
        rows: &[Vec<Value>],
    ) -> Result<(), ConnectorError> {
        let d = Dialect::Sqlite;
        let params: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        let values = format!("VALUES ({})", params.join(", "));
        let sql = upsert_sql(d, table, columns, conflict, &values);
        // SQLite rewrites the entries of every index over a column the update sets, even to the
        // same value: setting a row's account and legacy reference again moved its entry in
        // the `(account_id, legacy_ref)` key (43,297 order lines: 2.7-4.3 s against 1.8-2.0 s
        // without). A row found under its id with both as given is updated without them;
        // one with either different (edited in v2) is not, and gets the whole upsert after.
        let keys = ["account_id", "legacy_ref"];
        let rest: Vec<String> =
            columns.iter().filter(|c| !keys.contains(&c.as_str()) && c.as_str() != "id").cloned().collect();
        let lean = (conflict == ["id"] && keys.iter().all(|k| columns.iter().any(|c| c == k)) && !rest.is_empty())
            .then(|| {
                let t = d.ident(table);
                format!(
                    "{} WHERE {t}.account_id IS excluded.account_id AND {t}.legacy_ref IS excluded.legacy_ref",
                    upsert_sql_setting(d, table, columns, &rest, conflict, &values)
                )
            });
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(&sql).map_err(|e| q(sql.clone())(e.to_string()))?;
        let mut st_lean = match &lean {
            Some(l) => Some(conn.prepare_cached(l).map_err(|e| q(l.clone())(e.to_string()))?),
            None => None,
        };
        for r in rows {
            let err = |e: rusqlite::Error| q(format!("upsert into {table} with {}", describe_row(r)))(e.to_string());
            let done = match st_lean.as_mut() {
                Some(l) => l.execute(rusqlite::params_from_iter(r.iter())).map_err(err)? > 0,
                None => false,
            };
            if !done {
                st.execute(rusqlite::params_from_iter(r.iter())).map_err(err)?;
            }
        }
        Ok(())
    }
    fn delete_ids(&mut self, table: &str, ids: &[Uuid]) -> Result<u64, ConnectorError> {
        let mut n = 0;
        let conn = self.conn()?;
        for chunk in ids.chunks(500) {
            let sql = format!("DELETE FROM {} WHERE id IN ({})", Dialect::Sqlite.ident(table), id_list(chunk));
            n += conn.execute(&sql, []).map_err(|e| q(format!("delete from {table}"))(e.to_string()))? as u64;
        }
        Ok(n)
    }
    fn read_rows_by_id(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<Vec<Value>>, ConnectorError> {
        let mut out = Vec::new();
        let conn = self.conn()?;
        for chunk in ids.chunks(500) {
            out.extend(sqlite_collect(
                &conn,
                table,
                &sqlite_rows_by_id_sql(table, columns, chunk),
                columns,
                Some(account),
            )?);
        }
        Ok(out)
    }
    fn scan_rows(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Option<Uuid>,
        f: &mut dyn FnMut(Vec<Value>) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        let conn = self.conn()?;
        // In load order, the rowid's (an upsert keeps a row's rowid), as verify meets the rows
        // again, and without a seek into the table per row of the key's index; a table without
        // rowids comes in key order.
        let order = if sqlite_has_rowid(&conn, table) { "rowid" } else { "1" };
        let sql = select_rows_sql(Dialect::Sqlite, table, columns, account.is_some(), order);
        sqlite_each(&conn, table, &sql, columns, account, f)
    }
    fn read_rows(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Option<Uuid>,
    ) -> Result<Vec<Vec<Value>>, ConnectorError> {
        let conn = self.conn()?;
        sqlite_read(&conn, table, columns, account)
    }
    fn rows_in_load_order(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Uuid,
        after: i64,
        limit: usize,
    ) -> Result<Option<LoadOrderPage>, ConnectorError> {
        let conn = self.conn()?;
        if !sqlite_has_rowid(&conn, table) {
            return Ok(None);
        }
        match after.checked_add(1) {
            Some(from) => sqlite_load_order_page(&conn, table, columns, account, (from, i64::MAX), limit).map(Some),
            None => Ok(Some(Vec::new())),
        }
    }
    fn pages_ahead(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Uuid,
        limit: usize,
    ) -> Result<Option<PagesAhead>, ConnectorError> {
        // Copying the values out of SQLite is most of reading a page, and the rest of the
        // preview a fifth of it: two threads read alternate blocks of rowids beside it.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        if cores < 2 {
            return Ok(None);
        }
        let at_begin = self.changes_at_begin;
        let conn = self.conn()?;
        // Other connections read what is committed. This one's transaction (a final
        // migration's, begun with the write lock, so that nobody else commits meanwhile) must
        // not have written yet.
        if !conn.is_autocommit() && conn.total_changes() != at_begin {
            return Ok(None);
        }
        let path = match conn.path() {
            Some(p) if !p.is_empty() && sqlite_has_rowid(&conn, table) => PathBuf::from(p),
            _ => return Ok(None),
        };
        let ends = format!("SELECT min(rowid), max(rowid) FROM {}", Dialect::Sqlite.ident(table));
        let ends = conn
            .query_row(&ends, [], |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?)))
            .map_err(|e| q(format!("reading {table} in load order"))(e.to_string()))?;
        drop(conn);
        let (Some(first), Some(last)) = ends else { return Ok(None) };
        let blocks = split_rowids(first, last, i64::try_from(limit).unwrap_or(i64::MAX).max(1));
        let readers = if blocks.len() >= 4 { 2 } else { 1 };
        let mut ahead = PagesAhead {
            table: table.to_owned(),
            rxs: Vec::new(),
            blocks: blocks.len(),
            block: 0,
            backs: Vec::new(),
            last: 0,
            threads: Vec::new(),
        };
        for k in 0..readers {
            // Without its readers the preview pages on this connection, as it did before them.
            let other = match SqliteSource::connect(&path) {
                Ok(other) => other,
                Err(e) => {
                    tracing::debug!(table, error = %e, "no connection to read ahead on");
                    return Ok(None);
                }
            };
            let mine: Vec<(i64, i64)> = blocks.iter().skip(k).step_by(readers).copied().collect();
            let (tx, rx) = mpsc::sync_channel::<AheadPage>(1);
            // Pages the caller is done with, filled again in place: a row's strings keep their
            // buffers, so that it costs no allocation here and no free on the caller's thread.
            let (back, spare) = mpsc::channel::<LoadOrderPage>();
            let (name, columns) = (table.to_owned(), columns.to_vec());
            // Each page a transaction of its own, as on the caller's connection: a read lock
            // held for the whole table would keep v2's own writers waiting.
            let spawned = std::thread::Builder::new().name("sqlite-pages".into()).spawn(move || {
                let mut pages = V2Pages::open(&other, &name, &columns, account);
                for (lo, hi) in mine {
                    let mut from = lo;
                    loop {
                        let page = match pages.as_mut() {
                            Some(p) => {
                                let mut rows = spare.try_recv().unwrap_or_default();
                                let r = p.fill((from, hi), limit, &mut rows);
                                if let Ok(false) = r {
                                    pages = None;
                                }
                                r.map(|_| rows)
                            }
                            None => {
                                // Pages given back are not filled through SQL: let them go here
                                // rather than pile up unread.
                                while spare.try_recv().is_ok() {}
                                sqlite_load_order_page(&other, &name, &columns, account, (from, hi), limit)
                            }
                        };
                        // A full page may have more of its block after it.
                        let next = match &page {
                            Ok(rows) if rows.len() == limit => {
                                rows.last().and_then(|r| r.at.checked_add(1)).filter(|&n| n <= hi)
                            }
                            _ => None,
                        };
                        let failed = page.is_err();
                        if tx.send(page.map(|rows| (rows, next.is_none()))).is_err() || failed {
                            return;
                        }
                        match next {
                            Some(n) => from = n,
                            None => break,
                        }
                    }
                }
            });
            match spawned {
                Ok(thread) => {
                    ahead.rxs.push(rx);
                    ahead.backs.push(back);
                    ahead.threads.push(thread);
                }
                Err(e) => {
                    tracing::debug!(table, error = %e, "no thread to read ahead on");
                    return Ok(None);
                }
            }
        }
        Ok(Some(ahead))
    }
}

/// A v2 table's rows in load order read from its pages ([`crate::pages`]) on one connection:
/// what [`sqlite_load_order_page`] reads, for one account.
struct V2Pages<'c> {
    conn: &'c rusqlite::Connection,
    /// The table's `columns` and then its account column.
    pages: crate::pages::Pages<'c>,
    table: &'c str,
    columns: &'c [(String, Type)],
    account: Uuid,
}

impl<'c> V2Pages<'c> {
    /// The reader, or `None` where it would not read what [`sqlite_load_order_page`] does: a
    /// table the page reader cannot read, or one that compares text otherwise than byte for
    /// byte (a `COLLATE` in its definition), for the account test.
    fn open(
        conn: &'c rusqlite::Connection,
        table: &'c str,
        columns: &'c [(String, Type)],
        account: Uuid,
    ) -> Option<Self> {
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
                [table],
                |r| r.get(0),
            )
            .ok()?;
        if sql.to_ascii_uppercase().contains("COLLATE") {
            return None;
        }
        let mut names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
        names.push("account_id");
        let pages =
            crate::pages::TablePlan::new(conn, table, &names).and_then(|plan| crate::pages::Pages::new(conn, plan))?;
        Some(Self { conn, pages, table, columns, account })
    }

    /// Fills `page` with what [`sqlite_load_order_page`] gives for `from..=to` and `limit`,
    /// each value taken from its record as SQL would give it (the account's rows by their
    /// account column's bytes, as `=` compares text), into the rows and strings `page` holds.
    /// A row the pages cannot give is read through SQL, alone; a page that is not what the
    /// tree says gives the rest of the range to SQL, and `false` (the caller reads through SQL
    /// from then on).
    fn fill(&mut self, (from, to): (i64, i64), limit: usize, page: &mut LoadOrderPage) -> Result<bool, ConnectorError> {
        let Self { conn, pages, table, columns, account } = self;
        let (conn, table, columns, account) = (*conn, *table, *columns, *account);
        let reading = |e: String| q(format!("reading {table} in load order"))(e);
        let mut text = [0u8; 36];
        let account_text: &[u8] = account.hyphenated().encode_lower(&mut text).as_bytes();
        // The rows of `page` filled so far; those after keep their buffers for the next rows.
        let mut used = 0;
        // One snapshot for the walk down the tree and along its leaves.
        conn.execute_batch("BEGIN").map_err(|e| reading(e.to_string()))?;
        let walked = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))
            .map_err(|e| reading(e.to_string()))
            .and_then(|_| {
                let n = columns.len();
                let mut on_row = |rowid: i64, rec: Option<&crate::pages::Record<'_>>| -> Result<bool, ConnectorError> {
                    match rec {
                        Some(rec) => {
                            if !matches!(rec.get(n), ValueRef::Text(t) if t == account_text) {
                                return Ok(true);
                            }
                            if page.len() == used {
                                page.push(LoadOrderRow { at: rowid, values: vec![Value::Null; n], fingerprint: 0 });
                            }
                            let row = &mut page[used];
                            row.at = rowid;
                            row.values.resize(n, Value::Null);
                            for (j, ((name, ty), slot)) in columns.iter().zip(row.values.iter_mut()).enumerate() {
                                fill_typed(slot, rec.get(j), *ty).map_err(|e| q(format!("{table}.{name}"))(e))?;
                            }
                            row.fingerprint = crate::value::fingerprint(&row.values);
                            used += 1;
                        }
                        None => {
                            let one = sqlite_load_order_page(conn, table, columns, account, (rowid, rowid), 1)?;
                            page.truncate(used);
                            page.extend(one);
                            used = page.len();
                        }
                    }
                    Ok(used < limit)
                };
                match pages.rows(from, to, &mut on_row) {
                    Ok(()) | Err(crate::pages::Stop::Handler(None)) => Ok(true),
                    Err(crate::pages::Stop::Handler(Some(e))) => Err(e),
                    Err(crate::pages::Stop::Unreadable { after, why }) => {
                        tracing::warn!(table, after, why, "a v2 page could not be read as expected: read through SQL");
                        Ok(false)
                    }
                }
            });
        let ended = conn.execute_batch("COMMIT").map_err(|e| reading(e.to_string()));
        page.truncate(used);
        let readable = walked?;
        ended?;
        if !readable {
            // The rows after the last one given, up to the page's size.
            let after = page.last().map_or(Some(from), |r| r.at.checked_add(1));
            if let Some(after) = after.filter(|a| *a <= to && page.len() < limit) {
                let rest = sqlite_load_order_page(conn, table, columns, account, (after, to), limit - page.len())?;
                page.extend(rest);
            }
        }
        Ok(readable)
    }
}

/// A page of an account's rows of a SQLite table in load order ([`Target::rows_in_load_order`]):
/// at most `limit` of those whose rowids are in `from..=to`.
fn sqlite_load_order_page(
    conn: &rusqlite::Connection,
    table: &str,
    columns: &[(String, Type)],
    account: Uuid,
    (from, to): (i64, i64),
    limit: usize,
) -> Result<LoadOrderPage, ConnectorError> {
    // A seek to the page's start, then the table in its own order; the rowid read last.
    let mut with_rowid = columns.to_vec();
    with_rowid.push(("rowid".to_owned(), Type::Int));
    let cols: Vec<String> = columns.iter().map(|(c, _)| Dialect::Sqlite.ident(c)).collect();
    let sql = format!(
        "SELECT {}, rowid FROM {} WHERE {SQLITE_ACCOUNT} = ?1 AND rowid BETWEEN {from} AND {to} ORDER BY rowid LIMIT {limit}",
        cols.join(", "),
        Dialect::Sqlite.ident(table)
    );
    let mut page = Vec::with_capacity(limit.min(1 << 16));
    sqlite_each(conn, table, &sql, &with_rowid, Some(account), &mut |mut row| match row.pop() {
        Some(Value::Int(rowid)) => {
            page.push(LoadOrderRow::new(rowid, row));
            Ok(())
        }
        other => Err(q(format!("reading {table} in load order"))(format!("a rowid came as {other:?}"))),
    })?;
    Ok(page)
}

impl Drop for SqliteTarget {
    fn drop(&mut self) {
        let _ = self.rollback();
        self.jobs.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

// ---------------------------------------------------------------- PostgreSQL

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ConnectorError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ConnectorError::Open { what: "async runtime".into(), reason: e.to_string() })
}

/// A connection to PostgreSQL and the runtime that drives it; the URL shows masked in errors.
fn pg_connect(url: &str) -> Result<(tokio::runtime::Runtime, sqlx::PgConnection), ConnectorError> {
    let rt = runtime()?;
    let mut conn = rt
        .block_on(sqlx::PgConnection::connect(url))
        .map_err(|e| ConnectorError::Open { what: masked(url), reason: e.to_string() })?;
    // A server's timeouts are set for its applications' queries. A migration's statements (a
    // table's COPY, a key built over millions of rows) and its transaction, idle while v1 is
    // read, take as long as the data does: cancelled halfway, the run would only roll back.
    // pg_dump and pg_restore set the same.
    for sql in ["SET statement_timeout = 0", "SET idle_in_transaction_session_timeout = 0"] {
        rt.block_on(sqlx::query(sql).execute(&mut conn)).map_err(|e| q(sql)(e.to_string()))?;
    }
    // A query the planner costs high enough is compiled to machine code first (JIT). Cutover's
    // big queries are scans that count rows or hand them over, where the compiling was time
    // added: the overwrite preview's count over TPC-H's 3 M order lines compiled for about
    // 35 ms of its 0.3 s. A server without JIT has the setting all the same (PostgreSQL 11 and
    // later); one that refuses it runs as it is configured.
    if let Err(e) = rt.block_on(sqlx::query("SET jit = off").execute(&mut conn)) {
        tracing::debug!(error = %e, "JIT left as the server has it");
    }
    Ok((rt, conn))
}

/// A PostgreSQL v1 database.
#[derive(Debug)]
pub struct PgSource {
    rt: tokio::runtime::Runtime,
    conn: sqlx::PgConnection,
}

impl PgSource {
    /// Connects, in a transaction that reads every table as v1 was at its first read.
    pub fn open(url: &str) -> Result<Self, ConnectorError> {
        let (rt, mut conn) = pg_connect(url)?;
        // The legacy application may go on writing while a trial migration or a verify reads
        // (a run takes minutes): read table by table as each stood when it was reached, an
        // order line added after its order's table was read would be an orphan. One snapshot
        // for every table, as pg_dump takes; it blocks no writer.
        let begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
        rt.block_on(sqlx::query(begin).execute(&mut conn)).map_err(|e| q(begin)(e.to_string()))?;
        Ok(Self { rt, conn })
    }
}

/// Runs `sql` (with `id` as `$1`) and returns the rows it affected.
async fn pg_exec(conn: &mut sqlx::PgConnection, sql: &str, id: Option<Uuid>) -> Result<u64, ConnectorError> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    if let Some(id) = id {
        query = query.bind(id);
    }
    query.execute(conn).await.map(|r| r.rows_affected()).map_err(|e| q(sql)(e.to_string()))
}

/// Sends `data` to the `COPY … FROM STDIN` statement `stmt`.
async fn pg_copy_in(conn: &mut sqlx::PgConnection, stmt: &str, data: &[u8]) -> Result<(), ConnectorError> {
    let copied: Result<u64, sqlx::Error> = async {
        let mut c = conn.copy_in_raw(stmt).await?;
        // The server reads a CopyData message whole before it decodes a row of it: in pieces,
        // it stores the first while the next is on its way (8 MiB of row state in one
        // message kept the backend waiting for it, `ClientRead`, about 13 ms each time).
        for piece in data.chunks(COPY_CHUNK) {
            c.send(piece).await?;
        }
        c.finish().await
    }
    .await;
    copied.map(|_| ()).map_err(|e| q(stmt)(e.to_string()))
}

/// Encodes row-state chunks as rows of a binary COPY into the state table, after those in
/// `rows`. Compressing here, on the writer thread, keeps it off the engine thread.
fn encode_state(rows: &mut Vec<u8>, chunks: Vec<state::Chunk>, xid: i64) -> Result<(), ConnectorError> {
    if rows.capacity() == 0 {
        // Room for what is held before a write and the chunks that pass the mark: the buffer
        // is kept between writes, and doubling it past the mark would hold twice as much.
        rows.reserve(STATE_FLUSH + (2 << 20));
    }
    for c in chunks {
        pgcopy::write_row(rows, &c.into_row(xid), &STATE_TYPES).map_err(q("row state"))?;
    }
    Ok(())
}

/// Writes the row-state rows [`encode_state`] encoded, and empties `rows` for the next ones.
async fn pg_copy_state(conn: &mut sqlx::PgConnection, rows: &mut Vec<u8>) -> Result<(), ConnectorError> {
    rows.extend_from_slice(pgcopy::TRAILER);
    let stmt = format!("COPY {} ({}) FROM STDIN (FORMAT binary)", state::STATE_TABLE, state::COLUMNS.join(", "));
    let written = pg_copy_in(conn, &stmt, rows).await;
    rows.clear();
    if !reusable(rows.capacity(), STATE_FLUSH) {
        // A chunk of very long rows grew it: not kept for the rest of the run.
        *rows = Vec::new();
    }
    written
}

/// One `COPY … FROM STDIN` of `first` and of the chunks of the same statement that come next on
/// `jobs`; row-state chunks met meanwhile are encoded into `state_rows`, and written after the
/// COPY once they reach [`STATE_FLUSH`]. Gives back the job that ended the stream (it has not
/// been run) and the outcome.
async fn pg_copy_stream(
    conn: &mut sqlx::PgConnection,
    stmt: &str,
    binary: bool,
    first: Vec<u8>,
    jobs: &mpsc::Receiver<PgJob>,
    state_rows: &mut Vec<u8>,
) -> (Option<PgJob>, Result<(), ConnectorError>) {
    let mut ended_by = None;
    let mut write_state = false;
    let mut bad_state = None;
    let copied: Result<(), sqlx::Error> = async {
        let mut copy = conn.copy_in_raw(stmt).await?;
        let mut sent: Result<(), sqlx::Error> = async {
            if binary {
                copy.send(pgcopy::HEADER).await?;
            }
            copy.send(first).await?;
            // Blocks the thread between chunks with the COPY open: nothing else runs on this
            // connection meanwhile, and the server just waits for the next rows.
            loop {
                match jobs.recv() {
                    Ok(PgJob::Copy(s, _, data)) if s == stmt => {
                        copy.send(data).await?;
                    }
                    Ok(PgJob::CopyState(chunks, xid)) => {
                        if let Err(e) = encode_state(state_rows, chunks, xid) {
                            let stop = sqlx::Error::Protocol(e.to_string());
                            bad_state = Some(e);
                            return Err(stop);
                        }
                        if state_rows.len() >= STATE_FLUSH {
                            write_state = true;
                            return Ok(());
                        }
                    }
                    Ok(job) => {
                        ended_by = Some(job);
                        return Ok(());
                    }
                    // The target is gone: what was sent is finished, and the connection closes.
                    Err(_) => return Ok(()),
                }
            }
        }
        .await;
        if sent.is_ok() && binary {
            sent = copy.send(pgcopy::TRAILER).await.map(|_| ());
        }
        match sent {
            Ok(()) => copy.finish().await.map(|_| ()),
            Err(e) => {
                let _ = copy.abort("cutover stopped the load").await;
                Err(e)
            }
        }
    }
    .await;
    let mut outcome = match bad_state {
        Some(e) => Err(e),
        None => copied.map_err(|e| q(stmt)(e.to_string())),
    };
    if outcome.is_ok() && write_state {
        outcome = pg_copy_state(conn, state_rows).await;
    }
    (ended_by, outcome)
}

/// Runs a query (with `$1` bound to `id` when given) and gives its rows as values of `cols`' types.
async fn pg_read(
    conn: &mut sqlx::PgConnection,
    sql: &str,
    cols: &[(String, Type)],
    id: Option<Uuid>,
) -> Result<Vec<Vec<Value>>, ConnectorError> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    if let Some(id) = id {
        query = query.bind(id);
    }
    let rows = query.fetch_all(conn).await.map_err(|e| q(sql)(e.to_string()))?;
    rows.iter()
        .map(|r| {
            (0..cols.len())
                .map(|i| {
                    let v = pg_value(r, i).map_err(|e| q(sql)(e.to_string()))?;
                    coerce(v, cols[i].1).map_err(|e| q(format!("{}: {e}", cols[i].0))(String::new()))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .collect()
}

/// The queries reading rows of an account by id, a thousand ids each.
fn rows_by_id_sql(table: &str, columns: &[(String, Type)], ids: &[Uuid]) -> Vec<String> {
    let d = Dialect::Postgres;
    let cols: Vec<String> = columns.iter().map(|(c, _)| d.ident(c)).collect();
    ids.chunks(1000)
        .map(|chunk| {
            format!(
                "SELECT {} FROM {} WHERE account_id = $1 AND id IN ({}) ORDER BY 1",
                cols.join(", "),
                d.ident(table),
                id_list(chunk)
            )
        })
        .collect()
}

/// A read-only connection to a PostgreSQL v2 in the snapshot another transaction exported:
/// the old rows, while that transaction writes. See [`Target::snapshot_reader`].
#[derive(Debug)]
struct PgSnapshotReader {
    rt: tokio::runtime::Runtime,
    /// Taken when it is closed.
    conn: Option<sqlx::PgConnection>,
}

impl PgSnapshotReader {
    fn open(url: &str, snapshot: &str) -> Result<Self, ConnectorError> {
        // An exported snapshot's id is hex digits and dashes; anything else is not one.
        if snapshot.is_empty() || !snapshot.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(q("SET TRANSACTION SNAPSHOT")(format!("not a snapshot id: {snapshot:?}")));
        }
        let (rt, mut conn) = pg_connect(url)?;
        for sql in
            ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", &format!("SET TRANSACTION SNAPSHOT '{snapshot}'")]
        {
            rt.block_on(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn))
                .map_err(|e| q(sql)(e.to_string()))?;
        }
        Ok(Self { rt, conn: Some(conn) })
    }
}

impl Drop for PgSnapshotReader {
    fn drop(&mut self) {
        // Ends its read-only transaction properly rather than leave the server a dropped socket.
        if let Some(conn) = self.conn.take() {
            let _ = self.rt.block_on(conn.close());
        }
    }
}

impl RowsById for PgSnapshotReader {
    fn read_rows_by_id(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<Vec<Value>>, ConnectorError> {
        let conn =
            self.conn.as_mut().ok_or_else(|| q(format!("reading {table} by id"))("the connection is closed".into()))?;
        let mut out = Vec::with_capacity(ids.len());
        for sql in rows_by_id_sql(table, columns, ids) {
            out.extend(self.rt.block_on(pg_read(conn, &sql, columns, Some(account)))?);
        }
        Ok(out)
    }
    fn state_part(&mut self, account: Uuid, table: &str, part: state::Part) -> Result<Vec<ChunkHead>, ConnectorError> {
        let what = || q(format!("reading the row state of {table}"));
        let conn = self.conn.as_mut().ok_or_else(|| what()("the connection is closed".into()))?;
        let sql = pg_state_select("$1", table, true, Some(part));
        let rows = self.rt.block_on(pg_read(conn, &sql, &state::head_columns(true), Some(account)))?;
        rows.into_iter().map(|r| ChunkHead::from_row(r).ok_or_else(|| what()("a chunk is malformed".into()))).collect()
    }
    fn scan_ids(&mut self, table: &str, account: Uuid, f: &mut dyn FnMut(Uuid)) -> Result<(), ConnectorError> {
        let sql = format!(
            "COPY (SELECT id::uuid FROM {} WHERE account_id = '{}') TO STDOUT (FORMAT binary)",
            Dialect::Postgres.ident(table),
            account.hyphenated()
        );
        let conn = self.conn.as_mut().ok_or_else(|| q(sql.clone())("the connection is closed".into()))?;
        self.rt.block_on(pg_copy_rows(conn, &sql, vec![Type::Uuid], |rows| {
            for r in rows {
                if let Some(Value::Uuid(id)) = r.first() {
                    f(*id);
                }
            }
            true
        }))
    }
}

/// Runs the binary `COPY … TO STDOUT` statement `sql` and hands its rows, decoded as `types`,
/// to `batch` in batches of 1,024 rows or about 1 MiB, whichever comes first (row-state chunks
/// are tens of kilobytes a row); `batch` returning `false` stops the reading.
async fn pg_copy_rows(
    conn: &mut sqlx::PgConnection,
    sql: &str,
    types: Vec<Type>,
    mut batch: impl FnMut(Vec<Vec<Value>>) -> bool,
) -> Result<(), ConnectorError> {
    let mut stream = conn.copy_out_raw(sql).await.map_err(|e| q(sql)(e.to_string()))?;
    let mut decoder = pgcopy::Decoder::new(types);
    let mut rows = Vec::with_capacity(1024);
    let mut bytes_in_batch = 0usize;
    while let Some(bytes) = stream.try_next().await.map_err(|e| q(sql)(e.to_string()))? {
        bytes_in_batch += bytes.len();
        decoder.feed(&bytes, &mut rows).map_err(q(sql))?;
        if (rows.len() >= 1024 || bytes_in_batch >= 1 << 20) && !rows.is_empty() {
            bytes_in_batch = 0;
            if !batch(std::mem::take(&mut rows)) {
                return Ok(());
            }
        }
    }
    if !rows.is_empty() {
        batch(rows);
    }
    Ok(())
}

/// The `SELECT` of an account's row-state chunks of a table on PostgreSQL, in the columns of
/// [`state::head_columns`]: `account` is the account's SQL (a literal or a parameter).
fn pg_state_select(account: &str, table: &str, entries: bool, part: Option<state::Part>) -> String {
    format!(
        "SELECT generation::int8, chunk::int8, kind::int8, xid, n::int8{} FROM {} WHERE account_id = {account} AND table_name = '{}'{}",
        if entries { ", ids, fps" } else { "" },
        state::STATE_TABLE,
        table.replace('\'', "''"),
        state::Part::sql(part)
    )
}

fn pg_value(r: &sqlx::postgres::PgRow, i: usize) -> Result<Value, sqlx::Error> {
    let ty = r.column(i).type_info().name().to_ascii_uppercase();
    Ok(match ty.as_str() {
        "INT2" => r.try_get::<Option<i16>, _>(i)?.map_or(Value::Null, |v| Value::Int(i64::from(v))),
        "INT4" => r.try_get::<Option<i32>, _>(i)?.map_or(Value::Null, |v| Value::Int(i64::from(v))),
        "INT8" => r.try_get::<Option<i64>, _>(i)?.map_or(Value::Null, Value::Int),
        "FLOAT4" => r.try_get::<Option<f32>, _>(i)?.map_or(Value::Null, |v| Value::Float(f64::from(v))),
        "FLOAT8" => r.try_get::<Option<f64>, _>(i)?.map_or(Value::Null, Value::Float),
        "BOOL" => r.try_get::<Option<bool>, _>(i)?.map_or(Value::Null, Value::Bool),
        "BYTEA" => r.try_get::<Option<Vec<u8>>, _>(i)?.map_or(Value::Null, Value::Bytes),
        "DATE" => r.try_get::<Option<Date>, _>(i)?.map_or(Value::Null, Value::Date),
        "UUID" => r.try_get::<Option<Uuid>, _>(i)?.map_or(Value::Null, Value::Uuid),
        _ => r.try_get::<Option<String>, _>(i)?.map_or(Value::Null, Value::Text),
    })
}

impl Source for PgSource {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
    fn table_columns(&mut self, table: &str) -> Result<Vec<String>, ConnectorError> {
        let rows = self
            .rt
            .block_on(
                sqlx::query("SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position")
                    .bind(table.to_lowercase())
                    .fetch_all(&mut self.conn),
            )
            .map_err(|e| q(table)(e.to_string()))?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map(|s| s.to_uppercase()).map_err(|e| q(table)(e.to_string())))
            .collect()
    }
    fn count(&mut self, table: &str) -> Result<u64, ConnectorError> {
        let sql = format!("SELECT COUNT(*) FROM {}", Dialect::Postgres.ident(table));
        let row = self
            .rt
            .block_on(sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(&mut self.conn))
            .map_err(|e| q(format!("counting {table}"))(e.to_string()))?;
        row.try_get::<i64, _>(0).map(|n| n as u64).map_err(|e| q(table)(e.to_string()))
    }
    fn scan(
        &mut self,
        s: &Scan<'_>,
        f: &mut dyn FnMut(&SourceRow) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        let sql = select_sql(Dialect::Postgres, s);
        let stream = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut self.conn);
        stream_rows(&self.rt, stream, s, pg_value, f)
    }
}

/// Hands the rows of a server's query to `f`: fetched in batches inside the runtime and handed
/// over outside it, so that `f` may block (the ledger channel does). `decode` reads column `i`.
pub(crate) fn stream_rows<R>(
    rt: &tokio::runtime::Runtime,
    mut stream: impl futures_util::Stream<Item = Result<R, sqlx::Error>> + Unpin,
    s: &Scan<'_>,
    decode: fn(&R, usize) -> Result<Value, sqlx::Error>,
    f: &mut dyn FnMut(&SourceRow) -> Result<(), ConnectorError>,
) -> Result<(), ConnectorError> {
    let n = s.columns.len();
    let what = || format!("reading {}", s.table);
    loop {
        let batch: Vec<Vec<Value>> = rt.block_on(async {
            let mut batch = Vec::with_capacity(READ_BATCH);
            while batch.len() < READ_BATCH {
                match stream.try_next().await.map_err(|e| q(what())(e.to_string()))? {
                    Some(r) => batch.push(
                        (0..n)
                            .map(|i| decode(&r, i))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|e| q(what())(e.to_string()))?,
                    ),
                    None => break,
                }
            }
            Ok::<_, ConnectorError>(batch)
        })?;
        if batch.is_empty() {
            return Ok(());
        }
        for raw in batch {
            f(&finish_row(raw, s.columns))?;
        }
    }
}

/// Work for the PostgreSQL writer thread, done in order.
enum PgJob {
    Exec(String, Option<Uuid>, mpsc::Sender<Result<u64, ConnectorError>>),
    /// Rows for a `COPY … FROM STDIN`: the statement, whether its format is binary, and the
    /// rows (tuples only: the writer sends a binary stream's header and trailer). Chunks of one
    /// statement that follow each other go into one COPY.
    Copy(String, bool, Vec<u8>),
    Read(String, Vec<(String, Type)>, Option<Uuid>, mpsc::Sender<Result<Vec<Vec<Value>>, ConnectorError>>),
    /// Streams a binary `COPY … TO STDOUT` back as rows of these types, in batches; the
    /// channel closes at the end.
    CopyOut(String, Vec<Type>, mpsc::SyncSender<Result<Vec<Vec<Value>>, ConnectorError>>),
    /// Row-state chunks to compress and COPY, with the transaction id they carry: held until
    /// they make [`STATE_FLUSH`] bytes or a job other than rows comes.
    CopyState(Vec<state::Chunk>, i64),
    /// An upsert run without a reply ([`PgTarget::upsert_rows`]).
    Upsert(Box<UpsertJob>),
    Sync(mpsc::Sender<Result<(), ConnectorError>>),
}

/// An upsert the writer thread runs on its own: the run goes on mapping meanwhile (a final
/// migration upserts its changed rows while it still reads v1), and a failure is kept and
/// reported by the next call that waits for the writer, as a COPY's is.
struct UpsertJob {
    /// Run first: the temporary twin of the table made, and emptied.
    prepare: Vec<String>,
    /// The `COPY` into the twin, and its data.
    copy: String,
    data: Vec<u8>,
    /// The foreign keys the rows must keep: each with a count of the values no parent holds,
    /// and a count of the rows holding them (run only when the first is not zero).
    checks: Vec<(ForeignKey, String, String)>,
    /// The `INSERT … ON CONFLICT` from the twin.
    upsert: String,
}

impl UpsertJob {
    async fn run(self, conn: &mut sqlx::PgConnection) -> Result<(), ConnectorError> {
        for sql in &self.prepare {
            pg_exec(conn, sql, None).await?;
        }
        pg_copy_in(conn, &self.copy, &self.data).await?;
        let count = [("n".to_owned(), Type::Int)];
        for (fk, any, rows) in &self.checks {
            let n = pg_read(conn, any, &count, None).await?;
            if n.first().and_then(|r| r.first()).is_some_and(|n| *n != Value::Int(0)) {
                let n = pg_read(conn, rows, &count, None).await?;
                if let Some(Value::Int(k)) = n.first().and_then(|r| r.first())
                    && *k > 0
                {
                    return Err(broken_key(fk, *k, &format!("would point at no {}", fk.parent_name())));
                }
            }
        }
        pg_exec(conn, &self.upsert, None).await.map(|_| ())
    }
}

/// `k` rows break the foreign key `fk` as `what` says.
fn broken_key(fk: &ForeignKey, k: i64, what: &str) -> ConnectorError {
    let (t, p) = (fk.table_name(), fk.parent_name());
    q(format!("foreign key {t}.{} → {p}.{}", fk.column, fk.parent_column))(format!("{k} rows {what}"))
}

/// A catalog test on `pg_class` (prefixed with the alias where there is one): the relation is
/// in the session's schema, where the run's tables are.
const IN_SCHEMA: &str = "relnamespace = current_schema()::regnamespace";

/// A single-column foreign key of a PostgreSQL v2, as its catalog has it.
#[derive(Debug, Clone)]
struct ForeignKey {
    /// The referencing table's name, and the same schema-qualified and quoted for SQL.
    table: String,
    table_sql: String,
    /// Its column.
    column: String,
    /// The referenced table's name, and the same schema-qualified and quoted for SQL.
    parent: String,
    parent_sql: String,
    /// The referenced column.
    parent_column: String,
    /// Both tables are in the session's schema, where the run's tables are.
    here: bool,
    /// Deleting a parent row deletes or changes the rows pointing at it (`ON DELETE CASCADE`,
    /// `SET NULL`, `SET DEFAULT`), where the per-row checks are on.
    acts: bool,
}

impl ForeignKey {
    /// Whether the run resolved it itself: a lookup answers with rows of the run's own tables,
    /// so a key to a table of another schema is never one, whatever its name.
    fn resolved(&self, trusted: &[Reference]) -> bool {
        self.here && trusted.iter().any(|t| t.is(&self.table, &self.column, &self.parent, &self.parent_column))
    }
    fn table_name(&self) -> &str {
        if self.here { &self.table } else { &self.table_sql }
    }
    fn parent_name(&self) -> &str {
        if self.here { &self.parent } else { &self.parent_sql }
    }
}

/// A PostgreSQL v2 database loaded with COPY. A writer thread owns the connection, so that
/// encoding the next rows overlaps with the server ingesting the previous ones.
#[derive(Debug)]
pub struct PgTarget {
    jobs: Option<mpsc::SyncSender<PgJob>>,
    worker: Option<JoinHandle<()>>,
    copy_sql: String,
    buf: Vec<u8>,
    in_tx: bool,
    /// Per-row foreign-key triggers are off for this session; commit validates instead.
    deferred_keys: bool,
    /// Tables loaded in this transaction.
    loaded: Vec<String>,
    /// The row state being gathered into chunks, and full chunks not yet sent.
    state: state::Builder,
    state_pending: Vec<state::Chunk>,
    /// This transaction's id (64-bit, with epoch): stored with the row state it writes.
    xid: i64,
    /// Constraints and indexes taken off for the load, rebuilt at commit, in rebuild order.
    deferred: Vec<Rebuild>,
    /// Column types of the table being loaded when every one has a binary encoding; text COPY otherwise.
    binary: Option<Vec<PgType>>,
    /// The same for the tables a final migration upserts into, by table.
    upsert_types: HashMap<String, Option<Vec<PgType>>>,
    /// The foreign keys an upsert into a table checks, by table ([`Self::foreign_keys`]).
    upsert_keys: HashMap<String, Vec<ForeignKey>>,
    /// Foreign keys the run resolved itself (see [`Target::trust_references`]): an upsert
    /// does not look their values up.
    trusted: Vec<Reference>,
    /// Whether this transaction wrote row state.
    state_written: bool,
    /// Where it is connected, for a second connection ([`Target::snapshot_reader`]).
    url: SecretUrl,
    /// Whether the transaction sees one snapshot throughout (REPEATABLE READ).
    repeatable: bool,
    /// Tables emptied by this transaction (TRUNCATE): COPY loads them frozen, so nobody has to
    /// set their rows' hint bits (and write every page again) on first read.
    frozen: Vec<String>,
}

/// A key, index or foreign key a first load took off a table, to put back after the load.
#[derive(Debug, Clone)]
struct Rebuild {
    /// The table it is on (its name in the catalog).
    table: String,
    /// A primary key or unique constraint (what a foreign key points at).
    key: bool,
    /// For a single-column foreign key, what it references.
    reference: Option<Reference>,
    /// The statement that puts it back.
    sql: String,
}

/// A connection URL, which may hold a password: shown masked.
struct SecretUrl(String);

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&masked(&self.0))
    }
}

/// The row-state table's column types, as [`state::ddl`] creates them.
const STATE_TYPES: [PgType; 10] = [
    PgType::Uuid,
    PgType::Text,
    PgType::Int4,
    PgType::Int4,
    PgType::Int2,
    PgType::Int8,
    PgType::Int4,
    PgType::Bytea,
    PgType::Bytea,
    PgType::Bytea,
];

/// The fill factor a first load gives the v2 tables it empties (PostgreSQL), unless they have
/// one of their own.
pub const LOAD_FILLFACTOR: u8 = 90;

/// Full row-state chunks sent to the writer thread at a time.
const STATE_SEND: usize = 8;

/// Bytes of encoded row-state rows the writer thread holds before it writes them. Each write
/// ends the COPY of the rows it interrupts, and every COPY costs the server its set-up (its
/// tuple slots, its constraint checks compiled): with a COPY for every 1 MiB of rows and one
/// for every 8,192 rows' state, that set-up was a tenth of the server's work in a load.
const STATE_FLUSH: usize = 8 << 20;

const COPY_CHUNK: usize = 1 << 20;

/// Jobs queued for the PostgreSQL writer thread, most of them [`COPY_CHUNK`] of rows or a few
/// row-state chunks: about 16 MiB ahead of the server. In a load the server's backend stops
/// for its own writes now and then (the fsync of each full WAL segment, the table's next
/// page); with 4 MiB queued the mapping soon stopped too, and the backend then waited for
/// rows (a quarter of its time in `COPY`, `ClientRead`). TPC-H SQLite→PostgreSQL at scale
/// 0.5, alternated: 4 jobs 16.9-18.1 s, 8 jobs 16.2-16.4 s, 16 jobs 15.2-15.4 s, 32 jobs
/// 15.3-16.2 s; peak RSS 114-118, 121, 134 and 160-164 MiB.
const PG_QUEUE: usize = 16;

impl std::fmt::Debug for PgJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgJob")
    }
}

impl PgTarget {
    /// Connects and starts the writer thread.
    pub fn open(url: &str) -> Result<Self, ConnectorError> {
        let (rt, mut conn) = pg_connect(url)?;
        // A scan of a big table starts where the last one of it reported being (synchronized
        // scans), and wraps around: after any full scan of a table, the next begins near its
        // end. Verify meets v2's rows in load order, which a scan keeps only from the first page.
        rt.block_on(sqlx::query("SET synchronize_seqscans = off").execute(&mut conn))
            .map_err(|e| q("SET synchronize_seqscans")(e.to_string()))?;
        let (tx, rx) = mpsc::sync_channel::<PgJob>(PG_QUEUE);
        let worker = std::thread::Builder::new()
            .name("pg-writer".into())
            .spawn(move || {
                // The first COPY error is kept and reported at the next sync point; later work is skipped.
                let mut failed: Option<ConnectorError> = None;
                // Row-state rows not written yet (a binary COPY stream without its trailer).
                let mut state_rows: Vec<u8> = Vec::new();
                // A job a COPY stream received that ended it.
                let mut next: Option<PgJob> = None;
                while let Some(job) = next.take().or_else(|| rx.recv().ok()) {
                    // Whatever else a job does may read or end what the rows went into.
                    if !matches!(job, PgJob::Copy(..) | PgJob::CopyState(..)) && !state_rows.is_empty() {
                        if failed.is_none()
                            && let Err(e) = rt.block_on(pg_copy_state(&mut conn, &mut state_rows))
                        {
                            failed = Some(e);
                        }
                        state_rows.clear();
                    }
                    match job {
                        PgJob::Copy(stmt, binary, data) => {
                            if failed.is_none() {
                                let (ended_by, copied) =
                                    rt.block_on(pg_copy_stream(&mut conn, &stmt, binary, data, &rx, &mut state_rows));
                                next = ended_by;
                                failed = copied.err();
                            }
                        }
                        PgJob::Exec(sql, id, reply) => {
                            let r = match failed.take() {
                                Some(e) => Err(e),
                                None => rt.block_on(pg_exec(&mut conn, &sql, id)),
                            };
                            let _ = reply.send(r);
                        }
                        PgJob::Read(sql, cols, id, reply) => {
                            // A write's failure first: the transaction is aborted, and the
                            // read would only say so.
                            let _ = reply.send(match failed.take() {
                                Some(e) => Err(e),
                                None => rt.block_on(pg_read(&mut conn, &sql, &cols, id)),
                            });
                        }
                        PgJob::Upsert(job) => {
                            if failed.is_none()
                                && let Err(e) = rt.block_on(job.run(&mut conn))
                            {
                                failed = Some(e);
                            }
                        }
                        PgJob::CopyOut(sql, types, reply) => {
                            if let Some(e) = failed.take() {
                                let _ = reply.send(Err(e));
                                continue;
                            }
                            let read = rt
                                .block_on(pg_copy_rows(&mut conn, &sql, types, |batch| reply.send(Ok(batch)).is_ok()));
                            if let Err(e) = read {
                                let _ = reply.send(Err(e));
                            }
                        }
                        PgJob::CopyState(chunks, xid) => {
                            if failed.is_none() {
                                let mut written = encode_state(&mut state_rows, chunks, xid);
                                if written.is_ok() && state_rows.len() >= STATE_FLUSH {
                                    written = rt.block_on(pg_copy_state(&mut conn, &mut state_rows));
                                }
                                failed = written.err();
                            }
                        }
                        PgJob::Sync(reply) => {
                            let _ = reply.send(failed.take().map_or(Ok(()), Err));
                        }
                    }
                }
                let _ = rt.block_on(conn.close());
            })
            .map_err(|e| ConnectorError::Open { what: "writer thread".into(), reason: e.to_string() })?;
        Ok(Self {
            jobs: Some(tx),
            worker: Some(worker),
            copy_sql: String::new(),
            buf: Vec::with_capacity(COPY_CHUNK + 4096),
            in_tx: false,
            deferred_keys: false,
            loaded: Vec::new(),
            state: state::Builder::new(1),
            state_pending: Vec::new(),
            xid: 0,
            frozen: Vec::new(),
            deferred: Vec::new(),
            binary: None,
            upsert_types: HashMap::new(),
            upsert_keys: HashMap::new(),
            trusted: Vec::new(),
            state_written: false,
            url: SecretUrl(url.to_owned()),
            repeatable: false,
        })
    }

    /// Fresh statistics for the tables just loaded, each `(name, what ANALYZE takes)`: without
    /// them the planner takes the tables for small, and the preview and final migration read
    /// rows by id with full scans. Taken after the commit, on this connection and a second one
    /// at the same time, the tables split between them by what each samples: in the load's
    /// transaction no other connection could see the rows, and one table was sampled after the
    /// other with a core idle (TPC-H at scale 0.5: 0.79-0.90 s at the end of the load, now
    /// 0.54-0.55 s). The rows are committed whatever becomes of it: a failure is a warning,
    /// and PostgreSQL's autovacuum analyzes the tables later.
    fn analyze(&self, tables: &[(String, String)]) {
        let started = std::time::Instant::now();
        let names: Vec<String> = tables.iter().map(|(t, _)| format!("'{}'", t.replace('\'', "''"))).collect();
        let sizes = self
            .query(
                // ANALYZE reads a sample of 300 pages per unit of statistics target (30,000 by
                // default), whatever the table's size past that.
                &format!(
                    "SELECT LEAST(COALESCE(pg_relation_size(to_regclass(quote_ident(t))), 0) / 8192, \
                     300 * current_setting('default_statistics_target')::int) \
                     FROM unnest(ARRAY[{}]::text[]) t",
                    names.join(", ")
                ),
                &[("size".to_owned(), Type::Int)],
                None,
            )
            .unwrap_or_else(|e| {
                // Every table is still analyzed, split between the connections by count alone.
                tracing::debug!(error = %e, "the loaded tables' sizes could not be read");
                Vec::new()
            });
        let size = |i: usize| match sizes.get(i).and_then(|r| r.first()) {
            Some(Value::Int(n)) => *n,
            _ => 0,
        };
        // The biggest samples first, each to the connection with less to sample so far.
        let mut order: Vec<usize> = (0..tables.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(size(i)));
        let (mut here, mut there, mut loads) = (Vec::new(), Vec::new(), (0i64, 0i64));
        for i in order {
            if loads.0 <= loads.1 {
                loads.0 += size(i);
                here.push(tables[i].1.clone());
            } else {
                loads.1 += size(i);
                there.push(tables[i].1.clone());
            }
        }
        let url = self.url.0.clone();
        let second = (!there.is_empty()).then(|| {
            std::thread::spawn(move || -> Result<(), ConnectorError> {
                let sql = format!("ANALYZE {}", there.join(", "));
                let (rt, mut conn) = pg_connect(&url)?;
                let done = rt.block_on(pg_exec(&mut conn, &sql, None)).map(|_| ());
                let _ = rt.block_on(conn.close());
                done
            })
        });
        let mut failed = Vec::new();
        if !here.is_empty()
            && let Err(e) = self.exec(&format!("ANALYZE {}", here.join(", ")), None)
        {
            failed.push(e.to_string());
        }
        match second.map(|h| h.join()) {
            Some(Ok(Err(e))) => failed.push(e.to_string()),
            Some(Err(_)) => failed.push("its thread stopped".into()),
            _ => {}
        }
        for e in failed {
            tracing::warn!(error = %e, "the loaded tables have no fresh statistics yet (autovacuum takes them later)");
        }
        tracing::debug!(ms = started.elapsed().as_millis() as u64, "analyzed the loaded tables");
    }

    fn send(&self, job: PgJob) -> Result<(), ConnectorError> {
        let gone = || q("PostgreSQL writer")("the writer thread stopped".into());
        self.jobs.as_ref().ok_or_else(gone)?.send(job).map_err(|_| gone())
    }

    fn exec(&self, sql: &str, id: Option<Uuid>) -> Result<u64, ConnectorError> {
        let (tx, rx) = mpsc::channel();
        self.send(PgJob::Exec(sql.to_owned(), id, tx))?;
        rx.recv().map_err(|_| q(sql)("the writer thread stopped".into()))?
    }

    fn flush(&mut self) -> Result<(), ConnectorError> {
        if !self.buf.is_empty() {
            let data = std::mem::replace(&mut self.buf, Vec::with_capacity(COPY_CHUNK + 4096));
            self.send(PgJob::Copy(self.copy_sql.clone(), self.binary.is_some(), data))?;
        }
        self.flush_state(false)
    }

    /// Sends the full row-state chunks; with `all`, the one being filled too.
    fn flush_state(&mut self, all: bool) -> Result<(), ConnectorError> {
        if all {
            self.state_pending.extend(self.state.take());
        }
        if !self.state_pending.is_empty() && (all || self.state_pending.len() >= STATE_SEND) {
            self.state_written = true;
            let chunks = std::mem::take(&mut self.state_pending);
            let xid = self.xid;
            self.send(PgJob::CopyState(chunks, xid))?;
        }
        Ok(())
    }

    /// [`Target::scan_state`], or one part of it.
    fn scan_state_in(
        &mut self,
        account: Uuid,
        table: &str,
        entries: bool,
        part: Option<state::Part>,
        f: &mut dyn FnMut(ChunkHead) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        let select = pg_state_select(&format!("'{}'", account.hyphenated()), table, entries, part);
        let types = state::head_columns(entries).into_iter().map(|c| c.1).collect();
        self.copy_out(&select, types, &mut |row| {
            let head =
                ChunkHead::from_row(row).ok_or_else(|| q("reading the row state")("a chunk is malformed".into()))?;
            f(head)
        })
    }

    /// Streams the rows of a `SELECT` (its columns cast with [`pgcopy::cast_for`]) through a
    /// binary `COPY … TO STDOUT`: the server sends values as bytes, which decode without parsing.
    fn copy_out(
        &mut self,
        select: &str,
        types: Vec<Type>,
        f: &mut dyn FnMut(Vec<Value>) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        self.flush()?;
        let (tx, rx) = mpsc::sync_channel(2);
        self.send(PgJob::CopyOut(format!("COPY ({select}) TO STDOUT (FORMAT binary)"), types, tx))?;
        for batch in rx {
            for row in batch? {
                f(row)?;
            }
        }
        Ok(())
    }

    /// The binary encodings of a table's columns, if every one has one.
    fn binary_types(&self, table: &str, columns: &[String]) -> Result<Option<Vec<PgType>>, ConnectorError> {
        let sql = format!(
            "SELECT a.attname::text, t.typname::text FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = '{}'::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            Dialect::Postgres.ident(table).replace('\'', "''")
        );
        let rows = self.query(&sql, &[("n".to_owned(), Type::Text), ("t".to_owned(), Type::Text)], None)?;
        let types: std::collections::HashMap<String, PgType> = rows
            .iter()
            .filter_map(|r| match r.as_slice() {
                [Value::Text(n), Value::Text(t)] => PgType::from_typname(t).map(|ty| (n.to_lowercase(), ty)),
                _ => None,
            })
            .collect();
        Ok(columns.iter().map(|c| types.get(&c.to_lowercase()).copied()).collect())
    }

    /// Single-column foreign keys whose child (or, with `parents`, whose parent) is one of
    /// `tables` of the session's schema; the other side may be in any schema.
    fn foreign_keys(&self, tables: &[String], parents: bool) -> Result<Vec<ForeignKey>, ConnectorError> {
        let names: Vec<String> = tables.iter().map(|t| format!("'{}'", t.to_lowercase().replace('\'', ""))).collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let side = if parents { "pl" } else { "cl" };
        let sql = format!(
            "SELECT cl.relname::text, quote_ident(cn.nspname) || '.' || quote_ident(cl.relname), a.attname::text, \
             pl.relname::text, quote_ident(pn.nspname) || '.' || quote_ident(pl.relname), pa.attname::text, \
             (cl.{IN_SCHEMA} AND pl.{IN_SCHEMA})::text, \
             (c.confdeltype IN ('c', 'n', 'd'))::text \
             FROM pg_constraint c \
             JOIN pg_class cl ON cl.oid = c.conrelid JOIN pg_namespace cn ON cn.oid = cl.relnamespace \
             JOIN pg_class pl ON pl.oid = c.confrelid JOIN pg_namespace pn ON pn.oid = pl.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
             JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1] \
             WHERE c.contype = 'f' AND cardinality(c.conkey) = 1 \
             AND {side}.{IN_SCHEMA} AND {side}.relname IN ({})",
            names.join(", ")
        );
        let cols: Vec<(String, Type)> =
            ["t", "ts", "c", "p", "ps", "pc", "here", "acts"].iter().map(|n| ((*n).to_owned(), Type::Text)).collect();
        Ok(self
            .query(&sql, &cols, None)?
            .into_iter()
            .filter_map(|r| match r.as_slice() {
                [
                    Value::Text(t),
                    Value::Text(ts),
                    Value::Text(c),
                    Value::Text(p),
                    Value::Text(ps),
                    Value::Text(pc),
                    Value::Text(here),
                    Value::Text(acts),
                ] => Some(ForeignKey {
                    table: t.clone(),
                    table_sql: ts.clone(),
                    column: c.clone(),
                    parent: p.clone(),
                    parent_sql: ps.clone(),
                    parent_column: pc.clone(),
                    here: here == "true",
                    acts: acts == "true",
                }),
                _ => None,
            })
            .collect())
    }

    /// Fails when `sql` (a count) finds rows: they break the foreign key named.
    fn expect_none(&self, sql: &str, fk: &ForeignKey, id: Option<Uuid>, what: &str) -> Result<(), ConnectorError> {
        let n = self.query(sql, &[("n".to_owned(), Type::Int)], id)?;
        if let Some(Value::Int(k)) = n.first().and_then(|r| r.first())
            && *k > 0
        {
            return Err(broken_key(fk, *k, what));
        }
        Ok(())
    }

    fn validate_keys(&mut self, account: Option<Uuid>) -> Result<(), ConnectorError> {
        let fks = self.foreign_keys(&self.loaded.clone(), false)?;
        let d = Dialect::Postgres;
        for fk in fks {
            let (c, pc) = (d.ident(&fk.column), d.ident(&fk.parent_column));
            let scope = if account.is_some() { "x.account_id = $1 AND " } else { "" };
            let check = format!(
                "SELECT COUNT(*)::bigint FROM {} x WHERE {scope}x.{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {} y WHERE y.{pc} = x.{c})",
                fk.table_sql, fk.parent_sql,
            );
            self.expect_none(&check, &fk, account, &format!("point at no {}", fk.parent_name()))?;
        }
        Ok(())
    }

    fn query(&self, sql: &str, cols: &[(String, Type)], id: Option<Uuid>) -> Result<Vec<Vec<Value>>, ConnectorError> {
        let (tx, rx) = mpsc::channel();
        self.send(PgJob::Read(sql.to_owned(), cols.to_vec(), id, tx))?;
        rx.recv().map_err(|_| q(sql)("the writer thread stopped".into()))?
    }

    fn sync(&self) -> Result<(), ConnectorError> {
        let (tx, rx) = mpsc::channel();
        self.send(PgJob::Sync(tx))?;
        rx.recv().map_err(|_| q("PostgreSQL writer")("the writer thread stopped".into()))?
    }
}

/// Appends a value in COPY text format.
fn copy_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => buf.extend_from_slice(b"\\N"),
        Value::Bool(b) => buf.push(if *b { b't' } else { b'f' }),
        Value::Int(i) => push_int(buf, *i),
        Value::Float(f) => {
            let _ = write!(StrBuf(buf), "{f}");
        }
        Value::Text(s) => {
            // Runs without a byte COPY escapes are copied at once.
            let bytes = s.as_bytes();
            let mut plain = 0;
            for (i, &b) in bytes.iter().enumerate() {
                let esc: &[u8] = match b {
                    b'\\' => b"\\\\",
                    b'\t' => b"\\t",
                    b'\n' => b"\\n",
                    b'\r' => b"\\r",
                    _ => continue,
                };
                buf.extend_from_slice(&bytes[plain..i]);
                buf.extend_from_slice(esc);
                plain = i + 1;
            }
            buf.extend_from_slice(&bytes[plain..]);
        }
        Value::Date(d) => push_date(buf, *d),
        Value::Bytes(b) => {
            buf.extend_from_slice(b"\\\\x");
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for &x in b {
                buf.push(HEX[(x >> 4) as usize]);
                buf.push(HEX[(x & 15) as usize]);
            }
        }
        Value::Uuid(u) => {
            let mut tmp = [0u8; 36];
            buf.extend_from_slice(u.hyphenated().encode_lower(&mut tmp).as_bytes());
        }
    }
}

/// A date as `YYYY-MM-DD` (as its `Display` writes it), without the formatting machinery.
fn push_date(buf: &mut Vec<u8>, d: Date) {
    let y = d.year();
    if (0..=9999).contains(&y) {
        push_digits(buf, y as u32, 4);
        buf.push(b'-');
        push_digits(buf, u32::from(u8::from(d.month())), 2);
        buf.push(b'-');
        push_digits(buf, u32::from(d.day()), 2);
    } else {
        let _ = write!(StrBuf(buf), "{d}");
    }
}

/// Decimal digits of an integer, without a heap allocation per value.
fn push_int(buf: &mut Vec<u8>, i: i64) {
    let mut tmp = [0u8; 20];
    let mut n = i.unsigned_abs();
    let mut at = tmp.len();
    loop {
        at -= 1;
        tmp[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        buf.push(b'-');
    }
    buf.extend_from_slice(&tmp[at..]);
}

/// `n` as exactly `width` digits, zero-padded.
fn push_digits(buf: &mut Vec<u8>, n: u32, width: u32) {
    for p in (0..width).rev() {
        buf.push(b'0' + ((n / 10u32.pow(p)) % 10) as u8);
    }
}

struct StrBuf<'a>(&'a mut Vec<u8>);
impl std::fmt::Write for StrBuf<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

impl Target for PgTarget {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
    fn ensure_schema(&mut self, v2: &Schema) -> Result<bool, ConnectorError> {
        let Some(first) = v2.tables.first() else { return Ok(false) };
        let sql = format!(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '{}'",
            first.name.to_lowercase().replace('\'', "")
        );
        if self.exec(&sql, None)? > 0 {
            return Ok(false);
        }
        self.exec("BEGIN", None)?;
        for s in &v2.statements {
            if let Err(e) = self.exec(&Dialect::Postgres.ddl(s), None) {
                let _ = self.exec("ROLLBACK", None);
                return Err(e);
            }
        }
        self.exec("COMMIT", None)?;
        Ok(true)
    }
    fn begin(&mut self) -> Result<(), ConnectorError> {
        self.begin_with("BEGIN")
    }
    fn begin_consistent(&mut self) -> Result<(), ConnectorError> {
        self.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ")
    }
    fn begin_snapshot(&mut self) -> Result<bool, ConnectorError> {
        self.flush()?;
        self.exec("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", None)?;
        self.in_tx = true;
        self.repeatable = true;
        // The snapshot is the first statement's: taken now, not at the caller's first read.
        self.query("SELECT 1::bigint", &[("one".to_owned(), Type::Int)], None)?;
        Ok(true)
    }
    fn change_stamp(&mut self) -> Result<Option<String>, ConnectorError> {
        // Every transaction that writes a row takes a transaction id first. A snapshot is the
        // id after the newest finished one (xmax) and the ids below it still in progress: a
        // commit either raises xmax or takes its id out of that list, so two alike snapshots
        // see the same committed transactions, hence the same rows, in every database of the
        // server. Cluster-wide, so any write anywhere on the server (another database's
        // included) makes the stamps differ; the account's rows are then counted again instead
        // (`unchanged_since`). A restored older copy of the server, which could reach the same
        // ids with other rows, was started since: the server's start time tells it (and another
        // server) apart, with no privilege the control file's functions would ask. Not the last
        // checkpoint's position, which a checkpoint with nothing to write also moves.
        self.flush()?;
        let rows = self.query(
            "SELECT concat_ws(':', 'postgres', extract(epoch FROM pg_postmaster_start_time()), \
             (SELECT oid FROM pg_database WHERE datname = current_database()), txid_current_snapshot())",
            &[("stamp".to_owned(), Type::Text)],
            None,
        )?;
        match rows.first().and_then(|r| r.first()) {
            Some(Value::Text(stamp)) => Ok(Some(stamp.clone())),
            _ => Ok(None),
        }
    }
    fn unchanged_since(
        &mut self,
        then: &str,
        now: &str,
        account: Uuid,
        census: &Census,
    ) -> Result<bool, ConnectorError> {
        // The stamp moves with any write on the server; the account's rows need not have. A row
        // version the snapshot of `then` did not see was written by a transaction that was in
        // progress then or began after: its id is at least that snapshot's xmin, the oldest
        // transaction then in progress (a subtransaction's id is above its parent's, so rows a
        // savepoint wrote count too). So when no row of the account now has an xmin that
        // recent, every row now is a version `then` saw, and as many rows as then means no row
        // `then` saw is gone: the very rows, so the same preview. A row written before `then`
        // by a transaction that began after the oldest then in progress only makes the check
        // fail, never pass.
        self.flush()?;
        let (Some(then), Some(now)) = (PgStamp::parse(then), PgStamp::parse(now)) else { return Ok(false) };
        // A restored or another server, another database; or ids too far apart for xmin's 32
        // bits to compare.
        if then.server != now.server || now.xmax < then.xmin || now.xmax - then.xmin >= (1i64 << 31) - 1_000_000 {
            return Ok(false);
        }
        // xmin is the 32 bits of the id: recent when at most 2^31 ids after `then`'s xmin, which
        // every id given out since is (checked above); an older row read so only fails the
        // check. Rows the runs wrote, nearly all, are told apart first by the cheaper test
        // (TPC-H's 3 M order lines: 0.22 s a scan, against 0.33 s with the arithmetic on every
        // row and 0.38 s with age()).
        let recent = format!(
            "{}(xmin::text::bigint - {} + 4294967296) % 4294967296 < 2147483648",
            if census.runs.is_empty() { String::new() } else { format!("{} AND ", xmin_not_of(&census.runs)) },
            then.xmin & 0xffff_ffff
        );
        let d = Dialect::Postgres;
        let counts = [("n".to_owned(), Type::Int), ("recent".to_owned(), Type::Int)];
        let mut checks: Vec<(String, u64)> = census
            .rows
            .iter()
            .map(|(table, n)| {
                let sql = format!(
                    "SELECT count(*)::bigint, (count(*) FILTER (WHERE {recent}))::bigint FROM {} WHERE account_id = $1",
                    d.ident(table)
                );
                (sql, *n)
            })
            .collect();
        let tables: Vec<String> = census.rows.keys().map(|t| format!("'{}'", t.replace('\'', "''"))).collect();
        checks.push((
            format!(
                "SELECT count(*)::bigint, (count(*) FILTER (WHERE {recent}))::bigint FROM {} \
                 WHERE account_id = $1 AND table_name IN ({})",
                state::STATE_TABLE,
                if tables.is_empty() { "NULL".to_owned() } else { tables.join(", ") }
            ),
            census.state_chunks,
        ));
        for (sql, then_n) in checks {
            let rows = self.query(&sql, &counts, Some(account))?;
            let Some([Value::Int(n), Value::Int(recent)]) = rows.first().map(Vec::as_slice) else { return Ok(false) };
            if u64::try_from(*n).ok() != Some(then_n) || *recent != 0 {
                tracing::debug!(statement = %sql, then = then_n, now = n, recent, "v2 changed since the preview");
                return Ok(false);
            }
        }
        Ok(true)
    }
    fn exec_with_uuid(&mut self, sql: &str, id: Uuid) -> Result<u64, ConnectorError> {
        self.flush()?;
        self.exec(sql, Some(id))
    }
    fn start_table(&mut self, table: &str, columns: &[String]) -> Result<(), ConnectorError> {
        self.flush()?;
        self.add_trusted_keys(table)?;
        let d = Dialect::Postgres;
        let cols: Vec<String> = columns.iter().map(|c| d.ident(c)).collect();
        self.binary = self.binary_types(table, columns)?;
        let freeze = self.frozen.iter().any(|t| t.eq_ignore_ascii_case(table));
        let format = match (self.binary.is_some(), freeze) {
            (true, true) => " (FORMAT binary, FREEZE)",
            (true, false) => " (FORMAT binary)",
            (false, true) => " (FREEZE)",
            (false, false) => "",
        };
        self.copy_sql = format!("COPY {} ({}) FROM STDIN{format}", d.ident(table), cols.join(", "));
        if !self.loaded.iter().any(|t| t == table) {
            self.loaded.push(table.to_owned());
        }
        Ok(())
    }
    fn write_row(&mut self, row: &[Value]) -> Result<(), ConnectorError> {
        match &self.binary {
            Some(types) => pgcopy::write_tuple(&mut self.buf, row, types)
                .map_err(|e| q("binary COPY")(format!("{e} in {}", describe_row(row))))?,
            None => copy_row(&mut self.buf, row),
        }
        if self.buf.len() >= COPY_CHUNK {
            self.flush()?;
        }
        Ok(())
    }
    fn finish_table(&mut self) -> Result<(), ConnectorError> {
        self.flush()?;
        self.flush_state(true)?;
        self.sync()
    }
    fn commit(&mut self) -> Result<(), ConnectorError> {
        self.flush()?;
        self.flush_state(true)?;
        self.sync()?;
        if !self.deferred.is_empty() {
            // Keys and indexes are built from the loaded rows; adding each foreign key validates
            // every row set-based, so the per-row triggers were never needed.
            for r in std::mem::take(&mut self.deferred) {
                self.rebuild(&r)?;
            }
        } else if self.deferred_keys {
            // Deletes of earlier rows skipped the triggers too: check every row of the loaded tables.
            self.validate_keys(None)?;
        }
        let mut analyze: Vec<(String, String)> =
            self.loaded.iter().map(|t| (t.clone(), Dialect::Postgres.ident(t))).collect();
        if self.state_written {
            // Its key only: sampling the byte columns would read every chunk.
            let t = state::STATE_TABLE;
            analyze.push((t.to_owned(), format!("{t} (account_id, table_name, generation, chunk)")));
        }
        self.state_written = false;
        self.exec("COMMIT", None)?;
        self.in_tx = false;
        if !analyze.is_empty() {
            self.analyze(&analyze);
        }
        // Learned again in the next transaction: the schema may change between them.
        self.upsert_types.clear();
        self.upsert_keys.clear();
        self.trusted.clear();
        self.reset_role();
        Ok(())
    }
    fn rollback(&mut self) -> Result<(), ConnectorError> {
        self.buf.clear();
        self.state = state::Builder::new(self.state.generation());
        self.state_pending.clear();
        self.binary = None;
        self.state_written = false;
        self.upsert_types.clear();
        self.upsert_keys.clear();
        self.trusted.clear();
        // The drops were part of the transaction: rolling back restores them.
        self.deferred.clear();
        let _ = self.sync();
        if self.in_tx {
            self.in_tx = false;
            self.exec("ROLLBACK", None)?;
        }
        self.reset_role();
        Ok(())
    }
    fn exec_sql(&mut self, sql: &str) -> Result<u64, ConnectorError> {
        self.flush()?;
        self.exec(sql, None)
    }
    fn trust_references(&mut self, refs: &[Reference]) {
        self.trusted = refs.to_vec();
    }
    fn defer_constraints(&mut self, tables: &[&str]) -> Result<bool, ConnectorError> {
        let mut names: Vec<String> = tables.iter().map(|t| t.to_lowercase()).collect();
        names.sort();
        names.dedup();
        let d = Dialect::Postgres;
        // Locked before looking: nobody can add a row between the look and what follows.
        let all: Vec<String> = names.iter().map(|t| d.ident(t)).collect();
        self.exec(&format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", all.join(", ")), None)?;
        // Any row left (another account's) keeps every index: the load then maintains them.
        let probe: Vec<String> = names.iter().map(|t| format!("EXISTS (SELECT 1 FROM {})", d.ident(t))).collect();
        let any =
            self.query(&format!("SELECT ({})::text", probe.join(" OR ")), &[("any".to_owned(), Type::Text)], None)?;
        if !matches!(any.first().and_then(|r| r.first()), Some(Value::Text(t)) if t == "false") {
            return Ok(false);
        }
        let list: Vec<String> = names.iter().map(|t| format!("'{}'", t.replace('\'', ""))).collect();
        let set = format!("SELECT oid FROM pg_class WHERE {IN_SCHEMA} AND relname IN ({})", list.join(", "));
        let text = |n: &str| (n.to_owned(), Type::Text);
        // Constraints on the tables, and foreign keys elsewhere that point at them. A table of
        // another schema has no name in the last four columns: a key to or from it is never
        // one the run resolved (a lookup answers with rows of this schema's tables).
        let cons = self.query(
            &format!(
                "SELECT conrelid::regclass::text, quote_ident(conname), pg_get_constraintdef(oid), contype::text, \
                 coalesce((SELECT relname::text FROM pg_class WHERE oid = conrelid AND {IN_SCHEMA}), ''), \
                 coalesce((SELECT attname::text FROM pg_attribute WHERE attrelid = conrelid AND attnum = conkey[1] \
                   AND contype = 'f' AND cardinality(conkey) = 1), ''), \
                 coalesce((SELECT relname::text FROM pg_class WHERE oid = confrelid AND {IN_SCHEMA}), ''), \
                 coalesce((SELECT attname::text FROM pg_attribute WHERE attrelid = confrelid AND attnum = confkey[1] \
                   AND contype = 'f' AND cardinality(confkey) = 1), '') \
                 FROM pg_constraint WHERE contype IN ('p', 'u', 'f') \
                 AND (conrelid IN ({set}) OR (contype = 'f' AND confrelid IN ({set}))) ORDER BY conrelid, conname"
            ),
            &[text("t"), text("n"), text("def"), text("k"), text("rel"), text("c"), text("p"), text("pc")],
            None,
        )?;
        let idx = self.query(
            &format!(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), \
                 (SELECT relname::text FROM pg_class WHERE oid = i.indrelid) FROM pg_index i \
                 WHERE i.indrelid IN ({set}) AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) \
                 ORDER BY 1"
            ),
            &[text("n"), text("def"), text("rel")],
            None,
        )?;
        let mut drops = Vec::new();
        let (mut keys, mut fks, mut indexes) = (Vec::new(), Vec::new(), Vec::new());
        for r in &cons {
            let [
                Value::Text(t),
                Value::Text(n),
                Value::Text(def),
                Value::Text(k),
                Value::Text(rel),
                Value::Text(c),
                Value::Text(p),
                Value::Text(pc),
            ] = r.as_slice()
            else {
                continue;
            };
            let sql = format!("ALTER TABLE {t} ADD CONSTRAINT {n} {def}");
            let drop = format!("ALTER TABLE {t} DROP CONSTRAINT {n}");
            let reference = (!rel.is_empty() && !c.is_empty() && !p.is_empty() && !pc.is_empty()).then(|| Reference {
                table: rel.clone(),
                column: c.clone(),
                parent: p.clone(),
                parent_column: pc.clone(),
            });
            if k == "f" {
                drops.insert(0, drop);
                fks.push(Rebuild { table: rel.clone(), key: false, reference, sql });
            } else {
                drops.push(drop);
                keys.push(Rebuild { table: rel.clone(), key: true, reference: None, sql });
            }
        }
        for r in &idx {
            let [Value::Text(n), Value::Text(def), Value::Text(rel)] = r.as_slice() else { continue };
            drops.push(format!("DROP INDEX {n}"));
            indexes.push(Rebuild { table: rel.clone(), key: false, reference: None, sql: def.clone() });
        }
        for stmt in &drops {
            self.exec(stmt, None)?;
        }
        // Empty, locked, without keys: emptied in this transaction, they load frozen.
        self.exec(&format!("TRUNCATE {}", all.join(", ")), None)?;
        self.frozen = names.clone();
        // A tenth of every page left free, unless the table has a fill factor of its own: the
        // final migration's rewrites then stay on their page and leave the indexes alone (HOT
        // updates; 2.5x faster for TPC-H's order lines, half the WAL). Part of this transaction.
        let plain = self.query(
            &format!(
                "SELECT quote_ident(relname) FROM pg_class WHERE oid IN ({set}) \
                 AND NOT EXISTS (SELECT 1 FROM unnest(reloptions) o WHERE o LIKE 'fillfactor=%') ORDER BY 1"
            ),
            &[text("t")],
            None,
        )?;
        for r in &plain {
            if let [Value::Text(t)] = r.as_slice() {
                self.exec(&format!("ALTER TABLE {t} SET (fillfactor = {LOAD_FILLFACTOR})"), None)?;
            }
        }
        // Index builds sort in memory up to this much; the server's default is small.
        self.exec("SET LOCAL maintenance_work_mem = '1GB'", None)?;
        self.deferred = keys.into_iter().chain(indexes).chain(fks).collect();
        Ok(true)
    }
    fn ensure_state_table(&mut self) -> Result<(), ConnectorError> {
        let exists = format!(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '{}'",
            state::STATE_TABLE
        );
        if self.exec(&exists, None)? > 0 {
            return Ok(());
        }
        for sql in state::ddl(Dialect::Postgres) {
            self.exec(&sql, None)?;
        }
        Ok(())
    }
    fn write_state(&mut self, e: &StateEntry<'_>) -> Result<(), ConnectorError> {
        if let Some(c) = self.state.push(e) {
            self.state_pending.push(c);
            self.flush_state(false)?;
        }
        Ok(())
    }
    fn write_state_deleted(&mut self, account: Uuid, table: &str, ids: &[Uuid]) -> Result<(), ConnectorError> {
        let chunks = self.state.deleted(account, table, ids);
        self.state_pending.extend(chunks);
        self.flush_state(true)
    }
    fn set_state_generation(&mut self, generation: i32) {
        self.state.set_generation(generation);
    }
    fn scan_state(
        &mut self,
        account: Uuid,
        table: &str,
        entries: bool,
        f: &mut dyn FnMut(ChunkHead) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        self.scan_state_in(account, table, entries, None, f)
    }
    fn scan_state_part(
        &mut self,
        account: Uuid,
        table: &str,
        part: state::Part,
        f: &mut dyn FnMut(ChunkHead) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        self.scan_state_in(account, table, true, Some(part), f)
    }
    fn read_state_loaded(
        &mut self,
        account: Uuid,
        table: &str,
        chunks: &[state::ChunkId],
    ) -> Result<state::LoadedChunks, ConnectorError> {
        let cols =
            [("generation".to_owned(), Type::Int), ("chunk".to_owned(), Type::Int), ("loaded".to_owned(), Type::Bytes)];
        let mut out = Vec::new();
        for part in chunks.chunks(200) {
            let list: Vec<String> = part.iter().map(|(g, c)| format!("({g}, {c})")).collect();
            let sql = format!(
                "SELECT generation, chunk, loaded FROM {} WHERE account_id = $1 AND table_name = '{}' AND (generation, chunk) IN ({})",
                state::STATE_TABLE,
                table.replace('\'', "''"),
                list.join(", ")
            );
            for r in self.query(&sql, &cols, Some(account))? {
                if let [Value::Int(g), Value::Int(c), Value::Bytes(b)] = r.as_slice() {
                    let key = (i32::try_from(*g).unwrap_or(-1), i32::try_from(*c).unwrap_or(-1));
                    out.push((key, b.clone()));
                }
            }
        }
        Ok(out)
    }
    fn count_written_since(
        &mut self,
        table: &str,
        account: Uuid,
        xids: &[i64],
    ) -> Result<Option<(u64, u64)>, ConnectorError> {
        let Some(others) = self.written_since(xids)? else { return Ok(None) };
        let counts = self.query(
            &format!(
                "SELECT count(*)::bigint, (count(*) FILTER (WHERE {others}))::bigint FROM {} WHERE account_id = $1",
                Dialect::Postgres.ident(table)
            ),
            &[("n".to_owned(), Type::Int), ("w".to_owned(), Type::Int)],
            Some(account),
        )?;
        Ok(match counts.first().map(Vec::as_slice) {
            Some([Value::Int(n), Value::Int(w)]) => {
                Some((u64::try_from(*n).unwrap_or(0), u64::try_from(*w).unwrap_or(0)))
            }
            _ => None,
        })
    }
    fn scan_written_since(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Uuid,
        xids: &[i64],
        f: &mut dyn FnMut(Vec<Value>) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        let d = Dialect::Postgres;
        let Some(others) = self.written_since(xids)? else {
            return Err(q(format!("reading the rows of {table} written since"))(
                "the runs are too far back to tell".into(),
            ));
        };
        let cols: Vec<String> =
            columns.iter().map(|(c, ty)| format!("{}::{}", d.ident(c), pgcopy::cast_for(*ty))).collect();
        let select = format!(
            "SELECT {} FROM {} WHERE account_id = '{}' AND {others}",
            cols.join(", "),
            d.ident(table),
            account.hyphenated()
        );
        self.copy_out(&select, columns.iter().map(|c| c.1).collect(), f)
    }
    fn upsert_rows(
        &mut self,
        table: &str,
        columns: &[String],
        conflict: &[&str],
        rows: &[Vec<Value>],
    ) -> Result<(), ConnectorError> {
        if rows.is_empty() {
            return Ok(());
        }
        // COPY into a temporary twin of the table, then one INSERT … ON CONFLICT from it, all
        // on the writer thread without a reply: the caller goes on (a final migration maps the
        // rest of v1 meanwhile), and a failure comes back from the next call that waits.
        let d = Dialect::Postgres;
        let tmp = format!("cutover_up_{}", table.to_lowercase());
        self.flush()?;
        let cols: Vec<String> = columns.iter().map(|c| d.ident(c)).collect();
        // Binary where every column has an encoding and every value fits it: the server then
        // parses no UUID, date or number (TPC-H's order lines: 25 ms a batch against 63).
        let types = match self.upsert_types.get(table) {
            Some(t) => t.clone(),
            None => {
                let t = self.binary_types(table, columns)?;
                self.upsert_types.insert(table.to_owned(), t.clone());
                t
            }
        };
        let mut data = Vec::new();
        let binary = types.is_some_and(|types| rows.iter().all(|r| pgcopy::write_row(&mut data, r, &types).is_ok()));
        let format = if binary {
            data.extend_from_slice(pgcopy::TRAILER);
            " (FORMAT binary)"
        } else {
            data.clear();
            for r in rows {
                copy_row(&mut data, r);
            }
            ""
        };
        let mut checks = Vec::new();
        if self.deferred_keys {
            // The per-row key checks are off for this session: the rows about to be written are
            // checked set-based (their parents were written before them). Each value is looked
            // up once, in the parent key's order, so that its index is read front to back
            // (TPC-H's order lines: 33-35 ms a batch against 48-96 ms for their orders).
            let keys = match self.upsert_keys.get(table) {
                Some(k) => k.clone(),
                None => {
                    let k = self.foreign_keys(&[table.to_owned()], false)?;
                    self.upsert_keys.insert(table.to_owned(), k.clone());
                    k
                }
            };
            for fk in keys {
                // A key the run resolved itself points at rows in v2 (TPC-H's order lines: four
                // lookups of 4,096 values a batch, a third of the server's time on it).
                if !columns.iter().any(|x| x.eq_ignore_ascii_case(&fk.column)) || fk.resolved(&self.trusted) {
                    continue;
                }
                let (c, p, pc) = (d.ident(&fk.column), fk.parent_sql.clone(), d.ident(&fk.parent_column));
                let missing = format!(
                    "SELECT v FROM (SELECT DISTINCT x.{c} AS v FROM {tmp} x WHERE x.{c} IS NOT NULL ORDER BY 1) x \
                     WHERE NOT EXISTS (SELECT 1 FROM {p} y WHERE y.{pc} = x.v)"
                );
                // The rows that break it are counted for the message only when some do.
                let any = format!("SELECT COUNT(*)::bigint FROM ({missing}) m");
                let rows = format!("SELECT COUNT(*)::bigint FROM {tmp} x WHERE x.{c} IN ({missing})");
                checks.push((fk, any, rows));
            }
        }
        self.send(PgJob::Upsert(Box::new(UpsertJob {
            prepare: vec![
                format!(
                    "CREATE TEMP TABLE IF NOT EXISTS {tmp} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP",
                    d.ident(table)
                ),
                format!("TRUNCATE {tmp}"),
            ],
            copy: format!("COPY {tmp} ({}) FROM STDIN{format}", cols.join(", ")),
            data,
            checks,
            upsert: upsert_sql(d, table, columns, conflict, &format!("SELECT {} FROM {tmp}", cols.join(", "))),
        })))
    }
    fn delete_ids(&mut self, table: &str, ids: &[Uuid]) -> Result<u64, ConnectorError> {
        self.flush()?;
        let d = Dialect::Postgres;
        let referencing = self.foreign_keys(&[table.to_owned()], true)?;
        // Rows of `fk`'s table pointing at one of `chunk`.
        let pointing = |fk: &ForeignKey, chunk: &[Uuid]| {
            format!(
                "SELECT COUNT(*)::bigint FROM {} x WHERE x.{} IN (SELECT y.{pc} FROM (VALUES {}) AS y ({pc}))",
                fk.table_sql,
                d.ident(&fk.column),
                chunk.iter().map(|u| format!("('{}'::uuid)", u.hyphenated())).collect::<Vec<_>>().join(", "),
                pc = d.ident(&fk.parent_column),
            )
        };
        if !self.deferred_keys {
            // With the per-row checks on, PostgreSQL carries out a key's ON DELETE action: it
            // would delete or change rows of another table, rows the recovery bundle does not
            // hold. Refused before, as the checks off refuse it after (a key without an action
            // PostgreSQL refuses itself; rows of this same table go with the run's own).
            for chunk in ids.chunks(10_000) {
                for fk in referencing.iter().filter(|fk| fk.acts && fk.table_sql != fk.parent_sql) {
                    let what =
                        format!("point at rows of {table} the run deletes (its ON DELETE action would change them)");
                    self.expect_none(&pointing(fk, chunk), fk, None, &what)?;
                }
            }
        }
        let mut n = 0;
        for chunk in ids.chunks(1000) {
            n += self.exec(&format!("DELETE FROM {} WHERE id IN ({})", d.ident(table), id_list(chunk)), None)?;
        }
        if self.deferred_keys {
            // With the per-row key checks off, nothing would stop a row still pointing at them.
            for chunk in ids.chunks(10_000) {
                for fk in &referencing {
                    self.expect_none(
                        &pointing(fk, chunk),
                        fk,
                        None,
                        &format!("still point at deleted rows of {table}"),
                    )?;
                }
            }
        }
        Ok(n)
    }
    fn read_rows_by_id(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<Vec<Value>>, ConnectorError> {
        let mut out = Vec::new();
        for sql in rows_by_id_sql(table, columns, ids) {
            let (tx, rx) = mpsc::channel();
            self.send(PgJob::Read(sql.clone(), columns.to_vec(), Some(account), tx))?;
            out.extend(rx.recv().map_err(|_| q(sql)("the writer thread stopped".into()))??);
        }
        Ok(out)
    }
    fn snapshot_reader(&mut self) -> Result<Option<Box<dyn RowsById>>, ConnectorError> {
        // Only a transaction with one snapshot throughout has a snapshot that is the old v2.
        if !(self.in_tx && self.repeatable) {
            return Ok(None);
        }
        // The exported snapshot lists this transaction as running: its writes stay unseen.
        let r = self.query("SELECT pg_export_snapshot()", &[("snapshot".to_owned(), Type::Text)], None)?;
        let Some(Value::Text(id)) = r.first().and_then(|r| r.first()) else {
            return Err(q("SELECT pg_export_snapshot()")("no snapshot id".into()));
        };
        // A second connection the server refuses (its connection limit, say) leaves this
        // transaction as it was: the caller can do without one.
        match PgSnapshotReader::open(&self.url.0, id) {
            Ok(reader) => Ok(Some(Box::new(reader))),
            Err(e) => {
                tracing::warn!(error = %e, "no second connection to v2 in this transaction's snapshot");
                Ok(None)
            }
        }
    }
    fn ids_with_prefix(
        &mut self,
        table: &str,
        account: Uuid,
        prefixes: &[u16],
    ) -> Result<Option<Vec<Uuid>>, ConnectorError> {
        // Each prefix is a range of ids, which the primary key's index reads alone: a preview of
        // an edited v2 read every id of the table to find the few in these ranges (TPC-H's order
        // lines at scale 0.5: 0.65 s). Past a thousand ranges the caller reads every id.
        if prefixes.is_empty() || prefixes.len() > ID_RANGES {
            return Ok(None);
        }
        let ranges: Vec<String> = prefixes
            .iter()
            .map(|&p| {
                let lo = u128::from(p) << 112;
                let hi = lo | ((1u128 << 112) - 1);
                format!("id BETWEEN '{}' AND '{}'", Uuid::from_u128(lo).hyphenated(), Uuid::from_u128(hi).hyphenated())
            })
            .collect();
        let select = format!(
            "SELECT id::uuid FROM {} WHERE account_id = '{}' AND ({})",
            Dialect::Postgres.ident(table),
            account.hyphenated(),
            ranges.join(" OR ")
        );
        let mut ids = Vec::new();
        self.copy_out(&select, vec![Type::Uuid], &mut |row| {
            if let Some(Value::Uuid(id)) = row.first() {
                ids.push(*id);
            }
            Ok(())
        })?;
        Ok(Some(ids))
    }
    fn scan_rows(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Option<Uuid>,
        f: &mut dyn FnMut(Vec<Value>) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        // Every column is cast to the one binary form its type reads.
        let d = Dialect::Postgres;
        let cols: Vec<String> =
            columns.iter().map(|(c, ty)| format!("{}::{}", d.ident(c), pgcopy::cast_for(*ty))).collect();
        let filter = account.map_or_else(String::new, |a| format!(" WHERE account_id = '{}'", a.hyphenated()));
        // No ORDER BY: in id order the server reads the heap through the index, page by random
        // page; callers sort what they keep.
        let select = format!("SELECT {} FROM {}{filter}", cols.join(", "), d.ident(table));
        self.copy_out(&select, columns.iter().map(|c| c.1).collect(), f)
    }
    fn read_rows(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Option<Uuid>,
    ) -> Result<Vec<Vec<Value>>, ConnectorError> {
        let sql = select_rows_sql(Dialect::Postgres, table, columns, account.is_some(), "1");
        let (tx, rx) = mpsc::channel();
        self.send(PgJob::Read(sql.clone(), columns.to_vec(), account, tx))?;
        rx.recv().map_err(|_| q(sql)("the writer thread stopped".into()))?
    }
}

/// The condition that a row version was written by none of the transactions `xids` (64-bit
/// ids; xmin holds their low 32 bits). `xids` must not be empty.
fn xmin_not_of(xids: &[i64]) -> String {
    let list: Vec<String> = xids.iter().map(|x| format!("'{}'::xid", x & 0xffff_ffff)).collect();
    format!("xmin <> ALL (ARRAY[{}])", list.join(", "))
}

/// A PostgreSQL change stamp read back ([`Target::change_stamp`]):
/// `postgres:<start time>:<database oid>:<xmin>:<xmax>:<ids in progress>`.
#[derive(Debug, PartialEq, Eq)]
struct PgStamp<'a> {
    /// The server's start time and the database's oid.
    server: (&'a str, &'a str),
    /// The snapshot's oldest transaction in progress (64 bits).
    xmin: i64,
    /// One past the newest transaction the snapshot found finished: every id it did not see
    /// as committed is below it and listed as in progress, or at least this.
    xmax: i64,
}

impl<'a> PgStamp<'a> {
    fn parse(stamp: &'a str) -> Option<Self> {
        let mut p = stamp.split(':');
        if p.next()? != "postgres" {
            return None;
        }
        let server = (p.next()?, p.next()?);
        let xmin = p.next()?.parse().ok()?;
        let xmax = p.next()?.parse().ok()?;
        (xmin > 0 && xmin <= xmax).then_some(Self { server, xmin, xmax })
    }
}

impl PgTarget {
    /// The condition that a row was written since by a transaction other than `xids`; `None`
    /// where xmin cannot tell. Every version of a row carries the id of the transaction that
    /// wrote it (xmin): a row whose xmin is one of the runs' own was not written since. xmin has
    /// 32 bits; once the server is 2^31 transactions past a run, a later write could wear a
    /// run's xmin again, and then every row is compared instead.
    fn written_since(&mut self, xids: &[i64]) -> Result<Option<String>, ConnectorError> {
        let int = [("n".to_owned(), Type::Int)];
        let now = self.query("SELECT txid_snapshot_xmax(txid_current_snapshot())::bigint", &int, None)?;
        let Some(Value::Int(now)) = now.first().and_then(|r| r.first()).cloned() else { return Ok(None) };
        if xids.is_empty() || xids.iter().any(|x| *x <= 0 || now - x >= (1i64 << 31) - 1_000_000) {
            return Ok(None);
        }
        Ok(Some(xmin_not_of(xids)))
    }

    /// Puts back a key, index or foreign key taken off for the load.
    fn rebuild(&mut self, r: &Rebuild) -> Result<(), ConnectorError> {
        let started = std::time::Instant::now();
        self.exec(&r.sql, None)?;
        tracing::debug!(statement = %r.sql, ms = started.elapsed().as_millis() as u64, "rebuilt after the load");
        Ok(())
    }

    /// Before the first load into `table`, emptied by this transaction: the foreign keys of it
    /// the run resolves itself are added now, while it is empty, where adding one reads no
    /// rows. At commit each would read every row of the table again (TPC-H's order lines: four
    /// scans of 3 M rows, 2.9 s). A parent loaded before has its keys built first, as a foreign
    /// key needs the unique index it points at. The per-row checks are off for the session, so
    /// the key is not checked as the rows come: every value the run writes in such a column is
    /// the id of a record it wrote to the parent earlier in this transaction (a lookup answers
    /// with no other), so it holds as the validation at commit would have found.
    fn add_trusted_keys(&mut self, table: &str) -> Result<(), ConnectorError> {
        let is = |list: &[String], t: &str| list.iter().any(|x| x.eq_ignore_ascii_case(t));
        if !self.deferred_keys || !is(&self.frozen, table) || is(&self.loaded, table) {
            return Ok(());
        }
        let early: Vec<Reference> = self
            .deferred
            .iter()
            .filter_map(|r| r.reference.clone())
            .filter(|f| {
                f.table.eq_ignore_ascii_case(table)
                    && !f.parent.eq_ignore_ascii_case(table)
                    && self.trusted.iter().any(|t| t.is(&f.table, &f.column, &f.parent, &f.parent_column))
                    && (is(&self.loaded, &f.parent) || !is(&self.frozen, &f.parent))
            })
            .collect();
        for f in early {
            while let Some(i) = self.deferred.iter().position(|r| r.key && r.table.eq_ignore_ascii_case(&f.parent)) {
                let key = self.deferred.remove(i);
                self.rebuild(&key)?;
            }
            if let Some(i) = self.deferred.iter().position(|r| r.reference.as_ref() == Some(&f)) {
                let fk = self.deferred.remove(i);
                self.rebuild(&fk)?;
            }
        }
        Ok(())
    }

    /// Whether switching the session to `replica` (which stops PostgreSQL's per-row foreign-key
    /// triggers) leaves out nothing cutover does not check itself. It stops every ordinary
    /// trigger and rule too, and cutover checks single-column foreign keys only: a schema with a
    /// trigger or rule of its own (an audit log, a column kept up to date) or a foreign key of
    /// several columns keeps the per-row checks, slower and complete.
    fn replica_keeps_everything(&self) -> Result<bool, ConnectorError> {
        let sql = format!(
            "SELECT (NOT EXISTS (SELECT 1 FROM pg_constraint c JOIN pg_class cl ON cl.oid = c.conrelid \
               JOIN pg_class pl ON pl.oid = c.confrelid WHERE c.contype = 'f' AND cardinality(c.conkey) > 1 \
               AND (cl.{IN_SCHEMA} OR pl.{IN_SCHEMA})) \
             AND NOT EXISTS (SELECT 1 FROM pg_trigger g JOIN pg_class r ON r.oid = g.tgrelid \
               WHERE NOT g.tgisinternal AND g.tgenabled IN ('O', 'R') AND r.{IN_SCHEMA}) \
             AND NOT EXISTS (SELECT 1 FROM pg_rewrite w JOIN pg_class r ON r.oid = w.ev_class \
               WHERE w.rulename <> '_RETURN' AND w.ev_enabled IN ('O', 'R') AND r.{IN_SCHEMA}))::text"
        );
        let r = self.query(&sql, &[("ok".to_owned(), Type::Text)], None)?;
        let ok = matches!(r.first().and_then(|r| r.first()), Some(Value::Text(t)) if t == "true");
        if !ok {
            tracing::debug!(
                "the schema has triggers, rules or foreign keys of several columns: per-row checks stay on"
            );
        }
        Ok(ok)
    }

    fn begin_with(&mut self, begin: &str) -> Result<(), ConnectorError> {
        // Per-row foreign-key triggers cost more than the load itself. Roles allowed to switch
        // them off for their own session do so; commit then validates every key set-based.
        // Other roles keep the triggers: slower, equally correct.
        self.deferred_keys =
            self.replica_keeps_everything()? && self.exec("SET session_replication_role = replica", None).is_ok();
        self.loaded.clear();
        self.frozen.clear();
        self.exec(begin, None)?;
        self.in_tx = true;
        self.repeatable = begin.contains("REPEATABLE READ");
        let xid = self.query("SELECT txid_current()::bigint", &[("xid".to_owned(), Type::Int)], None)?;
        self.xid = match xid.first().and_then(|r| r.first()) {
            Some(Value::Int(x)) => *x,
            _ => return Err(q("BEGIN")("no transaction id".into())),
        };
        Ok(())
    }

    fn reset_role(&mut self) {
        if self.deferred_keys {
            self.deferred_keys = false;
            let _ = self.exec("RESET session_replication_role", None);
        }
    }
}

impl Drop for PgTarget {
    fn drop(&mut self) {
        let _ = self.rollback();
        self.jobs.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Copies every table of `schema` from a source to a target (creating the tables), in one
/// transaction: used to put a v1 database on another engine, e.g. SQLite demo data into PostgreSQL.
pub fn copy_tables(schema: &Schema, source: &mut dyn Source, target: &mut dyn Target) -> Result<u64, ConnectorError> {
    target.ensure_schema(schema)?;
    target.begin()?;
    let mut n = 0u64;
    for t in &schema.tables {
        let cols: Vec<(String, Type)> = t.columns.iter().map(|c| (c.name.clone(), c.ty)).collect();
        let names: Vec<String> = cols.iter().map(|c| c.0.clone()).collect();
        let order = vec![names[0].clone()];
        target.start_table(&t.name, &names)?;
        let scan = Scan { table: &t.name, columns: &cols, extra: &[], order_by: &order, lazy: None };
        let mut bad = None;
        source.scan(&scan, &mut |row| {
            if let Some((_, why)) = &row.bad {
                bad.get_or_insert_with(|| why.clone());
            }
            n += 1;
            target.write_row(&row.values)
        })?;
        if let Some(why) = bad {
            target.rollback()?;
            return Err(q(format!("copying {}", t.name))(why));
        }
        target.finish_table()?;
    }
    target.commit()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Columns named and typed, as scans and reads take them.
    fn typed(cols: &[(&str, Type)]) -> Vec<(String, Type)> {
        cols.iter().map(|(c, t)| ((*c).to_owned(), *t)).collect()
    }

    /// A PostgreSQL stamp reads back into its server and snapshot bounds; anything else (a
    /// SQLite stamp, a damaged one, bounds the wrong way round) reads as none, and then the
    /// preview is taken again.
    #[test]
    fn postgres_stamps_read_back_or_not_at_all() {
        let stamp = PgStamp::parse("postgres:1796683122.287773:16384:1753:1760:1753,1755").unwrap();
        assert_eq!(stamp, PgStamp { server: ("1796683122.287773", "16384"), xmin: 1753, xmax: 1760 });
        assert_eq!(PgStamp::parse("postgres:1.5:16384:1677:1677:").map(|s| (s.xmin, s.xmax)), Some((1677, 1677)));
        for bad in [
            "sqlite:123:456",
            "postgres:1.5:16384:1760:1753:",
            "postgres:1.5:16384:0:0:",
            "postgres:1.5:16384:x:1753:",
            "postgres:1.5:16384",
            "",
        ] {
            assert_eq!(PgStamp::parse(bad), None, "{bad:?}");
        }
    }

    /// UUIDs and dates read from a SQLite v2's bytes give what parsing a string gave, values
    /// and refusals alike.
    #[test]
    fn sqlite_uuids_and_dates_parse_as_strings_did() {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        for t in [
            "2024-02-29",
            "2023-02-29",
            "1899-12-31",
            "0001-01-01",
            "9999-12-31",
            "2024-13-01",
            "2024-00-10",
            "2024-1-01",
            " 2024-01-01",
            "2024-01-01 ",
            "+2024-01-01",
            "2024/01/01",
            "20240101",
            "",
            "abcd-ef-gh",
        ] {
            let old = Date::parse(t, format).map(Value::Date).ok();
            assert_eq!(sqlite_typed(ValueRef::Text(t.as_bytes()), Type::Date).ok(), old, "{t:?}");
        }
        for t in [
            "67e55044-10b1-426f-9247-bb680e5fe0c8",
            "67E55044-10B1-426F-9247-BB680E5FE0C8",
            "67e5504410b1426f9247bb680e5fe0c8",
            "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
            "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
            "67e55044-10b1-426f-9247-bb680e5fe0c",
            "not a uuid",
            "",
        ] {
            let old = Uuid::parse_str(t).map(Value::Uuid).ok();
            assert_eq!(sqlite_typed(ValueRef::Text(t.as_bytes()), Type::Uuid).ok(), old, "{t:?}");
        }
        assert!(sqlite_typed(ValueRef::Text(&[0xff, 0xfe]), Type::Uuid).is_err());
        assert!(sqlite_typed(ValueRef::Text(&[0xff; 10]), Type::Date).is_err());
        assert_eq!(sqlite_typed(ValueRef::Integer(7), Type::Int), Ok(Value::Int(7)));
    }

    /// A big table stored in key order is split between two readers that see the same rows,
    /// except in WAL mode, where a writer could commit between their transactions.
    #[test]
    fn a_big_table_is_read_by_two_readers_outside_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE BIG (A INTEGER, B TEXT, V TEXT, PRIMARY KEY (A, B));
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150000)
             INSERT INTO BIG SELECT i, 'x', 'v' FROM n;",
        )
        .unwrap();
        let columns = vec![("A".to_owned(), Type::Int), ("B".to_owned(), Type::Text), ("V".to_owned(), Type::Text)];
        let order = vec!["A".to_owned(), "B".to_owned()];
        let scan = Scan { table: "BIG", columns: &columns, extra: &[], order_by: &order, lazy: None };
        let two = |expect: bool| {
            let src = SqliteSource::open(&path).unwrap();
            let first = SqliteSource::connect(&path).unwrap();
            first.execute_batch("BEGIN").unwrap();
            let stored =
                storage_order(&first, "BIG", &key_order(Dialect::Sqlite, &scan), &select_sql(Dialect::Sqlite, &scan))
                    .unwrap();
            assert_eq!((stored.first, stored.last), (1, 150_000));
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            let blocks = split_rowids(stored.first, stored.last, parallel_block(scan.columns.len())).len();
            assert_eq!(src.second_reader(&first, &scan, blocks).is_some(), expect && cores > 1);
        };
        two(true);
        c.execute_batch("PRAGMA journal_mode = WAL").unwrap();
        two(false);
    }

    /// A lazy scan decodes the key alone, and its rows decoded whole are the rows a full scan
    /// gives; its fingerprint is theirs exactly where every text is UTF-8 and every value of its
    /// column's type, and where not, another (the final migration then decodes the row and
    /// compares again, rather than keep a row it could not tell was as loaded).
    #[test]
    fn a_lazy_scan_decodes_the_key_and_gives_the_same_rows_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE T (K INTEGER PRIMARY KEY, N INTEGER, R REAL, S TEXT, B BLOB);
             INSERT INTO T VALUES (1, 7, 1.5, 'plain', x'00ff');
             INSERT INTO T VALUES (2, NULL, NULL, 'Ærø ☃', NULL);
             INSERT INTO T VALUES (3, 8, 2, CAST(x'4bf8626d' AS TEXT), x'');
             INSERT INTO T VALUES (4, '12 pcs', 3.25, '', NULL);
             INSERT INTO T VALUES (5, 9, 2.5, 'x', 'text in a blob column');",
        )
        .unwrap();
        drop(c);
        let columns = vec![
            ("K".to_owned(), Type::Int),
            ("N".to_owned(), Type::Int),
            ("R".to_owned(), Type::Float),
            ("S".to_owned(), Type::Text),
            ("B".to_owned(), Type::Bytes),
        ];
        let order = vec!["K".to_owned()];
        let read = |lazy: Option<&[usize]>| {
            let mut src = SqliteSource::open(&path).unwrap();
            let scan = Scan { table: "T", columns: &columns, extra: &[], order_by: &order, lazy };
            let mut rows = Vec::new();
            src.scan(&scan, &mut |r| {
                rows.push(r.clone());
                Ok(())
            })
            .unwrap();
            rows
        };
        let (full, lazy) = (read(None), read(Some(&[0])));
        assert_eq!((full.len(), lazy.len()), (5, 5));
        for (f, l) in full.iter().zip(&lazy) {
            assert!(!f.is_lazy() && l.is_lazy());
            assert_eq!(l.values[0], f.values[0], "the key is decoded");
            assert!(l.values[1..].iter().all(Value::is_null), "{:?}", l.values);
            let whole = l.decoded(&columns);
            assert!(!whole.is_lazy());
            assert_eq!((&whole.values, &whole.bad, whole.fingerprint()), (&f.values, &f.bad, f.fingerprint()));
        }
        // Rows 1 and 2 are as declared; 3 has text that is not UTF-8 and 4 a value that is no
        // integer (both rejected), 5 text in a blob column (converted, and migrated).
        let same: Vec<bool> = full.iter().zip(&lazy).map(|(f, l)| f.fingerprint() == l.fingerprint()).collect();
        assert_eq!(same, [true, true, false, false, false]);
        let bad: Vec<bool> = full.iter().map(|f| f.bad.is_some()).collect();
        assert_eq!(bad, [false, false, true, true, false]);
        assert_eq!(full[4].values[4], Value::Bytes(b"text in a blob column".to_vec()));
    }

    /// A row as a scan gives it: values, why it is bad, fingerprint, lazy, raw layout.
    type ScannedRow = (Vec<Value>, Option<(usize, String)>, u64, bool, Vec<u8>);

    /// Every row `scan` gives from the SQLite file at `path`, read from the table's pages or
    /// (`pages` false) through SQL, and the source's count of rows read each way.
    fn scan_from(path: &std::path::Path, scan: &Scan<'_>, pages: bool) -> (Vec<ScannedRow>, (u64, u64)) {
        let mut src = SqliteSource::open(path).unwrap();
        src.set_read_pages(pages);
        let mut rows = Vec::new();
        src.scan(scan, &mut |r| {
            rows.push((r.values.clone(), r.bad.clone(), r.fingerprint(), r.is_lazy(), r.raw.clone()));
            Ok(())
        })
        .unwrap();
        (rows, src.last_read())
    }

    /// Rows read from a table's pages are the rows SQL reads, value for value, fingerprint for
    /// fingerprint, decoded or lazy: every integer width, integral values in a REAL column
    /// (stored as integers), text that is not UTF-8, records spilling over several overflow
    /// pages, records written before a column was added (read through SQL, for its default),
    /// rows deleted and grown in place, a rowid alias and a key that is not one, pages of 512
    /// bytes to 64 KiB, one reader or two.
    #[test]
    fn rows_read_from_pages_are_the_rows_sql_reads() {
        let dir = tempfile::tempdir().unwrap();
        for (page_size, rows) in [(512, 3_000), (4096, 60_000), (65536, 3_000)] {
            let path = dir.path().join(format!("v1-{page_size}.db"));
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(&format!(
                "PRAGMA page_size = {page_size};
                 CREATE TABLE T (K INTEGER PRIMARY KEY, I INTEGER, R REAL, S TEXT, B BLOB, N);
                 CREATE TABLE P (A INTEGER, L INTEGER, R double precision, S TEXT, PRIMARY KEY (A, L));
                 BEGIN;
                 WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < {rows})
                 INSERT INTO T SELECT k,
                   CASE k % 12 WHEN 0 THEN 0 WHEN 1 THEN 1 WHEN 2 THEN -1 WHEN 3 THEN 127 WHEN 4 THEN -129
                     WHEN 5 THEN 8388607 WHEN 6 THEN -2147483648 WHEN 7 THEN 140737488355327
                     WHEN 8 THEN 9223372036854775807 WHEN 9 THEN -9223372036854775808 WHEN 10 THEN NULL ELSE k END,
                   CASE k % 5 WHEN 0 THEN 17 WHEN 1 THEN 2.5 WHEN 2 THEN -0.0 WHEN 3 THEN 1e300 ELSE NULL END,
                   CASE WHEN k % 997 = 0 THEN printf('%.*c', 70000 + k % 5000, 'x')
                        WHEN k % 13 = 0 THEN CAST(x'4bf8626d' AS TEXT)
                        WHEN k % 7 = 0 THEN '' ELSE printf('row %d Ærø ☃ %.*c', k, k % 200, 'y') END,
                   CASE WHEN k % 11 = 0 THEN zeroblob(k % 3000) WHEN k % 3 = 0 THEN x'00ff' ELSE NULL END,
                   CASE k % 4 WHEN 0 THEN 'text' WHEN 1 THEN 3.75 WHEN 2 THEN 42 ELSE x'01' END
                 FROM n;
                 INSERT INTO P SELECT K / 4, K % 4, I, S FROM T WHERE K % 3 <> 0;
                 COMMIT;
                 DELETE FROM T WHERE K % 17 = 0;
                 UPDATE T SET S = S || printf('%.*c', 3000, 'g') WHERE K % 19 = 0;
                 ALTER TABLE T ADD COLUMN D TEXT DEFAULT 'added later';
                 ALTER TABLE T ADD COLUMN E REAL DEFAULT 4;
                 UPDATE T SET D = 'set' WHERE K % 23 = 0;"
            ))
            .unwrap();
            drop(c);
            let t_cols: Vec<(String, Type)> = typed(&[
                ("K", Type::Int),
                ("I", Type::Int),
                ("R", Type::Float),
                ("S", Type::Text),
                ("B", Type::Bytes),
                ("N", Type::Text),
                ("D", Type::Text),
                ("E", Type::Float),
            ]);
            // Another order than the table's, and fewer columns.
            let p_cols: Vec<(String, Type)> =
                typed(&[("S", Type::Text), ("A", Type::Int), ("R", Type::Float), ("L", Type::Int)]);
            for (table, columns, order, keys) in [
                ("T", &t_cols, vec!["K".to_owned()], vec![0]),
                ("P", &p_cols, vec!["A".to_owned(), "L".to_owned()], vec![1, 3]),
            ] {
                let read = |pages: bool, lazy: Option<&[usize]>| {
                    scan_from(&path, &Scan { table, columns, extra: &[], order_by: &order, lazy }, pages)
                };
                for lazy in [None, Some(keys.as_slice())] {
                    let (by_sql, counts) = read(false, lazy);
                    assert_eq!(counts.0, 0);
                    let (from_pages, counts) = read(true, lazy);
                    assert_eq!(from_pages.len(), by_sql.len(), "{table} at {page_size}");
                    for (p, q) in from_pages.iter().zip(&by_sql) {
                        assert_eq!(p, q, "{table} at {page_size}, lazy {lazy:?}");
                    }
                    assert!(counts.0 > 0, "{table} at {page_size}: {counts:?}");
                    assert_eq!(counts.0 + counts.1, by_sql.len() as u64, "{table} at {page_size}");
                    // The rows written before D and E were added lack them: their defaults
                    // were asked of SQL once, not the rows.
                    assert_eq!(counts.1, 0, "{table} at {page_size}");
                }
            }
        }
    }

    /// A record the page reader cannot read (a serial type the file format reserves) is read
    /// through SQL, alone; the rows around it come from the pages.
    #[test]
    fn a_record_the_pages_cannot_read_is_read_through_sql() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE T (K INTEGER PRIMARY KEY, A TEXT);
             WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 2000)
             INSERT INTO T SELECT k, CASE k WHEN 777 THEN 'MARKERXYZ1' ELSE printf('row %d', k) END FROM n;",
        )
        .unwrap();
        drop(c);
        // Row 777's record: header of 3 bytes (its length, K's serial type 0 as the rowid's
        // alias, A's 0x21: 10 bytes of text), then the text. K's serial type becomes 10.
        let mut file = std::fs::read(&path).unwrap();
        let at = file.windows(10).position(|w| w == b"MARKERXYZ1").unwrap();
        assert_eq!(file[at - 3..at], [0x03, 0x00, 0x21]);
        file[at - 2] = 10;
        std::fs::write(&path, &file).unwrap();
        let columns = vec![("K".to_owned(), Type::Int), ("A".to_owned(), Type::Text)];
        let order = vec!["K".to_owned()];
        let read = |pages: bool| {
            let scan = Scan { table: "T", columns: &columns, extra: &[], order_by: &order, lazy: None };
            let (rows, counts) = scan_from(&path, &scan, pages);
            (rows.into_iter().map(|r| r.0).collect::<Vec<_>>(), counts)
        };
        let (by_sql, _) = read(false);
        let (from_pages, counts) = read(true);
        assert_eq!(from_pages, by_sql);
        assert_eq!(from_pages[776], [Value::Int(777), Value::Text("MARKERXYZ1".into())]);
        assert_eq!(counts, (1999, 1));
    }

    /// A v2 table's rows in load order, read from its pages into pages filled again, are the
    /// rows SQL reads, value for value: an account's among another's, UUIDs and dates parsed,
    /// integral values in a REAL column, NULLs after text in the same slot, text long enough to
    /// spill to overflow pages, rows deleted and written before a column was added, pages of
    /// 512 bytes and 4 KiB, windows of rowids and page sizes of every kind. A table that
    /// compares text otherwise (a `COLLATE`) is not read from its pages; a value that is not
    /// its column's type is refused alike.
    #[test]
    fn v2_rows_read_from_pages_are_the_rows_sql_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Uuid::from_u128(0xa1), Uuid::from_u128(0xb2));
        for page_size in [512, 4096] {
            let path = dir.path().join(format!("v2-{page_size}.db"));
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(&format!(
                "PRAGMA page_size = {page_size};
                 CREATE TABLE t (id UUID PRIMARY KEY, account_id UUID NOT NULL, legacy_ref TEXT NOT NULL,
                   d DATE, n BIGINT, r REAL, s TEXT, b BLOB, UNIQUE (account_id, legacy_ref));
                 CREATE TABLE nocase (id UUID PRIMARY KEY, account_id UUID NOT NULL COLLATE NOCASE, s TEXT);
                 WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 3000)
                 INSERT INTO t SELECT printf('%08x-0000-4000-8000-%012x', i * 7919 % 100000, i),
                   CASE WHEN i % 3 = 0 THEN '{b}' ELSE '{a}' END, 'R:' || i,
                   CASE WHEN i % 5 = 0 THEN NULL ELSE date('2020-01-01', '+' || i || ' days') END,
                   CASE WHEN i % 7 = 0 THEN NULL ELSE i * 1000003 - 77 END,
                   CASE i % 4 WHEN 0 THEN 17 WHEN 1 THEN 2.5 WHEN 2 THEN NULL ELSE -0.25 END,
                   CASE WHEN i % 97 = 0 THEN printf('%.*c', 3000 + i, 'z') WHEN i % 2 = 0 THEN NULL
                        ELSE printf('line %d Ærø ☃', i) END,
                   CASE WHEN i % 11 = 0 THEN zeroblob(i % 700) ELSE NULL END
                 FROM k;
                 INSERT INTO nocase SELECT id, upper(account_id), s FROM t;
                 DELETE FROM t WHERE rowid % 13 = 0;
                 ALTER TABLE t ADD COLUMN added TEXT DEFAULT 'added later';
                 UPDATE t SET added = 'set' WHERE rowid % 17 = 0;"
            ))
            .unwrap();
            let cols: Vec<(String, Type)> = typed(&[
                ("id", Type::Uuid),
                ("account_id", Type::Uuid),
                ("legacy_ref", Type::Text),
                ("d", Type::Date),
                ("n", Type::Int),
                ("r", Type::Float),
                ("s", Type::Text),
                ("b", Type::Bytes),
                ("added", Type::Text),
            ]);
            let mut pages = [a, b].map(|acct| V2Pages::open(&c, "t", &cols, acct).expect("t is read from its pages"));
            assert!(V2Pages::open(&c, "nocase", &cols[..2], a).is_none());
            // One page buffer for every read, as a reader thread fills the pages given back.
            let mut page = Vec::new();
            for (acct, pages) in [a, b].into_iter().zip(&mut pages) {
                for (lo, hi, limit) in
                    [(1, 3000, 100), (1, 3000, 1), (0, i64::MAX, 5000), (250, 1700, 33), (900, 905, 8)]
                {
                    let (mut from, mut by_sql, mut from_pages) = (lo, Vec::new(), Vec::new());
                    loop {
                        let rows = sqlite_load_order_page(&c, "t", &cols, acct, (from, hi), limit).unwrap();
                        let Some(last) = rows.last().map(|r| r.at) else { break };
                        by_sql.extend(rows);
                        from = last + 1;
                    }
                    from = lo;
                    loop {
                        let readable = pages.fill((from, hi), limit, &mut page).unwrap();
                        assert!(readable);
                        assert!(page.len() <= limit);
                        let Some(last) = page.last().map(|r| r.at) else { break };
                        from_pages.extend(page.iter().cloned());
                        from = last + 1;
                    }
                    assert!(!by_sql.is_empty());
                    assert_eq!(from_pages.len(), by_sql.len(), "{page_size}: {acct} in {lo}..={hi} by {limit}");
                    assert_eq!(from_pages, by_sql, "{page_size}: {acct} in {lo}..={hi} by {limit}");
                }
            }
            // Text that is not UTF-8, and an id that is not a UUID: refused alike.
            for (i, bad) in [
                "UPDATE t SET s = CAST(x'4bf8626d' AS TEXT) WHERE rowid = 40",
                "UPDATE t SET id = 'nope' WHERE rowid = 40",
            ]
            .into_iter()
            .enumerate()
            {
                let copy = dir.path().join(format!("bad-{page_size}-{i}.db"));
                std::fs::copy(&path, &copy).unwrap();
                let c2 = rusqlite::Connection::open(&copy).unwrap();
                c2.execute_batch(bad).unwrap();
                let by_sql = sqlite_load_order_page(&c2, "t", &cols, a, (1, 3000), 5000).unwrap_err().to_string();
                let mut p2 = V2Pages::open(&c2, "t", &cols, a).unwrap();
                let from_pages = p2.fill((1, 3000), 5000, &mut page).unwrap_err().to_string();
                assert_eq!(from_pages, by_sql);
            }
        }
        // A record the pages cannot read (a serial type the file format reserves, in the
        // rowid alias's field, which SQL does not read) is read through SQL, alone.
        let path = dir.path().join("v2-reserved.db");
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(&format!(
            "CREATE TABLE k (k INTEGER PRIMARY KEY, id UUID, account_id UUID, s TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO k SELECT i, printf('00000000-0000-4000-8000-%012x', i), '{a}',
               CASE i WHEN 77 THEN 'MARKERXYZ1' ELSE printf('row %d', i) END FROM n;"
        ))
        .unwrap();
        drop(c);
        let mut file = std::fs::read(&path).unwrap();
        let at = file.windows(10).position(|w| w == b"MARKERXYZ1").unwrap();
        // The header (its length, then k's, id's, account_id's and s's serial types), then
        // the two UUIDs' text and the marker.
        let head = at - 72 - 5;
        assert_eq!(file[head..head + 5], [0x05, 0x00, 0x55, 0x55, 0x21]);
        file[head + 1] = 10;
        std::fs::write(&path, file).unwrap();
        let c = rusqlite::Connection::open(&path).unwrap();
        let cols = typed(&[("id", Type::Uuid), ("account_id", Type::Uuid), ("s", Type::Text)]);
        let by_sql = sqlite_load_order_page(&c, "k", &cols, a, (1, 500), 1000).unwrap();
        let mut pages = V2Pages::open(&c, "k", &cols, a).unwrap();
        let mut page = Vec::new();
        assert!(pages.fill((1, 500), 1000, &mut page).unwrap());
        assert_eq!(page, by_sql);
        assert_eq!(page[76].values[2], Value::Text("MARKERXYZ1".into()));
    }

    /// Which tables a scan reads as stored: only those whose rows are stored in key order and
    /// that SQLite would otherwise read through an index; under the rowid's free name.
    #[test]
    fn scans_read_as_stored_only_what_is_stored_in_key_order() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE IN_ORDER (A INTEGER, B TEXT, V TEXT, PRIMARY KEY (A, B));
             CREATE TABLE SHUFFLED (A INTEGER, B TEXT, V TEXT, PRIMARY KEY (A, B));
             CREATE TABLE OWN_ROWID (rowid INTEGER, _rowid_ INTEGER, A INTEGER, B TEXT, V TEXT, PRIMARY KEY (A, B));
             CREATE TABLE NO_KEY (A INTEGER, B TEXT, V TEXT);
             CREATE TABLE CLUSTERED (A INTEGER, B TEXT, V TEXT, PRIMARY KEY (A, B)) WITHOUT ROWID;
             CREATE TABLE BY_ROWID (A INTEGER PRIMARY KEY, B TEXT, V TEXT);
             CREATE TABLE COVERED (A INTEGER, B TEXT, PRIMARY KEY (A, B));",
        )
        .unwrap();
        for a in 0..50 {
            for table in ["IN_ORDER", "NO_KEY", "CLUSTERED", "BY_ROWID", "COVERED"] {
                c.execute(&format!("INSERT INTO {table} (A, B) VALUES (?1, 'x')"), [a]).unwrap();
            }
            c.execute("INSERT INTO OWN_ROWID (rowid, _rowid_, A, B) VALUES (-?1, -?1, ?1, 'x')", [a]).unwrap();
            c.execute("INSERT INTO SHUFFLED (A, B) VALUES (?1, 'x')", [(a * 7) % 50]).unwrap();
        }
        let columns = vec![("A".to_owned(), Type::Int), ("B".to_owned(), Type::Text)];
        let with_v = vec![("A".to_owned(), Type::Int), ("B".to_owned(), Type::Text), ("V".to_owned(), Type::Text)];
        let order = vec!["A".to_owned(), "B".to_owned()];
        // The key's index alone answers a scan of the key's columns: nothing to gain.
        let read = |table: &str| {
            let columns = if table == "COVERED" { &columns } else { &with_v };
            let s = Scan { table, columns, extra: &[], order_by: &order, lazy: None };
            storage_order(&c, table, &key_order(Dialect::Sqlite, &s), &select_sql(Dialect::Sqlite, &s)).map(|o| o.sql())
        };
        assert_eq!(
            read("IN_ORDER").as_deref(),
            Some(r#"SELECT t."A", t."B", t."V" FROM "IN_ORDER" t ORDER BY t._rowid_"#)
        );
        assert_eq!(
            read("OWN_ROWID").as_deref(),
            Some(r#"SELECT t."A", t."B", t."V" FROM "OWN_ROWID" t ORDER BY t.oid"#)
        );
        // Keyed by its rowid: stored in key order, nothing to prove.
        assert_eq!(
            read("BY_ROWID").as_deref(),
            Some(r#"SELECT t."A", t."B", t."V" FROM "BY_ROWID" t ORDER BY t._rowid_"#)
        );
        for table in ["SHUFFLED", "NO_KEY", "CLUSTERED", "COVERED"] {
            assert_eq!(read(table), None, "{table}");
        }
    }

    /// Rowids proven to ascend in key order: in one statement through the key's index, or
    /// by reading every rowid in key order where SQLite would sort; a row out of order
    /// anywhere, the last included, proves nothing.
    #[test]
    fn rowids_ascend_in_key_order_through_the_index_or_by_reading_them_all() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE K (A INTEGER, B TEXT, PRIMARY KEY (A, B));
             CREATE TABLE LATE (A INTEGER, B TEXT, PRIMARY KEY (A, B));
             CREATE TABLE NO_INDEX (A INTEGER, B TEXT);
             CREATE TABLE NO_INDEX_LATE (A INTEGER, B TEXT);
             CREATE TABLE EMPTY (A INTEGER, B TEXT, PRIMARY KEY (A, B));",
        )
        .unwrap();
        for a in 1..=500 {
            for t in ["K", "LATE", "NO_INDEX", "NO_INDEX_LATE"] {
                c.execute(&format!("INSERT INTO {t} (rowid, A, B) VALUES (?1 + 9, ?1, 'x')"), [a]).unwrap();
            }
        }
        // The last row in key order stored before the others.
        for t in ["LATE", "NO_INDEX_LATE"] {
            c.execute(&format!("INSERT INTO {t} (rowid, A, B) VALUES (1, 501, 'x')"), []).unwrap();
        }
        let order = r#"t."A", t."B""#;
        let plan = |t: &str| {
            query_plan(&c, &format!(r#"SELECT 1 FROM "{t}" t WHERE NOT abs(t._rowid_) ORDER BY {order} LIMIT 1"#))
                .unwrap()
                .join("; ")
        };
        assert!(!plan("K").contains("B-TREE") && plan("NO_INDEX").contains("B-TREE"));
        // After each pass the function is gone again: nothing of it stays on the connection.
        let gone = || c.prepare(&format!("SELECT {ASCENDS_FN}(1)")).is_err();
        for _ in 0..2 {
            assert_eq!(rowids_ascend(&c, "K", "_rowid_", order), Some((10, 509)));
            assert!(gone());
            assert_eq!(rowids_ascend(&c, "NO_INDEX", "_rowid_", order), Some((10, 509)));
            assert!(gone());
            for t in ["LATE", "NO_INDEX_LATE", "EMPTY"] {
                assert_eq!(rowids_ascend(&c, t, "_rowid_", order), None, "{t}");
                assert!(gone(), "{t}");
            }
        }
    }

    /// SQLite reads rows by id through the id's index, and an account's rows in load order
    /// without a sort, where a v2 key starts with the account (`(account_id, legacy_ref)`) and
    /// no statistics tell SQLite that every row passes the account's test.
    #[test]
    fn sqlite_reads_by_id_and_in_load_order_past_an_index_on_the_account() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t (id UUID TEXT NOT NULL, account_id UUID TEXT NOT NULL, legacy_ref TEXT NOT NULL, v TEXT);
             CREATE UNIQUE INDEX t_pkey ON t (id);
             CREATE UNIQUE INDEX t_key ON t (account_id, legacy_ref);",
        )
        .unwrap();
        let cols = [("id".to_owned(), Type::Uuid), ("v".to_owned(), Type::Text)];
        // As many ids as a read asks for at a time (with two, SQLite took the id index anyway).
        let ids: Vec<Uuid> = (0..500).map(Uuid::from_u128).collect();
        let by_id = query_plan(&c, &sqlite_rows_by_id_sql("t", &cols, &ids)).unwrap();
        assert_eq!(by_id, ["SEARCH t USING INDEX t_pkey (id=?)"]);
        let in_load_order = query_plan(&c, &select_rows_sql(Dialect::Sqlite, "t", &cols, true, "rowid")).unwrap();
        assert_eq!(in_load_order, ["SCAN t"]);
    }

    /// Blocks cover the rowids from first to last once each, and stay few however far apart
    /// the two ends are.
    #[test]
    fn rowids_split_into_blocks_that_cover_them_once_and_stay_few() {
        assert_eq!(split_rowids(1, 10, 4), [(1, 4), (5, 8), (9, 10)]);
        assert_eq!(split_rowids(5, 5, 4), [(5, 5)]);
        for (first, last) in [(1, 4_000_000_000_000_000), (i64::MIN, i64::MAX), (-7, i64::MAX)] {
            let blocks = split_rowids(first, last, 5120);
            assert!(blocks.len() as i64 <= MAX_BLOCKS, "{} blocks", blocks.len());
            assert_eq!((blocks[0].0, blocks[blocks.len() - 1].1), (first, last));
            assert!(blocks.windows(2).all(|w| w[0].1.checked_add(1) == Some(w[1].0)), "gaps or overlaps");
        }
    }

    #[test]
    fn copy_text_escapes() {
        let mut b = Vec::new();
        for v in [
            Value::Text("a\\b\tc\nd".into()),
            Value::Null,
            Value::Bytes(vec![0, 255]),
            Value::Bool(true),
            Value::Int(-5),
        ] {
            copy_value(&mut b, &v);
            b.push(b'|');
        }
        assert_eq!(String::from_utf8(b).unwrap(), "a\\\\b\\tc\\nd|\\N|\\\\x00ff|t|-5|");
    }

    #[test]
    fn urls_pick_connectors() {
        assert_eq!(SourceConfig::from_url("/tmp/v1.db").unwrap(), SourceConfig::Sqlite { path: "/tmp/v1.db".into() });
        assert_eq!(
            SourceConfig::from_url("sqlite:///tmp/v1.db").unwrap(),
            SourceConfig::Sqlite { path: "/tmp/v1.db".into() }
        );
        assert!(matches!(TargetConfig::from_url("postgres://u:pw@h/db").unwrap(), TargetConfig::Postgres { .. }));
        assert!(matches!(SourceConfig::from_url("mariadb://u:pw@h/db").unwrap(), SourceConfig::Mysql { .. }));
        assert!(matches!(SourceConfig::from_url("mysql://u:pw@h/db").unwrap(), SourceConfig::Mysql { .. }));
        // MariaDB is a v1 source only.
        let e = TargetConfig::from_url("mysql://u:secret@h/db").unwrap_err().to_string();
        assert!(e.contains("u:***@h") && !e.contains("secret"), "{e}");
        let e = SourceConfig::from_url("oracle://u:secret@h/db").unwrap_err().to_string();
        assert!(e.contains("u:***@h") && !e.contains("secret"), "{e}");
    }

    #[test]
    fn ddl_for_postgres() {
        assert_eq!(
            Dialect::Postgres.ddl("CREATE TABLE D (C BLOB, P REAL)"),
            "CREATE TABLE D (C BYTEA, P DOUBLE PRECISION)"
        );
        assert_eq!(Dialect::Postgres.ident("CUSTNO"), "\"custno\"");
    }

    #[test]
    fn coercion_explains_bad_values() {
        let cols = vec![("QTY".to_owned(), Type::Int), ("NAME".to_owned(), Type::Text)];
        let r = finish_row(vec![Value::Text("ten".into()), Value::Bytes(vec![0xff, 0xfe])], &cols);
        assert_eq!(r.bad.as_ref().unwrap().0, 0);
        assert!(r.bad.unwrap().1.contains("QTY holds 'ten'"));
        let r = finish_row(vec![Value::Text(" 10 ".into()), Value::Bytes(vec![0xff])], &cols);
        assert_eq!(r.values[0], Value::Int(10));
        assert!(r.bad.unwrap().1.contains("invalid UTF-8"));
    }
}
