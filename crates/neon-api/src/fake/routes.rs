//! Request handling of the fake: one fallback handler that records the request,
//! applies injected faults, checks the bearer token and dispatches on the path.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use chrono::SecondsFormat;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{
    FakeBranch, FakeNeonConfig, FakeOperation, FakeProject, FakeRole, FaultKind, RecordedRequest, Shared, State,
};

/// How many requests the fake remembers for [`super::FakeNeon::requests`].
const MAX_RECORDED_REQUESTS: usize = 100_000;

const LOCKED_MESSAGE: &str = "project already has running conflicting operations, scheduling of new ones is prohibited";

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// An answer before headers are added: status and JSON body (`None` = 204).
struct Answer {
    status: u16,
    body: Option<Value>,
}

fn ok(body: Value) -> Answer {
    Answer { status: 200, body: Some(body) }
}

fn created(body: Value) -> Answer {
    Answer { status: 201, body: Some(body) }
}

fn error(status: u16, message: impl Into<String>) -> Answer {
    Answer { status, body: Some(json!({ "code": "", "message": message.into() })) }
}

fn not_found(what: &str) -> Answer {
    error(404, format!("{what} not found"))
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && index + 2 < bytes.len()
            && let Ok(value) = u8::from_str_radix(&segment[index + 1..index + 3], 16)
        {
            out.push(value);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

async fn handle(AxumState(shared): AxumState<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let raw_path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let authorization = request.headers().get("authorization").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let body_bytes = axum::body::to_bytes(request.into_body(), 16 * 1024 * 1024).await.unwrap_or_default();
    let body: Option<Value> =
        if body_bytes.is_empty() { None } else { Some(serde_json::from_slice(&body_bytes).unwrap_or(Value::Null)) };
    let path = raw_path.strip_prefix("/api/v2").unwrap_or(&raw_path).to_owned();
    let segments: Vec<String> = path.split('/').filter(|segment| !segment.is_empty()).map(percent_decode).collect();
    let decoded_path = format!("/{}", segments.join("/"));

    // Faults first: they stand for the network and proxies in front of the API.
    let fault = {
        let mut state = shared.state();
        let position = state.faults.iter().position(|fault| fault.matches(&method, &decoded_path));
        position.map(|position| {
            let fault = state.faults[position].clone();
            if fault.times <= 1 {
                state.faults.remove(position);
            } else if let Some(queued) = state.faults.get_mut(position) {
                queued.times -= 1;
            }
            fault
        })
    };
    let request_id = {
        let mut state = shared.state();
        state.counter += 1;
        format!("fake-request-{}", state.counter)
    };
    let record = |status: u16, response: Option<&Value>| {
        let mut state = shared.state();
        // A long-running fake (`strata neon fake-server`) keeps only the latest requests.
        if state.requests.len() >= MAX_RECORDED_REQUESTS {
            state.requests.drain(..MAX_RECORDED_REQUESTS / 2);
        }
        state.requests.push(RecordedRequest {
            method: method.clone(),
            path: decoded_path.clone(),
            query: query.clone(),
            body: body.clone(),
            status,
            response: response.cloned(),
        });
    };
    if let Some(fault) = fault {
        match fault.kind {
            FaultKind::Delay(delay) => tokio::time::sleep(delay).await,
            FaultKind::Status(status) => {
                record(status, None);
                return respond(error(status, format!("injected HTTP {status}")), &request_id, None);
            }
            FaultKind::HtmlStatus(status) => {
                record(status, None);
                let html = format!(
                    "<html><head><title>{status} Bad Gateway</title></head><body><center><h1>{status} Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
                );
                return raw_response(status, "text/html", Body::from(html), &request_id, None);
            }
            FaultKind::RateLimited(retry_after) => {
                record(429, None);
                return respond(error(429, "rate limit exceeded"), &request_id, Some(&retry_after));
            }
            FaultKind::Unavailable(retry_after) => {
                record(503, None);
                return respond(error(503, "service unavailable"), &request_id, Some(&retry_after));
            }
            FaultKind::DropConnection => {
                record(0, None);
                let broken = futures::stream::once(async {
                    Err::<Bytes, std::io::Error>(std::io::Error::other("fake server dropped the connection"))
                });
                return raw_response(200, "application/json", Body::from_stream(broken), &request_id, None);
            }
        }
    }

    let config = shared.config();
    let authorized = match (&authorization, &config.api_key) {
        (Some(header), Some(key)) => header.strip_prefix("Bearer ") == Some(key.as_str()),
        (Some(header), None) => header.strip_prefix("Bearer ").is_some_and(|token| !token.trim().is_empty()),
        (None, _) => false,
    };
    let answer = if authorized {
        let mut state = shared.state();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        dispatch(&mut state, &config, &method, &segments, query.as_deref(), body.as_ref())
    } else {
        error(401, "authorization failed: missing or invalid API key")
    };
    record(answer.status, answer.body.as_ref());
    respond(answer, &request_id, None)
}

fn raw_response(status: u16, content_type: &str, body: Body, request_id: &str, retry_after: Option<&str>) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert("content-type", value);
    }
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-neon-ret-request-id", value);
    }
    if let Some(retry_after) = retry_after.and_then(|value| HeaderValue::from_str(value).ok()) {
        headers.insert("retry-after", retry_after);
    }
    response
}

fn respond(answer: Answer, request_id: &str, retry_after: Option<&str>) -> Response {
    match answer.body {
        Some(body) => {
            raw_response(answer.status, "application/json", Body::from(body.to_string()), request_id, retry_after)
        }
        None => raw_response(answer.status, "application/json", Body::empty(), request_id, retry_after),
    }
}

fn next_id(state: &mut State) -> u64 {
    state.counter += 1;
    state.counter
}

fn operation_uuid(number: u64) -> String {
    format!("00000000-0000-4000-8000-{number:012x}")
}

