//! Benchmarks of the release `cosmovisor` against baselines measured in the same run (issue #6).
//!
//! `bench/run.sh [--quick]` builds the release binaries and runs this example, which prints one
//! markdown table (figure, ours, baseline, ratio, goal, met?) and the machine it ran on. Every
//! figure is either a ratio against a baseline measured in the same run, interleaved with ours
//! (the machine may be busy with other work), or an absolute budget (memory, idle CPU). It needs
//! only the release binaries, `/bin/sh`, `bash` (for `$EPOCHREALTIME`), `cat`, `cp` and `sync`,
//! and it talks to nothing but loopback.
//!
//! Options: `--quick` (fewer and smaller runs, 10 s idle window), `--runs N` (upgrades for the
//! latency percentiles), `--backup-gib N` (size of the backed-up `data/`, default 1),
//! `--skip-backup`, `--tmp DIR` (where homes and files go; default `$TMPDIR` or `/tmp`),
//! `--cosmovisor PATH` (default: the `cosmovisor` built beside this example), `--only A,B`
//! (sections: upgrade, ahead, throughput, idle, startup, backup, sha256, download).
//!
//! This is not production code and is not installed: it lives in `examples/`.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

/// `DAEMON_NAME` of every fake daemon.
const NAME: &str = "benchd";
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// Upstream's default (and only sensible) poll interval: its detection latency is uniform on
/// `[0, POLL_MS)`.
const POLL_MS: f64 = 300.0;

/// A fake node for the upgrade figures. It records, with bash's `$EPOCHREALTIME` (wall clock,
/// microseconds, no process spawned), `start <t>` once its TERM trap is installed (`t` is taken
/// at the script's first line) and `term <trap entered> <about to exit>` on SIGTERM, in
/// `$DAEMON_HOME/bench-events`. It answers `pre-upgrade` with 1 ("not implemented") at once.
/// `sleep` gets no stdout/stderr, so no orphan keeps cosmovisor's pipes open.
const UPGRADE_DAEMON: &str = r#"#!/bin/bash
t0=$EPOCHREALTIME
case "${1:-}" in
  pre-upgrade) exit 1 ;;
  version) echo v1.0.0; exit 0 ;;
esac
child=
trap 'tt=$EPOCHREALTIME; [ -n "$child" ] && kill "$child" 2>/dev/null; printf "term %s %s\n" "$tt" "$EPOCHREALTIME" >> "$DAEMON_HOME/bench-events"; exit 0' TERM
printf 'start %s\n' "$t0" >> "$DAEMON_HOME/bench-events"
while :; do
  sleep 1000 </dev/null >/dev/null 2>&1 &
  child=$!
  wait "$child"
done
"#;

/// A node that writes the file named by its first argument to stdout.
const CAT_DAEMON: &str = "#!/bin/sh\nexec cat \"$1\"\n";
/// An idle node; its stdout and stderr stay open, so cosmovisor's copy threads stay alive.
const IDLE_DAEMON: &str = "#!/bin/sh\nexec sleep 100000 </dev/null\n";
/// A node whose `version` is as cheap as a shell script gets.
const VERSION_DAEMON: &str = "#!/bin/sh\necho v1.0.0\n";

struct Opts {
    quick: bool,
    runs: usize,
    backup_gib: f64,
    skip_backup: bool,
    tmp: PathBuf,
    cosmovisor: PathBuf,
    /// Sections to run (all when empty).
    only: Vec<String>,
}

impl Opts {
    fn runs_section(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == name)
    }
}

/// The sections, in the order they run.
const SECTIONS: [&str; 8] = [
    "upgrade",
    "ahead",
    "throughput",
    "idle",
    "startup",
    "backup",
    "sha256",
    "download",
];

fn parse_opts() -> anyhow::Result<Opts> {
    let mut quick = false;
    let mut runs = None;
    let mut backup_gib = 1.0;
    let mut skip_backup = false;
    let mut tmp = std::env::temp_dir();
    let mut cosmovisor = None;
    let mut only = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => quick = true,
            "--runs" => runs = Some(value("--runs")?.parse().context("--runs")?),
            "--backup-gib" => {
                backup_gib = value("--backup-gib")?.parse().context("--backup-gib")?;
            }
            "--skip-backup" => skip_backup = true,
            "--tmp" => tmp = PathBuf::from(value("--tmp")?),
            "--cosmovisor" => cosmovisor = Some(PathBuf::from(value("--cosmovisor")?)),
            "--only" => {
                for name in value("--only")?.split(',') {
                    ensure!(
                        SECTIONS.contains(&name),
                        "--only: unknown section {name:?} (one of {SECTIONS:?})"
                    );
                    only.push(name.to_owned());
                }
            }
            "-h" | "--help" => {
                println!(
                    "usage: bench [--quick] [--runs N] [--backup-gib N] [--skip-backup] [--tmp DIR] [--cosmovisor PATH] [--only upgrade,ahead,throughput,idle,startup,backup,sha256,download]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let cosmovisor = if let Some(path) = cosmovisor {
        path
    } else {
        // target/release/examples/bench → target/release/cosmovisor
        let exe = std::env::current_exe().context("where am I")?;
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .context("no target dir")?;
        dir.join("cosmovisor")
    };
    ensure!(
        cosmovisor.is_file(),
        "{} not found: run `cargo build --release` first (bench/run.sh does)",
        cosmovisor.display()
    );
    ensure!(backup_gib > 0.0, "--backup-gib must be positive");
    Ok(Opts {
        quick,
        runs: runs.unwrap_or(if quick { 10 } else { 30 }),
        backup_gib,
        skip_backup,
        tmp,
        cosmovisor,
        only,
    })
}

/// One line of the table.
struct Row {
    figure: String,
    ours: String,
    baseline: String,
    ratio: String,
    goal: String,
    met: Option<bool>,
}

impl Row {
    fn met_cell(&self) -> &'static str {
        match self.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        }
    }
}

struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    fn row(
        &mut self,
        figure: &str,
        ours: String,
        baseline: String,
        ratio: String,
        goal: &str,
        met: Option<bool>,
    ) {
        eprintln!("  {figure}: ours {ours}, baseline {baseline}, ratio {ratio}");
        self.rows.push(Row {
            figure: figure.to_owned(),
            ours,
            baseline,
            ratio,
            goal: goal.to_owned(),
            met,
        });
    }

    fn note(&mut self, note: String) {
        self.notes.push(note);
    }
}

fn main() -> anyhow::Result<()> {
    let opts = parse_opts()?;
    let tmp = tempfile::Builder::new()
        .prefix("cv-bench-")
        .tempdir_in(&opts.tmp)
        .with_context(|| format!("cannot make a temp dir in {}", opts.tmp.display()))?;
    let machine = machine(tmp.path());
    let load_start = loadavg();
    eprintln!("cosmovisor: {}", opts.cosmovisor.display());
    eprintln!("temp dir:   {}", tmp.path().display());
    let mut report = Report {
        rows: Vec::new(),
        notes: Vec::new(),
    };

    if opts.runs_section("upgrade") {
        eprintln!("== upgrade detection and downtime ({} upgrades)", opts.runs);
        upgrade_latency(&opts, tmp.path(), &mut report)?;
    }
    if opts.runs_section("ahead") {
        eprintln!("== downtime of an upgrade prepared ahead vs downloaded at the halt");
        ahead(&opts, tmp.path(), &mut report)?;
    }
    if opts.runs_section("throughput") {
        eprintln!("== log passthrough throughput");
        throughput(&opts, tmp.path(), &mut report)?;
    }
    if opts.runs_section("idle") {
        eprintln!("== idle memory and CPU");
        idle(&opts, tmp.path(), &mut report)?;
    }
    if opts.runs_section("startup") {
        eprintln!("== start-up overhead");
        startup(&opts, tmp.path(), &mut report)?;
    }
    if opts.skip_backup {
        eprintln!("== backup: skipped (--skip-backup)");
    } else if opts.runs_section("backup") {
        eprintln!("== backup of a {} GiB data/", opts.backup_gib);
        backup(&opts, tmp.path(), &mut report)?;
    }
    if opts.runs_section("sha256") {
        eprintln!("== sha256 while reading from loopback");
        sha256(&opts, &mut report)?;
    }
    if opts.runs_section("download") {
        eprintln!("== overlapped download, verify and unpack");
        download(&opts, tmp.path(), &mut report)?;
    }

    let machine = format!(
        "{machine} Load average at start {load_start}, at end {}.",
        loadavg()
    );
    print_report(&opts, &machine, &report);
    Ok(())
}

