//! Running a migration for a project: gate, run the engine on its own thread, stream the
//! ledger into the store, record the outcome in the lifecycle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cutover_core::{Command, ProjectKey, RunKind, RunOutcome, User};
use cutover_engine::connect::{SourceConfig, Target, TargetConfig};
use cutover_engine::run::{EngineError, LedgerRecord, RunReport, RunSpec, run};
use cutover_store::{LedgerRow, StoreError, StoredRun, Taken};
use time::format_description::well_known::Rfc3339;

use crate::{App, AppError, Result};

/// How long a run's lease on its project holds without a renewal (seconds); the heartbeat
/// renews it six times as often. `CUTOVER_LEASE_SECONDS` sets another (tests use a short one).
fn lease_seconds() -> i64 {
    std::env::var("CUTOVER_LEASE_SECONDS").ok().and_then(|s| s.parse().ok()).filter(|s| *s >= 1).unwrap_or(60)
}

/// Who holds a lease: the user, and the process and host the run is in.
fn holder(actor: &User) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "this host".into(), |h| h.trim().to_owned());
    format!("{} (pid {} on {host})", actor.email, std::process::id())
}

/// A run's hold on its project: renewed by a heartbeat task until released. When a renewal
/// finds the lease gone (it expired and another run took it over), `cancel` stops the run
/// before it commits anything.
struct RunLease {
    token: String,
    cancel: Arc<AtomicBool>,
    heartbeat: tokio::task::JoinHandle<()>,
}

/// What the engine thread gives back: the run's buckets and, for a final migration, its delta.
type Done = (RunReport, Option<cutover_engine::delta::FinalReport>);

/// What the engine thread waits for once the run is recorded.
struct Go {
    scope: cutover_core::plan::Scope,
    account_name: String,
    bundle_dir: std::path::PathBuf,
}

/// Ledger rows stored per transaction.
const LEDGER_TX_ROWS: usize = 10_000;

/// What to run.
#[derive(Debug, Clone)]
pub struct MigrateRequest {
    /// Trial or final.
    pub kind: RunKind,
    /// Simulate: write nothing to v2.
    pub dry_run: bool,
    /// Why a trial migration is repeated.
    pub reason: Option<String>,
    /// Progress bars on a terminal.
    pub progress: bool,
    /// The overwrite preview the operator acknowledged (final migration).
    pub ack_overwrite: Option<String>,
}

/// A completed run.
#[derive(Debug, Clone)]
pub struct MigrateOutcome {
    /// Run number.
    pub run: u32,
    /// The engine's report.
    pub report: RunReport,
    /// For the final migration: rewritten, unchanged and deleted rows, and the recovery bundle.
    pub final_report: Option<cutover_engine::delta::FinalReport>,
}

/// One line for the lifecycle and the audit log.
pub fn summary(r: &RunReport) -> String {
    let t = r.totals();
    format!(
        "{}read {}, migrated {} ({} with warnings), excluded {}, rejected {} in {:.1} s",
        if r.dry_run { "dry run: " } else { "" },
        t.read,
        t.migrated,
        t.warned,
        t.excluded,
        t.rejected,
        r.elapsed_ms as f64 / 1000.0
    )
}

