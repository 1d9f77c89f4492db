//! Runs an upgrade hook (`<binary> pre-upgrade`, the `COSMOVISOR_CUSTOM_PREUPGRADE` script) to its
//! end: signals are forwarded to it while it runs, and its stdout and stderr are captured, as Go
//! does, instead of reaching our own streams (only their last [`child::CAPTURE_CAP`] bytes: the
//! running and capturing is `child.rs`'s, which reads the pipes in the same `select!` that
//! forwards signals, so a hook that writes a lot never delays a forward).
//!
//! A termination signal that arrives while the hook runs is forwarded to it like any other; once
//! the hook has ended the run is [`HookError::Interrupted`], whatever its exit status. The hook
//! runs in a process group of its own, and what it leaves in it is stopped once it exits.
//!
//! Also `<binary> pre-upgrade`'s contract (x/upgrade's exit codes: [`classify`]) and its retry
//! policy ([`run_with_retries`]); what `COSMOVISOR_CUSTOM_PREUPGRADE`'s status means is the
//! step's (`upgrade/steps.rs`).

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

use tokio::process::Command;
use tracing::{error, info, warn};

use crate::child::{self, Ended};
use crate::notify;
use crate::signals::{Interrupted, Signals};

/// Exit codes of `<binary> pre-upgrade` (x/upgrade's contract); 30 (fatal) and every other code
/// are failures.
const PRE_UPGRADE_NOT_IMPLEMENTED: i32 = 1;
const PRE_UPGRADE_RETRY: i32 = 31;

/// Why a hook gave no exit status to judge.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(transparent)]
    Run(#[from] io::Error),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

/// Runs `command` (stdin from /dev/null, stdout and stderr captured: [`child::run`]) to its end,
/// in a process group of its own, forwarding every signal we receive to it. Whatever the hook
/// left running in its group (a process forked into the background) is then stopped and reaped
/// ([`child::run_in_group`]), with one warning naming how many: nothing of a hook runs beside the
/// new node.
pub async fn run(command: Command, signals: &mut Signals) -> Result<Ended, HookError> {
    let program = command.as_std().get_program().to_owned();
    let forwarding = &mut *signals;
    let (ended, left) = child::run_in_group(command, move |pid| async move {
        loop {
            let sig = forwarding.recv().await;
            let _ = nix::sys::signal::kill(pid, sig);
        }
    })
    .await?;
    if left > 0 {
        warn!(
            hook = %std::path::Path::new(&program).display(),
            count = left,
            "the hook left {left} process(es) running in its process group; stopped them (SIGTERM, then SIGKILL after {})",
            crate::config::format_go_duration(child::GROUP_GRACE)
        );
    }
    signals.interrupted()?;
    Ok(ended)
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

/// Runs `<bin> pre-upgrade` in `home` once (attempt number `attempt`), with `env` set.
pub async fn run_pre_upgrade(
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
    run(command, signals).await
}

/// An exit status in words: `exit status N` or `signal N`.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
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
