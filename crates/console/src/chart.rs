//! Line charts as server-rendered SVG, from the Prometheus API's `query_range` answers.
//!
//! Pure: series in, markup out. Axes carry units and readable ticks (`1.5 GiB`, `250 ms`,
//! `10:42`), every series has a legend entry and a dash pattern of its own as well as a
//! colour (so it reads without colour), and hovering a series or a point shows its label
//! and value (`<title>`). Colours come from CSS custom properties, so dark and light themes
//! both apply.

use maud::{Markup, PreEscaped, html};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What the values measure, for axis ticks and hover titles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    /// A plain number.
    Number,
    /// CPU cores.
    Cores,
    /// Bytes (binary prefixes).
    Bytes,
    /// Per second.
    PerSecond,
    /// Seconds (shown in ms below 1 s).
    Seconds,
}

/// One line: its legend label and its points (ms since the epoch, value).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Series {
    pub(crate) label: String,
    pub(crate) points: Vec<(i64, f64)>,
}

/// Series from a Prometheus API `matrix` answer; each labelled by the values of `by` (or
/// all its labels when `by` is empty). Non-numeric values (`NaN`, `+Inf`) are gaps.
pub(crate) fn from_matrix(answer: &Value, by: &[&str]) -> Result<Vec<Series>, String> {
    if answer["status"] != "success" {
        return Err(answer["error"]
            .as_str()
            .unwrap_or("the query failed")
            .to_string());
    }
    let data = &answer["data"];
    let result = data["result"].as_array().cloned().unwrap_or_default();
    let kind = data["resultType"].as_str().unwrap_or_default();
    let mut out = Vec::new();
    for r in &result {
        let metric = r["metric"].as_object().cloned().unwrap_or_default();
        let label = if by.is_empty() {
            // As Prometheus writes a series: name{label="value", …}.
            let name = metric
                .get("__name__")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mut parts: Vec<String> = metric
                .iter()
                .filter(|(k, _)| k.as_str() != "__name__")
                .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or_default()))
                .collect();
            parts.sort();
            match (name.is_empty(), parts.is_empty()) {
                (true, true) => "value".to_string(),
                (false, true) => name.to_string(),
                _ => format!("{name}{{{}}}", parts.join(", ")),
            }
        } else {
            let parts: Vec<&str> = by
                .iter()
                .filter_map(|k| metric.get(*k).and_then(Value::as_str))
                .collect();
            if parts.is_empty() {
                "value".to_string()
            } else {
                parts.join(" ")
            }
        };
        let raw: Vec<&Value> = match kind {
            "matrix" => r["values"].as_array().map(|v| v.iter().collect()),
            "vector" => Some(vec![&r["value"]]),
            _ => None,
        }
        .unwrap_or_default();
        let points = raw
            .iter()
            .filter_map(|p| {
                let t = p.get(0)?.as_f64()?;
                let v: f64 = p.get(1)?.as_str()?.parse().ok()?;
                v.is_finite().then_some(((t * 1000.0) as i64, v))
            })
            .collect();
        out.push(Series { label, points });
    }
    Ok(out)
}

/// A value with its unit, short (`1.5 GiB`, `0.25 cores`, `12 /s`, `250 ms`).
pub(crate) fn format(v: f64, unit: Unit) -> String {
    let num = |x: f64| {
        let a = x.abs();
        if a == 0.0 {
            "0".to_string()
        } else if a >= 100.0 {
            format!("{x:.0}")
        } else if a >= 10.0 {
            trim(format!("{x:.1}"))
        } else if a >= 0.01 {
            trim(format!("{x:.2}"))
        } else {
            format!("{x:.1e}")
        }
    };
    match unit {
        Unit::Number => si(v, ""),
        Unit::Cores => format!("{} cores", num(v)),
        Unit::PerSecond => format!("{} /s", si(v, "")),
        Unit::Seconds if v.abs() < 1.0 && v != 0.0 => format!("{} ms", num(v * 1000.0)),
        Unit::Seconds => format!("{} s", num(v)),
        Unit::Bytes => {
            let units = ["B", "KiB", "MiB", "GiB", "TiB"];
            let mut x = v;
            let mut i = 0;
            while x.abs() >= 1024.0 && i + 1 < units.len() {
                x /= 1024.0;
                i += 1;
            }
            format!("{} {}", num(x), units[i])
        }
    }
}

