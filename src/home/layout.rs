//! The folder layout under `$DAEMON_HOME`: typed paths for genesis, upgrades, `current`, the
//! watched plan files and our own state files, upgrade-name normalisation, and the one write this
//! module does — swapping the `current` link atomically.
//!
//! Getters here never create anything (Go's `CurrentBin()` silently creates a link; we do not).
//! Checking that a binary is runnable is [`check_binary`]; making one executable is the caller's
//! explicit decision ([`make_executable`]); a version's own `lib/` reaches its binary through
//! [`library_path_env`].

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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
        let temp = self
            .root
            .join(format!("current.tmp-{}", std::process::id()));
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
        sync_dir(&self.root)
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

/// Why a daemon binary cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("binary {} does not exist: {}", path.display(), missing_hint(path, holds.as_ref()))]
    Missing {
        path: PathBuf,
        /// What the binary's folder holds instead (a few names, sorted; `None` when the folder
        /// cannot be read): a `DAEMON_NAME` typo shows here.
        holds: Option<Vec<String>>,
    },
    #[error("binary {} is not a regular file", path.display())]
    NotRegular { path: PathBuf },
    #[error(
        "binary {} is not an executable for this machine: {why}; replace it with the build for this machine",
        path.display()
    )]
    NotForThisMachine { path: PathBuf, why: String },
    #[error(
        "binary {} is a script whose #! line {why}: install the interpreter or fix the script's first line",
        path.display()
    )]
    BadInterpreter { path: PathBuf, why: String },
    #[error("binary {} is not executable (fix: chmod 755 {})", path.display(), path.display())]
    NotExecutable { path: PathBuf },
    #[error("cannot inspect binary {}: {err}", path.display())]
    Io { path: PathBuf, err: io::Error },
}

impl crate::exit::ExitCode for BinaryError {
    fn exit_code(&self) -> u8 {
        crate::exit::LAYOUT
    }
}

/// How many of the names found next to a missing binary its error lists.
const HOLDS_LISTED: usize = 5;

/// The fix for a missing binary: what its folder holds instead (a `DAEMON_NAME` typo), or that
/// the binary is to be put there.
fn missing_hint(path: &Path, holds: Option<&Vec<String>>) -> String {
    let dir = path.parent().unwrap_or(path);
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let holds = match holds {
        Some(holds) if !holds.is_empty() => holds,
        _ => {
            let state = if holds.is_some() {
                "is empty"
            } else {
                "is missing or unreadable"
            };
            return format!(
                "{} {state} (put the {name} binary there, chmod 755)",
                dir.display()
            );
        }
    };
    let more = if holds.len() > HOLDS_LISTED {
        ", …"
    } else {
        ""
    };
    format!(
        "{} holds {}{more} (is DAEMON_NAME={name} a typo?)",
        dir.display(),
        holds[..holds.len().min(HOLDS_LISTED)].join(", ")
    )
}

/// The names in `dir`, sorted; `None` when it cannot be read. One more than [`HOLDS_LISTED`]
/// at most are kept, so a hint can say there are more.
fn folder_names(dir: &Path) -> Option<Vec<String>> {
    let entries = fs::read_dir(dir).ok()?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.truncate(HOLDS_LISTED + 1);
    Some(names)
}

