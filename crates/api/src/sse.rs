//! `GET /v2/events`: Marathon's Server-Sent Events stream, with `event_type` filtering,
//! `plan-format=light`, a bare `\r\n` heartbeat every 10 s, and attach/detach events.

use crate::params::Params;
use crate::{Ctx, error::ApiError};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use engine::{Event, EventBus};
use futures_util::stream;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Heartbeat period (Jetty's default in Marathon).
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Publishes `event_stream_detached` when the client goes away.
struct Detach {
    bus: EventBus,
    remote: String,
}

impl Drop for Detach {
    fn drop(&mut self) {
        self.bus.publish(Event::StreamDetached {
            remote: std::mem::take(&mut self.remote),
        });
    }
}

struct StreamState {
    engine: engine::Engine,
    rx: tokio::sync::broadcast::Receiver<engine::Published>,
    types: Vec<String>,
    light: bool,
    heartbeat: tokio::time::Interval,
    _detach: Detach,
}

/// `GET /v2/events`.
pub(crate) async fn events(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    let ok = accept
        .split(',')
        .map(str::trim)
        .any(|a| a.starts_with("text/event-stream") || a == "*/*");
    if !ok {
        return Err(ApiError::message(
            StatusCode::METHOD_NOT_ALLOWED,
            "the event stream needs the header 'Accept: text/event-stream'",
        ));
    }
    let p = Params::parse(q.as_deref());
    let types: Vec<String> = p
        .all("event_type")
        .into_iter()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let light = p.get("plan-format") == Some("light");
    let bus = ctx.engine.events().clone();
    let rx = bus.subscribe();
    let remote = peer.ip().to_string();
    bus.publish(Event::StreamAttached {
        remote: remote.clone(),
    });
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.reset();
    let state = StreamState {
        engine: ctx.engine.clone(),
        rx,
        types,
        light,
        heartbeat,
        _detach: Detach { bus, remote },
    };
    let body = stream::unfold(state, |mut s| async move {
        loop {
            tokio::select! {
                ev = s.rx.recv() => match ev {
                    Ok(ev) => {
                        let types = &s.types;
                        let wanted = |t: &str| types.is_empty() || types.iter().any(|w| w == t);
                        let frames = crate::events::render(&ev, s.engine.host(), s.light, wanted);
                        if frames.is_empty() {
                            continue;
                        }
                        let mut out = String::new();
                        for (ty, data) in frames {
                            out.push_str(&format!("event: {ty}\r\ndata: {data}\r\n\r\n"));
                        }
                        s.heartbeat.reset();
                        return Some((Ok::<Bytes, std::io::Error>(Bytes::from(out)), s));
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "slow event stream consumer; events dropped");
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = s.heartbeat.tick() => return Some((Ok(Bytes::from_static(b"\r\n")), s)),
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream;charset=UTF-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .map_err(|e| ApiError::message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}
