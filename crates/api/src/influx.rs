//! InfluxDB's write endpoints, so Telegraf and InfluxDB clients can write to Slipway:
//! `POST /write?db=&precision=` (1.x) and `POST /api/v2/write?org=&bucket=&precision=`
//! (2.x, `Authorization: Token …`), line protocol, optionally gzip-compressed, with
//! InfluxDB's status codes and error bodies. `/query` answers `CREATE DATABASE` (Telegraf
//! sends it at start) and points everything else at PromQL.

// Helpers answer early with the ready-made error `Response`, as axum handlers do; boxing
// it would only add an allocation on the error path.
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;
use std::io::Read;
use watch::ApiVersion;

use crate::Ctx;
use crate::params::Params;

/// The largest body accepted, compressed or not (InfluxDB 1.x's default `max-body-size`).
pub(crate) const MAX_BODY: usize = 25 * 1024 * 1024;

/// The write routes' body limit: one byte over [`MAX_BODY`] (axum's default is 2 MiB),
/// so `text` sees any body it must refuse and answers as InfluxDB does.
pub(crate) fn body_limit() -> axum::extract::DefaultBodyLimit {
    axum::extract::DefaultBodyLimit::max(MAX_BODY + 1)
}

fn answer(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::NO_CONTENT {
        return status.into_response();
    }
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The body as text: gunzipped when `Content-Encoding: gzip`, bounded by [`MAX_BODY`].
/// An uncompressed body is borrowed, not copied.
fn text<'b>(
    headers: &HeaderMap,
    body: &'b Bytes,
    api: ApiVersion,
) -> Result<Cow<'b, str>, Response> {
    let too_large = || {
        answer(
            413,
            watch::error_body(
                api,
                "request too large",
                &format!("request body exceeds the limit of {MAX_BODY} bytes"),
            ),
        )
    };
    if body.len() > MAX_BODY {
        return Err(too_large());
    }
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let not_utf8 = || {
        answer(
            400,
            watch::error_body(api, "invalid", "the body is not UTF-8 line protocol"),
        )
    };
    if !gzip {
        return std::str::from_utf8(body)
            .map(Cow::Borrowed)
            .map_err(|_| not_utf8());
    }
    let mut out = Vec::new();
    let read = flate2::read::GzDecoder::new(&body[..])
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut out);
    if let Err(e) = read {
        return Err(answer(
            400,
            watch::error_body(api, "invalid", &format!("cannot gunzip the body: {e}")),
        ));
    }
    if out.len() > MAX_BODY {
        return Err(too_large());
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| not_utf8())
}

fn write(
    ctx: &Ctx,
    q: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
    api: ApiVersion,
) -> Response {
    let Some(w) = ctx.watch.as_ref() else {
        return answer(
            503,
            watch::error_body(api, "unavailable", "metrics are off (--metrics off)"),
        );
    };
    let p = Params::parse(q);
    let precision = match p.get("precision").unwrap_or("ns") {
        "" => Ok(lineproto::Precision::Nanoseconds),
        v => lineproto::Precision::parse(v),
    };
    let Ok(precision) = precision else {
        return answer(
            400,
            watch::error_body(api, "invalid", "invalid precision (use ns, us, ms or s)"),
        );
    };
    let db = match api {
        ApiVersion::V1 => p.get("db"),
        ApiVersion::V2 => p.get("bucket"),
    };
    if db.is_none_or(str::is_empty) {
        let msg = match api {
            ApiVersion::V1 => "database is required",
            ApiVersion::V2 => "bucket is required",
        };
        return answer(400, watch::error_body(api, "invalid", msg));
    }
    let body = match text(headers, body, api) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let outcome = w.write_lines(&watch::WriteRequest {
        body: &body,
        precision,
        db,
        api,
    });
    answer(outcome.status, outcome.body)
}

