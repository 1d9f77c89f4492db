//! Manual (non-governance) upgrades: the queue in `data/upgrade-info.json.batch`.
//!
//! `add-upgrade --upgrade-height H` and `add-batch-upgrade` put plans here instead of into
//! `data/upgrade-info.json` (which would make the upgrade happen at once: Go's premature
//! upgrades, cosmos-sdk#19227 and #22167). The supervisor starts the daemon with
//! `--halt-height <lowest pending height>`; when the node reports that it halted there, the plan
//! is carried out like a governance one, then removed from the queue. A plan is never applied
//! before the node says it reached the height. The file is a JSON array of plans (Go v1.7's
//! format), written atomically.
//!
//! One writer at a time: `add-upgrade`, `add-batch-upgrade` and the supervisor's removal of an
//! applied plan read, change and write the queue through [`update`], under an exclusive `flock` on
//! `upgrade-info.json.batch.lock` beside it (created `0600`: only the home's owner can take it), so
//! neither loses the other's change. Two plans at one height are refused: the node can halt for
//! only one of them.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use serde::{Deserialize, Serialize};

use crate::bounded_read::{self, DOCUMENT_CAP, ReadError};
use crate::durable::{open_lock_file, write_atomic};
use crate::home::name::UpgradeName;
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
    #[error("cannot lock the manual upgrade queue with {}: {err}", path.display())]
    Lock { path: PathBuf, err: io::Error },
    #[error(
        "{} schedules {first} and {second} both at height {height}: the node can halt for only one; remove one of them",
        path.display()
    )]
    SameHeight {
        path: PathBuf,
        first: String,
        second: String,
        height: i64,
    },
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
    if let Some(pair) = entries
        .windows(2)
        .find(|pair| pair[0].height == pair[1].height)
    {
        return Err(BatchError::SameHeight {
            path: path.to_path_buf(),
            first: pair[0].name.clone(),
            second: pair[1].name.clone(),
            height: pair[0].height,
        });
    }
    Ok(entries)
}

/// Reads the queue, lets `change` change it, and writes it back when it changed, all under the
/// queue's lock. When `change` fails nothing is written.
pub fn update<T, E: From<BatchError>>(
    path: &Path,
    change: impl FnOnce(&mut Vec<Entry>) -> Result<T, E>,
) -> Result<T, E> {
    let _lock = lock(path)?;
    let mut entries = load(path)?;
    let before = entries.clone();
    let out = change(&mut entries)?;
    if entries != before {
        save(path, &entries)?;
    }
    Ok(out)
}

/// Takes the queue's lock, waiting for another writer to finish (each holds it only to read and
/// write the small file).
fn lock(path: &Path) -> Result<Flock<File>, BatchError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let failed = |err| BatchError::Lock {
        path: lock_path.clone(),
        err,
    };
    let file = open_lock_file(&lock_path).map_err(failed)?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| failed(io::Error::from(errno)))
}

/// Writes the queue (sorted, indented like Go's), or removes the file when it is empty. Callers
/// that change what is there go through [`update`].
fn save(path: &Path, entries: &[Entry]) -> Result<(), BatchError> {
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

/// Every queued plan, lowest height first, each checked (name and height): the one rule of what
/// makes the queue usable, for the supervisor at start and while it runs, `status` and `doctor`.
pub fn plans(path: &Path, recase: bool) -> Result<Vec<Plan>, BatchError> {
    load(path)?
        .iter()
        .map(|entry| {
            entry.to_plan(recase).map_err(|err| BatchError::Plan {
                path: path.to_path_buf(),
                err,
            })
        })
        .collect()
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
    // No queue, nothing to remove (and no lock file to create in data/).
    if fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    update(path, |entries: &mut Vec<Entry>| {
        entries.retain(|entry| !plan.name.same_as(&entry.name));
        Ok::<(), BatchError>(())
    })
}

/// The `--halt-height` the daemon runs with for `args`: the last one given (the flag parser's
/// rule), when it is a height.
#[must_use]
pub fn halt_height_of(args: &[OsString]) -> Option<i64> {
    args.iter()
        .enumerate()
        .filter_map(|(i, arg)| {
            let arg = arg.to_string_lossy();
            if let Some(value) = arg.strip_prefix("--halt-height=") {
                return value.parse::<i64>().ok();
            }
            (arg == "--halt-height")
                .then(|| args.get(i + 1)?.to_string_lossy().parse::<i64>().ok())?
        })
        .next_back()
        .filter(|height| *height > 0)
}

/// The daemon's arguments with `--halt-height <height>` added for a `start`, unless the operator
/// already asked for an earlier or equal halt.
#[must_use]
pub fn with_halt_height(args: &[OsString], height: i64) -> Option<Vec<OsString>> {
    if args.first().is_none_or(|first| first != "start") {
        return None;
    }
    if halt_height_of(args).is_some_and(|existing| existing <= height) {
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
    fn concurrent_writers_never_lose_each_others_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("upgrade-info.json.batch");
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let height = 1 + writer * 1000 + i;
                        update(&path, |entries| {
                            entries.push(Entry::new(&format!("u{height}"), height));
                            Ok::<(), BatchError>(())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        assert_eq!(load(&path).unwrap().len(), 100);
        let mut lock_name = path.clone().into_os_string();
        lock_name.push(".lock");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &fs::metadata(PathBuf::from(lock_name))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn two_plans_at_one_height_and_bad_entries_make_the_queue_unusable() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("b");
        fs::write(
            &path,
            r#"[{"name":"a","height":5},{"name":"b","height":5}]"#,
        )
        .unwrap();
        assert!(matches!(
            load(&path),
            Err(BatchError::SameHeight { height: 5, .. })
        ));
        fs::write(&path, r#"[{"name":"..","height":5}]"#).unwrap();
        assert!(load(&path).is_ok());
        assert!(matches!(plans(&path, true), Err(BatchError::Plan { .. })));
        let failed = update(&path, |entries| {
            entries.clear();
            Err::<(), _>(BatchError::Malformed {
                path: path.clone(),
                reason: "refused".into(),
            })
        });
        assert!(failed.is_err());
        assert!(path.exists(), "a failed change writes nothing");
    }

    #[test]
    fn the_last_halt_height_flag_is_the_one_the_node_uses() {
        assert_eq!(halt_height_of(&os(&["start"])), None);
        assert_eq!(
            halt_height_of(&os(&["start", "--halt-height", "90"])),
            Some(90)
        );
        assert_eq!(
            halt_height_of(&os(&["start", "--halt-height=90", "--halt-height", "50"])),
            Some(50)
        );
        assert_eq!(halt_height_of(&os(&["start", "--halt-height", "0"])), None);
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
