//! The daemon process: spawning it with the operator's arguments, environment and stdin, piping
//! its output through [`crate::supervisor::output`], sending it signals, and stopping it gracefully.
//!
//! Only the supervisor's event loop waits on the child ([`Daemon::wait`] is cancel-safe), and
//! [`Daemon::stop`] returns only once the child is reaped, so nothing touches `data/` while the
//! node may still write it. The daemon gets SIGTERM as its parent-death signal: if cosmovisor is
//! killed (even with SIGKILL) the node is told to stop instead of being orphaned with the
//! database lock held. The child is spawned from the runtime's only thread (the main thread),
//! because the kernel fires the parent-death signal when the *thread* that forked exits.
//!
//! The daemon's descendants end with it: cosmovisor is a child subreaper (orphans of the daemon's
//! tree are re-parented to us, not to pid 1), the daemon leads its own process group unless it
//! shares our terminal (see `signals.rs`), and once the daemon is reaped whatever it left behind
//! gets SIGTERM, then SIGKILL after the grace, and is reaped ([`Daemon::finish`]).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tracing::{info, warn};

use crate::signals::{self, Signals};
use crate::supervisor::output::{self, Copier, Hints, Sink};

/// How long we wait for the daemon's output pipes to drain after it exited (a grandchild that
/// inherited them could keep them open for ever).
const OUTPUT_DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// How long leftovers sent SIGKILL may take to die (a process stuck in the kernel) before we give
/// up on them rather than hang.
const KILL_LIMIT: Duration = Duration::from_secs(5);
/// How often we look for the daemon's leftover descendants while they are being stopped.
const DESCENDANT_POLL: Duration = Duration::from_millis(20);

/// A running daemon.
pub struct Daemon {
    child: Child,
    pid: Pid,
    /// Whether the daemon leads its own process group (else it shares ours: see `signals.rs`).
    own_group: bool,
    copiers: Vec<Copier>,
    /// When a signal cosmovisor received last reached the daemon (forwarded, or delivered by the
    /// terminal to the group they share).
    last_signalled: Option<std::time::Instant>,
}

/// What to run.
pub struct Launch<'a> {
    pub bin: &'a Path,
    pub args: &'a [OsString],
    pub cwd: Option<&'a Path>,
    /// Extra environment (for example `LD_LIBRARY_PATH` for a version's `lib/`).
    pub env: Vec<(OsString, OsString)>,
}

/// Why the daemon could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot run {}: file not found", bin.display())]
    NotFound { bin: PathBuf },
    #[error("cannot run {}: permission denied (is it executable? chmod 755 {})", bin.display(), bin.display())]
    PermissionDenied { bin: PathBuf },
    #[error("cannot run {}: {err}", bin.display())]
    Other { bin: PathBuf, err: io::Error },
}

/// The shell-convention exit code for this failure.
impl crate::exit::ExitCode for SpawnError {
    fn exit_code(&self) -> u8 {
        match self {
            SpawnError::NotFound { .. } => crate::exit::NOT_FOUND,
            SpawnError::PermissionDenied { .. } | SpawnError::Other { .. } => {
                crate::exit::CANNOT_EXECUTE
            }
        }
    }
}

/// Makes cosmovisor a child subreaper: the daemon's orphaned descendants become our children
/// (so [`Daemon::finish`] can stop and reap them) instead of pid 1's.
pub fn become_subreaper() {
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        warn!(error = %err, "cannot become a child subreaper; processes the daemon leaves behind may outlive it");
    }
}

