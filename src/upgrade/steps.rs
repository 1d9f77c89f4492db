//! One upgrade from the moment it is decided to its switch: the state machine behind the journal,
//! which this file alone writes and removes. [`Upgrade::decide`] journals a plan before the
//! daemon is stopped for it, [`Upgrade::resume`] finds the upgrade a stopped or killed cosmovisor
//! left, and [`Upgrade::carry_out`] runs the steps once the daemon is stopped and removes the
//! journal when `current` points at the new version.
//!
//! Order (safer than Go's: docs/design.md "The supervisor's state machine"): make sure the new
//! binary is there and runnable → `DAEMON_RESTART_DELAY` → back up `data/` →
//! `COSMOVISOR_CUSTOM_PREUPGRADE` → `<new binary> pre-upgrade` → record the plan in
//! `upgrades/<name>/upgrade-info.json` → swap `current`. A failure at any step leaves `current` on
//! the old version and the journal where it was, so the next start resumes at that step: a backup
//! is never taken twice and a pre-upgrade that succeeded never runs again.
//!
//! What each journal phase means on resume:
//! * `stopped` ([`Phase::Decided`]): check the binary again, then back up (the supervisor has
//!   waited for the daemon that was being stopped to be gone).
//! * `backing_up`: if the backup's final folder exists the rename happened: go on; otherwise
//!   remove the staging folder and back up again.
//! * `backed_up`, `custom_pre_upgrade_done`: run the next hook.
//! * `pre_upgrade_done`: write the record and swap `current` (both idempotent).
//!
//! Before any step, `data/upgrade-info.json` is written again from the journal's plan when it is
//! missing, empty or not a valid plan: x/upgrade writes it without fsync, so a power cut can
//! empty it after we journaled, and SDK apps read it at start-up.
//!
//! Termination signals are honoured at safe points: during a download or the restart delay, by
//! cancelling a backup, after a hook process (which gets the signal too) ends, or once the backup
//! is done, before the first hook.
//! The step then ends with [`UpgradeError::Interrupted`] and the journal resumes the upgrade on
//! the next start.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use tokio::process::Command;
use tracing::{error, info, warn};

use crate::acquire::download::DownloadError;
use crate::bounded_read::{self, DOCUMENT_CAP, ReadError};
use crate::child::Ended;
use crate::config::{BackupMode, Config, format_go_duration};
use crate::home::layout::{self, BinaryError, Layout};
use crate::home::plan::Plan;
use crate::metrics::Metrics;
use crate::notify;
use crate::signals::{Interrupted, Signals};
use crate::upgrade::backup::{self, TakeError};
use crate::upgrade::copy::{CopyError, Mode};
use crate::upgrade::hook::{self, HookError};
use crate::upgrade::journal::{Journal, JournalError, Phase};

