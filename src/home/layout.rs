//! The folder layout under `$DAEMON_HOME`: typed paths for genesis, upgrades, `current`, the
//! watched plan files and our own state files; the one write this module does — swapping the
//! `current` link atomically; the validation of a home ([`check_root`], [`check_home`]); and the
//! sweep of the temp files a crash left in it ([`remove_crash_leftovers`]).
//!
//! Getters here never create anything (Go's `CurrentBin()` silently creates a link; we do not).
//! Upgrade names are `home::name`; the binary check is `home::binary`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::durable;
use crate::home::name::UpgradeName;

/// The name of the file x/upgrade writes into `data/` (and we copy into `upgrades/<name>/`).
pub const UPGRADE_INFO_FILE: &str = "upgrade-info.json";

/// Paths of one node home. Cheap to clone; holds no open files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    home: PathBuf,
    root: PathBuf,
    daemon_name: String,
}

impl Layout {
    #[must_use]
    pub fn new(home: &Path, daemon_name: &str) -> Layout {
        Layout {
            home: home.to_path_buf(),
            root: home.join("cosmovisor"),
            daemon_name: daemon_name.to_owned(),
        }
    }

    #[must_use]
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `$DAEMON_HOME/cosmovisor`.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    #[must_use]
    pub fn daemon_name(&self) -> &str {
        &self.daemon_name
    }

    /// `$DAEMON_HOME/data`.
    #[must_use]
    pub fn data_dir(&self) -> PathBuf {
        self.home.join("data")
    }

    /// `$DAEMON_HOME/data/upgrade-info.json`, written by x/upgrade at the upgrade height.
    #[must_use]
    pub fn upgrade_info_file(&self) -> PathBuf {
        self.data_dir().join(UPGRADE_INFO_FILE)
    }

    /// `$DAEMON_HOME/data/upgrade-info.json.batch`, the queue of manual upgrades.
    #[must_use]
    pub fn batch_file(&self) -> PathBuf {
        self.data_dir().join("upgrade-info.json.batch")
    }

    #[must_use]
    pub fn genesis_dir(&self) -> PathBuf {
        self.root.join("genesis")
    }

    #[must_use]
    pub fn genesis_bin(&self) -> PathBuf {
        self.bin_in(&self.genesis_dir())
    }

    #[must_use]
    pub fn upgrades_dir(&self) -> PathBuf {
        self.root.join("upgrades")
    }

    /// `cosmovisor/upgrades/<escaped name>`.
    #[must_use]
    pub fn upgrade_dir(&self, name: &UpgradeName) -> PathBuf {
        self.upgrades_dir().join(name.dir_name())
    }

    /// The daemon binary inside a version folder: `<dir>/bin/$DAEMON_NAME`.
    #[must_use]
    pub fn bin_in(&self, version_dir: &Path) -> PathBuf {
        version_dir.join("bin").join(&self.daemon_name)
    }

    /// The record of the plan a version folder was switched to: `<dir>/upgrade-info.json`.
    #[must_use]
    pub fn applied_plan_file(version_dir: &Path) -> PathBuf {
        version_dir.join(UPGRADE_INFO_FILE)
    }

    /// `cosmovisor/current`, a symbolic link to `genesis` or `upgrades/<name>`.
    #[must_use]
    pub fn current_link(&self) -> PathBuf {
        self.root.join("current")
    }

    /// `cosmovisor/config.toml`, written by `init`.
    #[must_use]
    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// Our upgrade journal: present only while an upgrade is under way.
    #[must_use]
    pub fn journal_file(&self) -> PathBuf {
        self.root.join("upgrade-journal.json")
    }

    /// The pid (and start time) of the daemon the supervisor last started.
    #[must_use]
    pub fn daemon_pid_file(&self) -> PathBuf {
        self.root.join(".daemon.pid")
    }

