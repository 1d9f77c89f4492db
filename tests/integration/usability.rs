//! Everyday usability: the doctor reads the unit's environment, colours only on
//! a terminal, help for an implicit-run word, `--version`, a clean manual page, an applied plan is
//! not "pending", hints for a missing binary, `version` without configuration, `mock-node --help`
//! and the demo's warning.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::{Cosmovisor, FakeDaemon, Home, MOCK_NODE, Output};

/// A daemon that answers `version` with `v2.0.0` (and otherwise blocks).
fn versioned(tag: &str) -> FakeDaemon {
    FakeDaemon::new()
        .raw(r#"if [ "${1:-}" = version ]; then echo v2.0.0; exit 0; fi"#)
        .ready(tag)
        .block()
}

/// A healthy home with genesis current and nothing staged.
fn healthy() -> Home {
    let home = Home::new("simd");
    home.genesis(&versioned("v1"));
    home.set_current("genesis");
    home
}

fn failures(out: &Output) -> Vec<String> {
    out.stdout()
        .lines()
        .filter(|line| line.starts_with("✗ "))
        .map(str::to_owned)
        .collect()
}

/// Only `PATH`: no `DAEMON_*` in the shell at all.
fn bare<I, S>(args: I) -> Cosmovisor
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString>,
{
    Cosmovisor::new(args).env("PATH", std::env::var_os("PATH").unwrap_or_default())
}

fn unit_text(environment: &str) -> String {
    format!(
        "[Service]\nExecStart=/usr/local/bin/cosmovisor run start\n{environment}\nKillMode=mixed\nTimeoutStopSec=120\n"
    )
}

#[test]
fn doctor_uses_the_units_environment_and_environment_files() {
    let home = healthy();
    let env_file = home.path().join("cosmovisor.env");
    fs::write(
        &env_file,
        "# written by the operator\n; also a comment\nDAEMON_NAME=\"simd\"\n\nDAEMON_POLL_INTERVAL='50ms'\n",
    )
    .expect("test setup");
    let unit = home.path().join("node.service");
    fs::write(
        &unit,
        unit_text(&format!(
            "Environment=\"DAEMON_HOME={}\" 'DAEMON_SHUTDOWN_GRACE=5s'\nEnvironment=DAEMON_NAME=wrong\n\
             EnvironmentFile=-{}/missing.env\nEnvironmentFile={}",
            home.path().display(),
            home.path().display(),
            env_file.display()
        )),
    )
    .expect("test setup");
    let out = bare(["doctor", "--unit", unit.to_str().expect("utf-8")]).run();
    out.assert_code(0);
    assert!(!out.stdout().contains("is not set"), "{out}");
    // EnvironmentFile= overrides Environment= (DAEMON_NAME=wrong), as systemd does.
    out.stdout_contains(&format!(
        "✓ configuration is valid (DAEMON_HOME={}, DAEMON_NAME=simd)",
        home.path().display()
    ));
    out.stdout_contains(&format!(
        "✓ home {} has cosmovisor/ and data/",
        home.path().display()
    ));
}

/// `node.service` in `home` giving the node `DAEMON_HOME`, `DAEMON_NAME=simd` and `more`; and
/// `doctor --unit` for it, with `DAEMON_NAME=simd` in the shell.
fn unit_and_doctor(home: &Home, more: &str) -> (std::path::PathBuf, Cosmovisor) {
    let unit = home.path().join("node.service");
    fs::write(
        &unit,
        unit_text(&format!(
            "Environment=DAEMON_HOME={} DAEMON_NAME=simd{more}",
            home.path().display()
        )),
    )
    .expect("test setup");
    let doctor =
        bare(["doctor", "--unit", unit.to_str().expect("utf-8")]).env("DAEMON_NAME", "simd");
    (unit, doctor)
}

#[test]
fn doctor_checks_the_units_home_and_names_the_shells_mismatch() {
    let home = healthy();
    let other = Home::new("simd");
    let (unit, doctor) = unit_and_doctor(&home, "");
    let out = doctor.env("DAEMON_HOME", other.path()).run();
    out.assert_code(7);
    out.stdout_contains(&format!(
        "✓ home {} has cosmovisor/ and data/",
        home.path().display()
    ));
    assert_eq!(
        failures(&out),
        [format!(
            "✗ the shell's environment differs from unit {}: DAEMON_HOME={} (the unit: {}) — fix: \
             commands run by hand (add-upgrade, status, rollback) use the shell's values: set them \
             as the unit does, or unset them",
            unit.display(),
            other.path().display(),
            home.path().display()
        )],
        "{out}"
    );
}

/// Variables only the running supervisor reads (`DAEMON_POLL_INTERVAL`, `COSMOVISOR_COLOR_LOGS`,
/// the log format) do not change what commands run by hand do: a shell that differs from the unit
/// in them is a `!` note, not a failure. The unit's `DAEMON_POLL_INTERVAL=8ms` works with Go, so
/// it is valid here too.
#[test]
fn doctor_notes_a_shell_that_differs_only_in_supervisor_settings() {
    let home = healthy();
    let (unit, doctor) = unit_and_doctor(&home, " DAEMON_POLL_INTERVAL=8ms");
    let out = doctor
        .env("DAEMON_HOME", home.path())
        .env("DAEMON_POLL_INTERVAL", "300ms")
        .env("COSMOVISOR_COLOR_LOGS", "false")
        .env("COSMOVISOR_LOG_FORMAT", "json")
        .run();
    out.assert_code(0);
    assert!(failures(&out).is_empty(), "{out}");
    out.stdout_contains(&format!(
        "! the shell's environment differs from unit {} in settings only the running supervisor \
         reads: DAEMON_POLL_INTERVAL=300ms (the unit: 8ms), COSMOVISOR_COLOR_LOGS=false (the \
         unit: unset), COSMOVISOR_LOG_FORMAT=json (the unit: unset) — hint: commands run by hand \
         are not affected; the node runs with the unit's values",
        unit.display()
    ));
    out.stdout_contains(
        "! DAEMON_POLL_INTERVAL: \"8ms\" is below the minimum of 10ms, polling every 10ms instead \
         (set it to 10ms or more to silence this warning) — hint: Go accepts it; it works as said",
    );
}

#[test]
fn doctor_names_a_required_environment_file_that_is_missing() {
    let home = healthy();
    let unit = home.path().join("node.service");
    let missing = home.path().join("nope.env");
    fs::write(
        &unit,
        unit_text(&format!(
            "Environment=DAEMON_HOME={} DAEMON_NAME=simd\nEnvironmentFile={}",
            home.path().display(),
            missing.display()
        )),
    )
    .expect("test setup");
    let out = bare(["doctor", "--unit", unit.to_str().expect("utf-8")]).run();
    out.assert_code(7);
    assert_eq!(
        failures(&out),
        [format!(
            "✗ systemd unit {}: EnvironmentFile={} cannot be read: No such file or directory — fix: \
             create it, or write EnvironmentFile=-{} if it is optional (systemd refuses to start \
             the unit without it)",
            unit.display(),
            missing.display(),
            missing.display()
        )],
        "{out}"
    );
}

#[test]
fn colours_only_on_a_terminal_unless_forced() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().say("daemon says hi").exit(0));
    let unset = home
        .cosmovisor(["run", "start"])
        .env_remove("COSMOVISOR_COLOR_LOGS")
        .run();
    unset.assert_code(0).stderr_contains("running app");
    assert!(
        !unset.stderr().contains('\x1b'),
        "no escape codes when stderr is a pipe\n{unset}"
    );
    let forced = home
        .cosmovisor(["run", "start"])
        .env("COSMOVISOR_COLOR_LOGS", "true")
        .run();
    forced.assert_code(0);
    assert!(
        forced.stderr().contains("\x1b["),
        "COSMOVISOR_COLOR_LOGS=true forces colours\n{forced}"
    );
}

