//! Unit tests of `strata doctor`'s output (`src/doctor.rs`).

use super::*;
use strata_core::doctor as kinds;

#[test]
fn failures_show_their_fix_under_the_finding() {
    let report = DoctorReport::new(vec![
        Check::pass(&kinds::PG_REACHABLE, "connected in 1.0 ms"),
        Check::fail(&kinds::PG_MIGRATIONS, "schema s is at migration 0 of 3", "run `strata migrate`"),
        Check::fail(&kinds::PG_CLOCK_SKEW, "3 s ahead", "sync the clock"),
    ]);
    let args = crate::backend::args::StorageArgs::default();
    let storage = StorageConfig::from_env_and_flags(&args).expect("default storage");
    let mut out = Vec::new();
    write_report(&mut out, &report, &storage, &Plan::default()).expect("written");
    let text = String::from_utf8(out).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[3].starts_with("pass    critical  pg.reachable"), "{text}");
    assert!(lines[4].starts_with("FAIL    critical  pg.migrations"), "{text}");
    let column = lines[4].find("schema s").expect("the finding");
    assert_eq!(lines[5].find("fix: run `strata migrate`"), Some(column), "{text}");
    assert!(lines[6].starts_with("warn    warning   pg.clock_skew"), "{text}");
    assert!(text.trim_end().ends_with("fix the critical ones before running anything"), "{text}");
    let document = report_json(&report, &storage, &Plan::default());
    assert_eq!(document["ok"], false);
    assert_eq!(document["checks"][1]["fix"], "run `strata migrate`");
    assert_eq!(document["checks"][0]["fix"], Value::Null);
    assert_eq!(document["summary"]["critical_failures"], 1);
}
