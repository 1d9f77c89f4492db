//! `add-upgrade` and `add-batch-upgrade`: staging upgrade binaries by hand, and scheduling manual
//! upgrades at a height (see `home/queue.rs` for how those happen: at the node's `--halt-height`, never
//! before).
//!
//! A height the node has already passed is refused before anything is changed; the node's height
//! comes from its `CometBFT` RPC, believed only when the answer carries this node's ID
//! (`supervisor/node_rpc.rs`). When the height cannot be checked (no RPC, another node's answer,
//! no node key) the plan is queued with a warning saying so. Two plans at one height are refused.
//! The queue is changed under its lock (`queue::update`). After queueing, the command
//! says what will happen: a running supervisor (it holds the home's lock) restarts the node with
//! the new `--halt-height` at once; otherwise the next `cosmovisor run start` uses it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use tracing::{info, warn};

use crate::commands::{Context, Run, block_on};
use crate::config::Config;
use crate::durable;
use crate::exit;
use crate::home::binary;
use crate::home::layout::Layout;
use crate::home::name::{NameError, UpgradeName};
use crate::home::plan;
use crate::home::queue::{self, Entry};
use crate::supervisor::lock;
use crate::supervisor::node_rpc::NodeRpc;
use crate::upgrade::journal::Journal;

/// What is wrong with the command's arguments (a usage error: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ArgumentError {
    #[error("invalid executable path {}: {err}", path.display())]
    Executable { path: PathBuf, err: String },
    #[error(
        "file already exists at {}: pass --force to replace it",
        .0.display()
    )]
    Exists(PathBuf),
    #[error("upgrade {name:?} is already scheduled at height {height}: pass --force to replace it")]
    Scheduled { name: String, height: i64 },
    #[error("upgrade height must be greater than 0, got {0}")]
    Height(i64),
    #[error(
        "argument at position {position} ({entry:?}) is invalid: expected <name>:<path>:<height>"
    )]
    Entry { position: usize, entry: String },
    #[error(
        "upgrade height at position {position} ({height:?}) is invalid: expected a whole number greater than 0"
    )]
    EntryHeight { position: usize, height: String },
    #[error("either --upgrade-file or --upgrade-list must be provided")]
    NoList,
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(
        "upgrades {first} and {second} would both be at height {height}: the node can halt for only one; give one of them another height"
    )]
    SameHeight {
        first: String,
        second: String,
        height: i64,
    },
    #[error(
        "missed manual upgrade {name} at height {height}, last known height is {latest} (the node's RPC at {rpc}): choose a height above {latest}"
    )]
    Missed {
        name: String,
        height: i64,
        latest: i64,
        rpc: String,
    },
}

impl crate::exit::ExitCode for ArgumentError {
    fn exit_code(&self) -> u8 {
        crate::exit::USAGE
    }
}

/// `add-upgrade --force` for the upgrade the journal says is under way: its binary may already
/// have run `pre-upgrade`, so it is not replaced (exit [`exit::HOME_BUSY`]).
#[derive(Debug, thiserror::Error)]
#[error(
    "upgrade {name} at height {height} is under way ({}): let cosmovisor finish it, or remove the journal to abandon it, then replace its binary",
    journal.display()
)]
pub struct UnderWayError {
    pub name: String,
    pub height: i64,
    pub journal: PathBuf,
}

impl crate::exit::ExitCode for UnderWayError {
    fn exit_code(&self) -> u8 {
        crate::exit::HOME_BUSY
    }
}

/// `cosmovisor add-upgrade`'s arguments.
#[derive(Debug, clap::Args)]
pub struct AddUpgradeArgs {
    /// The upgrade name (recased unless `COSMOVISOR_DISABLE_RECASE=true`).
    #[arg(value_name = "UPGRADE_NAME")]
    pub name: String,
    /// The new binary.
    #[arg(value_name = "PATH_TO_EXECUTABLE")]
    pub path: PathBuf,
    /// Replace an existing binary or schedule.
    #[arg(long)]
    pub force: bool,
    /// Schedule a manual upgrade at this height.
    #[arg(long = "upgrade-height", value_name = "HEIGHT")]
    pub upgrade_height: Option<i64>,
}

