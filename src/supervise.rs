//! `cosmovisor run`: the supervisor's one event loop.
//!
//! It owns the daemon, the plan watcher, the daemon's upgrade-line channel and the signal
//! listeners, and `select!`s over them: the daemon's exit, a plan in `upgrade-info.json`, an
//! `UPGRADE … NEEDED` line on the daemon's output, and signals (forwarded). On a plan it stops
//! the daemon gracefully, journals the upgrade and hands it to `upgrade.rs`, then relaunches the
//! daemon with the same arguments.
//!
//! Before the first launch it resumes an upgrade left in the journal by a cosmovisor that was
//! killed, and applies a plan already pending on disk (the node halted at the height, then the
//! operator restarted cosmovisor).

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::batch;
use crate::config::Config;
use crate::exit;
use crate::journal::Journal;
use crate::layout::{self, Layout};
use crate::lock::SupervisorLock;
use crate::metrics::{self, Metrics};
use crate::plan::{self, Applied, Notice, Plan};
use crate::process::{Daemon, Launch, pid_file};
use crate::signals::{self, Signals};
use crate::upgrade::{self, Outcome};
use crate::watcher::{self, Watcher};

/// After an `UPGRADE … NEEDED` line, how long we wait for `upgrade-info.json` (x/upgrade writes
/// it just before logging the line; its `info` is complete, the line's is cut at a space).
const LINE_SETTLE: Duration = Duration::from_secs(2);

/// Why one run of the daemon ended.
enum Ending {
    /// The daemon exited on its own (or after a forwarded signal).
    Exited {
        status: ExitStatus,
        line_plan: Option<Plan>,
    },
    /// A plan to apply was found while the daemon runs.
    Upgrade(Plan),
}

/// What to do after an upgrade attempt.
enum Next {
    Relaunch,
    Exit(u8),
}

struct Supervisor<'a> {
    cfg: &'a Config,
    layout: Layout,
    args: &'a [OsString],
    signals: Signals,
    metrics: Arc<Metrics>,
}

/// Runs the daemon under supervision; returns our exit code.
pub async fn run(cfg: &Config, args: &[OsString]) -> anyhow::Result<u8> {
    let layout = Layout::new(&cfg.home, &cfg.name);
    layout::check_home(&layout)?;
    check_runnable(&layout)?;
    let signals = Signals::install().context("cannot install signal handlers")?;
    let lock_path = layout.lock_file();
    let lock = SupervisorLock::try_acquire(&lock_path)
        .with_context(|| format!("cannot open lock file {}", lock_path.display()))?;
    let mut supervisor = Supervisor {
        cfg,
        layout,
        args,
        signals,
        metrics: Arc::default(),
    };
    if let Some(_held) = lock {
        supervisor.supervise().await
    } else {
        info!(lock = %lock_path.display(), "another cosmovisor supervises this home; running the command without upgrade handling");
        supervisor.pass_through().await
    }
}

