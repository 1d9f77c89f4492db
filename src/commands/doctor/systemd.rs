//! Reading the settings of a systemd unit that runs cosmovisor, for `doctor`: `ExecStart=`,
//! `KillSignal=`, `KillMode=`, `TimeoutStopSec=` (or `TimeoutSec=`), `Type=`, `WatchdogSec=`,
//! `NotifyAccess=`, `Environment=` and
//! `EnvironmentFile=` in `[Service]`, with the unit's drop-ins (`<unit>.d/*.conf`) applied in
//! order; systemd's quoting rules, environment-file syntax and time-span syntax.
//!
//! Pure parsing plus the functions that read the files; deciding what is wrong is the doctor's.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// systemd's `DefaultTimeoutStopSec` when a unit does not set one.
pub const DEFAULT_TIMEOUT_STOP: Duration = Duration::from_secs(90);

/// The settings of `[Service]` that decide how the node is stopped and watched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopSettings {
    pub exec_start: Option<String>,
    pub kill_signal: Option<String>,
    pub kill_mode: Option<String>,
    /// The raw `TimeoutStopSec=` (or `TimeoutSec=`) value.
    pub timeout_stop: Option<String>,
    /// `Type=` (`simple` when unset).
    pub service_type: Option<String>,
    /// The raw `WatchdogSec=` value.
    pub watchdog: Option<String>,
    pub notify_access: Option<String>,
    /// `Environment=` assignments, in order (a later one wins).
    pub environment: Vec<(String, String)>,
    /// `EnvironmentFile=` entries, in order.
    pub environment_files: Vec<EnvironmentFile>,
}

/// One `EnvironmentFile=` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentFile {
    pub path: String,
    /// Written with a `-` prefix: a missing file is not an error.
    pub optional: bool,
}

impl StopSettings {
    /// The value the unit's `Environment=` lines give a variable, if any.
    #[must_use]
    pub fn env(&self, var: &str) -> Option<&str> {
        lookup(&self.environment, var)
    }
}

/// The value of `var` in assignments where a later one wins.
#[must_use]
pub fn lookup<'a>(assignments: &'a [(String, String)], var: &str) -> Option<&'a str> {
    assignments
        .iter()
        .rev()
        .find(|(key, _)| key == var)
        .map(|(_, value)| value.as_str())
}

/// The C-style escape `\<c>` as systemd unquotes it (`\n`, `\t`, …; any other character stands
/// for itself).
fn unescape(c: char) -> char {
    match c {
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        'a' => '\u{7}',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'v' => '\u{b}',
        's' => ' ',
        '0' => '\0',
        other => other,
    }
}

/// The words of a setting, split the way systemd does for `Environment=`: whitespace separates
/// words; double or single quotes (anywhere in a word) keep whitespace; a backslash escapes the
/// next character.
fn words(value: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', _) => {
                if let Some(next) = chars.next() {
                    word.push(unescape(next));
                }
                in_word = true;
            }
            (q, Some(open)) if q == open => quote = None,
            (c, Some(_)) => word.push(c),
            ('"' | '\'', None) => {
                quote = Some(c);
                in_word = true;
            }
            (c, None) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (c, None) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The `VAR=value` words of an `Environment=` line (words without `=` are ignored, as systemd
/// ignores them with a warning).
fn assignments(value: &str) -> Vec<(String, String)> {
    words(value)
        .into_iter()
        .filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .filter(|(key, _)| !key.is_empty())
        .collect()
}

/// The assignments of an environment file, as systemd reads `EnvironmentFile=`: `KEY=VALUE`
/// lines; blank lines and lines starting with `#` or `;` are skipped; whitespace around the key
/// and around an unquoted value is dropped; a value may be double-quoted (`\"`, `\\`, `\$` and
/// `` \` `` escapes) or single-quoted (literal); a backslash at the end of a line continues it.
#[must_use]
pub fn parse_environment_file(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut logical = String::new();
    for raw in text.lines() {
        if let Some(part) = raw.strip_suffix('\\').filter(|part| !part.ends_with('\\')) {
            logical.push_str(part);
            continue;
        }
        logical.push_str(raw);
        let line = std::mem::take(&mut logical);
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() {
            continue;
        }
        out.push((key.to_owned(), env_file_value(value.trim())));
    }
    out
}

/// One value of an environment file (already trimmed), unquoted.
fn env_file_value(value: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\'', Some('\'')) | ('"', Some('"')) => quote = None,
            (c, Some('\'')) => out.push(c),
            ('\\', Some(_)) => match chars.next() {
                Some(next @ ('"' | '\\' | '$' | '`')) => out.push(next),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            },
            ('\\', None) => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            ('"' | '\'', None) => quote = Some(c),
            (c, _) => out.push(c),
        }
    }
    out
}

