//! The daemon process: spawning it with the operator's arguments, environment and stdin, piping
//! its output through [`crate::output`], sending it signals, and stopping it gracefully.
//!
//! Only the supervisor's event loop waits on the child ([`Daemon::wait`] is cancel-safe), and
//! [`Daemon::stop`] returns only once the child is reaped, so nothing touches `data/` while the
//! node may still write it. The daemon gets SIGTERM as its parent-death signal: if cosmovisor is
//! killed (even with SIGKILL) the node is told to stop instead of being orphaned with the
//! database lock held. The child is spawned from the runtime's only thread (the main thread),
//! because the kernel fires the parent-death signal when the *thread* that forked exits.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::output::{Copier, Sink};
use crate::plan::Notice;
use crate::signals::{self, Signals};

/// How long we wait for the daemon's output pipes to drain after it exited (a grandchild that
/// inherited them could keep them open for ever).
const OUTPUT_DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// A running daemon.
pub struct Daemon {
    child: Child,
    pid: Pid,
    copiers: Vec<Copier>,
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

impl SpawnError {
    /// The shell-convention exit code for this failure.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            SpawnError::NotFound { .. } => crate::exit::NOT_FOUND,
            SpawnError::PermissionDenied { .. } | SpawnError::Other { .. } => {
                crate::exit::CANNOT_EXECUTE
            }
        }
    }
}

impl Daemon {
    /// Starts the daemon; upgrade lines seen on its output are sent to `lines`.
    pub fn spawn(
        launch: &Launch<'_>,
        lines: &mpsc::UnboundedSender<Notice>,
    ) -> Result<Daemon, SpawnError> {
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
        set_parent_death_signal(&mut command);
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
        let copiers = vec![
            Copier::start(out_read, Sink::Stdout, lines.clone()).map_err(other)?,
            Copier::start(err_read, Sink::Stderr, lines.clone()).map_err(other)?,
        ];
        Ok(Daemon {
            child,
            pid,
            copiers,
        })
    }

    #[must_use]
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Waits for the daemon to exit and reaps it. Cancel-safe.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Sends `signal` to the daemon, if it has not been reaped yet. A daemon that is already
    /// gone (ESRCH) is only worth a warning, as in tini.
    pub fn signal(&mut self, signal: Signal) {
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

    /// Stops the daemon: SIGTERM, up to `grace` for it to exit, then SIGKILL, and returns only
    /// once it is reaped. Signals that arrive meanwhile are forwarded; the first terminating one
    /// is returned so the caller can stop too.
    pub async fn stop(
        &mut self,
        grace: Duration,
        signals: &mut Signals,
    ) -> io::Result<(ExitStatus, Option<Signal>)> {
        let mut terminated_by = None;
        if let Some(status) = self.child.try_wait()? {
            return Ok((status, terminated_by));
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
                    return Ok((status, terminated_by));
                }
                sig = signals.recv() => {
                    if signals::is_termination(sig) && terminated_by.is_none() {
                        terminated_by = Some(sig);
                    }
                    self.signal(sig);
                }
                () = &mut deadline => break,
            }
        }
        warn!(grace = %crate::config::format_go_duration(grace), "DAEMON_SHUTDOWN_GRACE exceeded, killing app");
        self.signal(Signal::SIGKILL);
        let status = self.child.wait().await?;
        Ok((status, terminated_by))
    }

    /// Waits (briefly) for the daemon's output to be fully copied.
    pub async fn drain_output(&mut self) {
        for copier in self.copiers.drain(..) {
            copier.finish(OUTPUT_DRAIN_LIMIT).await;
        }
    }
}

/// `LD_LIBRARY_PATH` with the version's own `lib/` first (for `libwasmvm.so` shipped beside the
/// binary), when that folder exists.
#[must_use]
pub fn library_path_env(version_dir: &Path) -> Option<(OsString, OsString)> {
    let lib = version_dir.join("lib");
    if !lib.is_dir() {
        return None;
    }
    let mut value = lib.into_os_string();
    if let Some(existing) = std::env::var_os("LD_LIBRARY_PATH").filter(|v| !v.is_empty()) {
        value.push(":");
        value.push(existing);
    }
    Some((OsString::from("LD_LIBRARY_PATH"), value))
}

fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// Asks the kernel to send SIGTERM to the child when its parent thread dies.
#[allow(unsafe_code)]
pub fn set_parent_death_signal(command: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and only makes two
    // async-signal-safe system calls (prctl, getppid); it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(io::Error::from)?;
            // The parent may have died between fork and prctl: then nobody would ever send the
            // signal, so give up on this child now.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::other(
                    "cosmovisor exited while starting the daemon",
                ));
            }
            Ok(())
        });
    }
}

/// The pid file that lets the next cosmovisor find a daemon left by one that was killed.
pub mod pid_file {
    use super::{Duration, Path, Pid, Signal, fs, info, io, kill, warn};

    /// Records `pid` with its start time (so a recycled pid is never mistaken for it).
    pub fn write(path: &Path, pid: Pid) -> io::Result<()> {
        let start = start_time(pid).unwrap_or_default();
        crate::layout::write_atomic(
            path,
            format!("{} {start}\n", pid.as_raw()).as_bytes(),
            0o644,
        )
    }

    pub fn remove(path: &Path) {
        let _ = fs::remove_file(path);
    }

    /// If the daemon recorded in `path` still runs (its supervisor was killed and it is still
    /// shutting down after its parent-death SIGTERM), waits for it, killing it after `grace`.
    pub async fn wait_for_previous(path: &Path, grace: Duration) {
        let Ok(text) = fs::read_to_string(path) else {
            return;
        };
        let mut parts = text.split_whitespace();
        let (Some(Ok(raw)), Some(recorded)) = (parts.next().map(str::parse::<i32>), parts.next())
        else {
            remove(path);
            return;
        };
        let pid = Pid::from_raw(raw);
        if !is_same_process(pid, recorded) {
            remove(path);
            return;
        }
        warn!(pid = raw, grace = %crate::config::format_go_duration(grace), "daemon started by a previous cosmovisor is still running; waiting for it to exit");
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        while is_same_process(pid, recorded) {
            if tokio::time::Instant::now() >= deadline {
                warn!(
                    pid = raw,
                    "previous daemon did not exit in time, killing it"
                );
                let _ = kill(pid, Signal::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        info!(pid = raw, "previous daemon exited");
        remove(path);
    }

    /// The pid recorded in `path` when that very process (same start time, not a zombie) is
    /// still alive; read-only (for `status` and `rollback`).
    #[must_use]
    pub fn running(path: &Path) -> Option<Pid> {
        let text = fs::read_to_string(path).ok()?;
        let mut parts = text.split_whitespace();
        let pid = Pid::from_raw(parts.next()?.parse::<i32>().ok()?);
        let recorded = parts.next()?;
        is_same_process(pid, recorded).then_some(pid)
    }

    fn is_same_process(pid: Pid, recorded_start: &str) -> bool {
        match start_time(pid) {
            // A zombie still has its stat; it no longer holds any file, so it does not count.
            Some(start) => start == recorded_start && !is_zombie(pid),
            None => false,
        }
    }

    /// Field 22 of /proc/<pid>/stat: the start time in clock ticks since boot.
    fn start_time(pid: Pid) -> Option<String> {
        stat_fields(pid)?.get(19).cloned()
    }

    fn is_zombie(pid: Pid) -> bool {
        stat_fields(pid).is_some_and(|fields| fields.first().is_some_and(|state| state == "Z"))
    }

    /// The fields of /proc/<pid>/stat after the command name (state is the first).
    fn stat_fields(pid: Pid) -> Option<Vec<String>> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", pid.as_raw())).ok()?;
        let after_name = &stat[stat.rfind(')')? + 1..];
        Some(after_name.split_whitespace().map(str::to_owned).collect())
    }
}
