//! Watches `data/upgrade-info.json` for a plan to apply.
//!
//! Two sources: inotify on `data/` (a close-after-write or a rename onto the file wakes us at
//! once) and a poll (a `stat`). Without inotify, or after `data/` itself was removed or moved,
//! the poll runs every `DAEMON_POLL_INTERVAL` and the watch is re-armed as soon as it can be;
//! while inotify works the poll is only a safety net and runs every [`SAFETY_POLL`] at most, so
//! an idle supervisor barely wakes up (measured in `bench/`). The inotify watch is set up only
//! once the daemon has run for [`INOTIFY_AFTER`]: tearing an inotify instance down (at the latest
//! when we exit) waits for the kernel (an RCU grace period, up to 20 ms), which a short command
//! run through us (`cosmovisor run version`) should not pay. Until then the file is polled every
//! `DAEMON_POLL_INTERVAL` (as Go always does), it was read at start-up, and the daemon's
//! `UPGRADE … NEEDED` line still makes us look at once; it is read again as soon as the watch is
//! set up, so nothing written in between is missed. The file is parsed again
//! only when its identity (inode, size, mtime, ctime) changed. A half-written or malformed file
//! is logged once per version and read again when it changes: never a crash, never a stop of the
//! daemon (Go panics and orphans the node).
//!
//! The file is chain-writable data (docs/design.md "Trust boundaries"): it is read through
//! `bounded_read` on the blocking pool, so a FIFO, a device, a directory or a huge file there never
//! blocks the loop that forwards signals and never grows our memory. Such a problem is warned about
//! once, and again only when the kind of problem changes; each later look at the same problem is a
//! debug line.
//!
//! Whether a parsed plan is applied is [`Applied::is_superseded_by`] plus the skip heights. A
//! complete, valid JSON plan that can never be applied (a name that cannot be a folder, a height
//! of 0, a time-based plan) is not "not yet": it is an [`UnusablePlan`], and the supervisor stops,
//! unless its height is listed in `--unsafe-skip-upgrades` (then it is skipped, as any plan there).
//!
//! What a new version of the file means (apply, not new, skipped, being written, unusable) is
//! judged by the pure `watcher/interpret.rs`; this file only finds out that it changed and reads
//! it.
//!
//! The same watch reports changes of the manual-upgrade queue (`upgrade-info.json.batch`, by its
//! identity), so the supervisor can make the node halt at a height added while it runs.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::time::{Interval, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::bounded_read::{self, DOCUMENT_CAP, ReadError};
use crate::home::plan::{self, Applied, Plan};

use interpret::{Reading, interpret};

mod interpret;

/// How often the file is polled while inotify watches `data/` (unless the configured interval
/// is longer).
const SAFETY_POLL: Duration = Duration::from_secs(5);

/// How long after start the inotify watch is set up (see the module documentation).
pub const INOTIFY_AFTER: Duration = Duration::from_secs(1);

/// The identity of one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// What the watch found.
#[derive(Debug)]
pub enum Change {
    /// A plan to apply now.
    Plan(Plan),
    /// The manual-upgrade queue file changed (or appeared, or went away).
    Queue,
    /// A complete plan that can never be applied.
    Unusable(UnusablePlan),
}

/// `data/upgrade-info.json` holds a complete, valid JSON plan that no upgrade can carry out.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} holds an upgrade plan that can never be applied: {err}; the node was stopped (the chain halts at this upgrade anyway): get the upgrade's instructions for this chain, then remove or replace {} before starting cosmovisor again",
    file.display(), file.display()
)]
pub struct UnusablePlan {
    pub file: PathBuf,
    pub err: plan::PlanError,
}

impl crate::exit::ExitCode for UnusablePlan {
    fn exit_code(&self) -> u8 {
        crate::exit::UPGRADE_FAILED
    }
}

pub struct Watcher {
    file: PathBuf,
    file_name: std::ffi::OsString,
    queue: PathBuf,
    queue_name: std::ffi::OsString,
    /// The queue file's identity when last reported (`None`: absent).
    queue_seen: Option<Stamp>,
    recase: bool,
    skip_heights: Vec<i64>,
    applied: Applied,
    last_seen: Option<Stamp>,
    /// The kind of read problem last warned about (cleared once the file reads again).
    problem: Option<String>,
    /// A change was seen and the file is still to be read (kept across a cancelled `next`).
    dirty: bool,
    inotify: Option<AsyncFd<InotifyFd>>,
    /// When the first inotify watch is set up; `None` once it was tried.
    inotify_at: Option<tokio::time::Instant>,
    ticker: Interval,
    poll_interval: Duration,
}

