//! Typed request and response models of the Neon API v2, lenient where the real
//! API has drifted from its spec: unknown fields are ignored, every enum has an
//! `Unknown` fallback, and fields that are not identities are optional.
//!
//! Secrets (passwords, connection URIs, new API keys) are [`Secret`]s, which never
//! print their value.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use strata_core::Secret;

use crate::ids::{ApiKeyId, BranchId, EndpointId, OperationId, ProjectId};

/// An RFC 3339 instant as the API sends it.
pub type Instant = DateTime<Utc>;

macro_rules! lenient_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this client does not know (the API added it after this client was written).
            Unknown(String),
        }

        impl $name {
            /// Every value this client knows, as the API spells it.
            pub const KNOWN: &'static [&'static str] = &[$($text),+];

            /// The value as the API spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Unknown(other) => other,
                }
            }

            /// Parses the API's spelling; anything unknown becomes `Unknown`.
            pub fn parse(text: &str) -> Self {
                match text {
                    $($text => $name::$variant,)+
                    other => $name::Unknown(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Ok($name::parse(&text))
            }
        }
    };
}

lenient_enum!(
    /// Whether a compute endpoint accepts writes.
    EndpointType {
        /// A read replica.
        ReadOnly = "read_only",
        /// The branch's primary compute.
        ReadWrite = "read_write",
    }
);

lenient_enum!(
    /// The state of a compute endpoint.
    EndpointState {
        /// Being created.
        Init = "init",
        /// Running.
        Active = "active",
        /// Suspended.
        Idle = "idle",
    }
);

lenient_enum!(
    /// The connection pooler mode (deprecated by the API; always transaction mode).
    EndpointPoolerMode {
        /// PgBouncer in transaction mode.
        Transaction = "transaction",
    }
);

lenient_enum!(
    /// The state of a branch (the spec lists these in prose, not as an enum).
    BranchState {
        /// Being created; not yet queryable.
        Init = "init",
        /// Being reset to a point in time.
        Resetting = "resetting",
        /// Ready for queries.
        Ready = "ready",
        /// In archival storage.
        Archived = "archived",
    }
);

lenient_enum!(
    /// The compute provisioner.
    ComputeProvisioner {
        /// A plain Kubernetes pod (no autoscaling).
        K8sPod = "k8s-pod",
        /// A NeonVM (autoscaling).
        K8sNeonVm = "k8s-neonvm",
        /// The serverless platform.
        ServerlessPlatform = "serverless-platform",
    }
);

lenient_enum!(
    /// The status of an asynchronous operation.
    OperationStatus {
        /// Queued.
        Scheduling = "scheduling",
        /// In progress.
        Running = "running",
        /// Done.
        Finished = "finished",
        /// Failed for good.
        Failed = "failed",
        /// Failed with an error (may be retried by Neon).
        Error = "error",
        /// Being cancelled.
        Cancelling = "cancelling",
        /// Cancelled.
        Cancelled = "cancelled",
        /// Not needed; counts as done.
        Skipped = "skipped",
    }
);

/// What waiting should make of an operation status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationOutcome {
    /// Finished or skipped.
    Done,
    /// Failed, error or cancelled.
    Failed,
    /// Anything else, unknown values included: keep waiting.
    Pending,
}

impl OperationStatus {
    /// Classifies the status for waiting.
    pub fn outcome(&self) -> OperationOutcome {
        match self {
            OperationStatus::Finished | OperationStatus::Skipped => OperationOutcome::Done,
            OperationStatus::Failed | OperationStatus::Error | OperationStatus::Cancelled => OperationOutcome::Failed,
            _ => OperationOutcome::Pending,
        }
    }
}

