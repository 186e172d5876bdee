//! One JSON value per view of a project. The API returns these values and the HTML pages render
//! them, so both always show the same facts.

use cutover_app::{RecoveryBundle, RunView};
use cutover_core::audit::AuditEntry;
use cutover_core::checklist::ItemStatus;
use cutover_core::documents::DocKind;
use cutover_core::{Party, PartyKind, Phase, Project, User, mask_url};
use cutover_store::StoredRun;
use serde_json::{Value, json};
use time::{Date, OffsetDateTime};

/// RFC 3339 without sub-seconds, for people and JSON alike.
pub fn when(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// A user, without anything secret.
pub fn user(u: &User) -> Value {
    json!({"email": u.email, "name": u.name, "party": u.party.kind(), "org": u.party.org(),
           "role": u.role, "is_vendor": u.party == Party::Vendor, "is_admin": u.is_admin()})
}

/// A phase as shown to people.
pub fn phase_label(p: Phase) -> &'static str {
    match p {
        Phase::Plan => "Plan",
        Phase::FirstMigration => "First migration",
        Phase::Parallel => "Parallel phase",
        Phase::Approval => "Approval",
        Phase::FinalMigration => "Final migration",
        Phase::Live => "Live",
        Phase::Cancelled => "Cancelled",
    }
}

/// What the dashboard and the project page show of a project: where it stands and what is at risk.
pub fn summary(p: &Project, today: Date) -> Value {
    let st = p.status();
    let retainer = p.retainer.summary();
    let overdue: Vec<Value> =
        p.plan.overdue(today).map(|a| json!({"id": a.id, "title": a.title, "due": a.due.to_string()})).collect();
    let mut risks = Vec::new();
    if !overdue.is_empty() {
        risks.push(format!("{} overdue {}", overdue.len(), if overdue.len() == 1 { "activity" } else { "activities" }));
    }
    if retainer.exhausted {
        risks.push(format!("retainer used up ({} h billable)", retainer.billable_hours));
    } else if retainer.warning {
        risks.push(format!("retainer {} % used", retainer.used_percent));
    }
    json!({
        "key": p.key, "name": p.name, "org": p.org, "pack": p.pack,
        "source_product": p.source_product, "target_product": p.target_product,
        "v1_url": p.v1_url.as_deref().map(mask_url), "v2_url": p.v2_url.as_deref().map(mask_url),
        "phase": st.phase, "phase_label": phase_label(st.phase), "phase_number": st.phase.number(),
        "next_step": st.next_step,
        "blocked_by": st.blocked_by.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "next_deadline": p.plan.next_deadline().map(|d| d.to_string()),
        "retainer": retainer, "overdue": overdue, "risks": risks, "at_risk": !risks.is_empty(),
        "live_since": st.live_since.map(|d| d.to_string()),
        "running": p.running().map(|r| r.id),
    })
}

/// The six phases with when each was entered, for the timeline.
pub fn timeline(p: &Project) -> Value {
    let current = p.phase.number().unwrap_or(0);
    let phases: Vec<Value> = Phase::ORDER
        .iter()
        .map(|ph| {
            let n = ph.number().unwrap_or(0);
            let entered = if *ph == Phase::Plan {
                Some(when(p.created_at))
            } else {
                p.history.iter().rev().find(|h| h.to == *ph).map(|h| when(h.at))
            };
            let state = match (p.phase, n.cmp(&current)) {
                (Phase::Cancelled, _) => "cancelled",
                (_, std::cmp::Ordering::Less) => "done",
                (_, std::cmp::Ordering::Equal) => "current",
                (_, std::cmp::Ordering::Greater) => "todo",
            };
            json!({"phase": ph, "label": phase_label(*ph), "number": n, "state": state, "entered_at": entered})
        })
        .collect();
    let history: Vec<Value> =
        p.history.iter().map(|h| json!({"from": h.from, "to": h.to, "at": when(h.at), "by": h.by})).collect();
    json!({"phases": phases, "history": history, "cancel_reason": p.cancel_reason})
}

/// The plan: activities with their overdue flag, and the estimate.
pub fn plan(p: &Project, today: Date) -> Value {
    let activities: Vec<Value> = p
        .plan
        .activities
        .iter()
        .map(|a| {
            json!({"id": a.id, "title": a.title, "party": a.party, "owner": a.owner, "hours": a.hours,
                   "due": a.due.to_string(), "status": a.status.as_str(),
                   "overdue": a.status.is_open() && a.due < today})
        })
        .collect();
    json!({"activities": activities, "estimated_hours": p.plan.estimated(),
           "scope": {"included": p.scope.included, "cutoff": p.scope.cutoff.to_string(), "options": p.scope.options}})
}

/// The three documents with their hash and signatures.
pub fn contracts(p: &Project) -> Value {
    Value::Array(DocKind::ALL.iter().map(|k| contract(p, *k, None)).collect())
}

/// One document: the Markdown, its hash and who signed which version; `for_user` adds whether
/// that user's party still has to sign it.
pub fn contract(p: &Project, kind: DocKind, for_user: Option<&User>) -> Value {
    let doc = p.document(kind);
    let sigs = p.signature_status(kind);
    let signatures: Vec<Value> = sigs
        .iter()
        .map(|s| {
            json!({"party": s.party, "who": p.who(s.party), "stale": s.stale,
                   "signed": s.signature.is_some() && !s.stale,
                   "by": s.signature.as_ref().map(|g| g.by.as_str()),
                   "name": s.signature.as_ref().map(|g| g.name.as_str()),
                   "at": s.signature.as_ref().map(|g| when(g.at)),
                   "document_hash": s.signature.as_ref().map(|g| g.document_hash.as_str())})
        })
        .collect();
    let mut v = json!({"kind": kind, "title": kind.title(), "markdown": doc.markdown, "hash": doc.hash,
                       "signatures": signatures,
                       "fully_signed": sigs.iter().all(|s| s.signature.is_some() && !s.stale)});
    if let Some(u) = for_user {
        let own = u.party.kind();
        let signed = sigs.iter().any(|s| s.party == own && s.signature.is_some() && !s.stale);
        v["own_party"] = json!(own);
        v["own_party_signed"] = json!(signed);
    }
    v
}

