//! Data snapshots of pinned evolutions (`strata evolve --snapshot`): the Neon
//! branch of a run (`evolution-<run>`, made through the `Provisioner` port
//! from the project's default branch as of now), the read-only market store of
//! such a branch for the run's workers, and its deletion with the run.
//!
//! It needs the neon backend (the branch's bars are read with the same
//! database, role and schema as `DATABASE_URL`) and the Neon management API
//! settings: `NEON_API_KEY`, `NEON_PROJECT_ID` and, for another API than
//! Neon's (the fake server), `NEON_API_BASE_URL`.

use std::sync::Arc;

use strata_core::MarketDataStore;
#[cfg(all(feature = "neon", feature = "neon-api"))]
use strata_core::ports::provision::Provisioner;
use strata_core::ports::provision::{BranchInfo, BranchPoint, BranchSpec};

use crate::doctor::NeonApiSettings;
use crate::{StorageBackend, StorageConfig, UsageError};

/// Makes, opens and deletes the snapshot branches of pinned runs.
#[derive(Debug, Clone)]
pub struct Snapshots {
    #[cfg(all(feature = "neon", feature = "neon-api"))]
    provisioner: Arc<dyn Provisioner>,
    /// The neon store's settings (`DATABASE_URL` and the `--pg-*` options).
    #[cfg(all(feature = "neon", feature = "neon-api"))]
    base: strata_adapter_neon::NeonConfig,
}

impl Snapshots {
    /// The snapshots of `config`'s store: `Ok(None)` when the backend is not
    /// neon or no Neon API key and project are set (pinned runs then cannot
    /// be read here); an error when they are set but unusable.
    pub fn from_env(config: &StorageConfig) -> anyhow::Result<Option<Snapshots>> {
        let settings = NeonApiSettings::from_env();
        if config.backend != StorageBackend::Neon || settings.api_key.is_none() || settings.project.is_none() {
            return Ok(None);
        }
        Snapshots::build(config, &settings).map(Some)
    }

    /// Like [`Snapshots::from_env`], but says what is missing instead of `None`
    /// (for `strata evolve --snapshot`).
    pub fn required(config: &StorageConfig) -> anyhow::Result<Snapshots> {
        if config.backend != StorageBackend::Neon {
            return Err(UsageError(format!(
                "--snapshot makes a Neon branch of the data, so it needs STORAGE_BACKEND=neon (the store in use is \
                 {}); on other backends every run records the digest of its data instead, and a resume on changed \
                 data is refused unless --allow-data-change",
                config.backend.name()
            ))
            .into());
        }
        let settings = NeonApiSettings::from_env();
        for (value, name, hint) in [
            (&settings.api_key, "NEON_API_KEY", "an API key of the Neon console (Account settings, API keys)"),
            (&settings.project, "NEON_PROJECT_ID", "the project of DATABASE_URL (`strata neon projects list`)"),
        ] {
            if value.is_none() {
                return Err(UsageError(format!("--snapshot creates a Neon branch and needs {name}: {hint}")).into());
            }
        }
        Snapshots::build(config, &settings)
    }

    #[cfg(all(feature = "neon", feature = "neon-api"))]
    fn build(config: &StorageConfig, settings: &NeonApiSettings) -> anyhow::Result<Snapshots> {
        use strata_neon_api::{NeonApiConfig, NeonClient, NeonProvisioner, ProjectId, Secret};

        let base = crate::neon_config(config)?;
        let (Some(key), Some(project)) = (&settings.api_key, &settings.project) else {
            return Err(UsageError("NEON_API_KEY and NEON_PROJECT_ID are both needed".into()).into());
        };
        let mut api = NeonApiConfig::new(Secret::new(key.clone()));
        if let Some(base_url) = &settings.base_url {
            api = api.with_base_url(base_url.clone());
        }
        let client = NeonClient::new(api)
            .map_err(|error| UsageError(format!("NEON_API_BASE_URL or NEON_API_KEY cannot be used: {error}")))?;
        let provisioner: Arc<dyn Provisioner> = Arc::new(NeonProvisioner::new(client, ProjectId::new(project.clone())));
        Ok(Snapshots { provisioner, base })
    }