fn print_report(opts: &Opts, machine: &str, report: &Report) {
    let mut out = String::new();
    let command = if opts.quick {
        "bench/run.sh --quick"
    } else {
        "bench/run.sh"
    };
    let _ = writeln!(out, "Command: `{command}`\n");
    let _ = writeln!(out, "{machine}\n");
    let _ = writeln!(out, "| figure | ours | baseline | ratio | goal | met? |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for row in &report.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            row.figure,
            row.ours,
            row.baseline,
            row.ratio,
            row.goal,
            row.met_cell()
        );
    }
    if !report.notes.is_empty() {
        out.push('\n');
        for note in &report.notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    print!("{out}");
}

// ---------------------------------------------------------------------------
// Homes, fake daemons, the supervisor

/// A node home in the cosmovisor layout.
struct Home {
    path: PathBuf,
}

impl Home {
    fn new(root: &Path, tag: &str) -> anyhow::Result<Home> {
        let path = root.join(tag);
        fs::create_dir_all(path.join("cosmovisor"))?;
        fs::create_dir_all(path.join("data"))?;
        std::os::unix::fs::symlink("genesis", path.join("cosmovisor/current"))?;
        Ok(Home { path })
    }

    /// Installs `script` as `cosmovisor/<version>/bin/benchd` (`genesis` or `upgrades/<name>`).
    fn install(&self, version: &str, script: &str) -> anyhow::Result<PathBuf> {
        let bin = self.path.join("cosmovisor").join(version).join("bin");
        fs::create_dir_all(&bin)?;
        let bin = bin.join(NAME);
        fs::write(&bin, script)?;
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755))?;
        Ok(bin)
    }

    fn data(&self) -> PathBuf {
        self.path.join("data")
    }

    /// `cosmovisor <args>` with exactly this home's environment plus `extra`.
    fn cosmovisor(&self, opts: &Opts, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(&opts.cosmovisor);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DAEMON_HOME", &self.path)
            .env("DAEMON_NAME", NAME)
            .env("DAEMON_POLL_INTERVAL", "300ms")
            .env("DAEMON_SHUTDOWN_GRACE", "10s")
            .env("COSMOVISOR_COLOR_LOGS", "false")
            .stdin(Stdio::null())
            .process_group(0);
        for (key, value) in extra {
            cmd.env(key, value);
        }
        cmd
    }

    /// Writes `data/upgrade-info.json` atomically (temp file + rename), as x/upgrade's
    /// replacement would, and returns the wall-clock time just after the rename.
    fn write_plan(&self, name: &str, height: u64) -> anyhow::Result<i64> {
        let tmp = self.data().join("upgrade-info.json.tmp");
        fs::write(
            &tmp,
            format!(
                r#"{{"name":"{name}","time":"0001-01-01T00:00:00Z","height":{height},"info":""}}"#
            ),
        )?;
        fs::rename(&tmp, self.data().join("upgrade-info.json"))?;
        Ok(now_us())
    }

    /// The `start` timestamps and the `term` (trap entered, exit) timestamps recorded by
    /// [`UPGRADE_DAEMON`], in µs.
    fn events(&self) -> (Vec<i64>, Vec<(i64, i64)>) {
        events_in(&self.path)
    }
}

fn events_in(dir: &Path) -> (Vec<i64>, Vec<(i64, i64)>) {
    let text = fs::read_to_string(dir.join("bench-events")).unwrap_or_default();
    let mut starts = Vec::new();
    let mut terms = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (
            words.next(),
            words.next().and_then(parse_epoch),
            words.next().and_then(parse_epoch),
        ) {
            (Some("start"), Some(t), _) => starts.push(t),
            (Some("term"), Some(entered), Some(exit)) => terms.push((entered, exit)),
            _ => {}
        }
    }
    (starts, terms)
}

/// `1795677066.979367` ($EPOCHREALTIME) → µs since the epoch.
fn parse_epoch(s: &str) -> Option<i64> {
    let (secs, frac) = s.split_once(['.', ','])?;
    let mut micros = frac.to_owned();
    micros.truncate(6);
    while micros.len() < 6 {
        micros.push('0');
    }
    Some(secs.parse::<i64>().ok()? * 1_000_000 + micros.parse::<i64>().ok()?)
}

/// Wall-clock µs since the epoch (the clock `$EPOCHREALTIME` reads).
fn now_us() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

/// A running process group, killed on drop so that a failed run leaks nothing.
struct Group {
    child: Child,
}

impl Group {
    fn spawn(cmd: &mut Command) -> anyhow::Result<Group> {
        let child = cmd.spawn().context("cannot spawn")?;
        Ok(Group { child })
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX))
    }

    /// SIGTERM (cosmovisor forwards it to the daemon), then waits up to 10 s.
    fn stop(mut self) -> anyhow::Result<()> {
        let _ = kill(self.pid(), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(5));
        }
        bail!("cosmovisor did not stop within 10 s of SIGTERM")
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = killpg(self.pid(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Polls `condition` every 2 ms, failing with `what` after `limit`.
fn wait_until(
    what: &str,
    limit: Duration,
    mut condition: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while !condition() {
        ensure!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

const LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Statistics and formatting

/// Nearest-rank percentile (`q` in 0..=1) of `values`.
fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * len_f64(sorted.len())).ceil().max(1.0);
    let index = usize_of(rank).min(sorted.len()) - 1;
    sorted[index]
}

fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

/// The median of `ours[i] / base[i]`: each pair ran back to back, so a change of load on the
/// machine between pairs cancels out.
fn paired_ratio(ours: &[f64], base: &[f64]) -> f64 {
    let ratios: Vec<f64> = ours.iter().zip(base).map(|(o, b)| o / b).collect();
    median(&ratios)
}

#[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
fn len_f64(n: usize) -> f64 {
    n as f64
}

#[expect(
    clippy::cast_precision_loss,
    reason = "byte counts and ns far below 2^52"
)]
fn u64_f64(n: u64) -> f64 {
    n as f64
}

