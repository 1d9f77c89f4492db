//! The backup of `data/`, the policy: choosing its name, the mode, the space check, taking it
//! (the copy cancelled by a termination signal, its record, cleaning up a copy that did not
//! finish) and pruning old ones after it. The backups that exist (their names, records, listing,
//! the newest) are [`store`]; the copy engine is [`copy`]; what `rollback --restore-data` does
//! is [`restore`]. The upgrade step that journals a backup is `upgrade/steps.rs`.
//!
//! A backup is written into a hidden staging folder (`.data-backup-<date>.partial`) and renamed
//! to its final name only once every byte is written and synced, so a folder named
//! `data-backup-*` is always complete. Names keep Go's `data-backup-<Y>-<M>-<D>` (local date, no
//! zero padding) for operators' scripts, but a second backup on the same day gets `.2`, `.3`, …
//! instead of being merged into the first one as Go does.
//!
//! [`resolve`] turns `COSMOVISOR_BACKUP_MODE` into what this backup does (by default: a reflink
//! clone where the file system clones, hard links of immutable table files on `data/`'s file
//! system, a copy elsewhere). Before a byte is written, [`check_space`] makes sure the bytes that
//! mode writes fit. The copy itself is [`copy`]; a cancelled or failed copy's staging folder is
//! removed, and a termination signal ends [`take`] with `Interrupted` (`signals.rs`). Each
//! complete backup has a record (`.backup-records/<name>.json` beside it: the mode, files and
//! bytes) that `status` shows.

pub mod copy;
pub mod restore;
pub mod store;

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use chrono::Datelike;
use tracing::{info, warn};

use crate::config::BackupMode;
use crate::progress::{Progress, human};
use crate::signals::{Interrupted, Signals};
use crate::upgrade::backup::copy::{CopyError, CopyStats, Mode};
use crate::upgrade::backup::store::{
    Linked, PREFIX, Record, links_path, partial_name, record_path,
};
use crate::upgrade::journal::BackupPaths;

/// One warning for each symbolic link in `data` that points outside it ([`copy::links_leaving`]):
/// the backup holds the link only. A listing that failed is a warning too; the backup goes on.
fn warn_links_leaving(data: &Path, leaving: io::Result<Vec<(PathBuf, PathBuf)>>) {
    match leaving {
        Ok(links) => {
            for (link, target) in links {
                warn!(
                    link = %link.display(),
                    target = %target.display(),
                    "{} is a symbolic link to {}, outside {}: the backup holds the link, not what it points to; back that up yourself, or move it into {}",
                    link.display(),
                    target.display(),
                    data.display(),
                    data.display()
                );
            }
        }
        Err(err) => {
            warn!(data = %data.display(), error = %err, "cannot look for symbolic links leaving data/");
        }
    }
}

/// Picks a name for today's backup in `backup_dir` that no existing folder has.
#[must_use]
pub fn choose_paths(backup_dir: &Path, today: chrono::NaiveDate) -> BackupPaths {
    let base = format!("{PREFIX}{}-{}-{}", today.year(), today.month(), today.day());
    let mut name = base.clone();
    let mut n = 1;
    while backup_dir.join(&name).exists() || backup_dir.join(partial_name(&name)).exists() {
        n += 1;
        name = format!("{base}.{n}");
    }
    BackupPaths {
        partial: backup_dir.join(partial_name(&name)),
        target: backup_dir.join(name),
    }
}

/// Why a backup cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    #[error(
        "not enough free space for the backup in {}: needs about {} for a {} backup (data/ is {}), {} free; free some space, set DAEMON_DATA_BACKUP_DIR to a larger disk, or UNSAFE_SKIP_BACKUP=true",
        dir.display(), human(*needed), mode.name(), human(*data), human(*free)
    )]
    NotEnough {
        dir: PathBuf,
        needed: u64,
        mode: Mode,
        data: u64,
        free: u64,
    },
    #[error("cannot measure {}: {err}", path.display())]
    Io { path: PathBuf, err: io::Error },
}

/// Extra room asked for on top of the data itself.
const MARGIN_BYTES: u64 = 64 << 20;

/// What `requested` does for a backup of `data` into `backup_dir`. `auto`: a reflink clone where
/// the backup folder is on `data/`'s XFS or btrfs, hard links of the immutable table files where
/// it is on `data/`'s file system, a full copy elsewhere. `reflink` on a file system that cannot
/// clone is a copy.
#[must_use]
pub fn resolve(requested: BackupMode, data: &Path, backup_dir: &Path) -> Mode {
    match requested {
        BackupMode::Checkpoint => Mode::Checkpoint,
        BackupMode::Reflink | BackupMode::Auto if clones(data, backup_dir) => Mode::Reflink,
        BackupMode::Auto if same_device(data, backup_dir) => Mode::Checkpoint,
        BackupMode::Copy | BackupMode::Reflink | BackupMode::Auto => Mode::Copy,
    }
}

