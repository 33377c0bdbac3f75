//! List and show every resource the client models (projects, branches,
//! computes, databases, roles, operations), and `endpoints set`, which changes
//! a compute's autoscaling limits and suspend timeout after checking them.

use anyhow::Result;
use clap::{Args, Subcommand};
use futures::{StreamExt, TryStreamExt};
use serde_json::Value;
use strata_neon_api::models::{Endpoint, EndpointType, EndpointUpdate, Operation, Role};
use strata_neon_api::{BranchId, EndpointId, NeonClient, OperationId, ProjectId};

use crate::{NeonArgs, api, client, invalid, print_json, project};

/// Branch selection of database and role commands.
#[derive(Debug, Args)]
pub(crate) struct OnBranch {
    /// Branch name or id (default: the project's default branch).
    #[arg(long, value_name = "BRANCH")]
    branch: Option<String>,
}

/// `strata neon endpoints`.
#[derive(Debug, Subcommand)]
pub(crate) enum EndpointsCommand {
    /// List the computes of the project (or of one branch).
    #[command(
        after_help = "Examples:\n  strata neon endpoints list\n  strata neon endpoints list --branch ci-42 --json"
    )]
    List {
        /// Only the computes of this branch (name or id).
        #[arg(long, value_name = "BRANCH")]
        branch: Option<String>,
    },
    /// Show one compute.
    #[command(after_help = "Examples:\n  strata neon endpoints show ep-steep-bush-777093\n  \
        strata neon endpoints show ci-42 --json     the read-write compute of branch ci-42")]
    Show {
        /// Compute id (ep-...), or a branch name or id for its read-write compute.
        endpoint: String,
    },
    /// Change a compute's autoscaling limits and suspend timeout (checked before anything is sent).
    #[command(after_help = ENDPOINT_SET_HELP)]
    Set(EndpointSetArgs),
}

const ENDPOINT_SET_HELP: &str = "Examples:
  strata neon endpoint set ep-steep-bush-777093 --min-cu 0.25 --max-cu 2
  strata neon endpoint set ci-42 --suspend-timeout 300 --json     the read-write compute of ci-42
  strata neon endpoint set main --min-cu 1 --max-cu 4 --suspend-timeout -1

Compute sizes Neon offers: 0.25, 0.5 and whole numbers of CU (1 CU = about 4 GB of RAM); autoscaling
goes up to 16 CU with at most 8 CU between the minimum and the maximum; larger sizes, up to 56 CU,
only as a fixed size (--min-cu equal to --max-cu). The suspend timeout is -1 (never suspend), 0
(Neon's default, 300 s) or 60 to 604800 seconds. A limit left out keeps its current value, and the
pair is checked against it. Nothing is sent when a check fails (exit 2).";

/// `strata neon endpoints set`.
#[derive(Debug, Args)]
pub(crate) struct EndpointSetArgs {
    /// Compute id (ep-...), or a branch name or id for its read-write compute.
    endpoint: String,
    /// Minimum compute units.
    #[arg(long, value_name = "CU")]
    min_cu: Option<f64>,
    /// Maximum compute units.
    #[arg(long, value_name = "CU")]
    max_cu: Option<f64>,
    /// Seconds of inactivity before the compute suspends (-1 never, 0 Neon's default).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    suspend_timeout: Option<i64>,
}

/// `strata neon databases`.
#[derive(Debug, Subcommand)]
pub(crate) enum DatabasesCommand {
    /// List the databases of a branch.
    #[command(
        after_help = "Examples:\n  strata neon databases list\n  strata neon databases list --branch ci-42 --json"
    )]
    List(OnBranch),
    /// Show one database.
    #[command(
        after_help = "Examples:\n  strata neon databases show neondb\n  strata neon databases show app --branch ci-42 --json"
    )]
    Show {
        /// Database name.
        name: String,
        #[command(flatten)]
        on: OnBranch,
    },
}

/// `strata neon roles`.
#[derive(Debug, Subcommand)]
pub(crate) enum RolesCommand {
    /// List the roles of a branch (never their passwords).
    #[command(after_help = "Examples:\n  strata neon roles list\n  strata neon roles list --branch ci-42 --json")]
    List(OnBranch),
    /// Show one role (never its password; `connection-uri` prints one inside a URI).
    #[command(
        after_help = "Examples:\n  strata neon roles show neondb_owner\n  strata neon roles show app --branch ci-42 --json"
    )]
    Show {
        /// Role name.
        name: String,
        #[command(flatten)]
        on: OnBranch,
    },
}

