//! Running a short-lived child process to its end: the upgrade hooks (`upgrade/hook.rs`) and the
//! doctor's `<bin> version` and `ldd` (`commands/doctor/binary.rs`). The child's stdin is
//! `/dev/null`; its stdout and stderr are untrusted and unbounded, so only the last
//! [`CAPTURE_CAP`] bytes of each are kept. Both pipes are read in the same `select!` that runs the
//! caller's watch over the child ([`run`]: forwarding signals, or [`run_within`]: a time limit),
//! so a child that writes a lot never delays the watch.
//!
//! Every child we start, the daemon included (`supervisor/process.rs`), gets SIGTERM as its
//! parent-death signal ([`set_parent_death_signal`]), so it is never left running without us.
//! A child run in a process group of its own ([`run_in_group`]) leaves nothing behind: what is
//! left in the group once the child has exited is stopped and reaped ([`end_group`]).
//! What a child's exit status means is the caller's business.

use std::future::Future;
use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// How much of each stream is kept: its last 64 KiB, where a failing child says why.
pub const CAPTURE_CAP: usize = 64 * 1024;

/// How long the pipes may stay open after the child exited (a child of its own may hold them).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The end of one output stream of a child.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Captured {
    bytes: Vec<u8>,
    /// Whether earlier bytes were dropped to stay within [`CAPTURE_CAP`].
    truncated: bool,
}

impl Captured {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        // Dropping in batches keeps the cost linear in what the child writes.
        if self.bytes.len() > 2 * CAPTURE_CAP {
            self.keep_last();
        }
    }

    fn keep_last(&mut self) {
        if self.bytes.len() > CAPTURE_CAP {
            self.bytes.drain(..self.bytes.len() - CAPTURE_CAP);
            self.truncated = true;
        }
    }

    /// The captured text (invalid UTF-8 replaced), without trailing whitespace.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).trim_end().to_owned()
    }

    /// ` stdout: "…"`-style description for an error, or `None` when nothing was written.
    #[must_use]
    pub fn describe(&self, stream: &str) -> Option<String> {
        let text = self.text();
        if text.is_empty() {
            return None;
        }
        // Debug quoting keeps the error on one line whatever the child printed.
        Some(if self.truncated {
            format!("{stream} (last {CAPTURE_CAP} bytes): {text:?}")
        } else {
            format!("{stream}: {text:?}")
        })
    }
}

/// A child that ran to its end.
#[derive(Debug)]
pub struct Ended {
    pub status: ExitStatus,
    pub stdout: Captured,
    pub stderr: Captured,
}

