//! Message heads on the fast path: a client's request head is parsed with `httparse`,
//! judged (anything unusual is left to the hyper path) and rewritten for the backend the
//! way the hyper path rewrites it; a backend's response head is parsed, its body framing
//! found, and rewritten for the client only when something in it must change.

use std::mem::MaybeUninit;

/// Longest head read before giving up (requests: to the hyper path; responses: 502).
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Request headers parsed here; more go to the hyper path.
const REQUEST_HEADERS: usize = 64;
/// Response headers accepted (hyper's default limit).
const RESPONSE_HEADERS: usize = 100;
/// Header names a `Connection` header may list.
const CONNECTION_TOKENS: usize = 8;

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the sender closes (responses only).
    Close,
}

/// What parsing a head from the start of a buffer found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed<T> {
    /// More bytes are needed.
    Partial,
    /// A complete head.
    Head(T),
    /// Not for the fast path (requests) or not valid (responses).
    Unusual,
}

/// A client request the fast path serves; its backend head was written to `out`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request<'b> {
    /// Length of the head in the buffer.
    pub(crate) len: usize,
    /// Its body.
    pub(crate) body: Framing,
    /// It may be sent again after a failure: an idempotent method and no body.
    pub(crate) resend: bool,
    /// The client asked to close the connection after it (`Connection: close`).
    pub(crate) close: bool,
    /// The method is `HEAD` (the response has no body).
    pub(crate) head: bool,
    /// The `Host` header's value.
    pub(crate) host: &'b [u8],
    /// The target's path, without the query.
    pub(crate) path: &'b str,
}

/// A backend response head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Response {
    /// Length of the head in the buffer.
    pub(crate) len: usize,
    /// The status code; 1xx informational heads are reported with an empty body.
    pub(crate) status: u16,
    /// Its body as the backend frames it.
    pub(crate) body: Framing,
    /// The backend keeps the connection open after it.
    pub(crate) reusable: bool,
    /// `out` holds the head to send to the client (otherwise the head is sent as it came).
    pub(crate) rewritten: bool,
    /// A body delimited by close is sent to the client chunked.
    pub(crate) rechunk: bool,
    /// The client connection must close after it.
    pub(crate) close: bool,
}

/// Case-insensitive comparison with a lower-case name.
fn is(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len() && name.eq_ignore_ascii_case(lower)
}

/// The comma-separated, trimmed, non-empty items of a header value.
fn items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// A `Content-Length` value: ASCII digits only.
fn length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Header names listed in `Connection` headers.
struct Tokens<'b> {
    names: [&'b [u8]; CONNECTION_TOKENS],
    len: usize,
    close: bool,
    keep_alive: bool,
}

impl<'b> Tokens<'b> {
    fn new() -> Tokens<'b> {
        Tokens {
            names: [&[]; CONNECTION_TOKENS],
            len: 0,
            close: false,
            keep_alive: false,
        }
    }

    /// Adds the items of one `Connection` header; false when there are too many.
    fn add(&mut self, value: &'b [u8]) -> bool {
        for token in items(value) {
            if is(token, b"close") {
                self.close = true;
            } else if is(token, b"keep-alive") {
                self.keep_alive = true;
            } else if self.len == CONNECTION_TOKENS {
                return false;
            } else {
                self.names[self.len] = token;
                self.len += 1;
            }
        }
        true
    }

    fn lists(&self, name: &[u8]) -> bool {
        self.names[..self.len]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name))
    }
}

