//! The store suite: every test runs against SQLite and PostgreSQL (PostgreSQL is required under CI).

#![allow(clippy::unwrap_used)]

use cutover_core::audit::verify;
use cutover_core::project::NewProject;
use cutover_core::template::{ChecklistTemplateItem, EntityInfo, ProjectTemplate};
use cutover_core::{Command, Ctx, Email, OrgName, Party, PartyKind, Project, ProjectKey, Role, Text, User};
use cutover_store::{AuditActor, Store, StoreError};
use cutover_testkit::TestDb;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-24 10:00 UTC);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Runs `f` once per backend with a fresh store.
fn each_backend<F, Fut>(f: F)
where
    F: Fn(Store, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for db in TestDb::all() {
        let backend = db.backend();
        eprintln!("store test on {backend}");
        rt().block_on(async {
            let store = Store::open(&db.url).await.unwrap_or_else(|e| panic!("{backend}: {e}"));
            f(store.clone(), db.url.clone()).await;
            store.close().await;
        });
    }
}

fn vendor_admin() -> User {
    User {
        email: Email::parse("vera@vendor.no").unwrap(),
        name: Text::parse("Vera").unwrap(),
        party: Party::Vendor,
        role: Role::Admin,
        created_at: NOW,
    }
}

fn project(key: &str, org: &str) -> (Project, Vec<cutover_core::Event>) {
    let t = ProjectTemplate {
        pack: "omikai".into(),
        source_product: "Omikai 1".into(),
        target_product: "Omikai 2".into(),
        entities: vec![EntityInfo {
            name: "customer".into(),
            title: "Customers".into(),
            default_included: true,
            required: true,
            not_migrated: None,
        }],
        options: vec![],
        activities: vec![],
        checklist: vec![ChecklistTemplateItem { title: "Counts".into(), kind: PartyKind::Vendor, check: None }],
    };
    let va = vendor_admin();
    let d = Project::create(
        NewProject {
            key: ProjectKey::parse(key).unwrap(),
            name: Text::parse("P").unwrap(),
            org: OrgName::parse(org).unwrap(),
            v1_url: None,
            v2_url: None,
            template: t,
        },
        Ctx { actor: &va, now: NOW },
    )
    .unwrap();
    (d.project, d.events)
}

#[test]
fn opening_twice_keeps_data_and_schema() {
    each_backend(|store, url| async move {
        store.add_user(&vendor_admin(), None, &AuditActor::system()).await.unwrap();
        let again = Store::open(&url).await.unwrap();
        assert_eq!(again.user_count().await.unwrap(), 1);
        again.close().await;
    });
}

#[test]
fn a_newer_schema_is_refused() {
    each_backend(|store, url| async move {
        store
            .execute_raw("INSERT INTO cutover_schema (version, name, applied_at) VALUES (99, 'future', 'x')")
            .await
            .unwrap();
        match Store::open(&url).await {
            Err(StoreError::TooNew { found: 99, .. }) => {}
            other => panic!("expected TooNew, got {other:?}"),
        }
    });
}

#[test]
fn users_roundtrip_and_duplicates_are_refused() {
    each_backend(|store, _| async move {
        let u = vendor_admin();
        store.add_user(&u, Some("$argon2id$fake"), &AuditActor::system()).await.unwrap();
        let back = store.user(&u.email).await.unwrap().unwrap();
        assert_eq!(back.user, u);
        assert_eq!(back.password_hash.as_deref(), Some("$argon2id$fake"));
        let c = User {
            email: Email::parse("cora@acme.no").unwrap(),
            party: Party::Customer { org: OrgName::parse("Acme").unwrap() },
            ..u.clone()
        };
        store.add_user(&c, None, &AuditActor::of(&u)).await.unwrap();
        assert_eq!(store.users().await.unwrap()[0].user, c);
        assert!(matches!(store.add_user(&u, None, &AuditActor::system()).await, Err(StoreError::Exists(_))));
        let chain = store.audit("").await.unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1].actor, "vera@vendor.no");
        verify(&chain).unwrap();
    });
}

#[test]
fn projects_save_with_optimistic_concurrency() {
    each_backend(|store, _| async move {
        let (p, ev) = project("acme", "Acme");
        store.create_project(&p, &ev, &AuditActor::of(&vendor_admin())).await.unwrap();
        assert!(matches!(store.create_project(&p, &ev, &AuditActor::system()).await, Err(StoreError::Exists(_))));
        let loaded = store.project(&p.key).await.unwrap().unwrap();
        assert_eq!(loaded.project, p);
        assert_eq!(loaded.version, 1);
        let va = vendor_admin();
        let d = loaded
            .project
            .handle(Command::ChecklistAdd { title: Text::parse("Users log in").unwrap() }, Ctx { actor: &va, now: NOW })
            .unwrap();
        let v2 = store.save_project(&d.project, 1, &d.events, &AuditActor::of(&va), NOW).await.unwrap();
        assert_eq!(v2, 2);
        // A writer holding the old version loses, and nothing of its change is kept.
        let err = store.save_project(&p, 1, &d.events, &AuditActor::of(&va), NOW).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        let now = store.project(&p.key).await.unwrap().unwrap();
        assert_eq!(now.project.checklist.items.len(), 2);
        assert_eq!(store.audit("acme").await.unwrap().len(), 2);
    });
}

