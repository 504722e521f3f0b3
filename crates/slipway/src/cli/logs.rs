//! `apps logs`: print (and follow) a task's stdout or stderr through the native log API:
//! the newest running task, a given one, or the one that ended last (`--previous`); the
//! last N lines (`--tail N`) or the last 64 KiB.

use anyhow::Context;
use serde_json::Value;
use std::time::Duration;

use super::client::Client;
use super::error::{Exit, coded};
use super::ids::{AppId, segment};
use super::out::{self, str_of, u64_of};

/// Time between two polls when following.
const POLL: Duration = Duration::from_millis(500);
/// Bytes asked for per request when following.
const CHUNK: u64 = 1024 * 1024;
/// What is printed first without `--tail`: the last 64 KiB.
const DEFAULT_TAIL_BYTES: u64 = 64 * 1024;
/// The most `--tail N` reads from the end of a log to find N lines.
const MAX_TAIL_BYTES: u64 = 64 * 1024 * 1024;

/// What `apps logs` was asked for.
#[derive(Debug, Clone)]
pub(crate) struct LogsRequest {
    /// App id as typed.
    pub(crate) app: String,
    /// Explicit task id.
    pub(crate) task: Option<String>,
    /// The task that ended last instead of the newest running one.
    pub(crate) previous: bool,
    /// Read stderr instead of stdout.
    pub(crate) stderr: bool,
    /// Keep polling for new output.
    pub(crate) follow: bool,
    /// Initial lines from the end (`None`: the last [`DEFAULT_TAIL_BYTES`]).
    pub(crate) tail: Option<usize>,
}

/// One answer of `GET /api/v1/tasks/{id}/logs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogChunk {
    /// The text read.
    pub(crate) data: String,
    /// Where to read next.
    pub(crate) next_offset: u64,
    /// Current size of the log file.
    pub(crate) size: u64,
    /// Where `data` starts in the file.
    pub(crate) offset: u64,
}

impl LogChunk {
    /// Parses the answer; a missing `nextOffset` is `offset` plus the data length.
    pub(crate) fn of(v: &Value) -> LogChunk {
        let data = str_of(v, "data").to_string();
        let offset = u64_of(v, "offset").unwrap_or(0);
        let next_offset = u64_of(v, "nextOffset").unwrap_or(offset + data.len() as u64);
        let size = u64_of(v, "size").unwrap_or(next_offset);
        LogChunk {
            data,
            next_offset,
            size,
            offset,
        }
    }
}

/// The end of a log to print first: its last `lines` lines (all of `data` when it has
/// fewer), or, without a count, `data` less a first line cut in the middle (when `data`
/// does not start at the beginning of the file).
pub(crate) fn tail_of(data: &str, starts_at_beginning: bool, lines: Option<usize>) -> &str {
    let whole = if starts_at_beginning {
        data
    } else {
        data.find('\n').map_or("", |i| &data[i + 1..])
    };
    let Some(n) = lines else { return whole };
    if n == 0 {
        return "";
    }
    // The last line may lack its newline; count line starts from the end.
    let body = whole.strip_suffix('\n').unwrap_or(whole);
    match body.rmatch_indices('\n').nth(n - 1) {
        Some((i, _)) => &whole[i + 1..],
        None => whole,
    }
}

/// Whether `data` holds more than `n` complete lines (so its last `n` are known).
fn has_lines(data: &str, n: usize) -> bool {
    data.matches('\n').count() > n
}

/// The task to read when none is given: the newest running task (by `startedAt`), else the
/// newest task in any state (by `stagedAt`).
pub(crate) fn newest_task(tasks: &[Value]) -> Option<&str> {
    let newest = |key: &str, running_only: bool| {
        tasks
            .iter()
            .filter(|t| !running_only || str_of(t, "state") == "TASK_RUNNING")
            .max_by(|a, b| str_of(a, key).cmp(str_of(b, key)))
            .map(|t| str_of(t, "id"))
            .filter(|id| !id.is_empty())
    };
    newest("startedAt", true).or_else(|| newest("stagedAt", false))
}