/// The environment systemd gives the service: its `Environment=` assignments, then those of its
/// `EnvironmentFile=`s in order (files override `Environment=`, as systemd documents). Each
/// required file that cannot be read is an error naming it and why; a missing optional (`-`)
/// file is skipped.
#[must_use]
pub fn environment(settings: &StopSettings) -> (Vec<(String, String)>, Vec<EnvironmentFileError>) {
    let mut env = settings.environment.clone();
    let mut errors = Vec::new();
    for file in &settings.environment_files {
        let path = Path::new(&file.path);
        if !path.is_absolute() {
            errors.push(EnvironmentFileError::NotAbsolute {
                path: file.path.clone(),
            });
            continue;
        }
        match crate::bounded_read::read_capped_string(path, crate::bounded_read::DOCUMENT_CAP) {
            Ok(text) => env.extend(parse_environment_file(&text)),
            Err(err) if err.is_missing() && file.optional => {}
            Err(err) => errors.push(EnvironmentFileError::Unreadable {
                path: file.path.clone(),
                reason: crate::config::read_reason(&err),
            }),
        }
    }
    (env, errors)
}

/// Why an `EnvironmentFile=` gives the service nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvironmentFileError {
    /// systemd ignores a relative path.
    NotAbsolute { path: String },
    /// A required file that cannot be read: systemd refuses to start the unit.
    Unreadable { path: String, reason: String },
}

/// Applies the `[Service]` assignments of one unit file (or drop-in) over `settings`.
pub fn apply(settings: &mut StopSettings, text: &str) {
    let mut in_service = false;
    let mut logical = String::new();
    for raw in text.lines() {
        // A trailing backslash continues the line.
        if let Some(part) = raw.strip_suffix('\\') {
            logical.push_str(part);
            logical.push(' ');
            continue;
        }
        logical.push_str(raw);
        let line = std::mem::take(&mut logical);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            in_service = line == "[Service]";
            continue;
        }
        if !in_service {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().to_owned();
        match key.trim() {
            "ExecStart" => settings.exec_start = Some(value),
            "KillSignal" => settings.kill_signal = Some(value),
            "KillMode" => settings.kill_mode = Some(value),
            "TimeoutStopSec" | "TimeoutSec" => settings.timeout_stop = Some(value),
            "Type" => settings.service_type = Some(value),
            "WatchdogSec" => settings.watchdog = Some(value),
            "NotifyAccess" => settings.notify_access = Some(value),
            // An empty assignment resets the list, as in systemd.
            "Environment" if value.is_empty() => settings.environment.clear(),
            "Environment" => settings.environment.extend(assignments(&value)),
            "EnvironmentFile" if value.is_empty() => settings.environment_files.clear(),
            "EnvironmentFile" => {
                let (optional, path) = match value.strip_prefix('-') {
                    Some(path) => (true, path),
                    None => (false, value.as_str()),
                };
                settings.environment_files.push(EnvironmentFile {
                    path: path.to_owned(),
                    optional,
                });
            }
            _ => {}
        }
    }
}

