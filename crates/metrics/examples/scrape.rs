//! One collection round as the server's loop does it, printed as a `/metrics` response would be.
//!
//! `cargo run -p metrics --example scrape -- [CGROUP_PATH_OR_DOCKER_ID ...] [--openmetrics]`, for example
//! `slipway/<task-id>` (a launcher task) or a Docker container id.

use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{
    CgroupMounts, Families, Format, HostCollector, Registry, TaskCollector, TaskTarget, encode,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let format = if args.iter().any(|a| a == "--openmetrics") {
        Format::OpenMetrics
    } else {
        Format::negotiate(None)
    };
    metrics::raise_fd_limit();
    let mounts = CgroupMounts::detect()?;

    // Built once per task when it is launched or adopted; kept while it runs (it holds open files).
    let mut targets: Vec<TaskTarget> = Vec::new();
    for arg in args.iter().filter(|a| !a.starts_with("--")) {
        let (id, paths) = match metrics::docker_cgroup(&mounts, arg) {
            Some(found) => found,
            None => (
                format!("/{}", arg.trim_start_matches('/')),
                mounts.paths(arg),
            ),
        };
        let labels = vec![
            ("app".to_owned(), "/example".to_owned()),
            ("task".to_owned(), arg.clone()),
            ("env".to_owned(), "dev".to_owned()),
            ("version".to_owned(), "1".to_owned()),
            ("id".to_owned(), id),
            ("name".to_owned(), arg.clone()),
            ("image".to_owned(), String::new()),
        ];
        targets.push(TaskTarget::new(labels, paths, None));
    }

    // The server's own metrics live in one registry shared by its subsystems.
    let registry = Registry::new();
    let requests = registry.counter(
        "slipway_proxy_requests_total",
        "Requests proxied.",
        &["app", "code"],
    )?;
    requests.with(&["/example", "200"])?.inc();

    // One round: tasks, host, registry, then exposition.
    let mut tasks = TaskCollector::new();
    let mut host = HostCollector::new();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let mut families = Families::new();
    families.set_timestamp_ms(Some(now.as_millis() as i64));
    for t in &mut targets {
        tasks.collect(t, now.as_secs_f64(), &mut families);
    }
    host.collect(now.as_secs_f64(), &mut families);
    families.set_timestamp_ms(None);
    families.extend(registry.collect());
    let mut out = String::new();
    encode(families.families(), format, &mut out);
    print!("{out}");
    eprintln!(
        "{} samples, content type {}, {:?}",
        families.sample_count(),
        format.content_type(),
        tasks.stats()
    );
    Ok(())
}