#[test]
fn projects_are_listed_per_organisation() {
    each_backend(|store, _| async move {
        for (k, o) in [("b", "Acme"), ("a", "Acme"), ("c", "Other")] {
            let (p, ev) = project(k, o);
            store.create_project(&p, &ev, &AuditActor::system()).await.unwrap();
        }
        let keys =
            |v: Vec<cutover_store::StoredProject>| v.into_iter().map(|s| s.project.key.to_string()).collect::<Vec<_>>();
        assert_eq!(keys(store.projects(None).await.unwrap()), ["a", "b", "c"]);
        assert_eq!(keys(store.projects(Some(&OrgName::parse("Acme").unwrap())).await.unwrap()), ["a", "b"]);
    });
}

#[test]
fn tampering_with_the_audit_log_is_detected() {
    each_backend(|store, _| async move {
        let (p, ev) = project("acme", "Acme");
        let va = vendor_admin();
        store.create_project(&p, &ev, &AuditActor::of(&va)).await.unwrap();
        let mut cur = p;
        for i in 0..3 {
            let d = cur
                .handle(
                    Command::ChecklistAdd { title: Text::parse(format!("item {i}")).unwrap() },
                    Ctx { actor: &va, now: NOW },
                )
                .unwrap();
            store.save_project(&d.project, i + 1, &d.events, &AuditActor::of(&va), NOW).await.unwrap();
            cur = d.project;
        }
        verify(&store.audit("acme").await.unwrap()).unwrap();
        store
            .execute_raw("UPDATE audit_log SET actor = 'mallory@evil.no' WHERE chain = 'acme' AND seq = 3")
            .await
            .unwrap();
        let b = verify(&store.audit("acme").await.unwrap()).unwrap_err();
        assert_eq!(b.seq, 3);
        assert!(b.reason.contains("altered"), "{}", b.reason);
    });
}

#[test]
fn corrupt_state_is_reported_not_panicked() {
    each_backend(|store, _| async move {
        let (p, ev) = project("acme", "Acme");
        store.create_project(&p, &ev, &AuditActor::system()).await.unwrap();
        store.execute_raw("UPDATE projects SET state = '{\"broken\": true}' WHERE key = 'acme'").await.unwrap();
        let err = store.project(&p.key).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    });
}

#[test]
fn runs_and_ledgers_roundtrip_with_filters() {
    each_backend(|store, _| async move {
        let run = cutover_store::StoredRun {
            project: "acme".into(),
            run: 1,
            kind: "first".into(),
            dry_run: false,
            started_by: "vera@vendor.no".into(),
            started_at: "2026-11-24T10:00:00Z".into(),
            finished_at: None,
            outcome: "running".into(),
            report: None,
            error: None,
        };
        store.insert_run(&run).await.unwrap();
        let rows: Vec<cutover_store::LedgerRow> = (0..250)
            .map(|i| cutover_store::LedgerRow {
                entity: if i % 2 == 0 { "customer".into() } else { "contact".into() },
                v1_key: i.to_string(),
                legacy_ref: format!("CUST:{i}"),
                bucket: if i % 5 == 0 { "rejected".into() } else { "excluded".into() },
                reason: if i % 5 == 0 { "orphan".into() } else { "deleted_in_v1".into() },
                message: "m".into(),
                original: format!("{{\"CUSTNO\":{i},\"NAME\":\"O'Brien \\\"x\\\"\"}}"),
            })
            .collect();
        store.append_ledger("acme", 1, 0, rows[..120].to_vec()).await.unwrap();
        store.append_ledger("acme", 1, 120, rows[120..].to_vec()).await.unwrap();
        store.finish_run("acme", 1, "completed", "2026-11-24T10:01:00Z", Some("{}"), None).await.unwrap();
        let back = store.run("acme", 1).await.unwrap().unwrap();
        assert_eq!((back.outcome.as_str(), back.report.as_deref()), ("completed", Some("{}")));
        let all = store.ledger("acme", 1, &cutover_store::LedgerFilter::default()).await.unwrap();
        assert_eq!(all.len(), 250);
        assert_eq!(all[7], rows[7]);
        let f = cutover_store::LedgerFilter {
            entity: Some("customer".into()),
            reason: Some("orphan".into()),
            ..Default::default()
        };
        assert_eq!(store.ledger("acme", 1, &f).await.unwrap().len(), 25);
        // Paging: a page of the filtered rows, in order, and the count of all of them.
        let page = cutover_store::LedgerFilter { limit: Some(10), offset: 20, ..f.clone() };
        let rows_page = store.ledger("acme", 1, &page).await.unwrap();
        assert_eq!(rows_page, store.ledger("acme", 1, &f).await.unwrap()[20..25].to_vec());
        assert_eq!(store.ledger_count("acme", 1, &page).await.unwrap(), 25);
        let f = cutover_store::LedgerFilter { buckets: vec!["rejected".into()], ..Default::default() };
        assert_eq!(store.ledger("acme", 1, &f).await.unwrap().len(), 50);
        assert_eq!(store.runs("acme").await.unwrap().len(), 1);
    });
}
