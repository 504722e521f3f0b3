//! The line protocol parser: one pass over bytes, borrowing from the input unless a name is escaped.

use std::borrow::Cow;
use std::ops::Range;

use crate::{Error, FieldValue, MAX_NANOS, MIN_NANOS, Point, PointRef, Precision};

type Tag<'a> = (Cow<'a, str>, Cow<'a, str>);
type Field<'a> = (Cow<'a, str>, FieldValue<'a>);

/// Where one good line's tags and fields sit in the batch's shared vectors.
#[derive(Clone, Debug, PartialEq)]
struct Entry<'a> {
    measurement: Cow<'a, str>,
    tags: Range<usize>,
    fields: Range<usize>,
    timestamp: Option<i64>,
}

/// The result of parsing a request body: the good points and one error per bad line.
///
/// Tags and fields of all points live in two shared vectors (no allocation per line);
/// [`Batch::points`] hands out borrowed views. InfluxDB 1.x writes the good points and
/// answers 400 with `partial write: ...`; 2.x rejects the batch. Both rules can be applied
/// from this.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch<'a> {
    entries: Vec<Entry<'a>>,
    tags: Vec<Tag<'a>>,
    fields: Vec<Field<'a>>,
    /// One error per bad line, in line order.
    pub errors: Vec<Error>,
}

impl<'a> Batch<'a> {
    /// Number of good points.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no line parsed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `i`-th good point.
    pub fn get(&self, i: usize) -> Option<PointRef<'_>> {
        self.entries.get(i).map(|e| self.view(e))
    }

    /// The good points, in line order.
    pub fn points(&self) -> impl ExactSizeIterator<Item = PointRef<'_>> + '_ {
        self.entries.iter().map(|e| self.view(e))
    }

    fn view<'b>(&'b self, e: &'b Entry<'a>) -> PointRef<'b> {
        PointRef {
            measurement: &e.measurement,
            tags: self.tags.get(e.tags.clone()).unwrap_or_default(),
            fields: self.fields.get(e.fields.clone()).unwrap_or_default(),
            timestamp: e.timestamp,
        }
    }

    /// The good points as owned [`Point`]s (names stay borrowed from the body where they can).
    pub fn into_points(self) -> Vec<Point<'a>> {
        let mut tags = self.tags.into_iter();
        let mut fields = self.fields.into_iter();
        self.entries
            .into_iter()
            .map(|e| Point {
                measurement: e.measurement,
                tags: tags.by_ref().take(e.tags.len()).collect(),
                fields: fields.by_ref().take(e.fields.len()).collect(),
                timestamp: e.timestamp,
            })
            .collect()
    }

    /// The error string InfluxDB 1.x's `/write` answers with, if any line was bad:
    /// all messages joined by newlines, wrapped in `partial write: ... dropped=0`
    /// when some points were good.
    pub fn influx1_error(&self) -> Option<String> {
        if self.errors.is_empty() {
            return None;
        }
        let joined = self
            .errors
            .iter()
            .map(Error::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        Some(if self.entries.is_empty() {
            joined
        } else {
            format!("partial write: {joined} dropped=0")
        })
    }
}

/// Parses a whole body; comments (`#`) and blank lines are skipped, `\r\n` endings accepted.
pub fn parse_batch(input: &str, precision: Precision) -> Batch<'_> {
    let mut batch = Batch::default();
    for (i, line) in input.split('\n').enumerate() {
        match parse_one(line, precision, &mut batch.tags, &mut batch.fields) {
            Ok(Some(e)) => {
                if batch.entries.is_empty() {
                    // Size the shared vectors once from the first point, so they rarely regrow.
                    let lines = input.len() / (line.len() + 1) * 5 / 4 + 1;
                    batch.entries.reserve(lines);
                    batch.tags.reserve(lines * e.tags.len());
                    batch.fields.reserve(lines * e.fields.len());
                }
                batch.entries.push(e);
            }
            Ok(None) => {}
            Err(reason) => batch.errors.push(Error::Line {
                line: i + 1,
                text: error_text(line),
                reason,
            }),
        }
    }
    batch
}

/// Parses a single line; `Ok(None)` for blank lines and comments.
pub fn parse_line(line: &str, precision: Precision) -> Result<Option<Point<'_>>, Error> {
    let (mut tags, mut fields) = (Vec::new(), Vec::new());
    match parse_one(line, precision, &mut tags, &mut fields) {
        Ok(Some(e)) => Ok(Some(Point {
            measurement: e.measurement,
            tags,
            fields,
            timestamp: e.timestamp,
        })),
        Ok(None) => Ok(None),
        Err(reason) => Err(Error::Line {
            line: 1,
            text: error_text(line),
            reason,
        }),
    }
}

/// Parses one line, appending its tags and fields; on error nothing stays appended.
fn parse_one<'a>(
    line: &'a str,
    precision: Precision,
    tags: &mut Vec<Tag<'a>>,
    fields: &mut Vec<Field<'a>>,
) -> Result<Option<Entry<'a>>, String> {
    let (t0, f0) = (tags.len(), fields.len());
    let parsed = parse_into(line, precision, tags, fields);
    if parsed.is_err() {
        tags.truncate(t0);
        fields.truncate(f0);
    }
    parsed
}

