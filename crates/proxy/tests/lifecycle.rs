//! Lifecycle through real sockets: draining a removed backend, passive health with a
//! refused backend, no retry of a sent POST, listeners following the table, TCP mode.

mod common;

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::Ordering::SeqCst;

use common::{
    Client, app, backend, broken_backend, config, dead_addr, echo_backend, eventually, free_port,
};
use hyper::Method;
use proxy::{Proxy, ProxyError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HTTP: (&str, &str) = ("HAPROXY_0_MODE", "http");

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test]
async fn a_removed_backend_drains_before_it_is_reported_drained() {
    let (a, b) = (backend("a").await, backend("b").await);
    let port = free_port();
    let proxy = Proxy::new(config());
    proxy
        .update(vec![app(
            "/web",
            port,
            &[HTTP],
            &[("a", a.addr), ("b", b.addr)],
        )])
        .await;
    assert!(!proxy.drained("a"));

    // A slow request in flight on "a" (round robin: at most two tries).
    let mut slow = None;
    for _ in 0..4 {
        let mut client = Client::connect(local(port)).await;
        let request = tokio::spawn(async move { client.get("/slow").await });
        let p = proxy.clone();
        eventually(5, "the slow request in flight", || {
            p.in_flight("a") + p.in_flight("b") == 1
        })
        .await;
        if proxy.in_flight("a") == 1 {
            slow = Some(request);
            break;
        }
        assert_eq!(request.await.expect("join"), (200, "b".into()));
    }
    let slow = slow.expect("a slow request on a");

    let errors = proxy
        .update(vec![app("/web", port, &[HTTP], &[("b", b.addr)])])
        .await;
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!proxy.drained("a"), "a request is still in flight on a");
    assert_eq!(proxy.in_flight("a"), 1);
    // In flight counts from dispatch; the backend counts the request when it reads it.
    let a_hits = a.hits.clone();
    eventually(5, "the slow request to reach a", || a_hits.load(SeqCst) > 0).await;
    let hits_a = a.hits.load(SeqCst);
    let mut client = Client::connect(local(port)).await;
    for _ in 0..10 {
        assert_eq!(client.get("/").await, (200, "b".into()));
    }
    assert_eq!(
        a.hits.load(SeqCst),
        hits_a,
        "no new request reached the removed backend"
    );
    assert_eq!(slow.await.expect("join"), (200, "a".into()));
    let p = proxy.clone();
    eventually(5, "a to be drained", || p.drained("a")).await;
    assert_eq!(proxy.in_flight("a"), 0);
    assert!(!proxy.drained("b"));
}

