//! Every configuration and layout error through the real binary: the exact `Error:` lines on
//! stderr, the documented exit code (3 for the configuration, 4 for the home's layout), a home
//! left exactly as it was, and a daemon that never ran. Also the `config` command's output.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{Cosmovisor, FakeDaemon, Home, Output};

const CONFIG: i32 = 3;
const LAYOUT: i32 = 4;

const BOOL_VARS: [&str; 7] = [
    "DAEMON_ALLOW_DOWNLOAD_BINARIES",
    "DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM",
    "DAEMON_RESTART_AFTER_UPGRADE",
    "UNSAFE_SKIP_BACKUP",
    "COSMOVISOR_DISABLE_LOGS",
    "COSMOVISOR_COLOR_LOGS",
    "COSMOVISOR_DISABLE_RECASE",
];

/// Each duration variable with the hint its "must be greater than 0" error gives.
const DURATION_VARS: [(&str, &str); 3] = [
    (
        "DAEMON_POLL_INTERVAL",
        "unset it to use the default of 300ms",
    ),
    ("DAEMON_RESTART_DELAY", "unset it to disable the delay"),
    (
        "DAEMON_SHUTDOWN_GRACE",
        "unset it to use the default of 30s",
    ),
];

const NAME_MISSING: &str =
    "DAEMON_NAME is not set (set it to the daemon binary's file name, e.g. panacead)";
const HOME_MISSING: &str =
    "DAEMON_HOME is not set (set it to the node's home directory, e.g. /root/.panacea)";
const NO_SUCH_BACKUP_DIR: &str = "/nonexistent-cosmovisor-backup-dir";

/// A home whose genesis daemon would record `ran` if it were ever started.
fn ready_home() -> Home {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().event("ran").exit(0));
    home
}

/// Variables to set (`None` unsets one) on top of the home's environment, and the exact error
/// lines expected, in order.
struct Case {
    env: Vec<(String, Option<String>)>,
    errors: Vec<String>,
}

fn case(env: &[(&str, Option<&str>)], errors: &[&str]) -> Case {
    Case {
        env: env
            .iter()
            .map(|(var, value)| ((*var).to_owned(), value.map(str::to_owned)))
            .collect(),
        errors: errors.iter().map(|e| (*e).to_owned()).collect(),
    }
}

fn with_env(mut cmd: Cosmovisor, env: &[(String, Option<String>)]) -> Cosmovisor {
    for (var, value) in env {
        cmd = match value {
            Some(value) => cmd.env(var, value),
            None => cmd.env_remove(var),
        };
    }
    cmd
}

/// Runs `cmd` and checks a configuration error: exit 3, exactly `errors` as `Error:` lines and
/// nothing else on stderr or stdout, the home unchanged and the daemon never started.
fn assert_config_rejected(home: &Home, cmd: Cosmovisor, errors: &[String]) -> Output {
    let before = home.tree();
    let out = cmd.run();
    out.assert_code(CONFIG);
    assert_eq!(out.errors(), errors, "{out}");
    assert!(
        out.stderr().lines().all(|line| line.starts_with("Error: ")),
        "only the error lines belong on stderr\n{out}"
    );
    assert!(out.stdout.is_empty(), "nothing belongs on stdout\n{out}");
    assert_eq!(home.tree(), before, "the home changed\n{out}");
    assert!(home.events().is_empty(), "the daemon ran\n{out}");
    out
}

fn run_cases(cases: &[Case]) {
    for case in cases {
        let home = ready_home();
        let cmd = with_env(home.cosmovisor(["run", "start"]), &case.env);
        assert_config_rejected(&home, cmd, &case.errors);
    }
}

