//! Deterministic tests of the reconcile loop: the engine runs on the fake backend and a
//! fake clock, and the test drives it (deliver messages, one reconcile pass) instead of
//! [`Engine::run`]. Nothing sleeps; time moves only when a test moves it.

use crate::backend::Sig;
use crate::backend::fake::{FakeBackend, FakeClock, Machine};
use crate::reconcile::{MIN_UP_MS, task_ready};
use crate::{AppUpdate, Engine, EngineConfig, Unchecked};
use model::{PathId, Timestamp};
use std::sync::{Arc, Mutex};

struct Sim {
    engine: Engine,
    clock: Arc<FakeClock>,
    fake: Arc<FakeBackend>,
    machine: Arc<Mutex<Machine>>,
    dir: Arc<tempfile::TempDir>,
}

impl Sim {
    fn new() -> Sim {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let machine = Arc::new(Mutex::new(Machine::default()));
        Sim::open(dir, machine, FakeClock::new(1_800_000_000_000))
    }

    /// An engine on `dir`'s store and the given machine, as after a (re)start.
    fn open(
        dir: Arc<tempfile::TempDir>,
        machine: Arc<Mutex<Machine>>,
        clock: Arc<FakeClock>,
    ) -> Sim {
        let store = Arc::new(store::Store::open(&dir.path().join("db")).unwrap());
        let mut cfg = EngineConfig::new(dir.path().to_path_buf());
        cfg.docker.enabled = false;
        let fake = FakeBackend::on(&machine);
        let engine = Engine::builder(cfg, store)
            .backend(fake.clone())
            .clock(clock.clone())
            .open()
            .unwrap();
        Sim {
            engine,
            clock,
            fake,
            machine,
            dir,
        }
    }

    /// A restart: this engine is gone without cleaning up (kill -9), its tasks keep running.
    fn crash_and_restart(self) -> Sim {
        let Sim {
            engine,
            clock,
            machine,
            dir,
            ..
        } = self;
        drop(engine);
        Sim::open(dir, machine, clock)
    }

    /// Delivers every pending message.
    fn pump(&self) -> usize {
        let mut n = 0;
        loop {
            let msg = {
                let mut rx = self.engine.inner.rx.lock().unwrap();
                rx.as_mut().unwrap().try_recv()
            };
            let Ok(msg) = msg else { return n };
            self.engine.handle(msg);
            n += 1;
        }
    }

    /// Runs reconcile passes until nothing changes any more (launch jobs finished, their
    /// results delivered, nothing left to start).
    async fn settle(&self) {
        let mut quiet = 0;
        for _ in 0..200 {
            self.engine.tick();
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
            if self.pump() == 0 {
                quiet += 1;
                if quiet == 3 {
                    return;
                }
            } else {
                quiet = 0;
            }
        }
        panic!("the engine did not settle");
    }

    /// Moves the clock in steps, settling after each.
    async fn advance(&self, ms: i64, step: i64) {
        let mut left = ms;
        while left > 0 {
            let d = left.min(step);
            self.clock.advance(d);
            left -= d;
            self.settle().await;
        }
    }

    fn create(&self, body: &str) -> PathId {
        let def = model::parse_definition(body.as_bytes(), None, Timestamp(0)).unwrap();
        let (app, _) = self.engine.create_app(def, false, &Unchecked).unwrap();
        app.id
    }

    fn update(&self, id: &PathId, body: &str) {
        let patch: serde_json::Value = serde_json::from_str(body).unwrap();
        let define = |cur: Option<&model::AppDefinition>| {
            let merged = model::merge_update(cur.unwrap(), &patch);
            model::input_from_value(merged)?.into_definition(Some(id), Timestamp(0))
        };
        self.engine
            .update_app(
                id,
                AppUpdate::Define(Box::new(define)),
                false,
                true,
                &Unchecked,
            )
            .unwrap();
    }

    fn deployments(&self) -> usize {
        self.engine.read(|st| st.deployments.len())
    }

    /// (ready, all) tasks of the app as the engine sees them.
    fn counts(&self, id: &PathId) -> (usize, usize) {
        let now = self.clock.now();
        self.engine.read(|st| {
            let def = &st.apps[id].def;
            let all: Vec<_> = st.tasks_of(id).collect();
            let ready = all
                .iter()
                .filter(|t| t.kill.is_none() && task_ready(def, t, now))
                .count();
            (ready, all.len())
        })
    }

