//! systemd's notify protocol: a Unix datagram socket bound by the test stands in for systemd
//! (`NOTIFY_SOCKET`), and the messages `cosmovisor run` sends to it across a real upgrade are
//! what `systemctl status` would show.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::support::{DEADLINE, FakeDaemon, Home, v1_requesting, wait_until};

/// A bound notify socket; a thread collects every datagram it receives, in order.
struct NotifySocket {
    /// What `NOTIFY_SOCKET` is set to.
    path: PathBuf,
    received: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::Builder::new()
            .prefix("cv-notify-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket::collect(socket, path, dir)
    }

    /// An abstract socket (`@name`, Linux), as systemd may pass.
    fn bind_abstract() -> NotifySocket {
        use std::os::linux::net::SocketAddrExt as _;
        let dir = tempfile::tempdir().unwrap();
        let name = format!("cosmovisor-test-{}", dir.path().display());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        NotifySocket::collect(socket, PathBuf::from(format!("@{name}")), dir)
    }

    fn collect(socket: UnixDatagram, path: PathBuf, dir: tempfile::TempDir) -> NotifySocket {
        let received = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&received);
        thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                shared.lock().unwrap().push(text);
            }
        });
        NotifySocket {
            path,
            received,
            _dir: dir,
        }
    }

    /// Every line of every datagram so far, in order.
    fn lines(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|datagram| datagram.lines().map(str::to_owned).collect::<Vec<_>>())
            .collect()
    }

    /// Every line once cosmovisor has said `STOPPING=1` (its last message but a final status),
    /// waiting for it.
    fn lines_once_stopping(&self) -> Vec<String> {
        wait_until("STOPPING=1", DEADLINE, || self.count("STOPPING=1") == 1);
        self.lines()
    }

    fn count(&self, line: &str) -> usize {
        self.lines().iter().filter(|l| *l == line).count()
    }
}

/// The position of the first line at or after `from` that starts with `prefix`.
fn position(lines: &[String], from: usize, prefix: &str) -> usize {
    lines[from..]
        .iter()
        .position(|line| line.starts_with(prefix))
        .map_or_else(
            || panic!("no {prefix:?} after line {from} in {lines:#?}"),
            |i| i + from,
        )
}

/// Records, each time the daemon (or its pre-upgrade) starts, what it sees of systemd's variables.
const RECORD_ENV: &str = r#"printf '%s\n' "${NOTIFY_SOCKET:-unset} ${WATCHDOG_USEC:-unset} ${WATCHDOG_PID:-unset}" >> "$DAEMON_HOME/daemon-env""#;

