//! Shared builders and checks for the conformance cases: bars, batches, runs, tasks, and parallel work.

use std::future::Future;
use std::time::Duration;

use strata_core::evolution::{
    Completion, CompletionStatus, Generation, Individual, Lease, LeaseRequest, NewTask, RunId, RunSpec, TaskKey,
    TaskOutcome, WorkerId, WorkerInfo,
};
use strata_core::{
    Bar, BarBatch, BarQuery, DayDigest, DigestQuery, EvolutionStore, MarketDataStore, MarketDataStoreExt,
    MarketSummary, StoreError, Symbol, Timestamp,
};

/// 2020-01-02T00:00:00Z, the default first bar.
pub const BASE: Timestamp = Timestamp(1_577_923_200_000_000);
/// One minute in microseconds.
pub const MINUTE: i64 = 60_000_000;
/// One day in microseconds.
pub const DAY: i64 = Timestamp::MICROS_PER_DAY;

/// A symbol known to be valid.
pub fn symbol(text: &str) -> Symbol {
    Symbol::new(text).unwrap_or_else(|error| panic!("fixture symbol {text:?} is invalid: {error}"))
}

/// A timestamp from text (RFC 3339 or a date).
pub fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap_or_else(|error| panic!("fixture timestamp: {error}"))
}

/// A valid bar of `symbol` at `timestamp` whose prices derive from `seed`, with vwap and trade count.
pub fn bar(symbol: &str, timestamp: Timestamp, seed: u32) -> Bar {
    let open = 100.0 + f64::from(seed % 1000) * 0.25;
    let close = open + if seed.is_multiple_of(2) { 0.5 } else { -0.5 };
    Bar {
        symbol: symbol.to_string(),
        timestamp,
        open,
        high: open.max(close) + 0.125,
        low: open.min(close) - 0.125,
        close,
        volume: 1000.0 + f64::from(seed),
        vwap: Some((open + close) / 2.0),
        trade_count: Some(i64::from(seed % 50)),
    }
}

/// `count` valid bars of `symbol`, `step` microseconds apart from `start`.
pub fn series(symbol: &str, start: Timestamp, step: i64, count: usize) -> Vec<Bar> {
    (0..count).map(|i| bar(symbol, start.plus_micros(step * i as i64), i as u32)).collect()
}

/// `count` one-minute bars of `symbol` from [`BASE`].
pub fn minutes(symbol: &str, count: usize) -> Vec<Bar> {
    series(symbol, BASE, MINUTE, count)
}

/// The batch of `bars`.
pub fn batch(bars: &[Bar]) -> BarBatch {
    BarBatch::from_bars(bars)
}