#[expect(clippy::cast_precision_loss, reason = "µs differences far below 2^52")]
fn i64_f64(n: i64) -> f64 {
    n as f64
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "small non-negative values"
)]
fn usize_of(x: f64) -> usize {
    x.max(0.0) as usize
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "small non-negative values"
)]
fn u64_of(x: f64) -> u64 {
    x.max(0.0) as u64
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn fmt_ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn fmt_ratio(r: f64) -> String {
    if r < 0.01 {
        format!("{r:.4}×")
    } else {
        format!("{r:.2}×")
    }
}

/// A small xorshift generator: deterministic data and jitter without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

// ---------------------------------------------------------------------------
// Upgrade detection and downtime

fn upgrade_latency(opts: &Opts, root: &Path, report: &mut Report) -> anyhow::Result<()> {
    let n = opts.runs;
    let home = Home::new(root, "upgrade")?;
    home.install("genesis", UPGRADE_DAEMON)?;
    for i in 1..=n {
        home.install(&format!("upgrades/v{i}"), UPGRADE_DAEMON)?;
    }
    let log = fs::File::create(root.join("upgrade.log"))?;
    let sup = Group::spawn(
        home.cosmovisor(opts, &["run", "start"], &[("UNSAFE_SKIP_BACKUP", "true")])
            .stdout(log.try_clone()?)
            .stderr(log),
    )?;
    let mut rng = Rng::new(now_us().unsigned_abs());
    let mut detection = Vec::new();
    for i in 1..=n {
        wait_until(&format!("daemon #{i} to start"), LIMIT, || {
            home.events().0.len() >= i
        })?;
        if i == 1 {
            // inotify watches data/ from this long after start; before, the 300 ms poll does.
            thread::sleep(cosmovisor::supervisor::watcher::INOTIFY_AFTER);
        }
        // A random moment, so that no phase lock with the 300 ms poll can flatter us.
        thread::sleep(Duration::from_millis(rng.range(20, 120)));
        let written = home.write_plan(&format!("v{i}"), 10 * u64::try_from(i)?)?;
        wait_until(&format!("daemon #{i} to get SIGTERM"), LIMIT, || {
            home.events().1.len() >= i
        })?;
        let (_, terms) = home.events();
        detection.push(i64_f64(terms[i - 1].0 - written) / 1000.0);
    }
    wait_until("the last daemon to start", LIMIT, || {
        home.events().0.len() > n
    })?;
    let (starts, terms) = home.events();
    let downtime: Vec<f64> = (0..n)
        .map(|i| i64_f64(starts[i + 1] - terms[i].1) / 1000.0)
        .collect();
    sup.stop()?;

    let (signal_floor, start_floor) = floors(root)?;

    let p50 = percentile(&detection, 0.5);
    let p99 = percentile(&detection, 0.99);
    // Upstream polls every 300 ms: the delay to its next look is uniform on [0, 300 ms).
    let base50 = 0.5 * POLL_MS;
    let base99 = 0.99 * POLL_MS;
    report.row(
        "upgrade detection p50: upgrade-info.json renamed in → daemon gets SIGTERM (inotify)",
        fmt_ms(p50),
        format!("{} (300 ms poll)", fmt_ms(base50)),
        fmt_ratio(p50 / base50),
        "—",
        None,
    );
    report.row(
        "upgrade detection p99",
        fmt_ms(p99),
        format!("{} (300 ms poll)", fmt_ms(base99)),
        fmt_ratio(p99 / base99),
        "p99 ≤ 10 ms",
        Some(p99 <= 10.0),
    );
    let d50 = percentile(&downtime, 0.5);
    let d99 = percentile(&downtime, 0.99);
    report.row(
        "downtime p50: old daemon exits → new daemon starts (UNSAFE_SKIP_BACKUP=true)",
        fmt_ms(d50),
        "—".into(),
        "—".into(),
        "—",
        None,
    );
    report.row(
        "downtime p99",
        fmt_ms(d99),
        "—".into(),
        "—".into(),
        "p99 ≤ 50 ms",
        Some(d99 <= 50.0),
    );
    report.note(format!(
        "Upgrade figures: {n} upgrades in one `cosmovisor run start` (DAEMON_POLL_INTERVAL=300ms, \
         pre-upgrade exits 1 at once), the plan written at a random 20–120 ms after the daemon \
         started (the first one after the 1 s start-up window, before which inotify is not set up \
         and the poll alone sees the file); percentiles are nearest-rank (with n={n}, p99 is the maximum). The 300 ms-poll \
         baseline is analytic: uniform on [0, 300 ms), p50 150 ms, p99 297 ms. Detection p90 {}, max \
         {}; downtime p90 {}, max {}.",
        fmt_ms(percentile(&detection, 0.9)),
        fmt_ms(percentile(&detection, 1.0)),
        fmt_ms(percentile(&downtime, 0.9)),
        fmt_ms(percentile(&downtime, 1.0)),
    ));
    report.note(format!(
        "Timestamps are wall-clock (CLOCK_REALTIME) from bash's `$EPOCHREALTIME` in the fake \
         daemon (no `date` spawned) and `SystemTime::now()` in the bench. Measurement floors, \
         without cosmovisor: kill(SIGTERM) → trap timestamp median {}; spawn → script's first \
         timestamp (fork+exec+bash start-up, counted in downtime) median {}. Not subtracted.",
        fmt_ms(signal_floor),
        fmt_ms(start_floor)
    ));
    Ok(())
}

/// A fake node's gRPC answering `CurrentPlan` with `plan` (name, height, info) over h2c, from a
/// thread, until the process ends.
fn grpc_plan(name: &str, height: u64, info: &str) -> anyhow::Result<String> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(u8::try_from(v & 0x7f).unwrap_or(0) | 0x80);
            v >>= 7;
        }
        out.push(u8::try_from(v).unwrap_or(0));
    }
    fn field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
        varint(out, (number << 3) | 2);
        varint(out, u64::try_from(bytes.len()).unwrap_or(0));
        out.extend_from_slice(bytes);
    }
    let mut plan = Vec::new();
    field(&mut plan, 1, name.as_bytes());
    varint(&mut plan, 3 << 3);
    varint(&mut plan, height);
    field(&mut plan, 4, info.as_bytes());
    let mut message = Vec::new();
    field(&mut message, 1, &plan);
    let mut body = vec![0u8];
    body.extend_from_slice(&u32::try_from(message.len())?.to_be_bytes());
    body.extend_from_slice(&message);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?.to_string();
    listener.set_nonblocking(true)?;
    thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            while let Ok((socket, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let Ok(mut connection) = h2::server::handshake(socket).await else {
                        return;
                    };
                    while let Some(Ok((_, mut respond))) = connection.accept().await {
                        let Ok(response) = http::Response::builder()
                            .status(200)
                            .header("content-type", "application/grpc")
                            .body(())
                        else {
                            return;
                        };
                        let Ok(mut send) = respond.send_response(response, false) else {
                            return;
                        };
                        let _ = send.send_data(bytes::Bytes::from(body.clone()), false);
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                        let _ = send.send_trailers(trailers);
                    }
                });
            }
        });
    });
    Ok(address)
}

/// One upgrade whose binary (`body`, served once from loopback) is downloaded ahead of the
/// halt (`ahead`: the chain's plan is known over gRPC while the node runs) or at the halt;
/// returns the downtime in ms (old daemon exits → new daemon starts).
fn ahead_run(
    opts: &Opts,
    root: &Path,
    tag: &str,
    body: &std::sync::Arc<Vec<u8>>,
    ahead: bool,
) -> anyhow::Result<f64> {
    let home = Home::new(root, tag)?;
    home.install("genesis", UPGRADE_DAEMON)?;
    let (url, server) = serve_once(std::sync::Arc::clone(body))?;
    // No archive suffix: the body is the binary itself.
    let url = url.replace("/release.tar.gz", "/benchd");
    let checksum = Sha256::digest(body.as_slice())
        .iter()
        .fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        });
    let info = format!(r#"{{"binaries":{{"any":"{url}?checksum=sha256:{checksum}"}}}}"#);
    let grpc = if ahead {
        grpc_plan("v2", 10, &info)?
    } else {
        "127.0.0.1:9".to_owned()
    };
    let interval = if ahead { "100ms" } else { "off" };
    let log = fs::File::create(root.join(format!("{tag}.log")))?;
    let sup = Group::spawn(
        home.cosmovisor(
            opts,
            &["run", "start"],
            &[
                ("UNSAFE_SKIP_BACKUP", "true"),
                ("DAEMON_ALLOW_DOWNLOAD_BINARIES", "true"),
                ("DAEMON_GRPC_ADDRESS", &grpc),
                ("COSMOVISOR_PLAN_CHECK_INTERVAL", interval),
            ],
        )
        .stdout(log.try_clone()?)
        .stderr(log),
    )?;
    wait_until("the daemon to start", LIMIT, || !home.events().0.is_empty())?;
    let staged = home.path.join("cosmovisor/upgrades/v2/bin").join(NAME);
    if ahead {
        wait_until("the binary downloaded ahead", LIMIT, || staged.is_file())?;
    }
    let tmp = home.data().join("upgrade-info.json.tmp");
    fs::write(
        &tmp,
        serde_json::json!({"name": "v2", "time": "0001-01-01T00:00:00Z", "height": 10, "info": info})
            .to_string(),
    )?;
    fs::rename(&tmp, home.data().join("upgrade-info.json"))?;
    wait_until("the new daemon to start", LIMIT, || {
        home.events().0.len() >= 2
    })?;
    let (starts, terms) = home.events();
    let terms = terms.first().context("no SIGTERM recorded")?;
    sup.stop()?;
    server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))?;
    fs::remove_dir_all(&home.path)?;
    Ok(i64_f64(starts[1] - terms.1) / 1000.0)
}

