//! Unpacking a tar, tar.gz or zip archive into an empty staging folder, trusting nothing in it:
//! entries that would land outside the folder (`..`, absolute paths, links pointing out, writes
//! through links), device and fifo entries, and archives bigger than [`Limits`] are refused, the
//! whole archive with them, and whatever was written is removed again. A zip entry that writes
//! more than it declares is cut off, a cancel flag stops the work between two pieces, and one
//! `syncfs` at the end makes it all durable (an fsync per file made 100 000 tiny entries take
//! 55 s). [`check_links_inside`] is the same link rule for any finished folder.
//!
//! It does not decide what a file is (`detect`, in `mod.rs`) nor look for the binary in what was
//! unpacked (`arrange.rs`).

use std::cell::Cell;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{ArchiveError, Kind, Limits, io_error};

/// Unpacks `archive` into `dest`, which must be an existing, empty folder.
///
/// Refused, with an error naming the entry: paths that are absolute or contain `..`; entries
/// that would be written through a symbolic link; symbolic links whose target is absolute or
/// resolves (through the other links too) outside `dest`; hard links to anything but a regular
/// file unpacked before them; device, fifo and unknown entries. Permissions are `mode & 0o777`
/// with owner read/write added for files and owner rwx for folders (never setuid, setgid or
/// sticky); owners and times are not restored. [`Limits`] apply to the sizes the headers declare
/// and to the bytes actually written, and a zip entry may not write more than it declares.
/// Setting `cancel` stops the work at the next entry or 64 KiB piece with
/// [`ArchiveError::Cancelled`]. On success everything is on disk (one `syncfs`); on any error
/// everything written under `dest` is removed and `dest` is left empty.
pub fn unpack(
    kind: Kind,
    archive: &Path,
    dest: &Path,
    limits: &Limits,
    cancel: &AtomicBool,
) -> Result<(), ArchiveError> {
    run(kind, archive, None, dest, limits, cancel)
}

/// [`unpack`] for a tar or tar.gz read from `input` while it arrives (a download): the same
/// rules, limits and clean-up. `archive` names it in messages. A zip (whose index is at its end)
/// cannot be unpacked from a stream.
pub fn unpack_stream(
    kind: Kind,
    archive: &Path,
    input: &mut dyn Read,
    dest: &Path,
    limits: &Limits,
    cancel: &AtomicBool,
) -> Result<(), ArchiveError> {
    run(kind, archive, Some(input), dest, limits, cancel)
}

