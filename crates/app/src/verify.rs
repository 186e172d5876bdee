//! Verifying a project's v2 account against v1, recording the result and deciding the
//! checklist items that have an automated check.

use std::sync::Arc;

use cutover_core::checklist::{ItemStatus, ItemUpdate};
use cutover_core::{Command, Phase, ProjectKey, User};
use cutover_engine::connect::{SourceConfig, TargetConfig};
use cutover_engine::run::{EngineError, RunSpec};
use cutover_engine::verify::{VerifyOptions, VerifyReport, verify};
use time::format_description::well_known::Rfc3339;

use crate::{App, AppError, Result};

/// A stored verification.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its number: evidence `verify:N`.
    pub id: u32,
    /// What it found.
    pub report: VerifyReport,
    /// Checklist items decided by it: (item, passed).
    pub decided: Vec<(String, bool)>,
}

/// One line for the lifecycle and the audit log.
pub fn verify_summary(r: &VerifyReport) -> String {
    let unexplained = r.entities.iter().filter(|e| !e.explained).count();
    let unequal = r.aggregates.iter().filter(|a| !a.equal).count();
    format!(
        "{} rows compared: {} differences, {unexplained} unexplained counts, {unequal} unequal totals",
        r.rows_compared, r.differences_total
    )
}

impl App {
    /// The overwrite preview of the project's v2 account: what the final migration will overwrite.
    pub async fn preview(&self, actor: &User, key: &ProjectKey) -> Result<cutover_engine::preview::Preview> {
        let project = self.project(actor, key).await?.project;
        let v2 = project.v2_url.clone().ok_or_else(|| AppError::Config(format!("project {key} has no v2 target")))?;
        let target = TargetConfig::from_url(&v2).map_err(|e| AppError::Config(e.to_string()))?;
        let pack = Arc::new(self.packs().load(&project.pack)?);
        let account_key = key.to_string();
        tokio::task::spawn_blocking(move || {
            let mut tgt = target.build()?;
            cutover_engine::preview::preview(&pack, tgt.as_mut(), &account_key)
        })
        .await
        .map_err(|e| AppError::Config(format!("preview stopped: {e}")))?
        .map_err(AppError::Verify)
    }

    /// Verifies the project's v2 account, stores the report, and, in the parallel phase,
    /// records the outcome of the vendor checklist items that have an automated check.
    pub async fn verify(&self, actor: &User, key: &ProjectKey, opts: VerifyOptions) -> Result<Verified> {
        let project = self.project(actor, key).await?.project;
        let v1 = project.v1_url.clone().ok_or_else(|| AppError::Config(format!("project {key} has no v1 source")))?;
        let v2 = project.v2_url.clone().ok_or_else(|| AppError::Config(format!("project {key} has no v2 target")))?;
        let source = SourceConfig::from_url(&v1).map_err(|e| AppError::Config(e.to_string()))?;
        let target = TargetConfig::from_url(&v2).map_err(|e| AppError::Config(e.to_string()))?;
        let pack = Arc::new(self.packs().load(&project.pack)?);
        let scope = project.scope.clone();
        let account_key = key.to_string();
        let org = project.org.to_string();
        let report = tokio::task::spawn_blocking(move || -> std::result::Result<VerifyReport, EngineError> {
            let mut src = source.build()?;
            let mut tgt = target.build()?;
            let spec = RunSpec {
                pack: &pack,
                account_key: &account_key,
                account_name: &org,
                included: &scope.included,
                cutoff: scope.cutoff,
                options: &scope.options,
                progress: false,
            };
            verify(&spec, src.as_mut(), tgt.as_mut(), &opts)
        })
        .await
        .map_err(|e| AppError::Config(format!("verification stopped: {e}")))?
        .map_err(AppError::Verify)?;
        let summary = verify_summary(&report);
        let d = self
            .execute(actor, key, Command::RecordVerification { clean: report.clean(), summary: summary.clone() })
            .await?;
        let rec = d
            .project
            .verifications
            .last()
            .cloned()
            .ok_or_else(|| AppError::Config("verification not recorded".into()))?;
        let json = serde_json::to_string(&report).map_err(|e| AppError::Config(e.to_string()))?;
        let at = rec.at.format(&Rfc3339).unwrap_or_default();
        self.store()
            .insert_verification(key.as_str(), i64::from(rec.id), &at, actor.email.as_str(), report.clean(), &json)
            .await?;
        let mut decided = Vec::new();
        if d.project.phase == Phase::Parallel && actor.party == cutover_core::Party::Vendor {
            for item in d.project.checklist.items.iter().filter(|i| i.kind == cutover_core::PartyKind::Vendor) {
                let passed = match item.check.as_deref() {
                    Some("reconcile") => report.reconciles(),
                    Some("row_level") => report.differences_total == 0,
                    _ => continue,
                };
                let update = ItemUpdate {
                    status: if passed { ItemStatus::Passed } else { ItemStatus::Failed },
                    note: Some(format!("automated check of verification {}: {summary}", rec.id)),
                    evidence: vec![format!("verify:{}", rec.id)],
                };
                self.execute(actor, key, Command::ChecklistSet { item: item.id.clone(), update }).await?;
                decided.push((item.id.clone(), passed));
            }
        }
        Ok(Verified { id: rec.id, report, decided })
    }
}
