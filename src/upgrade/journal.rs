//! The upgrade journal: one small JSON file, `cosmovisor/upgrade-journal.json`, that exists only
//! while an upgrade is under way and records how far it got.
//!
//! It is written with temp file + fsync + rename before each step starts its side effects and
//! after each step completes, so a `kill -9` or a power cut at any point leaves either the old
//! record or the new one. On the next start the supervisor finds it and resumes the upgrade from
//! the recorded phase instead of starting the old binary (see `upgrade/steps.rs` for what each phase
//! means on resume). Removing the file abandons the upgrade; `current` is then left as it is.
//!
//! Only `upgrade/steps.rs` writes and removes it: a journal is created in one place,
//! [`Journal::record`], which first makes the chain's `data/upgrade-info.json` durable (a power
//! cut can then never leave a journal whose plan file is gone; SDK apps read that file at
//! start-up), and removed in one place, [`Journal::finish`]. Journals written by an earlier
//! cosmovisor are read as they are: the phase names on disk never changed. A journal read
//! back is data on disk like any other (docs/design.md "Trust boundaries"): read with a size cap,
//! and refused when it names an invalid upgrade or a backup folder outside
//! `DAEMON_DATA_BACKUP_DIR`, before anything acts on it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bounded_read::{self, DOCUMENT_CAP, ReadError};
use crate::durable::write_atomic;
use crate::home::layout::Layout;
use crate::home::name::UpgradeName;
use crate::home::plan::Plan;

/// The journal format version; a newer, unknown one is refused rather than misread.
const FORMAT: u32 = 1;

/// How far an upgrade got. Each phase is reached only after all its side effects are durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The upgrade was decided, before the daemon is stopped for it; nothing else is done yet.
    /// On resume the supervisor first waits for that daemon to be gone. Its name in the file, in
    /// `status` and in the metrics stays `stopped`, the one earlier versions wrote, so alert
    /// rules, dashboards and an older cosmovisor keep reading it.
    #[serde(rename = "stopped")]
    Decided,
    /// A backup is being written to `backup.partial`; it becomes `backup.target` when complete.
    BackingUp,
    /// The backup is complete (or skipped).
    BackedUp,
    /// `COSMOVISOR_CUSTOM_PREUPGRADE` succeeded (or is not configured).
    CustomPreUpgradeDone,
    /// The new binary's `pre-upgrade` succeeded; only the switch of `current` is left.
    PreUpgradeDone,
}

impl Phase {
    /// The name used in the journal file and in logs.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Phase::Decided => "stopped",
            Phase::BackingUp => "backing_up",
            Phase::BackedUp => "backed_up",
            Phase::CustomPreUpgradeDone => "custom_pre_upgrade_done",
            Phase::PreUpgradeDone => "pre_upgrade_done",
        }
    }
}

/// Where the backup of this upgrade is being written and where it lands when complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupPaths {
    pub partial: PathBuf,
    pub target: PathBuf,
}

/// The plan, as recorded (enough to rebuild a [`Plan`] without the data file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRecord {
    pub name: String,
    pub raw_name: String,
    pub height: i64,
    #[serde(default)]
    pub info: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub format: u32,
    pub plan: PlanRecord,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupPaths>,
    /// When the upgrade started (RFC 3339), for `status` and logs.
    pub started_at: String,
}

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot read upgrade journal: {err}")]
    Read { err: ReadError },
    #[error(
        "upgrade journal {} is unreadable ({reason}); inspect it, then remove it to abandon the upgrade",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "upgrade journal {} names backup folder {} outside the backup folder {}: set DAEMON_DATA_BACKUP_DIR back to the folder the backup was started in, or inspect the journal and remove it to abandon the upgrade",
        path.display(), folder.display(), backup_dir.display()
    )]
    Outside {
        path: PathBuf,
        folder: PathBuf,
        backup_dir: PathBuf,
    },
    #[error("cannot make {} durable before journaling its plan: {err}", path.display())]
    SyncPlan { path: PathBuf, err: io::Error },
    #[error("cannot write upgrade journal {}: {err}", path.display())]
    Write { path: PathBuf, err: io::Error },
}

impl crate::exit::ExitCode for JournalError {
    fn exit_code(&self) -> u8 {
        crate::exit::UPGRADE_FAILED
    }
}

