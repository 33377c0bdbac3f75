//! `strata doctor`'s Neon checks through the management API: `neon.api_key`
//! (the key reads the project), `neon.autoscaling` and
//! `neon.suspend_timeout` (the read-write computes against the seeds'
//! production settings: 2 to 8 CU, never suspended during runs) and
//! `neon.branches` (the project's branches against the plan's limit).
//!
//! When the store's host is one of the project's computes (the `-pooler`
//! host counts as its compute), only that compute is checked; otherwise
//! every read-write compute of the project is.

use strata_core::doctor::{self, Check, Plan, RECOMMENDED_MAX_CU, RECOMMENDED_MIN_CU, Severity};

use crate::error::NeonError;
use crate::models::{Endpoint, EndpointType};
use crate::{NeonClient, ProjectId};

/// Neon's suspend timeout when `suspend_timeout_seconds` is 0 (the API's "default").
const DEFAULT_SUSPEND_SECONDS: i64 = 300;

/// The Neon API checks, in catalog order, for `project` through `client`;
/// `database_host` is the store's PostgreSQL host, when it has one.
pub async fn diagnose(
    client: &NeonClient,
    project: &ProjectId,
    database_host: Option<&str>,
    plan: &Plan,
) -> Vec<Check> {
    let found = match client.get_project(project).await {
        Ok(found) => found,
        Err(error) => return skipped_after(key_failure(&error, project), "the Neon API key check failed"),
    };
    let mut checks = vec![Check::pass(
        &doctor::NEON_API_KEY,
        format!(
            "the key reads project {} ({}, region {})",
            found.name,
            found.id,
            found.region_id.as_deref().unwrap_or("unknown")
        ),
    )];
    match client.list_endpoints(project).await {
        Ok(endpoints) => {
            let computes = computes_of(&endpoints, database_host);
            checks.push(autoscaling(&computes));
            checks.push(suspend_timeout(&computes));
        }
        Err(error) => {
            let fail = |kind| {
                Check::fail(kind, format!("cannot list the project's computes: {error}"), "run strata doctor again")
            };
            checks.push(fail(&doctor::NEON_AUTOSCALING));
            checks.push(fail(&doctor::NEON_SUSPEND_TIMEOUT));
        }
    }
    checks.push(branches(client, project, plan).await);
    checks
}

/// Every Neon check skipped, for `reason` (no key, no project).
pub fn skipped(reason: &str) -> Vec<Check> {
    [&doctor::NEON_API_KEY, &doctor::NEON_AUTOSCALING, &doctor::NEON_SUSPEND_TIMEOUT, &doctor::NEON_BRANCHES]
        .into_iter()
        .map(|kind| Check::skip(kind, reason))
        .collect()
}

fn skipped_after(first: Check, reason: &str) -> Vec<Check> {
    let mut checks = skipped(reason);
    checks[0] = first;
    checks
}

/// Why the key could not read the project, with the fix.
fn key_failure(error: &NeonError, project: &ProjectId) -> Check {
    let kind = &doctor::NEON_API_KEY;
    match error {
        NeonError::Api { status: 401 | 403, .. } => Check::fail(
            kind,
            format!("the Neon API refused the key: {error}"),
            "create an API key in the Neon console (Settings, API keys) and export it as NEON_API_KEY",
        )
        .with_fact("cause", "refused"),
        NeonError::Api { status: 404, .. } => Check::fail(
            kind,
            format!("this key sees no project {project}: {error}"),
            "set NEON_PROJECT_ID to one of `strata neon projects list`",
        )
        .with_fact("cause", "project"),
        _ => Check::fail(
            kind,
            format!("the Neon API did not answer: {error}"),
            "check NEON_API_BASE_URL (default https://console.neon.tech/api/v2) and this machine's network",
        )
        .with_fact("cause", "unreachable"),
    }
}

