//! `SeedsDuckDbSource` against DuckDB files in the Python system's layout,
//! made here with the duckdb crate (a `TIMESTAMP` table with `INTEGER` trade
//! counts and a `TIMESTAMPTZ` one with `BIGINT`): every value comes back
//! bit-exactly, queries, summaries and digests equal those of a
//! `DuckDbStore` holding the same bars, the file is never written, and bars
//! Strata would refuse are reported by symbol and timestamp.

use std::path::{Path, PathBuf};

use strata_adapter_duckdb::seeds::{SeedsDuckDbSource, is_seeds_layout};
use strata_adapter_duckdb::{DuckDbConfig, DuckDbStore};
use strata_core::digest::digest_bars;
use strata_core::{
    Bar, BarBatch, BarQuery, DigestQuery, MarketDataStore, MarketDataStoreExt, Order, StoreError, Symbol, TimeRange,
    Timestamp,
};

/// The two column types of `timestamp` (and of `trade_count` with it).
#[derive(Debug, Clone, Copy)]
enum Variant {
    /// `TIMESTAMP` (read as UTC) and `INTEGER` trade counts.
    Naive,
    /// `TIMESTAMPTZ` and `BIGINT` trade counts.
    Zoned,
}

impl Variant {
    fn timestamp_type(self) -> &'static str {
        match self {
            Variant::Naive => "TIMESTAMP",
            Variant::Zoned => "TIMESTAMPTZ",
        }
    }

    fn count_type(self) -> &'static str {
        match self {
            Variant::Naive => "INTEGER",
            Variant::Zoned => "BIGINT",
        }
    }

    /// The timestamp as SQL text DuckDB parses without any extension.
    fn timestamp_text(self, timestamp: Timestamp) -> String {
        let text = timestamp.to_datetime().expect("a representable timestamp").format("%Y-%m-%d %H:%M:%S%.6f");
        match self {
            Variant::Naive => text.to_string(),
            Variant::Zoned => format!("{text}+00"),
        }
    }
}

fn micros(text: &str) -> i64 {
    Timestamp::parse(text).expect("a timestamp").micros()
}

#[allow(clippy::too_many_arguments)]
fn bar(symbol: &str, at: i64, open: f64, high: f64, low: f64, close: f64, volume: f64, vwap: f64, count: i64) -> Bar {
    Bar {
        symbol: symbol.to_string(),
        timestamp: Timestamp(at),
        open,
        high,
        low,
        close,
        volume,
        vwap: Some(vwap),
        trade_count: Some(count),
    }
}

/// Bars of five symbols (in an order that differs from byte order) over
/// three UTC days, one of them before 1970, with floats that only survive
/// bit-exactly: `0.1 + 0.2`, thirds, subnormal-adjacent and huge values, `-0.0`.
fn seed_bars(variant: Variant) -> Vec<Bar> {
    let symbols = ["a", "^GSPC", "BRK.B", "_X", "AAPL"];
    let days = [micros("1969-12-31"), micros("2020-03-09"), micros("2020-03-10")];
    let times = [0, 34_200_000_000 + 123_456, 52_000_000_001, 86_399_000_000];
    let mut bars = Vec::new();
    for (s, symbol) in symbols.iter().enumerate() {
        for (d, day) in days.iter().enumerate() {
            for (t, time) in times.iter().enumerate() {
                let k = (s * 100 + d * 10 + t) as f64;
                let open = 10.0 + k / 7.0;
                let close = open * 1.01 + 0.1;
                let low = open.min(close) - 0.01 * 3.0;
                let high = open.max(close) + (0.1 + 0.2);
                let count = (s * 1000 + d * 10 + t) as i64;
                bars.push(bar(symbol, day + time, open, high, low, close, k * 1000.5, (low + high) / 3.0 * 1.5, count));
            }
        }
    }
    let big_count = match variant {
        Variant::Naive => i64::from(i32::MAX),
        Variant::Zoned => 5_000_000_000_000,
    };
    bars.extend([
        bar("AAPL", micros("1969-12-31T23:59:59.999999Z"), 0.1 + 0.2, 0.7, 0.3, 0.3, 1e15 + 0.5, 0.1 + 0.2, big_count),
        bar("AAPL", micros("1970-01-01T00:00:00Z"), 1.5e-300, 2e-300, 1e-300, 1.25e-300, -0.0, 1.75e-300, 0),
        bar("^GSPC", micros("2020-03-11T12:00:00Z"), 1.0 / 3.0, f64::MAX, 1.0 / 7.0, 2.0 / 3.0, 0.0, 1e300, 1),
    ]);
    bars
}

