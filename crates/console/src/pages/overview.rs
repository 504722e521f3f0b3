//! The overview: every app as a row, every environment (per datacenter) as a column, with
//! health, instances, the running image and deployments; below it each pipeline's last run.

use super::{app_health, app_href, app_image, arr, n, s};
use crate::layout::{self, Nav, badge, live};
use crate::{Console, Viewer, render};
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// `GET /ui/`.
pub(crate) async fn page(State(c): State<Console>, Extension(who): Extension<Viewer>) -> Response {
    let apps = c
        .get_typed::<Listing>(&who, "/v2/apps?embed=apps.deployments&embed=apps.counts")
        .await
        .map(Listing::into_values);
    let pipelines = pipelines_with_last_run(&c, &who).await;
    let running = c
        .get(&who, "/v2/deployments")
        .await
        .ok()
        .and_then(|d| d.as_array().map(Vec::len))
        .unwrap_or(0);
    let policies = c.ctx().identity.policies();
    // CPU of every app over the last 30 minutes, one query for all sparklines.
    let spark: Sparks = crate::pages::metrics::query(
        &c,
        &who,
        "sum by (app) (rate(container_cpu_usage_seconds_total[1m]))",
        &["app"],
        30 * 60_000,
    )
    .await
    .map(|(series, _, _)| series.into_iter().map(|s| (s.label, s.points)).collect())
    .unwrap_or_default();
    let body = match apps {
        Ok(apps) => html! {
            @if running > 0 {
                p { a href="/ui/deployments" { (badge("deploying")) " " (running) " deployment" @if running > 1 { "s" } " running" } }
            }
            (overview(&apps, &policies, &pipelines, &spark))
        },
        Err(e) => layout::notice("bad", &e),
    };
    render(layout::page(
        Some(&who),
        Nav::Overview,
        "Overview",
        live(body),
    ))
}

/// The app listing as far as the overview shows it: parsing the whole definitions of
/// 1,000 apps into JSON values cost most of the page's time.
#[derive(serde::Deserialize)]
struct Listing {
    apps: Vec<Listed>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    id: String,
    #[serde(default)]
    cmd: Option<String>,
    #[serde(default)]
    instances: u64,
    #[serde(default)]
    tasks_running: u64,
    #[serde(default)]
    tasks_healthy: u64,
    #[serde(default)]
    tasks_unhealthy: u64,
    #[serde(default)]
    tasks_staged: u64,
    #[serde(default)]
    labels: serde_json::Map<String, Value>,
    #[serde(default)]
    health_checks: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    deployments: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    container: Option<ListedContainer>,
}

#[derive(serde::Deserialize)]
struct ListedContainer {
    #[serde(default)]
    docker: Option<ListedDocker>,
}

#[derive(serde::Deserialize)]
struct ListedDocker {
    #[serde(default)]
    image: Option<String>,
}

impl Listing {
    /// Each app as the small JSON object the page's helpers read.
    fn into_values(self) -> Vec<Value> {
        self.apps
            .into_iter()
            .map(|a| {
                let image = a.container.and_then(|c| c.docker).and_then(|d| d.image);
                let mut v = serde_json::json!({
                    "id": a.id,
                    "instances": a.instances,
                    "tasksRunning": a.tasks_running,
                    "tasksHealthy": a.tasks_healthy,
                    "tasksUnhealthy": a.tasks_unhealthy,
                    "tasksStaged": a.tasks_staged,
                    "labels": a.labels,
                    "healthChecks": vec![Value::Null; a.health_checks.len()],
                    "deployments": vec![Value::Null; a.deployments.len()],
                });
                if let Some(cmd) = a.cmd {
                    v["cmd"] = Value::String(cmd);
                }
                if let Some(image) = image {
                    v["container"] = serde_json::json!({"docker": {"image": image}});
                }
                v
            })
            .collect()
    }
}

/// Each pipeline with its newest run (if any).
pub(crate) async fn pipelines_with_last_run(
    c: &Console,
    who: &Viewer,
) -> Vec<(String, Option<Value>)> {
    let Ok(list) = c.get(who, "/api/v1/pipelines").await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in arr(&list, "pipelines") {
        let name = s(p, "name").to_string();
        let last = c
            .get(
                who,
                &format!(
                    "/api/v1/runs?pipeline={}&limit=1",
                    crate::form::encode(&name)
                ),
            )
            .await
            .ok()
            .and_then(|r| arr(&r, "runs").first().cloned());
        out.push((name, last));
    }
    out
}

