//! systemd's notify protocol (`Type=notify`, `sd_notify(3)`), written out rather than linked: each
//! message is one datagram of `KEY=VALUE` lines sent to the Unix socket `$NOTIFY_SOCKET` names (a
//! path, or an abstract socket when it starts with `@`). Nothing is sent when it is unset.
//!
//! What `cosmovisor run` tells systemd:
//! * `READY=1` with `STATUS=running <daemon> (<version folder>)` once the daemon is first
//!   launched, and that status again after each relaunch;
//! * a `STATUS=` line for each step of an upgrade, with the backup's and download's percentage;
//! * `EXTEND_TIMEOUT_USEC=` when a long step starts and every [`EXTEND_EVERY`] while it runs
//!   ([`keep_alive`]), so systemd's start, stop or runtime timeout does not kill a backup, a
//!   download or a pre-upgrade; stopping the node extends by its grace;
//! * `WATCHDOG=1` every half `WATCHDOG_USEC` (when `WATCHDOG_PID` is unset or is us), sent from
//!   the supervisor's event loop and from [`keep_alive`] in that same task: a frozen loop stops
//!   pinging and systemd restarts the service;
//! * `STOPPING=1` (once) when a termination signal arrives and on the way out.
//!
//! The socket is process-wide state set by the service manager, like the log sink, so it lives in
//! one place here, set by [`init`], instead of being threaded through every step. The socket is
//! non-blocking: a service manager that does not read never stalls the supervisor; a message it
//! cannot take is dropped and the first failure is logged. The node must not talk to systemd in
//! our place, so [`keep_from`] removes these variables from every process we start.

use std::future::Future;
use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::warn;

/// The variables systemd sets for the notify protocol; none of them reaches the node.
pub const VARIABLES: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// How often a long step extends systemd's timeout (by twice this).
pub const EXTEND_EVERY: Duration = Duration::from_secs(5);

/// The shortest time between two watchdog pings: a smaller `WATCHDOG_USEC` (below twice this) is
/// clamped, with one warning, instead of spending a core on pings (README "Running under systemd").
pub const FASTEST_PING: Duration = Duration::from_millis(500);

/// How often a percentage may update the status line.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Where to send, and whether the watchdog is ours: parsed once from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub socket: String,
    /// Half of `WATCHDOG_USEC`, at least [`FASTEST_PING`]: how often to ping.
    pub watchdog_every: Option<Duration>,
    /// The `WATCHDOG_USEC` value when it asked for pings faster than [`FASTEST_PING`].
    pub watchdog_clamped: Option<u64>,
}

/// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (values as given, `pid` ours).
/// `Ok(None)`: not run by a service manager that listens. An unusable value is an error naming
/// it; the caller logs it and runs without notifications.
pub fn settings(
    socket: Option<&str>,
    watchdog_usec: Option<&str>,
    watchdog_pid: Option<&str>,
    pid: u32,
) -> Result<Option<Settings>, String> {
    let Some(socket) = socket.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if !(socket.starts_with('/') || socket.starts_with('@')) {
        return Err(format!(
            "NOTIFY_SOCKET={socket:?} is neither an absolute path nor an abstract socket (@name)"
        ));
    }
    let ours = match watchdog_pid.filter(|p| !p.is_empty()) {
        None => true,
        Some(value) => {
            value
                .parse::<u32>()
                .map_err(|_| format!("WATCHDOG_PID={value:?} is not a process id"))?
                == pid
        }
    };
    let (watchdog_every, watchdog_clamped) = match watchdog_usec.filter(|u| !u.is_empty()) {
        Some(value) if ours => {
            let usec = value
                .parse::<u64>()
                .ok()
                .filter(|usec| *usec > 0)
                .ok_or_else(|| {
                    format!("WATCHDOG_USEC={value:?} is not a positive number of microseconds")
                })?;
            let every = Duration::from_micros(usec) / 2;
            if every < FASTEST_PING {
                (Some(FASTEST_PING), Some(usec))
            } else {
                (Some(every), None)
            }
        }
        _ => (None, None),
    };
    Ok(Some(Settings {
        socket: socket.to_owned(),
        watchdog_every,
        watchdog_clamped,
    }))
}