/// Downtime of an upgrade whose binary was prepared ahead (README "Before the upgrade") against
/// the same upgrade downloaded at the halt.
fn ahead(opts: &Opts, root: &Path, report: &mut Report) -> anyhow::Result<()> {
    let runs = if opts.quick { 3 } else { 5 };
    let size_mib: usize = if opts.quick { 32 } else { 128 };
    // The upgrade daemon, padded to a release binary's size after its endless loop (never read).
    let mut body = UPGRADE_DAEMON.as_bytes().to_vec();
    let mut rng = Rng::new(now_us().unsigned_abs());
    body.extend_from_slice(b"# ");
    while body.len() < size_mib * usize_of(u64_f64(MIB)) {
        let word = rng.range(0, u64::MAX);
        let _ = write!(body, "{word:x}");
    }
    body.push(b'\n');
    let body = std::sync::Arc::new(body);
    let (mut prepared, mut at_halt) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let a = ahead_run(opts, root, &format!("ahead-{i}"), &body, true)?;
        let h = ahead_run(opts, root, &format!("at-halt-{i}"), &body, false)?;
        eprintln!("  run {i}: prepared ahead {a:.1} ms, downloaded at the halt {h:.1} ms");
        prepared.push(a);
        at_halt.push(h);
    }
    let (a, h) = (median(&prepared), median(&at_halt));
    report.row(
        &format!(
            "upgrade downtime, binary ({size_mib} MiB) prepared ahead vs downloaded at the halt"
        ),
        fmt_ms(a),
        format!("{} (downloaded at the halt)", fmt_ms(h)),
        fmt_ratio(a / h),
        "< 1×",
        Some(a < h),
    );
    report.note(format!(
        "Prepared ahead: old daemon exits → new daemon starts, UNSAFE_SKIP_BACKUP=true, pre-upgrade \
         exits 1 at once; in one case the chain's plan is known over gRPC (COSMOVISOR_PLAN_CHECK_INTERVAL=100ms) \
         and the {size_mib} MiB binary (sha256-checked) is downloaded from loopback while the old \
         daemon runs; in the other the same plan is only learned from upgrade-info.json at the halt \
         and downloaded then. {runs} of each, interleaved, medians; a real network adds its \
         transfer time to the second only."
    ));
    Ok(())
}

/// How long the fake daemon itself takes to notice a SIGTERM and to start (median of 10 each,
/// no cosmovisor involved).
fn floors(root: &Path) -> anyhow::Result<(f64, f64)> {
    let dir = root.join("floor");
    fs::create_dir_all(&dir)?;
    let script = dir.join(NAME);
    fs::write(&script, UPGRADE_DAEMON)?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    let mut signal = Vec::new();
    let mut start = Vec::new();
    for i in 1..=10 {
        let spawned = now_us();
        let mut group = Group::spawn(
            Command::new(&script)
                .arg("start")
                .env("DAEMON_HOME", &dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0),
        )?;
        wait_until("the floor daemon to start", LIMIT, || {
            events_in(&dir).0.len() >= i
        })?;
        start.push(i64_f64(events_in(&dir).0[i - 1] - spawned) / 1000.0);
        thread::sleep(Duration::from_millis(30));
        let sent = now_us();
        kill(group.pid(), Signal::SIGTERM)?;
        wait_until("the floor daemon's TERM", LIMIT, || {
            events_in(&dir).1.len() >= i
        })?;
        signal.push(i64_f64(events_in(&dir).1[i - 1].0 - sent) / 1000.0);
        let _ = group.child.wait();
    }
    Ok((median(&signal), median(&start)))
}

// ---------------------------------------------------------------------------
// Throughput

/// Writes `total` bytes of `line_len`-byte lines (CometBFT-looking for short ones).
fn line_file(path: &Path, line_len: usize, total: u64) -> anyhow::Result<u64> {
    let mut block = Vec::with_capacity(usize::try_from(MIB)? + line_len);
    let mut height = 1_000_000u64;
    while block.len() + line_len <= usize::try_from(MIB)?.max(line_len) {
        let mut line = format!(
            "3:04PM INF committed state app_hash=7A1E93 height={height} module=state num_txs=0 "
        )
        .into_bytes();
        line.resize(line_len - 1, b'.');
        line.push(b'\n');
        block.extend_from_slice(&line);
        height += 1;
    }
    let mut file = std::io::BufWriter::new(fs::File::create(path)?);
    let mut written = 0u64;
    while written + u64::try_from(block.len())? <= total {
        file.write_all(&block)?;
        written += u64::try_from(block.len())?;
    }
    file.flush()?;
    Ok(written)
}

/// Runs `cmd` with its stdout on a pipe we read to the end; returns the time to EOF and exit.
/// One pass of a byte stream: wall time, and CPU time of every process involved (the child and
/// its descendants, once reaped, plus our reading thread).
struct Pass {
    wall: Duration,
    cpu_ticks: u64,
}

/// `(utime + stime of this thread, cutime + cstime of this process)` in clock ticks: fields
/// 14–17 of `/proc/thread-self/stat` (children's times count once they are reaped).
fn own_ticks() -> anyhow::Result<(u64, u64)> {
    let stat = fs::read_to_string("/proc/thread-self/stat")?;
    let after = &stat[stat.rfind(')').context("odd stat")? + 1..];
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    ensure!(fields.len() == 4, "odd stat");
    Ok((fields[0] + fields[1], fields[2] + fields[3]))
}

fn time_pipe(cmd: &mut Command, expect: u64) -> anyhow::Result<Pass> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let ticks_before = own_ticks()?;
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let mut out = child.stdout.take().context("no stdout")?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = out.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += u64::try_from(n)?;
    }
    let status = child.wait()?;
    let wall = start.elapsed();
    let ticks_after = own_ticks()?;
    ensure!(status.success(), "{cmd:?} failed: {status}");
    ensure!(total == expect, "read {total} bytes, expected {expect}");
    let cpu_ticks = (ticks_after.0 + ticks_after.1).saturating_sub(ticks_before.0 + ticks_before.1);
    Ok(Pass { wall, cpu_ticks })
}

