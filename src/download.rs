//! Fetching an upgrade's binary named in its plan (`DAEMON_ALLOW_DOWNLOAD_BINARIES=true`).
//!
//! Only this platform's entry (or `any`) is fetched — Go v1.5+ fetched every platform's first.
//! The checksum is computed while the bytes stream to disk, never by a second read. Everything
//! lands in a staging folder `upgrades/.<name>.download-<pid>/` and is renamed into
//! `upgrades/<name>/` only once it is complete, verified, unpacked and checked to be an
//! executable for this machine, so a failed download leaves nothing behind and the next try
//! starts clean (Go left a partial folder that blocked every retry). Network failures are
//! retried with back-off; HTTP 4xx and checksum mismatches are not.
//!
//! Nothing the server or the plan sends is trusted (SPEC §5): a connect timeout, an idle rule
//! (a download that receives less than 1 KiB in `COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT` is stalled),
//! size caps checked against `Content-Length` before the body and again while it streams, local
//! sources opened only as regular files, and a termination signal ends any step at once (the
//! staging folder is removed). URLs are shown only through [`plan_info::redact`]. Unpacking and
//! the archive safety rules are `archive/`; parsing the plan's `info` and URLs is `plan_info.rs`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::archive::{self, ArchiveError, Kind, Limits};
use crate::bounded_read::ReadError;
use crate::config::{COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT, Config, format_go_duration};
use crate::layout::{self, BinaryError, Layout};
use crate::plan::Plan;
use crate::plan_info::{self, Checksum, Info, InfoError, Location, Source};
use crate::progress::Progress;
use crate::signals::Signals;

/// Attempts for one URL when the network fails (connection refused, reset, stalled, HTTP 5xx).
const ATTEMPTS: u32 = 4;
/// The first back-off; it doubles after each failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// How long establishing a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A download that receives fewer bytes than this in one idle window is stalled: a server that
/// trickles a byte a second never trips a plain "no byte for N seconds" timeout.
const MIN_PROGRESS: u64 = 1024;
/// Size of one read from a local source.
const LOCAL_CHUNK: usize = 1 << 20;

/// A cap on what one fetch may bring, and how messages name it.
#[derive(Debug, Clone, Copy)]
struct Cap {
    bytes: u64,
    shown: &'static str,
    what: &'static str,
}

/// Node binaries are 100-300 MB and release archives with their libraries a little more; 4 GiB
/// leaves room for ten times that and still stops an endless body long before a disk is full.
const BINARY_CAP: Cap = Cap {
    bytes: 4 << 30,
    shown: "4 GiB",
    what: "a binary or archive",
};
/// A reference URL's `{"binaries":…}` list is a few hundred bytes.
const DOCUMENT_CAP: Cap = Cap {
    bytes: 1 << 20,
    shown: "1 MiB",
    what: "a reference document",
};

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("upgrade {name:?}: {err}")]
    Info { name: String, err: InfoError },
    #[error("cannot download {url}: {err}")]
    Network { url: String, err: String },
    #[error("cannot download {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("checksum mismatch for {url}: expected {expected}, got {actual}")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("cannot download {url}: {err}")]
    Local { url: String, err: ReadError },
    #[error(
        "cannot download {url}: {who} {size} bytes, more than the {limit} limit for {what}; check the URL in the plan"
    )]
    Announced {
        url: String,
        who: &'static str,
        size: u64,
        limit: &'static str,
        what: &'static str,
    },
    #[error(
        "cannot download {url}: it is larger than the {limit} limit for {what}; check the URL in the plan"
    )]
    TooLarge {
        url: String,
        limit: &'static str,
        what: &'static str,
    },
    #[error(
        "refusing the download from {url}: it is not an executable for this machine: {why}; fix the URL in the plan or stage the binary with `cosmovisor add-upgrade`"
    )]
    NotExecutable { url: String, why: String },
    #[error("{what} {}: {err}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("{url}: {err}")]
    Archive { url: String, err: ArchiveError },
}

