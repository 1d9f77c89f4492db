//! Only the node's own state decides a manual upgrade (docs/design.md "Trust boundaries"): a halt
//! line counts only at exactly the `--halt-height` the node runs with and followed by a clean
//! exit with no signal since, and the node's RPC counts only when its answer carries the node ID
//! of `config/node_key.json`. A forged line, a crash, a kill, a forwarded signal or a lying port
//! upgrade nothing and remove nothing; the real halts still upgrade.

use std::fs;
use std::path::PathBuf;

use nix::sys::signal::Signal;
use serde_json::json;

use crate::manual_upgrades::{starts, wait_for_mock_event};
use crate::support::{FakeDaemon, Home, MOCK_NODE, Server, free_port};

/// The queue file of `home`.
fn queue(home: &Home) -> String {
    fs::read_to_string(home.data().join("upgrade-info.json.batch")).unwrap_or_default()
}

/// A home whose genesis daemon is `v1`, with v2 staged (it exits 0 at once: an upgrade that
/// should not happen ends the run quickly) and queued at height 1000.
fn queued_home(v1: &FakeDaemon) -> Home {
    let home = Home::new("panacead");
    home.genesis(v1)
        .upgrade("v2", &FakeDaemon::new().ready("v2").exit(0));
    fs::write(
        home.data().join("upgrade-info.json.batch"),
        r#"[{"name":"v2","time":"0001-01-01T00:00:00Z","height":1000}]"#,
    )
    .unwrap();
    home
}

