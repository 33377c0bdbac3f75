//! [`LazyStore`]: opens its store on first use, so a stack whose primary
//! (PostgreSQL) is down still starts, and keeps trying to open it, at most
//! once per `retry_after`, until it succeeds.
//!
//! - The first call opens the inner store with the opener given to
//!   [`LazyStore::new`]; once that succeeds every call forwards to it (the
//!   store stays open for the life of the `LazyStore`).
//! - While opening fails, each call returns `Unavailable` (`<name>
//!   unavailable: cannot open: <error>`, the opener's error as its source),
//!   marked `retries_exhausted` so no retry layer above repeats it: a new
//!   attempt starts only once `retry_after` has passed since the last one
//!   failed, and calls in between fail at once with that failure, without
//!   I/O.
//! - One attempt at a time: calls that arrive while one is under way wait
//!   for its outcome. The attempt runs as its own task, so a caller that
//!   gives up (an outer timeout) does not cancel it: its failure still starts
//!   the `retry_after` window, and its success opens the store for everyone.
//! - `capabilities` cannot wait for the store, so they are given to the
//!   constructor (what the composition root knows the backend promises).
//! - `Display` is the given name (`neon`), as the backend prints itself;
//!   `health` is the inner store's report (under the given name when the
//!   inner store prints itself otherwise), or the `Unavailable` error an
//!   adapter whose server is down would return.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use strata_core::{
    BarBatch, BarQuery, Capabilities, DayDigest, DigestQuery, HealthReport, MarketDataStore, MarketSummary, Result,
    StoreError, Symbol, TimeRange, WriteReport,
};
use tokio::time::Instant;

/// What [`LazyStore::new`] calls to open the inner store: a fresh attempt per call.
pub type Opener = dyn Fn() -> BoxFuture<'static, Result<Arc<dyn MarketDataStore>>> + Send + Sync;

/// A [`MarketDataStore`] that opens its inner store on first use and retries
/// opening it at most once per `retry_after` (see the module docs).
#[derive(Clone)]
pub struct LazyStore {
    shared: Arc<Lazy>,
}

/// The state every clone of a [`LazyStore`] and its query streams share.
struct Lazy {
    name: String,
    capabilities: Capabilities,
    retry_after: Duration,
    open: Box<Opener>,
    /// The inner store, once an attempt succeeded.
    opened: OnceLock<Arc<dyn MarketDataStore>>,
    /// The attempt under way and the last failure; held only briefly, never across an await.
    attempts: Mutex<Attempts>,
}

/// The outcome of one open attempt, shareable by every caller waiting on it.
type Outcome = std::result::Result<Arc<dyn MarketDataStore>, Arc<StoreError>>;

/// One open attempt, awaited by every caller that arrived while it runs.
type Attempt = Shared<BoxFuture<'static, Outcome>>;

/// Open attempts: the one under way, and when and how the last one failed.
#[derive(Default)]
struct Attempts {
    running: Option<Attempt>,
    failed: Option<(Instant, Arc<StoreError>)>,
}

impl LazyStore {
    /// A store named `name` (its `Display`, the backend of its errors) that
    /// opens its inner store with `open` on first use, promising
    /// `capabilities`, and after a failed attempt starts no new one until
    /// `retry_after` has passed.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use strata_core::{Capabilities, MarketDataStore};
    /// use strata_hybrid::lazy::LazyStore;
    ///
    /// let store = LazyStore::new("memory", Capabilities::default(), Duration::from_secs(2), || {
    ///     Box::pin(async { Ok(Arc::new(strata_adapter_mock::MemoryStore::new()) as Arc<dyn MarketDataStore>) })
    /// });
    /// assert!(!store.is_open());
    /// assert_eq!(store.to_string(), "memory");
    /// ```
    pub fn new<F>(name: impl Into<String>, capabilities: Capabilities, retry_after: Duration, open: F) -> Self
    where
        F: Fn() -> BoxFuture<'static, Result<Arc<dyn MarketDataStore>>> + Send + Sync + 'static,
    {
        LazyStore {
            shared: Arc::new(Lazy {
                name: name.into(),
                capabilities,
                retry_after,
                open: Box::new(open),
                opened: OnceLock::new(),
                attempts: Mutex::new(Attempts::default()),
            }),
        }
    }

    /// True once the inner store has been opened.
    pub fn is_open(&self) -> bool {
        self.shared.opened.get().is_some()
    }

    /// The inner store, opening it if needed (and allowed now).
    pub async fn store(&self) -> Result<Arc<dyn MarketDataStore>> {
        self.shared.store().await
    }
}

