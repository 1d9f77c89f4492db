//! The command line: the clap definitions of the top level and the list of commands (each
//! command's arguments are declared beside it, in `commands/`), and the dispatch rule that makes
//! `cosmovisor start` (or any other word that is not one of our commands) mean
//! `cosmovisor run start`. No logic.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::commands::add_upgrade::{AddBatchUpgradeArgs, AddUpgradeArgs};
use crate::commands::completion::{CompletionArgs, ManArgs};
use crate::commands::doctor::DoctorArgs;
use crate::commands::info::{ConfigArgs, ShowUpgradeInfoArgs};
use crate::commands::init::InitArgs;
use crate::commands::prepare::PrepareUpgradeArgs;
use crate::commands::rollback::RollbackArgs;
use crate::commands::run::RunArgs;
use crate::commands::status::StatusArgs;
use crate::commands::version::VersionArgs;
use crate::commands::{Context, Run as _};

const ABOUT: &str = "Cosmovisor - A process manager for Cosmos SDK application binaries.";

const LONG_ABOUT: &str = "Cosmovisor - A process manager for Cosmos SDK application binaries.

Cosmovisor monitors the governance module for incoming chain upgrade proposals. When it sees a \
proposal that gets approved, cosmovisor can automatically download the new binary, stop the \
current binary, switch from the old binary to the new one, and finally restart the node with the \
new binary.

It runs $DAEMON_HOME/cosmovisor/current/bin/$DAEMON_NAME and watches \
$DAEMON_HOME/data/upgrade-info.json (and the daemon's output) for an approved upgrade.
This is the Rust implementation; it is a drop-in replacement for Go cosmovisor.

Documentation: https://docs.cosmos.network/main/build/tooling/cosmovisor";

#[derive(Debug, Parser)]
#[command(name = "cosmovisor", about = ABOUT, long_about = LONG_ABOUT, disable_version_flag = true)]
pub struct Cli {
    /// Path to a cosmovisor config file (config.toml); environment variables override its values.
    #[arg(
        short = 'c',
        long = "cosmovisor-config",
        global = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Our commands: what each is for (its help) here, its arguments and what it does in
/// `commands/<command>.rs`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an APP command (`cosmovisor run start …`); every argument goes to the daemon untouched.
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    /// Print cosmovisor's version, then the daemon's.
    Version(VersionArgs),
    /// Initialise a cosmovisor home: copy the genesis binary, create `current`, write config.toml.
    Init(InitArgs),
    /// Print the configuration cosmovisor would use (after validating it).
    Config(ConfigArgs),
    /// Stage an upgrade binary at `upgrades/<name>/bin/$DAEMON_NAME`; with --upgrade-height, also
    /// schedule a manual upgrade: the node is started with --halt-height H and switched when it
    /// halts there, never before.
    AddUpgrade(AddUpgradeArgs),
    /// Stage several binaries and schedule them as manual upgrades (replaces the queue in
    /// data/upgrade-info.json.batch); applied in height order, each at its height.
    AddBatchUpgrade(AddBatchUpgradeArgs),
    /// Ask the node (gRPC at `DAEMON_GRPC_ADDRESS`) for the scheduled upgrade and download and
    /// verify its binary ahead of the height.
    PrepareUpgrade(PrepareUpgradeArgs),
    /// Print the pending upgrade plan (data/upgrade-info.json).
    ShowUpgradeInfo(ShowUpgradeInfoArgs),
    /// Show the current version, applied and pending plans, staged upgrades, the last backup,
    /// an upgrade under way, and whether the daemon and a supervisor run. Changes nothing.
    Status(StatusArgs),
    /// Check the setup and the next upgrade before its height; one line per check, exit 7 when
    /// one fails. Changes nothing.
    #[command(
        after_help = "Checks the configuration (with --unit: the one the unit's Environment= \
                      and EnvironmentFile= give, compared with the shell's), the home, `current`, the pending plan (or every \
                      staged upgrade): folder name, binary present, executable, built for this \
                      machine, shared libraries (ldd), `<bin> version`; free space for the \
                      backup; the daemon's --home; the systemd unit's stop settings."
    )]
    Doctor(DoctorArgs),
    /// Point `current` back at the previous version (or --to one), optionally restoring data/
    /// from the newest backup; refused while the node or a supervisor runs. `cosmovisor run
    /// rollback` runs the daemon's own rollback command instead.
    Rollback(RollbackArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    Completion(CompletionArgs),
    /// Print the manual page (roff) on stdout: `cosmovisor man > cosmovisor.1`.
    Man(ManArgs),
}