    #[cfg(not(all(feature = "neon", feature = "neon-api")))]
    fn build(_config: &StorageConfig, _settings: &NeonApiSettings) -> anyhow::Result<Snapshots> {
        Err(UsageError("this build has no neon backend or no Neon API client: snapshots are not available".into())
            .into())
    }

    /// The branch name of `run`'s snapshot: the run's evolution branch.
    #[cfg(feature = "neon-api")]
    pub fn branch_name(run: &str) -> String {
        strata_neon_api::NeonProvisioner::evolution_branch_name(run)
    }

    /// The branch name of `run`'s snapshot: the run's evolution branch.
    #[cfg(not(feature = "neon-api"))]
    pub fn branch_name(run: &str) -> String {
        format!("evolution-{run}")
    }

    /// Makes (or finds, when it exists) the snapshot branch of `run`: the
    /// project's default branch as of now, with its id and LSN.
    pub async fn create(&self, run: &str) -> anyhow::Result<BranchInfo> {
        let spec = BranchSpec { name: Snapshots::branch_name(run), parent: None, at: BranchPoint::Head };
        self.create_spec(spec).await
    }

    #[cfg(all(feature = "neon", feature = "neon-api"))]
    async fn create_spec(&self, spec: BranchSpec) -> anyhow::Result<BranchInfo> {
        let name = spec.name.clone();
        self.provisioner
            .ensure_branch(spec)
            .await
            .map_err(|error| anyhow::anyhow!("cannot create the snapshot branch {name}: {error}"))
    }

    #[cfg(not(all(feature = "neon", feature = "neon-api")))]
    async fn create_spec(&self, _spec: BranchSpec) -> anyhow::Result<BranchInfo> {
        Err(UsageError("snapshots are not available in this build".into()).into())
    }

    /// The bars of `branch`, read-only: the same database, role, schema and
    /// settings as `DATABASE_URL`, through the branch's own compute (pooled
    /// when `DATABASE_URL` is), with no migration.
    #[cfg(all(feature = "neon", feature = "neon-api"))]
    pub async fn open(&self, branch: &str) -> anyhow::Result<Arc<dyn MarketDataStore>> {
        use anyhow::Context as _;
        use strata_adapter_neon::{NeonConfig, NeonStore};
        use strata_core::ports::provision::Pooling;

        let pooling = if self.base.pooler { Pooling::Pooled } else { Pooling::Direct };
        let (database, role) = (self.base.database(), self.base.user());
        let uri = self
            .provisioner
            .connection_uri(branch, &database, &role, pooling)
            .await
            .with_context(|| format!("cannot get a connection URI of the snapshot branch {branch}"))?;
        let mut config = NeonConfig::from_url(uri.expose())?.with_schema(self.base.schema.clone())?;
        config.statement_timeout = self.base.statement_timeout;
        config.retry_budget = self.base.retry_budget;
        config.max_connections = self.base.max_connections.min(4);
        config.use_timescaledb = self.base.use_timescaledb;
        config.migrate_on_start = false;
        let target = config.redacted_url();
        let store = NeonStore::open(config)
            .await
            .with_context(|| format!("cannot open the snapshot branch {branch} ({target})"))?;
        Ok(Arc::new(store))
    }

    /// The bars of `branch` (not in this build).
    #[cfg(not(all(feature = "neon", feature = "neon-api")))]
    pub async fn open(&self, _branch: &str) -> anyhow::Result<Arc<dyn MarketDataStore>> {
        Err(UsageError("snapshots are not available in this build".into()).into())
    }

    /// Deletes `branch`; `false` when it was gone already.
    #[cfg(all(feature = "neon", feature = "neon-api"))]
    pub async fn delete(&self, branch: &str) -> anyhow::Result<bool> {
        self.provisioner
            .delete_branch(branch)
            .await
            .map_err(|error| anyhow::anyhow!("cannot delete the snapshot branch {branch}: {error}"))
    }

    /// Deletes `branch` (not in this build).
    #[cfg(not(all(feature = "neon", feature = "neon-api")))]
    pub async fn delete(&self, _branch: &str) -> anyhow::Result<bool> {
        Err(UsageError("snapshots are not available in this build".into()).into())
    }
}
