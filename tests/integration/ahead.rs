//! Ready before the height (README "Before the upgrade"): while `run` supervises, the upgrade the
//! chain schedules (a fake gRPC `CurrentPlan`) or the operator queues is known, its binary is
//! downloaded ahead and checked without being run, and `status`, `doctor`, the metrics and the
//! log say whether it is ready; the chain's answer never stops or switches anything.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde_json::{Value, json};

use crate::support::{
    DEADLINE, FakeDaemon, GrpcNode, Home, Output, Running, Server, foreign_elf_header, free_port,
    http_get, sha256, upgraded_daemon, wait_until,
};

const FAST: &str = "50ms";

fn home_running_v1() -> Home {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block());
    home
}

fn supervise(home: &Home, grpc: &str, download: bool) -> Running {
    home.cosmovisor(["run", "start"])
        .env("DAEMON_GRPC_ADDRESS", grpc)
        .env("COSMOVISOR_PLAN_CHECK_INTERVAL", FAST)
        .env(
            "DAEMON_ALLOW_DOWNLOAD_BINARIES",
            if download { "true" } else { "false" },
        )
        .spawn()
}

fn status_json(home: &Home, grpc: &str) -> Value {
    let out = home
        .cosmovisor(["status", "-o", "json"])
        .env("DAEMON_GRPC_ADDRESS", grpc)
        .run();
    out.assert_code(0);
    serde_json::from_slice(out.stdout().as_bytes()).unwrap()
}

fn doctor(home: &Home, grpc: &str, path: Option<&str>) -> Output {
    let mut command = home.cosmovisor(["doctor"]).env("DAEMON_GRPC_ADDRESS", grpc);
    if let Some(path) = path {
        command = command.env("PATH", path);
    }
    command.run()
}

fn info_for(url: &str, checksum: &str) -> String {
    json!({"binaries": {"any": format!("{url}?checksum={checksum}")}}).to_string()
}

