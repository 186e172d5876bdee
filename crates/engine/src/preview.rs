//! The overwrite preview: every v2 row of the account that was changed, created or deleted
//! since the last migration loaded it, field by field, i.e. what the final migration will
//! overwrite. Its id is a hash of its content, so an acknowledgement binds to exactly it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::connect::{Census, ConnectorError, LoadOrderPage, Target};
use crate::ids::SortedIds;
use crate::live::{LiveState, Parts};
use crate::pack::Pack;
use crate::run::{EngineError, account_uuid};
use crate::state::{self, Loc, STATE_TABLE};
use crate::value::{Type, Value, fingerprint};

/// What happened to a row in v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Edited in v2 since it was loaded.
    Changed,
    /// Created in v2; no migration loaded it.
    Created,
    /// Loaded by a migration, deleted in v2 since.
    Deleted,
}

/// A field of a row, as loaded and as it is now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// v2 column.
    pub column: String,
    /// Value the migration loaded (null for created rows).
    pub as_loaded: serde_json::Value,
    /// Value in v2 now (null for deleted rows).
    pub now: serde_json::Value,
}

/// A row the final migration will overwrite or delete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewItem {
    /// What happened.
    pub kind: ChangeKind,
    /// v2 table.
    pub table: String,
    /// v2 id.
    pub id: Uuid,
    /// The v1 record behind it (as v2 names it).
    pub legacy_ref: String,
    /// Changed fields (all fields for created and deleted rows).
    pub fields: Vec<FieldChange>,
    /// The whole row as it is in v2 now (empty for deleted rows).
    pub now_row: serde_json::Map<String, serde_json::Value>,
}

/// The overwrite preview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    /// Hash of the content: what an acknowledgement names.
    pub id: String,
    /// Rows checked in v2.
    pub rows_checked: u64,
    /// Rows that will be overwritten or deleted, by table and reference.
    pub items: Vec<PreviewItem>,
}

impl Preview {
    /// (changed, created, deleted) per table.
    pub fn counts(&self) -> BTreeMap<String, [u64; 3]> {
        let mut m: BTreeMap<String, [u64; 3]> = BTreeMap::new();
        for i in &self.items {
            m.entry(i.table.clone()).or_default()[i.kind as usize] += 1;
        }
        m
    }
}

/// The columns cutover writes to a v2 table, in the order it writes them.
pub fn target_columns(pack: &Pack, table: &str) -> Vec<(String, Type)> {
    let mut v = vec![
        ("id".to_owned(), Type::Uuid),
        ("account_id".to_owned(), Type::Uuid),
        ("legacy_ref".to_owned(), Type::Text),
    ];
    if let Some(tg) = pack.entities.iter().filter_map(|e| e.target.as_ref()).find(|t| t.table == table) {
        v.extend(tg.fields.iter().map(|f| (f.column.clone(), f.ty)));
    }
    v
}

/// Candidate rows held in memory at most; past this many rows written in v2 since the load,
/// a table is compared row by row against its state instead.
const MAX_CANDIDATES: u64 = 200_000;

/// Chunks of row state whose rows as loaded are read at a time.
const LOADED_CHUNKS: usize = 64;

/// v2 rows read at a time when a table is compared row by row in load order.
const PAGE_ROWS: usize = 8192;

/// A changed or deleted row: its table's index, id, where its loaded values sit, and its row
/// now (changed rows only).
type Found = (usize, Uuid, Loc, Option<Vec<Value>>);

/// What the preview keeps of a row's state: its fingerprint as loaded and where its loaded
/// values sit.
type Kept = (i64, Loc);

fn kept(loc: Loc, _: i64, v2: i64) -> Kept {
    (v2, loc)
}

/// The table a preview compares: the account, the table, its index among the pack's tables,
/// and its row state's chunks as read without their entries.
struct On<'a> {
    account: Uuid,
    table: &'a str,
    ti: usize,
    heads: &'a [state::ChunkHead],
}

/// Calls `f` with every live entry of the table, a part of its state at a time.
fn each_live(target: &mut dyn Target, on: &On<'_>, f: &mut dyn FnMut(Uuid, Kept)) -> Result<u64, ConnectorError> {
    let (account, table) = (on.account, on.table);
    let mut layers = state::Layers::read(target, account, table, on.heads, &kept)?;
    let mut parts = state::TargetParts { target, account, table, layers: &mut layers, keep: kept, ahead: None };
    let (mut after, mut n) = (-1, 0u64);
    while let Some((entries, last)) = parts.next_part(after)? {
        after = last;
        n += entries.len() as u64;
        for (id, k) in entries {
            f(id, k);
        }
    }
    Ok(n)
}

