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
use crate::ids::SortedIds;
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

/// What v2 holds for one table, read before v1 is mapped: (id, fingerprint) sorted by id (24
/// bytes a row), and whether the mapping gave each row.
#[derive(Default)]
struct Actual {
    columns: Vec<(String, Type)>,
    rows: SortedIds<u64>,
    seen: Vec<bool>,
}

/// A row the mapping gives differently: table, id, legacy reference, the expected values.
type ChangedRow = (String, Uuid, String, Vec<Value>);

/// A target that compares every row the mapping gives with v2's fingerprints as it goes, so
/// that nothing but v2's fingerprints is held and v1 is mapped once.
struct Capture<'a> {
    pack: &'a Pack,
    aggs: BTreeMap<AggKey, Vec<f64>>,
    actual: &'a mut BTreeMap<String, Actual>,
    current: String,
    /// Changed rows, the first [`MAX_LISTED`] with their expected values.
    changed: Vec<ChangedRow>,
    /// Rows v2 lacks: table, id, legacy reference.
    missing: Vec<(String, Uuid, String)>,
    /// All changed and missing rows.
    total: u64,
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
        table.clone_into(&mut self.current);
        Ok(())
    }
    fn write_row(&mut self, row: &[Value]) -> Result<(), ConnectorError> {
        // Tables not being verified (and the account row) have no entry.
        let Some(a) = self.actual.get_mut(&self.current) else { return Ok(()) };
        let Some(Value::Uuid(id)) = row.first() else { return Ok(()) };
        let norm: Vec<Value> = row.iter().zip(&a.columns).map(|(v, (_, ty))| v.stored_as(*ty)).collect();
        aggregate_into(self.pack, &self.current, &a.columns, &norm, &mut self.aggs);
        let legacy = || match norm.get(2) {
            Some(Value::Text(s)) => s.clone(),
            _ => String::new(),
        };
        match a.rows.find(id) {
            Some(i) => {
                a.seen[i] = true;
                if a.rows.at(i).1 != fingerprint(&norm) {
                    self.total += 1;
                    if self.changed.len() + self.missing.len() < MAX_LISTED {
                        self.changed.push((self.current.clone(), *id, legacy(), norm.clone()));
                    }
                }
            }
            None => {
                self.total += 1;
                if self.changed.len() + self.missing.len() < MAX_LISTED {
                    self.missing.push((self.current.clone(), *id, legacy()));
                }
            }
        }
        Ok(())
    }
    fn finish_table(&mut self) -> Result<(), ConnectorError> {
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
    fn write_state(&mut self, _: &crate::state::StateEntry<'_>) -> Result<(), ConnectorError> {
        Ok(())
    }
}

type AggKey = (String, String);

fn aggregate_into(
    pack: &Pack,
    table: &str,
    cols: &[(String, Type)],
    row: &[Value],
    out: &mut BTreeMap<AggKey, Vec<f64>>,
) {
    for a in pack.aggregates.iter().filter(|a| a.table == table) {
        let pos = |c: &str| cols.iter().position(|(n, _)| n.eq_ignore_ascii_case(c));
        let group: Vec<String> = a
            .group_by
            .iter()
            .map(|g| {
                format!("{g}={}", pos(g).and_then(|i| row.get(i)).map_or_else(|| "null".into(), ToString::to_string))
            })
            .collect();
        let acc = out.entry((a.name.clone(), group.join(", "))).or_insert_with(|| vec![0.0; a.sum.len() + 1]);
        acc[0] += 1.0;
        for (k, c) in a.sum.iter().enumerate() {
            if let Some(v) = pos(c).and_then(|i| row.get(i)) {
                acc[k + 1] += match v {
                    Value::Int(i) => *i as f64,
                    Value::Float(f) => *f,
                    _ => 0.0,
                };
            }
        }
    }
}

fn render_sums(v: &[f64]) -> Vec<String> {
    v.iter().enumerate().map(|(i, x)| if i == 0 { format!("{x} rows") } else { format!("{x}") }).collect()
}

