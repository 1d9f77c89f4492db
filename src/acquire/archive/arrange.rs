//! Arranging a download into a version folder: finding the daemon binary (and the `lib/` beside
//! it) in an unpacked archive and moving them to `bin/<name>` and `lib/` ([`arrange`]), or moving
//! a raw download to `bin/<name>` ([`arrange_raw`]). Every move is a rename: the unpacked tree,
//! the raw download and `out` all sit in the download's staging folder (`acquire/download/`),
//! one file system.
//!
//! It does not unpack (`unpack.rs`) and does not install the version folder under `upgrades/`
//! (the caller's).

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{ArchiveError, io_error};
use crate::durable::sync_dir;

/// Where the binary (and its libraries) sit in an unpacked tree.
struct Found {
    binary: PathBuf,
    lib: Option<PathBuf>,
}

/// Moves the daemon binary out of an unpacked tree into `out` (which must not exist yet) as
/// `out/bin/<name>` with mode 0o755, with the `lib/` folder next to it as `out/lib/`.
///
/// Looked for, in order: `bin/<name>` then `<name>` at the root; the same two inside the root's
/// only folder (files beside it are allowed); and, as Go's file mode does, the archive's only
/// file whatever its name. `lib/` comes from the folder the binary was found in. Every link in
/// `out` must then resolve inside it ([`super::check_links_inside`]). On error `out` is removed
/// again.
pub fn arrange(unpacked: &Path, name: &str, out: &Path) -> Result<(), ArchiveError> {
    check_name(name)?;
    let found = find_binary(unpacked, name)?;
    place(&found, name, out)?;
    super::check_links_inside(out).inspect_err(|_| {
        let _ = fs::remove_dir_all(out);
    })
}

/// Moves a raw download to `out/bin/<name>` (mode 0o755); `out` must not exist yet.
pub fn arrange_raw(file: &Path, name: &str, out: &Path) -> Result<(), ArchiveError> {
    check_name(name)?;
    if !fs::symlink_metadata(file).is_ok_and(|meta| meta.is_file()) {
        return Err(ArchiveError::NotRegular {
            path: file.to_path_buf(),
        });
    }
    let found = Found {
        binary: file.to_path_buf(),
        lib: None,
    };
    place(&found, name, out)
}

fn check_name(name: &str) -> Result<(), ArchiveError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(ArchiveError::BadName(name.to_owned()));
    }
    Ok(())
}

fn find_binary(unpacked: &Path, name: &str) -> Result<Found, ArchiveError> {
    if let Some(found) = look_in(unpacked, unpacked, name) {
        return Ok(found);
    }
    let listing: Vec<fs::DirEntry> = fs::read_dir(unpacked)
        .map_err(io_error(unpacked))?
        .collect::<Result<_, _>>()
        .map_err(io_error(unpacked))?;
    let dirs: Vec<&fs::DirEntry> = listing
        .iter()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .collect();
    let nested = match dirs.as_slice() {
        [only] => Some(only.file_name()),
        _ => None,
    };
    if let Some(dir) = &nested {
        if let Some(found) = look_in(unpacked, &unpacked.join(dir), name) {
            return Ok(found);
        }
    }
    if let [only] = listing.as_slice() {
        if only.file_type().is_ok_and(|kind| kind.is_file()) {
            return Ok(Found {
                binary: only.path(),
                lib: None,
            });
        }
    }
    Err(ArchiveError::BinaryMissing {
        unpacked: unpacked.to_path_buf(),
        name: name.to_owned(),
        nested: nested.map(|dir| dir.to_string_lossy().into_owned()),
    })
}

/// `dir/bin/<name>` or `dir/<name>`, as a regular file or a link to one inside `root`.
fn look_in(root: &Path, dir: &Path, name: &str) -> Option<Found> {
    let lib = dir.join("lib");
    let lib = fs::symlink_metadata(&lib)
        .is_ok_and(|meta| meta.is_dir())
        .then_some(lib);
    [dir.join("bin").join(name), dir.join(name)]
        .into_iter()
        .find_map(|candidate| regular_inside(root, &candidate))
        .map(|binary| Found { binary, lib })
}

