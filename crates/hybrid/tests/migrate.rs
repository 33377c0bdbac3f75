//! `strata_hybrid::migrate`: copy and verify between two in-memory stores, by (symbol, day) digests.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::stream::BoxStream;
use strata_adapter_mock::MemoryStore;
use strata_core::{
    Bar, BarBatch, BarQuery, Capabilities, DayDigest, DigestQuery, HealthReport, MarketDataStore, MarketSummary,
    Result, StoreError, Symbol, TimeRange, Timestamp, WriteReport,
};
use strata_hybrid::migrate::{
    CHUNK_DAYS, Comparison, CopyProgress, CopyReport, DayDifference, Selection, compare, copy, repair,
};
use strata_tests::fixtures::{BASE, DAY, MINUTE, assert_same_bars, bar, digest, read, symbol, write};

/// Bars of each day start at 14:30 UTC.
const OPEN: i64 = 14 * 3_600_000_000 + 30 * MINUTE;

/// `per_day` one-minute bars of `symbol` on each of `days` days from [`BASE`], from 14:30 UTC; seeds differ by symbol and day.
fn days(symbol: &str, days: usize, per_day: usize) -> Vec<Bar> {
    let salt: u32 = symbol.bytes().map(u32::from).sum();
    (0..days)
        .flat_map(|day| {
            (0..per_day).map(move |minute| {
                let timestamp = BASE.plus_micros(day as i64 * DAY + OPEN + minute as i64 * MINUTE);
                bar(symbol, timestamp, salt + (day * per_day + minute) as u32)
            })
        })
        .collect()
}

/// Midnight UTC `day` days after [`BASE`].
fn midnight(day: i64) -> Timestamp {
    BASE.plus_micros(day * DAY)
}

/// A store holding `bars`.
async fn store_with(bars: &[Bar]) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    if !bars.is_empty() {
        write(store.as_ref(), bars, "fixture").await;
    }
    store
}

/// Every bar of a store.
async fn everything(store: &dyn MarketDataStore) -> Vec<Bar> {
    read(store, BarQuery::default(), "read everything").await
}

/// The full digest of a store.
async fn digests(store: &dyn MarketDataStore) -> Vec<DayDigest> {
    digest(store, DigestQuery::default(), "digest").await
}

fn no_progress(_: CopyProgress) {}

async fn copy_all(source: &dyn MarketDataStore, target: &dyn MarketDataStore) -> CopyReport {
    copy(source, target, &Selection::all(), &no_progress).await.unwrap_or_else(|error| panic!("copy failed: {error}"))
}

async fn compare_all(source: &dyn MarketDataStore, target: &dyn MarketDataStore) -> Comparison {
    compare(source, target, &Selection::all()).await.unwrap_or_else(|error| panic!("compare failed: {error}"))
}

/// `bar` with its close nudged by one ulp (a change only the digest sees).
fn nudged(bar: &Bar) -> Bar {
    Bar { close: f64::from_bits(bar.close.to_bits() + 1), ..bar.clone() }
}

/// A wrapper that counts calls, and can fail the Nth `write_bars`, only journal writes, or yield before each write.
#[derive(Debug)]
struct Probe {
    inner: Arc<dyn MarketDataStore>,
    writes: AtomicUsize,
    queries: AtomicUsize,
    deletes: Mutex<Vec<(Symbol, TimeRange)>>,
    /// `write_bars` call number (1-based) that fails with `Unavailable`.
    fail_write: Option<usize>,
    /// Acknowledge writes as journaled without storing them.
    journal: bool,
    /// Yield to the executor before each write, so a caller can drop the future between chunks.
    yield_before_write: bool,
}

impl Probe {
    fn new(inner: Arc<dyn MarketDataStore>) -> Self {
        Probe {
            inner,
            writes: AtomicUsize::new(0),
            queries: AtomicUsize::new(0),
            deletes: Mutex::new(Vec::new()),
            fail_write: None,
            journal: false,
            yield_before_write: false,
        }
    }

    fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    fn deletes(&self) -> Vec<(Symbol, TimeRange)> {
        self.deletes.lock().map(|deletes| deletes.clone()).unwrap_or_default()
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "probe({})", self.inner)
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait::async_trait]
impl MarketDataStore for Probe {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn write_bars(&self, batch: BarBatch) -> Result<WriteReport> {
        if self.yield_before_write {
            tokio::task::yield_now().await;
        }
        let call = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_write == Some(call) {
            return Err(StoreError::unavailable("probe", format!("write {call} fails on purpose"), None));
        }
        if self.journal {
            return Ok(WriteReport::journaled(batch.len() as u64));
        }
        self.inner.write_bars(batch).await
    }

    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        self.inner.query_bars(query)
    }

    async fn summary(&self) -> Result<MarketSummary> {
        self.inner.summary().await
    }

    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>> {
        self.inner.digest(query).await
    }

    async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> Result<u64> {
        if let Ok(mut deletes) = self.deletes.lock() {
            deletes.push((symbol.clone(), range));
        }
        self.inner.delete_bars(symbol, range).await
    }

    async fn health(&self) -> Result<HealthReport> {
        self.inner.health().await
    }
}

#[tokio::test]
async fn copy_fills_an_empty_target_and_proves_it() {
    let bars = [days("AAA", 5, 30), days("BBB", 5, 30)].concat();
    let source = store_with(&bars).await;
    let target = Arc::new(MemoryStore::new());
    let seen = Mutex::new(Vec::new());
    let record = |progress: CopyProgress| seen.lock().map(|mut seen| seen.push(progress)).unwrap_or_default();
    let report = copy(source.as_ref(), target.as_ref(), &Selection::all(), &record).await.expect("copy");

    assert_eq!(report.before.differences.len(), 10);
    assert!(
        report.before.differences.iter().all(|difference| matches!(difference, DayDifference::MissingInTarget { .. }))
    );
    assert_eq!((report.days_copied, report.rows_copied, report.rows_deleted), (10, 300, 0));
    assert_eq!(report.chunks, 2, "one chunk per symbol: five consecutive days of 30 rows fit one chunk");
    assert!(report.is_verified(), "{}", report.to_text());
    assert_eq!((report.after.days, report.after.equal, report.after.target_rows), (10, 10, 300));
    assert_same_bars(&everything(target.as_ref()).await, &everything(source.as_ref()).await, "target after copy");
    assert_eq!(digests(target.as_ref()).await, digests(source.as_ref()).await);

    let seen = seen.lock().map(|seen| seen.clone()).unwrap_or_default();
    assert_eq!(seen.first().map(|progress| progress.days_done), Some(0), "{seen:?}");
    assert_eq!(seen.last(), Some(&CopyProgress { days_done: 10, days_total: 10, rows_copied: 300 }), "{seen:?}");
    assert_eq!(seen.len(), 3, "once before and once per chunk: {seen:?}");
}

#[tokio::test]
async fn a_second_copy_over_equal_stores_copies_nothing() {
    let source = store_with(&[days("AAA", 4, 20), days("BBB", 3, 20)].concat()).await;
    let target = Arc::new(Probe::new(Arc::new(MemoryStore::new())));
    assert!(copy_all(source.as_ref(), target.as_ref()).await.is_verified());
    let writes_after_first = target.writes();
    assert!(writes_after_first > 0);

    let again = copy_all(source.as_ref(), target.as_ref()).await;
    assert!(again.before.is_equal(), "{}", again.before.to_text(10));
    assert_eq!((again.days_copied, again.chunks, again.rows_copied, again.rows_deleted), (0, 0, 0, 0));
    assert_eq!(target.writes(), writes_after_first, "no write on the second run");
    assert!(target.deletes().is_empty());
    assert!(again.is_verified());
    assert!(again.to_text().contains("nothing to copy: 7 days already equal"), "{}", again.to_text());
}

