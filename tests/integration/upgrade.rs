//! Upgrades end to end: detection from the file and from the daemon's output, the steps in order,
//! their failures, and recovery from a cosmovisor killed at every phase.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{FakeDaemon, Home, Tmpfs};

use crate::support::{upgraded_daemon as daemon, v1_requesting};

/// genesis → v2 at 10 → v3 at 20, for tests of two upgrades in one run.
fn chain_of_three(home: &Home) {
    home.genesis(&v1_requesting("v2", 10))
        .upgrade(
            "v2",
            &FakeDaemon::new()
                .pre_upgrade("v2", &[0])
                .ready("v2")
                .request_upgrade("v3", 20)
                .block(),
        )
        .upgrade("v3", &daemon("v3", &[0]));
}

fn events(list: &[&str]) -> Vec<String> {
    list.iter().map(|e| (*e).to_owned()).collect()
}

fn read(path: &std::path::Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs cosmovisor until the daemon tagged `tag` is ready, then stops it with SIGTERM.
fn run_until_ready(home: &Home, tag: &str) -> crate::support::Output {
    home.cosmovisor(["run", "start"])
        .stop_after(home, &format!("ready {tag}"))
}

#[test]
fn upgrades_when_the_plan_file_appears() {
    let home = Home::new("simd");
    fs::write(home.data().join("state.db"), "blocks").unwrap();
    home.genesis(&v1_requesting("v2", 49))
        .upgrade("v2", &daemon("v2", &[0]));
    let out = run_until_ready(&home, "v2");
    out.assert_code(0);
    assert_eq!(
        home.events(),
        events(&["ready v1", "TERM", "pre-upgrade v2", "ready v2", "TERM"]),
        "{out}"
    );
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
    assert_eq!(
        read(&home.upgrade_dir("v2").join("upgrade-info.json")),
        r#"{"name":"v2","time":"0001-01-01T00:00:00Z","height":49}"#
    );
    let backups = home.backups();
    assert_eq!(backups.len(), 1, "{out}");
    assert_eq!(
        read(&home.path().join(&backups[0]).join("state.db")),
        "blocks"
    );
    assert!(
        home.path()
            .join(&backups[0])
            .join("upgrade-info.json")
            .is_file()
    );
    assert!(!home.root().join("upgrade-journal.json").exists());
    for line in [
        "daemon shutting down in an attempt to restart",
        "starting to take backup of data directory",
        "backup completed",
        "pre-upgrade successful. continuing the upgrade.",
        "upgrade detected, relaunching",
    ] {
        out.stderr_contains(line);
    }
}

#[test]
fn upgrades_when_the_daemon_keeps_running_after_the_plan_and_line() {
    // Panacea's daemon recovers from the upgrade panic and keeps running. The line alone decides
    // nothing (tests/integration/hostile_output.rs); the plan x/upgrade wrote before it does.
    let home = Home::new("panacead");
    home.genesis(
        &FakeDaemon::new()
            .ready("v1")
            .request_upgrade("v2.0.0", 30)
            .upgrade_line("v2.0.0", 30, "{}")
            .block(),
    )
    .upgrade("v2.0.0", &daemon("v2", &[1]));
    let out = run_until_ready(&home, "v2");
    out.assert_code(0);
    out.stderr_contains("pre-upgrade command does not exist. continuing the upgrade.");
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2.0.0"));
    assert!(read(&home.upgrade_dir("v2.0.0").join("upgrade-info.json")).contains(r#""height":30"#));
}

#[test]
fn upgrades_when_the_daemon_exits_after_writing_the_plan() {
    let home = Home::new("simd");
    home.genesis(
        &FakeDaemon::new()
            .request_upgrade("v2", 5)
            .say_err("panic: UPGRADE NEEDED")
            .exit(2),
    )
    .upgrade("v2", &daemon("v2", &[0]));
    run_until_ready(&home, "v2").assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
}

#[test]
fn a_restart_after_the_upgrade_does_nothing_twice() {
    let home = Home::new("simd");
    home.genesis(&v1_requesting("v2", 49))
        .upgrade("v2", &daemon("v2", &[0]));
    run_until_ready(&home, "v2").assert_code(0);
    let before = home.events().len();
    run_until_ready(&home, "v2").assert_code(0);
    assert_eq!(home.events()[before..], events(&["ready v2", "TERM"]));
    assert_eq!(home.backups().len(), 1);
}

#[test]
fn applies_a_plan_pending_at_start_up() {
    let home = Home::new("simd");
    home.genesis(&daemon("v1", &[0]))
        .upgrade("v2", &daemon("v2", &[0]));
    home.write_plan("v2", 10);
    run_until_ready(&home, "v2").assert_code(0);
    assert_eq!(
        home.events(),
        events(&["pre-upgrade v2", "ready v2", "TERM"]),
        "genesis never started"
    );
}

#[test]
fn plan_names_are_lower_cased_unless_disabled() {
    let home = Home::new("simd");
    home.genesis(&v1_requesting("V2-Rho", 7))
        .upgrade("v2-rho", &daemon("v2", &[0]));
    run_until_ready(&home, "v2").assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2-rho"));

    let home = Home::new("simd");
    home.genesis(&v1_requesting("V2-Rho", 7))
        .upgrade("V2-Rho", &daemon("v2", &[0]));
    home.cosmovisor(["run", "start"])
        .env("COSMOVISOR_DISABLE_RECASE", "true")
        .stop_after(&home, "ready v2")
        .assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/V2-Rho"));
}

#[test]
fn exits_after_the_switch_when_restart_is_off() {
    let home = Home::new("simd");
    home.genesis(&v1_requesting("v2", 3))
        .upgrade("v2", &daemon("v2", &[0]));
    let out = home
        .cosmovisor(["run", "start"])
        .env("DAEMON_RESTART_AFTER_UPGRADE", "false")
        .run();
    out.assert_code(0).stderr_contains(
        "DAEMON_RESTART_AFTER_UPGRADE is off. Verify new upgrade and start cosmovisor again.",
    );
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
    assert!(!home.events().contains(&"ready v2".to_owned()));
}

#[test]
fn pre_upgrade_is_retried_on_31_up_to_the_limit() {
    let home = Home::new("simd");
    home.genesis(&v1_requesting("v2", 3))
        .upgrade("v2", &daemon("v2", &[31, 31, 0]));
    let out = home
        .cosmovisor(["run", "start"])
        .env("DAEMON_PREUPGRADE_MAX_RETRIES", "2")
        .stop_after(&home, "ready v2");
    out.assert_code(0)
        .stderr_contains("pre-upgrade command failed. retrying");
    assert_eq!(
        home.events()
            .iter()
            .filter(|e| *e == "pre-upgrade v2")
            .count(),
        3
    );
}

#[test]
fn failed_pre_upgrade_leaves_current_on_the_old_version() {
    for (codes, retries, message) in [
        (vec![30], "0", "pre-upgrade command failed : exit status 30"),
        (vec![7], "0", "pre-upgrade command failed : exit status 7"),
        (
            vec![31],
            "1",
            "pre-upgrade command failed. reached max attempt of retries - 1",
        ),
    ] {
        let home = Home::new("simd");
        home.genesis(&v1_requesting("v2", 3))
            .upgrade("v2", &daemon("v2", &codes));
        let out = home
            .cosmovisor(["run", "start"])
            .env("DAEMON_PREUPGRADE_MAX_RETRIES", retries)
            .run();
        out.assert_code(5);
        assert_eq!(
            out.errors(),
            vec![format!("upgrade \"v2\": {message}")],
            "{out}"
        );
        assert_eq!(home.current_target(), PathBuf::from("genesis"), "{out}");
        assert_eq!(home.backups().len(), 1);
        // The next start resumes at the pre-upgrade step: no second backup, genesis not started.
        fs::write(home.path().join("pre-upgrade-calls"), "100").unwrap();
        home.upgrade("v2", &daemon("v2", &[0]));
        let before = home.events().len();
        run_until_ready(&home, "v2").assert_code(0);
        assert_eq!(
            home.events()[before..],
            events(&["pre-upgrade v2", "ready v2", "TERM"])
        );
        assert_eq!(home.backups().len(), 1);
    }
}

#[test]
fn custom_pre_upgrade_script_runs_in_home_with_name_and_height() {
    let home = Home::new("simd");
    home.genesis(&v1_requesting("V2", 12))
        .upgrade("v2", &daemon("v2", &[0]));
    let script = home.root().join("hook.sh");
    fs::write(
        &script,
        "#!/bin/sh\ntouch \"upgrade_name_$1_height_$2\"\necho hook-output\n",
    )
    .unwrap();
    let out = home
        .cosmovisor(["run", "start"])
        .env("COSMOVISOR_CUSTOM_PREUPGRADE", "hook.sh")
        .stop_after(&home, "ready v2");
    out.assert_code(0)
        .stderr_contains("COSMOVISOR_CUSTOM_PREUPGRADE result");
    assert!(
        home.path().join("upgrade_name_V2_height_12").is_file(),
        "{out}"
    );
}

#[test]
fn failing_custom_script_stops_the_upgrade_before_the_switch() {
    let home = Home::new("simd");
    home.genesis(&v1_requesting("v2", 12))
        .upgrade("v2", &daemon("v2", &[0]));
    fs::write(home.root().join("hook.sh"), "#!/bin/sh\nexit 4\n").unwrap();
    let out = home
        .cosmovisor(["run", "start"])
        .env("COSMOVISOR_CUSTOM_PREUPGRADE", "hook.sh")
        .run();
    out.assert_code(5);
    assert_eq!(
        out.errors(),
        vec![format!(
            "upgrade \"v2\": COSMOVISOR_CUSTOM_PREUPGRADE {}: exited with exit status 4",
            home.root().join("hook.sh").display()
        )]
    );
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
    assert!(!home.events().contains(&"pre-upgrade v2".to_owned()));
}

#[test]
fn skipped_heights_are_not_applied() {
    let home = Home::new("simd");
    home.genesis(
        &FakeDaemon::new()
            .ready("v1")
            .request_upgrade("v2", 20)
            .event("requested")
            .block(),
    )
    .upgrade("v2", &daemon("v2", &[0]));
    let running = home
        .cosmovisor(["run", "start", "--unsafe-skip-upgrades", "19", "20"])
        .spawn();
    home.wait_for_event("requested");
    running.wait_for_log("listed in --unsafe-skip-upgrades");
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0)
        .stderr_contains("listed in --unsafe-skip-upgrades");
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
    assert!(home.backups().is_empty());
}

#[test]
fn missing_binary_fails_before_the_backup_and_resumes_later() {
    let home = Home::new("simd");
    fs::write(home.data().join("state.db"), "blocks").unwrap();
    home.genesis(&v1_requesting("v2", 49));
    let out = home.cosmovisor(["run", "start"]).run();
    out.assert_code(5);
    let bin = home.upgrade_dir("v2").join("bin/simd");
    assert_eq!(
        out.errors(),
        vec![format!(
            "upgrade \"v2\" at height 49 needs its binary at {}: put the new simd binary there (chmod 755) and start cosmovisor again",
            bin.display()
        )]
    );
    assert!(
        home.backups().is_empty(),
        "no backup before the binary is there"
    );
    assert_eq!(read(&home.data().join("state.db")), "blocks");
    assert_eq!(home.current_target(), PathBuf::from("genesis"));

    // Started again without the binary: the same error at once, genesis not started again.
    let starts = home.events().iter().filter(|e| *e == "ready v1").count();
    home.cosmovisor(["run", "start"]).run().assert_code(5);
    assert_eq!(
        home.events().iter().filter(|e| *e == "ready v1").count(),
        starts
    );

    home.upgrade("v2", &daemon("v2", &[0]));
    run_until_ready(&home, "v2").assert_code(0);
    assert_eq!(home.backups().len(), 1);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
}

#[test]
fn a_non_executable_upgrade_binary_is_made_executable() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new("simd");
    home.genesis(&v1_requesting("v2", 4))
        .upgrade("v2", &daemon("v2", &[0]));
    let bin = home.upgrade_dir("v2").join("bin/simd");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o644)).unwrap();
    run_until_ready(&home, "v2")
        .assert_code(0)
        .stderr_contains("adding a+x");
    assert_eq!(
        fs::metadata(&bin).unwrap().permissions().mode() & 0o111,
        0o111
    );
}

