//! TCP and COMMAND probes, plus helpers shared with the HTTP probe.

use crate::state::ProbeOutcome;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::process::Command;

/// How long to wait for a SIGKILLed command to be reaped before giving up
/// (the child is then reaped in the background by tokio).
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks that a TCP connection to `host:port` can be established within
/// `timeout`.
pub async fn probe_tcp(host: &str, port: u16, timeout: Duration) -> ProbeOutcome {
    match tokio::time::timeout(timeout, connect(host, port)).await {
        Err(_) => timed_out(timeout),
        Ok(Err(e)) => ProbeOutcome::unhealthy(connect_cause(&e)),
        Ok(Ok(_stream)) => ProbeOutcome::Healthy,
    }
}

/// Runs `/bin/sh -c command` in its own process group with `env` (and a default `PATH`,
/// nothing of the server's environment), optionally in `cwd`, as `run_as` (uid, gid; the
/// supplementary groups dropped) when given — a check must never run with the server's
/// privileges or see its environment.
///
/// Exit status 0 is healthy, anything else unhealthy. When `timeout`
/// elapses (or the returned future is dropped) the whole process group is
/// killed with SIGKILL and the shell is reaped. Background processes the
/// command leaves in its group are killed too, before the shell is reaped (while its
/// zombie still reserves the group id, so an unrelated group can never be hit).
pub async fn probe_command(
    command: &str,
    env: &[(String, String)],
    cwd: Option<&Path>,
    timeout: Duration,
    run_as: Option<(u32, u32)>,
) -> ProbeOutcome {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid).gid(gid);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return ProbeOutcome::unhealthy(format!("failed to spawn command: {}", lower(&e)));
        }
    };
    // The shell is the group leader, so its pid is the process group id. It
    // stays reserved until the shell is reaped, so killing the group before
    // reaping can never hit an unrelated group.
    let mut guard = GroupGuard(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw),
    );
    let Some(pid) = guard.0 else {
        return ProbeOutcome::unhealthy("failed to spawn command: no pid");
    };
    if tokio::time::timeout(timeout, exited(pid)).await.is_ok() {
        // The shell has exited but is not reaped: as a zombie it still holds its pid and so
        // the group id, and killing the group reaches only what the command left behind.
        guard.kill();
        let status = child.wait().await;
        guard.disarm();
        return match status {
            Ok(status) => exit_outcome(status),
            Err(e) => ProbeOutcome::unhealthy(format!("failed to wait for command: {}", lower(&e))),
        };
    }
    tracing::debug!(
        command,
        ?timeout,
        "health check command timed out, killing its process group"
    );
    guard.kill();
    if let Ok(Ok(_)) = tokio::time::timeout(REAP_TIMEOUT, child.wait()).await {
        guard.disarm();
    }
    timed_out(timeout)
}

/// Resolves once `pid` has exited (is a zombie or gone), without reaping it, so its pid and
/// process group id stay reserved. Polls `/proc`, which is cheap at health-check rates.
async fn exited(pid: Pid) {
    let path = format!("/proc/{pid}/stat");
    let mut delay = Duration::from_millis(1);
    loop {
        let state = std::fs::read_to_string(&path).ok().and_then(|stat| {
            stat.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        });
        match state.as_deref() {
            Some("Z") | Some("X") | None => return,
            _ => {}
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(20));
    }
}

/// Kills a not-yet-reaped command's process group when armed and dropped.
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn kill(&self) {
        if let Some(pgid) = self.0
            && let Err(e) = killpg(pgid, Signal::SIGKILL)
            && e != nix::errno::Errno::ESRCH
        {
            tracing::warn!(%pgid, error = %e, "failed to kill health check process group");
        }
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

fn exit_outcome(status: ExitStatus) -> ProbeOutcome {
    match (status.code(), status.signal()) {
        (Some(0), _) => ProbeOutcome::Healthy,
        (Some(code), _) => ProbeOutcome::unhealthy(format!("command exited with status {code}")),
        (None, Some(signal)) => {
            ProbeOutcome::unhealthy(format!("command killed by signal {signal}"))
        }
        (None, None) => ProbeOutcome::unhealthy(format!("command failed: {status}")),
    }
}

/// Connects to `host:port`; `host` may be a name, an IPv4 address or an
/// IPv6 address with or without brackets.
pub(crate) async fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    TcpStream::connect((host, port)).await
}

/// Failure cause for a failed connection attempt.
pub(crate) fn connect_cause(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        _ => format!("connection failed: {}", lower(e)),
    }
}

/// Outcome for a probe that exceeded `timeout`.
pub(crate) fn timed_out(timeout: Duration) -> ProbeOutcome {
    ProbeOutcome::unhealthy(format!("timed out after {}", fmt_duration(timeout)))
}

/// Formats whole seconds as "20s", whole milliseconds as "300ms".
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{d:?}")
    }
}

/// Displays an error with a lowercase first letter.
pub(crate) fn lower(e: &impl std::fmt::Display) -> String {
    let s = e.to_string();
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_format_compactly() {
        assert_eq!(fmt_duration(Duration::from_secs(20)), "20s");
        assert_eq!(fmt_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(fmt_duration(Duration::from_micros(1500)), "1.5ms");
    }

    #[test]
    fn errors_are_lowercased() {
        let e = io::Error::other("Connection reset by peer");
        assert_eq!(lower(&e), "connection reset by peer");
        assert_eq!(
            connect_cause(&io::Error::from(io::ErrorKind::ConnectionRefused)),
            "connection refused"
        );
    }
}
