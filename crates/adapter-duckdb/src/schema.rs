//! The DuckDB schema (versioned DDL) and every SQL statement the adapter runs.
//!
//! # Tables (schema version 3)
//!
//! | table | key | holds |
//! |---|---|---|
//! | `schema_version` | `version` | one row per applied migration |
//! | `ohlcv_bars` | `(symbol, ts)`, kept unique by the writer (no index, see below) | bars; `ts` is `TIMESTAMPTZ` (microseconds UTC), floats `DOUBLE`, `vwap` and `trade_count` nullable |
//! | `runs` | `id` | run specs, status, store-clock times |
//! | `generations` | `(run_id, generation)` | one row per saved generation (so an empty population still counts) |
//! | `individuals` | `(run_id, generation, individual)` | the population rows |
//! | `tasks` | `(run_id, generation, individual)` | evaluation tasks: state, attempts, lease, result |
//! | `workers` | `id` | registered workers |
//! | `generation_stats` | `(run_id, generation)` | per-generation fitness statistics |
//! | `coordinator_leases` | `run_id` | the coordinator role of a run: holder (NULL once released), fencing token, expiry (version 2) |
//! | `fitness_cache` | `key` | the fitness cache: fitness and result of an evaluation under the caller's cache key (version 3) |
//!
//! `ohlcv_bars` has no `PRIMARY KEY`: maintaining DuckDB's ART index for new
//! keys made a bulk load of fresh bars about 2.2x slower than the same load
//! into a keyless table (measured: 1M one-minute bars in 100k batches, 3.4 s
//! against 1.5 s), while ranges are served by zone maps either way. The key is
//! kept unique by the only write path: one transaction on the single writer
//! connection deletes the staged keys and inserts the staged rows (validation
//! has already refused a key twice within a batch). The join's min/max filter
//! lets the delete skip row groups outside the batch's time range.
//!
//! Sequences: `fencing_tokens` (lease tokens), `coordinator_tokens` (coordinator
//! role tokens) and `run_order` (creation order of runs). Store-clock instants of the evolution tables are `BIGINT`
//! microseconds since the epoch (`*_us` columns). The bulk-write staging table
//! `bar_staging` is a `TEMP` table of the writer connection, so its rows never
//! reach the file or its WAL.
//!
//! # Values are always bound
//!
//! Every value reaches DuckDB as a bound parameter; the only text spliced into
//! SQL is a count of `?` placeholders, fixed fragments from this module and a
//! query's row limit (an integer, so that DuckDB plans a top-N).

use duckdb::types::Value;
use strata_core::bar::{MAX_TIMESTAMP, MIN_TIMESTAMP};
use strata_core::{BarQuery, DigestQuery, Order, Symbol, Timestamp};

/// The schema version this build writes and understands.
pub(crate) const SCHEMA_VERSION: i32 = 3;

/// Creates the version table; safe to run on every open.
pub(crate) const CREATE_VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at_us BIGINT NOT NULL)";

/// The highest applied schema version (NULL on a new file).
pub(crate) const CURRENT_VERSION: &str = "SELECT max(version) FROM schema_version";

/// Whether the file has the version table (read-only opens cannot create it).
pub(crate) const HAS_VERSION_TABLE: &str =
    "SELECT count(*) > 0 FROM information_schema.tables WHERE table_schema = 'main' AND table_name = 'schema_version'";

/// Records an applied version: (version, applied_at_us).
pub(crate) const RECORD_VERSION: &str = "INSERT INTO schema_version (version, applied_at_us) VALUES (?, ?)";

/// Migrations by version: `MIGRATIONS[i]` brings the file from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: [&str; 3] = [
    r#"