impl App {
    /// Runs a migration of a project, through its gate.
    pub async fn migrate(&self, actor: &User, key: &ProjectKey, req: MigrateRequest) -> Result<MigrateOutcome> {
        let project = self.project(actor, key).await?.project;
        // Everything that can be checked before the run is checked before the run starts.
        let v1 = project
            .v1_url
            .clone()
            .ok_or_else(|| AppError::Config(format!("project {key} has no v1 source; create it with --v1")))?;
        let source = SourceConfig::from_url(&v1).map_err(|e| AppError::Config(e.to_string()))?;
        let target = if req.dry_run {
            None
        } else {
            let v2 = project
                .v2_url
                .clone()
                .ok_or_else(|| AppError::Config(format!("project {key} has no v2 target; create it with --v2")))?;
            Some(TargetConfig::from_url(&v2).map_err(|e| AppError::Config(e.to_string()))?)
        };
        let pack = Arc::new(self.packs().load(&project.pack)?);
        let ack = if req.kind == RunKind::Final {
            let ack = req.ack_overwrite.clone().ok_or_else(|| {
                AppError::Config(format!(
                    "the final migration overwrites what changed in v2: look at `cutover preview {key}` and pass --ack-overwrite PREVIEW_ID"
                ))
            })?;
            // A run that writes takes the preview in its own transaction, before it is
            // recorded (see `run_leased`); a dry run has no transaction to take it in.
            if req.dry_run {
                let current = self.preview(actor, key).await?;
                if current.id != ack {
                    return Err(AppError::StalePreview { acknowledged: ack, current: current.id });
                }
            }
            Some(ack)
        } else {
            None
        };

        // One run of a project at a time, across processes and machines.
        let lease = self.take_lease(actor, key).await?;
        // The acknowledged preview as kept when it was taken, if v2 can tell it is unchanged since.
        let kept = match (&ack, req.dry_run) {
            (Some(_), false) => crate::verify::kept_preview(&self.kept_preview_path(key)),
            _ => None,
        };
        let result =
            self.run_leased(actor, key, &req, (source, target, pack, ack, kept), Arc::clone(&lease.cancel)).await;
        lease.heartbeat.abort();
        if let Err(e) = self.store().release_lease(key.as_str(), &lease.token).await {
            // It expires by itself.
            tracing::warn!(key = %key, error = %e, "could not give the run lease back");
        }
        result
    }

