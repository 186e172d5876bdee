//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// cutover: run customer migrations from Omikai 1 to Omikai 2, end to end.
#[derive(Debug, Parser)]
#[command(name = "cutover", version, about, propagate_version = true)]
pub struct Cli {
    /// Control-plane store: a SQLite file path, sqlite://PATH or postgres://URL.
    #[arg(long, global = true, env = "CUTOVER_DB", default_value = "./cutover.db")]
    pub db: String,
    /// The acting user's e-mail.
    #[arg(long = "as", global = true, env = "CUTOVER_USER", value_name = "EMAIL")]
    pub actor: Option<String>,
    /// Print JSON for machines instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,
    /// Folder for recovery bundles (default: `recovery` beside a SQLite store, else ./cutover-recovery).
    #[arg(long, global = true, env = "CUTOVER_RECOVERY", value_name = "DIR")]
    pub recovery_dir: Option<PathBuf>,
    /// Folder with mapping packs (DIR/<pack>/…); the built-in packs otherwise.
    #[arg(long, global = true, env = "CUTOVER_PACKS", value_name = "DIR")]
    pub packs: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug); CUTOVER_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create or upgrade the store; optionally add the first vendor admin.
    Init(InitArgs),
    /// Users of the vendor and of customer organisations.
    #[command(subcommand)]
    User(UserCmd),
    /// Migration projects.
    #[command(subcommand)]
    Project(ProjectCmd),
    /// The plan's activities.
    #[command(subcommand)]
    Plan(PlanCmd),
    /// The migration scope.
    #[command(subcommand)]
    Scope(ScopeCmd),
    /// Migration contract, license contract and go-live approval.
    #[command(subcommand)]
    Contract(ContractCmd),
    /// Time spent against the retainer.
    #[command(subcommand)]
    Time(TimeCmd),
    /// Where the 20-hour retainer stands.
    Retainer(KeyArg),
    /// Extra offers outside the retainer.
    #[command(subcommand)]
    Extra(ExtraCmd),
    /// The parallel-phase checklist.
    #[command(subcommand)]
    Checklist(ChecklistCmd),
    /// A project's audit log (the system log of users without KEY).
    Audit(AuditArgs),
    /// Run a migration (the first, trial migration; repeat it during the parallel phase with --reason).
    Migrate(MigrateArgs),
    /// A run's report: counts per entity and reason, and the records not migrated.
    Report(ReportArgs),
    /// Verify the v2 account against v1: counts, totals, every row, and a sample side by side.
    Verify(VerifyArgs),
    /// The overwrite preview: every v2 row changed, created or deleted since the last migration.
    Preview(KeyArg),
    /// Runs: abandon a run whose process died, so that the project can run again.
    #[command(subcommand)]
    Run(RunCmd),
    /// Go live: v1 becomes a read-only, sealed archive; no migration from it, ever again.
    GoLive(KeyArg),
    /// The v1 archive after go-live.
    #[command(subcommand)]
    Archive(ArchiveCmd),
    /// Recovery bundles: what final migrations overwrote or deleted.
    #[command(subcommand)]
    Recovery(RecoveryCmd),
    /// Generate a deterministic Omikai 1 demo database with every dirty-data case.
    DemoData(DemoDataArgs),
    /// Walk a whole demo migration on the embedded default (SQLite, generated data, no server).
    Demo(DemoArgs),
    /// Serve the portal's JSON API (same store as the CLI).
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Project key.
    pub key: String,
    /// The first (trial) migration into the v2 account.
    #[arg(long, required_unless_present = "final_", conflicts_with = "final_")]
    pub first: bool,
    /// The final migration: overwrites what changed in v2 since the last migration.
    #[arg(long = "final", id = "final_")]
    pub final_: bool,
    /// The overwrite preview you have looked at (`cutover preview KEY` prints its id).
    #[arg(long, value_name = "PREVIEW_ID")]
    pub ack_overwrite: Option<String>,
    /// Simulate: read and map everything, write nothing to v2.
    #[arg(long)]
    pub dry_run: bool,
    /// Why the trial migration is repeated (required in the parallel phase).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Project key.
    pub key: String,
    /// Only this entity.
    #[arg(long)]
    pub entity: Option<String>,
    /// Records per entity shown side by side.
    #[arg(long, default_value_t = 2)]
    pub sample: usize,
    /// Print a stored verification instead of running one.
    #[arg(long, value_name = "N")]
    pub show: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCmd {
    /// Re-check the archive against the seal taken at go-live; exits 5 when it changed.
    Verify(KeyArg),
}

