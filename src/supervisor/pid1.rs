//! Running as PID 1 (a container's init), the way tini does it.
//!
//! As PID 1 cosmovisor must also reap processes it never started (orphans re-parented to it),
//! but the supervisor owns its daemon through tokio, which must be the only one waiting on that
//! child. So PID 1 splits in two: this small synchronous init forks a second cosmovisor with the
//! same arguments (the real supervisor), forwards every signal it gets to it, reaps every zombie,
//! and exits with the supervisor's status. Nothing here is async.

use std::process::Command;

use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::exit;

/// Whether we are the init process of a PID namespace.
#[must_use]
pub fn is_pid1() -> bool {
    nix::unistd::getpid().as_raw() == 1
}

/// Runs the init loop; returns the supervisor's exit code.
pub fn run_as_init() -> u8 {
    let mut set = SigSet::empty();
    for sig in crate::signals::FORWARDED {
        set.add(sig);
    }
    set.add(Signal::SIGCHLD);
    // Blocked before the fork so none is lost; std's spawn clears the mask in the child.
    if let Err(err) = set.thread_block() {
        eprintln!("Error: cannot block signals as init: {err}");
        return exit::INTERNAL;
    }
    let child = match std::env::current_exe()
        .and_then(|exe| Command::new(exe).args(std::env::args_os().skip(1)).spawn())
    {
        Ok(child) => child,
        Err(err) => {
            eprintln!("Error: cannot start the supervisor as init's child: {err}");
            return exit::INTERNAL;
        }
    };
    let supervisor = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => {
                if let Some(code) = reap_all(supervisor) {
                    return code;
                }
            }
            Ok(sig) => {
                let _ = kill(supervisor, sig);
            }
            Err(err) => {
                eprintln!("Error: waiting for signals as init failed: {err}");
                return exit::INTERNAL;
            }
        }
    }
}

/// Reaps every zombie; the supervisor's exit code once it is among them.
fn reap_all(supervisor: Pid) -> Option<u8> {
    let mut result = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == supervisor => {
                result = Some(u8::try_from(code & 0xff).unwrap_or(exit::INTERNAL));
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == supervisor => {
                result = Some(exit::from_signal(sig));
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(_) => {}
        }
    }
}
