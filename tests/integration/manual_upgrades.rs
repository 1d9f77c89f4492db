//! Staging binaries by hand (`add-upgrade`, `add-batch-upgrade`), manual upgrades at a height
//! with the real mock chain node, `show-upgrade-info` and `prepare-upgrade` against a fake gRPC
//! node.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use nix::sys::signal::Signal;
use serde_json::json;

use crate::support::{FakeDaemon, GrpcNode, Home, MOCK_NODE, RefusingPort, Server, sha256};

pub(crate) fn mock_home() -> Home {
    let home = Home::new("panacead");
    home.mock(
        &home.genesis_dir(),
        &json!({"version": "v1", "block_time_ms": 30}),
    );
    home
}

/// The version and start height of every `start` event of the mock node, in order.
pub(crate) fn starts(home: &Home) -> Vec<String> {
    fs::read_to_string(home.path().join("mock-events.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("start ") || l.starts_with("halt "))
        .map(str::to_owned)
        .collect()
}

/// Runs the mock chain (backups off) until it records `event`, then stops cosmovisor.
fn run_mock_until(home: &Home, event: &str) -> crate::support::Output {
    let running = home
        .cosmovisor(["run", "start"])
        .env("UNSAFE_SKIP_BACKUP", "true")
        .spawn();
    wait_for_mock_event(home, event);
    running.signal(Signal::SIGTERM);
    running.wait()
}

pub(crate) fn wait_for_mock_event(home: &Home, event: &str) {
    crate::support::wait_until(
        &format!("mock event {event:?}"),
        crate::support::DEADLINE,
        || {
            fs::read_to_string(home.path().join("mock-events.log"))
                .unwrap_or_default()
                .lines()
                .any(|l| l == event)
        },
    );
}

#[test]
fn add_upgrade_stages_a_binary_and_refuses_to_overwrite_without_force() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().exit(0));
    let src = home.path().join("new-simd");
    fs::write(&src, "#!/bin/sh\necho one\n").unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o600)).unwrap();
    home.cosmovisor(["add-upgrade", "V2", src.to_str().unwrap()])
        .run()
        .assert_code(0);
    let bin = home.upgrade_dir("v2").join("bin/simd");
    assert_eq!(fs::read_to_string(&bin).unwrap(), "#!/bin/sh\necho one\n");
    assert_eq!(
        fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
        0o755
    );

    fs::write(&src, "#!/bin/sh\necho two\n").unwrap();
    let out = home
        .cosmovisor(["add-upgrade", "v2", src.to_str().unwrap()])
        .run();
    out.assert_code(2);
    assert_eq!(
        out.errors(),
        vec![format!(
            "file already exists at {}: pass --force to replace it",
            bin.display()
        )]
    );
    assert_eq!(fs::read_to_string(&bin).unwrap(), "#!/bin/sh\necho one\n");

    home.cosmovisor(["add-upgrade", "v2", src.to_str().unwrap(), "--force"])
        .run()
        .assert_code(0);
    assert_eq!(fs::read_to_string(&bin).unwrap(), "#!/bin/sh\necho two\n");
    assert!(
        !home.data().join("upgrade-info.json").exists(),
        "no plan without --upgrade-height"
    );
}

#[test]
fn add_upgrade_rejects_a_missing_executable() {
    let home = Home::new("simd");
    let out = home
        .cosmovisor(["add-upgrade", "v2", "/no/such/file"])
        .run();
    out.assert_code(2);
    assert!(
        out.errors()[0].starts_with("invalid executable path /no/such/file"),
        "{out}"
    );
    assert!(!home.root().join("upgrades").exists());
}

/// Stages the mock node as upgrade `v2` (its own version in its config) and queues it at
/// height 12.
fn schedule_mock_v2_at_12(home: &Home) {
    home.cosmovisor(["add-upgrade", "v2", MOCK_NODE, "--upgrade-height", "12"])
        .run()
        .assert_code(0);
    fs::write(
        home.upgrade_dir("v2").join("mock-node.json"),
        json!({"version": "v2", "block_time_ms": 30}).to_string(),
    )
    .unwrap();
}

