//! The PostgreSQL schema as versioned migrations, how they are applied
//! safely by several processes at once, the layout of `ohlcv_bars`
//! (TimescaleDB hypertable or native range partitions created on demand),
//! and the SQL text the adapter builds.
//!
//! # Tables (all in the configured schema, default `public`)
//!
//! | table | key | holds |
//! |---|---|---|
//! | `strata_migrations` | `version` | applied migrations with a checksum of their SQL |
//! | `strata_meta` | `key` | facts such as the bar layout (`hypertable` / `partitioned`) and why it was chosen |
//! | `ohlcv_bars` | `(symbol, ts)` | bars; `symbol` is `COLLATE "C"` so results order by bytes |
//! | `runs`, `generations`, `individuals`, `tasks`, `workers`, `generation_stats` | | evolution state |
//! | `coordinator_leases` | `run_id` | the coordinator role of a run: holder, fencing token (sequence `coordinator_tokens`), expiry (migration 2) |
//! | `fitness_cache` | `key` | the fitness cache: fitness and result of an evaluation under the caller's cache key (migration 3) |
//!
//! # Applying migrations
//!
//! Everything happens in ONE transaction that first takes
//! `pg_advisory_xact_lock` on a key derived from the schema name: a second
//! process starting at the same moment waits for the lock, then finds every
//! migration recorded and applies nothing. When the schema has migrations to
//! apply, the transaction then also takes a database-wide advisory lock (one
//! fixed key; advisory locks are per database), because some steps are not
//! per schema: `CREATE EXTENSION timescaledb` writes `pg_extension`, and two
//! first starts on different schemas would otherwise both try to create it
//! (one fails with `23505` on `pg_extension_name_index`). Under the database
//! lock the second sees the first's committed extension and skips it; a
//! `23505` from a creator outside Strata is retried in a savepoint. The
//! order is always schema lock, then database lock, and nobody asks for a
//! schema lock while holding the database lock, so the two cannot deadlock;
//! a schema that is up to date never touches the database lock. Both locks
//! are transaction-scoped, so this also works through PgBouncer in
//! transaction mode (Neon's pooler), where session advisory locks do not.
//! PostgreSQL DDL is transactional: a migration that fails leaves nothing
//! behind. A recorded migration whose checksum differs from this build's
//! SQL, or a database newer than this build, stops the store from opening.
//!
//! # Layout: TimescaleDB only when the server can load it
//!
//! The first migration of a schema decides from what the server reports
//! ([`TimescaleFacts`]; the decision is the pure [`choose_layout`]):
//!
//! - `STRATA_PG_TIMESCALEDB=false`: native partitions.
//! - `shared_preload_libraries` lists `timescaledb`, and the extension is
//!   installed or available: a hypertable. The extension is created inside
//!   a savepoint; if that fails (no privilege, say), native partitions, with
//!   the error as the reason.
//! - Available (or even installed) but not preloaded: native partitions.
//!   Available is not loadable: `CREATE EXTENSION` of a library that is not
//!   preloaded fails with a FATAL error that drops the connection
//!   (`extension "timescaledb" must be preloaded`), which no savepoint
//!   survives, so it is never attempted.
//! - `shared_preload_libraries` hidden from this role (reading it needs
//!   `pg_read_all_settings`; `pg_settings` then omits the row): a hypertable
//!   only when the extension is already installed in this database (its
//!   creation succeeded, so it loads), otherwise native partitions.
//!
//! The layout and its reason are recorded in `strata_meta` (`bars_layout`,
//! `bars_layout_reason`) and shown by `strata migrate` and `strata health`.
//! An existing table keeps its layout whatever the server offers later.
//!
//! # Chunk interval: 90 days unless `STRATA_PG_CHUNK_INTERVAL` says otherwise
//!
//! TimescaleDB cuts a hypertable into chunks of one fixed length, aligned to
//! the Unix epoch. Every chunk is a table with its own primary-key index, and
//! a statement locks every chunk it may touch, so the number of chunks is
//! what hurts (see the locks below), while a chunk too large for memory is
//! what TimescaleDB's sizing advice warns about. Chunks for the shipped daily
//! sample (^GSPC, 1999-01-04 to 2018-12-31), for 64 years of daily bars (IBM
//! since 1962), for 10 years of minute bars (390 a trading day), and rows per
//! chunk of minute bars for 500 symbols (390 × 252 / 365.25 = 269 a calendar
//! day and symbol):
//!
//! | interval | sample | 64 y daily | 10 y minute | rows per chunk, 500 symbols of minute bars |
//! |---|---:|---:|---:|---:|
//! | 1 day (the seeds') | 5,031 | 16,128 | 2,520 | 195,000 |
//! | 7 days (TimescaleDB's) | 1,044 | 3,340 | 522 | 0.94 M |
//! | 30 days | 244 | 780 | 123 | 4.0 M |
//! | **90 days** | **82** | **261** | **42** | **12.1 M** |
//! | 365 days | 21 | 66 | 11 | 49 M |
//!
//! 90 days keeps chunk counts in the low hundreds for daily bars over decades
//! and under a hundred for minute bars over ten years (with 1-day chunks only
//! days with bars get one, hence 5,031 for the sample). The first ingest of
//! the sample creates 82 chunks, about 4 × 82 + 8 = 336 locks (the seeds'
//! 1 day needed about 20,000 and failed with `out of shared memory`), and a
//! 64-year history fits one write (4 × 261 + 8 = 1,052 of the 1,600 a write
//! may take; 30 days would need 3,128). At 12.1 M rows a 90-day chunk of 500
//! symbols' minute bars is about 1.3 GB of rows and 0.5 GB of primary-key
//! index, within a quarter of the memory of an 8 GB (2 CU) compute; ten
//! symbols make 35 MB. Smaller computes holding hundreds of symbols of minute
//! bars want `STRATA_PG_CHUNK_INTERVAL=7d` to `30d`; daily bars only can take
//! `365d`. A new hypertable gets the configured interval (default 90 days);
//! an existing one keeps its interval unless `STRATA_PG_CHUNK_INTERVAL` is
//! set, which then applies to chunks created from then on
//! (`set_chunk_time_interval`). The hypertable is created without
//! TimescaleDB's extra `(ts DESC)` index: the primary key `(symbol, ts)`
//! serves every query, as on native partitions.
//!
//! # Locks: one write takes at most a quarter of the default lock table
//!
//! PostgreSQL's shared lock table has room for `max_locks_per_transaction`
//! locked objects per connection slot: 64 × 100 = 6,400 with default
//! settings, counting client connections only (PostgreSQL 15 adds slots for
//! its background processes, 7,808 in all), shared by every session; a
//! transaction that needs one more when it is full fails with `out of shared
//! memory` (`53200`). A write locks the parent table, its index and the
//! staging table; every partition or chunk holding rows of the batch, with
//! its primary-key index; and every existing one its time span passes,
//! because the overlap probe scans the span (plan-time pruning spares the
//! rest). Measured with `pg_locks` on PostgreSQL 15: the 5,031 ^GSPC rows
//! over 240 monthly partitions lock 483 relations; creating a partition locks
//! 4 new ones (table, primary-key index, TOAST table and its index). A write
//! may take [`WRITE_LOCK_BUDGET`] = 6,400 / 4 = 1,600, so that a few such
//! writes and everything else fit at once: 796 partitions with rows (2 locks
//! each, the partitions being created beforehand) or 398 chunks (4 each,
//! counting the chunks the write creates; estimated, since TimescaleDB could
//! not be run where this was written); a partition or chunk passed without
//! rows costs 2 (for a hypertable every chunk in the span is assumed to
//! exist). A batch over that is refused as invalid input before anything is
//! written, with what to change: smaller batches or a coarser partition or
//! chunk interval. Splitting it into several transactions would break the
//! all-or-nothing promise of a batch, so the store never does. Missing
//! partitions are created before the write, in their own transactions of at
//! most [`PARTITIONS_PER_TRANSACTION`] (idempotent DDL: a failure in between
//! leaves only empty partitions). With the default monthly partitions one
//! batch of daily bars may cover 66 years. Reads that are not limited in time
//! (`summary`, a digest of everything) lock every partition, 2 each: keep the
//! total in the hundreds, which monthly partitions and 90-day chunks do for
//! daily data since 1962.

