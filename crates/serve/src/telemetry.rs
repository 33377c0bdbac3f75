//! The binary's Prometheus exporter, and the HTTP metrics this crate records.
//!
//! Library crates record through the `metrics` facade only; a binary calls
//! [`install_prometheus`] once at startup and serves the handle's
//! exposition at `/metrics` ([`crate::serve`] or [`crate::serve_metrics_only`]).
//!
//! Metrics of the HTTP server (route = the route template, never the raw path):
//!
//! | name | type | labels |
//! |---|---|---|
//! | `strata_http_requests_total` | counter | `route`, `status` (the code, e.g. `200`) |
//! | `strata_http_request_seconds` | histogram | `route` |
//! | `strata_http_responses_aborted_total` | counter | `route` |
//! | `strata_build_info` | gauge (1) | `version` |
//!
//! `route` is one of `/metrics`, `/health`, `/v1/bars`, `/v1/summary`,
//! `/v1/digest`, `/`, `/runs.json`, `/runs/{run}`, or `unmatched`.

use std::sync::Once;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

pub use metrics_exporter_prometheus::PrometheusHandle;

use crate::error::ServeError;

/// Upper bounds (seconds) of the buckets of every histogram whose name ends
/// in `_seconds`: 0.5 ms to 60 s, for a cache hit and a cold PostgreSQL scan alike.
pub const SECONDS_BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// How often histogram samples are drained into their buckets (the exporter
/// leaves this to its caller when it runs no listener of its own).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the process-wide Prometheus recorder: every `*_seconds`
/// histogram gets [`SECONDS_BUCKETS`] (a true Prometheus histogram, not a
/// summary), `strata_build_info{version}` is set to 1, and a background
/// thread runs the exporter's upkeep every few seconds. `version` is the
/// binary's `env!("CARGO_PKG_VERSION")`.
///
/// Fails when a recorder is already installed (call it once, in `main`).
pub fn install_prometheus(version: &str) -> Result<PrometheusHandle, ServeError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
        .map_err(ServeError::Exporter)?
        .install_recorder()
        .map_err(ServeError::Exporter)?;
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("strata-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        })
        .map_err(ServeError::Io)?;
    describe_http_metrics_now();
    metrics::describe_gauge!("strata_build_info", "Always 1; the version label is the running binary's version.");
    metrics::gauge!("strata_build_info", "version" => version.to_owned()).set(1.0);
    Ok(handle)
}

/// Requests answered, by route template and status code.
pub(crate) const REQUESTS_TOTAL: &str = "strata_http_requests_total";
/// Time from the request to the last byte of the response, by route template.
pub(crate) const REQUEST_SECONDS: &str = "strata_http_request_seconds";
/// Responses whose body failed after the status was sent (a store error mid-stream).
pub(crate) const RESPONSES_ABORTED_TOTAL: &str = "strata_http_responses_aborted_total";

/// Registers the HELP text of the HTTP metrics with the installed recorder,
/// once, at the first request ([`install_prometheus`] also does, so the
/// text is there even when a request came before the recorder).
pub(crate) fn describe_http_metrics() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(describe_http_metrics_now);
}

fn describe_http_metrics_now() {
    metrics::describe_counter!(REQUESTS_TOTAL, "HTTP requests answered, by route template and status code.");
    metrics::describe_histogram!(
        REQUEST_SECONDS,
        metrics::Unit::Seconds,
        "Seconds from an HTTP request to the last byte of its response, by route template."
    );
    metrics::describe_counter!(
        RESPONSES_ABORTED_TOTAL,
        "HTTP responses whose body was cut off by an error after the status was sent (e.g. a store error \
         while streaming bars)."
    );
}