impl Command {
    /// Carries the command out.
    pub fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        match self {
            Command::Run(args) => args.run(ctx),
            Command::Version(args) => args.run(ctx),
            Command::Init(args) => args.run(ctx),
            Command::Config(args) => args.run(ctx),
            Command::AddUpgrade(args) => args.run(ctx),
            Command::AddBatchUpgrade(args) => args.run(ctx),
            Command::PrepareUpgrade(args) => args.run(ctx),
            Command::ShowUpgradeInfo(args) => args.run(ctx),
            Command::Status(args) => args.run(ctx),
            Command::Doctor(args) => args.run(ctx),
            Command::Rollback(args) => args.run(ctx),
            Command::Completion(args) => args.run(ctx),
            Command::Man(args) => args.run(ctx),
        }
    }
}

/// The [`Context`] commands run in: the global `--cosmovisor-config`, and this command line's
/// definition.
pub fn context(config_file: Option<PathBuf>) -> Context {
    Context::new(config_file, Cli::command)
}

/// The words that are our own commands (everything else is handed to `run`).
pub const COMMANDS: &[&str] = &[
    "run",
    "version",
    "init",
    "config",
    "add-upgrade",
    "add-batch-upgrade",
    "prepare-upgrade",
    "show-upgrade-info",
    "status",
    "doctor",
    "rollback",
    "completion",
    "man",
    "help",
];

/// How the command line is to be handled.
#[derive(Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// `run …` or an implicit run: the daemon's arguments, untouched, and an optional config
    /// file taken out of them.
    Run {
        args: Vec<OsString>,
        config: Option<PathBuf>,
        implicit: bool,
    },
    /// `--version` or `-V` as the first word: our version.
    Version,
    /// `help <word>` for a word that is not ours: explain that it runs the daemon as `run <word>`.
    HelpImplicitRun { word: String },
    /// One of our other commands (or help): parse with clap.
    Clap,
}

/// Decides between `run` (explicit or implicit) and our own commands, before clap sees the
/// arguments (clap would otherwise reject the daemon's flags).
#[must_use]
pub fn dispatch(args: &[OsString]) -> Dispatch {
    let Some(first) = args.first() else {
        return Dispatch::Clap;
    };
    let first = first.to_string_lossy();
    if first == "--version" || first == "-V" {
        return Dispatch::Version;
    }
    if first == "help" {
        let word = args.get(1).map(|w| w.to_string_lossy().into_owned());
        if let Some(word) = word.filter(|w| !w.starts_with('-') && !COMMANDS.contains(&w.as_str()))
        {
            return Dispatch::HelpImplicitRun { word };
        }
    }
    if first == "run" {
        let (config, args) = take_config_flag(&args[1..]);
        return Dispatch::Run {
            args,
            config,
            implicit: false,
        };
    }
    if first.starts_with('-') || COMMANDS.contains(&first.as_ref()) {
        return Dispatch::Clap;
    }
    let (config, args) = take_config_flag(args);
    Dispatch::Run {
        args,
        config,
        implicit: true,
    }
}

/// Takes the first `--cosmovisor-config <file>` (any case, one or two dashes) out of the daemon's
/// arguments, as Go v1.6+ `run` does.
fn take_config_flag(args: &[OsString]) -> (Option<PathBuf>, Vec<OsString>) {
    let position = args.iter().position(|arg| {
        let arg = arg.to_string_lossy().to_lowercase();
        arg == "--cosmovisor-config" || arg == "-cosmovisor-config"
    });
    match position {
        Some(i) if i + 1 < args.len() => {
            let mut rest = args.to_vec();
            let value = rest.remove(i + 1);
            rest.remove(i);
            (Some(PathBuf::from(value)), rest)
        }
        _ => (None, args.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::os;

    #[test]
    fn dispatches_run_and_implicit_run() {
        assert_eq!(
            dispatch(&os(&["run", "start", "--help"])),
            Dispatch::Run {
                args: os(&["start", "--help"]),
                config: None,
                implicit: false
            }
        );
        assert_eq!(
            dispatch(&os(&["start", "--home", "/h"])),
            Dispatch::Run {
                args: os(&["start", "--home", "/h"]),
                config: None,
                implicit: true
            }
        );
        assert_eq!(
            dispatch(&os(&[
                "run",
                "start",
                "--cosmovisor-config",
                "/c.toml",
                "--x"
            ])),
            Dispatch::Run {
                args: os(&["start", "--x"]),
                config: Some("/c.toml".into()),
                implicit: false
            }
        );
        assert_eq!(dispatch(&os(&["version"])), Dispatch::Clap);
        assert_eq!(dispatch(&os(&["--version"])), Dispatch::Version);
        assert_eq!(dispatch(&os(&["-V"])), Dispatch::Version);
        assert_eq!(
            dispatch(&os(&["help", "start"])),
            Dispatch::HelpImplicitRun {
                word: "start".into()
            }
        );
        assert_eq!(dispatch(&os(&["help", "doctor"])), Dispatch::Clap);
        assert_eq!(dispatch(&os(&["help"])), Dispatch::Clap);
        assert_eq!(dispatch(&os(&["--help"])), Dispatch::Clap);
        assert_eq!(dispatch(&os(&[])), Dispatch::Clap);
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