#[tokio::test]
async fn one_changed_row_is_found_and_repaired_alone() {
    let bars = [days("AAA", 5, 30), days("BBB", 5, 30)].concat();
    let source = store_with(&bars).await;
    let target = Arc::new(Probe::new(store_with(&bars).await));
    let changed = nudged(&bars[2 * 30 + 7]); // AAA, day 2
    write(target.as_ref(), std::slice::from_ref(&changed), "change one row").await;

    let comparison = compare_all(source.as_ref(), target.as_ref()).await;
    assert_eq!((comparison.days, comparison.equal), (10, 9));
    let [DayDifference::Differs { source: in_source, target: in_target }] = comparison.differences.as_slice() else {
        panic!("expected exactly one differing day: {:?}", comparison.differences)
    };
    assert_eq!((in_source.symbol.as_str(), in_source.day), ("AAA", changed.timestamp.day()));
    assert_eq!((in_source.rows, in_target.rows), (30, 30));
    assert_ne!(in_source.hash, in_target.hash);

    let report = repair(source.as_ref(), target.as_ref(), &comparison, &no_progress).await.expect("repair");
    assert_eq!((report.days_copied, report.rows_copied, report.rows_deleted), (1, 30, 30));
    assert!(report.is_verified(), "{}", report.to_text());
    let day = midnight(2);
    assert_eq!(
        target.deletes(),
        [(symbol("AAA"), TimeRange { start: day, end: day.plus_micros(DAY) })],
        "only that day is deleted"
    );
    assert_same_bars(&everything(target.as_ref()).await, &bars, "target after repair");
}

#[tokio::test]
async fn extra_rows_on_a_day_are_found_and_deleted() {
    let bars = [days("AAA", 3, 30), days("BBB", 3, 30)].concat();
    let source = store_with(&bars).await;
    let target = store_with(&bars).await;
    let extra = bar("BBB", midnight(1).plus_micros(OPEN - MINUTE), 9_999);
    write(target.as_ref(), std::slice::from_ref(&extra), "an extra row").await;

    let comparison = compare_all(source.as_ref(), target.as_ref()).await;
    let [difference @ DayDifference::Differs { .. }] = comparison.differences.as_slice() else {
        panic!("expected one differing day: {:?}", comparison.differences)
    };
    assert_eq!((difference.symbol(), difference.day()), ("BBB", extra.timestamp.day()));
    assert_eq!((difference.source().map(|d| d.rows), difference.target().map(|d| d.rows)), (Some(30), Some(31)));

    let report = repair(source.as_ref(), target.as_ref(), &comparison, &no_progress).await.expect("repair");
    assert_eq!((report.rows_deleted, report.rows_copied), (31, 30));
    assert!(report.is_verified(), "{}", report.to_text());
    assert_same_bars(&everything(target.as_ref()).await, &bars, "the extra row is gone");
}

#[tokio::test]
async fn a_day_only_the_target_has_is_deleted_without_reading_the_source() {
    let bars = days("AAA", 3, 30);
    let source = Arc::new(Probe::new(store_with(&bars).await));
    let target = store_with(&bars).await;
    let stray: Vec<Bar> = (0..5).map(|i| bar("AAA", midnight(10).plus_micros(i * MINUTE), 7)).collect();
    write(target.as_ref(), &stray, "a day the source lacks").await;

    let comparison = compare_all(source.as_ref(), target.as_ref()).await;
    let [DayDifference::ExtraInTarget { target: extra }] = comparison.differences.as_slice() else {
        panic!("expected one extra day: {:?}", comparison.differences)
    };
    assert_eq!((extra.day, extra.rows), (midnight(10).day(), 5));

    let report = repair(source.as_ref(), target.as_ref(), &comparison, &no_progress).await.expect("repair");
    assert_eq!((report.days_copied, report.rows_copied, report.rows_deleted), (1, 0, 5));
    assert_eq!(source.queries(), 0, "a day without source rows is not read from the source");
    assert!(report.is_verified(), "{}", report.to_text());
    assert_same_bars(&everything(target.as_ref()).await, &bars, "the stray day is gone");
}

