//! Starts, finds, signals and observes Marathon-style `cmd` tasks as local OS processes.
//!
//! Crash-only design: every task runs in its own session and process group
//! (pid == pgid == sid), writes its output to files in its sandbox (never pipes), and
//! carries `SLIPWAY_AGENT_ID`/`SLIPWAY_TASK_ID` in its environment, so it survives a
//! `kill -9` of the server and is re-adopted by the next server through [`Launcher::scan`].
//! Processes are identified by [`ProcIdentity`] (pid + start time) so a reused pid is
//! never signalled.

#![warn(missing_docs)]

mod cgroup;
mod error;
mod fetch;
mod logs;
mod proc_fs;
mod spawn;

use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

pub use cgroup::CgroupSupport;
pub use error::LaunchError;
pub use fetch::{FetchSpec, fetch_all};
pub use logs::{LogChunk, LogStream, MAX_READ};
pub use nix::sys::signal::Signal;
pub use proc_fs::{FoundTask, Liveness, ProcIdentity, processes_marked};
pub use spawn::{ExitInfo, signal_name, wait_exit};

/// Environment variable carrying the agent marker of the installation that started a task.
pub const ENV_AGENT_ID: &str = "SLIPWAY_AGENT_ID";
/// Environment variable carrying the task id.
pub const ENV_TASK_ID: &str = "SLIPWAY_TASK_ID";
/// Environment variable the launcher's wrapper sets to the task leader's own pid just before
/// exec; descendants inherit it with a different pid, which tells leaders from daemonized
/// children in [`Launcher::scan`].
pub const ENV_LEADER_PID: &str = "SLIPWAY_LEADER_PID";

/// How long [`Launcher::cleanup`] keeps killing and removing before it gives up. A killed
/// process leaves its cgroup only once its exit is done, and under heavy I/O a process
/// waiting on the disk can take seconds to get there: with 2 s, a cgroup was once left
/// behind in CI by a process that died a moment later. Cleanup runs on a blocking thread
/// and returns as soon as everything is gone, so the margin costs nothing when it is not used.
pub const CLEANUP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15);

/// Static configuration of a [`Launcher`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LauncherConfig {
    /// Marker identifying this Slipway installation; every task gets `SLIPWAY_AGENT_ID=<agent_id>`.
    pub agent_id: String,
    /// cgroup directory under each controller root, e.g. `slipway` → `<root>/slipway/<task-id>`.
    pub cgroup_parent: String,
    /// Per-stream (stdout/stderr) size above which [`Launcher::rotate_logs`] rotates.
    pub log_max_bytes: u64,
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskCommand {
    /// Run with `/bin/sh -c <string>`.
    Shell(String),
    /// Execute this argv directly (argv\[0\] is looked up in the task's PATH).
    Exec(Vec<String>),
}

/// Resource limits enforced through cgroups when available.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// CPU shares as in Marathon; quota = cpus × 100 ms per 100 ms (min 1 ms). 0 = no quota.
    pub cpus: f64,
    /// Memory limit in MiB. 0 = no limit.
    pub mem_mib: f64,
}

/// Everything needed to start one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// Unique task id; also the cgroup directory name (no `/`, not `.`/`..`).
    pub task_id: String,
    /// The command to run.
    pub command: TaskCommand,
    /// Task environment computed by the engine. The launcher starts from an empty
    /// environment plus the server's PATH/HOME/LANG, applies these, then forces
    /// `MESOS_SANDBOX`, `SLIPWAY_AGENT_ID` and `SLIPWAY_TASK_ID`.
    pub env: Vec<(String, String)>,
    /// Per-task directory, created by launch: cwd of the task, holds fetched artifacts,
    /// `stdout` and `stderr`.
    pub sandbox: PathBuf,
    /// cpu/memory limits (enforced only when [`Launcher::cgroup_support`] is available).
    pub limits: Option<Limits>,
    /// Artifacts fetched into the sandbox before the task starts.
    pub fetch: Vec<FetchSpec>,
    /// Whose privileges the task runs with.
    pub run_as: RunAs,
}

/// Whose privileges a task runs with. Switching needs root (unless it is the server's own
/// uid); the sandbox then belongs to that identity and is private to it (mode 0700).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunAs {
    /// The server's own user: no switch (a server not running as root can do no other).
    Server,
    /// A named account from the user database, with its groups (Marathon's `user`).
    User(String),
    /// A numeric identity of the task's own, with no account behind it (like systemd's
    /// `DynamicUser`): no supplementary groups, `HOME` is the sandbox. Tasks with different
    /// uids cannot read each other's sandboxes or `/proc` entries, nor signal each other.
    Id {
        /// The uid to run as.
        uid: u32,
        /// The primary gid.
        gid: u32,
    },
}

