//! Label sets and label matchers, the vocabulary shared by the parser, the evaluator and storage.

use std::fmt;
use std::sync::Arc;

use crate::Error;

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// A set of labels, sorted by name, with unique names and no empty values (as in Prometheus).
/// Cloning is cheap (shared, copied on write).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<Vec<(String, String)>>);

impl Labels {
    /// Builds a label set; later duplicates win and empty values are dropped.
    pub fn new<I, K, V>(pairs: I) -> Labels
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut labels = Labels::default();
        for (k, v) in pairs {
            labels.set(k.into(), v.into());
        }
        labels
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).ok().map(|i| self.0[i].1.as_str())
    }

    /// The metric name (`__name__`), if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(&mut self, name: String, value: String) {
        match self.position(&name) {
            Ok(i) if value.is_empty() => {
                Arc::make_mut(&mut self.0).remove(i);
            }
            Ok(i) => Arc::make_mut(&mut self.0)[i].1 = value,
            Err(_) if value.is_empty() => {}
            Err(i) => Arc::make_mut(&mut self.0).insert(i, (name, value)),
        }
    }

    /// Removes `name` if present.
    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.position(name) {
            Arc::make_mut(&mut self.0).remove(i);
        }
    }

    /// A copy without the metric name.
    pub fn without_metric_name(&self) -> Labels {
        self.without(&[])
    }

    /// A copy without `names` and without the metric name.
    pub fn without(&self, names: &[String]) -> Labels {
        Labels(Arc::new(
            self.0
                .iter()
                .filter(|(k, _)| k != METRIC_NAME && !names.iter().any(|n| n == k))
                .cloned()
                .collect(),
        ))
    }

    /// A copy keeping only `names`.
    pub fn only(&self, names: &[String]) -> Labels {
        Labels(Arc::new(
            self.0
                .iter()
                .filter(|(k, _)| names.iter().any(|n| n == k))
                .cloned()
                .collect(),
        ))
    }

    /// The (name, value) pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }
}

impl fmt::Display for Labels {
    /// Prometheus' rendering: `name{a="b", c="d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for (k, v) in self.iter().filter(|(k, _)| *k != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{k}={}", crate::ast::quote(v))?;
        }
        f.write_str("}")
    }
}

/// How a matcher compares a label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (fully anchored)
    Regex,
    /// `!~` (fully anchored)
    NotRegex,
}

impl MatchOp {
    /// The operator as written in PromQL.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// A label matcher such as `job=~"api.*"`; a missing label matches as the empty string.
#[derive(Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Comparison.
    pub op: MatchOp,
    /// Value or regular expression as written.
    pub value: String,
    re: Option<regex::Regex>,
}

impl Matcher {
    /// Builds a matcher, compiling regular expressions anchored as Prometheus does (`^(?s:re)$`).
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, Error> {
        let value = value.into();
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(anchored_regex(&value)?),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name: name.into(),
            op,
            value,
            re,
        })
    }

    /// Shorthand for an `=` matcher.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            re: None,
        }
    }

    /// Whether a label value (empty when the label is missing) matches.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Equal, _) => self.value == value,
            (MatchOp::NotEqual, _) => self.value != value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }

    /// Whether the series with these labels is selected by this matcher.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

/// Compiles `re` the way Prometheus anchors label regular expressions.
pub(crate) fn anchored_regex(re: &str) -> Result<regex::Regex, Error> {
    regex::Regex::new(&format!("^(?s:{re})$")).map_err(|e| {
        Error::BadData(format!(
            "invalid regular expression {re:?}: {}",
            first_line(&e.to_string())
        ))
    })
}

/// The last line of the regex crate's multi-line message, without its `error: ` prefix.
fn first_line(s: &str) -> String {
    let last = s.lines().last().unwrap_or(s).trim();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.name,
            self.op.as_str(),
            crate::ast::quote(&self.value)
        )
    }
}
