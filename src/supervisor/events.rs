//! The events of `run` (README "Before the upgrade"): one [`Event`] per thing that happens to the
//! node's upgrades, emitted once by the supervisor and the outlook, and told to every observer from
//! here — the log line, and the webhook message (`COSMOVISOR_WEBHOOK_URL`) — so they cannot
//! disagree.

use serde_json::json;
use tracing::{info, warn};

use crate::supervisor::webhook::Webhook;

/// How much of a failed upgrade's error an event carries.
pub const ERROR_SHOWN: usize = 1000;

/// Something that happened to the node's upgrades.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An upgrade is scheduled (on chain or in the manual queue); `source`: `chain plan` or
    /// `manual upgrade`.
    Scheduled {
        name: String,
        height: i64,
        source: &'static str,
    },
    /// A scheduled upgrade's binary is staged and passes every check.
    Ready { name: String, height: i64 },
    /// A scheduled upgrade is not ready: why, and the fix.
    NotReady {
        name: String,
        height: i64,
        problem: String,
    },
    /// The node is being stopped for an upgrade (or has stopped at its height).
    Started { name: String, height: i64 },
    /// The upgrade switched `current`; `restarted`: the new binary was started.
    Completed {
        name: String,
        height: i64,
        restarted: bool,
    },
    /// The upgrade failed; cosmovisor stops with the error (its first [`ERROR_SHOWN`] bytes here:
    /// the whole error is cosmovisor's last line).
    Failed {
        name: String,
        height: i64,
        error: String,
    },
    /// The node exited on its own, not for an upgrade (our exit code for it).
    DaemonExited { code: u8 },
}

impl Event {
    /// [`Event::Failed`] for `error`, cut to [`ERROR_SHOWN`] bytes (at a character boundary).
    #[must_use]
    pub fn failed(name: String, height: i64, error: &str) -> Event {
        let mut end = error.len().min(ERROR_SHOWN);
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        let more = if end < error.len() { "…" } else { "" };
        Event::Failed {
            name,
            height,
            error: format!("{}{more}", &error[..end]),
        }
    }

    /// The webhook's `event` field.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Scheduled { .. } => "upgrade_scheduled",
            Event::Ready { .. } => "upgrade_ready",
            Event::NotReady { .. } => "upgrade_not_ready",
            Event::Started { .. } => "upgrade_started",
            Event::Completed { .. } => "upgrade_completed",
            Event::Failed { .. } => "upgrade_failed",
            Event::DaemonExited { .. } => "daemon_exited",
        }
    }

    /// The upgrade it is about, if any.
    fn upgrade(&self) -> Option<(&str, i64)> {
        match self {
            Event::Scheduled { name, height, .. }
            | Event::Ready { name, height }
            | Event::NotReady { name, height, .. }
            | Event::Started { name, height }
            | Event::Completed { name, height, .. }
            | Event::Failed { name, height, .. } => Some((name, *height)),
            Event::DaemonExited { .. } => None,
        }
    }

    /// What it adds to the upgrade (the webhook's `detail`).
    fn detail(&self) -> String {
        match self {
            Event::Scheduled { source, .. } => (*source).to_owned(),
            Event::Ready { .. } => "its binary is staged and checked".to_owned(),
            Event::NotReady { problem, .. } => problem.clone(),
            Event::Started { .. } => "stopping the node".to_owned(),
            Event::Completed {
                restarted: true, ..
            } => "the new binary runs".to_owned(),
            Event::Completed {
                restarted: false, ..
            } => "switched; not restarted (DAEMON_RESTART_AFTER_UPGRADE=false)".to_owned(),
            Event::Failed { error, .. } => error.clone(),
            Event::DaemonExited { code } => format!("exit code {code}"),
        }
    }

    /// One human sentence (the log line, and the webhook's `text`).
    #[must_use]
    pub fn sentence(&self, daemon: &str) -> String {
        match self {
            Event::Scheduled {
                name,
                height,
                source,
            } => format!("upgrade {name} scheduled at height {height} ({source})"),
            Event::Ready { name, height } => {
                format!(
                    "upgrade {name} at height {height} is ready: its binary is staged and checked"
                )
            }
            Event::NotReady {
                name,
                height,
                problem,
            } => format!("upgrade {name} at height {height} is NOT READY: {problem}"),
            Event::Started { name, height } => {
                format!("upgrade {name} at height {height} started: stopping {daemon}")
            }
            Event::Completed { name, height, .. } => {
                format!(
                    "upgrade {name} at height {height} completed: {}",
                    self.detail()
                )
            }
            Event::Failed {
                name,
                height,
                error,
            } => format!("upgrade {name} at height {height} FAILED: {error}"),
            Event::DaemonExited { code } => {
                format!("{daemon} exited unexpectedly (exit code {code})")
            }
        }
    }
}

