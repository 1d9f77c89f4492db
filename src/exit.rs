//! Every exit code cosmovisor can return and what it means, in one place ([`Exit`], from which
//! the manual page and README "Exit codes" come); the rule that maps the daemon's own exit
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

/// Every code cosmovisor returns for its own reasons, and what it means: the one table from which
/// the constants below, the manual page's EXIT STATUS and README "Exit codes" (checked by this
/// file's tests) come. A new code is a new variant here, in [`Exit::ALL`] and in
/// [`Exit::meaning`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success, or an upgrade done with `DAEMON_RESTART_AFTER_UPGRADE=false`.
    Ok = 0,
    /// An unexpected failure of cosmovisor itself (an I/O error not covered below).
    Internal = 1,
    /// The command line could not be parsed (clap's convention), or an argument names something
    /// unusable (for example `init` with a path that does not exist, or `add-upgrade` with a
    /// height the node has already reached).
    Usage = 2,
    /// The environment or `config.toml` is invalid; nothing was started or changed.
    Config = 3,
    /// The home folder is not usable: missing `cosmovisor/` or `data/`, a broken `current` link,
    /// a missing or non-executable current binary. Nothing was started or changed.
    Layout = 4,
    /// An upgrade could not be carried out: its binary is missing or not executable, the plan is
    /// invalid, the backup or a pre-upgrade step failed. The daemon is stopped, `current` still
    /// points at the old version, and the next start resumes the upgrade from its journal. Also:
    /// the journal or the manual-upgrade queue cannot be used (unreadable, not a regular file, or
    /// a journal naming a backup folder outside `DAEMON_DATA_BACKUP_DIR`); nothing was removed or
    /// started. And: `data/upgrade-info.json` holds a complete plan that can never be applied, or
    /// the manual-upgrade queue cannot be used (the daemon was stopped, or not started; every
    /// start fails the same way until the file is fixed).
    UpgradeFailed = 5,
    /// `cosmovisor doctor` found at least one problem (each is a `✗` line on stdout).
    DoctorFailed = 7,
    /// `cosmovisor rollback` refused because the home is in use: a cosmovisor supervises it (its
    /// lock is held), the daemon it started is still running, or an upgrade is under way
    /// (journal); or the backup `--restore-data` would restore shares files with `data/` that
    /// changed since it was taken (`--force` restores it anyway); or `add-upgrade --force` would
    /// replace the binary of the upgrade under way; or `run start` while another cosmovisor
    /// supervises the home. Nothing was changed.
    HomeBusy = 8,
    /// The daemon binary exists but could not be executed (shell convention).
    CannotExecute = 126,
    /// The daemon binary was not found (shell convention).
    NotFound = 127,
}

impl Exit {
    /// Every variant, in the order of the code.
    pub const ALL: [Exit; 10] = [
        Exit::Ok,
        Exit::Internal,
        Exit::Usage,
        Exit::Config,
        Exit::Layout,
        Exit::UpgradeFailed,
        Exit::DoctorFailed,
        Exit::HomeBusy,
        Exit::CannotExecute,
        Exit::NotFound,
    ];

