//! The hybrid stack with real components: PostgreSQL as the primary (a
//! fresh schema on `DATABASE_URL`, or a throwaway cluster for the tests that
//! stop it), a DuckDB file as the cache, the journal on local disk.
//!
//! - the conformance suite through the stack with the primary up (cold
//!   routing: reads from PostgreSQL; and everything-cacheable routing: reads
//!   through the coverage-tracked cache) and with the primary down (every
//!   case but health, whose store is rightly degraded);
//! - PostgreSQL stopped (`pg_ctl stop -m immediate`) in the middle of a
//!   stream of writes and started again: every acknowledged row in the
//!   primary after replay, primary and cache digests equal;
//! - a primary that commits and then drops the connection before answering;
//! - a batch the primary refuses parked with its reason, not blocking the rest;
//! - the writer process SIGKILLed at random points of journal append and
//!   replay, round after round: nothing acknowledged lost, nothing
//!   duplicated or reverted (`STRATA_KILL_ROUNDS`, default 24; the nightly
//!   size is a few hundred).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strata_adapter_neon::NeonStore;
use strata_core::{
    Bar, BarBatch, BarQuery, DigestQuery, Durability, MarketDataStore, MarketDataStoreExt, Symbol, Timestamp,
};
use strata_hybrid::cached::Routing;
use strata_hybrid::journal::{Journal, JournalOp};
use strata_hybrid::stack::{HybridConfig, HybridStack};
use strata_testpg::TempSchema;

mod common;
use common::*;

mod normal_cold_routing {
    use super::*;

    strata_tests::market_conformance!(|| async {
        let url = database_url()?;
        Some(stack_on(&url, Routing::default()).await)
    });
}

mod normal_everything_cached {
    use super::*;

    strata_tests::market_conformance!(|| async {
        let url = database_url()?;
        Some(stack_on(&url, everything_cacheable()).await)
    });
}

#[test]
fn health_of_a_stack_with_its_primary_down_is_degraded_and_names_every_layer() {
    runtime().block_on(async {
        let fixture = stack_with_primary_down(Routing::default()).await;
        let store = &fixture.stack.store;
        let report = store.write_bars(batch_of(1, 0)).await.unwrap();
        assert_eq!(report.durability, Durability::Journaled);
        let health = store.health().await.unwrap();
        assert_eq!(health.status, strata_core::HealthStatus::Degraded, "{health:?}");
        let text = format!("{health:?}");
        for layer in ["metered", "cached", "failover", "timeout", "neon", "duckdb", "journal"] {
            assert!(text.contains(layer), "{layer} missing from {text}");
        }
        let detail = |key: &str| health_detail(&health, key);
        assert_eq!(detail("mode").as_deref(), Some("degraded"), "{text}");
        assert_eq!(detail("journal_depth").as_deref(), Some("1"), "{text}");
        assert!(detail("oldest_journaled_ms").is_some(), "{text}");
    });
}

/// The first value of `key` anywhere in the report tree.
fn health_detail(report: &strata_core::HealthReport, key: &str) -> Option<String> {
    report
        .details
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .or_else(|| report.components.iter().find_map(|part| health_detail(part, key)))
}

const SLOTS: u64 = 7;
const ROWS_PER_BATCH: u64 = 20;
const DAY0: i64 = 1_577_836_800_000_000; // 2020-01-01

/// Batch `number`: the 20 keys of slot `number % 7` of symbol `S{symbol}`,
/// every price equal to the batch number, so the value tells which batch
/// wrote a row last.
fn batch_of(number: u64, symbol: u64) -> BarBatch {
    let slot = number % SLOTS;
    let value = number as f64 + 1.0;
    let bars: Vec<Bar> = (0..ROWS_PER_BATCH)
        .map(|j| Bar {
            symbol: format!("S{symbol}"),
            timestamp: Timestamp(DAY0 + ((slot * ROWS_PER_BATCH + j) as i64) * 3_600_000_000),
            open: value,
            high: value,
            low: value,
            close: value,
            volume: 1.0,
            vwap: None,
            trade_count: Some(number as i64),
        })
        .collect();
    BarBatch::from_bars(&bars)
}

/// Key -> the batch number that wrote it, read from `store`.
async fn written_by(store: &dyn MarketDataStore, symbol: u64) -> BTreeMap<i64, u64> {
    let bars = store.collect_bars(BarQuery::symbol(Symbol::new(format!("S{symbol}")).unwrap())).await.unwrap();
    let mut keys = BTreeMap::new();
    for bar in bars {
        assert!(keys.insert(bar.timestamp.0, bar.close as u64 - 1).is_none(), "a key appears twice");
    }
    keys
}

