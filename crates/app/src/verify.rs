//! Verifying a project's v2 account against v1, recording the result and deciding the
//! checklist items that have an automated check.

use std::sync::Arc;

use cutover_core::checklist::{ItemStatus, ItemUpdate};
use cutover_core::{Command, Phase, ProjectKey, User};
use cutover_engine::connect::{SourceConfig, TargetConfig};
use cutover_engine::preview::StampedPreview;
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

/// Keeps `kept` at `path` (written aside, then renamed into place), or removes what was kept
/// there when there is nothing to keep. A preview that cannot be kept is only taken again by
/// the final migration: a warning, not a failure.
pub(crate) fn keep_preview(path: &std::path::Path, kept: Option<&StampedPreview>) {
    let done = match kept {
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        Some(k) => (|| {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let aside = path.with_extension("json.partial");
            std::fs::write(&aside, serde_json::to_vec(k)?)?;
            std::fs::rename(&aside, path)
        })(),
    };
    if let Err(e) = done {
        tracing::warn!(path = %path.display(), error = %e, "the overwrite preview could not be kept for the final migration");
    }
}

/// The preview kept at `path`, if there is one that reads back.
pub(crate) fn kept_preview(path: &std::path::Path) -> Option<StampedPreview> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "a kept overwrite preview cannot be read");
            return None;
        }
    };
    serde_json::from_slice(&text)
        .map_err(|e| tracing::warn!(path = %path.display(), error = %e, "a kept overwrite preview does not read back"))
        .ok()
}

impl App {
    /// The overwrite preview of the project's v2 account: what the final migration will overwrite.
    ///
    /// Where v2 keeps a change stamp (a SQLite file outside WAL mode, a PostgreSQL server) and
    /// kept it throughout, the preview is kept beside the project's recovery bundles, for the
    /// final migration that acknowledges it: as long as v2 is unchanged, that run need not take
    /// it again.
    pub async fn preview(&self, actor: &User, key: &ProjectKey) -> Result<cutover_engine::preview::Preview> {
        let project = self.project(actor, key).await?.project;
        let v2 = project.v2_url.clone().ok_or_else(|| AppError::Config(format!("project {key} has no v2 target")))?;
        let target = TargetConfig::from_url(&v2).map_err(|e| AppError::Config(e.to_string()))?;
        let pack = Arc::new(self.packs().load(&project.pack)?);
        let account_key = key.to_string();
        let kept_at = self.kept_preview_path(key);
        tokio::task::spawn_blocking(move || {
            let mut tgt = target.build()?;
            let (preview, stamp) = cutover_engine::preview::preview_alone(&pack, tgt.as_mut(), &account_key)?;
            match stamp {
                Some(stamp) => {
                    let kept = StampedPreview::new(&account_key, &pack, stamp, preview);
                    keep_preview(&kept_at, Some(&kept));
                    Ok(kept.preview)
                }
                None => {
                    keep_preview(&kept_at, None);
                    Ok(preview)
                }
            }
        })
        .await
        .map_err(|e| AppError::Config(format!("preview stopped: {e}")))?
        .map_err(AppError::Verify)
    }

    /// Where the project's last preview with a change stamp is kept ([`StampedPreview`]).
    pub(crate) fn kept_preview_path(&self, key: &ProjectKey) -> std::path::PathBuf {
        self.recovery_dir().join(key.as_str()).join("preview.json")
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
                cancel: None,
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

/// A table of the archive, checked against its seal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ArchiveCheck {
    /// v1 table.
    pub table: String,
    /// Rows and checksum at go-live.
    pub sealed: (u64, String),
    /// Rows and checksum now.
    pub now: (u64, String),
    /// Whether they agree.
    pub intact: bool,
}

impl App {
    /// Go-live: checks the gate, makes v1 read-only, seals it, and records both in the lifecycle.
    pub async fn go_live(&self, actor: &User, key: &ProjectKey) -> Result<cutover_core::Project> {
        let sp = self.project(actor, key).await?;
        // Nothing is frozen unless go-live itself would be accepted.
        let probe = cutover_core::ArchiveSeal { tables: Vec::new(), read_only: String::new() };
        sp.project.handle(Command::GoLive { seal: probe }, cutover_core::Ctx { actor, now: self.now() })?;
        let v1 =
            sp.project.v1_url.clone().ok_or_else(|| AppError::Config(format!("project {key} has no v1 source")))?;
        let source = SourceConfig::from_url(&v1).map_err(|e| AppError::Config(e.to_string()))?;
        let pack = Arc::new(self.packs().load(&sp.project.pack)?);
        let seal =
            tokio::task::spawn_blocking(move || -> std::result::Result<cutover_core::ArchiveSeal, EngineError> {
                let read_only = cutover_engine::archive::freeze(&source)?;
                let mut src = source.build()?;
                let tables = cutover_engine::archive::seal(&pack.v1, src.as_mut())?;
                Ok(cutover_core::ArchiveSeal {
                    tables: tables.into_iter().map(|t| (t.table, t.rows, t.sha256)).collect(),
                    read_only,
                })
            })
            .await
            .map_err(|e| AppError::Config(format!("go-live stopped: {e}")))?
            .map_err(AppError::Engine)?;
        Ok(self.execute(actor, key, Command::GoLive { seal }).await?.project)
    }

    /// Re-checks the v1 archive against the seal taken at go-live.
    pub async fn archive_verify(&self, actor: &User, key: &ProjectKey) -> Result<Vec<ArchiveCheck>> {
        let p = self.project(actor, key).await?.project;
        let sealed = p
            .archive
            .clone()
            .ok_or_else(|| AppError::Config(format!("project {key} has not gone live; its v1 is not sealed")))?;
        let v1 = p.v1_url.clone().ok_or_else(|| AppError::Config(format!("project {key} has no v1 source")))?;
        let source = SourceConfig::from_url(&v1).map_err(|e| AppError::Config(e.to_string()))?;
        let pack = Arc::new(self.packs().load(&p.pack)?);
        let now = tokio::task::spawn_blocking(
            move || -> std::result::Result<Vec<cutover_engine::archive::TableSeal>, EngineError> {
                let mut src = source.build()?;
                Ok(cutover_engine::archive::seal(&pack.v1, src.as_mut())?)
            },
        )
        .await
        .map_err(|e| AppError::Config(format!("archive check stopped: {e}")))?
        .map_err(AppError::Verify)?;
        Ok(sealed
            .tables
            .iter()
            .map(|(t, rows, sha)| {
                let cur = now.iter().find(|x| &x.table == t).map_or((0, String::new()), |x| (x.rows, x.sha256.clone()));
                ArchiveCheck {
                    table: t.clone(),
                    intact: cur.0 == *rows && &cur.1 == sha,
                    sealed: (*rows, sha.clone()),
                    now: cur,
                }
            })
            .collect())
    }
}
