//! Fitness evaluation: bars of a data window read through `MarketDataStore`
//! and cached in memory (moka) per window, backtests run off the async
//! runtime, and a fitness cache keyed by (strategy, genome, window, settings).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use moka::future::Cache;
use serde::{Deserialize, Serialize};
use strata_core::suggest::{self, SymbolDiagnosis};
use strata_core::{BarQuery, DigestQuery, MarketDataStore, MarketDataStoreExt, MarketSummary, Symbol, Timestamp};

use crate::backtest::{BacktestConfig, Metrics, PriceSeries, backtest, combine, fitness};
use crate::config::{DataPin, DataWindow, EvalPayload};
use crate::error::{GaError, GaResult};
use crate::strategy::{Strategy, StrategyRegistry};
use crate::telemetry;

/// The result of evaluating one genome.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The fitness (higher is better).
    pub fitness: f64,
    /// Metrics of the equal-weighted basket of the window's symbols.
    pub metrics: Metrics,
}

/// Backtests `genome_text` of `strategy` on every series and combines the
/// metrics. Pure and synchronous: call it from a blocking thread.
pub fn evaluate(
    strategy: &dyn Strategy,
    genome_text: &str,
    series: &[PriceSeries],
    config: &BacktestConfig,
) -> GaResult<Evaluation> {
    let genome = strategy.genome_spec().parse(genome_text)?;
    let mut per_symbol = Vec::with_capacity(series.len());
    for one in series {
        let positions = strategy.positions(&genome, one)?;
        per_symbol.push(backtest(one, &positions, config));
    }
    let metrics = combine(&per_symbol);
    Ok(Evaluation { fitness: fitness(&metrics, config), metrics })
}

/// Key of the fitness cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FitnessKey {
    strategy: String,
    genome: String,
    window: DataWindow,
    settings: String,
}

impl FitnessKey {
    fn of(payload: &EvalPayload) -> Self {
        FitnessKey {
            strategy: payload.strategy.clone(),
            genome: payload.genome.clone(),
            window: payload.window.clone(),
            settings: serde_json::to_string(&payload.backtest).unwrap_or_default(),
        }
    }
}

/// Opens the market data of a data snapshot: the Neon branch a pinned run's
/// windows name ([`DataWindow::snapshot`]). The composition root implements
/// it with the `Provisioner` port; an evaluator without one refuses pinned windows.
#[async_trait::async_trait]
pub trait SnapshotSource: Send + Sync + std::fmt::Debug {
    /// The bars of branch `branch`, read-only.
    async fn open(&self, branch: &str) -> GaResult<Arc<dyn MarketDataStore>>;
}

/// Evaluates task payloads: caches bars per window and results per genome,
/// and runs backtests on tokio's blocking pool.
#[derive(Clone)]
pub struct Evaluator {
    market: Arc<dyn MarketDataStore>,
    snapshots: Option<Arc<dyn SnapshotSource>>,
    /// Snapshot stores opened so far, by branch.
    opened: Cache<String, Arc<dyn MarketDataStore>>,
    registry: Arc<StrategyRegistry>,
    bars: Cache<DataWindow, Arc<Vec<PriceSeries>>>,
    results: Cache<FitnessKey, Evaluation>,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("market", &self.market)
            .field("strategies", &self.registry.names())
            .field("cached_windows", &self.bars.entry_count())
            .field("cached_results", &self.results.entry_count())
            .finish()
    }
}

impl Evaluator {
    /// An evaluator over `market` with the strategies of `registry`; caches
    /// up to 16 million bars (about 512 MB) and 1 million results.
    pub fn new(market: Arc<dyn MarketDataStore>, registry: Arc<StrategyRegistry>) -> Self {
        let bars = Cache::builder()
            .weigher(|_window: &DataWindow, series: &Arc<Vec<PriceSeries>>| {
                series.iter().map(PriceSeries::len).sum::<usize>().min(u32::MAX as usize) as u32
            })
            .max_capacity(16_000_000)
            .build();
        Evaluator { market, snapshots: None, opened: Cache::new(64), registry, bars, results: Cache::new(1_000_000) }
    }

    /// Reads pinned windows through `source` ([`SnapshotSource`]).
    pub fn with_snapshots(mut self, source: Option<Arc<dyn SnapshotSource>>) -> Self {
        self.snapshots = source;
        self
    }

