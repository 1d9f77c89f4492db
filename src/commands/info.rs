//! `cosmovisor config` and `cosmovisor show-upgrade-info`: read-only views of the configuration
//! and of the pending plan. Both print to stdout (Go prints to stderr through cobra).

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

use crate::cli::OutputFormat;
use crate::config::{Config, ConfigErrors};
use crate::exit;
use crate::home::layout::Layout;
use crate::home::plan;

/// Prints the validated configuration in Go's `DetailString` layout.
pub fn config(config_file: Option<&Path>) -> anyhow::Result<u8> {
    let cfg = load_checked(config_file)?;
    let mut stdout = std::io::stdout();
    stdout
        .write_all(cfg.detail_string().as_bytes())
        .context("cannot write to stdout")?;
    Ok(exit::OK)
}

/// Loads the configuration with the filesystem checks upstream does at load time: the home has a
/// `cosmovisor/` folder (first: a mistyped home also misses the default backup folder), and the
/// backup folder exists. Every command but `init` and `doctor` starts here.
pub fn load_checked(config_file: Option<&Path>) -> anyhow::Result<Config> {
    let cfg = load_home(config_file)?;
    let errors = cfg.check_filesystem();
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigErrors(errors).into())
    }
}

/// Loads the configuration and checks that the home has a `cosmovisor/` folder, for the
/// read-only commands that work without a backup folder (`status`, `show-upgrade-info`).
pub fn load_home(config_file: Option<&Path>) -> anyhow::Result<Config> {
    let cfg = Config::load(config_file)?;
    crate::home::layout::check_root(&Layout::new(&cfg.home, &cfg.name))?;
    Ok(cfg)
}

/// Prints `data/upgrade-info.json` as it is (text) or as a validated plan (JSON), with the
/// credentials of its URLs hidden (`plan_info::redact`).
pub fn show_upgrade_info(config_file: Option<&Path>, output: OutputFormat) -> anyhow::Result<u8> {
    let cfg = load_home(config_file)?;
    let layout = Layout::new(&cfg.home, &cfg.name);
    let path = layout.upgrade_info_file();
    let mut stdout = std::io::stdout();
    let bytes = match crate::bounded_read::read_capped(&path, crate::bounded_read::DOCUMENT_CAP) {
        Ok(bytes) => bytes,
        Err(err) if err.is_missing() => {
            match output {
                OutputFormat::Text => {
                    writeln!(stdout, "No upgrade info found at {}", path.display())
                }
                OutputFormat::Json => writeln!(stdout, "null"),
            }
            .context("cannot write to stdout")?;
            return Ok(exit::OK);
        }
        Err(err) => return Err(err.into()),
    };
    match output {
        OutputFormat::Text => {
            let text = crate::acquire::plan_info::redact(&String::from_utf8_lossy(&bytes));
            stdout
                .write_all(text.as_bytes())
                .context("cannot write to stdout")?;
            writeln!(stdout).context("cannot write to stdout")?;
        }
        OutputFormat::Json => {
            let plan = plan::parse(&bytes, !cfg.disable_recase)
                .with_context(|| format!("{} is not a valid upgrade plan", path.display()))?;
            let value = serde_json::json!({
                "name": plan.name.as_str(),
                "raw_name": plan.raw_name,
                "height": plan.height,
                "info": crate::acquire::plan_info::redact(&plan.info),
                "upgrade_dir": layout.upgrade_dir(&plan.name),
            });
            writeln!(stdout, "{value}").context("cannot write to stdout")?;
        }
    }
    Ok(exit::OK)
}
