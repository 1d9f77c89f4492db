//! Manual upgrades while the node runs: what a change of the queue asks of the running node, what
//! counts as the node's halt at a manual upgrade's height, and the questions to the node's
//! authenticated RPC (`node_rpc.rs`). The daemon's output is only a hint (docs/design.md "Trust
//! boundaries"): a manual upgrade at H is carried out only when the node's height is confirmed,
//! either
//!
//! * by the node's own clean exit: it printed a halt line naming exactly the `--halt-height` it
//!   runs with (H), then exited with status 0, with no signal reaching it since ([`halted_for`]);
//!   a halt line with another height, or followed by a non-zero exit, a death by signal or an exit
//!   after a forwarded signal, is an ordinary exit (the queue kept) with one warning saying why; or
//! * by its RPC, for a node that keeps running after its halt line (see below).
//!
//! The RPC is asked in two cases:
//!
//! * before restarting the node with a lower `--halt-height` the queue asks for: is the node
//!   already past it? Then the plan is reported as missed, taken out of the queue, and the node is
//!   left alone (a node started with a halt height below its own would halt at once and be
//!   upgraded at the wrong height, now or at the next start);
//! * a halt line at the manual plan's height from a node that keeps running (SDK 0.50's
//!   `FinalizeBlock` error does not end the process): the upgrade goes ahead only when the node's
//!   height is at least the plan's. At most one question a second (a node printing the line in a
//!   loop costs nothing), and each distinct reason to doubt is warned about once. An RPC that
//!   cannot be reached, or answers for another node, is asked again every [`RPC_RETRY`]; the
//!   node's own clean exit after the halt line still counts meanwhile.
//!
//! The RPC answers never trigger anything on their own: they only confirm or refuse what the
//! queue (written by the operator) or the node's halt asks for, and an answer that cannot be
//! authenticated neither confirms a halt nor removes a queued upgrade.

use std::ffi::OsString;
use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::home::plan::{Applied, Plan};
use crate::home::queue;
use crate::supervisor::node_rpc::{NodeRpc, RpcError};
use crate::supervisor::output::{HaltLine, Hints};

/// How long to wait before asking the node's RPC again when it could not be reached while the
/// node claims its halt at a manual upgrade's height.
const RPC_RETRY: Duration = Duration::from_secs(5);
/// The least time between two questions about one halt claim.
const RPC_MIN_INTERVAL: Duration = Duration::from_secs(1);

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
    /// The queue cannot be followed: stop the node, as a start with this queue would refuse to
    /// start it.
    Invalid(queue::BatchError),
}

/// The daemon's arguments for a launch while `manual` is the next manual upgrade:
/// `--halt-height` added for a `start` (see [`queue::with_halt_height`]).
pub(super) fn halt_args(args: &[OsString], manual: Option<&Plan>) -> Vec<OsString> {
    manual
        .and_then(|plan| queue::with_halt_height(args, plan.height))
        .unwrap_or_else(|| args.to_vec())
}

/// The manual plan the node halted for, judged when it exited on its own ([`exit_verdict`]),
/// with one warning saying why when a halt line did not count.
pub(super) fn halted_for(
    hints: &Hints,
    manual: Option<&Plan>,
    args: &[OsString],
    status: ExitStatus,
    last_signalled: Option<std::time::Instant>,
) -> Option<Plan> {
    let plan = manual?;
    let line = hints.halt_line()?;
    match exit_verdict(
        plan.height,
        queue::halt_height_of(args),
        line,
        status,
        last_signalled,
    ) {
        Ok(()) => {
            info!(name = %plan.name, height = plan.height, "node halted at the manual upgrade height");
            Some(plan.clone())
        }
        Err(why_not) => {
            warn!(name = %plan.name, height = plan.height, "the node printed a halt line, but {why_not}: not a halt at the manual upgrade height; the upgrade stays queued");
            None
        }
    }
}

/// Whether a run of the node that printed the halt `line` and exited with `status` halted at the
/// manual upgrade height `height`: it ran with `--halt-height` `height` (`run_halt_height`), the
/// line names exactly that height, and the node then exited with status 0 with no signal reaching
/// it since the line (`last_signalled`). Otherwise why not.
fn exit_verdict(
    height: i64,
    run_halt_height: Option<i64>,
    line: HaltLine,
    status: ExitStatus,
    last_signalled: Option<std::time::Instant>,
) -> Result<(), String> {
    if run_halt_height != Some(height) {
        Err(format!("the node did not run with --halt-height {height}"))
    } else if line.height != height {
        Err(format!(
            "its halt line names height {}, not its --halt-height {height}",
            line.height
        ))
    } else if let Some(signal) = status.signal() {
        let name = nix::sys::signal::Signal::try_from(signal)
            .map_or_else(|_| signal.to_string(), |signal| signal.to_string());
        Err(format!("it then died by signal {name}"))
    } else if status.code() != Some(0) {
        Err(format!(
            "it then exited with status {}",
            status.code().unwrap_or_default()
        ))
    } else if last_signalled.is_some_and(|at| at >= line.seen) {
        Err("a signal reached it after its halt line".to_owned())
    } else {
        Ok(())
    }
}

