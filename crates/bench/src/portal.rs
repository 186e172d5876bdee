//! Seeds a store for the portal benchmark: a vendor, ten customer organisations and many
//! projects in different states, all made through the application services like real work.

use anyhow::Result;
use cutover_app::{App, NewUser, Packs, ProjectSpec};
use cutover_core::documents::DocKind;
use cutover_core::{Command, Email, Hours, OrgName, PartyKind, ProjectKey, Role, Text};

/// Password of every seeded user.
pub const PASSWORD: &str = "bench-password-1";

/// Creates `projects` projects in the store at `url` and prints the logins.
pub fn seed(url: &str, projects: u32) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let app = App::open(url, Packs::Builtin).await?;
        let user = |email: &str, party, org: Option<&OrgName>| -> Result<NewUser> {
            Ok(NewUser {
                email: Email::parse(email)?,
                name: Text::parse(email)?,
                party,
                org: org.cloned(),
                role: Role::Admin,
                password: Some(PASSWORD.into()),
            })
        };
        let vendor = app.add_user(None, user("vera@vendor.example", PartyKind::Vendor, None)?).await?;
        let mut customers = Vec::new();
        for o in 0..10 {
            let org = OrgName::parse(format!("Customer {o:02}"))?;
            let u = app
                .add_user(Some(&vendor), user(&format!("admin@c{o:02}.example"), PartyKind::Customer, Some(&org))?)
                .await?;
            customers.push((org, u));
        }
        let today = app.now().date();
        for i in 0..projects {
            let (org, customer) = &customers[(i % 10) as usize];
            let key = ProjectKey::parse(format!("p{i:04}"))?;
            let spec = ProjectSpec {
                key: key.clone(),
                name: Text::parse(format!("Project {i:04}"))?,
                org: org.clone(),
                pack: "omikai".into(),
                v1_url: Some(format!("postgres://omikai:secret@db{}/v1", i % 7)),
                v2_url: Some(format!("postgres://omikai:secret@db{}/v2_{i}", i % 7)),
            };
            app.create_project(&vendor, spec).await?;
            // A mix of states: some contracts signed, some time logged, some with extra checklist items.
            if i % 2 == 0 {
                for kind in [DocKind::Migration, DocKind::License] {
                    app.execute(&vendor, &key, Command::Sign { kind, party: None }).await?;
                    app.execute(customer, &key, Command::Sign { kind, party: None }).await?;
                }
            }
            for d in 0..(i % 5) {
                let cmd = Command::LogTime {
                    activity: cutover_core::plan::ActivityId::parse("A1")?,
                    hours: Hours::parse(&format!("{}", 2 + d * 2))?,
                    date: today - time::Duration::days(i64::from(30 - d)),
                    note: Some("work".into()),
                };
                app.execute(&vendor, &key, cmd).await?;
            }
            if i % 3 == 0 {
                app.execute(
                    customer,
                    &key,
                    Command::ChecklistAdd { title: Text::parse("Invoices print on our paper")? },
                )
                .await?;
            }
        }
        app.store().close().await;
        println!("seeded {projects} projects; logins vera@vendor.example and admin@c00.example, password {PASSWORD}");
        Ok(())
    })
}
