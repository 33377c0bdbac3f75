//! `strata neon`: common Neon management tasks from the shell (projects, branches,
//! computes and their settings, databases, roles, operations, connection URIs,
//! usage and its cost per evolution run and worker) and a local fake of the Neon
//! API for tests, all through `strata-neon-api`.
//!
//! The `strata` binary mounts [`NeonArgs`] as its `neon` subcommand and calls
//! [`run`]. The group opens no store, so it needs nothing from the binary's
//! composition root; it lives in its own crate so the Neon tooling can grow
//! without growing the binary. Wrong arguments are `StoreError::InvalidInput` (exit code 2 in the
//! binary), API failures the `StoreError` of their kind.

mod resources;
mod usage;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use futures::TryStreamExt;
use serde_json::json;
use strata_core::{StoreError, Timestamp};
use strata_neon_api::fake::{FakeNeon, FakeNeonConfig};
use strata_neon_api::models::{BranchCreateRequest, NewBranch, NewBranchEndpoint};
use strata_neon_api::{
    ConnectionUriRequest, DEFAULT_BASE_URL, Ensured, NeonApiConfig, NeonClient, NeonError, ProjectId, Secret,
};

/// Long help of `strata neon`.
const NEON_LONG_ABOUT: &str = include_str!("../help/neon.txt");

/// Examples of `strata neon`.
const NEON_AFTER_HELP: &str = include_str!("../help/neon-examples.txt");

/// Long help of `strata neon usage`.
const USAGE_LONG_ABOUT: &str = include_str!("../help/usage.txt");

/// Examples of `strata neon usage`.
const USAGE_AFTER_HELP: &str = include_str!("../help/usage-examples.txt");

/// Examples and notes of `strata neon fake-server`.
const FAKE_SERVER_AFTER_HELP: &str = include_str!("../help/fake-server-examples.txt");

/// `strata neon`.
#[derive(Debug, Args)]
#[command(long_about = NEON_LONG_ABOUT, after_help = NEON_AFTER_HELP)]
pub struct NeonArgs {
    /// Neon API key.
    #[arg(long, env = "NEON_API_KEY", hide_env_values = true, global = true, value_name = "KEY")]
    api_key: Option<String>,
    /// Project id for the commands that act on one project (all but projects, fake-server).
    #[arg(long, env = "NEON_PROJECT_ID", global = true, value_name = "ID")]
    project: Option<String>,
    /// Base URL of the API.
    #[arg(long, env = "NEON_API_BASE_URL", global = true, value_name = "URL", default_value = DEFAULT_BASE_URL)]
    base_url: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// What to do.
    #[command(subcommand)]
    command: NeonCommand,
}

