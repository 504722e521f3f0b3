//! HTTP tests of the Marathon API against a real engine running real processes.

use crate::{Ctx, serve};
use engine::{Engine, EngineConfig};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The admin token of test servers.
pub(crate) const ADMIN: &str = "slw_api-test-admin";

/// A server on an ephemeral loopback port with its own data directory.
pub(crate) struct Server {
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Server {
    pub(crate) async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(store::Store::open(&dir.path().join("db")).unwrap());
        let mut cfg = EngineConfig::new(dir.path().to_path_buf());
        cfg.tick = Duration::from_millis(50);
        cfg.kill_tasks_on_shutdown = true;
        cfg.docker.enabled = false;
        let identity =
            Arc::new(crate::Identity::open(store.clone(), crate::AuthMode::On, false).unwrap());
        identity.bootstrap(Some(ADMIN)).unwrap();
        let secret_key =
            Arc::new(auth::SecretKey::load_or_create(&dir.path().join("secret.key")).unwrap());
        let engine = Engine::builder(cfg, store.clone())
            .secrets(Arc::new(crate::identity::StoreSecrets {
                store: store.clone(),
                key: secret_key.clone(),
            }))
            .open()
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(engine.clone().run(shutdown.clone()));
        let pipelines = pipeline::service::Service::new(
            store.clone(),
            dir.path().join("runs"),
            Arc::new(|_: &str, _: &str| Err("no secrets in these tests".to_string())),
        );
        let admission = Arc::new(crate::admission::AdmissionConfig::default());
        pipelines.set_deployer(Arc::new(crate::EngineDeployer {
            engine: engine.clone(),
            identity: identity.clone(),
            store: store.clone(),
            admission: admission.clone(),
        }));
        let ctx = Ctx {
            engine,
            listen,
            started: Instant::now(),
            identity,
            store,
            secret_key,
            proxy: None,
            pipelines: Some(pipelines),
            admission,
            watch: None,
        };
        tokio::spawn(serve(listener, ctx, shutdown.clone()));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {ADMIN}").parse().unwrap(),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        Server {
            url: format!("http://{listen}"),
            http,
            shutdown,
            _dir: dir,
        }
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Polls `f` until it returns true, failing after a generous bound.
    async fn wait_for(&self, what: &str, mut f: impl AsyncFnMut(&Server) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if f(self).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {what}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
        // The runtime may end before the engine has killed its tasks: never leak them.
        testkit::kill_tasks_of(self._dir.path());
    }
}

use reqwest::Method;