/// The checklist, its acceptances and what still blocks approval.
pub fn checklist(p: &Project) -> Value {
    let items: Vec<Value> = p
        .checklist
        .items
        .iter()
        .map(|i| {
            json!({"id": i.id, "title": i.title, "party": i.kind, "status": i.status.as_str(),
                   "done": i.status.is_done(), "note": i.note, "by": i.by, "at": i.at.map(when),
                   "evidence": i.evidence, "check": i.check})
        })
        .collect();
    let hash = p.checklist.content_hash();
    let acceptances: Vec<Value> = [PartyKind::Vendor, PartyKind::Customer]
        .iter()
        .map(|k| {
            let a = p.checklist.acceptance(*k);
            json!({"party": k, "who": p.who(*k), "accepted": a.is_some_and(|a| a.checklist_hash == hash),
                   "stale": a.is_some_and(|a| a.checklist_hash != hash),
                   "by": a.map(|a| a.by.as_str()), "at": a.map(|a| when(a.at))})
        })
        .collect();
    let statuses: Vec<&str> = [ItemStatus::Open, ItemStatus::Passed, ItemStatus::Failed, ItemStatus::Waived]
        .iter()
        .map(|s| s.as_str())
        .collect();
    json!({"items": items, "acceptances": acceptances, "hash": hash, "statuses": statuses,
           "open": p.checklist.open_items().iter().map(ToString::to_string).collect::<Vec<_>>(),
           "editable": p.phase == Phase::Parallel,
           "can_add": matches!(p.phase, Phase::Plan | Phase::FirstMigration | Phase::Parallel)})
}

/// The runs of a project as stored, newest first, with the lifecycle's one-line summary.
pub fn runs(p: &Project, runs: &[StoredRun]) -> Value {
    Value::Array(
        runs.iter()
            .rev()
            .map(|r| {
                let lifecycle = p.runs.iter().find(|x| i64::from(x.id) == r.run);
                let summary = lifecycle.and_then(|x| x.summary.as_deref());
                let reason = lifecycle.and_then(|x| x.reason.as_deref());
                json!({"run": r.run, "kind": r.kind, "dry_run": r.dry_run, "started_by": r.started_by,
                       "started_at": r.started_at, "finished_at": r.finished_at, "outcome": r.outcome,
                       "error": r.error, "summary": summary, "reason": reason})
            })
            .collect(),
    )
}

/// One run: buckets per entity, reasons, and for a final migration its delta and bundle.
pub fn run(v: &RunView) -> Value {
    let r = &v.run;
    let reasons: Vec<Value> = v
        .report
        .iter()
        .flat_map(|rep| rep.entities.iter())
        .flat_map(|e| {
            e.reasons.iter().map(move |(k, n)| {
                let (bucket, reason) = k.split_once(':').unwrap_or((k, ""));
                json!({"entity": e.entity, "bucket": bucket, "reason": reason, "records": n})
            })
        })
        .collect();
    json!({"run": r.run, "kind": r.kind, "dry_run": r.dry_run, "started_by": r.started_by,
           "started_at": r.started_at, "finished_at": r.finished_at, "outcome": r.outcome, "error": r.error,
           "report": v.report, "totals": v.report.as_ref().map(|r| r.totals()),
           "reasons": reasons,
           "delta": v.final_report.as_ref().map(|f| &f.tables),
           "delta_totals": v.final_report.as_ref().map(|f| f.totals()),
           "recovery_bundle": v.final_report.as_ref().map(|f| &f.bundle),
           "preview_reused": v.final_report.as_ref().map(|f| f.preview_reused)})
}

/// The verifications recorded in the lifecycle, newest first.
pub fn verifications(p: &Project) -> Value {
    Value::Array(
        p.verifications
            .iter()
            .rev()
            .map(|v| json!({"id": v.id, "by": v.by, "at": when(v.at), "clean": v.clean, "summary": v.summary}))
            .collect(),
    )
}

/// The recovery bundles of the final migrations.
pub fn recovery(b: &[RecoveryBundle]) -> Value {
    json!(b)
}

/// The retainer: where it stands, every entry with the running total, and the extras.
pub fn retainer(p: &Project) -> Value {
    let mut total = cutover_core::Hours::default();
    let entries: Vec<Value> = p
        .retainer
        .entries
        .iter()
        .map(|e| {
            total = total.plus(e.hours);
            json!({"activity": e.activity, "hours": e.hours, "by": e.by, "date": e.date.to_string(),
                   "note": e.note, "total": total})
        })
        .collect();
    let extras: Vec<Value> = p
        .retainer
        .extras
        .iter()
        .map(|x| json!({"id": x.id, "kind": x.kind, "description": x.description, "by": x.by, "at": when(x.at)}))
        .collect();
    json!({"summary": p.retainer.summary(), "entries": entries, "extras": extras})
}

/// Audit entries, newest first.
pub fn audit(entries: &[AuditEntry], intact: Option<u64>) -> Value {
    json!({"entries": entries.iter().rev().collect::<Vec<_>>(), "count": entries.len(),
           "intact": intact.is_none(), "first_break": intact})
}
