//! Runs an upgrade hook (`<binary> pre-upgrade`, the `COSMOVISOR_CUSTOM_PREUPGRADE` script) to its
//! end: signals are forwarded to it while it runs, and its stdout and stderr are captured, as Go
//! does, instead of reaching our own streams (only their last [`child::CAPTURE_CAP`] bytes: the
//! running and capturing is `child.rs`'s, which reads the pipes in the same `select!` that
//! forwards signals, so a hook that writes a lot never delays a forward).
//!
//! A termination signal that arrives while the hook runs is forwarded to it like any other; once
//! the hook has ended the run is [`HookError::Interrupted`], whatever its exit status. What the
//! exit status means otherwise is the caller's business (`upgrade/steps.rs`).

use std::io;

use tokio::process::Command;

use crate::child::{self, Ended};
use crate::signals::{Interrupted, Signals};

/// Why a hook gave no exit status to judge.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(transparent)]
    Run(#[from] io::Error),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

/// Runs `command` (stdin from /dev/null, stdout and stderr captured: [`child::run`]) to its end,
/// forwarding every signal we receive to it.
pub async fn run(command: Command, signals: &mut Signals) -> Result<Ended, HookError> {
    let forwarding = &mut *signals;
    let ended = child::run(command, move |pid| async move {
        loop {
            let sig = forwarding.recv().await;
            let _ = nix::sys::signal::kill(pid, sig);
        }
    })
    .await?;
    signals.interrupted()?;
    Ok(ended)
}