/// The `strata neon` subcommands.
#[derive(Debug, Subcommand)]
enum NeonCommand {
    /// List projects or show one.
    #[command(
        subcommand,
        visible_alias = "project",
        after_help = "Examples:\n  strata neon projects list\n  strata neon projects list --json\n  strata neon projects show"
    )]
    Projects(ProjectsCommand),
    /// Create, list, show or delete branches of NEON_PROJECT_ID.
    #[command(
        subcommand,
        visible_alias = "branches",
        after_help = "Examples:\n  strata neon branch create ci-42 --parent main\n  strata neon branch list\n  \
            strata neon branch show ci-42 --json\n  strata neon branch delete ci-42"
    )]
    Branch(BranchCommand),
    /// List or show computes, or change a compute's autoscaling limits and suspend timeout.
    #[command(
        subcommand,
        visible_alias = "endpoint",
        after_help = "Examples:\n  strata neon endpoints list\n  strata neon endpoints show ci-42\n  \
            strata neon endpoint set ci-42 --min-cu 0.25 --max-cu 2 --suspend-timeout 300"
    )]
    Endpoints(resources::EndpointsCommand),
    /// List or show the databases of a branch.
    #[command(
        subcommand,
        visible_aliases = ["database", "db"],
        after_help = "Examples:\n  strata neon databases list\n  strata neon databases show neondb --branch ci-42 --json"
    )]
    Databases(resources::DatabasesCommand),
    /// List or show the roles of a branch (never their passwords).
    #[command(
        subcommand,
        visible_alias = "role",
        after_help = "Examples:\n  strata neon roles list\n  strata neon roles show neondb_owner --json"
    )]
    Roles(resources::RolesCommand),
    /// Consumption and its cost per project, branch, evolution run and worker.
    #[command(visible_alias = "consumption", long_about = USAGE_LONG_ABOUT, after_help = USAGE_AFTER_HELP)]
    Usage(usage::UsageArgs),
    /// Print a connection URI (with its password) for a database and role on a branch.
    #[command(after_help = "Examples:\n  strata neon connection-uri --database neondb --role neondb_owner\n  \
        strata neon connection-uri --branch ci-42 --database app --role app --direct\n  \
        psql \"$(strata neon connection-uri --branch ci-42 --database app --role app)\"")]
    ConnectionUri(ConnectionUriArgs),
    /// List, show or wait for operations of NEON_PROJECT_ID.
    #[command(
        subcommand,
        visible_alias = "operation",
        after_help = "Examples:\n  strata neon operations list\n  strata neon operations wait\n  \
            strata neon operations wait --timeout 60"
    )]
    Operations(OperationsCommand),
    /// Run a local fake of the Neon API (in memory) until interrupted.
    #[command(after_help = FAKE_SERVER_AFTER_HELP)]
    FakeServer(FakeServerArgs),
}

/// `strata neon projects`.
#[derive(Debug, Subcommand)]
enum ProjectsCommand {
    /// List every project the API key can see.
    #[command(
        after_help = "Examples:\n  strata neon projects list\n  strata neon projects list --json | jq -r '.[].id'"
    )]
    List,
    /// Show a project (default: NEON_PROJECT_ID).
    #[command(
        after_help = "Examples:\n  strata neon projects show\n  strata neon projects show shiny-wind-028834 --json"
    )]
    Show {
        /// Project id.
        project: Option<String>,
    },
}

/// `strata neon branch`.
#[derive(Debug, Subcommand)]
enum BranchCommand {
    /// Create a branch with a read-write compute unless one of that name exists.
    #[command(after_help = "Examples:\n  strata neon branch create ci-42\n  \
        strata neon branch create hotfix --parent main --lsn 0/1A2B3C4\n  \
        strata neon branch create yesterday --at 2026-11-27T00:00:00Z --max-cu 2\n  \
        strata neon branch create scratch --no-endpoint")]
    Create(BranchCreateArgs),
    /// List branches.
    #[command(after_help = "Examples:\n  strata neon branch list\n  strata neon branch list --json")]
    List,
    /// Show a branch by name or id.
    #[command(
        after_help = "Examples:\n  strata neon branch show ci-42\n  strata neon branch show br-aged-salad-637688 --json"
    )]
    Show {
        /// Branch name or id.
        branch: String,
    },
    /// Delete a branch by name or id (with its computes, roles and databases); succeeds if it is already gone.
    #[command(
        after_help = "Examples:\n  strata neon branch delete ci-42\n  strata neon branch delete br-aged-salad-637688"
    )]
    Delete {
        /// Branch name or id.
        branch: String,
    },
}

/// `strata neon branch create`.
#[derive(Debug, Args)]
struct BranchCreateArgs {
    /// Branch name.
    name: String,
    /// Parent branch name or id (default: the project's default branch).
    #[arg(long, value_name = "BRANCH")]
    parent: Option<String>,
    /// Branch from this WAL position of the parent.
    #[arg(long, value_name = "LSN", conflicts_with = "at")]
    lsn: Option<String>,
    /// Branch from this instant of the parent (RFC 3339 or a date).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Create no compute.
    #[arg(long)]
    no_endpoint: bool,
    /// Minimum compute units of the compute.
    #[arg(long, value_name = "CU")]
    min_cu: Option<f64>,
    /// Maximum compute units of the compute.
    #[arg(long, value_name = "CU")]
    max_cu: Option<f64>,
    /// Seconds of inactivity before the compute suspends (-1 never).
    #[arg(long, value_name = "SECONDS")]
    suspend_timeout: Option<i64>,
}

