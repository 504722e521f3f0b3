//! `--influxdb-url`: every collected round also goes to an InfluxDB 1.x, in cAdvisor's
//! InfluxDB schema, so the InfluxQL dashboards of a cAdvisor → InfluxDB stack keep working.
//!
//! * One measurement per metric with one field, `value`. cAdvisor's container metrics
//!   keep cAdvisor's measurement names and units (`cpu_usage_total` in cumulative
//!   nanoseconds, `memory_working_set` in bytes, integers as `i`, never `u`); everything
//!   else (host, proxy, tasks) is a float measurement under its Prometheus name.
//! * Tags: `machine` (the host name), `container_name` (the task) and every label.
//! * Rounds queue up to [`MAX_QUEUED_BYTES`] (then the oldest are dropped and counted).
//!   5xx, 429, 408 and connection failures are retried with back-off (1 s doubling to
//!   60 s); a 400 (bad data) or another 4xx is logged and dropped, never retried; a 404
//!   "database not found" creates the database once and retries.
//!
//! The client is plain HTTP/1.1 over tokio (`http://` only), one request per connection.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Most bytes of line protocol waiting for InfluxDB; older rounds are dropped beyond it.
pub const MAX_QUEUED_BYTES: usize = 32 << 20;
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// cAdvisor's measurement and unit scale for the container metrics it exports to InfluxDB.
fn cadvisor_name(metric: &str) -> Option<(&'static str, f64)> {
    Some(match metric {
        "container_cpu_usage_seconds_total" => ("cpu_usage_total", 1e9),
        "container_cpu_user_seconds_total" => ("cpu_usage_user", 1e9),
        "container_cpu_system_seconds_total" => ("cpu_usage_system", 1e9),
        "container_memory_usage_bytes" => ("memory_usage", 1.0),
        "container_memory_max_usage_bytes" => ("memory_max_usage", 1.0),
        "container_memory_cache" => ("memory_cache", 1.0),
        "container_memory_rss" => ("memory_rss", 1.0),
        "container_memory_swap" => ("memory_swap", 1.0),
        "container_memory_mapped_file" => ("memory_mapped_file", 1.0),
        "container_memory_working_set_bytes" => ("memory_working_set", 1.0),
        "container_memory_failcnt" => ("memory_failcnt", 1.0),
        "container_network_receive_bytes_total" => ("rx_bytes", 1.0),
        "container_network_receive_errors_total" => ("rx_errors", 1.0),
        "container_network_transmit_bytes_total" => ("tx_bytes", 1.0),
        "container_network_transmit_errors_total" => ("tx_errors", 1.0),
        _ => return None,
    })
}

fn escape(out: &mut String, text: &str, specials: &[char]) {
    for c in text.chars() {
        if c == '\n' || c == '\r' {
            out.push(' ');
            continue;
        }
        if specials.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// A round as InfluxDB line protocol (millisecond timestamps), in cAdvisor's schema.
/// Non-finite values are left out: InfluxDB 1.x refuses them.
pub fn encode(families: &[metrics::MetricFamily], now_ms: i64, machine: &str) -> String {
    let mut out = String::new();
    for f in families {
        for s in &f.samples {
            if !s.value.is_finite() {
                continue;
            }
            let name = f.sample_name(s);
            let mapped = cadvisor_name(&name);
            escape(&mut out, mapped.map_or(&*name, |m| m.0), &[',', ' ']);
            let mut tags: Vec<(&str, &str)> = vec![("machine", machine)];
            if let Some(task) = s.labels.get("name") {
                tags.push(("container_name", task));
            }
            tags.extend(
                s.label_pairs()
                    .filter(|(k, v)| !v.is_empty() && *k != "machine" && *k != "container_name"),
            );
            tags.sort_by(|a, b| a.0.cmp(b.0));
            tags.dedup_by(|a, b| a.0 == b.0);
            for (k, v) in tags.iter().filter(|(_, v)| !v.is_empty()) {
                out.push(',');
                escape(&mut out, k, &[',', '=', ' ']);
                out.push('=');
                escape(&mut out, v, &[',', '=', ' ']);
            }
            let ts = s.timestamp_ms.unwrap_or(now_ms);
            let _ = match mapped {
                Some((_, scale)) => {
                    writeln!(out, " value={}i {ts}", (s.value * scale).round() as i64)
                }
                None => writeln!(out, " value={:?} {ts}", s.value),
            };
        }
    }
    out
}

/// Where rounds go: `http://host[:port]/<database>[?u=..&p=..&rp=..]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    host: String,
    port: u16,
    db: String,
    /// Extra query parameters passed through (`u`, `p`, `rp`).
    extra: String,
}

impl Target {
    /// Parses `--influxdb-url`; the path names the database (default `cadvisor`).
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("{url}: only http:// URLs are supported, e.g. http://127.0.0.1:8086/cadvisor")
        })?;
        let (rest, extra) = rest.split_once('?').unwrap_or((rest, ""));
        let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse()
                    .map_err(|_| format!("{url}: invalid port {p:?}"))?,
            ),
            _ => (hostport, 8086),
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        let db = path.trim_matches('/');
        let db = if db.is_empty() { "cadvisor" } else { db };
        if db.contains(['/', '"', '\\']) {
            return Err(format!("{url}: invalid database name {db:?}"));
        }
        Ok(Target {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            db: db.to_string(),
            extra: extra.to_string(),
        })
    }

    fn query(&self, path: &str, params: &str) -> String {
        let mut q = format!("{path}?{params}");
        if !self.extra.is_empty() {
            q.push('&');
            q.push_str(&self.extra);
        }
        q
    }
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The queued rounds (sequence number, lines), their size, the next sequence number.
#[derive(Debug, Default)]
struct Queue {
    rounds: VecDeque<(u64, String)>,
    bytes: usize,
    next: u64,
}

