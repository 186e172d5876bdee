//! The subcommands: parse arguments into domain values, call the application layer, print.

use std::io::BufRead;

use anyhow::{Context, Result};
use cutover_app::{App, NewUser, Packs, ProjectSpec};
use cutover_core::checklist::{ItemStatus, ItemUpdate};
use cutover_core::documents::DocKind;
use cutover_core::plan::{ActivityId, ActivityStatus, ScopeChange};
use cutover_core::retainer::ExtraKind;
use cutover_core::{
    Command, DomainError, Email, Hours, OrgName, PartyKind, Project, ProjectKey, Role, Text, User, mask_url,
};
use serde_json::json;
use time::Date;

use crate::args::*;
use crate::exit;
use crate::out;

/// Runs one command; the exit code for completed work (0, or 5 for a failed verification).
pub async fn run(cli: Cli) -> Result<u8> {
    if let Cmd::Demo(a) = &cli.command {
        // The demo makes its own store in its own folder.
        return crate::demo::demo(a, cli.packs.clone()).await;
    }
    let packs = cli.packs.clone().map_or(Packs::Builtin, Packs::Dir);
    let mut app = App::open(&cli.db, packs).await?;
    if let Some(dir) = cli.recovery_dir.clone() {
        app = app.with_recovery_dir(dir);
    }
    let ctx = Ctx { app: &app, json: cli.json, actor: cli.actor.clone() };
    let code = match cli.command {
        Cmd::Init(a) => ctx.init(a).await?,
        Cmd::User(UserCmd::Add(a)) => ctx.user_add(a).await?,
        Cmd::User(UserCmd::List) => ctx.user_list().await?,
        Cmd::Project(ProjectCmd::Create(a)) => ctx.project_create(a).await?,
        Cmd::Project(ProjectCmd::List) => ctx.project_list().await?,
        Cmd::Project(ProjectCmd::Show(a)) => ctx.project_show(&a.key).await?,
        Cmd::Project(ProjectCmd::Cancel(a)) => {
            let cmd = Command::Cancel { reason: Text::parse(&a.reason)? };
            ctx.apply(&a.key, cmd, "project cancelled").await?
        }
        Cmd::Plan(PlanCmd::Add(a)) => {
            let cmd = Command::AddActivity {
                title: Text::parse(&a.title)?,
                party: PartyKind::parse(&a.party)?,
                owner: a.owner.as_deref().map(Text::parse).transpose()?,
                hours: Hours::parse(&a.hours)?,
                due: date(&a.due, "due")?,
            };
            ctx.apply(&a.key, cmd, "activity added").await?
        }
        Cmd::Plan(PlanCmd::Set(a)) => {
            let cmd = Command::SetActivityStatus {
                id: ActivityId::parse(&a.activity)?,
                status: ActivityStatus::parse(&a.status)?,
            };
            ctx.apply(&a.key, cmd, "activity updated").await?
        }
        Cmd::Plan(PlanCmd::Show(a)) => ctx.plan_show(&a.key).await?,
        Cmd::Scope(ScopeCmd::Show(a)) => ctx.scope_show(&a.key).await?,
        Cmd::Scope(ScopeCmd::Set(a)) => {
            let options = a
                .options
                .iter()
                .map(|o| {
                    o.split_once('=').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).ok_or_else(|| {
                        DomainError::Invalid { field: "option", reason: format!("'{o}' is not NAME=VALUE") }
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let change = ScopeChange {
                cutoff: a.cutoff.as_deref().map(|d| date(d, "cutoff")).transpose()?,
                include: a.include,
                exclude: a.exclude,
                options,
            };
            ctx.apply(&a.key, Command::SetScope(change), "scope changed").await?
        }
        Cmd::Contract(ContractCmd::Show(a)) => ctx.contract_show(&a.key, DocKind::parse(&a.kind)?).await?,
        Cmd::Contract(ContractCmd::Sign(a)) => {
            let kind = DocKind::parse(&a.kind)?;
            let party = a.party.as_deref().map(PartyKind::parse).transpose()?;
            ctx.apply(&a.key, Command::Sign { kind, party }, &format!("{} signed", kind.title())).await?
        }
        Cmd::Time(TimeCmd::Log(a)) => {
            let day = match a.date.as_deref() {
                Some(d) => date(d, "date")?,
                None => app.now().date(),
            };
            let cmd = Command::LogTime {
                activity: ActivityId::parse(&a.activity)?,
                hours: Hours::parse(&a.hours)?,
                date: day,
                note: a.note,
            };
            let c = ctx.apply(&a.key, cmd, "time logged").await?;
            if !ctx.json {
                ctx.retainer(&a.key).await?;
            }
            c
        }
        Cmd::Retainer(a) => ctx.retainer(&a.key).await?,
        Cmd::Extra(ExtraCmd::Add(a)) => {
            let cmd = Command::AddExtra { kind: ExtraKind::parse(&a.kind)?, description: Text::parse(&a.description)? };
            ctx.apply(&a.key, cmd, "extra offer recorded").await?
        }
        Cmd::Checklist(ChecklistCmd::Show(a)) => ctx.checklist_show(&a.key).await?,
        Cmd::Checklist(ChecklistCmd::Add(a)) => {
            ctx.apply(&a.key, Command::ChecklistAdd { title: Text::parse(&a.title)? }, "checklist item added").await?
        }
        Cmd::Checklist(ChecklistCmd::Set(a)) => {
            let update = ItemUpdate { status: ItemStatus::parse(&a.status)?, note: a.note, evidence: a.evidence };
            ctx.apply(&a.key, Command::ChecklistSet { item: a.item, update }, "checklist result recorded").await?
        }
        Cmd::Checklist(ChecklistCmd::Accept(a)) => {
            ctx.apply(&a.key, Command::ChecklistAccept, "checklist accepted").await?
        }
        Cmd::Audit(a) => ctx.audit(a).await?,
        Cmd::Migrate(a) => ctx.migrate(a).await?,
        Cmd::GoLive(a) => {
            let user = ctx.user().await?;
            let key = ProjectKey::parse(&a.key)?;
            let p = app.go_live(&user, &key).await?;
            let seal = p.archive.clone();
            if ctx.json {
                out::json(&json!({"phase": p.phase, "live_since": p.live_since(), "archive": seal}))?;
            } else {
                println!("{key}: live since {}", p.live_since().map(|d| d.to_string()).unwrap_or_default());
                if let Some(s) = seal {
                    println!("{key}: {}", s.read_only);
                    println!(
                        "{key}: archive sealed: {} tables, {} rows",
                        s.tables.len(),
                        s.tables.iter().map(|t| t.1).sum::<u64>()
                    );
                }
            }
            0
        }
        Cmd::Archive(ArchiveCmd::Verify(a)) => {
            let user = ctx.user().await?;
            let key = ProjectKey::parse(&a.key)?;
            let checks = app.archive_verify(&user, &key).await?;
            let intact = checks.iter().all(|c| c.intact);
            if ctx.json {
                out::json(&json!({"intact": intact, "tables": checks}))?;
            } else {
                for c in checks.iter().filter(|c| !c.intact) {
                    println!(
                        "{key}: table {} CHANGED since go-live: {} rows then, {} now",
                        c.table, c.sealed.0, c.now.0
                    );
                }
                if intact {
                    println!("{key}: archive intact: {} tables match the seal of go-live", checks.len());
                }
            }
            if intact { 0 } else { exit::INTEGRITY }
        }
        Cmd::Recovery(RecoveryCmd::Show(a)) => {
            crate::report::recovery(&app, &ctx.user().await?, &a.key, ctx.json).await?
        }
        Cmd::Run(RunCmd::Abandon(a)) => {
            let cmd = Command::AbandonRun { run: a.run, reason: Text::parse(&a.reason)? };
            let done = ctx.apply(&a.key, cmd, &format!("run {} marked failed", a.run)).await?;
            let at = app.now().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
            app.store()
                .finish_run(&a.key, i64::from(a.run), "failed", &at, None, Some(&format!("abandoned: {}", a.reason)))
                .await?;
            done
        }
        Cmd::Report(a) => crate::report::report(&app, &ctx.user().await?, a, ctx.json).await?,
        Cmd::Preview(a) => crate::report::preview(&app, &ctx.user().await?, &a.key, ctx.json).await?,
        Cmd::Verify(a) => crate::report::verify(&app, &ctx.user().await?, a, ctx.json).await?,
        Cmd::DemoData(a) => crate::demo::demo_data(a, ctx.json)?,
        // The demo opens a store of its own; `run` hands it over before opening this one.
        Cmd::Demo(_) => 0,
        Cmd::Serve(a) => {
            eprintln!("serving on http://{} (Ctrl-C stops)", a.addr);
            cutover_web::serve(cutover_web::WebState::new(app.clone()), &a.addr).await.context("serving the portal")?;
            0
        }
    };
    app.store().close().await;
    Ok(code)
}

pub(crate) fn date(s: &str, field: &'static str) -> Result<Date, DomainError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s.trim(), &fmt)
        .map_err(|_| DomainError::Invalid { field, reason: format!("'{s}' is not a date of the form YYYY-MM-DD") })
}

pub(crate) struct Ctx<'a> {
    app: &'a App,
    json: bool,
    actor: Option<String>,
}

impl Ctx<'_> {
    pub(crate) async fn user(&self) -> Result<User> {
        Ok(self.app.actor(self.actor.as_deref()).await?)
    }

    async fn project(&self, key: &str) -> Result<(User, Project)> {
        let user = self.user().await?;
        let key = ProjectKey::parse(key)?;
        let p = self.app.project(&user, &key).await?.project;
        Ok((user, p))
    }

    /// Applies a command and prints what happened.
    async fn apply(&self, key: &str, cmd: Command, done: &str) -> Result<u8> {
        let user = self.user().await?;
        let key = ProjectKey::parse(key)?;
        let d = self.app.execute(&user, &key, cmd).await?;
        let status = d.project.status();
        if self.json {
            out::json(&json!({
                "ok": true, "project": key, "phase": status.phase, "events": d.events,
                "blocked_by": status.blocked_by.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }))?;
        } else {
            println!("{key}: {done}");
            for e in d.events.iter().filter(|e| e.action == "phase_changed") {
                println!("{key}: phase is now {}", e.details["after"].as_str().unwrap_or("?"));
            }
            for e in d.events.iter().filter(|e| e.action.starts_with("retainer_") || e.action == "checklist_retest") {
                println!("{key}: note: {} {}", e.action.replace('_', " "), e.details);
            }
        }
        Ok(0)
    }

    async fn init(&self, a: InitArgs) -> Result<u8> {
        let users = self.app.store().user_count().await?;
        let mut created = None;
        if let (Some(email), Some(name)) = (a.email, a.name) {
            let password = if a.password_stdin { Some(read_password()?) } else { None };
            let u = self
                .app
                .add_user(
                    None,
                    NewUser {
                        email: Email::parse(&email)?,
                        name: Text::parse(&name)?,
                        party: PartyKind::Vendor,
                        org: None,
                        role: Role::Admin,
                        password,
                    },
                )
                .await?;
            created = Some(u.email.to_string());
        }
        if self.json {
            out::json(
                &json!({"store": self.app.store().masked_url(), "users_before": users, "admin_created": created}),
            )?;
        } else {
            println!("store ready: {}", self.app.store().masked_url());
            if let Some(e) = created {
                println!("first vendor admin: {e}");
            } else if users == 0 {
                println!(
                    "no users yet: add the first vendor admin with `cutover user add --party vendor --role admin …`"
                );
            }
        }
        Ok(0)
    }

    async fn user_add(&self, a: UserAddArgs) -> Result<u8> {
        let actor = match self.actor.as_deref() {
            Some(_) => Some(self.user().await?),
            None => None,
        };
        let password = if a.password_stdin { Some(read_password()?) } else { None };
        let new = NewUser {
            email: Email::parse(&a.email)?,
            name: Text::parse(&a.name)?,
            party: PartyKind::parse(&a.party)?,
            org: a.org.as_deref().map(OrgName::parse).transpose()?,
            role: Role::parse(&a.role)?,
            password,
        };
        let u = self.app.add_user(actor.as_ref(), new).await?;
        if self.json {
            out::json(&u)?;
        } else {
            println!("user added: {} ({}, {})", u.email, u.party, u.role);
        }
        Ok(0)
    }

    async fn user_list(&self) -> Result<u8> {
        let users = self.app.users(&self.user().await?).await?;
        if self.json {
            out::json(&users)?;
        } else {
            let rows: Vec<_> = users
                .iter()
                .map(|u| vec![u.email.to_string(), u.name.to_string(), u.party.to_string(), u.role.to_string()])
                .collect();
            out::table(&["email", "name", "party", "role"], &rows);
        }
        Ok(0)
    }

    async fn project_create(&self, a: ProjectCreateArgs) -> Result<u8> {
        let user = self.user().await?;
        let p = self
            .app
            .create_project(
                &user,
                ProjectSpec {
                    key: ProjectKey::parse(&a.key)?,
                    name: Text::parse(&a.name)?,
                    org: OrgName::parse(&a.org)?,
                    pack: a.pack,
                    v1_url: a.v1,
                    v2_url: a.v2,
                },
            )
            .await?;
        if self.json {
            out::json(&project_json(&p))?;
        } else {
            println!(
                "project {} created for {} ({} activities, {} checklist items); next: sign the contracts",
                p.key,
                p.org,
                p.plan.activities.len(),
                p.checklist.items.len()
            );
        }
        Ok(0)
    }

    async fn project_list(&self) -> Result<u8> {
        let user = self.user().await?;
        let projects = self.app.projects(&user).await?;
        if self.json {
            out::json(&projects.iter().map(project_json).collect::<Vec<_>>())?;
        } else {
            let rows: Vec<_> = projects
                .iter()
                .map(|p| {
                    let st = p.status();
                    vec![
                        p.key.to_string(),
                        p.org.to_string(),
                        format!("{}/6 {}", p.phase.number().unwrap_or(0), p.phase),
                        st.next_step.unwrap_or("-").to_owned(),
                        st.blocked_by.len().to_string(),
                    ]
                })
                .collect();
            out::table(&["key", "customer", "phase", "next step", "blockers"], &rows);
        }
        Ok(0)
    }

    async fn project_show(&self, key: &str) -> Result<u8> {
        let (_, p) = self.project(key).await?;
        if self.json {
            out::json(&project_json(&p))?;
            return Ok(0);
        }
        let st = p.status();
        println!("{}: {}", p.key, p.name);
        println!("customer: {}", p.org);
        println!("pack: {} ({} → {})", p.pack, p.source_product, p.target_product);
        println!("v1: {}", p.v1_url.as_deref().map_or_else(|| "-".into(), mask_url));
        println!("v2: {}", p.v2_url.as_deref().map_or_else(|| "-".into(), mask_url));
        let timeline: Vec<String> = cutover_core::Phase::ORDER
            .iter()
            .map(|ph| if *ph == p.phase { format!("[{ph}]") } else { ph.to_string() })
            .collect();
        println!("phase: {} ({})", p.phase, timeline.join(" → "));
        if let Some(d) = st.live_since {
            println!("live since {d}: no further migration from {}", p.source_product);
        }
        match st.next_step {
            Some(next) if st.blocked_by.is_empty() => println!("next: {next} (nothing blocks it)"),
            Some(next) => {
                println!("next: {next}, blocked by:");
                for b in &st.blocked_by {
                    println!("  - {b}");
                }
            }
            None => {}
        }
        let r = p.retainer.summary();
        println!("retainer: {} of {} hours used, {} billable", r.used_hours, r.included_hours, r.billable_hours);
        Ok(0)
    }

    async fn plan_show(&self, key: &str) -> Result<u8> {
        let (_, p) = self.project(key).await?;
        let today = self.app.now().date();
        if self.json {
            out::json(&json!({
                "activities": p.plan.activities, "estimated_hours": p.plan.estimated(),
                "overdue": p.plan.overdue(today).map(|a| a.id).collect::<Vec<_>>(),
            }))?;
            return Ok(0);
        }
        let rows: Vec<_> = p
            .plan
            .activities
            .iter()
            .map(|a| {
                let late = if a.status.is_open() && a.due < today { " (overdue)" } else { "" };
                vec![
                    a.id.to_string(),
                    a.title.to_string(),
                    a.party.to_string(),
                    a.owner.as_ref().map_or_else(String::new, ToString::to_string),
                    a.hours.to_string(),
                    format!("{}{late}", a.due),
                    a.status.to_string(),
                ]
            })
            .collect();
        out::table(&["id", "activity", "party", "owner", "hours", "deadline", "status"], &rows);
        println!("estimated total: {} hours", p.plan.estimated());
        Ok(0)
    }

    async fn scope_show(&self, key: &str) -> Result<u8> {
        let (_, p) = self.project(key).await?;
        let s = &p.scope;
        if self.json {
            let entities: Vec<_> = s
                .catalogue
                .iter()
                .map(|e| json!({"name": e.name, "title": e.title, "included": s.includes(&e.name), "required": e.required, "not_migrated": e.not_migrated}))
                .collect();
            let options: Vec<_> = s.option_catalogue.iter().map(|o| json!({"name": o.name, "value": s.option(&o.name), "default": o.default, "description": o.description})).collect();
            out::json(&json!({"cutoff": s.cutoff, "entities": entities, "options": options}))?;
            return Ok(0);
        }
        let pack = self.app.packs().load(&p.pack)?;
        print!("{}", cutover_engine::scope::scope_document(&pack, &s.included, s.cutoff, &s.options));
        Ok(0)
    }

    async fn contract_show(&self, key: &str, kind: DocKind) -> Result<u8> {
        let (_, p) = self.project(key).await?;
        let doc = p.document(kind);
        let sigs = p.signature_status(kind);
        if self.json {
            let signatures: Vec<_> = sigs
                .iter()
                .map(|s| json!({
                    "party": s.party, "signed": s.signature.is_some(), "stale": s.stale,
                    "by": s.signature.as_ref().map(|x| &x.by), "name": s.signature.as_ref().map(|x| &x.name),
                    "document_hash": s.signature.as_ref().map(|x| &x.document_hash),
                    "at": s.signature.as_ref().map(|x| x.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()),
                }))
                .collect();
            out::json(&json!({"kind": kind, "hash": doc.hash, "markdown": doc.markdown, "signatures": signatures}))?;
            return Ok(0);
        }
        print!("{}", doc.markdown);
        println!();
        println!("---");
        println!("version (SHA-256): {}", doc.hash);
        for s in &sigs {
            match &s.signature {
                None => println!("{}: not signed", p.who(s.party)),
                Some(sig) if s.stale => println!(
                    "{}: signed by {} <{}> at {} on an OLDER version ({}…): stale, must sign again",
                    p.who(s.party),
                    sig.name,
                    sig.by,
                    sig.at.date(),
                    &sig.document_hash[..12]
                ),
                Some(sig) => println!("{}: signed by {} <{}> at {}", p.who(s.party), sig.name, sig.by, sig.at),
            }
        }
        Ok(0)
    }

    async fn retainer(&self, key: &str) -> Result<u8> {
        let (_, p) = self.project(key).await?;
        let s = p.retainer.summary();
        if self.json {
            out::json(&json!({
                "included_hours": s.included_hours, "used_hours": s.used_hours, "left_hours": s.left_hours,
                "billable_hours": s.billable_hours, "used_percent": s.used_percent, "warning": s.warning,
                "exhausted": s.exhausted, "entries": p.retainer.entries, "extras": p.retainer.extras,
            }))?;
            return Ok(0);
        }
        println!(
            "retainer: {} of {} hours used ({}%), {} left, {} billable",
            s.used_hours, s.included_hours, s.used_percent, s.left_hours, s.billable_hours
        );
        if s.exhausted {
            println!("warning: the retainer is used up; further time is billable");
        } else if s.warning {
            println!("warning: the retainer is running out");
        }
        let rows: Vec<_> = p
            .retainer
            .entries
            .iter()
            .map(|e| {
                vec![
                    e.date.to_string(),
                    e.activity.to_string(),
                    e.hours.to_string(),
                    e.by.to_string(),
                    e.note.clone().unwrap_or_default(),
                ]
            })
            .collect();
        if !rows.is_empty() {
            out::table(&["date", "activity", "hours", "by", "note"], &rows);
        }
        for x in &p.retainer.extras {
            println!("extra {} ({}): {}, offered separately", x.id, x.kind, x.description);
        }
        Ok(0)
    }

    async fn checklist_show(&self, key: &str) -> Result<u8> {
        let (_, p) = self.project(key).await?;
        let c = &p.checklist;
        if self.json {
            let acc: Vec<_> = PartyKind::BOTH
                .iter()
                .map(|k| {
                    json!({"party": k, "accepted": c.acceptance(*k).is_some(),
                                "stale": c.acceptance(*k).is_none() && c.acceptances.iter().any(|a| a.party == *k)})
                })
                .collect();
            out::json(&json!({"items": c.items, "acceptances": acc, "hash": c.content_hash()}))?;
            return Ok(0);
        }
        let rows: Vec<_> = c
            .items
            .iter()
            .map(|i| {
                vec![
                    i.id.clone(),
                    i.kind.to_string(),
                    i.status.to_string(),
                    i.title.to_string(),
                    i.note.clone().unwrap_or_default(),
                    i.evidence.join(" "),
                ]
            })
            .collect();
        out::table(&["id", "party", "status", "test", "note", "evidence"], &rows);
        for k in PartyKind::BOTH {
            let st = match c.acceptance(k) {
                Some(a) => format!("accepted by {} at {}", a.by, a.at),
                None if c.acceptances.iter().any(|a| a.party == k) => "acceptance stale (checklist changed)".into(),
                None => "not accepted".into(),
            };
            println!("{}: {st}", p.who(k));
        }
        Ok(0)
    }

    async fn migrate(&self, a: MigrateArgs) -> Result<u8> {
        let user = self.user().await?;
        let key = ProjectKey::parse(&a.key)?;
        let kind = if a.final_ { cutover_core::RunKind::Final } else { cutover_core::RunKind::First };
        let req = cutover_app::MigrateRequest {
            ack_overwrite: a.ack_overwrite,
            kind,
            dry_run: a.dry_run,
            reason: a.reason,
            progress: !self.json,
        };
        let done = self.app.migrate(&user, &key, req).await?;
        let p = self.app.project(&user, &key).await?.project;
        if self.json {
            out::json(&json!({"run": done.run, "phase": p.phase, "report": done.report}))?;
        } else {
            println!("{key}: run {} {}", done.run, cutover_app::summary(&done.report));
            crate::report::print_counts(&done.report);
            if let Some(f) = &done.final_report {
                crate::report::print_delta(f);
            }
            println!("{key}: phase is {}; full report: cutover report {key} --run {}", p.phase, done.run);
        }
        Ok(0)
    }

    async fn audit(&self, a: AuditArgs) -> Result<u8> {
        let user = self.user().await?;
        let key = a.key.as_deref().map(ProjectKey::parse).transpose()?;
        if a.verify {
            let (n, broken) = self.app.verify_audit(&user, key.as_ref()).await?;
            if self.json {
                out::json(&json!({"entries": n, "intact": broken.is_none(), "broken": broken}))?;
            } else if let Some(b) = &broken {
                println!("audit log BROKEN at entry {}: {}", b.seq, b.reason);
            } else {
                println!("audit log intact: {n} entries verified");
            }
            return Ok(if broken.is_some() { exit::INTEGRITY } else { 0 });
        }
        let entries = self.app.audit(&user, key.as_ref()).await?;
        if self.json {
            out::json(&entries)?;
            return Ok(0);
        }
        let rows: Vec<_> = entries
            .iter()
            .map(|e| {
                vec![
                    e.seq.to_string(),
                    e.at.clone(),
                    e.actor.clone(),
                    e.party.clone(),
                    e.action.clone(),
                    e.details.clone(),
                ]
            })
            .collect();
        out::table(&["#", "at", "who", "party", "action", "details"], &rows);
        Ok(0)
    }
}

fn project_json(p: &Project) -> serde_json::Value {
    let st = p.status();
    json!({
        "key": p.key, "name": p.name, "org": p.org, "pack": p.pack,
        "v1_url": p.v1_url.as_deref().map(mask_url), "v2_url": p.v2_url.as_deref().map(mask_url),
        "phase": st.phase, "phase_number": st.phase.number(), "next_step": st.next_step,
        "blocked_by": st.blocked_by.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "conditions": st.blocked_by, "live_since": st.live_since,
        "plan_date": p.plan_date, "cutoff": p.scope.cutoff,
        "retainer": p.retainer.summary(), "runs": p.runs,
    })
}

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        anyhow::bail!(DomainError::Invalid { field: "password", reason: "standard input gave no password".into() });
    }
    Ok(pw)
}
