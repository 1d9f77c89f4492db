//! Copies the daemon's stdout and stderr to ours byte for byte, and spots the
//! `UPGRADE "<name>" NEEDED at height: …` and halt lines on the way.
//!
//! Each stream is copied by a plain thread doing blocking `read`/`write` on the pipe and on a
//! duplicate of our own descriptor: no line splitting, no UTF-8 decoding, no length limit (Go
//! v0.1's 64 KiB scanner froze nodes on long lines). The scan looks for the marker with a SIMD
//! substring search over each whole chunk and only splits lines when it is present, so the copy
//! stays close to `cat`'s speed. When our own output is gone (EPIPE), reading and scanning go on
//! so the daemon never blocks on a full pipe.
//!
//! What the scan finds is only a hint (docs/design.md "Trust boundaries"): upgrade lines go to the
//! supervisor on a small bounded channel (a full channel drops the line, since one queued line
//! already makes the supervisor read `data/upgrade-info.json`; identical consecutive lines are sent
//! once), and the last halt height the node claimed is kept in a `watch` cell the supervisor reads
//! only after the daemon exited. Neither grows with the daemon's output, and the scan is linear in
//! it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use crate::home::plan::{LinePlan, Notice, match_notice};

/// Size of one read from the pipe, as `cat`'s: a 1 MiB read holds the pipe's lock so long that
/// the daemon writing into it spins (a third less throughput on 2 cores; `examples/bench.rs`).
const CHUNK: usize = 1 << 17;
/// The longest unfinished line kept for the scan; the copy itself has no limit.
const MAX_PENDING_LINE: usize = 1 << 20;
/// What every line holding an upgrade request contains.
const UPGRADE_MARKER: &[u8] = b"NEEDED at height: ";
/// What every halt line contains.
const HALT_MARKER: &[u8] = b"per configuration";

/// How many upgrade lines may wait for the supervisor; more are dropped (see the module doc).
const LINE_QUEUE: usize = 16;

/// What the daemon's output hinted at, as the supervisor receives it.
pub struct Hints {
    /// `UPGRADE … NEEDED` lines: reasons to read `data/upgrade-info.json` now.
    pub upgrade_lines: mpsc::Receiver<LinePlan>,
    /// Halt lines: the heights the node claims to halt at.
    pub halts: Halts,
}

/// The halt heights the daemon's output claimed.
pub struct Halts {
    halt: watch::Receiver<Option<HaltLine>>,
}

/// The last halt line the daemon printed: the height it names, and when it was read (a signal
/// forwarded after it makes the node's exit no evidence of a halt: `supervise/manual.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HaltLine {
    pub height: i64,
    pub seen: Instant,
}

impl Hints {
    /// The last halt line the daemon printed, if any.
    #[must_use]
    pub fn halt_line(&self) -> Option<HaltLine> {
        *self.halts.halt.borrow()
    }
}

impl Halts {
    /// Waits for the daemon's next halt line and returns its height (never, once its output has
    /// ended). Cancel-safe.
    pub async fn next(&mut self) -> i64 {
        loop {
            if self.halt.changed().await.is_err() {
                return std::future::pending().await;
            }
            if let Some(line) = *self.halt.borrow_and_update() {
                return line.height;
            }
        }
    }
}

/// The copiers' side of [`Hints`].
#[derive(Clone)]
pub struct HintSender {
    lines: mpsc::Sender<LinePlan>,
    halt: watch::Sender<Option<HaltLine>>,
}

/// A new pair of hint channels, for one run of the daemon.
#[must_use]
pub fn hints() -> (HintSender, Hints) {
    let (lines, upgrade_lines) = mpsc::channel(LINE_QUEUE);
    let (halt, halt_rx) = watch::channel(None);
    (
        HintSender { lines, halt },
        Hints {
            upgrade_lines,
            halts: Halts { halt: halt_rx },
        },
    )
}

/// Forwards what one stream's scan finds, coalescing repeated upgrade lines.
struct HintSink {
    sender: HintSender,
    last_line: Option<LinePlan>,
}