CREATE TABLE ohlcv_bars (
    symbol      VARCHAR     NOT NULL,
    ts          TIMESTAMPTZ NOT NULL,
    open        DOUBLE      NOT NULL,
    high        DOUBLE      NOT NULL,
    low         DOUBLE      NOT NULL,
    close       DOUBLE      NOT NULL,
    volume      DOUBLE      NOT NULL,
    vwap        DOUBLE,
    trade_count BIGINT
);
CREATE SEQUENCE run_order START 1;
CREATE TABLE runs (
    id              VARCHAR  PRIMARY KEY,
    strategy        VARCHAR  NOT NULL,
    seed            UBIGINT  NOT NULL,
    population_size UINTEGER NOT NULL,
    generations     UINTEGER NOT NULL,
    config          VARCHAR  NOT NULL,
    status          VARCHAR  NOT NULL,
    created_order   BIGINT   NOT NULL,
    created_at_us   BIGINT   NOT NULL,
    updated_at_us   BIGINT   NOT NULL
);
CREATE TABLE generations (
    run_id      VARCHAR  NOT NULL,
    generation  UINTEGER NOT NULL,
    size        UINTEGER NOT NULL,
    saved_at_us BIGINT   NOT NULL,
    PRIMARY KEY (run_id, generation)
);
CREATE TABLE individuals (
    run_id     VARCHAR  NOT NULL,
    generation UINTEGER NOT NULL,
    individual UINTEGER NOT NULL,
    genome     VARCHAR  NOT NULL,
    PRIMARY KEY (run_id, generation, individual)
);
CREATE SEQUENCE fencing_tokens START 1;
CREATE TABLE tasks (
    run_id              VARCHAR  NOT NULL,
    generation          UINTEGER NOT NULL,
    individual          UINTEGER NOT NULL,
    payload             VARCHAR  NOT NULL,
    state               VARCHAR  NOT NULL,
    attempts            UINTEGER NOT NULL,
    max_attempts        UINTEGER NOT NULL,
    token               UBIGINT  NOT NULL,
    worker              VARCHAR,
    lease_expires_at_us BIGINT,
    fitness             DOUBLE,
    result              VARCHAR,
    error               VARCHAR,
    PRIMARY KEY (run_id, generation, individual)
);
CREATE TABLE workers (
    id               VARCHAR  PRIMARY KEY,
    hostname         VARCHAR  NOT NULL,
    pid              UINTEGER NOT NULL,
    registered_at_us BIGINT   NOT NULL,
    last_seen_us     BIGINT   NOT NULL
);
CREATE TABLE generation_stats (
    run_id     VARCHAR  NOT NULL,
    generation UINTEGER NOT NULL,
    best       DOUBLE   NOT NULL,
    mean       DOUBLE   NOT NULL,
    std        DOUBLE   NOT NULL,
    diversity  DOUBLE   NOT NULL,
    evaluated  UINTEGER NOT NULL,
    PRIMARY KEY (run_id, generation)
);
"#,
    // Version 2: the coordinator role becomes its own fenced lease, and the
    // companion runs `coord:<run>` that used to hold it as a task go.
    r#"
CREATE SEQUENCE coordinator_tokens START 1;
CREATE TABLE coordinator_leases (
    run_id        VARCHAR PRIMARY KEY,
    holder        VARCHAR, -- NULL once released
    token         UBIGINT NOT NULL,
    expires_at_us BIGINT  NOT NULL
);
DELETE FROM generation_stats WHERE run_id LIKE 'coord:%';
DELETE FROM tasks WHERE run_id LIKE 'coord:%';
DELETE FROM individuals WHERE run_id LIKE 'coord:%';
DELETE FROM generations WHERE run_id LIKE 'coord:%';
DELETE FROM runs WHERE id LIKE 'coord:%';
"#,
    // Version 3: the durable fitness cache, written with the completions that produce it.
    r#"
CREATE TABLE fitness_cache (
    key           VARCHAR PRIMARY KEY,
    fitness       DOUBLE  NOT NULL,
    result        VARCHAR NOT NULL,
    created_at_us BIGINT  NOT NULL
);
"#,
];

// ---------------------------------------------------------------------------
// Market data
// ---------------------------------------------------------------------------

/// The bars table.
pub(crate) const BARS_TABLE: &str = "ohlcv_bars";

/// Stored bars of any of the symbols (a `VARCHAR` list) inside `[first, last]`
/// (microseconds): zero means no key of a batch with that span can collide.
/// The time bounds are plain constants, so zone maps skip row groups outside them.
pub(crate) const COUNT_IN_SPAN: &str = "SELECT count(*) FROM ohlcv_bars
    WHERE symbol IN (SELECT unnest(CAST(? AS VARCHAR[])))
      AND ts >= CAST(make_timestamp(?) AS TIMESTAMPTZ) AND ts <= CAST(make_timestamp(?) AS TIMESTAMPTZ)";

/// Name of the writer connection's staging table (in the `temp` catalog).
pub(crate) const STAGING_TABLE: &str = "bar_staging";

/// Creates the staging table on the writer connection. Its columns match the
/// canonical Arrow schema one to one, so the Arrow appender needs no casts:
/// `Timestamp(Microsecond, "UTC")` arrives as `TIMESTAMPTZ`.
pub(crate) const CREATE_STAGING: &str = "CREATE TEMP TABLE IF NOT EXISTS bar_staging (
    symbol VARCHAR, ts TIMESTAMPTZ, open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE,
    volume DOUBLE, vwap DOUBLE, trade_count BIGINT)";

