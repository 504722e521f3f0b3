//! A small registry for the server's own metrics: counters, gauges and histograms with labels.
//!
//! Updates are lock-free atomics on a handle; looking a handle up by label values takes a read lock,
//! so hot paths should keep the handle ([`CounterVec::with`] once, then [`Counter::inc`] many times).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::MetricsError;
use crate::desc::{Desc, MetricType};
use crate::expo::{valid_label_name, valid_metric_name};
use crate::family::{Labels, MetricFamily, Sample, SampleSuffix};

/// An `f64` stored in an `AtomicU64`.
#[derive(Debug, Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    fn add(&self, d: f64) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(cur) + d).to_bits();
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }
}

/// One child series kind (counter, gauge or histogram state).
trait Child: Send + Sync + 'static {
    fn new(buckets: &Arc<[f64]>) -> Self;
    fn samples(&self, buckets: &[f64], labels: &Labels, out: &mut Vec<Sample>);
}

/// A monotonically increasing value.
#[derive(Debug, Clone)]
pub struct Counter(Arc<AtomicF64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.add(1.0);
    }
    /// Adds `v`; negative or NaN values are ignored (a counter never goes down).
    pub fn inc_by(&self, v: f64) {
        if v > 0.0 {
            self.0.add(v);
        }
    }
    /// The current value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

impl Child for AtomicF64 {
    fn new(_: &Arc<[f64]>) -> Self {
        AtomicF64::default()
    }
    fn samples(&self, _: &[f64], labels: &Labels, out: &mut Vec<Sample>) {
        out.push(plain(labels, self.get()));
    }
}

fn plain(labels: &Labels, value: f64) -> Sample {
    Sample {
        suffix: SampleSuffix::None,
        labels: labels.clone(),
        extra: Vec::new(),
        value,
        timestamp_ms: None,
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone)]
pub struct Gauge(Arc<AtomicF64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.set(v);
    }
    /// Adds `d` (may be negative).
    pub fn add(&self, d: f64) {
        self.0.add(d);
    }
    /// Adds one.
    pub fn inc(&self) {
        self.0.add(1.0);
    }
    /// Subtracts one.
    pub fn dec(&self) {
        self.0.add(-1.0);
    }
    /// The current value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// Histogram state: one count per bucket (non-cumulative, last is `+Inf`) and the sum.
#[derive(Debug)]
struct HistogramCore {
    counts: Box<[AtomicU64]>,
    sum: AtomicF64,
    buckets: Arc<[f64]>,
}

impl Child for HistogramCore {
    fn new(buckets: &Arc<[f64]>) -> Self {
        HistogramCore {
            counts: (0..=buckets.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicF64::default(),
            buckets: buckets.clone(),
        }
    }
    fn samples(&self, buckets: &[f64], labels: &Labels, out: &mut Vec<Sample>) {
        let mut cumulative = 0u64;
        let mut le = String::new();
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            le.clear();
            match buckets.get(i) {
                Some(&b) => crate::expo::write_value(b, &mut le),
                None => le.push_str("+Inf"),
            }
            out.push(Sample {
                suffix: SampleSuffix::Bucket,
                labels: labels.clone(),
                extra: vec![(Cow::Borrowed("le"), le.clone())],
                value: cumulative as f64,
                timestamp_ms: None,
            });
        }
        out.push(Sample {
            suffix: SampleSuffix::Sum,
            ..plain(labels, self.sum.get())
        });
        out.push(Sample {
            suffix: SampleSuffix::Count,
            ..plain(labels, cumulative as f64)
        });
    }
}

/// Observes values into cumulative buckets.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<HistogramCore>);

impl Histogram {
    /// Records one observation (NaN is ignored).
    pub fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let i = self.0.buckets.partition_point(|&b| b < v);
        if let Some(c) = self.0.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.0.sum.add(v);
    }
}

/// Children keyed by label values, with their label set.
type Children<T> = HashMap<Vec<String>, (Labels, Arc<T>)>;

/// Children of one family keyed by label values.
struct Family<T> {
    desc: Desc,
    label_names: Vec<String>,
    buckets: Arc<[f64]>,
    children: RwLock<Children<T>>,
}

impl<T: Child> Family<T> {
    fn child(&self, values: &[&str]) -> Result<Arc<T>, MetricsError> {
        if values.len() != self.label_names.len() {
            return Err(MetricsError::LabelCount {
                name: self.desc.name.to_string(),
                expected: self.label_names.len(),
                got: values.len(),
            });
        }
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        if let Some((_, c)) = self
            .children
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let mut map = self.children.write().unwrap_or_else(|p| p.into_inner());
        let labels: Labels = self
            .label_names
            .iter()
            .cloned()
            .zip(key.iter().cloned())
            .collect();
        let entry = map
            .entry(key)
            .or_insert_with(|| (labels, Arc::new(T::new(&self.buckets))));
        Ok(entry.1.clone())
    }

    fn remove(&self, values: &[&str]) -> bool {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        self.children
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key)
            .is_some()
    }
}

/// Object-safe view of a family for collection.
trait Collect: Send + Sync {
    fn desc(&self) -> &Desc;
    fn label_names(&self) -> &[String];
    fn buckets(&self) -> &[f64];
    fn collect(&self) -> MetricFamily;
    fn as_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync>;
}

