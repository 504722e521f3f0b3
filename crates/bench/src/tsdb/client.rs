//! A minimal blocking HTTP/1.1 client over one keep-alive connection: what a line-protocol
//! writer or a dashboard does, without a client library's own costs in the figures.
//! Bodies are framed by `Content-Length` or chunked; a closed connection is reopened.

use anyhow::{Context, bail};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// No request of the benchmark may hang it.
const TIMEOUT: Duration = Duration::from_secs(120);

/// One connection to `addr` (`host:port`), with an optional bearer token.
pub(crate) struct Conn {
    addr: String,
    token: Option<String>,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    pub(crate) fn new(addr: &str, token: Option<&str>) -> Conn {
        Conn {
            addr: addr.to_string(),
            token: token.map(str::to_string),
            stream: None,
        }
    }

    fn stream(&mut self) -> anyhow::Result<&mut BufReader<TcpStream>> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr)
                .with_context(|| format!("cannot connect to {}", self.addr))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(TIMEOUT))?;
            s.set_write_timeout(Some(TIMEOUT))?;
            self.stream = Some(BufReader::with_capacity(64 * 1024, s));
        }
        self.stream.as_mut().context("no connection")
    }

    pub(crate) fn get(&mut self, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        self.request("GET", path, b"")
    }

    pub(crate) fn post(&mut self, path: &str, body: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        self.request("POST", path, body)
    }

    /// Sends one request and reads the whole answer. A keep-alive connection the server
    /// closed while idle is reopened once.
    pub(crate) fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let reused = self.stream.is_some();
        match self.exchange(method, path, body) {
            Ok(answer) => Ok(answer),
            Err(e) if reused => {
                self.stream = None;
                self.exchange(method, path, body)
                    .with_context(|| format!("after a reused connection failed: {e:#}"))
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        head.push_str("\r\n");
        let s = self.stream()?;
        s.get_mut().write_all(head.as_bytes())?;
        s.get_mut().write_all(body)?;
        let mut line = String::new();
        if s.read_line(&mut line)? == 0 {
            bail!("connection closed before the answer");
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut length = None;
        let mut chunked = false;
        let mut close = false;
        loop {
            line.clear();
            if s.read_line(&mut line)? == 0 {
                bail!("connection closed in the headers");
            }
            let h = line.trim_end();
            if h.is_empty() {
                break;
            }
            let Some((name, value)) = h.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut out = Vec::new();
        if status == 204 || status == 304 || method == "HEAD" {
            // No body.
        } else if chunked {
            loop {
                line.clear();
                s.read_line(&mut line)?;
                let size = line.trim().split(';').next().unwrap_or_default();
                let n = usize::from_str_radix(size, 16)
                    .with_context(|| format!("bad chunk size {line:?}"))?;
                if n == 0 {
                    // Trailers, then the blank line.
                    loop {
                        line.clear();
                        if s.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let at = out.len();
                out.resize(at + n, 0);
                s.read_exact(&mut out[at..])?;
                line.clear();
                s.read_line(&mut line)?;
            }
        } else if let Some(n) = length {
            out.resize(n, 0);
            s.read_exact(&mut out)?;
        } else {
            s.read_to_end(&mut out)?;
            close = true;
        }
        if close {
            self.stream = None;
        }
        Ok((status, out))
    }
}

/// Percent-encodes a query-string value (everything but RFC 3986's unreserved set).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
