//! Prometheus text format 0.0.4 and OpenMetrics 1.0.0 encoders, and content negotiation from an `Accept` header.

use std::fmt::Write;

use crate::desc::MetricType;
use crate::family::{MetricFamily, SampleSuffix};

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4` (timestamps in milliseconds).
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0` (timestamps in seconds, `# EOF` at the end).
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` header value for a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Picks the format from an `Accept` header: OpenMetrics when it is asked for (version 1.0.0, 0.0.1 or none)
    /// with a quality at least that of any text alternative, the 0.0.4 text format otherwise.
    /// Ties between equal qualities go to the range listed first.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let mut best: Option<(f32, Format)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1.0f32;
            let mut version_ok = true;
            for p in parts {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.parse().unwrap_or(0.0),
                    "version" => version_ok = matches!(v, "1.0.0" | "0.0.1"),
                    _ => {}
                }
            }
            let format = match media.as_str() {
                "application/openmetrics-text" if version_ok => Format::OpenMetrics,
                "application/openmetrics-text" => continue,
                "text/plain" | "text/*" | "*/*" => Format::Prometheus,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, format));
            }
        }
        best.map_or(Format::Prometheus, |(_, f)| f)
    }
}

/// True if `name` matches `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// True if `name` matches `[a-zA-Z_][a-zA-Z0-9_]*` and does not start with `__` (reserved).
pub(crate) fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Turns any string into a valid label name, as cAdvisor does for `container_label_<key>`:
/// every character outside `[a-zA-Z0-9_]` becomes `_`, a leading digit gets a `_` prefix, and the reserved
/// `__` prefix is cut to one `_`.
pub fn sanitize_label_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 1);
    if raw.is_empty() || raw.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(
        raw.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
    );
    while out.starts_with("__") {
        out.remove(0);
    }
    out
}

/// Escapes a label value (`\` `"` and newline) into `out`.
pub fn escape_label_value(value: &str, out: &mut String) {
    if !value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Escapes help text: `\` and newline always, `"` in OpenMetrics as well.
fn escape_help(help: &str, format: Format, out: &mut String) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if format == Format::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Writes a float the way Prometheus reads it: integers without a fraction, `NaN`, `+Inf`, `-Inf`.
pub(crate) fn write_value(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v:?}");
    }
}

/// Appends the exposition of `families` in `format` to `out`.
///
/// Families are written in order, each with its metadata lines before its samples; families without samples
/// still get their metadata. Counters are written as named in the model in 0.0.4; in OpenMetrics the family
/// name drops `_total` and every counter sample carries it. A counter named without `_total` (cAdvisor's
/// `container_memory_failcnt`) is an `unknown` family in OpenMetrics, so a Prometheus that scrapes
/// OpenMetrics (its first choice) stores it under the same name as from cAdvisor. OpenMetrics output ends
/// with `# EOF`.
pub fn encode(families: &[MetricFamily], format: Format, out: &mut String) {
    for family in families {
        let desc = &family.desc;
        let name = desc.name.as_ref();
        let (family_name, sample_base, kind) = match (format, desc.kind) {
            (Format::OpenMetrics, MetricType::Counter) => match name.strip_suffix("_total") {
                Some(base) => (base, "_total", desc.kind),
                None => (name, "", MetricType::Unknown),
            },
            _ => (name, "", desc.kind),
        };
        match format {
            Format::Prometheus => {
                if !desc.help.is_empty() {
                    let _ = write!(out, "# HELP {family_name} ");
                    escape_help(&desc.help, format, out);
                    out.push('\n');
                }
                let _ = writeln!(out, "# TYPE {family_name} {}", desc.kind.prometheus_name());
            }
            Format::OpenMetrics => {
                let _ = writeln!(out, "# TYPE {family_name} {}", kind.openmetrics_name());
                let unit = desc.unit.as_ref();
                if !unit.is_empty()
                    && family_name
                        .strip_suffix(unit)
                        .is_some_and(|p| p.ends_with('_'))
                {
                    let _ = writeln!(out, "# UNIT {family_name} {unit}");
                }
                if !desc.help.is_empty() {
                    let _ = write!(out, "# HELP {family_name} ");
                    escape_help(&desc.help, format, out);
                    out.push('\n');
                }
            }
        }
        for s in &family.samples {
            out.push_str(family_name);
            match s.suffix {
                SampleSuffix::None => out.push_str(sample_base),
                other => out.push_str(other.as_str()),
            }
            let mut first = true;
            for (k, v) in s.label_pairs() {
                out.push(if first { '{' } else { ',' });
                first = false;
                out.push_str(k);
                out.push_str("=\"");
                escape_label_value(v, out);
                out.push('"');
            }
            if !first {
                out.push('}');
            }
            out.push(' ');
            write_value(s.value, out);
            if let Some(ts) = s.timestamp_ms {
                match format {
                    Format::Prometheus => {
                        let _ = write!(out, " {ts}");
                    }
                    Format::OpenMetrics => {
                        let sign = if ts < 0 { "-" } else { "" };
                        let abs = ts.unsigned_abs();
                        let (secs, ms) = (abs / 1000, abs % 1000);
                        if ms == 0 {
                            let _ = write!(out, " {sign}{secs}");
                        } else {
                            let _ = write!(out, " {sign}{secs}.{ms:03}");
                        }
                    }
                }
            }
            out.push('\n');
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
}
