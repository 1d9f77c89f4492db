//! `cosmovisor rollback [--to <version>] [--restore-data] [--yes]`: points `current` back at an
//! earlier version, optionally restoring `data/` from the newest backup.
//!
//! Semantics (README, "Rollback"):
//! * The target is `--to` (`genesis`, a folder under `upgrades/`, or a plan name), or else the
//!   version applied at the highest height below the current one (genesis when none): versions
//!   are ordered by the height in their `upgrade-info.json` record.
//! * Refused while the home is in use: the supervisor lock is held, the daemon recorded in the
//!   pid file still runs, or an upgrade journal exists. The lock is then held by us for the
//!   whole rollback, so no supervisor can start meanwhile.
//! * `--restore-data` replaces `data/` by the newest complete `data-backup-*`, keeping the
//!   current signing state (`upgrade/backup/restore.rs`). A failed copy changes nothing.
//! * A plan in `data/upgrade-info.json` that the rolled-back version would apply again at start
//!   is renamed to `upgrade-info.json.rolled-back`.
//! * Last, `current` is swapped atomically. Nothing is deleted.
//!
//! On a terminal it asks before changing anything; without one it needs `--yes`. This file keeps
//! the arguments, the checks, the prompt and what is printed; the restore itself is
//! `upgrade/backup/restore.rs`.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context as _;

use crate::commands::{Context, Run};
use crate::durable;
use crate::exit;
use crate::home::binary;
use crate::home::inventory::{self, Version};
use crate::home::layout::{self, Layout, UPGRADE_INFO_FILE};
use crate::home::plan::Applied;
use crate::supervisor::lock::{self, SupervisorLock};
use crate::supervisor::process::pid_file;
use crate::upgrade::backup::restore::{self, SIGNING_STATE};
use crate::upgrade::backup::store;
use crate::upgrade::journal::Journal;

/// Why a rollback was not done. Nothing was changed in every case.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(
        "a cosmovisor supervises this home ({} is locked{}): stop it first (for example `systemctl stop cosmovisor`)",
        lock.display(),
        holder.map_or_else(String::new, |holder| format!(" by {holder}"))
    )]
    SupervisorRunning {
        lock: PathBuf,
        holder: Option<lock::Holder>,
    },
    #[error("the daemon started by cosmovisor is still running (pid {pid}): stop it first")]
    DaemonRunning { pid: i32 },
    #[error(
        "upgrade {name} at height {height} is under way ({}): start cosmovisor to finish it, or remove the journal to abandon it, then roll back",
        path.display()
    )]
    UpgradeUnderWay {
        name: String,
        height: i64,
        path: PathBuf,
    },
    #[error("current points at genesis: there is no earlier version to roll back to")]
    AtGenesis,
    #[error(
        "current version {version} has no record of the height it was applied at ({}): name the version to roll back to with --to",
        record.display()
    )]
    CurrentUnrecorded { version: String, record: PathBuf },
    #[error("--to {wanted}: no such version (expected genesis or a folder in {})", upgrades.display())]
    UnknownVersion { wanted: String, upgrades: PathBuf },
    #[error("--to {0}: current already points at it")]
    AlreadyCurrent(String),
    #[error("--restore-data: no complete backup (data-backup-*) in {}", dir.display())]
    NoBackup { dir: PathBuf },
    #[error(
        "--restore-data: backup {} no longer holds data/ as it was: {changed}; these files are shared with data/ (hard links) and were changed there after the backup: restore it anyway with --force (those files come back as they are now), or move this backup aside to restore an older one",
        backup.display()
    )]
    BackupChanged { backup: PathBuf, changed: String },
    #[error(
        "rollback changes the node's binary{}: confirm on a terminal or pass --yes",
        if *restore { " and data" } else { "" }
    )]
    NeedsConfirmation { restore: bool },
}

