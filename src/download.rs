//! Fetching an upgrade's binary named in its plan (`DAEMON_ALLOW_DOWNLOAD_BINARIES=true`).
//!
//! Only this platform's entry (or `any`) is fetched — Go v1.5+ fetched every platform's first.
//! The checksum is computed while the bytes stream to disk, never by a second read. Everything
//! lands in a staging folder `upgrades/.<name>.download-<pid>/` and is renamed into
//! `upgrades/<name>/` only once it is complete, verified and unpacked, so a failed download
//! leaves nothing behind and the next try starts clean (Go left a partial folder that blocked
//! every retry). Network failures are retried with back-off; HTTP 4xx and checksum mismatches
//! are not. Unpacking and the archive safety rules are `archive/`; parsing the plan's `info`
//! and URLs is `plan_info.rs`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{info, warn};

use crate::archive::{self, ArchiveError, Kind, Limits};
use crate::config::{Config, format_go_duration};
use crate::layout::Layout;
use crate::plan::Plan;
use crate::plan_info::{self, Checksum, Info, InfoError, Location, Source};
use crate::progress::Progress;

/// Attempts for one URL when the network fails (connection refused, reset, timeout, HTTP 5xx).
const ATTEMPTS: u32 = 4;
/// The first back-off; it doubles after each failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The largest plan-info document we accept from a reference URL.
const MAX_INFO_DOCUMENT: usize = 1 << 20;

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
    #[error("cannot read {}: {err}", path.display())]
    Local { path: PathBuf, err: std::io::Error },
    #[error("{what} {}: {err}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("{url}: {err}")]
    Archive { url: String, err: ArchiveError },
    #[error("reference document {url} is larger than {limit} bytes")]
    DocumentTooLarge { url: String, limit: usize },
}

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> DownloadError + 'a {
    move |err| DownloadError::Io {
        what,
        path: path.to_path_buf(),
        err,
    }
}

/// Downloads, verifies and installs the binary of `plan` into `upgrades/<name>/`.
pub async fn download_upgrade(
    cfg: &Config,
    layout: &Layout,
    plan: &Plan,
) -> Result<PathBuf, DownloadError> {
    let target = layout.upgrade_dir(&plan.name);
    let staging = layout.upgrades_dir().join(format!(
        ".{}.download-{}",
        plan.name.dir_name(),
        std::process::id()
    ));
    remove_stale_staging(&layout.upgrades_dir(), &plan.name.dir_name());
    fs::create_dir_all(&staging).map_err(io_err("cannot create", &staging))?;
    let result = resolve_and_install(cfg, layout, plan, &staging, &target).await;
    let _ = fs::remove_dir_all(&staging);
    result?;
    info!(name = %plan.name, path = %target.display(), "downloading binary complete");
    Ok(layout.bin_in(&target))
}

/// Finds this platform's URL (fetching a reference document if needed) and installs from it.
async fn resolve_and_install(
    cfg: &Config,
    layout: &Layout,
    plan: &Plan,
    staging: &Path,
    target: &Path,
) -> Result<(), DownloadError> {
    let info_err = |err| DownloadError::Info {
        name: plan.name.to_string(),
        err,
    };
    let client = client()?;
    let binaries = match plan_info::classify(&plan.info).map_err(info_err)? {
        Info::Binaries(map) => map,
        Info::Reference(url) => {
            let source =
                plan_info::parse_source(&url, cfg.download_must_have_checksum).map_err(info_err)?;
            info!(url = %url, "fetching the upgrade's binary list");
            let document = fetch_document(&client, &source, &staging.join("binaries.json")).await?;
            plan_info::parse_binaries(&document).map_err(info_err)?
        }
    };
    let url = binaries
        .url_for(&plan_info::platform())
        .map_err(info_err)?
        .to_owned();
    let source =
        plan_info::parse_source(&url, cfg.download_must_have_checksum).map_err(info_err)?;
    install(&client, &source, layout.daemon_name(), staging, target).await
}

async fn install(
    client: &reqwest::Client,
    source: &Source,
    daemon: &str,
    staging: &Path,
    target: &Path,
) -> Result<(), DownloadError> {
    let file = staging.join("download");
    info!(url = %source.original, "no upgrade binary found, beginning to download it");
    fetch_to_file(client, source, &file).await?;

    let head = read_head(&file)?;
    let kind = archive::detect(&source.original, &head);
    let version = staging.join("version");
    let url = source.original.clone();
    let daemon = daemon.to_owned();
    let (file2, version2, unpacked) = (file.clone(), version.clone(), staging.join("unpacked"));
    tokio::task::spawn_blocking(move || -> Result<(), ArchiveError> {
        if matches!(kind, Kind::Raw) {
            return archive::arrange_raw(&file2, &daemon, &version2);
        }
        fs::create_dir(&unpacked).map_err(|err| ArchiveError::Io {
            path: unpacked.clone(),
            err: err.to_string(),
        })?;
        archive::unpack(kind, &file2, &unpacked, &Limits::default())?;
        archive::arrange(&unpacked, &daemon, &version2)
    })
    .await
    .map_err(|err| DownloadError::Io {
        what: "cannot unpack",
        path: file.clone(),
        err: std::io::Error::other(err),
    })?
    .map_err(|err| DownloadError::Archive { url, err })?;

    move_into_place(&version, target)
}

