//! Fetching the bytes of one source into a file, trusting nothing the other side sends: a
//! connect timeout, the idle rule (less than 1 KiB in `COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT` is a
//! stall, which a plain "no byte for N seconds" timeout misses for a server that trickles),
//! size caps checked against `Content-Length` before the body and again while it streams, local
//! sources opened only as regular files, the checksum computed on the way (on another thread,
//! `sink.rs`, which also unpacks a tar or tar.gz as it arrives), network failures retried with a
//! doubling back-off ([`Backoff`], waited on tokio's clock), and a termination signal ending any
//! wait at once ([`Signals::interruptible`]), the back-off and a local file's reads included.
//!
//! What to fetch and what to do with the file (unpacking, installing) is `download/mod.rs`.

use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::time::Instant;
use tracing::{info, warn};

use super::DownloadError;
use super::sink::{Landed, Sink, Target};
use crate::acquire::plan_info::{Location, Source};
use crate::bounded_read::ReadError;
use crate::config::{COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT, format_go_duration};
use crate::progress::Progress;
use crate::signals::Signals;

/// How a fetch that failed on the network (connection refused, reset, stalled, HTTP 5xx) is
/// tried again: `attempts` tries in all, the first retry `first_delay` after the failure, each
/// later one after twice the previous wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Backoff {
    attempts: u32,
    first_delay: Duration,
}

impl Backoff {
    /// Four attempts, retried after 0.5 s, 1 s and 2 s.
    const NETWORK: Backoff = Backoff {
        attempts: 4,
        first_delay: Duration::from_millis(500),
    };

    /// The wait after failed attempt `attempt` (counted from 1).
    fn delay_after(self, attempt: u32) -> Duration {
        self.first_delay
            .saturating_mul(2_u32.saturating_pow(attempt.saturating_sub(1)))
    }
}
/// How long establishing a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A download that receives fewer bytes than this in one idle window is stalled: a server that
/// trickles a byte a second never trips a plain "no byte for N seconds" timeout.
const MIN_PROGRESS: u64 = 1024;
/// Size of one read from a local source.
const LOCAL_CHUNK: usize = 1 << 20;

/// A cap on what one fetch may bring, and how messages name it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cap {
    bytes: u64,
    shown: &'static str,
    what: &'static str,
}

/// Node binaries are 100-300 MB and release archives with their libraries a little more; 4 GiB
/// leaves room for ten times that and still stops an endless body long before a disk is full.
pub(super) const BINARY_CAP: Cap = Cap {
    bytes: 4 << 30,
    shown: "4 GiB",
    what: "a binary or archive",
};
/// A reference URL's `{"binaries":…}` list is a few hundred bytes.
pub(super) const DOCUMENT_CAP: Cap = Cap {
    bytes: 1 << 20,
    shown: "1 MiB",
    what: "a reference document",
};

/// One download's HTTP client, idle rule, back-off and the signals that stop it.
pub(super) struct Fetcher<'a> {
    client: reqwest::Client,
    idle: Duration,
    backoff: Backoff,
    signals: &'a mut Signals,
}

/// Where the bytes of one fetch come from.
enum Body {
    Http(reqwest::Response),
    File(tokio::fs::File),
}

impl Body {
    /// Appends the next piece to `buf`; how many bytes, 0 at the end. Cancel-safe: `buf`
    /// changes only once a piece has arrived.
    async fn next_into(&mut self, url: &str, buf: &mut Vec<u8>) -> Result<usize, DownloadError> {
        match self {
            Body::Http(response) => loop {
                match response.chunk().await {
                    Ok(Some(chunk)) if chunk.is_empty() => {}
                    Ok(Some(chunk)) => {
                        buf.extend_from_slice(&chunk);
                        return Ok(chunk.len());
                    }
                    Ok(None) => return Ok(0),
                    Err(err) => {
                        return Err(DownloadError::Network {
                            url: url.to_owned(),
                            err: network_reason(err),
                        });
                    }
                }
            },
            Body::File(file) => {
                let mut piece = vec![0; LOCAL_CHUNK];
                let read = file
                    .read(&mut piece)
                    .await
                    .map_err(|err| DownloadError::Network {
                        url: url.to_owned(),
                        err: err.to_string(),
                    })?;
                buf.extend_from_slice(&piece[..read]);
                Ok(read)
            }
        }
    }
}

