//! The goleveldb-shaped data directory: the stores' files and `LOCK`, table files, write-ahead
//! log records and `priv_validator_state.json`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::Deserialize;

use crate::common::{OrDie, die, parse_height};

/// The goleveldb stores of a CometBFT/Cosmos SDK node.
pub(crate) const STORES: [&str; 4] = ["application.db", "blockstore.db", "state.db", "tx_index.db"];
/// The stores that get new immutable table files every `ldb_every` blocks.
pub(crate) const TABLE_STORES: [&str; 2] = ["application.db", "blockstore.db"];
/// Bytes appended to each store's write-ahead log per block.
pub(crate) const WAL_RECORD_BYTES: usize = 200;

/// Takes leveldb's exclusive non-blocking flock; `None` if already held.
pub(crate) fn lock_db(path: &Path) -> Option<Flock<File>> {
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

pub(crate) fn open_append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .or_die_at("opening", path)
}

/// Creates the goleveldb files of one store if missing; returns its open WAL.
pub(crate) fn init_store(dir: &Path) -> File {
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
pub(crate) fn next_table_number(dir: &Path) -> u64 {
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
pub(crate) struct ValidatorState {
    height: String,
}

/// Last committed height from `priv_validator_state.json` (0 if absent).
pub(crate) fn read_height(path: &Path) -> u64 {
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
pub(crate) fn write_validator_state(data: &Path, h: u64) {
    let path = data.join("priv_validator_state.json");
    let tmp = data.join("priv_validator_state.json.tmp");
    let json = format!("{{\"height\":\"{h}\",\"round\":0,\"step\":3}}");
    fs::write(&tmp, json).or_die_at("writing", &tmp);
    fs::rename(&tmp, &path).or_die_at("renaming into place", &path);
}

/// A `WAL_RECORD_BYTES`-byte write-ahead log record for block `h`.
pub(crate) fn wal_record(store: &str, h: u64) -> Vec<u8> {
    let mut record = format!("block={h} store={store} ").into_bytes();
    record.resize(WAL_RECORD_BYTES - 1, b'.');
    record.push(b'\n');
    record
}

/// `len` pseudo-random bytes (xorshift64), deterministic by height.
pub(crate) fn table_bytes(h: u64, len: usize) -> Vec<u8> {
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
pub(crate) fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}