impl HintSink {
    fn found(&mut self, notice: Notice) {
        match notice {
            Notice::Upgrade(line) => {
                if self.last_line.as_ref() == Some(&line) {
                    return;
                }
                // Full or closed: the supervisor already has a reason to look, or stopped
                // listening; either way dropping the line loses nothing.
                let _ = self.sender.lines.try_send(line.clone());
                self.last_line = Some(line);
            }
            Notice::Halted(height) => {
                self.sender.halt.send_replace(Some(HaltLine {
                    height,
                    seen: Instant::now(),
                }));
            }
        }
    }
}

/// Which of our streams a daemon stream goes to.
#[derive(Debug, Clone, Copy)]
pub enum Sink {
    Stdout,
    Stderr,
}

impl Sink {
    fn open(self) -> io::Result<File> {
        let fd = match self {
            Sink::Stdout => io::stdout().as_fd().try_clone_to_owned()?,
            Sink::Stderr => io::stderr().as_fd().try_clone_to_owned()?,
        };
        Ok(File::from(fd))
    }
}

/// A running copy of one daemon stream.
pub struct Copier {
    done: oneshot::Receiver<()>,
}

impl Copier {
    /// Starts copying `pipe` (the read end of the daemon's stream) to `sink`, sending what the
    /// scan finds to `hints`.
    pub fn start(pipe: OwnedFd, sink: Sink, hints: HintSender) -> io::Result<Copier> {
        // A bigger pipe means fewer wake-ups for a chatty daemon; the kernel may refuse (EPERM
        // above /proc/sys/fs/pipe-max-size), which only costs speed.
        let _ = nix::fcntl::fcntl(&pipe, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
        let out = sink.open()?;
        let (done_tx, done) = oneshot::channel();
        thread::Builder::new()
            .name(format!("copy-{sink:?}").to_lowercase())
            .spawn(move || {
                let mut hints = HintSink {
                    sender: hints,
                    last_line: None,
                };
                copy(File::from(pipe), out, &mut hints);
                let _ = done_tx.send(());
            })?;
        Ok(Copier { done })
    }

    /// Waits until the stream reached its end (the daemon and every process that inherited the
    /// pipe closed it), at most `limit`, so the daemon's last words are written before we go on.
    pub async fn finish(self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.done).await;
    }
}

fn copy(mut pipe: File, mut out: File, hints: &mut HintSink) {
    let mut buf = vec![0u8; CHUNK];
    let mut scanner = LineScanner::default();
    let mut writing = true;
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let chunk = &buf[..n];
        if writing && out.write_all(chunk).is_err() {
            // Our reader is gone; keep draining so the daemon is never blocked by us.
            writing = false;
        }
        scanner.feed(chunk, &mut |notice| hints.found(notice));
    }
    scanner.finish(&mut |notice| hints.found(notice));
}

/// Finds upgrade lines in a byte stream that arrives in arbitrary chunks.
#[derive(Default)]
pub struct LineScanner {
    pending: Vec<u8>,
}

impl LineScanner {
    /// Scans the complete lines of `chunk` (together with what is pending from the last chunk).
    pub fn feed(&mut self, chunk: &[u8], found: &mut impl FnMut(Notice)) {
        let mut rest = chunk;
        if !self.pending.is_empty() {
            let Some(end) = memchr::memchr(b'\n', rest) else {
                self.keep(rest);
                return;
            };
            self.pending.extend_from_slice(&rest[..=end]);
            let line = std::mem::take(&mut self.pending);
            scan_lines(&line, found);
            rest = &rest[end + 1..];
        }
        match memchr::memrchr(b'\n', rest) {
            Some(last) => {
                scan_lines(&rest[..=last], found);
                self.keep(&rest[last + 1..]);
            }
            None => self.keep(rest),
        }
    }

    /// Scans what is left when the stream ends without a final newline.
    pub fn finish(&mut self, found: &mut impl FnMut(Notice)) {
        let line = std::mem::take(&mut self.pending);
        scan_lines(&line, found);
    }