/// Adds an operation to a project; it runs for the configured duration.
fn add_operation(
    state: &mut State,
    config: &FakeNeonConfig,
    project_id: &str,
    action: &str,
    branch_id: Option<&str>,
    endpoint_id: Option<&str>,
    now: Instant,
) -> Value {
    let number = next_id(state);
    let final_status = if state.failing_operations > 0 {
        state.failing_operations -= 1;
        "failed"
    } else {
        "finished"
    };
    let mut json = json!({
        "id": operation_uuid(number),
        "project_id": project_id,
        "action": action,
        "status": "running",
        "failures_count": 0,
        "created_at": now_text(),
        "updated_at": now_text(),
        "total_duration_ms": config.operation_duration.as_millis() as u64,
    });
    if let Some(branch_id) = branch_id {
        json["branch_id"] = Value::from(branch_id);
    }
    if let Some(endpoint_id) = endpoint_id {
        json["endpoint_id"] = Value::from(endpoint_id);
    }
    if final_status == "failed" {
        json["error"] = Value::from("injected operation failure");
    }
    let operation = FakeOperation {
        json,
        finish_at: now + config.operation_duration,
        final_status,
        running_status: config.running_status.clone(),
    };
    let rendered = operation.to_json(now);
    if let Some(project) = state.projects.get_mut(project_id) {
        project.operations.push(operation);
    }
    rendered
}

fn branch_json(
    id: &str,
    project_id: &str,
    name: &str,
    parent: Option<&Value>,
    default: bool,
    body: Option<&Value>,
) -> Value {
    let now = now_text();
    let mut json = json!({
        "id": id,
        "project_id": project_id,
        "name": name,
        "current_state": "ready",
        "state_changed_at": now,
        "logical_size": 0,
        "creation_source": "console",
        "default": default,
        "primary": default,
        "protected": false,
        "cpu_used_sec": 0,
        "compute_time_seconds": 0,
        "active_time_seconds": 0,
        "written_data_bytes": 0,
        "data_transfer_bytes": 0,
        "created_at": now,
        "updated_at": now,
        "init_source": "parent-data",
    });
    if let Some(parent) = parent {
        json["parent_id"] = parent["id"].clone();
        json["parent_lsn"] = Value::from("0/1F2E3D4");
    }
    if let Some(body) = body {
        for field in ["parent_lsn", "parent_timestamp", "protected", "expires_at"] {
            if let Some(value) = body.get(field) {
                json[field] = value.clone();
            }
        }
    }
    json
}

fn endpoint_json(id: &str, project: &Value, branch_id: &str, endpoint_type: &str, options: Option<&Value>) -> Value {
    let now = now_text();
    let region = project["region_id"].as_str().unwrap_or("aws-us-east-2");
    let mut json = json!({
        "host": format!("{id}.{region}.fake.neon.local"),
        "id": id,
        "project_id": project["id"],
        "branch_id": branch_id,
        "autoscaling_limit_min_cu": 0.25,
        "autoscaling_limit_max_cu": 0.25,
        "region_id": region,
        "type": endpoint_type,
        "current_state": "active",
        "settings": {},
        "pooler_enabled": false,
        "pooler_mode": "transaction",
        "disabled": false,
        "passwordless_access": false,
        "creation_source": "console",
        "created_at": now,
        "updated_at": now,
        "proxy_host": format!("{region}.fake.neon.local"),
        "suspend_timeout_seconds": 0,
        "provisioner": "k8s-neonvm",
    });
    if let Some(defaults) = project.get("default_endpoint_settings") {
        for field in ["autoscaling_limit_min_cu", "autoscaling_limit_max_cu", "suspend_timeout_seconds"] {
            if let Some(value) = defaults.get(field) {
                json[field] = value.clone();
            }
        }
    }
    if let Some(options) = options {
        apply_endpoint_fields(&mut json, options);
    }
    json
}

fn apply_endpoint_fields(json: &mut Value, options: &Value) {
    for field in [
        "autoscaling_limit_min_cu",
        "autoscaling_limit_max_cu",
        "suspend_timeout_seconds",
        "settings",
        "pooler_enabled",
        "disabled",
        "name",
        "provisioner",
    ] {
        if let Some(value) = options.get(field) {
            json[field] = value.clone();
        }
    }
}

/// Refuses negative quota values (the spec's minimum is 0; 0 means unlimited).
fn check_quota(settings: Option<&Value>) -> Result<(), Answer> {
    let quota = settings.and_then(|settings| settings.get("quota")).and_then(Value::as_object);
    for (name, value) in quota.into_iter().flatten() {
        if value.as_i64().is_some_and(|value| value < 0) {
            return Err(error(422, format!("quota {name} must be 0 (unlimited) or positive, got {value}")));
        }
    }
    Ok(())
}

/// Checks compute-unit limits like the API: at least 0.25 and min <= max; and the
/// suspend timeout: -1 (never), 0 (the default) or 60 to 604800 seconds.
fn check_compute_units(options: &Value) -> Result<(), Answer> {
    if let Some(timeout) = options.get("suspend_timeout_seconds").and_then(Value::as_i64)
        && !(timeout == -1 || timeout == 0 || (60..=604_800).contains(&timeout))
    {
        return Err(error(
            422,
            format!("suspend_timeout_seconds must be -1 (never), 0 (default) or 60 to 604800, got {timeout}"),
        ));
    }
    let min = options.get("autoscaling_limit_min_cu").and_then(Value::as_f64);
    let max = options.get("autoscaling_limit_max_cu").and_then(Value::as_f64);
    for value in [min, max].into_iter().flatten() {
        if value < 0.25 {
            return Err(error(422, format!("compute units must be at least 0.25, got {value}")));
        }
    }
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        return Err(error(422, format!("autoscaling_limit_min_cu ({min}) exceeds autoscaling_limit_max_cu ({max})")));
    }
    Ok(())
}

fn password_for(state: &mut State) -> String {
    format!("npg_fakeSecret{:08x}", next_id(state).wrapping_mul(2_654_435_761))
}

