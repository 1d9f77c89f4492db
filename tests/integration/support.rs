//! Test support: a throw-away node home in the cosmovisor layout, fake daemons generated as shell
//! scripts, the real `mock-node`, a runner for the real `cosmovisor` binary with deadlines,
//! `wait_until` — the one way tests wait for something — loopback servers and ports, and
//! `skip_or_fail_in_ci` and `Tmpfs` (from `skip.rs`) — the one way a test that cannot run here
//! says so, and the small disk the full-disk tests mount.

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

pub use crate::skip::{Tmpfs, skip_or_fail_in_ci};

pub const COSMOVISOR: &str = env!("CARGO_BIN_EXE_cosmovisor");
pub const MOCK_NODE: &str = env!("CARGO_BIN_EXE_mock-node");

/// Generous: only failures pay it.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `condition` every 10 ms until it holds, panicking with `what` after `deadline`.
pub fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// A node home in a temporary folder (or one the test made): `cosmovisor/`, `data/`, and
/// whatever the test adds.
pub struct Home {
    dir: HomeDir,
    pub name: String,
}

enum HomeDir {
    Temp(tempfile::TempDir),
    Given(PathBuf),
}

impl Home {
    pub fn new(name: &str) -> Home {
        let dir = tempfile::Builder::new()
            .prefix("cv-home-")
            .tempdir()
            .expect("temp dir");
        fs::create_dir_all(dir.path().join("cosmovisor")).expect("mkdir cosmovisor");
        fs::create_dir_all(dir.path().join("data")).expect("mkdir data");
        Home {
            dir: HomeDir::Temp(dir),
            name: name.to_owned(),
        }
    }

    /// A home with nothing in it at all.
    pub fn blank(name: &str) -> Home {
        let dir = tempfile::Builder::new()
            .prefix("cv-home-")
            .tempdir()
            .expect("temp dir");
        Home {
            dir: HomeDir::Temp(dir),
            name: name.to_owned(),
        }
    }

