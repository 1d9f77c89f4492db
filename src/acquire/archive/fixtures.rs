//! Test fixtures for the archive modules: hand-made tar and zip archives (hostile ones too) and
//! a scratch folder to unpack them in. Test-only; no assertions live here.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{ArchiveError, Kind, Limits, unpack};

pub(super) const NAME: &str = "autod";

/// One entry of a hand-made tar; paths and link targets go into the header as raw bytes,
/// so hostile names (which `tar::Builder` refuses to write) can be built too.
pub(super) enum Entry<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str, u32),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    Fifo(&'a str),
    /// A regular-file header whose declared size is `.1` but which carries `.2` bytes.
    Sized(&'a str, u64, &'a [u8]),
}

pub(super) fn tar_bytes(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (path, link, data, kind, mode): (&str, &str, &[u8], tar::EntryType, u32) = match entry {
            Entry::File(path, data, mode) => (path, "", data, tar::EntryType::Regular, *mode),
            Entry::Dir(path, mode) => (path, "", b"", tar::EntryType::Directory, *mode),
            Entry::Symlink(path, to) => (path, to, b"", tar::EntryType::Symlink, 0o777),
            Entry::HardLink(path, to) => (path, to, b"", tar::EntryType::Link, 0o644),
            Entry::Fifo(path) => (path, "", b"", tar::EntryType::Fifo, 0o644),
            Entry::Sized(path, _, data) => (path, "", data, tar::EntryType::Regular, 0o644),
        };
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..path.len()].copy_from_slice(path.as_bytes());
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(match entry {
            Entry::Sized(_, declared, _) => *declared,
            _ => data.len() as u64,
        });
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

pub(super) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

pub(super) enum ZipEntry<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

pub(super) fn zip_bytes(entries: &[ZipEntry<'_>]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    for entry in entries {
        let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        match entry {
            ZipEntry::File(path, data) => {
                writer.start_file(*path, options).unwrap();
                writer.write_all(data).unwrap();
            }
            ZipEntry::Symlink(path, target) => {
                writer.add_symlink(*path, *target, options).unwrap();
            }
        }
    }
    writer.finish().unwrap().into_inner()
}

pub(super) struct Scratch {
    pub(super) dir: tempfile::TempDir,
}

impl Scratch {
    pub(super) fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("dest")).unwrap();
        Scratch { dir }
    }
    pub(super) fn dest(&self) -> PathBuf {
        self.dir.path().join("dest")
    }
    pub(super) fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }
    pub(super) fn write(&self, file: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(file);
        fs::write(&path, bytes).unwrap();
        path
    }
    pub(super) fn unpack(&self, kind: Kind, file: &str, bytes: &[u8]) -> Result<(), ArchiveError> {
        let archive = self.write(file, bytes);
        unpack(
            kind,
            &archive,
            &self.dest(),
            &Limits::default(),
            &std::sync::atomic::AtomicBool::new(false),
        )
    }
    pub(super) fn dest_is_empty(&self) -> bool {
        fs::read_dir(self.dest()).unwrap().next().is_none()
    }
}

pub(super) fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}