/// Removes the stored rows whose keys are staged (first half of the upsert).
pub(crate) const DELETE_STAGED_KEYS: &str = "DELETE FROM ohlcv_bars USING temp.main.bar_staging AS staged
    WHERE ohlcv_bars.symbol = staged.symbol AND ohlcv_bars.ts = staged.ts";

/// Inserts the staged rows (second half of the upsert): the last write of a key wins.
pub(crate) const INSERT_STAGED: &str = "INSERT INTO ohlcv_bars
    (symbol, ts, open, high, low, close, volume, vwap, trade_count)
    SELECT symbol, ts, open, high, low, close, volume, vwap, trade_count FROM temp.main.bar_staging";

/// Empties the staging table (inside the write transaction).
pub(crate) const CLEAR_STAGING: &str = "DELETE FROM temp.main.bar_staging";

/// Per-symbol coverage: symbol, first and last microsecond, rows.
pub(crate) const SUMMARY: &str = "SELECT symbol, epoch_us(min(ts)), epoch_us(max(ts)), count(*)
    FROM ohlcv_bars GROUP BY symbol ORDER BY symbol";

/// Deletes one symbol's `[start, end)`: (symbol, start_us, end_us).
pub(crate) const DELETE_RANGE: &str = "DELETE FROM ohlcv_bars
    WHERE symbol = ? AND ts >= CAST(make_timestamp(?) AS TIMESTAMPTZ) AND ts < CAST(make_timestamp(?) AS TIMESTAMPTZ)";

/// Number of stored bars.
pub(crate) const COUNT_BARS: &str = "SELECT count(*) FROM ohlcv_bars";

/// A statement with its bound values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BoundSql {
    /// The SQL text, with `?` placeholders.
    pub(crate) sql: String,
    /// One value per placeholder, in order.
    pub(crate) params: Vec<Value>,
}

/// The bound value of a range bound. Stored timestamps all lie in
/// `[MIN_TIMESTAMP, MAX_TIMESTAMP)`, so clamping a bound to that interval
/// selects the same rows and keeps it a valid DuckDB timestamp (open ranges
/// such as `TimeRange::all()` use `i64::MIN` and `i64::MAX`).
pub(crate) fn bound(timestamp: Timestamp) -> i64 {
    timestamp.micros().clamp(MIN_TIMESTAMP.micros(), MAX_TIMESTAMP.micros())
}

/// `WHERE` conditions shared by bar queries and digests.
fn bar_filter(symbols: &[Symbol], start: Option<Timestamp>, end: Option<Timestamp>, params: &mut Vec<Value>) -> String {
    let mut conditions = Vec::new();
    if !symbols.is_empty() {
        conditions.push(format!("symbol IN ({})", vec!["?"; symbols.len()].join(", ")));
        params.extend(symbols.iter().map(|symbol| Value::Text(symbol.as_str().to_string())));
    }
    if let Some(start) = start {
        conditions.push("ts >= CAST(make_timestamp(?) AS TIMESTAMPTZ)".to_string());
        params.push(Value::BigInt(bound(start)));
    }
    if let Some(end) = end {
        conditions.push("ts < CAST(make_timestamp(?) AS TIMESTAMPTZ)".to_string());
        params.push(Value::BigInt(bound(end)));
    }
    if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) }
}

/// How many bars `symbols` have in `[start, end)`, and the first and last timestamp (microseconds).
pub(crate) fn span_query(symbols: &[Symbol], start: Option<Timestamp>, end: Option<Timestamp>) -> BoundSql {
    let mut params = Vec::new();
    let filter = bar_filter(symbols, start, end, &mut params);
    BoundSql { sql: format!("SELECT count(*), epoch_us(min(ts)), epoch_us(max(ts)) FROM ohlcv_bars{filter}"), params }
}

/// The distinct symbols with bars in `[start, end)`, ascending (byte order, as `ORDER BY symbol`).
pub(crate) fn symbols_query(start: Option<Timestamp>, end: Option<Timestamp>) -> BoundSql {
    let mut params = Vec::new();
    let filter = bar_filter(&[], start, end, &mut params);
    BoundSql { sql: format!("SELECT DISTINCT symbol FROM ohlcv_bars{filter} ORDER BY symbol"), params }
}