    /// A home in a folder the test made (and removes), e.g. on a special file system.
    pub fn at(path: &Path, name: &str) -> Home {
        Home {
            dir: HomeDir::Given(path.to_path_buf()),
            name: name.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        match &self.dir {
            HomeDir::Temp(dir) => dir.path(),
            HomeDir::Given(path) => path,
        }
    }

    pub fn root(&self) -> PathBuf {
        self.path().join("cosmovisor")
    }

    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    pub fn upgrade_dir(&self, name: &str) -> PathBuf {
        self.root().join("upgrades").join(name)
    }

    pub fn genesis_dir(&self) -> PathBuf {
        self.root().join("genesis")
    }

    /// Installs a fake daemon as the genesis binary.
    pub fn genesis(&self, daemon: &FakeDaemon) -> &Home {
        self.install(&self.genesis_dir(), daemon);
        self
    }

    /// Installs a fake daemon as `upgrades/<name>/bin/<daemon>`.
    pub fn upgrade(&self, name: &str, daemon: &FakeDaemon) -> &Home {
        self.install(&self.upgrade_dir(name), daemon);
        self
    }

    fn install(&self, version_dir: &Path, daemon: &FakeDaemon) {
        let bin = version_dir.join("bin").join(&self.name);
        fs::create_dir_all(bin.parent().expect("bin dir")).expect("mkdir bin");
        fs::write(&bin, daemon.script()).expect("write fake daemon");
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// Installs the real mock chain node in `version_dir` with its `mock-node.json`.
    pub fn mock(&self, version_dir: &Path, config: &serde_json::Value) -> &Home {
        let bin = version_dir.join("bin").join(&self.name);
        fs::create_dir_all(bin.parent().expect("bin dir")).expect("mkdir bin");
        fs::copy(MOCK_NODE, &bin).expect("copy mock-node");
        fs::write(version_dir.join("mock-node.json"), config.to_string()).expect("mock config");
        self
    }

    /// Points `current` at a version folder (relative, as we write it).
    pub fn set_current(&self, relative: &str) {
        let link = self.root().join("current");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(relative, link).expect("symlink current");
    }

    /// Where `current` points (as stored).
    pub fn current_target(&self) -> PathBuf {
        fs::read_link(self.root().join("current")).expect("current link")
    }

    pub fn write_plan(&self, name: &str, height: i64) {
        let plan = format!(
            r#"{{"name":"{name}","time":"0001-01-01T00:00:00Z","height":{height},"info":""}}"#
        );
        fs::write(self.data().join("upgrade-info.json"), plan).expect("write plan");
    }

    /// The lines fake daemons appended to `$DAEMON_HOME/events`.
    pub fn events(&self) -> Vec<String> {
        fs::read_to_string(self.path().join("events"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn wait_for_event(&self, event: &str) {
        self.wait_for_events(event, 1);
    }

    pub fn wait_for_events(&self, event: &str, count: usize) {
        wait_until(
            &format!("{count}× event {event:?} (have {:?})", self.events()),
            DEADLINE,
            || {
                self.events()
                    .iter()
                    .filter(|line| line.as_str() == event)
                    .count()
                    >= count
            },
        );
    }

    /// The backups (`data-backup-*` folders) in the home.
    pub fn backups(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.path())
            .expect("read home")
            .filter_map(std::result::Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("data-backup-") || name.starts_with(".data-backup-"))
            .collect();
        names.sort();
        names
    }

    /// A listing of the whole home, for failure messages.
    pub fn tree(&self) -> String {
        let mut out = String::new();
        list(self.path(), self.path(), &mut out);
        out
    }

    /// The environment every test starts from.
    pub fn env(&self) -> Vec<(String, OsString)> {
        vec![
            ("DAEMON_HOME".into(), self.path().into()),
            ("DAEMON_NAME".into(), self.name.clone().into()),
            ("DAEMON_POLL_INTERVAL".into(), "50ms".into()),
            ("DAEMON_SHUTDOWN_GRACE".into(), "5s".into()),
            ("COSMOVISOR_COLOR_LOGS".into(), "false".into()),
            // Nothing answers there: tests that want a node RPC start the mock node's.
            ("COSMOVISOR_NODE_RPC".into(), "http://127.0.0.1:9".into()),
            ("PATH".into(), std::env::var_os("PATH").unwrap_or_default()),
        ]
    }

    /// A `cosmovisor` invocation with this home's environment.
    pub fn cosmovisor<I, S>(&self, args: I) -> Cosmovisor
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut cmd = Cosmovisor::new(args);
        for (key, value) in self.env() {
            cmd = cmd.env(&key, value);
        }
        cmd.tree_of(self.path())
    }

    /// Like [`Home::cosmovisor`], run under `wrapper` (for example `strace -f -o <file>`): the
    /// wrapper's arguments must end with the program to run, [`COSMOVISOR`].
    pub fn cosmovisor_under<I, S>(&self, wrapper: &[OsString], args: I) -> Cosmovisor
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut cmd = Cosmovisor::wrapped(wrapper, args);
        for (key, value) in self.env() {
            cmd = cmd.env(&key, value);
        }
        cmd.tree_of(self.path())
    }
}

fn list(root: &Path, dir: &Path, out: &mut String) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let meta = fs::symlink_metadata(&path);
        if meta.as_ref().is_ok_and(|m| m.file_type().is_symlink()) {
            let target = fs::read_link(&path).unwrap_or_default();
            let _ = writeln!(out, "{} -> {}", rel.display(), target.display());
        } else if meta.as_ref().is_ok_and(fs::Metadata::is_dir) {
            let _ = writeln!(out, "{}/", rel.display());
            list(root, &path, out);
        } else {
            let _ = writeln!(
                out,
                "{} ({} bytes)",
                rel.display(),
                meta.map_or(0, |m| m.len())
            );
        }
    }
}

/// A fake daemon: a POSIX shell script built step by step. Every step that matters reports to
/// `$DAEMON_HOME/events` so tests can wait on it.
#[derive(Clone, Default)]
pub struct FakeDaemon {
    lines: Vec<String>,
}

impl FakeDaemon {
    pub fn new() -> FakeDaemon {
        FakeDaemon::default()
    }

    fn line(mut self, line: impl Into<String>) -> FakeDaemon {
        self.lines.push(line.into());
        self
    }

