//! Reading `/proc`: process identity (pid + start time), liveness and the task scan.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Identity that survives pid reuse: pid plus the start time
/// (field 22 of `/proc/PID/stat`, clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcIdentity {
    /// Process id (also the process group and session id of a task leader).
    pub pid: i32,
    /// Start time in clock ticks since boot; changes when the pid is reused.
    pub start_time: u64,
}

impl ProcIdentity {
    /// Reads the current identity of `pid`, or `None` when no such process exists.
    ///
    /// A zombie still has an identity (its pid cannot be reused until it is reaped).
    pub fn of(pid: i32) -> Option<ProcIdentity> {
        read_stat(pid).map(|s| ProcIdentity {
            pid,
            start_time: s.start_time,
        })
    }
}

/// Whether a task process is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Liveness {
    /// The process exists, has the same start time and is not a zombie.
    Alive,
    /// The pid is absent, was reused by another process, or is a zombie.
    Gone,
    /// `/proc` could not be read (descriptor exhaustion, memory pressure, ...): nothing is
    /// known, look again later. Never a reason to declare a task dead.
    Unknown,
}

/// A task leader of this agent found on the machine by [`crate::Launcher::scan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundTask {
    /// Value of `SLIPWAY_TASK_ID` in the process environment.
    pub task_id: String,
    /// Identity of the task leader.
    pub identity: ProcIdentity,
    /// Value of `MESOS_SANDBOX` in the process environment, if present.
    pub sandbox: Option<PathBuf>,
}

/// The fields of `/proc/PID/stat` the launcher needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Field 3: R, S, D, Z, T, X, ...
    pub(crate) state: char,
    /// Field 5: process group id.
    pub(crate) pgrp: i32,
    /// Field 6: session id.
    pub(crate) session: i32,
    /// Field 22: start time in clock ticks since boot.
    pub(crate) start_time: u64,
}

