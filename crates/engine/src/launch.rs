//! Task life cycle inside the engine: preparing and spawning launches, kill orders,
//! launch results, exits, and health probe results.

use crate::backend::{BackendKind, Exit, Handle, LaunchRequest, Sig, Started};
use crate::state::{
    KEEP_TERMINATED, KillKind, KillOrder, State, TaskFailure, TaskRecord, TaskState, TerminatedTask,
};
use crate::{Engine, Msg, TaskIdentity, ports};
use health::{CheckParams, ProbeOutcome};
use launcher::{FetchSpec, RunAs};
use model::{AppDefinition, EnvValue, HealthCheck, HealthProtocol, PathId, Timestamp};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// A health probe to run outside the state lock.
pub(crate) struct ProbeJob {
    pub(crate) task_id: String,
    pub(crate) index: usize,
    pub(crate) kind: ProbeKind,
    pub(crate) timeout: Duration,
}

pub(crate) enum ProbeKind {
    Http {
        host: String,
        port: u16,
        path: String,
        ignore_1xx: bool,
    },
    Tcp {
        host: String,
        port: u16,
    },
    Command {
        command: String,
        env: Vec<(String, String)>,
        cwd: std::path::PathBuf,
        run_as: Option<(u32, u32)>,
    },
    Broken(String),
}

impl ProbeJob {
    pub(crate) async fn run(self) -> ProbeOutcome {
        match self.kind {
            ProbeKind::Http {
                host,
                port,
                path,
                ignore_1xx,
            } => health::probe_http(&host, port, &path, self.timeout, ignore_1xx).await,
            ProbeKind::Tcp { host, port } => health::probe_tcp(&host, port, self.timeout).await,
            ProbeKind::Command {
                command,
                env,
                cwd,
                run_as,
            } => health::probe_command(&command, &env, Some(&cwd), self.timeout, run_as).await,
            ProbeKind::Broken(cause) => ProbeOutcome::unhealthy(cause),
        }
    }
}

/// How long a task may take to finish its requests after leaving the proxy's routes, unless
/// the app's `SLIPWAY_DRAIN_TIMEOUT_SECONDS` label says otherwise.
const DEFAULT_DRAIN_MS: i64 = 10_000;

/// The drain timeout of an app (label `SLIPWAY_DRAIN_TIMEOUT_SECONDS`).
fn drain_ms(def: &AppDefinition) -> i64 {
    def.labels
        .get("SLIPWAY_DRAIN_TIMEOUT_SECONDS")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map_or(DEFAULT_DRAIN_MS, |v| (v * 1000.0) as i64)
}

/// How often a task that has never passed is probed while its grace period protects it.
const STARTUP_PROBE_MS: i64 = 50;

/// When a check is next due. Marathon's schedule, except that a task still inside its grace
/// period that has never passed is probed every [`STARTUP_PROBE_MS`]: failures there are not
/// counted anyway, and noticing the first success early is what makes deployments fast.
pub(crate) fn probe_due(
    state: &health::HealthState,
    started_ms: i64,
    last_ms: Option<i64>,
    params: &CheckParams,
    now: i64,
) -> i64 {
    let normal = health::next_due(started_ms, last_ms, params);
    match last_ms {
        Some(last) if state.first_success.is_none() && params.within_grace(now, started_ms) => {
            normal.min(last + STARTUP_PROBE_MS)
        }
        _ => normal,
    }
}

/// Marathon health check settings as state machine parameters.
pub(crate) fn check_params(hc: &HealthCheck) -> CheckParams {
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    CheckParams {
        grace_period_seconds: clamp(hc.grace_period_seconds),
        interval_seconds: clamp(hc.interval_seconds),
        timeout_seconds: clamp(hc.timeout_seconds),
        max_consecutive_failures: hc.max_consecutive_failures,
        ignore_http_1xx: hc.ignore_http1xx.unwrap_or(false),
        delay_seconds: clamp(hc.delay_seconds),
        mesos_semantics: hc.protocol.is_mesos(),
    }
}

/// Java's `Double.toString` for whole numbers (`1.0`), as Marathon renders resources.
fn resource(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.1}")
    } else {
        v.to_string()
    }
}

