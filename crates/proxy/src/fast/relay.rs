//! Moving one exchange's bytes: the request body from the client to the backend, and the
//! response (head, then body) from the backend to the client, each framed as its sender
//! framed it and forwarded as it came, through one buffer per direction.

use std::fmt::Write as _;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::ReadHalf;

use super::buf::Buf;
use super::chunked::{BadChunk, Chunked};
use super::head::{self, Framing, Parsed};
use crate::backend::TaskStats;

/// What is left of a body.
pub(crate) enum Left {
    /// This many bytes.
    Length(u64),
    /// The rest of a chunked body.
    Chunked(Chunked),
    /// Everything until the sender closes.
    Close,
    /// Nothing.
    Done,
}

impl Left {
    /// All of a body framed so.
    pub(crate) fn new(framing: Framing) -> Left {
        match framing {
            Framing::Empty | Framing::Length(0) => Left::Done,
            Framing::Length(n) => Left::Length(n),
            Framing::Chunked => Left::Chunked(Chunked::new()),
            Framing::Close => Left::Close,
        }
    }

    /// Whether the whole body was seen.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Left::Done)
    }

    /// How many of `bytes` (the next ones of the stream) belong to the body; moves past
    /// them.
    pub(crate) fn take(&mut self, bytes: &[u8]) -> Result<usize, BadChunk> {
        let n = match self {
            Left::Done => return Ok(0),
            Left::Close => return Ok(bytes.len()),
            Left::Length(left) => {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                *left -= n as u64;
                if *left > 0 {
                    return Ok(n);
                }
                n
            }
            Left::Chunked(chunked) => {
                let n = chunked.scan(bytes)?;
                if !chunked.is_done() {
                    return Ok(n);
                }
                n
            }
        };
        *self = Left::Done;
        Ok(n)
    }
}

/// Why an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The backend failed (closed, reset, sent something invalid) before anything of the
    /// response went to the client.
    Backend,
    /// The backend failed in the middle of the response body.
    BackendBody,
    /// The client went away (or sent a broken body).
    Client,
}

/// A response relayed to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The backend connection may carry another request.
    pub(crate) reusable: bool,
    /// The client connection must close now.
    pub(crate) close: bool,
}

/// Appends `data` as one chunk (nothing when empty: that would end the body).
fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut size = String::with_capacity(16);
    let _ = write!(size, "{:x}\r\n", data.len());
    out.extend_from_slice(size.as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Sends `head` (the request head for the backend) and the request body: what `buf`
/// holds of it goes in the same write, the rest is read from the client as it comes.
pub(crate) async fn send_request<R, W>(
    client: &mut R,
    backend: &mut W,
    buf: &mut Buf,
    head: &mut Vec<u8>,
    left: &mut Left,
) -> Result<(), Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let n = left.take(buf.filled()).map_err(|_| Failure::Client)?;
    head.extend_from_slice(&buf.filled()[..n]);
    buf.consume(n);
    backend
        .write_all(head)
        .await
        .map_err(|_| Failure::Backend)?;
    while !left.is_done() {
        match buf.read_from(client).await {
            Ok(0) | Err(_) => return Err(Failure::Client),
            Ok(_) => {}
        }
        let n = left.take(buf.filled()).map_err(|_| Failure::Client)?;
        backend
            .write_all(&buf.filled()[..n])
            .await
            .map_err(|_| Failure::Backend)?;
        buf.consume(n);
    }
    Ok(())
}

