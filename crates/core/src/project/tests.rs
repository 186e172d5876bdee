//! Lifecycle tests: every gate, every refusal, every party and role rule.

#![allow(clippy::unwrap_used)]

use time::macros::{date, datetime};

use super::*;
use crate::checklist::ItemStatus;
use crate::party::{Party, Role};
use crate::template::{ActivityTemplate, ChecklistTemplateItem, EntityInfo, OptionInfo};

const NOW: OffsetDateTime = datetime!(2026-11-24 10:00 UTC);

fn user(email: &str, party: Party, role: Role) -> User {
    User {
        email: Email::parse(email).unwrap(),
        name: Text::parse(email.split('@').next().unwrap()).unwrap(),
        party,
        role,
        created_at: NOW,
    }
}
fn acme() -> Party {
    Party::Customer { org: OrgName::parse("Acme Print AS").unwrap() }
}
fn va() -> User {
    user("vera@vendor.no", Party::Vendor, Role::Admin)
}
fn vm() -> User {
    user("vidar@vendor.no", Party::Vendor, Role::Member)
}
fn ca() -> User {
    user("cora@acme.no", acme(), Role::Admin)
}
fn cm() -> User {
    user("carl@acme.no", acme(), Role::Member)
}
fn other() -> User {
    user("otto@other.no", Party::Customer { org: OrgName::parse("Other AS").unwrap() }, Role::Admin)
}

fn template() -> ProjectTemplate {
    ProjectTemplate {
        pack: "omikai".into(),
        source_product: "Omikai 1".into(),
        target_product: "Omikai 2".into(),
        entities: vec![
            EntityInfo {
                name: "customer".into(),
                title: "Customers".into(),
                default_included: true,
                required: true,
                not_migrated: None,
            },
            EntityInfo {
                name: "document".into(),
                title: "Documents".into(),
                default_included: true,
                required: false,
                not_migrated: None,
            },
        ],
        options: vec![OptionInfo {
            name: "merge".into(),
            description: "merge".into(),
            default: "yes".into(),
            allowed: vec!["yes".into(), "no".into()],
        }],
        activities: vec![ActivityTemplate {
            title: "Kick-off".into(),
            party: PartyKind::Vendor,
            hours: Hours::parse("2").unwrap(),
            due_days: 7,
        }],
        checklist: vec![
            ChecklistTemplateItem {
                title: "Counts reconcile".into(),
                kind: PartyKind::Vendor,
                check: Some("counts".into()),
            },
            ChecklistTemplateItem { title: "Open orders complete".into(), kind: PartyKind::Customer, check: None },
        ],
    }
}

fn ctx(u: &User) -> Ctx<'_> {
    Ctx { actor: u, now: NOW }
}

fn new_project() -> Project {
    Project::create(
        NewProject {
            key: ProjectKey::parse("acme").unwrap(),
            name: Text::parse("Acme migration").unwrap(),
            org: OrgName::parse("Acme Print AS").unwrap(),
            v1_url: Some("postgres://u:secret@h/v1".into()),
            v2_url: None,
            template: template(),
        },
        ctx(&va()),
    )
    .unwrap()
    .project
}

fn run(p: &Project, u: &User, c: Command) -> Project {
    match p.handle(c.clone(), ctx(u)) {
        Ok(d) => d.project,
        Err(e) => panic!("{c:?} by {} refused: {e}", u.email),
    }
}

fn refuse(p: &Project, u: &User, c: Command) -> DomainError {
    p.handle(c, ctx(u)).map(|_| ()).expect_err("expected a refusal")
}

fn sign(p: &Project, u: &User, kind: DocKind) -> Project {
    run(p, u, Command::Sign { kind, party: None })
}

fn signed_plan() -> Project {
    let mut p = new_project();
    for k in [DocKind::Migration, DocKind::License] {
        p = sign(&p, &va(), k);
        p = sign(&p, &ca(), k);
    }
    p
}

fn start(p: &Project, kind: RunKind, reason: Option<&str>) -> Project {
    run(p, &va(), Command::StartRun { kind, reason: reason.map(Into::into), dry_run: false })
}

fn finish(p: &Project, outcome: RunOutcome) -> Project {
    let id = p.running().expect("a running run").id;
    run(p, &va(), Command::FinishRun { run: id, outcome, summary: None })
}