/// An environment variable name from a label or port name (`HAPROXY_0_VHOST`, `http-api` → `HTTP_API`).
fn env_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Marathon's task environment (`docs/task-environment-vars.md`).
pub(crate) fn task_env(
    def: &AppDefinition,
    task: &TaskRecord,
    host: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = def
        .env
        .iter()
        .filter_map(|(k, v)| match v {
            EnvValue::Literal(s) => Some((k.clone(), s.clone())),
            EnvValue::Secret { .. } => None,
        })
        .collect();
    let mut set = |k: String, v: String| {
        env.retain(|(x, _)| x != &k);
        env.push((k, v));
    };
    set("HOST".into(), host.into());
    for (i, p) in task.host_ports.iter().enumerate() {
        set(format!("PORT{i}"), p.to_string());
    }
    if let Some(p) = task.host_ports.first() {
        set("PORT".into(), p.to_string());
    }
    let ports: Vec<String> = task.host_ports.iter().map(|p| p.to_string()).collect();
    set("PORTS".into(), ports.join(","));
    for (i, name) in def.port_names().into_iter().enumerate() {
        if let (Some(name), Some(p)) = (name, task.host_ports.get(i)) {
            set(format!("PORT_{}", env_name(&name)), p.to_string());
        }
    }
    set("MARATHON_APP_ID".into(), def.id.to_string());
    set("MARATHON_APP_VERSION".into(), task.version.to_string());
    set("MARATHON_APP_RESOURCE_CPUS".into(), resource(def.cpus));
    set("MARATHON_APP_RESOURCE_MEM".into(), resource(def.mem));
    set("MARATHON_APP_RESOURCE_DISK".into(), resource(def.disk));
    set("MARATHON_APP_RESOURCE_GPUS".into(), def.gpus.to_string());
    if let Some(image) = def
        .container
        .as_ref()
        .and_then(|c| c.docker.as_ref())
        .map(|d| d.image.clone())
    {
        set("MARATHON_APP_DOCKER_IMAGE".into(), image);
    }
    let label_names: Vec<String> = def.labels.keys().map(|k| env_name(k)).collect();
    set("MARATHON_APP_LABELS".into(), label_names.join(" "));
    for (k, v) in &def.labels {
        set(format!("MARATHON_APP_LABEL_{}", env_name(k)), v.clone());
    }
    set("MESOS_TASK_ID".into(), task.id.clone());
    env
}

/// The environment every task of an app gets, whatever its ports and id: the app's own
/// variables and Marathon's `MARATHON_APP_*` (for tasks another scheduler places).
pub(crate) fn app_env(def: &AppDefinition) -> Vec<(String, String)> {
    let task_specific =
        |k: &str| k == "HOST" || k == "PORTS" || k == "MESOS_TASK_ID" || k.starts_with("PORT");
    let probe = TaskRecord {
        id: String::new(),
        app_id: def.id.clone(),
        version: def.version,
        config_version: def.version_info.last_config_change_at,
        state: TaskState::TaskStaging,
        staged_at: Timestamp(0),
        started_at: None,
        host_ports: Vec::new(),
        service_ports: Vec::new(),
        proc: None,
        sandbox: Default::default(),
        kill: None,
        health: Vec::new(),
        limits_enforced: false,
        last_probe: Vec::new(),
        probing: Vec::new(),
        watched: false,
        launching: false,
        backend: BackendKind::Scheduled,
        docker: false,
        container: None,
        ip: None,
        run_as: None,
        host: None,
        target: None,
    };
    let own: std::collections::BTreeSet<&str> = def.env.keys().map(String::as_str).collect();
    task_env(def, &probe, "")
        .into_iter()
        .filter(|(k, _)| own.contains(k.as_str()) || !task_specific(k))
        .collect()
}

/// Environment variables taken from the secret store (`{"secret": ref}` values), or why
/// one is not available. Values never leave the task's environment.
pub(crate) fn secret_env(
    def: &AppDefinition,
    resolver: Option<&dyn crate::SecretResolver>,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (key, value) in &def.env {
        let EnvValue::Secret { secret } = value else {
            continue;
        };
        let source = def
            .secrets
            .get(secret)
            .and_then(|s| s.get("source"))
            .and_then(|s| s.as_str())
            .unwrap_or(secret);
        let Some(r) = resolver else {
            return Err(format!(
                "env {key}: no secret store is configured for secret '{source}'"
            ));
        };
        let v = r
            .resolve(source)
            .map_err(|e| format!("env {key}: secret '{source}' is not available: {e}"))?;
        out.push((key.clone(), v));
    }
    Ok(out)
}

