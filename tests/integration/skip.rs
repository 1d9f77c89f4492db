//! What tests need from the machine: `skip_or_fail_in_ci`, the one way a test that cannot run
//! here (it needs root or a tool) says so, and `Tmpfs`, the small disk the full-disk tests mount
//! (as root). The integration tests get them through `support/mod.rs`; the library's unit tests
//! include this file from `src/test_support.rs`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a test that cannot run here does before it returns: with `CI` set (not empty) it fails
/// with `reason`, because `.ci/run` installs everything the tests need and runs them as root;
/// elsewhere it prints `skipped: <test>: <reason>` on the terminal.
pub fn skip_or_fail_in_ci(reason: &str) {
    let in_ci = std::env::var_os("CI").is_some_and(|value| !value.is_empty());
    assert!(
        !in_ci,
        "{reason}: in CI every test must run (.ci/run installs what they need)"
    );
    // The harness runs each test on a thread named after it.
    let current = std::thread::current();
    let test = current.name().unwrap_or("a test");
    // Straight to stderr: the harness captures (and hides) `eprintln!` of a passing test.
    let _ = writeln!(std::io::stderr().lock(), "skipped: {test}: {reason}");
}

/// A tmpfs mounted over a folder for the life of the test.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` over `dir`; `None` (after [`skip_or_fail_in_ci`]) where that
    /// is not allowed (it needs root).
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).expect("mkdir for the tmpfs");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .is_ok_and(|out| out.status.success());
        if mounted {
            Some(Tmpfs(dir.to_path_buf()))
        } else {
            skip_or_fail_in_ci(&format!(
                "cannot mount a tmpfs on {} (needs root)",
                dir.display()
            ));
            None
        }
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes zeros until the file system is full.
    pub fn fill(&self) {
        let mut filler = fs::File::create(self.0.join("filler")).expect("create the filler");
        let block = vec![0u8; 4096];
        while filler.write_all(&block).is_ok() {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
