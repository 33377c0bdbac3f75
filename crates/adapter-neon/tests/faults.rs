//! Real faults against real PostgreSQL servers: the server stopped in the
//! middle of a large ingest, a worker process killed while holding leases,
//! TLS with right and wrong root certificates, concurrent migrations, lock
//! timeouts, and secrets kept out of errors. Tests that stop a server start
//! their own throwaway cluster (`strata-testpg`); the others use a fresh
//! schema on `DATABASE_URL`.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use strata_adapter_neon::{BarLayout, NeonConfig, NeonStore, PgSslMode};
use strata_core::evolution::{
    Completion, CompletionStatus, LeaseRequest, NewTask, RunId, RunSpec, TaskOutcome, WorkerId,
};
use strata_core::synthetic::SyntheticSpec;
use strata_core::{BarQuery, EvolutionStore, MarketDataStore, MarketDataStoreExt, StoreError, Symbol};
use strata_testpg::{Cluster, ClusterOptions, TestCertificates};

/// Whether a missing service must fail the test instead of skipping it.
fn required() -> bool {
    std::env::var("STRATA_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// A throwaway cluster, or `None` (skip) when PostgreSQL binaries are missing and not required.
fn own_cluster(options: &ClusterOptions) -> Option<Cluster> {
    match Cluster::start(options) {
        Ok(cluster) => Some(cluster),
        Err(error) if !required() => {
            eprintln!("skipped: cannot start a throwaway PostgreSQL cluster: {error}");
            None
        }
        Err(error) => panic!("cannot start a throwaway PostgreSQL cluster: {error}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime")
}

async fn count_rows(store: &NeonStore, symbol: &str) -> u64 {
    store.summary().await.expect("summary").symbols.iter().find(|s| s.symbol == symbol).map_or(0, |s| s.rows)
}

#[test]
fn server_stopped_mid_ingest_loses_the_whole_batch_then_the_same_store_carries_on() {
    let Some(mut cluster) = own_cluster(&ClusterOptions::default()) else { return };
    runtime().block_on(async {
        let mut config = common::test_config(&cluster.url(), "faults", false);
        config.retry_budget = Duration::from_millis(1500);
        let store = Arc::new(NeonStore::open(config).await.expect("open"));
        // Big enough to take seconds: the stop lands in the middle of the COPY or the upsert.
        let spec = SyntheticSpec::minutes(1, 1_500_000, 7);
        let batch = spec.batches(spec.total_rows()).next().expect("one batch");
        let symbol = batch.to_bars()[0].symbol.clone();
        let rows = batch.len() as u64;
        let writer = {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.write_bars(batch).await })
        };
        // Wait for the state, not for a time: the COPY of the batch is running on the server.
        let mut observer = sqlx::PgConnection::connect(&cluster.url()).await.expect("an observer connection");
        let started = Instant::now();
        loop {
            let copying: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query ILIKE 'COPY%' \
                 AND pid <> pg_backend_pid()",
            )
            .fetch_one(&mut observer)
            .await
            .expect("pg_stat_activity");
            if copying > 0 {
                break;
            }
            assert!(!writer.is_finished(), "the ingest finished before its COPY was seen; make the batch bigger");
            assert!(started.elapsed() < Duration::from_secs(120), "the ingest never started its COPY");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(observer);
        assert!(!writer.is_finished(), "the ingest finished before the stop; make the batch bigger");
        tokio::task::block_in_place(|| cluster.stop(true)).expect("stopping the server");
        let outcome = writer.await.expect("the writer task");
        let error = outcome.expect_err("a write whose server vanished must fail");
        assert!(matches!(error, StoreError::Unavailable { .. }), "expected Unavailable, got {error:?}");

        tokio::task::block_in_place(|| cluster.start_again()).expect("restarting the server");
        // The same store object works again, without being reopened.
        let stored = count_rows(&store, &symbol).await;
        assert!(stored == 0 || stored == rows, "all or nothing: found {stored} of {rows} rows");
        assert_eq!(stored, 0, "the failed write was not acknowledged and must not be half there");
        let small = SyntheticSpec::minutes(1, 1000, 8);
        let small = small.batches(1000).next().expect("a batch");
        store.write_bars(small.clone()).await.expect("writing after the restart");
        let back = store.collect_bars(BarQuery::symbol(Symbol::new(&symbol).expect("symbol"))).await.expect("query");
        assert_eq!(back.len(), 1000);
        assert!(store.health().await.expect("health").ok());
    });
}

/// Child role: lease every task of a run with a long-ish TTL, print the tokens, then hang until killed.
#[test]
fn lease_holder_child() {
    let (Ok(url), Ok(schema)) = (std::env::var("STRATA_CHILD_URL"), std::env::var("STRATA_CHILD_SCHEMA")) else {
        return;
    };
    runtime().block_on(async {
        let mut config = NeonConfig::from_url(&url).expect("url").with_schema(schema).expect("schema");
        config.migrate_on_start = false;
        let store = NeonStore::open(config).await.expect("open");
        let leases = store
            .lease_tasks(LeaseRequest {
                worker: WorkerId::new("doomed").expect("id"),
                run: None,
                max_tasks: 100,
                ttl: CHILD_LEASE_TTL,
            })
            .await
            .expect("lease");
        let tokens: Vec<String> = leases.iter().map(|l| l.token.0.to_string()).collect();
        println!("LEASED {}", tokens.join(","));
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

/// The lease TTL of [`lease_holder_child`].
const CHILD_LEASE_TTL: Duration = Duration::from_millis(1500);

#[test]
fn a_killed_workers_leases_are_requeued_after_the_ttl_and_its_late_results_refused() {
    let Some(url) = common::test_url(false) else {
        assert!(!required(), "DATABASE_URL is required");
        return;
    };
    runtime().block_on(async {
        let schema = common::unique_schema("kill");
        let _guard = common::SchemaGuard::new(&url, &schema);
        let store = NeonStore::open(common::test_config(&url, &schema, false)).await.expect("open");
        let run = RunId::new("killed-worker").expect("run id");
        let spec = RunSpec {
            id: run.clone(),
            strategy: "noop".into(),
            seed: 1,
            population_size: 5,
            generations: 1,
            config: "{}".into(),
        };
        store.create_run(spec).await.expect("run");
        let tasks = (0..5).map(|i| NewTask { individual: i, payload: format!("{{\"i\":{i}}}") }).collect();
        store.enqueue_tasks(&run, 0, tasks, 3).await.expect("enqueue");

        // The child leases after this instant, so its leases cannot expire before `spawned + TTL`.
        let spawned = Instant::now();
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "lease_holder_child", "--nocapture", "--test-threads=1"])
            .env("STRATA_CHILD_URL", &url)
            .env("STRATA_CHILD_SCHEMA", &schema)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the worker process");
        let stdout = child.stdout.take().expect("stdout");
        let line = tokio::task::spawn_blocking(move || {
            use std::io::BufRead as _;
            // libtest prints "test lease_holder_child ... " before the test's own output on the same line.
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find_map(|l| l.split_once("LEASED ").map(|(_, tokens)| tokens.trim().to_string()))
        })
        .await
        .expect("reader")
        .expect("the child reports its leases");
        let old_tokens: Vec<u64> = line.split(',').map(|t| t.parse().expect("token")).collect();
        assert_eq!(old_tokens.len(), 5, "the doomed worker leased every task");
        child.kill().expect("SIGKILL the worker");
        let _ = child.wait();

        let survivor = WorkerId::new("survivor").expect("id");
        let request = LeaseRequest {
            worker: survivor.clone(),
            run: Some(run.clone()),
            max_tasks: 10,
            ttl: Duration::from_secs(30),
        };
        // Whatever the load: a lease granted now proves the TTL had passed.
        let leases = loop {
            let asked = spawned.elapsed();
            let leases = store.lease_tasks(request.clone()).await.expect("lease");
            if !leases.is_empty() {
                assert!(
                    spawned.elapsed() >= CHILD_LEASE_TTL,
                    "live leases were granted again {asked:?} after the holder started (TTL {CHILD_LEASE_TTL:?})"
                );
                break leases;
            }
            assert!(spawned.elapsed() < Duration::from_secs(120), "the dead worker's leases never expired");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(leases.len(), 5);
        assert!(leases.iter().all(|l| l.attempt == 2 && old_tokens.iter().all(|old| l.token.0 > *old)));

        // A late completion under the dead worker's token changes nothing.
        let late = Completion {
            key: leases[0].key.clone(),
            token: strata_core::evolution::FencingToken(old_tokens[0]),
            outcome: TaskOutcome::Succeeded { fitness: 99.0, result: "{}".into() },
            cache_key: None,
        };
        let doomed = WorkerId::new("doomed").expect("id");
        assert_eq!(store.complete_tasks(&doomed, vec![late]).await.expect("complete"), [CompletionStatus::Stale]);
        let completions = leases
            .iter()
            .map(|l| Completion {
                key: l.key.clone(),
                token: l.token,
                outcome: TaskOutcome::Succeeded { fitness: 1.0, result: "{}".into() },
                cache_key: None,
            })
            .collect();
        let statuses = store.complete_tasks(&survivor, completions).await.expect("complete");
        assert!(statuses.iter().all(|s| *s == CompletionStatus::Recorded));
        let counts = store.task_counts(&run, 0).await.expect("counts");
        assert_eq!((counts.done, counts.pending, counts.leased), (5, 0, 0));
        assert!(store.list_tasks(&run, 0).await.expect("tasks").iter().all(|t| t.fitness == Some(1.0)));
    });
}

#[test]
fn tls_verify_full_works_with_the_right_root_and_fails_clearly_with_the_wrong_one() {
    let scratch = std::env::temp_dir().join(format!("strata-tls-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let certificates = match TestCertificates::generate(&scratch, "right") {
        Ok(certificates) => certificates,
        Err(error) if !required() => return eprintln!("skipped: openssl unavailable: {error}"),
        Err(error) => panic!("openssl: {error}"),
    };
    let wrong = TestCertificates::generate(&scratch, "wrong").expect("a second CA");
    let Some(cluster) = own_cluster(&ClusterOptions { tls: Some(certificates.clone()), ..Default::default() }) else {
        return;
    };
    runtime().block_on(async {
        let url = format!("postgres://postgres@localhost:{}/postgres", cluster.port());
        let config = |root: &std::path::Path| {
            let mut config =
                common::test_config(&url, "tls", false).with_ssl_mode(PgSslMode::VerifyFull).with_ssl_root_cert(root);
            config.retry_budget = Duration::from_millis(300);
            config.acquire_timeout = Duration::from_secs(5);
            config
        };
        let store = NeonStore::open(config(&certificates.ca_cert)).await.expect("verify-full with the right CA");
        assert!(store.health().await.expect("health").ok());
        let ssl_in_use: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(store.pool())
            .await
            .expect("pg_stat_ssl");
        assert!(ssl_in_use, "the connection must really be encrypted");

        let error = NeonStore::open(config(&wrong.ca_cert)).await.expect_err("the wrong CA must be refused");
        // The driver's words are in the (masked) source chain, as the CLI prints it.
        let mut message = error.to_string();
        let mut cause = std::error::Error::source(&error);
        while let Some(next) = cause {
            message = format!("{message}: {next}");
            cause = next.source();
        }
        assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
        assert!(message.contains("TLS") || message.to_lowercase().contains("certificate"), "{message}");

        // verify-full also checks the host name: 127.0.0.1 is in the certificate, so it passes,
        // and plain `require` without a root connects without verifying.
        let by_ip = format!("postgres://postgres@127.0.0.1:{}/postgres?sslmode=require", cluster.port());
        let store = NeonStore::open(common::test_config(&by_ip, "tls", false)).await.expect("sslmode=require");
        assert!(store.health().await.expect("health").ok());
    });
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn concurrent_first_starts_apply_each_migration_exactly_once() {
    use strata_adapter_neon::schema::{TIMESCALE_FACTS_SQL, TimescaleFacts, choose_layout};

    let Some(url) = common::test_url(false) else {
        assert!(!required(), "DATABASE_URL is required");
        return;
    };
    runtime().block_on(async {
        // Six first starts on two schemas of one database at once: each schema's
        // migrations are serialised by its own lock, and the database-wide steps
        // (CREATE EXTENSION where TimescaleDB can load) by the database-wide one.
        let schemas = [common::unique_schema("mig"), common::unique_schema("mig")];
        let _guards: Vec<_> = schemas.iter().map(|schema| common::SchemaGuard::new(&url, schema)).collect();
        let opens = (0..6).map(|i| NeonStore::open(common::test_config(&url, &schemas[i % 2], false)));
        let stores = futures::future::join_all(opens).await;
        for store in &stores {
            assert!(store.is_ok(), "{:?}", store.as_ref().err());
        }
        let stores: Vec<NeonStore> = stores.into_iter().map(|store| store.expect("open")).collect();
        for schema in &schemas {
            let versions: Vec<i32> =
                sqlx::query_scalar(&format!("SELECT version FROM {schema}.strata_migrations ORDER BY version"))
                    .fetch_all(stores[0].pool())
                    .await
                    .expect("migrations");
            assert_eq!(versions, [1, 2, 3], "each migration recorded once in {schema}");
        }
        // The layout is the one this server offers: a hypertable where TimescaleDB
        // can load, native partitions otherwise (here, without TimescaleDB).
        let (preload_libraries, installed_version, available) =
            sqlx::query_as(TIMESCALE_FACTS_SQL).fetch_one(stores[0].pool()).await.expect("facts");
        let facts = TimescaleFacts { preload_libraries, installed_version, available };
        let offered = choose_layout(true, &facts, Default::default()).layout;
        let word = if matches!(offered, BarLayout::Hypertable) { "hypertable" } else { "partitions" };
        for store in &stores {
            assert_eq!(store.layout(), offered, "{facts:?}");
            let health = store.health().await.expect("health");
            assert!(health.ok(), "{:?}", health.details);
            let layout = health.details.iter().find(|(k, _)| k == "bars_layout").map(|(_, v)| v.clone());
            assert!(layout.as_deref().is_some_and(|v| v.contains(word) && v.contains('(')), "{:?}", health.details);
        }
    });
}

#[test]
fn a_held_lock_is_a_timeout_not_a_hang() {
    let Some(url) = common::test_url(false) else {
        assert!(!required(), "DATABASE_URL is required");
        return;
    };
    runtime().block_on(async {
        let schema = common::unique_schema("lock");
        let _guard = common::SchemaGuard::new(&url, &schema);
        let mut config = common::test_config(&url, &schema, false);
        config.lock_timeout = Duration::from_millis(200);
        let store = NeonStore::open(config).await.expect("open");
        let mut holder = sqlx::PgConnection::connect(&url).await.expect("second connection");
        sqlx::query("BEGIN").execute(&mut holder).await.expect("begin");
        sqlx::query(&format!("LOCK TABLE {schema}.runs IN ACCESS EXCLUSIVE MODE"))
            .execute(&mut holder)
            .await
            .expect("lock");
        let started = Instant::now();
        let error = store.list_runs().await.expect_err("the lock is held");
        assert!(matches!(error, StoreError::Timeout { .. }), "{error:?}");
        // The lock timeout is 200 ms; a hang would last as long as the holder (forever).
        assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
        sqlx::query("ROLLBACK").execute(&mut holder).await.expect("rollback");
        assert!(store.list_runs().await.expect("after the lock").is_empty());
    });
}

#[test]
fn passwords_never_appear_in_errors_or_debug_output() {
    runtime().block_on(async {
        let port = strata_testpg::free_port().expect("a free port");
        let mut config =
            NeonConfig::from_url(&format!("postgres://alice:s3cr3t-pw@127.0.0.1:{port}/db?sslmode=disable"))
                .expect("url");
        config.retry_budget = Duration::from_millis(200);
        config.acquire_timeout = Duration::from_millis(500);
        assert!(!format!("{config:?}").contains("s3cr3t"));
        let error = NeonStore::open(config).await.expect_err("nothing listens there");
        assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
        assert!(!error.to_string().contains("s3cr3t") && !format!("{error:?}").contains("s3cr3t"), "{error}");
    });
}

#[test]
fn racing_writers_of_the_same_fresh_keys_both_succeed_and_the_last_commit_wins() {
    let Some(url) = common::test_url(false) else {
        assert!(!required(), "DATABASE_URL is required");
        return;
    };
    runtime().block_on(async {
        let schema = common::unique_schema("race");
        let _guard = common::SchemaGuard::new(&url, &schema);
        let store = Arc::new(NeonStore::open(common::test_config(&url, &schema, false)).await.expect("open"));
        // Both see an empty key range and take the direct-COPY path; one of them hits the
        // other's keys and must fall back to the upsert inside the same transaction.
        for round in 0..5u64 {
            let spec = SyntheticSpec::minutes(2, 20_000, 100 + round);
            let first = spec.batches(spec.total_rows()).next().expect("a batch");
            let mut second_bars = first.to_bars();
            for bar in &mut second_bars {
                bar.volume += 1.0;
            }
            let second = strata_core::BarBatch::from_bars(&second_bars);
            let (a, b) = tokio::join!(store.write_bars(first.clone()), store.write_bars(second.clone()));
            a.expect("first writer");
            b.expect("second writer");
            let stored = store.summary().await.expect("summary").total_rows();
            // Every round writes the same keys (new values): the first races two fresh loads,
            // the later ones two upserts.
            assert_eq!(stored, first.len() as u64, "no key doubled, none lost");
            let back = store
                .collect_bars(BarQuery::symbol(Symbol::new(&spec.symbols[0]).expect("symbol")))
                .await
                .expect("query");
            let volumes: std::collections::HashSet<bool> = back
                .iter()
                .map(|bar| second_bars.iter().any(|b| b.timestamp == bar.timestamp && b.volume == bar.volume))
                .collect();
            assert_eq!(volumes.len(), 1, "each batch is atomic: all rows from one writer or the other");
        }
    });
}