impl Supervisor<'_> {
    async fn supervise(&mut self) -> anyhow::Result<u8> {
        let _metrics_server = self.serve_metrics().await;
        pid_file::wait_for_previous(&self.layout.daemon_pid_file(), self.cfg.shutdown_grace).await;
        let skip = plan::skip_heights(self.args);
        if let Next::Exit(code) = self.resume(&skip).await? {
            return Ok(code);
        }

        let current = self.current_dir()?;
        let mut watcher = Watcher::new(
            &self.layout.upgrade_info_file(),
            self.cfg.poll_interval,
            !self.cfg.disable_recase,
            skip,
            watcher::read_applied(&current),
        );
        if let Some(plan) = watcher.check_now().await {
            info!(name = %plan.name, height = plan.height, "upgrade plan pending at start-up");
            if let Next::Exit(code) = self.upgrade(Journal::record(&plan, &self.layout)?).await? {
                return Ok(code);
            }
            watcher.set_applied(applied_of(&plan));
        }

        let (line_tx, mut line_rx) = mpsc::unbounded_channel();
        let mut restart = false;
        loop {
            // Notices from an earlier run of the daemon are stale now.
            while line_rx.try_recv().is_ok() {}
            let manual = batch::next_due(
                &self.layout.batch_file(),
                watcher.applied(),
                !self.cfg.disable_recase,
            )?;
            let args = match &manual {
                Some(plan) => {
                    let args = batch::with_halt_height(self.args, plan.height);
                    info!(name = %plan.name, height = plan.height, halt_height_added = args.is_some(), "manual upgrade scheduled; the node halts at its height");
                    args.unwrap_or_else(|| self.args.to_vec())
                }
                None => self.args.to_vec(),
            };
            let mut daemon = self.launch(&args, &line_tx)?;
            self.metrics.daemon_started(restart);
            restart = true;
            let (ending, terminated_by) = self
                .watch(&mut daemon, &mut watcher, &mut line_rx, manual.as_ref())
                .await?;
            let (plan, journal) = match ending {
                Ending::Exited { status, line_plan } => {
                    self.metrics.daemon_exited(exit::from_status(status));
                    pid_file::remove(&self.layout.daemon_pid_file());
                    daemon.drain_output().await;
                    // The node may have written the plan just before dying (Go checks too),
                    // or reported its halt at a manual upgrade's height as it exited.
                    let plan = if terminated_by.is_some() {
                        None
                    } else {
                        watcher
                            .check_now()
                            .await
                            .or(line_plan)
                            .or_else(|| halted_for(&mut line_rx, manual.as_ref()))
                    };
                    match plan {
                        Some(plan) => {
                            let journal = Journal::record(&plan, &self.layout)?;
                            (plan, journal)
                        }
                        None => return Ok(exit::from_status(status)),
                    }
                }
                Ending::Upgrade(plan) => {
                    // Journaled before the stop: a cosmovisor killed while the node shuts down
                    // resumes this upgrade (after waiting for that node) instead of starting the
                    // old binary again, which would run past the height.
                    let journal = Journal::record(&plan, &self.layout)?;
                    info!(name = %plan.name, height = plan.height, "daemon shutting down in an attempt to restart");
                    let (status, stop_signal) = daemon
                        .stop(self.cfg.shutdown_grace, &mut self.signals)
                        .await?;
                    self.metrics.daemon_exited(exit::from_status(status));
                    pid_file::remove(&self.layout.daemon_pid_file());
                    daemon.drain_output().await;
                    if let Some(sig) = stop_signal.or(terminated_by) {
                        // Stop as asked; the next start carries the journaled upgrade out.
                        return Ok(exit::from_signal(sig));
                    }
                    (plan, journal)
                }
            };
            let next = self.upgrade(journal).await?;
            if let Err(err) = batch::remove(&self.layout.batch_file(), &plan) {
                warn!(error = %err, "cannot remove the applied plan from the manual upgrade queue");
            }
            match next {
                Next::Relaunch => watcher.set_applied(applied_of(&plan)),
                Next::Exit(code) => return Ok(code),
            }
        }
    }

    /// Before the first launch: removes what a crash left half-written and resumes (or abandons)
    /// the upgrade in the journal.
    async fn resume(&mut self, skip: &[i64]) -> anyhow::Result<Next> {
        for path in layout::remove_crash_leftovers(&self.layout) {
            info!(path = %path.display(), "removed a temp file left by an interrupted write");
        }
        let path = self.layout.journal_file();
        let Some(journal) = Journal::load(&path, &self.cfg.data_backup_dir)? else {
            return Ok(Next::Relaunch);
        };
        if skip.contains(&journal.plan.height) {
            warn!(name = %journal.plan.name, height = journal.plan.height, "abandoning the journaled upgrade: its height is listed in --unsafe-skip-upgrades");
            Journal::finish(&path)?;
            return Ok(Next::Relaunch);
        }
        info!(name = %journal.plan.name, height = journal.plan.height, phase = journal.phase.name(), "resuming upgrade from the journal");
        self.upgrade(journal).await
    }

    /// Carries out the upgrade `journal` records.
    async fn upgrade(&mut self, journal: Journal) -> anyhow::Result<Next> {
        let name = journal.plan.name.clone();
        let outcome = upgrade::carry_out(
            self.cfg,
            &self.layout,
            &mut self.signals,
            journal,
            &self.metrics,
        )
        .await?;
        if outcome == Outcome::Switched {
            self.metrics.upgrade_done();
        }
        match outcome {
            Outcome::Switched if self.cfg.restart_after_upgrade => {
                info!(app = %self.cfg.name, name = %name, "upgrade detected, relaunching");
                Ok(Next::Relaunch)
            }
            Outcome::Switched => {
                info!(app = %self.cfg.name, name = %name, "upgrade detected, DAEMON_RESTART_AFTER_UPGRADE is off. Verify new upgrade and start cosmovisor again.");
                Ok(Next::Exit(exit::OK))
            }
            Outcome::Interrupted(sig) => {
                warn!(signal = %sig, name = %name, "upgrade interrupted; it resumes on the next start");
                Ok(Next::Exit(exit::from_signal(sig)))
            }
        }
    }

    /// Starts the metrics endpoint when `COSMOVISOR_METRICS_ADDR` is set. A port that cannot be
    /// bound is logged, not fatal: metrics must never keep a validator from running.
    async fn serve_metrics(&self) -> Option<metrics::Server> {
        let addr = self.cfg.metrics_addr?;
        let result = metrics::serve(
            addr,
            Arc::clone(&self.metrics),
            self.layout.clone(),
            !self.cfg.disable_recase,
        )
        .await;
        match result {
            Ok(server) => Some(server),
            Err(err) => {
                warn!(addr = %addr, error = %err, "cannot serve metrics (COSMOVISOR_METRICS_ADDR); running without them");
                None
            }
        }
    }

    /// The version folder `current` points at, creating `current → genesis` on a home that has
    /// only `genesis/` (what Go does on first run).
    fn current_dir(&self) -> anyhow::Result<std::path::PathBuf> {
        let dir = self.layout.version_to_run()?;
        // `version_to_run` falls back to genesis only while the link does not exist.
        if std::fs::symlink_metadata(self.layout.current_link()).is_err() {
            info!(link = %self.layout.current_link().display(), "creating the current symlink to genesis");
            self.layout.set_current(&dir).with_context(|| {
                format!("cannot create {}", self.layout.current_link().display())
            })?;
        }
        Ok(dir)
    }

    /// Starts the binary `current` points at.
    fn launch(
        &self,
        args: &[OsString],
        lines: &mpsc::UnboundedSender<Notice>,
    ) -> anyhow::Result<Daemon> {
        let version_dir = self.current_dir()?;
        let bin = self.layout.bin_in(&version_dir);
        layout::check_binary(&bin)?;
        info!(path = %bin.display(), args = ?args, "running app");
        let env = crate::process::library_path_env(&version_dir)
            .into_iter()
            .collect();
        let daemon = Daemon::spawn(
            &Launch {
                bin: &bin,
                args,
                cwd: None,
                env,
            },
            lines,
        )?;
        if let Err(err) = pid_file::write(&self.layout.daemon_pid_file(), daemon.pid()) {
            warn!(error = %err, "cannot record the daemon's pid");
        }
        Ok(daemon)
    }

    /// Waits for the daemon to end or for a plan, forwarding signals meanwhile. Also returns the
    /// first termination signal that was forwarded, if any.
    async fn watch(
        &mut self,
        daemon: &mut Daemon,
        watcher: &mut Watcher,
        lines: &mut mpsc::UnboundedReceiver<Notice>,
        manual: Option<&Plan>,
    ) -> anyhow::Result<(Ending, Option<Signal>)> {
        let recase = !self.cfg.disable_recase;
        let mut line_plan: Option<(Plan, Instant)> = None;
        let mut terminated_by = None;
        loop {
            let settle_deadline = line_plan.as_ref().map(|(_, deadline)| *deadline);
            let settled = async {
                match settle_deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                status = daemon.wait() => {
                    let status = status.context("cannot wait for the daemon")?;
                    let line_plan = line_plan.map(|(plan, _)| plan);
                    return Ok((Ending::Exited { status, line_plan }, terminated_by));
                }
                plan = watcher.next(), if terminated_by.is_none() => {
                    return Ok((Ending::Upgrade(plan), None));
                }
                Some(notice) = lines.recv() => {
                    if line_plan.is_some() || terminated_by.is_some() {
                        continue;
                    }
                    let line = match notice {
                        Notice::Upgrade(line) => line,
                        Notice::Halted(height) => {
                            if let Some(plan) = manual.filter(|plan| height >= plan.height) {
                                info!(name = %plan.name, height, "node halted at the manual upgrade height");
                                return Ok((Ending::Upgrade(plan.clone()), None));
                            }
                            continue;
                        }
                    };
                    match Plan::from_line(&line, recase) {
                        Ok(plan) if watcher.wants(&plan) => {
                            info!(name = %plan.name, height = plan.height, "upgrade line seen on the daemon's output");
                            line_plan = Some((plan, Instant::now() + LINE_SETTLE));
                        }
                        Ok(_) => {}
                        Err(err) => warn!(error = %err, "ignoring an invalid upgrade line on the daemon's output"),
                    }
                }
                () = settled => {
                    if let Some((plan, _)) = line_plan.take() {
                        let plan = watcher.check_now().await.unwrap_or(plan);
                        return Ok((Ending::Upgrade(plan), None));
                    }
                }
                sig = self.signals.recv() => {
                    daemon.signal(sig);
                    if signals::is_termination(sig) && terminated_by.is_none() {
                        terminated_by = Some(sig);
                    }
                }
            }
        }
    }

    /// Runs the command without upgrade handling (another cosmovisor supervises this home).
    async fn pass_through(&mut self) -> anyhow::Result<u8> {
        let version_dir = self.layout.current_dir()?;
        let bin = self.layout.bin_in(&version_dir);
        layout::check_binary(&bin)?;
        let env = crate::process::library_path_env(&version_dir)
            .into_iter()
            .collect();
        let status = run_forwarding(&bin, self.args, env, &mut self.signals).await?;
        Ok(exit::from_status(status))
    }
}

