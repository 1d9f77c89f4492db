//! Fuzz target: archive unpacking (`archive::unpack`) into an empty folder. Property: nothing
//! is ever created outside that folder, every symbolic link in it resolves inside it, and on
//! error the folder is left empty. The first input byte picks the format (tar, tar.gz, zip).
#![no_main]

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::AtomicBool;

use cosmovisor::acquire::archive::{self, Kind, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&format, body)) = data.split_first() else {
        return;
    };
    let kind = match format % 3 {
        0 => Kind::Tar,
        1 => Kind::TarGz,
        _ => Kind::Zip,
    };
    let outer = tempfile::tempdir().expect("a temporary folder");
    let file = outer.path().join("archive");
    let dest = outer.path().join("dest");
    fs::write(&file, body).expect("write the archive");
    fs::create_dir(&dest).expect("create dest");
    let limits = Limits {
        max_total_bytes: 1 << 20,
        max_entries: 256,
    };
    let never_cancelled = AtomicBool::new(false);
    let result = archive::unpack(kind, &file, &dest, &limits, &never_cancelled);

    let mut beside: Vec<_> = fs::read_dir(outer.path())
        .expect("list the outer folder")
        .map(|entry| entry.expect("an entry").file_name())
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        ["archive", "dest"],
        "something was created outside dest"
    );
    if result.is_err() {
        assert_eq!(
            fs::read_dir(&dest).expect("list dest").count(),
            0,
            "dest not emptied"
        );
    }
    check_links(&dest, &dest);
});

/// Every symbolic link under `dir` resolves inside `root` (through the other links when its
/// target exists; lexically from its resolved parent when it dangles).
fn check_links(root: &Path, dir: &Path) {
    let root = fs::canonicalize(root).expect("canonical root");
    walk(&root, dir);
}

fn walk(root: &Path, dir: &Path) {
    for entry in fs::read_dir(dir).expect("list a folder") {
        let path = entry.expect("an entry").path();
        let meta = fs::symlink_metadata(&path).expect("stat an entry");
        if meta.file_type().is_symlink() {
            let resolved = fs::canonicalize(&path).unwrap_or_else(|_| {
                let parent =
                    fs::canonicalize(path.parent().expect("a parent")).expect("canonical parent");
                normalise(&parent.join(fs::read_link(&path).expect("read a link")))
            });
            assert!(
                resolved.starts_with(root),
                "{} resolves to {} outside the folder",
                path.display(),
                resolved.display()
            );
        } else if meta.is_dir() {
            walk(root, &path);
        }
    }
}

fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
