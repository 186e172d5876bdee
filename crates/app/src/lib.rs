//! Application services: resolve the acting user, load state, let the core decide, persist with audit.
//!
//! The CLI and the web portal both go through [`App`], so there is exactly one path for
//! authorisation and one for persistence.

mod migrate;
pub mod packs;
mod password;
mod reports;
mod session;
mod verify;

use cutover_core::audit::{self, AuditEntry, ChainBreak};
use cutover_core::project::NewProject;
use cutover_core::{
    Command, Ctx, Decision, DomainError, Email, OrgName, Party, PartyKind, Project, ProjectKey, Role, Text, User,
};
use cutover_store::{AuditActor, SYSTEM_CHAIN, Store, StoreError, StoredProject};
use time::OffsetDateTime;

pub use migrate::{MigrateOutcome, MigrateRequest, summary};
pub use packs::Packs;
pub use password::{hash_password, verify_password};
pub use reports::{RecoveryBundle, RunView, write_ledger_csv};
pub use session::{SESSION_SECONDS, random_token};
pub use verify::{ArchiveCheck, Verified, verify_summary};

/// Errors of the application layer.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The core refused the step.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No acting user was given.
    #[error("no acting user: pass --as EMAIL or set CUTOVER_USER")]
    NoActor,
    /// The acting user does not exist.
    #[error("unknown user '{0}': add it with `cutover user add`")]
    UnknownUser(String),
    /// A pack could not be read.
    #[error("the mapping pack is not usable")]
    Pack(#[from] cutover_engine::pack::PackError),
    /// The project is not set up for what was asked.
    #[error("{0}")]
    Config(String),
    /// The acknowledged overwrite preview is no longer what the final migration would overwrite.
    #[error(
        "preview {acknowledged} is no longer current (v2 changed; the preview is now {current}): look at `cutover preview` again"
    )]
    StalePreview {
        /// What the operator acknowledged.
        acknowledged: String,
        /// The preview now.
        current: String,
    },
    /// Another run holds the project: who, since when.
    #[error("project is being migrated by {holder} since {since}; try again when it has finished")]
    Locked {
        /// User, process and host of the run.
        holder: String,
        /// When it took the project (RFC 3339).
        since: String,
    },
    /// A verification could not complete.
    #[error("the verification did not complete")]
    Verify(#[source] cutover_engine::run::EngineError),
    /// A migration run failed; nothing was committed to v2.
    #[error("the migration did not complete; nothing was written to v2")]
    Engine(#[from] cutover_engine::run::EngineError),
    /// The password could not be hashed or is unacceptable.
    #[error("password: {0}")]
    Password(String),
}

impl AppError {
    /// Stable code for scripts and the API.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Domain(d) => d.code(),
            AppError::Store(StoreError::Conflict(_)) => "conflict",
            AppError::Store(StoreError::Exists(_)) => "already_exists",
            AppError::Store(_) => "store_error",
            AppError::NoActor => "no_actor",
            AppError::UnknownUser(_) => "unknown_user",
            AppError::Pack(_) => "pack_error",
            AppError::Config(_) => "not_configured",
            AppError::Engine(_) => "run_failed",
            AppError::Verify(_) => "verify_failed",
            AppError::StalePreview { .. } => "stale_preview",
            AppError::Locked { .. } => "locked",
            AppError::Password(_) => "invalid_password",
        }
    }
}

/// Result of the application layer.
pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// A user to add.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// E-mail.
    pub email: Email,
    /// Name.
    pub name: Text,
    /// Party.
    pub party: PartyKind,
    /// Organisation, for customers.
    pub org: Option<OrgName>,
    /// Role.
    pub role: Role,
    /// Password in clear, hashed before storing.
    pub password: Option<String>,
}

/// A project to create.
#[derive(Debug, Clone)]
pub struct ProjectSpec {
    /// Slug.
    pub key: ProjectKey,
    /// Display name.
    pub name: Text,
    /// Customer organisation.
    pub org: OrgName,
    /// Pack name.
    pub pack: String,
    /// v1 URL.
    pub v1_url: Option<String>,
    /// v2 URL.
    pub v2_url: Option<String>,
}

/// The application: store, packs and clock.
#[derive(Debug, Clone)]
pub struct App {
    store: Store,
    packs: Packs,
    recovery: std::path::PathBuf,
}

/// How many times a command is re-decided when another writer saved first.
const CONFLICT_RETRIES: usize = 5;

impl App {
    /// Opens the store at `db` (creating and migrating it as needed).
    pub async fn open(db: &str, packs: Packs) -> Result<App> {
        let store = Store::open(db).await?;
        // Recovery bundles live beside a SQLite store, or in ./cutover-recovery.
        let recovery = cutover_store::DbUrl::parse(db)
            .ok()
            .and_then(|u| u.sqlite_path())
            .and_then(|p| p.parent().map(|d| d.join("recovery")))
            .unwrap_or_else(|| std::path::PathBuf::from("cutover-recovery"));
        Ok(App { store, packs, recovery })
    }

    /// Uses another folder for recovery bundles.
    pub fn with_recovery_dir(mut self, dir: std::path::PathBuf) -> App {
        self.recovery = dir;
        self
    }

    /// Where recovery bundles are written: `DIR/<project>/run-<n>/`.
    pub fn recovery_dir(&self) -> &std::path::Path {
        &self.recovery
    }

    /// The store, for layers that read more than the lifecycle (reports, engine).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The packs in use.
    pub fn packs(&self) -> &Packs {
        &self.packs
    }