/// Hop-by-hop headers the proxy always drops (besides those `Connection` lists).
fn hop_by_hop(name: &[u8]) -> bool {
    is(name, b"connection") || is(name, b"keep-alive") || is(name, b"proxy-connection")
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Parses a request head at the start of `buf` and, when the fast path can serve it,
/// writes the head to send to the backend into `out`: origin-form, HTTP/1.1, hop-by-hop
/// headers dropped, `X-Forwarded-For` (`xff`) appended, `X-Forwarded-Proto` and
/// `X-Forwarded-Host` set. Unusual requests (not HTTP/1.1, `CONNECT`, absolute-form,
/// `Upgrade`, `Expect`, no or several `Host`s, ambiguous framing, too many headers,
/// malformed, too large) are left to the hyper path.
pub(crate) fn parse_request<'b>(
    buf: &'b [u8],
    xff: &[u8],
    out: &mut Vec<u8>,
) -> Parsed<Request<'b>> {
    let mut slots = [MaybeUninit::<httparse::Header<'b>>::uninit(); REQUEST_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Parsed::Partial,
        Ok(httparse::Status::Partial) | Err(_) => return Parsed::Unusual,
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Parsed::Unusual;
    };
    if method == "CONNECT" || !target.starts_with('/') {
        return Parsed::Unusual;
    }
    let (mut host, mut hosts) = (&[][..], 0);
    let (mut content_length, mut chunked) = (None, false);
    let mut tokens = Tokens::new();
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if is(name, b"host") {
            host = h.value;
            hosts += 1;
        } else if is(name, b"content-length") {
            let Some(n) = length(h.value) else {
                return Parsed::Unusual;
            };
            if content_length.replace(n).is_some() {
                return Parsed::Unusual;
            }
        } else if is(name, b"transfer-encoding") {
            if chunked || !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Parsed::Unusual;
            }
            chunked = true;
        } else if is(name, b"connection") {
            if !tokens.add(h.value) {
                return Parsed::Unusual;
            }
        } else if is(name, b"upgrade") || is(name, b"expect") {
            return Parsed::Unusual;
        }
    }
    if hosts != 1 || (chunked && content_length.is_some()) {
        return Parsed::Unusual;
    }
    // A `Connection` header naming the framing or the host is not worth the trouble.
    if [&b"host"[..], b"content-length", b"transfer-encoding"]
        .iter()
        .any(|n| tokens.lists(n))
    {
        return Parsed::Unusual;
    }
    let body = match (chunked, content_length) {
        (true, _) => Framing::Chunked,
        (false, None | Some(0)) => Framing::Empty,
        (false, Some(n)) => Framing::Length(n),
    };
    let idempotent = matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
    );

    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if hop_by_hop(name)
            || is(name, b"x-forwarded-proto")
            || is(name, b"x-forwarded-host")
            || tokens.lists(name)
        {
            continue;
        }
        header_line(out, name, h.value);
    }
    header_line(out, b"x-forwarded-for", xff);
    out.extend_from_slice(b"x-forwarded-proto: http\r\n");
    header_line(out, b"x-forwarded-host", host);
    out.extend_from_slice(b"\r\n");

    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Parsed::Head(Request {
        len,
        body,
        resend: idempotent && body == Framing::Empty,
        close: tokens.close,
        head: method == "HEAD",
        host,
        path,
    })
}

