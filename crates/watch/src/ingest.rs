//! InfluxDB line protocol into the store, with InfluxDB's answers: through 1.x every good
//! line is written (its partial-write rule) and bad lines are named with their line
//! number; through 2.x a bad line rejects the whole batch (400), and points the store
//! refuses are a 422 while the rest are written. A field whose type differs from what its
//! series holds is a type conflict.
//!
//! A field `f` of measurement `m` becomes the series `m_f` with the tags as labels (and a
//! `db` label from `/write?db=`), as VictoriaMetrics maps it, so PromQL can query it.

use std::ops::Range;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use lineproto::{FieldValue, PointRef, Precision};

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

/// Most entries [`SeriesCache`] holds; when it is full it starts over (at about 130 bytes
/// an entry, 256 Ki entries are ~35 MB).
const CACHE_ENTRIES: usize = 1 << 18;

/// The label sets of the series lines have written, by what names them in a line: the
/// database, the measurement, the field key and the tags as written (in their order,
/// unescaped). A line of a known series costs a lookup instead of building, sorting and
/// hashing its label set, and the label set found is the store's own copy, so the store
/// finds the series by comparing a pointer.
pub(crate) struct SeriesCache {
    map: RwLock<foldhash::HashMap<Box<[u8]>, tsdb::Labels>>,
    /// Most entries; when full the cache starts over.
    cap: usize,
}

impl Default for SeriesCache {
    fn default() -> Self {
        Self::with_capacity(CACHE_ENTRIES)
    }
}

