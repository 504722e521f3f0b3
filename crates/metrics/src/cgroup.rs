//! Where a task's cgroup lives: hierarchy detection from `/proc/self/mounts` and Docker container lookup.

use std::path::{Path, PathBuf};

use crate::MetricsError;
use crate::parse;

/// A task's directories in the cgroup v1 hierarchies (a controller that is not mounted is `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V1Dirs {
    /// `cpu` controller directory (`cpu.stat`, `cpu.cfs_quota_us`, `cpu.shares`).
    pub cpu: Option<PathBuf>,
    /// `cpuacct` directory (`cpuacct.usage`, `cpuacct.stat`); often the same as `cpu`.
    pub cpuacct: Option<PathBuf>,
    /// `memory` directory.
    pub memory: Option<PathBuf>,
    /// `pids` directory.
    pub pids: Option<PathBuf>,
    /// `blkio` directory.
    pub blkio: Option<PathBuf>,
}

/// A task's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupPaths {
    /// Per-controller directories (cgroup v1).
    V1(V1Dirs),
    /// The unified directory (cgroup v2).
    V2(PathBuf),
}

/// The mounted cgroup hierarchies of this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupMounts {
    /// Legacy hierarchies: the mount point of each controller used for metrics.
    V1 {
        /// Mount of the `cpu` controller.
        cpu: Option<PathBuf>,
        /// Mount of the `cpuacct` controller.
        cpuacct: Option<PathBuf>,
        /// Mount of the `memory` controller.
        memory: Option<PathBuf>,
        /// Mount of the `pids` controller.
        pids: Option<PathBuf>,
        /// Mount of the `blkio` controller.
        blkio: Option<PathBuf>,
    },
    /// The unified hierarchy.
    V2 {
        /// Mount point of the cgroup2 filesystem.
        root: PathBuf,
    },
}

