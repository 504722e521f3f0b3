//! The server-metrics registry: registration rules, concurrent updates, collection.

use metrics::{Format, MetricType, Registry, encode};

#[test]
fn counters_gauges_histograms() {
    let reg = Registry::new();
    let reqs = reg
        .counter(
            "proxy_requests_total",
            "Requests proxied.",
            &["app", "code"],
        )
        .expect("counter");
    let ok = reqs.with(&["/web", "200"]).expect("labels");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let ok = ok.clone();
            std::thread::spawn(move || (0..10_000).for_each(|_| ok.inc()))
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().expect("thread"));
    assert_eq!(ok.get(), 40_000.0);
    ok.inc_by(-5.0);
    assert_eq!(ok.get(), 40_000.0, "counters never go down");
    reqs.with(&["/web", "502"]).expect("labels").inc();

    let tasks = reg
        .gauge("tasks", "Tasks by state.", &["state"])
        .expect("gauge");
    let running = tasks.with(&["running"]).expect("labels");
    running.set(3.0);
    running.dec();
    running.add(0.5);
    assert_eq!(running.get(), 2.5);

    let fams = reg.collect();
    assert_eq!(fams.len(), 2);
    assert_eq!(fams[0].desc.kind, MetricType::Counter);
    assert_eq!(fams[0].samples.len(), 2);
    let mut text = String::new();
    encode(&fams, Format::Prometheus, &mut text);
    assert!(
        text.contains("proxy_requests_total{app=\"/web\",code=\"200\"} 40000\n"),
        "{text}"
    );
    assert!(text.contains("tasks{state=\"running\"} 2.5\n"), "{text}");

    assert!(reqs.remove(&["/web", "502"]));
    assert_eq!(reg.collect()[0].samples.len(), 1);
    assert_eq!(reg.descs().len(), 2);
}

#[test]
fn registration_rules() {
    let reg = Registry::new();
    assert!(reg.counter("requests", "no _total", &[]).is_err());
    assert!(reg.gauge("bad-name", "", &[]).is_err());
    assert!(reg.gauge("ok", "", &["__reserved"]).is_err());
    assert!(reg.histogram("h", "", &["le"], &[1.0]).is_err());
    assert!(reg.histogram("h", "", &[], &[2.0, 1.0]).is_err());
    assert!(reg.histogram("h", "", &[], &[f64::NAN]).is_err());
    let a = reg.gauge("g", "help", &["x"]).expect("first");
    let b = reg
        .gauge("g", "help", &["x"])
        .expect("identical registration shares the family");
    a.with(&["1"]).expect("labels").set(7.0);
    assert_eq!(b.with(&["1"]).expect("labels").get(), 7.0);
    assert!(reg.gauge("g", "other help", &["x"]).is_err());
    assert!(reg.counter("g_total", "help", &["x"]).is_ok());
    assert!(reg.histogram("g", "help", &["x"], &[1.0]).is_err());
    assert!(a.with(&[]).is_err(), "wrong number of label values");
    let h = reg
        .histogram("lat_seconds", "", &[], metrics::DEFAULT_BUCKETS)
        .expect("h");
    h.with(&[]).expect("no labels").observe(0.2);
    let fam = reg
        .collect()
        .into_iter()
        .find(|f| f.desc.name == "lat_seconds")
        .expect("family");
    assert_eq!(fam.desc.unit, "seconds");
    assert_eq!(fam.sample_name(&fam.samples[0]), "lat_seconds_bucket");
    assert_eq!(
        fam.sample_name(&fam.samples[fam.samples.len() - 1]),
        "lat_seconds_count"
    );
    assert_eq!(fam.samples.len(), metrics::DEFAULT_BUCKETS.len() + 3);
}

#[test]
fn types_cross_threads() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<metrics::TaskCollector>();
    send::<metrics::TaskTarget>();
    send::<metrics::HostCollector>();
    send::<metrics::Families>();
    send_sync::<Registry>();
    send_sync::<metrics::Counter>();
    send_sync::<metrics::HistogramVec>();
    send_sync::<metrics::MetricFamily>();
}
