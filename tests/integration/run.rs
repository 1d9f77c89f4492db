//! `cosmovisor run`: arguments, output, stdin, signals and exit status pass through.

use std::fs;
use std::os::unix::process::CommandExt;

use nix::sys::signal::Signal;

use crate::support::{FakeDaemon, Home, skip_or_fail_in_ci};

#[test]
fn passes_arguments_and_exit_code_through() {
    let home = Home::new("simd");
    home.genesis(
        &FakeDaemon::new()
            .raw(r#"for a in "$@"; do printf '<%s>\n' "$a"; done"#)
            .exit(7),
    );
    let out = home
        .cosmovisor(["run", "start", "--home", "/x y", "--help", ""])
        .run();
    out.assert_code(7);
    assert_eq!(
        out.stdout(),
        "<start>\n<--home>\n</x y>\n<--help>\n<>\n",
        "{out}"
    );
    assert_eq!(
        home.current_target(),
        std::path::PathBuf::from("genesis"),
        "current created relative"
    );
}

#[test]
fn unknown_first_word_runs_the_daemon() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().raw(r#"printf '%s,' "$@""#).exit(0));
    let out = home.cosmovisor(["start", "--x"]).run();
    out.assert_code(0)
        .stderr_contains("`run` is the explicit form");
    assert_eq!(out.stdout(), "start,--x,", "{out}");
}

#[test]
fn output_passes_through_byte_for_byte() {
    let home = Home::new("simd");
    let payload = home.path().join("payload");
    let mut bytes = vec![b'x'; 1 << 20];
    bytes.extend_from_slice(b"\n\xff\xfe not utf-8 \x00\x01\n");
    bytes.extend(std::iter::repeat_n(b"line\n".as_slice(), 10_000).flatten());
    bytes.extend_from_slice(b"no final newline");
    fs::write(&payload, &bytes).unwrap();
    home.genesis(
        &FakeDaemon::new()
            .raw(r#"cat "$DAEMON_HOME/payload"; cat "$DAEMON_HOME/payload" >&2"#)
            .exit(0),
    );
    let out = home
        .cosmovisor(["run", "x"])
        .env("COSMOVISOR_DISABLE_LOGS", "true")
        .run();
    out.assert_code(0);
    assert!(
        out.stdout == bytes,
        "stdout differs: {} vs {} bytes",
        out.stdout.len(),
        bytes.len()
    );
    assert!(
        out.stderr == bytes,
        "stderr differs: {} vs {} bytes",
        out.stderr.len(),
        bytes.len()
    );
}

#[test]
fn stdin_reaches_the_daemon() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().raw("cat").exit(0));
    let input = b"word1 word2\nmnemonic \xff\n";
    let out = home.cosmovisor(["run", "keys", "add"]).stdin(input).run();
    out.assert_code(0);
    assert_eq!(out.stdout, input, "{out}");
}

#[test]
fn every_signal_is_forwarded_every_time() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block());
    let running = home.cosmovisor(["run", "start"]).spawn();
    home.wait_for_event("ready v1");
    for (signal, name) in [
        (Signal::SIGHUP, "HUP"),
        (Signal::SIGUSR1, "USR1"),
        (Signal::SIGUSR2, "USR2"),
        (Signal::SIGQUIT, "QUIT"),
    ] {
        for n in 1..=2 {
            running.signal(signal);
            home.wait_for_events(name, n);
        }
    }
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0);
    assert_eq!(
        home.events().last().map(String::as_str),
        Some("TERM"),
        "{out}"
    );
}

#[test]
fn sigint_is_forwarded_and_the_daemon_status_returned() {
    let home = Home::new("simd");
    home.genesis(
        &FakeDaemon::new()
            .ready("v1")
            .raw("trap 'ev INT; exit 3' INT")
            .block(),
    );
    let running = home.cosmovisor(["run", "start"]).spawn();
    home.wait_for_event("ready v1");
    running.signal(Signal::SIGINT);
    running.wait().assert_code(3);
    assert!(home.events().contains(&"INT".to_owned()));
}

#[test]
fn death_by_signal_gives_128_plus_signal() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().raw("kill -USR1 $$").exit(0));
    home.cosmovisor(["run", "start"])
        .run()
        .assert_code(128 + 10);
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().raw("kill -KILL $$"));
    home.cosmovisor(["run", "start"]).run().assert_code(128 + 9);
}

#[test]
fn killing_cosmovisor_stops_the_daemon() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block());
    let running = home.cosmovisor(["run", "start"]).spawn();
    home.wait_for_event("ready v1");
    running.signal(Signal::SIGKILL);
    // The parent-death signal reaches the daemon although nobody forwarded anything.
    home.wait_for_event("TERM");
    running.wait().assert_signal(9);
}

