//! The one error type every port returns, with kinds a caller can act on.

use std::borrow::Cow;
use std::fmt;

use crate::validate::ValidationReport;

/// A boxed error used as the `source` of adapter failures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A backend's name in errors and health reports: `duckdb`, `neon`, or a
/// composed store's description such as `failover(neon, duckdb)`.
pub type BackendName = Cow<'static, str>;

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
/// - `Unsupported`: the store cannot do this operation at all (see its
///   [`Capabilities`](crate::ports::Capabilities)); never retried.
/// - `Internal`: a bug or corruption; surface it.
///
/// `Unavailable` and `Timeout` carry `retries_exhausted`: `true` when the
/// adapter already retried within its own budget before giving up. A
/// decorator must not retry such an error again (one retry layer per stack).
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
        backend: BackendName,
        /// What the caller can do about it.
        what: String,
        /// The driver error.
        #[source]
        source: Option<BoxError>,
        /// The adapter already retried within its own budget: do not retry again.
        retries_exhausted: bool,
    },
    /// The operation took longer than allowed.
    #[error("{backend} timed out: {what}")]
    Timeout {
        /// Short backend name.
        backend: BackendName,
        /// Which operation.
        what: String,
        /// The adapter already retried within its own budget: do not retry again.
        retries_exhausted: bool,
    },
    /// The store cannot do this at all (a capability it lacks).
    #[error("{backend} does not support {operation}")]
    Unsupported {
        /// Short backend name.
        backend: BackendName,
        /// The operation refused (`digest`, `delete_bars`, ...).
        operation: &'static str,
    },
    /// Anything else: a bug, corruption, or an unexpected driver error.
    #[error("{backend} failed: {what}")]
    Internal {
        /// Short backend name.
        backend: BackendName,
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
    pub fn internal(backend: impl Into<BackendName>, what: impl Into<String>) -> Self {
        StoreError::Internal { backend: backend.into(), what: what.into(), source: None }
    }

    /// An `Unavailable` that no layer has retried yet.
    pub fn unavailable(backend: impl Into<BackendName>, what: impl Into<String>, source: Option<BoxError>) -> Self {
        StoreError::Unavailable { backend: backend.into(), what: what.into(), source, retries_exhausted: false }
    }

    /// A `Timeout` that no layer has retried yet.
    pub fn timeout(backend: impl Into<BackendName>, what: impl Into<String>) -> Self {
        StoreError::Timeout { backend: backend.into(), what: what.into(), retries_exhausted: false }
    }

    /// An `Unsupported` for `operation`.
    pub fn unsupported(backend: impl Into<BackendName>, operation: &'static str) -> Self {
        StoreError::Unsupported { backend: backend.into(), operation }
    }

    /// Marks an `Unavailable` or `Timeout` as already retried by the layer
    /// that returns it (other kinds are returned unchanged).
    pub fn after_retries(mut self) -> Self {
        if let StoreError::Unavailable { retries_exhausted, .. } | StoreError::Timeout { retries_exhausted, .. } =
            &mut self
        {
            *retries_exhausted = true;
        }
        self
    }

    /// True for the kinds where retrying the same idempotent call may succeed.
    /// A layer deciding whether to retry also checks [`Self::retries_exhausted`].
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. } | StoreError::Timeout { .. })
    }

    /// True when the adapter already spent its own retry budget on this error.
    pub fn retries_exhausted(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable { retries_exhausted: true, .. }
                | StoreError::Timeout { retries_exhausted: true, .. }
        )
    }

    /// True when a retry layer may repeat an idempotent call: a retryable
    /// kind that no inner layer has already retried.
    pub fn should_retry(&self) -> bool {
        self.is_retryable() && !self.retries_exhausted()
    }

    /// The backend named in the error, when the kind carries one.
    pub fn backend(&self) -> Option<&str> {
        match self {
            StoreError::Unavailable { backend, .. }
            | StoreError::Timeout { backend, .. }
            | StoreError::Unsupported { backend, .. }
            | StoreError::Internal { backend, .. } => Some(backend),
            _ => None,
        }
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
            StoreError::Unsupported { .. } => "unsupported",
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
        assert!(StoreError::unavailable("x", "down", None).is_retryable());
        assert!(StoreError::timeout("x", "slow").is_retryable());
        assert!(!StoreError::unsupported("x", "digest").is_retryable());
        assert!(!StoreError::invalid("bad").is_retryable());
        assert!(!StoreError::conflict("stale").is_retryable());
        assert!(!StoreError::not_found("run").is_retryable());
        assert!(!StoreError::internal("x", "bug").is_retryable());
    }

    #[test]
    fn an_error_retried_inside_the_adapter_is_not_retried_again() {
        let fresh = StoreError::unavailable("neon", "connection refused", None);
        assert!(fresh.should_retry() && !fresh.retries_exhausted());
        let spent = fresh.after_retries();
        assert!(spent.is_retryable(), "still the same kind");
        assert!(spent.retries_exhausted() && !spent.should_retry());
        assert!(StoreError::timeout("duckdb", "slow").after_retries().retries_exhausted());
        let conflict = StoreError::conflict("stale").after_retries();
        assert!(!conflict.retries_exhausted(), "only transient kinds carry the marker");
        assert_eq!(StoreError::unsupported("efs", "digest").to_string(), "efs does not support digest");
        assert_eq!(StoreError::internal(String::from("retry(memory)"), "x").backend(), Some("retry(memory)"));
    }
}
