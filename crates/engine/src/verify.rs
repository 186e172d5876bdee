//! Verification in the parallel phase: recompute every expected v2 row from v1 through the
//! mapping (the engine itself, into a capturing target), compare with what v2 holds now:
//! counts per entity explained by the buckets, pack-declared totals, every row (fingerprints
//! first, field by field where they differ), and a sample of records side by side.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::connect::{ConnectorError, Dialect, Source, Target, q};
use crate::ddl::Schema;
use crate::pack::Pack;
use crate::run::{EngineError, RunReport, RunSpec, account_uuid, run_tapped};
use crate::value::{Type, Value};

/// How much to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Only this entity (counts and rows of its table).
    pub entity: Option<String>,
    /// Records per entity shown side by side.
    pub sample: usize,
}

/// An entity's counts: what v1 gives, what v2 holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityCheck {
    /// Pack entity.
    pub entity: String,
    /// v2 table, if migrated.
    pub table: Option<String>,
    /// v1 records read.
    pub read: u64,
    /// Migrated (with or without warning): the rows v2 should hold.
    pub migrated: u64,
    /// Of which with a warning.
    pub warned: u64,
    /// Excluded by scope rules.
    pub excluded: u64,
    /// Rejected as bad data.
    pub rejected: u64,
    /// Rows v2 holds for this entity.
    pub actual: u64,
    /// Whether read = migrated + excluded + rejected and v2 holds exactly the migrated rows.
    pub explained: bool,
}

/// One group of a reconciliation total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateCheck {
    /// Aggregate name.
    pub name: String,
    /// The group's values, `column=value`.
    pub group: String,
    /// Rows and sums from v1 through the mapping.
    pub expected: Vec<String>,
    /// Rows and sums in v2.
    pub actual: Vec<String>,
    /// Whether they agree.
    pub equal: bool,
}

/// What kind of difference a row has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffKind {
    /// The row differs from what the mapping gives.
    Changed,
    /// The mapping gives the row; v2 does not have it.
    Missing,
    /// v2 has a row of the account the mapping does not give.
    Extra,
}

/// A field that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    /// v2 column.
    pub column: String,
    /// From v1 through the mapping.
    pub expected: serde_json::Value,
    /// In v2.
    pub actual: serde_json::Value,
}

/// A row that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// Kind.
    pub kind: DiffKind,
    /// v2 table.
    pub table: String,
    /// v2 id.
    pub id: Uuid,
    /// The v1 record it comes from (or claims to).
    pub legacy_ref: String,
    /// Fields that differ (changed rows only).
    pub fields: Vec<FieldDiff>,
}

/// A record side by side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Pack entity.
    pub entity: String,
    /// v1 record.
    pub legacy_ref: String,
    /// v1 values.
    pub v1: serde_json::Map<String, serde_json::Value>,
    /// v2 values (empty when v2 lacks the row).
    pub v2: serde_json::Map<String, serde_json::Value>,
}

/// Everything a verification found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// The v2 account.
    pub account_id: Uuid,
    /// Counts per entity.
    pub entities: Vec<EntityCheck>,
    /// Totals per group.
    pub aggregates: Vec<AggregateCheck>,
    /// Differences (the first [`MAX_LISTED`]).
    pub differences: Vec<Difference>,
    /// All differences found.
    pub differences_total: u64,
    /// Rows compared.
    pub rows_compared: u64,
    /// Records side by side.
    pub samples: Vec<Sample>,
    /// Wall time.
    pub elapsed_ms: u64,
}

impl VerifyReport {
    /// No unexplained count, no unequal total, no differing row.
    pub fn clean(&self) -> bool {
        self.differences_total == 0
            && self.entities.iter().all(|e| e.explained)
            && self.aggregates.iter().all(|a| a.equal)
    }
    /// Counts and totals reconcile.
    pub fn reconciles(&self) -> bool {
        self.entities.iter().all(|e| e.explained) && self.aggregates.iter().all(|a| a.equal)
    }
}

/// Differences listed in full; the rest are counted.
pub const MAX_LISTED: usize = 1000;

pub use crate::value::fingerprint;

