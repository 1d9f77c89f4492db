//! Manual upgrades while the node runs: what a change of the queue asks of the running node, and
//! the questions to the node's RPC (`node_rpc.rs`) that decide two cases the daemon's output cannot
//! (docs/design.md "Trust boundaries"):
//!
//! * before restarting the node with a lower `--halt-height` the queue asks for: is the node
//!   already past it? Then the plan is reported as missed, taken out of the queue, and the node is
//!   left alone (a node started with a halt height below its own would halt at once and be
//!   upgraded at the wrong height, now or at the next start);
//! * a halt line at the manual plan's height from a node that keeps running (SDK 0.50's
//!   `FinalizeBlock` error does not end the process): the upgrade goes ahead only when the node's
//!   height is at least the plan's. An RPC that cannot be reached is asked again every
//!   [`RPC_RETRY`]; the node's own exit after the halt line still counts meanwhile.
//!
//! The RPC answers never trigger anything on their own: they only confirm or refuse what the
//! queue (written by the operator) or the node's halt asks for.

use std::ffi::OsString;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::home::plan::{Applied, Plan};
use crate::supervisor::node_rpc::{self, RpcError};
use crate::supervisor::output::Hints;
use crate::upgrade::batch;

/// How long to wait before asking the node's RPC again when it could not be reached while the
/// node claims its halt at a manual upgrade's height.
const RPC_RETRY: Duration = Duration::from_secs(5);

/// The node's answer to "what is your height", on its way.
type HeightAnswer = Pin<Box<dyn Future<Output = Result<i64, RpcError>>>>;

/// What the running node should do now.
pub(super) enum Verdict {
    /// Run on as it is.
    Nothing,
    /// Restart with the queue's `--halt-height` (stop gracefully, launch again).
    Restart,
    /// Stop and carry out this manual upgrade: the node halted at its height.
    Upgrade(Plan),
}

/// The daemon's arguments for a launch while `manual` is the next manual upgrade:
/// `--halt-height` added for a `start` (see [`batch::with_halt_height`]).
pub(super) fn halt_args(args: &[OsString], manual: Option<&Plan>) -> Vec<OsString> {
    manual
        .and_then(|plan| batch::with_halt_height(args, plan.height))
        .unwrap_or_else(|| args.to_vec())
}

/// The manual plan whose height the daemon reported halting at before it exited on its own.
pub(super) fn halted_for(hints: &Hints, manual: Option<&Plan>) -> Option<Plan> {
    let plan = manual?;
    let height = hints
        .halt_height()
        .filter(|&height| height >= plan.height)?;
    info!(name = %plan.name, height, "node halted at the manual upgrade height");
    Some(plan.clone())
}

/// The questions to the node's RPC under way for one run of the daemon.
pub(super) struct HeightChecks {
    rpc: String,
    /// The node claimed its halt at the manual plan's height and runs on: the question that
    /// would confirm it.
    halt_check: Option<HeightAnswer>,
    /// When to ask again after the RPC could not be reached.
    ask_again_at: Option<Instant>,
    rpc_warned: bool,
    /// A lower halt height the queue asks for, waiting for the node's height.
    restart_check: Option<(Plan, HeightAnswer)>,
}

impl HeightChecks {
    pub(super) fn new(rpc: &str) -> HeightChecks {
        HeightChecks {
            rpc: rpc.to_owned(),
            halt_check: None,
            ask_again_at: None,
            rpc_warned: false,
            restart_check: None,
        }
    }

    fn ask(&self) -> HeightAnswer {
        let rpc = self.rpc.clone();
        Box::pin(async move { node_rpc::latest_height(&rpc).await })
    }

    /// The manual-upgrade queue changed while the daemon runs with `args` for `manual`: decides
    /// (or starts asking the node) whether it must be restarted with another `--halt-height`.
    pub(super) fn queue_changed(
        &mut self,
        queue: &Path,
        (applied, skip): (&Applied, &[i64]),
        recase: bool,
        base_args: &[OsString],
        args: &[OsString],
        manual: &mut Option<Plan>,
    ) -> Verdict {
        let due = match batch::next_due(queue, applied, recase, skip) {
            Ok(due) => due,
            Err(err) => {
                warn!(error = %err, "cannot use the changed manual upgrade queue; the node keeps running as it was started");
                return Verdict::Nothing;
            }
        };
        if halt_args(base_args, due.as_ref()) == args {
            *manual = due;
            return Verdict::Nothing;
        }
        let running_for = manual.as_ref().map(|plan| plan.height);
        match due {
            Some(plan) if running_for.is_none_or(|height| plan.height < height) => {
                self.restart_check = Some((plan, self.ask()));
                Verdict::Nothing
            }
            Some(plan) => {
                info!(name = %plan.name, height = plan.height, "the manual upgrade queue changed: the node's next manual upgrade is now at a greater height; restarting the node with --halt-height {}", plan.height);
                Verdict::Restart
            }
            None => {
                info!(
                    "the manual upgrade queue no longer holds the upgrade the node halts for; restarting the node without that --halt-height"
                );
                Verdict::Restart
            }
        }
    }

