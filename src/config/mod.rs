//! Configuration: turns the `DAEMON_*`, `COSMOVISOR_*` and `UNSAFE_SKIP_BACKUP` environment
//! variables, and optionally a v1.6-style `config.toml` (the environment overriding each key), into
//! one typed [`Config`], collecting every error instead of stopping at the first. Parsing is pure
//! ([`Config::from_vars`], [`Config::from_file_and_vars`]); [`Config::load`] is the only entry point
//! that reads the process environment or the disk.
//!
//! This file owns the [`Config`] type, the variable names, the small enums and the entry points.
//! Reading and checking each value is `reader.rs`, Go durations are `duration.rs`, the `config`
//! command's text and `config.toml` output are `render.rs`, and the error types are `error.rs`.
//!
//! It is not the folder layout: nothing here checks `$DAEMON_HOME/cosmovisor` or the binaries (that
//! is `home/`). The one filesystem check is upstream's load-time check that
//! `DAEMON_DATA_BACKUP_DIR` exists, kept apart in [`Config::check_filesystem`].

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod duration;
mod error;
mod reader;
mod render;
#[cfg(test)]
mod tests;

pub use duration::{format_go_duration, parse_go_duration};
pub use error::{ConfigError, ConfigErrors, ConfigWarning};

use error::{io_reason, toml_reason};
use reader::Reader;

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

/// The variables only a running supervisor reads (how it stops, waits, retries, backs up, serves
/// metrics and logs): commands run by hand (`add-upgrade`, `status`, `rollback`, …) behave the
/// same whatever they are, so `doctor --unit` notes a shell that differs from the unit in them
/// instead of failing.
pub const SUPERVISOR_ONLY: &[&str] = &[
    DAEMON_RESTART_AFTER_UPGRADE,
    DAEMON_RESTART_DELAY,
    DAEMON_SHUTDOWN_GRACE,
    DAEMON_POLL_INTERVAL,
    DAEMON_PREUPGRADE_MAX_RETRIES,
    COSMOVISOR_DISABLE_LOGS,
    COSMOVISOR_COLOR_LOGS,
    COSMOVISOR_TIMEFORMAT_LOGS,
    COSMOVISOR_CUSTOM_PREUPGRADE,
    COSMOVISOR_BACKUP_KEEP,
    COSMOVISOR_LOG_FORMAT,
    COSMOVISOR_BACKUP_MODE,
    COSMOVISOR_METRICS_ADDR,
    COSMOVISOR_PLAN_CHECK_INTERVAL,
    COSMOVISOR_WEBHOOK_URL,
    COSMOVISOR_LOG_LEVEL,
];