/// Tells every observer of an event.
#[derive(Clone)]
pub struct Events {
    daemon: String,
    host: String,
    webhook: Option<Webhook>,
}

impl Events {
    /// The observers for `daemon`; with `webhook_url`, its delivery task is started (inside the
    /// tokio runtime).
    #[must_use]
    pub fn new(daemon: &str, webhook_url: Option<&str>) -> Events {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_default();
        Events {
            daemon: daemon.to_owned(),
            host,
            webhook: webhook_url.map(Webhook::start),
        }
    }

    /// Logs `event` and queues its webhook message; never waits.
    pub fn emit(&self, event: &Event) {
        let text = self.sentence(event);
        match event {
            Event::NotReady { .. } | Event::Failed { .. } | Event::DaemonExited { .. } => {
                warn!("{text}");
            }
            _ => info!("{text}"),
        }
        if let Some(webhook) = &self.webhook {
            webhook.send(self.message(event, &text));
        }
    }

    fn sentence(&self, event: &Event) -> String {
        event.sentence(&self.daemon)
    }

    /// The webhook's JSON body: `text` for Slack and Mattermost, `content` for Discord.
    fn message(&self, event: &Event, text: &str) -> Vec<u8> {
        let upgrade = event
            .upgrade()
            .map(|(name, height)| json!({"name": name, "height": height}));
        let body = json!({
            "event": event.kind(),
            "daemon": self.daemon,
            "host": self.host,
            "upgrade": upgrade,
            "detail": event.detail(),
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "text": text,
            "content": text,
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// Waits for queued webhook messages, at most `limit` (before exiting).
    pub async fn flush(&self, limit: std::time::Duration) {
        if let Some(webhook) = &self.webhook {
            webhook.flush(limit).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_upgrade_carries_the_start_of_its_error() {
        let long = "é".repeat(ERROR_SHOWN);
        let Event::Failed { error, .. } = Event::failed("v2".into(), 7, &long) else {
            panic!("not a failure");
        };
        assert!(error.len() <= ERROR_SHOWN + "…".len(), "{}", error.len());
        assert!(error.ends_with('…'));
        let Event::Failed { error, .. } = Event::failed("v2".into(), 7, "short") else {
            panic!("not a failure");
        };
        assert_eq!(error, "short");
    }

    #[test]
    fn each_event_has_its_webhook_name_and_sentence() {
        let cases = [
            (
                Event::NotReady {
                    name: "v3".into(),
                    height: 9,
                    problem: "binary x is not staged; fix: stage it".into(),
                },
                "upgrade_not_ready",
                "upgrade v3 at height 9 is NOT READY: binary x is not staged; fix: stage it",
            ),
            (
                Event::DaemonExited { code: 137 },
                "daemon_exited",
                "panacead exited unexpectedly (exit code 137)",
            ),
        ];
        for (event, kind, sentence) in cases {
            assert_eq!(event.kind(), kind);
            assert_eq!(event.sentence("panacead"), sentence);
        }
    }
}
