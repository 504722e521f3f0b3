//! cgroup v1/v2 detection, per-task cgroup creation with cpu/memory limits, and removal.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::{LaunchError, Limits};

/// CFS period used for cpu quotas (100 ms), as Mesos does.
const CFS_PERIOD_US: u64 = 100_000;
/// Smallest quota the kernel accepts (1 ms).
const MIN_QUOTA_US: u64 = 1_000;

/// Which cgroup flavour the launcher uses to enforce limits, detected once at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupSupport {
    /// Legacy hierarchies: one mount point per controller (several may share a mount).
    V1 {
        /// Mount point of the hierarchy holding the `cpu` controller.
        cpu: PathBuf,
        /// Mount point of the hierarchy holding the `memory` controller.
        memory: PathBuf,
        /// Mount point of the `cpuacct` hierarchy (may equal `cpu`), for metrics.
        cpuacct: Option<PathBuf>,
        /// Mount point of the `pids` hierarchy, for metrics.
        pids: Option<PathBuf>,
    },
    /// Unified hierarchy with the `cpu` and `memory` controllers available.
    V2 {
        /// Mount point of the cgroup2 filesystem.
        root: PathBuf,
    },
    /// Limits cannot be enforced; tasks still run, without limits.
    Unavailable {
        /// Precise human readable reason (not root, read-only, controller missing, ...).
        reason: String,
    },
}

impl CgroupSupport {
    /// Distinct hierarchy mount points a task joins (empty when unavailable).
    pub fn hierarchies(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        match self {
            CgroupSupport::V1 {
                cpu,
                memory,
                cpuacct,
                pids,
            } => {
                for p in [Some(cpu), Some(memory), cpuacct.as_ref(), pids.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    if !out.contains(p) {
                        out.push(p.clone());
                    }
                }
            }
            CgroupSupport::V2 { root } => out.push(root.clone()),
            CgroupSupport::Unavailable { .. } => {}
        }
        out
    }

    /// True unless [`CgroupSupport::Unavailable`].
    pub fn is_available(&self) -> bool {
        !matches!(self, CgroupSupport::Unavailable { .. })
    }
}

/// The cgroup directories of one launched task.
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskCgroup {
    /// One directory per hierarchy.
    pub(crate) dirs: Vec<PathBuf>,
}

impl TaskCgroup {
    /// The `cgroup.procs` files the task writes its pid into before exec.
    pub(crate) fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }
}

