//! A migration project: its phase, the commands that change it and the gates between phases.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::{Date, OffsetDateTime};

use crate::checklist::{Acceptance, Checklist, ItemUpdate};
use crate::documents::{self, DocKind, Document, Signature};
use crate::error::{DomainError, Unmet};
use crate::ids::{Email, Hours, OrgName, ProjectKey, Text, mask_url};
use crate::party::{PartyKind, User};
use crate::plan::{Activity, ActivityId, ActivityStatus, Plan, Scope, ScopeChange};
use crate::retainer::{Extra, ExtraKind, Retainer, TimeEntry};
use crate::template::ProjectTemplate;

/// The six phases of the process, plus cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Plan, scope and contracts are agreed.
    Plan,
    /// The trial migration is under way (or failed and is retried).
    FirstMigration,
    /// Both parties test v2 against the checklist.
    Parallel,
    /// The checklist is accepted; the go-live approval is being signed.
    Approval,
    /// The final migration is under way or done; go-live is next.
    FinalMigration,
    /// v2 is live; v1 is a read-only archive. Terminal.
    Live,
    /// Stopped by the vendor. Terminal.
    Cancelled,
}

impl Phase {
    /// The phase's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Plan => "plan",
            Phase::FirstMigration => "first_migration",
            Phase::Parallel => "parallel",
            Phase::Approval => "approval",
            Phase::FinalMigration => "final_migration",
            Phase::Live => "live",
            Phase::Cancelled => "cancelled",
        }
    }
    /// Position in the process, 1 to 6 (cancelled has none).
    pub fn number(self) -> Option<u8> {
        match self {
            Phase::Plan => Some(1),
            Phase::FirstMigration => Some(2),
            Phase::Parallel => Some(3),
            Phase::Approval => Some(4),
            Phase::FinalMigration => Some(5),
            Phase::Live => Some(6),
            Phase::Cancelled => None,
        }
    }
    /// The six phases in order.
    pub const ORDER: [Phase; 6] =
        [Phase::Plan, Phase::FirstMigration, Phase::Parallel, Phase::Approval, Phase::FinalMigration, Phase::Live];
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Trial (first) or final migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// The trial migration into the new v2 account; may be repeated during the parallel phase.
    First,
    /// The final migration before go-live.
    Final,
}

impl RunKind {
    /// `first` or `final`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::First => "first",
            RunKind::Final => "final",
        }
    }
}

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunOutcome {
    /// Still going.
    Running,
    /// Completed; its report is stored.
    Completed,
    /// Did not complete.
    Failed,
}

/// A migration run as the lifecycle sees it (the engine keeps the details).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Run number within the project, from 1.
    pub id: u32,
    /// Trial or final.
    pub kind: RunKind,
    /// Who started it.
    pub by: Email,
    /// Why it was repeated, when it was.
    pub reason: Option<String>,
    /// A simulation that wrote nothing to v2; it never opens a gate.
    #[serde(default)]
    pub dry_run: bool,
    /// Start.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// End, once it ended.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Outcome.
    pub outcome: RunOutcome,
    /// One-line summary from the engine.
    pub summary: Option<String>,
}

/// A change of phase, kept for the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseChange {
    /// Phase left.
    pub from: Phase,
    /// Phase entered.
    pub to: Phase,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who caused it.
    pub by: Email,
}

/// The whole state of a migration project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Operator-chosen slug.
    pub key: ProjectKey,
    /// Display name.
    pub name: Text,
    /// The customer organisation.
    pub org: OrgName,
    /// Mapping pack.
    pub pack: String,
    /// Legacy product name.
    pub source_product: String,
    /// New product name.
    pub target_product: String,
    /// Where the v1 data is read from.
    pub v1_url: Option<String>,
    /// Where the v2 account is written.
    pub v2_url: Option<String>,
    /// Current phase.
    pub phase: Phase,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The plan date; the default history cut-off is seven years before it.
    pub plan_date: Date,
    /// Activities.
    pub plan: Plan,
    /// What is migrated.
    pub scope: Scope,
    /// Every signature ever given, oldest first.
    pub signatures: Vec<Signature>,
    /// The parallel-phase checklist.
    pub checklist: Checklist,
    /// Time entries and extras.
    pub retainer: Retainer,
    /// Migration runs, oldest first.
    pub runs: Vec<Run>,
    /// Phase changes, oldest first.
    pub history: Vec<PhaseChange>,
    /// Why the project was cancelled.
    pub cancel_reason: Option<String>,
    /// Verifications of the v2 account against v1, oldest first.
    #[serde(default)]
    pub verifications: Vec<Verification>,
    /// The seal of the v1 archive, from go-live.
    #[serde(default)]
    pub archive: Option<ArchiveSeal>,
}

