//! Property tests: collectors never panic on garbage files, and any exposition we write reads back.

use std::borrow::Cow;

use proptest::prelude::*;

use metrics::{
    CgroupPaths, Desc, Families, Format, HostCollector, HostPaths, Labels, MetricFamily,
    MetricType, Sample, SampleSuffix, TaskCollector, TaskTarget, encode,
};

const V2_FILES: &[&str] = &[
    "cpu.stat",
    "cpu.max",
    "cpu.weight",
    "memory.current",
    "memory.stat",
    "memory.swap.current",
    "memory.peak",
    "memory.max",
    "memory.events",
    "io.stat",
    "pids.current",
    "cgroup.procs",
];
const V1_FILES: &[&str] = &[
    "cpuacct.usage",
    "cpuacct.stat",
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "cpu.shares",
    "cpu.stat",
    "memory.usage_in_bytes",
    "memory.stat",
    "memory.max_usage_in_bytes",
    "memory.failcnt",
    "memory.limit_in_bytes",
    "memory.oom_control",
    "pids.current",
    "tasks",
    "cgroup.procs",
    "blkio.throttle.io_service_bytes_recursive",
    "blkio.throttle.io_serviced_recursive",
];
const PROC_FILES: &[&str] = &[
    "stat",
    "loadavg",
    "meminfo",
    "diskstats",
    "net/dev",
    "77/net/dev",
    "77/stat",
];

/// Garbage that looks a bit like kernel files: keys, numbers, colons, huge and negative values, binary.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "([a-z_]{0,12}[ :=]{0,2}-?[0-9]{0,25}[ \n]{0,2}){0,20}".prop_map(String::into_bytes),
        "(([0-9]{1,3}:[0-9]{1,3} )?(Read|Write|Total|rbytes=|wbytes=)[0-9 ]{0,22}\n){0,8}"
            .prop_map(String::into_bytes),
        "( *[a-z0-9]{0,6}:( [0-9]{0,21}){0,17}\n){0,6}".prop_map(String::into_bytes),
    ]
}

fn files(n: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(garbage(), n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn collectors_survive_garbage(v2 in files(V2_FILES.len()), v1 in files(V1_FILES.len()), procs in files(PROC_FILES.len())) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (d2, d1, proc) = (tmp.path().join("v2"), tmp.path().join("v1"), tmp.path().join("proc"));
        for (dir, names, contents) in [(&d2, V2_FILES, &v2), (&d1, V1_FILES, &v1), (&proc, PROC_FILES, &procs)] {
            for (name, content) in names.iter().zip(contents.iter()) {
                let p = dir.join(name);
                std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                std::fs::write(p, content).expect("write");
            }
        }
        std::fs::create_dir_all(proc.join("self/ns")).expect("mkdir");
        std::fs::create_dir_all(proc.join("77/ns")).expect("mkdir");
        std::os::unix::fs::symlink("net:[1]", proc.join("self/ns/net")).expect("symlink");
        std::os::unix::fs::symlink("net:[2]", proc.join("77/ns/net")).expect("symlink");
        let mut c = TaskCollector::with_proc_root(&proc);
        let mut f = Families::new();
        c.collect(&mut TaskTarget::new(vec![], CgroupPaths::V2(d2), Some(77)), 1.0, &mut f);
        let v1 = metrics::V1Dirs {
            cpu: Some(d1.clone()), cpuacct: Some(d1.clone()), memory: Some(d1.clone()), pids: Some(d1.clone()), blkio: Some(d1),
        };
        c.collect(&mut TaskTarget::new(vec![], CgroupPaths::V1(v1), Some(77)), 1.0, &mut f);
        HostCollector::with_paths(HostPaths { proc_root: proc, filesystems: false }).collect(1.0, &mut f);
        for format in [Format::Prometheus, Format::OpenMetrics] {
            let mut out = String::new();
            encode(f.families(), format, &mut out);
            prop_assert!(metrics::reader::parse(&out, format).is_ok(), "{out}");
        }
    }

    #[test]
    fn any_labels_and_values_encode_validly(
        labels in proptest::collection::vec(("[a-zA-Z_][a-zA-Z0-9_]{0,8}", any::<String>()), 0..4),
        value in prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY), Just(-0.0)],
        ts in proptest::option::of(any::<i64>()),
        kind in prop_oneof![Just(MetricType::Counter), Just(MetricType::Gauge), Just(MetricType::Unknown)],
        help in any::<String>(),
    ) {
        let mut seen = std::collections::HashSet::new();
        let labels: Labels = labels.into_iter().filter(|(k, _)| !k.starts_with("__") && seen.insert(k.clone())).collect();
        let fam = MetricFamily {
            desc: Desc { name: Cow::Borrowed("fuzz_metric_total"), kind, help: Cow::Owned(help.clone()), unit: Cow::Borrowed("") },
            samples: vec![Sample { suffix: SampleSuffix::None, labels: labels.clone(), extra: vec![], value, timestamp_ms: ts }],
        };
        for format in [Format::Prometheus, Format::OpenMetrics] {
            let mut out = String::new();
            encode(std::slice::from_ref(&fam), format, &mut out);
            let parsed = metrics::reader::parse(&out, format);
            prop_assert!(parsed.is_ok(), "{:?}\n{}", parsed, out);
            let parsed = parsed.expect("checked");
            let s = &parsed[0].samples[0];
            prop_assert_eq!(&s.labels[..], labels.pairs());
            prop_assert!(s.value == value || (s.value.is_nan() && value.is_nan()));
            if let Some(ts) = ts.filter(|t| t.unsigned_abs() < 1 << 50) {
                let written = s.timestamp.expect("timestamp written");
                let ms = if format == Format::OpenMetrics { written * 1000.0 } else { written };
                prop_assert!((ms - ts as f64).abs() < 0.5, "{} written as {}", ts, written);
            }
            prop_assert_eq!(parsed[0].help.as_deref().unwrap_or(""), help.as_str());
        }
    }

    #[test]
    fn mount_tables_never_panic(text in garbage(), controllers in "[a-z ]{0,30}") {
        let _ = metrics::CgroupMounts::from_mounts(&text, |_| controllers.clone());
    }

    #[test]
    fn sanitized_label_names_are_valid(raw in any::<String>()) {
        let name = metrics::sanitize_label_name(&raw);
        let text = format!("x{{{name}=\"v\"}} 1\n");
        prop_assert!(metrics::reader::parse(&text, Format::Prometheus).is_ok(), "{}", text);
    }

    #[test]
    fn reader_never_panics(text in "[ -~\n]{0,200}") {
        let _ = metrics::reader::parse(&text, Format::Prometheus);
        let _ = metrics::reader::parse(&text, Format::OpenMetrics);
    }
}
