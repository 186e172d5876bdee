//! cutover's row state in the v2 database: for every row a run loaded, its id, the fingerprints
//! of its v1 record and of the row, and the row as loaded, kept in compressed chunks of many rows.
//!
//! One database row per chunk, not per v2 row: a per-row state doubled the rows, bytes and index
//! entries the server had to write during a load, and was a third of a first migration's time.
//! A run writes generation `generation`; a first migration replaces the account's state with generation
//! 1, each final migration adds one on top holding only the rows it wrote and, as tombstones, the
//! ids it deleted. The live state of a row is its entry in the newest generation that names it.

use uuid::Uuid;

use crate::connect::{ConnectorError, Dialect, Target};
use crate::live::NextPart;
use crate::value::Value;

/// The table, in the v2 database.
pub const STATE_TABLE: &str = "cutover_state";

/// A chunk of an account's table: (generation, chunk).
pub type ChunkId = (i32, i32);

/// Chunks' compressed rows as loaded, as read back.
pub type LoadedChunks = Vec<(ChunkId, Vec<u8>)>;

/// A row as loaded: its legacy reference and its values.
pub type LoadedRow = (String, Vec<Value>);

/// Rows per chunk: large enough that the per-chunk overhead (a database row, an index entry,
/// TOAST pointers) is small, small enough that fetching one row's loaded values stays cheap.
pub const CHUNK_ROWS: usize = 1024;

/// What a chunk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// Rows written by the run: ids, fingerprints and the rows as loaded.
    Rows = 0,
    /// Ids the run deleted: no longer part of the live state.
    Deleted = 1,
}

/// The statements that create the table (idempotent). The byte columns are stored out of line
/// without compression: the rows as loaded are compressed already, ids and fingerprints do not
/// compress, and the server would spend its time trying.
pub fn ddl(d: Dialect) -> Vec<String> {
    let (uuid, bytes) = match d {
        Dialect::Sqlite | Dialect::Mysql => ("TEXT", "BLOB"),
        Dialect::Postgres => ("UUID", "BYTEA"),
    };
    let mut v = vec![format!(
        "CREATE TABLE IF NOT EXISTS {STATE_TABLE} (account_id {uuid} NOT NULL, table_name TEXT NOT NULL, \
         generation INTEGER NOT NULL, chunk INTEGER NOT NULL, kind SMALLINT NOT NULL, xid BIGINT NOT NULL, \
         n INTEGER NOT NULL, ids {bytes} NOT NULL, fps {bytes} NOT NULL, loaded {bytes} NOT NULL, \
         PRIMARY KEY (account_id, table_name, generation, chunk))"
    )];
    if d == Dialect::Postgres {
        v.push(format!(
            "ALTER TABLE {STATE_TABLE} ALTER COLUMN ids SET STORAGE EXTERNAL, ALTER COLUMN fps SET STORAGE EXTERNAL, \
             ALTER COLUMN loaded SET STORAGE EXTERNAL"
        ));
    }
    v
}

/// A row a run loaded, as the run hands it to the target's row state.
#[derive(Debug, Clone, Copy)]
pub struct StateEntry<'a> {
    /// The v2 account.
    pub account: Uuid,
    /// The v2 table.
    pub table: &'a str,
    /// The row's id.
    pub id: Uuid,
    /// The row's `legacy_ref`.
    pub legacy_ref: &'a str,
    /// Fingerprint of its v1 record under the mapping ([`crate::run::state_v1_fp`]).
    pub v1_fp: i64,
    /// Fingerprint of the row as stored.
    pub v2_fp: i64,
    /// The row as stored, without its id, account and legacy reference.
    pub values: &'a [Value],
}

/// A chunk ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// The v2 account.
    pub account: Uuid,
    /// The v2 table.
    pub table: String,
    /// Generation.
    pub generation: i32,
    /// Position within (account, table, generation).
    pub chunk: i32,
    /// Rows or deletions.
    pub kind: ChunkKind,
    /// Entries.
    pub n: i32,
    /// 16 bytes an entry.
    pub ids: Vec<u8>,
    /// v1 and v2 fingerprints, 16 bytes an entry (empty for deletions).
    pub fps: Vec<u8>,
    /// The rows as loaded, encoded ([`encode_entry`]) but not yet compressed.
    pub raw: Vec<u8>,
}

