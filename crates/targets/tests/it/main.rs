//! The Marathon client against a real second Slipway (`slipway up` with authentication on):
//! deploy, wait, read back, and the remote's own errors (422 with field paths, 401 without
//! the secret in it).

use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use targets::{ClientError, Credentials, DeploymentOutcome, MarathonClient, TargetSpec, Targets};
use testkit::SlipwayProcess;

/// The `slipway` binary: `$SLIPWAY_BIN`, else next to this test's target directory, built
/// once if missing.
fn slipway_bin() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(p) = std::env::var_os("SLIPWAY_BIN") {
            return PathBuf::from(p);
        }
        let path = testkit::target_dir().join("slipway");
        if !path.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "-q", "-p", "slipway", "--bin", "slipway"])
                .status();
            assert!(
                matches!(status, Ok(s) if s.success()) && path.exists(),
                "cannot build slipway ({status:?})"
            );
        }
        path
    })
    .clone()
}

/// The remote datacenter: a Slipway with authentication on and a deployer `bb-deploy`
/// whose password is [`PASSWORD`].
struct Remote {
    server: SlipwayProcess,
    _dir: tempfile::TempDir,
}

const USER: &str = "bb-deploy";
const PASSWORD: &str = "bb-deploy-password-7f3a";

fn remote() -> Remote {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = SlipwayProcess::start(&slipway_bin(), dir.path(), &["--metrics", "off"])
        .expect("the remote slipway starts");
    let user = json!({"name": USER, "role": "deployer", "password": PASSWORD});
    let (status, body) =
        testkit::http("POST", &format!("{}/api/v1/users", server.url), Some(&user))
            .expect("create the deployer");
    assert_eq!(status, 201, "{body}");
    Remote { server, _dir: dir }
}

impl Remote {
    /// This side's view of the remote: target BB in the seed's set of datacenters.
    fn client(&self, secret: &str) -> MarathonClient {
        let targets = Targets::new(
            [
                "AA=local".to_string(),
                format!("BB=marathon:{}?secret=bb-creds", self.server.url),
            ]
            .iter()
            .map(|s| TargetSpec::parse(s).expect("spec")),
        )
        .expect("targets");
        let bb = targets.for_app("/BB/qa/web");
        assert_eq!(bb.name, "BB");
        MarathonClient::for_target(bb, Some(Credentials::from_secret(secret)))
            .expect("client")
            .with_poll_interval(Duration::from_millis(200))
    }
}

/// Runs a future to completion on a runtime of its own.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// An app running `slipway-testsrv` with an HTTP health check.
fn web_app(id: &str, instances: u32, version: &str) -> Value {
    json!({
        "id": id,
        "cmd": testkit::testsrv().to_string_lossy(),
        "instances": instances,
        "cpus": 0.05,
        "mem": 32,
        "env": {"VERSION": version},
        "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0,
                          "intervalSeconds": 1, "timeoutSeconds": 1, "gracePeriodSeconds": 30,
                          "maxConsecutiveFailures": 3}],
        "taskKillGracePeriodSeconds": 1,
    })
}

