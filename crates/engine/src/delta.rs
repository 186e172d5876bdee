//! The final migration: re-read v1 through the mapping and change v2 in place. It writes only
//! rows whose v1 record changed, rows that drifted in v2, and new ones; it deletes rows whose
//! v1 source is gone and rows created in v2. Everything it overwrites or deletes is saved to a
//! recovery bundle, on disk before the run's transaction commits (on PostgreSQL the bundle is
//! read on a second connection, in the transaction's snapshot, while the transaction writes).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::connect::{ConnectorError, Dialect, RowsById, Source, Target};
use crate::ddl::Schema;
use crate::live::{Entry, LiveState, NextPart, Parts};
use crate::preview::{ChangeKind, Preview, StampedPreview, preview};
use crate::run::{EngineError, LedgerRecord, RunReport, RunSpec, account_uuid, run};
use crate::state::{self, StateEntry};
use crate::value::{Type, Value};

/// What the final migration did, table by table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaCounts {
    /// Rows of v1 records new since the last run.
    pub inserted: u64,
    /// Rows rewritten: their v1 record changed, or they drifted in v2.
    pub rewritten: u64,
    /// Rows left as they were.
    pub unchanged: u64,
    /// Rows deleted: v1 source gone, or created in v2.
    pub deleted: u64,
}

/// The recovery bundle of a final migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleManifest {
    /// The folder holding `rows.jsonl` and `manifest.json`.
    pub path: String,
    /// The preview the run acknowledged.
    pub preview_id: String,
    /// Rows saved.
    pub rows: u64,
    /// Of which overwritten.
    pub overwritten: u64,
    /// Of which deleted.
    pub deleted: u64,
    /// SHA-256 of `rows.jsonl`.
    pub sha256: String,
}

/// A final migration's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalReport {
    /// Buckets per entity, as in every run.
    pub run: RunReport,
    /// Per v2 table.
    pub tables: BTreeMap<String, DeltaCounts>,
    /// The recovery bundle.
    pub bundle: BundleManifest,
    /// Whether the run took the acknowledged preview as it was kept rather than taking it
    /// again, v2 being provably unchanged since ([`StampedPreview`]).
    #[serde(default)]
    pub preview_reused: bool,
}

/// The overwrite preview a final migration checked in its transaction ([`final_begin`]).
#[derive(Debug)]
pub struct Checked {
    /// The preview, the acknowledged one.
    pub preview: Preview,
    /// Whether it is the one kept from before rather than taken again.
    pub reused: bool,
}

impl FinalReport {
    /// Totals over all tables.
    pub fn totals(&self) -> DeltaCounts {
        let mut t = DeltaCounts::default();
        for c in self.tables.values() {
            t.inserted += c.inserted;
            t.rewritten += c.rewritten;
            t.unchanged += c.unchanged;
            t.deleted += c.deleted;
        }
        t
    }
}

/// A row the overwrite preview found changed, created or deleted in v2.
struct Drift {
    kind: ChangeKind,
    table: String,
    legacy_ref: String,
    /// Its values now (changed and created rows), or as loaded (deleted rows).
    values: serde_json::Map<String, serde_json::Value>,
}

/// The table the run is on: the live state of its rows (v1 and v2 fingerprints by id), read a
/// part at a time.
struct Current {
    table: String,
    live: LiveState,
    /// The first generation, read a part at a time, and the newer ones laid over it.
    layers: state::Layers<(i64, i64)>,
    /// Whether the first generation's parts come from the run's [`Ahead`].
    read_ahead: bool,
    /// Rows kept unchanged so far, added to the table's counts when it ends (a count by the
    /// table's name for each of millions of rows was a string search each).
    unchanged: u64,
}

impl Current {
    /// Runs `f` on the live state and the parts it reads from.
    fn with_parts<R>(
        &mut self,
        target: &mut dyn Target,
        account: Uuid,
        ahead: Option<&Ahead>,
        f: impl FnOnce(&mut LiveState, &mut dyn Parts) -> R,
    ) -> R {
        let mut parts = state::TargetParts {
            target,
            account,
            table: &self.table,
            layers: &mut self.layers,
            keep: fingerprints,
            ahead: ahead.filter(|_| self.read_ahead).map(|a| a as &dyn state::ReadAhead<(i64, i64)>),
        };
        f(&mut self.live, &mut parts)
    }

    fn find(
        &mut self,
        target: &mut dyn Target,
        account: Uuid,
        ahead: Option<&Ahead>,
        id: &Uuid,
    ) -> Result<Option<(i64, i64)>, ConnectorError> {
        self.with_parts(target, account, ahead, |live, parts| live.find(id, parts))
    }

    /// The entry the run meets next if v1 gives its records in the same order as before.
    fn next(
        &mut self,
        target: &mut dyn Target,
        account: Uuid,
        ahead: Option<&Ahead>,
    ) -> Result<Option<Entry>, ConnectorError> {
        self.with_parts(target, account, ahead, |live, parts| live.next(parts))
    }

    /// The ids of the live rows the run did not give again.
    fn finish(
        mut self,
        target: &mut dyn Target,
        account: Uuid,
        ahead: Option<&Ahead>,
    ) -> Result<Vec<Uuid>, ConnectorError> {
        let live = std::mem::replace(&mut self.live, LiveState::in_parts());
        let gone = self.with_parts(target, account, ahead, |_, parts| live.finish(parts))?;
        Ok(gone.into_iter().map(|e| e.0).collect())
    }
}

/// A connection that sees v2 as the run's transaction began ([`Target::snapshot_reader`]).
type Reader = Box<dyn RowsById>;

/// A part read ahead: its entries and last chunk, `None` once every part was sent.
type AheadPart = NextPart;

/// The parts of the first generation of the tables' row state, read in order on a thread of
/// their own while the run maps the tables' records, table after table: reading and decoding
/// them on the mapping thread stalled the readers of v1 behind it (TPC-H's order lines: 24
/// parts, 0.25 s), and so did waiting for a table's first part when the run reached it (seven
/// waits of 3-50 ms a final migration at scale 0.5: the next table's first part is read while
/// the run maps the last rows of the one before).
struct Ahead {
    rx: mpsc::Receiver<(usize, AheadPart)>,
    /// Gives the reader back once the parts are read, or the run stopped taking them.
    handle: Option<std::thread::JoinHandle<Reader>>,
    /// The tables the thread reads, in order: name and first generation.
    tables: Vec<(String, i32)>,
    /// The table whose parts are taken now, and the first the run may take next.
    serving: usize,
    next: usize,
}

impl Ahead {
    fn start(mut reader: Reader, account: Uuid, tables: Vec<(String, i32)>) -> Result<Self, ConnectorError> {
        // One part waits while the next is read: 8 MiB at most.
        let (tx, rx) = mpsc::sync_channel::<(usize, AheadPart)>(1);
        let queue = tables.clone();
        let handle = std::thread::Builder::new()
            .name("state-ahead".into())
            .spawn(move || {
                for (i, (table, generation)) in queue.into_iter().enumerate() {
                    let mut after = -1;
                    loop {
                        let part = state::Part { generation, after, limit: state::PART_CHUNKS };
                        let (sent, end) = match reader.state_part(account, &table, part) {
                            Ok(heads) if heads.is_empty() => (tx.send((i, Ok(None))), true),
                            Ok(heads) => {
                                after = heads.last().map_or(after, |h| h.chunk);
                                let entries = state::live(&heads, |_, v1, v2| (v1, v2));
                                (tx.send((i, Ok(Some((entries, after))))), false)
                            }
                            Err(e) => {
                                let _ = tx.send((i, Err(e)));
                                return reader;
                            }
                        };
                        if sent.is_err() {
                            return reader;
                        }
                        if end {
                            break;
                        }
                    }
                }
                reader
            })
            .map_err(|e| ConnectorError::Query { what: "reading the row state".into(), reason: e.to_string() })?;
        Ok(Self { rx, handle: Some(handle), tables, serving: 0, next: 0 })
    }

    /// Serves the parts of `table` (first generation `generation`) from now on, if it is one
    /// of the tables still to come; the parts of the tables before it are passed over.
    fn take(&mut self, table: &str, generation: i32) -> bool {
        let found = self.tables.iter().skip(self.next).position(|(t, g)| t == table && *g == generation);
        match found {
            Some(k) => {
                self.serving = self.next + k;
                self.next = self.serving + 1;
                true
            }
            None => false,
        }
    }

    /// Stops the thread (at its next part) and gives its reader back.
    fn stop(mut self) -> Option<Reader> {
        self.end()
    }

