//! Mapping packs: files that say how a legacy schema becomes a new one, loaded, checked and
//! compiled once. Every error names the file, line and column.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use cutover_core::template::ProjectTemplate;
use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use crate::ddl::{self, Schema};
use crate::expr::{self, Env, Node, ValueMap};
use crate::value::{Type, Value};

/// A pack that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct PackError {
    /// `path:line:col` (or just the path).
    pub file: String,
    /// What is wrong.
    pub message: String,
}

const BUILTIN: &[(&str, &[(&str, &str)])] = &[
    (
        "omikai",
        &[
            ("project.toml", include_str!("../../../packs/omikai/project.toml")),
            ("mapping.toml", include_str!("../../../packs/omikai/mapping.toml")),
            ("v1.sql", include_str!("../../../packs/omikai/v1.sql")),
            ("v2.sql", include_str!("../../../packs/omikai/v2.sql")),
        ],
    ),
    (
        "tpch",
        &[
            ("project.toml", include_str!("../../../packs/tpch/project.toml")),
            ("mapping.toml", include_str!("../../../packs/tpch/mapping.toml")),
            ("v1.sql", include_str!("../../../packs/tpch/v1.sql")),
            ("v2.sql", include_str!("../../../packs/tpch/v2.sql")),
        ],
    ),
];

/// Where packs are read from.
#[derive(Debug, Clone)]
pub enum PackSource {
    /// The packs compiled into cutover.
    Builtin,
    /// A folder with one sub-folder per pack.
    Dir(PathBuf),
}

