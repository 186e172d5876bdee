//! The three documents of a project, rendered to Markdown from current state; a document's SHA-256 is its version.

use std::fmt::{self, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::checklist::hex;
use crate::error::DomainError;
use crate::ids::{Email, Text};
use crate::party::PartyKind;
use crate::project::{Project, RunOutcome};
use crate::retainer::INCLUDED;

/// The kinds of document that are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocKind {
    /// Plan and scope: what will be migrated, by whom and when.
    Migration,
    /// The new license for the v2 product.
    License,
    /// Go-live readiness, after the parallel phase.
    GoLive,
}

impl DocKind {
    /// All kinds.
    pub const ALL: [DocKind; 3] = [DocKind::Migration, DocKind::License, DocKind::GoLive];

    /// Parses `migration`, `license` or `go-live`.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim() {
            "migration" => Ok(Self::Migration),
            "license" => Ok(Self::License),
            "go-live" => Ok(Self::GoLive),
            other => Err(DomainError::Invalid {
                field: "kind",
                reason: format!("'{other}' is not one of migration, license, go-live"),
            }),
        }
    }
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Migration => "migration",
            Self::License => "license",
            Self::GoLive => "go-live",
        }
    }
    /// Title used in documents and messages.
    pub fn title(self) -> &'static str {
        match self {
            Self::Migration => "migration contract",
            Self::License => "license contract",
            Self::GoLive => "go-live approval",
        }
    }
}

impl fmt::Display for DocKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signature: who, for which party, on which exact version of which document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The document signed.
    pub kind: DocKind,
    /// The party the signer signed for (always the signer's own).
    pub party: PartyKind,
    /// The signer.
    pub by: Email,
    /// The signer's name at the time of signing.
    pub name: Text,
    /// SHA-256 of the Markdown signed.
    pub document_hash: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A rendered document and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Document {
    /// Kind.
    pub kind: DocKind,
    /// Markdown text.
    pub markdown: String,
    /// SHA-256 of the Markdown, hex.
    pub hash: String,
}

impl Document {
    pub(crate) fn new(kind: DocKind, markdown: String) -> Self {
        let hash = hex(&Sha256::digest(markdown.as_bytes()));
        Self { kind, markdown, hash }
    }
}

pub(crate) fn render(p: &Project, kind: DocKind) -> Document {
    let mut s = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = match kind {
        DocKind::Migration => migration(p, &mut s),
        DocKind::License => license(p, &mut s),
        DocKind::GoLive => go_live(p, &mut s),
    };
    Document::new(kind, s)
}

fn header(p: &Project, title: &str, s: &mut String) -> fmt::Result {
    writeln!(s, "# {title}: {}", p.name)?;
    writeln!(s)?;
    writeln!(s, "- Project: `{}`", p.key)?;
    writeln!(s, "- Customer: {}", p.org)?;
    writeln!(s, "- Migration: {} → {} (pack `{}`)", p.source_product, p.target_product, p.pack)?;
    writeln!(s, "- Plan date: {}", p.plan_date)?;
    writeln!(s)
}