/// Creates a seeds-layout DuckDB file at `path` holding `bars`, and closes it.
fn write_seeds_file(path: &Path, variant: Variant, bars: &[Bar]) {
    let mut connection = duckdb::Connection::open(path).expect("creating the seeds file");
    let connection = connection.transaction().expect("one transaction");
    connection
        .execute_batch(&format!(
            "CREATE TABLE ohlcv_bars (
                symbol TEXT NOT NULL,
                timestamp {timestamp} NOT NULL,
                open DOUBLE NOT NULL, high DOUBLE NOT NULL, low DOUBLE NOT NULL, close DOUBLE NOT NULL,
                volume DOUBLE NOT NULL,
                vwap DOUBLE NOT NULL,
                trade_count {count} NOT NULL
            )",
            timestamp = variant.timestamp_type(),
            count = variant.count_type()
        ))
        .expect("creating ohlcv_bars");
    let mut insert = connection
        .prepare(&format!(
            "INSERT INTO ohlcv_bars VALUES (?, CAST(? AS {}), ?, ?, ?, ?, ?, ?, ?)",
            variant.timestamp_type()
        ))
        .expect("preparing the insert");
    for bar in bars {
        insert
            .execute(duckdb::params![
                bar.symbol,
                variant.timestamp_text(bar.timestamp),
                bar.open,
                bar.high,
                bar.low,
                bar.close,
                bar.volume,
                bar.vwap,
                bar.trade_count,
            ])
            .expect("inserting a bar");
    }
    drop(insert);
    connection.commit().expect("committing the seeds file");
}

/// A bar as bits, so `-0.0 != 0.0` and every ulp counts.
type Bits = (String, i64, [u64; 5], Option<u64>, Option<i64>);

fn bits(bars: &[Bar]) -> Vec<Bits> {
    bars.iter()
        .map(|b| {
            (
                b.symbol.clone(),
                b.timestamp.micros(),
                [b.open, b.high, b.low, b.close, b.volume].map(f64::to_bits),
                b.vwap.map(f64::to_bits),
                b.trade_count,
            )
        })
        .collect()
}

fn symbol(text: &str) -> Symbol {
    Symbol::new(text).expect("a valid symbol")
}

/// The queries both stores must answer alike.
fn queries() -> Vec<BarQuery> {
    let day = Timestamp::MICROS_PER_DAY;
    let monday = Timestamp(micros("2020-03-09"));
    vec![
        BarQuery::default(),
        BarQuery { symbols: vec![symbol("a"), symbol("^GSPC")], ..BarQuery::default() }
            .between(monday, monday.plus_micros(day)),
        BarQuery { limit: Some(2), order: Order::Descending, ..BarQuery::default() },
        BarQuery { limit: Some(3), ..BarQuery::default() }.between(Timestamp(-day), monday),
        BarQuery::latest(symbol("AAPL"), 1),
        BarQuery::symbol(symbol("BRK.B"))
            .between(Timestamp(micros("2020-03-09T09:30:00.123456Z")), Timestamp(i64::MAX)),
        BarQuery::default().between(Timestamp(i64::MIN), Timestamp(0)),
        BarQuery::symbol(symbol("NOPE")),
        BarQuery { limit: Some(0), ..BarQuery::default() },
        BarQuery::default().between(monday, monday),
    ]
}

