//! The fast path through real sockets, byte for byte: pipelining, body framings (split
//! across reads, chunked, close-delimited, large), `Connection: close` from either side,
//! `HEAD`, and the headers the backend gets.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use common::{RawClient, app, backend, config, free_port, raw_backend, read_head};
use proxy::Proxy;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const HTTP: (&str, &str) = ("HAPROXY_0_MODE", "http");

/// A proxy on a fresh port in HTTP mode over `backends`.
async fn proxy_for(backends: &[(&str, SocketAddr)]) -> (Proxy, SocketAddr) {
    let port = free_port();
    let proxy = Proxy::new(config());
    let errors = proxy
        .update(vec![app("/web", port, &[HTTP], backends)])
        .await;
    assert!(errors.is_empty(), "{errors:?}");
    (proxy, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Answers each request on a connection with the next of `answers`, each written in
/// pieces 5 ms apart; then closes.
fn scripted(
    answers: Vec<Vec<&'static [u8]>>,
) -> impl Fn(TcpStream) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
+ Send
+ Sync
+ 'static {
    move |mut stream: TcpStream| {
        let answers = answers.clone();
        Box::pin(async move {
            for pieces in answers {
                if read_head(&mut stream).await.is_empty() {
                    return;
                }
                for piece in pieces {
                    if stream.write_all(piece).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (a, b) = (backend("a").await, backend("b").await);
    let (_proxy, addr) = proxy_for(&[("a", a.addr), ("b", b.addr)]).await;
    let mut client = RawClient::connect(addr).await;
    client
        .send(
            b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\nPOST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nhost: x\r\n\r\n",
        )
        .await;
    let mut bodies = Vec::new();
    for method in ["GET", "GET", "POST", "GET"] {
        let resp = client.response(method).await;
        assert_eq!(resp.status, 200);
        bodies.push(resp.text());
    }
    assert_eq!(bodies, ["a", "b", "a:5", "b"]);
    assert_eq!(a.hits.load(SeqCst) + b.hits.load(SeqCst), 4);

    // The next request arrives while the backend is still busy with the first.
    client.send(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    client
        .send(b"GET /headers HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    assert_eq!(client.response("GET").await.text(), "a");
    assert_eq!(client.response("GET").await.text(), "127.0.0.1|http|x");
}

#[tokio::test]
async fn chunked_and_split_responses_keep_both_connections() {
    let (addr, conns) = raw_backend(scripted(vec![
        vec![
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            b"5\r\nhello\r\n",
            b"6;ext=1\r\n world\r\n0\r\n",
            b"\r\n",
        ],
        vec![b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nabc", b"def"],
    ]))
    .await;
    let (_proxy, listen) = proxy_for(&[("r", addr)]).await;
    let mut client = RawClient::connect(listen).await;
    client.send(b"GET /1 HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let first = client.response("GET").await;
    assert!(first.chunked, "forwarded chunked: {first:?}");
    assert_eq!(first.text(), "hello world");
    client.send(b"GET /2 HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let second = client.response("GET").await;
    assert_eq!((second.status, second.text().as_str()), (200, "abcdef"));
    assert_eq!(conns.load(SeqCst), 1, "one backend connection, kept alive");
}

#[tokio::test]
async fn a_close_delimited_response_is_rechunked_and_the_client_kept() {
    let (addr, conns) = raw_backend(scripted(vec![vec![
        b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nold ",
        b"style",
    ]]))
    .await;
    let (_proxy, listen) = proxy_for(&[("r", addr)]).await;
    let mut client = RawClient::connect(listen).await;
    for round in 1..=2 {
        client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
        let resp = client.response("GET").await;
        assert!(resp.chunked, "{resp:?}");
        assert_eq!(resp.text(), "old style");
        assert_eq!(resp.header("content-type"), Some("text/plain"));
        assert_eq!(
            conns.load(SeqCst),
            round,
            "a close-delimited answer closes the backend side"
        );
    }
}

#[tokio::test]
async fn connection_close_from_either_side() {
    // From the backend: its connection is not reused, the client's is kept.
    let (addr, conns) = raw_backend(scripted(vec![vec![
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
    ]]))
    .await;
    let (_proxy, listen) = proxy_for(&[("r", addr)]).await;
    let mut client = RawClient::connect(listen).await;
    for round in 1..=2 {
        client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
        let resp = client.response("GET").await;
        assert_eq!((resp.status, resp.text().as_str()), (200, "ok"));
        assert_eq!(resp.header("connection"), None, "hop-by-hop: not forwarded");
        assert_eq!(conns.load(SeqCst), round);
    }
    // From the client: answered, told, closed.
    let a = backend("a").await;
    let (_proxy, listen) = proxy_for(&[("a", a.addr)]).await;
    let mut client = RawClient::connect(listen).await;
    client
        .send(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await;
    let resp = client.response("GET").await;
    assert_eq!((resp.status, resp.text().as_str()), (200, "a"));
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(client.closed().await, "closed after the answer");
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let a = backend("a").await;
    let (_proxy, listen) = proxy_for(&[("a", a.addr)]).await;
    let mut client = RawClient::connect(listen).await;
    let body = vec![b'x'; 1 << 20];
    client
        .send(
            format!(
                "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await;
    for piece in body.chunks(60_000) {
        client.send(piece).await;
    }
    let resp = client.response("POST").await;
    assert_eq!(resp.text(), "a:1048576");

    // Chunked, in pieces that split sizes and data.
    let mut chunked = Vec::new();
    for _ in 0..100 {
        chunked.extend_from_slice(b"bb8\r\n");
        chunked.extend_from_slice(&[b'y'; 3000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    client
        .send(b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        .await;
    for piece in chunked.chunks(7_777) {
        client.send(piece).await;
        tokio::task::yield_now().await;
    }
    let resp = client.response("POST").await;
    assert_eq!(resp.text(), "a:300000");

    // A large response in pieces.
    static BIG: [u8; 1 << 16] = [b'z'; 1 << 16];
    let head: &'static [u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2097152\r\n\r\n";
    let mut pieces = vec![head];
    pieces.extend(std::iter::repeat_n(&BIG[..], 32));
    let (addr, _) = raw_backend(scripted(vec![pieces])).await;
    let (_proxy, listen) = proxy_for(&[("r", addr)]).await;
    let mut client = RawClient::connect(listen).await;
    client.send(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let resp = client.response("GET").await;
    assert_eq!(resp.body.len(), 2 << 20);
    assert!(resp.body.iter().all(|&b| b == b'z'));
}

#[tokio::test]
async fn head_requests_get_no_body() {
    let a = backend("a").await;
    let (_proxy, listen) = proxy_for(&[("a", a.addr)]).await;
    let mut client = RawClient::connect(listen).await;
    client.send(b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let resp = client.response("HEAD").await;
    assert_eq!((resp.status, resp.body.len()), (200, 0));
    client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(client.response("GET").await.text(), "a");
}

#[tokio::test]
async fn the_backend_gets_forwarded_headers_and_no_hop_by_hop_ones() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (addr, _) = raw_backend(move |mut stream: TcpStream| {
        let tx = tx.clone();
        async move {
            let head = read_head(&mut stream).await;
            let _ = tx.send(String::from_utf8_lossy(&head).to_ascii_lowercase());
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    })
    .await;
    for fast in [true, false] {
        let (proxy, listen) = proxy_for(&[("r", addr)]).await;
        proxy.set_fast_path(fast);
        let mut client = RawClient::connect(listen).await;
        client
            .send(b"GET /p?q=1 HTTP/1.1\r\nHost: Shop.Example\r\nConnection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\n\r\n")
            .await;
        assert_eq!(client.response("GET").await.status, 200);
        let head = rx.recv().await.expect("the backend's view");
        assert!(head.starts_with("get /p?q=1 http/1.1\r\n"), "{head}");
        for absent in ["connection:", "x-secret", "keep-alive", "https"] {
            assert!(!head.contains(absent), "fast={fast}: {absent} in {head}");
        }
        for present in [
            "host: shop.example\r\n",
            "x-forwarded-for: 10.0.0.1\r\n",
            "x-forwarded-for: 127.0.0.1\r\n",
            "x-forwarded-proto: http\r\n",
            "x-forwarded-host: shop.example\r\n",
        ] {
            assert!(
                head.contains(present),
                "fast={fast}: no {present:?} in {head}"
            );
        }
    }
}

#[tokio::test]
async fn two_host_headers_are_refused_and_reach_no_backend() {
    let a = backend("a").await;
    let (_proxy, addr) = proxy_for(&[("a", a.addr)]).await;
    let mut client = RawClient::connect(addr).await;
    client
        .send(b"GET /login HTTP/1.1\r\nhost: shop.example\r\nhost: evil.example\r\n\r\n")
        .await;
    let resp = client.response("GET").await;
    assert_eq!(resp.status, 400);
    assert!(resp.text().contains("duplicate Host"), "{}", resp.text());
    assert_eq!(a.hits.load(SeqCst), 0);
}
