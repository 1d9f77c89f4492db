//! Copying a directory tree fast and faithfully: the engine behind backups.
//!
//! In [`Mode::Checkpoint`] the immutable table files of LevelDB/Pebble/RocksDB stores (`*.ldb`
//! and `*.sst` in a folder that also holds `CURRENT` and a `MANIFEST-*`) are hard-linked instead
//! of copied, like a `RocksDB` checkpoint. That is safe because those engines never modify a table
//! file after writing it (compaction writes new files and unlinks old ones, and a link keeps the
//! old bytes alive), and the backup is taken while the daemon is stopped. A table file on another
//! file system than the backup (a mount inside `data/`), or one the file system refuses to link,
//! is copied. It is not a second copy of those bytes: damage to the disk or an in-place edit of a
//! table file reaches both.
//!
//! One pass walks the source, creates the folders and symbolic links and lists the files; then
//! worker threads copy the files, biggest first, with `copy_file_range` (std's `fs::copy`), which
//! the kernel turns into a reflink clone on XFS and btrfs and an in-kernel copy elsewhere — no
//! bytes pass through user space. Permissions and modification times are kept; the file system
//! is synced once at the end (`syncfs`) instead of once per file. A cancel flag is checked between
//! files; the first error stops every worker. Sockets, fifos and devices are skipped: they have no
//! place in a node's data.
//!
//! No copy ever carries a setuid or setgid bit (docs/design.md "Trust boundaries"): the bits are
//! stripped from every file and folder written, and a table file that has one is copied rather than
//! linked, with one warning naming how many. A backup or restore run by root can then never make
//! a setuid-root file out of one the node's user left in `data/`, and one setgid folder (shared
//! group folders, Kubernetes `fsGroup` volumes) never makes a backup fail under systemd's
//! `RestrictSUIDSGID=true`, which refuses to create those bits.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use tracing::warn;

/// `S_ISUID | S_ISGID`: the bits no copy keeps.
const SET_ID_BITS: u32 = 0o6000;

/// What a finished copy amounted to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub files: u64,
    pub bytes: u64,
    /// Of `bytes`, those of the table files hard-linked rather than written.
    pub linked_bytes: u64,
    /// Files and folders whose setuid/setgid bits were left out.
    pub set_id_stripped: u64,
    /// The hard-linked files, relative to the copy's root, sorted.
    pub linked: Vec<PathBuf>,
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

/// How files are reproduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every file copied with `copy_file_range`.
    Copy,
    /// Immutable table files hard-linked, everything else copied.
    Checkpoint,
    /// Every file copied with `copy_file_range` on a file system where that is a reflink clone
    /// (XFS, btrfs): the same engine as [`Mode::Copy`], recorded apart because it writes nothing.
    Reflink,
}

impl Mode {
    /// The name `COSMOVISOR_BACKUP_MODE` and the backup's record use.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Mode::Copy => "copy",
            Mode::Checkpoint => "checkpoint",
            Mode::Reflink => "reflink",
        }
    }
}

/// A file to copy.
struct Job {
    from: PathBuf,
    to: PathBuf,
    len: u64,
    modified: SystemTime,
    /// The source's permission bits, without setuid/setgid.
    mode: u32,
    /// The source had a setuid or setgid bit.
    set_id: bool,
    /// An immutable table file to hard-link (checkpoint mode).
    link: bool,
}

/// A folder whose mode and time are set once everything inside it is written.
struct Folder {
    path: PathBuf,
    /// The source's permission bits, without setuid/setgid.
    mode: u32,
    set_id: bool,
    modified: SystemTime,
}

