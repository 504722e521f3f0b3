//! The test image kit: `slipway-testsrv` linked statically and packaged `FROM scratch`, built
//! once per test run (nothing can be pulled on these machines), plus Docker availability
//! checks that fail instead of skipping under `CI=true`.

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Port the test image listens on unless `--port` is given (the seed's containerPort).
pub const TEST_IMAGE_PORT: u16 = 12345;

/// True when a Docker daemon answers. Under `CI=true` a missing daemon is a test failure,
/// so callers write `let Some(()) = testkit::docker() else { return };`.
pub fn docker() -> Option<()> {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(());
    }
    assert!(
        !crate::strict(),
        "Docker is required under CI=true but `docker info` fails: run scripts/test, which installs and starts dockerd"
    );
    eprintln!("skipping: no Docker daemon (run scripts/test to install and start one)");
    None
}

/// Builds `slipway-testsrv` as a static binary (own target dir, so the main build cache is
/// not invalidated by RUSTFLAGS) and returns its path.
pub fn static_testsrv() -> anyhow::Result<PathBuf> {
    let target = crate::target_dir()
        .parent()
        .map(|p| p.join("static"))
        .context("no target dir")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "-q",
            "--release",
            "-p",
            "testkit",
            "--bin",
            "slipway-testsrv",
            "--target",
            "x86_64-unknown-linux-gnu",
            "--target-dir",
        ])
        .arg(&target)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("static build of slipway-testsrv failed");
    }
    Ok(target.join("x86_64-unknown-linux-gnu/release/slipway-testsrv"))
}

/// Builds (once per process) the local image `slipway-testsrv:<tag>` FROM scratch. The image
/// listens on [`TEST_IMAGE_PORT`], has a HEALTHCHECK-free config (health comes from the
/// orchestrator), and reports `VERSION=<tag>` on `/`.
pub fn test_image(tag: &str) -> anyhow::Result<String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let bin = BIN
        .get_or_init(|| static_testsrv().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)?;
    let name = format!("slipway-testsrv:{tag}");
    let dir = tempfile::tempdir()?;
    std::fs::copy(&bin, dir.path().join("testsrv"))?;
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM scratch\nCOPY testsrv /testsrv\nENV TESTSRV_PORT={TEST_IMAGE_PORT} VERSION={tag}\nEXPOSE {TEST_IMAGE_PORT}\nENTRYPOINT [\"/testsrv\"]\n"
        ),
    )?;
    let out = Command::new("docker")
        .args(["build", "-q", "-t", &name])
        .arg(dir.path())
        .output()?;
    if !out.status.success() {
        bail!(
            "docker build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(name)
}

/// Tags and pushes a local image to the test registry (`127.0.0.1:5000`), returning the
/// registry reference.
pub fn push_to_registry(local: &str, repo_tag: &str) -> anyhow::Result<String> {
    let remote = format!("{}/{repo_tag}", registry());
    for args in [vec!["tag", local, &remote], vec!["push", &remote]] {
        let out = Command::new("docker").args(&args).output()?;
        if !out.status.success() {
            bail!(
                "docker {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(remote)
}

/// The test registry address (`SLIPWAY_TEST_REGISTRY`, default `127.0.0.1:5000`).
pub fn registry() -> String {
    std::env::var("SLIPWAY_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into())
}

/// True when the test registry answers `/v2/`; like [`docker`], fails under `CI=true`.
pub fn registry_up() -> Option<()> {
    let ok = crate::http_get(&format!("http://{}/v2/", registry()))
        .is_ok_and(|(s, _)| s == 200 || s == 401);
    if ok {
        return Some(());
    }
    assert!(
        !crate::strict(),
        "the test registry at {} is required under CI=true: run scripts/test",
        registry()
    );
    eprintln!("skipping: no registry at {}", registry());
    None
}

/// Containers carrying `slipway.agent=<agent_id>`: (container id, task id, running).
pub fn slipway_containers(agent_id: &str) -> Vec<(String, String, bool)> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label=slipway.agent={agent_id}"),
            "--format",
            "{{.ID}} {{.Label \"slipway.task\"}} {{.State}}",
        ])
        .output();
    let Ok(out) = out else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            Some((
                p.next()?.to_string(),
                p.next()?.to_string(),
                p.next()? == "running",
            ))
        })
        .collect()
}

/// Removes every container and network labelled with `agent_id` (test cleanup).
pub fn remove_slipway_containers(agent_id: &str) {
    let ids: Vec<String> = slipway_containers(agent_id)
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .arg("rm")
            .arg("-f")
            .args(&ids)
            .output();
    }
}

