//! The runner of the real `cosmovisor` binary: one invocation ([`Cosmovisor`]), a running one
//! whose drop kills its process group ([`Running`]), and what a finished one left ([`Output`]).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::*;

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

    pub(super) fn tree_of(mut self, root: &Path) -> Cosmovisor {
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
