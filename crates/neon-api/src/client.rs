//! The HTTP client: one request path with rate limiting, retries, timeouts and
//! error decoding, and one typed method per API operation.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use strata_core::Secret;
use strata_core::policy::{Backoff, Idempotency};
use tokio::time::Instant;
use url::Url;

use crate::config::{NeonApiConfig, RetryPolicy};
use crate::error::{NeonError, Result};
use crate::ids::{ApiKeyId, BranchId, EndpointId, OperationId, ProjectId};
use crate::models::*;
use crate::rate_limit::RateLimiter;
use crate::telemetry::{self, RetryReason};

/// The request id header the API sets on every response.
pub const REQUEST_ID_HEADER: &str = "x-neon-ret-request-id";

/// A typed, resilient client of the Neon management API v2. Cheap to clone.
///
/// Every call waits for the client-side rate limiter, retries what is safe to
/// retry (see [`RetryPolicy`]) and gives up at the overall deadline of
/// [`NeonApiConfig::deadline`]. Mutations return the operations they started;
/// [`NeonClient::wait_for_operations`] waits for them.
#[derive(Debug, Clone)]
pub struct NeonClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base_url: Url,
    authorization: HeaderValue,
    config: NeonApiConfig,
    limiter: RateLimiter,
}

/// One API call: method, route template (for logs, errors and rate limits), path segments, query and body.
#[derive(Debug)]
struct Call {
    method: Method,
    method_name: &'static str,
    route: &'static str,
    segments: Vec<String>,
    query: Vec<(&'static str, String)>,
    body: Option<serde_json::Value>,
    idempotency: Idempotency,
}

impl Call {
    fn new(method: Method, route: &'static str, segments: &[&str]) -> Self {
        let (method_name, idempotency) = match method.as_str() {
            "GET" => ("GET", Idempotency::Safe),
            "HEAD" => ("HEAD", Idempotency::Safe),
            "POST" => ("POST", Idempotency::NotIdempotent),
            // An update may rename, and a repeated rename fails: only fixed-value updates opt in.
            "PATCH" => ("PATCH", Idempotency::NotIdempotent),
            "PUT" => ("PUT", Idempotency::Idempotent),
            "DELETE" => ("DELETE", Idempotency::Idempotent),
            _ => ("OTHER", Idempotency::NotIdempotent),
        };
        Call {
            method,
            method_name,
            route,
            segments: segments.iter().map(|segment| (*segment).to_owned()).collect(),
            query: Vec::new(),
            body: None,
            idempotency,
        }
    }

    fn get(route: &'static str, segments: &[&str]) -> Self {
        Call::new(Method::GET, route, segments)
    }

    fn post(route: &'static str, segments: &[&str]) -> Self {
        Call::new(Method::POST, route, segments)
    }

    fn patch(route: &'static str, segments: &[&str]) -> Self {
        Call::new(Method::PATCH, route, segments)
    }

    fn delete(route: &'static str, segments: &[&str]) -> Self {
        Call::new(Method::DELETE, route, segments)
    }

    fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    fn query_opt(self, name: &'static str, value: Option<impl ToString>) -> Self {
        match value {
            Some(value) => self.query(name, value),
            None => self,
        }
    }

    fn body(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Marks a POST or PATCH as harmless to repeat.
    fn idempotent(mut self) -> Self {
        self.idempotency = Idempotency::Idempotent;
        self
    }
}

fn to_json(value: &impl Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|error| NeonError::InvalidArgument(format!("request body: {error}")))
}

/// The `Retry-After` header as a delay: seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Capped exponential backoff with jitter: between half and all of
/// `min(max, base * 2^(attempt-1))` (the one policy in `strata_core::policy`;
/// the overall deadline is checked by the caller).
pub(crate) fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    Backoff::new(policy.base_delay, policy.max_delay, Duration::MAX).delay(attempt)
}

/// What replaces the API key in text a server sent back.
const KEY_MASK: &str = "***";

/// `text` with every occurrence of `api_key` replaced by [`KEY_MASK`].
fn without_key(text: &str, api_key: &str) -> String {
    if api_key.is_empty() { text.to_owned() } else { text.replace(api_key, KEY_MASK) }
}

/// Summarises an error body: the API's JSON `{code, message, request_id}`, or the
/// text of a non-JSON body (an HTML page from a proxy) without its tags.
///
/// `api_key` is masked in the body first and in what is taken from it: a server
/// or proxy that quotes the request back (its `Authorization` header, or "the API
/// key ... is not valid") must not put the key into an error message.
fn decode_error_body(status: StatusCode, body: &[u8], api_key: &str) -> (String, String, Option<String>) {
    let text = without_key(&String::from_utf8_lossy(body), api_key);
    if let Ok(serde_json::Value::Object(object)) = serde_json::from_str::<serde_json::Value>(&text) {
        let field =
            |name: &str| object.get(name).and_then(|value| value.as_str()).map(|value| without_key(value, api_key));
        let code = field("code").unwrap_or_default();
        let message = field("message");
        let request_id = field("request_id");
        if let Some(message) = message {
            return (code, message, request_id);
        }
    }
    let mut plain = String::new();
    let mut in_tag = false;
    for character in text.chars() {
        match character {
            '<' => {
                in_tag = true;
                plain.push(' ');
            }
            '>' => in_tag = false,
            other if !in_tag => plain.push(other),
            _ => {}
        }
    }
    let collapsed = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    let reason = status.canonical_reason().unwrap_or("error");
    let message = if collapsed.is_empty() {
        format!("{reason} (empty response body)")
    } else {
        let short: String = collapsed.chars().take(200).collect();
        format!("{reason} (non-JSON response body: {short})")
    };
    (String::new(), message, None)
}