/// `strata neon connection-uri`.
#[derive(Debug, Args)]
struct ConnectionUriArgs {
    /// Branch name or id (default: the project's default branch).
    #[arg(long, value_name = "BRANCH")]
    branch: Option<String>,
    /// Database name.
    #[arg(long, value_name = "NAME")]
    database: String,
    /// Role name.
    #[arg(long, value_name = "NAME")]
    role: String,
    /// Connect straight to the compute instead of through the pooler.
    #[arg(long)]
    direct: bool,
}

/// `strata neon operations`.
#[derive(Debug, Subcommand)]
enum OperationsCommand {
    /// List operations, newest first.
    #[command(after_help = "Examples:\n  strata neon operations list\n  strata neon operations list --limit 5 --json")]
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: usize,
    },
    /// Show one operation.
    #[command(after_help = "Examples:\n  strata neon operations show 0f3c2a9e-1b2c-4d5e-8f90-123456789abc --json")]
    Show {
        /// Operation id.
        operation: String,
    },
    /// Wait until operations are finished (all unfinished ones of the project when none are named).
    #[command(after_help = "Examples:\n  strata neon operations wait\n  \
        strata neon operations wait 0f3c2a9e-... --timeout 60")]
    Wait {
        /// Operation ids.
        operations: Vec<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        timeout: u64,
    },
}

/// `strata neon fake-server`.
#[derive(Debug, Args)]
struct FakeServerArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// How long operations run, in milliseconds.
    #[arg(long, default_value_t = 50, value_name = "MS")]
    operation_ms: u64,
    /// Name of the project created at start.
    #[arg(long, default_value = "strata-dev", value_name = "NAME")]
    seed_project: String,
    /// A real PostgreSQL server every connection URI points at (host, port and sslmode are
    /// used), e.g. postgres://127.0.0.1:5432/?sslmode=disable; the databases and roles must
    /// exist on it.
    #[arg(long, env = "STRATA_FAKE_NEON_POSTGRES", value_name = "URL")]
    postgres: Option<String>,
    /// Database of the project created at start (with --postgres: one that exists on that server).
    #[arg(long, default_value = "neondb", value_name = "NAME")]
    seed_database: String,
    /// Role owning that database (with --postgres: one that exists on that server).
    #[arg(long, default_value = "neondb_owner", value_name = "NAME")]
    seed_role: String,
    /// With --postgres: URIs of a branch other than the default name a database of
    /// its own, <database>_<branch name> (lowercase, other characters as _), which you
    /// create as the branch's copy (e.g. CREATE DATABASE ... TEMPLATE <database>).
    #[arg(long, requires = "postgres")]
    branch_databases: bool,
}