/// Inserts a project with its default branch, compute, owner role and database.
/// Returns the project id and the creation response's parts.
pub(super) fn insert_project(
    state: &mut State,
    config: &FakeNeonConfig,
    name: &str,
    options: Option<&Value>,
    operations_now: Option<Instant>,
) -> (String, Value) {
    let number = next_id(state);
    let project_id = format!("fake-project-{number}");
    let now_text = now_text();
    let mut project = json!({
        "id": project_id,
        "platform_id": "aws",
        "region_id": "aws-us-east-2",
        "name": name,
        "provisioner": "k8s-neonvm",
        "pg_version": 17,
        "proxy_host": "us-east-2.fake.neon.local",
        "branch_logical_size_limit": 0,
        "branch_logical_size_limit_bytes": 10_800,
        "store_passwords": config.store_passwords,
        "cpu_used_sec": 0,
        "active_time_seconds": 0,
        "compute_time_seconds": 0,
        "written_data_bytes": 0,
        "data_transfer_bytes": 0,
        "data_storage_bytes_hour": 0,
        "creation_source": "console",
        "history_retention_seconds": 86_400,
        "created_at": now_text,
        "updated_at": now_text,
        "consumption_period_start": now_text,
        "consumption_period_end": now_text,
        "owner_id": "fake-user",
        "org_id": super::FAKE_ORG_ID,
        "settings": {},
    });
    let mut branch_name = "main".to_owned();
    let mut role_name = "neondb_owner".to_owned();
    let mut database_name = "neondb".to_owned();
    if let Some(options) = options {
        for field in [
            "region_id",
            "pg_version",
            "settings",
            "default_endpoint_settings",
            "history_retention_seconds",
            "store_passwords",
            "org_id",
        ] {
            if let Some(value) = options.get(field) {
                project[field] = value.clone();
            }
        }
        if let Some(branch) = options.get("branch") {
            if let Some(name) = branch.get("name").and_then(Value::as_str) {
                branch_name = name.to_owned();
            }
            if let Some(name) = branch.get("database_name").and_then(Value::as_str) {
                database_name = name.to_owned();
                role_name = format!("{name}_owner");
            }
            if let Some(name) = branch.get("role_name").and_then(Value::as_str) {
                role_name = name.to_owned();
            }
        }
    }
    let branch_id = format!("br-fake-{}", next_id(state));
    let endpoint_id = format!("ep-fake-{}", next_id(state));
    let branch = branch_json(&branch_id, &project_id, &branch_name, None, true, None);
    let endpoint = endpoint_json(&endpoint_id, &project, &branch_id, "read_write", None);
    let password = password_for(state);
    let role = json!({"branch_id": branch_id, "name": role_name, "protected": false, "created_at": now_text, "updated_at": now_text});
    let database = json!({"id": next_id(state), "branch_id": branch_id, "name": database_name, "owner_name": role_name, "created_at": now_text, "updated_at": now_text});
    let mut fake_branch = FakeBranch { json: branch.clone(), databases: Default::default(), roles: Default::default() };
    fake_branch.databases.insert(database_name.clone(), database.clone());
    fake_branch.roles.insert(role_name.clone(), FakeRole { json: role.clone(), password: password.clone() });
    let mut fake_project = FakeProject {
        json: project.clone(),
        branches: Default::default(),
        branch_order: vec![branch_id.clone()],
        endpoints: Default::default(),
        operations: Vec::new(),
    };
    fake_project.branches.insert(branch_id.clone(), fake_branch);
    fake_project.endpoints.insert(endpoint_id.clone(), endpoint.clone());
    state.projects.insert(project_id.clone(), fake_project);
    let mut operations = Vec::new();
    if let Some(at) = operations_now {
        operations.push(add_operation(state, config, &project_id, "create_timeline", Some(&branch_id), None, at));
        operations.push(add_operation(
            state,
            config,
            &project_id,
            "start_compute",
            Some(&branch_id),
            Some(&endpoint_id),
            at,
        ));
    }
    let host = endpoint["host"].as_str().unwrap_or_default().to_owned();
    let pooler_host = host.replacen(&endpoint_id, &format!("{endpoint_id}-pooler"), 1);
    let mut role_with_password = role.clone();
    role_with_password["password"] = Value::from(password.clone());
    let response = json!({
        "project": project,
        "branch": branch,
        "endpoints": [endpoint],
        "roles": [role_with_password],
        "databases": [database],
        "operations": operations,
        "connection_uris": [{
            "connection_uri": uri_for(config, &role_name, &password, &host, &database_name, None),
            "connection_parameters": {"database": database_name, "password": password, "role": role_name, "host": real_host(config).unwrap_or(host), "pooler_host": real_host(config).unwrap_or(pooler_host)},
        }],
    });
    (project_id, response)
}

fn running_operations(project: &FakeProject, now: Instant) -> bool {
    project.operations.iter().any(|operation| operation.is_running(now))
}

