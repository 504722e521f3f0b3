//! Golden tests of the 0.0.4 and OpenMetrics encoders, negotiation and the reader's rejections.

use std::borrow::Cow;

use metrics::reader::parse;
use metrics::{
    Desc, Families, Format, Labels, MetricFamily, MetricType, Registry, Sample, SampleSuffix,
    encode,
};

static REQS: Desc = Desc::new(
    "http_requests_total",
    MetricType::Counter,
    "",
    "Requests \"served\".\nSecond line \\ end",
);
static TEMP: Desc = Desc::new("room_temperature_celsius", MetricType::Gauge, "celsius", "");
static WEIRD: Desc = Desc::new("weird", MetricType::Unknown, "", "untyped one");
static SECS: Desc = Desc::new("cpu_seconds_total", MetricType::Counter, "seconds", "CPU.");

fn sample_families() -> Vec<MetricFamily> {
    let labels: Labels = [("app", "/web"), ("task", "t\"1\\\n")]
        .into_iter()
        .collect();
    let mut f = Families::new();
    f.set_timestamp_ms(Some(1_700_000_000_123));
    metrics::Sink::emit(&mut f, &REQS, &labels, &[("code", "200")], 1027.0);
    metrics::Sink::emit(&mut f, &REQS, &labels, &[("code", "500")], 3.0);
    f.set_timestamp_ms(None);
    metrics::Sink::emit(&mut f, &TEMP, &Labels::default(), &[], -2.5);
    metrics::Sink::emit(&mut f, &WEIRD, &Labels::default(), &[], f64::NAN);
    metrics::Sink::emit(&mut f, &SECS, &Labels::default(), &[], 0.001);
    let reg = Registry::new();
    let h = reg
        .histogram(
            "rpc_duration_seconds",
            "RPC latency.",
            &["app"],
            &[0.1, 1.0],
        )
        .expect("register");
    let web = h.with(&["web"]).expect("labels");
    web.observe(0.05);
    web.observe(0.5);
    web.observe(7.0);
    f.extend(reg.collect());
    f.into_families()
}

#[test]
fn prometheus_text_golden() {
    let mut out = String::new();
    encode(&sample_families(), Format::Prometheus, &mut out);
    let expected = r#"# HELP http_requests_total Requests "served".\nSecond line \\ end
# TYPE http_requests_total counter
http_requests_total{app="/web",task="t\"1\\\n",code="200"} 1027 1700000000123
http_requests_total{app="/web",task="t\"1\\\n",code="500"} 3 1700000000123
# TYPE room_temperature_celsius gauge
room_temperature_celsius -2.5
# HELP weird untyped one
# TYPE weird untyped
weird NaN
# HELP cpu_seconds_total CPU.
# TYPE cpu_seconds_total counter
cpu_seconds_total 0.001
# HELP rpc_duration_seconds RPC latency.
# TYPE rpc_duration_seconds histogram
rpc_duration_seconds_bucket{app="web",le="0.1"} 1
rpc_duration_seconds_bucket{app="web",le="1"} 2
rpc_duration_seconds_bucket{app="web",le="+Inf"} 3
rpc_duration_seconds_sum{app="web"} 7.55
rpc_duration_seconds_count{app="web"} 3
"#;
    assert_eq!(out, expected);
    parse(&out, Format::Prometheus).expect("valid 0.0.4");
}

#[test]
fn openmetrics_golden() {
    let mut out = String::new();
    encode(&sample_families(), Format::OpenMetrics, &mut out);
    let expected = r#"# TYPE http_requests counter
# HELP http_requests Requests \"served\".\nSecond line \\ end
http_requests_total{app="/web",task="t\"1\\\n",code="200"} 1027 1700000000.123
http_requests_total{app="/web",task="t\"1\\\n",code="500"} 3 1700000000.123
# TYPE room_temperature_celsius gauge
# UNIT room_temperature_celsius celsius
room_temperature_celsius -2.5
# TYPE weird unknown
# HELP weird untyped one
weird NaN
# TYPE cpu_seconds counter
# UNIT cpu_seconds seconds
# HELP cpu_seconds CPU.
cpu_seconds_total 0.001
# TYPE rpc_duration_seconds histogram
# UNIT rpc_duration_seconds seconds
# HELP rpc_duration_seconds RPC latency.
rpc_duration_seconds_bucket{app="web",le="0.1"} 1
rpc_duration_seconds_bucket{app="web",le="1"} 2
rpc_duration_seconds_bucket{app="web",le="+Inf"} 3
rpc_duration_seconds_sum{app="web"} 7.55
rpc_duration_seconds_count{app="web"} 3
# EOF
"#;
    assert_eq!(out, expected);
    let fams = parse(&out, Format::OpenMetrics).expect("valid openmetrics");
    assert_eq!(fams[0].samples[0].label("task"), Some("t\"1\\\n"));
    assert_eq!(fams[0].samples[0].timestamp, Some(1_700_000_000.123));
}