/// The preview taken on its own, outside a run: in one snapshot where the target has them, so
/// that v2 edited meanwhile cannot make it disagree with itself (a count taken before an edit
/// and the rows read after it). The final migration takes it again in its own transaction,
/// unless v2 is provably unchanged since: with it comes v2's change stamp
/// ([`Target::change_stamp`]) where the target has one, read in the snapshot (or, without
/// snapshots, the same before and after), and what the preview counted in it ([`Stamp`]).
pub fn preview_alone(
    pack: &Pack,
    target: &mut dyn Target,
    account_key: &str,
) -> Result<(Preview, Option<Stamp>), EngineError> {
    let snapshot = target.begin_snapshot()?;
    // In a snapshot the stamp is that of exactly what the preview reads, however busy the
    // server is; without one, only a stamp alike before and after holds for it.
    let before = stamp(target);
    let taken = preview_counted(pack, target, account_key);
    let ended = if snapshot { target.rollback() } else { Ok(()) };
    // The preview's own error first: the transaction's end fails mostly because of it.
    let (p, census) = taken?;
    ended?;
    let held = if snapshot { before } else { before.filter(|b| stamp(target).as_ref() == Some(b)) };
    Ok((p, held.map(|stamp| Stamp { stamp, census })))
}

/// v2's change stamp as a preview taken on its own saw it, and what the preview counted in
/// that snapshot where it can stand in for the stamp ([`Census`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// v2's change stamp ([`Target::change_stamp`]).
    pub stamp: String,
    /// The account's rows and row state as the preview counted them; where the preview
    /// compared only the rows written since the load (PostgreSQL).
    pub census: Option<Census>,
}

/// The target's change stamp; none where it cannot be read: the preview is then not kept, or
/// taken again, and the reason logged (a target without stamps is not an error).
fn stamp(target: &mut dyn Target) -> Option<String> {
    target.change_stamp().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "v2's change stamp could not be read: the overwrite preview is taken again");
        None
    })
}

/// A preview taken on its own and v2's change stamp throughout it, kept for the final
/// migration that names it: the run's transaction finds the same stamp only if no transaction
/// changed v2 since, and then the preview taken again in it would be this one; on PostgreSQL,
/// whose stamp any write on the server moves, also when the account's rows and row state,
/// counted again, are exactly those the preview read ([`Census`]). On a SQLite v2 the preview
/// reads every row, half of a final migration's time; on PostgreSQL it scans every v2 table
/// for rows written since the load, about a seventh of it (TPC-H, scale 0.5), and once the
/// customer edited v2, the edited tables' row state too: 1.8-2.6 s, as long as the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StampedPreview {
    /// The account it is about.
    pub account_key: String,
    /// The pack it was taken under ([`Pack::digest`]).
    pub pack_digest: u64,
    /// v2's change stamp.
    pub stamp: String,
    /// What the preview counted under the stamp ([`Stamp::census`]); none in what older
    /// versions kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub census: Option<Census>,
    /// The preview.
    pub preview: Preview,
}

impl StampedPreview {
    /// The preview `preview` of the account of `account_key` under `pack`, kept with the
    /// stamp it was taken under.
    pub fn new(account_key: &str, pack: &Pack, stamp: Stamp, preview: Preview) -> Self {
        Self {
            account_key: account_key.to_owned(),
            pack_digest: pack.digest,
            stamp: stamp.stamp,
            census: stamp.census,
            preview,
        }
    }

    /// Whether it is still what [`preview`] would find in `target` now, read in the caller's
    /// transaction: the same account and pack, its content as hashed into its id, and v2's
    /// change stamp unchanged or, where the stamp moved, the account's rows provably the ones
    /// it counted ([`Target::unchanged_since`]).
    pub fn holds(&self, pack: &Pack, target: &mut dyn Target, account_key: &str) -> bool {
        let account = account_uuid(account_key);
        if self.account_key != account_key
            || self.pack_digest != pack.digest
            || self.preview.id != content_id(account, &self.preview.items)
        {
            return false;
        }
        let Some(now) = stamp(target) else { return false };
        if now == self.stamp {
            return true;
        }
        let Some(census) = &self.census else { return false };
        target.unchanged_since(&self.stamp, &now, account, census).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "whether v2 changed since the preview could not be told: it is taken again");
            false
        })
    }
}