/// True if `id` is a safe single path component made of `[A-Za-z0-9_-]`.
fn safe_component(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl CgroupMounts {
    /// Reads `/proc/self/mounts`; see [`CgroupMounts::from_mounts`].
    pub fn detect() -> Result<CgroupMounts, MetricsError> {
        let path = Path::new("/proc/self/mounts");
        let text = std::fs::read(path).map_err(|source| MetricsError::Read {
            path: path.to_owned(),
            source,
        })?;
        CgroupMounts::from_mounts(&text, |root| {
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default()
        })
    }

    /// Picks the hierarchies from a mount table: cgroup v2 when its root offers the `cpu` and `memory`
    /// controllers (`controllers(root)` returns the root's `cgroup.controllers`), else the v1 controllers.
    pub fn from_mounts(
        mounts: &[u8],
        controllers: impl Fn(&Path) -> String,
    ) -> Result<CgroupMounts, MetricsError> {
        let mut v2: Option<PathBuf> = None;
        let (mut cpu, mut cpuacct, mut memory, mut pids, mut blkio) =
            (None, None, None, None, None);
        parse::mounts(mounts, |_, mountpoint, fstype, options| {
            if fstype == "cgroup2" && v2.is_none() {
                v2 = Some(PathBuf::from(&mountpoint));
            } else if fstype == "cgroup" {
                for opt in options.split(',') {
                    let slot = match opt {
                        "cpu" => &mut cpu,
                        "cpuacct" => &mut cpuacct,
                        "memory" => &mut memory,
                        "pids" => &mut pids,
                        "blkio" => &mut blkio,
                        _ => continue,
                    };
                    if slot.is_none() {
                        *slot = Some(PathBuf::from(&mountpoint));
                    }
                }
            }
        });
        if let Some(root) = &v2 {
            let c = controllers(root);
            let has = |name: &str| c.split_ascii_whitespace().any(|w| w == name);
            if has("cpu") && has("memory") {
                return Ok(CgroupMounts::V2 { root: root.clone() });
            }
        }
        if cpu.is_none() && cpuacct.is_none() && memory.is_none() {
            // A v2-only machine whose root lacks a controller still has cpu.stat and memory files to read.
            return match v2 {
                Some(root) => Ok(CgroupMounts::V2 { root }),
                None => Err(MetricsError::NoCgroups(
                    "neither a cgroup2 mount nor v1 cpu, cpuacct or memory hierarchies".to_owned(),
                )),
            };
        }
        Ok(CgroupMounts::V1 {
            cpu,
            cpuacct,
            memory,
            pids,
            blkio,
        })
    }

    /// The directories of the cgroup at `relative` (such as `slipway/<task-id>` or `slipway/<agent>/<task-id>`)
    /// in every hierarchy; whether they exist is not checked.
    pub fn paths(&self, relative: &str) -> CgroupPaths {
        let rel = relative.trim_start_matches('/');
        match self {
            CgroupMounts::V1 {
                cpu,
                cpuacct,
                memory,
                pids,
                blkio,
            } => {
                let j = |m: &Option<PathBuf>| m.as_ref().map(|m| m.join(rel));
                CgroupPaths::V1(V1Dirs {
                    cpu: j(cpu),
                    cpuacct: j(cpuacct),
                    memory: j(memory),
                    pids: j(pids),
                    blkio: j(blkio),
                })
            }
            CgroupMounts::V2 { root } => CgroupPaths::V2(root.join(rel)),
        }
    }

    /// The directory used to check that a cgroup exists (v1: memory, else cpuacct, else cpu).
    fn probe_root(&self) -> Option<&Path> {
        match self {
            CgroupMounts::V1 {
                cpu,
                cpuacct,
                memory,
                ..
            } => memory.as_deref().or(cpuacct.as_deref()).or(cpu.as_deref()),
            CgroupMounts::V2 { root } => Some(root),
        }
    }
}

/// Finds a Docker container's cgroup from its id: `docker/<id>` (cgroupfs driver) or
/// `system.slice/docker-<id>.scope` (systemd driver), whichever exists; else, for a
/// daemon with another `cgroup-parent`, the first directory named `<id>` or
/// `docker-<id>.scope` within 5 levels (at most 20,000 directories looked at; the
/// collector looks a new container up once).
/// Returns the cgroup path as cAdvisor's `id` label (`/docker/<id>`) and its directories.
pub fn docker_cgroup(mounts: &CgroupMounts, container_id: &str) -> Option<(String, CgroupPaths)> {
    if !safe_component(container_id) {
        return None;
    }
    let root = mounts.probe_root()?;
    [
        format!("docker/{container_id}"),
        format!("system.slice/docker-{container_id}.scope"),
    ]
    .into_iter()
    .find(|rel| root.join(rel).is_dir())
    .or_else(|| search(root, container_id))
    .map(|rel| (format!("/{rel}"), mounts.paths(&rel)))
}

/// How deep [`docker_cgroup`] searches below the hierarchy's root.
const SEARCH_DEPTH: usize = 5;
/// How many directories [`docker_cgroup`]'s search looks at, at most.
const SEARCH_DIRS: usize = 20_000;

/// Breadth-first search for the container's directory; its path relative to `root`.
fn search(root: &Path, container_id: &str) -> Option<String> {
    let scope = format!("docker-{container_id}.scope");
    let mut level = vec![String::new()];
    let mut seen = 0;
    for _ in 0..SEARCH_DEPTH {
        let mut next = Vec::new();
        for rel in &level {
            let Ok(entries) = std::fs::read_dir(root.join(rel)) else {
                continue;
            };
            for e in entries.flatten() {
                if !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                seen += 1;
                if seen > SEARCH_DIRS {
                    return None;
                }
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                let path = if rel.is_empty() {
                    name.to_string()
                } else {
                    format!("{rel}/{name}")
                };
                if name == container_id || name == scope {
                    return Some(path);
                }
                next.push(path);
            }
        }
        level = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon with `--cgroup-parent`: the container's directory is found by its id
    /// wherever it is below the root, within the search's depth.
    #[test]
    fn containers_under_another_cgroup_parent_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let mounts = CgroupMounts::V2 {
            root: dir.path().to_path_buf(),
        };
        std::fs::create_dir_all(dir.path().join("system.slice/other.scope")).unwrap();
        assert!(docker_cgroup(&mounts, id).is_none());
        std::fs::create_dir_all(dir.path().join(format!("apps.slice/ci/{id}"))).unwrap();
        let (label, _) = docker_cgroup(&mounts, id).unwrap();
        assert_eq!(label, format!("/apps.slice/ci/{id}"));
        // The usual places win over the search.
        std::fs::create_dir_all(dir.path().join(format!("docker/{id}"))).unwrap();
        assert_eq!(
            docker_cgroup(&mounts, id).unwrap().0,
            format!("/docker/{id}")
        );
        // Too deep is not found.
        let other = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
        std::fs::create_dir_all(dir.path().join(format!("a/b/c/d/e/docker-{other}.scope")))
            .unwrap();
        assert!(docker_cgroup(&mounts, other).is_none());
        std::fs::create_dir_all(dir.path().join(format!("a/b/c/docker-{other}.scope"))).unwrap();
        assert_eq!(
            docker_cgroup(&mounts, other).unwrap().0,
            format!("/a/b/c/docker-{other}.scope")
        );
    }

    const V1_MOUNTS: &[u8] = b"cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n\
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0\n\
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n\
cgroup /sys/fs/cgroup/blkio cgroup rw,relatime,blkio 0 0\n\
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0\n\
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";

    #[test]
    fn v1_detected_when_v2_lacks_controllers() {
        let m = CgroupMounts::from_mounts(V1_MOUNTS, |_| String::new()).expect("v1");
        let CgroupPaths::V1(d) = m.paths("slipway/t1") else {
            panic!("expected v1");
        };
        assert_eq!(d.cpu, Some(PathBuf::from("/sys/fs/cgroup/cpu/slipway/t1")));
        assert_eq!(
            d.cpuacct,
            Some(PathBuf::from("/sys/fs/cgroup/cpuacct/slipway/t1"))
        );
        assert_eq!(
            d.blkio,
            Some(PathBuf::from("/sys/fs/cgroup/blkio/slipway/t1"))
        );
    }

    #[test]
    fn v2_detected_with_controllers_and_combined_v1_mounts() {
        let m = CgroupMounts::from_mounts(b"cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n", |_| {
            "cpuset cpu io memory pids\n".to_owned()
        })
        .expect("v2");
        assert_eq!(
            m.paths("/slipway/a/t"),
            CgroupPaths::V2(PathBuf::from("/sys/fs/cgroup/slipway/a/t"))
        );
        let m = CgroupMounts::from_mounts(
            b"cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n",
            |_| String::new(),
        )
        .expect("v1");
        let CgroupPaths::V1(d) = m.paths("x") else {
            panic!("expected v1");
        };
        assert_eq!(d.cpu, d.cpuacct);
        assert!(CgroupMounts::from_mounts(b"proc /proc proc rw 0 0\n", |_| String::new()).is_err());
        let partial = CgroupMounts::from_mounts(b"cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n", |_| {
            "memory pids".to_owned()
        });
        assert!(matches!(partial, Ok(CgroupMounts::V2 { .. })));
    }

    #[test]
    fn docker_lookup_checks_both_drivers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_owned();
        let m = CgroupMounts::V2 { root: root.clone() };
        assert_eq!(docker_cgroup(&m, "abc"), None);
        std::fs::create_dir_all(root.join("system.slice/docker-abc.scope")).expect("mkdir");
        let (id, paths) = docker_cgroup(&m, "abc").expect("found");
        assert_eq!(id, "/system.slice/docker-abc.scope");
        assert_eq!(
            paths,
            CgroupPaths::V2(root.join("system.slice/docker-abc.scope"))
        );
        std::fs::create_dir_all(root.join("docker/abc")).expect("mkdir");
        assert_eq!(
            docker_cgroup(&m, "abc").map(|x| x.0).as_deref(),
            Some("/docker/abc")
        );
        assert_eq!(docker_cgroup(&m, "../abc"), None);
    }
}
