//! `slipway audit`: the append-only audit log (`GET /api/v1/audit`), newest first; with
//! `--app`, the app's history of approvals, deploys and rollbacks ([`super::history`]).

use anyhow::Context;
use clap::Args;
use model::Timestamp;
use serde_json::Value;

use super::Output;
use super::client::{Client, array_field};
use super::error::Exit;
use super::ids::AppId;
use super::out::{self, or_dash, scalar, str_of, u64_of};
use super::table::Table;

/// The server's page size when no --limit is given.
const SERVER_DEFAULT_LIMIT: u64 = 100;
/// Characters of `detail` shown in the table (JSON output has all of it).
const DETAIL_WIDTH: usize = 60;

/// Filters of `slipway audit`.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct Filter {
    /// Only records of this user.
    #[arg(long, value_name = "NAME")]
    pub(crate) user: Option<String>,
    /// Only records about this app, e.g. `/prod/web`.
    #[arg(long, value_name = "ID")]
    pub(crate) app: Option<String>,
    /// Only records at or after this time: `2026-11-28T10:00:00Z`, epoch ms, or an age
    /// such as `90s`, `15m`, `2h`, `7d`.
    #[arg(long, value_name = "TIME")]
    pub(crate) since: Option<String>,
    /// Only records before this time (same formats as --since).
    #[arg(long, value_name = "TIME")]
    pub(crate) until: Option<String>,
    /// Only records older than this sequence number (for paging back).
    #[arg(long, value_name = "SEQ")]
    pub(crate) before: Option<u64>,
    /// At most this many records (server default 100, at most 1000).
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u64>,
}

/// Runs `slipway audit`.
pub(crate) async fn run(client: &Client, output: Output, filter: &Filter) -> anyhow::Result<Exit> {
    let params = query(filter, Timestamp::now());
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let v = client
        .get("/api/v1/audit", &pairs)
        .await
        .context("cannot read the audit log")?;
    let records = array_field(v, "records");
    match (output, &filter.app) {
        (Output::Json, _) => out::json(&Value::Array(records.clone()))?,
        // One app: who approved, released, deployed and rolled back what.
        (Output::Text, Some(app)) => {
            let app = AppId::new(app);
            let events = super::history::of_app(client, app.display(), &records).await;
            out::write_stdout(super::history::table(&events).render().as_bytes())?;
        }
        (Output::Text, None) => out::write_stdout(audit_table(&records).render().as_bytes())?,
    }
    if let Some(hint) = more_hint(&records, filter.limit) {
        eprintln!("{hint}");
    }
    Ok(Exit::Success)
}

/// The query parameters for `filter`; ages in --since/--until count back from `now`.
fn query(filter: &Filter, now: Timestamp) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(u) = &filter.user {
        q.push(("user", u.clone()));
    }
    if let Some(a) = &filter.app {
        q.push(("app", AppId::new(a).display().to_string()));
    }
    if let Some(s) = &filter.since {
        q.push(("since", time_param(s, now)));
    }
    if let Some(u) = &filter.until {
        q.push(("until", time_param(u, now)));
    }
    if let Some(b) = filter.before {
        q.push(("before", b.to_string()));
    }
    if let Some(l) = filter.limit {
        q.push(("limit", l.to_string()));
    }
    q
}

/// An age like `15m` as epoch ms before `now`; anything else is passed on for the server
/// to parse (ISO timestamps, epoch ms) or reject.
fn time_param(raw: &str, now: Timestamp) -> String {
    let raw = raw.trim();
    let unit_ms = match raw.chars().last() {
        Some('s') => 1_000,
        Some('m') => 60_000,
        Some('h') => 3_600_000,
        Some('d') => 86_400_000,
        _ => return raw.to_string(),
    };
    match raw[..raw.len() - 1].parse::<i64>() {
        Ok(n) if n >= 0 => now
            .millis()
            .saturating_sub(n.saturating_mul(unit_ms))
            .max(0)
            .to_string(),
        _ => raw.to_string(),
    }
}