use std::fmt::Write as _;

use chrono::{Datelike, NaiveDate};
use strata_core::bar::{MAX_TIMESTAMP, MIN_TIMESTAMP};
use strata_core::{BarQuery, DigestQuery, Order, Symbol, Timestamp};

use crate::config::PartitionInterval;

/// How `ohlcv_bars` is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarLayout {
    /// A TimescaleDB hypertable.
    Hypertable,
    /// Native range partitioning by `ts`, one partition per interval, created by writes.
    Partitioned(PartitionInterval),
}

impl BarLayout {
    /// The value stored in `strata_meta`.
    pub fn as_meta(self) -> String {
        match self {
            BarLayout::Hypertable => "hypertable".to_string(),
            BarLayout::Partitioned(interval) => format!("partitioned:{interval}"),
        }
    }

    /// Parses the stored value.
    pub fn from_meta(text: &str) -> Option<Self> {
        match text {
            "hypertable" => Some(BarLayout::Hypertable),
            _ => text.strip_prefix("partitioned:").and_then(|i| i.parse().ok()).map(BarLayout::Partitioned),
        }
    }

    /// For `strata health`.
    pub fn describe(self) -> String {
        match self {
            BarLayout::Hypertable => "TimescaleDB hypertable".to_string(),
            BarLayout::Partitioned(interval) => format!("native range partitions, one per {interval}"),
        }
    }
}

/// What the server says about TimescaleDB, read by [`TIMESCALE_FACTS_SQL`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimescaleFacts {
    /// `shared_preload_libraries`, or `None` when this role may not read it
    /// (it needs `pg_read_all_settings`; `pg_settings` then hides the row).
    pub preload_libraries: Option<String>,
    /// The version of the extension installed in this database, if it is.
    pub installed_version: Option<String>,
    /// Whether the server has the extension's files (`pg_available_extensions`).
    pub available: bool,
}

impl TimescaleFacts {
    /// Whether `shared_preload_libraries` lists `timescaledb` (`None`: cannot tell).
    pub fn preloaded(&self) -> Option<bool> {
        self.preload_libraries.as_deref().map(lists_timescaledb)
    }

    /// One line for `strata health`.
    pub fn describe(&self) -> String {
        let preload = match self.preloaded() {
            Some(true) => "preloaded",
            Some(false) => "not in shared_preload_libraries",
            None => "shared_preload_libraries not visible to this role",
        };
        match (&self.installed_version, self.available) {
            (Some(version), _) => format!("installed {version}, {preload}"),
            (None, true) => format!("available, not installed, {preload}"),
            (None, false) if self.preloaded() == Some(true) => {
                "preloaded, but its extension files are missing".to_string()
            }
            (None, false) => "not available on this server".to_string(),
        }
    }
}

/// Whether a `shared_preload_libraries` value lists TimescaleDB's loader
/// (`timescaledb`, also written `"timescaledb"`, `$libdir/timescaledb` or
/// `timescaledb.so`).
fn lists_timescaledb(libraries: &str) -> bool {
    libraries.split(',').any(|entry| {
        let entry = entry.trim().trim_matches('"').trim();
        let file = entry.rsplit(['/', '\\']).next().unwrap_or(entry);
        let name = file.strip_suffix(".so").or_else(|| file.strip_suffix(".dylib")).unwrap_or(file);
        name.eq_ignore_ascii_case("timescaledb")
    })
}

/// The layout for a new `ohlcv_bars` and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutChoice {
    /// The layout.
    pub layout: BarLayout,
    /// Why, for `strata health` and `strata migrate`.
    pub reason: String,
    /// Whether `CREATE EXTENSION timescaledb` must run first.
    pub create_extension: bool,
}