    /// Hangs up on the thread, which stops at its next part, and waits for it.
    fn end(&mut self) -> Option<Reader> {
        let handle = self.handle.take()?;
        drop(std::mem::replace(&mut self.rx, mpsc::sync_channel(0).1));
        handle.join().ok()
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.end();
    }
}

impl state::ReadAhead<(i64, i64)> for Ahead {
    fn next_part(&self) -> AheadPart {
        loop {
            // A thread that stopped without saying it was done must not pass for the state's
            // end: the entries not sent would count as rows v1 no longer gives.
            let (i, part) = self.rx.recv().map_err(|_| ConnectorError::Query {
                what: "reading the row state".into(),
                reason: "the thread reading it ahead stopped".into(),
            })?;
            match i.cmp(&self.serving) {
                // A table the run passed over; its error ends the parts of every table after it.
                std::cmp::Ordering::Less if part.is_ok() => continue,
                std::cmp::Ordering::Less => return part,
                std::cmp::Ordering::Equal => return part,
                // Parts of a later table while this one's are asked for: never sent so.
                std::cmp::Ordering::Greater => {
                    return Err(ConnectorError::Query {
                        what: "reading the row state".into(),
                        reason: "its parts came out of order".into(),
                    });
                }
            }
        }
    }
}

/// What the final migration keeps of an entry: its v1 and v2 fingerprints.
fn fingerprints(_: state::Loc, v1: i64, v2: i64) -> (i64, i64) {
    (v1, v2)
}

/// What the recovery bundle is made from, besides v2's rows: apart from the rest of
/// [`DeltaTarget`], so that the bundle can be written on a thread of its own while the run's
/// transaction writes.
struct Saving<'a> {
    pack: &'a crate::pack::Pack,
    account: Uuid,
    /// What the preview found changed, created or deleted in v2, by id (shared with the
    /// thread that writes the bundle as the run goes).
    drifted: Arc<HashMap<Uuid, Drift>>,
    /// Tables in the pack's order (parents first).
    table_order: Vec<String>,
    bundle_dir: PathBuf,
    preview_id: String,
    /// Rows of the bundle read from v2 at a time ([`BUNDLE_PART`]).
    part: usize,
}

