//! Label sets (series identity) and label matchers with Prometheus semantics.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use regex_automata::meta::Regex;

use crate::error::{Error, Result};

/// The label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// A sorted set of `(name, value)` pairs identifying one series, `__name__` included.
///
/// Cloning is a reference-count increment and hashing writes one precomputed
/// `u64`, so a collector can build its label sets once and reuse them every tick.
/// Pairs with an empty value are dropped, as in Prometheus (an empty value means "absent").
#[derive(Clone)]
pub struct Labels {
    hash: u64,
    pairs: Arc<Pairs>,
}

/// The pairs of a label set in three allocations whatever their number, instead of two
/// strings per pair: a store holds one label set per series (issue 16: 18,500 series of
/// ~6 pairs took 10 MiB as strings, 4 MiB packed).
struct Pairs {
    /// Every name and value, back to back: `name0 value0 name1 value1 ...`.
    text: Box<str>,
    /// Where each of them ends in `text`.
    ends: Box<[u32]>,
}

impl Pairs {
    fn len(&self) -> usize {
        self.ends.len() / 2
    }

    fn get(&self, i: usize) -> (&str, &str) {
        let start = if i == 0 {
            0
        } else {
            self.ends[2 * i - 1] as usize
        };
        let name_end = self.ends[2 * i] as usize;
        let end = self.ends[2 * i + 1] as usize;
        (&self.text[start..name_end], &self.text[name_end..end])
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        (0..self.len()).map(|i| self.get(i))
    }
}

impl Labels {
    /// Builds a label set; names must be non-empty and unique.
    pub fn new<I, K, V>(pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self::build(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect::<Vec<(String, String)>>(),
        )
    }

    /// Builds `name{pairs...}`, copying each name and value once, into the label set.
    pub fn with_name<'a>(
        name: &'a str,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self> {
        Self::build(
            std::iter::once((METRIC_NAME, name))
                .chain(pairs)
                .collect::<Vec<_>>(),
        )
    }

    /// Builds a label set from pairs in any order (empty values are dropped).
    pub(crate) fn build<S: AsRef<str> + Ord>(mut v: Vec<(S, S)>) -> Result<Self> {
        v.retain(|(_, v)| !v.as_ref().is_empty());
        v.sort_unstable();
        for w in v.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(Error::InvalidLabels(format!(
                    "duplicate label name {:?}",
                    w[0].0.as_ref()
                )));
            }
        }
        if let Some((k, _)) = v.iter().find(|(k, _)| k.as_ref().is_empty()) {
            return Err(Error::InvalidLabels(format!(
                "empty label name {:?}",
                k.as_ref()
            )));
        }
        let mut text = String::with_capacity(
            v.iter()
                .map(|(k, val)| k.as_ref().len() + val.as_ref().len())
                .sum(),
        );
        let mut ends = Vec::with_capacity(2 * v.len());
        for (k, val) in &v {
            for part in [k.as_ref(), val.as_ref()] {
                text.push_str(part);
                let end = u32::try_from(text.len())
                    .map_err(|_| Error::InvalidLabels("label set longer than 4 GiB".into()))?;
                ends.push(end);
            }
        }
        Ok(Self {
            hash: hash_sorted(&v),
            pairs: Arc::new(Pairs {
                text: text.into_boxed_str(),
                ends: ends.into_boxed_slice(),
            }),
        })
    }

    /// Whether this label set is exactly `sorted` (pairs sorted by name, no empty value).
    pub(crate) fn eq_sorted(&self, sorted: &[(&str, &str)]) -> bool {
        self.len() == sorted.len() && self.iter().eq(sorted.iter().copied())
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        let (mut lo, mut hi) = (0, self.pairs.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (k, v) = self.pairs.get(mid);
            match k.cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(v),
            }
        }
        None
    }

    /// The metric name (`__name__`), if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter()
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True for the empty label set.
    pub fn is_empty(&self) -> bool {
        self.pairs.len() == 0
    }

    /// The precomputed hash.
    pub fn hash_value(&self) -> u64 {
        self.hash
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        crate::bits::put_uvarint(out, self.pairs.len() as u64);
        for (k, v) in self.iter() {
            crate::bits::put_bytes(out, k.as_bytes());
            crate::bits::put_bytes(out, v.as_bytes());
        }
    }

    pub(crate) fn decode(r: &mut crate::bits::ByteReader<'_>) -> Result<Self> {
        let n = r.len()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push((r.string()?, r.string()?));
        }
        Self::new(v).map_err(|_| Error::CorruptChunk("invalid label set"))
    }

    /// Whether both share one allocation of pairs (not just equal pairs).
    #[cfg(test)]
    pub(crate) fn same_allocation(&self, other: &Labels) -> bool {
        Arc::ptr_eq(&self.pairs, &other.pairs)
    }

    pub(crate) fn heap_size(&self) -> usize {
        // Three allocations (the `Arc`, the text, the ends) of ~16 bytes overhead each.
        std::mem::size_of::<Pairs>() + 16 + self.pairs.text.len() + self.pairs.ends.len() * 4 + 48
    }
}

