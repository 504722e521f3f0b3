//! Host collection from `/proc` and `statvfs`, under node-exporter's metric names.

use std::path::PathBuf;

use crate::family::{Labels, Sink};
use crate::files::{CollectStats, FileReader, clock_ticks};
use crate::names as n;
use crate::parse;

/// Filesystem types node-exporter ignores by default (virtual and container-internal filesystems),
/// plus network filesystems, whose `statvfs` can block on an unreachable server.
const IGNORED_FSTYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "erofs",
    "sysfs",
    "tracefs",
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "fuse.sshfs",
];

/// Mount point prefixes node-exporter ignores by default.
fn ignored_mountpoint(m: &str) -> bool {
    [
        "/dev",
        "/proc",
        "/sys",
        "/run/credentials/",
        "/var/lib/docker/",
        "/var/lib/containers/storage/",
    ]
    .iter()
    .any(|p| {
        m.strip_prefix(p)
            .is_some_and(|rest| p.ends_with('/') || rest.is_empty() || rest.starts_with('/'))
    })
}

/// Disks node-exporter ignores by default: `^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`
/// (RAM disks, loop devices, floppies and partitions).
pub(crate) fn ignored_disk(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    for p in ["ram", "zram", "loop", "fd"] {
        if name.strip_prefix(p).is_some_and(digits) {
            return true;
        }
    }
    for p in ["hd", "sd", "vd", "xvd"] {
        if let Some(rest) = name.strip_prefix(p) {
            let mut chars = rest.chars();
            if chars.next().is_some_and(|c| c.is_ascii_lowercase()) && digits(chars.as_str()) {
                return true;
            }
        }
    }
    // nvme\d+n\d+p\d+
    if let Some(rest) = name.strip_prefix("nvme")
        && let Some((ctrl, rest)) = rest.split_once('n')
        && let Some((ns, part)) = rest.split_once('p')
    {
        return digits(ctrl) && digits(ns) && digits(part);
    }
    false
}

/// Where the host collector reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// The procfs mount (`/proc`).
    pub proc_root: PathBuf,
    /// Whether to `statvfs` the mounted filesystems (off for fixture directories).
    pub filesystems: bool,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths {
            proc_root: PathBuf::from("/proc"),
            filesystems: true,
        }
    }
}

/// Collects host metrics, reusing its buffers between rounds.
#[derive(Debug)]
pub struct HostCollector {
    paths: HostPaths,
    files: FileReader,
    clk_tck: f64,
    labels: Labels,
    scratch: String,
}

impl Default for HostCollector {
    fn default() -> Self {
        HostCollector::new()
    }
}

const CPU_MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

impl HostCollector {
    /// A collector for this machine.
    pub fn new() -> HostCollector {
        HostCollector::with_paths(HostPaths::default())
    }

    /// A collector reading the given paths.
    pub fn with_paths(paths: HostPaths) -> HostCollector {
        HostCollector {
            paths,
            files: FileReader::new(),
            clk_tck: clock_ticks(),
            labels: Labels::default(),
            scratch: String::new(),
        }
    }

    /// Labels put on every host series (none by default, as node-exporter; the scraper adds `instance`).
    pub fn set_labels(&mut self, labels: Labels) {
        self.labels = labels;
    }

    /// The collector's counters so far.
    pub fn stats(&self) -> CollectStats {
        self.files.stats
    }

