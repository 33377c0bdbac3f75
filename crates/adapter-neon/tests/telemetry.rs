//! The store's metrics against PostgreSQL at `DATABASE_URL`: the pool
//! gauges and the database size a health check sets, with the label of the
//! backend (never the URL or schema).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use strata_core::MarketDataStore as _;
use strata_core::synthetic::SyntheticSpec;

/// The last value of each gauge by `name{label=value,...}` (labels sorted).
#[derive(Debug, Default, Clone)]
struct GaugeRecorder {
    gauges: Arc<Mutex<BTreeMap<String, f64>>>,
}

#[derive(Debug)]
struct Gauge(String, Arc<Mutex<BTreeMap<String, f64>>>);

impl metrics::GaugeFn for Gauge {
    fn increment(&self, value: f64) {
        *self.1.lock().expect("gauges").entry(self.0.clone()).or_default() += value;
    }

    fn decrement(&self, value: f64) {
        *self.1.lock().expect("gauges").entry(self.0.clone()).or_default() -= value;
    }

    fn set(&self, value: f64) {
        self.1.lock().expect("gauges").insert(self.0.clone(), value);
    }
}

impl metrics::Recorder for GaugeRecorder {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::noop()
    }

    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        metrics::Gauge::from_arc(Arc::new(Gauge(name, self.gauges.clone())))
    }

    fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

impl GaugeRecorder {
    fn gauge(&self, key: &str) -> Option<f64> {
        self.gauges.lock().expect("gauges").get(key).copied()
    }
}

#[test]
fn a_health_check_sets_the_pool_and_database_size_gauges() {
    let recorder = GaugeRecorder::default();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let checked = metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let (store, _guard) = common::fresh_store(false).await?;
            for batch in SyntheticSpec::minutes(1, 500, 3).batches(500) {
                store.write_bars(batch).await.expect("write");
            }
            Some(store.health().await.expect("health"))
        })
    });
    let Some(health) = checked else {
        strata_tests::skip("a_health_check_sets_the_pool_and_database_size_gauges");
        return;
    };
    let detail = |key: &str| health.details.iter().find(|(name, _)| name == key).map(|(_, value)| value.clone());
    let size: f64 = detail("database_bytes").expect("database_bytes").parse().expect("a number");
    assert!(size > 0.0);
    assert_eq!(recorder.gauge("strata_database_size_bytes{store=neon}"), Some(size));
    assert_eq!(recorder.gauge("strata_pool_max_connections{store=neon}"), Some(6.0), "the test pool's maximum");
    let idle = recorder.gauge("strata_pool_connections{state=idle,store=neon}").expect("idle");
    let used = recorder.gauge("strata_pool_connections{state=used,store=neon}").expect("used");
    assert!(idle + used >= 1.0 && idle + used <= 6.0, "idle {idle}, used {used}");
    let keys: Vec<String> = recorder.gauges.lock().expect("gauges").keys().cloned().collect();
    assert!(keys.iter().all(|key| key.ends_with("store=neon}")), "only the backend as label: {keys:?}");
}
