//! A small reader of the Prometheus 0.0.4 and OpenMetrics 1.0 text formats that checks the rules this crate's
//! encoder must follow (valid names, escapes, metadata before samples, contiguous families, `_total`, `# EOF`).
//! Tests use it on our output; it can also read another exporter's text.

use crate::MetricsError;
use crate::expo::{Format, valid_label_name, valid_metric_name};

/// A family as read back: metadata and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFamily {
    /// The family name (OpenMetrics: without `_total` for counters).
    pub name: String,
    /// The `# TYPE` word (`untyped`/`unknown` when there was none).
    pub kind: String,
    /// `# HELP` text, unescaped.
    pub help: Option<String>,
    /// `# UNIT` (OpenMetrics only).
    pub unit: Option<String>,
    /// The samples.
    pub samples: Vec<ParsedSample>,
}

/// A sample as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    /// Full sample name (`x_total`, `x_bucket`, ...).
    pub name: String,
    /// Label pairs in order, values unescaped.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// The timestamp as written (milliseconds in 0.0.4, seconds in OpenMetrics).
    pub timestamp: Option<f64>,
}

impl ParsedSample {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn err(line: usize, message: impl Into<String>) -> MetricsError {
    MetricsError::Syntax {
        line,
        message: message.into(),
    }
}

/// Suffixes a sample may add to its family's name, by type and format.
fn suffixes(kind: &str, format: Format) -> &'static [&'static str] {
    match (kind, format) {
        ("counter", Format::OpenMetrics) => &["_total", "_created"],
        ("histogram", _) => &["_bucket", "_sum", "_count", "_created"],
        ("summary", _) => &["", "_sum", "_count", "_created"],
        _ => &[""],
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

/// Unescapes a help text.
fn unescape(s: &str, line: usize) -> Result<String, MetricsError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') => out.push('"'),
            other => return Err(err(line, format!("bad escape \\{}", other.unwrap_or(' ')))),
        }
    }
    Ok(out)
}

/// A sample line's name, labels and the text after them.
type Series<'a> = (String, Vec<(String, String)>, &'a str);

/// Parses `name{a="b",...}` and returns the name, labels and the rest of the line.
fn parse_series(s: &str, line: usize) -> Result<Series<'_>, MetricsError> {
    let end = s
        .find(['{', ' '])
        .ok_or_else(|| err(line, "sample without value"))?;
    let name = &s[..end];
    if !valid_metric_name(name) {
        return Err(err(line, format!("invalid metric name {name:?}")));
    }
    let mut rest = &s[end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find('=').ok_or_else(|| err(line, "label without ="))?;
            let lname = &rest[..eq];
            if !valid_label_name(lname) && lname != "le" && lname != "quantile" {
                return Err(err(line, format!("invalid label name {lname:?}")));
            }
            if labels.iter().any(|(k, _): &(String, String)| k == lname) {
                return Err(err(line, format!("duplicate label {lname:?}")));
            }
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or_else(|| err(line, "label value not quoted"))?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let close = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        _ => return Err(err(line, "bad escape in label value")),
                    },
                    Some((_, '\n')) => return Err(err(line, "newline in label value")),
                    Some((_, c)) => value.push(c),
                    None => return Err(err(line, "unterminated label value")),
                }
            };
            labels.push((lname.to_owned(), value));
            rest = &rest[close + 1..];
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if !rest.starts_with('}') {
                return Err(err(line, "expected , or } after label value"));
            }
        }
    }
    Ok((name.to_owned(), labels, rest))
}