/// Reads a unit file and its drop-ins (`<path>.d/*.conf`, in name order), each as a regular file
/// with the size cap of `bounded_read` (a unit path may name anything).
pub fn read(path: &Path) -> Result<StopSettings, crate::bounded_read::ReadError> {
    use crate::bounded_read::{DOCUMENT_CAP, read_capped_string};
    let mut settings = StopSettings::default();
    apply(&mut settings, &read_capped_string(path, DOCUMENT_CAP)?);
    let mut drop_in_dir = path.as_os_str().to_owned();
    drop_in_dir.push(".d");
    if let Ok(entries) = std::fs::read_dir(PathBuf::from(drop_in_dir)) {
        let mut confs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|p| p.extension().is_some_and(|ext| ext == "conf"))
            .collect();
        confs.sort();
        for conf in confs {
            apply(&mut settings, &read_capped_string(&conf, DOCUMENT_CAP)?);
        }
    }
    Ok(settings)
}

/// The `*.service` files in `dir` whose `ExecStart=` runs cosmovisor.
#[must_use]
pub fn units_running_cosmovisor(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut units: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "service"))
        .filter(|p| read(p).is_ok_and(|s| s.exec_start.is_some_and(|e| e.contains("cosmovisor"))))
        .collect();
    units.sort();
    units
}

/// Whether a `KillSignal=` value is SIGKILL (`SIGKILL`, `KILL` or `9`).
#[must_use]
pub fn is_sigkill(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_uppercase().as_str(),
        "SIGKILL" | "KILL" | "9"
    )
}

