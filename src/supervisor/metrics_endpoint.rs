//! The optional Prometheus endpoint of `cosmovisor run` (`COSMOVISOR_METRICS_ADDR`): an HTTP/1.1
//! server (hyper) for `GET /metrics` and the text it answers ([`render`]).
//!
//! The event stream (`events.rs`) writes the counters through [`Metrics`] (`metrics.rs`;
//! atomics, so the server task only ever reads them); the server runs as one task on the supervisor's runtime, whose handle
//! ([`Server`]) aborts it, and every connection, when dropped. Values that can be read from the
//! home at any time (the version `current` points at, the pending plan and whether its binary is
//! staged) are read at scrape time rather than tracked, so they are never stale.
//!
//! Anyone who can reach the port is untrusted (docs/design.md "Trust boundaries"), so the endpoint
//! can never cost the node more than a bounded share of its resources: at most [`MAX_CONNECTIONS`]
//! connections are open (an excess connection is closed as soon as it is accepted, so a flood holds
//! no descriptors), a request head must arrive within [`HEADER_TIMEOUT`] and fit in [`MAX_REQUEST`]
//! bytes, a connection lives at most [`CONNECTION_TIMEOUT`] and serves one request, and the files
//! read for a scrape are read with a size cap on the blocking pool (at most [`MAX_RENDERS`]
//! threads), never on the runtime thread that forwards signals.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::home::binary;
use crate::home::inventory;
use crate::home::layout::Layout;
use crate::metrics::{Counters, Metrics, Outlook, UpgradeOutlook};

/// Connections served at once; one more is closed as soon as it is accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// The longest request head we read (hyper's smallest buffer).
pub const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request head, from the moment it connects.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one connection may last in all, reading the answer included.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapes rendered at once on the blocking pool; a slot is held until the render returns, so
/// a read that hangs can never take more than these threads.
pub const MAX_RENDERS: usize = 4;
/// How long the accept loop pauses after a failed accept (out of descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The Prometheus text exposition (format 0.0.4) of everything, with the home's current
/// version and pending plan read now.
#[must_use]
pub fn render(metrics: &Metrics, layout: &Layout, recase: bool) -> String {
    let counters = metrics.snapshot();
    // `current` resolved once, so the version and its applied plan come from the same folder.
    let current_dir = layout.current_dir().ok();
    let current = current_dir
        .as_ref()
        .map(|dir| inventory::version_name(layout, dir))
        .unwrap_or_default();
    let applied = current_dir
        .as_ref()
        .map(|dir| crate::home::plan::read_applied(dir))
        .unwrap_or_default();
    let (pending_height, staged) = match inventory::pending_plan(layout, recase) {
        Ok(Some(plan)) if applied.is_superseded_by(&plan) => {
            let bin = layout.bin_in(&layout.upgrade_dir(&plan.name));
            (plan.height, binary::check_binary(&bin).is_ok())
        }
        _ => (0, false),
    };
    #[expect(
        clippy::cast_precision_loss,
        reason = "seconds as a float for Prometheus; microsecond precision is plenty"
    )]
    let backup_seconds = counters.backup_duration_micros as f64 / 1_000_000.0;
    let mut out = String::with_capacity(2048);
    let version = crate::VERSION;
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
            format!(" {}", counters.upgrades_total),
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
            format!(" {}", counters.backup_bytes),
        ),
        (
            "cosmovisor_daemon_restarts_total",
            "counter",
            "Times the daemon was started again (after an upgrade).",
            format!(" {}", counters.restarts_total),
        ),
        (
            "cosmovisor_daemon_last_exit_code",
            "gauge",
            "Exit code of the daemon's last run (128 + N for signal N).",
            format!(" {}", counters.last_exit_code),
        ),
        (
            "cosmovisor_daemon_up",
            "gauge",
            "1 while the daemon runs.",
            format!(" {}", u8::from(counters.daemon_up)),
        ),
    ];
    for (name, kind, help, sample) in rows {
        write_row(&mut out, name, kind, help, &sample);
    }
    render_supervisor(&counters, &mut out, layout);
    render_outlook(&metrics.outlook(), &mut out);
    out
}