fn throughput(opts: &Opts, root: &Path, report: &mut Report) -> anyhow::Result<()> {
    let home = Home::new(root, "throughput")?;
    home.install("genesis", CAT_DAEMON)?;
    let runs = if opts.quick { 3 } else { 5 };
    let mut cpu_notes = Vec::new();
    let cases: [(&str, usize, u64, f64); 2] = if opts.quick {
        [
            ("80-byte lines", 80, 128 * MIB, 0.5),
            ("1 MiB lines", usize::try_from(MIB)?, 256 * MIB, 0.8),
        ]
    } else {
        [
            ("80-byte lines", 80, 512 * MIB, 0.5),
            ("1 MiB lines", usize::try_from(MIB)?, GIB, 0.8),
        ]
    };
    for (label, line_len, total, goal) in cases {
        let file = root.join(format!("lines-{line_len}.log"));
        let size = line_file(&file, line_len, total)?;
        let file_arg = file.to_str().context("temp path is not UTF-8")?;
        let mut ours = Vec::new();
        let mut base = Vec::new();
        // Warm-up (page cache, binaries).
        time_pipe(Command::new("cat").arg(&file), size)?;
        for _ in 0..runs {
            ours.push(time_pipe(
                &mut home.cosmovisor(opts, &["run", file_arg], &[]),
                size,
            )?);
            base.push(time_pipe(Command::new("cat").arg(&file), size)?);
            let rate = |p: &Pass| u64_f64(size) / u64_f64(MIB) / p.wall.as_secs_f64();
            if let (Some(o), Some(b)) = (ours.last(), base.last()) {
                eprintln!(
                    "  {label}: ours {:.0} MiB/s, baseline {:.0} MiB/s",
                    rate(o),
                    rate(b)
                );
            }
        }
        let rate = |p: &Pass| u64_f64(size) / u64_f64(MIB) / p.wall.as_secs_f64();
        // CPU seconds (all processes) per GiB passed.
        let tick_s = 1.0 / clock_ticks_per_sec();
        let cpu = |p: &Pass| u64_f64(p.cpu_ticks) * tick_s / (u64_f64(size) / u64_f64(GIB));
        let ours_cpu = median(&ours.iter().map(cpu).collect::<Vec<_>>());
        let base_cpu = median(&base.iter().map(cpu).collect::<Vec<_>>());
        cpu_notes.push(format!(
            "{label}: {ours_cpu:.2} s ours vs {base_cpu:.2} s baseline"
        ));
        let ours: Vec<f64> = ours.iter().map(rate).collect();
        let base: Vec<f64> = base.iter().map(rate).collect();
        let (ours_rate, base_rate) = (median(&ours), median(&base));
        let ratio = paired_ratio(&ours, &base);
        report.row(
            &format!(
                "log passthrough, {label} ({} MiB): daemon → cosmovisor → pipe reader",
                size / MIB
            ),
            format!("{ours_rate:.0} MiB/s"),
            format!("{base_rate:.0} MiB/s (daemon → pipe reader)"),
            fmt_ratio(ratio),
            &format!("≥ {goal}×"),
            Some(ratio >= goal),
        );
        fs::remove_file(&file)?;
    }
    report.note(format!(
        "Throughput: the daemon is `exec cat <file>` (file in the page cache); the reader is the \
         bench reading its pipe (default 64 KiB pipe) in 256 KiB reads; time from spawn to EOF \
         and exit; {runs} pairs (ours, then baseline, back to back); rates are medians, the \
         ratio is the median of the pairs' ratios. The upgrade-line scan is always on in \
         cosmovisor. CPU time of all processes (daemon, cosmovisor, reader) per GiB, medians, \
         a figure that other load on the machine disturbs less than the rates: {}. The rates \
         depend on how the kernel places 2 (baseline) or 3 (ours) busy processes on the \
         cores: compare the load averages.",
        cpu_notes.join("; ")
    ));
    Ok(())
}

// ---------------------------------------------------------------------------
// Idle memory and CPU

/// CPU time of every live thread of `pid` in ns (`/proc/<pid>/task/*/schedstat`), and
/// utime+stime in clock ticks (`/proc/<pid>/stat` fields 14 and 15, which include exited
/// threads).
fn cpu_of(pid: Pid) -> anyhow::Result<(u64, u64)> {
    let mut ns = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let text = fs::read_to_string(task?.path().join("schedstat")).unwrap_or_default();
        ns += text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = &stat[stat.rfind(')').context("odd stat")? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): field 14 is index 11.
    let ticks = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok((ns, ticks))
}

fn status_kib(pid: Pid, key: &str) -> anyhow::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with(key))
        .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
    let value = line.split_whitespace().nth(1).context("odd status line")?;
    Ok(value.parse()?)
}

fn idle(opts: &Opts, root: &Path, report: &mut Report) -> anyhow::Result<()> {
    let home = Home::new(root, "idle")?;
    home.install("genesis", IDLE_DAEMON)?;
    let log = fs::File::create(root.join("idle.log"))?;
    let sup = Group::spawn(
        home.cosmovisor(opts, &["run", "start"], &[])
            .stdout(log.try_clone()?)
            .stderr(log),
    )?;
    let pid = sup.pid();
    wait_until("the idle daemon to start", LIMIT, || {
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .is_ok_and(|children| !children.trim().is_empty())
    })?;
    thread::sleep(Duration::from_secs(1));
    let window = Duration::from_secs(if opts.quick { 10 } else { 60 });
    let (ns0, ticks0) = cpu_of(pid)?;
    let started = Instant::now();
    thread::sleep(window);
    let (ns1, ticks1) = cpu_of(pid)?;
    let elapsed = started.elapsed();
    let hwm = status_kib(pid, "VmHWM:")?;
    let rss = status_kib(pid, "VmRSS:")?;
    let threads = status_kib(pid, "Threads:")?;
    sup.stop()?;

    let hwm_mib = u64_f64(hwm) / 1024.0;
    report.row(
        "memory of cosmovisor supervising an idle daemon (VmHWM)",
        format!("{hwm_mib:.2} MiB"),
        "—".into(),
        "—".into(),
        "≤ 8 MiB",
        Some(hwm_mib <= 8.0),
    );
    let percent = u64_f64(ns1.saturating_sub(ns0)) / 1e9 / elapsed.as_secs_f64() * 100.0;
    let tick_ns = 1e9 / clock_ticks_per_sec();
    let tick_percent =
        u64_f64(ticks1.saturating_sub(ticks0)) * tick_ns / 1e9 / elapsed.as_secs_f64() * 100.0;
    report.row(
        &format!(
            "CPU of cosmovisor over {} s idle (300 ms poll)",
            window.as_secs()
        ),
        format!("{percent:.4}% of a core"),
        "—".into(),
        "—".into(),
        "≤ 0.05%",
        Some(percent <= 0.05),
    );
    report.note(format!(
        "Idle: daemon `exec sleep`; CPU is the sum of `/proc/<pid>/task/*/schedstat` (ns) over \
         the window; utime+stime from `/proc/<pid>/stat` agree: {} ticks = {tick_percent:.4}% \
         (10 ms resolution). VmRSS at the end {:.2} MiB, {threads} threads.",
        ticks1.saturating_sub(ticks0),
        u64_f64(rss) / 1024.0
    ));
    Ok(())
}

fn clock_ticks_per_sec() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, i64_f64)
}

// ---------------------------------------------------------------------------
// Start-up

fn time_run(cmd: &mut Command) -> anyhow::Result<f64> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let start = Instant::now();
    let status = cmd.status()?;
    let took = ms(start.elapsed());
    ensure!(status.success(), "{cmd:?} failed: {status}");
    Ok(took)
}

fn startup(opts: &Opts, root: &Path, report: &mut Report) -> anyhow::Result<()> {
    let home = Home::new(root, "startup")?;
    let bin = home.install("genesis", VERSION_DAEMON)?;
    let runs = if opts.quick { 20 } else { 50 };
    let mut ours = Vec::new();
    let mut base = Vec::new();
    // CPU time of the children (utime + stime, ticks), summed over the measured runs.
    let (mut ours_ticks, mut base_ticks) = (0, 0);
    for i in 0..runs + 3 {
        let t0 = own_ticks()?.1;
        let o = time_run(&mut home.cosmovisor(opts, &["run", "version"], &[]))?;
        let t1 = own_ticks()?.1;
        let b = time_run(Command::new(&bin).arg("version"))?;
        let t2 = own_ticks()?.1;
        if i >= 3 {
            ours.push(o);
            base.push(b);
            ours_ticks += t1 - t0;
            base_ticks += t2 - t1;
        }
    }
    let per_run_ms = |ticks: u64| u64_f64(ticks) * 1000.0 / clock_ticks_per_sec() / len_f64(runs);
    let (o, b) = (median(&ours), median(&base));
    report.row(
        "start-up: `cosmovisor run version` vs `<daemon> version`",
        fmt_ms(o),
        format!("{} (direct)", fmt_ms(b)),
        format!("+{} ({})", fmt_ms(o - b), fmt_ratio(o / b)),
        "≤ +5 ms",
        Some(o - b <= 5.0),
    );
    let (o90, b90) = (percentile(&ours, 0.9), percentile(&base, 0.9));
    report.row(
        "start-up p90: `cosmovisor run version` vs `<daemon> version`",
        fmt_ms(o90),
        format!("{} (direct)", fmt_ms(b90)),
        format!("+{} ({})", fmt_ms(o90 - b90), fmt_ratio(o90 / b90)),
        "≤ +5 ms",
        Some(o90 - b90 <= 5.0),
    );
    report.note(format!(
        "Start-up: median of {runs} runs each, interleaved, after 3 warm-ups; the daemon is a \
         `#!/bin/sh` script that echoes a version. p90: ours {}, direct {}. CPU time per run (utime+stime of all \
         processes, summed over the runs), which other load disturbs less: ours {}, direct {}.",
        fmt_ms(percentile(&ours, 0.9)),
        fmt_ms(percentile(&base, 0.9)),
        fmt_ms(per_run_ms(ours_ticks)),
        fmt_ms(per_run_ms(base_ticks))
    ));
    Ok(())
}

