//! Writing results to stdout and reading fields of server JSON without panicking.

use anyhow::Context;
use serde_json::Value;
use std::io::{self, Write};

/// Writes `bytes` to stdout and flushes. A closed pipe (`slipway ... | head`) is not an error.
pub(crate) fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}

/// Writes `text` and a newline to stdout.
pub(crate) fn line(text: &str) -> anyhow::Result<()> {
    let mut s = String::with_capacity(text.len() + 1);
    s.push_str(text);
    s.push('\n');
    write_stdout(s.as_bytes())
}

/// Writes `v` as pretty JSON to stdout.
pub(crate) fn json(v: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(v).context("cannot encode JSON")?;
    line(&text)
}

/// `v[key]` as a string slice; `""` when missing or not a string.
pub(crate) fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `v[key]` as an unsigned number (also accepts a non-negative float).
pub(crate) fn u64_of(v: &Value, key: &str) -> Option<u64> {
    let field = v.get(key)?;
    field
        .as_u64()
        .or_else(|| field.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// `v[key]` as an array slice; empty when missing or not an array.
pub(crate) fn arr_of<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A scalar JSON value as text: strings without quotes, `null` as `-`, whole floats
/// without their `.0` (`64.0` is `64`).
pub(crate) fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// `value` or `-` when it is empty.
pub(crate) fn or_dash(value: &str) -> String {
    if value.is_empty() {
        "-".to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accessors_tolerate_missing_and_wrong_types() {
        let v = json!({"s": "x", "n": 3, "f": 2.0, "neg": -1, "a": [1], "o": {}});
        assert_eq!(str_of(&v, "s"), "x");
        assert_eq!(str_of(&v, "n"), "");
        assert_eq!(u64_of(&v, "n"), Some(3));
        assert_eq!(u64_of(&v, "f"), Some(2));
        assert_eq!(u64_of(&v, "neg"), None);
        assert_eq!(u64_of(&v, "missing"), None);
        assert_eq!(arr_of(&v, "a").len(), 1);
        assert!(arr_of(&v, "o").is_empty());
        assert_eq!(scalar(&json!(null)), "-");
        assert_eq!(scalar(&json!("a")), "a");
        assert_eq!(scalar(&json!(1.5)), "1.5");
        assert_eq!(scalar(&json!(64.0)), "64");
        assert_eq!(scalar(&json!(-2)), "-2");
        assert_eq!(or_dash(""), "-");
    }
}
