//! The variables cosmovisor reads, each defined once: its name, its default as people read it,
//! its meaning, and whether only a running supervisor reads it. [`VARS`] is the one table the
//! reader's defaults (`reader.rs`), the `config` command and `config.toml` keys (`render.rs`), the
//! manual page's ENVIRONMENT section, `doctor`'s comparison of the shell with a systemd unit and
//! the check of README "Configuration reference" (below) are made from.
//!
//! It does not parse values (`reader.rs`) or hold the typed [`super::Config`] (`mod.rs`).

use std::time::Duration;

use super::parse_go_duration;

pub const DAEMON_HOME: &str = "DAEMON_HOME";
pub const DAEMON_NAME: &str = "DAEMON_NAME";
pub const DAEMON_ALLOW_DOWNLOAD_BINARIES: &str = "DAEMON_ALLOW_DOWNLOAD_BINARIES";
pub const DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM: &str = "DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM";
pub const DAEMON_RESTART_AFTER_UPGRADE: &str = "DAEMON_RESTART_AFTER_UPGRADE";
pub const DAEMON_RESTART_DELAY: &str = "DAEMON_RESTART_DELAY";
pub const DAEMON_SHUTDOWN_GRACE: &str = "DAEMON_SHUTDOWN_GRACE";
pub const DAEMON_POLL_INTERVAL: &str = "DAEMON_POLL_INTERVAL";
pub const DAEMON_DATA_BACKUP_DIR: &str = "DAEMON_DATA_BACKUP_DIR";
pub const UNSAFE_SKIP_BACKUP: &str = "UNSAFE_SKIP_BACKUP";
pub const DAEMON_PREUPGRADE_MAX_RETRIES: &str = "DAEMON_PREUPGRADE_MAX_RETRIES";
pub const DAEMON_GRPC_ADDRESS: &str = "DAEMON_GRPC_ADDRESS";
pub const COSMOVISOR_DISABLE_LOGS: &str = "COSMOVISOR_DISABLE_LOGS";
pub const COSMOVISOR_COLOR_LOGS: &str = "COSMOVISOR_COLOR_LOGS";
pub const COSMOVISOR_TIMEFORMAT_LOGS: &str = "COSMOVISOR_TIMEFORMAT_LOGS";
pub const COSMOVISOR_CUSTOM_PREUPGRADE: &str = "COSMOVISOR_CUSTOM_PREUPGRADE";
pub const COSMOVISOR_DISABLE_RECASE: &str = "COSMOVISOR_DISABLE_RECASE";
pub const COSMOVISOR_BACKUP_KEEP: &str = "COSMOVISOR_BACKUP_KEEP";
pub const COSMOVISOR_LOG_FORMAT: &str = "COSMOVISOR_LOG_FORMAT";
pub const COSMOVISOR_BACKUP_MODE: &str = "COSMOVISOR_BACKUP_MODE";
pub const COSMOVISOR_METRICS_ADDR: &str = "COSMOVISOR_METRICS_ADDR";
pub const COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT: &str = "COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT";
pub const COSMOVISOR_NODE_RPC: &str = "COSMOVISOR_NODE_RPC";
pub const COSMOVISOR_PLAN_CHECK_INTERVAL: &str = "COSMOVISOR_PLAN_CHECK_INTERVAL";
pub const COSMOVISOR_WEBHOOK_URL: &str = "COSMOVISOR_WEBHOOK_URL";

/// The node's `CometBFT` RPC when `COSMOVISOR_NODE_RPC` is unset and the node's `config.toml` names
/// no TCP `[rpc] laddr` (`CometBFT`'s default `rpc.laddr`).
pub const DEFAULT_NODE_RPC: &str = "http://127.0.0.1:26657";
/// Read by `log.rs` alone, not part of [`Config`].
pub const COSMOVISOR_LOG_LEVEL: &str = "COSMOVISOR_LOG_LEVEL";

/// One variable: everything said about it in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    pub name: &'static str,
    /// The default as README and the manual page show it (`required`, `off`, `30s`, …); the
    /// reader takes booleans, durations and words from it ([`bool_default`],
    /// [`duration_default`], [`text_default`]).
    pub default: &'static str,
    /// What the variable does, in one line.
    pub doc: &'static str,
    /// Only a running supervisor reads it (how it stops, waits, retries, backs up, serves
    /// metrics and logs): commands run by hand (`add-upgrade`, `status`, `rollback`, …) behave the
    /// same whatever it is, so `doctor --unit` notes a shell that differs from the unit in it
    /// instead of failing.
    pub supervisor_only: bool,
}