// ---------------------------------------------------------------------------
// Backup

/// Fills `data/` with a goleveldb-shaped node store of about `total` bytes: .ldb tables of
/// 2–64 MiB, thousands of small files, logs and manifests. Returns (files, bytes).
fn node_data(data: &Path, total: u64) -> anyhow::Result<(u64, u64)> {
    let mut rng = Rng::new(42);
    let pool = rng.bytes(usize::try_from(64 * MIB)? + 4096);
    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut put = |path: &Path, len: u64, rng: &mut Rng| -> anyhow::Result<()> {
        let len = usize::try_from(len)?;
        let offset = usize::try_from(rng.range(0, 4096))?;
        fs::write(path, &pool[offset..offset + len])?;
        files += 1;
        bytes += u64::try_from(len)?;
        Ok(())
    };
    // Store name, share of the bytes.
    let stores = [
        ("application.db", 0.55),
        ("blockstore.db", 0.30),
        ("state.db", 0.10),
        ("tx_index.db", 0.05),
    ];
    // Thousands of small files (level-0 tables, snapshots' chunks, evidence, WAL segments).
    let small_count = (u64_of(4000.0 * u64_f64(total) / u64_f64(GIB))).max(200);
    let small_dirs = ["snapshots/chunks", "evidence.db", "cs.wal", "tx_index.db"];
    for dir in small_dirs.iter().chain(stores.iter().map(|(s, _)| s)) {
        fs::create_dir_all(data.join(dir))?;
    }
    let mut small_bytes = 0;
    for i in 0..small_count {
        let dir = small_dirs[usize::try_from(i)? % small_dirs.len()];
        let len = rng.range(512, 32 * 1024);
        small_bytes += len;
        put(&data.join(dir).join(format!("{i:06}.ldb")), len, &mut rng)?;
    }
    let big_total = total.saturating_sub(small_bytes);
    let mut number = 100_000u64;
    for (store, share) in stores {
        let dir = data.join(store);
        for name in ["CURRENT", "LOCK", "LOG", "MANIFEST-000002"] {
            let len = rng.range(16, 4096);
            put(&dir.join(name), len, &mut rng)?;
        }
        let mut budget = u64_of(u64_f64(big_total) * share);
        while budget > 0 {
            let len = rng.range(2 * MIB, 64 * MIB).min(budget);
            put(&dir.join(format!("{number:06}.ldb")), len, &mut rng)?;
            budget -= len;
            number += 1;
        }
    }
    fs::write(
        data.join("priv_validator_state.json"),
        r#"{"height":"0","round":0,"step":0}"#,
    )?;
    Ok((files + 1, bytes + 33))
}

/// Reads Go's duration format (`1.5s`, `850.2ms`, `1m2.5s`, `12µs`).
fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..split].parse().ok()?;
        rest = &rest[split..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "µs" | "us" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

fn sync_all() -> anyhow::Result<()> {
    ensure!(Command::new("sync").status()?.success(), "sync failed");
    Ok(())
}

fn remove_backups(home: &Path) -> anyhow::Result<()> {
    for entry in fs::read_dir(home)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().contains("data-backup-") {
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// Waits for cosmovisor's `backup completed` line (JSON log format) and returns its `took`.
fn backup_took(lines: &mpsc::Receiver<String>) -> anyhow::Result<Duration> {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(600))
            .context("no `backup completed` line from cosmovisor within 600 s")?;
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if json["message"] == "backup completed" {
            let took = json["took"].as_str().unwrap_or_default();
            return parse_go_duration(took).with_context(|| format!("cannot read took={took:?}"));
        }
        ensure!(
            json["level"] != "ERR",
            "cosmovisor failed during the backup: {line}"
        );
    }
}

/// `cp -a data copy && sync`: returns the whole time and the time of `cp -a` alone, in s.
fn cp_baseline(data: &Path, copy: &Path, extra: &[&str]) -> anyhow::Result<(f64, f64)> {
    let start = Instant::now();
    let status = Command::new("cp")
        .arg("-a")
        .args(extra)
        .arg(data)
        .arg(copy)
        .status()?;
    ensure!(status.success(), "cp -a failed");
    let copied = start.elapsed().as_secs_f64();
    sync_all()?;
    Ok((start.elapsed().as_secs_f64(), copied))
}

/// One way of backing up, measured against its baseline in the same run.
struct BackupCase<'a> {
    /// What the row calls our side.
    label: &'a str,
    /// Extra environment for cosmovisor.
    env: &'a [(&'a str, &'a str)],
    /// Extra `cp` arguments for the baseline (`--reflink=always` on XFS).
    cp_args: &'a [&'a str],
    goal: f64,
}

fn backup(opts: &Opts, root: &Path, report: &mut Report) -> anyhow::Result<()> {
    // The issue's goals for the default: ≤ 0.2× for 1 GiB, ≤ 0.1× from 5 GiB on.
    let default_goal = if opts.backup_gib >= 5.0 { 0.1 } else { 0.2 };
    backup_case(
        opts,
        root,
        report,
        &BackupCase {
            label: "default (auto: checkpoint on the same ext4)",
            env: &[],
            cp_args: &[],
            goal: default_goal,
        },
    )?;
    backup_case(
        opts,
        root,
        report,
        &BackupCase {
            label: "COSMOVISOR_BACKUP_MODE=copy",
            env: &[("COSMOVISOR_BACKUP_MODE", "copy")],
            cp_args: &[],
            goal: 0.6,
        },
    )?;
    match XfsImage::mount(root, opts.backup_gib) {
        Ok(xfs) => backup_case(
            opts,
            &xfs.mount,
            report,
            &BackupCase {
                label: "default (auto: reflink on XFS)",
                env: &[],
                cp_args: &["--reflink=always"],
                goal: 1.0,
            },
        )?,
        Err(err) => eprintln!("  XFS reflink case skipped: {err:#}"),
    }
    Ok(())
}

/// A loop-mounted XFS image under `root` (needs root and mkfs.xfs); unmounted on drop.
struct XfsImage {
    mount: PathBuf,
}

impl XfsImage {
    fn mount(root: &Path, gib: f64) -> anyhow::Result<XfsImage> {
        let image = root.join("xfs.img");
        let mount = root.join("xfs");
        fs::create_dir_all(&mount)?;
        let size = format!("{}M", u64_of((gib * 3.0 + 1.0) * 1024.0));
        let run = |cmd: &mut Command| -> anyhow::Result<()> {
            let out = cmd.output()?;
            ensure!(
                out.status.success(),
                "{:?}: {}",
                cmd,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            Ok(())
        };
        run(Command::new("truncate").args(["-s", &size]).arg(&image))?;
        run(Command::new("mkfs.xfs").args(["-q", "-f"]).arg(&image))?;
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mount))?;
        Ok(XfsImage { mount })
    }
}

