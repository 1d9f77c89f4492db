//! Hostile downloads (docs/design.md "Trust boundaries"): servers that announce or send too much,
//! trickle or stall, `file://` sources that are FIFOs or devices, SIGTERM in the middle of a
//! download or an unpack, archives that lie about sizes, hold 100 000 entries or link out of the
//! version folder, "binaries" that this machine cannot execute, and credentials in URLs.

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::download::{
    assert_download_fails, assert_nothing_staged, binaries, home_requesting, v2_script,
    with_downloads,
};
use crate::support::{
    DEADLINE, FakeDaemon, Home, RefusingPort, Server, foreign_elf_header, read_request_head,
    sha256, wait_until,
};

/// A loopback server that reads each request's head and hands the connection to `respond`, one
/// thread per connection (so a stalled answer never blocks the client's retry).
struct Hostile {
    base: String,
    requests: Arc<AtomicUsize>,
}

impl Hostile {
    fn start(respond: impl Fn(&mut TcpStream) + Send + Sync + 'static) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&requests);
        let respond = Arc::new(respond);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let respond = Arc::clone(&respond);
                let seen = Arc::clone(&seen);
                thread::spawn(move || {
                    if read_request_head(&mut stream).is_none() {
                        return;
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    respond(&mut stream);
                });
            }
        });
        Hostile { base, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Keeps a connection open without sending anything more (the client gives up first).
fn hold() {
    thread::sleep(Duration::from_secs(120));
}

/// Sends `total` bytes of `x` in 64 KiB pieces after a header without a length, then holds the
/// connection: "endless" as far as any sane cap is concerned, bounded so that a cosmovisor
/// without a cap cannot fill the test machine's disk.
fn endless_body(stream: &mut TcpStream, total: usize) {
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    let piece = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        if stream.write_all(&piece).is_err() {
            return;
        }
        sent += piece.len();
    }
    hold();
}

