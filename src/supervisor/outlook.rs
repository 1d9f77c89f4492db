//! The outlook of `run` (README "Before the upgrade"): a future the supervisor polls beside its steps (on its one task) that, at
//! start and every `COSMOVISOR_PLAN_CHECK_INTERVAL`, learns what is scheduled (the chain's plan
//! over gRPC, the manual queue: `upgrade/scheduled.rs`), downloads a missing binary ahead when
//! `DAEMON_ALLOW_DOWNLOAD_BINARIES=true` (the download `prepare-upgrade` uses), judges each
//! upgrade's readiness (`upgrade/readiness.rs`), samples the node's height for an ETA, and tells
//! the operator through the event stream (`events.rs`): events on changes (the log and the
//! webhook), and at each check the outlook (the metrics' and systemd's status).
//!
//! Knowledge, never a trigger (docs/design.md "Trust boundaries"): it never stops, restarts or
//! switches anything, and writes nothing but a verified download into `upgrades/<name>`. One
//! download at a time: the [`DownloadSlot`] is held by a download ahead, and by the supervisor
//! while it carries an upgrade out, so the two never fetch into the same staging folder. A failed
//! download is retried with back-off and is a "not ready" reason, never an exit. A gRPC endpoint
//! that is off or unreachable is logged once (again only when the error changes or it answers
//! again); the chain's last known plan is kept meanwhile.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::acquire::grpc::RemotePlan;
use crate::config::Config;
use crate::events::{Event, Events};
use crate::home::layout::Layout;
use crate::metrics::{Outlook, UpgradeOutlook};
use crate::signals::Signals;
use crate::supervisor::node_rpc::{LatestBlock, NodeRpc};
use crate::upgrade::readiness::{self, NotReady};
use crate::upgrade::scheduled::{self, Scheduled};
use crate::upgrade::steps::UpgradeError;

/// How long one gRPC question may take.
const GRPC_LIMIT: Duration = Duration::from_secs(10);
/// The first wait before a failed download ahead is tried again; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(30);
const RETRY_MAX: Duration = Duration::from_secs(3600);
/// How many height samples the ETA is averaged over.
const SAMPLES: usize = 30;

/// Held while a binary is downloaded: by a download ahead, and by the supervisor while it
/// carries an upgrade out.
pub type DownloadSlot = Arc<Mutex<()>>;

/// Watches, at start and every `COSMOVISOR_PLAN_CHECK_INTERVAL`; never returns (never starts
/// when the interval is off). The supervisor polls it beside its own steps, on the same task.
pub async fn watch(
    cfg: &Config,
    layout: &Layout,
    slot: &DownloadSlot,
    events: &Events,
) -> Infallible {
    let Some(interval) = cfg.plan_check_interval else {
        return std::future::pending().await;
    };
    let mut watcher = Watcher {
        cfg: cfg.clone(),
        layout: layout.clone(),
        slot: Arc::clone(slot),
        events: events.clone(),
        rpc: NodeRpc::for_home(cfg),
        chain: None,
        grpc_error: None,
        known: BTreeMap::new(),
        verdicts: BTreeMap::new(),
        retries: BTreeMap::new(),
        samples: VecDeque::new(),
        signals: None,
    };
    loop {
        watcher.check().await;
        tokio::time::sleep(interval).await;
    }
}

/// When a failed download ahead may be tried again.
struct Retry {
    wait: Duration,
    at: Instant,
    error: String,
}

struct Watcher {
    cfg: Config,
    layout: Layout,
    slot: DownloadSlot,
    events: Events,
    rpc: NodeRpc,
    /// The chain's plan as last answered (kept while gRPC does not answer).
    chain: Option<RemotePlan>,
    /// The gRPC error last logged, while it lasts.
    grpc_error: Option<String>,
    /// The scheduled upgrades last seen: name → (height, source).
    known: BTreeMap<String, (i64, scheduled::Source)>,
    /// The readiness last logged: name → `None` when ready, else the reason.
    verdicts: BTreeMap<String, Option<String>>,
    retries: BTreeMap<String, Retry>,
    /// (height, block time) samples of the node, oldest first.
    samples: VecDeque<LatestBlock>,
    /// Our own signal listeners, for the downloads (a termination signal stops one cleanly).
    signals: Option<Signals>,
}