#[test]
fn a_process_app_is_deployed_waited_for_and_read_back_with_basic_auth() {
    let remote = remote();
    let bb = remote.client(&format!("{USER}:{PASSWORD}"));
    block_on(async {
        let dep = bb
            .put_app("/BB/qa/web", &web_app("/BB/qa/web", 2, "1"), false)
            .await
            .expect("put");
        assert_eq!(dep.app, "/BB/qa/web");
        let outcome = bb
            .wait_deployment(&dep, Duration::from_secs(60))
            .await
            .expect("wait");
        assert_eq!(outcome, DeploymentOutcome::Succeeded);
        assert!(bb.deployment_done(&dep.id).await.expect("deployments"));

        let app = bb
            .get_app("/BB/qa/web")
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(
            (app.instances, app.tasks_healthy),
            (2, 2),
            "{:?}",
            app.definition
        );
        assert!(
            app.is_at(&dep.version),
            "{:?} vs {}",
            app.version,
            dep.version
        );
        assert_eq!(app.definition["env"]["VERSION"], "1");
        assert_eq!(app.image, None, "a command app runs no image");

        let tasks = bb.tasks("/BB/qa/web").await.expect("tasks");
        assert_eq!(tasks.len(), 2);
        for t in &tasks {
            assert_eq!(t.state, "TASK_RUNNING");
            assert_eq!(t.healthy, Some(true));
            let port = *t.ports.first().expect("a host port");
            let (code, body) =
                testkit::http_get(&format!("http://127.0.0.1:{port}/")).expect("the task answers");
            assert_eq!(code, 200);
            assert!(body.contains("version=1"), "{body}");
        }

        // Read back, changed and sent again: read-only fields are left out.
        let mut def = app.definition.clone();
        def["env"]["VERSION"] = json!("2");
        let dep2 = bb.put_app("/BB/qa/web", &def, false).await.expect("put v2");
        assert_ne!(dep2.version, dep.version);
        assert_eq!(
            bb.wait_deployment(&dep2, Duration::from_secs(60))
                .await
                .expect("wait v2"),
            DeploymentOutcome::Succeeded
        );

        let listed = bb.list_apps("/BB").await.expect("list");
        assert_eq!(
            listed.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["/BB/qa/web"]
        );
        // Old tasks may still be listed while they stop (the deployment ends once they are
        // being killed, Marathon's rule); the new version runs twice.
        let new_tasks = listed[0]
            .tasks
            .iter()
            .filter(|t| t.version.as_deref() == Some(dep2.version.as_str()))
            .filter(|t| t.state == "TASK_RUNNING")
            .count();
        assert_eq!(new_tasks, 2, "{:?}", listed[0].tasks);
        assert!(bb.list_apps("/B").await.expect("list /B").is_empty());

        let gone = bb.delete_app("/BB/qa/web", true).await.expect("delete");
        assert!(gone.is_some());
        assert!(bb.get_app("/BB/qa/web").await.expect("get").is_none());
        assert!(
            bb.delete_app("/BB/qa/web", true)
                .await
                .expect("delete")
                .is_none()
        );
    });
}

#[test]
fn a_bearer_token_works_and_the_image_of_a_container_app_is_read() {
    let remote = remote();
    let bb = remote.client(testkit::ADMIN_TOKEN);
    block_on(async {
        // No instances: nothing is pulled, and the deployment ends at once.
        let image = "127.0.0.1:5000/orders@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let def = json!({"id": "/BB/qa/orders", "instances": 0, "cpus": 0.1, "mem": 32,
                         "container": {"type": "DOCKER", "docker": {"image": image}}});
        let dep = bb
            .put_app_json("/BB/qa/orders", def.to_string().as_bytes(), false)
            .await
            .expect("put");
        assert_eq!(
            bb.wait_deployment(&dep, Duration::from_secs(30))
                .await
                .expect("wait"),
            DeploymentOutcome::Succeeded
        );
        let running = bb.running_image("/BB/qa/orders").await.expect("image");
        assert_eq!(running.as_deref(), Some(image));
        assert_eq!(
            running.as_deref().and_then(targets::image_digest),
            targets::image_digest(image)
        );
        let missing = bb.running_image("/BB/qa/nothing").await.unwrap_err();
        assert_eq!(missing.status(), Some(404), "{missing}");
    });
}

#[test]
fn a_bad_definition_is_the_remotes_422_with_field_paths() {
    let remote = remote();
    let bb = remote.client(&format!("{USER}:{PASSWORD}"));
    block_on(async {
        let mut def = web_app("/BB/qa/bad", 1, "1");
        def["upgradeStrategy"] = json!({"minimumHealthCapacity": 2.0});
        let e = bb.put_app("/BB/qa/bad", &def, false).await.unwrap_err();
        assert_eq!(e.status(), Some(422), "{e}");
        assert!(
            e.details()
                .iter()
                .any(|d| d.path == "/upgradeStrategy/minimumHealthCapacity"),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(text.starts_with("target BB answered HTTP 422: "), "{text}");
        assert!(
            text.contains("/upgradeStrategy/minimumHealthCapacity: "),
            "{text}"
        );
        assert!(!text.contains(PASSWORD), "{text}");

        // Not JSON at all: the remote's 400 with its parser's words.
        let e = bb
            .put_app_json("/BB/qa/bad", b"{not json", false)
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(400), "{e}");

        // Locked by a deployment that cannot finish: 409 unless forced.
        let mut never = web_app("/BB/qa/never", 1, "1");
        never["cmd"] = json!("exit 3");
        let first = bb
            .put_app("/BB/qa/never", &never, false)
            .await
            .expect("put");
        never["env"]["VERSION"] = json!("2");
        let e = bb.put_app("/BB/qa/never", &never, false).await.unwrap_err();
        assert_eq!(e.status(), Some(409), "{e}");
        assert!(e.to_string().contains("force=true"), "{e}");
        let forced = bb
            .put_app("/BB/qa/never", &never, true)
            .await
            .expect("forced");
        let outcome = bb
            .wait_deployment(&first, Duration::from_secs(10))
            .await
            .expect("wait first");
        // A Slipway remote keeps the overridden deployment with its reason.
        let DeploymentOutcome::Failed { reason } = &outcome else {
            panic!("{outcome:?}");
        };
        assert!(reason.contains(&forced.id), "{outcome:?}");
        assert!(!bb.deployment_done(&forced.id).await.expect("deployments"));
    });
}

