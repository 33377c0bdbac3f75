//! The client's error type: keeps the HTTP status, the API's `code` and
//! `message` and the request id, and maps to core's [`StoreError`] kinds.

use std::time::Duration;

use strata_core::{InvalidInput, StoreError};

use crate::ids::{OperationId, ProjectId};

/// Result alias of the client.
pub type Result<T, E = NeonError> = std::result::Result<T, E>;

/// Everything that can go wrong talking to the Neon API. No variant ever holds
/// the API key, a password or a connection URI.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NeonError {
    /// The API answered with an error status.
    #[error("{method} {route} failed with HTTP {status}{}: {message}{}{}", code_suffix(code), request_id_suffix(request_id), attempts_suffix(*attempts))]
    Api {
        /// HTTP status.
        status: u16,
        /// The API's error code (often empty).
        code: String,
        /// The API's message, or a summary of a non-JSON body (an HTML page from a proxy).
        message: String,
        /// The `x-neon-ret-request-id` header (or the body's `request_id`), for Neon support.
        request_id: Option<String>,
        /// HTTP method.
        method: &'static str,
        /// Route template, e.g. `/projects/{project_id}/branches`.
        route: &'static str,
        /// Attempts made (more than one when retried).
        attempts: u32,
    },
    /// The request did not get a complete response (connection refused, reset, dropped).
    #[error("{method} {route} could not reach the Neon API{}", attempts_suffix(*attempts))]
    Transport {
        /// HTTP method.
        method: &'static str,
        /// Route template.
        route: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// An attempt took longer than the per-request timeout, or the overall deadline ran out.
    #[error("{method} {route} timed out after {elapsed:?}{}", attempts_suffix(*attempts))]
    Timeout {
        /// HTTP method.
        method: &'static str,
        /// Route template.
        route: &'static str,
        /// Time spent on the call.
        elapsed: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// A success response did not match the expected model.
    #[error("{method} {route}: unexpected response body")]
    Decode {
        /// HTTP method.
        method: &'static str,
        /// Route template.
        route: &'static str,
        /// The JSON error (positions only; the body is not quoted).
        #[source]
        source: serde_json::Error,
    },
    /// An operation ended in `failed`, `error` or `cancelled`.
    #[error(
        "operation {operation_id} ({action}) of project {project_id} ended with status {status}{}",
        operation_error_suffix(error)
    )]
    OperationFailed {
        /// Project.
        project_id: ProjectId,
        /// Operation.
        operation_id: OperationId,
        /// Its action.
        action: String,
        /// Its final status.
        status: String,
        /// The API's error text.
        error: Option<String>,
    },
    /// Operations were still running when the wait's deadline passed.
    #[error("operations of project {project_id} still running after {waited:?}: {}", join_ids(pending))]
    OperationsTimeout {
        /// Project.
        project_id: ProjectId,
        /// Operations not finished.
        pending: Vec<OperationId>,
        /// Time waited.
        waited: Duration,
    },
    /// The client was configured wrongly (bad base URL, empty key).
    #[error("invalid Neon client configuration: {0}")]
    Config(String),
    /// An argument was rejected before any request was made.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

fn code_suffix(code: &str) -> String {
    if code.is_empty() { String::new() } else { format!(" ({code})") }
}

fn request_id_suffix(request_id: &Option<String>) -> String {
    request_id.as_ref().map(|id| format!(" [request id {id}]")).unwrap_or_default()
}

fn attempts_suffix(attempts: u32) -> String {
    if attempts > 1 { format!(" after {attempts} attempts") } else { String::new() }
}

fn operation_error_suffix(error: &Option<String>) -> String {
    error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
}

fn join_ids(ids: &[OperationId]) -> String {
    ids.iter().map(OperationId::as_str).collect::<Vec<_>>().join(", ")
}

impl NeonError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            NeonError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the API said the thing does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether the API said the thing already exists or conflicts (409).
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// Whether trying again later may succeed (423, 429, 5xx, transport errors, timeouts).
    pub fn is_retryable(&self) -> bool {
        match self {
            NeonError::Api { status, .. } => matches!(status, 423 | 429) || *status >= 500,
            NeonError::Transport { .. } | NeonError::Timeout { .. } | NeonError::OperationsTimeout { .. } => true,
            _ => false,
        }
    }
}

impl From<NeonError> for StoreError {
    fn from(error: NeonError) -> Self {
        const BACKEND: &str = "neon-api";
        match &error {
            NeonError::Api { status: 404, .. } => StoreError::NotFound { what: error.to_string() },
            NeonError::Api { status: 409, .. } => StoreError::Conflict { what: error.to_string() },
            NeonError::Api { status: 400 | 422, .. } | NeonError::InvalidArgument(_) => {
                StoreError::InvalidInput(InvalidInput::Argument(error.to_string()))
            }
            // The client already retried transient failures within its budget.
            NeonError::Timeout { .. } | NeonError::OperationsTimeout { .. } => {
                StoreError::timeout(BACKEND, error.to_string()).after_retries()
            }
            _ if error.is_retryable() => {
                StoreError::unavailable(BACKEND, "the Neon API is unavailable; retry later", Some(Box::new(error)))
                    .after_retries()
            }
            _ => StoreError::Internal {
                backend: BACKEND.into(),
                what: "Neon API call failed".into(),
                source: Some(Box::new(error)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> NeonError {
        NeonError::Api {
            status,
            code: String::new(),
            message: "m".into(),
            request_id: Some("req-1".into()),
            method: "GET",
            route: "/projects",
            attempts: 1,
        }
    }

    #[test]
    fn messages_carry_status_and_request_id() {
        let text = api(404).to_string();
        assert!(text.contains("HTTP 404") && text.contains("req-1"), "{text}");
    }

    #[test]
    fn kinds_map_to_store_errors() {
        assert!(matches!(StoreError::from(api(404)), StoreError::NotFound { .. }));
        assert!(matches!(StoreError::from(api(409)), StoreError::Conflict { .. }));
        assert!(matches!(StoreError::from(api(422)), StoreError::InvalidInput(_)));
        assert!(matches!(StoreError::from(api(503)), StoreError::Unavailable { .. }));
        assert!(matches!(StoreError::from(api(401)), StoreError::Internal { .. }));
    }
}
