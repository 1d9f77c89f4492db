//! `cosmovisor status [--output json]`: what this home runs and what comes next, read without
//! changing anything (not even the supervisor lock, which is inspected through `/proc/locks`).
//!
//! The JSON keys are a stable interface (README, "Status, doctor, rollback, metrics"): sections
//! are `null` when there is nothing to show, and problems met while reading go to `errors`.

use std::io::Write;
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context as _;
use serde::Serialize;

use crate::bounded_read::{self, DOCUMENT_CAP};
use crate::commands::{Context, OutputFormat, Run};
use crate::exit;
use crate::home::binary;
use crate::home::inventory;
use crate::home::layout::Layout;
use crate::supervisor::process::pid_file;
use crate::upgrade::journal::Journal;

#[derive(Debug, Serialize)]
pub struct Status {
    pub cosmovisor_version: &'static str,
    pub home: PathBuf,
    pub daemon_name: String,
    pub current: Option<Current>,
    pub applied_plan: Option<AppliedPlan>,
    /// The plan a supervisor would carry out (`null` unless one is pending).
    pub pending_plan: Option<PendingPlan>,
    /// What `data/upgrade-info.json` holds, pending or not (`null`: no file, or one that is not a
    /// plan, which is in `errors`).
    pub plan_file: Option<PlanFile>,
    /// The manual upgrades queued in `data/upgrade-info.json.batch`, lowest height first.
    pub manual_upgrades: Vec<AppliedPlan>,
    pub staged_upgrades: Vec<Staged>,
    pub last_backup: Option<LastBackup>,
    pub journal: Option<JournalState>,
    /// The lowest upgrade scheduled on chain (gRPC `CurrentPlan`) or in the manual queue, and
    /// whether it is ready (README "Before the upgrade"); `null` when none is.
    pub next_upgrade: Option<NextUpgrade>,
    pub daemon: Running,
    pub supervisor: Running,
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Current {
    /// `genesis` or the folder name under `upgrades/`.
    pub version: String,
    pub dir: PathBuf,
    pub binary: PathBuf,
    pub binary_ok: bool,
}

#[derive(Debug, Serialize)]
pub struct AppliedPlan {
    pub name: String,
    pub height: i64,
}

#[derive(Debug, Serialize)]
pub struct PendingPlan {
    pub name: String,
    pub height: i64,
    pub info: String,
    /// Always `true`: a plan that would not be carried out is not pending (see [`PlanFile`]).
    pub would_trigger: bool,
    pub upgrade_dir: PathBuf,
    pub binary_staged: bool,
}

#[derive(Debug, Serialize)]
pub struct NextUpgrade {
    pub name: String,
    pub height: i64,
    /// `chain` or `manual`.
    pub source: &'static str,
    pub ready: bool,
    /// Why it is not ready, with the fix (`null` when ready).
    pub problem: Option<String>,
    /// Seconds to its height; `null` here (one look at the node gives no block time: the
    /// supervisor's metrics carry it).
    pub eta_seconds: Option<u64>,
    /// Blocks to its height, when the node's authenticated RPC answered (not in the JSON).
    #[serde(skip)]
    pub blocks_left: Option<i64>,
}

/// How long `status` and `doctor` wait for the node's gRPC.
pub const GRPC_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The next scheduled upgrade, judged now, with the blocks left when the node's RPC answers;
/// and why the chain's plan is unknown, if it is.
pub async fn next_upgrade(
    cfg: &crate::config::Config,
    layout: &Layout,
) -> (Option<NextUpgrade>, Option<String>) {
    let ahead = crate::upgrade::scheduled::look_ahead(cfg, layout, GRPC_LIMIT).await;
    let Some(first) = ahead.upgrades.into_iter().next() else {
        return (None, ahead.chain_error);
    };
    let node = crate::supervisor::node_rpc::NodeRpc::for_home(cfg)
        .latest_height()
        .await
        .ok();
    let plan = &first.scheduled.plan;
    let next = NextUpgrade {
        name: plan.name.as_str().to_owned(),
        height: plan.height,
        source: first.scheduled.source.name(),
        ready: first.verdict.is_ok(),
        problem: first.verdict.err().map(|not_ready| not_ready.to_string()),
        eta_seconds: None,
        blocks_left: node.map(|height| (plan.height - height).max(0)),
    };
    (Some(next), ahead.chain_error)
}

#[derive(Debug, Serialize)]
pub struct PlanFile {
    pub name: String,
    pub height: i64,
    /// `pending` (a supervisor would carry it out), `applied` (not newer than the applied plan),
    /// `skipped` (its height is in the running node's `--unsafe-skip-upgrades`) or `unusable`
    /// (it can never be applied; the reason is in `errors`).
    pub state: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Staged {
    pub name: String,
    pub dir: PathBuf,
    pub binary: PathBuf,
    pub binary_present: bool,
    pub binary_executable: bool,
    /// The height it was switched to at, `null` when it never was.
    pub applied_height: Option<i64>,
    pub current: bool,
}

#[derive(Debug, Serialize)]
pub struct LastBackup {
    pub path: PathBuf,
    pub size_bytes: u64,
    pub age_seconds: u64,
    /// How it was taken (`copy`, `checkpoint`, `reflink`); `null` for a backup without a record.
    pub mode: Option<String>,
    /// The files it shares with `data/` (hard links) that changed since it was taken, in words;
    /// empty when none did or nothing is shared.
    pub changed_files: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct JournalState {
    pub name: String,
    pub height: i64,
    pub phase: &'static str,
    pub started_at: String,
}

#[derive(Debug, Serialize)]
pub struct Running {
    pub running: bool,
    pub pid: Option<i32>,
    /// The user it runs as, when that is not the home's owner (the supervisor lock only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreign_uid: Option<u32>,
}

/// `cosmovisor status`'s arguments.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Output format (JSON keys are documented in the README).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

impl Run for StatusArgs {
    fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let cfg = ctx.load_home()?;
        let layout = Layout::new(&cfg.home, &cfg.name);
        let mut status = gather(&layout, &cfg);
        let (next, chain_error) =
            crate::commands::block_on(async { Ok(next_upgrade(&cfg, &layout).await) })?;
        status.next_upgrade = next;
        let mut stdout = std::io::stdout();
        match self.output {
            OutputFormat::Json => {
                let text = serde_json::to_string_pretty(&status).context("cannot encode status")?;
                writeln!(stdout, "{text}")
            }
            OutputFormat::Text => {
                use std::fmt::Write as _;
                let mut shown = text(&status);
                if status.next_upgrade.is_none() {
                    if let Some(err) = chain_error {
                        let _ = writeln!(
                            shown,
                            "{:<11} the chain's scheduled upgrade is unknown: {err}",
                            "note:"
                        );
                    }
                }
                stdout.write_all(shown.as_bytes())
            }
        }
        .context("cannot write to stdout")?;
        Ok(exit::OK)
    }
}

/// Reads everything `status` shows.
#[must_use]
#[expect(
    clippy::too_many_lines,
    reason = "one section after the other, each a few lines"
)]
pub fn gather(layout: &Layout, cfg: &crate::config::Config) -> Status {
    let recase = !cfg.disable_recase;
    let mut errors = Vec::new();
    let current_dir = match layout.current_dir() {
        Ok(dir) => Some(dir),
        Err(err) => {
            errors.push(err.to_string());
            None
        }
    };
    let current = current_dir.as_ref().map(|dir| {
        let binary = layout.bin_in(dir);
        Current {
            version: inventory::version_name(layout, dir),
            dir: dir.clone(),
            binary_ok: binary::check_binary(&binary).is_ok(),
            binary,
        }
    });
    let applied = current_dir
        .as_deref()
        .map(crate::home::plan::read_applied)
        .unwrap_or_default();
    let applied_plan = applied.name.as_ref().map(|name| AppliedPlan {
        name: name.clone(),
        height: applied.height,
    });
    let daemon_pid = pid_file::running(&layout.daemon_pid_file()).map(nix::unistd::Pid::as_raw);
    let skip = daemon_pid.map(daemon_skip_heights).unwrap_or_default();
    let (plan_file, pending_plan) = match inventory::pending_plan(layout, recase) {
        Ok(Some(plan)) => {
            let state = if !applied.is_superseded_by(&plan) {
                "applied"
            } else if skip.contains(&plan.height) {
                "skipped"
            } else {
                "pending"
            };
            let upgrade_dir = layout.upgrade_dir(&plan.name);
            let pending = (state == "pending").then(|| PendingPlan {
                name: plan.name.as_str().to_owned(),
                height: plan.height,
                info: crate::redact::redact(&plan.info),
                would_trigger: true,
                binary_staged: binary::check_binary(&layout.bin_in(&upgrade_dir)).is_ok(),
                upgrade_dir,
            });
            let file = PlanFile {
                name: plan.name.as_str().to_owned(),
                height: plan.height,
                state,
            };
            (Some(file), pending)
        }
        Ok(None) => (None, None),
        Err(err) => {
            let found = bounded_read::read_capped(&layout.upgrade_info_file(), DOCUMENT_CAP)
                .ok()
                .and_then(|bytes| crate::home::plan::identify(&bytes));
            let file = found.map(|(name, height)| PlanFile {
                state: if skip.contains(&height) {
                    "skipped"
                } else {
                    "unusable"
                },
                name,
                height,
            });
            if file.as_ref().is_none_or(|file| file.state != "skipped") {
                errors.push(err);
            }
            (file, None)
        }
    };
    let staged_upgrades = match inventory::versions(layout) {
        Ok(versions) => versions
            .into_iter()
            .filter(|v| !v.is_genesis())
            .map(|v| {
                let binary = layout.bin_in(&v.dir);
                let state = inventory::binary_state(&binary);
                Staged {
                    current: current_dir.as_ref() == Some(&v.dir),
                    applied_height: v.height(),
                    name: v.name,
                    dir: v.dir,
                    binary,
                    binary_present: state.present,
                    binary_executable: state.executable,
                }
            })
            .collect(),
        Err(err) => {
            errors.push(format!(
                "cannot list {}: {err}",
                layout.upgrades_dir().display()
            ));
            Vec::new()
        }
    };
    let last_backup = match crate::upgrade::backup::store::newest(&cfg.data_backup_dir) {
        Ok(Some(backup)) => Some(LastBackup {
            size_bytes: inventory::tree_size(&backup.path).unwrap_or(0),
            mode: crate::upgrade::backup::store::read_record(&backup.path)
                .map(|record| record.mode),
            changed_files: crate::upgrade::backup::store::changes(&backup.path).unwrap_or_default(),
            age_seconds: SystemTime::now()
                .duration_since(backup.modified)
                .map_or(0, |age| age.as_secs()),
            path: backup.path,
        }),
        Ok(None) => None,
        Err(err) => {
            errors.push(format!(
                "cannot list backups in {}: {err}",
                cfg.data_backup_dir.display()
            ));
            None
        }
    };
    let manual_upgrades = match crate::home::queue::plans(&layout.batch_file(), recase) {
        Ok(plans) => plans
            .into_iter()
            .map(|plan| AppliedPlan {
                name: plan.raw_name,
                height: plan.height,
            })
            .collect(),
        Err(err) => {
            errors.push(err.to_string());
            Vec::new()
        }
    };
    let journal = match Journal::load(&layout.journal_file(), &cfg.data_backup_dir) {
        Ok(journal) => journal.map(|j| JournalState {
            name: j.plan.name,
            height: j.plan.height,
            phase: j.phase.name(),
            started_at: j.started_at,
        }),
        Err(err) => {
            errors.push(err.to_string());
            None
        }
    };
    let supervisor = crate::supervisor::lock::holder(layout.root());
    Status {
        cosmovisor_version: crate::VERSION,
        home: layout.home().to_path_buf(),
        daemon_name: layout.daemon_name().to_owned(),
        current,
        applied_plan,
        pending_plan,
        plan_file,
        manual_upgrades,
        staged_upgrades,
        last_backup,
        journal,
        next_upgrade: None,
        daemon: Running {
            running: daemon_pid.is_some(),
            pid: daemon_pid,
            foreign_uid: None,
        },
        supervisor: Running {
            running: supervisor.is_some(),
            pid: supervisor.map(|holder| holder.pid),
            foreign_uid: supervisor.and_then(|holder| holder.foreign_uid),
        },
        errors,
    }
}