    /// Traps the forwarded signals (recording each; TERM/INT exit 0 after recording), then
    /// writes `ready <tag>`.
    pub fn ready(self, tag: &str) -> FakeDaemon {
        self.line(r#"ev() { printf '%s\n' "$1" >> "$DAEMON_HOME/events"; }"#)
            .line(r"trap 'ev TERM; exit 0' TERM")
            .line(r"trap 'ev INT; exit 0' INT")
            .line(r"trap 'ev QUIT' QUIT")
            .line(r"trap 'ev HUP' HUP")
            .line(r"trap 'ev USR1' USR1")
            .line(r"trap 'ev USR2' USR2")
            .line(format!("ev 'ready {tag}'"))
    }

    /// Like `ready`, but SIGTERM and SIGINT are recorded and otherwise ignored.
    pub fn ready_ignoring_term(self, tag: &str) -> FakeDaemon {
        self.ready(tag)
            .line(r"trap 'ev TERM' TERM")
            .line(r"trap 'ev INT' INT")
    }

    pub fn event(self, event: &str) -> FakeDaemon {
        self.line(format!(
            "printf '%s\\n' '{event}' >> \"$DAEMON_HOME/events\""
        ))
    }

    pub fn say(self, text: &str) -> FakeDaemon {
        self.line(format!("printf '%s\\n' '{text}'"))
    }

    pub fn say_err(self, text: &str) -> FakeDaemon {
        self.line(format!("printf '%s\\n' '{text}' >&2"))
    }

    /// Writes `data/upgrade-info.json` atomically (temp + mv).
    pub fn request_upgrade(self, name: &str, height: i64) -> FakeDaemon {
        self.line(format!(
            r#"printf '{{"name":"{name}","time":"0001-01-01T00:00:00Z","height":{height}}}' > "$DAEMON_HOME/data/upgrade-info.json.tmp" && mv "$DAEMON_HOME/data/upgrade-info.json.tmp" "$DAEMON_HOME/data/upgrade-info.json""#
        ))
    }

    /// Prints x/upgrade's line on stderr, without writing the file.
    pub fn upgrade_line(self, name: &str, height: i64, info: &str) -> FakeDaemon {
        self.line(format!(
            "printf '%s\\n' 'ERR UPGRADE \"{name}\" NEEDED at height: {height}: {info} module=x/upgrade' >&2"
        ))
    }

    /// Answers `pre-upgrade`: records `pre-upgrade <tag>` and exits with the n-th code of
    /// `codes` on the n-th call (the last one repeats).
    pub fn pre_upgrade(self, tag: &str, codes: &[i32]) -> FakeDaemon {
        let mut cases = String::new();
        for (i, code) in codes.iter().enumerate() {
            if i + 1 == codes.len() {
                let _ = write!(cases, "*) exit {code};; ");
            } else {
                let _ = write!(cases, "{}) exit {code};; ", i + 1);
            }
        }
        self.line(format!(
            r#"if [ "${{1:-}}" = pre-upgrade ]; then printf 'pre-upgrade {tag}\n' >> "$DAEMON_HOME/events"; n=$(cat "$DAEMON_HOME/pre-upgrade-calls" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$DAEMON_HOME/pre-upgrade-calls"; case $n in {cases}esac; fi"#
        ))
    }

    /// Waits interruptibly for ever (traps run at once).
    pub fn block(self) -> FakeDaemon {
        self.line("while :; do sleep 30 >/dev/null 2>&1 & wait $!; done")
    }

    pub fn exit(self, code: i32) -> FakeDaemon {
        self.line(format!("exit {code}"))
    }

    pub fn raw(self, line: &str) -> FakeDaemon {
        self.line(line)
    }

    pub fn script(&self) -> String {
        format!("#!/bin/sh\nset -u\n{}\n", self.lines.join("\n"))
    }
}

/// The genesis daemon of most upgrade tests: ready, asks for `name` at `height`, keeps running.
pub fn v1_requesting(name: &str, height: i64) -> FakeDaemon {
    FakeDaemon::new()
        .ready("v1")
        .request_upgrade(name, height)
        .block()
}

/// An upgrade's daemon: answers pre-upgrade with `codes`, then runs until stopped.
pub fn upgraded_daemon(tag: &str, codes: &[i32]) -> FakeDaemon {
    FakeDaemon::new().pre_upgrade(tag, codes).ready(tag).block()
}

/// One `cosmovisor` invocation.
pub struct Cosmovisor {
    command: Command,
    description: String,
    stdin: Option<Vec<u8>>,
    tree_root: Option<PathBuf>,
    discard_stdout: bool,
}

impl Cosmovisor {
    pub fn new<I, S>(args: I) -> Cosmovisor
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let mut command = Command::new(COSMOVISOR);
        command.args(&args).env_clear().process_group(0);
        Cosmovisor {
            command,
            description: format!("cosmovisor {args:?}"),
            stdin: None,
            tree_root: None,
            discard_stdout: false,
        }
    }