impl Drop for XfsImage {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

fn backup_case(
    opts: &Opts,
    root: &Path,
    report: &mut Report,
    case: &BackupCase,
) -> anyhow::Result<()> {
    let runs = 3;
    let home = Home::new(root, &format!("backup-{}", case.label.len()))?;
    home.install("genesis", UPGRADE_DAEMON)?;
    for i in 1..=runs {
        home.install(&format!("upgrades/v{i}"), UPGRADE_DAEMON)?;
    }
    let total = u64_of(opts.backup_gib * u64_f64(GIB));
    let made = Instant::now();
    let (files, bytes) = node_data(&home.data(), total)?;
    sync_all()?;
    eprintln!(
        "  data/: {files} files, {:.0} MiB, made in {:.1} s",
        u64_f64(bytes) / u64_f64(MIB),
        made.elapsed().as_secs_f64()
    );

    let mut log = fs::File::create(root.join("backup.log"))?;
    let mut sup = Group::spawn(
        home.cosmovisor(
            opts,
            &["run", "start"],
            &[&[("COSMOVISOR_LOG_FORMAT", "json")], case.env].concat(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped()),
    )?;
    let stderr = sup.child.stderr.take().context("no stderr")?;
    let (tx, rx) = mpsc::channel::<String>();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(log, "{line}");
            let _ = tx.send(line);
        }
    });

    // Copies are kept until the end: deleting thousands of files just before creating as
    // many makes inode allocation slow on ext4 without a journal (`recently_deleted`).
    let copies = root.join(format!("backup-copies-{}", case.label.len()));
    fs::create_dir(&copies)?;
    let data_arg = home.data();
    let mut ours = Vec::new();
    let mut base = Vec::new();
    let mut base_cp = Vec::new();
    for i in 1..=runs {
        wait_until(&format!("daemon #{i} to start"), LIMIT, || {
            home.events().0.len() >= i
        })?;
        sync_all()?;
        home.write_plan(&format!("v{i}"), 10 * u64::try_from(i)?)?;
        let took = backup_took(&rx)?;
        ours.push(took.as_secs_f64());
        wait_until(&format!("daemon #{} to start", i + 1), LIMIT, || {
            home.events().0.len() > i
        })?;
        sync_all()?;

        let (whole, cp_only) =
            cp_baseline(&data_arg, &copies.join(format!("copy-{i}")), case.cp_args)?;
        base.push(whole);
        base_cp.push(cp_only);
        eprintln!(
            "  {} run {i}: ours {:.2} s, cp -a + sync {:.2} s",
            case.label,
            ours[i - 1],
            base[i - 1]
        );
    }
    sup.stop()?;
    remove_backups(&home.path)?;
    fs::remove_dir_all(&copies)?;
    fs::remove_dir_all(&home.path)?;
    let cp = if case.cp_args.is_empty() {
        "`cp -a` + `sync`".to_owned()
    } else {
        format!("`cp -a {}` + `sync`", case.cp_args.join(" "))
    };
    let (o, b) = (median(&ours), median(&base));
    let ratio = paired_ratio(&ours, &base);
    report.row(
        &format!(
            "backup of a {:.0} MiB node-shaped data/ ({files} files), {}, {}",
            u64_f64(bytes) / u64_f64(MIB),
            fs_type(root),
            case.label
        ),
        format!("{o:.2} s"),
        format!("{b:.2} s ({cp})"),
        fmt_ratio(ratio),
        &format!("≤ {}×", case.goal),
        Some(ratio <= case.goal),
    );
    if case.label != "COSMOVISOR_BACKUP_MODE=copy" {
        return Ok(());
    }
    report.note(format!(
        "Backup: ours is the `took=` of cosmovisor's `backup completed` line during a real \
         upgrade (copy, syncfs, rename, directory fsync); baseline is `cp -a data copy && sync`; \
         both warm (page cache not dropped), `sync` before each, every copy kept until the end \
         (needs {runs}×2+1 times the size free), {runs} pairs, times are medians, \
         the ratio is the median of the pairs' ratios. Of the baseline, `cp -a` alone took {:.2} \
         s (median), the rest is `sync` writing back. data/: .ldb tables of 2–64 MiB plus \
         thousands of 0.5–32 KiB files.",
        median(&base_cp)
    ));
    Ok(())
}

// ---------------------------------------------------------------------------
// sha256 while reading from loopback

/// Reads `total` bytes served from loopback, hashing them when `hash` is set; returns the time.
/// With `pace` (bytes per second) the sender sleeps between its 1 MiB writes to keep that rate.
fn read_loopback(total: u64, hash: bool, pace: Option<f64>) -> anyhow::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        let block = Rng::new(7).bytes(1 << 20);
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < total {
            stream.write_all(&block)?;
            sent += 1 << 20;
            if let Some(rate) = pace {
                let due = Duration::from_secs_f64(u64_f64(sent) / rate);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    thread::sleep(wait);
                }
            }
        }
        Ok(())
    });
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut hasher = hash.then(Sha256::new);
    let mut got = 0u64;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&buf[..n]);
        }
        got += u64::try_from(n)?;
    }
    let _ = hasher.map(Sha256::finalize);
    let took = start.elapsed();
    server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))??;
    ensure!(got == total, "read {got} of {total} bytes");
    Ok(took)
}

fn sha256(opts: &Opts, report: &mut Report) -> anyhow::Result<()> {
    let total = 256 * MIB;
    let runs = if opts.quick { 3 } else { 5 };
    read_loopback(total, true, None)?;
    let mut ours = Vec::new();
    let mut base = Vec::new();
    for _ in 0..runs {
        ours.push(ms(read_loopback(total, true, None)?));
        base.push(ms(read_loopback(total, false, None)?));
    }
    let (o, b) = (median(&ours), median(&base));
    let ratio = paired_ratio(&ours, &base);
    let rate = |t: f64| 256.0 / (t / 1000.0);
    report.row(
        "sha256 while reading 256 MiB from a loopback TCP socket",
        format!("{} ({:.0} MiB/s)", fmt_ms(o), rate(o)),
        format!("{} ({:.0} MiB/s, no hashing)", fmt_ms(b), rate(b)),
        fmt_ratio(ratio),
        "≤ 1.05×",
        Some(ratio <= 1.05),
    );
    // What limits the ratio: the hash alone, from memory.
    let block = Rng::new(7).bytes(1 << 20);
    let start = Instant::now();
    let mut hasher = Sha256::new();
    for _ in 0..256 {
        hasher.update(&block);
    }
    let _ = hasher.finalize();
    let hash_ms = ms(start.elapsed());
    // The same at a fast real link's pace (1 Gbit/s), 32 MiB.
    let paced = 32 * MIB;
    let mut paced_ours = Vec::new();
    let mut paced_base = Vec::new();
    for _ in 0..runs {
        paced_ours.push(ms(read_loopback(paced, true, Some(125e6))?));
        paced_base.push(ms(read_loopback(paced, false, Some(125e6))?));
    }
    report.note(format!(
        "sha256 alone, from memory, 256 MiB: {} ({:.0} MiB/s; sha2 uses the CPU's SHA \
         extensions when present). Hashing alone takes {:.1}× as long as the whole plain loopback \
         read, so no hashing of these bytes can stay within 5% of it on this CPU. With the \
         sender paced at 1 Gbit/s (32 MiB, a fast real link): {} hashed vs {} plain, ratio {}.",
        fmt_ms(hash_ms),
        rate(hash_ms),
        hash_ms / b,
        fmt_ms(median(&paced_ours)),
        fmt_ms(median(&paced_base)),
        fmt_ratio(paired_ratio(&paced_ours, &paced_base)),
    ));
    report.note(format!(
        "sha256: `sha2` 0.10 `Sha256::update` on each 256 KiB read, in the reading thread; the \
         server is a thread of the bench writing 1 MiB blocks; {runs} pairs, the ratio is the median of the pairs' ratios."
    ));
    Ok(())
}

// ---------------------------------------------------------------------------
// Overlapped download: read, sha256, gunzip + untar at once