/// A freshly started task.
#[derive(Debug)]
pub struct Launched {
    /// Identity of the task leader (pid == pgid == sid).
    pub identity: ProcIdentity,
    /// The child handle, so the server can reap it and learn the exit status
    /// (see [`wait_exit`]). Dropping it does not kill the task.
    pub child: tokio::process::Child,
    /// Canonical sandbox path (also the task's `MESOS_SANDBOX`).
    pub sandbox: PathBuf,
    /// True if the task runs inside cgroups with the requested limits.
    pub limits_enforced: bool,
}

/// Result of [`Launcher::signal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignalOutcome {
    /// The signal was sent to the task's process group.
    Delivered,
    /// Nothing was sent: the process is gone or its pid now belongs to another process.
    Gone,
}

/// Does the OS work for tasks: launch, signal, liveness, scan, logs, cleanup.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// Configuration given at construction.
    cfg: LauncherConfig,
    /// cgroup support detected at construction.
    support: CgroupSupport,
}

/// Validates a task id for use as a directory name.
fn check_task_id(task_id: &str) -> Result<(), LaunchError> {
    let reason = if task_id.is_empty() {
        "empty"
    } else if task_id == "." || task_id == ".." {
        "reserved name"
    } else if task_id.contains(['/', '\0', '\n']) {
        "contains '/', newline or nul"
    } else {
        return Ok(());
    };
    Err(LaunchError::InvalidTaskId {
        task_id: task_id.to_owned(),
        reason,
    })
}

impl Launcher {
    /// Creates a launcher and detects cgroup support once (by creating and removing a probe
    /// directory under `<controller root>/<cgroup_parent>`).
    pub fn new(cfg: LauncherConfig) -> Self {
        let support = cgroup::detect(&cfg.cgroup_parent);
        if let CgroupSupport::Unavailable { reason } = &support {
            tracing::warn!(%reason, "cgroup limits not enforced");
        }
        Launcher { cfg, support }
    }

    /// The configuration this launcher was created with.
    pub fn config(&self) -> &LauncherConfig {
        &self.cfg
    }

    /// Detected cgroup support; when `Unavailable` the engine should show
    /// "limits not enforced: <reason>".
    pub fn cgroup_support(&self) -> &CgroupSupport {
        &self.support
    }

    /// The task's cgroup directory for a v1 `controller` (`cpu`, `cpuacct`, `memory`, `pids`)
    /// or the unified directory for v2, for reading metrics. `None` if unsupported.
    pub fn cgroup_dir(&self, task_id: &str, controller: &str) -> Option<PathBuf> {
        check_task_id(task_id).ok()?;
        let base = match &self.support {
            CgroupSupport::V1 {
                cpu,
                memory,
                cpuacct,
                pids,
            } => match controller {
                "cpu" => Some(cpu),
                "memory" => Some(memory),
                "cpuacct" => cpuacct.as_ref(),
                "pids" => pids.as_ref(),
                _ => None,
            },
            CgroupSupport::V2 { root } => Some(root),
            CgroupSupport::Unavailable { .. } => None,
        }?;
        Some(base.join(&self.cfg.cgroup_parent).join(task_id))
    }

    /// [`Launcher::launch_with`] without a record to write.
    pub async fn launch(&self, spec: &LaunchSpec) -> Result<Launched, LaunchError> {
        self.launch_with(spec, |_| Ok(())).await
    }

