//! Manual (non-governance) upgrades: the queue in `data/upgrade-info.json.batch`.
//!
//! `add-upgrade --upgrade-height H` and `add-batch-upgrade` put plans here instead of into
//! `data/upgrade-info.json` (which would make the upgrade happen at once: Go's premature
//! upgrades, cosmos-sdk#19227 and #22167). The supervisor starts the daemon with
//! `--halt-height <lowest pending height>`; when the node reports that it halted there, the plan
//! is carried out like a governance one, then removed from the queue. A plan is never applied
//! before the node says it reached the height. The file is a JSON array of plans (Go v1.7's
//! format), written atomically.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bounded_read::{self, DOCUMENT_CAP, ReadError};
use crate::home::layout::{UpgradeName, write_atomic};
use crate::home::plan::{Applied, Plan, PlanError};

/// One queued plan as stored in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    #[serde(default = "zero_time")]
    pub time: String,
    pub height: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub info: String,
}

fn zero_time() -> String {
    "0001-01-01T00:00:00Z".to_owned()
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("cannot read the manual upgrade queue: {0}")]
    Read(ReadError),
    #[error("{} is not a JSON array of upgrade plans: {reason} (fix or remove it)", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("{}: {err}", path.display())]
    Plan { path: PathBuf, err: PlanError },
    #[error("cannot write {}: {err}", path.display())]
    Write { path: PathBuf, err: io::Error },
}

impl crate::exit::ExitCode for BatchError {
    fn exit_code(&self) -> u8 {
        crate::exit::UPGRADE_FAILED
    }
}

impl Entry {
    #[must_use]
    pub fn new(name: &str, height: i64) -> Entry {
        Entry {
            name: name.to_owned(),
            time: zero_time(),
            height,
            info: String::new(),
        }
    }

    fn to_plan(&self, recase: bool) -> Result<Plan, PlanError> {
        if self.height <= 0 {
            return Err(PlanError::BadHeight {
                name: self.name.clone(),
                height: self.height,
            });
        }
        Ok(Plan {
            name: UpgradeName::new(&self.name, recase)?,
            raw_name: self.name.clone(),
            height: self.height,
            info: self.info.clone(),
        })
    }
}

