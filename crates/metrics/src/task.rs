//! Per-task collection from cgroup v1/v2 files and `/proc/PID/net/dev`, under cAdvisor's metric names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::cgroup::{CgroupPaths, V1Dirs};
use crate::desc::Desc;
use crate::family::{Labels, Sink};
use crate::files::{CollectStats, FileCache, FileReader, clock_ticks, default_budget};
use crate::names as n;
use crate::parse;

/// v1 reports "no limit" as a page-rounded `i64::MAX`; anything this large is unlimited.
const V1_UNLIMITED: u64 = 1 << 62;

/// Cache slot of `/proc/PID/net/dev`. Slots 0..17 are the cgroup files, numbered where they are read:
/// v1 `cpuacct.usage` 0, `cpuacct.stat` 1, `cpu.cfs_quota_us` 2, `cpu.cfs_period_us` 3, `cpu.shares` 4,
/// `cpu.stat` 5, `memory.usage_in_bytes` 6, `memory.stat` 7, `memory.max_usage_in_bytes` 8, `memory.failcnt` 9,
/// `memory.limit_in_bytes` 10, `memory.oom_control` 11, `pids.current` 12, `tasks` 13, `cgroup.procs` 14,
/// blkio bytes 15 and ops 16; v2 `cpu.stat` 0, `cpu.max` 1, `cpu.weight` 2, `memory.current` 3, `memory.stat` 4,
/// `memory.swap.current` 5, `memory.peak` 6, `memory.max` 7, `memory.events` 8, `pids.current` 9,
/// `cgroup.procs` 10, `io.stat` 11.
const NET_DEV_SLOT: usize = 17;

/// What the collector remembers about a target between rounds.
#[derive(Debug, Default)]
struct TargetState {
    /// Cgroup and net/dev files kept open, files known missing.
    files: FileCache,
    /// The pid's network namespace (`net:[inode]`) when last checked, at every slow read; network is not
    /// collected when it is the collector's own (a process app in the host's namespace).
    netns: Option<Vec<u8>>,
    /// The start time read from `/proc/PID/stat`, once.
    start_time: Option<Option<f64>>,
    /// When the slowly changing files were last read (`now` of that round).
    slow_at: Option<f64>,
    /// Their samples, repeated until the next slow read.
    slow: Vec<(&'static Desc, f64)>,
    /// Whether a CPU quota was set at the last slow read (throttling is only read and emitted then).
    has_quota: bool,
}

/// One task to collect, with the files the collector keeps open for it (dropped with the target:
/// drop the target when the task is gone). The collector remembers what it found for `cgroups` and `pid`
/// (open files, network namespace, start time): for another cgroup or pid, make a new target.
#[derive(Debug)]
pub struct TaskTarget {
    /// Labels on every series of the task: Slipway's `app`, `task`, `env`, `version` and cAdvisor's `id`, `name`, `image`.
    pub labels: Labels,
    /// The task's cgroup directories.
    pub cgroups: CgroupPaths,
    /// A process of the task, for `/proc/PID/net/dev` of its network namespace and its start time.
    pub pid: Option<i32>,
    /// Start time in seconds since the epoch when known (recorded at launch); else read from `/proc/PID/stat`.
    pub start_time: Option<f64>,
    state: TargetState,
}

impl Clone for TaskTarget {
    /// A copy that starts without kept-open files.
    fn clone(&self) -> TaskTarget {
        TaskTarget {
            labels: self.labels.clone(),
            cgroups: self.cgroups.clone(),
            pid: self.pid,
            start_time: self.start_time,
            state: TargetState::default(),
        }
    }
}

impl TaskTarget {
    /// A target from label pairs, cgroup directories and an optional pid.
    ///
    /// Label names that are not valid Prometheus names (`com.docker.compose.project`) are sanitized as
    /// cAdvisor does ([`crate::sanitize_label_name`]). The names `cpu`, `interface` and `device` are taken by
    /// the series' own labels and must not be used.
    pub fn new(
        mut labels: Vec<(String, String)>,
        cgroups: CgroupPaths,
        pid: Option<i32>,
    ) -> TaskTarget {
        for (name, _) in &mut labels {
            if !crate::expo::valid_label_name(name) {
                *name = crate::expo::sanitize_label_name(name);
            }
        }
        TaskTarget {
            labels: Labels::new(labels),
            cgroups,
            pid,
            start_time: None,
            state: TargetState::default(),
        }
    }