/// The v1 archive's seal: a checksum per table, taken at go-live after v1 was made read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveSeal {
    /// (table, rows, SHA-256).
    pub tables: Vec<(String, u64, String)>,
    /// How v1 was made read-only.
    pub read_only: String,
}

/// A verification of the v2 account, as the lifecycle records it (the store keeps the report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Number within the project, from 1: evidence `verify:N` refers to it.
    pub id: u32,
    /// Who ran it.
    pub by: Email,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// No unexplained count, total or row.
    pub clean: bool,
    /// One line.
    pub summary: String,
}

/// Who acts, and when.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The acting user.
    pub actor: &'a User,
    /// The time of the action.
    pub now: OffsetDateTime,
}

/// What is needed to create a project.
#[derive(Debug, Clone)]
pub struct NewProject {
    /// Slug.
    pub key: ProjectKey,
    /// Display name.
    pub name: Text,
    /// Customer organisation.
    pub org: OrgName,
    /// v1 source URL.
    pub v1_url: Option<String>,
    /// v2 target URL.
    pub v2_url: Option<String>,
    /// The pack's contribution.
    pub template: ProjectTemplate,
}

/// Everything that changes a project after its creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Adds a plan activity.
    AddActivity {
        /// Title.
        title: Text,
        /// Responsible party.
        party: PartyKind,
        /// Owner's name.
        owner: Option<Text>,
        /// Estimate.
        hours: Hours,
        /// Deadline.
        due: Date,
    },
    /// Records progress on an activity.
    SetActivityStatus {
        /// Which.
        id: ActivityId,
        /// New status.
        status: ActivityStatus,
    },
    /// Changes the scope.
    SetScope(ScopeChange),
    /// Signs a document for the actor's party; `party`, when given, must be the actor's own.
    Sign {
        /// Which document.
        kind: DocKind,
        /// The party the user claims to sign for.
        party: Option<PartyKind>,
    },
    /// Logs time against the retainer.
    LogTime {
        /// Activity worked on.
        activity: ActivityId,
        /// Hours.
        hours: Hours,
        /// Day of the work.
        date: Date,
        /// What was done.
        note: Option<String>,
    },
    /// Records an extra offer.
    AddExtra {
        /// Kind.
        kind: ExtraKind,
        /// What is offered.
        description: Text,
    },
    /// Adds a checklist item of the actor's party.
    ChecklistAdd {
        /// What is tested.
        title: Text,
    },
    /// Records a checklist result.
    ChecklistSet {
        /// Item id.
        item: String,
        /// The result.
        update: ItemUpdate,
    },
    /// Accepts the checklist for the actor's party.
    ChecklistAccept,
    /// Starts a migration run (the engine calls this before it writes anything).
    StartRun {
        /// Trial or final.
        kind: RunKind,
        /// Why a trial migration is repeated (required in the parallel phase).
        reason: Option<String>,
        /// A simulation: no gate, no phase change, nothing written to v2.
        dry_run: bool,
    },
    /// Ends a run.
    FinishRun {
        /// Run number.
        run: u32,
        /// Completed or failed.
        outcome: RunOutcome,
        /// One-line summary.
        summary: Option<String>,
    },
    /// Records a verification of the v2 account (its report is stored beside the project).
    RecordVerification {
        /// Whether it found nothing unexplained.
        clean: bool,
        /// One line.
        summary: String,
    },
    /// Marks a run that can no longer finish (its process died) as failed, so that the
    /// project can run again. Nothing of such a run was committed to v2.
    AbandonRun {
        /// Run number.
        run: u32,
        /// Why.
        reason: Text,
    },
    /// Marks as failed a run whose lease expired: its process stopped renewing it (it died),
    /// and another run is taking the project over. Nothing of such a run was committed to v2.
    ExpireRun {
        /// Run number.
        run: u32,
        /// Who held the lease, and since when.
        holder: String,
    },
    /// Goes live: v1 becomes the archive, read-only and sealed.
    GoLive {
        /// The seal of v1, taken after it was made read-only.
        seal: ArchiveSeal,
    },
    /// Cancels the project.
    Cancel {
        /// Why.
        reason: Text,
    },
}