fn set(p: &Project, u: &User, item: &str, status: ItemStatus, note: Option<&str>) -> Project {
    run(
        p,
        u,
        Command::ChecklistSet {
            item: item.into(),
            update: ItemUpdate { status, note: note.map(Into::into), evidence: vec![] },
        },
    )
}

fn in_parallel() -> Project {
    finish(&start(&signed_plan(), RunKind::First, None), RunOutcome::Completed)
}

fn in_approval() -> Project {
    let mut p = in_parallel();
    p = set(&p, &vm(), "V1", ItemStatus::Passed, None);
    p = set(&p, &cm(), "C1", ItemStatus::Passed, None);
    p = run(&p, &va(), Command::ChecklistAccept);
    run(&p, &ca(), Command::ChecklistAccept)
}

fn texts(e: &DomainError) -> Vec<String> {
    e.missing().iter().map(ToString::to_string).collect()
}

#[test]
fn only_vendor_admins_create_projects() {
    for u in [vm(), ca(), cm()] {
        let e = Project::create(
            NewProject {
                key: ProjectKey::parse("x").unwrap(),
                name: Text::parse("x").unwrap(),
                org: OrgName::parse("Acme Print AS").unwrap(),
                v1_url: None,
                v2_url: None,
                template: template(),
            },
            ctx(&u),
        )
        .unwrap_err();
        assert_eq!(e.code(), "forbidden", "{}", u.email);
    }
}

#[test]
fn new_project_starts_from_the_template() {
    let p = new_project();
    assert_eq!(p.phase, Phase::Plan);
    assert_eq!(p.plan.activities[0].due, date!(2026 - 12 - 01));
    assert_eq!(p.scope.cutoff, date!(2019 - 11 - 24));
    assert_eq!(p.checklist.items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["V1", "C1"]);
}

#[test]
fn creation_event_masks_the_password() {
    let d = Project::create(
        NewProject {
            key: ProjectKey::parse("acme").unwrap(),
            name: Text::parse("A").unwrap(),
            org: OrgName::parse("Acme Print AS").unwrap(),
            v1_url: Some("postgres://u:hunter2@h/v1".into()),
            v2_url: None,
            template: template(),
        },
        ctx(&va()),
    )
    .unwrap();
    let details = d.events[0].details.to_string();
    assert!(!details.contains("hunter2"), "{details}");
    assert!(details.contains("u:***@h"));
}

#[test]
fn first_migration_gate_names_every_missing_signature() {
    let p = new_project();
    let e = refuse(&p, &va(), Command::StartRun { kind: RunKind::First, reason: None, dry_run: false });
    assert_eq!(e.code(), "gate_closed");
    assert_eq!(
        texts(&e),
        [
            "the migration contract is not signed by the vendor",
            "the migration contract is not signed by the customer (Acme Print AS)",
            "the license contract is not signed by the vendor",
            "the license contract is not signed by the customer (Acme Print AS)",
        ]
    );
    assert_eq!(p.status().blocked_by.len(), 4);
    // One missing signature: only that one is named.
    let mut p = new_project();
    p = sign(&p, &va(), DocKind::Migration);
    p = sign(&p, &ca(), DocKind::Migration);
    p = sign(&p, &va(), DocKind::License);
    let e = refuse(&p, &va(), Command::StartRun { kind: RunKind::First, reason: None, dry_run: false });
    assert_eq!(texts(&e), ["the license contract is not signed by the customer (Acme Print AS)"]);
    assert!(e.to_string().starts_with("first migration refused: the license contract is not signed by the customer"));
}

#[test]
fn changing_the_plan_after_signing_makes_signatures_stale() {
    let p = signed_plan();
    assert!(p.status().blocked_by.is_empty());
    let p = run(
        &p,
        &vm(),
        Command::AddActivity {
            title: Text::parse("Extra data cleaning").unwrap(),
            party: PartyKind::Customer,
            owner: None,
            hours: Hours::parse("3").unwrap(),
            due: date!(2026 - 12 - 10),
        },
    );
    let e = refuse(&p, &va(), Command::StartRun { kind: RunKind::First, reason: None, dry_run: false });
    assert_eq!(
        texts(&e),
        [
            "the signature of the vendor on the migration contract is stale: the document changed after it was signed",
            "the signature of the customer (Acme Print AS) on the migration contract is stale: the document changed after it was signed",
        ]
    );
    assert!(p.signature_status(DocKind::Migration).iter().all(|s| s.stale));
    assert!(p.signature_status(DocKind::License).iter().all(|s| !s.stale));
    // Signing again opens the gate.
    let p = sign(&sign(&p, &va(), DocKind::Migration), &ca(), DocKind::Migration);
    assert!(p.status().blocked_by.is_empty());
}