fn trim_end(line: &str) -> &str {
    line.trim_end_matches(['\r', ' '])
}

/// The line as InfluxDB quotes it in errors: without leading whitespace or the `\r` of CRLF.
fn error_text(line: &str) -> String {
    line.trim_start_matches([' ', '\t'])
        .trim_end_matches('\r')
        .to_string()
}

/// Chars a backslash escapes in measurements, tag keys/values and field keys.
fn escapable(c: u8) -> bool {
    matches!(c, b',' | b' ' | b'=' | b'\\')
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Non-zero when any of the 8 bytes in `x` equals `c` (SWAR).
#[inline]
fn has_byte(x: u64, c: u8) -> u64 {
    let y = x ^ (ONES * u64::from(c));
    y.wrapping_sub(ONES) & !y & HIGHS
}

/// Non-zero when any of the 8 bytes at `b[i..]` is one of `, = space \\`; zero also when fewer remain.
#[inline]
fn specials_ahead(b: &[u8], i: usize) -> Option<bool> {
    let chunk: [u8; 8] = b.get(i..i + 8)?.try_into().ok()?;
    let x = u64::from_le_bytes(chunk);
    Some((has_byte(x, b',') | has_byte(x, b' ') | has_byte(x, b'=') | has_byte(x, b'\\')) != 0)
}

/// Scans a name from `i` up to the first unescaped byte for which `stop` holds
/// (`stop` may only accept `,`, `=` or space); also says whether an escape was seen.
#[inline]
fn scan_name(b: &[u8], mut i: usize, stop: impl Fn(u8) -> bool) -> (usize, bool) {
    let mut escaped = false;
    while i < b.len() {
        if specials_ahead(b, i) == Some(false) {
            i += 8;
            continue;
        }
        let end = (i + 8).min(b.len());
        while i < end {
            let c = b[i];
            if c == b'\\' && i + 1 < b.len() {
                escaped |= escapable(b[i + 1]);
                i += 2;
                continue;
            }
            if stop(c) {
                return (i, escaped);
            }
            i += 1;
        }
    }
    (i.min(b.len()), escaped)
}

/// Index of the next `,` or space at or after `i` (or the end).
#[inline]
fn scan_value(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        if specials_ahead(b, i) == Some(false) {
            i += 8;
            continue;
        }
        let end = (i + 8).min(b.len());
        while i < end {
            if b[i] == b',' || b[i] == b' ' {
                return i;
            }
            i += 1;
        }
    }
    b.len()
}

fn unescape_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&n) = chars.peek()
            && n.is_ascii()
            && escapable(n as u8)
        {
            out.push(n);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

fn name(s: &str, escaped: bool) -> Cow<'_, str> {
    if escaped {
        Cow::Owned(unescape_name(s))
    } else {
        Cow::Borrowed(s)
    }
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    i
}

fn err<T>(reason: &str) -> Result<T, String> {
    Err(reason.to_string())
}

fn parse_into<'a>(
    line: &'a str,
    precision: Precision,
    tags: &mut Vec<Tag<'a>>,
    fields: &mut Vec<Field<'a>>,
) -> Result<Option<Entry<'a>>, String> {
    let (t0, f0) = (tags.len(), fields.len());
    let line = trim_end(line);
    let b = line.as_bytes();
    let mut start = 0;
    while start < b.len() && (b[start] == b' ' || b[start] == b'\t') {
        start += 1;
    }
    if start == b.len() || b[start] == b'#' {
        return Ok(None);
    }
    let line = &line[start..];
    let b = line.as_bytes();

    // Measurement.
    let (end, escaped) = scan_name(b, 0, |c| c == b',' || c == b' ');
    if end == 0 {
        return err("missing measurement");
    }
    let measurement = name(&line[..end], escaped);
    let mut i = end;

    // Tags.
    while i < b.len() && b[i] == b',' {
        i += 1;
        let (kend, kesc) = scan_name(b, i, |c| c == b'=' || c == b',' || c == b' ');
        if kend == i {
            return err("missing tag key");
        }
        if kend >= b.len() || b[kend] != b'=' {
            return err("missing tag value");
        }
        let key = name(&line[i..kend], kesc);
        i = kend + 1;
        let (vend, vesc) = scan_name(b, i, |c| c == b',' || c == b' ' || c == b'=');
        if vend == i {
            return err("missing tag value");
        }
        if vend < b.len() && b[vend] == b'=' {
            return err("invalid tag format");
        }
        tags.push((key, name(&line[i..vend], vesc)));
        i = vend;
    }
    if tags.len() - t0 > 1 && has_duplicates(&tags[t0..]) {
        return err("duplicate tags");
    }

    // Fields.
    i = skip_spaces(b, i);
    if i >= b.len() {
        return err("missing fields");
    }
    loop {
        let (kend, kesc) = scan_name(b, i, |c| c == b'=' || c == b',' || c == b' ');
        if kend == i {
            return err("missing field key");
        }
        if kend >= b.len() || b[kend] != b'=' {
            return err(if fields.len() == f0 {
                "missing fields"
            } else {
                "invalid field format"
            });
        }
        let key = name(&line[i..kend], kesc);
        i = kend + 1;
        let value = if i < b.len() && b[i] == b'"' {
            let (v, next) = scan_string(line, i)?;
            i = next;
            v
        } else {
            let vstart = i;
            i = scan_value(b, i);
            field_value(&line[vstart..i])?
        };
        fields.push((key, value));
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b' ') | None => break,
            Some(_) => return err("invalid field format"),
        }
    }

    // Timestamp.
    i = skip_spaces(b, i);
    let timestamp = if i < b.len() {
        Some(timestamp(&line[i..], precision)?)
    } else {
        None
    };
    Ok(Some(Entry {
        measurement,
        tags: t0..tags.len(),
        fields: f0..fields.len(),
        timestamp,
    }))
}

