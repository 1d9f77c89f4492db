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
//! one, and an upgrade in progress stops at the next safe point (its journal resumes it). This is
//! the one interruption model: [`Signals`] remembers the first termination signal it received,
//! and every long step (a download, an unpacking, a backup, a hook, a wait) ends with
//! [`Interrupted`] when one arrives, so `?` carries it up to the supervisor, which stops with
//! `128 + N`. Blocking work on other threads checks a cancel flag between two pieces of it
//! ([`Signals::cancel_on_termination`] sets it and waits for the work to return).

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// A termination signal arrived while a step ran: the step stopped at its next safe point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stopped by {signal}")]
pub struct Interrupted {
    pub signal: Signal,
}

/// `128 + N`, as when the daemon dies by signal N: a step stopped by a signal that reaches
/// `main` unhandled still exits with the documented code.
impl crate::exit::ExitCode for Interrupted {
    fn exit_code(&self) -> u8 {
        crate::exit::from_signal(self.signal)
    }
}

/// Listeners for [`FORWARDED`], created once and polled by the one event loop; they remember
/// the first termination signal received.
pub struct Signals {
    streams: Vec<(Signal, tokio::signal::unix::Signal)>,
    first_termination: Option<Signal>,
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
        Ok(Signals {
            streams,
            first_termination: None,
        })
    }

    /// The next signal to arrive (a termination signal is remembered). Cancel-safe: a signal
    /// that arrives while another branch of a `select!` wins stays queued in its stream.
    pub async fn recv(&mut self) -> Signal {
        let sig = poll_fn(|cx| {
            for (sig, stream) in &mut self.streams {
                if let Poll::Ready(Some(())) = stream.poll_recv(cx) {
                    return Poll::Ready(*sig);
                }
            }
            Poll::Pending
        })
        .await;
        self.remember(sig);
        sig
    }

    fn remember(&mut self, sig: Signal) {
        if is_termination(sig) && self.first_termination.is_none() {
            self.first_termination = Some(sig);
        }
    }

    /// `Err` once a termination signal has been received (by [`Signals::recv`] or any wait
    /// below); signals still queued are left for the next `recv`.
    pub fn interrupted(&self) -> Result<(), Interrupted> {
        match self.first_termination {
            Some(signal) => Err(Interrupted { signal }),
            None => Ok(()),
        }
    }

    /// Like [`Signals::interrupted`], after taking in the signals that already arrived; those
    /// that do not stop us are dropped, so call it only while no process runs to forward them
    /// to (between two steps of an upgrade).
    pub fn check(&mut self) -> Result<(), Interrupted> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut arrived = Vec::new();
        for (sig, stream) in &mut self.streams {
            while let Poll::Ready(Some(())) = stream.poll_recv(&mut cx) {
                arrived.push(*sig);
            }
        }
        for sig in arrived {
            self.remember(sig);
        }
        self.interrupted()
    }

    /// The first termination signal: at once when one was already received, else the next to
    /// arrive; others that arrive meanwhile are dropped (for the waits where no daemon runs to
    /// forward them to). Cancel-safe.
    pub async fn terminated(&mut self) -> Interrupted {
        loop {
            if let Err(interrupted) = self.interrupted() {
                return interrupted;
            }
            self.recv().await;
        }
    }

    /// Runs `work` unless a termination signal comes first (see [`Signals::terminated`]); the
    /// work is then dropped where it stands.
    pub async fn interruptible<T>(
        &mut self,
        work: impl Future<Output = T>,
    ) -> Result<T, Interrupted> {
        tokio::select! {
            biased;
            interrupted = self.terminated() => Err(interrupted),
            done = work => Ok(done),
        }
    }

    /// Waits for `work` to its end, where `work` waits for blocking work that checks `cancel`
    /// between two pieces of it. A termination signal sets `cancel`, and the wait goes on until
    /// the blocking work returned, so nothing it writes outlives this call; the result is then
    /// [`Interrupted`], whatever the work returned.
    pub async fn cancel_on_termination<T>(
        &mut self,
        cancel: &AtomicBool,
        work: impl Future<Output = T>,
    ) -> Result<T, Interrupted> {
        tokio::pin!(work);
        let done = loop {
            tokio::select! {
                done = &mut work => break done,
                _ = self.terminated(), if !cancel.load(Ordering::Relaxed) => {
                    cancel.store(true, Ordering::Relaxed);
                }
            }
        };
        self.interrupted()?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interruption_names_its_signal() {
        let interrupted = Interrupted {
            signal: Signal::SIGTERM,
        };
        assert_eq!(interrupted.to_string(), "stopped by SIGTERM");
    }
}
