//! Synthetic consumption for the fake's v2 consumption endpoints
//! (`GET /consumption_history/v2/projects` and `/v2/branches`).
//!
//! The figures are a pure function of the project's branches and computes and
//! of the query, so a test can compute what to expect:
//!
//! - a branch exists from its `created_at` on, with no end (a deleted branch is
//!   forgotten, with its figures);
//! - its computes run all the time at their minimum size: in a timeframe,
//!   `compute_unit_seconds` = ⌊seconds of the branch in the timeframe × the sum
//!   of `autoscaling_limit_min_cu` of the branch's computes (as they are now)⌋;
//! - a root branch (no parent) stores [`FAKE_ROOT_BRANCH_BYTES`], a child branch
//!   [`FAKE_CHILD_BRANCH_BYTES`]: `root_branch_bytes_month` or
//!   `child_branch_bytes_month` = ⌊bytes × seconds / [`FAKE_MONTH_SECONDS`]⌋;
//! - every other metric is 0; a project's figures are the sums of its branches'.
//!
//! Timeframes start at `from` rounded down to the granularity (hour, day,
//! calendar month, UTC) and go up to `to`, also rounded down, like the API.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use serde_json::{Value, json};

use super::{FakeProject, State};

/// The organization every project of the fake belongs to unless it was created with another `org_id`.
pub const FAKE_ORG_ID: &str = "org-fake";

/// Bytes a root branch stores in the fake's consumption figures (1 GiB).
pub const FAKE_ROOT_BRANCH_BYTES: u64 = 1 << 30;

/// Bytes a child branch stores in the fake's consumption figures (256 MiB).
pub const FAKE_CHILD_BRANCH_BYTES: u64 = 1 << 28;

/// Seconds in the month of the fake's byte-month figures (30 days).
pub const FAKE_MONTH_SECONDS: u64 = 30 * 86_400;

/// The metrics of the projects endpoint, as the spec lists them.
const PROJECT_METRICS: &[&str] = &[
    "compute_unit_seconds",
    "root_branch_bytes_month",
    "child_branch_bytes_month",
    "instant_restore_bytes_month",
    "public_network_transfer_bytes",
    "private_network_transfer_bytes",
    "extra_branches_month",
    "snapshot_storage_bytes_month",
];

/// What the branches endpoint does not accept.
const PROJECT_ONLY_METRICS: &[&str] = &["extra_branches_month", "snapshot_storage_bytes_month"];

/// A refusal: status and message.
pub(super) type Refusal = (u16, String);

/// Every value of a query parameter given repeatedly or comma-separated.
fn query_values(query: Option<&str>, name: &str) -> Vec<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(key, _)| key == name)
        .flat_map(|(_, value)| value.split(',').map(str::trim).map(str::to_owned).collect::<Vec<_>>())
        .filter(|value| !value.is_empty())
        .collect()
}

fn instant(query: Option<&str>, name: &str) -> Result<DateTime<Utc>, Refusal> {
    let Some(text) = query_values(query, name).into_iter().next() else {
        return Err((400, format!("{name} is required")));
    };
    DateTime::parse_from_rfc3339(&text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| (400, format!("{name} {text:?} is not an RFC 3339 date-time: {error}")))
}

fn round_down(time: DateTime<Utc>, granularity: &str) -> DateTime<Utc> {
    let day = Utc.with_ymd_and_hms(time.year(), time.month(), time.day(), 0, 0, 0).single().unwrap_or(time);
    match granularity {
        "hourly" => day + Duration::hours(i64::from(time.hour())),
        "daily" => day,
        _ => Utc.with_ymd_and_hms(time.year(), time.month(), 1, 0, 0, 0).single().unwrap_or(time),
    }
}

fn next(time: DateTime<Utc>, granularity: &str) -> DateTime<Utc> {
    match granularity {
        "hourly" => time + Duration::hours(1),
        "daily" => time + Duration::days(1),
        _ => {
            let (year, month) = if time.month() == 12 { (time.year() + 1, 1) } else { (time.year(), time.month() + 1) };
            Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).single().unwrap_or(time + Duration::days(31))
        }
    }
}

/// The parsed query: timeframes and metrics.
struct Query {
    timeframes: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    metrics: Vec<String>,
    project_ids: Vec<String>,
    branch_ids: Vec<String>,
}