impl Daemon {
    /// Starts the daemon; what its output hints at (upgrade and halt lines) arrives in the
    /// returned [`Hints`].
    pub fn spawn(launch: &Launch<'_>) -> Result<(Daemon, Hints), SpawnError> {
        let other = |err: io::Error| SpawnError::Other {
            bin: launch.bin.to_path_buf(),
            err,
        };
        let (out_read, out_write) = pipe().map_err(other)?;
        let (err_read, err_write) = pipe().map_err(other)?;
        let mut command = Command::new(launch.bin);
        command
            .args(launch.args)
            .stdin(Stdio::inherit())
            .stdout(Stdio::from(out_write))
            .stderr(Stdio::from(err_write));
        if let Some(cwd) = launch.cwd {
            command.current_dir(cwd);
        }
        for (key, value) in &launch.env {
            command.env(key, value);
        }
        crate::notify::keep_from(&mut command);
        let own_group = signals::daemon_gets_own_group();
        if own_group {
            command.process_group(0);
        }
        crate::child::set_parent_death_signal(&mut command);
        let child = command.spawn().map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => SpawnError::NotFound {
                bin: launch.bin.to_path_buf(),
            },
            io::ErrorKind::PermissionDenied => SpawnError::PermissionDenied {
                bin: launch.bin.to_path_buf(),
            },
            _ => other(err),
        })?;
        // The write ends went into `command`; drop it so only the child holds them and the
        // copiers see end-of-file when it exits.
        drop(command);
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw)
            .ok_or_else(|| other(io::Error::other("the child has no pid")))?;
        let (hint_sender, hints) = output::hints();
        let copiers = vec![
            Copier::start(out_read, Sink::Stdout, hint_sender.clone()).map_err(other)?,
            Copier::start(err_read, Sink::Stderr, hint_sender).map_err(other)?,
        ];
        Ok((
            Daemon {
                child,
                pid,
                own_group,
                copiers,
                last_signalled: None,
            },
            hints,
        ))
    }

    #[must_use]
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// When a signal cosmovisor received last reached the daemon, if one did.
    pub fn last_signalled(&self) -> Option<std::time::Instant> {
        self.last_signalled
    }

    /// Waits for the daemon to exit and reaps it. Cancel-safe.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Passes on a signal cosmovisor received, by the policy of `signals.rs`: a terminal's
    /// SIGINT already reached a daemon that shares our process group, so it is not sent twice.
    pub fn forward(&mut self, signal: Signal) {
        self.last_signalled = Some(std::time::Instant::now());
        if signals::already_delivered(signal, self.own_group) {
            return;
        }
        self.signal(signal);
    }

    /// Sends `signal` to the daemon, if it has not been reaped yet. A daemon that is already
    /// gone (ESRCH) is only worth a warning, as in tini.
    fn signal(&mut self, signal: Signal) {
        if self.child.id().is_none() {
            return;
        }
        match kill(self.pid, signal) {
            Ok(()) => {}
            Err(Errno::ESRCH) => {
                warn!(signal = %signal, pid = self.pid.as_raw(), "daemon already exited; signal not delivered");
            }
            Err(err) => {
                warn!(signal = %signal, pid = self.pid.as_raw(), error = %err, "cannot forward signal to daemon");
            }
        }
    }

    /// Stops the daemon: SIGTERM, up to `grace` for it to exit, then SIGKILL (to its whole
    /// process group when it has one), and returns only once it is reaped. Signals that arrive
    /// meanwhile are forwarded; a termination signal among them is remembered by `signals`
    /// ([`Signals::interrupted`]) so the caller can stop too, but never cuts this wait short.
    pub async fn stop(&mut self, grace: Duration, signals: &mut Signals) -> io::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        self.signal(Signal::SIGTERM);
        info!(grace = %crate::config::format_go_duration(grace), "sent SIGTERM to app, waiting for exit");
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                status = self.child.wait() => {
                    let status = status?;
                    info!(status = %status, "app exited normally");
                    return Ok(status);
                }
                sig = signals.recv() => self.forward(sig),
                () = &mut deadline => break,
            }
        }
        warn!(grace = %crate::config::format_go_duration(grace), "DAEMON_SHUTDOWN_GRACE exceeded, killing app");
        if self.own_group {
            // The grace is over for the daemon's whole tree, not just for the daemon.
            if let Err(err) = killpg(self.pid, Signal::SIGKILL) {
                warn!(pgid = self.pid.as_raw(), error = %err, "cannot kill the daemon's process group");
            }
        } else {
            self.signal(Signal::SIGKILL);
        }
        self.child.wait().await
    }

    /// Reaps the adopted orphans of the daemon's tree that have exited (as a subreaper we are
    /// their parent now), never the daemon itself: only its owner's `wait` reaps it. Call it on
    /// SIGCHLD.
    pub fn reap_orphans(&self) {
        for child in children_of_us() {
            if child != self.pid && pid_file::is_zombie(child) {
                let _ = waitpid(child, Some(WaitPidFlag::WNOHANG));
            }
        }
    }

    /// After the daemon was reaped: stops and reaps what it left behind (SIGTERM, then SIGKILL
    /// after `grace`), then waits (briefly) for its output to be fully copied.
    pub async fn finish(&mut self, grace: Duration) {
        self.end_descendants(grace).await;
        for copier in self.copiers.drain(..) {
            copier.finish(OUTPUT_DRAIN_LIMIT).await;
        }
    }

    /// The daemon's process group (when it has its own) and every child of ours (with the
    /// daemon reaped, those are its adopted orphans) get SIGTERM, and SIGKILL after `grace`;
    /// returns once all are gone and reaped.
    async fn end_descendants(&mut self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        let mut told = BTreeSet::new();
        let mut group_told = false;
        let mut killing = false;
        let give_up = deadline + KILL_LIMIT;
        loop {
            for child in children_of_us() {
                // A zombie is reaped here; a live one stays.
                let _ = waitpid(child, Some(WaitPidFlag::WNOHANG));
            }
            let group_alive = self.own_group && killpg(self.pid, None).is_ok();
            let children = children_of_us();
            if !group_alive && children.is_empty() {
                return;
            }
            if tokio::time::Instant::now() >= give_up {
                warn!(
                    left = children.len(),
                    "processes the daemon left behind do not die even from SIGKILL; leaving them"
                );
                return;
            }
            let signal = if killing {
                Signal::SIGKILL
            } else if tokio::time::Instant::now() >= deadline {
                warn!(grace = %crate::config::format_go_duration(grace), "processes the daemon left behind did not stop in time, killing them");
                killing = true;
                told.clear();
                group_told = false;
                Signal::SIGKILL
            } else {
                Signal::SIGTERM
            };
            if group_alive && !group_told {
                if !killing {
                    warn!(
                        pgid = self.pid.as_raw(),
                        "the daemon's process group outlived it; stopping it"
                    );
                }
                let _ = killpg(self.pid, signal);
                group_told = true;
            }
            for child in children {
                if told.insert(child) {
                    if !killing {
                        warn!(
                            pid = child.as_raw(),
                            "a process the daemon left behind is still running; stopping it"
                        );
                    }
                    let _ = kill(child, signal);
                }
            }
            tokio::time::sleep(DESCENDANT_POLL).await;
        }
    }
}

