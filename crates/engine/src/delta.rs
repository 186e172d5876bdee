//! The final migration: re-read v1 through the mapping and change v2 in place. It writes only
//! rows whose v1 record changed, rows that drifted in v2, and new ones; it deletes rows whose
//! v1 source is gone and rows created in v2. Everything it overwrites or deletes is first saved
//! to a recovery bundle.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::connect::{ConnectorError, Dialect, STATE_COLUMNS, STATE_TABLE, Source, Target};
use crate::ddl::Schema;
use crate::ids::SortedIds;
use crate::preview::{ChangeKind, Preview};
use crate::run::{EngineError, LedgerRecord, RunReport, RunSpec, account_uuid, run};
use crate::value::{Type, Value, loaded_object};

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

/// A loaded row, as small as it can be (40 bytes with its id).
struct Loaded {
    /// Its table's index in `DeltaTarget::table_order`.
    table: u16,
    /// Its v1 record's fingerprint under the mapping ([`crate::run::state_v1_fp`]).
    v1: i64,
    /// The row's fingerprint as loaded.
    v2: i64,
}

/// Every row the last migration loaded, by id, and whether this run gave it again.
struct LoadedRows {
    rows: SortedIds<Loaded>,
    seen: Vec<bool>,
}

impl LoadedRows {
    fn new(rows: Vec<(Uuid, Loaded)>) -> Self {
        let rows = SortedIds::new(rows);
        let seen = vec![false; rows.len()];
        Self { rows, seen }
    }
    fn get(&self, id: &Uuid) -> Option<&Loaded> {
        self.rows.get(id)
    }
    fn contains(&self, id: &Uuid) -> bool {
        self.rows.find(id).is_some()
    }
    /// Marks a row as given again; its state if it was loaded.
    fn see(&mut self, id: &Uuid) -> Option<&Loaded> {
        let i = self.rows.find(id)?;
        self.seen[i] = true;
        Some(&self.rows.at(i).1)
    }
    /// The loaded rows this run did not give.
    fn unseen(&self) -> impl Iterator<Item = &(Uuid, Loaded)> {
        self.rows.iter().zip(&self.seen).filter(|(_, s)| !**s).map(|(r, _)| r)
    }
}

