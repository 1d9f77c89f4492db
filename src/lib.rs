//! The supervisor as a library: `main.rs` is its command-line front, and the fuzz targets in
//! `fuzz/` drive its parsers directly. Nothing here is a stable public API.

#![allow(clippy::must_use_candidate, clippy::return_self_not_must_use)]

pub mod archive;
pub mod backup;
pub mod batch;
pub mod bounded_read;
pub mod cli;
pub mod commands;
pub mod config;
pub mod copy;
pub mod download;
pub mod elf;
pub mod exit;
pub mod fault;
pub mod grpc;
pub mod hook;
pub mod inventory;
pub mod journal;
pub mod layout;
pub mod lock;
pub mod log;
pub mod metrics;
pub mod node_rpc;
pub mod notify;
pub mod output;
pub mod pid1;
pub mod plan;
pub mod plan_info;
pub mod process;
pub mod progress;
pub mod signals;
pub mod supervise;
pub mod systemd;
pub mod upgrade;
pub mod watcher;