impl Chunk {
    /// The `loaded` column: `raw` compressed.
    pub fn loaded(&self) -> Vec<u8> {
        lz4_flex::compress_prepend_size(&self.raw)
    }
    /// The row's values in the order [`columns`] names them, `xid` given.
    pub fn into_row(self, xid: i64) -> Vec<Value> {
        let loaded = self.loaded();
        vec![
            Value::Uuid(self.account),
            Value::Text(self.table),
            Value::Int(i64::from(self.generation)),
            Value::Int(i64::from(self.chunk)),
            Value::Int(self.kind as i64),
            Value::Int(xid),
            Value::Int(i64::from(self.n)),
            Value::Bytes(self.ids),
            Value::Bytes(self.fps),
            Value::Bytes(loaded),
        ]
    }
}

/// The columns of the table, in the order [`Chunk::into_row`] gives them.
pub const COLUMNS: [&str; 10] =
    ["account_id", "table_name", "generation", "chunk", "kind", "xid", "n", "ids", "fps", "loaded"];

/// Gathers a run's entries into chunks, table by table.
#[derive(Debug, Default)]
pub struct Builder {
    generation: i32,
    current: Option<Chunk>,
    next_chunk: i32,
}

impl Builder {
    /// A builder writing generation `generation`.
    pub fn new(generation: i32) -> Self {
        Self { generation, current: None, next_chunk: 0 }
    }

    /// The generation it writes.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// Sets the generation for what follows.
    pub fn set_generation(&mut self, generation: i32) {
        self.generation = generation;
        self.next_chunk = 0;
    }

    /// Adds an entry; gives back a chunk that is full or belongs to another table.
    pub fn push(&mut self, e: &StateEntry<'_>) -> Option<Chunk> {
        let done = match &self.current {
            Some(c) if c.table != e.table || c.account != e.account || c.kind != ChunkKind::Rows => self.take(),
            _ => None,
        };
        let generation = self.generation;
        let c = self.current.get_or_insert_with(|| Chunk {
            account: e.account,
            table: e.table.to_owned(),
            generation,
            chunk: 0,
            kind: ChunkKind::Rows,
            n: 0,
            ids: Vec::with_capacity(CHUNK_ROWS * 16),
            fps: Vec::with_capacity(CHUNK_ROWS * 16),
            raw: Vec::with_capacity(CHUNK_ROWS * 128),
        });
        c.ids.extend_from_slice(e.id.as_bytes());
        c.fps.extend_from_slice(&e.v1_fp.to_le_bytes());
        c.fps.extend_from_slice(&e.v2_fp.to_le_bytes());
        encode_entry(&mut c.raw, e.legacy_ref, e.values);
        c.n += 1;
        if c.n as usize >= CHUNK_ROWS { self.take().or(done) } else { done }
    }

    /// Chunks of deleted ids of a table.
    pub fn deleted(&mut self, account: Uuid, table: &str, ids: &[Uuid]) -> Vec<Chunk> {
        let mut out: Vec<Chunk> = self.take().into_iter().collect();
        for part in ids.chunks(CHUNK_ROWS * 4) {
            let mut bytes = Vec::with_capacity(part.len() * 16);
            for id in part {
                bytes.extend_from_slice(id.as_bytes());
            }
            out.push(Chunk {
                account,
                table: table.to_owned(),
                generation: self.generation,
                chunk: self.next(),
                kind: ChunkKind::Deleted,
                n: i32::try_from(part.len()).unwrap_or(i32::MAX),
                ids: bytes,
                fps: Vec::new(),
                raw: Vec::new(),
            });
        }
        out
    }

    /// The chunk being filled, if any.
    pub fn take(&mut self) -> Option<Chunk> {
        let mut c = self.current.take()?;
        c.chunk = self.next();
        Some(c)
    }

    fn next(&mut self) -> i32 {
        // Numbered across tables: unique within (account, table, generation) whatever the order.
        let n = self.next_chunk;
        self.next_chunk += 1;
        n
    }
}

/// A chunk as read back, without the rows as loaded.
#[derive(Debug, Clone)]
pub struct ChunkHead {
    /// Generation.
    pub generation: i32,
    /// Position.
    pub chunk: i32,
    /// Rows or deletions.
    pub kind: ChunkKind,
    /// The transaction that wrote it (PostgreSQL's 64-bit `txid_current()`, 0 elsewhere).
    pub xid: i64,
    /// Entries.
    pub n: i32,
    /// Ids (empty unless asked for).
    pub ids: Vec<u8>,
    /// Fingerprints (empty unless asked for).
    pub fps: Vec<u8>,
}

