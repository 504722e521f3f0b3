//! A quick in-test load: 2,000 GETs over 20 keep-alive connections while the route table
//! is replaced 50 times (always with at least one healthy backend): zero failures.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use common::{Client, app, backend, config, eventually, free_port};
use proxy::Proxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_survive_route_updates() {
    let (a, b, c) = (backend("a").await, backend("b").await, backend("c").await);
    let port = free_port();
    let proxy = Proxy::new(config());
    let labels = [("HAPROXY_0_MODE", "http")];
    let sets: [Vec<(&str, SocketAddr)>; 4] = [
        vec![("a", a.addr), ("b", b.addr)],
        vec![("b", b.addr)],
        vec![("c", c.addr), ("a", a.addr)],
        vec![("c", c.addr)],
    ];
    assert!(
        proxy
            .update(vec![app("/web", port, &labels, &sets[0])])
            .await
            .is_empty()
    );

    let done = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let updater = {
        let (proxy, done, sent) = (proxy.clone(), Arc::clone(&done), Arc::clone(&sent));
        let sets = sets.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                // Spread the updates over the load: one every ~35 requests.
                let target = (i + 1) * 35;
                while sent.load(SeqCst) < target && !done.load(SeqCst) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let errors = proxy
                    .update(vec![app(
                        "/web",
                        port,
                        &labels,
                        &sets[(i + 1) % sets.len()],
                    )])
                    .await;
                assert!(errors.is_empty(), "{errors:?}");
            }
        })
    };

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut clients = Vec::new();
    for _ in 0..20 {
        let sent = Arc::clone(&sent);
        clients.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            let mut failures = Vec::new();
            for _ in 0..100 {
                match client.send(hyper::Method::GET, "load.local", "/", "").await {
                    Ok((200, body)) if ["a", "b", "c"].contains(&body.as_str()) => {}
                    other => failures.push(format!("{other:?}")),
                }
                sent.fetch_add(1, SeqCst);
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.expect("client task"));
    }
    done.store(true, SeqCst);
    updater.await.expect("updater");
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert_eq!(sent.load(SeqCst), 2000);
    assert_eq!(
        a.hits.load(SeqCst) + b.hits.load(SeqCst) + c.hits.load(SeqCst),
        2000
    );

    // The last table (set 50 % 4 = 2) has c and a; b drains.
    let p = proxy.clone();
    eventually(5, "b drained", || p.drained("b")).await;
    assert!(!proxy.drained("a") && !proxy.drained("c"));
    let text = proxy.metrics_text();
    assert!(
        text.contains("slipway_proxy_requests_total{app=\"/web\",code=\"2xx\"} 2000\n"),
        "{text}"
    );
}
