//! Lock-free counters (per app and per backend) and their Prometheus text exposition.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::backend::TaskStats;

/// Upper bounds of the latency histogram's buckets, in microseconds (0.1 ms to 10 s).
const BUCKETS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// The status classes counted, indexed by `status / 100 - 1`.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Kinds of backend errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// Connection refused, unreachable or failed handshake.
    Connect = 0,
    /// Connecting took longer than the connect timeout.
    Timeout = 1,
    /// The backend failed after the request was sent (reset, early close).
    Reset = 2,
}

const KINDS: [&str; 3] = ["connect", "timeout", "reset"];

/// Requests counted by status class.
#[derive(Debug, Default)]
pub(crate) struct StatusCounts([AtomicU64; 5]);

impl StatusCounts {
    /// Counts one response with `status`.
    pub(crate) fn record(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.0[class].fetch_add(1, Relaxed);
    }

    fn get(&self, class: usize) -> u64 {
        self.0[class].load(Relaxed)
    }
}

/// Backend errors counted by kind.
#[derive(Debug, Default)]
pub(crate) struct ErrorCounts([AtomicU64; 3]);

impl ErrorCounts {
    /// Counts one error.
    pub(crate) fn record(&self, kind: ErrorKind) {
        self.0[kind as usize].fetch_add(1, Relaxed);
    }
}

/// A latency histogram; buckets are stored non-cumulative and summed when rendered.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub(crate) fn observe(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let idx = BUCKETS_US.partition_point(|&b| b < us);
        self.buckets[idx].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }
}

/// Per-app counters.
#[derive(Debug)]
pub(crate) struct AppStats {
    /// The app id.
    pub(crate) app_id: String,
    /// Responses to clients (including the proxy's own 502/503) by status class.
    pub(crate) codes: StatusCounts,
    /// Time from receiving a request to the end of its response body.
    pub(crate) latency: Histogram,
}

impl AppStats {
    /// Fresh counters for `app_id`.
    pub(crate) fn new(app_id: &str) -> AppStats {
        AppStats {
            app_id: app_id.to_owned(),
            codes: StatusCounts::default(),
            latency: Histogram::default(),
        }
    }
}