#[test]
fn changing_the_scope_after_signing_makes_signatures_stale() {
    let p = signed_plan();
    let p =
        run(&p, &va(), Command::SetScope(ScopeChange { cutoff: Some(date!(2020 - 01 - 01)), ..Default::default() }));
    assert_eq!(p.status().blocked_by.len(), 2);
}

#[test]
fn a_party_signs_only_for_itself() {
    let p = new_project();
    let e = refuse(&p, &ca(), Command::Sign { kind: DocKind::Migration, party: Some(PartyKind::Vendor) });
    assert_eq!(e.code(), "forbidden");
    assert!(e.to_string().contains("cannot sign for the vendor"), "{e}");
    let e = refuse(&p, &va(), Command::Sign { kind: DocKind::Migration, party: Some(PartyKind::Customer) });
    assert!(e.to_string().contains("cannot sign for the customer (Acme Print AS)"), "{e}");
    // A customer's signature counts for the customer, never the vendor.
    let p = sign(&p, &ca(), DocKind::Migration);
    let st = p.signature_status(DocKind::Migration);
    assert!(st[0].signature.is_none());
    assert_eq!(st[1].signature.as_ref().unwrap().by.as_str(), "cora@acme.no");
}

#[test]
fn other_organisations_do_not_see_the_project() {
    let p = new_project();
    for c in [
        Command::Sign { kind: DocKind::Migration, party: None },
        Command::ChecklistAdd { title: Text::parse("x").unwrap() },
    ] {
        let e = refuse(&p, &other(), c);
        assert_eq!(e.code(), "not_found");
    }
}

#[test]
fn members_cannot_do_admin_steps() {
    let p = new_project();
    assert_eq!(refuse(&p, &cm(), Command::Sign { kind: DocKind::Migration, party: None }).code(), "forbidden");
    assert_eq!(refuse(&p, &vm(), Command::Sign { kind: DocKind::License, party: None }).code(), "forbidden");
    assert_eq!(refuse(&p, &vm(), Command::Cancel { reason: Text::parse("x").unwrap() }).code(), "forbidden");
    let p = in_parallel();
    assert_eq!(refuse(&p, &cm(), Command::ChecklistAccept).code(), "forbidden");
    let e = refuse(
        &p,
        &cm(),
        Command::ChecklistSet {
            item: "C1".into(),
            update: ItemUpdate { status: ItemStatus::Waived, note: Some("not used".into()), evidence: vec![] },
        },
    );
    assert!(e.to_string().contains("only an admin"), "{e}");
}

#[test]
fn customers_cannot_do_vendor_work() {
    let p = new_project();
    let add = Command::AddActivity {
        title: Text::parse("x").unwrap(),
        party: PartyKind::Vendor,
        owner: None,
        hours: Hours::parse("1").unwrap(),
        due: date!(2026 - 12 - 01),
    };
    assert_eq!(refuse(&p, &ca(), add).code(), "forbidden");
    assert_eq!(
        refuse(&signed_plan(), &ca(), Command::StartRun { kind: RunKind::First, reason: None, dry_run: false }).code(),
        "forbidden"
    );
    let log = Command::LogTime {
        activity: ActivityId::parse("A1").unwrap(),
        hours: Hours::parse("1").unwrap(),
        date: date!(2026 - 11 - 24),
        note: None,
    };
    assert_eq!(refuse(&p, &ca(), log).code(), "forbidden");
    // Progress on a vendor activity is the vendor's to record.
    let e = refuse(
        &p,
        &ca(),
        Command::SetActivityStatus { id: ActivityId::parse("A1").unwrap(), status: ActivityStatus::Done },
    );
    assert_eq!(e.code(), "forbidden");
}