impl ChunkHead {
    /// Decodes a row read with [`head_columns`].
    pub fn from_row(row: Vec<Value>) -> Option<ChunkHead> {
        let mut it = row.into_iter();
        let int = |v: Option<Value>| match v {
            Some(Value::Int(i)) => Some(i),
            _ => None,
        };
        let generation = i32::try_from(int(it.next())?).ok()?;
        let chunk = i32::try_from(int(it.next())?).ok()?;
        let kind = match int(it.next())? {
            0 => ChunkKind::Rows,
            1 => ChunkKind::Deleted,
            _ => return None,
        };
        let xid = int(it.next())?;
        let n = i32::try_from(int(it.next())?).ok()?;
        let bytes = |v: Option<Value>| match v {
            Some(Value::Bytes(b)) => b,
            _ => Vec::new(),
        };
        let ids = bytes(it.next());
        let fps = bytes(it.next());
        Some(ChunkHead { generation, chunk, kind, xid, n, ids, fps })
    }

    /// Entry `i`'s id.
    pub fn id(&self, i: usize) -> Option<Uuid> {
        let b: [u8; 16] = self.ids.get(i * 16..i * 16 + 16)?.try_into().ok()?;
        Some(Uuid::from_bytes(b))
    }

    /// Entry `i`'s v1 and v2 fingerprints.
    pub fn fps(&self, i: usize) -> Option<(i64, i64)> {
        let b = self.fps.get(i * 16..i * 16 + 16)?;
        let (v1, v2) = b.split_at(8);
        Some((i64::from_le_bytes(v1.try_into().ok()?), i64::from_le_bytes(v2.try_into().ok()?)))
    }
}

/// The columns a head is read with; ids and fingerprints only when `entries`.
pub fn head_columns(entries: bool) -> Vec<(String, crate::value::Type)> {
    use crate::value::Type;
    let mut v: Vec<(String, Type)> =
        ["generation", "chunk", "kind", "xid", "n"].iter().map(|c| ((*c).to_owned(), Type::Int)).collect();
    if entries {
        v.push(("ids".to_owned(), Type::Bytes));
        v.push(("fps".to_owned(), Type::Bytes));
    }
    v
}

/// Part of one generation's chunks of a table: those after chunk `after`, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// The generation.
    pub generation: i32,
    /// The last chunk of the part before (-1 for the first part).
    pub after: i32,
    /// Most chunks in the part.
    pub limit: u32,
}

impl Part {
    /// The end of a scan's `WHERE` (after the account and table) with its order: the whole
    /// table's chunks, or one part of them. The order names the table's columns, not the
    /// selected ones (PostgreSQL's are cast): the primary key then gives a part without a sort.
    pub fn sql(part: Option<Part>) -> String {
        let order = format!(" ORDER BY {STATE_TABLE}.generation, {STATE_TABLE}.chunk");
        match part {
            None => order,
            Some(p) => format!(" AND generation = {} AND chunk > {}{order} LIMIT {}", p.generation, p.after, p.limit),
        }
    }
}

/// Where a live entry sits: its chunk and its position there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    /// Generation.
    pub generation: i32,
    /// Chunk.
    pub chunk: i32,
    /// Position in the chunk.
    pub idx: u32,
}

