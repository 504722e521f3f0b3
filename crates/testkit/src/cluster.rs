//! A two-node Docker Swarm on this one machine, built and torn down by a test.
//!
//! The second node is a second `dockerd` in a network namespace the guard makes, joined to
//! the host over a veth pair with a private /30 (`10.231.N.1` on the host, `.2` in the
//! namespace). The host's daemon becomes the manager, advertising the host end of the
//! veth (a manager advertising 127.0.0.1 cannot be reached from the namespace); the second
//! daemon joins as a worker. Traffic stays on loopback and on the veth.
//!
//! Images: both nodes pull `127.0.0.1:5000/…` from the test registry. On the host that is
//! the registry itself; in the namespace, a forwarder thread listens on the namespace's
//! `127.0.0.1:5000` and connects through the veth to a second forwarder on the host end,
//! which connects to the registry. (Loopback registries need no TLS, so no daemon
//! configuration changes.)
//!
//! Everything is removed on drop, also when the test panics: the worker leaves and its
//! daemon stops, the manager leaves the Swarm (when the guard made it a manager), the
//! forwarders stop, and the namespace and veth are deleted.

use anyhow::{Context, bail};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The guard of a two-node Swarm.
pub struct TwoNodeSwarm {
    /// The manager's (this host's) address on the veth.
    pub manager_addr: String,
    /// The worker's address (inside the namespace).
    pub worker_addr: String,
    /// The worker daemon's API socket (`unix:///…`).
    pub worker_host: String,
    netns: String,
    veth: String,
    dir: tempfile::TempDir,
    worker: Option<Child>,
    stop: Arc<AtomicBool>,
}

