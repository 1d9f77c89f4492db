//! Fetching an upgrade's binary named in its plan (`DAEMON_ALLOW_DOWNLOAD_BINARIES=true`).
//!
//! Only this platform's entry (or `any`) is fetched — Go v1.5+ fetched every platform's first.
//! The checksum is computed on another thread while the bytes arrive, never by a second read,
//! and a tar or tar.gz is unpacked into the staging folder as it arrives (`sink.rs`); nothing
//! leaves the staging folder before the checksum of the whole body is verified. Everything
//! lands in a staging folder `upgrades/.<name>.download-<pid>/` and is renamed into
//! `upgrades/<name>/` only once it is complete, verified, unpacked and checked to be an
//! executable for this machine, so a failed download leaves nothing behind and the next try
//! starts clean (Go left a partial folder that blocked every retry). Network failures are
//! retried with back-off; HTTP 4xx and checksum mismatches are not.
//!
//! Nothing the server or the plan sends is trusted (docs/design.md "Trust boundaries"): the bytes
//! are fetched under timeouts and size caps (`fetch.rs`), the unpacking is bounded and cancellable,
//! what is installed must be an executable for this machine, and a termination signal ends any step
//! at once with [`DownloadError::Interrupted`] (the staging folder is removed). URLs are shown only
//! through [`crate::redact::redact`].
//! Unpacking and the archive safety rules are `archive/`; parsing the plan's `info` and URLs is
//! `plan_info.rs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tracing::{info, warn};

use crate::acquire::archive::{self, ArchiveError, Kind, Limits};
use crate::acquire::plan_info::{self, InfoError, Resolved, Source};
use crate::bounded_read::ReadError;
use crate::config::Config;
use crate::home::binary;
use crate::home::binary::BinaryError;
use crate::home::layout::Layout;
use crate::home::plan::Plan;
use crate::signals::{Interrupted, Signals};

mod fetch;
mod sink;

use fetch::{BINARY_CAP, DOCUMENT_CAP, Fetcher};
use sink::Landed;

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
    /// A termination signal stopped the download; nothing was installed and the staging folder
    /// is gone.
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
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

/// Downloads, verifies and installs the binary of `plan` into `upgrades/<name>/`; returns the
/// installed binary's path. A termination signal from `signals` stops it at once (nothing
/// installed, staging removed).
pub async fn download_upgrade(
    cfg: &Config,
    layout: &Layout,
    plan: &Plan,
    signals: &mut Signals,
) -> Result<PathBuf, DownloadError> {
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
    let mut fetcher = Fetcher::new(cfg.download_idle_timeout, signals)?;
    let result = resolve_and_install(&mut fetcher, cfg, layout, plan, &staging, &target).await;
    let _ = fs::remove_dir_all(&staging);
    match result {
        Ok(()) => {
            info!(name = %plan.name, path = %target.display(), "downloading binary complete");
            Ok(layout.bin_in(&target))
        }
        Err(DownloadError::Interrupted(interrupted)) => {
            warn!(signal = %interrupted.signal, name = %plan.name, "download stopped by a signal; nothing was installed");
            Err(interrupted.into())
        }
        Err(err) => Err(err),
    }
}

/// Finds this platform's URL (fetching a reference document if needed) and installs from it.
async fn resolve_and_install(
    fetcher: &mut Fetcher<'_>,
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
    let must_have_checksum = cfg.download_must_have_checksum;
    let source = match plan_info::resolve(&plan.info, must_have_checksum).map_err(info_err)? {
        Resolved::Binary(source) => source,
        Resolved::List(list) => {
            info!(url = %list.shown, "fetching the upgrade's binary list");
            let document = staging.join("binaries.json");
            fetcher
                .fetch_to_file(&list, &document, DOCUMENT_CAP)
                .await?;
            let bytes = fs::read(&document).map_err(io_err("cannot read", &document))?;
            let binaries = plan_info::parse_binaries(&bytes).map_err(info_err)?;
            plan_info::source_for_platform(&binaries, must_have_checksum).map_err(info_err)?
        }
    };
    install(fetcher, &source, layout.daemon_name(), staging, target).await
}

async fn install(
    fetcher: &mut Fetcher<'_>,
    source: &Source,
    daemon: &str,
    staging: &Path,
    target: &Path,
) -> Result<(), DownloadError> {
    let file = staging.join("download");
    let unpacked = staging.join("unpacked");
    fs::create_dir(&unpacked).map_err(io_err("cannot create", &unpacked))?;
    info!(url = %source.shown, "no upgrade binary found, beginning to download it");
    let landed = fetcher
        .fetch_archive(source, &file, &unpacked, BINARY_CAP)
        .await?;

    let version = staging.join("version");
    let cancel = Arc::new(AtomicBool::new(false));
    let work = {
        let daemon = daemon.to_owned();
        let cancel = Arc::clone(&cancel);
        let (file, version) = (file.clone(), version.clone());
        tokio::task::spawn_blocking(move || -> Result<(), ArchiveError> {
            match landed {
                Landed::Unpacked => {}
                Landed::File(Kind::Raw) => return archive::arrange_raw(&file, &daemon, &version),
                Landed::File(kind) => {
                    archive::unpack(kind, &file, &unpacked, &Limits::default(), &cancel)?;
                }
            }
            archive::arrange(&unpacked, &daemon, &version)
        })
    };
    // A signal stops the unpacking at its next piece, and the wait goes on until it has, so
    // nothing writes into the staging folder once it is removed.
    fetcher
        .signals()
        .cancel_on_termination(&cancel, work)
        .await?
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
    match binary::check_format(&bin) {
        Ok(()) => {}
        Err(BinaryError::NotForThisMachine { why, .. }) => {
            return Err(DownloadError::NotExecutable {
                url: source.shown.clone(),
                why,
            });
        }
        Err(err) => {
            return Err(DownloadError::Io {
                what: "cannot inspect",
                path: bin,
                err: std::io::Error::other(err),
            });
        }
    }
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
        crate::durable::sync_dir(parent).map_err(io_err("cannot sync", parent))?;
    }
    Ok(())
}

/// Moves the staged `bin/` entries and a `lib/` (unless one exists) into an existing folder.
fn merge_into(version: &Path, target: &Path) -> Result<(), DownloadError> {
    let (from_bin, to_bin) = (version.join("bin"), target.join("bin"));
    crate::durable::create_dir_all_durable(&to_bin).map_err(io_err("cannot create", &to_bin))?;
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
        crate::durable::sync_dir(dir).map_err(io_err("cannot sync", dir))?;
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
