//! Verification in the parallel phase: recompute every expected v2 row from v1 through the
//! mapping (the engine itself, into a capturing target), compare with what v2 holds now:
//! counts per entity explained by the buckets, pack-declared totals, every row (fingerprints
//! first, field by field where they differ), and a sample of records side by side.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::connect::{ConnectorError, Dialect, Source, Target};
use crate::ddl::Schema;
use crate::ids::OrderedIds;
use crate::pack::Pack;
use crate::run::{EngineError, RunSpec, account_uuid, run_tapped};
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

/// What v2 holds for the table being verified, read when the mapping reaches it: (id,
/// fingerprint) in the order the table stores them (24 bytes a row), which is the order its
/// rows were loaded in and the mapping gives them again, and whether the mapping gave each.
struct Actual {
    table: String,
    columns: Vec<(String, Type)>,
    /// Whether a float column makes expected integers read back as floats.
    has_float: bool,
    rows: OrderedIds<u64>,
    seen: Vec<bool>,
    /// Rows the mapping gave whose id was not near v2's cursor: out of order, or not in v2.
    deferred: Vec<Deferred>,
}

/// A row told apart when its table ends, against the v2 rows the mapping did not reach: an
/// index of every id (20 bytes a row) for a handful of rows v2 lacks would cost more than the
/// fingerprints themselves. Past [`MAX_DEFERRED`] rows, the index is built after all.
struct Deferred {
    id: Uuid,
    fp: u64,
    legacy: String,
    /// The expected values, kept for the first [`MAX_LISTED`] only: a changed row is listed
    /// with them.
    values: Option<Vec<Value>>,
}

/// Rows a table may leave to its end before the index of every v2 id is built.
const MAX_DEFERRED: usize = 16_384;

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

/// A target that compares every row the mapping gives with v2 as it goes. It reads v2's
/// fingerprints of a table when the mapping starts it and lets them go when it finishes, so
/// that one table's fingerprints are held at a time and v1 is mapped once.
struct Capture<'a> {
    pack: &'a Pack,
    v2: &'a mut dyn Target,
    account: Uuid,
    only_table: Option<String>,
    expected_totals: Totals,
    actual_totals: Totals,
    /// v2 rows per "table|legacy prefix" (the v1 table a row came from).
    per_ref: FastMap<String, u64>,
    compared: u64,
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

