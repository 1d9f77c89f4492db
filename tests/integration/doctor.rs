//! `cosmovisor doctor`: one ✓/✗ line per check, exact ✗ lines for what operators get wrong, exit 7
//! when anything fails.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{FakeDaemon, Home, Output, platform};

/// The unit we ship; it must pass the doctor's checks.
pub fn shipped_unit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd/cosmovisor.service")
}

/// The unit we ship, with its `Environment=` lines replaced by the test home's environment plus
/// `extra` (the doctor reads the configuration from the unit), written into the home.
pub fn shipped_unit_for(home: &Home, extra: &[(&str, &str)]) -> PathBuf {
    let text = fs::read_to_string(shipped_unit()).expect("shipped unit");
    let mut env = env_lines(home);
    for (var, value) in extra {
        let _ = writeln!(env, "Environment=\"{var}={value}\"");
    }
    let mut unit = String::new();
    for line in text.lines() {
        if !line.starts_with("Environment=") {
            unit.push_str(line);
            unit.push('\n');
        } else if !env.is_empty() {
            unit.push_str(&std::mem::take(&mut env));
        }
    }
    let path = home.path().join("cosmovisor.service");
    fs::write(&path, unit).expect("write unit");
    path
}

/// `Environment=` lines giving the unit the test home's environment.
fn env_lines(home: &Home) -> String {
    let mut lines = String::new();
    for (var, value) in home.env().iter().filter(|(var, _)| var != "PATH") {
        let _ = writeln!(lines, "Environment=\"{var}={}\"", value.to_string_lossy());
    }
    lines
}

/// A daemon that answers `version` with `v2.0.0` (and otherwise blocks).
fn versioned(tag: &str) -> FakeDaemon {
    FakeDaemon::new()
        .raw(r#"if [ "${1:-}" = version ]; then echo v2.0.0; exit 0; fi"#)
        .ready(tag)
        .block()
}

/// genesis current, upgrades/v2 staged, the plan for v2 pending.
fn healthy() -> Home {
    let home = Home::new("simd");
    home.genesis(&versioned("v1"))
        .upgrade("v2", &versioned("v2"));
    home.set_current("genesis");
    home.write_plan("v2", 10);
    home
}

fn doctor(home: &Home, args: &[&str]) -> Output {
    let mut all = vec!["doctor", "--unit"];
    let unit = shipped_unit_for(home, &[]);
    all.push(unit.to_str().expect("utf-8 path"));
    all.extend_from_slice(args);
    home.cosmovisor(all).run()
}

fn failures(out: &Output) -> Vec<String> {
    out.stdout()
        .lines()
        .filter(|line| line.starts_with("✗ "))
        .map(str::to_owned)
        .collect()
}

fn bin(home: &Home, name: &str) -> PathBuf {
    home.upgrade_dir(name).join("bin/simd")
}

#[test]
fn healthy_home_passes_every_check() {
    let home = healthy();
    // A node whose gRPC answers (no plan scheduled on chain).
    let grpc = crate::support::GrpcNode::start(None);
    let unit = shipped_unit_for(&home, &[("DAEMON_GRPC_ADDRESS", &grpc.address)]);
    let out = home
        .cosmovisor([
            "doctor",
            "--unit",
            unit.to_str().expect("utf-8 path"),
            "start",
            "--home",
            home.path().to_str().expect("test setup"),
        ])
        .env("DAEMON_GRPC_ADDRESS", &grpc.address)
        .run();
    out.assert_code(0);
    assert!(failures(&out).is_empty(), "{out}");
    for line in [
        "✓ upgrade v2: binary is a script (#!)".to_owned(),
        "✓ upgrade v2: `simd version` runs (v2.0.0)".to_owned(),
        format!(
            "✓ pending plan \"v2\" at height 10 maps to {}",
            home.upgrade_dir("v2").display()
        ),
        format!("✓ daemon --home {} is DAEMON_HOME", home.path().display()),
        "✓ all checks passed".to_owned(),
    ] {
        assert!(out.stdout().lines().any(|l| l == line), "{line}\n{out}");
    }
    assert!(
        out.stdout().lines().all(|l| l.starts_with("✓ ")),
        "every line is a check\n{out}"
    );
}

#[test]
fn missing_upgrade_binary() {
    let home = healthy();
    fs::remove_file(bin(&home, "v2")).expect("test setup");
    let out = doctor(&home, &[]);
    out.assert_code(7);
    let bin = bin(&home, "v2");
    assert_eq!(
        failures(&out),
        [format!(
            "✗ upgrade v2: binary {} is missing — fix: put the new simd binary at {} (chmod 755)",
            bin.display(),
            bin.display()
        )],
        "{out}"
    );
    assert!(out.stdout().ends_with("1 problem found\n"), "{out}");
}

#[test]
fn non_executable_upgrade_binary() {
    let home = healthy();
    let bin = bin(&home, "v2");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o644)).expect("test setup");
    let out = doctor(&home, &[]);
    out.assert_code(7);
    assert_eq!(
        failures(&out),
        [format!(
            "✗ upgrade v2: binary {} is not executable — fix: chmod 755 {}",
            bin.display(),
            bin.display()
        )],
        "{out}"
    );
}