/// Every row of the schema's tables (of one account, when given; tables without an
/// `account_id` are then left out), fingerprinted and sorted, per table: two databases that
/// agree on this hold the same rows.
pub fn table_fingerprints(
    target: &mut dyn Target,
    schema: &Schema,
    account: Option<Uuid>,
) -> Result<Vec<(String, Vec<u64>)>, ConnectorError> {
    let mut out = Vec::new();
    for table in &schema.tables {
        if account.is_some() && table.column("account_id").is_none() {
            continue;
        }
        let cols: Vec<(String, Type)> = table.columns.iter().map(|c| (c.name.clone(), c.ty)).collect();
        let mut fps: Vec<u64> = target.read_rows(&table.name, &cols, account)?.iter().map(|r| fingerprint(r)).collect();
        fps.sort_unstable();
        out.push((table.name.clone(), fps));
    }
    Ok(out)
}

/// The v2 side of a table, streamed by the reader thread ([`read_v2`]) in the order the table
/// stores its rows, which is the order they were loaded in and the mapping gives them again:
/// only a window of it is held, and the rows the mapping passes over or meets early.
struct Actual {
    table: String,
    columns: Vec<(String, Type)>,
    /// Whether a float column makes expected integers read back as floats.
    has_float: bool,
    /// v2 rows received and not reached yet, in order: (id, fingerprint).
    ahead: VecDeque<(Uuid, u64)>,
    /// Whether the reader has more of the table to send.
    more: bool,
    /// v2 rows passed over and not given by the mapping yet: out of order, or extra.
    passed: FastMap<Uuid, u64>,
    /// Rows the mapping gave whose id was neither ahead nor passed over: out of order, or not
    /// in v2.
    deferred: Vec<Deferred>,
}

/// A row told apart later, once v2's rows it may be among were read: when the table ends, or
/// once [`MAX_DEFERRED`] rows wait and the rest of the table is read at once.
struct Deferred {
    id: Uuid,
    fp: u64,
    legacy: String,
    /// The expected values, kept for the first [`MAX_LISTED`] only: a changed row is listed
    /// with them.
    values: Option<Vec<Value>>,
}

/// Rows that may wait for the rest of the table before it is read whole into memory.
const MAX_DEFERRED: usize = 16_384;

/// v2 rows held ahead of the mapping: an id is looked for among them before it is deferred.
const WINDOW: usize = 4096;

/// Rows the reader sends at a time.
const BATCH: usize = 1024;

/// What the reader thread sends: a table's rows, then whether its scan ended well.
enum Batch {
    Rows(Vec<(Uuid, u64)>),
    End(Result<(), ConnectorError>),
}

fn reader_gone(table: &str) -> ConnectorError {
    q(format!("reading {table} from v2"))("the reader thread stopped".into())
}

impl Actual {
    /// Receives rows until [`WINDOW`] are ahead or the table ended.
    fn fill(&mut self, rx: &Receiver<Batch>) -> Result<(), ConnectorError> {
        while self.more && self.ahead.len() < WINDOW {
            match rx.recv() {
                Ok(Batch::Rows(rows)) => self.ahead.extend(rows),
                Ok(Batch::End(end)) => {
                    self.more = false;
                    end?;
                }
                Err(_) => {
                    self.more = false;
                    return Err(reader_gone(&self.table));
                }
            }
        }
        Ok(())
    }

    /// v2's fingerprint of `id` if it is in the window (what lies before it is passed over)
    /// or was passed over. `None` is final only once [`complete`](Self::complete).
    fn find(&mut self, id: &Uuid, rx: &Receiver<Batch>) -> Result<Option<u64>, ConnectorError> {
        self.fill(rx)?;
        if self.ahead.front().is_some_and(|e| e.0 == *id) {
            return Ok(self.ahead.pop_front().map(|e| e.1));
        }
        // An id is either ahead or passed over, never both: a row met early costs a lookup
        // rather than a scan of the window.
        if let Some(fp) = self.passed.remove(id) {
            return Ok(Some(fp));
        }
        if let Some(k) = self.ahead.iter().position(|e| e.0 == *id) {
            self.passed.extend(self.ahead.drain(..k));
            return Ok(self.ahead.pop_front().map(|e| e.1));
        }
        Ok(None)
    }

    /// Whether every v2 row of the table was read and is passed over or given.
    fn complete(&self) -> bool {
        !self.more && self.ahead.is_empty()
    }

    /// Reads the rest of the table: every row not given is then passed over.
    fn read_rest(&mut self, rx: &Receiver<Batch>) -> Result<(), ConnectorError> {
        loop {
            self.passed.extend(self.ahead.drain(..));
            if !self.more {
                return Ok(());
            }
            self.fill(rx)?;
        }
    }
}

