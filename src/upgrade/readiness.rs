//! Whether a scheduled upgrade is ready before its height, judged without running its binary
//! (README "Before the upgrade"): staged at `upgrades/<name>/bin/$DAEMON_NAME`, a regular file
//! with an execute bit, an ELF for this machine (or a `#!` script whose interpreter exists), every
//! `NEEDED` shared library found by `ldd` with `upgrades/<name>/lib` first (as at launch), and,
//! when the plan's `info` gives a checksum of an unpacked binary for this platform, the staged
//! file matches it. The one judge for the outlook of `run`, `status` and `doctor`.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use crate::acquire::archive::{self, Kind};
use crate::acquire::plan_info::{self, Checksum, Resolved};
use crate::elf;
use crate::home::binary::{self, BinaryError};
use crate::home::layout::Layout;
use crate::home::plan::Plan;

/// How long `ldd` may take.
const LDD_LIMIT: Duration = Duration::from_secs(10);

/// Why a scheduled upgrade is not ready: what is wrong (naming the file) and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    pub reason: String,
    pub fix: String,
    /// The binary is not staged at all (a download can make it ready).
    pub missing: bool,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; fix: {}", self.reason, self.fix)
    }
}

impl NotReady {
    fn new(reason: impl Into<String>, fix: impl Into<String>) -> NotReady {
        NotReady {
            reason: reason.into(),
            fix: fix.into(),
            missing: false,
        }
    }
}

/// What `ldd` says of a binary's shared libraries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Libraries {
    /// Every one is found.
    Resolved,
    /// Statically linked (`ldd` exits non-zero without a missing library).
    Static,
    /// These are not found.
    Missing(Vec<String>),
    /// `ldd` could not tell (not installed, timed out, failed to start): why.
    Unknown(String),
}

/// Checks the staged binary of `plan` (see the module header); `allow_download` only changes
/// the fix given for a missing binary.
pub async fn check(layout: &Layout, plan: &Plan, allow_download: bool) -> Result<(), NotReady> {
    let dir = layout.upgrade_dir(&plan.name);
    let bin = layout.bin_in(&dir);
    let daemon = layout.daemon_name();
    let host =
        elf::host_machine().map_or_else(|| std::env::consts::ARCH.to_owned(), elf::machine_name);
    match binary::check_binary(&bin) {
        Ok(()) => {}
        Err(BinaryError::Missing { path, .. }) => {
            let stage = format!(
                "stage it: cosmovisor add-upgrade {} <path to the new {daemon}>",
                plan.name
            );
            let fix = if allow_download {
                stage
            } else {
                format!("{stage} (or set DAEMON_ALLOW_DOWNLOAD_BINARIES=true)")
            };
            return Err(NotReady {
                reason: format!("binary {} is not staged", path.display()),
                fix,
                missing: true,
            });
        }
        Err(BinaryError::NotExecutable { path }) => {
            return Err(NotReady::new(
                format!("binary {} is not executable", path.display()),
                format!("chmod 755 {}", path.display()),
            ));
        }
        Err(BinaryError::NotForThisMachine { path, why }) => {
            return Err(NotReady::new(
                format!(
                    "binary {} is not for this machine ({host}): {why}",
                    path.display()
                ),
                format!("stage the linux {host} build of {daemon}"),
            ));
        }
        Err(BinaryError::BadInterpreter { path, why }) => {
            return Err(NotReady::new(
                format!("binary {} is a script whose #! line {why}", path.display()),
                "install the interpreter or fix the script's first line".to_owned(),
            ));
        }
        Err(err) => {
            return Err(NotReady::new(
                err.to_string(),
                format!("stage the {daemon} binary at {}", bin.display()),
            ));
        }
    }
    // A script's interpreter was checked with the binary; an ELF's libraries are checked here.
    if elf::kind(&head(&bin)) != elf::Kind::Script {
        let env: Vec<(OsString, OsString)> = binary::library_path_env(&dir).into_iter().collect();
        if let Libraries::Missing(missing) = libraries(&bin, &env).await {
            return Err(NotReady::new(
                format!(
                    "binary {} needs shared libraries that are not found: {}",
                    bin.display(),
                    missing.join(", ")
                ),
                format!(
                    "put them in {} (it is added to LD_LIBRARY_PATH) or install them on the host",
                    dir.join("lib").display()
                ),
            ));
        }
    }
    // Hashing a large binary takes a while: off the supervisor's thread.
    let plan = plan.clone();
    tokio::task::spawn_blocking(move || check_checksum(&bin, &plan))
        .await
        .unwrap_or_else(|err| {
            Err(NotReady::new(
                format!("cannot check the binary's checksum: {err}"),
                "run cosmovisor doctor".to_owned(),
            ))
        })
}

