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
