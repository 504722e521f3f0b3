//! Building and spawning the task process (setsid + cgroup-joining shell wrapper), users, exit info.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::cgroup::{self, TaskCgroup};
use crate::proc_fs;
use crate::{LaunchError, LaunchSpec, TaskCommand};

/// Shell wrapper run as the task leader: writes its own pid (`$$`) into every file given
/// before `--` (the task's `cgroup.procs` files), then waits on its standard input for the
/// server's `go` line, which the server writes only once it has durably recorded the
/// task's identity (pid plus start time). Only then does it exec the remaining arguments,
/// with `/dev/null` as standard input, so the user command starts inside its cgroups with
/// the same pid, and no user code ever runs unrecorded. End of input (the server died
/// before recording) ends the wrapper with status 126 before anything of the task ran.
/// Exit status 125 = join failed.
pub(crate) const WRAPPER: &str = r#"umask 022; for f; do [ "$f" = -- ] && break; echo $$ > "$f" || { echo "slipway-task: cannot join cgroup $f" >&2; exit 125; }; shift; done; shift; read -r go || exit 126; [ "$go" = go ] || exit 126; SLIPWAY_LEADER_PID=$$; export SLIPWAY_LEADER_PID; exec "$@" </dev/null"#;

/// Exit status of the wrapper when it cannot join a cgroup.
pub(crate) const JOIN_FAILED: i32 = 125;

/// Fallback PATH when the server has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long launch waits for the task to become a session leader (and join its cgroups).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A resolved target user.
#[derive(Debug, Clone)]
pub(crate) struct UserInfo {
    /// Login name.
    pub(crate) name: String,
    /// Numeric uid.
    pub(crate) uid: u32,
    /// Primary gid.
    pub(crate) gid: u32,
    /// Home directory.
    pub(crate) home: String,
    /// Whether a uid switch (setpriv) is needed; false when already running as that uid.
    pub(crate) switch: bool,
    /// Whether the account's supplementary groups apply (`--init-groups`); a numeric
    /// identity without an account gets none (`--clear-groups`).
    pub(crate) account: bool,
}

/// Resolves whose privileges a task runs with; `None` for the server's own.
pub(crate) async fn resolve(
    run_as: &crate::RunAs,
    sandbox: &Path,
) -> Result<Option<UserInfo>, LaunchError> {
    match run_as {
        crate::RunAs::Server => Ok(None),
        crate::RunAs::User(name) => resolve_user(name).await.map(Some),
        crate::RunAs::Id { uid, gid } => {
            let name = format!("uid {uid}");
            let euid = proc_fs::effective_uid();
            let switch = euid != Some(*uid);
            if switch && euid != Some(0) {
                return Err(LaunchError::User {
                    user: name,
                    reason: "slipway is not running as root".into(),
                });
            }
            if switch && find_program("setpriv").is_none() {
                return Err(LaunchError::User {
                    user: name,
                    reason: "setpriv (util-linux) is not installed".into(),
                });
            }
            Ok(Some(UserInfo {
                name: format!("slipway-{uid}"),
                uid: *uid,
                gid: *gid,
                home: sandbox.to_string_lossy().into_owned(),
                switch,
                account: false,
            }))
        }
    }
}

