//! Manual upgrades while the node runs: a height added to the queue makes the running supervisor
//! restart the node with the new `--halt-height`; a height the node passed is refused (its RPC
//! says so); a node that keeps running after its halt (SDK 0.50) is upgraded once its RPC
//! confirms the height; and a plan that can never be applied stops the node with a clear error.

use std::fs;
use std::path::PathBuf;

use nix::sys::signal::Signal;
use serde_json::json;

use crate::manual_upgrades::{mock_home, starts, wait_for_mock_event};
use crate::support::{Home, MOCK_NODE, free_port};

fn mock_version(home: &Home, version: &str, extra: &serde_json::Value) {
    let mut config = json!({"version": version, "block_time_ms": 50});
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    fs::write(
        home.upgrade_dir(version).join("mock-node.json"),
        config.to_string(),
    )
    .unwrap();
}

/// The mock node's last committed height (its `priv_validator_state.json`).
fn committed(home: &Home) -> i64 {
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(home.data().join("priv_validator_state.json")).unwrap())
            .unwrap();
    state["height"].as_str().unwrap().parse().unwrap()
}

#[test]
fn a_manual_upgrade_added_while_the_node_runs_happens_at_its_height() {
    let home = Home::new("panacead");
    // 60 blocks of 100 ms leave the supervisor ample time to restart the node before the height.
    mock_version_genesis(&home, &json!({"block_time_ms": 100}));
    let port = free_port();
    let rpc = format!("http://127.0.0.1:{port}");
    let laddr = format!("tcp://127.0.0.1:{port}");
    let running = home
        .cosmovisor(["run", "start", "--rpc.laddr", &laddr])
        .env("UNSAFE_SKIP_BACKUP", "true")
        .env("COSMOVISOR_NODE_RPC", &rpc)
        .spawn();
    wait_for_mock_event(&home, "block 10");
    let height = committed(&home) + 60;
    let out = home
        .cosmovisor([
            "add-upgrade",
            "v2",
            MOCK_NODE,
            "--upgrade-height",
            &height.to_string(),
        ])
        .env("COSMOVISOR_NODE_RPC", &rpc)
        .run();
    out.assert_code(0).stderr_contains(&format!(
        "the running node will be restarted with --halt-height {height}"
    ));
    mock_version(&home, "v2", &json!({}));
    let next_ten = (height / 10 + 1) * 10;
    wait_for_mock_event(&home, &format!("block {next_ten}"));
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0).stderr_contains(
        "manual upgrade added while the node runs: restarting the node with --halt-height",
    );
    // v1 was restarted once with the halt height, committed exactly up to it, and v2 went on
    // from the next height.
    let starts = starts(&home);
    assert_eq!(starts.len(), 4, "{starts:?}\n{out}");
    assert_eq!(starts[0], "start v1 height=0");
    assert!(starts[1].starts_with("start v1 height="), "{starts:?}");
    assert_eq!(
        starts[2..],
        [
            format!("halt {height}"),
            format!("start v2 height={height}")
        ],
        "{out}"
    );
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
}

#[test]
fn add_upgrade_refuses_a_height_the_node_has_passed_and_warns_when_it_cannot_tell() {
    let home = mock_home();
    // No node runs: the height cannot be checked; queued with a warning saying so.
    let out = home
        .cosmovisor(["add-upgrade", "v3", MOCK_NODE, "--upgrade-height", "1000"])
        .run();
    out.assert_code(0)
        .stderr_contains("the node's height could not be checked (COSMOVISOR_NODE_RPC)")
        .stderr_contains("cannot authenticate the node's RPC")
        .stderr_contains("no cosmovisor supervises this home now: the next `cosmovisor run start` starts the node with --halt-height 1000");

    let port = free_port();
    let rpc = format!("http://127.0.0.1:{port}");
    let running = home
        .cosmovisor([
            "run",
            "start",
            "--rpc.laddr",
            &format!("tcp://127.0.0.1:{port}"),
        ])
        .spawn();
    wait_for_mock_event(&home, "block 10");
    let out = home
        .cosmovisor(["add-upgrade", "v2", MOCK_NODE, "--upgrade-height", "5"])
        .env("COSMOVISOR_NODE_RPC", &rpc)
        .run();
    out.assert_code(2);
    let errors = out.errors();
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].starts_with("missed manual upgrade v2 at height 5, last known height is "),
        "{out}"
    );
    assert!(
        errors[0].contains(&format!(
            "(the node's RPC at {rpc}): choose a height above "
        )),
        "{out}"
    );
    assert!(!home.upgrade_dir("v2").exists(), "nothing staged");
    let queue = fs::read_to_string(home.data().join("upgrade-info.json.batch")).unwrap();
    assert!(!queue.contains("\"v2\""), "{queue}");

    // add-batch-upgrade checks every height the same way.
    let list = format!("v4:{MOCK_NODE}:2000,v5:{MOCK_NODE}:3");
    let out = home
        .cosmovisor(["add-batch-upgrade", "--upgrade-list", &list])
        .env("COSMOVISOR_NODE_RPC", &rpc)
        .run();
    out.assert_code(2);
    assert!(
        out.errors()[0].starts_with("missed manual upgrade v5 at height 3, last known height is "),
        "{out}"
    );
    assert!(!home.upgrade_dir("v4").exists(), "nothing staged");
    running.signal(Signal::SIGTERM);
    running.wait().assert_code(0);
}

