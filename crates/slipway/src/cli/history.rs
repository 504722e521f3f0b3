//! `slipway audit --app ID`: who approved, released, deployed and rolled back what, in one
//! table that fits 120 columns.
//!
//! Two sources, joined here: the audit log's records of the app (changes by hand, deploy
//! steps, denials) and the runs whose deploy steps deployed it (their approvals, who
//! decided, and the image each deploy step pinned). An audit record of a deploy step is
//! matched to its run's step, so it names the run, the step and the image.

use serde_json::Value;

use super::client::{Client, array_field};
use super::ids::segment;
use super::out::{arr_of, str_of, u64_of};
use super::table::Table;

/// The table's width limit.
pub(crate) const WIDTH: usize = 120;
/// How many recent runs are searched for deploys of the app.
const RUNS: &str = "200";
/// Widest user name shown (longer ones are cut).
const USER_WIDTH: usize = 12;
/// A deploy step and its audit record are the same event when this close (ms).
const SAME_EVENT_MS: i64 = 120_000;

/// One line of the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    /// Server timestamp (RFC 3339), for order and display.
    pub(crate) at: String,
    /// Who.
    pub(crate) user: String,
    /// `approved`, `rejected`, `deployed`, `rolled back`, `restarted`, `deleted`, `denied`, ...
    pub(crate) what: String,
    /// Run, step, image, version, reason.
    pub(crate) detail: String,
}

/// A deploy step of a run that deployed the app, and the approvals before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RunDeploy {
    run: String,
    step: String,
    image: String,
    at: String,
}

impl RunDeploy {
    /// `run orders#7 step deploy: 127.0.0.1:5000/orders@sha256:…` (no image for command
    /// apps).
    fn text(&self) -> String {
        let mut s = format!("run {} step {}", self.run, self.step);
        if !self.image.is_empty() {
            s.push_str(&format!(": {}", self.image));
        }
        s
    }
}

/// Reads the runs (newest `RUNS`) and turns those that deployed `app` into events:
/// approvals and deploy steps. Unreadable runs are skipped: the audit log still answers.
async fn run_events(client: &Client, app: &str) -> (Vec<Event>, Vec<RunDeploy>) {
    let Ok(list) = client.get("/api/v1/runs", &[("limit", RUNS)]).await else {
        return (Vec::new(), Vec::new());
    };
    let mut events = Vec::new();
    let mut deploys = Vec::new();
    for summary in array_field(list, "runs") {
        let id = str_of(&summary, "id");
        if id.is_empty() {
            continue;
        }
        let Ok(run) = client
            .get(&format!("/api/v1/runs/{}", segment(id)), &[])
            .await
        else {
            continue;
        };
        let (e, d) = events_of_run(&run, app);
        events.extend(e);
        deploys.extend(d);
    }
    (events, deploys)
}

/// `orders#7` for a run with a pipeline and a number, else its id.
fn run_name(run: &Value) -> String {
    match (str_of(run, "pipeline"), u64_of(run, "number")) {
        ("", _) | (_, None) => str_of(run, "id").to_string(),
        (p, Some(n)) => format!("{p}#{n}"),
    }
}

/// The approvals and deploy steps of one run, when one of its steps deployed `app`.
fn events_of_run(run: &Value, app: &str) -> (Vec<Event>, Vec<RunDeploy>) {
    let steps = arr_of(run, "steps");
    let deployed = |s: &Value| {
        s.get("outputs")
            .map(|o| str_of(o, "app"))
            .is_some_and(|a| a.eq_ignore_ascii_case(app))
    };
    if !steps.iter().any(deployed) {
        return (Vec::new(), Vec::new());
    }
    let name = run_name(run);
    let mut events = Vec::new();
    let mut deploys = Vec::new();
    for s in steps {
        let step = str_of(s, "name");
        let decided_by = str_of(s, "decidedBy");
        if !decided_by.is_empty() {
            let what = if str_of(s, "status") == "succeeded" {
                "approved"
            } else {
                "rejected"
            };
            events.push(Event {
                at: str_of(s, "decidedAt").to_string(),
                user: decided_by
                    .strip_prefix("user:")
                    .unwrap_or(decided_by)
                    .to_string(),
                what: what.to_string(),
                detail: format!("run {name} step {step}"),
            });
        }
        if deployed(s) {
            let outputs = &s["outputs"];
            let image = match str_of(outputs, "image") {
                "" => str_of(outputs, "digest"),
                i => i,
            };
            deploys.push(RunDeploy {
                run: name.clone(),
                step: step.to_string(),
                image: image.to_string(),
                at: match str_of(s, "finishedAt") {
                    "" => str_of(s, "startedAt").to_string(),
                    f => f.to_string(),
                },
            });
        }
    }
    (events, deploys)
}

