//! `mock-node`: a test and demo double of a Cosmos SDK chain node binary.
//!
//! This is NOT production code. It imitates just enough of a real node
//! (`simd`, `panacead`, ...) for the tests, benchmarks and live demo of the
//! `cosmovisor` supervisor: it produces blocks, writes a goleveldb-shaped data
//! directory, holds the database `LOCK` like leveldb, writes
//! `data/upgrade-info.json` and halts at an upgrade height like `x/upgrade`,
//! and records everything it does in `$DAEMON_HOME/mock-events.log` so that
//! tests can synchronise on it.
//!
//! With `start --rpc.laddr tcp://127.0.0.1:<port>` it answers `CometBFT`'s RPC
//! `GET /status` with its node ID (`result.node_info.id`, from
//! `config/node_key.json`, written on first start like `CometBFT` does) and its
//! height (`result.sync_info.latest_block_height`).
//!
//! Its behaviour is configured by `mock-node.json`, read from the parent of the
//! directory holding the executable (e.g. `cosmovisor/genesis/mock-node.json`
//! for `cosmovisor/genesis/bin/panacead`). Every field is optional.

use std::env;
use std::fmt::{Display, Write as _};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{SigSet, Signal};
use serde::Deserialize;

/// The goleveldb stores of a CometBFT/Cosmos SDK node.
const STORES: [&str; 4] = ["application.db", "blockstore.db", "state.db", "tx_index.db"];
/// The stores that get new immutable table files every `ldb_every` blocks.
const TABLE_STORES: [&str; 2] = ["application.db", "blockstore.db"];
/// Bytes appended to each store's write-ahead log per block.
const WAL_RECORD_BYTES: usize = 200;
/// Signals recorded by `start`; TERM and INT also stop the node.
const HANDLED_SIGNALS: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// CometBFT-style `HH:MM:SS LVL message` line on stdout (or stderr with
/// `log!(stderr, ...)`). Write errors, e.g. a closed pipe, are ignored.
macro_rules! log {
    (stderr, $level:literal, $($arg:tt)+) => {{
        let _ = writeln!(io::stderr().lock(), "{} {} {}", clock(), $level, format_args!($($arg)+));
    }};
    ($level:literal, $($arg:tt)+) => {{
        let _ = writeln!(io::stdout().lock(), "{} {} {}", clock(), $level, format_args!($($arg)+));
    }};
}

/// Formats and appends one line to the events file (see `record_event`).
macro_rules! event {
    ($home:expr, $($arg:tt)+) => {
        record_event($home, format_args!($($arg)+))
    };
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    version: String,
    block_time_ms: u64,
    upgrade: Option<UpgradePlan>,
    after_upgrade: AfterUpgrade,
    pre_upgrade_exit: Vec<i32>,
    shutdown_ms: u64,
    ignore_term: bool,
    ldb_every: u64,
    ldb_bytes: usize,
    fail_start: bool,
    /// At `--halt-height`, keep running without producing blocks (SDK 0.50's
    /// `FinalizeBlock` error leaves the process up) instead of exiting.
    halt_keeps_running: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            version: "v0.0.0".to_owned(),
            block_time_ms: 200,
            upgrade: None,
            after_upgrade: AfterUpgrade::Exit,
            pre_upgrade_exit: vec![0],
            shutdown_ms: 0,
            ignore_term: false,
            ldb_every: 50,
            ldb_bytes: 65536,
            fail_start: false,
            halt_keeps_running: false,
        }
    }
}

/// The upgrade plan this binary cannot run past.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpgradePlan {
    name: String,
    height: u64,
    #[serde(default)]
    info: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum AfterUpgrade {
    /// Exit with code 2, like a Go panic.
    Exit,
    /// Stay alive without producing blocks (like Panacea).
    KeepRunning,
}

/// What `mock-node --help` prints.
const USAGE: &str = "\
Usage: mock-node <command> [flags]

A test and demo double of a Cosmos SDK node binary (not production code). Install it as
cosmovisor/<version>/bin/$DAEMON_NAME; its behaviour comes from <version>/mock-node.json (every
field optional: version, block_time_ms, upgrade {name, height, info}, after_upgrade exit|keep-running,
pre_upgrade_exit, shutdown_ms, ignore_term, ldb_every, ldb_bytes, fail_start).