    fn keep(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() > MAX_PENDING_LINE {
            let excess = self.pending.len() - MAX_PENDING_LINE;
            self.pending.drain(..excess);
        }
    }
}

fn scan_lines(block: &[u8], found: &mut impl FnMut(Notice)) {
    if memchr::memmem::find(block, UPGRADE_MARKER).is_none()
        && memchr::memmem::find(block, HALT_MARKER).is_none()
    {
        return;
    }
    for line in block.split_inclusive(|&b| b == b'\n') {
        if let Some(notice) = match_notice(line) {
            found(notice);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> Vec<Notice> {
        let mut scanner = LineScanner::default();
        let mut found = Vec::new();
        for chunk in chunks {
            scanner.feed(chunk, &mut |p| found.push(p));
        }
        scanner.finish(&mut |p| found.push(p));
        found
    }

    #[test]
    fn finds_line_split_across_chunks() {
        let found = scan(&[
            b"abc\nERR UPGRADE \"v2\" NEE",
            b"DED at height: 7",
            b": info\nmore\n",
        ]);
        assert_eq!(
            found,
            vec![Notice::Upgrade(LinePlan {
                name: "v2".into(),
                height: 7,
            })]
        );
    }

    #[test]
    fn finds_line_without_final_newline() {
        let found = scan(&[b"UPGRADE \"v3\" NEEDED at height: 9: x"]);
        assert!(matches!(&found[0], Notice::Upgrade(plan) if plan.height == 9));
    }

    #[test]
    fn finds_line_after_a_huge_line() {
        let huge = vec![b'a'; 3 * MAX_PENDING_LINE];
        let found = scan(&[&huge, b"\n", b"UPGRADE \"v4\" NEEDED at height: 1: i\n"]);
        assert_eq!(found.len(), 1);
    }

    /// Lines made of the piece that made the old scan quadratic (12 s of CPU for 4 MiB).
    #[test]
    fn the_scan_is_linear_in_hostile_lines() {
        let piece = b"UPGRADE \"\" NEEDED at height: x";
        let mut input = piece.repeat((4 << 20) / piece.len());
        input.push(b'\n');
        let start = std::time::Instant::now();
        // One 4 MiB chunk (the scan of a whole line), then the same in pipe-sized chunks.
        assert!(scan(&[&input]).is_empty());
        let chunks: Vec<&[u8]> = input.chunks(CHUNK).collect();
        assert!(scan(&chunks).is_empty());
        assert!(match_notice(&input).is_none());
        let elapsed = start.elapsed();
        assert!(
            elapsed < Duration::from_secs(3),
            "12 MiB of hostile lines took {elapsed:?}"
        );
    }

    #[test]
    fn repeated_lines_are_sent_once_and_a_full_queue_drops_lines() {
        let (sender, mut hints) = hints();
        let mut sink = HintSink {
            sender,
            last_line: None,
        };
        let line = |height| {
            Notice::Upgrade(LinePlan {
                name: "v".into(),
                height,
            })
        };
        for _ in 0..1000 {
            sink.found(line(1));
        }
        for height in 0..1000 {
            sink.found(line(height + 2));
        }
        sink.found(Notice::Halted(9));
        let mut received = Vec::new();
        while let Ok(line) = hints.upgrade_lines.try_recv() {
            received.push(line.height);
        }
        assert_eq!(
            received,
            (1..=i64::try_from(LINE_QUEUE).unwrap()).collect::<Vec<_>>()
        );
        assert_eq!(hints.halt_line().map(|line| line.height), Some(9));
    }

    #[test]
    fn finds_halt_lines() {
        assert_eq!(
            scan(&[b"x\nINF halt per configuration height 12 module=server\n"]),
            vec![Notice::Halted(12)]
        );
    }

    #[test]
    fn ignores_other_lines() {
        assert!(
            scan(&[
                b"NEEDED at height: 5: nothing\n",
                b"UPGRADE \"x\" SKIPPED at 5: y\n"
            ])
            .is_empty()
        );
    }
}
