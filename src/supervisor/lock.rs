//! The supervisor lock: an advisory `flock` on `cosmovisor/supervisor.lock`, held for the life of
//! the one `cosmovisor run` that supervises this home's node and carries out its upgrades.
//!
//! Only the home's owner can take it (docs/design.md "Trust boundaries"): the file is created
//! `0600` by the supervisor in `cosmovisor/`, which other users cannot write, and opened without
//! following links, so another local user can neither open it to lock it nor plant one. (Locking
//! the `cosmovisor/` folder itself, as earlier versions did, let anyone who could read the home
//! take the lock and silently turn every later `run start` into a pass-through.)
//!
//! The supervisor also takes an `flock` on the `cosmovisor/` folder, as earlier versions did, so
//! that a second supervisor still finds the first when the lock file was deleted under it (or the
//! first is an earlier version): a folder lock held by a process of the lock file's owner means
//! another supervisor; one held by another user is only reported and ignored.
//!
//! A second `cosmovisor run start` for the same home is refused with [`exit::HOME_BUSY`]
//! (`supervise.rs`); any other `cosmovisor run <command>` beside a running node (`run query …`)
//! runs as a plain pass-through, never touching upgrades. The kernel drops the lock when the
//! holder dies, even by SIGKILL, so a crash never leaves a stale lock behind. The file descriptor
//! is close-on-exec, so the daemon never inherits it. `status` and `rollback` name the holder, and
//! its user when that is not the home's owner.
//!
//! [`exit::HOME_BUSY`]: crate::exit::HOME_BUSY

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use tracing::warn;

use crate::durable::open_lock_file;

/// The lock file's name in `cosmovisor/`.
const LOCK_FILE: &str = "supervisor.lock";

/// Proof that we hold the lock; dropping it releases the lock.
pub struct SupervisorLock {
    _lock: Flock<File>,
    _folder_lock: Option<Flock<File>>,
}

/// The lock file of the home whose `cosmovisor/` folder is `root`.
#[must_use]
pub fn lock_file(root: &Path) -> PathBuf {
    root.join(LOCK_FILE)
}

impl SupervisorLock {
    /// Takes the lock of the home whose `cosmovisor/` folder is `root` if nobody holds it;
    /// `Ok(None)` when another cosmovisor does.
    pub fn try_acquire(root: &Path) -> io::Result<Option<SupervisorLock>> {
        let file = open_lock_file(&lock_file(root))?;
        let owner = file.metadata()?.uid();
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, err)) => return Err(io::Error::from(err)),
        };
        let folder = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_CLOEXEC)
            .open(root)?;
        let folder_lock = match Flock::lock(folder, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Some(lock),
            Err((_, Errno::EWOULDBLOCK)) => {
                let holder = locked_by(root);
                match holder.and_then(|(pid, uid)| Some((pid, uid?))) {
                    Some((pid, uid)) if uid != owner => {
                        warn!(
                            pid,
                            uid,
                            folder = %root.display(),
                            "another user's process holds a lock on the cosmovisor folder; ignored: only {} decides who supervises this home",
                            lock_file(root).display()
                        );
                        None
                    }
                    _ => return Ok(None),
                }
            }
            Err((_, err)) => return Err(io::Error::from(err)),
        };
        Ok(Some(SupervisorLock {
            _lock: lock,
            _folder_lock: folder_lock,
        }))
    }
}

/// `cosmovisor run start` on a home another cosmovisor supervises: starting a second node on the
/// same data would corrupt it, and a silent pass-through would never upgrade.
#[derive(Debug, thiserror::Error)]
#[error(
    "another cosmovisor already supervises this home ({} is locked{}): not starting a second node on the same data; stop the other one first (for example `systemctl stop cosmovisor`)",
    lock.display(),
    holder.map_or_else(String::new, |holder| format!(" by {holder}"))
)]
pub struct HomeBusy {
    pub lock: PathBuf,
    pub holder: Option<Holder>,
}

impl crate::exit::ExitCode for HomeBusy {
    fn exit_code(&self) -> u8 {
        crate::exit::HOME_BUSY
    }
}

/// The process holding a home's supervisor lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub pid: i32,
    /// Its user, when that is not the home's owner (or `None` when it is, or cannot be told).
    pub foreign_uid: Option<u32>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if let Some(uid) = self.foreign_uid {
            write!(f, ", run by uid {uid}, not the home's owner")?;
        }
        Ok(())
    }
}

