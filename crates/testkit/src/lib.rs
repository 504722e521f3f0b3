//! Test helpers shared by Slipway's integration tests: the `slipway-testsrv` HTTP server
//! binary, a real `slipway up` process on an ephemeral port with its own data directory,
//! an HTTP client with polling helpers, and process inspection for orphan checks.

mod git_http;
mod image;
pub use git_http::GitHttpServer;
pub mod load;
pub mod swarm;
pub mod tls_registry;

pub use image::{
    TEST_IMAGE_PORT, docker, docker_config_json, push_to_registry, push_with_auth, registry,
    registry_up, remove_slipway_containers, restart_dockerd, slipway_containers, start_registry,
    static_testsrv, stop_registry, test_image,
};

use anyhow::{Context, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The cargo target directory of the running test binary (`target/debug`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/<test>-<hash> → target/debug
    exe.parent()
        .and_then(|deps| {
            if deps.ends_with("deps") {
                deps.parent()
            } else {
                Some(deps)
            }
        })
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target/debug"))
}

/// Path to `slipway-testsrv`, building it once per test process if needed.
pub fn testsrv() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = target_dir().join("slipway-testsrv");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "testkit", "--bin", "slipway-testsrv"])
            .status();
        assert!(
            matches!(status, Ok(s) if s.success()) && path.exists(),
            "cannot build slipway-testsrv ({status:?})"
        );
        reachable_copy(&path)
    })
    .clone()
}

/// `path` itself when every directory above it lets others through, else a copy in a
/// directory that does: tasks run unprivileged, and a checkout under a private home
/// directory would be out of their reach.
pub fn reachable_copy(path: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let open = path.ancestors().skip(1).all(|d| {
        d.as_os_str().is_empty()
            || std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
    });
    if open {
        return path.to_path_buf();
    }
    let dir = std::env::temp_dir().join(format!("slipway-testkit-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
    let copy = dir.join(path.file_name().unwrap_or_default());
    let tmp = copy.with_extension("tmp");
    if std::fs::copy(path, &tmp).is_ok()
        && std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).is_ok()
        && std::fs::rename(&tmp, &copy).is_ok()
    {
        return copy;
    }
    path.to_path_buf()
}

/// The admin token test servers accept (`SLIPWAY_ADMIN_TOKEN`); the helpers here send it.
pub const ADMIN_TOKEN: &str = "slw_test-admin-token-not-a-secret";

/// Free TCP port on loopback (racy by nature; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18080)
}

/// Whether process `pid` holds the socket listening on 127.0.0.1:`port` (from
/// `/proc/net/tcp` and the process's file descriptors).
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let want = format!("0100007F:{port:04X}");
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local address, state 0A = LISTEN, inode
            (f.len() > 9 && f[1] == want && f[3] == "0A").then(|| format!("socket:[{}]", f[9]))
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|t| inodes.iter().any(|i| t.to_string_lossy() == i.as_str()))
    })
}

/// A `slipway up` child process.
pub struct SlipwayProcess {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Data directory (kept across restarts of the same server).
    pub data_dir: PathBuf,
    child: Option<Child>,
    bin: PathBuf,
    port: u16,
    extra: Vec<String>,
    proxy_args: Vec<String>,
    /// The server's agent id (its task cgroups' parent), once it answered.
    agent: Option<String>,
    /// The lock on this server's window of ports, held while it lives.
    _ports: Option<std::fs::File>,
}

/// Windows of ports for the servers of parallel tests, below the kernel's ephemeral range
/// (32768 and up, where `free_port` picks): window k starts at 20000 + 300k, its first 100
/// ports are service ports, its last 200 task ports.
const PORT_WINDOWS: u16 = 42;

/// Claims a window no other test process holds (an exclusive lock on a file per window,
/// which the kernel releases when the holder dies), as (lock, first port of the window).
fn claim_port_window() -> Option<(std::fs::File, u16)> {
    let dir = std::env::temp_dir().join("slipway-test-port-windows");
    std::fs::create_dir_all(&dir).ok()?;
    let start = free_port() % PORT_WINDOWS;
    (0..PORT_WINDOWS).find_map(|i| {
        let k = (start + i) % PORT_WINDOWS;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{k}.lock")))
            .ok()?;
        f.try_lock().ok()?;
        Some((f, 20_000 + k * 300))
    })
}

