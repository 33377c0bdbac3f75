//! `strata neon usage`: consumption in the metrics Neon invoices (the v2
//! consumption endpoints), per project and per branch, priced with rates that
//! are flags, and grouped by the evolution run and worker Strata created each
//! branch for (read from the branch names of `NeonProvisioner`).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use clap::Args;
use futures::TryStreamExt;
use serde::Serialize;
use strata_core::Timestamp;
use strata_neon_api::models::{
    Branch, BranchConsumptionV2, ConsumptionGranularity, ConsumptionMetric, ConsumptionQueryV2, Project,
    ProjectConsumptionV2, consumption_totals,
};
use strata_neon_api::{NeonProvisioner, ProjectId};

use crate::{NeonArgs, api, client, invalid, print_json, project};

/// Neon's published compute price on the Launch plan, US$ per CU-hour (Scale: 0.222).
pub(crate) const COMPUTE_RATE: f64 = 0.106;
/// Neon's published storage price, US$ per GB-month.
pub(crate) const STORAGE_RATE: f64 = 0.35;
/// Neon's published instant-restore (history) price, US$ per GB-month.
pub(crate) const INSTANT_RESTORE_RATE: f64 = 0.20;
/// Bytes in the GB of a GB-month (Neon measures storage in GiB).
pub(crate) const GB: f64 = (1u64 << 30) as f64;

/// `strata neon usage`.
#[derive(Debug, Args)]
pub(crate) struct UsageArgs {
    /// Start (RFC 3339 or a date, UTC) [default: the first of this month; hourly: 24 hours ago].
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// End, exclusive (RFC 3339 or a date, UTC) [default: now, rounded up to the granularity].
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// hourly (last 168 hours at most), daily (60 days) or monthly (1 year).
    #[arg(long, default_value = "daily", value_name = "GRANULARITY", value_parser = ["hourly", "daily", "monthly"])]
    granularity: String,
    /// Organization id [default: the organization of the project(s)].
    #[arg(long, env = "NEON_ORG_ID", value_name = "ORG")]
    org: Option<String>,
    /// Every project of the organization instead of NEON_PROJECT_ID.
    #[arg(long)]
    all_projects: bool,
    /// US$ per CU-hour (Neon Launch plan; Scale is 0.222).
    #[arg(long, default_value_t = COMPUTE_RATE, value_name = "USD", allow_negative_numbers = true)]
    compute_rate: f64,
    /// US$ per GB-month of storage (root and child branches).
    #[arg(long, default_value_t = STORAGE_RATE, value_name = "USD", allow_negative_numbers = true)]
    storage_rate: f64,
    /// US$ per GB-month of instant-restore history.
    #[arg(long, default_value_t = INSTANT_RESTORE_RATE, value_name = "USD", allow_negative_numbers = true)]
    instant_restore_rate: f64,
}

/// The prices a report applies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Rates {
    /// US$ per CU-hour.
    pub(crate) compute_per_cu_hour: f64,
    /// US$ per GB-month of root and child branch storage.
    pub(crate) storage_per_gb_month: f64,
    /// US$ per GB-month of instant-restore history.
    pub(crate) instant_restore_per_gb_month: f64,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            compute_per_cu_hour: COMPUTE_RATE,
            storage_per_gb_month: STORAGE_RATE,
            instant_restore_per_gb_month: INSTANT_RESTORE_RATE,
        }
    }
}

/// Raw metric totals (by the API's metric names) with what they come to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Usage {
    /// Totals by metric, in the API's units.
    pub(crate) metrics: BTreeMap<String, i64>,
    /// compute_unit_seconds / 3600.
    pub(crate) cu_hours: f64,
    /// (root_branch_bytes_month + child_branch_bytes_month) / 2^30.
    pub(crate) storage_gb_months: f64,
    /// instant_restore_bytes_month / 2^30.
    pub(crate) instant_restore_gb_months: f64,
    /// cu_hours × the compute rate.
    pub(crate) compute_cost: f64,
    /// storage_gb_months × the storage rate.
    pub(crate) storage_cost: f64,
    /// instant_restore_gb_months × the instant-restore rate.
    pub(crate) instant_restore_cost: f64,
    /// The sum of the three costs, US$.
    pub(crate) cost: f64,
}

