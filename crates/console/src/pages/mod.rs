//! One module per page; each renders from the API's JSON as the signed-in user.

pub(crate) mod admin;
pub(crate) mod apps;
pub(crate) mod audit;
pub(crate) mod deployments;
pub(crate) mod live;
pub(crate) mod metrics;
pub(crate) mod overview;
pub(crate) mod pipelines;
pub(crate) mod runs;

use serde_json::Value;

/// `v[key]` as text ("" when absent).
pub(crate) fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// `v[key]` as a number (0 when absent).
pub(crate) fn n(v: &Value, key: &str) -> i64 {
    v[key].as_i64().unwrap_or_default()
}

/// `v[key]` as an array (empty when absent).
pub(crate) fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key].as_array().map_or(&[], Vec::as_slice)
}

/// An app's health in one word: `deploying`, `suspended`, `unhealthy`, `healthy`,
/// `running` (no health checks) or `waiting` (fewer running than wanted).
pub(crate) fn app_health(app: &Value) -> &'static str {
    let instances = n(app, "instances");
    let running = n(app, "tasksRunning");
    let healthy = n(app, "tasksHealthy");
    let unhealthy = n(app, "tasksUnhealthy");
    let checks = !arr(app, "healthChecks").is_empty();
    if !arr(app, "deployments").is_empty() {
        "deploying"
    } else if instances == 0 {
        "suspended"
    } else if unhealthy > 0 {
        "unhealthy"
    } else if checks && healthy >= instances {
        "healthy"
    } else if !checks && running >= instances {
        "running-ok"
    } else {
        "waiting"
    }
}

/// What an app runs: its image (`repo:tag` and a short digest) or its command.
pub(crate) fn app_image(app: &Value) -> (String, Option<String>) {
    let image = app["container"]["docker"]["image"]
        .as_str()
        .unwrap_or_default();
    if image.is_empty() {
        let cmd = s(app, "cmd");
        let short: String = cmd.chars().take(40).collect();
        return (
            if short.is_empty() {
                "—".into()
            } else {
                short
            },
            None,
        );
    }
    match image.split_once("@sha256:") {
        Some((name, digest)) => (
            name.to_string(),
            Some(format!("sha256:{}", &digest[..digest.len().min(12)])),
        ),
        None => (image.to_string(), None),
    }
}

/// Percent-encodes each segment of an app id for a console URL (`/ui/apps/prod/web`).
pub(crate) fn app_href(id: &str) -> String {
    let segs: Vec<String> = id
        .trim_start_matches('/')
        .split('/')
        .map(crate::form::encode)
        .collect();
    format!("/ui/apps/{}", segs.join("/"))
}

/// What a run waits for, without the CLI command the API appends for terminals.
pub(crate) fn waiting(run: &Value) -> &str {
    let w = s(run, "waitingFor");
    w.split_once(": slipway ").map_or(w, |(what, _)| what)
}
