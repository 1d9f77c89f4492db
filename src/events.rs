//! The one event stream of `run` (docs/design.md "One event stream"): each thing that happens to
//! the node and its upgrades is one [`Event`], emitted once by the supervisor or the upgrade's
//! steps through [`Events`], which tells every [`Observer`]: the log lines ([`Log`]), the metrics'
//! counters ([`Counters`]), systemd's `STATUS=`/`EXTEND_TIMEOUT_USEC=` ([`Systemd`]) and the
//! webhook (`supervisor/events.rs`). The surfaces cannot disagree because none of them is told
//! anything but the event. Shared by the `upgrade` and `supervisor` layers, so it uses none.
//!
//! What stays outside the stream: the watchdog pings and the timeout extensions while a long step
//! runs (`notify::keep_alive`, a clock rather than an event), and a download's or backup's
//! percentage (`progress.rs`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{info, warn};

use crate::config::format_go_duration;
use crate::metrics::{Metrics, Outlook};
use crate::notify;

/// How much of a failed upgrade's error an event carries.
pub const ERROR_SHOWN: usize = 1000;

/// Something that happened to the node or its upgrades.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An upgrade is scheduled (on chain or in the manual queue); `source`: `chain plan` or
    /// `manual upgrade`.
    Scheduled {
        name: String,
        height: i64,
        source: &'static str,
    },
    /// A scheduled upgrade's binary is staged and passes every check.
    Ready { name: String, height: i64 },
    /// A scheduled upgrade is not ready: why, and the fix.
    NotReady {
        name: String,
        height: i64,
        problem: String,
    },
    /// The node is being stopped for an upgrade (or has stopped at its height).
    Started { name: String, height: i64 },
    /// The upgrade switched `current`; `restarted`: the new binary was started.
    Completed {
        name: String,
        height: i64,
        restarted: bool,
    },
    /// The upgrade failed; cosmovisor stops with the error (its first [`ERROR_SHOWN`] bytes here:
    /// the whole error is cosmovisor's last line).
    Failed {
        name: String,
        height: i64,
        error: String,
    },
    /// The node exited on its own, not for an upgrade (our exit code for it).
    DaemonExited { code: u8 },
    /// The supervisor began; `download_enabled`: `DAEMON_ALLOW_DOWNLOAD_BINARIES`.
    SupervisorStarted { download_enabled: bool },
    /// The daemon was launched from `version` (its folder's name); `restart`: not its first
    /// launch under this cosmovisor.
    DaemonRunning { version: String, restart: bool },
    /// The daemon was reaped, with our exit code for how it ended (`128 + N` for signal N).
    DaemonEnded { code: u8 },
    /// The daemon is being stopped (`why`), with `grace` before SIGKILL.
    StoppingNode { why: String, grace: Duration },
    /// A termination signal (`signal`, as named in the log) arrived: the daemon is being stopped
    /// with `grace`, and so is cosmovisor.
    Interrupted { signal: String, grace: Duration },
    /// Cosmovisor is on its way out; `error`: the error it stops with.
    Exiting { error: Option<String> },
    /// The outlook task's latest findings; `status`: the next upgrade as `systemctl status`
    /// shows it (`next upgrade v3 at 1234: ready`).
    Outlook {
        outlook: Outlook,
        status: Option<String>,
    },
    /// A step of upgrade `name` begins.
    Step { name: String, step: Step },
    /// The backup of `data/` is taken.
    BackupTaken {
        path: PathBuf,
        files: u64,
        bytes: u64,
        linked_bytes: u64,
        mode: &'static str,
        took: Duration,
    },
    /// `current` points at upgrade `name`'s binary (`path`); the journal is gone.
    Switched {
        name: String,
        height: i64,
        path: PathBuf,
    },
}

/// The long steps of an upgrade, in their order (`upgrade/steps.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Downloading,
    RestartDelay(Duration),
    /// `size` bytes of `data/` to `to`, in `mode` (`copy`, `hardlink`…).
    BackingUp {
        height: i64,
        to: PathBuf,
        size: u64,
        mode: &'static str,
    },
    CustomPreUpgrade,
    /// Try `attempt` of `tries`.
    PreUpgrade {
        attempt: u32,
        tries: u64,
    },
}

impl Event {
    /// [`Event::Failed`] for `error`, cut to [`ERROR_SHOWN`] bytes (at a character boundary).
    #[must_use]
    pub fn failed(name: String, height: i64, error: &str) -> Event {
        let mut end = error.len().min(ERROR_SHOWN);
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        let more = if end < error.len() { "…" } else { "" };
        Event::Failed {
            name,
            height,
            error: format!("{}{more}", &error[..end]),
        }
    }

