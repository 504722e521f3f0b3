//! `slipway metrics query EXPR [--range 1h] [--step 30s]`: PromQL over the server's
//! Prometheus query API (`/api/v1/query`, `/api/v1/query_range`), shown as a table of
//! series, or for a range as a chart drawn in the terminal; `--output json` prints the
//! API's `data` object.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

use super::client::Client;
use super::error::{self, Exit, coded};
use super::out;
use super::table::Table;
use super::{ClientOpts, Output};

/// `slipway metrics ...`.
#[derive(Args, Debug)]
pub(crate) struct MetricsArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    command: MetricsCommand,
}

#[derive(Subcommand, Debug)]
enum MetricsCommand {
    /// Evaluate a PromQL expression: now (a table of series and values), or over the last
    /// --range (a chart per series; `--output json` gives the matrix).
    ///
    /// Examples: `slipway metrics query 'sum by (app) (rate(container_cpu_usage_seconds_total[1m]))'`,
    /// `slipway metrics query container_memory_working_set_bytes --range 1h`.
    /// Exit codes: 4 for an invalid expression, 3 when the server fails or metrics are off.
    Query {
        /// The PromQL expression.
        expr: String,
        /// Evaluate over this long a window ending now, e.g. `15m`, `1h`, `1d`.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        range: Option<Duration>,
        /// Resolution of a range query (default: the range / 120, at least 1s).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "range")]
        step: Option<Duration>,
    },
}

/// Runs `slipway metrics ...`.
pub(crate) async fn metrics(args: MetricsArgs) -> ExitCode {
    let output = args.opts.output;
    let result = match Client::new(&args.opts) {
        Ok(client) => match args.command {
            MetricsCommand::Query { expr, range, step } => {
                query(&client, output, &expr, range, step).await
            }
        },
        Err(e) => Err(e),
    };
    error::finish(result).into()
}

/// A duration like `90s`, `15m`, `1h30m`, `2d` or `1w` (PromQL's units, ms to weeks).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let mut total = 0u64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30s, 15m, 1h"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            u => return Err(format!("invalid duration {s:?}: unknown unit {u:?}")),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {s:?} is too long"))?;
    }
    if total == 0 {
        return Err(format!("duration {s:?} must be positive"));
    }
    Ok(Duration::from_millis(total))
}

/// GETs a Prometheus API path; the answer's `data`, or its error with an exit code
/// (`bad_data` → 4, anything else → 3).
pub(crate) async fn prom_get(
    client: &Client,
    path: &str,
    params: &[(&str, String)],
) -> anyhow::Result<Value> {
    let rb = client.request(Method::GET, path).query(params);
    let retry = rb.try_clone();
    let resp = rb.send().await;
    let resp = match (resp, retry) {
        (Ok(r), _) => r,
        // Transport errors: let the client phrase them (server down, timeout).
        (Err(_), Some(again)) => client.send(again).await?,
        (Err(e), None) => return Err(e.into()),
    };
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() && body["status"] == "success" {
        return Ok(body["data"].clone());
    }
    match (body["errorType"].as_str(), body["error"].as_str()) {
        (Some(kind), Some(msg)) => {
            let exit = if kind == "bad_data" {
                Exit::Invalid
            } else {
                Exit::Server
            };
            Err(coded(exit, format!("{kind}: {msg}")))
        }
        // Not a Prometheus answer (401, 403, ...): the client's usual reporting.
        _ => match client.request(Method::GET, path).query(params).try_clone() {
            Some(rb) => {
                client.send(rb).await?;
                Err(coded(
                    Exit::Server,
                    format!("server answered {status} without a result"),
                ))
            }
            None => Err(coded(Exit::Server, format!("server answered {status}"))),
        },
    }
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

async fn query(
    client: &Client,
    output: Output,
    expr: &str,
    range: Option<Duration>,
    step: Option<Duration>,
) -> anyhow::Result<Exit> {
    let end = now_secs().floor();
    let data = match range {
        None => prom_get(client, "/api/v1/query", &[("query", expr.to_string())]).await?,
        Some(range) => {
            let step = step
                .unwrap_or_else(|| (range / 120).max(Duration::from_secs(1)))
                .as_secs_f64();
            let start = end - range.as_secs_f64();
            prom_get(
                client,
                "/api/v1/query_range",
                &[
                    ("query", expr.to_string()),
                    ("start", format!("{start:.3}")),
                    ("end", format!("{end:.3}")),
                    ("step", format!("{step}")),
                ],
            )
            .await?
        }
    };
    match output {
        Output::Json => out::json(&data)?,
        Output::Text => {
            let text = match data["resultType"].as_str() {
                Some("matrix") => chart(&data["result"], CHART_WIDTH, CHART_HEIGHT),
                _ => instant_table(&data),
            };
            out::write_stdout(text.as_bytes())?;
        }
    }
    Ok(Exit::Success)
}

/// `name{k="v", ...}` of a result's `metric` object (`{}` for none).
pub(crate) fn series_name(metric: &Value) -> String {
    let Some(m) = metric.as_object() else {
        return "{}".into();
    };
    let name = m.get("__name__").and_then(Value::as_str).unwrap_or("");
    let labels: Vec<String> = m
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or_default()))
        .collect();
    if labels.is_empty() && !name.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", labels.join(", "))
    }
}

