//! `SeedsPgSource` against the Python system's `ohlcv_bars` on the server at
//! `DATABASE_URL`, each test in fresh schemas (dropped at the end): a
//! `timestamp` table with `integer` trade counts and symbols in a linguistic
//! collation, and a `timestamptz` one with `bigint`. Every value
//! comes back bit-exactly, queries, summaries and digests equal those of a
//! `NeonStore` holding the same bars, nothing is written, bars Strata would
//! refuse are named by symbol and timestamp, and no message shows a password.
//! Skipped (with a message) without `DATABASE_URL`; a failure under
//! `STRATA_REQUIRE_SERVICES=1`.

mod common;

use sqlx::Connection as _;
use strata_adapter_neon::NeonStore;
use strata_adapter_neon::seeds::{SeedsPgSource, detect};
use strata_core::digest::digest_bars;
use strata_core::{
    Bar, BarBatch, BarQuery, DigestQuery, MarketDataStore, MarketDataStoreExt, Order, StoreError, Symbol, TimeRange,
    Timestamp,
};

/// Whether a missing service must fail the test instead of skipping it.
fn required() -> bool {
    std::env::var("STRATA_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The server to test against, or `None` after saying why the test is skipped.
fn server() -> Option<String> {
    let url = common::test_url(false);
    assert!(url.is_some() || !required(), "DATABASE_URL is required (STRATA_REQUIRE_SERVICES=1)");
    url
}

/// The two column types of `timestamp` (and of `trade_count` with it).
#[derive(Debug, Clone, Copy)]
enum Variant {
    /// `timestamp` (read as UTC), `integer` trade counts, symbols in a
    /// linguistic collation (so byte order must be asked for).
    Naive,
    /// `timestamptz` and `bigint` trade counts.
    Zoned,
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
/// bit-exactly: `0.1 + 0.2`, thirds, tiny and huge values, `-0.0`.
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

/// Creates `<schema>.ohlcv_bars` in the seeds layout holding `bars`.
async fn create_seeds_table(url: &str, schema: &str, variant: Variant, bars: &[Bar]) {
    let mut connection = sqlx::PgConnection::connect(url).await.expect("connecting to the test server");
    let icu: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'en-x-icu')")
        .fetch_one(&mut connection)
        .await
        .expect("looking for an ICU collation");
    let (timestamp, count, collation) = match variant {
        Variant::Naive => ("TIMESTAMP", "INTEGER", if icu { " COLLATE \"en-x-icu\"" } else { "" }),
        Variant::Zoned => ("TIMESTAMPTZ", "BIGINT", ""),
    };
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.ohlcv_bars (
             symbol TEXT{collation} NOT NULL,
             timestamp {timestamp} NOT NULL,
             open DOUBLE PRECISION NOT NULL,
             high DOUBLE PRECISION NOT NULL,
             low DOUBLE PRECISION NOT NULL,
             close DOUBLE PRECISION NOT NULL,
             volume DOUBLE PRECISION NOT NULL,
             vwap DOUBLE PRECISION NOT NULL,
             trade_count {count} NOT NULL
         );
         CREATE UNIQUE INDEX ohlcv_bars_symbol_time_idx ON {schema}.ohlcv_bars (symbol, timestamp DESC);"
    ))
    .execute(&mut connection)
    .await
    .expect("creating the seeds table");
    let insert = format!("INSERT INTO {schema}.ohlcv_bars VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
    for bar in bars {
        let instant = bar.timestamp.to_datetime().expect("a representable timestamp");
        let query = sqlx::query(&insert).bind(&bar.symbol);
        let query = match variant {
            Variant::Naive => query.bind(instant.naive_utc()),
            Variant::Zoned => query.bind(instant),
        };
        let query = query.bind(bar.open).bind(bar.high).bind(bar.low).bind(bar.close).bind(bar.volume).bind(bar.vwap);
        let count = bar.trade_count.expect("seeds bars have trade counts");
        let query = match variant {
            Variant::Naive => query.bind(i32::try_from(count).expect("an integer trade count")),
            Variant::Zoned => query.bind(count),
        };
        query.execute(&mut connection).await.expect("inserting a bar");
    }
    connection.close().await.expect("closing");
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

/// Every row of `<schema>.ohlcv_bars`, as text, to see that nothing changed.
async fn table_text(url: &str, schema: &str) -> Vec<String> {
    let mut connection = sqlx::PgConnection::connect(url).await.expect("connecting to the test server");
    let rows: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT t::text FROM {schema}.ohlcv_bars AS t ORDER BY symbol COLLATE \"C\", timestamp"
    ))
    .fetch_all(&mut connection)
    .await
    .expect("reading the seeds table");
    connection.close().await.expect("closing");
    rows
}

async fn check_round_trip(url: &str, variant: Variant) {
    let seeds_schema = common::unique_schema("seeds");
    let _seeds_guard = common::SchemaGuard::new(url, &seeds_schema);
    let strata_schema = common::unique_schema("seedsref");
    let _strata_guard = common::SchemaGuard::new(url, &strata_schema);
    let bars = seed_bars(variant);
    create_seeds_table(url, &seeds_schema, variant, &bars).await;
    let before = table_text(url, &seeds_schema).await;
    assert!(detect(url, &seeds_schema).await.expect("detecting the seeds layout"), "{variant:?}");

    let source = SeedsPgSource::open(url, &seeds_schema).await.expect("opening the seeds table");
    assert_eq!(source.to_string(), "neon-seeds");
    assert_eq!(source.table(), format!("{seeds_schema}.ohlcv_bars"));
    let store = NeonStore::open(common::test_config(url, &strata_schema, false)).await.expect("a Strata store");
    store.write_bars(BarBatch::from_bars(&bars)).await.expect("writing the reference bars");

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
    assert_eq!(health.backend, "neon-seeds");
    let detail = |key: &str| health.details.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default();
    assert!(detail("layout").contains("read-only") && detail("layout").contains("seeds"), "{health:?}");
    assert_eq!(detail("table"), format!("{seeds_schema}.ohlcv_bars"));
    assert!(detail("round_trip_ms").parse::<f64>().is_ok(), "{health:?}");

    source.close().await;
    store.close().await;
    assert_eq!(table_text(url, &seeds_schema).await, before, "{variant:?}: reading changes nothing");
}

