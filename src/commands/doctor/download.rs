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
use crate::acquire::plan_info::{self, Resolved};
use crate::config::Config;
use crate::home::layout::Layout;
use crate::home::plan::Plan;

/// One line: `✓ <bin> will be downloaded from <url>`, or why the plan cannot be downloaded. The
/// checks are the download's own before its first request ([`plan_info::resolve`]).
pub(super) fn check(report: &mut Report, cfg: &Config, layout: &Layout, plan: &Plan, bin: &Path) {
    match plan_info::resolve(&plan.info, cfg.download_must_have_checksum) {
        Ok(Resolved::Binary(source)) => {
            report.pass(format!(
                "{} will be downloaded from {}",
                bin.display(),
                source.shown
            ));
        }
        Ok(Resolved::List(list)) => report.pass(format!(
            "{} will be downloaded from the list at {} (not fetched by doctor)",
            bin.display(),
            list.shown
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