#[test]
fn a_deployment_that_never_succeeds_times_out_with_the_last_task_failure() {
    let remote = remote();
    let bb = remote.client(&format!("{USER}:{PASSWORD}"));
    block_on(async {
        let def = json!({"id": "/BB/qa/crash", "cmd": "echo starting; exit 3", "instances": 1,
                         "cpus": 0.05, "mem": 16, "backoffSeconds": 1});
        let dep = bb.put_app("/BB/qa/crash", &def, false).await.expect("put");
        let outcome = bb
            .wait_deployment(&dep, Duration::from_secs(6))
            .await
            .expect("wait");
        let DeploymentOutcome::TimedOut {
            last_task_failure: Some(failure),
            tasks_healthy: 0,
            instances: 1,
        } = &outcome
        else {
            panic!("{outcome:?}");
        };
        assert_eq!(failure.state, "TASK_FAILED", "{failure:?}");
        assert!(!failure.message.is_empty(), "{failure:?}");
        assert!(!bb.deployment_done(&dep.id).await.expect("deployments"));
    });
}

#[test]
fn wrong_credentials_are_a_clear_401_without_the_secret() {
    let remote = remote();
    let wrong = "wrong-password-c0ffee";
    block_on(async {
        for (secret, sent) in [
            (format!("{USER}:{wrong}"), "HTTP basic as user bb-deploy"),
            (format!("slw_{wrong}"), "a bearer token"),
        ] {
            let bb = remote.client(&secret);
            let e = bb
                .put_app("/BB/qa/web", &web_app("/BB/qa/web", 1, "1"), false)
                .await
                .unwrap_err();
            assert!(
                matches!(e, ClientError::Unauthorized { status: 401, .. }),
                "{e:?}"
            );
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("target BB refused {sent} (HTTP 401)")),
                "{text}"
            );
            assert!(!text.contains(wrong), "the secret leaked: {text}");
            assert!(
                !format!("{e:?}").contains(wrong),
                "the secret leaked: {e:?}"
            );
        }
        let none = MarathonClient::new("BB", &remote.server.url, None).expect("client");
        let e = none.list_apps("/BB").await.unwrap_err();
        assert!(e.to_string().contains("no credentials"), "{e}");
    });
    // Nothing was created by the refused requests.
    let (code, _) = testkit::http(
        "GET",
        &format!("{}/v2/apps/BB/qa/web", remote.server.url),
        None,
    )
    .expect("get");
    assert_eq!(code, 404);
}

#[test]
fn an_unreachable_target_is_named_in_the_error() {
    let port = testkit::free_port();
    let bb = MarathonClient::new(
        "BB",
        &format!("http://127.0.0.1:{port}"),
        Some(Credentials::from_secret("ops:hunter2222")),
    )
    .expect("client")
    .with_request_timeout(Duration::from_secs(2));
    let e = block_on(bb.get_app("/BB/qa/web")).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "target BB is not reachable at http://127.0.0.1:{port}: "
        )),
        "{text}"
    );
    assert!(!text.contains("hunter2222"), "{text}");
}

#[test]
fn an_https_target_fails_clearly_when_this_build_has_no_tls() {
    let port = testkit::free_port();
    let bb = MarathonClient::new("BB", &format!("https://127.0.0.1:{port}"), None)
        .expect("client")
        .with_request_timeout(Duration::from_secs(2));
    let e = block_on(bb.list_apps("/BB")).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ClientError::Unreachable { .. }), "{e:?}");
    if text.contains("not http") {
        assert!(text.contains("no TLS client"), "{text}");
    }
}