/// The `audit` table.
pub(crate) fn audit_table(records: &[Value]) -> Table {
    let mut t = Table::new(&[
        "SEQ",
        "TIME",
        "USER",
        "OUTCOME",
        "STATUS",
        "ACTION",
        "APP/TARGET",
        "DETAIL",
    ]);
    for r in records {
        let subject = match str_of(r, "app") {
            "" => str_of(r, "target"),
            app => app,
        };
        t.row(vec![
            r.get("seq").map(scalar).unwrap_or_else(|| "-".into()),
            or_dash(str_of(r, "at")),
            or_dash(str_of(r, "user")),
            or_dash(str_of(r, "outcome")),
            r.get("status").map(scalar).unwrap_or_else(|| "-".into()),
            or_dash(str_of(r, "action")),
            or_dash(subject),
            truncate(str_of(r, "detail"), DETAIL_WIDTH),
        ]);
    }
    t
}

/// At most `max` characters, the last one `…` when cut; `-` when empty.
fn truncate(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return or_dash(text);
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// How to page back when the answer is a full page.
fn more_hint(records: &[Value], limit: Option<u64>) -> Option<String> {
    let page = limit.unwrap_or(SERVER_DEFAULT_LIMIT).min(1000);
    let oldest = records.last().and_then(|r| u64_of(r, "seq"))?;
    (records.len() as u64 >= page && page > 0)
        .then(|| format!("more records may exist: add --before {oldest} for older ones"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(seq: u64, app: Option<&str>, detail: Option<&str>) -> Value {
        json!({"seq": seq, "at": "2026-11-28T10:00:00.000Z", "user": "alice",
               "action": "PUT /v2/apps/web", "target": "app:/web", "app": app,
               "source": "127.0.0.1", "status": 403, "outcome": "denied", "detail": detail})
    }

    #[test]
    fn table_prefers_app_and_truncates_detail() {
        let long = "x".repeat(80);
        let records = [
            rec(7, Some("/web"), Some("policy prod needs approval")),
            rec(6, None, Some(&long)),
        ];
        let text = audit_table(&records).render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "SEQ  TIME                      USER   OUTCOME  STATUS  ACTION            APP/TARGET  DETAIL"
        );
        assert_eq!(
            lines[1],
            "7    2026-11-28T10:00:00.000Z  alice  denied   403     PUT /v2/apps/web  /web        \
             policy prod needs approval"
        );
        assert!(lines[2].contains("app:/web"));
        assert!(lines[2].ends_with(&format!("{}…", "x".repeat(59))));
        let bare = audit_table(&[json!({})]).render();
        assert_eq!(
            bare.lines().nth(1),
            Some("-    -     -     -        -       -       -           -")
        );
    }

    #[test]
    fn ages_become_epoch_ms_and_the_rest_passes() {
        let now = Timestamp(10_000_000);
        assert_eq!(time_param("15m", now), "9100000");
        assert_eq!(
            time_param(" 2h ", now),
            (10_000_000 - 7_200_000).to_string()
        );
        assert_eq!(time_param("1d", now), "0");
        assert_eq!(time_param("30s", now), "9970000");
        assert_eq!(
            time_param("2026-11-28T10:00:00Z", now),
            "2026-11-28T10:00:00Z"
        );
        assert_eq!(time_param("1700000000000", now), "1700000000000");
        assert_eq!(time_param("-5m", now), "-5m");
        assert_eq!(time_param("m", now), "m");
    }

    #[test]
    fn query_has_only_given_filters() {
        let now = Timestamp(0);
        assert!(query(&Filter::default(), now).is_empty());
        let f = Filter {
            user: Some("bob".into()),
            app: Some("prod/web".into()),
            limit: Some(5),
            before: Some(42),
            ..Filter::default()
        };
        let q: Vec<(&str, String)> = query(&f, now);
        let want = [
            ("user", "bob"),
            ("app", "/prod/web"),
            ("before", "42"),
            ("limit", "5"),
        ];
        assert_eq!(q, want.map(|(k, v)| (k, v.to_string())));
    }

    #[test]
    fn paging_hint_on_full_pages_only() {
        let page: Vec<Value> = (1..=3).rev().map(|s| rec(s, None, None)).collect();
        assert_eq!(
            more_hint(&page, Some(3)).as_deref(),
            Some("more records may exist: add --before 1 for older ones")
        );
        assert_eq!(more_hint(&page, Some(4)), None);
        assert_eq!(more_hint(&page, None), None);
        assert_eq!(more_hint(&[], Some(0)), None);
        assert_eq!(truncate("", 5), "-");
    }
}
