//! The storage interface the evaluator reads from, plus an in-memory implementation for tests and benches.

use crate::labels::{Labels, Matcher};

/// One time series: its labels and its samples as (unix milliseconds, value), in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Labels including `__name__`.
    pub labels: Labels,
    /// Samples sorted by timestamp.
    pub samples: Vec<(i64, f64)>,
}

/// Prometheus' staleness marker: a NaN with this bit pattern ends a series at its timestamp.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether a sample value is Prometheus' staleness marker (not an ordinary NaN).
pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Failure reported by a [`Storage`] implementation.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(pub String);

/// What the evaluator will do with a selection (Prometheus' `SelectHints`): a storage
/// that keeps downsampled data for times whose raw samples are gone picks the aggregate
/// that answers `func` (bucket maxima for `max_over_time`, counter increases for
/// `rate`, …).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SelectHints<'a> {
    /// The function whose argument this selector is (`rate` in `rate(x[5m])`, `abs` in
    /// `abs(x)`); `None` for a selector outside any call.
    pub func: Option<&'a str>,
    /// The range of a range selector (`x[5m]`: 300,000), 0 for an instant selector.
    pub range_ms: i64,
    /// The step of the range query, 0 for an instant query.
    pub step_ms: i64,
}

/// Where the evaluator gets raw samples from.
pub trait Storage {
    /// Every series matching all `matchers`, with the samples whose timestamps lie in
    /// `start_ms..=end_ms` (samples outside are allowed and ignored). Series without
    /// samples in the window may be omitted.
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Series>, StorageError>;

    /// [`Storage::select`] with what the evaluator will do with the samples; what the
    /// evaluator calls. The default ignores the hints.
    fn select_hinted(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        hints: &SelectHints<'_>,
    ) -> Result<Vec<Series>, StorageError> {
        let _ = hints;
        self.select(matchers, start_ms, end_ms)
    }
}

/// A storage holding every series in memory; meant for tests, examples and small data.
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    series: Vec<Series>,
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// Appends a sample to the series with these labels, creating it if needed.
    /// Samples must be appended in time order per series.
    pub fn push(&mut self, labels: &Labels, t_ms: i64, v: f64) {
        match self.series.iter_mut().find(|s| &s.labels == labels) {
            Some(s) => s.samples.push((t_ms, v)),
            None => self.series.push(Series {
                labels: labels.clone(),
                samples: vec![(t_ms, v)],
            }),
        }
    }

    /// Adds a whole series (samples are sorted by time).
    pub fn add(&mut self, labels: Labels, mut samples: Vec<(i64, f64)>) {
        samples.sort_by_key(|s| s.0);
        self.series.push(Series { labels, samples });
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

impl Storage for MemoryStorage {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Series>, StorageError> {
        Ok(self
            .series
            .iter()
            .filter(|s| matchers.iter().all(|m| m.matches_labels(&s.labels)))
            .filter_map(|s| {
                let lo = s.samples.partition_point(|p| p.0 < start_ms);
                let hi = s.samples.partition_point(|p| p.0 <= end_ms);
                (lo < hi).then(|| Series {
                    labels: s.labels.clone(),
                    samples: s.samples[lo..hi].to_vec(),
                })
            })
            .collect())
    }
}
