//! The mechanisms that adapters and the decorators share, so that each lives
//! once (the pure policies they apply are in `strata_core::policy`):
//!
//! - [`lazy_producer`] / [`lazy_blocking_producer`]: a `'static` stream of
//!   bounded batches fed by a task that starts on the first poll (building
//!   the stream needs no runtime), with a small channel for back-pressure;
//!   the first error ends the stream.
//! - [`retry`]: runs an operation again on retryable errors, as its
//!   [`Idempotency`] allows, with [`Backoff`] within a time budget.
//! - [`fs`]: durable files: write aside and fsync, publish by `link(2)`
//!   (never replacing a name), fsync the directories whose entries changed
//!   (the EFS dataset's files and markers, the hybrid store's journal).
//! - [`ipc`]: one `BarBatch` as an Arrow IPC stream and back, bit-exact
//!   (the socket's batch frames, the journal's entries).
//!
//! Depends on core, tokio and two Arrow crates (`arrow-array`, `arrow-ipc`,
//! on core's Arrow version) only; it never names an adapter.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use strata_core::policy::{Backoff, Idempotency};
use strata_core::{Result, StoreError};
use tokio::sync::mpsc;

pub mod fs;
pub mod ipc;

/// Items buffered between a producer and its consumer by default.
pub const DEFAULT_DEPTH: usize = 2;

/// A stream whose items come from `produce`, an async task spawned on the
/// runtime at the first poll. `produce` sends items through the sender it is
/// given; an `Err` it returns is sent as the stream's last item. Dropping the
/// stream closes the channel, so a producer's next send fails and it stops.
pub fn lazy_producer<T, F, Fut>(depth: usize, produce: F) -> BoxStream<'static, Result<T>>
where
    T: Send + 'static,
    F: FnOnce(mpsc::Sender<Result<T>>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(depth.max(1));
    let start = move || {
        drop(tokio::spawn(async move {
            if let Err(error) = produce(sender.clone()).await {
                let _ = sender.send(Err(error)).await;
            }
        }));
    };
    from_receiver(start, receiver)
}

/// Like [`lazy_producer`] for blocking work (a synchronous driver): `work`
/// runs on tokio's blocking pool and sends with `blocking_send`. A panic in
/// `work` becomes an `Internal` error of `backend` instead of a stream that
/// ends silently.
pub fn lazy_blocking_producer<T, F>(depth: usize, backend: &'static str, work: F) -> BoxStream<'static, Result<T>>
where
    T: Send + 'static,
    F: FnOnce(&mpsc::Sender<Result<T>>) -> Result<()> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(depth.max(1));
    let start = move || {
        drop(tokio::task::spawn_blocking(move || {
            let failure = match std::panic::catch_unwind(AssertUnwindSafe(|| work(&sender))) {
                Ok(Ok(())) => return,
                Ok(Err(error)) => error,
                Err(_) => StoreError::internal(backend, "the reader panicked"),
            };
            let _ = sender.blocking_send(Err(failure));
        }));
    };
    from_receiver(start, receiver)
}

/// Calls `start` at the first poll, then yields what `receiver` gets.
fn from_receiver<T, S>(start: S, receiver: mpsc::Receiver<Result<T>>) -> BoxStream<'static, Result<T>>
where
    T: Send + 'static,
    S: FnOnce() + Send + 'static,
{
    futures::stream::unfold((Some(start), receiver), |(start, mut receiver)| async move {
        if let Some(start) = start {
            start();
        }
        receiver.recv().await.map(|item| (item, (None, receiver)))
    })
    .boxed()
}