    /// The webhook's `event` field, for the events told to the operator (the others: `None`).
    #[must_use]
    pub fn kind(&self) -> Option<&'static str> {
        Some(match self {
            Event::Scheduled { .. } => "upgrade_scheduled",
            Event::Ready { .. } => "upgrade_ready",
            Event::NotReady { .. } => "upgrade_not_ready",
            Event::Started { .. } => "upgrade_started",
            Event::Completed { .. } => "upgrade_completed",
            Event::Failed { .. } => "upgrade_failed",
            Event::DaemonExited { .. } => "daemon_exited",
            _ => return None,
        })
    }

    /// The upgrade a told event is about, if any.
    #[must_use]
    pub fn upgrade(&self) -> Option<(&str, i64)> {
        match self {
            Event::Scheduled { name, height, .. }
            | Event::Ready { name, height }
            | Event::NotReady { name, height, .. }
            | Event::Started { name, height }
            | Event::Completed { name, height, .. }
            | Event::Failed { name, height, .. } => Some((name, *height)),
            _ => None,
        }
    }

    /// What a told event adds to the upgrade (the webhook's `detail`).
    #[must_use]
    pub fn detail(&self) -> String {
        match self {
            Event::Scheduled { source, .. } => (*source).to_owned(),
            Event::Ready { .. } => "its binary is staged and checked".to_owned(),
            Event::NotReady { problem, .. } => problem.clone(),
            Event::Started { .. } => "stopping the node".to_owned(),
            Event::Completed {
                restarted: true, ..
            } => "the new binary runs".to_owned(),
            Event::Completed {
                restarted: false, ..
            } => "switched; not restarted (DAEMON_RESTART_AFTER_UPGRADE=false)".to_owned(),
            Event::Failed { error, .. } => error.clone(),
            Event::DaemonExited { code } => format!("exit code {code}"),
            _ => String::new(),
        }
    }

    /// One human sentence for a told event (its log line, and the webhook's `text`).
    #[must_use]
    pub fn sentence(&self, daemon: &str) -> Option<String> {
        Some(match self {
            Event::Scheduled {
                name,
                height,
                source,
            } => format!("upgrade {name} scheduled at height {height} ({source})"),
            Event::Ready { name, height } => {
                format!(
                    "upgrade {name} at height {height} is ready: its binary is staged and checked"
                )
            }
            Event::NotReady {
                name,
                height,
                problem,
            } => format!("upgrade {name} at height {height} is NOT READY: {problem}"),
            Event::Started { name, height } => {
                format!("upgrade {name} at height {height} started: stopping {daemon}")
            }
            Event::Completed { name, height, .. } => {
                format!(
                    "upgrade {name} at height {height} completed: {}",
                    self.detail()
                )
            }
            Event::Failed {
                name,
                height,
                error,
            } => format!("upgrade {name} at height {height} FAILED: {error}"),
            Event::DaemonExited { code } => {
                format!("{daemon} exited unexpectedly (exit code {code})")
            }
            _ => return None,
        })
    }

    /// The `STATUS=` text a step begins with (`upgrade v3: backing up data/`).
    #[must_use]
    pub fn step_status(name: &str, step: &Step) -> String {
        let what = match step {
            Step::Downloading => "downloading the binary".to_owned(),
            Step::RestartDelay(delay) => format!(
                "waiting DAEMON_RESTART_DELAY ({})",
                format_go_duration(*delay)
            ),
            Step::BackingUp { .. } => "backing up data/".to_owned(),
            Step::CustomPreUpgrade => "running COSMOVISOR_CUSTOM_PREUPGRADE".to_owned(),
            Step::PreUpgrade { attempt, tries } => format!("pre-upgrade, try {attempt} of {tries}"),
        };
        format!("upgrade {name}: {what}")
    }
}

/// One surface that reports events.
pub trait Observer: Send + Sync {
    fn observe(&self, event: &Event);
}

/// The dispatcher: tells each event to every observer, in order; cheap to clone. Never waits.
#[derive(Clone, Default)]
pub struct Events {
    observers: Vec<Arc<dyn Observer>>,
}

impl Events {
    #[must_use]
    pub fn new(observers: Vec<Arc<dyn Observer>>) -> Events {
        Events { observers }
    }

    /// The log, the counters of `metrics` and systemd, for `daemon`, and `more` after them.
    #[must_use]
    pub fn standard(daemon: &str, metrics: &Arc<Metrics>, more: Vec<Arc<dyn Observer>>) -> Events {
        let mut observers: Vec<Arc<dyn Observer>> = vec![
            Arc::new(Log::new(daemon)),
            Arc::new(Counters(Arc::clone(metrics))),
            Arc::new(Systemd::new(daemon)),
        ];
        observers.extend(more);
        Events::new(observers)
    }

