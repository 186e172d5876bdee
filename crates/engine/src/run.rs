//! One migration run: read every v1 record in dependency order, decide its bucket, write the
//! migrated ones to v2 in one transaction, and report every record that was not migrated.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use time::Date;
use uuid::Uuid;

use crate::connect::{ConnectorError, Scan, Source, SourceRow, Target};
use crate::expr::{EvalCtx, Fail, Lookup};
use crate::ids::{IntIds, KeyBits};
use crate::pack::{Entity, Pack};
use crate::value::Value;

/// Errors that stop a run. Nothing is committed to v2 when a run stops.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A database failed.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// The v1 database does not match the pack's v1 schema.
    #[error("v1 table {table} does not match the pack: {problem}")]
    Schema {
        /// The v1 table.
        table: String,
        /// What is missing.
        problem: String,
    },
    /// The ledger could not be stored.
    #[error("could not store the ledger: {0}")]
    Ledger(String),
    /// The run was told to stop (its lease on the project was lost): nothing was committed.
    #[error("the run stopped: {0}")]
    Cancelled(String),
    /// v2 changed since the overwrite preview the final migration was told to go ahead with.
    #[error("v2 changed since preview {acknowledged}: the preview is now {current}; look at it again")]
    StalePreview {
        /// The preview acknowledged.
        acknowledged: String,
        /// The preview now.
        current: String,
    },
}

/// The four buckets every v1 record ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    /// Migrated as is.
    Migrated,
    /// Migrated, with a warning.
    Warned,
    /// Left out by a scope rule.
    Excluded,
    /// Left out as bad data.
    Rejected,
}

impl Bucket {
    /// The bucket's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Migrated => "migrated",
            Bucket::Warned => "warned",
            Bucket::Excluded => "excluded",
            Bucket::Rejected => "rejected",
        }
    }
    /// Parses a bucket name.
    pub fn parse(s: &str) -> Option<Bucket> {
        Some(match s {
            "migrated" => Bucket::Migrated,
            "warned" => Bucket::Warned,
            "excluded" => Bucket::Excluded,
            "rejected" => Bucket::Rejected,
            _ => return None,
        })
    }
}

/// A record that was not simply migrated: its bucket, reason and original values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerRecord {
    /// Pack entity.
    pub entity: String,
    /// v1 key (composite keys joined with `/`).
    pub key: String,
    /// `TABLE:key`.
    pub legacy_ref: String,
    /// Bucket (never `migrated`).
    pub bucket: Bucket,
    /// Stable reason code.
    pub reason: String,
    /// Explanation naming the value or parent.
    pub message: String,
    /// The v1 record as JSON.
    pub original: String,
}

/// Counts of one entity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityReport {
    /// Pack entity.
    pub entity: String,
    /// v1 table.
    pub source: String,
    /// v2 table, if migrated.
    pub target: Option<String>,
    /// Records read.
    pub read: u64,
    /// Records migrated, with or without warning.
    pub migrated: u64,
    /// Of which with a warning.
    pub warned: u64,
    /// Records excluded.
    pub excluded: u64,
    /// Records rejected.
    pub rejected: u64,
    /// (bucket, reason) → count, for every record not simply migrated.
    pub reasons: BTreeMap<String, u64>,
}

impl EntityReport {
    /// Count for a bucket and reason.
    pub fn reason(&self, bucket: Bucket, reason: &str) -> u64 {
        self.reasons.get(&format!("{}:{reason}", bucket.as_str())).copied().unwrap_or(0)
    }
    /// read == migrated + excluded + rejected.
    pub fn adds_up(&self) -> bool {
        self.read == self.migrated + self.excluded + self.rejected
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The v2 account.
    pub account_id: Uuid,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Per entity, in dependency order.
    pub entities: Vec<EntityReport>,
    /// Rows written to v2 (the account row included).
    pub written: u64,
    /// Wall time.
    pub elapsed_ms: u64,
}

impl RunReport {
    /// Totals over all entities.
    pub fn totals(&self) -> EntityReport {
        let mut t = EntityReport { entity: "total".into(), ..Default::default() };
        for e in &self.entities {
            t.read += e.read;
            t.migrated += e.migrated;
            t.warned += e.warned;
            t.excluded += e.excluded;
            t.rejected += e.rejected;
            for (k, v) in &e.reasons {
                *t.reasons.entry(k.clone()).or_default() += v;
            }
        }
        t
    }
    /// An entity's counts.
    pub fn entity(&self, name: &str) -> Option<&EntityReport> {
        self.entities.iter().find(|e| e.entity == name)
    }
}

/// What to migrate and under which scope.
#[derive(Debug, Clone)]
pub struct RunSpec<'a> {
    /// The compiled pack.
    pub pack: &'a Pack,
    /// Account key (the project key): v2 ids derive from it.
    pub account_key: &'a str,
    /// Account name (the customer organisation).
    pub account_name: &'a str,
    /// Scope entities included.
    pub included: &'a [String],
    /// History cut-off.
    pub cutoff: Date,
    /// Option values that differ from the pack's defaults.
    pub options: &'a BTreeMap<String, String>,
    /// Show progress bars (only on a terminal).
    pub progress: bool,
    /// Set by the caller when the run must stop: it then commits nothing.
    pub cancel: Option<&'a std::sync::atomic::AtomicBool>,
}

