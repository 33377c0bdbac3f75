//! The read API against a real server: every format returns what
//! `query_bars` returns, bad parameters get the CLI's messages, summary,
//! digest, health, errors by kind, and the bearer token.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use strata_core::{BarQuery, HealthReport, HealthStatus, MarketDataStore, Order};
use strata_formats::write::CsvWriter;
use strata_serve::{ApiToken, MetricsSource, ServeConfig, ServeError, Server, Sources};

use crate::support::{
    Fault, Faulty, Running, TOKEN, assert_same, check_json, expected, filled_store, from_arrow, from_csv, start, window,
};

async fn memory_server() -> (Arc<dyn MarketDataStore>, Running) {
    let store: Arc<dyn MarketDataStore> = filled_store().await;
    let running = start(Sources::new(store.clone()), |_| {}).await;
    (store, running)
}

async fn body(response: reqwest::Response) -> Vec<u8> {
    response.bytes().await.expect("a complete body").to_vec()
}

#[tokio::test]
async fn every_format_returns_the_rows_of_query_bars() {
    let (store, server) = memory_server().await;
    let spec = strata_core::synthetic::SyntheticSpec::minutes(3, 10, 42);
    // Absent vwap and trade_count (most vendor files), a symbol with a caret.
    let index: Vec<strata_core::Bar> = spec
        .bars()
        .into_iter()
        .enumerate()
        .map(|(number, bar)| strata_core::Bar {
            symbol: "^GSPC".into(),
            timestamp: spec.start.plus_micros(number as i64 * 60_000_000),
            vwap: None,
            trade_count: if number % 2 == 0 { None } else { bar.trade_count },
            ..bar
        })
        .collect();
    store.write_bars(strata_core::BarBatch::from_bars(&index)).await.unwrap();
    let cases: Vec<(String, BarQuery)> = vec![
        // Two symbols, every row.
        (
            "symbols=SYN000,SYN002".into(),
            BarQuery { symbols: vec!["SYN000".parse().unwrap(), "SYN002".parse().unwrap()], ..BarQuery::default() },
        ),
        // Repeated parameters, a window, latest first with a limit.
        (
            format!("symbol=SYN001&symbols=SYN000&start={}&end=2020-01-05&order=desc&limit=777", spec.start),
            BarQuery {
                symbols: vec!["SYN001".parse().unwrap(), "SYN000".parse().unwrap()],
                start: Some(spec.start),
                end: Some("2020-01-05".parse().unwrap()),
                limit: Some(777),
                order: Order::Descending,
            },
        ),
        window(1, 100, 5_100),
        ("symbols=%5EGSPC".into(), BarQuery { symbols: vec!["^GSPC".parse().unwrap()], ..BarQuery::default() }),
        // Nothing matches.
        window(2, 100, 100),
    ];
    for (query_string, query) in cases {
        let want = expected(store.as_ref(), query.clone()).await;
        let batches = strata_core::MarketDataStoreExt::collect_batches(store.as_ref(), query).await.unwrap();

        let arrow = server.get(&format!("/v1/bars?{query_string}"), Some("application/vnd.apache.arrow.stream")).await;
        assert_eq!(arrow.status(), StatusCode::OK);
        assert_eq!(arrow.headers()[CONTENT_TYPE], "application/vnd.apache.arrow.stream");
        assert_same(&from_arrow(&body(arrow).await), &want, &format!("arrow, {query_string}"));

        let csv = server.get(&format!("/v1/bars?{query_string}"), Some("text/csv")).await;
        assert!(csv.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
        let csv = body(csv).await;
        let mut writer = CsvWriter::new(Vec::new()).unwrap();
        batches.iter().for_each(|batch| writer.write(batch).unwrap());
        assert!(csv == writer.finish().unwrap(), "CSV is `strata query --format csv`'s text, {query_string}");
        assert_same(&from_csv(&csv), &want, &format!("csv, {query_string}"));

        let lines = body(server.get(&format!("/v1/bars?{query_string}"), Some("application/x-ndjson")).await).await;
        check_json(&lines, &want, false, &format!("ndjson, {query_string}"));

        for accept in [None, Some("application/json"), Some("*/*")] {
            let response = server.get(&format!("/v1/bars?{query_string}"), accept).await;
            assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
            check_json(&body(response).await, &want, true, &format!("json ({accept:?}), {query_string}"));
        }

        // format= overrides Accept.
        let overridden = server.get(&format!("/v1/bars?{query_string}&format=arrow"), Some("text/csv")).await;
        assert_same(&from_arrow(&body(overridden).await), &want, "format=arrow");
        let csv_param = server.get(&format!("/v1/bars?{query_string}&format=csv"), None).await;
        assert_same(&from_csv(&body(csv_param).await), &want, "format=csv");
    }
}

#[tokio::test]
async fn an_unsupported_accept_is_406_listing_the_supported_types() {
    let (_, server) = memory_server().await;
    let response = server.get("/v1/bars?symbols=SYN000", Some("text/html")).await;
    assert_eq!(response.status(), StatusCode::NOT_ACCEPTABLE);
    let error: Value = response.json().await.unwrap();
    let message = error["error"].as_str().unwrap();
    for media in ["application/json", "application/x-ndjson", "text/csv", "application/vnd.apache.arrow.stream"] {
        assert!(message.contains(media), "{message}");
    }
}

/// Query strings that are wrong, huge or hostile, with the start of the
/// message each gets; the server answers a good query after each.
#[tokio::test]
async fn bad_parameters_get_400_with_the_cli_message_and_the_server_keeps_serving() {
    let (_, server) = memory_server().await;
    let many_symbols = |count: usize| (0..count).map(|i| format!("S{i}")).collect::<Vec<_>>().join(",");
    let cases: Vec<(String, String)> = vec![
        ("".into(), "the following required parameter was not provided: symbols".into()),
        ("start=2020-01-01".into(), "the following required parameter was not provided: symbols".into()),
        (
            "symbols=AA%2FPL".into(),
            "invalid value 'AA/PL' for 'symbols': invalid input: symbol \"AA/PL\" contains '/'".into(),
        ),
        ("symbols=SYN000,,SYN001".into(), "invalid value '' for 'symbols': invalid input: symbol is empty".into()),
        (
            "symbols=SYN000&start=garbage".into(),
            "invalid value 'garbage' for 'start': invalid input: \"garbage\" is not a timestamp; use RFC 3339 \
             (2020-01-02T15:04:05Z) or a date (2020-01-02)"
                .into(),
        ),
        (
            "symbols=SYN000&start=2020-01-03&end=2020-01-02".into(),
            "start 2020-01-03T00:00:00Z is after end 2020-01-02T00:00:00Z; the window is [start, end)".into(),
        ),
        ("symbols=SYN000&limit=-1".into(), "invalid value '-1' for 'limit': invalid digit found in string".into()),
        (
            "symbols=SYN000&limit=99999999999999999999999999".into(),
            "invalid value '99999999999999999999999999' for 'limit': number too large to fit in target type".into(),
        ),
        ("symbols=SYN000&limit=".into(), "invalid value '' for 'limit': cannot parse integer from empty string".into()),
        (
            "symbols=SYN000&order=sideways".into(),
            "invalid value 'sideways' for 'order' [possible values: asc, desc]".into(),
        ),
        ("symbols=SYN000&format=xml".into(), "invalid value 'xml' for 'format'".into()),
        (
            "symbols=SYN000&start=2020-01-01&start=2020-01-02".into(),
            "the parameter 'start' cannot be given more than once".into(),
        ),
        ("symbols=SYN000&order=asc&order=asc".into(), "the parameter 'order' cannot be given more than once".into()),
        ("symbols=SYN000&synbols=SYN001".into(), "unexpected parameter 'synbols'; /v1/bars takes".into()),
        ("symbols=SYN000&=x".into(), "unexpected parameter ''".into()),
        // Percent-encoding garbage: invalid UTF-8, NUL, a lone %, a right-to-left override.
        ("symbols=%FF%FE".into(), "invalid value '\u{fffd}\u{fffd}' for 'symbols'".into()),
        ("symbols=%00".into(), "invalid value '\u{0}' for 'symbols'".into()),
        ("symbols=%".into(), "invalid value '%' for 'symbols'".into()),
        ("symbols=SYN000&start=%E2%80%AE2020-01-01".into(), "invalid value '\u{202e}2020-01-01' for 'start'".into()),
        (
            "symbols=SYN000&start=2020-01-01%27%3B%20DROP%20TABLE%20bars".into(),
            "invalid value '2020-01-01'; DROP".into(),
        ),
        (format!("symbols={}", "A".repeat(33)), "invalid value 'AAAA".into()),
        // 1,001 symbols fit in the query-string limit but not in the symbol limit.
        (format!("symbols={}", many_symbols(1_001)), "too many symbols: at most 1000 per request".into()),
        // 5,000 symbols (and any query over 8 KiB) are refused by size first.
        (format!("symbols={}", many_symbols(5_000)), "the query string is".into()),
        (
            format!("symbols=SYN000&start={}", "9".repeat(10_000)),
            "the query string is 10021 bytes long; at most 8192".into(),
        ),
    ];
    for (query, message) in &cases {
        let response = server.get(&format!("/v1/bars?{query}"), None).await;
        let shown: String = query.chars().take(80).collect();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{shown}");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let error: Value = response.json().await.unwrap();
        let text = error["error"].as_str().unwrap_or_default();
        assert!(text.starts_with(message.as_str()), "{shown}: got {text:?}, want {message:?}...");
        let good = server.get("/v1/bars?symbols=SYN000&limit=1", None).await;
        assert_eq!(good.status(), StatusCode::OK, "still serving after {shown}");
    }
    // 100k characters (no client library sends that; write the request by hand): beyond
    // what the HTTP parser takes for a request target (64 KiB), refused before any route.
    let status_line = raw_request(server.address, &format!("/v1/bars?symbols={}", "A".repeat(100_000))).await;
    assert!(status_line.starts_with("HTTP/1.1 414"), "URI Too Long from the HTTP parser: {status_line}");
    assert_eq!(server.get("/v1/bars?symbols=SYN000&limit=1", None).await.status(), StatusCode::OK);

    // Digest and summary check their parameters the same way.
    let digest = server.get("/v1/digest?symbols=SYN000&start=2020-02-01&end=2020-01-01", None).await;
    assert_eq!(digest.status(), StatusCode::BAD_REQUEST);
    let summary = server.get("/v1/summary?verbose=1", None).await;
    assert_eq!(summary.status(), StatusCode::BAD_REQUEST);
}

/// Sends `GET target` on a fresh connection and returns the status line of the answer.
async fn raw_request(address: std::net::SocketAddr, target: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn summary_and_digest_have_the_cli_shapes() {
    let (store, server) = memory_server().await;
    let summary: Value = server.get("/v1/summary", None).await.json().await.unwrap();
    assert_eq!(summary, strata_serve::summary_json(&store.summary().await.unwrap()));
    assert_eq!(summary["symbol_count"], json!(3));
    assert_eq!(summary["symbols"][0]["first"], json!("2020-01-01T00:00:00Z"));

    let query = strata_core::DigestQuery {
        symbols: vec!["SYN001".parse().unwrap()],
        start: Some("2020-01-02".parse().unwrap()),
        end: Some("2020-01-10".parse().unwrap()),
    };
    let want: Vec<Value> = store.digest(query).await.unwrap().iter().map(strata_serve::digest_json).collect();
    assert!(want.len() > 5);
    let got: Value =
        server.get("/v1/digest?symbols=SYN001&start=2020-01-02&end=2020-01-10", None).await.json().await.unwrap();
    assert_eq!(got, Value::Array(want));
    let all: Value = server.get("/v1/digest", None).await.json().await.unwrap();
    let every = store.digest(strata_core::DigestQuery::default()).await.unwrap();
    assert!(every.len() > 10, "two weeks of minutes per symbol");
    assert_eq!(all.as_array().unwrap().len(), every.len());
    let none: Value = server.get("/v1/digest?symbols=NOPE", None).await.json().await.unwrap();
    assert_eq!(none, json!([]));
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors() {
    let (_, server) = memory_server().await;
    let missing = server.get("/v2/bars", None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let error: Value = missing.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("/v1/bars"));
    let posted = server.client.post(server.url("/v1/bars")).body("x").send().await.unwrap();
    assert_eq!(posted.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(posted.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("read-only"));
    // No exporter configured.
    assert_eq!(server.get("/metrics", None).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn health_is_200_when_healthy_and_503_otherwise() {
    let (store, server) = memory_server().await;
    let response = server.get("/health", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert_eq!(document, strata_serve::health_json(&store.health().await.unwrap()));
    assert_eq!(document["ok"], json!(true));

    let inner = filled_store().await;
    let failing =
        start(Sources::new(Arc::new(Faulty { inner: inner.clone(), fault: Fault::HealthFails })), |_| {}).await;
    let response = failing.get("/health", None).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["ok"], json!(false));
    assert_eq!(document["status"], json!("down"));
    assert_eq!(document["backend"], json!("faulty(memory)"));
    assert!(document["error"].as_str().unwrap().contains("the server is on fire"), "{document}");

    let hanging = Sources::new(Arc::new(Faulty { inner: inner.clone(), fault: Fault::HealthHangs }));
    let slow = start(hanging, |config| config.health_timeout = Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let response = slow.get("/health", None).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(5));
    let document: Value = response.json().await.unwrap();
    assert!(document["error"].as_str().unwrap().contains("timed out after 0.2 s"), "{document}");

    let degraded = Sources::new(inner).with_health_check(|| async {
        Ok::<_, std::convert::Infallible>(
            HealthReport::new("hybrid(neon, duckdb)", HealthStatus::Degraded).with_detail("queue_depth", "3"),
        )
    });
    let degraded = start(degraded, |_| {}).await;
    let response = degraded.get("/health", None).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let document: Value = response.json().await.unwrap();
    assert_eq!((document["status"].clone(), document["details"]["queue_depth"].clone()), (json!("degraded"), json!(3)));
}

#[tokio::test]
async fn store_errors_map_to_statuses_with_the_store_message() {
    let inner = filled_store().await;
    let server = start(Sources::new(Arc::new(Faulty { inner, fault: Fault::QueryFails })), |_| {}).await;
    let response = server.get("/v1/bars?symbols=SYN000", Some("text/csv")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error, json!({"error": "faulty unavailable: the disk is unplugged", "kind": "unavailable"}));
}

#[tokio::test]
async fn a_token_is_required_on_every_route_when_configured() {
    let store: Arc<dyn MarketDataStore> = filled_store().await;
    let sources = Sources::new(store).with_metrics(MetricsSource::new(|| "# no metrics yet\n".into()));
    let server = start(sources, |config| config.token = Some(ApiToken::new(TOKEN).unwrap())).await;
    for path in ["/v1/bars?symbols=SYN000&limit=3", "/v1/summary", "/v1/digest?symbols=SYN000", "/health", "/metrics"] {
        let without = server.get(path, None).await;
        assert_eq!(without.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(without.headers()[WWW_AUTHENTICATE].to_str().unwrap().starts_with("Bearer"), "{path}");
        for wrong in [format!("Bearer {TOKEN}x"), "Bearer ".into(), format!("Basic {TOKEN}"), TOKEN.into()] {
            let response = server.client.get(server.url(path)).header("authorization", wrong.as_str()).send().await;
            assert_eq!(response.unwrap().status(), StatusCode::UNAUTHORIZED, "{path} with {wrong:?}");
        }
        let with = server.client.get(server.url(path)).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(with.status(), StatusCode::OK, "{path}");
        let lowercase = server.client.get(server.url(path)).header("authorization", format!("bearer {TOKEN}"));
        assert_eq!(lowercase.send().await.unwrap().status(), StatusCode::OK, "{path}");
    }
    let unknown = server.get("/anything", None).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED, "unknown paths are not revealed without the token");
}

#[tokio::test]
async fn a_non_loopback_address_without_a_token_is_refused() {
    let store: Arc<dyn MarketDataStore> = filled_store().await;
    let config = ServeConfig::new("0.0.0.0:0".parse().unwrap());
    let error = Server::bind(config, Sources::new(store)).await.unwrap_err();
    assert!(matches!(error, ServeError::Config(_)), "{error:?}");
    assert!(error.to_string().contains("STRATA_API_TOKEN"), "{error}");
}

#[tokio::test]
async fn shutdown_returns_and_stops_listening() {
    let (_, server) = memory_server().await;
    let address = server.address;
    assert_eq!(server.get("/health", None).await.status(), StatusCode::OK);
    server.stop().await.unwrap();
    assert!(tokio::net::TcpStream::connect(address).await.is_err(), "nothing listens after shutdown");
}

/// Retry-After is only on the 503 of a full server (see the load tests); a
/// store's 503 says what the store said.
#[tokio::test]
async fn a_store_503_has_no_retry_after() {
    let inner = filled_store().await;
    let server = start(Sources::new(Arc::new(Faulty { inner, fault: Fault::QueryFails })), |_| {}).await;
    let response = server.get("/v1/bars?symbols=SYN000", None).await;
    assert!(response.headers().get(RETRY_AFTER).is_none());
}