fn parse(state: &State, query: Option<&str>, branches: bool) -> Result<Query, Refusal> {
    let Some(org_id) = query_values(query, "org_id").into_iter().next() else {
        return Err((400, "org_id is required".into()));
    };
    let known_org = org_id == FAKE_ORG_ID || state.projects.values().any(|project| project.json["org_id"] == org_id);
    if !known_org {
        return Err((404, format!("account is not a member of the organization {org_id}")));
    }
    let Some(granularity) = query_values(query, "granularity").into_iter().next() else {
        return Err((400, "granularity is required".into()));
    };
    let (window, span) = match granularity.as_str() {
        "hourly" => (Duration::hours(168), "168 hours"),
        "daily" => (Duration::days(60), "60 days"),
        "monthly" => (Duration::days(366), "1 year"),
        other => return Err((400, format!("granularity {other:?} is not one of hourly, daily, monthly"))),
    };
    let from = round_down(instant(query, "from")?, &granularity);
    let to = round_down(instant(query, "to")?, &granularity);
    if from < Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).single().unwrap_or(from) {
        return Err((400, "from must not be earlier than 2024-03-01T00:00:00Z".into()));
    }
    if to <= from {
        return Err((400, format!("to must be after from (both rounded down to the {granularity} granularity)")));
    }
    if to - from > window {
        return Err((
            406,
            format!("{granularity} consumption is limited to {span}; narrow the range or use a coarser granularity"),
        ));
    }
    let metrics = query_values(query, "metrics");
    if metrics.is_empty() {
        return Err((400, "metrics is required".into()));
    }
    for metric in &metrics {
        if !PROJECT_METRICS.contains(&metric.as_str()) {
            return Err((400, format!("unsupported metric {metric:?}")));
        }
        if branches && PROJECT_ONLY_METRICS.contains(&metric.as_str()) {
            return Err((
                400,
                format!("metric {metric:?} is not supported per branch; use /consumption_history/v2/projects"),
            ));
        }
    }
    let project_ids = query_values(query, "project_ids");
    if project_ids.len() > 100 || (branches && project_ids.is_empty()) {
        return Err((400, format!("project_ids must name {} to 100 projects", if branches { 1 } else { 0 })));
    }
    let branch_ids = query_values(query, "branch_ids");
    if branch_ids.len() > 100 {
        return Err((400, "branch_ids must name at most 100 branches".into()));
    }
    let mut timeframes = Vec::new();
    let mut start = from;
    while start < to {
        let end = next(start, &granularity);
        timeframes.push((start, end));
        start = end;
    }
    Ok(Query { timeframes, metrics, project_ids, branch_ids })
}

/// The projects of the organization the query asks for, in id order.
fn projects<'a>(state: &'a State, query: Option<&str>, wanted: &[String]) -> Vec<(&'a String, &'a FakeProject)> {
    let org_id = query_values(query, "org_id").into_iter().next().unwrap_or_default();
    state
        .projects
        .iter()
        .filter(|(_, project)| project.json["org_id"].as_str().unwrap_or(FAKE_ORG_ID) == org_id)
        .filter(|(id, _)| wanted.is_empty() || wanted.contains(*id))
        .collect()
}