#[test]
fn help_for_an_implicit_run_word_explains_run() {
    let out = bare(["help", "start"]).run();
    out.assert_code(0);
    out.stdout_contains("`cosmovisor start …` runs the daemon as `cosmovisor run start …`");
    out.stdout_contains("cosmovisor run start --help");
}

#[test]
fn version_flags_print_the_version() {
    for flag in ["--version", "-V"] {
        let out = bare([flag]).run();
        out.assert_code(0);
        assert_eq!(
            out.stdout(),
            format!("cosmovisor version: v{}\n", env!("CARGO_PKG_VERSION")),
            "{out}"
        );
    }
}

/// The names in the first column of a README table under `heading` (up to the next heading).
fn readme_table(heading: &str) -> Vec<String> {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme.find(heading).expect("README heading");
    readme[start + heading.len()..]
        .lines()
        .take_while(|line| !line.starts_with("## "))
        .filter_map(|line| line.strip_prefix("| "))
        .filter_map(|row| row.split(" |").next())
        .map(|cell| cell.trim_matches('`').to_owned())
        .filter(|cell| {
            cell.chars().all(|c| c.is_ascii_digit())
                || cell.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        })
        .filter(|cell| !cell.is_empty())
        .collect()
}

#[test]
fn man_page_is_clean_and_complete() {
    let out = bare(["man"]).run();
    out.assert_code(0);
    let page = out.stdout();
    assert!(
        !page.contains("cosmovisor \\- Cosmovisor"),
        "NAME repeats the name\n{page}"
    );
    assert!(!page.contains("vv"), "version printed as vv…\n{page}");
    assert!(
        !page.contains("(1)"),
        "refers to manual pages that do not exist\n{page}"
    );
    let section = |name: &str| {
        let heading = if name.contains(' ') {
            format!(".SH \"{name}\"\n")
        } else {
            format!(".SH {name}\n")
        };
        let start = page
            .find(&heading)
            .unwrap_or_else(|| panic!("no {name} section\n{page}"));
        let rest = &page[start + 4..];
        rest[..rest.find(".SH ").unwrap_or(rest.len())].to_owned()
    };
    let environment = section("ENVIRONMENT");
    let variables = readme_table("## Configuration reference");
    assert!(variables.len() > 20, "{variables:?}");
    for var in &variables {
        assert!(
            environment.contains(var.as_str()),
            "ENVIRONMENT lacks {var}\n{environment}"
        );
    }
    let exit_status = section("EXIT STATUS");
    let codes = readme_table("## Exit codes");
    assert!(codes.len() >= 8, "{codes:?}");
    for code in &codes {
        assert!(
            exit_status.contains(&format!("\\fB{code}\\fR")),
            "EXIT STATUS lacks {code}\n{exit_status}"
        );
    }
    assert!(
        section("VERSION").contains(&format!("v{}", env!("CARGO_PKG_VERSION"))),
        "{page}"
    );
    let file = tempfile::NamedTempFile::new().expect("temp file");
    fs::write(file.path(), &page).expect("write page");
    let groff = Command::new("groff")
        .args(["-ww", "-man", "-z"])
        .arg(file.path())
        .output()
        .expect("groff is needed for this test (apt-get install groff-base)");
    assert!(groff.status.success(), "groff failed: {groff:?}");
    assert_eq!(
        String::from_utf8_lossy(&groff.stderr),
        "",
        "groff -ww warnings\n{page}"
    );
}