#[test]
fn completed_first_run_opens_the_parallel_phase() {
    let p = start(&signed_plan(), RunKind::First, None);
    assert_eq!(p.phase, Phase::FirstMigration);
    assert_eq!(texts(&p.status().handle_err()), ["run 1 is still in progress"]);
    // A second start while one runs is refused.
    let e = refuse(&p, &va(), Command::StartRun { kind: RunKind::First, reason: None, dry_run: false });
    assert_eq!(texts(&e), ["run 1 is still in progress"]);
    // A failed run keeps the phase, a retry needs no reason.
    let p = finish(&p, RunOutcome::Failed);
    assert_eq!(p.phase, Phase::FirstMigration);
    assert_eq!(texts(&p.status().handle_err()), ["no first migration run has completed"]);
    let p = finish(&start(&p, RunKind::First, None), RunOutcome::Completed);
    assert_eq!(p.phase, Phase::Parallel);
    assert_eq!(p.runs.len(), 2);
}

#[test]
fn contracts_are_frozen_after_the_plan_phase() {
    let p = in_parallel();
    let e =
        refuse(&p, &va(), Command::SetScope(ScopeChange { cutoff: Some(date!(2020 - 01 - 01)), ..Default::default() }));
    assert_eq!(e.code(), "wrong_phase");
    assert!(e.to_string().contains("parallel phase"), "{e}");
    let e = refuse(&p, &va(), Command::Sign { kind: DocKind::Migration, party: None });
    assert_eq!(e.code(), "wrong_phase");
}

#[test]
fn approval_gate_names_open_items_and_missing_acceptances() {
    let p = in_parallel();
    let st = p.status();
    assert_eq!(st.next_step, Some("approval"));
    assert_eq!(
        st.blocked_by.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "checklist item V1 \"Counts reconcile\" is open",
            "checklist item C1 \"Open orders complete\" is open",
            "the checklist is not accepted by the vendor",
            "the checklist is not accepted by the customer (Acme Print AS)",
        ]
    );
    let p = set(&p, &vm(), "V1", ItemStatus::Failed, Some("3 invoices differ"));
    let e = refuse(&p, &va(), Command::ChecklistAccept);
    assert_eq!(
        texts(&e),
        ["checklist item V1 \"Counts reconcile\" is failed", "checklist item C1 \"Open orders complete\" is open"]
    );
}

#[test]
fn waiver_needs_a_reason() {
    let p = in_parallel();
    let e = refuse(
        &p,
        &ca(),
        Command::ChecklistSet {
            item: "C1".into(),
            update: ItemUpdate { status: ItemStatus::Waived, note: None, evidence: vec![] },
        },
    );
    assert_eq!(e.code(), "invalid_input");
    assert!(e.to_string().contains("needs a reason"), "{e}");
    let p = set(&p, &ca(), "C1", ItemStatus::Waived, Some("no open orders at this customer"));
    assert_eq!(p.checklist.get("C1").unwrap().status, ItemStatus::Waived);
}

#[test]
fn parties_record_only_their_own_items() {
    let p = in_parallel();
    let e = refuse(
        &p,
        &cm(),
        Command::ChecklistSet {
            item: "V1".into(),
            update: ItemUpdate { status: ItemStatus::Passed, note: None, evidence: vec![] },
        },
    );
    assert_eq!(e.code(), "forbidden");
    let p = run(&p, &cm(), Command::ChecklistAdd { title: Text::parse("Price calculation matches").unwrap() });
    assert_eq!(p.checklist.get("C2").unwrap().kind, PartyKind::Customer);
}

#[test]
fn acceptance_binds_to_the_checklist_as_it_stood() {
    let mut p = in_parallel();
    p = set(&p, &vm(), "V1", ItemStatus::Passed, None);
    p = set(&p, &cm(), "C1", ItemStatus::Passed, None);
    p = run(&p, &va(), Command::ChecklistAccept);
    assert_eq!(p.phase, Phase::Parallel);
    // The customer changes its item afterwards: the vendor's acceptance no longer holds.
    p = set(&p, &cm(), "C1", ItemStatus::Passed, Some("re-checked with March data"));
    p = run(&p, &ca(), Command::ChecklistAccept);
    assert_eq!(p.phase, Phase::Parallel);
    assert_eq!(
        p.status().blocked_by.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["the acceptance of the checklist by the vendor is stale: the checklist changed after it"]
    );
    p = run(&p, &va(), Command::ChecklistAccept);
    assert_eq!(p.phase, Phase::Approval);
}

