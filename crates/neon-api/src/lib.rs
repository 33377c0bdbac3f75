//! Typed, resilient client for the Neon management API v2, the
//! [`strata_core::Provisioner`] port on top of it, and (feature `fake-server`)
//! an in-process fake of the API for tests.
//!
//! - [`NeonClient`]: one method per API operation (projects, branches, endpoints,
//!   databases, roles, operations, connection URIs, consumption, API keys, the
//!   current user), list streams that get each endpoint's pagination right, and
//!   idempotent `ensure_*` / `*_if_exists` helpers.
//! - Resilience inside the client: 423, 429 and 503 are retried for every method
//!   after `Retry-After` or a capped, jittered exponential backoff; other 5xx and
//!   lost connections only for GET/HEAD and calls that are idempotent on purpose;
//!   a client-side rate limiter (700 requests a minute, 40 a second per route); a
//!   per-attempt timeout and an overall deadline ([`NeonApiConfig`]).
//! - [`models`]: lenient serde models (unknown fields ignored, an `Unknown` variant
//!   on every enum, non-identity fields optional), id newtypes ([`ids`]), and
//!   [`Secret`] for passwords, keys and connection URIs, which never print.
//! - [`provision::NeonProvisioner`]: implements the `Provisioner` port for one
//!   project, plus ephemeral branches with guaranteed cleanup, a branch per
//!   evolution run, and tenants (a database each, or a project each with quotas).
//! - `fake` (feature `fake-server`, on by default): [`fake::FakeNeon`], an axum
//!   server that behaves like the API, with fault injection.
//! - [`telemetry`]: requests by route template and status, their durations,
//!   retries by reason and rate-limit waits, through the `metrics` facade.
//!
//! Invariants: only this crate speaks HTTP to Neon; no log line, error message or
//! `Debug` output contains the API key, a password or a connection URI; mutations
//! return their operations and callers wait for them before the next mutation.
//!
//! ```no_run
//! # async fn demo() -> strata_neon_api::Result<()> {
//! use futures::TryStreamExt;
//! use strata_neon_api::models::{BranchCreateRequest, NewBranch, NewBranchEndpoint};
//! use strata_neon_api::{NeonApiConfig, NeonClient, ProjectId, Secret};
//!
//! let client = NeonClient::new(NeonApiConfig::new(Secret::new(std::env::var("NEON_API_KEY").unwrap_or_default())))?;
//! let projects: Vec<_> = client.list_projects().try_collect().await?;
//! let project_id = ProjectId::new("shiny-wind-028834");
//! let request = BranchCreateRequest {
//!     branch: NewBranch { name: Some("ci".into()), ..NewBranch::default() },
//!     endpoints: vec![NewBranchEndpoint::read_write()],
//! };
//! let (branch, _created_or_existed) = client.ensure_branch(&project_id, &request).await?;
//! client.delete_branch_if_exists(&project_id, &branch.id).await?;
//! # let _ = projects; Ok(()) }
//! ```

pub mod client;
pub mod config;
pub mod doctor;
mod ensure;
pub mod error;
#[cfg(feature = "fake-server")]
pub mod fake;
pub mod ids;
pub mod models;
pub mod provision;
mod rate_limit;
pub mod telemetry;

pub use client::{ConnectionUriRequest, NeonClient, ProjectWithOperations, REQUEST_ID_HEADER};
pub use config::{DEFAULT_BASE_URL, NeonApiConfig, RateLimitPolicy, RetryPolicy};
pub use ensure::Ensured;
pub use error::{NeonError, Result};
pub use ids::{ApiKeyId, BranchId, EndpointId, OperationId, ProjectId};
pub use provision::NeonProvisioner;
pub use strata_core::Secret;
