//! Where a download's bytes go as they arrive, so that reading, hashing and unpacking overlap:
//! the checksum is computed on a worker thread, and a tar or tar.gz is unpacked into the staging
//! folder by another one while the rest of the body still arrives. Anything else (a raw binary,
//! a zip, whose index is at its end, a reference document) is written to a file. The caller
//! verifies the checksum once the body is complete, before anything leaves the staging folder.
//!
//! Chunks travel over bounded channels, so a slow worker slows the reading down instead of
//! filling memory. An unpacker that fails (a hostile archive) stops taking chunks; the body is
//! still read and hashed to its end, so a wrong checksum is reported as such. [`Sink::abort`]
//! (a signal, a network failure before a retry) stops the workers, waits for them, and leaves
//! the unpack folder empty, so nothing writes into the staging folder once it is removed.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{DownloadError, io_err};
use crate::acquire::archive::{self, ArchiveError, Kind, Limits};
use crate::acquire::plan_info::{Checksum, Hasher};

/// Chunks in flight to one worker.
const QUEUE: usize = 64;
/// Bytes looked at to tell what the body is (a tar header's magic is at 257).
const HEAD: usize = 512;
/// Bytes handed to the workers at once.
const PIECE: usize = 256 << 10;

/// One piece of the body, shared by the workers.
type Chunk = Arc<Vec<u8>>;

/// Where one fetch puts the body.
pub(super) enum Target<'p> {
    /// Into this file.
    File(&'p Path),
    /// An upgrade's binary or archive, as `url` (as written in the plan) and its first bytes
    /// say: a tar or tar.gz is unpacked into `dir` (existing and empty) as it arrives; anything
    /// else goes into `file`.
    Archive {
        url: &'p str,
        file: &'p Path,
        dir: &'p Path,
    },
}

/// What a complete fetch left in the staging folder.
#[derive(Debug)]
pub(super) enum Landed {
    /// The body is in the file; what it is, for an archive target ([`Kind::Raw`] otherwise).
    File(Kind),
    /// A tar or tar.gz whose files are in the unpack folder.
    Unpacked,
}

/// What [`Sink::finish`] found.
pub(super) struct Finished {
    pub checksum: Option<Checksum>,
    pub landed: Landed,
    /// Why the archive could not be unpacked, when it was streamed and could not.
    pub unpack: Result<(), ArchiveError>,
}

struct Worker<T> {
    /// `None` once closed (the body ended, or the worker stopped taking chunks).
    tx: Option<mpsc::Sender<Chunk>>,
    handle: Option<JoinHandle<T>>,
}

impl<T: Send + 'static> Worker<T> {
    fn spawn(work: impl FnOnce(mpsc::Receiver<Chunk>) -> T + Send + 'static) -> Worker<T> {
        let (tx, rx) = mpsc::channel(QUEUE);
        Worker {
            tx: Some(tx),
            handle: Some(tokio::task::spawn_blocking(move || work(rx))),
        }
    }

    /// Hands a chunk over; `false` when the worker no longer takes any.
    async fn send(&mut self, chunk: Chunk) -> bool {
        let Some(tx) = &self.tx else {
            return false;
        };
        if tx.send(chunk).await.is_ok() {
            return true;
        }
        self.tx = None;
        false
    }

    /// Closes the channel and waits for the result. Cancel-safe: the handle stays until the
    /// worker is done.
    async fn join(&mut self) -> Option<T> {
        self.tx = None;
        let handle = self.handle.as_mut()?;
        let joined = handle.await;
        self.handle = None;
        joined.ok()
    }
}

enum Route {
    /// Until the first bytes say what the body is.
    Undecided,
    File(fs::File, Kind),
    Unpack(Worker<Result<(), ArchiveError>>),
}

pub(super) struct Sink<'p> {
    target: &'p Target<'p>,
    hasher: Option<Worker<Checksum>>,
    route: Route,
    /// Bytes not yet handed on.
    pending: Vec<u8>,
    cancel: Arc<AtomicBool>,
}

