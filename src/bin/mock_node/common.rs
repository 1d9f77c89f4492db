//! What every command of `mock-node` shares: fatal errors (`die`, `OrDie`), the clock of its log
//! lines, the events file, argument lookup and reading `mock-node.json`.

use std::env;
use std::fmt::Display;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Config;

/// Prints a clear error on stderr and exits 1.
pub(crate) fn die(msg: impl Display) -> ! {
    eprintln!("Error: {msg}");
    process::exit(1);
}

pub(crate) trait OrDie<T> {
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
pub(crate) fn clock() -> String {
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
pub(crate) fn record_event(home: &Path, event: impl Display) {
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
pub(crate) fn flag_value(args: &[String], name: &str) -> Option<String> {
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
pub(crate) fn home_dir(args: &[String]) -> PathBuf {
    flag_value(args, "home")
        .or_else(|| env::var("DAEMON_HOME").ok().filter(|h| !h.is_empty()))
        .map_or_else(
            || die("no home directory: pass --home <dir> or set DAEMON_HOME"),
            PathBuf::from,
        )
}

pub(crate) fn parse_height(text: &str, what: &str) -> u64 {
    text.trim().parse().unwrap_or_else(|_| {
        die(format_args!(
            "invalid {what} {text:?}: expected a block height"
        ))
    })
}

/// The executable's real path (`current` symlinks resolved).
pub(crate) fn exe_path() -> PathBuf {
    env::current_exe().or_die("locating the mock node executable")
}

/// Reads `mock-node.json` from the parent of the executable's directory.
pub(crate) fn load_config() -> Config {
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