impl Journal {
    /// Starts the journal of a new upgrade: makes `data/upgrade-info.json` and `data/` durable
    /// (x/upgrade wrote the file without fsync), then durably records the journal.
    pub(in crate::upgrade) fn record(
        plan: &Plan,
        layout: &Layout,
    ) -> Result<Journal, JournalError> {
        sync_plan_file(layout)?;
        let journal = Journal::begin(plan);
        journal.save(&layout.journal_file())?;
        Ok(journal)
    }

    fn begin(plan: &Plan) -> Journal {
        Journal {
            format: FORMAT,
            plan: PlanRecord {
                name: plan.name.as_str().to_owned(),
                raw_name: plan.raw_name.clone(),
                height: plan.height,
                info: plan.info.clone(),
            },
            phase: Phase::Decided,
            backup: None,
            started_at: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }

    /// The plan this journal is about. The name was validated when the journal was written, so
    /// it is only validated again (never re-cased) here.
    pub fn plan(&self) -> Result<Plan, crate::home::name::NameError> {
        Ok(Plan {
            name: UpgradeName::new(&self.plan.name, false)?,
            raw_name: self.plan.raw_name.clone(),
            height: self.plan.height,
            info: self.plan.info.clone(),
        })
    }

    /// Reads the journal at `path`; `None` when no upgrade is under way. A journal whose backup
    /// folders are not where this cosmovisor puts backups (`backup_dir`) is refused.
    pub fn load(path: &Path, backup_dir: &Path) -> Result<Option<Journal>, JournalError> {
        let bytes = match bounded_read::read_capped(path, DOCUMENT_CAP) {
            Ok(bytes) => bytes,
            Err(err) if err.is_missing() => return Ok(None),
            Err(err) => return Err(JournalError::Read { err }),
        };
        let corrupt = |reason: String| JournalError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let journal: Journal =
            serde_json::from_slice(&bytes).map_err(|err| corrupt(err.to_string()))?;
        if journal.format != FORMAT {
            return Err(corrupt(format!(
                "format {} is not supported by this cosmovisor",
                journal.format
            )));
        }
        journal.plan().map_err(|err| corrupt(err.to_string()))?;
        if let Some(backup) = &journal.backup {
            for folder in [&backup.partial, &backup.target] {
                if folder.parent() != Some(backup_dir) {
                    return Err(JournalError::Outside {
                        path: path.to_path_buf(),
                        folder: folder.clone(),
                        backup_dir: backup_dir.to_path_buf(),
                    });
                }
            }
            let target = backup.target.file_name().and_then(|name| name.to_str());
            let partial = backup.partial.file_name().and_then(|name| name.to_str());
            let ours = target.is_some_and(|target| {
                target.starts_with(crate::upgrade::backup::store::PREFIX)
                    && partial == Some(crate::upgrade::backup::store::partial_name(target).as_str())
            });
            if !ours {
                return Err(corrupt(format!(
                    "backup folders {} and {} are not names cosmovisor gives backups",
                    backup.partial.display(),
                    backup.target.display()
                )));
            }
        }
        Ok(Some(journal))
    }

    /// Durably records the journal (temp file, fsync, rename, fsync of the folder).
    fn save(&self, path: &Path) -> Result<(), JournalError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|err| JournalError::Write {
            path: path.to_path_buf(),
            err: io::Error::other(err),
        })?;
        write_atomic(path, &bytes, 0o600).map_err(|err| JournalError::Write {
            path: path.to_path_buf(),
            err,
        })?;
        crate::upgrade::fault::point(self.phase.name());
        Ok(())
    }

    /// Moves to `phase` and records it.
    pub(in crate::upgrade) fn advance(
        &mut self,
        phase: Phase,
        path: &Path,
    ) -> Result<(), JournalError> {
        self.phase = phase;
        self.save(path)
    }

    /// Removes the journal: the upgrade is complete (or abandoned).
    pub(in crate::upgrade) fn finish(path: &Path) -> Result<(), JournalError> {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(JournalError::Write {
                    path: path.to_path_buf(),
                    err,
                });
            }
        }
        if let Some(dir) = path.parent() {
            crate::durable::sync_dir(dir).map_err(|err| JournalError::Write {
                path: path.to_path_buf(),
                err,
            })?;
        }
        Ok(())
    }
}

