//! The [`Provisioner`] port on top of the client: branches, databases, roles and
//! connection URIs in one Neon project, plus ephemeral branches with guaranteed
//! cleanup, a branch per evolution run, and tenants (a database per tenant in a
//! shared project, or a project per tenant with quotas).

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::{FutureExt, TryStreamExt};
use strata_core::error::Result as StoreResult;
use strata_core::ports::provision::{BranchInfo, BranchPoint, BranchSpec, Pooling};
use strata_core::{Provisioner, Secret, StoreError};

use crate::client::{ConnectionUriRequest, NeonClient};
use crate::ensure::Ensured;
use crate::error::NeonError;
use crate::ids::{BranchId, ProjectId};
use crate::models::{
    Branch, BranchCreateRequest, DefaultEndpointSettings, NewBranch, NewBranchEndpoint, NewProject, Project,
    ProjectQuota, ProjectSettings, ProjectUpdate,
};

/// Implements [`Provisioner`] for one Neon project.
///
/// ```no_run
/// # async fn demo() -> strata_core::Result<()> {
/// use strata_neon_api::{NeonApiConfig, NeonClient, ProjectId, Secret};
/// use strata_neon_api::provision::{EphemeralBranchRequest, NeonProvisioner};
///
/// let client = NeonClient::new(NeonApiConfig::new(Secret::new("napi_...")))?;
/// let provisioner = NeonProvisioner::new(client, ProjectId::new("shiny-wind-028834"));
/// let rows = provisioner
///     .with_ephemeral_branch(EphemeralBranchRequest::new("ci-run-42"), |branch| async move {
///         // Connect with branch.connection_uri.expose() and run the tests.
///         Ok::<_, strata_core::StoreError>(branch.branch.name.len())
///     })
///     .await?; // The branch is gone here, whether the closure succeeded or not.
/// # let _ = rows; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct NeonProvisioner {
    client: NeonClient,
    project_id: ProjectId,
    endpoint: NewBranchEndpoint,
}

/// What an ephemeral branch needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EphemeralBranchRequest {
    /// Branch name.
    pub name: String,
    /// Parent branch name (`None`: the project's default branch).
    pub parent: Option<String>,
    /// Point of the parent to branch from.
    pub at: BranchPoint,
    /// Role to create on the branch.
    pub role: String,
    /// Database to create, owned by `role`.
    pub database: String,
    /// Which connection URI to return.
    pub pooling: Pooling,
}

impl EphemeralBranchRequest {
    /// A branch `name` from the default branch's head with role `strata` owning database `strata`, pooled.
    pub fn new(name: impl Into<String>) -> Self {
        EphemeralBranchRequest {
            name: name.into(),
            parent: None,
            at: BranchPoint::Head,
            role: "strata".into(),
            database: "strata".into(),
            pooling: Pooling::Pooled,
        }
    }
}

/// A provisioned ephemeral branch; `connection_uri` holds the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EphemeralBranchInfo {
    /// The branch.
    pub branch: BranchInfo,
    /// The role.
    pub role: String,
    /// The database.
    pub database: String,
    /// Where to connect.
    pub connection_uri: Secret,
}

/// A guard over an ephemeral branch: call [`EphemeralBranch::cleanup`]; if it is dropped
/// without that, it deletes the branch in a background task (best effort).
#[derive(Debug)]
pub struct EphemeralBranch {
    client: NeonClient,
    project_id: ProjectId,
    branch_id: BranchId,
    info: EphemeralBranchInfo,
    cleaned: bool,
}

impl EphemeralBranch {
    /// What was provisioned.
    pub fn info(&self) -> &EphemeralBranchInfo {
        &self.info
    }

    /// Deletes the branch (with its compute, role and database); `false` if it was already gone.
    pub async fn cleanup(mut self) -> StoreResult<bool> {
        self.cleaned = true;
        Ok(self.client.delete_branch_if_exists(&self.project_id, &self.branch_id).await?)
    }
}

