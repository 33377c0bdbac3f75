//! `strata doctor`'s composition: which adapters' checks apply to the
//! configured storage (PostgreSQL for neon and a hybrid or efs store's
//! PostgreSQL part, DuckDB for the file or the hybrid cache, efs for the
//! dataset), and the Neon management API checks when a key and a project
//! are given. No store is built: nothing is opened for good, migrated or
//! created, so the doctor also runs where the stores would not open.

use std::fmt;

use strata_core::doctor::{self, Check, DoctorReport, Plan, Severity, Status};

use crate::{StorageBackend, StorageConfig};

/// The Neon management API settings of the `neon.*` checks (`NEON_API_KEY`,
/// `NEON_PROJECT_ID`, `NEON_API_BASE_URL` or their flags). `Debug` hides the key.
#[derive(Clone, Default)]
pub struct NeonApiSettings {
    /// The API key.
    pub api_key: Option<String>,
    /// The project whose computes and branches are checked.
    pub project: Option<String>,
    /// Another base URL than Neon's (a fake or a proxy).
    pub base_url: Option<String>,
}

impl NeonApiSettings {
    /// `NEON_API_KEY`, `NEON_PROJECT_ID` and `NEON_API_BASE_URL` from the environment (blank is unset).
    pub fn from_env() -> Self {
        let read =
            |name: &str| std::env::var(name).ok().map(|value| value.trim().to_string()).filter(|v| !v.is_empty());
        NeonApiSettings {
            api_key: read("NEON_API_KEY"),
            project: read("NEON_PROJECT_ID"),
            base_url: read("NEON_API_BASE_URL"),
        }
    }
}

impl fmt::Debug for NeonApiSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NeonApiSettings")
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("project", &self.project)
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// Runs every check that applies to `config`, held against `plan`. Fails
/// only when a backend is not compiled in (a wrong setting is a failed check).
pub async fn diagnose(config: &StorageConfig, plan: &Plan, neon_api: &NeonApiSettings) -> anyhow::Result<DoctorReport> {
    config.check_compiled_in()?;
    let mut checks = Vec::new();
    let mut database_host = None;
    match config.backend {
        StorageBackend::DuckDb => checks.extend(duckdb(config).await),
        StorageBackend::Memory => checks.push(Check::pass(
            &doctor::MEMORY_VOLATILE,
            "the memory store lives as long as one command: use duckdb, neon or efs to keep bars",
        )),
        StorageBackend::Neon => checks.extend(postgres(config, plan, &mut database_host).await),
        StorageBackend::Efs => {
            checks.extend(efs(config, plan).await);
            match config.evolution {
                StorageBackend::Neon => checks.extend(postgres(config, plan, &mut database_host).await),
                _ => checks.extend(duckdb(config).await),
            }
        }
        StorageBackend::Hybrid => {
            let primary = config.args.hybrid.primary.as_deref().unwrap_or("neon").trim().to_ascii_lowercase();
            if primary == "efs" {
                checks.extend(efs(config, plan).await);
            } else {
                checks.extend(postgres(config, plan, &mut database_host).await);
            }
            checks.extend(duckdb(config).await);
        }
    }
    checks.extend(neon_checks(neon_api, database_host.as_deref(), plan).await);
    Ok(DoctorReport::new(checks))
}

#[cfg(feature = "neon")]
async fn postgres(config: &StorageConfig, plan: &Plan, database_host: &mut Option<String>) -> Vec<Check> {
    use strata_adapter_neon::doctor as pg;

    match crate::neon_config(config) {
        Ok(neon) => {
            *database_host = Some(neon.host().to_string());
            pg::diagnose(&neon, plan).await
        }
        Err(error) => {
            let reachable = Check::fail(
                &doctor::PG_REACHABLE,
                format!("{error:#}"),
                "export DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/DATABASE (and check STRATA_PG_* settings)",
            )
            .with_fact("cause", "configuration");
            pg::with_rest_skipped(reachable, "no usable PostgreSQL settings (pg.reachable)")
        }
    }
}

#[cfg(not(feature = "neon"))]
async fn postgres(_config: &StorageConfig, _plan: &Plan, _database_host: &mut Option<String>) -> Vec<Check> {
    vec![Check::skip(&doctor::PG_REACHABLE, "this build has no neon backend")]
}

