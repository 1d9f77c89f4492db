//! The default backup (`COSMOVISOR_BACKUP_MODE=auto`) is a real backup: hard links for the
//! immutable table files of stores on the same file system, copies of everything else, and a
//! full copy on another file system. After the upgrade the new binary "compacts" (deletes tables,
//! writes new ones, appends to the MANIFEST and the log, rewrites the signing state in place) and
//! the backup still holds the pre-upgrade bytes, which `rollback --restore-data` brings back.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::backup_under_stress::{expected_data, snapshot};
use crate::support::{FakeDaemon, Home, Tmpfs, upgraded_daemon, v1_requesting};

const STORE: &str = "application.db";
/// A table file outside any store (no `CURRENT`): it may still be written, so it is copied.
const LOOSE: &str = "snapshots/pending.sst";

/// A node-shaped `data/`: one goleveldb/Pebble store with tables, a log and a MANIFEST, a loose
/// `.sst`, and the signing state. Tables are `table_size` bytes each.
fn fill(data: &Path, table_size: usize) {
    let db = data.join(STORE);
    fs::create_dir_all(&db).unwrap();
    fs::write(db.join("CURRENT"), "MANIFEST-000001\n").unwrap();
    fs::write(db.join("MANIFEST-000001"), "manifest v1\n").unwrap();
    fs::write(db.join("000001.ldb"), vec![1u8; table_size]).unwrap();
    fs::write(db.join("000002.sst"), vec![2u8; table_size]).unwrap();
    fs::write(db.join("000003.ldb"), vec![3u8; table_size]).unwrap();
    fs::write(db.join("000004.log"), "wal before the upgrade\n").unwrap();
    fs::create_dir_all(data.join("snapshots")).unwrap();
    fs::write(data.join(LOOSE), "being written\n").unwrap();
    fs::write(
        data.join("priv_validator_state.json"),
        r#"{"height":"49","round":0,"step":3}"#,
    )
    .unwrap();
}