/// One byte every 200 ms, for as long as the client listens.
fn trickle(stream: &mut TcpStream) {
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
    for _ in 0..100_000 {
        if stream.write_all(b"#").is_err() {
            return;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// The staging folders (`upgrades/.v2.download-<pid>`) that exist right now.
fn staging(home: &Home) -> Vec<PathBuf> {
    fs::read_dir(home.root().join("upgrades"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(".v2.download-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What a SIGTERM in the middle of a download must leave: exit 143, nothing staged or
/// installed, `current` unchanged, no backup.
fn assert_interrupted_cleanly(home: &Home, out: &crate::support::Output) {
    out.assert_code(143);
    assert!(!home.upgrade_dir("v2").exists(), "nothing installed\n{out}");
    assert_nothing_staged(home);
    assert_eq!(home.current_target(), PathBuf::from("genesis"), "{out}");
    assert!(home.backups().is_empty(), "no backup\n{out}");
}

#[test]
fn a_content_length_over_the_cap_is_refused_before_the_body() {
    let server = Hostile::start(|stream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5368709120\r\n\r\n#!");
        hold();
    });
    let url = server.url("/simd");
    let home = home_requesting(&binaries(&[("any", url.clone())]));
    assert_download_fails(
        &home,
        &format!(
            "cannot download {url}: the server announces 5368709120 bytes, more than the 4 GiB limit for a binary or archive"
        ),
    );
}

#[test]
fn an_endless_reference_document_is_cut_at_its_cap_while_streaming() {
    let server = Hostile::start(|stream| endless_body(stream, 64 << 20));
    let url = server.url("/v2.json");
    let home = home_requesting(&url);
    assert_download_fails(
        &home,
        &format!(
            "cannot download {url}: it is larger than the 1 MiB limit for a reference document"
        ),
    );
}

#[test]
fn a_one_byte_per_second_server_fails_as_stalled() {
    let server = Hostile::start(trickle);
    let url = server.url("/simd");
    let home = home_requesting(&binaries(&[("any", url.clone())]));
    let out = with_downloads(&home)
        .env("COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT", "1s")
        .run();
    out.assert_code(5);
    let errors = out.errors();
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].contains(&format!(
            "cannot download {url}: stalled: fewer than 1 KiB arrived in 1s (COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT)"
        )),
        "{out}"
    );
    assert!(!home.upgrade_dir("v2").exists(), "{out}");
    assert_nothing_staged(&home);
}

#[test]
fn a_sub_second_idle_timeout_is_accepted() {
    let server = Hostile::start(|stream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
        hold();
    });
    let url = server.url("/simd");
    let home = home_requesting(&binaries(&[("any", url.clone())]));
    let out = with_downloads(&home)
        .env("COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT", "300ms")
        .run();
    out.assert_code(5);
    assert!(
        out.errors()[0].contains("fewer than 1 KiB arrived in 300ms"),
        "{out}"
    );
    assert_nothing_staged(&home);
}

#[test]
fn sigterm_ends_an_http_download_at_once() {
    let server = Hostile::start(trickle);
    let home = home_requesting(&binaries(&[("any", server.url("/simd"))]));
    let running = with_downloads(&home).spawn();
    wait_until("the download to start", DEADLINE, || server.requests() > 0);
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    assert_interrupted_cleanly(&home, &out);
}

#[test]
fn a_fifo_as_file_source_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("simd");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let home = home_requesting(&binaries(&[("any", format!("file://{}", fifo.display()))]));
    assert_download_fails(
        &home,
        &format!("{} is a FIFO, not a regular file", fifo.display()),
    );
}

#[test]
fn a_link_to_dev_zero_as_file_source_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let zero = dir.path().join("simd");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let home = home_requesting(&binaries(&[("any", zero.display().to_string())]));
    let out = with_downloads(&home)
        .spawn()
        .wait_for(Duration::from_secs(10));
    out.assert_code(5);
    assert!(
        out.errors()[0].contains(&format!(
            "{} is a character device, not a regular file",
            zero.display()
        )),
        "{out}"
    );
    assert_nothing_staged(&home);
}

#[test]
fn sigterm_ends_a_file_download_at_once() {
    // A sparse 2 GiB file: below the cap, and far too big to copy before the signal lands.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("simd");
    fs::File::create(&big).unwrap().set_len(2 << 30).unwrap();
    let url = format!("file://{}?checksum={}", big.display(), sha256(b"not it"));
    let home = home_requesting(&binaries(&[("any", url)]));
    let running = with_downloads(&home).spawn();
    wait_until("the copy to start", DEADLINE, || {
        staging(&home)
            .iter()
            .any(|dir| dir.join("download").exists())
    });
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    assert_interrupted_cleanly(&home, &out);
}

#[test]
fn a_file_source_over_the_cap_is_refused_before_copying() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("simd");
    fs::File::create(&big).unwrap().set_len(5 << 30).unwrap();
    let home = home_requesting(&binaries(&[("any", big.display().to_string())]));
    let out = with_downloads(&home)
        .spawn()
        .wait_for(Duration::from_secs(10));
    out.assert_code(5);
    assert!(
        out.errors()[0].contains("5368709120 bytes, more than the 4 GiB limit"),
        "{out}"
    );
    assert_nothing_staged(&home);
}

/// Rewrites the uncompressed size of every entry of a stored zip (local and central headers).
fn lie_about_sizes(zip: &mut [u8], declared: u32) {
    let mut at = 0;
    while at + 4 <= zip.len() {
        match &zip[at..at + 4] {
            b"PK\x03\x04" => zip[at + 22..at + 26].copy_from_slice(&declared.to_le_bytes()),
            b"PK\x01\x02" => zip[at + 24..at + 28].copy_from_slice(&declared.to_le_bytes()),
            _ => {}
        }
        at += 1;
    }
}

