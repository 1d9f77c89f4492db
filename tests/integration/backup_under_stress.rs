//! Backups under stress: reflink clones on XFS, SIGTERM in the middle of a copy, and `kill -9`
//! of cosmovisor at random moments of an upgrade. Each trial ends in the state an uninterrupted
//! upgrade reaches: `current` on the new version, the daemon running it, `data/` intact, exactly
//! one complete backup.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{FakeDaemon, Home, skip_or_fail_in_ci, upgraded_daemon, v1_requesting};

fn v2() -> FakeDaemon {
    upgraded_daemon("v2", &[0])
}

/// A node-shaped `data/`: a few big table files and many small ones, deterministic content.
fn fill_data(data: &Path, big_files: usize, big_size: usize) {
    let db = data.join("application.db");
    fs::create_dir_all(&db).unwrap();
    for i in 0..big_files {
        let byte = u8::try_from(i % 251).unwrap();
        fs::write(db.join(format!("{:06}.ldb", i + 1)), vec![byte; big_size]).unwrap();
    }
    for i in 0..200 {
        fs::write(
            db.join(format!("small-{i}.log")),
            format!("record {i}\n").repeat(20),
        )
        .unwrap();
    }
    fs::write(db.join("CURRENT"), "MANIFEST-000001\n").unwrap();
    fs::write(
        data.join("priv_validator_state.json"),
        r#"{"height":"49","round":0,"step":3}"#,
    )
    .unwrap();
}