/// v2's counts and totals, kept by the reader thread as it reads.
struct V2Side {
    /// v2 rows per "table|legacy prefix" (the v1 table a row came from).
    per_ref: FastMap<String, u64>,
    totals: Totals,
    /// Rows read.
    compared: u64,
}

/// The reader thread: for each table asked, streams v2's (id, fingerprint) in the order the
/// table stores its rows, counting rows per legacy prefix and adding up totals, until no more
/// tables are asked. Reading v2 beside the mapping takes the second core, and holds a window
/// of a table instead of the whole table's fingerprints (24 bytes a row).
fn read_v2(
    v2: &mut dyn Target,
    pack: &Pack,
    account: Uuid,
    ask: &Receiver<(String, Vec<(String, Type)>)>,
    tx: &SyncSender<Batch>,
) -> V2Side {
    let mut side = V2Side { per_ref: FastMap::default(), totals: Totals::new(pack), compared: 0 };
    let mut prefix = String::new();
    while let Ok((table, columns)) = ask.recv() {
        let mut batch = Vec::with_capacity(BATCH);
        let V2Side { per_ref, totals, compared } = &mut side;
        let scanned = v2.scan_rows(&table, &columns, Some(account), &mut |row| {
            let Some(Value::Uuid(id)) = row.first() else { return Ok(()) };
            if let Some(Value::Text(legacy)) = row.get(2) {
                prefix.clear();
                prefix.push_str(&table);
                prefix.push('|');
                prefix.push_str(legacy.split(':').next().unwrap_or(""));
                match per_ref.get_mut(prefix.as_str()) {
                    Some(n) => *n += 1,
                    None => {
                        per_ref.insert(prefix.clone(), 1);
                    }
                }
            }
            totals.add(&table, &row);
            *compared += 1;
            batch.push((*id, fingerprint(&row)));
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                tx.send(Batch::Rows(full)).map_err(|_| reader_gone(&table))?;
            }
            Ok(())
        });
        let sent = match scanned {
            Ok(()) if !batch.is_empty() => tx.send(Batch::Rows(batch)).and_then(|()| tx.send(Batch::End(Ok(())))),
            end => tx.send(Batch::End(end)),
        };
        // The verification stopped: nothing more is asked.
        if sent.is_err() {
            break;
        }
    }
    side
}

/// A row the mapping gives differently: table, id, legacy reference, the expected values.
type ChangedRow = (String, Uuid, String, Vec<Value>);

/// The pack's reconciliation totals, compiled once: for each, its table, the positions of its
/// group and sum columns, and the sums per group so far.
struct Totals {
    plans: Vec<TotalPlan>,
    sums: Vec<FastMap<String, Vec<f64>>>,
    key: String,
}

struct TotalPlan {
    table: String,
    group: Vec<(String, Option<usize>)>,
    sum: Vec<Option<usize>>,
}

impl Totals {
    fn new(pack: &Pack) -> Self {
        let plans: Vec<TotalPlan> = pack
            .aggregates
            .iter()
            .map(|a| {
                let cols = crate::preview::target_columns(pack, &a.table);
                let pos = |c: &str| cols.iter().position(|(n, _)| n.eq_ignore_ascii_case(c));
                TotalPlan {
                    table: a.table.clone(),
                    group: a.group_by.iter().map(|g| (g.clone(), pos(g))).collect(),
                    sum: a.sum.iter().map(|c| pos(c)).collect(),
                }
            })
            .collect();
        let sums = plans.iter().map(|_| FastMap::default()).collect();
        Self { plans, sums, key: String::new() }
    }

    fn add(&mut self, table: &str, row: &[Value]) {
        use std::fmt::Write as _;
        for (i, plan) in self.plans.iter().enumerate() {
            if plan.table != table {
                continue;
            }
            self.key.clear();
            for (k, (g, at)) in plan.group.iter().enumerate() {
                if k > 0 {
                    self.key.push_str(", ");
                }
                let _ = match at.and_then(|p| row.get(p)) {
                    Some(v) => write!(self.key, "{g}={v}"),
                    None => write!(self.key, "{g}=null"),
                };
            }
            if !self.sums[i].contains_key(self.key.as_str()) {
                self.sums[i].insert(self.key.clone(), vec![0.0; plan.sum.len() + 1]);
            }
            let Some(acc) = self.sums[i].get_mut(self.key.as_str()) else { continue };
            acc[0] += 1.0;
            for (k, at) in plan.sum.iter().enumerate() {
                acc[k + 1] += match at.and_then(|p| row.get(p)) {
                    Some(Value::Int(i)) => *i as f64,
                    Some(Value::Float(f)) => *f,
                    _ => 0.0,
                };
            }
        }
    }

