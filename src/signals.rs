//! The signals cosmovisor listens to and the forwarding policy, in one place.
//!
//! Policy: SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 and SIGUSR2 are caught once, at start-up,
//! and every arrival is forwarded to the daemon that is running at that moment — for every
//! relaunch, not just the first one (Go forwards only the first SIGTERM/SIGQUIT per launch and
//! lets SIGINT kill cosmovisor, orphaning the node).
//!
//! The daemon stays in our process group, as with Go cosmovisor, so a terminal's Ctrl-C or
//! systemd's `KillMode=control-group` reaches it directly as well; the duplicate our forwarding
//! adds is harmless for Cosmos SDK nodes, which act on the first signal and ignore the rest.
//! SIGTERM, SIGINT and SIGQUIT also mean "cosmovisor should stop": no upgrade is started after
//! one, and an upgrade in progress stops at the next safe point (its journal resumes it).

use std::future::poll_fn;
use std::task::Poll;

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};

/// The signals we forward, in the order they are polled.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Whether a signal asks cosmovisor (and the daemon) to stop.
#[must_use]
pub fn is_termination(signal: Signal) -> bool {
    matches!(signal, Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT)
}

/// Listeners for [`FORWARDED`], created once and polled by the one event loop.
pub struct Signals {
    streams: Vec<(Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Installs the handlers. Must run inside the tokio runtime.
    pub fn install() -> std::io::Result<Signals> {
        let mut streams = Vec::with_capacity(FORWARDED.len());
        for sig in FORWARDED {
            streams.push((sig, signal(SignalKind::from_raw(sig as i32))?));
        }
        Ok(Signals { streams })
    }

    /// The next signal to arrive. Cancel-safe: a signal that arrives while another branch of a
    /// `select!` wins stays queued in its stream.
    pub async fn recv(&mut self) -> Signal {
        poll_fn(|cx| {
            for (sig, stream) in &mut self.streams {
                if let Poll::Ready(Some(())) = stream.poll_recv(cx) {
                    return Poll::Ready(*sig);
                }
            }
            Poll::Pending
        })
        .await
    }

    /// The next termination signal ([`is_termination`]); others that arrive meanwhile are
    /// dropped (for the waits where no daemon runs to forward them to). Cancel-safe.
    pub async fn next_termination(&mut self) -> Signal {
        loop {
            let sig = self.recv().await;
            if is_termination(sig) {
                return sig;
            }
        }
    }

    /// A signal that has already arrived, without waiting.
    pub fn try_recv(&mut self) -> Option<Signal> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        for (sig, stream) in &mut self.streams {
            if let Poll::Ready(Some(())) = stream.poll_recv(&mut cx) {
                return Some(*sig);
            }
        }
        None
    }
}
