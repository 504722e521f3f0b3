//! The process backend: tasks are local processes in their own session and task cgroup,
//! started through the `launcher` crate.
//!
//! A task's identity is its cgroup and the (pid, start time) of its leader, recorded before
//! the held wrapper may exec the task's command. The exit watcher is the child handle of
//! the server that launched it; after a restart there is no child, so the loop polls
//! [`liveness`](Backend::liveness) instead.

use super::{Backend, BackendKind, Exit, Found, Handle, LaunchRequest, Reporter, Sig, Started};
use futures_util::future::BoxFuture;
use launcher::{LaunchSpec, Launcher, Limits, Liveness, Signal, TaskCommand};
use model::AppDefinition;
use std::sync::OnceLock;

/// Local processes.
pub struct ProcessBackend {
    launcher: Launcher,
    reporter: OnceLock<Reporter>,
}

impl ProcessBackend {
    /// A backend launching through `launcher`.
    pub fn new(launcher: Launcher) -> Self {
        ProcessBackend {
            launcher,
            reporter: OnceLock::new(),
        }
    }
}

/// The process to run for a definition.
pub(crate) fn command_of(def: &AppDefinition) -> Result<TaskCommand, String> {
    match (&def.cmd, &def.args) {
        (Some(cmd), None) => Ok(TaskCommand::Shell(cmd.clone())),
        (None, Some(args)) => Ok(TaskCommand::Exec(args.clone())),
        (Some(cmd), Some(args)) => {
            // Slipway extension: cmd with args appends the args as separate, quoted words.
            let mut argv = vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("{cmd} \"$@\""),
                "sh".into(),
            ];
            argv.extend(args.iter().cloned());
            Ok(TaskCommand::Exec(argv))
        }
        (None, None) => Err("the app has neither cmd nor args".into()),
    }
}

fn signal_of(sig: Sig) -> Signal {
    match sig {
        Sig::Term => Signal::SIGTERM,
        Sig::Kill => Signal::SIGKILL,
    }
}

impl Backend for ProcessBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Process
    }

    fn attach(&self, reporter: Reporter) {
        let _ = self.reporter.set(reporter);
    }

    fn launch(&self, req: LaunchRequest) -> BoxFuture<'static, Result<Started, String>> {
        let launcher = self.launcher.clone();
        let reporter = self.reporter.get().cloned();
        Box::pin(async move {
            let spec = LaunchSpec {
                task_id: req.task_id.clone(),
                command: command_of(&req.def)?,
                env: req.env,
                sandbox: req.sandbox,
                limits: Some(Limits {
                    cpus: req.def.cpus,
                    mem_mib: req.def.mem,
                }),
                fetch: req.fetch,
                run_as: req.run_as,
            };
            let record = req.record;
            let mut launched = launcher
                .launch_with(&spec, move |identity| record(Handle::Process(identity)))
                .await
                .map_err(|e| e.to_string())?;
            let identity = launched.identity;
            if let Some(reporter) = reporter {
                let r = reporter.clone();
                reporter.spawn(async move {
                    let info = launcher::wait_exit(&mut launched.child).await;
                    r.exited(
                        req.task_id,
                        Handle::Process(identity),
                        Exit {
                            code: info.code.map(i64::from),
                            message: info.message,
                        },
                    );
                });
            }
            Ok(Started {
                handle: Handle::Process(identity),
                ip: None,
                limits_enforced: launched.limits_enforced,
            })
        })
    }

    fn liveness(&self, handle: &Handle) -> Liveness {
        match handle {
            Handle::Process(p) => self.launcher.liveness(*p),
            Handle::Id(_) => Liveness::Unknown,
        }
    }

    fn signal(&self, handle: &Handle, sig: Sig) {
        if let Handle::Process(p) = handle {
            let _ = self.launcher.signal(*p, signal_of(sig));
        }
    }

    fn release(&self, task_id: &str, handle: Option<&Handle>) {
        let leader = match handle {
            Some(Handle::Process(p)) => Some(*p),
            _ => None,
        };
        self.launcher.cleanup(task_id, leader);
    }

    fn scan(&self) -> Option<Vec<Found>> {
        let mut found: std::collections::BTreeMap<String, Option<Handle>> = Default::default();
        match self.launcher.task_cgroups() {
            Ok(groups) => found.extend(groups.into_iter().map(|(task_id, _)| (task_id, None))),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list task cgroups; orphans are looked for later")
            }
        }
        // Without cgroups a process's environment is the only mark it has: a hint.
        for f in self.launcher.scan() {
            found.insert(f.task_id, Some(Handle::Process(f.identity)));
        }
        Some(
            found
                .into_iter()
                .map(|(task_id, handle)| Found { task_id, handle })
                .collect(),
        )
    }

    fn remove_orphan(&self, found: &Found) {
        let leader = match &found.handle {
            Some(Handle::Process(p)) => {
                let _ = self.launcher.signal(*p, Signal::SIGKILL);
                Some(*p)
            }
            _ => None,
        };
        self.launcher.cleanup(&found.task_id, leader);
    }
}
