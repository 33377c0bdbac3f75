//! The layout of `ohlcv_bars` against a real server: the layout the server
//! offers with its reason in `health`, TimescaleDB switched off, first
//! migrations serialised by the database-wide lock, and the lock budget of
//! one write (a batch spanning too many partitions is refused
//! whole; missing partitions are created in several small transactions).
//! TimescaleDB cannot be installed where these were written, so the
//! hypertable decision is unit-tested in `schema.rs` and the fallback runs here.

mod common;

use std::time::Duration;

use sqlx::Connection as _;
use strata_adapter_neon::schema::{TIMESCALE_FACTS_SQL, TimescaleFacts, choose_layout, database_migration_lock_key};
use strata_adapter_neon::{BarLayout, NeonStore, PartitionInterval};
use strata_core::{Bar, BarBatch, MarketDataStore, StoreError, Timestamp};

/// Whether a missing service must fail the test instead of skipping it.
fn required() -> bool {
    std::env::var("STRATA_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime")
}

/// One daily bar of `symbol` per day for `days` days from 2000-01-01.
fn daily_bars(symbol: &str, days: i64) -> BarBatch {
    let start = Timestamp::from_date(chrono::NaiveDate::from_ymd_opt(2000, 1, 1).expect("a date")).micros();
    let bars: Vec<Bar> = (0..days)
        .map(|day| Bar {
            symbol: symbol.to_string(),
            timestamp: Timestamp(start + day * Timestamp::MICROS_PER_DAY),
            open: 10.0,
            high: 11.0,
            low: 9.0,
            close: 10.5,
            volume: 1_000.0,
            vwap: None,
            trade_count: None,
        })
        .collect();
    BarBatch::from_bars(&bars)
}

fn detail(details: &[(String, String)], key: &str) -> String {
    details.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default()
}

#[test]
fn the_layout_is_the_one_the_server_offers_and_health_says_why() {
    let Some(url) = common::test_url(false) else {
        assert!(!required(), "DATABASE_URL is required");
        return;
    };
    runtime().block_on(async {
        let schema = common::unique_schema("lay");
        let _guard = common::SchemaGuard::new(&url, &schema);
        let store = NeonStore::open(common::test_config(&url, &schema, false)).await.expect("open");
        let (preload_libraries, installed_version, available) =
            sqlx::query_as(TIMESCALE_FACTS_SQL).fetch_one(store.pool()).await.expect("facts");
        let facts = TimescaleFacts { preload_libraries, installed_version, available };
        let offered = choose_layout(true, &facts, PartitionInterval::Month);
        assert_eq!(store.layout(), offered.layout, "{facts:?}");
        assert_eq!(store.layout_reason(), offered.reason);
        let health = store.health().await.expect("health");
        assert!(health.ok(), "{:?}", health.details);
        let layout = detail(&health.details, "bars_layout");
        assert!(layout.contains(&offered.reason), "{layout}");
        assert_eq!(detail(&health.details, "timescaledb"), facts.describe());
        assert!(detail(&health.details, "bars_write_span").contains("at most"), "{:?}", health.details);
        if let BarLayout::Partitioned(_) = offered.layout {
            assert!(layout.starts_with("native range partitions, one per month ("), "{layout}");
            assert_eq!(store.chunk_interval(), None);
        }
    });
}

#[test]
fn switching_timescaledb_off_is_recorded_and_an_existing_layout_is_kept() {
    let Some(url) = common::test_url(false) else {
        assert!(!required(), "DATABASE_URL is required");
        return;
    };
    runtime().block_on(async {
        let schema = common::unique_schema("lay");
        let _guard = common::SchemaGuard::new(&url, &schema);
        let mut config = common::test_config(&url, &schema, false);
        config.use_timescaledb = false;
        config.partition_interval = PartitionInterval::Year;
        let store = NeonStore::open(config).await.expect("open");
        assert_eq!(store.layout(), BarLayout::Partitioned(PartitionInterval::Year));
        assert_eq!(store.layout_reason(), "disabled by STRATA_PG_TIMESCALEDB=false");
        assert_eq!(
            store.layout_description(),
            "native range partitions, one per year (disabled by STRATA_PG_TIMESCALEDB=false)"
        );
        store.close().await;
        // Opened again with other settings: the table and its reason stay as they were.
        let mut config = common::test_config(&url, &schema, false);
        config.chunk_interval = Some(Duration::from_secs(7 * 86_400));
        let again = NeonStore::open(config).await.expect("open again");
        assert_eq!(again.layout(), BarLayout::Partitioned(PartitionInterval::Year));
        assert_eq!(again.layout_reason(), "disabled by STRATA_PG_TIMESCALEDB=false");
        assert_eq!(again.chunk_interval(), None);
    });
}