/// The compute serving `database_host` when it is one of `endpoints`,
/// otherwise every read-write compute.
fn computes_of<'a>(endpoints: &'a [Endpoint], database_host: Option<&str>) -> Vec<&'a Endpoint> {
    let direct = database_host.map(|host| {
        let host = host.to_ascii_lowercase();
        match host.split_once('.') {
            Some((first, rest)) => format!("{}.{rest}", first.trim_end_matches("-pooler")),
            None => host,
        }
    });
    let serving: Vec<&Endpoint> = endpoints
        .iter()
        .filter(|endpoint| {
            direct.as_deref().is_some_and(|host| endpoint.host.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(host)))
        })
        .collect();
    if !serving.is_empty() {
        return serving;
    }
    endpoints.iter().filter(|endpoint| endpoint.endpoint_type == Some(EndpointType::ReadWrite)).collect()
}

fn name_of(endpoint: &Endpoint) -> String {
    match &endpoint.branch_id {
        Some(branch) => format!("{} (branch {branch})", endpoint.id),
        None => endpoint.id.to_string(),
    }
}

fn cu(value: Option<f64>) -> String {
    value.map_or_else(|| "?".to_string(), |value| format!("{value}"))
}

fn autoscaling(computes: &[&Endpoint]) -> Check {
    let kind = &doctor::NEON_AUTOSCALING;
    if computes.is_empty() {
        return Check::skip(kind, "the project has no read-write compute");
    }
    let describe = |endpoint: &Endpoint| {
        format!(
            "{} {}-{} CU",
            name_of(endpoint),
            cu(endpoint.autoscaling_limit_min_cu),
            cu(endpoint.autoscaling_limit_max_cu)
        )
    };
    let low: Vec<&&Endpoint> = computes
        .iter()
        .filter(|endpoint| {
            endpoint.autoscaling_limit_min_cu.unwrap_or(0.0) < RECOMMENDED_MIN_CU
                || endpoint.autoscaling_limit_max_cu.unwrap_or(0.0) < endpoint.autoscaling_limit_min_cu.unwrap_or(0.0)
        })
        .collect();
    let all: Vec<String> = computes.iter().map(|endpoint| describe(endpoint)).collect();
    if low.is_empty() {
        return Check::pass(kind, format!("{} (seeds: {RECOMMENDED_MIN_CU}-{RECOMMENDED_MAX_CU} CU)", all.join("; ")));
    }
    let first = &low[0].id;
    Check::fail(
        kind,
        format!(
            "{}: below the seeds' {RECOMMENDED_MIN_CU} CU floor for GA workers (a small compute makes every \
             evaluation's reads slow and scales up only after load arrives)",
            low.iter().map(|endpoint| describe(endpoint)).collect::<Vec<_>>().join("; ")
        ),
        format!(
            "strata neon endpoint set {first} --min-cu {RECOMMENDED_MIN_CU} --max-cu {RECOMMENDED_MAX_CU} (or the \
             Neon console's compute settings)"
        ),
    )
    .with_fact("endpoints", low.len())
}

fn suspend_timeout(computes: &[&Endpoint]) -> Check {
    let kind = &doctor::NEON_SUSPEND_TIMEOUT;
    if computes.is_empty() {
        return Check::skip(kind, "the project has no read-write compute");
    }
    let describe = |endpoint: &Endpoint| match endpoint.suspend_timeout_seconds {
        Some(-1) => format!("{} never suspends", name_of(endpoint)),
        Some(0) | None => {
            format!("{} suspends after {DEFAULT_SUSPEND_SECONDS} s idle (Neon's default)", name_of(endpoint))
        }
        Some(seconds) => format!("{} suspends after {seconds} s idle", name_of(endpoint)),
    };
    let suspending: Vec<&&Endpoint> =
        computes.iter().filter(|endpoint| endpoint.suspend_timeout_seconds != Some(-1)).collect();
    if suspending.is_empty() {
        let all: Vec<String> = computes.iter().map(|endpoint| describe(endpoint)).collect();
        return Check::pass(kind, all.join("; "));
    }
    let first = &suspending[0].id;
    Check::fail(
        kind,
        format!(
            "{}: between generations the workers find it asleep (a cold start of about a second, dropped \
             sessions); the seeds keep production computes up",
            suspending.iter().map(|endpoint| describe(endpoint)).collect::<Vec<_>>().join("; ")
        ),
        format!(
            "strata neon endpoint set {first} --suspend-timeout -1 for the runs (an idle compute then bills its \
             minimum CU; set it back afterwards)"
        ),
    )
    .with_severity(Severity::Warning)
}

