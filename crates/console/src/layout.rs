//! The page shell (header, navigation, sign-out) and the small pieces every page uses:
//! status badges that read without colour, durations, times and notices.

use crate::Viewer;
use auth::Role;
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// Marks the start of the region live updates replace (see `assets/console.js`).
pub(crate) const LIVE_START: &str = "<!--live-->";
/// Marks its end.
pub(crate) const LIVE_END: &str = "<!--/live-->";

/// Which navigation entry is current.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Nav {
    /// Overview.
    Overview,
    /// Pipelines and runs.
    Pipelines,
    /// Deployments.
    Deployments,
    /// Metrics explorer.
    Metrics,
    /// Audit log.
    Audit,
    /// Users, tokens, policies.
    Admin,
    /// Nothing (sign-in, errors).
    None,
}

/// A whole page: `title` is the `<h1>`, `body` the rest of `<main>`.
pub(crate) fn page(who: Option<&Viewer>, nav: Nav, title: &str, body: Markup) -> Markup {
    let items: &[(Nav, &str, &str, Role)] = &[
        (Nav::Overview, "/ui/", "Overview", Role::Viewer),
        (Nav::Pipelines, "/ui/pipelines", "Pipelines", Role::Viewer),
        (
            Nav::Deployments,
            "/ui/deployments",
            "Deployments",
            Role::Viewer,
        ),
        (Nav::Metrics, "/ui/metrics", "Metrics", Role::Viewer),
        (Nav::Audit, "/ui/audit", "Audit", Role::Developer),
        (Nav::Admin, "/ui/admin", "Admin", Role::Viewer),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Slipway" }
                link rel="stylesheet" href="/ui/assets/console.css";
                link rel="icon" href="data:,";
                script src="/ui/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/" { "Slipway" }
                    @if let Some(who) = who {
                        nav aria-label="Main" {
                            ul {
                                @for (n, href, label, role) in items {
                                    @if who.session.role >= *role {
                                        li {
                                            a href=(href) aria-current=[(*n == nav).then_some("page")] { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        form.signout method="post" action="/ui/logout" {
                            (csrf(who))
                            span.who { (who.session.user) " · " (who.session.role) }
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field of a form.
pub(crate) fn csrf(who: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.session.csrf); }
}

/// Wraps the part of a page that live updates re-render.
pub(crate) fn live(body: Markup) -> Markup {
    html! {
        div #live data-live="" {
            (PreEscaped(LIVE_START)) (body) (PreEscaped(LIVE_END))
        }
    }
}

/// A status with an icon and its word, so it reads without colour.
pub(crate) fn badge(status: &str) -> Markup {
    let (class, icon) =
        match status {
            "succeeded" | "success" | "healthy" | "allowed" | "running-ok" | "active"
            | "task_running" | "task_finished" => ("ok", "✔"),
            "failed" | "rejected" | "unhealthy" | "denied" | "interrupted" | "error"
            | "task_failed" | "task_killed" | "task_lost" | "task_error" | "disabled"
            | "revoked" => ("bad", "✖"),
            "running" | "deploying" | "staging" | "task_staging" | "task_starting"
            | "task_killing" => ("busy", "⟳"),
            "waiting" | "queued" => ("wait", "◔"),
            "pending" => ("off", "○"),
            "cancelled" | "superseded" | "not_run" | "skipped" => ("off", "⊘"),
            _ => ("info", "•"),
        };
    let text = status
        .trim_start_matches("task_")
        .trim_end_matches("-ok")
        .replace('_', " ");
    html! { span class={"st st-" (class)} { span.icon aria-hidden="true" { (icon) } " " (text) } }
}

/// A notice above a form: an error (`bad`) or a success (`ok`).
pub(crate) fn notice(kind: &str, text: &str) -> Markup {
    let role = if kind == "bad" { "alert" } else { "status" };
    html! { p class={"notice notice-" (kind)} role=(role) { (text) } }
}

/// `1.2 s`, `3 min 4 s`, `2 h 5 min`.
pub(crate) fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        _ if ms < 10_000 => format!("{:.1} s", ms.max(0) as f64 / 1000.0),
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// An ISO timestamp shown as `2026-12-06 08:04:24` (UTC, as stored).
pub(crate) fn time(iso: &str) -> String {
    let t = iso.replace('T', " ");
    let t = t.split('.').next().unwrap_or(&t);
    t.trim_end_matches('Z').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges_read_without_colour() {
        let b = badge("failed").into_string();
        assert!(
            b.contains("st-bad") && b.contains('✖') && b.contains("failed"),
            "{b}"
        );
        let b = badge("not_run").into_string();
        assert!(b.contains("not run"), "{b}");
        let b = badge("<script>").into_string();
        assert!(b.contains("&lt;script&gt;"), "escaped: {b}");
    }

    #[test]
    fn durations_and_times() {
        assert_eq!(duration(1234), "1.2 s");
        assert_eq!(duration(42_000), "42 s");
        assert_eq!(duration(184_000), "3 min 4 s");
        assert_eq!(duration(7_500_000), "2 h 5 min");
        assert_eq!(time("2026-12-06T08:04:24.123Z"), "2026-12-06 08:04:24");
    }
}
