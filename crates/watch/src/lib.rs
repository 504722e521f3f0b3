//! The server's monitoring: every `--metrics-interval` it collects each task's cgroup and
//! `/proc` figures (cAdvisor's names, plus `app`, `task`, `env` and `version` labels), the
//! host's (node-exporter's names) and the server's own, keeps the latest round for
//! `/metrics`, and appends everything to the embedded time-series store, which PromQL
//! queries and InfluxDB line protocol writes go to.
//!
//! It knows the engine only through [`engine::Engine::metric_targets`]; the wire formats
//! (Prometheus' and InfluxDB's HTTP APIs) live in `api`.

mod collect;
pub mod export;
mod ingest;
mod server;
mod storage;

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub use ingest::{ApiVersion, WriteOutcome, WriteRequest, error_body};
pub use storage::{DbStorage, to_store_matchers};

/// Errors of the monitoring subsystem.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The time-series store failed.
    #[error("time-series store: {0}")]
    Store(#[from] tsdb::Error),
    /// The cgroup mounts could not be read.
    #[error("metrics collector: {0}")]
    Collector(String),
    /// `--influxdb-url` is not usable.
    #[error("influxdb export: {0}")]
    Export(String),
}

/// Settings of [`Watch`].
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// How often everything is collected (default 10 s, down to 1 s).
    pub interval: Duration,
    /// Options of the time-series store.
    pub store: tsdb::Options,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            interval: Duration::from_secs(10),
            store: tsdb::Options::default(),
        }
    }
}

/// Labels the collector cannot know itself: the environment an app belongs to.
pub type EnvOf =
    dyn Fn(&model::PathId, &std::collections::BTreeMap<String, String>) -> String + Send + Sync;