/// Every variable cosmovisor reads, in the README's order, with its default and meaning: the one
/// list the manual page's ENVIRONMENT section and `doctor`'s comparison of the shell with a
/// systemd unit are made from.
pub const VARIABLES: &[(&str, &str)] = &[
    (
        DAEMON_HOME,
        "required: absolute path of the node home (the daemon's --home)",
    ),
    (
        DAEMON_NAME,
        "required: file name of the daemon binary, e.g. panacead",
    ),
    (
        DAEMON_ALLOW_DOWNLOAD_BINARIES,
        "false: download the upgrade binary named in the plan when it is not staged",
    ),
    (
        DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM,
        "false: refuse download URLs without ?checksum=",
    ),
    (
        DAEMON_RESTART_AFTER_UPGRADE,
        "true: relaunch the daemon after an upgrade (else exit 0)",
    ),
    (
        DAEMON_RESTART_DELAY,
        "off: wait this long after the daemon stopped, before the backup",
    ),
    (
        DAEMON_SHUTDOWN_GRACE,
        "30s: time between SIGTERM and SIGKILL when stopping the daemon",
    ),
    (
        DAEMON_POLL_INTERVAL,
        "300ms: how often upgrade-info.json is polled without inotify (below 10ms: 10ms, with a warning)",
    ),
    (
        DAEMON_DATA_BACKUP_DIR,
        "$DAEMON_HOME: where backups of data/ go",
    ),
    (
        UNSAFE_SKIP_BACKUP,
        "false: do not back up data/ before upgrading",
    ),
    (
        DAEMON_PREUPGRADE_MAX_RETRIES,
        "0: how often pre-upgrade is retried when it exits 31",
    ),
    (
        DAEMON_GRPC_ADDRESS,
        "localhost:9090: the node's gRPC address (prepare-upgrade)",
    ),
    (
        COSMOVISOR_DISABLE_LOGS,
        "false: no cosmovisor log lines at all",
    ),
    (
        COSMOVISOR_COLOR_LOGS,
        "true: ANSI colours in our log lines when stderr is a terminal; true set in the environment forces them",
    ),
    (
        COSMOVISOR_TIMEFORMAT_LOGS,
        "kitchen: timestamp layout of our log lines (empty: none)",
    ),
    (
        COSMOVISOR_CUSTOM_PREUPGRADE,
        "off: script under $DAEMON_HOME/cosmovisor/ run before the switch",
    ),
    (
        COSMOVISOR_DISABLE_RECASE,
        "false: keep the plan name's case for the folder",
    ),
    (
        COSMOVISOR_BACKUP_KEEP,
        "all: keep only the N newest complete backups",
    ),
    (
        COSMOVISOR_LOG_FORMAT,
        "console: json for one JSON object per log line",
    ),
    (
        COSMOVISOR_BACKUP_MODE,
        "auto: reflink where the file system clones, else hard links of immutable table files on data/'s file system, else copy; copy, checkpoint or reflink force one",
    ),
    (
        COSMOVISOR_METRICS_ADDR,
        "off: address such as 127.0.0.1:9102 where run serves Prometheus metrics",
    ),
    (
        COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT,
        "60s: a download that receives less than 1 KiB in this long fails as stalled",
    ),
    (
        COSMOVISOR_NODE_RPC,
        "the node's [rpc] laddr in $DAEMON_HOME/config/config.toml, else http://127.0.0.1:26657: the node's CometBFT RPC, asked for its height (never to trigger); an answer counts only from the node whose ID config/node_key.json gives",
    ),
    (
        COSMOVISOR_PLAN_CHECK_INTERVAL,
        "1m: how often run asks the node (gRPC, DAEMON_GRPC_ADDRESS) for the chain's scheduled upgrade, to prepare and check its binary ahead (0 or off: never); knowledge only, never a trigger",
    ),
    (
        COSMOVISOR_WEBHOOK_URL,
        "off: http(s) URL run POSTs a JSON message to for each upgrade event (Slack, Mattermost, Discord incoming webhooks); never delays an upgrade",
    ),
    (COSMOVISOR_LOG_LEVEL, "info: debug shows decisions too"),
];

/// is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // one per upstream switch
pub struct Config {
    pub home: PathBuf,
    pub name: String,
    pub allow_download_binaries: bool,
    pub download_must_have_checksum: bool,
    pub restart_after_upgrade: bool,
    /// Zero means off.
    pub restart_delay: Duration,
    /// Our default is 30s (upstream: 0, i.e. SIGKILL at once).
    pub shutdown_grace: Duration,
    pub poll_interval: Duration,
    pub unsafe_skip_backup: bool,
    pub data_backup_dir: PathBuf,
    pub preupgrade_max_retries: u32,
    pub grpc_address: String,
    pub disable_logs: bool,
    pub color_logs: bool,
    pub time_format: TimeFormat,
    /// A file name relative to `$DAEMON_HOME/cosmovisor`.
    pub custom_preupgrade: Option<String>,
    pub disable_recase: bool,
    /// `None` keeps every backup.
    pub backup_keep: Option<u32>,
    pub log_format: LogFormat,
    pub backup_mode: BackupMode,
    /// Where `run` serves Prometheus metrics (`GET /metrics`); `None`: no metrics endpoint.
    pub metrics_addr: Option<SocketAddr>,
    /// A download that receives less than 1 KiB in this long fails as stalled (default 60s).
    pub download_idle_timeout: Duration,
    /// `COSMOVISOR_NODE_RPC` when set: the node's `CometBFT` RPC (`http(s)://host:port`), asked
    /// for the node's height only to refuse or confirm, never to trigger anything. Unset: the
    /// node's own `[rpc] laddr` (`supervisor/node_rpc.rs`).
    pub node_rpc: Option<String>,
    /// `COSMOVISOR_PLAN_CHECK_INTERVAL`: how often `run` asks the node for the chain's scheduled
    /// plan (README "Before the upgrade"); `None` (`0` or `off`): never.
    pub plan_check_interval: Option<Duration>,
    /// `COSMOVISOR_WEBHOOK_URL`: where `run` POSTs its events (README "Before the upgrade"); it
    /// may hold a secret: shown only redacted.
    pub webhook_url: Option<String>,
    /// Values Go accepts that are used differently here, to log once logging is set up.
    pub warnings: Vec<ConfigWarning>,
}

