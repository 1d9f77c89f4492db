//! The optional Prometheus endpoint of `cosmovisor run` (`COSMOVISOR_METRICS_ADDR`): a tiny
//! HTTP/1.1 responder for `GET /metrics`, and the counters the supervisor updates.
//!
//! The supervisor owns the state and writes it through [`Metrics`] (atomics, so the server task
//! only ever reads); the server runs as one task on the supervisor's runtime, whose handle
//! ([`Server`]) aborts it when dropped. Values that can be read from the home at any time (the
//! version `current` points at, the pending plan and whether its binary is staged) are read at
//! scrape time rather than tracked, so they are never stale.
//!
//! Not a general HTTP server: one request per connection, `Connection: close`, requests larger
//! than 8 KiB or slower than 5 s are dropped.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::inventory;
use crate::layout::{self, Layout};

/// The largest request head we read.
const MAX_REQUEST: usize = 8 * 1024;
/// How long one client may take to send its request and read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the supervisor records; every field is a plain atomic.
#[derive(Debug, Default)]
pub struct Metrics {
    upgrades_total: AtomicU64,
    restarts_total: AtomicU64,
    last_exit_code: AtomicI64,
    daemon_up: AtomicBool,
    backup_duration_micros: AtomicU64,
    backup_bytes: AtomicU64,
}

impl Metrics {
    /// The daemon was started (`restart`: not its first start under this supervisor).
    pub fn daemon_started(&self, restart: bool) {
        self.daemon_up.store(true, Ordering::Relaxed);
        if restart {
            self.restarts_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The daemon exited with our mapped exit code (`128 + N` for signal N).
    pub fn daemon_exited(&self, code: u8) {
        self.daemon_up.store(false, Ordering::Relaxed);
        self.last_exit_code
            .store(i64::from(code), Ordering::Relaxed);
    }

    pub fn upgrade_done(&self) {
        self.upgrades_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn backup_done(&self, took: Duration, bytes: u64) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.backup_duration_micros.store(micros, Ordering::Relaxed);
        self.backup_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4) of everything, with the home's current
    /// version and pending plan read now.
    #[must_use]
    pub fn render(&self, layout: &Layout, recase: bool) -> String {
        let current = layout
            .current_dir()
            .map(|dir| inventory::version_name(layout, &dir))
            .unwrap_or_default();
        let applied = layout
            .current_dir()
            .map(|dir| crate::watcher::read_applied(&dir))
            .unwrap_or_default();
        let (pending_height, staged) = match inventory::pending_plan(layout, recase) {
            Ok(Some(plan)) if applied.is_superseded_by(&plan) => {
                let bin = layout.bin_in(&layout.upgrade_dir(&plan.name));
                (plan.height, layout::check_binary(&bin).is_ok())
            }
            _ => (0, false),
        };
        #[expect(
            clippy::cast_precision_loss,
            reason = "seconds as a float for Prometheus; microsecond precision is plenty"
        )]
        let backup_seconds =
            self.backup_duration_micros.load(Ordering::Relaxed) as f64 / 1_000_000.0;
        let mut out = String::with_capacity(2048);
        let version = crate::commands::version::VERSION;
        let rows: [(&str, &str, &str, String); 10] = [
            (
                "cosmovisor_info",
                "gauge",
                "Cosmovisor build information (always 1).",
                format!("{{version=\"{}\"}} 1", label(version)),
            ),
            (
                "cosmovisor_current_version_info",
                "gauge",
                "The version folder current points at: genesis or the upgrade name (always 1).",
                format!("{{version=\"{}\"}} 1", label(&current)),
            ),
            (
                "cosmovisor_pending_upgrade_height",
                "gauge",
                "Height of the plan in data/upgrade-info.json that is still to be applied (0: none).",
                format!(" {pending_height}"),
            ),
            (
                "cosmovisor_upgrade_binary_staged",
                "gauge",
                "1 when the pending plan's binary is in place and executable.",
                format!(" {}", u8::from(staged)),
            ),
            (
                "cosmovisor_upgrades_total",
                "counter",
                "Upgrades carried out by this cosmovisor.",
                format!(" {}", self.upgrades_total.load(Ordering::Relaxed)),
            ),
            (
                "cosmovisor_last_backup_duration_seconds",
                "gauge",
                "How long the last backup of data/ took.",
                format!(" {backup_seconds}"),
            ),
            (
                "cosmovisor_last_backup_bytes",
                "gauge",
                "Bytes copied by the last backup of data/.",
                format!(" {}", self.backup_bytes.load(Ordering::Relaxed)),
            ),
            (
                "cosmovisor_daemon_restarts_total",
                "counter",
                "Times the daemon was started again (after an upgrade).",
                format!(" {}", self.restarts_total.load(Ordering::Relaxed)),
            ),
            (
                "cosmovisor_daemon_last_exit_code",
                "gauge",
                "Exit code of the daemon's last run (128 + N for signal N).",
                format!(" {}", self.last_exit_code.load(Ordering::Relaxed)),
            ),
            (
                "cosmovisor_daemon_up",
                "gauge",
                "1 while the daemon runs.",
                format!(" {}", u8::from(self.daemon_up.load(Ordering::Relaxed))),
            ),
        ];
        for (name, kind, help, sample) in rows {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{sample}\n"
            );
        }
        out
    }
}