impl Usage {
    /// Prices metric totals.
    pub(crate) fn priced(metrics: BTreeMap<String, i64>, rates: &Rates) -> Usage {
        let value = |name: &str| metrics.get(name).copied().unwrap_or(0) as f64;
        let cu_hours = value("compute_unit_seconds") / 3600.0;
        let storage_gb_months = (value("root_branch_bytes_month") + value("child_branch_bytes_month")) / GB;
        let instant_restore_gb_months = value("instant_restore_bytes_month") / GB;
        let compute_cost = cu_hours * rates.compute_per_cu_hour;
        let storage_cost = storage_gb_months * rates.storage_per_gb_month;
        let instant_restore_cost = instant_restore_gb_months * rates.instant_restore_per_gb_month;
        Usage {
            metrics,
            cu_hours,
            storage_gb_months,
            instant_restore_gb_months,
            compute_cost,
            storage_cost,
            instant_restore_cost,
            cost: compute_cost + storage_cost + instant_restore_cost,
        }
    }

    /// The priced sum of several totals.
    fn sum<'a>(parts: impl IntoIterator<Item = &'a BTreeMap<String, i64>>, rates: &Rates) -> Usage {
        let mut metrics: BTreeMap<String, i64> = BTreeMap::new();
        for part in parts {
            for (name, value) in part {
                let total = metrics.entry(name.clone()).or_insert(0);
                *total = total.saturating_add(*value);
            }
        }
        Usage::priced(metrics, rates)
    }
}

/// One project's usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ProjectUsage {
    pub(crate) project_id: String,
    pub(crate) name: Option<String>,
    pub(crate) usage: Usage,
}

/// One branch's usage, with the run and worker Strata created it for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct BranchUsage {
    pub(crate) project_id: String,
    pub(crate) branch_id: String,
    /// `None` for a branch that no longer exists (its name is gone with it).
    pub(crate) name: Option<String>,
    pub(crate) run: Option<String>,
    pub(crate) worker: Option<String>,
    pub(crate) usage: Usage,
}

/// A worker's branch within a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct WorkerUsage {
    pub(crate) worker: String,
    pub(crate) branch_id: String,
    pub(crate) branch: String,
    pub(crate) usage: Usage,
}

/// An evolution run: its own branch and its workers' branches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct RunUsage {
    pub(crate) run: String,
    pub(crate) project_id: String,
    /// The run's own branch (`evolution-<run>`), when it exists.
    pub(crate) branch_id: Option<String>,
    pub(crate) branch: Option<String>,
    /// The run's own branch alone.
    pub(crate) branch_usage: Option<Usage>,
    pub(crate) workers: Vec<WorkerUsage>,
    /// The run's branch and all its workers' branches.
    pub(crate) usage: Usage,
}

/// What `strata neon usage --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Report {
    pub(crate) org_id: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) granularity: String,
    pub(crate) rates: Rates,
    /// Per project, from the projects endpoint (the figures Neon invoices).
    pub(crate) projects: Vec<ProjectUsage>,
    /// Per branch, from the branches endpoint.
    pub(crate) branches: Vec<BranchUsage>,
    /// Per evolution run Strata created branches for.
    pub(crate) runs: Vec<RunUsage>,
    /// The sum of the projects.
    pub(crate) total: Usage,
}

/// The branches of one run while a report is built.
#[derive(Debug, Default)]
struct RunParts {
    /// The run's own branch: id, name and totals.
    own: Option<(String, String, BTreeMap<String, i64>)>,
    workers: Vec<WorkerUsage>,
    /// The totals of every branch of the run.
    all: Vec<BTreeMap<String, i64>>,
}