/// Checks, changing nothing, that there is a binary to run: `current`'s (or genesis' when
/// `current` is still to be created).
fn check_runnable(layout: &Layout) -> anyhow::Result<()> {
    layout::check_binary(&layout.bin_in(&layout.version_to_run()?))?;
    Ok(())
}

/// A manual plan whose halt the daemon reported on its way out (still in the channel).
fn halted_for(lines: &mut mpsc::UnboundedReceiver<Notice>, manual: Option<&Plan>) -> Option<Plan> {
    let plan = manual?;
    while let Ok(notice) = lines.try_recv() {
        if matches!(notice, Notice::Halted(height) if height >= plan.height) {
            info!(name = %plan.name, height = plan.height, "node halted at the manual upgrade height");
            return Some(plan.clone());
        }
    }
    None
}

fn applied_of(plan: &Plan) -> Applied {
    Applied {
        name: Some(plan.name.as_str().to_owned()),
        height: plan.height,
    }
}

/// Runs `<daemon> <args>` once with output passing through and signals forwarded (for
/// `version`); returns its exit status.
pub async fn run_plain(
    bin: &Path,
    args: &[OsString],
    env: Vec<(OsString, OsString)>,
) -> anyhow::Result<ExitStatus> {
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    run_forwarding(bin, args, env, &mut signals).await
}

/// Runs a binary to its end without upgrade handling, forwarding every signal to it.
async fn run_forwarding(
    bin: &Path,
    args: &[OsString],
    env: Vec<(OsString, OsString)>,
    signals: &mut Signals,
) -> anyhow::Result<ExitStatus> {
    let (line_tx, _line_rx) = mpsc::unbounded_channel();
    let launch = Launch {
        bin,
        args,
        cwd: None,
        env,
    };
    let mut daemon = Daemon::spawn(&launch, &line_tx)?;
    let status = loop {
        tokio::select! {
            status = daemon.wait() => break status.context("cannot wait for the daemon")?,
            sig = signals.recv() => daemon.signal(sig),
        }
    };
    daemon.drain_output().await;
    Ok(status)
}