/// The live entries of a table from its chunks: for each id, the newest generation that names
/// it, unless that one deleted it, in the order the runs met their records (which is v1's key
/// order, the order the next run meets them in again). `keep` projects an entry.
pub fn live<T>(heads: &[ChunkHead], keep: impl Fn(Loc, i64, i64) -> T) -> Vec<(Uuid, T)> {
    if live_count_without_entries(heads).is_some() {
        // One generation (no final migration yet): every entry is live.
        let mut out = Vec::with_capacity(heads.iter().map(|h| h.n.max(0) as usize).sum());
        for h in heads {
            for i in 0..h.n.max(0) as usize {
                if let (Some(id), Some((v1, v2))) = (h.id(i), h.fps(i)) {
                    out.push((id, keep(Loc { generation: h.generation, chunk: h.chunk, idx: i as u32 }, v1, v2)));
                }
            }
        }
        return out;
    }
    // (id, generation, deleted, loc, fps), sorted: per id, the newest entry gives the values
    // unless it deleted the row, and the oldest gives the place (the order records were met).
    let mut all: Vec<(Uuid, i32, bool, Loc, i64, i64)> = Vec::new();
    for h in heads {
        for i in 0..h.n.max(0) as usize {
            let Some(id) = h.id(i) else { continue };
            let loc = Loc { generation: h.generation, chunk: h.chunk, idx: i as u32 };
            match h.kind {
                ChunkKind::Rows => {
                    let (v1, v2) = h.fps(i).unwrap_or_default();
                    all.push((id, h.generation, false, loc, v1, v2));
                }
                ChunkKind::Deleted => all.push((id, h.generation, true, loc, 0, 0)),
            }
        }
    }
    all.sort_unstable_by_key(|e| (e.0, e.1, e.2));
    let mut out = Vec::new();
    let mut first = 0;
    for (i, e) in all.iter().enumerate() {
        if i > 0 && all[i - 1].0 != e.0 {
            first = i;
        }
        let newest = all.get(i + 1).is_none_or(|next| next.0 != e.0);
        if newest && !e.2 {
            out.push((all[first].3, e.0, keep(e.3, e.4, e.5)));
        }
    }
    out.sort_unstable_by_key(|e| e.0);
    out.into_iter().map(|(_, id, t)| (id, t)).collect()
}

/// One part of a generation's live entries, projected by `keep`, and the part's last chunk;
/// `None` past the last part.
pub fn read_part<T>(
    target: &mut dyn Target,
    account: Uuid,
    table: &str,
    part: Part,
    keep: &impl Fn(Loc, i64, i64) -> T,
) -> NextPart<T> {
    let (mut entries, mut last) = (Vec::new(), None);
    target.scan_state_part(account, table, part, &mut |h| {
        entries.extend(live(std::slice::from_ref(&h), keep));
        last = Some(h.chunk);
        Ok(())
    })?;
    Ok(last.map(|c| (entries, c)))
}

/// Every id one generation of a table's row state names, in any order.
pub fn generation_ids(
    target: &mut dyn Target,
    account: Uuid,
    table: &str,
    generation: i32,
) -> Result<Vec<Uuid>, ConnectorError> {
    let mut ids = Vec::new();
    each_chunk(target, account, table, generation, &mut |h| {
        ids.extend((0..h.n.max(0) as usize).filter_map(|i| h.id(i)));
    })?;
    Ok(ids)
}

/// Calls `f` with every chunk of one generation of a table's row state, with its entries, a
/// part at a time.
fn each_chunk(
    target: &mut dyn Target,
    account: Uuid,
    table: &str,
    generation: i32,
    f: &mut dyn FnMut(ChunkHead),
) -> Result<(), ConnectorError> {
    let mut after = -1;
    loop {
        let mut last = None;
        target.scan_state_part(account, table, Part { generation, after, limit: PART_CHUNKS }, &mut |h| {
            last = Some(h.chunk);
            f(h);
            Ok(())
        })?;
        match last {
            Some(c) => after = c,
            None => return Ok(()),
        }
    }
}

/// An id a generation after the first names: its newest entry (`None` when that deleted it),
/// where it was met first, and whether the first generation's parts gave it.
#[derive(Debug, Clone, Copy)]
struct Over<T> {
    now: Option<T>,
    first: Loc,
    met: bool,
}

/// A table's live state as parts of its first (oldest) generation, read in order, with the
/// newer generations laid over them. A final migration writes a generation of only the rows it
/// wrote and the ids it deleted, so the newer ones are held whole and the first, which holds
/// every row, is read a part at a time: the memory of [`live`] over every chunk at once
/// (660-700 MiB for TPC-H's order lines at scale 0.5, two generations) is not needed.
#[derive(Debug)]
pub struct Layers<T> {
    base: Option<i32>,
    over: std::collections::HashMap<Uuid, Over<T>>,
    base_done: bool,
    rest_given: bool,
}

