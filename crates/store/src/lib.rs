//! The control-plane store: users, projects and the audit log, in a SQLite file or PostgreSQL.
//!
//! A project is stored as one aggregate (its JSON state) with a version for optimistic
//! concurrency, plus the few columns that listing needs. Every save appends the command's
//! events to the project's hash-chained audit log in the same transaction, so state and
//! audit never disagree.

mod leases;
mod migrations;
mod runs;
mod url;

use cutover_core::audit::AuditEntry;
use cutover_core::{Email, Event, OrgName, Party, PartyKind, Project, ProjectKey, Role, Text, User};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use leases::{Lease, Taken};
pub use runs::{LedgerFilter, LedgerRow, StoredRun};
pub use url::{Backend, DbUrl};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened.
    #[error("cannot open the store at {url}: {source}")]
    Open {
        /// The URL, password masked.
        url: String,
        /// Cause.
        source: sqlx::Error,
    },
    /// The store URL is not one cutover understands.
    #[error("unsupported store URL '{0}': use a file path, sqlite://PATH or postgres://…")]
    BadUrl(String),
    /// A schema migration failed.
    #[error("schema migration {version} ({name}) failed: {source}")]
    Migrate {
        /// Migration number.
        version: i64,
        /// Migration name.
        name: &'static str,
        /// Cause.
        source: sqlx::Error,
    },
    /// The store was written by a newer cutover.
    #[error("the store has schema version {found}, newer than this cutover knows ({known}); upgrade cutover")]
    TooNew {
        /// Version in the store.
        found: i64,
        /// Newest version known here.
        known: i64,
    },
    /// A query failed.
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// Someone else changed the project between load and save.
    #[error("project '{0}' was changed by someone else at the same time; try again")]
    Conflict(String),
    /// A key or e-mail is taken.
    #[error("{0} already exists")]
    Exists(String),
    /// Stored data cannot be read back.
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt {
        /// What was being read.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// Another run holds the project's lease.
    #[error("project '{}' is being migrated by {} since {}", .0.project, .0.holder, .0.since)]
    Leased(Box<Lease>),
}

/// One project as listed, with its state.
#[derive(Debug, Clone)]
pub struct StoredProject {
    /// The project.
    pub project: Project,
    /// Version for optimistic concurrency.
    pub version: i64,
}

/// A user with its password hash, if one is set.
#[derive(Debug, Clone)]
pub struct StoredUser {
    /// The user.
    pub user: User,
    /// Argon2 PHC string.
    pub password_hash: Option<String>,
}

/// Who an audit entry names as acting.
#[derive(Debug, Clone)]
pub struct AuditActor {
    /// E-mail or `system`.
    pub actor: String,
    /// Party label.
    pub party: String,
}

impl AuditActor {
    /// The actor of a user.
    pub fn of(u: &User) -> Self {
        Self { actor: u.email.to_string(), party: u.party.to_string() }
    }
    /// cutover itself (bootstrap).
    pub fn system() -> Self {
        Self { actor: "system".into(), party: "system".into() }
    }
}

/// The chain name for events that belong to no project (users).
pub const SYSTEM_CHAIN: &str = "";

/// Handle to the control-plane store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    url: DbUrl,
    /// Bulk writer for ledgers of a SQLite store (sqlx binds SQLite parameters slowly).
    bulk: std::sync::Arc<std::sync::Mutex<Option<rusqlite::Connection>>>,
}

