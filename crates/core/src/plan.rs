//! The migration plan (activities) and the migration scope.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::error::DomainError;
use crate::ids::{Hours, Text};
use crate::party::PartyKind;
use crate::template::{EntityInfo, OptionInfo};

/// Progress of a plan activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActivityStatus {
    /// Not started.
    Planned,
    /// Being worked on.
    InProgress,
    /// Finished.
    Done,
    /// Dropped from the plan by agreement.
    Cancelled,
}

impl ActivityStatus {
    /// Parses `planned`, `in-progress`, `done` or `cancelled`.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim() {
            "planned" => Ok(Self::Planned),
            "in-progress" => Ok(Self::InProgress),
            "done" => Ok(Self::Done),
            "cancelled" => Ok(Self::Cancelled),
            other => Err(DomainError::Invalid {
                field: "status",
                reason: format!("'{other}' is not one of planned, in-progress, done, cancelled"),
            }),
        }
    }
    /// The status's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::InProgress => "in-progress",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
        }
    }
    /// Whether the activity still needs work.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Planned | Self::InProgress)
    }
}

impl fmt::Display for ActivityStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An activity id, shown as `A1`, `A2`, …
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActivityId(u32);

impl ActivityId {
    /// Parses `A3` or `3`.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let t = s.trim();
        let digits = t.strip_prefix(['A', 'a']).unwrap_or(t);
        digits.parse::<u32>().ok().filter(|n| *n > 0).map(Self).ok_or_else(|| DomainError::Invalid {
            field: "activity",
            reason: format!("'{s}' is not an activity id such as A3"),
        })
    }
    /// The number.
    pub fn number(self) -> u32 {
        self.0
    }
}
impl TryFrom<String> for ActivityId {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(&s)
    }
}
impl From<ActivityId> for String {
    fn from(a: ActivityId) -> String {
        a.to_string()
    }
}
impl fmt::Display for ActivityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "A{}", self.0)
    }
}

/// One activity of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// `A1`, `A2`, …
    pub id: ActivityId,
    /// What is done.
    pub title: Text,
    /// The responsible party.
    pub party: PartyKind,
    /// The person who owns it, if named.
    pub owner: Option<Text>,
    /// Estimated hours.
    pub hours: Hours,
    /// Deadline.
    pub due: Date,
    /// Progress.
    pub status: ActivityStatus,
}

/// The plan: its activities in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Activities, in the order they were added.
    pub activities: Vec<Activity>,
}

impl Plan {
    /// Finds an activity.
    pub fn get(&self, id: ActivityId) -> Result<&Activity, DomainError> {
        self.activities.iter().find(|a| a.id == id).ok_or_else(|| DomainError::NotFound(format!("activity {id}")))
    }
    /// Sum of estimates of activities that are not cancelled.
    pub fn estimated(&self) -> Hours {
        self.activities
            .iter()
            .filter(|a| a.status != ActivityStatus::Cancelled)
            .fold(Hours::default(), |s, a| s.plus(a.hours))
    }
    /// Open activities past their deadline on `today`.
    pub fn overdue(&self, today: Date) -> impl Iterator<Item = &Activity> {
        self.activities.iter().filter(move |a| a.status.is_open() && a.due < today)
    }
    /// The earliest deadline of an open activity.
    pub fn next_deadline(&self) -> Option<Date> {
        self.activities.iter().filter(|a| a.status.is_open()).map(|a| a.due).min()
    }
    pub(crate) fn next_id(&self) -> ActivityId {
        ActivityId(self.activities.iter().map(|a| a.id.0).max().unwrap_or(0) + 1)
    }
}

/// What is migrated: entities in scope, the history cut-off and options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// The pack's entity catalogue, captured when the project was created.
    pub catalogue: Vec<EntityInfo>,
    /// The pack's options, captured when the project was created.
    pub option_catalogue: Vec<OptionInfo>,
    /// Entities in scope, by name.
    pub included: Vec<String>,
    /// Jobs finished or cancelled before this date stay in the v1 archive.
    pub cutoff: Date,
    /// Option values that differ from the defaults.
    pub options: BTreeMap<String, String>,
}

/// Changes to the scope, as given by the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeChange {
    /// New cut-off date.
    pub cutoff: Option<Date>,
    /// Entities to put in scope.
    pub include: Vec<String>,
    /// Entities to take out of scope.
    pub exclude: Vec<String>,
    /// Options to set, name → value.
    pub options: Vec<(String, String)>,
}

impl Scope {
    /// The default scope of a pack: default entities and a cut-off seven years before the plan date.
    pub fn new(catalogue: Vec<EntityInfo>, option_catalogue: Vec<OptionInfo>, plan_date: Date) -> Self {
        let included = catalogue
            .iter()
            .filter(|e| e.default_included && e.not_migrated.is_none())
            .map(|e| e.name.clone())
            .collect();
        Self { catalogue, option_catalogue, included, cutoff: seven_years_before(plan_date), options: BTreeMap::new() }
    }

    /// Whether an entity is in scope.
    pub fn includes(&self, entity: &str) -> bool {
        self.included.iter().any(|e| e == entity)
    }

