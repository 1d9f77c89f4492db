//! Reading the configuration's values: the environment first, then the `config.toml` table in file
//! mode, each variable parsed by its type (boolean, Go duration, integer, text, enum, address)
//! with every problem collected, and the whole assembled into a [`Config`] in upstream's order.
//!
//! It does not own the types it fills ([`Config`] and its enums live in `mod.rs`), the Go duration
//! grammar (`duration.rs`) or the error texts (`error.rs`).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::duration::{DurationError, parse_duration};
use super::error::TIME_FORMAT_HINT;
use super::vars::{bool_default, duration_default, text_default, toml_key};
use super::{
    BackupMode, COSMOVISOR_BACKUP_KEEP, COSMOVISOR_BACKUP_MODE, COSMOVISOR_COLOR_LOGS,
    COSMOVISOR_CUSTOM_PREUPGRADE, COSMOVISOR_DISABLE_LOGS, COSMOVISOR_DISABLE_RECASE,
    COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT, COSMOVISOR_LOG_FORMAT, COSMOVISOR_METRICS_ADDR,
    COSMOVISOR_NODE_RPC, COSMOVISOR_PLAN_CHECK_INTERVAL, COSMOVISOR_TIMEFORMAT_LOGS,
    COSMOVISOR_WEBHOOK_URL, Config, ConfigError, ConfigErrors, ConfigWarning,
    DAEMON_ALLOW_DOWNLOAD_BINARIES, DAEMON_DATA_BACKUP_DIR, DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM,
    DAEMON_GRPC_ADDRESS, DAEMON_HOME, DAEMON_NAME, DAEMON_POLL_INTERVAL,
    DAEMON_PREUPGRADE_MAX_RETRIES, DAEMON_RESTART_AFTER_UPGRADE, DAEMON_RESTART_DELAY,
    DAEMON_SHUTDOWN_GRACE, LogFormat, TimeFormat, UNSAFE_SKIP_BACKUP,
};

/// The shortest `DAEMON_POLL_INTERVAL` accepted.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);
const FILE_DURATION_TYPE: &str = "a duration string like '300ms' or an integer of nanoseconds";
const FILE_DURATION_VALUE: &str =
    "a Go duration such as '300ms' or '1m30s', or an integer of nanoseconds";

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

pub(super) struct Reader<'a, F> {
    vars: F,
    file: Option<(&'a Path, &'a toml::Table)>,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
}