/// Reads an exposition in `format`, checking it line by line; the first violation is the error.
pub fn parse(text: &str, format: Format) -> Result<Vec<ParsedFamily>, MetricsError> {
    let om = format == Format::OpenMetrics;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(err(
            text.lines().count(),
            "text does not end with a newline",
        ));
    }
    let mut families: Vec<ParsedFamily> = Vec::new();
    let mut closed: Vec<String> = Vec::new();
    let mut eof = false;
    for (i, l) in text.lines().enumerate() {
        let line = i + 1;
        if eof {
            return Err(err(line, "content after # EOF"));
        }
        if om && l == "# EOF" {
            eof = true;
            continue;
        }
        if l.is_empty() {
            if om {
                return Err(err(line, "empty line"));
            }
            continue;
        }
        if let Some(c) = l.strip_prefix('#') {
            let mut parts = c.strip_prefix(' ').unwrap_or(c).splitn(3, ' ');
            let keyword = parts.next().unwrap_or("");
            if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
                if om {
                    return Err(err(line, "comment lines are not allowed in OpenMetrics"));
                }
                continue;
            }
            let name = parts
                .next()
                .ok_or_else(|| err(line, "metadata without a name"))?;
            let arg = parts.next().unwrap_or("");
            if !valid_metric_name(name) {
                return Err(err(line, format!("invalid metric name {name:?}")));
            }
            if keyword == "UNIT" && !om {
                continue;
            }
            let starts_new = families
                .last()
                .is_none_or(|f| f.name != name || !f.samples.is_empty());
            if starts_new {
                if closed.iter().any(|n| n == name) || families.iter().any(|f| f.name == name) {
                    return Err(err(
                        line,
                        format!("metadata for {name} after its samples or twice"),
                    ));
                }
                if let Some(f) = families.last() {
                    closed.push(f.name.clone());
                }
                let kind = if om { "unknown" } else { "untyped" };
                families.push(ParsedFamily {
                    name: name.to_owned(),
                    kind: kind.to_owned(),
                    help: None,
                    unit: None,
                    samples: Vec::new(),
                });
            }
            let Some(f) = families.last_mut() else {
                return Err(err(line, "metadata without a family"));
            };
            match keyword {
                "HELP" => {
                    if f.help.is_some() {
                        return Err(err(line, "second HELP"));
                    }
                    f.help = Some(unescape(arg, line)?);
                }
                "TYPE" => {
                    let ok: &[&str] = if om {
                        &[
                            "counter",
                            "gauge",
                            "histogram",
                            "gaugehistogram",
                            "summary",
                            "info",
                            "stateset",
                            "unknown",
                        ]
                    } else {
                        &["counter", "gauge", "histogram", "summary", "untyped"]
                    };
                    if !ok.contains(&arg) {
                        return Err(err(line, format!("unknown type {arg:?}")));
                    }
                    f.kind = arg.to_owned();
                }
                _ => {
                    if !name.strip_suffix(arg).is_some_and(|p| p.ends_with('_')) {
                        return Err(err(line, format!("unit {arg:?} is not a suffix of {name}")));
                    }
                    f.unit = Some(arg.to_owned());
                }
            }
            continue;
        }
        let (name, labels, rest) = parse_series(l, line)?;
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| err(line, "expected a space before the value"))?;
        let mut fields = rest.split(' ');
        let value_text = fields.next().unwrap_or("");
        let value = parse_value(value_text)
            .ok_or_else(|| err(line, format!("bad value {value_text:?}")))?;
        let timestamp = match fields.next() {
            None => None,
            Some(t) if om => Some(
                t.parse::<f64>()
                    .map_err(|_| err(line, format!("bad timestamp {t:?}")))?,
            ),
            Some(t) => Some(
                t.parse::<i64>()
                    .map_err(|_| err(line, format!("bad timestamp {t:?}")))? as f64,
            ),
        };
        if fields.next().is_some() {
            return Err(err(line, "trailing fields"));
        }
        let belongs = |f: &ParsedFamily| {
            suffixes(&f.kind, format)
                .iter()
                .any(|s| name.strip_suffix(s) == Some(f.name.as_str()))
        };
        let current = families.last().is_some_and(belongs);
        if !current {
            if families.iter().any(|f| f.name == name) {
                return Err(err(
                    line,
                    format!("sample name {name} does not fit the type of its family"),
                ));
            }
            if families.iter().any(belongs) || closed.contains(&name) {
                return Err(err(line, format!("samples of {name} are not contiguous")));
            }
            if let Some(f) = families.last() {
                closed.push(f.name.clone());
            }
            families.push(ParsedFamily {
                name: name.clone(),
                kind: if om { "unknown" } else { "untyped" }.to_owned(),
                help: None,
                unit: None,
                samples: Vec::new(),
            });
        }
        let Some(f) = families.last_mut() else {
            return Err(err(line, "sample without a family"));
        };
        if f.kind == "histogram"
            && name.ends_with("_bucket")
            && !labels.iter().any(|(k, _)| k == "le")
        {
            return Err(err(line, "bucket without le"));
        }
        f.samples.push(ParsedSample {
            name,
            labels,
            value,
            timestamp,
        });
    }
    if om && !eof {
        return Err(err(text.lines().count(), "missing # EOF"));
    }
    Ok(families)
}
