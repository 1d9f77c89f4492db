//! Configuration: turns the `DAEMON_*`, `COSMOVISOR_*` and `UNSAFE_SKIP_BACKUP` environment
//! variables, and optionally a v1.6-style `config.toml` (the environment overriding each key), into
//! one typed [`Config`], collecting every error instead of stopping at the first. Parsing is pure
//! ([`Config::from_vars`], [`Config::from_file_and_vars`]); [`Config::load`] is the only entry point
//! that reads the process environment or the disk.
//!
//! This file owns the [`Config`] type, the small enums and the entry points. Each variable's
//! name, default and meaning are `vars.rs`; reading and checking each value is `reader.rs`, Go durations are `duration.rs`, the `config`
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
mod vars;

pub use duration::{format_go_duration, parse_go_duration};
pub use error::{ConfigError, ConfigErrors, ConfigWarning};

use error::{io_reason, toml_reason};
use reader::Reader;

pub use vars::*;

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
