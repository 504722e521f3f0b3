//! The crate's error type, and the sorting of bollard errors into it.

use bollard::errors::Error as BollardError;

/// What went wrong talking to a Swarm, worded so a user knows what to do next.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The daemon did not answer (socket missing, connection refused, timeout).
    #[error("cannot reach the Docker daemon: {0}")]
    Unreachable(String),
    /// The daemon answers but is not a Swarm manager.
    #[error("{0}")]
    NotManager(String),
    /// The app definition asks for something a Swarm service cannot express.
    #[error("{field}: {reason}")]
    Unsupported {
        /// Where in the app definition (`/constraints(1)`, `/container/docker/parameters(0)`).
        field: String,
        /// Why, and what to use instead.
        reason: String,
    },
    /// An env variable refers to a secret the caller did not resolve.
    #[error(
        "/env/{var}: secret '{secret}' has no value; resolve the app's secrets before building its service"
    )]
    MissingSecret {
        /// The variable.
        var: String,
        /// The secret's key in the app's `secrets`.
        secret: String,
    },
    /// The Swarm's nodes cannot pull the image.
    #[error("image {image} cannot be deployed to the Swarm: {reason}")]
    ImageNotPullable {
        /// The image as the app names it.
        image: String,
        /// Why, and what to do about it.
        reason: String,
    },
    /// A service of this name exists but another installation owns it.
    #[error(
        "a Swarm service named {name} exists but is not Slipway agent {agent}'s (its slipway.agent label is '{owner}'); remove it or rename the app"
    )]
    Foreign {
        /// The service name.
        name: String,
        /// The agent that wanted it.
        agent: String,
        /// The agent label it carries (empty when none).
        owner: String,
    },
    /// A network the app needs exists but cannot carry Swarm services.
    #[error(
        "network {name} exists with driver {driver} and scope {scope}; Swarm services need an overlay network: remove it or name another network"
    )]
    NotOverlay {
        /// The network.
        name: String,
        /// Its driver.
        driver: String,
        /// Its scope (`local`, `swarm`).
        scope: String,
    },
    /// One task cannot be killed by itself (Swarm has no API for it), and why.
    #[error("{0}")]
    CannotKill(String),
    /// The daemon refused a request.
    #[error("the Docker daemon refused to {action}: {message}")]
    Api {
        /// What was asked (`create service slipway-a-web`).
        action: String,
        /// The daemon's message.
        message: String,
    },
}

/// A bollard error sorted by what the caller does about it.
pub(crate) enum Failure {
    /// Connection-level failure: the daemon is gone or hung.
    Unreachable(String),
    /// 404 from the daemon.
    NotFound(String),
    /// Anything else the daemon answered, with its message.
    Other(String),
}

/// Sorts a bollard error.
pub(crate) fn failure(e: BollardError) -> Failure {
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => {
            let message = message.trim().to_string();
            if status_code == 404 {
                Failure::NotFound(message)
            } else {
                Failure::Other(message)
            }
        }
        BollardError::DockerStreamError { error } => Failure::Other(error.trim().to_string()),
        e @ (BollardError::IOError { .. }
        | BollardError::HyperLegacyError { .. }
        | BollardError::HyperResponseError { .. }
        | BollardError::HttpClientError { .. }
        | BollardError::RequestTimeoutError
        | BollardError::SocketNotFoundError(_)) => Failure::Unreachable(describe(&e)),
        e => Failure::Other(describe(&e)),
    }
}

/// A bollard error as a [`SwarmError`]: unreachable, or the daemon refusing `action`.
pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(BollardError) -> SwarmError {
    let action = action.into();
    move |e| match failure(e) {
        Failure::Unreachable(m) => SwarmError::Unreachable(m),
        Failure::NotFound(message) | Failure::Other(message) => SwarmError::Api { action, message },
    }
}

/// The error and its sources in one line, without repeats.
pub(crate) fn describe(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