#[test]
fn required_variables_missing_or_invalid() {
    run_cases(&[
        case(&[("DAEMON_HOME", None)], &[HOME_MISSING]),
        case(&[("DAEMON_HOME", Some(""))], &[HOME_MISSING]),
        case(
            &[("DAEMON_HOME", Some("rel/home"))],
            &[r#"DAEMON_HOME must be an absolute path, got "rel/home""#],
        ),
        case(&[("DAEMON_NAME", None)], &[NAME_MISSING]),
        case(
            &[("DAEMON_NAME", Some("a/b"))],
            &[r#"DAEMON_NAME must be a plain file name (no '/' or NUL, not . or ..), got "a/b""#],
        ),
        case(
            &[("DAEMON_NAME", Some("../simd"))],
            &[
                r#"DAEMON_NAME must be a plain file name (no '/' or NUL, not . or ..), got "../simd""#,
            ],
        ),
        case(
            &[("DAEMON_NAME", None), ("DAEMON_HOME", None)],
            &[NAME_MISSING, HOME_MISSING],
        ),
    ]);
}

#[test]
fn booleans_must_be_true_or_false() {
    let cases: Vec<Case> = BOOL_VARS
        .iter()
        .map(|var| Case {
            env: vec![((*var).to_owned(), Some("yes".to_owned()))],
            errors: vec![format!(
                r#"{var}: invalid boolean "yes" (expected true or false)"#
            )],
        })
        .collect();
    run_cases(&cases);
}

#[test]
fn durations_need_a_known_unit_and_must_be_positive() {
    let mut cases = Vec::new();
    for (var, positive_hint) in DURATION_VARS {
        let env = |value: &str| vec![(var.to_owned(), Some(value.to_owned()))];
        cases.push(Case {
            env: env("3x"),
            errors: vec![format!(
                r#"{var}: invalid duration "3x" (expected a Go duration such as 300ms or 1m30s)"#
            )],
        });
        cases.push(Case {
            env: env("600"),
            errors: vec![format!(
                r#"{var}: invalid duration "600": missing unit (expected a Go duration such as 300ms or 1m30s)"#
            )],
        });
        cases.push(Case {
            env: env("0s"),
            errors: vec![format!(
                r#"{var}: must be greater than 0, got "0s" ({positive_hint})"#
            )],
        });
    }
    run_cases(&cases);
}

#[test]
fn integers_formats_and_backup_settings() {
    let not_a_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let not_a_dir_error = format!(
        "DAEMON_DATA_BACKUP_DIR must be an existing directory, got {:?}: not a directory \
         (create it or point it elsewhere)",
        not_a_dir.display().to_string()
    );
    let mut cases = vec![
        case(
            &[("DAEMON_PREUPGRADE_MAX_RETRIES", Some("-1"))],
            &[
                r#"DAEMON_PREUPGRADE_MAX_RETRIES: invalid integer "-1" (expected a whole number 0 or greater)"#,
            ],
        ),
        case(
            &[("DAEMON_PREUPGRADE_MAX_RETRIES", Some("x"))],
            &[
                r#"DAEMON_PREUPGRADE_MAX_RETRIES: invalid integer "x" (expected a whole number 0 or greater)"#,
            ],
        ),
        case(
            &[("COSMOVISOR_TIMEFORMAT_LOGS", Some("iso"))],
            &[
                r#"COSMOVISOR_TIMEFORMAT_LOGS: invalid time format "iso" (expected one of layout, ansic, unixdate, rubydate, rfc822, rfc822z, rfc850, rfc1123, rfc1123z, rfc3339, rfc3339nano, kitchen, or empty for none)"#,
            ],
        ),
        case(
            &[("COSMOVISOR_LOG_FORMAT", Some("xml"))],
            &[r#"COSMOVISOR_LOG_FORMAT: invalid log format "xml" (expected console or json)"#],
        ),
        case(
            &[("COSMOVISOR_BACKUP_MODE", Some("rsync"))],
            &[
                r#"COSMOVISOR_BACKUP_MODE: invalid backup mode "rsync" (expected auto, copy, checkpoint or reflink)"#,
            ],
        ),
        case(
            &[("COSMOVISOR_BACKUP_KEEP", Some("0"))],
            &[
                r#"COSMOVISOR_BACKUP_KEEP: must be greater than 0, got "0" (unset it to keep all backups)"#,
            ],
        ),
        case(
            &[("DAEMON_DATA_BACKUP_DIR", Some("backups"))],
            &[r#"DAEMON_DATA_BACKUP_DIR must be an absolute path, got "backups""#],
        ),
        case(
            &[("DAEMON_DATA_BACKUP_DIR", Some(NO_SUCH_BACKUP_DIR))],
            &[
                r#"DAEMON_DATA_BACKUP_DIR must be an existing directory, got "/nonexistent-cosmovisor-backup-dir": No such file or directory (create it or point it elsewhere)"#,
            ],
        ),
    ];
    cases.push(Case {
        env: vec![(
            "DAEMON_DATA_BACKUP_DIR".to_owned(),
            Some(not_a_dir.display().to_string()),
        )],
        errors: vec![not_a_dir_error],
    });
    run_cases(&cases);
}

#[test]
fn many_bad_values_are_reported_together_in_order() {
    // Set in an order unlike the report's: parse errors first (upstream's order), then the name,
    // the home and the backup dir.
    run_cases(&[case(
        &[
            ("DAEMON_DATA_BACKUP_DIR", Some("bak")),
            ("DAEMON_HOME", Some("rel")),
            ("DAEMON_NAME", Some("a/b")),
            ("COSMOVISOR_LOG_FORMAT", Some("xml")),
            ("COSMOVISOR_BACKUP_KEEP", Some("0")),
            ("DAEMON_PREUPGRADE_MAX_RETRIES", Some("x")),
            ("DAEMON_SHUTDOWN_GRACE", Some("0s")),
            ("DAEMON_POLL_INTERVAL", Some("3x")),
            ("COSMOVISOR_TIMEFORMAT_LOGS", Some("iso")),
            ("COSMOVISOR_COLOR_LOGS", Some("yes")),
            ("DAEMON_RESTART_AFTER_UPGRADE", Some("1")),
        ],
        &[
            r#"DAEMON_RESTART_AFTER_UPGRADE: invalid boolean "1" (expected true or false)"#,
            r#"COSMOVISOR_COLOR_LOGS: invalid boolean "yes" (expected true or false)"#,
            r#"COSMOVISOR_TIMEFORMAT_LOGS: invalid time format "iso" (expected one of layout, ansic, unixdate, rubydate, rfc822, rfc822z, rfc850, rfc1123, rfc1123z, rfc3339, rfc3339nano, kitchen, or empty for none)"#,
            r#"DAEMON_POLL_INTERVAL: invalid duration "3x" (expected a Go duration such as 300ms or 1m30s)"#,
            r#"DAEMON_SHUTDOWN_GRACE: must be greater than 0, got "0s" (unset it to use the default of 30s)"#,
            r#"DAEMON_PREUPGRADE_MAX_RETRIES: invalid integer "x" (expected a whole number 0 or greater)"#,
            r#"COSMOVISOR_BACKUP_KEEP: must be greater than 0, got "0" (unset it to keep all backups)"#,
            r#"COSMOVISOR_LOG_FORMAT: invalid log format "xml" (expected console or json)"#,
            r#"DAEMON_NAME must be a plain file name (no '/' or NUL, not . or ..), got "a/b""#,
            r#"DAEMON_HOME must be an absolute path, got "rel""#,
            r#"DAEMON_DATA_BACKUP_DIR must be an absolute path, got "bak""#,
        ],
    )]);
}

#[test]
fn skipping_backups_skips_the_backup_dir_checks() {
    for dir in [NO_SUCH_BACKUP_DIR, "relative/backups"] {
        let home = ready_home();
        let out = home
            .cosmovisor(["run", "start"])
            .env("UNSAFE_SKIP_BACKUP", "true")
            .env("DAEMON_DATA_BACKUP_DIR", dir)
            .run();
        out.assert_code(0);
        assert!(out.errors().is_empty(), "{out}");
        assert_eq!(home.events(), ["ran"], "{out}");
    }
}

#[test]
fn a_bad_configuration_is_reported_by_config_too() {
    let home = ready_home();
    let cmd = home
        .cosmovisor(["config"])
        .env("DAEMON_POLL_INTERVAL", "600")
        .env("DAEMON_DATA_BACKUP_DIR", NO_SUCH_BACKUP_DIR);
    // The backup dir is checked only once the values parse.
    assert_config_rejected(
        &home,
        cmd,
        &[
            r#"DAEMON_POLL_INTERVAL: invalid duration "600": missing unit (expected a Go duration such as 300ms or 1m30s)"#
                .to_owned(),
        ],
    );
}

// ---- config.toml -------------------------------------------------------------------------

/// A `cosmovisor` with no `DAEMON_*` variables at all, so the file provides everything.
fn file_mode<I, S>(args: I) -> Cosmovisor
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    Cosmovisor::new(args).env("PATH", std::env::var_os("PATH").unwrap_or_default())
}

/// The two ways to name a config file: `run --cosmovisor-config <file> start` and
/// `-c <file> config`.
fn with_file(file: &Path) -> [Cosmovisor; 2] {
    let file = file.as_os_str();
    [
        file_mode([
            OsString::from("run"),
            "--cosmovisor-config".into(),
            file.into(),
            "start".into(),
        ]),
        file_mode([OsString::from("-c"), file.into(), "config".into()]),
    ]
}

fn base_file(home: &Home) -> String {
    format!(
        "daemon_home = '{}'\ndaemon_name = 'simd'\ncosmovisor_color_logs = false\n",
        home.path().display()
    )
}

fn write_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("cosmovisor.toml");
    fs::write(&path, text).expect("write config file");
    path
}

#[test]
fn config_file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let home = ready_home();
    let base = base_file(&home);
    let rows: [(String, &str); 5] = [
        (
            format!("{base}daemon_poll_interval = [\n"),
            "invalid TOML: line 4, column 25: unclosed array, expected `]`",
        ),
        (
            format!("{base}daemon_poll_interval = true\n"),
            "key daemon_poll_interval must be a duration string like '300ms' or an integer of \
             nanoseconds",
        ),
        (
            format!("{base}unsafe_skip_backup = 'true'\n"),
            "key unsafe_skip_backup must be a boolean (true or false)",
        ),
        (
            format!("{base}daemon_shutdown_grace = '600'\n"),
            "key daemon_shutdown_grace: invalid value \"600\" (expected a Go duration such as \
             '300ms' or '1m30s', or an integer of nanoseconds)",
        ),
        (
            format!("{base}cosmovisor_backup_keep = 0\n"),
            "key cosmovisor_backup_keep: invalid value \"0\" (expected an integer 1 or greater, \
             or no key to keep all backups)",
        ),
    ];
    for (text, error) in rows {
        let file = write_file(dir.path(), &text);
        let expected = [format!("config file {}: {error}", file.display())];
        for cmd in with_file(&file) {
            assert_config_rejected(&home, cmd, &expected);
        }
    }
}

#[test]
fn config_file_missing_or_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let home = ready_home();
    let missing = dir.path().join("missing.toml");
    let expected = [format!(
        "config file {}: cannot read it: No such file or directory (check the \
         --cosmovisor-config path)",
        missing.display()
    )];
    for cmd in with_file(&missing) {
        assert_config_rejected(&home, cmd, &expected);
    }
    // Without the environment, the file must name the daemon.
    let text = format!("daemon_home = '{}'\n", home.path().display());
    let file = write_file(dir.path(), &text);
    for cmd in with_file(&file) {
        assert_config_rejected(&home, cmd, &[NAME_MISSING.to_owned()]);
    }
}

