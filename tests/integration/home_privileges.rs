//! Other local users and root (docs/design.md "Trust boundaries"): another user's lock on the
//! home never turns `run start` into a pass-through; root running a command that writes into a
//! user's home leaves nothing owned by root there; and the manual-upgrade queue takes one writer
//! at a time and never two upgrades at one height. The tests that switch users need root and
//! `setpriv` (util-linux), as `.ci/run` has them.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::Signal;

use crate::support::{
    DEADLINE, FakeDaemon, Home, MOCK_NODE, skip_or_fail_in_ci, upgraded_daemon, v1_requesting,
    wait_until,
};

/// The uid and gid a node's user has in these tests (no passwd entry needed).
const NODE_USER: u32 = 4242;
/// Another local user.
const OTHER_USER: u32 = 4343;

/// Whether this test can switch users here (root, with `setpriv`); says so when it cannot.
fn can_switch_users() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !(root && setpriv) {
        skip_or_fail_in_ci("needs root and setpriv (util-linux) to act as other users");
    }
    root && setpriv
}

/// `setpriv` arguments that run a program as `uid` (gid alike, no other groups).
fn as_user(uid: u32) -> Vec<String> {
    vec![
        "setpriv".into(),
        format!("--reuid={uid}"),
        format!("--regid={uid}"),
        "--clear-groups".into(),
    ]
}

/// Every path under `dir` (itself included) owned by root.
fn root_owned(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.uid() == 0 {
            found.push(path.clone());
        }
        if meta.is_dir() {
            for entry in fs::read_dir(&path).unwrap().filter_map(Result::ok) {
                stack.push(entry.path());
            }
        }
    }
    found
}

