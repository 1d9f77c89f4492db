//! The backups of `data/` in `DAEMON_DATA_BACKUP_DIR`, as they are on disk: how their folders
//! are named ([`PREFIX`], the hidden staging name of one being written, the order a name
//! records), the record kept beside each complete one, listing the complete ones, and pruning
//! all but the newest. Taking a backup is `upgrade/backup.rs`. Uses only the shared pieces.

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
}

/// Where the record of the backup at `backup` is kept: `.backup-records/<name>.json` beside it.
#[must_use]
pub fn record_path(backup: &Path) -> Option<PathBuf> {
    let name = backup.file_name()?.to_str()?;
    Some(backup.parent()?.join(RECORDS).join(format!("{name}.json")))
}

/// The record of the complete backup `backup`; `None` when it has none (taken by Go, or by a
/// cosmovisor before records) or it cannot be read.
#[must_use]
pub fn read_record(backup: &Path) -> Option<Record> {
    let path = record_path(backup)?;
    let bytes = crate::bounded_read::read_capped(&path, crate::bounded_read::DOCUMENT_CAP).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Keeps the `keep` backups taken last in `backup_dir` (by [`taken_order`]) and removes the
/// others; returns what it removed. Staging folders, and folders whose names we do not write
/// (`data-backup-<Y>-<M>-<D>[.<n>]`), are never touched.
pub fn prune(backup_dir: &Path, keep: usize) -> io::Result<Vec<PathBuf>> {
    let backups: Vec<Complete> = list(backup_dir)?
        .into_iter()
        .filter(|backup| backup.order.is_some())
        .collect();
    let excess = backups.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for backup in backups.into_iter().take(excess) {
        fs::remove_dir_all(&backup.path)?;
        if let Some(record) = record_path(&backup.path) {
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
    /// [`taken_order`] of its name.
    pub order: Option<(i32, u32, u32, u32)>,
    /// Set to the time the backup was taken when we take it.
    pub modified: SystemTime,
}

/// The complete backups in `dir`, oldest first: folders whose names we do not write come first
/// (by mtime), then ours by [`taken_order`]. A missing `dir` has none.
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
        backups.push(Complete {
            order: taken_order(&name),
            modified: entry.metadata()?.modified()?,
            path: entry.path(),
        });
    }
    backups.sort_by_key(|backup| (backup.order, backup.modified));
    Ok(backups)
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
        let removed = prune(tmp.path(), 2).unwrap();
        assert_eq!(removed, vec![tmp.path().join("data-backup-2024-8-5")]);
        assert!(tmp.path().join("data-backup-before-fork").exists());
        assert!(tmp.path().join(".data-backup-2024-9-2.partial").exists());
        assert!(tmp.path().join("data").exists());
        assert!(prune(tmp.path(), 5).unwrap().is_empty());
    }
}