#[test]
fn bad_environment_values_override_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let home = ready_home();
    let file = write_file(
        dir.path(),
        &format!("{}daemon_poll_interval = '1s'\n", base_file(&home)),
    );
    let expected =
        [r#"DAEMON_POLL_INTERVAL: invalid duration "3x" (expected a Go duration such as 300ms or 1m30s)"#
            .to_owned()];
    for cmd in with_file(&file) {
        assert_config_rejected(&home, cmd.env("DAEMON_POLL_INTERVAL", "3x"), &expected);
    }
}

#[test]
fn config_file_durations_and_environment_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let home = ready_home();
    let h = home.path().display().to_string();
    let file = write_file(
        dir.path(),
        &format!(
            "{}daemon_poll_interval = 1500000000\ndaemon_shutdown_grace = '300ms'\n\
             daemon_restart_delay = 0\ncosmovisor_timeformat_logs = 'rfc3339'\n\
             cosmovisor_backup_keep = 4\nunknown_key = 1\n",
            base_file(&home)
        ),
    );
    let file_arg = file.as_os_str();
    let out = file_mode([OsString::from("-c"), file_arg.into(), "config".into()]).run();
    out.assert_code(0);
    let empty = "";
    let expected = format!(
        "Configurable Values:
  DAEMON_HOME: {h}
  DAEMON_NAME: simd
  DAEMON_ALLOW_DOWNLOAD_BINARIES: false
  DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM: false
  DAEMON_RESTART_AFTER_UPGRADE: true
  DAEMON_RESTART_DELAY: 0s
  DAEMON_SHUTDOWN_GRACE: 300ms
  DAEMON_POLL_INTERVAL: 1.5s
  UNSAFE_SKIP_BACKUP: false
  DAEMON_DATA_BACKUP_DIR: {h}
  DAEMON_PREUPGRADE_MAX_RETRIES: 0
  COSMOVISOR_DISABLE_LOGS: false
  COSMOVISOR_COLOR_LOGS: false
  COSMOVISOR_TIMEFORMAT_LOGS: 2006-01-02T15:04:05Z07:00
  COSMOVISOR_CUSTOM_PREUPGRADE: {empty}
  COSMOVISOR_DISABLE_RECASE: false
  DAEMON_GRPC_ADDRESS: localhost:9090
  COSMOVISOR_BACKUP_KEEP: 4
  COSMOVISOR_LOG_FORMAT: console
  COSMOVISOR_BACKUP_MODE: auto
  COSMOVISOR_METRICS_ADDR: {empty}
  COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT: 1m0s
  COSMOVISOR_NODE_RPC: {empty}
  COSMOVISOR_PLAN_CHECK_INTERVAL: 1m0s
  COSMOVISOR_WEBHOOK_URL: {empty}
Derived Values:
         Root Dir: {h}/cosmovisor
      Upgrade Dir: {h}/cosmovisor/upgrades
      Genesis Bin: {h}/cosmovisor/genesis/bin/simd
   Monitored File: {h}/data/upgrade-info.json
  Data Backup Dir: {h}
"
    );
    assert_eq!(out.stdout(), expected, "{out}");

    // The environment wins over the file; an empty variable does not (viper's rule).
    let out = file_mode([OsString::from("config"), "-c".into(), file_arg.into()])
        .env("DAEMON_POLL_INTERVAL", "5s")
        .env("DAEMON_NAME", "panacead")
        .env("COSMOVISOR_BACKUP_KEEP", "")
        .run();
    out.assert_code(0)
        .stdout_contains("\n  DAEMON_POLL_INTERVAL: 5s\n")
        .stdout_contains("\n  DAEMON_NAME: panacead\n")
        .stdout_contains(&format!(
            "\n      Genesis Bin: {h}/cosmovisor/genesis/bin/panacead\n"
        ))
        .stdout_contains("\n  DAEMON_SHUTDOWN_GRACE: 300ms\n")
        .stdout_contains("\n  COSMOVISOR_BACKUP_KEEP: 4\n");
}

