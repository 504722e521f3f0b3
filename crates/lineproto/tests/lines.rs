//! Line protocol parsing, writing and mapping tests, including round trips and never-panic properties.

use std::borrow::Cow;

use lineproto::{
    Error, FieldValue, MappingOptions, Point, Precision, PromSample, WriteOptions, parse_batch,
    parse_line, to_prometheus, write_lines,
};

fn one(line: &str) -> Point<'_> {
    match parse_line(line, Precision::Nanoseconds) {
        Ok(Some(p)) => p,
        other => panic!("{line}: {other:?}"),
    }
}

fn c(s: &str) -> Cow<'_, str> {
    Cow::Borrowed(s)
}

#[test]
fn parses_the_spec_examples() {
    let p =
        one("myMeasurement,tag1=value1,tag2=value2 fieldKey=\"fieldValue\" 1556813561098000000");
    assert_eq!(p.measurement, "myMeasurement");
    assert_eq!(
        p.tags,
        vec![(c("tag1"), c("value1")), (c("tag2"), c("value2"))]
    );
    assert_eq!(
        p.fields,
        vec![(c("fieldKey"), FieldValue::String(c("fieldValue")))]
    );
    assert_eq!(p.timestamp, Some(1_556_813_561_098_000_000));

    let p = one("m f=1,i=-2i,u=3u,s=\"a \\\"q\\\" \\\\ b\",t=t,T=TRUE,x=False,e=-1.2e+78,d=.5");
    assert_eq!(
        p.fields,
        vec![
            (c("f"), FieldValue::Float(1.0)),
            (c("i"), FieldValue::Integer(-2)),
            (c("u"), FieldValue::UInteger(3)),
            (c("s"), FieldValue::String(c("a \"q\" \\ b"))),
            (c("t"), FieldValue::Boolean(true)),
            (c("T"), FieldValue::Boolean(true)),
            (c("x"), FieldValue::Boolean(false)),
            (c("e"), FieldValue::Float(-1.2e78)),
            (c("d"), FieldValue::Float(0.5)),
        ]
    );
    assert_eq!(p.timestamp, None);

    let p = one("my\\ meas\\,ure,tag\\ key=tag\\,val\\=ue field\\=key=\"string\\\\\"");
    assert_eq!(p.measurement, "my meas,ure");
    assert_eq!(p.tags, vec![(c("tag key"), c("tag,val=ue"))]);
    assert_eq!(
        p.fields,
        vec![(c("field=key"), FieldValue::String(c("string\\")))]
    );

    // A backslash before an ordinary character stays; a doubled one reads as one.
    assert_eq!(one("my\\measurement f=1").measurement, "my\\measurement");
    assert_eq!(one("my\\\\measurement f=1").measurement, "my\\measurement");
    assert_eq!(
        one("my\\\\\\measurement f=1").measurement,
        "my\\\\measurement"
    );
    // Strings keep newline-free content verbatim, including commas, spaces and equals signs.
    assert_eq!(
        one("m s=\"a, b=c\" 1").fields[0].1,
        FieldValue::String(c("a, b=c"))
    );
    // Unescaped names borrow from the input.
    assert!(matches!(one("cpu,host=a v=1").tags[0].1, Cow::Borrowed(_)));
}

#[test]
fn precision_and_timestamps() {
    for (name, want) in [
        ("n", 5),
        ("ns", 5),
        ("u", 5_000),
        ("us", 5_000),
        ("ms", 5_000_000),
        ("s", 5_000_000_000),
        ("m", 300_000_000_000),
        ("h", 18_000_000_000_000),
    ] {
        let prec = Precision::parse(name).unwrap();
        let b = parse_batch("m v=1 5", prec);
        assert_eq!(b.get(0).map(|p| p.timestamp), Some(Some(want)), "{name}");
    }
    assert_eq!(
        Precision::parse("x").unwrap_err().to_string(),
        "invalid precision \"x\""
    );
    let b = parse_batch(
        "m v=1 -5\nm v=1 9223372036854775807\nm v=1 10000000000 \n",
        Precision::Seconds,
    );
    assert_eq!(b.len(), 1);
    assert_eq!(b.get(0).and_then(|p| p.timestamp), Some(-5_000_000_000));
    assert_eq!(
        b.errors[0].to_string(),
        "unable to parse 'm v=1 9223372036854775807': time outside range -9223372036854775806 - 9223372036854775806"
    );
    assert_eq!(
        b.errors[1].to_string(),
        "unable to parse 'm v=1 10000000000 ': time outside range -9223372036854775806 - 9223372036854775806"
    );
}