/// The `--unsafe-skip-upgrades` heights of the running daemon (from its command line), which a
/// supervisor honours.
fn daemon_skip_heights(pid: i32) -> Vec<i64> {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return Vec::new();
    };
    let args: Vec<std::ffi::OsString> = cmdline
        .split(|&b| b == 0)
        .map(|arg| std::ffi::OsStr::from_bytes(arg).to_owned())
        .collect();
    crate::home::plan::skip_heights(&args)
}

/// The human-readable form.
#[must_use]
#[expect(
    clippy::too_many_lines,
    reason = "one line per section, in the order of the JSON"
)]
pub fn text(status: &Status) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    // Names and errors come from plans and folders anyone may have written: no control
    // character reaches the operator's terminal (`log::escape_controls`).
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<11} {}", crate::log::escape_controls(&value));
    };
    line("home:", status.home.display().to_string());
    line(
        "current:",
        match &status.current {
            Some(c) if c.binary_ok => format!("{} ({})", c.version, c.binary.display()),
            Some(c) => format!(
                "{} ({}: missing or not executable)",
                c.version,
                c.binary.display()
            ),
            None => "unknown (see errors)".to_owned(),
        },
    );
    line(
        "applied:",
        status.applied_plan.as_ref().map_or_else(
            || "none (genesis)".to_owned(),
            |p| format!("{} at height {}", p.name, p.height),
        ),
    );
    line(
        "pending:",
        match (&status.pending_plan, &status.plan_file) {
            (Some(p), _) => format!(
                "{} at height {} (will be applied; binary {})",
                p.name,
                p.height,
                if p.binary_staged {
                    "staged"
                } else {
                    "NOT staged"
                }
            ),
            (None, Some(f)) => format!(
                "none (data/upgrade-info.json holds {} at height {}, {})",
                f.name,
                f.height,
                match f.state {
                    "applied" => "already applied",
                    "skipped" => "skipped: its height is in the node's --unsafe-skip-upgrades",
                    _ => "which can never be applied: see the error below",
                }
            ),
            (None, None) => "none".to_owned(),
        },
    );
    let queue: Vec<String> = status
        .manual_upgrades
        .iter()
        .map(|p| format!("{} at height {}", p.name, p.height))
        .collect();
    line(
        "manual:",
        if queue.is_empty() {
            "none".to_owned()
        } else {
            queue.join(", ")
        },
    );
    if status.staged_upgrades.is_empty() {
        line("upgrades:", "none".to_owned());
    }
    for (i, s) in status.staged_upgrades.iter().enumerate() {
        let binary = match (s.binary_present, s.binary_executable) {
            (true, true) => "binary ok",
            (true, false) => "binary not executable",
            _ => "binary missing",
        };
        let applied = s
            .applied_height
            .map_or_else(String::new, |h| format!(", applied at height {h}"));
        let current = if s.current { ", current" } else { "" };
        line(
            if i == 0 { "upgrades:" } else { "" },
            format!("{} ({binary}{applied}{current})", s.name),
        );
    }
    line(
        "backup:",
        status.last_backup.as_ref().map_or_else(
            || "none".to_owned(),
            |b| {
                format!(
                    "{} ({} bytes, {} old, mode {})",
                    b.path.display(),
                    b.size_bytes,
                    crate::config::format_go_duration(std::time::Duration::from_secs(
                        b.age_seconds
                    )),
                    b.mode.as_deref().unwrap_or("unknown")
                )
            },
        ),
    );
    if let Some(backup) = &status.last_backup {
        for changed in &backup.changed_files {
            line(
                "",
                format!(
                    "CHANGED since the backup (rollback --restore-data refuses it without --force): {changed}"
                ),
            );
        }
    }
    line(
        "journal:",
        status.journal.as_ref().map_or_else(
            || "none".to_owned(),
            |j| {
                format!(
                    "upgrade {} at height {} under way, phase {} (since {})",
                    j.name, j.height, j.phase, j.started_at
                )
            },
        ),
    );
    let running = |r: &Running| match (r.pid, r.foreign_uid) {
        (Some(pid), None) => format!("running (pid {pid})"),
        (Some(pid), Some(uid)) => {
            format!("running (pid {pid}, run by uid {uid}, not the home's owner)")
        }
        (None, _) => "not running".to_owned(),
    };
    line(
        "next upgrade:",
        status
            .next_upgrade
            .as_ref()
            .map_or_else(|| "none scheduled".to_owned(), next_line),
    );
    line("daemon:", running(&status.daemon));
    line("supervisor:", running(&status.supervisor));
    for error in &status.errors {
        line("error:", error.clone());
    }
    out
}

/// `v3 at height 1234 (chain plan), in ~870 blocks: ready` (or `NOT READY: …`).
fn next_line(next: &NextUpgrade) -> String {
    let source = match next.source {
        "chain" => "chain plan",
        _ => "manual upgrade",
    };
    let left = next
        .blocks_left
        .map_or_else(String::new, |blocks| format!(", in ~{blocks} blocks"));
    let verdict = match &next.problem {
        None => "ready".to_owned(),
        Some(problem) => format!("NOT READY: {problem}"),
    };
    format!(
        "{} at height {} ({source}){left}: {verdict}",
        next.name, next.height
    )
}
