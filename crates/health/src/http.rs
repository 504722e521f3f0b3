//! Minimal HTTP/1.1 health probe: sends one GET and reads only the status line.

use crate::probe::{connect, connect_cause, lower, timed_out};
use crate::state::ProbeOutcome;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upper bound on bytes read while looking for the status line.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Sends `GET path` to `host:port` and classifies the status code.
///
/// 200–399 is healthy; 1xx is [`ProbeOutcome::Ignored`] with `ignore_1xx`
/// and a failure otherwise (as in Marathon); everything else fails with a
/// cause like "HTTP 503". Connect, write and read are all bounded by
/// `timeout`; the response body is never read.
pub async fn probe_http(
    host: &str,
    port: u16,
    path: &str,
    timeout: Duration,
    ignore_1xx: bool,
) -> ProbeOutcome {
    let request = match build_request(host, port, path) {
        Ok(request) => request,
        Err(cause) => return ProbeOutcome::unhealthy(cause),
    };
    match tokio::time::timeout(timeout, fetch_status(host, port, &request)).await {
        Err(_) => timed_out(timeout),
        Ok(Err(cause)) => ProbeOutcome::unhealthy(cause),
        Ok(Ok(status)) => classify(status, ignore_1xx),
    }
}

/// Maps a final HTTP status code to a probe outcome.
fn classify(status: u16, ignore_1xx: bool) -> ProbeOutcome {
    match status {
        200..=399 => ProbeOutcome::Healthy,
        100..=199 if ignore_1xx => ProbeOutcome::Ignored,
        _ => ProbeOutcome::unhealthy(format!("HTTP {status}")),
    }
}

/// Builds the request bytes, rejecting paths and hosts that would break the
/// request framing.
fn build_request(host: &str, port: u16, path: &str) -> Result<String, String> {
    if path.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return Err("invalid path: contains whitespace or control characters".to_owned());
    }
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_ascii_control() || c == ' ' || c == '/')
    {
        return Err("invalid host".to_owned());
    }
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('/') => p.to_owned(),
        p => format!("/{p}"),
    };
    let host_header = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: slipway-health\r\n\
         Connection: close\r\nAccept: */*\r\n\r\n"
    ))
}

/// Connects, sends `request` and returns the status code of the first
/// status line; errors are failure causes.
async fn fetch_status(host: &str, port: u16, request: &str) -> Result<u16, String> {
    let mut stream = connect(host, port).await.map_err(|e| connect_cause(&e))?;
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending request failed: {}", lower(&e)))?;
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            return parse_status_line(&buf[..end]);
        }
        let room = MAX_HEAD_BYTES - buf.len();
        if room == 0 {
            return Err("invalid HTTP response: status line too long".to_owned());
        }
        let want = room.min(chunk.len());
        let n = stream
            .read(&mut chunk[..want])
            .await
            .map_err(|e| format!("reading response failed: {}", lower(&e)))?;
        if n == 0 {
            return Err(if buf.is_empty() {
                "connection closed without response".to_owned()
            } else {
                "invalid HTTP response".to_owned()
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Parses `HTTP/x.y NNN reason` (without the line terminator) into `NNN`.
fn parse_status_line(line: &[u8]) -> Result<u16, String> {
    let invalid = || "invalid HTTP response".to_owned();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = std::str::from_utf8(line).map_err(|_| invalid())?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/") || code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    match code.parse::<u16>() {
        Ok(status @ 100..=599) => Ok(status),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r"), Ok(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 302 Found"), Ok(302));
        assert_eq!(parse_status_line(b"HTTP/1.1 204"), Ok(204));
        assert_eq!(parse_status_line(b"HTTP/1.1 100 Continue\r"), Ok(100));
        for bad in [
            &b"SSH-2.0-OpenSSH"[..],
            b"HTTP/1.1 2000 OK",
            b"HTTP/1.1 abc",
            b"HTTP/1.1 099 x",
            b"",
        ] {
            assert_eq!(
                parse_status_line(bad),
                Err("invalid HTTP response".to_owned())
            );
        }
    }

    #[test]
    fn classification() {
        assert_eq!(classify(200, false), ProbeOutcome::Healthy);
        assert_eq!(classify(399, false), ProbeOutcome::Healthy);
        assert_eq!(classify(101, true), ProbeOutcome::Ignored);
        assert_eq!(classify(100, false), ProbeOutcome::unhealthy("HTTP 100"));
        assert_eq!(classify(404, true), ProbeOutcome::unhealthy("HTTP 404"));
    }

    #[test]
    fn requests() {
        let r = build_request("10.0.0.1", 31000, "health").expect("valid request");
        assert!(r.starts_with("GET /health HTTP/1.1\r\nHost: 10.0.0.1:31000\r\n"));
        assert!(r.ends_with("Accept: */*\r\n\r\n"));
        let r = build_request("::1", 80, "").expect("valid request");
        assert!(r.starts_with("GET / HTTP/1.1\r\nHost: [::1]:80\r\n"));
        assert!(build_request("h", 80, "/a\r\nX: y").is_err());
        assert!(build_request("h\r\n", 80, "/").is_err());
    }
}
