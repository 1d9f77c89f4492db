//! `cosmovisor rollback`: back to the previous version after a real upgrade, with and without
//! restoring `data/`, never rolling back the signing state, and refused while the node runs.

use std::fs;
use std::path::PathBuf;

use nix::sys::signal::Signal;

use crate::support::{FakeDaemon, Home, upgraded_daemon, v1_requesting};

fn read(path: &std::path::Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A home that was upgraded from genesis to v2 at height 49 by a real `cosmovisor run`, with
/// `state.db` = "old" and signing state 1 in the backup, then "new" and 2 after the upgrade.
fn upgraded() -> Home {
    let home = Home::new("simd");
    fs::write(home.data().join("state.db"), "old").expect("test setup");
    fs::write(
        home.data().join("priv_validator_state.json"),
        r#"{"height":"1"}"#,
    )
    .expect("test setup");
    home.genesis(&v1_requesting("v2", 49))
        .upgrade("v2", &upgraded_daemon("v2", &[0]));
    home.cosmovisor(["run", "start"])
        .stop_after(&home, "ready v2")
        .assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
    assert_eq!(home.backups().len(), 1);
    fs::write(home.data().join("state.db"), "new").expect("test setup");
    fs::write(
        home.data().join("priv_validator_state.json"),
        r#"{"height":"2"}"#,
    )
    .expect("test setup");
    fs::write(home.data().join("written-by-v2"), "x").expect("test setup");
    home
}

fn rolled_back_dirs(home: &Home) -> Vec<PathBuf> {
    fs::read_dir(home.path())
        .expect("test setup")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("data.rolled-back-"))
        })
        .collect()
}

#[test]
fn rolls_back_to_the_previous_version_keeping_data() {
    let home = upgraded();
    let out = home.cosmovisor(["rollback", "--yes"]).run();
    out.assert_code(0)
        .stdout_contains("Rolled back: current -> genesis (genesis).")
        .stdout_contains("--unsafe-skip-upgrades 49");
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
    assert_eq!(read(&home.data().join("state.db")), "new");
    assert!(!home.data().join("upgrade-info.json").exists(), "{out}");
    assert!(home.data().join("upgrade-info.json.rolled-back").is_file());
    assert!(rolled_back_dirs(&home).is_empty());

    // Started as the output says, the rolled-back node stays on genesis even though the (fake)
    // chain asks for v2 at height 49 again.
    let running = home
        .cosmovisor(["run", "start", "--unsafe-skip-upgrades", "49"])
        .spawn();
    home.wait_for_events("ready v1", 2);
    running.wait_for_log("listed in --unsafe-skip-upgrades");
    running.signal(Signal::SIGTERM);
    running.wait().assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
    assert_eq!(home.backups().len(), 1);
}

#[test]
fn restores_data_but_never_the_signing_state() {
    let home = upgraded();
    let out = home
        .cosmovisor(["rollback", "--to", "genesis", "--restore-data", "--yes"])
        .run();
    out.assert_code(0)
        .stdout_contains("priv_validator_state.json is never rolled back")
        .stdout_contains("Kept the current data/priv_validator_state.json");
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
    assert_eq!(read(&home.data().join("state.db")), "old", "{out}");
    assert_eq!(
        read(&home.data().join("priv_validator_state.json")),
        r#"{"height":"2"}"#,
        "the signing state is the current one"
    );
    assert!(!home.data().join("written-by-v2").exists());
    // The backup was taken with the plan in data/: it is moved aside in the restored data/ too.
    assert!(!home.data().join("upgrade-info.json").exists(), "{out}");
    assert!(home.data().join("upgrade-info.json.rolled-back").is_file());
    let kept = rolled_back_dirs(&home);
    assert_eq!(kept.len(), 1, "{out}");
    assert_eq!(read(&kept[0].join("state.db")), "new");
    assert_eq!(read(&kept[0].join("written-by-v2")), "x");
    assert!(!home.path().join(".data.restore-partial").exists());
    assert_eq!(home.backups().len(), 1, "the backup itself is kept");
}

