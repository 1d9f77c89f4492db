//! `cosmovisor completion <shell>` and `cosmovisor man`: the shell completion script and the
//! roff manual page, both generated from the clap definitions in `cli.rs` and printed on stdout.

use std::io::Write;

use anyhow::Context as _;
use clap::CommandFactory;

use crate::cli::Cli;
use crate::exit;

pub fn completion(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "cosmovisor", &mut out);
    std::io::stdout()
        .write_all(&out)
        .context("cannot write to stdout")?;
    Ok(exit::OK)
}

pub fn man() -> anyhow::Result<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .context("cannot render the manual page")?;
    std::io::stdout()
        .write_all(&out)
        .context("cannot write to stdout")?;
    Ok(exit::OK)
}