/// A systemd time span: `90`, `90s`, `1min 30s`, `2h30m`, `1.5s`, `infinity`. `Ok(None)` is
/// infinity (and `0`, which systemd also treats as "no timeout").
pub fn parse_time_span(value: &str) -> Result<Option<Duration>, String> {
    let value = value.trim();
    if value == "infinity" {
        return Ok(None);
    }
    if value.is_empty() {
        return Err("empty time span".to_owned());
    }
    let mut total = 0f64;
    let mut rest = value;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(format!("invalid time span {value:?}"));
        }
        let number: f64 = rest[..number_len]
            .parse()
            .map_err(|_| format!("invalid time span {value:?}"))?;
        rest = rest[number_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "" | "s" | "sec" | "second" | "seconds" => 1.0,
            "us" | "usec" | "µs" => 1e-6,
            "ms" | "msec" => 1e-3,
            "m" | "min" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            "w" | "week" | "weeks" => 604_800.0,
            "M" | "month" | "months" => 2_629_800.0,
            "y" | "year" | "years" => 31_557_600.0,
            unit => return Err(format!("unknown unit {unit:?} in time span {value:?}")),
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    if total == 0.0 {
        return Ok(None);
    }
    Duration::try_from_secs_f64(total)
        .map(Some)
        .map_err(|_| format!("time span {value:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_spans() {
        let secs = |s: u64| Ok(Some(Duration::from_secs(s)));
        assert_eq!(parse_time_span("90"), secs(90));
        assert_eq!(parse_time_span("90s"), secs(90));
        assert_eq!(parse_time_span("1min 30s"), secs(90));
        assert_eq!(parse_time_span("2h30m"), secs(9000));
        assert_eq!(parse_time_span(" 5 min "), secs(300));
        assert_eq!(
            parse_time_span("1.5s"),
            Ok(Some(Duration::from_millis(1500)))
        );
        assert_eq!(
            parse_time_span("500ms"),
            Ok(Some(Duration::from_millis(500)))
        );
        assert_eq!(parse_time_span("infinity"), Ok(None));
        assert_eq!(parse_time_span("0"), Ok(None));
        assert!(parse_time_span("5 fortnights").is_err());
        assert!(parse_time_span("s").is_err());
        assert!(parse_time_span("").is_err());
    }

    #[test]
    fn environment_quoting_like_systemd() {
        let assigned = |v: &str| assignments(v);
        assert_eq!(
            assigned(r#"A=1 "B=x y" 'C=it"s' D="q r"s E=a\ b F=\"g\" noequals"#),
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "x y".into()),
                ("C".into(), "it\"s".into()),
                ("D".into(), "q rs".into()),
                ("E".into(), "a b".into()),
                ("F".into(), "\"g\"".into()),
            ]
        );
        assert_eq!(
            parse_environment_file(
                "# c\n; c\n\n  A = 1 \nB=\"x \\\"y\\\" $z\"\nC='a \\ b'\nD=one\\\ntwo\nnoequals\n"
            ),
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "x \"y\" $z".into()),
                ("C".into(), "a \\ b".into()),
                ("D".into(), "onetwo".into()),
            ]
        );
    }

    #[test]
    fn environment_files_override_and_optional_ones_may_be_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("env");
        std::fs::write(&file, "A=from-file\n").unwrap();
        let mut settings = StopSettings::default();
        apply(
            &mut settings,
            &format!(
                "[Service]\nEnvironmentFile={}\nEnvironment=A=inline B=2\nEnvironmentFile=-/nonexistent/x\n",
                file.display()
            ),
        );
        let (env, errors) = environment(&settings);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(lookup(&env, "A"), Some("from-file"));
        assert_eq!(lookup(&env, "B"), Some("2"));
        apply(
            &mut settings,
            "[Service]\nEnvironmentFile=/nonexistent/y\nEnvironment=\n",
        );
        let (env, errors) = environment(&settings);
        assert_eq!(
            errors,
            vec![EnvironmentFileError::Unreadable {
                path: "/nonexistent/y".to_owned(),
                reason: "No such file or directory".to_owned()
            }]
        );
        assert_eq!(
            lookup(&env, "B"),
            None,
            "an empty Environment= resets the list"
        );
    }

    #[test]
    fn reads_service_section_and_drop_ins() {
        let tmp = tempfile::tempdir().unwrap();
        let unit = tmp.path().join("node.service");
        std::fs::write(
            &unit,
            "[Unit]\nKillSignal=SIGKILL\n[Service]\n# KillMode=none\nExecStart=/usr/bin/cosmovisor \\\n  run start\n\
             KillSignal=SIGINT\nTimeoutSec=20\nEnvironment=A=1 \"B=x y\"\nType=notify\nWatchdogSec=2min\n[Install]\nWantedBy=multi-user.target\n",
        )
        .unwrap();
        let settings = read(&unit).unwrap();
        assert_eq!(
            settings,
            StopSettings {
                exec_start: Some("/usr/bin/cosmovisor    run start".into()),
                kill_signal: Some("SIGINT".into()),
                kill_mode: None,
                timeout_stop: Some("20".into()),
                service_type: Some("notify".into()),
                watchdog: Some("2min".into()),
                notify_access: None,
                environment: vec![("A".into(), "1".into()), ("B".into(), "x y".into())],
                environment_files: Vec::new(),
            }
        );
        assert_eq!(settings.env("B"), Some("x y"));
        assert_eq!(settings.env("C"), None);
        std::fs::create_dir(tmp.path().join("node.service.d")).unwrap();
        std::fs::write(
            tmp.path().join("node.service.d/override.conf"),
            "[Service]\nTimeoutStopSec=2min\nKillMode=none\nNotifyAccess=all\n",
        )
        .unwrap();
        let settings = read(&unit).unwrap();
        assert_eq!(settings.timeout_stop.as_deref(), Some("2min"));
        assert_eq!(settings.kill_mode.as_deref(), Some("none"));
        assert_eq!(settings.notify_access.as_deref(), Some("all"));
        assert_eq!(units_running_cosmovisor(tmp.path()), vec![unit]);
        assert!(is_sigkill("sigkill") && is_sigkill("9") && !is_sigkill("SIGTERM"));
    }
}
