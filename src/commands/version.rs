//! `cosmovisor version [--output json] [--cosmovisor-only] [args…]`.
//!
//! Text: our line, then `<daemon> version <args…>` with its output passing through. JSON: one
//! object on stdout, always valid whatever the log settings (our logs go to stderr), with
//! `cosmovisor_version` and `app_version` (the daemon's `version --long --output json`, its text
//! when that is not JSON, or `null` with an `error` when it could not run). A missing or invalid
//! configuration does not make `version` fail: cosmovisor's own version is still printed and the
//! exit code is 0 (tooling relies on it, cosmos-sdk#19439).

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::VERSION;
use crate::commands::{Context, OutputFormat, Run, block_on};
use crate::exit;
use crate::home::binary;
use crate::home::layout::{self, Layout};

/// `cosmovisor version`'s arguments.
#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Print only cosmovisor's version.
    #[arg(long = "cosmovisor-only")]
    pub cosmovisor_only: bool,
    /// Extra arguments for `<daemon> version` (text output only), flags included.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<OsString>,
}

impl Run for VersionArgs {
    fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        ctx.start_logging();
        block_on(async {
            match self.output {
                OutputFormat::Text => text(ctx, self.cosmovisor_only, &self.args).await,
                OutputFormat::Json => json_output(ctx, self.cosmovisor_only).await,
            }
        })
    }
}

async fn text(ctx: &Context, cosmovisor_only: bool, args: &[OsString]) -> anyhow::Result<u8> {
    print_own()?;
    if cosmovisor_only {
        return Ok(exit::OK);
    }
    let (bin, env) = match daemon_binary(ctx) {
        Ok(found) => found,
        Err(err) => {
            // A configuration error is one line per problem: each gets the prefix.
            for line in format!("{err:#}").lines() {
                eprintln!("cannot run the daemon's version command: {line}");
            }
            return Ok(exit::OK);
        }
    };
    let mut daemon_args = vec![OsString::from("version")];
    daemon_args.extend_from_slice(args);
    let status = crate::supervisor::supervise::run_plain(&bin, &daemon_args, env).await?;
    Ok(exit::from_status(status))
}

/// Our version line (also `cosmovisor --version` / `-V`).
pub fn print_own() -> anyhow::Result<u8> {
    let mut stdout = std::io::stdout();
    writeln!(stdout, "cosmovisor version: {VERSION}").context("cannot write to stdout")?;
    stdout.flush().context("cannot write to stdout")?;
    Ok(exit::OK)
}

async fn json_output(ctx: &Context, cosmovisor_only: bool) -> anyhow::Result<u8> {
    let mut object = json!({ "cosmovisor_version": VERSION });
    if !cosmovisor_only {
        match app_version(ctx).await {
            Ok(value) => object["app_version"] = value,
            Err(err) => {
                object["app_version"] = Value::Null;
                object["error"] = Value::String(format!("{err:#}"));
            }
        }
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{object}").context("cannot write to stdout")?;
    Ok(exit::OK)
}

/// `<daemon> version --long --output json`, parsed when it is JSON.
async fn app_version(ctx: &Context) -> anyhow::Result<Value> {
    let (bin, env) = daemon_binary(ctx)?;
    let output = tokio::process::Command::new(&bin)
        .args(["version", "--long", "--output", "json"])
        .envs(env)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .await
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !output.status.success() {
        anyhow::bail!("{} version exited with {}", bin.display(), output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(serde_json::from_str(text.trim()).unwrap_or_else(|_| Value::String(text.trim().to_owned())))
}

/// The binary `current` points at, and the environment its version needs.
fn daemon_binary(ctx: &Context) -> anyhow::Result<(PathBuf, Vec<(OsString, OsString)>)> {
    let cfg = ctx.load_home()?;
    let layout = Layout::new(&cfg.home, &cfg.name);
    let version_dir = match layout.current_dir() {
        Err(layout::LayoutError::CurrentMissing { .. }) => layout.genesis_dir(),
        other => other?,
    };
    let bin = layout.bin_in(&version_dir);
    binary::check_binary(&bin)?;
    Ok((
        bin,
        crate::home::binary::library_path_env(&version_dir)
            .into_iter()
            .collect(),
    ))
}
