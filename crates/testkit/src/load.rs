//! A constant-rate (open-loop) HTTP/1.1 load generator over keep-alive connections, bounded
//! in count and time, that counts every outcome: the tool the proxy's zero-failure
//! scenarios and benchmarks use.
//!
//! Requests are scheduled at fixed intervals whatever the answers do (so a stall shows up
//! as errors or latency, not as a lower rate). Each goes out on an idle pooled connection,
//! or a new one when none is idle, up to `max_connections`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// What to send.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Target `host:port`.
    pub addr: String,
    /// Request path, e.g. `/` or `/sleep?ms=50`.
    pub path: String,
    /// `Host` header.
    pub host: String,
    /// Requests per second.
    pub rate: u32,
    /// How long to send.
    pub duration: Duration,
    /// Upper bound of concurrent connections.
    pub max_connections: usize,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Counts of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Requests started.
    pub sent: u64,
    /// 2xx answers.
    pub ok: u64,
    /// Other statuses.
    pub non_2xx: u64,
    /// Connect failures, resets, timeouts, malformed answers.
    pub errors: u64,
    /// Median latency, µs.
    pub p50_us: u64,
    /// 99th percentile latency, µs.
    pub p99_us: u64,
    /// Errors by what went wrong (for the report; `errors` is their sum).
    pub error_kinds: std::collections::BTreeMap<String, u64>,
    /// One entry per second of the schedule, by when each request was due.
    pub seconds: Vec<SecondStats>,
    /// The non-2xx answers by status code (`non_2xx` is their sum).
    pub statuses: std::collections::BTreeMap<u16, u64>,
}

/// The requests due in one second of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecondStats {
    /// Requests due.
    pub sent: u64,
    /// Of those, failed or answered with a non-2xx status.
    pub failed: u64,
    /// 99th percentile latency of the answered ones, µs (0 when none was answered).
    pub p99_us: u64,
}

impl LoadReport {
    /// Seconds whose p99 latency was over `slo` or that had a failed request.
    pub fn seconds_over(&self, slo: Duration) -> usize {
        let slo = slo.as_micros() as u64;
        self.seconds
            .iter()
            .filter(|s| s.failed > 0 || s.p99_us > slo)
            .count()
    }
}

/// The p-th percentile of sorted values (0 for none).
fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0)
}

/// A request's second of the schedule and its latency, µs, if answered with a 2xx.
type Outcome = (usize, Option<u64>);

/// Per-second stats from the outcome of every request.
fn by_second(outcomes: &[Outcome], seconds: usize) -> Vec<SecondStats> {
    let mut lat: Vec<Vec<u64>> = vec![Vec::new(); seconds];
    let mut out = vec![SecondStats::default(); seconds];
    for &(sec, l) in outcomes {
        let Some(o) = out.get_mut(sec) else { continue };
        o.sent += 1;
        match l {
            Some(l) => lat[sec].push(l),
            None => o.failed += 1,
        }
    }
    for (o, mut l) in out.iter_mut().zip(lat) {
        l.sort_unstable();
        o.p99_us = percentile(&l, 0.99);
    }
    out
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} ok {} non-2xx {} errors {} p50 {:.2} ms p99 {:.2} ms",
            self.sent,
            self.ok,
            self.non_2xx,
            self.errors,
            self.p50_us as f64 / 1000.0,
            self.p99_us as f64 / 1000.0
        )?;
        for (kind, n) in &self.error_kinds {
            write!(f, "; {n}× {kind}")?;
        }
        for (code, n) in &self.statuses {
            write!(f, "; {n}× status {code}")?;
        }
        Ok(())
    }
}

type Conn = BufReader<TcpStream>;

/// Whether a pooled connection can take another request: nothing buffered, and the server
/// has not closed it (a read that would block; end of file or stray bytes mean it is done).
fn open_for_reuse(conn: &Conn) -> bool {
    if !conn.buffer().is_empty() {
        return false;
    }
    let mut byte = [0u8; 1];
    matches!(conn.get_ref().try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// One request on a connection; `Ok(status)` or an error (connection not reusable).
async fn request(conn: &mut Conn, spec: &LoadSpec) -> std::io::Result<u16> {
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: slipway-load\r\n\r\n",
        spec.path, spec.host
    );
    conn.get_mut().write_all(req.as_bytes()).await?;
    let mut line = String::new();
    if conn.read_line(&mut line).await? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed before the status line",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad status line {line:?}"),
            )
        })?;
    let mut length = 0usize;
    let mut close = false;
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed in the headers",
            ));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        } else if lower.starts_with("connection:") && lower.contains("close") {
            close = true;
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "chunked answers are not supported",
            ));
        }
    }
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).await?;
    if close {
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            format!("status {status} with close"),
        ));
    }
    Ok(status)
}