lenient_enum!(
    /// What an operation does.
    OperationAction {
        /// Creates a compute.
        CreateCompute = "create_compute",
        /// Creates a timeline.
        CreateTimeline = "create_timeline",
        /// Starts a compute.
        StartCompute = "start_compute",
        /// Suspends a compute.
        SuspendCompute = "suspend_compute",
        /// Applies configuration.
        ApplyConfig = "apply_config",
        /// Checks availability.
        CheckAvailability = "check_availability",
        /// Deletes a timeline.
        DeleteTimeline = "delete_timeline",
        /// Creates a branch.
        CreateBranch = "create_branch",
        /// Imports data.
        ImportData = "import_data",
        /// Storage maintenance.
        TenantIgnore = "tenant_ignore",
        /// Storage maintenance.
        TenantAttach = "tenant_attach",
        /// Storage maintenance.
        TenantDetach = "tenant_detach",
        /// Storage maintenance.
        TenantReattach = "tenant_reattach",
        /// Storage maintenance.
        ReplaceSafekeeper = "replace_safekeeper",
        /// Maintenance.
        DisableMaintenance = "disable_maintenance",
        /// Storage configuration.
        ApplyStorageConfig = "apply_storage_config",
        /// Storage maintenance.
        PrepareSecondaryPageserver = "prepare_secondary_pageserver",
        /// Storage maintenance.
        SwitchPageserver = "switch_pageserver",
        /// Detaches a branch from its parent.
        DetachParentBranch = "detach_parent_branch",
        /// Archives a timeline.
        TimelineArchive = "timeline_archive",
        /// Unarchives a timeline.
        TimelineUnarchive = "timeline_unarchive",
        /// Starts a reserved compute.
        StartReservedCompute = "start_reserved_compute",
        /// Syncs databases and roles from the compute.
        SyncDbsAndRolesFromCompute = "sync_dbs_and_roles_from_compute",
        /// Applies a schema from another branch.
        ApplySchemaFromBranch = "apply_schema_from_branch",
        /// Hides a timeline.
        TimelineMarkInvisible = "timeline_mark_invisible",
        /// Updates protection configuration.
        TimelineUpdateProtectedConfig = "timeline_update_protected_config",
        /// Prewarms a replica.
        PrewarmReplica = "prewarm_replica",
        /// Promotes a replica.
        PromoteReplica = "promote_replica",
        /// Storage maintenance.
        SetStorageNonDirty = "set_storage_non_dirty",
        /// Internal.
        SwapBindingId = "swap_binding_id",
        /// Migration step.
        FinalizeMigration = "finalize_migration",
        /// Migration step.
        MarkMigrationPrepared = "mark_migration_prepared",
        /// Updates the catalog.
        UpdateCatalog = "update_catalog",
    }
);

lenient_enum!(
    /// The granularity of consumption history.
    ConsumptionGranularity {
        /// One entry per hour.
        Hourly = "hourly",
        /// One entry per day.
        Daily = "daily",
        /// One entry per month.
        Monthly = "monthly",
    }
);

/// Serde helpers for [`Secret`] fields (core's `Secret` has no serde impls).
pub(crate) mod secret_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use strata_core::Secret;

    pub(crate) fn serialize<S: Serializer>(secret: &Secret, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(secret.expose())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        Ok(Secret::new(String::deserialize(deserializer)?))
    }

    /// The same for `Option<Secret>`.
    pub(crate) mod option {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(secret: &Option<Secret>, serializer: S) -> Result<S::Ok, S::Error> {
            match secret {
                Some(secret) => serializer.serialize_some(secret.expose()),
                None => serializer.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Secret>, D::Error> {
            Ok(Option::<String>::deserialize(deserializer)?.map(Secret::new))
        }
    }
}

/// Limits on a project's usage per billing period (`ProjectQuota`). Zero or absent means
/// unlimited; negative values are invalid (the seeds' `-1` is refused by the API's schema).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectQuota {
    /// Seconds computes may be active per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_time_seconds: Option<i64>,
    /// CPU seconds per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_time_seconds: Option<i64>,
    /// Bytes written per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_data_bytes: Option<i64>,
    /// Bytes transferred out per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_transfer_bytes: Option<i64>,
    /// Maximum logical size of each branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical_size_bytes: Option<i64>,
}

/// Project settings (`ProjectSettingsData`); rarely used parts are kept as raw JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectSettings {
    /// Usage limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<ProjectQuota>,
    /// IP allow list (`AllowedIps`), raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_ips: Option<serde_json::Value>,
    /// Whether logical replication is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_logical_replication: Option<bool>,
    /// Maintenance window (`MaintenanceWindow`), raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_window: Option<serde_json::Value>,
    /// Whether connections from the public internet are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_public_connections: Option<bool>,
    /// Whether connections through VPC endpoints are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_vpc_connections: Option<bool>,
    /// Whether the project is HIPAA-compliant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hipaa: Option<bool>,
}

/// Settings applied to every new compute endpoint of a project (`DefaultEndpointSettings`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DefaultEndpointSettings {
    /// Raw Postgres settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_settings: Option<BTreeMap<String, String>>,
    /// Raw PgBouncer settings (deprecated by the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgbouncer_settings: Option<BTreeMap<String, String>>,
    /// Minimum compute units (real responses have returned 0 here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling_limit_min_cu: Option<f64>,
    /// Maximum compute units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling_limit_max_cu: Option<f64>,
    /// Seconds of inactivity before the compute suspends (`0` default, `-1` never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_timeout_seconds: Option<i64>,
}

/// Per-endpoint settings (`EndpointSettingsData`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointSettings {
    /// Raw Postgres settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_settings: Option<BTreeMap<String, String>>,
    /// Raw PgBouncer settings: the pooler's configuration (deprecated by the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgbouncer_settings: Option<BTreeMap<String, String>>,
}

