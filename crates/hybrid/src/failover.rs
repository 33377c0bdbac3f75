//! Failover of writes to a durable journal, and its replay.
//!
//! [`FailoverStore`] writes to the primary. When the primary is unavailable
//! or times out, the batch is appended to the [`Journal`] (fsynced before the
//! write returns) and acknowledged as [`Durability::Journaled`]. A replayer
//! ([`FailoverStore::drain`], [`FailoverStore::spawn_replayer`]) applies the
//! journal to the primary in order once it answers, removing each entry after
//! the primary confirmed it, and parks an entry the primary rejects as
//! invalid (with the reason) instead of retrying it forever or letting it
//! block the entries behind it. An internal error (a driver or server fault,
//! not the entry's) stops the drain like an outage, and the entry is applied
//! again later: it is never parked on a glitch.
//!
//! # Order
//!
//! A row written after an older journaled row of the same key must win. So
//! while the journal holds anything, new writes and deletes go to the journal
//! behind it, never around it to the primary. Processes sharing one journal
//! (an ingest and a worker on one machine) agree through the journal's lock:
//! a writer holds it shared from "is the journal empty?" until its primary
//! write returned; the replayer holds it exclusively while it applies and
//! removes one entry. A writer therefore never reaches the primary while an
//! older entry is half replayed, and the replayer never applies an entry
//! while a direct write that overtook nothing is in flight.
//!
//! # Outcome unknown
//!
//! A write to the primary that fails as unavailable or timed out may have
//! committed anyway (the connection dropped after COMMIT was sent). It is
//! journaled and replayed: the port's writes are upserts keyed by (symbol,
//! timestamp), so applying the same batch twice leaves the same rows, and no
//! other write of this stack can come between the two applications (the
//! journal is not empty, so later writes queue behind it). The same holds for
//! a replay whose confirmation was lost: the entry stays and is applied
//! again, identically. What is left is a write from another host to the same
//! key between the two applications, the same race any two writers of one
//! key have; and an attempt the server is still executing when the replay
//! arrives, which the primary's own statement timeout bounds and whose row
//! locks order the replay after it.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::BoxStream;
use strata_core::policy::Backoff;
use strata_core::{
    BarBatch, BarQuery, Capabilities, DayDigest, DigestQuery, Durability, HealthReport, HealthStatus, MarketDataStore,
    MarketSummary, Result, StoreError, Symbol, TimeRange, Timestamp, WriteReport,
};
use tokio::sync::Notify;

use crate::journal::{Journal, JournalOp};

/// Whether the primary answers and the journal is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The primary answers and nothing is journaled.
    Normal,
    /// The primary does not answer: writes are journaled, reads come from the cache.
    Degraded,
    /// The primary answers again and the journal is being replayed.
    Recovering,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Normal => "normal",
            Mode::Degraded => "degraded",
            Mode::Recovering => "recovering",
        })
    }
}

/// What one drain of the journal did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DrainReport {
    /// Entries applied to the primary and removed from the journal.
    pub applied: usize,
    /// Rows in those entries (deleted ranges count 0).
    pub rows: u64,
    /// Entries parked now, with the primary's reason.
    pub parked: Vec<(u64, String)>,
    /// Entries still in the journal.
    pub remaining: usize,
    /// Why the drain stopped early (the primary is unavailable), if it did.
    pub stopped: Option<String>,
}

/// Writes to a primary store, or to a durable journal while it is down.
#[derive(Debug)]
pub struct FailoverStore {
    primary: Arc<dyn MarketDataStore>,
    journal: Journal,
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The last primary call failed as unavailable or timed out.
    down: AtomicBool,
    /// When the primary was first seen down (micros), 0 when up.
    down_since: AtomicI64,
    last_error: Mutex<Option<String>>,
    /// Wakes the background replayer (a batch was journaled).
    wake: Notify,
}

/// True for the errors that mean "the primary did not answer" (outcome unknown).
pub fn is_outage(error: &StoreError) -> bool {
    error.is_retryable()
}