/// A home running the mock node `v1` (configured by `v1`), with the mock v2 staged and queued at
/// `height`.
fn mock_queued_home(v1: &serde_json::Value, height: i64) -> Home {
    let home = Home::new("panacead");
    home.mock(&home.genesis_dir(), v1);
    home.mock(
        &home.upgrade_dir("v2"),
        &json!({"version": "v2", "block_time_ms": 20}),
    );
    fs::write(
        home.data().join("upgrade-info.json.batch"),
        format!(r#"[{{"name":"v2","time":"0001-01-01T00:00:00Z","height":{height}}}]"#),
    )
    .unwrap();
    home
}

/// The node key of a home: 64 bytes whose last 32 stand for the public key.
fn write_node_key(home: &Home) {
    fs::create_dir_all(home.path().join("config")).unwrap();
    fs::write(
        home.path().join("config/node_key.json"),
        r#"{"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"qu+62srbXdoWaYh6wUecg4NoctFUKX7QvUdukLGEoHMgIl95POmQL/wt9egmaM2CDCxioTtOs3DpqjMJ95lYQg=="}}"#,
    )
    .unwrap();
}

/// The ID of the key [`write_node_key`] writes.
const OUR_ID: &str = "b2127168256b4f34dc1ab20939e5f7fd1d8db466";
/// Another node's ID.
const OTHER_ID: &str = "06c0f3e47cc5c748269088dc2f36411d3aaa27c6";

/// A local server posing as the node's RPC: another node, far past every height.
fn lying_rpc() -> Server {
    let body = json!({
        "jsonrpc": "2.0", "id": -1,
        "result": {
            "node_info": {"id": OTHER_ID},
            "sync_info": {"latest_block_height": "99999999", "catching_up": false}
        }
    });
    Server::start(vec![("/status".into(), body.to_string().into_bytes())])
}

#[test]
fn a_halt_line_then_a_crash_or_a_kill_upgrades_nothing() {
    let cases = [
        // Any text can claim a halt at a huge height, then the node crashes.
        (
            r#"INF executed block memo="halt per configuration height 99999999" module=state"#,
            "exit 1",
            Some(1),
            "its halt line names height 99999999, not its --halt-height 1000",
        ),
        // The right height, but the node then crashes.
        (
            "INF halt per configuration height 1000 module=server",
            "exit 1",
            Some(1),
            "it then exited with status 1",
        ),
        // The right height, then an OOM kill.
        (
            "INF halt per configuration height 1000 module=server",
            "kill -9 $$",
            None,
            "it then died by signal SIGKILL",
        ),
        // A halt line at another height, then a clean exit.
        (
            "INF halt per configuration height 10 module=server",
            "exit 0",
            Some(0),
            "its halt line names height 10, not its --halt-height 1000",
        ),
    ];
    for (line, ending, code, why) in cases {
        let home = queued_home(&FakeDaemon::new().ready("v1").say(line).raw(ending));
        let out = home.cosmovisor(["run", "start"]).run();
        match code {
            Some(code) => out.assert_code(code),
            None => out.assert_code(128 + 9),
        };
        out.stderr_contains(&format!("the node printed a halt line, but {why}: not a halt at the manual upgrade height; the upgrade stays queued"));
        assert_eq!(
            home.current_target(),
            PathBuf::from("genesis"),
            "{line} {ending}\n{out}"
        );
        assert!(queue(&home).contains("\"v2\""), "the queue is kept\n{out}");
        assert!(!home.events().contains(&"ready v2".to_owned()), "{out}");
    }
}

#[test]
fn a_halt_line_then_an_exit_after_a_forwarded_signal_upgrades_nothing() {
    let v1 = FakeDaemon::new()
        .ready("v1")
        .raw(r"trap 'ev HUP; exit 0' HUP")
        .say("INF halt per configuration height 1000 module=server")
        .block();
    let home = queued_home(&v1);
    let running = home.cosmovisor(["run", "start"]).spawn();
    // The halt line was read: with no RPC to confirm it, cosmovisor says so.
    running.wait_for_log("the node claims its halt at the manual upgrade height, but its height could not be checked");
    running.signal(Signal::SIGHUP);
    let out = running.wait();
    out.assert_code(0).stderr_contains(
        "the node printed a halt line, but a signal reached it after its halt line",
    );
    assert_eq!(home.events(), ["ready v1", "HUP"], "{out}");
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
    assert!(queue(&home).contains("\"v2\""));
}

#[test]
fn a_lying_rpc_neither_confirms_a_halt_nor_removes_a_queued_upgrade() {
    let rpc = lying_rpc();
    // The node claims its halt at the height and keeps running; the port answers for another
    // node, far past the height.
    let v1 = FakeDaemon::new()
        .ready("v1")
        .raw(r#"ev "args $*""#)
        .say("INF halt per configuration height 1000 module=server")
        .block();
    let home = queued_home(&v1);
    write_node_key(&home);
    let running = home
        .cosmovisor(["run", "start"])
        .env("COSMOVISOR_NODE_RPC", &rpc.base)
        .spawn();
    running.wait_for_log(&format!(
        "answered for node {OTHER_ID}, but this home's node is {OUR_ID}"
    ));
    home.wait_for_event("args start --halt-height 1000");

    // add-upgrade is not refused by another node's answer: it cannot check, and says so.
    let out = home
        .cosmovisor(["add-upgrade", "v1b", MOCK_NODE, "--upgrade-height", "500"])
        .env("COSMOVISOR_NODE_RPC", &rpc.base)
        .run();
    out.assert_code(0)
        .stderr_contains("the node's height could not be checked (COSMOVISOR_NODE_RPC)")
        .stderr_contains(&format!("answered for node {OTHER_ID}"));

    // The running supervisor restarts the node for the lower height instead of believing the
    // port and dropping the upgrade from the queue.
    home.wait_for_event("args start --halt-height 500");
    let queued = queue(&home);
    assert!(
        queued.contains("\"v1b\"") && queued.contains("\"v2\""),
        "{queued}"
    );
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("genesis"), "{out}");
    assert!(!home.events().contains(&"ready v2".to_owned()), "{out}");
}

#[test]
fn a_node_that_halts_at_exactly_its_height_and_exits_cleanly_upgrades_with_or_without_its_rpc() {
    for with_rpc in [false, true] {
        let home = mock_queued_home(&json!({"version": "v1", "block_time_ms": 20}), 8);
        let port = free_port();
        let mut args = vec!["run".to_owned(), "start".to_owned()];
        let mut cosmovisor_env = "http://127.0.0.1:9".to_owned();
        if with_rpc {
            args.extend(["--rpc.laddr".into(), format!("tcp://127.0.0.1:{port}")]);
            cosmovisor_env = format!("http://127.0.0.1:{port}");
        }
        let running = home
            .cosmovisor(args)
            .env("UNSAFE_SKIP_BACKUP", "true")
            .env("COSMOVISOR_NODE_RPC", cosmovisor_env)
            .spawn();
        wait_for_mock_event(&home, "block 20");
        running.signal(Signal::SIGTERM);
        let out = running.wait();
        out.assert_code(0)
            .stderr_contains("node halted at the manual upgrade height");
        assert_eq!(
            starts(&home),
            ["start v1 height=0", "halt 8", "start v2 height=8"],
            "with_rpc={with_rpc}\n{out}"
        );
        assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
    }
}

#[test]
fn a_node_that_keeps_running_after_its_halt_is_confirmed_by_its_own_rpc_found_in_its_config() {
    // SDK 0.50: the node halts at 12 and keeps running. COSMOVISOR_NODE_RPC is unset: the node's
    // own [rpc] laddr is asked, and its answer carries the ID of its node key.
    let home = mock_queued_home(
        &json!({"version": "v1", "block_time_ms": 30, "halt_keeps_running": true}),
        12,
    );
    let port = free_port();
    fs::create_dir_all(home.path().join("config")).unwrap();
    fs::write(
        home.path().join("config/config.toml"),
        format!("moniker = \"m\"\n\n[rpc]\nladdr = \"tcp://0.0.0.0:{port}\"\n"),
    )
    .unwrap();
    let running = home
        .cosmovisor([
            "run",
            "start",
            "--rpc.laddr",
            &format!("tcp://127.0.0.1:{port}"),
        ])
        .env_remove("COSMOVISOR_NODE_RPC")
        .env("UNSAFE_SKIP_BACKUP", "true")
        .spawn();
    wait_for_mock_event(&home, "block 20");
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0).stderr_contains(
        "node halted at the manual upgrade height and keeps running; its RPC confirms the height",
    );
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
}

#[test]
fn a_printing_loop_of_halt_lines_costs_one_question_a_second_and_one_warning() {
    let rpc = lying_rpc();
    // 2000 halt lines in a burst, then the node waits.
    let v1 = FakeDaemon::new()
        .ready("v1")
        .raw("i=0; while [ $i -lt 2000 ]; do echo 'INF halt per configuration height 1000 module=server'; i=$((i+1)); done")
        .event("printed")
        .block();
    let home = queued_home(&v1);
    write_node_key(&home);
    let running = home
        .cosmovisor(["run", "start"])
        .env("COSMOVISOR_NODE_RPC", &rpc.base)
        .spawn();
    home.wait_for_event("printed");
    running.wait_for_log("not our node");
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0);
    let asked = rpc.requested().len();
    assert!(
        (1..=3).contains(&asked),
        "{asked} questions for one burst of halt lines"
    );
    assert_eq!(
        out.stderr().matches("not our node").count(),
        1,
        "one warning per reason\n{out}"
    );
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
}