#[test]
fn run_with_a_config_file_starts_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new("simd");
    // Without DAEMON_HOME in its environment, the daemon reports on stdout.
    home.genesis(&FakeDaemon::new().say("ran").exit(7));
    let file = write_file(dir.path(), &base_file(&home));
    let out = file_mode([
        OsString::from("run"),
        "start".into(),
        "--cosmovisor-config".into(),
        file.into_os_string(),
    ])
    .run();
    out.assert_code(7);
    assert_eq!(out.stdout(), "ran\n", "{out}");
}

/// What Go accepts in file mode works here too: a negative duration in the file (the default is
/// used, with a warning) and an overriding variable that is a Go `ParseBool` boolean (`1`, `t`),
/// which viper decodes weakly.
#[test]
fn a_config_file_go_accepts_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let home = ready_home();
    let text = format!("{}daemon_restart_delay = '-1s'\n", base_file(&home));
    let file = write_file(dir.path(), &text);
    let out = file_mode([OsString::from("-c"), file.clone().into(), "config".into()])
        .env("DAEMON_RESTART_AFTER_UPGRADE", "0")
        .env("UNSAFE_SKIP_BACKUP", "t")
        .run();
    out.assert_code(0);
    out.stdout_contains("DAEMON_RESTART_AFTER_UPGRADE: false")
        .stdout_contains("UNSAFE_SKIP_BACKUP: true")
        .stdout_contains("DAEMON_RESTART_DELAY: 0s");
}

