//! `slipway up`: the server. Opens the store, recovers the engine, serves the API, and
//! shuts down gracefully on SIGINT/SIGTERM (tasks keep running unless asked otherwise).

use anyhow::Context;
use engine::{Engine, EngineConfig};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Run the Slipway server in the foreground.
///
/// Serves the Marathon v2 API (and Slipway's /api/v1) on --listen, keeps state in SQLite
/// under --data-dir, and runs apps as local processes. Logs go to stderr, one structured
/// line per event. Ctrl-C (SIGINT) or SIGTERM stops the server; tasks keep running and are
/// re-adopted by the next `slipway up` on the same data directory.
#[derive(clap::Args, Debug)]
pub(crate) struct UpArgs {
    /// A named target (datacenter) apps run on, as NAME=SPEC; repeat for more. Apps whose
    /// id starts with /NAME/ run there: `local` (this server), `swarm` or
    /// `swarm:unix:///path.sock` / `swarm:tcp://HOST:PORT` (a Docker Swarm, through its
    /// manager), `marathon:http://HOST:PORT[?secret=NAME]` (another Slipway or a Marathon,
    /// with `user:password`, `token=…` (DC/OS) or a bearer token from the secret store).
    /// Apps under no target run on the default target (`local` unless a targets file says).
    #[arg(long = "target", value_name = "NAME=SPEC", value_parser = targets::TargetSpec::parse, env = "SLIPWAY_TARGETS", value_delimiter = ',')]
    targets: Vec<targets::TargetSpec>,
    /// A file of targets, one `NAME = SPEC` per line and optionally `default = NAME`
    /// (`#` comments); `--target` flags add to it.
    #[arg(long, value_name = "FILE", env = "SLIPWAY_TARGETS_FILE")]
    targets_file: Option<PathBuf>,
    /// Address the HTTP API listens on. Keep it on loopback unless you mean otherwise.
    #[arg(long, default_value = "127.0.0.1:8080", env = "SLIPWAY_LISTEN")]
    listen: SocketAddr,
    /// Directory for the database, task sandboxes and logs [default: /var/lib/slipway
    /// as root (tasks and steps, which never run as root, reach their sandboxes and
    /// workspaces by path there; root's home is closed to them), else
    /// $XDG_DATA_HOME/slipway or ~/.local/share/slipway].
    #[arg(long, env = "SLIPWAY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address tasks are reachable at: reported as the task host and passed as HOST.
    #[arg(long, default_value = "127.0.0.1")]
    task_host: String,
    /// Host ports handed to tasks (PORT0, PORT1, ...), as FIRST-LAST.
    #[arg(long, default_value = "31000-32000", value_parser = parse_range)]
    task_ports: RangeInclusive<u16>,
    /// Service ports assigned to apps that ask for port 0, as FIRST-LAST.
    #[arg(long, default_value = "10000-20000", value_parser = parse_range)]
    service_ports: RangeInclusive<u16>,
    /// The unprivileged account tasks run under (Marathon's --mesos_user), created when it
    /// is missing and the server is root (else `nobody`). Apps that name a `user` run as
    /// that one, which only admins may ask for. Ignored when the server is not root.
    #[arg(long, default_value = crate::privileges::DEFAULT_TASK_USER, env = "SLIPWAY_TASK_USER")]
    task_user: String,
    /// Each app's tasks run with a uid of their own from this range (in the task user's
    /// group), so apps cannot read each other's sandboxes or processes; `off` runs every
    /// task as the task user itself.
    #[arg(long, default_value = "200000-299999", value_parser = crate::privileges::parse_uid_range, env = "SLIPWAY_TASK_UID_RANGE")]
    task_uid_range: crate::privileges::UidRange,
    /// Host paths container volumes may mount without the `hostPath` privilege (repeat
    /// or comma list); any other host path needs it (admins, or whom the policy grants it).
    #[arg(long, value_delimiter = ',', env = "SLIPWAY_ALLOW_HOST_PATH")]
    allow_host_path: Vec<String>,
    /// Most instances one app may ask for (a 422 names the limit).
    #[arg(long, default_value_t = 200, env = "SLIPWAY_MAX_INSTANCES_PER_APP")]
    max_instances_per_app: u32,
    /// How far all apps together may ask for more cpus and memory than the machine has
    /// (`cpus × instances` summed, against the cores times this factor; 1 = not at all).
    #[arg(long, default_value_t = 4.0, env = "SLIPWAY_OVERCOMMIT")]
    overcommit: f64,
    /// Collect task, host and server metrics into the embedded time-series store, serve
    /// them on /metrics, the Prometheus query API and InfluxDB's write API.
    #[arg(long, value_enum, default_value_t = OnOff::On, env = "SLIPWAY_METRICS")]
    metrics: OnOff,
    /// How often metrics are collected (1s to 5m).
    #[arg(long, default_value = "10s", value_parser = parse_interval, env = "SLIPWAY_METRICS_INTERVAL")]
    metrics_interval: std::time::Duration,
    /// Most series the time-series store holds (collected and written through /write);
    /// samples of new series past it are refused (counted in
    /// `slipway_tsdb_samples_rejected_total{reason="too_many_series"}`, logged). Each
    /// series costs about 2.5 KB of memory with 15 days of data.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000), env = "SLIPWAY_METRICS_MAX_SERIES")]
    metrics_max_series: u64,
    /// How long raw samples are kept (e.g. 15d, 36h); minute rollups are kept 90 days
    /// and hour rollups 2 years, longer than that when it is longer.
    #[arg(long, default_value = "15d", value_parser = parse_retention, env = "SLIPWAY_METRICS_RETENTION")]
    metrics_retention: std::time::Duration,
    /// Also write every collected round to this InfluxDB 1.x, in cAdvisor's InfluxDB schema
    /// (the path names the database, created if missing; `?u=&p=&rp=` pass through),
    /// e.g. `http://127.0.0.1:8086/cadvisor`.
    #[arg(long, value_name = "URL", env = "SLIPWAY_INFLUXDB_URL")]
    influxdb_url: Option<String>,
    /// Connections the API serves at once; more get 503 and are closed.
    #[arg(long, default_value_t = 2048, env = "SLIPWAY_MAX_CONNECTIONS")]
    max_connections: usize,
    /// Time a client has to send a request's headers, and the longest a kept-alive API
    /// connection may sit silent (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration, env = "SLIPWAY_HEADER_TIMEOUT")]
    header_timeout: std::time::Duration,
    /// Kill every task when the server stops (by default tasks outlive the server).
    #[arg(long)]
    kill_tasks_on_shutdown: bool,
    /// Run container apps on the local Docker Engine when a daemon is reachable (`auto`), or
    /// never (`off`). Process apps always run.
    #[arg(long, value_enum, default_value_t = DockerMode::Auto, env = "SLIPWAY_DOCKER")]
    docker: DockerMode,
    /// Docker daemon address [default: DOCKER_HOST, else unix:///var/run/docker.sock].
    #[arg(long, env = "DOCKER_HOST")]
    docker_host: Option<String>,
    /// Host address that container ports are published on.
    #[arg(long, default_value = "127.0.0.1")]
    publish_host: String,
    /// Registry credentials for image pulls, in Docker's config.json format
    /// [default: $DOCKER_CONFIG/config.json or ~/.docker/config.json when present].
    /// A `.docker/config.json` fetched into a task's sandbox (for example from
    /// `uris: ["file:///etc/docker.tar.gz"]`) takes precedence for that task.
    #[arg(long, env = "SLIPWAY_REGISTRY_CONFIG")]
    registry_config: Option<PathBuf>,
    /// CA certificates (a PEM bundle) that pipelines trust for registries over TLS, besides
    /// the system's roots (digest pinning, promotion). Docker itself trusts a registry's CA
    /// from /etc/docker/certs.d/HOST:PORT/ca.crt.
    #[arg(long, env = "SLIPWAY_REGISTRY_CA")]
    registry_ca: Option<PathBuf>,
    /// Authentication: `on` (default; HTTP Basic or Bearer tokens on every endpoint) or
    /// `none` (only allowed when --listen is a loopback address; everyone acts as admin).
    #[arg(long, value_enum, default_value_t = AuthArg::On, env = "SLIPWAY_AUTH")]
    auth: AuthArg,
    /// Let requests without credentials read (GET) as the viewer role.
    #[arg(long, env = "SLIPWAY_ANONYMOUS_READ")]
    anonymous_read: bool,
    /// Admin API token to accept, for automation; created as the first admin's token when
    /// the server has no users yet (otherwise a one-time password is printed once).
    #[arg(long, env = "SLIPWAY_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Key file sealing secrets at rest, kept outside the database
    /// [default: <data-dir>/secret.key, created with mode 0600].
    #[arg(long, env = "SLIPWAY_SECRET_KEY_FILE")]
    secret_key_file: Option<PathBuf>,
    /// Run the edge proxy (service ports and HTTP vhosts for apps, with drain before kill).
    #[arg(long, value_enum, default_value_t = OnOff::On, env = "SLIPWAY_PROXY")]
    proxy: OnOff,
    /// Address the proxy's service-port listeners bind to.
    #[arg(long, default_value = "127.0.0.1", env = "SLIPWAY_PROXY_BIND")]
    proxy_bind: std::net::IpAddr,
    /// Listener for HTTP virtual hosts (HAPROXY_{n}_VHOST labels); `off` for none.
    #[arg(
        long,
        default_value = "127.0.0.1:8000",
        env = "SLIPWAY_PROXY_VHOST_LISTEN"
    )]
    proxy_vhost_listen: String,
    /// Only route apps whose HAPROXY_GROUP contains one of these (comma list; default all).
    #[arg(long, value_delimiter = ',', env = "SLIPWAY_PROXY_GROUPS")]
    proxy_groups: Vec<String>,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "SLIPWAY_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum AuthArg {
    /// Every request authenticates.
    On,
    /// No authentication (loopback listeners only).
    None,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum DockerMode {
    /// Use Docker when a daemon answers; retry while it does not.
    Auto,
    /// Never use Docker.
    Off,
}