/// Chooses the layout of a new bar table from the server's facts: a
/// hypertable only when TimescaleDB is enabled and can load (see the module
/// docs), native partitions of `partition` otherwise. Pure, so every case is
/// unit-tested.
pub fn choose_layout(enabled: bool, facts: &TimescaleFacts, partition: PartitionInterval) -> LayoutChoice {
    let partitions =
        |reason: String| LayoutChoice { layout: BarLayout::Partitioned(partition), reason, create_extension: false };
    if !enabled {
        return partitions("disabled by STRATA_PG_TIMESCALEDB=false".to_string());
    }
    let preload_hint = "preload it (shared_preload_libraries = 'timescaledb', then restart the server) to use \
                        hypertables, or set STRATA_PG_TIMESCALEDB=false to keep partitions without this note";
    match (facts.preloaded(), &facts.installed_version, facts.available) {
        (Some(true), Some(version), _) => LayoutChoice {
            layout: BarLayout::Hypertable,
            reason: format!("timescaledb {version} is preloaded and installed"),
            create_extension: false,
        },
        (Some(true), None, true) => LayoutChoice {
            layout: BarLayout::Hypertable,
            reason: "timescaledb is preloaded and available; the extension is created in this database".to_string(),
            create_extension: true,
        },
        (Some(true), None, false) => partitions(
            "timescaledb is in shared_preload_libraries but its extension files are missing \
             (not in pg_available_extensions)"
                .to_string(),
        ),
        (Some(false), Some(version), _) => partitions(format!(
            "timescaledb {version} is installed but not in shared_preload_libraries, so it cannot load; {preload_hint}"
        )),
        (Some(false), None, true) => {
            partitions(format!("timescaledb is available but not in shared_preload_libraries; {preload_hint}"))
        }
        (None, Some(version), _) => LayoutChoice {
            layout: BarLayout::Hypertable,
            reason: format!(
                "timescaledb {version} is installed in this database (shared_preload_libraries is not visible \
                 to this role)"
            ),
            create_extension: false,
        },
        (None, None, true) => partitions(
            "timescaledb is available, but this role cannot read shared_preload_libraries (that needs \
             pg_read_all_settings) to tell whether it is preloaded, and creating an extension that is not \
             preloaded drops the connection; to use hypertables, run CREATE EXTENSION timescaledb in this \
             database as a role that can, before the first migration"
                .to_string(),
        ),
        (_, None, false) => partitions("timescaledb is not available on this server".to_string()),
    }
}

/// Reads [`TimescaleFacts`]: (`shared_preload_libraries` or NULL when
/// hidden, installed version or NULL, available).
pub const TIMESCALE_FACTS_SQL: &str = "SELECT
        (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'),
        (SELECT extversion::text FROM pg_extension WHERE extname = 'timescaledb'),
        EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')";

/// Creates the extension (run in a savepoint, under the database-wide lock).
pub(crate) const CREATE_TIMESCALEDB_SQL: &str = "CREATE EXTENSION IF NOT EXISTS timescaledb";

/// The chunk interval of the hypertable `ohlcv_bars` of schema `$1`, in microseconds.
pub(crate) const CHUNK_INTERVAL_SQL: &str = "SELECT (extract(epoch FROM time_interval) * 1000000)::bigint
     FROM timescaledb_information.dimensions
     WHERE hypertable_schema = $1 AND hypertable_name = 'ohlcv_bars' AND column_name = 'ts'";

/// Sets the interval of chunks created from now on.
pub(crate) fn set_chunk_interval_sql(schema: &str, interval_secs: u64) -> String {
    format!("SELECT set_chunk_time_interval('{schema}.ohlcv_bars', INTERVAL '{interval_secs} seconds')")
}

/// Lock-table slots of a server with default settings: `max_locks_per_transaction`
/// (64) × (`max_connections` (100) + `max_prepared_transactions` (0)); background
/// processes add more, which this leaves as slack.
pub const DEFAULT_LOCK_TABLE: u64 = 64 * 100;

/// The most lock-table slots one write may need: a quarter of the default table.
pub const WRITE_LOCK_BUDGET: u64 = DEFAULT_LOCK_TABLE / 4;

/// Relations a write locks besides its partitions or chunks (the parent table
/// and its index, the staging table, catalogs), rounded up.
const WRITE_BASE_LOCKS: u64 = 8;

/// Relations a write locks per partition it touches: the partition and its
/// primary-key index (measured with `pg_locks`; partitions are created
/// beforehand, in their own transactions).
const LOCKS_PER_PARTITION: u64 = 2;

/// Relations a write locks per chunk that holds rows of the batch, counting
/// chunks the write creates: table, primary-key index, TOAST table and its
/// index (estimated from a native partition's creation).
const LOCKS_PER_CHUNK: u64 = 4;

/// Relations a write locks per existing partition or chunk inside its time
/// span that holds none of its rows (the overlap probe's scan locks it and
/// its primary-key index).
const LOCKS_PER_PASSED_PERIOD: u64 = 2;

/// Partitions created per transaction (4 locks each, plus the parent's).
pub(crate) const PARTITIONS_PER_TRANSACTION: usize = 64;

/// The partitions or chunks one write touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct WriteReach {
    /// Those holding rows of the batch (chunks among them may be created by the write).
    pub(crate) with_rows: u64,
    /// Existing ones inside the batch's time span that hold none of its rows.
    pub(crate) passed: u64,
}

/// The relations a write with this reach locks, as counted above.
pub(crate) fn write_locks(layout: BarLayout, reach: WriteReach) -> u64 {
    let per_period = match layout {
        BarLayout::Hypertable => LOCKS_PER_CHUNK,
        BarLayout::Partitioned(_) => LOCKS_PER_PARTITION,
    };
    WRITE_BASE_LOCKS
        .saturating_add(per_period.saturating_mul(reach.with_rows))
        .saturating_add(LOCKS_PER_PASSED_PERIOD.saturating_mul(reach.passed))
}

/// How many partitions or chunks with rows one write may touch.
pub(crate) fn max_periods_per_write(layout: BarLayout) -> u64 {
    let per_period = match layout {
        BarLayout::Hypertable => LOCKS_PER_CHUNK,
        BarLayout::Partitioned(_) => LOCKS_PER_PARTITION,
    };
    (WRITE_LOCK_BUDGET - WRITE_BASE_LOCKS) / per_period
}

/// The partition (its start) or chunk (its number since the epoch, chunks
/// being `chunk_micros` long and aligned to the epoch as TimescaleDB aligns
/// them) that holds `timestamp`.
pub(crate) fn period_key(layout: BarLayout, chunk_micros: i64, timestamp: i64) -> i64 {
    match layout {
        BarLayout::Hypertable => timestamp.div_euclid(chunk_micros.max(1)),
        BarLayout::Partitioned(interval) => period_start(interval, timestamp),
    }
}

