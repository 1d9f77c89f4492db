//! The node's height from its `CometBFT` RPC (`GET <rpc>/status`,
//! `result.sync_info.latest_block_height`), believed only when the answer comes from our node.
//!
//! Any local user can bind a port the node is not on (its RPC is off, restarting, or on another
//! address), so an answer counts only when its `result.node_info.id` is the node ID derived from
//! the node's own key, `$DAEMON_HOME/config/node_key.json` (docs/design.md "Trust boundaries").
//! Any other answer, and a key that cannot be read, is "could not check": it never confirms a halt,
//! never removes or skips a queued upgrade, and never makes `add-upgrade` refuse.
//!
//! Where to ask: `COSMOVISOR_NODE_RPC` when set; otherwise the node's own `[rpc] laddr` in
//! `$DAEMON_HOME/config/config.toml` (`tcp://0.0.0.0:P` is asked at `127.0.0.1:P`), falling back to
//! [`DEFAULT_NODE_RPC`]. A `unix://` laddr is not supported (could not check). Both files are read
//! at each question, bounded, so a node that writes its key on first start is known at once.
//!
//! The answer is used only to refuse or to confirm, never to trigger an upgrade, a stop or a
//! restart by itself. The request has a short timeout, goes to the address as given (no proxy
//! from the environment), and the body is capped. The address is shown redacted everywhere.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::bounded_read::{self, DOCUMENT_CAP, RECORD_CAP, ReadError};
use crate::config::{Config, DEFAULT_NODE_RPC};
use crate::redact::redact;

/// How long one question may take (connect, headers and body): the node is local or near, and a
/// caller waiting longer would rather say "could not check".
const TIMEOUT: Duration = Duration::from_secs(3);
/// A `status` answer is about 1 KiB; anything past this is not one.
const BODY_CAP: usize = 64 << 10;
/// Where `CometBFT` keeps the node key when `config.toml` does not say (`node_key_file`).
const DEFAULT_NODE_KEY_FILE: &str = "config/node_key.json";

/// Why the node's height could not be learned ("could not check").
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot reach the node's RPC at {url}: {err}")]
    Unreachable { url: String, err: String },
    #[error("the node's RPC at {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("the node's RPC at {url} answered more than {BODY_CAP} bytes; not a status answer")]
    TooBig { url: String },
    #[error(
        "the node's RPC at {url} did not answer a status with result.node_info.id and result.sync_info.latest_block_height: {reason}"
    )]
    Malformed { url: String, reason: String },
    #[error(
        "the RPC at {url} answered for node {answered}, but this home's node is {expected} (config/node_key.json): not our node, its answer is ignored; point COSMOVISOR_NODE_RPC at this node's RPC"
    )]
    NotOurNode {
        url: String,
        expected: String,
        answered: String,
    },
    #[error(
        "cannot authenticate the node's RPC: {reason}; the node's ID comes from its node key (start the node once to create it)"
    )]
    NoNodeKey { reason: String },
    #[error("no node RPC to ask: {reason}")]
    NoAddress { reason: String },
}

/// The node's RPC, as this home's configuration names it.
#[derive(Debug, Clone)]
pub struct NodeRpc {
    /// `COSMOVISOR_NODE_RPC`, when set.
    explicit: Option<String>,
    /// `$DAEMON_HOME`: where `config/config.toml` and the node key are.
    home: PathBuf,
}

impl NodeRpc {
    #[must_use]
    pub fn for_home(cfg: &Config) -> NodeRpc {
        NodeRpc {
            explicit: cfg.node_rpc.clone(),
            home: cfg.home.clone(),
        }
    }

    /// The address to ask, redacted, or why there is none: for messages.
    #[must_use]
    pub fn shown(&self) -> String {
        match self.address() {
            Ok(url) => redact(&url),
            Err(err) => err.to_string(),
        }
    }