fn daemon_env(home: &Home) -> Vec<String> {
    std::fs::read_to_string(home.path().join("daemon-env"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn tells_systemd_each_step_of_an_upgrade_in_order() {
    let home = Home::new("simd");
    std::fs::write(home.data().join("state.db"), "blocks").unwrap();
    home.genesis(&v1_requesting("v2", 49)).upgrade(
        "v2",
        &FakeDaemon::new()
            .raw(RECORD_ENV)
            .pre_upgrade("v2", &[31, 0])
            .ready("v2")
            .block(),
    );
    let socket = NotifySocket::bind();
    let out = home
        .cosmovisor(["run", "start"])
        .env("NOTIFY_SOCKET", &socket.path)
        .env("DAEMON_PREUPGRADE_MAX_RETRIES", "4")
        .stop_after(&home, "ready v2");
    out.assert_code(0);
    let lines = socket.lines_once_stopping();

    let ready = position(&lines, 0, "READY=1");
    assert_eq!(
        lines[ready + 1],
        "STATUS=running simd (genesis)",
        "{lines:#?}"
    );
    let stopping = position(
        &lines,
        ready,
        "STATUS=upgrade v2 at height 49: stopping simd",
    );
    let extend_stop = position(&lines, stopping, "EXTEND_TIMEOUT_USEC=");
    let backing_up = position(&lines, extend_stop, "STATUS=upgrade v2: backing up data/");
    position(&lines, backing_up, "EXTEND_TIMEOUT_USEC=");
    let try1 = position(
        &lines,
        backing_up,
        "STATUS=upgrade v2: pre-upgrade, try 1 of 5",
    );
    let try2 = position(&lines, try1, "STATUS=upgrade v2: pre-upgrade, try 2 of 5");
    let running = position(&lines, try2, "STATUS=running simd (v2)");
    let end = position(&lines, running, "STOPPING=1");
    assert_eq!(socket.count("READY=1"), 1, "{lines:#?}");
    assert!(
        !lines.iter().any(|line| line.starts_with("WATCHDOG=")),
        "no watchdog was asked for: {lines:#?}"
    );
    assert!(
        lines[end + 1..]
            .iter()
            .all(|line| line.starts_with("STATUS=")),
        "only a last status may follow STOPPING=1: {lines:#?}"
    );
    // Neither the node nor its pre-upgrade may talk to systemd in cosmovisor's place.
    assert_eq!(daemon_env(&home), ["unset unset unset"; 3], "{out}");
}

#[test]
fn watchdog_pings_keep_coming_while_the_node_runs_and_during_long_steps() {
    let home = Home::new("simd");
    home.genesis(&v1_requesting("v2", 49)).upgrade(
        "v2",
        &FakeDaemon::new()
            .raw(r#"if [ "${1:-}" = pre-upgrade ]; then sleep 2; exit 0; fi"#)
            .ready("v2")
            .block(),
    );
    let socket = NotifySocket::bind();
    let out = home
        .cosmovisor(["run", "start"])
        .env("NOTIFY_SOCKET", &socket.path)
        .env("WATCHDOG_USEC", "1000000")
        .stop_after(&home, "ready v2");
    out.assert_code(0);
    let lines = socket.lines_once_stopping();
    let pre_upgrade = position(&lines, 0, "STATUS=upgrade v2: pre-upgrade, try 1 of 1");
    let running = position(&lines, pre_upgrade, "STATUS=running simd (v2)");
    let pings = lines[pre_upgrade..running]
        .iter()
        .filter(|line| *line == "WATCHDOG=1")
        .count();
    // The pre-upgrade takes two seconds; pings are due every 500ms (the fastest allowed).
    assert!(pings >= 3, "{pings} pings during pre-upgrade: {lines:#?}");

    // While the node runs, the supervisor's loop pings on.
    let socket = NotifySocket::bind();
    let running = home
        .cosmovisor(["run", "start"])
        .env("NOTIFY_SOCKET", &socket.path)
        .env("WATCHDOG_USEC", "1000000")
        .spawn();
    home.wait_for_events("ready v2", 2);
    wait_until("three watchdog pings", DEADLINE, || {
        socket.count("WATCHDOG=1") >= 3
    });
    running.signal(nix::sys::signal::Signal::SIGTERM);
    running.wait().assert_code(0);
}

#[test]
fn a_watchdog_meant_for_another_process_is_left_alone() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").raw("sleep 1").exit(0));
    let socket = NotifySocket::bind();
    home.cosmovisor(["run", "start"])
        .env("NOTIFY_SOCKET", &socket.path)
        .env("WATCHDOG_USEC", "100000")
        .env("WATCHDOG_PID", "1")
        .run()
        .assert_code(0);
    let lines = socket.lines_once_stopping();
    // The node ran for a second: twenty pings would have been due.
    assert!(!lines.iter().any(|line| line == "WATCHDOG=1"), "{lines:#?}");
}

#[test]
fn a_notify_socket_nobody_listens_on_changes_nothing() {
    let home = Home::new("simd");
    home.genesis(&v1_requesting("v2", 49)).upgrade(
        "v2",
        &FakeDaemon::new()
            .raw(RECORD_ENV)
            .pre_upgrade("v2", &[0])
            .ready("v2")
            .block(),
    );
    let gone = Path::new("/nonexistent/cosmovisor-test/notify.sock");
    let out = home
        .cosmovisor(["run", "start"])
        .env("NOTIFY_SOCKET", gone)
        .env("WATCHDOG_USEC", "100000")
        .stop_after(&home, "ready v2");
    out.assert_code(0);
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"));
    assert_eq!(daemon_env(&home), ["unset unset unset"; 2], "{out}");
}

#[test]
fn a_failed_upgrade_is_the_last_status() {
    let home = Home::new("simd");
    home.genesis(&v1_requesting("v2", 49));
    let socket = NotifySocket::bind();
    let out = home
        .cosmovisor(["run", "start"])
        .env("NOTIFY_SOCKET", &socket.path)
        .run();
    assert_ne!(out.code(), Some(0), "{out}");
    let lines = socket.lines_once_stopping();
    let failed = position(
        &lines,
        0,
        "STATUS=failed: upgrade \"v2\" at height 49 needs its binary at ",
    );
    assert!(
        lines[failed].ends_with("/upgrades/v2/bin/simd: put the new simd binary there (chmod 755) and start cosmovisor again"),
        "{lines:#?}"
    );
}

/// `doctor --unit` lines about the notify settings of `unit`, for `home`.
fn doctor_notify_lines(home: &Home, unit: &Path) -> Vec<String> {
    let out = home
        .cosmovisor(["doctor", "--unit", unit.to_str().unwrap()])
        .run();
    out.stdout()
        .lines()
        .filter(|line| {
            ["Type=", "WatchdogSec", "NotifyAccess"]
                .iter()
                .any(|k| line.contains(k))
        })
        .map(str::to_owned)
        .collect()
}

/// The shipped unit with its notify settings replaced by `settings`.
fn unit_with(home: &Home, settings: &str) -> PathBuf {
    let path = crate::doctor::shipped_unit_for(home, &[]);
    let mut text = String::new();
    for line in std::fs::read_to_string(&path).unwrap().lines() {
        let notify_setting = ["Type=", "WatchdogSec=", "NotifyAccess="]
            .iter()
            .any(|k| line.starts_with(k));
        if !notify_setting {
            text.push_str(line);
            text.push('\n');
        }
    }
    std::fs::write(
        &path,
        text.replace("[Service]\n", &format!("[Service]\n{settings}")),
    )
    .unwrap();
    path
}

#[test]
fn doctor_checks_the_units_notify_settings() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block());
    let unit = crate::doctor::shipped_unit_for(&home, &[]);
    let u = unit.display();
    assert_eq!(
        doctor_notify_lines(&home, &unit),
        [
            format!(
                "✓ systemd unit {u}: Type=notify (systemctl status shows the node's version and upgrade steps)"
            ),
            format!("✓ systemd unit {u}: NotifyAccess=main"),
            format!("✓ systemd unit {u}: WatchdogSec=2min restarts a frozen cosmovisor"),
        ]
    );

    let unit = unit_with(&home, "Type=simple\nNotifyAccess=none\nWatchdogSec=10s\n");
    let out = home
        .cosmovisor(["doctor", "--unit", unit.to_str().unwrap()])
        .run();
    out.assert_code(7);
    assert_eq!(
        doctor_notify_lines(&home, &unit),
        [
            format!(
                "! systemd unit {u}: Type=simple: systemd cannot tell when the node runs nor show an upgrade in progress — hint: set Type=notify (cosmovisor sends READY=1 and STATUS=)"
            ),
            format!(
                "✗ systemd unit {u}: NotifyAccess=none makes systemd ignore cosmovisor's READY=1 and watchdog pings: the start times out — fix: set NotifyAccess=main"
            ),
            format!(
                "✗ systemd unit {u}: WatchdogSec=10s is shorter than 30s: a slow disk during an upgrade could get the service restarted mid-step — fix: set WatchdogSec=2min"
            ),
        ],
        "{out}"
    );

    let unit = unit_with(&home, "Type=notify\n");
    assert_eq!(
        doctor_notify_lines(&home, &unit),
        [
            format!(
                "✓ systemd unit {u}: Type=notify (systemctl status shows the node's version and upgrade steps)"
            ),
            format!(
                "! systemd unit {u}: no WatchdogSec: a frozen cosmovisor is not restarted — hint: set WatchdogSec=2min"
            ),
        ]
    );
}

#[test]
fn a_pass_through_run_is_ready_and_pings_too() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().raw(r#"if [ "$1" = start ]; then printf 'ready\n' >> "$DAEMON_HOME/events"; trap 'exit 0' TERM; while :; do sleep 30 >/dev/null 2>&1 & wait $!; done; fi"#).raw("sleep 1").say("queried").exit(0));
    let supervisor = home.cosmovisor(["run", "start"]).spawn();
    home.wait_for_event("ready");
    let socket = NotifySocket::bind();
    home.cosmovisor(["run", "status"])
        .env("NOTIFY_SOCKET", &socket.path)
        .env("WATCHDOG_USEC", "100000")
        .run()
        .assert_code(0)
        .stderr_contains("another cosmovisor supervises this home");
    let lines = socket.lines_once_stopping();
    let ready = position(&lines, 0, "READY=1");
    assert_eq!(
        lines[ready + 1],
        "STATUS=running simd (genesis)",
        "{lines:#?}"
    );
    // The query runs for a second: pings are due every 50ms.
    position(&lines, ready, "WATCHDOG=1");
    drop(supervisor);
}

#[test]
fn an_abstract_notify_socket_is_reached() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").exit(0));
    let socket = NotifySocket::bind_abstract();
    home.cosmovisor(["run", "start"])
        .env("NOTIFY_SOCKET", &socket.path)
        .run()
        .assert_code(0);
    let lines = socket.lines_once_stopping();
    let ready = position(&lines, 0, "READY=1");
    assert_eq!(
        lines[ready + 1],
        "STATUS=running simd (genesis)",
        "{lines:#?}"
    );
}

