//! The home folder, `$DAEMON_HOME`: its layout (typed paths, names, the one durable write), the
//! plan files the chain writes into `data/`, what is installed (versions, `current`), and the
//! backups of `data/` that exist. Uses only the shared pieces.

pub mod backups;
pub mod inventory;
pub mod layout;
pub mod plan;
