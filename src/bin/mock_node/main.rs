//! `mock-node`: a test and demo double of a Cosmos SDK chain node binary.
//!
//! This is NOT production code. It imitates just enough of a real node
//! (`simd`, `panacead`, ...) for the tests, benchmarks and live demo of the
//! `cosmovisor` supervisor: it produces blocks, writes a goleveldb-shaped data
//! directory, holds the database `LOCK` like leveldb, writes
//! `data/upgrade-info.json` and halts at an upgrade height like `x/upgrade`,
//! and records everything it does in `$DAEMON_HOME/mock-events.log` so that
//! tests can synchronise on it.
//!
//! With `start --rpc.laddr tcp://127.0.0.1:<port>` it answers `CometBFT`'s RPC
//! `GET /status` with its node ID (`result.node_info.id`, from
//! `config/node_key.json`, written on first start like `CometBFT` does) and its
//! height (`result.sync_info.latest_block_height`).
//!
//! Its behaviour is configured by `mock-node.json`, read from the parent of the
//! directory holding the executable (e.g. `cosmovisor/genesis/mock-node.json`
//! for `cosmovisor/genesis/bin/panacead`). Every field is optional.
//!
//! This file holds the configuration, the usage and the dispatch; `common.rs` what every command
//! shares (errors, events, arguments), `commands.rs` the simple commands, `chain.rs` `start` and
//! its block loop, `store.rs` the goleveldb-shaped data directory and `rpc.rs` the RPC's
//! `GET /status`. The `log!` and `event!` macros below name `clock`, `io`, `Write` and
//! `record_event` where they are used, so a module using them imports those.

use std::env;
use std::process;

use serde::Deserialize;

/// CometBFT-style `HH:MM:SS LVL message` line on stdout (or stderr with
/// `log!(stderr, ...)`). Write errors, e.g. a closed pipe, are ignored.
macro_rules! log {
    (stderr, $level:literal, $($arg:tt)+) => {{
        let _ = writeln!(io::stderr().lock(), "{} {} {}", clock(), $level, format_args!($($arg)+));
    }};
    ($level:literal, $($arg:tt)+) => {{
        let _ = writeln!(io::stdout().lock(), "{} {} {}", clock(), $level, format_args!($($arg)+));
    }};
}

/// Formats and appends one line to the events file (see `record_event`).
macro_rules! event {
    ($home:expr, $($arg:tt)+) => {
        record_event($home, format_args!($($arg)+))
    };
}

mod chain;
mod commands;
mod common;
mod rpc;
mod store;

use chain::cmd_start;
use commands::{cmd_cat_stdin, cmd_echo_args, cmd_pre_upgrade, cmd_version};
use common::{die, load_config};

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    version: String,
    block_time_ms: u64,
    upgrade: Option<UpgradePlan>,
    after_upgrade: AfterUpgrade,
    pre_upgrade_exit: Vec<i32>,
    shutdown_ms: u64,
    ignore_term: bool,
    ldb_every: u64,
    ldb_bytes: usize,
    fail_start: bool,
    /// At `--halt-height`, keep running without producing blocks (SDK 0.50's
    /// `FinalizeBlock` error leaves the process up) instead of exiting.
    halt_keeps_running: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            version: "v0.0.0".to_owned(),
            block_time_ms: 200,
            upgrade: None,
            after_upgrade: AfterUpgrade::Exit,
            pre_upgrade_exit: vec![0],
            shutdown_ms: 0,
            ignore_term: false,
            ldb_every: 50,
            ldb_bytes: 65536,
            fail_start: false,
            halt_keeps_running: false,
        }
    }
}

/// The upgrade plan this binary cannot run past.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpgradePlan {
    name: String,
    height: u64,
    #[serde(default)]
    info: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum AfterUpgrade {
    /// Exit with code 2, like a Go panic.
    Exit,
    /// Stay alive without producing blocks (like Panacea).
    KeepRunning,
}

/// What `mock-node --help` prints.
const USAGE: &str = "\
Usage: mock-node <command> [flags]

A test and demo double of a Cosmos SDK node binary (not production code). Install it as
cosmovisor/<version>/bin/$DAEMON_NAME; its behaviour comes from <version>/mock-node.json (every
field optional: version, block_time_ms, upgrade {name, height, info}, after_upgrade exit|keep-running,
pre_upgrade_exit, shutdown_ms, ignore_term, ldb_every, ldb_bytes, fail_start).

Commands:
  start [--home <dir>] [--halt-height <h>] [--unsafe-skip-upgrades <h>...]
                  produce blocks in <home>/data; write upgrade-info.json and halt at the upgrade
  version [--long] [--output json]
                  print the configured version
  pre-upgrade     exit with the next code of pre_upgrade_exit
  echo-args       print the arguments, one per line
  cat-stdin       copy stdin to stdout
  help, --help, -h
                  print this text

The home is --home, else $DAEMON_HOME; everything it does is appended to <home>/mock-events.log.
";

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        die(
            "no command given (expected version, start, pre-upgrade, echo-args or cat-stdin; see mock-node --help)",
        );
    };
    let code = match command.as_str() {
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            0
        }
        "version" => cmd_version(&load_config(), rest),
        "pre-upgrade" => cmd_pre_upgrade(&load_config(), rest),
        "start" => cmd_start(load_config(), rest),
        "echo-args" => cmd_echo_args(rest),
        "cat-stdin" => cmd_cat_stdin(),
        other => {
            eprintln!("unknown command {other:?} (see mock-node --help)");
            1
        }
    };
    process::exit(code);
}