impl RunSpec<'_> {
    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// The namespace of every cutover UUID.
const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a0e_9b47_5d3e_8c21_0a7e_3b5f_9d41);

/// The v2 account id of a project.
pub fn account_uuid(account_key: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("account:{account_key}").as_bytes())
}

/// The v2 id of a v1 record: UUIDv5(account, entity + key).
pub fn row_uuid(account: &Uuid, entity: &str, key: &str) -> Uuid {
    // `Uuid::new_v5` exactly, with a SHA-1 that uses the CPU's SHA instructions where it has
    // them: one id a record, so it was a visible part of a run. A name that fits one block
    // (55 bytes with the account) is padded here and compressed once, without the hasher's
    // buffering: the usual case (perf of a final migration's engine thread: the id's code
    // besides the compression itself, 435 samples to 269).
    let len = 16 + entity.len() + 1 + key.len();
    let digest: [u8; 20] = if len <= 55 {
        let mut block = [0u8; 64];
        block[..16].copy_from_slice(account.as_bytes());
        block[16..16 + entity.len()].copy_from_slice(entity.as_bytes());
        block[16 + entity.len()] = b':';
        block[17 + entity.len()..len].copy_from_slice(key.as_bytes());
        block[len] = 0x80;
        block[56..].copy_from_slice(&((len as u64) * 8).to_be_bytes());
        let mut state = SHA1_INIT;
        sha1::block_api::compress(&mut state, &[block]);
        let mut out = [0u8; 20];
        for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    } else {
        use sha1::Digest as _;
        let mut h = sha1::Sha1::new();
        h.update(account.as_bytes());
        h.update(entity.as_bytes());
        h.update(b":");
        h.update(key.as_bytes());
        h.finalize().into()
    };
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// SHA-1's initial state (FIPS 180-4, 5.3.1).
const SHA1_INIT: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];

