//! `cosmovisor doctor [--unit <file>] [daemon args…]`: a pre-flight of the setup and of the next
//! upgrade, changing nothing. Every check prints one line on stdout, `✓ <what holds>` or
//! `✗ <what is wrong> — fix: <what to do>`; the exit code is 0 when every check passed and
//! [`exit::DOCTOR_FAILED`] otherwise.
//!
//! What is checked, in order: the configuration; the home (`cosmovisor/`, `data/`); `current`
//! and its binary; the upgrade journal; the next upgrade — the pending plan in
//! `data/upgrade-info.json`, or else every staged upgrade never switched to — (its folder under
//! the recase rules, its binary: present, regular, executable, built for this machine, shared
//! libraries found by `ldd`, `<bin> version` runs within 10 s); free space for the backup; the
//! daemon's `--home` against `DAEMON_HOME`; and the systemd unit's stop settings against
//! `DAEMON_SHUTDOWN_GRACE`.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{Config, format_go_duration};
use crate::elf;
use crate::exit;
use crate::inventory;
use crate::journal::Journal;
use crate::layout::{self, Layout, LayoutError};
use crate::plan::Plan;
use crate::systemd;

/// How long `<bin> version` and `ldd` may take.
const RUN_LIMIT: Duration = Duration::from_secs(10);
/// Where units are looked for when `--unit` is not given.
const SYSTEMD_DIR: &str = "/etc/systemd/system";
/// systemd must give cosmovisor at least this much more than `DAEMON_SHUTDOWN_GRACE`.
const UNIT_MARGIN: Duration = Duration::from_secs(5);

/// Prints the check lines and remembers whether one failed.
struct Report {
    out: std::io::Stdout,
    failures: usize,
}

impl Report {
    fn pass(&mut self, what: impl AsRef<str>) {
        let _ = writeln!(self.out, "✓ {}", what.as_ref());
    }

    fn fail(&mut self, what: impl AsRef<str>, fix: impl AsRef<str>) {
        self.failures += 1;
        let _ = writeln!(self.out, "✗ {} — fix: {}", what.as_ref(), fix.as_ref());
    }
}

pub fn run(config_file: Option<&Path>, unit: Option<&Path>, args: &[OsString]) -> u8 {
    let mut report = Report {
        out: std::io::stdout(),
        failures: 0,
    };
    check_all(&mut report, config_file, unit, args);
    if report.failures == 0 {
        report.pass("all checks passed");
        exit::OK
    } else {
        let _ = writeln!(
            report.out,
            "{} problem{} found",
            report.failures,
            if report.failures == 1 { "" } else { "s" }
        );
        exit::DOCTOR_FAILED
    }
}

fn check_all(
    report: &mut Report,
    config_file: Option<&Path>,
    unit: Option<&Path>,
    args: &[OsString],
) {
    let cfg = match Config::load(config_file) {
        Ok(cfg) => cfg,
        Err(errors) => {
            for error in errors.0 {
                report.fail(
                    error.to_string(),
                    "correct it in the environment or config.toml",
                );
            }
            return;
        }
    };
    let fs_errors = cfg.check_filesystem();
    if fs_errors.is_empty() {
        report.pass(format!(
            "configuration is valid (DAEMON_HOME={}, DAEMON_NAME={})",
            cfg.home.display(),
            cfg.name
        ));
    }
    for error in fs_errors {
        report.fail(
            error.to_string(),
            "create the folder or point DAEMON_DATA_BACKUP_DIR elsewhere",
        );
    }
    let layout = Layout::new(&cfg.home, &cfg.name);
    match layout::check_home(&layout) {
        Ok(()) => report.pass(format!(
            "home {} has cosmovisor/ and data/",
            cfg.home.display()
        )),
        Err(err) => {
            let (what, fix) = explain_layout(&layout, &err);
            report.fail(what, fix);
            return;
        }
    }
    let current = check_current(report, &layout);
    check_journal(report, &layout);
    check_next_upgrade(report, &cfg, &layout, current.as_deref());
    check_backup_space(report, &cfg, &layout);
    check_home_argument(report, &cfg, args);
    check_units(report, &cfg, unit);
}

