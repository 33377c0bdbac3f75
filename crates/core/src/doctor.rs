//! `strata doctor`'s vocabulary: a readiness check's stable id, its
//! severity, its outcome (pass, fail, skip), a one-line finding and, for
//! every failure, a one-line fix; the catalog of every check; and the plan
//! the checks are held against (`--workers`, the round-trip baseline).
//!
//! Adapters run the checks that need their internals and return [`Check`]s;
//! the composition root gathers them; the binary prints them. Nothing here
//! does I/O.
//!
//! ```
//! use strata_core::doctor::{self, Check, DoctorReport, Severity, Status};
//!
//! let checks = vec![
//!     Check::pass(&doctor::PG_REACHABLE, "connected in 2.1 ms"),
//!     Check::fail(&doctor::PG_MIGRATIONS, "schema s is at migration 0; this build needs 3", "run `strata migrate`"),
//! ];
//! let report = DoctorReport::new(checks);
//! assert!(!report.ok(), "a critical check failed");
//! assert_eq!(report.failed(Severity::Critical), 1);
//! assert_eq!(report.checks[1].status, Status::Fail);
//! ```

use std::fmt;
use std::time::Duration;

/// How much a failed check matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Strata cannot work as configured: `strata doctor` exits 1.
    Critical,
    /// Strata works, but slower, costlier or less safely than it should.
    Warning,
    /// A fact worth knowing; never a reason to act by itself.
    Info,
}

impl Severity {
    /// `critical`, `warning` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// As it should be.
    Pass,
    /// Not as it should be: the finding says what, the fix what to do.
    Fail,
    /// Not run: the finding says why (a setting not given, an earlier failure).
    Skip,
}

impl Status {
    /// `pass`, `fail` or `skip`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the catalog: a stable id, the severity of its failure, and
/// what it checks (a few words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckKind {
    /// Stable id, `group.name` (`pg.reachable`): scripts match on it.
    pub id: &'static str,
    /// The severity of a failure, unless the check says otherwise for one
    /// finding (TLS off on a private host is a warning, not critical).
    pub severity: Severity,
    /// What is checked.
    pub what: &'static str,
}

