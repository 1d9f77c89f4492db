//! Every exit code cosmovisor can return, in one place; the rule that maps the daemon's own exit
//! status onto ours; and [`ExitCode`], which each error type with a documented code implements
//! (the error types themselves are listed once, in `commands::CODED_ERRORS`).
//!
//! When the daemon ends on its own, its status passes through: its exit code as is, or `128 + N`
//! when it died by signal N (the convention of shells and tini). Upstream Go cosmovisor always
//! exits 1 instead (`cmd/cosmovisor/main.go`); we do not keep that, so `systemctl status` shows
//! what the daemon really did.
//!
//! Our own failures use the small codes below. A daemon may of course exit with the same numbers;
//! the last log line (`ERR …`) tells the two apart.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// Success, or an upgrade done with `DAEMON_RESTART_AFTER_UPGRADE=false`.
pub const OK: u8 = 0;
/// An unexpected failure of cosmovisor itself (an I/O error not covered below).
pub const INTERNAL: u8 = 1;
/// The command line could not be parsed (clap's convention), or an argument names something
/// unusable (for example `init` with a path that does not exist, or `add-upgrade` with a height
/// the node has already reached).
pub const USAGE: u8 = 2;
/// The environment or `config.toml` is invalid; nothing was started or changed.
pub const CONFIG: u8 = 3;
/// The home folder is not usable: missing `cosmovisor/` or `data/`, a broken `current` link, a
/// missing or non-executable current binary. Nothing was started or changed.
pub const LAYOUT: u8 = 4;
/// An upgrade could not be carried out: its binary is missing or not executable, the plan is
/// invalid, the backup or a pre-upgrade step failed. The daemon is stopped, `current` still
/// points at the old version, and the next start resumes the upgrade from its journal. Also: the
/// journal or the manual-upgrade queue cannot be used (unreadable, not a regular file, or a journal
/// naming a backup folder outside `DAEMON_DATA_BACKUP_DIR`); nothing was removed or started. And:
/// `data/upgrade-info.json` holds a complete plan that can never be applied, or the manual-upgrade
/// queue cannot be used (the daemon was stopped, or not started; every start fails the same way
/// until the file is fixed).
pub const UPGRADE_FAILED: u8 = 5;
/// `cosmovisor doctor` found at least one problem (each is a `✗` line on stdout).
pub const DOCTOR_FAILED: u8 = 7;
/// `cosmovisor rollback` refused because the home is in use: a cosmovisor supervises it (its lock
/// is held), the daemon it started is still running, or an upgrade is under way (journal); or
/// the backup `--restore-data` would restore shares files with `data/` that changed since it was
/// taken (`--force` restores it anyway); or `add-upgrade --force` would replace the binary of the
/// upgrade under way; or `run start` while another cosmovisor supervises the home. Nothing was
/// changed.
pub const HOME_BUSY: u8 = 8;
/// The daemon binary exists but could not be executed (shell convention).
pub const CANNOT_EXECUTE: u8 = 126;
/// The daemon binary was not found (shell convention).
pub const NOT_FOUND: u8 = 127;

/// Every code above with its meaning, for the manual page's EXIT STATUS section (README "Exit
/// codes" says the same). A new code goes here too.
pub const OWN_CODES: &[(u8, &str)] = &[
    (
        OK,
        "success; or an upgrade done with DAEMON_RESTART_AFTER_UPGRADE=false",
    ),
    (INTERNAL, "an unexpected failure of cosmovisor itself"),
    (USAGE, "command-line usage error"),
    (
        CONFIG,
        "invalid environment or config.toml; nothing was started or changed",
    ),
    (
        LAYOUT,
        "unusable home: missing cosmovisor/ or data/, bad current, missing or non-executable current binary",
    ),
    (
        UPGRADE_FAILED,
        "an upgrade step failed (binary missing, backup, custom script, pre-upgrade); the daemon is stopped, current unchanged, and the next start resumes it",
    ),
    (
        DOCTOR_FAILED,
        "doctor found at least one problem (each is a failed check on stdout)",
    ),
    (
        HOME_BUSY,
        "rollback or add-upgrade --force refused: a supervisor holds the lock, the daemon still runs, an upgrade is under way, or the backup to restore changed since it was taken (rollback --force); or run start while another cosmovisor supervises the home; nothing changed",
    ),
    (CANNOT_EXECUTE, "the daemon binary could not be executed"),
    (NOT_FOUND, "the daemon binary was not found"),
];

/// What the codes not in [`OWN_CODES`] mean.
pub const PASSED_THROUGH: &str = "Otherwise the daemon's own exit code when it exited on its own, \
     or 128 + N when it died by signal N; 128 + N also when cosmovisor itself stopped on signal N \
     during an upgrade (e.g. 143 for SIGTERM).";

/// An error with a documented exit code (one of the constants above, or `128 + N`). A type that
/// implements it is also listed once in `commands::CODED_ERRORS`, the list `main` asks.
pub trait ExitCode {
    fn exit_code(&self) -> u8;
}

/// Asks one cause whether it is an `E`, and if so for its code. anyhow cannot downcast to a trait
/// object, so the error types with a code are tried one by one ([`code_for`]).
pub type Probe = fn(&(dyn std::error::Error + 'static)) -> Option<u8>;

/// The [`Probe`] for the error type `E`.
pub fn probe<E: ExitCode + std::error::Error + 'static>(
    cause: &(dyn std::error::Error + 'static),
) -> Option<u8> {
    cause.downcast_ref::<E>().map(ExitCode::exit_code)
}

/// The exit code of an error: that of its first cause (outermost first) one of `probes`
/// recognises, [`INTERNAL`] when none does.
pub fn code_for(err: &anyhow::Error, probes: &[Probe]) -> u8 {
    err.chain()
        .find_map(|cause| probes.iter().find_map(|probe| probe(cause)))
        .unwrap_or(INTERNAL)
}

/// Maps the daemon's exit status to ours: the code itself, or `128 + signal`.
#[must_use]
pub fn from_status(status: ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        // Exit codes are 0..=255 on Unix; the truncation is the kernel's own.
        return u8::try_from(code & 0xff).unwrap_or(INTERNAL);
    }
    match status.signal() {
        Some(signal) => u8::try_from(128 + (signal & 0x7f)).unwrap_or(INTERNAL),
        None => INTERNAL,
    }
}

/// The `128 + N` code for a signal that made cosmovisor itself stop (for example a SIGTERM
/// received while an upgrade step was running).
#[must_use]
pub fn from_signal(signal: nix::sys::signal::Signal) -> u8 {
    u8::try_from(128 + signal as i32).unwrap_or(INTERNAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_pass_through() {
        for code in [0u8, 1, 2, 42, 255] {
            assert_eq!(
                from_status(ExitStatus::from_raw(i32::from(code) << 8)),
                code
            );
        }
    }

    #[test]
    fn death_by_signal_is_128_plus_signal() {
        assert_eq!(from_status(ExitStatus::from_raw(15)), 143);
        assert_eq!(from_status(ExitStatus::from_raw(9)), 137);
        // A core dump sets bit 0x80 of the raw status; the signal is still 11.
        assert_eq!(from_status(ExitStatus::from_raw(0x0b | 0x80)), 139);
    }

    #[test]
    fn signal_codes() {
        assert_eq!(from_signal(nix::sys::signal::Signal::SIGTERM), 143);
        assert_eq!(from_signal(nix::sys::signal::Signal::SIGINT), 130);
    }
}