/// How a download ended, when it did not fail.
#[derive(Debug)]
pub enum Fetched {
    /// The binary is installed at this path.
    Installed(PathBuf),
    /// A termination signal stopped it; nothing was installed and the staging folder is gone.
    Interrupted(Signal),
}

/// Why a step stopped early: a failure, or a termination signal.
enum Stop {
    Failed(DownloadError),
    Interrupted(Signal),
}

impl From<DownloadError> for Stop {
    fn from(err: DownloadError) -> Stop {
        Stop::Failed(err)
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Stop + 'a {
    move |err| {
        Stop::Failed(DownloadError::Io {
            what,
            path: path.to_path_buf(),
            err,
        })
    }
}

/// Downloads, verifies and installs the binary of `plan` into `upgrades/<name>/`. A termination
/// signal from `signals` stops it at once (nothing installed, staging removed).
pub async fn download_upgrade(
    cfg: &Config,
    layout: &Layout,
    plan: &Plan,
    signals: &mut Signals,
) -> Result<Fetched, DownloadError> {
    let target = layout.upgrade_dir(&plan.name);
    let staging = layout.upgrades_dir().join(format!(
        ".{}.download-{}",
        plan.name.dir_name(),
        std::process::id()
    ));
    remove_stale_staging(&layout.upgrades_dir(), &plan.name.dir_name());
    fs::create_dir_all(&staging).map_err(|err| DownloadError::Io {
        what: "cannot create",
        path: staging.clone(),
        err,
    })?;
    let mut fetcher = Fetcher {
        client: client()?,
        idle: cfg.download_idle_timeout,
        signals,
    };
    let result = fetcher
        .resolve_and_install(cfg, layout, plan, &staging, &target)
        .await;
    let _ = fs::remove_dir_all(&staging);
    match result {
        Ok(()) => {
            info!(name = %plan.name, path = %target.display(), "downloading binary complete");
            Ok(Fetched::Installed(layout.bin_in(&target)))
        }
        Err(Stop::Interrupted(sig)) => {
            warn!(signal = %sig, name = %plan.name, "download stopped by a signal; nothing was installed");
            Ok(Fetched::Interrupted(sig))
        }
        Err(Stop::Failed(err)) => Err(err),
    }
}

/// One download's HTTP client, idle rule and the signals that stop it.
struct Fetcher<'a> {
    client: reqwest::Client,
    idle: Duration,
    signals: &'a mut Signals,
}

/// Where the bytes of one fetch come from.
enum Body {
    Http(reqwest::Response),
    File(tokio::fs::File),
}

impl Body {
    /// The next piece into `buf` (cleared first); `false` at the end.
    async fn next(&mut self, url: &str, buf: &mut Vec<u8>) -> Result<bool, DownloadError> {
        buf.clear();
        match self {
            Body::Http(response) => match response.chunk().await {
                Ok(Some(chunk)) => {
                    buf.extend_from_slice(&chunk);
                    Ok(true)
                }
                Ok(None) => Ok(false),
                Err(err) => Err(DownloadError::Network {
                    url: url.to_owned(),
                    err: network_reason(err),
                }),
            },
            Body::File(file) => {
                buf.resize(LOCAL_CHUNK, 0);
                let read = file.read(buf).await.map_err(|err| DownloadError::Network {
                    url: url.to_owned(),
                    err: err.to_string(),
                })?;
                buf.truncate(read);
                Ok(read > 0)
            }
        }
    }
}