/// Resolves `--branch` (default: the project's default branch).
async fn branch_id(client: &NeonClient, project_id: &ProjectId, branch: Option<&str>) -> Result<BranchId> {
    match branch {
        Some(branch) => client.branch_id(project_id, branch).await.map_err(api),
        None => match client.default_branch(project_id).await.map_err(api)? {
            Some(branch) => Ok(branch.id),
            None => Err(invalid(format!("project {project_id} has no default branch: pass --branch")).into()),
        },
    }
}

/// A compute by id (`ep-...`), or the read-write compute of a branch by name or id.
async fn find_endpoint(client: &NeonClient, project_id: &ProjectId, text: &str) -> Result<Endpoint> {
    if text.starts_with("ep-") {
        return client.get_endpoint(project_id, &EndpointId::new(text)).await.map_err(api);
    }
    let branch_id = client.branch_id(project_id, text).await.map_err(api)?;
    let endpoints = client.list_branch_endpoints(project_id, &branch_id).await.map_err(api)?;
    endpoints.into_iter().find(|endpoint| endpoint.endpoint_type == Some(EndpointType::ReadWrite)).ok_or_else(|| {
        invalid(format!("branch {text} has no read-write compute (create one, or pass an ep-... id)")).into()
    })
}

/// Prints every scalar field of a resource as `name: value` lines (nested objects as JSON).
fn print_fields(value: &Value) {
    for (name, field) in value.as_object().into_iter().flatten() {
        match field {
            Value::Null => {}
            Value::String(text) => println!("{name}: {text}"),
            Value::Object(object) if object.is_empty() => {}
            other => println!("{name}: {other}"),
        }
    }
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map(|value| value.to_string()).unwrap_or_else(|| "-".to_owned())
}

fn endpoint_line(endpoint: &Endpoint) {
    println!(
        "{:<28} {:<28} {:<10} {:<7} {:>5}-{:<5} CU  suspend {:>6}  {}",
        endpoint.id,
        or_dash(endpoint.branch_id.as_ref()),
        or_dash(endpoint.endpoint_type.as_ref()),
        or_dash(endpoint.current_state.as_ref()),
        or_dash(endpoint.autoscaling_limit_min_cu),
        or_dash(endpoint.autoscaling_limit_max_cu),
        or_dash(endpoint.suspend_timeout_seconds),
        or_dash(endpoint.host.as_ref()),
    );
}

/// A role as printed: without its password, whatever the API sent.
fn redacted(role: Role) -> Role {
    Role { password: None, ..role }
}

pub(crate) async fn projects_show(args: &NeonArgs, id: Option<&str>) -> Result<()> {
    let client = client(args)?;
    let project_id = match id {
        Some(id) => ProjectId::new(id),
        None => project(args)?,
    };
    let project = client.get_project(&project_id).await.map_err(api)?;
    let value = serde_json::to_value(&project)?;
    if args.json {
        return print_json(&value);
    }
    print_fields(&value);
    Ok(())
}

pub(crate) async fn branch_show(args: &NeonArgs, name_or_id: &str) -> Result<()> {
    let client = client(args)?;
    let project_id = project(args)?;
    let branch_id = client.branch_id(&project_id, name_or_id).await.map_err(api)?;
    let branch = client.get_branch(&project_id, &branch_id).await.map_err(api)?;
    let value = serde_json::to_value(&branch)?;
    if args.json {
        return print_json(&value);
    }
    print_fields(&value);
    Ok(())
}

pub(crate) async fn endpoints(args: &NeonArgs, command: &EndpointsCommand) -> Result<()> {
    if let EndpointsCommand::Set(set) = command {
        // The flags alone first: bad input is named before credentials are looked at.
        check_settings(set.min_cu, set.max_cu, set.suspend_timeout).map_err(invalid)?;
    }
    let client = client(args)?;
    let project_id = project(args)?;
    match command {
        EndpointsCommand::List { branch } => {
            let endpoints = match branch {
                Some(branch) => {
                    let branch_id = client.branch_id(&project_id, branch).await.map_err(api)?;
                    client.list_branch_endpoints(&project_id, &branch_id).await.map_err(api)?
                }
                None => client.list_endpoints(&project_id).await.map_err(api)?,
            };
            if args.json {
                return print_json(&serde_json::to_value(&endpoints)?);
            }
            if endpoints.is_empty() {
                println!("no computes");
            }
            endpoints.iter().for_each(endpoint_line);
        }
        EndpointsCommand::Show { endpoint } => {
            let endpoint = find_endpoint(&client, &project_id, endpoint).await?;
            let value = serde_json::to_value(&endpoint)?;
            if args.json {
                return print_json(&value);
            }
            print_fields(&value);
        }
        EndpointsCommand::Set(set) => endpoint_set(args, &client, &project_id, set).await?,
    }
    Ok(())
}