#[test]
fn hostile_plan_names_never_leave_upgrades() {
    // A plan named `..` can never be applied: the node is stopped, exit 5 (see hostile_files).
    let home = Home::new("simd");
    home.genesis(
        &FakeDaemon::new()
            .ready("v1")
            .request_upgrade("..", 4)
            .block(),
    );
    let out = home.cosmovisor(["run", "start"]).run();
    out.assert_code(5);
    assert!(
        out.errors()[0].contains("would name a folder outside upgrades/"),
        "{out}"
    );
    assert_eq!(home.events(), ["ready v1", "TERM"]);
    assert_eq!(home.current_target(), PathBuf::from("genesis"));

    let home = Home::new("simd");
    home.genesis(&v1_requesting("../x", 4));
    let out = home.cosmovisor(["run", "start"]).run();
    out.assert_code(5);
    assert!(
        out.errors()[0].contains("upgrades/..%2Fx/bin/simd"),
        "{out}"
    );
    assert!(!home.root().join("x").exists());
}

#[test]
fn malformed_plan_is_logged_and_read_again() {
    let home = Home::new("simd");
    home.genesis(
        &FakeDaemon::new()
            .ready("v1")
            .raw(r#"printf '{"name":"v2","hei' > "$DAEMON_HOME/data/upgrade-info.json""#)
            .event("partial")
            .raw(r#"while [ ! -f "$DAEMON_HOME/go" ]; do sleep 0.05; done"#)
            .request_upgrade("v2", 8)
            .block(),
    )
    .upgrade("v2", &daemon("v2", &[0]));
    let running = home.cosmovisor(["run", "start"]).spawn();
    home.wait_for_event("partial");
    running.wait_for_log("is not a valid plan (yet)");
    fs::write(home.path().join("go"), "").unwrap();
    home.wait_for_event("ready v2");
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0)
        .stderr_contains("is not a valid plan (yet)");
}

#[test]
fn a_daemon_that_ignores_sigterm_is_killed_after_the_grace() {
    let home = Home::new("simd");
    home.genesis(
        &FakeDaemon::new()
            .ready_ignoring_term("v1")
            .request_upgrade("v2", 3)
            .block(),
    )
    .upgrade("v2", &daemon("v2", &[0]));
    let start = Instant::now();
    let running = home
        .cosmovisor(["run", "start"])
        .env("DAEMON_SHUTDOWN_GRACE", "700ms")
        .spawn();
    home.wait_for_event("TERM");
    let term_seen = start.elapsed();
    home.wait_for_event("ready v2");
    assert!(
        start.elapsed() >= term_seen + Duration::from_millis(600),
        "waited the grace"
    );
    running.signal(Signal::SIGKILL);
    let out = running.wait();
    out.stderr_contains("DAEMON_SHUTDOWN_GRACE exceeded, killing app");
}

#[test]
fn a_daemon_that_flushes_in_time_is_not_killed() {
    let home = Home::new("simd");
    home.genesis(
        &FakeDaemon::new()
            .ready("v1")
            .raw(r"trap 'ev TERM; sleep 0.3; ev flushed; exit 0' TERM")
            .request_upgrade("v2", 3)
            .block(),
    )
    .upgrade("v2", &daemon("v2", &[0]));
    let out = run_until_ready(&home, "v2");
    out.assert_code(0)
        .stderr_contains("app exited normally")
        .stderr_lacks("killing app");
    assert_eq!(home.events()[..3], events(&["ready v1", "TERM", "flushed"]));
}

#[test]
fn restart_delay_is_waited_before_the_backup() {
    let home = Home::new("simd");
    home.genesis(&v1_requesting("v2", 3))
        .upgrade("v2", &daemon("v2", &[0]));
    let start = Instant::now();
    let running = home
        .cosmovisor(["run", "start"])
        .env("DAEMON_RESTART_DELAY", "800ms")
        .spawn();
    home.wait_for_event("TERM");
    let stopped = start.elapsed();
    home.wait_for_event("ready v2");
    assert!(start.elapsed() >= stopped + Duration::from_millis(800));
    running.signal(Signal::SIGTERM);
    running
        .wait()
        .assert_code(0)
        .stderr_contains("waiting DAEMON_RESTART_DELAY");
}

#[test]
fn two_upgrades_in_one_run_make_two_backups() {
    let home = Home::new("simd");
    chain_of_three(&home);
    run_until_ready(&home, "v3").assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v3"));
    let backups = home.backups();
    assert_eq!(backups.len(), 2, "{backups:?}");
    assert!(
        backups[1].ends_with(".2"),
        "same-day backups are never merged: {backups:?}"
    );
}

#[test]
fn a_stale_lower_plan_never_downgrades() {
    let home = Home::new("simd");
    home.genesis(&daemon("v1", &[0]))
        .upgrade("v2", &daemon("v2", &[0]))
        .upgrade("v3", &daemon("v3", &[0]));
    // The node runs v3 (switched by hand, record says height 30); the data file still has v2.
    home.set_current("upgrades/v3");
    fs::write(
        home.upgrade_dir("v3").join("upgrade-info.json"),
        r#"{"name":"v3","time":"0001-01-01T00:00:00Z","height":30}"#,
    )
    .unwrap();
    home.write_plan("v2", 20);
    run_until_ready(&home, "v3").assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v3"));
    assert!(home.backups().is_empty());
}

#[test]
fn sigterm_during_the_upgrade_stops_and_the_next_start_resumes() {
    let home = Home::new("simd");
    home.genesis(&v1_requesting("v2", 3))
        .upgrade("v2", &daemon("v2", &[0]));
    fs::write(
        home.root().join("hook.sh"),
        "#!/bin/sh\nprintf 'hook\\n' >> \"$DAEMON_HOME/events\"\ntrap 'exit 9' TERM\nwhile :; do sleep 30 >/dev/null 2>&1 & wait $!; done\n",
    )
    .unwrap();
    let out = home
        .cosmovisor(["run", "start"])
        .env("COSMOVISOR_CUSTOM_PREUPGRADE", "hook.sh")
        .stop_after(&home, "hook");
    out.assert_code(143)
        .stderr_contains("upgrade interrupted; it resumes on the next start");
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
    assert!(home.root().join("upgrade-journal.json").is_file());
    fs::write(home.root().join("hook.sh"), "#!/bin/sh\nexit 0\n").unwrap();
    home.cosmovisor(["run", "start"])
        .env("COSMOVISOR_CUSTOM_PREUPGRADE", "hook.sh")
        .stop_after(&home, "ready v2")
        .assert_code(0);
    assert_eq!(home.backups().len(), 1, "the backup is not taken again");
    assert_eq!(
        home.events().iter().filter(|e| *e == "ready v1").count(),
        1,
        "genesis not restarted"
    );
}

#[test]
fn kill_9_at_every_phase_converges() {
    for point in [
        "stopped",
        "backing_up",
        "backup_copied",
        "backed_up",
        "custom_pre_upgrade_done",
        "pre_upgrade_done",
        "switched",
    ] {
        let home = Home::new("simd");
        fs::create_dir_all(home.data().join("application.db")).unwrap();
        fs::write(
            home.data().join("application.db/000001.ldb"),
            vec![3u8; 200_000],
        )
        .unwrap();
        home.genesis(&v1_requesting("v2", 49))
            .upgrade("v2", &daemon("v2", &[0]));
        fs::write(
            home.root().join("hook.sh"),
            "#!/bin/sh\nprintf 'hook\\n' >> \"$DAEMON_HOME/events\"\n",
        )
        .unwrap();
        let crashed = home
            .cosmovisor(["run", "start"])
            .env("COSMOVISOR_CUSTOM_PREUPGRADE", "hook.sh")
            .env("COSMOVISOR_FAULT_AT", point)
            .run();
        crashed.assert_signal(9);
        let out = {
            home.cosmovisor(["run", "start"])
                .env("COSMOVISOR_CUSTOM_PREUPGRADE", "hook.sh")
                .stop_after(&home, "ready v2")
        };
        out.assert_code(0);
        let context = format!("fault at {point}\n{out}");
        assert_eq!(
            home.current_target(),
            PathBuf::from("upgrades/v2"),
            "{context}"
        );
        let backups = home.backups();
        assert_eq!(
            backups.len(),
            1,
            "exactly one complete backup, no partial: {backups:?} {context}"
        );
        assert_eq!(
            fs::read(
                home.path()
                    .join(&backups[0])
                    .join("application.db/000001.ldb")
            )
            .unwrap(),
            vec![3u8; 200_000],
            "{context}"
        );
        assert_eq!(
            fs::read(home.data().join("application.db/000001.ldb")).unwrap(),
            vec![3u8; 200_000]
        );
        let count = |e: &str| home.events().iter().filter(|x| *x == e).count();
        assert_eq!(
            count("pre-upgrade v2"),
            1,
            "pre-upgrade runs once: {context}"
        );
        assert_eq!(count("hook"), 1, "custom hook runs once: {context}");
        assert_eq!(
            count("ready v1"),
            1,
            "the old binary is never started again: {context}"
        );
        assert!(
            !home.root().join("upgrade-journal.json").exists(),
            "{context}"
        );
    }
}

#[test]
fn backup_keep_retains_only_the_newest_backups() {
    let home = Home::new("simd");
    chain_of_three(&home);
    home.cosmovisor(["run", "start"])
        .env("COSMOVISOR_BACKUP_KEEP", "1")
        .stop_after(&home, "ready v3")
        .assert_code(0)
        .stderr_contains("removed old backup (COSMOVISOR_BACKUP_KEEP)");
    let backups = home.backups();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert!(
        backups[0].ends_with(".2"),
        "the newest is kept: {backups:?}"
    );
}

#[test]
fn a_backup_that_cannot_fit_fails_before_writing_anything() {
    let home = Home::new("simd");
    let Some(_disk) = Tmpfs::mount(&home.path().join("small-disk"), "2m") else {
        return;
    };
    fs::write(home.data().join("big.ldb"), vec![1u8; 4 << 20]).unwrap();
    home.genesis(&v1_requesting("v2", 3))
        .upgrade("v2", &daemon("v2", &[0]));
    let backup_dir = home.path().join("small-disk");
    let out = home
        .cosmovisor(["run", "start"])
        .env("DAEMON_DATA_BACKUP_DIR", &backup_dir)
        .run();
    out.assert_code(5);
    let error = &out.errors()[0];
    assert!(
        error.contains(&format!(
            "not enough free space for the backup in {}: needs about",
            backup_dir.display()
        )),
        "{out}"
    );
    assert!(
        error.contains("data/ is 4.0MiB") && error.contains("free"),
        "{out}"
    );
    assert_eq!(
        fs::read_dir(&backup_dir).unwrap().count(),
        0,
        "nothing written"
    );
    assert_eq!(
        fs::read(home.data().join("big.ldb")).unwrap().len(),
        4 << 20
    );
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
}

#[test]
fn a_replaced_data_folder_is_still_watched() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block())
        .upgrade("v2", &daemon("v2", &[0]));
    let running = home
        .cosmovisor(["run", "start"])
        .env("COSMOVISOR_LOG_LEVEL", "debug")
        .spawn();
    home.wait_for_event("ready v1");
    running.wait_for_log("watching data/ with inotify");
    // An operator restores data/ from elsewhere while the node runs.
    fs::rename(home.data(), home.path().join("data.old")).unwrap();
    running.wait_for_log("data/ was removed or moved; polling until it is back");
    fs::create_dir(home.data()).unwrap();
    home.write_plan("v2", 9);
    home.wait_for_event("ready v2");
    running.signal(Signal::SIGTERM);
    running.wait().assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
}