Commands:
  start [--home <dir>] [--halt-height <h>] [--unsafe-skip-upgrades <h>...]
                  produce blocks in <home>/data; write upgrade-info.json and halt at the upgrade
  version [--long] [--output json]
                  print the configured version
  pre-upgrade     exit with the next code of pre_upgrade_exit
  echo-args       print the arguments, one per line
  cat-stdin       copy stdin to stdout
  help, --help, -h
                  print this text

The home is --home, else $DAEMON_HOME; everything it does is appended to <home>/mock-events.log.
";

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        die(
            "no command given (expected version, start, pre-upgrade, echo-args or cat-stdin; see mock-node --help)",
        );
    };
    let code = match command.as_str() {
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            0
        }
        "version" => cmd_version(&load_config(), rest),
        "pre-upgrade" => cmd_pre_upgrade(&load_config(), rest),
        "start" => cmd_start(load_config(), rest),
        "echo-args" => cmd_echo_args(rest),
        "cat-stdin" => cmd_cat_stdin(),
        other => {
            eprintln!("unknown command {other:?} (see mock-node --help)");
            1
        }
    };
    process::exit(code);
}

// ---------------------------------------------------------------------------
// Small helpers: fatal errors, logging, events, arguments, configuration.
// ---------------------------------------------------------------------------

/// Prints a clear error on stderr and exits 1.
fn die(msg: impl Display) -> ! {
    eprintln!("Error: {msg}");
    process::exit(1);
}

trait OrDie<T> {
    /// The value, or exit 1 with `Error: <context>: <error>`.
    fn or_die(self, context: impl Display) -> T;

    /// Like `or_die`, with the context `<verb> <path>`.
    fn or_die_at(self, verb: &str, path: &Path) -> T
    where
        Self: Sized,
    {
        self.or_die(format_args!("{verb} {}", path.display()))
    }
}

impl<T, E: Display> OrDie<T> for Result<T, E> {
    fn or_die(self, context: impl Display) -> T {
        self.unwrap_or_else(|e| die(format_args!("{context}: {e}")))
    }
}

/// Wall-clock time as `HH:MM:SS` (UTC).
fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

/// Appends one line to `$HOME/mock-events.log` with a single `O_APPEND` write.
fn record_event(home: &Path, event: impl Display) {
    let path = home.join("mock-events.log");
    let line = format!("{event}\n");
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .or_die_at("opening", &path);
    file.write_all(line.as_bytes()).or_die_at("writing", &path);
}

/// Value of `--name <v>` or `--name=<v>` among `args`.
fn flag_value(args: &[String], name: &str) -> Option<String> {
    let flag = format!("--{name}");
    let prefix = format!("{flag}=");
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if *arg == flag {
            let value = iter.next();
            return Some(
                value
                    .cloned()
                    .unwrap_or_else(|| die(format_args!("flag {flag} needs a value"))),
            );
        }
        if let Some(value) = arg.strip_prefix(&prefix) {
            return Some(value.to_owned());
        }
    }
    None
}

/// `--home`, else `$DAEMON_HOME`, else a fatal error.
fn home_dir(args: &[String]) -> PathBuf {
    flag_value(args, "home")
        .or_else(|| env::var("DAEMON_HOME").ok().filter(|h| !h.is_empty()))
        .map_or_else(
            || die("no home directory: pass --home <dir> or set DAEMON_HOME"),
            PathBuf::from,
        )
}

fn parse_height(text: &str, what: &str) -> u64 {
    text.trim().parse().unwrap_or_else(|_| {
        die(format_args!(
            "invalid {what} {text:?}: expected a block height"
        ))
    })
}

/// The executable's real path (`current` symlinks resolved).
fn exe_path() -> PathBuf {
    env::current_exe().or_die("locating the mock node executable")
}

/// Reads `mock-node.json` from the parent of the executable's directory.
fn load_config() -> Config {
    let exe = exe_path();
    let Some(path) = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("mock-node.json"))
    else {
        return Config::default();
    };
    match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).or_die_at("parsing", &path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Config::default(),
        Err(e) => die(format_args!("reading {}: {e}", path.display())),
    }
}

// ---------------------------------------------------------------------------
// Simple commands.
// ---------------------------------------------------------------------------

fn cmd_version(cfg: &Config, args: &[String]) -> i32 {
    let long = args.iter().any(|a| a == "--long");
    let json = flag_value(args, "output").is_some_and(|o| o == "json");
    let exe = exe_path();
    let server_name = exe
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let text = if long && json {
        serde_json::json!({
            "name": "mock-node",
            "server_name": server_name,
            "version": cfg.version,
            "commit": "mock",
        })
        .to_string()
    } else if long {
        format!(
            "name: mock-node\nserver_name: {server_name}\nversion: {}\ncommit: mock",
            cfg.version
        )
    } else {
        cfg.version.clone()
    };
    println!("{text}");
    0
}

