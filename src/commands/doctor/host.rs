//! The doctor's checks of the machine and the service around the node: free space for the
//! backup, the daemon's `--home`, and the systemd unit's stop settings.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Report;
use crate::commands::doctor::systemd;
use crate::config::{Config, format_go_duration};
use crate::home::layout::Layout;
use crate::upgrade::backup;

/// Where units are looked for when `--unit` is not given.
const SYSTEMD_DIR: &str = "/etc/systemd/system";
/// systemd must give cosmovisor at least this much more than `DAEMON_SHUTDOWN_GRACE`.
const UNIT_MARGIN: Duration = Duration::from_secs(5);
/// The shortest `WatchdogSec=` we accept: pings come every half of it, and a slow disk may hold
/// the supervisor's thread for seconds (measuring `data/` before a backup).
const WATCHDOG_MIN: Duration = Duration::from_secs(30);

/// The backup the next upgrade takes must fit in `DAEMON_DATA_BACKUP_DIR`: the same check, for
/// the same mode, as the upgrade makes before it stops the daemon ([`backup::check_space`]).
pub(super) fn check_backup_space(report: &mut Report, cfg: &Config, layout: &Layout) {
    if cfg.unsafe_skip_backup {
        report.pass("backup space: not needed (UNSAFE_SKIP_BACKUP=true)");
        return;
    }
    let data = layout.data_dir();
    let dir = &cfg.data_backup_dir;
    let mode = backup::resolve(cfg.backup_mode, &data, dir);
    match backup::check_space(&data, dir, mode) {
        Ok(size) => report.pass(format!(
            "backup space: a {} backup of data/ ({}) fits in {}",
            mode.name(),
            crate::progress::human(size),
            dir.display()
        )),
        Err(err) => report.fail(
            format!("backup space: {err}"),
            "free space there, or point DAEMON_DATA_BACKUP_DIR at a larger disk (UNSAFE_SKIP_BACKUP=true skips the backup)",
        ),
    }
    // The newest backup is what `rollback --restore-data` restores: files it shares with data/
    // that changed since make it refuse (README "Backups").
    if let Ok(Some(newest)) = crate::upgrade::backup::store::newest(dir) {
        for changed in crate::upgrade::backup::store::changes(&newest.path).unwrap_or_default() {
            report.warn(
                format!(
                    "backup {}: {changed}: the backup shares this file with data/ and no longer holds it as it was",
                    newest.path.display()
                ),
                "take a fresh backup (COSMOVISOR_BACKUP_MODE=copy for one that shares nothing), or restore this one with rollback --restore-data --force",
            );
        }
    }
    // What the backup would hold as a link only (the space above does not count it either).
    if let Ok(links) = crate::upgrade::backup::copy::links_leaving(&data) {
        for (link, target) in links {
            report.warn(
                format!(
                    "backup: {} is a symbolic link to {}, outside data/: a backup holds the link, not what it points to",
                    link.display(),
                    target.display()
                ),
                "back that store up yourself, or move it into data/",
            );
        }
    }
}

/// The value of `--home X` or `--home=X` in the daemon's arguments.
fn home_argument(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if let Some(value) = text.strip_prefix("--home=") {
            return Some(PathBuf::from(value));
        }
        if text == "--home" {
            return iter.next().map(PathBuf::from);
        }
    }
    None
}

pub(super) fn check_home_argument(report: &mut Report, cfg: &Config, args: &[OsString]) {
    if args.is_empty() {
        return;
    }
    let Some(home) = home_argument(args) else {
        report.pass(
            "daemon arguments have no --home (the daemon's default home must be DAEMON_HOME)",
        );
        return;
    };
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.components().eq(b.components()),
    };
    if same(&home, &cfg.home) {
        report.pass(format!("daemon --home {} is DAEMON_HOME", home.display()));
    } else {
        report.fail(
            format!(
                "daemon --home {} is not DAEMON_HOME ({}): cosmovisor would watch the wrong upgrade-info.json",
                home.display(),
                cfg.home.display()
            ),
            "use the same folder for both",
        );
    }
}