/// A number with an SI prefix (`1.2k`, `3.4M`).
fn si(v: f64, suffix: &str) -> String {
    let a = v.abs();
    let (x, p) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = if x == 0.0 {
        "0".to_string()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 0.01 {
        trim(format!("{x:.2}"))
    } else {
        format!("{x:.1e}")
    };
    format!("{s}{p}{suffix}")
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Round tick values covering `lo..=hi`: about `n` of them at 1, 2 or 5 × 10^k.
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(f64::EPSILON);
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    let mut out = Vec::new();
    let mut t = first;
    while t <= hi + step * 1e-9 && out.len() < 20 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    // The top tick is at or above the highest value, so the axis spans every line.
    if out.last().is_some_and(|l| *l < hi - step * 1e-9) {
        out.push(t);
    }
    out
}

/// Value ticks for a unit: bytes at round binary multiples (`256 MiB`), others decimal.
fn value_ticks(lo: f64, hi: f64, unit: Unit) -> Vec<f64> {
    if unit != Unit::Bytes {
        return ticks(lo, hi, 4);
    }
    let mut scale = 1.0;
    while hi / scale >= 1024.0 {
        scale *= 1024.0;
    }
    ticks(lo / scale, hi / scale, 4)
        .into_iter()
        .map(|t| t * scale)
        .collect()
}

/// Time ticks (ms) at round clock steps (15 s, 1 min, 5 min, 1 h, …), about `n` of them.
fn time_ticks(from: i64, to: i64, n: i64) -> Vec<i64> {
    const STEPS: [i64; 16] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
    ];
    let raw = (to - from) / n.max(1);
    let step = STEPS
        .iter()
        .map(|s| s * 1000)
        .find(|s| *s >= raw)
        .unwrap_or(43_200_000);
    let mut t = from.div_euclid(step) * step;
    if t < from {
        t += step;
    }
    let mut out = Vec::new();
    while t <= to && out.len() < 20 {
        out.push(t);
        t += step;
    }
    out
}

/// `HH:MM` (UTC) of a time in ms, `HH:MM:SS` when `seconds`.
fn clock(ms: i64, seconds: bool) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    if seconds {
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 3600, s / 60 % 60)
    }
}

const W: f64 = 640.0;
const H: f64 = 200.0;
const LEFT: f64 = 76.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;
/// Dash patterns, one per series (with the colour), so lines read without colour.
const DASHES: [&str; 6] = ["", "6 3", "2 3", "10 3 2 3", "1 2", "12 4"];

/// A line chart of `series` over `[from, to]` (ms), titled `title`. Series beyond the
/// first 12 are left out (and the caption says so).
pub(crate) fn line_chart(title: &str, unit: Unit, series: &[Series], from: i64, to: i64) -> Markup {
    chart(title, unit, series, from, to, false)
}

/// A stacked area chart: each series a band on top of the ones before it, so the top edge
/// is the total (memory of every instance, requests of every backend). A series missing
/// at a time counts as 0 there. Hover titles give each series' own value and the total.
pub(crate) fn stacked_chart(
    title: &str,
    unit: Unit,
    series: &[Series],
    from: i64,
    to: i64,
) -> Markup {
    chart(title, unit, series, from, to, true)
}

/// The running totals of `series` at every time any of them has a point: for each
/// series, (time, total up to and including it, its own value).
fn stack(series: &[&Series]) -> Vec<Vec<(i64, f64, f64)>> {
    let times: std::collections::BTreeSet<i64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(t, _)| *t))
        .collect();
    let mut below: BTreeMap<i64, f64> = times.iter().map(|t| (*t, 0.0)).collect();
    series
        .iter()
        .map(|s| {
            let own: BTreeMap<i64, f64> = s.points.iter().copied().collect();
            times
                .iter()
                .map(|t| {
                    let v = own.get(t).copied().unwrap_or(0.0);
                    let total = below.get(t).copied().unwrap_or(0.0) + v;
                    below.insert(*t, total);
                    (*t, total, v)
                })
                .collect()
        })
        .collect()
}