/// A target in front of the real one: keeps what must change and writes it at commit,
/// after the recovery bundle is safely on disk.
struct DeltaTarget<'a> {
    inner: &'a mut dyn Target,
    account: Uuid,
    loaded: LoadedRows,
    /// Preview: drifted ids, and the current values of changed and created rows.
    drifted: HashMap<Uuid, (ChangeKind, String, serde_json::Map<String, serde_json::Value>)>,
    /// Tables in the order their rows are written (parents first).
    order: Vec<String>,
    columns: HashMap<String, Vec<String>>,
    pending: HashMap<String, Vec<Vec<Value>>>,
    pending_state: Vec<Vec<Value>>,
    current: String,
    last_row: Vec<Value>,
    counts: BTreeMap<String, DeltaCounts>,
    bundle_dir: PathBuf,
    preview_id: String,
    bundle: Option<BundleManifest>,
    table_order: Vec<String>,
    /// The columns cutover writes to each table of `table_order`.
    table_columns: Vec<Vec<String>>,
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
        self.inner.begin()
    }
    fn exec_with_uuid(&mut self, sql: &str, id: Uuid) -> Result<u64, ConnectorError> {
        self.inner.exec_with_uuid(sql, id)
    }
    fn exec_sql(&mut self, sql: &str) -> Result<u64, ConnectorError> {
        self.inner.exec_sql(sql)
    }
    fn start_table(&mut self, table: &str, columns: &[String]) -> Result<(), ConnectorError> {
        self.current = table.to_owned();
        if !self.order.iter().any(|t| t == table) {
            self.order.push(table.to_owned());
        }
        self.columns.insert(table.to_owned(), columns.to_vec());
        Ok(())
    }
    fn write_row(&mut self, row: &[Value]) -> Result<(), ConnectorError> {
        self.last_row.clear();
        self.last_row.extend_from_slice(row);
        Ok(())
    }
    fn write_state(&mut self, state: &[Value]) -> Result<(), ConnectorError> {
        let (Some(Value::Uuid(id)), Some(Value::Int(v1_fp)), Some(Value::Int(v2_fp))) =
            (state.get(1), state.get(4), state.get(5))
        else {
            return Ok(());
        };
        let drifted = self.drifted.contains_key(id);
        let outcome = match self.loaded.see(id) {
            // Unchanged only if the mapping gives exactly the row it loaded: an unchanged v1
            // record can still map differently when a parent's outcome changed (a duplicate
            // now merged into another survivor re-points its children).
            Some(l) if l.v1 == *v1_fp && l.v2 == *v2_fp && !drifted => None,
            Some(_) => Some(true),
            None => Some(false),
        };
        let c = self.counts_of_current();
        match outcome {
            None => {
                c.unchanged += 1;
                return Ok(());
            }
            Some(true) => c.rewritten += 1,
            Some(false) => c.inserted += 1,
        }
        self.pending.entry(self.current.clone()).or_default().push(std::mem::take(&mut self.last_row));
        self.pending_state.push(state.to_vec());
        Ok(())
    }
    fn keep_unchanged(&mut self, id: &Uuid, v1_fp: i64) -> bool {
        let Some(i) = self.loaded.rows.find(id) else { return false };
        if self.loaded.rows.at(i).1.v1 != v1_fp || (!self.drifted.is_empty() && self.drifted.contains_key(id)) {
            return false;
        }
        self.loaded.seen[i] = true;
        self.counts_of_current().unchanged += 1;
        true
    }
    fn all_given_again(&mut self, table: &str) -> bool {
        let Some(t) = self.table_order.iter().position(|x| x == table) else { return false };
        self.loaded.rows.iter().zip(&self.loaded.seen).all(|(r, seen)| *seen || usize::from(r.1.table) != t)
    }
    fn finish_table(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
    fn commit(&mut self) -> Result<(), ConnectorError> {
        // What goes: loaded rows v1 no longer gives, and rows created in v2.
        let mut gone: Vec<(Uuid, String)> = self
            .loaded
            .unseen()
            .map(|(id, l)| (*id, self.table_order.get(usize::from(l.table)).cloned().unwrap_or_default()))
            .collect();
        gone.extend(self.drifted.iter().filter(|(_, d)| d.0 == ChangeKind::Created).map(|(id, d)| (*id, d.1.clone())));
        gone.sort();
        // For every row the bundle names: its legacy reference, and its row as loaded (its v2
        // values now, unless it drifted: those come from the preview).
        let mut wanted: Vec<Uuid> = self
            .pending_state
            .iter()
            .filter_map(|s| match s.get(1) {
                Some(Value::Uuid(u)) if self.loaded.contains(u) => Some(*u),
                _ => None,
            })
            .collect();
        wanted.extend(gone.iter().map(|g| g.0));
        wanted.sort();
        wanted.dedup();
        let json_cols =
            [("id".to_owned(), Type::Uuid), ("legacy_ref".to_owned(), Type::Text), ("loaded".to_owned(), Type::Text)];
        let mut as_loaded = HashMap::new();
        if !wanted.is_empty() {
            for r in self.inner.read_rows_by_id(STATE_TABLE, &json_cols, self.account, &wanted)? {
                if let [Value::Uuid(id), Value::Text(legacy), Value::Text(json)] = r.as_slice() {
                    as_loaded.insert(*id, (legacy.clone(), json.clone()));
                }
            }
        }
        self.bundle = Some(self.write_bundle(&gone, &as_loaded).map_err(|e| ConnectorError::Query {
            what: "writing the recovery bundle".into(),
            reason: e.to_string(),
        })?);
        for table in self.order.clone() {
            let rows = self.pending.remove(&table).unwrap_or_default();
            if !rows.is_empty() {
                let cols = self.columns.get(&table).cloned().unwrap_or_default();
                self.inner.upsert_rows(&table, &cols, &["id"], &rows)?;
            }
        }
        let state_cols: Vec<String> = STATE_COLUMNS.iter().map(|c| c.0.to_owned()).collect();
        let state = std::mem::take(&mut self.pending_state);
        self.inner.upsert_rows(STATE_TABLE, &state_cols, &["account_id", "id"], &state)?;
        // Children before parents.
        for table in self.table_order.iter().rev() {
            let ids: Vec<Uuid> = gone.iter().filter(|(_, t)| t == table).map(|(id, _)| *id).collect();
            if !ids.is_empty() {
                let n = self.inner.delete_ids(table, &ids)?;
                self.counts.entry(table.clone()).or_default().deleted += n;
                self.inner.delete_ids(STATE_TABLE, &ids)?;
            }
        }
        self.inner.commit()
    }
    fn rollback(&mut self) -> Result<(), ConnectorError> {
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

impl DeltaTarget<'_> {
    /// The counts of the table being written (looked up per row without allocating).
    fn counts_of_current(&mut self) -> &mut DeltaCounts {
        if !self.counts.contains_key(&self.current) {
            self.counts.insert(self.current.clone(), DeltaCounts::default());
        }
        self.counts.get_mut(&self.current).expect("inserted above")
    }

    /// Saves, before anything is written, every row the commit will overwrite or delete, as it is in v2 now.
    fn write_bundle(
        &self,
        gone: &[(Uuid, String)],
        as_loaded: &HashMap<Uuid, (String, String)>,
    ) -> std::io::Result<BundleManifest> {
        std::fs::create_dir_all(&self.bundle_dir)?;
        let rows_path = self.bundle_dir.join("rows.jsonl");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&rows_path)?);
        let mut h = Sha256::new();
        let (mut overwritten, mut deleted) = (0u64, 0u64);
        let mut line = |v: serde_json::Value, f: &mut std::io::BufWriter<std::fs::File>| -> std::io::Result<()> {
            let s = v.to_string();
            h.update(s.as_bytes());
            h.update(b"\n");
            writeln!(f, "{s}")
        };
        let now_values = |id: &Uuid| -> serde_json::Value {
            match (self.drifted.get(id), as_loaded.get(id)) {
                (Some((ChangeKind::Changed | ChangeKind::Created, _, row)), _) => {
                    serde_json::Value::Object(row.clone())
                }
                (_, Some((legacy, json))) => {
                    let cols = self.loaded.get(id).and_then(|l| self.table_columns.get(usize::from(l.table)));
                    serde_json::Value::Object(loaded_object(
                        cols.map_or(&[][..], Vec::as_slice),
                        *id,
                        self.account,
                        legacy,
                        json,
                    ))
                }
                _ => serde_json::Value::Null,
            }
        };
        let why = |id: &Uuid, v1_gone: bool| -> &'static str {
            match (self.drifted.get(id).map(|d| d.0), v1_gone) {
                (Some(ChangeKind::Created), _) => "created in v2",
                (Some(ChangeKind::Changed), false) => "changed in v2",
                (Some(ChangeKind::Changed), true) => "changed in v2; its v1 record is gone",
                (Some(ChangeKind::Deleted), _) => "deleted in v2",
                (None, true) => "its v1 record is gone",
                (None, false) => "its v1 record changed",
            }
        };
        for state in &self.pending_state {
            let Some(Value::Uuid(id)) = state.get(1) else { continue };
            let Some(l) = self.loaded.get(id) else { continue };
            overwritten += 1;
            let table = self.table_order.get(usize::from(l.table)).cloned().unwrap_or_default();
            let legacy = as_loaded.get(id).map_or("", |x| x.0.as_str());
            line(
                serde_json::json!({"action": "overwritten", "reason": why(id, false), "table": table, "id": id, "legacy_ref": legacy, "values": now_values(id)}),
                &mut f,
            )?;
        }
        for (id, table) in gone {
            deleted += 1;
            let legacy = as_loaded.get(id).map_or_else(String::new, |x| x.0.clone());
            line(
                serde_json::json!({"action": "deleted", "reason": why(id, true), "table": table, "id": id, "legacy_ref": legacy, "values": now_values(id)}),
                &mut f,
            )?;
        }
        f.flush()?;
        f.get_ref().sync_all()?;
        let manifest = BundleManifest {
            path: self.bundle_dir.display().to_string(),
            preview_id: self.preview_id.clone(),
            rows: overwritten + deleted,
            overwritten,
            deleted,
            sha256: h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        };
        let mf = serde_json::json!({"account_id": self.account, "manifest": manifest});
        std::fs::write(self.bundle_dir.join("manifest.json"), serde_json::to_string_pretty(&mf).unwrap_or_default())?;
        Ok(manifest)
    }
}

