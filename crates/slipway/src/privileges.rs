//! What tasks may reach: the data directory's permissions and whose privileges tasks run
//! with (`--task-user`, `--task-uid-range`).
//!
//! The rule: tasks and pipeline steps never run with the server's privileges and cannot
//! reach its state. The data directory is searchable but not listable by others (0711) so a
//! task can reach its own sandbox by path; the database, the secret key and every other
//! file the server keeps there are 0600, sandboxes are 0700 and belong to their task.

use anyhow::Context;
use engine::TaskIdentity;
use std::ops::RangeInclusive;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The account tasks run under when the server is root and nothing else is asked for.
pub(crate) const DEFAULT_TASK_USER: &str = "slipway-task";

/// Sets the data directory's permissions: the directory 0711, `sandboxes/` 0711 (each
/// sandbox is made 0700 for its task by the launcher), the database files and the key 0600.
/// Creates the database file 0600 before SQLite opens it, so its journal files (which
/// SQLite creates with the database's mode) are never readable by others either.
pub(crate) fn secure_data_dir(data_dir: &Path, key_file: &Path) -> anyhow::Result<()> {
    let set = |path: &Path, mode: u32| -> anyhow::Result<()> {
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r.with_context(|| format!("cannot set the mode of {}", path.display())),
        }
    };
    set(data_dir, 0o711)?;
    let sandboxes = data_dir.join("sandboxes");
    std::fs::create_dir_all(&sandboxes)
        .with_context(|| format!("cannot create {}", sandboxes.display()))?;
    set(&sandboxes, 0o711)?;
    // Pipeline workspaces: process apps may run what a build step made there.
    let runs = data_dir.join("runs");
    std::fs::create_dir_all(&runs).with_context(|| format!("cannot create {}", runs.display()))?;
    set(&runs, 0o711)?;
    let db = data_dir.join("slipway.db");
    if !db.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&db)
            .with_context(|| format!("cannot create {}", db.display()))?;
    }
    for name in [
        "slipway.db",
        "slipway.db-wal",
        "slipway.db-shm",
        "slipway.lock",
    ] {
        set(&data_dir.join(name), 0o600)?;
    }
    set(key_file, 0o600)?;
    // Everything else the server keeps here (pipeline workspaces, logs) is private too.
    for entry in std::fs::read_dir(data_dir)
        .with_context(|| format!("cannot list {}", data_dir.display()))?
    {
        let entry = entry?;
        let path = entry.path();
        if path == sandboxes || path == runs {
            continue;
        }
        let meta = entry.metadata()?;
        let mode = meta.permissions().mode() & 0o777;
        let private = if meta.is_dir() { 0o700 } else { 0o600 };
        if mode & 0o077 != 0 {
            set(&path, mode & private)?;
        }
    }
    Ok(())
}

/// Raises the soft limit of open files to the hard limit: a server that answers many
/// clients, proxies their connections and reads `/proc` must not run out at the common
/// soft limit of 1,024.
pub(crate) fn raise_open_files() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!(from = soft, to = hard, "raised the open-file limit"),
            Err(e) => tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit"),
        },
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open-file limit"),
    }
}

/// Whether the server runs as root.
pub(crate) fn is_root() -> bool {
    euid() == Some(0)
}

/// Effective uid of the server.
fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Creates the system account `name` (no home, no login shell) with a group of its own.
fn create_account(name: &str) -> Result<(), String> {
    let status = Command::new("useradd")
        .args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            "Slipway tasks",
            name,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run useradd: {e}"))?;
    // Another server may have created it meanwhile (exit 9: already exists).
    if status.status.success() || status.status.code() == Some(9) {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&status.stderr).trim().to_owned())
    }
}

/// Whose privileges process tasks run with, from `--task-user` and `--task-uid-range`.
///
/// A server that is not root cannot switch: its tasks run as itself (and can reach what it
/// can; said in a warning). As root: the task user is created when missing (falling back
/// to `nobody` when that fails), and each app gets a uid of its own from the range, with
/// the task user's group, unless the range is `off` (then every task runs as the task user).
pub(crate) fn task_identity(
    task_user: &str,
    uids: Option<RangeInclusive<u32>>,
) -> anyhow::Result<TaskIdentity> {
    if euid() != Some(0) {
        tracing::warn!(
            "slipway is not running as root: tasks and steps run as its own user and can \
             reach its data directory; run it as root to isolate them"
        );
        return Ok(TaskIdentity::Server);
    }
    let (user, (uid, gid)) = match engine::account_ids(task_user) {
        Some(ids) => (task_user.to_owned(), ids),
        None if task_user == DEFAULT_TASK_USER => match create_account(task_user) {
            Ok(()) => (
                task_user.to_owned(),
                engine::account_ids(task_user)
                    .context("the task user vanished after it was created")?,
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot create the user {task_user}; tasks run as nobody");
                let ids = engine::account_ids("nobody")
                    .context("neither slipway-task nor nobody exists")?;
                ("nobody".to_owned(), ids)
            }
        },
        None => anyhow::bail!("--task-user {task_user}: no such user"),
    };
    if uid == 0 {
        anyhow::bail!("--task-user {task_user} is root: tasks must not run with root's privileges");
    }
    Ok(match uids {
        Some(uids) => {
            tracing::info!(
                user,
                gid,
                first = uids.start(),
                last = uids.end(),
                "each app's tasks run with a uid of its own"
            );
            TaskIdentity::PerApp { uids, gid }
        }
        None => {
            tracing::info!(user, uid, "tasks run as the task user");
            TaskIdentity::User(user)
        }
    })
}

/// `--task-uid-range`: a range of uids, or none (`off`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UidRange(pub(crate) Option<RangeInclusive<u32>>);

/// Parses `--task-uid-range`: `FIRST-LAST` (uids above the ones accounts use) or `off`.
pub(crate) fn parse_uid_range(s: &str) -> Result<UidRange, String> {
    parse_range(s).map(UidRange)
}

fn parse_range(s: &str) -> Result<Option<RangeInclusive<u32>>, String> {
    if s == "off" {
        return Ok(None);
    }
    let (a, b) = s
        .split_once('-')
        .ok_or("expected FIRST-LAST (e.g. 200000-299999) or off")?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| format!("'{v}' is not a uid"))
    };
    let (a, b) = (parse(a)?, parse(b)?);
    if a < 1000 || b <= a || b >= u32::MAX - 1 {
        return Err(format!(
            "'{s}' is not a uid range above the system's accounts (FIRST >= 1000, FIRST < LAST)"
        ));
    }
    Ok(Some(a..=b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_ranges() {
        assert_eq!(parse_uid_range("off"), Ok(UidRange(None)));
        assert_eq!(
            parse_uid_range("200000-299999"),
            Ok(UidRange(Some(200_000..=299_999)))
        );
        assert!(parse_uid_range("0-10").is_err());
        assert!(parse_uid_range("5000-4000").is_err());
        assert!(parse_uid_range("x").is_err());
    }
}