    /// The node's latest committed height, from an answer that carries this node's ID.
    pub async fn latest_height(&self) -> Result<i64, RpcError> {
        Ok(self.latest_block().await?.height)
    }

    /// The node's latest committed block (height, and its time when the node says), from an
    /// answer that carries this node's ID. The node's `config.toml` and key are read once per
    /// question, on the blocking pool: never on the thread that forwards signals.
    pub async fn latest_block(&self) -> Result<LatestBlock, RpcError> {
        let config_file = self.home.join("config/config.toml");
        let config = bounded_read::read_capped_async(config_file, DOCUMENT_CAP)
            .await
            .ok()
            .and_then(|bytes| parse_config(&bytes));
        let base = self.address_in(config.as_ref())?;
        let key_file = node_key_file(&self.home, config.as_ref());
        let key = bounded_read::read_capped_async(key_file.clone(), RECORD_CAP).await;
        let expected = node_id(&key_file, key)?;
        let url = status_url(&base);
        let answer = ask_status(&url).await?;
        if answer.node_id != expected {
            return Err(RpcError::NotOurNode {
                url: redact(&url),
                expected,
                answered: answer.node_id,
            });
        }
        Ok(LatestBlock {
            height: answer.height,
            time: answer.time,
        })
    }

    /// The address to ask, from the node's `config`: `COSMOVISOR_NODE_RPC`, else its
    /// `[rpc] laddr`, else the default.
    fn address_in(&self, config: Option<&toml::Table>) -> Result<String, RpcError> {
        if let Some(url) = &self.explicit {
            return Ok(url.clone());
        }
        match config.and_then(rpc_laddr) {
            Some(laddr) => url_of_laddr(&laddr).map_err(|reason| RpcError::NoAddress { reason }),
            None => Ok(DEFAULT_NODE_RPC.to_owned()),
        }
    }

    /// [`NodeRpc::address_in`] with the node's `config.toml` read now (for the commands'
    /// messages).
    fn address(&self) -> Result<String, RpcError> {
        let config = bounded_read::read_capped(&self.home.join("config/config.toml"), DOCUMENT_CAP)
            .ok()
            .and_then(|bytes| parse_config(&bytes));
        self.address_in(config.as_ref())
    }
}

/// The node's `config.toml`, when it parses.
fn parse_config(bytes: &[u8]) -> Option<toml::Table> {
    std::str::from_utf8(bytes).ok()?.parse::<toml::Table>().ok()
}

fn rpc_laddr(table: &toml::Table) -> Option<String> {
    Some(table.get("rpc")?.get("laddr")?.as_str()?.to_owned())
}