fn cmd_pre_upgrade(cfg: &Config, args: &[String]) -> i32 {
    let home = home_dir(args);
    let counter = home.join(format!("mock-pre-upgrade-calls-{}", cfg.version));
    let calls = match fs::read_to_string(&counter) {
        Ok(text) => parse_height(&text, "pre-upgrade call count"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => die(format_args!("reading {}: {e}", counter.display())),
    };
    fs::write(&counter, format!("{}\n", calls + 1)).or_die_at("writing", &counter);
    let last = cfg.pre_upgrade_exit.len().saturating_sub(1);
    let index = usize::try_from(calls).map_or(last, |n| n.min(last));
    let code = cfg.pre_upgrade_exit.get(index).copied().unwrap_or(0);
    event!(&home, "pre-upgrade {} {code}", cfg.version);
    println!("pre-upgrade {} call={} exit={code}", cfg.version, calls + 1);
    code
}

fn cmd_echo_args(args: &[String]) -> i32 {
    let mut out = io::stdout().lock();
    for arg in args {
        let _ = writeln!(out, "{arg}");
    }
    0
}

fn cmd_cat_stdin() -> i32 {
    let mut out = io::stdout().lock();
    io::copy(&mut io::stdin().lock(), &mut out).or_die("copying stdin to stdout");
    out.flush().or_die("flushing stdout");
    0
}

// ---------------------------------------------------------------------------
// `start`: the chain.
// ---------------------------------------------------------------------------

/// Flags of `start` the mock understands; everything else is ignored.
struct StartOpts {
    home: PathBuf,
    /// 0 means "no halt height", like the SDK.
    halt_height: u64,
    skip_heights: Vec<u64>,
    /// `--rpc.laddr tcp://<ip>:<port>`: where to answer `GET /status`.
    rpc_laddr: Option<String>,
}

impl StartOpts {
    fn parse(args: &[String]) -> Self {
        let halt_height =
            flag_value(args, "halt-height").map_or(0, |v| parse_height(&v, "--halt-height"));
        Self {
            home: home_dir(args),
            halt_height,
            skip_heights: skip_heights(args),
            rpc_laddr: flag_value(args, "rpc.laddr"),
        }
    }
}

/// `--unsafe-skip-upgrades h1 h2 ...` (values up to the next flag; commas and
/// the `=` form are accepted too).
fn skip_heights(args: &[String]) -> Vec<u64> {
    const FLAG: &str = "--unsafe-skip-upgrades";
    let mut values: Vec<&str> = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if arg == FLAG {
            values.extend(
                args[i + 1..]
                    .iter()
                    .take_while(|a| !a.starts_with('-'))
                    .map(String::as_str),
            );
        } else if let Some(v) = arg.strip_prefix(FLAG).and_then(|r| r.strip_prefix('=')) {
            values.push(v);
        }
    }
    values
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|v| !v.is_empty())
        .map(|v| parse_height(v, "--unsafe-skip-upgrades height"))
        .collect()
}

fn cmd_start(cfg: Config, args: &[String]) -> i32 {
    let opts = StartOpts::parse(args);
    if cfg.fail_start {
        eprintln!("Error: mock node configured to fail on start (fail_start)");
        record_event(&opts.home, "exit 1");
        return 1;
    }
    let signals = spawn_signal_thread();
    let Some(node) = Node::open(cfg, &opts.home) else {
        record_event(&opts.home, "exit 1");
        return 1;
    };
    if let Some(laddr) = &opts.rpc_laddr {
        serve_rpc(
            laddr,
            node_id(&opts.home),
            Arc::clone(&node.committed),
            Arc::clone(&node.committed_at),
        );
    }
    node.run(&opts, &signals)
}

/// Blocks the handled signals in this (still single-threaded) process and
/// forwards them from a dedicated thread doing `sigwait`.
fn spawn_signal_thread() -> Receiver<Signal> {
    let mut set = SigSet::empty();
    for sig in HANDLED_SIGNALS {
        set.add(sig);
    }
    set.thread_block().or_die("blocking signals");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        while let Ok(sig) = set.wait() {
            if tx.send(sig).is_err() {
                break;
            }
        }
    });
    rx
}

