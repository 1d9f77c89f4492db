//! Overlapped downloads: a `.tar.gz` is unpacked into the staging folder while its bytes still
//! arrive (and hashed on another thread), yet nothing reaches `upgrades/` before the checksum of
//! the whole body is verified; a mismatch found at the end removes what was unpacked.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use crate::download::{
    assert_download_fails, assert_nothing_staged, binaries, home_requesting, v2_script,
    with_downloads,
};
use crate::support::{DEADLINE, Home, read_request_head, sha256, tar, wait_until};

/// Serves `body` once: everything but the last `held_back` bytes, then the rest when the test
/// says so (or after the deadline, so a failing test never hangs).
struct GatedServer {
    url: String,
    release: mpsc::Sender<()>,
}

impl GatedServer {
    fn start(body: Vec<u8>, held_back: usize) -> GatedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!(
            "http://{}/simd.tar.gz",
            listener.local_addr().expect("addr")
        );
        let (release, released) = mpsc::channel();
        thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            if read_request_head(&mut stream).is_none() {
                return;
            }
            let split = body.len() - held_back;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body[..split]);
            let _ = stream.flush();
            let _ = released.recv_timeout(DEADLINE);
            let _ = stream.write_all(&body[split..]);
        });
        GatedServer { url, release }
    }
}

/// Incompressible bytes, so the compressed archive is as long as its content.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// A `.tar.gz` with the binary first, then 2 MiB of padding.
fn archive() -> Vec<u8> {
    let script = v2_script();
    let padding = noise(2 << 20);
    tar(
        &[
            ("bin/simd", script.as_slice(), 0o755),
            ("share/padding", padding.as_slice(), 0o644),
        ],
        true,
    )
}

/// The binary unpacked into a staging folder under `upgrades/` (not `upgrades/v2/`).
fn unpacked_in_staging(home: &Home) -> Option<PathBuf> {
    let upgrades = home.root().join("upgrades");
    std::fs::read_dir(&upgrades)
        .ok()?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with('.'))
        .map(|entry| entry.path())
        .find_map(|staging| find_file(&staging, "simd"))
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let path = entry.path();
        if entry.file_type().ok()?.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if entry.file_name() == name {
            return Some(path);
        }
    }
    None
}

#[test]
fn a_tar_gz_is_unpacked_while_it_arrives() {
    let body = archive();
    let checksum = sha256(&body);
    let server = GatedServer::start(body, 256 << 10);
    let url = format!("{}?checksum={checksum}", server.url);
    let home = home_requesting(&binaries(&[("any", url)]));
    let running = with_downloads(&home).spawn();
    wait_until(
        "the binary unpacked before the body ended",
        DEADLINE,
        || unpacked_in_staging(&home).is_some(),
    );
    assert!(
        !home.upgrade_dir("v2").exists(),
        "nothing is installed before the checksum is verified"
    );
    server.release.send(()).unwrap();
    home.wait_for_event("ready v2");
    running.signal(nix::sys::signal::Signal::SIGTERM);
    let out = running.wait();
    out.assert_code(0).stderr_contains("checksum verified");
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"), "{out}");
    assert_nothing_staged(&home);
}

#[test]
fn a_checksum_mismatch_at_the_end_removes_what_was_unpacked() {
    let body = archive();
    let wrong = sha256(b"another archive");
    let server = GatedServer::start(body, 256 << 10);
    let url = format!("{}?checksum={wrong}", server.url);
    let home = home_requesting(&binaries(&[("any", url.clone())]));
    let release = server.release.clone();
    let releaser = {
        let root = home.root();
        thread::spawn(move || {
            let home = Home::at(root.parent().unwrap(), "simd");
            wait_until(
                "the binary unpacked before the body ended",
                DEADLINE,
                || unpacked_in_staging(&home).is_some(),
            );
            release.send(()).unwrap();
        })
    };
    assert_download_fails(
        &home,
        &format!("checksum mismatch for {url}: expected {wrong}"),
    );
    releaser.join().unwrap();
}
