//! The metrics endpoint cannot hurt the node (docs/design.md "Trust boundaries"): a flood of idle
//! connections under a low descriptor limit does not make an upgrade fail, and a client that sends
//! its request one byte a second is cut off once the header timeout is over.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::support::{
    DEADLINE, FakeDaemon, Home, free_port, http_get, upgraded_daemon, wait_until,
};

/// The descriptor limit cosmovisor runs under in the flood test.
const FD_LIMIT: usize = 256;
/// Idle connections the flood holds open.
const FLOOD: usize = 600;

fn open_fds(pid: Pid) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// Connections waiting in the accept queue of the socket listening on `port` (the `rx_queue`
/// of a LISTEN socket in /proc/net/tcp).
fn accept_queue(port: u16) -> usize {
    let text = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let local = format!("0100007F:{port:04X}");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A");
            let queues = fields.get(4)?;
            let rx = queues.split(':').nth(1)?;
            listening
                .then(|| usize::from_str_radix(rx, 16).ok())
                .flatten()
        })
        .sum()
}

fn metrics_home() -> Home {
    let home = Home::new("simd");
    std::fs::write(home.data().join("state.db"), "blocks").expect("test setup");
    home.genesis(&FakeDaemon::new().ready("v1").block())
        .upgrade("v2", &upgraded_daemon("v2", &[0]));
    home
}

#[test]
fn idle_connection_flood_under_low_fd_limit_does_not_stop_an_upgrade() {
    let home = metrics_home();
    let port = free_port();
    let running = home
        .cosmovisor(["run", "start"])
        .env("COSMOVISOR_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .spawn();
    home.wait_for_event("ready v1");
    let limit = format!("--nofile={FD_LIMIT}:{FD_LIMIT}");
    let status = Command::new("prlimit")
        .args(["--pid", &running.pid.to_string(), &limit])
        .status()
        .expect("run prlimit (apt package util-linux)");
    assert!(status.success(), "prlimit failed");
    wait_until("the metrics endpoint", DEADLINE, || {
        http_get(port, "/metrics").is_some_and(|body| body.contains("cosmovisor_daemon_up 1"))
    });

    let flood: Vec<TcpStream> = (0..FLOOD)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect (the kernel queues it)"))
        .collect();
    // Every connection was either taken (and held or closed) by cosmovisor, or cosmovisor ran
    // out of descriptors trying.
    wait_until("the flood to be accepted", DEADLINE, || {
        accept_queue(port) == 0 || open_fds(running.pid) >= FD_LIMIT - 8
    });
    let held = open_fds(running.pid);
    println!("cosmovisor holds {held} descriptors under a flood of {FLOOD} connections");
    assert!(
        held <= FD_LIMIT / 2,
        "cosmovisor holds {held} descriptors under the flood; excess connections must be closed"
    );
    home.write_plan("v2", 49);
    home.wait_for_event("ready v2");
    drop(flood);

    let mut body = String::new();
    wait_until("metrics after the flood", DEADLINE, || {
        body = http_get(port, "/metrics").unwrap_or_default();
        body.contains("\ncosmovisor_upgrades_total 1\n")
    });
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0)
        .stderr_lacks("Too many open files")
        .stderr_contains("too many metrics connections; closing new ones until some end")
        .stderr_contains("upgrade detected, relaunching");
}

#[test]
fn slowloris_client_is_cut_off_after_the_header_timeout() {
    let home = metrics_home();
    let port = free_port();
    let running = home
        .cosmovisor(["run", "start"])
        .env("COSMOVISOR_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .spawn();
    home.wait_for_event("ready v1");
    wait_until("the metrics endpoint", DEADLINE, || {
        http_get(port, "/metrics").is_some()
    });

    let mut slow = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("read timeout");
    let request = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let start = Instant::now();
    let mut cut_off = None;
    for &byte in request {
        if slow.write_all(&[byte]).is_err() {
            cut_off = Some(start.elapsed());
            break;
        }
        // Waits a second for the server to close; a closed connection reads 0 bytes or fails.
        let mut answer = [0u8; 256];
        let waited = slow.read(&mut answer);
        if !waited
            .as_ref()
            .is_err_and(|err| matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
        {
            cut_off = Some(start.elapsed());
            break;
        }
        assert!(start.elapsed() < DEADLINE, "never cut off");
    }
    let cut_off = cut_off.expect("the slow client was cut off before its request was complete");
    assert!(
        cut_off < Duration::from_millis(4500),
        "cut off only after {cut_off:?}; the header timeout is 3 s"
    );
    let body = http_get(port, "/metrics").unwrap_or_default();
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
    running.signal(Signal::SIGTERM);
    running.wait().assert_code(0);
}