#[test]
fn repeated_trial_migration_needs_a_reason_and_marks_retests() {
    let mut p = in_parallel();
    p = set(&p, &vm(), "V1", ItemStatus::Passed, None);
    p = set(&p, &cm(), "C1", ItemStatus::Failed, Some("missing order"));
    let e = refuse(&p, &va(), Command::StartRun { kind: RunKind::First, reason: None, dry_run: false });
    assert!(e.to_string().contains("needs a reason"), "{e}");
    let d = p
        .handle(
            Command::StartRun {
                kind: RunKind::First,
                reason: Some("fixed mapping of editions".into()),
                dry_run: false,
            },
            ctx(&va()),
        )
        .unwrap();
    assert!(d.events.iter().any(|e| e.action == "checklist_retest"));
    let p = d.project;
    assert_eq!(p.checklist.get("V1").unwrap().status, ItemStatus::NeedsRetest);
    assert_eq!(p.checklist.get("C1").unwrap().status, ItemStatus::Failed);
    assert_eq!(p.phase, Phase::Parallel);
    assert_eq!(p.runs.last().unwrap().reason.as_deref(), Some("fixed mapping of editions"));
}

#[test]
fn trial_migration_cannot_repeat_after_acceptance() {
    let p = in_approval();
    let e = refuse(&p, &va(), Command::StartRun { kind: RunKind::First, reason: Some("x".into()), dry_run: false });
    assert_eq!(e.code(), "wrong_phase");
}

#[test]
fn final_migration_needs_both_go_live_signatures() {
    let p = in_approval();
    assert_eq!(p.phase, Phase::Approval);
    let e = refuse(&p, &va(), Command::StartRun { kind: RunKind::Final, reason: None, dry_run: false });
    assert_eq!(
        texts(&e),
        [
            "the go-live approval is not signed by the vendor",
            "the go-live approval is not signed by the customer (Acme Print AS)"
        ]
    );
    let p = sign(&p, &ca(), DocKind::GoLive);
    let e = refuse(&p, &va(), Command::StartRun { kind: RunKind::Final, reason: None, dry_run: false });
    assert_eq!(texts(&e), ["the go-live approval is not signed by the vendor"]);
    // Only a vendor admin runs the final migration.
    let p = sign(&p, &va(), DocKind::GoLive);
    assert_eq!(
        refuse(&p, &vm(), Command::StartRun { kind: RunKind::Final, reason: None, dry_run: false }).code(),
        "forbidden"
    );
    let p = start(&p, RunKind::Final, None);
    assert_eq!(p.phase, Phase::FinalMigration);
}

#[test]
fn go_live_signing_only_in_approval() {
    let e = refuse(&in_parallel(), &va(), Command::Sign { kind: DocKind::GoLive, party: None });
    assert_eq!(e.code(), "wrong_phase");
    assert!(e.to_string().contains("approval phase"), "{e}");
}

#[test]
fn go_live_needs_a_completed_final_run_and_then_nothing_migrates() {
    let mut p = in_approval();
    p = sign(&sign(&p, &va(), DocKind::GoLive), &ca(), DocKind::GoLive);
    p = start(&p, RunKind::Final, None);
    let e = refuse(&p, &va(), go_live());
    assert_eq!(texts(&e), ["run 2 is still in progress"]);
    p = finish(&p, RunOutcome::Failed);
    let e = refuse(&p, &va(), go_live());
    assert_eq!(texts(&e), ["no final migration run has completed"]);
    p = finish(&start(&p, RunKind::Final, None), RunOutcome::Completed);
    let e = refuse(&p, &va(), Command::StartRun { kind: RunKind::Final, reason: None, dry_run: false });
    assert!(e.to_string().contains("already completed"), "{e}");
    assert_eq!(refuse(&p, &vm(), go_live()).code(), "forbidden");
    p = run(&p, &va(), go_live());
    assert_eq!(p.phase, Phase::Live);
    assert_eq!(p.live_since(), Some(date!(2026 - 11 - 24)));
    assert_eq!(p.status().next_step, None);
    for kind in [RunKind::First, RunKind::Final] {
        let e = refuse(&p, &va(), Command::StartRun { kind, reason: Some("late data".into()), dry_run: false });
        assert_eq!(e.code(), "wrong_phase");
        assert!(e.to_string().contains("went live on 2026-11-24"), "{e}");
    }
    assert_eq!(refuse(&p, &va(), Command::Cancel { reason: Text::parse("x").unwrap() }).code(), "wrong_phase");
}

