//! The console's way into the server: every read and every action is a request to the
//! API's own router, made on behalf of the signed-in user with their session's token. So
//! the console passes the same authentication, role and environment-policy checks as the
//! API, and every action is audited exactly like its API twin.

use crate::Viewer;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt as _;

/// An API answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// Its status.
    pub(crate) status: StatusCode,
    /// Its JSON body (`Null` when it had none; a string when it was not JSON).
    pub(crate) body: Value,
}

impl Reply {
    /// Whether the status is 2xx.
    pub(crate) fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The body when 2xx, else the API's message.
    pub(crate) fn json(self) -> Result<Value, String> {
        if self.ok() {
            Ok(self.body)
        } else {
            Err(self.message())
        }
    }

    /// A readable message from an error body (`message`, Marathon's `details`).
    pub(crate) fn message(&self) -> String {
        let mut msg = self.body["message"]
            .as_str()
            .map(str::to_string)
            .or_else(|| self.body.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("the server answered {}", self.status));
        if let Some(details) = self.body["details"].as_array() {
            for d in details {
                let path = d["path"].as_str().unwrap_or_default();
                let errors: Vec<&str> = d["errors"]
                    .as_array()
                    .map(|e| e.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                msg.push_str(&format!("; {path}: {}", errors.join(", ")));
            }
        }
        msg
    }
}

/// Sends one request to the API router as `who`.
pub(crate) async fn call(
    api: &axum::Router,
    who: &Viewer,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Reply {
    match request(who, method, path, body) {
        Ok(req) => send(api, req).await,
        Err(r) => r,
    }
}

/// A GET to the API as `who`, its answer read as `T` (fields `T` does not name are
/// skipped, not built); the API's message when it refused or answered something else.
pub(crate) async fn get_typed<T: serde::de::DeserializeOwned>(
    api: &axum::Router,
    who: &Viewer,
    path: &str,
) -> Result<T, String> {
    let req = request(who, Method::GET, path, None).map_err(|r| r.message())?;
    let (status, bytes) = send_raw(api, req).await;
    if !status.is_success() {
        return Err(reply(status, &bytes).message());
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("unexpected answer from {path}: {e}"))
}

/// The request `who` sends.
fn request(
    who: &Viewer,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Request<Body>, Reply> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, &who.host)
        .header(header::ACCEPT, "application/json");
    if let Some(token) = &who.session.token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(origin) = &who.origin {
        req = req.header(header::ORIGIN, origin);
    }
    let body = match body {
        Some(b) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let Ok(mut req) = req.body(body) else {
        return Err(Reply {
            status: StatusCode::BAD_REQUEST,
            body: Value::String(format!("not a valid request path: {path}")),
        });
    };
    req.extensions_mut().insert(ConnectInfo(who.peer));
    Ok(req)
}

/// Sends a prepared request (for sign-in with Basic credentials).
pub(crate) async fn send(api: &axum::Router, req: Request<Body>) -> Reply {
    let (status, bytes) = send_raw(api, req).await;
    reply(status, &bytes)
}

/// The reply of `status` with the body `bytes`, parsed as JSON when it is.
pub(crate) fn reply(status: StatusCode, bytes: &[u8]) -> Reply {
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
    };
    Reply { status, body }
}

/// Sends a prepared request; the status and the body's bytes, unparsed (for pages that
/// read a large answer into a typed view of what they show).
pub(crate) async fn send_raw(
    api: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::body::Bytes) {
    let resp = match api.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    (status, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn api_errors_read_as_sentences() {
        let r = Reply {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({"message": "Object is not valid", "details": [{"path": "/instances", "errors": ["must be >= 0"]}]}),
        };
        assert_eq!(r.message(), "Object is not valid; /instances: must be >= 0");
        assert!(!r.ok());
        let r = Reply {
            status: StatusCode::BAD_GATEWAY,
            body: Value::Null,
        };
        assert_eq!(
            r.clone().json().unwrap_err(),
            "the server answered 502 Bad Gateway"
        );
        let r = Reply {
            status: StatusCode::OK,
            body: json!({"a": 1}),
        };
        assert_eq!(r.json().unwrap()["a"], 1);
    }
}
