//! What operators see: `/metrics` after a workload (HELP, TYPE, histogram
//! buckets; `promtool check metrics` accepts it when installed), the
//! metrics-only server, and logs at trace level that never hold the token.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;

use reqwest::StatusCode;
use strata_core::MarketDataStore;
use strata_serve::{ApiToken, PROMETHEUS_CONTENT_TYPE, Server, Sources};

use crate::support::{Fault, Faulty, TOKEN, captured_logs, client, filled_store, prometheus, skip_or_fail, start};

#[tokio::test]
async fn metrics_after_a_workload_are_valid_prometheus_text() {
    let handle = prometheus();
    let store: Arc<dyn MarketDataStore> = filled_store().await;
    let server = start(Sources::new(store).with_metrics(handle.clone()), |_| {}).await;
    for path in ["/v1/bars?symbols=SYN000&limit=10", "/v1/bars?symbols=SYN000&format=arrow", "/v1/summary", "/health"] {
        assert_eq!(server.get(path, None).await.status(), StatusCode::OK);
    }
    assert_eq!(server.get("/v1/bars?symbols=bad/symbol", None).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(server.get("/no/such/path/12345", None).await.status(), StatusCode::NOT_FOUND);
    let broken =
        start(Sources::new(Arc::new(Faulty { inner: filled_store().await, fault: Fault::StreamBreaks })), |_| {}).await;
    assert!(broken.get("/v1/bars?symbols=SYN000", None).await.bytes().await.is_err());

    let response = server.get("/metrics", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[reqwest::header::CONTENT_TYPE], PROMETHEUS_CONTENT_TYPE);
    let text = response.text().await.unwrap();
    for line in [
        "# HELP strata_http_requests_total ",
        "# TYPE strata_http_requests_total counter",
        "# TYPE strata_http_request_seconds histogram",
        "strata_http_request_seconds_bucket{route=\"/v1/bars\",le=\"0.0005\"}",
        "strata_http_request_seconds_bucket{route=\"/v1/bars\",le=\"+Inf\"}",
        "strata_http_requests_total{route=\"/v1/bars\",status=\"400\"}",
        "strata_http_requests_total{route=\"unmatched\",status=\"404\"}",
        "strata_http_responses_aborted_total{route=\"/v1/bars\"}",
        "strata_build_info{version=\"0.0.0-test\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains("12345"), "raw paths never become labels");
    promtool_accepts(&text);
}

/// Runs `promtool check metrics` on `text` when promtool is installed.
fn promtool_accepts(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            skip_or_fail(&format!("promtool is not available ({error}); install Debian's `prometheus` package"));
            return;
        }
    };
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("promtool reads stdin");
    let output = child.wait_with_output().expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool check metrics refused the exposition:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_metrics_only_server_serves_metrics_and_liveness() {
    let handle = prometheus();
    // HELP text too: the other test runs promtool, which requires it, on the same recorder.
    metrics::describe_counter!("strata_test_events_total", "Events counted by the metrics-only server test.");
    metrics::counter!("strata_test_events_total").increment(3);
    let server = Server::bind_metrics_only("127.0.0.1:0".parse().unwrap(), handle).await.unwrap();
    let address = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let http = client();
    let metrics = http.get(format!("http://{address}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics.text().await.unwrap().contains("strata_test_events_total 3"));
    let health = http.get(format!("http://{address}/health")).send().await.unwrap();
    assert_eq!((health.status(), health.text().await.unwrap()), (StatusCode::OK, "ok\n".to_string()));
    let bars = http.get(format!("http://{address}/v1/bars?symbols=A")).send().await.unwrap();
    assert_eq!(bars.status(), StatusCode::NOT_FOUND);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_token_never_reaches_the_logs_at_trace_level() {
    let store: Arc<dyn MarketDataStore> = filled_store().await;
    let server = start(Sources::new(store), |config| config.token = Some(ApiToken::new(TOKEN).unwrap())).await;
    let wrong = format!("{TOKEN}-wrong");
    for (path, token) in [("/v1/summary", TOKEN), ("/health", TOKEN), ("/v1/summary", wrong.as_str())] {
        let _ = server.client.get(server.url(path)).bearer_auth(token).send().await.unwrap().bytes().await;
    }
    let _ = server.client.get(server.url("/v1/bars?symbols=SYN000&limit=2")).bearer_auth(TOKEN).send().await;
    // The records are written when the bodies end; give the server a moment.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = captured_logs();
    assert!(logs.contains("answered"), "the requests were logged at all:\n{logs}");
    assert!(logs.contains("status=401"), "the refusal was logged:\n{logs}");
    assert!(!logs.contains(TOKEN), "the token is in the logs");
    assert!(!logs.to_ascii_lowercase().contains("authorization: bearer"), "a header is in the logs");
}