// ---- the config command ------------------------------------------------------------------

#[test]
fn config_prints_the_detail_string() {
    let home = ready_home();
    let out = home.cosmovisor(["config"]).run();
    out.assert_code(0);
    let h = home.path().display().to_string();
    let empty = "";
    let expected = format!(
        "Configurable Values:
  DAEMON_HOME: {h}
  DAEMON_NAME: simd
  DAEMON_ALLOW_DOWNLOAD_BINARIES: false
  DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM: false
  DAEMON_RESTART_AFTER_UPGRADE: true
  DAEMON_RESTART_DELAY: 0s
  DAEMON_SHUTDOWN_GRACE: 5s
  DAEMON_POLL_INTERVAL: 50ms
  UNSAFE_SKIP_BACKUP: false
  DAEMON_DATA_BACKUP_DIR: {h}
  DAEMON_PREUPGRADE_MAX_RETRIES: 0
  COSMOVISOR_DISABLE_LOGS: false
  COSMOVISOR_COLOR_LOGS: false
  COSMOVISOR_TIMEFORMAT_LOGS: 3:04PM
  COSMOVISOR_CUSTOM_PREUPGRADE: {empty}
  COSMOVISOR_DISABLE_RECASE: false
  DAEMON_GRPC_ADDRESS: localhost:9090
  COSMOVISOR_BACKUP_KEEP: {empty}
  COSMOVISOR_LOG_FORMAT: console
  COSMOVISOR_BACKUP_MODE: auto
  COSMOVISOR_METRICS_ADDR: {empty}
  COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT: 1m0s
  COSMOVISOR_NODE_RPC: http://127.0.0.1:9
  COSMOVISOR_PLAN_CHECK_INTERVAL: 1m0s
  COSMOVISOR_WEBHOOK_URL: {empty}
Derived Values:
         Root Dir: {h}/cosmovisor
      Upgrade Dir: {h}/cosmovisor/upgrades
      Genesis Bin: {h}/cosmovisor/genesis/bin/simd
   Monitored File: {h}/data/upgrade-info.json
  Data Backup Dir: {h}
"
    );
    assert_eq!(out.stdout(), expected, "{out}");
    assert!(out.stderr.is_empty(), "{out}");
}

