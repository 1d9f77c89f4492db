//! Configuration: turns the `DAEMON_*`, `COSMOVISOR_*` and `UNSAFE_SKIP_BACKUP` environment
//! variables, and optionally a v1.6-style `config.toml` (the environment overriding each key), into
//! one typed [`Config`], collecting every error instead of stopping at the first. Parsing is pure
//! ([`Config::from_vars`], [`Config::from_file_and_vars`]); [`Config::load`] is the only entry point
//! that reads the process environment or the disk.
//!
//! It is not the folder layout: nothing here checks `$DAEMON_HOME/cosmovisor` or the binaries (that
//! is `layout.rs`). The one filesystem check is upstream's load-time check that
//! `DAEMON_DATA_BACKUP_DIR` exists, kept apart in [`Config::check_filesystem`].

use std::ffi::OsString;
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(300);
const DEFAULT_GRPC_ADDRESS: &str = "localhost:9090";
const DURATION_HINT: &str = "a Go duration such as 300ms or 1m30s";
const FILE_DURATION_TYPE: &str = "a duration string like '300ms' or an integer of nanoseconds";
const FILE_DURATION_VALUE: &str =
    "a Go duration such as '300ms' or '1m30s', or a non-negative integer of nanoseconds";
const TIME_FORMAT_HINT: &str = "one of layout, ansic, unixdate, rubydate, rfc822, rfc822z, rfc850, \
     rfc1123, rfc1123z, rfc3339, rfc3339nano, kitchen, or empty for none";

/// The whole typed configuration. Built through [`Config::from_vars`] and friends, so every field
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

/// `COSMOVISOR_BACKUP_MODE`: how `data/` is backed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupMode {
    /// A full copy (a reflink clone where the file system can).
    Copy,
    /// Like a `RocksDB` checkpoint: the immutable table files of `LevelDB`/Pebble stores are
    /// hard-linked, everything else is copied.
    Checkpoint,
}

impl BackupMode {
    /// Case-insensitive `copy` or `checkpoint`.
    #[must_use]
    pub fn parse(s: &str) -> Option<BackupMode> {
        match s.to_ascii_lowercase().as_str() {
            "copy" => Some(BackupMode::Copy),
            "checkpoint" => Some(BackupMode::Checkpoint),
            _ => None,
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            BackupMode::Copy => "copy",
            BackupMode::Checkpoint => "checkpoint",
        }
    }
}

/// One configuration problem. Each message is one line naming the variable (or file and key), the
/// offending value and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not set ({})", missing_hint(var))]
    Missing { var: &'static str },
    #[error("{var}: value {value:?} is not valid UTF-8 (use only UTF-8 characters)")]
    NotUtf8 { var: &'static str, value: String },
    #[error("{var} must be an absolute path, got {value:?}")]
    NotAbsolute { var: &'static str, value: String },
    #[error("DAEMON_NAME must be a plain file name (no '/' or NUL, not . or ..), got {value:?}")]
    InvalidName { value: String },
    #[error("{var}: invalid boolean {value:?} (expected true or false)")]
    InvalidBool { var: &'static str, value: String },
    #[error(
        "{var}: invalid duration {value:?}{} (expected {DURATION_HINT})",
        colon(reason)
    )]
    InvalidDuration {
        var: &'static str,
        value: String,
        /// May be empty when the value is plain garbage.
        reason: String,
    },
    #[error(
        "{var}: must be greater than 0, got {value:?} ({})",
        positive_hint(var)
    )]
    NotPositive { var: &'static str, value: String },
    #[error("{var}: invalid integer {value:?} (expected {})", integer_hint(var))]
    InvalidInteger { var: &'static str, value: String },
    #[error(
        "COSMOVISOR_TIMEFORMAT_LOGS: invalid time format {value:?} (expected {TIME_FORMAT_HINT})"
    )]
    InvalidTimeFormat { value: String },
    #[error("COSMOVISOR_LOG_FORMAT: invalid log format {value:?} (expected console or json)")]
    InvalidLogFormat { value: String },
    #[error("COSMOVISOR_BACKUP_MODE: invalid backup mode {value:?} (expected copy or checkpoint)")]
    InvalidBackupMode { value: String },
    #[error(
        "COSMOVISOR_METRICS_ADDR: invalid address {value:?} (expected an IP address and port such \
         as 127.0.0.1:9102, or empty for no metrics)"
    )]
    InvalidMetricsAddr { value: String },
    #[error(
        "DAEMON_DATA_BACKUP_DIR must be an existing directory, got {value:?}: {reason} \
         (create it or point it elsewhere)"
    )]
    BackupDirMissing { value: String, reason: String },
    #[error(
        "config file {}: cannot read it: {reason} (check the --cosmovisor-config path)",
        path.display()
    )]
    FileUnreadable { path: PathBuf, reason: String },
    #[error("config file {}: invalid TOML: {reason}", path.display())]
    FileMalformed { path: PathBuf, reason: String },
    #[error("config file {}: key {key} must be {expected}", path.display())]
    FileWrongType {
        path: PathBuf,
        key: String,
        expected: &'static str,
    },
    #[error(
        "config file {}: key {key}: invalid value {value:?} (expected {expected})",
        path.display()
    )]
    FileInvalidValue {
        path: PathBuf,
        key: String,
        value: String,
        expected: &'static str,
    },
}

fn colon(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

fn missing_hint(var: &str) -> &'static str {
    if var == DAEMON_NAME {
        "set it to the daemon binary's file name, e.g. panacead"
    } else {
        "set it to the node's home directory, e.g. /root/.panacea"
    }
}

fn positive_hint(var: &str) -> &'static str {
    match var {
        DAEMON_RESTART_DELAY => "unset it to disable the delay",
        DAEMON_SHUTDOWN_GRACE => "unset it to use the default of 30s",
        DAEMON_POLL_INTERVAL => "unset it to use the default of 300ms",
        _ => "unset it to keep all backups",
    }
}

fn integer_hint(var: &str) -> &'static str {
    if var == COSMOVISOR_BACKUP_KEEP {
        "a whole number 1 or greater, or empty to keep all backups"
    } else {
        "a whole number 0 or greater"
    }
}

/// All the problems found, in upstream's order. Displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Where one variable's value came from.
enum Raw<'a> {
    Unset,
    /// Unusable and already reported.
    Bad,
    Env(String),
    File(&'a toml::Value),
}

/// Text-valued lookup result.
enum Text {
    Unset,
    Bad,
    Set(String),
}

struct Reader<'a, F> {
    vars: F,
    file: Option<(&'a Path, &'a toml::Table)>,
    errors: Vec<ConfigError>,
}