#[tokio::test]
async fn a_selection_copies_only_inside_it() {
    let bars = [days("AAA", 6, 30), days("BBB", 6, 30), days("CCC", 6, 30)].concat();
    let source = store_with(&bars).await;
    // Day 1 of AAA in the target: a row before the selection's start, different from the source's, which must
    // survive, and a changed row inside the selection, which makes the day differ (so it is deleted, clamped).
    let outside = nudged(&bars[30]); // AAA, day 1, 14:30
    let target = store_with(&[outside.clone(), nudged(&bars[30 + 15])]).await;
    let start = midnight(1).plus_micros(OPEN + 10 * MINUTE); // day 1, 14:40: cuts the day
    let end = midnight(4);
    let selection =
        Selection { symbols: vec![symbol("AAA"), symbol("CCC"), symbol("ZZZ")], start: Some(start), end: Some(end) };

    let report = copy(source.as_ref(), target.as_ref(), &selection, &no_progress).await.expect("copy");
    assert!(report.is_verified(), "{}", report.to_text());
    assert_eq!(report.before.missing_symbols, [symbol("ZZZ")], "a selected symbol the source lacks is surfaced");
    assert_eq!(report.before.differences.len(), 6, "days 1..=3 of AAA and CCC");
    assert_eq!(report.rows_copied, 2 * (20 + 30 + 30));
    assert_eq!(report.rows_deleted, 1, "only the changed row inside the selection is deleted");

    let inside = |bar: &&Bar| bar.symbol != "BBB" && bar.timestamp >= start && bar.timestamp < end;
    let mut expected: Vec<Bar> = bars.iter().filter(inside).cloned().collect();
    expected.insert(0, outside.clone());
    assert_same_bars(
        &everything(target.as_ref()).await,
        &expected,
        "target holds the selection and the row outside it",
    );
    assert!(!compare_all(source.as_ref(), target.as_ref()).await.is_equal(), "outside the selection the stores differ");
    assert!(report.to_text().contains("not in source (nothing to copy): ZZZ"), "{}", report.to_text());
}

/// A source of one symbol over 8 days and a target whose even days are equal and odd days differ, so a copy is 4 chunks.
async fn four_chunk_setup() -> (Vec<Bar>, Arc<MemoryStore>, Arc<MemoryStore>) {
    let bars = days("AAA", 8, 30);
    let source = store_with(&bars).await;
    let target_bars: Vec<Bar> = bars
        .iter()
        .enumerate()
        .map(|(index, bar)| if (index / 30) % 2 == 1 && index % 30 == 0 { nudged(bar) } else { bar.clone() })
        .collect();
    let target = store_with(&target_bars).await;
    (bars, source, target)
}

#[tokio::test]
async fn a_copy_failing_midway_is_completed_by_a_rerun() {
    let (bars, source, target_store) = four_chunk_setup().await;
    let before = compare_all(source.as_ref(), target_store.as_ref()).await;
    assert_eq!(before.differences.len(), 4);

    let mut failing = Probe::new(target_store.clone());
    failing.fail_write = Some(2);
    let error =
        copy(source.as_ref(), &failing, &Selection::all(), &no_progress).await.expect_err("the 2nd write fails");
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");

    // The failure came between the delete and the write of the second chunk: that day is now missing in the target.
    let between = compare_all(source.as_ref(), target_store.as_ref()).await;
    let kinds: Vec<(&str, chrono::NaiveDate)> =
        between.differences.iter().map(|difference| (difference.kind(), difference.day())).collect();
    assert_eq!(
        kinds,
        [("missing_in_target", midnight(3).day()), ("differs", midnight(5).day()), ("differs", midnight(7).day())]
    );

    let rerun = copy_all(source.as_ref(), target_store.as_ref()).await;
    assert_eq!((rerun.days_copied, rerun.rows_copied), (3, 90), "the rerun does only what is left");
    assert_eq!(rerun.rows_deleted, 60, "the missing day needs no delete");
    assert!(rerun.is_verified(), "{}", rerun.to_text());
    assert_same_bars(&everything(target_store.as_ref()).await, &bars, "target after the rerun");
}

#[tokio::test]
async fn a_copy_dropped_midway_is_completed_by_a_rerun() {
    let (bars, source, target_store) = four_chunk_setup().await;
    let mut target = Probe::new(target_store.clone());
    target.yield_before_write = true;
    let chunk_done = tokio::sync::Notify::new();
    let notify = |progress: CopyProgress| {
        if progress.days_done > 0 {
            chunk_done.notify_one();
        }
    };
    let all = Selection::all();
    tokio::select! {
        biased;
        () = chunk_done.notified() => {}
        report = copy(source.as_ref(), &target, &all, &notify) => {
            panic!("the copy should have been dropped after its first chunk: {report:?}")
        }
    }

    let left = compare_all(source.as_ref(), target_store.as_ref()).await;
    assert!(
        !left.differences.is_empty() && left.differences.len() < 4,
        "some but not all days were copied: {}",
        left.to_text(10)
    );
    let rerun = copy_all(source.as_ref(), target_store.as_ref()).await;
    assert_eq!(rerun.days_copied, left.differences.len());
    assert!(rerun.is_verified(), "{}", rerun.to_text());
    assert_same_bars(&everything(target_store.as_ref()).await, &bars, "target after the rerun");
}