impl Run for AddUpgradeArgs {
    fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        ctx.start_logging();
        block_on(add_upgrade(
            ctx,
            &self.name,
            &self.path,
            self.force,
            self.upgrade_height,
        ))
    }
}

/// `add-upgrade <name> <path> [--force] [--upgrade-height H]`.
async fn add_upgrade(
    ctx: &Context,
    name: &str,
    executable: &Path,
    force: bool,
    height: Option<i64>,
) -> anyhow::Result<u8> {
    let cfg = ctx.load_for_writing()?;
    let layout = Layout::new(&cfg.home, &cfg.name);
    let name = UpgradeName::new(name, !cfg.disable_recase).map_err(ArgumentError::from)?;
    if let Some(height) = height.filter(|h| *h <= 0) {
        return Err(ArgumentError::Height(height).into());
    }
    check_executable(executable)?;
    if force {
        refuse_under_way(&layout, &cfg, &name)?;
    }
    let queue = layout.batch_file();
    if let Some(height) = height {
        refuse_scheduled(&queue::load(&queue)?, &name, height, force)?;
        refuse_passed(&cfg, &[(&name, height)]).await?;
    }
    stage(&layout, &name, executable, force)?;
    if let Some(height) = height {
        queue::update(&queue, |entries| -> anyhow::Result<()> {
            // Again under the lock: the queue may have changed since.
            refuse_scheduled(entries, &name, height, force)?;
            entries.retain(|e| !name.same_as(&e.name));
            entries.push(Entry::new(name.as_str(), height));
            Ok(())
        })?;
        info!(queue = %queue.display(), name = %name, height, "{} upgrade binary will switch at height {height}", name);
        tell_what_happens(&layout, &cfg, Some(&name))?;
    }
    Ok(exit::OK)
}

/// Refuses to schedule `name` at `height` when it is already scheduled (unless `force`) or
/// another upgrade is scheduled at that height.
fn refuse_scheduled(
    entries: &[Entry],
    name: &UpgradeName,
    height: i64,
    force: bool,
) -> Result<(), ArgumentError> {
    if let Some(entry) = entries.iter().find(|e| name.same_as(&e.name)) {
        if !force {
            return Err(ArgumentError::Scheduled {
                name: entry.name.clone(),
                height: entry.height,
            });
        }
    }
    match entries
        .iter()
        .find(|e| e.height == height && !name.same_as(&e.name))
    {
        Some(other) => Err(ArgumentError::SameHeight {
            first: other.name.clone(),
            second: name.to_string(),
            height,
        }),
        None => Ok(()),
    }
}

/// Refuses heights the node has already reached (its authenticated RPC says so); warns when it
/// cannot tell.
async fn refuse_passed(cfg: &Config, plans: &[(&UpgradeName, i64)]) -> anyhow::Result<()> {
    let rpc = NodeRpc::for_home(cfg);
    match rpc.latest_height().await {
        Ok(latest) => {
            if let Some((name, height)) = plans.iter().find(|(_, height)| *height <= latest) {
                return Err(ArgumentError::Missed {
                    name: name.to_string(),
                    height: *height,
                    latest,
                    rpc: rpc.shown(),
                }
                .into());
            }
            info!(node_height = latest, rpc = %rpc.shown(), "the node has not reached the upgrade height yet");
        }
        Err(err) => {
            warn!(error = %err, "the node's height could not be checked (COSMOVISOR_NODE_RPC); queueing the upgrade anyway: make sure the node has not reached its height");
        }
    }
    Ok(())
}