/// Rounds waiting to be written, oldest first, each with a sequence number.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: Mutex<Queue>,
    ready: tokio::sync::Notify,
    dropped: std::sync::atomic::AtomicU64,
}

impl Outbox {
    /// Queues a round, dropping the oldest ones past [`MAX_QUEUED_BYTES`].
    pub fn push(&self, lines: String) {
        if lines.is_empty() {
            return;
        }
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.bytes += lines.len();
        let seq = q.next;
        q.rounds.push_back((seq, lines));
        q.next += 1;
        while q.bytes > MAX_QUEUED_BYTES && q.rounds.len() > 1 {
            if let Some((_, old)) = q.rounds.pop_front() {
                q.bytes -= old.len();
                self.dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        drop(q);
        self.ready.notify_one();
    }

    fn front(&self) -> Option<(u64, String)> {
        let q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.rounds.front().cloned()
    }

    /// Removes round `seq` if it is still the oldest.
    fn done(&self, seq: u64) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.rounds.front().is_some_and(|(s, _)| *s == seq)
            && let Some((_, old)) = q.rounds.pop_front()
        {
            q.bytes -= old.len();
        }
    }

    /// Rounds dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What became of one write.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Written,
    /// Bad data or a refusal that retrying cannot fix (400, other 4xx).
    Rejected(String),
    /// The database does not exist yet.
    NoDatabase,
    /// Try again later (5xx, 429, 408, connection failures).
    Retry(String),
}

fn classify(status: u16, body: &str) -> Outcome {
    match status {
        200..=299 => Outcome::Written,
        404 if body.contains("database not found") => Outcome::NoDatabase,
        408 | 429 | 500..=599 => Outcome::Retry(format!("{status} {}", body.trim())),
        _ => Outcome::Rejected(format!("{status} {}", body.trim())),
    }
}

/// The writer: takes rounds from its [`Outbox`] and POSTs them to the target.
pub struct Exporter {
    target: Target,
    outbox: std::sync::Arc<Outbox>,
}

impl Exporter {
    /// A writer for `target` fed by `outbox`.
    pub fn new(target: Target, outbox: std::sync::Arc<Outbox>) -> Exporter {
        Exporter { target, outbox }
    }