/// The Docker CLI's credentials file, if there is one.
fn default_registry_config() -> Option<PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
    let file = dir.join("config.json");
    file.exists().then_some(file)
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    /// Human-readable lines with key=value fields.
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or("expected FIRST-LAST, e.g. 31000-32000")?;
    let a: u16 = a
        .trim()
        .parse()
        .map_err(|_| format!("'{a}' is not a port number"))?;
    let b: u16 = b
        .trim()
        .parse()
        .map_err(|_| format!("'{b}' is not a port number"))?;
    if a == 0 || b < a {
        return Err(format!(
            "'{s}' is not a range of ports (1-65535, FIRST <= LAST)"
        ));
    }
    Ok(a..=b)
}

/// `500ms`, `30s`, `2m`, `1h` or plain seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("'{s}' is not a duration such as 30s or 2m"))?;
    let ms = match unit {
        "ms" => n,
        "" | "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return Err(format!("'{s}' is not a duration such as 30s or 2m")),
    };
    if ms == 0 {
        return Err("a timeout must be longer than 0".into());
    }
    Ok(std::time::Duration::from_millis(ms))
}

/// `--metrics-retention`: a duration of at least an hour, in `h` or `d` (or `m`, `s`).
fn parse_retention(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let d = match t.strip_suffix('d') {
        Some(days) => {
            let days: u64 = days
                .parse()
                .map_err(|_| format!("'{s}' is not a duration such as 15d or 36h"))?;
            std::time::Duration::from_secs(days.saturating_mul(86_400))
        }
        None => parse_duration(t)?,
    };
    if d < std::time::Duration::from_secs(3600)
        || d > std::time::Duration::from_secs(10 * 365 * 86_400)
    {
        return Err(format!("'{s}' is outside 1h-3650d"));
    }
    Ok(d)
}

