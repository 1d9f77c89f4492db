//! What the configuration looks like to people and to `config.toml`: upstream's `config`
//! command output ([`Config::detail_string`]) and the file text that reads back to the same
//! config ([`Config::to_toml`]).
//!
//! It does not parse anything; reading `config.toml` is `reader.rs`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::{
    COSMOVISOR_BACKUP_KEEP, COSMOVISOR_BACKUP_MODE, COSMOVISOR_COLOR_LOGS,
    COSMOVISOR_CUSTOM_PREUPGRADE, COSMOVISOR_DISABLE_LOGS, COSMOVISOR_DISABLE_RECASE,
    COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT, COSMOVISOR_LOG_FORMAT, COSMOVISOR_METRICS_ADDR,
    COSMOVISOR_NODE_RPC, COSMOVISOR_PLAN_CHECK_INTERVAL, COSMOVISOR_TIMEFORMAT_LOGS,
    COSMOVISOR_WEBHOOK_URL, Config, DAEMON_ALLOW_DOWNLOAD_BINARIES, DAEMON_DATA_BACKUP_DIR,
    DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM, DAEMON_GRPC_ADDRESS, DAEMON_HOME, DAEMON_NAME,
    DAEMON_POLL_INTERVAL, DAEMON_PREUPGRADE_MAX_RETRIES, DAEMON_RESTART_AFTER_UPGRADE,
    DAEMON_RESTART_DELAY, DAEMON_SHUTDOWN_GRACE, UNSAFE_SKIP_BACKUP, format_go_duration, toml_key,
};

impl Config {
    /// Upstream's `config` command output (v1.7 layout) plus our own variables, ending with a
    /// newline.
    #[must_use]
    pub fn detail_string(&self) -> String {
        let root = self.home.join("cosmovisor");
        let show = |p: &Path| p.display().to_string();
        let configurable = [
            (DAEMON_HOME, show(&self.home)),
            (DAEMON_NAME, self.name.clone()),
            (
                DAEMON_ALLOW_DOWNLOAD_BINARIES,
                self.allow_download_binaries.to_string(),
            ),
            (
                DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM,
                self.download_must_have_checksum.to_string(),
            ),
            (
                DAEMON_RESTART_AFTER_UPGRADE,
                self.restart_after_upgrade.to_string(),
            ),
            (DAEMON_RESTART_DELAY, format_go_duration(self.restart_delay)),
            (
                DAEMON_SHUTDOWN_GRACE,
                format_go_duration(self.shutdown_grace),
            ),
            (DAEMON_POLL_INTERVAL, format_go_duration(self.poll_interval)),
            (UNSAFE_SKIP_BACKUP, self.unsafe_skip_backup.to_string()),
            (DAEMON_DATA_BACKUP_DIR, show(&self.data_backup_dir)),
            (
                DAEMON_PREUPGRADE_MAX_RETRIES,
                self.preupgrade_max_retries.to_string(),
            ),
            (COSMOVISOR_DISABLE_LOGS, self.disable_logs.to_string()),
            (COSMOVISOR_COLOR_LOGS, self.color_logs.to_string()),
            (
                COSMOVISOR_TIMEFORMAT_LOGS,
                self.time_format.go_layout().to_string(),
            ),
            (
                COSMOVISOR_CUSTOM_PREUPGRADE,
                self.custom_preupgrade.clone().unwrap_or_default(),
            ),
            (COSMOVISOR_DISABLE_RECASE, self.disable_recase.to_string()),
            (DAEMON_GRPC_ADDRESS, self.grpc_address.clone()),
            (
                COSMOVISOR_BACKUP_KEEP,
                self.backup_keep.map(|n| n.to_string()).unwrap_or_default(),
            ),
            (COSMOVISOR_LOG_FORMAT, self.log_format.name().to_string()),
            (COSMOVISOR_BACKUP_MODE, self.backup_mode.name().to_string()),
            (
                COSMOVISOR_METRICS_ADDR,
                self.metrics_addr.map(|a| a.to_string()).unwrap_or_default(),
            ),
            (
                COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT,
                format_go_duration(self.download_idle_timeout),
            ),
            (
                COSMOVISOR_NODE_RPC,
                self.node_rpc
                    .as_deref()
                    .map(crate::redact::redact)
                    .unwrap_or_default(),
            ),
            (
                COSMOVISOR_PLAN_CHECK_INTERVAL,
                self.plan_check_interval
                    .map_or_else(|| "off".to_owned(), format_go_duration),
            ),
            (
                COSMOVISOR_WEBHOOK_URL,
                self.webhook_url
                    .as_deref()
                    .map(crate::redact::redact)
                    .unwrap_or_default(),
            ),
        ];
        let derived = [
            ("Root Dir", show(&root)),
            ("Upgrade Dir", show(&root.join("upgrades"))),
            (
                "Genesis Bin",
                show(&root.join("genesis").join("bin").join(&self.name)),
            ),
            (
                "Monitored File",
                show(&self.home.join("data").join("upgrade-info.json")),
            ),
            ("Data Backup Dir", show(&self.data_backup_dir)),
        ];
        let mut out = String::from("Configurable Values:\n");
        for (name, value) in configurable {
            let _ = writeln!(out, "  {name}: {value}");
        }
        out.push_str("Derived Values:\n");
        for (name, value) in derived {
            let _ = writeln!(out, "  {name:>15}: {value}");
        }
        out
    }