#[test]
fn config_prints_every_value_set() {
    let home = ready_home();
    let h = home.path().display().to_string();
    let backup = home.data();
    let out = home
        .cosmovisor(["config"])
        .env("DAEMON_ALLOW_DOWNLOAD_BINARIES", "TRUE")
        .env("DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM", "true")
        .env("DAEMON_RESTART_AFTER_UPGRADE", "False")
        .env("DAEMON_RESTART_DELAY", "90s")
        .env("DAEMON_SHUTDOWN_GRACE", "90m")
        .env("DAEMON_POLL_INTERVAL", "1500ms")
        .env("DAEMON_DATA_BACKUP_DIR", &backup)
        .env("DAEMON_PREUPGRADE_MAX_RETRIES", "3")
        .env("DAEMON_GRPC_ADDRESS", "https://grpc:9091")
        .env("COSMOVISOR_DISABLE_LOGS", "true")
        .env("COSMOVISOR_TIMEFORMAT_LOGS", "")
        .env("COSMOVISOR_CUSTOM_PREUPGRADE", "pre.sh")
        .env("COSMOVISOR_DISABLE_RECASE", "true")
        .env("COSMOVISOR_BACKUP_KEEP", "2")
        .env("COSMOVISOR_LOG_FORMAT", "JSON")
        .env("COSMOVISOR_BACKUP_MODE", "Checkpoint")
        .env("COSMOVISOR_NODE_RPC", "https://rpc.example:26657/")
        .run();
    out.assert_code(0);
    let empty = "";
    let expected = format!(
        "Configurable Values:
  DAEMON_HOME: {h}
  DAEMON_NAME: simd
  DAEMON_ALLOW_DOWNLOAD_BINARIES: true
  DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM: true
  DAEMON_RESTART_AFTER_UPGRADE: false
  DAEMON_RESTART_DELAY: 1m30s
  DAEMON_SHUTDOWN_GRACE: 1h30m0s
  DAEMON_POLL_INTERVAL: 1.5s
  UNSAFE_SKIP_BACKUP: false
  DAEMON_DATA_BACKUP_DIR: {h}/data
  DAEMON_PREUPGRADE_MAX_RETRIES: 3
  COSMOVISOR_DISABLE_LOGS: true
  COSMOVISOR_COLOR_LOGS: false
  COSMOVISOR_TIMEFORMAT_LOGS: {empty}
  COSMOVISOR_CUSTOM_PREUPGRADE: pre.sh
  COSMOVISOR_DISABLE_RECASE: true
  DAEMON_GRPC_ADDRESS: https://grpc:9091
  COSMOVISOR_BACKUP_KEEP: 2
  COSMOVISOR_LOG_FORMAT: json
  COSMOVISOR_BACKUP_MODE: checkpoint
  COSMOVISOR_METRICS_ADDR: {empty}
  COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT: 1m0s
  COSMOVISOR_NODE_RPC: https://rpc.example:26657
  COSMOVISOR_PLAN_CHECK_INTERVAL: 1m0s
  COSMOVISOR_WEBHOOK_URL: {empty}
Derived Values:
         Root Dir: {h}/cosmovisor
      Upgrade Dir: {h}/cosmovisor/upgrades
      Genesis Bin: {h}/cosmovisor/genesis/bin/simd
   Monitored File: {h}/data/upgrade-info.json
  Data Backup Dir: {h}/data
"
    );
    assert_eq!(out.stdout(), expected, "{out}");
}