impl SeriesCache {
    fn with_capacity(cap: usize) -> Self {
        Self {
            map: RwLock::default(),
            cap: cap.max(1),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, foldhash::HashMap<Box<[u8]>, tsdb::Labels>> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, foldhash::HashMap<Box<[u8]>, tsdb::Labels>> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Entries held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.read().len()
    }
}

/// Appends `s` with its length in front (LEB128), so a sequence of parts reads back one way.
fn put_part(key: &mut Vec<u8>, s: &str) {
    let mut n = s.len();
    while n >= 0x80 {
        key.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    key.push(n as u8);
    key.extend_from_slice(s.as_bytes());
}

/// The cache key of field `field` of `p`: everything [`labels_of`] reads.
fn put_key(key: &mut Vec<u8>, db: Option<&str>, p: &PointRef<'_>, field: &str) {
    put_part(key, db.unwrap_or(""));
    put_part(key, p.measurement);
    put_part(key, field);
    for (k, v) in p.tags {
        put_part(key, k);
        put_part(key, v);
    }
}

/// The series of field `field` of `p`: `measurement_field` with the tags (empty values
/// dropped) and `db` unless a tag has that name; `None` when the tags make no valid
/// label set (a tag named `__name__`).
fn labels_of(p: &PointRef<'_>, field: &str, db: Option<&str>) -> Option<tsdb::Labels> {
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
    if let Some(db) = db
        && !pairs.iter().any(|(k, _)| *k == "db")
    {
        pairs.push(("db", db));
    }
    tsdb::Labels::with_name(&name, pairs).ok()
}

/// One sample of a request before it has its series.
struct Pending {
    /// Its key in the request's key buffer.
    key: Range<usize>,
    t: i64,
    v: tsdb::Value,
    /// Index of its point in the batch and of the field in the point.
    point: u32,
    field: u32,
    labels: Option<tsdb::Labels>,
}

/// Parses and writes `req` at `now_ms` (lines without a timestamp get it).
pub(crate) fn write(
    db: &tsdb::Db,
    cache: &SeriesCache,
    req: &WriteRequest<'_>,
    now_ms: i64,
) -> WriteOutcome {
    let batch = lineproto::parse_batch(req.body, req.precision);
    if req.api == ApiVersion::V2 && !batch.errors.is_empty() {
        // InfluxDB 2.x rejects the whole batch when a line is malformed.
        let messages: Vec<String> = batch.errors.iter().map(|e| e.line_message()).collect();
        return WriteOutcome {
            status: 400,
            written: 0,
            body: error_body(req.api, "invalid", &messages.join("; ")),
        };
    }
    let req_db = req.db.filter(|d| !d.is_empty());
    let mut keys: Vec<u8> = Vec::with_capacity(req.body.len());
    let mut pending: Vec<Pending> = Vec::with_capacity(batch.len());
    for (pi, p) in batch.points().enumerate() {
        let t = p.timestamp.map_or(now_ms, |ns| ns.div_euclid(1_000_000));
        for (fi, (field, value)) in p.fields.iter().enumerate() {
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
            let start = keys.len();
            put_key(&mut keys, req_db, &p, field);
            pending.push(Pending {
                key: start..keys.len(),
                t,
                v,
                point: pi as u32,
                field: fi as u32,
                labels: None,
            });
        }
    }
    let mut missing = false;
    {
        let map = cache.read();
        for s in &mut pending {
            s.labels = map.get(&keys[s.key.clone()]).cloned();
            missing |= s.labels.is_none();
        }
    }
    if missing {
        let mut map = cache.write();
        for s in pending.iter_mut().filter(|s| s.labels.is_none()) {
            let key = &keys[s.key.clone()];
            if let Some(l) = map.get(key) {
                s.labels = Some(l.clone());
                continue;
            }
            let Some(p) = batch.get(s.point as usize) else {
                continue;
            };
            let Some(labels) = labels_of(&p, &p.fields[s.field as usize].0, req_db) else {
                continue;
            };
            let labels = db.intern(labels);
            if map.len() >= cache.cap {
                map.clear();
            }
            map.insert(key.into(), labels.clone());
            s.labels = Some(labels);
        }
    }
    let mut points = Vec::with_capacity(pending.len());
    // (point index, field index) per stored sample, to name conflicts.
    let mut origin: Vec<(u32, u32)> = Vec::with_capacity(pending.len());
    for s in pending {
        if let Some(labels) = s.labels {
            points.push(tsdb::Point {
                labels,
                t: s.t,
                v: s.v,
            });
            origin.push((s.point, s.field));
        }
    }
    drop(keys);
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
    drop(points);
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
        let (measurement, field) = origin
            .get(*i)
            .and_then(|&(p, f)| {
                let p = batch.get(p as usize)?;
                Some((p.measurement, p.fields.get(f as usize)?.0.as_ref()))
            })
            .unwrap_or_default();
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
    // 2.x: every line parsed, and the store refused some points (a type conflict, out
    // of order): 422, as InfluxDB 2.x answers points it rejects; the others are written.
    let (status, code, message) = match req.api {
        ApiVersion::V2 => (
            422,
            "unprocessable entity",
            format!(
                "failure writing points to database: partial write: {message} dropped={dropped}"
            ),
        ),
        ApiVersion::V1 => (400, "invalid", message),
    };
    WriteOutcome {
        status,
        written: report.accepted,
        body: error_body(req.api, code, &message),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::{Strategy, prop};

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
        let cache = SeriesCache::default();
        let ok = write(
            &db,
            &cache,
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
            &cache,
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
        let v2 = write(&db, &cache, &req("x\n", ApiVersion::V2), 0);
        assert_eq!(v2.status, 400);
        assert!(v2.body.starts_with("{\"code\":\"invalid\""), "{}", v2.body);
        assert!(v2.body.contains("line 1"), "{}", v2.body);
        // 2.x rejects the whole batch: its good line is not written.
        let v2 = write(
            &db,
            &cache,
            &req("mem,host=c used=7 1700000020\nnot a line\n", ApiVersion::V2),
            0,
        );
        assert_eq!((v2.status, v2.written), (400, 0), "{}", v2.body);
        assert!(v2.body.contains("line 2"), "{}", v2.body);
        let stored = db
            .select(
                &[
                    tsdb::Matcher::metric("mem_used"),
                    tsdb::Matcher::new("host", tsdb::MatchOp::Eq, "c").unwrap(),
                ],
                0,
                i64::MAX,
            )
            .unwrap();
        assert!(stored.is_empty(), "{stored:?}");
    }

    #[test]
    fn a_type_conflict_is_reported_as_influxdb_does() {
        let (_d, db) = db();
        let cache = SeriesCache::default();
        let first = write(
            &db,
            &cache,
            &req("cpu value=1 1700000000\n", ApiVersion::V1),
            0,
        );
        assert_eq!(first.status, 204);
        let clash = write(
            &db,
            &cache,
            &req("cpu value=2i 1700000010\n", ApiVersion::V1),
            0,
        );
        assert_eq!(clash.status, 400);
        assert!(
            clash.body.contains("field type conflict: input field \\\"value\\\" on measurement \\\"cpu\\\" is type integer, already exists as type float"),
            "{}",
            clash.body
        );
        assert!(clash.body.contains("dropped=1"), "{}", clash.body);
        // 2.x: 422 for points the store refuses; the batch's other points are written.
        let clash = write(
            &db,
            &cache,
            &req(
                "cpu value=3i 1700000020\ncpu,host=d value=1 1700000020\n",
                ApiVersion::V2,
            ),
            0,
        );
        assert_eq!((clash.status, clash.written), (422, 1), "{}", clash.body);
        assert!(
            clash.body.starts_with("{\"code\":\"unprocessable entity\"")
                && clash.body.contains("field type conflict"),
            "{}",
            clash.body
        );
    }

    /// Escapes a measurement (`,` and space) or a tag key, tag value or field key (also `=`).
    fn esc(s: &str, measurement: bool) -> String {
        let mut out = String::new();
        for c in s.chars() {
            if c == ',' || c == ' ' || (c == '=' && !measurement) {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    /// One line of the property test: measurement, tags in the order written, field, value.
    type Line = (String, Vec<(String, String)>, String, i64);

    fn line_strategy() -> impl Strategy<Value = Line> {
        // Names that collide when concatenated without lengths (`a`+`bc` and `ab`+`c`),
        // need escapes, or are the `db` label.
        let measurement = prop::sample::select(vec!["cpu", "a,b", "a b"]);
        let keys = prop::sample::subsequence(vec!["a", "ab", "db", "x=y"], 0..=3);
        let value = prop::sample::select(vec!["c", "bc", "x y", "c,d", "="]);
        let field = prop::sample::select(vec!["value", "f,g"]);
        (
            measurement,
            keys.prop_shuffle(),
            prop::collection::vec(value, 3),
            field,
            -5i64..5,
        )
            .prop_map(|(m, keys, values, f, v)| {
                let tags = keys
                    .into_iter()
                    .zip(values)
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (m.to_string(), tags, f.to_string(), v)
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Through the series cache, every sample lands in the series its line names: the
        /// store holds exactly what building each line's labels from scratch says, with
        /// requests to two databases, tags in any order, names that need escapes, and a
        /// cache small enough to start over.
        #[test]
        fn cached_series_are_the_lines_series(
            requests in prop::collection::vec(
                (prop::bool::ANY, prop::collection::vec(line_strategy(), 1..30)),
                1..6,
            ),
            cap in prop::sample::select(vec![1usize, 3, 1000]),
        ) {
            let (_d, db) = db();
            let cache = SeriesCache::with_capacity(cap);
            let mut want: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
            let mut t = 1_700_000_000i64;
            for (first_db, lines) in &requests {
                let database = if *first_db { "telegraf" } else { "other" };
                let mut body = String::new();
                for (m, tags, f, v) in lines {
                    t += 1;
                    body.push_str(&esc(m, true));
                    for (k, tv) in tags {
                        body.push_str(&format!(",{}={}", esc(k, false), esc(tv, false)));
                    }
                    body.push_str(&format!(" {}={v}i {t}\n", esc(f, false)));
                    // The model: the label set built directly.
                    let mut labels: BTreeMap<&str, &str> =
                        tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    labels.entry("db").or_insert(database);
                    let name = format!("{m}_{f}");
                    labels.insert("__name__", &name);
                    let key = format!("{labels:?}");
                    want.entry(key).or_default().push((t * 1000, *v));
                }
                let out = write(
                    &db,
                    &cache,
                    &WriteRequest {
                        body: &body,
                        precision: Precision::Seconds,
                        db: Some(database),
                        api: ApiVersion::V1,
                    },
                    0,
                );
                proptest::prop_assert_eq!(out.status, 204, "{}", out.body);
                proptest::prop_assert!(cache.len() <= cap);
            }
            let all = db
                .select(
                    &[tsdb::Matcher::new("__name__", tsdb::MatchOp::Re, ".+").expect("matcher")],
                    0,
                    i64::MAX,
                )
                .expect("select");
            let got: BTreeMap<String, Vec<(i64, i64)>> = all
                .iter()
                .map(|s| {
                    let labels: BTreeMap<&str, &str> = s.labels.iter().collect();
                    let samples = s
                        .samples
                        .iter()
                        .map(|x| match x.v {
                            tsdb::Value::Int(i) => (x.t, i),
                            _ => (x.t, i64::MIN),
                        })
                        .collect();
                    (format!("{labels:?}"), samples)
                })
                .collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn known_series_come_from_the_cache() {
        let (_d, db) = db();
        let cache = SeriesCache::default();
        let body = "cpu,host=a value=1,n=2i 1700000000\ncpu,host=a value=2,n=3i 1700000010\n";
        let out = write(&db, &cache, &req(body, ApiVersion::V1), 0);
        assert_eq!((out.status, out.written), (204, 4), "{}", out.body);
        assert_eq!(cache.len(), 2, "one entry per series");
        // The same series, tags in another order: a new key for the same label set.
        let body = "cpu,host=a,zone=z value=3 1700000020\ncpu,zone=z,host=a value=4 1700000030\n";
        let out = write(&db, &cache, &req(body, ApiVersion::V1), 0);
        assert_eq!((out.status, out.written), (204, 2), "{}", out.body);
        assert_eq!(cache.len(), 4);
        let found = db
            .select(
                &[
                    tsdb::Matcher::metric("cpu_value"),
                    tsdb::Matcher::eq("zone", "z"),
                ],
                0,
                i64::MAX,
            )
            .expect("select");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].samples.len(), 2);
    }
}
