//! `cosmovisor prepare-upgrade`: asks the running node for the scheduled plan (gRPC at
//! `DAEMON_GRPC_ADDRESS`) and downloads and verifies its binary ahead of the height, into the
//! folder the upgrade will look in (recased, unlike Go v1.7, whose folder the upgrade then missed).

use tracing::info;

use crate::acquire::grpc;
use crate::commands::{Context, Run, block_on};
use crate::exit;
use crate::home::binary;
use crate::home::layout::Layout;
use crate::home::name::UpgradeName;
use crate::home::plan::Plan;
use crate::upgrade::steps::UpgradeError;

/// `cosmovisor prepare-upgrade` (no arguments).
#[derive(Debug, clap::Args)]
pub struct PrepareUpgradeArgs {}

impl Run for PrepareUpgradeArgs {
    fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        ctx.start_logging();
        block_on(prepare(ctx))
    }
}

async fn prepare(ctx: &Context) -> anyhow::Result<u8> {
    let cfg = ctx.load_for_writing()?;
    let layout = Layout::new(&cfg.home, &cfg.name);
    info!(address = %cfg.grpc_address, "Using gRPC address");
    let Some(remote) = grpc::current_plan(&cfg.grpc_address).await? else {
        info!("No active upgrade plan found");
        return Ok(exit::OK);
    };
    info!(name = %remote.name, height = remote.height, "Preparing for upgrade");
    let plan = Plan {
        name: UpgradeName::new(&remote.name, !cfg.disable_recase)?,
        raw_name: remote.name.clone(),
        height: remote.height,
        info: remote.info,
    };
    let bin = layout.bin_in(&layout.upgrade_dir(&plan.name));
    if binary::check_binary(&bin).is_ok() {
        info!(path = %bin.display(), "upgrade binary already staged");
        return Ok(exit::OK);
    }
    let mut signals = crate::signals::Signals::install()?;
    let downloaded =
        crate::acquire::download::download_upgrade(&cfg, &layout, &plan, &mut signals).await;
    match downloaded.map_err(|err| UpgradeError::download(&plan, err)) {
        Ok(installed) => {
            info!(name = %plan.name, height = plan.height, path = %installed.display(), "Upgrade preparation complete");
            Ok(exit::OK)
        }
        Err(UpgradeError::Interrupted(interrupted)) => Ok(exit::from_signal(interrupted.signal)),
        Err(err) => Err(err.into()),
    }
}