/// The new binary: answers pre-upgrade, then compacts the store and signs a new height, writing
/// every file that is not a table in place (the worst case for a linked file), then runs.
fn compacting_v2() -> FakeDaemon {
    FakeDaemon::new()
        .raw(r#"if [ "${1:-}" = pre-upgrade ]; then exit 0; fi"#)
        .raw(r#"D="$DAEMON_HOME/data""#)
        .raw(&format!(
            r#"rm "$D/{STORE}/000001.ldb" "$D/{STORE}/000002.sst""#
        ))
        .raw(&format!(r#"printf 'compacted' > "$D/{STORE}/000005.ldb""#))
        .raw(&format!(
            r#"printf 'edit 2\n' >> "$D/{STORE}/MANIFEST-000001""#
        ))
        .raw(&format!(
            r#"printf 'wal after\n' >> "$D/{STORE}/000004.log""#
        ))
        .raw(&format!(r#"printf 'more\n' >> "$D/{LOOSE}""#))
        .raw(r#"printf '{"height":"60"}' > "$D/priv_validator_state.json""#)
        .ready("v2")
        .block()
}

fn ino(path: &Path) -> u64 {
    fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .ino()
}

fn status_json(home: &Home, backup_dir: &Path) -> Value {
    let out = home
        .cosmovisor(["status", "--output", "json"])
        .env("DAEMON_DATA_BACKUP_DIR", backup_dir)
        .run();
    out.assert_code(0);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|err| panic!("{err}\n{out}"))
}

#[test]
fn default_backup_survives_compaction_and_restores() {
    let home = Home::new("simd");
    fill(&home.data(), 1 << 20);
    let expected = expected_data(&home, "v2", 49);
    home.genesis(&v1_requesting("v2", 49))
        .upgrade("v2", &compacting_v2());
    home.cosmovisor(["run", "start"])
        .stop_after(&home, "ready v2")
        .assert_code(0)
        .stderr_contains("mode=checkpoint");
    let backups = home.backups();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let backup = home.path().join(&backups[0]);

    // Linked: the table the compaction kept is one file in data/ and in the backup.
    let kept = format!("{STORE}/000003.ldb");
    assert_eq!(ino(&home.data().join(&kept)), ino(&backup.join(&kept)));
    // Copied: everything written in place, and the loose .sst outside a store.
    for file in [
        format!("{STORE}/MANIFEST-000001"),
        format!("{STORE}/000004.log"),
        LOOSE.to_owned(),
        "priv_validator_state.json".to_owned(),
    ] {
        assert_ne!(
            ino(&home.data().join(&file)),
            ino(&backup.join(&file)),
            "{file}"
        );
    }
    assert!(
        snapshot(&backup) == expected,
        "the backup holds the pre-upgrade bytes after the compaction"
    );

    let status = status_json(&home, home.path());
    assert_eq!(status["last_backup"]["mode"], "checkpoint", "{status}");
    home.cosmovisor(["status"])
        .run()
        .assert_code(0)
        .stdout_contains("mode checkpoint");

    home.cosmovisor(["rollback", "--to", "genesis", "--restore-data", "--yes"])
        .run()
        .assert_code(0);
    let restored: Vec<(PathBuf, Vec<u8>)> = snapshot(&home.data())
        .into_iter()
        .filter(|(path, _)| !path.to_string_lossy().starts_with("upgrade-info.json"))
        .collect();
    let mut want: Vec<(PathBuf, Vec<u8>)> = expected
        .into_iter()
        .filter(|(path, _)| !path.to_string_lossy().starts_with("upgrade-info.json"))
        .map(|(path, bytes)| {
            if path == Path::new("priv_validator_state.json") {
                // Never rolled back: the signing state is carried forward.
                (path, br#"{"height":"60"}"#.to_vec())
            } else {
                (path, bytes)
            }
        })
        .collect();
    want.sort();
    assert!(
        restored == want,
        "rollback --restore-data brings back the pre-upgrade data/"
    );
}

#[test]
fn default_backup_on_another_file_system_is_a_copy() {
    let home = Home::new("simd");
    let Some(disk) = Tmpfs::mount(&home.path().join("other-disk"), "128m") else {
        return;
    };
    fill(&home.data(), 1 << 20);
    let expected = expected_data(&home, "v2", 49);
    home.genesis(&v1_requesting("v2", 49))
        .upgrade("v2", &upgraded_daemon("v2", &[0]));
    home.cosmovisor(["run", "start"])
        .env("DAEMON_DATA_BACKUP_DIR", disk.path())
        .stop_after(&home, "ready v2")
        .assert_code(0)
        .stderr_contains("mode=copy");
    let backups: Vec<_> = fs::read_dir(disk.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.is_dir() && !path.file_name().unwrap().to_string_lossy().starts_with('.')
        })
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert!(snapshot(&backups[0]) == expected);
    assert_eq!(
        fs::metadata(home.data().join(STORE).join("000001.ldb"))
            .unwrap()
            .nlink(),
        1,
        "nothing in data/ is linked"
    );
    let status = status_json(&home, disk.path());
    assert_eq!(status["last_backup"]["mode"], "copy", "{status}");
}

/// The free-space check counts only the bytes the backup writes: a disk with room for the
/// copied files but not for a second copy of the tables takes the default backup, and refuses
/// `COSMOVISOR_BACKUP_MODE=copy` before anything is written.
#[test]
fn free_space_check_counts_only_bytes_written() {
    let scratch = tempfile::tempdir().unwrap();
    // 3 tables of 24 MiB (72 MiB) in a 172 MiB tmpfs: about 100 MiB free. A copy needs the data
    // + 5% + 64 MiB (about 140 MiB), the links only the 64 MiB margin and the small files.
    let Some(disk) = Tmpfs::mount(&scratch.path().join("node"), "172m") else {
        return;
    };
    fs::create_dir_all(disk.path().join("cosmovisor")).unwrap();
    fs::create_dir_all(disk.path().join("data")).unwrap();
    let home = Home::at(disk.path(), "simd");
    fill(&home.data(), 24 << 20);
    home.genesis(&v1_requesting("v2", 49))
        .upgrade("v2", &upgraded_daemon("v2", &[0]));
    let before = snapshot(&home.data());

    let refused = home
        .cosmovisor(["run", "start"])
        .env("COSMOVISOR_BACKUP_MODE", "copy")
        .run();
    refused
        .assert_code(5)
        .stderr_contains("not enough free space for the backup");
    assert!(
        home.backups().is_empty(),
        "nothing written: {:?}",
        home.backups()
    );
    let mut with_plan = before.clone();
    with_plan.push((
        PathBuf::from("upgrade-info.json"),
        br#"{"name":"v2","time":"0001-01-01T00:00:00Z","height":49}"#.to_vec(),
    ));
    with_plan.sort();
    assert!(snapshot(&home.data()) == with_plan, "data/ untouched");

    home.cosmovisor(["run", "start"])
        .stop_after(&home, "ready v2")
        .assert_code(0);
    assert_eq!(home.backups().len(), 1, "{:?}", home.backups());
}

/// An in-place write into a table the backup shares with `data/` (a repair tool, `dd`) changes
/// the backup too: `status` names it, and `rollback --restore-data` refuses (nothing changed)
/// unless `--force`.
#[test]
fn a_linked_table_written_in_place_is_named_and_blocks_the_restore() {
    use std::io::{Seek, SeekFrom, Write};
    let home = Home::new("simd");
    fill(&home.data(), 4096);
    home.genesis(&v1_requesting("v2", 49))
        .upgrade("v2", &upgraded_daemon("v2", &[0]));
    home.cosmovisor(["run", "start"])
        .stop_after(&home, "ready v2")
        .assert_code(0);
    let backup = home.path().join(&home.backups()[0]);
    let table = format!("{STORE}/000003.ldb");
    assert_eq!(
        ino(&home.data().join(&table)),
        ino(&backup.join(&table)),
        "linked"
    );
    assert!(
        status_json(&home, home.path())["last_backup"]["changed_files"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );

    // Same size, same inode, new bytes in the middle: only the mtime tells.
    let mut file = fs::File::options()
        .write(true)
        .open(home.data().join(&table))
        .unwrap();
    file.seek(SeekFrom::Start(100)).unwrap();
    file.write_all(b"corrupted").unwrap();
    drop(file);
    let named = format!("{table} was written to since the backup");
    let status = status_json(&home, home.path());
    assert_eq!(
        status["last_backup"]["changed_files"][0]
            .as_str()
            .unwrap_or_default(),
        format!("{named} (its modification time changed)"),
        "{status}"
    );
    let text = home.cosmovisor(["status"]).run();
    text.assert_code(0).stdout_contains(&named);

    let out = home
        .cosmovisor(["rollback", "--to", "genesis", "--restore-data", "--yes"])
        .run();
    out.assert_code(8);
    assert!(out.errors()[0].contains(&named), "{out}");
    assert!(
        out.errors()[0].contains("restore it anyway with --force"),
        "{out}"
    );
    assert_eq!(
        home.current_target(),
        PathBuf::from("upgrades/v2"),
        "nothing changed"
    );
    assert!(!home.path().join(".data.restore-partial").exists());

    let out = home
        .cosmovisor([
            "rollback",
            "--to",
            "genesis",
            "--restore-data",
            "--yes",
            "--force",
        ])
        .run();
    out.assert_code(0).stdout_contains("Warning (--force)");
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
}
