//! Files we read may be anything (docs/design.md "Trust boundaries"), the journal is checked before
//! it is trusted, and a power cut loses nothing we rely on: a FIFO, a link to `/dev/zero` or a
//! directory at `data/upgrade-info.json`, a journal naming a folder outside the home, a plan name
//! that cannot be a folder, an `upgrade-info.json` emptied by a power cut, leftovers of a crash,
//! and the order of fsyncs and renames (under `strace`).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use crate::support::{DEADLINE, FakeDaemon, Home, upgraded_daemon, wait_until};

/// A genesis daemon that gets ready, runs `then` (shell) and keeps running.
fn v1_then(then: &str) -> FakeDaemon {
    FakeDaemon::new()
        .ready("v1")
        .raw(then)
        .event("done")
        .block()
}

/// Lines of cosmovisor's log that mention `text` (case-insensitive).
fn log_lines(stderr: &str, text: &str) -> Vec<String> {
    let text = text.to_lowercase();
    stderr
        .lines()
        .filter(|line| line.to_lowercase().contains(&text))
        .map(str::to_owned)
        .collect()
}

fn warnings(stderr: &str, text: &str) -> usize {
    log_lines(stderr, text)
        .iter()
        .filter(|line| line.contains(" WRN "))
        .count()
}

/// Today a FIFO at `data/upgrade-info.json` freezes cosmovisor in `open`: signals are no longer
/// forwarded and SIGTERM is ignored. It must be refused with a warning, and SIGTERM must still
/// reach the daemon.
#[test]
fn fifo_at_upgrade_info_json_keeps_signals_forwarded() {
    let home = Home::new("simd");
    home.genesis(&v1_then(
        r#"mkfifo "$DAEMON_HOME/data/f" && mv "$DAEMON_HOME/data/f" "$DAEMON_HOME/data/upgrade-info.json""#,
    ));
    let running = home.cosmovisor(["run", "start"]).spawn();
    home.wait_for_event("done");
    running.wait_for_log("is a FIFO");
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0);
    assert_eq!(home.events(), ["ready v1", "done", "TERM"], "{out}");
    assert_eq!(warnings(&out.stderr(), "is a FIFO"), 1, "{out}");
}

/// The same FIFO already there at start-up does not keep the daemon from starting.
#[test]
fn fifo_at_upgrade_info_json_at_start_up_does_not_block_the_launch() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block());
    nix::unistd::mkfifo(
        &home.data().join("upgrade-info.json"),
        nix::sys::stat::Mode::S_IRWXU,
    )
    .unwrap();
    let out = home
        .cosmovisor(["run", "start"])
        .stop_after(&home, "ready v1");
    out.assert_code(0);
    assert_eq!(home.events(), ["ready v1", "TERM"], "{out}");
    out.stderr_contains("is a FIFO");
}

/// Peak resident memory of a process, from `/proc/<pid>/status`.
fn peak_memory_kib(pid: nix::unistd::Pid) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap_or_else(|| panic!("no VmHWM in {status}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Today a link to `/dev/zero` makes cosmovisor read until it holds 2 GB. It must be refused
/// without reading, with one warning.
#[test]
fn dev_zero_link_at_upgrade_info_json_is_refused_without_reading() {
    let home = Home::new("simd");
    home.genesis(&v1_then(
        r#"ln -s /dev/zero "$DAEMON_HOME/data/z" && mv "$DAEMON_HOME/data/z" "$DAEMON_HOME/data/upgrade-info.json""#,
    ));
    let running = home.cosmovisor(["run", "start"]).spawn();
    home.wait_for_event("done");
    running.wait_for_log("is a character device");
    let peak = peak_memory_kib(running.pid);
    eprintln!("cosmovisor peak memory after the /dev/zero link: {peak} KiB");
    assert!(
        peak < 64 * 1024,
        "cosmovisor's peak memory is {peak} KiB after a /dev/zero link"
    );
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0);
    assert_eq!(warnings(&out.stderr(), "is a character device"), 1, "{out}");
}

/// A directory at `data/upgrade-info.json` is one warning, not one per look; a different problem
/// after it is warned about again. Each rename of a
/// fresh directory over it makes the watcher look again (inotify); with debug logs on, every
/// look that finds the same problem leaves a debug line, so the test waits for three looks.
#[test]
fn directory_at_upgrade_info_json_warns_once() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block());
    let running = home
        .cosmovisor(["run", "start"])
        .env("COSMOVISOR_LOG_LEVEL", "debug")
        .spawn();
    home.wait_for_event("ready v1");
    let info = home.data().join("upgrade-info.json");
    for look in 1..=3 {
        let fresh = home.data().join(format!("d{look}"));
        fs::create_dir(&fresh).unwrap();
        // rename(2) replaces an empty directory.
        fs::rename(&fresh, &info).unwrap();
        wait_until(&format!("look {look} at the directory"), DEADLINE, || {
            log_lines(&running.stderr_so_far(), "is a directory").len() >= look
        });
    }
    // Another kind of problem is warned about again: a (sparse) file far over the size cap.
    let big = home.data().join("big");
    fs::File::create(&big).unwrap().set_len(100 << 20).unwrap();
    fs::remove_dir(&info).unwrap();
    fs::rename(&big, &info).unwrap();
    running.wait_for_log("is larger than");
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0);
    assert_eq!(warnings(&out.stderr(), "is a directory"), 1, "{out}");
    assert_eq!(warnings(&out.stderr(), "is larger than"), 1, "{out}");
}