/// Finds an executable in PATH or the standard system directories.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// `(uid, gid)` of the account `name` from the user database (blocking).
pub(crate) fn account_ids(name: &str) -> Option<(u32, u32)> {
    if name.is_empty() || name.contains([':', '\n', '\0']) {
        return None;
    }
    let out = std::process::Command::new("getent")
        .args(["passwd", name])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let f: Vec<&str> = line.split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

/// Resolves `user` with `getent passwd` and checks the switch is possible.
pub(crate) async fn resolve_user(user: &str) -> Result<UserInfo, LaunchError> {
    let err = |reason: String| LaunchError::User {
        user: user.to_owned(),
        reason,
    };
    if user.is_empty() || user.contains([':', '\n', '\0']) {
        return Err(err("invalid user name".into()));
    }
    let out = Command::new("getent")
        .args(["passwd", user])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await
        .map_err(|e| err(format!("cannot run getent: {e}")))?;
    let line = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = line.trim_end().split(':').collect();
    let (Some(name), Some(uid), Some(gid), Some(home)) = (f.first(), f.get(2), f.get(3), f.get(5))
    else {
        return Err(err("no such user".into()));
    };
    let (Ok(uid), Ok(gid)) = (uid.parse::<u32>(), gid.parse::<u32>()) else {
        return Err(err("malformed passwd entry".into()));
    };
    let euid = proc_fs::effective_uid();
    let switch = euid != Some(uid);
    if switch && euid != Some(0) {
        return Err(err(format!(
            "slipway is not running as root (euid {})",
            euid.map_or_else(|| "unknown".to_owned(), |u| u.to_string())
        )));
    }
    if switch && find_program("setpriv").is_none() {
        return Err(err("setpriv (util-linux) is not installed".into()));
    }
    Ok(UserInfo {
        name: (*name).to_owned(),
        uid,
        gid,
        home: (*home).to_owned(),
        switch,
        account: true,
    })
}

/// Computes the task environment: PATH/HOME/LANG from the server, user vars, the engine's
/// variables, then the launcher-owned `MESOS_SANDBOX`, `SLIPWAY_AGENT_ID`, `SLIPWAY_TASK_ID`.
pub(crate) fn task_env(
    spec: &LaunchSpec,
    sandbox: &Path,
    agent_id: &str,
    user: Option<&UserInfo>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| match env.iter_mut().find(|(ek, _)| ek == k) {
        Some(entry) => entry.1 = v,
        None => env.push((k.to_owned(), v)),
    };
    set(
        "PATH",
        std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into()),
    );
    for key in ["HOME", "LANG"] {
        if let Ok(v) = std::env::var(key) {
            set(key, v);
        }
    }
    if let Some(u) = user {
        set("HOME", u.home.clone());
        set("USER", u.name.clone());
        set("LOGNAME", u.name.clone());
    }
    for (k, v) in &spec.env {
        set(k, v.clone());
    }
    set("MESOS_SANDBOX", sandbox.to_string_lossy().into_owned());
    set(crate::ENV_AGENT_ID, agent_id.to_owned());
    set(crate::ENV_TASK_ID, spec.task_id.clone());
    env
}

/// Builds `setsid /bin/sh -c WRAPPER slipway-task <procs...> -- [setpriv ... --] <argv...>`.
pub(crate) fn build_command(
    setsid: &Path,
    spec: &LaunchSpec,
    sandbox: &Path,
    cg: &TaskCgroup,
    user: Option<&UserInfo>,
    env: Vec<(String, String)>,
) -> Result<Command, LaunchError> {
    let argv: Vec<String> = match &spec.command {
        TaskCommand::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        TaskCommand::Exec(v) => v.clone(),
    };
    if argv.first().is_none_or(|a| a.is_empty()) {
        return Err(LaunchError::EmptyCommand {
            task_id: spec.task_id.clone(),
        });
    }
    let mut args: Vec<OsString> = vec!["/bin/sh".into(), "-c".into(), WRAPPER.into()];
    args.push("slipway-task".into());
    args.extend(cg.procs_files().into_iter().map(OsString::from));
    args.push("--".into());
    if let Some(u) = user.filter(|u| u.switch) {
        let setpriv = find_program("setpriv").ok_or_else(|| LaunchError::User {
            user: u.name.clone(),
            reason: "setpriv (util-linux) is not installed".into(),
        })?;
        args.push(setpriv.into());
        args.push(format!("--reuid={}", u.uid).into());
        args.push(format!("--regid={}", u.gid).into());
        args.push(
            if u.account {
                "--init-groups"
            } else {
                "--clear-groups"
            }
            .into(),
        );
        args.push("--".into());
    }
    args.extend(argv.into_iter().map(OsString::from));
    let stdout = open_log(sandbox, "stdout")?;
    let stderr = open_log(sandbox, "stderr")?;
    let mut cmd = Command::new(setsid);
    cmd.args(args)
        .env_clear()
        .envs(env)
        .current_dir(sandbox)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(false);
    Ok(cmd)
}

/// Opens `<sandbox>/<name>` with `O_APPEND`.
fn open_log(sandbox: &Path, name: &str) -> Result<std::fs::File, LaunchError> {
    let path = sandbox.join(name);
    crate::logs::open_append(&path).map_err(|source| LaunchError::Sandbox { path, source })
}

