//! The configuration's errors: one [`ConfigError`] per problem, each a single line naming the
//! variable (or file and key), the offending value and what is expected, and [`ConfigErrors`],
//! all of them in upstream's order. Also the helpers that turn I/O and TOML errors into the
//! one-line reasons these messages carry.
//!
//! It does not decide what is an error; that is `reader.rs` and [`super::Config`]'s checks.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    COSMOVISOR_BACKUP_KEEP, COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT, DAEMON_NAME, DAEMON_POLL_INTERVAL,
    DAEMON_RESTART_DELAY, DAEMON_SHUTDOWN_GRACE,
};

const DURATION_HINT: &str = "a Go duration such as 300ms or 1m30s";
pub(super) const TIME_FORMAT_HINT: &str = "one of layout, ansic, unixdate, rubydate, rfc822, rfc822z, rfc850, \
     rfc1123, rfc1123z, rfc3339, rfc3339nano, kitchen, or empty for none";

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
    #[error(
        "COSMOVISOR_BACKUP_MODE: invalid backup mode {value:?} (expected auto, copy, checkpoint or reflink)"
    )]
    InvalidBackupMode { value: String },
    #[error(
        "COSMOVISOR_METRICS_ADDR: invalid address {value:?} (expected an IP address and port such \
         as 127.0.0.1:9102, or empty for no metrics)"
    )]
    InvalidMetricsAddr { value: String },
    #[error(
        "COSMOVISOR_NODE_RPC: invalid URL {value:?} (expected the node's CometBFT RPC such as \
         http://127.0.0.1:26657, or empty for that default)"
    )]
    InvalidNodeRpc { value: String },
    #[error(
        "COSMOVISOR_WEBHOOK_URL: invalid URL {} (expected http:// or https:// with a host, such as \
         https://hooks.slack.com/services/…, or empty for no webhook)",
        crate::redact::redact(value)
    )]
    InvalidWebhookUrl { value: String },
    #[error(
        "DAEMON_DATA_BACKUP_DIR must be an existing directory, got {value:?}: {reason} \
         (create it or point it elsewhere)"
    )]
    BackupDirMissing { value: String, reason: String },
    #[error(
        "DAEMON_DATA_BACKUP_DIR must not be empty (config file {}: set daemon_data_backup_dir to an absolute folder, or remove the key to back up into DAEMON_HOME)",
        path.display()
    )]
    BackupDirEmpty { path: PathBuf },
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

impl crate::exit::ExitCode for ConfigError {
    fn exit_code(&self) -> u8 {
        crate::exit::CONFIG
    }
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
        COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT => "unset it to use the default of 60s",
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

/// A value Go accepts that we use differently: never a failure, logged once as a warning when
/// logging starts (README, "Differences from Go cosmovisor").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigWarning {
    #[error(
        "{var}: {value:?} is below the minimum of {}, polling every {} instead (set it to {} or \
         more to silence this warning)",
        super::format_go_duration(*min),
        super::format_go_duration(*min),
        super::format_go_duration(*min)
    )]
    RaisedToMinimum {
        var: &'static str,
        value: String,
        min: Duration,
    },
    #[error(
        "config file {}: key {key}: negative duration {value:?}, using {} instead (remove the key \
         or set a positive duration to silence this warning)",
        path.display(),
        super::format_go_duration(*used)
    )]
    NegativeDuration {
        path: PathBuf,
        key: String,
        value: String,
        used: Duration,
    },
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

impl crate::exit::ExitCode for ConfigErrors {
    fn exit_code(&self) -> u8 {
        crate::exit::CONFIG
    }
}

/// One line out of a toml error: its message plus the line and column where it starts.
pub(super) fn toml_reason(text: &str, e: &toml::de::Error) -> String {
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
pub(super) fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}