/// `--metrics-interval`: a duration between 1 s and 5 min.
fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(s)?;
    if d < std::time::Duration::from_secs(1) || d > std::time::Duration::from_secs(300) {
        return Err(format!("'{s}' is outside 1s-5m"));
    }
    Ok(d)
}

/// The per-user data directory.
fn default_data_dir() -> PathBuf {
    if crate::privileges::is_root() {
        return PathBuf::from("/var/lib/slipway");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("slipway");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/slipway"),
        None => PathBuf::from("/var/lib/slipway"),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

pub(crate) async fn run(args: UpArgs) -> ExitCode {
    init_logging(args.log_format);
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "slipway stopped");
            ExitCode::from(1)
        }
    }
}

async fn serve(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    // One server per data directory: two would fight over the same tasks.
    let lock_path = data_dir.join("slipway.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        anyhow::bail!(
            "another slipway server is using {}; stop it or pick another --data-dir",
            data_dir.display()
        );
    }
    let key_path = args
        .secret_key_file
        .clone()
        .unwrap_or_else(|| data_dir.join("secret.key"));
    crate::privileges::secure_data_dir(&data_dir, &key_path)?;
    crate::privileges::raise_open_files();
    let task_identity =
        crate::privileges::task_identity(&args.task_user, args.task_uid_range.0.clone())?;
    let task_user_name = match &task_identity {
        engine::TaskIdentity::User(u) => u.clone(),
        _ => args.task_user.clone(),
    };
    // Host pipeline steps never run as the server either: each pipeline its own uid from
    // the same range (or the task user), never root.
    let step_identity = match &task_identity {
        engine::TaskIdentity::Server => pipeline::step_user::StepIdentity::Server,
        engine::TaskIdentity::User(u) => {
            let (uid, gid) =
                engine::account_ids(u).with_context(|| format!("the task user {u} vanished"))?;
            pipeline::step_user::StepIdentity::Account { uid, gid }
        }
        engine::TaskIdentity::PerApp { uids, gid } => {
            pipeline::step_user::StepIdentity::PerPipeline {
                uids: uids.clone(),
                gid: *gid,
            }
        }
    };
    let store = Arc::new(
        store::Store::open(&data_dir.join("slipway.db"))
            .with_context(|| format!("cannot open the database in {}", data_dir.display()))?,
    );
    let mut cfg = EngineConfig::new(data_dir.clone());
    cfg.host = args.task_host;
    cfg.host_ports = args.task_ports;
    cfg.service_ports = args.service_ports;
    cfg.kill_tasks_on_shutdown = args.kill_tasks_on_shutdown;
    cfg.task_identity = task_identity;
    let registry_config = args.registry_config.or_else(default_registry_config);
    let pipeline_docker = (args.docker == DockerMode::Auto).then(|| docker::DockerConfig {
        host: args.docker_host.clone(),
        publish_host: args.publish_host.clone(),
        ..docker::DockerConfig::default()
    });
    cfg.docker = engine::DockerOptions {
        enabled: args.docker == DockerMode::Auto,
        host: args.docker_host,
        publish_host: args.publish_host,
        registry_config: registry_config.clone(),
    };
    if args.auth == AuthArg::None {
        if !args.listen.ip().is_loopback() {
            anyhow::bail!(
                "--auth none is only allowed when --listen is a loopback address (not {})",
                args.listen
            );
        }
        tracing::warn!(
            "authentication is OFF (--auth none): anyone who can reach {} acts as admin",
            args.listen
        );
    }
    let secret_key = Arc::new(
        auth::SecretKey::load_or_create(&key_path)
            .with_context(|| format!("cannot load the secret key {}", key_path.display()))?,
    );
    let mode = if args.auth == AuthArg::On {
        api::AuthMode::On
    } else {
        api::AuthMode::Off
    };
    let identity = Arc::new(
        api::Identity::open(store.clone(), mode, args.anonymous_read)
            .map_err(anyhow::Error::msg)?,
    );
    if mode == api::AuthMode::On
        && let Some(password) = identity
            .bootstrap(args.admin_token.as_deref())
            .map_err(anyhow::Error::msg)?
    {
        // Printed once, on stderr only, never through the logger.
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "\n  Slipway created the first user.\n    user:     admin\n    password: {password}\n  It is shown this once. Sign in with `slipway login`, then change it with\n  `slipway users passwd admin`.\n"
            );
        }
    }
    // The edge proxy exists before the engine, which drains tasks through it; it starts
    // listening once its runtime runs (below).
    let proxy = if args.proxy == OnOff::On {
        let vhost = match args.proxy_vhost_listen.as_str() {
            "off" | "" => None,
            addr => Some(
                addr.parse()
                    .with_context(|| format!("--proxy-vhost-listen: '{addr}' is not an address"))?,
            ),
        };
        Some(proxy::Proxy::new(proxy::ProxyConfig {
            bind_ip: args.proxy_bind,
            vhost_listen: vhost,
            groups: args.proxy_groups.clone(),
            connect_timeout: std::time::Duration::from_secs(2),
            idle_timeout: std::time::Duration::from_secs(60),
        }))
    } else {
        None
    };
    let secrets: Arc<dyn engine::SecretResolver> = Arc::new(api::identity::StoreSecrets {
        store: store.clone(),
        key: secret_key.clone(),
    });
    let mut builder = Engine::builder(cfg, store.clone()).secrets(secrets.clone());
    let targets = target_set(args.targets_file.as_deref(), &args.targets)?;
    let agent_id = engine::agent_id(&store).context("cannot read the installation id")?;
    let mut scheduled = std::collections::BTreeSet::new();
    for t in targets.iter() {
        let scheduler: Arc<dyn engine::backend::scheduled::Scheduler> = match &t.kind {
            targets::TargetKind::Local => continue,
            targets::TargetKind::Swarm { host } => {
                Arc::new(engine::backend::swarm::SwarmScheduler::new(
                    &t.name,
                    host.clone(),
                    &agent_id,
                    registry_config.clone(),
                ))
            }
            targets::TargetKind::Marathon { url, secret } => {
                Arc::new(engine::backend::marathon::MarathonScheduler::new(
                    &t.name,
                    url,
                    secret.clone(),
                    secrets.clone(),
                ))
            }
        };
        tracing::info!(target = %t.name, kind = %t.describe(), "named target");
        scheduled.insert(t.name.clone());
        builder = builder.scheduler(scheduler);
    }
    let default = targets.default_target().name.clone();
    builder = builder.targets(
        targets
            .configured()
            .map(|t| engine::TargetInfo {
                name: t.name.clone(),
                kind: t.kind_name().into(),
                address: match &t.kind {
                    targets::TargetKind::Local => None,
                    targets::TargetKind::Swarm { host } => {
                        Some(host.clone().unwrap_or_else(|| "local Docker daemon".into()))
                    }
                    targets::TargetKind::Marathon { url, .. } => Some(url.clone()),
                },
                default: t.name == default,
            })
            .collect(),
    );
    if !scheduled.is_empty() {
        builder = builder.placement(Arc::new(move |id: &model::PathId| {
            let t = targets.for_app(&id.to_string());
            scheduled.contains(&t.name).then(|| t.name.clone())
        }));
    }
    if let Some(proxy) = &proxy {
        builder = builder.traffic_gate(Arc::new(crate::proxy_sync::Gate(proxy.clone())));
    }
    let engine = builder.open().context("cannot recover the engine state")?;
    if let engine::CgroupSupport::Unavailable { reason } = engine.cgroup_support() {
        tracing::warn!(%reason, "cpus/mem limits will not be enforced");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let listen = listener.local_addr().unwrap_or(args.listen);
    if !listen.ip().is_loopback() {
        tracing::warn!(%listen, "the API listens beyond loopback");
    }
    let shutdown = CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    tracker.spawn(engine.clone().run(shutdown.clone()));
    // The proxy gets threads of its own: the engine's reconcile loop does blocking work
    // (SQLite writes, /proc scans) on its runtime's workers, which would otherwise stall
    // proxied traffic behind it (p99 at 2,000 req/s: 1.05 ms shared, see perf.md). This
    // runtime runs the listeners, TCP-mode relays and route updates; HTTP connections are
    // served on the proxy's single-threaded data-plane threads (its `shard.rs`).
    let mut proxy_rt = None;
    let proxy = if let Some(proxy) = proxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(
                std::thread::available_parallelism()
                    .map_or(2, std::num::NonZeroUsize::get)
                    .min(8),
            )
            .thread_name("slipway-proxy")
            .enable_all()
            .build()
            .map(|rt| OwnRuntime(Some(rt)))
            .context("cannot start the proxy's runtime")?;
        // Listeners register with the runtime that binds them, so the route updates that
        // open them run there too.
        let handle = rt.handle();
        let opening = proxy.clone();
        handle
            .spawn(async move { opening.open_vhost().await })
            .await
            .context("the proxy's runtime stopped")?
            .with_context(|| {
                format!(
                    "cannot listen on --proxy-vhost-listen {} (another address, or `off`)",
                    args.proxy_vhost_listen
                )
            })?;
        tracker.spawn_on(proxy.clone().run(shutdown.clone()), &handle);
        tracker.spawn_on(
            crate::proxy_sync::run(engine.clone(), proxy.clone(), shutdown.clone()),
            &handle,
        );
        proxy_rt = Some(rt);
        Some(proxy)
    } else {
        None
    };
    // Pipeline runs: workspaces under <data-dir>/runs; secrets from the same sealed store.
    let secrets_for_runs = api::identity::StoreSecrets {
        store: store.clone(),
        key: secret_key.clone(),
    };
    let pipelines = pipeline::service::Service::new(
        store.clone(),
        data_dir.join("runs"),
        Arc::new(move |pipeline: &str, name: &str| {
            secrets_for_runs.resolve_for_pipeline(pipeline, name)
        }),
    )
    .with_step_identity(step_identity);
    if let Some(config) = pipeline_docker {
        pipelines.set_docker(pipeline::service::DockerSetup {
            config,
            registry_config: registry_config.clone(),
            registry_ca: args.registry_ca.clone(),
        });
    }
    let admission = Arc::new(api::admission::AdmissionConfig {
        task_user: task_user_name,
        allowed_host_paths: args.allow_host_path.clone(),
        max_instances_per_app: args.max_instances_per_app,
        overcommit: args.overcommit,
        ..api::admission::AdmissionConfig::default()
    });
    pipelines.set_deployer(Arc::new(api::EngineDeployer {
        engine: engine.clone(),
        identity: identity.clone(),
        store: store.clone(),
        admission: admission.clone(),
    }));
    let watch = match args.metrics {
        OnOff::On => {
            let mut cfg = watch::WatchConfig {
                interval: args.metrics_interval,
                ..watch::WatchConfig::default()
            };
            let o = &mut cfg.store;
            o.max_series = usize::try_from(args.metrics_max_series).unwrap_or(usize::MAX);
            o.retention_ms = i64::try_from(args.metrics_retention.as_millis()).unwrap_or(i64::MAX);
            o.rollup_minute_retention_ms = o.rollup_minute_retention_ms.max(o.retention_ms);
            o.rollup_hour_retention_ms = o.rollup_hour_retention_ms.max(o.retention_ms);
            let w = Arc::new(
                watch::Watch::open(&data_dir.join("tsdb"), cfg, engine.clone())
                    .context("cannot open the time-series store")?,
            );
            let policies = identity.clone();
            w.set_env_of(Arc::new(move |id, labels| {
                policies.policies().environment_for(id, labels).name.clone()
            }));
            if let Some(p) = &proxy {
                let p = p.clone();
                w.set_extra_metrics(Arc::new(move |f| p.visit_metrics(f)));
            }
            pipelines.set_metrics(Arc::new(PipelineMetrics(w.clone())));
            tracker.spawn(w.clone().run(shutdown.clone()));
            if let Some(url) = &args.influxdb_url {
                tracker.spawn(w.influxdb_export(url)?.run(shutdown.clone()));
            }
            let autoscaler = api::autoscale::controller(&engine, &store, &identity, &admission, &w);
            tracker.spawn(autoscaler.run(shutdown.clone()));
            Some(w)
        }
        OnOff::Off => None,
    };
    // After the metrics are wired, so resumed runs and their steps are counted too.
    if let Err(e) = pipelines.recover() {
        tracing::error!(error = %e, "cannot recover pipeline runs");
    }
    pipelines.start_polling();
    let ctx = api::Ctx {
        engine,
        listen,
        started,
        identity,
        store,
        secret_key,
        proxy,
        pipelines: Some(pipelines.clone()),
        admission,
        watch,
    };
    tracker.spawn(signals(shutdown.clone()));
    tracing::info!(
        url = %format!("http://{listen}"),
        data_dir = %data_dir.display(),
        ms = started.elapsed().as_millis() as u64,
        "slipway is up"
    );
    let limits = api::ServeLimits {
        max_connections: args.max_connections,
        header_timeout: args.header_timeout,
    };
    let console = console::router(ctx.clone());
    let served = api::serve_with(listener, ctx, shutdown.clone(), limits, Some(console)).await;
    shutdown.cancel();
    // Running steps are cancelled; their runs resume or are marked interrupted at the
    // next start.
    pipelines.shutdown().await;
    tracker.close();
    tracker.wait().await;
    drop(proxy_rt);
    drop(lock);
    served.context("the HTTP server failed")
}

