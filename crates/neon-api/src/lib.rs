//! Typed, resilient client for the Neon management API v2, the
//! [`strata_core::Provisioner`] port on top of it, and (feature `fake-server`)
//! an in-process fake of the API for tests.
//!
//! Only this crate speaks HTTP to Neon.

pub mod client;
pub mod config;
pub mod error;
pub mod ids;
pub mod models;
mod rate_limit;

pub use client::{ConnectionUriRequest, NeonClient, ProjectWithOperations, REQUEST_ID_HEADER};
pub use config::{DEFAULT_BASE_URL, NeonConfig, RateLimitPolicy, RetryPolicy};
pub use error::{NeonError, Result};
pub use ids::{ApiKeyId, BranchId, EndpointId, OperationId, ProjectId};
pub use strata_core::Secret;
mod ensure;
#[cfg(feature = "fake-server")]
pub mod fake;

pub use ensure::Ensured;
pub mod provision;

pub use provision::NeonProvisioner;
