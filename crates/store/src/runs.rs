//! Migration runs and their ledgers: every record not simply migrated, with its reason and original values.

use sqlx::Row;

use crate::{Store, StoreError};

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRun {
    /// Project key.
    pub project: String,
    /// Run number.
    pub run: i64,
    /// `first` or `final`.
    pub kind: String,
    /// A simulation.
    pub dry_run: bool,
    /// Who started it.
    pub started_by: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, once finished.
    pub finished_at: Option<String>,
    /// `running`, `completed` or `failed`.
    pub outcome: String,
    /// The engine's report as JSON.
    pub report: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A ledger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// Pack entity.
    pub entity: String,
    /// v1 key.
    pub v1_key: String,
    /// `TABLE:key`.
    pub legacy_ref: String,
    /// `warned`, `excluded` or `rejected`.
    pub bucket: String,
    /// Reason code.
    pub reason: String,
    /// Explanation.
    pub message: String,
    /// The v1 record as JSON.
    pub original: String,
}

/// Which ledger rows to read.
#[derive(Debug, Clone, Default)]
pub struct LedgerFilter {
    /// Only this entity.
    pub entity: Option<String>,
    /// Only this reason.
    pub reason: Option<String>,
    /// Only these buckets (all when empty).
    pub buckets: Vec<String>,
    /// At most this many rows (all when `None`).
    pub limit: Option<u32>,
    /// Rows to skip, for paging.
    pub offset: u32,
}

/// Rows per multi-row INSERT on PostgreSQL.
const LEDGER_ROWS_PER_INSERT: usize = 100;