/// Short signal name as recorded in events: `TERM`, `INT`, ...
fn signal_name(sig: Signal) -> &'static str {
    let name = sig.as_str();
    name.strip_prefix("SIG").unwrap_or(name)
}

/// What the block loop does after a tick.
enum Step {
    Continue,
    /// Upgrade needed with `keep-running`: stay alive, no more blocks.
    Stalled,
    Exit(i32),
}

struct Node {
    cfg: Config,
    home: PathBuf,
    data: PathBuf,
    /// Exclusive flock on `application.db/LOCK`; `None` once released.
    lock: Option<Flock<File>>,
    /// Open write-ahead logs (`000001.log`), one per store in `STORES` order.
    wals: Vec<File>,
    cs_wal: File,
    /// Next table file number, one per store in `TABLE_STORES` order.
    next_table: Vec<u64>,
    height: u64,
    /// `height`, for the RPC thread.
    committed: Arc<AtomicU64>,
    /// When `height` was committed (Unix milliseconds), for the RPC's `latest_block_time`.
    committed_at: Arc<AtomicU64>,
}

impl Node {
    /// Opens the data directory and takes the database lock. Returns `None`
    /// (after printing the leveldb error) when another node holds the lock.
    fn open(cfg: Config, home: &Path) -> Option<Self> {
        let data = home.join("data");
        let app_db = data.join(STORES[0]);
        fs::create_dir_all(&app_db).or_die_at("creating", &app_db);
        let lock = lock_db(&app_db.join("LOCK"))?;
        let wals = STORES.iter().map(|s| init_store(&data.join(s))).collect();
        let next_table = TABLE_STORES
            .iter()
            .map(|s| next_table_number(&data.join(s)))
            .collect();
        let cs_dir = data.join("cs.wal");
        fs::create_dir_all(&cs_dir).or_die_at("creating", &cs_dir);
        let cs_wal = open_append(&cs_dir.join("wal"));
        let height = read_height(&data.join("priv_validator_state.json"));
        let node = Self {
            cfg,
            home: home.to_owned(),
            data,
            lock: Some(lock),
            wals,
            cs_wal,
            next_table,
            height,
            committed: Arc::new(AtomicU64::new(height)),
            committed_at: Arc::new(AtomicU64::new(unix_millis())),
        };
        node.mark_opened();
        Some(node)
    }

    fn app_log(&self) -> PathBuf {
        self.data.join(STORES[0]).join("LOG")
    }

    /// Appends `opened` to the application.db LOG, warning first when the
    /// previous run did not close it.
    fn mark_opened(&self) {
        let path = self.app_log();
        let text = fs::read_to_string(&path).or_die_at("reading", &path);
        if text.lines().last() == Some("opened") {
            log!("WRN", "recovering after unclean shutdown module=server");
        }
        writeln!(open_append(&path), "opened").or_die_at("writing", &path);
    }

    fn run(mut self, opts: &StartOpts, signals: &Receiver<Signal>) -> i32 {
        log!(
            "INF",
            "starting node version={} height={} module=server",
            self.cfg.version,
            self.height
        );
        event!(
            &self.home,
            "start {} height={}",
            self.cfg.version,
            self.height
        );
        if opts.halt_height > 0 && self.height >= opts.halt_height {
            return self.halt(opts.halt_height);
        }
        let block_time = Duration::from_millis(self.cfg.block_time_ms);
        let mut next_block = Instant::now() + block_time;
        let mut producing = true;
        loop {
            let received = if producing {
                signals.recv_timeout(next_block.saturating_duration_since(Instant::now()))
            } else {
                signals.recv().map_err(|_| RecvTimeoutError::Disconnected)
            };
            match received {
                Ok(sig) => {
                    if let Some(code) = self.on_signal(sig) {
                        return code;
                    }
                }
                Err(RecvTimeoutError::Timeout) => match self.step(opts) {
                    Step::Continue => next_block = Instant::now() + block_time,
                    Step::Stalled => producing = false,
                    Step::Exit(code) => return code,
                },
                Err(RecvTimeoutError::Disconnected) => die("signal handling thread stopped"),
            }
        }
    }

    /// Records a signal; returns the exit code when it stops the node.
    fn on_signal(&mut self, sig: Signal) -> Option<i32> {
        let name = signal_name(sig);
        event!(&self.home, "signal {name}");
        if !matches!(sig, Signal::SIGTERM | Signal::SIGINT) {
            log!("INF", "received signal {name}, ignoring module=server");
            return None;
        }
        if self.cfg.ignore_term {
            log!(
                "INF",
                "received signal {name}, ignoring it (ignore_term) module=server"
            );
            return None;
        }
        log!("INF", "flushing databases module=server");
        thread::sleep(Duration::from_millis(self.cfg.shutdown_ms));
        Some(self.shutdown(0))
    }

