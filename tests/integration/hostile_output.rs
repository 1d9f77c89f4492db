//! The daemon's output is a hint, never an authority (docs/design.md "Trust boundaries"): an
//! `UPGRADE … NEEDED` line only makes cosmovisor read `data/upgrade-info.json` again, a halt line
//! only counts once the node exited, and hostile output passes through at full speed without
//! growing our memory.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{DEADLINE, FakeDaemon, Home, Server, sha256, wait_until};

const UNCONFIRMED: &str = "not confirmed by";

fn journal(home: &Home) -> PathBuf {
    home.root().join("upgrade-journal.json")
}

#[test]
fn an_unconfirmed_upgrade_line_downloads_and_stops_nothing() {
    let body = b"#!/bin/sh\nexit 0\n".to_vec();
    let server = Server::start(vec![("/evil".into(), body.clone())]);
    let info = format!(
        r#"{{"binaries":{{"any":"{}?checksum=sha256:{}"}}}}"#,
        server.url("/evil"),
        sha256(&body)
    );
    let home = Home::new("simd");
    home.genesis(
        &FakeDaemon::new()
            .ready("v1")
            .upgrade_line("zz", 99_999_999, &info)
            .block(),
    );
    let running = home
        .cosmovisor(["run", "start"])
        .env("DAEMON_ALLOW_DOWNLOAD_BINARIES", "true")
        .env("DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM", "true")
        .spawn();
    running.wait_for_log(UNCONFIRMED);
    assert!(server.requested().is_empty(), "{:?}", server.requested());
    assert!(!journal(&home).exists());
    assert!(!home.upgrade_dir("zz").exists());
    assert_eq!(home.events(), ["ready v1"]);
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0);
    assert_eq!(
        out.stderr().matches(UNCONFIRMED).count(),
        1,
        "one warning per line\n{out}"
    );
    assert!(server.requested().is_empty());
}

#[test]
fn an_unconfirmed_upgrade_line_does_not_block_later_starts() {
    let home = Home::new("simd");
    home.genesis(
        &FakeDaemon::new()
            .ready("v1")
            .upgrade_line("zz", 50, "x")
            .block(),
    );
    let running = home.cosmovisor(["run", "start"]).spawn();
    running.wait_for_log(UNCONFIRMED);
    running.signal(Signal::SIGTERM);
    running.wait().assert_code(0);
    assert!(!journal(&home).exists());
    home.cosmovisor(["run", "start"])
        .stop_after(&home, "ready v1")
        .assert_code(0);
    assert_eq!(home.events(), ["ready v1", "TERM", "ready v1", "TERM"]);
}

#[test]
fn an_upgrade_line_makes_cosmovisor_read_the_plan_at_once() {
    // The plan is written through a descriptor kept open (no close-after-write event for
    // inotify) and the poll is an hour away: only the line can make cosmovisor look.
    let home = Home::new("simd");
    home.genesis(
        &FakeDaemon::new()
            .ready("v1")
            .raw(r#"exec 3>"$DAEMON_HOME/data/upgrade-info.json""#)
            .raw(r#"printf '{"name":"v2","height":30,"info":"from-the-file"}' >&3"#)
            .upgrade_line("v2", 30, "from-the-line")
            .block(),
    )
    .upgrade(
        "v2",
        &FakeDaemon::new()
            .pre_upgrade("v2", &[1])
            .ready("v2")
            .block(),
    );
    let out = home
        .cosmovisor(["run", "start"])
        .env("DAEMON_POLL_INTERVAL", "1h")
        .stop_after(&home, "ready v2");
    out.assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
    let record = fs::read_to_string(home.upgrade_dir("v2").join("upgrade-info.json")).unwrap();
    assert!(record.contains("from-the-file"), "{record}");
    out.stderr_lacks(UNCONFIRMED);
}

#[test]
fn a_halt_line_from_a_running_node_triggers_no_manual_upgrade() {
    let home = Home::new("simd");
    home.genesis(
        &FakeDaemon::new()
            .ready("v1")
            .say("INF halt per configuration height 1000 module=server")
            .say_err("ERR halting node per configuration height=1000 module=baseapp")
            // Processed after the halt lines: once its warning is out, they were seen.
            .upgrade_line("zz", 77, "x")
            .block(),
    )
    .upgrade("v2", &FakeDaemon::new().ready("v2").block());
    fs::write(
        home.data().join("upgrade-info.json.batch"),
        r#"[{"name":"v2","time":"0001-01-01T00:00:00Z","height":1000}]"#,
    )
    .unwrap();
    let running = home.cosmovisor(["run", "start"]).spawn();
    running.wait_for_log(UNCONFIRMED);
    assert_eq!(home.events(), ["ready v1"]);
    assert!(!journal(&home).exists());
    running.signal(Signal::SIGTERM);
    running.wait().assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
}

/// Eight 1 MiB lines made of the piece that made the old scan quadratic.
fn hostile_payload() -> Vec<u8> {
    let piece = b"UPGRADE \"\" NEEDED at height: x";
    let mut payload = Vec::new();
    for _ in 0..8 {
        let mut line = piece.repeat((1 << 20) / piece.len());
        line.push(b'\n');
        payload.extend_from_slice(&line);
    }
    payload
}

#[test]
fn hostile_long_lines_pass_through_byte_for_byte_at_full_speed() {
    let home = Home::new("simd");
    let payload = hostile_payload();
    fs::write(home.path().join("payload"), &payload).unwrap();
    home.genesis(
        &FakeDaemon::new()
            .ready("v1")
            .raw(r#"cat "$DAEMON_HOME/payload""#)
            .event("printed")
            .block(),
    );
    let running = home.cosmovisor(["run", "start"]).spawn();
    let start = Instant::now();
    home.wait_for_event("ready v1");
    // Linear work is milliseconds; the quadratic scan took about 3 s of CPU per line.
    wait_until(
        "the payload to pass through",
        Duration::from_secs(10),
        || home.events().iter().any(|e| e == "printed"),
    );
    let elapsed = start.elapsed();
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0);
    assert!(
        out.stdout == payload,
        "output differs from the daemon's bytes"
    );
    eprintln!("8 MiB of hostile lines passed through in {elapsed:?}");
}

/// `VmHWM` (peak resident memory) of a process, in KiB.
fn peak_rss_kib(pid: nix::unistd::Pid) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn ten_million_stale_upgrade_lines_do_not_grow_memory() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().exit(0));
    home.upgrade(
        "v2",
        &FakeDaemon::new()
            .ready("v2")
            .raw(r#"yes 'ERR UPGRADE "v1" NEEDED at height: 10: x' | head -n 10000000"#)
            .event("printed")
            .block(),
    );
    home.set_current("upgrades/v2");
    fs::write(
        home.upgrade_dir("v2").join("upgrade-info.json"),
        r#"{"name":"v2","height":50}"#,
    )
    .unwrap();
    let running = home.cosmovisor(["run", "start"]).discard_stdout().spawn();
    wait_until("ten million lines to pass", DEADLINE * 4, || {
        home.events().iter().any(|e| e == "printed")
    });
    let peak = peak_rss_kib(running.pid);
    running.signal(Signal::SIGTERM);
    running.wait().assert_code(0);
    eprintln!("cosmovisor peak RSS after 10M stale lines: {peak} KiB");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
}