    /// The store a window's bars come from: its snapshot's, or the store in use.
    pub async fn market_for(&self, window: &DataWindow) -> GaResult<Arc<dyn MarketDataStore>> {
        let Some(branch) = &window.snapshot else { return Ok(self.market.clone()) };
        let Some(source) = self.snapshots.clone() else {
            return Err(GaError::Config(format!(
                "{} is pinned to the Neon branch {branch}, which this process cannot open: give it the Neon API \
                 settings (NEON_API_KEY, NEON_PROJECT_ID) and STORAGE_BACKEND=neon",
                window.describe()
            )));
        };
        let owned = branch.clone();
        self.opened.try_get_with(branch.clone(), async move { source.open(&owned).await }).await.map_err(|error| {
            match error.as_ref() {
                GaError::Config(what) => GaError::Config(what.clone()),
                other => GaError::NoData(format!("cannot open the snapshot branch {branch}: {other}")),
            }
        })
    }

    /// The strategy registry.
    pub fn registry(&self) -> &Arc<StrategyRegistry> {
        &self.registry
    }

    /// The bars of a window, one series per symbol in the window's order,
    /// read once and then served from memory.
    pub async fn window_bars(&self, window: &DataWindow) -> GaResult<Arc<Vec<PriceSeries>>> {
        let market = self.market_for(window).await?;
        let owned = window.clone();
        self.bars
            .try_get_with(window.clone(), async move { load_window(market.as_ref(), &owned).await.map(Arc::new) })
            .await
            .map_err(|error| match error.as_ref() {
                GaError::NoData(what) => GaError::NoData(what.clone()),
                GaError::Config(what) => GaError::Config(what.clone()),
                other => GaError::NoData(format!("cannot read bars of {}: {other}", window.describe())),
            })
    }

    /// Evaluates payloads in order. Cached results are returned at once; the
    /// rest run one after another on a blocking thread, which stops early
    /// (leaving `None`s) once `abort` is set.
    pub async fn evaluate_batch(
        &self,
        payloads: &[EvalPayload],
        abort: Arc<AtomicBool>,
    ) -> Vec<Option<GaResult<Evaluation>>> {
        self.evaluate_counted(payloads, abort).await.0
    }

    /// [`Evaluator::evaluate_batch`], and how many backtests it ran (results
    /// from the in-memory cache are not counted).
    pub async fn evaluate_counted(
        &self,
        payloads: &[EvalPayload],
        abort: Arc<AtomicBool>,
    ) -> (Vec<Option<GaResult<Evaluation>>>, u64) {
        let mut results: Vec<Option<GaResult<Evaluation>>> = Vec::with_capacity(payloads.len());
        let mut work = Vec::new();
        for (position, payload) in payloads.iter().enumerate() {
            if let Some(hit) = self.results.get(&FitnessKey::of(payload)).await {
                results.push(Some(Ok(hit)));
                continue;
            }
            let prepared = match self.registry.get(&payload.strategy) {
                Ok(strategy) => self.window_bars(&payload.window).await.map(|bars| (strategy, bars)),
                Err(error) => Err(error),
            };
            match prepared {
                Ok((strategy, bars)) => {
                    results.push(None);
                    work.push((position, strategy, bars, payload.genome.clone(), payload.backtest.clone()));
                }
                Err(error) => results.push(Some(Err(error))),
            }
        }
        if work.is_empty() {
            return (results, 0);
        }
        let computed = tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(work.len());
            for (position, strategy, bars, genome, config) in work {
                if abort.load(Ordering::Relaxed) {
                    break;
                }
                let started = std::time::Instant::now();
                let result = evaluate(strategy.as_ref(), &genome, &bars, &config);
                // Timed here, recorded on the runtime's thread (where a
                // thread-local recorder of a test is installed, too).
                out.push((position, result, started.elapsed()));
            }
            out
        })
        .await;
        let mut backtests = 0;
        match computed {
            Ok(computed) => {
                backtests = computed.len() as u64;
                for (position, result, elapsed) in computed {
                    telemetry::backtest(elapsed);
                    if let Ok(evaluation) = &result {
                        self.results.insert(FitnessKey::of(&payloads[position]), *evaluation).await;
                    }
                    results[position] = Some(result);
                }
            }
            Err(join_error) => {
                // A panicking backtest fails the whole batch (each task is retried, then parked).
                for slot in results.iter_mut().filter(|slot| slot.is_none()) {
                    *slot = Some(Err(GaError::Config(format!("the backtest panicked: {join_error}"))));
                }
            }
        }
        (results, backtests)
    }
}