impl Capture<'_> {
    fn listed(&self) -> usize {
        self.changed.len() + self.missing.len() + self.extra.len()
    }

    /// Reads v2's side of a table: fingerprints, counts per legacy prefix, totals.
    fn read_table(&mut self, table: &str) -> Result<Actual, ConnectorError> {
        let schema = self.pack.v2.table(table);
        let columns: Vec<(String, Type)> = crate::preview::target_columns(self.pack, table)
            .into_iter()
            .map(|(c, ty)| {
                let ty = schema.and_then(|t| t.column(&c)).map_or(ty, |x| x.ty);
                (c, ty)
            })
            .collect();
        let mut rows = Vec::with_capacity(self.state_rows(table));
        let (per_ref, totals, compared) = (&mut self.per_ref, &mut self.actual_totals, &mut self.compared);
        let mut prefix = String::new();
        self.v2.scan_rows(table, &columns, Some(self.account), &mut |row| {
            let Some(Value::Uuid(id)) = row.first() else { return Ok(()) };
            if let Some(Value::Text(legacy)) = row.get(2) {
                prefix.clear();
                prefix.push_str(table);
                prefix.push('|');
                prefix.push_str(legacy.split(':').next().unwrap_or(""));
                match per_ref.get_mut(prefix.as_str()) {
                    Some(n) => *n += 1,
                    None => {
                        per_ref.insert(prefix.clone(), 1);
                    }
                }
            }
            totals.add(table, &row);
            *compared += 1;
            rows.push((*id, fingerprint(&row)));
            Ok(())
        })?;
        let rows = OrderedIds::new(rows);
        let seen = vec![false; rows.len()];
        let has_float = columns.iter().any(|c| c.1 == Type::Float);
        self.read.insert(table.to_owned(), columns.clone());
        Ok(Actual { table: table.to_owned(), columns, has_float, rows, seen, deferred: Vec::new() })
    }

    /// How many rows the row state says the table holds (0 when it cannot tell): the table's
    /// fingerprints are gathered into room for that many. Grown instead, the vector held its
    /// old and its new buffer at once, a peak of 2.5 times the table's fingerprints.
    fn state_rows(&mut self, table: &str) -> usize {
        let mut heads = Vec::new();
        let read = self.v2.scan_state(self.account, table, false, &mut |h| {
            heads.push(h);
            Ok(())
        });
        if read.is_err() {
            return 0;
        }
        // With several generations, rows written again are counted again: room for a few more.
        let n = crate::state::live_count_without_entries(&heads).unwrap_or_else(|| {
            heads.iter().filter(|h| h.kind == crate::state::ChunkKind::Rows).map(|h| h.n.max(0) as u64).sum()
        });
        usize::try_from(n).unwrap_or(0)
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

    /// What the mapping did not give of the table just finished, and the rows it left to the end.
    fn finish(&mut self, mut a: Actual) {
        if !a.deferred.is_empty() {
            let mut wanted: FastMap<Uuid, usize> = a.deferred.iter().enumerate().map(|(k, d)| (d.id, k)).collect();
            let mut found = vec![None; a.deferred.len()];
            for ((id, fp), seen) in a.rows.iter().zip(a.seen.iter_mut()) {
                if !*seen && let Some(k) = wanted.remove(id) {
                    *seen = true;
                    found[k] = Some(*fp);
                }
            }
            for (d, actual) in std::mem::take(&mut a.deferred).into_iter().zip(found) {
                self.compare(&a.table, actual, d.fp, d.id, d.legacy, d.values);
            }
        }
        for ((id, _), seen) in a.rows.iter().zip(&a.seen) {
            if !seen {
                self.total += 1;
                if self.listed() < MAX_LISTED {
                    self.extra.push((a.table.clone(), *id));
                }
            }
        }
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
        let at = match a.rows.find_near(id) {
            Some(i) => Some(i),
            None if a.deferred.len() < MAX_DEFERRED && !a.rows.indexed() => {
                let values = (a.deferred.len() < MAX_LISTED).then(|| norm.to_vec());
                a.deferred.push(Deferred { id: *id, fp, legacy: legacy(), values });
                return Ok(());
            }
            None => a.rows.find(id),
        };
        let actual = at.map(|i| {
            a.seen[i] = true;
            a.rows.at(i).1
        });
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
        if let Some(a) = self.current.take() {
            self.finish(a);
        }
        Ok(())
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

    let mut cap = Capture {
        pack,
        v2: target,
        account,
        only_table: only_table.clone(),
        expected_totals: Totals::new(pack),
        actual_totals: Totals::new(pack),
        per_ref: FastMap::default(),
        compared: 0,
        current: None,
        read: BTreeMap::new(),
        changed: Vec::new(),
        missing: Vec::new(),
        extra: Vec::new(),
        total: 0,
    };
    let sample = opts.sample;
    let mut samples: Vec<Vec<(Vec<Value>, Uuid)>> = vec![Vec::new(); pack.entities.len()];
    let mut seen_records = vec![0u64; pack.entities.len()];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let report = run_tapped(spec, source, Some(&mut cap), &mut |_| Ok(()), &mut |ei, v1, id| {
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
    })?;
    // Tables the mapping did not reach (an entity out of scope) are all extra, if v2 has rows.
    let mut tables: Vec<&str> =
        pack.entities.iter().filter_map(|e| e.target.as_ref().map(|t| t.table.as_str())).collect();
    tables.dedup();
    for table in tables {
        if !cap.read.contains_key(table) && only_table.as_deref().is_none_or(|o| o == table) {
            let a = cap.read_table(table)?;
            cap.finish(a);
        }
    }
    let Capture {
        v2: target,
        expected_totals,
        actual_totals,
        per_ref,
        compared,
        read,
        changed,
        missing,
        extra,
        total,
        ..
    } = cap;
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