/// Pipeline runs and steps as they end, into the server's metrics.
struct PipelineMetrics(Arc<watch::Watch>);

impl pipeline::service::RunMetrics for PipelineMetrics {
    fn run_started(&self, pipeline: &str) {
        self.0.pipeline_run_started(pipeline);
    }

    fn step_finished(&self, pipeline: &str, step: &str, status: &str, seconds: f64) {
        self.0
            .pipeline_step_finished(pipeline, step, status, seconds);
    }

    fn run_finished(&self, pipeline: &str, status: &str, seconds: f64) {
        self.0.pipeline_run_finished(pipeline, status, seconds);
    }
}

/// A runtime owned by async code: dropping a tokio runtime where blocking is not allowed
/// panics, so this one is shut down in the background, on every path out of `serve`.
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl OwnRuntime {
    fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(rt) => rt.handle().clone(),
            None => tokio::runtime::Handle::current(),
        }
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = shutdown.cancelled() => return,
    }
    shutdown.cancel();
}

/// The targets from the targets file (if any) and the `--target` flags on top.
fn target_set(
    file: Option<&Path>,
    flags: &[targets::TargetSpec],
) -> anyhow::Result<targets::Targets> {
    let mut set = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the targets file {}", path.display()))?;
            targets::parse_file(&text).map_err(|e| {
                let lines: Vec<String> =
                    e.0.iter()
                        .map(|e| format!("{}:{e}", path.display()))
                        .collect();
                anyhow::anyhow!("invalid targets file:\n{}", lines.join("\n"))
            })?
        }
        None => targets::Targets::default(),
    };
    for spec in flags {
        set.insert(spec.clone())?;
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_takes_days_and_hours_within_bounds() {
        let d = |s| parse_retention(s).map(|d| d.as_secs());
        assert_eq!(d("15d"), Ok(15 * 86_400));
        assert_eq!(d("36h"), Ok(36 * 3_600));
        assert!(d("30m").unwrap_err().contains("outside 1h-3650d"));
        assert!(d("4000d").is_err());
        assert!(d("xd").unwrap_err().contains("15d or 36h"));
    }

    #[test]
    fn targets_come_from_the_file_and_the_flags_on_top() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("targets.conf");
        std::fs::write(
            &file,
            "# the seed's datacenters\nAA = local\nBB = swarm\ndefault = BB\n",
        )
        .unwrap();
        let cc = targets::TargetSpec::parse("CC=marathon:http://127.0.0.1:9?secret=cc").unwrap();
        let set = target_set(Some(&file), std::slice::from_ref(&cc)).unwrap();
        assert_eq!(set.for_app("/AA/prod/orders").name, "AA");
        assert_eq!(set.for_app("/CC/prod/orders").name, "CC");
        // The file's default takes apps whose id names no target.
        assert_eq!(set.for_app("/prod/orders").name, "BB");

        // A flag naming a target the file has is refused, not silently preferred.
        let again = targets::TargetSpec::parse("BB=local").unwrap();
        let e = target_set(Some(&file), &[again]).unwrap_err().to_string();
        assert!(e.contains("BB"), "{e}");

        // Mistakes name the file, line and column.
        std::fs::write(&file, "AA = local\nBB = kubernetes\n").unwrap();
        let e = format!("{:#}", target_set(Some(&file), &[]).unwrap_err());
        assert!(e.contains("targets.conf:2:"), "{e}");

        // Without a file, apps run here unless their id names a flag's target.
        let set = target_set(None, &[cc]).unwrap();
        assert_eq!(set.for_app("/prod/orders").name, "local");
    }
}