    /// `config.toml` text: upstream's keys in upstream's order, durations as Go duration strings,
    /// then ours. Reads back through [`Config::from_file_and_vars`] to the same config.
    #[must_use]
    pub fn to_toml(&self) -> String {
        let path = |p: &Path| toml_string(&p.display().to_string());
        let duration = |d: Duration| toml_string(&format_go_duration(d));
        let mut lines = vec![
            (toml_key(DAEMON_HOME), path(&self.home)),
            (toml_key(DAEMON_NAME), toml_string(&self.name)),
            (
                toml_key(DAEMON_ALLOW_DOWNLOAD_BINARIES),
                self.allow_download_binaries.to_string(),
            ),
            (
                toml_key(DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM),
                self.download_must_have_checksum.to_string(),
            ),
            (
                toml_key(DAEMON_RESTART_AFTER_UPGRADE),
                self.restart_after_upgrade.to_string(),
            ),
            (toml_key(DAEMON_RESTART_DELAY), duration(self.restart_delay)),
            (
                toml_key(DAEMON_SHUTDOWN_GRACE),
                duration(self.shutdown_grace),
            ),
            (toml_key(DAEMON_POLL_INTERVAL), duration(self.poll_interval)),
            (
                toml_key(UNSAFE_SKIP_BACKUP),
                self.unsafe_skip_backup.to_string(),
            ),
            (
                toml_key(DAEMON_DATA_BACKUP_DIR),
                path(&self.data_backup_dir),
            ),
            (
                toml_key(DAEMON_PREUPGRADE_MAX_RETRIES),
                self.preupgrade_max_retries.to_string(),
            ),
            (
                toml_key(DAEMON_GRPC_ADDRESS),
                toml_string(&self.grpc_address),
            ),
            (
                toml_key(COSMOVISOR_DISABLE_LOGS),
                self.disable_logs.to_string(),
            ),
            (toml_key(COSMOVISOR_COLOR_LOGS), self.color_logs.to_string()),
            (
                toml_key(COSMOVISOR_TIMEFORMAT_LOGS),
                toml_string(self.time_format.name()),
            ),
            (
                toml_key(COSMOVISOR_CUSTOM_PREUPGRADE),
                toml_string(self.custom_preupgrade.as_deref().unwrap_or("")),
            ),
            (
                toml_key(COSMOVISOR_DISABLE_RECASE),
                self.disable_recase.to_string(),
            ),
        ];
        if let Some(n) = self.backup_keep {
            lines.push((toml_key(COSMOVISOR_BACKUP_KEEP), n.to_string()));
        }
        lines.push((
            toml_key(COSMOVISOR_LOG_FORMAT),
            toml_string(self.log_format.name()),
        ));
        lines.push((
            toml_key(COSMOVISOR_BACKUP_MODE),
            toml_string(self.backup_mode.name()),
        ));
        lines.push((
            toml_key(COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT),
            duration(self.download_idle_timeout),
        ));
        if let Some(addr) = self.metrics_addr {
            lines.push((
                toml_key(COSMOVISOR_METRICS_ADDR),
                toml_string(&addr.to_string()),
            ));
        }
        if let Some(rpc) = &self.node_rpc {
            lines.push((toml_key(COSMOVISOR_NODE_RPC), toml_string(rpc)));
        }
        if let Some(url) = &self.webhook_url {
            lines.push((toml_key(COSMOVISOR_WEBHOOK_URL), toml_string(url)));
        }
        // Written only when not the default, like the other settings of ours above.
        if self.plan_check_interval
            != Some(super::vars::duration_default(
                COSMOVISOR_PLAN_CHECK_INTERVAL,
            ))
        {
            lines.push((
                toml_key(COSMOVISOR_PLAN_CHECK_INTERVAL),
                self.plan_check_interval
                    .map_or_else(|| toml_string("off"), duration),
            ));
        }
        let mut out = String::new();
        for (key, value) in lines {
            let _ = writeln!(out, "{key} = {value}");
        }
        out
    }
}