/// Samples from elsewhere (the edge proxy), handed to the visitor one at a time; they are
/// exposed on `/metrics` and stored every round.
pub type ExtraMetrics = dyn Fn(&mut dyn FnMut(&metrics::SampleRef<'_>)) + Send + Sync;

/// How often a round reads the store's own figures (`slipway_tsdb_*`).
const STORE_STATS_EVERY_MS: i64 = 10_000;

/// The monitoring subsystem: collector state, the latest round, the store.
pub struct Watch {
    db: Arc<tsdb::Db>,
    engine: engine::Engine,
    cfg: WatchConfig,
    latest: RwLock<Vec<metrics::MetricFamily>>,
    state: Mutex<collect::Collector>,
    env_of: RwLock<Option<Arc<EnvOf>>>,
    extra: RwLock<Option<Arc<ExtraMetrics>>>,
    registry: metrics::Registry,
    engine_gauges: collect::EngineGauges,
    server_metrics: server::ServerMetrics,
    store_metrics: server::StoreMetrics,
    /// When the store's figures were last read (ms).
    store_stats_at: std::sync::atomic::AtomicI64,
    described: Mutex<std::collections::HashSet<String>>,
    /// Rounds for `--influxdb-url`, with the `machine` tag.
    outbox: RwLock<Option<(Arc<export::Outbox>, String)>>,
    /// The time of the latest round in the store, for readers that act on fresh samples.
    rounds: tokio::sync::watch::Sender<i64>,
    /// Series of line protocol writes already seen.
    series_cache: ingest::SeriesCache,
}

impl Watch {
    /// Opens (or creates) the store in `dir` and prepares the collectors.
    pub fn open(dir: &Path, cfg: WatchConfig, engine: engine::Engine) -> Result<Watch, WatchError> {
        let db = tsdb::Db::open(dir, cfg.store.clone())?;
        let registry = metrics::Registry::new();
        let engine_gauges = collect::EngineGauges::register(&registry);
        let server_metrics = server::ServerMetrics::register(&registry);
        let store_metrics = server::StoreMetrics::register(&registry);
        Ok(Watch {
            db: Arc::new(db),
            engine,
            cfg,
            latest: RwLock::new(Vec::new()),
            state: Mutex::new(collect::Collector::new()),
            env_of: RwLock::new(None),
            extra: RwLock::new(None),
            registry,
            engine_gauges,
            server_metrics,
            store_metrics,
            store_stats_at: std::sync::atomic::AtomicI64::new(i64::MIN),
            described: Mutex::new(std::collections::HashSet::new()),
            outbox: RwLock::new(None),
            rounds: tokio::sync::watch::Sender::new(0),
            series_cache: ingest::SeriesCache::default(),
        })
    }

    /// The environment of each app, for the `env` label.
    pub fn set_env_of(&self, f: Arc<EnvOf>) {
        *self.env_of.write().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }

    /// Samples from elsewhere (the edge proxy) to expose and store every round.
    pub fn set_extra_metrics(&self, f: Arc<ExtraMetrics>) {
        *self.extra.write().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }

    /// The server's own metrics registry (requests, deployments, runs, ...).
    pub fn registry(&self) -> &metrics::Registry {
        &self.registry
    }

    /// A pipeline run starts: its run counters exist from now on (at 0), so the first
    /// run's end is an increase.
    pub fn pipeline_run_started(&self, pipeline: &str) {
        self.server_metrics.run_started(pipeline);
    }

    /// A pipeline run ended (`slipway_pipeline_runs_total`, and the run duration
    /// histogram): `result` is the run's status (`succeeded`, `failed`, ...).
    pub fn pipeline_run_finished(&self, pipeline: &str, result: &str, seconds: f64) {
        self.server_metrics.run_finished(pipeline, result, seconds);
    }

    /// A pipeline step that ran ended (the step duration histogram).
    pub fn pipeline_step_finished(&self, pipeline: &str, step: &str, result: &str, seconds: f64) {
        self.server_metrics
            .step_finished(pipeline, step, result, seconds);
    }

    /// The store.
    pub fn db(&self) -> &tsdb::Db {
        &self.db
    }

    /// The collection interval.
    pub fn interval(&self) -> Duration {
        self.cfg.interval
    }

    /// A PromQL view of the store.
    pub fn storage(&self) -> DbStorage<'_> {
        DbStorage::new(&self.db)
    }

    /// Changes to the time (ms) of each round once it is in the store: the autoscaler decides
    /// right after a round instead of on a clock of its own.
    pub fn rounds(&self) -> tokio::sync::watch::Receiver<i64> {
        self.rounds.subscribe()
    }

    /// Collects one round now (blocking: reads cgroup files and `/proc`), appends it to the
    /// store and keeps it for `/metrics`. Returns the number of samples.
    pub fn collect_once(&self, now_ms: i64) -> usize {
        let targets = self.engine.metric_targets();
        let env_of = self
            .env_of
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let extra = self.extra.read().unwrap_or_else(|e| e.into_inner()).clone();
        self.engine_gauges.update(&targets);
        let mut round = {
            let mut c = self.state.lock().unwrap_or_else(|e| e.into_inner());
            c.round(
                &self.db,
                now_ms,
                &targets,
                env_of.as_deref(),
                extra.as_deref(),
                &self.registry,
            )
        };
        if let Some((outbox, machine)) = &*self.outbox.read().unwrap_or_else(|e| e.into_inner()) {
            outbox.push(export::encode(&round.families, now_ms, machine));
        }
        let n = {
            let mut described = self.described.lock().unwrap_or_else(|e| e.into_inner());
            collect::store(&self.db, &mut round, now_ms, &mut described)
        };
        *self.latest.write().unwrap_or_else(|e| e.into_inner()) = round.families;
        self.rounds.send_replace(now_ms);
        // The store's figures, for the next round: at most every 10 s, as reading them
        // walks every series (~60-80 ns each: 0.4 ms at 6,000 series, 7 ms at 100,000).
        let last = self
            .store_stats_at
            .load(std::sync::atomic::Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= STORE_STATS_EVERY_MS {
            self.store_stats_at
                .store(now_ms, std::sync::atomic::Ordering::Relaxed);
            self.store_metrics
                .update(&self.db.stats(), self.cfg.store.max_series);
        }
        n
    }

    /// `--influxdb-url`: from now on every round is also queued for InfluxDB, in
    /// cAdvisor's schema; the returned writer sends them (see [`export`]).
    pub fn influxdb_export(&self, url: &str) -> Result<export::Exporter, WatchError> {
        let target = export::Target::parse(url).map_err(WatchError::Export)?;
        let outbox = Arc::new(export::Outbox::default());
        *self.outbox.write().unwrap_or_else(|e| e.into_inner()) =
            Some((outbox.clone(), export::machine()));
        Ok(export::Exporter::new(target, outbox))
    }

    /// `/metrics`: the latest round in the format the `Accept` header asks for.
    pub fn exposition(&self, accept: Option<&str>) -> (&'static str, String) {
        let format = metrics::Format::negotiate(accept);
        let mut out = String::new();
        let latest = self.latest.read().unwrap_or_else(|e| e.into_inner());
        metrics::encode(&latest, format, &mut out);
        (format.content_type(), out)
    }

    /// Runs the collection loop until `shutdown`: a round every interval, and the store's
    /// maintenance (fsync, flush, compaction, retention) every second.
    ///
    /// Rounds run on one thread of their own ([`RoundThread`]) rather than on whichever
    /// blocking thread is free: glibc gives each thread a malloc arena, and a round's
    /// short-lived memory (families, then also the proxy's text) left resident in the arena of every
    /// blocking thread that ever ran one (issue 16: ~20 MiB more after a few rounds).
    pub async fn run(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let mut collect = tokio::time::interval(self.cfg.interval);
        collect.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut maintain = tokio::time::interval(Duration::from_secs(1));
        maintain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let rounds = RoundThread::start(self.clone());
        let mut events = Some(self.engine.events().subscribe());
        loop {
            let event = async {
                match &mut events {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                e = event => match e {
                    Ok(p) => self.server_metrics.on_event(&p.event, now_ms()),
                    // Counted events were missed (the bus keeps a bounded backlog).
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "deployment and health metrics missed engine events");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => events = None,
                },
                _ = collect.tick() => match &rounds {
                    Some(rounds) => rounds.collect(now_ms()).await,
                    None => {
                        let w = self.clone();
                        let _ = tokio::task::spawn_blocking(move || w.collect_once(now_ms())).await;
                    }
                },
                _ = maintain.tick() => {
                    let w = self.clone();
                    let done = tokio::task::spawn_blocking(move || w.db.tick(now_ms())).await;
                    if let Ok(Err(e)) = done {
                        tracing::warn!(error = %e, "time-series store maintenance failed");
                    }
                }
            }
        }
        if let Some(rounds) = rounds {
            rounds.stop().await;
        }
        let w = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = w.db.sync() {
                tracing::warn!(error = %e, "cannot sync the time-series store");
            }
        })
        .await;
    }

    /// Writes InfluxDB line protocol (`/write`, `/api/v2/write`) into the store.
    pub fn write_lines(&self, req: &WriteRequest<'_>) -> WriteOutcome {
        ingest::write(&self.db, &self.series_cache, req, now_ms())
    }
}