impl Watcher {
    /// Watches `file` (inside `data/`): polls it, and from [`INOTIFY_AFTER`] on watches it with
    /// inotify too. inotify is optional: without it we keep polling.
    #[must_use]
    pub fn new(
        file: &Path,
        queue: &Path,
        poll_interval: Duration,
        recase: bool,
        skip_heights: Vec<i64>,
        applied: Applied,
    ) -> Watcher {
        Watcher {
            file: file.to_path_buf(),
            file_name: file.file_name().map(ToOwned::to_owned).unwrap_or_default(),
            queue: queue.to_path_buf(),
            queue_name: queue.file_name().map(ToOwned::to_owned).unwrap_or_default(),
            queue_seen: stamp(queue),
            recase,
            skip_heights,
            applied,
            last_seen: None,
            problem: None,
            dirty: false,
            inotify: None,
            inotify_at: Some(tokio::time::Instant::now() + INOTIFY_AFTER),
            ticker: ticker(poll_interval, false),
            poll_interval,
        }
    }

    /// Sets up the first inotify watch (warning when it cannot be had).
    fn start_inotify(&mut self) {
        self.inotify_at = None;
        let Some(dir) = self.file.parent() else {
            return;
        };
        match watch_dir(dir) {
            Ok(inotify) => {
                debug!(dir = %dir.display(), "watching data/ with inotify");
                self.set_inotify(Some(inotify));
            }
            Err(_) if !dir.is_dir() => {
                warn!(file = %self.file.display(), "data/ was removed or moved; polling until it is back");
            }
            Err(err) => {
                warn!(dir = %dir.display(), error = %err, "inotify unavailable, polling for upgrade-info.json");
            }
        }
    }

    /// Switches between inotify (slow safety poll) and polling alone.
    fn set_inotify(&mut self, inotify: Option<AsyncFd<InotifyFd>>) {
        self.ticker = ticker(self.poll_interval, inotify.is_some());
        self.inotify = inotify;
    }

    /// Without inotify: tries to watch `data/` again (it may have been re-created).
    fn rearm(&mut self) {
        if self.inotify.is_some() || self.inotify_at.is_some() {
            return;
        }
        if let Some(Ok(inotify)) = self.file.parent().filter(|dir| dir.is_dir()).map(watch_dir) {
            debug!(file = %self.file.display(), "watching data/ with inotify again");
            self.set_inotify(Some(inotify));
        }
    }

    /// Records the plan just applied; the file is judged again against it.
    pub fn set_applied(&mut self, applied: Applied) {
        self.applied = applied;
        self.last_seen = None;
    }

    #[must_use]
    pub fn applied(&self) -> &Applied {
        &self.applied
    }

    /// Whether `plan` should be applied now (new enough and not skipped).
    #[must_use]
    pub fn wants(&self, plan: &Plan) -> bool {
        if !self.applied.is_superseded_by(plan) {
            return false;
        }
        if self.skip_heights.contains(&plan.height) {
            info!(name = %plan.name, height = plan.height, "upgrade height is listed in --unsafe-skip-upgrades, not applying it");
            return false;
        }
        true
    }