impl Fetcher<'_> {
    /// Finds this platform's URL (fetching a reference document if needed) and installs from it.
    async fn resolve_and_install(
        &mut self,
        cfg: &Config,
        layout: &Layout,
        plan: &Plan,
        staging: &Path,
        target: &Path,
    ) -> Result<(), Stop> {
        let info_err = |err| {
            Stop::Failed(DownloadError::Info {
                name: plan.name.to_string(),
                err,
            })
        };
        let binaries = match plan_info::classify(&plan.info).map_err(info_err)? {
            Info::Binaries(map) => map,
            Info::Reference(url) => {
                let source = plan_info::parse_source(&url, cfg.download_must_have_checksum)
                    .map_err(info_err)?;
                info!(url = %source.shown, "fetching the upgrade's binary list");
                let document = staging.join("binaries.json");
                self.fetch_to_file(&source, &document, DOCUMENT_CAP).await?;
                let bytes = fs::read(&document).map_err(io_err("cannot read", &document))?;
                plan_info::parse_binaries(&bytes).map_err(info_err)?
            }
        };
        let url = binaries
            .url_for(&plan_info::platform())
            .map_err(info_err)?
            .to_owned();
        let source =
            plan_info::parse_source(&url, cfg.download_must_have_checksum).map_err(info_err)?;
        self.install(&source, layout.daemon_name(), staging, target)
            .await
    }

    async fn install(
        &mut self,
        source: &Source,
        daemon: &str,
        staging: &Path,
        target: &Path,
    ) -> Result<(), Stop> {
        let file = staging.join("download");
        info!(url = %source.shown, "no upgrade binary found, beginning to download it");
        self.fetch_to_file(source, &file, BINARY_CAP).await?;

        let head = read_head(&file)?;
        let kind = archive::detect(&source.original, &head);
        let version = staging.join("version");
        let cancel = Arc::new(AtomicBool::new(false));
        let mut work = {
            let daemon = daemon.to_owned();
            let cancel = Arc::clone(&cancel);
            let (file, version) = (file.clone(), version.clone());
            let unpacked = staging.join("unpacked");
            tokio::task::spawn_blocking(move || -> Result<(), ArchiveError> {
                if matches!(kind, Kind::Raw) {
                    return archive::arrange_raw(&file, &daemon, &version);
                }
                fs::create_dir(&unpacked).map_err(|err| ArchiveError::Io {
                    path: unpacked.clone(),
                    err: err.to_string(),
                })?;
                archive::unpack(kind, &file, &unpacked, &Limits::default(), &cancel)?;
                archive::arrange(&unpacked, &daemon, &version)
            })
        };
        let mut interrupted = None;
        let joined = loop {
            tokio::select! {
                joined = &mut work => break joined,
                sig = self.signals.next_termination(), if interrupted.is_none() => {
                    // The unpacking stops at its next piece; wait for it so nothing writes
                    // into the staging folder once it is removed.
                    cancel.store(true, Ordering::Relaxed);
                    interrupted = Some(sig);
                }
            }
        };
        if let Some(sig) = interrupted {
            return Err(Stop::Interrupted(sig));
        }
        joined
            .map_err(|err| DownloadError::Io {
                what: "cannot unpack",
                path: file.clone(),
                err: std::io::Error::other(err),
            })?
            .map_err(|err| DownloadError::Archive {
                url: source.shown.clone(),
                err,
            })?;

        let bin = version.join("bin").join(daemon);
        match layout::check_format(&bin) {
            Ok(()) => {}
            Err(BinaryError::NotForThisMachine { why, .. }) => {
                return Err(DownloadError::NotExecutable {
                    url: source.shown.clone(),
                    why,
                }
                .into());
            }
            Err(err) => {
                return Err(DownloadError::Io {
                    what: "cannot inspect",
                    path: bin,
                    err: std::io::Error::other(err.to_string()),
                }
                .into());
            }
        }
        move_into_place(&version, target)
    }

    /// Streams `source` into `dest`, hashing on the way, retrying network failures.
    async fn fetch_to_file(&mut self, source: &Source, dest: &Path, cap: Cap) -> Result<u64, Stop> {
        let mut attempt = 1;
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.fetch_once(source, dest, cap).await {
                Err(Stop::Failed(DownloadError::Network { url, err })) if attempt < ATTEMPTS => {
                    warn!(url = %url, error = %err, attempt, retry_in = %format_go_duration(backoff), "download failed, retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        sig = self.signals.next_termination() => return Err(Stop::Interrupted(sig)),
                    }
                    backoff *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Opens the source: an HTTP response whose status and `Content-Length` are acceptable, or
    /// a regular local file within the cap.
    async fn open(&mut self, source: &Source, cap: Cap) -> Result<(Body, Option<u64>), Stop> {
        let url = &source.shown;
        let too_big = |who, size| {
            Stop::Failed(DownloadError::Announced {
                url: url.clone(),
                who,
                size,
                limit: cap.shown,
                what: cap.what,
            })
        };
        match &source.location {
            Location::File(path) => {
                let local = |err| {
                    Stop::Failed(DownloadError::Local {
                        url: url.clone(),
                        err,
                    })
                };
                let file = crate::bounded_read::open_regular(path).map_err(local)?;
                let size = file
                    .metadata()
                    .map_err(|source| {
                        local(ReadError::Io {
                            path: path.clone(),
                            source,
                        })
                    })?
                    .len();
                if size > cap.bytes {
                    return Err(too_big("the file holds", size));
                }
                Ok((Body::File(tokio::fs::File::from_std(file)), Some(size)))
            }
            Location::Http(address) => {
                let network = |err: String| {
                    Stop::Failed(DownloadError::Network {
                        url: url.clone(),
                        err,
                    })
                };
                let request = self.client.get(address).send();
                let response = tokio::select! {
                    response = tokio::time::timeout(self.idle, request) => response,
                    sig = self.signals.next_termination() => return Err(Stop::Interrupted(sig)),
                };
                let response = response
                    .map_err(|_| {
                        network(format!(
                            "no response within {} ({COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT})",
                            format_go_duration(self.idle)
                        ))
                    })?
                    .map_err(|err| network(network_reason(err)))?;
                let status = response.status();
                if status.is_server_error() {
                    return Err(network(format!("HTTP {}", status.as_u16())));
                }
                if !status.is_success() {
                    return Err(DownloadError::Status {
                        url: url.clone(),
                        status: status.as_u16(),
                    }
                    .into());
                }
                let length = response.content_length();
                if let Some(size) = length.filter(|size| *size > cap.bytes) {
                    return Err(too_big("the server announces", size));
                }
                Ok((Body::Http(response), length))
            }
        }
    }

    async fn fetch_once(&mut self, source: &Source, dest: &Path, cap: Cap) -> Result<u64, Stop> {
        let url = &source.shown;
        let (mut body, total) = self.open(source, cap).await?;
        let mut file = fs::File::create(dest).map_err(io_err("cannot create", dest))?;
        let mut hasher = source.checksum.as_ref().map(Checksum::hasher);
        let mut progress = Progress::new("download", total);
        let mut done = 0u64;
        let mut buf = Vec::new();
        // The idle rule: each window of `idle` must bring at least MIN_PROGRESS bytes (a local
        // file on a hung network mount is held to it too).
        let mut window_end = Instant::now() + self.idle;
        let mut window_bytes = 0u64;
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout_at(window_end, body.next(url, &mut buf)) => next,
                sig = self.signals.next_termination() => return Err(Stop::Interrupted(sig)),
            };
            let more = match next {
                Ok(more) => more?,
                Err(_elapsed) => {
                    self.check_window(url, window_bytes)?;
                    window_end = Instant::now() + self.idle;
                    window_bytes = 0;
                    continue;
                }
            };
            if !more {
                break;
            }
            done += buf.len() as u64;
            if done > cap.bytes {
                return Err(DownloadError::TooLarge {
                    url: url.clone(),
                    limit: cap.shown,
                    what: cap.what,
                }
                .into());
            }
            if let Some(h) = hasher.as_mut() {
                h.update(&buf);
            }
            file.write_all(&buf).map_err(io_err("cannot write", dest))?;
            progress.update(done);
            window_bytes += buf.len() as u64;
            if Instant::now() >= window_end {
                self.check_window(url, window_bytes)?;
                window_end = Instant::now() + self.idle;
                window_bytes = 0;
            }
        }
        file.sync_all().map_err(io_err("cannot sync", dest))?;
        if let (Some(hasher), Some(expected)) = (hasher, source.checksum.as_ref()) {
            let actual = hasher.finish();
            if actual != *expected {
                return Err(DownloadError::Checksum {
                    url: url.clone(),
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                }
                .into());
            }
            info!(url = %url, checksum = %expected, "checksum verified");
        }
        progress.finish();
        Ok(done)
    }

    /// Fails as stalled when an idle window brought fewer than [`MIN_PROGRESS`] bytes.
    fn check_window(&self, url: &str, window_bytes: u64) -> Result<(), Stop> {
        if window_bytes >= MIN_PROGRESS {
            return Ok(());
        }
        Err(DownloadError::Network {
            url: url.to_owned(),
            err: format!(
                "stalled: fewer than 1 KiB arrived in {} ({COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT})",
                format_go_duration(self.idle)
            ),
        }
        .into())
    }
}

