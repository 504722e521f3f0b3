//! `run` steps: each command in `sh -c`, in the run's workspace, in a process group of its
//! own, with stdout and stderr streamed line by line (secrets masked) and the whole tree
//! killed on timeout or cancel, and afterwards (nothing a step starts outlives it).

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// Longest log line kept; longer ones are cut (logs are bounded).
pub const MAX_LINE: usize = 16 * 1024;

/// How long output is still read after a command's processes are gone (a child that
/// left the process group may hold the pipes open).
const DRAIN: Duration = Duration::from_secs(1);

/// Receives a step's log lines.
pub type LogFn = Arc<dyn Fn(Stream, String) + Send + Sync>;

/// Which output a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The command's stdout.
    Stdout,
    /// The command's stderr.
    Stderr,
    /// Slipway's own notes about the step (command started, exit status, retry).
    System,
}

/// How one attempt of a `run` step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Every command exited 0; outputs written to `$SLIPWAY_OUTPUT`.
    Succeeded(BTreeMap<String, String>),
    /// A command failed.
    Failed(String),
    /// The attempt ran out of time; its processes were killed.
    TimedOut(Duration),
    /// The run was cancelled; its processes were killed.
    Cancelled,
}

/// One attempt: the commands in order, each in its own process group.
pub(crate) struct RunCommands<'a> {
    pub(crate) commands: &'a [String],
    pub(crate) workspace: &'a Path,
    pub(crate) env: &'a [(String, String)],
    pub(crate) timeout: Option<Duration>,
    /// Values masked in every line.
    pub(crate) secrets: Arc<Vec<String>>,
    /// Where commands write `key=value` outputs (`$SLIPWAY_OUTPUT`).
    pub(crate) outputs_file: PathBuf,
    /// Whose privileges the commands run with (`None`: the server's own).
    pub(crate) user: Option<&'a crate::step_user::StepUser>,
}

impl RunCommands<'_> {
    pub(crate) async fn run(&self, log: &LogFn, cancel: &CancellationToken) -> Attempt {
        let _ = std::fs::remove_file(&self.outputs_file);
        let deadline = self.timeout.map(|t| tokio::time::Instant::now() + t);
        for command in self.commands {
            log(Stream::System, format!("+ {}", self.mask(command)));
            let outcome = self.one(command, deadline, log, cancel).await;
            if let Some(end) = outcome {
                return end;
            }
        }
        Attempt::Succeeded(read_outputs(&self.outputs_file))
    }

    /// Runs one command; `None` when it exited 0.
    async fn one(
        &self,
        command: &str,
        deadline: Option<tokio::time::Instant>,
        log: &LogFn,
        cancel: &CancellationToken,
    ) -> Option<Attempt> {
        let (program, args): (String, Vec<std::ffi::OsString>) = match self.user {
            None => ("/bin/sh".into(), vec!["-c".into(), command.into()]),
            Some(user) => match user.wrap(self.workspace, command) {
                Ok(w) => w,
                Err(e) => return Some(Attempt::Failed(format!("cannot start the command: {e}"))),
            },
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(self.workspace)
            .env_clear()
            .envs(crate::step_user::base_env(self.user, search_path()))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("SLIPWAY_OUTPUT", &self.outputs_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Some(Attempt::Failed(format!("cannot start the command: {e}"))),
        };
        let Some(pgid) = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .map(Pid::from_raw)
        else {
            return Some(Attempt::Failed("the command has no process id".into()));
        };
        let pumps = [
            tokio::spawn(pump(
                child.stdout.take(),
                Stream::Stdout,
                self.secrets.clone(),
                log.clone(),
            )),
            tokio::spawn(pump(
                child.stderr.take(),
                Stream::Stderr,
                self.secrets.clone(),
                log.clone(),
            )),
        ];
        // When the shell exits, the leftovers of its group are killed while it is still an
        // unreaped zombie, so the group id cannot belong to anyone else yet.
        let exited = async {
            let _ = tokio::task::spawn_blocking(move || {
                waitid(Id::Pid(pgid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
            })
            .await;
            let _ = killpg(pgid, Signal::SIGKILL);
        };
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let end = tokio::select! {
            () = exited => None,
            () = sleep => Some(Attempt::TimedOut(self.timeout.unwrap_or_default())),
            () = cancel.cancelled() => Some(Attempt::Cancelled),
        };
        if end.is_some() {
            // Still running, or an unreaped zombie: the group id is still ours.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        for pump in pumps {
            let abort = pump.abort_handle();
            if tokio::time::timeout(DRAIN, pump).await.is_err() {
                abort.abort();
            }
        }
        let status = child.wait().await;
        if let Some(end) = end {
            log(
                Stream::System,
                match &end {
                    Attempt::TimedOut(t) => {
                        format!("timed out after {}; killed its processes", human(*t))
                    }
                    _ => "cancelled; killed its processes".to_string(),
                },
            );
            return Some(end);
        }
        match status {
            Ok(s) if s.success() => None,
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                let why = match (s.code(), s.signal()) {
                    (Some(code), _) => {
                        format!("`{}` exited with status {code}", self.mask(command))
                    }
                    (None, Some(sig)) => {
                        format!("`{}` was killed by signal {sig}", self.mask(command))
                    }
                    _ => format!("`{}` failed", self.mask(command)),
                };
                log(Stream::System, why.clone());
                Some(Attempt::Failed(why))
            }
            Err(e) => Some(Attempt::Failed(format!("cannot wait for the command: {e}"))),
        }
    }
}

impl RunCommands<'_> {
    fn mask(&self, text: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        auth::mask(text, &secrets)
    }
}

/// Forwards lines of one pipe to `log`, masked and bounded.
async fn pump<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    stream: Stream,
    secrets: Arc<Vec<String>>,
    log: LogFn,
) {
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let Some(pipe) = pipe else { return };
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                buf.truncate(MAX_LINE);
                let line = String::from_utf8_lossy(&buf);
                log(stream, auth::mask(&line, &secrets));
            }
        }
    }
}

/// `key=value` lines of the outputs file (later lines win; other lines are ignored). The
/// file is in the step's workspace, so it is opened without following a symbolic link and
/// must be a regular file of one link and at most 1 MiB: a step cannot make the server
/// read another file for it.
fn read_outputs(path: &Path) -> BTreeMap<String, String> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    const MAX: u64 = 1024 * 1024;
    let text = std::fs::File::options()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .and_then(|f| {
            let meta = f.metadata()?;
            if !meta.is_file() || meta.nlink() != 1 || meta.len() > MAX {
                return Err(std::io::Error::other("not a plain outputs file"));
            }
            let mut text = String::new();
            f.take(MAX).read_to_string(&mut text)?;
            Ok(text)
        })
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .collect()
}

/// `1.5s`, `2m0s`.
pub(crate) fn human(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// The server's `PATH` with the directory of the running `slipway` binary first, so steps
/// can call `slipway` (e.g. `slipway sarif cargo`) without installing it.
fn search_path() -> String {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let inherited =
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        match std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.to_string_lossy().to_string()))
        {
            Some(dir) if !inherited.split(':').any(|p| p == dir) => format!("{dir}:{inherited}"),
            _ => inherited,
        }
    })
    .clone()
}