/// `COSMOVISOR_TIMEFORMAT_LOGS`: upstream's option names for Go's predefined layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// No timestamp at all (the variable is set but empty).
    None,
    Layout,
    Ansic,
    UnixDate,
    RubyDate,
    Rfc822,
    Rfc822Z,
    Rfc850,
    Rfc1123,
    Rfc1123Z,
    Rfc3339,
    Rfc3339Nano,
    Kitchen,
}

/// Every named format with its option name, Go layout and closest chrono pattern (chrono cannot
/// print zone abbreviations, so `MST` becomes `%Z`, which chrono renders as an offset for local
/// time; Go prints `Z` for UTC in the RFC 3339 layouts where chrono prints `+00:00`).
#[rustfmt::skip]
const TIME_FORMATS: [(TimeFormat, &str, &str, &str); 12] = [
    (TimeFormat::Layout, "layout", "01/02 03:04:05PM '06 -0700", "%m/%d %I:%M:%S%p '%y %z"),
    (TimeFormat::Ansic, "ansic", "Mon Jan _2 15:04:05 2006", "%a %b %e %H:%M:%S %Y"),
    (TimeFormat::UnixDate, "unixdate", "Mon Jan _2 15:04:05 MST 2006", "%a %b %e %H:%M:%S %Z %Y"),
    (TimeFormat::RubyDate, "rubydate", "Mon Jan 02 15:04:05 -0700 2006", "%a %b %d %H:%M:%S %z %Y"),
    (TimeFormat::Rfc822, "rfc822", "02 Jan 06 15:04 MST", "%d %b %y %H:%M %Z"),
    (TimeFormat::Rfc822Z, "rfc822z", "02 Jan 06 15:04 -0700", "%d %b %y %H:%M %z"),
    (TimeFormat::Rfc850, "rfc850", "Monday, 02-Jan-06 15:04:05 MST", "%A, %d-%b-%y %H:%M:%S %Z"),
    (TimeFormat::Rfc1123, "rfc1123", "Mon, 02 Jan 2006 15:04:05 MST", "%a, %d %b %Y %H:%M:%S %Z"),
    (TimeFormat::Rfc1123Z, "rfc1123z", "Mon, 02 Jan 2006 15:04:05 -0700",
        "%a, %d %b %Y %H:%M:%S %z"),
    (TimeFormat::Rfc3339, "rfc3339", "2006-01-02T15:04:05Z07:00", "%Y-%m-%dT%H:%M:%S%:z"),
    (TimeFormat::Rfc3339Nano, "rfc3339nano", "2006-01-02T15:04:05.999999999Z07:00",
        "%Y-%m-%dT%H:%M:%S%.f%:z"),
    (TimeFormat::Kitchen, "kitchen", "3:04PM", "%-I:%M%p"),
];

impl TimeFormat {
    /// Case-sensitive option name to format; `""` is [`TimeFormat::None`].
    #[must_use]
    pub fn parse(s: &str) -> Option<TimeFormat> {
        if s.is_empty() {
            return Some(TimeFormat::None);
        }
        TIME_FORMATS.iter().find(|row| row.1 == s).map(|row| row.0)
    }

    fn row(self) -> Option<&'static (TimeFormat, &'static str, &'static str, &'static str)> {
        TIME_FORMATS.iter().find(|row| row.0 == self)
    }

    /// The option name (`""` for [`TimeFormat::None`]).
    #[must_use]
    pub fn name(self) -> &'static str {
        self.row().map_or("", |row| row.1)
    }

    /// Go's layout string, as upstream's `config` command shows it (`""` for [`TimeFormat::None`]).
    #[must_use]
    pub fn go_layout(self) -> &'static str {
        self.row().map_or("", |row| row.2)
    }

    /// A chrono strftime pattern with the same look, or `None` for no timestamp.
    #[must_use]
    pub fn strftime(self) -> Option<&'static str> {
        self.row().map(|row| row.3)
    }
}

/// `COSMOVISOR_LOG_FORMAT`: the shape of our own log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Console,
    Json,
}

impl LogFormat {
    /// Case-insensitive `console` or `json`.
    #[must_use]
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s.to_ascii_lowercase().as_str() {
            "console" => Some(LogFormat::Console),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Console => "console",
            LogFormat::Json => "json",
        }
    }
}

