//! HTTP routing through real sockets: round robin over keep-alive, least connections,
//! vhosts by `Host` and path, forwarded headers, and 503 without backends.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::SeqCst;

use common::{Client, app, backend, config, eventually, free_port};
use hyper::Method;
use proxy::{Proxy, ProxyConfig};
use tokio_util::sync::CancellationToken;

const HTTP: (&str, &str) = ("HAPROXY_0_MODE", "http");

#[tokio::test]
async fn round_robin_over_one_keep_alive_connection() {
    let (a, b) = (backend("a").await, backend("b").await);
    let port = free_port();
    let proxy = Proxy::new(config());
    let errors = proxy
        .update(vec![app(
            "/web",
            port,
            &[HTTP],
            &[("a", a.addr), ("b", b.addr)],
        )])
        .await;
    assert!(errors.is_empty(), "{errors:?}");
    let mut client = Client::connect(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let mut bodies = Vec::new();
    for _ in 0..10 {
        let (status, body) = client.get("/").await;
        assert_eq!(status, 200);
        bodies.push(body);
    }
    for pair in bodies.windows(2) {
        assert_ne!(pair[0], pair[1], "round robin alternates: {bodies:?}");
    }
    assert_eq!((a.hits.load(SeqCst), b.hits.load(SeqCst)), (5, 5));

    let (status, headers) = client.get("/headers").await;
    assert_eq!(status, 200);
    assert_eq!(headers, "127.0.0.1|http|test.local");
}

#[tokio::test]
async fn least_connections_avoids_the_busy_backend() {
    let (slow, fast) = (backend("slow").await, backend("fast").await);
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let proxy = Proxy::new(config());
    let labels = [HTTP, ("HAPROXY_0_BALANCE", "leastconn")];
    proxy
        .update(vec![app(
            "/web",
            port,
            &labels,
            &[("slow", slow.addr), ("fast", fast.addr)],
        )])
        .await;

    // Park one long request on "slow" (ties are broken in turn, so this takes ≤ 2 tries).
    let mut parked = None;
    for _ in 0..4 {
        let mut client = Client::connect(addr).await;
        let request = tokio::spawn(async move { client.get("/slow").await });
        let p = proxy.clone();
        eventually(5, "the request to be in flight", || {
            p.in_flight("slow") + p.in_flight("fast") == 1
        })
        .await;
        if proxy.in_flight("slow") == 1 {
            parked = Some(request);
            break;
        }
        assert_eq!(request.await.expect("join"), (200, "fast".into()));
    }
    let parked = parked.expect("a request parked on the slow backend");
    let mut client = Client::connect(addr).await;
    for _ in 0..10 {
        assert_eq!(client.get("/").await, (200, "fast".into()));
    }
    assert_eq!(proxy.in_flight("slow"), 1);
    assert_eq!(parked.await.expect("join"), (200, "slow".into()));
}

#[tokio::test]
async fn vhosts_route_by_host_and_path() {
    let (a, b, api) = (backend("a").await, backend("b").await, backend("api").await);
    let vhost = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let proxy = Proxy::new(ProxyConfig {
        vhost_listen: Some(vhost),
        ..config()
    });
    let errors = proxy
        .update(vec![
            app(
                "/a",
                0,
                &[("HAPROXY_0_VHOST", "a.example.com")],
                &[("a1", a.addr)],
            ),
            app(
                "/b",
                0,
                &[("SLIPWAY_0_VHOST", "b.example.com,B2.example.com")],
                &[("b1", b.addr)],
            ),
            app(
                "/api",
                0,
                &[
                    ("HAPROXY_0_VHOST", "a.example.com"),
                    ("HAPROXY_0_PATH", "/api"),
                ],
                &[("api1", api.addr)],
            ),
            app(
                "/empty",
                0,
                &[("HAPROXY_0_VHOST", "empty.example.com")],
                &[],
            ),
        ])
        .await;
    assert!(errors.is_empty(), "{errors:?}");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(proxy.clone().run(shutdown.clone()));

    let mut client = Client::connect(vhost).await;
    let mut get =
        async |host: &str, path: &str| client.send(Method::GET, host, path, "").await.expect("GET");
    assert_eq!(get("a.example.com", "/").await, (200, "a".into()));
    assert_eq!(get("A.Example.COM:8080", "/x").await, (200, "a".into()));
    assert_eq!(get("b.example.com", "/").await, (200, "b".into()));
    assert_eq!(get("b2.example.com", "/").await, (200, "b".into()));
    assert_eq!(get("a.example.com", "/api/v1").await, (200, "api".into()));
    let (status, _) = get("unknown.example.com", "/").await;
    assert_eq!(status, 404, "an unknown host is a 404");
    let (status, body) = get("empty.example.com", "/").await;
    assert_eq!((status, body.as_str()), (503, "no backend available\n"));

    shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(15), running)
        .await
        .expect("run returns")
        .expect("join");
}

#[tokio::test]
async fn no_backend_is_503_and_later_backends_are_used() {
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let proxy = Proxy::new(config());
    proxy.update(vec![app("/web", port, &[HTTP], &[])]).await;
    let mut client = Client::connect(addr).await;
    let (status, body) = client.get("/").await;
    assert_eq!((status, body.as_str()), (503, "no backend available\n"));

    // The same keep-alive connection sees the next table.
    let a = backend("a").await;
    proxy
        .update(vec![app("/web", port, &[HTTP], &[("a", a.addr)])])
        .await;
    assert_eq!(client.get("/").await, (200, "a".into()));
    let (status, body) = client
        .send(Method::POST, "x", "/", "hello")
        .await
        .expect("POST");
    assert_eq!((status, body.as_str()), (200, "a:5"));
}

#[tokio::test]
async fn only_the_configured_groups_are_served() {
    let a = backend("a").await;
    let (external, internal) = (free_port(), free_port());
    let proxy = Proxy::new(ProxyConfig {
        groups: vec!["external".into()],
        ..config()
    });
    let errors = proxy
        .update(vec![
            app(
                "/pub",
                external,
                &[HTTP, ("HAPROXY_GROUP", "internal,external")],
                &[("p", a.addr)],
            ),
            app(
                "/priv",
                internal,
                &[HTTP, ("HAPROXY_GROUP", "internal")],
                &[("q", a.addr)],
            ),
        ])
        .await;
    assert!(errors.is_empty(), "{errors:?}");
    let mut client = Client::connect(SocketAddr::from(([127, 0, 0, 1], external))).await;
    assert_eq!(client.get("/").await, (200, "a".into()));
    let refused =
        tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], internal))).await;
    assert!(refused.is_err(), "an internal app gets no listener");
    assert!(!proxy.haproxy_config().contains("priv"));
    assert_eq!(a.hits.load(SeqCst), 1);
}
