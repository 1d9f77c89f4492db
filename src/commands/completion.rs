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
    clap_mangen::Man::new(Cli::command().version(crate::commands::version::VERSION))
        .render(&mut out)
        .context("cannot render the manual page")?;
    std::io::stdout()
        .write_all(&title_first(&String::from_utf8_lossy(&out)).into_bytes())
        .context("cannot write to stdout")?;
    Ok(exit::OK)
}

/// Moves the `.TH` line to the top: `clap_mangen` starts with the definition of the `Aq` string,
/// which is fine anywhere before its first use, and `man`/`file` look for `.TH` first.
fn title_first(page: &str) -> String {
    let mut lines: Vec<&str> = page.lines().collect();
    if let Some(title) = lines.iter().position(|line| line.starts_with(".TH ")) {
        let line = lines.remove(title);
        lines.insert(0, line);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn title_comes_first() {
        assert_eq!(
            super::title_first(".ie x\n.el y\n.TH a 1\n.SH NAME\n"),
            ".TH a 1\n.ie x\n.el y\n.SH NAME\n"
        );
    }
}