/// The outlook task's findings: the scheduled upgrades, their readiness and ETA, the node's height
/// (README "Before the upgrade").
fn render_outlook(outlook: &Outlook, out: &mut String) {
    let rows = |sample: &dyn Fn(&UpgradeOutlook) -> Option<String>| {
        outlook
            .upgrades
            .iter()
            .filter_map(sample)
            .collect::<Vec<_>>()
    };
    let heights = rows(&|u| {
        Some(format!(
            "{{name=\"{}\",source=\"{}\"}} {}",
            label(&u.name),
            u.source,
            u.height
        ))
    });
    let ready = rows(&|u| {
        Some(format!(
            "{{name=\"{}\"}} {}",
            label(&u.name),
            u8::from(u.problem.is_none())
        ))
    });
    let etas = rows(&|u| {
        u.eta_seconds
            .map(|eta| format!("{{name=\"{}\"}} {eta}", label(&u.name)))
    });
    let node = outlook
        .node_height
        .map(|height| vec![format!(" {height}")])
        .unwrap_or_default();
    for (name, help, samples) in [
        (
            "cosmovisor_scheduled_upgrade_height",
            "Height of an upgrade scheduled on chain (gRPC CurrentPlan) or in the manual queue.",
            heights,
        ),
        (
            "cosmovisor_scheduled_upgrade_ready",
            "1 when the scheduled upgrade's binary is staged and passes every check.",
            ready,
        ),
        (
            "cosmovisor_scheduled_upgrade_eta_seconds",
            "Seconds until the scheduled upgrade's height, from the node's block time (when known).",
            etas,
        ),
        (
            "cosmovisor_node_height",
            "The node's latest block height, from its authenticated RPC.",
            node,
        ),
    ] {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n");
        for sample in samples {
            let _ = writeln!(out, "{name}{sample}");
        }
    }
}

/// The metrics alert rules need about the supervisor itself and an upgrade under way (whose
/// sample exists only while the journal does).
fn render_supervisor(counters: &Counters, out: &mut String, layout: &Layout) {
    write_row(
        out,
        "cosmovisor_start_time_seconds",
        "gauge",
        "When this cosmovisor started (Unix time); a change is a restart.",
        &format!(" {}", counters.start_time_seconds),
    );
    write_row(
        out,
        "cosmovisor_download_enabled",
        "gauge",
        "1 when DAEMON_ALLOW_DOWNLOAD_BINARIES lets cosmovisor fetch an upgrade's binary.",
        &format!(" {}", u8::from(counters.download_enabled)),
    );
    let phase = upgrade_phase(layout).map(|(upgrade, phase, since)| {
        format!("{{name=\"{}\",phase=\"{phase}\"}} {since}", label(&upgrade))
    });
    write_row(
        out,
        "cosmovisor_upgrade_phase_timestamp_seconds",
        "gauge",
        "While an upgrade is under way: when it reached its phase (Unix time).",
        phase.as_deref().unwrap_or_default(),
    );
}

/// One metric in the text exposition: its help, its type and one sample (`sample` starts with
/// its labels or a space; empty: no sample).
fn write_row(out: &mut String, name: &str, kind: &str, help: &str, sample: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    if !sample.is_empty() {
        let _ = writeln!(out, "{name}{sample}");
    }
}

