//! `COSMOVISOR_WEBHOOK_URL`: one JSON POST per event (README "Before the upgrade"), in order,
//! from a task of its own, so delivery never delays or blocks an upgrade step or the loop.
//! [`Webhook::send`] only queues: the queue is bounded ([`QUEUE`]; when full the oldest message
//! is dropped and the drops are counted in the next warning). Each message gets [`TRIES`] tries
//! of [`TRY_LIMIT`] each, with back-off between them; an outage is one warning (and one line when
//! delivery works again). The URL may hold a secret (Slack's is one): it is shown only through
//! [`crate::redact::redact`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{info, warn};

/// Messages waiting at most; an older one is dropped for a newer one.
pub const QUEUE: usize = 64;
/// How long one try may take (connect, send, answer).
pub const TRY_LIMIT: Duration = Duration::from_secs(5);
/// Tries per message.
pub const TRIES: u32 = 3;
/// The wait before the second try; it doubles for the next.
const BACKOFF: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Queue {
    messages: VecDeque<Vec<u8>>,
    dropped: u64,
}

/// The sender of the webhook messages; cheap to clone.
#[derive(Clone)]
pub struct Webhook {
    queue: Arc<Mutex<Queue>>,
    wake: Arc<Notify>,
    idle: Arc<Notify>,
}

impl Webhook {
    /// Starts the delivery task for `url` (must run inside the tokio runtime).
    #[must_use]
    pub fn start(url: &str) -> Webhook {
        let webhook = Webhook {
            queue: Arc::default(),
            wake: Arc::default(),
            idle: Arc::default(),
        };
        let task = webhook.clone();
        let url = url.to_owned();
        tokio::spawn(async move { task.deliver(url).await });
        webhook
    }

    /// Queues one JSON body; never waits.
    pub fn send(&self, body: Vec<u8>) {
        if let Ok(mut queue) = self.queue.lock() {
            if queue.messages.len() >= QUEUE {
                queue.messages.pop_front();
                queue.dropped += 1;
            }
            queue.messages.push_back(body);
        }
        self.wake.notify_one();
    }

    /// Waits until the queue is empty, at most `limit` (before exiting).
    pub async fn flush(&self, limit: Duration) {
        let empty = async {
            loop {
                let idle = self.idle.notified();
                if self
                    .queue
                    .lock()
                    .map_or(true, |queue| queue.messages.is_empty())
                {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(limit, empty).await;
    }

    async fn deliver(self, url: String) {
        let shown = crate::redact::redact(&url);
        let client = match reqwest::Client::builder()
            .timeout(TRY_LIMIT)
            .connect_timeout(TRY_LIMIT)
            .build()
        {
            Ok(client) => client,
            Err(err) => {
                warn!(url = %shown, error = %err, "cannot set up the webhook (COSMOVISOR_WEBHOOK_URL); no webhook messages are sent");
                return;
            }
        };
        let mut down = false;
        loop {
            let next = self.queue.lock().ok().and_then(|mut queue| {
                let dropped = std::mem::take(&mut queue.dropped);
                queue.messages.pop_front().map(|body| (body, dropped))
            });
            let Some((body, dropped)) = next else {
                self.idle.notify_waiters();
                self.wake.notified().await;
                continue;
            };
            if dropped > 0 {
                warn!(url = %shown, dropped, "webhook queue full: the oldest messages were dropped");
            }
            match post(&client, &url, body).await {
                Ok(()) => {
                    if down {
                        info!(url = %shown, "the webhook accepts messages again");
                        down = false;
                    }
                }
                Err(err) => {
                    if !down {
                        warn!(url = %shown, error = %crate::redact::redact(&err), "cannot deliver to the webhook (COSMOVISOR_WEBHOOK_URL); messages are dropped until it answers again");
                        down = true;
                    }
                }
            }
        }
    }
}

/// Up to [`TRIES`] tries of one message; the last error.
async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> Result<(), String> {
    let mut wait = BACKOFF;
    let mut last = String::new();
    for attempt in 1..=TRIES {
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => return Ok(()),
            Ok(answer) => last = format!("HTTP {}", answer.status().as_u16()),
            Err(err) => last = crate::supervisor::node_rpc::error_chain(&err.without_url()),
        }
        if attempt < TRIES {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    Err(last)
}