impl<T: Child> Collect for Family<T> {
    fn desc(&self) -> &Desc {
        &self.desc
    }
    fn label_names(&self) -> &[String] {
        &self.label_names
    }
    fn buckets(&self) -> &[f64] {
        &self.buckets
    }
    fn collect(&self) -> MetricFamily {
        let map = self.children.read().unwrap_or_else(|p| p.into_inner());
        let mut children: Vec<_> = map.iter().collect();
        children.sort_by(|a, b| a.0.cmp(b.0));
        let mut samples = Vec::new();
        for (_, (labels, child)) in children {
            child.samples(&self.buckets, labels, &mut samples);
        }
        MetricFamily {
            desc: self.desc.clone(),
            samples,
        }
    }
    fn as_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

macro_rules! vec_type {
    ($(#[$m:meta])* $vec:ident, $handle:ident, $core:ty) => {
        $(#[$m])*
        #[derive(Clone)]
        pub struct $vec(Arc<Family<$core>>);

        impl $vec {
            /// The handle for these label values (in the order of the registered label names), created on first use.
            pub fn with(&self, values: &[&str]) -> Result<$handle, MetricsError> {
                self.0.child(values).map($handle)
            }
            /// Forgets the series with these label values (for example when a task is gone); true if it existed.
            pub fn remove(&self, values: &[&str]) -> bool {
                self.0.remove(values)
            }
        }

        impl std::fmt::Debug for $vec {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($vec)).field(&self.0.desc.name).finish()
            }
        }
    };
}

vec_type!(
    /// A counter family with labels.
    CounterVec, Counter, AtomicF64
);
vec_type!(
    /// A gauge family with labels.
    GaugeVec, Gauge, AtomicF64
);
vec_type!(
    /// A histogram family with labels.
    HistogramVec, Histogram, HistogramCore
);

/// The set of the server's own metric families. Cloning shares the registry.
#[derive(Clone, Default)]
pub struct Registry {
    families: Arc<RwLock<Vec<Arc<dyn Collect>>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("families", &self.descs().len())
            .finish()
    }
}

/// Default latency buckets in seconds (Prometheus client defaults).
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The unit implied by the name's suffix (`_seconds`, `_bytes`, with or without `_total`).
fn unit_of(name: &str) -> &'static str {
    let base = name.strip_suffix("_total").unwrap_or(name);
    ["seconds", "bytes", "ratio"]
        .into_iter()
        .find(|u| base.strip_suffix(u).is_some_and(|p| p.ends_with('_')))
        .unwrap_or("")
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    fn register<T: Child>(
        &self,
        name: &str,
        kind: MetricType,
        help: &str,
        label_names: &[&str],
        buckets: &[f64],
    ) -> Result<Arc<Family<T>>, MetricsError> {
        if !valid_metric_name(name) || (kind == MetricType::Counter && !name.ends_with("_total")) {
            return Err(MetricsError::InvalidName {
                what: "metric",
                name: name.to_owned(),
            });
        }
        for l in label_names {
            if !valid_label_name(l) || (kind == MetricType::Histogram && *l == "le") {
                return Err(MetricsError::InvalidName {
                    what: "label",
                    name: (*l).to_owned(),
                });
            }
        }
        if buckets.iter().any(|b| !b.is_finite()) || buckets.windows(2).any(|w| w[0] >= w[1]) {
            return Err(MetricsError::Buckets(name.to_owned()));
        }
        let mut families = self.families.write().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = families.iter().find(|f| f.desc().name == name) {
            let same = existing.desc().kind == kind
                && existing.desc().help == help
                && existing
                    .label_names()
                    .iter()
                    .map(String::as_str)
                    .eq(label_names.iter().copied())
                && existing.buckets() == buckets;
            return existing
                .clone()
                .as_any()
                .downcast::<Family<T>>()
                .ok()
                .filter(|_| same)
                .ok_or_else(|| MetricsError::Conflict(name.to_owned()));
        }
        let family = Arc::new(Family::<T> {
            desc: Desc {
                name: Cow::Owned(name.to_owned()),
                kind,
                help: Cow::Owned(help.to_owned()),
                unit: Cow::Borrowed(unit_of(name)),
            },
            label_names: label_names.iter().map(|l| (*l).to_owned()).collect(),
            buckets: buckets.into(),
            children: RwLock::new(HashMap::new()),
        });
        families.push(family.clone());
        Ok(family)
    }

    /// Registers (or returns the identical existing) counter family; `name` must end in `_total`.
    pub fn counter(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
    ) -> Result<CounterVec, MetricsError> {
        self.register(name, MetricType::Counter, help, label_names, &[])
            .map(CounterVec)
    }

    /// Registers (or returns the identical existing) gauge family.
    pub fn gauge(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
    ) -> Result<GaugeVec, MetricsError> {
        self.register(name, MetricType::Gauge, help, label_names, &[])
            .map(GaugeVec)
    }

    /// Registers (or returns the identical existing) histogram family with the given upper bounds
    /// (finite, strictly increasing; `+Inf` is implied). [`DEFAULT_BUCKETS`] suits request latencies in seconds.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        buckets: &[f64],
    ) -> Result<HistogramVec, MetricsError> {
        self.register(name, MetricType::Histogram, help, label_names, buckets)
            .map(HistogramVec)
    }

    /// A snapshot of every family in registration order, series sorted by label values.
    pub fn collect(&self) -> Vec<MetricFamily> {
        self.families
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|f| f.collect())
            .collect()
    }

    /// The descriptions of every registered family, for the metadata API.
    pub fn descs(&self) -> Vec<Desc> {
        self.families
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|f| f.desc().clone())
            .collect()
    }
}
