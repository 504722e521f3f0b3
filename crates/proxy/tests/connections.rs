//! Connection handling through real sockets: backend keep-alive connections the backend
//! closed meanwhile, idle client connections, protocol upgrades, and graceful shutdown.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::{Client, app, backend, config, eventually, free_port};
use hyper::Method;
use proxy::{Proxy, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const HTTP: (&str, &str) = ("HAPROXY_0_MODE", "http");

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Reads from `stream` until `pattern` was seen; returns everything read.
async fn read_until(stream: &mut TcpStream, pattern: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(pattern.len()).any(|w| w == pattern) {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("read in time")
            .expect("read");
        assert!(
            n > 0,
            "closed early after {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// A backend that answers one request per connection with keep-alive headers, then
/// closes the connection shortly after; counts the connections it closed.
async fn closing_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let closed = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&closed);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let head = read_until(&mut stream, b"\r\n\r\n").await;
                let body_len = if head.starts_with(b"POST") { 4 } else { 0 };
                let mut body = vec![0u8; body_len];
                let start = head
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map_or(0, |i| i + 4);
                let already = head.len() - start;
                if body_len > already {
                    let _ = stream.read_exact(&mut body[already..]).await;
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(stream);
                counter.fetch_add(1, SeqCst);
            });
        }
    });
    (addr, closed)
}

#[tokio::test]
async fn a_backend_connection_closed_while_idle_is_not_an_error() {
    let (addr, closed) = closing_backend().await;
    let port = free_port();
    let proxy = Proxy::new(config());
    proxy
        .update(vec![app("/web", port, &[HTTP], &[("b", addr)])])
        .await;
    // Same client connection: the proxy saw the close and opens a new one.
    let mut client = Client::connect(local(port)).await;
    for round in 1..=3 {
        let (status, body) = client
            .send(Method::POST, "x", "/", "data")
            .await
            .expect("POST");
        assert_eq!((status, body.as_str()), (200, "ok"));
        eventually(5, "the backend to close", || closed.load(SeqCst) == round).await;
    }
    // New client connections: the idle backend connection was parked unpolled when the
    // previous client left, and its close is only found when it is used again.
    for round in 4..=6 {
        let mut client = Client::connect(local(port)).await;
        let (status, body) = client
            .send(Method::POST, "x", "/", "data")
            .await
            .expect("POST");
        assert_eq!((status, body.as_str()), (200, "ok"), "round {round}");
        drop(client);
        eventually(5, "the backend to close", || closed.load(SeqCst) == round).await;
    }
    assert!(
        proxy
            .metrics_text()
            .contains("backend=\"b\",code=\"2xx\"} 6\n")
    );
}

#[tokio::test]
async fn idle_and_half_sent_client_connections_are_closed() {
    let a = backend("a").await;
    let port = free_port();
    let idle = Duration::from_millis(200);
    let proxy = Proxy::new(ProxyConfig {
        idle_timeout: idle,
        ..config()
    });
    proxy
        .update(vec![app("/web", port, &[HTTP], &[("a", a.addr)])])
        .await;

    let mut conn = TcpStream::connect(local(port)).await.expect("connect");
    conn.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    // A 500 ms request outlives the idle timeout: busy is not idle.
    let answer = read_until(&mut conn, b"\r\n\r\na").await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("closed in time");
    assert_eq!(n.expect("read"), 0, "the idle connection is closed");
    assert!(started.elapsed() >= idle, "not before the idle timeout");

    let mut slow = TcpStream::connect(local(port)).await.expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nho")
        .await
        .expect("write");
    let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "a half-sent head is not waited for forever"
    );
}

#[tokio::test]
async fn upgraded_connections_are_tunnelled() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let backend_addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let head = read_until(&mut stream, b"\r\n\r\n").await;
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(
            head.contains("upgrade: echo") && head.contains("connection: upgrade"),
            "{head}"
        );
        stream
            .write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n",
            )
            .await
            .expect("101");
        let (mut r, mut w) = stream.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    });
    let port = free_port();
    let proxy = Proxy::new(config());
    proxy
        .update(vec![app("/ws", port, &[HTTP], &[("ws", backend_addr)])])
        .await;
    let mut conn = TcpStream::connect(local(port)).await.expect("connect");
    conn.write_all(
        b"GET /chat HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n",
    )
    .await
    .expect("write");
    let head = read_until(&mut conn, b"\r\n\r\n").await;
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    conn.write_all(b"raw bytes both ways").await.expect("write");
    assert_eq!(read_until(&mut conn, b"ways").await, b"raw bytes both ways");
    let p = proxy.clone();
    eventually(5, "the tunnel to count as in flight", || {
        p.in_flight("ws") == 1
    })
    .await;
    drop(conn);
    eventually(5, "the tunnel to end", || p.in_flight("ws") == 0).await;
}

#[tokio::test]
async fn shutdown_lets_the_request_in_flight_finish() {
    let a = backend("a").await;
    let port = free_port();
    let proxy = Proxy::new(config());
    proxy
        .update(vec![app("/web", port, &[HTTP], &[("a", a.addr)])])
        .await;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(proxy.clone().run(shutdown.clone()));
    let mut client = Client::connect(local(port)).await;
    let slow = tokio::spawn(async move { client.get("/slow").await });
    let p = proxy.clone();
    eventually(5, "the slow request in flight", || p.in_flight("a") == 1).await;
    shutdown.cancel();
    eventually(5, "the listener to close", || {
        std::net::TcpStream::connect(local(port)).is_err()
    })
    .await;
    assert_eq!(slow.await.expect("join"), (200, "a".into()));
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("run returns")
        .expect("join");
    assert_eq!(proxy.in_flight("a"), 0);
}
