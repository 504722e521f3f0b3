//! Live updates: `GET /ui/live?path=/ui/runs/ID` is a server-sent event stream that
//! re-renders that page for the same session about once a second and sends the live
//! region (between [`LIVE_START`] and [`LIVE_END`]) whenever it changed. The page's script
//! swaps it in; without JavaScript a reload shows the same truth.

use crate::layout::{LIVE_END, LIVE_START};
use crate::{Console, Viewer};
use axum::Extension;
use axum::body::Body;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::Duration;
use tower::ServiceExt as _;

/// How often the page is re-rendered.
const TICK: Duration = Duration::from_millis(1000);

/// The live region of a rendered page.
pub(crate) fn region(html: &str) -> Option<&str> {
    let start = html.find(LIVE_START)? + LIVE_START.len();
    let end = start + html[start..].find(LIVE_END)?;
    Some(&html[start..end])
}

/// One SSE frame: `event: NAME` and the data, one `data:` line per line.
pub(crate) fn frame(event: &str, data: &str) -> String {
    let mut out = format!("event: {event}\n");
    for line in data.lines() {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    if data.is_empty() {
        out.push_str("data: \n");
    }
    out.push('\n');
    out
}

/// `GET /ui/live?path=...`.
pub(crate) async fn stream(
    State(c): State<Console>,
    Extension(who): Extension<Viewer>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Response {
    let q = crate::form::Form::parse(q.as_deref().unwrap_or_default());
    let path = q.get("path").unwrap_or_default().to_string();
    if !path.starts_with("/ui/") || path.starts_with("/ui/live") || path.starts_with("/ui//") {
        return (StatusCode::BAD_REQUEST, "path must be a console page").into_response();
    }
    let Some(me) = c.inner.me.get().cloned() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let cookie = req.headers().get(header::COOKIE).cloned();
    let host = req.headers().get(header::HOST).cloned();
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .cloned();
    let _ = who;
    let render = move || {
        let me = me.clone();
        let (cookie, host, peer, path) = (cookie.clone(), host.clone(), peer, path.clone());
        async move {
            let mut r = Request::builder().uri(&path).body(Body::empty()).ok()?;
            if let Some(c) = cookie {
                r.headers_mut().insert(header::COOKIE, c);
            }
            if let Some(h) = host {
                r.headers_mut().insert(header::HOST, h);
            }
            if let Some(p) = peer {
                r.extensions_mut().insert(p);
            }
            let resp = me.oneshot(r).await.ok()?;
            if resp.status().is_redirection() {
                return Some(Err(()));
            }
            let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
                .await
                .ok()?;
            let html = String::from_utf8_lossy(&bytes);
            region(&html).map(|r| Ok(r.to_string()))
        }
    };
    // (last region sent, quiet ticks, ended, the last render's cost)
    let state = (String::new(), 0u32, false, Duration::ZERO);
    let events = futures_util::stream::unfold(state, move |(last, quiet, done, cost)| {
        let render = render.clone();
        async move {
            if done {
                return None;
            }
            // A page that is expensive to render (thousands of apps) is re-rendered less
            // often: at most a tenth of the server's time goes to one live page.
            tokio::time::sleep(TICK.max(cost * 10)).await;
            let started = std::time::Instant::now();
            let rendered = render().await;
            let cost = started.elapsed();
            let frame_text = match rendered {
                Some(Ok(now)) if now != last => {
                    let f = frame("update", &now);
                    return Some((Ok::<_, std::convert::Infallible>(f), (now, 0, false, cost)));
                }
                Some(Err(())) => return Some((Ok(frame("gone", "")), (last, 0, true, cost))),
                _ if quiet >= 14 => ": keep-alive\n\n".to_string(),
                _ => String::new(),
            };
            let quiet = if frame_text.is_empty() { quiet + 1 } else { 0 };
            Some((Ok(frame_text), (last, quiet, false, cost)))
        }
    });
    let mut resp = Body::from_stream(events).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_regions_and_frames() {
        let html = format!("<main>a{LIVE_START}<p>x</p>\n<p>y</p>{LIVE_END}b</main>");
        assert_eq!(region(&html), Some("<p>x</p>\n<p>y</p>"));
        assert_eq!(region("<main></main>"), None);
        assert_eq!(
            frame("update", "a\nb"),
            "event: update\ndata: a\ndata: b\n\n"
        );
    }
}
