//! Property tests of the fast path's parsers: no input makes them panic or overrun, a
//! chunked body's end is found however it is split, and a rewritten request head is a
//! valid head carrying the forwarded headers exactly once.

use proptest::prelude::*;

use super::chunked::Chunked;
use super::head::{self, Parsed};

/// A valid chunked body from chunk sizes, with an extension and a trailer sometimes.
fn chunked_body(sizes: &[usize], ext: bool, trailer: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        out.extend_from_slice(format!("{n:X}").as_bytes());
        if ext && i % 2 == 0 {
            out.extend_from_slice(b";name=\"v\"");
        }
        out.extend_from_slice(b"\r\n");
        out.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, n));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    if trailer {
        out.extend_from_slice(b"x-checksum: 1\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

proptest! {
    #[test]
    fn parsers_take_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut out = Vec::new();
        if let Parsed::Head(req) = head::parse_request(&bytes, b"10.0.0.1", &mut out) {
            prop_assert!(req.len <= bytes.len());
        }
        for (is_head, close) in [(false, false), (true, true)] {
            if let Parsed::Head(resp) = head::parse_response(&bytes, is_head, close, &mut out) {
                prop_assert!(resp.len <= bytes.len());
            }
        }
        let mut c = Chunked::new();
        if let Ok(n) = c.scan(&bytes) {
            prop_assert!(n <= bytes.len());
        }
    }

    #[test]
    fn a_chunked_end_is_found_in_any_split(
        sizes in proptest::collection::vec(1usize..300, 0..6),
        ext in any::<bool>(),
        trailer in any::<bool>(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let body = chunked_body(&sizes, ext, trailer);
        let mut stream = body.clone();
        stream.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len())).collect();
        points.push(stream.len());
        points.sort_unstable();
        let mut c = Chunked::new();
        let (mut from, mut seen) = (0, 0);
        for to in points {
            if c.is_done() {
                break;
            }
            let n = c.scan(&stream[from..to]);
            prop_assert!(n.is_ok(), "{n:?}");
            seen += n.unwrap_or(0);
            from = to;
        }
        prop_assert!(c.is_done());
        prop_assert_eq!(seen, body.len());
    }

    #[test]
    fn a_rewritten_request_is_valid_and_forwarded_once(
        headers in proptest::collection::vec(("[a-zA-Z][a-zA-Z0-9-]{0,12}", "[ -~&&[^ ]][ -~]{0,20}[ -~&&[^ ]]"), 0..12),
    ) {
        let mut raw = String::from("GET /x?y=1 HTTP/1.1\r\nHost: h.example\r\n");
        for (name, value) in &headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("\r\n");
        let mut out = Vec::new();
        let Parsed::Head(_) = head::parse_request(raw.as_bytes(), b"192.0.2.1", &mut out) else {
            return Ok(());
        };
        let mut slots = [httparse::EMPTY_HEADER; 80];
        let mut req = httparse::Request::new(&mut slots);
        let parsed = req.parse(&out);
        prop_assert!(matches!(parsed, Ok(httparse::Status::Complete(n)) if n == out.len()), "{:?}", String::from_utf8_lossy(&out));
        let count = |name: &str| req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).count();
        prop_assert_eq!(count("x-forwarded-proto"), 1);
        prop_assert_eq!(count("x-forwarded-host"), 1);
        prop_assert_eq!(count("host"), 1);
        prop_assert_eq!(count("connection") + count("keep-alive") + count("proxy-connection"), 0);
        prop_assert!(req.headers.iter().any(|h| h.name == "x-forwarded-for" && h.value == b"192.0.2.1"));
    }
}