impl<'p> Sink<'p> {
    pub(super) fn new(
        target: &'p Target<'p>,
        checksum: Option<&Checksum>,
    ) -> Result<Self, DownloadError> {
        let hasher = checksum.map(|checksum| {
            let hasher = checksum.hasher();
            Worker::spawn(move |rx| hash(hasher, rx))
        });
        let route = match target {
            Target::File(path) => Route::File(
                fs::File::create(path).map_err(io_err("cannot create", path))?,
                Kind::Raw,
            ),
            Target::Archive { .. } => Route::Undecided,
        };
        Ok(Sink {
            target,
            hasher,
            route,
            pending: Vec::with_capacity(PIECE + PIECE / 4),
            cancel: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Where the next bytes of the body are appended; [`Sink::flush_full`] hands them on.
    pub(super) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.pending
    }

    /// Hands the buffered bytes to the workers once there are [`PIECE`] of them (fewer, bigger
    /// hand-overs: each one wakes a thread).
    pub(super) async fn flush_full(&mut self) -> Result<(), DownloadError> {
        if self.pending.len() < PIECE {
            return Ok(());
        }
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), DownloadError> {
        let chunk = Arc::new(std::mem::replace(
            &mut self.pending,
            Vec::with_capacity(PIECE + PIECE / 4),
        ));
        if matches!(self.route, Route::Undecided) {
            self.decide(&chunk[..chunk.len().min(HEAD)])?;
        }
        if let Some(hasher) = &mut self.hasher {
            if !hasher.send(Arc::clone(&chunk)).await {
                return Err(self.worker_gone("the checksum worker stopped"));
            }
        }
        self.write(chunk).await
    }

    /// Picks the route for an archive target from its URL and first bytes.
    fn decide(&mut self, head: &[u8]) -> Result<(), DownloadError> {
        let Target::Archive { url, file, dir } = self.target else {
            return Ok(());
        };
        let kind = archive::detect(url, head);
        self.route = if matches!(kind, Kind::TarGz | Kind::Tar) {
            let (dir, label, cancel) = (
                dir.to_path_buf(),
                file.to_path_buf(),
                Arc::clone(&self.cancel),
            );
            Route::Unpack(Worker::spawn(move |rx| {
                unpack(&kind, &label, &dir, &cancel, rx)
            }))
        } else {
            Route::File(
                fs::File::create(file).map_err(io_err("cannot create", file))?,
                kind,
            )
        };
        Ok(())
    }

    async fn write(&mut self, chunk: Chunk) -> Result<(), DownloadError> {
        let target = self.target;
        match &mut self.route {
            Route::Undecided => Ok(()),
            Route::File(file, _) => file
                .write_all(&chunk)
                .map_err(|err| io_err("cannot write", &file_path(target))(err)),
            // An unpacker that stopped has its error waiting in its result.
            Route::Unpack(worker) => {
                worker.send(chunk).await;
                Ok(())
            }
        }
    }

    fn worker_gone(&self, what: &str) -> DownloadError {
        DownloadError::Io {
            what: "cannot download to",
            path: self.file_path(),
            err: io::Error::other(what.to_owned()),
        }
    }

    fn file_path(&self) -> PathBuf {
        file_path(self.target)
    }

    /// The body is complete: lets the workers finish and collects the checksum and where the
    /// body landed. Cancel-safe (a dropped call leaves the workers for [`Sink::abort`]).
    pub(super) async fn finish(&mut self) -> Result<Finished, DownloadError> {
        self.flush().await?;
        let checksum = match &mut self.hasher {
            Some(hasher) => Some(
                hasher
                    .join()
                    .await
                    .ok_or_else(|| self.worker_gone("the checksum worker failed"))?,
            ),
            None => None,
        };
        let path = self.file_path();
        match &mut self.route {
            Route::Undecided => Err(self.worker_gone("the download was not routed")),
            Route::File(file, kind) => {
                file.sync_all().map_err(io_err("cannot sync", &path))?;
                Ok(Finished {
                    checksum,
                    landed: Landed::File(kind.clone()),
                    unpack: Ok(()),
                })
            }
            Route::Unpack(worker) => {
                let Some(unpack) = worker.join().await else {
                    return Err(self.worker_gone("the unpack worker failed"));
                };
                Ok(Finished {
                    checksum,
                    landed: Landed::Unpacked,
                    unpack,
                })
            }
        }
    }

    /// Stops the workers and waits for them; the unpack folder is left empty.
    pub(super) async fn abort(mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        if let Some(hasher) = &mut self.hasher {
            hasher.join().await;
        }
        if let Route::Unpack(worker) = &mut self.route {
            worker.join().await;
        }
        if let Target::Archive { dir, .. } = self.target {
            // What a stream cut short left (unpack clears it on errors; an archive cut at an
            // entry boundary is not one).
            if let Ok(entries) = fs::read_dir(dir) {
                for entry in entries.filter_map(Result::ok) {
                    let path = entry.path();
                    let _ = if path.is_dir() && !path.is_symlink() {
                        fs::remove_dir_all(&path)
                    } else {
                        fs::remove_file(&path)
                    };
                }
            }
        }
    }
}

/// The file a target writes what it does not unpack to.
fn file_path(target: &Target<'_>) -> PathBuf {
    match target {
        Target::File(path) | Target::Archive { file: path, .. } => path.to_path_buf(),
    }
}

fn hash(mut hasher: Hasher, mut rx: mpsc::Receiver<Chunk>) -> Checksum {
    while let Some(chunk) = rx.blocking_recv() {
        hasher.update(&chunk);
    }
    hasher.finish()
}

fn unpack(
    kind: &Kind,
    label: &Path,
    dir: &Path,
    cancel: &AtomicBool,
    rx: mpsc::Receiver<Chunk>,
) -> Result<(), ArchiveError> {
    let mut reader = ChannelReader {
        rx,
        chunk: Arc::new(Vec::new()),
        at: 0,
    };
    let result = archive::unpack_stream(
        kind.clone(),
        label,
        &mut reader,
        dir,
        &Limits::default(),
        cancel,
    );
    if result.is_ok() {
        // Whatever follows the archive's end is still read, so the body is hashed to its end.
        let _ = io::copy(&mut reader, &mut io::sink());
    }
    result
}

/// The chunks of a channel as one byte stream, for the unpacker.
struct ChannelReader {
    rx: mpsc::Receiver<Chunk>,
    chunk: Chunk,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at >= self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