/// Renames the staged version folder to `upgrades/<name>`. When that folder already exists (an
/// operator made it, without the binary) the staged `bin/` and `lib/` are moved into it.
fn move_into_place(version: &Path, target: &Path) -> Result<(), Stop> {
    if target.exists() {
        merge_into(version, target)?;
    } else {
        fs::rename(version, target).map_err(io_err("cannot move the download to", target))?;
    }
    if let Some(parent) = target.parent() {
        crate::layout::sync_dir(parent).map_err(io_err("cannot sync", parent))?;
    }
    Ok(())
}

/// Moves the staged `bin/` entries and a `lib/` (unless one exists) into an existing folder.
fn merge_into(version: &Path, target: &Path) -> Result<(), Stop> {
    let (from_bin, to_bin) = (version.join("bin"), target.join("bin"));
    fs::create_dir_all(&to_bin).map_err(io_err("cannot create", &to_bin))?;
    for entry in fs::read_dir(&from_bin).map_err(io_err("cannot read", &from_bin))? {
        let entry = entry.map_err(io_err("cannot read", &from_bin))?;
        let to = to_bin.join(entry.file_name());
        fs::rename(entry.path(), &to).map_err(io_err("cannot move the download to", &to))?;
    }
    let (from_lib, to_lib) = (version.join("lib"), target.join("lib"));
    if from_lib.exists() {
        if to_lib.exists() {
            warn!(path = %to_lib.display(), "keeping the existing lib/ folder");
        } else {
            fs::rename(&from_lib, &to_lib)
                .map_err(io_err("cannot move the download to", &to_lib))?;
        }
    }
    Ok(())
}

/// Removes staging folders of earlier attempts for this upgrade (ours or a crashed one's).
fn remove_stale_staging(upgrades: &Path, dir_name: &str) {
    let prefix = format!(".{dir_name}.download-");
    let Ok(entries) = fs::read_dir(upgrades) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(&prefix))
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn client() -> Result<reqwest::Client, DownloadError> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("cosmovisor-rs/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| DownloadError::Network {
            url: String::new(),
            err: err.to_string(),
        })
}

/// What went wrong in a request, with its causes ("connection refused") but without the URL
/// reqwest puts in its message: that one is not redacted.
fn network_reason(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut reason = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(inner) = cause {
        reason.push_str(": ");
        reason.push_str(&inner.to_string());
        cause = inner.source();
    }
    plan_info::redact(&reason)
}

fn read_head(file: &Path) -> Result<Vec<u8>, Stop> {
    use std::io::Read;
    let mut head = vec![0u8; 512];
    let mut f = fs::File::open(file).map_err(io_err("cannot read", file))?;
    let n = f.read(&mut head).map_err(io_err("cannot read", file))?;
    head.truncate(n);
    Ok(head)
}