fn now_text(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

impl Store {
    /// Opens (creating a SQLite file if needed) and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let url = DbUrl::parse(url)?;
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(if url.backend == Backend::Sqlite { 1 } else { 8 })
            .connect(&url.connect)
            .await
            .map_err(|source| StoreError::Open { url: url.masked(), source })?;
        let store = Store { pool, url, bulk: std::sync::Arc::default() };
        migrations::run(&store.pool, store.url.backend).await?;
        Ok(store)
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.url.backend
    }

    /// The store's URL, password masked.
    pub fn masked_url(&self) -> String {
        self.url.masked()
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Number of users; zero means the next user added is the bootstrap admin.
    pub async fn user_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?.try_get(0)?)
    }

    /// A user by e-mail.
    pub async fn user(&self, email: &Email) -> Result<Option<StoredUser>, StoreError> {
        let row =
            sqlx::query("SELECT email, name, party, org, role, created_at, password_hash FROM users WHERE email = $1")
                .bind(email.as_str().to_owned())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    /// All users, by e-mail.
    pub async fn users(&self) -> Result<Vec<StoredUser>, StoreError> {
        let rows =
            sqlx::query("SELECT email, name, party, org, role, created_at, password_hash FROM users ORDER BY email")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Adds a user and audits it in the system chain.
    pub async fn add_user(&self, u: &User, password_hash: Option<&str>, by: &AuditActor) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query(
            "INSERT INTO users (email, name, party, org, role, created_at, password_hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(u.email.to_string())
        .bind(u.name.to_string())
        .bind(u.party.kind().as_str())
        .bind(u.party.org().map(ToString::to_string))
        .bind(u.role.as_str())
        .bind(now_text(u.created_at))
        .bind(password_hash.map(str::to_owned))
        .execute(&mut *tx)
        .await;
        if let Err(e) = res {
            return Err(unique_or(e, || format!("user {}", u.email)));
        }
        let ev = Event {
            action: "user_added".into(),
            details: serde_json::json!({"email": u.email, "name": u.name, "party": u.party, "role": u.role,
                                        "password_set": password_hash.is_some()}),
        };
        append_audit(&mut tx, SYSTEM_CHAIN, u.created_at, by, std::slice::from_ref(&ev)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets or replaces a user's password hash.
    pub async fn set_password(
        &self,
        email: &Email,
        hash: &str,
        by: &AuditActor,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("UPDATE users SET password_hash = $1 WHERE email = $2")
            .bind(hash.to_owned())
            .bind(email.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::Corrupt { what: format!("user {email}"), reason: "not found".into() });
        }
        let ev = Event { action: "password_set".into(), details: serde_json::json!({"email": email}) };
        append_audit(&mut tx, SYSTEM_CHAIN, at, by, std::slice::from_ref(&ev)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a new project with its creation events.
    pub async fn create_project(&self, p: &Project, events: &[Event], by: &AuditActor) -> Result<(), StoreError> {
        let state = serde_json::to_string(p)
            .map_err(|e| StoreError::Corrupt { what: "project".into(), reason: e.to_string() })?;
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query(
            "INSERT INTO projects (key, org, name, phase, version, state, updated_at) VALUES ($1, $2, $3, $4, 1, $5, $6)",
        )
        .bind(p.key.to_string())
        .bind(p.org.to_string())
        .bind(p.name.to_string())
        .bind(p.phase.as_str())
        .bind(state)
        .bind(now_text(p.created_at))
        .execute(&mut *tx)
        .await;
        if let Err(e) = res {
            return Err(unique_or(e, || format!("project '{}'", p.key)));
        }
        append_audit(&mut tx, p.key.as_str(), p.created_at, by, events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Loads a project.
    pub async fn project(&self, key: &ProjectKey) -> Result<Option<StoredProject>, StoreError> {
        let row = sqlx::query("SELECT state, version FROM projects WHERE key = $1")
            .bind(key.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| project_from_row(&r)).transpose()
    }

    /// Rows of `SELECT … FROM projects`, of one organisation when given, then `tail` (ORDER BY …).
    async fn projects_query(&self, select: &str, org: Option<&OrgName>, tail: &str) -> Result<Vec<AnyRow>, StoreError> {
        let q = match org {
            Some(o) => sqlx::query(sqlx::AssertSqlSafe(format!("{select} FROM projects WHERE org = $1 {tail}")))
                .bind(o.to_string()),
            None => sqlx::query(sqlx::AssertSqlSafe(format!("{select} FROM projects {tail}"))),
        };
        Ok(q.fetch_all(&self.pool).await?)
    }

    /// Every project (of one organisation, when given), by key.
    pub async fn projects(&self, org: Option<&OrgName>) -> Result<Vec<StoredProject>, StoreError> {
        self.projects_query("SELECT state, version", org, "ORDER BY key").await?.iter().map(project_from_row).collect()
    }

    /// How many projects there are (of one organisation, when given) and the sum of their
    /// versions. Versions only grow and projects are never deleted, so this pair changes
    /// whenever any of them is created or saved: one row tells whether a listing is current.
    pub async fn projects_mark(&self, org: Option<&OrgName>) -> Result<(i64, i64), StoreError> {
        // CAST keeps the sum a BIGINT on PostgreSQL (SUM of BIGINT is NUMERIC there).
        let rows = self.projects_query("SELECT COUNT(*), CAST(COALESCE(SUM(version), 0) AS BIGINT)", org, "").await?;
        let row = rows.first().ok_or(StoreError::Query(sqlx::Error::RowNotFound))?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// The key and version of every project (of one organisation, when given), by key: enough to
    /// tell which cached views are still current without reading any state.
    pub async fn project_versions(&self, org: Option<&OrgName>) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = self.projects_query("SELECT key, version", org, "ORDER BY key").await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Saves a project if nobody saved it since `version` was loaded, appending its events to the audit log.
    pub async fn save_project(
        &self,
        p: &Project,
        version: i64,
        events: &[Event],
        by: &AuditActor,
        at: OffsetDateTime,
    ) -> Result<i64, StoreError> {
        let state = serde_json::to_string(p)
            .map_err(|e| StoreError::Corrupt { what: "project".into(), reason: e.to_string() })?;
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE projects SET phase = $1, version = version + 1, state = $2, updated_at = $3, name = $4 WHERE key = $5 AND version = $6",
        )
        .bind(p.phase.as_str())
        .bind(state)
        .bind(now_text(at))
        .bind(p.name.to_string())
        .bind(p.key.to_string())
        .bind(version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Err(StoreError::Conflict(p.key.to_string()));
        }
        append_audit(&mut tx, p.key.as_str(), at, by, events).await?;
        tx.commit().await?;
        Ok(version + 1)
    }

    /// A whole audit chain, in order.
    pub async fn audit(&self, chain: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT chain, seq, at, actor, party, action, details, prev_hash, hash FROM audit_log WHERE chain = $1 ORDER BY seq",
        )
        .bind(chain.to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    /// Runs a statement directly; for tests that must tamper with stored rows.
    #[doc(hidden)]
    pub async fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&self.pool).await?.rows_affected())
    }
}

/// Appends events to a chain inside the caller's transaction.
async fn append_audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    chain: &str,
    at: OffsetDateTime,
    by: &AuditActor,
    events: &[Event],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let last = sqlx::query(
        "SELECT chain, seq, at, actor, party, action, details, prev_hash, hash FROM audit_log WHERE chain = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(chain.to_owned())
    .fetch_optional(&mut **tx)
    .await?;
    let mut prev = last.as_ref().map(audit_from_row).transpose()?;
    for ev in events {
        let e = AuditEntry::next(
            prev.as_ref(),
            chain,
            now_text(at),
            by.actor.clone(),
            by.party.clone(),
            ev.action.clone(),
            ev.details.to_string(),
        );
        let res = sqlx::query(
            "INSERT INTO audit_log (chain, seq, at, actor, party, action, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(e.chain.clone())
        .bind(i64::try_from(e.seq).unwrap_or(i64::MAX))
        .bind(e.at.clone())
        .bind(e.actor.clone())
        .bind(e.party.clone())
        .bind(e.action.clone())
        .bind(e.details.clone())
        .bind(e.prev_hash.clone())
        .bind(e.hash.clone())
        .execute(&mut **tx)
        .await;
        if let Err(err) = res {
            // Two writers raced for the same chain position: the caller retries.
            return Err(match unique_or(err, String::new) {
                StoreError::Exists(_) => StoreError::Conflict(chain.to_owned()),
                other => other,
            });
        }
        prev = Some(e);
    }
    Ok(())
}

/// An audit entry from `SELECT chain, seq, at, actor, party, action, details, prev_hash, hash`.
fn audit_from_row(r: &AnyRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        chain: r.try_get(0)?,
        seq: u64::try_from(r.try_get::<i64, _>(1)?).unwrap_or(0),
        at: r.try_get(2)?,
        actor: r.try_get(3)?,
        party: r.try_get(4)?,
        action: r.try_get(5)?,
        details: r.try_get(6)?,
        prev_hash: r.try_get(7)?,
        hash: r.try_get(8)?,
    })
}

fn unique_or(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Exists(what()),
        _ => StoreError::Query(e),
    }
}

fn project_from_row(r: &AnyRow) -> Result<StoredProject, StoreError> {
    let state: String = r.try_get(0)?;
    let version: i64 = r.try_get(1)?;
    let project = serde_json::from_str(&state)
        .map_err(|e| StoreError::Corrupt { what: "project state".into(), reason: e.to_string() })?;
    Ok(StoredProject { project, version })
}

fn user_from_row(r: &AnyRow) -> Result<StoredUser, StoreError> {
    let email: String = r.try_get(0)?;
    let corrupt = |reason: String| StoreError::Corrupt { what: format!("user {email}"), reason };
    let party_kind: String = r.try_get(2)?;
    let org: Option<String> = r.try_get(3)?;
    let role: String = r.try_get(4)?;
    let created: String = r.try_get(5)?;
    let org = org.map(OrgName::parse).transpose().map_err(|e| corrupt(e.to_string()))?;
    let party = Party::new(PartyKind::parse(&party_kind).map_err(|e| corrupt(e.to_string()))?, org)
        .map_err(|e| corrupt(e.to_string()))?;
    let user = User {
        email: Email::parse(&email).map_err(|e| corrupt(e.to_string()))?,
        name: Text::parse(r.try_get::<String, _>(1)?).map_err(|e| corrupt(e.to_string()))?,
        party,
        role: Role::parse(&role).map_err(|e| corrupt(e.to_string()))?,
        created_at: OffsetDateTime::parse(&created, &Rfc3339).map_err(|e| corrupt(e.to_string()))?,
    };
    Ok(StoredUser { user, password_hash: r.try_get(6)? })
}