/// `STATUS=<step> <NN>%` for `done` of `total` bytes.
#[must_use]
pub fn progress_line(step: &str, done: u64, total: u64) -> String {
    let percent = (u128::from(done.min(total)) * 100)
        .checked_div(u128::from(total))
        .unwrap_or(0);
    format!("STATUS={step} {percent}%")
}

/// The connection to the service manager.
struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    watchdog_every: Option<Duration>,
    /// The last step's status, which a percentage is appended to, and when one last was.
    step: Mutex<(String, Option<Instant>)>,
    stopping: AtomicBool,
    failed: AtomicBool,
}

static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();

/// Reads the environment once; every function below does nothing until it ran, or when
/// `NOTIFY_SOCKET` is unset or unusable.
pub fn init() {
    NOTIFIER.get_or_init(|| {
        let var = |name| std::env::var(name).ok();
        let settings = match settings(
            var(VARIABLES[0]).as_deref(),
            var(VARIABLES[1]).as_deref(),
            var(VARIABLES[2]).as_deref(),
            std::process::id(),
        ) {
            Ok(settings) => settings?,
            Err(err) => {
                warn!("{err}; running without systemd notifications");
                return None;
            }
        };
        if let Some(usec) = settings.watchdog_clamped {
            warn!(
                "WATCHDOG_USEC={usec} asks for a watchdog ping more often than every {}; pinging every {} instead: set WatchdogSec= to 1s or more",
                crate::config::format_go_duration(FASTEST_PING),
                crate::config::format_go_duration(FASTEST_PING)
            );
        }
        match connect(&settings) {
            Ok(notifier) => Some(notifier),
            Err(err) => {
                warn!(socket = %settings.socket, error = %err, "cannot open the systemd notify socket (NOTIFY_SOCKET); running without systemd notifications");
                None
            }
        }
    });
}

fn connect(settings: &Settings) -> io::Result<Notifier> {
    let addr = match settings.socket.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
        None => SocketAddr::from_pathname(&settings.socket)?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    Ok(Notifier {
        socket,
        addr,
        watchdog_every: settings.watchdog_every,
        step: Mutex::new((String::new(), None)),
        stopping: AtomicBool::new(false),
        failed: AtomicBool::new(false),
    })
}

fn notifier() -> Option<&'static Notifier> {
    NOTIFIER.get().and_then(Option::as_ref)
}

fn send(message: &str) {
    let Some(notifier) = notifier() else {
        return;
    };
    if let Err(err) = notifier
        .socket
        .send_to_addr(message.as_bytes(), &notifier.addr)
    {
        if !notifier.failed.swap(true, Ordering::Relaxed) {
            warn!(error = %err, "cannot send to the systemd notify socket (NOTIFY_SOCKET); systemctl status may be out of date");
        }
    }
}

/// Records `text` as the current step's status and returns it as it goes into a `STATUS=` value:
/// control characters escaped (`log::escape_controls`), so a plan name holding a newline cannot
/// add an assignment (`WATCHDOG=trigger`, `MAINPID=1`) to the datagram.
fn set_step(text: &str) -> String {
    let text = crate::log::escape_controls(text).into_owned();
    if let Some(notifier) = notifier() {
        if let Ok(mut step) = notifier.step.lock() {
            *step = (text.clone(), None);
        }
    }
    text
}

fn extend_line(by: Duration) -> String {
    format!("EXTEND_TIMEOUT_USEC={}", by.as_micros())
}

/// The daemon runs `version` of `daemon`; the first time, also `READY=1`.
pub fn running(daemon: &str, version: &str, first: bool) {
    let running =
        crate::log::escape_controls(&format!("running {daemon} ({version})")).into_owned();
    if let Ok(mut slot) = RUNNING.lock() {
        slot.clone_from(&running);
    }
    let status = set_step(&with_outlook(running));
    if first {
        send(&format!("READY=1\nSTATUS={status}"));
    } else {
        send(&format!("STATUS={status}"));
    }
}

