//! The three stores as child processes on 127.0.0.1, each in its own temporary directory
//! on ports picked here, behind guards that kill them when dropped (on errors and panics
//! too), plus how each is made to put everything on disk before its size is taken.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{SlipwayProcess, free_port};

use super::client::Conn;

/// A child process killed (SIGKILL) and reaped when dropped.
pub(crate) struct Guard {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Guard {
    fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> anyhow::Result<Guard> {
        let file = std::fs::File::create(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Guard {
            name,
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Waits until `ready` holds, failing early if the process exits.
    fn wait_ready(&mut self, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.exited() {
                bail!("{} exited while starting:\n{}", self.name, self.log_tail());
            }
            if ready() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "{} did not answer within 30 s:\n{}",
            self.name,
            self.log_tail()
        )
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// CPU time (user + system) a process has used so far (100 clock ticks a second).
pub(crate) fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's closing parenthesis come fields 3 (state), 4, ...: utime and
    // stime are fields 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let ticks = field(14).unwrap_or(0) + field(15).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Bytes a directory tree takes: allocated blocks (what `du` reports) and file lengths.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DiskUse {
    pub(crate) allocated: u64,
    pub(crate) apparent: u64,
    pub(crate) files: u64,
}

/// [`DiskUse`] of `dir`, leaving out top-level entries named in `skip`.
pub(crate) fn disk_use(dir: &Path, skip: &[&str]) -> DiskUse {
    use std::os::unix::fs::MetadataExt;
    let mut total = DiskUse::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if d == dir && skip.iter().any(|s| e.file_name() == *s) {
                continue;
            }
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                total.allocated += m.blocks() * 512;
                total.apparent += m.len();
                total.files += 1;
            }
        }
    }
    total
}

/// Polls `size` every 500 ms until it returned the same value `n` times in a row.
fn settle(timeout: Duration, n: usize, mut size: impl FnMut() -> u64) -> bool {
    let deadline = Instant::now() + timeout;
    let mut last = u64::MAX;
    let mut same = 0;
    while Instant::now() < deadline {
        let s = size();
        same = if s == last { same + 1 } else { 0 };
        if same >= n {
            return true;
        }
        last = s;
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

/// VictoriaMetrics single-node (`-search.disableCache`).
pub(crate) struct Vm {
    pub(crate) guard: Guard,
    pub(crate) addr: String,
    pub(crate) dir: tempfile::TempDir,
}

impl Vm {
    pub(crate) fn start(bin: &Path) -> anyhow::Result<Vm> {
        let dir = tempfile::tempdir()?;
        let mut attempt = 0;
        loop {
            let addr = format!("127.0.0.1:{}", free_port());
            let mut guard = Guard::spawn(
                "victoria-metrics",
                Command::new(bin)
                    .arg(format!(
                        "-storageDataPath={}",
                        dir.path().join("data").display()
                    ))
                    .arg(format!("-httpListenAddr={addr}"))
                    .args([
                        "-search.disableCache",
                        "-loggerLevel=WARN",
                        "-retentionPeriod=1y",
                    ]),
                &dir.path().join("vm.log"),
            )?;
            let mut probe = Conn::new(&addr, None);
            match guard.wait_ready(|| matches!(probe.get("/health"), Ok((200, _)))) {
                Ok(()) => return Ok(Vm { guard, addr, dir }),
                Err(e) if attempt < 3 => {
                    attempt += 1;
                    eprintln!("victoria-metrics did not start ({e:#}); new port");
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `/internal/force_flush`, then `/internal/force_merge` of every partition, waiting
    /// until no forced merge is active and the files stay the same for 2 s.
    pub(crate) fn compact(&self) -> anyhow::Result<DiskUse> {
        let mut c = Conn::new(&self.addr, None);
        for path in ["/internal/force_flush", "/internal/force_merge"] {
            let (status, body) = c.get(path)?;
            if status != 200 {
                bail!("{path}: {status} {}", String::from_utf8_lossy(&body));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let (_, metrics) = c.get("/metrics")?;
            let active = String::from_utf8_lossy(&metrics)
                .lines()
                .find_map(|l| l.strip_prefix("vm_active_force_merges "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            if active == 0.0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("victoria-metrics' forced merge did not end within 300 s");
            }
        }
        c.get("/internal/force_flush")?;
        let data = self.data();
        settle(Duration::from_secs(60), 4, || {
            disk_use(&data, &["cache"]).allocated
        });
        Ok(disk_use(&data, &["cache", "flock.lock"]))
    }
}

/// InfluxDB 1.x, configured for the benchmark.
pub(crate) struct Influx {
    pub(crate) guard: Guard,
    pub(crate) addr: String,
    pub(crate) dir: tempfile::TempDir,
}

/// All listeners on loopback, no usage reporting, no `_internal` database; the cache is
/// snapshotted to TSM 1 s after the last write and a shard cold for 1 s is fully compacted
/// (defaults: 10 min and 4 h), so the benchmark need not wait for hours.
fn influx_config(dir: &Path, http: &str, rpc: &str) -> String {
    let d = dir.display();
    format!(
        r#"reporting-disabled = true
bind-address = "{rpc}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "1s"
  compact-full-write-cold-duration = "1s"
[monitor]
  store-enabled = false
[http]
  bind-address = "{http}"
  log-enabled = false
  pprof-enabled = false
[logging]
  level = "warn"
  suppress-logo = true
[continuous_queries]
  enabled = false
"#
    )
}

impl Influx {
    pub(crate) fn start(bin: &Path) -> anyhow::Result<Influx> {
        let dir = tempfile::tempdir()?;
        let mut attempt = 0;
        loop {
            let addr = format!("127.0.0.1:{}", free_port());
            let rpc = format!("127.0.0.1:{}", free_port());
            let config = dir.path().join("influxdb.conf");
            std::fs::write(&config, influx_config(dir.path(), &addr, &rpc))?;
            let mut guard = Guard::spawn(
                "influxd",
                Command::new(bin).arg("run").arg("-config").arg(&config),
                &dir.path().join("influxd.log"),
            )?;
            let mut probe = Conn::new(&addr, None);
            match guard.wait_ready(|| matches!(probe.get("/ping"), Ok((204, _)))) {
                Ok(()) => {
                    let (status, body) = probe.post(
                        &format!(
                            "/query?q={}",
                            super::client::encode("CREATE DATABASE bench")
                        ),
                        b"",
                    )?;
                    if status != 200 {
                        bail!(
                            "CREATE DATABASE: {status} {}",
                            String::from_utf8_lossy(&body)
                        );
                    }
                    return Ok(Influx { guard, addr, dir });
                }
                Err(e) if attempt < 3 => {
                    attempt += 1;
                    eprintln!("influxd did not start ({e:#}); new ports");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for the cache snapshot (the WAL emptied into TSM files) and the cold shard's
    /// full compaction: no WAL bytes left and the files unchanged for 3 s. Returns the
    /// data and WAL directories' use and the number of TSM files.
    pub(crate) fn compact(&self) -> anyhow::Result<(DiskUse, u64)> {
        let data = self.dir.path().join("data");
        let wal = self.dir.path().join("wal");
        let tsm_files = |d: &Path| -> u64 {
            let mut n = 0;
            let mut stack = vec![d.to_path_buf()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|x| x == "tsm") {
                        n += 1;
                    }
                }
            }
            n
        };
        let mut polls = 0;
        let settled = settle(Duration::from_secs(180), 6, || {
            polls += 1;
            // Never settled while the WAL holds data; then the data files' shape.
            if disk_use(&wal, &[]).apparent > 0 {
                u64::MAX - polls
            } else {
                disk_use(&data, &[]).apparent ^ (tsm_files(&data) << 48)
            }
        });
        if !settled {
            eprintln!("influxd: files still changing after 180 s; measuring them as they are");
        }
        let mut u = disk_use(&data, &[]);
        let w = disk_use(&wal, &[]);
        u.allocated += w.allocated;
        u.apparent += w.apparent;
        u.files += w.files;
        Ok((u, tsm_files(&data)))
    }
}

/// `slipway up` with metrics on (collector every 5 min, so its own rounds barely add to
/// the store), no Docker and no proxy.
pub(crate) struct Slipway {
    pub(crate) proc: SlipwayProcess,
    pub(crate) addr: String,
    pub(crate) dir: tempfile::TempDir,
}

impl Slipway {
    pub(crate) fn start(bin: &Path) -> anyhow::Result<Slipway> {
        let dir = tempfile::tempdir()?;
        let proc = SlipwayProcess::start(
            bin,
            dir.path(),
            &[
                "--metrics-interval",
                "5m",
                "--docker",
                "off",
                "--proxy",
                "off",
            ],
        )?;
        let addr = proc
            .url
            .strip_prefix("http://")
            .unwrap_or(&proc.url)
            .to_string();
        Ok(Slipway { proc, addr, dir })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.proc.pid().unwrap_or(0)
    }

    /// Stops the server (SIGTERM: its store syncs the WAL), then does what its periodic
    /// maintenance does, for everything: `flush_all` (close every open chunk, write
    /// segments with their 1 m and 1 h rollups, checkpoint the WAL) and `compact_full`
    /// (one segment per window), on the same directory with the server's options. The
    /// server is started again afterwards, reading everything from segments.
    pub(crate) fn compact(&mut self) -> anyhow::Result<(DiskUse, ::tsdb::Stats)> {
        self.proc.terminate();
        let path = self.dir.path().join("tsdb");
        let stats = {
            let db = ::tsdb::Db::open(&path, ::tsdb::Options::default())
                .context("cannot open Slipway's store after the server stopped")?;
            db.flush_all()?;
            db.compact_full()?;
            let stats = db.stats();
            db.close()?;
            stats
        };
        let used = disk_use(&path, &["LOCK"]);
        self.proc.restart()?;
        Ok((used, stats))
    }
}