/// `current` points at an existing version folder whose binary can run; returns that folder.
fn check_current(report: &mut Report, layout: &Layout) -> Option<PathBuf> {
    let link = layout.current_link();
    let dir = match layout.current_dir() {
        Ok(dir) => {
            let target = std::fs::read_link(&link).unwrap_or_else(|_| dir.clone());
            report.pass(format!("current -> {}", target.display()));
            dir
        }
        Err(LayoutError::CurrentMissing { .. }) if layout.genesis_dir().is_dir() => {
            report.pass(format!(
                "{} does not exist yet; `cosmovisor run` points it at genesis",
                link.display()
            ));
            layout.genesis_dir()
        }
        Err(err) => {
            let (what, fix) = explain_layout(layout, &err);
            report.fail(what, fix);
            return None;
        }
    };
    let bin = layout.bin_in(&dir);
    match layout::check_binary(&bin) {
        Ok(()) => report.pass(format!(
            "current binary {} is present and executable",
            bin.display()
        )),
        Err(layout::BinaryError::NotExecutable { path }) => report.fail(
            format!("current binary {} is not executable", path.display()),
            format!("chmod 755 {}", path.display()),
        ),
        Err(err) => report.fail(
            format!("current {err}"),
            format!("put the {} binary there (chmod 755)", layout.daemon_name()),
        ),
    }
    Some(dir)
}

fn check_journal(report: &mut Report, layout: &Layout) {
    match Journal::load(&layout.journal_file()) {
        Ok(None) => {}
        Ok(Some(journal)) => report.pass(format!(
            "upgrade {} at height {} is under way (phase {}); the next start resumes it",
            journal.plan.name,
            journal.plan.height,
            journal.phase.name()
        )),
        Err(err) => report.fail(
            err.to_string(),
            format!(
                "inspect {}, then remove it to abandon the upgrade",
                layout.journal_file().display()
            ),
        ),
    }
}

/// The pending plan when it is still to be applied, else every upgrade folder never switched to.
fn check_next_upgrade(report: &mut Report, cfg: &Config, layout: &Layout, current: Option<&Path>) {
    let recase = !cfg.disable_recase;
    let applied = current
        .map(crate::watcher::read_applied)
        .unwrap_or_default();
    match inventory::pending_plan(layout, recase) {
        Ok(Some(plan)) if applied.is_superseded_by(&plan) => {
            if let Some(dir) = check_plan_folder(report, cfg, layout, &plan) {
                check_upgrade_binary(report, layout, &plan.name.dir_name(), &dir);
            }
            return;
        }
        Ok(Some(plan)) => report.pass(format!(
            "pending plan {} at height {} is already applied",
            plan.name, plan.height
        )),
        Ok(None) => {}
        Err(err) => report.fail(
            format!("pending plan {err}"),
            "wait for the node to finish writing it, or move it away if it is stale",
        ),
    }
    let staged: Vec<inventory::Version> = match inventory::versions(layout) {
        Ok(versions) => versions
            .into_iter()
            .filter(|v| !v.is_genesis() && v.height().is_none() && Some(v.dir.as_path()) != current)
            .collect(),
        Err(err) => {
            report.fail(
                format!("cannot list {}: {err}", layout.upgrades_dir().display()),
                "check the folder's permissions",
            );
            return;
        }
    };
    if staged.is_empty() {
        report.pass("no pending plan and no staged upgrade to check");
    }
    for version in staged {
        check_upgrade_binary(report, layout, &version.name, &version.dir);
    }
}