#[test]
fn comments_blank_lines_crlf_and_partial_writes() {
    let body = "# comment\r\n\r\ncpu,host=a usage=1 10\r\n \t \n\tbad line\r\ncpu,host=b usage=2 20\ncpu,host=c usage=\"x 30\n  # indented comment\n";
    let b = parse_batch(body, Precision::Nanoseconds);
    assert_eq!(b.len(), 2);
    assert_eq!(b.get(1).map(|p| p.tags[0].1.as_ref()), Some("b"));
    let msgs: Vec<String> = b.errors.iter().map(Error::to_string).collect();
    assert_eq!(
        msgs,
        [
            "unable to parse 'bad line': missing fields",
            "unable to parse 'cpu,host=c usage=\"x 30': unbalanced quotes"
        ]
    );
    let lines: Vec<String> = b.errors.iter().map(Error::line_message).collect();
    assert_eq!(
        lines,
        ["line 5: missing fields", "line 7: unbalanced quotes"]
    );
    assert_eq!(
        b.influx1_error().unwrap(),
        "partial write: unable to parse 'bad line': missing fields\nunable to parse 'cpu,host=c usage=\"x 30': unbalanced quotes dropped=0"
    );
    let all_bad = parse_batch("bad line", Precision::Nanoseconds);
    assert_eq!(
        all_bad.influx1_error().unwrap(),
        "unable to parse 'bad line': missing fields"
    );
    assert_eq!(
        parse_batch("a v=1\n", Precision::Nanoseconds).influx1_error(),
        None
    );
}

#[test]
fn error_reasons() {
    for (line, reason) in [
        ("cpu", "missing fields"),
        ("cpu ", "missing fields"),
        (",host=a v=1", "missing measurement"),
        ("cpu,=a v=1", "missing tag key"),
        ("cpu,host= v=1", "missing tag value"),
        ("cpu,host v=1", "missing tag value"),
        ("cpu,a=1,a=2 v=1", "duplicate tags"),
        ("cpu =1", "missing field key"),
        ("cpu v=", "missing field value"),
        ("cpu v=1,w", "invalid field format"),
        ("cpu v=1x", "invalid number"),
        ("cpu v=1.2.3", "invalid number"),
        ("cpu v=99999999999999999999i", "invalid number"),
        ("cpu v=-1u", "invalid number"),
        ("cpu v=yes", "invalid boolean"),
        ("cpu v=NaN", "invalid number"),
        ("cpu v=+1", "invalid boolean"),
        ("cpu v=\"abc", "unbalanced quotes"),
        ("cpu v=\"a\"b", "invalid field format"),
        ("cpu v=1 \"123\"", "bad timestamp"),
        ("cpu v=1 12a", "bad timestamp"),
        ("cpu v=1 1 2", "point is invalid"),
        ("cpu v=1 1a 2", "bad timestamp"),
        ("cpu,host=a", "missing fields"),
        ("cpu,host=a=b v=1", "invalid tag format"),
    ] {
        match parse_line(line, Precision::Nanoseconds) {
            Err(Error::Line { reason: got, .. }) => assert_eq!(got, reason, "{line}"),
            other => panic!("{line}: {other:?}"),
        }
    }
}

#[test]
fn writer_round_trips_and_avoids_unsigned() {
    let body = "cpu\\ load,host=a\\,b,dc=x\\=y usage=0.5,count=3i,big=18446744073709551615u,ok=true,msg=\"say \\\"hi\\\" \\\\\" 1700000000000000000\n";
    let b = parse_batch(body, Precision::Nanoseconds);
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    let out = write_lines(b.points(), WriteOptions::default());
    assert_eq!(
        out,
        "cpu\\ load,host=a\\,b,dc=x\\=y usage=0.5,count=3i,big=9223372036854775807i,ok=true,msg=\"say \\\"hi\\\" \\\\\" 1700000000000000000\n"
    );
    let out2 = write_lines(
        b.points(),
        WriteOptions {
            unsigned: true,
            precision: Precision::Seconds,
        },
    );
    assert_eq!(
        out2,
        "cpu\\ load,host=a\\,b,dc=x\\=y usage=0.5,count=3i,big=18446744073709551615u,ok=true,msg=\"say \\\"hi\\\" \\\\\" 1700000000\n"
    );
    let again = parse_batch(&out2, Precision::Seconds);
    assert_eq!(again, b);
    // NaN cannot be written; a point left without fields is skipped.
    let p = Point {
        measurement: c("m"),
        tags: vec![],
        fields: vec![(c("v"), FieldValue::Float(f64::NAN))],
        timestamp: None,
    };
    assert_eq!(write_lines([p.view()], WriteOptions::default()), "");
    let p = Point {
        measurement: c("#m"),
        fields: vec![(c("v"), FieldValue::Integer(1))],
        ..p
    };
    assert_eq!(write_lines([p.view()], WriteOptions::default()), "");
    // Owned points outlive the body they were parsed from.
    let owned: Vec<Point<'static>> = {
        let body = String::from("m,t=a\\,b v=\"x\" 1\n");
        parse_batch(&body, Precision::Nanoseconds)
            .into_points()
            .into_iter()
            .map(Point::into_owned)
            .collect()
    };
    assert_eq!(owned[0].tags[0].1, "a,b");
}