fn chart(title: &str, unit: Unit, series: &[Series], from: i64, to: i64, stacked: bool) -> Markup {
    let shown: Vec<&Series> = series
        .iter()
        .filter(|s| !s.points.is_empty())
        .take(12)
        .collect();
    let hidden = series.iter().filter(|s| !s.points.is_empty()).count() - shown.len();
    // Stacked: each series drawn at its running total; lines: as it is.
    let drawn: Vec<Series> = if stacked {
        stack(&shown)
            .into_iter()
            .zip(&shown)
            .map(|(pts, s)| Series {
                label: s.label.clone(),
                points: pts.iter().map(|(t, total, _)| (*t, *total)).collect(),
            })
            .collect()
    } else {
        shown.iter().map(|s| (*s).clone()).collect()
    };
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for s in &drawn {
        for (_, v) in &s.points {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
    }
    if shown.is_empty() {
        return html! {
            figure.chart {
                figcaption { (title) }
                p.empty { "No data in this time range." }
            }
        };
    }
    // Charts of amounts start at zero; a flat line gets some room.
    lo = lo.min(0.0);
    if hi <= lo {
        hi = lo + 1.0;
    }
    let yt = value_ticks(lo, hi, unit);
    if let Some(top) = yt.last() {
        hi = hi.max(*top);
    }
    let (from, to) = (from, to.max(from + 1));
    let x = |t: i64| LEFT + (t - from) as f64 / (to - from) as f64 * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (1.0 - (v - lo) / (hi - lo)) * (H - TOP - BOTTOM);
    let mut svg = String::with_capacity(4096);
    let _ = write!(
        svg,
        r#"<svg viewBox="0 0 {W} {H}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(title)
    );
    for v in &yt {
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - RIGHT,
            LEFT - 6.0,
            y(*v) + 4.0,
            esc(&format(*v, unit)),
            y = y(*v),
        );
    }
    let xt = time_ticks(from, to, 5);
    let seconds = xt.iter().any(|t| t % 60_000 != 0);
    for t in &xt {
        let t = *t;
        let _ = write!(
            svg,
            r#"<text class="tick" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x(t),
            H - 8.0,
            clock(t, seconds)
        );
    }
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{b}"/><line class="axis" x1="{LEFT}" x2="{}" y1="{b}" y2="{b}"/>"#,
        W - RIGHT,
        b = H - BOTTOM
    );
    if stacked {
        // Bands first (under every edge): the top edge of a series, then the one below
        // it (or the axis) back.
        for i in 0..drawn.len() {
            let top = &drawn[i].points;
            let mut d = String::new();
            for (k, (t, v)) in top.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if k == 0 { 'M' } else { 'L' },
                    x(*t),
                    y(*v)
                );
            }
            match i.checked_sub(1).map(|j| &drawn[j].points) {
                Some(under) => {
                    for (t, v) in under.iter().rev() {
                        let _ = write!(d, "L{:.1},{:.1}", x(*t), y(*v));
                    }
                }
                None => {
                    if let (Some((first, _)), Some((last, _))) = (top.first(), top.last()) {
                        let _ = write!(
                            d,
                            "L{:.1},{:.1}L{:.1},{:.1}",
                            x(*last),
                            y(0.0),
                            x(*first),
                            y(0.0)
                        );
                    }
                }
            }
            d.push('Z');
            let _ = write!(svg, r#"<path class="area s{c}" d="{d}"/>"#, c = i % 12);
        }
    }
    let own: Vec<Vec<f64>> = if stacked {
        stack(&shown)
            .into_iter()
            .map(|pts| pts.into_iter().map(|(_, _, v)| v).collect())
            .collect()
    } else {
        shown
            .iter()
            .map(|s| s.points.iter().map(|(_, v)| *v).collect())
            .collect()
    };
    for (i, s) in drawn.iter().enumerate() {
        let mut d = String::new();
        let mut prev: Option<i64> = None;
        // A gap longer than three typical steps breaks the line.
        let step = typical_step(&s.points);
        for (t, v) in &s.points {
            let cmd = match prev {
                Some(p) if t - p <= 3 * step => 'L',
                _ => 'M',
            };
            let _ = write!(d, "{cmd}{:.1},{:.1}", x(*t), y(*v));
            prev = Some(*t);
        }
        let last = own[i].last().map(|v| format(*v, unit)).unwrap_or_default();
        let _ = write!(
            svg,
            r#"<path class="series s{c}" d="{d}" stroke-dasharray="{dash}"><title>{label}: {last} (latest)</title></path>"#,
            c = i % 12,
            dash = DASHES[i % DASHES.len()],
            label = esc(&s.label),
        );
        // Hover targets: at most ~40 points per series.
        let every = (s.points.len() / 40).max(1);
        for (k, (t, v)) in s.points.iter().enumerate().step_by(every) {
            let value = format(own[i].get(k).copied().unwrap_or(*v), unit);
            let total = if stacked {
                format!(" (total {})", format(*v, unit))
            } else {
                String::new()
            };
            let _ = write!(
                svg,
                r#"<circle class="dot s{c}" cx="{:.1}" cy="{:.1}" r="3"><title>{label} at {}: {}{}</title></circle>"#,
                x(*t),
                y(*v),
                clock(*t, true),
                esc(&value),
                esc(&total),
                c = i % 12,
                label = esc(&s.label),
            );
        }
    }
    svg.push_str("</svg>");
    html! {
        figure.chart {
            figcaption { (title) }
            (PreEscaped(svg))
            ul.legend {
                @for (i, s) in shown.iter().enumerate() {
                    li {
                        svg.swatch viewBox="0 0 24 8" aria-hidden="true" {
                            line class={"series s" (i % 12)} x1="0" x2="24" y1="4" y2="4" stroke-dasharray=(DASHES[i % DASHES.len()]) {}
                        }
                        " " (s.label) " "
                        span.meta { (s.points.last().map(|(_, v)| format(*v, unit)).unwrap_or_default()) }
                    }
                }
                @if hidden > 0 { li.meta { "… and " (hidden) " more series" } }
            }
        }
    }
}