impl<'a, F: Fn(&str) -> Option<OsString>> Reader<'a, F> {
    fn new(vars: F, file: Option<(&'a Path, &'a toml::Table)>) -> Self {
        let errors = Vec::new();
        Reader { vars, file, errors }
    }

    /// The environment wins; in file mode an empty variable counts as unset (viper's rule) and the
    /// key (the variable's name lower-cased) is looked up in the file.
    fn raw(&mut self, var: &'static str) -> Raw<'a> {
        if let Some(os) = (self.vars)(var) {
            match os.into_string() {
                Ok(s) if !s.is_empty() || self.file.is_none() => return Raw::Env(s),
                Ok(_) => {}
                Err(os) => {
                    let value = os.to_string_lossy().into_owned();
                    self.errors.push(ConfigError::NotUtf8 { var, value });
                    return Raw::Bad;
                }
            }
        }
        match self.file {
            // Keys are case-insensitive, as with viper.
            Some((_, table)) => table
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(var))
                .map_or(Raw::Unset, |(_, value)| Raw::File(value)),
            None => Raw::Unset,
        }
    }

    fn file_path(&self) -> PathBuf {
        self.file.map(|(p, _)| p.to_path_buf()).unwrap_or_default()
    }

    fn wrong_type(&mut self, var: &str, expected: &'static str) {
        let (path, key) = (self.file_path(), var.to_ascii_lowercase());
        let error = ConfigError::FileWrongType {
            path,
            key,
            expected,
        };
        self.errors.push(error);
    }

    fn invalid_value(&mut self, var: &str, value: String, expected: &'static str) {
        let (path, key) = (self.file_path(), var.to_ascii_lowercase());
        let error = ConfigError::FileInvalidValue {
            path,
            key,
            value,
            expected,
        };
        self.errors.push(error);
    }

    fn bool(&mut self, var: &'static str, default: bool) -> bool {
        match self.raw(var) {
            Raw::Unset | Raw::Bad => default,
            Raw::Env(s) => match s.to_ascii_lowercase().as_str() {
                "" => default,
                "true" => true,
                "false" => false,
                _ => {
                    self.errors.push(ConfigError::InvalidBool { var, value: s });
                    default
                }
            },
            Raw::File(toml::Value::Boolean(b)) => *b,
            Raw::File(_) => {
                self.wrong_type(var, "a boolean (true or false)");
                default
            }
        }
    }

    /// Env values must be > 0 when set; in the file, 0 (Go's `init` writes it for unset values)
    /// means the default.
    fn duration(&mut self, var: &'static str, default: Duration) -> Duration {
        match self.raw(var) {
            Raw::Unset | Raw::Bad => default,
            Raw::Env(s) if s.is_empty() => default,
            Raw::Env(s) => match parse_duration(&s) {
                Ok(d) if d.is_zero() => {
                    self.errors.push(ConfigError::NotPositive { var, value: s });
                    default
                }
                Ok(d) => d,
                Err(e) => {
                    let reason = e.reason().to_string();
                    self.errors.push(ConfigError::InvalidDuration {
                        var,
                        value: s,
                        reason,
                    });
                    default
                }
            },
            Raw::File(toml::Value::String(s)) if s.is_empty() => default,
            Raw::File(toml::Value::String(s)) => match parse_duration(s) {
                Ok(d) if d.is_zero() => default,
                Ok(d) => d,
                Err(_) => {
                    self.invalid_value(var, s.clone(), FILE_DURATION_VALUE);
                    default
                }
            },
            Raw::File(toml::Value::Integer(n)) => match u64::try_from(*n) {
                Ok(0) => default,
                Ok(n) => Duration::from_nanos(n),
                Err(_) => {
                    self.invalid_value(var, n.to_string(), FILE_DURATION_VALUE);
                    default
                }
            },
            Raw::File(_) => {
                self.wrong_type(var, FILE_DURATION_TYPE);
                default
            }
        }
    }

    /// A decimal `u32`, at least `min`; unset or empty gives `None`.
    fn integer(&mut self, var: &'static str, min: u32) -> Option<u32> {
        let expected = if min == 0 {
            "an integer 0 or greater"
        } else {
            "an integer 1 or greater, or no key to keep all backups"
        };
        match self.raw(var) {
            Raw::Unset | Raw::Bad => None,
            Raw::Env(s) if s.is_empty() => None,
            Raw::Env(s) => match s.parse::<u32>() {
                Ok(n) if n >= min => Some(n),
                Ok(_) => {
                    self.errors.push(ConfigError::NotPositive { var, value: s });
                    None
                }
                Err(_) => {
                    self.errors
                        .push(ConfigError::InvalidInteger { var, value: s });
                    None
                }
            },
            Raw::File(toml::Value::Integer(n)) => match u32::try_from(*n) {
                Ok(n) if n >= min => Some(n),
                _ => {
                    self.invalid_value(var, n.to_string(), expected);
                    None
                }
            },
            Raw::File(_) => {
                self.wrong_type(var, expected);
                None
            }
        }
    }

    fn text(&mut self, var: &'static str) -> Text {
        match self.raw(var) {
            Raw::Unset => Text::Unset,
            Raw::Bad => Text::Bad,
            Raw::Env(s) => Text::Set(s),
            Raw::File(toml::Value::String(s)) => Text::Set(s.clone()),
            Raw::File(_) => {
                self.wrong_type(var, "a string");
                Text::Bad
            }
        }
    }

