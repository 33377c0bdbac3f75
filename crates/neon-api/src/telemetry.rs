//! The client's metrics, recorded through the [`metrics`] facade: this crate
//! installs no exporter (the binary does; without one every metric is a
//! no-op).
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `strata_neon_api_requests_total` | counter | `method`, `endpoint`, `status` | HTTP requests sent (each attempt counts) |
//! | `strata_neon_api_request_seconds` | histogram | `method`, `endpoint` | how long each attempt took, response body included, in seconds |
//! | `strata_neon_api_retries_total` | counter | `reason` | attempts repeated after a failure |
//! | `strata_neon_api_rate_limit_wait_seconds` | histogram | | how long a request waited for the client-side rate limiter, when it had to, in seconds |
//!
//! - `method` is `GET`, `POST`, `PATCH`, `PUT`, `DELETE`, `HEAD` or `OTHER`.
//! - `endpoint` is the API's route template of the call, such as
//!   `/projects/{project_id}/branches/{branch_id}`: it comes from the method
//!   of [`NeonClient`](crate::NeonClient) that made the call, never from the
//!   URL, so no project, branch or endpoint id ever becomes a label value.
//! - `status` is the HTTP status code (`200`, `423`, `503`, ...), or `error`
//!   when no response arrived (refused or dropped connection, timeout).
//! - `reason` is `locked` (423: operations are running on the project),
//!   `rate_limited` (429), `unavailable` (503), `server_error` (another 5xx,
//!   retried for idempotent calls only), `timeout` (the attempt ran past
//!   its timeout) or `transport` (no response: refused or dropped connection).
//!
//! Every metric has HELP text: [`describe`] registers it with the recorder
//! installed at the time, and the recording helpers call it once, on first
//! use. A binary that installs its exporter after something was recorded
//! calls [`describe`] itself.

use std::sync::Once;
use std::time::Duration;

use metrics::{SharedString, Unit};

/// HTTP requests sent, by `method`, `endpoint` and `status`.
pub const REQUESTS_TOTAL: &str = "strata_neon_api_requests_total";
/// Duration of each attempt in seconds, by `method` and `endpoint`.
pub const REQUEST_SECONDS: &str = "strata_neon_api_request_seconds";
/// Attempts repeated after a failure, by `reason`.
pub const RETRIES_TOTAL: &str = "strata_neon_api_retries_total";
/// Time spent waiting for the client-side rate limiter, in seconds.
pub const RATE_LIMIT_WAIT_SECONDS: &str = "strata_neon_api_rate_limit_wait_seconds";

/// Why an attempt is repeated (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryReason {
    /// 423: the project is locked by running operations.
    Locked,
    /// 429: the API's rate limit.
    RateLimited,
    /// 503.
    Unavailable,
    /// Another 5xx.
    ServerError,
    /// No response within the attempt's timeout.
    Timeout,
    /// No response: the connection was refused or dropped.
    Transport,
}

impl RetryReason {
    /// The reason of a retried HTTP status.
    pub(crate) fn of_status(status: u16) -> Self {
        match status {
            423 => RetryReason::Locked,
            429 => RetryReason::RateLimited,
            503 => RetryReason::Unavailable,
            _ => RetryReason::ServerError,
        }
    }

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RetryReason::Locked => "locked",
            RetryReason::RateLimited => "rate_limited",
            RetryReason::Unavailable => "unavailable",
            RetryReason::ServerError => "server_error",
            RetryReason::Timeout => "timeout",
            RetryReason::Transport => "transport",
        }
    }
}

/// Registers the unit and HELP text of every metric of this module with the
/// recorder installed now. Harmless to repeat.
pub fn describe() {
    metrics::describe_counter!(
        REQUESTS_TOTAL,
        Unit::Count,
        "Neon management API requests sent (every attempt), by method, route template and HTTP status (error: no response)."
    );
    metrics::describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "Duration of one Neon management API attempt, response body included, by method and route template."
    );
    metrics::describe_counter!(
        RETRIES_TOTAL,
        Unit::Count,
        "Neon management API attempts repeated after a failure, by reason (locked, rate_limited, unavailable, server_error, timeout, transport)."
    );
    metrics::describe_histogram!(
        RATE_LIMIT_WAIT_SECONDS,
        Unit::Seconds,
        "Time a Neon management API request waited for the client-side rate limiter (only requests that waited)."
    );
}

/// [`describe`], once per process, on the first recording.
fn describe_once() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(describe);
}

/// One attempt of `method` on the route template `endpoint` ended with
/// `status` (`None`: no response) after `elapsed`.
pub(crate) fn request(method: &'static str, endpoint: &'static str, status: Option<u16>, elapsed: Duration) {
    describe_once();
    metrics::counter!(REQUESTS_TOTAL, "method" => method, "endpoint" => endpoint, "status" => status_label(status))
        .increment(1);
    metrics::histogram!(REQUEST_SECONDS, "method" => method, "endpoint" => endpoint).record(elapsed.as_secs_f64());
}

/// An attempt is about to be repeated.
pub(crate) fn retry(reason: RetryReason) {
    describe_once();
    metrics::counter!(RETRIES_TOTAL, "reason" => reason.as_str()).increment(1);
}

/// A request waited `waited` for the client-side rate limiter.
pub(crate) fn rate_limit_wait(waited: Duration) {
    describe_once();
    metrics::histogram!(RATE_LIMIT_WAIT_SECONDS).record(waited.as_secs_f64());
}

/// The `status` label: the code (without allocating for the usual ones), or `error`.
fn status_label(status: Option<u16>) -> SharedString {
    let Some(code) = status else { return SharedString::const_str("error") };
    let common = match code {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        409 => "409",
        412 => "412",
        422 => "422",
        423 => "423",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        // Any other code (a status line has three digits: bounded).
        other => return SharedString::from(other.to_string()),
    };
    SharedString::const_str(common)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_are_the_codes_or_error() {
        for code in [200, 201, 204, 404, 423, 429, 500, 503, 418, 599] {
            assert_eq!(&*status_label(Some(code)), code.to_string());
        }
        assert_eq!(&*status_label(None), "error");
    }

    #[test]
    fn retry_reasons_follow_the_status() {
        let reasons: Vec<&str> = [423, 429, 503, 500, 502].map(|code| RetryReason::of_status(code).as_str()).to_vec();
        assert_eq!(reasons, ["locked", "rate_limited", "unavailable", "server_error", "server_error"]);
    }
}
