//! Durable file-system writes, the one way every layer changes a file it owns: the temp name
//! ([`temp_name`]) that a crash may leave behind and `home::layout::remove_crash_leftovers`
//! sweeps, whole-file writes ([`write_atomic`]) and copies ([`copy_atomic`]) through it, folder
//! creation and fsync that survive a power cut, and the opening of lock files. Uses nothing of
//! the crate (docs/design.md "Crash safety").

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// What a temp file's name ends with before the pid of the process that made it.
const TEMP_MARK: &str = ".tmp-";

/// The temp file a write to `path` goes through, in the same folder: `.<name>.tmp-<our pid>`.
/// The pid lets the crash-leftover sweep leave alone the temp of a process still at work.
#[must_use]
pub fn temp_name(path: &Path) -> PathBuf {
    temp_name_of(path, std::process::id())
}

/// [`temp_name`] as process `pid` would make it.
#[must_use]
pub fn temp_name_of(path: &Path, pid: u32) -> PathBuf {
    let file_name = path
        .file_name()
        .map_or_else(|| "file".into(), |name| name.to_string_lossy().into_owned());
    path.with_file_name(format!(".{file_name}{TEMP_MARK}{pid}"))
}

/// The inverse of [`temp_name`] on a file name: the name the temp was for and the pid of the
/// process that made it, or `None` when `file_name` is not a temp of ours. A `current.tmp-<pid>`
/// left by a version before `.current.tmp-<pid>` counts too (as for `current`).
#[must_use]
pub fn temp_of(file_name: &str) -> Option<(&str, i32)> {
    let (base, pid) = file_name.rsplit_once(TEMP_MARK)?;
    let pid = pid.parse::<i32>().ok()?;
    match base.strip_prefix('.') {
        Some(name) if !name.is_empty() => Some((name, pid)),
        None if base == "current" => Some((base, pid)),
        _ => None,
    }
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

/// The folder `path` is in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Makes `path` through its [`temp_name`]: `fill` writes the temp and fsyncs it, which is then
/// renamed over `path`, and the folder fsynced. On failure the temp is removed.
fn replace_through_temp(path: &Path, fill: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<()> {
    let temp = temp_name(path);
    let result = (|| {
        fill(&temp)?;
        fs::rename(&temp, path)?;
        sync_dir(folder_of(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Writes `bytes` to `path` crash-safely: temp file in the same folder, fsync, rename, fsync of
/// the folder. Readers see the old content or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    replace_through_temp(path, |temp| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(temp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })
}

/// The permissions [`copy_atomic`] gives the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Exactly these bits.
    Exactly(u32),
    /// The source's bits plus `a+x`, as Go v1.5+ `EnsureBinary` does.
    AddExecute,
}

/// Copies `from` to `to` crash-safely (as [`write_atomic`]), so a partial copy never looks like
/// the file (a binary, say); the copy gets `mode`.
pub fn copy_atomic(from: &Path, to: &Path, mode: Mode) -> io::Result<()> {
    replace_through_temp(to, |temp| {
        fs::copy(from, temp)?;
        let bits = match mode {
            Mode::Exactly(bits) => bits,
            Mode::AddExecute => fs::metadata(temp)?.permissions().mode() | 0o111,
        };
        fs::set_permissions(temp, fs::Permissions::from_mode(bits))?;
        fs::File::open(temp)?.sync_all()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_create_makes_every_missing_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("a/b/c");
        create_dir_all_durable(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_all_durable(&deep).unwrap();
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

    #[test]
    fn atomic_copy_sets_the_mode_and_leaves_no_temp() {
        let tmp = tempfile::tempdir().unwrap();
        let from = tmp.path().join("from");
        fs::write(&from, b"#!/bin/sh\n").unwrap();
        fs::set_permissions(&from, fs::Permissions::from_mode(0o600)).unwrap();
        let to = tmp.path().join("to");
        copy_atomic(&from, &to, Mode::AddExecute).unwrap();
        assert_eq!(
            fs::metadata(&to).unwrap().permissions().mode() & 0o777,
            0o711
        );
        copy_atomic(&from, &to, Mode::Exactly(0o755)).unwrap();
        assert_eq!(
            fs::metadata(&to).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert_eq!(fs::read(&to).unwrap(), b"#!/bin/sh\n");
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            2,
            "no temp file left"
        );
        let err = copy_atomic(&tmp.path().join("missing"), &to, Mode::AddExecute).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            2,
            "no temp file left"
        );
    }

    #[test]
    fn a_temp_name_reads_back_as_its_file_and_pid() {
        let temp = temp_name_of(Path::new("/h/data/upgrade-info.json"), 42);
        assert_eq!(temp, PathBuf::from("/h/data/.upgrade-info.json.tmp-42"));
        let name = temp.file_name().unwrap().to_str().unwrap();
        assert_eq!(temp_of(name), Some(("upgrade-info.json", 42)));
        assert_eq!(temp_of("current.tmp-7"), Some(("current", 7)));
        assert_eq!(temp_of("x.tmp-7"), None, "not dot-named: not ours");
        assert_eq!(temp_of("..tmp-7"), None);
        assert_eq!(temp_of(".x.tmp-seven"), None);
        assert_eq!(temp_of(".x"), None);
    }
}