/// How many partitions (native) or chunks (hypertable, `chunk_micros` long,
/// aligned to the epoch) the span `[low, high]` (epoch microseconds) covers.
pub(crate) fn periods_spanned(layout: BarLayout, chunk_micros: i64, low: i64, high: i64) -> u64 {
    if high < low {
        return 0;
    }
    let steps = match layout {
        BarLayout::Hypertable => {
            let chunk = chunk_micros.max(1);
            high.div_euclid(chunk) - low.div_euclid(chunk)
        }
        BarLayout::Partitioned(interval) => {
            let (first, last) = (Timestamp(low).day(), Timestamp(high).day());
            match interval {
                PartitionInterval::Day => (last - first).num_days(),
                PartitionInterval::Week => {
                    (period_start(interval, high) - period_start(interval, low)) / (7 * Timestamp::MICROS_PER_DAY)
                }
                PartitionInterval::Month => {
                    let month = |date: NaiveDate| i64::from(date.year()) * 12 + i64::from(date.month0());
                    month(last) - month(first)
                }
                PartitionInterval::Year => i64::from(last.year() - first.year()),
            }
        }
    };
    steps.unsigned_abs() + 1
}

/// The adjective of a partition interval: daily, weekly, monthly, yearly.
fn partition_adjective(interval: PartitionInterval) -> &'static str {
    match interval {
        PartitionInterval::Day => "daily",
        PartitionInterval::Week => "weekly",
        PartitionInterval::Month => "monthly",
        PartitionInterval::Year => "yearly",
    }
}

/// The refusal of a write over `[low, high]` that would lock more than
/// [`WRITE_LOCK_BUDGET`] relations, saying what to change; `None` when it fits.
pub(crate) fn write_span_problem(
    layout: BarLayout,
    chunk_interval: std::time::Duration,
    low: i64,
    high: i64,
    reach: WriteReach,
) -> Option<String> {
    let locks = write_locks(layout, reach);
    if locks <= WRITE_LOCK_BUDGET {
        return None;
    }
    let most = max_periods_per_write(layout);
    let (first, last) = (Timestamp(low).day(), Timestamp(high).day());
    let touched = reach.with_rows.saturating_add(reach.passed);
    let (what, fix) = match layout {
        BarLayout::Partitioned(interval) => {
            let coarser = match interval {
                PartitionInterval::Year => String::new(),
                _ => ", or give a new schema coarser partitions (STRATA_PG_PARTITION=year)".to_string(),
            };
            (format!("{touched} {} partitions", partition_adjective(interval)), coarser)
        }
        BarLayout::Hypertable => {
            let span_days = (high - low).div_euclid(Timestamp::MICROS_PER_DAY).max(1) as u64;
            let suggested = span_days.div_ceil(most.saturating_sub(1).max(1)).div_ceil(30).max(1) * 30;
            (
                format!("{touched} TimescaleDB chunks of {}", crate::config::describe_chunk_interval(chunk_interval)),
                format!(
                    ", or lengthen the chunks (STRATA_PG_CHUNK_INTERVAL={suggested}d or more; it applies to chunks \
                     created from then on)"
                ),
            )
        }
    };
    Some(format!(
        "this batch touches {what} ({first} to {last}): its transaction would lock about {locks} relations, more \
         than the {WRITE_LOCK_BUDGET} one write may take (a quarter of the {DEFAULT_LOCK_TABLE} lock slots of a \
         server with default settings, max_locks_per_transaction 64 × max_connections 100; at most {most} \
         partitions or chunks with rows), and splitting a batch over several transactions would break its \
         all-or-nothing promise. Write it in batches that cover fewer days (strata ingest --batch-rows){fix}"
    ))
}

/// The advisory-lock key that serialises the database-wide steps of
/// migrations (extensions). Advisory locks are per database, so one fixed key
/// is a database-wide lock.
pub fn database_migration_lock_key() -> i64 {
    let hash = strata_core::digest::row_hash("strata-migrations:database-wide");
    hash as i64
}

/// One migration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    /// Version (1, 2, ...).
    pub(crate) version: i32,
    /// Short name.
    pub(crate) name: &'static str,
    /// SQL with `{schema}` for the schema name; `{bars}` for the bar table
    /// DDL that depends on the layout.
    pub(crate) sql: &'static str,
}

/// Every migration of this build, in order.
pub(crate) const MIGRATIONS: [Migration; 3] = [
    Migration { version: 1, name: "bars and evolution state", sql: V1 },
    Migration { version: 2, name: "coordinator leases", sql: V2 },
    Migration { version: 3, name: "fitness cache", sql: V3 },
];

/// The newest version this build knows.
pub(crate) fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

const V1: &str = r#"
{bars}

CREATE TABLE {schema}.runs (
    id              text PRIMARY KEY,
    strategy        text NOT NULL,
    seed            bigint NOT NULL,
    population_size integer NOT NULL,
    generations     integer NOT NULL,
    config          text NOT NULL,
    status          text NOT NULL,
    created_order   bigserial NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE {schema}.generations (
    run_id     text NOT NULL REFERENCES {schema}.runs (id) ON DELETE CASCADE,
    generation integer NOT NULL,
    size       integer NOT NULL,
    saved_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, generation)
);

CREATE TABLE {schema}.individuals (
    run_id     text NOT NULL,
    generation integer NOT NULL,
    individual integer NOT NULL,
    genome     text NOT NULL,
    PRIMARY KEY (run_id, generation, individual),
    FOREIGN KEY (run_id, generation) REFERENCES {schema}.generations (run_id, generation) ON DELETE CASCADE
);

CREATE SEQUENCE {schema}.fencing_tokens;

CREATE TABLE {schema}.tasks (
    run_id           text NOT NULL REFERENCES {schema}.runs (id) ON DELETE CASCADE,
    generation       integer NOT NULL,
    individual       integer NOT NULL,
    payload          text NOT NULL,
    state            text NOT NULL CHECK (state IN ('pending', 'leased', 'done', 'parked')),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    token            bigint NOT NULL DEFAULT 0,
    worker           text,
    lease_expires_at timestamptz,
    fitness          double precision,
    result           text,
    error            text,
    PRIMARY KEY (run_id, generation, individual)
);
-- Leasing scans only open tasks, in (generation, individual) order.
CREATE INDEX tasks_open ON {schema}.tasks (generation, individual, run_id) WHERE state IN ('pending', 'leased');
CREATE INDEX tasks_by_worker ON {schema}.tasks (worker) WHERE state = 'leased';