fn migration(p: &Project, s: &mut String) -> fmt::Result {
    header(p, "Migration contract", s)?;
    writeln!(s, "## Plan")?;
    writeln!(s)?;
    writeln!(s, "| id | activity | responsible | owner | estimate (h) | deadline |")?;
    writeln!(s, "|---|---|---|---|---:|---|")?;
    for a in p.plan.activities.iter().filter(|a| a.status != crate::plan::ActivityStatus::Cancelled) {
        writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            a.id,
            md(a.title.as_str()),
            a.party,
            a.owner.as_ref().map_or("", |o| o.as_str()),
            a.hours,
            a.due
        )?;
    }
    writeln!(s)?;
    writeln!(s, "Estimated total: {} hours.", p.plan.estimated())?;
    writeln!(s)?;
    writeln!(s, "## Scope")?;
    writeln!(s)?;
    writeln!(s, "History cut-off: jobs finished or cancelled before {} stay in the v1 archive.", p.scope.cutoff)?;
    writeln!(s)?;
    writeln!(s, "| entity | migrated |")?;
    writeln!(s, "|---|---|")?;
    for e in &p.scope.catalogue {
        let status = match &e.not_migrated {
            Some(why) => format!("no: {why}"),
            None if p.scope.includes(&e.name) => "yes".into(),
            None => "no: excluded by agreement".into(),
        };
        writeln!(s, "| {} | {} |", md(&e.title), md(&status))?;
    }
    if !p.scope.option_catalogue.is_empty() {
        writeln!(s)?;
        writeln!(s, "Options:")?;
        for o in &p.scope.option_catalogue {
            writeln!(s, "- {} = {} ({})", o.name, p.scope.option(&o.name).unwrap_or(""), o.description)?;
        }
    }
    writeln!(s)?;
    writeln!(s, "## Terms")?;
    writeln!(s)?;
    writeln!(
        s,
        "A migration retainer of {INCLUDED} hours is included at no extra cost. Time beyond it is billable. \
Extra needs (premium support, additional training, consultancy, development) are offered separately."
    )?;
    writeln!(
        s,
        "Data changed in {} during the parallel phase is overwritten by the final migration. \
After go-live, {} is kept as a read-only archive and no further migration is performed.",
        p.target_product, p.source_product
    )
}

fn license(p: &Project, s: &mut String) -> fmt::Result {
    header(p, "License contract", s)?;
    writeln!(s, "## Licence")?;
    writeln!(s)?;
    writeln!(
        s,
        "The vendor grants {} a licence to use {} for its own business, replacing its licence of {} \
from go-live. The licence of {} continues as read-only access to the historical archive.",
        p.org, p.target_product, p.source_product, p.source_product
    )
}

fn go_live(p: &Project, s: &mut String) -> fmt::Result {
    header(p, "Go-live approval", s)?;
    writeln!(
        s,
        "Both parties confirm that the parallel phase is complete and {} is ready for go-live.",
        p.target_product
    )?;
    writeln!(s)?;
    writeln!(s, "- Migration contract version: `{}`", render(p, DocKind::Migration).hash)?;
    match p
        .runs
        .iter()
        .rev()
        .find(|r| r.kind == crate::project::RunKind::First && !r.dry_run && r.outcome == RunOutcome::Completed)
    {
        Some(r) => writeln!(s, "- Trial migration: run {} completed", r.id)?,
        None => writeln!(s, "- Trial migration: none completed")?,
    }
    writeln!(s, "- Checklist version: `{}`", p.checklist.content_hash())?;
    writeln!(s)?;
    writeln!(s, "| item | test | party | result | note |")?;
    writeln!(s, "|---|---|---|---|---|")?;
    for i in &p.checklist.items {
        writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            i.id,
            md(i.title.as_str()),
            i.kind,
            i.status,
            md(i.note.as_deref().unwrap_or(""))
        )?;
    }
    writeln!(s)?;
    writeln!(
        s,
        "By signing, each party accepts that data changed in {} during the parallel phase is overwritten \
by the final migration, and that {} becomes a read-only archive at go-live.",
        p.target_product, p.source_product
    )
}

/// Keeps user text from breaking a Markdown table.
fn md(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A party's signature on a document, and whether it binds the current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureStatus {
    /// The party.
    pub party: PartyKind,
    /// Its latest signature, if any.
    pub signature: Option<Signature>,
    /// True when the signature is for an older version of the document.
    pub stale: bool,
}

/// Every party's latest signature on a document of `p`.
pub fn signature_status(p: &Project, kind: DocKind, current_hash: &str) -> Vec<SignatureStatus> {
    PartyKind::BOTH
        .iter()
        .map(|&party| {
            let sig = p.signatures.iter().rev().find(|s| s.kind == kind && s.party == party).cloned();
            let stale = sig.as_ref().is_some_and(|s| s.document_hash != current_hash);
            SignatureStatus { party, signature: sig, stale }
        })
        .collect()
}