/// Every file under `dir` with its bytes, for comparing trees.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in fs::read_dir(&next).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                let rel = entry.path().strip_prefix(dir).unwrap().to_path_buf();
                out.push((rel, fs::read(entry.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Starts cosmovisor again, waits for v2, stops it, and checks the converged state against the
/// data as it was when the upgrade began.
fn assert_converges(home: &Home, data_at_upgrade: &[(PathBuf, Vec<u8>)], context: &str) {
    let seen = home.events().iter().filter(|e| *e == "ready v2").count();
    let running = home.cosmovisor(["run", "start"]).spawn();
    home.wait_for_events("ready v2", seen + 1);
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0);
    assert_eq!(
        home.current_target(),
        PathBuf::from("upgrades/v2"),
        "{context}\n{out}"
    );
    let backups = home.backups();
    assert_eq!(
        backups.len(),
        1,
        "exactly one complete backup: {backups:?} ({context})"
    );
    assert!(!backups[0].starts_with('.'), "{backups:?}");
    assert!(
        snapshot(&home.path().join(&backups[0])) == data_at_upgrade,
        "backup differs ({context})"
    );
    assert!(
        snapshot(&home.data()) == data_at_upgrade,
        "data/ differs ({context})"
    );
    assert_eq!(
        home.events().iter().filter(|e| *e == "ready v1").count(),
        1,
        "old binary started again ({context})"
    );
    assert!(
        !home.root().join("upgrade-journal.json").exists(),
        "{context}"
    );
}

/// The data as the upgrade sees it: what the test wrote plus the plan the daemon wrote.
pub fn expected_data(home: &Home, name: &str, height: i64) -> Vec<(PathBuf, Vec<u8>)> {
    let mut data = snapshot(&home.data());
    data.push((
        PathBuf::from("upgrade-info.json"),
        format!(r#"{{"name":"{name}","time":"0001-01-01T00:00:00Z","height":{height}}}"#)
            .into_bytes(),
    ));
    data.sort();
    data
}

#[test]
fn sigterm_during_the_backup_leaves_a_consistent_state() {
    let home = Home::new("simd");
    fill_data(&home.data(), 8, 16 << 20);
    let expected = expected_data(&home, "v2", 49);
    home.genesis(&v1_requesting("v2", 49)).upgrade("v2", &v2());
    let running = home.cosmovisor(["run", "start"]).spawn();
    running.wait_for_log("starting to take backup of data directory");
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(143);
    assert_eq!(home.current_target(), PathBuf::from("genesis"), "{out}");
    assert!(
        home.backups().iter().all(|b| !b.starts_with('.')),
        "no staging folder left: {:?}",
        home.backups()
    );
    assert_converges(&home, &expected, "sigterm during backup");
}

/// `kill -9` at random moments of the upgrade, then a restart. The seed is printed, so a failing
/// trial can be replayed with `COSMOVISOR_TEST_SEED`; `COSMOVISOR_TEST_TRIALS` sets how many
/// (default 8).
#[test]
fn kill_9_at_random_moments_converges() {
    let seed = std::env::var("COSMOVISOR_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15);
    eprintln!("kill -9 trials with seed {seed}");
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let trials: usize = std::env::var("COSMOVISOR_TEST_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    for trial in 0..trials {
        let home = Home::new("simd");
        fill_data(&home.data(), 4, 8 << 20);
        let expected = expected_data(&home, "v2", 49);
        home.genesis(&v1_requesting("v2", 49)).upgrade("v2", &v2());
        fs::write(home.root().join("hook.sh"), "#!/bin/sh\nsleep 0.05\n").unwrap();
        let running = home
            .cosmovisor(["run", "start"])
            .env("COSMOVISOR_CUSTOM_PREUPGRADE", "hook.sh")
            .spawn();
        running.wait_for_log("daemon shutting down in an attempt to restart");
        let delay = Duration::from_millis(next() % 400);
        let started = Instant::now();
        while started.elapsed() < delay && !home.events().contains(&"ready v2".to_owned()) {
            std::thread::sleep(Duration::from_millis(2));
        }
        running.signal(Signal::SIGKILL);
        drop(running.wait());
        let context = format!("trial {trial}, seed {seed}, killed after {delay:?}");
        let seen_v2 = home.events().iter().filter(|e| *e == "ready v2").count();
        // A daemon started just before the kill got its parent-death SIGTERM; wait for it.
        home.wait_for_events("TERM", 1 + seen_v2);
        let restarted = home
            .cosmovisor(["run", "start"])
            .env("COSMOVISOR_CUSTOM_PREUPGRADE", "hook.sh")
            .spawn();
        home.wait_for_events("ready v2", seen_v2 + 1);
        restarted.signal(Signal::SIGTERM);
        restarted.wait().assert_code(0);
        assert_converges(&home, &expected, &context);
    }
    eprintln!("{trials} kill -9 trials converged (seed {seed})");
}

/// Mounts a fresh XFS image (root, `mkfs.xfs`); `None` (after `skip_or_fail_in_ci`) otherwise.
fn xfs(dir: &Path, image: &Path) -> Option<XfsMount> {
    let status =
        |cmd: &mut std::process::Command| cmd.output().is_ok_and(|out| out.status.success());
    fs::create_dir_all(dir).unwrap();
    let made = status(
        std::process::Command::new("truncate")
            .args(["-s", "600M"])
            .arg(image),
    ) && status(
        std::process::Command::new("mkfs.xfs")
            .args(["-q", "-f"])
            .arg(image),
    ) && status(
        std::process::Command::new("mount")
            .args(["-o", "loop"])
            .arg(image)
            .arg(dir),
    );
    if made {
        Some(XfsMount(dir.to_path_buf()))
    } else {
        skip_or_fail_in_ci(
            "cannot make and loop-mount an XFS image here (needs root and xfsprogs)",
        );
        None
    }
}

struct XfsMount(PathBuf);

impl Drop for XfsMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn free_bytes(path: &Path) -> u64 {
    let stat = nix::sys::statvfs::statvfs(path).unwrap();
    stat.blocks_available() * stat.fragment_size()
}

#[test]
fn backups_on_xfs_are_reflink_clones() {
    let scratch = tempfile::tempdir().unwrap();
    let Some(mount) = xfs(&scratch.path().join("mnt"), &scratch.path().join("xfs.img")) else {
        return;
    };
    let home_dir = mount.0.join("node");
    fs::create_dir_all(home_dir.join("cosmovisor")).unwrap();
    fs::create_dir_all(home_dir.join("data")).unwrap();
    fill_data(&home_dir.join("data"), 10, 20 << 20);
    let home = Home::at(&home_dir, "simd");
    let expected = expected_data(&home, "v2", 49);
    home.genesis(&v1_requesting("v2", 49)).upgrade("v2", &v2());
    let free_before = free_bytes(&home_dir);
    assert_converges(&home, &expected, "xfs");
    let used = free_before.saturating_sub(free_bytes(&home_dir));
    assert!(
        used < 50 << 20,
        "a 200 MiB backup used {used} bytes: not a reflink clone"
    );
    let out = home.cosmovisor(["status", "--output", "json"]).run();
    out.assert_code(0);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["last_backup"]["mode"], "reflink", "{out}");
}

#[test]
fn checkpoint_mode_hard_links_table_files() {
    use std::os::unix::fs::MetadataExt;
    let home = Home::new("simd");
    fill_data(&home.data(), 3, 1 << 20);
    fs::write(
        home.data().join("application.db/MANIFEST-000001"),
        "manifest",
    )
    .unwrap();
    let expected = expected_data(&home, "v2", 49);
    home.genesis(&v1_requesting("v2", 49)).upgrade("v2", &v2());
    home.cosmovisor(["run", "start"])
        .env("COSMOVISOR_BACKUP_MODE", "checkpoint")
        .stop_after(&home, "ready v2")
        .assert_code(0);
    let backup = home.path().join(&home.backups()[0]);
    let ino = |p: PathBuf| fs::metadata(p).unwrap().ino();
    let table = "application.db/000001.ldb";
    assert_eq!(
        ino(home.data().join(table)),
        ino(backup.join(table)),
        "table file linked"
    );
    assert_ne!(
        ino(home.data().join("priv_validator_state.json")),
        ino(backup.join("priv_validator_state.json"))
    );
    assert!(
        snapshot(&backup) == expected,
        "the checkpoint holds the same bytes"
    );
}

/// Under systemd's `RestrictSUIDSGID=true` (our units set it) a setgid folder in `data/` (shared
/// group folders, Kubernetes `fsGroup` volumes) made every backup fail with EPERM. Now no backup
/// carries a setuid/setgid bit: one warning says how many were left out.
#[test]
fn a_setgid_folder_in_data_backs_up_under_restrict_suid_sgid() {
    use std::os::unix::fs::PermissionsExt;
    let Some(wrapper) = crate::support::restrict_suid_sgid() else {
        return;
    };
    let home = Home::new("simd");
    let shared = home.data().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::write(shared.join("state"), "s").unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o2775)).unwrap();
    fs::write(home.data().join("tool"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(home.data().join("tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    home.genesis(&v1_requesting("v2", 49)).upgrade("v2", &v2());
    let out = home
        .cosmovisor_under(
            &[wrapper, crate::support::COSMOVISOR.into()],
            ["run", "start"],
        )
        .stop_after(&home, "ready v2");
    out.assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"), "{out}");
    let backup = home.path().join(&home.backups()[0]);
    let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(backup.join("shared")), 0o775, "{out}");
    assert_eq!(mode(backup.join("tool")), 0o755, "{out}");
    assert_eq!(
        fs::read_to_string(backup.join("shared/state")).unwrap(),
        "s"
    );
    assert_eq!(
        out.stderr()
            .matches("setuid/setgid bits were left out of the copy (a backup or restore never creates them): 2 files and folders of")
            .count(),
        1,
        "{out}"
    );
}

/// `data/application.db -> /mnt/ssd/…`: the backup can only hold the link; the upgrade says so,
/// naming the link and its target, and so does `doctor` beforehand.
#[test]
fn a_store_linked_from_outside_data_is_named_at_backup_and_by_doctor() {
    let home = Home::new("simd");
    let ssd = tempfile::tempdir().unwrap();
    let store = ssd.path().join("application.db");
    fs::create_dir(&store).unwrap();
    fs::write(store.join("000001.ldb"), "table").unwrap();
    std::os::unix::fs::symlink(&store, home.data().join("application.db")).unwrap();
    // Both answer `version` at once, for doctor.
    let answers = r#"if [ "${1:-}" = version ]; then echo v; exit 0; fi"#;
    home.genesis(
        &FakeDaemon::new()
            .raw(answers)
            .ready("v1")
            .request_upgrade("v2", 49)
            .block(),
    )
    .upgrade(
        "v2",
        &FakeDaemon::new()
            .raw(answers)
            .pre_upgrade("v2", &[0])
            .ready("v2")
            .block(),
    );
    let named = format!(
        "{} is a symbolic link to {}, outside",
        home.data().join("application.db").display(),
        store.display()
    );
    let doctor = home.cosmovisor(["doctor"]).run();
    assert!(
        doctor
            .stdout()
            .lines()
            .any(|l| l.starts_with("! backup: ") && l.contains(&named)),
        "{doctor}"
    );
    let out = home
        .cosmovisor(["run", "start"])
        .stop_after(&home, "ready v2");
    out.assert_code(0);
    assert_eq!(out.stderr().matches(&named).count(), 1, "{out}");
    out.stderr_contains("the backup holds the link, not what it points to");
}

/// A backup folder dated in the future (taken when the clock was ahead) used to count as the
/// newest: `COSMOVISOR_BACKUP_KEEP=1` deleted the backup just taken, and `rollback` restored the
/// stale one. The record's sequence orders backups now; the stale one is warned about.
#[test]
fn a_backup_dated_in_the_future_never_outlives_the_one_just_taken() {
    let home = Home::new("simd");
    fs::write(home.data().join("state.db"), "now").unwrap();
    let stale = home.path().join("data-backup-2099-1-1");
    fs::create_dir(&stale).unwrap();
    fs::write(stale.join("state.db"), "stale").unwrap();
    home.genesis(&v1_requesting("v2", 49)).upgrade("v2", &v2());
    let out = home
        .cosmovisor(["run", "start"])
        .env("COSMOVISOR_BACKUP_KEEP", "1")
        .stop_after(&home, "ready v2");
    out.assert_code(0);
    assert!(
        out.stderr().contains(&format!(
            "backup {} is dated in the future",
            stale.display()
        )),
        "{out}"
    );
    let backups = home.backups();
    assert_eq!(backups.len(), 1, "{backups:?}\n{out}");
    assert_ne!(
        backups[0], "data-backup-2099-1-1",
        "the stale one was pruned\n{out}"
    );
    fs::write(home.data().join("state.db"), "later").unwrap();
    home.cosmovisor(["rollback", "--to", "genesis", "--restore-data", "--yes"])
        .run()
        .assert_code(0);
    assert_eq!(
        fs::read_to_string(home.data().join("state.db")).unwrap(),
        "now"
    );
}