/// The plan's name maps to an existing folder (recase rules); returns that folder.
fn check_plan_folder(
    report: &mut Report,
    cfg: &Config,
    layout: &Layout,
    plan: &Plan,
) -> Option<PathBuf> {
    let dir = layout.upgrade_dir(&plan.name);
    if dir.is_dir() {
        report.pass(format!(
            "pending plan {:?} at height {} maps to {}",
            plan.raw_name,
            plan.height,
            dir.display()
        ));
        return Some(dir);
    }
    let what = format!(
        "pending plan {:?} at height {} needs the folder {}, which does not exist",
        plan.raw_name,
        plan.height,
        dir.display()
    );
    match inventory::case_variant(layout, &plan.name.dir_name()) {
        Some(other) => {
            let other = layout.upgrades_dir().join(other);
            let rule = if cfg.disable_recase {
                "COSMOVISOR_DISABLE_RECASE=true keeps the plan's case"
            } else {
                "plan names are lower-cased unless COSMOVISOR_DISABLE_RECASE=true"
            };
            report.fail(
                format!("{what} ({} differs only in case; {rule})", other.display()),
                format!("mv {} {}", other.display(), dir.display()),
            );
        }
        None => report.fail(
            what,
            format!(
                "mkdir -p {}/bin and put the new {} binary there (chmod 755)",
                dir.display(),
                layout.daemon_name()
            ),
        ),
    }
    None
}