/// Says what the queue now makes happen for the plan `added` (or the queue's first): at once (a
/// supervisor runs) or at the next start.
fn tell_what_happens(
    layout: &Layout,
    cfg: &Config,
    added: Option<&UpgradeName>,
) -> anyhow::Result<()> {
    let applied = layout
        .version_to_run()
        .map(|dir| plan::read_applied(&dir))
        .unwrap_or_default();
    // The node's --unsafe-skip-upgrades are not known here: the running supervisor applies them.
    let Some(next) = queue::next_due(&layout.batch_file(), &applied, !cfg.disable_recase, &[])?
    else {
        warn!("no queued manual upgrade is newer than the applied one; none will happen");
        return Ok(());
    };
    if let Some(added) = added.filter(|added| !next.name.same_as(added.as_str())) {
        info!(
            "{added} is queued after {} at height {}: the node halts and upgrades there first",
            next.name, next.height
        );
        return Ok(());
    }
    if let Some(holder) = lock::holder(layout.root()) {
        info!(
            supervisor_pid = holder.pid,
            "the running node will be restarted with --halt-height {} (unless it already runs with it) and upgraded to {} when it halts there",
            next.height,
            next.name
        );
    } else {
        info!(
            "no cosmovisor supervises this home now: the next `cosmovisor run start` starts the node with --halt-height {} and upgrades it to {} when it halts there",
            next.height, next.name
        );
    }
    Ok(())
}

/// `cosmovisor add-batch-upgrade`'s arguments.
#[derive(Debug, clap::Args)]
pub struct AddBatchUpgradeArgs {
    /// Comma-separated <name>:<path>:<height> entries (the flag may be repeated).
    #[arg(
        long = "upgrade-list",
        value_name = "LIST",
        conflicts_with = "upgrade_file"
    )]
    pub upgrade_list: Vec<String>,
    /// A headerless CSV file of <name>,<path>,<height> rows.
    #[arg(long = "upgrade-file", value_name = "FILE")]
    pub upgrade_file: Option<PathBuf>,
}

impl Run for AddBatchUpgradeArgs {
    fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        ctx.start_logging();
        block_on(add_batch_upgrade(
            ctx,
            &self.upgrade_list,
            self.upgrade_file.as_deref(),
        ))
    }
}

/// `add-batch-upgrade --upgrade-list n:path:h,… | --upgrade-file <csv>`: stages every binary
/// (replacing existing ones, as Go does) and replaces the queue with these plans.
async fn add_batch_upgrade(
    ctx: &Context,
    list: &[String],
    file: Option<&Path>,
) -> anyhow::Result<u8> {
    let cfg = ctx.load_for_writing()?;
    let layout = Layout::new(&cfg.home, &cfg.name);
    let raw: Vec<String> = match (file, list.is_empty()) {
        (Some(file), _) => {
            { crate::bounded_read::read_capped_string(file, crate::bounded_read::DOCUMENT_CAP)? }
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(str::to_owned)
                .collect()
        }
        (None, false) => list
            .iter()
            .flat_map(|item| item.split(','))
            .map(|s| s.trim().to_owned())
            .collect(),
        (None, true) => return Err(ArgumentError::NoList.into()),
    };
    let mut planned = Vec::new();
    for (position, entry) in raw.iter().enumerate() {
        planned.push(parse_entry(position, entry, &cfg)?);
    }
    for (name, executable, _) in &planned {
        check_executable(executable)?;
        refuse_under_way(&layout, &cfg, name)?;
    }
    let mut heights: Vec<(&UpgradeName, i64)> = planned
        .iter()
        .map(|(name, _, height)| (name, *height))
        .collect();
    heights.sort_by_key(|(_, height)| *height);
    if let Some(pair) = heights.windows(2).find(|pair| pair[0].1 == pair[1].1) {
        return Err(ArgumentError::SameHeight {
            first: pair[0].0.to_string(),
            second: pair[1].0.to_string(),
            height: pair[0].1,
        }
        .into());
    }
    refuse_passed(&cfg, &heights).await?;
    let mut entries = Vec::new();
    for (name, executable, height) in &planned {
        stage(&layout, name, executable, true)?;
        entries.push(Entry::new(name.as_str(), *height));
    }
    let queue = layout.batch_file();
    queue::update(&queue, |queued| -> anyhow::Result<()> {
        queued.clone_from(&entries);
        Ok(())
    })?;
    info!(queue = %queue.display(), upgrades = entries.len(), "manual upgrades scheduled");
    tell_what_happens(&layout, &cfg, None)?;
    Ok(exit::OK)
}

