//! The backups of `data/` in `DAEMON_DATA_BACKUP_DIR`, as they are on disk: how their folders
//! are named ([`PREFIX`], the hidden staging name of one being written, the order a name
//! records), the record kept beside each complete one, listing the complete ones in the order
//! they were taken, checking the hard-linked files a backup shares with `data/` ([`changes`]),
//! and pruning all but the newest. Taking a backup is `upgrade/backup/mod.rs`, restoring one
//! `restore.rs`. Uses only the shared pieces: it sits in `upgrade/` with the rest of the backup,
//! and what reads it (`status`, `doctor`, `rollback`, the journal) is at that layer or above.
//!
//! Order: a record's `sequence` (one more than the highest in the folder when the backup was
//! taken) says which backup was taken last, whatever the clock said; backups without one (taken
//! by Go or by a cosmovisor before sequences) are older than every one with one, and among
//! themselves ordered by name, then mtime (README "Backups").

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The prefix of every backup folder, as Go names them.
pub const PREFIX: &str = "data-backup-";

/// The staging name of a backup folder while it is being written.
pub fn partial_name(name: &str) -> String {
    format!(".{name}.partial")
}

/// The folder, beside the backups, that holds one record per complete backup.
const RECORDS: &str = ".backup-records";

/// What a backup did, kept beside it for `status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// `copy`, `checkpoint` or `reflink`: the mode the backup was taken in.
    pub mode: String,
    pub files: u64,
    pub bytes: u64,
    /// Of `bytes`, those of hard-linked table files.
    pub linked_bytes: u64,
    /// Which backup in the folder this is, in the order they were taken (see the module header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// When it was taken, by this machine's clock (seconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<i64>,
}

/// A file a backup shares with `data/` (a hard link), as it was when the backup was taken: an
/// in-place write into it, or a chmod, changes the backup too, which [`changes`] tells.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Linked {
    /// Relative to the backup folder.
    pub path: String,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub ino: u64,
    /// Permission bits.
    pub mode: u32,
}

impl Linked {
    /// The state of the file at `path` (not followed when it is a link), named `relative`.
    pub fn of(path: &Path, relative: String) -> io::Result<Linked> {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::symlink_metadata(path)?;
        Ok(Linked {
            path: relative,
            size: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            ino: meta.ino(),
            mode: meta.mode() & 0o7777,
        })
    }

    /// How `now` (the same file today) differs from this; `None` when it does not.
    fn differs(&self, now: &Linked) -> Option<String> {
        let path = &self.path;
        if now.ino != self.ino {
            Some(format!("{path} was replaced by another file"))
        } else if now.size != self.size {
            Some(format!(
                "{path} was {} bytes when backed up, {} now",
                self.size, now.size
            ))
        } else if (now.mtime, now.mtime_nsec) != (self.mtime, self.mtime_nsec) {
            Some(format!(
                "{path} was written to since the backup (its modification time changed)"
            ))
        } else if now.mode != self.mode {
            Some(format!(
                "{path} had mode {:04o} when backed up, {:04o} now",
                self.mode, now.mode
            ))
        } else {
            None
        }
    }
}

/// Where the record of the backup at `backup` is kept: `.backup-records/<name>.json` beside it.
#[must_use]
pub fn record_path(backup: &Path) -> Option<PathBuf> {
    let name = backup.file_name()?.to_str()?;
    Some(backup.parent()?.join(RECORDS).join(format!("{name}.json")))
}

/// Where the list of the backup's hard-linked files is kept: `.backup-records/<name>.links.json`
/// (apart from the record, which `status` and every listing read: this one can be large).
#[must_use]
pub fn links_path(backup: &Path) -> Option<PathBuf> {
    let name = backup.file_name()?.to_str()?;
    Some(
        backup
            .parent()?
            .join(RECORDS)
            .join(format!("{name}.links.json")),
    )
}

/// The largest list of linked files read back: about 100 bytes a file, so two million files.
const LINKS_CAP: u64 = 256 << 20;