/// The queue, sorted by height; a missing file is an empty queue.
pub fn load(path: &Path) -> Result<Vec<Entry>, BatchError> {
    let bytes = match bounded_read::read_capped(path, DOCUMENT_CAP) {
        Ok(bytes) => bytes,
        Err(err) if err.is_missing() => return Ok(Vec::new()),
        Err(err) => return Err(BatchError::Read(err)),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let mut entries: Vec<Entry> =
        serde_json::from_slice(&bytes).map_err(|err| BatchError::Malformed {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })?;
    entries.sort_by_key(|entry| entry.height);
    Ok(entries)
}

/// Writes the queue (sorted, indented like Go's), or removes the file when it is empty.
pub fn save(path: &Path, entries: &[Entry]) -> Result<(), BatchError> {
    let write = |err| BatchError::Write {
        path: path.to_path_buf(),
        err,
    };
    if entries.is_empty() {
        return match fs::remove_file(path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(write(err)),
            _ => Ok(()),
        };
    }
    let mut sorted = entries.to_vec();
    sorted.sort_by_key(|entry| entry.height);
    let json = serde_json::to_vec_pretty(&sorted).map_err(|err| write(io::Error::other(err)))?;
    write_atomic(path, &json, 0o600).map_err(write)
}

/// The lowest queued plan that is still to be applied; entries at a height in `skip`
/// (`--unsafe-skip-upgrades`) are passed over, whatever else is wrong with them.
pub fn next_due(
    path: &Path,
    applied: &Applied,
    recase: bool,
    skip: &[i64],
) -> Result<Option<Plan>, BatchError> {
    for entry in load(path)? {
        if crate::home::plan::skips_queued(&entry.name, entry.height, applied, skip) {
            continue;
        }
        let plan = entry.to_plan(recase).map_err(|err| BatchError::Plan {
            path: path.to_path_buf(),
            err,
        })?;
        if applied.is_superseded_by(&plan) {
            return Ok(Some(plan));
        }
    }
    Ok(None)
}

/// Removes the entries for `plan` (after it was applied).
pub fn remove(path: &Path, plan: &Plan) -> Result<(), BatchError> {
    let entries = load(path)?;
    let kept: Vec<Entry> = entries
        .iter()
        .filter(|entry| !plan.name.same_as(&entry.name))
        .cloned()
        .collect();
    if kept.len() == entries.len() {
        return Ok(());
    }
    save(path, &kept)
}

/// The daemon's arguments with `--halt-height <height>` added for a `start`, unless the operator
/// already asked for an earlier or equal halt.
#[must_use]
pub fn with_halt_height(args: &[OsString], height: i64) -> Option<Vec<OsString>> {
    if args.first().is_none_or(|first| first != "start") {
        return None;
    }
    let existing = args.iter().enumerate().find_map(|(i, arg)| {
        let arg = arg.to_string_lossy();
        if let Some(value) = arg.strip_prefix("--halt-height=") {
            return value.parse::<i64>().ok();
        }
        (arg == "--halt-height").then(|| args.get(i + 1)?.to_string_lossy().parse::<i64>().ok())?
    });
    if existing.is_some_and(|h| h > 0 && h <= height) {
        return None;
    }
    let mut args: Vec<OsString> = args.to_vec();
    args.push("--halt-height".into());
    args.push(height.to_string().into());
    Some(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::os;

    #[test]
    fn queue_round_trips_sorted_and_removes_applied_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("upgrade-info.json.batch");
        assert!(load(&path).unwrap().is_empty());
        save(&path, &[Entry::new("v3", 30), Entry::new("V2", 20)]).unwrap();
        let entries = load(&path).unwrap();
        assert_eq!(
            entries.iter().map(|e| e.height).collect::<Vec<_>>(),
            vec![20, 30]
        );
        let next = next_due(&path, &Applied::default(), true, &[])
            .unwrap()
            .unwrap();
        assert_eq!((next.name.as_str(), next.height), ("v2", 20));
        let applied = Applied {
            name: Some("v2".into()),
            height: 20,
        };
        assert_eq!(
            next_due(&path, &applied, true, &[])
                .unwrap()
                .unwrap()
                .height,
            30
        );
        assert_eq!(next_due(&path, &applied, true, &[30]).unwrap(), None);
        remove(&path, &next).unwrap();
        assert_eq!(load(&path).unwrap(), vec![Entry::new("v3", 30)]);
        let v3 = next_due(&path, &applied, true, &[]).unwrap().unwrap();
        remove(&path, &v3).unwrap();
        assert!(!path.exists(), "an empty queue removes the file");
    }

    #[test]
    fn malformed_queue_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("b");
        fs::write(&path, b"{\"name\":1}").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("is not a JSON array of upgrade plans"),
            "{err}"
        );
    }

    #[test]
    fn halt_height_is_added_to_start_only() {
        assert_eq!(
            with_halt_height(&os(&["start", "--home", "/h"]), 50),
            Some(os(&["start", "--home", "/h", "--halt-height", "50"]))
        );
        assert_eq!(with_halt_height(&os(&["status"]), 50), None);
        assert_eq!(
            with_halt_height(&os(&["start", "--halt-height", "40"]), 50),
            None
        );
        assert_eq!(
            with_halt_height(&os(&["start", "--halt-height=40"]), 50),
            None
        );
        assert_eq!(
            with_halt_height(&os(&["start", "--halt-height", "90"]), 50),
            Some(os(&["start", "--halt-height", "90", "--halt-height", "50"]))
        );
    }
}
