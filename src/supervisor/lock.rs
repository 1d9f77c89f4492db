//! The supervisor lock: an advisory `flock` on the `cosmovisor/` directory itself, held for the
//! life of the one `cosmovisor run` that supervises this home's node and carries out its
//! upgrades. A lock file could be deleted under a running supervisor (then a second one would
//! lock a new file and also supervise); the directory cannot be removed while it holds the
//! home's binaries, and replacing it would not carry the running supervisor's state anyway.
//!
//! A second `cosmovisor run` for the same home (say `cosmovisor run query …` beside a running
//! node) does not get it and runs its command as a plain pass-through, never touching upgrades.
//! The kernel drops the lock when the holder dies, even by SIGKILL, so a crash never leaves a
//! stale lock behind. The file descriptor is close-on-exec, so the daemon never inherits it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Proof that we hold the lock; dropping it releases the lock.
pub struct SupervisorLock {
    _lock: Flock<File>,
}

impl SupervisorLock {
    /// Takes the lock on the directory `dir` if nobody holds it; `Ok(None)` when another
    /// cosmovisor does.
    pub fn try_acquire(dir: &Path) -> io::Result<Option<SupervisorLock>> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_CLOEXEC)
            .open(dir)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(SupervisorLock { _lock: lock })),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, err)) => Err(io::Error::from(err)),
        }
    }
}

/// The pid of the process holding the lock on the directory `path`, if any, read from `/proc/locks` without
/// touching the lock (taking it, even briefly, could turn a supervisor starting at that moment
/// into a pass-through). `None` when nobody holds it or `/proc` is not available.
#[must_use]
pub fn holder(path: &Path) -> Option<i32> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(path).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(&locks, inode)
}

/// Finds an active `FLOCK` on `inode` in the text of `/proc/locks`
/// (`1: FLOCK  ADVISORY  WRITE 1234 00:2f:5678 0 EOF`; waiters are marked `->`).
fn holder_in(locks: &str, inode: u64) -> Option<i32> {
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&"FLOCK") {
            return None;
        }
        let id = fields.get(5)?.rsplit(':').next()?.parse::<u64>().ok()?;
        if id != inode {
            return None;
        }
        fields.get(4)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
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
    fn holder_is_read_from_proc_locks() {
        let locks = "1: FLOCK  ADVISORY  WRITE 4242 00:2f:777 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 4343 00:2f:777 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 99 00:2f:888 0 EOF\n";
        assert_eq!(holder_in(locks, 777), Some(4242));
        assert_eq!(holder_in(locks, 888), None);
        assert_eq!(holder_in(locks, 1), None);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path();
        let lock = SupervisorLock::try_acquire(path).unwrap();
        if std::path::Path::new("/proc/locks").exists() {
            assert_eq!(
                holder(path),
                Some(i32::try_from(std::process::id()).unwrap())
            );
        }
        drop(lock);
        assert_eq!(holder(path), None);
    }
}