/// A part of the recovery bundle sent to its thread: the action, the table, the ids.
type SpoolPart = (&'static str, String, Vec<Uuid>);

/// The recovery bundle, written as the run goes, on a thread of its own that reads the rows
/// the run overwrites from v2 a part at a time ([`BUNDLE_PART`]) on a connection that sees v2
/// as the run began, as soon as the run has met a part of them: read at commit, the bundle
/// was the run's last half second (TPC-H at scale 0.5, 1 % changed: 43,297 order lines, with
/// one core idle), and the rows come in load order. Only the last part and the rows the
/// commit deletes are left for the commit. Dropped before it finished, it stops its thread
/// and removes its lines.
struct Spool {
    tx: Option<mpsc::SyncSender<SpoolPart>>,
    handle: Option<std::thread::JoinHandle<Result<BundleManifest, String>>>,
    /// The ids of the current table's rows overwritten, not sent yet.
    part: Vec<Uuid>,
    size: usize,
    dir: PathBuf,
}

impl Spool {
    fn start(mut reader: Reader, saving: &Saving<'_>) -> Result<Self, ConnectorError> {
        let mut file = BundleFile::create(&saving.bundle_dir).map_err(bundle_error)?;
        let drifted = Arc::clone(&saving.drifted);
        let columns: HashMap<String, TableColumns> =
            saving.table_order.iter().map(|t| (t.clone(), table_columns(saving.pack, t))).collect();
        let (account, preview_id) = (saving.account, saving.preview_id.clone());
        // One part waits while the thread reads the one before.
        let (tx, rx) = mpsc::sync_channel::<SpoolPart>(1);
        let handle = std::thread::Builder::new()
            .name("bundle".into())
            .spawn(move || {
                for (action, table, part) in rx {
                    let cols = columns.get(&table).ok_or_else(|| format!("{table} is not a table of the pack"))?;
                    let mut read =
                        |t: &str, c: &[(String, Type)], ids: &[Uuid]| reader.read_rows_by_id(t, c, account, ids);
                    let now = read_part(&drifted, &mut read, &table, &cols.0, &part).map_err(|e| e.to_string())?;
                    file.write_part(&drifted, action, &table, cols, &part, now).map_err(|e| e.to_string())?;
                }
                file.finish(account, &preview_id).map_err(|e| e.to_string())
            })
            .map_err(bundle_error)?;
        Ok(Self {
            tx: Some(tx),
            handle: Some(handle),
            part: Vec::new(),
            size: saving.part.max(1),
            dir: saving.bundle_dir.clone(),
        })
    }

    /// A row of `table` the run overwrites.
    fn overwritten(&mut self, table: &str, id: Uuid) -> Result<(), ConnectorError> {
        self.part.push(id);
        if self.part.len() >= self.size { self.flush(table) } else { Ok(()) }
    }

    /// Sends the rows of `table` overwritten and not sent yet (at the table's end).
    fn flush(&mut self, table: &str) -> Result<(), ConnectorError> {
        if self.part.is_empty() {
            return Ok(());
        }
        let part = std::mem::take(&mut self.part);
        self.send(OVERWRITTEN, table, part)
    }

    /// Sends a part; where the thread stopped, its error.
    fn send(&mut self, action: &'static str, table: &str, ids: Vec<Uuid>) -> Result<(), ConnectorError> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send((action, table.to_owned(), ids)).is_ok());
        if sent { Ok(()) } else { self.join().map(|_| ()).and(Err(bundle_error("its thread stopped"))) }
    }

    /// No more parts: the thread writes the ones it has, then syncs the bundle.
    fn close(&mut self) {
        self.tx = None;
    }

    /// Waits for the bundle to be on disk.
    fn finish(mut self) -> Result<BundleManifest, ConnectorError> {
        self.close();
        self.join()
    }

    fn join(&mut self) -> Result<BundleManifest, ConnectorError> {
        let handle = self.handle.take().ok_or_else(|| bundle_error("its thread stopped"))?;
        handle.join().unwrap_or_else(|_| Err("its thread stopped".into())).map_err(bundle_error)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if self.handle.is_some() {
            self.close();
            let _ = self.join();
        }
        // Gone once the bundle is whole (renamed); removed otherwise, and the folder with it if
        // it holds nothing else.
        let _ = std::fs::remove_file(self.dir.join(PARTIAL_ROWS));
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A target in front of the real one: keeps what must change and writes it at commit, with
/// the recovery bundle safely on disk before the commit. It holds the state of one table at a time.
struct DeltaTarget<'a> {
    inner: &'a mut dyn Target,
    /// A connection that sees v2 as the run's transaction began (none where v2 has none): it
    /// reads the row state ahead while the run maps.
    reader: Option<Reader>,
    /// The row state's parts read ahead on [`Self::reader`], table after table.
    ahead: Option<Ahead>,
    /// The tables with a row state, in the run's order, and the first generation of each.
    bases: Vec<(String, i32)>,
    /// The recovery bundle, read and written as the run goes on a second such connection
    /// (none where v2 has none: the bundle is then read at commit, before the rows are written).
    spool: Option<Spool>,
    saving: Saving<'a>,
    current: Option<Current>,
    /// A failure to read the row state where it could not be returned at once
    /// ([`Target::keep_unchanged`] answers yes or no): returned by the next call that can.
    failed: Option<ConnectorError>,
    /// Whether every loaded row of the table last finished was given again.
    all_given: bool,
    /// Tables in the order their rows are written (parents first).
    order: Vec<String>,
    columns: HashMap<String, Vec<String>>,
    /// Rows to upsert (at commit, or as the run goes where there is a [`Self::spool`]), by table, encoded
    /// one after another ([`state::encode_entry`]):
    /// a fifth of the memory of their values, for a final migration that changes many. In
    /// segments of [`PENDING_SEGMENT`] bytes: one buffer that doubles as it grows holds twice
    /// its rows for a moment each time it moves (TPC-H at scale 2: 38 MiB for 120,000 rows).
    pending: HashMap<String, Vec<Vec<u8>>>,
    /// Rows of the current table held in [`Self::pending`]. Where there is a [`Self::spool`] (the
    /// recovery bundle read on a connection of its own that sees v2 as the run began), the rows
    /// are upserted while the run goes on, a batch as soon as it is full and a table's last when
    /// it ends, rather than all at commit (the writes are the run's transaction's until it
    /// commits either way).
    held: usize,
    /// Loaded rows the commit overwrites, in the order the run met them: (table, id) (where
    /// there is no [`Self::spool`]).
    rewritten: Vec<(String, Uuid)>,
    /// Loaded rows v1 no longer gives: (table, id).
    gone: Vec<(String, Uuid)>,
    last_row: Vec<Value>,
    counts: BTreeMap<String, DeltaCounts>,
    bundle: Option<BundleManifest>,
}

impl DeltaTarget<'_> {
    /// Whether the parts of `table`'s first generation `generation` are read ahead: they are
    /// when the reader reads them already, or can start with them (and the tables after).
    fn read_ahead(&mut self, table: &str, generation: i32) -> Result<bool, ConnectorError> {
        if self.ahead.as_mut().is_some_and(|a| a.take(table, generation)) {
            return Ok(true);
        }
        // Not among the tables still to come (a table a second entity writes, met again): the
        // reader starts again from its first part.
        let reader = match self.ahead.take() {
            Some(ahead) => ahead.stop(),
            None => self.reader.take(),
        };
        let Some(reader) = reader else { return Ok(false) };
        let mut tables = vec![(table.to_owned(), generation)];
        if let Some(at) = self.bases.iter().position(|(t, _)| t == table) {
            tables.extend(self.bases.iter().skip(at + 1).cloned());
        }
        let mut ahead = Ahead::start(reader, self.saving.account, tables)?;
        let taken = ahead.take(table, generation);
        self.ahead = Some(ahead);
        Ok(taken)
    }

    /// Upserts the rows held for the current table (where there is a [`Self::spool`]).
    fn write_held(&mut self) -> Result<(), ConnectorError> {
        self.held = 0;
        let Some(table) = self.current.as_ref().map(|c| c.table.as_str()) else { return Ok(()) };
        // The bundle reads the rows these overwrite at the same time: the pages either brings
        // into PostgreSQL's buffers serve the other.
        if let Some(spool) = self.spool.as_mut() {
            spool.flush(table)?;
        }
        upsert_pending(&mut *self.inner, table, &self.columns, &mut self.pending)
    }
}

impl Target for DeltaTarget<'_> {
    fn dialect(&self) -> Dialect {
        self.inner.dialect()
    }
    fn replaces_account(&self) -> bool {
        false
    }
    fn ensure_schema(&mut self, v2: &Schema) -> Result<bool, ConnectorError> {
        self.inner.ensure_schema(v2)
    }
    fn begin(&mut self) -> Result<(), ConnectorError> {
        // `final_run` began the transaction: the preview it checked was taken inside it.
        Ok(())
    }
    fn exec_with_uuid(&mut self, sql: &str, id: Uuid) -> Result<u64, ConnectorError> {
        self.inner.exec_with_uuid(sql, id)
    }
    fn exec_sql(&mut self, sql: &str) -> Result<u64, ConnectorError> {
        self.inner.exec_sql(sql)
    }
    fn trust_references(&mut self, refs: &[crate::connect::Reference]) {
        self.inner.trust_references(refs);
    }
    fn start_table(&mut self, table: &str, columns: &[String]) -> Result<(), ConnectorError> {
        if let Some(cur) = self.current.take() {
            // A table not finished still counts what it kept.
            self.counts.entry(cur.table).or_default().unchanged += cur.unchanged;
        }
        if !self.order.iter().any(|t| t == table) {
            self.order.push(table.to_owned());
        }
        self.columns.insert(table.to_owned(), columns.to_vec());
        // The first generation is read a part at a time, in the order the run meets its
        // records, with what later final migrations wrote laid over it.
        let mut heads = Vec::new();
        self.inner.scan_state(self.saving.account, table, false, &mut |h| {
            heads.push(h);
            Ok(())
        })?;
        let layers = state::Layers::read(self.inner, self.saving.account, table, &heads, &fingerprints)?;
        let read_ahead = match layers.base() {
            Some(g) => self.read_ahead(table, g)?,
            None => false,
        };
        self.current =
            Some(Current { table: table.to_owned(), live: LiveState::in_parts(), layers, read_ahead, unchanged: 0 });
        self.counts.entry(table.to_owned()).or_default();
        Ok(())
    }
    fn write_row(&mut self, row: &[Value]) -> Result<(), ConnectorError> {
        self.last_row.clear();
        self.last_row.extend_from_slice(row);
        Ok(())
    }
    fn write_state(&mut self, e: &StateEntry<'_>) -> Result<(), ConnectorError> {
        if let Some(failed) = self.failed.take() {
            return Err(failed);
        }
        let drifted = self.saving.drifted.contains_key(&e.id);
        let Some(cur) = self.current.as_mut() else { return Ok(()) };
        let loaded = match cur.find(&mut *self.inner, self.saving.account, self.ahead.as_ref(), &e.id)? {
            Some((v1, v2)) => {
                cur.live.give();
                // Unchanged only if the mapping gives exactly the row it loaded: an unchanged v1
                // record can still map differently when a parent's outcome changed (a duplicate
                // now merged into another survivor re-points its children).
                if v1 == e.v1_fp && v2 == e.v2_fp && !drifted {
                    cur.unchanged += 1;
                    return Ok(());
                }
                true
            }
            None => false,
        };
        let table = cur.table.clone();
        let c = self.counts.entry(table.clone()).or_default();
        if loaded {
            c.rewritten += 1;
            match self.spool.as_mut() {
                Some(spool) => spool.overwritten(&table, e.id)?,
                None => self.rewritten.push((table.clone(), e.id)),
            }
        } else {
            c.inserted += 1;
        }
        let segments = self.pending.entry(table).or_default();
        if segments.last().is_none_or(|s| s.len() >= PENDING_SEGMENT) {
            segments.push(Vec::with_capacity(PENDING_SEGMENT + PENDING_SEGMENT / 4));
        }
        if let Some(segment) = segments.last_mut() {
            state::encode_entry(segment, "", &self.last_row);
        }
        if self.spool.is_some() {
            self.held += 1;
            if self.held >= UPSERT_ROWS {
                self.write_held()?;
            }
        }
        // The new generation of the row state: written now, in the same transaction.
        self.inner.write_state(e)
    }
    fn keeps_unchanged(&self) -> bool {
        true
    }
    fn keep_next_unchanged(&mut self, v1_fp: i64) -> Option<Uuid> {
        if self.failed.is_some() {
            return None;
        }
        let cur = self.current.as_mut()?;
        let (id, (v1, _)) = match cur.next(&mut *self.inner, self.saving.account, self.ahead.as_ref()) {
            Ok(next) => next?,
            Err(e) => {
                self.failed = Some(e);
                return None;
            }
        };
        (v1 == v1_fp && self.keep_unchanged(&id, v1_fp)).then_some(id)
    }
    fn keep_unchanged(&mut self, id: &Uuid, v1_fp: i64) -> bool {
        if self.failed.is_some() {
            return false;
        }
        let Some(cur) = self.current.as_mut() else { return false };
        let found = match cur.find(&mut *self.inner, self.saving.account, self.ahead.as_ref(), id) {
            Ok(found) => found,
            Err(e) => {
                self.failed = Some(e);
                return false;
            }
        };
        let Some((v1, _)) = found else { return false };
        if v1 != v1_fp || (!self.saving.drifted.is_empty() && self.saving.drifted.contains_key(id)) {
            return false;
        }
        cur.live.give();
        cur.unchanged += 1;
        true
    }
    fn all_given_again(&mut self, table: &str) -> bool {
        let _ = table;
        self.all_given
    }
    fn finish_table(&mut self) -> Result<(), ConnectorError> {
        if let Some(failed) = self.failed.take() {
            return Err(failed);
        }
        if self.spool.is_some() {
            // Before the next table's rows, which may point at these.
            self.write_held()?;
        }
        if let Some(cur) = self.current.take() {
            let table = cur.table.clone();
            self.counts.entry(table.clone()).or_default().unchanged += cur.unchanged;
            let gone = cur.finish(&mut *self.inner, self.saving.account, self.ahead.as_ref())?;
            self.all_given = gone.is_empty();
            self.gone.extend(gone.into_iter().map(|id| (table.clone(), id)));
        }
        Ok(())
    }
    fn commit(&mut self) -> Result<(), ConnectorError> {
        // What goes: loaded rows v1 no longer gives, and rows created in v2.
        let mut gone = std::mem::take(&mut self.gone);
        gone.extend(
            self.saving
                .drifted
                .iter()
                .filter(|(_, d)| d.kind == ChangeKind::Created)
                .map(|(id, d)| (d.table.clone(), *id)),
        );
        gone.sort();
        let bundle = match self.spool.take() {
            // The rows overwritten are saved but for the last part: the rows that go are read
            // and saved there while they are deleted here. Nothing is overwritten for anyone
            // until the commit, which waits for the bundle to be on disk.
            Some(mut spool) => {
                for table in &self.saving.table_order {
                    let ids = ids_in(&gone, table);
                    for part in ids.chunks(self.saving.part.max(1)) {
                        spool.send(DELETED, table, part.to_vec())?;
                    }
                }
                spool.close();
                let DeltaTarget { inner, saving, order, columns, pending, counts, .. } = self;
                let written = write_changes(&mut **inner, saving, order, columns, pending, counts, &gone);
                // The bundle's error first, as when it is written before the rows.
                let bundle = spool.finish()?;
                crate::failpoint::reached("final:after-bundle");
                written.map(|()| bundle)
            }
            None => {
                let rewritten = std::mem::take(&mut self.rewritten);
                let DeltaTarget { inner, saving, order, columns, pending, counts, .. } = self;
                let account = saving.account;
                let read: Box<ReadById<'_>> = Box::new(|t, c, ids| inner.read_rows_by_id(t, c, account, ids));
                let bundle = saving.write(vec![read], &rewritten, &gone)?;
                crate::failpoint::reached("final:after-bundle");
                write_changes(&mut **inner, saving, order, columns, pending, counts, &gone)?;
                Ok(bundle)
            }
        };
        self.bundle = Some(bundle?);
        crate::failpoint::reached("final:before-commit");
        let started = std::time::Instant::now();
        self.inner.commit()?;
        tracing::debug!(ms = started.elapsed().as_millis() as u64, "committed");
        Ok(())
    }
    fn rollback(&mut self) -> Result<(), ConnectorError> {
        // Its thread stopped and its lines removed: the run leaves no part of a bundle.
        self.spool = None;
        self.inner.rollback()
    }
    fn read_rows(
        &mut self,
        table: &str,
        columns: &[(String, Type)],
        account: Option<Uuid>,
    ) -> Result<Vec<Vec<Value>>, ConnectorError> {
        self.inner.read_rows(table, columns, account)
    }
}