/// A project (`Project` and `ProjectListItem`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Project {
    /// Id.
    pub id: ProjectId,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Cloud platform (`aws`, `azure`).
    #[serde(default)]
    pub platform_id: Option<String>,
    /// Region (`aws-us-east-2`).
    #[serde(default)]
    pub region_id: Option<String>,
    /// Postgres major version.
    #[serde(default)]
    pub pg_version: Option<i64>,
    /// Proxy host name of the project's computes.
    #[serde(default)]
    pub proxy_host: Option<String>,
    /// Default compute provisioner.
    #[serde(default)]
    pub provisioner: Option<ComputeProvisioner>,
    /// Defaults for new computes.
    #[serde(default)]
    pub default_endpoint_settings: Option<DefaultEndpointSettings>,
    /// Settings, including the quota.
    #[serde(default)]
    pub settings: Option<ProjectSettings>,
    /// Whether role passwords are stored (needed to reveal them).
    #[serde(default)]
    pub store_passwords: Option<bool>,
    /// Seconds of shared history kept for point-in-time branching.
    #[serde(default)]
    pub history_retention_seconds: Option<i64>,
    /// Branch size limit in MiB.
    #[serde(default)]
    pub branch_logical_size_limit: Option<i64>,
    /// Branch size limit in bytes.
    #[serde(default)]
    pub branch_logical_size_limit_bytes: Option<i64>,
    /// Active seconds in this period (`Project`).
    #[serde(default)]
    pub active_time_seconds: Option<i64>,
    /// Active seconds in this period (`ProjectListItem` calls it so).
    #[serde(default)]
    pub active_time: Option<i64>,
    /// Compute seconds in this period.
    #[serde(default)]
    pub compute_time_seconds: Option<i64>,
    /// CPU seconds used.
    #[serde(default)]
    pub cpu_used_sec: Option<i64>,
    /// Bytes written in this period.
    #[serde(default)]
    pub written_data_bytes: Option<i64>,
    /// Bytes transferred in this period.
    #[serde(default)]
    pub data_transfer_bytes: Option<i64>,
    /// How the project was created.
    #[serde(default)]
    pub creation_source: Option<String>,
    /// Owner user id.
    #[serde(default)]
    pub owner_id: Option<String>,
    /// Owning organization.
    #[serde(default)]
    pub org_id: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<Instant>,
    /// Last update.
    #[serde(default)]
    pub updated_at: Option<Instant>,
}

/// A branch (`Branch`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Branch {
    /// Id.
    pub id: BranchId,
    /// Project.
    #[serde(default)]
    pub project_id: Option<ProjectId>,
    /// Parent branch (absent for the root branch).
    #[serde(default)]
    pub parent_id: Option<BranchId>,
    /// WAL position of the parent the branch started from.
    #[serde(default)]
    pub parent_lsn: Option<String>,
    /// Instant of the parent the branch started from.
    #[serde(default)]
    pub parent_timestamp: Option<Instant>,
    /// Name (unique within the project).
    #[serde(default)]
    pub name: String,
    /// Current state.
    #[serde(default)]
    pub current_state: Option<BranchState>,
    /// State it is moving to.
    #[serde(default)]
    pub pending_state: Option<BranchState>,
    /// Logical size in bytes.
    #[serde(default)]
    pub logical_size: Option<i64>,
    /// Whether this is the project's default branch.
    #[serde(default)]
    pub default: Option<bool>,
    /// Deprecated twin of `default`.
    #[serde(default)]
    pub primary: Option<bool>,
    /// Whether the branch is protected.
    #[serde(default)]
    pub protected: Option<bool>,
    /// `parent-data` or `schema-only`.
    #[serde(default)]
    pub init_source: Option<String>,
    /// How it was created.
    #[serde(default)]
    pub creation_source: Option<String>,
    /// When it is deleted automatically.
    #[serde(default)]
    pub expires_at: Option<Instant>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<Instant>,
    /// Last update.
    #[serde(default)]
    pub updated_at: Option<Instant>,
}

impl Branch {
    /// Whether this is the project's default branch (either flag).
    pub fn is_default(&self) -> bool {
        self.default.or(self.primary).unwrap_or(false)
    }
}