/// The record of the complete backup `backup`; `None` when it has none (taken by Go, or by a
/// cosmovisor before records) or it cannot be read.
#[must_use]
pub fn read_record(backup: &Path) -> Option<Record> {
    let path = record_path(backup)?;
    let bytes = crate::bounded_read::read_capped(&path, crate::bounded_read::DOCUMENT_CAP).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The hard-linked files of `backup` that changed since it was taken, each described in words
/// (`application.db/000005.ldb was written to since the backup …`); `None` when the backup has no
/// list of them (taken by Go, by an older cosmovisor, or in `copy`/`reflink` mode, where nothing
/// is shared) or the list cannot be read.
#[must_use]
pub fn changes(backup: &Path) -> Option<Vec<String>> {
    let path = links_path(backup)?;
    let bytes = crate::bounded_read::read_capped(&path, LINKS_CAP).ok()?;
    let linked: Vec<Linked> = serde_json::from_slice(&bytes).ok()?;
    Some(
        linked
            .iter()
            .filter_map(
                |then| match Linked::of(&backup.join(&then.path), then.path.clone()) {
                    Ok(now) => then.differs(&now),
                    Err(err) => Some(format!("{} cannot be read: {err}", then.path)),
                },
            )
            .collect(),
    )
}

/// The sequence number for the next backup taken in `backup_dir` (see the module header).
pub fn next_sequence(backup_dir: &Path) -> io::Result<u64> {
    Ok(list(backup_dir)?
        .iter()
        .filter_map(|backup| backup.sequence)
        .max()
        .unwrap_or(0)
        + 1)
}

/// The backups in `backup_dir` dated after `now`: by the date in their name, or by their
/// record's time (more than a minute ahead). A clock that was ahead when they were taken.
pub fn dated_in_future(
    backup_dir: &Path,
    now: chrono::DateTime<chrono::Local>,
) -> io::Result<Vec<PathBuf>> {
    use chrono::Datelike;
    let today = (now.year(), now.month(), now.day());
    Ok(list(backup_dir)?
        .into_iter()
        .filter(|backup| {
            let by_name = backup
                .order
                .is_some_and(|(year, month, day, _)| (year, month, day) > today);
            let by_record = read_record(&backup.path)
                .and_then(|record| record.taken_at)
                .is_some_and(|at| at > now.timestamp() + 60);
            by_name || by_record
        })
        .map(|backup| backup.path)
        .collect())
}

/// Keeps the `keep` backups taken last in `backup_dir` (the order of [`list`]) and removes the
/// others, never `just_taken`; returns what it removed. Staging folders, and folders whose names
/// we do not write (`data-backup-<Y>-<M>-<D>[.<n>]`), are never touched.
pub fn prune(
    backup_dir: &Path,
    keep: usize,
    just_taken: Option<&Path>,
) -> io::Result<Vec<PathBuf>> {
    let backups: Vec<Complete> = list(backup_dir)?
        .into_iter()
        .filter(|backup| backup.order.is_some())
        .collect();
    let excess = backups.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for backup in backups.into_iter().take(excess) {
        if Some(backup.path.as_path()) == just_taken {
            continue;
        }
        fs::remove_dir_all(&backup.path)?;
        for record in [record_path(&backup.path), links_path(&backup.path)]
            .into_iter()
            .flatten()
        {
            remove_file_if_present(&record)?;
        }
        removed.push(backup.path);
    }
    Ok(removed)
}

/// When a backup was taken, as its name records it: the local date, then the `.N` of a second
/// backup on the same day. `None` for names we do not write. The folder's mtime cannot say this:
/// the copy gives it `data/`'s own mtime, which can be years old.
#[must_use]
pub fn taken_order(name: &str) -> Option<(i32, u32, u32, u32)> {
    let rest = name.strip_prefix(PREFIX)?;
    let (date, seq) = match rest.split_once('.') {
        Some((date, seq)) => (date, number(seq)?),
        None => (rest, 1),
    };
    let mut parts = date.split('-');
    let year = number(parts.next()?)?;
    let month = number(parts.next()?)?;
    let day = number(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    chrono::NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    Some((i32::try_from(year).ok()?, month, day, seq))
}

fn number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A complete backup folder (`data-backup-*`, never a hidden staging one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complete {
    pub path: PathBuf,
    /// Its record's `sequence`.
    pub sequence: Option<u64>,
    /// [`taken_order`] of its name.
    pub order: Option<(i32, u32, u32, u32)>,
    /// Set to the time the backup was taken when we take it.
    pub modified: SystemTime,
}

/// The complete backups in `dir`, oldest first: those without a sequence in their record first
/// (folders whose names we do not write by mtime, then ours by [`taken_order`]), then those with
/// one, by sequence. A missing `dir` has none.
pub fn list(dir: &Path) -> io::Result<Vec<Complete>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut backups = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !name.starts_with(PREFIX) || !entry.file_type()?.is_dir() {
            continue;
        }
        let path = entry.path();
        backups.push(Complete {
            sequence: read_record(&path).and_then(|record| record.sequence),
            order: taken_order(&name),
            modified: entry.metadata()?.modified()?,
            path,
        });
    }
    backups.sort_by_key(|backup| (backup.sequence, backup.order, backup.modified));
    Ok(backups)
}

/// The complete backup taken last in `dir` (see [`list`]).
pub fn newest(dir: &Path) -> io::Result<Option<Complete>> {
    Ok(list(dir)?.pop())
}

fn remove_file_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_the_order_backups_were_taken_in() {
        let mut names = [
            "data-backup-2024-10-1",
            "data-backup-2024-9-30.2",
            "data-backup-2024-9-30.10",
            "data-backup-2024-9-30",
            "data-backup-2023-12-31",
        ];
        names.sort_by_key(|name| taken_order(name));
        assert_eq!(
            names,
            [
                "data-backup-2023-12-31",
                "data-backup-2024-9-30",
                "data-backup-2024-9-30.2",
                "data-backup-2024-9-30.10",
                "data-backup-2024-10-1",
            ]
        );
        for theirs in [
            "data-backup-before-fork",
            "data-backup-2024-13-1",
            "data-backup-2024-1-1.x",
            "data-backup-2024-1-1-1",
            "data-backup-+2024-1-1",
        ] {
            assert_eq!(taken_order(theirs), None, "{theirs}");
        }
    }

    #[test]
    fn prune_keeps_the_newest() {
        let tmp = tempfile::tempdir().unwrap();
        for (i, name) in [
            "data-backup-2024-8-5",
            "data-backup-2024-8-5.2",
            "data-backup-2024-9-1",
        ]
        .iter()
        .enumerate()
        {
            let dir = tmp.path().join(name);
            fs::create_dir(&dir).unwrap();
            // Mtimes in reverse: the copy gives each backup data/'s, which says nothing.
            let time = std::time::SystemTime::UNIX_EPOCH
                + std::time::Duration::from_secs(1_000 - i as u64);
            fs::File::open(&dir).unwrap().set_modified(time).unwrap();
        }
        fs::create_dir(tmp.path().join(".data-backup-2024-9-2.partial")).unwrap();
        fs::create_dir(tmp.path().join("data-backup-before-fork")).unwrap();
        fs::create_dir(tmp.path().join("data")).unwrap();
        let removed = prune(tmp.path(), 2, None).unwrap();
        assert_eq!(removed, vec![tmp.path().join("data-backup-2024-8-5")]);
        assert!(tmp.path().join("data-backup-before-fork").exists());
        assert!(tmp.path().join(".data-backup-2024-9-2.partial").exists());
        assert!(tmp.path().join("data").exists());
        assert!(prune(tmp.path(), 5, None).unwrap().is_empty());
    }

    #[test]
    fn the_sequence_orders_backups_whatever_their_dates() {
        let tmp = tempfile::tempdir().unwrap();
        let record = |sequence| Record {
            mode: "copy".into(),
            files: 0,
            bytes: 0,
            linked_bytes: 0,
            sequence,
            taken_at: None,
        };
        // Taken with a clock two years ahead, then two with the right one: the stale one is
        // the oldest, and the one just taken is kept whatever `keep` says.
        for (name, sequence) in [
            ("data-backup-2099-1-1", None),
            ("data-backup-2026-5-1", Some(1)),
            ("data-backup-2026-4-1", Some(2)),
        ] {
            let dir = tmp.path().join(name);
            fs::create_dir(&dir).unwrap();
            if sequence.is_some() {
                fs::create_dir_all(tmp.path().join(RECORDS)).unwrap();
                let json = serde_json::to_vec(&record(sequence)).unwrap();
                fs::write(record_path(&dir).unwrap(), json).unwrap();
            }
        }
        let names: Vec<PathBuf> = list(tmp.path())
            .unwrap()
            .into_iter()
            .map(|b| b.path)
            .collect();
        assert_eq!(
            names,
            [
                "data-backup-2099-1-1",
                "data-backup-2026-5-1",
                "data-backup-2026-4-1"
            ]
            .map(|n| tmp.path().join(n))
        );
        assert_eq!(next_sequence(tmp.path()).unwrap(), 3);
        let now = chrono::Local::now();
        assert_eq!(
            dated_in_future(tmp.path(), now).unwrap(),
            [tmp.path().join("data-backup-2099-1-1")]
        );
        let newest = tmp.path().join("data-backup-2026-4-1");
        assert_eq!(
            prune(tmp.path(), 0, Some(&newest)).unwrap(),
            ["data-backup-2099-1-1", "data-backup-2026-5-1"].map(|n| tmp.path().join(n))
        );
        assert!(newest.exists());
    }

    #[test]
    fn changes_name_the_linked_files_written_to_or_chmodded() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let backup = tmp.path().join("data-backup-2026-1-1");
        fs::create_dir_all(backup.join("db")).unwrap();
        for name in ["db/1.ldb", "db/2.ldb", "db/3.ldb", "db/4.ldb"] {
            fs::write(backup.join(name), "table").unwrap();
        }
        assert_eq!(changes(&backup), None, "no list: nothing to check");
        let linked: Vec<Linked> = ["db/1.ldb", "db/2.ldb", "db/3.ldb", "db/4.ldb"]
            .iter()
            .map(|name| Linked::of(&backup.join(name), (*name).to_owned()).unwrap())
            .collect();
        fs::create_dir_all(tmp.path().join(RECORDS)).unwrap();
        fs::write(
            links_path(&backup).unwrap(),
            serde_json::to_vec(&linked).unwrap(),
        )
        .unwrap();
        assert_eq!(changes(&backup), Some(vec![]));
        fs::write(backup.join("db/1.ldb"), "TABLE").unwrap();
        fs::File::options()
            .write(true)
            .open(backup.join("db/1.ldb"))
            .unwrap()
            .set_modified(SystemTime::UNIX_EPOCH)
            .unwrap();
        fs::write(backup.join("db/2.ldb"), "longer table").unwrap();
        fs::set_permissions(backup.join("db/3.ldb"), fs::Permissions::from_mode(0o666)).unwrap();
        let mode = fs::metadata(backup.join("db/4.ldb"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        fs::remove_file(backup.join("db/4.ldb")).unwrap();
        let found = changes(&backup).unwrap();
        assert_eq!(found.len(), 4, "{found:#?}");
        assert_eq!(
            found[0],
            "db/1.ldb was written to since the backup (its modification time changed)"
        );
        assert_eq!(found[1], "db/2.ldb was 5 bytes when backed up, 12 now");
        assert_eq!(
            found[2],
            format!("db/3.ldb had mode {mode:04o} when backed up, 0666 now")
        );
        assert!(
            found[3].starts_with("db/4.ldb cannot be read: "),
            "{found:#?}"
        );
    }

    #[test]
    fn newest_backup_and_sizes() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(newest(tmp.path()).unwrap(), None);
        for (i, name) in ["data-backup-2024-1-1", "data-backup-2024-1-1.2"]
            .iter()
            .enumerate()
        {
            let dir = tmp.path().join(name);
            fs::create_dir(&dir).unwrap();
            fs::write(dir.join("f"), vec![0u8; 10 * (i + 1)]).unwrap();
            // The older backup has the newer mtime: the name says which was taken last.
            let time =
                std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(200 - i as u64);
            fs::File::open(&dir).unwrap().set_modified(time).unwrap();
        }
        fs::create_dir(tmp.path().join(".data-backup-2024-1-2.partial")).unwrap();
        let newest = newest(tmp.path()).unwrap().unwrap();
        assert_eq!(newest.path, tmp.path().join("data-backup-2024-1-1.2"));
        assert_eq!(crate::home::inventory::tree_size(&newest.path).unwrap(), 20);
        assert_eq!(crate::home::inventory::tree_size(tmp.path()).unwrap(), 30);
    }
}
