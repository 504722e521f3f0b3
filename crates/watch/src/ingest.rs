//! InfluxDB line protocol into the store, with InfluxDB's answers: every good line is
//! written (InfluxDB's partial-write rule), bad lines are named with their line number, a
//! field whose type differs from what its series holds is a type conflict.
//!
//! A field `f` of measurement `m` becomes the series `m_f` with the tags as labels (and a
//! `db` label from `/write?db=`), as VictoriaMetrics maps it, so PromQL can query it.

use lineproto::{FieldValue, Precision};

/// Which InfluxDB API a write came through (their answers differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiVersion {
    /// `POST /write?db=` (1.x).
    V1,
    /// `POST /api/v2/write?org=&bucket=` (2.x).
    V2,
}

/// One write request.
#[derive(Clone, Debug)]
pub struct WriteRequest<'a> {
    /// The line protocol.
    pub body: &'a str,
    /// The timestamps' precision.
    pub precision: Precision,
    /// `db` (1.x) or `bucket` (2.x), stored as the `db` label.
    pub db: Option<&'a str>,
    /// The API used.
    pub api: ApiVersion,
}

/// The answer InfluxDB would give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    /// 204 when everything was written, 400 when a line was bad (the good ones are
    /// written anyway), 500 when the store failed.
    pub status: u16,
    /// Samples written.
    pub written: usize,
    /// The error body (InfluxDB's JSON shape for the API used), empty for 204.
    pub body: String,
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The error body of `api` for `message`.
pub fn error_body(api: ApiVersion, code: &str, message: &str) -> String {
    match api {
        ApiVersion::V1 => format!("{{\"error\":{}}}", json_string(message)),
        ApiVersion::V2 => format!(
            "{{\"code\":{},\"message\":{}}}",
            json_string(code),
            json_string(message)
        ),
    }
}

fn kind_name(k: tsdb::ValueKind) -> &'static str {
    match k {
        tsdb::ValueKind::Float => "float",
        tsdb::ValueKind::Integer => "integer",
        tsdb::ValueKind::Bool => "boolean",
    }
}