/// Whether a halt line at `line_height` is worth asking the node's RPC about, for the manual
/// upgrade at `height` with the node running with `--halt-height` `run_halt_height`.
fn claim_counts(line_height: i64, height: i64, run_halt_height: Option<i64>) -> bool {
    line_height == height && run_halt_height == Some(height)
}

/// What a change of the queue asks of the node running with `--halt-height` for `running_for`,
/// when the queue's next due plan is at `due` and the launch arguments for it differ from the
/// running ones (`same_args` otherwise).
#[derive(Debug, PartialEq, Eq)]
enum QueueVerdict {
    /// Nothing: the node already runs with the right `--halt-height`.
    Keep,
    /// A lower height: ask the node's RPC whether it has passed it, then restart.
    CheckThenRestart,
    /// A greater height, or none any more: restart at once.
    Restart,
}

fn queue_verdict(due: Option<i64>, running_for: Option<i64>, same_args: bool) -> QueueVerdict {
    match due {
        _ if same_args => QueueVerdict::Keep,
        Some(due) if running_for.is_none_or(|height| due < height) => {
            QueueVerdict::CheckThenRestart
        }
        _ => QueueVerdict::Restart,
    }
}

/// What the node's RPC said about a halt claim at `height`.
#[derive(Debug, PartialEq, Eq)]
enum HaltAnswer {
    /// The node is at or past the height: the halt is confirmed.
    Confirmed(i64),
    /// The node is below the height: the line lied.
    Below(i64),
    /// No authenticated answer: could not check.
    CouldNotCheck,
}

fn halt_answer(height: i64, answer: &Result<i64, RpcError>) -> HaltAnswer {
    match answer {
        Ok(latest) if *latest >= height => HaltAnswer::Confirmed(*latest),
        Ok(latest) => HaltAnswer::Below(*latest),
        Err(_) => HaltAnswer::CouldNotCheck,
    }
}

/// What the node's RPC said before a restart for a lower `--halt-height` `height`.
#[derive(Debug, PartialEq, Eq)]
enum RestartAnswer {
    /// The node is at or past the height: the plan is missed, the node left alone.
    Missed(i64),
    /// The node is below it (or could not be checked): restart with the height.
    Restart,
}

fn restart_answer(height: i64, answer: &Result<i64, RpcError>) -> RestartAnswer {
    match answer {
        Ok(latest) if *latest >= height => RestartAnswer::Missed(*latest),
        _ => RestartAnswer::Restart,
    }
}

/// The questions to the node's RPC under way for one run of the daemon.
pub(super) struct HeightChecks {
    rpc: NodeRpc,
    /// The node claimed its halt at the manual plan's height and runs on: the question that
    /// would confirm it.
    halt_check: Option<HeightAnswer>,
    /// When to ask again (after the RPC could not check, or a claim came too soon after the last
    /// question).
    ask_again_at: Option<Instant>,
    /// When the halt claim was last asked about.
    last_asked: Option<Instant>,
    /// The last reason to doubt a halt claim that was warned about (each is warned about once).
    last_doubt: Option<String>,
    /// A lower halt height the queue asks for, waiting for the node's height.
    restart_check: Option<(Plan, HeightAnswer)>,
}

impl HeightChecks {
    pub(super) fn new(rpc: NodeRpc) -> HeightChecks {
        HeightChecks {
            rpc,
            halt_check: None,
            ask_again_at: None,
            last_asked: None,
            last_doubt: None,
            restart_check: None,
        }
    }

    fn ask(&self) -> HeightAnswer {
        let rpc = self.rpc.clone();
        Box::pin(async move { rpc.latest_height().await })
    }

    /// Asks about the halt claim now, or as soon as the last question is a second old.
    fn ask_about_halt(&mut self) {
        let now = Instant::now();
        match self.last_asked {
            Some(last) if now < last + RPC_MIN_INTERVAL => {
                self.ask_again_at = Some(last + RPC_MIN_INTERVAL);
            }
            _ => {
                self.last_asked = Some(now);
                self.ask_again_at = None;
                self.halt_check = Some(self.ask());
            }
        }
    }