impl<'a, F: Fn(&str) -> Option<OsString>> Reader<'a, F> {
    pub(super) fn new(vars: F, file: Option<(&'a Path, &'a toml::Table)>) -> Self {
        Reader {
            vars,
            file,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
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
        let (path, key) = (self.file_path(), toml_key(var));
        let error = ConfigError::FileWrongType {
            path,
            key,
            expected,
        };
        self.errors.push(error);
    }

    fn invalid_value(&mut self, var: &str, value: String, expected: &'static str) {
        let (path, key) = (self.file_path(), toml_key(var));
        let error = ConfigError::FileInvalidValue {
            path,
            key,
            value,
            expected,
        };
        self.errors.push(error);
    }

    /// A boolean; unset, empty or unusable gives its default from [`super::VARS`].
    fn bool(&mut self, var: &'static str) -> bool {
        let default = bool_default(var);
        match self.raw(var) {
            Raw::Unset | Raw::Bad => default,
            Raw::Env(s) => match s.to_ascii_lowercase().as_str() {
                "" => default,
                "true" => true,
                "false" => false,
                // Parity: in file mode viper decodes an overriding variable with Go's
                // strconv.ParseBool, which also takes 1, t, T, 0, f and F.
                "1" | "t" if self.file.is_some() => true,
                "0" | "f" if self.file.is_some() => false,
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

    /// `DAEMON_POLL_INTERVAL`: any value upstream takes; below [`MIN_POLL_INTERVAL`] it is
    /// raised to that with a warning (`1ns` kept a core busy polling).
    fn poll_interval(&mut self) -> Duration {
        let interval = self.duration(DAEMON_POLL_INTERVAL);
        if interval >= MIN_POLL_INTERVAL {
            return interval;
        }
        let value = match self.raw(DAEMON_POLL_INTERVAL) {
            Raw::Env(s) => s,
            Raw::File(toml::Value::String(s)) => s.clone(),
            Raw::File(value) => value.to_string(),
            Raw::Unset | Raw::Bad => String::new(),
        };
        self.warnings.push(ConfigWarning::RaisedToMinimum {
            var: DAEMON_POLL_INTERVAL,
            value,
            min: MIN_POLL_INTERVAL,
        });
        MIN_POLL_INTERVAL
    }

    /// A negative duration in the file, which upstream accepts there (its > 0 checks are for the
    /// environment only): the default, with a warning.
    fn negative_in_file(&mut self, var: &str, value: String, default: Duration) -> Duration {
        let (path, key) = (self.file_path(), toml_key(var));
        self.warnings.push(ConfigWarning::NegativeDuration {
            path,
            key,
            value,
            used: default,
        });
        default
    }

    /// Env values must be > 0 when set; in the file, 0 (Go's `init` writes it for unset values)
    /// means the default.
    fn duration(&mut self, var: &'static str) -> Duration {
        let default = duration_default(var);
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
                Err(DurationError::Negative) => self.negative_in_file(var, s.clone(), default),
                Err(_) => {
                    self.invalid_value(var, s.clone(), FILE_DURATION_VALUE);
                    default
                }
            },
            Raw::File(toml::Value::Integer(n)) => match u64::try_from(*n) {
                Ok(0) => default,
                Ok(n) => Duration::from_nanos(n),
                Err(_) => self.negative_in_file(var, n.to_string(), default),
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

    /// `DAEMON_DATA_BACKUP_DIR`; defaults to the home, whose own errors are reported apart.
    fn data_backup_dir(&mut self, home: &Path, unsafe_skip_backup: bool) -> PathBuf {
        match self.text(DAEMON_DATA_BACKUP_DIR) {
            Text::Set(s) if !s.is_empty() => {
                if !unsafe_skip_backup && !Path::new(&s).is_absolute() {
                    let value = s.clone();
                    self.errors.push(ConfigError::NotAbsolute {
                        var: DAEMON_DATA_BACKUP_DIR,
                        value,
                    });
                }
                PathBuf::from(s)
            }
            // Parity: Go's validate() rejects an empty backup dir in config.toml (only env mode
            // defaults it to the home). Text::Set("") comes only from the file here.
            Text::Set(_) if !unsafe_skip_backup => {
                if let Some((path, _)) = self.file {
                    self.errors.push(ConfigError::BackupDirEmpty {
                        path: path.to_path_buf(),
                    });
                }
                home.to_path_buf()
            }
            _ => home.to_path_buf(),
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

    fn backup_mode(&mut self) -> BackupMode {
        match self.non_empty(COSMOVISOR_BACKUP_MODE) {
            None => BackupMode::Auto,
            Some(s) => BackupMode::parse(&s).unwrap_or_else(|| {
                self.errors
                    .push(ConfigError::InvalidBackupMode { value: s });
                BackupMode::Auto
            }),
        }
    }

    /// `COSMOVISOR_METRICS_ADDR`: an IP address and port; unset or empty gives `None`.
    fn metrics_addr(&mut self) -> Option<SocketAddr> {
        let value = self.non_empty(COSMOVISOR_METRICS_ADDR)?;
        if let Ok(addr) = value.trim().parse::<SocketAddr>() {
            return Some(addr);
        }
        self.errors.push(ConfigError::InvalidMetricsAddr { value });
        None
    }

    /// `COSMOVISOR_NODE_RPC`: an `http://` or `https://` URL with a host; unset or empty gives
    /// `None` (the node's own `[rpc] laddr` is used: `supervisor/node_rpc.rs`).
    fn node_rpc(&mut self) -> Option<String> {
        self.http_url(COSMOVISOR_NODE_RPC, |value| ConfigError::InvalidNodeRpc {
            value,
        })
        .map(|url| url.trim_end_matches('/').to_owned())
    }

    /// `COSMOVISOR_PLAN_CHECK_INTERVAL`: a Go duration (default from [`super::VARS`]);
    /// `0` or `off` turns the plan watcher off.
    fn plan_check_interval(&mut self) -> Option<Duration> {
        let default = duration_default(COSMOVISOR_PLAN_CHECK_INTERVAL);
        let Some(value) = self.non_empty(COSMOVISOR_PLAN_CHECK_INTERVAL) else {
            return Some(default);
        };
        let trimmed = value.trim();
        if trimmed.eq_ignore_ascii_case("off") || trimmed == "0" {
            return None;
        }
        match parse_duration(trimmed) {
            Ok(d) if d.is_zero() => None,
            Ok(d) => Some(d),
            Err(e) => {
                let reason = e.reason().to_string();
                self.errors.push(ConfigError::InvalidDuration {
                    var: COSMOVISOR_PLAN_CHECK_INTERVAL,
                    value,
                    reason,
                });
                Some(default)
            }
        }
    }

    /// `COSMOVISOR_WEBHOOK_URL`: an `http://` or `https://` URL with a host; unset or empty gives
    /// `None`.
    fn webhook_url(&mut self) -> Option<String> {
        self.http_url(COSMOVISOR_WEBHOOK_URL, |value| {
            ConfigError::InvalidWebhookUrl { value }
        })
    }

    /// `var` as an `http://` or `https://` URL with a host (trimmed); unset or empty gives `None`,
    /// anything else the error `invalid` makes of the value.
    fn http_url(
        &mut self,
        var: &'static str,
        invalid: fn(String) -> ConfigError,
    ) -> Option<String> {
        let value = self.non_empty(var)?;
        let url = value.trim().to_owned();
        match url::Url::parse(&url) {
            Ok(parsed)
                if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() =>
            {
                Some(url)
            }
            _ => {
                self.errors.push(invalid(value));
                None
            }
        }
    }

    pub(super) fn read(mut self) -> Result<Config, ConfigErrors> {
        // Parse errors, in upstream v1.5+ order.
        let allow_download_binaries = self.bool(DAEMON_ALLOW_DOWNLOAD_BINARIES);
        let download_must_have_checksum = self.bool(DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM);
        let restart_after_upgrade = self.bool(DAEMON_RESTART_AFTER_UPGRADE);
        let unsafe_skip_backup = self.bool(UNSAFE_SKIP_BACKUP);
        let disable_logs = self.bool(COSMOVISOR_DISABLE_LOGS);
        let color_logs = self.bool(COSMOVISOR_COLOR_LOGS);
        let time_format = self.time_format();
        let disable_recase = self.bool(COSMOVISOR_DISABLE_RECASE);
        let poll_interval = self.poll_interval();
        let restart_delay = self.duration(DAEMON_RESTART_DELAY);
        let shutdown_grace = self.duration(DAEMON_SHUTDOWN_GRACE);
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
        let download_idle_timeout = self.duration(COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT);
        let node_rpc = self.node_rpc();
        let plan_check_interval = self.plan_check_interval();
        let webhook_url = self.webhook_url();
        let grpc_address = self
            .non_empty(DAEMON_GRPC_ADDRESS)
            .unwrap_or_else(|| text_default(DAEMON_GRPC_ADDRESS).to_owned());
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
        let data_backup_dir = self.data_backup_dir(&home, unsafe_skip_backup);
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
            download_idle_timeout,
            node_rpc,
            plan_check_interval,
            webhook_url,
            warnings: self.warnings,
        })
    }
}