/// Parsing and storing a batch is CPU work: off the runtime's workers.
async fn blocking(
    ctx: Ctx,
    q: Option<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    api: ApiVersion,
) -> Response {
    // The routes raise axum's body limit (2 MiB by default) to one byte over ours, so
    // a body that passes is checked by `text` and a longer one is refused here, both
    // with InfluxDB's 413.
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return answer(
                413,
                watch::error_body(
                    api,
                    "request too large",
                    &format!("request body exceeds the limit of {MAX_BODY} bytes"),
                ),
            );
        }
        Err(e) => {
            return answer(
                400,
                watch::error_body(api, "invalid", &format!("cannot read the body: {e}")),
            );
        }
    };
    tokio::task::spawn_blocking(move || write(&ctx, q.as_deref(), &headers, &body, api))
        .await
        .unwrap_or_else(|e| {
            answer(
                500,
                watch::error_body(api, "internal error", &e.to_string()),
            )
        })
}

/// `POST /write` (InfluxDB 1.x).
pub(crate) async fn write_v1(
    State(ctx): State<Ctx>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    blocking(ctx, q, headers, body, ApiVersion::V1).await
}

/// `POST /api/v2/write` (InfluxDB 2.x).
pub(crate) async fn write_v2(
    State(ctx): State<Ctx>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    blocking(ctx, q, headers, body, ApiVersion::V2).await
}

/// `GET|POST /query` (InfluxQL): `CREATE DATABASE` succeeds (every database exists);
/// anything else says where to query instead.
pub(crate) async fn influxql(RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Response {
    let mut raw = q.unwrap_or_default();
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form && let Ok(b) = std::str::from_utf8(&body) {
        raw.push('&');
        raw.push_str(b);
    }
    let p = Params::parse(Some(&raw));
    let statement = p.get("q").unwrap_or_default().trim().to_ascii_uppercase();
    if statement.starts_with("CREATE DATABASE") {
        return answer(200, r#"{"results":[{"statement_id":0}]}"#.into());
    }
    answer(
        400,
        r#"{"error":"InfluxQL queries are not supported: query with PromQL at /api/v1/query (series are named <measurement>_<field>)"}"#
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gz(b: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).expect("gzip");
        Bytes::from(e.finish().expect("gzip"))
    }

    fn status(r: Result<Cow<'_, str>, Response>) -> u16 {
        match r {
            Ok(t) => panic!("accepted {t:?}"),
            Err(r) => r.status().as_u16(),
        }
    }

    fn ok(r: Result<Cow<'_, str>, Response>) -> Cow<'_, str> {
        match r {
            Ok(t) => t,
            Err(r) => panic!("answered {}", r.status()),
        }
    }

    #[test]
    fn plain_bodies_are_borrowed_gzip_is_unpacked_and_bad_bodies_are_refused() {
        let plain = Bytes::from_static(b"cpu v=1\n");
        let none = HeaderMap::new();
        let t = ok(text(&none, &plain, ApiVersion::V1));
        assert!(matches!(t, Cow::Borrowed("cpu v=1\n")), "not copied");
        let mut gzip = HeaderMap::new();
        gzip.insert(header::CONTENT_ENCODING, "gzip".parse().expect("header"));
        let packed = gz(b"cpu v=1\n");
        let t = ok(text(&gzip, &packed, ApiVersion::V1));
        assert_eq!(t, "cpu v=1\n");
        let not_utf8 = Bytes::from_static(b"cpu v=\xff\n");
        assert_eq!(status(text(&none, &not_utf8, ApiVersion::V1)), 400);
        assert_eq!(status(text(&gzip, &gz(&not_utf8), ApiVersion::V2)), 400);
        assert_eq!(status(text(&gzip, &plain, ApiVersion::V1)), 400, "not gzip");
        let big = Bytes::from(vec![b'x'; MAX_BODY + 1]);
        assert_eq!(status(text(&none, &big, ApiVersion::V1)), 413);
        assert_eq!(status(text(&gzip, &gz(&big), ApiVersion::V1)), 413);
    }
}
