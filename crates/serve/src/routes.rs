//! The routes: `/metrics`, `/health`, `/v1/bars`, `/v1/summary`,
//! `/v1/digest`, the runs pages (`/`, `/runs.json`, `/runs/{run}`), and JSON
//! answers for unknown paths and methods.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt as _;
use serde_json::json;
use strata_core::MarketDataStore;
use strata_core::evolution::RunId;

use crate::error::{ApiError, json_response};
use crate::format::{self, BarFormat, Encoder};
use crate::gate::{self, Gate};
use crate::json::{digest_json, health_json, summary_json};
use crate::sources::{MetricsSource, RunsSource, Sources};
use crate::{Limits, params};

/// The `Content-Type` of the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Digests per chunk of a `/v1/digest` body.
const DIGESTS_PER_CHUNK: usize = 4_096;

/// What the handlers share.
struct App {
    store: Arc<dyn MarketDataStore>,
    sources: Sources,
    limits: Limits,
    health_timeout: Duration,
}

/// The full API over `sources`, behind `gate`.
pub(crate) fn api(sources: Sources, gate: Gate, limits: Limits, health_timeout: Duration) -> Router {
    let app = Arc::new(App { store: sources.store.clone(), sources, limits, health_timeout });
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/v1/bars", get(bars))
        .route("/v1/summary", get(summary))
        .route("/v1/digest", get(digest))
        .route("/", get(index))
        .route("/runs.json", get(runs_json))
        .route("/runs/{run}", get(run_report))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
        .layer(axum::middleware::from_fn_with_state(Arc::new(gate), gate::gate))
}

/// `/metrics` and a `/health` that answers `ok` while the process runs.
pub(crate) fn metrics_only(metrics: MetricsSource) -> Router {
    let metrics = Arc::new(metrics);
    Router::new()
        .route("/metrics", get(|State(metrics): State<Arc<MetricsSource>>| async move { exposition(&metrics) }))
        .route("/health", get(|| async { ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok\n") }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(metrics)
        .layer(axum::middleware::from_fn_with_state(Arc::new(Gate::open()), gate::gate))
}

/// `GET /metrics`: the exposition, or 404 when the server has no metrics.
async fn metrics(State(app): State<Arc<App>>) -> Response {
    match &app.sources.metrics {
        Some(metrics) => exposition(metrics),
        None => {
            ApiError::new(StatusCode::NOT_FOUND, "this server was started without a metrics exporter").into_response()
        }
    }
}

fn exposition(metrics: &MetricsSource) -> Response {
    ([(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], metrics.render()).into_response()
}

/// `GET /health`: the report (200 when `ok`, else 503), or 503 with
/// `{"backend", "ok": false, "status": "down", "error"}` when the check
/// fails or outlives the timeout.
async fn health(State(app): State<Arc<App>>, uri: Uri) -> Result<Response, ApiError> {
    params::none(&pairs(&uri)?, "/health")?;
    let outcome = match tokio::time::timeout(app.health_timeout, app.sources.health.check()).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!(
            "health check timed out after {} s: the store did not answer in time",
            app.health_timeout.as_secs_f64()
        )),
    };
    Ok(match outcome {
        Ok(report) => {
            let status = if report.ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            json_response(status, &health_json(&report))
        }
        Err(error) => {
            tracing::warn!("health check failed: {error}");
            let document = json!({
                "backend": app.store.to_string(),
                "status": "down",
                "ok": false,
                "error": error,
            });
            json_response(StatusCode::SERVICE_UNAVAILABLE, &document)
        }
    })
}

/// `GET /v1/bars`: see the crate documentation.
async fn bars(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Result<Response, ApiError> {
    let request = params::bars(&pairs(&uri)?, &app.limits)?;
    let format = match request.format {
        Some(format) => format,
        None => BarFormat::negotiate(headers.get(header::ACCEPT)).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                format!(
                    "cannot answer with any type in Accept; supported: {} (or ?format={})",
                    BarFormat::supported(),
                    BarFormat::ALL.map(format_param).join("|")
                ),
            )
        })?,
    };
    let encoder = Encoder::new(format).map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error))?;
    let mut batches = app.store.query_bars(request.query);
    // The first rows (or the first error) before the status: an error
    // there is a proper status, not a cut-off body.
    let first = format::first_rows(&mut batches).await?;
    let mut response = Body::from_stream(format::body(encoder, first, batches)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
    Ok(response)
}

fn format_param(format: BarFormat) -> &'static str {
    match format {
        BarFormat::Arrow => "arrow",
        BarFormat::Csv => "csv",
        BarFormat::NdJson => "ndjson",
        BarFormat::Json => "json",
    }
}