/// The digest queries both stores must answer alike.
fn digest_queries() -> Vec<DigestQuery> {
    let monday = Timestamp(micros("2020-03-09"));
    vec![
        DigestQuery::default(),
        DigestQuery { symbols: vec![symbol("AAPL"), symbol("_X")], start: None, end: Some(Timestamp(1)) },
        DigestQuery {
            symbols: Vec::new(),
            start: Some(monday),
            end: Some(monday.plus_micros(Timestamp::MICROS_PER_DAY)),
        },
    ]
}

/// A Strata DuckDB store in `directory` holding `bars`.
async fn strata_store(directory: &Path, bars: &[Bar]) -> DuckDbStore {
    let store = DuckDbStore::open(DuckDbConfig::new(directory.join("strata.duckdb"))).await.expect("a Strata store");
    store.write_bars(BarBatch::from_bars(bars)).await.expect("writing the reference bars");
    store
}

/// The files in `directory` with their contents.
fn snapshot(directory: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(directory)
        .expect("listing the directory")
        .map(|entry| {
            let path = entry.expect("an entry").path();
            let bytes = std::fs::read(&path).expect("reading a file");
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

async fn check_round_trip(variant: Variant) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let seeds_directory = directory.path().join("seeds");
    std::fs::create_dir(&seeds_directory).expect("a directory for the seeds file");
    let path = seeds_directory.join("market.duckdb");
    let bars = seed_bars(variant);
    write_seeds_file(&path, variant, &bars);
    let before = snapshot(&seeds_directory);
    assert!(is_seeds_layout(&path).expect("looking at the seeds file"), "{variant:?}");

    let source = SeedsDuckDbSource::open(&path).await.expect("opening the seeds file");
    assert_eq!(source.to_string(), "duckdb-seeds");
    let store = strata_store(directory.path(), &bars).await;

    let mut expected = bars.clone();
    expected.sort_by(|a, b| (a.symbol.as_bytes(), a.timestamp).cmp(&(b.symbol.as_bytes(), b.timestamp)));
    let all = source.collect_bars(BarQuery::default()).await.expect("reading every bar");
    assert_eq!(bits(&all), bits(&expected), "{variant:?}: every column equal by bits, in byte order of symbols");

    for query in queries() {
        let from_source = source.collect_bars(query.clone()).await.expect("a query of the source");
        let from_store = store.collect_bars(query.clone()).await.expect("a query of the store");
        assert_eq!(bits(&from_source), bits(&from_store), "{variant:?} {query:?}");
    }

    let summary = source.summary().await.expect("the summary");
    assert_eq!(summary, store.summary().await.expect("the store's summary"), "{variant:?}");
    assert_eq!(summary.total_rows(), bars.len() as u64);
    let gspc = summary.symbols.iter().find(|s| s.symbol == "^GSPC").expect("^GSPC is summarised");
    assert_eq!((gspc.first, gspc.last), (Timestamp(micros("1969-12-31")), Timestamp(micros("2020-03-11T12:00:00Z"))));

    let digest = source.digest(DigestQuery::default()).await.expect("the digest");
    assert_eq!(digest, digest_bars(&bars), "{variant:?}: the reference digest");
    for query in digest_queries() {
        let from_source = source.digest(query.clone()).await.expect("a digest of the source");
        assert_eq!(
            from_source,
            store.digest(query.clone()).await.expect("the store's digest"),
            "{variant:?} {query:?}"
        );
    }

    let health = source.health().await.expect("health");
    assert!(health.ok(), "{health:?}");
    assert_eq!(health.backend, "duckdb-seeds");
    let detail = |key: &str| health.details.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default();
    assert!(detail("layout").contains("read-only") && detail("layout").contains("seeds"), "{health:?}");
    assert_eq!(detail("bars"), bars.len().to_string());
    assert_eq!(detail("path"), source.path().display().to_string());

    drop(source);
    assert_eq!(snapshot(&seeds_directory), before, "{variant:?}: reading never writes the file or a log beside it");
}

#[tokio::test]
async fn a_timestamp_table_reads_back_bit_exactly_as_utc() {
    check_round_trip(Variant::Naive).await;
}

#[tokio::test]
async fn a_timestamptz_table_reads_back_bit_exactly() {
    check_round_trip(Variant::Zoned).await;
}

#[tokio::test]
async fn writes_and_deletes_are_unsupported() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let path = directory.path().join("market.duckdb");
    let bars = seed_bars(Variant::Zoned);
    write_seeds_file(&path, Variant::Zoned, &bars);
    let source = SeedsDuckDbSource::open(&path).await.expect("opening the seeds file");
    let write = source.write_bars(BarBatch::from_bars(&bars[..1])).await.expect_err("a write");
    assert!(matches!(write, StoreError::Unsupported { .. }), "{write:?}");
    assert!(write.to_string().contains("read-only"), "{write}");
    let delete = source.delete_bars(&symbol("AAPL"), TimeRange::all()).await.expect_err("a delete");
    assert!(matches!(delete, StoreError::Unsupported { .. }), "{delete:?}");
    assert!(delete.to_string().contains("read-only"), "{delete}");
    let capabilities = source.capabilities();
    assert!(!capabilities.cheap_delete && !capabilities.transactions && !capabilities.durable);
    assert!(capabilities.server_side_digest);
    assert_eq!(source.summary().await.expect("the summary").total_rows(), bars.len() as u64, "nothing went");
}

#[tokio::test]
async fn bars_strata_refuses_are_named_by_symbol_and_timestamp() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let path = directory.path().join("market.duckdb");
    let mut bars = seed_bars(Variant::Naive);
    let at = micros("2020-03-09T14:30:00Z");
    bars.push(bar("MSFT", at, -1.0, 2.0, 0.5, 1.5, 10.0, 1.0, 3));
    write_seeds_file(&path, Variant::Naive, &bars);
    let source = SeedsDuckDbSource::open(&path).await.expect("opening the seeds file");
    let error = source.collect_bars(BarQuery::default()).await.expect_err("a negative price");
    assert!(matches!(error, StoreError::InvalidInput(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("MSFT at 2020-03-09T14:30:00Z: open: price -1 must be > 0"), "{message}");
    assert!(message.contains("ohlcv_bars of ") && message.contains("market.duckdb"), "{message}");
    let others = source.collect_bars(BarQuery::symbol(symbol("AAPL"))).await.expect("other symbols still read");
    assert_eq!(others.len(), bars.iter().filter(|b| b.symbol == "AAPL").count());

    // The seeds file has no key: a repeated (symbol, timestamp) is refused too.
    let twice = directory.path().join("twice.duckdb");
    let good = seed_bars(Variant::Naive);
    let mut repeated = good.clone();
    repeated.push(Bar { close: good[0].close + 0.5, high: good[0].high + 1.0, ..good[0].clone() });
    write_seeds_file(&twice, Variant::Naive, &repeated);
    let source = SeedsDuckDbSource::open(&twice).await.expect("opening the file with a repeated key");
    let error = source.collect_bars(BarQuery::default()).await.expect_err("a repeated key");
    assert!(matches!(error, StoreError::InvalidInput(_)), "{error:?}");
    let first = &good[0];
    assert!(
        error.to_string().contains(&format!("{} at {}", first.symbol, first.timestamp))
            && error.to_string().contains("more than once"),
        "{error}"
    );
}

#[tokio::test]
async fn a_key_repeated_across_result_batches_is_refused() {
    // Results come in batches of 8192 rows (four DuckDB chunks of 2048): the
    // second copy of the key below is the first row of the second batch.
    let directory = tempfile::tempdir().expect("a temporary directory");
    let path = directory.path().join("long.duckdb");
    let start = micros("2020-01-02");
    let bars: Vec<Bar> =
        (0..9000).map(|i| bar("A", start + i * 60_000_000, 10.0, 11.0, 9.0, 10.5, 1.0, 10.0, i)).collect();
    write_seeds_file(&path, Variant::Naive, &[Bar { close: 10.25, ..bars[8191].clone() }]);
    let connection = duckdb::Connection::open(&path).expect("reopening the seeds file");
    connection
        .execute_batch(
            "INSERT INTO ohlcv_bars SELECT 'A', TIMESTAMP '2020-01-02' + to_minutes(i), 10.0, 11.0, 9.0, 10.5, 1.0,
             10.0, i FROM range(9000) AS t(i)",
        )
        .expect("inserting many bars");
    drop(connection);
    let source = SeedsDuckDbSource::open(&path).await.expect("opening the seeds file");
    let error = source.collect_bars(BarQuery::default()).await.expect_err("a repeated key");
    let message = error.to_string();
    assert!(matches!(error, StoreError::InvalidInput(_)), "{error:?}");
    assert!(
        message.contains(&format!("A at {}", bars[8191].timestamp)) && message.contains("more than once"),
        "{message}"
    );
    let before = BarQuery::default().between(Timestamp(start), bars[8191].timestamp);
    assert_eq!(source.collect_bars(before).await.expect("the bars before it").len(), 8191);
}

#[tokio::test]
async fn only_seeds_layout_files_are_taken() {
    let directory = tempfile::tempdir().expect("a temporary directory");

    let strata = directory.path().join("strata.duckdb");
    let store = DuckDbStore::open(DuckDbConfig::new(&strata)).await.expect("a Strata store");
    assert!(!is_seeds_layout(&strata).expect("a Strata file open in this process"));
    drop(store);
    assert!(!is_seeds_layout(&strata).expect("a Strata file"));
    let error = SeedsDuckDbSource::open(&strata).await.expect_err("a Strata file is not a seeds file");
    assert!(matches!(error, StoreError::InvalidInput(_)), "{error:?}");
    assert!(error.to_string().contains("schema_version"), "{error}");
    DuckDbStore::open(DuckDbConfig::new(&strata)).await.expect("the Strata file is still a Strata store");

    let missing = directory.path().join("missing.duckdb");
    assert!(!is_seeds_layout(&missing).expect("a missing file"));
    let error = SeedsDuckDbSource::open(&missing).await.expect_err("a missing file");
    assert!(matches!(error, StoreError::NotFound { .. }), "{error:?}");
    assert!(!missing.exists(), "nothing was created");

    let csv = directory.path().join("bars.csv");
    std::fs::write(&csv, "symbol,timestamp,open\nAAPL,2020-01-02,1.0\n").expect("a CSV file");
    let error = is_seeds_layout(&csv).expect_err("a CSV file is never opened");
    assert!(matches!(error, StoreError::InvalidInput(_)) && error.to_string().contains("CSV"), "{error:?}");

    let other = directory.path().join("other.duckdb");
    let connection = duckdb::Connection::open(&other).expect("another DuckDB file");
    connection
        .execute_batch("CREATE TABLE ohlcv_bars (symbol TEXT, ts TIMESTAMPTZ, open DOUBLE)")
        .expect("a table with ts");
    drop(connection);
    assert!(!is_seeds_layout(&other).expect("a DuckDB file of another layout"));
    let error = SeedsDuckDbSource::open(&other).await.expect_err("no timestamp column");
    assert!(error.to_string().contains("no timestamp column"), "{error}");

    let partial = directory.path().join("partial.duckdb");
    let connection = duckdb::Connection::open(&partial).expect("a partial seeds file");
    connection
        .execute_batch(
            "CREATE TABLE ohlcv_bars (symbol TEXT, timestamp TIMESTAMP, open DOUBLE, high DOUBLE, low DOUBLE,
             close DOUBLE, volume DOUBLE)",
        )
        .expect("a seeds table without vwap and trade_count");
    drop(connection);
    assert!(is_seeds_layout(&partial).expect("a seeds table lacking columns"));
    let error = SeedsDuckDbSource::open(&partial).await.expect_err("missing columns");
    assert!(matches!(error, StoreError::InvalidInput(_)), "{error:?}");
    assert!(error.to_string().contains("lacks the column(s) vwap, trade_count"), "{error}");
}
