//! The webhook's observer of the event stream (`events.rs`, docs/design.md "One event stream"):
//! each event told to the operator becomes one JSON message for `COSMOVISOR_WEBHOOK_URL`,
//! queued on the webhook's delivery task (`webhook.rs`).

use serde_json::json;

use crate::events::{Event, Observer};
use crate::supervisor::webhook::Webhook;

/// Turns the told events into webhook messages.
pub struct WebhookMessages {
    daemon: String,
    host: String,
    webhook: Webhook,
}

impl WebhookMessages {
    /// The messages about `daemon`, sent through `webhook`.
    #[must_use]
    pub fn new(daemon: &str, webhook: Webhook) -> WebhookMessages {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_default();
        WebhookMessages {
            daemon: daemon.to_owned(),
            host,
            webhook,
        }
    }

    /// The webhook's JSON body for a told event: `text` for Slack and Mattermost, `content` for
    /// Discord. `None` for the events the operator is not told.
    fn message(&self, event: &Event) -> Option<Vec<u8>> {
        let kind = event.kind()?;
        let text = event.sentence(&self.daemon)?;
        let upgrade = event
            .upgrade()
            .map(|(name, height)| json!({"name": name, "height": height}));
        let body = json!({
            "event": kind,
            "daemon": self.daemon,
            "host": self.host,
            "upgrade": upgrade,
            "detail": event.detail(),
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "text": text,
            "content": text,
        });
        Some(serde_json::to_vec(&body).unwrap_or_default())
    }
}

impl Observer for WebhookMessages {
    fn observe(&self, event: &Event) {
        if let Some(message) = self.message(event) {
            self.webhook.send(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Step;

    #[tokio::test]
    async fn a_told_event_is_one_message_and_a_step_none() {
        let messages = WebhookMessages::new("panacead", Webhook::start("http://127.0.0.1:9/"));
        let failed = Event::failed("v3".into(), 9, "pre-upgrade exited with 1");
        let body: serde_json::Value =
            serde_json::from_slice(&messages.message(&failed).unwrap()).unwrap();
        let text = "upgrade v3 at height 9 FAILED: pre-upgrade exited with 1";
        assert_eq!(body["event"], "upgrade_failed");
        assert_eq!(body["daemon"], "panacead");
        assert_eq!(
            body["upgrade"],
            serde_json::json!({"name": "v3", "height": 9})
        );
        assert_eq!(body["detail"], "pre-upgrade exited with 1");
        assert_eq!(
            (&body["text"], &body["content"]),
            (&text.into(), &text.into())
        );
        let step = Event::Step {
            name: "v3".into(),
            step: Step::Downloading,
        };
        assert!(messages.message(&step).is_none());
    }
}