/// What `requested` does here ([`resolve`]), with a warning when `reflink` falls back to a copy.
#[must_use]
pub fn choose_mode(requested: BackupMode, data: &Path, backup_dir: &Path) -> Mode {
    let mode = resolve(requested, data, backup_dir);
    if requested == BackupMode::Reflink && mode != Mode::Reflink {
        warn!(dir = %backup_dir.display(), "COSMOVISOR_BACKUP_MODE=reflink: the backup folder is not on data/'s XFS or btrfs, copying instead");
    }
    mode
}

/// Before a backup of `data` in `mode`: [`check_space`], then one warning for each symbolic link
/// leaving `data`. Returns the data's size. Walks `data/`: run it off the event loop.
pub fn measure(data: &Path, backup_dir: &Path, mode: Mode) -> Result<u64, SpaceError> {
    let total = check_space(data, backup_dir, mode)?;
    warn_links_leaving(data, copy::links_leaving(data));
    Ok(total)
}

/// Checks, before anything is written, that the backup of `data` fits in `backup_dir`: the
/// bytes `mode` writes plus 5% and 64 MiB (only the margin for a reflink clone; table files
/// that `checkpoint` links count zero). Returns the data's size, for progress reports.
///
/// Each file counts its length or allocated blocks, whichever is larger.
pub fn check_space(data: &Path, backup_dir: &Path, mode: Mode) -> Result<u64, SpaceError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |err: io::Error| SpaceError::Io { path, err }
    };
    let usage = copy::disk_usage(data, &backup_dir.join(PREFIX), mode).map_err(io(data))?;
    let stat = nix::sys::statvfs::statvfs(backup_dir).map_err(|err| io(backup_dir)(err.into()))?;
    let free = stat.blocks_available().saturating_mul(stat.fragment_size());
    let needed = if mode == Mode::Reflink {
        MARGIN_BYTES
    } else {
        usage.written + usage.written / 20 + MARGIN_BYTES
    };
    if needed > free {
        return Err(SpaceError::NotEnough {
            dir: backup_dir.to_path_buf(),
            needed,
            mode,
            data: usage.total,
            free,
        });
    }
    Ok(usage.total)
}

fn same_device(data: &Path, backup_dir: &Path) -> bool {
    match (fs::metadata(data), fs::metadata(backup_dir)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    }
}

/// XFS's `f_type` ("XFSB"): nix leaves its `XFS_SUPER_MAGIC` out on musl (the release binaries).
const XFS_SUPER_MAGIC: u32 = 0x5846_5342;

/// Whether copies from `data` into `backup_dir` are reflink clones (same XFS/btrfs file system).
fn clones(data: &Path, backup_dir: &Path) -> bool {
    use nix::sys::statfs::{BTRFS_SUPER_MAGIC, statfs};
    same_device(data, backup_dir)
        && statfs(backup_dir).is_ok_and(|stat| {
            let kind = stat.filesystem_type();
            kind == BTRFS_SUPER_MAGIC || u32::try_from(kind.0).is_ok_and(|k| k == XFS_SUPER_MAGIC)
        })
}

/// Writes the record of the backup that lands at `target` (temp file + rename).
fn write_record(target: &Path, record: &Record) -> io::Result<()> {
    let path = record_path(target)
        .ok_or_else(|| io::Error::other(format!("{} has no folder name", target.display())))?;
    write_json(&path, record)
}

/// Writes the list of the files the backup at `partial` (to land at `target`) hard-linked, each
/// with its size, mtime, inode and mode now, so that a later change to one is found
/// ([`store::changes`]). A backup that linked nothing gets no list.
fn write_links(partial: &Path, target: &Path, linked: &[PathBuf]) -> io::Result<()> {
    let Some(path) = links_path(target) else {
        return Err(io::Error::other(format!(
            "{} has no folder name",
            target.display()
        )));
    };
    if linked.is_empty() {
        return match fs::remove_file(&path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        };
    }
    let list = linked
        .iter()
        .filter_map(|relative| {
            let name = relative.to_str()?.to_owned();
            Some(Linked::of(&partial.join(relative), name))
        })
        .collect::<io::Result<Vec<Linked>>>()?;
    write_json(&path, &list)
}

/// Writes `value` as JSON to `path` (`durable::write_atomic`, `0666` less the umask as
/// `fs::write` makes it), creating its folder.
fn write_json(path: &Path, value: &impl serde::Serialize) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_vec(value).map_err(io::Error::other)?;
    crate::durable::write_atomic(path, &json, 0o666)
}

