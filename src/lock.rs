//! The supervisor lock: an advisory `flock` on `cosmovisor/.supervisor.lock`, held for the life
//! of the one `cosmovisor run` that supervises this home's node and carries out its upgrades.
//!
//! A second `cosmovisor run` for the same home (say `cosmovisor run query …` beside a running
//! node) does not get it and runs its command as a plain pass-through, never touching upgrades.
//! The kernel drops the lock when the holder dies, even by SIGKILL, so a crash never leaves a
//! stale lock behind. The file descriptor is close-on-exec, so the daemon never inherits it.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Proof that we hold the lock; dropping it releases the lock.
pub struct SupervisorLock {
    _lock: Flock<File>,
}

impl SupervisorLock {
    /// Takes the lock if nobody holds it; `Ok(None)` when another cosmovisor does.
    pub fn try_acquire(path: &Path) -> io::Result<Option<SupervisorLock>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(SupervisorLock { _lock: lock })),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, err)) => Err(io::Error::from(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_the_first_drops() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(".supervisor.lock");
        let first = SupervisorLock::try_acquire(&path).unwrap();
        assert!(first.is_some());
        assert!(SupervisorLock::try_acquire(&path).unwrap().is_none());
        drop(first);
        assert!(SupervisorLock::try_acquire(&path).unwrap().is_some());
    }
}
