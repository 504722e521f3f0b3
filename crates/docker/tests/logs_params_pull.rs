//! Log following into the sandbox (resumable without duplicates), `docker run` parameters,
//! volumes, and image pulls from the test registry.

mod common;

use common::{Scope, eventually, inspect, unique};
use docker::{DockerError, SINCE_FILE, VolumeSpec};
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_logs_writes_the_sandbox_and_resumes_without_duplicates() {
    let Some((scope, d)) = Scope::new("logs").await else {
        return;
    };
    let sandbox = tempfile::tempdir().expect("sandbox");
    let spec = scope.spec("logger");
    let started = d.launch(&spec).await.expect("launch");
    let follower = {
        let (d, id, dir) = (
            d.clone(),
            started.container_id.clone(),
            sandbox.path().to_path_buf(),
        );
        tokio::spawn(async move { d.follow_logs(&id, &dir).await })
    };
    let stdout = sandbox.path().join("stdout");
    let path = stdout.clone();
    eventually("the startup line in sandbox/stdout", move || {
        let text = std::fs::read_to_string(&path).ok()?;
        text.contains("slipway-testsrv listening on").then_some(())
    })
    .await;
    d.signal(&started.container_id, "SIGKILL")
        .await
        .expect("kill");
    follower
        .await
        .expect("join")
        .expect("the follower ends with the container");

    let first = std::fs::read_to_string(&stdout).expect("stdout");
    assert_eq!(first.matches("listening on").count(), 1, "{first:?}");
    assert!(
        first.starts_with("slipway-testsrv"),
        "timestamps are stripped: {first:?}"
    );
    let since = std::fs::read_to_string(sandbox.path().join(SINCE_FILE)).expect("checkpoint");
    assert!(since.trim().ends_with('Z'), "{since:?}");

    // A second follower (a restarted server) repeats nothing.
    d.follow_logs(&started.container_id, sandbox.path())
        .await
        .expect("second follow");
    assert_eq!(std::fs::read_to_string(&stdout).expect("stdout"), first);

    // Without the checkpoint the line would come again: the checkpoint is what prevents it.
    std::fs::remove_file(sandbox.path().join(SINCE_FILE)).expect("remove checkpoint");
    d.follow_logs(&started.container_id, sandbox.path())
        .await
        .expect("third follow");
    let third = std::fs::read_to_string(&stdout).expect("stdout");
    assert_eq!(third.matches("listening on").count(), 2, "{third:?}");

    // stderr goes to its own file.
    let mut failing = scope.spec("stderr");
    failing.args = Some(vec!["--host".into(), "203.0.113.7".into()]);
    let started = d.launch(&failing).await.expect("launch");
    let dir = tempfile::tempdir().expect("sandbox");
    d.follow_logs(&started.container_id, dir.path())
        .await
        .expect("follow");
    let err = std::fs::read_to_string(dir.path().join("stderr")).expect("stderr");
    assert!(err.contains("cannot listen on 203.0.113.7"), "{err:?}");
    let out = std::fs::read_to_string(dir.path().join("stdout")).expect("stdout");
    assert!(out.is_empty(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_and_volumes_reach_the_container() {
    let Some((scope, d)) = Scope::new("params").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("host dir");
    let rw = dir.path().join("missing/rw");
    let mut spec = scope.spec("params");
    spec.parameters = [
        ("ulimit", "nofile=1024:2048"),
        ("add-host", "db.local:10.1.2.3"),
        ("label", "team=core"),
        ("env", "EXTRA=1"),
        ("memory-reservation", "32m"),
        ("shm-size", "1g"),
        ("init", "true"),
        ("tmpfs", "/scratch:size=1m"),
        ("workdir", "/"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    spec.volumes = vec![
        VolumeSpec {
            host_path: rw.clone(),
            container_path: "/data".into(),
            read_only: false,
        },
        VolumeSpec {
            host_path: dir.path().into(),
            container_path: "/conf".into(),
            read_only: true,
        },
    ];
    let started = d.launch(&spec).await.expect("launch with parameters");
    assert!(rw.is_dir(), "missing read-write host dirs are created");
    let info = inspect("container", &started.container_id).expect("inspect");
    let host = &info["HostConfig"];
    assert_eq!(host["Ulimits"][0]["Name"], "nofile");
    assert_eq!(host["Ulimits"][0]["Soft"], 1024);
    assert_eq!(host["Ulimits"][0]["Hard"], 2048);
    assert_eq!(host["ExtraHosts"][0], "db.local:10.1.2.3");
    assert_eq!(host["MemoryReservation"], 32 * 1024 * 1024);
    assert_eq!(host["ShmSize"], 1024 * 1024 * 1024);
    assert_eq!(host["Init"], true);
    assert_eq!(host["Tmpfs"]["/scratch"], "size=1m");
    let binds: Vec<String> = serde_json::from_value(host["Binds"].clone()).expect("binds");
    assert!(
        binds.contains(&format!("{}:/data:rw", rw.display())),
        "{binds:?}"
    );
    assert!(
        binds.contains(&format!("{}:/conf:ro", dir.path().display())),
        "{binds:?}"
    );
    assert_eq!(info["Config"]["Labels"]["team"], "core");
    assert_eq!(
        info["Config"]["Labels"]["slipway.agent"],
        scope.agent.as_str()
    );
    let env = info["Config"]["Env"].to_string();
    assert!(env.contains("EXTRA=1"), "{env}");

    let mut bad = scope.spec("bad");
    bad.parameters = vec![("memory-swap".into(), "lots".into())];
    let err = d.launch(&bad).await.expect_err("invalid size");
    assert!(
        matches!(&err, DockerError::InvalidParameter { key, reason } if key == "memory-swap" && reason.contains("512m")),
        "{err}"
    );
    bad.parameters = vec![("publish".into(), "80:80".into())];
    let err = d.launch(&bad).await.expect_err("unsupported key");
    assert!(
        err.to_string()
            .starts_with("invalid docker parameter publish: unsupported"),
        "{err}"
    );
    bad.parameters = vec![("network-alias".into(), "x".into())];
    let err = d
        .launch(&bad)
        .await
        .expect_err("alias on the default bridge");
    assert!(
        matches!(&err, DockerError::InvalidParameter { key, .. } if key == "network-alias"),
        "{err}"
    );
    let left = d.list_tasks().await.expect("list");
    assert_eq!(left.len(), 1, "invalid specs create nothing: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_pulled_from_the_registry() {
    let Some((mut scope, d)) = Scope::new("pull").await else {
        return;
    };
    let Some(()) = testkit::registry_up() else {
        return;
    };
    let tag = unique("t");
    let remote = testkit::push_to_registry(&common::image(), &format!("slipway-docker-test:{tag}"))
        .expect("push to the test registry");
    scope.images.push(remote.clone());
    let rmi = Command::new("docker")
        .args(["rmi", &remote])
        .output()
        .expect("docker rmi");
    assert!(
        rmi.status.success(),
        "{}",
        String::from_utf8_lossy(&rmi.stderr)
    );
    assert!(
        inspect("image", &remote).is_none(),
        "the image is gone locally"
    );

    // Missing locally: pulled without force.
    let mut spec = scope.spec("pulled");
    spec.image = remote.clone();
    let started = d.launch(&spec).await.expect("launch pulls the image");
    assert!(inspect("image", &remote).is_some(), "the image was pulled");
    d.remove(&started.container_id).await.expect("remove");

    // Present locally: pulled again when forced (a tag that moved would be updated).
    let mut forced = scope.spec("forced");
    forced.image = remote.clone();
    forced.force_pull = true;
    d.launch(&forced).await.expect("forced pull");

    // Unknown tag: a pull error with the registry's message, and no container.
    let mut missing = scope.spec("missing");
    missing.image = format!("{}/slipway-docker-test:no-such-{tag}", testkit::registry());
    missing.force_pull = true;
    let err = d.launch(&missing).await.expect_err("unknown tag");
    match &err {
        DockerError::Pull { image, reason } => {
            assert_eq!(image, &missing.image);
            assert!(
                reason.contains("not found") || reason.contains("unknown"),
                "{reason}"
            );
        }
        other => panic!("expected a pull error, got {other}"),
    }
    assert!(err.to_string().starts_with("cannot pull image"), "{err}");

    // Unreachable registry.
    missing.image = "127.0.0.1:1/nothing:here".into();
    let err = d.launch(&missing).await.expect_err("no registry there");
    assert!(
        matches!(&err, DockerError::Pull { reason, .. } if reason.contains("127.0.0.1:1")),
        "{err}"
    );
    let tasks = d.list_tasks().await.expect("list");
    assert_eq!(tasks.len(), 1, "{tasks:?}");
}