/// Runs `apps logs`.
pub(crate) async fn run(client: &Client, req: &LogsRequest) -> anyhow::Result<Exit> {
    let app = AppId::new(&req.app);
    let task_id = match &req.task {
        Some(t) => t.clone(),
        None if req.previous => previous_task(client, &app).await?,
        None => {
            let tasks = match client.app_tasks(&app).await {
                Ok(tasks) => tasks,
                Err(e) if super::client::is_not_found(&e) => return Err(client.no_app(&app).await),
                Err(e) => return Err(e.context(format!("cannot list the tasks of {app}"))),
            };
            newest_task(&tasks)
                .map(str::to_string)
                .ok_or_else(|| coded(Exit::Failed, format!("app {app} has no tasks")))?
        }
    };
    let stream = if req.stderr { "stderr" } else { "stdout" };
    let path = format!("/api/v1/tasks/{}/logs", segment(&task_id));
    let read = |offset: Option<u64>, limit: u64| {
        let path = &path;
        let task_id = &task_id;
        async move {
            let limit = limit.to_string();
            let mut query = vec![("stream", stream.to_string()), ("limit", limit)];
            if let Some(o) = offset {
                query.push(("offset", o.to_string()));
            }
            let rb = client.request(reqwest::Method::GET, path).query(&query);
            let v = client
                .json(rb)
                .await
                .with_context(|| format!("cannot read the {stream} of task {task_id}"))?;
            anyhow::Ok(LogChunk::of(&v))
        }
    };

    // The first read: the last 64 KiB, or as many bytes from the end as hold N lines.
    let mut limit = DEFAULT_TAIL_BYTES;
    let first = loop {
        let chunk = read(None, limit).await?;
        let enough = match req.tail {
            None => true,
            Some(n) => chunk.offset == 0 || has_lines(&chunk.data, n) || limit >= MAX_TAIL_BYTES,
        };
        if enough {
            break chunk;
        }
        limit *= 4;
    };
    let text = tail_of(&first.data, first.offset == 0, req.tail);
    out::write_stdout(text.as_bytes())?;
    if !req.follow {
        return Ok(Exit::Success);
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut offset = first.next_offset;
    loop {
        let chunk = tokio::select! {
            _ = &mut ctrl_c => return Ok(Exit::Success),
            chunk = read(Some(offset), CHUNK) => chunk?,
        };
        if chunk.size < offset {
            // Rotated (copytruncate): the file starts over.
            offset = 0;
            continue;
        }
        out::write_stdout(chunk.data.as_bytes())?;
        let more = chunk.next_offset < chunk.size;
        offset = chunk.next_offset;
        if more {
            continue;
        }
        tokio::select! {
            _ = &mut ctrl_c => return Ok(Exit::Success),
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// The task of `app` that ended last, from the app's native status (newest first).
async fn previous_task(client: &Client, app: &AppId) -> anyhow::Result<String> {
    client.app(app).await?;
    let status = client
        .get(&format!("/api/v1/apps/{}/status", app.path()), &[])
        .await
        .with_context(|| format!("cannot read the status of {app}"))?;
    status
        .get("terminated")
        .and_then(Value::as_array)
        .and_then(|ended| ended.first())
        .map(|t| str_of(t, "id").to_string())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            coded(
                Exit::Failed,
                format!("{app} has no ended task whose output is kept"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chunks() {
        let c = LogChunk::of(&json!({"data": "ab", "offset": 10, "nextOffset": 12, "size": 20}));
        assert_eq!((c.data.as_str(), c.next_offset, c.size), ("ab", 12, 20));
        let c = LogChunk::of(&json!({"data": "abc", "offset": 5}));
        assert_eq!((c.next_offset, c.size, c.offset), (8, 8, 5));
    }

    #[test]
    fn tails_count_lines() {
        let log = "one\ntwo\nthree\n";
        assert_eq!(tail_of(log, true, Some(2)), "two\nthree\n");
        assert_eq!(tail_of(log, true, Some(1)), "three\n");
        assert_eq!(tail_of(log, true, Some(3)), log);
        assert_eq!(tail_of(log, true, Some(9)), log);
        assert_eq!(tail_of(log, true, Some(0)), "");
        assert_eq!(tail_of(log, true, None), log);
        // A last line without its newline is a line.
        assert_eq!(tail_of("a\nb\nc", true, Some(2)), "b\nc");
        // A read that starts mid-file drops the cut first line.
        assert_eq!(tail_of("ne\ntwo\nthree\n", false, None), "two\nthree\n");
        assert_eq!(tail_of("ne\ntwo\nthree\n", false, Some(5)), "two\nthree\n");
        assert!(has_lines(log, 2) && !has_lines(log, 3));
    }

    #[test]
    fn picks_the_newest_running_task() {
        let t = |id: &str, state: &str, staged: &str, started: &str| json!({"id": id, "state": state, "stagedAt": staged, "startedAt": started});
        let tasks = [
            t("a", "TASK_RUNNING", "1", "2024-01-01T00:00:01.000Z"),
            t("b", "TASK_RUNNING", "1", "2024-01-01T00:00:03.000Z"),
            t("c", "TASK_STAGING", "9", ""),
        ];
        assert_eq!(newest_task(&tasks), Some("b"));
        let none_running = [
            t("x", "TASK_STAGING", "1", ""),
            t("y", "TASK_FAILED", "2", ""),
        ];
        assert_eq!(newest_task(&none_running), Some("y"));
        assert_eq!(newest_task(&[]), None);
    }
}