    /// Collects one round at time `now` (seconds since the epoch) into `sink`.
    pub fn collect<S: Sink + ?Sized>(&mut self, now: f64, sink: &mut S) {
        self.files.stats.targets += 1;
        let labels = self.labels.clone();
        let labels = &labels;
        let proc_root = self.paths.proc_root.clone();
        if self.files.read(&proc_root, "stat") {
            let (mut cores, mut btime) = (0u32, None);
            let tck = self.clk_tck;
            let scratch = &mut self.scratch;
            parse::proc_stat(
                self.files.data(),
                |cpu, times| {
                    let Some(cpu) = cpu else {
                        return;
                    };
                    cores += 1;
                    scratch.clear();
                    use std::fmt::Write;
                    let _ = write!(scratch, "{cpu}");
                    for (mode, t) in CPU_MODES.iter().zip(times) {
                        sink.emit(
                            &n::NODE_CPU,
                            labels,
                            &[("cpu", scratch.as_str()), ("mode", mode)],
                            *t as f64 / tck,
                        );
                    }
                },
                |b| btime = Some(b),
            );
            if let Some(b) = btime {
                sink.emit(&n::NODE_BOOT_TIME, labels, &[], b as f64);
            }
            if cores > 0 {
                sink.emit(&n::MACHINE_CPU_CORES, labels, &[], f64::from(cores));
            }
        }
        if self.files.read(&proc_root, "loadavg") {
            match parse::loadavg(self.files.data()) {
                Some([l1, l5, l15]) => {
                    sink.emit(&n::NODE_LOAD1, labels, &[], l1);
                    sink.emit(&n::NODE_LOAD5, labels, &[], l5);
                    sink.emit(&n::NODE_LOAD15, labels, &[], l15);
                }
                None => self.files.stats.parse_errors += 1,
            }
        }
        if self.files.read(&proc_root, "meminfo") {
            parse::meminfo(self.files.data(), |k, v| {
                let desc = match k {
                    b"MemTotal" => {
                        sink.emit(&n::MACHINE_MEMORY, labels, &[], v as f64);
                        &n::NODE_MEM_TOTAL
                    }
                    b"MemFree" => &n::NODE_MEM_FREE,
                    b"MemAvailable" => &n::NODE_MEM_AVAILABLE,
                    b"Buffers" => &n::NODE_MEM_BUFFERS,
                    b"Cached" => &n::NODE_MEM_CACHED,
                    b"SwapTotal" => &n::NODE_SWAP_TOTAL,
                    b"SwapFree" => &n::NODE_SWAP_FREE,
                    _ => return,
                };
                sink.emit(desc, labels, &[], v as f64);
            });
        }
        if self.files.read(&proc_root, "diskstats") {
            parse::diskstats(self.files.data(), |_, _, name, d| {
                if ignored_disk(name) {
                    return;
                }
                let extra = [("device", name)];
                sink.emit(&n::NODE_DISK_READS, labels, &extra, d.reads as f64);
                sink.emit(
                    &n::NODE_DISK_READ_BYTES,
                    labels,
                    &extra,
                    d.read_sectors as f64 * 512.0,
                );
                sink.emit(&n::NODE_DISK_WRITES, labels, &extra, d.writes as f64);
                sink.emit(
                    &n::NODE_DISK_WRITTEN_BYTES,
                    labels,
                    &extra,
                    d.write_sectors as f64 * 512.0,
                );
                sink.emit(
                    &n::NODE_DISK_IO_TIME,
                    labels,
                    &extra,
                    d.io_ms as f64 / 1000.0,
                );
            });
        }
        if self.files.read(&proc_root, "net/dev") {
            parse::net_dev(self.files.data(), |iface, v| {
                let extra = [("device", iface)];
                for (desc, i) in [
                    (&n::NODE_NET_RX_BYTES, 0),
                    (&n::NODE_NET_RX_PACKETS, 1),
                    (&n::NODE_NET_RX_ERRS, 2),
                    (&n::NODE_NET_RX_DROP, 3),
                    (&n::NODE_NET_TX_BYTES, 8),
                    (&n::NODE_NET_TX_PACKETS, 9),
                    (&n::NODE_NET_TX_ERRS, 10),
                    (&n::NODE_NET_TX_DROP, 11),
                ] {
                    sink.emit(desc, labels, &extra, v[i] as f64);
                }
            });
        }
        if self.paths.filesystems && self.files.read(&proc_root, "self/mounts") {
            let mut seen: Vec<String> = Vec::new();
            parse::mounts(self.files.data(), |device, mountpoint, fstype, _| {
                if IGNORED_FSTYPES.contains(&fstype)
                    || ignored_mountpoint(&mountpoint)
                    || seen.contains(&mountpoint)
                {
                    return;
                }
                let Ok(st) = nix::sys::statvfs::statvfs(mountpoint.as_str()) else {
                    return;
                };
                let frsize = st.fragment_size() as f64;
                let extra = [
                    ("device", device.as_str()),
                    ("fstype", fstype),
                    ("mountpoint", mountpoint.as_str()),
                ];
                sink.emit(
                    &n::NODE_FS_SIZE,
                    labels,
                    &extra,
                    st.blocks() as f64 * frsize,
                );
                sink.emit(
                    &n::NODE_FS_FREE,
                    labels,
                    &extra,
                    st.blocks_free() as f64 * frsize,
                );
                sink.emit(
                    &n::NODE_FS_AVAIL,
                    labels,
                    &extra,
                    st.blocks_available() as f64 * frsize,
                );
                seen.push(mountpoint);
            });
        }
        sink.emit(&n::NODE_TIME, labels, &[], now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_and_mount_filters_follow_node_exporter() {
        for d in [
            "sda1",
            "vdb2",
            "xvda1",
            "nvme0n1p1",
            "loop0",
            "ram12",
            "zram0",
            "fd0",
        ] {
            assert!(ignored_disk(d), "{d}");
        }
        for d in ["sda", "vda", "nvme0n1", "dm-0", "md0", "mmcblk0"] {
            assert!(!ignored_disk(d), "{d}");
        }
        assert!(ignored_mountpoint("/proc"));
        assert!(ignored_mountpoint("/sys/fs/cgroup"));
        assert!(ignored_mountpoint("/var/lib/docker/overlay2/x/merged"));
        assert!(!ignored_mountpoint("/"));
        assert!(!ignored_mountpoint("/devices"));
        assert!(!ignored_mountpoint("/var/lib/docker"));
    }
}