#[test]
fn maps_like_victoriametrics() {
    let b = parse_batch(
        "foo,tag1=value1,tag2=value2 field1=12,field2=40i,on=true,s=\"1.5\",t=\"x\" 1700000000123456789",
        Precision::Nanoseconds,
    );
    let got = to_prometheus(b.get(0).unwrap(), &MappingOptions::default());
    let labels = vec![
        ("tag1".to_string(), "value1".to_string()),
        ("tag2".to_string(), "value2".to_string()),
    ];
    let s = |name: &str, value: f64| PromSample {
        name: name.to_string(),
        labels: labels.clone(),
        value,
        timestamp_ms: Some(1_700_000_000_123),
    };
    assert_eq!(
        got,
        vec![
            s("foo_field1", 12.0),
            s("foo_field2", 40.0),
            s("foo_on", 1.0),
            s("foo_s", 1.5),
            s("foo_t", 0.0)
        ]
    );

    let b = parse_batch(
        "cpu_usage_total,container_name=web value=5i",
        Precision::Nanoseconds,
    );
    let got = to_prometheus(b.get(0).unwrap(), &MappingOptions::default());
    assert_eq!(got[0].name, "cpu_usage_total_value");
    assert_eq!(got[0].timestamp_ms, None);
    let opts = MappingOptions {
        skip_single_field: true,
        db: Some("cadvisor".to_string()),
        ..MappingOptions::default()
    };
    let got = to_prometheus(b.get(0).unwrap(), &opts);
    assert_eq!(got[0].name, "cpu_usage_total");
    assert_eq!(
        got[0].labels,
        vec![
            ("container_name".to_string(), "web".to_string()),
            ("db".to_string(), "cadvisor".to_string())
        ]
    );
    let opts = MappingOptions {
        skip_measurement: true,
        separator: ":".to_string(),
        ..MappingOptions::default()
    };
    assert_eq!(to_prometheus(b.get(0).unwrap(), &opts)[0].name, "value");
    let opts = MappingOptions {
        separator: ":".to_string(),
        ..MappingOptions::default()
    };
    assert_eq!(
        to_prometheus(b.get(0).unwrap(), &opts)[0].name,
        "cpu_usage_total:value"
    );
}

mod props {
    use std::borrow::Cow;

    use lineproto::{FieldValue, Point, Precision, WriteOptions, parse_batch, write_lines};
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        // Printable text with the characters that need escaping; no leading '#' (a comment).
        "[a-zA-Z0-9_ ,=\\\\\"\\.é#-]{1,12}".prop_filter("no leading #", |s| !s.starts_with('#'))
    }

    fn field() -> impl Strategy<Value = FieldValue<'static>> {
        prop_oneof![
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(FieldValue::Float),
            any::<i64>().prop_map(FieldValue::Integer),
            any::<u64>().prop_map(FieldValue::UInteger),
            any::<bool>().prop_map(FieldValue::Boolean),
            "[ -~é\\t]{0,16}".prop_map(|s| FieldValue::String(Cow::Owned(s))),
        ]
    }

    fn point() -> impl Strategy<Value = Point<'static>> {
        (
            name(),
            proptest::collection::btree_map(name(), name(), 0..4),
            proptest::collection::vec((name(), field()), 1..5),
            proptest::option::of(any::<i64>().prop_map(|t| t / 4)),
        )
            .prop_map(|(m, tags, fields, ts)| Point {
                measurement: Cow::Owned(m),
                tags: tags
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k), Cow::Owned(v)))
                    .collect(),
                fields: fields
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k), v))
                    .collect(),
                timestamp: ts,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn never_panics(s in "\\PC{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_batch(&s, Precision::Nanoseconds);
            let lossy = String::from_utf8_lossy(&bytes);
            let _ = parse_batch(&lossy, Precision::Seconds);
        }

        #[test]
        fn write_then_parse_round_trips(points in proptest::collection::vec(point(), 1..5)) {
            let body = write_lines(points.iter().map(Point::view), WriteOptions { unsigned: true, precision: Precision::Nanoseconds });
            let batch = parse_batch(&body, Precision::Nanoseconds);
            prop_assert!(batch.errors.is_empty(), "{:?}\n{}", batch.errors, body);
            let views: Vec<Point<'_>> = batch.points().map(|p| p.to_point()).collect();
            prop_assert_eq!(&views, &points);
            prop_assert_eq!(batch.into_points(), points);
        }
    }
}