#[test]
fn a_zip_entry_that_writes_more_than_it_declares_is_cut_off() {
    let mut writer = ::zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = ::zip::write::SimpleFileOptions::default()
        .compression_method(::zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    writer.start_file("simd", options).unwrap();
    writer.write_all(&v2_script()).unwrap();
    writer.write_all(&vec![b'#'; 1 << 20]).unwrap();
    let mut archive = writer.finish().unwrap().into_inner();
    lie_about_sizes(&mut archive, 10);
    let server = Server::start(vec![("/v2.zip".into(), archive)]);
    let home = home_requesting(&binaries(&[("any", server.url("/v2.zip"))]));
    assert_download_fails(
        &home,
        "entry \"simd\" writes more than the 10 bytes it declares",
    );
}

/// A tar.gz with `bin/simd` and `count - 1` one-byte files under `lib/`.
fn many_entries(count: usize) -> Vec<u8> {
    let mut builder = ::tar::Builder::new(Vec::new());
    let script = v2_script();
    let mut header = ::tar::Header::new_gnu();
    header.set_size(script.len() as u64);
    header.set_mode(0o755);
    builder
        .append_data(&mut header, "bin/simd", script.as_slice())
        .unwrap();
    for i in 1..count {
        let mut header = ::tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, format!("lib/f{i}"), &b"x"[..])
            .unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// Kills a process group when dropped, so a failing test leaks nothing.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).unwrap());
        let _ = nix::sys::signal::killpg(pid, Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Needs `strace` (apt package `strace`): counting the fsync calls is what tells one fsync per
/// file (55 s for this archive) from one `syncfs` at the end, without a timing assertion.
#[test]
fn a_tar_with_20_000_entries_is_unpacked_without_an_fsync_per_file() {
    use std::os::unix::process::CommandExt;
    let server = Server::start(vec![("/v2.tar.gz".into(), many_entries(20_000))]);
    let home = home_requesting(&binaries(&[("any", server.url("/v2.tar.gz"))]));
    let trace = home.path().join("fsync.trace");
    let child = std::process::Command::new("strace")
        .args([
            "-f",
            "-qq",
            "--seccomp-bpf",
            "-e",
            "trace=fsync,fdatasync",
            "-o",
        ])
        .arg(&trace)
        .arg(crate::support::COSMOVISOR)
        .args(["run", "start"])
        .env_clear()
        .envs(home.env())
        .env("DAEMON_ALLOW_DOWNLOAD_BINARIES", "true")
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("strace must be installed (apt package strace)");
    let child = KillOnDrop(child);
    // 20 000 files under strace: twice the usual deadline, for a machine whose disk is busy.
    wait_until("ready v2 under strace", 2 * DEADLINE, || {
        home.events().iter().any(|event| event == "ready v2")
    });
    drop(child);
    assert!(home.upgrade_dir("v2").join("lib/f19999").is_file());
    assert_nothing_staged(&home);
    let fsyncs = fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|line| line.contains("fsync("))
        .count();
    assert!(fsyncs < 1000, "{fsyncs} fsync calls for 20 000 entries");
}

#[test]
fn sigterm_stops_unpacking() {
    let server = Server::start(vec![("/v2.tar.gz".into(), many_entries(100_000))]);
    let home = home_requesting(&binaries(&[("any", server.url("/v2.tar.gz"))]));
    let running = with_downloads(&home).spawn();
    wait_until("the unpacking to start", DEADLINE, || {
        staging(&home)
            .iter()
            .any(|dir| dir.join("unpacked/lib/f1").exists())
    });
    running.signal(Signal::SIGTERM);
    let out = running.wait();
    assert_interrupted_cleanly(&home, &out);
}

#[test]
fn a_symlink_that_leaves_the_version_folder_is_refused() {
    let mut builder = ::tar::Builder::new(Vec::new());
    let script = v2_script();
    let mut header = ::tar::Header::new_gnu();
    header.set_size(script.len() as u64);
    header.set_mode(0o755);
    builder
        .append_data(&mut header, "release/bin/simd", script.as_slice())
        .unwrap();
    let mut link = ::tar::Header::new_gnu();
    link.set_entry_type(::tar::EntryType::Symlink);
    link.set_size(0);
    link.set_mode(0o777);
    builder
        .append_link(&mut link, "release/lib/up", "../..")
        .unwrap();
    let archive = builder.into_inner().unwrap();
    let server = Server::start(vec![("/v2.tar".into(), archive)]);
    let home = home_requesting(&binaries(&[("any", server.url("/v2.tar"))]));
    assert_download_fails(&home, "lib/up");
}

#[test]
fn an_html_error_page_is_refused_before_the_backup() {
    let page = b"<!DOCTYPE html>\n<html><body>Not here</body></html>\n".to_vec();
    let size = page.len();
    let server = Server::start(vec![("/simd".into(), page)]);
    let url = server.url("/simd");
    let home = home_requesting(&binaries(&[("any", url.clone())]));
    let out = assert_download_fails(
        &home,
        &format!("refusing the download from {url}: it is not an executable for this machine"),
    );
    let error = &out.errors()[0];
    assert!(
        error.contains(&format!(
            "{size} bytes starting with \"<!DOCTYPE html>\\n<html>"
        )),
        "{out}"
    );
}

#[test]
fn an_empty_body_is_refused() {
    let server = Server::start(vec![("/simd".into(), Vec::new())]);
    let url = server.url("/simd");
    let home = home_requesting(&binaries(&[("any", url.clone())]));
    assert_download_fails(
        &home,
        &format!(
            "refusing the download from {url}: it is not an executable for this machine: an empty file"
        ),
    );
}

/// A home on genesis v1 that asks for `v2`, with `bytes` staged as v2's binary by hand.
fn staged(bytes: &[u8]) -> Home {
    let home = Home::new("simd");
    home.genesis(&crate::support::v1_requesting("v2", 30));
    let bin = home.upgrade_dir("v2").join("bin/simd");
    fs::create_dir_all(bin.parent().unwrap()).unwrap();
    fs::write(&bin, bytes).unwrap();
    fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    home
}

#[test]
fn a_staged_text_file_without_shebang_is_refused_before_the_backup() {
    let home = staged(b"echo hi\n");
    let out = home.cosmovisor(["run", "start"]).run();
    out.assert_code(5);
    let errors = out.errors();
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].contains(
            "is not an executable for this machine: 8 bytes starting with \"echo hi\\n\" is neither an ELF binary nor a script starting with #!"
        ),
        "{out}"
    );
    assert!(home.backups().is_empty(), "no backup\n{out}");
    assert_eq!(home.current_target(), PathBuf::from("genesis"), "{out}");
}