fn run(
    kind: Kind,
    archive: &Path,
    input: Option<&mut dyn Read>,
    dest: &Path,
    limits: &Limits,
    cancel: &AtomicBool,
) -> Result<(), ArchiveError> {
    let mut listing = fs::read_dir(dest).map_err(|_| ArchiveError::DestNotEmpty {
        dest: dest.to_path_buf(),
    })?;
    if listing.next().is_some() {
        return Err(ArchiveError::DestNotEmpty {
            dest: dest.to_path_buf(),
        });
    }
    let mut unpacker = Unpacker {
        archive: archive.to_path_buf(),
        kind: kind.clone(),
        dest: dest.to_path_buf(),
        limits: *limits,
        entries: 0,
        declared: 0,
        written: 0,
        links: Vec::new(),
        over_cap: Rc::new(Cell::new(false)),
        cancel,
    };
    let result = match kind {
        Kind::Raw => {
            return Err(ArchiveError::NotArchive {
                archive: archive.to_path_buf(),
            });
        }
        Kind::Unsupported(format) => {
            return Err(ArchiveError::Unsupported {
                archive: archive.to_path_buf(),
                format,
            });
        }
        Kind::TarGz => match input {
            Some(input) => {
                unpacker.unpack_tar(flate2::read::MultiGzDecoder::new(BufReader::new(input)))
            }
            None => open(archive).and_then(|file| {
                unpacker.unpack_tar(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
            }),
        },
        Kind::Tar => match input {
            Some(input) => unpacker.unpack_tar(BufReader::new(input)),
            None => open(archive).and_then(|file| unpacker.unpack_tar(BufReader::new(file))),
        },
        Kind::Zip if input.is_some() => {
            return Err(ArchiveError::Unsupported {
                archive: archive.to_path_buf(),
                format: "zip from a stream".to_owned(),
            });
        }
        Kind::Zip => open(archive).and_then(|file| unpacker.unpack_zip(file)),
    };
    let result = result.and_then(|()| sync_filesystem(dest));
    if result.is_err() {
        clear_dir(dest);
    }
    result
}

/// Flushes the file system that holds `dir`: one call for every file just written.
fn sync_filesystem(dir: &Path) -> Result<(), ArchiveError> {
    let handle = fs::File::open(dir).map_err(io_error(dir))?;
    nix::unistd::syncfs(&handle).map_err(|errno| io_error(dir)(errno.into()))
}

fn open(archive: &Path) -> Result<fs::File, ArchiveError> {
    fs::File::open(archive).map_err(|err| ArchiveError::Io {
        path: archive.to_path_buf(),
        err,
    })
}

/// Removes everything inside `dir` (best effort: the caller already has an error to report).
fn clear_dir(dir: &Path) {
    let Ok(listing) = fs::read_dir(dir) else {
        return;
    };
    for entry in listing.flatten() {
        let path = entry.path();
        let _ = match entry.file_type() {
            Ok(kind) if kind.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
    }
}

const S_IFMT: u32 = 0o170_000;
const S_IFSOCK: u32 = 0o140_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFIFO: u32 = 0o010_000;

/// Longest symbolic link target we accept (Linux's `PATH_MAX`).
const MAX_LINK_TARGET: u64 = 4096;

/// A symbolic link we created, checked again once the whole tree exists.
struct PendingLink {
    entry: String,
    parent: Vec<OsString>,
    target: Vec<u8>,
}

struct Unpacker<'a> {
    archive: PathBuf,
    kind: Kind,
    dest: PathBuf,
    limits: Limits,
    entries: u64,
    declared: u64,
    written: u64,
    links: Vec<PendingLink>,
    /// Set when the decompressed stream grew past its cap (see [`CappedReader`]).
    over_cap: Rc<Cell<bool>>,
    cancel: &'a AtomicBool,
}

fn file_mode(mode: u32) -> u32 {
    mode & 0o777 | 0o600
}

fn dir_mode(mode: u32) -> u32 {
    mode & 0o777 | 0o700
}

impl Unpacker<'_> {
    fn bad(&self, entry: &[u8], reason: impl Into<String>) -> ArchiveError {
        ArchiveError::BadEntry {
            archive: self.archive.clone(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }

    fn too_large(&self) -> ArchiveError {
        ArchiveError::TooLarge {
            archive: self.archive.clone(),
            limit: self.limits.max_total_bytes,
        }
    }

    fn corrupt(&self, err: impl fmt::Display) -> ArchiveError {
        if self.over_cap.get() {
            return self.too_large();
        }
        ArchiveError::Corrupt {
            archive: self.archive.clone(),
            kind: self.kind.clone(),
            err: err.to_string(),
        }
    }

    fn check_cancel(&self) -> Result<(), ArchiveError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(ArchiveError::Cancelled {
                archive: self.archive.clone(),
            });
        }
        Ok(())
    }

    fn count_entry(&mut self, declared_size: u64) -> Result<(), ArchiveError> {
        self.check_cancel()?;
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                archive: self.archive.clone(),
                limit: self.limits.max_entries,
            });
        }
        self.declared = self.declared.saturating_add(declared_size);
        if self.declared > self.limits.max_total_bytes {
            return Err(self.too_large());
        }
        Ok(())
    }

    /// The entry's path as folder names under `dest`; empty for the root itself (`./`).
    fn components(&self, entry: &[u8]) -> Result<Vec<OsString>, ArchiveError> {
        if entry.is_empty() {
            return Err(self.bad(entry, "has an empty name"));
        }
        if entry.starts_with(b"/") {
            return Err(self.bad(entry, "has an absolute path"));
        }
        if entry.contains(&0) {
            return Err(self.bad(entry, "contains a NUL byte"));
        }
        let mut parts = Vec::new();
        for part in entry.split(|byte| *byte == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    return Err(self.bad(
                        entry,
                        "contains \"..\", which could point outside the target folder",
                    ));
                }
                name => parts.push(OsStr::from_bytes(name).to_owned()),
            }
        }
        Ok(parts)
    }

    /// Makes the folders above an entry, refusing to go through anything but real folders.
    fn parent_dir(&self, entry: &[u8], parts: &[OsString]) -> Result<PathBuf, ArchiveError> {
        let mut path = self.dest.clone();
        for part in &parts[..parts.len().saturating_sub(1)] {
            path.push(part);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(self.bad(entry, "would be written through a symbolic link"));
                }
                Ok(_) => {
                    return Err(
                        self.bad(entry, "is inside a path that an earlier entry made a file")
                    );
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&path)
                        .map_err(io_error(&path))?;
                }
                Err(err) => return Err(io_error(&path)(err)),
            }
        }
        Ok(path)
    }

    /// Makes room for a non-folder entry: an earlier file or link of that name is replaced (tar
    /// semantics), a folder is a conflict.
    fn clear_slot(&self, entry: &[u8], path: &Path) -> Result<(), ArchiveError> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => {
                Err(self.bad(entry, "replaces a folder made by an earlier entry"))
            }
            Ok(_) => fs::remove_file(path).map_err(io_error(path)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(io_error(path)(err)),
        }
    }

    fn last_path(&self, entry: &[u8], parts: &[OsString]) -> Result<PathBuf, ArchiveError> {
        let Some(last) = parts.last() else {
            return Err(self.bad(entry, "names the target folder itself"));
        };
        Ok(self.parent_dir(entry, parts)?.join(last))
    }

    /// Writes one file entry. `declared` is the size a zip entry's headers give: writing more
    /// is refused (a tar entry's reader cannot give more than its header says).
    fn write_file(
        &mut self,
        entry: &[u8],
        parts: &[OsString],
        data: &mut dyn Read,
        mode: u32,
        declared: Option<u64>,
    ) -> Result<(), ArchiveError> {
        let path = self.last_path(entry, parts)?;
        self.clear_slot(entry, &path)?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_error(&path))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut this_entry = 0u64;
        loop {
            self.check_cancel()?;
            let read = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(read) => read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(self.corrupt(err)),
            };
            this_entry += read as u64;
            if let Some(declared) = declared.filter(|declared| this_entry > *declared) {
                return Err(self.bad(
                    entry,
                    format!("writes more than the {declared} bytes it declares"),
                ));
            }
            self.written = self.written.saturating_add(read as u64);
            if self.written > self.limits.max_total_bytes {
                return Err(self.too_large());
            }
            file.write_all(&buf[..read]).map_err(io_error(&path))?;
        }
        file.set_permissions(fs::Permissions::from_mode(file_mode(mode)))
            .map_err(io_error(&path))
    }

    fn make_dir(&self, entry: &[u8], parts: &[OsString], mode: u32) -> Result<(), ArchiveError> {
        if parts.is_empty() {
            return Ok(());
        }
        let path = self.last_path(entry, parts)?;
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(self.bad(
                    entry,
                    "is a folder where an earlier entry made a file or link",
                ));
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&path)
                    .map_err(io_error(&path))?;
            }
            Err(err) => return Err(io_error(&path)(err)),
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(dir_mode(mode)))
            .map_err(io_error(&path))
    }

    fn make_symlink(
        &mut self,
        entry: &[u8],
        parts: &[OsString],
        target: &[u8],
    ) -> Result<(), ArchiveError> {
        let shown = String::from_utf8_lossy(target);
        if target.is_empty() || target.contains(&0) {
            return Err(self.bad(entry, "is a symbolic link without a valid target"));
        }
        if target.starts_with(b"/") {
            return Err(self.bad(
                entry,
                format!("is a symbolic link to the absolute path {shown:?}"),
            ));
        }
        let parent = parts[..parts.len().saturating_sub(1)].to_vec();
        if !lexically_inside(parent.len(), target) {
            return Err(self.bad(
                entry,
                format!("is a symbolic link to {shown:?}, which is outside the target folder"),
            ));
        }
        let path = self.last_path(entry, parts)?;
        self.clear_slot(entry, &path)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &path).map_err(io_error(&path))?;
        self.links.push(PendingLink {
            entry: String::from_utf8_lossy(entry).into_owned(),
            parent,
            target: target.to_vec(),
        });
        Ok(())
    }

    fn make_hard_link(
        &self,
        entry: &[u8],
        parts: &[OsString],
        target: &[u8],
    ) -> Result<(), ArchiveError> {
        let shown = String::from_utf8_lossy(target);
        let not_a_file = || {
            self.bad(
                entry,
                format!("is a hard link to {shown:?}, which is not a file unpacked before it"),
            )
        };
        if target.starts_with(b"/") || target.split(|byte| *byte == b'/').any(|part| part == b"..")
        {
            return Err(self.bad(
                entry,
                format!("is a hard link to {shown:?}, which is outside the target folder"),
            ));
        }
        let target_parts = self.components(target).map_err(|_| not_a_file())?;
        if target_parts.is_empty() {
            return Err(not_a_file());
        }
        // Every folder above the target must be a real folder, and the target a regular file:
        // a hard link to a symbolic link would re-anchor the link's relative target.
        let mut source = self.dest.clone();
        for (index, part) in target_parts.iter().enumerate() {
            source.push(part);
            let meta = fs::symlink_metadata(&source).map_err(|_| not_a_file())?;
            let last = index + 1 == target_parts.len();
            if (last && !meta.is_file()) || (!last && !meta.is_dir()) {
                return Err(not_a_file());
            }
        }
        let path = self.last_path(entry, parts)?;
        if path == source {
            return Ok(());
        }
        self.clear_slot(entry, &path)?;
        fs::hard_link(&source, &path).map_err(io_error(&path))
    }

    /// Checks every symbolic link again now that the tree is complete, resolving it through
    /// the other links the way the kernel would.
    fn check_links(&self) -> Result<(), ArchiveError> {
        for link in &self.links {
            let mut stack = link.parent.clone();
            let mut hops = 0;
            if !resolves_inside(&self.dest, &mut stack, &link.target, &mut hops) {
                return Err(ArchiveError::BadEntry {
                    archive: self.archive.clone(),
                    entry: link.entry.clone(),
                    reason: format!(
                        "is a symbolic link to {:?}, which resolves outside the target folder",
                        String::from_utf8_lossy(&link.target)
                    ),
                });
            }
        }
        Ok(())
    }

    fn unpack_tar<R: Read>(&mut self, reader: R) -> Result<(), ArchiveError> {
        // Headers, long names and padding are not file data; the cap on the decompressed
        // stream keeps them (and a gzip bomb hidden in them) bounded too.
        let cap = self
            .limits
            .max_total_bytes
            .saturating_add(self.limits.max_entries.saturating_mul(8 * 1024))
            .saturating_add(1 << 20);
        let capped = CappedReader {
            inner: reader,
            left: cap,
            over: Rc::clone(&self.over_cap),
        };
        let mut archive = tar::Archive::new(capped);
        let entries = archive.entries().map_err(|err| self.corrupt(err))?;
        for entry in entries {
            let mut entry = entry.map_err(|err| self.corrupt(err))?;
            self.count_entry(entry.size())?;
            let kind = entry.header().entry_type();
            if kind.is_pax_global_extensions() {
                // `git archive` writes one; it only carries a comment.
                continue;
            }
            let path = entry.path_bytes().into_owned();
            let parts = self.components(&path)?;
            let mode = entry.header().mode().map_err(|err| self.corrupt(err))?;
            if kind.is_dir() || (kind.is_file() && path.ends_with(b"/")) {
                self.make_dir(&path, &parts, mode)?;
            } else if kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse() {
                self.write_file(&path, &parts, &mut entry, mode, None)?;
            } else if kind.is_symlink() || kind.is_hard_link() {
                let Some(target) = entry.link_name_bytes().map(std::borrow::Cow::into_owned) else {
                    return Err(self.bad(&path, "is a link without a target"));
                };
                if kind.is_symlink() {
                    self.make_symlink(&path, &parts, &target)?;
                } else {
                    self.make_hard_link(&path, &parts, &target)?;
                }
            } else if kind.is_character_special() {
                return Err(self.bad(
                    &path,
                    "is a character device; only files, folders and links are allowed",
                ));
            } else if kind.is_block_special() {
                return Err(self.bad(
                    &path,
                    "is a block device; only files, folders and links are allowed",
                ));
            } else if kind.is_fifo() {
                return Err(self.bad(
                    &path,
                    "is a fifo; only files, folders and links are allowed",
                ));
            } else {
                return Err(self.bad(
                    &path,
                    format!(
                        "has tar entry type {:?}, which is not supported; only files, folders and links are allowed",
                        char::from(kind.as_byte())
                    ),
                ));
            }
        }
        // Read to the end so gzip checks its trailer (CRC and length): a truncated .tar.gz
        // whose tar part happens to be complete is still refused.
        let mut rest = archive.into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(|err| self.corrupt(err))?;
        self.check_links()
    }

    fn unpack_zip(&mut self, file: fs::File) -> Result<(), ArchiveError> {
        let mut zip =
            zip::ZipArchive::new(BufReader::new(file)).map_err(|err| self.corrupt(err))?;
        if zip.len() as u64 > self.limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                archive: self.archive.clone(),
                limit: self.limits.max_entries,
            });
        }
        for index in 0..zip.len() {
            let mut entry = zip.by_index(index).map_err(|err| self.corrupt(err))?;
            let path = entry.name_raw().to_vec();
            self.count_entry(entry.size())?;
            let parts = self.components(&path)?;
            let mode = entry.unix_mode();
            match mode.map_or(0, |mode| mode & S_IFMT) {
                S_IFLNK => {
                    let mut target = Vec::new();
                    (&mut entry)
                        .take(MAX_LINK_TARGET + 1)
                        .read_to_end(&mut target)
                        .map_err(|err| self.corrupt(err))?;
                    if target.len() as u64 > MAX_LINK_TARGET {
                        return Err(self.bad(&path, "is a symbolic link with an over-long target"));
                    }
                    self.make_symlink(&path, &parts, &target)?;
                }
                S_IFDIR => self.make_dir(&path, &parts, mode.unwrap_or(0o755))?,
                _ if path.ends_with(b"/") => self.make_dir(&path, &parts, mode.unwrap_or(0o755))?,
                0 | S_IFREG => {
                    let declared = entry.size();
                    self.write_file(
                        &path,
                        &parts,
                        &mut entry,
                        mode.unwrap_or(0o644),
                        Some(declared),
                    )?;
                }
                other => {
                    let what = match other {
                        S_IFCHR => "a character device",
                        S_IFBLK => "a block device",
                        S_IFIFO => "a fifo",
                        S_IFSOCK => "a socket",
                        _ => "of an unknown file type",
                    };
                    return Err(self.bad(
                        &path,
                        format!("is {what}; only files, folders and links are allowed"),
                    ));
                }
            }
        }
        self.check_links()
    }
}

