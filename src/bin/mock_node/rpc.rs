//! `--rpc.laddr`: `CometBFT`'s `GET /status`, node ID and height only.

use std::fmt::Write as _;
use std::fs::{self};
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::OrDie;

/// The node's ID from `<home>/config/node_key.json`, which is written first
/// when missing (as `CometBFT` does on its first start): 64 bytes whose last 32
/// stand for the ed25519 public key; the ID is the hex of the first 20 bytes
/// of their SHA-256.
pub(crate) fn node_id(home: &Path) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let path = home.join("config/node_key.json");
    let engine = base64::engine::general_purpose::STANDARD;
    let value = fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|key| key["priv_key"]["value"].as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            let seed = sha2::Sha512::digest(home.as_os_str().as_encoded_bytes());
            let value = engine.encode(seed);
            let key = format!(
                "{{\"priv_key\":{{\"type\":\"tendermint/PrivKeyEd25519\",\"value\":\"{value}\"}}}}"
            );
            fs::create_dir_all(home.join("config")).or_die("creating config/");
            fs::write(&path, key).or_die(format_args!("writing {}", path.display()));
            value
        });
    let raw = engine
        .decode(value)
        .or_die(format_args!("decoding {}", path.display()));
    let public = raw.get(32..).unwrap_or_default();
    sha2::Sha256::digest(public)[..20]
        .iter()
        .fold(String::new(), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// Answers `GET /status` on `laddr` (`tcp://ip:port`) from a thread, one
/// request per connection, with the node's ID and last committed height.
pub(crate) fn serve_rpc(
    laddr: &str,
    id: String,
    committed: Arc<AtomicU64>,
    committed_at: Arc<AtomicU64>,
) {
    let addr = laddr.strip_prefix("tcp://").unwrap_or(laddr);
    let listener = TcpListener::bind(addr).or_die(format_args!("binding --rpc.laddr {laddr}"));
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let at = committed_at.load(Ordering::SeqCst);
            answer_status(stream, &id, committed.load(Ordering::SeqCst), at);
        }
    });
}

pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `2026-12-07T02:47:07.123Z`, as `CometBFT` writes block times.
pub(crate) fn rfc3339_millis(millis: u64) -> String {
    i64::try_from(millis)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

pub(crate) fn answer_status(mut stream: TcpStream, id: &str, height: u64, at_millis: u64) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 << 10 {
        match io::Read::read(&mut stream, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let (status, body) = if request.starts_with(b"GET /status ") {
        let body = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":-1,\"result\":{{\"node_info\":{{\"id\":\"{id}\"}},\"sync_info\":{{\"latest_block_height\":\"{height}\",\"latest_block_time\":\"{}\",\"catching_up\":false}}}}}}",
            rfc3339_millis(at_millis)
        );
        ("200 OK", body)
    } else {
        ("404 Not Found", String::from("{}"))
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