impl ProcStat {
    /// True for zombie (`Z`) and dead (`X`/`x`) processes.
    pub(crate) fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the content of `/proc/PID/stat`.
///
/// The comm field (2) may contain spaces and parentheses, so parsing starts after
/// the last `)` in the line.
pub(crate) fn parse_stat(content: &str) -> Option<ProcStat> {
    let close = content.rfind(')')?;
    let rest = content.get(close + 1..)?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // fields[0] is field 3 of the stat line, so field N is fields[N - 3].
    let state = fields.first()?.chars().next()?;
    let pgrp = fields.get(2)?.parse().ok()?;
    let session = fields.get(3)?.parse().ok()?;
    let start_time = fields.get(19)?.parse().ok()?;
    Some(ProcStat {
        state,
        pgrp,
        session,
        start_time,
    })
}

/// Reads and parses `/proc/PID/stat`; `None` if the process does not exist.
///
/// Every error, including a failure to read, is folded into `None`: use
/// [`try_read_stat`] where "gone" and "could not look" must be told apart.
pub(crate) fn read_stat(pid: i32) -> Option<ProcStat> {
    try_read_stat(pid).ok().flatten()
}

/// Reads and parses `/proc/PID/stat`: `Ok(None)` when the process does not exist (or its
/// stat line cannot be parsed, which only happens for a process that is going away), and
/// `Err` when `/proc` could not be read at all (`EMFILE`, `ENOMEM`, ...): unknown.
pub(crate) fn try_read_stat(pid: i32) -> std::io::Result<Option<ProcStat>> {
    if pid <= 0 {
        return Ok(None);
    }
    match fs::read(format!("/proc/{pid}/stat")) {
        // The command name may be any bytes (a script's file name, a title set with
        // prctl); they do not matter, only the fields after its last `)` are read.
        Ok(content) => Ok(parse_stat(&String::from_utf8_lossy(&content))),
        // ENOENT: no such process; ESRCH: it exited while we read.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Liveness of `id`: alive only if the pid exists, is not a zombie and has the same start
/// time; unknown when `/proc` cannot be read.
pub(crate) fn liveness(id: ProcIdentity) -> Liveness {
    match try_read_stat(id.pid) {
        Ok(Some(s)) if s.start_time == id.start_time && !s.is_dead() => Liveness::Alive,
        Ok(_) => Liveness::Gone,
        Err(e) => {
            tracing::debug!(pid = id.pid, error = %e, "cannot read /proc: liveness unknown");
            Liveness::Unknown
        }
    }
}

/// Reads `/proc/PID/environ` as `KEY=VALUE` pairs (entries without `=` are skipped).
pub(crate) fn read_environ(pid: i32) -> Option<Vec<(String, String)>> {
    let raw = fs::read(format!("/proc/{pid}/environ")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter_map(|entry| {
                let entry = String::from_utf8_lossy(entry);
                let (k, v) = entry.split_once('=')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect(),
    )
}

/// Returns the value of `key` in an environment list.
pub(crate) fn env_get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// All numeric entries of `/proc` (pids), unreadable entries skipped.
pub(crate) fn all_pids() -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid > 0)
        .collect()
}

/// Every live process (but this one) whose environment holds `key`, with its identity
/// and the value: the one scanner of `/proc/PID/environ` (tasks that outlived a server
/// without cgroups, a pipeline run's leftover step processes). The environment is only a
/// hint: a program that sets its process title overwrites it.
pub fn processes_marked(key: &str) -> Vec<(ProcIdentity, String)> {
    let me = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|pid| *pid != me && *pid > 1)
        .filter_map(|pid| {
            let stat = read_stat(pid)?;
            if stat.is_dead() {
                return None;
            }
            let env = read_environ(pid)?;
            let value = env_get(&env, key)?.to_owned();
            Some((
                ProcIdentity {
                    pid,
                    start_time: stat.start_time,
                },
                value,
            ))
        })
        .collect()
}

/// Finds every live session leader whose environment carries `SLIPWAY_AGENT_ID == agent_id`
/// and `SLIPWAY_LEADER_PID == its own pid`.
pub(crate) fn scan(agent_id: &str) -> Vec<FoundTask> {
    let mut found = Vec::new();
    for pid in all_pids() {
        let Some(stat) = read_stat(pid) else { continue };
        if stat.session != pid || stat.is_dead() {
            continue;
        }
        let Some(env) = read_environ(pid) else {
            continue;
        };
        if env_get(&env, crate::ENV_AGENT_ID) != Some(agent_id) {
            continue;
        }
        let Some(task_id) = env_get(&env, crate::ENV_TASK_ID) else {
            continue;
        };
        // Descendants that called setsid themselves inherit the leader's pid, not their own.
        if env_get(&env, crate::ENV_LEADER_PID) != Some(pid.to_string().as_str()) {
            continue;
        }
        // Re-read so the identity belongs to the process whose environment we just read.
        match read_stat(pid) {
            Some(again) if again.start_time == stat.start_time => {}
            _ => continue,
        }
        found.push(FoundTask {
            task_id: task_id.to_owned(),
            identity: ProcIdentity {
                pid,
                start_time: stat.start_time,
            },
            sandbox: env_get(&env, "MESOS_SANDBOX").map(PathBuf::from),
        });
    }
    found.sort_by_key(|t| t.identity.pid);
    found
}

/// Pids of live processes (any, not only leaders) carrying this agent's marker and `task_id`.
pub(crate) fn task_members(agent_id: &str, task_id: &str) -> Vec<ProcIdentity> {
    processes_marked(crate::ENV_TASK_ID)
        .into_iter()
        .filter(|(id, task)| {
            task == task_id
                && read_environ(id.pid)
                    .is_some_and(|env| env_get(&env, crate::ENV_AGENT_ID) == Some(agent_id))
        })
        .map(|(id, _)| id)
        .collect()
}

/// Pids of live processes in the session `leader` started (session id == its pid), started
/// no earlier than the leader itself (a reused pid's session is somebody else's).
pub(crate) fn session_members(leader: ProcIdentity) -> Vec<i32> {
    // A session id stays allocated while any process of the session lives, so a pid that
    // now names another process means the session is empty (and its id is somebody else's).
    if let Some(s) = read_stat(leader.pid)
        && s.start_time != leader.start_time
    {
        return Vec::new();
    }
    all_pids()
        .into_iter()
        .filter(|pid| {
            read_stat(*pid).is_some_and(|s| {
                s.session == leader.pid && s.start_time >= leader.start_time && !s.is_dead()
            })
        })
        .collect()
}

/// Effective uid of this process, read from `/proc/self/status`.
pub(crate) fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string(Path::new("/proc/self/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_ascii_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_name_that_is_not_utf8_is_read_like_any_other() {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::PermissionsExt;
        // The kernel names a script's process after the script's file: here two bytes
        // that are not UTF-8.
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir
            .path()
            .join(std::ffi::OsStr::from_bytes(b"\xff\xfe-task"));
        // The shell waits in a builtin, so the process keeps the script's name.
        fs::write(&script, "#!/bin/sh\nread line\n").expect("write");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut child = std::process::Command::new(&script)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let pid = i32::try_from(child.id()).expect("pid");
        // Until the child has exec'd the script it still carries this test's name.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let raw = loop {
            let raw = fs::read(format!("/proc/{pid}/stat")).expect("stat");
            if std::str::from_utf8(&raw).is_err() || std::time::Instant::now() > deadline {
                break raw;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let stat = try_read_stat(pid);
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            std::str::from_utf8(&raw).is_err(),
            "the line should not be UTF-8: {}",
            String::from_utf8_lossy(&raw)
        );
        let stat = stat.expect("readable").expect("the process is there");
        assert!(stat.start_time > 0);
        assert!(!stat.is_dead());
    }

    #[test]
    fn parses_comm_with_spaces_and_parens() {
        let line = "1234 (we ird) (x) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let s = parse_stat(line).expect("valid line");
        assert_eq!(s.state, 'S');
        assert_eq!(s.pgrp, 1234);
        assert_eq!(s.session, 1234);
        assert_eq!(s.start_time, 987654);
        assert!(parse_stat("1 (x) S 1 2").is_none());
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn own_process_is_alive_and_wrong_start_is_gone() {
        let me = ProcIdentity::of(std::process::id() as i32).expect("self exists");
        assert_eq!(liveness(me), Liveness::Alive);
        let wrong = ProcIdentity {
            start_time: me.start_time + 1,
            ..me
        };
        assert_eq!(liveness(wrong), Liveness::Gone);
        assert!(effective_uid().is_some());
    }
}