impl Engine {
    /// Creates and persists a staging task for `app_id`, returning its launch request.
    /// An `Err` is a launch failure to record against the app.
    pub(crate) fn prepare_launch(
        &self,
        st: &mut State,
        app_id: &PathId,
        now: i64,
    ) -> Result<(BackendKind, LaunchRequest), String> {
        let def = st
            .apps
            .get(app_id)
            .map(|a| Arc::new(a.def.clone()))
            .ok_or("app vanished")?;
        let kind = BackendKind::of(&def);
        if let Some(reason) = self.backend(kind).unavailable() {
            return Err(reason);
        }
        let secrets = secret_env(&def, self.inner.secrets.as_deref())?;
        let host_ports = self.host_ports_for(st, &def)?;
        // Containers run as their image says (or the app's `user`, inside the container).
        let run_as = match (&def.user, &self.inner.cfg.task_identity, kind) {
            (_, _, BackendKind::Docker) | (None, TaskIdentity::Server, _) => RunAs::Server,
            (Some(user), _, _) => RunAs::User(user.clone()),
            (None, TaskIdentity::User(user), _) => RunAs::User(user.clone()),
            (None, TaskIdentity::PerApp { uids, gid }, _) => RunAs::Id {
                uid: self.app_uid(st, app_id, uids)?,
                gid: *gid,
            },
        };
        let id = format!("{}.{}", def.id.safe_name(), uuid::Uuid::new_v4());
        let sandbox = self.inner.cfg.data_dir.join("sandboxes").join(&id);
        let checks = def.health_checks.len();
        let task = TaskRecord {
            id: id.clone(),
            app_id: def.id.clone(),
            version: def.version,
            config_version: def.version_info.last_config_change_at,
            state: TaskState::TaskStaging,
            staged_at: Timestamp(now),
            started_at: None,
            host_ports,
            service_ports: def.service_ports(),
            proc: None,
            sandbox: sandbox.clone(),
            kill: None,
            health: vec![Default::default(); checks],
            limits_enforced: false,
            last_probe: vec![None; checks],
            probing: vec![false; checks],
            watched: false,
            launching: true,
            backend: kind,
            docker: false,
            container: None,
            ip: None,
            run_as: launcher::Launcher::ids_of(&run_as),
            host: None,
            target: None,
        };
        let fetch: Vec<FetchSpec> = def
            .fetch
            .iter()
            .map(|f| FetchSpec {
                uri: f.uri.clone(),
                extract: f.extract,
                executable: f.executable,
                cache: f.cache,
                output_file: f.output_file.clone(),
            })
            .collect();
        let engine = self.clone();
        let task_id = id.clone();
        let req = LaunchRequest {
            env: [task_env(&def, &task, &self.inner.cfg.host), secrets].concat(),
            def,
            task_id: id.clone(),
            sandbox,
            host_ports: task.host_ports.clone(),
            fetch,
            run_as,
            record: Box::new(move |handle| engine.record_handle(&task_id, handle)),
        };
        // Durable before the task exists: a crash from here on re-adopts or forgets it.
        self.persist_task(&task)
            .map_err(|e| format!("cannot record the task: {e}"))?;
        self.publish_status(&task, TaskState::TaskStaging, "");
        st.tasks.insert(id, task);
        Ok((kind, req))
    }

    /// The uid of `app_id`'s own for its tasks, allocated (and stored with the counter, in
    /// one transaction) on its first launch.
    fn app_uid(
        &self,
        st: &mut State,
        app_id: &PathId,
        uids: &std::ops::RangeInclusive<u32>,
    ) -> Result<u32, String> {
        let app = st.apps.get_mut(app_id).ok_or("app vanished")?;
        if let Some(uid) = app.rt.task_uid.filter(|u| uids.contains(u)) {
            return Ok(uid);
        }
        let mut rt = app.rt.clone();
        let taken = self
            .inner
            .store
            .write(|tx| {
                let Some(uid) = tx.take_uid(uids)? else {
                    return Ok(None);
                };
                rt.task_uid = Some(uid);
                tx.put_runtime(app_id, &serde_json::to_value(&rt).unwrap_or(Value::Null))?;
                Ok(Some(uid))
            })
            .map_err(|e| format!("cannot allocate a task uid: {e}"))?;
        let Some(next) = taken else {
            return Err(format!(
                "no task uid left in {}-{} (every app and pipeline gets its own, never reused)",
                uids.start(),
                uids.end()
            ));
        };
        app.rt = rt;
        Ok(next)
    }