/// Where an app sits: (environment, datacenter) and its name without them.
pub(crate) fn place(policies: &auth::PolicySet, app: &Value) -> (String, Option<String>, String) {
    let id = model::PathId::parse(s(app, "id"));
    let labels: BTreeMap<String, String> = app["labels"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let env = policies.environment_for(&id, &labels).name.clone();
    let dc = policies.datacenter_of(&id);
    let mut segs: Vec<&str> = id.segments().iter().map(String::as_str).collect();
    if dc.is_some() && !segs.is_empty() {
        segs.remove(0);
    }
    if segs.len() > 1 && segs[0].eq_ignore_ascii_case(&env) {
        segs.remove(0);
    }
    (env, dc, format!("/{}", segs.join("/")))
}

/// The overview's body (pure: JSON in, HTML out).
/// Recent CPU use (cores) per app id, for the sparklines.
pub(crate) type Sparks = BTreeMap<String, Vec<(i64, f64)>>;

pub(crate) fn overview(
    apps: &[Value],
    policies: &auth::PolicySet,
    pipelines: &[(String, Option<Value>)],
    spark: &Sparks,
) -> Markup {
    // Columns: environments in policy order, each per datacenter seen.
    let mut cells: BTreeMap<String, BTreeMap<(usize, String), Vec<&Value>>> = BTreeMap::new();
    let mut columns: BTreeSet<(usize, String)> = BTreeSet::new();
    for app in apps {
        let (env, dc, name) = place(policies, app);
        let order = policies
            .environments
            .iter()
            .position(|p| p.name == env)
            .unwrap_or(usize::MAX);
        let col = match dc {
            Some(dc) => format!("{env} · {dc}"),
            None => env,
        };
        columns.insert((order, col.clone()));
        cells
            .entry(name)
            .or_default()
            .entry((order, col))
            .or_default()
            .push(app);
    }
    html! {
        section aria-labelledby="apps-h" {
            h2 #apps-h { "Apps by environment" }
            @if apps.is_empty() {
                p.empty { "No apps yet. Deploy one with " code { "slipway apps deploy" } " or a pipeline." }
            } @else {
                div.scroll {
                    table.matrix {
                        thead { tr {
                            th scope="col" { "App" }
                            @for (_, col) in &columns { th scope="col" { (col) } }
                        } }
                        tbody {
                            @for (name, row) in &cells {
                                tr {
                                    th scope="row" { (name) }
                                    @for col in &columns {
                                        td {
                                            @for app in row.get(col).into_iter().flatten() {
                                                (cell(app, spark.get(s(app, "id"))))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="pipes-h" {
            h2 #pipes-h { "Pipelines" }
            @if pipelines.is_empty() {
                p.empty { "No pipelines registered." }
            } @else {
                table.list {
                    thead { tr { th scope="col" { "Pipeline" } th scope="col" { "Last run" } th scope="col" { "Status" } th scope="col" { "Waiting for" } } }
                    tbody {
                        @for (name, last) in pipelines {
                            tr {
                                td { a href={"/ui/pipelines/" (crate::form::encode(name))} { (name) } }
                                @if let Some(r) = last {
                                    td { a href={"/ui/runs/" (s(r, "id"))} { "#" (n(r, "number")) } " · " (layout::time(s(r, "createdAt"))) }
                                    td { (badge(s(r, "status"))) }
                                    td { (super::waiting(r)) }
                                } @else {
                                    td { "—" } td { "never run" } td {}
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One app in the matrix.
fn cell(app: &Value, cpu: Option<&Vec<(i64, f64)>>) -> Markup {
    let (image, digest) = app_image(app);
    let health = app_health(app);
    html! {
        div.cell {
            a href=(app_href(s(app, "id"))) { (s(app, "id")) }
            " " (badge(health))
            div.meta {
                (n(app, "tasksRunning")) "/" (n(app, "instances")) " running"
                @if n(app, "tasksHealthy") > 0 { " · " (n(app, "tasksHealthy")) " healthy" }
            }
            div.meta.mono title=(image) {
                (image)
                @if let Some(d) = digest { " " span.digest { (d) } }
            }
            @if let Some(points) = cpu { (crate::chart::sparkline("CPU, last 30 minutes", crate::chart::Unit::Cores, points)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_lean_listing_reads_as_the_full_definitions_do() {
        let full = json!({"apps": [
            {"id": "/AA/prod/web", "instances": 3, "tasksRunning": 3, "tasksHealthy": 2,
             "tasksUnhealthy": 1, "tasksStaged": 0, "labels": {"team": "shop"},
             "healthChecks": [{"protocol": "HTTP"}], "deployments": [],
             "container": {"type": "DOCKER", "docker": {"image": "r/web@sha256:0123456789abcdef99"}},
             "upgradeStrategy": {"minimumHealthCapacity": 1}, "portDefinitions": [{"port": 1}]},
            {"id": "/qa/job", "cmd": "sleep 1000", "instances": 0, "deployments": [{"id": "d1"}]}
        ]});
        let lean: Listing = serde_json::from_value(full.clone()).unwrap();
        let lean = lean.into_values();
        for (l, f) in lean.iter().zip(arr(&full, "apps")) {
            assert_eq!(super::super::app_health(l), super::super::app_health(f));
            assert_eq!(super::super::app_image(l), super::super::app_image(f));
            assert_eq!(
                l["labels"],
                f.get("labels").cloned().unwrap_or_else(|| json!({}))
            );
            assert_eq!(s(l, "id"), s(f, "id"));
        }
    }

    /// Server time of the overview with 1,000 apps, from the API's JSON text to HTML (a
    /// benchmark: `cargo nextest run -p console --run-ignored all overview_1000`).
    #[test]
    #[ignore = "benchmark"]
    fn overview_1000_apps_bench() {
        let apps: Vec<Value> = (0..1000)
            .map(|i| {
                let (dc, env) = (["AA", "BB"][i % 2], ["qa", "yz", "prod"][i % 3]);
                json!({"id": format!("/{dc}/{env}/app{i}"), "instances": 2, "tasksRunning": 2,
                       "tasksHealthy": 2, "tasksUnhealthy": 0, "tasksStaged": 0, "healthChecks": [{"protocol": "HTTP", "path": "/health"}],
                       "container": {"type": "DOCKER", "docker": {"image": format!("127.0.0.1:5000/app{i}:1.0@sha256:0123456789abcdef0123456789abcdef")}},
                       "labels": {"team": "orders"}, "env": {"A": "1", "B": "2"}, "cpus": 0.1, "mem": 64,
                       "deployments": [], "version": "2026-12-06T08:00:00.000Z", "cmd": null, "args": []})
            })
            .collect();
        let text = json!({"apps": apps}).to_string();
        let pipelines: Vec<(String, Option<Value>)> = (0..20)
            .map(|i| {
                (
                    format!("p{i}"),
                    Some(json!({"id": format!("r{i}"), "number": 500, "status": "succeeded"})),
                )
            })
            .collect();
        let policies = auth::PolicySet::default();
        let mut best = std::time::Duration::MAX;
        for _ in 0..5 {
            let start = std::time::Instant::now();
            let v: Value = serde_json::from_str(&text).unwrap();
            let parsed = start.elapsed();
            let html = overview(
                super::arr(&v, "apps"),
                &policies,
                &pipelines,
                &Sparks::new(),
            )
            .into_string();
            eprintln!("parse {parsed:?}, render {:?}", start.elapsed() - parsed);
            assert!(html.len() > 100_000);
            best = best.min(start.elapsed());
        }
        eprintln!(
            "overview of 1,000 apps ({} KiB of JSON): {best:?}",
            text.len() / 1024
        );
    }

    #[test]
    fn apps_are_placed_by_environment_and_datacenter() {
        let policies = auth::PolicySet::default();
        let app = json!({"id": "/AA/prod/orders", "labels": {}});
        assert_eq!(
            place(&policies, &app),
            ("prod".into(), Some("AA".into()), "/orders".into())
        );
        let app = json!({"id": "/qa/orders"});
        assert_eq!(
            place(&policies, &app),
            ("qa".into(), None, "/orders".into())
        );
        let app = json!({"id": "/tools/x", "labels": {"SLIPWAY_ENV": "yz"}});
        assert_eq!(place(&policies, &app).0, "yz");
    }

    #[test]
    fn the_overview_shows_health_image_and_last_runs() {
        let apps = vec![
            json!({"id": "/AA/prod/orders", "instances": 2, "tasksRunning": 2, "tasksHealthy": 2,
                   "healthChecks": [{}], "container": {"docker": {"image": "reg/orders:1.2@sha256:0123456789abcdef"}}}),
            json!({"id": "/qa/orders", "instances": 1, "tasksRunning": 0, "cmd": "sleep 1000",
                   "deployments": [{"id": "d1"}]}),
        ];
        let runs = vec![(
            "orders".to_string(),
            Some(
                json!({"id": "r1", "number": 7, "status": "running", "waitingFor": "approval `ok` (Do tests OK?): slipway runs approve r1 ok"}),
            ),
        )];
        let html =
            overview(&apps, &auth::PolicySet::default(), &runs, &Sparks::new()).into_string();
        assert!(!html.contains("slipway runs approve"), "{html}");
        for want in [
            "qa",
            "prod · AA",
            "/AA/prod/orders",
            "reg/orders:1.2",
            "sha256:0123456789ab",
            "healthy",
            "deploying",
            "#7",
            "approval `ok` (Do tests OK?)",
            "href=\"/ui/runs/r1\"",
        ] {
            assert!(html.contains(want), "{want} missing in {html}");
        }
    }
}