/// Drains the stack's journal until it is empty, for at most a minute.
async fn drain_all(stack: &HybridStack) {
    let started = Instant::now();
    loop {
        let report = stack.sync().await.unwrap();
        if report.remaining == 0 {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the journal did not drain: {report:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn primary_stopped_mid_stream_then_started_loses_nothing_and_primary_equals_cache() {
    let Some(mut cluster) = own_cluster() else { return };
    let url = cluster.url();
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = HybridConfig::new(dir.path().join("state"));
        let stack =
            HybridStack::build(lazy_primary(primary_config(&url, "public")), duckdb_cache(dir.path()).await, &config)
                .unwrap();
        let mut journaled = 0;
        let mut stopped_at = None;
        let mut first_journaled_after = None;
        for number in 0..300u64 {
            if number == 100 {
                cluster.stop(true).unwrap();
                stopped_at = Some(Instant::now());
            }
            if number == 200 {
                cluster.start_again().unwrap();
            }
            let report = stack.store.write_bars(batch_of(number, number % 3)).await.unwrap();
            assert_eq!(report.rows, ROWS_PER_BATCH);
            if report.durability == Durability::Journaled {
                journaled += 1;
                if first_journaled_after.is_none() {
                    first_journaled_after = stopped_at.map(|at| at.elapsed());
                }
            }
        }
        assert!(journaled >= 100, "the writes while the server was down were journaled ({journaled})");
        eprintln!(
            "{journaled} of 300 batches journaled; first journaled write {:?} after the stop",
            first_journaled_after
        );
        drain_all(&stack).await;
        let primary = NeonStore::open(primary_config(&url, "public")).await.unwrap();
        for symbol in 0..3 {
            let keys = written_by(&primary, symbol).await;
            // The last batch of each (symbol, slot) wins.
            let mut expected = BTreeMap::new();
            for number in (0..300u64).filter(|n| n % 3 == symbol) {
                for j in 0..ROWS_PER_BATCH {
                    let slot = number % SLOTS;
                    expected.insert(DAY0 + ((slot * ROWS_PER_BATCH + j) as i64) * 3_600_000_000, number);
                }
            }
            assert_eq!(keys, expected, "symbol S{symbol} after replay");
        }
        let cache = fixture_cache(&stack);
        let everything = DigestQuery::default();
        assert_eq!(
            primary.digest(everything.clone()).await.unwrap(),
            cache.digest(everything).await.unwrap(),
            "primary and cache digests"
        );
    });
}

/// The cache of a stack (its health names it; tests reach it through the component).
fn fixture_cache(stack: &HybridStack) -> Arc<dyn MarketDataStore> {
    stack.cache.clone()
}

#[test]
fn a_batch_the_primary_refuses_is_parked_and_the_rest_replays() {
    let Some(url) = database_url() else { return };
    runtime().block_on(async {
        let schema = unique("hyp");
        let _guard = TempSchema::new(&url, &schema);
        let dir = tempfile::tempdir().unwrap();
        let config = HybridConfig::new(dir.path().join("state"));
        // Journal three entries by hand, the middle one with a negative price.
        let journal = Journal::open(&config.state_dir.join("journal")).unwrap();
        journal.append(&JournalOp::Write(batch_of(1, 0))).unwrap();
        let mut bad = batch_of(2, 0).to_bars();
        bad[3].low = -5.0;
        journal.append(&JournalOp::Write(BarBatch::from_bars(&bad))).unwrap();
        journal.append(&JournalOp::Write(batch_of(3, 0))).unwrap();
        let stack =
            HybridStack::build(lazy_primary(primary_config(&url, &schema)), duckdb_cache(dir.path()).await, &config)
                .unwrap();
        let report = stack.sync().await.unwrap();
        assert_eq!(report.applied, 2, "{report:?}");
        assert_eq!(report.parked.len(), 1, "{report:?}");
        assert!(report.parked[0].1.contains("invalid"), "the reason says why: {report:?}");
        assert_eq!(report.remaining, 0);
        let parked = journal.parked().unwrap();
        assert_eq!(parked.len(), 1);
        assert!(parked[0].reason.contains("low"), "{:?}", parked[0]);
        let primary = NeonStore::open(primary_config(&url, &schema)).await.unwrap();
        let keys = written_by(&primary, 0).await;
        assert_eq!(keys.len() as u64, 2 * ROWS_PER_BATCH, "batches 1 and 3 landed, 2 did not");
        assert!(keys.values().all(|&number| number == 1 || number == 3));
        // A second sync does not retry the parked batch.
        assert_eq!(stack.sync().await.unwrap().applied, 0);
    });
}

/// A TCP proxy to `upstream` that, once armed, forwards the first client
/// message containing `COMMIT`, waits for the server to act on it, and then
/// closes the client's connection without passing the answer on.
struct CommitDropper {
    port: u16,
    armed: Arc<std::sync::atomic::AtomicBool>,
    dropped: Arc<AtomicU64>,
}

impl CommitDropper {
    async fn start(upstream: u16) -> CommitDropper {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let (armed_task, dropped_task) = (armed.clone(), dropped.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let (armed, dropped) = (armed_task.clone(), dropped_task.clone());
                let cut = Arc::new(tokio::sync::Notify::new());
                let cut_reader = cut.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 64 * 1024];
                    tokio::select! {
                        _ = async {
                            while let Ok(n) = server_read.read(&mut buffer).await {
                                if n == 0 || client_write.write_all(&buffer[..n]).await.is_err() {
                                    break;
                                }
                            }
                        } => {}
                        _ = cut_reader.notified() => {}
                    }
                });
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(n) = client_read.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                        let commit = buffer[..n].windows(6).any(|w| w.eq_ignore_ascii_case(b"COMMIT"));
                        let cutting = commit && armed.swap(false, Ordering::SeqCst);
                        if cutting {
                            // Stop passing the server's answers on before the COMMIT goes out.
                            cut.notify_one();
                            dropped.fetch_add(1, Ordering::SeqCst);
                        }
                        if server_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                        if cutting {
                            // Let the server commit, then close the client's connection unanswered.
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            break;
                        }
                    }
                });
            }
        });
        CommitDropper { port, armed, dropped }
    }
}