impl Watcher {
    async fn check(&mut self) {
        self.ask_chain().await;
        let upgrades = scheduled::collect(&self.cfg, &self.layout, self.chain.as_ref());
        self.note_schedule(&upgrades);
        self.sample_height().await;
        let mut outlook = Vec::with_capacity(upgrades.len());
        for upgrade in &upgrades {
            let verdict = self.judge(upgrade).await;
            self.note_verdict(upgrade, verdict.as_ref().err());
            outlook.push(UpgradeOutlook {
                name: upgrade.plan.name.to_string(),
                height: upgrade.plan.height,
                source: upgrade.source.name(),
                problem: verdict.err().map(|not_ready| not_ready.to_string()),
                eta_seconds: self.eta(upgrade.plan.height),
            });
        }
        let shown = outlook.first().map(|next| match &next.problem {
            None => format!("next upgrade {} at {}: ready", next.name, next.height),
            Some(problem) => format!(
                "next upgrade {} at {}: NOT READY ({})",
                next.name,
                next.height,
                short_reason(problem)
            ),
        });
        self.events.emit(&Event::Outlook {
            outlook: Outlook {
                upgrades: outlook,
                node_height: self.samples.back().map(|block| block.height),
            },
            status: shown,
        });
    }

    /// Asks gRPC for the chain's plan; logs an error once, and when it answers again.
    async fn ask_chain(&mut self) {
        match scheduled::ask_chain(&self.cfg.grpc_address, GRPC_LIMIT).await {
            Ok(plan) => {
                if self.grpc_error.take().is_some() {
                    info!(
                        "the node's gRPC answers again (DAEMON_GRPC_ADDRESS); watching the chain's upgrade plan"
                    );
                }
                self.chain = plan;
            }
            Err(err) => {
                if self.grpc_error.as_deref() != Some(err.as_str()) {
                    warn!(error = %err, "cannot learn the chain's scheduled upgrade; supervision goes on, and the upgrade still happens at the halt (set COSMOVISOR_PLAN_CHECK_INTERVAL=off to stop asking)");
                    self.grpc_error = Some(err);
                }
            }
        }
    }

    /// Logs upgrades newly scheduled and those no longer scheduled (a cancelled plan).
    fn note_schedule(&mut self, upgrades: &[Scheduled]) {
        let now: BTreeMap<String, (i64, scheduled::Source)> = upgrades
            .iter()
            .map(|u| (u.plan.name.to_string(), (u.plan.height, u.source)))
            .collect();
        for (name, (height, source)) in &now {
            if self.known.get(name) != Some(&(*height, *source)) {
                self.events.emit(&Event::Scheduled {
                    name: name.clone(),
                    height: *height,
                    source: source.described(),
                });
                self.verdicts.remove(name);
            }
        }
        for (name, (height, source)) in &self.known {
            if !now.contains_key(name) {
                info!(
                    "upgrade {name} at height {height} is no longer scheduled ({}); a binary staged for it stays",
                    source.described()
                );
                self.verdicts.remove(name);
                self.retries.remove(name);
            }
        }
        self.known = now;
    }

    /// Readiness of `upgrade`, after downloading its binary ahead when it is missing and
    /// downloads are allowed (unless a failed try is still waiting out its back-off).
    async fn judge(&mut self, upgrade: &Scheduled) -> Result<(), NotReady> {
        let allow = self.cfg.allow_download_binaries;
        let verdict = readiness::check(&self.layout, &upgrade.plan, allow).await;
        match verdict {
            Err(not_ready) if not_ready.missing && allow => {
                let name = upgrade.plan.name.to_string();
                if let Some(retry) = self.retries.get(&name) {
                    if Instant::now() < retry.at {
                        return Err(download_failed(&retry.error, &not_ready));
                    }
                }
                match self.download(upgrade).await {
                    Ok(()) => {
                        self.retries.remove(&name);
                        readiness::check(&self.layout, &upgrade.plan, allow).await
                    }
                    Err(error) => {
                        let wait = self
                            .retries
                            .get(&name)
                            .map_or(RETRY_FIRST, |retry| (retry.wait * 2).min(RETRY_MAX));
                        // The not-ready event carries the error, once per change.
                        debug!(name = %name, error = %error, retry_in = ?wait, "cannot download the scheduled upgrade's binary ahead; trying again later");
                        let not_ready = download_failed(&error, &not_ready);
                        self.retries.insert(
                            name,
                            Retry {
                                wait,
                                at: Instant::now() + wait,
                                error,
                            },
                        );
                        Err(not_ready)
                    }
                }
            }
            verdict => verdict,
        }
    }