/// The hash of the label set made of `sorted` (pairs sorted by name): what
/// [`Labels::hash_value`] gives for it, computed without building it.
pub(crate) fn hash_sorted<S: AsRef<str>>(sorted: &[(S, S)]) -> u64 {
    let mut h =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .build_hasher();
    for (k, v) in sorted {
        k.as_ref().hash(&mut h);
        v.as_ref().hash(&mut h);
    }
    h.finish()
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && (Arc::ptr_eq(&self.pairs, &other.pairs)
                || (self.pairs.ends == other.pairs.ends && self.pairs.text == other.pairs.text))
    }
}

impl Eq for Labels {}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name().unwrap_or("");
        write!(f, "{name}{{")?;
        let mut first = true;
        for (k, v) in self.iter().filter(|(k, _)| *k != METRIC_NAME) {
            if !first {
                write!(f, ",")?;
            }
            first = false;
            write!(f, "{k}={v:?}")?;
        }
        write!(f, "}}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A hasher that passes through the precomputed [`Labels`] hash (or any single `u64`).
#[derive(Default, Clone, Copy)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = u64::from(v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) type BuildPassThrough = std::hash::BuildHasherDefault<PassThrough>;

/// How a [`Matcher`] compares a label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~` (fully anchored regex)
    Re,
    /// `!~` (fully anchored regex)
    Nre,
}

/// A label matcher: `name op value`. A missing label matches as the empty string.
#[derive(Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value or pattern.
    pub value: String,
    re: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher; regex patterns are anchored at both ends.
    pub fn new(name: impl Into<String>, op: MatchOp, value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        let re = match op {
            MatchOp::Re | MatchOp::Nre => Some(Regex::new(&format!("^(?:{value})$")).map_err(
                |e| Error::InvalidRegex {
                    pattern: value.clone(),
                    reason: e.to_string(),
                },
            )?),
            MatchOp::Eq | MatchOp::Ne => None,
        };
        Ok(Self {
            name: name.into(),
            op,
            value,
            re,
        })
    }

    /// `name="value"`.
    pub fn eq(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: MatchOp::Eq,
            value: value.into(),
            re: None,
        }
    }

    /// `__name__="metric"`.
    pub fn metric(name: impl Into<String>) -> Self {
        Self::eq(METRIC_NAME, name)
    }

    /// Whether a label value (`""` for a missing label) satisfies the matcher.
    pub fn matches(&self, v: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Eq, _) => v == self.value,
            (MatchOp::Ne, _) => v != self.value,
            (MatchOp::Re, Some(re)) => re.is_match(v),
            (MatchOp::Nre, Some(re)) => !re.is_match(v),
            // Unreachable by construction; a matcher without its regex matches nothing.
            (MatchOp::Re | MatchOp::Nre, None) => false,
        }
    }

    /// Whether a label set satisfies the matcher.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::Nre => "!~",
        };
        write!(f, "{}{}{:?}", self.name, op, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sorted_and_empty_dropped() {
        let l = Labels::new([("b", "2"), ("a", "1"), ("c", "")]).unwrap();
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![("a", "1"), ("b", "2")]);
        assert_eq!(l, Labels::new([("a", "1"), ("b", "2")]).unwrap());
        assert!(Labels::new([("a", "1"), ("a", "2")]).is_err());
        assert_eq!(
            Labels::with_name("up", [("job", "x")]).unwrap().to_string(),
            "up{job=\"x\"}"
        );
    }

    #[test]
    fn matcher_semantics() {
        let l = Labels::with_name("up", [("job", "api")]).unwrap();
        let m = |n: &str, op, v: &str| Matcher::new(n, op, v).unwrap().matches_labels(&l);
        assert!(m("job", MatchOp::Eq, "api"));
        assert!(!m("job", MatchOp::Ne, "api"));
        assert!(m("job", MatchOp::Re, "a.i"));
        assert!(!m("job", MatchOp::Re, "a"), "regex is anchored");
        assert!(m("job", MatchOp::Nre, "a"));
        assert!(
            m("zone", MatchOp::Eq, ""),
            "missing label is the empty string"
        );
        assert!(m("zone", MatchOp::Re, ".*"));
        assert!(!m("zone", MatchOp::Re, ".+"));
        assert!(m("job", MatchOp::Re, "x|api"));
        assert!(Matcher::new("a", MatchOp::Re, "(").is_err());
    }
}