    pub fn emit(&self, event: &Event) {
        for observer in &self.observers {
            observer.observe(event);
        }
    }
}

/// The log lines.
pub struct Log {
    daemon: String,
}

impl Log {
    #[must_use]
    pub fn new(daemon: &str) -> Log {
        Log {
            daemon: daemon.to_owned(),
        }
    }
}

impl Observer for Log {
    fn observe(&self, event: &Event) {
        if let Some(text) = event.sentence(&self.daemon) {
            match event {
                Event::NotReady { .. } | Event::Failed { .. } | Event::DaemonExited { .. } => {
                    warn!("{text}");
                }
                _ => info!("{text}"),
            }
            return;
        }
        match event {
            Event::Step {
                step: Step::RestartDelay(delay),
                ..
            } => {
                info!(delay = %format_go_duration(*delay), "waiting DAEMON_RESTART_DELAY before the backup");
            }
            Event::Step {
                name,
                step:
                    Step::BackingUp {
                        height,
                        to,
                        size,
                        mode,
                    },
            } => {
                info!(name = %name, height = height, to = %to.display(), size = %crate::progress::human(*size), mode = mode, "starting to take backup of data directory");
            }
            Event::BackupTaken {
                path,
                files,
                bytes,
                linked_bytes,
                mode,
                took,
            } => info!(
                path = %path.display(),
                files = files,
                bytes = bytes,
                linked_bytes = linked_bytes,
                mode = mode,
                took = %format_go_duration(*took),
                "backup completed"
            ),
            Event::Switched { name, height, path } => {
                info!(name = %name, height = height, path = %path.display(), "upgrade switched to the new binary");
            }
            _ => {}
        }
    }
}

/// The metrics' counters (`COSMOVISOR_METRICS_ADDR`).
pub struct Counters(pub Arc<Metrics>);

impl Observer for Counters {
    fn observe(&self, event: &Event) {
        let metrics = &self.0;
        match event {
            Event::SupervisorStarted { download_enabled } => {
                metrics.supervisor_started(*download_enabled);
            }
            Event::DaemonRunning { restart, .. } => metrics.daemon_started(*restart),
            Event::DaemonEnded { code } => metrics.daemon_exited(*code),
            Event::BackupTaken {
                bytes,
                linked_bytes,
                took,
                ..
            } => metrics.backup_done(*took, bytes.saturating_sub(*linked_bytes)),
            Event::Switched { .. } => metrics.upgrade_done(),
            Event::Outlook { outlook, .. } => metrics.set_outlook(outlook.clone()),
            _ => {}
        }
    }
}

/// systemd's status and timeouts (`notify.rs`).
pub struct Systemd {
    daemon: String,
    /// The outlook's status last told, so an unchanged one is not sent again.
    outlook: Mutex<Option<String>>,
}

impl Systemd {
    #[must_use]
    pub fn new(daemon: &str) -> Systemd {
        Systemd {
            daemon: daemon.to_owned(),
            outlook: Mutex::new(None),
        }
    }
}