/// The digest of the bars of `windows` as `market` holds them now: SHA-256
/// over each window's per-(symbol, day) digests (every column of every bar,
/// computed by the store: [`MarketDataStore::digest`]), as a [`DataPin::Digest`].
/// The same bars give the same digest on every backend.
pub async fn data_digest<'a>(
    market: &dyn MarketDataStore,
    windows: impl IntoIterator<Item = &'a DataWindow>,
) -> GaResult<DataPin> {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    let mut bars = 0;
    for window in windows {
        let symbols = window.symbols.iter().map(|name| Symbol::new(name.clone())).collect::<Result<Vec<_>, _>>()?;
        let query = DigestQuery { symbols, start: window.start.map(Timestamp), end: window.end.map(Timestamp) };
        hasher.update(format!("window {:?} {:?} {:?}\n", window.symbols, window.start, window.end).as_bytes());
        for day in market.digest(query).await? {
            bars += day.rows;
            hasher.update(format!("{}|{}|{}|{}\n", day.symbol, day.day, day.rows, day.hash_hex()).as_bytes());
        }
    }
    let digest = hasher.finalize().iter().fold(String::from("sha256:"), |mut text, byte| {
        text.push_str(&format!("{byte:02x}"));
        text
    });
    Ok(DataPin::Digest { digest, bars })
}

/// Reads a window's bars through the port, one series per symbol.
///
/// Fails with [`GaError::NoData`] when a symbol has fewer than two bars in the
/// window; the message names every such symbol, suggests close names the
/// store holds (`APPL`: did you mean `AAPL`?), and says to ingest data only
/// when the store holds no bars at all.
pub async fn load_window(market: &dyn MarketDataStore, window: &DataWindow) -> GaResult<Vec<PriceSeries>> {
    if window.symbols.is_empty() {
        return Err(GaError::Config("the data window names no symbol".into()));
    }
    let mut all = Vec::with_capacity(window.symbols.len());
    let mut short = Vec::new();
    for name in &window.symbols {
        let symbol = Symbol::new(name.clone())?;
        let mut query = BarQuery::symbol(symbol);
        query.start = window.start.map(Timestamp);
        query.end = window.end.map(Timestamp);
        let batches = market.collect_batches(query).await?;
        let mut series = PriceSeries { symbol: name.clone(), ..PriceSeries::default() };
        for batch in &batches {
            let columns = batch.columns();
            series.timestamps.extend(columns.timestamp.values().iter().copied());
            series.high.extend(columns.high.values().iter().copied());
            series.low.extend(columns.low.values().iter().copied());
            series.close.extend(columns.close.values().iter().copied());
        }
        if series.len() < 2 {
            short.push((name.as_str(), series.len()));
        }
        all.push(series);
    }
    if short.is_empty() {
        return Ok(all);
    }
    // Only on failure: what the store holds, to say what is wrong.
    let summary = market.summary().await?;
    Err(GaError::NoData(missing_data_message(window, &short, &summary)))
}

/// How many stored symbols a "no data" message lists when no name is close.
const LISTED_SYMBOLS: usize = 10;