/// Verifies the v2 account of `spec` against v1: v2 is read first (fingerprints, counts,
/// totals), then v1 is mapped once and every row compared as the mapping gives it.
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

    // v2 first: every row's fingerprint, the counts per v1 table and the totals.
    let mut actual: BTreeMap<String, Actual> = BTreeMap::new();
    let mut actual_per_ref: HashMap<String, u64> = HashMap::new();
    let mut actual_aggs: BTreeMap<AggKey, Vec<f64>> = BTreeMap::new();
    let mut compared = 0u64;
    for ent in &pack.entities {
        let Some(tg) = &ent.target else { continue };
        let table = &tg.table;
        if actual.contains_key(table) || only_table.as_ref().is_some_and(|o| o != table) {
            continue;
        }
        let schema = pack.v2.table(table);
        let columns: Vec<(String, Type)> = crate::preview::target_columns(pack, table)
            .into_iter()
            .map(|(c, ty)| {
                let ty = schema.and_then(|t| t.column(&c)).map_or(ty, |x| x.ty);
                (c, ty)
            })
            .collect();
        let mut rows = Vec::new();
        target.scan_rows(table, &columns, Some(account), &mut |row| {
            let Some(Value::Uuid(id)) = row.first() else { return Ok(()) };
            if let Some(Value::Text(legacy)) = row.get(2) {
                let prefix = legacy.split(':').next().unwrap_or("");
                *actual_per_ref.entry(format!("{table}|{prefix}")).or_default() += 1;
            }
            aggregate_into(pack, table, &columns, &row, &mut actual_aggs);
            compared += 1;
            rows.push((*id, fingerprint(&row)));
            Ok(())
        })?;
        let rows = SortedIds::new(rows);
        let seen = vec![false; rows.len()];
        actual.insert(table.clone(), Actual { columns, rows, seen });
    }

    // Then v1 through the mapping, compared row by row as it comes.
    let mut cap = Capture {
        pack,
        aggs: BTreeMap::new(),
        actual: &mut actual,
        current: String::new(),
        changed: Vec::new(),
        missing: Vec::new(),
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
    let Capture { aggs: expected_aggs, changed, missing, total, .. } = cap;
    let mut total = total;

    let mut differences = Vec::new();
    // The v2 side of the listed changed rows, field by field.
    let mut by_table: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
    for c in &changed {
        by_table.entry(c.0.as_str()).or_default().push(c.1);
    }
    let mut actual_rows: HashMap<Uuid, Vec<Value>> = HashMap::new();
    for (table, ids) in &by_table {
        for r in target.read_rows_by_id(table, &actual[*table].columns, account, ids)? {
            if let Some(Value::Uuid(u)) = r.first() {
                actual_rows.insert(*u, r);
            }
        }
    }
    for (table, id, legacy, expected) in changed {
        let fields = match actual_rows.get(&id) {
            Some(a) => actual[&table]
                .columns
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
    for (table, a) in &actual {
        let extra: Vec<Uuid> = a.rows.iter().zip(&a.seen).filter(|(_, s)| !**s).map(|(r, _)| r.0).collect();
        total += extra.len() as u64;
        let room = MAX_LISTED.saturating_sub(differences.len());
        if extra.is_empty() || room == 0 {
            continue;
        }
        for r in target.read_rows_by_id(table, &key_cols, account, &extra[..extra.len().min(room)])? {
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
                table.as_ref().map_or(0, |t| actual_per_ref.get(&format!("{t}|{}", ent.source)).copied().unwrap_or(0));
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
        let Some((table, a)) =
            pack.entities[i].target.as_ref().and_then(|t| actual.get(&t.table).map(|a| (&t.table, a)))
        else {
            continue;
        };
        let ids: Vec<Uuid> = s.iter().map(|x| x.1).collect();
        if ids.is_empty() {
            continue;
        }
        for row in target.read_rows_by_id(table, &a.columns, account, &ids)? {
            if let Some(Value::Uuid(id)) = row.first() {
                sampled_v2
                    .insert(*id, a.columns.iter().zip(&row).map(|((c, _), v)| (c.clone(), v.to_json())).collect());
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
