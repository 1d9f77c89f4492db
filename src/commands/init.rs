//! `cosmovisor init <path>`: sets up a home for cosmovisor.
//!
//! The argument, the configuration and the folders are checked before anything is written, so
//! a bad call creates nothing. Then, as Go does, with its log lines in its order and each of its
//! errors at its step: `genesis/bin/` is created, the binary copied into it (an existing one is
//! kept, and must be a regular file), made executable, `current` pointed at genesis (an existing
//! valid link is kept; anything else in its place is refused), and `config.toml` written from the
//! environment. An existing `config.toml` is only
//! replaced after a "y" at an interactive prompt; without a terminal it is kept (Go blocks on
//! stdin there). Its log lines are Go's texts (paths quoted as Go's `%q` does).

use std::fs;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tracing::info;

use crate::commands::{Context, Run};
use crate::config::Config;
use crate::durable;
use crate::exit;
use crate::home::binary;
use crate::home::layout::{Layout, LayoutError};

/// `cosmovisor init`'s argument.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Path to the daemon binary to use as genesis.
    // An empty path reaches `init`, which answers with Go's `no <path to executable> provided`.
    #[arg(
        value_name = "PATH_TO_EXECUTABLE",
        value_parser = clap::builder::TypedValueParser::map(
            clap::builder::OsStringValueParser::new(),
            PathBuf::from
        )
    )]
    pub path: PathBuf,
}

impl Run for InitArgs {
    fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        ctx.start_logging();
        init(&self.path, ctx)
    }
}

fn init(executable: &Path, ctx: &Context) -> anyhow::Result<u8> {
    check_executable(executable)?;
    let cfg = Config::load(ctx.config_file())?;
    crate::commands::home_owner::become_home_owner(&cfg.home)?;
    let layout = Layout::new(&cfg.home, &cfg.name);
    check_existing(&layout)?;

    let root = layout.root();
    let bin_dir = layout.genesis_dir().join("bin");
    info!("checking on the genesis/bin directory");
    if bin_dir.is_dir() {
        info!(
            "the {:?} directory already exists",
            bin_dir.display().to_string()
        );
    } else {
        info!(
            "creating directory (and any parents): {:?}",
            bin_dir.display().to_string()
        );
        durable::create_dir_all_durable(&bin_dir)
            .with_context(|| format!("cannot create {}", bin_dir.display()))?;
    }

    let genesis_bin = layout.genesis_bin();
    info!("checking on the genesis/bin executable");
    if genesis_bin.exists() {
        info!(
            "the {:?} file already exists",
            genesis_bin.display().to_string()
        );
    } else {
        info!(
            "copying executable into place: {:?}",
            genesis_bin.display().to_string()
        );
        copy_binary(executable, &genesis_bin)?;
    }
    info!(
        "making sure {:?} is executable",
        genesis_bin.display().to_string()
    );
    if !genesis_bin.is_file() {
        return Err(LayoutError::InTheWay {
            path: genesis_bin,
            expected: "regular file",
        }
        .into());
    }
    if binary::check_binary(&genesis_bin).is_err() {
        binary::make_executable(&genesis_bin)
            .with_context(|| format!("cannot make {} executable", genesis_bin.display()))?;
    }
    binary::check_binary(&genesis_bin)?;

    info!("checking on the current symlink and creating it if needed");
    let current = match layout.current_dir() {
        Ok(dir) => dir,
        Err(LayoutError::CurrentMissing { .. }) => {
            layout
                .set_current(&layout.genesis_dir())
                .with_context(|| format!("cannot create {}", layout.current_link().display()))?;
            layout.genesis_dir()
        }
        Err(LayoutError::CurrentNotLink { link }) => {
            return Err(LayoutError::CurrentInTheWay { link }.into());
        }
        Err(err) => return Err(err.into()),
    };
    info!(
        "the current symlink points to: {:?}",
        layout.bin_in(&current).display().to_string()
    );

    write_config(&cfg, &layout.config_file())?;
    info!(root = %root.display(), "cosmovisor home initialised");
    Ok(exit::OK)
}

/// What is wrong with the `<path>` argument (a usage error: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ArgumentError {
    #[error("no <path to executable> provided")]
    Empty,
    #[error("executable file not found: {}", .0.display())]
    NotFound(PathBuf),
    #[error("could not stat executable {}: {err}", path.display())]
    Unreadable { path: PathBuf, err: io::Error },
    #[error(
        "invalid path to executable: must not be a directory ({} is a directory: give the path \
         of the daemon binary)",
        .0.display()
    )]
    Directory(PathBuf),
}

impl crate::exit::ExitCode for ArgumentError {
    fn exit_code(&self) -> u8 {
        crate::exit::USAGE
    }
}

fn check_executable(path: &Path) -> Result<(), ArgumentError> {
    if path.as_os_str().is_empty() {
        return Err(ArgumentError::Empty);
    }
    let meta = fs::metadata(path).map_err(|err| {
        if err.kind() == io::ErrorKind::NotFound {
            ArgumentError::NotFound(path.to_path_buf())
        } else {
            ArgumentError::Unreadable {
                path: path.to_path_buf(),
                err,
            }
        }
    })?;
    if meta.is_dir() {
        return Err(ArgumentError::Directory(path.to_path_buf()));
    }
    Ok(())
}

/// Refuses homes whose folders are files, before anything is created (the genesis binary and
/// `current` are checked at their steps, as Go does).
fn check_existing(layout: &Layout) -> anyhow::Result<()> {
    let root = layout.root();
    if root.exists() && !root.is_dir() {
        return Err(LayoutError::RootNotDir {
            path: root.to_path_buf(),
        }
        .into());
    }
    let bin_dir = layout.genesis_dir().join("bin");
    if bin_dir.exists() && !bin_dir.is_dir() {
        return Err(LayoutError::InTheWay {
            path: bin_dir,
            expected: "directory",
        }
        .into());
    }
    Ok(())
}

/// Copies the binary through a temporary file, so a partial copy never looks like a binary.
fn copy_binary(from: &Path, to: &Path) -> anyhow::Result<()> {
    durable::copy_atomic(from, to, durable::Mode::AddExecute)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}

fn write_config(cfg: &Config, path: &Path) -> anyhow::Result<()> {
    if path.exists() && (!io::stdin().is_terminal() || !confirm_overwrite(path)?) {
        info!(path = %path.display(), "file already exists, not overriding");
        return Ok(());
    }
    durable::write_atomic(path, cfg.to_toml().as_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", path.display()))?;
    info!("cosmovisor config.toml created at: {}", path.display());
    Ok(())
}

fn confirm_overwrite(path: &Path) -> anyhow::Result<bool> {
    let mut stdout = io::stdout();
    write!(
        stdout,
        "file {} already exists, do you want to overwrite it? [y/n]: ",
        path.display()
    )?;
    stdout.flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y"))
}
