//! `cosmovisor completion <shell>` and `cosmovisor man`: the shell completion script and the
//! roff manual page, both generated from the clap definitions in `cli.rs` (the page also from the
//! lists of variables and exit codes) and printed on stdout; and `cosmovisor help <word>` for a
//! word that runs the daemon.

use std::fmt::Write as _;
use std::io::Write;

use anyhow::Context as _;

use crate::commands::{Context, Run};
use crate::exit;

/// `cosmovisor completion`'s argument.
#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

impl Run for CompletionArgs {
    fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let mut command = ctx.cli();
        let mut out = Vec::new();
        clap_complete::generate(self.shell, &mut command, "cosmovisor", &mut out);
        std::io::stdout()
            .write_all(&out)
            .context("cannot write to stdout")?;
        Ok(exit::OK)
    }
}

/// `cosmovisor man` (no arguments).
#[derive(Debug, clap::Args)]
pub struct ManArgs {}

/// What the manual page's NAME line says after `cosmovisor \-` (the `--help` text starts with the
/// name itself, as upstream's does).
const MAN_ABOUT: &str = "a process manager for Cosmos SDK application binaries";

/// The manual page: clap's title, name, synopsis, description and options, then every command
/// (on this page: there are no `cosmovisor-<command>(1)` pages), the environment
/// ([`config::VARS`]), the exit status ([`exit::table`]) and the version.
impl Run for ManArgs {
    fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let mut command = ctx
            .cli()
            .about(MAN_ABOUT)
            .version(env!("CARGO_PKG_VERSION"));
        command.build();
        let page = clap_mangen::Man::new(command.clone());
        let mut out = Vec::new();
        let rendered: std::io::Result<()> = (|| {
            page.render_title(&mut out)?;
            page.render_name_section(&mut out)?;
            page.render_synopsis_section(&mut out)?;
            page.render_description_section(&mut out)?;
            page.render_options_section(&mut out)?;
            Ok(())
        })();
        rendered.context("cannot render the manual page")?;
        let mut text = String::from_utf8_lossy(&out).into_owned();
        text.push_str(&commands_section(&mut command));
        text.push_str(&environment_section());
        text.push_str(&exit_status_section());
        let mut version = Vec::new();
        page.render_version_section(&mut version)
            .context("cannot render the manual page")?;
        text.push_str(&String::from_utf8_lossy(&version));
        std::io::stdout()
            .write_all(ascii_only(&title_first(&text)).as_bytes())
            .context("cannot write to stdout")?;
        Ok(exit::OK)
    }
}

/// `cosmovisor help <word>` for a word that is not one of our commands.
pub fn explain_implicit_run(word: &str) -> anyhow::Result<u8> {
    let text = format!(
        "`{word}` is not a cosmovisor command: `cosmovisor {word} …` runs the daemon as \
         `cosmovisor run {word} …` (`run` is the explicit form).\n\
         The daemon's own help: `cosmovisor run {word} --help`. cosmovisor's commands: `cosmovisor help`.\n"
    );
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("cannot write to stdout")?;
    Ok(exit::OK)
}

/// One `.TP` entry: a bold tag and its text.
fn entry(out: &mut String, tag: &str, text: &str) {
    let _ = write!(out, ".TP\n\\fB{}\\fR\n{}\n", escape(tag), escape(text));
}

fn commands_section(command: &mut clap::Command) -> String {
    let mut out = String::from(".SH COMMANDS\n");
    for sub in command.get_subcommands_mut().filter(|s| !s.is_hide_set()) {
        let usage = sub.render_usage().to_string();
        let usage = usage.strip_prefix("Usage: ").unwrap_or(&usage).to_owned();
        let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
        entry(&mut out, &usage, &about);
    }
    entry(
        &mut out,
        "cosmovisor <anything else> [ARGS]...",
        "the same as cosmovisor run <anything else> [ARGS]... (cosmovisor start runs the daemon's start)",
    );
    out
}

fn environment_section() -> String {
    let mut out = String::from(
        ".SH ENVIRONMENT\nWith --cosmovisor-config, the environment overrides the file's keys \
         (the variable names in lower case). Default first, then the meaning.\n",
    );
    for var in crate::config::VARS {
        entry(&mut out, var.name, &format!("{}: {}", var.default, var.doc));
    }
    out
}

fn exit_status_section() -> String {
    let mut out = String::from(".SH \"EXIT STATUS\"\n");
    for (code, meaning) in exit::table() {
        entry(&mut out, &code, &meaning.replace('`', ""));
    }
    out
}

/// Plain text as roff: backslashes and dashes escaped, a leading control character neutralised.
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}

/// Moves the `.TH` line to the top and keeps one definition of the `Aq` string: each section
/// `clap_mangen` renders starts with that definition, which is fine anywhere before its first
/// use, and `man`/`file` look for `.TH` first.
fn title_first(page: &str) -> String {
    let mut seen = Vec::new();
    let mut lines: Vec<&str> = page
        .lines()
        .filter(|line| {
            if !line.contains(".ds Aq ") {
                return true;
            }
            let first = !seen.contains(line);
            seen.push(line);
            first
        })
        .collect();
    if let Some(title) = lines.iter().position(|line| line.starts_with(".TH ")) {
        let line = lines.remove(title);
        lines.insert(0, line);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Non-ASCII characters as groff's `\[u2026]`-style escapes, so `groff -ww` has nothing to warn about
/// whatever the input encoding it assumes.
fn ascii_only(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    for c in page.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let _ = write!(out, "\\[u{:04X}]", u32::from(c));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn roff_escapes() {
        assert_eq!(super::escape(".x a-b \\n"), "\\&.x a\\-b \\en");
        assert_eq!(
            super::ascii_only("a \u{2026} \u{2713}"),
            "a \\[u2026] \\[u2713]"
        );
    }

    #[test]
    fn title_comes_first() {
        assert_eq!(
            super::title_first(
                ".ie x .ds Aq a\n.el .ds Aq b\n.TH a 1\n.ie x .ds Aq a\n.el .ds Aq b\n.SH NAME\n"
            ),
            ".TH a 1\n.ie x .ds Aq a\n.el .ds Aq b\n.SH NAME\n"
        );
    }
}
