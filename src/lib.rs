//! The supervisor as a library: `main.rs` is its command-line front, and the fuzz targets in
//! `fuzz/` drive its parsers directly. Nothing here is a stable public API.
//!
//! The folders are the layers, each using only those below it (docs/design.md "Module map"):
//! - [`commands`] and `cli`: the command line, one file per command;
//! - [`supervisor`]: `cosmovisor run`, the one loop that owns the daemon;
//! - [`upgrade`]: one upgrade, journaled before the daemon is stopped and carried out after (journal, backup, hooks);
//! - [`acquire`]: getting an upgrade's binary (download, archives, plan info, gRPC);
//! - [`home`]: the folder layout under `$DAEMON_HOME`, upgrade names, the binary check, the plan
//!   files, the manual-upgrade queue and what is installed;
//! - shared pieces every layer may use: [`config`], [`exit`], [`signals`], [`bounded_read`],
//!   [`child`], [`durable`], [`elf`], [`log`], [`progress`], [`redact`], [`notify`], [`metrics`], and
//!   [`VERSION`].

#![allow(clippy::must_use_candidate, clippy::return_self_not_must_use)]

pub mod acquire;
pub mod bounded_read;
pub mod child;
pub mod cli;
pub mod commands;
pub mod config;
pub mod durable;
pub mod elf;
pub mod events;
pub mod exit;
pub mod home;
pub mod log;
pub mod metrics;
pub mod notify;
pub mod progress;
pub mod redact;
pub mod signals;
pub mod supervisor;
#[cfg(test)]
mod test_support;
pub mod upgrade;

/// Our version, as Go cosmovisor prints it (`v1.7.0`): in `version`, `--version` and the metrics.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));
