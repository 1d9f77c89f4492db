//! `cosmovisor run <args…>`, and its implicit form `cosmovisor start …` (`cli::dispatch`): loads
//! and checks the configuration, sets up logging, then hands the daemon's arguments to the
//! supervisor (`supervisor/supervise.rs`).

use std::ffi::OsString;

use tracing::info;

use crate::commands::{Context, Run, block_on, start_logging};
use crate::supervisor::supervise;

/// `cosmovisor run`'s arguments.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Arguments for the daemon, passed through as they are (including --help).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<OsString>,
    /// The command line had no `run` word: it is said so in the log.
    #[arg(skip)]
    pub implicit: bool,
}

impl Run for RunArgs {
    fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let cfg = ctx.load_checked()?;
        start_logging(&cfg);
        if self.implicit {
            info!(
                "no cosmovisor command given; running the daemon as `cosmovisor run` would (`run` is the explicit form)"
            );
        }
        block_on(supervise::run(&cfg, &self.args))
    }
}
