//! End-to-end tests of the operator's `strata neon` commands against `strata
//! neon fake-server`: `usage` (consumption per project, branch, evolution run
//! and worker, and its cost), `endpoint set` (a round trip, and bad input
//! refused before anything is sent), and `list`/`show` of every resource with
//! `--json`, roles never with their passwords.
//!
//! The fake's consumption is synthetic and deterministic (see
//! `strata_neon_api::fake`'s `consumption` module): a branch exists from its
//! `created_at`, its computes run all the time at their minimum CU, a root
//! branch stores 1 GiB and a child branch 256 MiB, byte-months over 30-day
//! months, every figure floored per timeframe. These tests compute the same
//! figures from what `strata neon branch list` and `endpoints list` print.

#![allow(clippy::unwrap_used)]
#![cfg(feature = "neon-api")]

mod common;

use std::collections::BTreeMap;

use common::{FakeNeon, Run};
use serde_json::Value;

/// `FAKE_ROOT_BRANCH_BYTES`, `FAKE_CHILD_BRANCH_BYTES` and `FAKE_MONTH_SECONDS` of the fake.
const ROOT_BYTES: u64 = 1 << 30;
const CHILD_BYTES: u64 = 1 << 28;
const MONTH_SECONDS: u64 = 30 * 86_400;

/// Runs `strata neon ...` against the fake.
fn neon(fake: &FakeNeon, arguments: &[&str]) -> Run {
    fake.strata(&[], &[&["neon"], arguments].concat())
}