#[test]
fn manual_upgrade_happens_at_its_height_and_not_before() {
    let home = mock_home();
    schedule_mock_v2_at_12(&home);
    let queue: serde_json::Value =
        serde_json::from_slice(&fs::read(home.data().join("upgrade-info.json.batch")).unwrap())
            .unwrap();
    assert_eq!(queue[0]["name"], "v2");
    assert_eq!(queue[0]["height"], 12);

    let out = run_mock_until(&home, "block 20");
    out.assert_code(0)
        .stderr_contains("manual upgrade scheduled")
        .stderr_contains("--halt-height");
    // v1 committed exactly up to 12, then v2 went on from there.
    assert_eq!(
        starts(&home),
        vec!["start v1 height=0", "halt 12", "start v2 height=12"],
        "{out}"
    );
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
    assert!(
        !home.data().join("upgrade-info.json.batch").exists(),
        "the applied plan left the queue"
    );
}

/// SIGTERM while a manual upgrade's hook runs: cosmovisor stops with 143, the plan leaves the
/// queue (the journal now carries the upgrade), and the next start completes it.
#[test]
fn a_manual_upgrade_stopped_by_sigterm_leaves_the_queue_and_resumes() {
    let home = mock_home();
    schedule_mock_v2_at_12(&home);
    let marker = home.path().join("hook-started");
    fs::write(
        home.root().join("hook.sh"),
        format!(
            "#!/bin/sh\n[ -e {0}.done ] && exit 0\n: > {0}.done\n: > {0}\nexec sleep 60\n",
            marker.display()
        ),
    )
    .unwrap();
    fs::set_permissions(
        home.root().join("hook.sh"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let running = home
        .cosmovisor(["run", "start"])
        .env("UNSAFE_SKIP_BACKUP", "true")
        .env("COSMOVISOR_CUSTOM_PREUPGRADE", "hook.sh")
        .spawn();
    crate::support::wait_until("the hook to start", crate::support::DEADLINE, || {
        marker.exists()
    });
    running.signal(Signal::SIGTERM);
    running.wait().assert_code(143);
    assert!(
        !home.data().join("upgrade-info.json.batch").exists(),
        "the interrupted plan left the queue"
    );
    assert_eq!(home.current_target(), PathBuf::from("genesis"));

    let out = run_mock_until(&home, "start v2 height=12");
    out.assert_code(0)
        .stderr_contains("resuming upgrade from the journal");
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
}

#[test]
fn a_batch_of_two_is_applied_in_height_order() {
    let home = mock_home();
    let list = format!("v3:{MOCK_NODE}:16,v2:{MOCK_NODE}:8");
    home.cosmovisor(["add-batch-upgrade", "--upgrade-list", &list])
        .run()
        .assert_code(0);
    for version in ["v2", "v3"] {
        fs::write(
            home.upgrade_dir(version).join("mock-node.json"),
            json!({"version": version, "block_time_ms": 30}).to_string(),
        )
        .unwrap();
    }
    let out = run_mock_until(&home, "block 20");
    out.assert_code(0);
    assert_eq!(
        starts(&home),
        vec![
            "start v1 height=0",
            "halt 8",
            "start v2 height=8",
            "halt 16",
            "start v3 height=16"
        ],
        "{out}"
    );
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v3"));
}

#[test]
fn a_node_that_exits_before_the_manual_height_is_not_upgraded() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().say("starting").exit(0));
    home.upgrade("v2", &FakeDaemon::new().exit(0));
    fs::write(
        home.data().join("upgrade-info.json.batch"),
        r#"[{"name":"v2","time":"0001-01-01T00:00:00Z","height":50}]"#,
    )
    .unwrap();
    home.cosmovisor(["run", "start"]).run().assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
    assert!(home.data().join("upgrade-info.json.batch").exists());
}