#[tokio::test]
async fn a_timestamp_table_reads_back_bit_exactly_as_utc() {
    let Some(url) = server() else { return };
    check_round_trip(&url, Variant::Naive).await;
}

#[tokio::test]
async fn a_timestamptz_table_reads_back_bit_exactly() {
    let Some(url) = server() else { return };
    check_round_trip(&url, Variant::Zoned).await;
}

#[tokio::test]
async fn writes_and_deletes_are_unsupported() {
    let Some(url) = server() else { return };
    let schema = common::unique_schema("seedsro");
    let _guard = common::SchemaGuard::new(&url, &schema);
    let bars = seed_bars(Variant::Zoned);
    create_seeds_table(&url, &schema, Variant::Zoned, &bars).await;
    let source = SeedsPgSource::open(&url, &schema).await.expect("opening the seeds table");
    let write = source.write_bars(BarBatch::from_bars(&bars[..1])).await.expect_err("a write");
    assert!(matches!(write, StoreError::Unsupported { .. }), "{write:?}");
    assert!(write.to_string().contains("read-only"), "{write}");
    let delete = source.delete_bars(&symbol("AAPL"), TimeRange::all()).await.expect_err("a delete");
    assert!(matches!(delete, StoreError::Unsupported { .. }), "{delete:?}");
    assert!(delete.to_string().contains("read-only"), "{delete}");
    let capabilities = source.capabilities();
    assert!(!capabilities.cheap_delete && !capabilities.transactions && !capabilities.durable);
    assert!(capabilities.shared_across_hosts && !capabilities.server_side_digest);
    assert_eq!(source.summary().await.expect("the summary").total_rows(), bars.len() as u64, "nothing went");
    source.close().await;
}

#[tokio::test]
async fn bars_strata_refuses_are_named_by_symbol_and_timestamp() {
    let Some(url) = server() else { return };
    let schema = common::unique_schema("seedsbad");
    let _guard = common::SchemaGuard::new(&url, &schema);
    let mut bars = seed_bars(Variant::Zoned);
    bars.push(bar("MSFT", micros("2020-03-09T14:30:00Z"), -1.0, 2.0, 0.5, 1.5, 10.0, 1.0, 3));
    create_seeds_table(&url, &schema, Variant::Zoned, &bars).await;
    let source = SeedsPgSource::open(&url, &schema).await.expect("opening the seeds table");
    let error = source.collect_bars(BarQuery::default()).await.expect_err("a negative price");
    assert!(matches!(error, StoreError::InvalidInput(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("MSFT at 2020-03-09T14:30:00Z: open: price -1 must be > 0"), "{message}");
    assert!(message.contains(&format!("{schema}.ohlcv_bars")), "{message}");
    let others = source.collect_bars(BarQuery::symbol(symbol("AAPL"))).await.expect("other symbols still read");
    assert_eq!(others.len(), bars.iter().filter(|b| b.symbol == "AAPL").count());
    source.close().await;
}

#[tokio::test]
async fn only_seeds_layout_schemas_are_taken_and_passwords_never_show() {
    let Some(url) = server() else { return };
    let strata_schema = common::unique_schema("seedsnot");
    let _guard = common::SchemaGuard::new(&url, &strata_schema);
    let store = NeonStore::open(common::test_config(&url, &strata_schema, false)).await.expect("a Strata schema");
    store.close().await;
    assert!(!detect(&url, &strata_schema).await.expect("a Strata schema"));
    let error = SeedsPgSource::open(&url, &strata_schema).await.expect_err("a Strata schema is not seeds");
    assert!(matches!(error, StoreError::InvalidInput(_)), "{error:?}");
    assert!(error.to_string().contains("strata_migrations"), "{error}");

    let missing = common::unique_schema("seedsnone");
    assert!(!detect(&url, &missing).await.expect("a missing schema"));

    // The test server trusts every connection, so a password in the URL is
    // accepted and ignored: it must not appear in any message.
    let mut with_password = url::Url::parse(&url).expect("DATABASE_URL is a URL");
    with_password.set_password(Some("hunter2")).expect("a URL with a host takes a password");
    let error = SeedsPgSource::open(with_password.as_str(), &missing).await.expect_err("no table");
    let message = error.to_string();
    assert!(message.contains("there is no table") && message.contains("***"), "{message}");
    assert!(!message.contains("hunter2") && !format!("{error:?}").contains("hunter2"), "{message}");

    let seeds_schema = common::unique_schema("seedspw");
    let _seeds_guard = common::SchemaGuard::new(&url, &seeds_schema);
    create_seeds_table(&url, &seeds_schema, Variant::Zoned, &seed_bars(Variant::Zoned)).await;
    let source = SeedsPgSource::open(with_password.as_str(), &seeds_schema).await.expect("opening with a password");
    let shown = format!("{source:?} {:?}", source.health().await.expect("health"));
    assert!(!shown.contains("hunter2") && shown.contains("***"), "{shown}");
    source.close().await;

    let error = SeedsPgSource::open(&url, "Robert'); DROP TABLE x;--").await.expect_err("a bad schema name");
    assert!(matches!(error, StoreError::InvalidInput(_)), "{error:?}");
}