/// Runs `strata neon ... --json` and parses what it printed.
fn neon_json(fake: &FakeNeon, arguments: &[&str]) -> Value {
    neon(fake, &[arguments, &["--json"]].concat()).success().json()
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Unix seconds of `YYYY-MM-DDTHH:MM:SSZ`.
fn unix_seconds(text: &str) -> i64 {
    let number = |range: std::ops::Range<usize>| text[range].parse::<i64>().unwrap();
    let days = days_from_civil(number(0..4), number(5..7), number(8..10));
    days * 86_400 + number(11..13) * 3600 + number(14..16) * 60 + number(17..19)
}

/// The first of the month `offset` months after the month of `text`, as `YYYY-MM-DD` and unix seconds.
fn month_start(text: &str, offset: i64) -> (String, i64) {
    let months = text[0..4].parse::<i64>().unwrap() * 12 + text[5..7].parse::<i64>().unwrap() - 1 + offset;
    let (year, month) = (months / 12, months % 12 + 1);
    (format!("{year:04}-{month:02}-01"), days_from_civil(year, month, 1) * 86_400)
}

/// The fake's figure of one metric for one branch over the monthly timeframes `bounds`.
fn expected(metric: &str, created: i64, root: bool, cu: f64, bounds: &[i64]) -> i64 {
    bounds
        .windows(2)
        .map(|frame| {
            let seconds = (frame[1] - created.max(frame[0])).max(0) as u64;
            match metric {
                "compute_unit_seconds" => (seconds as f64 * cu).floor() as i64,
                "root_branch_bytes_month" if root => {
                    (ROOT_BYTES as u128 * seconds as u128 / MONTH_SECONDS as u128) as i64
                }
                "child_branch_bytes_month" if !root => {
                    (CHILD_BYTES as u128 * seconds as u128 / MONTH_SECONDS as u128) as i64
                }
                _ => 0,
            }
        })
        .sum()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Checks a `usage` object: CU-hours and GB-months from its metrics, cost from them and the rates.
#[track_caller]
fn check_priced(usage: &Value, compute_rate: f64, storage_rate: f64) {
    let metric = |name: &str| usage["metrics"][name].as_i64().unwrap_or(0) as f64;
    let cu_hours = metric("compute_unit_seconds") / 3600.0;
    let gb_months = (metric("root_branch_bytes_month") + metric("child_branch_bytes_month")) / (1u64 << 30) as f64;
    assert!(close(usage["cu_hours"].as_f64().unwrap(), cu_hours), "{usage}");
    assert!(close(usage["storage_gb_months"].as_f64().unwrap(), gb_months), "{usage}");
    let cost = cu_hours * compute_rate + gb_months * storage_rate;
    assert!(close(usage["cost"].as_f64().unwrap(), cost), "cost {} != {cost}: {usage}", usage["cost"]);
}

#[test]
fn usage_gives_the_cost_of_each_evolution_run_and_worker() {
    let fake = FakeNeon::start(&["--seed-project", "ops-usage"]);
    // An evolution run with two workers (the second on bigger computes), a second run, and a CI branch.
    neon(&fake, &["branch", "create", "evolution-r1"]).success();
    neon(&fake, &["branch", "create", "evolution-r1/worker-w1", "--parent", "evolution-r1"]).success();
    neon(
        &fake,
        &["branch", "create", "evolution-r1/worker-w2", "--parent", "evolution-r1", "--min-cu", "1", "--max-cu", "2"],
    )
    .success();
    neon(&fake, &["branch", "create", "evolution-r2", "--min-cu", "0.5", "--max-cu", "1"]).success();
    neon(&fake, &["branch", "create", "ci-7", "--no-endpoint"]).success();

    let branches = neon_json(&fake, &["branch", "list"]);
    let endpoints = neon_json(&fake, &["endpoints", "list"]);
    let mut cu_of: BTreeMap<String, f64> = BTreeMap::new();
    for endpoint in endpoints.as_array().unwrap() {
        *cu_of.entry(endpoint["branch_id"].as_str().unwrap().to_owned()).or_default() +=
            endpoint["autoscaling_limit_min_cu"].as_f64().unwrap();
    }
    let first = branches[0]["created_at"].as_str().unwrap().to_owned();
    let (from, start) = month_start(&first, 0);
    let (_, middle) = month_start(&first, 1);
    let (to, end) = month_start(&first, 2);
    let bounds = [start, middle, end];

    let report = neon_json(&fake, &["usage", "--from", &from, "--to", &to, "--granularity", "monthly"]);
    assert_eq!(report["org_id"], "org-fake");
    assert_eq!(report["granularity"], "monthly");
    assert_eq!(report["rates"]["compute_per_cu_hour"], 0.106);
    assert_eq!(report["rates"]["storage_per_gb_month"], 0.35);

    // Every branch's figures are the fake's, and priced right.
    let rows = report["branches"].as_array().unwrap();
    assert_eq!(rows.len(), branches.as_array().unwrap().len());
    let mut by_name: BTreeMap<String, Value> = BTreeMap::new();
    for branch in branches.as_array().unwrap() {
        let id = branch["id"].as_str().unwrap();
        let row = rows.iter().find(|row| row["branch_id"] == id).unwrap_or_else(|| panic!("no row for {id}"));
        let created = unix_seconds(branch["created_at"].as_str().unwrap());
        let root = branch["parent_id"].is_null();
        let cu = cu_of.get(id).copied().unwrap_or(0.0);
        for metric in ["compute_unit_seconds", "root_branch_bytes_month", "child_branch_bytes_month"] {
            let want = expected(metric, created, root, cu, &bounds);
            assert_eq!(row["usage"]["metrics"][metric].as_i64().unwrap(), want, "{metric} of {}", branch["name"]);
        }
        check_priced(&row["usage"], 0.106, 0.35);
        by_name.insert(branch["name"].as_str().unwrap().to_owned(), row.clone());
    }
    assert!(by_name["evolution-r1/worker-w2"]["usage"]["metrics"]["compute_unit_seconds"].as_i64().unwrap() > 0);
    assert_eq!(by_name["ci-7"]["usage"]["metrics"]["compute_unit_seconds"], 0);
    assert!(by_name["ci-7"]["run"].is_null());
    assert_eq!(
        (by_name["evolution-r1/worker-w1"]["run"].as_str(), by_name["evolution-r1/worker-w1"]["worker"].as_str()),
        (Some("r1"), Some("w1"))
    );

    // Runs: the run's branch plus its workers', summed and priced.
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.iter().map(|run| run["run"].as_str().unwrap()).collect::<Vec<_>>(), ["r1", "r2"]);
    let r1 = &runs[0];
    assert_eq!(r1["branch"], "evolution-r1");
    let workers: Vec<&str> = r1["workers"].as_array().unwrap().iter().map(|w| w["worker"].as_str().unwrap()).collect();
    assert_eq!(workers, ["w1", "w2"]);
    for metric in ["compute_unit_seconds", "child_branch_bytes_month"] {
        let parts: i64 = ["evolution-r1", "evolution-r1/worker-w1", "evolution-r1/worker-w2"]
            .iter()
            .map(|name| by_name[*name]["usage"]["metrics"][metric].as_i64().unwrap())
            .sum();
        assert_eq!(r1["usage"]["metrics"][metric].as_i64().unwrap(), parts, "{metric}");
    }
    check_priced(&r1["usage"], 0.106, 0.35);
    let parts_cost = r1["branch_usage"]["cost"].as_f64().unwrap()
        + r1["workers"].as_array().unwrap().iter().map(|w| w["usage"]["cost"].as_f64().unwrap()).sum::<f64>();
    assert!(close(r1["usage"]["cost"].as_f64().unwrap(), parts_cost), "{r1}");
    assert!(runs[1]["workers"].as_array().unwrap().is_empty());
    assert_eq!(runs[1]["usage"], by_name["evolution-r2"]["usage"]);

    // The project's figures (the invoiced ones) are the sum of its branches'; the total is the project's.
    let project = &report["projects"][0];
    assert_eq!(project["name"], "ops-usage");
    let all: i64 = rows.iter().map(|row| row["usage"]["metrics"]["compute_unit_seconds"].as_i64().unwrap()).sum();
    assert_eq!(project["usage"]["metrics"]["compute_unit_seconds"].as_i64().unwrap(), all);
    assert_eq!(project["usage"]["metrics"]["extra_branches_month"], 0);
    assert_eq!(report["total"], project["usage"]);

    // Other rates are applied as given.
    let scale = neon_json(
        &fake,
        &[
            "usage",
            "--from",
            &from,
            "--to",
            &to,
            "--granularity",
            "monthly",
            "--compute-rate",
            "0.222",
            "--storage-rate",
            "0.5",
        ],
    );
    check_priced(&scale["runs"][0]["usage"], 0.222, 0.5);
    assert_eq!(scale["runs"][0]["usage"]["metrics"], r1["usage"]["metrics"]);

    // The table names runs and workers; `consumption` is the same command.
    let table = neon(&fake, &["usage", "--from", &from, "--to", &to, "--granularity", "monthly"]).success();
    for expected in ["run r1", "worker w1", "worker w2", "run r2", "TOTAL", "$0.106 per CU-hour"] {
        assert!(table.stdout.contains(expected), "{expected} missing from:\n{}", table.stdout);
    }
    let alias = neon_json(&fake, &["consumption", "--from", &from, "--to", &to, "--granularity", "monthly"]);
    assert_eq!(alias["runs"], report["runs"]);
    // The default period (this month so far, daily) answers too.
    assert_eq!(neon_json(&fake, &["usage"])["granularity"], "daily");
}

#[test]
fn usage_refuses_bad_periods_and_rates_before_asking() {
    let fake = FakeNeon::start(&[]);
    for (arguments, expected) in [
        (&["--granularity", "hourly", "--from", "2026-01-01", "--to", "2026-02-01"][..], "168 hours"),
        (&["--from", "2026-03-02", "--to", "2026-03-01"][..], "must be after --from"),
        (&["--from", "last tuesday"][..], "--from"),
        (&["--compute-rate", "-1"][..], "--compute-rate"),
        (&["--granularity", "weekly"][..], "weekly"),
    ] {
        let run = neon(&fake, &[&["usage"], arguments].concat());
        assert_eq!(run.code, Some(2), "{arguments:?}: {run:?}");
        assert!(run.stderr.contains(expected), "{arguments:?}: {}", run.stderr);
    }
    let stranger = neon(&fake, &["usage", "--org", "org-elsewhere"]);
    assert_ne!(stranger.code, Some(0), "{stranger:?}");
    assert!(stranger.stderr.contains("org-elsewhere"), "{}", stranger.stderr);
}

/// The number of `apply_config` operations of the project (one per accepted change).
fn changes(fake: &FakeNeon) -> usize {
    let operations = neon_json(fake, &["operations", "list"]);
    operations.as_array().unwrap().iter().filter(|operation| operation["action"] == "apply_config").count()
}

#[test]
fn endpoint_set_round_trips_and_refuses_bad_input_without_sending_it() {
    let fake = FakeNeon::start(&["--seed-project", "ops-endpoints"]);
    let endpoints = neon_json(&fake, &["endpoints", "list"]);
    let id = endpoints[0]["id"].as_str().unwrap().to_owned();
    let before = changes(&fake);

    let updated =
        neon_json(&fake, &["endpoint", "set", &id, "--min-cu", "0.5", "--max-cu", "2", "--suspend-timeout", "600"]);
    assert_eq!((updated["id"].as_str(), updated["autoscaling_limit_min_cu"].as_f64()), (Some(id.as_str()), Some(0.5)));
    assert_eq!(
        (updated["autoscaling_limit_max_cu"].as_f64(), updated["suspend_timeout_seconds"].as_i64()),
        (Some(2.0), Some(600))
    );
    let shown = neon_json(&fake, &["endpoints", "show", &id]);
    assert_eq!(shown, updated);
    // By branch name, one limit at a time; the other one is kept.
    let raised = neon_json(&fake, &["endpoint", "set", "main", "--max-cu", "4"]);
    assert_eq!(
        (raised["autoscaling_limit_min_cu"].as_f64(), raised["autoscaling_limit_max_cu"].as_f64()),
        (Some(0.5), Some(4.0))
    );
    let never = neon(&fake, &["endpoint", "set", &id, "--suspend-timeout", "-1"]).success();
    assert!(never.stdout.contains("suspend timeout -1 s"), "{}", never.stdout);
    let accepted = changes(&fake);
    assert_eq!(accepted, before + 3);

    for (arguments, expected) in [
        (&["--min-cu", "3", "--max-cu", "1"][..], "exceed the maximum"),
        (&["--min-cu", "0.3"][..], "--min-cu 0.3"),
        (&["--max-cu", "100"][..], "--max-cu 100"),
        (&["--suspend-timeout", "30"][..], "--suspend-timeout 30"),
        (&["--min-cu", "8"][..], "exceed the maximum"),
        (&["--max-cu", "12"][..], "at most 8 CU"),
        (&["--min-cu", "16", "--max-cu", "24"][..], "fixed size"),
        (&[][..], "nothing to change"),
    ] {
        let run = neon(&fake, &[&["endpoint", "set", &id], arguments].concat());
        assert_eq!(run.code, Some(2), "{arguments:?}: {run:?}");
        assert!(run.stderr.contains(expected), "{arguments:?}: {}", run.stderr);
    }
    let after = neon_json(&fake, &["endpoints", "show", &id]);
    assert_eq!(
        (
            after["autoscaling_limit_min_cu"].as_f64(),
            after["autoscaling_limit_max_cu"].as_f64(),
            after["suspend_timeout_seconds"].as_i64()
        ),
        (Some(0.5), Some(4.0), Some(-1)),
        "a refused change changed the compute"
    );
    assert_eq!(changes(&fake), accepted, "a refused change reached the API");

    let missing = neon(&fake, &["endpoint", "set", "ep-nope-404", "--max-cu", "1"]);
    assert_ne!(missing.code, Some(0));
    assert!(missing.stderr.contains("ep-nope-404"), "{}", missing.stderr);
}

#[test]
fn every_resource_lists_and_shows_as_json_and_roles_never_show_passwords() {
    let fake = FakeNeon::start(&["--seed-project", "ops-lists"]);
    neon(&fake, &["branch", "create", "ci-9"]).success();
    let uri = neon(&fake, &["connection-uri", "--database", "neondb", "--role", "neondb_owner"]).success().stdout;
    let password =
        uri.trim().split_once("://").unwrap().1.split_once('@').unwrap().0.split_once(':').unwrap().1.to_owned();
    assert!(password.len() >= 8, "{uri}");
    let mut printed = String::new();
    let mut json = |arguments: &[&str]| {
        let run = neon(&fake, &[arguments, &["--json"]].concat()).success();
        printed.push_str(&run.stdout);
        run.json()
    };

    let projects = json(&["projects", "list"]);
    let project_id = projects[0]["id"].as_str().unwrap().to_owned();
    let project = json(&["projects", "show"]);
    assert_eq!((project["id"].as_str(), project["name"].as_str()), (Some(project_id.as_str()), Some("ops-lists")));
    assert_eq!(json(&["project", "show", &project_id])["id"], project["id"]);

    let main = json(&["branch", "show", "main"]);
    assert_eq!(main["default"], true);
    assert_eq!(json(&["branches", "show", main["id"].as_str().unwrap()])["name"], "main");

    let endpoints = json(&["endpoints", "list"]);
    assert_eq!(endpoints.as_array().unwrap().len(), 2);
    let on_ci = json(&["endpoint", "list", "--branch", "ci-9"]);
    assert_eq!(on_ci.as_array().unwrap().len(), 1);
    let ci_endpoint = on_ci[0]["id"].as_str().unwrap();
    assert_eq!(json(&["endpoints", "show", ci_endpoint])["branch_id"], on_ci[0]["branch_id"]);
    assert_eq!(json(&["endpoints", "show", "ci-9"])["id"], ci_endpoint);

    let databases = json(&["databases", "list"]);
    assert_eq!(databases[0]["name"], "neondb");
    assert_eq!(json(&["db", "show", "neondb", "--branch", "main"])["owner_name"], "neondb_owner");

    let roles = json(&["roles", "list"]);
    assert_eq!(roles[0]["name"], "neondb_owner");
    assert!(roles.as_array().unwrap().iter().all(|role| role.get("password").is_none()), "{roles}");
    let role = json(&["role", "show", "neondb_owner", "--branch", "ci-9"]);
    assert_eq!(role["name"], "neondb_owner");
    assert!(role.get("password").is_none(), "{role}");

    let operations = json(&["operations", "list"]);
    assert!(!operations.as_array().unwrap().is_empty());
    assert_eq!(json(&["operations", "list", "--limit", "1"]).as_array().unwrap().len(), 1);
    let first = operations[0]["id"].as_str().unwrap();
    let operation = json(&["operation", "show", first]);
    assert_eq!(operation["id"].as_str(), Some(first));
    assert!(operation["action"].is_string() && operation["status"].is_string(), "{operation}");

    // The tables print the same resources, without the password either.
    for arguments in [
        &["endpoints", "list"][..],
        &["endpoints", "show", ci_endpoint],
        &["databases", "list", "--branch", "ci-9"],
        &["roles", "list"],
        &["roles", "show", "neondb_owner"],
        &["operations", "list"],
        &["projects", "show"],
        &["branch", "show", "ci-9"],
    ] {
        let run = neon(&fake, arguments).success();
        assert!(!run.stdout.trim().is_empty(), "{arguments:?} printed nothing");
        printed.push_str(&run.stdout);
    }
    assert!(printed.contains(ci_endpoint) && printed.contains("name: neondb_owner"), "{printed}");
    assert!(!printed.contains(&password), "a role's password was printed");

    let unknown = neon(&fake, &["roles", "show", "nobody"]);
    assert_ne!(unknown.code, Some(0));
    assert!(unknown.stderr.contains("nobody"), "{}", unknown.stderr);
}