/// Runs `strata neon ...`.
pub async fn run(args: &NeonArgs) -> Result<std::process::ExitCode> {
    match &args.command {
        NeonCommand::FakeServer(server) => fake_server(server).await?,
        NeonCommand::Projects(ProjectsCommand::List) => projects_list(args).await?,
        NeonCommand::Projects(ProjectsCommand::Show { project }) => {
            resources::projects_show(args, project.as_deref()).await?
        }
        NeonCommand::Branch(BranchCommand::Show { branch }) => resources::branch_show(args, branch).await?,
        NeonCommand::Endpoints(command) => resources::endpoints(args, command).await?,
        NeonCommand::Databases(command) => resources::databases(args, command).await?,
        NeonCommand::Roles(command) => resources::roles(args, command).await?,
        NeonCommand::Usage(arguments) => usage::usage(args, arguments).await?,
        NeonCommand::Operations(OperationsCommand::List { limit }) => resources::operations_list(args, *limit).await?,
        NeonCommand::Operations(OperationsCommand::Show { operation }) => {
            resources::operations_show(args, operation).await?
        }
        NeonCommand::Branch(BranchCommand::Create(create)) => branch_create(args, create).await?,
        NeonCommand::Branch(BranchCommand::List) => branch_list(args).await?,
        NeonCommand::Branch(BranchCommand::Delete { branch }) => branch_delete(args, branch).await?,
        NeonCommand::ConnectionUri(uri) => connection_uri(args, uri).await?,
        NeonCommand::Operations(OperationsCommand::Wait { operations, timeout }) => {
            operations_wait(args, operations, *timeout).await?
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Invalid arguments: an `InvalidInput` error, exit code 2 in the binary.
fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::invalid(message)
}

/// An API error as a `StoreError`, so the exit code reflects its kind (2 for rejected input).
fn api(error: NeonError) -> anyhow::Error {
    anyhow::Error::new(StoreError::from(error))
}

fn client(args: &NeonArgs) -> Result<NeonClient> {
    let Some(key) = args.api_key.as_deref().filter(|key| !key.trim().is_empty()) else {
        return Err(invalid("NEON_API_KEY is not set: export it or pass --api-key").into());
    };
    let config = NeonApiConfig::new(Secret::new(key)).with_base_url(args.base_url.clone());
    NeonClient::new(config).map_err(|error| invalid(format!("NEON_API_BASE_URL or NEON_API_KEY: {error}")).into())
}

fn project(args: &NeonArgs) -> Result<ProjectId> {
    match args.project.as_deref().filter(|project| !project.trim().is_empty()) {
        Some(project) => Ok(ProjectId::new(project)),
        None => Err(invalid("NEON_PROJECT_ID is not set: export it or pass --project").into()),
    }
}

fn print_json(value: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value).context("cannot format JSON")?);
    Ok(())
}

async fn projects_list(args: &NeonArgs) -> Result<()> {
    let client = client(args)?;
    let projects: Vec<_> = client.list_projects().try_collect().await.map_err(api)?;
    if args.json {
        return print_json(&serde_json::to_value(&projects)?);
    }
    if projects.is_empty() {
        println!("no projects");
    }
    for project in &projects {
        println!("{:<28} {:<32} {}", project.id, project.name, project.region_id.as_deref().unwrap_or("-"));
    }
    Ok(())
}

async fn branch_create(args: &NeonArgs, create: &BranchCreateArgs) -> Result<()> {
    let client = client(args)?;
    let project_id = project(args)?;
    let parent_id = match &create.parent {
        Some(parent) => Some(client.branch_id(&project_id, parent).await.map_err(api)?),
        None => None,
    };
    let parent_timestamp = match &create.at {
        Some(text) => {
            let timestamp = Timestamp::parse(text).map_err(|error| invalid(format!("--at {text:?}: {error}")))?;
            Some(timestamp.to_datetime().ok_or_else(|| invalid(format!("--at {text:?} is out of range")))?)
        }
        None => None,
    };
    let endpoints = if create.no_endpoint {
        Vec::new()
    } else {
        vec![NewBranchEndpoint {
            autoscaling_limit_min_cu: create.min_cu,
            autoscaling_limit_max_cu: create.max_cu,
            suspend_timeout_seconds: create.suspend_timeout,
            ..NewBranchEndpoint::read_write()
        }]
    };
    let request = BranchCreateRequest {
        branch: NewBranch {
            name: Some(create.name.clone()),
            parent_id,
            parent_lsn: create.lsn.clone(),
            parent_timestamp,
            ..NewBranch::default()
        },
        endpoints,
    };
    let (branch, ensured) = client.ensure_branch(&project_id, &request).await.map_err(api)?;
    let created = ensured == Ensured::Created;
    if args.json {
        return print_json(&json!({ "branch": branch, "created": created }));
    }
    let verb = if created { "created" } else { "exists:" };
    println!("{verb} {} ({})", branch.name, branch.id);
    Ok(())
}

