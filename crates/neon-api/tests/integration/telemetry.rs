//! The client's metrics against the fake server: every attempt counted by
//! route template (never a concrete id) and status, timed, and every retry
//! counted by reason.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_neon_api::ProjectId;
use strata_neon_api::fake::{FakeNeonConfig, Fault};
use strata_neon_api::models::{BranchCreateRequest, NewBranch};
use strata_neon_api::{RateLimitPolicy, telemetry};

use crate::support::{start, start_with};

/// Counter sums and histogram samples by `name{label=value,...}` (labels sorted).
#[derive(Debug, Default, Clone)]
struct TestRecorder {
    counters: Arc<Mutex<BTreeMap<String, u64>>>,
    samples: Arc<Mutex<BTreeMap<String, Vec<f64>>>>,
}

#[derive(Debug)]
struct Handle(String, TestRecorder);

impl metrics::CounterFn for Handle {
    fn increment(&self, value: u64) {
        *self.1.counters.lock().unwrap().entry(self.0.clone()).or_default() += value;
    }

    fn absolute(&self, value: u64) {
        self.1.counters.lock().unwrap().insert(self.0.clone(), value);
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

    fn counter(&self, key: &str) -> u64 {
        self.counters.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    fn samples(&self, key: &str) -> usize {
        self.samples.lock().unwrap().get(key).map_or(0, Vec::len)
    }

    /// Every key recorded, counters and histograms.
    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.counters.lock().unwrap().keys().cloned().collect();
        keys.extend(self.samples.lock().unwrap().keys().cloned());
        keys
    }

    /// Runs `test` on a current-thread runtime with this recorder installed
    /// on the thread, so every metric the client records lands here.
    fn run<F: std::future::Future<Output = ()>>(&self, test: impl FnOnce() -> F) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        metrics::with_local_recorder(self, || runtime.block_on(test()));
    }
}

impl metrics::Recorder for TestRecorder {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.handle(key))
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::from_arc(self.handle(key))
    }
}

fn requests(method: &str, endpoint: &str, status: &str) -> String {
    format!("{}{{endpoint={endpoint},method={method},status={status}}}", telemetry::REQUESTS_TOTAL)
}

fn seconds(method: &str, endpoint: &str) -> String {
    format!("{}{{endpoint={endpoint},method={method}}}", telemetry::REQUEST_SECONDS)
}

fn retries(reason: &str) -> String {
    format!("{}{{reason={reason}}}", telemetry::RETRIES_TOTAL)
}

const BRANCHES: &str = "/projects/{project_id}/branches";
const PROJECT: &str = "/projects/{project_id}";

#[test]
fn requests_are_counted_by_route_template_and_status_and_retries_by_reason() {
    let recorder = TestRecorder::default();
    let mut project = String::new();
    recorder.run(|| async {
        let (fake, client) = start().await;
        let project_id = ProjectId::new(fake.seed_project("p"));
        project = project_id.as_str().to_owned();
        fake.inject(Fault::rate_limited("0").on("POST", "/branches"));
        fake.inject(Fault::status(423).on("POST", "/branches"));
        let request = BranchCreateRequest {
            branch: NewBranch { name: Some("b".into()), ..NewBranch::default() },
            endpoints: vec![],
        };
        client.create_branch(&project_id, &request).await.unwrap();
        fake.inject(Fault::status(500).on("GET", "/projects/"));
        fake.inject(Fault::unavailable("0").on("GET", "/projects/"));
        fake.inject(Fault::drop_connection().on("GET", "/projects/"));
        client.get_project(&project_id).await.unwrap();
        fake.inject(Fault::status(500).on("POST", "/branches"));
        assert!(client.create_branch(&project_id, &request).await.is_err(), "a POST is not repeated after a 500");
    });

    assert_eq!(recorder.counter(&requests("POST", BRANCHES, "429")), 1);
    assert_eq!(recorder.counter(&requests("POST", BRANCHES, "423")), 1);
    assert_eq!(recorder.counter(&requests("POST", BRANCHES, "201")), 1);
    assert_eq!(recorder.counter(&requests("POST", BRANCHES, "500")), 1);
    assert_eq!(recorder.samples(&seconds("POST", BRANCHES)), 4, "one sample per attempt");
    assert_eq!(recorder.counter(&requests("GET", PROJECT, "500")), 1);
    assert_eq!(recorder.counter(&requests("GET", PROJECT, "503")), 1);
    assert_eq!(recorder.counter(&requests("GET", PROJECT, "error")), 1, "no response");
    assert_eq!(recorder.counter(&requests("GET", PROJECT, "200")), 1);
    assert_eq!(recorder.samples(&seconds("GET", PROJECT)), 4);

    assert_eq!(recorder.counter(&retries("rate_limited")), 1);
    assert_eq!(recorder.counter(&retries("locked")), 1);
    assert_eq!(recorder.counter(&retries("server_error")), 1, "the GET's 500, not the POST's");
    assert_eq!(recorder.counter(&retries("unavailable")), 1);
    assert_eq!(recorder.counter(&retries("transport")), 1);

    let keys = recorder.keys();
    assert!(!project.is_empty());
    assert!(keys.iter().all(|key| !key.contains(&project)), "an id in a label: {keys:?}");
    assert!(
        keys.iter().filter(|key| key.starts_with(telemetry::REQUESTS_TOTAL)).all(|key| key.contains("{project_id}")),
        "{keys:?}"
    );
}

#[test]
fn waits_for_the_client_side_rate_limiter_are_recorded() {
    let recorder = TestRecorder::default();
    recorder.run(|| async {
        let (_fake, client) = start_with(FakeNeonConfig::default(), |mut config| {
            config.rate_limit = RateLimitPolicy {
                global_limit: 700,
                global_window: Duration::from_secs(60),
                route_limit: 2,
                route_window: Duration::from_millis(200),
            };
            config
        })
        .await;
        for _ in 0..3 {
            client.current_user().await.unwrap();
        }
    });
    assert_eq!(recorder.counter(&requests("GET", "/users/me", "200")), 3);
    assert_eq!(recorder.samples(&format!("{}{{}}", telemetry::RATE_LIMIT_WAIT_SECONDS)), 1, "the third waited");
}
