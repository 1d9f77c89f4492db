//! The counters behind the Prometheus endpoint (`COSMOVISOR_METRICS_ADDR`): what the event stream
//! (`events.rs`, its `Counters` observer) records as `run` goes (starts, exits, upgrades, the
//! last backup). Atomics, so the endpoint (`supervisor/metrics_endpoint.rs`, which also reads the
//! home at scrape time) only ever reads them. The outlook on scheduled upgrades
//! (`supervisor/outlook.rs`: what is scheduled, whether it is ready, the node's height) is one
//! value it replaces whole at each check. Uses nothing else of the crate.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// What the supervisor records; every field is a plain atomic.
#[derive(Debug, Default)]
pub struct Metrics {
    upgrades_total: AtomicU64,
    restarts_total: AtomicU64,
    last_exit_code: AtomicI64,
    daemon_up: AtomicBool,
    backup_duration_micros: AtomicU64,
    backup_bytes: AtomicU64,
    start_time_seconds: AtomicU64,
    download_enabled: AtomicBool,
    outlook: Mutex<Outlook>,
}

/// What the outlook task last found (README "Before the upgrade").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outlook {
    /// The scheduled upgrades, lowest height first.
    pub upgrades: Vec<UpgradeOutlook>,
    /// The node's latest height, from its authenticated RPC.
    pub node_height: Option<i64>,
}

/// One scheduled upgrade, as the outlook task judged it.
#[derive(Debug, Clone, PartialEq)]
pub struct UpgradeOutlook {
    pub name: String,
    pub height: i64,
    /// `chain` or `manual`.
    pub source: &'static str,
    /// Why it is not ready (`None`: ready).
    pub problem: Option<String>,
    /// Seconds until its height, when the node's block time is known.
    pub eta_seconds: Option<u64>,
}

impl Metrics {
    /// The supervisor started now; `download_enabled`: `DAEMON_ALLOW_DOWNLOAD_BINARIES`.
    pub fn supervisor_started(&self, download_enabled: bool) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        self.start_time_seconds.store(now, Ordering::Relaxed);
        self.download_enabled
            .store(download_enabled, Ordering::Relaxed);
    }

    /// The daemon was started (`restart`: not its first start under this supervisor).
    pub fn daemon_started(&self, restart: bool) {
        self.daemon_up.store(true, Ordering::Relaxed);
        if restart {
            self.restarts_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The daemon exited with our mapped exit code (`128 + N` for signal N).
    pub fn daemon_exited(&self, code: u8) {
        self.daemon_up.store(false, Ordering::Relaxed);
        self.last_exit_code
            .store(i64::from(code), Ordering::Relaxed);
    }

    pub fn upgrade_done(&self) {
        self.upgrades_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn backup_done(&self, took: Duration, bytes: u64) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.backup_duration_micros.store(micros, Ordering::Relaxed);
        self.backup_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The outlook task's latest findings replace the previous ones.
    pub fn set_outlook(&self, outlook: Outlook) {
        if let Ok(mut held) = self.outlook.lock() {
            *held = outlook;
        }
    }

    /// The outlook task's latest findings.
    #[must_use]
    pub fn outlook(&self) -> Outlook {
        self.outlook
            .lock()
            .map(|held| held.clone())
            .unwrap_or_default()
    }

    /// The values now, for a scrape.
    #[must_use]
    pub fn snapshot(&self) -> Counters {
        Counters {
            upgrades_total: self.upgrades_total.load(Ordering::Relaxed),
            restarts_total: self.restarts_total.load(Ordering::Relaxed),
            last_exit_code: self.last_exit_code.load(Ordering::Relaxed),
            daemon_up: self.daemon_up.load(Ordering::Relaxed),
            backup_duration_micros: self.backup_duration_micros.load(Ordering::Relaxed),
            backup_bytes: self.backup_bytes.load(Ordering::Relaxed),
            start_time_seconds: self.start_time_seconds.load(Ordering::Relaxed),
            download_enabled: self.download_enabled.load(Ordering::Relaxed),
        }
    }
}

/// The counters' values at one moment ([`Metrics::snapshot`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counters {
    pub upgrades_total: u64,
    pub restarts_total: u64,
    pub last_exit_code: i64,
    pub daemon_up: bool,
    pub backup_duration_micros: u64,
    pub backup_bytes: u64,
    pub start_time_seconds: u64,
    pub download_enabled: bool,
}