fn regular_inside(root: &Path, candidate: &Path) -> Option<PathBuf> {
    let meta = fs::symlink_metadata(candidate).ok()?;
    if meta.is_file() {
        return Some(candidate.to_path_buf());
    }
    if !meta.file_type().is_symlink() {
        return None;
    }
    let resolved = fs::canonicalize(candidate).ok()?;
    let root = fs::canonicalize(root).ok()?;
    (resolved.starts_with(&root) && resolved.is_file()).then_some(resolved)
}

fn place(found: &Found, name: &str, out: &Path) -> Result<(), ArchiveError> {
    match fs::symlink_metadata(out) {
        Ok(_) => {
            return Err(ArchiveError::OutExists {
                out: out.to_path_buf(),
            });
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(io_error(out)(err)),
    }
    fs::DirBuilder::new()
        .mode(0o755)
        .create(out)
        .map_err(io_error(out))?;
    let result = (|| {
        let bin_dir = out.join("bin");
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&bin_dir)
            .map_err(io_error(&bin_dir))?;
        let binary = bin_dir.join(name);
        fs::rename(&found.binary, &binary).map_err(io_error(&binary))?;
        let file = fs::File::open(&binary).map_err(io_error(&binary))?;
        file.set_permissions(fs::Permissions::from_mode(0o755))
            .and_then(|()| file.sync_all())
            .map_err(io_error(&binary))?;
        if let Some(lib) = &found.lib {
            let lib_out = out.join("lib");
            fs::rename(lib, &lib_out).map_err(io_error(&lib_out))?;
        }
        sync_dir(&bin_dir).map_err(io_error(&bin_dir))?;
        sync_dir(out).map_err(io_error(out))
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(out);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::acquire::archive::fixtures::{
        Entry, NAME, Scratch, ZipEntry, gzip, mode_of, tar_bytes, zip_bytes,
    };
    use crate::acquire::archive::{Kind, Limits, unpack};

    #[test]
    fn tar_gz_with_bin_and_lib() {
        let scratch = Scratch::new();
        let bytes = gzip(&tar_bytes(&[
            Entry::Dir("bin/", 0o755),
            Entry::File("bin/autod", b"#!/bin/sh\necho v2\n", 0o644),
            Entry::File("lib/libwasmvm.so", b"so", 0o644),
            Entry::Symlink("lib/libwasmvm.x86_64.so", "libwasmvm.so"),
            Entry::HardLink("lib/copy.so", "lib/libwasmvm.so"),
        ]));
        scratch.unpack(Kind::TarGz, "a.tar.gz", &bytes).unwrap();
        arrange(&scratch.dest(), NAME, &scratch.out()).unwrap();
        let out = scratch.out();
        assert_eq!(
            fs::read(out.join("bin/autod")).unwrap(),
            b"#!/bin/sh\necho v2\n"
        );
        assert_eq!(mode_of(&out.join("bin/autod")), 0o755);
        assert_eq!(
            fs::read(out.join("lib/libwasmvm.x86_64.so")).unwrap(),
            b"so"
        );
        assert_eq!(fs::read(out.join("lib/copy.so")).unwrap(), b"so");
    }

    #[test]
    fn zip_with_a_single_root_file() {
        let scratch = Scratch::new();
        let bytes = zip_bytes(&[ZipEntry::File("autod", b"binary")]);
        scratch.unpack(Kind::Zip, "autod.zip", &bytes).unwrap();
        arrange(&scratch.dest(), NAME, &scratch.out()).unwrap();
        assert_eq!(
            fs::read(scratch.out().join("bin/autod")).unwrap(),
            b"binary"
        );
        assert!(!scratch.out().join("lib").exists());
    }

    #[test]
    fn zip_with_bin_folder_and_inside_link() {
        let scratch = Scratch::new();
        let bytes = zip_bytes(&[
            ZipEntry::File("bin/autod-v2", b"binary"),
            ZipEntry::Symlink("bin/autod", "autod-v2"),
        ]);
        scratch.unpack(Kind::Zip, "autod.zip", &bytes).unwrap();
        arrange(&scratch.dest(), NAME, &scratch.out()).unwrap();
        let binary = scratch.out().join("bin/autod");
        assert!(fs::symlink_metadata(&binary).unwrap().is_file());
        assert_eq!(fs::read(binary).unwrap(), b"binary");
    }

    #[test]
    fn tar_with_one_nested_folder() {
        let scratch = Scratch::new();
        let bytes = tar_bytes(&[
            Entry::File("README.md", b"readme", 0o644),
            Entry::File("app-v2/bin/autod", b"binary", 0o755),
            Entry::File("app-v2/lib/x.so", b"so", 0o644),
        ]);
        scratch.unpack(Kind::Tar, "a.tar", &bytes).unwrap();
        arrange(&scratch.dest(), NAME, &scratch.out()).unwrap();
        assert_eq!(
            fs::read(scratch.out().join("bin/autod")).unwrap(),
            b"binary"
        );
        assert_eq!(fs::read(scratch.out().join("lib/x.so")).unwrap(), b"so");
    }

    #[test]
    fn nested_root_binary_and_go_file_mode() {
        let scratch = Scratch::new();
        let bytes = tar_bytes(&[Entry::File("./app/autod", b"nested", 0o755)]);
        scratch.unpack(Kind::Tar, "a.tar", &bytes).unwrap();
        arrange(&scratch.dest(), NAME, &scratch.out()).unwrap();
        assert_eq!(
            fs::read(scratch.out().join("bin/autod")).unwrap(),
            b"nested"
        );

        let scratch = Scratch::new();
        let bytes = zip_bytes(&[ZipEntry::File("autod-linux-amd64", b"single")]);
        scratch.unpack(Kind::Zip, "a.zip", &bytes).unwrap();
        arrange(&scratch.dest(), NAME, &scratch.out()).unwrap();
        assert_eq!(
            fs::read(scratch.out().join("bin/autod")).unwrap(),
            b"single"
        );
    }

    #[test]
    fn raw_binary() {
        let scratch = Scratch::new();
        let file = scratch.write("download", b"raw");
        assert_eq!(
            unpack(
                Kind::Raw,
                &file,
                &scratch.dest(),
                &Limits::default(),
                &AtomicBool::new(false),
            )
            .unwrap_err()
            .to_string(),
            ArchiveError::NotArchive {
                archive: file.clone()
            }
            .to_string()
        );
        arrange_raw(&file, NAME, &scratch.out()).unwrap();
        let binary = scratch.out().join("bin/autod");
        assert_eq!(fs::read(&binary).unwrap(), b"raw");
        assert_eq!(mode_of(&binary), 0o755);
        assert!(!file.exists());
        assert!(matches!(
            arrange_raw(&scratch.write("again", b"x"), NAME, &scratch.out()),
            Err(ArchiveError::OutExists { .. })
        ));
        assert!(matches!(
            arrange_raw(&scratch.dest(), NAME, &scratch.dir.path().join("o2")),
            Err(ArchiveError::NotRegular { .. })
        ));
        assert!(matches!(
            arrange_raw(
                &scratch.write("x", b"x"),
                "../x",
                &scratch.dir.path().join("o3")
            ),
            Err(ArchiveError::BadName(name)) if name == "../x"
        ));
    }

    #[test]
    fn binary_missing_error() {
        let scratch = Scratch::new();
        let bytes = tar_bytes(&[
            Entry::File("README.md", b"readme", 0o644),
            Entry::File("app-v2/bin/other", b"x", 0o755),
        ]);
        scratch.unpack(Kind::Tar, "a.tar", &bytes).unwrap();
        let err = arrange(&scratch.dest(), NAME, &scratch.out()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "archive unpacked into {} does not contain bin/autod or autod (also looked inside app-v2/): the release must ship the binary as bin/autod or autod, at the archive root or inside its one top-level folder",
                scratch.dest().display()
            )
        );
        assert!(!scratch.out().exists());

        let scratch = Scratch::new();
        let bytes = tar_bytes(&[
            Entry::File("a/x", b"x", 0o644),
            Entry::File("b/y", b"y", 0o644),
        ]);
        scratch.unpack(Kind::Tar, "a.tar", &bytes).unwrap();
        let err = arrange(&scratch.dest(), NAME, &scratch.out()).unwrap_err();
        assert_eq!(
            err.to_string(),
            ArchiveError::BinaryMissing {
                unpacked: scratch.dest(),
                name: NAME.into(),
                nested: None
            }
            .to_string()
        );
    }
}