/// Fsyncs `data/upgrade-info.json` (when it is a regular file) and `data/`.
fn sync_plan_file(layout: &Layout) -> Result<(), JournalError> {
    let file = layout.upgrade_info_file();
    let fail = |path: PathBuf| move |err| JournalError::SyncPlan { path, err };
    match bounded_read::open_regular(&file) {
        Ok(open) => open.sync_all().map_err(fail(file.clone()))?,
        // A manual upgrade has no file; an odd one (a FIFO, a device) holds nothing to keep.
        Err(ReadError::Missing(_) | ReadError::NotRegular { .. }) => {}
        Err(err) => return Err(fail(file)(io::Error::other(err.to_string()))),
    }
    let data = layout.data_dir();
    crate::durable::sync_dir(&data).map_err(fail(data.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(partial: &str, target: &str) -> BackupPaths {
        BackupPaths {
            partial: partial.into(),
            target: target.into(),
        }
    }

    #[test]
    fn round_trips_and_finishes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("upgrade-journal.json");
        let backups = Path::new("/b");
        assert!(Journal::load(&path, backups).unwrap().is_none());
        let plan =
            crate::home::plan::parse(br#"{"name":"V2","height":7,"info":"i"}"#, true).unwrap();
        let mut journal = Journal::begin(&plan);
        journal.save(&path).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "a state file is the owner's only");
        journal.backup = Some(backup(
            "/b/.data-backup-2024-8-5.partial",
            "/b/data-backup-2024-8-5",
        ));
        journal.advance(Phase::BackingUp, &path).unwrap();
        let loaded = Journal::load(&path, backups).unwrap().unwrap();
        assert_eq!(loaded, journal);
        let again = loaded.plan().unwrap();
        assert_eq!(
            (again.name.as_str(), again.raw_name.as_str(), again.height),
            ("v2", "V2", 7)
        );
        Journal::finish(&path).unwrap();
        assert!(Journal::load(&path, backups).unwrap().is_none());
    }

    /// A journal written by an earlier cosmovisor, with the old name of its first phase, is
    /// resumed at that phase.
    /// The alert rules shipped in contrib/prometheus tell a failure before the backup from one
    /// after it by these names: renaming a phase must change them too.
    #[test]
    fn the_shipped_alert_rules_name_the_phases_before_the_backup() {
        let rules = include_str!("../../contrib/prometheus/alerts.yml");
        let before_backup = format!("{}|{}", Phase::Decided.name(), Phase::BackingUp.name());
        assert!(rules.contains(&format!("phase=~\"{before_backup}\"")));
        assert!(rules.contains(&format!("phase!~\"{before_backup}\"")));
    }

    #[test]
    fn the_first_phase_keeps_its_name_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("upgrade-journal.json");
        fs::write(
            &path,
            br#"{"format":1,"plan":{"name":"v2","raw_name":"v2","height":7,"info":""},"phase":"stopped","started_at":"2026-11-26T07:00:00Z"}"#,
        )
        .unwrap();
        let journal = Journal::load(&path, tmp.path()).unwrap().unwrap();
        assert_eq!(journal.phase, Phase::Decided);
        journal.save(&path).unwrap();
        let written = fs::read_to_string(&path).unwrap();
        assert!(written.contains(r#""phase": "stopped""#), "{written}");
    }

    #[test]
    fn corrupt_journal_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("upgrade-journal.json");
        fs::write(&path, b"{not json").unwrap();
        let err = Journal::load(&path, tmp.path()).unwrap_err().to_string();
        assert!(err.contains("upgrade-journal.json is unreadable"), "{err}");
        assert!(err.contains("remove it to abandon the upgrade"), "{err}");
    }

    /// Paths and names in a journal are checked before anything acts on them.
    #[test]
    fn hostile_journals_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("upgrade-journal.json");
        let plan = crate::home::plan::parse(br#"{"name":"v2","height":7}"#, true).unwrap();
        let cases = [
            (
                backup("/victim", "/b/data-backup-2024-8-5"),
                "names backup folder /victim outside the backup folder /b",
            ),
            (
                backup("/b/.data-backup-1.partial", "/b/../data-backup-1"),
                "names backup folder /b/../data-backup-1 outside the backup folder /b",
            ),
            (
                backup("/b/chain-data", "/b/data-backup-1"),
                "are not names cosmovisor gives backups",
            ),
        ];
        for (paths, expected) in cases {
            let mut journal = Journal::begin(&plan);
            journal.backup = Some(paths);
            journal.phase = Phase::BackingUp;
            journal.save(&path).unwrap();
            let err = Journal::load(&path, Path::new("/b"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{err}");
        }
        let mut journal = Journal::begin(&plan);
        journal.plan.name = "..".into();
        journal.save(&path).unwrap();
        let err = Journal::load(&path, Path::new("/b"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside upgrades/"), "{err}");
    }
}
