//! `cosmovisor run`: the supervisor's one event loop.
//!
//! It owns the daemon, the plan watcher, the daemon's upgrade-line channel and the signal
//! listeners, and `select!`s over them: the daemon's exit, a plan in `upgrade-info.json`, an
//! `UPGRADE … NEEDED` line on the daemon's output, and signals (forwarded). On a plan it has
//! `upgrade/steps.rs` decide the upgrade (which journals it), stops the daemon gracefully, has
//! the upgrade carried out, then relaunches the daemon with the same arguments. The journal is
//! the upgrade's business: nothing here reads or writes it.
//!
//! The daemon's output is a hint, never an authority (docs/design.md "Trust boundaries"): an
//! upgrade line only makes us read `upgrade-info.json` at once, and only a plan in that file is
//! applied; a line the file does not confirm within [`LINE_SETTLE`] earns one warning and nothing
//! else. A halt line counts for a queued manual upgrade once the daemon has exited on its own after
//! printing it, or, for a node that keeps running after its halt (SDK 0.50), once the node's RPC
//! confirms its height.
//!
//! A change of the manual-upgrade queue while the node runs is acted on at once: when the queue's
//! lowest height is not the `--halt-height` the node runs with, the node is restarted gracefully
//! with the right one (unless its authenticated RPC says it is already past that height). A plan
//! in `upgrade-info.json` that can never be applied, and a queue that cannot be used, stop the
//! node and cosmovisor with an error, the same one a start with them gives.
//! Those decisions about manual upgrades, and the questions to the node's RPC, are `manual.rs`.
//!
//! Before the first launch it resumes the upgrade a cosmovisor that was stopped or killed left
//! under way, and applies a plan already pending on disk (the node halted at the height, then the
//! operator restarted cosmovisor).
//!
//! `Supervisor::supervise` reads as its steps: `start_up` (wait for a daemon a killed cosmovisor
//! left, `resume` the journaled upgrade, `apply_pending`), then, until the daemon ends for good,
//! `run_once` (launch with `launch_args`, then `run_until_ending`, the one `select!` loop) and
//! `after_run` (reap the daemon, or stop it with `stop_for_upgrade`; `plan_after_exit`; carry the
//! upgrade out). A step stopped by a termination signal returns `Interrupted`, which ends the run
//! with `128 + N`.

use std::ffi::OsString;
use std::ops::ControlFlow;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use manual::{HeightChecks, Verdict, halt_args, halted_for};

use crate::config::Config;
use crate::events::{Event, Events, Observer};
use crate::exit;
use crate::home::binary;
use crate::home::layout::{self, Layout};
use crate::home::plan::{self, Applied, LinePlan, Plan};
use crate::home::queue;
use crate::metrics::Metrics;
use crate::notify;
use crate::signals::{Interrupted, Signals};
use crate::supervisor::events::WebhookMessages;
use crate::supervisor::lock::{self, SupervisorLock};
use crate::supervisor::metrics_endpoint;
use crate::supervisor::node_rpc::NodeRpc;
use crate::supervisor::outlook::{self, DownloadSlot};
use crate::supervisor::output::Hints;
use crate::supervisor::process::{self, Daemon, Launch, pid_file};
use crate::supervisor::watcher::{Change, UnusablePlan, Watcher};
use crate::supervisor::webhook::Webhook;
use crate::upgrade::steps::{Upgrade, UpgradeError};

mod manual;

/// After an `UPGRADE … NEEDED` line, how long `upgrade-info.json` has to confirm it (x/upgrade
/// writes the file just before logging the line) before we warn and let the node run on.
const LINE_SETTLE: Duration = Duration::from_secs(2);

/// How long what a pass-through command leaves behind has between SIGTERM and SIGKILL (there is
/// no `DAEMON_SHUTDOWN_GRACE` at hand for `version` and pass-through runs).
const LEFTOVER_GRACE: Duration = Duration::from_secs(5);

/// How long the webhook's last messages may hold up cosmovisor's exit.
const WEBHOOK_FLUSH: Duration = Duration::from_secs(3);