impl Command {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::AddActivity { .. } => "add_activity",
            Command::SetActivityStatus { .. } => "set_activity_status",
            Command::SetScope(_) => "set_scope",
            Command::Sign { .. } => "sign",
            Command::LogTime { .. } => "log_time",
            Command::AddExtra { .. } => "add_extra",
            Command::ChecklistAdd { .. } => "checklist_add",
            Command::ChecklistSet { .. } => "checklist_set",
            Command::ChecklistAccept => "checklist_accept",
            Command::StartRun { .. } => "start_run",
            Command::FinishRun { .. } => "finish_run",
            Command::AbandonRun { .. } => "abandon_run",
            Command::ExpireRun { .. } => "expire_run",
            Command::RecordVerification { .. } => "record_verification",
            Command::GoLive { .. } => "go_live",
            Command::Cancel { .. } => "cancel",
        }
    }
}

/// Something that happened, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// What happened.
    pub action: String,
    /// Details, with before and after values where something changed.
    pub details: Value,
}

impl Event {
    fn new(action: &str, details: Value) -> Self {
        Self { action: action.to_owned(), details }
    }
}

/// The result of an accepted command.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The project after the command.
    pub project: Project,
    /// What happened, in order.
    pub events: Vec<Event>,
}

/// Where a project stands: its phase, the next step and what blocks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Current phase.
    pub phase: Phase,
    /// The next step of the process, if any.
    pub next_step: Option<&'static str>,
    /// Every unmet condition of the next step.
    pub blocked_by: Vec<Unmet>,
    /// The day of go-live, once live.
    pub live_since: Option<Date>,
}

impl Project {
    /// Creates a project; only a vendor admin may.
    pub fn create(new: NewProject, ctx: Ctx<'_>) -> Result<Decision, DomainError> {
        if ctx.actor.party.kind() != PartyKind::Vendor || !ctx.actor.is_admin() {
            return Err(DomainError::Forbidden(format!(
                "{} is a {} {}; only vendor admins create projects",
                ctx.actor.email,
                ctx.actor.party.kind(),
                ctx.actor.role
            )));
        }
        let t = new.template;
        let plan_date = ctx.now.date();
        let mut plan = Plan::default();
        for a in &t.activities {
            plan.activities.push(Activity {
                id: plan.next_id(),
                title: Text::parse(&a.title)?,
                party: a.party,
                owner: None,
                hours: a.hours,
                due: plan_date.saturating_add(time::Duration::days(a.due_days)),
                status: ActivityStatus::Planned,
            });
        }
        let project = Project {
            key: new.key,
            name: new.name,
            org: new.org,
            pack: t.pack,
            source_product: t.source_product,
            target_product: t.target_product,
            v1_url: new.v1_url,
            v2_url: new.v2_url,
            phase: Phase::Plan,
            created_at: ctx.now,
            plan_date,
            plan,
            scope: Scope::new(t.entities, t.options, plan_date),
            signatures: Vec::new(),
            checklist: Checklist::from_template(&t.checklist)?,
            retainer: Retainer::default(),
            runs: Vec::new(),
            history: Vec::new(),
            cancel_reason: None,
            verifications: Vec::new(),
            archive: None,
        };
        let ev = Event::new(
            "project_created",
            json!({
                "key": project.key, "name": project.name, "org": project.org, "pack": project.pack,
                "v1_url": project.v1_url.as_deref().map(mask_url),
                "v2_url": project.v2_url.as_deref().map(mask_url),
                "activities": project.plan.activities.len(),
                "checklist_items": project.checklist.items.len(),
            }),
        );
        Ok(Decision { project, events: vec![ev] })
    }

    /// The current version of a document.
    pub fn document(&self, kind: DocKind) -> Document {
        documents::render(self, kind)
    }

    /// Each party's signature on the current or an older version of a document.
    pub fn signature_status(&self, kind: DocKind) -> Vec<documents::SignatureStatus> {
        documents::signature_status(self, kind, &self.document(kind).hash)
    }