/// A variable's key in `config.toml`: its name in lower case (the file's keys are read
/// case-insensitively, as viper does).
#[must_use]
pub fn toml_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Every variable cosmovisor reads, in the order of README "Configuration reference" and the
/// manual page.
pub const VARS: &[Var] = &[
    Var {
        name: DAEMON_HOME,
        default: "required",
        doc: "absolute path of the node home (the daemon's --home)",
        supervisor_only: false,
    },
    Var {
        name: DAEMON_NAME,
        default: "required",
        doc: "file name of the daemon binary, e.g. panacead",
        supervisor_only: false,
    },
    Var {
        name: DAEMON_ALLOW_DOWNLOAD_BINARIES,
        default: "false",
        doc: "download the upgrade binary named in the plan when it is not staged",
        supervisor_only: false,
    },
    Var {
        name: DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM,
        default: "false",
        doc: "refuse download URLs without ?checksum=",
        supervisor_only: false,
    },
    Var {
        name: DAEMON_RESTART_AFTER_UPGRADE,
        default: "true",
        doc: "relaunch the daemon after an upgrade (else exit 0)",
        supervisor_only: true,
    },
    Var {
        name: DAEMON_RESTART_DELAY,
        default: "off",
        doc: "wait this long after the daemon stopped, before the backup",
        supervisor_only: true,
    },
    Var {
        name: DAEMON_SHUTDOWN_GRACE,
        default: "30s",
        doc: "time between SIGTERM and SIGKILL when stopping the daemon",
        supervisor_only: true,
    },
    Var {
        name: DAEMON_POLL_INTERVAL,
        default: "300ms",
        doc: "how often upgrade-info.json is polled without inotify (below 10ms: 10ms, with a warning)",
        supervisor_only: true,
    },
    Var {
        name: DAEMON_DATA_BACKUP_DIR,
        default: "$DAEMON_HOME",
        doc: "where backups of data/ go",
        supervisor_only: false,
    },
    Var {
        name: UNSAFE_SKIP_BACKUP,
        default: "false",
        doc: "do not back up data/ before upgrading",
        supervisor_only: false,
    },
    Var {
        name: DAEMON_PREUPGRADE_MAX_RETRIES,
        default: "0",
        doc: "how often pre-upgrade is retried when it exits 31",
        supervisor_only: true,
    },
    Var {
        name: DAEMON_GRPC_ADDRESS,
        default: "localhost:9090",
        doc: "the node's gRPC address (prepare-upgrade)",
        supervisor_only: false,
    },
    Var {
        name: COSMOVISOR_DISABLE_LOGS,
        default: "false",
        doc: "no cosmovisor log lines at all",
        supervisor_only: true,
    },
    Var {
        name: COSMOVISOR_COLOR_LOGS,
        default: "true",
        doc: "ANSI colours in our log lines when stderr is a terminal; true set in the environment forces them",
        supervisor_only: true,
    },
    Var {
        name: COSMOVISOR_TIMEFORMAT_LOGS,
        default: "kitchen",
        doc: "timestamp layout of our log lines (empty: none)",
        supervisor_only: true,
    },
    Var {
        name: COSMOVISOR_CUSTOM_PREUPGRADE,
        default: "off",
        doc: "script under $DAEMON_HOME/cosmovisor/ run before the switch",
        supervisor_only: true,
    },
    Var {
        name: COSMOVISOR_DISABLE_RECASE,
        default: "false",
        doc: "keep the plan name's case for the folder",
        supervisor_only: false,
    },
    Var {
        name: COSMOVISOR_BACKUP_KEEP,
        default: "all",
        doc: "keep only the N newest complete backups",
        supervisor_only: true,
    },
    Var {
        name: COSMOVISOR_LOG_FORMAT,
        default: "console",
        doc: "json for one JSON object per log line",
        supervisor_only: true,
    },
    Var {
        name: COSMOVISOR_BACKUP_MODE,
        default: "auto",
        doc: "reflink where the file system clones, else hard links of immutable table files on data/'s file system, else copy; copy, checkpoint or reflink force one",
        supervisor_only: true,
    },
    Var {
        name: COSMOVISOR_METRICS_ADDR,
        default: "off",
        doc: "address such as 127.0.0.1:9102 where run serves Prometheus metrics",
        supervisor_only: true,
    },
    Var {
        name: COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT,
        default: "60s",
        doc: "a download that receives less than 1 KiB in this long fails as stalled",
        supervisor_only: false,
    },
    Var {
        name: COSMOVISOR_NODE_RPC,
        default: "the node's [rpc] laddr in $DAEMON_HOME/config/config.toml, else http://127.0.0.1:26657",
        doc: "the node's CometBFT RPC, asked for its height (never to trigger); an answer counts only from the node whose ID config/node_key.json gives",
        supervisor_only: false,
    },
    Var {
        name: COSMOVISOR_PLAN_CHECK_INTERVAL,
        default: "1m",
        doc: "how often run asks the node (gRPC, DAEMON_GRPC_ADDRESS) for the chain's scheduled upgrade, to prepare and check its binary ahead (0 or off: never); knowledge only, never a trigger",
        supervisor_only: true,
    },
    Var {
        name: COSMOVISOR_WEBHOOK_URL,
        default: "off",
        doc: "http(s) URL run POSTs a JSON message to for each upgrade event (Slack, Mattermost, Discord incoming webhooks); never delays an upgrade",
        supervisor_only: true,
    },
    Var {
        name: COSMOVISOR_LOG_LEVEL,
        default: "info",
        doc: "debug shows decisions too",
        supervisor_only: true,
    },
];