/// Why one run of the daemon ended.
enum Ending {
    /// The daemon exited on its own (or after a forwarded signal).
    Exited(ExitStatus),
    /// A plan to apply was found while the daemon runs.
    Upgrade(Plan),
    /// The manual-upgrade queue asks for another `--halt-height` than the daemon runs with.
    Restart,
    /// `upgrade-info.json` holds a plan that can never be applied.
    Unusable(UnusablePlan),
    /// The manual-upgrade queue cannot be used.
    InvalidQueue(queue::BatchError),
}

/// One run of the daemon, ended, with what is left to act on.
struct Run {
    daemon: Daemon,
    hints: Hints,
    /// The arguments it was launched with.
    args: Vec<OsString>,
    /// The manual upgrade due while it ran (its `--halt-height` was passed), if any.
    manual: Option<Plan>,
    ending: Ending,
}

/// What to do next: launch the daemon again, or stop with this exit code.
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
    /// Held while an upgrade is carried out, so no download ahead runs meanwhile
    /// (`supervisor/outlook.rs`).
    download_slot: DownloadSlot,
    /// The event stream's dispatcher (docs/design.md "One event stream").
    events: Events,
    /// The webhook's delivery, flushed before exiting.
    webhook: Option<Webhook>,
    /// The upgrade whose `upgrade_started` was told (when the node was stopped for it).
    announced: Option<String>,
    /// The upgrade carried out whose `upgrade_completed` waits for the new binary's launch.
    completed: Option<(String, i64)>,
}

/// Runs the daemon under supervision; returns our exit code.
pub async fn run(cfg: &Config, args: &[OsString]) -> anyhow::Result<u8> {
    let layout = Layout::new(&cfg.home, &cfg.name);
    layout::check_home(&layout)?;
    check_runnable(&layout)?;
    let signals = Signals::install().context("cannot install signal handlers")?;
    process::become_subreaper();
    let root = layout.root().to_path_buf();
    let lock = SupervisorLock::try_acquire(&root)
        .with_context(|| format!("cannot lock {}", lock::lock_file(&root).display()))?;
    if lock.is_none() && args.first().is_some_and(|first| first == "start") {
        return Err(lock::HomeBusy {
            lock: lock::lock_file(&root),
            holder: lock::holder(&root),
        }
        .into());
    }
    let metrics = Arc::default();
    let webhook = cfg.webhook_url.as_deref().map(Webhook::start);
    let messages: Vec<Arc<dyn Observer>> = webhook
        .iter()
        .map(|webhook| {
            Arc::new(WebhookMessages::new(&cfg.name, webhook.clone())) as Arc<dyn Observer>
        })
        .collect();
    let mut supervisor = Supervisor {
        cfg,
        layout,
        args,
        signals,
        events: Events::standard(&cfg.name, &metrics, messages),
        metrics,
        download_slot: DownloadSlot::default(),
        webhook,
        announced: None,
        completed: None,
    };
    notify::init();
    let result = if let Some(_held) = lock {
        supervisor.supervise().await.or_else(stopped_by_signal)
    } else {
        info!(lock = %lock::lock_file(&root).display(), "another cosmovisor supervises this home; running the command without upgrade handling");
        supervisor.pass_through().await
    };
    supervisor.events.emit(&Event::Exiting {
        error: result.as_ref().err().map(|err| format!("{err:#}")),
    });
    if let Some(webhook) = &supervisor.webhook {
        webhook.flush(WEBHOOK_FLUSH).await;
    }
    result
}