/// A line of the recovery bundle's `rows.jsonl`, written as it is serialized: a final
/// migration can save tens of thousands of rows, and building a JSON tree of each first cost
/// more than reading them. Fields in name order, like the objects serde_json builds.
#[derive(Serialize)]
struct BundleLine<'a> {
    action: &'a str,
    id: Uuid,
    legacy_ref: &'a str,
    reason: &'a str,
    table: &'a str,
    values: LineValues<'a>,
}

/// The ids of `table`'s rows in a list of `(table, id)`, in the list's order.
fn ids_in(list: &[(String, Uuid)], table: &str) -> Vec<Uuid> {
    list.iter().filter(|(t, _)| t == table).map(|(_, id)| *id).collect()
}

/// A bundle line's row: as read from v2 (an object of its columns in name order, each value
/// as [`Value::to_json_exact`] gives it), as the preview saw it, or `null` when it was gone.
enum LineValues<'a> {
    Row { cols: &'a [(String, Type)], by_name: &'a [usize], row: &'a [Value] },
    Json(&'a serde_json::Map<String, serde_json::Value>),
    Missing,
}

impl Serialize for LineValues<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            LineValues::Row { cols, by_name, row } => {
                let mut m = s.serialize_map(Some(by_name.len()))?;
                for &i in *by_name {
                    m.serialize_entry(&cols[i].0, &Exact(row.get(i).unwrap_or(&Value::Null)))?;
                }
                m.end()
            }
            LineValues::Json(map) => map.serialize(s),
            LineValues::Missing => s.serialize_unit(),
        }
    }
}

/// A value serialized as [`Value::to_json_exact`] gives it, without building it.
struct Exact<'a>(&'a Value);

impl Serialize for Exact<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            // As serde_json's numbers: a value JSON cannot hold is null.
            Value::Float(f) if f.is_finite() => s.serialize_f64(*f),
            Value::Float(_) => s.serialize_unit(),
            Value::Text(t) => s.serialize_str(t),
            Value::Date(d) => s.collect_str(d),
            Value::Uuid(u) => s.collect_str(&u.hyphenated()),
            Value::Bytes(_) => self.0.to_json_exact().serialize(s),
        }
    }
}

/// A row read from v2 keyed by its id, when it has one and a legacy reference (the first and
/// third columns of every table cutover writes).
fn by_id(row: Vec<Value>) -> Option<(Uuid, Vec<Value>)> {
    match (row.first(), row.get(2)) {
        (Some(Value::Uuid(id)), Some(Value::Text(_))) => Some((*id, row)),
        _ => None,
    }
}

/// A recovery bundle that could not be written, and why.
fn bundle_error(why: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Query { what: "writing the recovery bundle".into(), reason: why.to_string() }
}

/// Reads rows of a table by id: `(table, columns, ids)`.
type ReadById<'r> = dyn FnMut(&str, &[(String, Type)], &[Uuid]) -> Result<Vec<Vec<Value>>, ConnectorError> + Send + 'r;

impl Saving<'_> {
    /// Saves every row the commit will overwrite or delete, as it is in v2 before the run
    /// writes it: read from v2 by id through `reads` (which must not see the run's writes; the
    /// parts go to each in turn, read at the same time), or taken from the preview for rows
    /// that drifted (a row deleted in v2 is saved as it was loaded). Synced to disk before it
    /// returns.
    fn write(
        &self,
        reads: Vec<Box<ReadById<'_>>>,
        rewritten: &[(String, Uuid)],
        gone: &[(String, Uuid)],
    ) -> Result<BundleManifest, ConnectorError> {
        let started = std::time::Instant::now();
        let manifest = self.write_files(reads, rewritten, gone).map_err(bundle_error)?;
        tracing::debug!(ms = started.elapsed().as_millis() as u64, "recovery bundle written");
        Ok(manifest)
    }

    fn write_files(
        &self,
        reads: Vec<Box<ReadById<'_>>>,
        rewritten: &[(String, Uuid)],
        gone: &[(String, Uuid)],
    ) -> Result<BundleManifest, BoxError> {
        let mut file = BundleFile::create(&self.bundle_dir)?;
        // Every part to save, in the bundle's order: by action, then table (the rows overwritten
        // in the order the run met them, the rows deleted by id).
        let mut ids_of = Vec::new();
        for (action, list) in [(OVERWRITTEN, rewritten), (DELETED, gone)] {
            for table in &self.table_order {
                let ids = ids_in(list, table);
                if !ids.is_empty() {
                    ids_of.push((action, table.as_str(), ids));
                }
            }
        }
        // A part of the ids at a time, read and then written: the rows of a whole table held at
        // once grew with the data (TPC-H's order lines at scale 5: 300,000 rows, past 300 MiB
        // with the rest of the run).
        let plan: Vec<(&str, &str, &[Uuid])> = ids_of
            .iter()
            .flat_map(|(action, table, ids)| ids.chunks(self.part.max(1)).map(|part| (*action, *table, part)))
            .collect();
        let columns: HashMap<&str, TableColumns> =
            plan.iter().map(|(_, table, _)| (*table, table_columns(self.pack, table))).collect();
        let columns = &columns;
        std::thread::scope(|s| -> Result<(), BoxError> {
            // The next parts are read from v2 on threads of their own, part k by reader k mod n,
            // while this one writes the last (each alone left a core idle: v2 looking the rows
            // up, then this serializing). Handed over, not queued: n + 1 parts decoded at most.
            let n = reads.len();
            let mut rxs = Vec::with_capacity(n);
            let plan = &plan;
            for (k, mut read) in reads.into_iter().enumerate() {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Result<HashMap<Uuid, Vec<Value>>, ConnectorError>>(0);
                rxs.push(rx);
                s.spawn(move || {
                    for (_, table, part) in plan.iter().skip(k).step_by(n) {
                        let rows = read_part(&self.drifted, &mut *read, table, &columns[table].0, part);
                        let failed = rows.is_err();
                        // Gone when writing failed: nothing more to read.
                        if tx.send(rows).is_err() || failed {
                            return;
                        }
                    }
                });
            }
            for (i, (action, table, part)) in plan.iter().enumerate() {
                let rx = rxs.get(i % n.max(1)).ok_or_else(|| bundle_error("no reader"))?;
                let now = rx.recv().map_err(|_| bundle_error("its reading thread stopped"))??;
                file.write_part(&self.drifted, action, table, &columns[table], part, now)?;
            }
            Ok(())
        })?;
        file.finish(self.account, &self.preview_id)
    }
}

/// How a bundle line's action is written.
const OVERWRITTEN: &str = "overwritten";
const DELETED: &str = "deleted";

/// Errors of writing the bundle's files, before they become a [`ConnectorError`].
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a row is in the bundle.
fn reason(drift: Option<ChangeKind>, v1_gone: bool) -> &'static str {
    match (drift, v1_gone) {
        (Some(ChangeKind::Created), _) => "created in v2",
        (Some(ChangeKind::Changed), false) => "changed in v2",
        (Some(ChangeKind::Changed), true) => "changed in v2; its v1 record is gone",
        (Some(ChangeKind::Deleted), _) => "deleted in v2",
        (None, true) => "its v1 record is gone",
        (None, false) => "its v1 record changed",
    }
}