/// The variable called `name`, if cosmovisor reads it.
#[must_use]
pub fn var(name: &str) -> Option<&'static Var> {
    VARS.iter().find(|v| v.name == name)
}

/// The default text of `name` (empty for a name not in [`VARS`], which the tests rule out).
fn default_text(name: &str) -> &'static str {
    var(name).map_or("", |v| v.default)
}

/// A boolean variable's default: `true` when its default text is `true`.
pub(super) fn bool_default(name: &str) -> bool {
    default_text(name) == "true"
}

/// A duration variable's default: its default text as a Go duration, `off` being zero.
pub(super) fn duration_default(name: &str) -> Duration {
    parse_go_duration(default_text(name)).unwrap_or(Duration::ZERO)
}

/// A word-valued variable's default (`localhost:9090`, `console`, `auto`, `kitchen`).
pub(super) fn text_default(name: &str) -> &'static str {
    default_text(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name is in the table once, and every duration default reads as one (or is `off`).
    #[test]
    fn every_variable_is_defined_once() {
        for (i, v) in VARS.iter().enumerate() {
            assert!(
                VARS[i + 1..].iter().all(|w| w.name != v.name),
                "{} twice",
                v.name
            );
            assert!(!v.default.is_empty() && !v.doc.is_empty(), "{v:?}");
        }
        for name in [
            DAEMON_RESTART_DELAY,
            DAEMON_SHUTDOWN_GRACE,
            DAEMON_POLL_INTERVAL,
            COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT,
            COSMOVISOR_PLAN_CHECK_INTERVAL,
        ] {
            let text = default_text(name);
            assert!(
                text == "off" || parse_go_duration(text).is_ok(),
                "{name}: {text}"
            );
        }
    }

    /// The reader's typed defaults are the table's texts: what an empty environment reads to
    /// shows, in `config` and `config.toml`, the default text of each word-valued variable.
    #[test]
    fn the_typed_defaults_are_the_table() {
        let read = crate::config::tests::defaults();
        assert_eq!(
            read.time_format.name(),
            text_default(COSMOVISOR_TIMEFORMAT_LOGS)
        );
        assert_eq!(read.log_format.name(), text_default(COSMOVISOR_LOG_FORMAT));
        assert_eq!(
            read.backup_mode.name(),
            text_default(COSMOVISOR_BACKUP_MODE)
        );
        assert_eq!(read.grpc_address, text_default(DAEMON_GRPC_ADDRESS));
        assert_eq!(
            read.preupgrade_max_retries.to_string(),
            text_default(DAEMON_PREUPGRADE_MAX_RETRIES)
        );
        assert_eq!(read.backup_keep, None);
        assert_eq!(text_default(COSMOVISOR_BACKUP_KEEP), "all");
    }

    /// `config` shows every variable of [`VARS`] a [`super::super::Config`] holds (all but
    /// `COSMOVISOR_LOG_LEVEL`, which `log.rs` reads), and `config.toml` writes only their keys.
    #[test]
    fn config_and_config_toml_show_the_table() {
        let config = crate::config::tests::defaults();
        let detail = config.detail_string();
        let shown: Vec<&str> = detail
            .lines()
            .skip(1)
            .take_while(|line| line.starts_with("  ") && line.contains('_'))
            .filter_map(|line| line.trim().split_once(':').map(|(name, _)| name))
            .collect();
        let mut want: Vec<&str> = VARS
            .iter()
            .map(|v| v.name)
            .filter(|name| *name != COSMOVISOR_LOG_LEVEL)
            .collect();
        let mut sorted = shown.clone();
        sorted.sort_unstable();
        want.sort_unstable();
        assert_eq!(sorted, want, "{detail}");
        for line in config.to_toml().lines() {
            let key = line.split(" = ").next().unwrap();
            assert!(VARS.iter().any(|v| toml_key(v.name) == key), "{line}");
        }
    }

    /// The rows of README "Configuration reference" are [`VARS`]: the same names in the same
    /// order with the same defaults (README's cell without Markdown and without a closing
    /// parenthesis such as "(Go: 0 = SIGKILL)"; `—` is `required`).
    #[test]
    fn readme_variables_are_the_table() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let heading = "## Configuration reference";
        let section = &readme[readme.find(heading).expect("README section") + heading.len()..];
        let rows: Vec<(String, String)> = section
            .lines()
            .take_while(|line| !line.starts_with("## "))
            .filter_map(|line| line.strip_prefix("| `"))
            .map(|row| {
                let cells: Vec<&str> = row.split(" | ").collect();
                let name = cells[0].trim_end_matches('`').to_owned();
                let mut default = cells[1].replace(['`', '*'], "");
                if let Some(open) = default.find(" (") {
                    if default.ends_with(')') {
                        default.truncate(open);
                    }
                }
                if default == "—" {
                    default = "required".to_owned();
                }
                (name, default)
            })
            .collect();
        let want: Vec<(String, String)> = VARS
            .iter()
            .map(|v| (v.name.to_owned(), v.default.to_owned()))
            .collect();
        assert_eq!(
            rows, want,
            "README \"Configuration reference\" differs from VARS"
        );
    }
}