/// Waits until `pid` is its own session leader and is in every task cgroup. The wrapper
/// then waits for the server's `go`: nothing of the task has run yet, so nothing the
/// program does to itself (a new process title, a cleared environment) can hide it.
///
/// A wrapper that exits before it was released failed: its status says why.
pub(crate) async fn wait_started(
    child: &mut Child,
    pid: i32,
    cg: &TaskCgroup,
    task_id: &str,
) -> Result<(), LaunchError> {
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(1);
    let startup = |reason: String| LaunchError::Startup {
        task_id: task_id.to_owned(),
        reason,
    };
    loop {
        if let Some(stat) = proc_fs::read_stat(pid)
            && stat.session == pid
            && !stat.is_dead()
            && cg.dirs.iter().all(|d| cgroup::procs_in(d).contains(&pid))
        {
            return Ok(());
        }
        match child.try_wait() {
            Ok(Some(status)) if status.code() == Some(JOIN_FAILED) && !cg.dirs.is_empty() => {
                return Err(LaunchError::CgroupJoin {
                    task_id: task_id.to_owned(),
                });
            }
            Ok(Some(status)) => {
                return Err(startup(format!(
                    "the task's wrapper ended before the task started ({})",
                    ExitInfo::from_status(status).message.to_lowercase()
                )));
            }
            Ok(None) => {}
            Err(e) => return Err(startup(format!("cannot wait for process {pid}: {e}"))),
        }
        if started.elapsed() > START_TIMEOUT {
            let _ = child.start_kill();
            return Err(startup(format!(
                "process {pid} did not become a session leader within {}s",
                START_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(20));
    }
}

/// Lets the gated wrapper exec the task command (writes `go` and closes its input).
pub(crate) async fn release(child: &mut Child, task_id: &str) -> Result<(), LaunchError> {
    use tokio::io::AsyncWriteExt;
    let Some(mut stdin) = child.stdin.take() else {
        return Err(LaunchError::Startup {
            task_id: task_id.to_owned(),
            reason: "the task's wrapper has no input to release it through".into(),
        });
    };
    let result = stdin.write_all(b"go\n").await;
    drop(stdin);
    result.map_err(|e| LaunchError::Startup {
        task_id: task_id.to_owned(),
        reason: format!("cannot release the task's wrapper: {e}"),
    })
}

/// How a task process ended, with a Mesos-style message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code if the process exited normally.
    pub code: Option<i32>,
    /// Signal number if the process was killed by a signal.
    pub signal: Option<i32>,
    /// Human message, e.g. `Command exited with status 1` or
    /// `Command terminated with signal Killed` (used as `lastTaskFailure.message`).
    pub message: String,
}

impl ExitInfo {
    /// Converts an exit status into an [`ExitInfo`].
    pub fn from_status(status: ExitStatus) -> ExitInfo {
        use std::os::unix::process::ExitStatusExt;
        let (code, signal) = (status.code(), status.signal());
        let message = match (code, signal) {
            (Some(c), _) => format!("Command exited with status {c}"),
            (None, Some(s)) => {
                let core = if status.core_dumped() {
                    " (core dumped)"
                } else {
                    ""
                };
                format!("Command terminated with signal {}{core}", signal_name(s))
            }
            (None, None) => "Command exited with unknown status".to_owned(),
        };
        ExitInfo {
            code,
            signal,
            message,
        }
    }

    /// True if the process exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Waits for the child to exit and describes how it ended. Never fails: a wait error is
/// reported in the message.
pub async fn wait_exit(child: &mut Child) -> ExitInfo {
    match child.wait().await {
        Ok(status) => ExitInfo::from_status(status),
        Err(e) => ExitInfo {
            code: None,
            signal: None,
            message: format!("Command exit status unknown: {e}"),
        },
    }
}

/// The glibc `strsignal` description of a signal number.
pub fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 31] = [
        "Hangup",
        "Interrupt",
        "Quit",
        "Illegal instruction",
        "Trace/breakpoint trap",
        "Aborted",
        "Bus error",
        "Floating point exception",
        "Killed",
        "User defined signal 1",
        "Segmentation fault",
        "User defined signal 2",
        "Broken pipe",
        "Alarm clock",
        "Terminated",
        "Stack fault",
        "Child exited",
        "Continued",
        "Stopped (signal)",
        "Stopped",
        "Stopped (tty input)",
        "Stopped (tty output)",
        "Urgent I/O condition",
        "CPU time limit exceeded",
        "File size limit exceeded",
        "Virtual timer expired",
        "Profiling timer expired",
        "Window changed",
        "I/O possible",
        "Power failure",
        "Bad system call",
    ];
    match usize::try_from(sig)
        .ok()
        .and_then(|i| NAMES.get(i.checked_sub(1)?))
    {
        Some(n) => (*n).to_owned(),
        None if (34..=64).contains(&sig) => format!("Real-time signal {}", sig - 34),
        None => format!("Unknown signal {sig}"),
    }
}
