//! Verification in the parallel phase: recompute every expected v2 row from v1 through the
//! mapping (the engine itself, into a capturing target), compare with what v2 holds now:
//! counts per entity explained by the buckets, pack-declared totals, every row (fingerprints
//! first, field by field where they differ), and a sample of records side by side.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::connect::{ConnectorError, Dialect, Source, Target};
use crate::ddl::Schema;
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

#[derive(Default)]
struct Expected {
    columns: Vec<(String, Type)>,
    rows: HashMap<Uuid, u64>,
    /// Full values, for the rows the second pass asks for.
    kept: HashMap<Uuid, Vec<Value>>,
}

/// A target that keeps fingerprints and running totals instead of writing.
struct Capture<'a> {
    pack: &'a Pack,
    schema: &'a Schema,
    aggs: BTreeMap<AggKey, Vec<f64>>,
    tables: BTreeMap<String, Expected>,
    current: String,
    keep: &'a HashSet<Uuid>,
    only: Option<String>,
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
    fn start_table(&mut self, table: &str, columns: &[String]) -> Result<(), ConnectorError> {
        self.current = table.to_owned();
        if table == "account" || self.only.as_deref().is_some_and(|o| o != table) {
            return Ok(());
        }
        let t = self
            .schema
            .table(table)
            .ok_or_else(|| ConnectorError::Query { what: table.into(), reason: "not in v2.sql".into() })?;
        let cols = columns.iter().map(|c| (c.clone(), t.column(c).map_or(Type::Text, |x| x.ty))).collect();
        self.tables.entry(table.to_owned()).or_default().columns = cols;
        Ok(())
    }
    fn write_row(&mut self, row: &[Value]) -> Result<(), ConnectorError> {
        let Some(e) = self.tables.get_mut(&self.current) else { return Ok(()) };
        let Some(Value::Uuid(id)) = row.first() else { return Ok(()) };
        let norm: Vec<Value> = row.iter().zip(&e.columns).map(|(v, (_, ty))| v.stored_as(*ty)).collect();
        e.rows.insert(*id, fingerprint(&norm));
        aggregate_into(self.pack, &self.current, &e.columns, &norm, &mut self.aggs);
        if self.keep.contains(id) {
            e.kept.insert(*id, norm);
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
    fn write_state(&mut self, _: &[Value]) -> Result<(), ConnectorError> {
        Ok(())
    }
}

struct Pass {
    tables: BTreeMap<String, Expected>,
    aggs: BTreeMap<AggKey, Vec<f64>>,
    report: crate::run::RunReport,
    /// (entity index, v1 values, id) per entity, reservoir-sampled.
    samples: Vec<Vec<(Vec<Value>, Uuid)>>,
}

fn capture(
    spec: &RunSpec<'_>,
    source: &mut dyn Source,
    keep: &HashSet<Uuid>,
    only: Option<String>,
    sample: usize,
) -> Result<Pass, EngineError> {
    let mut cap = Capture {
        pack: spec.pack,
        schema: &spec.pack.v2,
        aggs: BTreeMap::new(),
        tables: BTreeMap::new(),
        current: String::new(),
        keep,
        only,
    };
    let mut samples: Vec<Vec<(Vec<Value>, Uuid)>> = vec![Vec::new(); spec.pack.entities.len()];
    let mut seen = vec![0u64; spec.pack.entities.len()];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let report = run_tapped(spec, source, Some(&mut cap), &mut |_| Ok(()), &mut |ei, v1, id| {
        if sample == 0 {
            return;
        }
        // Reservoir sampling with a fixed seed: the same sample every time for the same data.
        seen[ei] += 1;
        let s = &mut samples[ei];
        if s.len() < sample {
            s.push((v1.to_vec(), id));
        } else {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let j = (rng % seen[ei]) as usize;
            if j < sample {
                s[j] = (v1.to_vec(), id);
            }
        }
    })?;
    Ok(Pass { tables: cap.tables, aggs: cap.aggs, report, samples })
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

/// Verifies the v2 account of `spec` against v1.
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
    let first = capture(spec, source, &HashSet::new(), only_table.clone(), opts.sample)?;

    let mut differences = Vec::new();
    let mut total = 0u64;
    let mut compared = 0u64;
    let mut actual_per_ref: HashMap<String, u64> = HashMap::new();
    let mut changed: Vec<(String, Uuid, String)> = Vec::new();
    let expected_aggs = &first.aggs;
    let mut actual_aggs: BTreeMap<AggKey, Vec<f64>> = BTreeMap::new();
    let mut sampled_v2: HashMap<Uuid, serde_json::Map<String, serde_json::Value>> = HashMap::new();
    let sample_ids: HashSet<Uuid> = first.samples.iter().flatten().map(|(_, id)| *id).collect();

    for (table, exp) in &first.tables {
        let mut seen: HashSet<Uuid> = HashSet::with_capacity(exp.rows.len());
        target.scan_rows(table, &exp.columns, Some(account), &mut |row| {
            let row = &row;
            let Some(Value::Uuid(id)) = row.first() else { return Ok(()) };
            let legacy = match row.get(2) {
                Some(Value::Text(s)) => s.clone(),
                _ => String::new(),
            };
            let prefix = legacy.split(':').next().unwrap_or("").to_owned();
            *actual_per_ref.entry(format!("{table}|{prefix}")).or_default() += 1;
            aggregate_into(pack, table, &exp.columns, row, &mut actual_aggs);
            if sample_ids.contains(id) {
                sampled_v2
                    .insert(*id, exp.columns.iter().zip(row).map(|((c, _), v)| (c.clone(), v.to_json())).collect());
            }
            compared += 1;
            seen.insert(*id);
            match exp.rows.get(id) {
                None => {
                    total += 1;
                    if differences.len() < MAX_LISTED {
                        differences.push(Difference {
                            kind: DiffKind::Extra,
                            table: table.clone(),
                            id: *id,
                            legacy_ref: legacy,
                            fields: Vec::new(),
                        });
                    }
                }
                Some(fp) if *fp != fingerprint(row) => changed.push((table.clone(), *id, legacy)),
                Some(_) => {}
            }
            Ok(())
        })?;
        for id in exp.rows.keys().filter(|id| !seen.contains(id)) {
            total += 1;
            if differences.len() < MAX_LISTED {
                differences.push(Difference {
                    kind: DiffKind::Missing,
                    table: table.clone(),
                    id: *id,
                    legacy_ref: String::new(),
                    fields: Vec::new(),
                });
            }
        }
    }

    // The rows that differ, field by field: a second pass keeps their expected values.
    if !changed.is_empty() || differences.iter().any(|d| d.kind == DiffKind::Missing) {
        let mut keep: HashSet<Uuid> = changed.iter().take(MAX_LISTED).map(|c| c.1).collect();
        keep.extend(differences.iter().filter(|d| d.kind == DiffKind::Missing).map(|d| d.id));
        let second = capture(spec, source, &keep, only_table.clone(), 0)?;
        for d in differences.iter_mut().filter(|d| d.kind == DiffKind::Missing) {
            if let Some(Value::Text(r)) =
                second.tables.get(&d.table).and_then(|t| t.kept.get(&d.id)).and_then(|r| r.get(2))
            {
                d.legacy_ref = r.clone();
            }
        }
        // The v2 side of the listed changed rows, table by table.
        let listed = &changed[..changed.len().min(MAX_LISTED)];
        let tables: std::collections::BTreeSet<&str> = listed.iter().map(|c| c.0.as_str()).collect();
        let mut actual_by_table: HashMap<&str, HashMap<Uuid, Vec<Value>>> = HashMap::new();
        for table in tables {
            let wanted: HashSet<Uuid> = listed.iter().filter(|c| c.0 == table).map(|c| c.1).collect();
            let rows = target.read_rows(table, &first.tables[table].columns, Some(account))?;
            let m = rows.into_iter().filter_map(|r| match r.first() {
                Some(Value::Uuid(u)) if wanted.contains(u) => Some((*u, r)),
                _ => None,
            });
            actual_by_table.insert(table, m.collect());
        }
        for (table, id, legacy) in &changed {
            total += 1;
            if differences.len() >= MAX_LISTED {
                continue;
            }
            let exp_t = &second.tables[table];
            let (Some(e), Some(a)) = (exp_t.kept.get(id), actual_by_table.get(table.as_str()).and_then(|m| m.get(id)))
            else {
                continue;
            };
            let fields = exp_t
                .columns
                .iter()
                .zip(e.iter().zip(a))
                .filter(|(_, (x, y))| x != y)
                .map(|((c, _), (x, y))| FieldDiff { column: c.clone(), expected: x.to_json(), actual: y.to_json() })
                .collect();
            differences.push(Difference {
                kind: DiffKind::Changed,
                table: table.clone(),
                id: *id,
                legacy_ref: legacy.clone(),
                fields,
            });
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

    let entities = first
        .report
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
    let samples = first
        .samples
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