/// The SQL of a bar query, following `BarQuery`'s contract: grouped by symbol
/// ascending, timestamps in `order`, at most `limit` rows per symbol (a window
/// function; a plain `LIMIT` when there is exactly one symbol).
pub(crate) fn bar_query(query: &BarQuery) -> BoundSql {
    let mut params = Vec::new();
    let filter = bar_filter(&query.symbols, query.start, query.end, &mut params);
    let direction = match query.order {
        Order::Ascending => "ASC",
        Order::Descending => "DESC",
    };
    let mut sql = format!(
        "SELECT symbol, ts AS \"timestamp\", open, high, low, close, volume, vwap, trade_count FROM ohlcv_bars{filter}"
    );
    // The limit is written into the SQL, not bound: a bound `LIMIT ?` is unknown when the
    // statement is planned, so DuckDB sorts every matching row instead of keeping the top N
    // (the latest 100 bars of a 100k-bar symbol took about twice as long).
    match query.limit {
        Some(limit) if query.symbols.len() == 1 => {
            sql.push_str(&format!(" ORDER BY ts {direction} LIMIT {}", i64::try_from(limit).unwrap_or(i64::MAX)));
        }
        Some(limit) => {
            sql.push_str(&format!(
                " QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY ts {direction}) <= {} \
                 ORDER BY symbol ASC, ts {direction}",
                i64::try_from(limit).unwrap_or(i64::MAX)
            ));
        }
        None => sql.push_str(&format!(" ORDER BY symbol ASC, ts {direction}")),
    }
    BoundSql { sql, params }
}

/// Microseconds per day, as SQL text.
const MICROS_PER_DAY: &str = "86400000000";

/// The SQL of the (symbol, day) digest of [`strata_core::digest`], computed
/// entirely inside DuckDB.
///
/// 1. `selected`: the rows, with the timestamp as epoch microseconds and the
///    UTC day as a day number (floor division, also before 1970).
/// 2. `exponents`, `mantissas`: the pieces of each float's IEEE-754 bit
///    pattern (see [`float_bits_stages`]).
/// 3. `encoded`: the canonical row text `symbol|us|open|high|low|close|volume|vwap|trade_count`,
///    optional fields empty when NULL.
/// 4. The row hash is the first 16 hex digits of `md5` read as an unsigned
///    64-bit integer; the day's hash is their sum modulo 2^64.
///
/// Returns rows of (symbol, day number since 1970-01-01, rows, hash as UBIGINT).
pub(crate) fn digest_query(query: &DigestQuery) -> BoundSql {
    let mut params = Vec::new();
    let filter = bar_filter(&query.symbols, query.start, query.end, &mut params);
    let columns = ["open", "high", "low", "close", "volume", "vwap"];
    let stages: Vec<FloatBitsSql> = columns.iter().map(|column| float_bits_stages(column)).collect();
    let exponents: Vec<String> = stages.iter().map(|s| s.exponent.clone()).collect();
    let mantissas: Vec<String> = stages.iter().map(|s| s.mantissa.clone()).collect();
    let bits: Vec<String> = stages.iter().map(|s| s.bits.clone()).collect();
    let sql = format!(
        "WITH selected AS (
            SELECT symbol, epoch_us(ts) AS us, open, high, low, close, volume, vwap, trade_count FROM ohlcv_bars{filter}
        ),
        exponents AS (SELECT *, {exponents} FROM selected),
        mantissas AS (SELECT *, {mantissas} FROM exponents),
        encoded AS (
            SELECT symbol,
                   (us - (((us % {MICROS_PER_DAY}) + {MICROS_PER_DAY}) % {MICROS_PER_DAY})) // {MICROS_PER_DAY} AS day,
                   symbol || '|' || CAST(us AS VARCHAR)
                       || '|' || CAST({open} AS VARCHAR) || '|' || CAST({high} AS VARCHAR)
                       || '|' || CAST({low} AS VARCHAR) || '|' || CAST({close} AS VARCHAR)
                       || '|' || CAST({volume} AS VARCHAR)
                       || '|' || coalesce(CAST({vwap} AS VARCHAR), '')
                       || '|' || coalesce(CAST(trade_count AS VARCHAR), '') AS line
            FROM mantissas
        )
        SELECT symbol, day, count(*),
               CAST(sum(CAST(CAST('0x' || left(md5(line), 16) AS UBIGINT) AS HUGEINT))
                    % CAST('18446744073709551616' AS HUGEINT) AS UBIGINT)
        FROM encoded GROUP BY symbol, day ORDER BY symbol, day",
        exponents = exponents.join(", "),
        mantissas = mantissas.join(", "),
        open = bits[0],
        high = bits[1],
        low = bits[2],
        close = bits[3],
        volume = bits[4],
        vwap = bits[5],
    );
    BoundSql { sql, params }
}