/// The process holding the supervisor lock of the home whose `cosmovisor/` folder is `root`, if
/// any, read from `/proc/locks` without touching the lock (taking it, even briefly, could make a
/// supervisor starting at that moment refuse to start). `None` when nobody holds it or `/proc` is
/// not available.
#[must_use]
pub fn holder(root: &Path) -> Option<Holder> {
    let home_owner = root
        .parent()
        .and_then(|home| std::fs::metadata(home).ok())
        .map(|meta| meta.uid());
    let (pid, uid) = locked_by(&lock_file(root)).or_else(|| {
        // A supervisor whose lock file was deleted, or an earlier version: the folder lock,
        // when a process of the home's owner holds it.
        locked_by(root).filter(|(_, uid)| uid.is_some() && *uid == home_owner)
    })?;
    let foreign_uid = match (uid, home_owner) {
        (Some(uid), Some(owner)) if uid != owner => Some(uid),
        _ => None,
    };
    Some(Holder { pid, foreign_uid })
}

/// The pid (and its user, when `/proc` tells) of the process holding an `flock` on `path`.
fn locked_by(path: &Path) -> Option<(i32, Option<u32>)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let file = FileId {
        major: nix::sys::stat::major(meta.dev()),
        minor: nix::sys::stat::minor(meta.dev()),
        inode: meta.ino(),
    };
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = holder_in(&locks, file)?;
    let uid = std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid());
    Some((pid, uid))
}

/// A file as `/proc/locks` names it: its device's major and minor numbers and its inode (an
/// inode number alone may be another file system's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    major: u64,
    minor: u64,
    inode: u64,
}

/// Finds an active `FLOCK` on `file` in the text of `/proc/locks`
/// (`1: FLOCK  ADVISORY  WRITE 1234 00:2f:5678 0 EOF`: major and minor in hex, the inode in
/// decimal; waiters are marked `->`).
fn holder_in(locks: &str, file: FileId) -> Option<i32> {
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&"FLOCK") {
            return None;
        }
        let mut id = fields.get(5)?.split(':');
        let major = u64::from_str_radix(id.next()?, 16).ok()?;
        let minor = u64::from_str_radix(id.next()?, 16).ok()?;
        let inode = id.next()?.parse::<u64>().ok()?;
        if (FileId {
            major,
            minor,
            inode,
        }) != file
        {
            return None;
        }
        fields.get(4)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn second_holder_is_refused_until_the_first_drops() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path();
        let first = SupervisorLock::try_acquire(path).unwrap();
        assert!(first.is_some());
        assert!(SupervisorLock::try_acquire(path).unwrap().is_none());
        drop(first);
        assert!(SupervisorLock::try_acquire(path).unwrap().is_some());
    }

    #[test]
    fn the_lock_file_is_private_and_never_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = SupervisorLock::try_acquire(tmp.path()).unwrap();
        assert!(lock.is_some());
        let mode = std::fs::metadata(lock_file(tmp.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(lock);
        let other = tempfile::tempdir().unwrap();
        std::fs::remove_file(lock_file(tmp.path())).unwrap();
        std::os::unix::fs::symlink(other.path().join("x"), lock_file(tmp.path())).unwrap();
        assert!(SupervisorLock::try_acquire(tmp.path()).is_err());
        assert!(!other.path().join("x").exists());
    }

    #[test]
    fn holder_is_read_from_proc_locks() {
        let locks = "1: FLOCK  ADVISORY  WRITE 4242 00:2f:777 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 4343 00:2f:777 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 99 00:2f:888 0 EOF\n";
        let id = |major, minor, inode| FileId {
            major,
            minor,
            inode,
        };
        assert_eq!(holder_in(locks, id(0, 0x2f, 777)), Some(4242));
        assert_eq!(holder_in(locks, id(0, 0x2f, 888)), None);
        assert_eq!(holder_in(locks, id(0, 0x2f, 1)), None);
        // The same inode number on another device is another file.
        assert_eq!(holder_in(locks, id(8, 1, 777)), None);
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cosmovisor");
        std::fs::create_dir(&root).unwrap();
        let lock = SupervisorLock::try_acquire(&root).unwrap();
        if std::path::Path::new("/proc/locks").exists() {
            assert_eq!(
                holder(&root),
                Some(Holder {
                    pid: i32::try_from(std::process::id()).unwrap(),
                    foreign_uid: None
                })
            );
        }
        drop(lock);
        assert_eq!(holder(&root), None);
    }
}