    /// The value of an option, its default if not set.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .get(name)
            .map(String::as_str)
            .or_else(|| self.option_catalogue.iter().find(|o| o.name == name).map(|o| o.default.as_str()))
    }

    /// Applies a change, refusing unknown entities and options and required exclusions.
    pub fn apply(&self, change: &ScopeChange) -> Result<Scope, DomainError> {
        let mut next = self.clone();
        if let Some(c) = change.cutoff {
            next.cutoff = c;
        }
        let known = || self.catalogue.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ");
        let find = |name: &str| {
            self.catalogue.iter().find(|e| e.name == name).ok_or_else(|| DomainError::Invalid {
                field: "entity",
                reason: format!("unknown entity '{name}'; the pack knows: {}", known()),
            })
        };
        for name in &change.include {
            let e = find(name)?;
            if let Some(why) = &e.not_migrated {
                return Err(DomainError::Invalid {
                    field: "entity",
                    reason: format!("'{name}' cannot be included: it is not migrated ({why})"),
                });
            }
            if !next.includes(name) {
                next.included.push(name.clone());
            }
        }
        for name in &change.exclude {
            let e = find(name)?;
            if change.include.contains(name) {
                return Err(DomainError::Invalid {
                    field: "entity",
                    reason: format!("'{name}' is both included and excluded"),
                });
            }
            if e.required {
                return Err(DomainError::Invalid {
                    field: "entity",
                    reason: format!("'{name}' cannot be excluded: other entities depend on it"),
                });
            }
            next.included.retain(|i| i != name);
        }
        // Keep catalogue order, so the scope document does not depend on the order of edits.
        next.included =
            self.catalogue.iter().filter(|e| next.included.contains(&e.name)).map(|e| e.name.clone()).collect();
        for (name, value) in &change.options {
            let Some(o) = self.option_catalogue.iter().find(|o| &o.name == name) else {
                let names: Vec<_> = self.option_catalogue.iter().map(|o| o.name.as_str()).collect();
                return Err(DomainError::Invalid {
                    field: "option",
                    reason: format!("unknown option '{name}'; the pack knows: {}", names.join(", ")),
                });
            };
            if !o.allowed.is_empty() && !o.allowed.contains(value) {
                return Err(DomainError::Invalid {
                    field: "option",
                    reason: format!("'{value}' is not allowed for {name}; allowed: {}", o.allowed.join(", ")),
                });
            }
            if *value == o.default {
                next.options.remove(name);
            } else {
                next.options.insert(name.clone(), value.clone());
            }
        }
        Ok(next)
    }
}

/// The default history cut-off: the same day seven years earlier (28 Feb for 29 Feb).
pub fn seven_years_before(d: Date) -> Date {
    let y = d.year() - 7;
    Date::from_calendar_date(y, d.month(), d.day())
        .or_else(|_| Date::from_calendar_date(y, d.month(), d.day() - 1))
        .unwrap_or(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn entity(name: &str, required: bool, not_migrated: Option<&str>) -> EntityInfo {
        EntityInfo {
            name: name.into(),
            title: name.into(),
            default_included: true,
            required,
            not_migrated: not_migrated.map(Into::into),
        }
    }

    fn scope() -> Scope {
        Scope::new(
            vec![
                entity("customer", true, None),
                entity("document", false, None),
                entity("layout", false, Some("new layout architecture")),
            ],
            vec![OptionInfo {
                name: "merge".into(),
                description: "d".into(),
                default: "yes".into(),
                allowed: vec!["yes".into(), "no".into()],
            }],
            date!(2026 - 11 - 24),
        )
    }

    #[test]
    fn default_scope_and_cutoff() {
        let s = scope();
        assert_eq!(s.included, vec!["customer", "document"]);
        assert_eq!(s.cutoff, date!(2019 - 11 - 24));
        assert_eq!(seven_years_before(date!(2028 - 02 - 29)), date!(2021 - 02 - 28));
        assert_eq!(s.option("merge"), Some("yes"));
    }

    #[test]
    fn scope_changes_are_validated() {
        let s = scope();
        let ex = s.apply(&ScopeChange { exclude: vec!["document".into()], ..Default::default() }).unwrap();
        assert_eq!(ex.included, vec!["customer"]);
        let back = ex.apply(&ScopeChange { include: vec!["document".into()], ..Default::default() }).unwrap();
        assert_eq!(back.included, s.included);
        let err = |c: ScopeChange| s.apply(&c).unwrap_err().to_string();
        assert!(
            err(ScopeChange { include: vec!["nope".into()], ..Default::default() }).contains("unknown entity 'nope'")
        );
        assert!(err(ScopeChange { include: vec!["layout".into()], ..Default::default() }).contains("not migrated"));
        assert!(err(ScopeChange { exclude: vec!["customer".into()], ..Default::default() }).contains("depend"));
        assert!(
            err(ScopeChange { options: vec![("merge".into(), "maybe".into())], ..Default::default() })
                .contains("allowed: yes, no")
        );
        assert!(
            err(ScopeChange { options: vec![("x".into(), "1".into())], ..Default::default() })
                .contains("unknown option")
        );
        let o = s.apply(&ScopeChange { options: vec![("merge".into(), "no".into())], ..Default::default() }).unwrap();
        assert_eq!(o.option("merge"), Some("no"));
    }

    #[test]
    fn activity_ids() {
        assert_eq!(ActivityId::parse("A7").unwrap().number(), 7);
        assert_eq!(ActivityId::parse("7").unwrap().to_string(), "A7");
        assert!(ActivityId::parse("A0").is_err());
        assert!(ActivityId::parse("B1").is_err());
    }
}