/// [`exit::HOME_BUSY`] when something runs; [`exit::USAGE`] for a rollback that cannot be done as
/// asked.
impl exit::ExitCode for RollbackError {
    fn exit_code(&self) -> u8 {
        match self {
            RollbackError::SupervisorRunning { .. }
            | RollbackError::DaemonRunning { .. }
            | RollbackError::UpgradeUnderWay { .. }
            | RollbackError::BackupChanged { .. } => exit::HOME_BUSY,
            _ => exit::USAGE,
        }
    }
}

/// `cosmovisor rollback`'s arguments.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The version to roll back to: `genesis` or an upgrade name (default: the version
    /// applied before the current one).
    #[arg(long = "to", value_name = "VERSION")]
    pub to: Option<String>,
    /// Also restore data/ from the newest complete backup (`priv_validator_state.json` is
    /// never rolled back); the current data/ is kept as data.rolled-back-<time>.
    #[arg(long = "restore-data")]
    pub restore_data: bool,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    /// With --restore-data: restore the backup even when files it shares with data/ (hard-linked
    /// table files) were changed since it was taken.
    #[arg(long = "force", requires = "restore_data")]
    pub force: bool,
}

impl Run for RollbackArgs {
    fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        ctx.start_logging();
        rollback(ctx, &self)
    }
}