/// A counter named without `_total` keeps its name in both formats: in OpenMetrics it is
/// an `unknown` family (a counter's samples would have to end in `_total`, and a scraping
/// Prometheus would store another name than cAdvisor's).
#[test]
fn counters_without_total_keep_their_name_in_openmetrics() {
    let fam = MetricFamily {
        desc: metrics::names::MEMORY_FAILCNT.clone(),
        samples: vec![Sample {
            suffix: SampleSuffix::None,
            labels: Labels::default(),
            extra: vec![(Cow::Borrowed("id"), "/x".to_owned())],
            value: 2.0,
            timestamp_ms: Some(-1500),
        }],
    };
    let mut om = String::new();
    encode(std::slice::from_ref(&fam), Format::OpenMetrics, &mut om);
    assert!(
        om.contains("# TYPE container_memory_failcnt unknown\n")
            && om.contains("\ncontainer_memory_failcnt{id=\"/x\"} 2 -1.500\n"),
        "{om}"
    );
    let parsed = parse(&om, Format::OpenMetrics).expect("valid");
    assert_eq!(parsed[0].samples[0].name, "container_memory_failcnt");
    let mut text = String::new();
    encode(&[fam], Format::Prometheus, &mut text);
    assert!(
        text.contains("\ncontainer_memory_failcnt{id=\"/x\"} 2 -1500\n"),
        "{text}"
    );
}

#[test]
fn negotiation() {
    let check = |accept: Option<&str>, want: Format| {
        assert_eq!(Format::negotiate(accept), want, "{accept:?}")
    };
    check(None, Format::Prometheus);
    check(Some("*/*"), Format::Prometheus);
    check(Some("text/plain;version=0.0.4"), Format::Prometheus);
    // What Prometheus 3.x sends by default (text/plain version 1.0.0 is served as 0.0.4).
    check(
        Some(
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
        ),
        Format::OpenMetrics,
    );
    check(
        Some("text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,*/*;q=0.1"),
        Format::Prometheus,
    );
    // What Prometheus 2.x sends by default.
    check(
        Some(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        ),
        Format::OpenMetrics,
    );
    check(
        Some("application/openmetrics-text; version=0.0.1"),
        Format::OpenMetrics,
    );
    check(
        Some("application/openmetrics-text; version=2.0.0"),
        Format::Prometheus,
    );
    check(
        Some("text/plain;q=0.9, application/openmetrics-text;q=0.5"),
        Format::Prometheus,
    );
    check(Some("application/openmetrics-text;q=0"), Format::Prometheus);
    check(Some("application/json"), Format::Prometheus);
    assert!(
        Format::OpenMetrics
            .content_type()
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    assert!(
        Format::Prometheus
            .content_type()
            .starts_with("text/plain; version=0.0.4")
    );
}

#[test]
fn reader_rejects_invalid_text() {
    let bad = [
        ("x 1", Format::Prometheus),                    // no final newline
        ("x{a=\"b} 1\n", Format::Prometheus),           // unterminated value
        ("x{a=\"\\q\"} 1\n", Format::Prometheus),       // bad escape
        ("x{1a=\"b\"} 1\n", Format::Prometheus),        // bad label name
        ("x{a=\"b\",a=\"c\"} 1\n", Format::Prometheus), // duplicate label
        ("x one\n", Format::Prometheus),                // bad value
        ("x 1 1.5\n", Format::Prometheus),              // ms timestamp must be an integer
        ("x 1\ny 1\nx 2\n", Format::Prometheus),        // interleaved
        ("x 1\n# TYPE x gauge\n", Format::Prometheus),  // metadata after samples
        ("# TYPE x widget\n", Format::Prometheus),      // unknown type
        ("# TYPE x counter\nx_total 1\n", Format::OpenMetrics), // no EOF
        ("# TYPE x counter\nx 1\n# EOF\n", Format::OpenMetrics), // counter sample without _total
        ("# EOF\nx 1\n", Format::OpenMetrics),          // after EOF
        (
            "# TYPE x_bytes gauge\n# UNIT x_bytes seconds\n# EOF\n",
            Format::OpenMetrics,
        ),
        ("# TYPE h histogram\nh_bucket 1\n", Format::Prometheus), // bucket without le
    ];
    for (text, format) in bad {
        assert!(parse(text, format).is_err(), "accepted {text:?}");
    }
    parse("# random comment\nx 1\n\n", Format::Prometheus)
        .expect("0.0.4 allows comments and blank lines");
}

#[test]
fn label_helpers() {
    assert_eq!(
        metrics::sanitize_label_name("com.docker.compose-project"),
        "com_docker_compose_project"
    );
    assert_eq!(metrics::sanitize_label_name("9lives"), "_9lives");
    let mut s = String::new();
    metrics::escape_label_value("a\\b\"c\nd", &mut s);
    assert_eq!(s, r#"a\\b\"c\nd"#);
}

/// Prometheus' own parser (`promtool check metrics`, when installed) reads our 0.0.4 text: only naming lints
/// (inherited from cAdvisor and node-exporter names) may be reported, never a parse error.
#[test]
fn promtool_parses_our_text() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut f = Families::new();
    f.extend(sample_families());
    metrics::HostCollector::new().collect(1.0, &mut f);
    let mut text = String::new();
    encode(f.families(), Format::Prometheus, &mut text);
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("skipped: promtool not installed");
        return;
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // 0: clean, 3: lint findings only; 1 is a parse failure.
    assert!(matches!(out.status.code(), Some(0 | 3)), "{report}\n{text}");
    assert!(!report.contains("error"), "{report}");
}