    /// Reads the file now, if it changed since the last look, and returns a plan to apply, or
    /// the plan that can never be applied. The read runs on the blocking pool; cancelling this
    /// future leaves the watcher as it was.
    pub async fn check_now(&mut self) -> Result<Option<Plan>, UnusablePlan> {
        let Some(stamp) = stamp(&self.file) else {
            self.last_seen = None;
            self.problem = None;
            return Ok(None);
        };
        if self.last_seen == Some(stamp) {
            return Ok(None);
        }
        let read = bounded_read::read_capped_async(self.file.clone(), DOCUMENT_CAP).await;
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(err) => {
                // Looked at again on the next poll or event, whatever the stamp says.
                self.last_seen = None;
                self.report(&err);
                return Ok(None);
            }
        };
        self.last_seen = Some(stamp);
        self.problem = None;
        match interpret(&bytes, self.recase, &self.applied, &self.skip_heights) {
            Reading::Apply(plan) => Ok(Some(plan)),
            Reading::NotNew(plan) => {
                debug!(name = %plan.name, height = plan.height, "upgrade-info.json holds no new plan");
                Ok(None)
            }
            Reading::Skipped(plan) => {
                info!(name = %plan.name, height = plan.height, "upgrade height is listed in --unsafe-skip-upgrades, not applying it");
                debug!(name = %plan.name, height = plan.height, "upgrade-info.json holds no new plan");
                Ok(None)
            }
            Reading::Empty => {
                debug!(file = %self.file.display(), "upgrade-info.json is empty; will read it again when it changes");
                Ok(None)
            }
            Reading::Malformed(err) => {
                warn!(file = %self.file.display(), error = %err, "upgrade-info.json is not a valid plan (yet); will read it again when it changes");
                Ok(None)
            }
            Reading::SkippedUnusable { height, err } => {
                info!(file = %self.file.display(), height, error = %err, "upgrade height is listed in --unsafe-skip-upgrades, skipping the plan that could not be applied");
                Ok(None)
            }
            Reading::Unusable(err) => Err(UnusablePlan {
                file: self.file.clone(),
                err,
            }),
        }
    }

    /// The `--unsafe-skip-upgrades` heights: plans there, queued ones too, are never acted on.
    #[must_use]
    pub fn skip_heights(&self) -> &[i64] {
        &self.skip_heights
    }

    /// Whether the manual-upgrade queue file changed since the last call (or since start).
    fn queue_changed(&mut self) -> bool {
        let now = stamp(&self.queue);
        if now == self.queue_seen {
            return false;
        }
        self.queue_seen = now;
        true
    }

    /// Logs a read problem: a warning when it is new, a debug line when it is the same again.
    fn report(&mut self, err: &ReadError) {
        let kind = match err {
            ReadError::Missing(_) => {
                self.problem = None;
                return;
            }
            ReadError::NotRegular { kind, .. } => (*kind).to_owned(),
            ReadError::TooBig { .. } => "too big".to_owned(),
            ReadError::Io { source, .. } => source.kind().to_string(),
        };
        if self.problem.as_deref() == Some(kind.as_str()) {
            debug!(file = %self.file.display(), error = %err, "upgrade-info.json still cannot be read");
        } else {
            warn!(file = %self.file.display(), error = %err, "cannot read upgrade-info.json; the node keeps running, and the file is read again when it changes");
            self.problem = Some(kind);
        }
    }

    /// Waits for a plan to apply, a change of the queue, or an unusable plan. Cancel-safe: all
    /// progress lives in `self`.
    pub async fn next(&mut self) -> Change {
        loop {
            if !self.dirty {
                self.dirty = self.wait_for_change().await;
            }
            if self.dirty {
                if self.queue_changed() {
                    // `dirty` stays set: the plan file is read on the next call.
                    return Change::Queue;
                }
                let found = self.check_now().await;
                self.dirty = false;
                match found {
                    Ok(Some(plan)) => return Change::Plan(plan),
                    Ok(None) => {}
                    Err(unusable) => return Change::Unusable(unusable),
                }
            }
        }
    }

    /// Waits for the next tick or inotify wake-up; whether the file may have changed.
    async fn wait_for_change(&mut self) -> bool {
        if let Some(inotify) = &self.inotify {
            let mut lost = false;
            let changed = tokio::select! {
                _ = self.ticker.tick() => true,
                ready = inotify.readable() => match ready {
                    Ok(mut guard) => {
                        let events = drain_events(&guard.get_inner().0, &[&self.file_name, &self.queue_name]);
                        guard.clear_ready();
                        lost = events.lost;
                        events.relevant || events.lost
                    }
                    Err(_) => true,
                },
            };
            if lost {
                warn!(file = %self.file.display(), "data/ was removed or moved; polling until it is back");
                self.set_inotify(None);
            }
            changed
        } else if let Some(at) = self.inotify_at {
            tokio::select! {
                _ = self.ticker.tick() => {}
                () = tokio::time::sleep_until(at) => self.start_inotify(),
            }
            true
        } else {
            self.ticker.tick().await;
            self.rearm();
            true
        }
    }
}

/// An inotify instance, which owns its descriptor for as long as it lives.
struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

#[allow(unsafe_code)]
fn watch_dir(dir: &Path) -> std::io::Result<AsyncFd<InotifyFd>> {
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
    inotify.add_watch(
        dir,
        // Not IN_CREATE: a file being created is empty; its IN_CLOSE_WRITE follows. The SELF
        // events say the watch is gone with the folder.
        AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF,
    )?;
    // SAFETY: the descriptor is owned by `Inotify`, which the `AsyncFd` owns; it stays open and
    // is not closed or replaced by anyone else until the `AsyncFd` is dropped.
    let registered = unsafe { AsyncFd::register(InotifyFd(inotify)) };
    registered.map_err(|err| std::io::Error::other(err.to_string()))
}

/// What the queued inotify events said.
struct Events {
    /// One concerns our file (or the queue overflowed).
    relevant: bool,
    /// The watched folder was removed or moved: the watch is gone.
    lost: bool,
}

fn drain_events(inotify: &Inotify, names: &[&std::ffi::OsStr]) -> Events {
    let mut seen = Events {
        relevant: false,
        lost: false,
    };
    while let Ok(events) = inotify.read_events() {
        if events.is_empty() {
            break;
        }
        for event in events {
            if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW)
                || event
                    .name
                    .as_deref()
                    .is_some_and(|name| names.contains(&name))
            {
                seen.relevant = true;
            }
            if event.mask.intersects(
                AddWatchFlags::IN_DELETE_SELF
                    | AddWatchFlags::IN_MOVE_SELF
                    | AddWatchFlags::IN_IGNORED,
            ) {
                seen.lost = true;
            }
        }
    }
    seen
}

/// The identity of the file at `path`, `None` when it cannot be looked at.
fn stamp(path: &Path) -> Option<Stamp> {
    let meta = fs::metadata(path).ok()?;
    Some(Stamp {
        ino: meta.ino(),
        len: meta.len(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        ctime: (meta.ctime(), meta.ctime_nsec()),
    })
}

/// The poll timer: the configured interval without inotify, a slow safety net with it.
fn ticker(poll_interval: Duration, with_inotify: bool) -> Interval {
    let period = if with_inotify {
        poll_interval.max(SAFETY_POLL)
    } else {
        poll_interval
    };
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    ticker
}