/// The first bytes of `path` (empty when it cannot be read: the kernel decides at `exec`).
fn head(path: &Path) -> Vec<u8> {
    let mut head = Vec::with_capacity(elf::HEAD_LEN);
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(elf::HEAD_LEN as u64).read_to_end(&mut head);
    }
    head
}

/// When the plan's `info` gives a checksum for this platform's download and that download is
/// the binary itself (not an archive), the staged file must match it.
fn check_checksum(bin: &Path, plan: &Plan) -> Result<(), NotReady> {
    let Ok(Resolved::Binary(source)) = plan_info::resolve(&plan.info, false) else {
        return Ok(());
    };
    let Some(expected) = source.checksum else {
        return Ok(());
    };
    let head = head(bin);
    if archive::detect(&source.original, &head) != Kind::Raw {
        return Ok(());
    }
    let actual = match hash_file(bin, &expected) {
        Ok(actual) => actual,
        Err(err) => {
            return Err(NotReady::new(
                format!("cannot read {} to check its checksum: {err}", bin.display()),
                "check the file's permissions".to_owned(),
            ));
        }
    };
    if actual == expected {
        return Ok(());
    }
    Err(NotReady::new(
        format!(
            "binary {} does not match the plan's checksum (expected {expected}, got {actual})",
            bin.display()
        ),
        format!(
            "remove {} and stage the binary the plan names ({})",
            bin.display(),
            source.shown
        ),
    ))
}

fn hash_file(path: &Path, like: &Checksum) -> std::io::Result<Checksum> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = like.hasher();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// Asks `ldd` (on `PATH`) which shared libraries of `bin` are not found, with `env` (the
/// version's `LD_LIBRARY_PATH`) as at launch.
pub async fn libraries(bin: &Path, env: &[(OsString, OsString)]) -> Libraries {
    let Some(ldd) = find_on_path("ldd") else {
        return Libraries::Unknown("ldd not available".to_owned());
    };
    let mut command = Command::new(ldd);
    command.arg(bin).envs(env.iter().cloned());
    let output = match crate::child::run_within(command, LDD_LIMIT).await {
        Ok(Some(output)) => output,
        Ok(None) => {
            return Libraries::Unknown(format!(
                "ldd did not finish within {}s",
                LDD_LIMIT.as_secs()
            ));
        }
        Err(err) => return Libraries::Unknown(format!("cannot run ldd: {err}")),
    };
    let text = output.stdout.text();
    let missing: Vec<String> = text
        .lines()
        .filter(|line| line.contains("not found"))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    if !missing.is_empty() {
        Libraries::Missing(missing)
    } else if output.status.success() {
        Libraries::Resolved
    } else {
        Libraries::Static
    }
}

/// The first executable named `program` on `PATH`.
#[must_use]
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| binary::check_binary(candidate).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[tokio::test]
    async fn a_script_is_ready_only_when_its_interpreter_can_run() {
        let home = tempfile::tempdir().unwrap();
        let layout = Layout::new(home.path(), "simd");
        let plan = crate::home::plan::parse(br#"{"name":"v2","height":10}"#, true).unwrap();
        let bin = layout.bin_in(&layout.upgrade_dir(&plan.name));
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        let stage = |script: &str| {
            std::fs::write(&bin, script).unwrap();
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        stage("#!/bin/sh\nexit 0\n");
        assert!(check(&layout, &plan, false).await.is_ok());
        stage("#!/opt/missing/python3\n");
        let not_ready = check(&layout, &plan, false).await.unwrap_err();
        assert!(
            not_ready.reason.contains("/opt/missing/python3"),
            "{not_ready}"
        );
        assert_eq!(
            not_ready.fix,
            "install the interpreter or fix the script's first line"
        );
    }
}
