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
//! | `strata_meta` | `key` | facts such as the bar layout (`hypertable` / `partitioned`) |
//! | `ohlcv_bars` | `(symbol, ts)` | bars; `symbol` is `COLLATE "C"` so results order by bytes |
//! | `runs`, `generations`, `individuals`, `tasks`, `workers`, `generation_stats` | | evolution state |
//!
//! # Applying migrations
//!
//! Everything happens in ONE transaction that first takes
//! `pg_advisory_xact_lock` on a key derived from the schema name: a second
//! process starting at the same moment waits for the lock, then finds every
//! migration recorded and applies nothing. The lock is transaction-scoped,
//! so this also works through PgBouncer in transaction mode (Neon's
//! pooler), where session advisory locks do not. PostgreSQL DDL is
//! transactional: a migration that fails leaves nothing behind. A recorded
//! migration whose checksum differs from this build's SQL, or a database
//! newer than this build, stops the store from opening.

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
pub(crate) const MIGRATIONS: [Migration; 1] = [Migration { version: 1, name: "bars and evolution state", sql: V1 }];

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
        BarLayout::Hypertable => format!(
            "CREATE EXTENSION IF NOT EXISTS timescaledb;\n\
             CREATE TABLE {schema}.ohlcv_bars ({BAR_COLUMNS_DDL},\n    PRIMARY KEY (symbol, ts)\n);\n\
             SELECT create_hypertable('{schema}.ohlcv_bars', 'ts', \
             chunk_time_interval => INTERVAL '{chunk_interval_secs} seconds', if_not_exists => TRUE);"
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
    fn timescale_path_issues_the_hypertable_sql() {
        let ddl = bars_ddl("strata", BarLayout::Hypertable, 86_400);
        assert!(ddl.contains("CREATE EXTENSION IF NOT EXISTS timescaledb"));
        assert!(ddl.contains("create_hypertable('strata.ohlcv_bars', 'ts'"));
        assert!(ddl.contains("chunk_time_interval => INTERVAL '86400 seconds'"));
        assert!(!ddl.contains("PARTITION BY"));
        let native = bars_ddl("strata", BarLayout::Partitioned(PartitionInterval::Month), 86_400);
        assert!(native.contains("PARTITION BY RANGE (ts)") && !native.contains("timescaledb"));
        let sql = migration_sql(&MIGRATIONS[0], "s1", BarLayout::Hypertable, 3600);
        assert!(!sql.contains("{schema}") && !sql.contains("{bars}") && sql.contains("s1.tasks"));
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