/// Runs the load and returns the counts. Never panics on network trouble: it counts it.
pub async fn run_load(spec: LoadSpec) -> LoadReport {
    let idle: Arc<Mutex<Vec<Conn>>> = Arc::new(Mutex::new(Vec::new()));
    let open = Arc::new(AtomicU64::new(0));
    let (ok, non_2xx, errors) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let outcomes: Arc<std::sync::Mutex<Vec<Outcome>>> = Arc::default();
    let statuses: Arc<std::sync::Mutex<std::collections::BTreeMap<u16, u64>>> = Arc::default();
    let kinds: Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>> = Arc::default();
    let interval = Duration::from_secs_f64(1.0 / f64::from(spec.rate.max(1)));
    let total = (spec.duration.as_secs_f64() * f64::from(spec.rate)) as u64;
    let start = tokio::time::Instant::now();
    let mut handles = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let (idle, open, spec) = (idle.clone(), open.clone(), spec.clone());
        let (ok, non_2xx, errors, latencies, kinds, outcomes) = (
            ok.clone(),
            non_2xx.clone(),
            errors.clone(),
            latencies.clone(),
            kinds.clone(),
            outcomes.clone(),
        );
        let statuses = statuses.clone();
        let second = (i / u64::from(spec.rate.max(1))) as usize;
        let record = move |outcome: Option<u64>| {
            if let Ok(mut o) = outcomes.lock() {
                o.push((second, outcome));
            }
        };
        let record_failure = record.clone();
        let fail = move |kind: String| {
            errors.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut k) = kinds.lock() {
                *k.entry(kind).or_default() += 1;
            }
            record_failure(None);
        };
        handles.push(tokio::spawn(async move {
            let t = Instant::now();
            // As HTTP clients do, a pooled connection the server has closed meanwhile (its
            // idle timeout) is dropped, not used: only live ones are taken.
            let pooled = loop {
                let Some(c) = idle.lock().await.pop() else {
                    break None;
                };
                if open_for_reuse(&c) {
                    break Some(c);
                }
                open.fetch_sub(1, Ordering::SeqCst);
            };
            let conn = match pooled {
                Some(c) => Ok(c),
                None if open.load(Ordering::SeqCst) < spec.max_connections as u64 => {
                    match tokio::time::timeout(spec.timeout, TcpStream::connect(&spec.addr)).await {
                        Ok(Ok(s)) => {
                            let _ = s.set_nodelay(true);
                            open.fetch_add(1, Ordering::SeqCst);
                            Ok(BufReader::new(s))
                        }
                        Ok(Err(e)) => Err(format!("connect: {e}")),
                        Err(_) => Err("connect: timed out".to_string()),
                    }
                }
                None => Err("all connections busy".to_string()),
            };
            let mut conn = match conn {
                Ok(c) => c,
                Err(kind) => return fail(kind),
            };
            match tokio::time::timeout(spec.timeout, request(&mut conn, &spec)).await {
                Ok(Ok(status)) => {
                    let l = t.elapsed().as_micros() as u64;
                    if (200..300).contains(&status) {
                        ok.fetch_add(1, Ordering::SeqCst);
                        record(Some(l));
                    } else {
                        non_2xx.fetch_add(1, Ordering::SeqCst);
                        if let Ok(mut st) = statuses.lock() {
                            *st.entry(status).or_default() += 1;
                        }
                        record(None);
                    }
                    if let Ok(mut l2) = latencies.lock() {
                        l2.push(l);
                    }
                    idle.lock().await.push(conn);
                }
                Ok(Err(e)) => {
                    fail(format!("request: {e}"));
                    open.fetch_sub(1, Ordering::SeqCst);
                }
                Err(_) => {
                    fail("request: timed out".to_string());
                    open.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_unstable();
    let pct = |p: f64| percentile(&lat, p);
    let seconds = total.div_ceil(u64::from(spec.rate.max(1))) as usize;
    let outcomes = outcomes.lock().map(|o| o.clone()).unwrap_or_default();
    LoadReport {
        sent: total,
        ok: ok.load(Ordering::SeqCst),
        non_2xx: non_2xx.load(Ordering::SeqCst),
        errors: errors.load(Ordering::SeqCst),
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        error_kinds: kinds.lock().map(|k| k.clone()).unwrap_or_default(),
        seconds: by_second(&outcomes, seconds),
        statuses: statuses.lock().map(|k| k.clone()).unwrap_or_default(),
    }
}

/// Runs the load on its own runtime in a background thread (for synchronous tests).
pub fn spawn_load(spec: LoadSpec) -> std::thread::JoinHandle<LoadReport> {
    std::thread::spawn(move || {
        match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(run_load(spec)),
            Err(_) => LoadReport {
                errors: 1,
                ..LoadReport::default()
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pooled_connection_the_server_closed_is_not_reused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let conn = BufReader::new(client);
        assert!(open_for_reuse(&conn), "an idle live connection is reusable");
        drop(server);
        // The FIN arrives asynchronously; it is seen within a moment.
        let mut closed = false;
        for _ in 0..100 {
            if !open_for_reuse(&conn) {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(closed, "a connection the server closed is not reused");
    }

    #[test]
    fn seconds_over_the_slo_count_slow_and_failing_seconds() {
        let mut outcomes = Vec::new();
        // Second 0: 100 fast answers. Second 1: one answer of 300 ms among 99 fast ones is
        // the p99. Second 2: fast, but one failed. Second 3: nothing due.
        outcomes.extend((0..100).map(|_| (0, Some(5_000))));
        outcomes.extend((0..99).map(|_| (1, Some(5_000))));
        outcomes.push((1, Some(300_000)));
        outcomes.extend((0..10).map(|_| (2, Some(5_000))));
        outcomes.push((2, None));
        let seconds = by_second(&outcomes, 4);
        assert_eq!(
            seconds[0],
            SecondStats {
                sent: 100,
                failed: 0,
                p99_us: 5_000
            }
        );
        assert_eq!(seconds[1].p99_us, 300_000);
        assert_eq!(
            seconds[2],
            SecondStats {
                sent: 11,
                failed: 1,
                p99_us: 5_000
            }
        );
        assert_eq!(seconds[3], SecondStats::default());
        let report = LoadReport {
            seconds,
            ..LoadReport::default()
        };
        assert_eq!(report.seconds_over(Duration::from_millis(200)), 2);
        assert_eq!(report.seconds_over(Duration::from_millis(400)), 1);
    }
}
