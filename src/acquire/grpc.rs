//! The one gRPC call cosmovisor makes: `cosmos.upgrade.v1beta1.Query/CurrentPlan` on the node's
//! `DAEMON_GRPC_ADDRESS` (for `prepare-upgrade`). The request is empty and the answer small, so
//! the protobuf is encoded and decoded by hand over reqwest's HTTP/2 instead of pulling in a
//! gRPC stack. Plain text (h2c) unless the address starts with `https://`, as in Go.

use std::time::Duration;

/// The fields of `cosmos.upgrade.v1beta1.Plan` we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePlan {
    pub name: String,
    pub height: i64,
    pub info: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("gRPC address is empty (set DAEMON_GRPC_ADDRESS, e.g. localhost:9090)")]
    NoAddress,
    #[error("cannot query {url}: {err} (is the node's gRPC server enabled in app.toml?)")]
    Request { url: String, err: reqwest::Error },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} answered gRPC status {code}: {message}")]
    Grpc {
        url: String,
        code: String,
        message: String,
    },
    #[error("{url} answered a malformed message: {reason}")]
    Malformed { url: String, reason: &'static str },
}

const METHOD: &str = "/cosmos.upgrade.v1beta1.Query/CurrentPlan";

/// Asks the node for the current upgrade plan; `None` when there is none.
pub async fn current_plan(address: &str) -> Result<Option<RemotePlan>, GrpcError> {
    let address = address.trim();
    if address.is_empty() {
        return Err(GrpcError::NoAddress);
    }
    let (base, tls) = if let Some(rest) = address.strip_prefix("https://") {
        (format!("https://{rest}"), true)
    } else {
        (
            format!("http://{}", address.trim_start_matches("http://")),
            false,
        )
    };
    let url = format!("{}{METHOD}", base.trim_end_matches('/'));
    let request_err = |err| GrpcError::Request {
        url: url.clone(),
        err,
    };
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if !tls {
        builder = builder.http2_prior_knowledge();
    }
    let client = builder.build().map_err(request_err)?;
    let response = client
        .post(&url)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .map_err(request_err)?;
    if !response.status().is_success() {
        return Err(GrpcError::Status {
            url,
            status: response.status().as_u16(),
        });
    }
    if let Some(code) = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
    {
        if code != "0" {
            let message = response
                .headers()
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            return Err(GrpcError::Grpc {
                url,
                code: code.to_owned(),
                message,
            });
        }
    }
    let body = response.bytes().await.map_err(request_err)?;
    decode_response(&body).map_err(|reason| GrpcError::Malformed { url, reason })
}

/// Encodes a plan the way the node answers (for tests' fake node).
#[cfg(test)]
pub fn encode_response(plan: Option<&RemotePlan>) -> Vec<u8> {
    let mut message = Vec::new();
    if let Some(plan) = plan {
        let mut inner = Vec::new();
        put_bytes(&mut inner, 1, plan.name.as_bytes());
        put_varint_field(&mut inner, 3, u64::from_ne_bytes(plan.height.to_ne_bytes()));
        put_bytes(&mut inner, 4, plan.info.as_bytes());
        put_bytes(&mut message, 1, &inner);
    }
    let mut framed = vec![0u8];
    framed.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    framed.extend_from_slice(&message);
    framed
}

#[cfg(test)]
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(u8::try_from(value & 0x7f).unwrap_or(0) | 0x80);
        value >>= 7;
    }
    out.push(u8::try_from(value).unwrap_or(0));
}

#[cfg(test)]
fn put_varint_field(out: &mut Vec<u8>, field: u64, value: u64) {
    put_varint(out, field << 3);
    put_varint(out, value);
}

#[cfg(test)]
fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Decodes the length-prefixed `QueryCurrentPlanResponse`.
fn decode_response(body: &[u8]) -> Result<Option<RemotePlan>, &'static str> {
    if body.is_empty() {
        return Ok(None);
    }
    if body.len() < 5 {
        return Err("short gRPC frame");
    }
    if body[0] != 0 {
        return Err("compressed gRPC frames are not supported");
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let message = body.get(5..5 + len).ok_or("truncated gRPC frame")?;
    let mut plan = None;
    for field in Fields::new(message) {
        if let (1, Value::Bytes(bytes)) = field? {
            plan = Some(decode_plan(bytes)?);
        }
    }
    Ok(plan.filter(|plan: &RemotePlan| !plan.name.is_empty()))
}

fn decode_plan(message: &[u8]) -> Result<RemotePlan, &'static str> {
    let mut plan = RemotePlan {
        name: String::new(),
        height: 0,
        info: String::new(),
    };
    for field in Fields::new(message) {
        match field? {
            (1, Value::Bytes(bytes)) => plan.name = String::from_utf8_lossy(bytes).into_owned(),
            (3, Value::Varint(value)) => plan.height = i64::from_ne_bytes(value.to_ne_bytes()),
            (4, Value::Bytes(bytes)) => plan.info = String::from_utf8_lossy(bytes).into_owned(),
            _ => {}
        }
    }
    Ok(plan)
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Iterates over the (field number, value) pairs of a protobuf message.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(message: &'a [u8]) -> Fields<'a> {
        Fields { rest: message }
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.rest.split_first().ok_or("truncated varint")?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.rest.len() < n {
            return Err("truncated field");
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = (|| {
            let key = self.varint()?;
            let value = match key & 7 {
                0 => Value::Varint(self.varint()?),
                1 => {
                    self.take(8)?;
                    Value::Fixed
                }
                2 => {
                    let len = usize::try_from(self.varint()?).map_err(|_| "field too long")?;
                    Value::Bytes(self.take(len)?)
                }
                5 => {
                    self.take(4)?;
                    Value::Fixed
                }
                _ => return Err("unsupported wire type"),
            };
            Ok((key >> 3, value))
        })();
        if item.is_err() {
            self.rest = &[];
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_plan() {
        let plan = RemotePlan {
            name: "v2.1.0".into(),
            height: 1_234_567,
            info: "{\"binaries\":{}}".into(),
        };
        assert_eq!(
            decode_response(&encode_response(Some(&plan))).unwrap(),
            Some(plan)
        );
        assert_eq!(decode_response(&encode_response(None)).unwrap(), None);
        assert_eq!(decode_response(&[]).unwrap(), None);
    }

    #[test]
    fn refuses_malformed_frames() {
        assert!(decode_response(&[0, 0, 0]).is_err());
        assert!(decode_response(&[1, 0, 0, 0, 0]).is_err());
        assert!(decode_response(&[0, 0, 0, 0, 9, 1]).is_err());
        assert!(decode_response(&[0, 0, 0, 0, 2, 0x0a, 0x05]).is_err());
    }
}