impl PackSource {
    fn read(&self, pack: &str, file: &str) -> Result<(String, String), PackError> {
        if pack.is_empty() || !pack.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(PackError { file: pack.into(), message: "pack names use a-z, 0-9, '-' and '_'".into() });
        }
        match self {
            PackSource::Builtin => {
                let Some((_, files)) = BUILTIN.iter().find(|(n, _)| *n == pack) else {
                    let known: Vec<_> = BUILTIN.iter().map(|(n, _)| *n).collect();
                    return Err(PackError {
                        file: pack.into(),
                        message: format!("no such pack; built-in packs: {}", known.join(", ")),
                    });
                };
                let text = files.iter().find(|(n, _)| *n == file).map(|(_, t)| (*t).to_owned());
                let label = format!("packs/{pack}/{file}");
                text.map(|t| (label.clone(), t)).ok_or(PackError { file: label, message: "missing".into() })
            }
            PackSource::Dir(dir) => {
                let path = dir.join(pack).join(file);
                let label = path.display().to_string();
                std::fs::read_to_string(&path)
                    .map(|t| (label.clone(), t))
                    .map_err(|e| PackError { file: label, message: e.to_string() })
            }
        }
    }

    /// The project template of a pack (`project.toml`).
    pub fn template(&self, pack: &str) -> Result<ProjectTemplate, PackError> {
        let (file, text) = self.read(pack, "project.toml")?;
        let t: ProjectTemplate = from_toml(&file, &text)?;
        if t.pack != pack {
            return Err(PackError {
                file,
                message: format!("declares pack = \"{}\" but is the pack '{pack}'", t.pack),
            });
        }
        Ok(t)
    }

    /// Compiles `mapping` (the text of a `mapping.toml`) against the project template and the
    /// schemas of `pack`: a mapping being written, checked before it is saved.
    pub fn load_with_mapping(&self, pack: &str, mapping: &str) -> Result<Pack, PackError> {
        let template = self.template(pack)?;
        let (f1, t1) = self.read(pack, "v1.sql")?;
        let (f2, t2) = self.read(pack, "v2.sql")?;
        compile_pack(pack, template, ddl::parse(&f1, &t1)?, ddl::parse(&f2, &t2)?, "mapping.toml", mapping)
    }

    /// Loads, checks and compiles a whole pack.
    pub fn load(&self, pack: &str) -> Result<Pack, PackError> {
        let template = self.template(pack)?;
        let (f1, t1) = self.read(pack, "v1.sql")?;
        let (f2, t2) = self.read(pack, "v2.sql")?;
        let v1 = ddl::parse(&f1, &t1)?;
        let v2 = ddl::parse(&f2, &t2)?;
        let (fm, tm) = self.read(pack, "mapping.toml")?;
        let (_, tp) = self.read(pack, "project.toml")?;
        let mut compiled = compile_pack(pack, template, v1, v2, &fm, &tm)?;
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for text in [&tp, &t1, &t2, &tm] {
            h.update(&(text.len() as u64).to_le_bytes());
            h.update(text.as_bytes());
        }
        compiled.digest = h.digest();
        Ok(compiled)
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut at = offset.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn at(file: &str, text: &str, offset: usize) -> String {
    let (l, c) = line_col(text, offset);
    format!("{file}:{l}:{c}")
}

fn from_toml<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, PackError> {
    toml::from_str(text).map_err(|e| {
        let loc = e.span().map_or_else(|| file.to_owned(), |s| at(file, text, s.start));
        PackError { file: loc, message: e.message().trim().to_owned() }
    })
}

// ---------------------------------------------------------------- file format

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    #[serde(default)]
    maps: IndexMap<String, Spanned<RawMap>>,
    #[serde(default)]
    entity: Vec<Spanned<RawEntity>>,
    #[serde(default)]
    aggregate: Vec<Spanned<RawAggregate>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAggregate {
    name: String,
    table: String,
    #[serde(default)]
    group_by: Vec<String>,
    #[serde(default)]
    sum: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMap {
    unknown_reason: String,
    #[serde(default)]
    case_insensitive: bool,
    values: IndexMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntity {
    name: String,
    scope: String,
    #[serde(default)]
    description: String,
    source: Spanned<String>,
    key: Spanned<Vec<String>>,
    #[serde(default)]
    target: Option<Spanned<String>>,
    #[serde(default = "no_deps")]
    depends_on: Spanned<Vec<String>>,
    #[serde(default)]
    not_migrated: Option<String>,
    #[serde(default)]
    extra: IndexMap<String, RawExtra>,
    #[serde(default)]
    merge: Option<RawMerge>,
    #[serde(default)]
    exclude: Vec<RawRule>,
    #[serde(default)]
    reject: Vec<RawRule>,
    #[serde(default)]
    warn: Vec<RawRule>,
    #[serde(default)]
    fields: IndexMap<Spanned<String>, Spanned<toml::Value>>,
}

fn no_deps() -> Spanned<Vec<String>> {
    Spanned::new(0..0, Vec::new())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExtra {
    #[serde(rename = "type")]
    ty: Spanned<String>,
    sql: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMerge {
    by: Spanned<String>,
    #[serde(default)]
    when: Option<Spanned<String>>,
    reason: Spanned<String>,
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    when: Spanned<String>,
    reason: Spanned<String>,
    message: String,
}

// ---------------------------------------------------------------- compiled pack

/// A compiled pack, entities in dependency order.
#[derive(Debug)]
pub struct Pack {
    /// Pack name.
    pub name: String,
    /// The project template (`project.toml`).
    pub template: ProjectTemplate,
    /// The legacy schema.
    pub v1: Schema,
    /// The new schema.
    pub v2: Schema,
    /// Value maps.
    pub maps: Vec<ValueMap>,
    /// Option names, in the order expressions refer to them.
    pub options: Vec<String>,
    /// Entities, parents before children.
    pub entities: Vec<Entity>,
    /// Totals that verification compares between what v1 gives and what v2 holds.
    pub aggregates: Vec<Aggregate>,
    /// Hash of the pack's files. The row state remembers it (folded into each record's
    /// fingerprint), so that a final migration under a changed pack maps every record again.
    pub digest: u64,
}

/// A reconciliation total: rows of a v2 table grouped, counted and summed.
#[derive(Debug, Clone)]
pub struct Aggregate {
    /// Name for reports.
    pub name: String,
    /// v2 table.
    pub table: String,
    /// Columns to group by.
    pub group_by: Vec<String>,
    /// Numeric columns to sum.
    pub sum: Vec<String>,
}

/// A v1 source entity and how it becomes v2 rows.
#[derive(Debug)]
pub struct Entity {
    /// Name in the pack.
    pub name: String,
    /// Scope entity it belongs to.
    pub scope: String,
    /// What it is, for the scope document.
    pub description: String,
    /// v1 table.
    pub source: String,
    /// v1 columns read, in row order (table columns, then extra columns).
    pub columns: Vec<(String, Type)>,
    /// Extra computed columns: name and SQL (the table is aliased `t`).
    pub extra: Vec<(String, String)>,
    /// Indices of the key columns in `columns`.
    pub key: Vec<usize>,
    /// Where the rows go; `None` for entities that are not migrated.
    pub target: Option<Target>,
    /// Reason an entity is never migrated.
    pub not_migrated: Option<String>,
    /// Indices (into `Pack::entities`) of the entities this one looks up.
    pub depends_on: Vec<usize>,
    /// Scope rules: matching records are excluded.
    pub exclude: Vec<Rule>,
    /// Bad-data rules: matching records are rejected.
    pub reject: Vec<Rule>,
    /// Matching records are migrated with a warning.
    pub warn: Vec<Rule>,
    /// Duplicate merging.
    pub merge: Option<Merge>,
}

/// A v2 table and its field rules.
#[derive(Debug)]
pub struct Target {
    /// v2 table.
    pub table: String,
    /// Field rules in file order.
    pub fields: Vec<Field>,
}

/// One v2 column and the expression that fills it.
#[derive(Debug)]
pub struct Field {
    /// v2 column.
    pub column: String,
    /// Its type.
    pub ty: Type,
    /// Whether v2 requires a value.
    pub not_null: bool,
    /// The compiled rule.
    pub node: Node,
    /// On failure: migrate with a warning and null (true) or reject the record (false).
    pub warn_on_error: bool,
    /// The rule as written, for the scope document.
    pub source: String,
}

/// A condition with its reason code.
#[derive(Debug)]
pub struct Rule {
    /// The compiled condition.
    pub when: Node,
    /// Stable reason code.
    pub reason: String,
    /// Explanation for people.
    pub message: String,
    /// The condition as written.
    pub source: String,
}

/// Merging of duplicates into the first record (in key order) with the same merge value.
#[derive(Debug)]
pub struct Merge {
    /// The merge value; null means "never a duplicate".
    pub by: Node,
    /// Whether merging is on (e.g. an option).
    pub when: Option<Node>,
    /// Reason code of merged records.
    pub reason: String,
    /// Explanation.
    pub message: String,
}

impl Entity {
    /// Names of the key columns, in key order: the order every scan of the entity runs in.
    pub fn key_columns(&self) -> Vec<String> {
        self.key.iter().map(|&k| self.columns[k].0.clone()).collect()
    }
}

impl Pack {
    /// An entity's index by name.
    pub fn entity_index(&self, name: &str) -> Option<usize> {
        self.entities.iter().position(|e| e.name == name)
    }
}

/// Reason codes cutover itself assigns, besides those a pack declares.
pub const ENGINE_REASONS: &[(&str, &str)] = &[
    ("excluded_by_scope", "the entity is excluded from the scope by agreement"),
    ("not_supported_in_v2", "the whole entity is not migrated; the pack says why"),
    ("missing_value", "a value Omikai 2 requires is empty in Omikai 1"),
    ("invalid_value", "a value is not one Omikai 2 accepts"),
    ("invalid_number", "a number cannot be read or is out of range"),
    ("orphan", "the record's parent is missing or was rejected"),
];

fn check_reason(file: &str, text: &str, r: &Spanned<String>) -> Result<String, PackError> {
    let s = r.get_ref();
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()) {
        return Err(PackError {
            file: at(file, text, r.span().start),
            message: format!("reason code '{s}' must be snake_case"),
        });
    }
    Ok(s.clone())
}

/// Offset of an expression's first character: inside the span of the TOML value holding it.
fn expr_offset(text: &str, span: Range<usize>, expr: &str) -> usize {
    let region = &text[span.start.min(text.len())..span.end.min(text.len())];
    region.find(expr).map_or(span.start, |i| span.start + i)
}

fn compile_expr(
    file: &str,
    text: &str,
    span: Range<usize>,
    src: &str,
    env: &Env<'_>,
    want: Option<Type>,
) -> Result<(Node, Type), PackError> {
    expr::compile(src, env, want).map_err(|e| {
        let base = expr_offset(text, span, src);
        PackError { file: at(file, text, base + e.offset), message: e.message }
    })
}

fn compile_pack(
    name: &str,
    template: ProjectTemplate,
    v1: Schema,
    v2: Schema,
    file: &str,
    text: &str,
) -> Result<Pack, PackError> {
    let raw: RawMapping = from_toml(file, text)?;
    let here = |off: usize| at(file, text, off);

    let mut maps = Vec::new();
    for (mname, m) in &raw.maps {
        let span = m.span();
        let m = m.get_ref();
        let mut entries = crate::expr::MapEntries::default();
        let mut ty = None;
        for (k, v) in &m.values {
            let (val, t) = match v {
                toml::Value::String(s) => (Value::Text(s.clone()), Type::Text),
                toml::Value::Integer(i) => (Value::Int(*i), Type::Int),
                other => {
                    return Err(PackError {
                        file: here(span.start),
                        message: format!("map {mname}: value of '{k}' is {}, use text or integers", other.type_str()),
                    });
                }
            };
            if *ty.get_or_insert(t) != t {
                return Err(PackError {
                    file: here(span.start),
                    message: format!("map {mname}: values mix text and integers"),
                });
            }
            let key = if m.case_insensitive { k.trim().to_uppercase() } else { k.clone() };
            entries.insert(key, val);
        }
        maps.push(ValueMap {
            name: mname.clone(),
            entries,
            ty: ty.unwrap_or(Type::Text),
            unknown_reason: m.unknown_reason.clone(),
            case_insensitive: m.case_insensitive,
        });
    }
    let options: Vec<String> = template.options.iter().map(|o| o.name.clone()).collect();

    // Names, then dependency order.
    let names: Vec<&str> = raw.entity.iter().map(|e| e.get_ref().name.as_str()).collect();
    for (i, e) in raw.entity.iter().enumerate() {
        let n = &e.get_ref().name;
        if names[..i].contains(&n.as_str()) {
            return Err(PackError { file: here(e.span().start), message: format!("entity '{n}' is defined twice") });
        }
        if !template.entities.iter().any(|s| s.name == e.get_ref().scope) {
            return Err(PackError {
                file: here(e.span().start),
                message: format!("entity '{n}': scope '{}' is not an entity of project.toml", e.get_ref().scope),
            });
        }
        for d in e.get_ref().depends_on.get_ref() {
            if !names.contains(&d.as_str()) {
                return Err(PackError {
                    file: here(e.get_ref().depends_on.span().start),
                    message: format!("entity '{n}' depends on unknown entity '{d}'"),
                });
            }
        }
    }
    let order = topo_order(&raw.entity).map_err(|(i, cycle)| PackError {
        file: here(raw.entity[i].span().start),
        message: format!("dependency cycle: {}", cycle.join(" → ")),
    })?;
    let final_index: HashMap<&str, usize> = order.iter().enumerate().map(|(pos, &i)| (names[i], pos)).collect();

    let mut entities = Vec::new();
    // One entity per v2 table: a table's row state, and what a final migration keeps or
    // deletes in it, follow one entity's records.
    let mut written_by: HashMap<String, String> = HashMap::new();
    for &i in &order {
        let se = &raw.entity[i];
        let e = se.get_ref();
        let src_span = e.source.span();
        let table = v1.table(e.source.get_ref()).ok_or_else(|| PackError {
            file: here(src_span.start),
            message: format!("entity '{}': v1 table '{}' is not in v1.sql", e.name, e.source.get_ref()),
        })?;
        let mut columns: Vec<(String, Type)> = table.columns.iter().map(|c| (c.name.clone(), c.ty)).collect();
        let mut extra = Vec::new();
        for (cname, x) in &e.extra {
            let ty = Type::from_sql(x.ty.get_ref()).ok_or_else(|| PackError {
                file: here(x.ty.span().start),
                message: format!("unknown type '{}' for extra column {cname}", x.ty.get_ref()),
            })?;
            columns.push((cname.clone(), ty));
            extra.push((cname.clone(), x.sql.clone()));
        }
        let mut key = Vec::new();
        for k in e.key.get_ref() {
            let pos = columns.iter().position(|(c, _)| c == k).ok_or_else(|| PackError {
                file: here(e.key.span().start),
                message: format!("entity '{}': key column '{k}' is not a column of {}", e.name, table.name),
            })?;
            key.push(pos);
        }
        if key.is_empty() {
            return Err(PackError {
                file: here(e.key.span().start),
                message: format!("entity '{}' needs a key", e.name),
            });
        }
        let lookups: Vec<(String, usize)> =
            e.depends_on.get_ref().iter().map(|d| (d.clone(), final_index[d.as_str()])).collect();
        let env = Env { columns: &columns, maps: &maps, lookups: &lookups, options: &options };
        let rules = |list: &[RawRule]| -> Result<Vec<Rule>, PackError> {
            list.iter()
                .map(|r| {
                    let (when, _) = compile_expr(file, text, r.when.span(), r.when.get_ref(), &env, Some(Type::Bool))?;
                    Ok(Rule {
                        when,
                        reason: check_reason(file, text, &r.reason)?,
                        message: r.message.clone(),
                        source: r.when.get_ref().clone(),
                    })
                })
                .collect()
        };
        let (exclude, reject, warn) = (rules(&e.exclude)?, rules(&e.reject)?, rules(&e.warn)?);
        let merge = match &e.merge {
            None => None,
            Some(m) => Some(Merge {
                by: compile_expr(file, text, m.by.span(), m.by.get_ref(), &env, None)?.0,
                when: m
                    .when
                    .as_ref()
                    .map(|w| compile_expr(file, text, w.span(), w.get_ref(), &env, Some(Type::Bool)).map(|x| x.0))
                    .transpose()?,
                reason: check_reason(file, text, &m.reason)?,
                message: m.message.clone(),
            }),
        };
        let target = match (&e.target, &e.not_migrated) {
            (Some(_), Some(_)) => {
                return Err(PackError {
                    file: here(se.span().start),
                    message: format!("entity '{}' has a target and is marked not_migrated", e.name),
                });
            }
            (None, None) => {
                return Err(PackError {
                    file: here(se.span().start),
                    message: format!("entity '{}' needs a target table or not_migrated", e.name),
                });
            }
            (None, Some(_)) => None,
            (Some(t), None) => {
                let v2t = v2.table(t.get_ref()).ok_or_else(|| PackError {
                    file: here(t.span().start),
                    message: format!("entity '{}': v2 table '{}' is not in v2.sql", e.name, t.get_ref()),
                })?;
                if let Some(other) = written_by.insert(v2t.name.to_lowercase(), e.name.clone()) {
                    return Err(PackError {
                        file: here(t.span().start),
                        message: format!(
                            "entity '{}': v2 table '{}' is already the target of entity '{other}' (one entity per table)",
                            e.name, v2t.name
                        ),
                    });
                }
                let mut fields = Vec::new();
                for (col, val) in &e.fields {
                    let c = v2t.column(col.get_ref()).ok_or_else(|| PackError {
                        file: here(col.span().start),
                        message: format!("v2 table {} has no column '{}'", v2t.name, col.get_ref()),
                    })?;
                    if ["id", "account_id", "legacy_ref"].contains(&c.name.as_str()) {
                        return Err(PackError {
                            file: here(col.span().start),
                            message: format!("{} is filled by cutover, not by a field rule", c.name),
                        });
                    }
                    let (src, warn_on_error) = field_spec(file, text, val)?;
                    let (node, _) = compile_expr(file, text, val.span(), &src, &env, Some(c.ty)).map_err(|err| {
                        PackError { file: err.file, message: format!("{}.{}: {}", v2t.name, c.name, err.message) }
                    })?;
                    fields.push(Field {
                        column: c.name.clone(),
                        ty: c.ty,
                        not_null: c.not_null,
                        node,
                        warn_on_error,
                        source: src,
                    });
                }
                for c in &v2t.columns {
                    let auto = ["id", "account_id", "legacy_ref"].contains(&c.name.as_str());
                    if c.not_null && !auto && !fields.iter().any(|f| f.column == c.name) {
                        return Err(PackError {
                            file: here(t.span().start),
                            message: format!(
                                "v2 column {}.{} is NOT NULL but entity '{}' has no field rule for it",
                                v2t.name, c.name, e.name
                            ),
                        });
                    }
                }
                Some(Target { table: v2t.name.clone(), fields })
            }
        };
        entities.push(Entity {
            name: e.name.clone(),
            scope: e.scope.clone(),
            description: e.description.clone(),
            source: table.name.clone(),
            columns,
            extra,
            key,
            target,
            not_migrated: e.not_migrated.clone(),
            depends_on: lookups.iter().map(|l| l.1).collect(),
            exclude,
            reject,
            warn,
            merge,
        });
    }
    let mut aggregates = Vec::new();
    for a in &raw.aggregate {
        let span = a.span();
        let a = a.get_ref();
        let t = v2.table(&a.table).ok_or_else(|| PackError {
            file: here(span.start),
            message: format!("aggregate '{}': v2 table '{}' is not in v2.sql", a.name, a.table),
        })?;
        for c in a.group_by.iter().chain(&a.sum) {
            let col = t.column(c).ok_or_else(|| PackError {
                file: here(span.start),
                message: format!("aggregate '{}': {} has no column '{c}'", a.name, t.name),
            })?;
            if a.sum.contains(c) && !matches!(col.ty, Type::Int | Type::Float) {
                return Err(PackError {
                    file: here(span.start),
                    message: format!("aggregate '{}': {}.{c} is {}, not a number", a.name, t.name, col.ty),
                });
            }
        }
        aggregates.push(Aggregate {
            name: a.name.clone(),
            table: t.name.clone(),
            group_by: a.group_by.clone(),
            sum: a.sum.clone(),
        });
    }
    Ok(Pack { name: name.to_owned(), template, v1, v2, maps, options, entities, aggregates, digest: 0 })
}

fn field_spec(file: &str, text: &str, v: &Spanned<toml::Value>) -> Result<(String, bool), PackError> {
    let bad = |m: &str| PackError { file: at(file, text, v.span().start), message: m.to_owned() };
    match v.get_ref() {
        toml::Value::String(s) => Ok((s.clone(), false)),
        toml::Value::Table(t) => {
            for k in t.keys() {
                if k != "expr" && k != "on_error" {
                    return Err(bad(&format!("unknown key '{k}' in a field rule; use expr and on_error")));
                }
            }
            let expr = t
                .get("expr")
                .and_then(toml::Value::as_str)
                .ok_or_else(|| bad("a field rule table needs expr = \"…\""))?;
            let warn = match t.get("on_error").map(|x| x.as_str()) {
                None | Some(Some("reject")) => false,
                Some(Some("warn")) => true,
                _ => return Err(bad("on_error is \"reject\" or \"warn\"")),
            };
            Ok((expr.to_owned(), warn))
        }
        _ => Err(bad("a field rule is an expression string or { expr = \"…\", on_error = \"warn\" }")),
    }
}

/// Kahn's order keeping file order among independent entities; on a cycle, the entity where it closes and its path.
fn topo_order(entities: &[Spanned<RawEntity>]) -> Result<Vec<usize>, (usize, Vec<String>)> {
    let names: Vec<&str> = entities.iter().map(|e| e.get_ref().name.as_str()).collect();
    let deps: Vec<Vec<usize>> = entities
        .iter()
        .map(|e| e.get_ref().depends_on.get_ref().iter().filter_map(|d| names.iter().position(|n| n == d)).collect())
        .collect();
    let mut done = vec![false; entities.len()];
    let mut order = Vec::new();
    while order.len() < entities.len() {
        let next = (0..entities.len()).find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]));
        match next {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => {
                // Walk from any remaining entity until a node repeats: that is the cycle.
                let mut path = vec![(0..entities.len()).find(|&i| !done[i]).unwrap_or(0)];
                loop {
                    let cur = *path.last().unwrap_or(&0);
                    let Some(&nxt) = deps[cur].iter().find(|&&d| !done[d]) else { break };
                    if let Some(pos) = path.iter().position(|&p| p == nxt) {
                        let mut cycle: Vec<String> = path[pos..].iter().map(|&p| names[p].to_owned()).collect();
                        cycle.push(names[nxt].to_owned());
                        return Err((nxt, cycle));
                    }
                    path.push(nxt);
                }
                return Err((path[0], vec![names[path[0]].to_owned()]));
            }
        }
    }
    Ok(order)
}

impl fmt::Display for Pack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pack {} ({} entities)", self.name, self.entities.len())
    }
}

#[cfg(test)]
mod tests;