    /// A string where unset and empty both give `None`.
    fn non_empty(&mut self, var: &'static str) -> Option<String> {
        match self.text(var) {
            Text::Set(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    fn time_format(&mut self) -> TimeFormat {
        let var = COSMOVISOR_TIMEFORMAT_LOGS;
        match self.raw(var) {
            Raw::Unset | Raw::Bad => TimeFormat::Kitchen,
            Raw::Env(s) => TimeFormat::parse(&s).unwrap_or_else(|| {
                self.errors
                    .push(ConfigError::InvalidTimeFormat { value: s });
                TimeFormat::Kitchen
            }),
            Raw::File(toml::Value::String(s)) => TimeFormat::parse(s).unwrap_or_else(|| {
                self.invalid_value(var, s.clone(), TIME_FORMAT_HINT);
                TimeFormat::Kitchen
            }),
            Raw::File(_) => {
                self.wrong_type(var, "a string");
                TimeFormat::Kitchen
            }
        }
    }

    /// `COSMOVISOR_METRICS_ADDR`: an IP address and port; unset or empty gives `None`.
    fn backup_mode(&mut self) -> BackupMode {
        match self.non_empty(COSMOVISOR_BACKUP_MODE) {
            None => BackupMode::Copy,
            Some(s) => BackupMode::parse(&s).unwrap_or_else(|| {
                self.errors
                    .push(ConfigError::InvalidBackupMode { value: s });
                BackupMode::Copy
            }),
        }
    }

    fn metrics_addr(&mut self) -> Option<SocketAddr> {
        let value = self.non_empty(COSMOVISOR_METRICS_ADDR)?;
        if let Ok(addr) = value.trim().parse::<SocketAddr>() {
            return Some(addr);
        }
        self.errors.push(ConfigError::InvalidMetricsAddr { value });
        None
    }

    fn read(mut self) -> Result<Config, ConfigErrors> {
        // Parse errors, in upstream v1.5+ order.
        let allow_download_binaries = self.bool(DAEMON_ALLOW_DOWNLOAD_BINARIES, false);
        let download_must_have_checksum = self.bool(DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM, false);
        let restart_after_upgrade = self.bool(DAEMON_RESTART_AFTER_UPGRADE, true);
        let unsafe_skip_backup = self.bool(UNSAFE_SKIP_BACKUP, false);
        let disable_logs = self.bool(COSMOVISOR_DISABLE_LOGS, false);
        let color_logs = self.bool(COSMOVISOR_COLOR_LOGS, true);
        let time_format = self.time_format();
        let disable_recase = self.bool(COSMOVISOR_DISABLE_RECASE, false);
        let poll_interval = self.duration(DAEMON_POLL_INTERVAL, DEFAULT_POLL_INTERVAL);
        let restart_delay = self.duration(DAEMON_RESTART_DELAY, Duration::ZERO);
        let shutdown_grace = self.duration(DAEMON_SHUTDOWN_GRACE, DEFAULT_SHUTDOWN_GRACE);
        let preupgrade_max_retries = self.integer(DAEMON_PREUPGRADE_MAX_RETRIES, 0).unwrap_or(0);
        // Ours.
        let backup_keep = self.integer(COSMOVISOR_BACKUP_KEEP, 1);
        let log_format = match self.non_empty(COSMOVISOR_LOG_FORMAT) {
            None => LogFormat::Console,
            Some(s) => LogFormat::parse(&s).unwrap_or_else(|| {
                self.errors.push(ConfigError::InvalidLogFormat { value: s });
                LogFormat::Console
            }),
        };
        let backup_mode = self.backup_mode();
        let metrics_addr = self.metrics_addr();
        let grpc_address = self
            .non_empty(DAEMON_GRPC_ADDRESS)
            .unwrap_or_else(|| DEFAULT_GRPC_ADDRESS.to_string());
        let custom_preupgrade = self.non_empty(COSMOVISOR_CUSTOM_PREUPGRADE);
        // Validation: name, home, backup dir.
        let name = match self.text(DAEMON_NAME) {
            Text::Bad => String::new(),
            Text::Set(s) if !s.is_empty() => {
                if s.contains(['/', '\0']) || s == "." || s == ".." {
                    self.errors
                        .push(ConfigError::InvalidName { value: s.clone() });
                }
                s
            }
            _ => {
                self.errors.push(ConfigError::Missing { var: DAEMON_NAME });
                String::new()
            }
        };
        let home = match self.text(DAEMON_HOME) {
            Text::Bad => PathBuf::new(),
            Text::Set(s) if !s.is_empty() => {
                if !Path::new(&s).is_absolute() {
                    self.errors.push(ConfigError::NotAbsolute {
                        var: DAEMON_HOME,
                        value: s.clone(),
                    });
                }
                PathBuf::from(s)
            }
            _ => {
                self.errors.push(ConfigError::Missing { var: DAEMON_HOME });
                PathBuf::new()
            }
        };
        // Defaults to home, whose own errors were reported above.
        let data_backup_dir = match self.non_empty(DAEMON_DATA_BACKUP_DIR) {
            Some(s) => {
                if !unsafe_skip_backup && !Path::new(&s).is_absolute() {
                    let value = s.clone();
                    self.errors.push(ConfigError::NotAbsolute {
                        var: DAEMON_DATA_BACKUP_DIR,
                        value,
                    });
                }
                PathBuf::from(s)
            }
            None => home.clone(),
        };
        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        Ok(Config {
            home,
            name,
            allow_download_binaries,
            download_must_have_checksum,
            restart_after_upgrade,
            restart_delay,
            shutdown_grace,
            poll_interval,
            unsafe_skip_backup,
            data_backup_dir,
            preupgrade_max_retries,
            grpc_address,
            disable_logs,
            color_logs,
            time_format,
            custom_preupgrade,
            disable_recase,
            backup_keep,
            log_format,
            backup_mode,
            metrics_addr,
        })
    }
}

/// One line out of a toml error: its message plus the line and column where it starts.
fn toml_reason(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', "; ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// An `io::Error`'s text without the trailing ` (os error N)`.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
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

    /// The only I/O entry point: reads `std::env` (and the file when `config_file` is Some).
    pub fn load(config_file: Option<&Path>) -> Result<Config, ConfigErrors> {
        let env = |var: &str| std::env::var_os(var);
        match config_file {
            None => Config::from_vars(env),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    let reason = io_reason(&e);
                    ConfigErrors(vec![ConfigError::FileUnreadable {
                        path: path.to_path_buf(),
                        reason,
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
            ("daemon_home", path(&self.home)),
            ("daemon_name", toml_string(&self.name)),
            (
                "daemon_allow_download_binaries",
                self.allow_download_binaries.to_string(),
            ),
            (
                "daemon_download_must_have_checksum",
                self.download_must_have_checksum.to_string(),
            ),
            (
                "daemon_restart_after_upgrade",
                self.restart_after_upgrade.to_string(),
            ),
            ("daemon_restart_delay", duration(self.restart_delay)),
            ("daemon_shutdown_grace", duration(self.shutdown_grace)),
            ("daemon_poll_interval", duration(self.poll_interval)),
            ("unsafe_skip_backup", self.unsafe_skip_backup.to_string()),
            ("daemon_data_backup_dir", path(&self.data_backup_dir)),
            (
                "daemon_preupgrade_max_retries",
                self.preupgrade_max_retries.to_string(),
            ),
            ("daemon_grpc_address", toml_string(&self.grpc_address)),
            ("cosmovisor_disable_logs", self.disable_logs.to_string()),
            ("cosmovisor_color_logs", self.color_logs.to_string()),
            (
                "cosmovisor_timeformat_logs",
                toml_string(self.time_format.name()),
            ),
            (
                "cosmovisor_custom_preupgrade",
                toml_string(self.custom_preupgrade.as_deref().unwrap_or("")),
            ),
            ("cosmovisor_disable_recase", self.disable_recase.to_string()),
        ];
        if let Some(n) = self.backup_keep {
            lines.push(("cosmovisor_backup_keep", n.to_string()));
        }
        lines.push(("cosmovisor_log_format", toml_string(self.log_format.name())));
        lines.push((
            "cosmovisor_backup_mode",
            toml_string(self.backup_mode.name()),
        ));
        if let Some(addr) = self.metrics_addr {
            lines.push(("cosmovisor_metrics_addr", toml_string(&addr.to_string())));
        }
        let mut out = String::new();
        for (key, value) in lines {
            let _ = writeln!(out, "{key} = {value}");
        }
        out
    }
}

/// Why a Go duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DurationError {
    Empty,
    Invalid,
    MissingUnit,
    UnknownUnit(String),
    Negative,
    Overflow,
}

impl DurationError {
    /// The detail shown in [`ConfigError::InvalidDuration`] (empty when the hint says it all).
    fn reason(&self) -> &'static str {
        match self {
            DurationError::MissingUnit => "missing unit",
            DurationError::Negative => "negative durations are not allowed",
            DurationError::Overflow => "out of range",
            _ => "",
        }
    }
}

/// Go `time.ParseDuration`, except that negative durations are refused.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| match e {
        DurationError::Empty => "empty duration".to_string(),
        DurationError::Invalid => format!("invalid duration {s:?}"),
        DurationError::MissingUnit => format!("missing unit in duration {s:?}"),
        DurationError::UnknownUnit(u) => format!("unknown unit {u:?} in duration {s:?}"),
        DurationError::Negative => format!("negative duration {s:?} is not allowed"),
        DurationError::Overflow => format!("duration {s:?} is out of range"),
    })
}

fn unit_nanos(unit: &[u8]) -> Option<u64> {
    Some(match unit {
        b"ns" => 1,
        b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000, // us, µs (micro sign), μs (Greek mu)
        b"ms" => 1_000_000,
        b"s" => 1_000_000_000,
        b"m" => 60_000_000_000,
        b"h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Go's `leadingFraction`: digits as an integer and the power of ten they scale by; digits that
/// would overflow are dropped.
fn leading_fraction(s: &[u8]) -> (u64, f64, &[u8]) {
    let end = s
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(s.len());
    let (mut x, mut scale, mut overflow) = (0u64, 1f64, false);
    for &c in &s[..end] {
        if overflow {
            continue;
        }
        match x
            .checked_mul(10)
            .and_then(|y| y.checked_add(u64::from(c - b'0')))
        {
            Some(y) if y <= 1 << 63 => {
                x = y;
                scale *= 10.0;
            }
            _ => overflow = true,
        }
    }
    (x, scale, &s[end..])
}

fn parse_duration(orig: &str) -> Result<Duration, DurationError> {
    const LIMIT: u64 = 1 << 63;
    let mut s = orig.as_bytes();
    let mut neg = false;
    if let Some(rest) = s.strip_prefix(b"-") {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix(b"+") {
        s = rest;
    }
    if s == b"0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(if orig.is_empty() {
            DurationError::Empty
        } else {
            DurationError::Invalid
        });
    }
    let mut total: u64 = 0;
    while let Some(&first) = s.first() {
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(DurationError::Invalid);
        }
        let int_end = s
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(s.len());
        let mut v: u64 = 0;
        for &c in &s[..int_end] {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .filter(|&v| v <= LIMIT)
                .ok_or(DurationError::Overflow)?;
        }
        let pre = int_end > 0;
        s = &s[int_end..];
        let (mut f, mut scale, mut post) = (0, 1.0, false);
        if let Some(rest) = s.strip_prefix(b".") {
            (f, scale, s) = leading_fraction(rest);
            post = s.len() != rest.len();
        }
        if !pre && !post {
            return Err(DurationError::Invalid);
        }
        let unit_end = s
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_end == 0 {
            return Err(DurationError::MissingUnit);
        }
        let (unit, rest) = s.split_at(unit_end);
        s = rest;
        let unit = unit_nanos(unit).ok_or_else(|| {
            DurationError::UnknownUnit(String::from_utf8_lossy(unit).into_owned())
        })?;
        if v > LIMIT / unit {
            return Err(DurationError::Overflow);
        }
        v *= unit;
        if f > 0 {
            // Go does this in floating point; do the same to get the same rounding.
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let frac = (f as f64 * (unit as f64 / scale)) as u64;
            v = v
                .checked_add(frac)
                .filter(|&v| v <= LIMIT)
                .ok_or(DurationError::Overflow)?;
        }
        total = total
            .checked_add(v)
            .filter(|&t| t <= LIMIT)
            .ok_or(DurationError::Overflow)?;
    }
    if neg {
        return if total == 0 {
            Ok(Duration::ZERO)
        } else {
            Err(DurationError::Negative)
        };
    }
    if total >= LIMIT {
        return Err(DurationError::Overflow);
    }
    Ok(Duration::from_nanos(total))
}

/// Go's `fmtFrac`: `.digits` without trailing zeros, or nothing when the fraction is zero.
fn go_fraction(v: u128, prec: usize) -> String {
    if v == 0 {
        return String::new();
    }
    let digits = format!("{v:0prec$}");
    format!(".{}", digits.trim_end_matches('0'))
}

/// Go `Duration.String()`.
#[must_use]
pub fn format_go_duration(d: Duration) -> String {
    let u = d.as_nanos();
    if u == 0 {
        return "0s".to_string();
    }
    if u < 1_000_000_000 {
        let (prec, div, unit) = if u < 1_000 {
            (0, 1, "ns")
        } else if u < 1_000_000 {
            (3, 1_000, "\u{b5}s")
        } else {
            (6, 1_000_000, "ms")
        };
        return format!("{}{}{unit}", u / div, go_fraction(u % div, prec));
    }
    let secs = u / 1_000_000_000;
    let s = format!("{}{}s", secs % 60, go_fraction(u % 1_000_000_000, 9));
    if secs < 60 {
        s
    } else if secs < 3600 {
        format!("{}m{s}", secs / 60)
    } else {
        format!("{}h{}m{s}", secs / 3600, secs / 60 % 60)
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const FILE: &str = "/h/cosmovisor/config.toml";
    const DETAIL: &str = "Configurable Values:
  DAEMON_HOME: /h
  DAEMON_NAME: simd
  DAEMON_ALLOW_DOWNLOAD_BINARIES: false
  DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM: false
  DAEMON_RESTART_AFTER_UPGRADE: true
  DAEMON_RESTART_DELAY: 0s
  DAEMON_SHUTDOWN_GRACE: 30s
  DAEMON_POLL_INTERVAL: 300ms
  UNSAFE_SKIP_BACKUP: false
  DAEMON_DATA_BACKUP_DIR: /h
  DAEMON_PREUPGRADE_MAX_RETRIES: 0
  COSMOVISOR_DISABLE_LOGS: false
  COSMOVISOR_COLOR_LOGS: true
  COSMOVISOR_TIMEFORMAT_LOGS: 3:04PM
  COSMOVISOR_CUSTOM_PREUPGRADE: \n  COSMOVISOR_DISABLE_RECASE: false
  DAEMON_GRPC_ADDRESS: localhost:9090
  COSMOVISOR_BACKUP_KEEP: \n  COSMOVISOR_LOG_FORMAT: console\n  COSMOVISOR_BACKUP_MODE: copy
  COSMOVISOR_METRICS_ADDR: \nDerived Values:
         Root Dir: /h/cosmovisor
      Upgrade Dir: /h/cosmovisor/upgrades
      Genesis Bin: /h/cosmovisor/genesis/bin/simd
   Monitored File: /h/data/upgrade-info.json
  Data Backup Dir: /h
";

    /// `VAR=value => line expected in detail_string()` (only that one set besides home and name).
    const GOOD_ENV: &str = r"
DAEMON_HOME=/root/.panacea => DAEMON_DATA_BACKUP_DIR: /root/.panacea
DAEMON_NAME=panacead => Genesis Bin: /h/cosmovisor/genesis/bin/panacead
DAEMON_ALLOW_DOWNLOAD_BINARIES=TRUE => DAEMON_ALLOW_DOWNLOAD_BINARIES: true
DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM=true => DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM: true
DAEMON_RESTART_AFTER_UPGRADE=False => DAEMON_RESTART_AFTER_UPGRADE: false
DAEMON_RESTART_DELAY=1m30s => DAEMON_RESTART_DELAY: 1m30s
DAEMON_SHUTDOWN_GRACE=90m => DAEMON_SHUTDOWN_GRACE: 1h30m0s
DAEMON_POLL_INTERVAL=1500ms => DAEMON_POLL_INTERVAL: 1.5s
DAEMON_DATA_BACKUP_DIR=/backup => Data Backup Dir: /backup
UNSAFE_SKIP_BACKUP=true => UNSAFE_SKIP_BACKUP: true
DAEMON_PREUPGRADE_MAX_RETRIES=3 => DAEMON_PREUPGRADE_MAX_RETRIES: 3
DAEMON_GRPC_ADDRESS=https://g:1 => DAEMON_GRPC_ADDRESS: https://g:1
COSMOVISOR_DISABLE_LOGS=TrUe => COSMOVISOR_DISABLE_LOGS: true
COSMOVISOR_COLOR_LOGS=false => COSMOVISOR_COLOR_LOGS: false
COSMOVISOR_TIMEFORMAT_LOGS=rfc3339 => COSMOVISOR_TIMEFORMAT_LOGS: 2006-01-02T15:04:05Z07:00
COSMOVISOR_TIMEFORMAT_LOGS= => COSMOVISOR_TIMEFORMAT_LOGS: \n
COSMOVISOR_CUSTOM_PREUPGRADE=pre.sh => COSMOVISOR_CUSTOM_PREUPGRADE: pre.sh
COSMOVISOR_DISABLE_RECASE=true => COSMOVISOR_DISABLE_RECASE: true
COSMOVISOR_BACKUP_KEEP=2 => COSMOVISOR_BACKUP_KEEP: 2
COSMOVISOR_LOG_FORMAT=JSON => COSMOVISOR_LOG_FORMAT: json
COSMOVISOR_METRICS_ADDR=127.0.0.1:9102 => COSMOVISOR_METRICS_ADDR: 127.0.0.1:9102
COSMOVISOR_METRICS_ADDR=[::1]:9102 => COSMOVISOR_METRICS_ADDR: [::1]:9102
";

    /// `VAR=value => the one exact error` (only that variable set besides home and name).
    const BAD_ENV: &str = r#"
DAEMON_HOME=rel/home => DAEMON_HOME must be an absolute path, got "rel/home"
DAEMON_NAME=a/b => DAEMON_NAME must be a plain file name (no '/' or NUL, not . or ..), got "a/b"
DAEMON_NAME=.. => DAEMON_NAME must be a plain file name (no '/' or NUL, not . or ..), got ".."
DAEMON_ALLOW_DOWNLOAD_BINARIES=yes => DAEMON_ALLOW_DOWNLOAD_BINARIES: invalid boolean "yes" (expected true or false)
DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM=1 => DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM: invalid boolean "1" (expected true or false)
DAEMON_RESTART_AFTER_UPGRADE=truee => DAEMON_RESTART_AFTER_UPGRADE: invalid boolean "truee" (expected true or false)
DAEMON_RESTART_DELAY=0s => DAEMON_RESTART_DELAY: must be greater than 0, got "0s" (unset it to disable the delay)
DAEMON_RESTART_DELAY=-1s => DAEMON_RESTART_DELAY: invalid duration "-1s": negative durations are not allowed (expected a Go duration such as 300ms or 1m30s)
DAEMON_SHUTDOWN_GRACE=0 => DAEMON_SHUTDOWN_GRACE: must be greater than 0, got "0" (unset it to use the default of 30s)
DAEMON_SHUTDOWN_GRACE=10 => DAEMON_SHUTDOWN_GRACE: invalid duration "10": missing unit (expected a Go duration such as 300ms or 1m30s)
DAEMON_POLL_INTERVAL=3x => DAEMON_POLL_INTERVAL: invalid duration "3x" (expected a Go duration such as 300ms or 1m30s)
DAEMON_POLL_INTERVAL=600 => DAEMON_POLL_INTERVAL: invalid duration "600": missing unit (expected a Go duration such as 300ms or 1m30s)
DAEMON_POLL_INTERVAL=0ms => DAEMON_POLL_INTERVAL: must be greater than 0, got "0ms" (unset it to use the default of 300ms)
DAEMON_POLL_INTERVAL=9999999h => DAEMON_POLL_INTERVAL: invalid duration "9999999h": out of range (expected a Go duration such as 300ms or 1m30s)
DAEMON_DATA_BACKUP_DIR=bak => DAEMON_DATA_BACKUP_DIR must be an absolute path, got "bak"
UNSAFE_SKIP_BACKUP=on => UNSAFE_SKIP_BACKUP: invalid boolean "on" (expected true or false)
DAEMON_PREUPGRADE_MAX_RETRIES=-1 => DAEMON_PREUPGRADE_MAX_RETRIES: invalid integer "-1" (expected a whole number 0 or greater)
DAEMON_PREUPGRADE_MAX_RETRIES=x => DAEMON_PREUPGRADE_MAX_RETRIES: invalid integer "x" (expected a whole number 0 or greater)
COSMOVISOR_DISABLE_LOGS=no => COSMOVISOR_DISABLE_LOGS: invalid boolean "no" (expected true or false)
COSMOVISOR_COLOR_LOGS=t => COSMOVISOR_COLOR_LOGS: invalid boolean "t" (expected true or false)
COSMOVISOR_TIMEFORMAT_LOGS=iso => COSMOVISOR_TIMEFORMAT_LOGS: invalid time format "iso" (expected one of layout, ansic, unixdate, rubydate, rfc822, rfc822z, rfc850, rfc1123, rfc1123z, rfc3339, rfc3339nano, kitchen, or empty for none)
COSMOVISOR_TIMEFORMAT_LOGS=Kitchen => COSMOVISOR_TIMEFORMAT_LOGS: invalid time format "Kitchen" (expected one of layout, ansic, unixdate, rubydate, rfc822, rfc822z, rfc850, rfc1123, rfc1123z, rfc3339, rfc3339nano, kitchen, or empty for none)
COSMOVISOR_DISABLE_RECASE=2 => COSMOVISOR_DISABLE_RECASE: invalid boolean "2" (expected true or false)
COSMOVISOR_BACKUP_KEEP=0 => COSMOVISOR_BACKUP_KEEP: must be greater than 0, got "0" (unset it to keep all backups)
COSMOVISOR_BACKUP_KEEP=all => COSMOVISOR_BACKUP_KEEP: invalid integer "all" (expected a whole number 1 or greater, or empty to keep all backups)
COSMOVISOR_LOG_FORMAT=xml => COSMOVISOR_LOG_FORMAT: invalid log format "xml" (expected console or json)
COSMOVISOR_METRICS_ADDR=localhost:9102 => COSMOVISOR_METRICS_ADDR: invalid address "localhost:9102" (expected an IP address and port such as 127.0.0.1:9102, or empty for no metrics)
COSMOVISOR_METRICS_ADDR=9102 => COSMOVISOR_METRICS_ADDR: invalid address "9102" (expected an IP address and port such as 127.0.0.1:9102, or empty for no metrics)
"#;

    /// `one line added to a valid config.toml => the one exact error`.
    const BAD_FILE: &str = r#"
daemon_poll_interval = true => config file /h/cosmovisor/config.toml: key daemon_poll_interval must be a duration string like '300ms' or an integer of nanoseconds
daemon_restart_delay = -5 => config file /h/cosmovisor/config.toml: key daemon_restart_delay: invalid value "-5" (expected a Go duration such as '300ms' or '1m30s', or a non-negative integer of nanoseconds)
daemon_shutdown_grace = '600' => config file /h/cosmovisor/config.toml: key daemon_shutdown_grace: invalid value "600" (expected a Go duration such as '300ms' or '1m30s', or a non-negative integer of nanoseconds)
unsafe_skip_backup = 'true' => config file /h/cosmovisor/config.toml: key unsafe_skip_backup must be a boolean (true or false)
daemon_grpc_address = 9090 => config file /h/cosmovisor/config.toml: key daemon_grpc_address must be a string
daemon_preupgrade_max_retries = -1 => config file /h/cosmovisor/config.toml: key daemon_preupgrade_max_retries: invalid value "-1" (expected an integer 0 or greater)
daemon_preupgrade_max_retries = '3' => config file /h/cosmovisor/config.toml: key daemon_preupgrade_max_retries must be an integer 0 or greater
cosmovisor_backup_keep = 0 => config file /h/cosmovisor/config.toml: key cosmovisor_backup_keep: invalid value "0" (expected an integer 1 or greater, or no key to keep all backups)
cosmovisor_timeformat_logs = 'iso' => config file /h/cosmovisor/config.toml: key cosmovisor_timeformat_logs: invalid value "iso" (expected one of layout, ansic, unixdate, rubydate, rfc822, rfc822z, rfc850, rfc1123, rfc1123z, rfc3339, rfc3339nano, kitchen, or empty for none)
cosmovisor_log_format = 'xml' => COSMOVISOR_LOG_FORMAT: invalid log format "xml" (expected console or json)
cosmovisor_metrics_addr = ':9102' => COSMOVISOR_METRICS_ADDR: invalid address ":9102" (expected an IP address and port such as 127.0.0.1:9102, or empty for no metrics)
cosmovisor_metrics_addr = 9102 => config file /h/cosmovisor/config.toml: key cosmovisor_metrics_addr must be a string
daemon_data_backup_dir = 'rel' => DAEMON_DATA_BACKUP_DIR must be an absolute path, got "rel"
daemon_poll_interval = [ => config file /h/cosmovisor/config.toml: invalid TOML: line 3, column 25: unclosed array, expected `]`
daemon_home = '/x' => config file /h/cosmovisor/config.toml: invalid TOML: line 3, column 1: duplicate key
"#;

    fn table(text: &str) -> impl Iterator<Item = (&str, &str)> {
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split_once(" => ").expect("every row has \" => \""))
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + use<> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), OsString::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    /// Home and name plus one `VAR=value` (which may override them).
    fn env_with(assignment: &str) -> Vec<(String, String)> {
        let (var, value) = assignment.split_once('=').unwrap_or((assignment, ""));
        let mut env = HashMap::from([(DAEMON_HOME, "/h"), (DAEMON_NAME, "simd")]);
        env.insert(var, value);
        env.into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn from_env(env: &[(String, String)]) -> Result<Config, ConfigErrors> {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Config::from_vars(vars(&env))
    }

    fn from_file(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        Config::from_file_and_vars(Path::new(FILE), text, vars(env))
    }

    fn messages(r: Result<Config, ConfigErrors>) -> Vec<String> {
        match r {
            Ok(c) => panic!("expected errors, got {c:?}"),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    fn defaults() -> Config {
        Config {
            home: "/h".into(),
            name: "simd".into(),
            allow_download_binaries: false,
            download_must_have_checksum: false,
            restart_after_upgrade: true,
            restart_delay: Duration::ZERO,
            shutdown_grace: Duration::from_secs(30),
            poll_interval: Duration::from_millis(300),
            unsafe_skip_backup: false,
            data_backup_dir: "/h".into(),
            preupgrade_max_retries: 0,
            grpc_address: "localhost:9090".into(),
            disable_logs: false,
            color_logs: true,
            time_format: TimeFormat::Kitchen,
            custom_preupgrade: None,
            disable_recase: false,
            backup_keep: None,
            log_format: LogFormat::Console,
            backup_mode: BackupMode::Copy,
            metrics_addr: None,
        }
    }

    #[test]
    fn defaults_and_empty_values() {
        assert_eq!(from_env(&env_with("")), Ok(defaults()));
        // Set-but-empty is the same as unset (the time format is the exception, see GOOD_ENV).
        for var in DETAIL
            .lines()
            .filter_map(|l| l.trim().split_once(':'))
            .map(|p| p.0)
        {
            if var.contains('_')
                && ![DAEMON_HOME, DAEMON_NAME, COSMOVISOR_TIMEFORMAT_LOGS].contains(&var)
            {
                assert_eq!(
                    from_env(&env_with(&format!("{var}="))),
                    Ok(defaults()),
                    "{var}"
                );
            }
        }
        assert_eq!(defaults().detail_string(), DETAIL);
    }

    #[test]
    fn good_env_values() {
        for (assignment, line) in table(GOOD_ENV) {
            let detail = from_env(&env_with(assignment)).map(|c| c.detail_string());
            let line = format!("  {}\n", line.replace("\\n", ""));
            assert!(
                detail.as_ref().is_ok_and(|d| d.contains(&line)),
                "{assignment}: {detail:?}"
            );
        }
    }

    #[test]
    fn bad_env_values() {
        for (assignment, expected) in table(BAD_ENV) {
            assert_eq!(
                messages(from_env(&env_with(assignment))),
                [expected],
                "{assignment}"
            );
        }
    }

    #[test]
    fn bad_file_values() {
        for (line, expected) in table(BAD_FILE) {
            let text = format!("daemon_home = '/h'\ndaemon_name = 'simd'\n{line}\n");
            assert_eq!(messages(from_file(&text, &[])), [expected], "{line}");
        }
    }

    #[test]
    fn missing_required_and_skip_backup() {
        assert_eq!(
            messages(Config::from_vars(vars(&[(DAEMON_HOME, "")]))),
            [
                "DAEMON_NAME is not set (set it to the daemon binary's file name, e.g. panacead)",
                "DAEMON_HOME is not set (set it to the node's home directory, e.g. /root/.panacea)",
            ]
        );
        assert_eq!(messages(from_file("", &[])).len(), 2);
        // A relative home is reported once, not again for the backup dir that defaults to it.
        assert_eq!(messages(from_env(&env_with("DAEMON_HOME=h"))).len(), 1);
        // The backup dir is not checked when backups are skipped.
        let env = [
            (DAEMON_HOME, "/h"),
            (DAEMON_NAME, "n"),
            (UNSAFE_SKIP_BACKUP, "true"),
        ];
        let env = [&env[..], &[(DAEMON_DATA_BACKUP_DIR, "rel")]].concat();
        let c = Config::from_vars(vars(&env)).map(|c| c.data_backup_dir);
        assert_eq!(c, Ok(PathBuf::from("rel")));
    }

    #[test]
    fn non_utf8_value_names_the_variable() {
        use std::os::unix::ffi::OsStringExt;
        let r = Config::from_vars(|k| match k {
            DAEMON_HOME => Some(OsString::from_vec(vec![b'/', b'h', 0xff])),
            DAEMON_NAME => Some("simd".into()),
            _ => None,
        });
        let want =
            "DAEMON_HOME: value \"/h\u{fffd}\" is not valid UTF-8 (use only UTF-8 characters)";
        assert_eq!(messages(r), [want]);
    }

    #[test]
    fn all_bad_collects_every_error_in_order() {
        let order = [
            DAEMON_ALLOW_DOWNLOAD_BINARIES,
            DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM,
            DAEMON_RESTART_AFTER_UPGRADE,
            UNSAFE_SKIP_BACKUP,
            COSMOVISOR_DISABLE_LOGS,
            COSMOVISOR_COLOR_LOGS,
            COSMOVISOR_TIMEFORMAT_LOGS,
            COSMOVISOR_DISABLE_RECASE,
            DAEMON_POLL_INTERVAL,
            DAEMON_RESTART_DELAY,
            DAEMON_SHUTDOWN_GRACE,
            DAEMON_PREUPGRADE_MAX_RETRIES,
            COSMOVISOR_BACKUP_KEEP,
            COSMOVISOR_LOG_FORMAT,
            COSMOVISOR_BACKUP_MODE,
            COSMOVISOR_METRICS_ADDR,
            DAEMON_NAME,
            DAEMON_HOME,
            DAEMON_DATA_BACKUP_DIR,
        ];
        // Listed in reverse so the order of the errors cannot come from the order of the variables.
        let env: Vec<(&str, &str)> = order.iter().rev().map(|v| (*v, "x/y")).collect();
        let err = Config::from_vars(vars(&env)).expect_err("all bad");
        let got: Vec<String> = err.0.iter().map(ToString::to_string).collect();
        let vars: Vec<&str> = got
            .iter()
            .filter_map(|m| m.split([':', ' ']).next())
            .collect();
        assert_eq!(vars, order);
        assert_eq!(got.len(), 19);
        assert_eq!(err.to_string(), got.join("\n"));
    }

    #[test]
    fn time_and_log_formats() {
        let names = "layout ansic unixdate rubydate rfc822 rfc822z rfc850 rfc1123 rfc1123z rfc3339 \
                     rfc3339nano kitchen";
        for name in names.split(' ') {
            let tf = TimeFormat::parse(name).expect("known name");
            assert_eq!(tf.name(), name);
            assert!(!tf.go_layout().is_empty() && tf.strftime().is_some());
        }
        let k = TimeFormat::Kitchen;
        assert_eq!((k.go_layout(), k.strftime()), ("3:04PM", Some("%-I:%M%p")));
        let r = TimeFormat::Rfc3339;
        assert_eq!(
            (r.go_layout(), r.strftime()),
            ("2006-01-02T15:04:05Z07:00", Some("%Y-%m-%dT%H:%M:%S%:z"))
        );
        assert_eq!(TimeFormat::Ansic.strftime(), Some("%a %b %e %H:%M:%S %Y"));
        assert_eq!(TimeFormat::parse(""), Some(TimeFormat::None));
        assert_eq!(TimeFormat::parse("RFC3339"), None);
        let none = TimeFormat::None;
        assert_eq!(
            (none.name(), none.go_layout(), none.strftime()),
            ("", "", None)
        );
        assert_eq!(LogFormat::parse("Json"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("text"), None);
    }

    #[test]
    fn file_with_env_override() {
        let text = "daemon_home = '/h'\ndaemon_name = 'simd'\ndaemon_poll_interval = 1000000000\n\
                    daemon_restart_delay = '2s'\ncosmovisor_color_logs = false\nunknown_key = 1\n\
                    daemon_grpc_address = 'g:1'\ncosmovisor_backup_keep = 4\n\
                    daemon_preupgrade_max_retries = 7\ncosmovisor_timeformat_logs = 'rfc3339'\n";
        let mut want = Config {
            poll_interval: Duration::from_secs(1),
            restart_delay: Duration::from_secs(2),
            color_logs: false,
            grpc_address: "g:1".into(),
            backup_keep: Some(4),
            preupgrade_max_retries: 7,
            time_format: TimeFormat::Rfc3339,
            ..defaults()
        };
        assert_eq!(from_file(text, &[]), Ok(want.clone()));
        // The environment wins over the file; an empty variable does not (viper's rule).
        let env = [
            (DAEMON_NAME, "panacead"),
            (DAEMON_POLL_INTERVAL, "5s"),
            (COSMOVISOR_COLOR_LOGS, ""),
            (COSMOVISOR_TIMEFORMAT_LOGS, ""),
        ];
        want.name = "panacead".into();
        want.poll_interval = Duration::from_secs(5);
        assert_eq!(from_file(text, &env), Ok(want));
        // Env values are just as strict in file mode.
        assert_eq!(
            messages(from_file(text, &[(DAEMON_RESTART_AFTER_UPGRADE, "1")])),
            [r#"DAEMON_RESTART_AFTER_UPGRADE: invalid boolean "1" (expected true or false)"#]
        );
    }

    #[test]
    fn file_zero_durations_and_missing_keys_give_defaults() {
        let text = "daemon_home = '/h'\ndaemon_name = 'simd'\ndaemon_restart_delay = 0\n\
                    daemon_shutdown_grace = 0\ndaemon_poll_interval = '0s'\n\
                    daemon_data_backup_dir = ''\ncosmovisor_custom_preupgrade = ''\n";
        assert_eq!(from_file(text, &[]), Ok(defaults()));
        let text = "daemon_home = '/h'\nDAEMON_NAME = 'simd'\ndaemon_shutdown_grace = 300000000\n\
                    daemon_poll_interval = '1h2m'\ncosmovisor_timeformat_logs = ''\n";
        let want = Config {
            shutdown_grace: Duration::from_millis(300),
            poll_interval: Duration::from_secs(3720),
            time_format: TimeFormat::None,
            ..defaults()
        };
        assert_eq!(from_file(text, &[]), Ok(want));
    }

    #[test]
    fn unreadable_file_names_the_path() {
        let r = Config::load(Some(Path::new("/nonexistent-dir/config.toml")));
        let want = "config file /nonexistent-dir/config.toml: cannot read it: \
                    No such file or directory (check the --cosmovisor-config path)";
        assert_eq!(messages(r), [want]);
    }

    #[test]
    fn check_filesystem_backup_dir() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let check = |d: PathBuf, skip: bool| {
            let c = Config {
                data_backup_dir: d,
                unsafe_skip_backup: skip,
                ..defaults()
            };
            c.check_filesystem()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert!(check(dir.to_path_buf(), false).is_empty());
        assert!(check("/nope".into(), true).is_empty());
        assert_eq!(
            check("/nope".into(), false),
            [
                "DAEMON_DATA_BACKUP_DIR must be an existing directory, got \"/nope\": \
                 No such file or directory (create it or point it elsewhere)"
            ]
        );
        let file = dir.join("Cargo.toml");
        let want = format!(
            "DAEMON_DATA_BACKUP_DIR must be an existing directory, got {:?}: not a directory \
             (create it or point it elsewhere)",
            file.display().to_string()
        );
        assert_eq!(check(file, false), [want]);
    }

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
                    cosmovisor_backup_mode = 'copy'\n";
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
            poll_interval: Duration::from_nanos(1),
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
        };
        let text = odd.to_toml();
        assert!(
            text.ends_with("\ncosmovisor_metrics_addr = '0.0.0.0:9102'\n"),
            "{text}"
        );
        assert!(text.contains("\ncosmovisor_backup_keep = 3\n"), "{text}");
        assert!(text.contains("\ndaemon_restart_delay = '1.5s'\n"), "{text}");
        assert_eq!(from_file(&text, &[]), Ok(odd));
    }

    #[test]
    fn go_duration_parse_table() {
        let ok = [
            ("0", 0),
            ("+0", 0),
            ("-0", 0),
            ("-0s", 0),
            ("0s", 0),
            ("300ms", 300_000_000),
            ("1m30s", 90_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("2h45m", 9_900_000_000_000),
            ("1h2m3.5s", 3_723_500_000_000),
            (".5s", 500_000_000),
            ("1.s", 1_000_000_000),
            ("+5s", 5_000_000_000),
            ("1ns", 1),
            ("2us", 2_000),
            ("3\u{b5}s", 3_000),
            ("4\u{3bc}s", 4_000),
            ("1.0000000001s", 1_000_000_000),
            ("2562047h47m16.854775807s", i64::MAX.unsigned_abs()),
        ];
        for (s, nanos) in ok {
            assert_eq!(parse_go_duration(s), Ok(Duration::from_nanos(nanos)), "{s}");
        }
        let bad = [
            ("", "empty duration"),
            ("5", "missing unit in duration \"5\""),
            ("1h30", "missing unit in duration \"1h30\""),
            ("-1s", "negative duration \"-1s\" is not allowed"),
            ("3x", "unknown unit \"x\" in duration \"3x\""),
            ("1S", "unknown unit \"S\" in duration \"1S\""),
            (".s", "invalid duration \".s\""),
            ("s", "invalid duration \"s\""),
            ("-", "invalid duration \"-\""),
            (" 1s", "invalid duration \" 1s\""),
            (
                "2562047h47m16.854775808s",
                "duration \"2562047h47m16.854775808s\" is out of range",
            ),
        ];
        for (s, e) in bad {
            assert_eq!(parse_go_duration(s), Err(e.to_string()), "{s}");
        }
    }

    #[test]
    fn go_duration_format_table() {
        let rows = [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1\u{b5}s"),
            (1_000, "1\u{b5}s"),
            (300_000_000, "300ms"),
            (2_500_000, "2.5ms"),
            (1_500_000_000, "1.5s"),
            (30_000_000_000, "30s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_500_000_000, "1h2m3.5s"),
            (60_000_000_001, "1m0.000000001s"),
        ];
        for (nanos, s) in rows {
            assert_eq!(format_go_duration(Duration::from_nanos(nanos)), s);
            assert_eq!(parse_go_duration(s), Ok(Duration::from_nanos(nanos)), "{s}");
        }
    }
}
