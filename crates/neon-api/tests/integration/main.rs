//! Integration tests of the Neon API client against the fake server: every
//! public call, resilience, the Provisioner, secrets in logs, the spec contract, and the metrics.

// Helpers shared by the tests unwrap like the tests do.
#![allow(clippy::unwrap_used)]

mod client;
mod contract;
mod provisioner;
mod real_server;
mod resilience;
mod schema;
mod secrets;
mod support;
mod telemetry;
