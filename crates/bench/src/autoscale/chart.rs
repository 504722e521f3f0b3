//! The autoscale trace as an SVG chart: for each policy, the instances the load needed (from
//! the requests sent each second) and the instances the app had (the autoscaler's changes and
//! the manual resets), over the seconds of the trace.

use std::fmt::Write;

/// One policy's run, in seconds from the start of its trace.
pub(crate) struct Panel<'a> {
    /// The policy's name (the panel's title).
    pub name: &'a str,
    /// Requests sent in each second of the trace.
    pub sent_per_second: &'a [u64],
    /// Requests per second that one instance serves at the policy's target.
    pub rate_per_instance: f64,
    /// The instance count at the start.
    pub start_count: u64,
    /// Count changes as (second, new count), in time order: the autoscaler's and the resets.
    pub counts: &'a [(f64, u64)],
    /// Seconds at which a load step began.
    pub steps: &'a [u64],
}

const WIDTH: f64 = 960.0;
const PANEL_H: f64 = 200.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 26.0;

/// The chart of both panels, one above the other, on a common time axis.
pub(crate) fn svg(panels: &[Panel<'_>]) -> String {
    let seconds = panels
        .iter()
        .map(|p| p.sent_per_second.len())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let y_max = panels
        .iter()
        .flat_map(|p| {
            p.counts.iter().map(|c| c.1 as f64).chain(
                p.sent_per_second
                    .iter()
                    .map(|s| *s as f64 / p.rate_per_instance),
            )
        })
        .fold(2.0_f64, f64::max)
        .ceil()
        + 1.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = PANEL_H - TOP - BOTTOM;
    let height = PANEL_H * panels.len() as f64 + 24.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"##
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    for (k, p) in panels.iter().enumerate() {
        let y0 = PANEL_H * k as f64;
        let x = |s: f64| LEFT + s / seconds * plot_w;
        let y = |v: f64| y0 + TOP + plot_h - v / y_max * plot_h;
        let _ = writeln!(
            out,
            r##"<text x="{LEFT}" y="{}" font-size="13" font-weight="bold">{}</text>"##,
            y0 + 16.0,
            escape(p.name)
        );
        // Grid: a line every 2 instances, a tick every minute.
        let mut v = 0.0;
        while v <= y_max {
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e4e4e4"/><text x="{}" y="{:.1}" text-anchor="end">{v}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                y(v) + 4.0,
                yy = y(v),
            );
            v += 2.0;
        }
        let mut m = 0.0;
        while m <= seconds {
            let _ = writeln!(
                out,
                r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{}" y2="{}" stroke="#999"/><text x="{xx:.1}" y="{}" text-anchor="middle">{} min</text>"##,
                y(0.0),
                y(0.0) + 4.0,
                y(0.0) + 16.0,
                m / 60.0,
                xx = x(m),
            );
            m += 60.0;
        }
        for s in p.steps {
            let xx = x(*s as f64);
            let _ = writeln!(
                out,
                r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{:.1}" y2="{:.1}" stroke="#b0b0b0" stroke-dasharray="3,3"/>"##,
                y(y_max),
                y(0.0)
            );
        }
        // What the load needed: an area, one point per second.
        let mut area = format!("M{:.1},{:.1}", x(0.0), y(0.0));
        for (i, sent) in p.sent_per_second.iter().enumerate() {
            let need = *sent as f64 / p.rate_per_instance;
            let _ = write!(
                area,
                " L{:.1},{:.1} L{:.1},{:.1}",
                x(i as f64),
                y(need),
                x(i as f64 + 1.0),
                y(need)
            );
        }
        let _ = write!(
            area,
            " L{:.1},{:.1} Z",
            x(p.sent_per_second.len() as f64),
            y(0.0)
        );
        let _ = writeln!(out, r##"<path d="{area}" fill="#c9d8ee" stroke="none"/>"##);
        // What the app had: a step line.
        let end = p.sent_per_second.len() as f64;
        let mut line = format!("M{:.1},{:.1}", x(0.0), y(p.start_count as f64));
        let mut last = p.start_count as f64;
        for (at, count) in p.counts.iter().filter(|c| c.0 <= end) {
            let _ = write!(
                line,
                " L{:.1},{:.1} L{:.1},{:.1}",
                x(*at),
                y(last),
                x(*at),
                y(*count as f64)
            );
            last = *count as f64;
        }
        let _ = write!(line, " L{:.1},{:.1}", x(end), y(last));
        let _ = writeln!(
            out,
            r##"<path d="{line}" fill="none" stroke="#c0392b" stroke-width="2"/>"##
        );
    }
    let legend_y = PANEL_H * panels.len() as f64 + 12.0;
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{}" width="14" height="10" fill="#c9d8ee"/><text x="{}" y="{legend_y}">instances the load needs at the target (requests sent per second ÷ what one instance serves)</text>"##,
        legend_y - 9.0,
        LEFT + 20.0
    );
    let _ = writeln!(
        out,
        r##"<line x1="{}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#c0392b" stroke-width="2"/><text x="{}" y="{legend_y}">instances (autoscaler and manual resets)</text><line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#b0b0b0" stroke-dasharray="3,3"/><text x="{}" y="{legend_y}">load steps</text>"##,
        LEFT + 560.0,
        LEFT + 574.0,
        LEFT + 580.0,
        LEFT + 790.0,
        LEFT + 790.0,
        legend_y - 10.0,
        legend_y + 2.0,
        LEFT + 796.0,
        y = legend_y - 4.0,
    );
    out.push_str("</svg>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_draws_what_the_load_needed_and_the_count_the_app_had() {
        let sent = [13, 13, 39, 39, 13];
        let svg = svg(&[Panel {
            name: "slipway <default>",
            sent_per_second: &sent,
            rate_per_instance: 6.5,
            start_count: 2,
            counts: &[(2.5, 6), (4.0, 2)],
            steps: &[2],
        }]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("slipway &lt;default&gt;"), "{svg}");
        // 39 requests/s at 6.5 per instance needs 6, drawn at the count's height; y_max 7.
        let six = format!("{:.1}", 28.0 + (200.0 - 28.0 - 26.0) * (1.0 - 6.0 / 7.0));
        assert!(svg.matches(&six).count() >= 3, "{six} in {svg}");
        // The count steps up at 2.5 s, back down at 4 s.
        let at = |s: f64| format!("{:.1}", 48.0 + s / 5.0 * (960.0 - 48.0 - 16.0));
        assert!(svg.contains(&format!("L{},", at(2.5))), "{svg}");
        assert!(svg.contains(&format!("L{},", at(4.0))), "{svg}");
    }
}