/// One branch's value of `metric` in the timeframe `[start, end)`.
fn branch_value(project: &FakeProject, branch: &Value, metric: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> u64 {
    let created = branch["created_at"]
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map_or(start, |time| time.with_timezone(&Utc));
    let seconds = (end - created.max(start)).num_seconds().max(0) as u64;
    let id = &branch["id"];
    let root = branch.get("parent_id").is_none_or(Value::is_null);
    match metric {
        "compute_unit_seconds" => {
            let cu: f64 = project
                .endpoints
                .values()
                .filter(|endpoint| &endpoint["branch_id"] == id)
                .filter_map(|endpoint| endpoint["autoscaling_limit_min_cu"].as_f64())
                .sum();
            (seconds as f64 * cu).floor() as u64
        }
        "root_branch_bytes_month" if root => byte_months(FAKE_ROOT_BRANCH_BYTES, seconds),
        "child_branch_bytes_month" if !root => byte_months(FAKE_CHILD_BRANCH_BYTES, seconds),
        _ => 0,
    }
}

fn byte_months(bytes: u64, seconds: u64) -> u64 {
    (u128::from(bytes) * u128::from(seconds) / u128::from(FAKE_MONTH_SECONDS)) as u64
}

fn text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `periods` of one series: timeframes grouped by calendar month, each with `value(metric, start, end)`.
fn periods(query: &Query, now: DateTime<Utc>, value: impl Fn(&str, DateTime<Utc>, DateTime<Utc>) -> u64) -> Value {
    let mut periods: Vec<Value> = Vec::new();
    let mut current: Option<DateTime<Utc>> = None;
    for (start, end) in &query.timeframes {
        let period_start = round_down(*start, "monthly");
        if current != Some(period_start) {
            current = Some(period_start);
            let period_end = next(period_start, "monthly");
            let mut period = json!({
                "period_id": format!("00000000-0000-4000-8000-{:012}", period_start.year() * 100 + period_start.month() as i32),
                "period_plan": "launch",
                "period_start": text(period_start),
                "consumption": [],
            });
            if period_end <= now {
                period["period_end"] = Value::from(text(period_end));
            }
            periods.push(period);
        }
        let metrics: Vec<Value> = query
            .metrics
            .iter()
            .map(|metric| json!({ "metric_name": metric, "value": value(metric.as_str(), *start, *end) }))
            .collect();
        if let Some(Value::Array(consumption)) = periods.last_mut().map(|period| &mut period["consumption"]) {
            consumption
                .push(json!({ "timeframe_start": text(*start), "timeframe_end": text(*end), "metrics": metrics }));
        }
    }
    Value::Array(periods)
}

/// The items of `GET /consumption_history/v2/projects` (key: project id) or, with
/// `branches`, of `/v2/branches` (key: project id and branch id), before paging.
pub(super) fn consumption_v2(
    state: &State,
    query: Option<&str>,
    branches: bool,
    now: DateTime<Utc>,
) -> Result<Vec<(String, Value)>, Refusal> {
    let parsed = parse(state, query, branches)?;
    let mut items = Vec::new();
    for (project_id, project) in projects(state, query, &parsed.project_ids) {
        let wanted = |id: &String| parsed.branch_ids.is_empty() || parsed.branch_ids.contains(id);
        if branches {
            // In branch id order, as the API pages them.
            for branch_id in project.branches.keys().filter(|id| wanted(id)) {
                let branch = &project.branches[branch_id].json;
                let periods =
                    periods(&parsed, now, |metric, start, end| branch_value(project, branch, metric, start, end));
                items.push((
                    format!("{project_id}/{branch_id}"),
                    json!({ "project_id": project_id, "branch_id": branch_id, "periods": periods }),
                ));
            }
        } else {
            let periods = periods(&parsed, now, |metric, start, end| {
                project.branches.values().map(|branch| branch_value(project, &branch.json, metric, start, end)).sum()
            });
            items.push((project_id.clone(), json!({ "project_id": project_id, "periods": periods })));
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn timeframes_round_down_to_the_granularity() {
        assert_eq!(round_down(at("2026-11-27T15:30:10Z"), "hourly"), at("2026-11-27T15:00:00Z"));
        assert_eq!(round_down(at("2026-11-27T15:30:10Z"), "daily"), at("2026-11-27T00:00:00Z"));
        assert_eq!(round_down(at("2026-11-27T15:30:10Z"), "monthly"), at("2026-11-01T00:00:00Z"));
        assert_eq!(next(at("2026-12-01T00:00:00Z"), "monthly"), at("2027-01-01T00:00:00Z"));
    }

    #[test]
    fn byte_months_are_prorated_by_seconds() {
        assert_eq!(byte_months(FAKE_ROOT_BRANCH_BYTES, FAKE_MONTH_SECONDS), FAKE_ROOT_BRANCH_BYTES);
        assert_eq!(byte_months(FAKE_CHILD_BRANCH_BYTES, 86_400), (1u64 << 28) / 30);
    }

    #[test]
    fn repeated_and_comma_separated_values_are_both_read() {
        let query = "metrics=a,b&metrics=c&project_ids=&x=1";
        assert_eq!(query_values(Some(query), "metrics"), ["a", "b", "c"]);
        assert!(query_values(Some(query), "project_ids").is_empty());
    }
}
