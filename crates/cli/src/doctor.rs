//! `strata doctor`: the production-readiness checks of the configured
//! storage (and of the Neon project, with `NEON_API_KEY` and
//! `NEON_PROJECT_ID`) as a table or one JSON object; exit code 1 when a
//! critical check fails. The checks live with the adapters; the
//! composition root picks them (`strata_compose::doctor`).

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::{Map, Value, json};
use strata_core::doctor::{Check, DoctorReport, Plan, Severity, Status};

use crate::backend::StorageConfig;
use crate::backend::doctor::NeonApiSettings;
use crate::cli::positive_seconds;

/// Long help of `strata doctor`.
pub(crate) const DOCTOR_LONG_ABOUT: &str = include_str!("../help/doctor.txt");

/// Examples of `strata doctor`.
pub(crate) const DOCTOR_AFTER_HELP: &str = include_str!("../help/doctor-examples.txt");

/// The longest `--timeout` honoured (a longer one is this).
const MAX_CHECK_TIMEOUT: Duration = Duration::from_secs(3600);

/// `strata doctor`.
#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// The planned number of `strata worker` processes, checked against free connections and branches.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    workers: Option<u32>,
    /// A write/read/delete round trip slower than this fails pg.round_trip.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    baseline_ms: u64,
    /// Give up on one check after this many seconds, at most 3600 (a held lock fails after 2 s).
    #[arg(long, value_name = "SECONDS", default_value = "15", value_parser = positive_seconds)]
    timeout: Duration,
    /// Neon API key for the neon.* checks.
    #[arg(long, env = "NEON_API_KEY", hide_env_values = true, value_name = "KEY")]
    neon_api_key: Option<String>,
    /// Neon project whose computes and branches are checked.
    #[arg(long, env = "NEON_PROJECT_ID", value_name = "ID")]
    neon_project: Option<String>,
    /// Base URL of the Neon API [default: https://console.neon.tech/api/v2].
    #[arg(long, env = "NEON_API_BASE_URL", value_name = "URL")]
    neon_api_base_url: Option<String>,
}

/// Runs `strata doctor`.
pub(crate) async fn run(args: &DoctorArgs, storage: &StorageConfig) -> Result<ExitCode> {
    let plan = Plan {
        workers: args.workers,
        round_trip_baseline: Duration::from_millis(args.baseline_ms),
        check_timeout: args.timeout.min(MAX_CHECK_TIMEOUT),
        lock_wait: args.timeout.min(Plan::default().lock_wait),
        ..Plan::default()
    };
    let neon_api = NeonApiSettings {
        api_key: args.neon_api_key.clone(),
        project: args.neon_project.clone(),
        base_url: args.neon_api_base_url.clone(),
    };
    let report = crate::backend::doctor::diagnose(storage, &plan, &neon_api).await?;
    let mut out = io::stdout().lock();
    if args.json {
        writeln!(out, "{}", report_json(&report, storage, &plan))?;
    } else {
        write_report(&mut out, &report, storage, &plan)?;
    }
    out.flush()?;
    Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::from(crate::exit::FAILURE) })
}

/// The report as one JSON object: `ok`, what was checked, counts, and every check.
fn report_json(report: &DoctorReport, storage: &StorageConfig, plan: &Plan) -> Value {
    let checks: Vec<Value> = report.checks.iter().map(check_json).collect();
    json!({
        "ok": report.ok(),
        "backend": storage.backend.name(),
        "storage": storage.describe(),
        "workers": plan.workers,
        "summary": {
            "pass": report.count(Status::Pass),
            "fail": report.count(Status::Fail),
            "skip": report.count(Status::Skip),
            "critical_failures": report.failed(Severity::Critical),
            "warnings": report.failed(Severity::Warning),
            "text": report.summary(),
        },
        "checks": checks,
    })
}

fn check_json(check: &Check) -> Value {
    let facts: Map<String, Value> =
        check.facts.iter().map(|(key, value)| (key.clone(), Value::String(crate::backend::redacted(value)))).collect();
    json!({
        "id": check.id,
        "what": check.what,
        "severity": check.severity.as_str(),
        "status": check.status.as_str(),
        "finding": crate::backend::redacted(&check.finding),
        "fix": check.fix.as_deref().map(crate::backend::redacted),
        "facts": facts,
    })
}

/// The status column: `pass`, `skip`, or the failure by severity (`FAIL`, `warn`, `note`).
fn status_label(check: &Check) -> &'static str {
    match (check.status, check.severity) {
        (Status::Pass, _) => "pass",
        (Status::Skip, _) => "skip",
        (Status::Fail, Severity::Critical) => "FAIL",
        (Status::Fail, Severity::Warning) => "warn",
        (Status::Fail, Severity::Info) => "note",
    }
}

/// A header line, one line per check (the fix of a failure on the next line,
/// under the finding), and the summary.
fn write_report(out: &mut impl Write, report: &DoctorReport, storage: &StorageConfig, plan: &Plan) -> io::Result<()> {
    let workers = plan.workers.map(|n| format!(", {n} worker{} planned", if n == 1 { "" } else { "s" }));
    writeln!(out, "strata doctor: {}{}", storage.describe(), workers.unwrap_or_default())?;
    writeln!(out)?;
    let id_width = report.checks.iter().map(|check| check.id.len()).max().unwrap_or(0).max("check".len());
    let severity_width = "critical".len();
    writeln!(out, "{:<6}  {:<severity_width$}  {:<id_width$}  finding", "status", "severity", "check")?;
    let indent = " ".repeat(6 + 2 + severity_width + 2 + id_width + 2);
    for check in &report.checks {
        let finding = crate::backend::redacted(&check.finding);
        writeln!(
            out,
            "{:<6}  {:<severity_width$}  {:<id_width$}  {finding}",
            status_label(check),
            check.severity.as_str(),
            check.id
        )?;
        if let (Status::Fail, Some(fix)) = (check.status, &check.fix) {
            writeln!(out, "{indent}fix: {}", crate::backend::redacted(fix))?;
        }
    }
    writeln!(out)?;
    writeln!(out, "{}", report.summary())
}

#[cfg(test)]
#[path = "../unit-tests/doctor.rs"]
mod tests;