impl<T: Copy> Layers<T> {
    /// Reads the generations after the first of `table`'s state, projected by `keep`.
    /// `heads` are the table's chunks as [`Target::scan_state`] gives them (oldest generation
    /// first), entries or not: they name the generations.
    pub fn read(
        target: &mut dyn Target,
        account: Uuid,
        table: &str,
        heads: &[ChunkHead],
        keep: &impl Fn(Loc, i64, i64) -> T,
    ) -> Result<Self, ConnectorError> {
        let mut generations: Vec<i32> = heads.iter().map(|h| h.generation).collect();
        generations.dedup();
        let mut layers = Self::over(generations.first().copied());
        for &generation in generations.iter().skip(1) {
            each_chunk(target, account, table, generation, &mut |h| layers.add(&h, keep))?;
        }
        Ok(layers)
    }

    /// Layers over the first generation `base` with nothing laid over it yet.
    pub fn over(base: Option<i32>) -> Self {
        Self { base, over: std::collections::HashMap::new(), base_done: false, rest_given: false }
    }

    /// Lays a chunk of a newer generation over what is there; chunks come oldest first.
    pub fn add(&mut self, h: &ChunkHead, keep: &impl Fn(Loc, i64, i64) -> T) {
        for i in 0..h.n.max(0) as usize {
            let Some(id) = h.id(i) else { continue };
            let loc = Loc { generation: h.generation, chunk: h.chunk, idx: i as u32 };
            let now = match h.kind {
                ChunkKind::Rows => {
                    let (v1, v2) = h.fps(i).unwrap_or_default();
                    Some(keep(loc, v1, v2))
                }
                ChunkKind::Deleted => None,
            };
            self.over.entry(id).and_modify(|o| o.now = now).or_insert(Over { now, first: loc, met: false });
        }
    }

    /// The first generation, whose parts are read in order; `None` when there is no state.
    pub fn base(&self) -> Option<i32> {
        self.base
    }

    /// The next part of the live state, given how to read the next part of the first
    /// generation: that part with the newer entries laid over it (an id a newer generation
    /// deleted left out, one it wrote again with its newest entry), then, once it is read, the
    /// ids only newer generations name, in the order they were met first.
    pub fn next(&mut self, base_part: impl FnOnce() -> NextPart<T>) -> NextPart<T> {
        if self.base.is_some() && !self.base_done {
            match base_part()? {
                Some((entries, last)) if self.over.is_empty() => return Ok(Some((entries, last))),
                Some((entries, last)) => {
                    let laid = entries
                        .into_iter()
                        .filter_map(|(id, t)| match self.over.get_mut(&id) {
                            None => Some((id, t)),
                            Some(o) => {
                                o.met = true;
                                o.now.map(|now| (id, now))
                            }
                        })
                        .collect();
                    return Ok(Some((laid, last)));
                }
                None => self.base_done = true,
            }
        }
        if self.rest_given {
            return Ok(None);
        }
        self.rest_given = true;
        let mut rest: Vec<(Loc, Uuid, T)> =
            self.over.iter().filter(|(_, o)| !o.met).filter_map(|(id, o)| o.now.map(|t| (o.first, *id, t))).collect();
        if rest.is_empty() {
            return Ok(None);
        }
        rest.sort_unstable_by_key(|r| r.0);
        Ok(Some((rest.into_iter().map(|(_, id, t)| (id, t)).collect(), i32::MAX)))
    }

    /// Every live id, in any order, given every id the first generation names (a superset
    /// does: what it holds more is never met).
    pub fn all_ids(&self, mut base_ids: Vec<Uuid>) -> Vec<Uuid> {
        base_ids.extend(self.over.iter().filter(|(_, o)| o.now.is_some()).map(|(id, _)| *id));
        base_ids
    }
}

/// Chunks of row state per part read: 131,072 entries, 4 MiB. Fewer, larger parts cost more
/// memory and no less time (a part of 128 chunks is read in about 7 ms on PostgreSQL).
pub const PART_CHUNKS: u32 = 128;

/// The first generation's parts as another connection reads them ahead, in order.
pub(crate) trait ReadAhead<T> {
    /// The next part read: the same as the one after the part given last.
    fn next_part(&self) -> NextPart<T>;
}