/// A small line without axes (80 × 20), for tables: its title says what and the latest
/// value, since the line alone cannot.
pub(crate) fn sparkline(what: &str, unit: Unit, points: &[(i64, f64)]) -> Markup {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return html! {};
    };
    let hi = points
        .iter()
        .map(|p| p.1)
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let span = (last.0 - first.0).max(1) as f64;
    let mut d = String::new();
    for (i, (t, v)) in points.iter().enumerate() {
        let _ = write!(
            d,
            "{}{:.1},{:.1}",
            if i == 0 { 'M' } else { 'L' },
            (t - first.0) as f64 / span * 78.0 + 1.0,
            19.0 - v / hi * 18.0
        );
    }
    let label = format!(
        "{what}: latest {}, peak {}",
        format(last.1, unit),
        format(hi, unit)
    );
    html! {
        svg.spark viewBox="0 0 80 20" role="img" aria-label=(label) {
            title { (label) }
            path class="series s0" d=(d) {}
        }
    }
}

fn typical_step(points: &[(i64, f64)]) -> i64 {
    let mut gaps: Vec<i64> = points.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_unstable();
    gaps.get(gaps.len() / 2)
        .copied()
        .unwrap_or(i64::MAX / 4)
        .max(1)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stacked_bands_sum_to_the_total_and_say_each_value() {
        let a = Series {
            label: "task-a".into(),
            points: vec![(0, 1.0), (10_000, 2.0), (20_000, 3.0)],
        };
        // Missing at 10 s: counts as 0 there.
        let b = Series {
            label: "task-b".into(),
            points: vec![(0, 4.0), (20_000, 5.0)],
        };
        let totals = stack(&[&a, &b]);
        assert_eq!(
            totals[1],
            vec![(0, 5.0, 4.0), (10_000, 2.0, 0.0), (20_000, 8.0, 5.0)],
            "the second band sits on the first"
        );
        let svg = stacked_chart("Memory", Unit::Bytes, &[a.clone(), b], 0, 20_000).into_string();
        assert_eq!(svg.matches(r#"class="area s"#).count(), 2, "{svg}");
        assert!(svg.contains("task-b at 00:00:20: 5 B (total 8 B)"), "{svg}");
        // The axis reaches the total, not just the largest series.
        assert!(svg.contains(">8 B<") || svg.contains(">10 B<"), "{svg}");
        let lines = line_chart("Memory", Unit::Bytes, &[a], 0, 20_000).into_string();
        assert!(!lines.contains("class=\"area"), "line charts have no bands");
    }

    #[test]
    fn units_read_like_people_write_them() {
        assert_eq!(format(1536.0 * 1024.0 * 1024.0, Unit::Bytes), "1.5 GiB");
        assert_eq!(format(0.25, Unit::Cores), "0.25 cores");
        assert_eq!(format(0.25, Unit::Seconds), "250 ms");
        assert_eq!(format(2.0, Unit::Seconds), "2 s");
        assert_eq!(format(1200.0, Unit::PerSecond), "1.2k /s");
        assert_eq!(format(0.0, Unit::Number), "0");
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 1.0, 4), vec![0.0, 0.5, 1.0]);
        let t = ticks(0.0, 730.0, 4);
        assert_eq!(t, vec![0.0, 200.0, 400.0, 600.0, 800.0]);
        let mib = 1024.0 * 1024.0;
        assert_eq!(
            value_ticks(0.0, 59.0 * mib, Unit::Bytes),
            vec![0.0, 20.0 * mib, 40.0 * mib, 60.0 * mib]
        );
        assert_eq!(
            time_ticks(30_000, 3_630_000, 4),
            vec![900_000, 1_800_000, 2_700_000, 3_600_000]
        );
    }

    #[test]
    fn a_matrix_becomes_labelled_series_with_gaps_for_nan() {
        let answer = json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"task": "web.1", "app": "/web"}, "values": [[1000.0, "1"], [1010.0, "NaN"], [1020.0, "3"]]},
            {"metric": {"task": "web.2"}, "values": [[1000.0, "2"]]}
        ]}});
        let s = from_matrix(&answer, &["task"]).unwrap();
        assert_eq!(s[0].label, "web.1");
        assert_eq!(s[0].points, vec![(1_000_000, 1.0), (1_020_000, 3.0)]);
        assert_eq!(s[1].label, "web.2");
        let all = from_matrix(&answer, &[]).unwrap();
        assert_eq!(all[0].label, r#"{app="/web", task="web.1"}"#);
        let named = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"__name__": "up", "job": "x"}, "value": [1000.0, "1"]}]}});
        assert_eq!(from_matrix(&named, &[]).unwrap()[0].label, r#"up{job="x"}"#);
        let err = json!({"status": "error", "error": "parse error at 3"});
        assert_eq!(from_matrix(&err, &[]).unwrap_err(), "parse error at 3");
    }

    #[test]
    fn a_chart_has_axes_a_legend_and_hover_titles() {
        let s = vec![
            Series {
                label: "web.1".into(),
                points: (0..60)
                    .map(|i| (i * 10_000, i as f64 * 1024.0 * 1024.0))
                    .collect(),
            },
            Series {
                label: "web.<2>".into(),
                points: vec![(0, 1.0), (10_000, 2.0)],
            },
        ];
        let html = line_chart("Memory", Unit::Bytes, &s, 0, 600_000).into_string();
        assert!(html.contains("<figcaption>Memory</figcaption>"), "{html}");
        assert!(
            html.contains("MiB</text>"),
            "y ticks carry the unit: {html}"
        );
        assert!(html.contains(">00:04</text>"), "clock ticks: {html}");
        assert!(
            html.contains(">60 MiB</text>"),
            "binary ticks to the top: {html}"
        );
        assert!(
            html.contains("<title>web.1: 59 MiB (latest)</title>"),
            "{html}"
        );
        assert!(html.contains("web.&lt;2&gt;"), "labels are escaped: {html}");
        assert!(
            html.contains("stroke-dasharray=\"6 3\""),
            "second series dashed"
        );
        let spark = sparkline("CPU", Unit::Cores, &[(0, 0.5), (1000, 1.0)]).into_string();
        assert!(
            spark.contains("CPU: latest 1 cores, peak 1 cores"),
            "{spark}"
        );
        assert!(sparkline("CPU", Unit::Cores, &[]).into_string().is_empty());
        let empty = line_chart("CPU", Unit::Cores, &[], 0, 1).into_string();
        assert!(empty.contains("No data in this time range."));
    }
}
