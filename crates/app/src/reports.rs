//! Reading what runs and checks left behind: run reports, the "not migrated" ledger, stored
//! verifications and recovery bundles. The CLI and the portal read them only through here, so
//! both see a project only when its user may.

use cutover_core::{DomainError, ProjectKey, User};
use cutover_engine::delta::{BundleManifest, FinalReport};
use cutover_engine::run::RunReport;
use cutover_engine::verify::VerifyReport;
use cutover_store::{LedgerFilter, LedgerRow, StoredRun};
use serde::Serialize;

use crate::{App, AppError, Result};

/// A stored run with its report decoded.
#[derive(Debug, Clone)]
pub struct RunView {
    /// The run as stored.
    pub run: StoredRun,
    /// Buckets per entity, once the run finished.
    pub report: Option<RunReport>,
    /// For a final migration: the delta and its recovery bundle.
    pub final_report: Option<FinalReport>,
}

/// The recovery bundle of one final migration.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryBundle {
    /// Run number.
    pub run: i64,
    /// When the run finished (RFC 3339).
    pub finished_at: String,
    /// The bundle's manifest.
    pub bundle: BundleManifest,
}

impl App {
    /// Every run of a project, oldest first.
    pub async fn runs(&self, actor: &User, key: &ProjectKey) -> Result<Vec<StoredRun>> {
        self.project(actor, key).await?;
        Ok(self.store().runs(key.as_str()).await?)
    }

    /// One run (the last when `run` is `None`) with its report.
    pub async fn run_view(&self, actor: &User, key: &ProjectKey, run: Option<i64>) -> Result<RunView> {
        let p = self.project(actor, key).await?.project;
        let run_no = match run {
            Some(n) => n,
            None => i64::from(
                p.last_run().map(|r| r.id).ok_or_else(|| DomainError::NotFound(format!("a run of project '{key}'")))?,
            ),
        };
        let run = self
            .store()
            .run(key.as_str(), run_no)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("run {run_no} of project '{key}'")))?;
        let undecodable = |e: serde_json::Error| AppError::Config(format!("the stored report of run {run_no}: {e}"));
        // A final run stores its delta around the usual report.
        let (report, final_report) = match (run.kind.as_str(), run.report.as_deref()) {
            (_, None) => (None, None),
            ("final", Some(text)) if !run.dry_run => {
                let f: FinalReport = serde_json::from_str(text).map_err(undecodable)?;
                (Some(f.run.clone()), Some(f))
            }
            (_, Some(text)) => (Some(serde_json::from_str(text).map_err(undecodable)?), None),
        };
        Ok(RunView { run, report, final_report })
    }

    /// The ledger rows of a run that match `filter`, and how many match without paging.
    pub async fn not_migrated(
        &self,
        actor: &User,
        key: &ProjectKey,
        run: i64,
        filter: &LedgerFilter,
    ) -> Result<(Vec<LedgerRow>, i64)> {
        self.project(actor, key).await?;
        let rows = self.store().ledger(key.as_str(), run, filter).await?;
        let total = match filter.limit {
            Some(_) => self.store().ledger_count(key.as_str(), run, filter).await?,
            None => rows.len() as i64,
        };
        Ok((rows, total))
    }

    /// A stored verification report.
    pub async fn verification(&self, actor: &User, key: &ProjectKey, id: i64) -> Result<VerifyReport> {
        self.project(actor, key).await?;
        let text = self
            .store()
            .verification(key.as_str(), id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("verification {id} of project '{key}'")))?;
        serde_json::from_str(&text).map_err(|e| AppError::Config(format!("the stored verification {id}: {e}")))
    }

    /// The recovery bundles of a project's final migrations.
    pub async fn recovery_bundles(&self, actor: &User, key: &ProjectKey) -> Result<Vec<RecoveryBundle>> {
        let mut out = Vec::new();
        for run in self.runs(actor, key).await?.into_iter().filter(|r| r.kind == "final" && !r.dry_run) {
            if let Some(f) = run.report.as_deref().and_then(|r| serde_json::from_str::<FinalReport>(r).ok()) {
                out.push(RecoveryBundle {
                    run: run.run,
                    finished_at: run.finished_at.unwrap_or_default(),
                    bundle: f.bundle,
                });
            }
        }
        Ok(out)
    }
}

/// Writes ledger rows as RFC 4180 CSV, with a header line.
pub fn write_ledger_csv(w: &mut impl std::io::Write, rows: &[LedgerRow]) -> std::io::Result<()> {
    writeln!(w, "entity,legacy_ref,key,bucket,reason,message,original")?;
    for r in rows {
        let cells = [&r.entity, &r.legacy_ref, &r.v1_key, &r.bucket, &r.reason, &r.message, &r.original];
        let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        writeln!(w, "{}", line.join(","))?;
    }
    Ok(())
}

fn csv_cell(s: &str) -> String {
    // Cells starting with = + - @ are prefixed so spreadsheets do not run them as formulas.
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_owned() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}