#[test]
fn a_commit_whose_answer_is_lost_is_resolved_without_a_visible_double_apply() {
    let Some(cluster) = own_cluster() else { return };
    runtime().block_on(async {
        let proxy = CommitDropper::start(cluster.port()).await;
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres", proxy.port);
        let dir = tempfile::tempdir().unwrap();
        let config = HybridConfig::new(dir.path().join("state"));
        let mut primary = primary_config(&url, "public");
        primary.max_connections = 1;
        let stack = HybridStack::build(lazy_primary(primary), duckdb_cache(dir.path()).await, &config).unwrap();
        // Opens the primary (migrations commit too) before the proxy is armed.
        let first = stack.store.write_bars(batch_of(0, 0)).await.unwrap();
        assert_eq!(first.durability, Durability::Committed, "{:?}", stack.store.health().await);
        proxy.armed.store(true, Ordering::SeqCst);
        let report = stack.store.write_bars(batch_of(1, 0)).await.unwrap();
        assert_eq!(proxy.dropped.load(Ordering::SeqCst), 1, "the proxy cut a connection after its COMMIT");
        eprintln!("the write whose COMMIT answer was lost was acknowledged as {:?}", report.durability);
        drain_all(&stack).await;
        stack.store.write_bars(batch_of(8, 0)).await.unwrap();
        let direct = NeonStore::open(primary_config(&cluster.url(), "public")).await.unwrap();
        let keys = written_by(&direct, 0).await;
        let expect = |number: u64| {
            (0..ROWS_PER_BATCH)
                .map(move |j| (DAY0 + (((number % SLOTS) * ROWS_PER_BATCH + j) as i64) * 3_600_000_000, number))
        };
        let expected: BTreeMap<i64, u64> = expect(0).chain(expect(1)).chain(expect(8)).collect();
        assert_eq!(keys, expected, "each key once, with the value of its last write");
    });
}

/// The writer of the kill loop, run as a child process of the test below
/// (`STRATA_HYBRID_CHILD` set): writes batches from `STRATA_CHILD_FROM` on,
/// printing `ack N committed|journaled` after each acknowledgement.
#[test]
fn kill_loop_child() {
    let Ok(state) = std::env::var("STRATA_HYBRID_CHILD") else { return };
    let url = std::env::var("STRATA_CHILD_URL").unwrap();
    let from: u64 = std::env::var("STRATA_CHILD_FROM").unwrap().parse().unwrap();
    runtime().block_on(async move {
        let state = PathBuf::from(state);
        let config = HybridConfig::new(state.join("state"));
        let stack =
            HybridStack::build(lazy_primary(primary_config(&url, "public")), duckdb_cache(&state).await, &config)
                .unwrap();
        stack.start_replayer(strata_core::policy::Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(200),
            Duration::MAX,
        ));
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready").unwrap();
        for number in from.. {
            let report = stack.store.write_bars(batch_of(number, 0)).await.unwrap();
            let how = if report.durability == Durability::Journaled { "journaled" } else { "committed" };
            writeln!(out, "ack {number} {how}").unwrap();
            out.flush().unwrap();
        }
    });
}