    /// Host ports for a new task: `requirePorts` service ports, fixed container host ports,
    /// and dynamic ones from the configured range for everything given as 0.
    fn host_ports_for(&self, st: &State, def: &AppDefinition) -> Result<Vec<u16>, String> {
        let range = &self.inner.cfg.host_ports;
        let free = |wanted: &[u16]| {
            let held = st
                .tasks
                .values()
                .any(|t| t.host_ports.iter().any(|p| wanted.contains(p)));
            !held && wanted.iter().all(|p| ports::bindable(*p))
        };
        // One slot per port: Some(fixed) or None (dynamic).
        let slots: Vec<Option<u16>> = match &def.container {
            Some(c) if !def.uses_port_definitions() => c
                .port_mappings
                .iter()
                .filter_map(|m| m.host_port)
                .map(|p| (p != 0).then_some(p as u16))
                .collect(),
            _ if def.require_ports => def
                .service_ports()
                .iter()
                .map(|p| Some(*p as u16))
                .collect(),
            _ => vec![None; def.port_definitions.len()],
        };
        let fixed: Vec<u16> = slots.iter().flatten().copied().collect();
        if !free(&fixed) {
            return Err(format!("host ports {fixed:?} are not free"));
        }
        let dynamic = slots.iter().filter(|s| s.is_none()).count();
        let mut cursor = self
            .inner
            .port_cursor
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut picked = ports::allocate_host_ports(st, dynamic, range, &mut cursor)
            .ok_or_else(|| {
                format!(
                    "no {dynamic} free host ports in {}-{}",
                    range.start(),
                    range.end()
                )
            })?
            .into_iter();
        Ok(slots
            .into_iter()
            .map(|s| s.or_else(|| picked.next()).unwrap_or(0))
            .collect())
    }

    /// Starts a launch in the background; the result comes back as [`Msg::Launched`].
    pub(crate) fn spawn_launch(&self, kind: BackendKind, req: LaunchRequest) {
        let task_id = req.task_id.clone();
        let launch = self.backend(kind).launch(req);
        let tx = self.inner.tx.clone();
        self.inner.tracker.spawn(async move {
            let result = launch.await;
            let _ = tx.send(Msg::Launched {
                kind,
                task_id,
                result,
            });
        });
    }

    /// Stores a task's handle before its command may run: the task invariant is that no
    /// user code runs without its (pid, start time) on disk.
    fn record_handle(&self, task_id: &str, handle: Handle) -> Result<(), String> {
        let mut st = self.lock();
        let Some(task) = st.tasks.get_mut(task_id) else {
            return Err("the task was removed before it started".into());
        };
        if task.kill.is_some() {
            return Err("the task was killed before it started".into());
        }
        handle.store_in(task);
        let task = task.clone();
        self.persist_task(&task)
            .map_err(|e| format!("cannot record the task's process: {e}"))
    }

    /// Writes a task record; errors are logged (the reconcile loop converges anyway).
    pub(crate) fn persist_task(&self, t: &TaskRecord) -> Result<(), store::StoreError> {
        let body = serde_json::to_value(t).unwrap_or(Value::Null);
        self.inner
            .store
            .write(|tx| tx.put_task(&t.id, &t.app_id, &body))
    }

    fn persist_task_logged(&self, t: &TaskRecord) {
        if let Err(e) = self.persist_task(t) {
            tracing::error!(task = %t.id, error = %e, "cannot persist task");
        }
    }

    /// Publishes `status_update_event` and `instance_changed_event` for a task.
    pub(crate) fn publish_status(&self, t: &TaskRecord, state: TaskState, message: &str) {
        self.inner
            .events
            .publish(crate::Event::TaskStatus(std::sync::Arc::new(
                crate::TaskStatus {
                    task_id: t.id.clone(),
                    app_id: t.app_id.clone(),
                    version: t.version,
                    state,
                    message: message.to_owned(),
                    host: self.inner.cfg.host.clone(),
                    ports: t.host_ports.clone(),
                },
            )));
    }

