//! Parity with Go and operator correctness: the newest backup is the one taken last (not the one with the newest
//! copied mtime), a mistyped home is refused, upstream's message texts, and the pre-upgrade
//! hooks' output captured into our log lines.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::support::{FakeDaemon, Home, upgraded_daemon, v1_requesting};

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// 2001-01-01T00:00:00Z.
fn year_2001() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(978_307_200)
}

/// Two real upgrades (genesis → v2 at 49, then v2 → v3 at 50, one `run` each), with `state.db`
/// = "before-v2" in the first backup and "before-v3" in the second; `data/`'s mtime is set to 2001
/// just before the second, so the second backup folder carries the older copied mtime.
/// `keep` is `COSMOVISOR_BACKUP_KEEP` for the second run.
fn two_upgrades(keep: Option<&str>) -> Home {
    let home = Home::new("simd");
    fs::write(home.data().join("state.db"), "before-v2").unwrap();
    home.genesis(&v1_requesting("v2", 49))
        .upgrade("v2", &upgraded_daemon("v2", &[0]))
        .upgrade("v3", &upgraded_daemon("v3", &[0]));
    home.cosmovisor(["run", "start"])
        .stop_after(&home, "ready v2")
        .assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));

    fs::write(home.data().join("state.db"), "before-v3").unwrap();
    home.write_plan("v3", 50);
    fs::File::open(home.data())
        .unwrap()
        .set_modified(year_2001())
        .unwrap();
    let mut second = home.cosmovisor(["run", "start"]);
    if let Some(keep) = keep {
        second = second.env("COSMOVISOR_BACKUP_KEEP", keep);
    }
    second.stop_after(&home, "ready v3").assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v3"));
    fs::write(home.data().join("state.db"), "after-v3").unwrap();
    home
}

#[test]
fn newest_backup_is_the_one_taken_last_for_status_and_rollback() {
    let home = two_upgrades(None);
    assert_eq!(home.backups().len(), 2, "{}", home.tree());

    let out = home.cosmovisor(["status", "--output", "json"]).run();
    out.assert_code(0);
    let status: serde_json::Value = serde_json::from_str(&out.stdout()).unwrap();
    let last = PathBuf::from(status["last_backup"]["path"].as_str().unwrap());
    assert_eq!(read(&last.join("state.db")), "before-v3", "{out}");
    assert!(
        status["last_backup"]["age_seconds"].as_u64().unwrap() < 3600,
        "the age is the time since the backup was taken, not data/'s copied mtime: {out}"
    );

    let out = home
        .cosmovisor(["rollback", "--to", "v2", "--restore-data", "--yes"])
        .run();
    out.assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
    assert_eq!(read(&home.data().join("state.db")), "before-v3", "{out}");
}

#[test]
fn retention_keeps_the_backup_taken_last() {
    let home = two_upgrades(Some("1"));
    let backups = home.backups();
    assert_eq!(backups.len(), 1, "{}", home.tree());
    assert_eq!(
        read(&home.path().join(&backups[0]).join("state.db")),
        "before-v3",
        "{}",
        home.tree()
    );
}

/// A v2 daemon whose `pre-upgrade` runs `body` (shell), then runs until stopped.
fn v2_with_pre_upgrade(body: &str) -> FakeDaemon {
    FakeDaemon::new()
        .raw(&format!(
            r#"if [ "${{1:-}}" = pre-upgrade ]; then {body}; fi"#
        ))
        .ready("v2")
        .block()
}

/// Lines of our stderr that are exactly `text`: the hook's own output passed through raw.
fn raw_lines(out: &crate::support::Output, text: &str) -> usize {
    out.stderr().lines().filter(|line| *line == text).count()
}

/// Our first log line containing `text`.
fn log_line(out: &crate::support::Output, text: &str) -> String {
    let stderr = out.stderr();
    let line = stderr.lines().find(|line| line.contains(text));
    assert!(line.is_some(), "no line with {text:?}: {out}");
    line.unwrap().to_owned()
}

#[test]
fn failed_pre_upgrade_shows_its_stdout_and_stderr_in_the_error() {
    let home = Home::new("simd");
    home.genesis(&v1_requesting("v2", 3)).upgrade(
        "v2",
        &v2_with_pre_upgrade("echo pu-out; echo pu-err >&2; exit 30"),
    );
    let out = home.cosmovisor(["run", "start"]).run();
    out.assert_code(5);
    assert_eq!(
        out.errors(),
        vec![
            r#"upgrade "v2": pre-upgrade command failed : exit status 30 (stdout: "pu-out", stderr: "pu-err")"#
        ],
        "{out}"
    );
    assert_eq!(raw_lines(&out, "pu-err"), 0, "{out}");
}

