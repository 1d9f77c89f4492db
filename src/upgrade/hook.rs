//! Runs an upgrade hook (`<binary> pre-upgrade`, the `COSMOVISOR_CUSTOM_PREUPGRADE` script) to its
//! end: signals are forwarded to it while it runs, and its stdout and stderr are captured, as Go
//! does, instead of reaching our own streams (only their last [`child::CAPTURE_CAP`] bytes: the
//! running and capturing is `child.rs`'s, which reads the pipes in the same `select!` that
//! forwards signals, so a hook that writes a lot never delays a forward).
//!
//! A termination signal that arrives while the hook runs is forwarded to it like any other; once
//! the hook has ended the run is [`HookError::Interrupted`], whatever its exit status. What the
//! exit status means otherwise is the caller's business (`upgrade/steps.rs`). The hook runs in a
//! process group of its own, and what it leaves in it is stopped once it exits.

use std::io;

use tokio::process::Command;
use tracing::warn;

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
