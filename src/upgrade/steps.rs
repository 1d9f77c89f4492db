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
use std::path::{Path, PathBuf};

use tokio::process::Command;
use tracing::{info, warn};

use crate::acquire::download::DownloadError;
use crate::bounded_read::{self, DOCUMENT_CAP, ReadError};
use crate::config::Config;
use crate::durable;
use crate::events::{Event, Events, Step};
use crate::home::binary;
use crate::home::binary::BinaryError;
use crate::home::layout::Layout;
use crate::home::name::NameError;
use crate::home::plan::Plan;
use crate::notify;
use crate::signals::{Interrupted, Signals};
use crate::upgrade::backup::copy::CopyError;
use crate::upgrade::backup::{self, TakeError};
use crate::upgrade::hook::{self, HookError};
use crate::upgrade::journal::{Journal, JournalError, Phase};

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
    PreUpgrade {
        name: String,
        err: hook::PreUpgradeError,
    },
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
    JournalName(#[from] NameError),
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
        events: &Events,
    ) -> Result<(), UpgradeError> {
        carry_out(cfg, layout, signals, self.journal, events).await
    }
}

async fn carry_out(
    cfg: &Config,
    layout: &Layout,
    signals: &mut Signals,
    mut journal: Journal,
    events: &Events,
) -> Result<(), UpgradeError> {
    let journal_path = layout.journal_file();
    let plan = journal.plan()?;
    let version_dir = layout.upgrade_dir(&plan.name);
    let bin = layout.bin_in(&version_dir);
    let step = |step| {
        events.emit(&Event::Step {
            name: plan.name.to_string(),
            step,
        });
    };
    info!(name = %plan.name, height = plan.height, phase = journal.phase.name(), "carrying out upgrade");
    restore_plan_file(layout, &plan)?;

    if matches!(binary::check_binary(&bin), Err(BinaryError::Missing { .. }))
        && cfg.allow_download_binaries
    {
        step(Step::Downloading);
        crate::acquire::download::download_upgrade(cfg, layout, &plan, signals)
            .await
            .map_err(|err| UpgradeError::download(&plan, err))?;
    }
    ensure_binary(layout, &plan, &bin)?;

    if journal.phase == Phase::Decided && !cfg.restart_delay.is_zero() {
        step(Step::RestartDelay(cfg.restart_delay));
        signals
            .interruptible(tokio::time::sleep(cfg.restart_delay))
            .await?;
    }

    if journal.phase < Phase::BackedUp {
        if cfg.unsafe_skip_backup {
            info!("UNSAFE_SKIP_BACKUP is set, skipping the backup of the data directory");
        } else {
            back_up(cfg, layout, signals, &plan, &mut journal, events).await?;
        }
        journal.advance(Phase::BackedUp, &journal_path)?;
    }
    signals.check()?;

    if journal.phase < Phase::CustomPreUpgradeDone {
        if let Some(script) = &cfg.custom_preupgrade {
            step(Step::CustomPreUpgrade);
            run_custom_pre_upgrade(layout, signals, &plan, script).await?;
        }
        journal.advance(Phase::CustomPreUpgradeDone, &journal_path)?;
    }

    if journal.phase < Phase::PreUpgradeDone {
        let env = crate::home::binary::library_path_env(&version_dir);
        hook::run_with_retries(cfg.preupgrade_max_retries, async |attempt| {
            step(Step::PreUpgrade {
                attempt,
                tries: u64::from(cfg.preupgrade_max_retries) + 1,
            });
            hook::run_pre_upgrade(&bin, layout.home(), env.clone(), signals, attempt).await
        })
        .await
        .map_err(|err| match err {
            hook::PreUpgradeError::Interrupted(interrupted) => UpgradeError::from(interrupted),
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
    events.emit(&Event::Switched {
        name: plan.name.to_string(),
        height: plan.height,
        path: bin,
    });
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
    durable::write_atomic(path, &plan.to_upgrade_info_json(), 0o600).map_err(|err| {
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
    match binary::check_binary(bin) {
        Ok(()) => Ok(()),
        Err(BinaryError::Missing { path, .. }) => Err(UpgradeError::BinaryMissing {
            name: plan.name.to_string(),
            height: plan.height,
            path,
            daemon: layout.daemon_name().to_owned(),
        }),
        Err(BinaryError::NotExecutable { path }) => {
            warn!(path = %path.display(), "upgrade binary is not executable, adding a+x");
            binary::make_executable(&path).map_err(|err| UpgradeError::Chmod {
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
    events: &Events,
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
    let mode = backup::choose_mode(cfg.backup_mode, &data, &cfg.data_backup_dir);
    let (walked, backup_dir) = (data.clone(), cfg.data_backup_dir.clone());
    let total =
        off_the_loop(move || Ok::<_, BackupFailure>(backup::measure(&walked, &backup_dir, mode)?))
            .await
            .map_err(|err| fail(&cfg.data_backup_dir, err))?;
    let paths = backup::choose_paths(&cfg.data_backup_dir, chrono::Local::now().date_naive());
    journal.backup = Some(paths.clone());
    journal.advance(Phase::BackingUp, &journal_path)?;

    events.emit(&Event::Step {
        name: plan.name.to_string(),
        step: Step::BackingUp {
            height: plan.height,
            to: paths.target.clone(),
            size: total,
            mode: mode.name(),
        },
    });
    let backup::Taken { stats, took } = backup::take(&data, &paths, mode, total, signals)
        .await
        .map_err(|err| match err {
            TakeError::Interrupted(interrupted) => UpgradeError::from(interrupted),
            TakeError::Copy(err) => fail(&paths.target, err.into()),
        })?;
    events.emit(&Event::BackupTaken {
        path: paths.target.clone(),
        files: stats.files,
        bytes: stats.bytes,
        linked_bytes: stats.linked_bytes,
        mode: mode.name(),
        took,
    });
    backup::after_taken(&cfg.data_backup_dir, cfg.backup_keep, &paths.target);
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
    match binary::check_binary(&path) {
        Ok(()) => {}
        Err(BinaryError::NotExecutable { .. }) => {
            binary::make_executable(&path)
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
            hook::describe(finished.status),
            finished.describe_output()
        )));
    }
    let stderr = finished.stderr.text();
    info!(command = %path.display(), argv1 = %plan.raw_name, argv2 = plan.height, result = %finished.stdout.text(), stderr = (!stderr.is_empty()).then_some(stderr), "COSMOVISOR_CUSTOM_PREUPGRADE result");
    Ok(())
}

/// Records the plan in the version folder, then points `current` at it.
fn switch(layout: &Layout, plan: &Plan, version_dir: &Path) -> Result<(), UpgradeError> {
    let fail = |err: io::Error| UpgradeError::Switch {
        name: plan.name.to_string(),
        link: layout.current_link(),
        target: version_dir.to_path_buf(),
        err,
    };
    durable::write_atomic(
        &Layout::applied_plan_file(version_dir),
        &plan.to_record_json(),
        0o644,
    )
    .map_err(fail)?;
    layout.set_current(version_dir).map_err(fail)
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

    #[tokio::test]
    async fn long_file_work_runs_off_the_loop_thread() {
        let loop_thread = std::thread::current().id();
        let ran_on = off_the_loop(|| Ok::<_, io::Error>(std::thread::current().id()))
            .await
            .unwrap();
        assert_ne!(ran_on, loop_thread);
    }

    /// A home whose daemon `simd` was stopped for upgrade `v2` (its binary in place, a script
    /// that answers `pre-upgrade`); the journal is recorded.
    fn decided_for_v2(home: &Path) -> (Layout, Journal) {
        let layout = Layout::new(home, "simd");
        let script = b"#!/bin/sh\nexit 0\n";
        for version in [layout.genesis_dir(), layout.upgrades_dir().join("v2")] {
            std::fs::create_dir_all(version.join("bin")).unwrap();
            std::fs::write(version.join("bin/simd"), script).unwrap();
            binary::make_executable(&version.join("bin/simd")).unwrap();
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
        let events = Events::default();
        let backups = || {
            std::fs::read_dir(home.path())
                .unwrap()
                .filter_map(Result::ok)
                .filter(|entry| {
                    entry
                        .file_name()
                        .to_string_lossy()
                        .starts_with(crate::upgrade::backup::store::PREFIX)
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
            carry_out(&cfg, &layout, &mut signals, journal, &events),
            just_before_the_end
        );
        assert_eq!(phase, Some(Phase::Decided));
        assert_eq!(backups_then, 0);
        assert!(outcome.is_ok(), "switched");
        assert!(start.elapsed() >= cfg.restart_delay);
        assert_eq!(backups(), 1);
    }
}
