//! The portal's test world: five users of three parties, a project in the parallel phase with a
//! real first migration and verification behind it, and another organisation's project.

use std::path::Path;

use cutover_app::{App, MigrateRequest, NewUser, Packs, ProjectSpec};
use cutover_core::documents::DocKind;
use cutover_core::{Command, Email, OrgName, PartyKind, ProjectKey, Role, RunKind, Text};

/// Every user's password.
pub const PW: &str = "correct horse battery";

/// The users, from least to most privileged for the acme project: customer member, customer admin,
/// another organisation's admin, vendor member, vendor admin.
pub const CARL: &str = "carl@acme.no";
pub const CORA: &str = "cora@acme.no";
pub const OTTO: &str = "otto@other.no";
pub const VIDAR: &str = "vidar@vendor.no";
pub const VERA: &str = "vera@vendor.no";

fn user(email: &str, party: PartyKind, org: Option<&str>, role: Role) -> NewUser {
    NewUser {
        email: Email::parse(email).unwrap(),
        name: Text::parse(email.split('@').next().unwrap()).unwrap(),
        party,
        org: org.map(|o| OrgName::parse(o).unwrap()),
        role,
        password: Some(PW.into()),
    }
}

/// Opens the store at `db` and builds the world; v1 and v2 are SQLite files in `dir`.
/// `acme` is in the parallel phase after run 1 and verification 1; `other` is in the plan phase.
pub async fn world(db: &str, dir: &Path) -> App {
    let a = App::open(db, Packs::Builtin).await.unwrap().with_recovery_dir(dir.join("recovery"));
    let v = a.add_user(None, user(VERA, PartyKind::Vendor, None, Role::Admin)).await.unwrap();
    a.add_user(Some(&v), user(VIDAR, PartyKind::Vendor, None, Role::Member)).await.unwrap();
    let cora = a.add_user(Some(&v), user(CORA, PartyKind::Customer, Some("Acme"), Role::Admin)).await.unwrap();
    a.add_user(Some(&v), user(CARL, PartyKind::Customer, Some("Acme"), Role::Member)).await.unwrap();
    a.add_user(Some(&v), user(OTTO, PartyKind::Customer, Some("Other"), Role::Admin)).await.unwrap();
    let v1 = dir.join("acme-v1.db");
    cutover_demo::generate(&v1, cutover_demo::Spec { customers: 20, seed: 3, cutoff: cutover_demo::DEFAULT_CUTOFF })
        .unwrap();
    for (k, org, v1_url, v2_url) in [
        ("acme", "Acme", Some(v1.display().to_string()), Some(dir.join("acme-v2.db").display().to_string())),
        ("other", "Other", Some("postgres://u:secret@h/v1".to_owned()), None),
    ] {
        let spec = ProjectSpec {
            key: ProjectKey::parse(k).unwrap(),
            name: Text::parse(format!("{org} to Omikai 2")).unwrap(),
            org: OrgName::parse(org).unwrap(),
            pack: "omikai".into(),
            v1_url,
            v2_url,
        };
        a.create_project(&v, spec).await.unwrap();
    }
    let acme = ProjectKey::parse("acme").unwrap();
    let scope = cutover_core::plan::ScopeChange { cutoff: Some(cutover_demo::DEFAULT_CUTOFF), ..Default::default() };
    a.execute(&v, &acme, Command::SetScope(scope)).await.unwrap();
    for kind in [DocKind::Migration, DocKind::License] {
        a.execute(&v, &acme, Command::Sign { kind, party: None }).await.unwrap();
        a.execute(&cora, &acme, Command::Sign { kind, party: None }).await.unwrap();
    }
    let today = a.now().date();
    for (days_ago, hours, note) in [(9, "3", "kick-off"), (6, "2.5", "scope and cut-off"), (2, "4", "trial migration")]
    {
        let cmd = Command::LogTime {
            activity: cutover_core::plan::ActivityId::parse("A1").unwrap(),
            hours: cutover_core::Hours::parse(hours).unwrap(),
            date: today - time::Duration::days(days_ago),
            note: Some(note.into()),
        };
        a.execute(&v, &acme, cmd).await.unwrap();
    }
    let req =
        MigrateRequest { kind: RunKind::First, dry_run: false, reason: None, progress: false, ack_overwrite: None };
    a.migrate(&v, &acme, req).await.unwrap();
    a.verify(&v, &acme, cutover_engine::verify::VerifyOptions { entity: None, sample: 2 }).await.unwrap();
    a
}