async fn branch_list(args: &NeonArgs) -> Result<()> {
    let client = client(args)?;
    let project_id = project(args)?;
    let branches = client.all_branches(&project_id).await.map_err(api)?;
    if args.json {
        return print_json(&serde_json::to_value(&branches)?);
    }
    for branch in &branches {
        let default = if branch.is_default() { "default" } else { "" };
        let state = branch.current_state.as_ref().map(|state| state.as_str().to_owned()).unwrap_or_default();
        println!("{:<28} {:<32} {:<8} {}", branch.id, branch.name, state, default);
    }
    Ok(())
}

async fn branch_delete(args: &NeonArgs, name_or_id: &str) -> Result<()> {
    let client = client(args)?;
    let project_id = project(args)?;
    let deleted = match client.find_branch(&project_id, name_or_id).await.map_err(api)? {
        Some(branch) => client.delete_branch_if_exists(&project_id, &branch.id).await.map_err(api)?,
        None => false,
    };
    if args.json {
        return print_json(&json!({ "branch": name_or_id, "deleted": deleted }));
    }
    if deleted {
        println!("deleted {name_or_id}");
    } else {
        println!("{name_or_id} does not exist; nothing to delete");
    }
    Ok(())
}

async fn connection_uri(args: &NeonArgs, uri: &ConnectionUriArgs) -> Result<()> {
    let client = client(args)?;
    let project_id = project(args)?;
    let branch_id = match &uri.branch {
        Some(branch) => Some(client.branch_id(&project_id, branch).await.map_err(api)?),
        None => None,
    };
    let request = ConnectionUriRequest {
        branch_id,
        endpoint_id: None,
        database_name: uri.database.clone(),
        role_name: uri.role.clone(),
        pooled: !uri.direct,
    };
    let secret = client.connection_uri(&project_id, &request).await.map_err(api)?;
    // Printing the URI is the point of this command; it goes to stdout only, never to logs.
    if args.json {
        return print_json(&json!({ "uri": secret.expose(), "pooled": !uri.direct }));
    }
    println!("{}", secret.expose());
    Ok(())
}

async fn operations_wait(args: &NeonArgs, ids: &[String], timeout: u64) -> Result<()> {
    let client = client(args)?;
    let project_id = project(args)?;
    let operations = client.operations_or_pending(&project_id, ids).await.map_err(api)?;
    client.wait_for_operations_within(&project_id, &operations, Duration::from_secs(timeout)).await.map_err(api)?;
    if args.json {
        let ids: Vec<&str> = operations.iter().map(|operation| operation.id.as_str()).collect();
        return print_json(&json!({ "finished": ids }));
    }
    println!("{} operation(s) finished", operations.len());
    Ok(())
}

async fn fake_server(args: &FakeServerArgs) -> Result<()> {
    let postgres = match args.postgres.as_deref().filter(|text| !text.trim().is_empty()) {
        Some(text) => Some(
            strata_neon_api::fake::parse_postgres_url(text)
                .map_err(|error| invalid(format!("--postgres / STRATA_FAKE_NEON_POSTGRES {text:?}: {error}")))?,
        ),
        None => None,
    };
    let config = FakeNeonConfig {
        operation_duration: Duration::from_millis(args.operation_ms),
        postgres: postgres.clone(),
        branch_databases: args.branch_databases,
        ..FakeNeonConfig::default()
    };
    let fake = FakeNeon::bind(SocketAddr::from(([127, 0, 0, 1], args.port)), config)
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let project_id = fake.seed_project_with(&args.seed_project, &args.seed_database, &args.seed_role);
    for line in fake.banner(&project_id, postgres.as_ref(), &args.seed_database, &args.seed_role) {
        println!("{line}");
    }
    use std::io::Write;
    std::io::stdout().flush().context("cannot write to stdout")?;
    fake.wait().await;
    Ok(())
}