/// Runs `operation` until it succeeds, fails with an error that is not
/// retryable (`StoreError::should_retry`: a transient kind that no inner
/// layer already retried), or `backoff`'s budget is spent. An error returned
/// after the budget is spent is marked `retries_exhausted`, so a layer above
/// does not retry it again.
/// A `NotIdempotent` operation is never repeated after an error whose
/// outcome is unknown (`Timeout`, or `Unavailable` that may have reached the
/// store): only `may_repeat` operations are. `what` names it in logs.
pub async fn retry<T, F, Fut>(what: &str, idempotency: Idempotency, backoff: &Backoff, mut operation: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let error = match operation().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        if !error.should_retry() || !idempotency.may_repeat() {
            return Err(error);
        }
        let Some(delay) = backoff.next_delay(attempt, started.elapsed()) else {
            tracing::warn!(attempts = attempt, "{what}: giving up, the retry budget is spent: {error}");
            return Err(error.after_retries());
        };
        tracing::info!(attempt, delay_ms = delay.as_millis() as u64, "{what}: {error}; retrying");
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use futures::TryStreamExt as _;

    use super::*;

    #[tokio::test]
    async fn a_producer_starts_on_the_first_poll_and_its_error_ends_the_stream() {
        let started = Arc::new(AtomicU32::new(0));
        let flag = started.clone();
        let stream = lazy_producer(2, move |sender| async move {
            flag.fetch_add(1, Ordering::SeqCst);
            for value in 0..5u32 {
                sender.send(Ok(value)).await.map_err(|_| StoreError::internal("test", "closed"))?;
            }
            Err(StoreError::internal("test", "boom"))
        });
        tokio::task::yield_now().await;
        assert_eq!(started.load(Ordering::SeqCst), 0, "nothing runs before the first poll");
        let items: Vec<Result<u32>> = stream.collect().await;
        assert_eq!(items.len(), 6);
        assert!(items[..5].iter().all(Result::is_ok));
        assert!(items[5].as_ref().is_err_and(|e| e.to_string().contains("boom")));
    }

    #[test]
    fn building_a_stream_needs_no_runtime() {
        let _stream = lazy_producer(2, |_sender: mpsc::Sender<Result<u32>>| async { Ok(()) });
        let _blocking = lazy_blocking_producer::<u32, _>(2, "test", |_sender| Ok(()));
    }

    #[tokio::test]
    async fn a_blocking_producer_reports_a_panic_as_an_error() {
        let stream = lazy_blocking_producer::<u32, _>(2, "test", |sender| {
            sender.blocking_send(Ok(1)).map_err(|_| StoreError::internal("test", "closed"))?;
            panic!("the driver fell over");
        });
        let error = stream.try_collect::<Vec<u32>>().await.unwrap_err();
        assert!(error.to_string().contains("panicked"), "{error}");
    }

    fn down() -> StoreError {
        StoreError::unavailable("test", "down", None)
    }

    fn fast() -> Backoff {
        Backoff::new(Duration::from_millis(1), Duration::from_millis(4), Duration::from_secs(10))
    }

    #[tokio::test]
    async fn retry_repeats_retryable_errors_until_success() {
        let calls = AtomicU32::new(0);
        let value = retry("test", Idempotency::Idempotent, &fast(), || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 3 { Err(down()) } else { Ok(42) }
        })
        .await
        .unwrap();
        assert_eq!((value, calls.load(Ordering::SeqCst)), (42, 4));
    }

    #[tokio::test]
    async fn retry_never_repeats_a_non_idempotent_operation_or_a_permanent_error() {
        let calls = AtomicU32::new(0);
        let outcome: Result<()> = retry("lease", Idempotency::NotIdempotent, &fast(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(down())
        })
        .await;
        assert!(outcome.is_err());
        assert_eq!(calls.swap(0, Ordering::SeqCst), 1);
        let outcome: Result<()> = retry("write", Idempotency::Idempotent, &fast(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::invalid("bad row"))
        })
        .await;
        assert!(outcome.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn retry_stops_when_the_budget_is_spent() {
        let budget = Backoff::new(Duration::from_millis(5), Duration::from_millis(5), Duration::from_millis(30));
        let calls = AtomicU32::new(0);
        let outcome: Result<()> = retry("read", Idempotency::Safe, &budget, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(down())
        })
        .await;
        let error = outcome.unwrap_err();
        assert!(error.retries_exhausted(), "the error says its retries are spent: {error:?}");
        let calls = calls.load(Ordering::SeqCst);
        assert!((2..=12).contains(&calls), "{calls} attempts within a 30 ms budget of 2.5-5 ms waits");
    }

    #[tokio::test]
    async fn retry_does_not_stack_on_an_inner_layer_that_already_retried() {
        let calls = AtomicU32::new(0);
        let outcome: Result<()> = retry("read", Idempotency::Safe, &fast(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(down().after_retries())
        })
        .await;
        assert!(outcome.unwrap_err().retries_exhausted());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "an exhausted error is returned at once");
    }
}
