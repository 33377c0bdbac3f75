//! The provisioning port: isolated database branches, databases, roles and
//! connection URIs for evolutions, workers, tenants and CI. Implemented by
//! `neon-api` (a later crate); mocked by `strata-adapter-mock`.

use std::fmt;
use std::sync::Arc;

use crate::bar::Timestamp;
use crate::error::Result;

/// A secret string (password, connection URI with a password) whose `Debug`
/// and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a new branch starts from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BranchPoint {
    /// The parent's current head.
    #[default]
    Head,
    /// The parent as of an instant.
    Timestamp(Timestamp),
    /// The parent as of a WAL position (`0/1A2B3C4`).
    Lsn(String),
}

/// A branch to ensure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchSpec {
    /// Branch name (unique within the project).
    pub name: String,
    /// Parent branch name; `None` = the project's default branch.
    pub parent: Option<String>,
    /// Point of the parent to branch from.
    pub at: BranchPoint,
}

/// A provisioned branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchInfo {
    /// Provider id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The parent's write-ahead-log position the branch starts at, when the provider tells it.
    pub lsn: Option<String>,
}

/// Which connection string to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Through the connection pooler (PgBouncer, transaction mode).
    Pooled,
    /// Straight to the compute.
    Direct,
}

/// Creates and removes isolated database resources. Every method is idempotent:
/// `ensure_*` succeeds when the thing already exists, `delete_*`/`drop_*`
/// return `false` when it was already gone, so scripts can be re-run.
#[async_trait::async_trait]
pub trait Provisioner: Send + Sync + std::fmt::Debug + 'static {
    /// Creates a branch (with a read-write compute) unless it exists; returns it.
    async fn ensure_branch(&self, spec: BranchSpec) -> Result<BranchInfo>;
    /// Deletes a branch; `false` if it did not exist.
    async fn delete_branch(&self, name: &str) -> Result<bool>;
    /// Creates a database on a branch unless it exists.
    async fn ensure_database(&self, branch: &str, database: &str, owner: &str) -> Result<()>;
    /// Drops a database; `false` if it did not exist.
    async fn drop_database(&self, branch: &str, database: &str) -> Result<bool>;
    /// Creates a role unless it exists; returns its password when the provider reveals it.
    async fn ensure_role(&self, branch: &str, role: &str) -> Result<Option<Secret>>;
    /// A connection URI (with password) for `role` on `database` of `branch`.
    async fn connection_uri(&self, branch: &str, database: &str, role: &str, pooling: Pooling) -> Result<Secret>;
}

const _: fn() = || {
    fn assert_object_safe_and_shareable<T: ?Sized + Send + Sync>() {}
    assert_object_safe_and_shareable::<Arc<dyn Provisioner>>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("postgres://u:hunter2@host/db");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{secret}").contains("hunter2"));
        assert_eq!(secret.expose(), "postgres://u:hunter2@host/db");
    }
}