/// Reads a part of the bundle's rows from v2, by id: the rows that did not drift, which are
/// in v2 as loaded (the others are saved as the preview saw them).
fn read_part(
    drifted: &HashMap<Uuid, Drift>,
    read: &mut ReadById<'_>,
    table: &str,
    cols: &[(String, Type)],
    part: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Value>>, ConnectorError> {
    let plain: Vec<Uuid> = part.iter().filter(|id| !drifted.contains_key(id)).copied().collect();
    let rows = if plain.is_empty() { Vec::new() } else { read(table, cols, &plain)? };
    Ok(rows.into_iter().filter_map(by_id).collect())
}

/// A table's columns as the bundle reads them, and their order by name, the order a JSON
/// object of them has.
fn table_columns(pack: &crate::pack::Pack, table: &str) -> TableColumns {
    let cols = crate::preview::target_columns(pack, table);
    let mut by_name: Vec<usize> = (0..cols.len()).collect();
    by_name.sort_by(|&a, &b| cols[a].0.cmp(&cols[b].0));
    (cols, by_name)
}

/// The recovery bundle's `rows.jsonl` as it is written, its lines hashed and counted as they
/// go. It bears its name only once it is whole and synced ([`BundleFile::finish`]); until then
/// it is `rows.jsonl.partial`, so a run that stops halfway leaves nothing that passes for a
/// bundle.
struct BundleFile {
    dir: PathBuf,
    f: std::io::BufWriter<std::fs::File>,
    h: Sha256,
    overwritten: u64,
    deleted: u64,
    line: Vec<u8>,
}

/// The name of a bundle's lines until they are whole.
const PARTIAL_ROWS: &str = "rows.jsonl.partial";

/// Removes the lines earlier runs left beside `current` (in the project's recovery folder)
/// that never became a bundle, and each such run's folder where nothing else is in it.
///
/// A run stopped by a signal or a crash runs no destructor: its lines stay, though its
/// transaction was rolled back and nothing it read was overwritten (a bundle is renamed whole
/// before the run commits). A run starts only holding the project's lease, so no other run
/// of the project is writing such lines. A whole bundle (`rows.jsonl`, `manifest.json`) and
/// anything else is left as it is; what cannot be removed is logged and left.
fn sweep_partials(project: &Path, current: &Path) {
    let Ok(entries) = std::fs::read_dir(project) else { return };
    for entry in entries.flatten() {
        let run = entry.path();
        if run == current || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let partial = run.join(PARTIAL_ROWS);
        if !partial.is_file() {
            continue;
        }
        match std::fs::remove_file(&partial) {
            Ok(()) => {
                tracing::info!(path = %partial.display(), "removed the lines of a run that stopped before its bundle was whole");
                let _ = std::fs::remove_dir(&run);
            }
            Err(e) => {
                tracing::warn!(path = %partial.display(), error = %e, "could not remove the lines of an unfinished bundle")
            }
        }
    }
}

impl BundleFile {
    fn create(dir: &Path) -> Result<Self, BoxError> {
        if let Some(project) = dir.parent() {
            sweep_partials(project, dir);
        }
        std::fs::create_dir_all(dir)?;
        let f = std::io::BufWriter::new(std::fs::File::create(dir.join(PARTIAL_ROWS))?);
        Ok(Self { dir: dir.to_owned(), f, h: Sha256::new(), overwritten: 0, deleted: 0, line: Vec::new() })
    }

    /// Writes the lines of a part of `table`'s rows, in its order: a drifted row as the preview
    /// saw it, any other as `now` has it (read from v2; one missing there is gone from v2).
    fn write_part(
        &mut self,
        drifted: &HashMap<Uuid, Drift>,
        action: &str,
        table: &str,
        (cols, by_name): &TableColumns,
        part: &[Uuid],
        mut now: HashMap<Uuid, Vec<Value>>,
    ) -> Result<(), BoxError> {
        for &id in part {
            let drift = drifted.get(&id);
            let row = if drift.is_none() { now.remove(&id) } else { None };
            let (legacy_ref, values) = match (drift, &row) {
                (Some(d), _) => (d.legacy_ref.as_str(), LineValues::Json(&d.values)),
                (None, Some(r)) => (
                    match r.get(2) {
                        Some(Value::Text(l)) => l.as_str(),
                        _ => "",
                    },
                    LineValues::Row { cols, by_name, row: r },
                ),
                (None, None) => ("", LineValues::Missing),
            };
            let line = BundleLine {
                action,
                id,
                legacy_ref,
                reason: reason(drift.map(|d| d.kind), action == DELETED),
                table,
                values,
            };
            self.line.clear();
            serde_json::to_writer(&mut self.line, &line)?;
            self.line.push(b'\n');
            self.h.update(&self.line);
            self.f.write_all(&self.line)?;
            if action == DELETED {
                self.deleted += 1;
            } else {
                self.overwritten += 1;
            }
        }
        Ok(())
    }

    /// Syncs the lines to disk under their name, then writes the manifest.
    fn finish(mut self, account: Uuid, preview_id: &str) -> Result<BundleManifest, BoxError> {
        self.f.flush()?;
        self.f.get_ref().sync_all()?;
        std::fs::rename(self.dir.join(PARTIAL_ROWS), self.dir.join("rows.jsonl"))?;
        let manifest = BundleManifest {
            path: self.dir.display().to_string(),
            preview_id: preview_id.to_owned(),
            rows: self.overwritten + self.deleted,
            overwritten: self.overwritten,
            deleted: self.deleted,
            sha256: self.h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        };
        let mf = serde_json::json!({"account_id": account, "manifest": manifest});
        let mut m = std::fs::File::create(self.dir.join("manifest.json"))?;
        m.write_all(serde_json::to_string_pretty(&mf)?.as_bytes())?;
        m.sync_all()?;
        // The new names, on disk too.
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(manifest)
    }
}

/// A table's columns, and their positions in name order (a JSON object's).
type TableColumns = (Vec<(String, Type)>, Vec<usize>);

/// Rows of the recovery bundle read from v2 at a time (and held, decoded, until written).
const BUNDLE_PART: usize = 5_000;

/// Rows upserted by one statement. Where the rows are written as the run goes
/// (where there is a [`DeltaTarget::spool`]), a batch is also what waits for its upsert, decoded, beside the
/// run's other buffers: 4,096 held TPC-H's final migration at scale 0.5 to its peak RSS before
/// they were (16,384: 20 MiB more), in the same time.
const UPSERT_ROWS: usize = 4_096;

/// Bytes of encoded rows to upsert held in one buffer (see [`DeltaTarget::pending`]).
const PENDING_SEGMENT: usize = 4 << 20;

/// Writes a batch of decoded rows.
type WriteBatch<'w> = dyn FnMut(&[Vec<Value>]) -> Result<(), ConnectorError> + 'w;

/// Decodes the rows to write to `table` encoded in `segments`, in order, and hands them to
/// `write` `batch` at a time (the last batch may be smaller): decoded, rows take five times the
/// memory they take encoded. Each segment is freed once decoded.
fn in_batches(
    table: &str,
    segments: Vec<Vec<u8>>,
    batch: usize,
    write: &mut WriteBatch<'_>,
) -> Result<(), ConnectorError> {
    let undecodable = |reason| ConnectorError::Query { what: format!("the rows to write to {table}"), reason };
    let mut rows: Vec<Vec<Value>> = Vec::new();
    for segment in segments {
        let mut at = 0;
        while at < segment.len() {
            let decoded = state::decode_entries(&segment, &mut at, batch - rows.len()).map_err(undecodable)?;
            rows.extend(decoded.into_iter().map(|(_, values)| values));
            if rows.len() >= batch {
                write(&rows)?;
                rows.clear();
            }
        }
    }
    if !rows.is_empty() {
        write(&rows)?;
    }
    Ok(())
}

/// Upserts the rows held for `table` in `pending`, [`UPSERT_ROWS`] at a time, and lets them go.
fn upsert_pending(
    inner: &mut dyn Target,
    table: &str,
    columns: &HashMap<String, Vec<String>>,
    pending: &mut HashMap<String, Vec<Vec<u8>>>,
) -> Result<(), ConnectorError> {
    let Some(segments) = pending.remove(table) else { return Ok(()) };
    let cols = columns.get(table).map_or(&[][..], Vec::as_slice);
    in_batches(table, segments, UPSERT_ROWS, &mut |rows| inner.upsert_rows(table, cols, &["id"], rows))
}

/// Writes the rows the final migration changes: upserts the pending rows table by table
/// (parents first), then deletes what goes (children first) and leaves its row state.
fn write_changes(
    inner: &mut dyn Target,
    saving: &Saving<'_>,
    order: &[String],
    columns: &HashMap<String, Vec<String>>,
    pending: &mut HashMap<String, Vec<Vec<u8>>>,
    counts: &mut BTreeMap<String, DeltaCounts>,
    gone: &[(String, Uuid)],
) -> Result<(), ConnectorError> {
    let started = std::time::Instant::now();
    for table in order {
        upsert_pending(inner, table, columns, pending)?;
    }
    // Children before parents.
    for table in saving.table_order.iter().rev() {
        let ids = ids_in(gone, table);
        if !ids.is_empty() {
            let n = inner.delete_ids(table, &ids)?;
            counts.entry(table.clone()).or_default().deleted += n;
        }
        // Rows created in v2 never had a state; the others leave it.
        let tombstones: Vec<Uuid> =
            ids.into_iter().filter(|id| saving.drifted.get(id).is_none_or(|d| d.kind != ChangeKind::Created)).collect();
        if !tombstones.is_empty() {
            inner.write_state_deleted(saving.account, table, &tombstones)?;
        }
    }
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "rows written and deleted");
    Ok(())
}

