//! Operator tooling around `run`: JSON log lines, the metrics endpoint, the shipped systemd unit,
//! shell completion and the manual page.

use std::path::Path;
use std::process::Command;

use nix::sys::signal::Signal;

use crate::support::{
    DEADLINE, Home, free_port, http_get, skip_or_fail_in_ci, upgraded_daemon, v1_requesting,
    wait_until,
};

fn upgrading_home() -> Home {
    let home = Home::new("simd");
    std::fs::write(home.data().join("state.db"), "blocks").expect("test setup");
    home.genesis(&v1_requesting("v2", 49))
        .upgrade("v2", &upgraded_daemon("v2", &[0]));
    home
}

#[test]
fn json_log_lines_parse() {
    let home = upgrading_home();
    let out = home
        .cosmovisor(["run", "start"])
        .env("COSMOVISOR_LOG_FORMAT", "json")
        .stop_after(&home, "ready v2");
    out.assert_code(0);
    let mut messages = Vec::new();
    for line in out.stderr().lines().filter(|l| l.starts_with('{')) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}\n{out}"));
        for key in ["time", "level", "message", "module"] {
            assert!(value[key].is_string(), "{key} missing in {line}");
        }
        messages.push(value["message"].as_str().unwrap_or_default().to_owned());
    }
    for message in ["backup completed", "upgrade detected, relaunching"] {
        assert!(messages.iter().any(|m| m == message), "{message}\n{out}");
    }
}

#[test]
fn metrics_endpoint_reports_the_upgrade() {
    let home = upgrading_home();
    let port = free_port();
    let running = home
        .cosmovisor(["run", "start"])
        .env("COSMOVISOR_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .spawn();
    home.wait_for_event("ready v2");
    let mut body = String::new();
    wait_until("metrics after the upgrade", DEADLINE, || {
        body = http_get(port, "/metrics").unwrap_or_default();
        body.contains("\ncosmovisor_upgrades_total 1\n")
            && body.contains("\ncosmovisor_daemon_up 1\n")
    });
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
    assert!(
        body.contains("Content-Type: text/plain; version=0.0.4"),
        "{body}"
    );
    for line in [
        "cosmovisor_current_version_info{version=\"v2\"} 1",
        "cosmovisor_pending_upgrade_height 0",
        "cosmovisor_upgrade_binary_staged 0",
        "cosmovisor_daemon_restarts_total 1",
        "cosmovisor_daemon_last_exit_code 0",
        "# TYPE cosmovisor_upgrades_total counter",
    ] {
        assert!(body.lines().any(|l| l == line), "{line}\n{body}");
    }
    for name in [
        "cosmovisor_info{version=\"v",
        "cosmovisor_last_backup_duration_seconds ",
        "cosmovisor_last_backup_bytes ",
    ] {
        assert!(body.contains(name), "{name}\n{body}");
    }
    let bytes: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("cosmovisor_last_backup_bytes "))
        .and_then(|v| v.parse().ok())
        .expect("backup bytes");
    assert!(bytes >= 6, "the backup copied state.db: {body}");
    let missing = http_get(port, "/nope").unwrap_or_default();
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    running.signal(Signal::SIGTERM);
    running.wait().assert_code(0);
    assert!(
        http_get(port, "/metrics").is_none(),
        "the endpoint closes with the supervisor"
    );
}

#[test]
fn shipped_systemd_unit_verifies() {
    if !systemd_analyze_runs() {
        return;
    }
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd/cosmovisor.service");
    let text = std::fs::read_to_string(&unit).expect("unit");
    // `verify` checks that ExecStart exists: point it at the binary under test.
    let text = text.replace("/usr/local/bin/cosmovisor", crate::support::COSMOVISOR);
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("cosmovisor.service");
    std::fs::write(&copy, text).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("run systemd-analyze");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `systemd-analyze` runs here; when not, the test that needs it is skipped (failed in CI).
fn systemd_analyze_runs() -> bool {
    let runs = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !runs {
        skip_or_fail_in_ci(
            "systemd-analyze is not installed or does not run here (package systemd)",
        );
    }
    runs
}

#[test]
fn shipped_units_rate_ok_in_systemd_analyze_security() {
    if !systemd_analyze_runs() {
        return;
    }
    for unit in ["cosmovisor.service", "cosmovisor@.service"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("contrib/systemd")
            .join(unit);
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true"])
            .arg(&path)
            .output()
            .expect("run systemd-analyze");
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().last().unwrap_or_default();
        let rating = last.rsplit(": ").next().unwrap_or_default();
        let figure: f64 = rating
            .split(' ')
            .next()
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("{unit}: no exposure level in {text}"));
        assert!(
            figure <= 3.0 && rating.contains(" OK"),
            "{unit}: exposure {rating}, expected 3.0 or less (OK)\n{text}"
        );
    }
}

/// The template's `ExecCondition=` as systemd runs it for an instance (`%n` expanded, `$$` a `$`).
fn template_root_check(instance: &str) -> String {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd/cosmovisor@.service");
    let text = std::fs::read_to_string(unit).expect("unit");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecCondition="))
        .expect("cosmovisor@.service refuses root with an ExecCondition=");
    line.replace("%n", &format!("cosmovisor@{instance}.service"))
        .replace("%i", instance)
        .replace("$$", "$")
}

#[test]
fn the_template_refuses_to_run_a_node_as_root() {
    if !nix::unistd::geteuid().is_root() {
        skip_or_fail_in_ci("needs root: runs the unit's root check as root and as another user");
        return;
    }
    let as_root = Command::new("bash")
        .args(["-c", &template_root_check("root")])
        .output()
        .expect("run the check");
    assert!(!as_root.status.success(), "root was let through");
    let said = String::from_utf8_lossy(&as_root.stderr);
    assert!(
        said.contains("cosmovisor@root.service: refusing to run the node as root"),
        "{said}"
    );
    let as_user = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "bash",
            "-c",
        ])
        .arg(template_root_check("nobody"))
        .output()
        .expect("run setpriv");
    assert!(
        as_user.status.success(),
        "an ordinary user was refused: {}",
        String::from_utf8_lossy(&as_user.stderr)
    );
}

#[test]
fn completion_and_man_page() {
    let home = Home::blank("simd");
    let out = home.cosmovisor(["completion", "bash"]).run();
    out.assert_code(0).stdout_contains("cosmovisor");
    assert!(out.stdout().contains("rollback"), "{out}");
    let out = home.cosmovisor(["man"]).run();
    out.assert_code(0);
    assert!(out.stdout().starts_with(".TH"), "{out}");
    let out = home.cosmovisor(["completion", "tcsh"]).run();
    out.assert_code(2);
}