/// A compute endpoint (`Endpoint`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Endpoint {
    /// Id.
    pub id: EndpointId,
    /// Host name to connect to.
    #[serde(default)]
    pub host: Option<String>,
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// Project.
    #[serde(default)]
    pub project_id: Option<ProjectId>,
    /// Branch it serves.
    #[serde(default)]
    pub branch_id: Option<BranchId>,
    /// Region.
    #[serde(default)]
    pub region_id: Option<String>,
    /// Minimum compute units (real responses have returned 0 here).
    #[serde(default)]
    pub autoscaling_limit_min_cu: Option<f64>,
    /// Maximum compute units.
    #[serde(default)]
    pub autoscaling_limit_max_cu: Option<f64>,
    /// Read-write or read-only.
    #[serde(default, rename = "type")]
    pub endpoint_type: Option<EndpointType>,
    /// Current state.
    #[serde(default)]
    pub current_state: Option<EndpointState>,
    /// State it is moving to.
    #[serde(default)]
    pub pending_state: Option<EndpointState>,
    /// Settings.
    #[serde(default)]
    pub settings: Option<EndpointSettings>,
    /// Deprecated: whether pooling is on.
    #[serde(default)]
    pub pooler_enabled: Option<bool>,
    /// Deprecated: the pooler mode.
    #[serde(default)]
    pub pooler_mode: Option<EndpointPoolerMode>,
    /// Whether connections are refused.
    #[serde(default)]
    pub disabled: Option<bool>,
    /// Seconds of inactivity before suspending.
    #[serde(default)]
    pub suspend_timeout_seconds: Option<i64>,
    /// Provisioner.
    #[serde(default)]
    pub provisioner: Option<ComputeProvisioner>,
    /// Proxy host.
    #[serde(default)]
    pub proxy_host: Option<String>,
    /// Last activity.
    #[serde(default)]
    pub last_active: Option<Instant>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<Instant>,
    /// Last update.
    #[serde(default)]
    pub updated_at: Option<Instant>,
}

/// An asynchronous operation (`Operation`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Operation {
    /// Id.
    pub id: OperationId,
    /// Project.
    #[serde(default)]
    pub project_id: Option<ProjectId>,
    /// Branch, when it concerns one.
    #[serde(default)]
    pub branch_id: Option<BranchId>,
    /// Endpoint, when it concerns one.
    #[serde(default)]
    pub endpoint_id: Option<EndpointId>,
    /// What it does.
    #[serde(default)]
    pub action: Option<OperationAction>,
    /// Where it is; absent counts as still pending.
    #[serde(default)]
    pub status: Option<OperationStatus>,
    /// The error of a failed attempt.
    #[serde(default)]
    pub error: Option<String>,
    /// Failed attempts so far.
    #[serde(default)]
    pub failures_count: Option<i64>,
    /// When the next attempt runs.
    #[serde(default)]
    pub retry_at: Option<Instant>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<Instant>,
    /// Last update.
    #[serde(default)]
    pub updated_at: Option<Instant>,
    /// Total time taken.
    #[serde(default)]
    pub total_duration_ms: Option<i64>,
}

impl Operation {
    /// Classifies the status for waiting; an absent status is pending.
    pub fn outcome(&self) -> OperationOutcome {
        self.status.as_ref().map_or(OperationOutcome::Pending, OperationStatus::outcome)
    }
}

/// A database on a branch (`Database`); its name is its identity in the API's paths.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Database {
    /// Name.
    pub name: String,
    /// Numeric id.
    #[serde(default)]
    pub id: Option<i64>,
    /// Branch.
    #[serde(default)]
    pub branch_id: Option<BranchId>,
    /// Owning role.
    #[serde(default)]
    pub owner_name: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<Instant>,
    /// Last update.
    #[serde(default)]
    pub updated_at: Option<Instant>,
}

/// A Postgres role on a branch (`Role`); the password, when present, is a [`Secret`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Role {
    /// Name.
    pub name: String,
    /// Branch.
    #[serde(default)]
    pub branch_id: Option<BranchId>,
    /// Password, returned on creation and reset only.
    #[serde(default, with = "secret_serde::option", skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Whether the role is protected (system roles).
    #[serde(default)]
    pub protected: Option<bool>,
    /// `password`, `jwk` or `no_login`.
    #[serde(default)]
    pub authentication_method: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<Instant>,
    /// Last update.
    #[serde(default)]
    pub updated_at: Option<Instant>,
}

/// The parts of a connection URI (`ConnectionParameters`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ConnectionParameters {
    /// Database.
    #[serde(default)]
    pub database: Option<String>,
    /// Password.
    #[serde(default, with = "secret_serde::option", skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Role.
    #[serde(default)]
    pub role: Option<String>,
    /// Direct host.
    #[serde(default)]
    pub host: Option<String>,
    /// Pooled host (`-pooler`).
    #[serde(default)]
    pub pooler_host: Option<String>,
}

/// A connection URI with its parts (`ConnectionDetails`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ConnectionDetails {
    /// The URI, with its password.
    #[serde(with = "secret_serde")]
    pub connection_uri: Secret,
    /// Its parts.
    #[serde(default)]
    pub connection_parameters: Option<ConnectionParameters>,
}