/// Builds the report from what the API answered. `names` maps every branch that
/// still exists to its name.
pub(crate) fn build_report(
    header: (String, String, String, String),
    rates: Rates,
    projects: &[(ProjectConsumptionV2, Option<String>)],
    branches: &[BranchConsumptionV2],
    names: &BTreeMap<(String, String), String>,
) -> Report {
    let (org_id, from, to, granularity) = header;
    let project_totals: Vec<BTreeMap<String, i64>> =
        projects.iter().map(|(project, _)| consumption_totals(&project.periods)).collect();
    let project_rows = projects
        .iter()
        .zip(&project_totals)
        .map(|((project, name), totals)| ProjectUsage {
            project_id: project.project_id.to_string(),
            name: name.clone(),
            usage: Usage::priced(totals.clone(), &rates),
        })
        .collect();
    let mut branch_rows = Vec::new();
    let mut runs: BTreeMap<(String, String), RunParts> = BTreeMap::new();
    for branch in branches {
        let project_id = branch.project_id.to_string();
        let branch_id = branch.branch_id.to_string();
        let totals = consumption_totals(&branch.periods);
        let name = names.get(&(project_id.clone(), branch_id.clone())).cloned();
        let purpose = name.as_deref().and_then(NeonProvisioner::branch_purpose);
        if let (Some(purpose), Some(name)) = (&purpose, &name) {
            let parts = runs.entry((project_id.clone(), purpose.run().to_owned())).or_default();
            parts.all.push(totals.clone());
            match purpose.worker() {
                None => parts.own = Some((branch_id.clone(), name.clone(), totals.clone())),
                Some(worker) => parts.workers.push(WorkerUsage {
                    worker: worker.to_owned(),
                    branch_id: branch_id.clone(),
                    branch: name.clone(),
                    usage: Usage::priced(totals.clone(), &rates),
                }),
            }
        }
        branch_rows.push(BranchUsage {
            project_id,
            branch_id,
            name,
            run: purpose.as_ref().map(|purpose| purpose.run().to_owned()),
            worker: purpose.as_ref().and_then(|purpose| purpose.worker().map(str::to_owned)),
            usage: Usage::priced(totals, &rates),
        });
    }
    // By name (the deleted, unnamed ones last), not by id as the API pages them.
    branch_rows.sort_by(|a, b| {
        (&a.project_id, a.name.is_none(), &a.name, &a.branch_id).cmp(&(
            &b.project_id,
            b.name.is_none(),
            &b.name,
            &b.branch_id,
        ))
    });
    let run_rows = runs
        .into_iter()
        .map(|((project_id, run), mut parts)| {
            parts.workers.sort_by(|a, b| a.worker.cmp(&b.worker));
            let (branch_id, branch, branch_usage) = match parts.own {
                Some((id, name, totals)) => (Some(id), Some(name), Some(Usage::priced(totals, &rates))),
                None => (None, None, None),
            };
            RunUsage {
                run,
                project_id,
                branch_id,
                branch,
                branch_usage,
                workers: parts.workers,
                usage: Usage::sum(&parts.all, &rates),
            }
        })
        .collect();
    Report {
        org_id,
        from,
        to,
        granularity,
        rates,
        projects: project_rows,
        branches: branch_rows,
        runs: run_rows,
        total: Usage::sum(&project_totals, &rates),
    }
}

fn round_down(time: DateTime<Utc>, granularity: &str) -> DateTime<Utc> {
    let day = Utc.with_ymd_and_hms(time.year(), time.month(), time.day(), 0, 0, 0).single().unwrap_or(time);
    match granularity {
        "hourly" => day + Duration::hours(i64::from(time.hour())),
        "daily" => day,
        _ => Utc.with_ymd_and_hms(time.year(), time.month(), 1, 0, 0, 0).single().unwrap_or(time),
    }
}

fn round_up(time: DateTime<Utc>, granularity: &str) -> DateTime<Utc> {
    let down = round_down(time, granularity);
    if down == time {
        return time;
    }
    match granularity {
        "hourly" => down + Duration::hours(1),
        "daily" => down + Duration::days(1),
        _ => {
            let (year, month) = if down.month() == 12 { (down.year() + 1, 1) } else { (down.year(), down.month() + 1) };
            Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).single().unwrap_or(down + Duration::days(31))
        }
    }
}

fn parse_time(flag: &str, text: &str) -> Result<DateTime<Utc>, anyhow::Error> {
    let timestamp = Timestamp::parse(text).map_err(|error| invalid(format!("{flag} {text:?}: {error}")))?;
    Ok(timestamp.to_datetime().ok_or_else(|| invalid(format!("{flag} {text:?} is out of range")))?)
}