    /// `wrapper[0] wrapper[1..] args` (the wrapper runs cosmovisor itself).
    pub fn wrapped<I, S>(wrapper: &[OsString], args: I) -> Cosmovisor
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let (program, before) = wrapper.split_first().expect("a wrapper program");
        let mut command = Command::new(program);
        command
            .args(before)
            .args(&args)
            .env_clear()
            .process_group(0);
        Cosmovisor {
            command,
            description: format!("{wrapper:?} {args:?}"),
            stdin: None,
            tree_root: None,
            discard_stdout: false,
        }
    }

    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Cosmovisor {
        let value = value.into();
        let _ = write!(self.description, " {key}={value:?}");
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Cosmovisor {
        self.command.env_remove(key);
        self
    }

    pub fn stdin(mut self, bytes: &[u8]) -> Cosmovisor {
        self.stdin = Some(bytes.to_vec());
        self
    }

    /// Sends its stdout (the daemon's, passed through) to `/dev/null` instead of collecting it,
    /// for tests that pipe hundreds of megabytes through.
    pub fn discard_stdout(mut self) -> Cosmovisor {
        self.discard_stdout = true;
        self
    }

    fn tree_of(mut self, root: &Path) -> Cosmovisor {
        self.tree_root = Some(root.to_path_buf());
        self
    }

    /// Starts it; stdout and stderr are collected in the background.
    pub fn spawn(mut self) -> Running {
        self.command
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(if self.discard_stdout {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stderr(Stdio::piped());
        let mut child = self.command.spawn().expect("spawn cosmovisor");
        if let Some(bytes) = self.stdin.take() {
            let mut stdin = child.stdin.take().expect("stdin");
            thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }
        let stdout = child.stdout.take().map(collect);
        let stderr = collect(child.stderr.take().expect("stderr"));
        Running {
            pid: Pid::from_raw(i32::try_from(child.id()).expect("pid")),
            child: Some(child),
            stdout,
            stderr: Some(stderr),
            description: self.description,
            tree_root: self.tree_root,
        }
    }

    /// Starts it, waits until `home` records one more `event` than it had, then stops it with
    /// SIGTERM and waits for it (the usual end of an upgrade test).
    pub fn stop_after(self, home: &Home, event: &str) -> Output {
        let seen = home.events().iter().filter(|e| e.as_str() == event).count();
        let running = self.spawn();
        home.wait_for_events(event, seen + 1);
        running.signal(Signal::SIGTERM);
        running.wait()
    }

    /// Runs it to the end (bounded by [`DEADLINE`]).
    pub fn run(self) -> Output {
        self.spawn().wait()
    }
}

/// Reads a stream to its end in the background; what arrived so far stays readable.
struct Collector {
    buf: Arc<Mutex<Vec<u8>>>,
    handle: thread::JoinHandle<()>,
}

fn collect(mut stream: impl Read + Send + 'static) -> Collector {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&buf);
    let handle = thread::spawn(move || {
        let mut chunk = vec![0u8; 64 * 1024];
        while let Ok(n) = stream.read(&mut chunk) {
            if n == 0 {
                break;
            }
            shared
                .lock()
                .expect("collector lock")
                .extend_from_slice(&chunk[..n]);
        }
    });
    Collector { buf, handle }
}

impl Collector {
    fn so_far(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().expect("collector lock")).into_owned()
    }
}

/// A running `cosmovisor`; dropping it kills its whole process group, so a failing test never
/// leaks daemons.
pub struct Running {
    pub pid: Pid,
    child: Option<Child>,
    stdout: Option<Collector>,
    stderr: Option<Collector>,
    description: String,
    tree_root: Option<PathBuf>,
}

impl Running {
    /// What cosmovisor wrote to stderr so far (its log lines).
    pub fn stderr_so_far(&self) -> String {
        self.stderr
            .as_ref()
            .map(Collector::so_far)
            .unwrap_or_default()
    }

    /// Waits until stderr contains `text`.
    pub fn wait_for_log(&self, text: &str) {
        wait_until(&format!("log line {text:?}"), DEADLINE, || {
            self.stderr_so_far().contains(text)
        });
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid, signal).expect("signal cosmovisor");
    }

    /// Waits for it to exit, at most [`DEADLINE`].
    pub fn wait(self) -> Output {
        self.wait_for(DEADLINE)
    }

    pub fn wait_for(mut self, deadline: Duration) -> Output {
        let mut child = self.child.take().expect("child");
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if start.elapsed() > deadline {
                let _ = killpg(self.pid, Signal::SIGKILL);
                let status = child.wait().expect("wait");
                let output = self.output(status);
                panic!(
                    "{} did not exit within {deadline:?}\n{output}",
                    self.description
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        self.output(status)
    }

    fn output(&mut self, status: ExitStatus) -> Output {
        // Output threads end when every holder of the pipes is gone; a leaked grandchild would
        // hold them, so their join is bounded too.
        let join = |collector: Option<Collector>| {
            let collector = collector?;
            let start = Instant::now();
            while !collector.handle.is_finished() && start.elapsed() < Duration::from_secs(10) {
                thread::sleep(Duration::from_millis(5));
            }
            let bytes = collector.buf.lock().expect("collector lock").clone();
            Some(bytes)
        };
        Output {
            status,
            stdout: join(self.stdout.take()).unwrap_or_default(),
            stderr: join(self.stderr.take()).unwrap_or_default(),
            description: self.description.clone(),
            tree: self.tree_root.as_deref().map(|root| {
                let mut out = String::new();
                list(root, root, &mut out);
                out
            }),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(self.pid, Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// What a finished `cosmovisor` left.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    description: String,
    tree: Option<String>,
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "command: {}", self.description)?;
        writeln!(f, "status: {}", self.status)?;
        writeln!(
            f,
            "--- stdout ---\n{}",
            String::from_utf8_lossy(&self.stdout)
        )?;
        writeln!(
            f,
            "--- stderr ---\n{}",
            String::from_utf8_lossy(&self.stderr)
        )?;
        if let Some(tree) = &self.tree {
            writeln!(f, "--- home ---\n{tree}")?;
        }
        Ok(())
    }
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn assert_code(&self, code: i32) -> &Output {
        assert_eq!(
            self.status.code(),
            Some(code),
            "unexpected exit status\n{self}"
        );
        self
    }

    pub fn assert_signal(&self, signal: i32) -> &Output {
        assert_eq!(
            self.status.signal(),
            Some(signal),
            "unexpected exit status\n{self}"
        );
        self
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    pub fn stdout_contains(&self, text: &str) -> &Output {
        assert!(
            self.stdout().contains(text),
            "stdout lacks {text:?}\n{self}"
        );
        self
    }

    pub fn stderr_contains(&self, text: &str) -> &Output {
        assert!(
            self.stderr().contains(text),
            "stderr lacks {text:?}\n{self}"
        );
        self
    }

    pub fn stderr_lacks(&self, text: &str) -> &Output {
        assert!(!self.stderr().contains(text), "stderr has {text:?}\n{self}");
        self
    }

    /// The lines of stderr that start with `Error: `.
    pub fn errors(&self) -> Vec<String> {
        self.stderr()
            .lines()
            .filter_map(|line| line.strip_prefix("Error: ").map(str::to_owned))
            .collect()
    }
}

/// Reads an HTTP request's head, up to and including its blank line, a byte at a time (so
/// nothing of what follows is consumed); `None` when the client closed or failed first.
pub fn read_request_head(stream: &mut impl Read) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(head)
}

/// A loopback HTTP/1.1 server answering GET with the body of each path (404 for unknown paths)
/// and recording every path asked for. It lives until the test process ends.
pub struct Server {
    pub base: String,
    routes: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(routes: Vec<(String, Vec<u8>)>) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let routes = Arc::new(Mutex::new(routes.into_iter().collect::<HashMap<_, _>>()));
        let served = Arc::clone(&routes);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(head) = read_request_head(&mut stream) else {
                    continue;
                };
                let head = String::from_utf8_lossy(&head);
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .split('?')
                    .next()
                    .unwrap_or("/")
                    .to_owned();
                seen.lock().expect("requests lock").push(path.clone());
                let (status, body) = match served.lock().expect("routes lock").get(&path) {
                    Some(body) => ("200 OK", body.clone()),
                    None => ("404 Not Found", b"not found".to_vec()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        Server {
            base,
            routes,
            requests,
        }
    }

    /// From now on, answers `path` with `body`.
    pub fn serve(&self, path: &str, body: Vec<u8>) {
        self.routes
            .lock()
            .expect("routes lock")
            .insert(path.to_owned(), body);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn requested(&self) -> Vec<String> {
        self.requests.lock().expect("requests lock").clone()
    }
}

/// Go's GOOS/GOARCH name of this machine (the key a plan's binaries map uses).
pub fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let mut hex = String::from("sha256:");
    for b in digest {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// A tar archive (optionally gzipped) of `(path, bytes, mode)` entries, paths written as given.
pub fn tar(entries: &[(&str, &[u8], u32)], gzip: bool) -> Vec<u8> {
    let mut builder = ::tar::Builder::new(Vec::new());
    for (path, bytes, mode) in entries {
        let mut header = ::tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(*mode);
        header.set_entry_type(::tar::EntryType::Regular);
        // Raw name bytes, so tests can build hostile archives the builder would refuse.
        let name = &mut header.as_gnu_mut().expect("gnu header").name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_cksum();
        builder.append(&header, *bytes).expect("tar append");
    }
    let data = builder.into_inner().expect("tar finish");
    if !gzip {
        return data;
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&data).expect("gzip");
    encoder.finish().expect("gzip finish")
}

/// A zip archive of `(path, bytes)` entries, paths written as given.
pub fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = ::zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = ::zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    for (path, bytes) in entries {
        writer.start_file(*path, options).expect("zip entry");
        writer.write_all(bytes).expect("zip write");
    }
    writer.finish().expect("zip finish").into_inner()
}

/// A loopback port that was free a moment ago (for servers the test starts or tells cosmovisor to bind).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A loopback port that refuses every connection for as long as this lives: a socket holds it,
/// bound but never listening, so the kernel answers a connection with a reset and no other
/// test can take the port meanwhile.
pub struct RefusingPort {
    _socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl RefusingPort {
    pub fn bind() -> RefusingPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("create a socket");
        socket
            .bind((std::net::Ipv4Addr::LOCALHOST, 0).into())
            .expect("bind loopback");
        let port = socket.local_addr().expect("addr").port();
        RefusingPort {
            _socket: socket,
            port,
        }
    }
}

/// `GET path` on the loopback `port` (HTTP/1.1), the whole answer; `None` when the connection fails.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// A wrapper that runs its command under a seccomp filter refusing setuid/setgid bits the way
/// systemd's `RestrictSUIDSGID=true` does (`tests/integration/restrict_suid_sgid.c`, built once
/// with `cc`); `None`, after `skip_or_fail_in_ci`, when it cannot be built or installed here.
pub fn restrict_suid_sgid() -> Option<OsString> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let source =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/restrict_suid_sgid.c");
        let program = Path::new(env!("CARGO_TARGET_TMPDIR")).join("restrict_suid_sgid");
        let out = Command::new("cc")
            .args(["-O2", "-Wall", "-o"])
            .arg(&program)
            .arg(&source)
            .output()
            .map_err(|err| format!("cannot run cc: {err}"))?;
        if !out.status.success() {
            return Err(format!(
                "cc cannot build {}: {}",
                source.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // The filter must refuse a setgid bit and let an ordinary chmod through.
        let dir = tempfile::tempdir().map_err(|err| err.to_string())?;
        let chmod = |mode: &str| {
            Command::new(&program)
                .args(["chmod", mode])
                .arg(dir.path())
                .output()
                .is_ok_and(|out| out.status.success())
        };
        if chmod("2775") || !chmod("775") {
            return Err(
                "the seccomp filter does not work here (no seccomp in this kernel?)".into(),
            );
        }
        Ok(program)
    });
    match built {
        Ok(program) => Some(program.into()),
        Err(reason) => {
            skip_or_fail_in_ci(reason);
            None
        }
    }
}

/// A fake node answering `cosmos.upgrade.v1beta1.Query/CurrentPlan` over h2c with the plan last
/// [`GrpcNode::set`], and counting the questions.
pub struct GrpcNode {
    pub address: String,
    plan: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    asked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl GrpcNode {
    pub fn start(plan: Option<(&str, i64, &str)>) -> GrpcNode {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let body = std::sync::Arc::new(std::sync::Mutex::new(encode_plan(plan)));
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (shared, counter, down) = (body.clone(), asked.clone(), failing.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        return;
                    };
                    let (shared, counter, down) = (shared.clone(), counter.clone(), down.clone());
                    tokio::spawn(async move {
                        let Ok(mut connection) = h2::server::handshake(socket).await else {
                            return;
                        };
                        while let Some(Ok((_request, mut respond))) = connection.accept().await {
                            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            if down.load(std::sync::atomic::Ordering::SeqCst) {
                                let response = http::Response::builder()
                                    .status(200)
                                    .header("content-type", "application/grpc")
                                    .header("grpc-status", "14")
                                    .header("grpc-message", "unavailable")
                                    .body(())
                                    .unwrap();
                                let _ = respond.send_response(response, true);
                                continue;
                            }
                            let body = shared.lock().unwrap().clone();
                            let response = http::Response::builder()
                                .status(200)
                                .header("content-type", "application/grpc")
                                .body(())
                                .unwrap();
                            let Ok(mut send) = respond.send_response(response, false) else {
                                return;
                            };
                            let _ = send.send_data(bytes::Bytes::from(body), false);
                            let mut trailers = http::HeaderMap::new();
                            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                            let _ = send.send_trailers(trailers);
                        }
                    });
                }
            });
        });
        GrpcNode {
            address,
            plan: body,
            asked,
            failing,
        }
    }

    /// From now on, every answer is gRPC status 14 (unavailable), or the plan again.
    pub fn fail(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    /// The plan the next answers carry (`None`: no plan, as after a cancel).
    pub fn set(&self, plan: Option<(&str, i64, &str)>) {
        *self.plan.lock().unwrap() = encode_plan(plan);
    }

    /// How many questions were answered so far.
    pub fn asked(&self) -> usize {
        self.asked.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn encode_plan(plan: Option<(&str, i64, &str)>) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(u8::try_from(v & 0x7f).unwrap() | 0x80);
            v >>= 7;
        }
        out.push(u8::try_from(v).unwrap());
    }
    fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
        varint(out, (field << 3) | 2);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
    let mut message = Vec::new();
    if let Some((name, height, info)) = plan {
        let mut inner = Vec::new();
        bytes_field(&mut inner, 1, name.as_bytes());
        varint(&mut inner, 3 << 3);
        varint(&mut inner, u64::try_from(height).unwrap());
        bytes_field(&mut inner, 4, info.as_bytes());
        bytes_field(&mut message, 1, &inner);
    }
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&message);
    framed
}

/// The ELF header of a 64-bit little-endian executable for the other common architecture
/// (aarch64 on `x86_64` hosts, `x86_64` on aarch64 hosts).
pub fn foreign_elf_header() -> Vec<u8> {
    let machine = if cfg!(target_arch = "aarch64") {
        62u8
    } else {
        183u8
    };
    let mut header = vec![0u8; 64];
    header[..4].copy_from_slice(b"\x7fELF");
    header[4] = 2; // 64-bit
    header[5] = 1; // little-endian
    header[18] = machine;
    header
}
