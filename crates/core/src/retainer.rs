//! The 20-hour migration retainer, time entries against plan activities, and extra offers.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::error::DomainError;
use crate::ids::{Email, Hours, Text};
use crate::plan::ActivityId;

/// Hours included in every project at no extra cost.
pub const INCLUDED: Hours = Hours::from_centi(20 * 100);
/// Share of the retainer after which the project is warned (in percent).
pub const WARN_AT_PERCENT: u32 = 80;

/// Time spent on an activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeEntry {
    /// The activity worked on.
    pub activity: ActivityId,
    /// Hours spent.
    pub hours: Hours,
    /// Who worked.
    pub by: Email,
    /// Day of the work.
    pub date: Date,
    /// What was done.
    pub note: Option<String>,
}

/// Kinds of extra needs, offered separately from the retainer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExtraKind {
    /// Premium support.
    PremiumSupport,
    /// Additional training.
    Training,
    /// Consultancy.
    Consultancy,
    /// Development.
    Development,
}

impl ExtraKind {
    /// Parses the kind's name.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim() {
            "premium-support" => Ok(Self::PremiumSupport),
            "training" => Ok(Self::Training),
            "consultancy" => Ok(Self::Consultancy),
            "development" => Ok(Self::Development),
            other => Err(DomainError::Invalid {
                field: "kind",
                reason: format!("'{other}' is not one of premium-support, training, consultancy, development"),
            }),
        }
    }
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PremiumSupport => "premium-support",
            Self::Training => "training",
            Self::Consultancy => "consultancy",
            Self::Development => "development",
        }
    }
}

impl fmt::Display for ExtraKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An extra need recorded as a separate offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extra {
    /// `X1`, `X2`, …
    pub id: String,
    /// What kind of extra.
    pub kind: ExtraKind,
    /// What is offered.
    pub description: Text,
    /// Who recorded it.
    pub by: Email,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Time entries and extras of a project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retainer {
    /// Time entries, in the order logged.
    pub entries: Vec<TimeEntry>,
    /// Extra offers.
    pub extras: Vec<Extra>,
}

/// Where the retainer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetainerSummary {
    /// Hours included.
    pub included_hours: Hours,
    /// Hours logged.
    pub used_hours: Hours,
    /// Included hours not yet used.
    pub left_hours: Hours,
    /// Hours beyond the retainer, billable.
    pub billable_hours: Hours,
    /// Percentage of the retainer used (may exceed 100).
    pub used_percent: u32,
    /// Whether the warning threshold is reached.
    pub warning: bool,
    /// Whether the retainer is used up.
    pub exhausted: bool,
}

impl Retainer {
    /// Hours used, left and billable.
    pub fn summary(&self) -> RetainerSummary {
        let used = self.entries.iter().fold(Hours::default(), |s, e| s.plus(e.hours));
        let used_percent = used.centi().saturating_mul(100) / INCLUDED.centi();
        RetainerSummary {
            included_hours: INCLUDED,
            used_hours: used,
            left_hours: INCLUDED.minus(used),
            billable_hours: used.minus(INCLUDED),
            used_percent,
            warning: used_percent >= WARN_AT_PERCENT,
            exhausted: used >= INCLUDED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn entry(h: &str) -> TimeEntry {
        TimeEntry {
            activity: ActivityId::parse("A1").unwrap(),
            hours: Hours::parse(h).unwrap(),
            by: Email::parse("v@vendor.no").unwrap(),
            date: date!(2026 - 11 - 24),
            note: None,
        }
    }

    #[test]
    fn used_left_billable() {
        let mut r = Retainer::default();
        assert_eq!(r.summary().left_hours, INCLUDED);
        r.entries.push(entry("15.5"));
        let s = r.summary();
        assert_eq!((s.used_hours.to_string(), s.left_hours.to_string()), ("15.5".into(), "4.5".into()));
        assert!(!s.warning && !s.exhausted);
        r.entries.push(entry("1"));
        assert!(r.summary().warning);
        r.entries.push(entry("6.25"));
        let s = r.summary();
        assert_eq!(s.billable_hours.to_string(), "2.75");
        assert_eq!(s.left_hours, Hours::default());
        assert!(s.exhausted);
        assert_eq!(s.used_percent, 113);
    }
}