    /// Resolves `current` to the version folder it points at, without creating anything.
    ///
    /// A relative link is resolved against `cosmovisor/` (what we and Go v1.7 write). An absolute
    /// link (Go before v1.7) is used as is; when it dangles because the home was moved or
    /// mounted elsewhere (cosmos-sdk#21891) but the same `genesis` or `upgrades/<x>` exists under
    /// this root, that one is used.
    pub fn current_dir(&self) -> Result<PathBuf, LayoutError> {
        let link = self.current_link();
        let meta = match fs::symlink_metadata(&link) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(LayoutError::CurrentMissing { link });
            }
            Err(err) => {
                return Err(LayoutError::Io { path: link, err });
            }
        };
        if !meta.file_type().is_symlink() {
            return Err(LayoutError::CurrentNotLink { link });
        }
        let target = fs::read_link(&link).map_err(|err| LayoutError::Io {
            path: link.clone(),
            err,
        })?;
        let resolved = if target.is_absolute() {
            target.clone()
        } else {
            self.root.join(&target)
        };
        if resolved.is_dir() {
            return Ok(resolved);
        }
        if target.is_absolute() {
            if let Some(moved) = self.same_version_under_root(&target) {
                return Ok(moved);
            }
        }
        Err(LayoutError::CurrentDangling { link, target })
    }

    /// The version folder `run` starts: the one `current` points at, or `genesis` while
    /// `current` does not exist yet (`run` then creates the link). Changes nothing.
    pub fn version_to_run(&self) -> Result<PathBuf, LayoutError> {
        match self.current_dir() {
            Err(LayoutError::CurrentMissing { .. }) if self.genesis_dir().is_dir() => {
                Ok(self.genesis_dir())
            }
            Err(LayoutError::CurrentMissing { link }) => Err(LayoutError::NothingToRun {
                link,
                genesis: self.genesis_dir(),
                name: self.daemon_name.clone(),
            }),
            other => other,
        }
    }

    /// For an absolute link target ending in `genesis` or `upgrades/<x>`, the same folder under
    /// this root, if it exists.
    fn same_version_under_root(&self, target: &Path) -> Option<PathBuf> {
        let mut parts = target.components().rev();
        let last = parts.next()?.as_os_str().to_owned();
        let candidate = if last == "genesis" {
            self.genesis_dir()
        } else if parts.next()?.as_os_str() == "upgrades" {
            self.upgrades_dir().join(last)
        } else {
            return None;
        };
        candidate.is_dir().then_some(candidate)
    }

    /// Points `current` at `version_dir` (which must lie under `cosmovisor/`) atomically: a new
    /// relative link is made under a temporary name and renamed over `current`, so `current`
    /// always exists and always points at a whole version (Go removes then re-creates it).
    pub fn set_current(&self, version_dir: &Path) -> io::Result<()> {
        let relative = version_dir.strip_prefix(&self.root).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is not inside {}",
                    version_dir.display(),
                    self.root.display()
                ),
            )
        })?;
        let link = self.current_link();
        let temp = durable::temp_name(&link);
        match fs::remove_file(&temp) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        std::os::unix::fs::symlink(relative, &temp)?;
        if let Err(err) = fs::rename(&temp, &link) {
            let _ = fs::remove_file(&temp);
            return Err(err);
        }
        durable::sync_dir(&self.root)
    }
}

/// Why the home cannot be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// Parity: Go's `validate()` fails with `cannot stat home dir: <err>` for every command but
    /// `init`; a mistyped `DAEMON_HOME` must not be filled with new folders.
    #[error(
        "cannot stat home dir {}: No such file or directory (DAEMON_HOME={} has no cosmovisor/ folder: check DAEMON_HOME, or set the home up with `cosmovisor init <path to {name}>`)",
        path.display(),
        path.parent().unwrap_or(path).display()
    )]
    RootMissing { path: PathBuf, name: String },
    #[error("{} is not a directory: move it away and run `cosmovisor init`", path.display())]
    RootNotDir { path: PathBuf },
    #[error(
        "{} does not exist: create it (`mkdir -p {}`) or initialise the node (`{name} init --home {}`)",
        path.display(),
        path.display(),
        home.display()
    )]
    DataMissing {
        path: PathBuf,
        home: PathBuf,
        name: String,
    },
    #[error("{} is not a directory: the node's data folder must be a directory", path.display())]
    DataNotDir { path: PathBuf },
    #[error("{} does not exist", link.display())]
    CurrentMissing { link: PathBuf },
    #[error(
        "{} is not a symbolic link: move it away and run `cosmovisor init` to point it at genesis",
        link.display()
    )]
    CurrentNotLink { link: PathBuf },
    /// Parity: Go's `init` fails with `symlink genesis current: file exists` when `current` is
    /// not a link (v1.7 creates the link relative to the root).
    #[error(
        "symlink genesis current: file exists ({} is not a symbolic link: move it away and run \
         `cosmovisor init` again)",
        link.display()
    )]
    CurrentInTheWay { link: PathBuf },
    #[error(
        "{} points to {}, which does not exist: point it at a version folder (`ln -sfn genesis {}`)",
        link.display(),
        target.display(),
        link.display()
    )]
    CurrentDangling { link: PathBuf, target: PathBuf },
    #[error(
        "{} and {} do not exist: run `cosmovisor init <path to {name}>`",
        link.display(),
        genesis.display()
    )]
    NothingToRun {
        link: PathBuf,
        genesis: PathBuf,
        name: String,
    },
    /// Parity: Go's `init` says `the path "<dir>" already exists but is not a directory` and
    /// `<path> is not a regular file`.
    #[error(
        "{}: move it away and run `cosmovisor init` again",
        in_the_way(path, expected)
    )]
    InTheWay {
        path: PathBuf,
        expected: &'static str,
    },
    #[error("cannot read {}: {err}", path.display())]
    Io { path: PathBuf, err: io::Error },
}

