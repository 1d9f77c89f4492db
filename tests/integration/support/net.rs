//! Loopback networking: an HTTP server and request reader, free and refusing ports, a GET
//! client, and the fake gRPC node answering the chain's current upgrade plan ([`GrpcNode`]).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Reads an HTTP request's head, up to and including its blank line, a byte at a time (so
/// nothing of what follows is consumed); `None` when the client closed or failed first.
pub fn read_request_head(stream: &mut impl Read) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(head)
}

/// A loopback HTTP/1.1 server answering GET with the body of each path (404 for unknown paths)
/// and recording every path asked for. It lives until the test process ends.
pub struct Server {
    pub base: String,
    routes: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(routes: Vec<(String, Vec<u8>)>) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let routes = Arc::new(Mutex::new(routes.into_iter().collect::<HashMap<_, _>>()));
        let served = Arc::clone(&routes);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(head) = read_request_head(&mut stream) else {
                    continue;
                };
                let head = String::from_utf8_lossy(&head);
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .split('?')
                    .next()
                    .unwrap_or("/")
                    .to_owned();
                seen.lock().expect("requests lock").push(path.clone());
                let (status, body) = match served.lock().expect("routes lock").get(&path) {
                    Some(body) => ("200 OK", body.clone()),
                    None => ("404 Not Found", b"not found".to_vec()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        Server {
            base,
            routes,
            requests,
        }
    }

    /// From now on, answers `path` with `body`.
    pub fn serve(&self, path: &str, body: Vec<u8>) {
        self.routes
            .lock()
            .expect("routes lock")
            .insert(path.to_owned(), body);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn requested(&self) -> Vec<String> {
        self.requests.lock().expect("requests lock").clone()
    }
}

/// A loopback port that was free a moment ago (for servers the test starts or tells cosmovisor to bind).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A loopback port that refuses every connection for as long as this lives: a socket holds it,
/// bound but never listening, so the kernel answers a connection with a reset and no other
/// test can take the port meanwhile.
pub struct RefusingPort {
    _socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl RefusingPort {
    pub fn bind() -> RefusingPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("create a socket");
        socket
            .bind((std::net::Ipv4Addr::LOCALHOST, 0).into())
            .expect("bind loopback");
        let port = socket.local_addr().expect("addr").port();
        RefusingPort {
            _socket: socket,
            port,
        }
    }
}

/// `GET path` on the loopback `port` (HTTP/1.1), the whole answer; `None` when the connection fails.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// A fake node answering `cosmos.upgrade.v1beta1.Query/CurrentPlan` over h2c with the plan last
/// [`GrpcNode::set`], and counting the questions.
pub struct GrpcNode {
    pub address: String,
    plan: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    asked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl GrpcNode {
    pub fn start(plan: Option<(&str, i64, &str)>) -> GrpcNode {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let body = std::sync::Arc::new(std::sync::Mutex::new(encode_plan(plan)));
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (shared, counter, down) = (body.clone(), asked.clone(), failing.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        return;
                    };
                    let (shared, counter, down) = (shared.clone(), counter.clone(), down.clone());
                    tokio::spawn(async move {
                        let Ok(mut connection) = h2::server::handshake(socket).await else {
                            return;
                        };
                        while let Some(Ok((_request, mut respond))) = connection.accept().await {
                            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            if down.load(std::sync::atomic::Ordering::SeqCst) {
                                let response = http::Response::builder()
                                    .status(200)
                                    .header("content-type", "application/grpc")
                                    .header("grpc-status", "14")
                                    .header("grpc-message", "unavailable")
                                    .body(())
                                    .unwrap();
                                let _ = respond.send_response(response, true);
                                continue;
                            }
                            let body = shared.lock().unwrap().clone();
                            let response = http::Response::builder()
                                .status(200)
                                .header("content-type", "application/grpc")
                                .body(())
                                .unwrap();
                            let Ok(mut send) = respond.send_response(response, false) else {
                                return;
                            };
                            let _ = send.send_data(bytes::Bytes::from(body), false);
                            let mut trailers = http::HeaderMap::new();
                            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                            let _ = send.send_trailers(trailers);
                        }
                    });
                }
            });
        });
        GrpcNode {
            address,
            plan: body,
            asked,
            failing,
        }
    }

    /// From now on, every answer is gRPC status 14 (unavailable), or the plan again.
    pub fn fail(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    /// The plan the next answers carry (`None`: no plan, as after a cancel).
    pub fn set(&self, plan: Option<(&str, i64, &str)>) {
        *self.plan.lock().unwrap() = encode_plan(plan);
    }

    /// How many questions were answered so far.
    pub fn asked(&self) -> usize {
        self.asked.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn encode_plan(plan: Option<(&str, i64, &str)>) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(u8::try_from(v & 0x7f).unwrap() | 0x80);
            v >>= 7;
        }
        out.push(u8::try_from(v).unwrap());
    }
    fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
        varint(out, (field << 3) | 2);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
    let mut message = Vec::new();
    if let Some((name, height, info)) = plan {
        let mut inner = Vec::new();
        bytes_field(&mut inner, 1, name.as_bytes());
        varint(&mut inner, 3 << 3);
        varint(&mut inner, u64::try_from(height).unwrap());
        bytes_field(&mut inner, 4, info.as_bytes());
        bytes_field(&mut message, 1, &inner);
    }
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&message);
    framed
}