/// A complete backup.
pub struct Taken {
    pub stats: CopyStats,
    pub took: Duration,
}

/// Why [`take`] did not complete a backup.
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// A termination signal cancelled the copy; its staging folder is gone (or, when the copy
    /// had completed anyway, the backup is in place).
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

/// Copies `data` to `paths.partial` on worker threads, reporting progress (bytes, rate, ETA)
/// every few seconds, then renames it to `paths.target` and syncs the folder. A termination
/// signal cancels it; any failure removes the staging folder.
pub async fn take(
    data: &Path,
    paths: &BackupPaths,
    mode: Mode,
    total: u64,
    signals: &mut Signals,
) -> Result<Taken, TakeError> {
    let started = Instant::now();
    let cancel = Arc::new(AtomicBool::new(false));
    let copied = Arc::new(AtomicU64::new(0));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
    let copy = {
        let (data, paths) = (data.to_path_buf(), paths.clone());
        let (cancel, copied) = (Arc::clone(&cancel), Arc::clone(&copied));
        tokio::task::spawn_blocking(move || {
            copy_into_place(&data, &paths, mode, threads, &cancel, &copied)
        })
    };
    let mut progress = Progress::new("backup", Some(total));
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + progress.interval(),
        progress.interval(),
    );
    let copying = async {
        tokio::pin!(copy);
        loop {
            tokio::select! {
                joined = &mut copy => break joined,
                _ = ticker.tick() => progress.update(copied.load(Ordering::Relaxed)),
            }
        }
    };
    let joined = signals.cancel_on_termination(&cancel, copying).await;
    if let Err(interrupted) = &joined {
        warn!(signal = %interrupted.signal, "stopping the backup; the upgrade resumes on the next start");
    }
    progress.finish();
    let stats = joined?.unwrap_or_else(|err| {
        let _ = remove_partial(&paths.partial);
        Err(CopyError::Io {
            path: paths.partial.clone(),
            err: io::Error::other(err),
        })
    })?;
    Ok(Taken {
        stats,
        took: started.elapsed(),
    })
}

/// The blocking part of [`take`]: the copy, its record, and the rename to the final name. A
/// cancelled or failed copy's staging folder is removed.
fn copy_into_place(
    data: &Path,
    paths: &BackupPaths,
    mode: Mode,
    threads: usize,
    cancel: &AtomicBool,
    copied: &AtomicU64,
) -> Result<CopyStats, CopyError> {
    let stats = match copy::copy_tree(data, &paths.partial, mode, threads, cancel, copied) {
        Ok(stats) => stats,
        Err(err) => {
            let _ = remove_partial(&paths.partial);
            return Err(err);
        }
    };
    crate::upgrade::fault::point("backup_copied");
    let at = |err| CopyError::Io {
        path: paths.target.clone(),
        err,
    };
    let written = paths
        .target
        .parent()
        .map_or(Ok(1), store::next_sequence)
        .and_then(|sequence| {
            let record = Record {
                mode: mode.name().to_owned(),
                files: stats.files,
                bytes: stats.bytes,
                linked_bytes: stats.linked_bytes,
                sequence: Some(sequence),
                taken_at: Some(chrono::Utc::now().timestamp()),
            };
            write_links(&paths.partial, &paths.target, &stats.linked)?;
            write_record(&paths.target, &record)
        });
    if let Err(err) = written {
        let _ = remove_partial(&paths.partial);
        return Err(at(err));
    }
    fs::rename(&paths.partial, &paths.target).map_err(at)?;
    // The copy gave the folder data/'s mtime; status shows the age of the backup itself.
    fs::File::open(&paths.target)
        .and_then(|folder| folder.set_modified(SystemTime::now()))
        .map_err(at)?;
    if let Some(dir) = paths.target.parent() {
        crate::durable::sync_dir(dir).map_err(at)?;
    }
    Ok(stats)
}

/// After the backup at `target` was taken in `backup_dir`: one warning for each backup dated in
/// the future (they count as older than this one), then, with `keep` (`COSMOVISOR_BACKUP_KEEP`),
/// the oldest beyond it removed. Neither fails the upgrade.
pub fn after_taken(backup_dir: &Path, keep: Option<u32>, target: &Path) {
    if let Ok(future) = store::dated_in_future(backup_dir, chrono::Local::now()) {
        for path in future {
            warn!(path = %path.display(), "backup {} is dated in the future (the clock was ahead when it was taken?): backups are ordered by when they were taken, not by their dates, so it counts as older than the one just taken", path.display());
        }
    }
    if let Some(keep) = keep {
        match store::prune(
            backup_dir,
            usize::try_from(keep).unwrap_or(usize::MAX),
            Some(target),
        ) {
            Ok(removed) => {
                for path in removed {
                    info!(path = %path.display(), keep, "removed old backup (COSMOVISOR_BACKUP_KEEP)");
                }
            }
            Err(err) => {
                warn!(dir = %backup_dir.display(), error = %err, "cannot prune old backups");
            }
        }
    }
}