/// Returns when the client closed its connection (or it failed) while its request is
/// being answered; what it sends meanwhile (a pipelined request) is kept in `buf`. Like
/// hyper's server, a client that closes its side gives up its request.
pub(crate) async fn client_gone(client: &ReadHalf<'_>, buf: &mut Buf) {
    loop {
        if buf.is_full() {
            // Nothing more is read until the exchange ends.
            return std::future::pending().await;
        }
        if client.readable().await.is_err() {
            return;
        }
        match buf.fill_with(|room| client.try_read(room)) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Reads the response to a request (`head`: it was a `HEAD`) from the backend and relays
/// it to the client, which closes after it when `close`. Informational (1xx) heads are
/// skipped; the status is counted for `task` once the head is known to be valid.
pub(crate) async fn respond<R, W>(
    backend: &mut R,
    client: &mut W,
    buf: &mut Buf,
    out: &mut Vec<u8>,
    head: bool,
    close: bool,
    task: &TaskStats,
) -> Result<Answer, Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let resp = loop {
        match head::parse_response(buf.filled(), head, close, out) {
            Parsed::Head(r) if r.status < 200 => buf.consume(r.len),
            Parsed::Head(r) => break r,
            Parsed::Unusual => return Err(Failure::Backend),
            Parsed::Partial => match buf.read_from(backend).await {
                Ok(0) | Err(_) => return Err(Failure::Backend),
                Ok(_) => {}
            },
        }
    };
    let mut left = Left::new(resp.body);
    let first = left
        .take(&buf.filled()[resp.len..])
        .map_err(|_| Failure::Backend)?;
    task.codes.record(resp.status);
    task.app.codes.record(resp.status);
    let end = resp.len + first;
    let bytes = if resp.rechunk {
        chunk(out, &buf.filled()[resp.len..end]);
        &out[..]
    } else if resp.rewritten {
        out.extend_from_slice(&buf.filled()[resp.len..end]);
        &out[..]
    } else {
        &buf.filled()[..end]
    };
    client.write_all(bytes).await.map_err(|_| Failure::Client)?;
    buf.consume(end);
    while !left.is_done() {
        match buf.read_from(backend).await {
            Ok(0) if matches!(left, Left::Close) => {
                if resp.rechunk {
                    client
                        .write_all(b"0\r\n\r\n")
                        .await
                        .map_err(|_| Failure::Client)?;
                }
                return Ok(Answer {
                    reusable: false,
                    close: resp.close,
                });
            }
            Ok(0) | Err(_) => return Err(Failure::BackendBody),
            Ok(_) => {}
        }
        let n = left.take(buf.filled()).map_err(|_| Failure::BackendBody)?;
        let bytes = if resp.rechunk {
            out.clear();
            chunk(out, &buf.filled()[..n]);
            &out[..]
        } else {
            &buf.filled()[..n]
        };
        client.write_all(bytes).await.map_err(|_| Failure::Client)?;
        buf.consume(n);
    }
    Ok(Answer {
        // Bytes after the response: the backend is confused, do not reuse.
        reusable: resp.reusable && buf.is_empty(),
        close: resp.close,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::AppStats;
    use std::sync::Arc;

    fn task() -> TaskStats {
        TaskStats::new("t", Arc::new(AppStats::new("/a")))
    }

    /// Relays `backend` bytes read `step` at a time; what the client got, or the failure.
    async fn relay(backend: &[u8], step: usize, head: bool) -> (Result<Answer, Failure>, String) {
        let mut reader = tokio_test_reader(backend, step);
        let mut client = Vec::new();
        let mut buf = Buf::new(head::MAX_HEAD);
        let mut out = Vec::new();
        let t = task();
        let r = respond(
            &mut reader,
            &mut client,
            &mut buf,
            &mut out,
            head,
            false,
            &t,
        )
        .await;
        (r, String::from_utf8_lossy(&client).into_owned())
    }

    /// A reader handing out `step` bytes per read.
    fn tokio_test_reader(data: &[u8], step: usize) -> impl AsyncRead + Unpin {
        struct Steps(Vec<u8>, usize, usize);
        impl AsyncRead for Steps {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let this = self.get_mut();
                let n = this.1.min(this.0.len() - this.2).min(buf.remaining());
                buf.put_slice(&this.0[this.2..this.2 + n]);
                this.2 += n;
                std::task::Poll::Ready(Ok(()))
            }
        }
        Steps(data.to_vec(), step, 0)
    }

    #[tokio::test]
    async fn responses_are_relayed_in_any_split() {
        let keep = Answer {
            reusable: true,
            close: false,
        };
        let cases: [(&str, &str, Answer); 3] = [
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
                keep,
            ),
            (
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                keep,
            ),
            (
                "HTTP/1.0 200 OK\r\n\r\nuntil the end",
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                Answer {
                    reusable: false,
                    close: false,
                },
            ),
        ];
        for (backend, client, answer) in cases {
            for step in [1, 2, 7, 1000] {
                let (r, got) = relay(backend.as_bytes(), step, false).await;
                assert_eq!(r, Ok(answer), "{backend:?} step {step}");
                if answer.reusable {
                    assert_eq!(got, client, "{backend:?} step {step}");
                } else {
                    // Re-chunked: the same bytes whatever the reads were.
                    assert!(got.starts_with(client), "{got:?}");
                    let body = &got[client.len()..];
                    assert!(body.ends_with("0\r\n\r\n"), "{got:?}");
                    let mut decoded = String::new();
                    let mut rest = body;
                    while let Some((size, tail)) = rest.split_once("\r\n") {
                        let size = usize::from_str_radix(size, 16).expect("hex size");
                        if size == 0 {
                            break;
                        }
                        decoded.push_str(&tail[..size]);
                        rest = &tail[size + 2..];
                    }
                    assert_eq!(decoded, "until the end");
                }
            }
        }
    }

    #[tokio::test]
    async fn bytes_after_the_response_make_the_connection_unusable() {
        let (r, got) = relay(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA",
            1000,
            false,
        )
        .await;
        assert_eq!(r.map(|a| a.reusable), Ok(false));
        assert_eq!(got, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    }

    #[tokio::test]
    async fn broken_responses_fail_before_or_after_the_head() {
        let (r, got) = relay(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel", 3, false).await;
        assert_eq!(r, Err(Failure::BackendBody));
        assert!(got.ends_with("hel"), "{got:?}");
        let (r, got) = relay(b"HTTP/1.1 200 OK\r\ncontent-le", 3, false).await;
        assert_eq!((r, got.as_str()), (Err(Failure::Backend), ""));
        let (r, got) = relay(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            100,
            false,
        )
        .await;
        assert_eq!((r, got.as_str()), (Err(Failure::Backend), ""));
        let (r, _) = relay(b"", 1, false).await;
        assert_eq!(r, Err(Failure::Backend));
        let (r, got) = relay(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", 100, true).await;
        assert_eq!(
            r.map(|a| a.reusable),
            Ok(true),
            "a HEAD response has no body"
        );
        assert_eq!(got, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
    }

    #[tokio::test]
    async fn request_bodies_go_with_their_head() {
        let mut buf = Buf::new(head::MAX_HEAD);
        let mut pre = &b"abc"[..];
        buf.read_from(&mut pre).await.expect("read");
        let mut client = &b"defGET /next"[..];
        let mut backend = Vec::new();
        let mut head = b"POST / HTTP/1.1\r\ncontent-length: 6\r\n\r\n".to_vec();
        let mut left = Left::new(Framing::Length(6));
        send_request(&mut client, &mut backend, &mut buf, &mut head, &mut left)
            .await
            .expect("sent");
        assert_eq!(
            backend,
            b"POST / HTTP/1.1\r\ncontent-length: 6\r\n\r\nabcdef"
        );
        assert_eq!(buf.filled(), b"GET /next", "the next request stays");
        assert!(left.is_done());
    }
}
