//! `strata-serve` against a real server on 127.0.0.1 with the memory store
//! and real clients (reqwest, pyarrow, promtool): formats, parameters,
//! auth, health, concurrency, streaming, metrics and logs.
//!
//! One test binary: the tracing subscriber and the metrics recorder are
//! process-wide, installed once in `support`.

// Helpers shared by the tests unwrap like the tests do.
#![allow(clippy::unwrap_used)]

mod api;
mod load;
mod observability;
mod python;
mod support;