fn run(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .args(args)
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

impl TwoNodeSwarm {
    /// Builds it: namespace, veth, worker daemon, Swarm, registry forwarders. Fails when
    /// the host daemon is already in a Swarm (this guard would not own it).
    pub fn start() -> anyhow::Result<TwoNodeSwarm> {
        let state = run("docker", &["info", "--format", "{{.Swarm.LocalNodeState}}"])?;
        if state.trim() != "inactive" {
            bail!(
                "the host's Docker daemon is already in a Swarm ({})",
                state.trim()
            );
        }
        let n = std::process::id() % 200 + 20;
        let netns = format!("slwswarm{n}");
        let veth = format!("slwh{n}");
        let peer = format!("slwn{n}");
        let manager_addr = format!("10.231.{n}.1");
        let worker_addr = format!("10.231.{n}.2");
        let dir = tempfile::tempdir()?;
        let worker_host = format!("unix://{}/docker.sock", dir.path().display());
        let mut me = TwoNodeSwarm {
            manager_addr: manager_addr.clone(),
            worker_addr: worker_addr.clone(),
            worker_host,
            netns: netns.clone(),
            veth: veth.clone(),
            dir,
            worker: None,
            stop: Arc::new(AtomicBool::new(false)),
        };
        // From here on, Drop tears down whatever was made.
        run("ip", &["netns", "add", &netns])?;
        run(
            "ip",
            &["link", "add", &veth, "type", "veth", "peer", "name", &peer],
        )?;
        run("ip", &["link", "set", &peer, "netns", &netns])?;
        run(
            "ip",
            &["addr", "add", &format!("{manager_addr}/30"), "dev", &veth],
        )?;
        run("ip", &["link", "set", &veth, "up"])?;
        run(
            "ip",
            &[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{worker_addr}/30"),
                "dev",
                &peer,
            ],
        )?;
        run("ip", &["-n", &netns, "link", "set", &peer, "up"])?;
        run("ip", &["-n", &netns, "link", "set", "lo", "up"])?;
        me.start_worker()?;
        run(
            "docker",
            &[
                "swarm",
                "init",
                "--advertise-addr",
                &manager_addr,
                "--listen-addr",
                &format!("{manager_addr}:2377"),
            ],
        )?;
        let token = run("docker", &["swarm", "join-token", "-q", "worker"])?;
        run(
            "docker",
            &[
                "-H",
                &me.worker_host,
                "swarm",
                "join",
                "--token",
                token.trim(),
                "--advertise-addr",
                &worker_addr,
                &format!("{manager_addr}:2377"),
            ],
        )?;
        me.forward_registry()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = run("docker", &["node", "ls", "--format", "{{.Status}}"])?;
            if ready.lines().filter(|l| l.trim() == "Ready").count() == 2 {
                break;
            }
            if Instant::now() > deadline {
                bail!("the two nodes did not become Ready: {ready}");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(me)
    }

    /// Starts the worker's daemon (again) and waits until it answers.
    pub fn start_worker(&mut self) -> anyhow::Result<()> {
        let d = self.dir.path();
        let log = std::fs::File::create(d.join("dockerd.log"))?;
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.netns))
            .arg("dockerd")
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("-H")
            .arg(&self.worker_host)
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start the worker's dockerd")?;
        self.worker = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while run("docker", &["-H", &self.worker_host, "info"]).is_err() {
            if Instant::now() > deadline {
                bail!("the worker's dockerd did not start: {}", self.worker_log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// Stops the worker's daemon (its containers stop with it), as a node failure.
    pub fn stop_worker(&mut self) {
        if let Some(mut c) = self.worker.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The worker daemon's log, for failure messages.
    pub fn worker_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// Forwards `127.0.0.1:5000` inside the namespace to the test registry on the host.
    fn forward_registry(&self) -> anyhow::Result<()> {
        let registry: SocketAddr = crate::image::registry()
            .parse()
            .context("the test registry is not an IP:port")?;
        let port = registry.port();
        // Host end: the veth address → the registry.
        let host_side = TcpListener::bind((self.manager_addr.as_str(), port))
            .context("cannot listen on the host end of the veth")?;
        forward(host_side, registry, self.stop.clone());
        // Namespace end: 127.0.0.1 there → the host end. The listener is made by a thread
        // that entered the namespace; its socket stays there.
        let ns = std::fs::File::open(format!("/var/run/netns/{}", self.netns))?;
        let target: SocketAddr = format!("{}:{port}", self.manager_addr).parse()?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let made = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| anyhow::anyhow!("setns: {e}"))
                .and_then(|()| TcpListener::bind(("127.0.0.1", port)).map_err(anyhow::Error::from));
            let _ = tx.send(made);
        });
        let inside = rx.recv()??;
        forward(inside, target, self.stop.clone());
        Ok(())
    }
}

/// Accepts on `listener` and relays each connection to `to`, until `stop`. (The relaying
/// threads are in the host's namespace; for the namespace end, `to` is the host end of the
/// veth, a local address here.)
fn forward(listener: TcpListener, to: SocketAddr, stop: Arc<AtomicBool>) {
    let _ = listener.set_nonblocking(true);
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((client, _)) => {
                    let _ = client.set_nonblocking(false);
                    let Ok(upstream) = TcpStream::connect_timeout(&to, Duration::from_secs(5))
                    else {
                        continue;
                    };
                    for (mut a, mut b) in [
                        (client.try_clone(), upstream.try_clone()),
                        (upstream.try_clone(), client.try_clone()),
                    ]
                    .into_iter()
                    .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                    {
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 16 * 1024];
                            loop {
                                match a.read(&mut buf) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => {
                                        if b.write_all(&buf[..n]).is_err() {
                                            break;
                                        }
                                    }
                                }
                            }
                            let _ = b.shutdown(Shutdown::Write);
                        });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    });
}

impl Drop for TwoNodeSwarm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if self.worker.is_some() {
            let _ = Command::new("timeout")
                .args([
                    "20",
                    "docker",
                    "-H",
                    &self.worker_host,
                    "swarm",
                    "leave",
                    "--force",
                ])
                .output();
        }
        self.stop_worker();
        let _ = Command::new("docker")
            .args(["swarm", "leave", "--force"])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
        // The worker's data root holds overlay mounts until its daemon is gone.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("exec"))
            .stderr(Stdio::null())
            .output();
    }
}