CREATE TABLE {schema}.workers (
    id            text PRIMARY KEY,
    hostname      text NOT NULL,
    pid           bigint NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    last_seen     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE {schema}.generation_stats (
    run_id     text NOT NULL REFERENCES {schema}.runs (id) ON DELETE CASCADE,
    generation integer NOT NULL,
    best       double precision NOT NULL,
    mean       double precision NOT NULL,
    std        double precision NOT NULL,
    diversity  double precision NOT NULL,
    evaluated  integer NOT NULL,
    PRIMARY KEY (run_id, generation)
);
"#;

/// The coordinator role becomes its own fenced lease; the companion runs
/// `coord:<run>` that used to hold it as a task go (their tasks, generations,
/// individuals and statistics cascade).
const V2: &str = r#"
CREATE SEQUENCE {schema}.coordinator_tokens;

CREATE TABLE {schema}.coordinator_leases (
    run_id     text PRIMARY KEY REFERENCES {schema}.runs (id) ON DELETE CASCADE,
    holder     text NOT NULL,
    token      bigint NOT NULL,
    expires_at timestamptz NOT NULL
);

DELETE FROM {schema}.runs WHERE id LIKE 'coord:%';
"#;

/// The durable fitness cache: an evaluation's fitness and result under the
/// caller's cache key, upserted with the completion that produced it.
const V3: &str = r#"
CREATE TABLE {schema}.fitness_cache (
    key        text PRIMARY KEY,
    fitness    double precision NOT NULL,
    result     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"#;

/// The columns of `ohlcv_bars`, shared by both layouts and the staging table.
const BAR_COLUMNS_DDL: &str = r#"
    symbol      text COLLATE "C" NOT NULL,
    ts          timestamptz NOT NULL,
    open        double precision NOT NULL,
    high        double precision NOT NULL,
    low         double precision NOT NULL,
    close       double precision NOT NULL,
    volume      double precision NOT NULL,
    vwap        double precision,
    trade_count bigint"#;

/// The DDL of `ohlcv_bars` for `layout`.
pub(crate) fn bars_ddl(schema: &str, layout: BarLayout, chunk_interval_secs: u64) -> String {
    match layout {
        // The extension is created beforehand, under the database-wide lock (see the module docs).
        BarLayout::Hypertable => format!(
            "CREATE TABLE {schema}.ohlcv_bars ({BAR_COLUMNS_DDL},\n    PRIMARY KEY (symbol, ts)\n);\n\
             SELECT create_hypertable('{schema}.ohlcv_bars', 'ts', \
             chunk_time_interval => INTERVAL '{chunk_interval_secs} seconds', \
             create_default_indexes => FALSE, if_not_exists => TRUE);"
        ),
        BarLayout::Partitioned(_) => format!(
            "CREATE TABLE {schema}.ohlcv_bars ({BAR_COLUMNS_DDL},\n    PRIMARY KEY (symbol, ts)\n) PARTITION BY RANGE (ts);"
        ),
    }
}

/// The SQL of one migration for this schema and layout.
pub(crate) fn migration_sql(
    migration: &Migration,
    schema: &str,
    layout: BarLayout,
    chunk_interval_secs: u64,
) -> String {
    migration.sql.replace("{bars}", &bars_ddl(schema, layout, chunk_interval_secs)).replace("{schema}", schema)
}

/// A checksum of a migration's SQL (layout-independent), to notice edited migrations.
pub(crate) fn checksum(migration: &Migration) -> String {
    let digest = strata_core::digest::row_hash(migration.sql);
    format!("{digest:016x}")
}

/// The bookkeeping tables; created inside the migration transaction.
pub(crate) fn bookkeeping_ddl(schema: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.strata_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             checksum   text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );
         CREATE TABLE IF NOT EXISTS {schema}.strata_meta (key text PRIMARY KEY, value text NOT NULL);"
    )
}

/// The advisory-lock key that serialises migrations of one schema.
pub(crate) fn migration_lock_key(schema: &str) -> i64 {
    // A fixed 64-bit key: same in every process, different per schema.
    let hash = strata_core::digest::row_hash(&format!("strata-migrations:{schema}"));
    hash as i64
}

/// The advisory-lock key that serialises creating partitions of one schema.
pub(crate) fn partition_lock_key(schema: &str) -> i64 {
    let hash = strata_core::digest::row_hash(&format!("strata-partitions:{schema}"));
    hash as i64
}

/// The start of the partition period holding `timestamp` (UTC), as epoch microseconds.
pub(crate) fn period_start(interval: PartitionInterval, timestamp: i64) -> i64 {
    let day = timestamp.div_euclid(Timestamp::MICROS_PER_DAY);
    let date = Timestamp(day * Timestamp::MICROS_PER_DAY).day();
    let start = match interval {
        PartitionInterval::Day => date,
        PartitionInterval::Week => date - chrono::Days::new(u64::from(date.weekday().num_days_from_monday())),
        PartitionInterval::Month => NaiveDate::from_ymd_opt(date.year(), date.month(), 1).unwrap_or(date),
        PartitionInterval::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap_or(date),
    };
    Timestamp::from_date(start).micros()
}

/// The end (exclusive) of the period starting at `start`.
pub(crate) fn period_end(interval: PartitionInterval, start: i64) -> i64 {
    let date = Timestamp(start).day();
    let end = match interval {
        PartitionInterval::Day => date + chrono::Days::new(1),
        PartitionInterval::Week => date + chrono::Days::new(7),
        PartitionInterval::Month => date.checked_add_months(chrono::Months::new(1)).unwrap_or(date),
        PartitionInterval::Year => date.checked_add_months(chrono::Months::new(12)).unwrap_or(date),
    };
    Timestamp::from_date(end).micros()
}

/// `CREATE TABLE IF NOT EXISTS` of the partition for the period starting at `start`.
pub(crate) fn create_partition_sql(schema: &str, interval: PartitionInterval, start: i64) -> String {
    let end = period_end(interval, start);
    let name = format!("ohlcv_bars_p{}", Timestamp(start).day().format("%Y%m%d"));
    format!(
        "CREATE TABLE IF NOT EXISTS {schema}.{name} PARTITION OF {schema}.ohlcv_bars FOR VALUES FROM ({}) TO ({})",
        timestamp_literal(start),
        timestamp_literal(end)
    )
}

/// Lists the names of existing `ohlcv_bars_pYYYYMMDD` partitions; bind the schema name as `$1`.
pub(crate) const LIST_PARTITIONS: &str = "SELECT c.relname::text
     FROM pg_inherits i
     JOIN pg_class c ON c.oid = i.inhrelid
     JOIN pg_class p ON p.oid = i.inhparent
     JOIN pg_namespace n ON n.oid = p.relnamespace
     WHERE n.nspname = $1 AND p.relname = 'ohlcv_bars'";