#[derive(Debug, Subcommand)]
pub enum RecoveryCmd {
    /// List a project's recovery bundles.
    Show(KeyArg),
}

#[derive(Debug, Subcommand)]
pub enum RunCmd {
    /// Mark a run that can no longer finish as failed (vendor admin). Nothing of it was written to v2.
    Abandon(AbandonArgs),
}

#[derive(Debug, Args)]
pub struct AbandonArgs {
    /// Project key.
    pub key: String,
    /// Run number.
    pub run: u32,
    /// Why (e.g. the operator's machine crashed).
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Project key.
    pub key: String,
    /// Run number (default: the latest run).
    #[arg(long)]
    pub run: Option<i64>,
    /// text, json or csv (csv lists every record not migrated, with its original values).
    #[arg(long, default_value = "text")]
    pub format: String,
    /// Only this entity (csv).
    #[arg(long)]
    pub entity: Option<String>,
    /// Only this reason code (csv).
    #[arg(long)]
    pub reason: Option<String>,
    /// Include records migrated with a warning (csv).
    #[arg(long)]
    pub warnings: bool,
}

#[derive(Debug, Args)]
pub struct DemoDataArgs {
    /// Number of customers; orders, invoices and the rest scale with it (about 50 rows each).
    #[arg(long, default_value_t = 500)]
    pub customers: u32,
    /// Seed: the same seed gives the same data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write: a SQLite file (replaced if it exists), or a postgres://, mysql:// or
    /// mariadb:// URL of a database whose Omikai 1 tables are replaced.
    #[arg(long)]
    pub out: String,
    /// Cut-off the manifest's expected counts are computed for (YYYY-MM-DD).
    #[arg(long)]
    pub cutoff: Option<String>,
    /// Where to write the manifest (default: beside a SQLite file, `omikai1.manifest.json` for a URL).
    #[arg(long)]
    pub manifest: Option<std::path::PathBuf>,
    /// A hostile legacy database instead: lost keys, invalid UTF-8, NULLs, a 10 MB text,
    /// extreme numbers, zero dates, control characters, injection strings (SQLite only).
    #[arg(long)]
    pub hostile: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the demo's files (store, v1 and v2 databases).
    #[arg(long, default_value = "./cutover-demo")]
    pub dir: std::path::PathBuf,
    /// Number of demo customers.
    #[arg(long, default_value_t = 300)]
    pub customers: u32,
    /// Then open the portal on the demo, with a second project in the parallel phase, and print logins.
    #[arg(long)]
    pub serve: bool,
    /// Address of the portal with --serve.
    #[arg(long, default_value = "127.0.0.1:8080", requires = "serve")]
    pub addr: String,
}

#[derive(Debug, Args)]
pub struct KeyArg {
    /// Project key.
    pub key: String,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// E-mail of the first vendor admin (only when the store has no users).
    #[arg(long, requires = "name")]
    pub email: Option<String>,
    /// Name of the first vendor admin.
    #[arg(long)]
    pub name: Option<String>,
    /// Read the admin's password from standard input.
    #[arg(long, requires = "email")]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user (the first user needs no --as and must be a vendor admin).
    Add(UserAddArgs),
    /// List users.
    List,
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// E-mail (the login).
    #[arg(long)]
    pub email: String,
    /// Full name.
    #[arg(long)]
    pub name: String,
    /// vendor or customer.
    #[arg(long)]
    pub party: String,
    /// The customer's organisation.
    #[arg(long)]
    pub org: Option<String>,
    /// admin or member.
    #[arg(long, default_value = "member")]
    pub role: String,
    /// Read the password from standard input (first line).
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum ProjectCmd {
    /// Create a project from a pack.
    Create(ProjectCreateArgs),
    /// List the projects you can see.
    List,
    /// Phase, next step and what blocks it.
    Show(KeyArg),
    /// Cancel a project.
    Cancel(CancelArgs),
}

#[derive(Debug, Args)]
pub struct ProjectCreateArgs {
    /// Project key: a-z, 0-9 and '-'.
    pub key: String,
    /// The customer organisation.
    #[arg(long)]
    pub org: String,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// Mapping pack.
    #[arg(long, default_value = "omikai")]
    pub pack: String,
    /// v1 source (SQLite path or postgres:// URL).
    #[arg(long)]
    pub v1: Option<String>,
    /// v2 target (SQLite path or postgres:// URL).
    #[arg(long)]
    pub v2: Option<String>,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Project key.
    pub key: String,
    /// Why.
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Subcommand)]
pub enum PlanCmd {
    /// Add an activity.
    Add(PlanAddArgs),
    /// Show the plan.
    Show(KeyArg),
    /// Record progress on an activity.
    Set(PlanSetArgs),
}