/// Routes a request. Holds the state lock; never awaits.
fn dispatch(
    state: &mut State,
    config: &FakeNeonConfig,
    method: &str,
    segments: &[&str],
    query: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let now = Instant::now();
    match (method, segments) {
        ("GET", ["users", "me"]) => ok(json!({
            "id": "fake-user", "email": "fake@example.com", "login": "fake", "name": "Fake", "last_name": "User",
            "image": "", "projects_limit": 100, "branches_limit": 5000, "max_autoscaling_limit": 8.0,
            "active_seconds_limit": 0, "auth_accounts": [], "plan": "scale",
        })),
        ("GET", ["api_keys"]) => {
            ok(Value::Array(state.api_keys.iter().filter(|key| key["revoked"] != true).cloned().collect()))
        }
        ("POST", ["api_keys"]) => {
            let Some(name) = body.and_then(|body| body.get("key_name")).and_then(Value::as_str) else {
                return error(400, "key_name is required");
            };
            let id = next_id(state) as i64;
            let key = format!("napi_fake{:016x}", (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let now_text = now_text();
            state.api_keys.push(json!({
                "id": id, "name": name, "created_at": now_text,
                "created_by": {"id": "00000000-0000-4000-8000-000000000001", "name": "Fake User", "image": ""},
                "last_used_from_addr": "", "revoked": false,
            }));
            ok(
                json!({"id": id, "key": key, "name": name, "created_at": now_text, "created_by": "00000000-0000-4000-8000-000000000001"}),
            )
        }
        ("DELETE", ["api_keys", key_id]) => {
            let Some(key) = state.api_keys.iter_mut().find(|key| {
                key["id"].as_i64().map(|id| id.to_string()).as_deref() == Some(*key_id) && key["revoked"] != true
            }) else {
                return not_found("API key");
            };
            key["revoked"] = Value::Bool(true);
            let mut revoked = key.clone();
            revoked["created_by"] = Value::from("00000000-0000-4000-8000-000000000001");
            ok(revoked)
        }
        ("GET", ["consumption_history", "projects"]) => {
            let (Some(from), Some(_to), Some(_granularity)) =
                (query_value(query, "from"), query_value(query, "to"), query_value(query, "granularity"))
            else {
                return error(400, "from, to and granularity are required");
            };
            let wanted: Option<Vec<String>> =
                query_value(query, "project_ids").map(|ids| ids.split(',').map(str::to_owned).collect());
            let ids: Vec<&String> =
                state.projects.keys().filter(|id| wanted.as_ref().is_none_or(|wanted| wanted.contains(id))).collect();
            let (page, cursor) = cursor_page(&ids, query, 10, |id| (*id).clone());
            let projects: Vec<Value> = page
                .iter()
                .map(|id| {
                    json!({"project_id": id, "periods": [{
                        "period_id": "00000000-0000-4000-8000-00000000feed", "period_plan": "scale", "period_start": from,
                        "consumption": [{"timeframe_start": from, "timeframe_end": now_text(), "active_time_seconds": 0,
                            "compute_time_seconds": 0, "written_data_bytes": 0, "synthetic_storage_size_bytes": 0}],
                    }]})
                })
                .collect();
            paged(json!({ "projects": projects }), cursor)
        }
        ("GET", ["consumption_history", "v2", which @ ("projects" | "branches")]) => {
            let branches = *which == "branches";
            match super::consumption::consumption_v2(state, query, branches, chrono::Utc::now()) {
                Ok(items) => {
                    let (page, cursor) =
                        cursor_page(&items, query, if branches { 100 } else { 10 }, |item| item.0.clone());
                    let page: Vec<Value> = page.into_iter().map(|item| item.1.clone()).collect();
                    let mut body = serde_json::Map::new();
                    body.insert((*which).to_owned(), Value::Array(page));
                    paged(Value::Object(body), cursor)
                }
                Err((status, message)) => error(status, message),
            }
        }
        ("GET", ["projects"]) => {
            let ids: Vec<&String> = state.projects.keys().collect();
            let (page, cursor) = cursor_page(&ids, query, 10, |id| (*id).clone());
            let projects: Vec<Value> = page
                .iter()
                .filter_map(|id| state.projects.get(id.as_str()))
                .map(|project| {
                    let mut item = project.json.clone();
                    item["active_time"] = item["active_time_seconds"].clone();
                    item
                })
                .collect();
            paged(json!({ "projects": projects, "applications": {}, "integrations": {} }), cursor)
        }
        ("POST", ["projects"]) => {
            let Some(options) = body.and_then(|body| body.get("project")) else {
                return error(400, "request body must have a project object");
            };
            if let Some(name) = options.get("name").and_then(Value::as_str)
                && (name.is_empty() || name.len() > 256)
            {
                return error(422, "project name must be 1 to 256 characters");
            }
            if let Some(defaults) = options.get("default_endpoint_settings")
                && let Err(answer) = check_compute_units(defaults)
            {
                return answer;
            }
            if let Err(answer) = check_quota(options.get("settings")) {
                return answer;
            }
            let name = options.get("name").and_then(Value::as_str).unwrap_or("fake-project").to_owned();
            let (_, response) = insert_project(state, config, &name, Some(options), Some(now));
            created(response)
        }
        ("GET" | "PATCH" | "DELETE" | "POST", ["projects", project_id, rest @ ..]) => {
            let Some(project) = state.projects.get(*project_id) else {
                return not_found(&format!("project {project_id}"));
            };
            let mutation = method != "GET";
            if mutation && config.lock_while_running && running_operations(project, now) {
                return error(423, LOCKED_MESSAGE);
            }
            project_route(state, config, method, project_id, rest, query, body, now)
        }
        _ => not_found("route"),
    }
}

/// Slices `items` after the `cursor` query value (an item key); the cursor of the answer is the
/// last item's key and is present even on the last page, like the real API.
fn cursor_page<'a, T>(
    items: &'a [T],
    query: Option<&str>,
    default_limit: usize,
    key: impl Fn(&T) -> String,
) -> (Vec<&'a T>, Option<String>) {
    let limit =
        query_value(query, "limit").and_then(|limit| limit.parse::<usize>().ok()).unwrap_or(default_limit).max(1);
    let start = match query_value(query, "cursor") {
        Some(cursor) => items.iter().position(|item| key(item) == cursor).map_or(items.len(), |index| index + 1),
        None => 0,
    };
    let page: Vec<&T> = items.iter().skip(start).take(limit).collect();
    let cursor = page.last().map(|item| key(item));
    (page, cursor)
}

/// Adds `pagination: {cursor}` unless the list is empty (the real API omits it then).
fn paged(mut body: Value, cursor: Option<String>) -> Answer {
    if let Some(cursor) = cursor {
        body["pagination"] = json!({ "cursor": cursor });
    }
    ok(body)
}

#[allow(clippy::too_many_arguments)]
fn project_route(
    state: &mut State,
    config: &FakeNeonConfig,
    method: &str,
    project_id: &str,
    rest: &[&str],
    query: Option<&str>,
    body: Option<&Value>,
    now: Instant,
) -> Answer {
    match (method, rest) {
        ("GET", []) => ok(json!({ "project": state.projects[project_id].json })),
        ("PATCH", []) => {
            let Some(update) = body.and_then(|body| body.get("project")) else {
                return error(400, "request body must have a project object");
            };
            if let Some(defaults) = update.get("default_endpoint_settings")
                && let Err(answer) = check_compute_units(defaults)
            {
                return answer;
            }
            if let Err(answer) = check_quota(update.get("settings")) {
                return answer;
            }
            let Some(project) = state.projects.get_mut(project_id) else { return not_found("project") };
            for field in ["name", "settings", "default_endpoint_settings", "history_retention_seconds"] {
                if let Some(value) = update.get(field) {
                    project.json[field] = value.clone();
                }
            }
            project.json["updated_at"] = Value::from(now_text());
            let json = project.json.clone();
            ok(json!({ "project": json, "operations": [] }))
        }
        ("DELETE", []) => match state.projects.remove(project_id) {
            Some(project) => ok(json!({ "project": project.json })),
            None => not_found("project"),
        },
        ("GET", ["operations"]) => {
            let project = &state.projects[project_id];
            let newest_first: Vec<&FakeOperation> = project.operations.iter().rev().collect();
            let (page, cursor) = cursor_page(&newest_first, query, 10, |operation| {
                operation.json["id"].as_str().unwrap_or_default().to_owned()
            });
            let operations: Vec<Value> = page.iter().map(|operation| operation.to_json(now)).collect();
            paged(json!({ "operations": operations }), cursor)
        }
        ("GET", ["operations", operation_id]) => {
            let project = &state.projects[project_id];
            match project.operations.iter().find(|operation| operation.json["id"] == *operation_id) {
                Some(operation) => ok(json!({ "operation": operation.to_json(now) })),
                None => not_found(&format!("operation {operation_id}")),
            }
        }
        ("GET", ["connection_uri"]) => connection_uri(state, config, project_id, query),
        ("GET", ["branches"]) => {
            let project = &state.projects[project_id];
            let limit =
                query_value(query, "limit").and_then(|limit| limit.parse::<usize>().ok()).unwrap_or(10_000).max(1);
            let offset = query_value(query, "cursor")
                .and_then(|cursor| cursor.strip_prefix("fake-offset-").and_then(|offset| offset.parse::<usize>().ok()))
                .unwrap_or(0);
            let branches: Vec<Value> = project
                .branch_order
                .iter()
                .skip(offset)
                .take(limit)
                .filter_map(|id| project.branches.get(id))
                .map(|branch| branch.json.clone())
                .collect();
            let mut response = json!({ "branches": branches, "annotations": {} });
            if !branches.is_empty() {
                let mut pagination = json!({ "sort_by": "created_at", "sort_order": "asc" });
                if offset + branches.len() < project.branch_order.len() {
                    pagination["next"] = Value::from(format!("fake-offset-{}", offset + branches.len()));
                }
                response["pagination"] = pagination;
            }
            ok(response)
        }
        ("POST", ["branches"]) => create_branch(state, config, project_id, body, now),
        ("GET", ["endpoints"]) => {
            let endpoints: Vec<Value> = state.projects[project_id].endpoints.values().cloned().collect();
            ok(json!({ "endpoints": endpoints }))
        }
        ("POST", ["endpoints"]) => {
            let Some(options) = body.and_then(|body| body.get("endpoint")) else {
                return error(400, "request body must have an endpoint object");
            };
            let (Some(branch_id), Some(endpoint_type)) =
                (options.get("branch_id").and_then(Value::as_str), options.get("type").and_then(Value::as_str))
            else {
                return error(400, "endpoint.branch_id and endpoint.type are required");
            };
            if let Err(answer) = check_compute_units(options) {
                return answer;
            }
            let project = &state.projects[project_id];
            if !project.branches.contains_key(branch_id) {
                return not_found(&format!("branch {branch_id}"));
            }
            if endpoint_type == "read_write"
                && project
                    .endpoints
                    .values()
                    .any(|endpoint| endpoint["branch_id"] == branch_id && endpoint["type"] == "read_write")
            {
                return error(409, format!("branch {branch_id} already has a read_write endpoint"));
            }
            let endpoint_id = format!("ep-fake-{}", next_id(state));
            let endpoint =
                endpoint_json(&endpoint_id, &state.projects[project_id].json, branch_id, endpoint_type, Some(options));
            if let Some(project) = state.projects.get_mut(project_id) {
                project.endpoints.insert(endpoint_id.clone(), endpoint.clone());
            }
            let operation =
                add_operation(state, config, project_id, "start_compute", Some(branch_id), Some(&endpoint_id), now);
            created(json!({ "endpoint": endpoint, "operations": [operation] }))
        }
        (_, ["endpoints", endpoint_id, action @ ..]) => {
            endpoint_route(state, config, method, project_id, endpoint_id, action, body, now)
        }
        (_, ["branches", branch_id, rest @ ..]) => {
            if !state.projects[project_id].branches.contains_key(*branch_id) {
                return not_found(&format!("branch {branch_id}"));
            }
            branch_route(state, config, method, project_id, branch_id, rest, body, now)
        }
        _ => not_found("route"),
    }
}

fn connection_uri(state: &State, config: &FakeNeonConfig, project_id: &str, query: Option<&str>) -> Answer {
    let project = &state.projects[project_id];
    let (Some(database_name), Some(role_name)) = (query_value(query, "database_name"), query_value(query, "role_name"))
    else {
        return error(400, "database_name and role_name are required");
    };
    let branch_id = query_value(query, "branch_id").or_else(|| {
        project
            .branches
            .values()
            .find(|branch| branch.json["default"] == true)
            .and_then(|branch| branch.json["id"].as_str().map(str::to_owned))
    });
    let Some(branch) = branch_id.as_deref().and_then(|id| project.branches.get(id)) else {
        return not_found("branch");
    };
    let Some(role) = branch.roles.get(&role_name) else { return not_found(&format!("role {role_name}")) };
    if !branch.databases.contains_key(&database_name) {
        return not_found(&format!("database {database_name}"));
    }
    let endpoint = match query_value(query, "endpoint_id") {
        Some(endpoint_id) => project.endpoints.get(&endpoint_id),
        None => project
            .endpoints
            .values()
            .find(|endpoint| endpoint["branch_id"] == branch.json["id"] && endpoint["type"] == "read_write"),
    };
    let Some(endpoint) = endpoint else { return not_found("read_write endpoint of the branch") };
    let endpoint_id = endpoint["id"].as_str().unwrap_or_default();
    let mut host = endpoint["host"].as_str().unwrap_or_default().to_owned();
    if query_value(query, "pooled").as_deref() == Some("true") {
        host = host.replacen(endpoint_id, &format!("{endpoint_id}-pooler"), 1);
    }
    let other_branch = (branch.json["default"] != true).then(|| branch.json["name"].as_str().unwrap_or_default());
    ok(json!({ "uri": uri_for(config, &role_name, &role.password, &host, &database_name, other_branch) }))
}

/// A connection URI the fake hands out: to `host` (a made-up Neon host), or to the
/// real server of [`FakeNeonConfig::postgres`] when there is one (pooled and direct
/// URIs then both point at it: it has no PgBouncer in front). `branch` names the
/// branch when it is not the project's default: with
/// [`FakeNeonConfig::branch_databases`], its URIs name that branch's own database
/// on the real server ([`branch_database_name`](super::branch_database_name)).
fn uri_for(
    config: &FakeNeonConfig,
    role: &str,
    password: &str,
    host: &str,
    database: &str,
    branch: Option<&str>,
) -> String {
    match (&config.postgres, branch) {
        (Some(server), Some(branch)) if config.branch_databases => {
            super::real_server_uri(server, role, password, &super::branch_database_name(database, branch))
        }
        (Some(server), _) => super::real_server_uri(server, role, password, database),
        (None, _) => format!("postgresql://{role}:{password}@{host}/{database}?sslmode=require"),
    }
}

/// The host of the real server of [`FakeNeonConfig::postgres`], if any.
fn real_host(config: &FakeNeonConfig) -> Option<String> {
    config.postgres.as_ref().and_then(|server| server.host_str()).map(str::to_owned)
}

fn create_branch(
    state: &mut State,
    config: &FakeNeonConfig,
    project_id: &str,
    body: Option<&Value>,
    now: Instant,
) -> Answer {
    let number = next_id(state);
    let empty = json!({});
    let body = body.unwrap_or(&empty);
    let options = body.get("branch").unwrap_or(&empty);
    let project = &state.projects[project_id];
    let parent = match options.get("parent_id").and_then(Value::as_str) {
        Some(parent_id) if !parent_id.is_empty() => match project.branches.get(parent_id) {
            Some(parent) => parent,
            None => return not_found(&format!("parent branch {parent_id}")),
        },
        _ => match project.branches.values().find(|branch| branch.json["default"] == true) {
            Some(parent) => parent,
            None => return error(422, "the project has no default branch"),
        },
    };
    if options.get("parent_lsn").is_some() && options.get("parent_timestamp").is_some() {
        return error(422, "specify parent_lsn or parent_timestamp, not both");
    }
    let endpoints: Vec<Value> = body.get("endpoints").and_then(Value::as_array).cloned().unwrap_or_default();
    for endpoint in &endpoints {
        if let Err(answer) = check_compute_units(endpoint) {
            return answer;
        }
    }
    let branch_id = format!("br-fake-{number}");
    let name = options.get("name").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| branch_id.clone());
    if name.is_empty() || name.len() > 256 {
        return error(422, "branch name must be 1 to 256 characters");
    }
    if project.branches.values().any(|branch| branch.json["name"] == name.as_str()) {
        return error(409, format!("branch with name \"{name}\" already exists"));
    }
    let parent_json = parent.json.clone();
    // A child branch inherits its parent's roles and databases, as on Neon.
    let databases: std::collections::BTreeMap<String, Value> = parent
        .databases
        .iter()
        .map(|(key, database)| {
            let mut database = database.clone();
            database["branch_id"] = Value::from(branch_id.as_str());
            (key.clone(), database)
        })
        .collect();
    let roles: std::collections::BTreeMap<String, FakeRole> = parent
        .roles
        .iter()
        .map(|(key, role)| {
            let mut json = role.json.clone();
            json["branch_id"] = Value::from(branch_id.as_str());
            (key.clone(), FakeRole { json, password: role.password.clone() })
        })
        .collect();
    let branch = branch_json(&branch_id, project_id, &name, Some(&parent_json), false, Some(options));
    let role_list: Vec<Value> = roles.values().map(|role| role.json.clone()).collect();
    let database_list: Vec<Value> = databases.values().cloned().collect();
    let project_json = project.json.clone();
    // Neon's answer has a connection URI only when the branch has one role and one database.
    let only_pair = match (roles.iter().next(), databases.keys().next()) {
        (Some((role_name, role)), Some(database_name)) if roles.len() == 1 && databases.len() == 1 => {
            Some((role_name.clone(), role.password.clone(), database_name.clone()))
        }
        _ => None,
    };
    let mut created_endpoints = Vec::new();
    for endpoint in &endpoints {
        let endpoint_id = format!("ep-fake-{}", next_id(state));
        let endpoint_type = endpoint.get("type").and_then(Value::as_str).unwrap_or("read_write");
        created_endpoints.push(endpoint_json(&endpoint_id, &project_json, &branch_id, endpoint_type, Some(endpoint)));
    }
    if let Some(project) = state.projects.get_mut(project_id) {
        project.branches.insert(branch_id.clone(), FakeBranch { json: branch.clone(), databases, roles });
        project.branch_order.push(branch_id.clone());
        for endpoint in &created_endpoints {
            if let Some(id) = endpoint["id"].as_str() {
                project.endpoints.insert(id.to_owned(), endpoint.clone());
            }
        }
    }
    let mut operations = vec![add_operation(state, config, project_id, "create_branch", Some(&branch_id), None, now)];
    for endpoint in &created_endpoints {
        operations.push(add_operation(
            state,
            config,
            project_id,
            "start_compute",
            Some(&branch_id),
            endpoint["id"].as_str(),
            now,
        ));
    }
    let mut response = json!({
        "branch": branch,
        "endpoints": created_endpoints,
        "operations": operations,
        "roles": role_list,
        "databases": database_list,
    });
    let read_write = created_endpoints.iter().find(|endpoint| endpoint["type"] == "read_write");
    if let (Some(endpoint), Some((role_name, password, database_name))) = (read_write, only_pair) {
        let endpoint_id = endpoint["id"].as_str().unwrap_or_default();
        let host = endpoint["host"].as_str().unwrap_or_default().to_owned();
        let pooler_host = host.replacen(endpoint_id, &format!("{endpoint_id}-pooler"), 1);
        response["connection_uris"] = json!([{
            "connection_uri": uri_for(config, &role_name, &password, &host, &database_name, branch["name"].as_str()),
            "connection_parameters": {
                "database": database_name,
                "password": password,
                "role": role_name,
                "host": real_host(config).unwrap_or(host),
                "pooler_host": real_host(config).unwrap_or(pooler_host),
            },
        }]);
    }
    created(response)
}

