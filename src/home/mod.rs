//! The home folder, `$DAEMON_HOME`: its layout (typed paths, `current`, validation, the
//! crash-leftover sweep), upgrade names, the daemon binary check, the plan files the chain writes
//! into `data/`, what is installed (versions, `current`), and the backups of `data/` that exist.
//! Uses only the shared pieces.

pub mod backups;
pub mod binary;
pub mod inventory;
pub mod layout;
pub mod name;
pub mod plan;