impl crate::exit::ExitCode for LayoutError {
    fn exit_code(&self) -> u8 {
        crate::exit::LAYOUT
    }
}

fn in_the_way(path: &Path, expected: &str) -> String {
    if expected == "directory" {
        format!(
            "the path \"{}\" already exists but is not a directory",
            path.display()
        )
    } else {
        format!("{} is not a {expected}", path.display())
    }
}

/// Checks that `$DAEMON_HOME/cosmovisor` is a folder (every command but `init` needs it),
/// changing nothing.
pub fn check_root(layout: &Layout) -> Result<(), LayoutError> {
    let root = layout.root();
    match fs::metadata(root) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(LayoutError::RootNotDir {
            path: root.to_path_buf(),
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(LayoutError::RootMissing {
            path: root.to_path_buf(),
            name: layout.daemon_name().to_owned(),
        }),
        Err(err) => Err(LayoutError::Io {
            path: root.to_path_buf(),
            err,
        }),
    }
}

/// Checks that the home has the folders a `run` needs, changing nothing.
pub fn check_home(layout: &Layout) -> Result<(), LayoutError> {
    check_root(layout)?;
    let data = layout.data_dir();
    match fs::metadata(&data) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(LayoutError::DataNotDir { path: data }),
        Err(_) => Err(LayoutError::DataMissing {
            path: data,
            home: layout.home().to_path_buf(),
            name: layout.daemon_name().to_owned(),
        }),
    }
}

/// Removes the temp files (`durable::temp_name`, made by every durable write and by
/// `set_current`) that a crash or a power cut left in the folders we own: `cosmovisor/`,
/// the version folders and their `bin/`, and our own two files' temps in `data/`. A temp of a
/// process that is still running (an `add-upgrade` under way) is left alone. Returns what was
/// removed.
pub fn remove_crash_leftovers(layout: &Layout) -> Vec<PathBuf> {
    let mut folders = vec![layout.root().to_path_buf()];
    let mut versions = vec![layout.genesis_dir()];
    if let Ok(entries) = fs::read_dir(layout.upgrades_dir()) {
        versions.extend(entries.filter_map(Result::ok).map(|entry| entry.path()));
    }
    for version in versions {
        folders.push(version.join("bin"));
        folders.push(version);
    }
    let mut removed = Vec::new();
    for folder in folders {
        removed.extend(remove_temps_in(&folder, |_| true));
    }
    let ours_in_data = [
        UPGRADE_INFO_FILE.to_owned(),
        format!("{UPGRADE_INFO_FILE}.batch"),
    ];
    removed.extend(remove_temps_in(&layout.data_dir(), |base| {
        ours_in_data.iter().any(|ours| base == ours)
    }));
    removed
}

