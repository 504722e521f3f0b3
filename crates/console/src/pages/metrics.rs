//! Charts from the time-series store: the metrics explorer (`/ui/metrics`: a PromQL box, a
//! time range, the chart and the latest values) and the per-app charts of the app page.
//! Every query goes through the API's Prometheus endpoints as the signed-in user.

use crate::chart::{self, Series, Unit};
use crate::form::{Form, encode};
use crate::layout::{self, Nav};
use crate::{Console, Viewer, render};
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use maud::{Markup, html};

/// Time ranges offered, as (form value, label, milliseconds).
const RANGES: &[(&str, &str, i64)] = &[
    ("15m", "Last 15 minutes", 15 * 60_000),
    ("1h", "Last hour", 3_600_000),
    ("6h", "Last 6 hours", 6 * 3_600_000),
    ("24h", "Last 24 hours", 24 * 3_600_000),
];

/// About this many points per series, whatever the range.
const POINTS: i64 = 120;

fn range_ms(v: Option<&str>) -> (&'static str, i64) {
    RANGES
        .iter()
        .find(|(k, _, _)| Some(*k) == v)
        .map_or(("1h", 3_600_000), |(k, _, ms)| (k, *ms))
}

/// Runs `query` over the last `range` ms and returns its series, labelled by `by`.
pub(crate) async fn query(
    c: &Console,
    who: &Viewer,
    query: &str,
    by: &[&str],
    range: i64,
) -> Result<(Vec<Series>, i64, i64), String> {
    let end = model::Timestamp::now().millis();
    let start = end - range;
    let step = (range / POINTS / 1000).max(1);
    let path = format!(
        "/api/v1/query_range?query={}&start={}&end={}&step={step}",
        encode(query),
        start as f64 / 1000.0,
        end as f64 / 1000.0,
    );
    let answer = match c.api(who, axum::http::Method::GET, &path, None).await {
        r if r.ok() || r.body.get("status").is_some() => r.body,
        r => return Err(r.message()),
    };
    chart::from_matrix(&answer, by).map(|s| (s, start, end))
}

/// How a chart looks: its title, the values' unit, lines or stacked areas.
pub(crate) struct Look<'a> {
    pub(crate) title: &'a str,
    pub(crate) unit: Unit,
    pub(crate) stacked: bool,
}

/// One chart of `query`, or why there is none.
pub(crate) async fn chart_of(
    c: &Console,
    who: &Viewer,
    look: Look<'_>,
    q: &str,
    by: &[&str],
    range: i64,
) -> Markup {
    let Look {
        title,
        unit,
        stacked,
    } = look;
    match query(c, who, q, by, range).await {
        Ok((series, from, to)) if stacked => chart::stacked_chart(title, unit, &series, from, to),
        Ok((series, from, to)) => chart::line_chart(title, unit, &series, from, to),
        Err(e) => html! {
            figure.chart { figcaption { (title) } (layout::notice("bad", &e)) }
        },
    }
}

