//! `cosmovisor doctor [--unit <file>] [daemon args…]`: a pre-flight of the setup and of the next
//! upgrade, changing nothing. Every check prints one line on stdout, `✓ <what holds>` or
//! `✗ <what is wrong> — fix: <what to do>`; the exit code is 0 when every check passed and
//! [`exit::DOCTOR_FAILED`] otherwise.
//!
//! What is checked, in order: the configuration (with `--unit`, the one the unit's environment
//! gives, and whether the shell's differs from it); the home (`cosmovisor/`, `data/`); `current`
//! and its binary; the upgrade journal; the next upgrade — the pending plan in
//! `data/upgrade-info.json`, or else every staged upgrade never switched to — (its folder under
//! the recase rules, its binary: present, regular, executable, built for this machine, shared
//! libraries found by `ldd`, `<bin> version` runs within 10 s; or, when the plan's binary is
//! missing and `DAEMON_ALLOW_DOWNLOAD_BINARIES=true`, that its `info` names a usable download for
//! this platform, without fetching anything); free space for the backup; the
//! daemon's `--home` against `DAEMON_HOME`; and the systemd unit's stop settings against
//! `DAEMON_SHUTDOWN_GRACE`.
//!
//! The binary checks are in `doctor/binary.rs`, the download check in `doctor/download.rs`, those
//! of the machine and the service in `doctor/host.rs`, and `doctor/systemd.rs` reads the unit
//! files they look at.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::commands::{Context, Run};
use crate::config::Config;
use crate::exit;
use crate::home::binary::{BinaryError, check_binary};
use crate::home::inventory;
use crate::home::layout::{self, Layout, LayoutError};
use crate::home::plan::Plan;
use crate::log::escape_controls;
use crate::upgrade::journal::Journal;

mod binary;
mod download;
mod host;
pub mod systemd;

/// Prints the check lines and remembers whether one failed.
pub(crate) struct Report {
    out: std::io::Stdout,
    failures: usize,
}

/// Each line names plans, folders and binaries anyone may have named: control characters are
/// escaped (`log::escape_controls`) before they reach the terminal.
impl Report {
    pub(crate) fn pass(&mut self, what: impl AsRef<str>) {
        let _ = writeln!(self.out, "✓ {}", escape_controls(what.as_ref()));
    }

    /// Worth changing, but nothing breaks: not counted as a problem.
    pub(crate) fn warn(&mut self, what: impl AsRef<str>, hint: impl AsRef<str>) {
        let _ = writeln!(
            self.out,
            "! {} — hint: {}",
            escape_controls(what.as_ref()),
            escape_controls(hint.as_ref())
        );
    }

    pub(crate) fn fail(&mut self, what: impl AsRef<str>, fix: impl AsRef<str>) {
        self.failures += 1;
        let _ = writeln!(
            self.out,
            "✗ {} — fix: {}",
            escape_controls(what.as_ref()),
            escape_controls(fix.as_ref())
        );
    }
}

/// `cosmovisor doctor`'s arguments.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// A systemd unit file to check (default: every unit in /etc/systemd/system whose
    /// `ExecStart` runs cosmovisor).
    #[arg(long = "unit", value_name = "FILE")]
    pub unit: Option<PathBuf>,
    /// The daemon arguments you pass to `run` (their --home is compared with `DAEMON_HOME`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "DAEMON_ARGS"
    )]
    pub args: Vec<OsString>,
}

/// Every problem is a failed check in the report, never an error.
impl Run for DoctorArgs {
    fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let mut report = Report {
            out: std::io::stdout(),
            failures: 0,
        };
        check_all(
            &mut report,
            ctx.config_file(),
            self.unit.as_deref(),
            &self.args,
        );
        if report.failures == 0 {
            report.pass("all checks passed");
            Ok(exit::OK)
        } else {
            let _ = writeln!(
                report.out,
                "{} problem{} found",
                report.failures,
                if report.failures == 1 { "" } else { "s" }
            );
            Ok(exit::DOCTOR_FAILED)
        }
    }
}