/// Runs the final migration in one transaction. The overwrite preview is taken again inside
/// it and must be the one the operator acknowledged (`acknowledged`, its id); otherwise nothing
/// changes and the run stops with [`EngineError::StalePreview`].
pub fn final_run(
    spec: &RunSpec<'_>,
    source: &mut dyn Source,
    target: &mut dyn Target,
    acknowledged: &str,
    bundle_dir: &Path,
    ledger: &mut dyn FnMut(Vec<LedgerRecord>) -> Result<(), EngineError>,
) -> Result<FinalReport, EngineError> {
    let checked = final_begin(spec.pack, target, spec.account_key, acknowledged, None)?;
    final_run_checked(spec, source, target, checked, bundle_dir, ledger)
}

/// The first half of [`final_run`]: begins the run's transaction and takes the overwrite
/// preview inside it, which must be the acknowledged one. On success the transaction stays
/// open for [`final_run_checked`]; on failure it is rolled back. A caller can so refuse a
/// stale acknowledgement before it records a run, without taking the preview twice.
///
/// `kept`, the acknowledged preview as taken on its own before, stands in for taking it again
/// when it still [holds](StampedPreview::holds) in the transaction: v2 unchanged since.
pub fn final_begin(
    pack: &crate::pack::Pack,
    target: &mut dyn Target,
    account_key: &str,
    acknowledged: &str,
    kept: Option<StampedPreview>,
) -> Result<Checked, EngineError> {
    target.begin_consistent()?;
    let checked = (|| -> Result<Checked, EngineError> {
        if let Some(k) = kept.filter(|k| k.preview.id == acknowledged) {
            if k.holds(pack, target, account_key) {
                tracing::debug!(preview = %k.preview.id, "v2 unchanged since the acknowledged preview: taken as kept");
                return Ok(Checked { preview: k.preview, reused: true });
            }
            // Why this run takes longer than the last.
            tracing::info!(
                preview = %k.preview.id,
                "v2 may have changed since the acknowledged preview (its change stamp moved, and on PostgreSQL the account's rows were written since or could not be counted alike): taking the preview again"
            );
        }
        let p = preview(pack, target, account_key)?;
        if p.id != acknowledged {
            return Err(EngineError::StalePreview { acknowledged: acknowledged.to_owned(), current: p.id });
        }
        Ok(Checked { preview: p, reused: false })
    })();
    if checked.is_err() {
        let _ = target.rollback();
    }
    checked
}