    /// Warns about a reason to doubt the node's halt claim, once per distinct reason.
    fn doubt(&mut self, plan: &Plan, why: String) {
        if self.last_doubt.as_ref() == Some(&why) {
            debug!(name = %plan.name, height = plan.height, "{why}");
            return;
        }
        warn!(name = %plan.name, height = plan.height, "{why}");
        self.last_doubt = Some(why);
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
        let due = match queue::next_due(queue, applied, recase, skip) {
            Ok(due) => due,
            Err(err) => return Verdict::Invalid(err),
        };
        let same_args = halt_args(base_args, due.as_ref()) == args;
        let running_for = manual.as_ref().map(|plan| plan.height);
        match (
            queue_verdict(due.as_ref().map(|plan| plan.height), running_for, same_args),
            due,
        ) {
            (QueueVerdict::Keep, due) => {
                *manual = due;
                Verdict::Nothing
            }
            (QueueVerdict::CheckThenRestart, Some(plan)) => {
                self.restart_check = Some((plan, self.ask()));
                Verdict::Nothing
            }
            (_, Some(plan)) => {
                info!(name = %plan.name, height = plan.height, "the manual upgrade queue changed: the node's next manual upgrade is now at a greater height; restarting the node with --halt-height {}", plan.height);
                Verdict::Restart
            }
            (_, None) => {
                info!(
                    "the manual upgrade queue no longer holds the upgrade the node halts for; restarting the node without that --halt-height"
                );
                Verdict::Restart
            }
        }
    }

    /// The daemon printed a halt line at `height`: when it names exactly the manual plan's height
    /// (the `--halt-height` it runs with), ask the node whether it really is there.
    pub(super) fn halt_claimed(&mut self, height: i64, manual: Option<&Plan>, args: &[OsString]) {
        let Some(plan) = manual else {
            return;
        };
        if !claim_counts(height, plan.height, queue::halt_height_of(args)) {
            let why = format!(
                "a halt line at height {height} on the daemon's output does not match the node's --halt-height {}; ignoring it",
                plan.height
            );
            self.doubt(plan, why);
            return;
        }
        if self.halt_check.is_none() && self.ask_again_at.is_none() {
            debug!(
                height,
                "the node claims its halt; asking its RPC for its height"
            );
            self.ask_about_halt();
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
                    self.ask_about_halt();
                }
            }
        }
    }

    fn judge_halt(&mut self, plan: &Plan, answer: Result<i64, RpcError>) -> Option<Verdict> {
        match (halt_answer(plan.height, &answer), answer) {
            (HaltAnswer::Confirmed(latest), _) => {
                info!(name = %plan.name, height = plan.height, node_height = latest, "node halted at the manual upgrade height and keeps running; its RPC confirms the height");
                return Some(Verdict::Upgrade(plan.clone()));
            }
            (HaltAnswer::Below(latest), _) => {
                let why = format!(
                    "a halt line on the daemon's output is not confirmed by the node's RPC (its height is {latest}); ignoring it"
                );
                self.doubt(plan, why);
            }
            (HaltAnswer::CouldNotCheck, answer) => {
                let err = answer.err().map(|err| err.to_string()).unwrap_or_default();
                let why = format!(
                    "the node claims its halt at the manual upgrade height, but its height could not be checked: {err}; waiting for the node to exit, and asking again every {}",
                    crate::config::format_go_duration(RPC_RETRY)
                );
                self.doubt(plan, why);
                self.ask_again_at = Some(Instant::now() + RPC_RETRY);
            }
        }
        None
    }
}

