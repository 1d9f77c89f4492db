//! The upgrades scheduled ahead of their height (README "Before the upgrade"): the chain's plan,
//! as the node's gRPC `CurrentPlan` answers it, and the manual upgrades in
//! `data/upgrade-info.json.batch`. This is knowledge, never a trigger (docs/design.md "Trust
//! boundaries"): nothing here stops, restarts or switches anything; only `data/upgrade-info.json`
//! at the halt does. The one source of "what is scheduled" for the outlook of `run` (`supervisor/outlook.rs`), `status` and
//! `doctor`.

use std::time::Duration;

use crate::acquire::grpc::{self, RemotePlan};
use crate::config::Config;
use crate::home::layout::Layout;
use crate::home::name::UpgradeName;
use crate::home::plan::{self, Plan};
use crate::home::queue;

/// Where a scheduled upgrade comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The chain's `x/upgrade` plan (gRPC `CurrentPlan`).
    Chain,
    /// A manual upgrade in the queue (`cosmovisor add-upgrade --upgrade-height`).
    Manual,
}

impl Source {
    /// `chain` or `manual`: the metrics label and the JSON value.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Source::Chain => "chain",
            Source::Manual => "manual",
        }
    }

    /// `chain plan` or `manual upgrade`: for log lines and `status`.
    #[must_use]
    pub fn described(self) -> &'static str {
        match self {
            Source::Chain => "chain plan",
            Source::Manual => "manual upgrade",
        }
    }
}

/// One scheduled upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub plan: Plan,
    pub source: Source,
}

/// Asks the node's gRPC for the chain's plan within `within`; the error is one line naming the
/// address and the fix.
pub async fn ask_chain(address: &str, within: Duration) -> Result<Option<RemotePlan>, String> {
    match tokio::time::timeout(within, grpc::current_plan(address)).await {
        Ok(Ok(plan)) => Ok(plan),
        Ok(Err(err)) => Err(crate::redact::redact(&err.to_string())),
        Err(_) => Err(format!(
            "the node's gRPC at {} did not answer within {}s (DAEMON_GRPC_ADDRESS; is the gRPC server enabled in app.toml?)",
            crate::redact::redact(address),
            within.as_secs()
        )),
    }
}

/// The upgrades still to be applied, lowest height first: the chain's plan (when `chain` holds
/// one) and the queued manual upgrades, each unless `current` already applied it (or a later
/// one). A queue that cannot be read is left out (the supervisor and `status` report it).
#[must_use]
pub fn collect(cfg: &Config, layout: &Layout, chain: Option<&RemotePlan>) -> Vec<Scheduled> {
    let recase = !cfg.disable_recase;
    let applied = layout
        .current_dir()
        .map(|dir| plan::read_applied(&dir))
        .unwrap_or_default();
    let mut upgrades = Vec::new();
    if let Some(remote) = chain {
        if let Ok(name) = UpgradeName::new(&remote.name, recase) {
            let plan = Plan {
                name,
                raw_name: remote.name.clone(),
                height: remote.height,
                info: remote.info.clone(),
            };
            if applied.is_superseded_by(&plan) {
                upgrades.push(Scheduled {
                    plan,
                    source: Source::Chain,
                });
            }
        }
    }
    for plan in queue::plans(&layout.batch_file(), recase).unwrap_or_default() {
        let known = upgrades
            .iter()
            .any(|known: &Scheduled| known.plan.name.same_as(plan.name.as_str()));
        if !known && applied.is_superseded_by(&plan) {
            upgrades.push(Scheduled {
                plan,
                source: Source::Manual,
            });
        }
    }
    upgrades.sort_by_key(|scheduled| (scheduled.plan.height, scheduled.source));
    upgrades
}

/// A scheduled upgrade and its readiness (`upgrade/readiness.rs`).
#[derive(Debug, Clone)]
pub struct Judged {
    pub scheduled: Scheduled,
    pub verdict: Result<(), crate::upgrade::readiness::NotReady>,
}

/// What `status` and `doctor` show of the scheduled upgrades.
#[derive(Debug, Clone, Default)]
pub struct Ahead {
    /// Lowest height first.
    pub upgrades: Vec<Judged>,
    /// Why the chain's plan is unknown (gRPC off or unreachable), if it is.
    pub chain_error: Option<String>,
}

/// The scheduled upgrades, each judged now: the chain's plan is asked within `within` (not at
/// all when `COSMOVISOR_PLAN_CHECK_INTERVAL` is off), the queue is read.
pub async fn look_ahead(cfg: &Config, layout: &Layout, within: Duration) -> Ahead {
    let (chain, chain_error) = if cfg.plan_check_interval.is_some() {
        match ask_chain(&cfg.grpc_address, within).await {
            Ok(chain) => (chain, None),
            Err(err) => (None, Some(err)),
        }
    } else {
        (None, None)
    };
    let mut upgrades = Vec::new();
    for scheduled in collect(cfg, layout, chain.as_ref()) {
        let verdict =
            crate::upgrade::readiness::check(layout, &scheduled.plan, cfg.allow_download_binaries)
                .await;
        upgrades.push(Judged { scheduled, verdict });
    }
    Ahead {
        upgrades,
        chain_error,
    }
}
