//! What a mapping pack contributes to a new project: entity catalogue, options, plan and checklist templates.

use serde::{Deserialize, Serialize};

use crate::ids::Hours;
use crate::party::PartyKind;

/// The parts of a pack that shape a project (read from the pack's files by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectTemplate {
    /// Pack name (`omikai`).
    pub pack: String,
    /// Name of the legacy product (`Omikai 1`).
    pub source_product: String,
    /// Name of the new product (`Omikai 2`).
    pub target_product: String,
    /// The v1 entities the pack knows.
    pub entities: Vec<EntityInfo>,
    /// Scope options the pack understands.
    #[serde(default)]
    pub options: Vec<OptionInfo>,
    /// Activities every plan starts with.
    #[serde(default)]
    pub activities: Vec<ActivityTemplate>,
    /// Checklist items every project starts with.
    #[serde(default)]
    pub checklist: Vec<ChecklistTemplateItem>,
}

/// A v1 entity as the scope sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityInfo {
    /// The entity's name in the pack (`customer`).
    pub name: String,
    /// Human title (`Customers`).
    pub title: String,
    /// Whether it is in scope unless excluded.
    #[serde(default = "yes")]
    pub default_included: bool,
    /// Entities others depend on cannot be excluded.
    #[serde(default)]
    pub required: bool,
    /// Set when the entity is never migrated, with the reason.
    #[serde(default)]
    pub not_migrated: Option<String>,
}

fn yes() -> bool {
    true
}

/// A scope option with its allowed values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionInfo {
    /// Option name (`merge_duplicate_customers`).
    pub name: String,
    /// What it does.
    pub description: String,
    /// Value when not set.
    pub default: String,
    /// Allowed values; empty means any text.
    #[serde(default)]
    pub allowed: Vec<String>,
}

/// A plan activity every project of the pack starts with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityTemplate {
    /// Title.
    pub title: String,
    /// Who is responsible.
    pub party: PartyKind,
    /// Estimated hours.
    pub hours: Hours,
    /// Deadline, in days after the plan date.
    pub due_days: i64,
}

/// A checklist item every project of the pack starts with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecklistTemplateItem {
    /// What is tested.
    pub title: String,
    /// Vendor (general system test) or customer (own configuration).
    pub kind: PartyKind,
    /// Name of the automated check that can decide this item, if any.
    #[serde(default)]
    pub check: Option<String>,
}