/// An API key as listed (`ApiKeysListResponseItem`) or revoked (`ApiKeyRevokeResponse`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ApiKey {
    /// Id.
    pub id: ApiKeyId,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<Instant>,
    /// Creator: an object in lists, a user id when revoked; kept raw.
    #[serde(default)]
    pub created_by: Option<serde_json::Value>,
    /// Last use.
    #[serde(default)]
    pub last_used_at: Option<Instant>,
    /// Address of the last use.
    #[serde(default)]
    pub last_used_from_addr: Option<String>,
    /// Whether it is revoked.
    #[serde(default)]
    pub revoked: Option<bool>,
}

/// A newly created API key (`ApiKeyCreateResponse`): the only time the key is shown.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct CreatedApiKey {
    /// Id.
    pub id: ApiKeyId,
    /// The key itself.
    #[serde(with = "secret_serde")]
    pub key: Secret,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<Instant>,
    /// Creator's user id.
    #[serde(default)]
    pub created_by: Option<String>,
}

/// The user the API key belongs to (`CurrentUserInfoResponse`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct CurrentUser {
    /// Id.
    pub id: String,
    /// E-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// Login.
    #[serde(default)]
    pub login: Option<String>,
    /// First name.
    #[serde(default)]
    pub name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Plan name.
    #[serde(default)]
    pub plan: Option<String>,
    /// Maximum number of projects.
    #[serde(default)]
    pub projects_limit: Option<i64>,
    /// Maximum number of branches per project.
    #[serde(default)]
    pub branches_limit: Option<i64>,
    /// Maximum compute units.
    #[serde(default)]
    pub max_autoscaling_limit: Option<f64>,
    /// Active seconds allowed.
    #[serde(default)]
    pub active_seconds_limit: Option<i64>,
    /// Compute seconds allowed.
    #[serde(default)]
    pub compute_seconds_limit: Option<i64>,
}

/// Consumption of one project (`ConsumptionHistoryPerProject`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ProjectConsumption {
    /// Project.
    pub project_id: ProjectId,
    /// Billing periods.
    #[serde(default)]
    pub periods: Vec<ConsumptionPeriod>,
}

/// One billing period (`ConsumptionHistoryPerPeriod`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ConsumptionPeriod {
    /// Period id.
    #[serde(default)]
    pub period_id: Option<String>,
    /// Plan during the period.
    #[serde(default)]
    pub period_plan: Option<String>,
    /// Start.
    #[serde(default)]
    pub period_start: Option<Instant>,
    /// End (absent for the current period).
    #[serde(default)]
    pub period_end: Option<Instant>,
    /// Per-timeframe figures.
    #[serde(default)]
    pub consumption: Vec<ConsumptionTimeframe>,
}

/// Figures for one timeframe (`ConsumptionHistoryPerTimeframe`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ConsumptionTimeframe {
    /// Start.
    #[serde(default)]
    pub timeframe_start: Option<Instant>,
    /// End.
    #[serde(default)]
    pub timeframe_end: Option<Instant>,
    /// Active seconds.
    #[serde(default)]
    pub active_time_seconds: Option<u64>,
    /// Compute seconds.
    #[serde(default)]
    pub compute_time_seconds: Option<u64>,
    /// Bytes written.
    #[serde(default)]
    pub written_data_bytes: Option<u64>,
    /// Synthetic storage size.
    #[serde(default)]
    pub synthetic_storage_size_bytes: Option<u64>,
    /// Byte-hours of storage.
    #[serde(default)]
    pub data_storage_bytes_hour: Option<u64>,
    /// Logical size.
    #[serde(default)]
    pub logical_size_bytes: Option<u64>,
}

lenient_enum!(
    /// A metric of the v2 consumption endpoints (`metrics` query parameter, `metric_name` in answers).
    ConsumptionMetric {
        /// Compute unit seconds (CU-hours = value / 3600).
        ComputeUnitSeconds = "compute_unit_seconds",
        /// Byte-months of root branches' storage.
        RootBranchBytesMonth = "root_branch_bytes_month",
        /// Byte-months of child branches' storage (their changes since the parent).
        ChildBranchBytesMonth = "child_branch_bytes_month",
        /// Byte-months of history kept for instant restore.
        InstantRestoreBytesMonth = "instant_restore_bytes_month",
        /// Bytes sent over the public internet.
        PublicNetworkTransferBytes = "public_network_transfer_bytes",
        /// Bytes sent over private networks.
        PrivateNetworkTransferBytes = "private_network_transfer_bytes",
        /// Branches beyond the plan's allowance (projects only).
        ExtraBranchesMonth = "extra_branches_month",
        /// Byte-months of snapshots (projects only).
        SnapshotStorageBytesMonth = "snapshot_storage_bytes_month",
    }
);

impl ConsumptionMetric {
    /// Every metric `GET /consumption_history/v2/projects` accepts.
    pub fn for_projects() -> Vec<ConsumptionMetric> {
        ConsumptionMetric::KNOWN.iter().map(|name| ConsumptionMetric::parse(name)).collect()
    }