/// Milliseconds since the epoch of an RFC 3339 server timestamp.
fn millis(at: &str) -> Option<i64> {
    model::Timestamp::parse(at).map(|t| t.millis())
}

/// The event an audit record of the app stands for; deploy steps are matched to the
/// nearest deploy of a run (which is then used up).
fn event_of_record(r: &Value, deploys: &mut Vec<RunDeploy>) -> Event {
    let action = str_of(r, "action");
    let detail = str_of(r, "detail");
    let at = str_of(r, "at").to_string();
    let user = str_of(r, "user").to_string();
    let denied = matches!(str_of(r, "outcome"), "denied" | "failed");
    let method = action.split_whitespace().next().unwrap_or("");
    let (what, text) = if action.starts_with("deploy step") {
        let when = millis(&at);
        let nearest = deploys
            .iter()
            .enumerate()
            .filter_map(|(i, d)| Some((i, (millis(&d.at)? - when?).abs())))
            .filter(|(_, gap)| *gap <= SAME_EVENT_MS)
            .min_by_key(|(_, gap)| *gap)
            .map(|(i, _)| i);
        let text = match nearest {
            Some(i) => {
                let d = deploys.remove(i);
                d.text()
            }
            None => "by a pipeline run".to_string(),
        };
        ("deployed", text)
    } else if let Some(version) = detail.strip_prefix("rollback to version ") {
        ("rolled back", format!("to version {version}"))
    } else if method == "DELETE" {
        ("deleted", String::new())
    } else if action.ends_with("/restart") {
        ("restarted", String::new())
    } else if method == "PUT" || method == "POST" || method == "PATCH" {
        // A change through the API (CLI, curl, Marathon clients): a new version.
        let text = if detail.is_empty() {
            "by hand".to_string()
        } else {
            format!("by hand: {detail}")
        };
        ("deployed", text)
    } else {
        ("", action.to_string())
    };
    if denied {
        return Event {
            at,
            user,
            what: str_of(r, "outcome").to_string(),
            detail: if detail.is_empty() { action } else { detail }.to_string(),
        };
    }
    Event {
        at,
        user,
        what: if what.is_empty() {
            action.to_string()
        } else {
            what.to_string()
        },
        detail: text,
    }
}

/// The history of `app` from its audit records (newest first, as the server sends them)
/// and the runs' events, newest first. Deploys of runs without an audit record (older
/// servers) are listed too.
pub(crate) fn history(
    records: &[Value],
    run_events: Vec<Event>,
    deploys: Vec<RunDeploy>,
) -> Vec<Event> {
    let mut deploys = deploys;
    let mut events: Vec<Event> = records
        .iter()
        .map(|r| event_of_record(r, &mut deploys))
        .collect();
    events.extend(deploys.into_iter().map(|d| Event {
        detail: d.text(),
        at: d.at,
        user: "-".to_string(),
        what: "deployed".to_string(),
    }));
    events.extend(run_events);
    // Fixed-width timestamps sort by time.
    events.sort_by(|a, b| b.at.cmp(&a.at));
    events
}

/// `2026-12-06 08:01:02` from `2026-12-06T08:01:02.123Z`.
fn short_time(at: &str) -> String {
    match at.get(..19) {
        Some(t) => t.replacen('T', " ", 1),
        None if at.is_empty() => "-".to_string(),
        None => at.to_string(),
    }
}