impl FailoverStore {
    /// Writes go to `primary`, or to `journal` while it is down.
    pub fn new(primary: Arc<dyn MarketDataStore>, journal: Journal) -> Self {
        FailoverStore { primary, journal, state: Arc::new(State::default()) }
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The primary store.
    pub fn primary(&self) -> &Arc<dyn MarketDataStore> {
        &self.primary
    }

    /// Normal, degraded or recovering.
    pub async fn mode(&self) -> Result<Mode> {
        if self.state.down.load(Ordering::Relaxed) {
            return Ok(Mode::Degraded);
        }
        let journal = self.journal.clone();
        let empty = blocking(move || journal.is_empty()).await?;
        Ok(if empty { Mode::Normal } else { Mode::Recovering })
    }

    /// Whether the last call to the primary failed as an outage.
    pub fn primary_down(&self) -> bool {
        self.state.down.load(Ordering::Relaxed)
    }

    fn mark_down(&self, error: &StoreError) {
        if !self.state.down.swap(true, Ordering::Relaxed) {
            self.state.down_since.store(Timestamp::now().0, Ordering::Relaxed);
            tracing::warn!("{} is unavailable; writes are journaled until it answers ({error})", self.primary);
        }
        if let Ok(mut last) = self.state.last_error.lock() {
            *last = Some(error.to_string());
        }
    }

    fn mark_up(&self) {
        if self.state.down.swap(false, Ordering::Relaxed) {
            self.state.down_since.store(0, Ordering::Relaxed);
            tracing::info!("{} answers again", self.primary);
        }
    }

    /// Notes an outage seen by a layer above (a read stream that failed).
    pub fn note_outage(&self, error: &StoreError) {
        if is_outage(error) {
            self.mark_down(error);
        }
    }

    /// Notes the outcome of a primary call for the mode.
    fn observe<T>(&self, outcome: &Result<T>) {
        match outcome {
            Ok(_) => self.mark_up(),
            Err(error) if is_outage(error) => self.mark_down(error),
            Err(_) => {}
        }
    }

    /// Appends `op` to the journal (durable when this returns) and wakes the replayer.
    async fn journal_op(&self, op: JournalOp, rows: u64) -> Result<WriteReport> {
        let journal = self.journal.clone();
        blocking(move || journal.append(&op)).await?;
        self.state.wake.notify_one();
        Ok(WriteReport { rows, durability: Durability::Journaled })
    }

    /// Runs `direct` against the primary unless the journal holds anything
    /// (then, or when the primary is down, `op` is journaled instead),
    /// holding the journal's shared lock throughout (see the module doc).
    async fn write_through<F, Fut>(&self, op: JournalOp, rows: u64, direct: F) -> Result<WriteReport>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<WriteReport>>,
    {
        let journal = self.journal.clone();
        let (_lock, empty) = blocking(move || {
            let lock = journal.lock_shared()?;
            Ok((lock, journal.is_empty()?))
        })
        .await?;
        if !empty || self.primary_down() {
            return self.journal_op(op, rows).await;
        }
        let outcome = direct().await;
        self.observe(&outcome);
        match outcome {
            Err(error) if is_outage(&error) => self.journal_op(op, rows).await,
            other => other,
        }
    }

    /// Applies the journal to the primary in order until it is empty or the
    /// primary stops answering; parks entries the primary rejects.
    pub async fn drain(&self) -> Result<DrainReport> {
        let mut report = DrainReport::default();
        loop {
            let journal = self.journal.clone();
            let (lock, next) = blocking(move || {
                let lock = journal.lock_exclusive()?;
                let next = journal.pending()?.first().copied();
                Ok((lock, next))
            })
            .await?;
            let Some(seq) = next else { break };
            let journal = self.journal.clone();
            let entry = match blocking(move || journal.read(seq)).await {
                Ok(entry) => entry,
                Err(error) if !crate::journal::is_corrupt(&error) => {
                    drop(lock);
                    return Err(error);
                }
                Err(error) => {
                    // An entry that cannot be read would block everything behind it.
                    let reason = format!("unreadable journal entry: {error}");
                    let journal = self.journal.clone();
                    let parked = reason.clone();
                    blocking(move || journal.park(seq, &parked)).await?;
                    report.parked.push((seq, reason));
                    drop(lock);
                    continue;
                }
            };
            let (outcome, rows) = match entry.op {
                JournalOp::Write(batch) => {
                    let rows = batch.len() as u64;
                    (self.primary.write_bars(batch).await.map(|_| ()), rows)
                }
                JournalOp::Delete { symbol, range } => (self.primary.delete_bars(&symbol, range).await.map(|_| ()), 0),
            };
            self.observe(&outcome);
            let journal = self.journal.clone();
            match outcome {
                Ok(()) => {
                    blocking(move || journal.remove(seq)).await?;
                    report.applied += 1;
                    report.rows += rows;
                }
                // An internal error is the primary's or the driver's fault, not the entry's: parking
                // would set acknowledged rows aside on a glitch. It stops this drain like an outage;
                // the next one applies the entry again (an upsert, so harmlessly).
                Err(error) if is_outage(&error) || matches!(error, StoreError::Internal { .. }) => {
                    report.stopped = Some(error.to_string());
                    drop(lock);
                    break;
                }
                Err(error) => {
                    let reason = error.to_string();
                    tracing::error!("the primary refused journal entry {seq}; parked: {reason}");
                    let parked = reason.clone();
                    blocking(move || journal.park(seq, &parked)).await?;
                    report.parked.push((seq, reason));
                }
            }
            drop(lock);
        }
        let journal = self.journal.clone();
        report.remaining = blocking(move || journal.pending()).await?.len();
        Ok(report)
    }

    /// Drains the journal in the background: when a batch is journaled, and
    /// with `backoff` between attempts while the primary does not answer.
    /// Dropping the handle stops it (a half-applied entry is applied again
    /// by the next drain, harmlessly).
    pub fn spawn_replayer(self: &Arc<Self>, backoff: Backoff) -> ReplayHandle {
        let store = Arc::clone(self);
        let task = tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let pending = {
                    let journal = store.journal.clone();
                    blocking(move || journal.is_empty()).await.map(|empty| !empty).unwrap_or(true)
                };
                if pending {
                    match store.drain().await {
                        Ok(report) if report.stopped.is_none() => {
                            failures = 0;
                            if report.applied > 0 {
                                tracing::info!(
                                    "replayed {} journaled batches ({} rows) into {}",
                                    report.applied,
                                    report.rows,
                                    store.primary
                                );
                            }
                        }
                        Ok(_) | Err(_) => failures = failures.saturating_add(1),
                    }
                }
                let wait = if failures > 0 { backoff.delay(failures) } else { backoff.cap };
                // A journaled write wakes us at once only when the primary is
                // not known to be down (then the backoff decides).
                let _ = tokio::time::timeout(wait, async {
                    if failures == 0 {
                        store.state.wake.notified().await;
                    } else {
                        std::future::pending::<()>().await;
                    }
                })
                .await;
            }
        });
        ReplayHandle { task }
    }

    /// Deletes on the primary, or journals the delete (in order with the
    /// writes): `rows` is the primary's count, 0 when journaled.
    pub async fn delete_with_report(&self, symbol: &Symbol, range: TimeRange) -> Result<WriteReport> {
        let op = JournalOp::Delete { symbol: symbol.clone(), range };
        self.write_through(op, 0, || async {
            Ok(WriteReport::committed(self.primary.delete_bars(symbol, range).await?))
        })
        .await
    }

    /// The journal's state for health: mode, depth, oldest entry's age, parked entries.
    pub async fn journal_report(&self) -> Result<HealthReport> {
        let journal = self.journal.clone();
        let stats = blocking(move || journal.stats()).await?;
        let mode = self.mode().await?;
        let status =
            if mode == Mode::Normal && stats.parked == 0 { HealthStatus::Healthy } else { HealthStatus::Degraded };
        let mut report = HealthReport::new("journal", status)
            .with_detail("path", self.journal.dir().display().to_string())
            .with_detail("mode", mode.to_string())
            .with_detail("journal_depth", stats.depth.to_string())
            .with_detail("journal_rows", stats.rows.to_string());
        if let Some(oldest) = stats.oldest_micros {
            let age = Duration::from_micros(Timestamp::now().0.saturating_sub(oldest).max(0) as u64);
            report = report.with_detail("oldest_journaled_ms", age.as_millis().to_string());
        }
        report = report.with_detail("parked", stats.parked.to_string());
        if let Some(error) = self.state.last_error.lock().ok().and_then(|e| e.clone())
            && self.primary_down()
        {
            report = report.with_detail("primary_error", error);
        }
        Ok(report)
    }
}

