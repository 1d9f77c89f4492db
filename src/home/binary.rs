//! The daemon binary of a version folder: whether it can run here ([`check_binary`], the format
//! first, then the execute bit), making it executable when the caller decides to
//! ([`make_executable`]), and the version's own `lib/` it reaches through
//! [`library_path_env`].

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
