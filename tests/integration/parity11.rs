//! Issue 11 items 3–6: the newest backup is the one taken last (not the one with the newest
//! copied mtime), a mistyped home is refused, upstream's message texts, and the pre-upgrade
//! hooks' output captured into our log lines.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::support::{Home, upgraded_daemon, v1_requesting};

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// 2001-01-01T00:00:00Z.
fn year_2001() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(978_307_200)
}

/// Two real upgrades (genesis → v2 at 49, then v2 → v3 at 50, one `run` each), with `state.db`
/// = "before-v2" in the first backup and "before-v3" in the second; `data/`'s mtime is set to 2001
/// just before the second, so the second backup folder carries the older copied mtime.
/// `keep` is `COSMOVISOR_BACKUP_KEEP` for the second run.
fn two_upgrades(keep: Option<&str>) -> Home {
    let home = Home::new("simd");
    fs::write(home.data().join("state.db"), "before-v2").unwrap();
    home.genesis(&v1_requesting("v2", 49))
        .upgrade("v2", &upgraded_daemon("v2", &[0]))
        .upgrade("v3", &upgraded_daemon("v3", &[0]));
    home.cosmovisor(["run", "start"])
        .stop_after(&home, "ready v2")
        .assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));

    fs::write(home.data().join("state.db"), "before-v3").unwrap();
    home.write_plan("v3", 50);
    fs::File::open(home.data())
        .unwrap()
        .set_modified(year_2001())
        .unwrap();
    let mut second = home.cosmovisor(["run", "start"]);
    if let Some(keep) = keep {
        second = second.env("COSMOVISOR_BACKUP_KEEP", keep);
    }
    second.stop_after(&home, "ready v3").assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v3"));
    fs::write(home.data().join("state.db"), "after-v3").unwrap();
    home
}

#[test]
fn newest_backup_is_the_one_taken_last_for_status_and_rollback() {
    let home = two_upgrades(None);
    assert_eq!(home.backups().len(), 2, "{}", home.tree());

    let out = home.cosmovisor(["status", "--output", "json"]).run();
    out.assert_code(0);
    let status: serde_json::Value = serde_json::from_str(&out.stdout()).unwrap();
    let last = PathBuf::from(status["last_backup"]["path"].as_str().unwrap());
    assert_eq!(read(&last.join("state.db")), "before-v3", "{out}");
    assert!(
        status["last_backup"]["age_seconds"].as_u64().unwrap() < 3600,
        "the age is the time since the backup was taken, not data/'s copied mtime: {out}"
    );

    let out = home
        .cosmovisor(["rollback", "--to", "v2", "--restore-data", "--yes"])
        .run();
    out.assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
    assert_eq!(read(&home.data().join("state.db")), "before-v3", "{out}");
}

#[test]
fn retention_keeps_the_backup_taken_last() {
    let home = two_upgrades(Some("1"));
    let backups = home.backups();
    assert_eq!(backups.len(), 1, "{}", home.tree());
    assert_eq!(
        read(&home.path().join(&backups[0]).join("state.db")),
        "before-v3",
        "{}",
        home.tree()
    );
}