    /// Produces the next block (or stops at the upgrade / halt height).
    fn step(&mut self, opts: &StartOpts) -> Step {
        let h = self.height + 1;
        if let Some(plan) = self.cfg.upgrade.clone().filter(|p| p.height == h) {
            if !opts.skip_heights.contains(&h) {
                self.upgrade_needed(&plan);
                return match self.cfg.after_upgrade {
                    AfterUpgrade::Exit => Step::Exit(self.shutdown(2)),
                    AfterUpgrade::KeepRunning => Step::Stalled,
                };
            }
            log!(
                "INF",
                "UPGRADE \"{}\" SKIPPED at {h}: {} module=x/upgrade",
                plan.name,
                plan.info
            );
        }
        self.commit(h);
        if opts.halt_height > 0 && h >= opts.halt_height {
            if self.cfg.halt_keeps_running {
                self.halt_and_stay(h);
                return Step::Stalled;
            }
            return Step::Exit(self.halt(h));
        }
        Step::Continue
    }

    /// What `x/upgrade` does in `BeginBlock` at the plan height.
    fn upgrade_needed(&self, plan: &UpgradePlan) {
        let path = self.data.join("upgrade-info.json");
        let json = format!(
            "{{\"name\":{},\"time\":\"0001-01-01T00:00:00Z\",\"height\":{},\"info\":{}}}",
            json_string(&plan.name),
            plan.height,
            json_string(&plan.info)
        );
        // Plain truncate + write like Go's os.WriteFile: deliberately not atomic.
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .or_die_at("opening", &path);
        file.write_all(json.as_bytes()).or_die_at("writing", &path);
        let msg = format!(
            "UPGRADE \"{}\" NEEDED at height: {}: {}",
            plan.name, plan.height, plan.info
        );
        log!(stderr, "ERR", "{msg} module=x/upgrade");
        event!(&self.home, "upgrade-needed {} {}", plan.name, plan.height);
        let _ = writeln!(
            io::stderr().lock(),
            "CONSENSUS FAILURE!!! err={}",
            json_string(&msg)
        );
    }

    fn commit(&mut self, h: u64) {
        for (store, wal) in STORES.iter().zip(&mut self.wals) {
            wal.write_all(&wal_record(store, h))
                .or_die(format_args!("appending to {store}/000001.log"));
        }
        writeln!(self.cs_wal, "#ENDHEIGHT: {h}").or_die("appending to cs.wal/wal");
        if self.cfg.ldb_every > 0 && h % self.cfg.ldb_every == 0 {
            self.write_tables(h);
        }
        write_validator_state(&self.data, h);
        self.height = h;
        self.committed_at.store(unix_millis(), Ordering::SeqCst);
        self.committed.store(h, Ordering::SeqCst);
        log!("INF", "committed state height={h} module=state");
        if h % 10 == 0 {
            event!(&self.home, "block {h}");
        }
    }

    /// Writes one new immutable table file in each of `TABLE_STORES`.
    fn write_tables(&mut self, h: u64) {
        let bytes = table_bytes(h, self.cfg.ldb_bytes);
        for (store, number) in TABLE_STORES.iter().zip(&mut self.next_table) {
            let dir = self.data.join(store);
            let name = format!("{number:06}.ldb");
            let path = dir.join(&name);
            fs::write(&path, &bytes).or_die_at("writing", &path);
            let manifest = dir.join("MANIFEST-000001");
            writeln!(open_append(&manifest), "add-table {name} height={h}")
                .or_die_at("writing", &manifest);
            *number += 1;
        }
    }

    fn halt(&mut self, h: u64) -> i32 {
        log!("INF", "halt per configuration height {h} module=server");
        event!(&self.home, "halt {h}");
        self.shutdown(0)
    }

    /// SDK 0.50: `FinalizeBlock` fails with the halt error and the process
    /// stays up, producing no more blocks.
    fn halt_and_stay(&self, h: u64) {
        log!(
            "ERR",
            "CONSENSUS FAILURE!!! err=\"halt per configuration height {h} time 0\" module=consensus"
        );
        event!(&self.home, "halt-running {h}");
    }