/// The URL to ask for a `CometBFT` `laddr` (`tcp://host:port`): a wildcard host is asked on
/// loopback.
fn url_of_laddr(laddr: &str) -> Result<String, String> {
    let laddr = laddr.trim();
    if laddr.is_empty() {
        return Err("the node's RPC is off ([rpc] laddr is empty in config/config.toml)".into());
    }
    if laddr.starts_with("unix://") {
        return Err(format!(
            "the node's RPC listens on {laddr} ([rpc] laddr in config/config.toml), and a unix socket is not supported: give the node a tcp:// laddr or set COSMOVISOR_NODE_RPC"
        ));
    }
    let host_port = laddr.strip_prefix("tcp://").unwrap_or(laddr);
    let host_port = match host_port.rsplit_once(':') {
        Some(("0.0.0.0" | "", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => host_port.to_owned(),
    };
    let url = format!("http://{host_port}");
    match url::Url::parse(&url) {
        Ok(parsed) if parsed.host().is_some() && parsed.port().is_some() => Ok(url),
        _ => Err(format!(
            "the node's [rpc] laddr {laddr:?} in config/config.toml is not tcp://host:port: set COSMOVISOR_NODE_RPC"
        )),
    }
}

/// `<rpc>/status`, on the URL's path (a query string stays after it).
fn status_url(base: &str) -> String {
    match url::Url::parse(base) {
        Ok(mut url) => {
            let path = format!("{}/status", url.path().trim_end_matches('/'));
            url.set_path(&path);
            url.to_string()
        }
        Err(_) => format!("{}/status", base.trim_end_matches('/')),
    }
}

/// Where the node keeps its key: `node_key_file` of its `config.toml` (relative to the home),
/// else `CometBFT`'s default.
fn node_key_file(home: &Path, config: Option<&toml::Table>) -> PathBuf {
    let file = config
        .and_then(|table| Some(table.get("node_key_file")?.as_str()?.to_owned()))
        .filter(|file| !file.is_empty())
        .unwrap_or_else(|| DEFAULT_NODE_KEY_FILE.to_owned());
    home.join(file)
}

/// This node's ID from what reading its key file `path` gave: lowercase hex of the first 20 bytes
/// of SHA-256 of its ed25519 public key, the last 32 of the 64 bytes of `priv_key.value`
/// (`CometBFT`'s `p2p.ID`).
fn node_id(path: &Path, read: Result<Vec<u8>, ReadError>) -> Result<String, RpcError> {
    let no_key = |reason: String| RpcError::NoNodeKey { reason };
    let bytes = read.map_err(|err| no_key(err.to_string()))?;
    id_of_node_key(&bytes).map_err(|reason| no_key(format!("{}: {reason}", path.display())))
}

#[derive(Deserialize)]
struct NodeKey {
    priv_key: PrivKey,
}

#[derive(Deserialize)]
struct PrivKey {
    value: String,
}

fn id_of_node_key(bytes: &[u8]) -> Result<String, String> {
    let key: NodeKey = serde_json::from_slice(bytes)
        .map_err(|err| format!("not a node key with priv_key.value: {err}"))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(key.priv_key.value.trim())
        .map_err(|err| format!("priv_key.value is not base64: {err}"))?;
    let Some(public) = raw.get(32..64).filter(|_| raw.len() == 64) else {
        return Err(format!(
            "priv_key.value holds {} bytes, not the 64 of an ed25519 key",
            raw.len()
        ));
    };
    let digest = Sha256::digest(public);
    Ok(hex(&digest[..20]))
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// The node's latest block, as its authenticated RPC reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatestBlock {
    pub height: i64,
    /// `latest_block_time`, when the answer carries a valid one.
    pub time: Option<chrono::DateTime<chrono::FixedOffset>>,
}

/// What a `status` answer says.
#[derive(Debug, PartialEq, Eq)]
struct StatusAnswer {
    node_id: String,
    height: i64,
    time: Option<chrono::DateTime<chrono::FixedOffset>>,
}

async fn ask_status(url: &str) -> Result<StatusAnswer, RpcError> {
    let shown = redact(url);
    let unreachable = |err: reqwest::Error| RpcError::Unreachable {
        url: shown.clone(),
        err: redact(&error_chain(&err.without_url())),
    };
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .no_proxy()
        .build()
        .map_err(unreachable)?;
    let mut response = client.get(url).send().await.map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(RpcError::Status {
            url: shown,
            status: response.status().as_u16(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > BODY_CAP {
            return Err(RpcError::TooBig { url: shown });
        }
        body.extend_from_slice(&chunk);
    }
    parse_status(&body).map_err(|reason| RpcError::Malformed { url: shown, reason })
}

#[derive(Deserialize)]
struct Answer {
    result: Status,
}

#[derive(Deserialize)]
struct Status {
    node_info: NodeInfo,
    sync_info: SyncInfo,
}

#[derive(Deserialize)]
struct NodeInfo {
    id: String,
}

#[derive(Deserialize)]
struct SyncInfo {
    latest_block_height: String,
    #[serde(default)]
    latest_block_time: Option<String>,
}

/// The node ID and `latest_block_height` of a `status` answer (a string, as `CometBFT` writes
/// 64-bit integers in JSON).
fn parse_status(body: &[u8]) -> Result<StatusAnswer, String> {
    let answer: Answer = serde_json::from_slice(body).map_err(|err| err.to_string())?;
    let text = answer.result.sync_info.latest_block_height;
    let height = text
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|height| *height >= 0)
        .ok_or_else(|| format!("latest_block_height {text:?} is not a block height"))?;
    let time = answer
        .result
        .sync_info
        .latest_block_time
        .as_deref()
        .and_then(|time| chrono::DateTime::parse_from_rfc3339(time.trim()).ok());
    Ok(StatusAnswer {
        node_id: answer.result.node_info.id.to_ascii_lowercase(),
        height,
        time,
    })
}

/// The error and its causes on one line (reqwest's own text is only the outermost).
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node key whose 64 bytes are 0..64: its public key is 32..64.
    fn key_json() -> String {
        let raw: Vec<u8> = (0u8..64).collect();
        format!(
            r#"{{"priv_key":{{"type":"tendermint/PrivKeyEd25519","value":"{}"}}}}"#,
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    #[test]
    fn node_id_is_the_truncated_sha256_of_the_public_key() {
        let public: Vec<u8> = (32u8..64).collect();
        let want = hex(&Sha256::digest(&public)[..20]);
        assert_eq!(id_of_node_key(key_json().as_bytes()), Ok(want));
        for bad in [
            r#"{"priv_key":{"value":"AAAA"}}"#,
            r#"{"priv_key":{"value":"!!"}}"#,
            r"{}",
            "<html>",
        ] {
            assert!(id_of_node_key(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn known_cometbft_keys_give_their_known_ids() {
        // A node key published with its node ID (a persistent peer's), and a validator key whose
        // `address` CometBFT derived the same way (upper-case there).
        let cases = [
            (
                "qu+62srbXdoWaYh6wUecg4NoctFUKX7QvUdukLGEoHMgIl95POmQL/wt9egmaM2CDCxioTtOs3DpqjMJ95lYQg==",
                "b2127168256b4f34dc1ab20939e5f7fd1d8db466",
            ),
            (
                "uX+ZpDMg89a6gtqs/+MQpCTSqlkZ0nJQJOhLlCJvwvdGtyVDP1siGQjL+B8vjzmDc9gx6IiS7ip6jj3nvztfXQ==",
                "06c0f3e47cc5c748269088dc2f36411d3aaa27c6",
            ),
        ];
        for (value, id) in cases {
            let key = format!(
                r#"{{"priv_key":{{"type":"tendermint/PrivKeyEd25519","value":"{value}"}}}}"#
            );
            assert_eq!(id_of_node_key(key.as_bytes()), Ok(id.to_owned()));
        }
    }

    #[test]
    fn reads_cometbft_status() {
        let body = br#"{"jsonrpc":"2.0","id":-1,"result":{"node_info":{"id":"AB12"},"sync_info":{"latest_block_hash":"AB","latest_block_height":"1234","catching_up":false}}}"#;
        assert_eq!(
            parse_status(body),
            Ok(StatusAnswer {
                node_id: "ab12".into(),
                height: 1234,
                time: None,
            })
        );
        let timed = br#"{"result":{"node_info":{"id":"a"},"sync_info":{"latest_block_height":"7","latest_block_time":"2026-12-07T02:47:07.123456789Z"}}}"#;
        let answer = parse_status(timed).unwrap();
        assert_eq!(
            answer.time.map(|time| time.timestamp_millis()),
            chrono::DateTime::parse_from_rfc3339("2026-12-07T02:47:07.123Z")
                .ok()
                .map(|time| time.timestamp_millis())
        );
        for bad in [
            &br#"{"result":{"node_info":{"id":"a"},"sync_info":{"latest_block_height":1234}}}"#[..],
            br#"{"result":{"node_info":{"id":"a"},"sync_info":{"latest_block_height":"-1"}}}"#,
            br#"{"result":{"node_info":{"id":"a"},"sync_info":{"latest_block_height":"x"}}}"#,
            br#"{"result":{"node_info":{},"sync_info":{"latest_block_height":"5"}}}"#,
            br#"{"error":{"code":-32603}}"#,
            b"<html>",
        ] {
            assert!(
                parse_status(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn laddr_becomes_a_url_asked_on_loopback_for_wildcards() {
        assert_eq!(
            url_of_laddr("tcp://127.0.0.1:26657"),
            Ok("http://127.0.0.1:26657".into())
        );
        assert_eq!(
            url_of_laddr("tcp://0.0.0.0:36657"),
            Ok("http://127.0.0.1:36657".into())
        );
        assert_eq!(
            url_of_laddr("tcp://[::]:26657"),
            Ok("http://[::1]:26657".into())
        );
        assert_eq!(
            url_of_laddr("10.1.2.3:26657"),
            Ok("http://10.1.2.3:26657".into())
        );
        for bad in ["", "unix:///run/node.sock", "tcp://nohost"] {
            assert!(url_of_laddr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_goes_on_the_path_before_a_query() {
        assert_eq!(
            status_url("http://127.0.0.1:26657"),
            "http://127.0.0.1:26657/status"
        );
        assert_eq!(
            status_url("https://u:p@rpc.example/node/?token=t"),
            "https://u:p@rpc.example/node/status?token=t"
        );
    }

    #[test]
    fn the_address_comes_from_the_variable_then_the_laddr_then_the_default() {
        let home = tempfile::tempdir().unwrap();
        let rpc = |explicit: Option<&str>| NodeRpc {
            explicit: explicit.map(str::to_owned),
            home: home.path().to_path_buf(),
        };
        assert_eq!(rpc(None).address().unwrap(), DEFAULT_NODE_RPC);
        std::fs::create_dir_all(home.path().join("config")).unwrap();
        std::fs::write(
            home.path().join("config/config.toml"),
            "moniker = \"x\"\n[rpc]\nladdr = \"tcp://0.0.0.0:36657\"\n",
        )
        .unwrap();
        assert_eq!(rpc(None).address().unwrap(), "http://127.0.0.1:36657");
        assert_eq!(
            rpc(Some("http://10.0.0.5:26657")).address().unwrap(),
            "http://10.0.0.5:26657"
        );
        assert_eq!(
            rpc(Some("https://u:secret@rpc.example")).shown(),
            "https://u:***@rpc.example"
        );
    }

    #[tokio::test]
    async fn no_node_key_is_could_not_check() {
        let home = tempfile::tempdir().unwrap();
        let rpc = NodeRpc {
            explicit: Some("http://127.0.0.1:9".into()),
            home: home.path().to_path_buf(),
        };
        let err = rpc.latest_height().await.unwrap_err();
        assert!(matches!(err, RpcError::NoNodeKey { .. }), "{err}");
        assert!(err.to_string().contains("node_key.json"), "{err}");
    }

    #[tokio::test]
    async fn unreachable_rpc_is_an_error_naming_the_url() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join("config")).unwrap();
        std::fs::write(home.path().join("config/node_key.json"), key_json()).unwrap();
        // Bound but never listening: a connection is refused, and no other test can take the
        // port while the socket holds it.
        let refusing = tokio::net::TcpSocket::new_v4().unwrap();
        refusing
            .bind((std::net::Ipv4Addr::LOCALHOST, 0).into())
            .unwrap();
        let port = refusing.local_addr().unwrap().port();
        let rpc = NodeRpc {
            explicit: Some(format!("http://127.0.0.1:{port}")),
            home: home.path().to_path_buf(),
        };
        let err = rpc.latest_height().await.unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "cannot reach the node's RPC at http://127.0.0.1:{port}/status"
            )),
            "{err}"
        );
    }
}
