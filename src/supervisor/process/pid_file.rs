//! The pid file that lets the next cosmovisor find a daemon left by one that was killed.
//!
//! It records the pid, the process's start time (field 22 of `/proc/<pid>/stat`, so a recycled
//! pid is never mistaken for the daemon) and the boot id (start times restart at 0 on every boot,
//! so a file that survived a reboot could otherwise match an unrelated process). A file without a
//! matching boot id is stale: never waited for, never signalled.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tracing::{info, warn};

use crate::bounded_read::{RECORD_CAP, read_capped_async, read_capped_string};

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// Records `pid` with its start time and the boot id.
pub fn write(path: &Path, pid: Pid) -> io::Result<()> {
    let start = start_time(pid).unwrap_or_default();
    let boot = boot_id().unwrap_or_default();
    crate::durable::write_atomic(
        path,
        format!("{} {start} {boot}\n", pid.as_raw()).as_bytes(),
        0o600,
    )
}

pub fn remove(path: &Path) {
    let _ = fs::remove_file(path);
}

/// If the daemon recorded in `path` still runs (its supervisor was killed and it is still
/// shutting down after its parent-death SIGTERM), waits for it, killing it after `grace`.
pub async fn wait_for_previous(path: &Path, grace: Duration) {
    let text = match read_capped_async(path.to_path_buf(), RECORD_CAP).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(err) if err.is_missing() => return,
        Err(err) => {
            warn!(error = %err, "ignoring the daemon pid file");
            remove(path);
            return;
        }
    };
    let Some(record) = Record::parse(&text) else {
        remove(path);
        return;
    };
    if !record.is_alive() {
        remove(path);
        return;
    }
    let (pid, raw) = (record.pid, record.pid.as_raw());
    warn!(pid = raw, grace = %crate::config::format_go_duration(grace), "daemon started by a previous cosmovisor is still running; waiting for it to exit");
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while record.is_alive() {
        if tokio::time::Instant::now() >= deadline {
            warn!(
                pid = raw,
                "previous daemon did not exit in time, killing it"
            );
            let _ = kill(pid, Signal::SIGKILL);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    info!(pid = raw, "previous daemon exited");
    remove(path);
}

/// The pid recorded in `path` when that very process (same boot, same start time, not a
/// zombie) is still alive; read-only (for `status` and `rollback`).
#[must_use]
pub fn running(path: &Path) -> Option<Pid> {
    let text = read_capped_string(path, RECORD_CAP).ok()?;
    let record = Record::parse(&text)?;
    record.is_alive().then_some(record.pid)
}

/// One pid file's content.
struct Record<'a> {
    pid: Pid,
    start: &'a str,
    boot: &'a str,
}

impl<'a> Record<'a> {
    fn parse(text: &'a str) -> Option<Record<'a>> {
        let mut parts = text.split_whitespace();
        let pid = parts.next()?.parse::<i32>().ok().filter(|&pid| pid > 0)?;
        Some(Record {
            pid: Pid::from_raw(pid),
            start: parts.next()?,
            // Files written before the boot id was recorded have none: stale.
            boot: parts.next().unwrap_or_default(),
        })
    }

    fn is_alive(&self) -> bool {
        let same_boot = boot_id().is_some_and(|boot| boot == self.boot);
        // A zombie still has its stat; it no longer holds any file, so it does not count.
        same_boot
            && start_time(self.pid).is_some_and(|start| start == self.start)
            && !is_zombie(self.pid)
    }
}

/// This boot's id (a UUID the kernel draws at boot).
fn boot_id() -> Option<String> {
    let id = fs::read_to_string(BOOT_ID).ok()?;
    Some(id.trim().to_owned()).filter(|id| !id.is_empty())
}

/// Field 22 of /proc/<pid>/stat: the start time in clock ticks since boot.
fn start_time(pid: Pid) -> Option<String> {
    stat_fields(pid)?.get(19).cloned()
}

/// Field 4 of /proc/<pid>/stat: the parent's pid.
pub(super) fn parent_of(pid: Pid) -> Option<Pid> {
    let parent = stat_fields(pid)?.get(1)?.parse::<i32>().ok()?;
    Some(Pid::from_raw(parent))
}

pub(super) fn is_zombie(pid: Pid) -> bool {
    stat_fields(pid).is_some_and(|fields| fields.first().is_some_and(|state| state == "Z"))
}

/// The fields of /proc/<pid>/stat after the command name (state is the first).
fn stat_fields(pid: Pid) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{}/stat", pid.as_raw())).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_from_another_boot_is_not_alive() {
        let us = nix::unistd::getpid();
        let start = start_time(us).unwrap();
        let line = |boot: &str| format!("{} {start} {boot}\n", us.as_raw());
        let this_boot = line(&boot_id().unwrap());
        assert!(Record::parse(&this_boot).unwrap().is_alive());
        let other = line("00000000-0000-4000-8000-000000000000");
        assert!(!Record::parse(&other).unwrap().is_alive());
        assert!(!Record::parse(&line("")).unwrap().is_alive());
        assert!(Record::parse("0 1 x").is_none());
        assert!(Record::parse("garbage").is_none());
    }
}