/// Removes a staging folder left by an unfinished backup (ours, or one from before a crash).
pub fn remove_partial(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upgrade::backup::store::{prune, read_record};

    #[cfg(target_env = "gnu")]
    #[test]
    fn xfs_magic_is_the_kernels() {
        let theirs = nix::sys::statfs::XFS_SUPER_MAGIC.0;
        assert_eq!(u32::try_from(theirs).ok(), Some(XFS_SUPER_MAGIC));
    }

    #[test]
    fn names_are_unique_per_day() {
        let tmp = tempfile::tempdir().unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2024, 8, 5).unwrap();
        let first = choose_paths(tmp.path(), day);
        assert_eq!(first.target, tmp.path().join("data-backup-2024-8-5"));
        assert_eq!(
            first.partial,
            tmp.path().join(".data-backup-2024-8-5.partial")
        );
        fs::create_dir(&first.target).unwrap();
        let second = choose_paths(tmp.path(), day);
        assert_eq!(second.target, tmp.path().join("data-backup-2024-8-5.2"));
    }

    #[test]
    fn auto_links_on_data_s_file_system_and_the_rest_keep_their_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        fs::create_dir(&data).unwrap();
        let cloning = clones(&data, tmp.path());
        let same_fs = if cloning {
            Mode::Reflink
        } else {
            Mode::Checkpoint
        };
        assert_eq!(resolve(BackupMode::Auto, &data, tmp.path()), same_fs);
        assert_eq!(resolve(BackupMode::Copy, &data, tmp.path()), Mode::Copy);
        assert_eq!(
            resolve(BackupMode::Checkpoint, &data, tmp.path()),
            Mode::Checkpoint
        );
        let reflink = if cloning { Mode::Reflink } else { Mode::Copy };
        assert_eq!(resolve(BackupMode::Reflink, &data, tmp.path()), reflink);
        // /proc is never data/'s file system.
        assert_eq!(
            resolve(BackupMode::Auto, &data, Path::new("/proc")),
            Mode::Copy
        );
    }

    #[test]
    fn records_are_read_back_and_pruned_with_their_backup() {
        let tmp = tempfile::tempdir().unwrap();
        let backup = tmp.path().join("data-backup-2024-8-5");
        fs::create_dir(&backup).unwrap();
        assert_eq!(read_record(&backup), None);
        let record = Record {
            mode: "checkpoint".into(),
            files: 3,
            bytes: 300,
            linked_bytes: 200,
            sequence: None,
            taken_at: Some(1_700_000_000),
        };
        write_record(&backup, &record).unwrap();
        assert_eq!(read_record(&backup), Some(record));
        fs::create_dir(tmp.path().join("data-backup-2024-8-6")).unwrap();
        prune(tmp.path(), 1, None).unwrap();
        assert!(
            !tmp.path()
                .join(".backup-records/data-backup-2024-8-5.json")
                .exists()
        );
    }

    #[test]
    fn space_check_passes_for_small_data_and_fails_for_a_tiny_target() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("data")).unwrap();
        fs::write(tmp.path().join("data/f"), vec![0u8; 4096]).unwrap();
        assert!(check_space(&tmp.path().join("data"), tmp.path(), Mode::Copy).unwrap() >= 4096);
    }

    /// ENOSPC in the middle of the copy: the staging folder is removed and the error says why.
    /// Needs root to mount a small tmpfs (see `skip_or_fail_in_ci`).
    #[tokio::test]
    async fn a_full_disk_mid_copy_removes_the_partial_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let Some(disk) = crate::test_support::skip::Tmpfs::mount(&tmp.path().join("disk"), "1m")
        else {
            return;
        };
        let data = tmp.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::write(data.join("a.ldb"), vec![5u8; 3 << 20]).unwrap();
        let paths = choose_paths(
            disk.path(),
            chrono::NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
        );
        let mut signals = Signals::install().unwrap();
        let result = take(&data, &paths, Mode::Copy, 3 << 20, &mut signals).await;
        let leftovers = fs::read_dir(disk.path()).unwrap().count();
        let err = result.err().expect("the copy must fail").to_string();
        assert!(err.contains("No space left on device"), "{err}");
        assert_eq!(leftovers, 0, "the partial copy is removed");
    }
}