/// A plan name and a pre-upgrade hook's output made to forge lines: a newline and a whole
/// `11:59PM ERR …` line, a terminal escape (OSC title, BEL), and an `sd_notify` assignment.
#[test]
fn hostile_plan_names_and_hook_output_forge_no_line_escape_or_assignment() {
    let home = Home::new("simd");
    // The name as JSON text, and its folder (Go's url.PathEscape of it).
    let name_json = r"X\n11:59PM ERR validator key leaked\u001b]0;owned\u0007\nWATCHDOG=trigger";
    let folder =
        "X%0A11:59PM%20ERR%20validator%20key%20leaked%1B%5D0%3Bowned%07%0AWATCHDOG=trigger";
    home.genesis(&FakeDaemon::new().ready("v1").block());
    home.upgrade(
        folder,
        &FakeDaemon::new()
            .raw(r#"if [ "${1:-}" = pre-upgrade ]; then printf 'ok\n11:59PM ERR hook forged line\033[2J\r\n'; printf 'err\n11:59PM ERR hook forged stderr\n' >&2; exit 0; fi"#)
            .ready("v2")
            .block(),
    );
    let socket = NotifySocket::bind();
    let running = home
        .cosmovisor(["run", "start"])
        .env("NOTIFY_SOCKET", &socket.path)
        .env("COSMOVISOR_DISABLE_RECASE", "true")
        .spawn();
    home.wait_for_event("ready v1");
    home.write_plan(name_json, 20);
    home.wait_for_event("ready v2");
    running.signal(nix::sys::signal::Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0);
    let stderr = out.stderr();
    assert!(stderr.contains("pre-upgrade result"), "{out}");
    for line in stderr.lines() {
        assert!(
            !line.starts_with("11:59PM ERR"),
            "forged line {line:?} in {out}"
        );
        assert!(
            !line.starts_with("WATCHDOG="),
            "forged line {line:?} in {out}"
        );
    }
    assert!(!stderr.contains(['\x1b', '\x07', '\r']), "{stderr:?}");

    let lines = socket.lines_once_stopping();
    assert!(
        lines
            .iter()
            .all(|l| !l.starts_with("WATCHDOG=") && !l.starts_with("11:59PM")),
        "an assignment was injected: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("STATUS=running simd (X%0A11:59PM")),
        "{lines:#?}"
    );

    let status = home.cosmovisor(["status"]).run();
    status.assert_code(0);
    let text = status.stdout();
    assert!(text.contains(r"applied:    X\n11:59PM ERR validator key leaked\x1b]0;owned\x07\nWATCHDOG=trigger at height 20"), "{text}");
    assert!(
        !text.chars().any(|c| c != '\n' && c.is_control()),
        "{text:?}"
    );
}

/// utime + stime of `pid`, in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
fn cpu_ticks(pid: nix::unistd::Pid) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// `WATCHDOG_USEC=1` asked for a ping every half microsecond: one warning, pings every 500ms,
/// and an idle supervisor stays idle (measured from `/proc`, between the 2nd and 5th ping).
#[test]
fn a_tiny_watchdog_usec_is_clamped_to_a_ping_every_500ms() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block());
    let socket = NotifySocket::bind();
    let running = home
        .cosmovisor(["run", "start"])
        .env("NOTIFY_SOCKET", &socket.path)
        .env("WATCHDOG_USEC", "1")
        .spawn();
    home.wait_for_event("ready v1");
    wait_until("two watchdog pings", DEADLINE, || {
        socket.count("WATCHDOG=1") >= 2
    });
    let (start, ticks) = (std::time::Instant::now(), cpu_ticks(running.pid));
    wait_until("five watchdog pings", DEADLINE, || {
        socket.count("WATCHDOG=1") >= 5
    });
    let (elapsed, used) = (start.elapsed(), cpu_ticks(running.pid) - ticks);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap();
    #[expect(clippy::cast_precision_loss, reason = "a few hundred ticks")]
    let share = used as f64 / hz as f64 / elapsed.as_secs_f64();
    running.signal(nix::sys::signal::Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0);
    assert!(
        elapsed >= std::time::Duration::from_millis(1200),
        "three pings came within {elapsed:?}: not every 500ms"
    );
    assert!(
        share < 0.1,
        "cosmovisor used {:.0}% of a core while idle",
        share * 100.0
    );
    assert_eq!(
        out.stderr().matches("WATCHDOG_USEC=1 asks for a watchdog ping more often than every 500ms; pinging every 500ms instead").count(),
        1,
        "{out}"
    );
}
