//! Backups of `data/`: naming, the copy itself, and cleaning up a copy that did not finish.
//!
//! A backup is written into a hidden staging folder (`.data-backup-<date>.partial`) and renamed
//! to its final name only once every byte is written and synced, so a folder named
//! `data-backup-*` is always complete. Names keep Go's `data-backup-<Y>-<M>-<D>` (local date, no
//! zero padding) for operators' scripts, but a second backup on the same day gets `.2`, `.3`, …
//! instead of being merged into the first one as Go does.
//!
//! The copy runs on a blocking thread and checks a cancel flag between files, so a SIGTERM
//! during a long backup stops it promptly; the caller then removes the staging folder.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use chrono::Datelike;

use crate::journal::BackupPaths;

/// The prefix of every backup folder, as Go names them.
pub const PREFIX: &str = "data-backup-";

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

fn partial_name(name: &str) -> String {
    format!(".{name}.partial")
}

/// What a finished copy amounted to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub files: u64,
    pub bytes: u64,
}

/// Why a copy stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("cancelled")]
    Cancelled,
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: io::Error },
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |err| CopyError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// Copies the tree `src` to `dst` (which must not exist): files, folders and symbolic links,
/// with permissions and modification times, then syncs the file system once.
pub fn copy_tree(src: &Path, dst: &Path, cancel: &AtomicBool) -> Result<CopyStats, CopyError> {
    let mut stats = CopyStats::default();
    copy_dir(src, dst, cancel, &mut stats)?;
    let root = fs::File::open(dst).map_err(at(dst))?;
    nix::unistd::syncfs(&root).map_err(|err| CopyError::Io {
        path: dst.to_path_buf(),
        err: err.into(),
    })?;
    Ok(stats)
}

fn copy_dir(
    src: &Path,
    dst: &Path,
    cancel: &AtomicBool,
    stats: &mut CopyStats,
) -> Result<(), CopyError> {
    let meta = fs::metadata(src).map_err(at(src))?;
    fs::create_dir(dst).map_err(at(dst))?;
    for entry in fs::read_dir(src).map_err(at(src))? {
        if cancel.load(Ordering::Relaxed) {
            return Err(CopyError::Cancelled);
        }
        let entry = entry.map_err(at(src))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry.file_type().map_err(at(&from))?;
        if kind.is_dir() {
            copy_dir(&from, &to, cancel, stats)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(&from).map_err(at(&from))?;
            std::os::unix::fs::symlink(target, &to).map_err(at(&to))?;
        } else if kind.is_file() {
            stats.bytes += fs::copy(&from, &to).map_err(at(&from))?;
            stats.files += 1;
            let file_meta = entry.metadata().map_err(at(&from))?;
            set_mtime(&to, &file_meta)?;
        }
        // Sockets, fifos and devices have no place in a node's data and are skipped.
    }
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(at(dst))?;
    set_mtime(dst, &meta)?;
    Ok(())
}

fn set_mtime(path: &Path, meta: &fs::Metadata) -> Result<(), CopyError> {
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let file = fs::File::options()
        .write(!meta.is_dir())
        .read(meta.is_dir())
        .open(path)
        .map_err(at(path))?;
    file.set_modified(modified).map_err(at(path))
}

/// Keeps the `keep` newest complete backups in `backup_dir` (by modification time, which the
/// final rename sets) and removes the others; returns what it removed. Staging folders and
/// anything not named `data-backup-*` are never touched.
pub fn prune(backup_dir: &Path, keep: usize) -> io::Result<Vec<PathBuf>> {
    let mut backups = Vec::new();
    for entry in fs::read_dir(backup_dir)? {
        let entry = entry?;
        let is_backup = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(PREFIX));
        if is_backup && entry.file_type()?.is_dir() {
            backups.push((entry.metadata()?.modified()?, entry.path()));
        }
    }
    backups.sort();
    let excess = backups.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for (_, path) in backups.into_iter().take(excess) {
        fs::remove_dir_all(&path)?;
        removed.push(path);
    }
    Ok(removed)
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
    fn copies_files_links_modes_and_times() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("data");
        fs::create_dir_all(src.join("application.db")).unwrap();
        fs::write(src.join("application.db/000001.ldb"), vec![7u8; 100_000]).unwrap();
        fs::write(src.join("priv_validator_state.json"), b"{}").unwrap();
        fs::set_permissions(
            src.join("priv_validator_state.json"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("application.db", src.join("link")).unwrap();
        let dst = tmp.path().join("copy");
        let stats = copy_tree(&src, &dst, &AtomicBool::new(false)).unwrap();
        assert_eq!(
            stats,
            CopyStats {
                files: 2,
                bytes: 100_002
            }
        );
        assert_eq!(
            fs::read(dst.join("application.db/000001.ldb")).unwrap(),
            vec![7u8; 100_000]
        );
        assert_eq!(
            fs::read_link(dst.join("link")).unwrap(),
            PathBuf::from("application.db")
        );
        let mode = fs::metadata(dst.join("priv_validator_state.json"))
            .unwrap()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let times = |p: &Path| fs::metadata(p).unwrap().modified().unwrap();
        assert_eq!(
            times(&src.join("application.db/000001.ldb")),
            times(&dst.join("application.db/000001.ldb"))
        );
    }

    #[test]
    fn prune_keeps_the_newest() {
        let tmp = tempfile::tempdir().unwrap();
        for (i, name) in [
            "data-backup-2024-8-5",
            "data-backup-2024-8-5.2",
            "data-backup-2024-9-1",
        ]
        .iter()
        .enumerate()
        {
            let dir = tmp.path().join(name);
            fs::create_dir(&dir).unwrap();
            let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000 + i as u64);
            fs::File::open(&dir).unwrap().set_modified(time).unwrap();
        }
        fs::create_dir(tmp.path().join(".data-backup-2024-9-2.partial")).unwrap();
        fs::create_dir(tmp.path().join("data")).unwrap();
        let removed = prune(tmp.path(), 2).unwrap();
        assert_eq!(removed, vec![tmp.path().join("data-backup-2024-8-5")]);
        assert!(tmp.path().join(".data-backup-2024-9-2.partial").exists());
        assert!(tmp.path().join("data").exists());
        assert!(prune(tmp.path(), 5).unwrap().is_empty());
    }

    #[test]
    fn cancel_stops_the_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("data");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("a"), b"a").unwrap();
        let err = copy_tree(&src, &tmp.path().join("copy"), &AtomicBool::new(true)).unwrap_err();
        assert!(matches!(err, CopyError::Cancelled));
    }
}