async fn branches(client: &NeonClient, project: &ProjectId, plan: &Plan) -> Check {
    let kind = &doctor::NEON_BRANCHES;
    let count = match client.all_branches(project).await {
        Ok(branches) => branches.len(),
        Err(error) => {
            return Check::fail(kind, format!("cannot list the branches: {error}"), "run strata doctor again");
        }
    };
    let limit = match client.current_user().await {
        Ok(user) => user.branches_limit.filter(|limit| *limit > 0),
        Err(_) => None,
    };
    let Some(limit) = limit else {
        return Check::skip(kind, format!("{count} branches; the plan's branch limit is not visible to this key"))
            .with_fact("branches", count);
    };
    let planned = plan.workers.map_or(0, u64::from);
    let wanted = count as u64 + planned;
    let threshold = (limit as f64 * doctor::BRANCH_LIMIT_SHARE).floor() as u64;
    let with_workers = if planned > 0 { format!(" ({planned} more for one branch per worker)") } else { String::new() };
    let finding = format!("{count} branches{with_workers} of the {limit} the plan allows");
    let check = if wanted > threshold {
        Check::fail(
            kind,
            format!("{finding}: over {:.0}% of the limit", doctor::BRANCH_LIMIT_SHARE * 100.0),
            "delete branches of finished runs (strata neon branch list, strata neon branch delete NAME) or raise \
             the plan",
        )
        .with_severity(if wanted > limit as u64 { Severity::Critical } else { Severity::Warning })
    } else {
        Check::pass(kind, finding)
    };
    check.with_fact("branches", count).with_fact("limit", limit)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn endpoint(id: &str, host: &str, kind: &str, min: f64, max: f64, suspend: i64) -> Endpoint {
        serde_json::from_value(serde_json::json!({
            "id": id, "host": host, "type": kind, "branch_id": "br-main",
            "autoscaling_limit_min_cu": min, "autoscaling_limit_max_cu": max, "suspend_timeout_seconds": suspend,
        }))
        .unwrap()
    }

    #[test]
    fn the_store_compute_is_checked_alone_when_it_is_known() {
        let endpoints = vec![
            endpoint("ep-a", "ep-a.us-east-2.aws.neon.tech", "read_write", 0.25, 1.0, 0),
            endpoint("ep-b", "ep-b.us-east-2.aws.neon.tech", "read_write", 2.0, 8.0, -1),
            endpoint("ep-r", "ep-r.us-east-2.aws.neon.tech", "read_only", 0.25, 0.25, 0),
        ];
        let ids =
            |host: Option<&str>| computes_of(&endpoints, host).iter().map(|e| e.id.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(Some("ep-b-pooler.us-east-2.aws.neon.tech")), ["ep-b"]);
        assert_eq!(ids(Some("127.0.0.1")), ["ep-a", "ep-b"], "unknown host: every read-write compute");
        let good = computes_of(&endpoints, Some("ep-b.us-east-2.aws.neon.tech"));
        assert_eq!(autoscaling(&good).status, doctor::Status::Pass);
        assert_eq!(suspend_timeout(&good).status, doctor::Status::Pass);
        let all = computes_of(&endpoints, None);
        let scaling = autoscaling(&all);
        assert_eq!(scaling.status, doctor::Status::Fail);
        assert!(scaling.finding.contains("ep-a (branch br-main) 0.25-1 CU"), "{}", scaling.finding);
        assert!(scaling.fix.as_deref().unwrap().contains("ep-a --min-cu 2 --max-cu 8"), "{scaling:?}");
        let suspend = suspend_timeout(&all);
        assert!(suspend.finding.contains("after 300 s idle (Neon's default)"), "{}", suspend.finding);
    }
}