#[allow(clippy::too_many_arguments)]
fn branch_route(
    state: &mut State,
    config: &FakeNeonConfig,
    method: &str,
    project_id: &str,
    branch_id: &str,
    rest: &[&str],
    body: Option<&Value>,
    now: Instant,
) -> Answer {
    let branch_ops =
        |state: &mut State, action: &str| add_operation(state, config, project_id, action, Some(branch_id), None, now);
    match (method, rest) {
        ("GET", []) => ok(
            json!({ "branch": state.projects[project_id].branches[branch_id].json, "annotation": {"object": {"type": "console/branch", "id": branch_id}, "value": {}} }),
        ),
        ("PATCH", []) => {
            let update = body.and_then(|body| body.get("branch")).cloned().unwrap_or(json!({}));
            if let Some(name) = update.get("name").and_then(Value::as_str) {
                let taken = state.projects[project_id]
                    .branches
                    .values()
                    .any(|branch| branch.json["name"] == name && branch.json["id"] != branch_id);
                if taken {
                    return error(409, format!("branch with name \"{name}\" already exists"));
                }
            }
            let Some(branch) =
                state.projects.get_mut(project_id).and_then(|project| project.branches.get_mut(branch_id))
            else {
                return not_found("branch");
            };
            for field in ["name", "protected", "expires_at"] {
                if let Some(value) = update.get(field) {
                    branch.json[field] = value.clone();
                }
            }
            branch.json["updated_at"] = Value::from(now_text());
            let json = branch.json.clone();
            ok(json!({ "branch": json, "operations": [] }))
        }
        ("DELETE", []) => {
            let project = &state.projects[project_id];
            if project.branches[branch_id].json["default"] == true {
                return error(422, "cannot delete the project's default branch");
            }
            if project.branches.values().any(|branch| branch.json["parent_id"] == branch_id) {
                return error(422, "cannot delete a branch that has child branches");
            }
            let Some(project) = state.projects.get_mut(project_id) else { return not_found("project") };
            let Some(branch) = project.branches.remove(branch_id) else { return not_found("branch") };
            project.branch_order.retain(|id| id != branch_id);
            let had_endpoints = project.endpoints.values().any(|endpoint| endpoint["branch_id"] == branch_id);
            project.endpoints.retain(|_, endpoint| endpoint["branch_id"] != branch_id);
            let mut operations = Vec::new();
            if had_endpoints {
                operations.push(branch_ops(state, "suspend_compute"));
            }
            operations.push(branch_ops(state, "delete_timeline"));
            ok(json!({ "branch": branch.json, "operations": operations }))
        }
        ("POST", ["restore"]) => {
            let Some(source) = body.and_then(|body| body.get("source_branch_id")).and_then(Value::as_str) else {
                return error(400, "source_branch_id is required");
            };
            if !state.projects[project_id].branches.contains_key(source) {
                return not_found(&format!("source branch {source}"));
            }
            let json = state.projects[project_id].branches[branch_id].json.clone();
            let operation = branch_ops(state, "create_timeline");
            ok(json!({ "branch": json, "operations": [operation] }))
        }
        ("POST", ["set_as_default"]) => {
            let Some(project) = state.projects.get_mut(project_id) else { return not_found("project") };
            for branch in project.branches.values_mut() {
                let is_target = branch.json["id"] == branch_id;
                branch.json["default"] = Value::Bool(is_target);
                branch.json["primary"] = Value::Bool(is_target);
            }
            let json = project.branches[branch_id].json.clone();
            ok(json!({ "branch": json, "operations": [] }))
        }
        ("GET", ["endpoints"]) => {
            let endpoints: Vec<Value> = state.projects[project_id]
                .endpoints
                .values()
                .filter(|endpoint| endpoint["branch_id"] == branch_id)
                .cloned()
                .collect();
            ok(json!({ "endpoints": endpoints }))
        }
        ("GET", ["databases"]) => {
            let databases: Vec<Value> =
                state.projects[project_id].branches[branch_id].databases.values().cloned().collect();
            ok(json!({ "databases": databases }))
        }
        ("POST", ["databases"]) => {
            let options = body.and_then(|body| body.get("database"));
            let (Some(name), Some(owner)) = (
                options.and_then(|options| options.get("name")).and_then(Value::as_str),
                options.and_then(|options| options.get("owner_name")).and_then(Value::as_str),
            ) else {
                return error(400, "database.name and database.owner_name are required");
            };
            let branch = &state.projects[project_id].branches[branch_id];
            if branch.databases.contains_key(name) {
                return error(409, format!("database \"{name}\" already exists"));
            }
            if !branch.roles.contains_key(owner) {
                return error(422, format!("role \"{owner}\" does not exist"));
            }
            let now_text = now_text();
            let database = json!({"id": next_id(state), "branch_id": branch_id, "name": name, "owner_name": owner, "created_at": now_text, "updated_at": now_text});
            if let Some(branch) =
                state.projects.get_mut(project_id).and_then(|project| project.branches.get_mut(branch_id))
            {
                branch.databases.insert(name.to_owned(), database.clone());
            }
            let operation = branch_ops(state, "apply_config");
            created(json!({ "database": database, "operations": [operation] }))
        }
        (_, ["databases", name]) => {
            let Some(database) = state.projects[project_id].branches[branch_id].databases.get(*name).cloned() else {
                return not_found(&format!("database {name}"));
            };
            match method {
                "GET" => ok(json!({ "database": database })),
                "PATCH" => {
                    let update = body.and_then(|body| body.get("database")).cloned().unwrap_or(json!({}));
                    let mut database = database;
                    for field in ["name", "owner_name"] {
                        if let Some(value) = update.get(field) {
                            database[field] = value.clone();
                        }
                    }
                    if let Some(branch) =
                        state.projects.get_mut(project_id).and_then(|project| project.branches.get_mut(branch_id))
                    {
                        branch.databases.remove(*name);
                        let key = database["name"].as_str().unwrap_or(name).to_owned();
                        branch.databases.insert(key, database.clone());
                    }
                    let operation = branch_ops(state, "apply_config");
                    ok(json!({ "database": database, "operations": [operation] }))
                }
                "DELETE" => {
                    if let Some(branch) =
                        state.projects.get_mut(project_id).and_then(|project| project.branches.get_mut(branch_id))
                    {
                        branch.databases.remove(*name);
                    }
                    let operation = branch_ops(state, "apply_config");
                    ok(json!({ "database": database, "operations": [operation] }))
                }
                _ => not_found("route"),
            }
        }
        ("GET", ["roles"]) => {
            let roles: Vec<Value> =
                state.projects[project_id].branches[branch_id].roles.values().map(|role| role.json.clone()).collect();
            ok(json!({ "roles": roles }))
        }
        ("POST", ["roles"]) => {
            let Some(name) =
                body.and_then(|body| body.get("role")).and_then(|role| role.get("name")).and_then(Value::as_str)
            else {
                return error(400, "role.name is required");
            };
            if name.is_empty() || name.len() > 63 {
                return error(422, "role name must be 1 to 63 bytes");
            }
            if state.projects[project_id].branches[branch_id].roles.contains_key(name) {
                return error(409, format!("role \"{name}\" already exists"));
            }
            let password = password_for(state);
            let now_text = now_text();
            let role = json!({"branch_id": branch_id, "name": name, "protected": false, "authentication_method": "password", "created_at": now_text, "updated_at": now_text});
            if let Some(branch) =
                state.projects.get_mut(project_id).and_then(|project| project.branches.get_mut(branch_id))
            {
                branch.roles.insert(name.to_owned(), FakeRole { json: role.clone(), password: password.clone() });
            }
            let mut shown = role;
            shown["password"] = Value::from(password);
            let operation = branch_ops(state, "apply_config");
            created(json!({ "role": shown, "operations": [operation] }))
        }
        (_, ["roles", name, action @ ..]) => {
            let store_passwords = state.projects[project_id].json["store_passwords"] != false;
            let Some(role) = state.projects[project_id].branches[branch_id].roles.get(*name) else {
                return not_found(&format!("role {name}"));
            };
            let role_json = role.json.clone();
            let password = role.password.clone();
            match (method, action) {
                ("GET", []) => ok(json!({ "role": role_json })),
                ("DELETE", []) => {
                    if state.projects[project_id].branches[branch_id]
                        .databases
                        .values()
                        .any(|database| database["owner_name"] == *name)
                    {
                        return error(422, format!("role \"{name}\" owns databases; drop or reassign them first"));
                    }
                    if let Some(branch) =
                        state.projects.get_mut(project_id).and_then(|project| project.branches.get_mut(branch_id))
                    {
                        branch.roles.remove(*name);
                    }
                    let operation = branch_ops(state, "apply_config");
                    ok(json!({ "role": role_json, "operations": [operation] }))
                }
                ("GET", ["reveal_password"]) => {
                    if !store_passwords {
                        return error(412, "the project does not store passwords");
                    }
                    ok(json!({ "password": password }))
                }
                ("POST", ["reset_password"]) => {
                    let password = password_for(state);
                    if let Some(role) = state
                        .projects
                        .get_mut(project_id)
                        .and_then(|project| project.branches.get_mut(branch_id))
                        .and_then(|branch| branch.roles.get_mut(*name))
                    {
                        role.password = password.clone();
                    }
                    let mut shown = role_json;
                    shown["password"] = Value::from(password);
                    let operation = branch_ops(state, "apply_config");
                    ok(json!({ "role": shown, "operations": [operation] }))
                }
                _ => not_found("route"),
            }
        }
        _ => not_found("route"),
    }
}