/// Whether `target`, a link's target read in the folder `stack` (names under `root`), resolves
/// inside `root`, following the links it meets (at most 40, as the kernel does).
fn resolves_inside(root: &Path, stack: &mut Vec<OsString>, target: &[u8], hops: &mut u32) -> bool {
    if target.starts_with(b"/") {
        return false;
    }
    for part in target.split(|byte| *byte == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if stack.pop().is_none() {
                    return false;
                }
            }
            name => {
                stack.push(OsStr::from_bytes(name).to_owned());
                let mut path = root.to_path_buf();
                path.extend(stack.iter());
                let is_link =
                    fs::symlink_metadata(&path).is_ok_and(|meta| meta.file_type().is_symlink());
                if is_link {
                    *hops += 1;
                    let Ok(next) = fs::read_link(&path) else {
                        return false;
                    };
                    stack.pop();
                    if *hops > 40
                        || !resolves_inside(root, stack, next.as_os_str().as_bytes(), hops)
                    {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// Every symbolic link under `root` (a finished version folder) must resolve inside it: an
/// archive's `release/lib/up -> ../..` stays inside what was unpacked, but no longer once
/// `release/lib` became the version folder's `lib/`.
pub fn check_links_inside(root: &Path) -> Result<(), ArchiveError> {
    let mut folders = vec![Vec::<OsString>::new()];
    while let Some(folder) = folders.pop() {
        let mut path = root.to_path_buf();
        path.extend(folder.iter());
        for entry in fs::read_dir(&path).map_err(io_error(&path))? {
            let entry = entry.map_err(io_error(&path))?;
            let kind = entry.file_type().map_err(io_error(&entry.path()))?;
            if kind.is_dir() {
                let mut inner = folder.clone();
                inner.push(entry.file_name());
                folders.push(inner);
            } else if kind.is_symlink() {
                let target = fs::read_link(entry.path()).map_err(io_error(&entry.path()))?;
                let mut stack = folder.clone();
                let mut hops = 0;
                if !resolves_inside(root, &mut stack, target.as_os_str().as_bytes(), &mut hops) {
                    let mut link = PathBuf::new();
                    link.extend(folder.iter());
                    link.push(entry.file_name());
                    return Err(ArchiveError::LinkOutside {
                        root: root.to_path_buf(),
                        link,
                        target: target.to_string_lossy().into_owned(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Whether `target`, read from a folder `depth` levels below the root, stays inside the root
/// when its `..` are applied lexically.
fn lexically_inside(mut depth: usize, target: &[u8]) -> bool {
    for part in target.split(|byte| *byte == b'/') {
        match part {
            b"" | b"." => {}
            b".." => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return false,
            },
            _ => depth += 1,
        }
    }
    true
}

/// Fails (and raises its flag) once more than `left` bytes have been read.
struct CappedReader<R> {
    inner: R,
    left: u64,
    over: Rc<Cell<bool>>,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.over.set(true);
            return Err(io::Error::other("archive stream is larger than the limit"));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..want])?;
        self.left -= read as u64;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acquire::archive::fixtures::{
        Entry, Scratch, ZipEntry, gzip, mode_of, tar_bytes, zip_bytes,
    };

    #[test]
    fn strips_special_mode_bits() {
        let scratch = Scratch::new();
        let bytes = tar_bytes(&[
            Entry::Dir("shared", 0o3775),
            Entry::Dir("locked", 0o500),
            Entry::File("locked/f", b"x", 0o444),
            Entry::File("bin/autod", b"x", 0o4755),
            Entry::File("bin/g", b"x", 0o2711),
        ]);
        scratch.unpack(Kind::Tar, "a.tar", &bytes).unwrap();
        let dest = scratch.dest();
        assert_eq!(mode_of(&dest.join("bin/autod")), 0o755);
        assert_eq!(mode_of(&dest.join("bin/g")), 0o711);
        assert_eq!(mode_of(&dest.join("shared")), 0o775);
        assert_eq!(mode_of(&dest.join("locked")), 0o700);
        assert_eq!(mode_of(&dest.join("locked/f")), 0o644);
    }

    #[test]
    fn a_stream_unpacks_like_a_file_and_is_cleaned_the_same() {
        let scratch = Scratch::new();
        let bytes = gzip(&tar_bytes(&[Entry::File(
            "bin/simd",
            b"#!/bin/sh\n",
            0o755,
        )]));
        let label = Path::new("simd.tar.gz");
        let cancel = AtomicBool::new(false);
        let limits = Limits::default();
        let mut input: &[u8] = &bytes;
        unpack_stream(
            Kind::TarGz,
            label,
            &mut input,
            &scratch.dest(),
            &limits,
            &cancel,
        )
        .unwrap();
        assert_eq!(
            fs::read(scratch.dest().join("bin/simd")).unwrap(),
            b"#!/bin/sh\n"
        );

        let other = Scratch::new();
        let hostile = tar_bytes(&[
            Entry::File("ok", b"x", 0o644),
            Entry::File("../escape", b"x", 0o644),
        ]);
        let mut input: &[u8] = &hostile;
        let err = unpack_stream(
            Kind::Tar,
            label,
            &mut input,
            &other.dest(),
            &limits,
            &cancel,
        )
        .unwrap_err();
        assert!(err.to_string().contains("escape"), "{err}");
        assert!(other.dest_is_empty());

        let mut input: &[u8] = b"PK";
        let err = unpack_stream(
            Kind::Zip,
            label,
            &mut input,
            &other.dest(),
            &limits,
            &cancel,
        )
        .unwrap_err();
        assert!(matches!(err, ArchiveError::Unsupported { .. }), "{err}");
    }

    fn refused_tar(entries: &[Entry<'_>]) -> ArchiveError {
        let scratch = Scratch::new();
        let err = scratch
            .unpack(Kind::Tar, "a.tar", &tar_bytes(entries))
            .unwrap_err();
        assert!(scratch.dest_is_empty(), "dest not cleaned after {err}");
        assert!(
            !scratch.dir.path().join("evil").exists() && !scratch.dir.path().join("x").exists(),
            "something escaped: {err}"
        );
        err
    }

    #[test]
    fn refuses_hostile_tar_entries() {
        let ok = Entry::File("bin/autod", b"ok", 0o755);
        let cases: Vec<(Vec<Entry<'_>>, &str, &str)> = vec![
            (
                vec![ok, Entry::File("../evil", b"x", 0o644)],
                "../evil",
                "contains \"..\", which could point outside the target folder",
            ),
            (
                vec![Entry::File("a/../../evil", b"x", 0o644)],
                "a/../../evil",
                "contains \"..\"",
            ),
            (
                vec![Entry::File("/etc/x", b"x", 0o644)],
                "/etc/x",
                "has an absolute path",
            ),
            (
                vec![Entry::Symlink("bin/link", "../../outside")],
                "bin/link",
                "is a symbolic link to \"../../outside\", which is outside the target folder",
            ),
            (
                vec![Entry::Symlink("bin/link", "/etc/passwd")],
                "bin/link",
                "is a symbolic link to the absolute path \"/etc/passwd\"",
            ),
            (
                vec![
                    Entry::Symlink("sub/up", ".."),
                    Entry::Symlink("sub/deep/l", "../up/.."),
                ],
                "sub/deep/l",
                "resolves outside the target folder",
            ),
            (
                vec![Entry::Symlink("a", "."), Entry::File("a/x", b"x", 0o644)],
                "a/x",
                "would be written through a symbolic link",
            ),
            (
                vec![Entry::HardLink("h", "../x")],
                "h",
                "is a hard link to \"../x\", which is outside the target folder",
            ),
            (
                vec![Entry::HardLink("h", "/etc/passwd")],
                "h",
                "which is outside the target folder",
            ),
            (
                vec![Entry::Symlink("s", "f"), Entry::HardLink("h", "s")],
                "h",
                "is a hard link to \"s\", which is not a file unpacked before it",
            ),
            (vec![Entry::Fifo("p")], "p", "is a fifo"),
        ];
        for (entries, entry, reason) in cases {
            match refused_tar(&entries) {
                ArchiveError::BadEntry {
                    entry: got_entry,
                    reason: got_reason,
                    ..
                } => {
                    assert_eq!(got_entry, entry);
                    assert!(got_reason.contains(reason), "{entry}: {got_reason}");
                }
                other => panic!("{entry}: {other:?}"),
            }
        }
    }

    #[test]
    fn refusal_message_names_archive_and_entry() {
        let scratch = Scratch::new();
        let err = scratch
            .unpack(
                Kind::Tar,
                "a.tar",
                &tar_bytes(&[Entry::File("../evil", b"x", 0o644)]),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "refusing archive {}: entry \"../evil\" contains \"..\", which could point outside the target folder; nothing was unpacked",
                scratch.dir.path().join("a.tar").display()
            )
        );
    }

    #[test]
    fn refuses_hostile_zip_entries() {
        let cases: &[(&[ZipEntry<'_>], &str)] = &[
            (
                &[
                    ZipEntry::File("bin/autod", b"ok"),
                    ZipEntry::File("../../evil", b"x"),
                ],
                "contains \"..\"",
            ),
            (&[ZipEntry::File("/etc/x", b"x")], "has an absolute path"),
            (
                &[ZipEntry::Symlink("bin/link", "../../outside")],
                "outside the target folder",
            ),
            (
                &[ZipEntry::Symlink("bin/link", "/etc/passwd")],
                "absolute path \"/etc/passwd\"",
            ),
        ];
        for (entries, reason) in cases {
            let scratch = Scratch::new();
            let err = scratch
                .unpack(Kind::Zip, "a.zip", &zip_bytes(entries))
                .unwrap_err();
            assert!(
                matches!(&err, ArchiveError::BadEntry { reason: got, .. } if got.contains(reason)),
                "{err:?}"
            );
            assert!(scratch.dest_is_empty());
        }
    }

    #[test]
    fn enforces_limits() {
        let bytes = tar_bytes(&[
            Entry::File("a", &[7; 100], 0o644),
            Entry::File("b", &[7; 100], 0o644),
            Entry::File("c", &[7; 100], 0o644),
        ]);
        let cases = [
            (
                Limits {
                    max_total_bytes: 250,
                    max_entries: 10,
                },
                ArchiveError::TooLarge {
                    archive: PathBuf::new(),
                    limit: 250,
                },
            ),
            (
                Limits {
                    max_total_bytes: 1000,
                    max_entries: 2,
                },
                ArchiveError::TooManyEntries {
                    archive: PathBuf::new(),
                    limit: 2,
                },
            ),
        ];
        for (limits, want) in cases {
            for (kind, file, bytes) in [
                (Kind::Tar, "a.tar", bytes.clone()),
                (
                    Kind::Zip,
                    "a.zip",
                    zip_bytes(&[
                        ZipEntry::File("a", &[7; 100]),
                        ZipEntry::File("b", &[7; 100]),
                        ZipEntry::File("c", &[7; 100]),
                    ]),
                ),
            ] {
                let scratch = Scratch::new();
                let archive = scratch.write(file, &bytes);
                let err = unpack(
                    kind,
                    &archive,
                    &scratch.dest(),
                    &limits,
                    &AtomicBool::new(false),
                )
                .unwrap_err();
                let want = match &want {
                    ArchiveError::TooLarge { limit, .. } => ArchiveError::TooLarge {
                        archive: archive.clone(),
                        limit: *limit,
                    },
                    ArchiveError::TooManyEntries { limit, .. } => ArchiveError::TooManyEntries {
                        archive: archive.clone(),
                        limit: *limit,
                    },
                    other => panic!("the table names only limits, not {other}"),
                };
                assert_eq!(err.to_string(), want.to_string());
                assert!(scratch.dest_is_empty());
            }
        }
    }

    #[test]
    fn a_lying_size_does_not_bypass_the_limit() {
        // A zip whose headers declare 1 byte for a 1000-byte stored file.
        let mut bytes = zip_bytes(&[ZipEntry::File("big", &[7; 1000])]);
        let mut patched = 0;
        for signature in [&b"PK\x03\x04"[..], &b"PK\x01\x02"[..]] {
            let at = bytes
                .windows(4)
                .position(|window| window == signature)
                .unwrap();
            // Uncompressed size: offset 22 in a local header, 24 in a central one.
            let field = at + if signature[2] == 3 { 22 } else { 24 };
            bytes[field..field + 4].copy_from_slice(&1u32.to_le_bytes());
            patched += 1;
        }
        assert_eq!(patched, 2);
        let scratch = Scratch::new();
        let archive = scratch.write("a.zip", &bytes);
        let limits = Limits {
            max_total_bytes: 100,
            max_entries: 10,
        };
        let err = unpack(
            Kind::Zip,
            &archive,
            &scratch.dest(),
            &limits,
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "refusing archive {}: entry \"big\" writes more than the 1 bytes it declares; nothing was unpacked",
                archive.display()
            ),
            "an entry is cut off at its declared size"
        );
        assert!(scratch.dest_is_empty());

        // A tar header that declares 10 bytes but whose stream carries 1000: the extra bytes
        // are read as the next header and refused as corrupt, never written.
        let scratch = Scratch::new();
        let bytes = tar_bytes(&[Entry::Sized("big", 10, &[7; 1000])]);
        let err = scratch.unpack(Kind::Tar, "a.tar", &bytes).unwrap_err();
        assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err:?}");
        assert!(scratch.dest_is_empty());
    }

    #[test]
    fn counting_copy_stops_at_the_limit() {
        let scratch = Scratch::new();
        let mut unpacker = Unpacker {
            archive: PathBuf::from("a.tar"),
            kind: Kind::Tar,
            dest: scratch.dest(),
            limits: Limits {
                max_total_bytes: 10,
                max_entries: 10,
            },
            entries: 0,
            declared: 0,
            written: 0,
            links: Vec::new(),
            over_cap: Rc::new(Cell::new(false)),
            cancel: &AtomicBool::new(false),
        };
        let parts = [OsString::from("f")];
        let err = unpacker
            .write_file(b"f", &parts, &mut &[1u8; 11][..], 0o644, None)
            .unwrap_err();
        assert!(
            matches!(err, ArchiveError::TooLarge { limit: 10, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn truncated_or_corrupt_archives() {
        let tar = tar_bytes(&[
            Entry::File("bin/autod", &[1; 5000], 0o755),
            Entry::File("lib/x.so", &[2; 5000], 0o644),
        ]);
        let gz = gzip(&tar);
        let zip = zip_bytes(&[ZipEntry::File("autod", &[3; 5000])]);
        let cases: Vec<(Kind, &str, Vec<u8>)> = vec![
            (Kind::TarGz, "a.tar.gz", gz[..gz.len() / 2].to_vec()),
            // Only the gzip trailer (CRC, length) is missing.
            (Kind::TarGz, "b.tar.gz", gz[..gz.len() - 8].to_vec()),
            (
                Kind::TarGz,
                "c.tar.gz",
                b"\x1f\x8b not gzip at all".to_vec(),
            ),
            (Kind::Tar, "d.tar", tar[..700].to_vec()),
            (Kind::Zip, "e.zip", zip[..zip.len() / 2].to_vec()),
            (Kind::Zip, "f.zip", b"PK\x03\x04 nonsense".to_vec()),
        ];
        for (kind, file, bytes) in cases {
            let scratch = Scratch::new();
            let err = scratch.unpack(kind.clone(), file, &bytes).unwrap_err();
            match &err {
                ArchiveError::Corrupt {
                    archive, kind: got, ..
                } => {
                    assert_eq!(archive, &scratch.dir.path().join(file));
                    assert_eq!(got, &kind);
                }
                other => panic!("{file}: {other:?}"),
            }
            assert!(
                err.to_string().contains(&format!(
                    "{} is not a valid {kind} archive (corrupt or truncated): ",
                    scratch.dir.path().join(file).display()
                )),
                "{err}"
            );
            assert!(scratch.dest_is_empty(), "{file}");
        }
    }

    #[test]
    fn dest_must_be_empty_and_formats_supported() {
        let scratch = Scratch::new();
        fs::write(scratch.dest().join("keep"), b"mine").unwrap();
        let err = scratch
            .unpack(
                Kind::Tar,
                "a.tar",
                &tar_bytes(&[Entry::File("x", b"x", 0o644)]),
            )
            .unwrap_err();
        assert!(matches!(err, ArchiveError::DestNotEmpty { .. }));
        assert!(
            scratch.dest().join("keep").exists(),
            "never clears a folder it did not fill"
        );
        let scratch = Scratch::new();
        let err = scratch
            .unpack(Kind::Unsupported("tar.xz".into()), "a.tar.xz", b"")
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("is a tar.xz file, which cannot be unpacked"),
            "{err}"
        );
    }

    #[test]
    fn skips_pax_global_header_and_root_entry() {
        let scratch = Scratch::new();
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        let comment = b"52 comment=0123456789012345678901234567890123456789\n";
        header.set_path("pax_global_header").unwrap();
        header.set_entry_type(tar::EntryType::XGlobalHeader);
        header.set_size(comment.len() as u64);
        header.set_cksum();
        builder.append(&header, &comment[..]).unwrap();
        let mut root = tar::Header::new_ustar();
        root.set_path("./").unwrap();
        root.set_entry_type(tar::EntryType::Directory);
        root.set_size(0);
        root.set_mode(0o755);
        root.set_cksum();
        builder.append(&root, &b""[..]).unwrap();
        let mut file = tar::Header::new_ustar();
        file.set_path("autod").unwrap();
        file.set_size(1);
        file.set_mode(0o755);
        file.set_cksum();
        builder.append(&file, &b"x"[..]).unwrap();
        let bytes = builder.into_inner().unwrap();
        scratch.unpack(Kind::Tar, "a.tar", &bytes).unwrap();
        assert_eq!(fs::read(scratch.dest().join("autod")).unwrap(), b"x");
    }
}
