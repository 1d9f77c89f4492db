//! Failures never orphan the node and there is never a second supervisor: a journal that cannot
//! be written still stops the daemon gracefully, the lock survives `rm`, the daemon's
//! descendants die with it, and a stale pid file from another boot is never acted on.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{FakeDaemon, Home, Tmpfs};

fn alive(pid: i32) -> bool {
    // A zombie has been killed already; only its parent's wait is missing.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = &stat[stat.rfind(')')? + 1..];
            after_name.split_whitespace().next().map(|s| s != "Z")
        })
        .unwrap_or(false)
}

fn read_pid(path: &Path) -> i32 {
    fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

#[test]
fn a_journal_that_cannot_be_written_still_stops_and_reaps_the_daemon() {
    let home = Home::new("simd");
    let Some(tmpfs) = Tmpfs::mount(&home.root(), "1m") else {
        return;
    };
    home.genesis(
        &FakeDaemon::new()
            .ready("v1")
            .raw(r"trap 'ev TERM; sleep 0.3; ev stopped; exit 0' TERM")
            .raw(r#"echo $$ > "$DAEMON_HOME/daemon-pid""#)
            .request_upgrade("v2", 20)
            .block(),
    )
    .upgrade("v2", &FakeDaemon::new().ready("v2").block());
    tmpfs.fill();
    let out = home.cosmovisor(["run", "start"]).run();
    out.assert_code(5);
    // The daemon had finished stopping before cosmovisor exited: it was stopped and reaped,
    // not left to a parent-death signal.
    assert_eq!(home.events(), ["ready v1", "TERM", "stopped"], "{out}");
    assert!(!alive(read_pid(&home.path().join("daemon-pid"))));
    let errors = out.errors();
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].starts_with("upgrade v2 at height 20 not started: the node was stopped")
            && errors[0].contains("upgrade-journal.json")
            && errors[0].contains("No space left"),
        "{out}"
    );
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
}

#[test]
fn deleting_the_lock_file_does_not_make_a_second_supervisor() {
    let home = Home::new("simd");
    home.genesis(
        &FakeDaemon::new()
            .raw(r#"if [ "$1" = query ]; then echo "query answered"; exit 0; fi"#)
            .ready("v1")
            .block(),
    );
    let first = home.cosmovisor(["run", "start"]).spawn();
    home.wait_for_event("ready v1");
    fs::remove_file(home.root().join("supervisor.lock")).unwrap();
    // A second `run start` finds the first through its lock on the folder and refuses.
    let second = home.cosmovisor(["run", "start"]).run();
    second.assert_code(8);
    assert!(
        second.errors()[0].starts_with("another cosmovisor already supervises this home"),
        "{second}"
    );
    // Other commands still pass through beside the running node.
    home.cosmovisor(["run", "query"])
        .run()
        .assert_code(0)
        .stdout_contains("query answered")
        .stderr_contains(
            "another cosmovisor supervises this home; running the command without upgrade handling",
        );
    let rollback = home.cosmovisor(["rollback", "--yes"]).run();
    rollback.assert_code(8);
    assert!(
        rollback.errors()[0].starts_with("a cosmovisor supervises this home"),
        "{rollback}"
    );
    assert!(
        rollback.errors()[0].contains(&format!("locked by pid {}", first.pid)),
        "{rollback}"
    );
    assert_eq!(home.events(), ["ready v1"], "one node ran");
    first.signal(Signal::SIGTERM);
    first.wait().assert_code(0);
}

#[test]
fn the_daemons_descendants_do_not_outlive_it() {
    let home = Home::new("simd");
    home.genesis(
        &FakeDaemon::new()
            .ready("v1")
            .raw(r#"sh -c 'trap "" TERM; exec sleep 3600' &"#)
            .raw(r#"echo $! > "$DAEMON_HOME/grandchild-pid""#)
            .event("spawned")
            .block(),
    );
    let out = home
        .cosmovisor(["run", "start"])
        .env("DAEMON_SHUTDOWN_GRACE", "300ms")
        .stop_after(&home, "spawned");
    let grandchild = read_pid(&home.path().join("grandchild-pid"));
    let survived = alive(grandchild);
    let _ = kill(Pid::from_raw(grandchild), Signal::SIGKILL);
    out.assert_code(0);
    assert!(
        !survived,
        "the daemon's child {grandchild} outlived cosmovisor\n{out}"
    );
    assert!(
        !Path::new(&format!("/proc/{grandchild}")).exists(),
        "the daemon's child {grandchild} was not reaped"
    );
}

/// Field 22 of /proc/<pid>/stat, as the pid file records it.
fn start_time(pid: u32) -> String {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    after_name.split_whitespace().nth(19).unwrap().to_owned()
}

#[test]
fn a_pid_file_from_another_boot_is_never_signalled() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block());
    let mut unrelated = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = unrelated.id();
    fs::write(
        home.root().join(".daemon.pid"),
        format!(
            "{pid} {} 00000000-0000-4000-8000-000000000000\n",
            start_time(pid)
        ),
    )
    .unwrap();
    let out = home
        .cosmovisor(["run", "start"])
        .stop_after(&home, "ready v1");
    let untouched = unrelated.try_wait().unwrap().is_none();
    let _ = unrelated.kill();
    let _ = unrelated.wait();
    out.assert_code(0);
    assert!(
        untouched,
        "cosmovisor signalled an unrelated process\n{out}"
    );
    out.stderr_lacks("daemon started by a previous cosmovisor is still running");
}

/// The fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, …
fn stat_fields(pid: i32) -> Vec<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    after_name
        .split_whitespace()
        .skip(1)
        .take(2)
        .map(|field| field.parse().unwrap())
        .collect()
}