/// The second half of [`final_run`], in the transaction [`final_begin`] left open on `target`
/// with the preview it checked.
pub fn final_run_checked(
    spec: &RunSpec<'_>,
    source: &mut dyn Source,
    target: &mut dyn Target,
    checked: Checked,
    bundle_dir: &Path,
    ledger: &mut dyn FnMut(Vec<LedgerRecord>) -> Result<(), EngineError>,
) -> Result<FinalReport, EngineError> {
    let Checked { preview: p, reused } = checked;
    let account = account_uuid(spec.account_key);
    // Each table once, where its first entity is (two entities may write one table).
    let mut table_order: Vec<String> = Vec::new();
    for t in spec.pack.entities.iter().filter_map(|e| e.target.as_ref().map(|t| &t.table)) {
        if !table_order.contains(t) {
            table_order.push(t.clone());
        }
    }
    // The new generation of the row state: one above the newest.
    let mut newest = 0;
    // And each table's first generation (heads come oldest first), to read their parts ahead.
    let mut bases = Vec::new();
    for t in &table_order {
        let mut first = None;
        target.scan_state(account, t, false, &mut |h| {
            newest = newest.max(h.generation);
            first = first.or(Some(h.generation));
            Ok(())
        })?;
        bases.extend(first.map(|g| (t.clone(), g)));
    }
    target.set_state_generation(newest + 1);
    let drifted: HashMap<Uuid, Drift> = p
        .items
        .iter()
        .map(|i| {
            let values = match i.kind {
                ChangeKind::Deleted => i.fields.iter().map(|f| (f.column.clone(), f.as_loaded.clone())).collect(),
                _ => i.now_row.clone(),
            };
            (i.id, Drift { kind: i.kind, table: i.table.clone(), legacy_ref: i.legacy_ref.clone(), values })
        })
        .collect();
    // Before the run writes anything: it sees the row state as the preview did.
    let reader = target.snapshot_reader()?;
    let second = if reader.is_some() { target.snapshot_reader()? } else { None };
    let saving = Saving {
        pack: spec.pack,
        account,
        drifted: Arc::new(drifted),
        table_order,
        bundle_dir: bundle_dir.to_owned(),
        preview_id: p.id.clone(),
        part: BUNDLE_PART,
    };
    // Two connections in the run's snapshot: one reads the row state ahead, the other the
    // bundle. With fewer, the bundle is read at commit, before the rows are written.
    let spool = match second {
        Some(second) => Some(Spool::start(second, &saving)?),
        None => None,
    };
    let mut delta = DeltaTarget {
        inner: target,
        reader,
        ahead: None,
        bases,
        spool,
        saving,
        current: None,
        failed: None,
        all_given: false,
        order: Vec::new(),
        columns: HashMap::new(),
        pending: HashMap::new(),
        held: 0,
        rewritten: Vec::new(),
        gone: Vec::new(),
        last_row: Vec::new(),
        counts: BTreeMap::new(),
        bundle: None,
    };
    let report = run(spec, source, Some(&mut delta), ledger)?;
    let bundle =
        delta.bundle.take().ok_or_else(|| EngineError::Ledger("the recovery bundle was not written".into()))?;
    Ok(FinalReport { run: report, tables: delta.counts, bundle, preview_reused: reused })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ReadAhead;

    /// Serves a generation of `chunks` chunks of one entry each, `limit` at a time; fails at
    /// chunk `fail_at` of the table it names, or panics there when `panic`.
    struct Chunks {
        chunks: i32,
        fail_at: Option<(&'static str, i32)>,
        panic: bool,
    }

    impl RowsById for Chunks {
        fn read_rows_by_id(
            &mut self,
            _: &str,
            _: &[(String, Type)],
            _: Uuid,
            _: &[Uuid],
        ) -> Result<Vec<Vec<Value>>, ConnectorError> {
            Ok(Vec::new())
        }
        fn state_part(
            &mut self,
            _: Uuid,
            table: &str,
            part: state::Part,
        ) -> Result<Vec<state::ChunkHead>, ConnectorError> {
            let first = part.after + 1;
            if self.fail_at.is_some_and(|(t, f)| t == table && f < first + part.limit as i32) {
                assert!(!self.panic, "the reader broke");
                return Err(ConnectorError::Query { what: "reading".into(), reason: "the server went away".into() });
            }
            Ok((first..(first + part.limit as i32).min(self.chunks))
                .map(|c| state::ChunkHead {
                    generation: part.generation,
                    chunk: c,
                    kind: state::ChunkKind::Rows,
                    xid: 0,
                    n: 1,
                    // A table's generation in the id's high half: 1 gives ids 1, 2, 3…
                    ids: Uuid::from_u128(((part.generation as u128 - 1) << 64) | (c as u128 + 1)).as_bytes().to_vec(),
                    fps: [(c as i64).to_le_bytes(), (-c as i64).to_le_bytes()].concat(),
                })
                .collect())
        }
    }

    /// Parts read ahead come in order, each chunk once, then the end; a reader that fails
    /// gives its error, and one whose thread dies is an error too, never the state's end
    /// (what was not read would pass for rows v1 no longer gives).
    #[test]
    fn parts_read_ahead_come_in_order_and_end_only_when_read() {
        let chunks = state::PART_CHUNKS as i32 * 2 + 5;
        let table = |g: i32| vec![("t".to_owned(), g)];
        let mut ahead =
            Ahead::start(Box::new(Chunks { chunks, fail_at: None, panic: false }), Uuid::nil(), table(1)).unwrap();
        assert!(ahead.take("t", 1));
        assert_eq!(all_parts(&ahead), (1..=chunks as u128).collect::<Vec<_>>());
        assert!(ahead.stop().is_some(), "the reader comes back");
        for panic in [false, true] {
            let reader = Chunks { chunks, fail_at: Some(("t", state::PART_CHUNKS as i32 + 3)), panic };
            let mut ahead = Ahead::start(Box::new(reader), Uuid::nil(), table(1)).unwrap();
            assert!(ahead.take("t", 1));
            assert!(matches!(ahead.next_part(), Ok(Some(_))));
            let e = ahead.next_part().unwrap_err().to_string();
            assert!(e.contains(if panic { "stopped" } else { "went away" }), "{e}");
        }
    }

    /// The ids of every part `ahead` serves until its table's end; each part's last entry is
    /// its last chunk's.
    fn all_parts(ahead: &Ahead) -> Vec<u128> {
        let mut seen = Vec::new();
        while let Some((entries, last)) = ahead.next_part().unwrap() {
            assert_eq!(entries.last().map(|e| e.1), Some((i64::from(last), -i64::from(last))));
            seen.extend(entries.into_iter().map(|e| e.0.as_u128()));
        }
        seen
    }

    /// The reader goes on from one table to the next; a table the run passes over is skipped,
    /// each table's parts are its own, and a table that is not (or no longer) to come is not
    /// taken, so that the run starts a reader of its own for it.
    #[test]
    fn parts_are_read_ahead_table_after_table() {
        let chunks = state::PART_CHUNKS as i32 + 2;
        let ids = |g: u128| (1..=chunks as u128).map(|c| ((g - 1) << 64) | c).collect::<Vec<_>>();
        let tables = vec![("a".to_owned(), 1), ("b".to_owned(), 2), ("c".to_owned(), 3), ("d".to_owned(), 4)];
        let reader = Chunks { chunks, fail_at: None, panic: false };
        let mut ahead = Ahead::start(Box::new(reader), Uuid::nil(), tables).unwrap();
        assert!(ahead.take("a", 1));
        assert_eq!(all_parts(&ahead), ids(1));
        // b is never met; c with another first generation is not c's parts.
        assert!(!ahead.take("c", 2));
        assert!(ahead.take("c", 3));
        assert_eq!(all_parts(&ahead), ids(3));
        assert!(!ahead.take("a", 1), "a table passed is not read again");
        assert!(!ahead.take("b", 2), "nor one passed over");
        assert!(ahead.take("d", 4));
        assert_eq!(all_parts(&ahead), ids(4));
        assert!(ahead.stop().is_some(), "the reader comes back");
        // Stopped before its table is read to the end: the thread stops at its next part.
        let reader = Chunks { chunks, fail_at: None, panic: false };
        let mut ahead = Ahead::start(Box::new(reader), Uuid::nil(), vec![("a".to_owned(), 1)]).unwrap();
        assert!(ahead.take("a", 1));
        assert!(matches!(ahead.next_part(), Ok(Some(_))));
        assert!(ahead.stop().is_some(), "the reader comes back from a table half read");
        // A table passed over that could not be read: its error, for the table after it.
        let reader = Chunks { chunks, fail_at: Some(("b", 1)), panic: false };
        let tables = vec![("a".to_owned(), 1), ("b".to_owned(), 2), ("c".to_owned(), 3)];
        let mut ahead = Ahead::start(Box::new(reader), Uuid::nil(), tables).unwrap();
        assert!(ahead.take("c", 3));
        let e = ahead.next_part().unwrap_err().to_string();
        assert!(e.contains("went away"), "{e}");
    }

    /// Rows held in segments come out in their order, a batch at a time, whatever segment
    /// boundary a batch crosses; undecodable bytes are an error, not fewer rows.
    #[test]
    fn pending_rows_come_out_in_order_in_full_batches() {
        let mut segments = Vec::new();
        let mut n = 0;
        for rows in [3, 4, 0, 3] {
            let mut seg = Vec::new();
            for _ in 0..rows {
                state::encode_entry(&mut seg, "", &[Value::Int(n), Value::Text(format!("row {n}"))]);
                n += 1;
            }
            segments.push(seg);
        }
        let mut batches: Vec<Vec<i64>> = Vec::new();
        let mut write = |rows: &[Vec<Value>]| {
            batches.push(rows.iter().map(|r| if let Value::Int(i) = r[0] { i } else { -1 }).collect());
            Ok(())
        };
        assert!(in_batches("t", segments, 4, &mut write).is_ok());
        assert_eq!(batches, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
        let mut none = |_: &[Vec<Value>]| Ok(());
        let e = in_batches("t", vec![vec![0xff, 0xff, 0xff]], 4, &mut none).expect_err("undecodable rows");
        assert!(e.to_string().contains("the rows to write to t"), "{e}");
    }

    /// A new bundle removes the lines runs stopped halfway left in the project's recovery
    /// folder, and their folders where empty; whole bundles and other files stay.
    #[test]
    fn a_new_bundle_sweeps_the_lines_of_runs_that_never_finished() {
        let project = tempfile::tempdir().unwrap();
        let run = |n: u32| project.path().join(format!("run-{n}"));
        let put = |n: u32, name: &str| {
            std::fs::create_dir_all(run(n)).unwrap();
            std::fs::write(run(n).join(name), b"{}\n").unwrap();
        };
        put(1, PARTIAL_ROWS);
        put(2, "rows.jsonl");
        put(2, "manifest.json");
        put(3, PARTIAL_ROWS);
        put(3, "notes.txt");
        std::fs::write(project.path().join(PARTIAL_ROWS), b"not a run's folder").unwrap();
        let file = BundleFile::create(&run(4)).unwrap();
        assert!(!run(1).exists());
        assert!(run(2).join("rows.jsonl").is_file() && run(2).join("manifest.json").is_file());
        assert!(!run(3).join(PARTIAL_ROWS).exists() && run(3).join("notes.txt").is_file());
        assert!(project.path().join(PARTIAL_ROWS).is_file());
        assert!(run(4).join(PARTIAL_ROWS).is_file());
        drop(file);
    }

    /// The bundle is the same bytes however many parts it is read in and by however many
    /// readers (the next parts read while the last is written, part k by reader k mod n), each
    /// part read once, drifted rows taken from the preview; a read that fails is the bundle's
    /// error, whichever part and reader it is.
    #[test]
    fn a_bundle_read_in_parts_is_the_bundle_read_at_once() {
        let pack = crate::pack::PackSource::Builtin.load("omikai").unwrap();
        let table_order: Vec<String> =
            pack.entities.iter().filter_map(|e| e.target.as_ref().map(|t| t.table.clone())).collect();
        let (a, b) = (table_order[0].clone(), table_order[1].clone());
        let id = |n: u128| Uuid::from_u128(n);
        let rewritten: Vec<(String, Uuid)> =
            (1..=7).map(|n| (a.clone(), id(n))).chain((8..=12).map(|n| (b.clone(), id(n)))).collect();
        let gone = vec![(b.clone(), id(20)), (b.clone(), id(21))];
        let dir = tempfile::tempdir().unwrap();
        // (part size, readers, the reader and its read that fails): the manifest's counts and
        // hash or the error, the bundle's lines, and the ids each reader was asked for, by read.
        type Reads = Vec<Vec<Vec<u128>>>;
        // Row 5 drifted in v2.
        let saving = |part: usize, name: String| Saving {
            pack: &pack,
            account: Uuid::nil(),
            drifted: Arc::new(HashMap::from([(
                id(5),
                Drift {
                    kind: ChangeKind::Changed,
                    table: a.clone(),
                    legacy_ref: "X:5".into(),
                    values: Default::default(),
                },
            )])),
            table_order: table_order.clone(),
            bundle_dir: dir.path().join(name),
            preview_id: "p".into(),
            part,
        };
        let bundle = |part: usize, readers: usize, fail_at: Option<(usize, usize)>| {
            let saving = saving(part, format!("{part}-{readers}"));
            let logs: Vec<_> = (0..readers).map(|_| Arc::new(std::sync::Mutex::new(Vec::new()))).collect();
            let closures: Vec<Box<ReadById<'_>>> = logs
                .iter()
                .enumerate()
                .map(|(k, reads)| {
                    let fail_at = fail_at.filter(|f| f.0 == k).map(|f| f.1);
                    let mut r = Rows { reads: Arc::clone(reads), fail_at };
                    Box::new(move |t: &str, c: &[(String, Type)], ids: &[Uuid]| {
                        r.read_rows_by_id(t, c, Uuid::nil(), ids)
                    }) as Box<ReadById<'_>>
                })
                .collect();
            let written = saving.write(closures, &rewritten, &gone);
            let rows = std::fs::read_to_string(saving.bundle_dir.join("rows.jsonl")).unwrap_or_default();
            let reads: Reads = logs.iter().map(|l| l.lock().unwrap().clone()).collect();
            (written.map(|m| (m.overwritten, m.deleted, m.sha256)).map_err(|e| e.to_string()), rows, reads)
        };
        let (whole, rows, reads) = bundle(10_000, 1, None);
        let (overwritten, deleted, _) = whole.clone().unwrap();
        assert_eq!((overwritten, deleted), (12, 2));
        assert_eq!(reads, vec![vec![vec![1, 2, 3, 4, 6, 7], (8..=12).collect(), vec![20, 21]]]);
        let ids: Vec<String> =
            rows.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].to_string()).collect();
        let expected: Vec<String> =
            [1u128, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 20, 21].iter().map(|n| format!("\"{}\"", id(*n))).collect();
        assert_eq!(ids, expected);
        assert!(rows.lines().nth(4).unwrap().contains("\"changed in v2\""));
        assert!(rows.lines().nth(10).unwrap().ends_with("\"values\":null}"), "gone from v2 meanwhile");
        let parts: Vec<Vec<u128>> =
            vec![vec![1, 2, 3], vec![4, 6], vec![7], vec![8, 9, 10], vec![11, 12], vec![20, 21]];
        let (in_parts, rows_in_parts, reads) = bundle(3, 1, None);
        assert_eq!((&in_parts, &rows_in_parts), (&whole, &rows));
        assert_eq!(reads, vec![parts.clone()], "each part once, in order, drifted rows not read");
        // Two readers: the same bytes, the parts taken in turn.
        let (by_two, rows_by_two, reads) = bundle(3, 2, None);
        assert_eq!((&by_two, &rows_by_two), (&whole, &rows));
        let (even, odd): (Vec<_>, Vec<_>) = parts.iter().cloned().enumerate().partition(|(i, _)| i % 2 == 0);
        let turns = |v: Vec<(usize, Vec<u128>)>| v.into_iter().map(|(_, p)| p).collect::<Vec<_>>();
        assert_eq!(reads, vec![turns(even), turns(odd)]);
        for (readers, fail_at) in [(1, (0, 1)), (1, (0, 3)), (1, (0, 6)), (2, (0, 1)), (2, (1, 2)), (2, (0, 3))] {
            let (failed, _, reads) = bundle(3, readers, Some(fail_at));
            let e = failed.unwrap_err();
            assert!(e.contains("went away"), "{readers} readers, failing at {fail_at:?}: {e}");
            assert_eq!(reads[fail_at.0].len(), fail_at.1, "no read after the failed one");
        }

        // Written as the run goes: the rows overwritten sent as the run meets them, a part at a
        // time, then the rows deleted. The same bytes; a read that fails is an error at the
        // next part sent or at the end, and leaves no file behind.
        let spooled = |fail_at: Option<usize>| {
            let saving = saving(3, format!("spooled-{fail_at:?}"));
            let reads = Arc::new(std::sync::Mutex::new(Vec::new()));
            let reader = Rows { reads: Arc::clone(&reads), fail_at };
            let mut spool = Spool::start(Box::new(reader), &saving).unwrap();
            let sent = (|| {
                for (table, id) in &rewritten {
                    spool.overwritten(table, *id)?;
                    if rewritten.iter().rev().find(|(t, _)| t == table).map(|(_, last)| last) == Some(id) {
                        spool.flush(table)?;
                    }
                }
                spool.send(DELETED, &b, gone.iter().map(|(_, id)| *id).collect())
            })();
            let done = sent.and_then(|()| spool.finish());
            let file = |name: &str| std::fs::read_to_string(saving.bundle_dir.join(name)).ok();
            let reads = reads.lock().unwrap().clone();
            (
                done.map(|m| (m.overwritten, m.deleted, m.sha256)).map_err(|e| e.to_string()),
                file("rows.jsonl"),
                file(PARTIAL_ROWS),
                reads,
            )
        };
        let (done, lines, partial, reads) = spooled(None);
        assert_eq!((done, lines.as_deref(), partial), (whole.clone(), Some(rows.as_str()), None));
        assert_eq!(reads, vec![vec![1, 2, 3], vec![4, 6], vec![7], vec![8, 9, 10], vec![11, 12], vec![20, 21]]);
        for fail_at in [1, 4, 6] {
            let (done, lines, partial, reads) = spooled(Some(fail_at));
            let e = done.unwrap_err();
            assert!(e.contains("went away"), "failing at read {fail_at}: {e}");
            assert_eq!((lines, partial), (None, None), "failing at read {fail_at}: nothing left");
            assert_eq!(reads.len(), fail_at, "no read after the failed one");
        }
    }

    /// Reads rows by id as the readers of the bundle tests do: row 11 is no longer in v2, the
    /// others come back in another order than asked; read `fail_at` fails.
    struct Rows {
        reads: Arc<std::sync::Mutex<Vec<Vec<u128>>>>,
        fail_at: Option<usize>,
    }

    impl RowsById for Rows {
        fn read_rows_by_id(
            &mut self,
            table: &str,
            cols: &[(String, Type)],
            _: Uuid,
            ids: &[Uuid],
        ) -> Result<Vec<Vec<Value>>, ConnectorError> {
            let mut reads = self.reads.lock().unwrap();
            reads.push(ids.iter().map(|i| i.as_u128()).collect());
            if self.fail_at == Some(reads.len()) {
                return Err(ConnectorError::Query { what: "reading".into(), reason: "the server went away".into() });
            }
            Ok(ids
                .iter()
                .rev()
                .filter(|i| i.as_u128() != 11)
                .map(|i| {
                    let mut row = vec![Value::Null; cols.len()];
                    row[0] = Value::Uuid(*i);
                    row[2] = Value::Text(format!("{table}:{}", i.as_u128()));
                    row
                })
                .collect())
        }
    }

    /// The bundle's lines are written without building a JSON tree: they must be the bytes
    /// the tree would give, so that a bundle reads the same whichever way it was written.
    #[test]
    fn bundle_lines_are_the_json_a_tree_of_them_gives() {
        let date = time::Date::from_calendar_date(1995, time::Month::March, 19).unwrap();
        let values = vec![
            Value::Uuid(Uuid::from_u128(7)),
            Value::Null,
            Value::Bool(true),
            Value::Int(-42),
            Value::Float(2.5),
            Value::Float(1e300),
            Value::Float(f64::NAN),
            Value::Text("quote \" back\\slash\nnew line, ünïcødé".into()),
            Value::Date(date),
            Value::Bytes(vec![0, 255, 16]),
        ];
        // Columns not in name order, as a v2 table's are.
        let cols: Vec<(String, Type)> = ["id", "zeta", "bool", "int", "float", "big", "nan", "text", "date", "bytes"]
            .iter()
            .map(|c| ((*c).to_owned(), Type::Text))
            .collect();
        let mut by_name: Vec<usize> = (0..cols.len()).collect();
        by_name.sort_by(|&a, &b| cols[a].0.cmp(&cols[b].0));
        let id = Uuid::from_u128(7);
        let line = BundleLine {
            action: "overwritten",
            id,
            legacy_ref: "LINEITEM:1/1",
            reason: "its v1 record changed",
            table: "order_line",
            values: LineValues::Row { cols: &cols, by_name: &by_name, row: &values },
        };
        let obj: serde_json::Map<String, serde_json::Value> =
            cols.iter().map(|c| c.0.clone()).zip(values.iter().map(Value::to_json_exact)).collect();
        let tree = serde_json::json!({
            "action": "overwritten",
            "reason": "its v1 record changed",
            "table": "order_line",
            "id": id,
            "legacy_ref": "LINEITEM:1/1",
            "values": obj,
        });
        assert_eq!(serde_json::to_string(&line).unwrap(), tree.to_string());
        for v in &values {
            assert_eq!(serde_json::to_string(&Exact(v)).unwrap(), v.to_json_exact().to_string(), "{v:?}");
        }
        let gone = BundleLine { values: LineValues::Missing, legacy_ref: "", ..line };
        assert!(serde_json::to_string(&gone).unwrap().ends_with(r#""values":null}"#));
    }
}