    /// The current time; one place, so every layer agrees.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    /// Resolves the acting user.
    pub async fn actor(&self, email: Option<&str>) -> Result<User> {
        let email = email.map(str::trim).filter(|e| !e.is_empty()).ok_or(AppError::NoActor)?;
        let parsed = Email::parse(email)?;
        Ok(self.store.user(&parsed).await?.ok_or_else(|| AppError::UnknownUser(email.into()))?.user)
    }

    /// Checks a login; the same message for unknown users and wrong passwords.
    pub async fn login(&self, email: &str, password: &str) -> Result<Option<User>> {
        let Ok(email) = Email::parse(email) else { return Ok(None) };
        let Some(stored) = self.store.user(&email).await? else {
            // Spend the same time as a real check so that timing does not reveal which e-mails exist.
            let _ = verify_password(password, password::DUMMY_HASH);
            return Ok(None);
        };
        match stored.password_hash {
            Some(h) if verify_password(password, &h) => Ok(Some(stored.user)),
            _ => Ok(None),
        }
    }

    /// Adds a user. With no actor, only the very first user (a vendor admin) may be added.
    pub async fn add_user(&self, actor: Option<&User>, new: NewUser) -> Result<User> {
        let party = Party::new(new.party, new.org)?;
        let user = User { email: new.email, name: new.name, party, role: new.role, created_at: self.now() };
        if actor.is_none() && self.store.user_count().await? > 0 {
            return Err(AppError::NoActor);
        }
        User::may_add(actor, &user)?;
        let hash = new.password.as_deref().map(hash_password).transpose()?;
        let by = actor.map_or_else(AuditActor::system, AuditActor::of);
        self.store.add_user(&user, hash.as_deref(), &by).await?;
        tracing::info!(email = %user.email, party = %user.party, role = %user.role, "user added");
        Ok(user)
    }

    /// Every user the actor may see: vendors see all, customers their organisation.
    pub async fn users(&self, actor: &User) -> Result<Vec<User>> {
        Ok(self
            .store
            .users()
            .await?
            .into_iter()
            .map(|s| s.user)
            .filter(|u| actor.party == Party::Vendor || u.party == actor.party)
            .collect())
    }

    /// Creates a project from a pack's template.
    pub async fn create_project(&self, actor: &User, spec: ProjectSpec) -> Result<Project> {
        let template = self.packs.template(&spec.pack)?;
        let d = Project::create(
            NewProject {
                key: spec.key,
                name: spec.name,
                org: spec.org,
                v1_url: spec.v1_url,
                v2_url: spec.v2_url,
                template,
            },
            Ctx { actor, now: self.now() },
        )?;
        self.store.create_project(&d.project, &d.events, &AuditActor::of(actor)).await?;
        tracing::info!(key = %d.project.key, org = %d.project.org, "project created");
        Ok(d.project)
    }

    /// A project the actor may see.
    pub async fn project(&self, actor: &User, key: &ProjectKey) -> Result<StoredProject> {
        match self.store.project(key).await? {
            Some(sp) if actor.can_see_org(&sp.project.org) => Ok(sp),
            // Another organisation's project does not exist for this user.
            _ => Err(DomainError::NotFound(format!("project '{key}'")).into()),
        }
    }

    /// Every project the actor may see, by key.
    pub async fn projects(&self, actor: &User) -> Result<Vec<Project>> {
        let org = actor.party.org();
        Ok(self.store.projects(org).await?.into_iter().map(|s| s.project).collect())
    }

    /// Every project the actor may see, with its version.
    pub async fn stored_projects(&self, actor: &User) -> Result<Vec<StoredProject>> {
        Ok(self.store.projects(actor.party.org()).await?)
    }

    /// Key and version of every project the actor may see, by key, without reading their state.
    pub async fn project_versions(&self, actor: &User) -> Result<Vec<(String, i64)>> {
        Ok(self.store.project_versions(actor.party.org()).await?)
    }

    /// A mark that changes whenever a project the actor may see is created or saved.
    pub async fn projects_mark(&self, actor: &User) -> Result<(i64, i64)> {
        Ok(self.store.projects_mark(actor.party.org()).await?)
    }

    /// Applies a command: load, decide, save with audit; re-decides when another writer won.
    pub async fn execute(&self, actor: &User, key: &ProjectKey, cmd: Command) -> Result<Decision> {
        let mut attempt = 0;
        loop {
            let sp = self.project(actor, key).await?;
            let now = self.now();
            let d = sp.project.handle(cmd.clone(), Ctx { actor, now })?;
            match self.store.save_project(&d.project, sp.version, &d.events, &AuditActor::of(actor), now).await {
                Ok(_) => {
                    tracing::info!(key = %key, command = cmd.name(), actor = %actor.email, events = d.events.len(), "applied");
                    return Ok(d);
                }
                Err(StoreError::Conflict(_)) if attempt < CONFLICT_RETRIES => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A project's audit log, or the system chain (users) for vendors when `key` is `None`.
    pub async fn audit(&self, actor: &User, key: Option<&ProjectKey>) -> Result<Vec<AuditEntry>> {
        let chain = match key {
            Some(k) => {
                self.project(actor, k).await?;
                k.to_string()
            }
            None if actor.party == Party::Vendor => SYSTEM_CHAIN.to_owned(),
            None => return Err(DomainError::Forbidden("the system audit log is the vendor's".into()).into()),
        };
        Ok(self.store.audit(&chain).await?)
    }

    /// Verifies a chain: `Ok(None)` when intact, the first break otherwise.
    pub async fn verify_audit(&self, actor: &User, key: Option<&ProjectKey>) -> Result<(usize, Option<ChainBreak>)> {
        let entries = self.audit(actor, key).await?;
        Ok((entries.len(), audit::verify(&entries).err()))
    }
}