/// Everything about one upgrade's binary that can be known before the height.
fn check_upgrade_binary(report: &mut Report, layout: &Layout, name: &str, dir: &Path) {
    let bin = layout.bin_in(dir);
    let label = format!("upgrade {name}");
    match layout::check_binary(&bin) {
        Ok(()) => report.pass(format!(
            "{label}: binary {} is present and executable",
            bin.display()
        )),
        Err(layout::BinaryError::Missing { path }) => {
            report.fail(
                format!("{label}: binary {} is missing", path.display()),
                format!(
                    "put the new {} binary at {} (chmod 755)",
                    layout.daemon_name(),
                    path.display()
                ),
            );
            return;
        }
        Err(layout::BinaryError::NotExecutable { path }) => {
            report.fail(
                format!("{label}: binary {} is not executable", path.display()),
                format!("chmod 755 {}", path.display()),
            );
            return;
        }
        Err(err) => {
            report.fail(
                format!("{label}: {err}"),
                format!("replace it with the {} binary", layout.daemon_name()),
            );
            return;
        }
    }
    let host = elf::host_machine();
    let host_name = host.map_or_else(|| std::env::consts::ARCH.to_owned(), elf::machine_name);
    let build_fix = format!(
        "install the linux {host_name} build of {}",
        layout.daemon_name()
    );
    let mut head = [0u8; 64];
    let read = std::fs::File::open(&bin).and_then(|mut file| {
        let mut filled = 0;
        while filled < head.len() {
            let n = file.read(&mut head[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(filled)
    });
    let head = match read {
        Ok(n) => &head[..n],
        Err(err) => {
            report.fail(
                format!("{label}: cannot read {}: {err}", bin.display()),
                "check the file's permissions",
            );
            return;
        }
    };
    let is_script = match elf::kind(head) {
        elf::Kind::Script => {
            report.pass(format!("{label}: binary is a script (#!)"));
            true
        }
        elf::Kind::Elf { machine } if host.is_none_or(|h| h == machine) => {
            report.pass(format!(
                "{label}: binary is an ELF executable for {}",
                elf::machine_name(machine)
            ));
            false
        }
        elf::Kind::Elf { machine } => {
            report.fail(
                format!(
                    "{label}: binary is built for {}, this host is {host_name}",
                    elf::machine_name(machine)
                ),
                build_fix,
            );
            return;
        }
        elf::Kind::Unknown => {
            report.fail(
                format!("{label}: binary is neither an ELF executable nor a #! script"),
                build_fix,
            );
            return;
        }
    };
    let env: Vec<(OsString, OsString)> =
        crate::process::library_path_env(dir).into_iter().collect();
    if !is_script {
        check_libraries(report, &label, &bin, dir, &env);
    }
    check_version_runs(report, &label, &bin, layout.daemon_name(), &env);
}

fn check_libraries(
    report: &mut Report,
    label: &str,
    bin: &Path,
    dir: &Path,
    env: &[(OsString, OsString)],
) {
    let Some(ldd) = find_on_path("ldd") else {
        report.pass(format!("{label}: shared libraries (ldd not available)"));
        return;
    };
    let mut command = Command::new(ldd);
    command.arg(bin).envs(env.iter().cloned());
    let output = match run_limited(command) {
        Ok(Some(output)) => output,
        Ok(None) => {
            report.pass(format!(
                "{label}: shared libraries (ldd did not finish within {}s)",
                RUN_LIMIT.as_secs()
            ));
            return;
        }
        Err(err) => {
            report.pass(format!("{label}: shared libraries (cannot run ldd: {err})"));
            return;
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let missing: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("not found"))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    if !missing.is_empty() {
        report.fail(
            format!(
                "{label}: shared libraries not found: {}",
                missing.join(", ")
            ),
            format!(
                "put them in {} (it is added to LD_LIBRARY_PATH) or install them on the host",
                dir.join("lib").display()
            ),
        );
    } else if output.status.success() {
        report.pass(format!("{label}: shared libraries resolve"));
    } else {
        report.pass(format!("{label}: shared libraries (statically linked)"));
    }
}

fn check_version_runs(
    report: &mut Report,
    label: &str,
    bin: &Path,
    daemon: &str,
    env: &[(OsString, OsString)],
) {
    let mut command = Command::new(bin);
    command.arg("version").envs(env.iter().cloned());
    let fix = format!(
        "run `{} version` by hand and fix what it reports",
        bin.display()
    );
    match run_limited(command) {
        Ok(Some(output)) if output.status.success() => {
            let text = String::from_utf8_lossy(if output.stdout.trim_ascii().is_empty() {
                &output.stderr
            } else {
                &output.stdout
            })
            .into_owned();
            let first = text.lines().next().unwrap_or("").trim();
            let shown: String = if first.is_empty() {
                "no output".to_owned()
            } else {
                first.chars().take(80).collect()
            };
            report.pass(format!("{label}: `{daemon} version` runs ({shown})"));
        }
        Ok(Some(output)) => report.fail(
            format!(
                "{label}: `{daemon} version` failed ({})",
                describe(output.status)
            ),
            fix,
        ),
        Ok(None) => report.fail(
            format!(
                "{label}: `{daemon} version` did not finish within {}s",
                RUN_LIMIT.as_secs()
            ),
            fix,
        ),
        Err(err) => report.fail(format!("{label}: cannot run {}: {err}", bin.display()), fix),
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// Runs `command` with stdin closed and output captured, in its own process group; `Ok(None)`
/// when it did not finish within [`RUN_LIMIT`] (the group is then killed).
fn run_limited(mut command: Command) -> std::io::Result<Option<std::process::Output>> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command.spawn()?;
    let collect = |stream: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_end(&mut bytes);
            }
            let _ = tx.send(bytes);
        });
        rx
    };
    let stdout = collect(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let stderr = collect(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= RUN_LIMIT {
            // Not reaped yet, so the group id is still ours.
            if let Ok(pgid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // A grandchild that inherited the pipes could hold them open: read what came, boundedly.
    let drained = |rx: std::sync::mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default()
    };
    Ok(Some(std::process::Output {
        status,
        stdout: drained(stdout),
        stderr: drained(stderr),
    }))
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| layout::check_binary(candidate).is_ok())
    })
}

/// `data/` plus 10% must fit in the free space of `DAEMON_DATA_BACKUP_DIR`.
fn check_backup_space(report: &mut Report, cfg: &Config, layout: &Layout) {
    if cfg.unsafe_skip_backup {
        report.pass("backup space: not needed (UNSAFE_SKIP_BACKUP=true)");
        return;
    }
    let data = layout.data_dir();
    let size = match inventory::tree_size(&data) {
        Ok(size) => size,
        Err(err) => {
            report.fail(
                format!("backup space: cannot measure {}: {err}", data.display()),
                "check the folder's permissions",
            );
            return;
        }
    };
    let dir = &cfg.data_backup_dir;
    let free = match nix::sys::statvfs::statvfs(dir) {
        Ok(stat) => stat.blocks_available().saturating_mul(stat.fragment_size()),
        Err(err) => {
            report.fail(
                format!(
                    "backup space: cannot read the free space of {}: {err}",
                    dir.display()
                ),
                "check DAEMON_DATA_BACKUP_DIR",
            );
            return;
        }
    };
    let needed = size.saturating_add(size / 10);
    if free >= needed {
        report.pass(format!(
            "backup space: data/ is {}, {} has {} free",
            human_bytes(size),
            dir.display(),
            human_bytes(free)
        ));
    } else {
        report.fail(
            format!(
                "backup space: data/ is {} ({} with a 10% margin), {} has only {} free",
                human_bytes(size),
                human_bytes(needed),
                dir.display(),
                human_bytes(free)
            ),
            "free space there, or point DAEMON_DATA_BACKUP_DIR at a larger disk (UNSAFE_SKIP_BACKUP=true skips the backup)",
        );
    }
}

#[expect(clippy::cast_precision_loss, reason = "a human-readable size")]
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
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

fn check_home_argument(report: &mut Report, cfg: &Config, args: &[OsString]) {
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

fn check_units(report: &mut Report, cfg: &Config, unit: Option<&Path>) {
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
    let needed = cfg.shutdown_grace + UNIT_MARGIN;
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
                "{name}: TimeoutStopSec={raw} is shorter than DAEMON_SHUTDOWN_GRACE ({}) + 5s: systemd would SIGKILL the node while it stops",
                format_go_duration(cfg.shutdown_grace)
            ),
            format!(
                "set TimeoutStopSec={}s or more (or lower DAEMON_SHUTDOWN_GRACE)",
                needed.as_secs() + u64::from(needed.subsec_nanos() > 0)
            ),
        ),
        Ok(Some(_)) => report.pass(format!(
            "{name}: TimeoutStopSec={raw} leaves room for DAEMON_SHUTDOWN_GRACE ({})",
            format_go_duration(cfg.shutdown_grace)
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
}

/// A one-line description of a home problem and its fix.
fn explain_layout(layout: &Layout, err: &LayoutError) -> (String, String) {
    let init = format!("run `cosmovisor init <path to {}>`", layout.daemon_name());
    match err {
        LayoutError::RootMissing { path, .. } => {
            (format!("{} does not exist", path.display()), init)
        }
        LayoutError::RootNotDir { path } => (
            format!("{} is not a directory", path.display()),
            format!("move it away and {init}"),
        ),
        LayoutError::DataMissing { path, home, name } => (
            format!("{} does not exist", path.display()),
            format!(
                "initialise the node (`{name} init --home {}`)",
                home.display()
            ),
        ),
        LayoutError::DataNotDir { path } => (
            format!("{} is not a directory", path.display()),
            "the node's data folder must be a directory".to_owned(),
        ),
        LayoutError::CurrentMissing { link } => (
            format!(
                "{} does not exist and there is no {}",
                link.display(),
                layout.genesis_dir().display()
            ),
            init,
        ),
        LayoutError::CurrentNotLink { link } => (
            format!("{} is not a symbolic link", link.display()),
            format!("move it away and {init}"),
        ),
        LayoutError::CurrentDangling { link, target } => (
            format!(
                "{} points to {}, which does not exist",
                link.display(),
                target.display()
            ),
            format!(
                "point it at a version folder (`ln -sfn genesis {}`)",
                link.display()
            ),
        ),
        other @ LayoutError::Io { .. } => (
            other.to_string(),
            "check the folder's permissions".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

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

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
