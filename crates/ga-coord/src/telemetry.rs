//! The GA's metrics, recorded through the [`metrics`] facade: this crate
//! installs no exporter (the binary does; without one every metric is a
//! no-op).
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `strata_ga_leases` | gauge | `state` | tasks of the generation the coordinator is waiting on, by state |
//! | `strata_ga_evaluations_total` | counter | `outcome` | evaluations workers finished, by what became of them |
//! | `strata_ga_fitness_cache_hits_total` | counter | | results taken from the store's durable fitness cache instead of a backtest |
//! | `strata_ga_evaluation_seconds` | histogram | | how long one backtest took, in seconds |
//! | `strata_ga_lease_seconds` | histogram | | how long one `lease_tasks` call (a worker claiming work, found or not) took, in seconds |
//! | `strata_ga_generations_total` | counter | | generations a coordinator evaluated and recorded |
//!
//! - `state` is `pending`, `leased`, `done` or `parked`; the coordinator sets
//!   the four each time it polls the task counts of the generation it waits
//!   on (every [`CoordinatorConfig::poll`](crate::CoordinatorConfig::poll)).
//!   No run id label: a process drives one run at a time.
//! - `outcome` mirrors the fields of [`WorkerReport`]: `completed` (the
//!   store recorded the result: `recorded`), `failed` (requeued or parked),
//!   `stale` (the lease had moved on), `abandoned` (the run ended or the
//!   worker stopped mid-batch) and `released` (handed back at shutdown).
//!   The counts are published as the worker goes (at each lease round) and
//!   when it stops.
//! - `strata_ga_evaluation_seconds` times each backtest the evaluator runs
//!   (its `_count` is the number of backtests); results from the in-memory or
//!   the durable fitness cache are not timed.
//!
//! Every metric has HELP text: [`describe`] registers it with the recorder
//! installed at the time, and the recording helpers call it once, on first
//! use. A binary that installs its exporter after something was recorded
//! calls [`describe`] itself.

use std::sync::Once;
use std::time::Duration;

use metrics::Unit;
use strata_core::evolution::TaskCounts;

use crate::worker::WorkerReport;

/// Tasks of the generation being evaluated, by `state`.
pub const LEASES: &str = "strata_ga_leases";
/// Evaluations finished by workers, by `outcome`.
pub const EVALUATIONS_TOTAL: &str = "strata_ga_evaluations_total";
/// Results taken from the durable fitness cache.
pub const FITNESS_CACHE_HITS_TOTAL: &str = "strata_ga_fitness_cache_hits_total";
/// Duration of one backtest in seconds.
pub const EVALUATION_SECONDS: &str = "strata_ga_evaluation_seconds";
/// Duration of one `lease_tasks` call in seconds.
pub const LEASE_SECONDS: &str = "strata_ga_lease_seconds";
/// Generations evaluated and recorded by a coordinator.
pub const GENERATIONS_TOTAL: &str = "strata_ga_generations_total";

/// Registers the unit and HELP text of every metric of this module with the
/// recorder installed now. Harmless to repeat.
pub fn describe() {
    metrics::describe_gauge!(
        LEASES,
        Unit::Count,
        "Tasks of the GA generation the coordinator is waiting on, by state (pending, leased, done, parked)."
    );
    metrics::describe_counter!(
        EVALUATIONS_TOTAL,
        Unit::Count,
        "GA evaluations finished by workers, by outcome (completed, failed, stale, abandoned, released)."
    );
    metrics::describe_counter!(
        FITNESS_CACHE_HITS_TOTAL,
        Unit::Count,
        "GA results taken from the store's durable fitness cache instead of a backtest."
    );
    metrics::describe_histogram!(EVALUATION_SECONDS, Unit::Seconds, "Duration of one GA backtest.");
    metrics::describe_histogram!(
        LEASE_SECONDS,
        Unit::Seconds,
        "Duration of one lease_tasks call: a GA worker claiming a batch of evaluations."
    );
    metrics::describe_counter!(
        GENERATIONS_TOTAL,
        Unit::Count,
        "GA generations a coordinator evaluated and recorded the statistics of."
    );
}

/// [`describe`], once per process, on the first recording.
fn describe_once() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(describe);
}