/// The app page's charts: CPU per instance, memory and requests per instance stacked (the
/// top edge is the app's total), and latency per instance with the app's p99.
pub(crate) async fn app_charts(c: &Console, who: &Viewer, app_id: &str) -> Markup {
    let id = app_id.replace('\\', "\\\\").replace('"', "\\\"");
    let range = 30 * 60_000;
    let cpu = chart_of(
        c,
        who,
        Look {
            title: "CPU per instance",
            unit: Unit::Cores,
            stacked: false,
        },
        &format!(r#"rate(container_cpu_usage_seconds_total{{app="{id}"}}[1m])"#),
        &["task"],
        range,
    )
    .await;
    let mem = chart_of(
        c,
        who,
        Look {
            title: "Memory per instance (working set, stacked: the top is the app's total)",
            unit: Unit::Bytes,
            stacked: true,
        },
        &format!(r#"container_memory_working_set_bytes{{app="{id}"}}"#),
        &["task"],
        range,
    )
    .await;
    let rps = chart_of(
        c,
        who,
        Look {
            title: "Requests per instance (through the proxy, stacked: the top is the app's total)",
            unit: Unit::PerSecond,
            stacked: true,
        },
        &format!(
            r#"sum by (backend) (rate(slipway_proxy_backend_requests_total{{app="{id}"}}[1m]))"#
        ),
        &["backend"],
        range,
    )
    .await;
    let latency = chart_of(
        c,
        who,
        Look {
            title: "Latency p95 per instance and the app's p99 (through the proxy)",
            unit: Unit::Seconds,
            stacked: false,
        },
        &format!(
            r#"label_replace(histogram_quantile(0.95, sum by (backend, le) (rate(slipway_proxy_backend_request_duration_seconds_bucket{{app="{id}"}}[1m]))), "q", "p95", "", "") or label_replace(histogram_quantile(0.99, sum by (le) (rate(slipway_proxy_request_duration_seconds_bucket{{app="{id}"}}[1m]))), "q", "p99 app", "", "")"#
        ),
        &["q", "backend"],
        range,
    )
    .await;
    html! {
        p.meta { "Last 30 minutes. " a href={"/ui/metrics?query=" (encode(&format!(r#"container_memory_working_set_bytes{{app="{id}"}}"#)))} { "Explore these metrics" } }
        div.charts { (cpu) (mem) (rps) (latency) }
    }
}

/// `GET /ui/metrics?query=…&range=1h`.
pub(crate) async fn page(
    State(c): State<Console>,
    Extension(who): Extension<Viewer>,
    RawQuery(q): RawQuery,
) -> Response {
    let f = Form::parse(q.as_deref().unwrap_or_default());
    let q = f.text("query").unwrap_or_default().trim().to_string();
    let (range_key, range) = range_ms(f.text("range"));
    let result = if q.is_empty() {
        None
    } else {
        Some(query(&c, &who, &q, &[], range).await)
    };
    let body = html! {
        form.card method="get" action="/ui/metrics" {
            label for="query" { "PromQL query" }
            textarea #query name="query" rows="2" spellcheck="false" placeholder="rate(container_cpu_usage_seconds_total[1m])" { (q) }
            label for="range" { "Time range" }
            select #range name="range" {
                @for (k, label, _) in RANGES {
                    option value=(k) selected[*k == range_key] { (label) }
                }
            }
            button type="submit" { "Run query" }
        }
        @match &result {
            None => p.meta { "Examples: "
                a href={"/ui/metrics?query=" (encode("sum by (app) (rate(container_cpu_usage_seconds_total[1m]))"))} { "CPU by app" } ", "
                a href={"/ui/metrics?query=" (encode("sum by (app) (container_memory_working_set_bytes)"))} { "memory by app" } ", "
                a href={"/ui/metrics?query=" (encode("sum by (app) (rate(slipway_proxy_requests_total[1m]))"))} { "requests by app" } "." },
            Some(Err(e)) => (layout::notice("bad", e)),
            Some(Ok((series, from, to))) => {
                (chart::line_chart(&q, unit_of(&q), series, *from, *to))
                table.list {
                    thead { tr { th scope="col" { "Series" } th scope="col" { "Latest" } th scope="col" { "Points" } } }
                    tbody {
                        @for s in series.iter().take(200) { tr {
                            td.mono { (s.label) }
                            td { (s.points.last().map(|(_, v)| chart::format(*v, unit_of(&q))).unwrap_or_else(|| "-".into())) }
                            td { (s.points.len()) }
                        } }
                    }
                }
            }
        }
    };
    render(layout::page(Some(&who), Nav::Metrics, "Metrics", body))
}

/// A guess of the unit from the metric names in a query.
fn unit_of(q: &str) -> Unit {
    if q.contains("_bytes") {
        if q.contains("rate(") || q.contains("irate(") {
            Unit::PerSecond
        } else {
            Unit::Bytes
        }
    } else if q.contains("cpu_usage_seconds") || q.contains("cpu_seconds") {
        Unit::Cores
    } else if q.contains("_seconds") && !q.contains("_total") {
        Unit::Seconds
    } else if q.contains("rate(") {
        Unit::PerSecond
    } else {
        Unit::Number
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_the_metric_names() {
        assert_eq!(unit_of("container_memory_working_set_bytes"), Unit::Bytes);
        assert_eq!(
            unit_of("rate(container_network_receive_bytes_total[1m])"),
            Unit::PerSecond
        );
        assert_eq!(
            unit_of("rate(container_cpu_usage_seconds_total[1m])"),
            Unit::Cores
        );
        assert_eq!(unit_of("slipway_tasks"), Unit::Number);
        assert_eq!(range_ms(Some("6h")), ("6h", 6 * 3_600_000));
        assert_eq!(range_ms(Some("bogus")), ("1h", 3_600_000));
    }
}