/// `GET /v1/summary`: `strata summary --json`'s document.
async fn summary(State(app): State<Arc<App>>, uri: Uri) -> Result<Response, ApiError> {
    params::none(&pairs(&uri)?, "/v1/summary")?;
    let summary = app.store.summary().await?;
    Ok(json_response(StatusCode::OK, &summary_json(&summary)))
}

/// `GET /v1/digest`: a JSON array of `strata digest --json`'s objects,
/// ordered by (symbol, day), written in chunks.
async fn digest(State(app): State<Arc<App>>, uri: Uri) -> Result<Response, ApiError> {
    let query = params::digest(&pairs(&uri)?, &app.limits)?;
    let digests = Arc::new(app.store.digest(query).await?);
    let count = digests.len();
    let chunks = (0..count.div_ceil(DIGESTS_PER_CHUNK).max(1)).map(move |chunk| {
        let from = chunk * DIGESTS_PER_CHUNK;
        let mut text = String::from(if chunk == 0 { "[" } else { "," });
        for (index, digest) in digests.iter().enumerate().skip(from).take(DIGESTS_PER_CHUNK) {
            if index > from {
                text.push(',');
            }
            text.push('\n');
            text.push_str(&digest_json(digest).to_string());
        }
        if from + DIGESTS_PER_CHUNK >= count {
            text.push_str(if count == 0 { "]\n" } else { "\n]\n" });
        }
        Ok::<_, std::convert::Infallible>(text)
    });
    let mut response = Body::from_stream(futures::stream::iter(chunks).boxed()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// The runs source, or 404 when the server was started without one.
fn runs_source(app: &App) -> Result<&RunsSource, ApiError> {
    app.sources.runs.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "this server was started without an evolution store: no runs to show")
    })
}

fn html_response(html: String) -> Response {
    let mut response = html.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /`: the runs index (status and progress, redrawn from `/runs.json`
/// every second) and the coverage of each stored symbol.
async fn index(State(app): State<Arc<App>>, uri: Uri) -> Result<Response, ApiError> {
    params::none(&pairs(&uri)?, "/")?;
    let runs = runs_source(&app)?;
    let rows = strata_report::read_runs(runs.evolution.as_ref()).await?;
    let summary = app.store.summary().await.map_err(|error| error.to_string());
    Ok(html_response(strata_report::render_index(
        &rows,
        summary.as_ref().map_err(Clone::clone),
        &app.store.to_string(),
    )))
}

/// `GET /runs.json`: every run's status and progress ([`strata_report::runs_json`]).
async fn runs_json(State(app): State<Arc<App>>, uri: Uri) -> Result<Response, ApiError> {
    params::none(&pairs(&uri)?, "/runs.json")?;
    let runs = runs_source(&app)?;
    let rows = strata_report::read_runs(runs.evolution.as_ref()).await?;
    let mut response = json_response(StatusCode::OK, &strata_report::runs_json(&rows));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `GET /runs/{run}`: the run's report, as `strata report` writes it, with
/// its progress kept current while it is active.
async fn run_report(State(app): State<Arc<App>>, Path(run): Path<String>, uri: Uri) -> Result<Response, ApiError> {
    params::none(&pairs(&uri)?, "/runs/{run}")?;
    let runs = runs_source(&app)?;
    let run = RunId::new(run).map_err(|error| ApiError::bad_request(error.to_string()))?;
    let report = strata_report::build_report(
        runs.evolution.as_ref(),
        app.store.as_ref(),
        &runs.registry,
        &run,
        strata_report::ReportOptions::default(),
    )
    .await
    .map_err(|error| match error {
        strata_report::GaError::Store(store) => ApiError::from(store),
        other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    })?;
    let options =
        strata_report::RenderOptions { live_url: Some("../runs.json".to_string()), index_url: Some("../".to_string()) };
    Ok(html_response(strata_report::render_report(&report, &options)))
}

/// Unknown path: 404 with the routes there are.
async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route for {method} {}; routes: GET /, /runs.json, /runs/RUN, /v1/bars, /v1/summary, /v1/digest, /health, /metrics",
            uri.path()
        ),
    )
}

/// Known path, other method: 405 (every route is `GET`, and `HEAD`).
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} {}: this API is read-only; use GET", uri.path()))
        .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"))
}

/// The query string's `key=value` pairs, percent-decoded (invalid UTF-8 is
/// replaced, so a core parser refuses it with its own message).
fn pairs(uri: &Uri) -> Result<Vec<(String, String)>, ApiError> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .map_err(|rejection| ApiError::bad_request(format!("the query string is not valid: {}", rejection.body_text())))
}
