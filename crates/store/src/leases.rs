//! Run leases: one migration of a project at a time. A run holds its project's lease while it
//! works and renews it by heartbeat; a lease its holder stopped renewing (the process died)
//! expires, and the next run may take it over.

use sqlx::Row;

use crate::{Store, StoreError};

/// Who holds a project's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Project key.
    pub project: String,
    /// Who and where: user, process and host.
    pub holder: String,
    /// When it was taken (RFC 3339).
    pub since: String,
    /// Until when it holds without a renewal (unix seconds).
    pub expires_at: i64,
}

/// What taking a lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// It was free.
    Free,
    /// It had expired: its holder stopped renewing it. The run it guarded died with it.
    Expired(Lease),
}

impl Store {
    /// Takes the lease of `project` for `holder` until `until` (unix seconds), identified by
    /// `token` for renewals. Refused with [`StoreError::Leased`] while someone else holds an
    /// unexpired one at `now`.
    pub async fn take_lease(
        &self,
        project: &str,
        token: &str,
        holder: &str,
        since: &str,
        now: i64,
        until: i64,
    ) -> Result<Taken, StoreError> {
        let before = self.lease(project).await?;
        // One statement decides: it writes only when the row is absent or expired.
        let done = sqlx::query(
            "INSERT INTO run_leases (project, token, holder, since, expires_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (project) DO UPDATE SET token = excluded.token, holder = excluded.holder, \
             since = excluded.since, expires_at = excluded.expires_at WHERE run_leases.expires_at <= $6",
        )
        .bind(project.to_owned())
        .bind(token.to_owned())
        .bind(holder.to_owned())
        .bind(since.to_owned())
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if done == 0 {
            let held = self.lease(project).await?;
            return Err(StoreError::Leased(Box::new(held.unwrap_or(Lease {
                project: project.to_owned(),
                holder: "another run".into(),
                since: String::new(),
                expires_at: until,
            }))));
        }
        Ok(match before {
            Some(l) if l.expires_at <= now => Taken::Expired(l),
            _ => Taken::Free,
        })
    }

    /// Renews a lease this holder has; `false` when it has it no longer (it expired and
    /// another run took it over).
    pub async fn renew_lease(&self, project: &str, token: &str, until: i64) -> Result<bool, StoreError> {
        let n = sqlx::query("UPDATE run_leases SET expires_at = $3 WHERE project = $1 AND token = $2")
            .bind(project.to_owned())
            .bind(token.to_owned())
            .bind(until)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Gives a lease back.
    pub async fn release_lease(&self, project: &str, token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM run_leases WHERE project = $1 AND token = $2")
            .bind(project.to_owned())
            .bind(token.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The project's lease, expired or not.
    pub async fn lease(&self, project: &str) -> Result<Option<Lease>, StoreError> {
        let row = sqlx::query("SELECT holder, since, expires_at FROM run_leases WHERE project = $1")
            .bind(project.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Lease {
                project: project.to_owned(),
                holder: r.try_get(0)?,
                since: r.try_get(1)?,
                expires_at: r.try_get(2)?,
            })
        })
        .transpose()
    }
}
