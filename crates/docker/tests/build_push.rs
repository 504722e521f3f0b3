//! Building an image through the Engine API from a context directory and pushing it to
//! the test registry: the digest the push reports is the one the registry serves.

mod common;

use common::{Scope, unique};
use std::io::{Read, Write};

/// `Docker-Content-Digest` of a manifest in the test registry.
fn registry_digest(repo: &str, tag: &str) -> Option<String> {
    let registry = testkit::registry();
    let mut s = std::net::TcpStream::connect(&registry).ok()?;
    write!(
        s,
        "HEAD /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {registry}\r\nAccept: application/vnd.docker.distribution.manifest.v2+json\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = String::new();
    s.read_to_string(&mut head).ok()?;
    head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .starts_with("docker-content-digest:")
            .then(|| l[22..].trim().to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_is_built_from_a_context_and_pushed_with_its_digest() {
    let Some((mut scope, d)) = Scope::new("build").await else {
        return;
    };
    testkit::registry_up().expect("the test registry");
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy(
        testkit::static_testsrv().unwrap(),
        ctx.path().join("testsrv"),
    )
    .unwrap();
    std::fs::write(ctx.path().join("Dockerfile.app"), "FROM scratch\nCOPY testsrv /testsrv\nENV TESTSRV_PORT=12345 VERSION=built\nENTRYPOINT [\"/testsrv\"]\n").unwrap();
    let repo = format!("slipway-build-test-{}", unique("r"));
    let reference = format!("{}/{repo}:v1", testkit::registry());
    let extra = format!("{}/{repo}:latest", testkit::registry());
    let lines = std::sync::Mutex::new(Vec::new());
    let log = |l: String| lines.lock().unwrap().push(l);
    let pushed = d
        .build_and_push(
            ctx.path(),
            "Dockerfile.app",
            &reference,
            std::slice::from_ref(&extra),
            None,
            &log,
        )
        .await
        .expect("build and push");
    scope.images.push(reference.clone());
    scope.images.push(extra.clone());
    assert!(pushed.digest.starts_with("sha256:"), "{pushed:?}");
    assert!(!pushed.image_id.is_empty());
    let lines = lines.into_inner().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("COPY testsrv /testsrv")),
        "{lines:?}"
    );
    let served = tokio::task::spawn_blocking(move || {
        (
            registry_digest(&repo, "v1"),
            registry_digest(&repo, "latest"),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        served.0.as_deref(),
        Some(pushed.digest.as_str()),
        "the registry serves the pushed digest"
    );
    assert_eq!(
        served.1.as_deref(),
        Some(pushed.digest.as_str()),
        "the extra tag is the same image"
    );

    // A broken Dockerfile is a clear error.
    std::fs::write(
        ctx.path().join("Dockerfile.bad"),
        "FROM scratch\nCOPY missing-file /x\n",
    )
    .unwrap();
    let err = d
        .build_and_push(
            ctx.path(),
            "Dockerfile.bad",
            &format!("{}/{}:bad", testkit::registry(), unique("bad")),
            &[],
            None,
            &|_| {},
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing-file"), "{err}");
}