/// (parent, process group) of the daemon that recorded its pid in `daemon-pid`.
fn daemon_parent_and_group(home: &Home) -> (i32, i32) {
    let daemon = read_pid(&home.path().join("daemon-pid"));
    let fields = stat_fields(daemon);
    (fields[0], fields[1])
}

fn daemon_recording_its_pid() -> FakeDaemon {
    FakeDaemon::new()
        .raw(r#"echo $$ > "$DAEMON_HOME/daemon-pid""#)
        .ready("v1")
        .block()
}

#[test]
fn without_a_terminal_the_daemon_leads_its_own_group_and_gets_ctrl_c_once() {
    let home = Home::new("simd");
    home.genesis(&daemon_recording_its_pid());
    let running = home.cosmovisor(["run", "start"]).spawn();
    home.wait_for_event("ready v1");
    let daemon = read_pid(&home.path().join("daemon-pid"));
    let (parent, group) = daemon_parent_and_group(&home);
    assert_eq!(parent, running.pid.as_raw());
    assert_eq!(group, daemon, "the daemon leads its own process group");
    // A signal to cosmovisor's whole group (what a terminal's Ctrl-C does) reaches the daemon
    // only through our forwarding: once.
    nix::sys::signal::killpg(running.pid, Signal::SIGINT).unwrap();
    let out = running.wait();
    out.assert_code(0);
    assert_eq!(home.events(), ["ready v1", "INT"], "{out}");
}

#[test]
fn on_a_terminal_the_daemon_shares_the_foreground_group_and_ctrl_c_is_not_forwarded() {
    let home = Home::new("simd");
    home.genesis(&daemon_recording_its_pid());
    let mut command = format!("exec {}", crate::support::COSMOVISOR);
    command.push_str(" run start");
    // `script` runs the command on a new pseudo-terminal; bytes on its stdin are typed there.
    let mut script = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env_clear()
        .envs(home.env())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .expect("run script (util-linux)");
    home.wait_for_event("ready v1");
    let (parent, group) = daemon_parent_and_group(&home);
    assert_eq!(
        group,
        stat_fields(parent)[1],
        "the daemon shares cosmovisor's (foreground) group"
    );
    std::io::Write::write_all(script.stdin.as_mut().unwrap(), b"\x03").unwrap();
    crate::support::wait_until("cosmovisor to exit", crate::support::DEADLINE, || {
        script.try_wait().unwrap().is_some()
    });
    let status = script.wait().unwrap();
    assert_eq!(status.code(), Some(0), "events: {:?}", home.events());
    assert_eq!(home.events(), ["ready v1", "INT"]);
}

#[test]
fn the_daemons_descendants_do_not_outlive_an_upgrade() {
    let home = Home::new("simd");
    home.genesis(
        &FakeDaemon::new()
            .ready("v1")
            .raw(r#"sh -c 'trap "" TERM; exec sleep 3600' &"#)
            .raw(r#"echo $! > "$DAEMON_HOME/grandchild-pid""#)
            .request_upgrade("v2", 20)
            .block(),
    )
    .upgrade("v2", &crate::support::upgraded_daemon("v2", &[0]));
    let running = home
        .cosmovisor(["run", "start"])
        .env("DAEMON_SHUTDOWN_GRACE", "300ms")
        .env("UNSAFE_SKIP_BACKUP", "true")
        .spawn();
    home.wait_for_event("ready v2");
    let grandchild = read_pid(&home.path().join("grandchild-pid"));
    let survived = alive(grandchild);
    let _ = kill(Pid::from_raw(grandchild), Signal::SIGKILL);
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0);
    assert!(
        !survived,
        "v1's child {grandchild} outlived the upgrade\n{out}"
    );
}

/// A `pre-upgrade` and a `COSMOVISOR_CUSTOM_PREUPGRADE` script that fork into the background
/// (one child that ignores SIGTERM): once each hook exits, what it left is stopped and reaped
/// before the new node starts, with a warning naming how many.
#[test]
fn processes_a_hook_leaves_behind_do_not_run_beside_the_new_node() {
    let home = Home::new("simd");
    home.genesis(&crate::support::v1_requesting("v2", 30)).upgrade(
        "v2",
        &FakeDaemon::new()
            .raw(r#"if [ "${1:-}" = pre-upgrade ]; then sleep 300 & echo $! > "$DAEMON_HOME/pre-upgrade-child"; sh -c 'trap "" TERM; exec sleep 300' >/dev/null 2>&1 & echo $! > "$DAEMON_HOME/stubborn-child"; exit 0; fi"#)
            .ready("v2")
            .block(),
    );
    let script = home.root().join("custom.sh");
    fs::write(
        &script,
        "#!/bin/sh\nsleep 300 >/dev/null 2>&1 &\necho $! > \"$DAEMON_HOME/custom-child\"\n",
    )
    .unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let running = home
        .cosmovisor(["run", "start"])
        .env("COSMOVISOR_CUSTOM_PREUPGRADE", "custom.sh")
        .spawn();
    home.wait_for_event("ready v2");
    // The hooks ended before the new node started: what they left is gone by now, not a zombie.
    for file in ["pre-upgrade-child", "stubborn-child", "custom-child"] {
        let pid = read_pid(&home.path().join(file));
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{file} {pid} still exists beside the new node:\n{}",
            running.stderr_so_far()
        );
    }
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0);
    out.stderr_contains("the hook left 2 process(es) running in its process group; stopped them (SIGTERM, then SIGKILL after 2s)")
        .stderr_contains("the hook left 1 process(es) running in its process group");
}