impl Drop for EphemeralBranch {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let client = self.client.clone();
        let project_id = self.project_id.clone();
        let branch_id = self.branch_id.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                tracing::warn!(branch = %branch_id, "ephemeral branch dropped without cleanup; deleting it in the background");
                handle.spawn(async move {
                    if let Err(error) = client.delete_branch_if_exists(&project_id, &branch_id).await {
                        tracing::error!(branch = %branch_id, %error, "could not delete ephemeral branch");
                    }
                });
            }
            Err(_) => {
                tracing::error!(branch = %branch_id, "ephemeral branch dropped outside a runtime; it was not deleted")
            }
        }
    }
}

/// What Strata created a branch for (see [`NeonProvisioner::branch_purpose`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BranchPurpose {
    /// The branch of an evolution run.
    Evolution {
        /// The run, as its branch name spells it.
        run: String,
    },
    /// The branch of one worker of an evolution run.
    Worker {
        /// The run, as the branch name spells it.
        run: String,
        /// The worker, as the branch name spells it.
        worker: String,
    },
}

impl BranchPurpose {
    /// The run the branch belongs to.
    pub fn run(&self) -> &str {
        match self {
            BranchPurpose::Evolution { run } | BranchPurpose::Worker { run, .. } => run,
        }
    }

    /// The worker, for a worker's branch.
    pub fn worker(&self) -> Option<&str> {
        match self {
            BranchPurpose::Evolution { .. } => None,
            BranchPurpose::Worker { worker, .. } => Some(worker),
        }
    }
}

/// A tenant's quota plan, as in the seeds (`004`): premium or basic, or custom limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantPlan {
    /// 1 active hour per period, 100 compute hours, 1 GiB per branch.
    Basic,
    /// 24 active hours per period, 1000 compute hours, 10 GiB per branch.
    Premium,
    /// Custom limits.
    Custom(ProjectQuota),
}

impl TenantPlan {
    /// The project quota of the plan.
    pub fn quota(&self) -> ProjectQuota {
        match self {
            TenantPlan::Basic => ProjectQuota {
                active_time_seconds: Some(3_600),
                compute_time_seconds: Some(360_000),
                logical_size_bytes: Some(1_073_741_824),
                ..ProjectQuota::default()
            },
            TenantPlan::Premium => ProjectQuota {
                active_time_seconds: Some(86_400),
                compute_time_seconds: Some(3_600_000),
                logical_size_bytes: Some(10_737_418_240),
                ..ProjectQuota::default()
            },
            TenantPlan::Custom(quota) => quota.clone(),
        }
    }
}

/// A tenant's database in the shared project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantDatabase {
    /// Database name (`tenant_<id>`).
    pub database: String,
    /// Owner role (`tenant_<id>_owner`).
    pub role: String,
    /// Pooled connection URI.
    pub connection_uri: Secret,
}

/// A tenant's own project.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantProject {
    /// The project.
    pub project: Project,
    /// Its default branch.
    pub default_branch_id: Option<BranchId>,
    /// Whether this call created it.
    pub ensured: Ensured,
}

/// `[a-z0-9_]` only: safe for Postgres identifiers and Neon names.
fn sanitize(text: &str, separator: char) -> String {
    text.chars()
        .map(|character| if character.is_ascii_alphanumeric() { character.to_ascii_lowercase() } else { separator })
        .collect()
}

impl NeonProvisioner {
    /// A provisioner for `project_id`; new branches get a read-write compute with the project's defaults.
    pub fn new(client: NeonClient, project_id: ProjectId) -> Self {
        NeonProvisioner { client, project_id, endpoint: NewBranchEndpoint::read_write() }
    }