/// The message of a window whose `short` symbols (with their bar counts in
/// the window) have fewer than two bars, given what the store holds.
pub fn missing_data_message(window: &DataWindow, short: &[(&str, usize)], summary: &MarketSummary) -> String {
    let mut parts = Vec::with_capacity(short.len());
    let mut unmatched = false;
    for &(name, bars) in short {
        parts.push(match suggest::diagnose(name, summary) {
            SymbolDiagnosis::Stored(entry) => format!(
                "{name} has {bars} bar(s) in the window (the store has {} from {} to {})",
                entry.rows, entry.first, entry.last
            ),
            SymbolDiagnosis::Close(hint) => format!("{name} is not in the store ({hint})"),
            SymbolDiagnosis::Unknown => {
                unmatched = true;
                format!("{name} is not in the store")
            }
        });
    }
    let noun = if short.len() == 1 { "symbol" } else { "symbols" };
    let mut message =
        format!("{} {noun} of {} lack bars (2 needed): {}", short.len(), window.describe(), parts.join("; "));
    if summary.symbols.is_empty() {
        message.push_str("; the store holds no bars at all: ingest data first (strata ingest data/*.csv)");
    } else if unmatched {
        message.push_str(&format!("; {} (see strata summary)", suggest::stored_listing(summary, LISTED_SYMBOLS)));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_adapter_mock::MemoryStore;
    use strata_core::synthetic::SyntheticSpec;

    #[tokio::test]
    async fn loads_windows_and_caches_results() {
        let store = Arc::new(MemoryStore::new());
        let spec = SyntheticSpec::minutes(2, 500, 3);
        for batch in spec.batches(200) {
            store.write_bars(batch).await.unwrap();
        }
        let evaluator = Evaluator::new(store, Arc::new(StrategyRegistry::default()));
        let window = DataWindow {
            symbols: vec!["SYN000".into(), "SYN001".into()],
            start: None,
            end: None,
            snapshot: None,
            digest: None,
        };
        let bars = evaluator.window_bars(&window).await.unwrap();
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[1].len(), 500);
        let payload = EvalPayload {
            strategy: "donchian".into(),
            genome: r#"{"entry":20,"exit":10}"#.into(),
            window: window.clone(),
            backtest: BacktestConfig::default(),
        };
        let bad = EvalPayload { genome: r#"{"entry":2000,"exit":10}"#.into(), ..payload.clone() };
        let missing = EvalPayload { window: DataWindow { symbols: vec!["NOPE".into()], ..window }, ..payload.clone() };
        let abort = Arc::new(AtomicBool::new(false));
        let results = evaluator.evaluate_batch(&[payload.clone(), bad, missing], abort.clone()).await;
        let first = results[0].as_ref().unwrap().as_ref().unwrap();
        assert!(first.metrics.periods == 998);
        assert!(matches!(results[1], Some(Err(GaError::Genome(_)))));
        assert!(matches!(results[2], Some(Err(GaError::NoData(_)))));
        // A cached result comes back even when aborted (nothing left to compute).
        abort.store(true, Ordering::Relaxed);
        let again = evaluator.evaluate_batch(&[payload], abort).await;
        assert_eq!(again[0].as_ref().unwrap().as_ref().unwrap(), first);
    }

    /// A store holding the synthetic bars of `spec`, the closes of the bars at
    /// positions `moved` of the first symbol multiplied by 1.01.
    async fn store_with(spec: &SyntheticSpec, moved: &[usize]) -> Arc<MemoryStore> {
        let store = Arc::new(MemoryStore::new());
        let mut bars: Vec<strata_core::Bar> = spec.batches(10_000).flat_map(|batch| batch.to_bars()).collect();
        bars.sort_by(|a, b| (&a.symbol, a.timestamp).cmp(&(&b.symbol, b.timestamp)));
        for &position in moved {
            bars[position].close *= 1.01;
            bars[position].high = bars[position].high.max(bars[position].close);
        }
        store.write_bars(strata_core::BarBatch::from_bars(&bars)).await.unwrap();
        store
    }

    #[tokio::test]
    async fn the_data_digest_changes_with_any_bar_of_the_windows_and_only_those() {
        let spec = SyntheticSpec::minutes(2, 300, 5);
        let window = DataWindow {
            symbols: vec!["SYN000".into()],
            start: Some(spec.start.micros()),
            end: Some(spec.start.micros() + 200 * 60_000_000),
            snapshot: None,
            digest: None,
        };
        let digest = |store: Arc<MemoryStore>| {
            let window = window.clone();
            async move { data_digest(store.as_ref(), [&window]).await.unwrap() }
        };
        let original = digest(store_with(&spec, &[]).await).await;
        let DataPin::Digest { digest: text, bars } = &original else { panic!("a digest: {original:?}") };
        assert_eq!((text.len(), *bars), (71, 200), "sha256: and 64 hex digits over the window's 200 bars");
        assert_eq!(digest(store_with(&spec, &[]).await).await, original, "the same bars, the same digest");
        assert_ne!(digest(store_with(&spec, &[150]).await).await, original, "a close inside the window");
        assert_eq!(digest(store_with(&spec, &[250]).await).await, original, "a bar after the window end");
        assert_eq!(digest(store_with(&spec, &[450]).await).await, original, "a bar of another symbol");
    }

    /// Snapshots served from one other store, counting the opens.
    #[derive(Debug)]
    struct OtherStore(Arc<MemoryStore>, std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl SnapshotSource for OtherStore {
        async fn open(&self, branch: &str) -> GaResult<Arc<dyn MarketDataStore>> {
            assert_eq!(branch, "evolution-r");
            self.1.fetch_add(1, Ordering::Relaxed);
            Ok(self.0.clone())
        }
    }

    #[tokio::test]
    async fn pinned_windows_read_their_snapshot_and_are_refused_without_one() {
        let spec = SyntheticSpec::minutes(1, 300, 5);
        let (live, snapshot) = (store_with(&spec, &[10]).await, store_with(&spec, &[]).await);
        let registry = Arc::new(StrategyRegistry::default());
        let plain = DataWindow { symbols: vec!["SYN000".into()], start: None, end: None, snapshot: None, digest: None };
        let pinned = DataWindow { snapshot: Some("evolution-r".into()), ..plain.clone() };

        let refusing = Evaluator::new(live.clone(), registry.clone());
        let GaError::Config(message) = refusing.window_bars(&pinned).await.unwrap_err() else { panic!("Config") };
        assert!(message.contains("Neon branch evolution-r") && message.contains("NEON_API_KEY"), "{message}");

        let source = Arc::new(OtherStore(snapshot.clone(), Default::default()));
        let evaluator = Evaluator::new(live.clone(), registry).with_snapshots(Some(source.clone()));
        let from_snapshot = evaluator.window_bars(&pinned).await.unwrap();
        let from_live = evaluator.window_bars(&plain).await.unwrap();
        assert_eq!(from_snapshot[0].close, load_window(snapshot.as_ref(), &plain).await.unwrap()[0].close);
        assert_ne!(from_snapshot[0].close, from_live[0].close, "the live store's bar 10 differs");
        let test_window = DataWindow { start: Some(spec.start.micros()), ..pinned };
        evaluator.window_bars(&test_window).await.unwrap();
        assert_eq!(source.1.load(Ordering::Relaxed), 1, "a branch is opened once per evaluator");
    }

    #[tokio::test]
    async fn missing_symbols_are_all_named_with_close_names() {
        let store = MemoryStore::new();
        let window = DataWindow {
            symbols: vec!["SYN000".into(), "SYN01".into(), "ZZZZ".into()],
            start: None,
            end: None,
            snapshot: None,
            digest: None,
        };
        let GaError::NoData(empty) = load_window(&store, &window).await.unwrap_err() else { panic!("NoData") };
        assert!(empty.contains("SYN000 is not in the store"), "{empty}");
        assert!(empty.contains("ZZZZ"), "{empty}");
        assert!(empty.contains("ingest data first"), "an empty store asks for data: {empty}");

        for batch in SyntheticSpec::minutes(2, 50, 3).batches(200) {
            store.write_bars(batch).await.unwrap();
        }
        let GaError::NoData(message) = load_window(&store, &window).await.unwrap_err() else { panic!("NoData") };
        assert!(message.starts_with("2 symbols of SYN000,SYN01,ZZZZ"), "{message}");
        assert!(message.contains("SYN01 is not in the store (did you mean SYN001"), "{message}");
        assert!(message.contains("ZZZZ is not in the store"), "{message}");
        assert!(message.contains("the store holds 2 symbol(s): SYN000, SYN001"), "{message}");
        assert!(!message.contains("SYN000 is"), "a symbol with bars is not named: {message}");
        assert!(!message.contains("ingest data first"), "{message}");

        // A stored symbol with too few bars in the window says what the store has.
        let late = DataWindow {
            symbols: vec!["SYN000".into()],
            start: Some(1_893_456_000_000_000),
            end: None,
            snapshot: None,
            digest: None,
        };
        let GaError::NoData(message) = load_window(&store, &late).await.unwrap_err() else { panic!("NoData") };
        assert!(message.contains("SYN000 has 0 bar(s) in the window (the store has 50 from"), "{message}");
        assert!(!message.contains("ingest data first"), "{message}");
    }
}