#[test]
fn a_chain_plan_is_downloaded_and_checked_ahead_and_the_halt_then_switches_without_a_download() {
    // Answers `version` (doctor runs it) without starting.
    let binary = FakeDaemon::new()
        .raw(r#"if [ "${1:-}" = version ]; then echo v3; exit 0; fi"#)
        .pre_upgrade("v3", &[0])
        .ready("v3")
        .block()
        .script()
        .into_bytes();
    let server = Server::start(vec![("/v3".into(), binary.clone())]);
    let info = info_for(&server.url("/v3"), &sha256(&binary));
    let grpc = GrpcNode::start(Some(("v3", 1000, &info)));
    let home = home_running_v1();
    let running = supervise(&home, &grpc.address, true);
    home.wait_for_event("ready v1");
    running.wait_for_log("upgrade v3 scheduled at height 1000 (chain plan)");
    running.wait_for_log("upgrade v3 at height 1000 is ready");

    assert_eq!(
        fs::read(home.upgrade_dir("v3").join("bin/simd")).unwrap(),
        binary
    );
    assert!(
        home.current_target().ends_with("genesis"),
        "{}",
        home.tree()
    );
    assert_eq!(home.events(), ["ready v1"], "the node was never stopped");
    assert!(!home.data().join("upgrade-info.json").exists());
    let status = status_json(&home, &grpc.address);
    assert_eq!(
        status["next_upgrade"],
        json!({"name": "v3", "height": 1000, "source": "chain", "ready": true, "problem": null, "eta_seconds": null})
    );
    let out = doctor(&home, &grpc.address, None);
    out.stdout_contains(
        "✓ scheduled upgrade v3 at height 1000 (chain plan) is ready: its binary is staged and checked",
    );

    // The halt: the node writes the plan; the staged binary is used, nothing is fetched again.
    home.write_plan("v3", 1000);
    home.wait_for_event("ready v3");
    assert_eq!(
        home.current_target(),
        std::path::PathBuf::from("upgrades/v3")
    );
    assert_eq!(server.requested(), ["/v3"], "downloaded once, ahead");
    drop(running);
}

#[test]
fn a_missing_binary_with_downloads_off_is_not_ready_everywhere() {
    let grpc = GrpcNode::start(Some(("v3", 1000, "")));
    let home = home_running_v1();
    let port = free_port();
    let hook = crate::webhook::Receiver::start(false);
    let running = home
        .cosmovisor(["run", "start"])
        .env("DAEMON_GRPC_ADDRESS", &grpc.address)
        .env("COSMOVISOR_PLAN_CHECK_INTERVAL", FAST)
        .env("COSMOVISOR_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("COSMOVISOR_WEBHOOK_URL", &hook.url)
        .spawn();
    home.wait_for_event("ready v1");
    let bin = home.upgrade_dir("v3").join("bin/simd");
    let reason = format!("binary {} is not staged", bin.display());
    running.wait_for_log(&format!(
        "upgrade v3 at height 1000 is NOT READY: {reason}; fix: stage it: cosmovisor add-upgrade v3 <path to the new simd> (or set DAEMON_ALLOW_DOWNLOAD_BINARIES=true)"
    ));
    wait_until("the outlook in the metrics", DEADLINE, || {
        http_get(port, "/metrics").is_some_and(|body| {
            body.contains("cosmovisor_scheduled_upgrade_height{name=\"v3\",source=\"chain\"} 1000")
                && body.contains("cosmovisor_scheduled_upgrade_ready{name=\"v3\"} 0")
        })
    });
    // Said once, however many checks.
    let asked = grpc.asked();
    wait_until("more checks", DEADLINE, || grpc.asked() >= asked + 3);
    assert_eq!(running.stderr_so_far().matches("is NOT READY").count(), 1);
    wait_until("the webhook's not-ready message", DEADLINE, || {
        hook.bodies().iter().any(|body| {
            body["event"] == "upgrade_not_ready"
                && body["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with(&reason))
        })
    });

    let status = status_json(&home, &grpc.address);
    assert_eq!(status["next_upgrade"]["ready"], false);
    let problem = status["next_upgrade"]["problem"].as_str().unwrap();
    assert!(problem.starts_with(&reason), "{problem}");
    let text = home
        .cosmovisor(["status"])
        .env("DAEMON_GRPC_ADDRESS", &grpc.address)
        .run();
    text.stdout_contains(&format!(
        "next upgrade: v3 at height 1000 (chain plan): NOT READY: {reason}; fix: stage it"
    ));
    let out = doctor(&home, &grpc.address, None);
    out.assert_code(7).stdout_contains(&format!(
        "✗ scheduled upgrade v3 at height 1000 (chain plan) is NOT READY: {reason} — fix: stage it: cosmovisor add-upgrade v3"
    ));
    assert_eq!(home.events(), ["ready v1"]);
    drop(running);
}

#[test]
fn a_staged_binary_that_does_not_match_the_plans_checksum_is_not_ready() {
    let grpc_info = info_for("https://example.invalid/simd", &sha256(b"the real one"));
    let grpc = GrpcNode::start(Some(("v3", 1000, &grpc_info)));
    let home = home_running_v1();
    home.upgrade("v3", &upgraded_daemon("v3", &[0]));
    let status = status_json(&home, &grpc.address);
    let problem = status["next_upgrade"]["problem"].as_str().unwrap();
    assert!(
        problem.contains("does not match the plan's checksum (expected sha256:"),
        "{problem}"
    );
    doctor(&home, &grpc.address, None)
        .assert_code(7)
        .stdout_contains("does not match the plan's checksum");
}

#[test]
fn a_binary_for_another_architecture_is_not_ready() {
    let grpc = GrpcNode::start(Some(("v3", 1000, "")));
    let home = home_running_v1();
    stage_bytes(&home, &foreign_elf_header());
    let status = status_json(&home, &grpc.address);
    let problem = status["next_upgrade"]["problem"].as_str().unwrap();
    assert!(problem.contains("is not for this machine"), "{problem}");
    assert!(problem.contains("fix: stage the linux "), "{problem}");
    doctor(&home, &grpc.address, None)
        .assert_code(7)
        .stdout_contains("is not for this machine");
}

#[test]
fn a_binary_missing_a_shared_library_is_not_ready() {
    let grpc = GrpcNode::start(Some(("v3", 1000, "")));
    let home = home_running_v1();
    stage_bytes(&home, &fs::read("/bin/true").unwrap());
    let path = path_with_ldd_missing_a_library(&home.path().join("tools"));
    let out = home
        .cosmovisor(["status", "-o", "json"])
        .env("DAEMON_GRPC_ADDRESS", &grpc.address)
        .env("PATH", &path)
        .run();
    let status: Value = serde_json::from_slice(out.stdout().as_bytes()).unwrap();
    let problem = status["next_upgrade"]["problem"].as_str().unwrap();
    assert!(
        problem.contains("needs shared libraries that are not found: libwasmvm.x86_64.so"),
        "{problem}"
    );
    doctor(&home, &grpc.address, Some(&path))
        .assert_code(7)
        .stdout_contains("needs shared libraries that are not found: libwasmvm.x86_64.so");
}

#[test]
fn a_dead_download_url_is_not_ready_and_retried_without_disturbing_the_node() {
    let server = Server::start(Vec::new());
    let info = info_for(&server.url("/gone"), &sha256(b"x"));
    let grpc = GrpcNode::start(Some(("v3", 1000, &info)));
    let home = home_running_v1();
    let running = supervise(&home, &grpc.address, true);
    home.wait_for_event("ready v1");
    running.wait_for_log(
        "upgrade v3 at height 1000 is NOT READY: the binary could not be downloaded ahead:",
    );
    running.wait_for_log("HTTP 404");
    assert!(!home.upgrade_dir("v3").exists(), "{}", home.tree());
    assert_eq!(home.events(), ["ready v1"]);
    drop(running);
}

#[test]
fn a_cancelled_plan_is_dropped_and_its_staged_binary_stays() {
    let grpc = GrpcNode::start(Some(("v3", 1000, "")));
    let home = home_running_v1();
    home.upgrade("v3", &upgraded_daemon("v3", &[0]));
    let running = supervise(&home, &grpc.address, false);
    running.wait_for_log("upgrade v3 at height 1000 is ready");
    grpc.set(None);
    running.wait_for_log("upgrade v3 at height 1000 is no longer scheduled (chain plan); a binary staged for it stays");
    assert!(home.upgrade_dir("v3").join("bin/simd").exists());
    assert_eq!(
        status_json(&home, &grpc.address)["next_upgrade"],
        Value::Null
    );
    assert_eq!(home.events(), ["ready v1"]);
    drop(running);
}

#[test]
fn a_manual_upgrade_in_the_queue_is_scheduled_too() {
    let grpc = GrpcNode::start(None);
    let home = home_running_v1();
    fs::write(
        home.data().join("upgrade-info.json.batch"),
        r#"[{"name":"v4","height":2000,"info":""}]"#,
    )
    .unwrap();
    let status = status_json(&home, &grpc.address);
    assert_eq!(status["next_upgrade"]["name"], "v4");
    assert_eq!(status["next_upgrade"]["source"], "manual");
    assert_eq!(status["next_upgrade"]["ready"], false);
}

#[test]
fn grpc_down_is_one_warning_and_supervision_goes_on() {
    let grpc = GrpcNode::start(Some(("v3", 1000, "")));
    grpc.fail(true);
    let home = home_running_v1();
    home.upgrade("v3", &upgraded_daemon("v3", &[0]));
    let running = supervise(&home, &grpc.address, false);
    home.wait_for_event("ready v1");
    running.wait_for_log("cannot learn the chain's scheduled upgrade");
    wait_until("more checks", DEADLINE, || grpc.asked() >= 5);
    assert_eq!(
        running
            .stderr_so_far()
            .matches("cannot learn the chain's scheduled upgrade")
            .count(),
        1
    );
    grpc.fail(false);
    running.wait_for_log("the node's gRPC answers again");
    running.wait_for_log("upgrade v3 at height 1000 is ready");
    // The halt still works as ever.
    home.write_plan("v3", 1000);
    home.wait_for_event("ready v3");
    drop(running);
}

#[test]
fn the_plan_check_can_be_turned_off() {
    let grpc = GrpcNode::start(Some(("v3", 1000, "")));
    let home = home_running_v1();
    fs::write(
        home.data().join("upgrade-info.json.batch"),
        r#"[{"name":"v4","height":2000,"info":""}]"#,
    )
    .unwrap();
    let out = home
        .cosmovisor(["status", "-o", "json"])
        .env("DAEMON_GRPC_ADDRESS", &grpc.address)
        .env("COSMOVISOR_PLAN_CHECK_INTERVAL", "off")
        .run();
    let status: Value = serde_json::from_slice(out.stdout().as_bytes()).unwrap();
    // The chain is not asked; the manual queue still counts.
    assert_eq!(status["next_upgrade"]["name"], "v4", "{status}");
    assert_eq!(grpc.asked(), 0);
}

#[test]
fn systemd_status_shows_the_next_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let grpc = GrpcNode::start(Some(("v3", 1000, "")));
    let home = home_running_v1();
    let running = home
        .cosmovisor(["run", "start"])
        .env("DAEMON_GRPC_ADDRESS", &grpc.address)
        .env("COSMOVISOR_PLAN_CHECK_INTERVAL", FAST)
        .env("NOTIFY_SOCKET", &path)
        .spawn();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut wait_for = |wanted: &str| {
        wait_until(wanted, DEADLINE, || {
            if let Ok(n) = socket.recv(&mut buf) {
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            seen.iter().any(|m| m.contains(wanted))
        });
    };
    wait_for("STATUS=running simd (genesis); next upgrade v3 at 1000: NOT READY (binary ");
    home.upgrade("v3", &upgraded_daemon("v3", &[0]));
    wait_for("STATUS=running simd (genesis); next upgrade v3 at 1000: ready");
    drop(running);
}

#[test]
fn the_grafana_dashboard_is_json_and_shows_only_exported_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = fs::read_to_string(root.join("contrib/grafana/cosmovisor.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    assert!(
        dashboard["panels"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );
    let exported = fs::read_to_string(root.join("src/supervisor/metrics_endpoint.rs")).unwrap();
    for name in text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("cosmovisor_"))
    {
        assert!(
            exported.contains(&format!("\"{name}\"")),
            "{name} is not exported"
        );
    }
}

#[test]
fn the_eta_comes_from_the_nodes_block_times() {
    let grpc = GrpcNode::start(Some(("v3", 100_000, "")));
    let home = Home::new("panacead");
    home.mock(
        &home.genesis_dir(),
        &json!({"version": "v1", "block_time_ms": 50}),
    );
    let (rpc_port, metrics_port) = (free_port(), free_port());
    let rpc = format!("http://127.0.0.1:{rpc_port}");
    let running = home
        .cosmovisor([
            "run",
            "start",
            "--rpc.laddr",
            &format!("tcp://127.0.0.1:{rpc_port}"),
        ])
        .env("DAEMON_GRPC_ADDRESS", &grpc.address)
        .env("COSMOVISOR_PLAN_CHECK_INTERVAL", "100ms")
        .env("COSMOVISOR_NODE_RPC", &rpc)
        .env(
            "COSMOVISOR_METRICS_ADDR",
            format!("127.0.0.1:{metrics_port}"),
        )
        .spawn();
    let sample = |body: &str, prefix: &str| -> Option<f64> {
        body.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .and_then(|value| value.trim().parse().ok())
    };
    let mut found = None;
    wait_until("an ETA in the metrics", DEADLINE, || {
        let body = http_get(metrics_port, "/metrics").unwrap_or_default();
        found = sample(
            &body,
            "cosmovisor_scheduled_upgrade_eta_seconds{name=\"v3\"} ",
        )
        .zip(sample(&body, "cosmovisor_node_height "));
        found.is_some()
    });
    let (eta, height) = found.unwrap();
    // 50 ms blocks (a busy machine makes them slower, never faster).
    let at_block_time = (100_000.0 - height) * 0.05;
    assert!(
        eta >= at_block_time * 0.8 && eta <= at_block_time * 4.0,
        "ETA {eta}s at height {height}, {at_block_time}s at 50 ms a block"
    );
    let out = home
        .cosmovisor(["status"])
        .env("DAEMON_GRPC_ADDRESS", &grpc.address)
        .env("COSMOVISOR_NODE_RPC", &rpc)
        .run();
    out.stdout_contains("next upgrade: v3 at height 100000 (chain plan), in ~");
    drop(running);
}

/// Stages what `stage` writes for v3, runs the supervisor with the plan on chain, and checks that
/// the log, the metrics and the webhook all give the reason containing `reason`.
fn not_ready_everywhere(
    info: &str,
    download: bool,
    path: Option<&str>,
    stage: impl FnOnce(&Home),
    reason: &str,
) {
    let grpc = GrpcNode::start(Some(("v3", 1000, info)));
    let home = home_running_v1();
    stage(&home);
    let port = free_port();
    let hook = crate::webhook::Receiver::start(false);
    let mut command = home
        .cosmovisor(["run", "start"])
        .env("DAEMON_GRPC_ADDRESS", &grpc.address)
        .env("COSMOVISOR_PLAN_CHECK_INTERVAL", FAST)
        .env("COSMOVISOR_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("COSMOVISOR_WEBHOOK_URL", &hook.url)
        .env(
            "DAEMON_ALLOW_DOWNLOAD_BINARIES",
            if download { "true" } else { "false" },
        );
    if let Some(path) = path {
        command = command.env("PATH", path);
    }
    let running = command.spawn();
    home.wait_for_event("ready v1");
    running.wait_for_log("upgrade v3 at height 1000 is NOT READY: ");
    wait_until("the reason in the log", DEADLINE, || {
        running
            .stderr_so_far()
            .lines()
            .any(|line| line.contains("is NOT READY: ") && line.contains(reason))
    });
    wait_until("not ready in the metrics", DEADLINE, || {
        http_get(port, "/metrics")
            .is_some_and(|body| body.contains("cosmovisor_scheduled_upgrade_ready{name=\"v3\"} 0"))
    });
    wait_until("the reason in the webhook", DEADLINE, || {
        hook.bodies().iter().any(|body| {
            body["event"] == "upgrade_not_ready"
                && body["detail"].as_str().is_some_and(|d| d.contains(reason))
        })
    });
    assert_eq!(home.events(), ["ready v1"], "the node was never stopped");
    drop(running);
}

/// `PATH` with, first, an `ldd` in `tools` that reports what glibc's does for a missing
/// libwasmvm.
fn path_with_ldd_missing_a_library(tools: &std::path::Path) -> String {
    fs::create_dir_all(tools).unwrap();
    let ldd = tools.join("ldd");
    fs::write(
        &ldd,
        "#!/bin/sh\nprintf '\\tlinux-vdso.so.1 (0x0)\\n\\tlibwasmvm.x86_64.so => not found\\n'\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(&ldd, fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        tools.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn stage_bytes(home: &Home, bytes: &[u8]) {
    let bin = home.upgrade_dir("v3").join("bin/simd");
    fs::create_dir_all(bin.parent().unwrap()).unwrap();
    fs::write(&bin, bytes).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn each_not_ready_reason_reaches_the_log_the_metrics_and_the_webhook() {
    // Checksum mismatch.
    let info = info_for("https://example.invalid/simd", &sha256(b"the real one"));
    not_ready_everywhere(
        &info,
        false,
        None,
        |home| stage_bytes(home, b"#!/bin/sh\nexit 0\n"),
        "does not match the plan's checksum",
    );
    // Another architecture.
    let header = foreign_elf_header();
    not_ready_everywhere(
        "",
        false,
        None,
        |home| stage_bytes(home, &header),
        "is not for this machine",
    );
    // A shared library `ldd` does not find.
    let tools = tempfile::tempdir().unwrap();
    let path = path_with_ldd_missing_a_library(tools.path());
    not_ready_everywhere(
        "",
        false,
        Some(&path),
        |home| stage_bytes(home, &fs::read("/bin/true").unwrap()),
        "needs shared libraries that are not found: libwasmvm.x86_64.so",
    );
    // A dead download URL.
    let server = Server::start(Vec::new());
    let info = info_for(&server.url("/gone"), &sha256(b"x"));
    not_ready_everywhere(
        &info,
        true,
        None,
        |_| {},
        "the binary could not be downloaded ahead",
    );
}