fn check_all(
    report: &mut Report,
    config_file: Option<&Path>,
    unit: Option<&Path>,
    args: &[OsString],
) {
    let Some(cfg) = load_config(report, config_file, unit) else {
        return;
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
    check_journal(report, &layout, &cfg.data_backup_dir);
    check_queue(report, &cfg, &layout);
    check_next_upgrade(report, &cfg, &layout, current.as_deref());
    check_scheduled(report, &cfg, &layout);
    host::check_backup_space(report, &cfg, &layout);
    host::check_home_argument(report, &cfg, args);
    host::check_units(report, &cfg, unit);
}

/// The configuration the node runs with: with `--unit`, from the environment the unit gives
/// (its `Environment=` and `EnvironmentFile=`s, not the shell's, which is compared with it);
/// else from the shell's. Every configuration error is a failed check; every warning a `!` note.
fn load_config(
    report: &mut Report,
    config_file: Option<&Path>,
    unit: Option<&Path>,
) -> Option<Config> {
    let unit_env =
        unit.and_then(|path| host::unit_environment(report, path).map(|env| (path, env)));
    let (loaded, fix) = match &unit_env {
        Some((path, env)) => (
            Config::load_with(config_file, |var| {
                crate::commands::doctor::systemd::lookup(env, var).map(OsString::from)
            }),
            format!(
                "set it in the unit {} (Environment= or EnvironmentFile=)",
                path.display()
            ),
        ),
        None => (
            Config::load(config_file),
            "correct it in the environment or config.toml".to_owned(),
        ),
    };
    match loaded {
        Ok(cfg) => {
            for warning in &cfg.warnings {
                report.warn(warning.to_string(), "Go accepts it; it works as said");
            }
            Some(cfg)
        }
        Err(errors) => {
            for error in errors.0 {
                match &unit_env {
                    Some((path, _)) => {
                        report.fail(format!("unit {}: {error}", path.display()), &fix);
                    }
                    None => report.fail(error.to_string(), &fix),
                }
            }
            None
        }
    }
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
    match check_binary(&bin) {
        Ok(()) => report.pass(format!(
            "current binary {} is present and executable",
            bin.display()
        )),
        Err(BinaryError::NotExecutable { path }) => report.fail(
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

fn check_journal(report: &mut Report, layout: &Layout, backup_dir: &std::path::Path) {
    match Journal::load(&layout.journal_file(), backup_dir) {
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

/// The manual-upgrade queue, when there is one: every entry usable, no two at one height.
fn check_queue(report: &mut Report, cfg: &Config, layout: &Layout) {
    let queue = layout.batch_file();
    match crate::home::queue::plans(&queue, !cfg.disable_recase) {
        Ok(plans) if plans.is_empty() => {}
        Ok(plans) => report.pass(format!(
            "manual upgrade queue: {}",
            plans
                .iter()
                .map(|plan| format!("{} at {}", plan.name, plan.height))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Err(err) => report.fail(
            err.to_string(),
            format!(
                "correct {} (or schedule again with add-upgrade --upgrade-height); cosmovisor refuses to start the node with it",
                queue.display()
            ),
        ),
    }
}

/// Every upgrade scheduled on chain or in the manual queue is ready (README "Before the upgrade").
/// A chain plan that cannot be learned is a note, not a failure: the upgrade still happens at the
/// halt.
fn check_scheduled(report: &mut Report, cfg: &Config, layout: &Layout) {
    let within = crate::commands::status::GRPC_LIMIT;
    let ahead = crate::commands::block_on(async {
        Ok(crate::upgrade::scheduled::look_ahead(cfg, layout, within).await)
    })
    .unwrap_or_default();
    if let Some(err) = ahead.chain_error {
        report.warn(
            format!("the chain's scheduled upgrade is unknown: {err}"),
            "enable the node's gRPC server (app.toml) and set DAEMON_GRPC_ADDRESS, or set COSMOVISOR_PLAN_CHECK_INTERVAL=off",
        );
    }
    for judged in ahead.upgrades {
        let plan = &judged.scheduled.plan;
        let label = format!(
            "scheduled upgrade {} at height {} ({})",
            plan.name,
            plan.height,
            judged.scheduled.source.described()
        );
        match judged.verdict {
            Ok(()) => report.pass(format!(
                "{label} is ready: its binary is staged and checked"
            )),
            Err(not_ready) => report.fail(
                format!("{label} is NOT READY: {}", not_ready.reason),
                not_ready.fix,
            ),
        }
    }
}

/// The pending plan when it is still to be applied, else every upgrade folder never switched to.
fn check_next_upgrade(report: &mut Report, cfg: &Config, layout: &Layout, current: Option<&Path>) {
    let recase = !cfg.disable_recase;
    let applied = current
        .map(crate::home::plan::read_applied)
        .unwrap_or_default();
    match inventory::pending_plan(layout, recase) {
        Ok(Some(plan)) if applied.is_superseded_by(&plan) => {
            // Parity with the upgrade: a missing binary is downloaded when that is allowed (into
            // the plan's folder, created if need be), so the plan's info is what to check.
            let bin = layout.bin_in(&layout.upgrade_dir(&plan.name));
            let missing = matches!(check_binary(&bin), Err(BinaryError::Missing { .. }));
            if missing && cfg.allow_download_binaries {
                download::check(report, cfg, layout, &plan, &bin);
            } else if let Some(dir) = check_plan_folder(report, cfg, layout, &plan) {
                binary::check(report, layout, &plan.name.dir_name(), &dir);
            }
            return;
        }
        Ok(Some(plan)) => report.pass(format!(
            "data/upgrade-info.json: plan {} at height {} is already applied",
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
        binary::check(report, layout, &version.name, &version.dir);
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
        LayoutError::CurrentNotLink { link } | LayoutError::CurrentInTheWay { link } => (
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
        LayoutError::NothingToRun { link, genesis, .. } => (
            format!("{} and {} do not exist", link.display(), genesis.display()),
            init,
        ),
        LayoutError::InTheWay { path, expected } => (
            format!("{} is not a {expected}", path.display()),
            format!("move it away and {init}"),
        ),
        other @ LayoutError::Io { .. } => (
            other.to_string(),
            "check the folder's permissions".to_owned(),
        ),
    }
}