/// A journal is data on disk like any other: one whose backup paths lie outside the backup folder
/// (here a victim folder elsewhere) is refused before anything is removed.
#[test]
fn journal_naming_a_folder_outside_the_home_is_refused() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block())
        .upgrade("v2", &upgraded_daemon("v2", &[0]));
    let victim_parent = tempfile::tempdir().unwrap();
    let victim = victim_parent.path().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("precious"), "keep me").unwrap();
    let journal = home.root().join("upgrade-journal.json");
    let record = serde_json::json!({
        "format": 1,
        "plan": {"name": "v2", "raw_name": "v2", "height": 10, "info": ""},
        "phase": "backing_up",
        "backup": {
            "partial": victim,
            "target": victim_parent.path().join("gone"),
        },
        "started_at": "2026-11-26T07:00:00Z",
    });
    fs::write(&journal, record.to_string()).unwrap();
    let out = home.cosmovisor(["run", "start"]).run();
    out.assert_code(5);
    assert_eq!(
        out.errors(),
        [format!(
            "upgrade journal {} names backup folder {} outside the backup folder {}: set DAEMON_DATA_BACKUP_DIR back to the folder the backup was started in, or inspect the journal and remove it to abandon the upgrade",
            journal.display(),
            victim.display(),
            home.path().display()
        )],
        "{out}"
    );
    assert_eq!(
        fs::read_to_string(victim.join("precious")).unwrap(),
        "keep me"
    );
    assert!(home.events().is_empty(), "the daemon ran\n{out}");
    assert!(journal.is_file(), "{out}");
}

/// A plan name that cannot be a folder (over 255 bytes) can never be applied: the node is stopped
/// gracefully, cosmovisor exits 5 naming the plan, no journal is left, and a later start fails the
/// same way at once without starting the node (which would only halt at the plan again).
#[test]
fn plan_name_too_long_for_a_folder_stops_the_node_without_a_journal() {
    let home = Home::new("simd");
    let name = "a".repeat(300);
    home.genesis(
        &FakeDaemon::new()
            .ready("v1")
            .request_upgrade(&name, 10)
            .block(),
    );
    let out = home.cosmovisor(["run", "start"]).run();
    out.assert_code(5);
    let errors = out.errors();
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].contains("holds an upgrade plan that can never be applied: upgrade name \"aaaa"),
        "{out}"
    );
    assert!(errors[0].contains("longer than 255 bytes"), "{out}");
    assert_eq!(home.events(), ["ready v1", "TERM"]);
    assert!(!home.root().join("upgrade-journal.json").exists(), "{out}");
    let again = home.cosmovisor(["run", "start"]).run();
    again.assert_code(5);
    assert_eq!(again.errors(), errors);
    assert_eq!(home.events(), ["ready v1", "TERM"]);
    assert!(!home.root().join("upgrade-journal.json").exists());
}

