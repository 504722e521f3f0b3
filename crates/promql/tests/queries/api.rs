//! Prometheus HTTP API shapes: result and error bodies, metadata bodies, time and step parameters.

use promql::{Engine, parse_step, parse_time, render_error, render_success};

use crate::{lbl, storage};

#[test]
fn json_shapes() {
    let db = storage();
    let e = Engine::default();
    let v = e.instant_query(&db, "http{app=\"b\"} / 0", 60_123).unwrap();
    assert_eq!(
        render_success(&v),
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"app":"b","inst":"1"},"value":[60.123,"+Inf"]}]}}"#
    );
    let v = e.instant_query(&db, "0/0", 1_700_000_000_100).unwrap();
    assert_eq!(
        render_success(&v),
        r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.100,"NaN"]}}"#
    );
    let v = e.instant_query(&db, "\"hi\"", 1000).unwrap();
    assert_eq!(
        render_success(&v),
        r#"{"status":"success","data":{"resultType":"string","result":[1,"hi"]}}"#
    );
    let v = e.instant_query(&db, "g[2m]", 600_000).unwrap();
    assert_eq!(
        render_success(&v),
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"g"},"values":[[540,"9"],[600,"10"]]}]}}"#
    );
    let v = e.instant_query(&db, "-1e21 * 1 - 0.000001", 0).unwrap();
    assert_eq!(
        render_success(&v),
        r#"{"status":"success","data":{"resultType":"scalar","result":[0,"-1000000000000000000000"]}}"#
    );
    let err = e.instant_query(&db, "sum(", 0).unwrap_err();
    assert_eq!(err.http_status(), 400);
    assert_eq!(
        render_error(&err),
        r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5: unexpected end of input"}"#
    );
}

#[test]
fn api_metadata_bodies() {
    assert_eq!(
        promql::render_string_list(&["job", "le"]),
        r#"{"status":"success","data":["job","le"]}"#
    );
    let series = [lbl(&[("__name__", "up"), ("job", "a\"b")])];
    assert_eq!(
        promql::render_series(&series),
        r#"{"status":"success","data":[{"__name__":"up","job":"a\"b"}]}"#
    );
}

#[test]
fn api_parameters() {
    let m = promql::parse_metric_selector("up{job=~\"a|b\"}").unwrap();
    assert_eq!(format!("{m:?}"), "[__name__=\"up\", job=~\"a|b\"]");
    assert!(promql::parse_metric_selector("rate(up[5m])").is_err());
    assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000_000);
    assert_eq!(parse_time("1700000000.123").unwrap(), 1_700_000_000_123);
    assert_eq!(
        parse_time("2023-11-14T22:13:20Z").unwrap(),
        1_700_000_000_000
    );
    assert_eq!(
        parse_time("2023-11-14T23:13:20.5+01:00").unwrap(),
        1_700_000_000_500
    );
    assert_eq!(parse_time("1969-12-31T23:59:59Z").unwrap(), -1000);
    assert_eq!(
        parse_time("2024-02-29T00:00:00Z").unwrap(),
        1_709_164_800_000
    );
    assert_eq!(
        parse_time("2023-02-29T00:00:00Z").unwrap_err().to_string(),
        "cannot parse \"2023-02-29T00:00:00Z\" to a valid timestamp"
    );
    assert!(parse_time("nan").is_err());
    assert_eq!(parse_step("15s").unwrap(), 15_000);
    assert_eq!(parse_step("1h30m").unwrap(), 5_400_000);
    assert_eq!(parse_step("1.5").unwrap(), 1500);
    assert_eq!(
        parse_step("x").unwrap_err().to_string(),
        "cannot parse \"x\" to a valid duration"
    );
}