/// The upgrade the journal records (name, phase, when the journal was last written), if one is
/// under way.
fn upgrade_phase(layout: &Layout) -> Option<(String, &'static str, u64)> {
    let path = layout.journal_file();
    let bytes = crate::bounded_read::read_capped(&path, crate::bounded_read::DOCUMENT_CAP).ok()?;
    let journal: crate::upgrade::journal::Journal = serde_json::from_slice(&bytes).ok()?;
    let since = std::fs::metadata(&path)
        .and_then(|meta| meta.modified())
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some((journal.plan.name, journal.phase.name(), since))
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

/// What every connection needs to answer a scrape.
#[derive(Clone)]
struct Scrape {
    metrics: Arc<Metrics>,
    layout: Layout,
    recase: bool,
    renders: Arc<Semaphore>,
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
    let scrape = Scrape {
        metrics,
        layout,
        recase,
        renders: Arc::new(Semaphore::new(MAX_RENDERS)),
    };
    Ok(Server {
        task: tokio::spawn(accept_loop(listener, scrape)),
    })
}

/// Accepts connections for ever, each served by its own task while a slot is free. Each kind
/// of trouble (out of slots, failing accepts) is logged once until it clears.
async fn accept_loop(listener: TcpListener, scrape: Scrape) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut clients = JoinSet::new();
    let mut refusing = false;
    let mut failing = false;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    failing = false;
                    let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                        drop(stream);
                        if !refusing {
                            warn!(%peer, limit = MAX_CONNECTIONS, "too many metrics connections; closing new ones until some end");
                            refusing = true;
                        }
                        continue;
                    };
                    refusing = false;
                    let scrape = scrape.clone();
                    clients.spawn(async move {
                        serve_connection(stream, scrape).await;
                        drop(slot);
                    });
                }
                Err(err) => {
                    if !failing {
                        warn!(error = %err, "cannot accept a metrics connection; retrying");
                        failing = true;
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, scrape: Scrape) {
    let service = service_fn(move |request| {
        let scrape = scrape.clone();
        async move { Ok::<_, Infallible>(answer(&request, scrape).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(false)
        .max_buf_size(MAX_REQUEST)
        .title_case_headers(true)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => debug!(error = %err, "metrics client failed"),
        Err(_) => debug!("metrics client cut off after {CONNECTION_TIMEOUT:?}"),
    }
}

async fn answer(request: &Request<Incoming>, scrape: Scrape) -> Response<String> {
    let method = request.method();
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, String::new());
    }
    match request.uri().path() {
        "/metrics" => {
            let Ok(slot) = Arc::clone(&scrape.renders).try_acquire_owned() else {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy: other scrapes are being answered\n".to_owned(),
                );
            };
            let rendered = tokio::task::spawn_blocking(move || {
                let body = render(&scrape.metrics, &scrape.layout, scrape.recase);
                drop(slot);
                body
            })
            .await;
            match rendered {
                Ok(body) => text(StatusCode::OK, body),
                Err(err) => {
                    warn!(error = %err, "cannot render the metrics");
                    text(StatusCode::INTERNAL_SERVER_ERROR, String::new())
                }
            }
        }
        "/" => text(StatusCode::OK, "cosmovisor: see /metrics\n".to_owned()),
        _ => text(StatusCode::NOT_FOUND, "not found\n".to_owned()),
    }
}

/// A plain-text answer (hyper adds `Content-Length`, `Connection: close`, and leaves the body
/// out for `HEAD`).
fn text(status: StatusCode, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
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
        metrics.supervisor_started(true);
        metrics.daemon_started(false);
        metrics.daemon_exited(143);
        metrics.daemon_started(true);
        metrics.upgrade_done();
        metrics.backup_done(Duration::from_millis(1500), 1234);
        let text = render(&metrics, &layout, true);
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
            "cosmovisor_download_enabled 1",
            "# TYPE cosmovisor_upgrades_total counter",
            "# TYPE cosmovisor_upgrade_phase_timestamp_seconds gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(
            !text.contains("cosmovisor_start_time_seconds 0\n"),
            "{text}"
        );
        assert!(
            !text.contains("cosmovisor_upgrade_phase_timestamp_seconds{"),
            "no upgrade under way: {text}"
        );
        let plan = crate::home::plan::parse(br#"{"name":"v2","height":42}"#, true).unwrap();
        crate::upgrade::steps::Upgrade::decide(&plan, &layout).unwrap();
        let text = render(&metrics, &layout, true);
        assert!(
            text.contains(
                "\ncosmovisor_upgrade_phase_timestamp_seconds{name=\"v2\",phase=\"stopped\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("cosmovisor_info{version=\"v"));
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    /// Serves `layout` on a runtime of its own thread; returns the address.
    fn spawn_server(layout: Layout) -> SocketAddr {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap();
        let (started, ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let _server = serve(addr, Arc::default(), layout, true).await.unwrap();
                started.send(()).unwrap();
                std::future::pending::<()>().await;
            });
        });
        ready.recv_timeout(Duration::from_secs(10)).unwrap();
        addr
    }

    /// Sends `request` and reads the whole answer (at most 5 s).
    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        use std::io::{Read, Write};

        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        // The server may answer and close before a large request is fully sent.
        let _ = client.write_all(request);
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }

    fn home() -> (tempfile::TempDir, Layout) {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path(), "simd");
        std::fs::create_dir_all(layout.genesis_dir()).unwrap();
        std::fs::create_dir_all(layout.data_dir()).unwrap();
        layout.set_current(&layout.genesis_dir()).unwrap();
        (tmp, layout)
    }

    /// A FIFO at `data/upgrade-info.json` (nobody writing it) must neither freeze the runtime
    /// that serves the endpoint nor the scrape: the plan is read non-blocking, off that thread.
    #[test]
    fn a_fifo_plan_file_does_not_block_a_scrape() {
        let (_tmp, layout) = home();
        nix::unistd::mkfifo(&layout.upgrade_info_file(), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let addr = spawn_server(layout);
        let answer = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(
            answer.contains("\ncosmovisor_pending_upgrade_height 0\n"),
            "{answer}"
        );
    }

    #[test]
    fn answers_head_other_methods_and_oversized_requests() {
        let (_tmp, layout) = home();
        let addr = spawn_server(layout);
        let head = exchange(addr, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4"),
            "{head}"
        );
        assert!(head.ends_with("\r\n\r\n"), "no body for HEAD: {head}");
        let post = exchange(
            addr,
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        let missing = exchange(addr, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
        let mut huge = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
        huge.resize(huge.len() + 2 * MAX_REQUEST, b'a');
        huge.extend_from_slice(b"\r\n\r\n");
        let refused = exchange(addr, &huge);
        assert!(
            refused.is_empty() || refused.starts_with("HTTP/1.1 431 "),
            "{refused}"
        );
    }
}
