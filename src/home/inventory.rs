//! What is installed in a home, read without changing anything: the version folders (genesis and
//! `upgrades/*`) with the plan each was switched to, the version `current` points at, and folder sizes. Shared by `status`, `doctor`, `rollback` and the metrics.
//!
//! It decides nothing and writes nothing; paths come from [`Layout`], plan parsing from `plan.rs`.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::bounded_read;
use crate::home::layout::Layout;
use crate::home::name::UpgradeName;
use crate::home::plan::{self, Applied, Plan};

/// The name `status` and `rollback --to` use for the genesis folder.
pub const GENESIS: &str = "genesis";

/// One version folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// `genesis`, or the folder name under `upgrades/`.
    pub name: String,
    pub dir: PathBuf,
    /// The plan recorded in `<dir>/upgrade-info.json` when `current` was switched to it.
    pub applied: Applied,
}

impl Version {
    #[must_use]
    pub fn is_genesis(&self) -> bool {
        self.name == GENESIS
    }

    /// The height this version took over at: 0 for genesis, `None` for an upgrade folder that
    /// was never switched to (no record).
    #[must_use]
    pub fn height(&self) -> Option<i64> {
        if self.is_genesis() {
            Some(0)
        } else {
            self.applied.name.as_ref().map(|_| self.applied.height)
        }
    }
}

/// Genesis (when it exists) and every folder under `upgrades/`, genesis first, then by name.
pub fn versions(layout: &Layout) -> io::Result<Vec<Version>> {
    let mut out = Vec::new();
    if layout.genesis_dir().is_dir() {
        out.push(version(GENESIS, layout.genesis_dir()));
    }
    let mut upgrades = Vec::new();
    match fs::read_dir(layout.upgrades_dir()) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                // Hidden folders are ours in the making (a download's staging folder).
                if name.starts_with('.') || !entry.path().is_dir() {
                    continue;
                }
                upgrades.push(version(&name, entry.path()));
            }
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    upgrades.sort_by(|a, b| a.name.cmp(&b.name));
    out.extend(upgrades);
    Ok(out)
}

fn version(name: &str, dir: PathBuf) -> Version {
    Version {
        name: name.to_owned(),
        applied: plan::read_applied(&dir),
        dir,
    }
}

/// The `status` name of a version folder: `genesis` or its folder name under `upgrades/`.
#[must_use]
pub fn version_name(layout: &Layout, dir: &Path) -> String {
    if dir == layout.genesis_dir() {
        return GENESIS.to_owned();
    }
    dir.file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned())
}

/// The version folder an operator names: `genesis`, an existing folder name under `upgrades/`,
/// or an upgrade name as a plan would give it (recased and escaped like one).
#[must_use]
pub fn find_version<'a>(
    versions: &'a [Version],
    wanted: &str,
    recase: bool,
) -> Option<&'a Version> {
    if let Some(found) = versions.iter().find(|v| v.name == wanted) {
        return Some(found);
    }
    let dir_name = UpgradeName::new(wanted, recase).ok()?.dir_name();
    versions
        .iter()
        .find(|v| !v.is_genesis() && v.name == dir_name)
}

/// A folder under `upgrades/` whose name equals `dir_name` except for case (for the doctor's
/// "exists with a different case" hint).
#[must_use]
pub fn case_variant(layout: &Layout, dir_name: &str) -> Option<String> {
    let entries = fs::read_dir(layout.upgrades_dir()).ok()?;
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|name| name != dir_name && name.to_lowercase() == dir_name.to_lowercase())
}

/// The pending plan in `data/upgrade-info.json`: `Ok(None)` when there is none.
pub fn pending_plan(layout: &Layout, recase: bool) -> Result<Option<Plan>, String> {
    let path = layout.upgrade_info_file();
    match bounded_read::read_capped(&path, bounded_read::DOCUMENT_CAP) {
        Ok(bytes) => plan::parse(&bytes, recase)
            .map(Some)
            .map_err(|err| format!("{}: {err}", path.display())),
        Err(err) if err.is_missing() => Ok(None),
        Err(err) => Err(err.to_string()),
    }
}

/// What a binary file is like, without running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinaryState {
    pub present: bool,
    pub regular: bool,
    pub executable: bool,
}

#[must_use]
pub fn binary_state(path: &Path) -> BinaryState {
    match fs::metadata(path) {
        Ok(meta) => BinaryState {
            present: true,
            regular: meta.is_file(),
            executable: meta.is_file() && meta.permissions().mode() & 0o111 != 0,
        },
        Err(_) => BinaryState {
            present: false,
            regular: false,
            executable: false,
        },
    }
}

/// The apparent size in bytes of every regular file under `path` (symbolic links not followed),
/// which is what a backup copies.
pub fn tree_size(path: &Path) -> io::Result<u64> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    if !meta.is_dir() {
        return Ok(0);
    }
    let mut total = 0u64;
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                total = total.saturating_add(entry.metadata()?.size());
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> (tempfile::TempDir, Layout) {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path(), "simd");
        fs::create_dir_all(layout.genesis_dir().join("bin")).unwrap();
        for (name, record) in [
            ("v2", Some(r#"{"name":"v2","height":10}"#)),
            ("v3", Some(r#"{"name":"v3","height":20}"#)),
            ("V4", None),
        ] {
            let dir = layout.upgrades_dir().join(name);
            fs::create_dir_all(&dir).unwrap();
            if let Some(record) = record {
                fs::write(dir.join("upgrade-info.json"), record).unwrap();
            }
        }
        fs::create_dir_all(layout.upgrades_dir().join(".v5.partial")).unwrap();
        (tmp, layout)
    }

    #[test]
    fn lists_versions_with_heights() {
        let (_tmp, layout) = home();
        let versions = versions(&layout).unwrap();
        let names: Vec<(&str, Option<i64>)> = versions
            .iter()
            .map(|v| (v.name.as_str(), v.height()))
            .collect();
        assert_eq!(
            names,
            [
                ("genesis", Some(0)),
                ("V4", None),
                ("v2", Some(10)),
                ("v3", Some(20))
            ]
        );
        assert_eq!(
            find_version(&versions, "V3", true).map(|v| v.name.as_str()),
            Some("v3")
        );
        assert_eq!(
            find_version(&versions, "V4", true).map(|v| v.name.as_str()),
            Some("V4")
        );
        assert!(find_version(&versions, "v9", true).is_none());
        assert_eq!(case_variant(&layout, "v4"), Some("V4".to_owned()));
        assert_eq!(case_variant(&layout, "v2"), None);
        assert_eq!(version_name(&layout, &layout.genesis_dir()), "genesis");
    }
}