#[tokio::test]
async fn many_days_are_copied_in_chunks() {
    let total_days = 2 * CHUNK_DAYS + 68;
    let bars = days("AAA", total_days, 1);
    let source = Arc::new(Probe::new(store_with(&bars).await));
    let target = Probe::new(Arc::new(MemoryStore::new()));

    let report = copy_all(source.as_ref(), &target).await;
    assert!(report.is_verified(), "{}", report.to_text());
    assert_eq!((report.days_copied, report.rows_copied), (total_days, total_days as u64));
    assert_eq!(report.chunks, 3, "{total_days} days of one symbol at most {CHUNK_DAYS} days a chunk");
    assert_eq!(source.queries(), 3, "one source query per chunk");
    assert_eq!(target.writes(), 3, "one write per chunk (each chunk is one source batch)");
    assert_same_bars(&everything(&target).await, &bars, "target");
}

#[tokio::test]
async fn journaled_writes_count_but_are_not_verified() {
    let source = store_with(&days("AAA", 3, 30)).await;
    let mut target = Probe::new(Arc::new(MemoryStore::new()));
    target.journal = true;

    let report = copy_all(source.as_ref(), &target).await;
    assert_eq!((report.rows_copied, report.rows_journaled), (90, 90));
    assert!(!report.is_verified(), "journaled rows are not in the target yet");
    assert_eq!(report.after.differences.len(), 3);
    let text = report.to_text();
    assert!(text.contains("90 of those rows were journaled"), "{text}");
    assert!(text.contains("NOT verified: after the copy 3 days still differ"), "{text}");
}

#[tokio::test]
async fn text_and_json_name_the_differing_days() {
    let bars = [days("AAA", 5, 30), days("BBB", 5, 30)].concat();
    let source = store_with(&bars).await;
    let target = store_with(&bars).await;
    let changed = nudged(&bars[30 * 3]); // AAA, day 3
    write(target.as_ref(), std::slice::from_ref(&changed), "change one row").await;
    target.delete_bars(&symbol("BBB"), TimeRange { start: midnight(4), end: midnight(5) }).await.expect("delete");

    let comparison = compare_all(source.as_ref(), target.as_ref()).await;
    let digest_of = |store_digests: &[DayDigest], name: &str, day: i64| {
        store_digests
            .iter()
            .find(|digest| digest.symbol == name && digest.day == midnight(day).day())
            .cloned()
            .unwrap_or_else(|| panic!("no digest of {name} day {day}"))
    };
    let (in_source, in_target) = (digests(source.as_ref()).await, digests(target.as_ref()).await);
    let (source_day, target_day) = (digest_of(&in_source, "AAA", 3), digest_of(&in_target, "AAA", 3));
    let text = comparison.to_text(10);
    let expected_line = format!(
        "AAA {}: 30 rows (hash {}) in source, 30 rows (hash {}) in target",
        source_day.day,
        source_day.hash_hex(),
        target_day.hash_hex()
    );
    assert!(text.contains(&expected_line), "{text}\nexpected {expected_line}");
    assert!(text.contains(&format!("BBB {}: 30 rows (hash ", midnight(4).day())), "{text}");
    assert!(text.contains(", no rows in target"), "{text}");
    assert!(
        text.contains("2 of 10 days differ (1 missing in target, 0 only in target, 1 different); 300 rows in source, 270 rows in target"),
        "{text}"
    );
    let short = comparison.to_text(1);
    assert!(short.contains("... and 1 more differing day\n") && !short.contains("BBB"), "{short}");

    let json = serde_json::to_value(&comparison).expect("json");
    assert_eq!(json["differences"][0]["kind"], "differs");
    assert_eq!(json["differences"][1]["kind"], "missing_in_target");
    assert_eq!(json["differences"][0]["source"]["rows"], 30);
    assert_eq!(json["equal"], 8);
    assert!(json.get("follows_previous").is_none(), "{json}");

    let equal = compare_all(source.as_ref(), source.as_ref()).await;
    assert!(equal.to_text(10).contains("equal: 10 days, 300 rows in both"), "{}", equal.to_text(10));
}