/// A release-shaped `.tar.gz`: `bin/benchd` and a 224 MiB random + 32 MiB text `lib/` blob.
fn release_archive() -> anyhow::Result<Vec<u8>> {
    let mut rng = Rng::new(11);
    let mut blob = rng.bytes(usize::try_from(224 * MIB)?);
    let line = b"cosmos-sdk module account keeper handler msg server query 0123456789\n";
    while blob.len() < usize::try_from(256 * MIB)? {
        blob.extend_from_slice(line);
    }
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes, mode) in [
        ("bin/benchd", VERSION_DAEMON.as_bytes(), 0o755),
        ("lib/libblob.so", blob.as_slice(), 0o644),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(u64::try_from(bytes.len())?);
        header.set_mode(mode);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, bytes)?;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&builder.into_inner()?)?;
    Ok(gz.finish()?)
}

/// Serves `body` to one HTTP GET on loopback; returns its URL.
fn serve_once(body: std::sync::Arc<Vec<u8>>) -> anyhow::Result<(String, thread::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/release.tar.gz", listener.local_addr()?);
    let server = thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(&body);
    });
    Ok((url, server))
}

/// The read stage alone: one HTTP GET of `body` from loopback, the bytes discarded.
fn read_stage(body: &std::sync::Arc<Vec<u8>>) -> anyhow::Result<f64> {
    let (url, server) = serve_once(std::sync::Arc::clone(body))?;
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .context("address")?
        .to_owned();
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr)?;
    write!(stream, "GET /release.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0usize;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let took = ms(start.elapsed());
    server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))?;
    ensure!(got > body.len(), "read {got} bytes");
    Ok(took)
}

/// The gunzip + untar stage alone, from memory, with the same code, limits and final `syncfs`
/// as a download.
fn unpack_stage(archive: &[u8], dir: &Path) -> anyhow::Result<f64> {
    fs::create_dir(dir)?;
    let start = Instant::now();
    let mut input = archive;
    cosmovisor::acquire::archive::unpack_stream(
        cosmovisor::acquire::archive::Kind::TarGz,
        Path::new("release.tar.gz"),
        &mut input,
        dir,
        &cosmovisor::acquire::archive::Limits::default(),
        &std::sync::atomic::AtomicBool::new(false),
    )?;
    let took = ms(start.elapsed());
    fs::remove_dir_all(dir)?;
    Ok(took)
}

/// Ours: the whole download of an upgrade (`DAEMON_ALLOW_DOWNLOAD_BINARIES`), in this process,
/// through the library's `download_upgrade`, until the binary is in `upgrades/<name>/`.
fn download_run(
    home: &Path,
    body: &std::sync::Arc<Vec<u8>>,
    checksum: &str,
    signals: &mut cosmovisor::signals::Signals,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<f64> {
    let (url, server) = serve_once(std::sync::Arc::clone(body))?;
    let vars = [
        ("DAEMON_HOME", home.to_string_lossy().into_owned()),
        ("DAEMON_NAME", NAME.to_owned()),
        ("DAEMON_ALLOW_DOWNLOAD_BINARIES", "true".to_owned()),
    ];
    let cfg = cosmovisor::config::Config::from_vars(|key| {
        vars.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| std::ffi::OsString::from(v))
    })
    .map_err(|err| anyhow::anyhow!("{err}"))?;
    let layout = cosmovisor::home::layout::Layout::new(&cfg.home, &cfg.name);
    let info = format!(r#"{{"binaries":{{"any":"{url}?checksum=sha256:{checksum}"}}}}"#);
    let plan = cosmovisor::home::plan::parse(
        serde_json::json!({"name": "v2", "height": 10, "info": info})
            .to_string()
            .as_bytes(),
        true,
    )?;
    let start = Instant::now();
    runtime.block_on(cosmovisor::acquire::download::download_upgrade(
        &cfg, &layout, &plan, signals,
    ))?;
    let took = ms(start.elapsed());
    server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))?;
    fs::remove_dir_all(layout.upgrade_dir(&plan.name))?;
    Ok(took)
}

fn download(opts: &Opts, root: &Path, report: &mut Report) -> anyhow::Result<()> {
    let runs = if opts.quick { 2 } else { 3 };
    let archive = release_archive()?;
    let checksum = Sha256::digest(&archive)
        .iter()
        .fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        });
    let size_mib = u64_f64(u64::try_from(archive.len())?) / u64_f64(MIB);
    let body = std::sync::Arc::new(archive);
    let home = root.join("download-home");
    fs::create_dir_all(home.join("cosmovisor/upgrades"))?;
    fs::create_dir_all(home.join("data"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut signals = runtime.block_on(async { cosmovisor::signals::Signals::install() })?;
    let (mut ours, mut read, mut hash, mut unpack) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..=runs {
        sync_all()?;
        let o = download_run(&home, &body, &checksum, &mut signals, &runtime)?;
        sync_all()?;
        let r = read_stage(&body)?;
        let start = Instant::now();
        let mut hasher = Sha256::new();
        for piece in body.chunks(1 << 20) {
            hasher.update(piece);
        }
        let _ = hasher.finalize();
        let h = ms(start.elapsed());
        sync_all()?;
        let u = unpack_stage(&body, &root.join(format!("unpack-{i}")))?;
        // The first round warms the page cache and the allocator.
        if i > 0 {
            eprintln!(
                "  run {i}: ours {o:.0} ms; read {r:.0}, sha256 {h:.0}, gunzip+untar {u:.0} ms"
            );
            ours.push(o);
            read.push(r);
            hash.push(h);
            unpack.push(u);
        }
    }
    fs::remove_dir_all(&home)?;
    let stages = [
        ("read", median(&read)),
        ("sha256", median(&hash)),
        ("gunzip+untar", median(&unpack)),
    ];
    let (longest_name, longest) = stages
        .iter()
        .copied()
        .fold(("", 0.0), |a, b| if b.1 > a.1 { b } else { a });
    let o = median(&ours);
    let ratio = o / longest;
    report.row(
        &format!(
            "download + verify + unpack of a {size_mib:.0} MiB .tar.gz from loopback (overlapped)"
        ),
        fmt_ms(o),
        format!("{} (longest single stage: {longest_name})", fmt_ms(longest)),
        fmt_ratio(ratio),
        "≤ 1.1×",
        Some(ratio <= 1.1),
    );
    report.note(format!(
        "Download: ours is `download_upgrade` in the bench process (HTTP GET from a loopback \
         thread, sha256 on a worker thread, gunzip + untar on another as the bytes arrive, \
         checks, rename into upgrades/); stages alone, each measured in the same round: read (a \
         plain HTTP GET, bytes discarded) {}, sha256 from memory {}, gunzip + untar from memory \
         (same code, limits and syncfs) {}; their sum {}. {runs} rounds after a warm-up, \
         medians. The archive: bin/benchd and 224 MiB random + 32 MiB text.",
        fmt_ms(stages[0].1),
        fmt_ms(stages[1].1),
        fmt_ms(stages[2].1),
        fmt_ms(stages.iter().map(|s| s.1).sum()),
    ));
    Ok(())
}

// ---------------------------------------------------------------------------
// The machine

fn machine(tmp: &Path) -> String {
    let cpus = thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map_or("unknown", |(_, v)| v.trim())
        .to_owned();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or_else(String::new, |kib| {
            format!(", {:.0} GiB RAM", u64_f64(kib) / 1024.0 / 1024.0)
        });
    format!(
        "Machine: {cpus} CPUs (nproc), {model}{mem}, Linux {}, temp dir on {}.",
        kernel.trim(),
        fs_type(tmp)
    )
}

/// The 1-minute load average (other work on the machine disturbs every figure).
fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned()
}

/// The file system type of the mount holding `path` (`/proc/self/mounts`, longest match).
fn fs_type(path: &Path) -> String {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(_), Some(point), Some(kind)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let point = point.replace("\\040", " ");
        if path.starts_with(&point) && best.as_ref().is_none_or(|(len, _)| point.len() >= *len) {
            best = Some((point.len(), kind.to_owned()));
        }
    }
    best.map_or_else(|| "unknown".to_owned(), |(_, kind)| kind)
}
