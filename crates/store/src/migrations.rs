//! Embedded schema migrations, applied in order at open; portable SQL for SQLite and PostgreSQL.

use sqlx::{AnyPool, Row};

use crate::{Backend, StoreError};

/// (version, name, statements). Never edit a released migration; add a new one.
const MIGRATIONS: &[(i64, &str, &[&str])] = &[
    (
        1,
        "control plane",
        &[
            "CREATE TABLE users (
            email TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            party TEXT NOT NULL CHECK (party IN ('vendor', 'customer')),
            org TEXT,
            role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
            created_at TEXT NOT NULL,
            password_hash TEXT
        )",
            "CREATE TABLE projects (
            key TEXT PRIMARY KEY,
            org TEXT NOT NULL,
            name TEXT NOT NULL,
            phase TEXT NOT NULL,
            version BIGINT NOT NULL,
            state TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )",
            "CREATE INDEX projects_org ON projects (org)",
            "CREATE TABLE audit_log (
            chain TEXT NOT NULL,
            seq BIGINT NOT NULL,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            party TEXT NOT NULL,
            action TEXT NOT NULL,
            details TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            PRIMARY KEY (chain, seq)
        )",
        ],
    ),
    (
        2,
        "runs and ledger",
        &[
            "CREATE TABLE runs (
                project TEXT NOT NULL,
                run BIGINT NOT NULL,
                kind TEXT NOT NULL,
                dry_run BIGINT NOT NULL,
                started_by TEXT NOT NULL,
                started_at TEXT NOT NULL,
                finished_at TEXT,
                outcome TEXT NOT NULL,
                report TEXT,
                error TEXT,
                PRIMARY KEY (project, run)
            )",
            "CREATE TABLE ledger (
                project TEXT NOT NULL,
                run BIGINT NOT NULL,
                seq BIGINT NOT NULL,
                entity TEXT NOT NULL,
                v1_key TEXT NOT NULL,
                legacy_ref TEXT NOT NULL,
                bucket TEXT NOT NULL,
                reason TEXT NOT NULL,
                message TEXT NOT NULL,
                original TEXT NOT NULL
            )",
            "CREATE UNIQUE INDEX ledger_seq ON ledger (project, run, seq)",
            "CREATE INDEX ledger_reason ON ledger (project, run, entity, reason)",
        ],
    ),
    (
        3,
        "verifications",
        &["CREATE TABLE verifications (
                project TEXT NOT NULL,
                id BIGINT NOT NULL,
                at TEXT NOT NULL,
                by_user TEXT NOT NULL,
                clean BIGINT NOT NULL,
                report TEXT NOT NULL,
                PRIMARY KEY (project, id)
            )"],
    ),
    (
        4,
        "sessions",
        &["CREATE TABLE sessions (
            token_hash TEXT PRIMARY KEY,
            email TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at BIGINT NOT NULL
        )"],
    ),
    (
        5,
        "run leases",
        &["CREATE TABLE run_leases (
            project TEXT PRIMARY KEY,
            token TEXT NOT NULL,
            holder TEXT NOT NULL,
            since TEXT NOT NULL,
            expires_at BIGINT NOT NULL
        )"],
    ),
];

/// Applies the migrations the store does not have yet, each in its own transaction.
pub(crate) async fn run(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS cutover_schema (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .execute(pool)
    .await?;
    let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM cutover_schema")
        .fetch_one(pool)
        .await?
        .try_get::<i64, _>(0)?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > known {
        return Err(StoreError::TooNew { found: current, known });
    }
    for &(version, name, statements) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let err = |source| StoreError::Migrate { version, name, source };
        let mut tx = pool.begin().await.map_err(err)?;
        if backend == Backend::Postgres {
            // Two processes opening a new store at once: the second waits, then finds the work done.
            sqlx::query("LOCK TABLE cutover_schema IN EXCLUSIVE MODE").execute(&mut *tx).await.map_err(err)?;
            let done: i64 = sqlx::query("SELECT COUNT(*) FROM cutover_schema WHERE version = $1")
                .bind(version)
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?
                .try_get(0)
                .map_err(err)?;
            if done > 0 {
                continue;
            }
        }
        for sql in statements {
            sqlx::query(*sql).execute(&mut *tx).await.map_err(err)?;
        }
        sqlx::query("INSERT INTO cutover_schema (version, name, applied_at) VALUES ($1, $2, CURRENT_TIMESTAMP)")
            .bind(version)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        tracing::info!(version, name, "applied schema migration");
    }
    Ok(())
}