    /// The six metrics `GET /consumption_history/v2/branches` accepts (not
    /// `extra_branches_month` nor `snapshot_storage_bytes_month`).
    pub fn for_branches() -> Vec<ConsumptionMetric> {
        ConsumptionMetric::for_projects()
            .into_iter()
            .filter(|metric| {
                !matches!(metric, ConsumptionMetric::ExtraBranchesMonth | ConsumptionMetric::SnapshotStorageBytesMonth)
            })
            .collect()
    }
}

/// Consumption of one project from the v2 endpoint (`ConsumptionHistoryPerProjectV2`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ProjectConsumptionV2 {
    /// Project.
    pub project_id: ProjectId,
    /// Billing periods.
    #[serde(default)]
    pub periods: Vec<ConsumptionPeriodV2>,
}

/// Consumption of one branch (`ConsumptionHistoryPerBranchV2`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct BranchConsumptionV2 {
    /// Project owning the branch.
    pub project_id: ProjectId,
    /// Branch.
    pub branch_id: BranchId,
    /// Billing periods.
    #[serde(default)]
    pub periods: Vec<ConsumptionPeriodV2>,
}

/// One billing period of the v2 endpoints (`ConsumptionHistoryPerPeriodV2`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ConsumptionPeriodV2 {
    /// Period id.
    #[serde(default)]
    pub period_id: Option<String>,
    /// Plan during the period.
    #[serde(default)]
    pub period_plan: Option<String>,
    /// Start.
    #[serde(default)]
    pub period_start: Option<Instant>,
    /// End (absent for the current period).
    #[serde(default)]
    pub period_end: Option<Instant>,
    /// Per-timeframe metrics, oldest first.
    #[serde(default)]
    pub consumption: Vec<ConsumptionTimeframeV2>,
}

/// Metrics of one timeframe (`ConsumptionHistoryPerTimeframeV2`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ConsumptionTimeframeV2 {
    /// Start.
    #[serde(default)]
    pub timeframe_start: Option<Instant>,
    /// End.
    #[serde(default)]
    pub timeframe_end: Option<Instant>,
    /// Values by metric.
    #[serde(default)]
    pub metrics: Vec<ConsumptionMetricValue>,
}

/// One metric's value (`ConsumptionMetricValue`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ConsumptionMetricValue {
    /// Metric.
    pub metric_name: ConsumptionMetric,
    /// Value in the metric's unit.
    pub value: i64,
}

/// Sums of each metric over every period and timeframe of `periods`, by metric.
pub fn consumption_totals<'a>(periods: impl IntoIterator<Item = &'a ConsumptionPeriodV2>) -> BTreeMap<String, i64> {
    let mut totals = BTreeMap::new();
    for period in periods {
        for timeframe in &period.consumption {
            for metric in &timeframe.metrics {
                let total = totals.entry(metric.metric_name.as_str().to_owned()).or_insert(0i64);
                *total = total.saturating_add(metric.value);
            }
        }
    }
    totals
}

/// `Pagination` of projects, operations and consumption: the cursor is present even on the last page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Pagination {
    /// The cursor of the next page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `CursorPagination` of branches: an opaque `next`, absent on the last page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct CursorPagination {
    /// The cursor of the next page.
    #[serde(default)]
    pub next: Option<String>,
    /// Sort field.
    #[serde(default)]
    pub sort_by: Option<String>,
    /// Sort order.
    #[serde(default)]
    pub sort_order: Option<String>,
}

// ---------------------------------------------------------------- responses

/// A page of projects (`GET /projects`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProjectsPage {
    /// Projects.
    #[serde(default)]
    pub projects: Vec<Project>,
    /// Missing on empty lists.
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

/// A page of branches (`GET /projects/{id}/branches`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BranchesPage {
    /// Branches.
    #[serde(default)]
    pub branches: Vec<Branch>,
    /// Missing on empty lists and when not paginated.
    #[serde(default)]
    pub pagination: Option<CursorPagination>,
}

/// A page of operations (`GET /projects/{id}/operations`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OperationsPage {
    /// Operations.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// Missing on empty lists.
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

/// A page of consumption history (`GET /consumption_history/projects`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConsumptionPage {
    /// Projects.
    #[serde(default)]
    pub projects: Vec<ProjectConsumption>,
    /// Missing on empty lists.
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

/// A page of `GET /consumption_history/v2/projects`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConsumptionPageV2 {
    /// Projects.
    #[serde(default)]
    pub projects: Vec<ProjectConsumptionV2>,
    /// The cursor of the next page.
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

/// A page of `GET /consumption_history/v2/branches`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BranchConsumptionPage {
    /// Branches.
    #[serde(default)]
    pub branches: Vec<BranchConsumptionV2>,
    /// The cursor of the next page.
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