#[test]
fn phases_never_skip() {
    // Nothing but the plan-phase steps works in the plan phase.
    let p = new_project();
    assert_eq!(
        refuse(&p, &va(), Command::StartRun { kind: RunKind::Final, reason: None, dry_run: false }).code(),
        "wrong_phase"
    );
    assert_eq!(refuse(&p, &va(), go_live()).code(), "wrong_phase");
    assert_eq!(refuse(&p, &va(), Command::ChecklistAccept).code(), "wrong_phase");
    assert_eq!(
        refuse(
            &p,
            &vm(),
            Command::ChecklistSet {
                item: "V1".into(),
                update: ItemUpdate { status: ItemStatus::Passed, note: None, evidence: vec![] }
            }
        )
        .code(),
        "wrong_phase"
    );
}

#[test]
fn cancelled_projects_refuse_everything() {
    let p = run(&new_project(), &va(), Command::Cancel { reason: Text::parse("customer withdrew").unwrap() });
    assert_eq!(p.phase, Phase::Cancelled);
    let e = refuse(&p, &va(), Command::Sign { kind: DocKind::Migration, party: None });
    assert!(e.to_string().contains("cancelled"), "{e}");
}

#[test]
fn retainer_events_warn_and_mark_billable() {
    let p = new_project();
    let log = |p: &Project, h: &str| {
        p.handle(
            Command::LogTime {
                activity: ActivityId::parse("A1").unwrap(),
                hours: Hours::parse(h).unwrap(),
                date: date!(2026 - 11 - 24),
                note: None,
            },
            ctx(&vm()),
        )
        .unwrap()
    };
    let d = log(&p, "17");
    assert!(d.events.iter().any(|e| e.action == "retainer_warning"));
    let d = log(&d.project, "4");
    assert!(d.events.iter().any(|e| e.action == "retainer_exhausted"));
    assert_eq!(d.project.retainer.summary().billable_hours.to_string(), "1");
    let e = refuse(
        &p,
        &vm(),
        Command::LogTime {
            activity: ActivityId::parse("A9").unwrap(),
            hours: Hours::parse("1").unwrap(),
            date: date!(2026 - 11 - 24),
            note: None,
        },
    );
    assert_eq!(e.code(), "not_found");
}

#[test]
fn documents_are_versioned_by_their_content() {
    let p = new_project();
    let a = p.document(DocKind::Migration);
    assert_eq!(a.hash.len(), 64);
    assert_eq!(a, p.document(DocKind::Migration));
    assert!(a.markdown.contains("| A1 | Kick-off | vendor |  | 2 | 2026-12-01 |"), "{}", a.markdown);
    let p2 = run(&p, &va(), Command::SetScope(ScopeChange { exclude: vec!["document".into()], ..Default::default() }));
    let b = p2.document(DocKind::Migration);
    assert_ne!(a.hash, b.hash);
    assert!(b.markdown.contains("| Documents | no: excluded by agreement |"));
    // The license does not depend on the plan.
    assert_eq!(p.document(DocKind::License).hash, p2.document(DocKind::License).hash);
}

#[test]
fn state_roundtrips_through_json() {
    let p = in_approval();
    let s = serde_json::to_string(&p).unwrap();
    let back: Project = serde_json::from_str(&s).unwrap();
    assert_eq!(back, p);
}

impl Status {
    /// The blocked-by list wrapped like a refusal, so tests read conditions the same way.
    fn handle_err(&self) -> DomainError {
        DomainError::GateClosed { step: self.next_step.unwrap_or("").into(), missing: self.blocked_by.clone() }
    }
}