#[test]
fn writer_killed_at_random_points_loses_nothing_and_reverts_nothing() {
    let Some(mut cluster) = own_cluster() else { return };
    let rounds: u64 = std::env::var("STRATA_KILL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(24);
    let state = tempfile::tempdir().unwrap();
    let mut random = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    let mut next_random = move || {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        random
    };
    let (mut acked, mut journaled_acks, mut kills, mut next) = (BTreeMap::<u64, bool>::new(), 0u64, 0u64, 0u64);
    let mut up = true;
    for round in 0..rounds {
        // Every few rounds the primary goes down or comes back: kills land in appends and in replays.
        if round % 3 == 2 {
            if up {
                cluster.stop(true).unwrap();
            } else {
                cluster.start_again().unwrap();
            }
            up = !up;
        }
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "kill_loop_child", "--nocapture", "--test-threads", "1"])
            .env("STRATA_HYBRID_CHILD", state.path())
            .env("STRATA_CHILD_URL", cluster.url())
            .env("STRATA_CHILD_FROM", next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until it is writing, then kill it after a random while.
        let started = Instant::now();
        loop {
            match receiver.recv_timeout(Duration::from_secs(60)) {
                // libtest prints "test kill_loop_child ... " before the test writes.
                Ok(line) if line.ends_with("ready") => break,
                Ok(_) => {}
                Err(error) => panic!("the child never got ready: {error}"),
            }
            assert!(started.elapsed() < Duration::from_secs(60));
        }
        std::thread::sleep(Duration::from_millis(20 + next_random() % 400));
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        reader.join().unwrap();
        for line in receiver.try_iter() {
            let Some(at) = line.find("ack ") else { continue };
            let mut parts = line[at..].split_whitespace();
            if parts.next() == Some("ack") {
                let number: u64 = parts.next().unwrap().parse().unwrap();
                let journaled = parts.next() == Some("journaled");
                journaled_acks += u64::from(journaled);
                acked.insert(number, journaled);
                next = next.max(number + 1);
            }
        }
        // The batch being written when the child died may or may not have
        // landed; the next round starts after it (same content if rewritten).
        next += 1;
    }
    if !up {
        cluster.start_again().unwrap();
    }
    runtime().block_on(async {
        let config = HybridConfig::new(state.path().join("state"));
        let stack = HybridStack::build(
            lazy_primary(primary_config(&cluster.url(), "public")),
            duckdb_cache(state.path()).await,
            &config,
        )
        .unwrap();
        drain_all(&stack).await;
        let primary = NeonStore::open(primary_config(&cluster.url(), "public")).await.unwrap();
        let keys = written_by(&primary, 0).await;
        let attempted = next;
        let mut checked = 0u64;
        for slot in 0..SLOTS {
            let last_acked = acked.keys().copied().filter(|n| n % SLOTS == slot).max();
            for j in 0..ROWS_PER_BATCH {
                let key = DAY0 + ((slot * ROWS_PER_BATCH + j) as i64) * 3_600_000_000;
                match (last_acked, keys.get(&key)) {
                    (Some(acked), Some(&stored)) => {
                        assert!(stored >= acked, "key {key} reverted to batch {stored}, older than acked {acked}");
                        assert!(
                            stored < attempted && stored % SLOTS == slot,
                            "key {key} holds a batch that never wrote it"
                        );
                        checked += 1;
                    }
                    (Some(acked), None) => panic!("key {key} of acknowledged batch {acked} is lost"),
                    (None, _) => {}
                }
            }
        }
        // Reads through the stack (which may come from the cache) agree with the primary.
        let mut routing_config = HybridConfig::new(state.path().join("state"));
        routing_config.routing = everything_cacheable();
        drop(stack);
        let stack = HybridStack::build(
            lazy_primary(primary_config(&cluster.url(), "public")),
            duckdb_cache(state.path()).await,
            &routing_config,
        )
        .unwrap();
        assert_eq!(written_by(stack.store.as_ref(), 0).await, keys, "the stack reads what the primary holds");
        eprintln!(
            "kill loop: {kills} kills, {} batches acknowledged ({journaled_acks} journaled), {checked} rows checked",
            acked.len()
        );
        assert!(acked.len() as u64 >= rounds, "the children acknowledged too little to test anything");
        assert!(journaled_acks > 0, "some acknowledgements were journaled");
    });
}
