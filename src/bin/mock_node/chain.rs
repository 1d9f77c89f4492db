//! `start`: the chain. Its flags, the signal thread, and the block loop that writes the stores,
//! halts at an upgrade height like `x/upgrade` and records each step.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::Flock;
use nix::sys::signal::{SigSet, Signal};

use crate::common::{OrDie, clock, die, flag_value, home_dir, parse_height, record_event};
use crate::rpc::{node_id, serve_rpc, unix_millis};
use crate::store::{
    STORES, TABLE_STORES, init_store, json_string, lock_db, next_table_number, open_append,
    read_height, table_bytes, wal_record, write_validator_state,
};
use crate::{AfterUpgrade, Config, UpgradePlan};

/// Signals recorded by `start`; TERM and INT also stop the node.
pub(crate) const HANDLED_SIGNALS: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Flags of `start` the mock understands; everything else is ignored.
pub(crate) struct StartOpts {
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
pub(crate) fn skip_heights(args: &[String]) -> Vec<u64> {
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

pub(crate) fn cmd_start(cfg: Config, args: &[String]) -> i32 {
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
pub(crate) fn spawn_signal_thread() -> Receiver<Signal> {
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
pub(crate) fn signal_name(sig: Signal) -> &'static str {
    let name = sig.as_str();
    name.strip_prefix("SIG").unwrap_or(name)
}

/// What the block loop does after a tick.
pub(crate) enum Step {
    Continue,
    /// Upgrade needed with `keep-running`: stay alive, no more blocks.
    Stalled,
    Exit(i32),
}

pub(crate) struct Node {
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