/// Runs the final migration against `preview` (computed by the caller just before, and acknowledged).
pub fn final_run(
    spec: &RunSpec<'_>,
    source: &mut dyn Source,
    target: &mut dyn Target,
    preview: &Preview,
    bundle_dir: &Path,
    ledger: &mut dyn FnMut(Vec<LedgerRecord>) -> Result<(), EngineError>,
) -> Result<FinalReport, EngineError> {
    let account = account_uuid(spec.account_key);
    let mut table_order: Vec<String> =
        spec.pack.entities.iter().filter_map(|e| e.target.as_ref().map(|t| t.table.clone())).collect();
    table_order.dedup();
    // Fingerprints only: legacy references and rows as loaded are fetched at commit for what changes.
    let cols = [
        ("id".to_owned(), Type::Uuid),
        ("table_name".to_owned(), Type::Text),
        ("v1_fp".to_owned(), Type::Int),
        ("v2_fp".to_owned(), Type::Int),
    ];
    let mut loaded = Vec::new();
    target.scan_rows(STATE_TABLE, &cols, Some(account), &mut |r| {
        if let [Value::Uuid(id), Value::Text(t), Value::Int(v1), Value::Int(v2)] = r.as_slice() {
            let table = table_order.iter().position(|x| x == t).unwrap_or(usize::from(u16::MAX));
            loaded.push((*id, Loaded { table: u16::try_from(table).unwrap_or(u16::MAX), v1: *v1, v2: *v2 }));
        }
        Ok(())
    })?;
    let drifted = preview.items.iter().map(|i| (i.id, (i.kind, i.table.clone(), i.now_row.clone()))).collect();
    let table_columns = table_order
        .iter()
        .map(|t| crate::preview::target_columns(spec.pack, t).into_iter().map(|c| c.0).collect())
        .collect();
    let mut delta = DeltaTarget {
        inner: target,
        account,
        loaded: LoadedRows::new(loaded),
        drifted,
        order: Vec::new(),
        columns: HashMap::new(),
        pending: HashMap::new(),
        pending_state: Vec::new(),
        current: String::new(),
        last_row: Vec::new(),
        counts: BTreeMap::new(),
        bundle_dir: bundle_dir.to_owned(),
        preview_id: preview.id.clone(),
        bundle: None,
        table_order,
        table_columns,
    };
    let report = run(spec, source, Some(&mut delta), ledger)?;
    let bundle =
        delta.bundle.take().ok_or_else(|| EngineError::Ledger("the recovery bundle was not written".into()))?;
    Ok(FinalReport { run: report, tables: delta.counts, bundle })
}