/// `<name>:<path>:<height>` (CSV rows use `,` — the list form splits on `,` first).
fn parse_entry(
    position: usize,
    entry: &str,
    cfg: &Config,
) -> Result<(UpgradeName, PathBuf, i64), ArgumentError> {
    let parts: Vec<&str> = if entry.contains(':') {
        entry.split(':').collect()
    } else {
        entry.split(',').collect()
    };
    let [name, path, height] = parts[..] else {
        return Err(ArgumentError::Entry {
            position,
            entry: entry.to_owned(),
        });
    };
    let height_value = height
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|h| *h > 0)
        .ok_or_else(|| ArgumentError::EntryHeight {
            position,
            height: height.to_owned(),
        })?;
    // Parity: Go takes filepath.Base of the name.
    let base = name.trim().rsplit('/').next().unwrap_or_default();
    Ok((
        UpgradeName::new(base, !cfg.disable_recase)?,
        PathBuf::from(path.trim()),
        height_value,
    ))
}

/// Refuses to replace the binary of the upgrade the journal records as under way.
fn refuse_under_way(layout: &Layout, cfg: &Config, name: &UpgradeName) -> anyhow::Result<()> {
    let path = layout.journal_file();
    match Journal::load(&path, &cfg.data_backup_dir)? {
        Some(journal) if name.same_as(&journal.plan.name) => Err(UnderWayError {
            name: journal.plan.name,
            height: journal.plan.height,
            journal: path,
        }
        .into()),
        _ => Ok(()),
    }
}

/// The file to stage must be a regular file this machine can execute (an ELF binary for it or a
/// `#!` script): anything else the C library would run with `/bin/sh`.
fn check_executable(path: &Path) -> Result<(), ArgumentError> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => binary::check_format(path).map_err(|err| {
            let err = match err {
                binary::BinaryError::NotForThisMachine { why, .. } => why,
                other => other.to_string(),
            };
            ArgumentError::Executable {
                path: path.to_path_buf(),
                err,
            }
        }),
        Ok(_) => Err(ArgumentError::Executable {
            path: path.to_path_buf(),
            err: "not a regular file".into(),
        }),
        Err(err) => Err(ArgumentError::Executable {
            path: path.to_path_buf(),
            err: err.to_string(),
        }),
    }
}

/// Copies `executable` to `upgrades/<name>/bin/<daemon>` (temp file + rename, mode 0755).
fn stage(
    layout: &Layout,
    name: &UpgradeName,
    executable: &Path,
    force: bool,
) -> anyhow::Result<()> {
    let bin = layout.bin_in(&layout.upgrade_dir(name));
    if bin.exists() && !force {
        return Err(ArgumentError::Exists(bin).into());
    }
    let dir = bin.parent().map(Path::to_path_buf).unwrap_or_default();
    durable::create_dir_all_durable(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    if let Err(err) = durable::copy_atomic(executable, &bin, durable::Mode::Exactly(0o755)) {
        bail!(
            "cannot copy {} to {}: {err}",
            executable.display(),
            bin.display()
        );
    }
    info!(executable = %executable.display(), name = %name, "Using {} for {} upgrade", executable.display(), name);
    info!(path = %bin.display(), "Upgrade binary located at {}", bin.display());
    Ok(())
}
