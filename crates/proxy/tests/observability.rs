//! Metrics exposition (exact lines and overall Prometheus text format) and the HAProxy
//! configuration rendered from the live table.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;

use common::{Client, app, backend, config, eventually, free_port};
use proxy::{Proxy, ProxyConfig};

/// Checks the text format: `# HELP`/`# TYPE` before a family's samples, sample lines of
/// `name{labels} value`, histogram buckets non-decreasing and ending in `+Inf` = count.
fn assert_valid_exposition(text: &str) {
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut last_bucket: HashMap<String, f64> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                typed.insert(name.into(), kind.into()).is_none(),
                "family typed twice: {line}"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().expect("name");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name: {line}"
        );
        if series.contains('{') {
            assert!(series.ends_with('}'), "unclosed labels: {line}");
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(typed.contains_key(family), "sample before its TYPE: {line}");
        if name.ends_with("_bucket") {
            let key = series.split(",le=").next().expect("labels").to_owned();
            let previous = last_bucket.insert(key, value).unwrap_or(0.0);
            assert!(value >= previous, "buckets must not decrease: {line}");
        }
    }
}

#[tokio::test]
async fn metrics_count_per_app_and_backend() {
    let a = backend("a").await;
    let port = free_port();
    let proxy = Proxy::new(config());
    proxy
        .update(vec![app(
            "/web",
            port,
            &[("HAPROXY_0_MODE", "http")],
            &[("web.1", a.addr)],
        )])
        .await;
    let mut client = Client::connect(SocketAddr::from(([127, 0, 0, 1], port))).await;
    for _ in 0..4 {
        assert_eq!(client.get("/").await.0, 200);
    }
    let p = proxy.clone();
    eventually(5, "four latency samples", || {
        p.metrics_text()
            .contains("slipway_proxy_request_duration_seconds_count{app=\"/web\"} 4\n")
    })
    .await;
    let text = proxy.metrics_text();
    assert_valid_exposition(&text);
    for line in [
        "# TYPE slipway_proxy_requests_total counter",
        "slipway_proxy_requests_total{app=\"/web\",code=\"2xx\"} 4",
        "slipway_proxy_requests_total{app=\"/web\",code=\"5xx\"} 0",
        "# TYPE slipway_proxy_request_duration_seconds histogram",
        "slipway_proxy_request_duration_seconds_bucket{app=\"/web\",le=\"+Inf\"} 4",
        "slipway_proxy_request_duration_seconds_bucket{app=\"/web\",le=\"10\"} 4",
        "slipway_proxy_backend_requests_total{app=\"/web\",backend=\"web.1\",code=\"2xx\"} 4",
        "# TYPE slipway_proxy_backend_request_duration_seconds histogram",
        "slipway_proxy_backend_request_duration_seconds_bucket{app=\"/web\",backend=\"web.1\",le=\"+Inf\"} 4",
        "slipway_proxy_backend_request_duration_seconds_count{app=\"/web\",backend=\"web.1\"} 4",
        "slipway_proxy_backend_errors_total{app=\"/web\",backend=\"web.1\",kind=\"connect\"} 0",
        "# TYPE slipway_proxy_backend_in_flight gauge",
        "slipway_proxy_backend_in_flight{app=\"/web\",backend=\"web.1\"} 0",
        "slipway_proxy_backend_up{app=\"/web\",backend=\"web.1\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(
        text.contains("slipway_proxy_request_duration_seconds_bucket{app=\"/web\",le=\"0.0001\"} ")
    );
}

#[tokio::test]
async fn haproxy_config_mirrors_the_table() {
    let (port, vhost_port) = (free_port(), free_port());
    let vhost = SocketAddr::from(([127, 0, 0, 1], vhost_port));
    let proxy = Proxy::new(ProxyConfig {
        vhost_listen: Some(vhost),
        ..config()
    });
    let s1: SocketAddr = "127.0.0.1:31001".parse().expect("addr");
    let s2: SocketAddr = "127.0.0.1:31002".parse().expect("addr");
    let errors = proxy
        .update(vec![
            app(
                "/shop/web",
                port,
                &[
                    ("HAPROXY_0_VHOST", "shop.example.com"),
                    ("HAPROXY_0_BALANCE", "leastconn"),
                ],
                &[("shop_web.t1", s1), ("shop_web.t2", s2)],
            ),
            app("/db", 0, &[], &[("db.t1", s1)]),
        ])
        .await;
    assert!(errors.is_empty(), "{errors:?}");
    let cfg = proxy.haproxy_config();
    for part in [
        "defaults\n  mode http\n  option http-keep-alive\n",
        &format!("frontend slipway_http_in\n  bind {vhost}\n  mode http\n"),
        &format!(
            "  acl host_0 req.hdr(host),field(1,:) -i shop.example.com\n  use_backend shop_web_{port} if host_0\n"
        ),
        &format!(
            "frontend shop_web_{port}\n  bind 127.0.0.1:{port}\n  mode http\n  use_backend shop_web_{port}\n"
        ),
        &format!(
            "backend shop_web_{port}\n  mode http\n  balance leastconn\n  option forwardfor\n"
        ),
        "  server shop_web.t1 127.0.0.1:31001\n  server shop_web.t2 127.0.0.1:31002\n",
        "backend db_idx0\n  mode tcp\n  balance roundrobin\n  server db.t1 127.0.0.1:31001\n",
    ] {
        assert!(cfg.contains(part), "missing {part:?} in\n{cfg}");
    }
    assert!(
        !cfg.contains("frontend db"),
        "no service port, no frontend:\n{cfg}"
    );
    // Where HAProxy is installed, it must accept the file.
    if let Ok(out) = std::process::Command::new("haproxy").arg("-v").output()
        && out.status.success()
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, &cfg).expect("write config");
        let check = std::process::Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .expect("haproxy -c");
        assert!(
            check.status.success(),
            "{}\n{cfg}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}