    /// Starts killing a task: SIGTERM now, SIGKILL after the app's grace period.
    pub(crate) fn start_kill(
        &self,
        st: &mut State,
        task_id: &str,
        kind: KillKind,
        reason: String,
        now: i64,
    ) {
        let Some(app_id) = st.tasks.get(task_id).map(|t| t.app_id.clone()) else {
            return;
        };
        let grace = st.apps.get(&app_id).map_or(3000, |a| a.def.kill_grace_ms()) as i64;
        let drain_ms = st
            .apps
            .get(&app_id)
            .map_or(DEFAULT_DRAIN_MS, |a| drain_ms(&a.def));
        let Some(task) = st.tasks.get_mut(task_id) else {
            return;
        };
        if task.kill.is_some() {
            return;
        }
        // Running tasks first leave the proxy's routes and finish their requests; tasks
        // that never started, and a server shutdown, go straight to SIGTERM.
        let started = Handle::of(task).is_some();
        let drain = started && kind != KillKind::Shutdown && self.traffic_gate().is_some();
        tracing::info!(task = %task_id, app = %app_id, %reason, drain, "killing task");
        task.kill = Some(KillOrder {
            kind,
            reason,
            requested_at: now,
            drain_until: drain.then_some(now + drain_ms),
            sigterm_sent: !drain,
            sigkill_at: now + grace + if drain { drain_ms } else { 0 },
            sigkill_sent: false,
        });
        let task = task.clone();
        if task.backend == BackendKind::Scheduled {
            // Its scheduler stops it (and, unless the app is going, replaces it).
            if kind == KillKind::Api || kind == KillKind::Unhealthy {
                self.kill_scheduled(&task);
            }
        } else if !drain {
            self.signal(&task, Sig::Term);
        }
        self.persist_task_logged(&task);
        self.publish_status(&task, TaskState::TaskKilling, "");
    }

    /// Sends a signal to a started task through its backend.
    pub(crate) fn signal(&self, task: &TaskRecord, sig: Sig) {
        if let Some(h) = Handle::of(task) {
            self.backend(task.backend).signal(&h, sig);
        }
    }

    /// Sends SIGTERM to draining tasks once the proxy has drained them or their drain
    /// timeout is over.
    pub(crate) fn progress_drains(&self, st: &mut State, now: i64) {
        let gate = self.traffic_gate();
        let waiting: Vec<String> = st
            .tasks
            .values()
            .filter(|t| t.kill.as_ref().is_some_and(|k| !k.sigterm_sent))
            .map(|t| t.id.clone())
            .collect();
        for id in waiting {
            let Some(app_id) = st.tasks.get(&id).map(|t| t.app_id.clone()) else {
                continue;
            };
            let grace = st.apps.get(&app_id).map_or(3000, |a| a.def.kill_grace_ms()) as i64;
            let Some(t) = st.tasks.get_mut(&id) else {
                continue;
            };
            let Some(k) = t.kill.as_mut() else { continue };
            let drained = gate.as_ref().is_none_or(|g| g.drained(&id));
            if !drained && k.drain_until.is_some_and(|until| now < until) {
                continue;
            }
            if !drained {
                tracing::warn!(task = %id, "drain timeout: the task still has requests in flight");
            }
            k.sigterm_sent = true;
            k.sigkill_at = now + grace;
            let task = t.clone();
            self.signal(&task, Sig::Term);
            self.persist_task_logged(&task);
        }
    }

    /// Sends SIGKILL to tasks whose grace period has run out.
    pub(crate) fn escalate_kills(&self, st: &mut State, now: i64) {
        for t in st.tasks.values_mut() {
            let Some(handle) = Handle::of(t) else {
                continue;
            };
            if let Some(k) = &mut t.kill
                && k.sigterm_sent
                && !k.sigkill_sent
                && now >= k.sigkill_at
            {
                tracing::warn!(task = %t.id, "task ignored SIGTERM; sending SIGKILL");
                self.backend(t.backend).signal(&handle, Sig::Kill);
                k.sigkill_sent = true;
            }
        }
    }

