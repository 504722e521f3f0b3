//! Lock-free counters (per app and per backend) and their Prometheus text exposition.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use metrics::{Desc, MetricFamily, MetricType, Sample, SampleRef, SampleSuffix};

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

/// The proxy's metric families, in exposition order.
static FAMILIES: [Desc; 9] = [
    Desc::new(
        "slipway_proxy_requests_total",
        MetricType::Counter,
        "",
        "Responses to clients per app by status class.",
    ),
    Desc::new(
        "slipway_proxy_request_duration_seconds",
        MetricType::Histogram,
        "",
        "Time from request to the end of the response body.",
    ),
    Desc::new(
        "slipway_proxy_backend_requests_total",
        MetricType::Counter,
        "",
        "HTTP responses per backend by status class.",
    ),
    Desc::new(
        "slipway_proxy_backend_request_duration_seconds",
        MetricType::Histogram,
        "",
        "Time from request to the end of the response body, per backend that answered.",
    ),
    Desc::new(
        "slipway_proxy_backend_errors_total",
        MetricType::Counter,
        "",
        "Failed attempts per backend by kind.",
    ),
    Desc::new(
        "slipway_proxy_backend_connections_total",
        MetricType::Counter,
        "",
        "TCP-mode connections per backend.",
    ),
    Desc::new(
        "slipway_proxy_backend_in_flight",
        MetricType::Gauge,
        "",
        "Requests and TCP connections in flight per backend.",
    ),
    Desc::new(
        "slipway_proxy_backend_up",
        MetricType::Gauge,
        "",
        "1 when the backend is routed and not marked down.",
    ),
    Desc::new(
        "slipway_proxy_unrouted_requests_total",
        MetricType::Counter,
        "",
        "Requests that matched no route.",
    ),
];
const REQUESTS: usize = 0;
const DURATION: usize = 1;
const BACKEND_REQUESTS: usize = 2;
const BACKEND_DURATION: usize = 3;
const BACKEND_ERRORS: usize = 4;
const BACKEND_CONNECTIONS: usize = 5;
const BACKEND_IN_FLIGHT: usize = 6;
const BACKEND_UP: usize = 7;
const UNROUTED: usize = 8;