/// Parses and writes `req` at `now_ms` (lines without a timestamp get it).
pub(crate) fn write(db: &tsdb::Db, req: &WriteRequest<'_>, now_ms: i64) -> WriteOutcome {
    let batch = lineproto::parse_batch(req.body, req.precision);
    let mut points = Vec::with_capacity(batch.len());
    // (point index, measurement, field) per stored sample, to name conflicts.
    let mut origin: Vec<(String, String)> = Vec::with_capacity(batch.len());
    for p in batch.points() {
        let t = p.timestamp.map_or(now_ms, |ns| ns.div_euclid(1_000_000));
        for (field, value) in p.fields {
            let v = match value {
                FieldValue::Float(f) => tsdb::Value::Float(*f),
                FieldValue::Integer(i) => tsdb::Value::Int(*i),
                FieldValue::UInteger(u) => tsdb::Value::Int(i64::try_from(*u).unwrap_or(i64::MAX)),
                FieldValue::Boolean(b) => tsdb::Value::Bool(*b),
                // Strings are not samples; a number in a string is read as a float.
                FieldValue::String(s) => match s.trim().parse::<f64>() {
                    Ok(f) => tsdb::Value::Float(f),
                    Err(_) => continue,
                },
            };
            let name = if p.measurement.is_empty() {
                field.to_string()
            } else {
                format!("{}_{}", p.measurement, field)
            };
            let mut pairs: Vec<(&str, &str)> = p
                .tags
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.as_ref(), v.as_ref()))
                .collect();
            if let Some(db) = req.db.filter(|d| !d.is_empty())
                && !pairs.iter().any(|(k, _)| *k == "db")
            {
                pairs.push(("db", db));
            }
            let Ok(labels) = tsdb::Labels::with_name(&name, pairs) else {
                continue;
            };
            points.push(tsdb::Point { labels, t, v });
            origin.push((p.measurement.to_string(), field.to_string()));
        }
    }
    let report = match db.append(&points) {
        Ok(r) => r,
        Err(e) => {
            return WriteOutcome {
                status: 500,
                written: 0,
                body: error_body(req.api, "internal error", &e.to_string()),
            };
        }
    };
    let mut messages: Vec<String> = batch
        .errors
        .iter()
        .map(|e| match req.api {
            ApiVersion::V1 => e.to_string(),
            ApiVersion::V2 => e.line_message(),
        })
        .collect();
    let mut dropped = 0;
    for (i, e) in &report.errors {
        dropped += 1;
        let (measurement, field) = origin.get(*i).cloned().unwrap_or_default();
        messages.push(match e {
            tsdb::Error::TypeConflict { existing, got, .. } => format!(
                "field type conflict: input field \"{field}\" on measurement \"{measurement}\" is type {}, already exists as type {}",
                kind_name(*got),
                kind_name(*existing)
            ),
            other => other.to_string(),
        });
    }
    if messages.is_empty() {
        return WriteOutcome {
            status: 204,
            written: report.accepted,
            body: String::new(),
        };
    }
    let dropped = dropped + batch.errors.len();
    let message = match req.api {
        ApiVersion::V1 if report.accepted > 0 || !report.errors.is_empty() => {
            format!("partial write: {} dropped={dropped}", messages.join("; "))
        }
        _ => messages.join("; "),
    };
    WriteOutcome {
        status: 400,
        written: report.accepted,
        body: error_body(req.api, "invalid", &message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, tsdb::Db) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = tsdb::Db::open(dir.path(), tsdb::Options::default()).expect("open");
        (dir, db)
    }

    fn req(body: &str, api: ApiVersion) -> WriteRequest<'_> {
        WriteRequest {
            body,
            precision: Precision::Seconds,
            db: Some("telegraf"),
            api,
        }
    }

    #[test]
    fn lines_become_series_and_bad_lines_are_named() {
        let (_d, db) = db();
        let ok = write(
            &db,
            &req(
                "cpu,host=a usage=1.5,n=3i 1700000000\nmem,host=a used=7i 1700000000\n",
                ApiVersion::V1,
            ),
            0,
        );
        assert_eq!((ok.status, ok.written), (204, 3), "{}", ok.body);
        let found = db
            .select(&[tsdb::Matcher::metric("cpu_usage")], 0, i64::MAX)
            .expect("select");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].labels.get("db"), Some("telegraf"));
        assert_eq!(found[0].samples[0].t, 1_700_000_000_000);
        let bad = write(
            &db,
            &req(
                "cpu,host=b usage=2 1700000010\nnot a line\n",
                ApiVersion::V1,
            ),
            0,
        );
        assert_eq!(bad.status, 400);
        assert!(
            bad.body.contains("unable to parse 'not a line'"),
            "{}",
            bad.body
        );
        assert_eq!(bad.written, 1, "the good line is written");
        let v2 = write(&db, &req("x\n", ApiVersion::V2), 0);
        assert_eq!(v2.status, 400);
        assert!(v2.body.starts_with("{\"code\":\"invalid\""), "{}", v2.body);
        assert!(v2.body.contains("line 1"), "{}", v2.body);
    }

    #[test]
    fn a_type_conflict_is_reported_as_influxdb_does() {
        let (_d, db) = db();
        let first = write(&db, &req("cpu value=1 1700000000\n", ApiVersion::V1), 0);
        assert_eq!(first.status, 204);
        let clash = write(&db, &req("cpu value=2i 1700000010\n", ApiVersion::V1), 0);
        assert_eq!(clash.status, 400);
        assert!(
            clash.body.contains("field type conflict: input field \\\"value\\\" on measurement \\\"cpu\\\" is type integer, already exists as type float"),
            "{}",
            clash.body
        );
        assert!(clash.body.contains("dropped=1"), "{}", clash.body);
    }
}
