//! `COSMOVISOR_WEBHOOK_URL`: one JSON POST per event, in order, with every field; a webhook that
//! hangs or refuses never delays an upgrade (measured against the same upgrade without one).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    DEADLINE, FakeDaemon, GrpcNode, Home, RefusingPort, read_request_head, upgraded_daemon,
    wait_until,
};

/// A loopback webhook receiver: records each POST body (answering 200), or, `hang`ing, accepts
/// and never answers.
pub(crate) struct Receiver {
    pub(crate) url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    pub(crate) fn start(hang: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://hook:s3cret@{}/services/T000/B000/secretpath",
            listener.local_addr().unwrap()
        );
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&bodies);
        thread::spawn(move || {
            let mut never_answered = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if hang {
                    never_answered.push(stream);
                    continue;
                }
                let Some(head) = read_request_head(&mut stream) else {
                    continue;
                };
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|value| value.trim().parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                if stream.read_exact(&mut body).is_err() {
                    continue;
                }
                assert!(head.starts_with("post "), "{head}");
                assert!(head.contains("content-type: application/json"), "{head}");
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        Receiver { url, bodies }
    }

    pub(crate) fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

#[test]
fn every_event_of_an_upgrade_is_posted_in_order_with_every_field() {
    let receiver = Receiver::start(false);
    let grpc = GrpcNode::start(Some(("v3", 1000, "")));
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block())
        .upgrade(
            "v3",
            &FakeDaemon::new()
                .pre_upgrade("v3", &[0])
                .ready("v3")
                .exit(3),
        );
    let running = home
        .cosmovisor(["run", "start"])
        .env("DAEMON_GRPC_ADDRESS", &grpc.address)
        .env("COSMOVISOR_PLAN_CHECK_INTERVAL", "50ms")
        .env("COSMOVISOR_WEBHOOK_URL", &receiver.url)
        .spawn();
    running.wait_for_log("upgrade v3 at height 1000 is ready");
    home.write_plan("v3", 1000);
    let out = running.wait();
    out.assert_code(3);
    assert!(!out.stderr().contains("s3cret"), "{out}");
    wait_until("five messages", DEADLINE, || receiver.bodies().len() >= 5);
    let bodies = receiver.bodies();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let expected = [
        (
            "upgrade_scheduled",
            "chain plan",
            "upgrade v3 scheduled at height 1000 (chain plan)",
        ),
        (
            "upgrade_ready",
            "its binary is staged and checked",
            "upgrade v3 at height 1000 is ready: its binary is staged and checked",
        ),
        (
            "upgrade_started",
            "stopping the node",
            "upgrade v3 at height 1000 started: stopping simd",
        ),
        (
            "upgrade_completed",
            "the new binary runs",
            "upgrade v3 at height 1000 completed: the new binary runs",
        ),
        (
            "daemon_exited",
            "exit code 3",
            "simd exited unexpectedly (exit code 3)",
        ),
    ];
    assert_eq!(bodies.len(), expected.len(), "{bodies:#?}");
    for (body, (event, detail, text)) in bodies.iter().zip(expected) {
        let fields: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            [
                "content", "daemon", "detail", "event", "host", "text", "time", "upgrade"
            ],
            "{body}"
        );
        assert_eq!(body["event"], event, "{body}");
        assert_eq!(body["daemon"], "simd");
        assert_eq!(body["host"], host.trim());
        assert_eq!(body["detail"], detail, "{body}");
        assert_eq!(body["text"], text, "{body}");
        assert_eq!(body["content"], text, "{body}");
        assert!(
            chrono::DateTime::parse_from_rfc3339(body["time"].as_str().unwrap()).is_ok(),
            "{body}"
        );
        if event == "daemon_exited" {
            assert_eq!(body["upgrade"], Value::Null);
        } else {
            assert_eq!(
                body["upgrade"],
                serde_json::json!({"name": "v3", "height": 1000})
            );
        }
    }
}

/// Seconds from the halt (the plan written) to the new binary's start, with `webhook` set.
fn switch_time(webhook: Option<&str>) -> Duration {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block())
        .upgrade("v2", &upgraded_daemon("v2", &[0]));
    let mut command = home
        .cosmovisor(["run", "start"])
        .env("UNSAFE_SKIP_BACKUP", "true")
        .env("COSMOVISOR_PLAN_CHECK_INTERVAL", "off");
    if let Some(url) = webhook {
        command = command.env("COSMOVISOR_WEBHOOK_URL", url);
    }
    let running = command.spawn();
    home.wait_for_event("ready v1");
    let start = Instant::now();
    home.write_plan("v2", 10);
    home.wait_for_event("ready v2");
    let took = start.elapsed();
    drop(running);
    took
}

#[test]
fn a_hanging_or_refusing_webhook_does_not_delay_an_upgrade() {
    let hanging = Receiver::start(true);
    let refusing = RefusingPort::bind();
    let refused = format!("http://127.0.0.1:{}/hook", refusing.port);
    // The best of three of each, so a busy machine's noise does not decide.
    let best = |webhook: Option<&str>| (0..3).map(|_| switch_time(webhook)).min().unwrap();
    let without = best(None);
    let with_hanging = best(Some(&hanging.url));
    let with_refusing = best(Some(&refused));
    eprintln!(
        "switch time: without a webhook {without:?}, hanging webhook {with_hanging:?}, refusing webhook {with_refusing:?}"
    );
    // A delivery in the way would cost at least one 5 s try.
    for with in [with_hanging, with_refusing] {
        assert!(
            with < without + Duration::from_millis(500),
            "without {without:?}, with {with:?}"
        );
    }
}
