//! Fault injection for the crash-safety tests: with `COSMOVISOR_FAULT_AT=<point>` in its
//! environment, cosmovisor kills itself with SIGKILL when it reaches that point of an upgrade, as
//! a power cut or `kill -9` would. Internal and documented as such; it is never set in
//! production, and an unknown point simply never fires.
//!
//! Points: every journal phase right after it is durably recorded (`stopped`, `backing_up`,
//! `backed_up`, `custom_pre_upgrade_done`, `pre_upgrade_done`), `backup_copied` (the copy is
//! complete but not yet renamed), and `switched` (`current` swapped, journal not yet removed).

use nix::sys::signal::{Signal, raise};

/// The variable that names the point.
const COSMOVISOR_FAULT_AT: &str = "COSMOVISOR_FAULT_AT";

/// Dies here if the environment asks for it.
pub fn point(name: &str) {
    if std::env::var_os(COSMOVISOR_FAULT_AT).is_some_and(|value| value == name) {
        let _ = raise(Signal::SIGKILL);
    }
}
