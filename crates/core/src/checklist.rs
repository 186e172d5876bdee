//! The parallel-phase checklist: vendor and customer items, their results and the acceptance by both parties.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::{DomainError, Unmet};
use crate::ids::{Email, Text};
use crate::party::PartyKind;
use crate::template::ChecklistTemplateItem;

/// The result of a checklist item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemStatus {
    /// Not tested yet.
    Open,
    /// Tested and fine.
    Passed,
    /// Tested and not fine.
    Failed,
    /// Not needed, by agreement; needs a reason.
    Waived,
    /// Passed before a repeated trial migration; test again.
    NeedsRetest,
}

impl ItemStatus {
    /// Parses `open`, `passed`, `failed`, `waived` or `needs-retest`.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim() {
            "open" => Ok(Self::Open),
            "passed" | "pass" => Ok(Self::Passed),
            "failed" | "fail" => Ok(Self::Failed),
            "waived" | "waive" => Ok(Self::Waived),
            "needs-retest" => Ok(Self::NeedsRetest),
            other => Err(DomainError::Invalid {
                field: "status",
                reason: format!("'{other}' is not one of open, passed, failed, waived, needs-retest"),
            }),
        }
    }
    /// The status's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Waived => "waived",
            Self::NeedsRetest => "needs-retest",
        }
    }
    /// Passed or waived: the item no longer holds the gate closed.
    pub fn is_done(self) -> bool {
        matches!(self, Self::Passed | Self::Waived)
    }
}

impl fmt::Display for ItemStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One item of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistItem {
    /// `V1`… for vendor items, `C1`… for customer items.
    pub id: String,
    /// What is tested.
    pub title: Text,
    /// Whose test it is.
    pub kind: PartyKind,
    /// Result.
    pub status: ItemStatus,
    /// Note of the last change (the reason, for a waiver).
    pub note: Option<String>,
    /// Who last set the result.
    pub by: Option<Email>,
    /// When the result was last set.
    #[serde(with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
    /// Evidence references such as `verify:3`.
    pub evidence: Vec<String>,
    /// Automated check that can decide the item, from the pack.
    pub check: Option<String>,
}

/// A party's acceptance of the checklist as it stood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    /// The accepting party.
    pub party: PartyKind,
    /// The admin who accepted.
    pub by: Email,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Hash of the checklist content accepted.
    pub checklist_hash: String,
}

/// The checklist with its acceptances.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checklist {
    /// Items, vendor and customer, in creation order.
    pub items: Vec<ChecklistItem>,
    /// At most one acceptance per party; stale when the hash no longer matches.
    pub acceptances: Vec<Acceptance>,
}

/// A result to record on an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemUpdate {
    /// New status.
    pub status: ItemStatus,
    /// Note; required for a waiver.
    pub note: Option<String>,
    /// Evidence references to add.
    pub evidence: Vec<String>,
}

impl Checklist {
    /// The checklist a project starts with.
    pub fn from_template(items: &[ChecklistTemplateItem]) -> Result<Self, DomainError> {
        let mut c = Checklist::default();
        for t in items {
            c.push(Text::parse(&t.title)?, t.kind, t.check.clone());
        }
        Ok(c)
    }

    pub(crate) fn push(&mut self, title: Text, kind: PartyKind, check: Option<String>) -> String {
        let prefix = match kind {
            PartyKind::Vendor => "V",
            PartyKind::Customer => "C",
        };
        let n = self.items.iter().filter(|i| i.kind == kind).count() + 1;
        let id = format!("{prefix}{n}");
        self.items.push(ChecklistItem {
            id: id.clone(),
            title,
            kind,
            status: ItemStatus::Open,
            note: None,
            by: None,
            at: None,
            evidence: Vec::new(),
            check,
        });
        id
    }