    /// The phase, the next step and every unmet condition of it.
    pub fn status(&self) -> Status {
        let (next_step, blocked_by) = match self.phase {
            Phase::Plan => (Some("first migration"), self.run_gate(RunKind::First)),
            Phase::FirstMigration => (Some("parallel phase"), self.completion_unmet(RunKind::First)),
            Phase::Parallel => (Some("approval"), self.checklist.unmet(|p| self.who(p))),
            Phase::Approval => (Some("final migration"), self.run_gate(RunKind::Final)),
            Phase::FinalMigration => (Some("go-live"), self.completion_unmet(RunKind::Final)),
            Phase::Live | Phase::Cancelled => (None, Vec::new()),
        };
        Status { phase: self.phase, next_step, blocked_by, live_since: self.live_since() }
    }

    /// The day the project went live.
    pub fn live_since(&self) -> Option<Date> {
        self.history.iter().find(|h| h.to == Phase::Live).map(|h| h.at.date())
    }

    /// The run in progress, if any.
    pub fn running(&self) -> Option<&Run> {
        self.runs.iter().find(|r| r.outcome == RunOutcome::Running)
    }

    /// How a party is named in messages.
    pub fn who(&self, p: PartyKind) -> String {
        match p {
            PartyKind::Vendor => "the vendor".into(),
            PartyKind::Customer => format!("the customer ({})", self.org),
        }
    }

    fn signature_unmet(&self, kind: DocKind) -> Vec<Unmet> {
        self.signature_status(kind)
            .into_iter()
            .filter_map(|s| {
                let (document, party, who) = (kind.as_str().to_owned(), s.party, self.who(s.party));
                match (&s.signature, s.stale) {
                    (None, _) => Some(Unmet::NotSigned { document, party, who }),
                    (Some(_), true) => Some(Unmet::StaleSignature { document, party, who }),
                    (Some(_), false) => None,
                }
            })
            .collect()
    }

    /// Conditions for starting a run of `kind`.
    fn run_gate(&self, kind: RunKind) -> Vec<Unmet> {
        let mut v = match kind {
            RunKind::First => {
                let mut v = self.signature_unmet(DocKind::Migration);
                v.extend(self.signature_unmet(DocKind::License));
                v
            }
            RunKind::Final => self.signature_unmet(DocKind::GoLive),
        };
        if let Some(r) = self.running() {
            v.push(Unmet::RunInProgress { run: r.id });
        }
        v
    }

    /// Conditions for leaving a migration phase: the latest run of the kind completed.
    fn completion_unmet(&self, kind: RunKind) -> Vec<Unmet> {
        match self.runs.iter().rev().find(|r| r.kind == kind && !r.dry_run) {
            Some(r) if r.outcome == RunOutcome::Running => vec![Unmet::RunInProgress { run: r.id }],
            Some(r) if r.outcome == RunOutcome::Completed => Vec::new(),
            _ => vec![Unmet::NoCompletedRun { kind: kind.as_str().into() }],
        }
    }

    fn wrong_phase(&self, action: &str, expected: &str) -> DomainError {
        let reason = match self.phase {
            Phase::Live => format!(
                "the project went live on {}; {} is a read-only archive",
                self.live_since().map_or_else(|| "an earlier date".into(), |d| d.to_string()),
                self.source_product
            ),
            Phase::Cancelled => "the project is cancelled".into(),
            p => format!("the project is in the {p} phase; this is done {expected}"),
        };
        DomainError::WrongPhase { action: action.into(), reason }
    }

    fn set_phase(&mut self, to: Phase, ctx: Ctx<'_>, events: &mut Vec<Event>) {
        let from = self.phase;
        self.phase = to;
        self.history.push(PhaseChange { from, to, at: ctx.now, by: ctx.actor.email.clone() });
        events.push(Event::new("phase_changed", json!({ "before": from, "after": to })));
    }

