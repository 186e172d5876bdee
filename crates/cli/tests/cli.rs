//! The `cutover` binary driven as an operator would, on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use cutover_testkit::{TestDb, typed_in_contact};
use serde_json::Value;

struct Env {
    db: TestDb,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
}

impl Env {
    fn new(db: TestDb) -> Env {
        let e = Env { db };
        e.run(None, &["init", "--email", "vera@vendor.no", "--name", "Vera Vendor"]).ok();
        e.vendor(&["user", "add", "--email", "vidar@vendor.no", "--name", "Vidar", "--party", "vendor"]).ok();
        for (email, org, role) in [
            ("cora@acme.no", "Acme Print AS", "admin"),
            ("carl@acme.no", "Acme Print AS", "member"),
            ("otto@other.no", "Other Trykk AS", "admin"),
        ] {
            e.vendor(&[
                "user", "add", "--email", email, "--name", "N", "--party", "customer", "--org", org, "--role", role,
            ])
            .ok();
        }
        e.vendor(&["project", "create", "acme", "--org", "Acme Print AS", "--name", "Acme to Omikai 2"]).ok();
        e
    }

    fn run_stdin(&self, actor: Option<&str>, args: &[&str], stdin: Option<&str>) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
        cmd.args(args).env("CUTOVER_DB", &self.db.url).env_remove("CUTOVER_USER").env_remove("CUTOVER_PACKS");
        if let Some(a) = actor {
            cmd.env("CUTOVER_USER", a);
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn cutover");
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into(),
            stderr: String::from_utf8_lossy(&stderr).into(),
        }
    }
    fn run(&self, actor: Option<&str>, args: &[&str]) -> Run {
        self.run_stdin(actor, args, None)
    }
    fn vendor(&self, args: &[&str]) -> Run {
        self.run(Some("vera@vendor.no"), args)
    }
    fn customer(&self, args: &[&str]) -> Run {
        self.run(Some("cora@acme.no"), args)
    }
}

fn each_backend(f: impl Fn(&Env)) {
    for db in TestDb::all() {
        eprintln!("cli test on {}", db.backend());
        f(&Env::new(db));
    }
}

