//! Metric collection (cgroup v1/v2 tasks, host /proc) and Prometheus/OpenMetrics text exposition.
//!
//! The crate has four parts that share one data model ([`MetricFamily`], [`Sample`], [`Desc`]):
//!
//! - [`TaskCollector`] reads a task's cgroup files (v1 or v2) and `/proc/PID/net/dev` and emits
//!   cAdvisor's series (`container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`, ...);
//! - [`HostCollector`] reads `/proc` and `statvfs` and emits node-exporter's series (`node_cpu_seconds_total`, ...);
//! - [`Registry`] holds the server's own counters, gauges and histograms;
//! - [`encode`] renders families as Prometheus text 0.0.4 or OpenMetrics 1.0.0 ([`Format::negotiate`] picks one).
//!
//! Collectors write into a [`Sink`]; [`Families`] is the sink that groups samples into families for exposition,
//! and a storage engine can implement [`Sink`] itself to avoid the intermediate families.
//! A file that is missing or unreadable makes its series absent for that round; it never panics or fails the round
//! ([`CollectStats`] counts why). [`names`] lists every series with its type, unit and help for the metadata API.
//!
//! A collection loop (reads are of cgroupfs and procfs and do not block on I/O; run it on a blocking thread):
//!
//! ```text
//! metrics::raise_fd_limit();                       // once at start: targets keep their files open
//! let mounts = CgroupMounts::detect()?;
//! let mut tasks = TaskCollector::new();
//! let mut host = HostCollector::new();
//! // per launched task (launcher: "slipway/<task-id>"; Docker: metrics::docker_cgroup(&mounts, id)):
//! let target = TaskTarget::new(labels /* app, task, env, version, id, name, image */, mounts.paths(rel), Some(pid));
//! loop {                                           // every --metrics-interval
//!     let mut fams = Families::new();              // or the store's own Sink
//!     fams.set_timestamp_ms(Some(now_ms));
//!     for t in &mut targets { tasks.collect(t, now_s, &mut fams); }
//!     host.collect(now_s, &mut fams);
//!     fams.extend(registry.collect());
//!     // store the samples; for GET /metrics:
//!     let format = Format::negotiate(accept_header);
//!     encode(fams.families(), format, &mut body);  // Content-Type: format.content_type()
//! }
//! ```

mod cgroup;
mod desc;
mod expo;
mod family;
mod files;
mod host;
pub mod names;
mod parse;
pub mod reader;
mod registry;
mod task;

pub use cgroup::{CgroupMounts, CgroupPaths, V1Dirs, docker_cgroup};
pub use desc::{Desc, MetricType};
pub use expo::{Format, encode, escape_label_value, sanitize_label_name};
pub use family::{Families, Labels, MetricFamily, Sample, SampleRef, SampleSuffix, Sink};
pub use files::{CollectStats, raise_fd_limit};
pub use host::{HostCollector, HostPaths};
pub use registry::{
    Counter, CounterVec, DEFAULT_BUCKETS, Gauge, GaugeVec, Histogram, HistogramVec, Registry,
};
pub use task::{TaskCollector, TaskTarget};

/// Errors of this crate. Collection itself never fails; these come from setup, registration and text parsing.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A file needed for setup (such as `/proc/mounts`) could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// No cgroup hierarchy usable for metrics is mounted.
    #[error("no cgroup hierarchy found: {0}")]
    NoCgroups(String),
    /// A metric or label name is not valid in the Prometheus data model.
    #[error("invalid {what} name {name:?}")]
    InvalidName {
        /// "metric" or "label".
        what: &'static str,
        /// The offending name.
        name: String,
    },
    /// A metric was registered twice with different types, help or label names.
    #[error("metric {0} is already registered with a different type, help or label names")]
    Conflict(String),
    /// The number of label values differs from the number of label names.
    #[error("metric {name} has {expected} label names but {got} values were given")]
    LabelCount {
        /// The metric.
        name: String,
        /// Number of label names.
        expected: usize,
        /// Number of values given.
        got: usize,
    },
    /// Histogram buckets must be finite and strictly increasing.
    #[error("histogram {0} has buckets that are not finite and strictly increasing")]
    Buckets(String),
    /// Exposition text that does not follow the format.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}