    /// Applies a command for the acting user, or says exactly why not.
    pub fn handle(&self, cmd: Command, ctx: Ctx<'_>) -> Result<Decision, DomainError> {
        if !ctx.actor.can_see_org(&self.org) {
            // Another organisation's project does not exist for this user.
            return Err(DomainError::NotFound(format!("project '{}'", self.key)));
        }
        let mut p = self.clone();
        let mut events = Vec::new();
        let actor = ctx.actor;
        let kind = actor.party.kind();
        match cmd {
            Command::AddActivity { title, party, owner, hours, due } => {
                require(actor, Some(PartyKind::Vendor), false, "add plan activities")?;
                p.in_phase(&[Phase::Plan], "adding an activity", "in the plan phase, before the first migration")?;
                let id = p.plan.next_id();
                p.plan.activities.push(Activity {
                    id,
                    title: title.clone(),
                    party,
                    owner: owner.clone(),
                    hours,
                    due,
                    status: ActivityStatus::Planned,
                });
                events.push(Event::new(
                    "activity_added",
                    json!({"id": id, "title": title, "party": party, "owner": owner, "hours": hours, "due": due}),
                ));
            }
            Command::SetActivityStatus { id, status } => {
                p.not_terminal("changing an activity")?;
                let a = p.plan.get(id)?;
                if kind != PartyKind::Vendor && a.party != kind {
                    return Err(DomainError::Forbidden(format!(
                        "{id} is the vendor's activity; {} records progress on customer activities only",
                        actor.email
                    )));
                }
                let before = a.status;
                if let Some(a) = p.plan.activities.iter_mut().find(|a| a.id == id) {
                    a.status = status;
                }
                events
                    .push(Event::new("activity_status_changed", json!({"id": id, "before": before, "after": status})));
            }
            Command::SetScope(change) => {
                require(actor, Some(PartyKind::Vendor), false, "change the scope")?;
                p.in_phase(&[Phase::Plan], "changing the scope", "in the plan phase, before the first migration")?;
                if change == ScopeChange::default() {
                    return Err(DomainError::Invalid {
                        field: "scope",
                        reason: "nothing to change: give a cut-off, entities to include or exclude, or options".into(),
                    });
                }
                let before = p.scope.clone();
                p.scope = before.apply(&change)?;
                events.push(Event::new(
                    "scope_changed",
                    json!({
                        "before": {"cutoff": before.cutoff, "included": before.included, "options": before.options},
                        "after": {"cutoff": p.scope.cutoff, "included": p.scope.included, "options": p.scope.options},
                    }),
                ));
            }
            Command::Sign { kind: doc, party } => {
                if let Some(claimed) = party
                    && claimed != kind
                {
                    return Err(DomainError::Forbidden(format!(
                        "{} acts for {} and cannot sign for {}",
                        actor.email,
                        p.who(kind),
                        p.who(claimed)
                    )));
                }
                require(actor, None, true, "sign documents")?;
                match doc {
                    DocKind::Migration | DocKind::License => {
                        p.in_phase(&[Phase::Plan], &format!("signing the {}", doc.title()), "in the plan phase")?
                    }
                    DocKind::GoLive => p.in_phase(
                        &[Phase::Approval],
                        "signing the go-live approval",
                        "in the approval phase, after both parties accepted the checklist",
                    )?,
                }
                let current = p.document(doc);
                let already =
                    p.signature_status(doc).into_iter().any(|s| s.party == kind && s.signature.is_some() && !s.stale);
                if already {
                    return Err(DomainError::Invalid {
                        field: "signature",
                        reason: format!("{} has already signed this version of the {}", p.who(kind), doc.title()),
                    });
                }
                p.signatures.push(Signature {
                    kind: doc,
                    party: kind,
                    by: actor.email.clone(),
                    name: actor.name.clone(),
                    document_hash: current.hash.clone(),
                    at: ctx.now,
                });
                events
                    .push(Event::new("signed", json!({"document": doc, "party": kind, "document_hash": current.hash})));
            }
            Command::LogTime { activity, hours, date, note } => {
                require(actor, Some(PartyKind::Vendor), false, "log retainer time")?;
                p.not_cancelled("logging time")?;
                p.plan.get(activity)?;
                let before = p.retainer.summary();
                p.retainer.entries.push(TimeEntry {
                    activity,
                    hours,
                    by: actor.email.clone(),
                    date,
                    note: note.clone(),
                });
                let after = p.retainer.summary();
                events.push(Event::new(
                    "time_logged",
                    json!({"activity": activity, "hours": hours, "date": date, "note": note,
                           "used_before": before.used_hours, "used_after": after.used_hours,
                           "billable_after": after.billable_hours}),
                ));
                if !before.exhausted && after.exhausted {
                    events.push(Event::new("retainer_exhausted", json!({"billable_hours": after.billable_hours})));
                } else if !before.warning && after.warning {
                    events.push(Event::new("retainer_warning", json!({"used_percent": after.used_percent})));
                }
            }
            Command::AddExtra { kind: extra, description } => {
                require(actor, Some(PartyKind::Vendor), false, "record extra offers")?;
                p.not_cancelled("recording an extra")?;
                let id = format!("X{}", p.retainer.extras.len() + 1);
                p.retainer.extras.push(Extra {
                    id: id.clone(),
                    kind: extra,
                    description: description.clone(),
                    by: actor.email.clone(),
                    at: ctx.now,
                });
                events.push(Event::new("extra_added", json!({"id": id, "kind": extra, "description": description})));
            }
            Command::ChecklistAdd { title } => {
                p.in_phase(
                    &[Phase::Plan, Phase::FirstMigration, Phase::Parallel],
                    "adding a checklist item",
                    "until the checklist is accepted",
                )?;
                let id = p.checklist.push(title.clone(), kind, None);
                events.push(Event::new("checklist_item_added", json!({"id": id, "title": title, "kind": kind})));
            }
            Command::ChecklistSet { item, update } => {
                p.in_phase(&[Phase::Parallel], "recording a checklist result", "in the parallel phase")?;
                let it = p.checklist.get(&item)?;
                if it.kind != kind {
                    return Err(DomainError::Forbidden(format!(
                        "{} is a {} test; {} records {} items only",
                        it.id, it.kind, actor.email, kind
                    )));
                }
                if update.status == crate::checklist::ItemStatus::Waived && !actor.is_admin() {
                    return Err(DomainError::Forbidden(format!(
                        "{} is a member; only an admin of {} may waive an item",
                        actor.email,
                        p.who(kind)
                    )));
                }
                for e in &update.evidence {
                    if let Some(n) = e.strip_prefix("verify:")
                        && !p.verifications.iter().any(|v| v.id.to_string() == n)
                    {
                        return Err(DomainError::NotFound(format!("verification {n} (evidence {e})")));
                    }
                    if let Some(n) = e.strip_prefix("run:")
                        && !p.runs.iter().any(|r| r.id.to_string() == n)
                    {
                        return Err(DomainError::NotFound(format!("run {n} (evidence {e})")));
                    }
                }
                let (id, before) = (it.id.clone(), it.status);
                p.checklist.set(&id, update.clone(), &actor.email, ctx.now)?;
                events.push(Event::new(
                    "checklist_item_set",
                    json!({"id": id, "before": before, "after": update.status, "note": update.note, "evidence": update.evidence}),
                ));
            }
            Command::ChecklistAccept => {
                require(actor, None, true, "accept the checklist")?;
                p.in_phase(&[Phase::Parallel], "accepting the checklist", "in the parallel phase")?;
                let open = p.checklist.open_items();
                if !open.is_empty() {
                    return Err(DomainError::GateClosed { step: "checklist acceptance".into(), missing: open });
                }
                if p.checklist.acceptance(kind).is_some() {
                    return Err(DomainError::Invalid {
                        field: "acceptance",
                        reason: format!("{} has already accepted the checklist as it stands", p.who(kind)),
                    });
                }
                let hash = p.checklist.content_hash();
                p.checklist.acceptances.retain(|a| a.party != kind);
                p.checklist.acceptances.push(Acceptance {
                    party: kind,
                    by: actor.email.clone(),
                    at: ctx.now,
                    checklist_hash: hash.clone(),
                });
                events.push(Event::new("checklist_accepted", json!({"party": kind, "checklist_hash": hash})));
                if p.checklist.unmet(|k| p.who(k)).is_empty() {
                    p.set_phase(Phase::Approval, ctx, &mut events);
                }
            }
            Command::StartRun { kind: run_kind, reason: _, dry_run: true } => {
                p.start_dry_run(run_kind, ctx, &mut events)?;
            }
            Command::StartRun { kind: run_kind, reason, dry_run: false } => {
                p.start_run(run_kind, reason, ctx, &mut events)?;
            }
            Command::FinishRun { run, outcome, summary } => {
                require(actor, Some(PartyKind::Vendor), false, "finish migration runs")?;
                if outcome == RunOutcome::Running {
                    return Err(DomainError::Invalid {
                        field: "outcome",
                        reason: "a run finishes completed or failed".into(),
                    });
                }
                let r = p
                    .runs
                    .iter_mut()
                    .find(|r| r.id == run)
                    .ok_or_else(|| DomainError::NotFound(format!("run {run}")))?;
                if r.outcome != RunOutcome::Running {
                    return Err(DomainError::Invalid {
                        field: "run",
                        reason: format!("run {run} has already finished"),
                    });
                }
                r.outcome = outcome;
                r.finished_at = Some(ctx.now);
                r.summary = summary.clone();
                let run_kind = r.kind;
                events.push(Event::new(
                    "run_finished",
                    json!({"run": run, "kind": run_kind, "outcome": outcome, "summary": summary}),
                ));
                if run_kind == RunKind::First && outcome == RunOutcome::Completed && p.phase == Phase::FirstMigration {
                    p.set_phase(Phase::Parallel, ctx, &mut events);
                }
            }
            Command::RecordVerification { clean, summary } => {
                require(actor, Some(PartyKind::Vendor), false, "verify the v2 account")?;
                p.not_cancelled("verifying")?;
                if !p.runs.iter().any(|r| !r.dry_run && r.outcome == RunOutcome::Completed) {
                    return Err(DomainError::GateClosed {
                        step: "verification".into(),
                        missing: vec![Unmet::NoCompletedRun { kind: "first".into() }],
                    });
                }
                let id = p.verifications.last().map_or(1, |v| v.id + 1);
                p.verifications.push(Verification {
                    id,
                    by: actor.email.clone(),
                    at: ctx.now,
                    clean,
                    summary: summary.clone(),
                });
                events.push(Event::new("verified", json!({"verification": id, "clean": clean, "summary": summary})));
            }
            Command::AbandonRun { run, reason } => {
                require(actor, Some(PartyKind::Vendor), true, "abandon a run")?;
                p.fail_running(run, format!("abandoned: {reason}"), ctx)?;
                events.push(Event::new("run_abandoned", json!({"run": run, "reason": reason})));
            }
            Command::ExpireRun { run, holder } => {
                // Whoever may start the run that takes over: the vendor.
                require(actor, Some(PartyKind::Vendor), false, "take over a project whose run died")?;
                p.fail_running(run, format!("its process stopped (lease of {holder} expired)"), ctx)?;
                events.push(Event::new("run_expired", json!({"run": run, "holder": holder})));
            }
            Command::GoLive { seal } => {
                require(actor, Some(PartyKind::Vendor), true, "put a project live")?;
                p.in_phase(&[Phase::FinalMigration], "go-live", "after the final migration")?;
                let unmet = p.completion_unmet(RunKind::Final);
                if !unmet.is_empty() {
                    return Err(DomainError::GateClosed { step: "go-live".into(), missing: unmet });
                }
                p.set_phase(Phase::Live, ctx, &mut events);
                events.push(Event::new(
                    "went_live",
                    json!({"date": ctx.now.date(), "archive": seal.tables, "read_only": seal.read_only}),
                ));
                p.archive = Some(seal);
            }
            Command::Cancel { reason } => {
                require(actor, Some(PartyKind::Vendor), true, "cancel a project")?;
                p.not_terminal("cancelling")?;
                if let Some(r) = p.running() {
                    return Err(DomainError::GateClosed {
                        step: "cancel".into(),
                        missing: vec![Unmet::RunInProgress { run: r.id }],
                    });
                }
                p.cancel_reason = Some(reason.to_string());
                p.set_phase(Phase::Cancelled, ctx, &mut events);
            }
        }
        Ok(Decision { project: p, events })
    }