/// Checks that `path` (links followed) is a regular file this machine can execute (see
/// [`check_format`]) with an execute bit set. The format comes first, so a caller that adds a
/// missing execute bit never makes a text file runnable.
pub fn check_binary(path: &Path) -> Result<(), BinaryError> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(BinaryError::Missing {
                path: path.to_path_buf(),
                holds: path.parent().and_then(folder_names),
            });
        }
        Err(err) => {
            return Err(BinaryError::Io {
                path: path.to_path_buf(),
                err,
            });
        }
    };
    if !meta.is_file() {
        return Err(BinaryError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    check_format(path)?;
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(BinaryError::NotExecutable {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Checks that the regular file at `path` is an ELF binary for this machine or a `#!` script
/// (anything else the C library would hand to `/bin/sh`). A file we may execute but not read
/// (mode `0711`) cannot be inspected and passes: the kernel decides at `exec`.
pub fn check_format(path: &Path) -> Result<(), BinaryError> {
    use std::io::Read;
    let io_err = |err: io::Error| BinaryError::Io {
        path: path.to_path_buf(),
        err,
    };
    let file = match crate::bounded_read::open_regular(path) {
        Ok(file) => file,
        Err(crate::bounded_read::ReadError::Missing(path)) => {
            let holds = path.parent().and_then(folder_names);
            return Err(BinaryError::Missing { path, holds });
        }
        Err(crate::bounded_read::ReadError::NotRegular { path, .. }) => {
            return Err(BinaryError::NotRegular { path });
        }
        Err(crate::bounded_read::ReadError::Io { source, .. })
            if source.kind() == io::ErrorKind::PermissionDenied =>
        {
            return Ok(());
        }
        // Its message names the file and the call that failed; the read error is kept inside.
        Err(err) => return Err(io_err(io::Error::other(err))),
    };
    let size = file.metadata().map_err(io_err)?.len();
    let mut head = Vec::with_capacity(crate::elf::HEAD_LEN);
    file.take(crate::elf::HEAD_LEN as u64)
        .read_to_end(&mut head)
        .map_err(io_err)?;
    if let Some(why) = crate::elf::refusal(&head, size) {
        return Err(BinaryError::NotForThisMachine {
            path: path.to_path_buf(),
            why,
        });
    }
    match crate::elf::interpreter(&head).and_then(interpreter_refusal) {
        None => Ok(()),
        Some(why) => Err(BinaryError::BadInterpreter {
            path: path.to_path_buf(),
            why,
        }),
    }
}

/// Why the interpreter a `#!` line names cannot run the script (as `execve` would find it), or
/// `None` when it can: it must be an absolute path to an executable regular file.
fn interpreter_refusal(interpreter: &[u8]) -> Option<String> {
    use std::os::unix::ffi::OsStrExt as _;
    let shown = crate::elf::escape(interpreter);
    if interpreter.is_empty() {
        return Some("names no interpreter".to_owned());
    }
    let path = Path::new(std::ffi::OsStr::from_bytes(interpreter));
    if !path.is_absolute() {
        return Some(format!(
            "names the relative interpreter {shown}, which would be looked up from whatever folder the node starts in"
        ));
    }
    match fs::metadata(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Some(format!(
            "names the interpreter {shown}, which does not exist"
        )),
        Err(err) => Some(format!(
            "names the interpreter {shown}, which cannot be inspected: {err}"
        )),
        Ok(meta) if !meta.is_file() => Some(format!(
            "names the interpreter {shown}, which is not a regular file"
        )),
        Ok(_) if nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_err() => Some(
            format!("names the interpreter {shown}, which is not executable"),
        ),
        Ok(_) => None,
    }
}

/// `LD_LIBRARY_PATH` with the version's own `lib/` first (for `libwasmvm.so` shipped beside the
/// binary), when that folder exists.
#[must_use]
pub fn library_path_env(version_dir: &Path) -> Option<(OsString, OsString)> {
    let lib = version_dir.join("lib");
    if !lib.is_dir() {
        return None;
    }
    let mut value = lib.into_os_string();
    if let Some(existing) = std::env::var_os("LD_LIBRARY_PATH").filter(|v| !v.is_empty()) {
        value.push(":");
        value.push(existing);
    }
    Some((OsString::from("LD_LIBRARY_PATH"), value))
}

/// Adds `a+x` to a regular file, as Go v1.5+ `EnsureBinary` does.
pub fn make_executable(path: &Path) -> io::Result<()> {
    let mut perms = fs::metadata(path)?.permissions();
    perms.set_mode(perms.mode() | 0o111);
    fs::set_permissions(path, perms)
}

/// Flushes a directory's entries (a rename or new link inside it) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Opens (creating it `0600` when missing) a lock file: readable and writable by its owner only,
/// never through a symbolic link, and not inherited by children (docs/design.md "Trust
/// boundaries": locks are the home owner's only).
pub fn open_lock_file(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
}

/// `create_dir_all` whose new folders survive a power cut: the parent of each folder it created
/// is fsynced.
pub fn create_dir_all_durable(dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|path| !path.exists()).collect();
    fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` crash-safely: temp file in the same folder, fsync, rename, fsync of
/// the folder. Readers see the old content or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .map_or_else(|| "file".into(), |name| name.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Removes the temp files (`<name>.tmp-<pid>`, made by [`write_atomic`], `set_current` and the
/// staging of binaries) that a crash or a power cut left in the folders we own: `cosmovisor/`,
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
        ours_in_data.iter().any(|ours| base == format!(".{ours}"))
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
        let Some((base, pid)) = name.to_str().and_then(|name| name.rsplit_once(".tmp-")) else {
            continue;
        };
        let named_like_ours = base == "current" || (base.starts_with('.') && base.len() > 1);
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        if !named_like_ours || !ours(base) || process_exists(pid) {
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

/// A validated, normalised upgrade name and the folder name it maps to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpgradeName(String);

/// Why a plan name cannot name an upgrade folder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("upgrade name is empty")]
    Empty,
    #[error("upgrade name {0:?} is not allowed: it would name a folder outside upgrades/")]
    Escapes(String),
    #[error("upgrade name {0:?} contains a NUL byte")]
    Nul(String),
    #[error(
        "upgrade name {:?} cannot name a folder: its folder name is {len} bytes, longer than {MAX_DIR_NAME} bytes",
        shortened(.name)
    )]
    TooLong { name: String, len: usize },
}

/// The longest file name Linux file systems take (`NAME_MAX`).
const MAX_DIR_NAME: usize = 255;

/// The first 40 characters of a name, for messages about a name too long to print whole.
fn shortened(name: &str) -> String {
    match name.char_indices().nth(40) {
        Some((end, _)) => format!("{}…", &name[..end]),
        None => name.to_owned(),
    }
}

impl UpgradeName {
    /// Normalises a plan name: lower-cased (Go `strings.ToLower`, Unicode-aware) unless `recase`
    /// is off (`COSMOVISOR_DISABLE_RECASE=true`). Names that would leave `upgrades/` are refused.
    pub fn new(raw: &str, recase: bool) -> Result<UpgradeName, NameError> {
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        if raw.contains('\0') {
            return Err(NameError::Nul(raw.to_owned()));
        }
        let name = if recase {
            raw.to_lowercase()
        } else {
            raw.to_owned()
        };
        // After escaping, '/' is "%2F", so only "." and ".." can still name a parent or self.
        if name == "." || name == ".." {
            return Err(NameError::Escapes(raw.to_owned()));
        }
        // Refused here, before anything is journaled: a folder that cannot be created would
        // otherwise fail every later start with `File name too long`.
        let len = path_escape(&name).len();
        if len > MAX_DIR_NAME {
            return Err(NameError::TooLong {
                name: raw.to_owned(),
                len,
            });
        }
        Ok(UpgradeName(name))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The folder name: Go's `url.PathEscape` of the name.
    #[must_use]
    pub fn dir_name(&self) -> String {
        path_escape(&self.0)
    }

    /// Same upgrade, whatever the case (Go compares with `strings.EqualFold`).
    #[must_use]
    pub fn same_as(&self, other: &str) -> bool {
        self.0.to_lowercase() == other.to_lowercase()
    }
}

impl fmt::Display for UpgradeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Go's `url.PathEscape`: unreserved characters and `$&+:=@` stay, everything else is `%XX`
/// (upper-case hex, per UTF-8 byte).
#[must_use]
pub fn path_escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'-' | b'_' | b'.' | b'~' | b'$' | b'&' | b'+' | b':' | b'=' | b'@'
            );
        if keep {
            out.push(char::from(byte));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go_path_escape() {
        let cases = [
            ("myUpgrade", "myUpgrade"),
            ("some spaces", "some%20spaces"),
            ("a/b", "a%2Fb"),
            ("v1.2.3-rc.1_x~", "v1.2.3-rc.1_x~"),
            ("a;b,c?d", "a%3Bb%2Cc%3Fd"),
            ("$&+:=@", "$&+:=@"),
            ("ä", "%C3%A4"),
            ("100%", "100%25"),
        ];
        for (name, want) in cases {
            assert_eq!(path_escape(name), want, "escaping {name:?}");
        }
    }

    #[test]
    fn names_are_recased_unless_disabled() {
        assert_eq!(UpgradeName::new("V8-Rho", true).unwrap().as_str(), "v8-rho");
        assert_eq!(
            UpgradeName::new("V8-Rho", false).unwrap().as_str(),
            "V8-Rho"
        );
        assert!(UpgradeName::new("v8-rho", false).unwrap().same_as("V8-RHO"));
    }

    #[test]
    fn hostile_names_are_refused() {
        assert_eq!(UpgradeName::new("", true), Err(NameError::Empty));
        assert_eq!(
            UpgradeName::new("..", true),
            Err(NameError::Escapes("..".into()))
        );
        assert_eq!(
            UpgradeName::new(".", true),
            Err(NameError::Escapes(".".into()))
        );
        assert_eq!(
            UpgradeName::new("a\0b", true),
            Err(NameError::Nul("a\0b".into()))
        );
        // "../x" is harmless once escaped: it names one folder inside upgrades/.
        let name = UpgradeName::new("../x", true).unwrap();
        assert_eq!(name.dir_name(), "..%2Fx");
        let layout = Layout::new(Path::new("/h"), "simd");
        assert_eq!(
            layout.upgrade_dir(&name),
            PathBuf::from("/h/cosmovisor/upgrades/..%2Fx")
        );
        // The folder name counts after escaping: 85 '/' are 255 bytes, 86 are too many.
        assert!(UpgradeName::new(&"/".repeat(85), true).is_ok());
        let err = UpgradeName::new(&"/".repeat(86), true).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "upgrade name \"{}…\" cannot name a folder: its folder name is 258 bytes, longer than 255 bytes",
                "/".repeat(40)
            )
        );
    }

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
    fn binary_checks() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("simd");
        assert!(matches!(
            check_binary(&bin),
            Err(BinaryError::Missing { .. })
        ));
        fs::write(&bin, b"#!/bin/sh\n").unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            check_binary(&bin),
            Err(BinaryError::NotExecutable { .. })
        ));
        make_executable(&bin).unwrap();
        check_binary(&bin).unwrap();
        fs::write(&bin, b"<html>").unwrap();
        assert!(matches!(
            check_binary(&bin),
            Err(BinaryError::NotForThisMachine { .. })
        ));
        fs::write(&bin, b"").unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            matches!(check_binary(&bin), Err(BinaryError::NotForThisMachine { why, .. }) if why == "an empty file"),
            "the format is checked before the execute bit"
        );
        assert!(matches!(
            check_binary(tmp.path()),
            Err(BinaryError::NotRegular { .. })
        ));
    }

    #[test]
    fn durable_create_makes_every_missing_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("a/b/c");
        create_dir_all_durable(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_all_durable(&deep).unwrap();
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

    #[test]
    fn atomic_write_replaces_content() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f.json");
        write_atomic(&file, b"one", 0o644).unwrap();
        write_atomic(&file, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
