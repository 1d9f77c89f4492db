//! The doctor's checks of one upgrade binary, before its height: present, regular, executable,
//! built for this machine, its shared libraries found, and `<bin> version` running.

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use super::Report;
use crate::child;
use crate::elf;
use crate::home::binary::{BinaryError, check_binary, check_format, library_path_env};
use crate::home::layout::Layout;
use crate::upgrade::readiness::{self, Libraries};

/// How long `<bin> version` and `ldd` may take.
const RUN_LIMIT: Duration = Duration::from_secs(10);

/// A script's `#!` line must name an interpreter that exists and is executable; `false` (after a
/// `✗` line) when it does not.
fn check_interpreter(report: &mut Report, label: &str, bin: &Path) -> bool {
    if let Err(err @ BinaryError::BadInterpreter { .. }) = check_format(bin) {
        report.fail(
            format!("{label}: {err}"),
            "install the interpreter the #! line names, or fix that line",
        );
        return false;
    }
    true
}

/// Everything about one upgrade's binary that can be known before the height.
pub(super) fn check(report: &mut Report, layout: &Layout, name: &str, dir: &Path) {
    let bin = layout.bin_in(dir);
    let label = format!("upgrade {name}");
    match check_binary(&bin) {
        Ok(()) => report.pass(format!(
            "{label}: binary {} is present and executable",
            bin.display()
        )),
        Err(BinaryError::Missing { path, .. }) => {
            report.fail(
                format!("{label}: binary {} is missing", path.display()),
                format!(
                    "put the new {} binary at {} (chmod 755)",
                    layout.daemon_name(),
                    path.display()
                ),
            );
            return;
        }
        Err(BinaryError::NotExecutable { path }) => {
            report.fail(
                format!("{label}: binary {} is not executable", path.display()),
                format!("chmod 755 {}", path.display()),
            );
            return;
        }
        // Told apart below, with the fix for each kind.
        Err(BinaryError::NotForThisMachine { .. }) => {}
        Err(err) => {
            report.fail(
                format!("{label}: {err}"),
                format!("replace it with the {} binary", layout.daemon_name()),
            );
            return;
        }
    }
    let host = elf::host_machine();
    let host_name = host.map_or_else(|| std::env::consts::ARCH.to_owned(), elf::machine_name);
    let build_fix = format!(
        "install the linux {host_name} build of {}",
        layout.daemon_name()
    );
    let mut head = [0u8; 64];
    let read = std::fs::File::open(&bin).and_then(|mut file| {
        let mut filled = 0;
        while filled < head.len() {
            let n = file.read(&mut head[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(filled)
    });
    let head = match read {
        Ok(n) => &head[..n],
        Err(err) => {
            report.fail(
                format!("{label}: cannot read {}: {err}", bin.display()),
                "check the file's permissions",
            );
            return;
        }
    };
    let is_script = match elf::kind(head) {
        elf::Kind::Script => {
            if !check_interpreter(report, &label, &bin) {
                return;
            }
            report.pass(format!("{label}: binary is a script (#!)"));
            true
        }
        elf::Kind::Elf { machine } if host.is_none_or(|h| h == machine) => {
            report.pass(format!(
                "{label}: binary is an ELF executable for {}",
                elf::machine_name(machine)
            ));
            false
        }
        elf::Kind::Elf { machine } => {
            report.fail(
                format!(
                    "{label}: binary is built for {}, this host is {host_name}",
                    elf::machine_name(machine)
                ),
                build_fix,
            );
            return;
        }
        elf::Kind::Unknown => {
            report.fail(
                format!("{label}: binary is neither an ELF executable nor a #! script"),
                build_fix,
            );
            return;
        }
    };
    let env: Vec<(OsString, OsString)> = library_path_env(dir).into_iter().collect();
    if !is_script {
        check_libraries(report, &label, &bin, dir, &env);
    }
    check_version_runs(report, &label, &bin, layout.daemon_name(), &env);
}

fn check_libraries(
    report: &mut Report,
    label: &str,
    bin: &Path,
    dir: &Path,
    env: &[(OsString, OsString)],
) {
    let found = crate::commands::block_on(async { Ok(readiness::libraries(bin, env).await) });
    match found {
        Ok(Libraries::Missing(missing)) => report.fail(
            format!(
                "{label}: shared libraries not found: {}",
                missing.join(", ")
            ),
            format!(
                "put them in {} (it is added to LD_LIBRARY_PATH) or install them on the host",
                dir.join("lib").display()
            ),
        ),
        Ok(Libraries::Resolved) => report.pass(format!("{label}: shared libraries resolve")),
        Ok(Libraries::Static) => {
            report.pass(format!("{label}: shared libraries (statically linked)"));
        }
        Ok(Libraries::Unknown(why)) => report.pass(format!("{label}: shared libraries ({why})")),
        Err(err) => report.pass(format!("{label}: shared libraries ({err})")),
    }
}

fn check_version_runs(
    report: &mut Report,
    label: &str,
    bin: &Path,
    daemon: &str,
    env: &[(OsString, OsString)],
) {
    let mut command = Command::new(bin);
    command.arg("version").envs(env.iter().cloned());
    let fix = format!(
        "run `{} version` by hand and fix what it reports",
        bin.display()
    );
    match run_limited(command) {
        Ok(Some(output)) if output.status.success() => {
            let stdout = output.stdout.text();
            let text = if stdout.trim_ascii().is_empty() {
                output.stderr.text()
            } else {
                stdout
            };
            let first = text.lines().next().unwrap_or("").trim();
            let shown: String = if first.is_empty() {
                "no output".to_owned()
            } else {
                first.chars().take(80).collect()
            };
            report.pass(format!("{label}: `{daemon} version` runs ({shown})"));
        }
        Ok(Some(output)) => report.fail(
            format!(
                "{label}: `{daemon} version` failed ({})",
                describe(output.status)
            ),
            fix,
        ),
        Ok(None) => report.fail(
            format!(
                "{label}: `{daemon} version` did not finish within {}s",
                RUN_LIMIT.as_secs()
            ),
            fix,
        ),
        Err(err) => report.fail(format!("{label}: cannot run {}: {err}", bin.display()), fix),
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// Runs `command` with stdin closed and output captured, in its own process group, on the
/// commands' runtime (the doctor's checks are otherwise synchronous); `Ok(None)` when it did not
/// finish within [`RUN_LIMIT`] (the group is then killed).
fn run_limited(command: Command) -> anyhow::Result<Option<child::Ended>> {
    crate::commands::block_on(async { Ok(child::run_within(command, RUN_LIMIT).await?) })
}