    /// Marks a run that can no longer finish as failed: nothing of it was committed to v2.
    fn fail_running(&mut self, run: u32, summary: String, ctx: Ctx<'_>) -> Result<(), DomainError> {
        let r =
            self.runs.iter_mut().find(|r| r.id == run).ok_or_else(|| DomainError::NotFound(format!("run {run}")))?;
        if r.outcome != RunOutcome::Running {
            return Err(DomainError::Invalid { field: "run", reason: format!("run {run} is not running") });
        }
        r.outcome = RunOutcome::Failed;
        r.finished_at = Some(ctx.now);
        r.summary = Some(summary);
        Ok(())
    }

    fn start_run(
        &mut self,
        kind: RunKind,
        reason: Option<String>,
        ctx: Ctx<'_>,
        events: &mut Vec<Event>,
    ) -> Result<(), DomainError> {
        let actor = ctx.actor;
        let step = match kind {
            RunKind::First => "first migration",
            RunKind::Final => "final migration",
        };
        match kind {
            RunKind::First => {
                require(actor, Some(PartyKind::Vendor), false, "run migrations")?;
                self.in_phase(
                    &[Phase::Plan, Phase::FirstMigration, Phase::Parallel],
                    "the first migration",
                    "from the plan phase until the checklist is accepted",
                )?;
            }
            RunKind::Final => {
                require(actor, Some(PartyKind::Vendor), true, "run the final migration")?;
                self.in_phase(
                    &[Phase::Approval, Phase::FinalMigration],
                    "the final migration",
                    "after the checklist is accepted and the go-live approval signed",
                )?;
            }
        }
        let unmet = self.run_gate(kind);
        if !unmet.is_empty() {
            return Err(DomainError::GateClosed { step: step.into(), missing: unmet });
        }
        let reason = reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
        if kind == RunKind::First && self.phase == Phase::Parallel && reason.is_none() {
            return Err(DomainError::Invalid {
                field: "reason",
                reason: "repeating the trial migration during the parallel phase needs a reason (--reason)".into(),
            });
        }
        if kind == RunKind::Final
            && self.runs.iter().any(|r| r.kind == RunKind::Final && r.outcome == RunOutcome::Completed)
        {
            return Err(DomainError::Invalid {
                field: "run",
                reason: "the final migration has already completed; go-live is next".into(),
            });
        }
        let id = self.runs.last().map_or(1, |r| r.id + 1);
        self.runs.push(Run {
            id,
            kind,
            by: actor.email.clone(),
            reason: reason.clone(),
            dry_run: false,
            started_at: ctx.now,
            finished_at: None,
            outcome: RunOutcome::Running,
            summary: None,
        });
        events.push(Event::new("run_started", json!({"run": id, "kind": kind, "reason": reason})));
        match (kind, self.phase) {
            (RunKind::First, Phase::Parallel) => {
                let retest = self.checklist.mark_for_retest();
                if !retest.is_empty() {
                    events.push(Event::new("checklist_retest", json!({"items": retest, "run": id})));
                }
            }
            (RunKind::First, Phase::Plan) => self.set_phase(Phase::FirstMigration, ctx, events),
            (RunKind::Final, Phase::Approval) => self.set_phase(Phase::FinalMigration, ctx, events),
            _ => {}
        }
        Ok(())
    }