    /// Uses these compute settings (autoscaling limits, suspend timeout) for new branches.
    pub fn with_endpoint(mut self, endpoint: NewBranchEndpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// The client.
    pub fn client(&self) -> &NeonClient {
        &self.client
    }

    /// The project.
    pub fn project_id(&self) -> &ProjectId {
        &self.project_id
    }

    async fn find_branch(&self, name: &str) -> StoreResult<Option<Branch>> {
        Ok(self.client.find_branch_by_name(&self.project_id, name).await?)
    }

    async fn branch_id(&self, name: &str) -> StoreResult<BranchId> {
        match self.find_branch(name).await? {
            Some(branch) => Ok(branch.id),
            None => Err(StoreError::NotFound { what: format!("branch {name:?} in Neon project {}", self.project_id) }),
        }
    }

    async fn ensure_branch_with_id(&self, spec: &BranchSpec) -> StoreResult<(Branch, Ensured)> {
        let parent_id = match &spec.parent {
            Some(parent) => Some(self.branch_id(parent).await?),
            None => None,
        };
        let mut branch = NewBranch { name: Some(spec.name.clone()), parent_id, ..NewBranch::default() };
        match &spec.at {
            BranchPoint::Head => {}
            BranchPoint::Lsn(lsn) => branch.parent_lsn = Some(lsn.clone()),
            BranchPoint::Timestamp(timestamp) => {
                let instant = timestamp.to_datetime().ok_or_else(|| {
                    StoreError::InvalidInput(strata_core::InvalidInput::Argument(format!(
                        "branch point {} is out of range",
                        timestamp.micros()
                    )))
                })?;
                branch.parent_timestamp = Some(instant);
            }
        }
        let request = BranchCreateRequest { branch, endpoints: vec![self.endpoint.clone()] };
        Ok(self.client.ensure_branch(&self.project_id, &request).await?)
    }

    /// The branch name of an evolution run: `evolution-<run id>` in lowercase letters, digits and dashes.
    pub fn evolution_branch_name(run_id: &str) -> String {
        let mut name = format!("evolution-{}", sanitize(run_id, '-'));
        name.truncate(256);
        name
    }

    /// Ensures the branch of an evolution run, from `parent` (default branch when `None`).
    pub async fn ensure_evolution_branch(&self, run_id: &str, parent: Option<&str>) -> StoreResult<BranchInfo> {
        let spec = BranchSpec {
            name: NeonProvisioner::evolution_branch_name(run_id),
            parent: parent.map(str::to_owned),
            at: BranchPoint::Head,
        };
        self.ensure_branch(spec).await
    }

    /// Deletes the branch of an evolution run; `false` if it did not exist.
    pub async fn delete_evolution_branch(&self, run_id: &str) -> StoreResult<bool> {
        self.delete_branch(&NeonProvisioner::evolution_branch_name(run_id)).await
    }

    /// The branch name of a worker of an evolution run:
    /// `evolution-<run id>/worker-<worker id>`, both parts in lowercase letters,
    /// digits and dashes (the `/` cannot occur in either, so the name parses back
    /// with [`NeonProvisioner::branch_purpose`]).
    pub fn worker_branch_name(run_id: &str, worker_id: &str) -> String {
        let mut name =
            format!("{}/worker-{}", NeonProvisioner::evolution_branch_name(run_id), sanitize(worker_id, '-'));
        name.truncate(256);
        name
    }

    /// Ensures the branch of a worker of an evolution run, a child of the run's
    /// branch (which is ensured first, from the default branch).
    pub async fn ensure_worker_branch(&self, run_id: &str, worker_id: &str) -> StoreResult<BranchInfo> {
        let parent = self.ensure_evolution_branch(run_id, None).await?;
        let spec = BranchSpec {
            name: NeonProvisioner::worker_branch_name(run_id, worker_id),
            parent: Some(parent.name),
            at: BranchPoint::Head,
        };
        self.ensure_branch(spec).await
    }

    /// Deletes the branch of a worker of an evolution run; `false` if it did not exist.
    pub async fn delete_worker_branch(&self, run_id: &str, worker_id: &str) -> StoreResult<bool> {
        self.delete_branch(&NeonProvisioner::worker_branch_name(run_id, worker_id)).await
    }

    /// What Strata made a branch for, read from its name: the branch of an
    /// evolution run ([`NeonProvisioner::evolution_branch_name`]) or of one of
    /// its workers ([`NeonProvisioner::worker_branch_name`]); `None` for any
    /// other branch. The run and worker are as the name spells them (sanitized).
    pub fn branch_purpose(name: &str) -> Option<BranchPurpose> {
        let rest = name.strip_prefix("evolution-")?;
        let valid = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        match rest.split_once("/worker-") {
            Some((run, worker)) if valid(run) && valid(worker) => {
                Some(BranchPurpose::Worker { run: run.to_owned(), worker: worker.to_owned() })
            }
            Some(_) => None,
            None if valid(rest) => Some(BranchPurpose::Evolution { run: rest.to_owned() }),
            None => None,
        }
    }

    /// Creates a branch with a read-write compute, a role and a database, and returns a guard
    /// holding its connection URI. If any step fails, the branch is deleted before returning.
    pub async fn create_ephemeral_branch(&self, request: &EphemeralBranchRequest) -> StoreResult<EphemeralBranch> {
        let spec = BranchSpec { name: request.name.clone(), parent: request.parent.clone(), at: request.at.clone() };
        let (branch, _) = self.ensure_branch_with_id(&spec).await?;
        let mut guard = EphemeralBranch {
            client: self.client.clone(),
            project_id: self.project_id.clone(),
            branch_id: branch.id.clone(),
            info: EphemeralBranchInfo {
                branch: BranchInfo {
                    id: branch.id.to_string(),
                    name: branch.name.clone(),
                    lsn: branch.parent_lsn.clone(),
                },
                role: request.role.clone(),
                database: request.database.clone(),
                connection_uri: Secret::new(String::new()),
            },
            cleaned: false,
        };
        let provisioned: Result<Secret, NeonError> = async {
            self.client.ensure_role(&self.project_id, &branch.id, &request.role).await?;
            self.client.ensure_database(&self.project_id, &branch.id, &request.database, &request.role).await?;
            self.client
                .connection_uri(
                    &self.project_id,
                    &ConnectionUriRequest {
                        branch_id: Some(branch.id.clone()),
                        endpoint_id: None,
                        database_name: request.database.clone(),
                        role_name: request.role.clone(),
                        pooled: request.pooling == Pooling::Pooled,
                    },
                )
                .await
        }
        .await;
        match provisioned {
            Ok(uri) => {
                guard.info.connection_uri = uri;
                Ok(guard)
            }
            Err(error) => {
                if let Err(cleanup_error) = guard.cleanup().await {
                    tracing::error!(%cleanup_error, "could not delete a half-provisioned ephemeral branch");
                }
                Err(error.into())
            }
        }
    }

    /// Runs `body` with an ephemeral branch and deletes the branch afterwards, whether
    /// `body` succeeded, failed or panicked. A cleanup failure after a successful body is
    /// returned; after a failed body it is logged and the body's error returned.
    pub async fn with_ephemeral_branch<T, E, F, Fut>(&self, request: EphemeralBranchRequest, body: F) -> Result<T, E>
    where
        F: FnOnce(EphemeralBranchInfo) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<StoreError>,
    {
        let guard = self.create_ephemeral_branch(&request).await.map_err(E::from)?;
        let outcome = AssertUnwindSafe(body(guard.info().clone())).catch_unwind().await;
        let cleanup = guard.cleanup().await;
        match outcome {
            Err(panic) => {
                if let Err(error) = cleanup {
                    tracing::error!(%error, "could not delete the ephemeral branch after a panic");
                }
                std::panic::resume_unwind(panic)
            }
            Ok(Err(error)) => {
                if let Err(cleanup_error) = cleanup {
                    tracing::error!(%cleanup_error, "could not delete the ephemeral branch after a failure");
                }
                Err(error)
            }
            Ok(Ok(value)) => {
                cleanup.map_err(E::from)?;
                Ok(value)
            }
        }
    }

    /// The database and role names of a tenant in the shared project.
    pub fn tenant_names(tenant_id: &str) -> (String, String) {
        let database = format!("tenant_{}", sanitize(tenant_id, '_'));
        let role = format!("{database}_owner");
        (database, role)
    }

    /// Ensures a tenant's database (owned by its own role) on `branch` (default branch when
    /// `None`) of the shared project, and returns its pooled connection URI.
    pub async fn ensure_tenant_database(&self, tenant_id: &str, branch: Option<&str>) -> StoreResult<TenantDatabase> {
        let branch_id = match branch {
            Some(name) => self.branch_id(name).await?,
            None => self.default_branch_id().await?,
        };
        let (database, role) = NeonProvisioner::tenant_names(tenant_id);
        self.client.ensure_role(&self.project_id, &branch_id, &role).await?;
        self.client.ensure_database(&self.project_id, &branch_id, &database, &role).await?;
        let connection_uri = self
            .client
            .connection_uri(
                &self.project_id,
                &ConnectionUriRequest {
                    branch_id: Some(branch_id),
                    endpoint_id: None,
                    database_name: database.clone(),
                    role_name: role.clone(),
                    pooled: true,
                },
            )
            .await?;
        Ok(TenantDatabase { database, role, connection_uri })
    }

    /// Drops a tenant's database and role from the default branch; `false` if the database did not exist.
    pub async fn drop_tenant_database(&self, tenant_id: &str) -> StoreResult<bool> {
        let branch_id = self.default_branch_id().await?;
        let (database, role) = NeonProvisioner::tenant_names(tenant_id);
        let dropped = self.client.delete_database_if_exists(&self.project_id, &branch_id, &database).await?;
        self.client.delete_role_if_exists(&self.project_id, &branch_id, &role).await?;
        Ok(dropped)
    }

    async fn default_branch_id(&self) -> StoreResult<BranchId> {
        match self.client.default_branch(&self.project_id).await? {
            Some(branch) => Ok(branch.id),
            None => Err(StoreError::NotFound { what: format!("default branch of Neon project {}", self.project_id) }),
        }
    }

    /// The project name of a tenant: `tenant-<id>`.
    pub fn tenant_project_name(tenant_id: &str) -> String {
        format!("tenant-{}", sanitize(tenant_id, '-'))
    }

    /// Ensures a project per tenant with the plan's quota (applied again when the project
    /// exists, so a plan change takes effect), computes scaling 0.25-4 CU and suspending after
    /// 5 minutes, and 7 days of history, as in the seeds.
    pub async fn ensure_tenant_project(
        client: &NeonClient,
        tenant_id: &str,
        plan: &TenantPlan,
        region_id: Option<&str>,
    ) -> StoreResult<TenantProject> {
        let name = NeonProvisioner::tenant_project_name(tenant_id);
        let settings = ProjectSettings { quota: Some(plan.quota()), ..ProjectSettings::default() };
        let existing = client.list_projects().try_filter(|project| futures::future::ready(project.name == name));
        futures::pin_mut!(existing);
        if let Some(project) = existing.try_next().await? {
            let update = ProjectUpdate { settings: Some(settings), ..ProjectUpdate::default() };
            let updated = client.update_project(&project.id, &update).await?;
            client.wait_for_operations(&project.id, &updated.operations).await?;
            let default_branch_id = client.default_branch(&project.id).await?.map(|branch| branch.id);
            return Ok(TenantProject { project: updated.project, default_branch_id, ensured: Ensured::Existed });
        }
        let new_project = NewProject {
            name: Some(name),
            region_id: region_id.map(str::to_owned),
            pg_version: Some(17),
            settings: Some(settings),
            default_endpoint_settings: Some(DefaultEndpointSettings {
                autoscaling_limit_min_cu: Some(0.25),
                autoscaling_limit_max_cu: Some(4.0),
                suspend_timeout_seconds: Some(300),
                ..DefaultEndpointSettings::default()
            }),
            history_retention_seconds: Some(604_800),
            ..NewProject::default()
        };
        let created = client.create_project(&new_project).await?;
        client.wait_for_operations(&created.project.id, &created.operations).await?;
        let default_branch_id = created.branch.as_ref().map(|branch| branch.id.clone());
        Ok(TenantProject { project: created.project, default_branch_id, ensured: Ensured::Created })
    }

    /// Deletes a tenant's project; `false` if there was none.
    pub async fn delete_tenant_project(client: &NeonClient, tenant_id: &str) -> StoreResult<bool> {
        let name = NeonProvisioner::tenant_project_name(tenant_id);
        let projects: Vec<Project> = client.list_projects().try_collect().await?;
        let mut deleted = false;
        for project in projects.into_iter().filter(|project| project.name == name) {
            deleted |= client.delete_project_if_exists(&project.id).await?;
        }
        Ok(deleted)
    }
}

#[async_trait::async_trait]
impl Provisioner for NeonProvisioner {
    async fn ensure_branch(&self, spec: BranchSpec) -> StoreResult<BranchInfo> {
        let (branch, _) = self.ensure_branch_with_id(&spec).await?;
        Ok(BranchInfo { id: branch.id.to_string(), name: branch.name, lsn: branch.parent_lsn })
    }