    /// Finds an item by id (case-insensitive).
    pub fn get(&self, id: &str) -> Result<&ChecklistItem, DomainError> {
        self.items
            .iter()
            .find(|i| i.id.eq_ignore_ascii_case(id.trim()))
            .ok_or_else(|| DomainError::NotFound(format!("checklist item '{id}'")))
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Result<&mut ChecklistItem, DomainError> {
        self.items
            .iter_mut()
            .find(|i| i.id.eq_ignore_ascii_case(id.trim()))
            .ok_or_else(|| DomainError::NotFound(format!("checklist item '{id}'")))
    }

    /// A hash of every item's content, so an acceptance binds to what was accepted.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        for i in &self.items {
            for part in
                [i.id.as_str(), i.title.as_str(), i.kind.as_str(), i.status.as_str(), i.note.as_deref().unwrap_or("")]
            {
                h.update(part.as_bytes());
                h.update([0x1f]);
            }
            for e in &i.evidence {
                h.update(e.as_bytes());
                h.update([0x1e]);
            }
            h.update([0x1d]);
        }
        hex(&h.finalize())
    }

    /// The acceptance of a party, if it is for the current content.
    pub fn acceptance(&self, party: PartyKind) -> Option<&Acceptance> {
        let hash = self.content_hash();
        self.acceptances.iter().find(|a| a.party == party && a.checklist_hash == hash)
    }

    /// Items that hold the gate closed.
    pub fn open_items(&self) -> Vec<Unmet> {
        let mut v: Vec<Unmet> = self
            .items
            .iter()
            .filter(|i| !i.status.is_done())
            .map(|i| Unmet::ChecklistItemOpen {
                item: i.id.clone(),
                title: i.title.to_string(),
                status: i.status.to_string(),
            })
            .collect();
        if self.items.is_empty() {
            v.push(Unmet::ChecklistEmpty);
        }
        v
    }

    /// Every condition of the approval gate that is unmet.
    pub fn unmet(&self, who: impl Fn(PartyKind) -> String) -> Vec<Unmet> {
        let mut v = self.open_items();
        for party in PartyKind::BOTH {
            if self.acceptance(party).is_none() {
                let stale = self.acceptances.iter().any(|a| a.party == party);
                v.push(Unmet::ChecklistNotAccepted { party, who: who(party), stale });
            }
        }
        v
    }

    /// Records a result; validates the waiver reason and evidence references.
    pub(crate) fn set(&mut self, id: &str, up: ItemUpdate, by: &Email, at: OffsetDateTime) -> Result<(), DomainError> {
        if up.status == ItemStatus::Waived && up.note.as_deref().is_none_or(|n| n.trim().is_empty()) {
            return Err(DomainError::Invalid {
                field: "note",
                reason: format!("waiving {id} needs a reason (--note)"),
            });
        }
        for e in &up.evidence {
            validate_evidence(e)?;
        }
        let item = self.get_mut(id)?;
        item.status = up.status;
        if up.note.is_some() {
            item.note = up.note;
        }
        item.by = Some(by.clone());
        item.at = Some(at);
        for e in up.evidence {
            if !item.evidence.contains(&e) {
                item.evidence.push(e);
            }
        }
        Ok(())
    }

    /// After a repeated trial migration, earlier passes no longer prove anything.
    pub(crate) fn mark_for_retest(&mut self) -> Vec<String> {
        let mut ids = Vec::new();
        for i in &mut self.items {
            if i.status == ItemStatus::Passed {
                i.status = ItemStatus::NeedsRetest;
                ids.push(i.id.clone());
            }
        }
        ids
    }
}

/// Evidence references are `kind:reference`, e.g. `verify:3`, `run:2`, `file:screens/ok.png`.
pub fn validate_evidence(e: &str) -> Result<(), DomainError> {
    match e.split_once(':') {
        Some((k, r))
            if !k.is_empty()
                && k.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                && !r.trim().is_empty()
                && !e.chars().any(char::is_control) =>
        {
            Ok(())
        }
        _ => Err(DomainError::Invalid {
            field: "evidence",
            reason: format!("'{e}' is not a reference of the form kind:ref, such as verify:3"),
        }),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