/// Computes the preview for the account of `account_key`. On PostgreSQL only the rows written
/// since the load (by their transaction ids) are compared; elsewhere every row is, against its
/// fingerprint as loaded, in load order beside the row state read a part at a time.
pub fn preview(pack: &Pack, target: &mut dyn Target, account_key: &str) -> Result<Preview, EngineError> {
    preview_counted(pack, target, account_key).map(|(p, _)| p)
}

/// [`preview`], and what it counted where it compared only the rows written since the load in
/// every table ([`Census`]).
fn preview_counted(
    pack: &Pack,
    target: &mut dyn Target,
    account_key: &str,
) -> Result<(Preview, Option<Census>), EngineError> {
    let account = account_uuid(account_key);
    let mut census = Some(Census::default());
    let mut tables: Vec<&str> =
        pack.entities.iter().filter_map(|e| e.target.as_ref().map(|t| t.table.as_str())).collect();
    tables.dedup();
    let no_state = |e: ConnectorError| EngineError::Schema {
        table: STATE_TABLE.into(),
        problem: format!("no migration has loaded this account yet ({e})"),
    };
    let mut items = Vec::new();
    let mut found: Vec<Found> = Vec::new();
    let mut checked = 0u64;
    for (ti, &table) in tables.iter().enumerate() {
        let cols = target_columns(pack, table);
        let mut heads = Vec::new();
        target
            .scan_state(account, table, false, &mut |h| {
                heads.push(h);
                Ok(())
            })
            .map_err(no_state)?;
        let mut xids: Vec<i64> = heads.iter().map(|h| h.xid).collect();
        xids.sort_unstable();
        xids.dedup();
        // Fast path: only the rows written since the runs that loaded the table.
        match target.count_written_since(table, account, &xids)? {
            Some((total, written)) if written <= MAX_CANDIDATES => {
                checked += total;
                if let Some(c) = census.as_mut() {
                    c.rows.insert(table.to_owned(), total);
                    c.state_chunks += heads.len() as u64;
                    c.runs.extend(&xids);
                }
                let live_count = state::live_count_without_entries(&heads);
                if written == 0 && live_count == Some(total) {
                    continue;
                }
                // Live rows by the leading bits of their ids, to tell where deleted ones are.
                let mut live_by_bucket = vec![0u32; BUCKETS];
                let mut hits: HashMap<Uuid, Kept> = HashMap::new();
                let on = On { account, table, ti, heads: &heads };
                // Where v2 may have lost rows (fewer rows, those written since aside, than the
                // state holds), its ids are counted by bucket on a second connection in the same
                // snapshot, where the target has one, while the rows written since and the state
                // are read here.
                let may_have_lost = live_count.is_some_and(|live| total.saturating_sub(written) < live);
                let reader = if may_have_lost { target.snapshot_reader()? } else { None };
                let (read, counted) = std::thread::scope(|s| {
                    let counting = reader.map(|mut reader| {
                        s.spawn(move || {
                            let mut in_v2 = vec![0u32; BUCKETS];
                            reader.scan_ids(table, account, &mut |id| in_v2[bucket(&id)] += 1).map(|()| in_v2)
                        })
                    });
                    let read = (|| -> Result<(Vec<Vec<Value>>, u64), ConnectorError> {
                        let mut candidates: Vec<Vec<Value>> = Vec::new();
                        if written > 0 {
                            target.scan_written_since(table, &cols, account, &xids, &mut |row| {
                                // Counted in the same snapshot, they are as many; where the
                                // target has no snapshot, a flood of writes meanwhile is refused
                                // rather than held.
                                if candidates.len() as u64 >= MAX_CANDIDATES {
                                    return Err(ConnectorError::Query {
                                        what: format!("reading the rows of {table} written since"),
                                        reason: "v2 was written while the preview was taken; take it again".into(),
                                    });
                                }
                                candidates.push(row);
                                Ok(())
                            })?;
                        }
                        // The state of the candidates, and how many rows are live.
                        let mut wanted: Vec<Uuid> = candidates
                            .iter()
                            .filter_map(|r| match r.first() {
                                Some(Value::Uuid(id)) => Some(*id),
                                _ => None,
                            })
                            .collect();
                        wanted.sort_unstable();
                        hits.reserve(wanted.len());
                        let live_n = each_live(target, &on, &mut |id, k| {
                            live_by_bucket[bucket(&id)] += 1;
                            if wanted.binary_search(&id).is_ok() {
                                hits.insert(id, k);
                            }
                        })?;
                        Ok((candidates, live_n))
                    })();
                    // A thread that stopped leaves the ids to be counted here, as without one.
                    (read, counting.and_then(|h| h.join().ok()))
                });
                let (candidates, live_n) = read?;
                let counted = counted.transpose()?;
                let (mut in_v2, mut created_ids) = (0u64, Vec::new());
                for row in candidates {
                    let Some(Value::Uuid(id)) = row.first().cloned() else { continue };
                    match hits.get(&id) {
                        None => {
                            created_ids.push(id);
                            items.push(created(table, &cols, &row, id));
                        }
                        Some(&(v2, loc)) => {
                            in_v2 += 1;
                            if fingerprint(&row) as i64 != v2 {
                                found.push((ti, id, loc, Some(row)));
                            }
                        }
                    }
                }
                // Rows not written since are still there as loaded; any other loaded row is gone.
                let untouched = total.saturating_sub(in_v2 + created_ids.len() as u64);
                if in_v2 + untouched < live_n {
                    deleted_rows(target, &on, &live_by_bucket, &created_ids, counted, &mut found)?;
                }
            }
            _ => {
                census = None;
                // Every row, against its fingerprint as loaded: in load order, which is the
                // order of the state's parts, where the target reads so.
                let mut after = i64::MIN;
                // Read ahead on connections of their own where the target has them.
                let mut ahead = target.pages_ahead(table, &cols, account, PAGE_ROWS)?;
                // The page before goes back to its reader, to be filled again.
                let mut next_page = |target: &mut dyn Target, after: i64, done: LoadOrderPage| match ahead.as_mut() {
                    Some(a) => {
                        a.give_back(done);
                        a.next_page().map(Some)
                    }
                    None => target.rows_in_load_order(table, &cols, account, after, PAGE_ROWS),
                };
                let mut page = next_page(target, after, Vec::new())?;
                if page.is_none() {
                    let on = On { account, table, ti, heads: &heads };
                    checked += whole_table(target, &on, &cols, &mut items, &mut found)?;
                    continue;
                }
                let mut layers = state::Layers::read(target, account, table, &heads, &kept)?;
                let mut live = LiveState::<Kept>::in_parts();
                while let Some(rows) = page.take().filter(|rows| !rows.is_empty()) {
                    let mut parts =
                        state::TargetParts { target, account, table, layers: &mut layers, keep: kept, ahead: None };
                    for r in &rows {
                        after = r.at;
                        checked += 1;
                        let Some(Value::Uuid(id)) = r.values.first().cloned() else { continue };
                        match live.find(&id, &mut parts)? {
                            None => items.push(created(table, &cols, &r.values, id)),
                            Some((v2, loc)) => {
                                live.give();
                                if r.fingerprint as i64 != v2 {
                                    found.push((ti, id, loc, Some(r.values.clone())));
                                }
                            }
                        }
                    }
                    page = next_page(target, after, rows)?;
                }
                let mut parts =
                    state::TargetParts { target, account, table, layers: &mut layers, keep: kept, ahead: None };
                for (id, (_, loc)) in live.finish(&mut parts)? {
                    found.push((ti, id, loc, None));
                }
            }
        }
    }
    // The rows as loaded, for the changed and deleted rows only, chunk by chunk.
    found.sort_by_key(|f| (f.0, f.2));
    let mut at = 0;
    while at < found.len() {
        let ti = found[at].0;
        let end = found[at..].iter().position(|f| f.0 != ti).map_or(found.len(), |p| at + p);
        let table = tables[ti];
        let cols = target_columns(pack, table);
        let mut chunks: Vec<(i32, i32)> = found[at..end].iter().map(|f| (f.2.generation, f.2.chunk)).collect();
        chunks.dedup();
        // Only the entries asked for are kept: a chunk decoded whole is a thousand rows, and
        // 500 rows edited across TPC-H's order lines held 300 MiB of them.
        let mut decoded: HashMap<Loc, state::LoadedRow> = HashMap::with_capacity(end - at);
        let mut wanted = found[at..end].iter().map(|f| f.2).peekable();
        for batch in chunks.chunks(LOADED_CHUNKS) {
            let mut loaded = target.read_state_loaded(account, table, batch)?;
            loaded.sort_unstable_by_key(|c| c.0);
            for ((generation, chunk), bytes) in loaded {
                let raw = lz4_flex::decompress_size_prepended(&bytes).map_err(|e| EngineError::Schema {
                    table: STATE_TABLE.into(),
                    problem: format!("row state: {e}"),
                })?;
                let (mut pos, mut idx) = (0usize, 0u32);
                while let Some(loc) = wanted.next_if(|l| (l.generation, l.chunk) <= (generation, chunk)) {
                    if (loc.generation, loc.chunk) < (generation, chunk) {
                        continue;
                    }
                    // Entries before the one wanted are decoded and dropped, one at a time.
                    let mut entry = None;
                    while idx <= loc.idx {
                        entry = state::decode_entries(&raw, &mut pos, 1)
                            .map_err(|e| EngineError::Schema { table: STATE_TABLE.into(), problem: e })?
                            .pop();
                        idx += 1;
                    }
                    if let Some(e) = entry {
                        decoded.insert(loc, e);
                    }
                }
            }
        }
        for (_, id, loc, now) in found[at..end].iter_mut() {
            let entry = decoded.get(loc);
            let legacy = entry.map_or_else(String::new, |e| e.0.clone());
            let was: serde_json::Map<String, serde_json::Value> = match entry {
                Some((legacy, values)) => cols
                    .iter()
                    .map(|c| c.0.clone())
                    .zip(
                        [Value::Uuid(*id), Value::Uuid(account), Value::Text(legacy.clone())]
                            .iter()
                            .chain(values)
                            .map(Value::to_json_exact),
                    )
                    .collect(),
                None => serde_json::Map::new(),
            };
            match now.take() {
                Some(row) => {
                    let fields = cols
                        .iter()
                        .zip(&row)
                        .filter_map(|((c, _), v)| {
                            let now = v.to_json_exact();
                            let before = was.get(c).cloned().unwrap_or(serde_json::Value::Null);
                            (now != before).then(|| FieldChange { column: c.clone(), as_loaded: before, now })
                        })
                        .collect();
                    let now_row = cols.iter().zip(&row).map(|((c, _), v)| (c.clone(), v.to_json_exact())).collect();
                    items.push(PreviewItem {
                        kind: ChangeKind::Changed,
                        table: table.to_owned(),
                        id: *id,
                        legacy_ref: legacy,
                        fields,
                        now_row,
                    });
                }
                None => {
                    let fields = was
                        .into_iter()
                        .map(|(c, v)| FieldChange { column: c, as_loaded: v, now: serde_json::Value::Null })
                        .collect();
                    items.push(PreviewItem {
                        kind: ChangeKind::Deleted,
                        table: table.to_owned(),
                        id: *id,
                        legacy_ref: legacy,
                        fields,
                        now_row: serde_json::Map::new(),
                    });
                }
            }
        }
        at = end;
    }
    items.sort_by(|a, b| (&a.table, &a.legacy_ref, a.id, a.kind).cmp(&(&b.table, &b.legacy_ref, b.id, b.kind)));
    if let Some(c) = census.as_mut() {
        c.runs.sort_unstable();
        c.runs.dedup();
    }
    let id = content_id(account, &items);
    Ok((Preview { id, rows_checked: checked, items }, census))
}