fn blocked_by(e: &Env) -> Vec<String> {
    let j = e.vendor(&["project", "show", "acme", "--json"]).ok().json();
    j["blocked_by"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

#[test]
fn gate_lists_every_missing_signature_until_both_parties_sign() {
    each_backend(|e| {
        let j = e.vendor(&["project", "show", "acme", "--json"]).ok().json();
        assert_eq!(j["phase"], "plan");
        assert_eq!(j["next_step"], "first migration");
        assert_eq!(
            blocked_by(e),
            [
                "the migration contract is not signed by the vendor",
                "the migration contract is not signed by the customer (Acme Print AS)",
                "the license contract is not signed by the vendor",
                "the license contract is not signed by the customer (Acme Print AS)",
            ]
        );
        for kind in ["migration", "license"] {
            e.vendor(&["contract", "sign", "acme", "--kind", kind]).ok();
            e.customer(&["contract", "sign", "acme", "--kind", kind]).ok();
        }
        assert!(blocked_by(e).is_empty());
        let c = e.customer(&["contract", "show", "acme", "--kind", "migration", "--json"]).ok().json();
        let sigs = c["signatures"].as_array().unwrap();
        assert_eq!(sigs.len(), 2);
        assert!(sigs.iter().all(|s| s["signed"] == true && s["stale"] == false && s["document_hash"] == c["hash"]));
        assert_eq!(sigs[1]["by"], "cora@acme.no");
        // Signing the same version twice is refused, not recorded twice.
        let r = e.customer(&["contract", "sign", "acme", "--kind", "license"]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains("already signed"), "{}", r.stderr);
    });
}

#[test]
fn plan_change_after_signing_makes_signatures_stale() {
    each_backend(|e| {
        for kind in ["migration", "license"] {
            e.vendor(&["contract", "sign", "acme", "--kind", kind]).ok();
            e.customer(&["contract", "sign", "acme", "--kind", kind]).ok();
        }
        let before = e.vendor(&["contract", "show", "acme", "--kind", "migration", "--json"]).ok().json();
        e.vendor(&[
            "plan",
            "add",
            "acme",
            "--title",
            "Clean duplicate customers",
            "--party",
            "customer",
            "--hours",
            "4",
            "--due",
            "2027-01-15",
            "--owner",
            "Cora",
        ])
        .ok();
        let after = e.vendor(&["contract", "show", "acme", "--kind", "migration", "--json"]).ok().json();
        assert_ne!(before["hash"], after["hash"]);
        assert!(after["markdown"].as_str().unwrap().contains("Clean duplicate customers"));
        assert!(after["signatures"].as_array().unwrap().iter().all(|s| s["stale"] == true));
        assert_eq!(
            blocked_by(e),
            [
                "the signature of the vendor on the migration contract is stale: the document changed after it was signed",
                "the signature of the customer (Acme Print AS) on the migration contract is stale: the document changed after it was signed",
            ]
        );
        // The scope is part of the contract too.
        e.vendor(&["contract", "sign", "acme", "--kind", "migration"]).ok();
        e.customer(&["contract", "sign", "acme", "--kind", "migration"]).ok();
        assert!(blocked_by(e).is_empty());
        e.vendor(&["scope", "set", "acme", "--exclude", "document", "--cutoff", "2018-01-01"]).ok();
        assert_eq!(blocked_by(e).len(), 2);
        let s = e.vendor(&["scope", "show", "acme", "--json"]).ok().json();
        assert_eq!(s["cutoff"], "2018-01-01");
        let doc = s["entities"].as_array().unwrap().iter().find(|x| x["name"] == "document").unwrap().clone();
        assert_eq!(doc["included"], false);
    });
}

#[test]
fn parties_sign_only_for_themselves_and_organisations_stay_apart() {
    each_backend(|e| {
        let r = e.customer(&["contract", "sign", "acme", "--kind", "migration", "--party", "vendor"]);
        assert_eq!(r.code, 4);
        assert!(r.stderr.contains("cannot sign for the vendor"), "{}", r.stderr);
        let r = e.vendor(&["contract", "sign", "acme", "--kind", "migration", "--party", "customer"]);
        assert_eq!(r.code, 4);
        let r = e.run(Some("carl@acme.no"), &["contract", "sign", "acme", "--kind", "migration"]);
        assert_eq!(r.code, 4);
        assert!(r.stderr.contains("only admins may sign"), "{}", r.stderr);
        // Another organisation's admin cannot see, let alone sign.
        for args in
            [&["project", "show", "acme"][..], &["contract", "sign", "acme", "--kind", "migration"], &["audit", "acme"]]
        {
            let r = e.run(Some("otto@other.no"), args);
            assert_eq!(r.code, 4, "{args:?}: {}", r.stderr);
            assert!(r.stderr.contains("project 'acme' not found"), "{}", r.stderr);
        }
        let list = e.run(Some("otto@other.no"), &["project", "list", "--json"]).ok().json();
        assert_eq!(list.as_array().unwrap().len(), 0);
        assert_eq!(e.customer(&["project", "list", "--json"]).ok().json().as_array().unwrap().len(), 1);
        // Customers cannot do the vendor's work or manage other organisations' users.
        assert_eq!(
            e.customer(&[
                "plan",
                "add",
                "acme",
                "--title",
                "x",
                "--party",
                "vendor",
                "--hours",
                "1",
                "--due",
                "2027-01-01"
            ])
            .code,
            4
        );
        assert_eq!(e.customer(&["project", "create", "x", "--org", "Acme Print AS", "--name", "x"]).code, 4);
        let r = e.customer(&[
            "user",
            "add",
            "--email",
            "eve@other.no",
            "--name",
            "Eve",
            "--party",
            "customer",
            "--org",
            "Other Trykk AS",
        ]);
        assert_eq!(r.code, 4, "{}", r.stderr);
        e.customer(&[
            "user",
            "add",
            "--email",
            "cleo@acme.no",
            "--name",
            "Cleo",
            "--party",
            "customer",
            "--org",
            "Acme Print AS",
        ])
        .ok();
        assert_eq!(
            e.run(
                Some("carl@acme.no"),
                &[
                    "user",
                    "add",
                    "--email",
                    "x@acme.no",
                    "--name",
                    "X",
                    "--party",
                    "customer",
                    "--org",
                    "Acme Print AS"
                ]
            )
            .code,
            4
        );
    });
}

#[test]
fn editing_an_audit_row_breaks_verification() {
    each_backend(|e| {
        e.vendor(&["time", "log", "acme", "--activity", "A1", "--hours", "2"]).ok();
        e.customer(&["contract", "sign", "acme", "--kind", "license"]).ok();
        let r = e.vendor(&["audit", "acme", "--verify", "--json"]).ok().json();
        assert_eq!((r["entries"].as_u64(), r["intact"].as_bool()), (Some(3), Some(true)));
        let url = e.db.url.clone();
        cutover_testkit::block_on(async move {
            let s = cutover_store::Store::open(&url).await.unwrap();
            let n = s.execute_raw("UPDATE audit_log SET details = replace(details, '\"hours\":2.0', '\"hours\":0.5') WHERE chain = 'acme' AND seq = 2").await.unwrap();
            assert_eq!(n, 1);
            s.close().await;
        });
        let r = e.vendor(&["audit", "acme", "--verify"]);
        assert_eq!(r.code, 5, "{}", r.stdout);
        assert!(r.stdout.contains("BROKEN at entry 2"), "{}", r.stdout);
        // The system chain (users) is separate and still intact.
        e.vendor(&["audit", "--verify"]).ok();
    });
}

#[test]
fn retainer_counts_used_left_and_billable() {
    each_backend(|e| {
        e.vendor(&[
            "time",
            "log",
            "acme",
            "--activity",
            "A1",
            "--hours",
            "12.5",
            "--note",
            "kick-off",
            "--date",
            "2026-11-20",
        ])
        .ok();
        let r = e.vendor(&["time", "log", "acme", "--activity", "A3", "--hours", "9"]).ok();
        assert!(r.stdout.contains("retainer exhausted"), "{}", r.stdout);
        let j = e.customer(&["retainer", "acme", "--json"]).ok().json();
        assert_eq!(j["included_hours"], 20.0);
        assert_eq!(j["used_hours"], 21.5);
        assert_eq!(j["billable_hours"], 1.5);
        assert_eq!(j["left_hours"], 0.0);
        assert_eq!(j["entries"].as_array().unwrap().len(), 2);
        e.vendor(&["extra", "add", "acme", "--kind", "training", "--description", "Two days of Omikai 2 training"])
            .ok();
        let j = e.vendor(&["retainer", "acme", "--json"]).ok().json();
        assert_eq!(j["extras"][0]["kind"], "training");
        assert_eq!(j["used_hours"], 21.5, "extras are outside the retainer");
        assert_eq!(e.customer(&["time", "log", "acme", "--activity", "A1", "--hours", "1"]).code, 4);
    });
}

#[test]
fn checklist_commands_follow_the_phase_and_party() {
    each_backend(|e| {
        let j = e.vendor(&["checklist", "show", "acme", "--json"]).ok().json();
        let items = j["items"].as_array().unwrap();
        assert_eq!(items.len(), 10);
        assert_eq!(items.iter().filter(|i| i["kind"] == "vendor").count(), 6);
        assert_eq!(items[1]["check"], "row_level");
        e.customer(&["checklist", "add", "acme", "--title", "Price of a 4+4 brochure matches v1"]).ok();
        let j = e.vendor(&["checklist", "show", "acme", "--json"]).ok().json();
        let added = j["items"].as_array().unwrap().last().unwrap().clone();
        assert_eq!((added["id"].as_str(), added["kind"].as_str()), (Some("C5"), Some("customer")));
        let r = e.customer(&["checklist", "set", "acme", "C5", "--status", "passed"]);
        assert_eq!(r.code, 3);
        assert!(r.stderr.contains("parallel phase"), "{}", r.stderr);
        let r = e.customer(&["checklist", "accept", "acme"]);
        assert_eq!(r.code, 3);
    });
}

#[test]
fn bad_input_is_explained_with_exit_2_and_changes_nothing() {
    each_backend(|e| {
        let cases: &[(&[&str], &str)] = &[
            (
                &["plan", "add", "acme", "--title", "x", "--party", "vendor", "--hours", "-1", "--due", "2027-01-01"],
                "invalid hours",
            ),
            (
                &["plan", "add", "acme", "--title", "x", "--party", "vendor", "--hours", "1", "--due", "31.02.2027"],
                "not a date of the form YYYY-MM-DD",
            ),
            (
                &["plan", "add", "acme", "--title", "x", "--party", "vendr", "--hours", "1", "--due", "2027-01-01"],
                "'vendr' is neither",
            ),
            (&["scope", "set", "acme", "--include", "layout"], "not migrated"),
            (&["scope", "set", "acme", "--exclude", "customer"], "depend"),
            (&["scope", "set", "acme", "--option", "merge_duplicate_customers=maybe"], "allowed: yes, no"),
            (&["scope", "set", "acme"], "nothing to change"),
            (&["contract", "show", "acme", "--kind", "lease"], "not one of migration, license, go-live"),
            (&["project", "create", "Bad Key", "--org", "A", "--name", "x"], "invalid project key"),
            (&["project", "create", "acme", "--org", "A", "--name", "x"], "already exists"),
            (&["project", "create", "x", "--org", "A", "--name", "x", "--pack", "sap"], "built-in packs: omikai"),
        ];
        let before = e.vendor(&["audit", "acme", "--json"]).ok().json().as_array().unwrap().len();
        for (args, msg) in cases {
            let r = e.vendor(args);
            assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
            assert!(r.stderr.contains(msg), "{args:?}: {}", r.stderr);
        }
        assert_eq!(e.vendor(&["audit", "acme", "--json"]).ok().json().as_array().unwrap().len(), before);
        let r = e.run(None, &["project", "list"]);
        assert_eq!(r.code, 4);
        assert!(r.stderr.contains("--as EMAIL"), "{}", r.stderr);
        let r = e.run(Some("nobody@x.no"), &["project", "list"]);
        assert_eq!(r.code, 4);
        assert!(r.stderr.contains("unknown user 'nobody@x.no'"), "{}", r.stderr);
        let r = e.vendor(&["project", "show", "nope", "--json"]);
        assert_eq!(r.code, 4);
        assert_eq!(r.json()["error"]["code"], "not_found");
    });
}

#[test]
fn first_user_must_be_a_vendor_admin_and_passwords_are_hashed() {
    let db = TestDb::sqlite();
    let e = Env { db };
    let r =
        e.run(None, &["user", "add", "--email", "c@acme.no", "--name", "C", "--party", "customer", "--org", "Acme"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    e.run_stdin(
        None,
        &[
            "user",
            "add",
            "--email",
            "vera@vendor.no",
            "--name",
            "Vera",
            "--party",
            "vendor",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    )
    .ok();
    // Without --as, a second user is refused: only the bootstrap may go without an actor.
    let r = e.run(None, &["user", "add", "--email", "x@vendor.no", "--name", "X", "--party", "vendor"]);
    assert_eq!(r.code, 4);
    let r = e.run_stdin(
        Some("vera@vendor.no"),
        &[
            "user",
            "add",
            "--email",
            "c@acme.no",
            "--name",
            "C",
            "--party",
            "customer",
            "--org",
            "Acme",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("at least 10 characters"), "{}", r.stderr);
    let raw = std::fs::read(&e.db.url).unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains("correct horse"), "clear password stored");
    assert!(String::from_utf8_lossy(&raw).contains("$argon2id$"));
}

// ---------------------------------------------------------------- migrations through the CLI

/// A project `shop` whose v1 is generated demo data, with the manifest the generator wrote.
fn migration_env(db: TestDb, v2_url: Option<String>) -> (Env, tempfile::TempDir, Value) {
    let e = Env::new(db);
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1.db");
    e.run(None, &["demo-data", "--customers", "120", "--seed", "5", "--out", v1.to_str().unwrap()]).ok();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("v1.db.manifest.json")).unwrap()).unwrap();
    let v2 = v2_url.unwrap_or_else(|| dir.path().join("v2.db").display().to_string());
    create_shop(&e, v1.to_str().unwrap(), &v2, manifest["cutoff"].as_str().unwrap());
    (e, dir, manifest)
}

/// Project `shop` on these v1 and v2, with this history cut-off.
fn create_shop(e: &Env, v1: &str, v2: &str, cutoff: &str) {
    let args = ["project", "create", "shop", "--org", "Acme Print AS", "--name", "Shop", "--v1", v1, "--v2", v2];
    e.vendor(&args).ok();
    e.vendor(&["scope", "set", "shop", "--cutoff", cutoff]).ok();
}

fn sign_contracts(e: &Env, key: &str) {
    for kind in ["migration", "license"] {
        e.vendor(&["contract", "sign", key, "--kind", kind]).ok();
        e.customer(&["contract", "sign", key, "--kind", kind]).ok();
    }
}

fn assert_report_matches(report: &Value, manifest: &Value) {
    for ent in report["report"]["entities"].as_array().unwrap() {
        let name = ent["entity"].as_str().unwrap();
        let exp = &manifest["entities"][name];
        assert_eq!(ent["read"], exp["read"], "{name} read");
        let outcomes = exp["outcomes"].as_object().unwrap();
        for (k, v) in outcomes.iter().filter(|(k, _)| *k != "migrated") {
            assert_eq!(ent["reasons"][k], *v, "{name} {k}");
        }
        let expected_migrated: u64 = outcomes
            .iter()
            .filter(|(k, _)| *k == "migrated" || k.starts_with("warned:"))
            .map(|(_, v)| v.as_u64().unwrap())
            .sum();
        assert_eq!(ent["migrated"].as_u64().unwrap(), expected_migrated, "{name} migrated");
    }
}

#[test]
fn first_migration_is_gated_and_reports_every_record() {
    let (e, dir, manifest) = migration_env(TestDb::sqlite(), None);
    let r = e.vendor(&["migrate", "shop", "--first"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("first migration refused: the migration contract is not signed by the vendor"),
        "{}",
        r.stderr
    );
    // A dry run needs no signatures and writes nothing.
    let dry = e.vendor(&["migrate", "shop", "--first", "--dry-run", "--json"]).ok().json();
    assert_eq!(dry["phase"], "plan");
    assert!(!dir.path().join("v2.db").exists());
    assert_eq!(e.customer(&["migrate", "shop", "--first", "--dry-run"]).code, 4);
    sign_contracts(&e, "shop");
    let run = e.vendor(&["migrate", "shop", "--first", "--json"]).ok().json();
    assert_eq!((run["run"].as_u64(), run["phase"].as_str()), (Some(2), Some("parallel")));
    let report = e.customer(&["report", "shop", "--format", "json"]).ok().json();
    assert_eq!(report["outcome"], "completed");
    assert_report_matches(&report, &manifest);
    assert_report_matches(&e.vendor(&["report", "shop", "--run", "1", "--json"]).ok().json(), &manifest);
    // The CSV lists every excluded or rejected record with its original values.
    let csv = e.customer(&["report", "shop", "--format", "csv"]).ok().stdout;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "entity,legacy_ref,key,bucket,reason,message,original");
    let t = &report["report"]["entities"].as_array().unwrap();
    let not_migrated: u64 = t.iter().map(|x| x["excluded"].as_u64().unwrap() + x["rejected"].as_u64().unwrap()).sum();
    assert_eq!(lines.len() as u64 - 1, not_migrated);
    let layout = lines.iter().find(|l| l.starts_with("layout,LAYOUT:1,")).unwrap();
    assert!(layout.contains("not_supported_in_v2") && layout.contains("Faktura 1"), "{layout}");
    let filtered =
        e.vendor(&["report", "shop", "--format", "csv", "--entity", "webhook", "--reason", "insecure_url"]).ok().stdout;
    assert_eq!(filtered.lines().count(), 3, "{filtered}");
    assert!(filtered.contains("http://intranett.local/order-done"));
    // The v2 account exists with its invited users and no password hashes.
    let c = rusqlite::Connection::open(dir.path().join("v2.db")).unwrap();
    let (accounts, invited): (i64, i64) = c
        .query_row(
            "SELECT (SELECT COUNT(*) FROM account), (SELECT COUNT(*) FROM app_user WHERE status = 'invited')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(accounts, 1);
    assert!(invited > 0);
    // Other organisations see nothing of it.
    assert_eq!(e.run(Some("otto@other.no"), &["report", "shop"]).code, 4);
}

#[test]
fn repeating_the_trial_needs_a_reason_and_marks_retests() {
    let (e, _dir, _) = migration_env(TestDb::sqlite(), None);
    sign_contracts(&e, "shop");
    e.vendor(&["migrate", "shop", "--first"]).ok();
    e.vendor(&["checklist", "set", "shop", "V1", "--status", "passed", "--evidence", "run:1"]).ok();
    let r = e.vendor(&["migrate", "shop", "--first"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("needs a reason"), "{}", r.stderr);
    e.vendor(&["migrate", "shop", "--first", "--reason", "customer fixed VAT numbers"]).ok();
    let c = e.vendor(&["checklist", "show", "shop", "--json"]).ok().json();
    assert_eq!(c["items"][0]["status"], "needs-retest");
}

#[test]
fn sqlite_v1_to_postgres_v2_through_the_cli() {
    let Some(v2) = TestDb::postgres() else { return };
    let (e, _dir, manifest) = migration_env(TestDb::sqlite(), Some(v2.url.clone()));
    sign_contracts(&e, "shop");
    e.vendor(&["migrate", "shop", "--first"]).ok();
    assert_report_matches(&e.vendor(&["report", "shop", "--json"]).ok().json(), &manifest);
}

#[test]
fn scope_document_is_generated_from_pack_and_scope() {
    let (e, _dir, _) = migration_env(TestDb::sqlite(), None);
    e.vendor(&["scope", "set", "shop", "--exclude", "document"]).ok();
    let doc = e.customer(&["scope", "show", "shop"]).ok().stdout;
    assert!(doc.starts_with("# What is migrated from Omikai 1 to Omikai 2"), "{doc}");
    assert!(doc.contains("`CUST` → `customer`"), "{doc}");
    assert!(
        doc.contains("excluded when `STATUS == 'X'`: customer is marked deleted in Omikai 1 (`deleted_in_v1`)"),
        "{doc}"
    );
    assert!(doc.contains("- **Report layouts**: Omikai 2 uses a new report layout architecture"), "{doc}");
    assert!(doc.contains("- **Documents (attached files)**: excluded from the scope by agreement"), "{doc}");
    assert!(doc.contains("| `insecure_url` |"), "{doc}");
}

#[test]
fn a_broken_pack_is_refused_before_any_run() {
    let (e, dir, _) = migration_env(TestDb::sqlite(), None);
    let packs = dir.path().join("packs/omikai");
    std::fs::create_dir_all(&packs).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packs/omikai");
    for f in ["project.toml", "v1.sql", "v2.sql", "mapping.toml"] {
        std::fs::copy(root.join(f), packs.join(f)).unwrap();
    }
    let mapping = std::fs::read_to_string(packs.join("mapping.toml")).unwrap().replace(
        "phone = \"nullif(trim(PHONE), '')\"\npayment_terms",
        "phone = \"nullif(trim(PHONES), '')\"\npayment_terms",
    );
    std::fs::write(packs.join("mapping.toml"), &mapping).unwrap();
    let line = mapping[..mapping.find("trim(PHONES)").unwrap()].matches('\n').count() + 1;
    sign_contracts(&e, "shop");
    let dir_arg = dir.path().join("packs");
    let r = e.vendor(&["--packs", dir_arg.to_str().unwrap(), "migrate", "shop", "--first"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "the mapping pack is not usable: {}:{line}:22: customer.phone: unknown column 'PHONES'",
            packs.join("mapping.toml").display()
        )),
        "{}",
        r.stderr
    );
    let p = e.vendor(&["project", "show", "shop", "--json"]).ok().json();
    assert_eq!((p["phase"].as_str(), p["runs"].as_array().unwrap().len()), (Some("plan"), 0));
}

#[test]
fn demo_walks_the_lifecycle_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["demo", "--customers", "60", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for phase in [
        "phase 1/6: plan",
        "phase 2/6: first migration",
        "phase 3/6: parallel phase",
        "phase 4/6: approval",
        "phase 5/6: final migration",
        "phase 6/6: go-live",
        "archive check: intact",
        "phase now: live",
    ] {
        assert!(stdout.contains(phase), "{phase} missing:\n{stdout}");
    }
    assert!(dir.path().join("omikai2.db").exists());
    let verify = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args([
            "--db",
            dir.path().join("cutover.db").to_str().unwrap(),
            "--as",
            "vera@vendor.example",
            "audit",
            "trykkeriet",
            "--verify",
        ])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

/// One HTTP/1.1 request on loopback; returns the status line's code, the headers and the body.
fn http(addr: &str, method: &str, path: &str, cookie: Option<&str>, body: Option<&str>) -> (u16, String, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let body = body.unwrap_or("");
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{cookie}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, head.to_owned(), body.to_owned())
}

#[test]
fn demo_serve_opens_the_portal_with_the_printed_logins() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["demo", "--customers", "40", "--serve", "--addr", &addr, "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut logins = std::collections::BTreeMap::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some((_, rest)) = line.split_once("admin:") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            logins.insert(words[0].to_owned(), words[2].to_owned());
        }
        if line.contains("nina@nordlys.example") {
            break;
        }
    }
    assert_eq!(logins.len(), 3, "{logins:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(std::time::Instant::now() < deadline, "the portal did not open");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // It runs itself again with glibc's allocator held to two arenas (SQLite allocates there).
    if cfg!(all(target_os = "linux", target_env = "gnu")) && std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let environ = std::fs::read(format!("/proc/{}/environ", child.id())).unwrap();
        assert!(
            environ.split(|b| *b == 0).any(|v| v == b"MALLOC_ARENA_MAX=2"),
            "no MALLOC_ARENA_MAX in the portal's env"
        );
    }
    let login = |email: &str| {
        let body = format!(r#"{{"email":"{email}","password":"{}"}}"#, logins[email]);
        let (code, head, _) = http(&addr, "POST", "/api/login", None, Some(&body));
        assert_eq!(code, 200, "{email}: {head}");
        let cookie = head.lines().find_map(|l| l.strip_prefix("set-cookie: ")).unwrap();
        cookie.split(';').next().unwrap().to_owned()
    };
    let projects = |cookie: &str| -> Vec<String> {
        let (code, _, body) = http(&addr, "GET", "/api/projects", Some(cookie), None);
        assert_eq!(code, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| format!("{} {}", p["key"].as_str().unwrap(), p["phase"].as_str().unwrap()))
            .collect()
    };
    assert_eq!(projects(&login("vera@vendor.example")), ["nordlys parallel", "trykkeriet live"]);
    assert_eq!(projects(&login("cora@trykkeriet.example")), ["trykkeriet live"]);
    assert_eq!(projects(&login("nina@nordlys.example")), ["nordlys parallel"]);
    // A wrong password does not open the portal.
    let (code, _, _) =
        http(&addr, "POST", "/api/login", None, Some(r#"{"email":"vera@vendor.example","password":"demo"}"#));
    assert_eq!(code, 401);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_run_whose_process_died_can_be_abandoned() {
    let (e, _dir, _) = migration_env(TestDb::sqlite(), None);
    sign_contracts(&e, "shop");
    // Simulate a process that died mid-run: the lifecycle says "running", nothing else happens.
    let url = e.db.url.clone();
    cutover_testkit::block_on(async move {
        let app = cutover_app::App::open(&url, cutover_app::Packs::Builtin).await.unwrap();
        let vendor = app.actor(Some("vera@vendor.no")).await.unwrap();
        let key = cutover_core::ProjectKey::parse("shop").unwrap();
        let start =
            cutover_core::Command::StartRun { kind: cutover_core::RunKind::First, reason: None, dry_run: false };
        app.execute(&vendor, &key, start).await.unwrap();
        app.store().close().await;
    });
    let r = e.vendor(&["migrate", "shop", "--first"]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("run 1 is still in progress"), "{}", r.stderr);
    assert_eq!(e.run(Some("vidar@vendor.no"), &["run", "abandon", "shop", "1", "--reason", "machine crashed"]).code, 4);
    e.vendor(&["run", "abandon", "shop", "1", "--reason", "machine crashed"]).ok();
    e.vendor(&["migrate", "shop", "--first"]).ok();
    let audit = e.vendor(&["audit", "shop", "--json"]).ok().json();
    assert!(audit.as_array().unwrap().iter().any(|a| a["action"] == "run_abandoned"));
}

#[test]
fn verify_decides_the_automated_items_and_flags_a_change() {
    let (e, dir, _) = migration_env(TestDb::sqlite(), None);
    sign_contracts(&e, "shop");
    e.vendor(&["migrate", "shop", "--first"]).ok();
    assert_eq!(e.customer(&["verify", "shop"]).code, 4, "verification is the vendor's general system test");
    let v = e.vendor(&["verify", "shop", "--json"]).ok().json();
    assert_eq!((v["verification"].as_u64(), v["clean"].as_bool()), (Some(1), Some(true)));
    let decided: Vec<(&str, bool)> = v["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["item"].as_str().unwrap(), d["passed"].as_bool().unwrap()))
        .collect();
    assert_eq!(decided, [("V1", true), ("V2", true)]);
    let c = e.customer(&["checklist", "show", "shop", "--json"]).ok().json();
    assert_eq!(
        (c["items"][1]["status"].as_str(), c["items"][1]["evidence"][0].as_str()),
        (Some("passed"), Some("verify:1"))
    );
    // Someone edits v2 during the parallel phase: verification says where, and exits 5.
    rusqlite::Connection::open(dir.path().join("v2.db"))
        .unwrap()
        .execute("UPDATE sales_order SET title = 'edited' WHERE rowid = 1", [])
        .unwrap();
    let r = e.vendor(&["verify", "shop"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stdout.contains("1 rows differ")
            && r.stdout.contains("Changed sales_order JOB:")
            && r.stdout.contains("title:"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("checklist V2: failed (evidence verify:2)"), "{}", r.stdout);
    let shown = e.customer(&["verify", "shop", "--show", "2", "--json"]);
    assert_eq!(shown.code, 5);
    assert_eq!(shown.json()["report"]["differences_total"], 1);
    e.customer(&["checklist", "set", "shop", "C1", "--status", "passed", "--evidence", "verify:2"]).ok();
    assert_eq!(e.customer(&["checklist", "set", "shop", "C2", "--status", "passed", "--evidence", "verify:7"]).code, 4);
}

#[test]
fn preview_lists_what_the_final_migration_will_overwrite() {
    let (e, dir, _) = migration_env(TestDb::sqlite(), None);
    assert_eq!(e.vendor(&["preview", "shop"]).code, 1, "no migration has loaded the account yet");
    sign_contracts(&e, "shop");
    e.vendor(&["migrate", "shop", "--first"]).ok();
    let p = e.customer(&["preview", "shop", "--json"]).ok().json();
    assert_eq!(p["items"].as_array().unwrap().len(), 0);
    rusqlite::Connection::open(dir.path().join("v2.db")).unwrap().execute("UPDATE sales_order SET title = 'edited in v2' WHERE legacy_ref = (SELECT MIN(legacy_ref) FROM sales_order)", []).unwrap();
    let r = e.vendor(&["preview", "shop"]).ok();
    assert!(
        r.stdout.contains("Changed sales_order JOB:")
            && r.stdout.contains("title: as loaded")
            && r.stdout.contains("now \"edited in v2\""),
        "{}",
        r.stdout
    );
    let id = e.vendor(&["preview", "shop", "--json"]).ok().json()["id"].as_str().unwrap().to_owned();
    assert!(r.stdout.contains(&format!("--ack-overwrite {id}")), "{}", r.stdout);
    assert_eq!(e.run(Some("otto@other.no"), &["preview", "shop"]).code, 4);
}

/// Takes project `shop` through the parallel phase and the checklist to the approval phase.
fn to_approval(e: &Env) {
    sign_contracts(e, "shop");
    e.vendor(&["migrate", "shop", "--first"]).ok();
    accept_checklist(e);
}

/// Passes every item of project `shop`'s checklist, and both parties accept it.
fn accept_checklist(e: &Env) {
    let items = e.vendor(&["checklist", "show", "shop", "--json"]).ok().json();
    for i in items["items"].as_array().unwrap() {
        if i["status"] == "passed" {
            continue;
        }
        let (id, kind) = (i["id"].as_str().unwrap(), i["kind"].as_str().unwrap());
        let who = if kind == "vendor" { "vera@vendor.no" } else { "cora@acme.no" };
        e.run(Some(who), &["checklist", "set", "shop", id, "--status", "passed"]).ok();
    }
    e.vendor(&["checklist", "accept", "shop"]).ok();
    e.customer(&["checklist", "accept", "shop"]).ok();
}

#[test]
fn final_migration_needs_signatures_and_a_current_acknowledged_preview() {
    let (e, dir, _) = migration_env(TestDb::sqlite(), None);
    to_approval(&e);
    let v2 = dir.path().join("v2.db");
    rusqlite::Connection::open(&v2)
        .unwrap()
        .execute("UPDATE customer SET name = 'Typed in v2' WHERE legacy_ref = 'CUST:1'", [])
        .unwrap();
    let id = e.vendor(&["preview", "shop", "--json"]).ok().json()["id"].as_str().unwrap().to_owned();
    let r = e.vendor(&["migrate", "shop", "--final"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--ack-overwrite"), "{}", r.stderr);
    let r = e.vendor(&["migrate", "shop", "--final", "--ack-overwrite", &id]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("the go-live approval is not signed by the vendor"), "{}", r.stderr);
    e.vendor(&["contract", "sign", "shop", "--kind", "go-live"]).ok();
    e.customer(&["contract", "sign", "shop", "--kind", "go-live"]).ok();
    // Another edit after the preview was seen: the acknowledgement no longer holds.
    rusqlite::Connection::open(&v2)
        .unwrap()
        .execute("UPDATE customer SET city = 'Tromsø' WHERE legacy_ref = 'CUST:1'", [])
        .unwrap();
    let r = e.vendor(&["migrate", "shop", "--final", "--ack-overwrite", &id]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("preview {id} is no longer current")), "{}", r.stderr);
    assert_eq!(e.vendor(&["project", "show", "shop", "--json"]).ok().json()["phase"], "approval");
    let id = e.vendor(&["preview", "shop", "--json"]).ok().json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        e.run(Some("vidar@vendor.no"), &["migrate", "shop", "--final", "--ack-overwrite", &id]).code,
        4,
        "vendor admins only"
    );
    let done = e.vendor(&["migrate", "shop", "--final", "--ack-overwrite", &id, "--json"]).ok().json();
    assert_eq!(done["phase"], "final_migration");
    let name: String = rusqlite::Connection::open(&v2)
        .unwrap()
        .query_row("SELECT name FROM customer WHERE legacy_ref = 'CUST:1'", [], |r| r.get(0))
        .unwrap();
    assert_ne!(name, "Typed in v2", "v1's value is back");
    let rec = e.customer(&["recovery", "show", "shop", "--json"]).ok().json();
    let bundle = &rec[0]["bundle"];
    assert_eq!((bundle["overwritten"].as_u64(), bundle["preview_id"].as_str()), (Some(1), Some(id.as_str())));
    let rows =
        std::fs::read_to_string(std::path::Path::new(bundle["path"].as_str().unwrap()).join("rows.jsonl")).unwrap();
    assert!(rows.contains("Typed in v2") && rows.contains("Tromsø"), "{rows}");
    let report = e.vendor(&["report", "shop", "--json"]).ok().json();
    assert_eq!(report["delta"]["customer"]["rewritten"], 1);
    // Nothing wrote to v2 since the preview: the run took it as kept, and no longer keeps it.
    assert_eq!(report["preview_reused"], true);
    // Beside the project's recovery bundles.
    let bundles = std::path::Path::new(bundle["path"].as_str().unwrap()).parent().unwrap().to_owned();
    let kept = bundles.join("preview.json");
    assert!(!kept.exists(), "{}", kept.display());
    assert!(e.vendor(&["preview", "shop", "--json"]).ok().json()["items"].as_array().unwrap().is_empty());
    assert!(kept.exists(), "kept again for the next final migration");
}

// ---------------------------------------------------------------- all six phases

/// Runs SQL on a v1 or v2 database, SQLite file or PostgreSQL URL.
fn db_exec(url: &str, sql: &str) -> Result<u64, String> {
    cutover_testkit::exec(url, sql)
}

fn six_phases(v1: &str, v2: &str) {
    let e = Env::new(TestDb::sqlite());
    e.vendor(&["project", "create", "six", "--org", "Acme Print AS", "--name", "Six", "--v1", v1, "--v2", v2]).ok();
    e.vendor(&["scope", "set", "six", "--cutoff", "2019-11-01"]).ok();
    for kind in ["migration", "license"] {
        e.vendor(&["contract", "sign", "six", "--kind", kind]).ok();
        e.customer(&["contract", "sign", "six", "--kind", kind]).ok();
    }
    // Phase 2 → 3.
    e.vendor(&["migrate", "six", "--first"]).ok();
    assert_eq!(e.vendor(&["verify", "six", "--json"]).ok().json()["clean"], true);
    // Parallel phase: the customer edits, creates and deletes in v2.
    db_exec(v2, "UPDATE customer SET name = 'Edited in v2' WHERE legacy_ref = 'CUST:1'").unwrap();
    let vera = ("Vera", "Vtwo");
    db_exec(v2, &typed_in_contact(v2, "00000000-0000-4000-8000-0000000000cc", "v2:new", vera, "CUST:1")).unwrap();
    db_exec(v2, "DELETE FROM order_signature WHERE legacy_ref = (SELECT MIN(legacy_ref) FROM order_signature)")
        .unwrap();
    let p = e.vendor(&["preview", "six", "--json"]).ok().json();
    let kinds: Vec<(String, String)> = p["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["kind"].as_str().unwrap().into(), i["table"].as_str().unwrap().into()))
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    for k in [("changed", "customer"), ("created", "contact"), ("deleted", "order_signature")] {
        assert!(kinds.contains(&(k.0.into(), k.1.into())), "{kinds:?}");
    }
    // Phases 3 → 4 → 5.
    to_approval_six(&e);
    e.vendor(&["contract", "sign", "six", "--kind", "go-live"]).ok();
    e.customer(&["contract", "sign", "six", "--kind", "go-live"]).ok();
    let id = e.vendor(&["preview", "six", "--json"]).ok().json()["id"].as_str().unwrap().to_owned();
    e.vendor(&["migrate", "six", "--final", "--ack-overwrite", &id]).ok();
    assert_eq!(e.vendor(&["verify", "six", "--json"]).ok().json()["clean"], true, "the final run restored v1's values");
    let rec = e.vendor(&["recovery", "show", "six", "--json"]).ok().json();
    let rows =
        std::fs::read_to_string(std::path::Path::new(rec[0]["bundle"]["path"].as_str().unwrap()).join("rows.jsonl"))
            .unwrap();
    assert!(rows.contains("Edited in v2") && rows.contains("Vtwo"), "{rows}");
    // Phase 6.
    let live = e.vendor(&["go-live", "six", "--json"]).ok().json();
    assert_eq!(live["phase"], "live");
    e.vendor(&["archive", "verify", "six"]).ok();
    let r = e.vendor(&["migrate", "six", "--first", "--reason", "late data"]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains(&format!("went live on {}", live["live_since"].as_str().unwrap())), "{}", r.stderr);
    assert_eq!(e.vendor(&["migrate", "six", "--final", "--ack-overwrite", &id]).code, 3);
    // v1 is an archive: PostgreSQL refuses writes; a change anyhow (root ignores file modes) breaks the seal.
    if v1.starts_with("postgres") {
        let err = db_exec(v1, "UPDATE \"cust\" SET \"name\" = 'late edit' WHERE \"custno\" = 2").unwrap_err();
        assert!(err.contains("read-only"), "{err}");
        db_exec(v1, "SET default_transaction_read_only = off; UPDATE \"cust\" SET \"name\" = 'forced edit' WHERE \"custno\" = 2").unwrap();
    } else if v1.starts_with("mysql") {
        // MariaDB has no read-only database: the test's root keeps its server-wide privileges.
        let how = live["archive"]["read_only"].as_str().unwrap();
        assert!(how.contains("the seal shows any change"), "{how}");
        db_exec(v1, "UPDATE CUST SET NAME = 'forced edit' WHERE CUSTNO = 2").unwrap();
    } else {
        assert!(std::fs::metadata(v1).unwrap().permissions().readonly());
        db_exec(v1, "UPDATE CUST SET NAME = 'forced edit' WHERE CUSTNO = 2").unwrap();
    }
    let r = e.vendor(&["archive", "verify", "six"]);
    assert_eq!(r.code, 5, "{}", r.stdout);
    assert!(r.stdout.contains("table CUST CHANGED since go-live"), "{}", r.stdout);
    e.vendor(&["audit", "six", "--verify"]).ok();
}

fn to_approval_six(e: &Env) {
    let items = e.vendor(&["checklist", "show", "six", "--json"]).ok().json();
    for i in items["items"].as_array().unwrap() {
        if i["status"] == "passed" {
            continue;
        }
        let who = if i["kind"] == "vendor" { "vera@vendor.no" } else { "cora@acme.no" };
        e.run(Some(who), &["checklist", "set", "six", i["id"].as_str().unwrap(), "--status", "passed"]).ok();
    }
    e.vendor(&["checklist", "accept", "six"]).ok();
    e.customer(&["checklist", "accept", "six"]).ok();
}

#[test]
fn six_phases_sqlite_to_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1.db");
    cutover_demo::generate(&v1, cutover_demo::Spec { customers: 60, seed: 6, cutoff: cutover_demo::DEFAULT_CUTOFF })
        .unwrap();
    six_phases(v1.to_str().unwrap(), dir.path().join("v2.db").to_str().unwrap());
}

/// Omikai 1 demo data written by `cutover demo-data` into a server database.
fn demo_v1_in(url: &str, customers: &str, seed: &str) {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.json");
    let args = ["demo-data", "--customers", customers, "--seed", seed, "--out", url, "--manifest"];
    let out = Command::new(env!("CARGO_BIN_EXE_cutover")).args(args).arg(&manifest).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(manifest.exists());
}

#[test]
fn six_phases_postgres_to_postgres() {
    let (Some(v1), Some(v2)) = (TestDb::postgres(), TestDb::postgres()) else { return };
    demo_v1_in(&v1.url, "60", "6");
    six_phases(&v1.url, &v2.url);
}

#[test]
fn six_phases_mariadb_to_postgres() {
    let (Some(v1), Some(v2)) = (TestDb::mysql(), TestDb::postgres()) else { return };
    demo_v1_in(&v1.url, "60", "6");
    six_phases(&v1.url, &v2.url);
}

// ---------------------------------------------------------------- crashes and concurrency

impl Env {
    /// Starts `cutover` (as the vendor admin) stopped at a failpoint, with a 2-second run lease;
    /// returns once it is there, to be killed.
    fn stopped_at(&self, args: &[&str], point: &str, dir: &std::path::Path) -> std::process::Child {
        let marker = dir.join(format!("reached-{}", point.replace(':', "-")));
        let _ = std::fs::remove_file(&marker);
        let mut child = Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(args)
            .env("CUTOVER_DB", &self.db.url)
            .env("CUTOVER_USER", "vera@vendor.no")
            .env_remove("CUTOVER_PACKS")
            .env("CUTOVER_FAILPOINT", point)
            .env("CUTOVER_FAILPOINT_FILE", &marker)
            .env("CUTOVER_LEASE_SECONDS", "2")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while !marker.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("cutover ended ({status}) before reaching {point}");
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(120), "{point} not reached");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child
    }
}

/// kill -9, as a crash.
fn crash(mut child: std::process::Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Every v2 row of the pack's tables, fingerprinted and sorted per table: two migrations that
/// agree on this wrote the same v2.
fn v2_fingerprints(url: &str) -> Vec<(String, Vec<u64>)> {
    let pack = cutover_engine::pack::PackSource::Builtin.load("omikai").unwrap();
    let mut t = cutover_engine::connect::TargetConfig::from_url(url).unwrap().build().unwrap();
    cutover_engine::verify::table_fingerprints(t.as_mut(), &pack.v2, None).unwrap()
}

/// A run's ledger in the store: (rows, distinct sequence numbers, highest sequence number + 1).
fn ledger_shape(store: &str, run: i64) -> (i64, i64, i64) {
    let c = rusqlite::Connection::open(store).unwrap();
    c.query_row(
        "SELECT COUNT(*), COUNT(DISTINCT seq), COALESCE(MAX(seq) + 1, 0) FROM ledger WHERE project = 'shop' AND run = ?1",
        [run],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

fn wait_for_lease_to_expire() {
    std::thread::sleep(std::time::Duration::from_millis(2600));
}

/// kill -9 during a first migration (mid-table, between tables, before the commit) and during
/// a final migration (mid-table, after the recovery bundle, before the commit): the next run completes,
/// v2 is exactly what an uninterrupted run gives, the ledger has no gap and no duplicate, the
/// recovery bundle is whole. Meanwhile a second run of the project is refused, naming who
/// holds it since when, until the holder's lease expires.
fn crash_anywhere_loses_nothing(v2: String, reference_v2: String) {
    let (e, dir, manifest) = migration_env(TestDb::sqlite(), Some(v2.clone()));
    sign_contracts(&e, "shop");
    let store = e.db.url.clone();
    for point in ["in-entity:contact", "after-entity:quote", "before-commit"] {
        let child = e.stopped_at(&["migrate", "shop", "--first"], point, dir.path());
        let r = e.vendor(&["migrate", "shop", "--first"]);
        assert_eq!(r.code, 3, "{point}: a second run at once is refused: {}", r.stderr);
        assert!(
            r.stderr.contains("is being migrated by vera@vendor.no (pid") && r.stderr.contains(" since 20"),
            "{point}: {}",
            r.stderr
        );
        crash(child);
        wait_for_lease_to_expire();
    }
    let done = e.vendor(&["migrate", "shop", "--first", "--json"]).ok().json();
    let run = done["run"].as_i64().unwrap();
    assert_eq!(run, 4, "three runs died before it");
    let runs = e.vendor(&["project", "show", "shop", "--json"]).ok().json();
    assert_eq!(runs["phase"], "parallel");

    // The same migration, never interrupted, in a store and v2 of its own.
    let (r, rdir, _) = migration_env(TestDb::sqlite(), Some(reference_v2.clone()));
    sign_contracts(&r, "shop");
    let reference = r.vendor(&["migrate", "shop", "--first", "--json"]).ok().json();
    assert_eq!(v2_fingerprints(&v2), v2_fingerprints(&reference_v2));
    let (rows, distinct, next) = ledger_shape(&store, run);
    assert_eq!((rows, distinct), (next, next), "no gap, no duplicate");
    assert_eq!(rows, ledger_shape(&r.db.url, 1).0, "the same records not migrated");
    assert_eq!(done["report"]["entities"], reference["report"]["entities"]);
    for dead in 1..run {
        let shown = e.vendor(&["report", "shop", "--run", &dead.to_string(), "--json"]).ok().json();
        assert_eq!(shown["outcome"], "failed", "run {dead}: {shown}");
    }

    // The final migration: a change in v1, an edit in v2, then crashes after the recovery
    // bundle and right before the commit.
    accept_checklist(&e);
    e.vendor(&["contract", "sign", "shop", "--kind", "go-live"]).ok();
    e.customer(&["contract", "sign", "shop", "--kind", "go-live"]).ok();
    for v1 in [dir.path().join("v1.db"), rdir.path().join("v1.db")] {
        db_exec(v1.to_str().unwrap(), "UPDATE JOB SET TITLE = TITLE || ' (rev)' WHERE JOBNO % 7 = 0").unwrap();
    }
    db_exec(&v2, "UPDATE customer SET name = 'Typed in v2' WHERE legacy_ref = 'CUST:1'").unwrap();
    let id = e.vendor(&["preview", "shop", "--json"]).ok().json()["id"].as_str().unwrap().to_owned();
    // The recovery bundles' lines left unfinished by killed runs (beside the SQLite store).
    let recovery = std::path::Path::new(&store).with_file_name("recovery").join("shop");
    let unfinished = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&recovery)
            .map(|d| d.flatten().map(|e| e.path().join("rows.jsonl.partial")).filter(|p| p.is_file()).collect())
            .unwrap_or_default()
    };
    for point in ["in-entity:contact", "final:after-bundle", "final:before-commit"] {
        let child = e.stopped_at(&["migrate", "shop", "--final", "--ack-overwrite", &id], point, dir.path());
        crash(child);
        wait_for_lease_to_expire();
        // Nothing of it reached v2: the preview is the same.
        assert_eq!(e.vendor(&["preview", "shop", "--json"]).ok().json()["id"], id.as_str(), "{point}");
        // On PostgreSQL the bundle is written as the run goes: killed mid-table, its lines are
        // unfinished (on SQLite it is written at the commit); the next run removes them.
        let expected = usize::from(point.starts_with("in-entity") && v2.starts_with("postgres"));
        assert_eq!(unfinished().len(), expected, "{point}: {:?}", unfinished());
    }
    let done = e.vendor(&["migrate", "shop", "--final", "--ack-overwrite", &id, "--json"]).ok().json();
    assert_eq!(done["phase"], "final_migration");
    // v2 is what a fresh migration of today's v1 gives.
    let fresh = TestDb::sqlite();
    let fresh_v2 = fresh.dir.as_ref().unwrap().path().join("fresh.db").display().to_string();
    {
        let f = Env::new(TestDb::sqlite());
        create_shop(&f, dir.path().join("v1.db").to_str().unwrap(), &fresh_v2, manifest["cutoff"].as_str().unwrap());
        sign_contracts(&f, "shop");
        f.vendor(&["migrate", "shop", "--first"]).ok();
    }
    assert_eq!(v2_fingerprints(&v2), v2_fingerprints(&fresh_v2));
    // The completed run's recovery bundle is whole and holds what it overwrote.
    let rec = e.vendor(&["recovery", "show", "shop", "--json"]).ok().json();
    let last = rec.as_array().unwrap().last().unwrap();
    let bundle = &last["bundle"];
    let path = std::path::Path::new(bundle["path"].as_str().unwrap());
    let rows = std::fs::read_to_string(path.join("rows.jsonl")).unwrap();
    assert_eq!(rows.lines().count() as u64, bundle["rows"].as_u64().unwrap());
    use sha2::Digest as _;
    let sha: String = sha2::Sha256::digest(rows.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(sha, bundle["sha256"].as_str().unwrap());
    assert!(rows.contains("Typed in v2"), "{rows}");
    assert_eq!(path.parent(), Some(recovery.as_path()));
    e.vendor(&["audit", "shop", "--verify"]).ok();
}

#[test]
fn crash_anywhere_loses_nothing_sqlite_target() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("v2.db"), dir.path().join("reference.db"));
    crash_anywhere_loses_nothing(a.display().to_string(), b.display().to_string());
}

#[test]
fn crash_anywhere_loses_nothing_postgres_target() {
    let (Some(a), Some(b)) = (TestDb::postgres(), TestDb::postgres()) else { return };
    crash_anywhere_loses_nothing(a.url.clone(), b.url.clone());
}

// ---------------------------------------------------------------- secrets

/// `url` with `password` in it (PostgreSQL's trust authentication accepts any).
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap_or(("postgres", rest));
    let user = user.split(':').next().unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

/// A password in a connection URL never shows: not in any command's output or log (at the
/// most verbose), not in reports, not in the audit log, not in an error about that database.
#[test]
fn passwords_in_connection_urls_never_show() {
    let (Some(v1db), Some(v2db)) = (TestDb::postgres(), TestDb::postgres()) else { return };
    let secret = "Sup3r-s3cret-pw";
    demo_v1_in(&v1db.url, "40", "9");
    let (v1, v2) = (with_password(&v1db.url, secret), with_password(&v2db.url, secret));

    let e = Env::new(TestDb::sqlite());
    let mut shown = String::new();
    let mut see = |r: Run| {
        shown.push_str(&r.stdout);
        shown.push_str(&r.stderr);
        r
    };
    let create =
        ["-vv", "project", "create", "sec", "--org", "Acme Print AS", "--name", "Sec", "--v1", &v1, "--v2", &v2];
    see(e.vendor(&create).ok());
    see(e.vendor(&["-vv", "scope", "set", "sec", "--cutoff", "2019-11-01"]).ok());
    sign_contracts(&e, "sec");
    see(e.vendor(&["-vv", "migrate", "sec", "--first"]).ok());
    let r = see(e.vendor(&["-vv", "verify", "sec"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    for args in [
        &["-vv", "preview", "sec"][..],
        &["-vv", "report", "sec"],
        &["-vv", "report", "sec", "--json"],
        &["-vv", "project", "show", "sec"],
        &["-vv", "project", "show", "sec", "--json"],
        &["-vv", "project", "list", "--json"],
        &["-vv", "audit", "sec", "--json"],
    ] {
        see(e.vendor(args).ok());
    }
    // A database that does not answer: the error names it, masked.
    let gone = with_password(&v1db.url.replace("cutover_t", "no_such_db"), secret);
    see(e
        .vendor(&["project", "create", "bad", "--org", "Acme Print AS", "--name", "Bad", "--v1", &gone, "--v2", &v2])
        .ok());
    sign_contracts(&e, "bad");
    let r = see(e.vendor(&["-vv", "migrate", "bad", "--first", "--dry-run"]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("no_such_db") && r.stderr.contains(":***@"), "{}", r.stderr);
    assert!(shown.contains(":***@"), "URLs are shown masked");
    assert!(!shown.contains(secret), "a password was shown:\n{shown}");
    // Nor is it in the audit log as stored.
    let c = rusqlite::Connection::open(&e.db.url).unwrap();
    let audit: String = c.query_row("SELECT group_concat(details, ' ') FROM audit_log", [], |r| r.get(0)).unwrap();
    assert!(audit.contains(":***@") && !audit.contains(secret), "{audit}");
    let runs: String = c
        .query_row("SELECT group_concat(coalesce(error, '') || coalesce(report, ''), ' ') FROM runs", [], |r| r.get(0))
        .unwrap();
    assert!(!runs.contains(secret), "{runs}");
}

/// Passwords of portal users are stored only as Argon2id hashes and never logged.
#[test]
fn user_passwords_are_never_stored_or_logged_in_clear() {
    let e = Env::new(TestDb::sqlite());
    let password = "correct horse battery staple 42";
    let r = e.run_stdin(
        Some("vera@vendor.no"),
        &["-vv", "user", "add", "--email", "pia@vendor.no", "--name", "Pia", "--party", "vendor", "--password-stdin"],
        Some(&format!("{password}\n")),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains(password) && !r.stderr.contains(password));
    let c = rusqlite::Connection::open(&e.db.url).unwrap();
    let hash: String =
        c.query_row("SELECT password_hash FROM users WHERE email = 'pia@vendor.no'", [], |r| r.get(0)).unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains(password), "{hash}");
    let everything: String = c
        .query_row("SELECT group_concat(email || name || coalesce(password_hash, ''), ' ') FROM users", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(!everything.contains(password));
    let audit: String = c.query_row("SELECT group_concat(details, ' ') FROM audit_log", [], |r| r.get(0)).unwrap();
    assert!(!audit.contains(password) && !audit.contains("argon2"), "{audit}");
}
