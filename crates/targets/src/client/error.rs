//! Errors of the Marathon client: the remote's status and message (with Marathon's field
//! paths), transport failures, and refused credentials, never with the credentials in them.

use std::fmt;

/// One entry of Marathon's `details`: a field path and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Marathon's path, such as `/upgradeStrategy/minimumHealthCapacity` (`/` for the
    /// whole object).
    pub path: String,
    /// The messages for that path.
    pub errors: Vec<String>,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.errors.join(", "))
    }
}

/// What went wrong talking to a remote Marathon API. Each message names the target.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client cannot be used as configured (URL, id), before anything was sent.
    #[error("target {target}: {reason}")]
    Config {
        /// The target's name.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// The request got no HTTP answer (connection refused, timeout, reset).
    #[error("target {target} is not reachable at {url}: {reason}")]
    Unreachable {
        /// The target's name.
        target: String,
        /// The target's base URL (never with credentials: specs refuse them).
        url: String,
        /// The transport's reason.
        reason: String,
    },
    /// 401: the remote refused the credentials (or wanted some).
    #[error("target {target} refused {sent} (HTTP {status}): {message}")]
    Unauthorized {
        /// The target's name.
        target: String,
        /// The status (401).
        status: u16,
        /// What was sent: `HTTP basic as user ops`, `a bearer token`, `no credentials`.
        sent: String,
        /// The remote's message.
        message: String,
    },
    /// Any other non-2xx answer, with Marathon's `message` and `details`.
    #[error("target {target} answered HTTP {status}: {message}{}", details_suffix(.details))]
    Remote {
        /// The target's name.
        target: String,
        /// The HTTP status.
        status: u16,
        /// The remote's `message` (or its body, shortened).
        message: String,
        /// Marathon's `details`, field by field.
        details: Vec<FieldError>,
    },
    /// A 2xx answer that is not what the Marathon API returns.
    #[error("target {target}: unexpected answer to {request}: {reason}")]
    Protocol {
        /// The target's name.
        target: String,
        /// The request, such as `PUT /v2/apps/BB/web`.
        request: String,
        /// What was wrong with the answer.
        reason: String,
    },
}

impl ClientError {
    /// The remote's HTTP status, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Unauthorized { status, .. } | ClientError::Remote { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// Marathon's field errors (empty unless a 4xx carried `details`).
    pub fn details(&self) -> &[FieldError] {
        match self {
            ClientError::Remote { details, .. } => details,
            _ => &[],
        }
    }
}

/// `; /path: error, error; /path2: error` after the message.
fn details_suffix(details: &[FieldError]) -> String {
    details.iter().map(|d| format!("; {d}")).collect()
}
