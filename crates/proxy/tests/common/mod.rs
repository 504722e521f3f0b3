//! Test helpers: tiny backends (HTTP, raw TCP echo, one that breaks connections, and raw
//! scripted ones), a keep-alive client, a raw byte-level client, free ports and polling
//! with deadlines. Everything binds 127.0.0.1.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use proxy::{AppEndpoints, Backend, PortEndpoints, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A proxy configuration for tests.
pub fn config() -> ProxyConfig {
    ProxyConfig {
        connect_timeout: Duration::from_secs(1),
        ..ProxyConfig::default()
    }
}

/// One app with one port index.
pub fn app(
    id: &str,
    service_port: u16,
    labels: &[(&str, &str)],
    backends: &[(&str, SocketAddr)],
) -> AppEndpoints {
    AppEndpoints {
        app_id: id.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect::<BTreeMap<_, _>>(),
        ports: vec![PortEndpoints {
            service_port,
            backends: backends
                .iter()
                .map(|(t, a)| Backend {
                    task_id: (*t).into(),
                    addr: *a,
                })
                .collect(),
        }],
    }
}

/// Polls `cond` every 5 ms until it holds or `secs` pass.
pub async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An HTTP backend answering with its name. `/slow` takes 500 ms, `/headers` returns the
/// `X-Forwarded-*` headers it got, a request with a body gets `name:len` back.
pub struct TestBackend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

pub async fn backend(name: &'static str) -> TestBackend {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = listener.local_addr().expect("backend addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            let svc = service_fn(move |req: Request<Incoming>| {
                counter.fetch_add(1, SeqCst);
                answer(name, req)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    TestBackend { addr, hits }
}

async fn answer(name: &str, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let text = match req.uri().path() {
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            name.to_owned()
        }
        "/headers" => format!(
            "{}|{}|{}",
            header("x-forwarded-for"),
            header("x-forwarded-proto"),
            header("x-forwarded-host")
        ),
        _ if req.method() == Method::POST => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes().len())
                .unwrap_or(0);
            format!("{name}:{body}")
        }
        _ => name.to_owned(),
    };
    Ok(Response::new(Full::new(Bytes::from(text))))
}

/// A backend that reads a request and closes the connection without answering; counts
/// the connections it got.
pub async fn broken_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind broken backend");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
        }
    });
    (addr, count)
}

/// A raw TCP echo server.
pub async fn echo_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A dead address: a port with nothing listening.
pub fn dead_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// One keep-alive client connection.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
}

impl Client {
    /// Connects, retrying for a few seconds while the listener comes up.
    pub async fn connect(addr: SocketAddr) -> Client {
        let deadline = Instant::now() + Duration::from_secs(5);
        let stream = loop {
            match TcpStream::connect(addr).await {
                Ok(s) => break s,
                Err(e) => assert!(Instant::now() < deadline, "connect {addr}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("client handshake");
        tokio::spawn(conn);
        Client { sender }
    }

    /// Sends a request and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        host: &str,
        path: &str,
        body: &str,
    ) -> Result<(u16, String), hyper::Error> {
        self.sender.ready().await?;
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("request");
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// A GET that must get an answer.
    pub async fn get(&mut self, path: &str) -> (u16, String) {
        self.send(Method::GET, "test.local", path, "")
            .await
            .expect("GET through the proxy")
    }
}

/// A backend whose connections are handed, raw, to `script`; counts its connections.
pub async fn raw_backend<F, Fut>(script: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind raw backend");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    let script = Arc::new(script);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, SeqCst);
            tokio::spawn(script(stream));
        }
    });
    (addr, count)
}

/// One response as a raw client saw it.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    /// Decoded (chunked bodies are de-chunked).
    pub body: Vec<u8>,
    /// The body came chunked.
    pub chunked: bool,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client speaking raw bytes, reading responses with their framing checked.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    return RawClient {
                        stream,
                        buf: Vec::new(),
                    };
                }
                Err(e) => assert!(Instant::now() < deadline, "connect {addr}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .expect("write to the proxy");
    }

    /// Reads more; false at EOF.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
            .await
            .expect("read in time")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// Whether the proxy closed the connection (within 5 s).
    pub async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    /// Reads one response to a request of `method`.
    pub async fn response(&mut self, method: &str) -> RawResponse {
        let (status, headers, len) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut slots);
            match resp.parse(&self.buf).expect("a valid response head") {
                httparse::Status::Complete(len) => {
                    let headers = resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect::<Vec<_>>();
                    break (resp.code.expect("status"), headers, len);
                }
                httparse::Status::Partial => {
                    assert!(
                        self.fill().await,
                        "closed in a response head: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    );
                }
            }
        };
        self.buf.drain(..len);
        let mut resp = RawResponse {
            status,
            headers,
            body: Vec::new(),
            chunked: false,
        };
        if method == "HEAD" || status < 200 || status == 204 || status == 304 {
            return resp;
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            resp.chunked = true;
            loop {
                let line = loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    assert!(self.fill().await, "closed in a chunk size");
                };
                let size = std::str::from_utf8(&self.buf[..line]).expect("ascii size");
                let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                    .expect("hex size");
                self.buf.drain(..line + 2);
                if size == 0 {
                    // No trailers in these tests: the final CRLF.
                    while self.buf.len() < 2 {
                        assert!(self.fill().await, "closed before the last CRLF");
                    }
                    assert_eq!(&self.buf[..2], b"\r\n");
                    self.buf.drain(..2);
                    return resp;
                }
                while self.buf.len() < size + 2 {
                    assert!(self.fill().await, "closed in a chunk");
                }
                resp.body.extend_from_slice(&self.buf[..size]);
                assert_eq!(&self.buf[size..size + 2], b"\r\n");
                self.buf.drain(..size + 2);
            }
        }
        match resp.header("content-length") {
            Some(n) => {
                let n: usize = n.trim().parse().expect("content-length");
                while self.buf.len() < n {
                    assert!(self.fill().await, "closed in a body");
                }
                resp.body = self.buf.drain(..n).collect();
            }
            None => {
                while self.fill().await {}
                resp.body = std::mem::take(&mut self.buf);
            }
        }
        resp
    }
}

/// Reads one request head from `stream` (and whatever followed it).
pub async fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    got
}