/// Renames the staged version folder to `upgrades/<name>`. When that folder already exists (an
/// operator made it, without the binary) the staged `bin/` and `lib/` are moved into it.
fn move_into_place(version: &Path, target: &Path) -> Result<(), DownloadError> {
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
fn merge_into(version: &Path, target: &Path) -> Result<(), DownloadError> {
    let (from_bin, to_bin) = (version.join("bin"), target.join("bin"));
    crate::layout::create_dir_all_durable(&to_bin).map_err(io_err("cannot create", &to_bin))?;
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
    // The renames above are durable only once both folders are.
    for dir in [&to_bin, target] {
        crate::layout::sync_dir(dir).map_err(io_err("cannot sync", dir))?;
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
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(60))
        .user_agent(concat!("cosmovisor-rs/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| DownloadError::Network {
            url: String::new(),
            err: err.to_string(),
        })
}

fn read_head(file: &Path) -> Result<Vec<u8>, DownloadError> {
    use std::io::Read;
    let mut head = vec![0u8; 512];
    let mut f = fs::File::open(file).map_err(io_err("cannot read", file))?;
    let n = f.read(&mut head).map_err(io_err("cannot read", file))?;
    head.truncate(n);
    Ok(head)
}

/// Streams `source` into `dest`, hashing on the way, retrying network failures.
async fn fetch_to_file(
    client: &reqwest::Client,
    source: &Source,
    dest: &Path,
) -> Result<u64, DownloadError> {
    let mut attempt = 1;
    let mut backoff = FIRST_BACKOFF;
    loop {
        match fetch_once(client, source, dest).await {
            Err(DownloadError::Network { url, err }) if attempt < ATTEMPTS => {
                warn!(url = %url, error = %err, attempt, retry_in = %format_go_duration(backoff), "download failed, retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn fetch_once(
    client: &reqwest::Client,
    source: &Source,
    dest: &Path,
) -> Result<u64, DownloadError> {
    let mut file = fs::File::create(dest).map_err(io_err("cannot create", dest))?;
    let mut hasher = source.checksum.as_ref().map(Checksum::hasher);
    let mut progress = Progress::new("download", None);
    let mut done = 0u64;
    match &source.location {
        Location::File(path) => {
            use std::io::Read;
            let mut input = fs::File::open(path).map_err(|err| DownloadError::Local {
                path: path.clone(),
                err,
            })?;
            progress.set_total(input.metadata().ok().map(|m| m.len()));
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = input.read(&mut buf).map_err(|err| DownloadError::Local {
                    path: path.clone(),
                    err,
                })?;
                if n == 0 {
                    break;
                }
                if let Some(h) = hasher.as_mut() {
                    h.update(&buf[..n]);
                }
                file.write_all(&buf[..n])
                    .map_err(io_err("cannot write", dest))?;
                done += n as u64;
                progress.update(done);
            }
        }
        Location::Http(url) => {
            let network = |err: reqwest::Error| DownloadError::Network {
                url: source.original.clone(),
                err: err.to_string(),
            };
            let mut response = client.get(url).send().await.map_err(network)?;
            let status = response.status();
            if status.is_server_error() {
                return Err(DownloadError::Network {
                    url: source.original.clone(),
                    err: format!("HTTP {}", status.as_u16()),
                });
            }
            if !status.is_success() {
                return Err(DownloadError::Status {
                    url: source.original.clone(),
                    status: status.as_u16(),
                });
            }
            progress.set_total(response.content_length());
            while let Some(chunk) = response.chunk().await.map_err(network)? {
                if let Some(h) = hasher.as_mut() {
                    h.update(&chunk);
                }
                file.write_all(&chunk)
                    .map_err(io_err("cannot write", dest))?;
                done += chunk.len() as u64;
                progress.update(done);
            }
        }
    }
    file.sync_all().map_err(io_err("cannot sync", dest))?;
    if let (Some(hasher), Some(expected)) = (hasher, source.checksum.as_ref()) {
        let actual = hasher.finish();
        if actual != *expected {
            return Err(DownloadError::Checksum {
                url: source.original.clone(),
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        info!(url = %source.original, checksum = %expected, "checksum verified");
    }
    progress.finish();
    Ok(done)
}

/// Fetches a small document (the binary list behind a reference URL), verifying its checksum.
async fn fetch_document(
    client: &reqwest::Client,
    source: &Source,
    temp: &Path,
) -> Result<Vec<u8>, DownloadError> {
    let len = fetch_to_file(client, source, temp).await?;
    if len > MAX_INFO_DOCUMENT as u64 {
        return Err(DownloadError::DocumentTooLarge {
            url: source.original.clone(),
            limit: MAX_INFO_DOCUMENT,
        });
    }
    fs::read(temp).map_err(io_err("cannot read", temp))
}