    fn into_map(self, pack: &Pack) -> BTreeMap<AggKey, Vec<f64>> {
        let mut out = BTreeMap::new();
        for (a, sums) in pack.aggregates.iter().zip(self.sums) {
            for (group, v) in sums {
                out.insert((a.name.clone(), group), v);
            }
        }
        out
    }
}

/// A target that compares every row the mapping gives with v2 as it goes. v2's side of a
/// table is asked of the reader thread when the mapping starts the table, and streams beside
/// it: v1 is mapped once, and only a window of v2 is held.
struct Capture<'a> {
    pack: &'a Pack,
    /// Asks the reader thread for a table, read with these columns.
    ask: Sender<(String, Vec<(String, Type)>)>,
    /// The asked table's rows, from the reader thread.
    rx: Receiver<Batch>,
    only_table: Option<String>,
    expected_totals: Totals,
    current: Option<Actual>,
    /// Tables read, with the columns they were read with.
    read: BTreeMap<String, Vec<(String, Type)>>,
    /// Changed rows, the first [`MAX_LISTED`] with their expected values.
    changed: Vec<ChangedRow>,
    /// Rows v2 lacks: table, id, legacy reference.
    missing: Vec<(String, Uuid, String)>,
    /// Rows v2 has that the mapping did not give: table, id (the first [`MAX_LISTED`]).
    extra: Vec<(String, Uuid)>,
    /// All changed, missing and extra rows.
    total: u64,
}

impl<'a> Capture<'a> {
    /// Compares what the mapping gives of `only_table` (or of every table) with v2's rows, asking
    /// the reader thread for them through `ask` and receiving them on `rx`.
    fn new(
        pack: &'a Pack,
        ask: Sender<(String, Vec<(String, Type)>)>,
        rx: Receiver<Batch>,
        only_table: Option<String>,
    ) -> Self {
        Self {
            pack,
            ask,
            rx,
            only_table,
            expected_totals: Totals::new(pack),
            current: None,
            read: BTreeMap::new(),
            changed: Vec::new(),
            missing: Vec::new(),
            extra: Vec::new(),
            total: 0,
        }
    }

    fn listed(&self) -> usize {
        self.changed.len() + self.missing.len() + self.extra.len()
    }

    /// Asks the reader thread for v2's side of a table.
    fn read_table(&mut self, table: &str) -> Result<Actual, ConnectorError> {
        let schema = self.pack.v2.table(table);
        let columns: Vec<(String, Type)> = crate::preview::target_columns(self.pack, table)
            .into_iter()
            .map(|(c, ty)| {
                let ty = schema.and_then(|t| t.column(&c)).map_or(ty, |x| x.ty);
                (c, ty)
            })
            .collect();
        self.ask.send((table.to_owned(), columns.clone())).map_err(|_| reader_gone(table))?;
        let has_float = columns.iter().any(|c| c.1 == Type::Float);
        self.read.insert(table.to_owned(), columns.clone());
        Ok(Actual {
            table: table.to_owned(),
            columns,
            has_float,
            ahead: VecDeque::with_capacity(WINDOW + BATCH),
            more: true,
            passed: FastMap::default(),
            deferred: Vec::new(),
        })
    }

    /// A row of the table being verified whose fingerprint is `fp`, against v2's (`None`: v2
    /// lacks the row).
    fn compare(
        &mut self,
        table: &str,
        actual: Option<u64>,
        fp: u64,
        id: Uuid,
        legacy: String,
        values: Option<Vec<Value>>,
    ) {
        let listed = self.listed() < MAX_LISTED;
        match actual {
            Some(actual) if actual == fp => {}
            Some(_) => {
                self.total += 1;
                if listed && let Some(values) = values {
                    self.changed.push((table.to_owned(), id, legacy, values));
                }
            }
            None => {
                self.total += 1;
                if listed {
                    self.missing.push((table.to_owned(), id, legacy));
                }
            }
        }
    }

