//! A scripted test double of [`Backend`] (and a clock tests move), for deterministic tests
//! of the reconcile loop: launches succeed or fail at once, tasks end when the test says
//! so, and what "runs" survives an engine being dropped and another opened on the same
//! store, as processes survive a crash of the server.
//!
//! It stands in for our own trait only; the real backends are tested against real
//! processes and a real Docker daemon elsewhere.

use super::{Backend, BackendKind, Exit, Found, Handle, LaunchRequest, Reporter, Sig, Started};
use crate::Clock;
use futures_util::future::BoxFuture;
use launcher::Liveness;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// A clock that only moves when told to.
#[derive(Debug)]
pub(crate) struct FakeClock(AtomicI64);

impl FakeClock {
    pub(crate) fn new(start_ms: i64) -> Arc<FakeClock> {
        Arc::new(FakeClock(AtomicI64::new(start_ms)))
    }

    pub(crate) fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// One task the fake runs.
#[derive(Clone, Debug)]
pub(crate) struct FakeTask {
    pub(crate) handle: String,
    pub(crate) alive: bool,
    /// The environment it was launched with.
    pub(crate) env: Vec<(String, String)>,
}

/// What the fake "machine" holds; shared by every backend made from it.
#[derive(Debug, Default)]
pub(crate) struct Machine {
    next: u64,
    /// Tasks by task id, in launch order of their handles.
    pub(crate) tasks: BTreeMap<String, FakeTask>,
    /// Every launch attempt, in order (task ids).
    pub(crate) launches: Vec<String>,
    /// Every signal sent, in order.
    pub(crate) signals: Vec<(String, Sig)>,
    /// The next this many launches fail.
    pub(crate) fail_launches: usize,
    /// Tasks ignore SIGTERM (SIGKILL always works).
    pub(crate) ignore_term: bool,
}

/// The double. Clones share the machine; give each engine a new backend from
/// [`FakeBackend::on`] so each gets its own reporter.
pub(crate) struct FakeBackend {
    pub(crate) machine: Arc<Mutex<Machine>>,
    reporter: OnceLock<Reporter>,
}

impl FakeBackend {
    pub(crate) fn on(machine: &Arc<Mutex<Machine>>) -> Arc<FakeBackend> {
        Arc::new(FakeBackend {
            machine: machine.clone(),
            reporter: OnceLock::new(),
        })
    }

    fn m(&self) -> std::sync::MutexGuard<'_, Machine> {
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends a running task with `code`, as its watcher would see it.
    pub(crate) fn exit(&self, task_id: &str, code: i64) {
        let handle = {
            let mut m = self.m();
            let Some(t) = m.tasks.get_mut(task_id).filter(|t| t.alive) else {
                return;
            };
            t.alive = false;
            t.handle.clone()
        };
        if let Some(r) = self.reporter.get() {
            r.exited(
                task_id.to_string(),
                Handle::Id(handle),
                Exit {
                    code: Some(code),
                    message: format!("Command exited with status {code}"),
                },
            );
        }
    }

    /// Ends a task without anyone watching (while "the server was down").
    pub(crate) fn vanish(&self, task_id: &str) {
        if let Some(t) = self.m().tasks.get_mut(task_id) {
            t.alive = false;
        }
    }

    /// Task ids that run now.
    pub(crate) fn alive(&self) -> Vec<String> {
        self.m()
            .tasks
            .iter()
            .filter(|(_, t)| t.alive)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

impl Backend for FakeBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Process
    }

    fn attach(&self, reporter: Reporter) {
        let _ = self.reporter.set(reporter);
    }

    fn launch(&self, req: LaunchRequest) -> BoxFuture<'static, Result<Started, String>> {
        let machine = self.machine.clone();
        Box::pin(async move {
            let handle = {
                let mut m = machine.lock().unwrap_or_else(|e| e.into_inner());
                m.launches.push(req.task_id.clone());
                if m.fail_launches > 0 {
                    m.fail_launches -= 1;
                    return Err("fake: launch failed".into());
                }
                m.next += 1;
                format!("fake-{}", m.next)
            };
            (req.record)(Handle::Id(handle.clone()))?;
            machine
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .tasks
                .insert(
                    req.task_id,
                    FakeTask {
                        handle: handle.clone(),
                        alive: true,
                        env: req.env,
                    },
                );
            Ok(Started {
                handle: Handle::Id(handle),
                ip: None,
                limits_enforced: false,
            })
        })
    }

    fn watch(&self, _task_id: &str, _handle: &Handle, _sandbox: &std::path::Path) -> bool {
        // Like processes after a restart: no watcher, the loop polls liveness.
        false
    }

    fn liveness(&self, handle: &Handle) -> Liveness {
        let Handle::Id(h) = handle else {
            return Liveness::Gone;
        };
        let alive = self.m().tasks.values().any(|t| &t.handle == h && t.alive);
        if alive {
            Liveness::Alive
        } else {
            Liveness::Gone
        }
    }

    fn signal(&self, handle: &Handle, sig: Sig) {
        let Handle::Id(h) = handle else { return };
        let task = {
            let mut m = self.m();
            let Some((id, _)) = m.tasks.iter().find(|(_, t)| &t.handle == h) else {
                return;
            };
            let id = id.clone();
            m.signals.push((id.clone(), sig));
            if sig == Sig::Term && m.ignore_term {
                return;
            }
            id
        };
        self.exit(&task, if sig == Sig::Term { 143 } else { 137 });
    }

    fn release(&self, task_id: &str, _handle: Option<&Handle>) {
        self.m().tasks.remove(task_id);
    }

    fn scan(&self) -> Option<Vec<Found>> {
        Some(
            self.m()
                .tasks
                .iter()
                .filter(|(_, t)| t.alive)
                .map(|(id, t)| Found {
                    task_id: id.clone(),
                    handle: Some(Handle::Id(t.handle.clone())),
                })
                .collect(),
        )
    }

    fn remove_orphan(&self, found: &Found) {
        if let Some(t) = self.m().tasks.get_mut(&found.task_id) {
            t.alive = false;
        }
    }
}