#[test]
fn wrong_case_folder_with_recase_off() {
    let home = Home::new("simd");
    home.genesis(&versioned("v1"))
        .upgrade("v2", &versioned("v2"));
    home.set_current("genesis");
    home.write_plan("V2", 10);
    let unit = shipped_unit_for(&home, &[("COSMOVISOR_DISABLE_RECASE", "true")]);
    let out = home
        .cosmovisor(["doctor", "--unit", unit.to_str().expect("test setup")])
        .env("COSMOVISOR_DISABLE_RECASE", "true")
        .run();
    out.assert_code(7);
    let (wanted, found) = (home.upgrade_dir("V2"), home.upgrade_dir("v2"));
    assert_eq!(
        failures(&out),
        [format!(
            "✗ pending plan \"V2\" at height 10 needs the folder {}, which does not exist ({} differs only in case; COSMOVISOR_DISABLE_RECASE=true keeps the plan's case) — fix: mv {} {}",
            wanted.display(),
            found.display(),
            found.display(),
            wanted.display()
        )],
        "{out}"
    );
}

#[test]
fn binary_built_for_another_architecture() {
    let (machine, name, host) = if cfg!(target_arch = "aarch64") {
        (62u8, "x86_64", "aarch64")
    } else {
        (183u8, "aarch64", "x86_64")
    };
    let home = healthy();
    let mut header = vec![0u8; 64];
    header[..4].copy_from_slice(b"\x7fELF");
    header[4] = 2; // 64-bit
    header[5] = 1; // little-endian
    header[18] = machine;
    fs::write(bin(&home, "v2"), header).expect("test setup");
    let out = doctor(&home, &[]);
    out.assert_code(7);
    assert_eq!(
        failures(&out),
        [format!(
            "✗ upgrade v2: binary is built for {name}, this host is {host} — fix: install the linux {host} build of simd"
        )],
        "{out}"
    );
}

