//! Benchmark helper (all on 127.0.0.1), to compare with HAProxy under `wrk`:
//!
//! * `proxy_bench backends PORT...` serves a small `hello` response on each port;
//! * `proxy_bench proxy LISTEN_PORT BACKEND_PORT...` runs the proxy in HTTP mode on
//!   `LISTEN_PORT`, round robin over the backends.
//!
//! `WORKERS` sets the runtime's worker threads (default: one per core).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use proxy::{AppEndpoints, Backend, PortEndpoints, Proxy, ProxyConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn ports(args: &[String]) -> Vec<u16> {
    args.iter().filter_map(|a| a.parse().ok()).collect()
}

async fn backends(ports: Vec<u16>) -> std::io::Result<()> {
    let mut tasks = Vec::new();
    for port in ports {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        tasks.push(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let svc = service_fn(|_req: Request<hyper::body::Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello\n"))))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc),
                );
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

async fn run_proxy(listen: u16, backends: Vec<u16>) {
    let proxy = Proxy::new(ProxyConfig::default());
    let app = AppEndpoints {
        app_id: "/bench".into(),
        labels: [("HAPROXY_0_MODE".to_owned(), "http".to_owned())]
            .into_iter()
            .collect(),
        ports: vec![PortEndpoints {
            service_port: listen,
            backends: backends
                .iter()
                .enumerate()
                .map(|(i, p)| Backend {
                    task_id: format!("bench.{i}"),
                    addr: SocketAddr::from(([127, 0, 0, 1], *p)),
                })
                .collect(),
        }],
    };
    for e in proxy.update(vec![app]).await {
        eprintln!("{e}");
    }
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    proxy.run(shutdown).await;
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()) {
        rt.worker_threads(n);
    }
    let rt = rt.enable_all().build()?;
    match args.get(1).map(String::as_str) {
        Some("backends") => rt.block_on(backends(ports(&args[2..]))),
        Some("proxy") if args.len() > 3 => {
            let all = ports(&args[2..]);
            rt.block_on(run_proxy(all[0], all[1..].to_vec()));
            Ok(())
        }
        _ => {
            eprintln!("usage: proxy_bench backends PORT... | proxy LISTEN_PORT BACKEND_PORT...");
            Ok(())
        }
    }
}
