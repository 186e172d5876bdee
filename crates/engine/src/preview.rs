//! The overwrite preview: every v2 row of the account that was changed, created or deleted
//! since the last migration loaded it, field by field, i.e. what the final migration will
//! overwrite. Its id is a hash of its content, so an acknowledgement binds to exactly it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::connect::{STATE_TABLE, Target};
use crate::ids::SortedIds;
use crate::pack::Pack;
use crate::run::{EngineError, account_uuid};
use crate::value::{Type, Value, fingerprint, loaded_object};

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

/// A row that changed: its table, the table's columns, its values now.
type ChangedRow = (String, Vec<(String, Type)>, Vec<Value>);

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

/// Computes the preview for the account of `account_key`. Only fingerprints are held for the
/// whole account; the rows as loaded are fetched for the rows that changed.
pub fn preview(pack: &Pack, target: &mut dyn Target, account_key: &str) -> Result<Preview, EngineError> {
    let account = account_uuid(account_key);
    let mut tables: Vec<&str> =
        pack.entities.iter().filter_map(|e| e.target.as_ref().map(|t| t.table.as_str())).collect();
    tables.dedup();
    // (id, table index, fingerprint as loaded), sorted by id: 32 bytes a row where a hash map
    // took three times that. Legacy references are fetched for what changed.
    let mut loaded: Vec<(Uuid, (u16, i64))> = Vec::new();
    let cols = [("id".to_owned(), Type::Uuid), ("table_name".to_owned(), Type::Text), ("v2_fp".to_owned(), Type::Int)];
    target
        .scan_rows(STATE_TABLE, &cols, Some(account), &mut |r| {
            if let [Value::Uuid(id), Value::Text(t), Value::Int(fp)] = r.as_slice() {
                let ti = tables.iter().position(|x| x == t).map_or(u16::MAX, |i| u16::try_from(i).unwrap_or(u16::MAX));
                loaded.push((*id, (ti, *fp)));
            }
            Ok(())
        })
        .map_err(|e| EngineError::Schema {
            table: STATE_TABLE.into(),
            problem: format!("no migration has loaded this account yet ({e})"),
        })?;
    let loaded = SortedIds::new(loaded);
    let mut items = Vec::new();
    let mut changed: Vec<ChangedRow> = Vec::new();
    let mut seen = vec![false; loaded.len()];
    let mut checked = 0u64;
    for &table in &tables {
        let cols = target_columns(pack, table);
        target.scan_rows(table, &cols, Some(account), &mut |row| {
            checked += 1;
            let Some(Value::Uuid(id)) = row.first().cloned() else { return Ok(()) };
            match loaded.find(&id) {
                None => {
                    let legacy = match row.get(2) {
                        Some(Value::Text(s)) => s.clone(),
                        _ => String::new(),
                    };
                    items.push(PreviewItem {
                        kind: ChangeKind::Created,
                        table: table.to_owned(),
                        id,
                        legacy_ref: legacy,
                        fields: cols
                            .iter()
                            .zip(&row)
                            .map(|((c, _), v)| FieldChange {
                                column: c.clone(),
                                as_loaded: serde_json::Value::Null,
                                now: v.to_json_exact(),
                            })
                            .collect(),
                        now_row: cols.iter().zip(&row).map(|((c, _), v)| (c.clone(), v.to_json_exact())).collect(),
                    });
                }
                Some(i) => {
                    seen[i] = true;
                    if fingerprint(&row) as i64 != loaded.at(i).1.1 {
                        changed.push((table.to_owned(), cols.clone(), row));
                    }
                }
            }
            Ok(())
        })?;
    }
    // (id, table index) of every loaded row v2 no longer has.
    let deleted: Vec<(Uuid, u16)> = loaded.iter().zip(&seen).filter(|(_, s)| !**s).map(|(l, _)| (l.0, l.1.0)).collect();
    drop(loaded);
    // The rows as loaded, for the changed and deleted rows only.
    let mut wanted: Vec<Uuid> = changed
        .iter()
        .filter_map(|(_, _, r)| match r.first() {
            Some(Value::Uuid(u)) => Some(*u),
            _ => None,
        })
        .collect();
    wanted.extend(deleted.iter().map(|d| d.0));
    let json_cols =
        [("id".to_owned(), Type::Uuid), ("legacy_ref".to_owned(), Type::Text), ("loaded".to_owned(), Type::Text)];
    let mut json_by_id: HashMap<Uuid, String> = HashMap::new();
    let mut legacy_by_id: HashMap<Uuid, String> = HashMap::new();
    if !wanted.is_empty() {
        for r in target.read_rows_by_id(STATE_TABLE, &json_cols, account, &wanted)? {
            if let [Value::Uuid(id), Value::Text(legacy), Value::Text(json)] = r.as_slice() {
                json_by_id.insert(*id, json.clone());
                legacy_by_id.insert(*id, legacy.clone());
            }
        }
    }
    let was_of = |id: &Uuid, cols: &[(String, Type)], legacy: &str| {
        let names: Vec<String> = cols.iter().map(|c| c.0.clone()).collect();
        json_by_id.get(id).map_or_else(serde_json::Map::new, |j| loaded_object(&names, *id, account, legacy, j))
    };
    for (table, cols, row) in changed {
        let Some(Value::Uuid(id)) = row.first() else { continue };
        let legacy = legacy_by_id.get(id).cloned().unwrap_or_default();
        let was = was_of(id, &cols, &legacy);
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
        items.push(PreviewItem { kind: ChangeKind::Changed, table, id: *id, legacy_ref: legacy, fields, now_row });
    }
    for (id, ti) in deleted {
        let table = tables.get(usize::from(ti)).map_or_else(String::new, |t| (*t).to_owned());
        let legacy = legacy_by_id.get(&id).cloned().unwrap_or_default();
        let was = was_of(&id, &target_columns(pack, &table), &legacy);
        let fields = was
            .into_iter()
            .map(|(c, v)| FieldChange { column: c, as_loaded: v, now: serde_json::Value::Null })
            .collect();
        items.push(PreviewItem {
            kind: ChangeKind::Deleted,
            table,
            id,
            legacy_ref: legacy,
            fields,
            now_row: serde_json::Map::new(),
        });
    }
    items.sort_by(|a, b| (&a.table, &a.legacy_ref, a.id, a.kind).cmp(&(&b.table, &b.legacy_ref, b.id, b.kind)));
    let mut h = Sha256::new();
    h.update(account.as_bytes());
    for i in &items {
        h.update(serde_json::to_string(i).unwrap_or_default().as_bytes());
        h.update([0]);
    }
    let id = h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    Ok(Preview { id, rows_checked: checked, items })
}