/// Parses a response head at the start of `buf`, to a request that was a `HEAD` or not,
/// for a client connection that closes after it (`close`) or not. When the head must
/// change for the client (hop-by-hop headers, HTTP/1.0, a close-delimited body, the
/// client's close), the new head is written to `out`. 101 is not valid here: the fast
/// path never asks for an upgrade.
pub(crate) fn parse_response(
    buf: &[u8],
    head: bool,
    close: bool,
    out: &mut Vec<u8>,
) -> Parsed<Response> {
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Parsed::Partial,
        Ok(httparse::Status::Partial) | Err(_) => return Parsed::Unusual,
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Parsed::Unusual;
    };
    if status == 101 {
        return Parsed::Unusual;
    }
    if (100..200).contains(&status) {
        return Parsed::Head(Response {
            len,
            status,
            body: Framing::Empty,
            reusable: true,
            rewritten: false,
            rechunk: false,
            close: false,
        });
    }
    let mut content_length = None;
    let (mut encoded, mut chunked) = (false, false);
    let mut hop = false;
    let mut tokens = Tokens::new();
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if is(name, b"content-length") {
            let Some(n) = length(h.value) else {
                return Parsed::Unusual;
            };
            if content_length.replace(n).is_some_and(|m| m != n) {
                return Parsed::Unusual;
            }
        } else if is(name, b"transfer-encoding") {
            encoded = true;
            // Only the last coding decides; a later header continues the list.
            if let Some(last) = items(h.value).last() {
                chunked = is(last, b"chunked");
            }
        } else if is(name, b"connection") {
            hop = true;
            if !tokens.add(h.value) {
                return Parsed::Unusual;
            }
        } else if hop_by_hop(name) {
            hop = true;
        }
    }
    let body = if head || status == 204 || status == 304 {
        Framing::Empty
    } else if encoded {
        if chunked {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else {
        match content_length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    let reusable = version == 1 && !tokens.close && body != Framing::Close;
    // A close-delimited body is re-chunked, unless it has a transfer coding of its own:
    // then the client connection is closed to delimit it.
    let rechunk = body == Framing::Close && !encoded;
    let close = close || (body == Framing::Close && encoded);
    let drop_length = encoded && content_length.is_some();
    let rewritten = hop || version != 1 || rechunk || close || drop_length;
    if rewritten {
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(itoa3(status).as_slice());
        out.push(b' ');
        out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        for h in resp.headers.iter() {
            let name = h.name.as_bytes();
            if hop_by_hop(name)
                || tokens.lists(name)
                || (drop_length && is(name, b"content-length"))
            {
                continue;
            }
            header_line(out, name, h.value);
        }
        if rechunk {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
    Parsed::Head(Response {
        len,
        status,
        body,
        reusable,
        rewritten,
        rechunk,
        close,
    })
}

/// A three-digit status code as text (httparse guarantees three digits).
fn itoa3(status: u16) -> [u8; 3] {
    let s = status.min(999);
    [
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &str) -> (Parsed<Request<'_>>, String) {
        let mut out = Vec::new();
        let parsed = parse_request(raw.as_bytes(), b"192.0.2.7", &mut out);
        (parsed, String::from_utf8_lossy(&out).into_owned())
    }

    fn response(raw: &str, head: bool, close: bool) -> (Parsed<Response>, String) {
        let mut out = Vec::new();
        let parsed = parse_response(raw.as_bytes(), head, close, &mut out);
        (parsed, String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn a_request_is_rewritten_like_the_hyper_path_does() {
        let raw = "GET /a/b?c=1 HTTP/1.1\r\nHost: Web.Example:80\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nAccept: */*\r\n\r\nGET /next";
        let (parsed, out) = request(raw);
        let Parsed::Head(req) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(req.len, raw.len() - "GET /next".len());
        assert_eq!(
            (req.body, req.resend, req.close, req.head),
            (Framing::Empty, true, true, false)
        );
        assert_eq!((req.host, req.path), (&b"Web.Example:80"[..], "/a/b"));
        assert_eq!(
            out,
            "GET /a/b?c=1 HTTP/1.1\r\nHost: Web.Example:80\r\nX-Forwarded-For: 10.0.0.1\r\nAccept: */*\r\nx-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: http\r\nx-forwarded-host: Web.Example:80\r\n\r\n"
        );
    }

    #[test]
    fn request_bodies_and_resending() {
        let cases = [
            (
                "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\n",
                Framing::Length(5),
                false,
            ),
            (
                "PUT / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
                Framing::Empty,
                true,
            ),
            (
                "PUT / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n",
                Framing::Length(2),
                false,
            ),
            (
                "POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: Chunked\r\n\r\n",
                Framing::Chunked,
                false,
            ),
            ("DELETE / HTTP/1.1\r\nhost: x\r\n\r\n", Framing::Empty, true),
            ("POST / HTTP/1.1\r\nhost: x\r\n\r\n", Framing::Empty, false),
            ("get / HTTP/1.1\r\nhost: x\r\n\r\n", Framing::Empty, false),
        ];
        for (raw, body, resend) in cases {
            let (parsed, _) = request(raw);
            let Parsed::Head(req) = parsed else {
                panic!("{raw:?}: {parsed:?}")
            };
            assert_eq!((req.body, req.resend), (body, resend), "{raw:?}");
        }
    }

    #[test]
    fn unusual_requests_are_left_to_hyper() {
        for raw in [
            "GET / HTTP/1.0\r\nhost: x\r\n\r\n",
            "CONNECT x:443 HTTP/1.1\r\nhost: x\r\n\r\n",
            "GET http://x/ HTTP/1.1\r\nhost: x\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nhost: x\r\nhost: y\r\n\r\n",
            "GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
            "POST / HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nhost: x\r\nconnection: host\r\n\r\n",
            "GET / HTTP/1.1\r\nhost: x\r\nconnection: a,b,c,d,e,f,g,h,i\r\n\r\n",
            "GET / HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n",
            "GET / HTTP/1.1\r\nhost: x\r\n folded\r\n\r\n",
            "\u{1}GET / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(request(raw).0, Parsed::Unusual, "{raw:?}");
        }
        let many: String = (0..REQUEST_HEADERS)
            .map(|i| format!("x-{i}: 1\r\n"))
            .collect();
        let raw = format!("GET / HTTP/1.1\r\nhost: x\r\n{many}\r\n");
        assert_eq!(request(&raw).0, Parsed::Unusual, "too many headers");
        let huge = format!("GET / HTTP/1.1\r\nhost: x\r\nx: {}", "a".repeat(MAX_HEAD));
        assert_eq!(request(&huge).0, Parsed::Unusual, "too large");
        assert_eq!(request("GET / HTTP/1.1\r\nhost: x\r\n").0, Parsed::Partial);
        assert_eq!(request("").0, Parsed::Partial);
    }

    #[test]
    fn responses_pass_unchanged_when_they_can() {
        let (parsed, out) = response(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            false,
            false,
        );
        assert_eq!(
            parsed,
            Parsed::Head(Response {
                len: 38,
                status: 200,
                body: Framing::Length(2),
                reusable: true,
                rewritten: false,
                rechunk: false,
                close: false
            })
        );
        assert!(out.is_empty());
        let (parsed, _) = response(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            false,
        );
        assert!(matches!(
            parsed,
            Parsed::Head(Response {
                body: Framing::Chunked,
                rewritten: false,
                ..
            })
        ));
        for (raw, head) in [
            ("HTTP/1.1 204 No Content\r\n\r\n", false),
            (
                "HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n",
                false,
            ),
            ("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", true),
            ("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", false),
        ] {
            let (parsed, _) = response(raw, head, false);
            assert!(
                matches!(
                    parsed,
                    Parsed::Head(Response {
                        body: Framing::Empty,
                        reusable: true,
                        ..
                    })
                ),
                "{raw:?}: {parsed:?}"
            );
        }
        let (parsed, _) = response(
            "HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n",
            false,
            false,
        );
        assert!(matches!(parsed, Parsed::Head(Response { status: 103, .. })));
    }

    #[test]
    fn responses_are_rewritten_when_they_must() {
        let (parsed, out) = response(
            "HTTP/1.0 200 Fine\r\nConnection: keep-alive, x-hop\r\nx-hop: 1\r\ncontent-length: 2\r\n\r\n",
            false,
            false,
        );
        assert!(matches!(
            parsed,
            Parsed::Head(Response {
                reusable: false,
                rewritten: true,
                ..
            })
        ));
        assert_eq!(out, "HTTP/1.1 200 Fine\r\ncontent-length: 2\r\n\r\n");

        let (parsed, out) = response(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nstream",
            false,
            false,
        );
        assert!(matches!(
            parsed,
            Parsed::Head(Response {
                body: Framing::Close,
                reusable: false,
                rechunk: true,
                close: false,
                ..
            })
        ));
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
        );

        let (parsed, out) = response(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
            false,
            false,
        );
        assert!(matches!(
            parsed,
            Parsed::Head(Response {
                body: Framing::Close,
                rechunk: false,
                close: true,
                ..
            })
        ));
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\nconnection: close\r\n\r\n"
        );

        let (parsed, out) = response(
            "HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\nConnection: close\r\n\r\n",
            false,
            true,
        );
        assert!(matches!(
            parsed,
            Parsed::Head(Response {
                body: Framing::Chunked,
                reusable: false,
                close: true,
                ..
            })
        ));
        assert_eq!(
            out,
            "HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn invalid_responses() {
        for raw in [
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            "HTTP/2 200 OK\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert_eq!(response(raw, false, false).0, Parsed::Unusual, "{raw:?}");
        }
        let (parsed, _) = response(
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\n",
            false,
            false,
        );
        assert!(matches!(
            parsed,
            Parsed::Head(Response {
                body: Framing::Length(1),
                ..
            })
        ));
        assert_eq!(
            response("HTTP/1.1 200 OK\r\n", false, false).0,
            Parsed::Partial
        );
    }
}