#[expect(
    clippy::too_many_lines,
    reason = "one linear procedure: checks, summary, confirmation, then the three changes"
)]
fn rollback(ctx: &Context, request: &RollbackArgs) -> anyhow::Result<u8> {
    let cfg = ctx.load_for_writing()?;
    let layout = Layout::new(&cfg.home, &cfg.name);
    layout::check_home(&layout)?;
    let root = layout.root();
    let Some(_lock) = SupervisorLock::try_acquire(root)
        .with_context(|| format!("cannot lock {}", lock::lock_file(root).display()))?
    else {
        return Err(RollbackError::SupervisorRunning {
            holder: lock::holder(root),
            lock: lock::lock_file(root),
        }
        .into());
    };
    if let Some(pid) = pid_file::running(&layout.daemon_pid_file()) {
        return Err(RollbackError::DaemonRunning { pid: pid.as_raw() }.into());
    }
    if let Some(journal) = Journal::load(&layout.journal_file(), &cfg.data_backup_dir)? {
        return Err(RollbackError::UpgradeUnderWay {
            name: journal.plan.name,
            height: journal.plan.height,
            path: layout.journal_file(),
        }
        .into());
    }
    let current_dir = layout.current_dir()?;
    let versions = inventory::versions(&layout)
        .with_context(|| format!("cannot list {}", layout.upgrades_dir().display()))?;
    let current_name = inventory::version_name(&layout, &current_dir);
    let target = choose_target(
        &layout,
        &versions,
        &current_name,
        request.to.as_deref(),
        !cfg.disable_recase,
    )?;
    binary::check_binary(&layout.bin_in(&target.dir))?;
    let restore_from = if request.restore_data {
        let newest = store::newest(&cfg.data_backup_dir)
            .with_context(|| format!("cannot list backups in {}", cfg.data_backup_dir.display()))?;
        Some(newest.ok_or_else(|| RollbackError::NoBackup {
            dir: cfg.data_backup_dir.clone(),
        })?)
    } else {
        None
    };
    let changed = restore_from
        .as_ref()
        .and_then(|backup| store::changes(&backup.path))
        .filter(|changed| !changed.is_empty())
        .map(|changed| describe_changes(&changed));
    if let (Some(backup), Some(changed)) = (&restore_from, &changed) {
        if !request.force {
            return Err(RollbackError::BackupChanged {
                backup: backup.path.clone(),
                changed: changed.clone(),
            }
            .into());
        }
    }

    let mut stdout = io::stdout();
    let describe = |v: &str, height: Option<i64>| match height {
        Some(h) if h > 0 => format!("{v} (applied at height {h})"),
        _ => v.to_owned(),
    };
    let current_height = versions
        .iter()
        .find(|v| v.name == current_name)
        .and_then(Version::height);
    let mut plan = format!(
        "Rolling back {} from {} to {}.\n",
        layout.current_link().display(),
        describe(&current_name, current_height),
        describe(&target.name, target.height())
    );
    if let (Some(backup), Some(changed)) = (&restore_from, &changed) {
        let _ = writeln!(
            plan,
            "Warning (--force): backup {} no longer holds data/ as it was: {changed}.",
            backup.path.display()
        );
    }
    if let Some(backup) = &restore_from {
        let _ = write!(
            plan,
            "data/ will be restored from {} (the newest complete backup); the current data/ is kept beside it as data.rolled-back-<date>-<time>.\n\
             {SIGNING_STATE} is never rolled back: the current one is carried into the restored data/ \
             (an older signing state would make the validator double-sign).\n",
            backup.path.display(),
        );
    }
    write!(stdout, "{plan}").context("cannot write to stdout")?;
    stdout.flush().context("cannot write to stdout")?;
    if !request.yes && !confirm(request.restore_data)? {
        writeln!(stdout, "Rollback cancelled; nothing was changed.")
            .context("cannot write to stdout")?;
        return Ok(exit::OK);
    }

    if let Some(backup) = &restore_from {
        let kept = restore::restore_data(&layout, &backup.path)?;
        writeln!(
            stdout,
            "Restored data/ from {}; the previous data/ is now {}.",
            backup.path.display(),
            kept.display()
        )
        .context("cannot write to stdout")?;
        if layout.data_dir().join(SIGNING_STATE).exists() && kept.join(SIGNING_STATE).exists() {
            writeln!(
                stdout,
                "Kept the current data/{SIGNING_STATE} (the signing state is never rolled back)."
            )
            .context("cannot write to stdout")?;
        } else {
            writeln!(
                stdout,
                "Warning: the previous data/ had no {SIGNING_STATE}; the restored data/ keeps the backup's (check it before signing)."
            )
            .context("cannot write to stdout")?;
        }
    }
    if let Some((name, height, aside)) =
        move_plan_aside(&layout, &target.applied, !cfg.disable_recase)?
    {
        writeln!(
            stdout,
            "Moved data/{UPGRADE_INFO_FILE} (upgrade {name} at height {height}) to {}, so the rolled-back version does not apply it again at start.\n\
             The chain asks for upgrade {name} again at height {height}: before starting the node, fix {} or add `--unsafe-skip-upgrades {height}` to the daemon's arguments.",
            aside.display(),
            layout.upgrades_dir().join(&name).display()
        )
        .context("cannot write to stdout")?;
    }
    layout.set_current(&target.dir).with_context(|| {
        format!(
            "cannot point {} at {}",
            layout.current_link().display(),
            target.dir.display()
        )
    })?;
    let link = fs::read_link(layout.current_link()).unwrap_or_else(|_| target.dir.clone());
    writeln!(
        stdout,
        "Rolled back: current -> {} ({}).",
        link.display(),
        target.name
    )
    .context("cannot write to stdout")?;
    Ok(exit::OK)
}

/// The version to roll back to: the named one, or the one applied at the highest height below
/// the current one (genesis when none).
pub fn choose_target<'a>(
    layout: &Layout,
    versions: &'a [Version],
    current: &str,
    to: Option<&str>,
    recase: bool,
) -> Result<&'a Version, RollbackError> {
    if let Some(wanted) = to {
        let found = inventory::find_version(versions, wanted, recase).ok_or_else(|| {
            RollbackError::UnknownVersion {
                wanted: wanted.to_owned(),
                upgrades: layout.upgrades_dir(),
            }
        })?;
        if found.name == current {
            return Err(RollbackError::AlreadyCurrent(wanted.to_owned()));
        }
        return Ok(found);
    }
    if current == inventory::GENESIS {
        return Err(RollbackError::AtGenesis);
    }
    let current_version = versions.iter().find(|v| v.name == current);
    let Some(current_height) = current_version.and_then(Version::height) else {
        return Err(RollbackError::CurrentUnrecorded {
            version: current.to_owned(),
            record: Layout::applied_plan_file(&layout.upgrades_dir().join(current)),
        });
    };
    versions
        .iter()
        .filter(|v| v.name != current)
        .filter_map(|v| v.height().map(|h| (h, v)))
        .filter(|(h, _)| *h < current_height)
        .max_by_key(|(h, _)| *h)
        .map(|(_, v)| v)
        .ok_or(RollbackError::AtGenesis)
}