#[derive(Debug, Args)]
pub struct PlanAddArgs {
    /// Project key.
    pub key: String,
    /// Title.
    #[arg(long)]
    pub title: String,
    /// Responsible party: vendor or customer.
    #[arg(long)]
    pub party: String,
    /// Estimated hours.
    #[arg(long, allow_hyphen_values = true)]
    pub hours: String,
    /// Deadline (YYYY-MM-DD).
    #[arg(long)]
    pub due: String,
    /// Owner's name.
    #[arg(long)]
    pub owner: Option<String>,
}

#[derive(Debug, Args)]
pub struct PlanSetArgs {
    /// Project key.
    pub key: String,
    /// Activity id (A3).
    pub activity: String,
    /// planned, in-progress, done or cancelled.
    #[arg(long)]
    pub status: String,
}

#[derive(Debug, Subcommand)]
pub enum ScopeCmd {
    /// Show the scope.
    Show(KeyArg),
    /// Change the scope (plan phase only).
    Set(ScopeSetArgs),
}

#[derive(Debug, Args)]
pub struct ScopeSetArgs {
    /// Project key.
    pub key: String,
    /// History cut-off date (YYYY-MM-DD).
    #[arg(long)]
    pub cutoff: Option<String>,
    /// Entities to include.
    #[arg(long, num_args = 1..)]
    pub include: Vec<String>,
    /// Entities to exclude.
    #[arg(long, num_args = 1..)]
    pub exclude: Vec<String>,
    /// Options as NAME=VALUE.
    #[arg(long = "option", num_args = 1..)]
    pub options: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ContractCmd {
    /// Show a document with its version and signatures.
    Show(ContractArgs),
    /// Sign a document for your own party.
    Sign(SignArgs),
}

#[derive(Debug, Args)]
pub struct ContractArgs {
    /// Project key.
    pub key: String,
    /// migration, license or go-live.
    #[arg(long)]
    pub kind: String,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Project key.
    pub key: String,
    /// migration, license or go-live.
    #[arg(long)]
    pub kind: String,
    /// The party you sign for; must be your own (a safeguard, not a choice).
    #[arg(long)]
    pub party: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TimeCmd {
    /// Log time against an activity.
    Log(TimeLogArgs),
}

#[derive(Debug, Args)]
pub struct TimeLogArgs {
    /// Project key.
    pub key: String,
    /// Activity id (A3).
    #[arg(long)]
    pub activity: String,
    /// Hours spent.
    #[arg(long, allow_hyphen_values = true)]
    pub hours: String,
    /// What was done.
    #[arg(long)]
    pub note: Option<String>,
    /// Day of the work (YYYY-MM-DD, default today).
    #[arg(long)]
    pub date: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ExtraCmd {
    /// Record an extra offer.
    Add(ExtraAddArgs),
}

#[derive(Debug, Args)]
pub struct ExtraAddArgs {
    /// Project key.
    pub key: String,
    /// premium-support, training, consultancy or development.
    #[arg(long)]
    pub kind: String,
    /// What is offered.
    #[arg(long)]
    pub description: String,
}

#[derive(Debug, Subcommand)]
pub enum ChecklistCmd {
    /// Show the checklist.
    Show(KeyArg),
    /// Add an item for your party.
    Add(ChecklistAddArgs),
    /// Record a result.
    Set(ChecklistSetArgs),
    /// Accept the checklist for your party (admins).
    Accept(KeyArg),
}

#[derive(Debug, Args)]
pub struct ChecklistAddArgs {
    /// Project key.
    pub key: String,
    /// What is tested.
    #[arg(long)]
    pub title: String,
}

#[derive(Debug, Args)]
pub struct ChecklistSetArgs {
    /// Project key.
    pub key: String,
    /// Item id (V1, C2).
    pub item: String,
    /// open, passed, failed, waived or needs-retest.
    #[arg(long)]
    pub status: String,
    /// Note; the reason, for a waiver.
    #[arg(long)]
    pub note: Option<String>,
    /// Evidence references such as verify:3.
    #[arg(long, num_args = 1..)]
    pub evidence: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Project key; without it, the system log (users).
    pub key: Option<String>,
    /// Check the hash chain; exits 5 naming the first broken entry.
    #[arg(long)]
    pub verify: bool,
}