impl Ended {
    /// ` (stdout: "…", stderr: "…")` with the streams that said something, for an error
    /// message; empty when both were silent.
    #[must_use]
    pub fn describe_output(&self) -> String {
        let parts: Vec<String> = [
            self.stdout.describe("stdout"),
            self.stderr.describe("stderr"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    }
}

/// Runs `command` (stdin from /dev/null, stdout and stderr captured) to its end. `watch` is
/// given the child's pid and runs beside it until the child exits: what the caller does to a
/// running child (forward our signals to it, kill it after a time limit). A `watch` that ends
/// early only stops watching; the child is still waited for.
pub async fn run<Watch, F>(command: Command, watch: Watch) -> io::Result<Ended>
where
    Watch: FnOnce(Pid) -> F,
    F: Future<Output = ()>,
{
    Ok(run_with(command, watch, false).await?.0)
}

/// Runs `command` as [`run`] does, in a process group of its own. Once it has exited, whatever it
/// left running in its group is stopped and reaped ([`end_group`], with [`GROUP_GRACE`]) before
/// its pipes are drained, so a leftover that holds them open costs no wait. Also returns how many
/// processes were left.
pub async fn run_in_group<Watch, F>(
    mut command: Command,
    watch: Watch,
) -> io::Result<(Ended, usize)>
where
    Watch: FnOnce(Pid) -> F,
    F: Future<Output = ()>,
{
    command.process_group(0);
    run_with(command, watch, true).await
}

async fn run_with<Watch, F>(
    mut command: Command,
    watch: Watch,
    own_group: bool,
) -> io::Result<(Ended, usize)>
where
    Watch: FnOnce(Pid) -> F,
    F: Future<Output = ()>,
{
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    set_parent_death_signal(&mut command);
    let mut child = command.spawn()?;
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let (stdout_pipe, stderr_pipe) = (child.stdout.take(), child.stderr.take());
    let mut stdout = Captured::default();
    let mut stderr = Captured::default();
    let mut left = 0;
    let status = {
        let reading = async {
            tokio::join!(
                read_into(stdout_pipe, &mut stdout),
                read_into(stderr_pipe, &mut stderr)
            );
        };
        let watching = async move {
            match pid {
                Some(pid) => watch(pid).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(reading, watching);
        let (mut read_done, mut watch_done) = (false, false);
        let status = loop {
            tokio::select! {
                () = &mut reading, if !read_done => read_done = true,
                status = child.wait() => break status?,
                () = &mut watching, if !watch_done => watch_done = true,
            }
        };
        if let (true, Some(pid)) = (own_group, pid) {
            left = end_group(pid, GROUP_GRACE).await;
        }
        if !read_done {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, &mut reading).await;
        }
        status
    };
    stdout.keep_last();
    stderr.keep_last();
    Ok((
        Ended {
            status,
            stdout,
            stderr,
        },
        left,
    ))
}

/// Runs `command` as [`run`] does, in a process group of its own, for at most `limit`:
/// `Ok(None)` when it did not finish in time (the whole group is then killed and the child
/// reaped).
pub async fn run_within(mut command: Command, limit: Duration) -> io::Result<Option<Ended>> {
    command.process_group(0);
    let mut timed_out = false;
    let flag = &mut timed_out;
    let ended = run(command, move |pid| async move {
        tokio::time::sleep(limit).await;
        // The child is reaped only once `run` stops watching, so the group id is still ours.
        let _ = nix::sys::signal::killpg(pid, Signal::SIGKILL);
        *flag = true;
    })
    .await?;
    Ok((!timed_out).then_some(ended))
}

/// How long what a child left in its process group gets between SIGTERM and SIGKILL.
pub const GROUP_GRACE: Duration = Duration::from_secs(2);

/// How long [`end_group`] waits for SIGKILL to take effect before it gives up.
const GROUP_KILL_LIMIT: Duration = Duration::from_secs(5);

/// After the leader of process group `pgid` (a child started with `process_group(0)`) was reaped:
/// stops what is left in the group (SIGTERM, then SIGKILL after `grace`) and reaps those of them
/// that are our children (as a child subreaper, the leader's orphans are). Returns how many
/// processes were still running in the group; 0, at once, when none were.
async fn end_group(pgid: Pid, grace: Duration) -> usize {
    let start = tokio::time::Instant::now();
    let mut found = 0;
    let mut sent = None;
    loop {
        let members = group_members(pgid);
        let us = nix::unistd::getpid();
        for member in &members {
            if member.zombie && member.parent == us {
                let _ =
                    nix::sys::wait::waitpid(member.pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
            }
        }
        let running = members.iter().filter(|m| !m.zombie).count();
        if sent.is_none() {
            found = running;
        }
        if running == 0 && !members.iter().any(|m| m.parent == us) {
            return found;
        }
        let elapsed = start.elapsed();
        if elapsed >= grace + GROUP_KILL_LIMIT {
            return found;
        }
        let signal = if elapsed >= grace {
            Signal::SIGKILL
        } else {
            Signal::SIGTERM
        };
        if running > 0 && sent != Some(signal) {
            let _ = nix::sys::signal::killpg(pgid, signal);
            sent = Some(signal);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One process of a group, from `/proc/<pid>/stat`.
struct Member {
    pid: Pid,
    parent: Pid,
    zombie: bool,
}

/// The processes whose process group is `pgid`.
fn group_members(pgid: Pid) -> Vec<Member> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // After the command name in parentheses: state, ppid, pgrp, ...
            let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
            let zombie = fields.next()? == "Z";
            let parent = fields.next()?.parse().ok()?;
            let group: i32 = fields.next()?.parse().ok()?;
            (group == pgid.as_raw()).then(|| Member {
                pid: Pid::from_raw(pid),
                parent: Pid::from_raw(parent),
                zombie,
            })
        })
        .collect()
}

/// Reads `pipe` to its end into `captured`; a read error ends the capture (the exit status
/// still decides).
async fn read_into(pipe: Option<impl AsyncRead + Unpin>, captured: &mut Captured) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n @ 1..) = pipe.read(&mut buf).await {
        captured.push(&buf[..n]);
    }
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
                return Err(io::Error::other("cosmovisor exited while starting a child"));
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_of_a_long_stream() {
        let mut captured = Captured::default();
        for _ in 0..100 {
            captured.push(&[b'y'; 4096]);
        }
        captured.push(b"the end\n");
        captured.keep_last();
        assert_eq!(captured.bytes.len(), CAPTURE_CAP);
        assert!(captured.text().ends_with("the end"));
        assert!(
            captured
                .describe("stderr")
                .unwrap()
                .starts_with("stderr (last 65536 bytes): \"yyy")
        );
    }

    #[test]
    fn short_and_empty_streams() {
        let mut captured = Captured::default();
        assert_eq!(captured.describe("stdout"), None);
        captured.push(b"two\nlines\n");
        captured.keep_last();
        assert_eq!(
            captured.describe("stdout").unwrap(),
            r#"stdout: "two\nlines""#
        );
    }

    #[tokio::test]
    async fn captures_both_streams_and_the_status() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo err >&2; exit 3"]);
        let ended = run(command, |_| async {}).await.unwrap();
        assert_eq!(ended.status.code(), Some(3));
        assert_eq!(ended.stdout.text(), "out");
        assert_eq!(ended.stderr.text(), "err");
    }

    /// On the real clock: a paused one would reach the limit before `sh` wrote the pid.
    #[tokio::test]
    async fn a_child_past_its_limit_is_killed_with_its_group() {
        let tmp = tempfile::tempdir().unwrap();
        let pid_file = tmp.path().join("pid");
        let mut command = Command::new("sh");
        command
            .args(["-c", "sleep 600 & echo $! > \"$0\"; sleep 600"])
            .arg(&pid_file);
        let ended = run_within(command, Duration::from_secs(2)).await.unwrap();
        assert!(ended.is_none(), "{ended:?}");
        let grandchild = std::fs::read_to_string(&pid_file).unwrap();
        let stat = format!("/proc/{}/stat", grandchild.trim());
        // Dead once gone or a zombie (its parent, init, reaps it in its own time).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
            assert!(
                std::time::Instant::now() < deadline,
                "the grandchild survived"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// On the real clock: the leftover gets SIGTERM once `sh` has exited.
    #[tokio::test]
    async fn what_a_child_leaves_in_its_group_is_stopped_before_the_pipes_are_drained() {
        let tmp = tempfile::tempdir().unwrap();
        let pid_file = tmp.path().join("pid");
        let mut command = Command::new("sh");
        // The leftover keeps stdout open: draining would wait for it.
        command
            .args(["-c", "sleep 600 & echo $! > \"$0\"; echo done"])
            .arg(&pid_file);
        let started = std::time::Instant::now();
        let (ended, left) = run_in_group(command, |_| async {}).await.unwrap();
        assert!(started.elapsed() < DRAIN_TIMEOUT, "{:?}", started.elapsed());
        assert_eq!((ended.stdout.text().as_str(), left), ("done", 1));
        let leftover = std::fs::read_to_string(&pid_file).unwrap();
        let stat = format!("/proc/{}/stat", leftover.trim());
        assert!(
            std::fs::read_to_string(stat).is_ok_and(|s| s.contains(") Z "))
                || !std::path::Path::new(&format!("/proc/{}", leftover.trim())).exists(),
            "the leftover still runs"
        );
        let (_, none_left) = run_in_group(Command::new("true"), |_| async {})
            .await
            .unwrap();
        assert_eq!(none_left, 0);
    }

    #[tokio::test]
    async fn a_child_within_its_limit_ends_as_it_ran() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo quick"]);
        let ended = run_within(command, Duration::from_secs(60)).await.unwrap();
        assert_eq!(ended.unwrap().stdout.text(), "quick");
    }
}