/// Whether Neon offers `cu` as a compute size: 0.25, 0.5 or a whole number up to 56.
fn is_compute_size(cu: f64) -> bool {
    cu == 0.25 || cu == 0.5 || (cu.fract() == 0.0 && (1.0..=56.0).contains(&cu))
}

/// Checks the flags alone: a known compute size each, a suspend timeout Neon accepts, something to change.
pub(crate) fn check_settings(min: Option<f64>, max: Option<f64>, suspend: Option<i64>) -> Result<(), String> {
    if min.is_none() && max.is_none() && suspend.is_none() {
        return Err("nothing to change: pass --min-cu, --max-cu or --suspend-timeout".into());
    }
    for (flag, value) in [("--min-cu", min), ("--max-cu", max)] {
        if let Some(cu) = value
            && !is_compute_size(cu)
        {
            return Err(format!(
                "{flag} {cu} is not a compute size Neon offers: use 0.25, 0.5 or a whole number of CU from 1 to 16 \
                 (up to 56 as a fixed size, --min-cu equal to --max-cu)"
            ));
        }
    }
    if let Some(seconds) = suspend
        && !(seconds == -1 || seconds == 0 || (60..=604_800).contains(&seconds))
    {
        return Err(format!(
            "--suspend-timeout {seconds}: use -1 (never suspend), 0 (Neon's default, 300 s) or 60 to 604800 seconds \
             (one week)"
        ));
    }
    Ok(())
}

/// Checks the limits the compute would have: min <= max, at most 8 CU apart, above 16 CU only fixed.
pub(crate) fn check_limits(min: f64, max: f64) -> Result<(), String> {
    if min > max {
        return Err(format!(
            "the minimum ({min} CU) would exceed the maximum ({max} CU): raise --max-cu or lower --min-cu"
        ));
    }
    if max > 16.0 && min != max {
        return Err(format!(
            "autoscaling goes up to 16 CU; {max} CU is only available as a fixed size (--min-cu {max} --max-cu {max})"
        ));
    }
    if max <= 16.0 && max - min > 8.0 {
        return Err(format!(
            "Neon allows at most 8 CU between the minimum and the maximum; {min}-{max} CU is {} apart",
            max - min
        ));
    }
    Ok(())
}

async fn endpoint_set(
    args: &NeonArgs,
    client: &NeonClient,
    project_id: &ProjectId,
    set: &EndpointSetArgs,
) -> Result<()> {
    let current = find_endpoint(client, project_id, &set.endpoint).await?;
    let min = set.min_cu.or(current.autoscaling_limit_min_cu).unwrap_or(0.25).max(0.25);
    let max = set.max_cu.or(current.autoscaling_limit_max_cu).unwrap_or(min);
    if set.min_cu.is_some() || set.max_cu.is_some() {
        check_limits(min, max).map_err(|message| invalid(format!("{}: {message}", current.id)))?;
    }
    let update = EndpointUpdate {
        autoscaling_limit_min_cu: set.min_cu,
        autoscaling_limit_max_cu: set.max_cu,
        suspend_timeout_seconds: set.suspend_timeout,
        ..EndpointUpdate::default()
    };
    let updated = client.update_endpoint(project_id, &current.id, &update).await.map_err(api)?;
    client.wait_for_operations(project_id, &updated.operations).await.map_err(api)?;
    let endpoint = updated.endpoint;
    if args.json {
        return print_json(&serde_json::to_value(&endpoint)?);
    }
    println!(
        "updated {}: {}-{} CU, suspend timeout {} s",
        endpoint.id,
        or_dash(endpoint.autoscaling_limit_min_cu),
        or_dash(endpoint.autoscaling_limit_max_cu),
        or_dash(endpoint.suspend_timeout_seconds)
    );
    Ok(())
}

