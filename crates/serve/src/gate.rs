//! What every request passes through, in this order: the bearer token
//! (401), the query-string size (400), a slot among the requests in flight
//! (503 with `Retry-After: 1`), then the route. The response body is wrapped
//! so that the slot is held until its last byte is sent, and the request is
//! counted, timed and logged when the body ends (or is dropped).
//!
//! Logs carry the method, the path (not the query), the route, the status
//! and the duration: never a header, so never the token.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{ApiToken, Limits};
use crate::error::ApiError;
use crate::telemetry;

/// The routes, as metric labels (a fixed set: never the raw path).
const ROUTES: [&str; 5] = ["/metrics", "/health", "/v1/bars", "/v1/summary", "/v1/digest"];
/// The label of a request that matched no route.
const UNMATCHED: &str = "unmatched";

/// The gate's settings and the slots of requests in flight.
#[derive(Debug)]
pub(crate) struct Gate {
    token: Option<ApiToken>,
    limits: Limits,
    permits: Arc<Semaphore>,
}

impl Gate {
    pub(crate) fn new(token: Option<ApiToken>, limits: Limits) -> Self {
        Gate { token, limits, permits: Arc::new(Semaphore::new(limits.max_concurrent_requests)) }
    }

    /// A gate that only times and logs (the metrics-only server: no token, no limits).
    pub(crate) fn open() -> Self {
        Gate::new(None, Limits { max_concurrent_requests: Semaphore::MAX_PERMITS, ..Limits::default() })
    }

    /// Admits `request` to `route`, with the slot it holds (none for `/metrics`).
    fn admit(&self, request: &Request, route: &str) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        if let Some(token) = &self.token {
            let presented = request.headers().get(header::AUTHORIZATION).and_then(|value| bearer(value.as_bytes()));
            match presented {
                Some(presented) if token.matches(presented) => {}
                Some(_) => return Err(ApiError::unauthorized(true)),
                None => return Err(ApiError::unauthorized(false)),
            }
        }
        let query_bytes = request.uri().query().map_or(0, str::len);
        if query_bytes > self.limits.max_query_bytes {
            return Err(ApiError::bad_request(format!(
                "the query string is {query_bytes} bytes long; at most {} are allowed",
                self.limits.max_query_bytes
            )));
        }
        if route == "/metrics" {
            return Ok(None);
        }
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => Err(ApiError::busy(self.limits.max_concurrent_requests)),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let start = rest.iter().position(|byte| *byte != b' ')?;
    Some(&rest[start..])
}

/// The middleware: admits the request (or answers for the gate), runs the
/// route, and wraps the response body in a [`Tracked`] body.
pub(crate) async fn gate(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    telemetry::describe_http_metrics();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|matched| ROUTES.into_iter().find(|route| *route == matched.as_str()))
        .unwrap_or(UNMATCHED);
    let mut record = Record {
        route,
        method: request.method().clone(),
        path: request.uri().path().to_owned(),
        started: Instant::now(),
        status: StatusCode::OK,
        outcome: Outcome::Dropped,
        _permit: None,
    };
    tracing::trace!(method = %record.method, path = %record.path, query = request.uri().query().unwrap_or(""), "request");
    let response = match gate.admit(&request, route) {
        Ok(permit) => {
            record._permit = permit;
            next.run(request).await
        }
        Err(refusal) => refusal.into_response(),
    };
    record.status = response.status();
    response.map(|inner| Body::new(Tracked { inner, record }))
}

/// A response body that records its request when it ends.
struct Tracked {
    inner: Body,
    record: Record,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &polled {
            None => self.record.outcome = Outcome::Complete,
            Some(Err(_)) => self.record.outcome = Outcome::Aborted,
            Some(Ok(_)) => {}
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How a response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Every byte was handed to the connection.
    Complete,
    /// The body failed after the status was sent; the transfer was cut off.
    Aborted,
    /// Dropped before its end: the client went away (or a `HEAD` request).
    Dropped,
}

/// One request's facts, recorded and logged when dropped (with the body).
struct Record {
    route: &'static str,
    method: Method,
    path: String,
    started: Instant,
    status: StatusCode,
    outcome: Outcome,
    /// The slot among the requests in flight, released with the body.
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Record {
    fn drop(&mut self) {
        let seconds = self.started.elapsed().as_secs_f64();
        let status = self.status.as_u16();
        metrics::counter!(telemetry::REQUESTS_TOTAL, "route" => self.route, "status" => status.to_string())
            .increment(1);
        metrics::histogram!(telemetry::REQUEST_SECONDS, "route" => self.route).record(seconds);
        if self.outcome == Outcome::Aborted {
            metrics::counter!(telemetry::RESPONSES_ABORTED_TOTAL, "route" => self.route).increment(1);
        }
        let outcome = match self.outcome {
            Outcome::Complete => "complete",
            Outcome::Aborted => "aborted",
            Outcome::Dropped => "dropped",
        };
        tracing::debug!(
            method = %self.method,
            path = %self.path,
            route = self.route,
            status,
            outcome,
            elapsed_ms = seconds * 1e3,
            "answered"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_required() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer   abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer"), None);
    }
}
