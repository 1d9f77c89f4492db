//! Runs an upgrade hook (`<binary> pre-upgrade`, the `COSMOVISOR_CUSTOM_PREUPGRADE` script) to its
//! end: signals are forwarded to it while it runs, and its stdout and stderr are captured, as Go
//! does, instead of reaching our own streams. A hook's output is untrusted and unbounded, so only
//! the last [`CAPTURE_CAP`] bytes of each stream are kept; both pipes are read in the same `select!`
//! that forwards signals, so a hook that writes a lot never delays a forward.
//!
//! A termination signal that arrives while the hook runs is forwarded to it like any other; once
//! the hook has ended the run is [`HookError::Interrupted`], whatever its exit status. What the
//! exit status means otherwise is the caller's business (`upgrade/steps.rs`).

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::signals::{Interrupted, Signals};

/// How much of each stream is kept: its last 64 KiB, where a failing hook says why.
pub const CAPTURE_CAP: usize = 64 * 1024;

/// How long the pipes may stay open after the hook exited (a child of the hook may hold them).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The end of one output stream of a hook.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Captured {
    bytes: Vec<u8>,
    /// Whether earlier bytes were dropped to stay within [`CAPTURE_CAP`].
    truncated: bool,
}

impl Captured {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        // Dropping in batches keeps the cost linear in what the hook writes.
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
    fn describe(&self, stream: &str) -> Option<String> {
        let text = self.text();
        if text.is_empty() {
            return None;
        }
        // Debug quoting keeps the error on one line whatever the hook printed.
        Some(if self.truncated {
            format!("{stream} (last {CAPTURE_CAP} bytes): {text:?}")
        } else {
            format!("{stream}: {text:?}")
        })
    }
}

/// A hook that ran to its end.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub output: Output,
}

/// Why a hook gave no exit status to judge.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{0}")]
    Run(#[from] io::Error),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

/// The ends of a hook's stdout and stderr.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: Captured,
    pub stderr: Captured,
}

impl Output {
    /// ` (stdout: "…", stderr: "…")` with the streams that said something, for an error
    /// message; empty when both were silent.
    #[must_use]
    pub fn describe(&self) -> String {
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

/// Runs `command` (stdin from /dev/null, stdout and stderr captured) to its end, forwarding
/// every signal we receive to it.
pub async fn run(mut command: Command, signals: &mut Signals) -> Result<Finished, HookError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::supervisor::process::set_parent_death_signal(&mut command);
    let mut child = command.spawn()?;
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(nix::unistd::Pid::from_raw);
    let (stdout_pipe, stderr_pipe) = (child.stdout.take(), child.stderr.take());
    let mut stdout = Captured::default();
    let mut stderr = Captured::default();
    let status = {
        let reading = async {
            tokio::join!(
                read_into(stdout_pipe, &mut stdout),
                read_into(stderr_pipe, &mut stderr)
            );
        };
        tokio::pin!(reading);
        let mut read_done = false;
        let status = loop {
            tokio::select! {
                () = &mut reading, if !read_done => read_done = true,
                status = child.wait() => break status?,
                sig = signals.recv() => {
                    if let Some(pid) = pid {
                        let _ = nix::sys::signal::kill(pid, sig);
                    }
                }
            }
        };
        if !read_done {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, &mut reading).await;
        }
        status
    };
    signals.interrupted()?;
    stdout.keep_last();
    stderr.keep_last();
    Ok(Finished {
        status,
        output: Output { stdout, stderr },
    })
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
}
