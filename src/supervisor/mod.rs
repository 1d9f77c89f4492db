//! `cosmovisor run`: the one loop that owns the daemon (`supervise`), the daemon process and its
//! output, the plan watcher, the outlook on scheduled upgrades (`outlook`), the webhook's observer of the event stream and its delivery (`events`, `webhook`), signals forwarded to it, the supervisor lock, running as PID 1, the
//! node's RPC and the metrics endpoint. Uses `upgrade`, `acquire`, `home` and the shared pieces.

pub mod events;
pub mod lock;
pub mod metrics_endpoint;
pub mod node_rpc;
pub mod outlook;
pub mod output;
pub mod pid1;
pub mod process;
pub mod supervise;
pub mod watcher;
pub mod webhook;
