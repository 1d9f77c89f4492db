//! `cosmovisor status`: the text view and the stable JSON keys, on healthy, busy and broken homes.

use std::fs;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::{FakeDaemon, Home};

fn json(home: &Home) -> Value {
    let out = home.cosmovisor(["status", "--output", "json"]).run();
    out.assert_code(0);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{out}"))
}

fn assert_type(value: &Value, path: &str, check: fn(&Value) -> bool) {
    let mut at = value;
    for key in path.split('.') {
        at = match key.parse::<usize>() {
            Ok(i) => &at[i],
            Err(_) => &at[key],
        };
    }
    assert!(check(at), "{path} has the wrong type: {at}\n{value:#}");
}

fn home_with_everything() -> Home {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block())
        .upgrade("v2", &FakeDaemon::new().exit(0))
        .upgrade("v3", &FakeDaemon::new().exit(0));
    fs::write(
        home.upgrade_dir("v2").join("upgrade-info.json"),
        r#"{"name":"v2","height":10}"#,
    )
    .expect("test setup");
    fs::remove_file(home.upgrade_dir("v3").join("bin/simd")).expect("test setup");
    home.set_current("upgrades/v2");
    home.write_plan("v3", 20);
    fs::write(
        home.data().join("upgrade-info.json.batch"),
        r#"[{"name":"v5","height":50},{"name":"v4","height":40}]"#,
    )
    .expect("test setup");
    let backup = home.path().join("data-backup-2026-1-1");
    fs::create_dir_all(backup.join("sub")).expect("test setup");
    fs::write(backup.join("sub/blocks"), vec![1u8; 100]).expect("test setup");
    home
}

#[test]
fn json_keys_are_present_and_typed() {
    let home = home_with_everything();
    let status = json(&home);
    for (path, check) in [
        ("cosmovisor_version", Value::is_string as fn(&Value) -> bool),
        ("home", Value::is_string),
        ("daemon_name", Value::is_string),
        ("current.version", Value::is_string),
        ("current.dir", Value::is_string),
        ("current.binary", Value::is_string),
        ("current.binary_ok", Value::is_boolean),
        ("applied_plan.name", Value::is_string),
        ("applied_plan.height", Value::is_i64),
        ("pending_plan.name", Value::is_string),
        ("pending_plan.height", Value::is_i64),
        ("pending_plan.info", Value::is_string),
        ("pending_plan.would_trigger", Value::is_boolean),
        ("pending_plan.upgrade_dir", Value::is_string),
        ("pending_plan.binary_staged", Value::is_boolean),
        ("plan_file.name", Value::is_string),
        ("plan_file.height", Value::is_i64),
        ("plan_file.state", Value::is_string),
        ("manual_upgrades", Value::is_array),
        ("manual_upgrades.0.name", Value::is_string),
        ("manual_upgrades.0.height", Value::is_i64),
        ("staged_upgrades", Value::is_array),
        ("staged_upgrades.0.name", Value::is_string),
        ("staged_upgrades.0.dir", Value::is_string),
        ("staged_upgrades.0.binary", Value::is_string),
        ("staged_upgrades.0.binary_present", Value::is_boolean),
        ("staged_upgrades.0.binary_executable", Value::is_boolean),
        ("staged_upgrades.0.applied_height", Value::is_i64),
        ("staged_upgrades.0.current", Value::is_boolean),
        ("staged_upgrades.1.applied_height", Value::is_null),
        ("last_backup.path", Value::is_string),
        ("last_backup.size_bytes", Value::is_u64),
        ("last_backup.age_seconds", Value::is_u64),
        ("journal", Value::is_null),
        ("daemon.running", Value::is_boolean),
        ("daemon.pid", Value::is_null),
        ("supervisor.running", Value::is_boolean),
        ("supervisor.pid", Value::is_null),
        ("errors", Value::is_array),
    ] {
        assert_type(&status, path, check);
    }
    assert_eq!(status["current"]["version"], "v2");
    assert_eq!(status["applied_plan"]["height"], 10);
    assert_eq!(status["pending_plan"]["name"], "v3");
    assert_eq!(status["pending_plan"]["would_trigger"], true);
    assert_eq!(status["pending_plan"]["binary_staged"], false);
    assert_eq!(status["plan_file"]["state"], "pending");
    assert_eq!(
        status["manual_upgrades"][0]["name"], "v4",
        "lowest height first"
    );
    assert_eq!(status["manual_upgrades"][1]["height"], 50);
    assert_eq!(status["staged_upgrades"][0]["current"], true);
    assert_eq!(status["staged_upgrades"][1]["binary_present"], false);
    assert_eq!(status["last_backup"]["size_bytes"], 100);
    assert_eq!(status["daemon"]["running"], false);
    assert_eq!(status["errors"], Value::Array(vec![]));

    let out = home.cosmovisor(["status"]).run();
    out.assert_code(0)
        .stdout_contains("current:    v2 (")
        .stdout_contains("pending:    v3 at height 20 (will be applied; binary NOT staged)")
        .stdout_contains("v3 (binary missing)")
        .stdout_contains("manual:     v4 at height 40, v5 at height 50")
        .stdout_contains("daemon:     not running");
}

