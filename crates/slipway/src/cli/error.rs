//! Exit codes of the client commands and how errors map to them and are reported.

use serde_json::Value;
use std::fmt;
use std::process::ExitCode;

/// Process exit codes of the client commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// The command did what was asked (a followed deployment succeeded).
    Success = 0,
    /// The operation failed: a deployment failed, or there was nothing to act on.
    Failed = 1,
    /// Waiting for a deployment timed out.
    Timeout = 2,
    /// The server could not be reached or answered with an error.
    Server = 3,
    /// The definition or request was rejected as invalid (HTTP 400/422 or unreadable file).
    Invalid = 4,
    /// A running deployment already affects the app (HTTP 409).
    Conflict = 5,
    /// What the command names does not exist (HTTP 404: an app, task, run, user...).
    NotFound = 6,
    /// The server refused the credentials (HTTP 401) or the role or policy refused the
    /// change (HTTP 403).
    Forbidden = 7,
    /// The change needs a confirmation that was not given: the environment asks for one
    /// (`confirm: true`), standard input is not a terminal and `--yes` was not passed.
    Unconfirmed = 8,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// An error answer from the server, parsed from Marathon's `{"message", "details"}` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// HTTP status code.
    pub(crate) status: u16,
    /// The `message` field, or a description of the status when the body has none.
    pub(crate) message: String,
    /// One line per `details` entry (`path: error`).
    pub(crate) details: Vec<String>,
    /// What the user may do about it (set by the client, e.g. how to log in after a 401).
    pub(crate) hint: Option<String>,
}

