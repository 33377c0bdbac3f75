//! The hybrid stack, built in the one order the crate documents (see the
//! crate root): `metered(cached(failover([retry](timeout(primary)), journal), cache))`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strata_core::policy::Backoff;
use strata_core::{MarketDataStore, Result};

use crate::cached::{CachedStore, Routing};
use crate::coverage::Coverage;
use crate::failover::{DrainReport, FailoverStore, ReplayHandle};
use crate::journal::Journal;
use crate::metered::MeteredStore;
use crate::retry::RetryStore;
use crate::timeout::TimeoutStore;

/// How to build a hybrid stack.
#[derive(Debug, Clone)]
pub struct HybridConfig {
    /// Where the journal (`journal/`) and the cache's coverage record live:
    /// beside the cache file, on local disk.
    pub state_dir: PathBuf,
    /// Which ages of data the cache serves.
    pub routing: Routing,
    /// Bound on each call to the primary.
    pub primary_timeout: Duration,
    /// A retry layer for primaries that do not retry themselves (`None` for
    /// PostgreSQL, which retries within its own budget).
    pub retry: Option<Backoff>,
    /// Waits of the background replayer while the primary does not answer.
    pub replay_backoff: Backoff,
}

impl HybridConfig {
    /// Defaults beside `state_dir`: the seeds' routing, 60 s per primary
    /// call, no retry layer, replay backoff from 250 ms to 5 s.
    pub fn new(state_dir: PathBuf) -> Self {
        HybridConfig {
            state_dir,
            routing: Routing::default(),
            primary_timeout: Duration::from_secs(60),
            retry: None,
            replay_backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(5), Duration::MAX),
        }
    }
}

/// A built hybrid store and its parts.
#[derive(Debug)]
pub struct HybridStack {
    /// The store callers use (the outermost layer).
    pub store: Arc<dyn MarketDataStore>,
    /// The failover layer: its journal, mode and drain.
    pub failover: Arc<FailoverStore>,
    /// The cache store itself (for `strata verify` of primary against cache, and tests).
    pub cache: Arc<dyn MarketDataStore>,
    replayer: std::sync::Mutex<Option<ReplayHandle>>,
}

impl HybridStack {
    /// Builds the stack over `primary` and `cache`; the replayer is not started.
    pub fn build(
        primary: Arc<dyn MarketDataStore>,
        cache: Arc<dyn MarketDataStore>,
        config: &HybridConfig,
    ) -> Result<Self> {
        let journal = Journal::open(&config.state_dir.join("journal"))?;
        let coverage = Coverage::open(&config.state_dir)?;
        // Each attempt gets its own deadline: the timeout sits inside the retry.
        let mut primary: Arc<dyn MarketDataStore> = Arc::new(TimeoutStore::new(primary, config.primary_timeout));
        if let Some(backoff) = config.retry {
            primary = Arc::new(RetryStore::new(primary, backoff));
        }
        let failover = Arc::new(FailoverStore::new(primary, journal));
        let cached = CachedStore::new(failover.clone(), cache.clone(), coverage, config.routing);
        let store: Arc<dyn MarketDataStore> = Arc::new(MeteredStore::new(Arc::new(cached), "hybrid"));
        Ok(HybridStack { store, failover, cache, replayer: std::sync::Mutex::new(None) })
    }

    /// Starts draining the journal in the background (long-running commands).
    pub fn start_replayer(&self, backoff: Backoff) {
        if let Ok(mut replayer) = self.replayer.lock()
            && replayer.is_none()
        {
            *replayer = Some(self.failover.spawn_replayer(backoff));
        }
    }

    /// Drains the journal now (`strata sync`).
    pub async fn sync(&self) -> Result<DrainReport> {
        self.failover.drain().await
    }
}