fn chown_tree(dir: &Path, uid: u32) {
    let status = Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn another_users_lock_on_the_home_does_not_stop_the_upgrades() {
    if !can_switch_users() {
        return;
    }
    let home = Home::new("simd");
    home.genesis(&v1_requesting("v2", 20))
        .upgrade("v2", &upgraded_daemon("v2", &[0]));
    // A home other users may read, as many are.
    fs::set_permissions(home.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let marks = tempfile::tempdir().unwrap();
    fs::set_permissions(marks.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let marker = marks.path().join("locked");
    // Another user locks what it can: the cosmovisor folder.
    let mut attacker = Command::new(as_user(OTHER_USER)[0].clone())
        .args(&as_user(OTHER_USER)[1..])
        .args(["flock", "-n"])
        .arg(home.root())
        .args([
            "sh",
            "-c",
            &format!("touch {}; exec sleep 60", marker.display()),
        ])
        .spawn()
        .unwrap();
    wait_until("the other user's lock", DEADLINE, || marker.exists());
    // Its lock is not a supervisor: status does not report it, rollback is not refused for it.
    let status = home.cosmovisor(["status", "-o", "json"]).run();
    let json: serde_json::Value = serde_json::from_str(&status.stdout()).unwrap();
    assert_eq!(json["supervisor"]["running"], false, "{status}");
    let rollback = home.cosmovisor(["rollback", "--yes"]).run();
    assert_ne!(rollback.code(), Some(8), "{rollback}");
    let out = home
        .cosmovisor(["run", "start"])
        .stop_after(&home, "ready v2");
    let _ = attacker.kill();
    let _ = attacker.wait();
    out.assert_code(0)
        .stderr_contains("another user's process holds a lock on the cosmovisor folder; ignored");
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"), "{out}");
    // Nor can it take the lock file: it can neither open nor create it.
    let taken = Command::new(as_user(OTHER_USER)[0].clone())
        .args(&as_user(OTHER_USER)[1..])
        .args(["flock", "-n"])
        .arg(home.root().join("supervisor.lock"))
        .arg("true")
        .output()
        .unwrap();
    assert!(!taken.status.success(), "another user took the lock file");
    let mode = fs::metadata(home.root().join("supervisor.lock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_second_run_start_is_refused_and_status_names_the_supervisor() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block());
    let first = home.cosmovisor(["run", "start"]).spawn();
    home.wait_for_event("ready v1");
    let second = home.cosmovisor(["run", "start"]).run();
    second.assert_code(8);
    assert_eq!(
        second.errors(),
        [format!(
            "another cosmovisor already supervises this home ({} is locked by pid {}): not starting a second node on the same data; stop the other one first (for example `systemctl stop cosmovisor`)",
            home.root().join("supervisor.lock").display(),
            first.pid
        )],
        "{second}"
    );
    let pid_file = fs::metadata(home.root().join(".daemon.pid")).unwrap();
    assert_eq!(
        pid_file.permissions().mode() & 0o777,
        0o600,
        "a state file is the owner's only"
    );
    let status = home.cosmovisor(["status", "-o", "json"]).run();
    let json: serde_json::Value = serde_json::from_str(&status.stdout()).unwrap();
    assert_eq!(json["supervisor"]["pid"], first.pid.as_raw(), "{status}");
    assert_eq!(home.events(), ["ready v1"]);
    first.signal(Signal::SIGTERM);
    first.wait().assert_code(0);
}

#[test]
fn root_running_commands_on_a_users_home_leaves_nothing_owned_by_root() {
    if !can_switch_users() {
        return;
    }
    // A home upgraded to v2 (with a backup), then handed to its user.
    let home = Home::new("simd");
    fs::write(home.data().join("state.db"), "old").unwrap();
    home.genesis(&v1_requesting("v2", 49))
        .upgrade("v2", &upgraded_daemon("v2", &[0]));
    home.cosmovisor(["run", "start"])
        .stop_after(&home, "ready v2")
        .assert_code(0);
    fs::write(home.data().join("state.db"), "new").unwrap();
    let bins = tempfile::tempdir().unwrap();
    fs::set_permissions(bins.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let v3 = bins.path().join("simd-v3");
    fs::copy(MOCK_NODE, &v3).unwrap();
    chown_tree(home.path(), NODE_USER);

    // `sudo cosmovisor add-upgrade`, `add-batch-upgrade` and `rollback --restore-data`.
    home.cosmovisor([
        "add-upgrade",
        "v3",
        &v3.display().to_string(),
        "--upgrade-height",
        "100",
    ])
    .run()
    .assert_code(0)
    .stderr_contains("running as uid 4242, the owner of");
    let queue = home.data().join("upgrade-info.json.batch");
    assert_eq!(fs::metadata(&queue).unwrap().uid(), NODE_USER);
    let list = format!("v3:{}:100,v4:{}:200", v3.display(), v3.display());
    home.cosmovisor(["add-batch-upgrade", "--upgrade-list", &list])
        .run()
        .assert_code(0);
    assert_eq!(fs::metadata(&queue).unwrap().uid(), NODE_USER);
    as_node_user(home.path(), "cat \"$0/data/upgrade-info.json.batch\"");
    let out = home
        .cosmovisor(["rollback", "--restore-data", "--yes"])
        .run();
    out.assert_code(0);
    assert_eq!(
        fs::read_to_string(home.data().join("state.db")).unwrap(),
        "old",
        "{out}"
    );
    let owned = root_owned(home.path());
    assert!(
        owned.is_empty(),
        "owned by root: {owned:?}\n{}",
        home.tree()
    );
    // The node's user can still write data/.
    as_node_user(home.path(), "touch \"$0/data/written\"");
}

/// Runs `script` (with the home as `$0`) as the node's user; it must succeed.
fn as_node_user(home: &Path, script: &str) {
    let out = Command::new(as_user(NODE_USER)[0].clone())
        .args(&as_user(NODE_USER)[1..])
        .args(["sh", "-c", script])
        .arg(home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn two_upgrades_at_one_height_are_refused_and_nothing_changes() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block());
    home.cosmovisor(["add-upgrade", "v2", MOCK_NODE, "--upgrade-height", "100"])
        .run()
        .assert_code(0);
    let queue = home.data().join("upgrade-info.json.batch");
    let before = fs::read(&queue).unwrap();
    let out = home
        .cosmovisor(["add-upgrade", "v3", MOCK_NODE, "--upgrade-height", "100"])
        .run();
    out.assert_code(2);
    assert_eq!(
        out.errors(),
        [
            "upgrades v2 and v3 would both be at height 100: the node can halt for only one; give one of them another height"
        ],
        "{out}"
    );
    let list = format!("v4:{MOCK_NODE}:300,v5:{MOCK_NODE}:300");
    let out = home
        .cosmovisor(["add-batch-upgrade", "--upgrade-list", &list])
        .run();
    out.assert_code(2);
    assert!(
        out.errors()[0].starts_with("upgrades v4 and v5 would both be at height 300"),
        "{out}"
    );
    assert_eq!(fs::read(&queue).unwrap(), before, "the queue is unchanged");
}

#[test]
fn an_invalid_queue_is_refused_the_same_way_at_start_and_while_running() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block());
    let queue = home.data().join("upgrade-info.json.batch");
    let invalid = r#"[{"name":"v2","height":100},{"name":"v3","height":100}]"#;
    let expected = format!(
        "{} schedules v2 and v3 both at height 100: the node can halt for only one; remove one of them",
        queue.display()
    );
    fs::write(&queue, invalid).unwrap();
    let out = home.cosmovisor(["run", "start"]).run();
    out.assert_code(5);
    assert_eq!(out.errors(), std::slice::from_ref(&expected), "{out}");
    assert!(home.events().is_empty(), "the node was not started");

    fs::remove_file(&queue).unwrap();
    let running = home.cosmovisor(["run", "start"]).spawn();
    home.wait_for_event("ready v1");
    fs::write(&queue, invalid).unwrap();
    let out = running.wait();
    out.assert_code(5);
    assert_eq!(out.errors(), std::slice::from_ref(&expected), "{out}");
    assert_eq!(
        home.events(),
        ["ready v1", "TERM"],
        "the node was stopped gracefully"
    );
    let status = home.cosmovisor(["status"]).run();
    status.stdout_contains(&expected);
    let doctor = home.cosmovisor(["doctor"]).run();
    doctor
        .assert_code(7)
        .stdout_contains(&format!("✗ {expected} — fix: correct {}", queue.display()));
}