#[test]
fn a_batch_spanning_too_many_partitions_is_refused_whole_with_the_fix() {
    let Some(url) = common::test_url(false) else {
        assert!(!required(), "DATABASE_URL is required");
        return;
    };
    runtime().block_on(async {
        let schema = common::unique_schema("lay");
        let _guard = common::SchemaGuard::new(&url, &schema);
        let mut config = common::test_config(&url, &schema, false);
        config.use_timescaledb = false;
        config.partition_interval = PartitionInterval::Day;
        let store = NeonStore::open(config).await.expect("open");
        // 797 daily partitions: one more than a write may lock.
        let error = store.write_bars(daily_bars("WIDE", 797)).await.expect_err("refused");
        assert!(matches!(error, StoreError::InvalidInput(_)), "not InvalidInput: {error:?}");
        let message = error.to_string();
        for words in ["797 daily partitions", "2000-01-01 to 2002-03-07", "at most 796", "STRATA_PG_PARTITION=year"] {
            assert!(message.contains(words), "{words:?} missing from: {message}");
        }
        let health = store.health().await.expect("health");
        assert_eq!(detail(&health.details, "bars_partitions"), "0", "refused before creating anything");
        assert!(store.summary().await.expect("summary").symbols.is_empty());
        // 200 days: 200 partitions, created 64 per transaction before the one write.
        let written = store.write_bars(daily_bars("WIDE", 200)).await.expect("a write within the budget");
        assert_eq!(written.rows, 200);
        let health = store.health().await.expect("health");
        assert_eq!(detail(&health.details, "bars_partitions"), "200");
        let summary = store.summary().await.expect("summary");
        assert_eq!(summary.symbols.iter().map(|s| s.rows).sum::<u64>(), 200);
    });
}

#[test]
fn first_migrations_wait_for_the_database_wide_lock_and_migrated_schemas_do_not() {
    let Some(url) = common::test_url(false) else {
        assert!(!required(), "DATABASE_URL is required");
        return;
    };
    runtime().block_on(async {
        let (migrated, fresh) = (common::unique_schema("lay"), common::unique_schema("lay"));
        let _guards = (common::SchemaGuard::new(&url, &migrated), common::SchemaGuard::new(&url, &fresh));
        NeonStore::open(common::test_config(&url, &migrated, false)).await.expect("first open").close().await;
        // Another session holds the database-wide migration lock, as a first start
        // creating the timescaledb extension would.
        let mut holder = sqlx::PgConnection::connect(&url).await.expect("a connection");
        let mut transaction = holder.begin().await.expect("begin");
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(database_migration_lock_key())
            .execute(&mut *transaction)
            .await
            .expect("the database-wide lock");
        // A schema that is up to date opens without it.
        let again =
            tokio::time::timeout(Duration::from_secs(10), NeonStore::open(common::test_config(&url, &migrated, false)))
                .await
                .expect("an up-to-date schema does not wait for the database-wide lock")
                .expect("open");
        again.close().await;
        // A first start waits for it, then migrates.
        let waiting = tokio::spawn(NeonStore::open(common::test_config(&url, &fresh, false)));
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(!waiting.is_finished(), "a first migration must wait for the database-wide lock");
        transaction.rollback().await.expect("release");
        let store = waiting.await.expect("the opening task").expect("open once the lock is free");
        let versions: Vec<i32> =
            sqlx::query_scalar(&format!("SELECT version FROM {fresh}.strata_migrations ORDER BY version"))
                .fetch_all(store.pool())
                .await
                .expect("migrations");
        assert_eq!(versions, [1, 2, 3]);
    });
}