/// The environment the unit at `path` gives the node, with a failed check for each
/// `EnvironmentFile=` that gives nothing and one when the shell's variables differ from it (the
/// commands an operator runs by hand would act on another home or name); a difference only in
/// supervisor-only variables ([`crate::config::Var::supervisor_only`]) is a `!` note. `None` when the unit
/// cannot be read ([`check_units`] says so).
pub(super) fn unit_environment(report: &mut Report, path: &Path) -> Option<Vec<(String, String)>> {
    let settings = systemd::read(path).ok()?;
    let name = format!("systemd unit {}", path.display());
    let (env, errors) = systemd::environment(&settings);
    for error in errors {
        match error {
            systemd::EnvironmentFileError::NotAbsolute { path } => report.fail(
                format!("{name}: EnvironmentFile={path} is not an absolute path: systemd ignores it"),
                "write the file's absolute path",
            ),
            systemd::EnvironmentFileError::Unreadable { path, reason } => report.fail(
                format!("{name}: EnvironmentFile={path} cannot be read: {reason}"),
                format!(
                    "create it, or write EnvironmentFile=-{path} if it is optional (systemd refuses to start the unit without it)"
                ),
            ),
        }
    }
    let mut differences = Vec::new();
    let mut supervisor_only = Vec::new();
    let mut shell_sets_any = false;
    for crate::config::Var {
        name: var,
        supervisor_only: only_supervisor,
        ..
    } in crate::config::VARS
    {
        let Some(shell) = std::env::var_os(var).filter(|v| !v.is_empty()) else {
            continue;
        };
        shell_sets_any = true;
        let shell = shell.to_string_lossy();
        let unit_value = systemd::lookup(&env, var);
        if unit_value != Some(shell.as_ref()) {
            let difference = format!(
                "{var}={shell} (the unit: {})",
                unit_value.unwrap_or("unset")
            );
            if *only_supervisor {
                supervisor_only.push(difference);
            } else {
                differences.push(difference);
            }
        }
    }
    if !differences.is_empty() {
        report.fail(
            format!(
                "the shell's environment differs from unit {}: {}",
                path.display(),
                differences.join(", ")
            ),
            "commands run by hand (add-upgrade, status, rollback) use the shell's values: set them as the unit does, or unset them",
        );
    }
    if !supervisor_only.is_empty() {
        report.warn(
            format!(
                "the shell's environment differs from unit {} in settings only the running supervisor reads: {}",
                path.display(),
                supervisor_only.join(", ")
            ),
            "commands run by hand are not affected; the node runs with the unit's values",
        );
    }
    if differences.is_empty() && supervisor_only.is_empty() && shell_sets_any {
        report.pass(format!(
            "the shell's environment agrees with unit {}",
            path.display()
        ));
    }
    Some(env)
}

pub(super) fn check_units(report: &mut Report, cfg: &Config, unit: Option<&Path>) {
    let units = if let Some(path) = unit {
        vec![path.to_path_buf()]
    } else {
        let found = systemd::units_running_cosmovisor(Path::new(SYSTEMD_DIR));
        if found.is_empty() {
            report.pass(format!(
                "systemd: no unit in {SYSTEMD_DIR} runs cosmovisor (check one with --unit <file>)"
            ));
        }
        found
    };
    for path in units {
        check_unit(report, cfg, &path, unit.is_some());
    }
}