    async fn delete_branch(&self, name: &str) -> StoreResult<bool> {
        match self.find_branch(name).await? {
            Some(branch) => Ok(self.client.delete_branch_if_exists(&self.project_id, &branch.id).await?),
            None => Ok(false),
        }
    }

    async fn ensure_database(&self, branch: &str, database: &str, owner: &str) -> StoreResult<()> {
        let branch_id = self.branch_id(branch).await?;
        self.client.ensure_database(&self.project_id, &branch_id, database, owner).await?;
        Ok(())
    }

    async fn drop_database(&self, branch: &str, database: &str) -> StoreResult<bool> {
        let Some(branch) = self.find_branch(branch).await? else {
            return Ok(false);
        };
        Ok(self.client.delete_database_if_exists(&self.project_id, &branch.id, database).await?)
    }

    async fn ensure_role(&self, branch: &str, role: &str) -> StoreResult<Option<Secret>> {
        let branch_id = self.branch_id(branch).await?;
        match self.client.ensure_role(&self.project_id, &branch_id, role).await? {
            (Some(password), _) => Ok(Some(password)),
            (None, _) => match self.client.reveal_role_password(&self.project_id, &branch_id, role).await {
                Ok(password) => Ok(Some(password)),
                // 412: the project does not store passwords; the role exists all the same.
                Err(error) if matches!(error.status(), Some(404 | 412)) => Ok(None),
                Err(error) => Err(error.into()),
            },
        }
    }