    /// Number of files the collector keeps open for this target.
    pub fn open_files(&self) -> usize {
        self.state.files.open_files()
    }
}

/// Collects tasks' cgroup and network metrics, reusing its buffers between samples.
///
/// Series are only emitted for files that could be read: on a missing, unreadable or garbled file the
/// affected series are absent this round and [`CollectStats`] counts why.
#[derive(Debug)]
pub struct TaskCollector {
    proc_root: PathBuf,
    files: FileReader,
    clk_tck: f64,
    btime: Option<u64>,
    own_netns: Option<Vec<u8>>,
    devices: HashMap<(u32, u32), String>,
    io: Vec<((u32, u32), [u64; 4])>,
    label: String,
    pid_dir: PathBuf,
    slow_period: f64,
}

impl Default for TaskCollector {
    fn default() -> Self {
        TaskCollector::new()
    }
}

/// Emits one sample without extra labels.
fn emit<S: Sink + ?Sized>(sink: &mut S, desc: &'static Desc, labels: &Labels, v: f64) {
    sink.emit(desc, labels, &[], v);
}

impl TaskCollector {
    /// A collector reading `/proc`.
    pub fn new() -> TaskCollector {
        TaskCollector::with_proc_root("/proc")
    }

    /// A collector reading another procfs mount (tests use fixture directories).
    pub fn with_proc_root(proc_root: impl Into<PathBuf>) -> TaskCollector {
        let proc_root = proc_root.into();
        let clk_tck = clock_ticks();
        let own_netns = std::fs::read_link(proc_root.join("self/ns/net"))
            .ok()
            .map(|p| p.into_os_string().into_encoded_bytes());
        let mut files = FileReader::new();
        files.budget = default_budget();
        let mut c = TaskCollector {
            proc_root,
            files,
            clk_tck,
            btime: None,
            own_netns,
            devices: HashMap::new(),
            io: Vec::new(),
            label: String::new(),
            pid_dir: PathBuf::new(),
            slow_period: 10.0,
        };
        if c.files.read(&c.proc_root, "stat") {
            let mut btime = None;
            parse::proc_stat(c.files.data(), |_, _| {}, |b| btime = Some(b));
            c.btime = btime;
        }
        c
    }

    /// The collector's counters so far.
    pub fn stats(&self) -> CollectStats {
        self.files.stats
    }

    /// Files kept open for all targets of all collectors of the process.
    pub fn open_files(&self) -> usize {
        crate::files::open_files()
    }

    /// How many files all targets together may keep open (default: half the soft `RLIMIT_NOFILE`, see
    /// [`crate::raise_fd_limit`]); beyond it files are opened and closed on every read, which costs about
    /// twice as much CPU. Zero keeps nothing open.
    pub fn set_fd_budget(&mut self, files: usize) {
        self.files.budget = files;
    }

    /// How often the slowly changing files are read again, in seconds of the `now` passed to
    /// [`TaskCollector::collect`] (default 10): the limits (`container_spec_*`), peak usage, failcnt, OOM
    /// count, and process and thread counts. In between their last values are repeated, which at a 1 s
    /// interval saves about half the reads. Zero reads them every round.
    pub fn set_slow_period(&mut self, seconds: f64) {
        self.slow_period = seconds;
    }

    /// Collects one task at time `now` (seconds since the epoch) into `sink`.
    pub fn collect<S: Sink + ?Sized>(&mut self, target: &mut TaskTarget, now: f64, sink: &mut S) {
        self.files.stats.targets += 1;
        let state = &mut target.state;
        std::mem::swap(&mut self.files.cache, &mut state.files);
        self.files.cache.round += 1;
        let labels = &target.labels;
        let slow_due = state
            .slow_at
            .is_none_or(|t| now - t >= self.slow_period || now < t);
        if slow_due {
            state.slow.clear();
            state.has_quota = match &target.cgroups {
                CgroupPaths::V1(d) => self.slow_v1(d, &mut state.slow),
                CgroupPaths::V2(d) => self.slow_v2(d, &mut state.slow),
            };
            state.slow_at = Some(now);
        }
        let read_before = self.files.stats.files_read;
        match &target.cgroups {
            CgroupPaths::V1(d) => self.fast_v1(d, state.has_quota, labels, sink),
            CgroupPaths::V2(d) => self.fast_v2(d, state.has_quota, labels, sink),
        }
        if self.files.stats.files_read > read_before {
            for &(desc, v) in &state.slow {
                emit(sink, desc, labels, v);
            }
        } else {
            // The cgroup is gone (or unreadable): repeat nothing, and read everything once it is back.
            state.slow.clear();
            state.slow_at = None;
        }
        if let Some(pid) = target.pid.filter(|&p| p > 0) {
            self.collect_network(pid, &mut state.netns, slow_due, labels, sink);
        }
        let start = match (target.start_time, target.pid) {
            (Some(t), _) => Some(t),
            (None, Some(pid)) => *state.start_time.get_or_insert_with(|| self.start_time(pid)),
            (None, None) => None,
        };
        if let Some(start) = start {
            emit(sink, &n::START_TIME, labels, start);
        }
        emit(sink, &n::LAST_SEEN, labels, now);
        std::mem::swap(&mut self.files.cache, &mut state.files);
    }