/// Restart for a lower halt height unless the node is already past it.
fn judge_restart(plan: &Plan, answer: Result<i64, RpcError>, queue: &Path) -> Option<Verdict> {
    match (restart_answer(plan.height, &answer), answer) {
        (RestartAnswer::Missed(latest), _) => {
            let removed = match queue::remove(queue, plan) {
                Ok(()) => "removed it from the manual upgrade queue".to_owned(),
                Err(err) => format!(
                    "could not remove it from the manual upgrade queue ({err}): remove it by hand before cosmovisor starts again"
                ),
            };
            error!(name = %plan.name, height = plan.height, node_height = latest, "missed manual upgrade {} at height {}, last known height is {latest}; {removed}; the node keeps running: schedule it again above height {latest} if it is still wanted", plan.name, plan.height);
            None
        }
        (RestartAnswer::Restart, Ok(latest)) => {
            info!(name = %plan.name, height = plan.height, node_height = latest, "manual upgrade added while the node runs: restarting the node with --halt-height {}", plan.height);
            Some(Verdict::Restart)
        }
        (RestartAnswer::Restart, Err(err)) => {
            warn!(name = %plan.name, height = plan.height, error = %err, "manual upgrade added while the node runs: restarting the node with --halt-height {}; its height could not be checked (COSMOVISOR_NODE_RPC)", plan.height);
            Some(Verdict::Restart)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;
    use std::time::{Duration, Instant};

    use super::*;

    /// What the node did, and the verdict: (case, `--halt-height` it ran with, the halt line's
    /// height, its exit, when a signal last reached it, the verdict).
    type ExitRow = (
        &'static str,
        Option<i64>,
        i64,
        ExitStatus,
        Option<Instant>,
        Result<(), &'static str>,
    );

    fn line(height: i64, seen: Instant) -> HaltLine {
        HaltLine { height, seen }
    }

    #[test]
    fn an_exit_is_a_halt_only_at_the_height_cleanly_and_with_no_signal_since_the_line() {
        let seen = Instant::now();
        let before = seen.checked_sub(Duration::from_millis(5));
        let after = Some(seen + Duration::from_millis(5));
        let clean = ExitStatus::from_raw(0);
        let crashed = ExitStatus::from_raw(1 << 8);
        let killed = ExitStatus::from_raw(9);
        let rows: Vec<ExitRow> = vec![
            ("halted", Some(1000), 1000, clean, None, Ok(())),
            (
                "signal before the line",
                Some(1000),
                1000,
                clean,
                before,
                Ok(()),
            ),
            (
                "not run with the halt height",
                None,
                1000,
                clean,
                None,
                Err("the node did not run with --halt-height 1000"),
            ),
            (
                "run with another halt height",
                Some(500),
                1000,
                clean,
                None,
                Err("the node did not run with --halt-height 1000"),
            ),
            (
                "a forged huge height",
                Some(1000),
                99_999_999,
                clean,
                None,
                Err("its halt line names height 99999999, not its --halt-height 1000"),
            ),
            (
                "a lower height",
                Some(1000),
                10,
                clean,
                None,
                Err("its halt line names height 10, not its --halt-height 1000"),
            ),
            (
                "a crash",
                Some(1000),
                1000,
                crashed,
                None,
                Err("it then exited with status 1"),
            ),
            (
                "an OOM kill",
                Some(1000),
                1000,
                killed,
                None,
                Err("it then died by signal SIGKILL"),
            ),
            (
                "a forwarded signal since",
                Some(1000),
                1000,
                clean,
                after,
                Err("a signal reached it after its halt line"),
            ),
        ];
        for (what, run_halt, line_height, status, signalled, want) in rows {
            let got = exit_verdict(1000, run_halt, line(line_height, seen), status, signalled);
            assert_eq!(
                got.as_ref().map_err(String::as_str),
                want.as_ref().map_err(|w| *w),
                "{what}"
            );
        }
    }

    #[test]
    fn a_halt_claim_is_asked_about_only_at_the_height_the_node_runs_with() {
        assert!(claim_counts(1000, 1000, Some(1000)));
        assert!(!claim_counts(99_999_999, 1000, Some(1000)));
        assert!(!claim_counts(1000, 1000, Some(500)));
        assert!(!claim_counts(1000, 1000, None));
    }

    #[test]
    fn a_queue_change_keeps_checks_then_restarts_or_restarts() {
        use QueueVerdict::{CheckThenRestart, Keep, Restart};
        let rows = [
            ("same arguments", Some(500), Some(1000), true, Keep),
            ("nothing due, nothing running", None, None, true, Keep),
            ("first plan added", Some(500), None, false, CheckThenRestart),
            (
                "a lower height added",
                Some(500),
                Some(1000),
                false,
                CheckThenRestart,
            ),
            (
                "a greater height now first",
                Some(2000),
                Some(1000),
                false,
                Restart,
            ),
            ("the plan removed", None, Some(1000), false, Restart),
        ];
        for (what, due, running_for, same, want) in rows {
            assert_eq!(queue_verdict(due, running_for, same), want, "{what}");
        }
    }

    fn not_ours() -> RpcError {
        RpcError::NotOurNode {
            url: "http://127.0.0.1:26657/status".into(),
            expected: "a".into(),
            answered: "b".into(),
        }
    }

    #[test]
    fn only_an_authenticated_height_confirms_a_halt_or_a_missed_plan() {
        assert_eq!(halt_answer(1000, &Ok(1000)), HaltAnswer::Confirmed(1000));
        assert_eq!(halt_answer(1000, &Ok(1001)), HaltAnswer::Confirmed(1001));
        assert_eq!(halt_answer(1000, &Ok(10)), HaltAnswer::Below(10));
        assert_eq!(
            halt_answer(1000, &Err(not_ours())),
            HaltAnswer::CouldNotCheck
        );
        assert_eq!(restart_answer(500, &Ok(500)), RestartAnswer::Missed(500));
        assert_eq!(restart_answer(500, &Ok(499)), RestartAnswer::Restart);
        assert_eq!(
            restart_answer(500, &Err(not_ours())),
            RestartAnswer::Restart
        );
    }
}
