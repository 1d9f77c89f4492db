//! The seccomp wrapper that refuses setuid/setgid bits as systemd's `RestrictSUIDSGID=true`
//! does (`tests/integration/restrict_suid_sgid.c`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// A wrapper that runs its command under a seccomp filter refusing setuid/setgid bits the way
/// systemd's `RestrictSUIDSGID=true` does (`tests/integration/restrict_suid_sgid.c`, built once
/// with `cc`); `None`, after `skip_or_fail_in_ci`, when it cannot be built or installed here.
pub fn restrict_suid_sgid() -> Option<OsString> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let source =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/restrict_suid_sgid.c");
        let program = Path::new(env!("CARGO_TARGET_TMPDIR")).join("restrict_suid_sgid");
        let out = Command::new("cc")
            .args(["-O2", "-Wall", "-o"])
            .arg(&program)
            .arg(&source)
            .output()
            .map_err(|err| format!("cannot run cc: {err}"))?;
        if !out.status.success() {
            return Err(format!(
                "cc cannot build {}: {}",
                source.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // The filter must refuse a setgid bit and let an ordinary chmod through.
        let dir = tempfile::tempdir().map_err(|err| err.to_string())?;
        let chmod = |mode: &str| {
            Command::new(&program)
                .args(["chmod", mode])
                .arg(dir.path())
                .output()
                .is_ok_and(|out| out.status.success())
        };
        if chmod("2775") || !chmod("775") {
            return Err(
                "the seccomp filter does not work here (no seccomp in this kernel?)".into(),
            );
        }
        Ok(program)
    });
    match built {
        Ok(program) => Some(program.into()),
        Err(reason) => {
            skip_or_fail_in_ci(reason);
            None
        }
    }
}