#[test]
fn a_staged_binary_for_another_architecture_is_refused_before_the_backup() {
    let header = foreign_elf_header();
    let home = staged(&header);
    let out = home.cosmovisor(["run", "start"]).run();
    out.assert_code(5);
    assert!(out.errors()[0].contains("is built for"), "{out}");
    assert!(home.backups().is_empty(), "no backup\n{out}");
}

#[test]
fn a_current_binary_that_cannot_run_here_fails_at_start() {
    let home = Home::new("simd");
    let bin = home.genesis_dir().join("bin/simd");
    fs::create_dir_all(bin.parent().unwrap()).unwrap();
    fs::write(&bin, b"<html>oops</html>").unwrap();
    fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = home.cosmovisor(["run", "start"]).run();
    out.assert_code(4);
    assert!(
        out.errors()[0].contains("is neither an ELF binary nor a script starting with #!"),
        "{out}"
    );
}

#[test]
fn add_upgrade_refuses_a_text_file() {
    let home = Home::new("simd");
    home.genesis(&FakeDaemon::new().ready("v1").block());
    let text = home.path().join("notes.txt");
    fs::write(&text, b"just notes\n").unwrap();
    let args: [std::ffi::OsString; 3] = ["add-upgrade".into(), "v2".into(), text.into()];
    let out = home.cosmovisor(args).run();
    out.assert_code(2);
    assert!(
        out.errors()[0].contains("neither an ELF binary nor a script starting with #!"),
        "{out}"
    );
    assert!(!home.upgrade_dir("v2").exists(), "{out}");
}