/// At most `max` characters, ending in `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// The table: TIME, USER, EVENT, DETAIL, cut so that no line is wider than [`WIDTH`].
pub(crate) fn table(events: &[Event]) -> Table {
    let mut t = Table::new(&["TIME", "USER", "EVENT", "DETAIL"]);
    let user_w = events
        .iter()
        .map(|e| e.user.chars().count().min(USER_WIDTH))
        .max()
        .unwrap_or(0)
        .max(4);
    let what_w = events
        .iter()
        .map(|e| e.what.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(5, 24);
    // 19 for the time and three gaps of 2.
    let detail_w = WIDTH.saturating_sub(19 + user_w + what_w + 6).max(10);
    for e in events {
        t.row(vec![
            short_time(&e.at),
            cut(&e.user, USER_WIDTH),
            cut(&e.what, what_w),
            cut(&e.detail, detail_w),
        ]);
    }
    t
}

/// Reads the runs and builds the history of `app` from its audit `records`.
pub(crate) async fn of_app(client: &Client, app: &str, records: &[Value]) -> Vec<Event> {
    let (events, deploys) = run_events(client, app).await;
    history(records, events, deploys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run() -> Value {
        json!({"id": "r7", "pipeline": "orders", "number": 7, "steps": [
            {"name": "build", "status": "succeeded"},
            {"name": "qa-signoff", "status": "succeeded", "decidedBy": "user:lee",
             "decidedAt": "2026-12-06T08:01:00.000Z"},
            {"name": "deploy-prod", "status": "succeeded",
             "startedAt": "2026-12-06T08:01:01.000Z", "finishedAt": "2026-12-06T08:01:09.000Z",
             "outputs": {"app": "/AA/prod/orders", "image": "127.0.0.1:5000/orders@sha256:ab12",
                         "deployment": "d1"}}]})
    }

    fn record(at: &str, user: &str, action: &str, outcome: &str, detail: Option<&str>) -> Value {
        json!({"at": at, "user": user, "action": action, "outcome": outcome, "detail": detail,
               "app": "/AA/prod/orders"})
    }

    #[test]
    fn approvals_and_deploys_name_run_step_and_image() {
        let (events, deploys) = events_of_run(&run(), "/AA/prod/orders");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].detail, "run orders#7 step qa-signoff");
        let records = [
            record(
                "2026-12-06T08:10:00.000Z",
                "dora",
                "PUT /v2/apps/AA/prod/orders",
                "allowed",
                Some("rollback to version 2026-12-06T07:00:00.000Z"),
            ),
            record(
                "2026-12-06T08:01:02.000Z",
                "lee",
                "deploy step user:lee",
                "allowed",
                None,
            ),
            record(
                "2026-12-06T08:00:00.000Z",
                "dana",
                "PUT /v2/apps/AA/prod/orders",
                "denied",
                Some("developer dana may not deploy to prod (needs role:deployer)"),
            ),
        ];
        let h = history(&records, events, deploys);
        let rows: Vec<(&str, &str, &str)> = h
            .iter()
            .map(|e| (e.user.as_str(), e.what.as_str(), e.detail.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                ("dora", "rolled back", "to version 2026-12-06T07:00:00.000Z"),
                (
                    "lee",
                    "deployed",
                    "run orders#7 step deploy-prod: 127.0.0.1:5000/orders@sha256:ab12"
                ),
                ("lee", "approved", "run orders#7 step qa-signoff"),
                (
                    "dana",
                    "denied",
                    "developer dana may not deploy to prod (needs role:deployer)"
                ),
            ]
        );
        let text = table(&h).render();
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
        assert!(
            text.starts_with("TIME                 USER  EVENT"),
            "{text}"
        );
        assert!(
            text.contains("2026-12-06 08:01:00  lee   approved"),
            "{text}"
        );
    }

    #[test]
    fn other_apps_runs_are_ignored_and_long_details_cut() {
        let (events, deploys) = events_of_run(&run(), "/BB/prod/orders");
        assert!(events.is_empty() && deploys.is_empty());
        let long = Event {
            at: "2026-12-06T08:00:00.000Z".into(),
            user: "a-very-long-user-name".into(),
            what: "deployed".into(),
            detail: "x".repeat(300),
        };
        let text = table(&[long]).render();
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
        assert!(text.contains("a-very-long…"), "{text}");
    }
}