/// The coordinator read the task counts of the generation it waits on.
pub(crate) fn task_counts(counts: &TaskCounts) {
    describe_once();
    for (state, count) in
        [("pending", counts.pending), ("leased", counts.leased), ("done", counts.done), ("parked", counts.parked)]
    {
        metrics::gauge!(LEASES, "state" => state).set(count as f64);
    }
}

/// The coordinator recorded a generation's statistics.
pub(crate) fn generation_done() {
    describe_once();
    metrics::counter!(GENERATIONS_TOTAL).increment(1);
}

/// One backtest ran for `elapsed`.
pub(crate) fn backtest(elapsed: Duration) {
    describe_once();
    metrics::histogram!(EVALUATION_SECONDS).record(elapsed.as_secs_f64());
}

/// One `lease_tasks` call took `elapsed`.
pub(crate) fn lease(elapsed: Duration) {
    describe_once();
    metrics::histogram!(LEASE_SECONDS).record(elapsed.as_secs_f64());
}

/// What of one worker's [`WorkerReport`] the counters already hold, so the
/// report can be published as it grows: each publication adds what changed
/// since the previous one.
#[derive(Debug, Default)]
pub(crate) struct PublishedReport {
    published: WorkerReport,
}

impl PublishedReport {
    /// Adds to the counters what `report` gained since the last call.
    pub(crate) fn publish(&mut self, report: &WorkerReport) {
        if *report == self.published {
            return;
        }
        describe_once();
        let before = std::mem::replace(&mut self.published, *report);
        for (outcome, now, then) in [
            ("completed", report.recorded, before.recorded),
            ("failed", report.failed, before.failed),
            ("stale", report.stale, before.stale),
            ("abandoned", report.abandoned, before.abandoned),
            ("released", report.released, before.released),
        ] {
            if now > then {
                metrics::counter!(EVALUATIONS_TOTAL, "outcome" => outcome).increment(now - then);
            }
        }
        if report.cached > before.cached {
            metrics::counter!(FITNESS_CACHE_HITS_TOTAL).increment(report.cached - before.cached);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use strata_adapter_mock::MemoryStore;
    use strata_core::MarketDataStore as _;
    use strata_core::evolution::WorkerId;
    use strata_core::synthetic::SyntheticSpec;

    use super::*;
    use crate::config::{DataWindow, RunConfig};
    use crate::local::{LocalOptions, evolve_local};
    use crate::strategy::StrategyRegistry;

    /// Counter sums, last gauge values and histogram samples by
    /// `name{label=value,...}` (labels sorted).
    #[derive(Debug, Default, Clone)]
    struct TestRecorder {
        values: Arc<Mutex<BTreeMap<String, f64>>>,
        samples: Arc<Mutex<BTreeMap<String, Vec<f64>>>>,
    }

    #[derive(Debug)]
    struct Handle(String, TestRecorder);

    impl metrics::CounterFn for Handle {
        fn increment(&self, value: u64) {
            *self.1.values.lock().unwrap().entry(self.0.clone()).or_default() += value as f64;
        }

        fn absolute(&self, value: u64) {
            self.1.values.lock().unwrap().insert(self.0.clone(), value as f64);
        }
    }

    impl metrics::GaugeFn for Handle {
        fn increment(&self, value: f64) {
            *self.1.values.lock().unwrap().entry(self.0.clone()).or_default() += value;
        }

        fn decrement(&self, value: f64) {
            *self.1.values.lock().unwrap().entry(self.0.clone()).or_default() -= value;
        }

        fn set(&self, value: f64) {
            self.1.values.lock().unwrap().insert(self.0.clone(), value);
        }
    }

    impl metrics::HistogramFn for Handle {
        fn record(&self, value: f64) {
            self.1.samples.lock().unwrap().entry(self.0.clone()).or_default().push(value);
        }
    }

    impl TestRecorder {
        fn handle(&self, key: &metrics::Key) -> Arc<Handle> {
            let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            labels.sort();
            Arc::new(Handle(format!("{}{{{}}}", key.name(), labels.join(",")), self.clone()))
        }

        fn value(&self, key: &str) -> f64 {
            self.values.lock().unwrap().get(key).copied().unwrap_or(0.0)
        }

        fn samples(&self, key: &str) -> Vec<f64> {
            self.samples.lock().unwrap().get(key).cloned().unwrap_or_default()
        }
    }

    impl metrics::Recorder for TestRecorder {
        fn describe_counter(&self, _: metrics::KeyName, _: Option<Unit>, _: metrics::SharedString) {}

        fn describe_gauge(&self, _: metrics::KeyName, _: Option<Unit>, _: metrics::SharedString) {}

        fn describe_histogram(&self, _: metrics::KeyName, _: Option<Unit>, _: metrics::SharedString) {}

        fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
            metrics::Counter::from_arc(self.handle(key))
        }

        fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::from_arc(self.handle(key))
        }

        fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
            metrics::Histogram::from_arc(self.handle(key))
        }
    }

    #[test]
    fn a_local_evolution_counts_evaluations_generations_and_times_backtests() {
        let recorder = TestRecorder::default();
        // One thread: the recorder is installed on it, and every task of the
        // run (coordinator, workers) runs there; backtests run on the blocking
        // pool but are recorded back on the runtime's thread.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let (population, generations) = (6, 3);
        let outcome = metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                let store = Arc::new(MemoryStore::new());
                for batch in SyntheticSpec::minutes(1, 300, 7).batches(300) {
                    store.write_bars(batch).await.unwrap();
                }
                let window =
                    DataWindow { symbols: vec!["SYN000".into()], start: None, end: None, snapshot: None, digest: None };
                let spec = RunConfig::new(window).spec(None, "donchian", 5, population, generations).unwrap();
                let mut options = LocalOptions::new(WorkerId::new("metrics").unwrap(), 2);
                options.coordinator.poll = Duration::from_millis(5);
                let registry = Arc::new(StrategyRegistry::default());
                evolve_local(store.clone(), store, registry, spec, options, None).await.unwrap()
            })
        });
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
        let reports: Vec<WorkerReport> = outcome.workers.into_iter().map(Result::unwrap).collect();
        let sum = |field: fn(&WorkerReport) -> u64| reports.iter().map(field).sum::<u64>() as f64;

        let evaluations = f64::from(population * generations);
        assert_eq!(recorder.value("strata_ga_evaluations_total{outcome=completed}"), evaluations);
        assert_eq!(recorder.value("strata_ga_evaluations_total{outcome=completed}"), sum(|r| r.recorded));
        assert_eq!(recorder.value("strata_ga_evaluations_total{outcome=failed}"), 0.0);
        assert_eq!(recorder.value("strata_ga_fitness_cache_hits_total{}"), sum(|r| r.cached));
        assert_eq!(recorder.value("strata_ga_generations_total{}"), f64::from(generations));

        let backtests = recorder.samples("strata_ga_evaluation_seconds{}");
        assert!(!backtests.is_empty(), "the first generation is backtested");
        assert_eq!(backtests.len() as f64, sum(|r| r.backtests), "one sample per backtest");
        assert!(backtests.iter().all(|seconds| seconds.is_finite() && *seconds >= 0.0), "{backtests:?}");
        assert!(recorder.samples("strata_ga_lease_seconds{}").len() as f64 >= sum(|r| r.batches));

        // The last poll saw the last generation done.
        assert_eq!(recorder.value("strata_ga_leases{state=done}"), f64::from(population));
        for state in ["pending", "leased", "parked"] {
            assert_eq!(recorder.value(&format!("strata_ga_leases{{state={state}}}")), 0.0, "{state}");
        }
    }

    #[test]
    fn a_report_is_published_as_what_it_gained() {
        let recorder = TestRecorder::default();
        metrics::with_local_recorder(&recorder, || {
            let mut published = PublishedReport::default();
            let mut report = WorkerReport { recorded: 3, failed: 1, cached: 2, ..WorkerReport::default() };
            published.publish(&report);
            published.publish(&report);
            report.recorded += 2;
            report.released = 4;
            published.publish(&report);
        });
        assert_eq!(recorder.value("strata_ga_evaluations_total{outcome=completed}"), 5.0);
        assert_eq!(recorder.value("strata_ga_evaluations_total{outcome=failed}"), 1.0);
        assert_eq!(recorder.value("strata_ga_evaluations_total{outcome=released}"), 4.0);
        assert_eq!(recorder.value("strata_ga_evaluations_total{outcome=stale}"), 0.0);
        assert_eq!(recorder.value("strata_ga_fitness_cache_hits_total{}"), 2.0);
    }
}