    /// Handles the end of a launch attempt.
    pub(crate) fn on_launched(
        &self,
        st: &mut State,
        kind: BackendKind,
        task_id: &str,
        result: Result<Started, String>,
        now: i64,
    ) {
        match result {
            Ok(started) => {
                let Some(task) = st.tasks.get_mut(task_id) else {
                    // The record is gone (should not happen): never leave an unmanaged task.
                    self.backend(kind).remove_orphan(&crate::backend::Found {
                        task_id: task_id.to_string(),
                        handle: Some(started.handle),
                    });
                    return;
                };
                task.launching = false;
                started.handle.store_in(task);
                task.ip = started.ip;
                task.state = TaskState::TaskRunning;
                task.started_at = Some(Timestamp(now));
                task.watched = true;
                task.limits_enforced = started.limits_enforced;
                let task = task.clone();
                if task.kill.is_some() {
                    self.signal(&task, Sig::Term);
                }
                self.persist_task_logged(&task);
                self.publish_status(&task, TaskState::TaskRunning, "");
            }
            Err(reason) => {
                let killed = st.tasks.get(task_id).is_some_and(|t| t.kill.is_some());
                if killed {
                    self.on_terminated(st, task_id, TaskState::TaskKilled, reason, false, now);
                } else {
                    self.on_terminated(st, task_id, TaskState::TaskFailed, reason, true, now);
                }
            }
        }
    }

    /// Handles an observed exit of a task.
    pub(crate) fn on_exit(
        &self,
        st: &mut State,
        task_id: &str,
        handle: Handle,
        info: Exit,
        now: i64,
    ) {
        let Some(task) = st
            .tasks
            .get(task_id)
            .filter(|t| Handle::of(t).as_ref() == Some(&handle))
        else {
            return;
        };
        match &task.kill {
            Some(k) => {
                let failure = k.kind == KillKind::Unhealthy;
                let reason = k.reason.clone();
                self.on_terminated(st, task_id, TaskState::TaskKilled, reason, failure, now);
            }
            None if info.success() => self.on_terminated(
                st,
                task_id,
                TaskState::TaskFinished,
                info.message,
                true,
                now,
            ),
            None => self.on_terminated(st, task_id, TaskState::TaskFailed, info.message, true, now),
        }
    }

    /// Forgets a terminated task: records the failure and backoff, keeps its sandbox for logs.
    pub(crate) fn on_terminated(
        &self,
        st: &mut State,
        task_id: &str,
        state: TaskState,
        message: String,
        failure: bool,
        now: i64,
    ) {
        let Some(task) = st.tasks.remove(task_id) else {
            return;
        };
        if let Err(e) = self.inner.store.write(|tx| tx.delete_task(task_id)) {
            tracing::error!(task = %task_id, error = %e, "cannot delete task record");
        }
        if failure {
            tracing::warn!(task = %task_id, app = %task.app_id, state = state.as_str(), %message, "task ended");
        } else {
            tracing::info!(task = %task_id, app = %task.app_id, state = state.as_str(), %message, "task ended");
        }
        self.publish_status(&task, state, &message);
        let mut remove = Vec::new();
        if let Some(app) = st.apps.get_mut(&task.app_id) {
            app.rt.terminated.push_back(TerminatedTask {
                id: task.id.clone(),
                state,
                at: now,
                sandbox: task.sandbox.clone(),
                message: message.clone(),
            });
            while app.rt.terminated.len() > KEEP_TERMINATED {
                if let Some(old) = app.rt.terminated.pop_front() {
                    remove.push(old.sandbox);
                }
            }
            if failure {
                app.rt.record_failure(&app.def, now);
                app.rt.last_task_failure = Some(TaskFailure {
                    app_id: task.app_id.clone(),
                    host: self.inner.cfg.host.clone(),
                    message,
                    state: state.as_str().into(),
                    task_id: task.id.clone(),
                    timestamp: Timestamp(now),
                    version: task.version,
                    slave_id: self.inner.slave_id.clone(),
                });
            }
            let rt = serde_json::to_value(&app.rt).unwrap_or(Value::Null);
            if let Err(e) = self
                .inner
                .store
                .write(|tx| tx.put_runtime(&task.app_id, &rt))
            {
                tracing::error!(app = %task.app_id, error = %e, "cannot persist app runtime");
            }
        } else {
            remove.push(task.sandbox.clone());
        }
        let backend = self.backend(task.backend).clone();
        let (id, handle) = (task.id.clone(), Handle::of(&task));
        self.inner.tracker.spawn(async move {
            let _ = tokio::task::spawn_blocking(move || {
                backend.release(&id, handle.as_ref());
                for dir in remove {
                    let _ = launcher::Launcher::remove_sandbox(&dir);
                }
            })
            .await;
        });
        self.wake();
    }