/// Escapes a label value (backslash, double quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The running endpoint; dropping it stops the server and every connection it serves.
pub struct Server {
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves `/metrics` on the current runtime.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    layout: Layout,
    recase: bool,
) -> std::io::Result<Server> {
    let listener = TcpListener::bind(addr).await?;
    info!(addr = %listener.local_addr()?, "serving metrics on /metrics");
    let task = tokio::spawn(async move {
        let mut clients = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let body = Arc::clone(&metrics);
                        let layout = layout.clone();
                        clients.spawn(async move {
                            let answer = tokio::time::timeout(
                                CLIENT_TIMEOUT,
                                answer(stream, &body, &layout, recase),
                            );
                            if let Ok(Err(err)) = answer.await {
                                debug!(error = %err, "metrics client failed");
                            }
                        });
                    }
                    Err(err) => {
                        warn!(error = %err, "cannot accept a metrics connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = clients.join_next(), if !clients.is_empty() => {}
            }
        }
    });
    Ok(Server { task })
}

async fn answer(
    mut stream: TcpStream,
    metrics: &Metrics,
    layout: &Layout,
    recase: bool,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
        if head.len() > MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "",
                false,
            )
            .await;
        }
    }
    let request_line = String::from_utf8_lossy(&head);
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let body = metrics.render(layout, recase);
            respond(&mut stream, "200 OK", &body, method == "HEAD").await
        }
        ("GET" | "HEAD", "/") => {
            respond(
                &mut stream,
                "200 OK",
                "cosmovisor: see /metrics\n",
                method == "HEAD",
            )
            .await
        }
        ("GET" | "HEAD", _) => respond(&mut stream, "404 Not Found", "not found\n", false).await,
        _ => respond(&mut stream, "405 Method Not Allowed", "", false).await,
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        out.push_str(body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_documented_metric() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path(), "simd");
        std::fs::create_dir_all(layout.genesis_dir()).unwrap();
        std::fs::create_dir_all(layout.data_dir()).unwrap();
        layout.set_current(&layout.genesis_dir()).unwrap();
        std::fs::write(layout.upgrade_info_file(), r#"{"name":"v2","height":42}"#).unwrap();
        let metrics = Metrics::default();
        metrics.daemon_started(false);
        metrics.daemon_exited(143);
        metrics.daemon_started(true);
        metrics.upgrade_done();
        metrics.backup_done(Duration::from_millis(1500), 1234);
        let text = metrics.render(&layout, true);
        for line in [
            "cosmovisor_current_version_info{version=\"genesis\"} 1",
            "cosmovisor_pending_upgrade_height 42",
            "cosmovisor_upgrade_binary_staged 0",
            "cosmovisor_upgrades_total 1",
            "cosmovisor_last_backup_duration_seconds 1.5",
            "cosmovisor_last_backup_bytes 1234",
            "cosmovisor_daemon_restarts_total 1",
            "cosmovisor_daemon_last_exit_code 143",
            "cosmovisor_daemon_up 1",
            "# TYPE cosmovisor_upgrades_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(text.contains("cosmovisor_info{version=\"v"));
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