/// A TOML string: a single-quoted literal like go-toml writes when possible.
fn toml_string(s: &str) -> String {
    if s.chars().any(|c| c == '\'' || c.is_control()) {
        toml::Value::String(s.to_string()).to_string()
    } else {
        format!("'{s}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{defaults, from_file};
    use crate::config::{BackupMode, LogFormat, TimeFormat};
    use std::net::SocketAddr;

    #[test]
    fn to_toml_text_and_round_trip() {
        let want = "daemon_home = '/h'\ndaemon_name = 'simd'\n\
                    daemon_allow_download_binaries = false\n\
                    daemon_download_must_have_checksum = false\n\
                    daemon_restart_after_upgrade = true\ndaemon_restart_delay = '0s'\n\
                    daemon_shutdown_grace = '30s'\ndaemon_poll_interval = '300ms'\n\
                    unsafe_skip_backup = false\ndaemon_data_backup_dir = '/h'\n\
                    daemon_preupgrade_max_retries = 0\ndaemon_grpc_address = 'localhost:9090'\n\
                    cosmovisor_disable_logs = false\ncosmovisor_color_logs = true\n\
                    cosmovisor_timeformat_logs = 'kitchen'\ncosmovisor_custom_preupgrade = ''\n\
                    cosmovisor_disable_recase = false\ncosmovisor_log_format = 'console'\n\
                    cosmovisor_backup_mode = 'auto'\n\
                    cosmovisor_download_idle_timeout = '1m0s'\n";
        assert_eq!(defaults().to_toml(), want);
        assert_eq!(from_file(want, &[]), Ok(defaults()));
        let odd = Config {
            home: "/it's home".into(),
            name: "sim\"d".into(),
            allow_download_binaries: true,
            download_must_have_checksum: true,
            restart_after_upgrade: false,
            restart_delay: Duration::from_millis(1500),
            shutdown_grace: Duration::from_secs(3600),
            poll_interval: Duration::from_nanos(10_000_001),
            unsafe_skip_backup: true,
            data_backup_dir: "/b".into(),
            preupgrade_max_retries: 9,
            grpc_address: "https://g:9090".into(),
            disable_logs: true,
            color_logs: false,
            time_format: TimeFormat::None,
            custom_preupgrade: Some("pre\tupgrade.sh".into()),
            disable_recase: true,
            backup_keep: Some(3),
            log_format: LogFormat::Json,
            backup_mode: BackupMode::Checkpoint,
            metrics_addr: Some(SocketAddr::from(([0, 0, 0, 0], 9102))),
            download_idle_timeout: Duration::from_millis(250),
            node_rpc: Some("https://rpc.example:443".into()),
            plan_check_interval: None,
            webhook_url: None,
            warnings: Vec::new(),
        };
        let text = odd.to_toml();
        assert!(
            text.ends_with(
                "\ncosmovisor_metrics_addr = '0.0.0.0:9102'\ncosmovisor_node_rpc = 'https://rpc.example:443'\ncosmovisor_plan_check_interval = 'off'\n"
            ),
            "{text}"
        );
        assert!(text.contains("\ncosmovisor_backup_keep = 3\n"), "{text}");
        assert!(text.contains("\ndaemon_restart_delay = '1.5s'\n"), "{text}");
        assert_eq!(from_file(&text, &[]), Ok(odd));
    }
}