impl Store {
    /// Records the start of a run.
    pub async fn insert_run(&self, r: &StoredRun) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO runs (project, run, kind, dry_run, started_by, started_at, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(r.project.clone())
        .bind(r.run)
        .bind(r.kind.clone())
        .bind(i64::from(r.dry_run))
        .bind(r.started_by.clone())
        .bind(r.started_at.clone())
        .bind(r.outcome.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records how a run ended.
    pub async fn finish_run(
        &self,
        project: &str,
        run: i64,
        outcome: &str,
        finished_at: &str,
        report: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE runs SET outcome = $1, finished_at = $2, report = $3, error = $4 WHERE project = $5 AND run = $6",
        )
        .bind(outcome.to_owned())
        .bind(finished_at.to_owned())
        .bind(report.map(str::to_owned))
        .bind(error.map(str::to_owned))
        .bind(project.to_owned())
        .bind(run)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Appends ledger rows of a run, numbered from `first_seq`, in one transaction.
    pub async fn append_ledger(
        &self,
        project: &str,
        run: i64,
        first_seq: i64,
        rows: Vec<LedgerRow>,
    ) -> Result<(), StoreError> {
        if let Some(path) = self.url.sqlite_path() {
            // sqlx finds each `$N` of a SQLite statement by a linear scan: bulk rows go through
            // a prepared rusqlite statement on a connection of its own instead.
            let bulk = self.bulk.clone();
            let project = project.to_owned();
            return tokio::task::spawn_blocking(move || {
                append_ledger_sqlite(&bulk, &path, &project, run, first_seq, &rows)
            })
            .await
            .map_err(|e| StoreError::Corrupt { what: "ledger writer".into(), reason: e.to_string() })?;
        }
        let mut tx = self.pool.begin().await?;
        let mut seq = first_seq;
        for chunk in rows.chunks(LEDGER_ROWS_PER_INSERT) {
            let mut sql = String::from(
                "INSERT INTO ledger (project, run, seq, entity, v1_key, legacy_ref, bucket, reason, message, original) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                let ps: Vec<String> = (1..=10).map(|k| format!("${}", i * 10 + k)).collect();
                sql.push_str(&format!("({})", ps.join(", ")));
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(project.to_owned())
                    .bind(run)
                    .bind(seq)
                    .bind(r.entity.clone())
                    .bind(r.v1_key.clone())
                    .bind(r.legacy_ref.clone())
                    .bind(r.bucket.clone())
                    .bind(r.reason.clone())
                    .bind(r.message.clone())
                    .bind(r.original.clone());
                seq += 1;
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a login session (by the hash of its token) until `expires_at` (unix seconds).
    pub async fn create_session(
        &self,
        token_hash: &str,
        email: &str,
        created_at: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO sessions (token_hash, email, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash.to_owned())
            .bind(email.to_owned())
            .bind(created_at.to_owned())
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The e-mail of a session that has not expired at `now` (unix seconds).
    pub async fn session_email(&self, token_hash: &str, now: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT email FROM sessions WHERE token_hash = $1 AND expires_at > $2")
            .bind(token_hash.to_owned())
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
    }

    /// Ends a session.
    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a verification report.
    pub async fn insert_verification(
        &self,
        project: &str,
        id: i64,
        at: &str,
        by: &str,
        clean: bool,
        report: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO verifications (project, id, at, by_user, clean, report) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(project.to_owned())
        .bind(id)
        .bind(at.to_owned())
        .bind(by.to_owned())
        .bind(i64::from(clean))
        .bind(report.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A stored verification report (JSON).
    pub async fn verification(&self, project: &str, id: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT report FROM verifications WHERE project = $1 AND id = $2")
            .bind(project.to_owned())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
    }

    /// A run.
    pub async fn run(&self, project: &str, run: i64) -> Result<Option<StoredRun>, StoreError> {
        let row = sqlx::query(
            "SELECT project, run, kind, dry_run, started_by, started_at, finished_at, outcome, report, error FROM runs WHERE project = $1 AND run = $2",
        )
        .bind(project.to_owned())
        .bind(run)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| run_from_row(&r)).transpose()
    }

    /// All runs of a project, oldest first.
    pub async fn runs(&self, project: &str) -> Result<Vec<StoredRun>, StoreError> {
        let rows = sqlx::query(
            "SELECT project, run, kind, dry_run, started_by, started_at, finished_at, outcome, report, error FROM runs WHERE project = $1 ORDER BY run",
        )
        .bind(project.to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// How many ledger rows match a filter (its paging ignored).
    pub async fn ledger_count(&self, project: &str, run: i64, f: &LedgerFilter) -> Result<i64, StoreError> {
        let (sql, binds) = ledger_where(f);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM ledger {sql}")))
            .bind(project.to_owned())
            .bind(run);
        for v in binds {
            q = q.bind(v.clone());
        }
        Ok(q.fetch_one(&self.pool).await?.try_get(0)?)
    }

    /// Ledger rows of a run, in entity and key order of writing.
    pub async fn ledger(&self, project: &str, run: i64, f: &LedgerFilter) -> Result<Vec<LedgerRow>, StoreError> {
        let (filter, binds) = ledger_where(f);
        let mut sql = format!(
            "SELECT entity, v1_key, legacy_ref, bucket, reason, message, original FROM ledger {filter} ORDER BY seq"
        );
        if let Some(limit) = f.limit {
            // Both are numbers, never user text.
            sql.push_str(&format!(" LIMIT {limit} OFFSET {}", f.offset));
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(project.to_owned()).bind(run);
        for v in binds {
            q = q.bind(v.clone());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(LedgerRow {
                    entity: r.try_get(0)?,
                    v1_key: r.try_get(1)?,
                    legacy_ref: r.try_get(2)?,
                    bucket: r.try_get(3)?,
                    reason: r.try_get(4)?,
                    message: r.try_get(5)?,
                    original: r.try_get(6)?,
                })
            })
            .collect()
    }
}

/// The WHERE clause of a ledger filter (`$1` project, `$2` run) and the values it binds after those.
fn ledger_where(f: &LedgerFilter) -> (String, Vec<&String>) {
    let mut sql = String::from("WHERE project = $1 AND run = $2");
    let mut binds = Vec::new();
    for (column, value) in [("entity", &f.entity), ("reason", &f.reason)] {
        if let Some(v) = value {
            binds.push(v);
            sql.push_str(&format!(" AND {column} = ${}", binds.len() + 2));
        }
    }
    if !f.buckets.is_empty() {
        let ps: Vec<String> = f.buckets.iter().enumerate().map(|(i, _)| format!("${}", binds.len() + 3 + i)).collect();
        sql.push_str(&format!(" AND bucket IN ({})", ps.join(", ")));
        binds.extend(f.buckets.iter());
    }
    (sql, binds)
}

fn append_ledger_sqlite(
    bulk: &std::sync::Mutex<Option<rusqlite::Connection>>,
    path: &std::path::Path,
    project: &str,
    run: i64,
    first_seq: i64,
    rows: &[LedgerRow],
) -> Result<(), StoreError> {
    let err = |e: rusqlite::Error| StoreError::Corrupt { what: "ledger".into(), reason: e.to_string() };
    let mut guard =
        bulk.lock().map_err(|_| StoreError::Corrupt { what: "ledger writer".into(), reason: "poisoned".into() })?;
    if guard.is_none() {
        let c = rusqlite::Connection::open(path).map_err(err)?;
        c.busy_timeout(std::time::Duration::from_secs(30)).map_err(err)?;
        *guard = Some(c);
    }
    let conn = guard
        .as_mut()
        .ok_or_else(|| StoreError::Corrupt { what: "ledger writer".into(), reason: "not open".into() })?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
    {
        let mut st = tx
            .prepare_cached(
                "INSERT INTO ledger (project, run, seq, entity, v1_key, legacy_ref, bucket, reason, message, original) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(err)?;
        for (i, r) in rows.iter().enumerate() {
            st.execute(rusqlite::params![
                project,
                run,
                first_seq + i as i64,
                r.entity,
                r.v1_key,
                r.legacy_ref,
                r.bucket,
                r.reason,
                r.message,
                r.original
            ])
            .map_err(err)?;
        }
    }
    tx.commit().map_err(err)
}

fn run_from_row(r: &sqlx::any::AnyRow) -> Result<StoredRun, StoreError> {
    Ok(StoredRun {
        project: r.try_get(0)?,
        run: r.try_get(1)?,
        kind: r.try_get(2)?,
        dry_run: r.try_get::<i64, _>(3)? != 0,
        started_by: r.try_get(4)?,
        started_at: r.try_get(5)?,
        finished_at: r.try_get(6)?,
        outcome: r.try_get(7)?,
        report: r.try_get(8)?,
        error: r.try_get(9)?,
    })
}