impl ApiError {
    /// Builds the error from a status and the raw response body.
    pub(crate) fn from_body(status: u16, reason: &str, body: &str) -> ApiError {
        let parsed: Option<Value> = serde_json::from_str(body).ok();
        let message = parsed
            .as_ref()
            .and_then(|v| v.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                let text = body.trim();
                if text.is_empty() || text.len() > 300 {
                    format!("server answered {status} {reason}")
                } else {
                    format!("server answered {status} {reason}: {text}")
                }
            });
        let details = parsed
            .as_ref()
            .and_then(|v| v.get("details"))
            .map(detail_lines)
            .unwrap_or_default();
        // A conflict with a running deployment can be forced; the client drops this hint
        // for conflicts that are not about deployments.
        let hint = (status == 409)
            .then(|| "retry with --force to cancel the deployments in the way".to_string());
        ApiError {
            status,
            message,
            details,
            hint,
        }
    }

    /// The exit code for this answer.
    pub(crate) fn exit(&self) -> Exit {
        match self.status {
            400 | 422 => Exit::Invalid,
            409 => Exit::Conflict,
            404 => Exit::NotFound,
            401 | 403 => Exit::Forbidden,
            _ => Exit::Server,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// Marathon `details`: a string (malformed JSON), or `[{"path", "errors": [..]}]`.
fn detail_lines(details: &Value) -> Vec<String> {
    match details {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .flat_map(|item| {
                let path = item.get("path").and_then(Value::as_str).unwrap_or("/");
                match item.get("errors") {
                    Some(Value::Array(errs)) => errs
                        .iter()
                        .map(|e| format!("{path}: {}", e.as_str().unwrap_or("invalid")))
                        .collect(),
                    _ => match item {
                        Value::String(s) => vec![s.clone()],
                        other => vec![other.to_string()],
                    },
                }
            })
            .collect(),
        Value::Null => Vec::new(),
        other => vec![other.to_string()],
    }
}

/// An error that carries its own exit code (e.g. an unreadable definition file).
#[derive(Debug)]
pub(crate) struct Coded {
    /// The exit code to use.
    pub(crate) exit: Exit,
    /// What went wrong.
    pub(crate) message: String,
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// Shorthand for an error with an explicit exit code.
pub(crate) fn coded(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Coded {
        exit,
        message: message.into(),
    })
}

/// The exit code for an error: the first [`ApiError`] or [`Coded`] in its chain decides;
/// transport errors are server errors; anything else is a plain failure.
pub(crate) fn exit_code(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(api) = cause.downcast_ref::<ApiError>() {
            return api.exit();
        }
        if let Some(c) = cause.downcast_ref::<Coded>() {
            return c.exit;
        }
        if cause.downcast_ref::<reqwest::Error>().is_some() {
            return Exit::Server;
        }
    }
    Exit::Failed
}

/// The lines printed to stderr for an error.
pub(crate) fn report_lines(err: &anyhow::Error) -> Vec<String> {
    let mut lines = vec![format!("error: {err:#}")];
    if let Some(api) = err.chain().find_map(|c| c.downcast_ref::<ApiError>()) {
        lines.extend(api.details.iter().map(|d| format!("  {d}")));
        if let Some(hint) = &api.hint {
            lines.push(format!("hint: {hint}"));
        }
    }
    lines
}

/// Reports an error (if any) on stderr and returns the exit code.
pub(crate) fn finish(result: anyhow::Result<Exit>) -> Exit {
    match result {
        Ok(exit) => exit,
        Err(err) => {
            for line in report_lines(&err) {
                eprintln!("{line}");
            }
            exit_code(&err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn api(status: u16, body: &str) -> ApiError {
        ApiError::from_body(status, "Reason", body)
    }

    #[test]
    fn status_codes_map_to_exit_codes() {
        let check = |status, want| assert_eq!(api(status, "{}").exit(), want, "{status}");
        check(400, Exit::Invalid);
        check(422, Exit::Invalid);
        check(409, Exit::Conflict);
        check(404, Exit::NotFound);
        check(401, Exit::Forbidden);
        check(403, Exit::Forbidden);
        check(500, Exit::Server);
        check(503, Exit::Server);
    }

    #[test]
    fn exit_codes_are_stable() {
        let codes = [
            Exit::Success,
            Exit::Failed,
            Exit::Timeout,
            Exit::Server,
            Exit::Invalid,
            Exit::Conflict,
            Exit::NotFound,
            Exit::Forbidden,
            Exit::Unconfirmed,
        ];
        assert_eq!(codes.map(|c| c as u8), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn validation_details_are_listed_per_error() {
        let e = api(
            422,
            r#"{"message":"Object is not valid","details":[
                {"path":"/cpus","errors":["must be positive","is too big"]},
                {"path":"/","errors":["needs cmd"]}]}"#,
        );
        assert_eq!(e.message, "Object is not valid");
        assert_eq!(
            e.details,
            [
                "/cpus: must be positive",
                "/cpus: is too big",
                "/: needs cmd"
            ]
        );
    }

    #[test]
    fn malformed_json_details_and_bodies_without_message() {
        let e = api(
            400,
            r#"{"message":"Invalid JSON","details":"unexpected end"}"#,
        );
        assert_eq!(e.details, ["unexpected end"]);
        let e = api(502, "bad gateway");
        assert_eq!(e.message, "server answered 502 Reason: bad gateway");
        assert!(e.details.is_empty());
        assert_eq!(api(500, "").message, "server answered 500 Reason");
    }

    #[test]
    fn errors_keep_their_code_through_context() {
        let err = Err::<(), _>(api(409, r#"{"message":"App is locked"}"#))
            .context("cannot update /web")
            .err();
        let Some(err) = err else { panic!("no error") };
        assert_eq!(exit_code(&err), Exit::Conflict);
        let lines = report_lines(&err);
        assert_eq!(lines[0], "error: cannot update /web: App is locked");
        assert!(lines[1].starts_with("hint: "));
        assert_eq!(exit_code(&coded(Exit::Invalid, "bad file")), Exit::Invalid);
        assert_eq!(exit_code(&anyhow::anyhow!("no running task")), Exit::Failed);
    }

    #[test]
    fn unauthorized_and_forbidden_exit_7_with_hints() {
        let mut e = api(401, r#"{"message":"authentication required"}"#);
        e.hint = Some("run `slipway login` or set SLIPWAY_TOKEN".into());
        let err = anyhow::Error::new(e).context("cannot list apps");
        assert_eq!(exit_code(&err), Exit::Forbidden);
        assert_eq!(
            report_lines(&err),
            [
                "error: cannot list apps: authentication required",
                "hint: run `slipway login` or set SLIPWAY_TOKEN"
            ]
        );
        let err = anyhow::Error::new(api(403, r#"{"message":"only admins create users"}"#));
        assert_eq!(exit_code(&err), Exit::Forbidden);
        assert_eq!(report_lines(&err), ["error: only admins create users"]);
    }
}