#[test]
fn dry_runs_need_no_gate_and_open_none() {
    let p = new_project();
    let p = run(&p, &vm(), Command::StartRun { kind: RunKind::First, reason: None, dry_run: true });
    assert_eq!(p.phase, Phase::Plan);
    assert!(p.runs[0].dry_run);
    let e = refuse(&p, &va(), Command::StartRun { kind: RunKind::First, reason: None, dry_run: true });
    assert_eq!(texts(&e), ["run 1 is still in progress"]);
    let p = finish(&p, RunOutcome::Completed);
    assert_eq!(p.phase, Phase::Plan);
    assert_eq!(p.status().blocked_by.len(), 4);
    assert_eq!(
        refuse(&p, &ca(), Command::StartRun { kind: RunKind::First, reason: None, dry_run: true }).code(),
        "forbidden"
    );
    // A completed dry run does not count as the trial migration.
    let mut p = p;
    for k in [DocKind::Migration, DocKind::License] {
        p = sign(&sign(&p, &va(), k), &ca(), k);
    }
    let p = start(&p, RunKind::First, None);
    assert_eq!(p.runs[1].id, 2);
    assert_eq!(texts(&p.status().handle_err()), ["run 2 is still in progress"]);
}

#[test]
fn a_dead_run_can_be_abandoned_by_a_vendor_admin_only() {
    let p = start(&signed_plan(), RunKind::First, None);
    let cmd = || Command::AbandonRun { run: 1, reason: Text::parse("operator's machine crashed").unwrap() };
    assert_eq!(refuse(&p, &vm(), cmd()).code(), "forbidden");
    assert_eq!(refuse(&p, &ca(), cmd()).code(), "forbidden");
    let p = run(&p, &va(), cmd());
    assert_eq!(p.runs[0].outcome, RunOutcome::Failed);
    assert_eq!(p.phase, Phase::FirstMigration);
    assert_eq!(refuse(&p, &va(), cmd()).code(), "invalid_input");
    // The project can run again.
    let p = finish(&start(&p, RunKind::First, None), RunOutcome::Completed);
    assert_eq!(p.phase, Phase::Parallel);
}

#[test]
fn a_run_whose_lease_expired_is_failed_by_the_vendor_taking_over() {
    let p = start(&signed_plan(), RunKind::First, None);
    let cmd = || Command::ExpireRun { run: 1, holder: "vera@vendor.no (pid 7 on ops-1) since 10:00".into() };
    assert_eq!(refuse(&p, &ca(), cmd()).code(), "forbidden");
    assert_eq!(refuse(&p, &vm(), Command::ExpireRun { run: 9, holder: String::new() }).code(), "not_found");
    let p = run(&p, &vm(), cmd());
    assert_eq!(p.runs[0].outcome, RunOutcome::Failed);
    assert!(p.runs[0].summary.as_deref().unwrap_or("").contains("lease of vera@vendor.no"));
    assert_eq!(refuse(&p, &vm(), cmd()).code(), "invalid_input");
    let p = finish(&start(&p, RunKind::First, None), RunOutcome::Completed);
    assert_eq!(p.phase, Phase::Parallel);
}

#[test]
fn verifications_need_a_completed_run_and_back_evidence() {
    let p = signed_plan();
    let rec = || Command::RecordVerification { clean: true, summary: "clean".into() };
    assert_eq!(texts(&refuse(&p, &vm(), rec())), ["no first migration run has completed"]);
    let p = in_parallel();
    assert_eq!(refuse(&p, &ca(), rec()).code(), "forbidden");
    let p = run(&p, &vm(), rec());
    assert_eq!(p.verifications[0].id, 1);
    let ev = |e: &str| Command::ChecklistSet {
        item: "V1".into(),
        update: ItemUpdate { status: ItemStatus::Passed, note: None, evidence: vec![e.into()] },
    };
    assert_eq!(refuse(&p, &vm(), ev("verify:2")).code(), "not_found");
    assert_eq!(refuse(&p, &vm(), ev("run:9")).code(), "not_found");
    let p = run(&p, &vm(), ev("verify:1"));
    assert_eq!(p.checklist.get("V1").unwrap().evidence, ["verify:1"]);
}

fn go_live() -> Command {
    Command::GoLive {
        seal: crate::project::ArchiveSeal { tables: vec![("CUST".into(), 3, "ab".into())], read_only: "test".into() },
    }
}