impl Lazy {
    /// The inner store: at once when open, else after the attempt under way
    /// or a new one, or the last failure while `retry_after` has not passed.
    async fn store(self: &Arc<Self>) -> Result<Arc<dyn MarketDataStore>> {
        if let Some(store) = self.opened.get() {
            return Ok(store.clone());
        }
        let attempt = {
            let mut attempts = self.attempts();
            if let Some(store) = self.opened.get() {
                return Ok(store.clone());
            }
            match &attempts.running {
                Some(running) => running.clone(),
                None => {
                    if let Some((at, error)) = &attempts.failed
                        && at.elapsed() < self.retry_after
                    {
                        return Err(self.cannot_open(error));
                    }
                    let attempt = attempt(Arc::downgrade(self));
                    attempts.running = Some(attempt.clone());
                    // The attempt runs to its end even when every caller gives up.
                    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                        drop(runtime.spawn(attempt.clone()));
                    }
                    attempt
                }
            }
        };
        attempt.await.map_err(|error| self.cannot_open(&error))
    }

    /// Records the outcome of the attempt that just ended.
    fn record(&self, outcome: &Outcome) {
        let mut attempts = self.attempts();
        attempts.running = None;
        match outcome {
            Ok(store) => {
                if self.opened.set(store.clone()).is_err() {
                    tracing::warn!("{}: opened twice; keeping the first store", self.name);
                }
                attempts.failed = None;
                tracing::info!("{}: opened", self.name);
            }
            Err(error) => {
                // The layers above say what an outage means for the caller; this is detail.
                tracing::info!(
                    "{}: cannot open: {error}; next attempt in {:?} at the earliest",
                    self.name,
                    self.retry_after
                );
                attempts.failed = Some((Instant::now(), error.clone()));
            }
        }
    }

    /// The error of a call while the store cannot be opened.
    fn cannot_open(&self, error: &Arc<StoreError>) -> StoreError {
        StoreError::unavailable(self.name.clone(), format!("cannot open: {error}"), Some(Box::new(error.clone())))
            .after_retries()
    }

    /// Locks the attempts (poisoning only means a panic elsewhere: the state
    /// is replaced whole under the lock, never left half-written).
    fn attempts(&self) -> MutexGuard<'_, Attempts> {
        self.attempts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A new open attempt of the store behind `lazy`, which records its outcome
/// before any caller sees it. It holds `lazy` weakly (only while calling the
/// opener and recording), so a forgotten attempt keeps no store alive.
fn attempt(lazy: Weak<Lazy>) -> Attempt {
    async move {
        let (name, opening) = match lazy.upgrade() {
            Some(lazy) => (lazy.name.clone(), (lazy.open)()),
            None => return Err(Arc::new(StoreError::internal("lazy", "the store was dropped while opening"))),
        };
        let outcome = match AssertUnwindSafe(opening).catch_unwind().await {
            Ok(Ok(store)) => Ok(store),
            Ok(Err(error)) => Err(Arc::new(error)),
            Err(_panic) => Err(Arc::new(StoreError::internal(name, "the opener panicked"))),
        };
        if let Some(lazy) = lazy.upgrade() {
            lazy.record(&outcome);
        }
        outcome
    }
    .boxed()
    .shared()
}

impl fmt::Display for LazyStore {
    /// The name given to [`LazyStore::new`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shared.name)
    }
}

impl fmt::Debug for LazyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyStore")
            .field("name", &self.shared.name)
            .field("retry_after", &self.shared.retry_after)
            .field("inner", &self.shared.opened.get())
            .finish_non_exhaustive()
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait::async_trait]
impl MarketDataStore for LazyStore {
    fn capabilities(&self) -> Capabilities {
        self.shared.capabilities
    }

    async fn write_bars(&self, batch: BarBatch) -> Result<WriteReport> {
        self.store().await?.write_bars(batch).await
    }

    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>> {
        if let Some(store) = self.shared.opened.get() {
            return store.query_bars(query);
        }
        let shared = self.shared.clone();
        futures::stream::once(async move { shared.store().await.map(|store| store.query_bars(query)) })
            .try_flatten()
            .boxed()
    }

    async fn summary(&self) -> Result<MarketSummary> {
        self.store().await?.summary().await
    }

    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>> {
        self.store().await?.digest(query).await
    }

    async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> Result<u64> {
        self.store().await?.delete_bars(symbol, range).await
    }

    async fn health(&self) -> Result<HealthReport> {
        let inner = self.store().await?.health().await?;
        if inner.backend == self.shared.name {
            Ok(inner)
        } else {
            Ok(HealthReport::new(self.shared.name.clone(), inner.status).with_component(inner))
        }
    }
}