#[allow(clippy::too_many_arguments)]
fn endpoint_route(
    state: &mut State,
    config: &FakeNeonConfig,
    method: &str,
    project_id: &str,
    endpoint_id: &str,
    action: &[&str],
    body: Option<&Value>,
    now: Instant,
) -> Answer {
    let Some(endpoint) = state.projects[project_id].endpoints.get(endpoint_id).cloned() else {
        return not_found(&format!("endpoint {endpoint_id}"));
    };
    let branch_id = endpoint["branch_id"].as_str().unwrap_or_default().to_owned();
    let operation = |state: &mut State, action: &str| {
        add_operation(state, config, project_id, action, Some(&branch_id), Some(endpoint_id), now)
    };
    let store = |state: &mut State, endpoint: &Value| {
        if let Some(project) = state.projects.get_mut(project_id) {
            project.endpoints.insert(endpoint_id.to_owned(), endpoint.clone());
        }
    };
    match (method, action) {
        ("GET", []) => ok(json!({ "endpoint": endpoint })),
        ("PATCH", []) => {
            let update = body.and_then(|body| body.get("endpoint")).cloned().unwrap_or(json!({}));
            let mut merged = endpoint.clone();
            apply_endpoint_fields(&mut merged, &update);
            if let Err(answer) = check_compute_units(&merged) {
                return answer;
            }
            merged["updated_at"] = Value::from(now_text());
            store(state, &merged);
            let operations = vec![operation(state, "apply_config")];
            ok(json!({ "endpoint": merged, "operations": operations }))
        }
        ("DELETE", []) => {
            if let Some(project) = state.projects.get_mut(project_id) {
                project.endpoints.remove(endpoint_id);
            }
            let operations = vec![operation(state, "suspend_compute")];
            ok(json!({ "endpoint": endpoint, "operations": operations }))
        }
        ("POST", ["start"]) => {
            let mut updated = endpoint.clone();
            updated["current_state"] = Value::from("active");
            store(state, &updated);
            let operations = vec![operation(state, "start_compute")];
            ok(json!({ "endpoint": updated, "operations": operations }))
        }
        ("POST", ["suspend"]) => {
            let mut updated = endpoint.clone();
            updated["current_state"] = Value::from("idle");
            store(state, &updated);
            let operations = vec![operation(state, "suspend_compute")];
            ok(json!({ "endpoint": updated, "operations": operations }))
        }
        ("POST", ["restart"]) => {
            let mut updated = endpoint.clone();
            updated["current_state"] = Value::from("active");
            store(state, &updated);
            let operations = vec![operation(state, "suspend_compute"), operation(state, "start_compute")];
            ok(json!({ "endpoint": updated, "operations": operations }))
        }
        _ => not_found("route"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_escapes_and_plain_text() {
        assert_eq!(percent_decode("tenant%20db"), "tenant db");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