fn has_duplicates(tags: &[(Cow<'_, str>, Cow<'_, str>)]) -> bool {
    if tags.windows(2).all(|w| w[0].0 < w[1].0) {
        return false;
    }
    tags.iter()
        .enumerate()
        .any(|(i, (k, _))| tags[i + 1..].iter().any(|(k2, _)| k == k2))
}

/// Scans a quoted string value starting at the opening quote; returns the value and the index after the closing quote.
fn scan_string(line: &str, open: usize) -> Result<(FieldValue<'_>, usize), String> {
    let b = line.as_bytes();
    let mut i = open + 1;
    let mut escaped = false;
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 < b.len() => {
                escaped |= matches!(b[i + 1], b'"' | b'\\');
                i += 2;
            }
            b'"' => {
                let raw = &line[open + 1..i];
                let v = if escaped {
                    Cow::Owned(unescape_string(raw))
                } else {
                    Cow::Borrowed(raw)
                };
                return Ok((FieldValue::String(v), i + 1));
            }
            _ => i += 1,
        }
    }
    err("unbalanced quotes")
}

fn unescape_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&n) = chars.peek()
            && (n == '"' || n == '\\')
        {
            out.push(n);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

fn field_value(s: &str) -> Result<FieldValue<'static>, String> {
    let b = s.as_bytes();
    let Some(&last) = b.last() else {
        return err("missing field value");
    };
    match b[0] {
        b'0'..=b'9' | b'-' | b'.' => {}
        // InfluxDB reads values starting with N as numbers, and has no NaN.
        b'N' | b'n' => return err("invalid number"),
        _ => {
            return match s {
                "t" | "T" | "true" | "True" | "TRUE" => Ok(FieldValue::Boolean(true)),
                "f" | "F" | "false" | "False" | "FALSE" => Ok(FieldValue::Boolean(false)),
                _ => err("invalid boolean"),
            };
        }
    }
    match last {
        b'i' => s[..s.len() - 1]
            .parse()
            .map(FieldValue::Integer)
            .or_else(|_| err("invalid number")),
        b'u' => s[..s.len() - 1]
            .parse()
            .map(FieldValue::UInteger)
            .or_else(|_| err("invalid number")),
        _ => {
            if !b
                .iter()
                .all(|c| matches!(c, b'0'..=b'9' | b'.' | b'-' | b'+' | b'e' | b'E'))
            {
                return err("invalid number");
            }
            s.parse()
                .map(FieldValue::Float)
                .or_else(|_| err("invalid number"))
        }
    }
}

fn timestamp(s: &str, precision: Precision) -> Result<i64, String> {
    let (s, rest) = s.split_once(' ').unwrap_or((s, ""));
    if !rest.bytes().all(|c| c == b' ') {
        return if s.bytes().all(|c| c.is_ascii_digit() || c == b'-') {
            err("point is invalid")
        } else {
            err("bad timestamp")
        };
    }
    let b = s.as_bytes();
    let (neg, digits) = if b[0] == b'-' {
        (true, &b[1..])
    } else {
        (false, b)
    };
    if digits.is_empty() {
        return err("bad timestamp");
    }
    let range = || format!("time outside range {MIN_NANOS} - {MAX_NANOS}");
    // Accumulate negatively so that i64::MIN's magnitude fits.
    let mut t: i64 = 0;
    let mut overflow = false;
    for &d in digits {
        if !d.is_ascii_digit() {
            return err("bad timestamp");
        }
        match t
            .checked_mul(10)
            .and_then(|t| t.checked_sub(i64::from(d - b'0')))
        {
            Some(v) => t = v,
            None => overflow = true,
        }
    }
    if overflow {
        return Err(range());
    }
    let t = if neg { Some(t) } else { t.checked_neg() };
    match t.and_then(|t| t.checked_mul(precision.nanos())) {
        Some(ns) if (MIN_NANOS..=MAX_NANOS).contains(&ns) => Ok(ns),
        _ => Err(range()),
    }
}