#[test]
fn successful_pre_upgrade_logs_its_stdout_and_keeps_stderr_off_ours() {
    let home = Home::new("simd");
    home.genesis(&v1_requesting("v2", 3)).upgrade(
        "v2",
        &v2_with_pre_upgrade("echo pu-ok; echo pu-warn >&2; exit 0"),
    );
    let out = home
        .cosmovisor(["run", "start"])
        .stop_after(&home, "ready v2");
    out.assert_code(0);
    let result = log_line(&out, "pre-upgrade result");
    assert!(result.contains("result=pu-ok"), "{result}");
    assert!(result.contains("stderr=pu-warn"), "{result}");
    assert_eq!(raw_lines(&out, "pu-warn"), 0, "{out}");
}

#[test]
fn pre_upgrade_output_is_capped_to_its_end() {
    let home = Home::new("simd");
    home.genesis(&v1_requesting("v2", 3)).upgrade(
        "v2",
        &v2_with_pre_upgrade(
            "head -c 300000 /dev/zero | tr '\\0' y >&2; echo END-MARK >&2; exit 30",
        ),
    );
    let out = home.cosmovisor(["run", "start"]).run();
    out.assert_code(5);
    let errors = out.errors();
    assert_eq!(errors.len(), 1, "{}", &out.stderr()[..2000]);
    assert!(
        errors[0].ends_with(r#"END-MARK")"#),
        "{}",
        &errors[0][..200]
    );
    assert!(
        errors[0].contains("stderr (last 65536 bytes): \"yyy"),
        "{}",
        &errors[0][..200]
    );
    assert!(errors[0].len() < 70_000, "{} bytes", errors[0].len());
    assert!(out.stderr().len() < 80_000, "{} bytes", out.stderr().len());
    assert_eq!(raw_lines(&out, "END-MARK"), 0);
}

#[test]
fn custom_pre_upgrade_output_is_captured() {
    let home = Home::new("simd");
    home.genesis(&v1_requesting("v2", 12))
        .upgrade("v2", &upgraded_daemon("v2", &[0]));
    let script = home.root().join("hook.sh");
    fs::write(
        &script,
        "#!/bin/sh\necho hook-out\necho hook-err >&2\nexit 4\n",
    )
    .unwrap();
    let out = home
        .cosmovisor(["run", "start"])
        .env("COSMOVISOR_CUSTOM_PREUPGRADE", "hook.sh")
        .run();
    out.assert_code(5);
    assert_eq!(
        out.errors(),
        vec![format!(
            r#"upgrade "v2": COSMOVISOR_CUSTOM_PREUPGRADE {}: exited with exit status 4 (stdout: "hook-out", stderr: "hook-err")"#,
            script.display()
        )],
        "{out}"
    );
    assert_eq!(raw_lines(&out, "hook-err"), 0, "{out}");

    // On success its stdout is the result, its stderr a field of the same line.
    fs::write(&script, "#!/bin/sh\necho hook-ok\necho hook-note >&2\n").unwrap();
    let out = home
        .cosmovisor(["run", "start"])
        .env("COSMOVISOR_CUSTOM_PREUPGRADE", "hook.sh")
        .stop_after(&home, "ready v2");
    out.assert_code(0);
    let result = log_line(&out, "COSMOVISOR_CUSTOM_PREUPGRADE result");
    assert!(result.contains("result=hook-ok"), "{result}");
    assert!(result.contains("stderr=hook-note"), "{result}");
    assert_eq!(raw_lines(&out, "hook-note"), 0, "{out}");
}

/// The error of every command but `init` when `DAEMON_HOME` has no `cosmovisor/` folder.
fn no_root_error(home: &Home) -> String {
    format!(
        "cannot stat home dir {}: No such file or directory (DAEMON_HOME={} has no cosmovisor/ \
         folder: check DAEMON_HOME, or set the home up with `cosmovisor init <path to simd>`)",
        home.root().display(),
        home.path().display()
    )
}

#[test]
fn a_home_without_cosmovisor_is_refused_by_every_command_but_init() {
    let home = Home::blank("simd");
    fs::create_dir(home.data()).unwrap();
    let bin = home.path().join("new-simd");
    fs::write(&bin, FakeDaemon::new().exit(0).script()).unwrap();
    let bin = bin.display().to_string();
    let list = format!("v2:{bin}:30");
    let commands: Vec<Vec<&str>> = vec![
        vec!["config"],
        vec!["status"],
        vec!["status", "--output", "json"],
        vec!["show-upgrade-info"],
        vec!["add-upgrade", "v2", &bin],
        vec!["add-upgrade", "v2", &bin, "--upgrade-height", "30"],
        vec!["add-batch-upgrade", "--upgrade-list", &list],
        vec!["prepare-upgrade"],
        vec!["rollback", "--yes"],
        vec!["run", "start"],
        vec!["start"],
    ];
    for args in commands {
        let out = home.cosmovisor(args.clone()).run();
        out.assert_code(4);
        assert_eq!(out.errors(), [no_root_error(&home)], "{args:?}: {out}");
        assert!(!home.root().exists(), "{args:?} created {}", home.tree());
    }

    // `version` still answers (exit 0, for tooling), naming the missing folder.
    let out = home.cosmovisor(["version"]).run();
    out.assert_code(0).stdout_contains("cosmovisor version: ");
    out.stderr_contains(&no_root_error(&home));
    assert!(!home.root().exists(), "version created {}", home.tree());

    // `init` is how the folder comes to be.
    home.cosmovisor(["init", bin.as_str()]).run().assert_code(0);
    assert!(home.root().join("genesis/bin/simd").is_file());
    home.cosmovisor(["config"]).run().assert_code(0);
}

#[test]
fn an_empty_backup_dir_in_config_toml_is_an_error() {
    let home = Home::new("simd");
    let file = home.root().join("config.toml");
    fs::write(
        &file,
        format!(
            "daemon_home = '{}'\ndaemon_name = 'simd'\ndaemon_data_backup_dir = ''\n",
            home.path().display()
        ),
    )
    .unwrap();
    let file = file.display().to_string();
    let out = home
        .cosmovisor(["config", "--cosmovisor-config", file.as_str()])
        .run();
    out.assert_code(3);
    assert_eq!(
        out.errors(),
        [format!(
            "DAEMON_DATA_BACKUP_DIR must not be empty (config file {file}: set \
             daemon_data_backup_dir to an absolute folder, or remove the key to back up into \
             DAEMON_HOME)"
        )],
        "{out}"
    );
    // With backups off the folder is not needed, as in Go.
    home.cosmovisor(["config", "--cosmovisor-config", file.as_str()])
        .env("UNSAFE_SKIP_BACKUP", "true")
        .run()
        .assert_code(0);
}

/// A fake daemon binary outside the home, for `init`.
fn source_binary(home: &Home) -> PathBuf {
    let bin = home.path().join("src-simd");
    fs::write(&bin, FakeDaemon::new().exit(0).script()).unwrap();
    bin
}

#[test]
fn init_logs_upstreams_lines() {
    let home = Home::blank("simd");
    let src = source_binary(&home);
    let out = home.cosmovisor(["init".as_ref(), src.as_os_str()]).run();
    out.assert_code(0);
    let (bin_dir, bin) = (
        home.genesis_dir().join("bin"),
        home.genesis_dir().join("bin/simd"),
    );
    for line in [
        "checking on the genesis/bin directory".to_owned(),
        format!(
            "creating directory (and any parents): \"{}\"",
            bin_dir.display()
        ),
        "checking on the genesis/bin executable".to_owned(),
        format!("copying executable into place: \"{}\"", bin.display()),
        format!("making sure \"{}\" is executable", bin.display()),
        "checking on the current symlink and creating it if needed".to_owned(),
        format!("the current symlink points to: \"{}\"", bin.display()),
        format!(
            "cosmovisor config.toml created at: {}",
            home.root().join("config.toml").display()
        ),
    ] {
        out.stderr_contains(&format!(" INF {line}"));
    }

    let out = home.cosmovisor(["init".as_ref(), src.as_os_str()]).run();
    out.assert_code(0)
        .stderr_contains(&format!(
            " INF the \"{}\" directory already exists",
            bin_dir.display()
        ))
        .stderr_contains(&format!(
            " INF the \"{}\" file already exists",
            bin.display()
        ));
}

/// Lines of `out`'s log that are `init` steps, without their time prefix and level.
fn info_lines(out: &crate::support::Output) -> Vec<String> {
    out.stderr()
        .lines()
        .filter_map(|l| l.split_once(" INF ").map(|(_, rest)| rest.to_owned()))
        .collect()
}

/// Go's `init` fails at the step that finds the problem, after that step's log line: the
/// genesis binary that is a directory, and `current` that is not a link.
#[test]
fn init_fails_at_upstreams_steps_with_upstreams_text() {
    let home = Home::blank("simd");
    let src = source_binary(&home);
    let bin = home.genesis_dir().join("bin/simd");
    fs::create_dir_all(&bin).unwrap();
    let out = home.cosmovisor(["init".as_ref(), src.as_os_str()]).run();
    out.assert_code(4);
    let logged = info_lines(&out);
    let expected = [
        "checking on the genesis/bin directory".to_owned(),
        format!(
            "the \"{}\" directory already exists",
            home.genesis_dir().join("bin").display()
        ),
        "checking on the genesis/bin executable".to_owned(),
        format!("the \"{}\" file already exists", bin.display()),
        format!("making sure \"{}\" is executable", bin.display()),
    ];
    assert_eq!(logged.len(), expected.len(), "{out}");
    for (line, want) in logged.iter().zip(&expected) {
        assert!(
            line.starts_with(want.as_str()),
            "{line:?} is not {want:?}\n{out}"
        );
    }
    assert!(
        out.errors()[0].contains("simd is not a regular file"),
        "{out}"
    );

    fs::remove_dir(&bin).unwrap();
    let current = home.root().join("current");
    fs::write(&current, "").unwrap();
    let out = home.cosmovisor(["init".as_ref(), src.as_os_str()]).run();
    out.assert_code(4);
    let logged = info_lines(&out);
    assert!(
        logged.last().is_some_and(
            |l| l.starts_with("checking on the current symlink and creating it if needed")
        ),
        "{out}"
    );
    assert!(
        out.errors()[0].starts_with("symlink genesis current: file exists"),
        "{out}"
    );

    let dir = home.path().join("a-folder");
    fs::create_dir(&dir).unwrap();
    let out = home.cosmovisor(["init".as_ref(), dir.as_os_str()]).run();
    out.assert_code(2);
    assert!(
        out.errors()[0].starts_with("invalid path to executable: must not be a directory"),
        "{out}"
    );
}

#[test]
fn init_validation_errors_use_upstreams_text() {
    let home = Home::blank("simd");
    let out = home.cosmovisor(["init", ""]).run();
    out.assert_code(2);
    assert_eq!(out.errors(), ["no <path to executable> provided"], "{out}");

    let src = source_binary(&home);
    let bin_dir = home.genesis_dir().join("bin");
    fs::create_dir_all(home.genesis_dir()).unwrap();
    fs::write(&bin_dir, "").unwrap();
    let out = home.cosmovisor(["init".as_ref(), src.as_os_str()]).run();
    out.assert_code(4);
    assert_eq!(
        out.errors(),
        [format!(
            "the path \"{}\" already exists but is not a directory: move it away and run \
             `cosmovisor init` again",
            bin_dir.display()
        )],
        "{out}"
    );

    fs::remove_file(&bin_dir).unwrap();
    let bin = bin_dir.join("simd");
    fs::create_dir_all(&bin).unwrap();
    let out = home.cosmovisor(["init".as_ref(), src.as_os_str()]).run();
    out.assert_code(4);
    assert_eq!(
        out.errors(),
        [format!(
            "{} is not a regular file: move it away and run `cosmovisor init` again",
            bin.display()
        )],
        "{out}"
    );
}

#[test]
fn invalid_plans_use_upstreams_messages() {
    let home = Home::new("simd");
    let file = home.data().join("upgrade-info.json");
    for (content, message) in [
        (
            "{}",
            "invalid upgrade-info.json content: name cannot be empty: invalid request",
        ),
        (
            r#"{"height": 1}"#,
            "invalid upgrade-info.json content: name cannot be empty: invalid request",
        ),
        (
            r#"{"name": "upgrade2"}"#,
            "invalid upgrade-info.json content: height must be greater than 0: invalid request \
             (plan \"upgrade2\" has height 0)",
        ),
        (
            r#"{"name": "upgrade1", "heigh": "123"}"#,
            "invalid upgrade-info.json content: height must be greater than 0: invalid request \
             (plan \"upgrade1\" has height 0)",
        ),
    ] {
        fs::write(&file, content).unwrap();
        let out = home
            .cosmovisor(["show-upgrade-info", "--output", "json"])
            .run();
        assert_eq!(
            out.errors(),
            [format!(
                "{} is not a valid upgrade plan: {message}",
                file.display()
            )],
            "{content}: {out}"
        );
    }
}