/// A power cut after the journal recorded its plan may leave x/upgrade's plain write of
/// `upgrade-info.json` empty or gone; SDK apps read it at start-up, so the resume writes it again
/// from the journal before the new binary starts.
#[test]
fn resume_rewrites_a_lost_upgrade_info_json_before_launching() {
    let cases: [(&str, Option<&str>); 3] = [
        ("empty", Some("")),
        ("missing", None),
        ("truncated", Some(r#"{"name":"v2","hei"#)),
    ];
    for (what, content) in cases {
        let home = Home::new("simd");
        home.genesis(&FakeDaemon::new().ready("v1").block()).upgrade(
            "v2",
            &FakeDaemon::new()
                .raw(r#"printf 'info %s\n' "$(cat "$DAEMON_HOME/data/upgrade-info.json")" >> "$DAEMON_HOME/events""#)
                .ready("v2")
                .block(),
        );
        let info = home.data().join("upgrade-info.json");
        if let Some(content) = content {
            fs::write(&info, content).unwrap();
        }
        fs::write(
            home.root().join("upgrade-journal.json"),
            r#"{"format":1,"plan":{"name":"v2","raw_name":"V2","height":10,"info":"{\"binaries\":{}}"},"phase":"pre_upgrade_done","started_at":"2026-11-26T07:00:00Z"}"#,
        )
        .unwrap();
        let out = home
            .cosmovisor(["run", "start"])
            .stop_after(&home, "ready v2");
        out.assert_code(0);
        let expected =
            r#"{"name":"V2","time":"0001-01-01T00:00:00Z","height":10,"info":"{\"binaries\":{}}"}"#;
        assert_eq!(
            home.events(),
            [format!("info {expected}"), "ready v2".into(), "TERM".into()],
            "{what}\n{out}"
        );
        assert_eq!(fs::read_to_string(&info).unwrap(), expected, "{what}");
        assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
    }
}

/// What `strace -f` recorded, one call per line, `<unfinished …>` halves joined.
struct Trace {
    calls: Vec<(String, String)>,
}

impl Trace {
    fn read(path: &Path) -> Trace {
        let text = fs::read_to_string(path).unwrap();
        let mut pending: HashMap<String, String> = HashMap::new();
        let mut calls = Vec::new();
        for line in text.lines() {
            let Some((pid, rest)) = line.split_once(' ') else {
                continue;
            };
            let rest = rest.trim_start();
            if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
                pending.insert(pid.to_owned(), head.to_owned());
            } else if let Some(tail) = rest.strip_prefix("<... ") {
                let tail = tail.split_once("resumed>").map_or("", |(_, tail)| tail);
                let head = pending.remove(pid).unwrap_or_default();
                calls.push((pid.to_owned(), format!("{head}{tail}")));
            } else {
                calls.push((pid.to_owned(), rest.to_owned()));
            }
        }
        Trace { calls }
    }

    /// Index of the first `fsync`/`fdatasync` of a descriptor opened on a path ending in `suffix`.
    fn first_sync_of(&self, suffix: &str) -> Option<usize> {
        let mut open: HashMap<(String, String), bool> = HashMap::new();
        for (index, (pid, call)) in self.calls.iter().enumerate() {
            if call.starts_with("openat(") {
                let Some((args, ret)) = call.rsplit_once(" = ") else {
                    continue;
                };
                let fd = ret.split_whitespace().next().unwrap_or_default().to_owned();
                let path = args.split('"').nth(1).unwrap_or_default();
                open.insert((pid.clone(), fd), path.ends_with(suffix));
            } else if let Some(args) = call
                .strip_prefix("fsync(")
                .or_else(|| call.strip_prefix("fdatasync("))
            {
                let fd = args.split(')').next().unwrap_or_default().to_owned();
                if open.get(&(pid.clone(), fd)) == Some(&true) {
                    return Some(index);
                }
            }
        }
        None
    }

    /// Index of the first rename whose destination ends in `suffix`.
    fn first_rename_onto(&self, suffix: &str) -> Option<usize> {
        self.calls.iter().position(|(_, call)| {
            call.starts_with("rename")
                && call
                    .split('"')
                    .nth(3)
                    .is_some_and(|dest| dest.ends_with(suffix))
        })
    }
}

/// The fsync of `data/upgrade-info.json` (and of `data/`) comes before the journal records the
/// plan, so a power cut can never leave a journal whose plan file is gone.
#[test]
fn upgrade_info_json_is_synced_before_the_journal_records_its_plan() {
    assert!(
        std::process::Command::new("strace")
            .arg("-V")
            .output()
            .is_ok_and(|out| out.status.success()),
        "this test needs strace (apt-get install strace)"
    );
    let home = Home::new("simd");
    // strace waits for every traced process: the daemon must not leave a `sleep` behind.
    let v1 = FakeDaemon::new()
        .raw(r#"trap 'kill "$s"; exit 0' TERM"#)
        .request_upgrade("v2", 10)
        .raw(r#"sleep 60 & s=$!; wait "$s""#);
    home.genesis(&v1)
        .upgrade("v2", &upgraded_daemon("v2", &[0]));
    let trace = home.path().join("strace.out");
    let mut wrapper: Vec<OsString> = vec![
        "strace".into(),
        "-f".into(),
        "-qq".into(),
        "-e".into(),
        "trace=fsync,fdatasync,rename,renameat,renameat2,openat".into(),
        "-o".into(),
        trace.clone().into_os_string(),
    ];
    wrapper.push(crate::support::COSMOVISOR.into());
    let out = home
        .cosmovisor_under(&wrapper, ["run", "start"])
        .env("DAEMON_RESTART_AFTER_UPGRADE", "false")
        .env("UNSAFE_SKIP_BACKUP", "true")
        .run();
    out.assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"), "{out}");
    let trace = Trace::read(&trace);
    let journal = trace
        .first_rename_onto("/cosmovisor/upgrade-journal.json")
        .expect("the journal was renamed into place");
    let plan = trace
        .first_sync_of("/data/upgrade-info.json")
        .expect("upgrade-info.json was fsynced");
    let data = trace.first_sync_of("/data").expect("data/ was fsynced");
    assert!(
        plan < journal,
        "upgrade-info.json synced at {plan}, journal renamed at {journal}"
    );
    assert!(
        data < journal,
        "data/ synced at {data}, journal renamed at {journal}"
    );
}

/// `args` with `{}` replaced by `path`.
fn args(args: &[&str], path: &Path) -> Vec<OsString> {
    args.iter()
        .map(|arg| {
            if *arg == "{}" {
                path.as_os_str().to_owned()
            } else {
                OsString::from(arg)
            }
        })
        .collect()
}

/// A pid that is certainly not running now.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Temp files a crash leaves behind in the folders we own are removed when supervision starts;
/// the node's own files are not touched.
#[test]
fn crash_leftovers_are_removed_at_start() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block())
        .upgrade("v2", &upgraded_daemon("v2", &[0]));
    let pid = dead_pid();
    let leftovers = [
        home.root().join(format!(".upgrade-journal.json.tmp-{pid}")),
        home.root().join(format!("current.tmp-{pid}")),
        home.upgrade_dir("v2")
            .join(format!(".upgrade-info.json.tmp-{pid}")),
        home.upgrade_dir("v2").join(format!("bin/.simd.tmp-{pid}")),
        home.data().join(format!(".upgrade-info.json.tmp-{pid}")),
    ];
    for path in &leftovers {
        fs::write(path, "half").unwrap();
    }
    let kept = [
        home.data().join(format!(".blocks.tmp-{pid}")),
        home.data().join("notes.tmp-1"),
        home.root()
            .join(format!(".journal.tmp-{}", std::process::id())),
    ];
    for path in &kept {
        fs::write(path, "node's").unwrap();
    }
    let out = home
        .cosmovisor(["run", "start"])
        .stop_after(&home, "ready v1");
    out.assert_code(0);
    for path in &leftovers {
        assert!(!path.exists(), "{} is still there\n{out}", path.display());
    }
    for path in &kept {
        assert!(path.exists(), "{} was removed\n{out}", path.display());
    }
}

/// `add-upgrade --force` must not replace the binary of the upgrade the journal says is under way.
#[test]
fn add_upgrade_force_for_the_upgrade_under_way_is_refused() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block())
        .upgrade("v2", &upgraded_daemon("v2", &[0]));
    let journal = home.root().join("upgrade-journal.json");
    fs::write(
        &journal,
        r#"{"format":1,"plan":{"name":"v2","raw_name":"v2","height":10,"info":""},"phase":"custom_pre_upgrade_done","started_at":"2026-11-26T07:00:00Z"}"#,
    )
    .unwrap();
    let bin = home.upgrade_dir("v2").join("bin/simd");
    let before = fs::read(&bin).unwrap();
    let other = home.path().join("other-simd");
    fs::write(&other, "#!/bin/sh\nexit 0\n").unwrap();
    let out = home
        .cosmovisor(args(&["add-upgrade", "V2", "{}", "--force"], &other))
        .run();
    out.assert_code(8);
    assert_eq!(
        out.errors(),
        [format!(
            "upgrade v2 at height 10 is under way ({}): let cosmovisor finish it, or remove the journal to abandon it, then replace its binary",
            journal.display()
        )],
        "{out}"
    );
    assert_eq!(fs::read(&bin).unwrap(), before);
    // Another upgrade's binary may still be replaced.
    let out = home
        .cosmovisor(args(&["add-upgrade", "v3", "{}", "--force"], &other))
        .run();
    out.assert_code(0);
}

/// Operator files that are not regular files are refused with an error naming them, at once.
#[test]
fn fifo_as_config_file_or_batch_queue_is_refused() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().event("ran").exit(0));
    let config = home.path().join("config.toml");
    nix::unistd::mkfifo(&config, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let out = home
        .cosmovisor(args(
            &["run", "--cosmovisor-config", "{}", "start"],
            &config,
        ))
        .run();
    out.assert_code(3);
    assert_eq!(
        out.errors(),
        [format!(
            "config file {}: cannot read it: it is a FIFO, not a regular file (check the --cosmovisor-config path)",
            config.display()
        )],
        "{out}"
    );
    let queue = home.data().join("upgrade-info.json.batch");
    nix::unistd::mkfifo(&queue, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let out = home.cosmovisor(["run", "start"]).run();
    out.assert_code(5);
    out.stderr_contains(&format!(
        "{} is a FIFO, not a regular file; replace it with a file",
        queue.display()
    ));
    assert!(home.events().is_empty(), "the daemon ran\n{out}");
}