impl Supervisor<'_> {
    /// Supervises the daemon, upgrade after upgrade, until it ends for good.
    async fn supervise(&mut self) -> anyhow::Result<u8> {
        self.events.emit(&Event::SupervisorStarted {
            download_enabled: self.cfg.allow_download_binaries,
        });
        let _metrics_server = self.serve_metrics().await;
        let (cfg, layout) = (self.cfg, self.layout.clone());
        let slot = Arc::clone(&self.download_slot);
        let events = self.events.clone();
        tokio::select! {
            result = self.supervise_steps() => result,
            never = outlook::watch(cfg, &layout, &slot, &events) => match never {},
        }
    }

    /// [`Supervisor::supervise`]'s steps: start-up, then run after run.
    async fn supervise_steps(&mut self) -> anyhow::Result<u8> {
        let mut watcher = match self.start_up().await? {
            ControlFlow::Continue(watcher) => watcher,
            ControlFlow::Break(code) => return Ok(code),
        };
        let mut restart = false;
        loop {
            let run = self.run_once(&mut watcher, restart).await?;
            restart = true;
            if let Next::Exit(code) = self.after_run(run, &mut watcher).await? {
                return Ok(code);
            }
        }
    }

    /// Before the first launch: waits for a daemon a killed cosmovisor left, resumes the journaled
    /// upgrade and applies a plan already pending on disk; then the watcher to run with (or the
    /// exit code when one of those ends the run).
    async fn start_up(&mut self) -> anyhow::Result<ControlFlow<u8, Watcher>> {
        notify::keep_alive(pid_file::wait_for_previous(
            &self.layout.daemon_pid_file(),
            self.cfg.shutdown_grace,
        ))
        .await;
        let skip = plan::skip_heights(self.args);
        if let Next::Exit(code) = self.resume(&skip).await? {
            return Ok(ControlFlow::Break(code));
        }
        let mut watcher = self.new_watcher(skip)?;
        if let Next::Exit(code) = self.apply_pending(&mut watcher).await? {
            return Ok(ControlFlow::Break(code));
        }
        Ok(ControlFlow::Continue(watcher))
    }

    /// The plan watcher, told which upgrade the version `current` points at applied.
    fn new_watcher(&self, skip: Vec<i64>) -> anyhow::Result<Watcher> {
        let current = self.ensure_current_link()?;
        Ok(Watcher::new(
            &self.layout.upgrade_info_file(),
            &self.layout.batch_file(),
            self.cfg.poll_interval,
            !self.cfg.disable_recase,
            skip,
            plan::read_applied(&current),
        ))
    }

    /// Carries out a plan already pending on disk before the first launch (the node halted at
    /// the height, then the operator restarted cosmovisor).
    async fn apply_pending(&mut self, watcher: &mut Watcher) -> anyhow::Result<Next> {
        let Some(plan) = watcher.check_now().await? else {
            return Ok(Next::Relaunch);
        };
        info!(name = %plan.name, height = plan.height, "upgrade plan pending at start-up");
        let upgrade = Upgrade::decide(&plan, &self.layout)?;
        self.apply(&plan, upgrade, watcher).await
    }

    /// Launches the daemon and runs it until its run ends.
    async fn run_once(&mut self, watcher: &mut Watcher, restart: bool) -> anyhow::Result<Run> {
        let mut manual = queue::next_due(
            &self.layout.batch_file(),
            watcher.applied(),
            !self.cfg.disable_recase,
            watcher.skip_heights(),
        )?;
        let args = self.launch_args(manual.as_ref());
        let (mut daemon, mut hints, version) = self.launch(&args)?;
        self.events.emit(&Event::DaemonRunning { version, restart });
        if let Some((name, height)) = self.completed.take() {
            self.events.emit(&Event::Completed {
                name,
                height,
                restarted: true,
            });
        }
        let ending = self
            .run_until_ending(&mut daemon, watcher, &mut hints, &mut manual, &args)
            .await?;
        Ok(Run {
            daemon,
            hints,
            args,
            manual,
            ending,
        })
    }

    /// The daemon's arguments for the next launch: the operator's, with `--halt-height` added
    /// for a due manual upgrade.
    fn launch_args(&self, manual: Option<&Plan>) -> Vec<OsString> {
        let args = halt_args(self.args, manual);
        if let Some(plan) = manual {
            let added = args.len() > self.args.len();
            info!(name = %plan.name, height = plan.height, halt_height_added = added, "manual upgrade scheduled; the node halts at its height");
        }
        args
    }

    /// Acts on how a run of the daemon ended: the daemon is reaped (stopped first when it still
    /// runs), and a plan is carried out.
    async fn after_run(&mut self, run: Run, watcher: &mut Watcher) -> anyhow::Result<Next> {
        let Run {
            mut daemon,
            hints,
            args,
            manual,
            ending,
        } = run;
        let (plan, upgrade) = match ending {
            Ending::Exited(status) => {
                self.reaped(&mut daemon, status).await;
                let halt = halted_for(
                    &hints,
                    manual.as_ref(),
                    &args,
                    status,
                    daemon.last_signalled(),
                );
                let Some(plan) = self.plan_after_exit(watcher, halt).await? else {
                    let code = exit::from_status(status);
                    if self.signals.interrupted().is_ok() {
                        self.events.emit(&Event::DaemonExited { code });
                    }
                    return Ok(Next::Exit(code));
                };
                let upgrade = Upgrade::decide(&plan, &self.layout)?;
                (plan, upgrade)
            }
            Ending::Upgrade(plan) => {
                let upgrade = self.stop_for_upgrade(&mut daemon, &plan).await?;
                (plan, upgrade)
            }
            Ending::Restart => {
                let why = format!("restarting {} with a new --halt-height", self.cfg.name);
                self.stop_daemon(&mut daemon, &why).await?;
                self.signals.interrupted()?;
                return Ok(Next::Relaunch);
            }
            Ending::Unusable(unusable) => {
                error!(file = %unusable.file.display(), error = %unusable.err, "upgrade plan can never be applied; stopping the node");
                let why = format!(
                    "stopping {}: the upgrade plan can never be applied",
                    self.cfg.name
                );
                self.stop_daemon(&mut daemon, &why).await?;
                return Err(unusable.into());
            }
            Ending::InvalidQueue(err) => {
                error!(error = %err, "the manual upgrade queue cannot be used; stopping the node");
                let why = format!(
                    "stopping {}: the manual upgrade queue cannot be used",
                    self.cfg.name
                );
                self.stop_daemon(&mut daemon, &why).await?;
                return Err(err.into());
            }
        };
        let applied = self.apply(&plan, upgrade, watcher).await;
        // Done, or interrupted with the journal to carry it to its end on the next start: either
        // way the queue no longer needs the plan.
        if applied
            .as_ref()
            .map_or_else(anyhow::Error::is::<Interrupted>, |_| true)
        {
            if let Err(err) = queue::remove(&self.layout.batch_file(), &plan) {
                warn!(error = %err, "cannot remove the applied plan from the manual upgrade queue");
            }
        }
        applied
    }

    /// After the daemon exited on its own: the plan to apply now, if any. The node may have
    /// written the plan just before dying (Go checks too), or halted at a manual upgrade's height
    /// (`halt`, judged by [`halted_for`]). None once a termination signal arrived: we stop too.
    async fn plan_after_exit(
        &mut self,
        watcher: &mut Watcher,
        halt: Option<Plan>,
    ) -> anyhow::Result<Option<Plan>> {
        if self.signals.interrupted().is_err() {
            return Ok(None);
        }
        Ok(watcher.check_now().await?.or(halt))
    }

    /// Decides the upgrade to `plan` and stops the daemon for it. The upgrade is journaled before
    /// the stop: a cosmovisor killed while the node shuts down resumes it (after waiting for
    /// that node) instead of starting the old binary again, which would run past the height. A
    /// journal that cannot be written (disk full) still stops the node first: never orphan it.
    async fn stop_for_upgrade(
        &mut self,
        daemon: &mut Daemon,
        plan: &Plan,
    ) -> anyhow::Result<Upgrade> {
        let decided = Upgrade::decide(plan, &self.layout);
        info!(name = %plan.name, height = plan.height, "daemon shutting down in an attempt to restart");
        self.events.emit(&Event::Started {
            name: plan.name.to_string(),
            height: plan.height,
        });
        self.announced = Some(plan.name.to_string());
        let why = format!(
            "upgrade {} at height {}: stopping {}",
            plan.name, plan.height, self.cfg.name
        );
        self.stop_daemon(daemon, &why).await?;
        let upgrade = decided.with_context(|| {
            format!(
                "upgrade {} at height {} not started: the node was stopped; fix the cause below and start cosmovisor again",
                plan.name, plan.height
            )
        })?;
        // Stop as asked; the next start carries the journaled upgrade out.
        self.signals.interrupted()?;
        Ok(upgrade)
    }

    /// Stops the daemon gracefully and reaps it, telling systemd `why` and keeping its timeouts
    /// at bay meanwhile. A termination signal that arrives meanwhile is forwarded and remembered
    /// ([`Signals::interrupted`]).
    async fn stop_daemon(&mut self, daemon: &mut Daemon, why: &str) -> anyhow::Result<()> {
        self.events.emit(&Event::StoppingNode {
            why: why.to_owned(),
            grace: self.cfg.shutdown_grace,
        });
        let status =
            notify::keep_alive(daemon.stop(self.cfg.shutdown_grace, &mut self.signals)).await?;
        self.reaped(daemon, status).await;
        Ok(())
    }

    /// Once the daemon is reaped: records how it ended, removes its pid file, and stops what it
    /// left behind.
    async fn reaped(&mut self, daemon: &mut Daemon, status: ExitStatus) {
        self.events.emit(&Event::DaemonEnded {
            code: exit::from_status(status),
        });
        pid_file::remove(&self.layout.daemon_pid_file());
        notify::keep_alive(daemon.finish(self.cfg.shutdown_grace)).await;
    }

    /// Before the first launch: removes what a crash left half-written and resumes (or abandons)
    /// the upgrade in the journal.
    async fn resume(&mut self, skip: &[i64]) -> anyhow::Result<Next> {
        for path in layout::remove_crash_leftovers(&self.layout) {
            info!(path = %path.display(), "removed a temp file left by an interrupted write");
        }
        match Upgrade::resume(&self.layout, &self.cfg.data_backup_dir, skip)? {
            Some(upgrade) => self.upgrade(upgrade).await,
            None => Ok(Next::Relaunch),
        }
    }

    /// Carries out `upgrade`, decided for `plan`; the watcher then knows `plan` is applied.
    async fn apply(
        &mut self,
        plan: &Plan,
        upgrade: Upgrade,
        watcher: &mut Watcher,
    ) -> anyhow::Result<Next> {
        let next = self.upgrade(upgrade).await?;
        watcher.set_applied(applied_of(plan));
        Ok(next)
    }

    /// Carries out a decided (or resumed) upgrade; the daemon is stopped.
    async fn upgrade(&mut self, upgrade: Upgrade) -> anyhow::Result<Next> {
        let name = upgrade.name().to_owned();
        let height = upgrade.height();
        if self.announced.take().as_deref() != Some(name.as_str()) {
            self.events.emit(&Event::Started {
                name: name.clone(),
                height,
            });
        }
        let slot = Arc::clone(&self.download_slot);
        let _no_download_ahead = notify::keep_alive(slot.lock()).await;
        let carried_out = notify::keep_alive(upgrade.carry_out(
            self.cfg,
            &self.layout,
            &mut self.signals,
            &self.events,
        ))
        .await;
        match carried_out {
            Ok(()) => {}
            Err(UpgradeError::Interrupted(interrupted)) => {
                warn!(signal = %interrupted.signal, name = %name, "upgrade interrupted; it resumes on the next start");
                return Err(interrupted.into());
            }
            Err(err) => {
                self.events
                    .emit(&Event::failed(name, height, &err.to_string()));
                return Err(err.into());
            }
        }
        if self.cfg.restart_after_upgrade {
            info!(app = %self.cfg.name, name = %name, "upgrade detected, relaunching");
            // Told once the new binary is launched (`run_once`).
            self.completed = Some((name, height));
            Ok(Next::Relaunch)
        } else {
            info!(app = %self.cfg.name, name = %name, "upgrade detected, DAEMON_RESTART_AFTER_UPGRADE is off. Verify new upgrade and start cosmovisor again.");
            self.events.emit(&Event::Completed {
                name,
                height,
                restarted: false,
            });
            Ok(Next::Exit(exit::OK))
        }
    }

    /// Starts the metrics endpoint when `COSMOVISOR_METRICS_ADDR` is set. A port that cannot be
    /// bound is logged, not fatal: metrics must never keep a validator from running.
    async fn serve_metrics(&self) -> Option<metrics_endpoint::Server> {
        let addr = self.cfg.metrics_addr?;
        let result = metrics_endpoint::serve(
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

    /// Makes sure the `current` link exists, creating `current → genesis` on a home that has
    /// only `genesis/` (what Go does on first run); returns the version folder it points at.
    fn ensure_current_link(&self) -> anyhow::Result<std::path::PathBuf> {
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

    /// Starts the binary `current` points at; also returns that version's name.
    fn launch(&self, args: &[OsString]) -> anyhow::Result<(Daemon, Hints, String)> {
        let version_dir = self.ensure_current_link()?;
        let bin = self.layout.bin_in(&version_dir);
        binary::check_binary(&bin)?;
        info!(path = %bin.display(), args = ?args, "running app");
        let env = binary::library_path_env(&version_dir).into_iter().collect();
        let (daemon, hints) = Daemon::spawn(&Launch {
            bin: &bin,
            args,
            cwd: None,
            env,
        })?;
        if let Err(err) = pid_file::write(&self.layout.daemon_pid_file(), daemon.pid()) {
            warn!(error = %err, "cannot record the daemon's pid");
        }
        let version = crate::home::inventory::version_name(&self.layout, &version_dir);
        Ok((daemon, hints, version))
    }

    /// The one event loop: runs the launched daemon until it exits, or until a plan, a change of
    /// the manual-upgrade queue or an unusable plan ends its run, forwarding signals meanwhile.
    /// After a termination signal (remembered by `signals`) only the daemon's exit ends it.
    async fn run_until_ending(
        &mut self,
        daemon: &mut Daemon,
        watcher: &mut Watcher,
        hints: &mut Hints,
        manual: &mut Option<Plan>,
        args: &[OsString],
    ) -> anyhow::Result<Ending> {
        let recase = !self.cfg.disable_recase;
        let queue = self.layout.batch_file();
        // An upgrade line waiting for the file to confirm it, and until when.
        let mut unconfirmed: Option<(LinePlan, Instant)> = None;
        let mut orphan_exits = child_exits()?;
        let mut checks = HeightChecks::new(NodeRpc::for_home(self.cfg));
        let mut watchdog = notify::Watchdog::new();
        loop {
            let settle_deadline = unconfirmed.as_ref().map(|(_, deadline)| *deadline);
            let settled = async {
                match settle_deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            let verdict = checks.next(manual.as_ref(), &queue);
            let stopping = self.signals.interrupted().is_err();
            tokio::select! {
                status = daemon.wait() => {
                    let status = status.context("cannot wait for the daemon")?;
                    return Ok(Ending::Exited(status));
                }
                change = watcher.next(), if !stopping => match change {
                    Change::Plan(plan) => return Ok(Ending::Upgrade(plan)),
                    Change::Unusable(unusable) => return Ok(Ending::Unusable(unusable)),
                    Change::Queue => {
                        let judged = (watcher.applied(), watcher.skip_heights());
                        let verdict = checks.queue_changed(&queue, judged, recase, self.args, args, manual);
                        if let Some(ending) = ending_for(verdict) {
                            return Ok(ending);
                        }
                    }
                },
                verdict = verdict, if !stopping => {
                    if let Some(ending) = ending_for(verdict) {
                        return Ok(ending);
                    }
                }
                height = hints.halts.next(), if !stopping => {
                    checks.halt_claimed(height, manual.as_ref(), args);
                }
                Some(line) = hints.upgrade_lines.recv(), if !stopping => {
                    // Only a hint: look at the file now; its plan is the one applied.
                    match watcher.check_now().await {
                        Ok(Some(plan)) => return Ok(Ending::Upgrade(plan)),
                        Ok(None) => {}
                        Err(unusable) => return Ok(Ending::Unusable(unusable)),
                    }
                    if unconfirmed.is_some() {
                        continue;
                    }
                    match Plan::from_line(&line, recase) {
                        Ok(plan) if watcher.wants(&plan) => {
                            info!(name = %plan.name, height = plan.height, "upgrade line seen on the daemon's output; waiting for upgrade-info.json to confirm it");
                            unconfirmed = Some((line, Instant::now() + LINE_SETTLE));
                        }
                        Ok(_) => {}
                        Err(err) => debug!(error = %err, "ignoring an invalid upgrade line on the daemon's output"),
                    }
                }
                () = settled => {
                    match watcher.check_now().await {
                        Ok(Some(plan)) => return Ok(Ending::Upgrade(plan)),
                        Ok(None) => {}
                        Err(unusable) => return Ok(Ending::Unusable(unusable)),
                    }
                    if let Some((line, _)) = unconfirmed.take() {
                        warn!(name = %line.name, height = line.height, file = %self.layout.upgrade_info_file().display(), "upgrade line on the daemon's output not confirmed by the plan file within {}; ignoring it, the node keeps running", crate::config::format_go_duration(LINE_SETTLE));
                    }
                }
                sig = self.signals.recv() => {
                    daemon.forward(sig);
                    if !stopping && self.signals.interrupted().is_err() {
                        self.events.emit(&Event::Interrupted { signal: sig.to_string(), grace: self.cfg.shutdown_grace });
                    }
                }
                _ = orphan_exits.recv() => daemon.reap_orphans(),
                () = watchdog.due() => watchdog.ping(),
            }
        }
    }

    /// Runs the command without upgrade handling (another cosmovisor supervises this home).
    async fn pass_through(&mut self) -> anyhow::Result<u8> {
        let version_dir = self.layout.current_dir()?;
        let bin = self.layout.bin_in(&version_dir);
        binary::check_binary(&bin)?;
        let env = binary::library_path_env(&version_dir).into_iter().collect();
        let version = crate::home::inventory::version_name(&self.layout, &version_dir);
        self.events.emit(&Event::DaemonRunning {
            version,
            restart: false,
        });
        let status = run_forwarding(&bin, self.args, env, &mut self.signals).await?;
        Ok(exit::from_status(status))
    }
}

/// A step that a termination signal stopped ([`Interrupted`]) ends the run with `128 + N`; any
/// other error stays one.
fn stopped_by_signal(err: anyhow::Error) -> anyhow::Result<u8> {
    match err.downcast::<Interrupted>() {
        Ok(interrupted) => Ok(exit::from_signal(interrupted.signal)),
        Err(err) => Err(err),
    }
}

/// Checks, changing nothing, that there is a binary to run: `current`'s (or genesis' when
/// `current` is still to be created).
fn check_runnable(layout: &Layout) -> anyhow::Result<()> {
    binary::check_binary(&layout.bin_in(&layout.version_to_run()?))?;
    Ok(())
}

/// How a run of the daemon ends for a verdict about the manual-upgrade queue, if it does.
fn ending_for(verdict: Verdict) -> Option<Ending> {
    match verdict {
        Verdict::Nothing => None,
        Verdict::Restart => Some(Ending::Restart),
        Verdict::Upgrade(plan) => Some(Ending::Upgrade(plan)),
        Verdict::Invalid(err) => Some(Ending::InvalidQueue(err)),
    }
}

fn applied_of(plan: &Plan) -> Applied {
    Applied {
        name: Some(plan.name.as_str().to_owned()),
        height: plan.height,
    }
}

/// SIGCHLD: a child of ours exited (the daemon, or an orphan of its tree we adopted as subreaper).
fn child_exits() -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())
        .context("cannot listen for SIGCHLD")
}

/// Runs `<daemon> <args>` once with output passing through and signals forwarded (for
/// `version`); returns its exit status.
pub async fn run_plain(
    bin: &Path,
    args: &[OsString],
    env: Vec<(OsString, OsString)>,
) -> anyhow::Result<ExitStatus> {
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    process::become_subreaper();
    run_forwarding(bin, args, env, &mut signals).await
}

/// Runs a binary to its end without upgrade handling, forwarding every signal to it.
async fn run_forwarding(
    bin: &Path,
    args: &[OsString],
    env: Vec<(OsString, OsString)>,
    signals: &mut Signals,
) -> anyhow::Result<ExitStatus> {
    let launch = Launch {
        bin,
        args,
        cwd: None,
        env,
    };
    // Without upgrade handling, the output's hints go unread.
    let (mut daemon, _hints) = Daemon::spawn(&launch)?;
    let mut orphan_exits = child_exits()?;
    let mut watchdog = notify::Watchdog::new();
    let status = loop {
        tokio::select! {
            status = daemon.wait() => break status.context("cannot wait for the daemon")?,
            sig = signals.recv() => daemon.forward(sig),
            _ = orphan_exits.recv() => daemon.reap_orphans(),
            () = watchdog.due() => watchdog.ping(),
        }
    };
    daemon.finish(LEFTOVER_GRACE).await;
    Ok(status)
}