/// Decodes the octal escapes (`\040` for space, ...) used in `/proc/mounts`.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match (b[i], oct) {
            (b'\\', Some(v)) => {
                out.push(v);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Validates the configured parent: a relative path without `.`/`..` components.
pub(crate) fn valid_parent(parent: &str) -> bool {
    !parent.is_empty()
        && !parent.starts_with('/')
        && parent
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Detects cgroup support by reading `/proc/mounts` and creating/removing a probe dir.
pub(crate) fn detect(parent: &str) -> CgroupSupport {
    let unavailable = |reason: String| CgroupSupport::Unavailable { reason };
    if !valid_parent(parent) {
        return unavailable(format!("invalid cgroup parent {parent:?}"));
    }
    let mounts = match fs::read_to_string("/proc/mounts") {
        Ok(m) => m,
        Err(e) => return unavailable(format!("cannot read /proc/mounts: {e}")),
    };
    let mut v1_found: Vec<(String, PathBuf)> = Vec::new();
    let mut v2_root: Option<PathBuf> = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        let (Some(path), Some(fstype), Some(opts)) = (f.get(1), f.get(2), f.get(3)) else {
            continue;
        };
        let path = PathBuf::from(unescape_mount(path));
        if *fstype == "cgroup2" && v2_root.is_none() {
            v2_root = Some(path);
        } else if *fstype == "cgroup" {
            for opt in opts.split(',') {
                if ["cpu", "cpuacct", "memory", "pids"].contains(&opt)
                    && !v1_found.iter().any(|(c, _)| c == opt)
                {
                    v1_found.push((opt.to_owned(), path.clone()));
                }
            }
        }
    }
    let get = |c: &str| {
        v1_found
            .iter()
            .find(|(n, _)| n == c)
            .map(|(_, p)| p.clone())
    };
    let v2_controllers = v2_root
        .as_ref()
        .and_then(|r| fs::read_to_string(r.join("cgroup.controllers")).ok())
        .unwrap_or_default();
    let v2_has = |c: &str| v2_controllers.split_ascii_whitespace().any(|x| x == c);
    let support = if let (Some(root), true) = (&v2_root, v2_has("cpu") && v2_has("memory")) {
        CgroupSupport::V2 { root: root.clone() }
    } else if let (Some(cpu), Some(memory)) = (get("cpu"), get("memory")) {
        CgroupSupport::V1 {
            cpu,
            memory,
            cpuacct: get("cpuacct"),
            pids: get("pids"),
        }
    } else {
        let v2 = match &v2_root {
            Some(r) => format!(
                "the cgroup2 mount at {} lacks the cpu and/or memory controller",
                r.display()
            ),
            None => "no cgroup2 filesystem is mounted".to_owned(),
        };
        return unavailable(format!(
            "controller missing: no cgroup v1 hierarchies with both cpu and memory controllers are mounted and {v2}"
        ));
    };
    match probe(&support, parent) {
        Ok(()) => support,
        Err(reason) => unavailable(reason),
    }
}

/// Explains an I/O error on `path`, naming the likely cause.
fn explain(action: &str, path: &Path, e: &io::Error) -> String {
    let cause = match e.raw_os_error() {
        Some(nix::libc::EROFS) => "the cgroup filesystem is read-only: ",
        Some(nix::libc::EACCES | nix::libc::EPERM) => match crate::proc_fs::effective_uid() {
            Some(0) => "permission denied although running as root: ",
            Some(uid) => {
                return format!(
                    "not running as root (euid {uid}): cannot {action} {}: {e}",
                    path.display()
                );
            }
            None => "",
        },
        _ => "",
    };
    format!("{cause}cannot {action} {}: {e}", path.display())
}

/// Creates and removes a probe directory in every hierarchy, checking the limit files exist.
fn probe(support: &CgroupSupport, parent: &str) -> Result<(), String> {
    let name = format!("slipway-probe-{}", std::process::id());
    let mut created = Vec::new();
    let mut parents = Vec::new();
    let mut result = (|| {
        for h in support.hierarchies() {
            // Parent levels created only for the probe are removed again (deepest first).
            let mut level = h.clone();
            for c in parent.split('/') {
                level = level.join(c);
                if !level.exists() {
                    parents.push(level.clone());
                }
            }
            let parent_dir = prepare_parent(support, &h, parent)?;
            let dir = parent_dir.join(&name);
            match fs::create_dir(&dir) {
                Ok(()) => created.push(dir.clone()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => created.push(dir.clone()),
                Err(e) => return Err(explain("create", &dir, &e)),
            }
        }
        let required: &[(&Path, &str)] = match support {
            CgroupSupport::V1 { cpu, memory, .. } => &[
                (cpu.as_path(), "cpu.cfs_quota_us"),
                (memory.as_path(), "memory.limit_in_bytes"),
            ],
            CgroupSupport::V2 { root } => &[(root.as_path(), "cpu.max"), (root, "memory.max")],
            CgroupSupport::Unavailable { .. } => &[],
        };
        for (h, file) in required {
            let f = h.join(parent).join(&name).join(file);
            if !f.exists() {
                return Err(format!("kernel lacks {file} (missing {})", f.display()));
            }
        }
        Ok(())
    })();
    for dir in created.iter().rev() {
        if let Err(e) = fs::remove_dir(dir)
            && result.is_ok()
        {
            result = Err(explain("remove probe directory", dir, &e));
        }
    }
    for dir in parents.iter().rev() {
        // Best effort: a concurrent launch may already use the parent.
        let _ = fs::remove_dir(dir);
    }
    result
}

/// Creates `<hierarchy>/<parent>` (for v2 also enabling cpu and memory for its children).
fn prepare_parent(support: &CgroupSupport, h: &Path, parent: &str) -> Result<PathBuf, String> {
    let dir = h.join(parent);
    fs::create_dir_all(&dir).map_err(|e| explain("create", &dir, &e))?;
    if let CgroupSupport::V2 { .. } = support {
        let mut level = h.to_path_buf();
        let mut levels = vec![level.clone()];
        for c in parent.split('/') {
            level = level.join(c);
            levels.push(level.clone());
        }
        for l in levels {
            let ctl = l.join("cgroup.subtree_control");
            let current = fs::read_to_string(&ctl).unwrap_or_default();
            let words: Vec<&str> = current.split_ascii_whitespace().collect();
            if words.contains(&"cpu") && words.contains(&"memory") {
                continue;
            }
            write_file(&ctl, "+cpu +memory").map_err(|e| explain("write", &ctl, &e))?;
        }
    }
    Ok(dir)
}

/// Writes `value` to an existing control file (no create, no truncate semantics needed).
fn write_file(path: &Path, value: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

/// The task directories in every hierarchy (whether they exist or not).
pub(crate) fn task_dirs(support: &CgroupSupport, parent: &str, task_id: &str) -> Vec<PathBuf> {
    support
        .hierarchies()
        .into_iter()
        .map(|h| h.join(parent).join(task_id))
        .collect()
}

/// Creates the task's cgroup directories and writes the limits; removes them again on error.
pub(crate) fn create_task(
    support: &CgroupSupport,
    parent: &str,
    task_id: &str,
    limits: &Limits,
) -> Result<TaskCgroup, LaunchError> {
    let cg = TaskCgroup {
        dirs: task_dirs(support, parent, task_id),
    };
    let result = (|| {
        for h in support.hierarchies() {
            prepare_parent(support, &h, parent).map_err(|reason| LaunchError::Cgroup {
                path: h.join(parent),
                source: io::Error::other(reason),
            })?;
        }
        for d in &cg.dirs {
            match fs::create_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(LaunchError::Cgroup {
                        path: d.clone(),
                        source,
                    });
                }
            }
        }
        write_limits(support, parent, task_id, limits)
    })();
    if result.is_err() {
        remove_dirs(&cg.dirs);
    }
    result.map(|()| cg)
}

/// Writes cpu and memory limits into the task's directories.
fn write_limits(
    support: &CgroupSupport,
    parent: &str,
    task_id: &str,
    limits: &Limits,
) -> Result<(), LaunchError> {
    let set = |path: PathBuf, value: String| {
        write_file(&path, &value).map_err(|source| LaunchError::Cgroup { path, source })
    };
    let quota = (limits.cpus.is_finite() && limits.cpus > 0.0)
        .then(|| ((limits.cpus * CFS_PERIOD_US as f64).round() as u64).max(MIN_QUOTA_US));
    let mem = (limits.mem_mib.is_finite() && limits.mem_mib > 0.0)
        .then(|| (limits.mem_mib * 1024.0 * 1024.0).round() as u64);
    match support {
        CgroupSupport::V1 { cpu, memory, .. } => {
            let cpu_dir = cpu.join(parent).join(task_id);
            if let Some(q) = quota {
                set(cpu_dir.join("cpu.cfs_period_us"), CFS_PERIOD_US.to_string())?;
                set(cpu_dir.join("cpu.cfs_quota_us"), q.to_string())?;
                let shares = ((limits.cpus * 1024.0).round() as u64).max(2);
                set(cpu_dir.join("cpu.shares"), shares.to_string())?;
            }
            if let Some(m) = mem {
                let dir = memory.join(parent).join(task_id);
                set(dir.join("memory.limit_in_bytes"), m.to_string())?;
            }
        }
        CgroupSupport::V2 { root } => {
            let dir = root.join(parent).join(task_id);
            if let Some(q) = quota {
                set(dir.join("cpu.max"), format!("{q} {CFS_PERIOD_US}"))?;
            }
            if let Some(m) = mem {
                set(dir.join("memory.max"), m.to_string())?;
            }
        }
        CgroupSupport::Unavailable { .. } => {}
    }
    Ok(())
}

/// Pids listed in `<dir>/cgroup.procs` (empty if unreadable).
pub(crate) fn procs_in(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Removes the given cgroup directories; returns those that could not be removed.
pub(crate) fn remove_dirs(dirs: &[PathBuf]) -> Vec<(PathBuf, io::Error)> {
    dirs.iter()
        .filter_map(|d| match fs::remove_dir(d) {
            Ok(()) => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => Some((d.clone(), e)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_validation_and_unescape() {
        assert!(valid_parent("slipway"));
        assert!(valid_parent("a/b"));
        assert!(!valid_parent("/abs"));
        assert!(!valid_parent("a/../b"));
        assert!(!valid_parent(""));
        assert_eq!(unescape_mount(r"/a\040b"), "/a b");
        assert_eq!(unescape_mount(r"/a\b"), r"/a\b");
    }
}
