//! Resumable copy of a container's stdout/stderr into the task sandbox, keyed on Docker's
//! log timestamps so that a restarted follower neither loses nor repeats lines.

use crate::client::{Failure, failure};
use crate::{ContainerState, Docker, DockerError};
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures_util::{FutureExt, StreamExt};
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// File in the sandbox holding the Docker timestamp of the last line written.
pub const SINCE_FILE: &str = ".docker-log-since";
/// Frames written per batch (one file write and one checkpoint per batch).
const BATCH: usize = 512;

/// A log timestamp: seconds since the epoch and nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp(i64, u32);

impl Docker {
    /// Follows the container's output, appending it to `<sandbox>/stdout` and
    /// `<sandbox>/stderr` until the container stops. Resumes after the timestamp recorded in
    /// `<sandbox>/.docker-log-since`, so a second call repeats nothing. A missing container
    /// is `Ok`; a lost daemon is [`DockerError::Unreachable`] (call again later).
    pub async fn follow_logs(&self, container_id: &str, sandbox: &Path) -> Result<(), DockerError> {
        let io = |what: &str, e: std::io::Error| DockerError::Io(format!("{what}: {e}"));
        tokio::fs::create_dir_all(sandbox)
            .await
            .map_err(|e| io(&sandbox.display().to_string(), e))?;
        let since_path = sandbox.join(SINCE_FILE);
        let resume = tokio::fs::read_to_string(&since_path)
            .await
            .ok()
            .and_then(|s| parse_stamp(s.trim()));
        let open = |name: &'static str| {
            let path = sandbox.join(name);
            async move {
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .await
                    .map_err(|e| io(&path.display().to_string(), e))
            }
        };
        let (mut stdout, mut stderr) = (open("stdout").await?, open("stderr").await?);
        let opts = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            timestamps: true,
            since: resume.map_or(0, |s| s.0.clamp(0, i64::from(i32::MAX)) as i32),
            ..Default::default()
        };
        let mut stream = self.api.logs(container_id, Some(opts));
        let mut newest: Option<(Stamp, String)> = None;
        while let Some(first) = stream.next().await {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match stream.next().now_or_never() {
                    Some(Some(item)) => batch.push(item),
                    _ => break,
                }
            }
            let (mut out, mut err, mut broken) = (Vec::new(), Vec::new(), None);
            for item in batch {
                let (buf, message) = match item {
                    Ok(LogOutput::StdErr { message }) => (&mut err, message),
                    Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        (&mut out, message)
                    }
                    Ok(LogOutput::StdIn { .. }) => continue,
                    Err(e) => {
                        broken = Some(e);
                        break;
                    }
                };
                let (stamp, line) = split_line(&message);
                if let Some((stamp, text)) = stamp {
                    if resume.is_some_and(|r| stamp <= r) {
                        continue;
                    }
                    newest = Some((stamp, text));
                }
                buf.extend_from_slice(line);
            }
            if !out.is_empty() {
                stdout.write_all(&out).await.map_err(|e| io("stdout", e))?;
            }
            if !err.is_empty() {
                stderr.write_all(&err).await.map_err(|e| io("stderr", e))?;
            }
            if let Some((_, text)) = newest.take() {
                write_since(&since_path, &text).await?;
            }
            if let Some(e) = broken {
                return match failure(e) {
                    Failure::NotFound(_) => Ok(()),
                    Failure::Unreachable(m) => Err(DockerError::Unreachable(m)),
                    Failure::Conflict(m) | Failure::Other(m) => Err(DockerError::Api(m)),
                };
            }
        }
        // The daemon ends the stream when the container stops, a moment before its state
        // says so; a container still running after that means the stream broke.
        for _ in 0..30 {
            match self.state(container_id).await? {
                ContainerState::Running { .. } => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                _ => return Ok(()),
            }
        }
        Err(DockerError::Unreachable(
            "the log stream ended while the container is still running".into(),
        ))
    }
}

/// Splits `<RFC 3339 timestamp> <line>` into the parsed stamp (with its text) and the line.
fn split_line(message: &[u8]) -> (Option<(Stamp, String)>, &[u8]) {
    let Some(space) = message.iter().position(|b| *b == b' ') else {
        return (None, message);
    };
    let text = String::from_utf8_lossy(&message[..space]);
    match parse_stamp(&text) {
        Some(stamp) => (Some((stamp, text.into_owned())), &message[space + 1..]),
        None => (None, message),
    }
}

/// Writes the checkpoint atomically (temporary file and rename).
async fn write_since(path: &Path, stamp: &str) -> Result<(), DockerError> {
    let tmp = path.with_extension("tmp");
    let result = async {
        tokio::fs::write(&tmp, format!("{stamp}\n")).await?;
        tokio::fs::rename(&tmp, path).await
    };
    result
        .await
        .map_err(|e| DockerError::Io(format!("{}: {e}", path.display())))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
fn parse_stamp(s: &str) -> Option<Stamp> {
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<9}", &frac[..digits.min(9)]);
        nanos = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = rest.get(1..)?.split_once(':')?;
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    Some(Stamp(
        days * 86_400 + hour * 3600 + min * 60 + sec - offset,
        nanos,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_parse_and_order() {
        assert_eq!(parse_stamp("1970-01-01T00:00:00Z"), Some(Stamp(0, 0)));
        assert_eq!(
            parse_stamp("2024-02-29T12:34:56.123456789Z"),
            Some(Stamp(1_709_210_096, 123_456_789))
        );
        assert_eq!(
            parse_stamp("2024-02-29T13:34:56.5+01:00"),
            Some(Stamp(1_709_210_096, 500_000_000))
        );
        assert!(
            parse_stamp("2024-02-29T12:34:56.000000001Z") > parse_stamp("2024-02-29T12:34:56Z")
        );
        for bad in [
            "",
            "hello world",
            "2024-13-01T00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
        ] {
            assert_eq!(parse_stamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn lines_lose_their_timestamp_prefix() {
        let (stamp, line) = split_line(b"2024-01-01T00:00:01.000000002Z hello world\n");
        assert_eq!(stamp.map(|s| s.0), Some(Stamp(1_704_067_201, 2)));
        assert_eq!(line, b"hello world\n");
        let (stamp, line) = split_line(b"no stamp here\n");
        assert!(stamp.is_none());
        assert_eq!(line, b"no stamp here\n");
    }
}