    /// Clean close: LOG `closed`, lock released, then the `exit` event.
    fn shutdown(&mut self, code: i32) -> i32 {
        let path = self.app_log();
        writeln!(open_append(&path), "closed").or_die_at("writing", &path);
        drop(self.lock.take());
        event!(&self.home, "exit {code}");
        code
    }
}

/// Takes leveldb's exclusive non-blocking flock; `None` if already held.
fn lock_db(path: &Path) -> Option<Flock<File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .or_die_at("opening", path);
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Some(lock),
        Err((_, Errno::EAGAIN)) => {
            eprintln!("Error: failed to initialize database: resource temporarily unavailable");
            None
        }
        Err((_, errno)) => die(format_args!(
            "failed to initialize database: {}",
            errno.desc()
        )),
    }
}

fn open_append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .or_die_at("opening", path)
}

/// Creates the goleveldb files of one store if missing; returns its open WAL.
fn init_store(dir: &Path) -> File {
    fs::create_dir_all(dir).or_die_at("creating", dir);
    let current = dir.join("CURRENT");
    if !current.exists() {
        fs::write(&current, "MANIFEST-000001\n").or_die_at("writing", &current);
    }
    let manifest = dir.join("MANIFEST-000001");
    if !manifest.exists() {
        fs::write(&manifest, "comparator leveldb.BytewiseComparator\n")
            .or_die_at("writing", &manifest);
    }
    for name in ["LOCK", "LOG"] {
        open_append(&dir.join(name));
    }
    open_append(&dir.join("000001.log"))
}

/// One more than the highest `NNNNNN.ldb` in `dir` (at least 2: 1 is the WAL).
fn next_table_number(dir: &Path) -> u64 {
    let entries = fs::read_dir(dir).or_die_at("listing", dir);
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".ldb")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .map_or(2, |n| (n + 1).max(2))
}

#[derive(Deserialize)]
struct ValidatorState {
    height: String,
}

/// Last committed height from `priv_validator_state.json` (0 if absent).
fn read_height(path: &Path) -> u64 {
    match fs::read_to_string(path) {
        Ok(text) => {
            let state: ValidatorState = serde_json::from_str(&text).or_die_at("parsing", path);
            parse_height(&state.height, "priv_validator_state height")
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => die(format_args!("reading {}: {e}", path.display())),
    }
}

/// Rewrites `priv_validator_state.json` atomically (temp file + rename).
fn write_validator_state(data: &Path, h: u64) {
    let path = data.join("priv_validator_state.json");
    let tmp = data.join("priv_validator_state.json.tmp");
    let json = format!("{{\"height\":\"{h}\",\"round\":0,\"step\":3}}");
    fs::write(&tmp, json).or_die_at("writing", &tmp);
    fs::rename(&tmp, &path).or_die_at("renaming into place", &path);
}

/// A `WAL_RECORD_BYTES`-byte write-ahead log record for block `h`.
fn wal_record(store: &str, h: u64) -> Vec<u8> {
    let mut record = format!("block={h} store={store} ").into_bytes();
    record.resize(WAL_RECORD_BYTES - 1, b'.');
    record.push(b'\n');
    record
}

/// `len` pseudo-random bytes (xorshift64), deterministic by height.
fn table_bytes(h: u64, len: usize) -> Vec<u8> {
    let mut state = h.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// A JSON string literal (quoted and escaped).
fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

// ---------------------------------------------------------------------------
// `--rpc.laddr`: CometBFT's `GET /status`, node ID and height only.
// ---------------------------------------------------------------------------

/// The node's ID from `<home>/config/node_key.json`, which is written first
/// when missing (as `CometBFT` does on its first start): 64 bytes whose last 32
/// stand for the ed25519 public key; the ID is the hex of the first 20 bytes
/// of their SHA-256.
fn node_id(home: &Path) -> String {
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
fn serve_rpc(laddr: &str, id: String, committed: Arc<AtomicU64>, committed_at: Arc<AtomicU64>) {
    let addr = laddr.strip_prefix("tcp://").unwrap_or(laddr);
    let listener = TcpListener::bind(addr).or_die(format_args!("binding --rpc.laddr {laddr}"));
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let at = committed_at.load(Ordering::SeqCst);
            answer_status(stream, &id, committed.load(Ordering::SeqCst), at);
        }
    });
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `2026-12-07T02:47:07.123Z`, as `CometBFT` writes block times.
fn rfc3339_millis(millis: u64) -> String {
    i64::try_from(millis)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn answer_status(mut stream: TcpStream, id: &str, height: u64, at_millis: u64) {
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