/// The period start encoded in a partition name, if it is one of ours.
pub(crate) fn partition_start(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("ohlcv_bars_p")?;
    let date = NaiveDate::parse_from_str(digits, "%Y%m%d").ok()?;
    Some(Timestamp::from_date(date).micros())
}

/// An exact `timestamptz` literal for epoch microseconds (ISO text, UTC).
pub(crate) fn timestamp_literal(micros: i64) -> String {
    let clamped = micros.clamp(MIN_TIMESTAMP.micros(), MAX_TIMESTAMP.micros());
    match Timestamp(clamped).to_datetime() {
        Some(time) => format!("'{}'::timestamptz", time.format("%Y-%m-%d %H:%M:%S%.6f+00")),
        None => "'-infinity'::timestamptz".to_string(),
    }
}

/// A quoted SQL string literal (symbols are validated to a safe set; quoting is belt and braces).
pub(crate) fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// SQL that turns a float8 column into its canonical bit-pattern text
/// (`value + 0.0` so `-0.0` encodes as `0.0`): `float8send` gives the 8
/// big-endian bytes, read back as a signed 64-bit integer.
fn float_bits(column: &str) -> String {
    format!("(('x' || encode(float8send({column} + 0.0), 'hex'))::bit(64)::bigint)::text")
}

/// `WHERE` text for symbols and a half-open range (values spliced as literals:
/// `COPY` takes no parameters; symbols are validated, timestamps are integers).
fn bar_filter(symbols: &[Symbol], start: Option<Timestamp>, end: Option<Timestamp>) -> String {
    let mut conditions = Vec::new();
    match symbols {
        [] => {}
        [one] => conditions.push(format!("symbol = {}", string_literal(one.as_str()))),
        many => {
            let list: Vec<String> = many.iter().map(|s| string_literal(s.as_str())).collect();
            conditions.push(format!("symbol IN ({})", list.join(", ")));
        }
    }
    if let Some(start) = start {
        conditions.push(format!("ts >= {}", timestamp_literal(start.micros())));
    }
    if let Some(end) = end {
        conditions.push(format!("ts < {}", timestamp_literal(end.micros())));
    }
    if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) }
}

/// The columns in canonical order.
const SELECT_COLUMNS: &str = "symbol, ts, open, high, low, close, volume, vwap, trade_count";

/// The `COPY (SELECT ...) TO STDOUT (FORMAT binary)` for a bar query.
pub(crate) fn query_copy_sql(schema: &str, query: &BarQuery) -> String {
    let direction = match query.order {
        Order::Ascending => "ASC",
        Order::Descending => "DESC",
    };
    let select = match query.limit {
        None => {
            let filter = bar_filter(&query.symbols, query.start, query.end);
            format!("SELECT {SELECT_COLUMNS} FROM {schema}.ohlcv_bars{filter} ORDER BY symbol, ts {direction}")
        }
        Some(limit) => {
            // One index range scan per symbol (LATERAL ... LIMIT), symbols from the query
            // or, when none were named, from a loose index scan over the key.
            let symbols = if query.symbols.is_empty() {
                format!(
                    "WITH RECURSIVE s(symbol) AS (
                        (SELECT symbol FROM {schema}.ohlcv_bars ORDER BY symbol LIMIT 1)
                        UNION ALL
                        SELECT (SELECT b.symbol FROM {schema}.ohlcv_bars b WHERE b.symbol > s.symbol
                                ORDER BY b.symbol LIMIT 1)
                        FROM s WHERE s.symbol IS NOT NULL)
                     SELECT symbol FROM s WHERE symbol IS NOT NULL"
                )
            } else {
                let list: Vec<String> =
                    query.symbols.iter().map(|s| format!("({} COLLATE \"C\")", string_literal(s.as_str()))).collect();
                format!("VALUES {}", list.join(", "))
            };
            let mut time_filter = String::new();
            if let Some(start) = query.start {
                let _ = write!(time_filter, " AND b.ts >= {}", timestamp_literal(start.micros()));
            }
            if let Some(end) = query.end {
                let _ = write!(time_filter, " AND b.ts < {}", timestamp_literal(end.micros()));
            }
            format!(
                "SELECT x.* FROM ({symbols}) AS wanted(symbol)
                 CROSS JOIN LATERAL (
                    SELECT b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count
                    FROM {schema}.ohlcv_bars b
                    WHERE b.symbol = wanted.symbol{time_filter}
                    ORDER BY b.ts {direction} LIMIT {limit}) AS x
                 ORDER BY x.symbol, x.ts {direction}"
            )
        }
    };
    format!("COPY ({select}) TO STDOUT (FORMAT binary)")
}

