//! The one error type every port returns, with kinds a caller can act on.

use std::fmt;

use crate::validate::ValidationReport;

/// A boxed error used as the `source` of adapter failures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used by every port.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What went wrong, as a kind the caller can act on.
///
/// - `InvalidInput`: the caller's data is wrong; never retried. Carries the row report.
/// - `NotFound`: a miss (unknown run, generation, ...).
/// - `Conflict`: a compare-and-set lost (stale fencing token, generation moved on,
///   a different run already uses this id). Reload and decide.
/// - `Unavailable`: the backend cannot be reached or is busy (locked file,
///   connection refused). Retry later or fail over.
/// - `Timeout`: the operation did not finish in time; it may or may not have
///   taken effect, so only idempotent operations should be retried.
/// - `Internal`: a bug or corruption; surface it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The input was rejected; nothing was written.
    #[error("invalid input: {0}")]
    InvalidInput(InvalidInput),
    /// The thing asked for does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked up, for the message.
        what: String,
    },
    /// A concurrent change won; the operation was refused.
    #[error("conflict: {what}")]
    Conflict {
        /// What conflicted, for the message.
        what: String,
    },
    /// The backend could not be reached or is held by someone else.
    #[error("{backend} unavailable: {what}")]
    Unavailable {
        /// Short backend name (`duckdb`, `neon`, ...).
        backend: &'static str,
        /// What the caller can do about it.
        what: String,
        /// The driver error.
        #[source]
        source: Option<BoxError>,
    },
    /// The operation took longer than allowed.
    #[error("{backend} timed out: {what}")]
    Timeout {
        /// Short backend name.
        backend: &'static str,
        /// Which operation.
        what: String,
    },
    /// Anything else: a bug, corruption, or an unexpected driver error.
    #[error("{backend} failed: {what}")]
    Internal {
        /// Short backend name.
        backend: &'static str,
        /// What was being done.
        what: String,
        /// The driver error.
        #[source]
        source: Option<BoxError>,
    },
}

/// The payload of [`StoreError::InvalidInput`]: either a per-row report from
/// validation or a single message about an argument.
#[derive(Debug, Clone, PartialEq)]
pub enum InvalidInput {
    /// One or more rows of a batch failed validation.
    Rows(ValidationReport),
    /// An argument (symbol, range, id, schema) is malformed.
    Argument(String),
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidInput::Rows(report) => write!(f, "{report}"),
            InvalidInput::Argument(message) => f.write_str(message),
        }
    }
}

impl StoreError {
    /// An `InvalidInput` about an argument.
    pub fn invalid(message: impl Into<String>) -> Self {
        StoreError::InvalidInput(InvalidInput::Argument(message.into()))
    }

    /// A `NotFound` for `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        StoreError::NotFound { what: what.into() }
    }

    /// A `Conflict` about `what`.
    pub fn conflict(what: impl Into<String>) -> Self {
        StoreError::Conflict { what: what.into() }
    }

    /// An `Internal` error without a source.
    pub fn internal(backend: &'static str, what: impl Into<String>) -> Self {
        StoreError::Internal { backend, what: what.into(), source: None }
    }

    /// True for the kinds where retrying the same idempotent call may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. } | StoreError::Timeout { .. })
    }

    /// The row report when this is a validation failure.
    pub fn validation_report(&self) -> Option<&ValidationReport> {
        match self {
            StoreError::InvalidInput(InvalidInput::Rows(report)) => Some(report),
            _ => None,
        }
    }

    /// A short stable name of the kind, for logs and JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::InvalidInput(_) => "invalid_input",
            StoreError::NotFound { .. } => "not_found",
            StoreError::Conflict { .. } => "conflict",
            StoreError::Unavailable { .. } => "unavailable",
            StoreError::Timeout { .. } => "timeout",
            StoreError::Internal { .. } => "internal",
        }
    }
}

impl From<ValidationReport> for StoreError {
    fn from(report: ValidationReport) -> Self {
        StoreError::InvalidInput(InvalidInput::Rows(report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailable_and_timeout_are_retryable() {
        assert!(StoreError::Unavailable { backend: "x", what: "down".into(), source: None }.is_retryable());
        assert!(StoreError::Timeout { backend: "x", what: "slow".into() }.is_retryable());
        assert!(!StoreError::invalid("bad").is_retryable());
        assert!(!StoreError::conflict("stale").is_retryable());
        assert!(!StoreError::not_found("run").is_retryable());
        assert!(!StoreError::internal("x", "bug").is_retryable());
    }
}
