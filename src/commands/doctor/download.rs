//! The doctor's check of a pending plan whose binary is missing while
//! `DAEMON_ALLOW_DOWNLOAD_BINARIES=true`: the upgrade will download it, so what can go wrong is
//! the plan's `info` — no entry for this platform, a URL we cannot use, a checksum missing when
//! `DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM` requires one.
//!
//! Nothing is fetched: neither the binary nor a reference URL's list of binaries, so a host that
//! is unreachable, a 404 or a wrong checksum still only shows at the upgrade. Parsing `info` and
//! URLs is `plan_info.rs`; this only reports what it says.

use std::path::Path;

use super::Report;
use crate::acquire::plan_info::{self, Info, InfoError};
use crate::config::Config;
use crate::home::layout::Layout;
use crate::home::plan::Plan;

/// One line: `✓ <bin> will be downloaded from <url>`, or why the plan cannot be downloaded.
pub(super) fn check(report: &mut Report, cfg: &Config, layout: &Layout, plan: &Plan, bin: &Path) {
    match source(cfg, plan) {
        Ok(Found::Binary(url)) => {
            report.pass(format!("{} will be downloaded from {url}", bin.display()));
        }
        Ok(Found::List(url)) => report.pass(format!(
            "{} will be downloaded from the list at {url} (not fetched by doctor)",
            bin.display()
        )),
        Err(err) => report.fail(
            format!("{} cannot be downloaded: {err}", bin.display()),
            format!(
                "stage the binary with `cosmovisor add-upgrade {} <path to the new {}>`",
                plan.raw_name,
                layout.daemon_name()
            ),
        ),
    }
}

/// Where the upgrade will download from, as far as can be known without fetching.
enum Found {
    /// This platform's (or `any`) URL in an inline `binaries` map.
    Binary(String),
    /// A reference URL to a list of binaries, fetched only at the upgrade.
    List(String),
}

/// The checks `crate::acquire::download::download_upgrade` makes before its first request, in its order.
fn source(cfg: &Config, plan: &Plan) -> Result<Found, InfoError> {
    let must_have_checksum = cfg.download_must_have_checksum;
    match plan_info::classify(&plan.info)? {
        Info::Binaries(map) => {
            let url = map.url_for(&plan_info::platform())?;
            let source = plan_info::parse_source(url, must_have_checksum)?;
            Ok(Found::Binary(source.shown))
        }
        Info::Reference(url) => {
            let source = plan_info::parse_source(&url, must_have_checksum)?;
            Ok(Found::List(source.shown))
        }
    }
}