    /// A simulation: allowed to the vendor any time before go-live, one run at a time.
    fn start_dry_run(&mut self, kind: RunKind, ctx: Ctx<'_>, events: &mut Vec<Event>) -> Result<(), DomainError> {
        require(ctx.actor, Some(PartyKind::Vendor), false, "run migrations")?;
        self.not_terminal("a dry run")?;
        if let Some(r) = self.running() {
            return Err(DomainError::GateClosed {
                step: "dry run".into(),
                missing: vec![Unmet::RunInProgress { run: r.id }],
            });
        }
        let id = self.runs.last().map_or(1, |r| r.id + 1);
        self.runs.push(Run {
            id,
            kind,
            by: ctx.actor.email.clone(),
            reason: None,
            dry_run: true,
            started_at: ctx.now,
            finished_at: None,
            outcome: RunOutcome::Running,
            summary: None,
        });
        events.push(Event::new("run_started", json!({"run": id, "kind": kind, "dry_run": true})));
        Ok(())
    }

    /// The run started last.
    pub fn last_run(&self) -> Option<&Run> {
        self.runs.last()
    }

    fn in_phase(&self, allowed: &[Phase], action: &str, expected: &str) -> Result<(), DomainError> {
        if allowed.contains(&self.phase) { Ok(()) } else { Err(self.wrong_phase(action, expected)) }
    }

    fn not_terminal(&self, action: &str) -> Result<(), DomainError> {
        self.in_phase(
            &[Phase::Plan, Phase::FirstMigration, Phase::Parallel, Phase::Approval, Phase::FinalMigration],
            action,
            "before go-live",
        )
    }

    fn not_cancelled(&self, action: &str) -> Result<(), DomainError> {
        if self.phase == Phase::Cancelled { Err(self.wrong_phase(action, "")) } else { Ok(()) }
    }
}

/// Checks party and role; `party: None` means either party.
fn require(actor: &User, party: Option<PartyKind>, admin: bool, what: &str) -> Result<(), DomainError> {
    if let Some(p) = party
        && actor.party.kind() != p
    {
        return Err(DomainError::Forbidden(format!(
            "{} acts for the {}; only the {p} may {what}",
            actor.email,
            actor.party.kind()
        )));
    }
    if admin && !actor.is_admin() {
        return Err(DomainError::Forbidden(format!("{} is a member; only admins may {what}", actor.email)));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