    async fn post(&self, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let t = &self.target;
        let work = async {
            let mut c = tokio::net::TcpStream::connect((t.host.as_str(), t.port)).await?;
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: slipway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                t.host,
                t.port,
                body.len()
            );
            c.write_all(head.as_bytes()).await?;
            c.write_all(body.as_bytes()).await?;
            let mut raw = Vec::new();
            c.read_to_end(&mut raw).await?;
            let text = String::from_utf8_lossy(&raw);
            let status = text
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| std::io::Error::other("not an HTTP answer"))?;
            let body = text.split_once("\r\n\r\n").map_or("", |x| x.1);
            Ok((status, body.chars().take(500).collect()))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, work)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("timed out")))
    }

    async fn write(&self, lines: &str) -> Outcome {
        let path = self.target.query(
            "/write",
            &format!("db={}&precision=ms", percent(&self.target.db)),
        );
        match self.post(&path, lines).await {
            Ok((status, body)) => classify(status, &body),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }

    async fn create_database(&self) -> Outcome {
        let q = format!("CREATE DATABASE \"{}\"", self.target.db);
        let path = self.target.query("/query", &format!("q={}", percent(&q)));
        match self.post(&path, "").await {
            Ok((status, body)) => classify(status, &body),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }

    /// Writes queued rounds until `shutdown`.
    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        let mut created = false;
        let mut failing = false;
        loop {
            let Some((seq, lines)) = self.outbox.front() else {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = self.outbox.ready.notified() => continue,
                }
            };
            let outcome = tokio::select! {
                () = shutdown.cancelled() => return,
                o = self.write(&lines) => o,
            };
            let outcome = match outcome {
                Outcome::NoDatabase if !created => {
                    created = true;
                    tracing::info!(db = %self.target.db, "creating the InfluxDB database");
                    match self.create_database().await {
                        Outcome::Written => continue,
                        other => other,
                    }
                }
                other => other,
            };
            match outcome {
                Outcome::Written => {
                    self.outbox.done(seq);
                    backoff = MIN_BACKOFF;
                    if failing {
                        tracing::info!("InfluxDB export resumed");
                        failing = false;
                    }
                }
                Outcome::Rejected(why) => {
                    tracing::warn!(round = seq, error = %why, "InfluxDB rejected a round (dropped, not retried)");
                    self.outbox.done(seq);
                }
                Outcome::NoDatabase => {
                    tracing::warn!(round = seq, db = %self.target.db, "InfluxDB database not found (dropped)");
                    self.outbox.done(seq);
                }
                Outcome::Retry(why) => {
                    if !failing {
                        tracing::warn!(error = %why, "InfluxDB export failing; retrying with back-off");
                        failing = true;
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// The host name for the `machine` tag.
pub fn machine() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::{Labels, MetricFamily, Sample, SampleSuffix};

    fn family(name: &'static str, labels: &[(&str, &str)], value: f64) -> MetricFamily {
        let desc = metrics::Desc::new(name, metrics::MetricType::Gauge, "", "");
        MetricFamily {
            desc,
            samples: vec![Sample {
                suffix: SampleSuffix::None,
                labels: labels.iter().map(|(k, v)| (*k, *v)).collect::<Labels>(),
                extra: Vec::new(),
                value,
                timestamp_ms: Some(1_000),
            }],
        }
    }

    #[test]
    fn rounds_use_cadvisors_schema() {
        let fams = [
            family(
                "container_cpu_usage_seconds_total",
                &[("name", "web.1"), ("app", "/web"), ("version", "a b,c=d")],
                1.5,
            ),
            family("node_load1", &[], 0.25),
            family("node_load5", &[], f64::NAN),
            family(
                "container_memory_working_set_bytes",
                &[("name", "web.1")],
                4096.0,
            ),
        ];
        assert_eq!(
            encode(&fams, 9, "h1"),
            "cpu_usage_total,app=/web,container_name=web.1,machine=h1,name=web.1,version=a\\ b\\,c\\=d value=1500000000i 1000\n\
             node_load1,machine=h1 value=0.25 1000\n\
             memory_working_set,container_name=web.1,machine=h1,name=web.1 value=4096i 1000\n"
        );
    }

    #[test]
    fn urls_name_host_port_and_database() {
        let t = Target::parse("http://127.0.0.1:8086/metrics?u=a&p=b").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.db.as_str()),
            ("127.0.0.1", 8086, "metrics")
        );
        assert_eq!(t.query("/write", "db=metrics"), "/write?db=metrics&u=a&p=b");
        let t = Target::parse("http://influx").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.db.as_str()),
            ("influx", 8086, "cadvisor")
        );
        assert!(Target::parse("https://influx/db").is_err());
        assert!(Target::parse("http://:80/db").is_err());
        assert!(Target::parse("http://h:x/db").is_err());
    }

    #[test]
    fn a_400_is_never_retried() {
        assert_eq!(classify(204, ""), Outcome::Written);
        assert!(matches!(
            classify(400, "{\"error\":\"partial write\"}"),
            Outcome::Rejected(_)
        ));
        assert!(matches!(classify(401, ""), Outcome::Rejected(_)));
        assert!(matches!(classify(503, ""), Outcome::Retry(_)));
        assert!(matches!(classify(429, ""), Outcome::Retry(_)));
        assert_eq!(
            classify(404, "{\"error\":\"database not found: \\\"x\\\"\"}"),
            Outcome::NoDatabase
        );
    }

    #[test]
    fn the_queue_is_bounded_and_drops_the_oldest() {
        let o = Outbox::default();
        let big = "x".repeat(MAX_QUEUED_BYTES / 2 + 1);
        o.push(big.clone());
        o.push(big.clone());
        o.push("y".into());
        assert_eq!(o.dropped(), 1);
        let (seq, _) = o.front().unwrap();
        assert_eq!(seq, 1);
        o.done(0); // already gone: nothing happens
        assert_eq!(o.front().unwrap().0, 1);
        o.done(1);
        assert_eq!(o.front().unwrap(), (2, "y".to_string()));
    }
}
