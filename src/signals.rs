//! The signals cosmovisor listens to and the forwarding policy, in one place.
//!
//! Policy: SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 and SIGUSR2 are caught once, at start-up,
//! and every arrival is forwarded to the daemon that is running at that moment — for every
//! relaunch, not just the first one (Go forwards only the first SIGTERM/SIGQUIT per launch and
//! lets SIGINT kill cosmovisor, orphaning the node).
//!
//! Process groups: when our stdin is not a terminal (systemd, scripts, containers) the daemon
//! leads its own process group, so its whole tree can be stopped with one `killpg` and nothing
//! reaches it but what we forward: every signal arrives exactly once. When stdin is a terminal,
//! the daemon stays in our (foreground) group so it can still read the terminal (a keyring
//! passphrase prompt; a background group would be stopped by SIGTTIN). Ctrl-C then reaches the
//! daemon and us at once, so SIGINT is *not* forwarded in that case ([`already_delivered`]), or
//! the daemon would see it twice; every other signal is forwarded as usual. Its leftover
//! descendants are then found as our adopted children (we are a child subreaper).
//!
//! SIGTERM, SIGINT and SIGQUIT also mean "cosmovisor should stop": no upgrade is started after
//! one, and an upgrade in progress stops at the next safe point (its journal resumes it).

use std::future::poll_fn;
use std::task::Poll;

use nix::sys::signal::{SigSet, Signal};
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

/// Whether the daemon gets its own process group: only when our stdin is not a terminal.
#[must_use]
pub fn daemon_gets_own_group() -> bool {
    !std::io::IsTerminal::is_terminal(&std::io::stdin())
}

/// Whether `signal`, received by cosmovisor, has already reached the daemon on its own: a
/// terminal's SIGINT goes to the whole foreground group, which a daemon without its own group
/// shares with us.
#[must_use]
pub fn already_delivered(signal: Signal, daemon_has_own_group: bool) -> bool {
    signal == Signal::SIGINT && !daemon_has_own_group
}

/// Listeners for [`FORWARDED`], created once and polled by the one event loop.
pub struct Signals {
    streams: Vec<(Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Installs the handlers. Must run inside the tokio runtime.
    ///
    /// The signals are unblocked first: a parent may have left them blocked, and the mask
    /// survives fork and exec (our own PID 1 init blocks them before it starts the supervisor);
    /// a blocked SIGTERM would never reach us, a blocked SIGCHLD would leave adopted orphans
    /// unreaped, and the daemon would inherit the mask.
    pub fn install() -> std::io::Result<Signals> {
        let mut mask = SigSet::empty();
        for sig in FORWARDED {
            mask.add(sig);
        }
        mask.add(Signal::SIGCHLD);
        mask.thread_unblock().map_err(std::io::Error::from)?;
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