/// The result of creating a project (`CreatedProject`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CreatedProject {
    /// The project.
    pub project: Project,
    /// Its default branch.
    #[serde(default)]
    pub branch: Option<Branch>,
    /// Its computes.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Its roles (the owner's password included).
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Its databases.
    #[serde(default)]
    pub databases: Vec<Database>,
    /// Connection URIs with passwords.
    #[serde(default)]
    pub connection_uris: Vec<ConnectionDetails>,
    /// Operations to wait for before connecting.
    #[serde(default)]
    pub operations: Vec<Operation>,
}

/// The result of creating a branch (`CreatedBranch`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CreatedBranch {
    /// The branch.
    pub branch: Branch,
    /// Computes created with it.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Roles.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Databases.
    #[serde(default)]
    pub databases: Vec<Database>,
    /// Connection URIs, when an endpoint was created.
    #[serde(default)]
    pub connection_uris: Vec<ConnectionDetails>,
    /// Operations to wait for.
    #[serde(default)]
    pub operations: Vec<Operation>,
}

macro_rules! with_operations {
    ($(#[$meta:meta])* $name:ident, $field:ident: $ty:ty) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        pub struct $name {
            /// The resource.
            pub $field: $ty,
            /// Operations to wait for (absent or empty when nothing is pending).
            #[serde(default)]
            pub operations: Vec<Operation>,
        }
    };
}

with_operations!(
    /// A branch and the operations a mutation started (`BranchOperations`).
    BranchOperations, branch: Branch
);
with_operations!(
    /// An endpoint and the operations a mutation started (`EndpointOperations`).
    EndpointOperations, endpoint: Endpoint
);
with_operations!(
    /// A database and the operations a mutation started (`DatabaseOperations`).
    DatabaseOperations, database: Database
);
with_operations!(
    /// A role and the operations a mutation started (`RoleOperations`); the password is a [`Secret`].
    RoleOperations, role: Role
);

// ---------------------------------------------------------------- requests

/// The default branch of a new project.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewProjectBranch {
    /// Branch name (default `main`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Owner role name (default `{database_name}_owner`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    /// Database name (default `neondb`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
}

/// The body of `createProject`'s `project` (`ProjectCreateRequest.project`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewProject {
    /// Name (default: the generated id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Region such as `aws-us-east-2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region_id: Option<String>,
    /// Postgres major version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_version: Option<i64>,
    /// Settings, including the quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<ProjectSettings>,
    /// Defaults for new computes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_endpoint_settings: Option<DefaultEndpointSettings>,
    /// Seconds of history kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_retention_seconds: Option<i64>,
    /// Whether role passwords are stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_passwords: Option<bool>,
    /// Owning organization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// The default branch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<NewProjectBranch>,
}

/// The body of `updateProject`'s `project` (`ProjectUpdateRequest.project`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProjectUpdate {
    /// New name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New settings (the quota, for instance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<ProjectSettings>,
    /// New defaults for computes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_endpoint_settings: Option<DefaultEndpointSettings>,
    /// New history retention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_retention_seconds: Option<i64>,
}

/// The `branch` part of `createProjectBranch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewBranch {
    /// Name (default: generated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Parent branch id (default: the project's default branch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<BranchId>,
    /// Branch from this WAL position of the parent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_lsn: Option<String>,
    /// Branch from this instant of the parent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_timestamp: Option<Instant>,
    /// Whether the branch is protected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protected: Option<bool>,
    /// When the branch is deleted automatically.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Instant>,
}

/// A compute to create with a branch (`BranchCreateRequestEndpointOptions`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewBranchEndpoint {
    /// Read-write or read-only.
    #[serde(rename = "type")]
    pub endpoint_type: EndpointType,
    /// Minimum compute units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling_limit_min_cu: Option<f64>,
    /// Maximum compute units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling_limit_max_cu: Option<f64>,
    /// Seconds of inactivity before suspending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspend_timeout_seconds: Option<i64>,
    /// Settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<EndpointSettings>,
}

impl NewBranchEndpoint {
    /// A read-write compute with the project's defaults.
    pub fn read_write() -> Self {
        NewBranchEndpoint {
            endpoint_type: EndpointType::ReadWrite,
            autoscaling_limit_min_cu: None,
            autoscaling_limit_max_cu: None,
            suspend_timeout_seconds: None,
            settings: None,
        }
    }
}

/// The body of `createProjectBranch` (`BranchCreateRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BranchCreateRequest {
    /// The branch.
    pub branch: NewBranch,
    /// Computes to create with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<NewBranchEndpoint>,
}

/// The `branch` part of `updateProjectBranch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BranchUpdate {
    /// New name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Protect or unprotect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protected: Option<bool>,
}