/// Copies the tree `src` to `dst` (which must not exist) with `threads` workers. `copied` counts
/// bytes as they are written, for progress reports.
pub fn copy_tree(
    src: &Path,
    dst: &Path,
    mode: Mode,
    threads: usize,
    cancel: &AtomicBool,
    copied: &AtomicU64,
) -> Result<CopyStats, CopyError> {
    let link_dev = link_device(dst, mode).map_err(at(dst))?;
    let mut jobs = Vec::new();
    let mut folders = Vec::new();
    walk(src, dst, link_dev, cancel, &mut jobs, &mut folders)?;
    jobs.sort_by_key(|job| std::cmp::Reverse(job.len));

    let next = AtomicUsize::new(0);
    let linked_bytes = AtomicU64::new(0);
    let linked = Mutex::new(Vec::new());
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if cancel.load(Ordering::Relaxed) || failed.load(Ordering::Relaxed) {
                        return;
                    }
                    match copy_file(job) {
                        Ok(was_linked) => {
                            copied.fetch_add(job.len, Ordering::Relaxed);
                            if was_linked {
                                linked_bytes.fetch_add(job.len, Ordering::Relaxed);
                                if let (Ok(mut list), Ok(relative)) =
                                    (linked.lock(), job.to.strip_prefix(dst))
                                {
                                    list.push(relative.to_path_buf());
                                }
                            }
                        }
                        Err(err) => {
                            failed.store(true, Ordering::Relaxed);
                            if let Ok(mut slot) = first_error.lock() {
                                slot.get_or_insert(err);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(err) = first_error.into_inner().ok().flatten() {
        return Err(err);
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(CopyError::Cancelled);
    }
    let set_id_stripped = jobs.iter().filter(|job| job.set_id).count() as u64
        + folders.iter().filter(|folder| folder.set_id).count() as u64;
    if set_id_stripped > 0 {
        warn!(
            count = set_id_stripped,
            to = %dst.display(),
            "setuid/setgid bits were left out of the copy (a backup or restore never creates them): {set_id_stripped} files and folders of {} have them; remove them there too with chmod ug-s",
            src.display()
        );
    }
    // Innermost folders last in the walk; set their times before their parents'.
    for folder in folders.iter().rev() {
        fs::set_permissions(&folder.path, fs::Permissions::from_mode(folder.mode))
            .map_err(at(&folder.path))?;
        set_modified(&folder.path, folder.modified, true)?;
    }
    let root = fs::File::open(dst).map_err(at(dst))?;
    nix::unistd::syncfs(&root).map_err(|err| CopyError::Io {
        path: dst.to_path_buf(),
        err: err.into(),
    })?;
    Ok(CopyStats {
        files: jobs.len() as u64,
        bytes: jobs.iter().map(|job| job.len).sum(),
        linked_bytes: linked_bytes.into_inner(),
        set_id_stripped,
        linked: {
            let mut linked = linked.into_inner().unwrap_or_else(PoisonError::into_inner);
            linked.sort();
            linked
        },
    })
}

/// The device whose table files [`Mode::Checkpoint`] may link into `dst`: the file system of the
/// folder `dst` is created in. `None` in the other modes.
fn link_device(dst: &Path, mode: Mode) -> io::Result<Option<u64>> {
    use std::os::unix::fs::MetadataExt;
    if mode != Mode::Checkpoint {
        return Ok(None);
    }
    let parent = dst.parent().unwrap_or(Path::new("/"));
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    Ok(Some(fs::metadata(parent)?.dev()))
}

fn walk(
    src: &Path,
    dst: &Path,
    link_dev: Option<u64>,
    cancel: &AtomicBool,
    jobs: &mut Vec<Job>,
    folders: &mut Vec<Folder>,
) -> Result<(), CopyError> {
    use std::os::unix::fs::MetadataExt;
    let store = link_dev.is_some() && is_table_store(src);
    let meta = fs::metadata(src).map_err(at(src))?;
    fs::create_dir(dst).map_err(at(dst))?;
    let mode = meta.permissions().mode() & 0o7777;
    folders.push(Folder {
        path: dst.to_path_buf(),
        mode: mode & !SET_ID_BITS,
        set_id: mode & SET_ID_BITS != 0,
        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    });
    for entry in fs::read_dir(src).map_err(at(src))? {
        if cancel.load(Ordering::Relaxed) {
            return Err(CopyError::Cancelled);
        }
        let entry = entry.map_err(at(src))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry.file_type().map_err(at(&from))?;
        if kind.is_dir() {
            walk(&from, &to, link_dev, cancel, jobs, folders)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(&from).map_err(at(&from))?;
            std::os::unix::fs::symlink(target, &to).map_err(at(&to))?;
        } else if kind.is_file() {
            let meta = entry.metadata().map_err(at(&from))?;
            let mode = meta.permissions().mode() & 0o7777;
            let set_id = mode & SET_ID_BITS != 0;
            // A link would share the bits: such a file is copied without them.
            let link = store && !set_id && is_table_file(&from) && Some(meta.dev()) == link_dev;
            jobs.push(Job {
                from,
                to,
                len: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                mode: mode & !SET_ID_BITS,
                set_id,
                link,
            });
        }
    }
    Ok(())
}

/// Reproduces one file; `true` when it was hard-linked.
fn copy_file(job: &Job) -> Result<bool, CopyError> {
    if job.link {
        // Same inode: mode and time are already the original's.
        match fs::hard_link(&job.from, &job.to) {
            Ok(()) => return Ok(true),
            // A file system without hard links (or at the link limit): copy it instead.
            Err(err) if link_refused(&err) => {}
            Err(err) => return Err(at(&job.to)(err)),
        }
    }
    copy_contents(job)?;
    set_modified(&job.to, job.modified, false)?;
    Ok(false)
}

/// Writes a new file `job.to` with the bytes of `job.from` (`io::copy` between two files is
/// `copy_file_range`: a reflink clone on XFS and btrfs) and `job.mode`, which has no
/// setuid/setgid bit: unlike `fs::copy`, the mode asked of `open` and `fchmod` never carries one.
fn copy_contents(job: &Job) -> Result<(), CopyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut from = fs::File::open(&job.from).map_err(at(&job.from))?;
    let mut to = fs::File::options()
        .write(true)
        .create_new(true)
        .mode(job.mode & 0o777)
        .open(&job.to)
        .map_err(at(&job.to))?;
    io::copy(&mut from, &mut to).map_err(at(&job.from))?;
    // The umask may have taken bits away at open.
    to.set_permissions(fs::Permissions::from_mode(job.mode))
        .map_err(at(&job.to))
}

fn link_refused(err: &io::Error) -> bool {
    use nix::errno::Errno;
    err.raw_os_error().is_some_and(|code| {
        [Errno::EPERM, Errno::EXDEV, Errno::EMLINK, Errno::EOPNOTSUPP]
            .iter()
            .any(|errno| *errno as i32 == code)
    })
}

/// A LevelDB/Pebble/RocksDB store folder: it holds `CURRENT` and a `MANIFEST-*`.
fn is_table_store(dir: &Path) -> bool {
    dir.join("CURRENT").is_file()
        && fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|entry| entry.file_name().to_string_lossy().starts_with("MANIFEST-"))
        })
}