#[test]
fn credentials_in_urls_never_reach_a_log_line_or_an_error() {
    let server = Server::start(vec![]);
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let checksum = sha256(b"anything");
    let url = format!(
        "http://alice:s3cr3t@127.0.0.1:{port}/simd?token=tok123&X-Amz-Signature=sig456&checksum={checksum}"
    );
    let home = home_requesting(&binaries(&[("any", url)]));
    let out = assert_download_fails(&home, "HTTP 404");
    let shown = format!(
        "http://alice:***@127.0.0.1:{port}/simd?token=***&X-Amz-Signature=***&checksum={checksum}"
    );
    assert!(out.errors()[0].contains(&shown), "{out}");
    for secret in ["s3cr3t", "tok123", "sig456"] {
        out.stderr_lacks(secret);
    }
    for command in [["show-upgrade-info", "-o"], ["status", "-o"]] {
        for format in ["text", "json"] {
            let shown = home
                .cosmovisor([command[0], command[1], format])
                .env("DAEMON_ALLOW_DOWNLOAD_BINARIES", "true")
                .run();
            for secret in ["s3cr3t", "tok123", "sig456"] {
                assert!(!shown.stdout().contains(secret), "{shown}");
            }
        }
    }
    let doctor = home
        .cosmovisor(["doctor"])
        .env("DAEMON_ALLOW_DOWNLOAD_BINARIES", "true")
        .run();
    for secret in ["s3cr3t", "tok123", "sig456"] {
        assert!(!doctor.stdout().contains(secret), "{doctor}");
        assert!(!doctor.stderr().contains(secret), "{doctor}");
    }
}

#[test]
fn credentials_never_reach_a_network_error() {
    let refusing = RefusingPort::bind();
    let port = refusing.port;
    let url = format!("http://bob:hunter2@127.0.0.1:{port}/simd?access_token=tok789");
    let home = home_requesting(&binaries(&[("any", url)]));
    let out = assert_download_fails(
        &home,
        &format!("cannot download http://bob:***@127.0.0.1:{port}/simd?access_token=***"),
    );
    for secret in ["hunter2", "tok789"] {
        out.stderr_lacks(secret);
    }
}

#[test]
fn a_script_whose_interpreter_is_missing_is_refused_before_the_backup() {
    let not_executable = tempfile::NamedTempFile::new().unwrap();
    fs::set_permissions(
        not_executable.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let shown = not_executable.path().display();
    for (script, named) in [
        (
            "#!/opt/missing/python3 -u\nprint(1)\n".to_owned(),
            "names the interpreter /opt/missing/python3, which does not exist".to_owned(),
        ),
        (
            "#!\necho v2\n".to_owned(),
            "names no interpreter".to_owned(),
        ),
        (
            format!("#!{shown}\n"),
            format!("names the interpreter {shown}, which is not executable"),
        ),
    ] {
        let home = staged(script.as_bytes());
        let out = home.cosmovisor(["run", "start"]).run();
        out.assert_code(5);
        assert!(out.errors()[0].contains(&named), "{out}");
        assert!(
            out.errors()[0].contains("install the interpreter or fix the script's first line"),
            "{out}"
        );
        assert!(home.backups().is_empty(), "no backup\n{out}");
        assert_eq!(
            home.current_target(),
            std::path::PathBuf::from("genesis"),
            "{out}"
        );
    }
}
