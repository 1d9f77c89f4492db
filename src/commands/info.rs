//! `cosmovisor config` and `cosmovisor show-upgrade-info`: read-only views of the configuration
//! and of the pending plan. Both print to stdout (Go prints to stderr through cobra).

use std::io::Write;

use anyhow::Context as _;

use crate::commands::{Context, OutputFormat, Run};
use crate::exit;
use crate::home::layout::Layout;
use crate::home::plan;

/// `cosmovisor config`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {}

/// Prints the validated configuration in Go's `DetailString` layout.
impl Run for ConfigArgs {
    fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let cfg = ctx.load_checked()?;
        let mut stdout = std::io::stdout();
        stdout
            .write_all(cfg.detail_string().as_bytes())
            .context("cannot write to stdout")?;
        Ok(exit::OK)
    }
}

/// `cosmovisor show-upgrade-info [--output json]`.
#[derive(Debug, clap::Args)]
pub struct ShowUpgradeInfoArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Prints `data/upgrade-info.json` as it is (text) or as a validated plan (JSON), with the
/// credentials of its URLs hidden (`crate::redact::redact`).
impl Run for ShowUpgradeInfoArgs {
    fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let cfg = ctx.load_home()?;
        let layout = Layout::new(&cfg.home, &cfg.name);
        let path = layout.upgrade_info_file();
        let mut stdout = std::io::stdout();
        let bytes = match crate::bounded_read::read_capped(&path, crate::bounded_read::DOCUMENT_CAP)
        {
            Ok(bytes) => bytes,
            Err(err) if err.is_missing() => {
                match self.output {
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
        match self.output {
            OutputFormat::Text => {
                let text = crate::redact::redact(&String::from_utf8_lossy(&bytes));
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
                    "info": crate::redact::redact(&plan.info),
                    "upgrade_dir": layout.upgrade_dir(&plan.name),
                });
                writeln!(stdout, "{value}").context("cannot write to stdout")?;
            }
        }
        Ok(exit::OK)
    }
}