    /// Tells the deferred rows apart, once the whole table was read.
    fn settle(&mut self, a: &mut Actual) {
        for d in std::mem::take(&mut a.deferred) {
            let actual = a.passed.remove(&d.id);
            self.compare(&a.table, actual, d.fp, d.id, d.legacy, d.values);
        }
    }

    /// Reads the rest of the table just finished: the rows left to its end are told apart, and
    /// what the mapping did not give is extra.
    fn finish(&mut self, mut a: Actual) -> Result<(), ConnectorError> {
        a.read_rest(&self.rx)?;
        self.settle(&mut a);
        let mut extra: Vec<Uuid> = a.passed.into_keys().collect();
        self.total += extra.len() as u64;
        let room = MAX_LISTED.saturating_sub(self.listed());
        if room > 0 {
            // In id order: the same rows are listed every time.
            extra.sort_unstable();
            self.extra.extend(extra.into_iter().take(room).map(|id| (a.table.clone(), id)));
        }
        Ok(())
    }
}

impl Target for Capture<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    fn ensure_schema(&mut self, _: &Schema) -> Result<bool, ConnectorError> {
        Ok(false)
    }
    fn begin(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
    fn exec_with_uuid(&mut self, _: &str, _: Uuid) -> Result<u64, ConnectorError> {
        Ok(0)
    }
    fn start_table(&mut self, table: &str, _: &[String]) -> Result<(), ConnectorError> {
        // The account row and tables not being verified have no entry.
        let verified = self.pack.entities.iter().any(|e| e.target.as_ref().is_some_and(|t| t.table == table))
            && self.only_table.as_ref().is_none_or(|o| o == table);
        self.current = if verified && !self.read.contains_key(table) { Some(self.read_table(table)?) } else { None };
        Ok(())
    }
    fn write_row(&mut self, row: &[Value]) -> Result<(), ConnectorError> {
        let listed = self.listed();
        let Some(a) = self.current.as_mut() else { return Ok(()) };
        let Some(Value::Uuid(id)) = row.first() else { return Ok(()) };
        // The row as the columns store it: only a float column changes an integer.
        let converted: Vec<Value>;
        let norm: &[Value] = if a.has_float {
            converted = row.iter().zip(&a.columns).map(|(v, (_, ty))| v.stored_as(*ty)).collect();
            &converted
        } else {
            row
        };
        self.expected_totals.add(&a.table, norm);
        let legacy = || match norm.get(2) {
            Some(Value::Text(s)) => s.clone(),
            _ => String::new(),
        };
        let fp = fingerprint(norm);
        let actual = match a.find(id, &self.rx)? {
            Some(actual) => Some(actual),
            None if a.complete() => None,
            None => {
                let values = (a.deferred.len() < MAX_LISTED).then(|| norm.to_vec());
                a.deferred.push(Deferred { id: *id, fp, legacy: legacy(), values });
                if a.deferred.len() > MAX_DEFERRED {
                    // Far out of order: the rest of the table is read now, and every row is
                    // told apart as it comes from here on.
                    tracing::debug!(table = %a.table, "rows far out of order: reading the rest of v2's table");
                    a.read_rest(&self.rx)?;
                    if let Some(mut a) = self.current.take() {
                        self.settle(&mut a);
                        self.current = Some(a);
                    }
                }
                return Ok(());
            }
        };
        if actual == Some(fp) {
            return Ok(());
        }
        // A difference: its values are copied only when it is listed.
        let table = a.table.clone();
        let values = (listed < MAX_LISTED && actual.is_some()).then(|| norm.to_vec());
        self.compare(&table, actual, fp, *id, legacy(), values);
        Ok(())
    }
    fn finish_table(&mut self) -> Result<(), ConnectorError> {
        match self.current.take() {
            Some(a) => self.finish(a),
            None => Ok(()),
        }
    }
    fn commit(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
    fn rollback(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
    fn read_rows(&mut self, _: &str, _: &[(String, Type)], _: Option<Uuid>) -> Result<Vec<Vec<Value>>, ConnectorError> {
        Ok(Vec::new())
    }
    fn exec_sql(&mut self, _: &str) -> Result<u64, ConnectorError> {
        Ok(0)
    }
    fn wants_state(&self) -> bool {
        false
    }
    fn write_state(&mut self, _: &crate::state::StateEntry<'_>) -> Result<(), ConnectorError> {
        Ok(())
    }
}

type AggKey = (String, String);

/// A map looked up once a row: the customer's data are its keys, but verification is not a
/// service under attack.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

fn render_sums(v: &[f64]) -> Vec<String> {
    v.iter().enumerate().map(|(i, x)| if i == 0 { format!("{x} rows") } else { format!("{x}") }).collect()
}

/// Verifies the v2 account of `spec` against v1: v1 is mapped once, and each table's rows
/// are compared with what v2 holds as the mapping gives them (v2's side of a table is read
/// when the mapping reaches it: fingerprints, counts, totals).
pub fn verify(
    spec: &RunSpec<'_>,
    source: &mut dyn Source,
    target: &mut dyn Target,
    opts: &VerifyOptions,
) -> Result<VerifyReport, EngineError> {
    let started = Instant::now();
    let pack = spec.pack;
    let account = account_uuid(spec.account_key);
    let only_entity = opts.entity.as_ref().map(|e| {
        pack.entity_index(e)
            .ok_or_else(|| EngineError::Schema { table: e.clone(), problem: "no such entity in the pack".into() })
    });
    let only_entity = only_entity.transpose()?;
    let only_table = only_entity.and_then(|i| pack.entities[i].target.as_ref().map(|t| t.table.clone()));

    let sample = opts.sample;
    let mut samples: Vec<Vec<(Vec<Value>, Uuid)>> = vec![Vec::new(); pack.entities.len()];
    let mut seen_records = vec![0u64; pack.entities.len()];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut tap = |ei: usize, v1: &[Value], id: Uuid| {
        if sample == 0 {
            return;
        }
        // Reservoir sampling with a fixed seed: the same sample every time for the same data.
        seen_records[ei] += 1;
        let s = &mut samples[ei];
        if s.len() < sample {
            s.push((v1.to_vec(), id));
        } else {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let j = (rng % seen_records[ei]) as usize;
            if j < sample {
                s[j] = (v1.to_vec(), id);
            }
        }
    };
    // Tables the mapping did not reach (an entity out of scope) are all extra, if v2 has rows.
    let mut tables: Vec<&str> =
        pack.entities.iter().filter_map(|e| e.target.as_ref().map(|t| t.table.as_str())).collect();
    tables.dedup();
    let v2 = &mut *target;
    let (report, cap, side) = std::thread::scope(|s| {
        let (ask, asked) = mpsc::channel();
        let (tx, rx) = mpsc::sync_channel(4);
        let reader = s.spawn(move || read_v2(v2, pack, account, &asked, &tx));
        let mut cap = Capture::new(pack, ask, rx, only_table.clone());
        let mut run = || -> Result<RunReport, EngineError> {
            let report = run_tapped(spec, source, Some(&mut cap), &mut |_| Ok(()), &mut tap)?;
            for table in &tables {
                if !cap.read.contains_key(*table) && only_table.as_deref().is_none_or(|o| o == *table) {
                    let a = cap.read_table(table)?;
                    cap.finish(a)?;
                }
            }
            Ok(report)
        };
        let report = run();
        let Capture { ask, rx, expected_totals, read, changed, missing, extra, total, .. } = cap;
        // Nothing more is asked or read: the reader ends, also when the run failed midway.
        drop((ask, rx));
        let side = reader.join().map_err(|_| reader_gone("v2"));
        (report, (expected_totals, read, changed, missing, extra, total), side)
    });
    let (report, side) = (report?, side?);
    let (expected_totals, read, changed, missing, extra, total) = cap;
    let V2Side { per_ref, totals: actual_totals, compared } = side;
    let (expected_aggs, actual_aggs) = (expected_totals.into_map(pack), actual_totals.into_map(pack));

    let mut differences = Vec::new();
    // The v2 side of the listed changed rows, field by field.
    let mut by_table: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
    for c in &changed {
        by_table.entry(c.0.as_str()).or_default().push(c.1);
    }
    let mut actual_rows: HashMap<Uuid, Vec<Value>> = HashMap::new();
    for (table, ids) in &by_table {
        for r in target.read_rows_by_id(table, &read[*table], account, ids)? {
            if let Some(Value::Uuid(u)) = r.first() {
                actual_rows.insert(*u, r);
            }
        }
    }
    for (table, id, legacy, expected) in changed {
        let fields = match actual_rows.get(&id) {
            Some(a) => read[&table]
                .iter()
                .zip(expected.iter().zip(a))
                .filter(|(_, (x, y))| x != y)
                .map(|((c, _), (x, y))| FieldDiff { column: c.clone(), expected: x.to_json(), actual: y.to_json() })
                .collect(),
            None => Vec::new(),
        };
        differences.push(Difference { kind: DiffKind::Changed, table, id, legacy_ref: legacy, fields });
    }
    for (table, id, legacy) in missing {
        differences.push(Difference { kind: DiffKind::Missing, table, id, legacy_ref: legacy, fields: Vec::new() });
    }
    // Rows v2 has that the mapping did not give, with their legacy references.
    let key_cols = [("id".to_owned(), Type::Uuid), ("legacy_ref".to_owned(), Type::Text)];
    let mut extra_by_table: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
    for (table, id) in extra {
        extra_by_table.entry(table).or_default().push(id);
    }
    for (table, ids) in &extra_by_table {
        for r in target.read_rows_by_id(table, &key_cols, account, ids)? {
            if let [Value::Uuid(id), legacy] = r.as_slice() {
                let legacy_ref = match legacy {
                    Value::Text(s) => s.clone(),
                    _ => String::new(),
                };
                differences.push(Difference {
                    kind: DiffKind::Extra,
                    table: table.clone(),
                    id: *id,
                    legacy_ref,
                    fields: Vec::new(),
                });
            }
        }
    }

    let mut aggregates = Vec::new();
    let keys: std::collections::BTreeSet<&AggKey> = expected_aggs.keys().chain(actual_aggs.keys()).collect();
    for k in keys {
        let n = pack.aggregates.iter().find(|a| a.name == k.0).map_or(1, |a| a.sum.len() + 1);
        let e = expected_aggs.get(k).cloned().unwrap_or_else(|| vec![0.0; n]);
        let a = actual_aggs.get(k).cloned().unwrap_or_else(|| vec![0.0; n]);
        aggregates.push(AggregateCheck {
            name: k.0.clone(),
            group: k.1.clone(),
            equal: e == a,
            expected: render_sums(&e),
            actual: render_sums(&a),
        });
    }

    let entities = report
        .entities
        .iter()
        .enumerate()
        .filter(|(i, _)| only_entity.is_none_or(|o| o == *i))
        .map(|(i, r)| {
            let ent = &pack.entities[i];
            let table = ent.target.as_ref().map(|t| t.table.clone());
            let actual =
                table.as_ref().map_or(0, |t| per_ref.get(&format!("{t}|{}", ent.source)).copied().unwrap_or(0));
            EntityCheck {
                entity: r.entity.clone(),
                table,
                read: r.read,
                migrated: r.migrated,
                warned: r.warned,
                excluded: r.excluded,
                rejected: r.rejected,
                actual,
                explained: r.adds_up() && actual == r.migrated,
            }
        })
        .collect();
    // The sampled records' v2 rows, read by id.
    let mut sampled_v2: HashMap<Uuid, serde_json::Map<String, serde_json::Value>> = HashMap::new();
    for (i, s) in samples.iter().enumerate() {
        let Some((table, columns)) =
            pack.entities[i].target.as_ref().and_then(|t| read.get(&t.table).map(|c| (&t.table, c)))
        else {
            continue;
        };
        let ids: Vec<Uuid> = s.iter().map(|x| x.1).collect();
        if ids.is_empty() {
            continue;
        }
        for row in target.read_rows_by_id(table, columns, account, &ids)? {
            if let Some(Value::Uuid(id)) = row.first() {
                sampled_v2.insert(*id, columns.iter().zip(&row).map(|((c, _), v)| (c.clone(), v.to_json())).collect());
            }
        }
    }
    let samples = samples
        .iter()
        .enumerate()
        .filter(|(i, _)| only_entity.is_none_or(|o| o == *i))
        .flat_map(|(i, s)| {
            let ent = &pack.entities[i];
            let key_cols: Vec<usize> = ent.key.clone();
            let sampled = &sampled_v2;
            s.iter().map(move |(v1, id)| {
                let key: Vec<String> =
                    key_cols.iter().map(|&k| v1.get(k).map_or_else(String::new, ToString::to_string)).collect();
                Sample {
                    entity: ent.name.clone(),
                    legacy_ref: format!("{}:{}", ent.source, key.join("/")),
                    v1: ent.columns.iter().zip(v1).map(|((c, _), v)| (c.clone(), v.to_json())).collect(),
                    v2: sampled.get(id).cloned().unwrap_or_default(),
                }
            })
        })
        .collect();
    Ok(VerifyReport {
        account_id: account,
        entities,
        aggregates,
        differences,
        differences_total: total,
        rows_compared: compared,
        samples,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::pack::PackSource;

    fn id(n: u64) -> Uuid {
        Uuid::new_v5(&Uuid::NAMESPACE_OID, &n.to_le_bytes())
    }

    fn row(n: u64) -> Vec<Value> {
        vec![Value::Uuid(id(n)), Value::Int(n as i64)]
    }

    /// Compares the rows `given` by the mapping with v2's `stored` (in their order, each row's
    /// value changed where `changed`), as the reader thread would send them: the differences
    /// found, as (kind, row).
    fn compare(given: &[u64], stored: &[u64], changed: &[u64]) -> (u64, Vec<(DiffKind, u64)>) {
        let pack = PackSource::Builtin.load("omikai").unwrap();
        let (ask, _asked) = mpsc::channel();
        let (tx, rx) = mpsc::channel();
        for part in stored.chunks(BATCH) {
            let rows = part
                .iter()
                .map(|&n| {
                    let v = if changed.contains(&n) { n + 1_000_000 } else { n };
                    (id(n), fingerprint(&[Value::Uuid(id(n)), Value::Int(v as i64)]))
                })
                .collect();
            tx.send(Batch::Rows(rows)).unwrap();
        }
        tx.send(Batch::End(Ok(()))).unwrap();
        let mut cap = Capture::new(&pack, ask, rx, None);
        cap.start_table("contact", &[]).unwrap();
        for &n in given {
            cap.write_row(&row(n)).unwrap();
        }
        cap.finish_table().unwrap();
        let back = |u: &Uuid| (0..2_000_000).find(|&n| id(n) == *u).unwrap();
        let mut found: Vec<(DiffKind, u64)> = cap.changed.iter().map(|c| (DiffKind::Changed, back(&c.1))).collect();
        found.extend(cap.missing.iter().map(|m| (DiffKind::Missing, back(&m.1))));
        found.extend(cap.extra.iter().map(|e| (DiffKind::Extra, back(&e.1))));
        found.sort_unstable_by_key(|f| (f.1, f.0 as u8));
        (cap.total, found)
    }

    /// 3 changed, 2 missing in v2 (10, 40_000), 2 extra in v2 (50_000, 50_001).
    fn planted(given: &[u64], stored: &[u64]) {
        let (total, found) = compare(given, stored, &[7, 20_000, 39_999]);
        let want = vec![
            (DiffKind::Changed, 7),
            (DiffKind::Missing, 10),
            (DiffKind::Changed, 20_000),
            (DiffKind::Changed, 39_999),
            (DiffKind::Missing, 40_000),
            (DiffKind::Extra, 50_000),
            (DiffKind::Extra, 50_001),
        ];
        assert_eq!((total, found), (7, want));
    }

    fn v2_rows(order: impl Iterator<Item = u64>) -> Vec<u64> {
        order.filter(|n| *n != 10 && *n != 40_000).chain([50_000, 50_001]).collect()
    }

    #[test]
    fn rows_in_the_same_order_are_matched_in_passing() {
        let given: Vec<u64> = (0..=40_000).collect();
        planted(&given, &v2_rows(0..=40_000));
        // The extra rows in the middle of v2's order, not at its end.
        let mut stored = v2_rows(0..=40_000);
        let extra = stored.split_off(stored.len() - 2);
        stored.splice(30_000..30_000, extra);
        planted(&given, &stored);
    }

    #[test]
    fn rows_out_of_order_are_told_apart_when_the_table_ends() {
        // 5,000 rows (more than the window) moved to v2's end, and a few to its front.
        let given: Vec<u64> = (0..=40_000).collect();
        let order = (12_000..=40_000).rev().take(5).chain(0..1000).chain(6000..=40_000).chain(1000..6000);
        let mut stored = v2_rows(order);
        let mut seen = std::collections::HashSet::new();
        stored.retain(|n| seen.insert(*n));
        planted(&given, &stored);
    }

    #[test]
    fn rows_in_another_order_altogether_are_told_apart_after_reading_the_rest() {
        // v2 backwards: every row far from where the mapping is, past MAX_DEFERRED rows.
        let given: Vec<u64> = (0..=40_000).collect();
        planted(&given, &v2_rows((0..=40_000).rev()));
    }
}
