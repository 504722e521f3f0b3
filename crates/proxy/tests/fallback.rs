//! What the fast path hands to the hyper path (HTTP/1.0, `Expect`, malformed or huge
//! heads, too many headers), also in the middle of a keep-alive connection; a backend
//! that answers before reading the body; a client that leaves mid-response; and the
//! hyper path alone when the fast path is off.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use common::{
    Client, RawClient, app, backend, config, eventually, free_port, raw_backend, read_head,
};
use proxy::Proxy;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const HTTP: (&str, &str) = ("HAPROXY_0_MODE", "http");

async fn proxy_for(backends: &[(&str, SocketAddr)]) -> (Proxy, SocketAddr) {
    let port = free_port();
    let proxy = Proxy::new(config());
    let errors = proxy
        .update(vec![app("/web", port, &[HTTP], backends)])
        .await;
    assert!(errors.is_empty(), "{errors:?}");
    (proxy, SocketAddr::from(([127, 0, 0, 1], port)))
}

#[tokio::test]
async fn unusual_requests_are_served_by_hyper() {
    let a = backend("a").await;
    let (_proxy, listen) = proxy_for(&[("a", a.addr)]).await;

    // HTTP/1.0: answered, then closed (no keep-alive asked).
    let mut client = RawClient::connect(listen).await;
    client.send(b"GET / HTTP/1.0\r\nhost: x\r\n\r\n").await;
    assert_eq!(client.response("GET").await.text(), "a");

    // Expect: 100-continue, after a fast-path request on the same connection.
    let mut client = RawClient::connect(listen).await;
    client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(client.response("GET").await.text(), "a");
    client
        .send(b"POST / HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n")
        .await;
    assert_eq!(client.response("POST").await.status, 100);
    client.send(b"hello").await;
    assert_eq!(client.response("POST").await.text(), "a:5");
    // The connection stays with hyper and keeps working.
    client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(client.response("GET").await.text(), "a");

    // More headers than the fast path parses: hyper takes them.
    let many: String = (0..80).map(|i| format!("x-h{i}: {i}\r\n")).collect();
    let mut client = RawClient::connect(listen).await;
    client
        .send(format!("GET / HTTP/1.1\r\nhost: x\r\n{many}\r\n").as_bytes())
        .await;
    assert_eq!(client.response("GET").await.text(), "a");

    // Malformed: hyper's 400.
    let mut client = RawClient::connect(listen).await;
    client
        .send(b"GET / HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n")
        .await;
    assert_eq!(client.response("GET").await.status, 400);

    // A head larger than hyper accepts: 431.
    let mut client = RawClient::connect(listen).await;
    let huge = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "b".repeat(500_000)
    );
    let _ = client.stream.write_all(huge.as_bytes()).await;
    assert_eq!(client.response("GET").await.status, 431);
    assert_eq!(a.hits.load(SeqCst), 5);
}

#[tokio::test]
async fn a_backend_may_answer_before_reading_the_body() {
    let (addr, _) = raw_backend(|mut stream: TcpStream| async move {
        let _ = read_head(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\nconnection: close\r\n\r\ntoo much")
            .await;
        // Keep reading (and dropping) what comes, like a polite server.
        let mut sink = [0u8; 65536];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(500), tokio::io::AsyncReadExt::read(&mut stream, &mut sink)).await
        {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    let (proxy, listen) = proxy_for(&[("r", addr)]).await;
    let mut client = RawClient::connect(listen).await;
    client
        .send(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 100000000\r\n\r\nsome of it")
        .await;
    let resp = client.response("POST").await;
    assert_eq!((resp.status, resp.text().as_str()), (413, "too much"));
    assert!(
        client.closed().await,
        "the rest of the body is not read: closed"
    );
    let p = proxy.clone();
    eventually(5, "nothing in flight", || p.in_flight("r") == 0).await;
}

#[tokio::test]
async fn a_client_leaving_mid_response_ends_the_request() {
    let (addr, _) = raw_backend(|mut stream: TcpStream| async move {
        let _ = read_head(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000000\r\n\r\nstart")
            .await;
        for _ in 0..400 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if stream.write_all(&[b'.'; 1000]).await.is_err() {
                return;
            }
        }
    })
    .await;
    let (proxy, listen) = proxy_for(&[("r", addr)]).await;
    let mut client = RawClient::connect(listen).await;
    client
        .send(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let head = read_head(&mut client.stream).await;
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert_eq!(proxy.in_flight("r"), 1);
    drop(client);
    let p = proxy.clone();
    eventually(5, "the request to end", || p.in_flight("r") == 0).await;
    let text = proxy.metrics_text();
    assert!(
        text.contains("slipway_proxy_request_duration_seconds_count{app=\"/web\"} 1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn a_client_leaving_while_the_backend_thinks_gives_up_its_request() {
    let a = backend("a").await;
    let (proxy, listen) = proxy_for(&[("a", a.addr)]).await;
    let mut client = RawClient::connect(listen).await;
    client.send(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let p = proxy.clone();
    eventually(5, "the slow request in flight", || p.in_flight("a") == 1).await;
    let left = std::time::Instant::now();
    drop(client);
    eventually(5, "the request to end", || p.in_flight("a") == 0).await;
    assert!(
        left.elapsed() < Duration::from_millis(400),
        "ended when the client left, not when the backend answered: {:?}",
        left.elapsed()
    );
}

#[tokio::test]
async fn the_hyper_path_serves_everything_when_the_fast_path_is_off() {
    let (a, b) = (backend("a").await, backend("b").await);
    let (proxy, listen) = proxy_for(&[("a", a.addr), ("b", b.addr)]).await;
    proxy.set_fast_path(false);
    let mut client = Client::connect(listen).await;
    let mut bodies = Vec::new();
    for _ in 0..4 {
        let (status, body) = client.get("/").await;
        assert_eq!(status, 200);
        bodies.push(body);
    }
    assert_eq!(bodies, ["a", "b", "a", "b"]);
    assert_eq!(client.get("/headers").await.1, "127.0.0.1|http|test.local");
    assert!(
        proxy
            .metrics_text()
            .contains("slipway_proxy_requests_total{app=\"/web\",code=\"2xx\"} 5\n")
    );
}
