//! HTTP and TCP probes against tiny in-test servers on 127.0.0.1.

use health::{ProbeOutcome, probe_http, probe_tcp};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_secs(5);
const SHORT: Duration = Duration::from_millis(300);

/// Reads the request head (up to the blank line) from `sock`.
async fn read_head(sock: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match sock.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    head
}

/// Serves one connection: reads the request head, writes `chunks` (flushing
/// each), then holds the socket open for `linger` before closing.
async fn serve(chunks: Vec<Vec<u8>>, linger: Duration) -> (u16, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let handle = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        let head = read_head(&mut sock).await;
        for chunk in chunks {
            if sock.write_all(&chunk).await.is_err() {
                break;
            }
            let _ = sock.flush().await;
        }
        tokio::time::sleep(linger).await;
        head
    });
    (port, handle)
}

async fn answer(response: &str) -> (u16, JoinHandle<Vec<u8>>) {
    serve(vec![response.as_bytes().to_vec()], Duration::ZERO).await
}

/// A port with nothing listening on it.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("local addr").port()
}

#[tokio::test]
async fn ok_sends_marathon_style_request() {
    let (port, server) = answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let outcome = probe_http("127.0.0.1", port, "/health?x=1", TIMEOUT, false).await;
    assert_eq!(outcome, ProbeOutcome::Healthy);
    let head = String::from_utf8(server.await.expect("server")).expect("utf8");
    assert_eq!(
        head,
        format!(
            "GET /health?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: slipway-health\r\n\
             Connection: close\r\nAccept: */*\r\n\r\n"
        )
    );
}

#[tokio::test]
async fn redirect_is_healthy() {
    let (port, _server) = answer("HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n").await;
    assert_eq!(
        probe_http("127.0.0.1", port, "/", TIMEOUT, false).await,
        ProbeOutcome::Healthy
    );
}

#[tokio::test]
async fn server_error_is_unhealthy() {
    let (port, _server) = answer("HTTP/1.1 500 Internal Server Error\r\n\r\n").await;
    assert_eq!(
        probe_http("127.0.0.1", port, "/", TIMEOUT, false).await,
        ProbeOutcome::unhealthy("HTTP 500")
    );
}

#[tokio::test]
async fn continue_then_ok_depends_on_ignore_1xx() {
    let response = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let (port, _server) = answer(response).await;
    assert_eq!(
        probe_http("127.0.0.1", port, "/", TIMEOUT, true).await,
        ProbeOutcome::Ignored
    );
    let (port, _server) = answer(response).await;
    assert_eq!(
        probe_http("127.0.0.1", port, "/", TIMEOUT, false).await,
        ProbeOutcome::unhealthy("HTTP 100")
    );
}

#[tokio::test]
async fn silent_server_times_out() {
    let (port, _server) = serve(Vec::new(), Duration::from_secs(30)).await;
    let started = Instant::now();
    let outcome = probe_http("127.0.0.1", port, "/", SHORT, false).await;
    assert_eq!(outcome, ProbeOutcome::unhealthy("timed out after 300ms"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn closed_port_is_refused() {
    let port = closed_port().await;
    let refused = ProbeOutcome::unhealthy("connection refused");
    assert_eq!(
        probe_http("127.0.0.1", port, "/", TIMEOUT, false).await,
        refused
    );
    assert_eq!(probe_tcp("127.0.0.1", port, TIMEOUT).await, refused);
}

#[tokio::test]
async fn malformed_and_empty_responses_fail() {
    let (port, _server) = answer("SSH-2.0-OpenSSH_9.2\r\n").await;
    assert_eq!(
        probe_http("127.0.0.1", port, "/", TIMEOUT, false).await,
        ProbeOutcome::unhealthy("invalid HTTP response")
    );
    let (port, _server) = answer("").await;
    assert_eq!(
        probe_http("127.0.0.1", port, "/", TIMEOUT, false).await,
        ProbeOutcome::unhealthy("connection closed without response")
    );
}

#[tokio::test]
async fn oversized_status_line_is_capped() {
    let (port, _server) = serve(vec![vec![b'H'; 64 * 1024]], Duration::from_secs(5)).await;
    assert_eq!(
        probe_http("127.0.0.1", port, "/", TIMEOUT, false).await,
        ProbeOutcome::unhealthy("invalid HTTP response: status line too long")
    );
}

#[tokio::test]
async fn fragmented_status_line_and_endless_body() {
    let mut chunks: Vec<Vec<u8>> = b"HTTP/1.1 204 No Content\r\n"
        .iter()
        .map(|b| vec![*b])
        .collect();
    chunks.extend(std::iter::repeat_n(vec![b'x'; 64 * 1024], 16));
    let (port, _server) = serve(chunks, Duration::from_secs(30)).await;
    let started = Instant::now();
    assert_eq!(
        probe_http("127.0.0.1", port, "", TIMEOUT, false).await,
        ProbeOutcome::Healthy
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn invalid_path_is_rejected_without_connecting() {
    let port = closed_port().await;
    let outcome = probe_http("127.0.0.1", port, "/a\r\nX-Evil: 1", TIMEOUT, false).await;
    assert!(
        matches!(&outcome, ProbeOutcome::Unhealthy { cause } if cause.starts_with("invalid path")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn tcp_open_port_is_healthy() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    assert_eq!(
        probe_tcp("127.0.0.1", port, TIMEOUT).await,
        ProbeOutcome::Healthy
    );
    assert_eq!(
        probe_tcp("localhost", port, TIMEOUT).await,
        ProbeOutcome::Healthy
    );
}

#[tokio::test]
async fn ipv6_literal_host_when_available() {
    let Ok(listener) = TcpListener::bind("[::1]:0").await else {
        return; // no IPv6 loopback in this environment
    };
    let port = listener.local_addr().expect("local addr").port();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        let head = read_head(&mut sock).await;
        let _ = sock.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
        drop(sock);
        // Keep accepting so the TCP probe below finds the port open.
        let _ = listener.accept().await;
        head
    });
    assert_eq!(
        probe_http("::1", port, "/", TIMEOUT, false).await,
        ProbeOutcome::Healthy
    );
    assert_eq!(
        probe_tcp("[::1]", port, TIMEOUT).await,
        ProbeOutcome::Healthy
    );
    let head = String::from_utf8(server.await.expect("server")).expect("utf8");
    assert!(head.contains(&format!("Host: [::1]:{port}\r\n")), "{head}");
}