static JOURNALED_IS_EXPECTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For a test binary that runs the suite against a hybrid store whose
/// primary is down: acknowledged writes are then journaled, not committed.
/// Process-wide: call it only in a binary where every store is in that state.
pub fn expect_journaled_writes() {
    JOURNALED_IS_EXPECTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Writes `bars` as one batch, panicking with `context` on error.
pub async fn write(store: &dyn MarketDataStore, bars: &[Bar], context: &str) {
    let report =
        store.write_bars(batch(bars)).await.unwrap_or_else(|error| panic!("{context}: write_bars failed: {error}"));
    assert_eq!(report.rows, bars.len() as u64, "{context}: write report counts every row of the batch");
    let expected = if JOURNALED_IS_EXPECTED.load(std::sync::atomic::Ordering::Relaxed) {
        strata_core::Durability::Journaled
    } else {
        strata_core::Durability::Committed
    };
    assert_eq!(
        report.durability, expected,
        "{context}: a store in its normal state commits (only a store whose primary is down journals)"
    );
}

/// Writes `bars` expecting `InvalidInput`, and returns the error.
pub async fn write_invalid(store: &dyn MarketDataStore, bars: &[Bar], context: &str) -> StoreError {
    match store.write_bars(batch(bars)).await {
        Ok(report) => panic!("{context}: an invalid batch was accepted ({} rows)", report.rows),
        Err(error) => {
            assert!(matches!(error, StoreError::InvalidInput(_)), "{context}: expected InvalidInput, got {error:?}");
            error
        }
    }
}

/// Runs `query` and returns every row.
pub async fn read(store: &dyn MarketDataStore, query: BarQuery, context: &str) -> Vec<Bar> {
    store.collect_bars(query).await.unwrap_or_else(|error| panic!("{context}: query_bars failed: {error}"))
}

/// Every bar of one symbol, oldest first.
pub async fn read_symbol(store: &dyn MarketDataStore, text: &str, context: &str) -> Vec<Bar> {
    read(store, BarQuery::symbol(symbol(text)), context).await
}

/// The store's summary.
pub async fn summary(store: &dyn MarketDataStore, context: &str) -> MarketSummary {
    store.summary().await.unwrap_or_else(|error| panic!("{context}: summary failed: {error}"))
}

/// The store's digests for `query`.
pub async fn digest(store: &dyn MarketDataStore, query: DigestQuery, context: &str) -> Vec<DayDigest> {
    store.digest(query).await.unwrap_or_else(|error| panic!("{context}: digest failed: {error}"))
}

/// Summary and full digest, to prove a store did not change.
pub async fn snapshot(store: &dyn MarketDataStore, context: &str) -> (MarketSummary, Vec<DayDigest>) {
    (summary(store, context).await, digest(store, DigestQuery::default(), context).await)
}

/// `(symbol, timestamp)` of each bar, for order checks with readable failures.
pub fn keys(bars: &[Bar]) -> Vec<(String, i64)> {
    bars.iter().map(|bar| (bar.symbol.clone(), bar.timestamp.micros())).collect()
}

/// Asserts two bar lists are equal column by column, comparing floats by their bits.
pub fn assert_same_bars(actual: &[Bar], expected: &[Bar], context: &str) {
    assert_eq!(actual.len(), expected.len(), "{context}: row count");
    for (row, (got, want)) in actual.iter().zip(expected).enumerate() {
        let at = format!("{context}: row {row} ({} {})", want.symbol, want.timestamp);
        assert_eq!(got.symbol, want.symbol, "{at}: symbol");
        assert_eq!(got.timestamp, want.timestamp, "{at}: timestamp");
        for (column, got, want) in [
            ("open", got.open, want.open),
            ("high", got.high, want.high),
            ("low", got.low, want.low),
            ("close", got.close, want.close),
            ("volume", got.volume, want.volume),
        ] {
            assert_eq!(got.to_bits(), want.to_bits(), "{at}: {column} {got:?} is not bit-identical to {want:?}");
        }
        assert_eq!(
            got.vwap.map(f64::to_bits),
            want.vwap.map(f64::to_bits),
            "{at}: vwap {:?} vs {:?}",
            got.vwap,
            want.vwap
        );
        assert_eq!(got.trade_count, want.trade_count, "{at}: trade_count");
    }
}

/// Runs `work(0..threads)` on that many OS threads at once, each driving its
/// future on the current Tokio runtime, and returns the results in order.
///
/// The futures may borrow the store (`&dyn Port` is `Send`), which
/// `tokio::spawn` would not allow. Needs a multi-thread runtime (the
/// conformance macros provide one). A panic on any thread is re-raised.
pub fn in_parallel<T, Work, WorkFuture>(threads: usize, work: Work) -> Vec<T>
where
    T: Send,
    Work: Fn(usize) -> WorkFuture + Sync,
    WorkFuture: Future<Output = T>,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let joins: Vec<_> = (0..threads)
                .map(|index| {
                    let (handle, work) = (&handle, &work);
                    scope.spawn(move || handle.block_on(work(index)))
                })
                .collect();
            joins.into_iter().map(|join| join.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
        })
    })
}

// ---- Evolution ----

/// A run id known to be valid.
pub fn run_id(text: &str) -> RunId {
    RunId::new(text).unwrap_or_else(|error| panic!("fixture run id: {error}"))
}

/// A worker id known to be valid.
pub fn worker_id(text: &str) -> WorkerId {
    WorkerId::new(text).unwrap_or_else(|error| panic!("fixture worker id: {error}"))
}

/// A run spec with the given id and seed.
pub fn run_spec(id: &str, seed: u64) -> RunSpec {
    RunSpec {
        id: run_id(id),
        strategy: "sma_crossover".into(),
        seed,
        population_size: 4,
        generations: 10,
        config: r#"{"symbols":["^GSPC"],"window":["2020-01-01","2021-01-01"]}"#.into(),
    }
}

