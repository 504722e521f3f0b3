//! Header work on the hot path: `X-Forwarded-*`, hop-by-hop headers, and finding a
//! vhost route from the `Host` header without allocating in the common case.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::header::{CONNECTION, HOST, HeaderName, HeaderValue, UPGRADE};
use hyper::http::request::Parts;
use hyper::upgrade::OnUpgrade;
use hyper::{HeaderMap, Uri, Version};

use crate::table::{Route, Table};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The `X-Forwarded-For` value of a client, made once per connection.
pub(crate) fn forwarded_for(peer: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.ip().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Readies a client request for a backend: hop-by-hop headers out (unless it asks for an
/// upgrade, which is returned), `X-Forwarded-*` in, origin-form target, HTTP/1.1.
pub(crate) fn prepare_request(head: &mut Parts, xff: &HeaderValue) -> Option<OnUpgrade> {
    // One pass over the (few) headers instead of a hash lookup per header of interest.
    let (mut hop, mut wants_upgrade, mut host) = (false, false, None);
    for (name, value) in &head.headers {
        if *name == HOST {
            host = Some(value.clone());
        } else if *name == UPGRADE {
            wants_upgrade = true;
        } else if is_hop_by_hop(name) {
            hop = true;
        }
    }
    let upgrade = if wants_upgrade {
        head.extensions.remove::<OnUpgrade>()
    } else {
        None
    };
    if hop && upgrade.is_none() {
        strip(&mut head.headers);
    }
    if head.uri.scheme().is_some() {
        // Absolute-form (a client talking to us as to a forward proxy): origin-form for
        // the backend, and the authority becomes the Host when there was none.
        if host.is_none() {
            host = head
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
            if let Some(value) = &host {
                head.headers.insert(HOST, value.clone());
            }
        }
        let target = head.uri.path_and_query().map_or("/", |pq| pq.as_str());
        if let Ok(uri) = target.parse::<Uri>() {
            head.uri = uri;
        }
    }
    let headers = &mut head.headers;
    headers.append(X_FORWARDED_FOR, xff.clone());
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST, host);
    }
    head.version = Version::HTTP_11;
    upgrade
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    *name == CONNECTION || *name == KEEP_ALIVE || *name == PROXY_CONNECTION
}

/// Removes `Connection`, the headers it names, `Keep-Alive` and `Proxy-Connection`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.keys().any(is_hop_by_hop) {
        strip(headers);
    }
}

fn strip(headers: &mut HeaderMap) {
    if let Some(connection) = headers.remove(CONNECTION)
        && let Ok(list) = connection.to_str()
    {
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                headers.remove(name);
            }
        }
    }
    headers.remove(KEEP_ALIVE);
    headers.remove(PROXY_CONNECTION);
}

/// The host part of a `Host` value: port and trailing dot removed, IPv6 brackets kept.
fn host_only(host: &[u8]) -> &[u8] {
    let host = if host.first() == Some(&b'[') {
        host.iter()
            .position(|&b| b == b']')
            .map_or(host, |i| &host[..=i])
    } else {
        host.iter()
            .rposition(|&b| b == b':')
            .map_or(host, |i| &host[..i])
    };
    host.strip_suffix(b".").unwrap_or(host)
}

/// The vhost route for a request, by `Host` (case-insensitive, port ignored) and path.
pub(crate) fn vhost_route<'t>(table: &'t Table, head: &Parts) -> Option<&'t Arc<Route>> {
    let raw = match head.headers.get(HOST) {
        Some(value) => value.as_bytes(),
        None => head.uri.host()?.as_bytes(),
    };
    route_by_host(table, raw, head.uri.path())
}

/// The vhost route for a raw `Host` value and a path.
pub(crate) fn route_by_host<'t>(
    table: &'t Table,
    raw: &[u8],
    path: &str,
) -> Option<&'t Arc<Route>> {
    let host = std::str::from_utf8(host_only(raw)).ok()?;
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        table.vhost(&host.to_ascii_lowercase(), path)
    } else {
        table.vhost(host, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Request;

    #[test]
    fn host_only_strips_port_and_dot() {
        assert_eq!(host_only(b"Web.Example.com:8080"), b"Web.Example.com");
        assert_eq!(host_only(b"example.com."), b"example.com");
        assert_eq!(host_only(b"[::1]:80"), b"[::1]");
        assert_eq!(host_only(b"plain"), b"plain");
    }

    #[test]
    fn request_headers_are_rewritten() {
        let req = Request::get("http://app.example.com/a?b=1")
            .header("connection", "close, x-secret")
            .header("x-secret", "1")
            .header("x-forwarded-for", "10.0.0.1")
            .body(())
            .unwrap_or_default();
        let (mut head, ()) = req.into_parts();
        let xff = forwarded_for(
            "192.0.2.7:5000"
                .parse()
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
        );
        assert!(prepare_request(&mut head, &xff).is_none());
        assert_eq!(head.uri, "/a?b=1");
        assert!(head.headers.get("x-secret").is_none() && head.headers.get("connection").is_none());
        let xffs: Vec<_> = head.headers.get_all("x-forwarded-for").iter().collect();
        assert_eq!(xffs, ["10.0.0.1", "192.0.2.7"]);
        assert_eq!(head.headers["x-forwarded-host"], "app.example.com");
        assert_eq!(head.headers["x-forwarded-proto"], "http");
    }
}