/// A preview's id: a hash of the account and the items, in order.
fn content_id(account: Uuid, items: &[PreviewItem]) -> String {
    let mut h = Sha256::new();
    h.update(account.as_bytes());
    for i in items {
        h.update(serde_json::to_string(i).unwrap_or_default().as_bytes());
        h.update([0]);
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Buckets of ids (by their leading 16 bits) in which v2's rows and the live state are counted
/// to find the deleted rows.
const BUCKETS: usize = 1 << 16;

fn bucket(id: &Uuid) -> usize {
    (id.as_u128() >> 112) as usize
}

/// Finds the live rows of a table that are gone from v2, given the live rows per bucket and
/// the rows created in v2. v2's ids are counted per bucket, and only those of a bucket with
/// fewer rows than the state (created ones aside) are held and compared: a few deletions in v2
/// hold a few thousandths of the ids, where holding every id took 16 bytes a row.
fn deleted_rows(
    target: &mut dyn Target,
    on: &On<'_>,
    live_by_bucket: &[u32],
    created: &[Uuid],
    counted: Option<Vec<u32>>,
    found: &mut Vec<Found>,
) -> Result<(), EngineError> {
    let (account, table, ti) = (on.account, on.table, on.ti);
    let id_col = [("id".to_owned(), Type::Uuid)];
    let mut in_v2 = match counted {
        Some(in_v2) => in_v2,
        None => {
            let mut in_v2 = vec![0u32; BUCKETS];
            target.scan_rows(table, &id_col, Some(account), &mut |r| {
                if let Some(Value::Uuid(id)) = r.first() {
                    in_v2[bucket(id)] += 1;
                }
                Ok(())
            })?;
            in_v2
        }
    };
    for id in created {
        in_v2[bucket(id)] = in_v2[bucket(id)].saturating_sub(1);
    }
    let short: Vec<bool> = live_by_bucket.iter().zip(&in_v2).map(|(live, v2)| live > v2).collect();
    let prefixes: Vec<u16> = (0..BUCKETS).filter(|&b| short[b]).filter_map(|b| u16::try_from(b).ok()).collect();
    if prefixes.is_empty() {
        // No bucket lost a row: neither v2's ids nor the state need reading again.
        return Ok(());
    }
    let mut ids: Vec<Uuid> = match target.ids_with_prefix(table, account, &prefixes)? {
        Some(ids) => ids,
        None => {
            let mut ids = Vec::new();
            target.scan_rows(table, &id_col, Some(account), &mut |r| {
                if let Some(Value::Uuid(id)) = r.first()
                    && short[bucket(id)]
                {
                    ids.push(*id);
                }
                Ok(())
            })?;
            ids
        }
    };
    ids.sort_unstable();
    each_live(target, on, &mut |id, (_, loc)| {
        if short[bucket(&id)] && ids.binary_search(&id).is_err() {
            found.push((ti, id, loc, None));
        }
    })?;
    Ok(())
}

/// Compares every row of a table against its state read whole (a target that cannot read in
/// load order), and returns how many rows it checked.
fn whole_table(
    target: &mut dyn Target,
    on: &On<'_>,
    cols: &[(String, Type)],
    items: &mut Vec<PreviewItem>,
    found: &mut Vec<Found>,
) -> Result<u64, EngineError> {
    let (account, table, ti) = (on.account, on.table, on.ti);
    let mut entries = Vec::new();
    each_live(target, on, &mut |id, k| entries.push((id, k)))?;
    let live = SortedIds::new(entries);
    let mut seen = vec![false; live.len()];
    let mut checked = 0;
    target.scan_rows(table, cols, Some(account), &mut |row| {
        checked += 1;
        let Some(Value::Uuid(id)) = row.first().cloned() else { return Ok(()) };
        match live.find(&id) {
            None => items.push(created(table, cols, &row, id)),
            Some(i) => {
                seen[i] = true;
                let (v2, loc) = live.at(i).1;
                if fingerprint(&row) as i64 != v2 {
                    found.push((ti, id, loc, Some(row)));
                }
            }
        }
        Ok(())
    })?;
    for ((id, (_, loc)), s) in live.iter().zip(&seen) {
        if !s {
            found.push((ti, *id, *loc, None));
        }
    }
    Ok(checked)
}

/// A row created in v2: every field is new.
fn created(table: &str, cols: &[(String, Type)], row: &[Value], id: Uuid) -> PreviewItem {
    let legacy = match row.get(2) {
        Some(Value::Text(s)) => s.clone(),
        _ => String::new(),
    };
    PreviewItem {
        kind: ChangeKind::Created,
        table: table.to_owned(),
        id,
        legacy_ref: legacy,
        fields: cols
            .iter()
            .zip(row)
            .map(|((c, _), v)| FieldChange {
                column: c.clone(),
                as_loaded: serde_json::Value::Null,
                now: v.to_json_exact(),
            })
            .collect(),
        now_row: cols.iter().zip(row).map(|((c, _), v)| (c.clone(), v.to_json_exact())).collect(),
    }
}
