//! Start-up tail: a short command run through cosmovisor (`cosmovisor run version`) never sets
//! up inotify, whose teardown at exit waits for the kernel (a p90 of +20 ms); a node that keeps
//! running gets the inotify watch after the start-up window, and a plan written then is seen
//! through it alone.

use std::ffi::OsString;
use std::fs;
use std::path::PathBuf;

use nix::sys::signal::Signal;

use crate::support::{FakeDaemon, Home, upgraded_daemon};

#[test]
fn a_short_command_never_sets_up_inotify() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().say("v1.2.3").exit(0));
    let trace = home.path().join("strace.out");
    let wrapper: Vec<OsString> = vec![
        "strace".into(),
        "-f".into(),
        "-qq".into(),
        "-e".into(),
        "trace=inotify_init,inotify_init1,inotify_add_watch,execve".into(),
        "-o".into(),
        trace.clone().into_os_string(),
        crate::support::COSMOVISOR.into(),
    ];
    let out = home.cosmovisor_under(&wrapper, ["run", "version"]).run();
    out.assert_code(0).stdout_contains("v1.2.3");
    let calls = fs::read_to_string(&trace).unwrap();
    assert!(
        calls.contains("execve("),
        "the trace is of the run: {calls}"
    );
    assert!(
        !calls.contains("inotify_"),
        "`run version` set up inotify:\n{calls}"
    );
}

#[test]
fn a_running_node_is_watched_with_inotify_after_the_start_up_window() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block())
        .upgrade("v2", &upgraded_daemon("v2", &[0]));
    // The poll is an hour away: only inotify can see the plan.
    let running = home
        .cosmovisor(["run", "start"])
        .env("DAEMON_POLL_INTERVAL", "1h")
        .env("UNSAFE_SKIP_BACKUP", "true")
        .env("COSMOVISOR_LOG_LEVEL", "debug")
        .spawn();
    home.wait_for_event("ready v1");
    running.wait_for_log("watching data/ with inotify");
    home.write_plan("v2", 20);
    home.wait_for_event("ready v2");
    running.signal(Signal::SIGTERM);
    running.wait().assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
}