/// The three stages of the SQL that derives a float column's IEEE-754 bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FloatBitsSql {
    /// Selects `e_<column>`, the estimated binary exponent.
    pub(crate) exponent: String,
    /// Selects `m_<column>`, the value scaled by `2^(52 - e)`.
    pub(crate) mantissa: String,
    /// The bit pattern (BIGINT) from `<column>`, `e_<column>` and `m_<column>`.
    pub(crate) bits: String,
}

/// SQL that derives the IEEE-754 binary64 bit pattern of a column holding
/// zero or a positive normal double (what validation admits), with NULL
/// staying NULL. DuckDB has no float-to-bits function, so it is arithmetic:
///
/// - `e = floor(log2(x))`: the exponent, possibly off by one near powers of two;
/// - `m = x * 2^a * 2^b` with `a + b = 52 - e`: exact (scaling by a power of
///   two is exact for normal results), split in two so neither factor
///   overflows or underflows (`52 - e` reaches 1074);
/// - when `e` was off, `m` falls outside `[2^52, 2^53)`: halve or double it
///   (still exact) and move `e` by one;
/// - `bits = (e + 1023) * 2^52 + (m - 2^52)`.
///
/// Zero (and `-0.0`, which equals it) gives 0, like `float_bits(x + 0.0)`.
pub(crate) fn float_bits_stages(column: &str) -> FloatBitsSql {
    let e = format!("e_{column}");
    let m = format!("m_{column}");
    let exponent = format!("CASE WHEN {column} > 0 THEN CAST(floor(log2({column})) AS INTEGER) ELSE 0 END AS {e}");
    let mantissa = format!("{column} * pow(2.0, (52 - {e}) // 2) * pow(2.0, (52 - {e}) - (52 - {e}) // 2) AS {m}");
    let bits = format!(
        "(CASE WHEN {column} IS NULL THEN NULL \
              WHEN {column} = 0 THEN CAST(0 AS BIGINT) \
              WHEN {m} >= 9007199254740992.0 \
                   THEN (CAST({e} + 1024 AS BIGINT) << 52) + CAST({m} / 2 - 4503599627370496.0 AS BIGINT) \
              WHEN {m} < 4503599627370496.0 \
                   THEN (CAST({e} + 1022 AS BIGINT) << 52) + CAST({m} * 2 - 4503599627370496.0 AS BIGINT) \
              ELSE (CAST({e} + 1023 AS BIGINT) << 52) + CAST({m} - 4503599627370496.0 AS BIGINT) END)"
    );
    FloatBitsSql { exponent, mantissa, bits }
}

// ---------------------------------------------------------------------------
// Evolution state
// ---------------------------------------------------------------------------

/// Columns of a run, in the order `RawRun` reads them.
pub(crate) const RUN_COLUMNS: &str =
    "id, strategy, seed, population_size, generations, config, status, created_at_us, updated_at_us";

/// The condition on `runs.status` under which a run's tasks may be leased.
pub(crate) const ACTIVE_RUN: &str = "status IN ('pending', 'running')";

/// Columns of a task, in the order `RawTask` reads them.
pub(crate) const TASK_COLUMNS: &str = "run_id, generation, individual, payload, state, attempts, max_attempts, token, \
     worker, lease_expires_at_us, fitness, result, error";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bar_query_binds_every_value_but_the_limit_and_orders_per_contract() {
        let query = BarQuery {
            symbols: vec![Symbol::new("A").unwrap(), Symbol::new("B").unwrap()],
            start: Some(Timestamp(10)),
            end: Some(Timestamp(i64::MAX)),
            limit: Some(5),
            order: Order::Descending,
        };
        let bound_sql = bar_query(&query);
        assert!(!bound_sql.sql.contains('\''), "no literal values: {}", bound_sql.sql);
        assert_eq!(bound_sql.sql.matches('?').count(), bound_sql.params.len());
        assert!(bound_sql.sql.contains("PARTITION BY symbol ORDER BY ts DESC"), "{}", bound_sql.sql);
        assert!(bound_sql.sql.ends_with("ORDER BY symbol ASC, ts DESC"), "{}", bound_sql.sql);
        assert_eq!(bound_sql.params[3], Value::BigInt(MAX_TIMESTAMP.micros()), "open bounds are clamped");
        let single = bar_query(&BarQuery::latest(Symbol::new("A").unwrap(), 3));
        assert!(single.sql.ends_with("ORDER BY ts DESC LIMIT 3"), "the limit is planned as a top-N: {}", single.sql);
        assert!(bound_sql.sql.contains("<= 5 "), "{}", bound_sql.sql);
        let all = bar_query(&BarQuery::default());
        assert!(all.params.is_empty() && !all.sql.contains("WHERE"), "{}", all.sql);
    }
}