#[test]
fn shows_the_journal_and_a_running_node() {
    let home = home_with_everything();
    fs::write(
        home.root().join("upgrade-journal.json"),
        r#"{"format":1,"plan":{"name":"v3","raw_name":"v3","height":20,"info":""},"phase":"backed_up","started_at":"2026-11-26T07:00:00Z"}"#,
    )
    .expect("test setup");
    let status = json(&home);
    assert_eq!(status["journal"]["phase"], "backed_up");
    assert_eq!(status["journal"]["name"], "v3");
    assert_eq!(status["journal"]["height"], 20);
    fs::remove_file(home.root().join("upgrade-journal.json")).expect("test setup");

    fs::remove_file(home.data().join("upgrade-info.json")).expect("test setup");
    home.set_current("genesis");
    let running = home.cosmovisor(["run", "start"]).spawn();
    home.wait_for_event("ready v1");
    // cosmovisor records the daemon's pid just after starting it: the daemon can be faster.
    crate::support::wait_until("the daemon's pid file", crate::support::DEADLINE, || {
        home.root().join(".daemon.pid").exists()
    });
    let status = json(&home);
    assert_eq!(status["daemon"]["running"], true, "{status:#}");
    assert!(status["daemon"]["pid"].is_i64());
    assert_eq!(status["supervisor"]["running"], true, "{status:#}");
    assert_eq!(status["supervisor"]["pid"], running.pid.as_raw());
    running.signal(Signal::SIGTERM);
    running.wait().assert_code(0);
    let status = json(&home);
    assert_eq!(status["daemon"]["running"], false);
    assert_eq!(status["supervisor"]["running"], false);
}

#[test]
fn broken_home_is_reported_not_fatal() {
    let home = Home::new("simd");
    home.set_current("upgrades/gone");
    let status = json(&home);
    assert!(status["current"].is_null());
    let errors = status["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{status:#}");
    assert!(
        errors[0]
            .as_str()
            .expect("test setup")
            .contains("which does not exist"),
        "{status:#}"
    );
}

/// `pending_plan` is null unless a supervisor would carry the plan out: a script that checks
/// `.pending_plan != null` must not page for an upgrade that is done. What the file holds is under
/// `plan_file`, with its state.
#[test]
fn the_plan_file_is_pending_applied_skipped_or_unusable() {
    let home = home_with_everything();
    home.write_plan("v2", 10);
    let status = json(&home);
    assert!(status["pending_plan"].is_null(), "{status:#}");
    assert_eq!(
        status["plan_file"],
        serde_json::json!({"name": "v2", "height": 10, "state": "applied"})
    );
    assert_eq!(status["errors"], Value::Array(vec![]));
    home.cosmovisor(["status"]).run().stdout_contains(
        "pending:    none (data/upgrade-info.json holds v2 at height 10, already applied)",
    );

    let name = "a".repeat(300);
    home.write_plan(&name, 20);
    let status = json(&home);
    assert!(status["pending_plan"].is_null(), "{status:#}");
    assert_eq!(
        status["plan_file"],
        serde_json::json!({"name": name, "height": 20, "state": "unusable"})
    );
    assert_eq!(
        status["errors"].as_array().map(Vec::len),
        Some(1),
        "{status:#}"
    );

    home.set_current("genesis");
    let running = home
        .cosmovisor(["run", "start", "--unsafe-skip-upgrades", "20"])
        .spawn();
    home.wait_for_event("ready v1");
    crate::support::wait_until("the daemon's pid file", crate::support::DEADLINE, || {
        home.root().join(".daemon.pid").exists()
    });
    let status = json(&home);
    assert_eq!(status["plan_file"]["state"], "skipped", "{status:#}");
    assert!(status["pending_plan"].is_null(), "{status:#}");
    assert_eq!(status["errors"], Value::Array(vec![]), "{status:#}");
    running.signal(Signal::SIGTERM);
    running.wait().assert_code(0);
}