/// `N hard-linked files changed since it was taken (a, b, c, …)`, naming the first few.
fn describe_changes(changed: &[String]) -> String {
    const NAMED: usize = 3;
    let more = if changed.len() > NAMED { ", …" } else { "" };
    format!(
        "{} hard-linked file(s) changed since it was taken ({}{more})",
        changed.len(),
        changed[..changed.len().min(NAMED)].join("; ")
    )
}

/// Asks on the terminal; refuses without one.
fn confirm(restore: bool) -> anyhow::Result<bool> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        return Err(RollbackError::NeedsConfirmation { restore }.into());
    }
    eprint!("Roll back? [y/N] ");
    let _ = io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

/// Renames `data/upgrade-info.json` aside when the rolled-back version would apply its plan.
fn move_plan_aside(
    layout: &Layout,
    target: &Applied,
    recase: bool,
) -> anyhow::Result<Option<(String, i64, PathBuf)>> {
    let Ok(Some(plan)) = inventory::pending_plan(layout, recase) else {
        return Ok(None);
    };
    if !target.is_superseded_by(&plan) {
        return Ok(None);
    }
    let file = layout.upgrade_info_file();
    let aside = layout
        .data_dir()
        .join(format!("{UPGRADE_INFO_FILE}.rolled-back"));
    fs::rename(&file, &aside)
        .with_context(|| format!("cannot rename {} to {}", file.display(), aside.display()))?;
    let data = layout.data_dir();
    durable::sync_dir(&data).with_context(|| format!("cannot sync {}", data.display()))?;
    Ok(Some((plan.name.dir_name(), plan.height, aside)))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn version(name: &str, height: Option<i64>) -> Version {
        Version {
            name: name.to_owned(),
            dir: PathBuf::from("/h/cosmovisor/upgrades").join(name),
            applied: Applied {
                name: height.map(|_| name.to_owned()),
                height: height.unwrap_or(0),
            },
        }
    }

    #[test]
    fn chooses_the_previous_version_by_height() {
        let layout = Layout::new(Path::new("/h"), "simd");
        let versions = vec![
            version("genesis", None),
            version("v2", Some(10)),
            version("v3", Some(20)),
            version("v4", None),
        ];
        let pick = |current: &str, to: Option<&str>| {
            choose_target(&layout, &versions, current, to, true)
                .map(|v| v.name.clone())
                .map_err(|e| e.to_string())
        };
        assert_eq!(pick("v3", None), Ok("v2".into()));
        assert_eq!(pick("v2", None), Ok("genesis".into()));
        assert_eq!(pick("v3", Some("genesis")), Ok("genesis".into()));
        assert_eq!(pick("v3", Some("V2")), Ok("v2".into()));
        assert_eq!(
            pick("genesis", None),
            Err("current points at genesis: there is no earlier version to roll back to".into())
        );
        assert_eq!(
            pick("v3", Some("v3")),
            Err("--to v3: current already points at it".into())
        );
        assert_eq!(
            pick("v3", Some("v9")),
            Err(
                "--to v9: no such version (expected genesis or a folder in /h/cosmovisor/upgrades)"
                    .into()
            )
        );
        assert!(pick("v4", None).is_err_and(|e| e.contains("has no record")));
    }
}