#[test]
fn an_applied_plan_is_not_called_pending() {
    let home = Home::new("simd");
    home.genesis(&versioned("v1"))
        .upgrade("v2.1.0", &versioned("v2"));
    fs::write(
        home.upgrade_dir("v2.1.0").join("upgrade-info.json"),
        r#"{"name":"v2.1.0","height":30}"#,
    )
    .expect("test setup");
    home.set_current("upgrades/v2.1.0");
    home.write_plan("v2.1.0", 30);
    let status = home.cosmovisor(["status"]).run();
    status.assert_code(0);
    let pending = status
        .stdout()
        .lines()
        .find(|line| line.starts_with("pending:"))
        .map_or_else(|| panic!("no pending line\n{status}"), str::to_owned);
    assert!(
        pending
            .trim_start_matches("pending:")
            .trim()
            .starts_with("none"),
        "{status}"
    );
    let doctor = home.cosmovisor(["doctor"]).run();
    assert!(
        !doctor
            .stdout()
            .lines()
            .any(|line| line.contains("pending") && line.contains("v2.1.0")),
        "{doctor}"
    );
    doctor.stdout_contains("v2.1.0 at height 30 is already applied");
}

#[test]
fn a_mistyped_daemon_name_gets_a_hint() {
    let home = healthy();
    let out = home
        .cosmovisor(["run", "start"])
        .env("DAEMON_NAME", "smid")
        .run();
    out.assert_code(4);
    let bin_dir = home.genesis_dir().join("bin");
    assert_eq!(
        out.errors(),
        [format!(
            "binary {}/smid does not exist: {} holds simd (is DAEMON_NAME=smid a typo?)",
            bin_dir.display(),
            bin_dir.display()
        )],
        "{out}"
    );
}

#[test]
fn a_missing_genesis_binary_gets_a_hint() {
    let home = Home::new("simd");
    fs::create_dir_all(home.genesis_dir().join("bin")).expect("test setup");
    let out = home.cosmovisor(["run", "start"]).run();
    out.assert_code(4);
    let bin_dir = home.genesis_dir().join("bin");
    assert_eq!(
        out.errors(),
        [format!(
            "binary {}/simd does not exist: {} is empty (put the simd binary there, chmod 755)",
            bin_dir.display(),
            bin_dir.display()
        )],
        "{out}"
    );
}

#[test]
fn version_without_configuration_prefixes_every_line() {
    let out = bare(["version"]).run();
    out.assert_code(0);
    let lines: Vec<String> = out.stderr().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{out}");
    for line in &lines {
        assert!(
            line.starts_with("cannot run the daemon's version command: "),
            "{out}"
        );
    }
}

#[test]
fn mock_node_help_prints_its_usage() {
    for flag in ["--help", "-h", "help"] {
        let out = Command::new(MOCK_NODE)
            .arg(flag)
            .output()
            .expect("mock-node");
        assert!(out.status.success(), "{flag}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("Usage: mock-node "), "{flag}: {text}");
        assert!(text.contains("mock-node.json"), "{flag}: {text}");
    }
}

#[test]
fn demo_says_up_front_that_the_first_run_compiles() {
    let script = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh"))
        .expect("scripts/demo.sh");
    let warning = script
        .find("about 4 minutes")
        .expect("the demo warns about the first build");
    let build = script.find("cargo build").expect("the demo builds");
    assert!(warning < build, "the warning comes before the build");
}
