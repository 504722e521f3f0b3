//! A two-node Docker Swarm on this one machine, built by a test and torn down after it (also
//! when the test panics).
//!
//! How it is built, and why:
//! - **Link.** A network namespace `slwsw<pid>` and a veth pair with a private /30 from
//!   `10.231.0.0/16`: `10.231.N.5` on the host end (`slwsh<pid>`), `10.231.N.6` in the
//!   namespace (`slwsn<pid>`); the first free `N` is taken. The namespace has no default
//!   route, so the worker reaches only the host end and its own loopback.
//! - **Manager.** The host's daemon, made a manager with
//!   `docker swarm init --advertise-addr 10.231.N.5 --listen-addr 10.231.N.5:2377`. The
//!   usual `--advertise-addr 127.0.0.1` does not work for two nodes: the worker dials the
//!   address the manager advertises, and 127.0.0.1 in the namespace is the namespace's own
//!   loopback. Listening on the veth address only keeps the Swarm port off the host's other
//!   interfaces. The guard initialises the Swarm only when the daemon is in none, and then
//!   leaves it at the end; a daemon already in a Swarm is refused (its manager advertises
//!   an address the namespace cannot reach), except for a Swarm left over by a killed run
//!   of this guard (it advertises a `10.231.*` address no interface has any more), which is
//!   left first.
//! - **Worker.** A second `dockerd` in the namespace, in its own UTS namespace with the
//!   hostname `slw-worker-<pid>` (so the two nodes have different hostnames):
//!   `unshare --uts -- sh -c 'hostname …; exec nsenter --net=/var/run/netns/slwsw<pid> dockerd
//!   --data-root D/data --exec-root D/exec -H unix://D/docker.sock --pidfile D/docker.pid'`
//!   with `D` = `$TMPDIR/slipway-swarm-<pid>`. It keeps its default bridge and iptables:
//!   both live inside the namespace (its own `docker0`, its own netfilter tables), and a
//!   task's host-mode published port needs them (`--bridge none` leaves a task with
//!   published ports no network to publish from). `ip netns exec` is not used: it remounts
//!   /sys and hides the cgroup mounts, and dockerd fails. It joins with the manager's worker
//!   token, advertising `10.231.N.6`.
//! - **Images.** The worker cannot reach the internet. Tests push to the test registry
//!   (`127.0.0.1:5000`) and deploy `127.0.0.1:5000/…`: on the host that is the registry
//!   itself; in the namespace, a listener on the namespace's `127.0.0.1:5000` (made by a
//!   thread that entered it) relays each connection, from the host's namespace, to the
//!   registry. Both daemons treat loopback registries as insecure already, so no daemon
//!   configuration changes and no second registry are needed.
//! - **Listeners.** The Swarm's control port (2377) and gossip (7946 tcp/udp) listen on
//!   the veth addresses only. The `ingress` network is removed right after `swarm init`:
//!   there is no routing mesh without IPVS, and its VXLAN socket would listen on
//!   `0.0.0.0:4789` (an overlay network a test creates brings that socket back while it
//!   exists). A task is reached at its node's address (`Status.Addr`: the two veth
//!   addresses) and its host-mode published port. Caveat: on the manager a host-mode port
//!   binds all of the host's addresses (a Swarm service cannot name a host IP).
//! - **Teardown** (Drop): the services the test registered are removed, the worker leaves
//!   and its daemon stops, the manager leaves the Swarm (only when the guard made it), the
//!   relay stops, the worker's mounts are unmounted, and the namespace, veth and state
//!   directory are deleted. A run killed before Drop is cleaned up by the next `start`.

use anyhow::{Context, bail};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Name prefixes of what the guard makes (namespace, host end, namespace end, state dir).
const NETNS: &str = "slwsw";
const VETH_HOST: &str = "slwsh";
const VETH_NS: &str = "slwsn";
const STATE_DIR: &str = "slipway-swarm-";