/// The period to ask for: `--from`/`--to` or this month so far, checked against
/// the granularity's limits before anything is sent.
pub(crate) fn period(
    from: Option<&str>,
    to: Option<&str>,
    granularity: &str,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), anyhow::Error> {
    let from = match from {
        Some(text) => parse_time("--from", text)?,
        None if granularity == "hourly" => round_down(now - Duration::hours(24), granularity),
        None => round_down(now, "monthly"),
    };
    let to = match to {
        Some(text) => parse_time("--to", text)?,
        None => round_up(now, granularity),
    };
    let earliest = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).single().unwrap_or(from);
    if from < earliest {
        return Err(invalid(format!(
            "--from {}: Neon's consumption history starts on 2024-03-01 (and only when the plan is a paid one)",
            from.to_rfc3339()
        ))
        .into());
    }
    let (start, end) = (round_down(from, granularity), round_down(to, granularity));
    if end <= start {
        return Err(invalid(format!(
            "--to ({}) must be after --from ({}) by at least one {granularity} step (Neon rounds both down to the \
             granularity)",
            to.to_rfc3339(),
            from.to_rfc3339()
        ))
        .into());
    }
    let (limit, span, coarser) = match granularity {
        "hourly" => (Duration::hours(168), "168 hours", "daily"),
        "daily" => (Duration::days(60), "60 days", "monthly"),
        _ => (Duration::days(366), "1 year", ""),
    };
    if end - start > limit {
        let hint = if coarser.is_empty() { String::new() } else { format!(" or --granularity {coarser}") };
        return Err(invalid(format!(
            "Neon keeps {granularity} consumption for {span}; the period {} .. {} is longer: narrow --from/--to{hint}",
            start.to_rfc3339(),
            end.to_rfc3339()
        ))
        .into());
    }
    Ok((start, end))
}

fn check_rates(arguments: &UsageArgs) -> Result<Rates> {
    for (flag, rate) in [
        ("--compute-rate", arguments.compute_rate),
        ("--storage-rate", arguments.storage_rate),
        ("--instant-restore-rate", arguments.instant_restore_rate),
    ] {
        if !rate.is_finite() || rate < 0.0 {
            return Err(invalid(format!("{flag} {rate}: a rate is a price in US$, 0 or more")).into());
        }
    }
    Ok(Rates {
        compute_per_cu_hour: arguments.compute_rate,
        storage_per_gb_month: arguments.storage_rate,
        instant_restore_per_gb_month: arguments.instant_restore_rate,
    })
}

/// Runs `strata neon usage`.
pub(crate) async fn usage(args: &NeonArgs, arguments: &UsageArgs) -> Result<()> {
    let rates = check_rates(arguments)?;
    if let Some(org) = arguments.org.as_deref().filter(|org| !org.trim().is_empty())
        && !(org.len() <= 60 && org.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        return Err(invalid(format!(
            "--org / NEON_ORG_ID {org:?} is not an organization id (1 to 60 lowercase letters, digits and dashes, \
             e.g. org-morning-bread-81040908)"
        ))
        .into());
    }
    let granularity = arguments.granularity.as_str();
    let (from, to) = period(arguments.from.as_deref(), arguments.to.as_deref(), granularity, Utc::now())?;
    let client = client(args)?;
    let mut projects: Vec<Project> = if arguments.all_projects {
        client.list_projects().try_collect().await.map_err(api)?
    } else {
        vec![client.get_project(&project(args)?).await.map_err(api)?]
    };
    let org_id = match arguments.org.as_deref().filter(|org| !org.trim().is_empty()) {
        Some(org) => org.to_owned(),
        None => {
            let orgs: BTreeSet<&str> = projects.iter().filter_map(|project| project.org_id.as_deref()).collect();
            match orgs.into_iter().collect::<Vec<_>>().as_slice() {
                [org] => (*org).to_owned(),
                [] => return Err(invalid("the project names no organization: pass --org or set NEON_ORG_ID (Organization settings in the Neon Console)").into()),
                several => return Err(invalid(format!("the projects belong to several organizations ({}): pass --org", several.join(", "))).into()),
            }
        }
    };
    if arguments.all_projects {
        projects.retain(|project| project.org_id.as_deref().is_none_or(|org| org == org_id));
    }
    let query = ConsumptionQueryV2 {
        org_id: org_id.clone(),
        from,
        to,
        granularity: ConsumptionGranularity::parse(granularity),
        metrics: ConsumptionMetric::for_projects(),
        project_ids: Vec::new(),
        branch_ids: Vec::new(),
    };
    let ids: Vec<ProjectId> = projects.iter().map(|project| project.id.clone()).collect();
    let mut per_project = Vec::new();
    let mut per_branch = Vec::new();
    for chunk in ids.chunks(100) {
        let query = ConsumptionQueryV2 { project_ids: chunk.to_vec(), ..query.clone() };
        let found: Vec<ProjectConsumptionV2> =
            client.consumption_per_project(&query).try_collect().await.map_err(api)?;
        per_project.extend(found);
        let query = ConsumptionQueryV2 { metrics: ConsumptionMetric::for_branches(), ..query };
        let found: Vec<BranchConsumptionV2> = client.consumption_per_branch(&query).try_collect().await.map_err(api)?;
        per_branch.extend(found);
    }
    let mut names = BTreeMap::new();
    for id in &ids {
        let branches: Vec<Branch> = client.all_branches(id).await.map_err(api)?;
        for branch in branches {
            names.insert((id.to_string(), branch.id.to_string()), branch.name);
        }
    }
    let project_names: BTreeMap<&ProjectId, &str> =
        projects.iter().map(|project| (&project.id, project.name.as_str())).collect();
    let per_project: Vec<(ProjectConsumptionV2, Option<String>)> = per_project
        .into_iter()
        .map(|consumption| {
            let name = project_names.get(&consumption.project_id).map(|name| (*name).to_owned());
            (consumption, name)
        })
        .collect();
    let header = (org_id, text(from), text(to), granularity.to_owned());
    let report = build_report(header, rates, &per_project, &per_branch, &names);
    if args.json {
        return print_json(&serde_json::to_value(&report)?);
    }
    print_report(&report);
    Ok(())
}