/// The DuckDB file's checks; a file held by a strata process that serves it
/// on its socket is a warning, not a critical failure: strata commands work through it.
#[cfg(feature = "duckdb")]
async fn duckdb(config: &StorageConfig) -> Vec<Check> {
    let path = config.duckdb_path();
    let mut checks = strata_adapter_duckdb::doctor::diagnose(&path).await;
    let socket = strata_store_socket::socket_path_for(&path);
    for check in &mut checks {
        let held = check.id == doctor::DUCKDB_UNLOCKED.id
            && check.status == Status::Fail
            && check.fact("cause") == Some("locked");
        if held && socket.exists() && strata_store_socket::SocketStore::connect(&socket).await.is_ok() {
            let holder =
                check.fact("holder_pid").map_or_else(|| "the holder".to_string(), |pid| format!("process {pid}"));
            check.severity = Severity::Warning;
            check.finding = format!(
                "{} is held by a strata process that serves it on {}: other strata commands work through it",
                path.display(),
                socket.display()
            );
            check.fix = Some(format!(
                "nothing, for strata commands; stop {holder} before copying the file or opening it with other programs"
            ));
            check.facts.push(("served".to_string(), "true".to_string()));
        }
    }
    checks
}

#[cfg(not(feature = "duckdb"))]
async fn duckdb(_config: &StorageConfig) -> Vec<Check> {
    vec![Check::skip(&doctor::DUCKDB_WRITABLE, "this build has no duckdb backend")]
}

#[cfg(feature = "efs")]
async fn efs(config: &StorageConfig, plan: &Plan) -> Vec<Check> {
    let Some(root) = config.args.efs.root.clone() else {
        return vec![
            Check::fail(
                &doctor::EFS_MOUNT,
                "no dataset root: STRATA_EFS_ROOT (--efs-root) is not set",
                "export STRATA_EFS_ROOT=/mnt/efs/bars (the dataset's root directory)",
            )
            .with_severity(Severity::Critical),
            Check::skip(&doctor::EFS_PUBLISH, "no dataset root"),
        ];
    };
    // A hard NFS mount whose server is gone blocks forever: bound the wait.
    let limit = plan.check_timeout.saturating_mul(2);
    match tokio::time::timeout(limit, strata_adapter_efs::doctor::diagnose(&root)).await {
        Ok(checks) => checks,
        Err(_) => vec![
            Check::fail(
                &doctor::EFS_MOUNT,
                format!(
                    "{} did not answer within {} s: the NFS server or the network is gone",
                    root.display(),
                    limit.as_secs()
                ),
                "check the mount (mount | grep nfs, dmesg for 'server not responding') and the network to the share",
            )
            .with_severity(Severity::Critical),
            Check::skip(&doctor::EFS_PUBLISH, "the dataset did not answer"),
        ],
    }
}

#[cfg(not(feature = "efs"))]
async fn efs(_config: &StorageConfig, _plan: &Plan) -> Vec<Check> {
    vec![Check::skip(&doctor::EFS_MOUNT, "this build has no efs backend")]
}

#[cfg(feature = "neon-api")]
async fn neon_checks(settings: &NeonApiSettings, database_host: Option<&str>, plan: &Plan) -> Vec<Check> {
    use std::time::Duration;

    use strata_neon_api::doctor as neon;
    use strata_neon_api::{DEFAULT_BASE_URL, NeonApiConfig, NeonClient, ProjectId, RetryPolicy, Secret};

    let nonblank =
        |value: &Option<String>| value.as_deref().map(str::trim).filter(|value| !value.is_empty()).map(str::to_string);
    let Some(key) = nonblank(&settings.api_key) else {
        return neon::skipped("NEON_API_KEY is not set (needed only for the Neon project's checks)");
    };
    let Some(project) = nonblank(&settings.project) else {
        return neon::skipped("NEON_PROJECT_ID is not set (`strata neon projects list` shows the ids)");
    };
    let base_url = nonblank(&settings.base_url).unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
    let mut config = NeonApiConfig::new(Secret::new(key)).with_base_url(base_url);
    config.request_timeout = plan.check_timeout.min(Duration::from_secs(10));
    config.deadline = plan.check_timeout;
    config.retry = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
    match NeonClient::new(config) {
        Ok(client) => neon::diagnose(&client, &ProjectId::new(project), database_host, plan).await,
        Err(error) => {
            let mut checks = neon::skipped("the Neon API client could not be configured");
            checks[0] = Check::fail(
                &doctor::NEON_API_KEY,
                format!("NEON_API_BASE_URL or NEON_API_KEY cannot be used: {error}"),
                "fix NEON_API_BASE_URL (default https://console.neon.tech/api/v2) or NEON_API_KEY",
            )
            .with_fact("cause", "configuration");
            checks
        }
    }
}

#[cfg(not(feature = "neon-api"))]
async fn neon_checks(_settings: &NeonApiSettings, _database_host: Option<&str>, _plan: &Plan) -> Vec<Check> {
    Vec::new()
}
