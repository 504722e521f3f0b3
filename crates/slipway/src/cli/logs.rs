//! `apps logs`: print (and follow) a task's stdout or stderr through the native log API.

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

/// What `apps logs` was asked for.
#[derive(Debug, Clone)]
pub(crate) struct LogsRequest {
    /// App id as typed.
    pub(crate) app: String,
    /// Explicit task id.
    pub(crate) task: Option<String>,
    /// Read stderr instead of stdout.
    pub(crate) stderr: bool,
    /// Keep polling for new output.
    pub(crate) follow: bool,
    /// Initial bytes from the end.
    pub(crate) tail: u64,
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
        }
    }
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
        None => {
            let tasks = client
                .app_tasks(&app)
                .await
                .with_context(|| format!("cannot list the tasks of {app}"))?;
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

    let first = read(None, req.tail).await?;
    out::write_stdout(first.data.as_bytes())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chunks() {
        let c = LogChunk::of(&json!({"data": "ab", "offset": 10, "nextOffset": 12, "size": 20}));
        assert_eq!((c.data.as_str(), c.next_offset, c.size), ("ab", 12, 20));
        let c = LogChunk::of(&json!({"data": "abc", "offset": 5}));
        assert_eq!((c.next_offset, c.size), (8, 8));
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