fn text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn print_report(report: &Report) {
    println!("Neon usage {} .. {} ({}), organization {}", report.from, report.to, report.granularity, report.org_id);
    println!(
        "Rates: ${} per CU-hour, ${} per GB-month of storage, ${} per GB-month of instant restore",
        report.rates.compute_per_cu_hour, report.rates.storage_per_gb_month, report.rates.instant_restore_per_gb_month
    );
    let row = |label: &str, usage: &Usage| {
        println!(
            "  {label:<58} {:>10.3} {:>10.4} {:>10}",
            usage.cu_hours,
            usage.storage_gb_months,
            format!("${:.4}", usage.cost)
        );
    };
    let heading = |title: &str| println!("\n{title:<60} {:>10} {:>10} {:>10}", "CU-HOURS", "GB-MONTHS", "COST");
    heading("PROJECT");
    for project in &report.projects {
        row(&format!("{} {}", project.project_id, project.name.as_deref().unwrap_or("")), &project.usage);
    }
    heading("BRANCH");
    for branch in &report.branches {
        let name = branch.name.as_deref().unwrap_or("(deleted)");
        row(&format!("{} {name}", branch.branch_id), &branch.usage);
    }
    if !report.runs.is_empty() {
        heading("EVOLUTION RUN / WORKER");
        for run in &report.runs {
            row(&format!("run {}", run.run), &run.usage);
            if let (Some(branch), Some(usage)) = (&run.branch, &run.branch_usage) {
                row(&format!("  run branch {branch}"), usage);
            }
            for worker in &run.workers {
                row(&format!("  worker {}", worker.worker), &worker.usage);
            }
        }
    }
    println!();
    row("TOTAL (projects)", &report.total);
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_neon_api::BranchId;
    use strata_neon_api::models::{ConsumptionMetricValue, ConsumptionPeriodV2, ConsumptionTimeframeV2};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn periods(values: &[(&str, i64)]) -> Vec<ConsumptionPeriodV2> {
        let timeframe = |values: &[(&str, i64)]| ConsumptionTimeframeV2 {
            timeframe_start: None,
            timeframe_end: None,
            metrics: values
                .iter()
                .map(|(name, value)| ConsumptionMetricValue {
                    metric_name: ConsumptionMetric::parse(name),
                    value: *value,
                })
                .collect(),
        };
        // Two timeframes with the same values: totals are twice them.
        vec![ConsumptionPeriodV2 {
            period_id: None,
            period_plan: None,
            period_start: None,
            period_end: None,
            consumption: vec![timeframe(values), timeframe(values)],
        }]
    }

    fn branch(id: &str, values: &[(&str, i64)]) -> BranchConsumptionV2 {
        BranchConsumptionV2 { project_id: ProjectId::new("p"), branch_id: BranchId::new(id), periods: periods(values) }
    }

    #[test]
    fn cost_is_cu_hours_and_gb_months_times_their_rates() {
        let rates = Rates { compute_per_cu_hour: 0.2, storage_per_gb_month: 0.5, instant_restore_per_gb_month: 0.1 };
        let metrics = BTreeMap::from([
            ("compute_unit_seconds".to_owned(), 7200),
            ("root_branch_bytes_month".to_owned(), 1 << 30),
            ("child_branch_bytes_month".to_owned(), 1 << 29),
            ("instant_restore_bytes_month".to_owned(), 1 << 31),
        ]);
        let usage = Usage::priced(metrics, &rates);
        assert_eq!((usage.cu_hours, usage.storage_gb_months, usage.instant_restore_gb_months), (2.0, 1.5, 2.0));
        assert!((usage.cost - (2.0 * 0.2 + 1.5 * 0.5 + 2.0 * 0.1)).abs() < 1e-12, "{usage:?}");
    }

    #[test]
    fn branches_group_into_runs_and_workers_by_name() {
        let names = BTreeMap::from([
            (("p".to_owned(), "br-main".to_owned()), "main".to_owned()),
            (("p".to_owned(), "br-run".to_owned()), "evolution-r1".to_owned()),
            (("p".to_owned(), "br-w1".to_owned()), "evolution-r1/worker-w1".to_owned()),
            (("p".to_owned(), "br-w2".to_owned()), "evolution-r1/worker-w2".to_owned()),
        ]);
        let branches = [
            branch("br-main", &[("compute_unit_seconds", 3600)]),
            branch("br-run", &[("compute_unit_seconds", 1800), ("child_branch_bytes_month", 1 << 28)]),
            branch("br-w1", &[("compute_unit_seconds", 900)]),
            branch("br-w2", &[("compute_unit_seconds", 450)]),
            branch("br-gone", &[("compute_unit_seconds", 10)]),
        ];
        let project = ProjectConsumptionV2 {
            project_id: ProjectId::new("p"),
            periods: periods(&[("compute_unit_seconds", 6760)]),
        };
        let header = ("org".into(), "a".into(), "b".into(), "daily".into());
        let report = build_report(header, Rates::default(), &[(project, Some("demo".into()))], &branches, &names);
        assert_eq!(report.runs.len(), 1);
        let run = &report.runs[0];
        assert_eq!((run.run.as_str(), run.branch.as_deref()), ("r1", Some("evolution-r1")));
        assert_eq!(run.workers.iter().map(|w| w.worker.as_str()).collect::<Vec<_>>(), ["w1", "w2"]);
        assert_eq!(run.usage.metrics["compute_unit_seconds"], 2 * (1800 + 900 + 450));
        assert_eq!(run.workers[1].usage.metrics["compute_unit_seconds"], 900);
        let total = run.branch_usage.as_ref().unwrap().cost + run.workers.iter().map(|w| w.usage.cost).sum::<f64>();
        assert!((run.usage.cost - total).abs() < 1e-12);
        let gone = report.branches.iter().find(|b| b.branch_id == "br-gone").unwrap();
        assert_eq!((gone.name.as_deref(), gone.run.as_deref()), (None, None));
        assert_eq!(report.total.metrics["compute_unit_seconds"], 2 * 6760);
        assert_eq!(report.projects[0].name.as_deref(), Some("demo"));
    }

    #[test]
    fn the_default_period_is_this_month_so_far_and_limits_are_checked_before_sending() {
        let now = at("2026-11-27T15:30:00Z");
        let (from, to) = period(None, None, "daily", now).unwrap();
        assert_eq!((from, to), (at("2026-11-01T00:00:00Z"), at("2026-11-28T00:00:00Z")));
        let (from, to) = period(Some("2026-11-21"), Some("2026-11-27T15:10:00Z"), "hourly", now).unwrap();
        assert_eq!((from, to), (at("2026-11-21T00:00:00Z"), at("2026-11-27T15:00:00Z")));
        let (from, to) = period(None, None, "hourly", now).unwrap();
        assert_eq!((from, to), (at("2026-11-26T15:00:00Z"), at("2026-11-27T16:00:00Z")));
        let too_long = period(Some("2026-11-01"), None, "hourly", now).unwrap_err().to_string();
        assert!(too_long.contains("168 hours") && too_long.contains("--granularity daily"), "{too_long}");
        let backwards = period(Some("2026-11-27"), Some("2026-11-26"), "daily", now).unwrap_err().to_string();
        assert!(backwards.contains("must be after --from"), "{backwards}");
        assert!(period(Some("yesterday"), None, "daily", now).unwrap_err().to_string().contains("--from"));
        assert!(period(Some("2020-01-01"), None, "monthly", now).unwrap_err().to_string().contains("2024-03-01"));
    }
}