/// Hash of everything besides a record's own values that decides what it maps to: the pack,
/// the history cut-off, the options and the scope. A parent's outcome is the one other input;
/// the run tracks that itself ([`Target::all_given_again`]).
pub fn mapping_context(spec: &RunSpec<'_>, options: &[String]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&spec.pack.digest.to_le_bytes());
    h.update(spec.cutoff.to_string().as_bytes());
    let mut included: Vec<&String> = spec.included.iter().collect();
    included.sort();
    for text in options.iter().chain([&String::new()]).chain(included) {
        h.update(&(text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    h.digest()
}

/// The v1 fingerprint the row state keeps for a migrated record: its values under the mapping
/// context, with the lowest bit saying whether it was migrated with a warning. A warned record
/// is therefore never kept unmapped by a final migration, which must report its warning again.
pub fn state_v1_fp(context: u64, row: &SourceRow, warned: bool) -> i64 {
    (((row.fingerprint() ^ context) & !1) | u64::from(warned)) as i64
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyVal {
    Int(i64),
    Text(Box<str>),
}

impl KeyVal {
    fn of(v: &Value) -> Option<KeyVal> {
        match v {
            Value::Null => None,
            Value::Int(i) => Some(KeyVal::Int(*i)),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(KeyVal::Int(*f as i64)),
            Value::Text(s) => {
                let t = crate::expr::trim(s);
                Some(t.parse::<i64>().map_or_else(|_| KeyVal::Text(t.into()), KeyVal::Int))
            }
            other => Some(KeyVal::Text(other.to_string().into())),
        }
    }
}

#[derive(Debug, Clone)]
enum Outcome {
    Migrated(Uuid),
    Excluded(Arc<str>),
    Rejected(Arc<str>),
}

/// A parent entity's records by key: looked up once per child row and parent, so it uses a
/// fast hasher (keys are the customer's own data, but a run is not a service under attack).
/// It is held for as long as children still come, so its size is part of a run's peak memory:
/// migrated records with an integer key (most of them, in most packs) sit apart in key order
/// at 24 bytes an entry ([`IntIds`]), a third of what an entry of the general map takes. Past
/// [`SPILL`] of those, a record whose id is its own (not a survivor's) keeps only a bit
/// ([`KeyBits`]): its id is derived from the key again when a child looks it up, a SHA-1
/// that children met in their parent's order pay once a parent.
#[derive(Debug, Clone, Default)]
struct KeyMap {
    migrated: IntIds,
    /// Integer keys migrated with their own id, past [`SPILL`] entries of `migrated`.
    own: KeyBits,
    other: HashMap<KeyVal, Outcome, foldhash::fast::RandomState>,
    /// The account and entity ids are derived from; none: `own` stays empty.
    derive: Option<(Uuid, String)>,
    /// Entries `migrated` holds before `own` takes the keys it can.
    spill: usize,
    /// The id derived last, for the children of one parent that come one after another.
    last: std::cell::Cell<Option<(i64, Uuid)>>,
}

/// Migrated integer keys a parent's map holds with their ids (24 MiB) before it keeps the ids
/// it can derive again as bits: a parent looked up at random (a part, a customer) beyond that
/// costs a SHA-1 a lookup instead of memory that grows with the table.
const SPILL: usize = 1 << 20;

impl KeyMap {
    /// The map of `entity`'s records in `account`.
    fn new(account: Uuid, entity: &str) -> Self {
        Self { derive: Some((account, entity.to_owned())), spill: SPILL, ..Self::default() }
    }

    /// The id a record with the integer key `key` has of its own.
    fn own_id(&self, key: i64) -> Option<Uuid> {
        let (account, entity) = self.derive.as_ref()?;
        Some(row_uuid(account, entity, itoa::Buffer::new().format(key)))
    }

    /// Records `key`'s outcome; a later one for the same key replaces it.
    fn insert(&mut self, key: KeyVal, outcome: Outcome) {
        match (key, outcome) {
            (KeyVal::Int(i), Outcome::Migrated(id)) => {
                if !self.other.is_empty() {
                    self.other.remove(&KeyVal::Int(i));
                }
                if self.migrated.len() >= self.spill && self.own_id(i) == Some(id) && self.own.insert(i) {
                    if self.migrated.last_key().is_some_and(|last| i <= last) {
                        self.migrated.remove(i);
                    }
                    return;
                }
                if !self.own.is_empty() {
                    self.own.remove(i);
                }
                self.migrated.insert(i, id);
            }
            (key, outcome) => {
                if let KeyVal::Int(i) = key {
                    self.migrated.remove(i);
                    self.own.remove(i);
                }
                self.other.insert(key, outcome);
            }
        }
    }

    fn get(&self, key: &KeyVal) -> Option<Outcome> {
        if let KeyVal::Int(i) = key {
            if self.own.contains(*i) {
                if let Some((k, id)) = self.last.get()
                    && k == *i
                {
                    return Some(Outcome::Migrated(id));
                }
                let id = self.own_id(*i)?;
                self.last.set(Some((*i, id)));
                return Some(Outcome::Migrated(id));
            }
            if let Some(id) = self.migrated.get(*i) {
                return Some(Outcome::Migrated(id));
            }
        }
        self.other.get(key).cloned()
    }
}

struct Parents<'a> {
    pack: &'a Pack,
    maps: &'a [Option<KeyMap>],
}

impl Lookup for Parents<'_> {
    fn lookup(&self, entity: usize, key: &Value) -> Result<Value, Fail> {
        let name = &self.pack.entities[entity].name;
        let Some(k) = KeyVal::of(key) else {
            return Err(Fail::Reject { reason: "orphan".into(), message: format!("no parent {name} given") });
        };
        let found = self.maps.get(entity).and_then(|m| m.as_ref()).and_then(|m| m.get(&k));
        match found {
            Some(Outcome::Migrated(u)) => Ok(Value::Uuid(u)),
            Some(Outcome::Excluded(r)) => {
                Err(Fail::Cascade { reason: r.to_string(), message: format!("parent {name} {key} is excluded ({r})") })
            }
            Some(Outcome::Rejected(r)) => Err(Fail::Reject {
                reason: "orphan".into(),
                message: format!("parent {name} {key} was rejected ({r})"),
            }),
            None => Err(Fail::Reject {
                reason: "orphan".into(),
                message: format!("parent {name} {key} does not exist in v1"),
            }),
        }
    }
}

enum Decision {
    Migrated(Vec<Value>, Vec<(String, String)>),
    /// A duplicate merged into the survivor with this id.
    Merged(String, String, Uuid),
    Excluded(String, String),
    Rejected(String, String),
}

fn fail_to_decision(f: Fail) -> Decision {
    match f {
        Fail::Reject { reason, message } => Decision::Rejected(reason, message),
        Fail::Cascade { reason, message } => Decision::Excluded(reason, message),
    }
}

const LEDGER_BATCH: usize = 1000;

/// Runs a migration. With `target` = `None` it is a dry run: everything but the writing.
pub fn run(
    spec: &RunSpec<'_>,
    source: &mut dyn Source,
    target: Option<&mut dyn Target>,
    ledger: &mut dyn FnMut(Vec<LedgerRecord>) -> Result<(), EngineError>,
) -> Result<RunReport, EngineError> {
    run_tapped(spec, source, target, ledger, &mut |_, _, _| {})
}

/// Sees every migrated record: entity index, its v1 values and its v2 id.
pub type Tap<'a> = &'a mut dyn FnMut(usize, &[Value], Uuid);

/// [`run`], showing every migrated record to `tap` (verification samples records with it).
pub fn run_tapped(
    spec: &RunSpec<'_>,
    source: &mut dyn Source,
    mut target: Option<&mut dyn Target>,
    ledger: &mut dyn FnMut(Vec<LedgerRecord>) -> Result<(), EngineError>,
    tap: Tap<'_>,
) -> Result<RunReport, EngineError> {
    let started = Instant::now();
    let pack = spec.pack;
    let account = account_uuid(spec.account_key);
    let options: Vec<String> = pack
        .template
        .options
        .iter()
        .map(|o| spec.options.get(&o.name).cloned().unwrap_or_else(|| o.default.clone()))
        .collect();
    check_source(pack, source)?;
    let context = mapping_context(spec, &options);

    let mut written = 0u64;
    if let Some(t) = target.as_deref_mut()
        && !t.replaces_account()
    {
        t.begin()?;
        // A final migration keeps the rows a lookup may answer with, or writes them first.
        t.trust_references(&resolved_references(pack));
    } else if let Some(t) = target.as_deref_mut() {
        t.ensure_schema(&pack.v2)?;
        t.ensure_state_table()?;
        t.begin()?;
        // Re-running replaces the account's rows: same v2, no duplicates.
        let mut tables: Vec<&str> =
            pack.entities.iter().rev().filter_map(|e| e.target.as_ref().map(|t| t.table.as_str())).collect();
        tables.dedup();
        for table in &tables {
            t.exec_with_uuid(&format!("DELETE FROM {} WHERE account_id = $1", t.dialect().ident(table)), account)?;
        }
        t.exec_with_uuid("DELETE FROM account WHERE id = $1", account)?;
        t.exec_with_uuid(&format!("DELETE FROM {} WHERE account_id = $1", crate::state::STATE_TABLE), account)?;
        t.set_state_generation(1);
        if t.defer_constraints(&tables)? {
            t.trust_references(&resolved_references(pack));
        }
        t.start_table("account", &["id".into(), "name".into(), "legacy_ref".into()])?;
        t.write_row(&[
            Value::Uuid(account),
            Value::Text(spec.account_name.to_owned()),
            Value::Text(spec.account_key.to_owned()),
        ])?;
        t.finish_table()?;
        written += 1;
    }

    let needed: Vec<bool> =
        (0..pack.entities.len()).map(|i| pack.entities.iter().any(|e| e.depends_on.contains(&i))).collect();
    let mut maps: Vec<Option<KeyMap>> = vec![None; pack.entities.len()];
    // Entities whose every loaded row was given again with its own id: a child of only such
    // parents maps as before when its own record is unchanged (final migration).
    let mut stable = vec![false; pack.entities.len()];
    let mut reports = Vec::new();
    let mut pending: Vec<LedgerRecord> = Vec::new();
    let show = spec.progress && std::io::stderr().is_terminal();

    for (ei, ent) in pack.entities.iter().enumerate() {
        let mut map = needed[ei].then(|| KeyMap::new(account, &ent.name));
        let mut rep = EntityReport {
            entity: ent.name.clone(),
            source: ent.source.clone(),
            target: ent.target.as_ref().map(|t| t.table.clone()),
            ..Default::default()
        };
        let in_scope = ent.not_migrated.is_none() && spec.included.contains(&ent.scope);
        let writing = in_scope && ent.target.is_some() && target.is_some();
        // A merge makes a record's outcome depend on the records before it: map them all.
        let keepable = writing && ent.merge.is_none() && ent.depends_on.iter().all(|&p| stable[p]);
        if writing && let (Some(t), Some(tg)) = (target.as_deref_mut(), ent.target.as_ref()) {
            let mut cols = vec!["id".to_owned(), "account_id".to_owned(), "legacy_ref".to_owned()];
            cols.extend(tg.fields.iter().map(|f| f.column.clone()));
            t.start_table(&tg.table, &cols)?;
        }
        let bar = if show {
            let total = source.count(&ent.source)?;
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template("{prefix:>20} {bar:30} {pos}/{len} {per_sec} {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.set_prefix(ent.name.clone());
            Some(b)
        } else {
            None
        };
        let key_names = ent.key_columns();
        // Column names and types of the v2 rows, for the row state.
        let out_cols: Vec<(String, crate::value::Type)> = ent.target.as_ref().map_or_else(Vec::new, |tg| {
            let mut v = vec![
                ("id".to_owned(), crate::value::Type::Uuid),
                ("account_id".to_owned(), crate::value::Type::Uuid),
                ("legacy_ref".to_owned(), crate::value::Type::Text),
            ];
            v.extend(tg.fields.iter().map(|f| (f.column.clone(), f.ty)));
            v
        });
        let has_float = out_cols.iter().any(|c| c.1 == crate::value::Type::Float);
        let table_name = ent.target.as_ref().map(|t| t.table.clone()).unwrap_or_default();
        // A record kept by its fingerprint needs no more than its key decoded. A column declared
        // of a type no stored value has (a date) is converted in every row, which would then
        // never fingerprint as loaded: such an entity's rows are decoded whole.
        let lazy = keepable
            && target.as_deref().is_some_and(|t| t.keeps_unchanged())
            && ent.columns.iter().all(|(_, ty)| {
                use crate::value::Type;
                matches!(ty, Type::Int | Type::Float | Type::Text | Type::Bytes)
            });
        let scan = Scan {
            table: &ent.source,
            columns: &ent.columns,
            extra: &ent.extra,
            order_by: &key_names,
            lazy: lazy.then_some(ent.key.as_slice()),
        };
        // The next entity's scan gets ready while this one is read.
        if let Some(next) = pack.entities.get(ei + 1) {
            let keys = next.key_columns();
            source.prepare(&Scan {
                table: &next.source,
                columns: &next.columns,
                extra: &next.extra,
                order_by: &keys,
                lazy: None,
            });
        }
        let mut merge_groups: HashMap<String, (String, Uuid)> = HashMap::new();
        let mut out_row: Vec<Value> = Vec::new();
        let mut key_buf = String::new();
        // The key of the record before: a scan runs in key order, so a record with the same key
        // as another comes right after it.
        let mut prev_key: Option<String> = None;
        let mut ledger_err: Option<EngineError> = None;
        {
            let parents = Parents { pack, maps: &maps };
            let cx = EvalCtx { cutoff: spec.cutoff, options: &options, maps: &pack.maps, lookup: &parents };
            let target_ref = &mut target;
            let mut on_row = |row: &SourceRow| -> Result<(), ConnectorError> {
                rep.read += 1;
                if rep.read.is_multiple_of(4096) {
                    if let Some(b) = &bar {
                        b.set_position(rep.read);
                    }
                    if spec.cancelled() {
                        return Err(ConnectorError::Query { what: "run".into(), reason: "cancelled".into() });
                    }
                }
                if rep.read == 100 {
                    crate::failpoint::reached(&format!("in-entity:{}", ent.name));
                }
                write_key(&mut key_buf, ent, &row.values);
                let mut key_problem = key_problem_of(ent, row, &key_buf, prev_key.as_deref());
                // A record met in the order the last run met it, and as it was then, is the row
                // the state holds next: its id is that row's.
                // Only a record with a key and every value read may be kept as it was.
                let may_keep = |row: &SourceRow, key_problem: &Option<(&str, String)>| {
                    keepable && key_problem.is_none() && row.bad.is_none()
                };
                let kept_as = if may_keep(row, &key_problem) {
                    target_ref.as_deref_mut().and_then(|t| t.keep_next_unchanged(state_v1_fp(context, row, false)))
                } else {
                    None
                };
                let id = kept_as.unwrap_or_else(|| row_uuid(&account, &ent.name, &key_buf));
                let mut keep = |row: &SourceRow, key_problem: &Option<(&str, String)>| {
                    may_keep(row, key_problem)
                        && target_ref
                            .as_deref_mut()
                            .is_some_and(|t| t.keep_unchanged(&id, state_v1_fp(context, row, false)))
                };
                let mut kept = kept_as.is_some() || keep(row, &key_problem);
                // A lazy row has only its key decoded: one not kept by its fingerprint is decoded
                // whole, and taken as any other (its key's values are the same).
                let whole;
                let row = if row.is_lazy() && !kept {
                    whole = row.decoded(&ent.columns);
                    key_problem = key_problem_of(ent, &whole, &key_buf, prev_key.as_deref());
                    kept = keep(&whole, &key_problem);
                    &whole
                } else {
                    row
                };
                if key_problem.is_none() {
                    match &mut prev_key {
                        Some(p) => p.clone_from(&key_buf),
                        None => prev_key = Some(key_buf.clone()),
                    }
                }
                if kept {
                    if let Some(m) = map.as_mut()
                        && let Some(k) = map_key(ent, &row.values, &key_buf)
                    {
                        m.insert(k, Outcome::Migrated(id));
                    }
                    tap(ei, &row.values, id);
                    rep.migrated += 1;
                    return Ok(());
                }
                let key = key_buf.clone();
                let legacy_ref = format!("{}:{key}", ent.source);
                let decision = if let Some((_, why)) = &row.bad {
                    Decision::Rejected("invalid_value".into(), why.clone())
                } else if let Some((reason, why)) = &key_problem {
                    Decision::Rejected((*reason).to_owned(), why.clone())
                } else if let Some(why) = &ent.not_migrated {
                    Decision::Excluded("not_supported_in_v2".into(), why.clone())
                } else if !in_scope {
                    Decision::Excluded(
                        "excluded_by_scope".into(),
                        format!("{} is excluded from the scope by agreement", ent.scope),
                    )
                } else {
                    classify(ent, &row.values, &cx, &mut merge_groups, &legacy_ref, id)
                };
                let (bucket, reason, message) = match decision {
                    Decision::Migrated(values, warnings) => {
                        if let Some(m) = map.as_mut()
                            && let Some(k) = map_key(ent, &row.values, &key_buf)
                        {
                            m.insert(k, Outcome::Migrated(id));
                        }
                        if let (true, Some(t)) = (writing, target_ref.as_deref_mut()) {
                            out_row.clear();
                            out_row.push(Value::Uuid(id));
                            out_row.push(Value::Uuid(account));
                            out_row.push(Value::Text(legacy_ref.clone()));
                            out_row.extend(values);
                            t.write_row(&out_row)?;
                            if t.wants_state() {
                                // The row as loaded: what the overwrite preview compares v2 against later.
                                // The row as the columns store it: only float columns change an integer,
                                // so tables without one skip the copy.
                                let converted: Vec<Value>;
                                let stored: &[Value] = if has_float {
                                    converted =
                                        out_row.iter().zip(&out_cols).map(|(v, (_, ty))| v.stored_as(*ty)).collect();
                                    &converted
                                } else {
                                    &out_row
                                };
                                t.write_state(&crate::state::StateEntry {
                                    account,
                                    table: &table_name,
                                    id,
                                    legacy_ref: &legacy_ref,
                                    v1_fp: state_v1_fp(context, row, !warnings.is_empty()),
                                    v2_fp: crate::value::fingerprint(stored) as i64,
                                    values: &stored[crate::value::KEY_COLUMNS..],
                                })?;
                            }
                        }
                        tap(ei, &row.values, id);
                        rep.migrated += 1;
                        if warnings.is_empty() {
                            return Ok(());
                        }
                        rep.warned += 1;
                        let reason = warnings[0].0.clone();
                        let message = warnings.iter().map(|(r, m)| format!("{r}: {m}")).collect::<Vec<_>>().join("; ");
                        (Bucket::Warned, reason, message)
                    }
                    Decision::Merged(reason, message, survivor) => {
                        rep.excluded += 1;
                        if let Some(m) = map.as_mut()
                            && let Some(k) = map_key(ent, &row.values, &key_buf)
                        {
                            // A merged duplicate answers lookups with its survivor's id: children are re-pointed.
                            m.insert(k, Outcome::Migrated(survivor));
                        }
                        (Bucket::Excluded, reason, message)
                    }
                    Decision::Excluded(reason, message) => {
                        rep.excluded += 1;
                        if let Some(m) = map.as_mut()
                            && let Some(k) = map_key(ent, &row.values, &key_buf)
                        {
                            m.insert(k, Outcome::Excluded(Arc::from(reason.as_str())));
                        }
                        (Bucket::Excluded, reason, message)
                    }
                    Decision::Rejected(reason, message) => {
                        rep.rejected += 1;
                        // A second record with a key leaves the first one's outcome alone.
                        if key_problem.is_none()
                            && let Some(m) = map.as_mut()
                            && let Some(k) = map_key(ent, &row.values, &key_buf)
                        {
                            m.insert(k, Outcome::Rejected(Arc::from(reason.as_str())));
                        }
                        (Bucket::Rejected, reason, message)
                    }
                };
                *rep.reasons.entry(format!("{}:{reason}", bucket.as_str())).or_default() += 1;
                pending.push(LedgerRecord {
                    entity: ent.name.clone(),
                    key,
                    legacy_ref,
                    bucket,
                    reason,
                    message,
                    original: original_json(ent, row),
                });
                if pending.len() >= LEDGER_BATCH
                    && let Err(e) = ledger(std::mem::take(&mut pending))
                {
                    ledger_err = Some(e);
                    return Err(ConnectorError::Query {
                        what: "ledger".into(),
                        reason: "storing the ledger failed".into(),
                    });
                }
                Ok(())
            };
            let scanned = source.scan(&scan, &mut on_row);
            if let Some(e) = ledger_err {
                return Err(e);
            }
            if spec.cancelled() {
                return Err(EngineError::Cancelled("told to stop while reading".into()));
            }
            scanned?;
        }
        if writing && let Some(t) = target.as_deref_mut() {
            t.finish_table()?;
            written += rep.migrated;
            stable[ei] = t.all_given_again(&table_name);
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        tracing::info!(entity = %ent.name, read = rep.read, migrated = rep.migrated, excluded = rep.excluded, rejected = rep.rejected, "entity done");
        crate::failpoint::reached(&format!("after-entity:{}", ent.name));
        maps[ei] = map;
        // A parent's keys go once no entity still to come looks them up.
        for (p, m) in maps.iter_mut().enumerate() {
            if m.is_some() && !pack.entities[ei + 1..].iter().any(|e| e.depends_on.contains(&p)) {
                *m = None;
            }
        }
        reports.push(rep);
    }
    if !pending.is_empty() {
        ledger(std::mem::take(&mut pending))?;
    }
    // The parents' keys are the run's largest memory; a commit that builds indexes needs room.
    drop(maps);
    crate::failpoint::reached("before-commit");
    if spec.cancelled() {
        return Err(EngineError::Cancelled("told to stop before committing".into()));
    }
    if let Some(t) = target.as_deref_mut() {
        t.commit()?;
    }
    Ok(RunReport {
        account_id: account,
        dry_run: target.is_none(),
        entities: reports,
        written,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

fn classify(
    ent: &Entity,
    row: &[Value],
    cx: &EvalCtx<'_>,
    merge_groups: &mut HashMap<String, (String, Uuid)>,
    legacy_ref: &str,
    id: Uuid,
) -> Decision {
    for r in &ent.exclude {
        match r.when.eval(row, cx) {
            Ok(Value::Bool(true)) => return Decision::Excluded(r.reason.clone(), r.message.clone()),
            Ok(_) => {}
            Err(f) => return fail_to_decision(f),
        }
    }
    for r in &ent.reject {
        match r.when.eval(row, cx) {
            Ok(Value::Bool(true)) => return Decision::Rejected(r.reason.clone(), r.message.clone()),
            Ok(_) => {}
            Err(f) => return fail_to_decision(f),
        }
    }
    let mut merge_value = None;
    if let Some(m) = &ent.merge {
        let on = match &m.when {
            Some(w) => matches!(w.when_eval(row, cx), Ok(true)),
            None => true,
        };
        if on
            && let Ok(v) = m.by.eval(row, cx)
            && !v.is_null()
        {
            let k = v.to_string();
            if let Some((survivor, survivor_id)) = merge_groups.get(&k) {
                return Decision::Merged(m.reason.clone(), format!("{}: {survivor}", m.message), *survivor_id);
            }
            merge_value = Some(k);
        }
    }
    let Some(tg) = &ent.target else {
        return Decision::Excluded("not_supported_in_v2".into(), String::new());
    };
    let mut values = Vec::with_capacity(tg.fields.len());
    let mut warnings = Vec::new();
    for f in &tg.fields {
        let v = match f.node.eval(row, cx) {
            Ok(v) => v,
            Err(Fail::Reject { reason, message }) if f.warn_on_error => {
                warnings.push((reason, format!("{}: {message}; left empty", f.column)));
                Value::Null
            }
            Err(fail) => return fail_to_decision(fail),
        };
        if v.is_null() && f.not_null {
            return Decision::Rejected(
                "missing_value".into(),
                format!("{} is required in v2 but empty in v1", f.column),
            );
        }
        // SQLite keeps a NUL character in text; PostgreSQL cannot, and v2 is the same on both.
        if let Value::Text(t) = &v
            && t.as_bytes().contains(&0)
        {
            return Decision::Rejected(
                "invalid_value".into(),
                format!("{} holds a NUL character (U+0000), which text in v2 cannot hold", f.column),
            );
        }
        values.push(v);
    }
    for r in &ent.warn {
        match r.when.eval(row, cx) {
            Ok(Value::Bool(true)) => warnings.push((r.reason.clone(), r.message.clone())),
            Ok(_) => {}
            Err(f) => return fail_to_decision(f),
        }
    }
    if let Some(k) = merge_value {
        merge_groups.insert(k, (legacy_ref.to_owned(), id));
    }
    Decision::Migrated(values, warnings)
}

trait WhenEval {
    fn when_eval(&self, row: &[Value], cx: &EvalCtx<'_>) -> Result<bool, Fail>;
}

impl WhenEval for crate::expr::Node {
    fn when_eval(&self, row: &[Value], cx: &EvalCtx<'_>) -> Result<bool, Fail> {
        Ok(matches!(self.eval(row, cx)?, Value::Bool(true)))
    }
}

/// The foreign keys a first load into empty tables fills only with ids of rows it writes itself:
/// every table's `account_id` (the run writes the account row, and every row is the account's),
/// and every column whose rule is nothing but a lookup of an entity written to the referenced
/// table (a lookup answers only with the id of a record the run migrated, or a merged one's
/// survivor, or fails the record). A pack writes each table from one entity only.
pub fn resolved_references(pack: &Pack) -> Vec<crate::connect::Reference> {
    let reference = |table: &str, column: &str, parent: &str| crate::connect::Reference {
        table: table.to_owned(),
        column: column.to_owned(),
        parent: parent.to_owned(),
        parent_column: "id".to_owned(),
    };
    let mut refs = Vec::new();
    for tg in pack.entities.iter().filter_map(|e| e.target.as_ref()) {
        refs.push(reference(&tg.table, "account_id", "account"));
        for f in &tg.fields {
            if let Some(parent) = f.node.looked_up_entity().and_then(|p| pack.entities.get(p)?.target.as_ref()) {
                refs.push(reference(&tg.table, &f.column, &parent.table));
            }
        }
    }
    refs
}

/// Why a record cannot be migrated by its key: it has none, or the key of the record before it
/// (a legacy table that lost its primary key), and would give a v2 row another has. `None` too
/// for a row with a value that could not be read: that is the reason it is rejected.
fn key_problem_of(ent: &Entity, row: &SourceRow, key: &str, prev_key: Option<&str>) -> Option<(&'static str, String)> {
    if row.bad.is_some() {
        None
    } else if ent.key.iter().any(|&k| row.values.get(k).is_none_or(Value::is_null)) {
        let empty: Vec<&str> = ent
            .key
            .iter()
            .filter(|&&k| row.values.get(k).is_none_or(Value::is_null))
            .map(|&k| ent.columns[k].0.as_str())
            .collect();
        Some(("missing_key", format!("the record has no key: {} is empty", empty.join(", "))))
    } else if prev_key == Some(key) {
        Some(("duplicate_key", format!("another record has the same key {key}; the first of them is the one migrated")))
    } else {
        None
    }
}

/// A record's v1 key (composite keys joined with `/`) into `out`, without allocating per row.
fn write_key(out: &mut String, ent: &Entity, row: &[Value]) {
    use std::fmt::Write as _;
    out.clear();
    for (i, &k) in ent.key.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        // The common key types without the formatting machinery: one key a record.
        match row.get(k) {
            Some(Value::Int(i)) => out.push_str(itoa::Buffer::new().format(*i)),
            Some(Value::Text(s)) => out.push_str(s),
            Some(v) => {
                let _ = write!(out, "{v}");
            }
            None => {}
        }
    }
}

/// A record's key in its entity's key map; `key` is its composite key as the run wrote it.
fn map_key(ent: &Entity, row: &[Value], key: &str) -> Option<KeyVal> {
    match ent.key.as_slice() {
        [k] => KeyVal::of(row.get(*k)?),
        _ => Some(KeyVal::Text(key.into())),
    }
}

fn original_json(ent: &Entity, row: &SourceRow) -> String {
    if row.bad.is_none() {
        let mut s = String::with_capacity(256);
        crate::value::write_json_row(&mut s, ent.columns.iter().map(|c| c.0.as_str()), &row.values, false);
        return s;
    }
    let mut m = serde_json::Map::new();
    for (i, (name, _)) in ent.columns.iter().enumerate() {
        let v = match &row.bad {
            Some((bi, why)) if *bi == i => serde_json::Value::String(format!("<unreadable: {why}>")),
            _ => row.values.get(i).map_or(serde_json::Value::Null, Value::to_json),
        };
        m.insert(name.clone(), v);
    }
    serde_json::Value::Object(m).to_string()
}

fn check_source(pack: &Pack, source: &mut dyn Source) -> Result<(), EngineError> {
    for ent in &pack.entities {
        let actual = source.table_columns(&ent.source)?;
        if actual.is_empty() {
            return Err(EngineError::Schema {
                table: ent.source.clone(),
                problem: "the table does not exist in the v1 database".into(),
            });
        }
        let plain = ent.columns.len() - ent.extra.len();
        for (c, _) in &ent.columns[..plain] {
            if !actual.iter().any(|a| a.eq_ignore_ascii_case(c)) {
                return Err(EngineError::Schema {
                    table: ent.source.clone(),
                    problem: format!("column {c} is missing (the pack's v1.sql has it)"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_ids_are_uuid_v5() {
        let account = account_uuid("acme");
        for (entity, key) in [("customer", "1"), ("order_line", "12/3"), ("x", ""), ("ø", "ключ")] {
            assert_eq!(row_uuid(&account, entity, key), Uuid::new_v5(&account, format!("{entity}:{key}").as_bytes()));
        }
        // Names around the one-block limit (55 bytes with the account's 16), and far past it.
        for len in 0..90 {
            let key = "k".repeat(len);
            assert_eq!(row_uuid(&account, "e", &key), Uuid::new_v5(&account, format!("e:{key}").as_bytes()), "{len}");
        }
    }

    fn found(m: &KeyMap, k: KeyVal) -> String {
        match m.get(&k) {
            Some(Outcome::Migrated(u)) => format!("migrated {u}"),
            Some(Outcome::Excluded(r)) => format!("excluded {r}"),
            Some(Outcome::Rejected(r)) => format!("rejected {r}"),
            None => "none".into(),
        }
    }

    #[test]
    fn a_key_map_answers_with_the_last_outcome_a_key_was_given() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut m = KeyMap::default();
        m.insert(KeyVal::Int(7), Outcome::Migrated(a));
        m.insert(KeyVal::Text("7-x".into()), Outcome::Migrated(b));
        m.insert(KeyVal::Int(8), Outcome::Excluded("closed".into()));
        assert_eq!(found(&m, KeyVal::Int(7)), format!("migrated {a}"));
        assert_eq!(found(&m, KeyVal::Text("7-x".into())), format!("migrated {b}"));
        assert_eq!(found(&m, KeyVal::Int(8)), "excluded closed");
        assert_eq!(found(&m, KeyVal::Int(9)), "none");
        // An integer key moves between the two maps as its outcome changes, and answers once.
        m.insert(KeyVal::Int(7), Outcome::Rejected("duplicate_key".into()));
        assert_eq!(found(&m, KeyVal::Int(7)), "rejected duplicate_key");
        m.insert(KeyVal::Int(8), Outcome::Migrated(b));
        assert_eq!(found(&m, KeyVal::Int(8)), format!("migrated {b}"));
        m.insert(KeyVal::Int(7), Outcome::Migrated(a));
        assert_eq!(found(&m, KeyVal::Int(7)), format!("migrated {a}"));
        assert_eq!((m.migrated.len(), m.other.len()), (2, 1));
    }

    #[test]
    fn past_the_spill_a_key_map_keeps_bits_for_ids_it_can_derive() {
        let account = account_uuid("acme");
        let own = |k: i64| row_uuid(&account, "order", &k.to_string());
        let survivor = Uuid::from_u128(99);
        let mut m = KeyMap::new(account, "order");
        m.spill = 4;
        for k in (1..=40).step_by(3) {
            // Key 16's record merged into a survivor: its id is not its own.
            m.insert(KeyVal::Int(k), Outcome::Migrated(if k == 16 { survivor } else { own(k) }));
        }
        m.insert(KeyVal::Int(19), Outcome::Rejected("invalid_value".into()));
        m.insert(KeyVal::Int(2), Outcome::Migrated(own(2)));
        assert_eq!((m.migrated.len(), m.own.len(), m.other.len()), (6, 8, 1), "{m:?}");
        for k in 0..45 {
            let want = match k {
                16 => format!("migrated {survivor}"),
                19 => "rejected invalid_value".to_owned(),
                k if k == 2 || k % 3 == 1 && k <= 40 => format!("migrated {}", own(k)),
                _ => "none".to_owned(),
            };
            // Twice: the second answer comes from the id derived last.
            assert_eq!(found(&m, KeyVal::Int(k)), want, "key {k}");
            assert_eq!(found(&m, KeyVal::Int(k)), want, "key {k}");
        }
        // A key kept as a bit takes another outcome, then its own id again.
        m.insert(KeyVal::Int(22), Outcome::Excluded("closed".into()));
        assert_eq!(found(&m, KeyVal::Int(22)), "excluded closed");
        m.insert(KeyVal::Int(22), Outcome::Migrated(survivor));
        assert_eq!(found(&m, KeyVal::Int(22)), format!("migrated {survivor}"));
        m.insert(KeyVal::Int(22), Outcome::Migrated(own(22)));
        assert_eq!(found(&m, KeyVal::Int(22)), format!("migrated {}", own(22)));
        // Without an account to derive from, nothing is kept as bits.
        let mut plain = KeyMap { spill: 0, ..KeyMap::default() };
        plain.insert(KeyVal::Int(1), Outcome::Migrated(own(1)));
        assert_eq!((plain.migrated.len(), plain.own.len()), (1, 0));
    }
}