#[test]
fn kill_9_while_the_node_shuts_down_resumes_after_it_is_gone() {
    let home = Home::new("simd");
    home.genesis(
        &FakeDaemon::new()
            .ready("v1")
            .raw("trap 'ev TERM; sleep 1; ev flushed; exit 0' TERM")
            .request_upgrade("v2", 7)
            .block(),
    )
    .upgrade("v2", &daemon("v2", &[0]));
    let running = home.cosmovisor(["run", "start"]).spawn();
    home.wait_for_event("TERM");
    running.signal(Signal::SIGKILL);
    drop(running.wait());
    // Started again while the old node still flushes: it must wait for it, then upgrade.
    let out = home
        .cosmovisor(["run", "start"])
        .stop_after(&home, "ready v2");
    out.assert_code(0)
        .stderr_contains("daemon started by a previous cosmovisor is still running");
    let events = home.events();
    let flushed = events.iter().position(|e| e == "flushed").unwrap();
    let pre_upgrade = events.iter().position(|e| e == "pre-upgrade v2").unwrap();
    assert!(
        flushed < pre_upgrade,
        "the old node finished before the upgrade went on: {events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| *e == "ready v1").count(),
        1,
        "{events:?}"
    );
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
    assert_eq!(home.backups().len(), 1);
}

/// `DAEMON_POLL_INTERVAL=8ms` works with Go: it must not stop a validator after the binary swap.
/// Below 10ms it is used as 10ms, with one warning.
#[test]
fn poll_interval_below_the_minimum_runs_and_upgrades_with_one_warning() {
    let home = Home::new("simd");
    home.genesis(&v1_requesting("v2", 49))
        .upgrade("v2", &daemon("v2", &[0]));
    let out = home
        .cosmovisor(["run", "start"])
        .env("DAEMON_POLL_INTERVAL", "8ms")
        .stop_after(&home, "ready v2");
    out.assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
    let warning = "DAEMON_POLL_INTERVAL: \"8ms\" is below the minimum of 10ms, polling every 10ms \
                   instead (set it to 10ms or more to silence this warning)";
    assert_eq!(out.stderr().matches(warning).count(), 1, "{out}");
}