fn remove_temps_in(folder: &Path, ours: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some((base, pid)) = name.to_str().and_then(durable::temp_of) else {
            continue;
        };
        if !ours(base) || process_exists(pid) {
            continue;
        }
        let path = entry.path();
        let is_file = fs::symlink_metadata(&path).is_ok_and(|meta| !meta.is_dir());
        if is_file && fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// Whether a process with this pid exists (ours included).
fn process_exists(pid: i32) -> bool {
    if pid <= 0 {
        return true;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Err(nix::errno::Errno::ESRCH) => false,
        Ok(()) | Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::home::name::UpgradeName;

    #[test]
    fn paths() {
        let layout = Layout::new(Path::new("/h"), "simd");
        assert_eq!(
            layout.genesis_bin(),
            PathBuf::from("/h/cosmovisor/genesis/bin/simd")
        );
        let name = UpgradeName::new("some spaces", true).unwrap();
        assert_eq!(
            layout.bin_in(&layout.upgrade_dir(&name)),
            PathBuf::from("/h/cosmovisor/upgrades/some%20spaces/bin/simd")
        );
        assert_eq!(
            layout.upgrade_info_file(),
            PathBuf::from("/h/data/upgrade-info.json")
        );
    }

    #[test]
    fn current_link_relative_absolute_and_broken() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path(), "simd");
        fs::create_dir_all(layout.genesis_dir()).unwrap();
        let v2 = layout.upgrades_dir().join("v2");
        fs::create_dir_all(&v2).unwrap();

        assert!(matches!(
            layout.current_dir(),
            Err(LayoutError::CurrentMissing { .. })
        ));
        layout.set_current(&layout.genesis_dir()).unwrap();
        assert_eq!(
            fs::read_link(layout.current_link()).unwrap(),
            PathBuf::from("genesis")
        );
        assert_eq!(layout.current_dir().unwrap(), layout.genesis_dir());

        layout.set_current(&v2).unwrap();
        assert_eq!(
            fs::read_link(layout.current_link()).unwrap(),
            PathBuf::from("upgrades/v2")
        );
        assert_eq!(layout.current_dir().unwrap(), v2);

        // An absolute link left by Go before v1.7.
        fs::remove_file(layout.current_link()).unwrap();
        std::os::unix::fs::symlink(&v2, layout.current_link()).unwrap();
        assert_eq!(layout.current_dir().unwrap(), v2);

        // An absolute link from a home that was mounted elsewhere.
        fs::remove_file(layout.current_link()).unwrap();
        std::os::unix::fs::symlink("/old/home/cosmovisor/upgrades/v2", layout.current_link())
            .unwrap();
        assert_eq!(layout.current_dir().unwrap(), v2);

        fs::remove_file(layout.current_link()).unwrap();
        std::os::unix::fs::symlink("upgrades/v3", layout.current_link()).unwrap();
        assert!(matches!(
            layout.current_dir(),
            Err(LayoutError::CurrentDangling { .. })
        ));

        fs::remove_file(layout.current_link()).unwrap();
        fs::write(layout.current_link(), b"x").unwrap();
        assert!(matches!(
            layout.current_dir(),
            Err(LayoutError::CurrentNotLink { .. })
        ));
    }

    #[test]
    fn crash_leftovers_of_dead_processes_only() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path(), "simd");
        fs::create_dir_all(layout.genesis_dir().join("bin")).unwrap();
        fs::create_dir_all(layout.data_dir()).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let ours = std::process::id();
        let gone = [
            layout
                .root()
                .join(format!(".upgrade-journal.json.tmp-{dead}")),
            layout.genesis_dir().join(format!("bin/.simd.tmp-{dead}")),
            layout
                .data_dir()
                .join(format!(".upgrade-info.json.tmp-{dead}")),
        ];
        let kept = [
            layout
                .root()
                .join(format!(".upgrade-journal.json.tmp-{ours}")),
            layout.root().join(format!("x.tmp-{dead}")),
            layout
                .data_dir()
                .join(format!(".application.db.tmp-{dead}")),
        ];
        for path in gone.iter().chain(&kept) {
            fs::write(path, "x").unwrap();
        }
        let mut removed = remove_crash_leftovers(&layout);
        removed.sort();
        let mut expected = gone.to_vec();
        expected.sort();
        assert_eq!(removed, expected);
        assert!(kept.iter().all(|path| path.exists()));
    }

    /// Every file a durable write or `set_current` makes in the home: the sweep must recognise
    /// each one's [`durable::temp_name`], so a new writer cannot leave temps it misses.
    #[test]
    fn the_sweep_removes_what_temp_name_makes() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path(), "simd");
        let v2 = layout.upgrade_dir(&UpgradeName::new("v2", true).unwrap());
        for dir in [layout.genesis_dir(), v2.clone()] {
            fs::create_dir_all(dir.join("bin")).unwrap();
        }
        fs::create_dir_all(layout.data_dir()).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let written = [
            layout.current_link(),
            layout.journal_file(),
            layout.config_file(),
            layout.daemon_pid_file(),
            layout.genesis_bin(),
            layout.bin_in(&v2),
            Layout::applied_plan_file(&v2),
            layout.upgrade_info_file(),
            layout.batch_file(),
        ];
        let mut temps: Vec<PathBuf> = written
            .iter()
            .map(|path| durable::temp_name_of(path, dead))
            .collect();
        for temp in &temps {
            fs::write(temp, "x").unwrap();
        }
        let mut removed = remove_crash_leftovers(&layout);
        removed.sort();
        temps.sort();
        assert_eq!(removed, temps);
    }
}
