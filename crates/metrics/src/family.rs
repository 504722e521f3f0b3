//! The exposition data model: label sets, samples, metric families, and the [`Sink`] collectors write into.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::desc::Desc;

/// An immutable, cheaply cloned label set (one allocation shared by every sample of a target).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels(Arc<[(String, String)]>);

impl Labels {
    /// Builds a label set; pairs keep their order.
    pub fn new(pairs: Vec<(String, String)>) -> Labels {
        Labels(pairs.into())
    }

    /// The pairs, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Labels {
        Labels::new(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// Which series of a family a sample belongs to (histograms have three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleSuffix {
    /// The family's own name (counters: already ending in `_total`).
    None,
    /// `<name>_bucket` with an `le` label in `extra`.
    Bucket,
    /// `<name>_sum`.
    Sum,
    /// `<name>_count`.
    Count,
}

impl SampleSuffix {
    /// The text appended to the family name.
    pub fn as_str(self) -> &'static str {
        match self {
            SampleSuffix::None => "",
            SampleSuffix::Bucket => "_bucket",
            SampleSuffix::Sum => "_sum",
            SampleSuffix::Count => "_count",
        }
    }
}

/// One sample as a source that keeps its own counters hands it out (the edge proxy):
/// borrowed, so a visitor that remembers the series it saw builds nothing for a series it
/// sees again.
#[derive(Debug, Clone, Copy)]
pub struct SampleRef<'a> {
    /// The family.
    pub desc: &'static Desc,
    /// Which series of the family.
    pub suffix: SampleSuffix,
    /// All label pairs, in exposition order.
    pub labels: &'a [(&'static str, &'a str)],
    /// The value.
    pub value: f64,
}

/// One sample: shared labels, sample-specific labels (`cpu`, `interface`, `le`, ...), value, optional timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Which series of the family.
    pub suffix: SampleSuffix,
    /// Labels shared with other samples (a target's `app`, `task`, `id`, `name`, `image`, ...).
    pub labels: Labels,
    /// Labels of this sample only, written after `labels`.
    pub extra: Vec<(Cow<'static, str>, String)>,
    /// The value.
    pub value: f64,
    /// Milliseconds since the Unix epoch, if the sample carries an explicit timestamp.
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    /// All label pairs of the sample, shared ones first.
    pub fn label_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.labels
            .pairs()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(self.extra.iter().map(|(k, v)| (k.as_ref(), v.as_str())))
    }
}

/// A metric family: its description and its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    /// Name, type, help and unit.
    pub desc: Desc,
    /// Samples; the encoder writes them in this order.
    pub samples: Vec<Sample>,
}

impl MetricFamily {
    /// The name a sample is stored and queried under (Prometheus' naming: the family name plus `_bucket`,
    /// `_sum` or `_count` for histograms; counters as named in the model, with `_total`).
    pub fn sample_name(&self, sample: &Sample) -> Cow<'_, str> {
        match sample.suffix {
            SampleSuffix::None => Cow::Borrowed(self.desc.name.as_ref()),
            other => Cow::Owned(format!("{}{}", self.desc.name, other.as_str())),
        }
    }
}

/// Where collectors write samples. Implement it to feed a store directly; [`Families`] builds families for exposition.
pub trait Sink {
    /// One sample of `desc` with the shared `labels` plus `extra` pairs.
    fn emit(
        &mut self,
        desc: &'static Desc,
        labels: &Labels,
        extra: &[(&'static str, &str)],
        value: f64,
    );
}

/// A [`Sink`] that groups samples into [`MetricFamily`]s in first-seen order.
#[derive(Debug, Default)]
pub struct Families {
    families: Vec<MetricFamily>,
    index: HashMap<String, usize>,
    timestamp_ms: Option<i64>,
    /// The family of the last sample: targets emit their families in the same order every time, so the
    /// next sample's family is usually this one or the next, found without hashing.
    cursor: usize,
}

impl Families {
    /// An empty set.
    pub fn new() -> Families {
        Families::default()
    }

    /// Timestamp given to samples emitted from now on (`None`: no explicit timestamp).
    pub fn set_timestamp_ms(&mut self, ts: Option<i64>) {
        self.timestamp_ms = ts;
    }

    /// Adds a sample to the family `desc` (created on first use; a later `desc` with the same name joins it).
    pub fn push(&mut self, desc: &Desc, sample: Sample) {
        let name = desc.name.as_ref();
        let predicted = [self.cursor, self.cursor + 1]
            .into_iter()
            .find(|&i| self.families.get(i).is_some_and(|f| f.desc.name == name));
        let i = match predicted.or_else(|| self.index.get(name).copied()) {
            Some(i) => i,
            None => {
                self.families.push(MetricFamily {
                    desc: desc.clone(),
                    samples: Vec::new(),
                });
                self.index
                    .insert(desc.name.to_string(), self.families.len() - 1);
                self.families.len() - 1
            }
        };
        self.families[i].samples.push(sample);
        self.cursor = i;
    }

    /// Appends whole families (for example from [`crate::Registry::collect`]); a family whose name is already
    /// present has its samples appended to that family.
    pub fn extend(&mut self, families: impl IntoIterator<Item = MetricFamily>) {
        for f in families {
            match self.index.get(f.desc.name.as_ref()) {
                Some(&i) => self.families[i].samples.extend(f.samples),
                None => {
                    self.index
                        .insert(f.desc.name.to_string(), self.families.len());
                    self.families.push(f);
                }
            }
        }
    }

    /// The families collected so far.
    pub fn families(&self) -> &[MetricFamily] {
        &self.families
    }

    /// Takes the families, leaving the set empty.
    pub fn into_families(self) -> Vec<MetricFamily> {
        self.families
    }

    /// Total number of samples.
    pub fn sample_count(&self) -> usize {
        self.families.iter().map(|f| f.samples.len()).sum()
    }

    /// Removes all families.
    pub fn clear(&mut self) {
        self.families.clear();
        self.index.clear();
        self.cursor = 0;
    }
}

impl Sink for Families {
    fn emit(
        &mut self,
        desc: &'static Desc,
        labels: &Labels,
        extra: &[(&'static str, &str)],
        value: f64,
    ) {
        let sample = Sample {
            suffix: SampleSuffix::None,
            labels: labels.clone(),
            extra: extra
                .iter()
                .map(|&(k, v)| (Cow::Borrowed(k), v.to_owned()))
                .collect(),
            value,
            timestamp_ms: self.timestamp_ms,
        };
        self.push(desc, sample);
    }
}
