//! Our commands, one file each (two close ones share `info.rs`, `add_upgrade.rs` and
//! `completion.rs`): its `#[derive(clap::Args)]` struct, which `cli.rs` lists in `Command`, and
//! its [`Run`] implementation. `run.rs` is `cosmovisor run`'s front; the supervisor itself is
//! `supervisor/`.
//!
//! Here, what every command shares: the [`Context`] (the global `--cosmovisor-config` and the
//! loaders built on it), logging set-up, the async runtime ([`block_on`]), [`OutputFormat`], and
//! the list of error types with a documented exit code ([`CODED_ERRORS`]).
//!
//! A command that logs calls [`Context::start_logging`] (or [`start_logging`] once it has its
//! configuration) first; an async one runs its body through [`block_on`].

pub mod add_upgrade;
pub mod completion;
pub mod doctor;
pub mod home_owner;
pub mod info;
pub mod init;
pub mod prepare;
pub mod rollback;
pub mod run;
pub mod status;
pub mod version;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use crate::config::{self, Config, ConfigErrors};
use crate::exit;
use crate::home::binary;
use crate::home::layout::{self, Layout};

/// One command, carried out.
pub trait Run {
    /// Carries the command out: its exit code, or an error whose code [`CODED_ERRORS`] gives.
    fn run(self, ctx: &Context) -> anyhow::Result<u8>;
}

/// What every command is given besides its own arguments.
pub struct Context {
    config_file: Option<PathBuf>,
    cli: fn() -> clap::Command,
}

impl Context {
    /// `config_file` is `--cosmovisor-config`; `cli` builds the whole command line's definition
    /// (`completion` and `man` describe it; commands do not import `cli.rs`, which imports them).
    pub fn new(config_file: Option<PathBuf>, cli: fn() -> clap::Command) -> Context {
        Context { config_file, cli }
    }

    /// `--cosmovisor-config`, when given.
    pub fn config_file(&self) -> Option<&Path> {
        self.config_file.as_deref()
    }

    /// The whole command line's definition.
    pub fn cli(&self) -> clap::Command {
        (self.cli)()
    }

    /// Loads the configuration with the filesystem checks upstream does at load time: the home
    /// has a `cosmovisor/` folder (first: a mistyped home also misses the default backup folder),
    /// and the backup folder exists. Every command but `init` and `doctor` starts here or at
    /// [`Context::load_home`].
    pub fn load_checked(&self) -> anyhow::Result<Config> {
        let cfg = self.load_home()?;
        let errors = cfg.check_filesystem();
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(errors).into())
        }
    }

    /// [`Context::load_checked`] for a command that writes into the home: run by root on another
    /// user's home, it goes on as that user ([`home_owner::become_home_owner`]).
    pub fn load_for_writing(&self) -> anyhow::Result<Config> {
        let cfg = self.load_checked()?;
        home_owner::become_home_owner(&cfg.home)?;
        Ok(cfg)
    }

    /// Loads the configuration and checks that the home has a `cosmovisor/` folder, for the
    /// read-only commands that work without a backup folder (`status`, `show-upgrade-info`,
    /// `version`).
    pub fn load_home(&self) -> anyhow::Result<Config> {
        let cfg = Config::load(self.config_file())?;
        layout::check_root(&Layout::new(&cfg.home, &cfg.name))?;
        Ok(cfg)
    }

    /// Sets up logging from the configuration when it loads; silently with defaults when it
    /// does not (the command reports the configuration error itself).
    pub fn start_logging(&self) {
        match Config::load(self.config_file()) {
            Ok(cfg) => start_logging(&cfg),
            Err(_) => {
                let _ = crate::log::init(crate::log::Settings {
                    disabled: false,
                    color: false,
                    time_pattern: config::TimeFormat::Kitchen.strftime(),
                    format: crate::log::Format::Console,
                });
            }
        }
    }
}

/// Sets up logging as the configuration asks.
pub fn start_logging(cfg: &Config) {
    let _ = crate::log::init(crate::log::Settings {
        disabled: cfg.disable_logs,
        color: crate::log::use_color(
            cfg.color_logs,
            std::env::var_os(config::COSMOVISOR_COLOR_LOGS).as_deref(),
            std::io::stderr().is_terminal(),
        ),
        time_pattern: cfg.time_format.strftime(),
        format: match cfg.log_format {
            config::LogFormat::Console => crate::log::Format::Console,
            config::LogFormat::Json => crate::log::Format::Json,
        },
    });
    for warning in &cfg.warnings {
        tracing::warn!("{warning}");
    }
}

/// Runs an async command body to its end on a current-thread runtime.
pub fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    // One thread: the daemon is spawned from it, so its parent-death signal is tied to a thread
    // that lives as long as we do (see supervisor/process.rs).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| anyhow::anyhow!("cannot start the async runtime: {err}"))?;
    runtime.block_on(future)
}

/// The output format of `version`, `show-upgrade-info` and `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// Every error type with a documented exit code ([`exit::ExitCode`]), each listed once: the
/// exit code of an error is that of the first cause in its chain one of them recognises
/// ([`exit::code_for`]).
pub const CODED_ERRORS: &[exit::Probe] = &[
    exit::probe::<config::ConfigErrors>,
    exit::probe::<config::ConfigError>,
    exit::probe::<layout::LayoutError>,
    exit::probe::<binary::BinaryError>,
    exit::probe::<crate::upgrade::steps::UpgradeError>,
    exit::probe::<crate::upgrade::journal::JournalError>,
    exit::probe::<crate::home::queue::BatchError>,
    exit::probe::<crate::supervisor::watcher::UnusablePlan>,
    exit::probe::<crate::supervisor::process::SpawnError>,
    exit::probe::<init::ArgumentError>,
    exit::probe::<add_upgrade::ArgumentError>,
    exit::probe::<add_upgrade::UnderWayError>,
    exit::probe::<rollback::RollbackError>,
    exit::probe::<crate::supervisor::lock::HomeBusy>,
    exit::probe::<crate::signals::Interrupted>,
];

/// The exit code for an error a command returned.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    exit::code_for(err, CODED_ERRORS)
}

#[cfg(test)]
mod tests {
    use anyhow::Context as _;

    use super::*;

    #[test]
    fn the_first_coded_cause_gives_the_exit_code() {
        let layout: anyhow::Result<()> =
            Err(layout::LayoutError::RootNotDir { path: "/h".into() }.into());
        let wrapped = layout.context("cannot start").unwrap_err();
        assert_eq!(exit_code(&wrapped), exit::LAYOUT);
        let config = anyhow::Error::from(ConfigErrors(Vec::new()));
        assert_eq!(exit_code(&config), exit::CONFIG);
        let busy = anyhow::Error::from(rollback::RollbackError::DaemonRunning { pid: 1 });
        assert_eq!(exit_code(&busy), exit::HOME_BUSY);
        let usage = anyhow::Error::from(rollback::RollbackError::AtGenesis);
        assert_eq!(exit_code(&usage), exit::USAGE);
        let stopped = anyhow::Error::from(crate::signals::Interrupted {
            signal: nix::sys::signal::Signal::SIGTERM,
        });
        assert_eq!(exit_code(&stopped.context("backup")), 143);
        assert_eq!(exit_code(&anyhow::anyhow!("disk on fire")), exit::INTERNAL);
    }
}