pub(crate) async fn databases(args: &NeonArgs, command: &DatabasesCommand) -> Result<()> {
    let client = client(args)?;
    let project_id = project(args)?;
    match command {
        DatabasesCommand::List(on) => {
            let branch_id = branch_id(&client, &project_id, on.branch.as_deref()).await?;
            let databases = client.list_databases(&project_id, &branch_id).await.map_err(api)?;
            if args.json {
                return print_json(&serde_json::to_value(&databases)?);
            }
            if databases.is_empty() {
                println!("no databases on {branch_id}");
            }
            for database in &databases {
                println!("{:<32} owner {}", database.name, or_dash(database.owner_name.as_ref()));
            }
        }
        DatabasesCommand::Show { name, on } => {
            let branch_id = branch_id(&client, &project_id, on.branch.as_deref()).await?;
            let database = client.get_database(&project_id, &branch_id, name).await.map_err(api)?;
            let value = serde_json::to_value(&database)?;
            if args.json {
                return print_json(&value);
            }
            print_fields(&value);
        }
    }
    Ok(())
}

pub(crate) async fn roles(args: &NeonArgs, command: &RolesCommand) -> Result<()> {
    let client = client(args)?;
    let project_id = project(args)?;
    match command {
        RolesCommand::List(on) => {
            let branch_id = branch_id(&client, &project_id, on.branch.as_deref()).await?;
            let roles: Vec<Role> =
                client.list_roles(&project_id, &branch_id).await.map_err(api)?.into_iter().map(redacted).collect();
            if args.json {
                return print_json(&serde_json::to_value(&roles)?);
            }
            if roles.is_empty() {
                println!("no roles on {branch_id}");
            }
            for role in &roles {
                let protected = if role.protected == Some(true) { "protected" } else { "" };
                println!("{:<32} {:<10} {protected}", role.name, or_dash(role.authentication_method.as_ref()));
            }
        }
        RolesCommand::Show { name, on } => {
            let branch_id = branch_id(&client, &project_id, on.branch.as_deref()).await?;
            let role = redacted(client.get_role(&project_id, &branch_id, name).await.map_err(api)?);
            let value = serde_json::to_value(&role)?;
            if args.json {
                return print_json(&value);
            }
            print_fields(&value);
        }
    }
    Ok(())
}

fn operation_line(operation: &Operation) {
    println!(
        "{:<38} {:<24} {:<10} {:<28} {}",
        operation.id,
        or_dash(operation.action.as_ref()),
        or_dash(operation.status.as_ref()),
        or_dash(
            operation
                .endpoint_id
                .as_ref()
                .map(ToString::to_string)
                .or(operation.branch_id.as_ref().map(ToString::to_string))
        ),
        or_dash(operation.created_at.map(|at| at.to_rfc3339())),
    );
}

pub(crate) async fn operations_list(args: &NeonArgs, limit: usize) -> Result<()> {
    let client = client(args)?;
    let project_id = project(args)?;
    let operations: Vec<Operation> =
        client.list_operations(&project_id).take(limit).try_collect().await.map_err(api)?;
    if args.json {
        return print_json(&serde_json::to_value(&operations)?);
    }
    if operations.is_empty() {
        println!("no operations");
    }
    operations.iter().for_each(operation_line);
    Ok(())
}

pub(crate) async fn operations_show(args: &NeonArgs, id: &str) -> Result<()> {
    let client = client(args)?;
    let project_id = project(args)?;
    let operation = client.get_operation(&project_id, &OperationId::new(id)).await.map_err(api)?;
    let value = serde_json::to_value(&operation)?;
    if args.json {
        return print_json(&value);
    }
    print_fields(&value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_before_anything_is_sent() {
        assert!(check_settings(Some(0.25), Some(2.0), Some(300)).is_ok());
        assert!(check_settings(None, None, Some(-1)).is_ok());
        assert!(check_settings(None, None, Some(0)).is_ok());
        assert!(check_settings(None, None, None).unwrap_err().contains("nothing to change"));
        assert!(check_settings(Some(0.3), None, None).unwrap_err().contains("--min-cu 0.3"));
        assert!(check_settings(None, Some(57.0), None).unwrap_err().contains("--max-cu 57"));
        assert!(check_settings(None, Some(f64::NAN), None).is_err());
        for bad in [-2, 1, 59, 604_801] {
            assert!(check_settings(None, None, Some(bad)).unwrap_err().contains("--suspend-timeout"), "{bad}");
        }
    }

    #[test]
    fn limits_are_checked_as_a_pair() {
        assert!(check_limits(0.25, 8.0).is_ok());
        assert!(check_limits(24.0, 24.0).is_ok());
        assert!(check_limits(4.0, 1.0).unwrap_err().contains("exceed"));
        assert!(check_limits(0.25, 10.0).unwrap_err().contains("8 CU"));
        assert!(check_limits(16.0, 24.0).unwrap_err().contains("fixed size"));
    }
}