/// Kills dockerd with SIGKILL and starts it again, waiting until it answers. Used by the
/// daemon-restart tests (which run alone in the `docker` test group).
pub fn restart_dockerd() -> anyhow::Result<()> {
    let _ = Command::new("pkill")
        .args(["-KILL", "-x", "dockerd"])
        .status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while Command::new("pgrep")
        .args(["-x", "dockerd"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        if std::time::Instant::now() > deadline {
            bail!("dockerd did not die");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    settle_containerd()?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(
        crate::target_dir()
            .parent()
            .context("no target dir")?
            .join("dockerd.log"),
    )?;
    Command::new("setsid")
        .arg("dockerd")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start dockerd")?;
    crate::wait_for(
        "dockerd to answer",
        std::time::Duration::from_secs(60),
        || {
            Command::new("docker")
                .arg("info")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|_| ())
        },
    )
}

/// Makes sure dockerd's own containerd is gone before dockerd starts again. It dies with
/// dockerd (parent-death signal) but may still be exiting, or be an unreaped zombie, when
/// the new dockerd reads its pid file: dockerd then takes it for running, waits for a
/// socket that never comes and gives up with "timeout waiting for containerd to start".
fn settle_containerd() -> anyhow::Result<()> {
    const PID_FILE: &str = "/var/run/docker/containerd/containerd.pid";
    let Some(pid) = std::fs::read_to_string(PID_FILE)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|pid| *pid > 1)
    else {
        return Ok(());
    };
    // Alive and not a zombie, and still containerd (the pid may have been reused).
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.contains("(containerd)")
                && stat
                    .rsplit(')')
                    .next()
                    .and_then(|rest| rest.split_whitespace().next())
                    .is_some_and(|state| state != "Z" && state != "X")
        })
    };
    if running() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    crate::wait_for(
        "dockerd's containerd to exit",
        std::time::Duration::from_secs(30),
        || (!running()).then_some(()),
    )?;
    match std::fs::remove_file(PID_FILE) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).context("cannot remove containerd's pid file")
        }
        _ => Ok(()),
    }
}

/// Stops the unauthenticated test registry (port 5000), for outage tests.
pub fn stop_registry() {
    let _ = Command::new("pkill")
        .args(["-f", "docker-registry serve .*scripts/registry.yml"])
        .status();
    let _ = crate::wait_for(
        "the registry to stop",
        std::time::Duration::from_secs(10),
        || {
            crate::http_get(&format!("http://{}/v2/", registry()))
                .is_err()
                .then_some(())
        },
    );
}

/// Starts the unauthenticated test registry again.
pub fn start_registry() -> anyhow::Result<()> {
    let root = crate::target_dir()
        .parent()
        .and_then(|t| t.parent())
        .context("no workspace dir")?
        .to_path_buf();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("target/registry-5000.log"))?;
    Command::new("setsid")
        .args(["docker-registry", "serve"])
        .arg(root.join("scripts/registry.yml"))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start docker-registry")?;
    crate::wait_for("the registry", std::time::Duration::from_secs(30), || {
        crate::http_get(&format!("http://{}/v2/", registry()))
            .ok()
            .map(|_| ())
    })
}

/// Pushes a local image to a registry that needs basic auth, with a throw-away Docker CLI
/// config (the machine's `~/.docker/config.json` is left alone).
pub fn push_with_auth(
    local: &str,
    registry: &str,
    repo_tag: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<String> {
    let remote = format!("{registry}/{repo_tag}");
    let cfg = tempfile::tempdir()?;
    let run = |args: &[&str], stdin: Option<&str>| -> anyhow::Result<()> {
        use std::io::Write;
        let mut child = Command::new("docker")
            .args(args)
            .env("DOCKER_CONFIG", cfg.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        if let (Some(input), Some(mut s)) = (stdin, child.stdin.take()) {
            s.write_all(input.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "docker {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    run(
        &["login", registry, "-u", user, "--password-stdin"],
        Some(password),
    )?;
    run(&["tag", local, &remote], None)?;
    run(&["push", &remote], None)?;
    let _ = Command::new("docker").args(["rmi", &remote]).output();
    Ok(remote)
}

/// A Docker `config.json` document with basic-auth credentials for one registry.
pub fn docker_config_json(registry: &str, user: &str, password: &str) -> String {
    let b64 = crate::git_http::base64(&format!("{user}:{password}"));
    format!("{{\"auths\":{{\"{registry}\":{{\"auth\":\"{b64}\"}}}}}}")
}