    /// The slowly changing v1 files into `out`; true if a CFS quota is set.
    fn slow_v1(&mut self, d: &V1Dirs, out: &mut Vec<(&'static Desc, f64)>) -> bool {
        let mut has_quota = false;
        if let Some(dir) = &d.cpu {
            if let Some(q) = self.files.read_i64(Some(2), dir, "cpu.cfs_quota_us")
                && q > 0
            {
                out.push((&n::SPEC_CPU_QUOTA, q as f64));
                has_quota = true;
            }
            if let Some(period) = self.files.read_u64(Some(3), dir, "cpu.cfs_period_us") {
                out.push((&n::SPEC_CPU_PERIOD, period as f64));
            }
            if let Some(shares) = self.files.read_u64(Some(4), dir, "cpu.shares") {
                out.push((&n::SPEC_CPU_SHARES, shares as f64));
            }
        }
        if let Some(dir) = &d.memory {
            if let Some(v) = self
                .files
                .read_u64(Some(8), dir, "memory.max_usage_in_bytes")
            {
                out.push((&n::MEMORY_MAX_USAGE, v as f64));
            }
            if let Some(v) = self.files.read_u64(Some(9), dir, "memory.failcnt") {
                out.push((&n::MEMORY_FAILCNT, v as f64));
            }
            if let Some(v) = self.files.read_u64(Some(10), dir, "memory.limit_in_bytes") {
                let limit = if v >= V1_UNLIMITED { 0 } else { v };
                out.push((&n::SPEC_MEMORY_LIMIT, limit as f64));
            }
            if self.files.read_slot(Some(11), dir, "memory.oom_control") {
                let mut kills = None;
                parse::key_values(self.files.data(), |k, v| {
                    if k == b"oom_kill" {
                        kills = Some(v);
                    }
                });
                if let Some(k) = kills {
                    out.push((&n::OOM_EVENTS, k as f64));
                }
            }
        }
        let threads = match (&d.pids, d.memory.as_ref().or(d.cpuacct.as_ref())) {
            (Some(dir), _) => self.files.read_u64(Some(12), dir, "pids.current"),
            (None, Some(dir)) => self
                .files
                .read_slot(Some(13), dir, "tasks")
                .then(|| parse::count_lines(self.files.data())),
            (None, None) => None,
        };
        if let Some(t) = threads {
            out.push((&n::THREADS, t as f64));
        }
        if let Some(dir) = d.pids.as_ref().or(d.memory.as_ref()).or(d.cpuacct.as_ref())
            && self.files.read_slot(Some(14), dir, "cgroup.procs")
        {
            out.push((&n::PROCESSES, parse::count_lines(self.files.data()) as f64));
        }
        has_quota
    }

    /// The v1 files read every round.
    fn fast_v1<S: Sink + ?Sized>(
        &mut self,
        d: &V1Dirs,
        has_quota: bool,
        labels: &Labels,
        sink: &mut S,
    ) {
        if let Some(dir) = &d.cpuacct {
            if let Some(ns) = self.files.read_u64(Some(0), dir, "cpuacct.usage") {
                sink.emit(&n::CPU_USAGE, labels, &[("cpu", "total")], ns as f64 / 1e9);
            }
            if self.files.read_slot(Some(1), dir, "cpuacct.stat") {
                let (mut user, mut system) = (None, None);
                parse::key_values(self.files.data(), |k, v| match k {
                    b"user" => user = Some(v),
                    b"system" => system = Some(v),
                    _ => {}
                });
                if let Some(u) = user {
                    emit(sink, &n::CPU_USER, labels, u as f64 / self.clk_tck);
                }
                if let Some(s) = system {
                    emit(sink, &n::CPU_SYSTEM, labels, s as f64 / self.clk_tck);
                }
            }
        }
        if has_quota
            && let Some(dir) = &d.cpu
            && self.files.read_slot(Some(5), dir, "cpu.stat")
        {
            let mut t = [None; 3];
            parse::key_values(self.files.data(), |k, v| match k {
                b"nr_periods" => t[0] = Some(v),
                b"nr_throttled" => t[1] = Some(v),
                b"throttled_time" => t[2] = Some(v),
                _ => {}
            });
            self.emit_throttling(t, 1e9, labels, sink);
        }
        if let Some(dir) = &d.memory {
            let usage = self.files.read_u64(Some(6), dir, "memory.usage_in_bytes");
            let mut m = [None; 5];
            if self.files.read_slot(Some(7), dir, "memory.stat") {
                parse::key_values(self.files.data(), |k, v| match k {
                    b"total_inactive_file" => m[0] = Some(v),
                    b"total_rss" => m[1] = Some(v),
                    b"total_cache" => m[2] = Some(v),
                    b"total_swap" => m[3] = Some(v),
                    b"total_mapped_file" => m[4] = Some(v),
                    _ => {}
                });
            }
            self.emit_memory(usage, m, labels, sink);
        }
        if let Some(dir) = &d.blkio {
            self.io.clear();
            if self
                .files
                .read_slot(Some(15), dir, "blkio.throttle.io_service_bytes_recursive")
            {
                let io = &mut self.io;
                parse::blkio_v1(self.files.data(), |dev, r, w| io.push((dev, [r, w, 0, 0])));
            }
            // Both files list the same devices; a task without block I/O needs only the first read.
            if !self.io.is_empty()
                && self
                    .files
                    .read_slot(Some(16), dir, "blkio.throttle.io_serviced_recursive")
            {
                let io = &mut self.io;
                parse::blkio_v1(self.files.data(), |dev, r, w| {
                    match io.iter_mut().find(|(d, _)| *d == dev) {
                        Some((_, v)) => {
                            v[2] = r;
                            v[3] = w;
                        }
                        None => io.push((dev, [0, 0, r, w])),
                    }
                });
            }
            self.emit_io(labels, sink);
        }
    }

    /// The slowly changing v2 files into `out`; true if a CPU quota is set.
    fn slow_v2(&mut self, dir: &Path, out: &mut Vec<(&'static Desc, f64)>) -> bool {
        let mut has_quota = false;
        if self.files.read_slot(Some(1), dir, "cpu.max") {
            match parse::cpu_max(self.files.data()) {
                Some((quota, period)) => {
                    out.push((&n::SPEC_CPU_PERIOD, period as f64));
                    if let Some(q) = quota {
                        out.push((&n::SPEC_CPU_QUOTA, q as f64));
                        has_quota = true;
                    }
                }
                None => self.files.stats.parse_errors += 1,
            }
        }
        if let Some(w) = self.files.read_u64(Some(2), dir, "cpu.weight") {
            // The inverse of runc's shares-to-weight conversion, as cAdvisor does.
            let shares = 2 + (w.clamp(1, 10_000) - 1) * 262_142 / 9_999;
            out.push((&n::SPEC_CPU_SHARES, shares as f64));
        }
        if let Some(v) = self.files.read_u64(Some(6), dir, "memory.peak") {
            out.push((&n::MEMORY_MAX_USAGE, v as f64));
        }
        if self.files.read_slot(Some(7), dir, "memory.max") {
            let limit = match parse::trim(self.files.data()) {
                b"max" => Some(0),
                other => parse::parse_u64(other),
            };
            match limit {
                Some(l) => out.push((&n::SPEC_MEMORY_LIMIT, l as f64)),
                None => self.files.stats.parse_errors += 1,
            }
        }
        if self.files.read_slot(Some(8), dir, "memory.events") {
            let (mut max, mut oom_kill) = (None, None);
            parse::key_values(self.files.data(), |k, v| match k {
                b"max" => max = Some(v),
                b"oom_kill" => oom_kill = Some(v),
                _ => {}
            });
            if let Some(v) = max {
                out.push((&n::MEMORY_FAILCNT, v as f64));
            }
            if let Some(v) = oom_kill {
                out.push((&n::OOM_EVENTS, v as f64));
            }
        }
        if let Some(t) = self.files.read_u64(Some(9), dir, "pids.current") {
            out.push((&n::THREADS, t as f64));
        }
        if self.files.read_slot(Some(10), dir, "cgroup.procs") {
            out.push((&n::PROCESSES, parse::count_lines(self.files.data()) as f64));
        }
        has_quota
    }

    /// The v2 files read every round.
    fn fast_v2<S: Sink + ?Sized>(
        &mut self,
        dir: &Path,
        has_quota: bool,
        labels: &Labels,
        sink: &mut S,
    ) {
        if self.files.read_slot(Some(0), dir, "cpu.stat") {
            let mut c = [None; 6];
            parse::key_values(self.files.data(), |k, v| match k {
                b"usage_usec" => c[0] = Some(v),
                b"user_usec" => c[1] = Some(v),
                b"system_usec" => c[2] = Some(v),
                b"nr_periods" => c[3] = Some(v),
                b"nr_throttled" => c[4] = Some(v),
                b"throttled_usec" => c[5] = Some(v),
                _ => {}
            });
            if let Some(u) = c[0] {
                sink.emit(&n::CPU_USAGE, labels, &[("cpu", "total")], u as f64 / 1e6);
            }
            if let Some(u) = c[1] {
                emit(sink, &n::CPU_USER, labels, u as f64 / 1e6);
            }
            if let Some(s) = c[2] {
                emit(sink, &n::CPU_SYSTEM, labels, s as f64 / 1e6);
            }
            if has_quota {
                self.emit_throttling([c[3], c[4], c[5]], 1e6, labels, sink);
            }
        }
        let usage = self.files.read_u64(Some(3), dir, "memory.current");
        let mut m = [None; 5];
        if self.files.read_slot(Some(4), dir, "memory.stat") {
            parse::key_values(self.files.data(), |k, v| match k {
                b"inactive_file" => m[0] = Some(v),
                b"anon" => m[1] = Some(v),
                b"file" => m[2] = Some(v),
                b"file_mapped" => m[4] = Some(v),
                _ => {}
            });
        }
        m[3] = self.files.read_u64(Some(5), dir, "memory.swap.current");
        self.emit_memory(usage, m, labels, sink);
        self.io.clear();
        if self.files.read_slot(Some(11), dir, "io.stat") {
            let io = &mut self.io;
            parse::io_stat(self.files.data(), |dev, s| {
                io.push((dev, [s.rbytes, s.wbytes, s.rios, s.wios]));
            });
        }
        self.emit_io(labels, sink);
    }

    /// Emits the three CFS throttling counters; `per_second` converts the throttled time to seconds.
    fn emit_throttling<S: Sink + ?Sized>(
        &mut self,
        t: [Option<u64>; 3],
        per_second: f64,
        labels: &Labels,
        sink: &mut S,
    ) {
        if let Some(v) = t[0] {
            emit(sink, &n::CFS_PERIODS, labels, v as f64);
        }
        if let Some(v) = t[1] {
            emit(sink, &n::CFS_THROTTLED_PERIODS, labels, v as f64);
        }
        if let Some(v) = t[2] {
            emit(
                sink,
                &n::CFS_THROTTLED_SECONDS,
                labels,
                v as f64 / per_second,
            );
        }
    }

    /// Emits usage, working set and the memory.stat breakdown `[inactive_file, rss, cache, swap, mapped_file]`.
    fn emit_memory<S: Sink + ?Sized>(
        &mut self,
        usage: Option<u64>,
        m: [Option<u64>; 5],
        labels: &Labels,
        sink: &mut S,
    ) {
        if let Some(u) = usage {
            emit(sink, &n::MEMORY_USAGE, labels, u as f64);
            if let Some(inactive) = m[0] {
                emit(
                    sink,
                    &n::MEMORY_WORKING_SET,
                    labels,
                    u.saturating_sub(inactive) as f64,
                );
            }
        }
        for (v, desc) in m[1..].iter().zip([
            &n::MEMORY_RSS,
            &n::MEMORY_CACHE,
            &n::MEMORY_SWAP,
            &n::MEMORY_MAPPED_FILE,
        ]) {
            if let Some(v) = v {
                emit(sink, desc, labels, *v as f64);
            }
        }
    }

    /// Emits the block I/O gathered in `self.io` with a `device` label.
    fn emit_io<S: Sink + ?Sized>(&mut self, labels: &Labels, sink: &mut S) {
        for i in 0..self.io.len() {
            let (dev, v) = self.io[i];
            if !self.devices.contains_key(&dev) {
                let name = self.device_name(dev);
                self.devices.insert(dev, name);
            }
            let name = self.devices.get(&dev).map_or("", String::as_str);
            let extra = [("device", name)];
            sink.emit(&n::FS_READ_BYTES, labels, &extra, v[0] as f64);
            sink.emit(&n::FS_WRITE_BYTES, labels, &extra, v[1] as f64);
            sink.emit(&n::FS_READS, labels, &extra, v[2] as f64);
            sink.emit(&n::FS_WRITES, labels, &extra, v[3] as f64);
        }
    }

    /// `/dev/<name>` of a block device from `/sys/dev/block/MAJ:MIN/uevent`, else `MAJ:MIN`.
    fn device_name(&mut self, (maj, min): (u32, u32)) -> String {
        let dir = PathBuf::from(format!("/sys/dev/block/{maj}:{min}"));
        if self.files.read(&dir, "uevent") {
            for line in parse::lines(self.files.data()) {
                if let Some(name) = line.strip_prefix(b"DEVNAME=")
                    && let Ok(name) = std::str::from_utf8(parse::trim(name))
                {
                    return format!("/dev/{name}");
                }
            }
        }
        format!("{maj}:{min}")
    }

    /// Network counters of the pid's namespace, unless it is the collector's own (host) namespace.
    fn collect_network<S: Sink + ?Sized>(
        &mut self,
        pid: i32,
        netns: &mut Option<Vec<u8>>,
        recheck: bool,
        labels: &Labels,
        sink: &mut S,
    ) {
        self.label.clear();
        use std::fmt::Write;
        let _ = write!(self.label, "{pid}");
        let mut pid_dir = std::mem::take(&mut self.pid_dir);
        pid_dir.as_mut_os_string().clear();
        pid_dir.push(&self.proc_root);
        pid_dir.push(&self.label);
        self.read_network(&pid_dir, netns, recheck, labels, sink);
        self.pid_dir = pid_dir;
    }

    /// Network counters from `<pid_dir>/net/dev`, unless the pid is in the collector's own network namespace.
    fn read_network<S: Sink + ?Sized>(
        &mut self,
        pid_dir: &Path,
        netns: &mut Option<Vec<u8>>,
        recheck: bool,
        labels: &Labels,
        sink: &mut S,
    ) {
        if netns.is_none() || recheck {
            match std::fs::read_link(pid_dir.join("ns/net")) {
                Ok(ns) => {
                    let ns = ns.into_os_string().into_encoded_bytes();
                    if netns.as_ref() != Some(&ns) {
                        // A new namespace: the kept-open net/dev still shows the old one.
                        self.files.cache.close(NET_DEV_SLOT);
                        *netns = Some(ns);
                    }
                }
                Err(e) => {
                    self.files.count_error(&e);
                    self.files.cache.close(NET_DEV_SLOT);
                    *netns = None;
                    return;
                }
            }
        }
        if netns.is_some() && *netns == self.own_netns {
            return;
        }
        if !self.files.read_slot(Some(NET_DEV_SLOT), pid_dir, "net/dev") {
            return;
        }
        parse::net_dev(self.files.data(), |iface, v| {
            // cAdvisor's ignored devices: loopback and the host ends of container links.
            if ["lo", "veth", "docker", "nerdctl"]
                .iter()
                .any(|p| iface.starts_with(p))
            {
                return;
            }
            let extra = [("interface", iface)];
            for (desc, i) in [
                (&n::NET_RX_BYTES, 0),
                (&n::NET_RX_PACKETS, 1),
                (&n::NET_RX_ERRORS, 2),
                (&n::NET_RX_DROPPED, 3),
                (&n::NET_TX_BYTES, 8),
                (&n::NET_TX_PACKETS, 9),
                (&n::NET_TX_ERRORS, 10),
                (&n::NET_TX_DROPPED, 11),
            ] {
                sink.emit(desc, labels, &extra, v[i] as f64);
            }
        });
    }

    /// Start time of `pid` in seconds since the epoch from `/proc/PID/stat` and the boot time.
    fn start_time(&mut self, pid: i32) -> Option<f64> {
        let btime = self.btime?;
        let dir = self.proc_root.join(pid.to_string());
        if !self.files.read(&dir, "stat") {
            return None;
        }
        let ticks = parse::proc_start_ticks(self.files.data());
        if ticks.is_none() {
            self.files.stats.parse_errors += 1;
        }
        Some(btime as f64 + ticks? as f64 / self.clk_tck)
    }
}
