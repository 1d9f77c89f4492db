//! Test support: a throw-away node home in the cosmovisor layout, fake daemons generated as shell
//! scripts, the real `mock-node`, a runner for the real `cosmovisor` binary with deadlines,
//! `wait_until` — the one way tests wait for something — loopback servers and ports, and
//! `skip_or_fail_in_ci` and `Tmpfs` (from `skip.rs`) — the one way a test that cannot run here
//! says so, and the small disk the full-disk tests mount.
//!
//! `mod.rs` holds the constants and `wait_until` and re-exports every module, so test files
//! import everything from `crate::support`: `home` (the node home), `daemon` (fake daemons),
//! `runner` (the `cosmovisor` runner), `net` (loopback servers, ports, `GrpcNode`), `archives`
//! (tar, zip, checksums, platform, foreign ELF) and `seccomp` (the `RestrictSUIDSGID` wrapper).

#![allow(dead_code)]

use std::thread;
use std::time::{Duration, Instant};

mod archives;
mod daemon;
mod home;
mod net;
mod runner;
mod seccomp;

pub use archives::*;
pub use daemon::*;
pub use home::*;
pub use net::*;
pub use runner::*;
pub use seccomp::*;

pub use crate::skip::{Tmpfs, skip_or_fail_in_ci};

pub const COSMOVISOR: &str = env!("CARGO_BIN_EXE_cosmovisor");
pub const MOCK_NODE: &str = env!("CARGO_BIN_EXE_mock-node");

/// Generous: only failures pay it.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `condition` every 10 ms until it holds, panicking with `what` after `deadline`.
pub fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}