/// Creates the run `id` and returns its id.
pub async fn create_run(store: &dyn EvolutionStore, id: &str) -> RunId {
    store.create_run(run_spec(id, 42)).await.unwrap_or_else(|error| panic!("create_run {id}: {error}"));
    run_id(id)
}

/// A generation of `size` individuals whose genomes mention `tag`.
pub fn generation(run: &RunId, number: u32, size: u32, tag: &str) -> Generation {
    let individuals = (0..size)
        .map(|index| Individual { index, genome: format!(r#"{{"fast":{index},"slow":{},"tag":"{tag}"}}"#, index + 20) })
        .collect();
    Generation { run: run.clone(), number, individuals }
}

/// Tasks for individuals `0..count`.
pub fn new_tasks(count: u32) -> Vec<NewTask> {
    (0..count).map(|individual| NewTask { individual, payload: format!(r#"{{"individual":{individual}}}"#) }).collect()
}

/// Creates run `id` and enqueues `count` tasks of generation 0 with `max_attempts`.
pub async fn run_with_tasks(store: &dyn EvolutionStore, id: &str, count: u32, max_attempts: u32) -> RunId {
    let run = create_run(store, id).await;
    let added = store
        .enqueue_tasks(&run, 0, new_tasks(count), max_attempts)
        .await
        .unwrap_or_else(|error| panic!("enqueue_tasks {id}: {error}"));
    assert_eq!(added, u64::from(count), "enqueue_tasks adds every new task");
    run
}

/// A lease request of `worker` for up to `max_tasks` of any active run.
pub fn lease_request(worker: &str, max_tasks: u32, ttl: Duration) -> LeaseRequest {
    LeaseRequest { worker: worker_id(worker), run: None, max_tasks, ttl }
}

/// Leases and panics with `context` on error.
pub async fn lease(store: &dyn EvolutionStore, request: LeaseRequest, context: &str) -> Vec<Lease> {
    store.lease_tasks(request).await.unwrap_or_else(|error| panic!("{context}: lease_tasks failed: {error}"))
}

/// A successful completion of `lease` with `fitness`.
pub fn success(lease: &Lease, fitness: f64) -> Completion {
    Completion {
        key: lease.key.clone(),
        token: lease.token,
        outcome: TaskOutcome::Succeeded { fitness, result: format!(r#"{{"sharpe":{fitness}}}"#) },
        cache_key: None,
    }
}

/// A successful completion of `lease` with `fitness` that caches it under `cache_key`.
pub fn cached_success(lease: &Lease, fitness: f64, cache_key: &str) -> Completion {
    Completion { cache_key: Some(cache_key.into()), ..success(lease, fitness) }
}

/// Creates run `id` with one task, leases it as `w1` and completes it as a
/// success with `fitness` cached under `cache_key` (what a worker leaves in
/// the fitness cache), asserting it was recorded.
pub async fn evaluate_cached(store: &dyn EvolutionStore, id: &str, cache_key: &str, fitness: f64) {
    let run = run_with_tasks(store, id, 1, 3).await;
    let request = LeaseRequest { run: Some(run), ..lease_request("w1", 1, Duration::from_secs(600)) };
    let leases = lease(store, request, id).await;
    let statuses = store
        .complete_tasks(&worker_id("w1"), vec![cached_success(&leases[0], fitness, cache_key)])
        .await
        .unwrap_or_else(|error| panic!("complete_tasks {id}: {error}"));
    assert_eq!(statuses, [CompletionStatus::Recorded], "{id}");
}

/// A failed completion of `lease`.
pub fn failure(lease: &Lease, error: &str) -> Completion {
    Completion {
        key: lease.key.clone(),
        token: lease.token,
        outcome: TaskOutcome::Failed { error: error.into() },
        cache_key: None,
    }
}

/// The key of task `individual` of generation `generation` of `run`.
pub fn task_key(run: &RunId, generation: u32, individual: u32) -> TaskKey {
    TaskKey { run: run.clone(), generation, individual }
}

/// Worker info for `id`.
pub fn worker_info(id: &str, pid: u32) -> WorkerInfo {
    WorkerInfo { id: worker_id(id), hostname: format!("host-{pid}"), pid }
}