// ---- layout errors -----------------------------------------------------------------------

/// Runs `run start` and checks a layout error: exit 4, exactly `error` as the one `Error:` line,
/// the home unchanged and the daemon never started.
fn assert_layout_error(home: &Home, error: &str) -> Output {
    let before = home.tree();
    let out = home.cosmovisor(["run", "start"]).run();
    out.assert_code(LAYOUT);
    assert_eq!(out.errors(), [error], "{out}");
    assert_eq!(home.tree(), before, "the home changed\n{out}");
    assert!(home.events().is_empty(), "the daemon ran\n{out}");
    out
}

fn show(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn missing_cosmovisor_dir() {
    let home = Home::blank("simd");
    fs::create_dir(home.data()).unwrap();
    let root = show(&home.root());
    assert_layout_error(
        &home,
        &format!(
            "cannot stat home dir {root}: No such file or directory (DAEMON_HOME={} has no \
             cosmovisor/ folder: check DAEMON_HOME, or set the home up with \
             `cosmovisor init <path to simd>`)",
            show(home.path())
        ),
    );
}

#[test]
fn cosmovisor_dir_is_a_file() {
    let home = Home::blank("simd");
    fs::create_dir(home.data()).unwrap();
    fs::write(home.root(), "").unwrap();
    assert_layout_error(
        &home,
        &format!(
            "{} is not a directory: move it away and run `cosmovisor init`",
            show(&home.root())
        ),
    );
}

#[test]
fn missing_data_dir() {
    let home = ready_home();
    fs::remove_dir(home.data()).unwrap();
    let (data, h) = (show(&home.data()), show(home.path()));
    assert_layout_error(
        &home,
        &format!(
            "{data} does not exist: create it (`mkdir -p {data}`) or initialise the node \
             (`simd init --home {h}`)"
        ),
    );
}

#[test]
fn data_dir_is_a_file() {
    let home = ready_home();
    fs::remove_dir(home.data()).unwrap();
    fs::write(home.data(), "").unwrap();
    assert_layout_error(
        &home,
        &format!(
            "{} is not a directory: the node's data folder must be a directory",
            show(&home.data())
        ),
    );
}

#[test]
fn current_is_a_plain_file() {
    let home = ready_home();
    let link = home.root().join("current");
    fs::write(&link, "genesis").unwrap();
    assert_layout_error(
        &home,
        &format!(
            "{} is not a symbolic link: move it away and run `cosmovisor init` to point it at \
             genesis",
            show(&link)
        ),
    );
}

#[test]
fn current_is_a_dangling_link() {
    let home = ready_home();
    home.set_current("upgrades/gone");
    let link = show(&home.root().join("current"));
    assert_layout_error(
        &home,
        &format!(
            "{link} points to upgrades/gone, which does not exist: point it at a version folder \
             (`ln -sfn genesis {link}`)"
        ),
    );
}

#[test]
fn current_binary_missing() {
    let home = Home::new("simd");
    fs::create_dir_all(home.genesis_dir().join("bin")).unwrap();
    home.set_current("genesis");
    let bin = home.genesis_dir().join("bin").join("simd");
    assert_layout_error(
        &home,
        &format!(
            "binary {} does not exist: {} is empty (put the simd binary there, chmod 755)",
            show(&bin),
            show(&home.genesis_dir().join("bin"))
        ),
    );
}

#[test]
fn current_binary_is_a_directory() {
    let home = Home::new("simd");
    let bin = home.genesis_dir().join("bin").join("simd");
    fs::create_dir_all(&bin).unwrap();
    home.set_current("genesis");
    assert_layout_error(
        &home,
        &format!("binary {} is not a regular file", show(&bin)),
    );
}

#[test]
fn current_binary_not_executable() {
    let home = ready_home();
    home.set_current("genesis");
    let bin = home.genesis_dir().join("bin").join("simd");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o644)).unwrap();
    let bin = show(&bin);
    assert_layout_error(
        &home,
        &format!("binary {bin} is not executable (fix: chmod 755 {bin})"),
    );
    let mode = fs::metadata(&bin).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "the binary's mode was changed");
}