#[test]
fn failing_version_command() {
    let home = healthy();
    home.upgrade(
        "v2",
        &FakeDaemon::new()
            .raw(r#"if [ "${1:-}" = version ]; then echo "libwasmvm missing" >&2; exit 3; fi"#),
    );
    let out = doctor(&home, &[]);
    out.assert_code(7);
    let bin = bin(&home, "v2");
    assert_eq!(
        failures(&out),
        [format!(
            "✗ upgrade v2: `simd version` failed (exit status 3) — fix: run `{} version` by hand and fix what it reports",
            bin.display()
        )],
        "{out}"
    );
}

#[test]
fn staged_upgrades_are_checked_without_a_plan() {
    let home = Home::new("simd");
    home.genesis(&versioned("v1"))
        .upgrade("v3", &versioned("v3"));
    home.set_current("genesis");
    fs::remove_file(bin(&home, "v3")).expect("test setup");
    let out = doctor(&home, &[]);
    out.assert_code(7);
    assert_eq!(failures(&out).len(), 1, "{out}");
    assert!(
        failures(&out)[0].starts_with("✗ upgrade v3: binary "),
        "{out}"
    );
}

#[test]
fn bad_systemd_unit_and_home_argument() {
    let home = healthy();
    let unit = home.path().join("node.service");
    fs::write(
        &unit,
        format!(
            "[Service]\nExecStart=/usr/bin/cosmovisor run start\n{}KillSignal=SIGKILL\nTimeoutStopSec=8\nKillMode=none\n",
            env_lines(&home)
        ),
    )
    .expect("test setup");
    let out = home
        .cosmovisor([
            "doctor",
            "--unit",
            unit.to_str().expect("test setup"),
            "start",
            "--home=/elsewhere",
        ])
        .run();
    out.assert_code(7);
    let u = unit.display();
    assert_eq!(
        failures(&out),
        [
            format!(
                "✗ daemon --home /elsewhere is not DAEMON_HOME ({}): cosmovisor would watch the wrong upgrade-info.json — fix: use the same folder for both",
                home.path().display()
            ),
            format!(
                "✗ systemd unit {u}: KillSignal=SIGKILL kills the node without a graceful stop — fix: set KillSignal=SIGTERM"
            ),
            format!(
                "✗ systemd unit {u}: TimeoutStopSec=8 is shorter than the unit's DAEMON_SHUTDOWN_GRACE (5s) + 5s: systemd would SIGKILL the node while it stops — fix: set TimeoutStopSec=10s or more (or lower DAEMON_SHUTDOWN_GRACE)"
            ),
            format!(
                "✗ systemd unit {u}: KillMode=none leaves the node running when the service stops — fix: set KillMode=mixed"
            ),
        ],
        "{out}"
    );
    assert!(out.stdout().ends_with("4 problems found\n"), "{out}");
}

#[test]
fn broken_current_and_configuration() {
    let home = healthy();
    home.set_current("upgrades/gone");
    let out = doctor(&home, &[]);
    out.assert_code(7);
    let link = home.root().join("current");
    assert!(
        failures(&out).contains(&format!(
            "✗ {} points to upgrades/gone, which does not exist — fix: point it at a version folder (`ln -sfn genesis {}`)",
            link.display(),
            link.display()
        )),
        "{out}"
    );

    let out = home
        .cosmovisor(["doctor"])
        .env("DAEMON_POLL_INTERVAL", "3x")
        .run();
    out.assert_code(7);
    assert_eq!(
        failures(&out),
        [
            "✗ DAEMON_POLL_INTERVAL: invalid duration \"3x\" (expected a Go duration such as 300ms or 1m30s) — fix: correct it in the environment or config.toml"
        ],
        "{out}"
    );
}

#[test]
fn unresolved_shared_libraries() {
    let home = healthy();
    // A real executable for this host (it ignores `version` and exits 0)...
    fs::copy("/bin/true", bin(&home, "v2")).expect("copy /bin/true");
    // ...and an `ldd` that reports what glibc's does for a missing libwasmvm.
    let tools = home.path().join("tools");
    fs::create_dir_all(&tools).expect("mkdir tools");
    let ldd = tools.join("ldd");
    fs::write(
        &ldd,
        "#!/bin/sh\nprintf '\\tlinux-vdso.so.1 (0x0)\\n\\tlibwasmvm.x86_64.so => not found\\n\\tlibc.so.6 => /lib/libc.so.6 (0x0)\\n'\nexit 1\n",
    )
    .expect("write ldd");
    fs::set_permissions(&ldd, fs::Permissions::from_mode(0o755)).expect("chmod ldd");
    let path = format!(
        "{}:{}",
        tools.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = home
        .cosmovisor([
            "doctor",
            "--unit",
            shipped_unit_for(&home, &[]).to_str().expect("utf-8"),
        ])
        .env("PATH", path)
        .run();
    out.assert_code(7);
    assert_eq!(
        failures(&out),
        [format!(
            "✗ upgrade v2: shared libraries not found: libwasmvm.x86_64.so — fix: put them in {} (it is added to LD_LIBRARY_PATH) or install them on the host",
            home.upgrade_dir("v2").join("lib").display()
        )],
        "{out}"
    );
}

#[test]
fn unit_grace_is_the_units_own() {
    let home = healthy();
    let unit = home.path().join("node.service");
    fs::write(
        &unit,
        format!(
            "[Service]\nExecStart=/usr/bin/cosmovisor run start\n{}Environment=\"DAEMON_SHUTDOWN_GRACE=60s\" DAEMON_NAME=simd\nTimeoutStopSec=1min\nKillMode=mixed\n",
            env_lines(&home)
        ),
    )
    .expect("write unit");
    let out = home
        .cosmovisor(["doctor", "--unit", unit.to_str().expect("utf-8")])
        .env("DAEMON_SHUTDOWN_GRACE", "60s")
        .run();
    out.assert_code(7);
    assert_eq!(
        failures(&out),
        [format!(
            "✗ systemd unit {}: TimeoutStopSec=1min is shorter than the unit's DAEMON_SHUTDOWN_GRACE (1m0s) + 5s: systemd would SIGKILL the node while it stops — fix: set TimeoutStopSec=65s or more (or lower DAEMON_SHUTDOWN_GRACE)",
            unit.display()
        )],
        "{out}"
    );
}

/// genesis current and the plan for v2 pending with `info`, nothing staged under `upgrades/`.
fn plan_to_download(info: &str) -> Home {
    let home = Home::new("simd");
    home.genesis(&versioned("v1"));
    home.set_current("genesis");
    let plan = serde_json::json!({
        "name": "v2",
        "time": "0001-01-01T00:00:00Z",
        "height": 10,
        "info": info,
    });
    fs::write(home.data().join("upgrade-info.json"), plan.to_string()).expect("test setup");
    home
}

fn doctor_with_downloads(home: &Home, env: &[(&str, &str)]) -> Output {
    let mut unit_env = vec![("DAEMON_ALLOW_DOWNLOAD_BINARIES", "true")];
    unit_env.extend_from_slice(env);
    let unit = shipped_unit_for(home, &unit_env);
    let mut command = home
        .cosmovisor(["doctor", "--unit", unit.to_str().expect("test setup")])
        .env("DAEMON_ALLOW_DOWNLOAD_BINARIES", "true");
    for (var, value) in env {
        command = command.env(var, value);
    }
    command.run()
}

#[test]
fn missing_binary_that_will_be_downloaded() {
    let checksum = "0".repeat(64);
    let url = format!("https://example.com/simd-v2.tar.gz?checksum=sha256:{checksum}");
    let inline = serde_json::json!({ "binaries": { "plan9/mips": "https://x/y", "any": url } });
    let reference = format!("https://example.com/v2.json?checksum=sha256:{checksum}");
    for (info, line) in [
        (inline.to_string(), format!("will be downloaded from {url}")),
        (
            reference.clone(),
            format!("will be downloaded from the list at {reference} (not fetched by doctor)"),
        ),
    ] {
        let home = plan_to_download(&info);
        let out = doctor_with_downloads(&home, &[("DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM", "true")]);
        out.assert_code(0);
        let line = format!("✓ {} {line}", bin(&home, "v2").display());
        assert!(out.stdout().lines().any(|l| l == line), "{line}\n{out}");
        assert!(
            !home.upgrade_dir("v2").exists(),
            "doctor changes nothing\n{out}"
        );
    }

    // Without DAEMON_ALLOW_DOWNLOAD_BINARIES the missing folder is a problem.
    let home = plan_to_download(&inline.to_string());
    let out = doctor(&home, &[]);
    out.assert_code(7);
    assert!(
        failures(&out)[0].starts_with("✗ pending plan \"v2\" at height 10 needs the folder "),
        "{out}"
    );
}

#[test]
fn missing_binary_that_cannot_be_downloaded() {
    let url = "https://example.com/simd-v2";
    let fix = "fix: stage the binary with `cosmovisor add-upgrade v2 <path to the new simd>`";
    let no_platform = serde_json::json!({ "binaries": { "plan9/mips": url } }).to_string();
    let no_checksum = serde_json::json!({ "binaries": { "any": url } }).to_string();
    for (info, must_have_checksum, reason) in [
        (
            no_platform,
            "false",
            format!("cannot find binary for os/arch: neither {}, nor any", platform()),
        ),
        (
            no_checksum.clone(),
            "true",
            format!(
                "missing checksum query parameter in \"{url}\" (DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM is set)"
            ),
        ),
        (
            "ftp://example.com/v2.json".to_owned(),
            "false",
            "unsupported URL scheme \"ftp\" in \"ftp://example.com/v2.json\" (use http, https, file or an absolute path)".to_owned(),
        ),
    ] {
        let home = plan_to_download(&info);
        let out = doctor_with_downloads(
            &home,
            &[("DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM", must_have_checksum)],
        );
        out.assert_code(7);
        assert_eq!(
            failures(&out),
            [format!(
                "✗ {} cannot be downloaded: {reason} — {fix}",
                bin(&home, "v2").display()
            )],
            "{out}"
        );
    }
}
