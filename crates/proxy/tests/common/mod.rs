//! Test helpers: tiny backends (HTTP, raw TCP echo, and one that breaks connections), a
//! keep-alive client, free ports and polling with deadlines. Everything binds 127.0.0.1.
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