/// The digest of [`strata_core::digest`] in SQL: per (symbol, UTC day) the
/// row count and the sum modulo 2^64 of the first 64 bits of md5 of the
/// canonical row text. Returns (symbol, day as date, rows, hash as text).
pub(crate) fn digest_sql(schema: &str, query: &DigestQuery) -> String {
    let filter = bar_filter(&query.symbols, query.start, query.end);
    format!(
        "WITH encoded AS (
            SELECT symbol, (ts AT TIME ZONE 'UTC')::date AS day,
                   symbol || '|' || (extract(epoch FROM ts) * 1000000)::bigint::text
                   || '|' || {open} || '|' || {high} || '|' || {low} || '|' || {close} || '|' || {volume}
                   || '|' || coalesce({vwap}, '') || '|' || coalesce(trade_count::text, '') AS line
            FROM {schema}.ohlcv_bars{filter}
        )
        SELECT symbol, day, count(*)::bigint,
               ((sum(('x' || left(md5(line), 16))::bit(64)::bigint::numeric) % 18446744073709551616
                 + 18446744073709551616) % 18446744073709551616)::text
        FROM encoded GROUP BY symbol, day ORDER BY symbol, day",
        open = float_bits("open"),
        high = float_bits("high"),
        low = float_bits("low"),
        close = float_bits("close"),
        volume = float_bits("volume"),
        // NULL stays NULL through float8send and the casts; coalesce turns it into ''.
        vwap = float_bits("vwap"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_layout_issues_its_own_sql() {
        let ddl = bars_ddl("strata", BarLayout::Hypertable, 7_776_000);
        assert!(ddl.contains("create_hypertable('strata.ohlcv_bars', 'ts'"), "{ddl}");
        assert!(ddl.contains("chunk_time_interval => INTERVAL '7776000 seconds'"), "{ddl}");
        assert!(ddl.contains("create_default_indexes => FALSE"), "{ddl}");
        assert!(!ddl.contains("PARTITION BY") && !ddl.contains("CREATE EXTENSION"), "{ddl}");
        let native = bars_ddl("strata", BarLayout::Partitioned(PartitionInterval::Month), 86_400);
        assert!(native.contains("PARTITION BY RANGE (ts)") && !native.contains("timescaledb"), "{native}");
        let sql = migration_sql(&MIGRATIONS[0], "s1", BarLayout::Hypertable, 3600);
        assert!(!sql.contains("{schema}") && !sql.contains("{bars}") && sql.contains("s1.tasks"));
        assert_eq!(CREATE_TIMESCALEDB_SQL, "CREATE EXTENSION IF NOT EXISTS timescaledb");
        assert_eq!(
            set_chunk_interval_sql("s1", 7_776_000),
            "SELECT set_chunk_time_interval('s1.ohlcv_bars', INTERVAL '7776000 seconds')"
        );
        assert!(CHUNK_INTERVAL_SQL.contains("timescaledb_information.dimensions"));
        // The checksum covers the migration text only, so it is the same for both layouts.
        assert_eq!(checksum(&MIGRATIONS[0]), checksum(&MIGRATIONS[0]));
        assert_ne!(database_migration_lock_key(), migration_lock_key("public"));
    }

    /// What the server reports: (shared_preload_libraries, installed version, available).
    fn facts(preload: Option<&str>, installed: Option<&str>, available: bool) -> TimescaleFacts {
        TimescaleFacts {
            preload_libraries: preload.map(str::to_string),
            installed_version: installed.map(str::to_string),
            available,
        }
    }

    #[test]
    fn timescaledb_is_used_only_when_it_can_load() {
        let month = PartitionInterval::Month;
        let hyper = BarLayout::Hypertable;
        let native = BarLayout::Partitioned(month);
        // (enabled, facts, layout, create the extension, words of the reason)
        let cases = [
            (true, facts(Some("timescaledb"), Some("2.28.0"), true), hyper, false, "preloaded and installed"),
            (true, facts(Some("pg_stat_statements, timescaledb"), None, true), hyper, true, "preloaded and available"),
            (true, facts(Some("$libdir/timescaledb.so"), None, true), hyper, true, "preloaded and available"),
            (true, facts(Some("\"$libdir/timescaledb\""), None, true), hyper, true, "preloaded and available"),
            (true, facts(Some(""), None, true), native, false, "available but not in shared_preload_libraries"),
            (true, facts(Some("pg_stat_statements"), None, true), native, false, "preload it"),
            (true, facts(Some("timescaledb_toolkit"), None, true), native, false, "not in shared_preload"),
            (true, facts(Some(""), Some("2.28.0"), true), native, false, "cannot load"),
            (true, facts(Some("timescaledb"), None, false), native, false, "extension files are missing"),
            (true, facts(Some(""), None, false), native, false, "not available on this server"),
            (true, facts(None, None, false), native, false, "not available on this server"),
            (true, facts(None, Some("2.13.1"), true), hyper, false, "installed in this database"),
            (true, facts(None, None, true), native, false, "pg_read_all_settings"),
            (false, facts(Some("timescaledb"), Some("2.28.0"), true), native, false, "STRATA_PG_TIMESCALEDB=false"),
        ];
        for (enabled, server, layout, create, words) in cases {
            let choice = choose_layout(enabled, &server, month);
            assert_eq!((choice.layout, choice.create_extension), (layout, create), "{server:?}: {choice:?}");
            assert!(choice.reason.contains(words), "{server:?}: {}", choice.reason);
        }
        assert_eq!(
            choose_layout(false, &facts(None, None, false), PartitionInterval::Year).layout,
            BarLayout::Partitioned(PartitionInterval::Year)
        );
        assert_eq!(facts(Some("timescaledb"), Some("2.28.0"), true).describe(), "installed 2.28.0, preloaded");
        assert_eq!(facts(Some(""), None, true).describe(), "available, not installed, not in shared_preload_libraries");
        assert_eq!(facts(None, None, false).describe(), "not available on this server");
    }

    fn micros(year: i32, month: u32, day: u32) -> i64 {
        Timestamp::from_date(NaiveDate::from_ymd_opt(year, month, day).unwrap()).micros()
    }

    #[test]
    fn the_default_chunk_interval_keeps_chunk_counts_sane() {
        let day = Timestamp::MICROS_PER_DAY;
        let chunks = |days: i64, low: i64, high: i64| periods_spanned(BarLayout::Hypertable, days * day, low, high);
        // The shipped ^GSPC sample, 1999-01-04 to 2018-12-31 (the table in the module docs).
        let (first, last) = (micros(1999, 1, 4), micros(2018, 12, 31));
        assert_eq!([1, 7, 30, 90, 365].map(|days| chunks(days, first, last)), [7302, 1044, 244, 82, 21]);
        // 64 years of daily bars; 10 years of minute bars.
        assert_eq!(chunks(90, micros(1962, 1, 2), micros(2025, 12, 31) + day - 60_000_000), 261);
        assert_eq!(chunks(90, micros(2015, 1, 1), micros(2024, 12, 31) + day - 60_000_000), 42);
        assert_eq!(crate::config::DEFAULT_CHUNK_INTERVAL.as_secs(), 90 * 86_400);
        // Chunks are aligned to the epoch, before it too (TimescaleDB floors).
        assert_eq!(chunks(1, -1, 0), 2);
        assert_eq!(chunks(1, -day, -1), 1);
        assert_eq!(chunks(90, 5, 4), 0);
        // Native partitions, counted by the calendar.
        let span = |interval, low, high| periods_spanned(BarLayout::Partitioned(interval), 0, low, high);
        assert_eq!(span(PartitionInterval::Month, first, last), 240);
        assert_eq!(span(PartitionInterval::Year, first, last), 20);
        assert_eq!(span(PartitionInterval::Day, first, first + day - 1), 1);
        assert_eq!(span(PartitionInterval::Day, first, last), 7302);
        // 1999-01-04 is a Monday and 2018-12-31 too: 1043 weeks later.
        assert_eq!(span(PartitionInterval::Week, first, last), 1044);
        assert_eq!(span(PartitionInterval::Month, micros(1969, 12, 31), micros(1970, 1, 1)), 2);
    }

    #[test]
    fn a_write_stays_within_a_quarter_of_the_default_lock_table() {
        let ninety = std::time::Duration::from_secs(90 * 86_400);
        let month = BarLayout::Partitioned(PartitionInterval::Month);
        // A batch with rows in every period of its span (daily bars).
        let dense = |layout, chunk: std::time::Duration, low, high| {
            let chunk_micros = chunk.as_micros() as i64;
            WriteReach { with_rows: periods_spanned(layout, chunk_micros, low, high), passed: 0 }
        };
        let problem =
            |layout, chunk, low, high| write_span_problem(layout, chunk, low, high, dense(layout, chunk, low, high));
        assert_eq!(WRITE_LOCK_BUDGET, 1_600);
        assert_eq!((max_periods_per_write(month), max_periods_per_write(BarLayout::Hypertable)), (796, 398));
        // The shipped sample fits either layout with the defaults, and so do 64 years of daily bars.
        let (first, last) = (micros(1999, 1, 4), micros(2018, 12, 31));
        assert_eq!(write_locks(month, dense(month, ninety, first, last)), 8 + 2 * 240);
        assert_eq!(write_locks(BarLayout::Hypertable, dense(BarLayout::Hypertable, ninety, first, last)), 8 + 4 * 82);
        assert_eq!(problem(month, ninety, first, last), None);
        assert_eq!(problem(BarLayout::Hypertable, ninety, first, last), None);
        let (old, new) = (micros(1962, 1, 2), micros(2025, 12, 31));
        assert_eq!(problem(month, ninety, old, new), None);
        assert_eq!(problem(BarLayout::Hypertable, ninety, old, new), None);
        // The seeds' 1-day chunks: refused, saying what to change.
        let one_day = std::time::Duration::from_secs(86_400);
        let refusal = problem(BarLayout::Hypertable, one_day, first, last).unwrap();
        for words in
            ["7302 TimescaleDB chunks of 1 day", "1999-01-04 to 2018-12-31", "29216 relations", "1600 one write"]
        {
            assert!(refusal.contains(words), "{words:?} missing from: {refusal}");
        }
        assert!(refusal.contains("STRATA_PG_CHUNK_INTERVAL=30d") && refusal.contains("--batch-rows"), "{refusal}");
        // Daily partitions: 3 years is too many; yearly ones have nothing coarser to offer.
        let daily = BarLayout::Partitioned(PartitionInterval::Day);
        let refusal = problem(daily, ninety, micros(2020, 1, 1), micros(2022, 12, 31)).unwrap();
        assert!(refusal.contains("1096 daily partitions") && refusal.contains("STRATA_PG_PARTITION=year"), "{refusal}");
        assert_eq!(problem(daily, ninety, micros(2020, 1, 1), micros(2022, 3, 6)), None);
        let yearly = BarLayout::Partitioned(PartitionInterval::Year);
        let refusal = problem(yearly, ninety, micros(1000, 1, 1), micros(2000, 1, 1)).unwrap();
        assert!(refusal.contains("1001 yearly partitions") && !refusal.contains("STRATA_PG_PARTITION"), "{refusal}");
        // A sparse batch over a century touches only the partitions that hold its rows,
        // plus existing ones it passes (the overlap probe locks those too).
        let sparse = WriteReach { with_rows: 6, passed: 0 };
        assert_eq!(write_span_problem(month, ninety, micros(1928, 10, 1), micros(2021, 5, 8), sparse), None);
        let crowded = WriteReach { with_rows: 6, passed: 1_000 };
        assert!(write_span_problem(month, ninety, micros(1928, 10, 1), micros(2021, 5, 8), crowded).is_some());
        assert_eq!(period_key(BarLayout::Hypertable, 90 * 86_400_000_000, -1), -1);
        assert_eq!(period_key(month, 0, micros(2000, 2, 29)), micros(2000, 2, 1));
    }

    #[test]
    fn layouts_round_trip_through_meta() {
        for layout in [
            BarLayout::Hypertable,
            BarLayout::Partitioned(PartitionInterval::Day),
            BarLayout::Partitioned(PartitionInterval::Year),
        ] {
            assert_eq!(BarLayout::from_meta(&layout.as_meta()), Some(layout));
        }
        assert_eq!(BarLayout::from_meta("heap"), None);
    }

    #[test]
    fn periods_cover_every_instant_once() {
        let day = Timestamp::MICROS_PER_DAY;
        for interval in PartitionInterval::ALL {
            for t in [-2_208_988_800_000_000, -1, 0, 1, 951_782_400_000_000 + 3 * day - 1, 7_258_118_399_999_999] {
                let start = period_start(interval, t);
                let end = period_end(interval, start);
                assert!(start <= t && t < end, "{interval}: {t} not in [{start}, {end})");
                assert_eq!(period_start(interval, end), end, "{interval}: periods must tile");
            }
        }
        // 2000-02-29 is a Tuesday: its week starts Monday 2000-02-28.
        let leap = Timestamp::from_date(NaiveDate::from_ymd_opt(2000, 2, 29).unwrap()).micros();
        assert_eq!(
            Timestamp(period_start(PartitionInterval::Week, leap)).day(),
            NaiveDate::from_ymd_opt(2000, 2, 28).unwrap()
        );
        assert!(create_partition_sql("s", PartitionInterval::Month, period_start(PartitionInterval::Month, leap))
            .contains("s.ohlcv_bars_p20000201 PARTITION OF s.ohlcv_bars FOR VALUES FROM ('2000-02-01 00:00:00.000000+00'::timestamptz) TO ('2000-03-01 00:00:00.000000+00'::timestamptz)"));
    }

    #[test]
    fn literals_are_exact_and_quoted() {
        assert_eq!(timestamp_literal(1), "'1970-01-01 00:00:00.000001+00'::timestamptz");
        assert_eq!(timestamp_literal(-1), "'1969-12-31 23:59:59.999999+00'::timestamptz");
        assert_eq!(string_literal("a'b"), "'a''b'");
        let query = BarQuery::latest(Symbol::new("AAPL").unwrap(), 5);
        let sql = query_copy_sql("public", &query);
        assert!(sql.contains("LIMIT 5") && sql.contains("DESC") && sql.starts_with("COPY ("), "{sql}");
    }
}