#[tokio::test]
async fn invalid_definitions_get_marathon_error_bodies() {
    let s = Server::start().await;
    let resp = s
        .http
        .post(format!("{}/v2/apps", s.url))
        .body("{\"id\": ")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["message"], "Invalid JSON");
    for (def, path) in [
        (json!({"id": "/bad_id", "cmd": "x"}), "/id"),
        (
            json!({"id": "/a", "cmd": "x", "instances": -1}),
            "/instances",
        ),
        (
            json!({"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "GOPHER"}]}),
            "/healthChecks(0)/protocol",
        ),
    ] {
        let (status, body) = s.call(Method::POST, "/v2/apps", Some(def.clone())).await;
        assert_eq!(status, 422, "{def}: {body}");
        assert_eq!(body["message"], "Object is not valid");
        assert!(
            body["details"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["path"] == path),
            "{body}"
        );
    }
    let (status, _) = s.call(Method::GET, "/v2/apps/nope", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn create_scale_and_delete_a_cmd_app() {
    let s = Server::start().await;
    let (status, body) = s
        .call(
            Method::POST,
            "/v2/apps",
            Some(json!({"id": "/sleepy", "cmd": "sleep 600", "instances": 2, "mem": 32})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], "/sleepy");
    assert_eq!(body["tasksRunning"], 0);
    assert_eq!(body["deployments"].as_array().unwrap().len(), 1);
    let deployments = s.get("/v2/deployments").await;
    assert_eq!(
        deployments.as_array().unwrap().len(),
        1,
        "deployment visible right after create"
    );
    s.wait_for("2 running tasks", async |s| {
        s.get("/v2/apps/sleepy").await["app"]["tasksRunning"] == 2
    })
    .await;
    s.wait_for("deployment done", async |s| {
        s.get("/v2/deployments").await == json!([])
    })
    .await;

    let app = s.get("/v2/apps//sleepy").await;
    let task = &app["app"]["tasks"][0];
    assert_eq!(task["state"], "TASK_RUNNING");
    assert!(task["id"].as_str().unwrap().starts_with("sleepy."));
    assert_eq!(task["ports"].as_array().unwrap().len(), 1);

    let (status, body) = s
        .call(
            Method::PUT,
            "/v2/apps/sleepy?force=True",
            Some(json!({"instances": 1})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["deploymentId"].is_string());
    s.wait_for("scaled to 1", async |s| {
        let app = s.get("/v2/apps/sleepy").await;
        app["app"]["tasks"].as_array().unwrap().len() == 1 && app["app"]["deployments"] == json!([])
    })
    .await;
    let versions = s.get("/v2/apps/sleepy/versions").await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);

    let (status, _) = s.call(Method::DELETE, "/v2/apps/sleepy", None).await;
    assert_eq!(status, 200);
    let (status, _) = s.call(Method::GET, "/v2/apps/sleepy", None).await;
    assert_eq!(status, 404, "deleted apps disappear at once");
    s.wait_for("tasks gone", async |s| {
        s.get("/v2/tasks").await["tasks"] == json!([])
    })
    .await;
}

#[tokio::test]
async fn failing_command_backs_off_with_visible_reason() {
    let s = Server::start().await;
    let def = json!({"id": "/crashy", "cmd": "echo boom >&2; exit 3", "backoffSeconds": 1, "backoffFactor": 2, "maxLaunchDelaySeconds": 60});
    let (status, _) = s.call(Method::POST, "/v2/apps", Some(def)).await;
    assert_eq!(status, 201);
    s.wait_for("a recorded failure", async |s| {
        s.get("/v2/apps/crashy").await["app"]["lastTaskFailure"].is_object()
    })
    .await;
    let app = s.get("/v2/apps/crashy").await;
    let failure = &app["app"]["lastTaskFailure"];
    assert_eq!(failure["state"], "TASK_FAILED");
    assert_eq!(failure["message"], "Command exited with status 3");
    s.wait_for("backoff of at least 2s", async |s| {
        s.get("/api/v1/apps/crashy/status").await["backoff"]["delaySeconds"]
            .as_f64()
            .unwrap()
            >= 2.0
    })
    .await;
    let queue = s.get("/v2/queue").await;
    let item = &queue["queue"][0];
    assert_eq!(item["app"]["id"], "/crashy");
    assert!(item["delay"]["timeLeftSeconds"].is_number());
    let status = s.get("/api/v1/apps/crashy/status").await;
    assert!(
        status["waiting"]
            .as_str()
            .unwrap()
            .contains("Command exited with status 3"),
        "{status}"
    );
    // The failed task's stderr is still readable.
    let terminated = status["terminated"][0]["id"].as_str().unwrap().to_string();
    let log = s
        .get(&format!("/api/v1/tasks/{terminated}/logs?stream=stderr"))
        .await;
    assert_eq!(log["data"], "boom\n");
    let (status, _) = s.call(Method::DELETE, "/v2/queue/crashy/delay", None).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn conflicting_change_gets_409_unless_forced() {
    let s = Server::start().await;
    // Never healthy: the deployment stays open.
    let def = json!({"id": "/stuck", "cmd": "sleep 600", "healthChecks": [{"protocol": "COMMAND", "command": {"value": "exit 1"}, "gracePeriodSeconds": 600, "intervalSeconds": 1}]});
    let (status, _) = s.call(Method::POST, "/v2/apps", Some(def)).await;
    assert_eq!(status, 201);
    let (status, body) = s
        .call(Method::PUT, "/v2/apps/stuck", Some(json!({"instances": 2})))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("App is locked by one or more deployments.")
    );
    assert_eq!(body["deployments"].as_array().unwrap().len(), 1);
    let (status, body) = s
        .call(
            Method::PUT,
            "/v2/apps/stuck?force=true",
            Some(json!({"instances": 2})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let d = s.get("/v2/deployments").await;
    assert_eq!(
        d.as_array().unwrap().len(),
        1,
        "the forced deployment replaced the old one"
    );
    let id = d[0]["id"].as_str().unwrap().to_string();
    let (status, _) = s
        .call(
            Method::DELETE,
            &format!("/v2/deployments/{id}?force=true"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(s.get("/v2/deployments").await, json!([]));
    let status = s.get(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(status["status"], "failed");
}

#[tokio::test]
async fn cancelling_a_deployment_rolls_back_to_the_previous_definition() {
    let s = Server::start().await;
    let (status, _) = s
        .call(
            Method::POST,
            "/v2/apps",
            Some(json!({"id": "/rb", "cmd": "sleep 601", "instances": 2})),
        )
        .await;
    assert_eq!(status, 201);
    s.wait_for("v1 deployed", async |s| {
        s.get("/v2/deployments").await == json!([])
    })
    .await;
    let v1 = s.get("/v2/apps/rb").await["app"]["version"].clone();
    // v2 never becomes healthy, so its deployment stays open.
    let bad = json!({"cmd": "sleep 602", "healthChecks": [{"protocol": "COMMAND", "command": {"value": "false"}, "intervalSeconds": 1, "gracePeriodSeconds": 600}]});
    let (status, body) = s.call(Method::PUT, "/v2/apps/rb", Some(bad)).await;
    assert_eq!(status, 200, "{body}");
    let stuck = body["deploymentId"].as_str().unwrap().to_string();
    let (status, body) = s
        .call(Method::DELETE, &format!("/v2/deployments/{stuck}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let rollback = body["deploymentId"].as_str().unwrap().to_string();
    assert_ne!(rollback, stuck);
    let app = s.get("/v2/apps/rb").await["app"].clone();
    assert_eq!(app["cmd"], "sleep 601", "definition restored");
    assert_eq!(app["healthChecks"], json!([]));
    s.wait_for("rollback done", async |s| {
        s.get("/v2/deployments").await == json!([])
    })
    .await;
    // The v2 tasks were killed by the rollback; wait until they are gone.
    s.wait_for("2 tasks left", async |s| {
        s.get("/v2/apps/rb").await["app"]["tasks"]
            .as_array()
            .unwrap()
            .len()
            == 2
    })
    .await;
    let app = s.get("/v2/apps/rb").await["app"].clone();
    assert_eq!(app["tasks"].as_array().unwrap().len(), 2);
    assert!(
        app["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "TASK_RUNNING")
    );
    let old = s.get(&format!("/api/v1/deployments/{stuck}")).await;
    assert_eq!(old["status"], "failed");
    assert!(old["reason"].as_str().unwrap().contains(&rollback), "{old}");
    // Versions: v1, v2 and the rollback; v1 is still readable as a bare App.
    let versions = s.get("/v2/apps/rb/versions").await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 3);
    let bare = s
        .get(&format!("/v2/apps/rb/versions/{}", v1.as_str().unwrap()))
        .await;
    assert_eq!(bare["cmd"], "sleep 601");
    assert!(bare.get("tasks").is_none());
}

#[tokio::test]
async fn killing_tasks_with_scale_lowers_instances() {
    let s = Server::start().await;
    let (status, _) = s
        .call(
            Method::POST,
            "/v2/apps",
            Some(json!({"id": "/k/app", "cmd": "sleep 603", "instances": 3})),
        )
        .await;
    assert_eq!(status, 201);
    // The deployment ends once the tasks have stayed up (they have no health checks).
    s.wait_for("3 tasks, deployed", async |s| {
        s.get("/v2/apps/k/app").await["app"]["tasksRunning"] == 3
            && s.get("/v2/deployments").await == json!([])
    })
    .await;
    let tasks = s.get("/v2/apps/k/app/tasks").await;
    let id = tasks["tasks"][0]["id"].as_str().unwrap().to_string();
    let (status, body) = s
        .call(
            Method::DELETE,
            &format!("/v2/apps/k/app/tasks/{id}?scale=true"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["deploymentId"].is_string());
    s.wait_for("2 tasks, instances 2", async |s| {
        let a = s.get("/v2/apps/k/app").await["app"].clone();
        a["instances"] == 2 && a["tasks"].as_array().unwrap().len() == 2
    })
    .await;
    let (status, body) = s
        .call(Method::DELETE, "/v2/apps/k/app/tasks/k_app.nope", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "Task 'k_app.nope' does not exist");
    let (status, body) = s
        .call(
            Method::POST,
            "/v2/tasks/delete",
            Some(json!({"ids": ["garbage"]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = s
        .call(
            Method::DELETE,
            "/v2/apps/k/app/tasks?scale=true&wipe=true",
            None,
        )
        .await;
    assert_eq!(status, 400);
    // Groups are derived from ids; the app listing by group uses `*`.
    let root = s.get("/v2/groups").await;
    assert_eq!(root["id"], "/");
    assert_eq!(root["groups"][0]["id"], "/k");
    assert_eq!(root["groups"][0]["apps"][0]["id"], "/k/app");
    let star = s.get("/v2/apps/k/*").await;
    assert_eq!(star["*"][0]["id"], "/k/app");
    let (status, _) = s.call(Method::GET, "/v2/groups/nope", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn info_leader_ping_and_metrics_have_marathon_shapes() {
    let s = Server::start().await;
    let info = s.get("/v2/info").await;
    assert_eq!(info["name"], "marathon");
    assert!(
        info["version"]
            .as_str()
            .unwrap()
            .split('.')
            .all(|p| p.parse::<u32>().is_ok())
    );
    assert!(
        info["marathon_config"].is_object()
            && info["zookeeper_config"].is_object()
            && info["http_config"].is_object()
    );
    assert_eq!(info["elected"], true);
    assert_eq!(s.get("/v2/leader").await["leader"], info["leader"]);
    assert_eq!(s.get("/ping").await, json!("pong"));
    assert!(s.get("/metrics").await["gauges"].is_object());
    // Prometheus scrapers ask for text; Marathon 1.7+'s /metrics/prometheus always is.
    let scrape = s
        .http
        .get(format!("{}/metrics", s.url))
        .header("accept", "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1")
        .send()
        .await
        .unwrap();
    assert!(
        scrape.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = scrape.text().await.unwrap();
    assert!(
        text.contains("# TYPE slipway_apps gauge\nslipway_apps 0\n"),
        "{text}"
    );
    let text = s.get("/metrics/prometheus").await;
    assert!(
        text.as_str()
            .is_some_and(|t| t.contains("slipway_uptime_seconds")),
        "{text}"
    );
    // DC/OS prefix and doubled slashes reach the same routes.
    assert_eq!(s.get("/service/marathon/v2/info").await["name"], "marathon");
    assert_eq!(s.get("/v2//info").await["name"], "marathon");
}

#[tokio::test]
async fn event_stream_filters_by_type_and_serves_light_plans() {
    let s = Server::start().await;
    let resp = s
        .http
        .get(format!(
            "{}/v2/events?event_type=deployment_info&plan-format=light",
            s.url
        ))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (status, _) = s
        .call(
            Method::POST,
            "/v2/apps",
            Some(json!({"id": "/ev", "cmd": "sleep 604", "instances": 0})),
        )
        .await;
    assert_eq!(status, 201);
    let mut resp = resp;
    let mut text = String::new();
    while !text.contains("\r\n\r\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        text.starts_with("event: deployment_info\r\ndata: {"),
        "{text:?}"
    );
    let data: Value =
        serde_json::from_str(text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(data["eventType"], "deployment_info");
    assert!(data["plan"].get("original").is_none(), "light plan");
    assert_eq!(
        data["currentStep"]["actions"][0]["action"],
        "StartApplication"
    );
    let refused = s
        .http
        .get(format!("{}/v2/events", s.url))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 405);
}
