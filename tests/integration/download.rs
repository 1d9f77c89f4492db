//! Downloads of the upgrade binary from a loopback HTTP server: formats, checksums, platforms,
//! failures that leave nothing behind, and hostile archives. Overlapped downloads (the end of this
//! file): a `.tar.gz` is unpacked into the staging folder while its bytes still arrive (and hashed
//! on another thread), yet nothing reaches `upgrades/` before the checksum of the whole body is
//! verified; a mismatch found at the end removes what was unpacked.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use crate::support::{
    DEADLINE, FakeDaemon, Home, RefusingPort, Server, platform, read_request_head, sha256, tar,
    wait_until, zip,
};

/// The new version's binary: answers pre-upgrade, records its `LD_LIBRARY_PATH`, runs until
/// stopped.
pub fn v2_script() -> Vec<u8> {
    FakeDaemon::new()
        .pre_upgrade("v2", &[0])
        .raw(r#"printf 'ld %s\n' "${LD_LIBRARY_PATH:-}" >> "$DAEMON_HOME/events""#)
        .ready("v2")
        .block()
        .script()
        .into_bytes()
}

/// A home whose genesis daemon asks for upgrade `v2` with `info`.
pub fn home_requesting(info: &str) -> Home {
    let home = Home::new("simd");
    let info = info.replace('\\', "\\\\").replace('"', "\\\"");
    home.genesis(&FakeDaemon::new().ready("v1").raw(&format!(
        r#"printf '%s' '{{"name":"v2","time":"0001-01-01T00:00:00Z","height":30,"info":"{info}"}}' > "$DAEMON_HOME/data/upgrade-info.json""#
    )).block());
    home
}

pub fn binaries(entries: &[(&str, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::json!({ "binaries": map }).to_string()
}

pub fn with_downloads(home: &Home) -> crate::support::Cosmovisor {
    home.cosmovisor(["run", "start"])
        .env("DAEMON_ALLOW_DOWNLOAD_BINARIES", "true")
}

/// Runs until v2 is ready, stops it, and checks the switch.
fn assert_upgraded(home: &Home) {
    let out = with_downloads(home).stop_after(home, "ready v2");
    out.assert_code(0)
        .stderr_contains("downloading binary complete");
    assert_eq!(home.current_target(), PathBuf::from("upgrades/v2"), "{out}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata(home.upgrade_dir("v2").join("bin/simd"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o755, "{out}");
    assert_nothing_staged(home);
}

/// No staging folder is left under upgrades/.
pub fn assert_nothing_staged(home: &Home) {
    let leftovers: Vec<String> = fs::read_dir(home.root().join("upgrades"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "staging left behind: {leftovers:?}\n{}",
        home.tree()
    );
}

/// Runs and expects the download to fail: exit 5, the error naming `needle`, no upgrades/v2.
pub fn assert_download_fails(home: &Home, needle: &str) -> crate::support::Output {
    let out = with_downloads(home).run();
    out.assert_code(5);
    assert_eq!(out.errors().len(), 1, "{out}");
    assert!(
        out.errors()[0].contains(needle),
        "error lacks {needle:?}\n{out}"
    );
    assert!(
        !home.upgrade_dir("v2").exists(),
        "nothing is installed\n{out}"
    );
    assert_nothing_staged(home);
    assert_eq!(home.current_target(), PathBuf::from("genesis"));
    assert!(
        home.backups().is_empty(),
        "no backup before the binary is there"
    );
    out
}

#[test]
fn tar_gz_with_bin_folder_and_checksum() {
    let archive = tar(&[("bin/simd", &v2_script(), 0o755)], true);
    let server = Server::start(vec![("/v2.tar.gz".into(), archive.clone())]);
    let url = format!("{}?checksum={}", server.url("/v2.tar.gz"), sha256(&archive));
    let home = home_requesting(&binaries(&[(&platform(), url)]));
    assert_upgraded(&home);
}

#[test]
fn zip_with_one_file_at_the_root_via_any() {
    let archive = zip(&[("simd", &v2_script())]);
    let server = Server::start(vec![("/v2.zip".into(), archive)]);
    let home = home_requesting(&binaries(&[("any", server.url("/v2.zip"))]));
    assert_upgraded(&home);
}

#[test]
fn raw_binary_via_any() {
    let server = Server::start(vec![("/simd".into(), v2_script())]);
    let home = home_requesting(&binaries(&[("any", server.url("/simd"))]));
    assert_upgraded(&home);
}

#[test]
fn nested_folder_with_lib_is_put_on_the_library_path() {
    let archive = tar(
        &[
            ("panacea-v2/bin/simd", &v2_script(), 0o755),
            ("panacea-v2/lib/libwasmvm.x86_64.so", b"\x7fELF fake", 0o644),
        ],
        true,
    );
    let server = Server::start(vec![("/release.tgz".into(), archive)]);
    let home = home_requesting(&binaries(&[("any", server.url("/release.tgz"))]));
    assert_upgraded(&home);
    let lib = home.upgrade_dir("v2").join("lib");
    assert!(lib.join("libwasmvm.x86_64.so").is_file());
    let ld = home
        .events()
        .into_iter()
        .find(|e| e.starts_with("ld "))
        .unwrap_or_default();
    assert!(ld.starts_with(&format!("ld {}", lib.display())), "{ld}");
}

#[test]
fn reference_url_plan_with_checksum() {
    let binary = v2_script();
    let server = Server::start(vec![("/simd-v2".into(), binary.clone())]);
    let document = binaries(&[(
        &platform(),
        format!("{}?checksum={}", server.url("/simd-v2"), sha256(&binary)),
    )]);
    let docs = Server::start(vec![("/v2.json".into(), document.clone().into_bytes())]);
    let info = format!(
        "{}?checksum={}",
        docs.url("/v2.json"),
        sha256(document.as_bytes())
    );
    let home = home_requesting(&info);
    assert_upgraded(&home);
}

#[test]
fn wrong_checksum_leaves_nothing() {
    let binary = v2_script();
    let server = Server::start(vec![("/simd".into(), binary)]);
    let wrong = sha256(b"something else");
    let url = format!("{}?checksum={wrong}", server.url("/simd"));
    let home = home_requesting(&binaries(&[("any", url.clone())]));
    let out = assert_download_fails(
        &home,
        &format!("checksum mismatch for {url}: expected {wrong}"),
    );
    out.stderr_contains("download failed");
}

#[test]
fn missing_checksum_when_required() {
    let server = Server::start(vec![("/simd".into(), v2_script())]);
    let home = home_requesting(&binaries(&[("any", server.url("/simd"))]));
    let out = with_downloads(&home)
        .env("DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM", "true")
        .run();
    out.assert_code(5);
    assert!(out.errors()[0].contains("missing checksum"), "{out}");
    assert!(
        server.requested().is_empty(),
        "nothing is fetched without a checksum"
    );
    assert!(!home.upgrade_dir("v2").exists());
}

#[test]
fn not_found_names_the_url() {
    let server = Server::start(vec![]);
    let url = server.url("/nope.tar.gz");
    let home = home_requesting(&binaries(&[("any", url.clone())]));
    assert_download_fails(&home, &format!("cannot download {url}: HTTP 404"));
}

#[test]
fn unreachable_host_is_retried_then_fails() {
    let refusing = RefusingPort::bind();
    let url = format!("http://127.0.0.1:{}/simd", refusing.port);
    let home = home_requesting(&binaries(&[("any", url.clone())]));
    let out = assert_download_fails(&home, &format!("cannot download {url}"));
    out.stderr_contains("download failed, retrying");
}

#[test]
fn another_platforms_url_is_never_fetched() {
    let binary = v2_script();
    let server = Server::start(vec![("/mine".into(), binary)]);
    let other = if platform() == "linux/amd64" {
        "darwin/arm64"
    } else {
        "linux/amd64"
    };
    let home = home_requesting(&binaries(&[
        (&platform(), server.url("/mine")),
        (other, server.url("/broken-other-platform")),
    ]));
    assert_upgraded(&home);
    assert_eq!(server.requested(), vec!["/mine".to_owned()]);
}

#[test]
fn no_entry_for_this_platform_fails_clearly() {
    let home = home_requesting(&binaries(&[(
        "plan9/mips",
        "http://127.0.0.1:1/x".to_owned(),
    )]));
    assert_download_fails(&home, &format!("neither {}, nor any", platform()));
}

#[test]
fn tar_slip_is_refused() {
    let archive = tar(
        &[
            ("bin/simd", &v2_script(), 0o755),
            ("../../escaped", b"evil", 0o644),
        ],
        true,
    );
    let server = Server::start(vec![("/evil.tar.gz".into(), archive)]);
    let home = home_requesting(&binaries(&[("any", server.url("/evil.tar.gz"))]));
    assert_download_fails(&home, "../../escaped");
    assert!(!home.path().join("escaped").exists() && !home.root().join("escaped").exists());
}

#[test]
fn zip_slip_is_refused() {
    let archive = zip(&[("simd", &v2_script()), ("../../../zipped-out", b"evil")]);
    let server = Server::start(vec![("/evil.zip".into(), archive)]);
    let home = home_requesting(&binaries(&[("any", server.url("/evil.zip"))]));
    assert_download_fails(&home, "zipped-out");
    assert!(!home.path().join("zipped-out").exists());
}

#[test]
fn archive_without_the_binary_is_refused() {
    let archive = tar(&[("bin/otherd", &v2_script(), 0o755)], true);
    let server = Server::start(vec![("/wrong.tar.gz".into(), archive)]);
    let home = home_requesting(&binaries(&[("any", server.url("/wrong.tar.gz"))]));
    assert_download_fails(&home, "does not contain bin/simd or simd");
}

/// The first start's download fails: the server sends another archive than the one the plan's
/// checksum names, after it was unpacked into the staging folder. Cosmovisor exits 5 with
/// nothing staged and `current` unchanged; once the server sends the right archive, the next
/// start downloads it and upgrades.
#[test]
fn a_failed_download_is_retried_cleanly_on_the_next_start() {
    let archive = tar(&[("bin/simd", &v2_script(), 0o755)], true);
    let other = tar(&[("bin/simd", b"#!/bin/sh\nexit 1\n", 0o755)], true);
    let server = Server::start(vec![("/v2.tar.gz".into(), other)]);
    let url = format!("{}?checksum={}", server.url("/v2.tar.gz"), sha256(&archive));
    let home = home_requesting(&binaries(&[("any", url.clone())]));
    assert_download_fails(&home, &format!("checksum mismatch for {url}"));
    server.serve("/v2.tar.gz", archive);
    assert_upgraded(&home);
    assert_eq!(
        server.requested(),
        ["/v2.tar.gz", "/v2.tar.gz"],
        "one download per start"
    );
}

/// A staging folder a crashed download left behind does not block the next one.
#[test]
fn staging_left_by_a_crashed_download_is_cleared() {
    let archive = tar(&[("bin/simd", &v2_script(), 0o755)], true);
    let server = Server::start(vec![("/v2.tar.gz".into(), archive)]);
    let home = home_requesting(&binaries(&[("any", server.url("/v2.tar.gz"))]));
    fs::create_dir_all(home.root().join("upgrades/.v2.download-1/bin")).unwrap();
    fs::write(
        home.root().join("upgrades/.v2.download-1/bin/simd"),
        "partial",
    )
    .unwrap();
    assert_upgraded(&home);
}

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
