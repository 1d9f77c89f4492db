//! The node's height from its `CometBFT` RPC (`COSMOVISOR_NODE_RPC`, `GET <rpc>/status`,
//! `result.sync_info.latest_block_height`).
//!
//! The answer is state the node keeps, which transactions and peers cannot forge the way they can
//! put text on the node's output (docs/design.md "Trust boundaries"). It is used only to refuse or
//! to confirm: a manual upgrade at a height the node has passed is refused, and a halt line is
//! believed for a node that keeps running after its halt only when the node's height agrees. It
//! never triggers an upgrade, a stop or a restart by itself. The request has a short timeout, goes
//! to the address as given (no proxy from the environment), and the body is capped.

use std::time::Duration;

use serde::Deserialize;

/// How long one question may take (connect, headers and body): the node is local or near, and a
/// caller waiting longer would rather say "could not check".
const TIMEOUT: Duration = Duration::from_secs(3);
/// A `status` answer is about 1 KiB; anything past this is not one.
const BODY_CAP: usize = 64 << 10;

/// Why the height could not be learned.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot reach the node's RPC at {url}: {err}")]
    Unreachable { url: String, err: String },
    #[error("the node's RPC at {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("the node's RPC at {url} answered more than {BODY_CAP} bytes; not a status answer")]
    TooBig { url: String },
    #[error(
        "the node's RPC at {url} did not answer a status with result.sync_info.latest_block_height: {reason}"
    )]
    Malformed { url: String, reason: String },
}

#[derive(Deserialize)]
struct Answer {
    result: Status,
}

#[derive(Deserialize)]
struct Status {
    sync_info: SyncInfo,
}

#[derive(Deserialize)]
struct SyncInfo {
    latest_block_height: String,
}

/// The node's latest committed height, asked of `rpc` (`http(s)://host:port`).
pub async fn latest_height(rpc: &str) -> Result<i64, RpcError> {
    let url = format!("{}/status", rpc.trim_end_matches('/'));
    let unreachable = |err: reqwest::Error| RpcError::Unreachable {
        url: url.clone(),
        err: error_chain(&err),
    };
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .no_proxy()
        .build()
        .map_err(unreachable)?;
    let mut response = client.get(&url).send().await.map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(RpcError::Status {
            url,
            status: response.status().as_u16(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > BODY_CAP {
            return Err(RpcError::TooBig { url });
        }
        body.extend_from_slice(&chunk);
    }
    parse_status(&body).map_err(|reason| RpcError::Malformed { url, reason })
}

/// `result.sync_info.latest_block_height` of a `status` answer (a string, as `CometBFT` writes
/// 64-bit integers in JSON).
fn parse_status(body: &[u8]) -> Result<i64, String> {
    let answer: Answer = serde_json::from_slice(body).map_err(|err| err.to_string())?;
    let text = answer.result.sync_info.latest_block_height;
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|height| *height >= 0)
        .ok_or_else(|| format!("latest_block_height {text:?} is not a block height"))
}

/// The error and its causes on one line (reqwest's own text is only the outermost).
fn error_chain(err: &dyn std::error::Error) -> String {
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

    #[test]
    fn reads_cometbft_status() {
        let body = br#"{"jsonrpc":"2.0","id":-1,"result":{"node_info":{},"sync_info":{"latest_block_hash":"AB","latest_block_height":"1234","catching_up":false}}}"#;
        assert_eq!(parse_status(body), Ok(1234));
        for bad in [
            &br#"{"result":{"sync_info":{"latest_block_height":1234}}}"#[..],
            br#"{"result":{"sync_info":{"latest_block_height":"-1"}}}"#,
            br#"{"result":{"sync_info":{"latest_block_height":"x"}}}"#,
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

    #[tokio::test]
    async fn unreachable_rpc_is_an_error_naming_the_url() {
        // Bound but never listening: a connection is refused, and no other test can take the
        // port while the socket holds it.
        let refusing = tokio::net::TcpSocket::new_v4().unwrap();
        refusing
            .bind((std::net::Ipv4Addr::LOCALHOST, 0).into())
            .unwrap();
        let port = refusing.local_addr().unwrap().port();
        let err = latest_height(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "cannot reach the node's RPC at http://127.0.0.1:{port}/status"
            )),
            "{err}"
        );
    }
}