/// The guard of a two-node Swarm: the host's daemon as manager, a second daemon in a
/// network namespace as worker.
pub struct TwoNodeSwarm {
    /// The manager's address (the host end of the veth), where its tasks' ports are.
    pub manager_addr: String,
    /// The worker's address (the namespace end), where its tasks' ports are.
    pub worker_addr: String,
    /// The worker daemon's API (`unix:///…/docker.sock`).
    pub worker_host: String,
    /// The worker's hostname.
    pub worker_hostname: String,
    /// The registry both nodes pull from (`127.0.0.1:5000`).
    pub registry: String,
    netns: String,
    veth: String,
    dir: PathBuf,
    initialised: bool,
    worker: Option<Child>,
    services: Mutex<Vec<String>>,
    stop: Arc<AtomicBool>,
}

fn run(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command whose failure does not matter (teardown), bounded in time.
fn quietly(cmd: &str, args: &[&str]) {
    let _ = Command::new("timeout")
        .arg("30")
        .arg(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether this process can build the Swarm: root, and `ip`, `nsenter`, `unshare`, `docker`.
pub fn available() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
        && ["ip", "nsenter", "unshare", "docker", "dockerd"]
            .iter()
            .all(|c| {
                Command::new("sh")
                    .args(["-c", &format!("command -v {c}")])
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Kills the daemon whose pidfile is `pidfile`, waiting up to `grace` for it to exit.
fn stop_daemon(pidfile: &Path, grace: Duration) {
    let Some(pid) = std::fs::read_to_string(pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && nix::sys::signal::kill(pid, None).is_ok() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
}

/// Unmounts everything under `dir` (the worker's exec root holds namespace and overlay
/// mounts), deepest first.
fn unmount_under(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let prefix = dir.to_string_lossy().to_string();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        quietly("umount", &["-l", p]);
    }
}

/// Removes what a killed run of this guard left: its worker daemon, mounts, state
/// directory, namespace and veth (found by the pid in their names).
fn clean_stale() {
    let tmp = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(pid) = name
                .strip_prefix(STATE_DIR)
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if pid_alive(pid) {
                continue;
            }
            let dir = e.path();
            stop_daemon(&dir.join("docker.pid"), Duration::from_secs(20));
            unmount_under(&dir);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    if let Ok(list) = run("ip", &["netns", "list"]) {
        for line in list.lines() {
            let ns = line.split_whitespace().next().unwrap_or_default();
            if let Some(pid) = ns.strip_prefix(NETNS).and_then(|p| p.parse::<u32>().ok())
                && !pid_alive(pid)
            {
                quietly("ip", &["netns", "del", ns]);
                quietly("ip", &["link", "del", &format!("{VETH_HOST}{pid}")]);
            }
        }
    }
}

/// The first `N` whose `10.231.N.4/30` no interface uses, starting from one derived from
/// the pid.
fn free_subnet() -> anyhow::Result<u32> {
    let used = run("ip", &["-4", "-o", "addr", "show"])?;
    let start = std::process::id() % 250 + 1;
    (0..250)
        .map(|i| (start + i) % 250 + 1)
        .find(|n| {
            !used.contains(&format!("10.231.{n}.5/")) && !used.contains(&format!("10.231.{n}.6/"))
        })
        .context("no free 10.231.N.4/30 subnet")
}

impl TwoNodeSwarm {
    /// Builds the two-node Swarm and waits until both nodes are Ready. Needs root.
    pub fn start() -> anyhow::Result<TwoNodeSwarm> {
        if !available() {
            bail!("a two-node Swarm needs root and ip, nsenter, unshare, docker and dockerd");
        }
        clean_stale();
        let pid = std::process::id();
        let n = free_subnet()?;
        let dir = std::env::temp_dir().join(format!("{STATE_DIR}{pid}"));
        std::fs::create_dir_all(&dir)?;
        let mut me = TwoNodeSwarm {
            manager_addr: format!("10.231.{n}.5"),
            worker_addr: format!("10.231.{n}.6"),
            worker_host: format!("unix://{}/docker.sock", dir.display()),
            worker_hostname: format!("slw-worker-{pid}"),
            registry: crate::image::registry(),
            netns: format!("{NETNS}{pid}"),
            veth: format!("{VETH_HOST}{pid}"),
            dir,
            initialised: false,
            worker: None,
            services: Mutex::default(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        // From here on, Drop tears down whatever was made.
        me.adopt_or_refuse_host_swarm()?;
        let peer = format!("{VETH_NS}{pid}");
        let (ns, veth) = (me.netns.clone(), me.veth.clone());
        run("ip", &["netns", "add", &ns])?;
        run(
            "ip",
            &["link", "add", &veth, "type", "veth", "peer", "name", &peer],
        )?;
        run("ip", &["link", "set", &peer, "netns", &ns])?;
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/30", me.manager_addr),
                "dev",
                &veth,
            ],
        )?;
        run("ip", &["link", "set", &veth, "up"])?;
        run(
            "ip",
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/30", me.worker_addr),
                "dev",
                &peer,
            ],
        )?;
        run("ip", &["-n", &ns, "link", "set", &peer, "up"])?;
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        me.relay_registry()?;
        me.start_worker_daemon()?;
        let listen = format!("{}:2377", me.manager_addr);
        run(
            "timeout",
            &[
                "60",
                "docker",
                "swarm",
                "init",
                "--advertise-addr",
                &me.manager_addr,
                "--listen-addr",
                &listen,
            ],
        )?;
        me.initialised = true;
        // No routing mesh here (no IPVS), and its VXLAN socket would listen on 0.0.0.0:4789.
        run(
            "sh",
            &["-c", "echo y | timeout 30 docker network rm ingress"],
        )?;
        let token = run("docker", &["swarm", "join-token", "-q", "worker"])?;
        run(
            "timeout",
            &[
                "60",
                "docker",
                "-H",
                &me.worker_host,
                "swarm",
                "join",
                "--token",
                token.trim(),
                "--advertise-addr",
                &me.worker_addr,
                "--listen-addr",
                &format!("{}:2377", me.worker_addr),
                &listen,
            ],
        )
        .with_context(|| format!("the worker could not join; its log:\n{}", me.worker_log()))?;
        me.wait_ready(2, Duration::from_secs(60))?;
        Ok(me)
    }

    /// Refuses a host daemon that is already in a Swarm, unless it is one a killed run of
    /// this guard left (then it leaves it).
    fn adopt_or_refuse_host_swarm(&self) -> anyhow::Result<()> {
        let info = run(
            "docker",
            &[
                "info",
                "--format",
                "{{.Swarm.LocalNodeState}} {{.Swarm.NodeAddr}}",
            ],
        )?;
        let mut parts = info.split_whitespace();
        let state = parts.next().unwrap_or_default().to_string();
        let addr = parts.next().unwrap_or_default().to_string();
        if state == "inactive" {
            return Ok(());
        }
        let ours = addr.starts_with("10.231.")
            && !run("ip", &["-4", "-o", "addr", "show"])?.contains(&format!(" {addr}/"));
        if ours {
            eprintln!("leaving a Swarm left by an earlier run (it advertises {addr})");
            run("timeout", &["60", "docker", "swarm", "leave", "--force"])?;
            return Ok(());
        }
        bail!(
            "the host's Docker daemon is already in a Swarm (state {state}, address {addr}); a worker in a network namespace cannot reach a manager advertising that, so this test makes its own: run `docker swarm leave --force` first"
        )
    }

    /// Starts the worker's dockerd and waits until it answers.
    fn start_worker_daemon(&mut self) -> anyhow::Result<()> {
        let d = &self.dir;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("dockerd.log"))?;
        let script = format!(
            "hostname {host} && exec nsenter --net=/var/run/netns/{ns} dockerd --data-root {dir}/data --exec-root {dir}/exec -H {sock} --pidfile {dir}/docker.pid",
            host = self.worker_hostname,
            ns = self.netns,
            dir = d.display(),
            sock = self.worker_host,
        );
        let child = Command::new("unshare")
            .args(["--uts", "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start the worker's dockerd")?;
        self.worker = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while run(
            "docker",
            &["-H", &self.worker_host, "info", "--format", "{{.ID}}"],
        )
        .is_err()
        {
            if let Some(c) = self.worker.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                bail!(
                    "the worker's dockerd exited ({status}): {}",
                    self.worker_log()
                );
            }
            if Instant::now() > deadline {
                bail!("the worker's dockerd did not start: {}", self.worker_log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// Waits until `count` nodes are Ready.
    pub fn wait_ready(&self, count: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let ready = run("docker", &["node", "ls", "--format", "{{.Status}}"])?;
            if ready.lines().filter(|l| l.trim() == "Ready").count() >= count {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{count} nodes did not become Ready: {ready}");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Stops the worker's daemon (its containers stop with it), as a node failure.
    pub fn stop_worker(&mut self) {
        stop_daemon(&self.dir.join("docker.pid"), Duration::from_secs(30));
        if let Some(mut c) = self.worker.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the worker's daemon again (it rejoins the Swarm by itself) and waits until
    /// both nodes are Ready.
    pub fn start_worker(&mut self) -> anyhow::Result<()> {
        if self.worker.is_some() {
            return Ok(());
        }
        self.start_worker_daemon()?;
        self.wait_ready(2, Duration::from_secs(60))
    }

    /// Registers a service to remove at teardown.
    pub fn track_service(&self, name: &str) {
        if let Ok(mut s) = self.services.lock() {
            s.push(name.to_string());
        }
    }

    /// The worker daemon's log, for failure messages.
    pub fn worker_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// Relays the namespace's `127.0.0.1:<registry port>` to the test registry.
    fn relay_registry(&self) -> anyhow::Result<()> {
        let registry: SocketAddr = self
            .registry
            .parse()
            .context("the test registry is not an IP:port")?;
        let ns = std::fs::File::open(format!("/var/run/netns/{}", self.netns))?;
        let port = registry.port();
        let (tx, rx) = std::sync::mpsc::channel();
        // A socket stays in the namespace it was made in: a short-lived thread enters the
        // namespace, makes the listener, and hands it back.
        std::thread::spawn(move || {
            let made = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| anyhow::anyhow!("setns: {e}"))
                .and_then(|()| TcpListener::bind(("127.0.0.1", port)).map_err(anyhow::Error::from));
            let _ = tx.send(made);
        });
        let inside = rx.recv()??;
        relay(inside, registry, self.stop.clone());
        Ok(())
    }
}

/// Accepts on `listener` until `stop`, and relays each connection to `to` (connected from
/// this thread's namespace: the host's).
fn relay(listener: TcpListener, to: SocketAddr, stop: Arc<AtomicBool>) {
    let _ = listener.set_nonblocking(true);
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok((client, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            let _ = client.set_nonblocking(false);
            let Ok(upstream) = TcpStream::connect_timeout(&to, Duration::from_secs(5)) else {
                continue;
            };
            for (a, b) in [(&client, &upstream), (&upstream, &client)] {
                let (Ok(mut from), Ok(mut into)) = (a.try_clone(), b.try_clone()) else {
                    continue;
                };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || into.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = into.shutdown(Shutdown::Write);
                });
            }
        }
    });
}

impl Drop for TwoNodeSwarm {
    fn drop(&mut self) {
        let services = self.services.lock().map(|s| s.clone()).unwrap_or_default();
        for s in services {
            quietly("docker", &["service", "rm", &s]);
        }
        if self.worker.is_some() {
            quietly(
                "docker",
                &["-H", &self.worker_host, "swarm", "leave", "--force"],
            );
        }
        self.stop_worker();
        if self.initialised {
            quietly("docker", &["swarm", "leave", "--force"]);
        }
        self.stop.store(true, Ordering::Relaxed);
        unmount_under(&self.dir);
        quietly("ip", &["netns", "del", &self.netns]);
        quietly("ip", &["link", "del", &self.veth]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