    async fn connection_uri(&self, branch: &str, database: &str, role: &str, pooling: Pooling) -> StoreResult<Secret> {
        let branch_id = self.branch_id(branch).await?;
        let request = ConnectionUriRequest {
            branch_id: Some(branch_id),
            endpoint_id: None,
            database_name: database.to_owned(),
            role_name: role.to_owned(),
            pooled: pooling == Pooling::Pooled,
        };
        Ok(self.client.connection_uri(&self.project_id, &request).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_identifiers() {
        assert_eq!(NeonProvisioner::evolution_branch_name("Run 42/A"), "evolution-run-42-a");
        assert_eq!(NeonProvisioner::tenant_names("acme.io"), ("tenant_acme_io".into(), "tenant_acme_io_owner".into()));
        assert_eq!(NeonProvisioner::tenant_project_name("Acme Corp"), "tenant-acme-corp");
        assert_eq!(NeonProvisioner::worker_branch_name("Run 42", "w/1@host"), "evolution-run-42/worker-w-1-host");
    }

    #[test]
    fn branch_names_parse_back_to_their_run_and_worker() {
        let run = NeonProvisioner::evolution_branch_name("R-7");
        assert_eq!(NeonProvisioner::branch_purpose(&run), Some(BranchPurpose::Evolution { run: "r-7".into() }));
        let worker = NeonProvisioner::worker_branch_name("R-7", "worker-host-12");
        let purpose = NeonProvisioner::branch_purpose(&worker).unwrap();
        assert_eq!((purpose.run(), purpose.worker()), ("r-7", Some("worker-host-12")));
        for other in ["main", "ci-42", "evolution-", "evolution-x/y", "evolution-a/worker-", "evolution-/worker-w"] {
            assert_eq!(NeonProvisioner::branch_purpose(other), None, "{other}");
        }
    }

    #[test]
    fn plans_carry_the_seed_quotas() {
        assert_eq!(TenantPlan::Premium.quota().logical_size_bytes, Some(10_737_418_240));
        assert_eq!(TenantPlan::Basic.quota().active_time_seconds, Some(3_600));
    }
}