/// The `le` label of each bucket (`BUCKETS_US` in seconds, as `{}` writes them) and `+Inf`.
const LE: [&str; BUCKETS_US.len() + 1] = [
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

/// Hands `f` one sample at a time, nothing allocated: the `_bucket`, `_sum` and `_count`
/// series of `h` with `base` labels (at most two) plus `le`.
fn histogram(
    f: &mut dyn FnMut(&SampleRef<'_>),
    desc: &'static Desc,
    base: &[(&'static str, &str)],
    h: &Histogram,
) {
    let mut labels = [("", ""); 3];
    let n = base.len().min(2);
    labels[..n].copy_from_slice(&base[..n]);
    let mut cumulative = 0;
    for (i, le) in LE.iter().enumerate() {
        cumulative += h.buckets[i].load(Relaxed);
        labels[n] = ("le", le);
        f(&SampleRef {
            desc,
            suffix: SampleSuffix::Bucket,
            labels: &labels[..=n],
            value: cumulative as f64,
        });
    }
    let sum = h.sum_us.load(Relaxed) as f64 / 1e6;
    for (suffix, value) in [
        (SampleSuffix::Sum, sum),
        (SampleSuffix::Count, cumulative as f64),
    ] {
        f(&SampleRef {
            desc,
            suffix,
            labels: &labels[..n],
            value,
        });
    }
}

/// The labels of a backend's series.
fn backend(t: &TaskStats) -> [(&'static str, &str); 2] {
    [
        ("app", t.app.app_id.as_str()),
        ("backend", t.task_id.as_str()),
    ]
}

/// Every sample of the exposition, family by family in [`FAMILIES`] order; `apps` and
/// `tasks` come sorted by id.
pub(crate) fn visit(
    apps: &[&AppStats],
    tasks: &[&TaskStats],
    unrouted: u64,
    f: &mut dyn FnMut(&SampleRef<'_>),
) {
    for app in apps {
        for (i, class) in CLASSES.iter().enumerate() {
            f(&SampleRef {
                desc: &FAMILIES[REQUESTS],
                suffix: SampleSuffix::None,
                labels: &[("app", app.app_id.as_str()), ("code", class)],
                value: app.codes.get(i) as f64,
            });
        }
    }
    for app in apps {
        let labels = [("app", app.app_id.as_str())];
        histogram(f, &FAMILIES[DURATION], &labels, &app.latency);
    }
    for t in tasks {
        let [app, task] = backend(t);
        for (i, class) in CLASSES.iter().enumerate() {
            f(&SampleRef {
                desc: &FAMILIES[BACKEND_REQUESTS],
                suffix: SampleSuffix::None,
                labels: &[app, task, ("code", class)],
                value: t.codes.get(i) as f64,
            });
        }
    }
    for t in tasks {
        histogram(f, &FAMILIES[BACKEND_DURATION], &backend(t), &t.latency);
    }
    for t in tasks {
        let [app, task] = backend(t);
        for (i, kind) in KINDS.iter().enumerate() {
            f(&SampleRef {
                desc: &FAMILIES[BACKEND_ERRORS],
                suffix: SampleSuffix::None,
                labels: &[app, task, ("kind", kind)],
                value: t.errors.0[i].load(Relaxed) as f64,
            });
        }
    }
    type Gauge = fn(&TaskStats) -> f64;
    let gauges: [(usize, Gauge); 3] = [
        (BACKEND_CONNECTIONS, |t| t.connections.load(Relaxed) as f64),
        (BACKEND_IN_FLIGHT, |t| t.in_flight() as f64),
        (BACKEND_UP, |t| f64::from(u8::from(t.is_up()))),
    ];
    for (desc, value) in gauges {
        for t in tasks {
            f(&SampleRef {
                desc: &FAMILIES[desc],
                suffix: SampleSuffix::None,
                labels: &backend(t),
                value: value(t),
            });
        }
    }
    f(&SampleRef {
        desc: &FAMILIES[UNROUTED],
        suffix: SampleSuffix::None,
        labels: &[],
        value: unrouted as f64,
    });
}

/// Renders the exposition (text format 0.0.4) from [`visit`] with the encoder the rest of
/// the server's `/metrics` uses: every family's header, even a family without samples,
/// then its samples.
pub(crate) fn render(apps: &[&AppStats], tasks: &[&TaskStats], unrouted: u64) -> String {
    let mut families: Vec<MetricFamily> = FAMILIES
        .iter()
        .map(|desc| MetricFamily {
            desc: desc.clone(),
            samples: Vec::new(),
        })
        .collect();
    visit(apps, tasks, unrouted, &mut |s| {
        let Some(i) = FAMILIES.iter().position(|d| std::ptr::eq(d, s.desc)) else {
            return;
        };
        families[i].samples.push(Sample {
            suffix: s.suffix,
            labels: s.labels.iter().copied().collect(),
            extra: Vec::new(),
            value: s.value,
            timestamp_ms: None,
        });
    });
    let mut out = String::with_capacity(4096 + 1024 * (apps.len() + tasks.len()));
    metrics::encode(&families, metrics::Format::Prometheus, &mut out);
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
        let app = std::sync::Arc::new(AppStats::new("/a"));
        let task = TaskStats::new("t1", app.clone());
        for h in [&app.latency, &task.latency] {
            h.observe(Duration::from_millis(3));
            h.observe(Duration::from_millis(30));
            h.observe(Duration::from_secs(20));
        }
        let out = render(&[&app], &[&task], 0);
        for labels in ["app=\"/a\"", "app=\"/a\",backend=\"t1\""] {
            let name = if labels.contains("backend") {
                "slipway_proxy_backend_request_duration_seconds"
            } else {
                "slipway_proxy_request_duration_seconds"
            };
            for (le, n) in [
                ("0.0025", 0),
                ("0.005", 1),
                ("0.05", 2),
                ("10", 2),
                ("+Inf", 3),
            ] {
                let line = format!("{name}_bucket{{{labels},le=\"{le}\"}} {n}\n");
                assert!(out.contains(&line), "{line} in {out}");
            }
            assert!(
                out.contains(&format!("{name}_sum{{{labels}}} 20.033\n")),
                "{out}"
            );
            assert!(
                out.contains(&format!("{name}_count{{{labels}}} 3\n")),
                "{out}"
            );
        }
    }

    #[test]
    fn le_labels_are_the_bucket_bounds_in_seconds() {
        for (bound, le) in BUCKETS_US.iter().zip(LE) {
            assert_eq!(format!("{}", *bound as f64 / 1e6), le);
        }
        assert_eq!(LE[BUCKETS_US.len()], "+Inf");
    }

    #[test]
    fn every_family_has_its_header_even_without_samples() {
        let out = render(&[], &[], 7);
        for desc in &FAMILIES {
            let kind = desc.kind.prometheus_name();
            assert!(
                out.contains(&format!("# TYPE {} {kind}\n", desc.name)),
                "{out}"
            );
        }
        assert!(
            out.ends_with("slipway_proxy_unrouted_requests_total 7\n"),
            "{out}"
        );
        let types = out.lines().filter(|l| l.starts_with("# TYPE")).count();
        assert_eq!(types, FAMILIES.len(), "{out}");
    }

    #[test]
    fn label_values_are_escaped() {
        let app = std::sync::Arc::new(AppStats::new("/a\"b"));
        let out = render(&[&app], &[], 0);
        assert!(
            out.contains("slipway_proxy_requests_total{app=\"/a\\\"b\",code=\"2xx\"} 0\n"),
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
    }
}