/// The background replayer; dropping it stops it.
#[derive(Debug)]
pub struct ReplayHandle {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ReplayHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs a blocking journal call off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| StoreError::internal("journal", format!("a journal task failed: {error}")))?
}

impl std::fmt::Display for FailoverStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failover({}, journal)", self.primary)
    }
}

#[async_trait::async_trait]
impl MarketDataStore for FailoverStore {
    fn capabilities(&self) -> Capabilities {
        // Journaled writes are durable; everything else is the primary's.
        Capabilities { durable: true, ..self.primary.capabilities() }
    }

    async fn write_bars(&self, batch: BarBatch) -> Result<WriteReport> {
        // Validate here: an invalid batch must never reach the journal.
        batch.validate().map_err(|report| StoreError::InvalidInput(strata_core::InvalidInput::Rows(report)))?;
        if batch.is_empty() {
            return Ok(WriteReport::committed(0));
        }
        let rows = batch.len() as u64;
        let direct = batch.clone();
        self.write_through(JournalOp::Write(batch), rows, || self.primary.write_bars(direct)).await
    }

    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>> {
        self.primary.query_bars(query)
    }

    async fn summary(&self) -> Result<MarketSummary> {
        let outcome = self.primary.summary().await;
        self.observe(&outcome);
        outcome
    }

    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>> {
        let outcome = self.primary.digest(query).await;
        self.observe(&outcome);
        outcome
    }

    async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> Result<u64> {
        Ok(self.delete_with_report(symbol, range).await?.rows)
    }

    async fn health(&self) -> Result<HealthReport> {
        let primary = match self.primary.health().await {
            Ok(report) => {
                self.mark_up();
                report
            }
            Err(error) => {
                if is_outage(&error) {
                    self.mark_down(&error);
                }
                HealthReport::new(self.primary.to_string(), HealthStatus::Down).with_detail("error", error.to_string())
            }
        };
        let journal = self.journal_report().await?;
        let status = match (primary.status, journal.status) {
            (HealthStatus::Healthy, HealthStatus::Healthy) => HealthStatus::Healthy,
            // Writes still land (in the journal): degraded, not down.
            _ => HealthStatus::Degraded,
        };
        let mut report = HealthReport::new(self.to_string(), status);
        for (key, value) in &journal.details {
            if key == "mode" || key == "journal_depth" || key == "oldest_journaled_ms" {
                report = report.with_detail(key.clone(), value.clone());
            }
        }
        Ok(report.with_component(primary).with_component(journal))
    }
}