/// A value as the API gives it (a string), shortened to 6 significant digits.
pub(crate) fn short_number(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let s = format!("{v:.6e}");
    let back: f64 = s.parse().unwrap_or(v);
    if (1e-4..1e15).contains(&back.abs()) {
        let digits = (5 - back.abs().log10().floor() as i32).clamp(0, 10) as usize;
        let t = format!("{back:.digits$}");
        let t = t.trim_end_matches('0').trim_end_matches('.');
        t.to_string()
    } else {
        format!("{back:e}")
    }
}

fn value_of(point: &Value) -> f64 {
    point[1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The table of an instant answer: a vector's series and values, or a scalar/string.
fn instant_table(data: &Value) -> String {
    match data["resultType"].as_str() {
        Some("scalar") | Some("string") => {
            format!("{}\n", data["result"][1].as_str().unwrap_or_default())
        }
        _ => {
            let result = data["result"].as_array().cloned().unwrap_or_default();
            if result.is_empty() {
                return "no series\n".into();
            }
            let mut t = Table::new(&["SERIES", "VALUE"]);
            for s in &result {
                t.row(vec![
                    series_name(&s["metric"]),
                    short_number(value_of(&s["value"])),
                ]);
            }
            t.render()
        }
    }
}

const CHART_WIDTH: usize = 72;
const CHART_HEIGHT: usize = 12;
/// Markers of the series drawn in one chart, in order; more series are listed, not drawn.
const MARKERS: [char; 6] = ['*', '+', 'o', 'x', '#', '@'];

/// `HH:MM:SS` (UTC) of a Unix time.
fn clock(secs: f64) -> String {
    let s = secs.max(0.0) as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A line chart of a matrix: up to six series share one y axis, each its own marker;
/// the legend lists every series with its last value.
pub(crate) fn chart(result: &Value, width: usize, height: usize) -> String {
    let series = result.as_array().cloned().unwrap_or_default();
    if series.is_empty() {
        return "no series\n".into();
    }
    let points: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            s["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| (p[0].as_f64().unwrap_or(0.0), value_of(p)))
                .collect()
        })
        .collect();
    let all = || points.iter().take(MARKERS.len()).flatten();
    let (t0, t1) = all().fold((f64::MAX, f64::MIN), |(a, b), (t, _)| {
        (a.min(*t), b.max(*t))
    });
    let finite = || all().map(|p| p.1).filter(|v| v.is_finite());
    let (lo, hi) = (
        finite().fold(f64::MAX, f64::min),
        finite().fold(f64::MIN, f64::max),
    );
    let mut out = String::new();
    if lo > hi {
        out.push_str("no finite values to draw\n");
    } else {
        let (lo, hi) = if hi - lo < 1e-12 {
            (lo - 1.0, hi + 1.0)
        } else {
            (lo, hi)
        };
        let mut grid = vec![vec![' '; width]; height];
        let span = (t1 - t0).max(1e-9);
        for (i, pts) in points.iter().take(MARKERS.len()).enumerate() {
            for (t, v) in pts.iter().filter(|p| p.1.is_finite()) {
                let x = (((t - t0) / span) * (width - 1) as f64).round() as usize;
                let y = (((v - lo) / (hi - lo)) * (height - 1) as f64).round() as usize;
                grid[height - 1 - y.min(height - 1)][x.min(width - 1)] = MARKERS[i];
            }
        }
        let labels = [
            short_number(hi),
            short_number((hi + lo) / 2.0),
            short_number(lo),
        ];
        let lw = labels.iter().map(String::len).max().unwrap_or(0);
        for (r, row) in grid.iter().enumerate() {
            let label = if r == 0 {
                &labels[0]
            } else if r == height / 2 {
                &labels[1]
            } else if r == height - 1 {
                &labels[2]
            } else {
                ""
            };
            let line: String = row.iter().collect();
            out.push_str(&format!("{label:>lw$} |{}\n", line.trim_end()));
        }
        out.push_str(&format!("{:>lw$} +{}\n", "", "-".repeat(width)));
        let (a, b) = (clock(t0), clock(t1));
        out.push_str(&format!(
            "{:>lw$}  {a}{}{b} UTC\n",
            "",
            " ".repeat(width.saturating_sub(a.len() + b.len()))
        ));
    }
    for (i, (s, pts)) in series.iter().zip(&points).enumerate() {
        let marker = MARKERS.get(i).copied().unwrap_or(' ');
        let last = pts.last().map_or("-".into(), |p| short_number(p.1));
        out.push_str(&format!(
            "{marker} {}  last {last}\n",
            series_name(&s["metric"])
        ));
    }
    if series.len() > MARKERS.len() {
        out.push_str(&format!(
            "({} series: the first {} are drawn)\n",
            series.len(),
            MARKERS.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(short_number(3.0), "3");
        assert_eq!(short_number(0.123456789), "0.123457");
        assert_eq!(short_number(12345.6789), "12345.7");
        assert_eq!(short_number(1e-7), "1e-7");
        assert_eq!(short_number(f64::NAN), "NaN");
        assert_eq!(short_number(f64::INFINITY), "+Inf");
    }

    #[test]
    fn series_names() {
        assert_eq!(series_name(&json!({"__name__": "up"})), "up");
        assert_eq!(
            series_name(&json!({"__name__": "up", "job": "a"})),
            "up{job=\"a\"}"
        );
        assert_eq!(series_name(&json!({"app": "/web"})), "{app=\"/web\"}");
        assert_eq!(series_name(&json!({})), "{}");
    }

    #[test]
    fn instant_tables() {
        let v = json!({"resultType": "vector", "result": [
            {"metric": {"app": "/web"}, "value": [1.0, "0.25"]}]});
        assert_eq!(
            instant_table(&v),
            "SERIES        VALUE\n{app=\"/web\"}  0.25\n"
        );
        let s = json!({"resultType": "scalar", "result": [1.0, "2"]});
        assert_eq!(instant_table(&s), "2\n");
        let e = json!({"resultType": "vector", "result": []});
        assert_eq!(instant_table(&e), "no series\n");
    }

    #[test]
    fn a_chart_spans_the_values_and_the_window() {
        let m = json!([
            {"metric": {"app": "/a"}, "values": [[0.0, "0"], [30.0, "5"], [60.0, "10"]]},
            {"metric": {"app": "/b"}, "values": [[0.0, "10"], [60.0, "NaN"]]},
        ]);
        let c = chart(&m, 20, 5);
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(lines[0], "10 |+                  *", "{c}");
        assert_eq!(lines[2], " 5 |          *", "{c}");
        assert_eq!(lines[4], " 0 |*", "{c}");
        assert_eq!(lines[5], "   +--------------------", "{c}");
        assert!(lines[6].contains("00:00:00") && lines[6].ends_with("00:01:00 UTC"));
        assert_eq!(lines[7], "* {app=\"/a\"}  last 10");
        assert_eq!(lines[8], "+ {app=\"/b\"}  last NaN");
        assert_eq!(chart(&json!([]), 20, 5), "no series\n");
    }
}
