//! The home folder, `$DAEMON_HOME`: its layout (typed paths, names, the one durable write), the
//! plan files the chain writes into `data/`, and what is installed (versions, `current`, backups).
//! Uses only the shared pieces (`bounded_read`, `elf`).

pub mod inventory;
pub mod layout;
pub mod plan;