/// `COSMOVISOR_BACKUP_MODE`: how `data/` is backed up (`backup::resolve` turns it into what
/// one backup does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupMode {
    /// The default: `reflink` where the backup folder's file system clones, else `checkpoint`
    /// when it is `data/`'s file system, else `copy`.
    Auto,
    /// A full copy (still a reflink clone on the same XFS or btrfs: the kernel's choice).
    Copy,
    /// Like a `RocksDB` checkpoint: the immutable table files of `LevelDB`/Pebble/`RocksDB`
    /// stores are hard-linked, everything else is copied.
    Checkpoint,
    /// Reflink clones; a copy where the file system cannot clone.
    Reflink,
}

impl BackupMode {
    /// Case-insensitive `auto`, `copy`, `checkpoint` or `reflink`.
    #[must_use]
    pub fn parse(s: &str) -> Option<BackupMode> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Some(BackupMode::Auto),
            "copy" => Some(BackupMode::Copy),
            "checkpoint" => Some(BackupMode::Checkpoint),
            "reflink" => Some(BackupMode::Reflink),
            _ => None,
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            BackupMode::Auto => "auto",
            BackupMode::Copy => "copy",
            BackupMode::Checkpoint => "checkpoint",
            BackupMode::Reflink => "reflink",
        }
    }
}

impl Config {
    /// Pure: no filesystem or process-env access. `vars` returns the raw value of a variable
    /// (`None` = unset).
    pub fn from_vars(vars: impl Fn(&str) -> Option<OsString>) -> Result<Config, ConfigErrors> {
        Reader::new(vars, None).read()
    }

    /// Pure: a v1.6 `config.toml` (its text, and its path for messages) with the environment
    /// overriding each key. Missing keys (and zero durations) get the same defaults as env mode.
    pub fn from_file_and_vars(
        path: &Path,
        text: &str,
        vars: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Config, ConfigErrors> {
        let table = text.parse::<toml::Table>().map_err(|e| {
            let reason = toml_reason(text, &e);
            ConfigErrors(vec![ConfigError::FileMalformed {
                path: path.to_path_buf(),
                reason,
            }])
        })?;
        Reader::new(vars, Some((path, &table))).read()
    }

    /// The I/O entry point: reads `std::env` (and the file when `config_file` is Some).
    pub fn load(config_file: Option<&Path>) -> Result<Config, ConfigErrors> {
        Config::load_with(config_file, |var: &str| std::env::var_os(var))
    }

    /// Like [`Config::load`] with another environment than the process's (`doctor --unit`: the
    /// one a systemd unit gives).
    pub fn load_with(
        config_file: Option<&Path>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Config, ConfigErrors> {
        match config_file {
            None => Config::from_vars(env),
            Some(path) => {
                // Operator-written, but still a file anyone with access may have replaced by a
                // FIFO or a device: read only a regular file, with a cap.
                let text = crate::bounded_read::read_capped_string(
                    path,
                    crate::bounded_read::DOCUMENT_CAP,
                )
                .map_err(|e| {
                    ConfigErrors(vec![ConfigError::FileUnreadable {
                        path: path.to_path_buf(),
                        reason: read_reason(&e),
                    }])
                })?;
                Config::from_file_and_vars(path, &text, env)
            }
        }
    }

    /// Upstream's load-time filesystem check: the backup dir must be an existing directory unless
    /// `unsafe_skip_backup`.
    #[must_use]
    pub fn check_filesystem(&self) -> Vec<ConfigError> {
        if self.unsafe_skip_backup {
            return Vec::new();
        }
        let reason = match std::fs::metadata(&self.data_backup_dir) {
            Ok(m) if m.is_dir() => return Vec::new(),
            Ok(_) => "not a directory".to_string(),
            Err(e) => io_reason(&e),
        };
        let value = self.data_backup_dir.display().to_string();
        vec![ConfigError::BackupDirMissing { value, reason }]
    }
}

/// Why a config file could not be read, without its path (the error names it already).
pub(crate) fn read_reason(err: &crate::bounded_read::ReadError) -> String {
    use crate::bounded_read::ReadError;
    match err {
        ReadError::Missing(_) => "No such file or directory".to_owned(),
        ReadError::NotRegular { kind, .. } => format!("it is a {kind}, not a regular file"),
        ReadError::TooBig { size, cap, .. } => {
            format!("it is larger than {cap} bytes (read {size}); it cannot be a config file")
        }
        ReadError::Io { source, .. } => io_reason(source),
    }
}