fn check_unit(report: &mut Report, cfg: &Config, path: &Path, explicit: bool) {
    let name = format!("systemd unit {}", path.display());
    let settings = match systemd::read(path) {
        Ok(settings) => settings,
        Err(err) => {
            report.fail(
                format!("{name} cannot be read: {err}"),
                "check the --unit path",
            );
            return;
        }
    };
    if explicit
        && !settings
            .exec_start
            .as_deref()
            .is_some_and(|e| e.contains("cosmovisor"))
    {
        report.fail(
            format!("{name}: ExecStart does not run cosmovisor"),
            "set ExecStart=/usr/local/bin/cosmovisor run start",
        );
    }
    match settings.kill_signal.as_deref() {
        Some(signal) if systemd::is_sigkill(signal) => report.fail(
            format!("{name}: KillSignal={signal} kills the node without a graceful stop"),
            "set KillSignal=SIGTERM",
        ),
        Some(signal) => report.pass(format!("{name}: KillSignal={signal}")),
        None => report.pass(format!("{name}: KillSignal is SIGTERM (default)")),
    }
    // The unit's own DAEMON_SHUTDOWN_GRACE is what cosmovisor gets when systemd starts it.
    let (grace, grace_name) = match settings
        .env(crate::config::DAEMON_SHUTDOWN_GRACE)
        .map(crate::config::parse_go_duration)
    {
        Some(Ok(grace)) if !grace.is_zero() => (grace, "the unit's DAEMON_SHUTDOWN_GRACE"),
        _ => (cfg.shutdown_grace, "DAEMON_SHUTDOWN_GRACE"),
    };
    let needed = grace + UNIT_MARGIN;
    let (raw, timeout) = match settings.timeout_stop.as_deref() {
        Some(raw) => (raw.to_owned(), systemd::parse_time_span(raw)),
        None => (
            format!("{}s (default)", systemd::DEFAULT_TIMEOUT_STOP.as_secs()),
            Ok(Some(systemd::DEFAULT_TIMEOUT_STOP)),
        ),
    };
    match timeout {
        Err(err) => report.fail(
            format!("{name}: TimeoutStopSec: {err}"),
            "write it like 120s or 2min",
        ),
        Ok(None) => report.pass(format!("{name}: TimeoutStopSec={raw} never kills the node")),
        Ok(Some(timeout)) if timeout < needed => report.fail(
            format!(
                "{name}: TimeoutStopSec={raw} is shorter than {grace_name} ({}) + 5s: systemd would SIGKILL the node while it stops",
                format_go_duration(grace)
            ),
            format!(
                "set TimeoutStopSec={}s or more (or lower DAEMON_SHUTDOWN_GRACE)",
                needed.as_secs() + u64::from(needed.subsec_nanos() > 0)
            ),
        ),
        Ok(Some(_)) => report.pass(format!(
            "{name}: TimeoutStopSec={raw} leaves room for {grace_name} ({})",
            format_go_duration(grace)
        )),
    }
    match settings.kill_mode.as_deref() {
        Some("none") => report.fail(
            format!("{name}: KillMode=none leaves the node running when the service stops"),
            "set KillMode=mixed",
        ),
        Some(mode) => report.pass(format!("{name}: KillMode={mode}")),
        None => report.pass(format!("{name}: KillMode=control-group (default)")),
    }
    check_notify(report, &name, &settings);
}

/// `Type=notify`, `NotifyAccess=` and `WatchdogSec=` (see `notify.rs`).
fn check_notify(report: &mut Report, name: &str, settings: &systemd::StopSettings) {
    let service_type = settings.service_type.as_deref().unwrap_or("simple");
    if service_type == "notify" {
        report.pass(format!(
            "{name}: Type=notify (systemctl status shows the node's version and upgrade steps)"
        ));
    } else {
        report.warn(
            format!("{name}: Type={service_type}: systemd cannot tell when the node runs nor show an upgrade in progress"),
            "set Type=notify (cosmovisor sends READY=1 and STATUS=)",
        );
    }
    match settings.notify_access.as_deref() {
        Some("none") if service_type == "notify" || settings.watchdog.is_some() => report.fail(
            format!("{name}: NotifyAccess=none makes systemd ignore cosmovisor's READY=1 and watchdog pings: the start times out"),
            "set NotifyAccess=main",
        ),
        Some(access) => report.pass(format!("{name}: NotifyAccess={access}")),
        None => {}
    }
    let watchdog = settings
        .watchdog
        .as_deref()
        .map(|raw| (raw, systemd::parse_time_span(raw)));
    match watchdog {
        Some((raw, Err(err))) => report.fail(
            format!("{name}: WatchdogSec={raw}: {err}"),
            "write it like 2min or 120s",
        ),
        Some((raw, Ok(Some(every)))) if !every.is_zero() && every < WATCHDOG_MIN => report.fail(
            format!(
                "{name}: WatchdogSec={raw} is shorter than {}: a slow disk during an upgrade could get the service restarted mid-step",
                format_go_duration(WATCHDOG_MIN)
            ),
            "set WatchdogSec=2min",
        ),
        Some((raw, Ok(Some(every)))) if !every.is_zero() => {
            report.pass(format!("{name}: WatchdogSec={raw} restarts a frozen cosmovisor"));
        }
        _ if service_type == "notify" => report.warn(
            format!("{name}: no WatchdogSec: a frozen cosmovisor is not restarted"),
            "set WatchdogSec=2min",
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::os;

    #[test]
    fn finds_the_home_argument() {
        assert_eq!(
            home_argument(&os(&["start", "--home", "/h"])),
            Some("/h".into())
        );
        assert_eq!(
            home_argument(&os(&["start", "--home=/x"])),
            Some("/x".into())
        );
        assert_eq!(home_argument(&os(&["start", "--home"])), None);
        assert_eq!(home_argument(&os(&["start"])), None);
    }
}