/// The thread that runs collection rounds, one at a time, as [`Watch::run`] asks.
struct RoundThread {
    requests: std::sync::mpsc::Sender<(i64, tokio::sync::oneshot::Sender<()>)>,
    thread: std::thread::JoinHandle<()>,
}

impl RoundThread {
    /// Starts the thread; `None` (logged) if it cannot be created.
    fn start(watch: Arc<Watch>) -> Option<RoundThread> {
        let (requests, rx) = std::sync::mpsc::channel::<(i64, tokio::sync::oneshot::Sender<()>)>();
        let spawned = std::thread::Builder::new()
            .name("slipway-collect".into())
            .spawn(move || {
                for (now, done) in rx {
                    watch.collect_once(now);
                    let _ = done.send(());
                }
            });
        match spawned {
            Ok(thread) => Some(RoundThread { requests, thread }),
            Err(e) => {
                tracing::warn!(error = %e, "no collection thread: rounds run on blocking threads");
                None
            }
        }
    }

    /// Collects a round stamped `now_ms` and waits for it.
    async fn collect(&self, now_ms: i64) {
        let (done, finished) = tokio::sync::oneshot::channel();
        if self.requests.send((now_ms, done)).is_ok() {
            let _ = finished.await;
        }
    }

    /// Ends the thread once a round in progress is done.
    async fn stop(self) {
        drop(self.requests);
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    model::Timestamp::now().millis()
}