#[tokio::test]
async fn a_refused_backend_is_marked_down_and_gets_are_retried() {
    let good = backend("good").await;
    let port = free_port();
    let proxy = Proxy::new(config());
    proxy
        .update(vec![app(
            "/web",
            port,
            &[HTTP],
            &[("dead", dead_addr()), ("good", good.addr)],
        )])
        .await;
    let mut client = Client::connect(local(port)).await;
    for _ in 0..10 {
        assert_eq!(client.get("/").await, (200, "good".into()));
    }
    // Tried once, then skipped while marked down.
    let metrics = proxy.metrics_text();
    assert!(
        metrics.contains(
            "slipway_proxy_backend_errors_total{app=\"/web\",backend=\"dead\",kind=\"connect\"} 1\n"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("slipway_proxy_backend_up{app=\"/web\",backend=\"dead\"} 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("slipway_proxy_backend_up{app=\"/web\",backend=\"good\"} 1\n"),
        "{metrics}"
    );
    // POSTs are routed the same way.
    let (status, body) = client
        .send(Method::POST, "x", "/", "abc")
        .await
        .expect("POST");
    assert_eq!((status, body.as_str()), (200, "good:3"));
}

#[tokio::test]
async fn a_post_that_failed_after_sending_is_not_retried() {
    let good = backend("good").await;
    let (broken, accepted) = broken_backend().await;
    let port = free_port();
    let proxy = Proxy::new(config());
    proxy
        .update(vec![app(
            "/web",
            port,
            &[HTTP],
            &[("broken", broken), ("good", good.addr)],
        )])
        .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        // A fresh connection each time: a 502 may close the client connection.
        let mut client = Client::connect(local(port)).await;
        let (status, body) = client
            .send(Method::POST, "x", "/", "payload")
            .await
            .expect("POST");
        if status == 200 {
            assert_eq!(body, "good:7");
        }
        statuses.push(status);
    }
    let failed = statuses.iter().filter(|&&s| s == 502).count();
    assert_eq!(
        failed, 2,
        "round robin sends every other POST to the broken backend: {statuses:?}"
    );
    assert_eq!(
        good.hits.load(SeqCst),
        2,
        "a failed POST never reaches a second backend"
    );
    assert_eq!(accepted.load(SeqCst), 2);
    // A GET that fails the same way is retried on the good backend.
    for _ in 0..4 {
        let mut client = Client::connect(local(port)).await;
        assert_eq!(client.get("/").await, (200, "good".into()));
    }
    // Resets are not marked down: each GET tried "broken" first, then "good".
    assert!(
        proxy
            .metrics_text()
            .contains("backend=\"broken\",kind=\"reset\"} 6\n")
    );
    assert_eq!((accepted.load(SeqCst), good.hits.load(SeqCst)), (6, 6));
}

#[tokio::test]
async fn listeners_follow_the_table_and_a_busy_port_fails_alone() {
    let a = backend("a").await;
    let (p1, p2) = (free_port(), free_port());
    let busy = StdListener::bind("127.0.0.1:0").expect("occupy a port");
    let busy_port = busy.local_addr().expect("addr").port();
    let proxy = Proxy::new(config());
    let errors = proxy
        .update(vec![
            app("/one", p1, &[HTTP], &[("a1", a.addr)]),
            app("/two", busy_port, &[HTTP], &[("a2", a.addr)]),
            app(
                "/three",
                0,
                &[HTTP, ("HAPROXY_0_PORT", &p2.to_string())],
                &[("a3", a.addr)],
            ),
        ])
        .await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        matches!(&errors[0], ProxyError::Bind { addr, .. } if addr.port() == busy_port),
        "{errors:?}"
    );
    assert_eq!(
        Client::connect(local(p1)).await.get("/").await,
        (200, "a".into())
    );
    assert_eq!(
        Client::connect(local(p2)).await.get("/").await,
        (200, "a".into())
    );

    // An open keep-alive connection on p1 survives an update that keeps p1.
    let mut kept = Client::connect(local(p1)).await;
    assert_eq!(kept.get("/").await.0, 200);
    proxy
        .update(vec![app("/one", p1, &[HTTP], &[("a1", a.addr)])])
        .await;
    assert_eq!(kept.get("/").await.0, 200);
    assert!(
        TcpStream::connect(local(p2)).await.is_err(),
        "p2 closed with its route"
    );

    proxy.update(vec![]).await;
    assert!(
        TcpStream::connect(local(p1)).await.is_err(),
        "p1 closed with its route"
    );
    drop(busy);
    let errors = proxy
        .update(vec![app("/two", busy_port, &[HTTP], &[("a2", a.addr)])])
        .await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        Client::connect(local(busy_port)).await.get("/").await,
        (200, "a".into())
    );
}

#[tokio::test]
async fn tcp_mode_copies_both_ways_and_counts_the_connection() {
    let echo = echo_backend().await;
    let port = free_port();
    let proxy = Proxy::new(config());
    let errors = proxy
        .update(vec![app(
            "/db",
            port,
            &[],
            &[("dead", dead_addr()), ("echo", echo)],
        )])
        .await;
    assert!(errors.is_empty(), "{errors:?}");
    for _ in 0..2 {
        let mut conn = TcpStream::connect(local(port)).await.expect("connect");
        conn.write_all(b"ping over tcp").await.expect("write");
        let mut buf = [0u8; 13];
        conn.read_exact(&mut buf).await.expect("echo");
        assert_eq!(&buf, b"ping over tcp");
        assert_eq!(proxy.in_flight("echo"), 1);
        assert!(!proxy.drained("echo"));
        drop(conn);
        let p = proxy.clone();
        eventually(5, "the TCP connection to end", || p.in_flight("echo") == 0).await;
    }
    proxy.update(vec![]).await;
    assert!(proxy.drained("echo"));
    assert!(!proxy.haproxy_config().contains("server echo"));
}