/// A page of a list: its items and the cursor of the next page, if any.
type Page<T> = (Vec<T>, Option<String>);

/// Turns a page fetcher into a stream of items that stops on an empty page, a
/// missing cursor, or a cursor equal to the previous one.
fn paginate<T, F, Fut>(fetch: F) -> BoxStream<'static, Result<T>>
where
    T: Send + 'static,
    F: Fn(Option<String>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Page<T>>> + Send + 'static,
{
    let fetch = Arc::new(fetch);
    stream::try_unfold((None::<String>, false), move |(cursor, done)| {
        let fetch = Arc::clone(&fetch);
        async move {
            if done {
                return Ok(None);
            }
            let (items, next) = fetch(cursor.clone()).await?;
            let next = next.filter(|next| !next.is_empty() && Some(next) != cursor.as_ref());
            let finished = items.is_empty() || next.is_none();
            Ok(Some((items, (next, finished))))
        }
    })
    .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
    .try_flatten()
    .boxed()
}

impl NeonClient {
    /// Builds a client. Fails on a malformed base URL or an API key that is not a valid header value.
    pub fn new(config: NeonApiConfig) -> Result<Self> {
        let base = config.base_url.trim_end_matches('/');
        let base_url = Url::parse(base)
            .map_err(|error| NeonError::Config(format!("base URL {base:?} is not a valid URL: {error}")))?;
        if base_url.cannot_be_a_base() {
            return Err(NeonError::Config(format!("base URL {base:?} cannot have paths appended")));
        }
        if config.api_key.expose().trim().is_empty() {
            return Err(NeonError::Config("the API key is empty (set NEON_API_KEY)".into()));
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", config.api_key.expose()))
            .map_err(|_| NeonError::Config("the API key contains characters not allowed in an HTTP header".into()))?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(config.request_timeout)
            .build()
            .map_err(|error| NeonError::Config(format!("cannot build the HTTP client: {error}")))?;
        let limiter = RateLimiter::new(config.rate_limit);
        Ok(NeonClient { inner: Arc::new(Inner { http, base_url, authorization, config, limiter }) })
    }

    /// Builds a client for `api_key` at `base_url` with production defaults.
    pub fn with_key(base_url: impl Into<String>, api_key: Secret) -> Result<Self> {
        NeonClient::new(NeonApiConfig::new(api_key).with_base_url(base_url))
    }

    /// The configuration in use.
    pub fn config(&self) -> &NeonApiConfig {
        &self.inner.config
    }

    fn url(&self, segments: &[String]) -> Url {
        let mut url = self.inner.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends a call with rate limiting, retries and the deadline; returns the body of a success (empty for 204).
    async fn send(&self, call: &Call) -> Result<Vec<u8>> {
        let config = &self.inner.config;
        let started = Instant::now();
        let deadline = started + config.deadline;
        let url = self.url(&call.segments);
        let limiter_key = format!("{} {}", call.method_name, call.route);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            self.inner.limiter.acquire(&limiter_key).await;
            let now = Instant::now();
            if now >= deadline {
                return Err(NeonError::Timeout {
                    method: call.method_name,
                    route: call.route,
                    elapsed: started.elapsed(),
                    attempts: attempt - 1,
                });
            }
            let attempt_timeout = config.request_timeout.min(deadline - now);
            let mut request = self
                .inner
                .http
                .request(call.method.clone(), url.clone())
                .header(AUTHORIZATION, self.inner.authorization.clone())
                .header(reqwest::header::ACCEPT, "application/json")
                .timeout(attempt_timeout);
            if !call.query.is_empty() {
                request = request.query(&call.query);
            }
            if let Some(body) = &call.body {
                request = request.json(body);
            }
            let attempt_started = Instant::now();
            let outcome = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Ok(body) => Ok((status, headers, body.to_vec())),
                        Err(error) => Err(error),
                    }
                }
                Err(error) => Err(error),
            };
            let status = outcome.as_ref().ok().map(|(status, _, _)| status.as_u16());
            telemetry::request(call.method_name, call.route, status, attempt_started.elapsed());
            let (error, retryable, retry_after, reason) = match outcome {
                Ok((status, headers, body)) => {
                    let api_key = config.api_key.expose();
                    let request_id = header_text(&headers, REQUEST_ID_HEADER).map(|id| without_key(&id, api_key));
                    tracing::debug!(
                        method = call.method_name,
                        route = call.route,
                        status = status.as_u16(),
                        attempt,
                        request_id = request_id.as_deref().unwrap_or(""),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "neon api response"
                    );
                    if status.is_success() {
                        return Ok(body);
                    }
                    let (code, message, body_request_id) = decode_error_body(status, &body, api_key);
                    let retry_after = header_text(&headers, RETRY_AFTER.as_str())
                        .and_then(|value| parse_retry_after(&value, std::time::SystemTime::now()));
                    let retryable = match status.as_u16() {
                        423 | 429 | 503 => true,
                        500..=599 => call.idempotency.may_repeat(),
                        _ => false,
                    };
                    let error = NeonError::Api {
                        status: status.as_u16(),
                        code,
                        message,
                        request_id: request_id.or(body_request_id),
                        method: call.method_name,
                        route: call.route,
                        attempts: attempt,
                    };
                    (error, retryable, retry_after, RetryReason::of_status(status.as_u16()))
                }
                Err(error) => {
                    let may_repeat = call.idempotency.may_repeat();
                    tracing::debug!(
                        method = call.method_name,
                        route = call.route,
                        attempt,
                        connect = error.is_connect(),
                        timeout = error.is_timeout(),
                        "neon api request failed without a response"
                    );
                    if error.is_timeout() {
                        let error = NeonError::Timeout {
                            method: call.method_name,
                            route: call.route,
                            elapsed: started.elapsed(),
                            attempts: attempt,
                        };
                        (error, may_repeat, None, RetryReason::Timeout)
                    } else {
                        // A refused connection never reached the server, so even a POST may be repeated.
                        let retryable = may_repeat || error.is_connect();
                        let error = NeonError::Transport {
                            method: call.method_name,
                            route: call.route,
                            attempts: attempt,
                            source: error,
                        };
                        (error, retryable, None, RetryReason::Transport)
                    }
                }
            };
            if !retryable || attempt >= config.retry.max_attempts {
                return Err(error);
            }
            let delay = match retry_after {
                Some(delay) => delay.min(config.retry.max_retry_after),
                None => backoff(&config.retry, attempt),
            };
            if Instant::now() + delay >= deadline {
                tracing::debug!(method = call.method_name, route = call.route, attempt, "deadline too close to retry");
                return Err(error);
            }
            tracing::info!(
                method = call.method_name,
                route = call.route,
                attempt,
                delay_ms = delay.as_millis() as u64,
                status = error.status().unwrap_or(0),
                "retrying neon api call"
            );
            telemetry::retry(reason);
            tokio::time::sleep(delay).await;
        }
    }

    async fn call<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let body = self.send(&call).await?;
        let body = if body.is_empty() { b"null".to_vec() } else { body };
        serde_json::from_slice(&body).map_err(|source| NeonError::Decode {
            method: call.method_name,
            route: call.route,
            source,
        })
    }

    /// For deletes that answer 200 with a body or 204 without one.
    async fn call_optional<T: DeserializeOwned>(&self, call: Call) -> Result<Option<T>> {
        let body = self.send(&call).await?;
        if body.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&body).map(Some).map_err(|source| NeonError::Decode {
            method: call.method_name,
            route: call.route,
            source,
        })
    }

    // ------------------------------------------------------------ projects

    /// One page of projects (`listProjects`); prefer [`NeonClient::list_projects`].
    pub async fn list_projects_page(&self, cursor: Option<&str>, limit: u32) -> Result<ProjectsPage> {
        self.call(Call::get("/projects", &["projects"]).query("limit", limit).query_opt("cursor", cursor)).await
    }

    /// Every project, page after page (`listProjects`). The API's cursor is present even on
    /// the last page, so the stream stops on a short or empty page.
    pub fn list_projects(&self) -> BoxStream<'static, Result<Project>> {
        let client = self.clone();
        paginate(move |cursor| {
            let client = client.clone();
            async move {
                let page_size = client.inner.config.page_size.max(1);
                let page = client.list_projects_page(cursor.as_deref(), page_size).await?;
                let next = if page.projects.len() < page_size as usize {
                    None
                } else {
                    page.pagination.and_then(|p| p.cursor)
                };
                Ok((page.projects, next))
            }
        })
    }

    /// Creates a project (`createProject`); wait for its operations before connecting.
    pub async fn create_project(&self, project: &NewProject) -> Result<CreatedProject> {
        self.call(Call::post("/projects", &["projects"]).body(json!({ "project": to_json(project)? }))).await
    }

    /// A project (`getProject`).
    pub async fn get_project(&self, project_id: &ProjectId) -> Result<Project> {
        #[derive(serde::Deserialize)]
        struct Body {
            project: Project,
        }
        let body: Body = self.call(Call::get("/projects/{project_id}", &["projects", project_id.as_str()])).await?;
        Ok(body.project)
    }

    /// Changes a project's name, settings (quota) or defaults (`updateProject`).
    pub async fn update_project(
        &self,
        project_id: &ProjectId,
        update: &ProjectUpdate,
    ) -> Result<ProjectWithOperations> {
        self.call(
            Call::patch("/projects/{project_id}", &["projects", project_id.as_str()])
                .body(json!({ "project": to_json(update)? }))
                .idempotent(),
        )
        .await
    }

    /// Deletes a project with all its branches (`deleteProject`).
    pub async fn delete_project(&self, project_id: &ProjectId) -> Result<Option<Project>> {
        #[derive(serde::Deserialize)]
        struct Body {
            project: Project,
        }
        let body: Option<Body> =
            self.call_optional(Call::delete("/projects/{project_id}", &["projects", project_id.as_str()])).await?;
        Ok(body.map(|body| body.project))
    }

    // ------------------------------------------------------------ branches

    /// Creates a branch, optionally from a parent at a timestamp or LSN and with computes (`createProjectBranch`).
    pub async fn create_branch(&self, project_id: &ProjectId, request: &BranchCreateRequest) -> Result<CreatedBranch> {
        self.call(
            Call::post("/projects/{project_id}/branches", &["projects", project_id.as_str(), "branches"])
                .body(to_json(request)?),
        )
        .await
    }

    /// One page of branches (`listProjectBranches`); prefer [`NeonClient::list_branches`].
    pub async fn list_branches_page(
        &self,
        project_id: &ProjectId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<BranchesPage> {
        self.call(
            Call::get("/projects/{project_id}/branches", &["projects", project_id.as_str(), "branches"])
                .query("limit", limit)
                .query_opt("cursor", cursor),
        )
        .await
    }

    /// Every branch of a project (`listProjectBranches`), following the opaque `next` cursor.
    pub fn list_branches(&self, project_id: &ProjectId) -> BoxStream<'static, Result<Branch>> {
        let client = self.clone();
        let project_id = project_id.clone();
        paginate(move |cursor| {
            let client = client.clone();
            let project_id = project_id.clone();
            async move {
                let page_size = client.inner.config.page_size.max(1);
                let page = client.list_branches_page(&project_id, cursor.as_deref(), page_size).await?;
                Ok((page.branches, page.pagination.and_then(|p| p.next)))
            }
        })
    }

    /// All branches collected into a vector.
    pub async fn all_branches(&self, project_id: &ProjectId) -> Result<Vec<Branch>> {
        self.list_branches(project_id).try_collect().await
    }

    /// A branch (`getProjectBranch`).
    pub async fn get_branch(&self, project_id: &ProjectId, branch_id: &BranchId) -> Result<Branch> {
        #[derive(serde::Deserialize)]
        struct Body {
            branch: Branch,
        }
        let body: Body = self
            .call(Call::get(
                "/projects/{project_id}/branches/{branch_id}",
                &["projects", project_id.as_str(), "branches", branch_id.as_str()],
            ))
            .await?;
        Ok(body.branch)
    }

    /// Renames or (un)protects a branch (`updateProjectBranch`).
    pub async fn update_branch(
        &self,
        project_id: &ProjectId,
        branch_id: &BranchId,
        update: &BranchUpdate,
    ) -> Result<BranchOperations> {
        self.call(
            Call::patch(
                "/projects/{project_id}/branches/{branch_id}",
                &["projects", project_id.as_str(), "branches", branch_id.as_str()],
            )
            .body(json!({ "branch": to_json(update)? })),
        )
        .await
    }

    /// Deletes a branch with its computes, roles and databases (`deleteProjectBranch`).
    /// Returns the operations to wait for (none on 204).
    pub async fn delete_branch(&self, project_id: &ProjectId, branch_id: &BranchId) -> Result<Vec<Operation>> {
        let body: Option<BranchOperations> = self
            .call_optional(Call::delete(
                "/projects/{project_id}/branches/{branch_id}",
                &["projects", project_id.as_str(), "branches", branch_id.as_str()],
            ))
            .await?;
        Ok(body.map(|body| body.operations).unwrap_or_default())
    }

    /// Restores a branch to a point in time of itself or another branch (`restoreProjectBranch`).
    pub async fn restore_branch(
        &self,
        project_id: &ProjectId,
        branch_id: &BranchId,
        restore: &BranchRestore,
    ) -> Result<BranchOperations> {
        self.call(
            Call::post(
                "/projects/{project_id}/branches/{branch_id}/restore",
                &["projects", project_id.as_str(), "branches", branch_id.as_str(), "restore"],
            )
            .body(to_json(restore)?),
        )
        .await
    }

    /// Makes a branch the project's default (`setDefaultProjectBranch`); idempotent.
    pub async fn set_default_branch(&self, project_id: &ProjectId, branch_id: &BranchId) -> Result<BranchOperations> {
        self.call(
            Call::post(
                "/projects/{project_id}/branches/{branch_id}/set_as_default",
                &["projects", project_id.as_str(), "branches", branch_id.as_str(), "set_as_default"],
            )
            .idempotent(),
        )
        .await
    }

    /// The computes of a branch (`listProjectBranchEndpoints`).
    pub async fn list_branch_endpoints(&self, project_id: &ProjectId, branch_id: &BranchId) -> Result<Vec<Endpoint>> {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            endpoints: Vec<Endpoint>,
        }
        let body: Body = self
            .call(Call::get(
                "/projects/{project_id}/branches/{branch_id}/endpoints",
                &["projects", project_id.as_str(), "branches", branch_id.as_str(), "endpoints"],
            ))
            .await?;
        Ok(body.endpoints)
    }

    // ------------------------------------------------------------ endpoints

    /// Creates a compute with autoscaling limits, suspend timeout and pooler settings (`createProjectEndpoint`).
    pub async fn create_endpoint(&self, project_id: &ProjectId, endpoint: &NewEndpoint) -> Result<EndpointOperations> {
        self.call(
            Call::post("/projects/{project_id}/endpoints", &["projects", project_id.as_str(), "endpoints"])
                .body(json!({ "endpoint": to_json(endpoint)? })),
        )
        .await
    }

    /// The computes of a project (`listProjectEndpoints`).
    pub async fn list_endpoints(&self, project_id: &ProjectId) -> Result<Vec<Endpoint>> {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            endpoints: Vec<Endpoint>,
        }
        let body: Body = self
            .call(Call::get("/projects/{project_id}/endpoints", &["projects", project_id.as_str(), "endpoints"]))
            .await?;
        Ok(body.endpoints)
    }

    /// A compute (`getProjectEndpoint`).
    pub async fn get_endpoint(&self, project_id: &ProjectId, endpoint_id: &EndpointId) -> Result<Endpoint> {
        #[derive(serde::Deserialize)]
        struct Body {
            endpoint: Endpoint,
        }
        let body: Body = self
            .call(Call::get(
                "/projects/{project_id}/endpoints/{endpoint_id}",
                &["projects", project_id.as_str(), "endpoints", endpoint_id.as_str()],
            ))
            .await?;
        Ok(body.endpoint)
    }

    /// Changes a compute's limits or settings (`updateProjectEndpoint`).
    pub async fn update_endpoint(
        &self,
        project_id: &ProjectId,
        endpoint_id: &EndpointId,
        update: &EndpointUpdate,
    ) -> Result<EndpointOperations> {
        self.call(
            Call::patch(
                "/projects/{project_id}/endpoints/{endpoint_id}",
                &["projects", project_id.as_str(), "endpoints", endpoint_id.as_str()],
            )
            .body(json!({ "endpoint": to_json(update)? }))
            .idempotent(),
        )
        .await
    }

    /// Starts a compute (`startProjectEndpoint`); idempotent.
    pub async fn start_endpoint(&self, project_id: &ProjectId, endpoint_id: &EndpointId) -> Result<EndpointOperations> {
        self.endpoint_action(
            project_id,
            endpoint_id,
            "/projects/{project_id}/endpoints/{endpoint_id}/start",
            "start",
            true,
        )
        .await
    }

    /// Suspends a compute (`suspendProjectEndpoint`); idempotent.
    pub async fn suspend_endpoint(
        &self,
        project_id: &ProjectId,
        endpoint_id: &EndpointId,
    ) -> Result<EndpointOperations> {
        self.endpoint_action(
            project_id,
            endpoint_id,
            "/projects/{project_id}/endpoints/{endpoint_id}/suspend",
            "suspend",
            true,
        )
        .await
    }

    /// Restarts a compute (`restartProjectEndpoint`).
    pub async fn restart_endpoint(
        &self,
        project_id: &ProjectId,
        endpoint_id: &EndpointId,
    ) -> Result<EndpointOperations> {
        self.endpoint_action(
            project_id,
            endpoint_id,
            "/projects/{project_id}/endpoints/{endpoint_id}/restart",
            "restart",
            false,
        )
        .await
    }

    async fn endpoint_action(
        &self,
        project_id: &ProjectId,
        endpoint_id: &EndpointId,
        route: &'static str,
        action: &str,
        idempotent: bool,
    ) -> Result<EndpointOperations> {
        let call = Call::post(route, &["projects", project_id.as_str(), "endpoints", endpoint_id.as_str(), action]);
        self.call(if idempotent { call.idempotent() } else { call }).await
    }

    /// Deletes a compute (`deleteProjectEndpoint`); returns the operations to wait for.
    pub async fn delete_endpoint(&self, project_id: &ProjectId, endpoint_id: &EndpointId) -> Result<Vec<Operation>> {
        let body: Option<EndpointOperations> = self
            .call_optional(Call::delete(
                "/projects/{project_id}/endpoints/{endpoint_id}",
                &["projects", project_id.as_str(), "endpoints", endpoint_id.as_str()],
            ))
            .await?;
        Ok(body.map(|body| body.operations).unwrap_or_default())
    }

    // ------------------------------------------------------------ databases

    /// The databases of a branch (`listProjectBranchDatabases`).
    pub async fn list_databases(&self, project_id: &ProjectId, branch_id: &BranchId) -> Result<Vec<Database>> {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            databases: Vec<Database>,
        }
        let body: Body = self
            .call(Call::get(
                "/projects/{project_id}/branches/{branch_id}/databases",
                &["projects", project_id.as_str(), "branches", branch_id.as_str(), "databases"],
            ))
            .await?;
        Ok(body.databases)
    }

    /// Creates a database owned by `owner_name` (`createProjectBranchDatabase`).
    pub async fn create_database(
        &self,
        project_id: &ProjectId,
        branch_id: &BranchId,
        name: &str,
        owner_name: &str,
    ) -> Result<DatabaseOperations> {
        self.call(
            Call::post(
                "/projects/{project_id}/branches/{branch_id}/databases",
                &["projects", project_id.as_str(), "branches", branch_id.as_str(), "databases"],
            )
            .body(json!({ "database": { "name": name, "owner_name": owner_name } })),
        )
        .await
    }

    /// A database (`getProjectBranchDatabase`).
    pub async fn get_database(&self, project_id: &ProjectId, branch_id: &BranchId, name: &str) -> Result<Database> {
        #[derive(serde::Deserialize)]
        struct Body {
            database: Database,
        }
        let body: Body = self
            .call(Call::get(
                "/projects/{project_id}/branches/{branch_id}/databases/{database_name}",
                &["projects", project_id.as_str(), "branches", branch_id.as_str(), "databases", name],
            ))
            .await?;
        Ok(body.database)
    }

    /// Renames a database or changes its owner (`updateProjectBranchDatabase`).
    pub async fn update_database(
        &self,
        project_id: &ProjectId,
        branch_id: &BranchId,
        name: &str,
        update: &DatabaseUpdate,
    ) -> Result<DatabaseOperations> {
        self.call(
            Call::patch(
                "/projects/{project_id}/branches/{branch_id}/databases/{database_name}",
                &["projects", project_id.as_str(), "branches", branch_id.as_str(), "databases", name],
            )
            .body(json!({ "database": to_json(update)? })),
        )
        .await
    }

    /// Drops a database (`deleteProjectBranchDatabase`); returns the operations to wait for.
    pub async fn delete_database(
        &self,
        project_id: &ProjectId,
        branch_id: &BranchId,
        name: &str,
    ) -> Result<Vec<Operation>> {
        let body: Option<DatabaseOperations> = self
            .call_optional(Call::delete(
                "/projects/{project_id}/branches/{branch_id}/databases/{database_name}",
                &["projects", project_id.as_str(), "branches", branch_id.as_str(), "databases", name],
            ))
            .await?;
        Ok(body.map(|body| body.operations).unwrap_or_default())
    }

    // ------------------------------------------------------------ roles

    /// The roles of a branch (`listProjectBranchRoles`).
    pub async fn list_roles(&self, project_id: &ProjectId, branch_id: &BranchId) -> Result<Vec<Role>> {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            roles: Vec<Role>,
        }
        let body: Body = self
            .call(Call::get(
                "/projects/{project_id}/branches/{branch_id}/roles",
                &["projects", project_id.as_str(), "branches", branch_id.as_str(), "roles"],
            ))
            .await?;
        Ok(body.roles)
    }

    /// Creates a role (`createProjectBranchRole`); the response carries its password.
    pub async fn create_role(
        &self,
        project_id: &ProjectId,
        branch_id: &BranchId,
        name: &str,
    ) -> Result<RoleOperations> {
        self.call(
            Call::post(
                "/projects/{project_id}/branches/{branch_id}/roles",
                &["projects", project_id.as_str(), "branches", branch_id.as_str(), "roles"],
            )
            .body(json!({ "role": { "name": name } })),
        )
        .await
    }

    /// A role (`getProjectBranchRole`).
    pub async fn get_role(&self, project_id: &ProjectId, branch_id: &BranchId, name: &str) -> Result<Role> {
        #[derive(serde::Deserialize)]
        struct Body {
            role: Role,
        }
        let body: Body = self
            .call(Call::get(
                "/projects/{project_id}/branches/{branch_id}/roles/{role_name}",
                &["projects", project_id.as_str(), "branches", branch_id.as_str(), "roles", name],
            ))
            .await?;
        Ok(body.role)
    }

    /// Deletes a role (`deleteProjectBranchRole`); returns the operations to wait for.
    pub async fn delete_role(
        &self,
        project_id: &ProjectId,
        branch_id: &BranchId,
        name: &str,
    ) -> Result<Vec<Operation>> {
        let body: Option<RoleOperations> = self
            .call_optional(Call::delete(
                "/projects/{project_id}/branches/{branch_id}/roles/{role_name}",
                &["projects", project_id.as_str(), "branches", branch_id.as_str(), "roles", name],
            ))
            .await?;
        Ok(body.map(|body| body.operations).unwrap_or_default())
    }

    /// Sets a new random password (`resetProjectBranchRolePassword`); the response carries it.
    pub async fn reset_role_password(
        &self,
        project_id: &ProjectId,
        branch_id: &BranchId,
        name: &str,
    ) -> Result<RoleOperations> {
        self.call(Call::post(
            "/projects/{project_id}/branches/{branch_id}/roles/{role_name}/reset_password",
            &["projects", project_id.as_str(), "branches", branch_id.as_str(), "roles", name, "reset_password"],
        ))
        .await
    }

    /// A role's stored password (`getProjectBranchRolePassword`); 412 when the project does not store passwords.
    pub async fn reveal_role_password(
        &self,
        project_id: &ProjectId,
        branch_id: &BranchId,
        name: &str,
    ) -> Result<Secret> {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(with = "crate::models::secret_serde")]
            password: Secret,
        }
        let body: Body = self
            .call(Call::get(
                "/projects/{project_id}/branches/{branch_id}/roles/{role_name}/reveal_password",
                &["projects", project_id.as_str(), "branches", branch_id.as_str(), "roles", name, "reveal_password"],
            ))
            .await?;
        Ok(body.password)
    }

    // ------------------------------------------------------------ connection URI

    /// A connection URI with password for `role_name` on `database_name` (`getConnectionURI`):
    /// through the pooler (`-pooler` host) when `pooled`, else straight to the compute.
    pub async fn connection_uri(&self, project_id: &ProjectId, request: &ConnectionUriRequest) -> Result<Secret> {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(with = "crate::models::secret_serde")]
            uri: Secret,
        }
        let body: Body = self
            .call(
                Call::get(
                    "/projects/{project_id}/connection_uri",
                    &["projects", project_id.as_str(), "connection_uri"],
                )
                .query_opt("branch_id", request.branch_id.as_ref())
                .query_opt("endpoint_id", request.endpoint_id.as_ref())
                .query("database_name", &request.database_name)
                .query("role_name", &request.role_name)
                .query("pooled", request.pooled),
            )
            .await?;
        Ok(body.uri)
    }

    // ------------------------------------------------------------ operations

    /// An operation (`getProjectOperation`).
    pub async fn get_operation(&self, project_id: &ProjectId, operation_id: &OperationId) -> Result<Operation> {
        #[derive(serde::Deserialize)]
        struct Body {
            operation: Operation,
        }
        let body: Body = self
            .call(Call::get(
                "/projects/{project_id}/operations/{operation_id}",
                &["projects", project_id.as_str(), "operations", operation_id.as_str()],
            ))
            .await?;
        Ok(body.operation)
    }

    /// One page of operations (`listProjectOperations`); prefer [`NeonClient::list_operations`].
    pub async fn list_operations_page(
        &self,
        project_id: &ProjectId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<OperationsPage> {
        self.call(
            Call::get("/projects/{project_id}/operations", &["projects", project_id.as_str(), "operations"])
                .query("limit", limit)
                .query_opt("cursor", cursor),
        )
        .await
    }

    /// Every operation of a project, newest first (`listProjectOperations`).
    pub fn list_operations(&self, project_id: &ProjectId) -> BoxStream<'static, Result<Operation>> {
        let client = self.clone();
        let project_id = project_id.clone();
        paginate(move |cursor| {
            let client = client.clone();
            let project_id = project_id.clone();
            async move {
                let page = client
                    .list_operations_page(&project_id, cursor.as_deref(), client.inner.config.page_size.max(1))
                    .await?;
                let next = if page.operations.len() < client.inner.config.page_size.max(1) as usize {
                    None
                } else {
                    page.pagination.and_then(|p| p.cursor)
                };
                Ok((page.operations, next))
            }
        })
    }

    /// Waits until every operation is `finished` or `skipped`, within the configured
    /// [`NeonApiConfig::operation_timeout`]. See [`NeonClient::wait_for_operations_within`].
    pub async fn wait_for_operations(&self, project_id: &ProjectId, operations: &[Operation]) -> Result<()> {
        self.wait_for_operations_within(project_id, operations, self.inner.config.operation_timeout).await
    }

    /// Waits until every operation is `finished` or `skipped`. `failed`, `error` and
    /// `cancelled` fail the wait; any other status, unknown ones included, means keep
    /// polling, until `timeout`.
    pub async fn wait_for_operations_within(
        &self,
        project_id: &ProjectId,
        operations: &[Operation],
        timeout: Duration,
    ) -> Result<()> {
        let started = Instant::now();
        let mut pending: Vec<Operation> = Vec::new();
        for operation in operations {
            match operation.outcome() {
                OperationOutcome::Done => {}
                OperationOutcome::Failed => return Err(operation_failed(project_id, operation)),
                OperationOutcome::Pending => pending.push(operation.clone()),
            }
        }
        while !pending.is_empty() {
            if started.elapsed() >= timeout {
                return Err(NeonError::OperationsTimeout {
                    project_id: project_id.clone(),
                    pending: pending.iter().map(|operation| operation.id.clone()).collect(),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(self.inner.config.operation_poll_interval).await;
            let mut still_pending = Vec::new();
            for operation in pending {
                let current = self.get_operation(project_id, &operation.id).await?;
                match current.outcome() {
                    OperationOutcome::Done => {
                        tracing::debug!(operation = %current.id, "operation done");
                    }
                    OperationOutcome::Failed => return Err(operation_failed(project_id, &current)),
                    OperationOutcome::Pending => still_pending.push(current),
                }
            }
            pending = still_pending;
        }
        Ok(())
    }

    // ------------------------------------------------------------ consumption, keys, user

    /// Consumption history per project and period (`getConsumptionHistoryPerProject`), page after page.
    pub fn consumption_history(&self, query: &ConsumptionQuery) -> BoxStream<'static, Result<ProjectConsumption>> {
        let client = self.clone();
        let query = query.clone();
        paginate(move |cursor| {
            let client = client.clone();
            let query = query.clone();
            async move {
                let mut call = Call::get("/consumption_history/projects", &["consumption_history", "projects"])
                    .query("limit", client.inner.config.page_size.max(1))
                    .query("from", query.from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .query("to", query.to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .query("granularity", query.granularity.as_str())
                    .query_opt("org_id", query.org_id.as_ref())
                    .query_opt("cursor", cursor);
                if !query.project_ids.is_empty() {
                    let ids: Vec<&str> = query.project_ids.iter().map(ProjectId::as_str).collect();
                    call = call.query("project_ids", ids.join(","));
                }
                let page: ConsumptionPage = client.call(call).await?;
                let next = if page.projects.len() < client.inner.config.page_size.max(1) as usize {
                    None
                } else {
                    page.pagination.and_then(|p| p.cursor)
                };
                Ok((page.projects, next))
            }
        })
    }

    /// The query parameters both v2 consumption endpoints share.
    fn consumption_v2_call(route: &'static str, segments: &[&str], query: &ConsumptionQueryV2) -> Call {
        let metrics: Vec<&str> = query.metrics.iter().map(ConsumptionMetric::as_str).collect();
        let mut call = Call::get(route, segments)
            .query("org_id", &query.org_id)
            .query("from", query.from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .query("to", query.to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .query("granularity", query.granularity.as_str())
            .query("metrics", metrics.join(","));
        if !query.project_ids.is_empty() {
            let ids: Vec<&str> = query.project_ids.iter().map(ProjectId::as_str).collect();
            call = call.query("project_ids", ids.join(","));
        }
        call
    }

    /// Consumption per project and timeframe in the metrics Neon invoices
    /// (`getConsumptionHistoryPerProjectV2`), page after page. Does not wake computes.
    pub fn consumption_per_project(
        &self,
        query: &ConsumptionQueryV2,
    ) -> BoxStream<'static, Result<ProjectConsumptionV2>> {
        let client = self.clone();
        let query = query.clone();
        paginate(move |cursor| {
            let client = client.clone();
            let query = query.clone();
            async move {
                if query.metrics.is_empty() || query.project_ids.len() > 100 {
                    return Err(NeonError::InvalidArgument(format!(
                        "consumption per project needs at least one metric and at most 100 project ids (got {} and {})",
                        query.metrics.len(),
                        query.project_ids.len()
                    )));
                }
                let limit = client.inner.config.page_size.clamp(1, 100);
                let call = NeonClient::consumption_v2_call(
                    "/consumption_history/v2/projects",
                    &["consumption_history", "v2", "projects"],
                    &query,
                )
                .query("limit", limit)
                .query_opt("cursor", cursor);
                let page: ConsumptionPageV2 = client.call(call).await?;
                let next =
                    if page.projects.len() < limit as usize { None } else { page.pagination.and_then(|p| p.cursor) };
                Ok((page.projects, next))
            }
        })
    }

    /// Consumption per branch and timeframe of 1 to 100 projects
    /// (`getConsumptionHistoryPerBranchV2`, beta), page after page. Does not wake computes.
    pub fn consumption_per_branch(
        &self,
        query: &ConsumptionQueryV2,
    ) -> BoxStream<'static, Result<BranchConsumptionV2>> {
        let client = self.clone();
        let query = query.clone();
        paginate(move |cursor| {
            let client = client.clone();
            let query = query.clone();
            async move {
                if query.metrics.is_empty() || query.project_ids.is_empty() || query.project_ids.len() > 100 {
                    return Err(NeonError::InvalidArgument(format!(
                        "consumption per branch needs at least one metric and 1 to 100 project ids (got {} and {})",
                        query.metrics.len(),
                        query.project_ids.len()
                    )));
                }
                let limit = client.inner.config.page_size.clamp(1, 1000);
                let mut call = NeonClient::consumption_v2_call(
                    "/consumption_history/v2/branches",
                    &["consumption_history", "v2", "branches"],
                    &query,
                )
                .query("limit", limit)
                .query_opt("cursor", cursor);
                if !query.branch_ids.is_empty() {
                    let ids: Vec<&str> = query.branch_ids.iter().map(BranchId::as_str).collect();
                    call = call.query("branch_ids", ids.join(","));
                }
                let page: BranchConsumptionPage = client.call(call).await?;
                let next =
                    if page.branches.len() < limit as usize { None } else { page.pagination.and_then(|p| p.cursor) };
                Ok((page.branches, next))
            }
        })
    }

    /// The account's API keys (`listApiKeys`).
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        self.call(Call::get("/api_keys", &["api_keys"])).await
    }

    /// Creates an API key (`createApiKey`); the response is the only time the key is shown.
    pub async fn create_api_key(&self, key_name: &str) -> Result<CreatedApiKey> {
        self.call(Call::post("/api_keys", &["api_keys"]).body(json!({ "key_name": key_name }))).await
    }

    /// Revokes an API key (`revokeApiKey`).
    pub async fn revoke_api_key(&self, key_id: ApiKeyId) -> Result<ApiKey> {
        self.call(Call::delete("/api_keys/{key_id}", &["api_keys", &key_id.to_string()])).await
    }

    /// The user the API key belongs to (`getCurrentUserInfo`).
    pub async fn current_user(&self) -> Result<CurrentUser> {
        self.call(Call::get("/users/me", &["users", "me"])).await
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
}

fn operation_failed(project_id: &ProjectId, operation: &Operation) -> NeonError {
    NeonError::OperationFailed {
        project_id: project_id.clone(),
        operation_id: operation.id.clone(),
        action: operation.action.as_ref().map(|action| action.as_str().to_owned()).unwrap_or_default(),
        status: operation.status.as_ref().map(|status| status.as_str().to_owned()).unwrap_or_default(),
        error: operation.error.clone(),
    }
}

/// The arguments of [`NeonClient::connection_uri`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionUriRequest {
    /// Branch (default: the project's default branch).
    pub branch_id: Option<BranchId>,
    /// Compute (default: the branch's read-write compute).
    pub endpoint_id: Option<EndpointId>,
    /// Database.
    pub database_name: String,
    /// Role.
    pub role_name: String,
    /// Through the pooler.
    pub pooled: bool,
}

/// A project and the operations a mutation started (`updateProject`'s response).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ProjectWithOperations {
    /// The project.
    pub project: Project,
    /// Operations to wait for.
    #[serde(default)]
    pub operations: Vec<Operation>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            max_retry_after: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let first = backoff(&policy, 1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100), "{first:?}");
            let third = backoff(&policy, 3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400), "{third:?}");
            let late = backoff(&policy, 30);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_millis(1000), "{late:?}");
        }
    }

    #[test]
    fn html_error_bodies_become_readable_messages() {
        let (code, message, request_id) =
            decode_error_body(StatusCode::BAD_GATEWAY, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "key");
        assert_eq!(code, "");
        assert!(message.contains("Bad Gateway (non-JSON response body: 502 Bad Gateway)"), "{message}");
        assert!(request_id.is_none());
        let (code, message, request_id) = decode_error_body(
            StatusCode::CONFLICT,
            br#"{"code":"","message":"branch exists","request_id":"r1"}"#,
            "key",
        );
        assert_eq!((code.as_str(), message.as_str(), request_id.as_deref()), ("", "branch exists", Some("r1")));
    }

    #[test]
    fn an_api_key_quoted_back_in_an_error_body_is_masked() {
        let key = "napi_k3y";
        let (code, message, request_id) = decode_error_body(
            StatusCode::UNAUTHORIZED,
            br#"{"code":"napi_k3y","message":"the API key napi_k3y is not valid","request_id":"napi_k3y"}"#,
            key,
        );
        assert_eq!(
            (code.as_str(), message.as_str(), request_id.as_deref()),
            ("***", "the API key *** is not valid", Some("***"))
        );
        // A proxy's page is cut to 200 characters, here in the middle of the key: it is
        // masked before the cut, so no prefix of it is left either.
        let page = format!("<html><body><pre>{}Bearer {key}</pre></body></html>", "x ".repeat(95));
        let (_, message, _) = decode_error_body(StatusCode::BAD_GATEWAY, page.as_bytes(), key);
        assert!(message.contains("x Bearer ***") && !message.contains("nap"), "{message}");
    }
}