/// Our own children, from /proc (each `/proc/<pid>/stat` names its parent).
fn children_of_us() -> Vec<Pid> {
    let us = nix::unistd::getpid();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .map(Pid::from_raw)
        .filter(|&pid| pid_file::parent_of(pid) == Some(us))
        .collect()
}

fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

pub mod pid_file;

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    /// Runs `script` with `sh -c` as the daemon and waits (on the real clock) until it has
    /// created the file it is given as `$1`.
    fn spawn_script(script: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let args = [
            "-c".into(),
            script.into(),
            "sh".into(),
            ready.clone().into(),
        ];
        let launch = Launch {
            bin: Path::new("/bin/sh"),
            args: &args,
            cwd: None,
            env: Vec::new(),
        };
        let (daemon, _hints) = Daemon::spawn(&launch).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the script never got ready"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        daemon
    }

    /// SIGTERM first; SIGKILL only once `grace` is over on tokio's clock (paused here, so the
    /// 30 s pass at once): the daemon is still alive a millisecond before.
    #[tokio::test(start_paused = true)]
    async fn a_daemon_that_ignores_sigterm_is_killed_when_the_grace_is_over() {
        let mut daemon = spawn_script(r#"trap '' TERM; : > "$1"; exec sleep 60"#);
        let mut signals = Signals::install().unwrap();
        let grace = Duration::from_secs(30);
        let pid = daemon.pid();
        let start = tokio::time::Instant::now();
        let alive_just_before_the_grace_is_over = async {
            tokio::time::sleep(grace.saturating_sub(Duration::from_millis(1))).await;
            kill(pid, None).is_ok() && !pid_file::is_zombie(pid)
        };
        let (stopped, alive) = tokio::join!(
            daemon.stop(grace, &mut signals),
            alive_just_before_the_grace_is_over
        );
        let status = stopped.unwrap();
        assert!(alive, "SIGTERM alone does not end it");
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
        assert_eq!(start.elapsed(), grace, "killed when the grace is over");
    }
}