#[test]
fn a_node_that_keeps_running_after_its_halt_is_upgraded_once_its_rpc_confirms_the_height() {
    let home = Home::new("panacead");
    home.mock(
        &home.genesis_dir(),
        &json!({"version": "v1", "block_time_ms": 30, "halt_keeps_running": true}),
    );
    home.cosmovisor(["add-upgrade", "v2", MOCK_NODE, "--upgrade-height", "12"])
        .run()
        .assert_code(0);
    mock_version(&home, "v2", &json!({}));
    let port = free_port();
    let running = home
        .cosmovisor([
            "run",
            "start",
            "--rpc.laddr",
            &format!("tcp://127.0.0.1:{port}"),
        ])
        .env("UNSAFE_SKIP_BACKUP", "true")
        .env("COSMOVISOR_NODE_RPC", format!("http://127.0.0.1:{port}"))
        .spawn();
    wait_for_mock_event(&home, "block 20");
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0).stderr_contains(
        "node halted at the manual upgrade height and keeps running; its RPC confirms the height",
    );
    let events = fs::read_to_string(home.path().join("mock-events.log")).unwrap();
    // v1 halted at 12 and stayed up until cosmovisor stopped it; v2 went on from 12 (until the
    // test's SIGTERM).
    let seen: Vec<&str> = events
        .lines()
        .filter(|line| !line.starts_with("block ") && !line.starts_with("pre-upgrade "))
        .collect();
    assert_eq!(
        seen,
        [
            "start v1 height=0",
            "halt-running 12",
            "signal TERM",
            "exit 0",
            "start v2 height=12",
            "signal TERM",
            "exit 0"
        ],
        "{out}"
    );
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
}

#[test]
fn a_halt_line_the_rpc_does_not_confirm_upgrades_nothing() {
    // The node runs on below the height while its output claims the halt: the RPC disagrees.
    let home = Home::new("panacead");
    home.mock(
        &home.genesis_dir(),
        &json!({"version": "v1", "block_time_ms": 30}),
    );
    home.mock(&home.upgrade_dir("v2"), &json!({"version": "v2"}));
    fs::write(
        home.data().join("upgrade-info.json.batch"),
        r#"[{"name":"v2","time":"0001-01-01T00:00:00Z","height":1000}]"#,
    )
    .unwrap();
    let port = free_port();
    let script = home.path().join("claims-halt");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\necho 'INF halt per configuration height 1000 module=server'\nexec {} \"$@\"\n",
            home.genesis_dir().join("bin/panacead.real").display()
        ),
    )
    .unwrap();
    let bin = home.genesis_dir().join("bin/panacead");
    fs::rename(&bin, home.genesis_dir().join("bin/panacead.real")).unwrap();
    fs::rename(&script, &bin).unwrap();
    fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let running = home
        .cosmovisor([
            "run",
            "start",
            "--rpc.laddr",
            &format!("tcp://127.0.0.1:{port}"),
        ])
        .env("COSMOVISOR_NODE_RPC", format!("http://127.0.0.1:{port}"))
        .spawn();
    running.wait_for_log("is not confirmed by the node's RPC");
    running.signal(Signal::SIGTERM);
    running.wait().assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
}