impl SlipwayProcess {
    /// Starts `bin up` on a free port with `data_dir`, waiting for `/ping`.
    pub fn start(bin: &Path, data_dir: &Path, extra: &[&str]) -> anyhow::Result<SlipwayProcess> {
        // A free port can be taken by another test's server between `free_port` and the
        // bind: a server that exits while starting gets new ports, a few times.
        let mut attempt = 0;
        loop {
            let mut p = SlipwayProcess {
                url: String::new(),
                data_dir: data_dir.to_path_buf(),
                child: None,
                bin: bin.to_path_buf(),
                port: free_port(),
                extra: extra.iter().map(|s| s.to_string()).collect(),
                proxy_args: Vec::new(),
                agent: None,
                _ports: None,
            };
            // Servers of parallel tests must not fight over the proxy's listeners, nor over
            // task ports: a task that binds late (here, one that sleeps before it listens)
            // would have its port taken by another server's task, and its health checks
            // answered by that one. Each server gets its own vhost port and a window of
            // service and task ports (unless the test chose).
            if !p.extra.iter().any(|a| a == "--proxy-vhost-listen") {
                p.proxy_args.push("--proxy-vhost-listen".into());
                p.proxy_args.push(format!("127.0.0.1:{}", free_port()));
            }
            let window = claim_port_window();
            let base = window
                .as_ref()
                .map_or(20_000 + (free_port() % PORT_WINDOWS) * 300, |w| w.1);
            p._ports = window.map(|w| w.0);
            if !p.extra.iter().any(|a| a == "--service-ports") {
                p.proxy_args.push("--service-ports".into());
                p.proxy_args.push(format!("{base}-{}", base + 99));
            }
            if !p.extra.iter().any(|a| a == "--task-ports") {
                p.proxy_args.push("--task-ports".into());
                p.proxy_args.push(format!("{}-{}", base + 100, base + 299));
            }
            p.url = format!("http://127.0.0.1:{}", p.port);
            match p.spawn() {
                Ok(()) => return Ok(p),
                Err(e) if attempt < 3 && p.exited() => {
                    attempt += 1;
                    eprintln!("slipway exited while starting ({e:#}); new ports");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the server process has exited (and reaps it).
    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// The address of the proxy's HTTP vhost listener (`--proxy-vhost-listen`), if any.
    pub fn proxy_vhost_addr(&self) -> Option<String> {
        self.proxy_args
            .iter()
            .chain(&self.extra)
            .skip_while(|a| *a != "--proxy-vhost-listen")
            .nth(1)
            .filter(|a| *a != "off")
            .cloned()
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("server.log"))?;
        let child = Command::new(&self.bin)
            .arg("up")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.proxy_args)
            .args(&self.extra)
            // `SLIPWAY_TEST_LOG=proxy=debug,info` and the like, to see more of a failure.
            .env(
                "SLIPWAY_LOG",
                std::env::var("SLIPWAY_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("SLIPWAY_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start slipway")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.exited() {
                bail!("slipway exited while starting; log: {}", self.log());
            }
            // Answered by this server: another one could hold the port if ours failed.
            if http_get(&format!("{}/ping", self.url)).is_ok()
                && self.pid().is_some_and(|pid| listens_on(pid, self.port))
            {
                // Its agent id names its task cgroups: Drop kills them even after the
                // data directory is gone.
                if self.agent.is_none() {
                    self.agent = get_json(&format!("{}/v2/info", self.url))
                        .ok()
                        .and_then(|v| v["frameworkId"].as_str().map(str::to_string));
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "slipway did not answer /ping within 30s; log: {}",
            self.log()
        )
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    /// Server pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// kill -9 the server (tasks survive).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        self.spawn()
    }

    /// SIGTERM and wait.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for SlipwayProcess {
    fn drop(&mut self) {
        self.kill9();
        // Tasks outlive the server by design; tests must not leak them.
        kill_tasks_of(&self.data_dir);
        if let Some(agent) = &self.agent {
            for _ in 0..20 {
                let left = cgroup_task_processes(agent);
                if left.is_empty() {
                    break;
                }
                for (pid, _) in left {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Kills every task process whose sandbox lives under `data_dir`, with its process group.
///
/// Signals the group with `killpg(2)` rather than running `kill -KILL -PID`: Debian 12's
/// procps `kill` reads `-KILL -13100` as signal options and calls `kill(-1, SIGKILL)`,
/// which kills every process on the machine (this took down whole CI runs).
pub fn kill_tasks_of(data_dir: &Path) {
    for (pid, _) in task_processes(data_dir) {
        let _ = kill_group(pid);
    }
    // Programs that rewrite their environment (nginx, setproctitle) are found by their
    // cgroup: every task of this server has a sandbox named after its id.
    let tasks: std::collections::BTreeSet<String> = std::fs::read_dir(data_dir.join("sandboxes"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if tasks.is_empty() {
        return;
    }
    for _ in 0..3 {
        let mut left = 0;
        for (pid, _, task) in task_cgroup_members() {
            if tasks.contains(&task) {
                left += 1;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if left == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGKILLs the process group `pgid`. Refuses ids that would address more than one group
/// (`pgid <= 1`: the caller's own group, or every process).
pub fn kill_group(pgid: i32) -> anyhow::Result<()> {
    if pgid <= 1 {
        bail!("refusing to signal process group {pgid}");
    }
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .with_context(|| format!("killpg({pgid})"))
}

/// Task leader processes (pid, task id) whose `MESOS_SANDBOX` lies under `data_dir`.
pub fn task_processes(data_dir: &Path) -> Vec<(i32, String)> {
    let prefix = data_dir.to_string_lossy().to_string();
    let canon = std::fs::canonicalize(data_dir)
        .map(|p| p.to_string_lossy().to_string())
        .unwrap_or(prefix.clone());
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let vars: Vec<String> = env
            .split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        let get = |k: &str| {
            vars.iter()
                .find_map(|v| v.strip_prefix(&format!("{k}=")).map(str::to_string))
        };
        let (Some(sandbox), Some(task), Some(leader)) = (
            get("MESOS_SANDBOX"),
            get("SLIPWAY_TASK_ID"),
            get("SLIPWAY_LEADER_PID"),
        ) else {
            continue;
        };
        if (sandbox.starts_with(&prefix) || sandbox.starts_with(&canon))
            && leader == pid.to_string()
        {
            // Zombies are gone for our purposes.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next())
                .unwrap_or("");
            if state != "Z" {
                out.push((pid, task));
            }
        }
    }
    out
}

/// Every process on the machine in a task cgroup of the server whose agent id (Marathon
/// `frameworkId`) is `agent_id`, as (pid, task id): the tasks as the kernel sees them,
/// whatever the programs did to their titles and environments. Zombies excluded.
pub fn cgroup_task_processes(agent_id: &str) -> Vec<(i32, String)> {
    let mut out: Vec<(i32, String)> = task_cgroup_members()
        .into_iter()
        .filter(|(_, agent, _)| agent == agent_id)
        .map(|(pid, _, task)| (pid, task))
        .collect();
    out.sort();
    out
}

/// Every live process in a task cgroup of any server (`/slipway/<agent>/<task>`), as
/// (pid, agent, task).
fn task_cgroup_members() -> Vec<(i32, String, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(groups) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            continue;
        };
        let found = groups.lines().find_map(|l| {
            let rest = &l[l.find("/slipway/")? + "/slipway/".len()..];
            let mut parts = rest.split('/');
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        });
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next())
            .is_some_and(|s| s == "Z" || s == "X");
        if let Some((agent, task)) = found.filter(|(_, t)| !t.is_empty())
            && !zombie
        {
            out.push((pid, agent, task));
        }
    }
    out
}

/// Minimal blocking HTTP GET on loopback returning (status, body).
pub fn http_get(url: &str) -> anyhow::Result<(u16, String)> {
    http("GET", url, None)
}

/// Minimal blocking HTTP/1.1 request as the admin (no TLS, no chunked bodies in requests).
pub fn http(method: &str, url: &str, body: Option<&Value>) -> anyhow::Result<(u16, String)> {
    http_as(ADMIN_TOKEN, method, url, body)
}

/// [`http`] with the bearer token `token`.
pub fn http_as(
    token: &str,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").context("only http:// urls")?;
    let (hostport, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(hostport)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("bad status line")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// GET returning JSON; fails on non-2xx.
pub fn get_json(url: &str) -> anyhow::Result<Value> {
    let (status, body) = http_get(url)?;
    if !(200..300).contains(&status) {
        bail!("GET {url}: {status} {body}");
    }
    Ok(serde_json::from_str(&body)?)
}

/// Polls `f` every 100 ms until it returns `Some`, failing after `timeout`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a test can use `what` (`ok`): under `CI=true` a missing prerequisite fails the
/// test (the test command installs it); elsewhere the test says what is missing and skips.
pub fn have(what: &str, ok: bool) -> bool {
    if !ok {
        assert!(
            !strict(),
            "{what} is required in CI (scripts/test installs it)"
        );
        eprintln!("skipping: {what} is not available");
    }
    ok
}

/// True when the test run must not skip work that needs missing tools (`CI=true`).
pub fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Collects `/v2/events` event types in a background thread until dropped.
pub struct EventCollector {
    events: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EventCollector {
    /// Connects to `base_url/v2/events` and starts collecting.
    pub fn start(base_url: &str) -> anyhow::Result<EventCollector> {
        use std::io::{BufRead, BufReader, Write};
        let hostport = base_url
            .strip_prefix("http://")
            .context("only http:// urls")?
            .to_string();
        let mut s = std::net::TcpStream::connect(&hostport)?;
        write!(
            s,
            "GET /v2/events HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nAccept: text/event-stream\r\n\r\n"
        )?;
        s.set_read_timeout(Some(Duration::from_millis(300)))?;
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ev, st) = (events.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut reader = BufReader::new(s);
            let mut current = String::new();
            let mut line = String::new();
            while !st.load(std::sync::atomic::Ordering::SeqCst) {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(_) => continue,
                }
                let l = line.trim_end();
                if let Some(t) = l.strip_prefix("event: ") {
                    current = t.to_string();
                } else if let Some(d) = l.strip_prefix("data: ") {
                    let v = serde_json::from_str(d).unwrap_or(Value::Null);
                    if let Ok(mut e) = ev.lock() {
                        e.push((current.clone(), v));
                    }
                }
            }
        });
        Ok(EventCollector {
            events,
            stop,
            thread: Some(thread),
        })
    }

    /// Event types seen so far.
    pub fn types(&self) -> Vec<String> {
        self.events
            .lock()
            .map(|e| e.iter().map(|(t, _)| t.clone()).collect())
            .unwrap_or_default()
    }

    /// Events seen so far.
    pub fn events(&self) -> Vec<(String, Value)> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Drop for EventCollector {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The Python interpreter with marathon-python 0.13 installed by the test command
/// (`target/marathon-venv`), or `SLIPWAY_TEST_PYTHON`.
pub fn marathon_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SLIPWAY_TEST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = target_dir().parent()?.join("marathon-venv/bin/python");
    venv.exists().then_some(venv)
}

/// Runs `git` in `dir` (with a throw-away identity), panicking with git's message on failure.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A git repository on branch `dev` whose first commit holds `pipeline` as
/// `.slipway/pipeline.yaml` and the given other files.
pub fn git_repo(pipeline: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    git(dir.path(), &["init", "-q", "-b", "dev"]);
    std::fs::create_dir_all(dir.path().join(".slipway")).expect("mkdir");
    std::fs::write(dir.path().join(".slipway/pipeline.yaml"), pipeline).expect("write");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    git(dir.path(), &["add", "."]);
    git(dir.path(), &["commit", "-q", "-m", "first"]);
    dir
}
