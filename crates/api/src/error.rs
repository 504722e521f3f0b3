//! Mapping engine errors to Marathon status codes and error bodies.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use engine::EngineError;
use model::DefinitionError;
use serde_json::{Value, json};

/// An API error with Marathon's body.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body.
    pub body: Value,
}

impl ApiError {
    /// An error with just a message.
    pub fn message(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: json!({ "message": message.into() }),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound(m) => ApiError::message(StatusCode::NOT_FOUND, m),
            EngineError::Locked { deployments } => ApiError {
                status: StatusCode::CONFLICT,
                body: json!({
                    "message": format!(
                        "App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/{}'.",
                        deployments.first().map(String::as_str).unwrap_or("")
                    ),
                    "deployments": deployments.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
                }),
            },
            EngineError::AlreadyExists(id) => ApiError::message(
                StatusCode::CONFLICT,
                format!("An app with id [{id}] already exists."),
            ),
            EngineError::Definition(d) => d.into(),
            EngineError::BadRequest(m) => ApiError::message(StatusCode::BAD_REQUEST, m),
            EngineError::Forbidden(m) => {
                ApiError::message(StatusCode::FORBIDDEN, format!("Forbidden: {m}"))
            }
            EngineError::Conflict(m) => ApiError::message(StatusCode::CONFLICT, m),
            EngineError::Limit(m) => ApiError::message(StatusCode::UNPROCESSABLE_ENTITY, m),
            EngineError::Store(e) if e.is_disk_full() => {
                tracing::error!(error = %e, "the data directory's disk is full");
                ApiError::message(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "the data directory's disk is full: nothing was changed; free space and retry",
                )
            }
            EngineError::Store(e) => {
                tracing::error!(error = %e, "store failure");
                ApiError::message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("storage failure: {e}"),
                )
            }
        }
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        EngineError::Store(e).into()
    }
}

impl From<DefinitionError> for ApiError {
    fn from(d: DefinitionError) -> Self {
        match d {
            DefinitionError::Malformed(details) => ApiError {
                status: StatusCode::BAD_REQUEST,
                body: json!({"message": "Invalid JSON", "details": details}),
            },
            DefinitionError::Type(details) => ApiError {
                status: StatusCode::BAD_REQUEST,
                body: json!({"message": "Invalid JSON", "details": details}),
            },
            DefinitionError::Invalid(details) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                body: json!({"message": "Object is not valid", "details": details}),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}