/// The status the daemon's run last set (`running panacead (v2.1.0)`), without the outlook.
static RUNNING: Mutex<String> = Mutex::new(String::new());
/// The outlook on the next upgrade (README "Before the upgrade"), appended to the running status.
static OUTLOOK: Mutex<Option<String>> = Mutex::new(None);

fn with_outlook(status: String) -> String {
    match OUTLOOK.lock().ok().and_then(|outlook| outlook.clone()) {
        Some(outlook) => format!("{status}; {outlook}"),
        None => status,
    }
}

/// The next upgrade's outlook changed (`next upgrade v3 at 1234: ready`; `None`: nothing
/// scheduled): the running status shows it from now on, at once while the daemon runs.
pub fn outlook(text: Option<&str>) {
    if let Ok(mut outlook) = OUTLOOK.lock() {
        *outlook = text.map(str::to_owned);
    }
    let Some(running) = RUNNING.lock().ok().map(|running| running.clone()) else {
        return;
    };
    let shown_running = notifier()
        .and_then(|notifier| notifier.step.lock().ok().map(|step| step.0.clone()))
        .is_some_and(|step| !running.is_empty() && step.starts_with(&running));
    if shown_running {
        let status = set_step(&with_outlook(running));
        send(&format!("STATUS={status}"));
    }
}

/// A long step begins: its status, and systemd's timeout extended while it runs.
pub fn step(status: &str) {
    let status = set_step(status);
    send(&format!(
        "STATUS={status}\n{}",
        extend_line(2 * EXTEND_EVERY)
    ));
}

/// The node is being stopped with `grace` before SIGKILL: `status`, and a timeout that covers it.
pub fn stopping_node(status: &str, grace: Duration) {
    let status = set_step(status);
    send(&format!(
        "STATUS={status}\n{}",
        extend_line(grace + 2 * EXTEND_EVERY)
    ));
}

/// How far the current step got (`done` of `total` bytes); sent at most every
/// [`PROGRESS_EVERY`].
pub fn progress(done: u64, total: u64) {
    let Some(notifier) = notifier() else {
        return;
    };
    let line = {
        let Ok(mut step) = notifier.step.lock() else {
            return;
        };
        if step.1.is_some_and(|last| last.elapsed() < PROGRESS_EVERY) {
            return;
        }
        step.1 = Some(Instant::now());
        progress_line(&step.0, done, total)
    };
    send(&line);
}

/// The last word before exiting with an error.
pub fn failed(error: &str) {
    let first_line = set_step(error.lines().next().unwrap_or_default());
    send(&format!("STATUS=failed: {first_line}"));
}

/// We are on the way out (sent once).
pub fn stopping() {
    if notifier().is_some_and(|n| !n.stopping.swap(true, Ordering::Relaxed)) {
        send("STOPPING=1");
    }
}

/// The watchdog's clock, for a `select!` loop: [`Watchdog::due`] completes when a ping is due
/// (never, without a watchdog); the loop then calls [`Watchdog::ping`].
pub struct Watchdog {
    interval: Option<tokio::time::Interval>,
}

impl Watchdog {
    #[must_use]
    pub fn new() -> Watchdog {
        Watchdog {
            interval: notifier().and_then(|n| n.watchdog_every).map(|every| {
                let mut interval = tokio::time::interval(every);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                interval
            }),
        }
    }