/// An immutable table file of such a store.
fn is_table_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext == "ldb" || ext == "sst")
}

fn set_modified(path: &Path, modified: SystemTime, is_dir: bool) -> Result<(), CopyError> {
    let file = fs::File::options()
        .write(!is_dir)
        .read(is_dir)
        .open(path)
        .map_err(at(path))?;
    file.set_modified(modified).map_err(at(path))
}

/// What a copy of a tree into a folder amounts to, for the free-space check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Per file the larger of its length and its allocated blocks (a copy can fill a sparse
    /// file's holes).
    pub total: u64,
    /// Of `total`, what the copy writes: all of it but the table files [`Mode::Checkpoint`]
    /// links (those on the file system of `dst`'s folder).
    pub written: u64,
}

/// [`Usage`] of copying the tree `path` to `dst` in `mode`.
pub fn disk_usage(path: &Path, dst: &Path, mode: Mode) -> io::Result<Usage> {
    let link_dev = link_device(dst, mode)?;
    let mut usage = Usage::default();
    add_usage(path, link_dev, &mut usage)?;
    Ok(usage)
}

fn add_usage(path: &Path, link_dev: Option<u64>, usage: &mut Usage) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let store = link_dev.is_some() && is_table_store(path);
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            add_usage(&entry.path(), link_dev, usage)?;
        } else if kind.is_file() {
            let meta = entry.metadata()?;
            let size = meta.len().max(meta.blocks() * 512);
            usage.total += size;
            if !(store && is_table_file(&entry.path()) && Some(meta.dev()) == link_dev) {
                usage.written += size;
            }
        }
    }
    Ok(())
}

