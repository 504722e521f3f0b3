//! HTTP tests of the Marathon API against a real engine running real processes.

use crate::{Ctx, serve};
use engine::{Engine, EngineConfig};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A server on an ephemeral loopback port with its own data directory.
struct Server {
    url: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = store::Store::open(&dir.path().join("db")).unwrap();
        let mut cfg = EngineConfig::new(dir.path().to_path_buf());
        cfg.tick = Duration::from_millis(50);
        cfg.kill_tasks_on_shutdown = true;
        let engine = Engine::open(cfg, Arc::new(store)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(engine.clone().run(shutdown.clone()));
        let ctx = Ctx {
            engine,
            listen,
            started: Instant::now(),
        };
        tokio::spawn(serve(listener, ctx, shutdown.clone()));
        Server {
            url: format!("http://{listen}"),
            http: reqwest::Client::new(),
            shutdown,
            _dir: dir,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
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

    async fn get(&self, path: &str) -> Value {
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