    #[must_use]
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// What the code means, in one line (Markdown: names in backticks), as README "Exit codes"
    /// says it and the manual page prints it (without the backticks).
    #[must_use]
    pub const fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "success; or upgraded with `DAEMON_RESTART_AFTER_UPGRADE=false`",
            Exit::Internal => "an unexpected failure of cosmovisor itself",
            Exit::Usage => {
                "command-line usage error; `add-upgrade`/`add-batch-upgrade` with a height the node has already reached, or two upgrades at one height (nothing changed)"
            }
            Exit::Config => "invalid environment or `config.toml` (nothing started or changed)",
            Exit::Layout => {
                "unusable home: missing `cosmovisor/` (every command but `init` and `doctor`: `cannot stat home dir <home>/cosmovisor: … check DAEMON_HOME, or set the home up with cosmovisor init …`; nothing is created in a mistyped home; `version` prints the same error but still exits 0, `doctor` reports it as a failed check) or `data/`, bad `current`, missing or non-executable current binary"
            }
            Exit::UpgradeFailed => {
                "an upgrade step failed (binary missing, backup, custom script, pre-upgrade); daemon stopped, `current` unchanged, resumes on the next start. Also: `data/upgrade-info.json` holds a plan that can never be applied, or the manual-upgrade queue cannot be used (daemon stopped, or not started; every start fails the same way until the file is fixed)"
            }
            Exit::DoctorFailed => {
                "`doctor` found at least one problem (each is a failed check on stdout)"
            }
            Exit::HomeBusy => {
                "`rollback` refused: a supervisor holds the lock, the daemon still runs, an upgrade is under way, or (`--restore-data`) files the backup shares with `data/` changed since it was taken (`--force` restores it anyway); or `add-upgrade --force` would replace the binary of the upgrade under way; or `run start` while another cosmovisor supervises the home; nothing changed"
            }
            Exit::CannotExecute => "the daemon binary could not be executed",
            Exit::NotFound => "the daemon binary was not found",
        }
    }
}

/// The codes as constants, for `match` patterns and returns (each is its [`Exit`] variant's).
pub const OK: u8 = Exit::Ok.code();
pub const INTERNAL: u8 = Exit::Internal.code();
pub const USAGE: u8 = Exit::Usage.code();
pub const CONFIG: u8 = Exit::Config.code();
pub const LAYOUT: u8 = Exit::Layout.code();
pub const UPGRADE_FAILED: u8 = Exit::UpgradeFailed.code();
pub const DOCTOR_FAILED: u8 = Exit::DoctorFailed.code();
pub const HOME_BUSY: u8 = Exit::HomeBusy.code();
pub const CANNOT_EXECUTE: u8 = Exit::CannotExecute.code();
pub const NOT_FOUND: u8 = Exit::NotFound.code();

/// What the codes not in [`Exit`] mean, each as a row of the table: before the own codes, the
/// daemon's status passed through; after them, a signal that stopped cosmovisor itself.
pub const PASSED_THROUGH: [(&str, &str); 2] = [
    (
        "daemon's code",
        "the daemon exited on its own: its exit code, or `128 + N` when it died by signal N",
    ),
    (
        "128 + N",
        "cosmovisor itself stopped on signal N during an upgrade (e.g. 143 for SIGTERM)",
    ),
];

/// The whole table, in README's order: the daemon's code, every [`Exit`], then `128 + N`. Each
/// row is the first cell (the code) and the meaning (Markdown).
#[must_use]
pub fn table() -> Vec<(String, &'static str)> {
    let [daemon, signal] = PASSED_THROUGH;
    std::iter::once((daemon.0.to_owned(), daemon.1))
        .chain(
            Exit::ALL
                .iter()
                .map(|exit| (exit.code().to_string(), exit.meaning())),
        )
        .chain(std::iter::once((signal.0.to_owned(), signal.1)))
        .collect()
}

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

    /// README "Exit codes" is [`table`], row by row: the same codes, in the same order, with the
    /// same meanings.
    #[test]
    fn readme_exit_codes_are_the_table() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let heading = "## Exit codes\n";
        let start = readme
            .find(heading)
            .expect("README has an Exit codes section")
            + heading.len();
        let rows: Vec<(String, String)> = readme[start..]
            .lines()
            .take_while(|line| !line.starts_with("## "))
            .filter_map(|line| line.strip_prefix("| ")?.strip_suffix(" |"))
            .filter_map(|row| row.split_once(" | "))
            .filter(|(code, _)| *code != "code" && !code.starts_with("---"))
            .map(|(code, meaning)| (code.to_owned(), meaning.to_owned()))
            .collect();
        let want: Vec<(String, String)> = table()
            .into_iter()
            .map(|(code, meaning)| (code, meaning.to_owned()))
            .collect();
        assert_eq!(rows, want, "README \"Exit codes\" differs from src/exit.rs");
    }

    #[test]
    fn every_code_is_listed_once_in_order() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|exit| exit.code()).collect();
        assert!(codes.windows(2).all(|pair| pair[0] < pair[1]), "{codes:?}");
    }
}