macro_rules! kinds {
    ($($(#[$doc:meta])* $name:ident = $id:literal, $severity:ident, $what:literal;)*) => {
        $($(#[$doc])* pub const $name: CheckKind = CheckKind { id: $id, severity: Severity::$severity, what: $what };)*
        /// Every check, in the order `strata doctor` runs and prints them.
        pub const CATALOG: &[CheckKind] = &[$($name),*];
    };
}

kinds! {
    /// A connection to `DATABASE_URL`, and the real cause when it fails.
    PG_REACHABLE = "pg.reachable", Critical, "PostgreSQL accepts a connection";
    /// The TLS mode in force and whether the session is encrypted.
    PG_TLS = "pg.tls", Critical, "TLS verifies the server (verify-full on Neon)";
    /// A `-pooler` host (or `STRATA_PG_POOLER`) and what transaction mode implies.
    PG_POOLER = "pg.pooler", Info, "pooler (PgBouncer, transaction mode) or direct";
    /// `statement_timeout` and `lock_timeout` in a Strata transaction.
    PG_TIMEOUTS = "pg.timeouts", Warning, "statement and lock timeouts in effect";
    /// `server_version_num`.
    PG_VERSION = "pg.version", Critical, "server version supported";
    /// TimescaleDB hypertable, or the native-partition fallback, and whether it still loads.
    PG_TIMESCALEDB = "pg.timescaledb", Info, "TimescaleDB or the partition fallback";
    /// `max_connections` against the planned workers.
    PG_MAX_CONNECTIONS = "pg.max_connections", Critical, "connections free for the planned workers";
    /// The schema's migrations against this build's.
    PG_MIGRATIONS = "pg.migrations", Critical, "schema migrations current";
    /// Write, read and delete on a scratch table; the bar and task tables lockable.
    PG_ROUND_TRIP = "pg.round_trip", Warning, "write/read/delete round trip within the baseline";
    /// The server's clock against this machine's.
    PG_CLOCK_SKEW = "pg.clock_skew", Warning, "server clock agrees with this machine";
    /// The DuckDB file (or its folder) writable by this user.
    DUCKDB_WRITABLE = "duckdb.writable", Critical, "DuckDB file and folder writable";
    /// No other process holds the DuckDB file's lock.
    DUCKDB_UNLOCKED = "duckdb.unlocked", Critical, "DuckDB file not locked by another process";
    /// The efs root's mount: type and options from the mount table.
    EFS_MOUNT = "efs.mount", Warning, "dataset on NFS v4.1 mounted hard";
    /// A staged write, publish by link, read back and removal under the efs root.
    EFS_PUBLISH = "efs.publish", Critical, "publish round trip on the dataset";
    /// The memory backend keeps nothing.
    MEMORY_VOLATILE = "memory.volatile", Info, "in-memory store (gone when the command ends)";
    /// `NEON_API_KEY` accepted for `NEON_PROJECT_ID`.
    NEON_API_KEY = "neon.api_key", Critical, "Neon API key works for the project";
    /// The read-write computes' autoscaling limits.
    NEON_AUTOSCALING = "neon.autoscaling", Warning, "compute autoscaling 2-8 CU (seeds)";
    /// The read-write computes' suspend timeout.
    NEON_SUSPEND_TIMEOUT = "neon.suspend_timeout", Warning, "compute does not suspend during runs";
    /// The project's branches against the plan's limit.
    NEON_BRANCHES = "neon.branches", Warning, "branch count below the plan's limit";
}

/// The seeds' recommended autoscaling floor for GA workers (2 CU = 2 vCPU, 8 GB).
pub const RECOMMENDED_MIN_CU: f64 = 2.0;
/// The seeds' recommended autoscaling ceiling (8 CU = 8 vCPU, 32 GB).
pub const RECOMMENDED_MAX_CU: f64 = 8.0;
/// The share of the plan's branch limit above which `neon.branches` fails.
pub const BRANCH_LIMIT_SHARE: f64 = 0.8;

/// The result of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Stable id ([`CheckKind::id`]).
    pub id: &'static str,
    /// What is checked ([`CheckKind::what`]).
    pub what: &'static str,
    /// How much a failure matters.
    pub severity: Severity,
    /// Pass, fail or skip.
    pub status: Status,
    /// One line: what was found (for a skip, why it did not run).
    pub finding: String,
    /// One line: what to do; always set for a failure, never for a pass.
    pub fix: Option<String>,
    /// Facts for scripts (`cause`, `latency_ms`, ...), in order.
    pub facts: Vec<(String, String)>,
}

impl Check {
    fn new(kind: &CheckKind, status: Status, finding: String, fix: Option<String>) -> Self {
        Check {
            id: kind.id,
            what: kind.what,
            severity: kind.severity,
            status,
            finding: one_line(&finding),
            fix: fix.map(|fix| one_line(&fix)),
            facts: Vec::new(),
        }
    }

    /// A pass.
    pub fn pass(kind: &CheckKind, finding: impl Into<String>) -> Self {
        Check::new(kind, Status::Pass, finding.into(), None)
    }

    /// A failure, with what was found and what to do.
    pub fn fail(kind: &CheckKind, finding: impl Into<String>, fix: impl Into<String>) -> Self {
        Check::new(kind, Status::Fail, finding.into(), Some(fix.into()))
    }

    /// Not run, and why.
    pub fn skip(kind: &CheckKind, reason: impl Into<String>) -> Self {
        Check::new(kind, Status::Skip, reason.into(), None)
    }

    /// The same with another severity (for a finding that matters more or less than usual).
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// The same with a fact for scripts.
    pub fn with_fact(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.facts.push((key.into(), value.to_string()));
        self
    }

    /// The value of fact `key`.
    pub fn fact(&self, key: &str) -> Option<&str> {
        self.facts.iter().find(|(name, _)| name == key).map(|(_, value)| value.as_str())
    }

    /// Whether this is a failure of `severity`.
    pub fn is_failure(&self, severity: Severity) -> bool {
        self.status == Status::Fail && self.severity == severity
    }
}

/// Keeps a finding or fix on one line (error chains can carry newlines).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What the checks are held against.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The planned number of `strata worker` processes (`--workers N`).
    pub workers: Option<u32>,
    /// The round trip's baseline: slower than this fails `pg.round_trip`.
    pub round_trip_baseline: Duration,
    /// How long one check may take before it fails as timed out.
    pub check_timeout: Duration,
    /// How long a statement may wait for a lock in a check (a held lock
    /// fails the round trip after this, instead of hanging it).
    pub lock_wait: Duration,
    /// The largest clock skew that passes.
    pub max_clock_skew: Duration,
}

impl Default for Plan {
    /// No planned workers; a one-second baseline (the seeds alert above one
    /// second of query response time); 15 s per check; 2 s lock waits; one
    /// second of clock skew.
    fn default() -> Self {
        Plan {
            workers: None,
            round_trip_baseline: Duration::from_secs(1),
            check_timeout: Duration::from_secs(15),
            lock_wait: Duration::from_secs(2),
            max_clock_skew: Duration::from_secs(1),
        }
    }
}

/// Every check that ran, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DoctorReport {
    /// The checks.
    pub checks: Vec<Check>,
}

impl DoctorReport {
    /// A report of `checks`.
    pub fn new(checks: Vec<Check>) -> Self {
        DoctorReport { checks }
    }

    /// True unless a critical check failed (`strata doctor` exits 0).
    pub fn ok(&self) -> bool {
        self.failed(Severity::Critical) == 0
    }

    /// How many checks of `severity` failed.
    pub fn failed(&self, severity: Severity) -> usize {
        self.checks.iter().filter(|check| check.is_failure(severity)).count()
    }

    /// How many checks ended with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|check| check.status == status).count()
    }

    /// The check with `id`, if it ran.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|check| check.id == id)
    }

    /// One line: `no issues found`, or the failures by severity and what to do first.
    pub fn summary(&self) -> String {
        let (passed, skipped) = (self.count(Status::Pass), self.count(Status::Skip));
        let failed = self.count(Status::Fail);
        if failed == 0 {
            return format!("no issues found: {passed} passed, {skipped} skipped");
        }
        let parts: Vec<String> = [Severity::Critical, Severity::Warning, Severity::Info]
            .into_iter()
            .filter_map(|severity| match self.failed(severity) {
                0 => None,
                n => Some(format!("{n} {severity}")),
            })
            .collect();
        let advice = if self.ok() {
            "no critical failure; see the fixes above"
        } else {
            "fix the critical ones before running anything"
        };
        format!(
            "{failed} check{} failed ({}), {passed} passed, {skipped} skipped: {advice}",
            if failed == 1 { "" } else { "s" },
            parts.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_grouped() {
        let mut ids: Vec<&str> = CATALOG.iter().map(|kind| kind.id).collect();
        assert!(ids.iter().all(|id| id.split_once('.').is_some_and(|(group, name)| !group.is_empty()
            && !name.is_empty()
            && id.chars().all(|c| c.is_ascii_lowercase() || c == '.' || c == '_'))));
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CATALOG.len(), "duplicate check ids");
    }

    #[test]
    fn only_critical_failures_fail_the_report_and_findings_stay_on_one_line() {
        let warning = Check::fail(&PG_CLOCK_SKEW, "server clock\n 3 s ahead", "run  chrony");
        assert_eq!((warning.finding.as_str(), warning.fix.as_deref()), ("server clock 3 s ahead", Some("run chrony")));
        let report = DoctorReport::new(vec![warning.clone(), Check::skip(&NEON_API_KEY, "NEON_API_KEY is not set")]);
        assert!(report.ok());
        assert!(
            report.summary().starts_with("1 check failed (1 warning), 0 passed, 1 skipped"),
            "{}",
            report.summary()
        );
        let critical = Check::fail(&PG_TLS, "sslmode=disable", "use verify-full");
        let report = DoctorReport::new(vec![warning, critical.clone().with_severity(Severity::Warning)]);
        assert!(report.ok(), "a critical check downgraded for its finding does not fail the report");
        let report = DoctorReport::new(vec![critical.with_fact("cause", "tls")]);
        assert!(!report.ok());
        assert_eq!(report.check("pg.tls").and_then(|check| check.fact("cause")), Some("tls"));
        assert!(report.summary().contains("fix the critical ones"));
        assert_eq!(DoctorReport::default().summary(), "no issues found: 0 passed, 0 skipped");
    }
}