/// A table's live state read from a target a part at a time ([`Layers`]), for
/// [`crate::live::LiveState`].
pub(crate) struct TargetParts<'t, T> {
    /// Where the state is.
    pub(crate) target: &'t mut dyn Target,
    /// The account.
    pub(crate) account: Uuid,
    /// The v2 table.
    pub(crate) table: &'t str,
    /// The newer generations, and how far the first was read.
    pub(crate) layers: &'t mut Layers<T>,
    /// What is kept of an entry.
    pub(crate) keep: fn(Loc, i64, i64) -> T,
    /// The first generation's parts read ahead elsewhere, when they are.
    pub(crate) ahead: Option<&'t dyn ReadAhead<T>>,
}

impl<T: Copy> crate::live::Parts<T> for TargetParts<'_, T> {
    fn next_part(&mut self, after: i32) -> NextPart<T> {
        let (target, account, table, keep) = (&mut *self.target, self.account, self.table, self.keep);
        let (base, ahead) = (self.layers.base(), self.ahead);
        self.layers.next(|| match (ahead, base) {
            // Read in the same order, from the first part: `after` is the last one sent.
            (Some(ahead), _) => ahead.next_part(),
            (None, Some(generation)) => {
                read_part(target, account, table, Part { generation, after, limit: PART_CHUNKS }, &keep)
            }
            (None, None) => Ok(None),
        })
    }
    fn all_ids(&mut self) -> Result<Vec<Uuid>, ConnectorError> {
        let base = match self.layers.base() {
            Some(generation) => generation_ids(self.target, self.account, self.table, generation)?,
            None => Vec::new(),
        };
        Ok(self.layers.all_ids(base))
    }
}

/// Number of live entries, from heads read without their entries when one generation holds them all.
pub fn live_count_without_entries(heads: &[ChunkHead]) -> Option<u64> {
    let one = heads.iter().all(|h| h.generation == heads[0].generation && h.kind == ChunkKind::Rows);
    // An empty list is one generation of nothing.
    one.then(|| heads.iter().map(|h| h.n.max(0) as u64).sum())
}