impl<'a> Fetcher<'a> {
    pub(super) fn new(
        idle: Duration,
        signals: &'a mut Signals,
    ) -> Result<Fetcher<'a>, DownloadError> {
        Ok(Fetcher {
            client: client()?,
            idle,
            backoff: Backoff::NETWORK,
            signals,
        })
    }

    /// The signals that stop this download, for a step that waits on other work.
    pub(super) fn signals(&mut self) -> &mut Signals {
        self.signals
    }

    /// Streams `source` into `dest`, hashing on the way, retrying network failures.
    pub(super) async fn fetch_to_file(
        &mut self,
        source: &Source,
        dest: &Path,
        cap: Cap,
    ) -> Result<(), DownloadError> {
        self.fetch(source, &Target::File(dest), cap).await.map(drop)
    }

    /// Streams an upgrade's binary or archive from `source`, hashing on the way: a tar or tar.gz
    /// is unpacked into `dir` (existing, empty) as it arrives, anything else is written to
    /// `file`. The checksum is verified before this returns; a failure leaves `dir` empty.
    pub(super) async fn fetch_archive(
        &mut self,
        source: &Source,
        file: &Path,
        dir: &Path,
        cap: Cap,
    ) -> Result<Landed, DownloadError> {
        let target = Target::Archive {
            url: &source.original,
            file,
            dir,
        };
        self.fetch(source, &target, cap).await
    }

    /// One fetch with retries of network failures.
    async fn fetch(
        &mut self,
        source: &Source,
        target: &Target<'_>,
        cap: Cap,
    ) -> Result<Landed, DownloadError> {
        self.retrying(async |fetcher: &mut Self| fetcher.fetch_once(source, target, cap).await)
            .await
    }

    /// Runs `once` again after each network failure, waiting as `self.backoff` says, until it
    /// ends otherwise or the attempts are used up. A termination signal ends a wait at once.
    async fn retrying<T>(
        &mut self,
        mut once: impl AsyncFnMut(&mut Self) -> Result<T, DownloadError>,
    ) -> Result<T, DownloadError> {
        let mut attempt = 1;
        loop {
            match once(self).await {
                Err(DownloadError::Network { url, err }) if attempt < self.backoff.attempts => {
                    let delay = self.backoff.delay_after(attempt);
                    warn!(url = %url, error = %err, attempt, retry_in = %format_go_duration(delay), "download failed, retrying");
                    self.signals
                        .interruptible(tokio::time::sleep(delay))
                        .await?;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Opens the source: an HTTP response whose status and `Content-Length` are acceptable, or
    /// a regular local file within the cap.
    async fn open(
        &mut self,
        source: &Source,
        cap: Cap,
    ) -> Result<(Body, Option<u64>), DownloadError> {
        let url = &source.shown;
        let too_big = |who, size| DownloadError::Announced {
            url: url.clone(),
            who,
            size,
            limit: cap.shown,
            what: cap.what,
        };
        match &source.location {
            Location::File(path) => {
                let local = |err| DownloadError::Local {
                    url: url.clone(),
                    err,
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
                let network = |err: String| DownloadError::Network {
                    url: url.clone(),
                    err,
                };
                let request = self.client.get(address).send();
                let response = self
                    .signals
                    .interruptible(tokio::time::timeout(self.idle, request))
                    .await?
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
                    });
                }
                let length = response.content_length();
                if let Some(size) = length.filter(|size| *size > cap.bytes) {
                    return Err(too_big("the server announces", size));
                }
                Ok((Body::Http(response), length))
            }
        }
    }

    async fn fetch_once(
        &mut self,
        source: &Source,
        target: &Target<'_>,
        cap: Cap,
    ) -> Result<Landed, DownloadError> {
        let url = &source.shown;
        let (mut body, total) = self.open(source, cap).await?;
        let mut sink = Sink::new(target, source.checksum.as_ref())?;
        let mut progress = Progress::new("download", total);
        let streamed = self
            .stream(url, &mut body, &mut sink, &mut progress, cap)
            .await;
        let finished = match streamed {
            Ok(()) => match self.signals.interruptible(sink.finish()).await {
                Ok(finished) => finished,
                Err(interrupted) => Err(interrupted.into()),
            },
            Err(err) => Err(err),
        };
        let finished = match finished {
            Ok(finished) => finished,
            Err(err) => {
                sink.abort().await;
                return Err(err);
            }
        };
        if let (Some(actual), Some(expected)) = (finished.checksum, source.checksum.as_ref()) {
            if actual != *expected {
                sink.abort().await;
                return Err(DownloadError::Checksum {
                    url: url.clone(),
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
            info!(url = %url, checksum = %expected, "checksum verified");
        }
        if let Err(err) = finished.unpack {
            sink.abort().await;
            return Err(DownloadError::Archive {
                url: url.clone(),
                err,
            });
        }
        progress.finish();
        Ok(finished.landed)
    }

    /// Reads the body into `sink` to its end, under the cap and the idle rule.
    async fn stream(
        &mut self,
        url: &str,
        body: &mut Body,
        sink: &mut Sink<'_>,
        progress: &mut Progress,
        cap: Cap,
    ) -> Result<(), DownloadError> {
        let mut done = 0u64;
        // The idle rule: each window of `idle` must bring at least MIN_PROGRESS bytes (a local
        // file on a hung network mount is held to it too).
        let mut window_end = Instant::now() + self.idle;
        let mut window_bytes = 0u64;
        loop {
            let next = self
                .signals
                .interruptible(tokio::time::timeout_at(
                    window_end,
                    body.next_into(url, sink.buffer()),
                ))
                .await?;
            let len = match next {
                Ok(len) => len? as u64,
                Err(_elapsed) => {
                    self.check_window(url, window_bytes)?;
                    window_end = Instant::now() + self.idle;
                    window_bytes = 0;
                    continue;
                }
            };
            if len == 0 {
                return Ok(());
            }
            done += len;
            if done > cap.bytes {
                return Err(DownloadError::TooLarge {
                    url: url.to_owned(),
                    limit: cap.shown,
                    what: cap.what,
                });
            }
            self.signals.interruptible(sink.flush_full()).await??;
            progress.update(done);
            window_bytes += len;
            if Instant::now() >= window_end {
                self.check_window(url, window_bytes)?;
                window_end = Instant::now() + self.idle;
                window_bytes = 0;
            }
        }
    }

    /// Fails as stalled when an idle window brought fewer than [`MIN_PROGRESS`] bytes.
    fn check_window(&self, url: &str, window_bytes: u64) -> Result<(), DownloadError> {
        if window_bytes >= MIN_PROGRESS {
            return Ok(());
        }
        Err(DownloadError::Network {
            url: url.to_owned(),
            err: format!(
                "stalled: fewer than 1 KiB arrived in {} ({COSMOVISOR_DOWNLOAD_IDLE_TIMEOUT})",
                format_go_duration(self.idle)
            ),
        })
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
    crate::redact::redact(&reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network_failure() -> DownloadError {
        DownloadError::Network {
            url: "http://127.0.0.1:9/simd".to_owned(),
            err: "connection refused".to_owned(),
        }
    }

    /// When each attempt of `fetcher.retrying` started (time since the call), the attempt
    /// numbered `succeeds_at` (from 1; 0 for none) succeeding and every other one failing with
    /// `failure`.
    async fn attempts(
        fetcher: &mut Fetcher<'_>,
        succeeds_at: usize,
        failure: impl Fn() -> DownloadError,
    ) -> (Vec<Duration>, Result<(), DownloadError>) {
        let start = Instant::now();
        let mut started = Vec::new();
        let result = fetcher
            .retrying(async |_| {
                started.push(start.elapsed());
                if started.len() == succeeds_at {
                    Ok(())
                } else {
                    Err(failure())
                }
            })
            .await;
        assert_eq!(
            start.elapsed(),
            *started.last().unwrap(),
            "no wait after the last attempt"
        );
        (started, result)
    }

    #[tokio::test(start_paused = true)]
    async fn network_failures_are_tried_four_times_with_a_doubling_back_off() {
        let mut signals = Signals::install().unwrap();
        let mut fetcher = Fetcher::new(Duration::from_secs(60), &mut signals).unwrap();
        let (started, result) = attempts(&mut fetcher, 0, network_failure).await;
        let ms = Duration::from_millis;
        assert_eq!(started, [ms(0), ms(500), ms(1500), ms(3500)]);
        assert!(
            matches!(result, Err(DownloadError::Network { .. })),
            "the last network failure is the result"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_ends_the_retries() {
        let mut signals = Signals::install().unwrap();
        let mut fetcher = Fetcher::new(Duration::from_secs(60), &mut signals).unwrap();
        fetcher.backoff = Backoff {
            attempts: 5,
            first_delay: Duration::from_secs(10),
        };
        let (started, result) = attempts(&mut fetcher, 3, network_failure).await;
        let s = Duration::from_secs;
        assert_eq!(started, [s(0), s(10), s(30)]);
        assert!(result.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn other_failures_are_not_retried() {
        let mut signals = Signals::install().unwrap();
        let mut fetcher = Fetcher::new(Duration::from_secs(60), &mut signals).unwrap();
        let not_found = || DownloadError::Status {
            url: "http://127.0.0.1:9/simd".to_owned(),
            status: 404,
        };
        let (started, result) = attempts(&mut fetcher, 0, not_found).await;
        assert_eq!(started, [Duration::ZERO]);
        assert!(matches!(
            result,
            Err(DownloadError::Status { status: 404, .. })
        ));
    }
}