/// Escapes a Prometheus label value.
fn esc(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Writes the `_bucket`, `_sum` and `_count` series of `h` with `labels` (no braces).
fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let mut cumulative = 0;
    for (i, bound) in BUCKETS_US.iter().enumerate() {
        cumulative += h.buckets[i].load(Relaxed);
        let le = *bound as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    cumulative += h.buckets[BUCKETS_US.len()].load(Relaxed);
    let sum = h.sum_us.load(Relaxed) as f64 / 1e6;
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
}

/// Renders the exposition; `apps` and `tasks` come sorted by id.
pub(crate) fn render(apps: &[&AppStats], tasks: &[&TaskStats], unrouted: u64) -> String {
    let mut out = String::with_capacity(4096 + 1024 * (apps.len() + tasks.len()));
    family(
        &mut out,
        "slipway_proxy_requests_total",
        "counter",
        "Responses to clients per app by status class.",
    );
    for app in apps {
        for (i, class) in CLASSES.iter().enumerate() {
            let _ = writeln!(
                out,
                "slipway_proxy_requests_total{{app=\"{}\",code=\"{class}\"}} {}",
                esc(&app.app_id),
                app.codes.get(i)
            );
        }
    }
    let name = "slipway_proxy_request_duration_seconds";
    family(
        &mut out,
        name,
        "histogram",
        "Time from request to the end of the response body.",
    );
    for app in apps {
        histogram(
            &mut out,
            name,
            &format!("app=\"{}\"", esc(&app.app_id)),
            &app.latency,
        );
    }
    let labels: Vec<String> = tasks
        .iter()
        .map(|t| {
            format!(
                "app=\"{}\",backend=\"{}\"",
                esc(&t.app.app_id),
                esc(&t.task_id)
            )
        })
        .collect();
    let name = "slipway_proxy_backend_requests_total";
    family(
        &mut out,
        name,
        "counter",
        "HTTP responses per backend by status class.",
    );
    for (t, l) in tasks.iter().zip(&labels) {
        for (i, class) in CLASSES.iter().enumerate() {
            let _ = writeln!(out, "{name}{{{l},code=\"{class}\"}} {}", t.codes.get(i));
        }
    }
    let name = "slipway_proxy_backend_request_duration_seconds";
    family(
        &mut out,
        name,
        "histogram",
        "Time from request to the end of the response body, per backend that answered.",
    );
    for (t, l) in tasks.iter().zip(&labels) {
        histogram(&mut out, name, l, &t.latency);
    }
    let name = "slipway_proxy_backend_errors_total";
    family(
        &mut out,
        name,
        "counter",
        "Failed attempts per backend by kind.",
    );
    for (t, l) in tasks.iter().zip(&labels) {
        for (i, kind) in KINDS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}{{{l},kind=\"{kind}\"}} {}",
                t.errors.0[i].load(Relaxed)
            );
        }
    }
    let name = "slipway_proxy_backend_connections_total";
    family(
        &mut out,
        name,
        "counter",
        "TCP-mode connections per backend.",
    );
    for (t, l) in tasks.iter().zip(&labels) {
        let _ = writeln!(out, "{name}{{{l}}} {}", t.connections.load(Relaxed));
    }
    let name = "slipway_proxy_backend_in_flight";
    family(
        &mut out,
        name,
        "gauge",
        "Requests and TCP connections in flight per backend.",
    );
    for (t, l) in tasks.iter().zip(&labels) {
        let _ = writeln!(out, "{name}{{{l}}} {}", t.in_flight());
    }
    let name = "slipway_proxy_backend_up";
    family(
        &mut out,
        name,
        "gauge",
        "1 when the backend is routed and not marked down.",
    );
    for (t, l) in tasks.iter().zip(&labels) {
        let _ = writeln!(out, "{name}{{{l}}} {}", u8::from(t.is_up()));
    }
    let name = "slipway_proxy_unrouted_requests_total";
    family(&mut out, name, "counter", "Requests that matched no route.");
    let _ = writeln!(out, "{name} {unrouted}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_inclusive_upper_bounds() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_micros(101));
        h.observe(Duration::from_secs(11));
        assert_eq!(h.buckets[0].load(Relaxed), 1);
        assert_eq!(h.buckets[1].load(Relaxed), 1);
        assert_eq!(h.buckets[BUCKETS_US.len()].load(Relaxed), 1);
    }

    #[test]
    fn histograms_render_cumulative_buckets_with_their_labels() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(20));
        let mut out = String::new();
        histogram(&mut out, "x", "app=\"/a\",backend=\"t1\"", &h);
        assert!(
            out.contains("x_bucket{app=\"/a\",backend=\"t1\",le=\"0.0025\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{app=\"/a\",backend=\"t1\",le=\"0.005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{app=\"/a\",backend=\"t1\",le=\"0.05\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{app=\"/a\",backend=\"t1\",le=\"10\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{app=\"/a\",backend=\"t1\",le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("x_sum{app=\"/a\",backend=\"t1\"} 20.033\n"),
            "{out}"
        );
        assert!(
            out.contains("x_count{app=\"/a\",backend=\"t1\"} 3\n"),
            "{out}"
        );
    }

    #[test]
    fn status_classes() {
        let c = StatusCounts::default();
        for s in [101, 200, 204, 302, 404, 502, 999] {
            c.record(s);
        }
        let got: Vec<u64> = (0..5).map(|i| c.get(i)).collect();
        assert_eq!(got, [1, 2, 1, 1, 2]);
        assert_eq!(esc("a\"b\\c"), "a\\\"b\\\\c");
    }
}