    /// The daemon printed a halt line at `height`: when it is at or past the manual plan's
    /// height, ask the node whether it really is there.
    pub(super) fn halt_claimed(&mut self, height: i64, manual: Option<&Plan>) {
        if manual.is_some_and(|plan| height >= plan.height) && self.halt_check.is_none() {
            debug!(
                height,
                "the node claims its halt; asking its RPC for its height"
            );
            self.ask_again_at = None;
            self.halt_check = Some(self.ask());
        }
    }

    /// Waits for the next answer of the node's RPC and judges it (never returns while nothing is
    /// asked). Cancel-safe: the questions live in `self`.
    pub(super) async fn next(&mut self, manual: Option<&Plan>, queue: &Path) -> Verdict {
        loop {
            let restart_answer = async {
                match self.restart_check.as_mut() {
                    Some((_, answer)) => answer.await,
                    None => std::future::pending().await,
                }
            };
            let halt_answer = async {
                match self.halt_check.as_mut() {
                    Some(answer) => answer.await,
                    None => std::future::pending().await,
                }
            };
            let ask_again_at = self.ask_again_at;
            let ask_again = async {
                match ask_again_at {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                answer = restart_answer => {
                    if let Some((plan, _)) = self.restart_check.take() {
                        if let Some(verdict) = judge_restart(&plan, answer, queue) {
                            return verdict;
                        }
                    }
                }
                answer = halt_answer => {
                    self.halt_check = None;
                    if let Some(plan) = manual {
                        if let Some(verdict) = self.judge_halt(plan, answer) {
                            return verdict;
                        }
                    }
                }
                () = ask_again => {
                    self.ask_again_at = None;
                    self.halt_check = Some(self.ask());
                }
            }
        }
    }

    fn judge_halt(&mut self, plan: &Plan, answer: Result<i64, RpcError>) -> Option<Verdict> {
        match answer {
            Ok(latest) if latest >= plan.height => {
                info!(name = %plan.name, height = plan.height, node_height = latest, "node halted at the manual upgrade height and keeps running; its RPC confirms the height");
                return Some(Verdict::Upgrade(plan.clone()));
            }
            Ok(latest) => {
                warn!(name = %plan.name, height = plan.height, node_height = latest, "a halt line on the daemon's output is not confirmed by the node's RPC; ignoring it");
            }
            Err(err) => {
                if self.rpc_warned {
                    debug!(error = %err, "the node's RPC still cannot be reached");
                } else {
                    warn!(name = %plan.name, height = plan.height, error = %err, "the node claims its halt at the manual upgrade height, but its height cannot be checked (COSMOVISOR_NODE_RPC); waiting for the node to exit, and asking again every {}", crate::config::format_go_duration(RPC_RETRY));
                    self.rpc_warned = true;
                }
                self.ask_again_at = Some(Instant::now() + RPC_RETRY);
            }
        }
        None
    }
}

/// Restart for a lower halt height unless the node is already past it.
fn judge_restart(plan: &Plan, answer: Result<i64, RpcError>, queue: &Path) -> Option<Verdict> {
    match answer {
        Ok(latest) if latest >= plan.height => {
            let removed = match batch::remove(queue, plan) {
                Ok(()) => "removed it from the manual upgrade queue".to_owned(),
                Err(err) => format!(
                    "could not remove it from the manual upgrade queue ({err}): remove it by hand before cosmovisor starts again"
                ),
            };
            error!(name = %plan.name, height = plan.height, node_height = latest, "missed manual upgrade {} at height {}, last known height is {latest}; {removed}; the node keeps running: schedule it again above height {latest} if it is still wanted", plan.name, plan.height);
            None
        }
        Ok(latest) => {
            info!(name = %plan.name, height = plan.height, node_height = latest, "manual upgrade added while the node runs: restarting the node with --halt-height {}", plan.height);
            Some(Verdict::Restart)
        }
        Err(err) => {
            warn!(name = %plan.name, height = plan.height, error = %err, "manual upgrade added while the node runs: restarting the node with --halt-height {}; its height could not be checked (COSMOVISOR_NODE_RPC)", plan.height);
            Some(Verdict::Restart)
        }
    }
}