    /// Prepares the sandbox, fetches artifacts, creates the task's cgroups (every task has
    /// its own when cgroups are available, with or without limits) and starts the task in
    /// its own session, held before it execs the command. `record` then gets the task's
    /// identity (pid plus start time) and must store it durably: only when it returns `Ok`
    /// is the command released, so a task never runs user code unrecorded. An `Err` from
    /// `record` kills the held process (nothing of the task ran) and fails the launch.
    pub async fn launch_with(
        &self,
        spec: &LaunchSpec,
        record: impl FnOnce(ProcIdentity) -> Result<(), String> + Send,
    ) -> Result<Launched, LaunchError> {
        check_task_id(&spec.task_id)?;
        let sandbox_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LaunchError::Sandbox { path, source }
        };
        tokio::fs::create_dir_all(&spec.sandbox)
            .await
            .map_err(sandbox_err(&spec.sandbox))?;
        let sandbox = tokio::fs::canonicalize(&spec.sandbox)
            .await
            .map_err(sandbox_err(&spec.sandbox))?;
        let user = spawn::resolve(&spec.run_as, &sandbox).await?;
        fetch::fetch_all(&spec.fetch, &sandbox).await?;
        let env = spawn::task_env(spec, &sandbox, &self.cfg.agent_id, user.as_ref());
        if let Some(u) = user.as_ref().filter(|u| u.switch) {
            for name in ["stdout", "stderr"] {
                logs::open_append(&sandbox.join(name)).map_err(sandbox_err(&sandbox))?;
            }
            chown_tree(&sandbox, u.uid, u.gid).map_err(sandbox_err(&sandbox))?;
            // Private to the task's identity; the server (root) still reads its logs.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&sandbox, std::fs::Permissions::from_mode(0o700))
                .map_err(sandbox_err(&sandbox))?;
        }
        let setsid = spawn::find_program("setsid").ok_or_else(|| LaunchError::Spawn {
            program: "setsid".into(),
            source: io::Error::new(io::ErrorKind::NotFound, "setsid (util-linux) not found"),
        })?;
        let cg = if self.support.is_available() {
            let none = Limits {
                cpus: 0.0,
                mem_mib: 0.0,
            };
            cgroup::create_task(
                &self.support,
                &self.cfg.cgroup_parent,
                &spec.task_id,
                spec.limits.as_ref().unwrap_or(&none),
            )?
        } else {
            cgroup::TaskCgroup::default()
        };
        let result = self
            .start(&setsid, spec, &sandbox, &cg, user.as_ref(), env, record)
            .await;
        if result.is_err() {
            cgroup::remove_dirs(&cg.dirs);
        }
        result
    }

    /// Spawns the prepared command, waits until it is a held session leader in its
    /// cgroups, has `record` store its identity, then releases it.
    #[allow(clippy::too_many_arguments)]
    async fn start(
        &self,
        setsid: &Path,
        spec: &LaunchSpec,
        sandbox: &Path,
        cg: &cgroup::TaskCgroup,
        user: Option<&spawn::UserInfo>,
        env: Vec<(String, String)>,
        record: impl FnOnce(ProcIdentity) -> Result<(), String> + Send,
    ) -> Result<Launched, LaunchError> {
        let mut cmd = spawn::build_command(setsid, spec, sandbox, cg, user, env)?;
        let mut child = cmd.spawn().map_err(|source| LaunchError::Spawn {
            program: setsid.display().to_string(),
            source,
        })?;
        let startup = |reason: String| LaunchError::Startup {
            task_id: spec.task_id.clone(),
            reason,
        };
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| startup("spawned process has no pid".into()))?;
        if let Err(e) = spawn::wait_started(&mut child, pid, cg, &spec.task_id).await {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(e);
        }
        // The wrapper is held: read its identity now, before anything can change it.
        let held = ProcIdentity::of(pid)
            .ok_or_else(|| startup(format!("process {pid} vanished before it was observed")));
        let recorded =
            held.and_then(|identity| record(identity).map(|()| identity).map_err(startup));
        let identity = match recorded {
            Ok(identity) => identity,
            Err(e) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(e);
            }
        };
        spawn::release(&mut child, &spec.task_id).await?;
        tracing::info!(task_id = %spec.task_id, pid, "task launched");
        Ok(Launched {
            identity,
            child,
            sandbox: sandbox.to_path_buf(),
            limits_enforced: !cg.dirs.is_empty(),
        })
    }

    /// Sends `sig` to the task's whole process group, only if `id` still names the same
    /// process (start time matches). A zombie leader still matches (its pid cannot be reused),
    /// so leftover group members are reached. `ESRCH` yields [`SignalOutcome::Gone`].
    /// A failure to read `/proc` is an error ([`LaunchError::Observe`]), never `Gone`.
    pub fn signal(&self, id: ProcIdentity, sig: Signal) -> Result<SignalOutcome, LaunchError> {
        let stat = match proc_fs::try_read_stat(id.pid) {
            Ok(Some(stat)) => stat,
            Ok(None) => return Ok(SignalOutcome::Gone),
            Err(source) => {
                return Err(LaunchError::Observe {
                    pid: id.pid,
                    source,
                });
            }
        };
        if stat.start_time != id.start_time {
            return Ok(SignalOutcome::Gone);
        }
        let pid = Pid::from_raw(id.pid);
        let res = if stat.pgrp == id.pid {
            killpg(pid, sig)
        } else {
            kill(pid, sig)
        };
        match res {
            Ok(()) => Ok(SignalOutcome::Delivered),
            Err(Errno::ESRCH) => Ok(SignalOutcome::Gone),
            Err(source) => Err(LaunchError::Signal {
                pid: id.pid,
                source,
            }),
        }
    }

    /// The uid and gid a task with `run_as` runs with (`None` for the server's own), for
    /// its COMMAND health checks. Resolves account names through the user database.
    pub fn ids_of(run_as: &RunAs) -> Option<(u32, u32)> {
        match run_as {
            RunAs::Server => None,
            RunAs::Id { uid, gid } => Some((*uid, *gid)),
            RunAs::User(name) => spawn::account_ids(name),
        }
    }

    /// Whose privileges a COMMAND health check runs with: its task's (`task`, from
    /// [`Launcher::ids_of`]), else — a container, a task of the server's own user —
    /// `nobody`'s; `None` when this server is not root and can switch to no one. Never the
    /// server's privileges unless the task runs with them.
    pub fn check_identity(&self, task: Option<(u32, u32)>) -> Option<(u32, u32)> {
        if proc_fs::effective_uid() != Some(0) {
            return None;
        }
        Some(task.unwrap_or((65_534, 65_534)))
    }

    /// `Alive` if the process exists with the same start time and is not a zombie, `Gone`
    /// if it does not, `Unknown` if `/proc` could not be read (look again later).
    pub fn liveness(&self, id: ProcIdentity) -> Liveness {
        proc_fs::liveness(id)
    }

    /// Live session leaders on the machine whose environment carries this agent's marker.
    ///
    /// Only a hint: a program that sets its process title (nginx, PostgreSQL, setproctitle)
    /// overwrites the memory `/proc/PID/environ` shows. Tasks are identified by their
    /// cgroup ([`Launcher::task_cgroups`]) and by the identity recorded at launch.
    pub fn scan(&self) -> Vec<FoundTask> {
        proc_fs::scan(&self.cfg.agent_id)
    }

    /// Every task cgroup of this launcher (`<hierarchy>/<cgroup_parent>/<task-id>`) with the
    /// processes in it: a task's processes are exactly its cgroup's, whatever they do to
    /// their title or environment. `Err` when a directory could not be listed (unknown,
    /// look again). Empty when cgroups are unavailable.
    pub fn task_cgroups(&self) -> io::Result<Vec<(String, Vec<i32>)>> {
        let mut out: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
        for h in self.support.hierarchies() {
            let parent = h.join(&self.cfg.cgroup_parent);
            let entries = match std::fs::read_dir(&parent) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                if !entry.file_type()?.is_dir() {
                    continue;
                }
                let Some(task_id) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let pids = out.entry(task_id).or_default();
                pids.extend(cgroup::procs_in(&entry.path()));
                pids.sort_unstable();
                pids.dedup();
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Bounds `stdout`/`stderr` in `sandbox`: a stream larger than `log_max_bytes` is copied
    /// (its last `log_max_bytes` bytes) to `<stream>.1` and truncated to 0 (copytruncate).
    pub fn rotate_logs(&self, sandbox: &Path) -> io::Result<()> {
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            logs::rotate_stream(sandbox, stream, self.cfg.log_max_bytes)?;
        }
        Ok(())
    }

    /// Reads the current log of `stream` (`<stream>.1` holds the previous chunk).
    /// `offset: None` = the last `limit` bytes; see [`LogChunk`].
    pub fn read_log(
        sandbox: &Path,
        stream: LogStream,
        offset: Option<u64>,
        limit: u64,
    ) -> io::Result<LogChunk> {
        logs::read_log(sandbox, stream, offset, limit)
    }

    /// Call after the task leader is gone: SIGKILLs every straggler of the task (e.g.
    /// daemonized children) — the processes in its cgroups, those still in the leader's
    /// session when `leader` is known, and, as a hint only, those carrying its
    /// `SLIPWAY_TASK_ID` — then removes the task's cgroup directories. Keeps the sandbox.
    /// Failures are logged, never returned. May block up to [`CLEANUP_DEADLINE`] while
    /// stragglers die; a cgroup still left then is found again by the engine's orphan scan.
    pub fn cleanup(&self, task_id: &str, leader: Option<ProcIdentity>) {
        if check_task_id(task_id).is_err() {
            return;
        }
        let dirs = cgroup::task_dirs(&self.support, &self.cfg.cgroup_parent, task_id);
        let deadline = std::time::Instant::now() + CLEANUP_DEADLINE;
        loop {
            let mut pids: Vec<i32> = dirs.iter().flat_map(|d| cgroup::procs_in(d)).collect();
            pids.extend(
                proc_fs::task_members(&self.cfg.agent_id, task_id)
                    .into_iter()
                    .map(|m| m.pid),
            );
            if let Some(leader) = leader {
                pids.extend(proc_fs::session_members(leader));
            }
            pids.sort_unstable();
            pids.dedup();
            for pid in &pids {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
            }
            let failed = cgroup::remove_dirs(&dirs);
            if failed.is_empty() && pids.is_empty() {
                return;
            }
            if std::time::Instant::now() > deadline {
                for (dir, e) in failed {
                    tracing::warn!(task_id, dir = %dir.display(), error = %e, "cannot remove cgroup");
                }
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Removes a sandbox directory recursively (missing is not an error).
    pub fn remove_sandbox(sandbox: &Path) -> io::Result<()> {
        match std::fs::remove_dir_all(sandbox) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Recursively changes ownership of `dir` and its content (symlinks themselves, not targets).
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(dir)?.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}