impl Observer for Systemd {
    fn observe(&self, event: &Event) {
        match event {
            Event::DaemonRunning { version, restart } => {
                notify::running(&self.daemon, version, !restart);
            }
            Event::StoppingNode { why, grace } => notify::stopping_node(why, *grace),
            Event::Interrupted { signal, grace } => {
                notify::stopping_node(&format!("stopping {} ({signal})", self.daemon), *grace);
                notify::stopping();
            }
            Event::Exiting { error } => {
                if let Some(error) = error {
                    notify::failed(error);
                }
                notify::stopping();
            }
            Event::Step { name, step } => notify::step(&Event::step_status(name, step)),
            Event::Outlook { status, .. } => {
                if let Ok(mut told) = self.outlook.lock() {
                    if *told != *status {
                        told.clone_from(status);
                        notify::outlook(status.as_deref());
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::PoisonError;

    use super::*;
    use crate::log::captured as logged;

    /// An observer that keeps what it was told.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<Event>>);

    impl Observer for Recorder {
        fn observe(&self, event: &Event) {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(event.clone());
        }
    }

    impl Recorder {
        fn told(&self) -> Vec<Event> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        }
    }

    #[test]
    fn a_failed_upgrade_carries_the_start_of_its_error() {
        let long = "é".repeat(ERROR_SHOWN);
        let Event::Failed { error, .. } = Event::failed("v2".into(), 7, &long) else {
            panic!("not a failure");
        };
        assert!(error.len() <= ERROR_SHOWN + "…".len(), "{}", error.len());
        assert!(error.ends_with('…'));
        let Event::Failed { error, .. } = Event::failed("v2".into(), 7, "short") else {
            panic!("not a failure");
        };
        assert_eq!(error, "short");
    }

    #[test]
    fn each_told_event_has_its_webhook_name_and_sentence() {
        let cases = [
            (
                Event::NotReady {
                    name: "v3".into(),
                    height: 9,
                    problem: "binary x is not staged; fix: stage it".into(),
                },
                "upgrade_not_ready",
                "upgrade v3 at height 9 is NOT READY: binary x is not staged; fix: stage it",
            ),
            (
                Event::DaemonExited { code: 137 },
                "daemon_exited",
                "panacead exited unexpectedly (exit code 137)",
            ),
        ];
        for (event, kind, sentence) in cases {
            assert_eq!(event.kind(), Some(kind));
            assert_eq!(event.sentence("panacead").as_deref(), Some(sentence));
        }
        let step = Event::Step {
            name: "v3".into(),
            step: Step::CustomPreUpgrade,
        };
        assert_eq!((step.kind(), step.sentence("panacead")), (None, None));
    }

    #[test]
    fn the_dispatcher_tells_every_observer_each_event_once_in_order() {
        let observers: Vec<Arc<Recorder>> = (0..3).map(|_| Arc::default()).collect();
        let events = Events::new(
            observers
                .iter()
                .map(|observer| Arc::clone(observer) as Arc<dyn Observer>)
                .collect(),
        );
        let sent = [
            Event::Started {
                name: "v3".into(),
                height: 9,
            },
            Event::DaemonEnded { code: 0 },
            Event::Switched {
                name: "v3".into(),
                height: 9,
                path: "/h/cosmovisor/upgrades/v3/bin/panacead".into(),
            },
        ];
        for event in &sent {
            events.emit(event);
        }
        for observer in &observers {
            assert_eq!(observer.told(), sent);
        }
    }

    /// One event, each surface's view of it: the log line, the counter, the systemd status and
    /// what the webhook's observer (here a recorder, after the standard three) is told.
    #[test]
    fn one_event_reaches_the_log_the_counters_and_the_other_observers() {
        let metrics = Arc::new(Metrics::default());
        let webhook = Arc::new(Recorder::default());
        let events = Events::standard(
            "panacead",
            &metrics,
            vec![Arc::clone(&webhook) as Arc<dyn Observer>],
        );
        let taken = Event::BackupTaken {
            path: "/h/data-backup-2026-12-07".into(),
            files: 3,
            bytes: 1500,
            linked_bytes: 500,
            mode: "copy",
            took: Duration::from_millis(1500),
        };
        let switched = Event::Switched {
            name: "v3".into(),
            height: 9,
            path: "/h/cosmovisor/upgrades/v3/bin/panacead".into(),
        };
        let exited = Event::DaemonExited { code: 137 };
        let log = logged(|| {
            for event in [&taken, &switched, &exited] {
                events.emit(event);
            }
        });
        assert_eq!(
            log,
            "INF backup completed bytes=1500 files=3 linked_bytes=500 mode=copy module=cosmovisor path=/h/data-backup-2026-12-07 took=1.5s\n\
             INF upgrade switched to the new binary height=9 module=cosmovisor name=v3 path=/h/cosmovisor/upgrades/v3/bin/panacead\n\
             WRN panacead exited unexpectedly (exit code 137) module=cosmovisor\n"
        );
        let counters = metrics.snapshot();
        assert_eq!(counters.backup_bytes, 1000);
        assert_eq!(counters.backup_duration_micros, 1_500_000);
        assert_eq!(counters.upgrades_total, 1);
        assert_eq!(webhook.told(), [taken, switched, exited]);
    }

    #[test]
    fn a_step_is_one_status_and_its_log_line() {
        let backing_up = Step::BackingUp {
            height: 9,
            to: "/h/data-backup-2026-12-07".into(),
            size: 2048,
            mode: "copy",
        };
        assert_eq!(
            Event::step_status("v3", &backing_up),
            "upgrade v3: backing up data/"
        );
        assert_eq!(
            Event::step_status(
                "v3",
                &Step::PreUpgrade {
                    attempt: 2,
                    tries: 3
                }
            ),
            "upgrade v3: pre-upgrade, try 2 of 3"
        );
        assert_eq!(
            Event::step_status("v3", &Step::RestartDelay(Duration::from_secs(90))),
            "upgrade v3: waiting DAEMON_RESTART_DELAY (1m30s)"
        );
        let log = logged(|| {
            Events::standard("panacead", &Arc::default(), Vec::new()).emit(&Event::Step {
                name: "v3".into(),
                step: backing_up,
            });
        });
        assert!(
            log.starts_with("INF starting to take backup of data directory height=9 mode=copy module=cosmovisor name=v3 size="),
            "{log}"
        );
    }
}