/// The body of `restoreProjectBranch` (`BranchRestoreRequest`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BranchRestore {
    /// Branch to restore from (the branch itself for a point-in-time restore).
    pub source_branch_id: BranchId,
    /// Restore to this WAL position of the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_lsn: Option<String>,
    /// Restore to this instant of the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_timestamp: Option<Instant>,
    /// Keep the pre-restore state as a branch with this name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preserve_under_name: Option<String>,
}

/// The `endpoint` part of `createProjectEndpoint`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewEndpoint {
    /// Branch to serve.
    pub branch_id: BranchId,
    /// Read-write or read-only.
    #[serde(rename = "type")]
    pub endpoint_type: EndpointType,
    /// Optional name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Minimum compute units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling_limit_min_cu: Option<f64>,
    /// Maximum compute units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling_limit_max_cu: Option<f64>,
    /// Seconds of inactivity before suspending (`-1` never).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspend_timeout_seconds: Option<i64>,
    /// Settings, the pooler's included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<EndpointSettings>,
    /// Deprecated: enable pooling (prefer the `-pooler` host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooler_enabled: Option<bool>,
    /// Refuse connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

impl NewEndpoint {
    /// A compute of `endpoint_type` on `branch_id` with the project's defaults.
    pub fn new(branch_id: BranchId, endpoint_type: EndpointType) -> Self {
        NewEndpoint {
            branch_id,
            endpoint_type,
            name: None,
            autoscaling_limit_min_cu: None,
            autoscaling_limit_max_cu: None,
            suspend_timeout_seconds: None,
            settings: None,
            pooler_enabled: None,
            disabled: None,
        }
    }
}

/// The `endpoint` part of `updateProjectEndpoint`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EndpointUpdate {
    /// New name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Minimum compute units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling_limit_min_cu: Option<f64>,
    /// Maximum compute units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling_limit_max_cu: Option<f64>,
    /// Seconds of inactivity before suspending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspend_timeout_seconds: Option<i64>,
    /// Settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<EndpointSettings>,
    /// Deprecated: enable pooling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooler_enabled: Option<bool>,
    /// Refuse connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// The `database` part of `updateProjectBranchDatabase`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DatabaseUpdate {
    /// New name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_name: Option<String>,
}

/// Query of `getConsumptionHistoryPerProject`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumptionQuery {
    /// Start of the range.
    pub from: Instant,
    /// End of the range.
    pub to: Instant,
    /// Granularity.
    pub granularity: ConsumptionGranularity,
    /// Only these projects (all when empty).
    pub project_ids: Vec<ProjectId>,
    /// Organization.
    pub org_id: Option<String>,
}

/// Query of the v2 consumption endpoints (`getConsumptionHistoryPerProjectV2`,
/// `getConsumptionHistoryPerBranchV2`). The API rounds `from` and `to` down to the
/// granularity and keeps 168 hours of hourly, 60 days of daily and a year of
/// monthly figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumptionQueryV2 {
    /// Organization (required by the API).
    pub org_id: String,
    /// Start of the range.
    pub from: Instant,
    /// End of the range.
    pub to: Instant,
    /// Granularity.
    pub granularity: ConsumptionGranularity,
    /// Metrics to return (required by the API).
    pub metrics: Vec<ConsumptionMetric>,
    /// Only these projects (all of the organization when empty, for projects; 1 to 100 for branches).
    pub project_ids: Vec<ProjectId>,
    /// Only these branches (branches endpoint only; all when empty).
    pub branch_ids: Vec<BranchId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_enum_values_survive_a_round_trip() {
        let status: OperationStatus = serde_json::from_str("\"teleporting\"").unwrap();
        assert_eq!(status, OperationStatus::Unknown("teleporting".into()));
        assert_eq!(status.outcome(), OperationOutcome::Pending);
        assert_eq!(serde_json::to_string(&status).unwrap(), "\"teleporting\"");
        assert_eq!(OperationStatus::parse("skipped").outcome(), OperationOutcome::Done);
        assert_eq!(OperationStatus::parse("cancelled").outcome(), OperationOutcome::Failed);
    }

    #[test]
    fn models_ignore_unknown_fields_and_tolerate_missing_ones() {
        let endpoint: Endpoint = serde_json::from_str(
            r#"{"id":"ep-1","autoscaling_limit_min_cu":0,"type":"read_write","brand_new_field":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(endpoint.autoscaling_limit_min_cu, Some(0.0));
        assert_eq!(endpoint.endpoint_type, Some(EndpointType::ReadWrite));
        assert!(endpoint.host.is_none());
    }

    #[test]
    fn passwords_are_redacted_in_debug() {
        let role: Role = serde_json::from_str(r#"{"name":"app","password":"hunter2"}"#).unwrap();
        assert!(!format!("{role:?}").contains("hunter2"));
        assert_eq!(role.password.as_ref().map(|p| p.expose()), Some("hunter2"));
    }
}