    /// Downloads the binary of `upgrade` into `upgrades/<name>` while holding the slot.
    async fn download(&mut self, upgrade: &Scheduled) -> Result<(), String> {
        let _held = self.slot.lock().await;
        // The supervisor may have downloaded it while we waited for the slot.
        let bin = self
            .layout
            .bin_in(&self.layout.upgrade_dir(&upgrade.plan.name));
        if crate::home::binary::check_binary(&bin).is_ok() {
            return Ok(());
        }
        if self.signals.is_none() {
            self.signals = Some(
                Signals::install().map_err(|err| format!("cannot listen for signals: {err}"))?,
            );
        }
        let Some(signals) = self.signals.as_mut() else {
            return Err("cannot listen for signals".to_owned());
        };
        let plan = &upgrade.plan;
        info!(name = %plan.name, height = plan.height, "downloading the scheduled upgrade's binary ahead of its height");
        crate::acquire::download::download_upgrade(&self.cfg, &self.layout, plan, signals)
            .await
            .map(|_| ())
            .map_err(|err| UpgradeError::download(plan, err).to_string())
    }

    /// Logs a readiness that changed: ready once, not ready when the reason changes.
    fn note_verdict(&mut self, upgrade: &Scheduled, problem: Option<&NotReady>) {
        let name = upgrade.plan.name.to_string();
        let now = problem.map(ToString::to_string);
        if self.verdicts.get(&name) == Some(&now) {
            return;
        }
        let height = upgrade.plan.height;
        self.events.emit(&match &now {
            None => Event::Ready {
                name: name.clone(),
                height,
            },
            Some(problem) => Event::NotReady {
                name: name.clone(),
                height,
                problem: problem.clone(),
            },
        });
        self.verdicts.insert(name, now);
    }

    /// Adds the node's latest block to the samples (an unauthenticated or failed answer adds
    /// nothing: no ETA is better than a guess).
    async fn sample_height(&mut self) {
        let Ok(block) = self.rpc.latest_block().await else {
            return;
        };
        if self
            .samples
            .back()
            .is_some_and(|last| block.height < last.height)
        {
            self.samples.clear();
        }
        self.samples.push_back(block);
        while self.samples.len() > SAMPLES {
            self.samples.pop_front();
        }
    }

    /// Seconds until `height`: blocks left × the average block time of the samples.
    fn eta(&self, height: i64) -> Option<u64> {
        eta_seconds(&self.samples, height)
    }
}

/// A problem without its fix, for systemd's one-line status.
fn short_reason(problem: &str) -> &str {
    problem.split("; fix: ").next().unwrap_or(problem)
}

/// The reason of a failed download ahead, and its fix.
fn download_failed(error: &str, missing: &NotReady) -> NotReady {
    NotReady {
        reason: format!("the binary could not be downloaded ahead: {error}"),
        fix: format!("fix the plan's download URL, or {}", missing.fix),
        missing: true,
    }
}

/// Blocks left to `height` × the average block time between the first and the last sample that
/// carry a block time; `None` without two such samples at different heights.
fn eta_seconds(samples: &VecDeque<LatestBlock>, height: i64) -> Option<u64> {
    let timed: Vec<_> = samples
        .iter()
        .filter_map(|block| block.time.map(|time| (block.height, time)))
        .collect();
    let (first, last) = (timed.first()?, timed.last()?);
    let blocks = last.0 - first.0;
    if blocks <= 0 {
        return None;
    }
    let millis = (last.1 - first.1).num_milliseconds();
    if millis <= 0 {
        return None;
    }
    let left = height.saturating_sub(last.0).max(0);
    let eta_millis = i128::from(left) * i128::from(millis) / i128::from(blocks);
    u64::try_from(eta_millis / 1000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(height: i64, time: &str) -> LatestBlock {
        LatestBlock {
            height,
            time: chrono::DateTime::parse_from_rfc3339(time).ok(),
        }
    }

    #[test]
    fn eta_is_blocks_left_times_the_average_block_time() {
        let samples: VecDeque<_> = [
            block(100, "2026-01-01T00:00:00Z"),
            block(110, "2026-01-01T00:01:00Z"),
        ]
        .into();
        assert_eq!(eta_seconds(&samples, 1110), Some(6000));
        assert_eq!(eta_seconds(&samples, 100), Some(0));
    }

    #[test]
    fn eta_is_unknown_without_two_timed_samples_at_different_heights() {
        let one: VecDeque<_> = [block(100, "2026-01-01T00:00:00Z")].into();
        assert_eq!(eta_seconds(&one, 200), None);
        let stalled: VecDeque<_> = [
            block(100, "2026-01-01T00:00:00Z"),
            block(100, "2026-01-01T00:01:00Z"),
        ]
        .into();
        assert_eq!(eta_seconds(&stalled, 200), None);
        let untimed: VecDeque<_> = [
            LatestBlock {
                height: 1,
                time: None,
            },
            LatestBlock {
                height: 5,
                time: None,
            },
        ]
        .into();
        assert_eq!(eta_seconds(&untimed, 200), None);
    }
}