/// The symbolic links under `root` whose target is outside it (an absolute path elsewhere, or a
/// relative one that climbs out), with their targets, sorted: a backup holds such a link, not
/// what it points to (`data/application.db -> /mnt/ssd/application.db`). Read from the folder
/// listings and the links alone: nothing is followed.
pub fn links_leaving(root: &Path) -> io::Result<Vec<(PathBuf, PathBuf)>> {
    let mut found = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(dir) = folders.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                folders.push(entry.path());
            } else if kind.is_symlink() {
                let target = fs::read_link(entry.path())?;
                if !stays_under(root, &dir.join(&target)) {
                    found.push((entry.path(), target));
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Whether `path`, with `.` and `..` taken lexically, is `root` or under it.
fn stays_under(root: &Path, path: &Path) -> bool {
    use std::path::Component;
    let mut normal = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                if !normal.pop() {
                    return false;
                }
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal.starts_with(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn checkpoint(src: &Path, dst: &Path) -> CopyStats {
        copy_tree(
            src,
            dst,
            Mode::Checkpoint,
            2,
            &AtomicBool::new(false),
            &AtomicU64::new(0),
        )
        .unwrap()
    }

    fn copy(src: &Path, dst: &Path) -> Result<CopyStats, CopyError> {
        copy_tree(
            src,
            dst,
            Mode::Copy,
            2,
            &AtomicBool::new(false),
            &AtomicU64::new(0),
        )
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
        fs::set_permissions(
            src.join("application.db"),
            fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::os::unix::fs::symlink("application.db", src.join("link")).unwrap();
        let dst = tmp.path().join("copy");
        let copied = AtomicU64::new(0);
        let stats = copy_tree(&src, &dst, Mode::Copy, 2, &AtomicBool::new(false), &copied).unwrap();
        assert_eq!(
            stats,
            CopyStats {
                files: 2,
                bytes: 100_002,
                linked_bytes: 0,
                set_id_stripped: 0,
                linked: Vec::new(),
            }
        );
        assert_eq!(copied.load(Ordering::Relaxed), 100_002);
        assert_eq!(
            fs::read(dst.join("application.db/000001.ldb")).unwrap(),
            vec![7u8; 100_000]
        );
        assert_eq!(
            fs::read_link(dst.join("link")).unwrap(),
            PathBuf::from("application.db")
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&dst.join("priv_validator_state.json")), 0o600);
        assert_eq!(mode(&dst.join("application.db")), 0o700);
        let times = |p: &Path| fs::metadata(p).unwrap().modified().unwrap();
        assert_eq!(
            times(&src.join("application.db/000001.ldb")),
            times(&dst.join("application.db/000001.ldb"))
        );
        assert_eq!(
            times(&src.join("application.db")),
            times(&dst.join("application.db"))
        );
    }

    #[test]
    fn no_copy_keeps_a_setuid_or_setgid_bit() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("data");
        let db = src.join("shared");
        fs::create_dir_all(&db).unwrap();
        fs::write(db.join("CURRENT"), "MANIFEST-000002\n").unwrap();
        fs::write(db.join("MANIFEST-000002"), "m").unwrap();
        fs::write(db.join("000005.ldb"), b"table").unwrap();
        fs::write(src.join("shell"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(src.join("shell"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::set_permissions(db.join("000005.ldb"), fs::Permissions::from_mode(0o2644)).unwrap();
        fs::set_permissions(&db, fs::Permissions::from_mode(0o2775)).unwrap();
        let dst = tmp.path().join("copy");
        let stats = checkpoint(&src, &dst);
        assert_eq!(stats.set_id_stripped, 3);
        assert_eq!(
            stats.linked_bytes, 0,
            "a setgid table is copied, not linked"
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&dst.join("shell")), 0o755);
        assert_eq!(mode(&dst.join("shared")), 0o775);
        assert_eq!(mode(&dst.join("shared/000005.ldb")), 0o644);
        assert_eq!(fs::read(dst.join("shared/000005.ldb")).unwrap(), b"table");
    }

    #[test]
    fn finds_the_links_that_leave_the_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        fs::create_dir_all(data.join("snapshots")).unwrap();
        let link =
            |target: &str, name: &str| std::os::unix::fs::symlink(target, data.join(name)).unwrap();
        link("/mnt/ssd/application.db", "application.db");
        link("../../elsewhere", "snapshots/up");
        link("../state.db", "snapshots/inside");
        link("state.db", "plain");
        std::os::unix::fs::symlink(data.join("plain"), data.join("absolute-inside")).unwrap();
        assert_eq!(
            links_leaving(&data).unwrap(),
            [
                (
                    data.join("application.db"),
                    PathBuf::from("/mnt/ssd/application.db")
                ),
                (data.join("snapshots/up"), PathBuf::from("../../elsewhere")),
            ]
        );
    }

    #[test]
    fn cancel_stops_the_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("data");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("a"), b"a").unwrap();
        let err = copy_tree(
            &src,
            &tmp.path().join("copy"),
            Mode::Copy,
            2,
            &AtomicBool::new(true),
            &AtomicU64::new(0),
        )
        .unwrap_err();
        assert!(matches!(err, CopyError::Cancelled));
    }

    #[test]
    fn many_files_with_more_threads_than_files() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("data");
        fs::create_dir_all(src.join("a/b/c")).unwrap();
        for i in 0..50 {
            fs::write(
                src.join(format!("a/b/c/{i}.ldb")),
                vec![u8::try_from(i).unwrap(); i * 100],
            )
            .unwrap();
        }
        let stats = copy(&src, &tmp.path().join("copy")).unwrap();
        assert_eq!(stats.files, 50);
        for i in 0..50 {
            assert_eq!(
                fs::read(tmp.path().join(format!("copy/a/b/c/{i}.ldb")))
                    .unwrap()
                    .len(),
                i * 100
            );
        }
    }

    #[test]
    fn checkpoint_links_table_files_of_stores_only() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("data");
        let db = src.join("application.db");
        fs::create_dir_all(&db).unwrap();
        fs::write(db.join("CURRENT"), "MANIFEST-000002\n").unwrap();
        fs::write(db.join("MANIFEST-000002"), "m").unwrap();
        fs::write(db.join("000005.ldb"), vec![1u8; 1000]).unwrap();
        fs::write(db.join("000006.log"), "wal").unwrap();
        fs::create_dir_all(src.join("loose")).unwrap();
        fs::write(src.join("loose/000007.ldb"), "not in a store").unwrap();
        let dst = tmp.path().join("copy");
        let stats = checkpoint(&src, &dst);
        assert_eq!(stats.linked_bytes, 1000);
        assert_eq!(stats.linked, [PathBuf::from("application.db/000005.ldb")]);
        let usage = disk_usage(&src, &tmp.path().join("other"), Mode::Checkpoint).unwrap();
        assert!(usage.total >= 1000 + usage.written, "{usage:?}");
        let ino = |p: &Path| fs::metadata(p).unwrap().ino();
        assert_eq!(
            ino(&db.join("000005.ldb")),
            ino(&dst.join("application.db/000005.ldb")),
            "linked"
        );
        assert_ne!(
            ino(&db.join("000006.log")),
            ino(&dst.join("application.db/000006.log")),
            "copied"
        );
        assert_ne!(
            ino(&db.join("MANIFEST-000002")),
            ino(&dst.join("application.db/MANIFEST-000002"))
        );
        assert_ne!(
            ino(&src.join("loose/000007.ldb")),
            ino(&dst.join("loose/000007.ldb"))
        );
        assert_eq!(
            fs::read(dst.join("application.db/000005.ldb")).unwrap(),
            vec![1u8; 1000]
        );
    }

    #[test]
    fn disk_usage_counts_allocated_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("d")).unwrap();
        fs::write(tmp.path().join("d/f"), vec![1u8; 10_000]).unwrap();
        let usage = disk_usage(tmp.path(), &tmp.path().join("copy"), Mode::Copy).unwrap();
        assert!(usage.total >= 10_000);
        assert_eq!(usage.written, usage.total);
    }
}