    fn launches(&self) -> usize {
        self.machine.lock().unwrap().launches.len()
    }
}

impl FakeClock {
    fn now(&self) -> i64 {
        crate::Clock::now_ms(self)
    }
}

#[tokio::test]
async fn a_deployment_completes_once_every_instance_stayed_up() {
    let sim = Sim::new();
    let id = sim.create(r#"{"id": "/web", "cmd": "serve", "instances": 3}"#);
    sim.settle().await;
    assert_eq!(sim.fake.alive().len(), 3, "three tasks launched");
    assert_eq!(
        sim.deployments(),
        1,
        "not done while the tasks are seconds old"
    );
    sim.advance(MIN_UP_MS - 1, 1_000).await;
    assert_eq!(sim.deployments(), 1);
    sim.advance(1, 1).await;
    assert_eq!(sim.deployments(), 0, "done once they stayed up");
    assert_eq!(sim.counts(&id), (3, 3));
    assert_eq!(sim.launches(), 3, "nothing launched twice");
    for (task_id, t) in &sim.machine.lock().unwrap().tasks {
        let env = |k: &str| t.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(env("MARATHON_APP_ID").as_deref(), Some("/web"));
        assert_eq!(env("MESOS_TASK_ID").as_deref(), Some(task_id.as_str()));
    }
}

#[tokio::test]
async fn a_rolling_upgrade_never_drops_below_the_health_floor() {
    let sim = Sim::new();
    let id = sim.create(
        r#"{"id": "/web", "cmd": "serve v1", "instances": 4,
            "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 0.5}}"#,
    );
    sim.settle().await;
    sim.advance(MIN_UP_MS, 500).await;
    assert_eq!(sim.deployments(), 0);
    let old: Vec<String> = sim.fake.alive();
    sim.update(&id, r#"{"cmd": "serve v2"}"#);
    let mut max_tasks = 0;
    for _ in 0..40 {
        sim.advance(250, 250).await;
        let (ready, all) = sim.counts(&id);
        assert!(ready >= 4, "ready tasks fell to {ready} during the upgrade");
        max_tasks = max_tasks.max(all);
        if sim.deployments() == 0 {
            break;
        }
    }
    assert_eq!(sim.deployments(), 0, "the upgrade finished");
    assert!(
        max_tasks <= 6,
        "over capacity by more than 50%: {max_tasks} tasks"
    );
    let now: Vec<String> = sim.fake.alive();
    assert_eq!(now.len(), 4);
    assert!(now.iter().all(|t| !old.contains(t)), "every task replaced");
    let signals = sim.machine.lock().unwrap().signals.clone();
    for t in &old {
        assert!(signals.contains(&(t.clone(), Sig::Term)), "{t} got SIGTERM");
    }
}

#[tokio::test]
async fn failed_tasks_are_relaunched_after_the_backoff_and_it_grows() {
    let sim = Sim::new();
    sim.create(
        r#"{"id": "/crash", "cmd": "exit 1", "instances": 1,
            "backoffSeconds": 10, "backoffFactor": 2, "maxLaunchDelaySeconds": 300}"#,
    );
    sim.settle().await;
    assert_eq!(sim.launches(), 1);
    let first = sim.fake.alive().remove(0);
    sim.fake.exit(&first, 1);
    sim.settle().await;
    assert_eq!(sim.launches(), 1, "no relaunch inside the backoff");
    sim.advance(9_900, 1_000).await;
    assert_eq!(sim.launches(), 1, "still inside the 10 s backoff");
    sim.advance(200, 200).await;
    assert_eq!(sim.launches(), 2, "relaunched after 10 s");
    let second = sim.fake.alive().remove(0);
    sim.fake.exit(&second, 1);
    sim.settle().await;
    sim.advance(19_000, 1_000).await;
    assert_eq!(sim.launches(), 2, "the second delay is 20 s");
    sim.advance(1_200, 200).await;
    assert_eq!(sim.launches(), 3);
    let failure = sim.engine.read(|st| {
        st.apps[&PathId::parse("/crash")]
            .rt
            .last_task_failure
            .clone()
    });
    let failure = failure.expect("lastTaskFailure recorded");
    assert_eq!(failure.task_id, second);
    assert_eq!(failure.message, "Command exited with status 1");
}

#[tokio::test]
async fn a_restart_adopts_live_tasks_loses_vanished_ones_and_kills_orphans() {
    let sim = Sim::new();
    let id = sim.create(r#"{"id": "/web", "cmd": "serve", "instances": 3}"#);
    sim.settle().await;
    sim.advance(MIN_UP_MS, 500).await;
    let tasks = sim.fake.alive();
    assert_eq!(tasks.len(), 3);
    // While the server is down: one task dies unobserved, and something of ours runs that
    // no record owns (a launch cut short by the crash).
    sim.fake.vanish(&tasks[0]);
    sim.machine.lock().unwrap().tasks.insert(
        "web.orphan".into(),
        crate::backend::fake::FakeTask {
            handle: "fake-orphan".into(),
            alive: true,
            env: Vec::new(),
        },
    );
    let sim = sim.crash_and_restart();
    let known: Vec<String> = sim.engine.read(|st| st.tasks.keys().cloned().collect());
    assert_eq!(
        known,
        tasks[1..].to_vec(),
        "the two live tasks adopted by id"
    );
    assert!(
        !sim.fake.alive().contains(&"web.orphan".to_string()),
        "the orphan was killed"
    );
    let failure = sim
        .engine
        .read(|st| st.apps[&id].rt.last_task_failure.clone())
        .expect("the vanished task is a failure");
    assert_eq!(failure.task_id, tasks[0]);
    assert_eq!(failure.state, "TASK_LOST");
    // The lost task counts as a failure: its replacement waits out the 1 s default backoff.
    sim.settle().await;
    assert_eq!(
        sim.fake.alive().len(),
        2,
        "no replacement inside the backoff"
    );
    sim.advance(1_000 + MIN_UP_MS, 500).await;
    let alive = sim.fake.alive();
    assert_eq!(alive.len(), 3, "one replacement, no duplicates: {alive:?}");
    assert_eq!(sim.counts(&id), (3, 3));
}

#[tokio::test]
async fn a_deployment_cut_by_a_crash_resumes_without_duplicates() {
    let sim = Sim::new();
    let id = sim.create(r#"{"id": "/web", "cmd": "serve v1", "instances": 2}"#);
    sim.settle().await;
    sim.advance(MIN_UP_MS, 500).await;
    sim.update(&id, r#"{"cmd": "serve v2", "instances": 3}"#);
    sim.settle().await;
    assert_eq!(sim.deployments(), 1, "the upgrade is in flight");
    let sim = sim.crash_and_restart();
    assert_eq!(sim.deployments(), 1, "the deployment survived the crash");
    for _ in 0..20 {
        sim.advance(500, 500).await;
        if sim.deployments() == 0 {
            break;
        }
    }
    assert_eq!(sim.deployments(), 0, "and finished");
    let v2 = sim.engine.read(|st| {
        let cfg = st.apps[&id].def.version_info.last_config_change_at;
        st.tasks_of(&id).filter(|t| t.config_version == cfg).count()
    });
    assert_eq!(v2, 3);
    assert_eq!(sim.fake.alive().len(), 3, "exactly the instances run");
}

#[tokio::test]
async fn a_task_that_ignores_sigterm_gets_sigkill_after_its_grace_period() {
    let sim = Sim::new();
    let id = sim.create(
        r#"{"id": "/stubborn", "cmd": "serve", "instances": 1, "taskKillGracePeriodSeconds": 5}"#,
    );
    sim.settle().await;
    sim.advance(MIN_UP_MS, 500).await;
    sim.machine.lock().unwrap().ignore_term = true;
    let task = sim.fake.alive().remove(0);
    sim.update(&id, r#"{"instances": 0}"#);
    sim.settle().await;
    let signals = || sim.machine.lock().unwrap().signals.clone();
    assert_eq!(signals(), vec![(task.clone(), Sig::Term)]);
    sim.advance(4_900, 1_000).await;
    assert_eq!(signals().len(), 1, "no SIGKILL inside the grace period");
    sim.advance(200, 100).await;
    assert_eq!(
        signals(),
        vec![(task.clone(), Sig::Term), (task, Sig::Kill)]
    );
    assert!(sim.fake.alive().is_empty());
    assert_eq!(sim.counts(&id), (0, 0));
    assert_eq!(sim.deployments(), 0);
}

#[tokio::test]
async fn failed_launches_count_for_the_backoff_and_the_app_recovers() {
    let sim = Sim::new();
    sim.machine.lock().unwrap().fail_launches = 2;
    let id = sim.create(
        r#"{"id": "/flaky", "cmd": "serve", "instances": 1, "backoffSeconds": 1, "backoffFactor": 2}"#,
    );
    sim.settle().await;
    assert_eq!(sim.launches(), 1);
    sim.advance(1_000, 250).await;
    assert_eq!(sim.launches(), 2, "retried after 1 s");
    sim.advance(2_000, 250).await;
    assert_eq!(sim.launches(), 3, "retried after 2 s more");
    sim.advance(MIN_UP_MS, 500).await;
    assert_eq!(sim.counts(&id), (1, 1));
    assert_eq!(sim.deployments(), 0);
}

/// A scheduler double: runs every applied app at once with `instances` tasks on one node.
#[derive(Default)]
struct FakeScheduler {
    /// Applied definitions by app.
    services: Mutex<std::collections::BTreeMap<PathId, model::AppDefinition>>,
    applies: Mutex<Vec<PathId>>,
    removes: Mutex<Vec<PathId>>,
}

impl crate::backend::scheduled::Scheduler for FakeScheduler {
    fn target(&self) -> &str {
        "BB"
    }

    fn kind(&self) -> &'static str {
        "fake"
    }

    fn apply(
        &self,
        def: Arc<model::AppDefinition>,
        env: Vec<(String, String)>,
    ) -> futures_util::future::BoxFuture<'static, Result<(), String>> {
        assert!(
            env.iter()
                .any(|(k, v)| k == "MARATHON_APP_ID" && v == &def.id.to_string())
        );
        self.applies.lock().unwrap().push(def.id.clone());
        self.services
            .lock()
            .unwrap()
            .insert(def.id.clone(), (*def).clone());
        Box::pin(async { Ok(()) })
    }

    fn remove(&self, app: PathId) -> futures_util::future::BoxFuture<'static, Result<(), String>> {
        self.removes.lock().unwrap().push(app.clone());
        self.services.lock().unwrap().remove(&app);
        Box::pin(async { Ok(()) })
    }

    fn observe(
        &self,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<Vec<crate::backend::scheduled::ObservedTask>, String>,
    > {
        let tasks = self
            .services
            .lock()
            .unwrap()
            .values()
            .flat_map(|d| {
                let cfg = d.version_info.last_config_change_at;
                (0..d.instances).map(move |slot| crate::backend::scheduled::ObservedTask {
                    id: format!("{}.{}-{slot}", d.id.safe_name(), cfg.millis()),
                    app_id: d.id.clone(),
                    version: d.version,
                    config_version: cfg,
                    state: crate::state::TaskState::TaskRunning,
                    host: "10.231.0.2".into(),
                    host_ports: vec![31000 + slot as u16],
                    staged_at: model::Timestamp(0),
                    started_at: None,
                    message: String::new(),
                    stopping: false,
                })
            })
            .collect();
        Box::pin(async { Ok(tasks) })
    }
}

#[tokio::test]
async fn apps_of_a_scheduled_target_are_applied_mirrored_and_removed_never_launched_here() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let machine = Arc::new(Mutex::new(Machine::default()));
    let clock = FakeClock::new(1_800_000_000_000);
    let sched = Arc::new(FakeScheduler::default());
    let open = |dir: Arc<tempfile::TempDir>| {
        let store = Arc::new(store::Store::open(&dir.path().join("db")).unwrap());
        let mut cfg = EngineConfig::new(dir.path().to_path_buf());
        cfg.docker.enabled = false;
        let fake = FakeBackend::on(&machine);
        let engine = Engine::builder(cfg, store)
            .backend(fake.clone())
            .clock(clock.clone())
            .scheduler(sched.clone())
            .placement(Arc::new(|id: &PathId| {
                id.to_string().starts_with("/BB/").then(|| "BB".to_string())
            }))
            .open()
            .unwrap();
        Sim {
            engine,
            clock: clock.clone(),
            fake,
            machine: machine.clone(),
            dir,
        }
    };
    let sim = open(dir.clone());
    let id = sim.create(r#"{"id": "/BB/prod/web", "cmd": "serve v1", "instances": 2}"#);
    let local = sim.create(r#"{"id": "/AA/prod/web", "cmd": "serve v1", "instances": 1}"#);
    sim.settle().await;
    assert_eq!(sched.applies.lock().unwrap().clone(), vec![id.clone()]);
    sim.advance(MIN_UP_MS + 1_000, 500).await;
    assert_eq!(sim.counts(&id), (2, 2), "both mirrored tasks ready");
    assert_eq!(sim.counts(&local), (1, 1));
    assert_eq!(sim.launches(), 1, "only the local app launched here");
    assert_eq!(sim.deployments(), 0);
    let hosts: Vec<Option<String>> = sim
        .engine
        .read(|st| st.tasks_of(&id).map(|t| t.host.clone()).collect());
    assert_eq!(hosts, vec![Some("10.231.0.2".to_string()); 2]);

    // An upgrade is a new apply; the deployment ends when the scheduler runs the new version.
    sim.update(&id, r#"{"cmd": "serve v2", "instances": 3}"#);
    for _ in 0..10 {
        sim.advance(1_000, 500).await;
    }
    assert_eq!(sim.deployments(), 0);
    assert_eq!(sim.counts(&id), (3, 3));
    assert_eq!(sched.applies.lock().unwrap().len(), 2);

    // A restart reads the tasks back from the scheduler: nothing is duplicated.
    let dir = sim.dir.clone();
    drop(sim);
    let sim = open(dir);
    sim.advance(MIN_UP_MS + 1_000, 500).await;
    assert_eq!(sim.counts(&id), (3, 3));
    assert_eq!(sched.services.lock().unwrap().len(), 1);
    assert_eq!(
        sim.launches(),
        1,
        "still only the local app's task was ever launched"
    );

    sim.engine.delete_app(&id, false, &Unchecked).unwrap();
    sim.advance(2_000, 500).await;
    assert_eq!(sched.removes.lock().unwrap().clone(), vec![id.clone()]);
    assert!(sched.services.lock().unwrap().is_empty());
    assert_eq!(sim.engine.read(|st| st.tasks_of(&id).count()), 0);
    assert_eq!(sim.deployments(), 0, "the stop deployment finished");
}

/// A deployment is announced as typed events, in order: the change, the plan, each task's
/// states, the steps and the success; a delete adds the app's termination.
#[tokio::test]
async fn a_deployment_is_announced_as_typed_events_in_order() {
    use crate::Event;
    let sim = Sim::new();
    let mut rx = sim.engine.events().subscribe();
    let id = sim.create(r#"{"id": "/web", "cmd": "serve", "instances": 2}"#);
    sim.settle().await;
    sim.advance(MIN_UP_MS, 1_000).await;
    assert_eq!(sim.deployments(), 0);
    sim.engine.delete_app(&id, false, &Unchecked).unwrap();
    sim.advance(10_000, 500).await;
    let mut seen = Vec::new();
    while let Ok(p) = rx.try_recv() {
        seen.push(match p.event {
            Event::GroupChanged { .. } => "group".to_string(),
            Event::DeploymentInfo(d) => format!("info {}", d.current_step),
            Event::DeploymentStepSuccess(d) => format!("step {}", d.current_step),
            Event::DeploymentSuccess(d) => format!("success {}", d.steps.len()),
            Event::TaskStatus(s) => {
                assert_eq!(s.app_id, id);
                format!("task {}", s.state.as_str())
            }
            Event::AppTerminated { app_id } => format!("terminated {app_id}"),
            other => format!("{other:?}"),
        });
    }
    let count = |e: &str| seen.iter().filter(|s| *s == e).count();
    let first = |e: &str| seen.iter().position(|s| s == e).unwrap();
    assert_eq!(&seen[..2], ["group", "info 0"], "{seen:?}");
    assert_eq!(count("task TASK_STAGING"), 2, "{seen:?}");
    assert_eq!(count("task TASK_RUNNING"), 2, "{seen:?}");
    assert_eq!(count("task TASK_KILLING"), 2, "{seen:?}");
    assert_eq!(count("success 2"), 1, "the create's two steps: {seen:?}");
    assert_eq!(count("success 1"), 1, "the stop's one step: {seen:?}");
    assert!(first("step 0") < first("info 1"), "{seen:?}");
    assert!(first("step 1") < first("success 2"), "{seen:?}");
    assert!(first("success 2") < first("terminated /web"), "{seen:?}");
    assert!(first("terminated /web") < first("success 1"), "{seen:?}");
}
