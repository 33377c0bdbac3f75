//! Client configuration: base URL, API key, timeouts, retry and rate-limit
//! policy. A plain struct; only the composition root reads the environment.

use std::time::Duration;

use strata_core::Secret;

/// The production API.
pub const DEFAULT_BASE_URL: &str = "https://console.neon.tech/api/v2";

/// How the client talks to the API.
#[derive(Debug, Clone)]
pub struct NeonApiConfig {
    /// Base URL including `/api/v2` (a fake or a proxy in tests).
    pub base_url: String,
    /// The bearer API key.
    pub api_key: Secret,
    /// Timeout of one HTTP attempt.
    pub request_timeout: Duration,
    /// Overall deadline of one call, retries and rate-limit waits included.
    pub deadline: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Client-side rate limits.
    pub rate_limit: RateLimitPolicy,
    /// How often waiting polls an unfinished operation.
    pub operation_poll_interval: Duration,
    /// How long waiting for operations may take by default.
    pub operation_timeout: Duration,
    /// Items per page the list streams ask for.
    pub page_size: u32,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl NeonApiConfig {
    /// Production defaults for `api_key` against [`DEFAULT_BASE_URL`].
    pub fn new(api_key: Secret) -> Self {
        NeonApiConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key,
            request_timeout: Duration::from_secs(30),
            deadline: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            rate_limit: RateLimitPolicy::default(),
            operation_poll_interval: Duration::from_millis(500),
            operation_timeout: Duration::from_secs(300),
            page_size: 100,
            user_agent: format!("strata-neon-api/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// The same with another base URL.
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Fast timings for tests against the fake server: millisecond backoff and polling.
    pub fn fast_for_tests(mut self) -> Self {
        self.request_timeout = Duration::from_secs(5);
        self.deadline = Duration::from_secs(20);
        self.retry = RetryPolicy {
            max_attempts: 20,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(2),
        };
        self.operation_poll_interval = Duration::from_millis(20);
        self.operation_timeout = Duration::from_secs(10);
        self
    }
}

/// When and how long to wait before another attempt.
///
/// 423, 429 and 503 are retried for every method; other 5xx and transport
/// errors only for GET/HEAD and calls the client made idempotent on purpose
/// (deletes, settings updates of projects and endpoints, set-default, start and
/// suspend). A refused connection never reached the API and is retried for all.
/// A `Retry-After` header (seconds or an HTTP date) wins over the backoff,
/// capped at `max_retry_after`; otherwise the delay is
/// `min(max_delay, base_delay * 2^attempt)` with jitter between half and all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total (the first included).
    pub max_attempts: u32,
    /// Backoff of the first retry.
    pub base_delay: Duration,
    /// Cap of the backoff.
    pub max_delay: Duration,
    /// Cap of a server's `Retry-After`.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }
    }
}

/// Client-side rate limits, below Neon's documented 700 requests per minute
/// and bursts of 40 per second per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitPolicy {
    /// Requests allowed per `global_window` over all routes.
    pub global_limit: u32,
    /// Window of the global limit.
    pub global_window: Duration,
    /// Requests allowed per `route_window` on one route (method + path template).
    pub route_limit: u32,
    /// Window of the per-route limit.
    pub route_window: Duration,
}

impl Default for RateLimitPolicy {
    fn default() -> Self {
        RateLimitPolicy {
            global_limit: 700,
            global_window: Duration::from_secs(60),
            route_limit: 40,
            route_window: Duration::from_secs(1),
        }
    }
}
