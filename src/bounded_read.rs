//! Reads files that may be hostile or odd (docs/design.md "Trust boundaries"): only regular files,
//! opened non-blocking (a FIFO never freezes us), checked with `fstat` on the open descriptor (no
//! race with a rename), and read with a size cap (a link to `/dev/zero` or a 100 MB file never
//! grows us).
//!
//! Every file cosmovisor reads that someone else may write goes through [`read_capped`]:
//! `upgrade-info.json`, the `.batch` queue, `config.toml`, the journal, the pid file, a plan's
//! reference document given as a local file. Callers on the async runtime use
//! [`read_capped_async`] so the read never runs on the thread that forwards signals.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Cap for small JSON documents we own or the chain writes (`upgrade-info.json`, the journal,
/// the `.batch` queue, `config.toml`): far above any real one (a plan's `info` is a few KiB).
pub const DOCUMENT_CAP: u64 = 1 << 20;
/// Cap for one-line records (the pid file, an applied-plan record).
pub const RECORD_CAP: u64 = 4 << 10;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{} does not exist", .0.display())]
    Missing(PathBuf),
    #[error("{} is a {kind}, not a regular file; replace it with a file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{} is larger than {cap} bytes (read {size}); it cannot be a valid file", path.display())]
    TooBig { path: PathBuf, size: u64, cap: u64 },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ReadError {
    /// The file is simply not there (the usual case for optional files).
    pub fn is_missing(&self) -> bool {
        matches!(self, ReadError::Missing(_))
    }
}

/// Reads the regular file at `path` (following links) if it holds at most `cap` bytes.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let file = open_regular(path)?;
    let io_err = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let declared = file.metadata().map_err(io_err)?.len();
    if declared > cap {
        return Err(ReadError::TooBig {
            path: path.to_path_buf(),
            size: declared,
            cap,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
    // One byte more than the cap tells a file that grew while we read it.
    file.take(cap + 1).read_to_end(&mut bytes).map_err(io_err)?;
    let size = bytes.len() as u64;
    if size > cap {
        return Err(ReadError::TooBig {
            path: path.to_path_buf(),
            size,
            cap,
        });
    }
    Ok(bytes)
}

/// [`read_capped`] as UTF-8 text.
pub fn read_capped_string(path: &Path, cap: u64) -> Result<String, ReadError> {
    let bytes = read_capped(path, cap)?;
    String::from_utf8(bytes).map_err(|_| ReadError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}

/// [`read_capped`] on tokio's blocking pool, off the runtime thread that forwards signals.
pub async fn read_capped_async(path: PathBuf, cap: u64) -> Result<Vec<u8>, ReadError> {
    let for_error = path.clone();
    match tokio::task::spawn_blocking(move || read_capped(&path, cap)).await {
        Ok(result) => result,
        Err(join) => Err(ReadError::Io {
            path: for_error,
            source: io::Error::other(join.to_string()),
        }),
    }
}

/// Opens `path` for reading without blocking on a FIFO, and refuses anything but a regular file.
pub fn open_regular(path: &Path) -> Result<File, ReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC | nix::libc::O_NOCTTY)
        .open(path)
        .map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                ReadError::Missing(path.to_path_buf())
            } else {
                ReadError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    let kind = file
        .metadata()
        .map_err(|source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .file_type();
    if kind.is_file() {
        return Ok(file);
    }
    let kind = if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    };
    Err(ReadError::NotRegular {
        path: path.to_path_buf(),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_small_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"hello").unwrap();
        assert_eq!(read_capped(&file, 5).unwrap(), b"hello");
    }

    #[test]
    fn refuses_a_file_over_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"hello!").unwrap();
        assert!(matches!(
            read_capped(&file, 5),
            Err(ReadError::TooBig {
                size: 6,
                cap: 5,
                ..
            })
        ));
    }

    #[test]
    fn missing_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            read_capped(&dir.path().join("nope"), 5)
                .unwrap_err()
                .is_missing()
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = read_capped(&fifo, 5).unwrap_err();
        assert!(err.to_string().contains("is a FIFO"), "{err}");
    }

    #[test]
    fn a_link_to_dev_zero_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let err = read_capped(&link, 5).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_capped(dir.path(), 5).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }
}
