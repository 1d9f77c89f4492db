//! The home folder, `$DAEMON_HOME`: its layout (typed paths, `current`, validation, the
//! crash-leftover sweep), upgrade names, the daemon binary check, the plan files the chain writes
//! into `data/`, the manual-upgrade queue beside them, and what is installed (versions,
//! `current`). Uses only the shared pieces.

pub mod binary;
pub mod inventory;
pub mod layout;
pub mod name;
pub mod plan;
pub mod queue;