#[test]
fn current_missing_and_no_genesis_changes_nothing() {
    let home = Home::new("simd");
    let before = home.tree();
    let out = home.cosmovisor(["run", "start"]).run();
    assert_ne!(out.code(), Some(0), "{out}");
    let errors = out.errors();
    assert_eq!(errors.len(), 1, "{out}");
    let link = show(&home.root().join("current"));
    let genesis = show(&home.genesis_dir());
    assert!(
        errors[0].ends_with(&format!(
            "{link} and {genesis} do not exist: run `cosmovisor init <path to simd>`"
        )),
        "{out}"
    );
    assert_eq!(home.tree(), before, "the home changed\n{out}");
}

#[test]
fn current_missing_and_no_genesis_is_a_layout_error() {
    let home = Home::new("simd");
    let link = show(&home.root().join("current"));
    let genesis = show(&home.genesis_dir());
    assert_layout_error(
        &home,
        &format!("{link} and {genesis} do not exist: run `cosmovisor init <path to simd>`"),
    );
}

#[test]
fn a_layout_error_leaves_no_lock_file() {
    let home = ready_home();
    home.set_current("upgrades/gone");
    let before = home.tree();
    let out = home.cosmovisor(["run", "start"]).run();
    out.assert_code(LAYOUT);
    assert_eq!(home.tree(), before, "the home changed\n{out}");
}