#[test]
fn version_json_is_valid_whatever_the_log_settings() {
    let home = Home::new("simd");
    home.genesis(
        &FakeDaemon::new()
            .raw(r#"printf '{"name":"simd","version":"1.2.3"}\n'"#)
            .exit(0),
    );
    for (disable, color) in [("false", "true"), ("true", "false"), ("false", "false")] {
        let out = home
            .cosmovisor(["version", "--output", "json"])
            .env("COSMOVISOR_DISABLE_LOGS", disable)
            .env("COSMOVISOR_COLOR_LOGS", color)
            .run();
        out.assert_code(0);
        let value: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{out}"));
        assert!(
            value["cosmovisor_version"]
                .as_str()
                .is_some_and(|v| v.starts_with('v')),
            "{out}"
        );
        assert_eq!(value["app_version"]["version"], "1.2.3", "{out}");
    }
}

#[test]
fn version_text_prints_ours_then_the_daemons() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().raw(r#"printf 'app %s\n' "$*""#).exit(0));
    let out = home.cosmovisor(["version", "--long"]).run();
    out.assert_code(0);
    assert!(out.stdout().starts_with("cosmovisor version: v"), "{out}");
    out.stdout_contains("app version --long");
    let only = home.cosmovisor(["version", "--cosmovisor-only"]).run();
    assert_eq!(only.stdout().lines().count(), 1, "{only}");
}

#[test]
fn version_json_without_configuration_still_answers() {
    let out = crate::support::Cosmovisor::new(["version", "--output", "json"]).run();
    out.assert_code(0);
    let value: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert!(value["app_version"].is_null(), "{out}");
    assert!(
        value["error"]
            .as_str()
            .is_some_and(|e| e.contains("DAEMON_HOME")),
        "{out}"
    );
}

#[test]
fn a_second_run_beside_the_supervisor_passes_through() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().raw(r#"if [ "$1" = start ]; then ev() { printf '%s\n' "$1" >> "$DAEMON_HOME/events"; }; trap 'exit 0' TERM; ev ready; while :; do sleep 30 >/dev/null 2>&1 & wait $!; done; fi"#).say("queried").exit(0));
    let node = home.cosmovisor(["run", "start"]).spawn();
    home.wait_for_event("ready");
    // A plan that the query must not act on: only the supervisor applies upgrades.
    let query = home.cosmovisor(["run", "status"]).run();
    query
        .assert_code(0)
        .stdout_contains("queried")
        .stderr_contains("another cosmovisor supervises this home");
    drop(node);
}

/// As PID 1 of a PID namespace cosmovisor reaps orphans it never started. Needs root for
/// `unshare --pid` (see `skip_or_fail_in_ci`).
#[test]
fn as_pid_1_reaps_adopted_zombies() {
    let probe = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output();
    if !probe.is_ok_and(|out| out.status.success()) {
        skip_or_fail_in_ci(
            "`unshare --pid --fork --mount-proc` is not available here (needs root and util-linux)",
        );
        return;
    }
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().raw(
        r#"ev() { printf '%s\n' "$1" >> "$DAEMON_HOME/events"; }
ev "pid1 $(cat /proc/1/comm)"
( sh -c 'sleep 0.2; printf "orphan done\n" >> "$DAEMON_HOME/events"' & )
while ! grep -q 'orphan done' "$DAEMON_HOME/events"; do sleep 0.05; done
while :; do
  zombies=0
  for stat in /proc/[0-9]*/stat; do
    case "$(cut -d' ' -f3 "$stat" 2>/dev/null)" in Z) zombies=$((zombies+1));; esac
  done
  [ "$zombies" -eq 0 ] && break
  sleep 0.05
done
ev 'no zombies'
exit 0"#,
    ));
    let mut args = vec![
        "--pid".to_owned(),
        "--fork".into(),
        "--mount-proc".into(),
        crate::support::COSMOVISOR.into(),
    ];
    args.extend(["run".into(), "start".into()]);
    let mut child = std::process::Command::new("unshare")
        .args(&args)
        .env_clear()
        .envs(home.env())
        .stdin(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .expect("run unshare");
    let pgid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > crate::support::DEADLINE {
            let _ = nix::sys::signal::killpg(pgid, Signal::SIGKILL);
            let _ = child.wait();
            panic!("zombies were never reaped; events: {:?}", home.events());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0), "events: {:?}", home.events());
    assert!(
        home.events().contains(&"pid1 cosmovisor".to_owned()),
        "{:?}",
        home.events()
    );
    assert!(
        home.events().contains(&"no zombies".to_owned()),
        "{:?}",
        home.events()
    );
}

#[test]
fn log_settings_shape_our_lines() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().say_err("daemon says hi").exit(0));
    let run = |vars: &[(&str, &str)]| {
        let mut cmd = home.cosmovisor(["run", "start"]);
        for (key, value) in vars {
            cmd = cmd.env(key, *value);
        }
        let out = cmd.run();
        out.assert_code(0).stderr_contains("daemon says hi");
        out.stderr()
    };
    let plain = run(&[("COSMOVISOR_TIMEFORMAT_LOGS", "rfc3339")]);
    let line = plain.lines().find(|l| l.contains("running app")).unwrap();
    assert!(
        line.len() > 25 && line[..4].chars().all(|c| c.is_ascii_digit()) && &line[4..5] == "-",
        "{line}"
    );
    assert!(line.contains(" INF running app "), "{line}");
    assert!(
        line.contains("module=cosmovisor") && line.contains("path="),
        "{line}"
    );
    assert!(
        !plain.contains('\x1b'),
        "no colour when COSMOVISOR_COLOR_LOGS=false"
    );
    let coloured = run(&[("COSMOVISOR_COLOR_LOGS", "true")]);
    assert!(
        coloured.contains("\x1b["),
        "COSMOVISOR_COLOR_LOGS=true colours our lines"
    );
    let none = run(&[("COSMOVISOR_DISABLE_LOGS", "true")]);
    assert_eq!(none, "daemon says hi\n", "only the daemon's own output");
    let untimed = run(&[("COSMOVISOR_TIMEFORMAT_LOGS", "")]);
    assert!(
        untimed.lines().any(|l| l.starts_with("INF running app ")),
        "{untimed}"
    );
}
