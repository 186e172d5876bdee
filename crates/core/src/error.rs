//! Errors of the domain core, each with a stable code that users and scripts can rely on.

use std::fmt;

use serde::Serialize;

use crate::party::PartyKind;

/// A condition of a gate that is not met. Its text is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "condition", rename_all = "snake_case")]
pub enum Unmet {
    /// A document has not been signed by a party.
    NotSigned {
        /// Document kind (`migration`, `license`, `go-live`).
        document: String,
        /// The party whose signature is missing.
        party: PartyKind,
        /// How the party is named to the user ("the customer (Acme)").
        who: String,
    },
    /// A party signed an older version of the document.
    StaleSignature {
        /// Document kind.
        document: String,
        /// The party whose signature is stale.
        party: PartyKind,
        /// How the party is named to the user.
        who: String,
    },
    /// No run of the given kind has completed.
    NoCompletedRun {
        /// `first` or `final`.
        kind: String,
    },
    /// A run is still in progress.
    RunInProgress {
        /// The run's number.
        run: u32,
    },
    /// A checklist item is neither passed nor waived.
    ChecklistItemOpen {
        /// Item id.
        item: String,
        /// Item title.
        title: String,
        /// Its status.
        status: String,
    },
    /// A party has not accepted the checklist (or accepted an earlier state of it).
    ChecklistNotAccepted {
        /// The party.
        party: PartyKind,
        /// How the party is named.
        who: String,
        /// Whether an acceptance exists but the checklist changed since.
        stale: bool,
    },
    /// The checklist has no items; an empty checklist proves nothing.
    ChecklistEmpty,
}

impl fmt::Display for Unmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unmet::NotSigned { document, who, .. } => {
                write!(f, "the {} is not signed by {who}", doc_title(document))
            }
            Unmet::StaleSignature { document, who, .. } => write!(
                f,
                "the signature of {who} on the {} is stale: the document changed after it was signed",
                doc_title(document)
            ),
            Unmet::NoCompletedRun { kind } => write!(f, "no {kind} migration run has completed"),
            Unmet::RunInProgress { run } => write!(f, "run {run} is still in progress"),
            Unmet::ChecklistItemOpen { item, title, status } => {
                write!(f, "checklist item {item} \"{title}\" is {status}")
            }
            Unmet::ChecklistNotAccepted { who, stale: false, .. } => {
                write!(f, "the checklist is not accepted by {who}")
            }
            Unmet::ChecklistNotAccepted { who, stale: true, .. } => {
                write!(f, "the acceptance of the checklist by {who} is stale: the checklist changed after it")
            }
            Unmet::ChecklistEmpty => f.write_str("the checklist has no items"),
        }
    }
}

fn doc_title(kind: &str) -> &str {
    match kind {
        "migration" => "migration contract",
        "license" => "license contract",
        "go-live" => "go-live approval",
        other => other,
    }
}

/// Everything the domain core can refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The step's gate is closed; `missing` names every unmet condition.
    #[error("{step} refused: {}", join(missing))]
    GateClosed {
        /// The step that was attempted ("first migration").
        step: String,
        /// Every unmet condition.
        missing: Vec<Unmet>,
    },
    /// The step does not belong to the project's current phase.
    #[error("{action} is not possible now: {reason}")]
    WrongPhase {
        /// What was attempted.
        action: String,
        /// Why not now, naming the phase.
        reason: String,
    },
    /// The acting user may not do this (party, organisation or role).
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// An input value is not valid.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field or argument at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A referenced thing does not exist (or is not visible to the user).
    #[error("{0} not found")]
    NotFound(String),
}

fn join(missing: &[Unmet]) -> String {
    missing.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl DomainError {
    /// A stable, documented code for scripts and the API.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::GateClosed { .. } => "gate_closed",
            DomainError::WrongPhase { .. } => "wrong_phase",
            DomainError::Forbidden(_) => "forbidden",
            DomainError::Invalid { .. } => "invalid_input",
            DomainError::NotFound(_) => "not_found",
        }
    }
    /// The unmet conditions, for a closed gate.
    pub fn missing(&self) -> &[Unmet] {
        match self {
            DomainError::GateClosed { missing, .. } => missing,
            _ => &[],
        }
    }
}
