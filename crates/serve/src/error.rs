//! Errors: [`ServeError`] for whoever starts a server, and the JSON error
//! responses (`{"error": "..."}`) of the routes, with the status each
//! store error kind maps to.

use std::io;
use std::net::SocketAddr;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use strata_core::StoreError;

use crate::config::ConfigError;
use crate::params::BadRequest;

/// Why a server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The configuration is refused ([`crate::ServeConfig::validate`]).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {address}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The server or a helper thread failed.
    #[error("the HTTP server failed")]
    Io(#[source] io::Error),
    /// The Prometheus recorder could not be installed (one is already).
    #[error("cannot install the Prometheus exporter")]
    Exporter(#[source] metrics_exporter_prometheus::BuildError),
}

/// An error response: a status and a JSON body `{"error": message}`, plus
/// `"kind"` for store errors, and the headers the status calls for.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    kind: Option<&'static str>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), kind: None, headers: Vec::new() }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 503 with `Retry-After: 1`: too many requests in flight.
    pub(crate) fn busy(limit: usize) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the server is busy: {limit} requests are in flight; retry shortly"),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }

    /// 401 with a `WWW-Authenticate: Bearer` challenge (RFC 6750).
    pub(crate) fn unauthorized(presented: bool) -> Self {
        let (message, challenge) = if presented {
            ("the bearer token is wrong", "Bearer realm=\"strata\", error=\"invalid_token\"")
        } else {
            ("this server requires `Authorization: Bearer <token>`", "Bearer realm=\"strata\"")
        };
        ApiError::new(StatusCode::UNAUTHORIZED, message)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge))
    }

    pub(crate) fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl From<BadRequest> for ApiError {
    fn from(error: BadRequest) -> Self {
        ApiError::bad_request(error.0)
    }
}

/// A store error's status: 400 for invalid input, 404 not found, 409
/// conflict, 501 unsupported, 503 unavailable or timed out, else 500. The
/// body carries the error's message (never its driver source, which may
/// quote connection details; the server logs that).
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let status = match &error {
            StoreError::InvalidInput(_) => StatusCode::BAD_REQUEST,
            StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            StoreError::Conflict { .. } => StatusCode::CONFLICT,
            StoreError::Unavailable { .. } | StoreError::Timeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!(kind = error.kind(), "store error: {}", chain(&error));
        }
        ApiError { status, message: error.to_string(), kind: Some(error.kind()), headers: Vec::new() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.kind {
            Some(kind) => json!({ "error": self.message, "kind": kind }),
            None => json!({ "error": self.message }),
        };
        let mut response = json_response(self.status, &body);
        response.headers_mut().extend(self.headers.into_iter().map(|(name, value)| (Some(name), value)));
        response
    }
}

/// `value` as a JSON response (one line) with `status`.
pub(crate) fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut text = value.to_string();
    text.push('\n');
    let mut response = (status, text).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An error and its sources, `: `-separated, for logs.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