#[test]
fn a_plan_that_can_never_be_applied_stops_the_node_and_later_starts_fail_the_same_way() {
    let home = mock_home();
    mock_version_genesis(
        &home,
        &json!({"upgrade": {"name": "..", "height": 5}, "after_upgrade": "keep-running"}),
    );
    let file = home.data().join("upgrade-info.json");
    let out = home.cosmovisor(["run", "start"]).run();
    out.assert_code(5);
    assert_eq!(
        out.errors(),
        vec![format!(
            "{} holds an upgrade plan that can never be applied: upgrade name \"..\" is not allowed: it would name a folder outside upgrades/; the node was stopped (the chain halts at this upgrade anyway): get the upgrade's instructions for this chain, then remove or replace {} before starting cosmovisor again",
            file.display(),
            file.display()
        )],
        "{out}"
    );
    let events = fs::read_to_string(home.path().join("mock-events.log")).unwrap();
    assert!(
        events.contains("upgrade-needed .. 5\nsignal TERM\nexit 0\n"),
        "{events}"
    );

    // The plan is still there: the next start fails the same way at once, without the node.
    let again = home.cosmovisor(["run", "start"]).run();
    again.assert_code(5);
    assert_eq!(again.errors(), out.errors());
    let starts = fs::read_to_string(home.path().join("mock-events.log"))
        .unwrap()
        .lines()
        .filter(|line| line.starts_with("start "))
        .count();
    assert_eq!(starts, 1, "the node was not started again");
}

/// The operator's escape hatch works for a plan that can never be applied: with its height in
/// `--unsafe-skip-upgrades` (Go skips any plan whose height is listed) the node starts and runs
/// past it, and so past a queued manual upgrade at a listed height whose name is unusable too.
#[test]
fn a_plan_that_can_never_be_applied_at_a_skipped_height_lets_the_node_run() {
    let home = mock_home();
    let name = "a".repeat(300);
    mock_version_genesis(
        &home,
        &json!({"upgrade": {"name": name, "height": 5}, "after_upgrade": "keep-running"}),
    );
    home.cosmovisor(["run", "start"]).run().assert_code(5);
    let queue = home.data().join("upgrade-info.json.batch");
    let queued = json!([{"name": "b".repeat(300), "time": "0001-01-01T00:00:00Z", "height": 8}]);
    fs::write(&queue, queued.to_string()).unwrap();

    let running = home
        .cosmovisor(["run", "start", "--unsafe-skip-upgrades", "5", "8"])
        .env("UNSAFE_SKIP_BACKUP", "true")
        .spawn();
    wait_for_mock_event(&home, "block 20");
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0);
    for line in [
        "upgrade height is listed in --unsafe-skip-upgrades, skipping the plan that could not be applied",
        "manual upgrade height is listed in --unsafe-skip-upgrades; the node does not halt for it",
    ] {
        assert_eq!(out.stderr().matches(line).count(), 1, "{line}\n{out}");
    }
    assert_eq!(
        starts(&home),
        ["start v1 height=0", "start v1 height=4"],
        "{out}"
    );
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
}

fn mock_version_genesis(home: &Home, extra: &serde_json::Value) {
    let mut config = json!({"version": "v1", "block_time_ms": 30});
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    home.mock(&home.genesis_dir(), &config);
}

#[test]
fn a_queued_height_the_running_node_has_passed_is_reported_and_taken_out_of_the_queue() {
    let home = Home::new("panacead");
    mock_version_genesis(&home, &json!({}));
    home.mock(&home.upgrade_dir("v2"), &json!({"version": "v2"}));
    let port = free_port();
    let running = home
        .cosmovisor([
            "run",
            "start",
            "--rpc.laddr",
            &format!("tcp://127.0.0.1:{port}"),
        ])
        .env("COSMOVISOR_NODE_RPC", format!("http://127.0.0.1:{port}"))
        .spawn();
    wait_for_mock_event(&home, "block 10");
    // Written past add-upgrade's check, as by an add-upgrade that could not reach the RPC.
    let queue = home.data().join("upgrade-info.json.batch");
    fs::write(
        &queue,
        r#"[{"name":"v2","time":"0001-01-01T00:00:00Z","height":3}]"#,
    )
    .unwrap();
    running.wait_for_log("missed manual upgrade v2 at height 3, last known height is ");
    crate::support::wait_until("the queue without v2", crate::support::DEADLINE, || {
        !queue.exists()
    });
    wait_for_mock_event(&home, "block 20");
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0)
        .stderr_contains("removed it from the manual upgrade queue; the node keeps running")
        .stderr_lacks("restarting the node");
    assert_eq!(starts(&home), ["start v1 height=0"], "{out}");
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
}
