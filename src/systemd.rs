//! Reading the stop settings of a systemd unit that runs cosmovisor, for `doctor`: `ExecStart=`,
//! `KillSignal=`, `KillMode=` and `TimeoutStopSec=` (or `TimeoutSec=`) in `[Service]`, with the
//! unit's drop-ins (`<unit>.d/*.conf`) applied in order, and systemd's time-span syntax.
//!
//! Pure parsing plus one function that reads the files; deciding what is wrong is the doctor's.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// systemd's `DefaultTimeoutStopSec` when a unit does not set one.
pub const DEFAULT_TIMEOUT_STOP: Duration = Duration::from_secs(90);

/// The settings of `[Service]` that decide how the node is stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopSettings {
    pub exec_start: Option<String>,
    pub kill_signal: Option<String>,
    pub kill_mode: Option<String>,
    /// The raw `TimeoutStopSec=` (or `TimeoutSec=`) value.
    pub timeout_stop: Option<String>,
    /// `Environment=` assignments, in order (a later one wins).
    pub environment: Vec<(String, String)>,
}

impl StopSettings {
    /// The value the unit gives an environment variable, if any.
    #[must_use]
    pub fn env(&self, var: &str) -> Option<&str> {
        self.environment
            .iter()
            .rev()
            .find(|(key, _)| key == var)
            .map(|(_, value)| value.as_str())
    }
}

/// The `VAR=value` words of an `Environment=` line; a word may be double-quoted.
fn assignments(value: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
        .into_iter()
        .filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
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
            "Environment" => settings.environment.extend(assignments(&value)),
            _ => {}
        }
    }
}

/// Reads a unit file and its drop-ins (`<path>.d/*.conf`, in name order).
pub fn read(path: &Path) -> std::io::Result<StopSettings> {
    let mut settings = StopSettings::default();
    apply(&mut settings, &std::fs::read_to_string(path)?);
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
            apply(&mut settings, &std::fs::read_to_string(conf)?);
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
    fn reads_service_section_and_drop_ins() {
        let tmp = tempfile::tempdir().unwrap();
        let unit = tmp.path().join("node.service");
        std::fs::write(
            &unit,
            "[Unit]\nKillSignal=SIGKILL\n[Service]\n# KillMode=none\nExecStart=/usr/bin/cosmovisor \\\n  run start\n\
             KillSignal=SIGINT\nTimeoutSec=20\nEnvironment=A=1 \"B=x y\"\n[Install]\nWantedBy=multi-user.target\n",
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
                environment: vec![("A".into(), "1".into()), ("B".into(), "x y".into())],
            }
        );
        assert_eq!(settings.env("B"), Some("x y"));
        assert_eq!(settings.env("C"), None);
        std::fs::create_dir(tmp.path().join("node.service.d")).unwrap();
        std::fs::write(
            tmp.path().join("node.service.d/override.conf"),
            "[Service]\nTimeoutStopSec=2min\nKillMode=none\n",
        )
        .unwrap();
        let settings = read(&unit).unwrap();
        assert_eq!(settings.timeout_stop.as_deref(), Some("2min"));
        assert_eq!(settings.kill_mode.as_deref(), Some("none"));
        assert_eq!(units_running_cosmovisor(tmp.path()), vec![unit]);
        assert!(is_sigkill("sigkill") && is_sigkill("9") && !is_sigkill("SIGTERM"));
    }
}