/// Exit codes of `<binary> pre-upgrade` (x/upgrade's contract); 30 (fatal) and every other code
/// are failures.
const PRE_UPGRADE_NOT_IMPLEMENTED: i32 = 1;
const PRE_UPGRADE_RETRY: i32 = 31;

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(
        "upgrade {name:?} at height {height} needs its binary at {}: put the new {daemon} binary there (chmod 755) and start cosmovisor again",
        path.display()
    )]
    BinaryMissing {
        name: String,
        height: i64,
        path: PathBuf,
        daemon: String,
    },
    #[error("upgrade {name:?}: {err}")]
    BinaryUnusable { name: String, err: BinaryError },
    #[error("upgrade {name:?}: download failed: {err}")]
    Download {
        name: String,
        err: Box<crate::acquire::download::DownloadError>,
    },
    #[error("upgrade {name:?}: cannot make {} executable: {err}", path.display())]
    Chmod {
        name: String,
        path: PathBuf,
        err: io::Error,
    },
    #[error("upgrade {name:?}: backup of {} to {} failed: {err}", from.display(), to.display())]
    Backup {
        name: String,
        from: PathBuf,
        to: PathBuf,
        err: Box<BackupFailure>,
    },
    #[error("upgrade {name:?}: COSMOVISOR_CUSTOM_PREUPGRADE {}: {reason}", path.display())]
    CustomPreUpgrade {
        name: String,
        path: PathBuf,
        reason: String,
    },
    #[error("upgrade {name:?}: {err}")]
    PreUpgrade { name: String, err: PreUpgradeError },
    #[error("upgrade {name:?}: cannot switch {} to {}: {err}", link.display(), target.display())]
    Switch {
        name: String,
        link: PathBuf,
        target: PathBuf,
        err: io::Error,
    },
    /// `data/upgrade-info.json` could not be written (`why`: to record a manual upgrade's plan,
    /// or to put a lost one back from the journal).
    #[error("upgrade {name:?}: cannot write {} {why}: {err}", path.display())]
    PlanFile {
        name: String,
        path: PathBuf,
        why: &'static str,
        err: io::Error,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("upgrade journal names an invalid upgrade: {0}")]
    JournalName(#[from] layout::NameError),
    /// A termination signal arrived; the journal holds the progress.
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl crate::exit::ExitCode for UpgradeError {
    fn exit_code(&self) -> u8 {
        match self {
            UpgradeError::Interrupted(interrupted) => crate::exit::from_signal(interrupted.signal),
            _ => crate::exit::UPGRADE_FAILED,
        }
    }
}

impl UpgradeError {
    /// A failed download of `plan`'s binary, or the signal that stopped it.
    #[must_use]
    pub fn download(plan: &Plan, err: DownloadError) -> UpgradeError {
        match err {
            DownloadError::Interrupted(interrupted) => interrupted.into(),
            err => UpgradeError::Download {
                name: plan.name.to_string(),
                err: Box::new(err),
            },
        }
    }
}

/// Why a backup failed (not a signal: that is [`UpgradeError::Interrupted`]).
#[derive(Debug, thiserror::Error)]
pub enum BackupFailure {
    /// Removing a half-taken backup left by a cosmovisor that stopped during it.
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Space(#[from] backup::SpaceError),
    #[error(transparent)]
    Copy(#[from] CopyError),
}

/// An upgrade under way: its journal is on disk from the moment it is decided until it is
/// carried out.
pub struct Upgrade {
    journal: Journal,
}

impl Upgrade {
    /// Decides to apply `plan`: journals it ([`Phase::Decided`]), before the daemon is stopped for
    /// it, so a cosmovisor killed from now on resumes this upgrade instead of starting the old
    /// binary again, which would run past the height.
    pub fn decide(plan: &Plan, layout: &Layout) -> Result<Upgrade, UpgradeError> {
        record_plan_file(layout, plan)?;
        Ok(Upgrade {
            journal: Journal::record(plan, layout)?,
        })
    }

    /// The upgrade the journal holds, left by a cosmovisor that stopped before its end, if any.
    /// One whose height is in `skip` (`--unsafe-skip-upgrades`) is abandoned: its journal is
    /// removed and `current` is left as it is.
    pub fn resume(
        layout: &Layout,
        backup_dir: &Path,
        skip: &[i64],
    ) -> Result<Option<Upgrade>, UpgradeError> {
        let path = layout.journal_file();
        let Some(journal) = Journal::load(&path, backup_dir)? else {
            return Ok(None);
        };
        if skip.contains(&journal.plan.height) {
            warn!(name = %journal.plan.name, height = journal.plan.height, "abandoning the journaled upgrade: its height is listed in --unsafe-skip-upgrades");
            Journal::finish(&path)?;
            return Ok(None);
        }
        info!(name = %journal.plan.name, height = journal.plan.height, phase = journal.phase.name(), "resuming upgrade from the journal");
        Ok(Some(Upgrade { journal }))
    }

    /// The upgrade's name, as its folder under `upgrades/` is named.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.journal.plan.name
    }

    /// The upgrade's height.
    #[must_use]
    pub fn height(&self) -> i64 {
        self.journal.plan.height
    }

    /// Runs the steps from the journal's phase on; once it returns `Ok`, `current` points at
    /// the new version and the journal is gone. Call it only once the daemon is stopped.
    pub async fn carry_out(
        self,
        cfg: &Config,
        layout: &Layout,
        signals: &mut Signals,
        metrics: &Metrics,
    ) -> Result<(), UpgradeError> {
        carry_out(cfg, layout, signals, self.journal, metrics).await
    }
}

async fn carry_out(
    cfg: &Config,
    layout: &Layout,
    signals: &mut Signals,
    mut journal: Journal,
    metrics: &Metrics,
) -> Result<(), UpgradeError> {
    let journal_path = layout.journal_file();
    let plan = journal.plan()?;
    let version_dir = layout.upgrade_dir(&plan.name);
    let bin = layout.bin_in(&version_dir);
    info!(name = %plan.name, height = plan.height, phase = journal.phase.name(), "carrying out upgrade");
    restore_plan_file(layout, &plan)?;

    if matches!(layout::check_binary(&bin), Err(BinaryError::Missing { .. }))
        && cfg.allow_download_binaries
    {
        notify::step(&format!("upgrade {}: downloading the binary", plan.name));
        crate::acquire::download::download_upgrade(cfg, layout, &plan, signals)
            .await
            .map_err(|err| UpgradeError::download(&plan, err))?;
    }
    ensure_binary(layout, &plan, &bin)?;

    if journal.phase == Phase::Decided && !cfg.restart_delay.is_zero() {
        info!(delay = %format_go_duration(cfg.restart_delay), "waiting DAEMON_RESTART_DELAY before the backup");
        notify::step(&format!(
            "upgrade {}: waiting DAEMON_RESTART_DELAY ({})",
            plan.name,
            format_go_duration(cfg.restart_delay)
        ));
        signals
            .interruptible(tokio::time::sleep(cfg.restart_delay))
            .await?;
    }

    if journal.phase < Phase::BackedUp {
        if cfg.unsafe_skip_backup {
            info!("UNSAFE_SKIP_BACKUP is set, skipping the backup of the data directory");
        } else {
            back_up(cfg, layout, signals, &plan, &mut journal, metrics).await?;
        }
        journal.advance(Phase::BackedUp, &journal_path)?;
    }
    signals.check()?;

    if journal.phase < Phase::CustomPreUpgradeDone {
        if let Some(script) = &cfg.custom_preupgrade {
            notify::step(&format!(
                "upgrade {}: running COSMOVISOR_CUSTOM_PREUPGRADE",
                plan.name
            ));
            run_custom_pre_upgrade(layout, signals, &plan, script).await?;
        }
        journal.advance(Phase::CustomPreUpgradeDone, &journal_path)?;
    }

    if journal.phase < Phase::PreUpgradeDone {
        let env = crate::home::layout::library_path_env(&version_dir);
        run_with_retries(cfg.preupgrade_max_retries, async |attempt| {
            notify::step(&format!(
                "upgrade {}: pre-upgrade, try {attempt} of {}",
                plan.name,
                u64::from(cfg.preupgrade_max_retries) + 1
            ));
            run_pre_upgrade(&bin, layout.home(), env.clone(), signals, attempt).await
        })
        .await
        .map_err(|err| match err {
            PreUpgradeError::Interrupted(interrupted) => UpgradeError::from(interrupted),
            err => UpgradeError::PreUpgrade {
                name: plan.name.to_string(),
                err,
            },
        })?;
        journal.advance(Phase::PreUpgradeDone, &journal_path)?;
    }

    switch(layout, &plan, &version_dir)?;
    crate::upgrade::fault::point("switched");
    Journal::finish(&journal_path)?;
    info!(name = %plan.name, height = plan.height, path = %bin.display(), "upgrade switched to the new binary");
    Ok(())
}

/// Makes `data/upgrade-info.json` name `plan` before the upgrade is journaled (the journal then
/// fsyncs it): a manual upgrade from the queue has no file from x/upgrade, or the previous
/// upgrade's, and the new binary reads the file at start to see its own upgrade (Go v1.7 writes
/// each queued plan there as it comes due). A file that already names the plan (a governance
/// upgrade read from it), one with a plan at a greater height (the chain's, newer than ours) and
/// something that is not a regular file are left alone.
fn record_plan_file(layout: &Layout, plan: &Plan) -> Result<(), UpgradeError> {
    let path = layout.upgrade_info_file();
    match bounded_read::read_capped(&path, DOCUMENT_CAP) {
        Ok(bytes) => {
            let names_plan = crate::home::plan::parse(&bytes, false).is_ok_and(|found| {
                found.height == plan.height && plan.name.same_as(found.name.as_str())
            });
            let newer = crate::home::plan::identify(&bytes).is_some_and(|(_, h)| h > plan.height);
            if names_plan || newer {
                return Ok(());
            }
        }
        Err(ReadError::NotRegular { .. }) => return Ok(()),
        Err(_) => {}
    }
    info!(file = %path.display(), name = %plan.name, height = plan.height, "recording the manual upgrade's plan in upgrade-info.json, as x/upgrade does for a governance upgrade");
    write_plan_file(&path, plan, "to record the manual upgrade's plan")
}

/// Writes `plan` to `data/upgrade-info.json` (`path`) atomically, as x/upgrade writes it.
fn write_plan_file(path: &Path, plan: &Plan, why: &'static str) -> Result<(), UpgradeError> {
    layout::write_atomic(path, &plan.to_upgrade_info_json(), 0o600).map_err(|err| {
        UpgradeError::PlanFile {
            name: plan.name.to_string(),
            path: path.to_path_buf(),
            why,
            err,
        }
    })
}

/// Writes `data/upgrade-info.json` from `plan` (atomically) when it is missing, empty or not a
/// valid plan. Something that is not a regular file there is left alone.
fn restore_plan_file(layout: &Layout, plan: &Plan) -> Result<(), UpgradeError> {
    let path = layout.upgrade_info_file();
    match bounded_read::read_capped(&path, DOCUMENT_CAP) {
        Ok(bytes) if crate::home::plan::parse(&bytes, false).is_ok() => return Ok(()),
        Err(err @ ReadError::NotRegular { .. }) => {
            warn!(error = %err, "cannot check upgrade-info.json against the journal; leaving it as it is");
            return Ok(());
        }
        _ => {}
    }
    warn!(file = %path.display(), name = %plan.name, height = plan.height, "upgrade-info.json is missing, empty or not a valid plan; writing it again from the upgrade journal");
    write_plan_file(&path, plan, "again from the upgrade journal")
}

/// The new binary must be a regular file we can execute. A missing execute bit is added, as Go
/// v1.5+ does, so an operator's copy without `chmod` does not stop the chain at the height.
fn ensure_binary(layout: &Layout, plan: &Plan, bin: &Path) -> Result<(), UpgradeError> {
    match layout::check_binary(bin) {
        Ok(()) => Ok(()),
        Err(BinaryError::Missing { path, .. }) => Err(UpgradeError::BinaryMissing {
            name: plan.name.to_string(),
            height: plan.height,
            path,
            daemon: layout.daemon_name().to_owned(),
        }),
        Err(BinaryError::NotExecutable { path }) => {
            warn!(path = %path.display(), "upgrade binary is not executable, adding a+x");
            layout::make_executable(&path).map_err(|err| UpgradeError::Chmod {
                name: plan.name.to_string(),
                path: path.clone(),
                err,
            })
        }
        Err(err) => Err(UpgradeError::BinaryUnusable {
            name: plan.name.to_string(),
            err,
        }),
    }
}

/// Backs up `data/`.
async fn back_up(
    cfg: &Config,
    layout: &Layout,
    signals: &mut Signals,
    plan: &Plan,
    journal: &mut Journal,
    metrics: &Metrics,
) -> Result<(), UpgradeError> {
    let journal_path = layout.journal_file();
    let data = layout.data_dir();
    let fail = |to: &Path, err: BackupFailure| UpgradeError::Backup {
        name: plan.name.to_string(),
        from: data.clone(),
        to: to.to_path_buf(),
        err: Box::new(err),
    };
    if let (Phase::BackingUp, Some(paths)) = (journal.phase, &journal.backup) {
        if paths.target.is_dir() {
            info!(path = %paths.target.display(), "backup was completed before cosmovisor stopped; not taking it again");
            return Ok(());
        }
        let partial = paths.partial.clone();
        off_the_loop(move || backup::remove_partial(&partial))
            .await
            .map_err(|err| fail(&paths.partial, err.into()))?;
    }
    let mode = backup::resolve(cfg.backup_mode, &data, &cfg.data_backup_dir);
    if cfg.backup_mode == BackupMode::Reflink && mode != Mode::Reflink {
        warn!(dir = %cfg.data_backup_dir.display(), "COSMOVISOR_BACKUP_MODE=reflink: the backup folder is not on data/'s XFS or btrfs, copying instead");
    }
    let (walked, backup_dir) = (data.clone(), cfg.data_backup_dir.clone());
    let total = off_the_loop(move || {
        backup::check_space(&walked, &backup_dir, mode).map_err(BackupFailure::from)
    })
    .await
    .map_err(|err| fail(&cfg.data_backup_dir, err))?;
    let paths = backup::choose_paths(&cfg.data_backup_dir, chrono::Local::now().date_naive());
    journal.backup = Some(paths.clone());
    journal.advance(Phase::BackingUp, &journal_path)?;

    info!(name = %plan.name, height = plan.height, to = %paths.target.display(), size = %crate::progress::human(total), mode = mode.name(), "starting to take backup of data directory");
    notify::step(&format!("upgrade {}: backing up data/", plan.name));
    let backup::Taken { stats, took } = backup::take(&data, &paths, mode, total, signals)
        .await
        .map_err(|err| match err {
            TakeError::Interrupted(interrupted) => UpgradeError::from(interrupted),
            TakeError::Copy(err) => fail(&paths.target, err.into()),
        })?;
    metrics.backup_done(took, stats.bytes - stats.linked_bytes);
    info!(
        path = %paths.target.display(),
        files = stats.files,
        bytes = stats.bytes,
        linked_bytes = stats.linked_bytes,
        mode = mode.name(),
        took = %format_go_duration(took),
        "backup completed"
    );
    if let Some(keep) = cfg.backup_keep {
        match crate::home::backups::prune(
            &cfg.data_backup_dir,
            usize::try_from(keep).unwrap_or(usize::MAX),
        ) {
            Ok(removed) => {
                for path in removed {
                    info!(path = %path.display(), keep, "removed old backup (COSMOVISOR_BACKUP_KEEP)");
                }
            }
            Err(err) => {
                warn!(dir = %cfg.data_backup_dir.display(), error = %err, "cannot prune old backups");
            }
        }
    }
    Ok(())
}

/// Runs `$DAEMON_HOME/cosmovisor/<script> <name> <height>` in `$DAEMON_HOME`.
async fn run_custom_pre_upgrade(
    layout: &Layout,
    signals: &mut Signals,
    plan: &Plan,
    script: &str,
) -> Result<(), UpgradeError> {
    // Parity: Go uses filepath.Join(root, value), so even an absolute value stays under root.
    let path = layout.root().join(script.trim_start_matches('/'));
    let fail = |reason: String| UpgradeError::CustomPreUpgrade {
        name: plan.name.to_string(),
        path: path.clone(),
        reason,
    };
    info!(file = %path.display(), "looking for COSMOVISOR_CUSTOM_PREUPGRADE file");
    match layout::check_binary(&path) {
        Ok(()) => {}
        Err(BinaryError::NotExecutable { .. }) => {
            layout::make_executable(&path)
                .map_err(|err| fail(format!("cannot add execute permission: {err}")))?;
        }
        Err(BinaryError::Missing { .. }) => {
            return Err(fail(
                "file missing: create it or unset COSMOVISOR_CUSTOM_PREUPGRADE".into(),
            ));
        }
        Err(err) => return Err(fail(err.to_string())),
    }
    let mut command = Command::new(&path);
    command
        .arg(&plan.raw_name)
        .arg(plan.height.to_string())
        .current_dir(layout.home());
    notify::keep_from(&mut command);
    let finished = hook::run(command, signals).await.map_err(|err| match err {
        HookError::Interrupted(interrupted) => UpgradeError::from(interrupted),
        HookError::Run(err) => fail(err.to_string()),
    })?;
    if !finished.status.success() {
        return Err(fail(format!(
            "exited with {}{}",
            describe(finished.status),
            finished.describe_output()
        )));
    }
    let stderr = finished.stderr.text();
    info!(command = %path.display(), argv1 = %plan.raw_name, argv2 = plan.height, result = %finished.stdout.text(), stderr = (!stderr.is_empty()).then_some(stderr), "COSMOVISOR_CUSTOM_PREUPGRADE result");
    Ok(())
}

/// What one `pre-upgrade` exit status means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreUpgradeOutcome {
    Success,
    NotImplemented,
    Retry,
    Failed,
}

/// Classifies the exit status of `<binary> pre-upgrade`. Unlike Go, an unknown code (or death by a
/// signal) is a failure, not a success (docs/design.md "Differences from Go cosmovisor").
#[must_use]
pub fn classify(status: ExitStatus) -> PreUpgradeOutcome {
    match status.code() {
        Some(0) => PreUpgradeOutcome::Success,
        Some(PRE_UPGRADE_NOT_IMPLEMENTED) => PreUpgradeOutcome::NotImplemented,
        Some(PRE_UPGRADE_RETRY) => PreUpgradeOutcome::Retry,
        Some(_) | None => PreUpgradeOutcome::Failed,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PreUpgradeError {
    #[error("pre-upgrade command failed : {0}")]
    Failed(String),
    #[error("pre-upgrade command failed. reached max attempt of retries - {max}{output}")]
    RetriesExhausted {
        max: u32,
        /// The last attempt's output ([`Ended::describe_output`]).
        output: String,
    },
    #[error("cannot run pre-upgrade: {0}")]
    Spawn(io::Error),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl From<HookError> for PreUpgradeError {
    fn from(err: HookError) -> PreUpgradeError {
        match err {
            HookError::Run(err) => PreUpgradeError::Spawn(err),
            HookError::Interrupted(interrupted) => interrupted.into(),
        }
    }
}

/// The retry policy: up to `max_retries + 1` attempts, retrying only on exit code 31.
pub async fn run_with_retries(
    max_retries: u32,
    mut attempt: impl AsyncFnMut(u32) -> Result<Ended, HookError>,
) -> Result<(), PreUpgradeError> {
    let mut number = 1;
    loop {
        let ended = attempt(number).await?;
        let status = ended.status;
        let outcome = classify(status);
        if matches!(
            outcome,
            PreUpgradeOutcome::Success | PreUpgradeOutcome::NotImplemented
        ) {
            // Parity: Go logs the hook's stdout as `result`; its stderr (Go drops it) is a field
            // too. A failure shows both in its error instead.
            let stderr = ended.stderr.text();
            info!(result = %ended.stdout.text(), stderr = (!stderr.is_empty()).then_some(stderr), "pre-upgrade result");
        }
        let output = ended.describe_output();
        match outcome {
            PreUpgradeOutcome::Success => {
                info!("pre-upgrade successful. continuing the upgrade.");
                return Ok(());
            }
            PreUpgradeOutcome::NotImplemented => {
                info!("pre-upgrade command does not exist. continuing the upgrade.");
                return Ok(());
            }
            PreUpgradeOutcome::Retry if number <= max_retries => {
                error!(error = %format!("{}{output}", describe(status)), attempt = number, "pre-upgrade command failed. retrying");
                number += 1;
            }
            PreUpgradeOutcome::Retry => {
                return Err(PreUpgradeError::RetriesExhausted {
                    max: max_retries,
                    output,
                });
            }
            PreUpgradeOutcome::Failed => {
                return Err(PreUpgradeError::Failed(format!(
                    "{}{output}",
                    describe(status)
                )));
            }
        }
    }
}

async fn run_pre_upgrade(
    bin: &Path,
    home: &Path,
    env: Option<(std::ffi::OsString, std::ffi::OsString)>,
    signals: &mut Signals,
    attempt: u32,
) -> Result<Ended, HookError> {
    info!(path = %bin.display(), attempt, "running pre-upgrade");
    let mut command = Command::new(bin);
    command.arg("pre-upgrade").current_dir(home);
    notify::keep_from(&mut command);
    if let Some((key, value)) = env {
        command.env(key, value);
    }
    hook::run(command, signals).await
}

/// Records the plan in the version folder, then points `current` at it.
fn switch(layout: &Layout, plan: &Plan, version_dir: &Path) -> Result<(), UpgradeError> {
    let fail = |err: io::Error| UpgradeError::Switch {
        name: plan.name.to_string(),
        link: layout.current_link(),
        target: version_dir.to_path_buf(),
        err,
    };
    layout::write_atomic(
        &Layout::applied_plan_file(version_dir),
        &plan.to_record_json(),
        0o644,
    )
    .map_err(fail)?;
    layout.set_current(version_dir).map_err(fail)
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => status.to_string(),
    }
}

/// Runs file-system work that may take long on a large `data/` (walking it, removing a
/// half-taken backup) on the blocking pool, so the loop keeps answering systemd's watchdog.
async fn off_the_loop<T, E>(work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<io::Error> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|err| Err(io::Error::other(err).into()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::child::Captured;

    fn exited(code: i32) -> Ended {
        Ended {
            status: ExitStatus::from_raw(code << 8),
            stdout: Captured::default(),
            stderr: Captured::default(),
        }
    }

    async fn scripted(max: u32, codes: &[i32]) -> (Result<(), PreUpgradeError>, usize) {
        let mut calls = 0;
        let result = run_with_retries(max, async |_| {
            let code = codes[calls.min(codes.len() - 1)];
            calls += 1;
            Ok(exited(code))
        })
        .await;
        (result, calls)
    }

    /// A termination signal during an attempt ends the retries at once, as `Interrupted`.
    #[tokio::test]
    async fn long_file_work_runs_off_the_loop_thread() {
        let loop_thread = std::thread::current().id();
        let ran_on = off_the_loop(|| Ok::<_, io::Error>(std::thread::current().id()))
            .await
            .unwrap();
        assert_ne!(ran_on, loop_thread);
    }

    #[tokio::test]
    async fn an_interrupted_attempt_is_not_retried() {
        let mut calls = 0;
        let result = run_with_retries(3, async |_| {
            calls += 1;
            Err(HookError::Interrupted(Interrupted {
                signal: nix::sys::signal::Signal::SIGTERM,
            }))
        })
        .await;
        assert!(matches!(
            result,
            Err(PreUpgradeError::Interrupted(Interrupted {
                signal: nix::sys::signal::Signal::SIGTERM
            }))
        ));
        assert_eq!(calls, 1);
    }

    #[test]
    fn classifies_exit_codes() {
        let status = |code: i32| ExitStatus::from_raw(code << 8);
        assert_eq!(classify(status(0)), PreUpgradeOutcome::Success);
        assert_eq!(classify(status(1)), PreUpgradeOutcome::NotImplemented);
        assert_eq!(classify(status(30)), PreUpgradeOutcome::Failed);
        assert_eq!(classify(status(31)), PreUpgradeOutcome::Retry);
        assert_eq!(classify(status(2)), PreUpgradeOutcome::Failed);
        assert_eq!(classify(ExitStatus::from_raw(9)), PreUpgradeOutcome::Failed);
    }

    #[tokio::test]
    async fn retries_on_31_until_success() {
        let (result, calls) = scripted(2, &[31, 31, 0]).await;
        result.unwrap();
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn gives_up_after_max_retries() {
        let (result, calls) = scripted(1, &[31]).await;
        assert_eq!(
            result.unwrap_err().to_string(),
            "pre-upgrade command failed. reached max attempt of retries - 1"
        );
        assert_eq!(calls, 2);
        let (result, calls) = scripted(0, &[31]).await;
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }

    /// A home whose daemon `simd` was stopped for upgrade `v2` (its binary in place, a script
    /// that answers `pre-upgrade`); the journal is recorded.
    fn decided_for_v2(home: &Path) -> (Layout, Journal) {
        let layout = Layout::new(home, "simd");
        let script = b"#!/bin/sh\nexit 0\n";
        for version in [layout.genesis_dir(), layout.upgrades_dir().join("v2")] {
            std::fs::create_dir_all(version.join("bin")).unwrap();
            std::fs::write(version.join("bin/simd"), script).unwrap();
            layout::make_executable(&version.join("bin/simd")).unwrap();
        }
        layout.set_current(&layout.genesis_dir()).unwrap();
        std::fs::create_dir_all(layout.data_dir()).unwrap();
        let info = br#"{"name":"v2","time":"0001-01-01T00:00:00Z","height":20}"#;
        std::fs::write(layout.upgrade_info_file(), info).unwrap();
        let plan = crate::home::plan::parse(info, false).unwrap();
        let journal = Journal::record(&plan, &layout).unwrap();
        (layout, journal)
    }

    /// `DAEMON_RESTART_DELAY` passes on tokio's clock (paused here, so the hour passes at once)
    /// between the stop and the backup: a millisecond before its end, the journal still says
    /// `stopped` ([`Phase::Decided`]) and no backup exists.
    #[tokio::test(start_paused = true)]
    async fn the_restart_delay_is_waited_after_the_stop_and_before_the_backup() {
        let home = tempfile::tempdir().unwrap();
        let (layout, journal) = decided_for_v2(home.path());
        let cfg = Config::from_vars(|var| match var {
            "DAEMON_HOME" => Some(home.path().into()),
            "DAEMON_NAME" => Some("simd".into()),
            "DAEMON_RESTART_DELAY" => Some("1h".into()),
            _ => None,
        })
        .unwrap();
        let mut signals = Signals::install().unwrap();
        let metrics = Metrics::default();
        let backups = || {
            std::fs::read_dir(home.path())
                .unwrap()
                .filter_map(Result::ok)
                .filter(|entry| {
                    entry
                        .file_name()
                        .to_string_lossy()
                        .starts_with(crate::home::backups::PREFIX)
                })
                .count()
        };
        let start = tokio::time::Instant::now();
        let just_before_the_end = async {
            tokio::time::sleep(cfg.restart_delay.saturating_sub(Duration::from_millis(1))).await;
            let on_disk = Journal::load(&layout.journal_file(), home.path()).unwrap();
            (on_disk.map(|journal| journal.phase), backups())
        };
        let (outcome, (phase, backups_then)) = tokio::join!(
            carry_out(&cfg, &layout, &mut signals, journal, &metrics),
            just_before_the_end
        );
        assert_eq!(phase, Some(Phase::Decided));
        assert_eq!(backups_then, 0);
        assert!(outcome.is_ok(), "switched");
        assert!(start.elapsed() >= cfg.restart_delay);
        assert_eq!(backups(), 1);
    }

    #[tokio::test]
    async fn fatal_and_unknown_codes_fail_without_retry() {
        for code in [30, 2, 255] {
            let (result, calls) = scripted(5, &[code]).await;
            assert_eq!(
                result.unwrap_err().to_string(),
                format!("pre-upgrade command failed : exit status {code}")
            );
            assert_eq!(calls, 1);
        }
        let (result, _) = scripted(0, &[1]).await;
        result.unwrap();
    }
}