#[test]
fn show_upgrade_info_prints_the_pending_plan() {
    let home = Home::new("simd");
    let out = home.cosmovisor(["show-upgrade-info"]).run();
    out.assert_code(0);
    assert_eq!(
        out.stdout(),
        format!(
            "No upgrade info found at {}\n",
            home.data().join("upgrade-info.json").display()
        )
    );
    home.write_plan("V2", 44);
    let out = home.cosmovisor(["show-upgrade-info"]).run();
    assert!(out.stdout().starts_with(r#"{"name":"V2""#), "{out}");
    let out = home
        .cosmovisor(["show-upgrade-info", "--output", "json"])
        .run();
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["name"], "v2");
    assert_eq!(value["height"], 44);
}

fn grpc_node(plan: Option<(&str, i64, &str)>) -> String {
    let node = GrpcNode::start(plan);
    let address = node.address.clone();
    std::mem::forget(node);
    address
}

#[test]
fn prepare_upgrade_downloads_the_scheduled_binary_ahead_of_time() {
    let binary = b"#!/bin/sh\necho v2\n".to_vec();
    let server = Server::start(vec![("/simd".into(), binary.clone())]);
    let info = json!({"binaries": {"any": format!("{}?checksum={}", server.url("/simd"), sha256(&binary))}}).to_string();
    let address = grpc_node(Some(("V2", 100, &info)));
    let home = Home::new("simd");
    let out = home
        .cosmovisor(["prepare-upgrade"])
        .env("DAEMON_GRPC_ADDRESS", &address)
        .run();
    out.assert_code(0)
        .stderr_contains("Upgrade preparation complete");
    assert_eq!(
        fs::read(home.upgrade_dir("v2").join("bin/simd")).unwrap(),
        binary
    );
}

#[test]
fn prepare_upgrade_without_a_plan_does_nothing() {
    let address = grpc_node(None);
    let home = Home::new("simd");
    let out = home
        .cosmovisor(["prepare-upgrade"])
        .env("DAEMON_GRPC_ADDRESS", &address)
        .run();
    out.assert_code(0)
        .stderr_contains("No active upgrade plan found");
    assert!(!home.root().join("upgrades").exists());
}

#[test]
fn prepare_upgrade_names_an_unreachable_node() {
    let refusing = RefusingPort::bind();
    let home = Home::new("simd");
    let out = home
        .cosmovisor(["prepare-upgrade"])
        .env(
            "DAEMON_GRPC_ADDRESS",
            format!("127.0.0.1:{}", refusing.port),
        )
        .run();
    assert_ne!(out.code(), Some(0), "{out}");
    assert!(
        out.errors()[0].contains("is the node's gRPC server enabled"),
        "{out}"
    );
}

/// A version that records what `data/upgrade-info.json` says when it starts (as an SDK app reads
/// it at start-up), then halts at its `--halt-height` like the SDK, or runs until SIGTERM.
fn version_reading_the_plan_file(tag: &str) -> FakeDaemon {
    FakeDaemon::new()
        .raw(r#"[ "${1:-}" = pre-upgrade ] && exit 0"#)
        .raw(r"trap 'exit 0' TERM")
        .raw(&format!(
            r#"printf 'start {tag} %s\n' "$(cat "$DAEMON_HOME/data/upgrade-info.json" 2>/dev/null)" >> "$DAEMON_HOME/events""#
        ))
        .raw(r#"h=; prev=; for a in "$@"; do [ "$prev" = --halt-height ] && h=$a; prev=$a; done"#)
        .raw(r#"[ -n "$h" ] && { printf 'INF halt per configuration height %s module=server\n' "$h"; exit 0; }"#)
        .block()
}

/// Go v1.7 writes each queued plan to `data/upgrade-info.json` as it comes due, so a new binary
/// that reads the file at start sees its own upgrade: after `vN` is applied at `H` the file names
/// `vN@H`, written on purpose (never by the journal's repair of a lost file).
#[test]
fn each_manual_upgrade_leaves_its_plan_in_upgrade_info_json() {
    let home = Home::new("simd");
    home.genesis(&version_reading_the_plan_file("v1"));
    let versions: Vec<(String, i64)> = (2..=12).map(|n| (format!("v{n}"), (n - 1) * 10)).collect();
    let mut list = Vec::new();
    for (name, height) in &versions {
        let src = home.path().join(format!("src-{name}"));
        fs::write(&src, version_reading_the_plan_file(name).script()).unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o755)).unwrap();
        list.push(format!("{name}:{}:{height}", src.display()));
    }
    home.cosmovisor(["add-batch-upgrade", "--upgrade-list", &list.join(",")])
        .run()
        .assert_code(0);
    let running = home
        .cosmovisor(["run", "start"])
        .env("UNSAFE_SKIP_BACKUP", "true")
        .spawn();
    crate::support::wait_until("v12 to start", crate::support::DEADLINE, || {
        home.events().iter().any(|e| e.starts_with("start v12 "))
    });
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0)
        .stderr_lacks("writing it again from the upgrade journal");
    let mut expected = vec!["start v1 ".to_owned()];
    for (name, height) in &versions {
        expected.push(format!(
            r#"start {name} {{"name":"{name}","time":"0001-01-01T00:00:00Z","height":{height}}}"#
        ));
    }
    assert_eq!(home.events(), expected, "{out}");
    assert_eq!(
        out.stderr()
            .matches("recording the manual upgrade's plan in upgrade-info.json")
            .count(),
        versions.len(),
        "{out}"
    );
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v12"));
}