    /// Picks health probes that are due, marking them in flight. Also returns when the next
    /// probe falls due, so the loop can wake exactly then.
    pub(crate) fn due_probes(&self, st: &mut State, now: i64) -> (Vec<ProbeJob>, Option<i64>) {
        let State { apps, tasks, .. } = st;
        let host = &self.inner.cfg.host;
        let mut jobs = Vec::new();
        let mut next: Option<i64> = None;
        for t in tasks.values_mut() {
            let (Some(app), Some(started)) = (apps.get(&t.app_id), t.started_at) else {
                continue;
            };
            if t.state != TaskState::TaskRunning || t.kill.is_some() || Handle::of(t).is_none() {
                continue;
            }
            let checks = &app.def.health_checks;
            // Like Marathon, every task is checked with the app's current health checks.
            t.health.resize(checks.len(), Default::default());
            t.last_probe.resize(checks.len(), None);
            t.probing.resize(checks.len(), false);
            for (i, hc) in checks.iter().enumerate() {
                let params = check_params(hc);
                if t.probing[i] {
                    continue;
                }
                let due = probe_due(
                    &t.health[i],
                    started.millis(),
                    t.last_probe[i],
                    &params,
                    now,
                );
                if now < due {
                    next = Some(next.map_or(due, |n| n.min(due)));
                    continue;
                }
                t.probing[i] = true;
                t.last_probe[i] = Some(now);
                let target = match (hc.port, hc.port_index) {
                    (Some(p), _) => Some((host.clone(), p as u16)),
                    (None, Some(i)) => self
                        .backend(t.backend)
                        .address(&app.def, t, i as usize, host),
                    (None, None) => None,
                };

                let kind = match (hc.protocol, target) {
                    (HealthProtocol::Command, _) => ProbeKind::Command {
                        command: hc
                            .command
                            .as_ref()
                            .map(|c| c.value.clone())
                            .unwrap_or_default(),
                        env: task_env(&app.def, t, host),
                        cwd: t.sandbox.clone(),
                        run_as: self.inner.launcher.check_identity(t.run_as),
                    },
                    (_, None) => ProbeKind::Broken(format!("no port at index {:?}", hc.port_index)),
                    (HealthProtocol::Http | HealthProtocol::MesosHttp, Some((host, port))) => {
                        ProbeKind::Http {
                            host,
                            port,
                            path: hc.path.clone().unwrap_or_else(|| "/".into()),
                            ignore_1xx: hc.ignore_http1xx.unwrap_or(false),
                        }
                    }
                    (HealthProtocol::Tcp | HealthProtocol::MesosTcp, Some((host, port))) => {
                        ProbeKind::Tcp { host, port }
                    }
                };
                jobs.push(ProbeJob {
                    task_id: t.id.clone(),
                    index: i,
                    kind,
                    timeout: params.timeout(),
                });
            }
        }
        (jobs, next)
    }

    /// Applies a probe result: health transitions, events, and kills of unhealthy tasks.
    pub(crate) fn on_probe(
        &self,
        st: &mut State,
        task_id: &str,
        index: usize,
        outcome: ProbeOutcome,
        now: i64,
    ) {
        let State { apps, tasks, .. } = &mut *st;
        let Some(t) = tasks.get_mut(task_id) else {
            return;
        };
        if let Some(p) = t.probing.get_mut(index) {
            *p = false;
        }
        let (Some(app), Some(started)) = (apps.get(&t.app_id), t.started_at) else {
            return;
        };
        let (Some(hc), Some(state)) = (app.def.health_checks.get(index), t.health.get_mut(index))
        else {
            return;
        };
        if t.kill.is_some() {
            return;
        }
        let obs = state.observe(&outcome, now, started.millis(), &check_params(hc));
        let ev = &self.inner.events;
        if let Some(alive) = obs.alive_changed {
            ev.publish(crate::Event::HealthChanged {
                app_id: t.app_id.clone(),
                task_id: t.id.clone(),
                version: t.version,
                alive,
            });
            let snapshot = t.clone();
            self.persist_task_logged(&snapshot);
        }
        if obs.counted_failure {
            ev.publish(crate::Event::FailedHealthCheck {
                app_id: t.app_id.clone(),
                task_id: t.id.clone(),
                check: std::sync::Arc::new(hc.clone()),
            });
        }
        if let Some(reason) = obs.kill {
            ev.publish(crate::Event::UnhealthyKill {
                app_id: t.app_id.clone(),
                task_id: t.id.clone(),
                version: t.version,
                reason: reason.clone(),
                host: self.inner.cfg.host.clone(),
            });
            let id = t.id.clone();
            self.start_kill(st, &id, KillKind::Unhealthy, reason, now);
        }
    }
}