    /// Takes the project's run lease: refused while another run holds it; a lease its holder
    /// stopped renewing (the process died) is taken over, and the run it guarded is failed.
    async fn take_lease(&self, actor: &User, key: &ProjectKey) -> Result<RunLease> {
        let secs = lease_seconds();
        let token = crate::random_token();
        let now = self.now();
        let since = now.format(&Rfc3339).unwrap_or_default();
        let (t0, until) = (now.unix_timestamp(), now.unix_timestamp() + secs);
        match self.store().take_lease(key.as_str(), &token, &holder(actor), &since, t0, until).await {
            Ok(Taken::Free) => {}
            Ok(Taken::Expired(old)) => {
                let project = self.project(actor, key).await?.project;
                if let Some(run) = project.running().map(|r| r.id) {
                    let held = format!("{} since {}", old.holder, old.since);
                    tracing::warn!(key = %key, run, holder = %held, "taking over: a run's process stopped and its lease expired");
                    let failed = async {
                        self.execute(actor, key, Command::ExpireRun { run, holder: held.clone() }).await?;
                        let at = self.now().format(&Rfc3339).unwrap_or_default();
                        let why = format!("its process stopped: the lease of {held} expired");
                        self.store().finish_run(key.as_str(), i64::from(run), "failed", &at, None, Some(&why)).await?;
                        Ok::<(), AppError>(())
                    };
                    if let Err(e) = failed.await {
                        let _ = self.store().release_lease(key.as_str(), &token).await;
                        return Err(e);
                    }
                }
            }
            Err(StoreError::Leased(l)) => return Err(AppError::Locked { holder: l.holder, since: l.since }),
            Err(e) => return Err(e.into()),
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let heartbeat = {
            let (store, key, token, cancel) =
                (self.store().clone(), key.to_string(), token.clone(), Arc::clone(&cancel));
            tokio::spawn(async move {
                let every = std::time::Duration::from_millis(u64::try_from(secs * 1000 / 6).unwrap_or(10_000).max(200));
                loop {
                    tokio::time::sleep(every).await;
                    let until = time::OffsetDateTime::now_utc().unix_timestamp() + secs;
                    match store.renew_lease(&key, &token, until).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::error!(key = %key, "the run lease was taken over: stopping the run");
                            cancel.store(true, Ordering::Relaxed);
                            return;
                        }
                        Err(e) => tracing::warn!(key = %key, error = %e, "could not renew the run lease"),
                    }
                }
            })
        };
        Ok(RunLease { token, cancel, heartbeat })
    }

    /// The run itself, while its lease is held.
    async fn run_leased(
        &self,
        actor: &User,
        key: &ProjectKey,
        req: &MigrateRequest,
        prepared: (
            SourceConfig,
            Option<TargetConfig>,
            Arc<cutover_engine::pack::Pack>,
            Option<String>,
            Option<cutover_engine::preview::StampedPreview>,
        ),
        cancel: Arc<AtomicBool>,
    ) -> Result<MigrateOutcome> {
        let (source, target, pack, ack, kept) = prepared;
        // The engine thread starts before the run is recorded. For a final migration that
        // writes, it begins the run's transaction on v2 and takes the overwrite preview in it
        // (the one the run overwrites against): a stale acknowledgement is refused here, with
        // no run recorded, and the preview is taken once. It then waits for the run's number.
        let (checked_tx, checked_rx) = tokio::sync::oneshot::channel::<std::result::Result<(), EngineError>>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<Go>();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<LedgerRecord>>(4);
        let progress = req.progress;
        let account_key = key.to_string();
        let engine = std::thread::Builder::new().name("engine".into()).spawn(
            move || -> std::result::Result<Done, EngineError> {
                let mut tgt = None;
                let mut checked = None;
                if let (Some(ack), Some(t)) = (&ack, &target) {
                    let begun = t.build().map_err(EngineError::from).and_then(|mut t| {
                        let p = cutover_engine::delta::final_begin(&pack, t.as_mut(), &account_key, ack, kept)?;
                        Ok((t, p))
                    });
                    match begun {
                        Ok((t, p)) => (tgt, checked) = (Some(t), Some(p)),
                        Err(e) => {
                            let _ = checked_tx.send(Err(e));
                            return Err(EngineError::Cancelled("the final migration's preview check failed".into()));
                        }
                    }
                }
                let _ = checked_tx.send(Ok(()));
                let Ok(go) = go_rx.recv() else {
                    // The run was not recorded (a gate refused it): nothing of it may stay open.
                    if let Some(t) = tgt.as_mut() {
                        let _ = t.rollback();
                    }
                    return Err(EngineError::Cancelled("the run was not started".into()));
                };
                let mut src = source.build()?;
                if tgt.is_none() {
                    tgt = target.map(|t| t.build()).transpose()?;
                }
                let spec = RunSpec {
                    pack: &pack,
                    account_key: &account_key,
                    account_name: &go.account_name,
                    included: &go.scope.included,
                    cutoff: go.scope.cutoff,
                    options: &go.scope.options,
                    progress,
                    cancel: Some(&cancel),
                };
                let mut ledger = |batch| {
                    tx.blocking_send(batch)
                        .map_err(|_| EngineError::Ledger("the store stopped taking the ledger".into()))
                };
                match (checked, tgt.as_deref_mut()) {
                    (Some(p), Some(t)) => {
                        let f = cutover_engine::delta::final_run_checked(
                            &spec,
                            src.as_mut(),
                            t,
                            p,
                            &go.bundle_dir,
                            &mut ledger,
                        )?;
                        Ok((f.run.clone(), Some(f)))
                    }
                    (_, t) => Ok((run(&spec, src.as_mut(), t.map(|t| t as &mut dyn Target), &mut ledger)?, None)),
                }
            },
        );
        let engine = engine.map_err(|e| AppError::Config(format!("cannot start the engine thread: {e}")))?;
        // Until the run is recorded, an error here drops `go_tx`: the engine thread rolls back
        // and ends, and is waited for.
        let stop = |engine: std::thread::JoinHandle<_>| tokio::task::spawn_blocking(move || engine.join());
        match checked_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = stop(engine).await;
                return Err(match e {
                    EngineError::StalePreview { acknowledged, current } => {
                        AppError::StalePreview { acknowledged, current }
                    }
                    e => AppError::Verify(e),
                });
            }
            Err(_) => {
                let _ = stop(engine).await;
                return Err(AppError::Config("the migration engine stopped unexpectedly".into()));
            }
        }
        let d = match self
            .execute(actor, key, Command::StartRun { kind: req.kind, reason: req.reason.clone(), dry_run: req.dry_run })
            .await
        {
            Ok(d) => d,
            Err(e) => {
                drop(go_tx);
                let _ = stop(engine).await;
                return Err(e);
            }
        };
        let started =
            d.project.last_run().cloned().ok_or_else(|| AppError::Config("the run was not recorded".into()))?;
        let run_no = i64::from(started.id);
        let inserted = self
            .store()
            .insert_run(&StoredRun {
                project: key.to_string(),
                run: run_no,
                kind: req.kind.as_str().into(),
                dry_run: req.dry_run,
                started_by: actor.email.to_string(),
                started_at: started.started_at.format(&Rfc3339).unwrap_or_default(),
                finished_at: None,
                outcome: "running".into(),
                report: None,
                error: None,
            })
            .await;
        if let Err(e) = inserted {
            // The lifecycle says a run started; it must not stay "running" for ever.
            drop(go_tx);
            let _ = stop(engine).await;
            let failed =
                Command::FinishRun { run: started.id, outcome: RunOutcome::Failed, summary: Some(e.to_string()) };
            let _ = self.execute(actor, key, failed).await;
            return Err(e.into());
        }
        tracing::info!(key = %key, run = run_no, kind = req.kind.as_str(), dry_run = req.dry_run, "run started");

        let bundle_dir = self.recovery_dir().join(key.as_str()).join(format!("run-{run_no}"));
        let go = Go { scope: d.project.scope.clone(), account_name: d.project.org.to_string(), bundle_dir };
        if go_tx.send(go).is_err() {
            // The engine thread ended already; joining it below reports why.
            tracing::warn!(key = %key, run = run_no, "the engine thread ended before the run started");
        }
        // Ledger batches are stored in transactions of up to LEDGER_TX_ROWS rows: fewer commits.
        let mut seq = 0i64;
        let mut store_err = None;
        let mut pending: Vec<LedgerRow> = Vec::new();
        loop {
            let batch = rx.recv().await;
            let done = batch.is_none();
            pending.extend(batch.into_iter().flatten().map(|l| LedgerRow {
                entity: l.entity,
                v1_key: l.key,
                legacy_ref: l.legacy_ref,
                bucket: l.bucket.as_str().into(),
                reason: l.reason,
                message: l.message,
                original: l.original,
            }));
            if (done || pending.len() >= LEDGER_TX_ROWS) && !pending.is_empty() {
                let rows = std::mem::take(&mut pending);
                let n = rows.len() as i64;
                if let Err(e) = self.store().append_ledger(key.as_str(), run_no, seq, rows).await {
                    store_err = Some(e);
                    break;
                }
                seq += n;
            }
            if done {
                break;
            }
        }
        drop(rx);
        let joined = tokio::task::spawn_blocking(move || engine.join()).await;
        let result: std::result::Result<Done, AppError> = match (joined, store_err) {
            (_, Some(e)) => Err(e.into()),
            (Ok(Ok(Ok(report))), None) => Ok(report),
            // v2 changed between the operator's look and the run's own (taken in its transaction).
            (Ok(Ok(Err(EngineError::StalePreview { acknowledged, current }))), None) => {
                Err(AppError::StalePreview { acknowledged, current })
            }
            (Ok(Ok(Err(e))), None) => Err(AppError::Engine(e)),
            _ => Err(AppError::Config("the migration engine stopped unexpectedly".into())),
        };
        let now = self.now().format(&Rfc3339).unwrap_or_default();
        match result {
            Ok((report, final_report)) => {
                let mut line = summary(&report);
                if let Some(f) = &final_report {
                    let t = f.totals();
                    line = format!(
                        "{line}; v2 rows rewritten {}, inserted {}, deleted {}, unchanged {}; recovery bundle {} ({} rows)",
                        t.rewritten, t.inserted, t.deleted, t.unchanged, f.bundle.path, f.bundle.rows
                    );
                }
                let json = match &final_report {
                    Some(f) => serde_json::to_string(f),
                    None => serde_json::to_string(&report),
                }
                .map_err(|e| AppError::Config(e.to_string()))?;
                self.store().finish_run(key.as_str(), run_no, "completed", &now, Some(&json), None).await?;
                self.execute(
                    actor,
                    key,
                    Command::FinishRun { run: started.id, outcome: RunOutcome::Completed, summary: Some(line) },
                )
                .await?;
                tracing::info!(key = %key, run = run_no, "run completed");
                if final_report.is_some() {
                    // v2 changed: the kept preview is of a v2 that is no more.
                    crate::verify::keep_preview(&self.kept_preview_path(key), None);
                }
                Ok(MigrateOutcome { run: started.id, report, final_report })
            }
            Err(e) => {
                let msg = e.to_string();
                self.store().finish_run(key.as_str(), run_no, "failed", &now, None, Some(&msg)).await?;
                self.execute(
                    actor,
                    key,
                    Command::FinishRun { run: started.id, outcome: RunOutcome::Failed, summary: Some(msg) },
                )
                .await?;
                tracing::warn!(key = %key, run = run_no, error = %e, "run failed");
                Err(e)
            }
        }
    }
}