    /// Completes when the next ping is due. Cancel-safe.
    pub async fn due(&mut self) {
        match &mut self.interval {
            Some(interval) => {
                interval.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    pub fn ping(&self) {
        send("WATCHDOG=1");
    }
}

impl Default for Watchdog {
    fn default() -> Watchdog {
        Watchdog::new()
    }
}

/// Runs `step` in this task while pinging the watchdog and extending systemd's timeout every
/// [`EXTEND_EVERY`]: a step that makes no progress because this task is frozen pings no more.
pub async fn keep_alive<F: Future>(step: F) -> F::Output {
    if notifier().is_none() {
        return step.await;
    }
    let mut watchdog = Watchdog::new();
    let mut extend =
        tokio::time::interval_at(tokio::time::Instant::now() + EXTEND_EVERY, EXTEND_EVERY);
    tokio::pin!(step);
    loop {
        tokio::select! {
            output = &mut step => return output,
            () = watchdog.due() => watchdog.ping(),
            _ = extend.tick() => send(&extend_line(2 * EXTEND_EVERY)),
        }
    }
}

/// Keeps systemd's variables from a process we start: only cosmovisor talks to systemd.
pub fn keep_from(command: &mut tokio::process::Command) {
    for name in VARIABLES {
        command.env_remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_variables_systemd_sets() {
        assert_eq!(settings(None, Some("1000"), None, 7), Ok(None));
        assert_eq!(settings(Some(""), None, None, 7), Ok(None));
        let plain = settings(Some("/run/systemd/notify"), None, None, 7);
        assert_eq!(
            plain,
            Ok(Some(Settings {
                socket: "/run/systemd/notify".into(),
                watchdog_every: None,
                watchdog_clamped: None,
            }))
        );
        let abstract_socket = settings(Some("@/org/freedesktop/systemd1/notify"), None, None, 7);
        assert!(abstract_socket.is_ok_and(|s| s.is_some()));
        let watchdog = |usec, pid| {
            settings(Some("/n"), usec, pid, 7).map(|s| s.and_then(|s| s.watchdog_every))
        };
        assert_eq!(
            watchdog(Some("30000000"), None),
            Ok(Some(Duration::from_secs(15)))
        );
        assert_eq!(
            watchdog(Some("30000000"), Some("7")),
            Ok(Some(Duration::from_secs(15)))
        );
        assert_eq!(watchdog(Some("30000000"), Some("8")), Ok(None));
        assert_eq!(watchdog(None, Some("7")), Ok(None));
        // Below a second, pings come every 500ms, not every half microsecond.
        assert_eq!(watchdog(Some("1"), None), Ok(Some(FASTEST_PING)));
        assert_eq!(watchdog(Some("999999"), None), Ok(Some(FASTEST_PING)));
        assert_eq!(
            watchdog(Some("1000000"), None),
            Ok(Some(Duration::from_millis(500)))
        );
        assert_eq!(
            settings(Some("/n"), Some("1"), None, 7).map(|s| s.and_then(|s| s.watchdog_clamped)),
            Ok(Some(1))
        );
    }

    #[test]
    fn refuses_values_it_cannot_use() {
        assert_eq!(
            settings(Some("notify.sock"), None, None, 7),
            Err(
                "NOTIFY_SOCKET=\"notify.sock\" is neither an absolute path nor an abstract socket (@name)"
                    .into()
            )
        );
        assert_eq!(
            settings(Some("/n"), Some("0"), None, 7),
            Err("WATCHDOG_USEC=\"0\" is not a positive number of microseconds".into())
        );
        assert_eq!(
            settings(Some("/n"), Some("5s"), None, 7),
            Err("WATCHDOG_USEC=\"5s\" is not a positive number of microseconds".into())
        );
        assert_eq!(
            settings(Some("/n"), Some("100"), Some("me"), 7),
            Err("WATCHDOG_PID=\"me\" is not a process id".into())
        );
    }

    #[test]
    fn progress_is_a_percentage_of_the_step() {
        let step = "upgrade v3: backing up data/";
        assert_eq!(
            progress_line(step, 45, 100),
            "STATUS=upgrade v3: backing up data/ 45%"
        );
        assert_eq!(
            progress_line(step, 0, 0),
            "STATUS=upgrade v3: backing up data/ 0%"
        );
        assert_eq!(
            progress_line(step, 200, 100),
            "STATUS=upgrade v3: backing up data/ 100%"
        );
        assert_eq!(
            progress_line(step, u64::MAX, u64::MAX),
            "STATUS=upgrade v3: backing up data/ 100%"
        );
    }
}