#[test]
fn refused_while_a_supervisor_runs() {
    let home = upgraded();
    let running = home.cosmovisor(["run", "start"]).spawn();
    home.wait_for_events("ready v2", 2);
    let out = home.cosmovisor(["rollback", "--yes"]).run();
    out.assert_code(8);
    assert_eq!(
        out.errors(),
        [format!(
            "a cosmovisor supervises this home ({} is locked by pid {}): stop it first (for example `systemctl stop cosmovisor`)",
            home.root().join("supervisor.lock").display(),
            running.pid
        )],
        "{out}"
    );
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
    running.signal(Signal::SIGTERM);
    running.wait().assert_code(0);
}

#[test]
fn needs_yes_without_a_terminal() {
    let home = upgraded();
    let out = home.cosmovisor(["rollback", "--restore-data"]).run();
    out.assert_code(2);
    assert_eq!(
        out.errors(),
        ["rollback changes the node's binary and data: confirm on a terminal or pass --yes"],
        "{out}"
    );
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
    assert_eq!(read(&home.data().join("state.db")), "new");
}

#[test]
fn nothing_before_genesis() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().exit(0));
    home.set_current("genesis");
    let out = home.cosmovisor(["rollback", "--yes"]).run();
    out.assert_code(2);
    assert_eq!(
        out.errors(),
        ["current points at genesis: there is no earlier version to roll back to"]
    );
    let out = home.cosmovisor(["rollback", "--yes", "--to", "v7"]).run();
    out.assert_code(2);
    assert_eq!(
        out.errors(),
        [format!(
            "--to v7: no such version (expected genesis or a folder in {})",
            home.root().join("upgrades").display()
        )]
    );
}

/// Field 22 of /proc/<pid>/stat, as the pid file records it.
fn start_time(pid: u32) -> String {
    let stat = read(&PathBuf::from(format!("/proc/{pid}/stat")));
    let after_name = &stat[stat.rfind(')').expect("stat has a name") + 1..];
    after_name
        .split_whitespace()
        .nth(19)
        .expect("start time")
        .to_owned()
}

#[test]
fn refused_while_the_daemon_runs_or_an_upgrade_is_under_way() {
    let home = upgraded();
    // A live process recorded as the daemon (this test process: same pid and start time).
    let pid = std::process::id();
    let boot_id = read(&PathBuf::from("/proc/sys/kernel/random/boot_id"));
    fs::write(
        home.root().join(".daemon.pid"),
        format!("{pid} {} {}\n", start_time(pid), boot_id.trim()),
    )
    .expect("write pid file");
    let out = home.cosmovisor(["rollback", "--yes"]).run();
    out.assert_code(8);
    assert_eq!(
        out.errors(),
        [format!(
            "the daemon started by cosmovisor is still running (pid {pid}): stop it first"
        )],
        "{out}"
    );
    // A stale pid file (another start time) does not count.
    fs::write(home.root().join(".daemon.pid"), format!("{pid} 1\n")).expect("write pid file");
    let journal = home.root().join("upgrade-journal.json");
    fs::write(
        &journal,
        r#"{"format":1,"plan":{"name":"v3","raw_name":"v3","height":90,"info":""},"phase":"stopped","started_at":"2026-11-26T07:00:00Z"}"#,
    )
    .expect("write journal");
    let out = home.cosmovisor(["rollback", "--yes"]).run();
    out.assert_code(8);
    assert_eq!(
        out.errors(),
        [format!(
            "upgrade v3 at height 90 is under way ({}): start cosmovisor to finish it, or remove the journal to abandon it, then roll back",
            journal.display()
        )],
        "{out}"
    );
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
}

/// `sudo cosmovisor rollback --restore-data` of a backup holding a `4755` file the node's user
/// left there: the restored file has no setuid bit (it would be a root shell), with a warning.
#[test]
fn restoring_data_never_restores_a_setuid_bit() {
    use std::os::unix::fs::PermissionsExt;
    let home = upgraded();
    let backup = home.path().join(&home.backups()[0]);
    fs::write(backup.join("shell"), "#!/bin/sh\n").expect("test setup");
    fs::set_permissions(backup.join("shell"), fs::Permissions::from_mode(0o4755))
        .expect("test setup");
    let out = home
        .cosmovisor(["rollback", "--to", "genesis", "--restore-data", "--yes"])
        .run();
    out.assert_code(0);
    let mode = fs::metadata(home.data().join("shell"))
        .expect("restored")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755, "{out}");
    out.stderr_contains("setuid/setgid bits were left out of the copy");
}