/// One entry of a chunk's raw bytes: the legacy reference, then the values.
pub fn encode_entry(out: &mut Vec<u8>, legacy_ref: &str, values: &[Value]) {
    put_bytes(out, legacy_ref.as_bytes());
    put_varint(out, values.len() as u64);
    for v in values {
        match v {
            Value::Null => out.push(0),
            Value::Bool(b) => {
                out.push(1);
                out.push(u8::from(*b));
            }
            Value::Int(i) => {
                out.push(2);
                put_varint(out, ((i << 1) ^ (i >> 63)) as u64);
            }
            Value::Float(f) => {
                out.push(3);
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            Value::Text(s) => {
                out.push(4);
                put_bytes(out, s.as_bytes());
            }
            Value::Date(d) => {
                out.push(5);
                let j = i64::from(d.to_julian_day());
                put_varint(out, ((j << 1) ^ (j >> 63)) as u64);
            }
            Value::Bytes(b) => {
                out.push(6);
                put_bytes(out, b);
            }
            Value::Uuid(u) => {
                out.push(7);
                out.extend_from_slice(u.as_bytes());
            }
        }
    }
}

/// The entries of a chunk's `loaded` column: (legacy reference, values), in order.
pub fn decode_loaded(loaded: &[u8]) -> Result<Vec<LoadedRow>, String> {
    let raw = lz4_flex::decompress_size_prepended(loaded).map_err(|e| format!("row state: {e}"))?;
    decode_entries(&raw, &mut 0, usize::MAX)
}

/// Up to `max` entries written one after another by [`encode_entry`], uncompressed, from
/// offset `at`, which moves past them: (legacy reference, values).
pub fn decode_entries(raw: &[u8], at: &mut usize, max: usize) -> Result<Vec<LoadedRow>, String> {
    let bad = || "row state: a chunk ends early".to_owned();
    let mut out = Vec::new();
    while *at < raw.len() && out.len() < max {
        let legacy = String::from_utf8_lossy(get_bytes(raw, at).ok_or_else(bad)?).into_owned();
        let n = get_varint(raw, at).ok_or_else(bad)? as usize;
        let mut values = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            let tag = *raw.get(*at).ok_or_else(bad)?;
            *at += 1;
            let unzig = |u: u64| ((u >> 1) as i64) ^ -((u & 1) as i64);
            values.push(match tag {
                0 => Value::Null,
                1 => {
                    *at += 1;
                    Value::Bool(*raw.get(*at - 1).ok_or_else(bad)? != 0)
                }
                2 => Value::Int(unzig(get_varint(raw, at).ok_or_else(bad)?)),
                3 => {
                    let b: [u8; 8] = raw.get(*at..*at + 8).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
                    *at += 8;
                    Value::Float(f64::from_bits(u64::from_le_bytes(b)))
                }
                4 => Value::Text(String::from_utf8_lossy(get_bytes(raw, at).ok_or_else(bad)?).into_owned()),
                5 => {
                    let j = unzig(get_varint(raw, at).ok_or_else(bad)?);
                    let d = i32::try_from(j).ok().and_then(|j| time::Date::from_julian_day(j).ok()).ok_or_else(bad)?;
                    Value::Date(d)
                }
                6 => Value::Bytes(get_bytes(raw, at).ok_or_else(bad)?.to_vec()),
                7 => {
                    let b: [u8; 16] = raw.get(*at..*at + 16).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
                    *at += 16;
                    Value::Uuid(Uuid::from_bytes(b))
                }
                t => return Err(format!("row state: unknown value tag {t}")),
            });
        }
        out.push((legacy, values));
    }
    Ok(out)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn get_bytes<'a>(b: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let n = usize::try_from(get_varint(b, at)?).ok()?;
    let s = b.get(*at..at.checked_add(n)?)?;
    *at += n;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(id: u128, table: &'a str, values: &'a [Value]) -> StateEntry<'a> {
        StateEntry {
            account: Uuid::from_u128(1),
            table,
            id: Uuid::from_u128(id),
            legacy_ref: "T:1",
            v1_fp: id as i64,
            v2_fp: -(id as i64),
            values,
        }
    }

    #[test]
    fn entries_round_trip_through_a_compressed_chunk() {
        let values = vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(i64::MIN),
            Value::Int(-1),
            Value::Int(300),
            Value::Float(2.675),
            Value::Text("tab\t «ø»".into()),
            Value::Date(time::macros::date!(1899 - 12 - 31)),
            Value::Bytes(vec![0, 255]),
            Value::Uuid(Uuid::from_u128(u128::MAX)),
        ];
        let mut b = Builder::new(1);
        assert!(b.push(&entry(7, "t", &values)).is_none());
        assert!(b.push(&entry(8, "t", &values[..2])).is_none());
        let c = b.take().unwrap();
        assert_eq!((c.n, c.generation, c.chunk), (2, 1, 0));
        let decoded = decode_loaded(&c.loaded()).unwrap();
        assert_eq!(decoded, vec![("T:1".to_owned(), values.clone()), ("T:1".to_owned(), values[..2].to_vec())]);
        assert!(decode_loaded(&lz4_flex::compress_prepend_size(&[9, 9, 9])).is_err());
        // Uncompressed, as the final migration holds the rows it writes at commit.
        let mut raw = Vec::new();
        encode_entry(&mut raw, "", &values);
        let first = raw.len();
        encode_entry(&mut raw, "x", &[]);
        assert_eq!(
            decode_entries(&raw, &mut 0, 9).unwrap(),
            vec![(String::new(), values.clone()), ("x".to_owned(), vec![])]
        );
        let mut at = 0;
        assert_eq!(decode_entries(&raw, &mut at, 1).unwrap(), vec![(String::new(), values.clone())]);
        assert_eq!(at, first);
        assert_eq!(decode_entries(&raw, &mut at, 1).unwrap(), vec![("x".to_owned(), vec![])]);
        assert_eq!((at, decode_entries(&raw, &mut at, 1).unwrap()), (raw.len(), vec![]));
        assert!(decode_entries(&raw[..first - 1], &mut 0, 9).is_err());
    }

    #[test]
    fn chunks_fill_and_change_with_the_table() {
        let mut b = Builder::new(3);
        let mut full = Vec::new();
        for i in 0..CHUNK_ROWS as u128 + 5 {
            full.extend(b.push(&entry(i, "a", &[])));
        }
        assert_eq!(full.len(), 1);
        assert_eq!(full[0].n as usize, CHUNK_ROWS);
        let switched = b.push(&entry(1, "b", &[])).unwrap();
        assert_eq!((switched.table.as_str(), switched.n, switched.chunk), ("a", 5, 1));
        assert_eq!(b.take().unwrap().chunk, 2);
    }

    fn head(c: &Chunk) -> ChunkHead {
        ChunkHead {
            generation: c.generation,
            chunk: c.chunk,
            kind: c.kind,
            xid: 0,
            n: c.n,
            ids: c.ids.clone(),
            fps: c.fps.clone(),
        }
    }

    #[test]
    fn the_newest_generation_wins_and_deletions_remove() {
        let mut b = Builder::new(1);
        for i in 1..=4 {
            b.push(&entry(i, "t", &[]));
        }
        let g1 = b.take().unwrap();
        let mut b = Builder::new(2);
        let mut e = entry(2, "t", &[]);
        e.v1_fp = 99;
        b.push(&e);
        b.push(&entry(5, "t", &[]));
        let g2 = b.take().unwrap();
        let del = b.deleted(Uuid::from_u128(1), "t", &[Uuid::from_u128(3)]);
        let mut heads = vec![head(&g1), head(&g2)];
        heads.extend(del.iter().map(head));
        assert_eq!(live_count_without_entries(&heads), None);
        let l = live(&heads, |loc, v1, _| (loc.generation, v1));
        let mut got: Vec<(u128, (i32, i64))> = l.into_iter().map(|(id, x)| (id.as_u128(), x)).collect();
        got.sort();
        assert_eq!(got, vec![(1, (1, 1)), (2, (2, 99)), (4, (1, 4)), (5, (2, 5))]);
        assert_eq!(live_count_without_entries(&[head(&g1)]), Some(4));
    }

    /// Layers read a part at a time give what [`live`] gives over every chunk at once, in the
    /// same order: rows a final migration rewrote, new ones, deleted ones, and a deleted id
    /// written again by a later one.
    #[test]
    fn layers_give_the_live_state_in_order_a_part_at_a_time() {
        let keep = |loc: Loc, v1: i64, v2: i64| (loc, v1, v2);
        let mut heads = Vec::new();
        let mut b = Builder::new(1);
        for i in 0..3000u128 {
            heads.extend(b.push(&entry(i, "t", &[])).as_ref().map(head));
        }
        heads.extend(b.take().as_ref().map(head));
        let first = heads.len();
        for generation in 2..=3 {
            let mut b = Builder::new(generation);
            let mut gen_heads = Vec::new();
            for i in (0..3000u128).filter(|i| i % 97 == u128::try_from(generation).unwrap()) {
                let mut e = entry(i, "t", &[]);
                e.v1_fp = i64::from(generation) * 100_000 + i as i64;
                gen_heads.extend(b.push(&e).as_ref().map(head));
            }
            // New rows, the second of which the next generation deletes again.
            for i in [9000 + u128::try_from(generation).unwrap(), 8000] {
                gen_heads.extend(b.push(&entry(i, "t", &[])).as_ref().map(head));
            }
            let gone: Vec<Uuid> = if generation == 2 {
                (0..3000u128).filter(|i| i % 89 == 0).map(Uuid::from_u128).collect()
            } else {
                vec![Uuid::from_u128(8000), Uuid::from_u128(9002)]
            };
            gen_heads.extend(b.deleted(Uuid::from_u128(1), "t", &gone).iter().map(head));
            if generation == 3 {
                // A row deleted by generation 2, written again.
                gen_heads.extend(b.push(&entry(89, "t", &[])).as_ref().map(head));
                gen_heads.extend(b.take().as_ref().map(head));
            }
            heads.extend(gen_heads);
        }
        let want = live(&heads, keep);
        let mut layers = Layers::over(Some(1));
        for h in &heads[first..] {
            layers.add(h, &keep);
        }
        let mut base = heads[..first].chunks(2);
        let mut got = Vec::new();
        let mut parts = 0;
        while let Some((entries, _)) =
            layers.next(|| Ok(base.next().map(|hs| (live(hs, keep), hs.last().map_or(-1, |h| h.chunk))))).unwrap()
        {
            got.extend(entries);
            parts += 1;
        }
        assert_eq!(parts, first.div_ceil(2) + 1, "the first generation's parts, then the new ids");
        assert!(want.len() > 2900 && want.iter().any(|e| e.0 == Uuid::from_u128(89)));
        assert_eq!(got, want);
        let mut all =
            layers.all_ids(heads[..first].iter().flat_map(|h| (0..h.n as usize).filter_map(|i| h.id(i))).collect());
        all.sort();
        assert!(want.iter().all(|e| all.binary_search(&e.0).is_ok()));
    }
}
