//! No panic on any input (issue 16) for the Neon API models: every response
//! model, decoded with `serde_json::from_slice` as the client decodes a
//! body, gives a value or an error for random JSON, for the fake server's
//! real answers cut short, damaged byte by byte or with a node swapped for
//! a value of another type, and for JSON's own edge cases (deep nesting,
//! huge numbers, lone surrogates). A value that decodes also prints with
//! `Debug` and, where the model serializes, what it writes decodes again.
//!
//! The samples are what the fake server (`strata_neon_api::fake`) answered
//! to a short session of client calls, captured once per test binary.
//! Each property runs a bounded number of cases by default;
//! `STRATA_FUZZ_CASES=20000 cargo test -p strata-neon-api --test
//! no_panic_models` runs a long round.

use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use strata_neon_api::fake::{FakeNeon, FakeNeonConfig};
use strata_neon_api::models::*;
use strata_neon_api::{
    ApiKeyId, BranchId, ConnectionUriRequest, EndpointId, NeonApiConfig, NeonClient, OperationId, ProjectId,
    ProjectWithOperations, Secret,
};

/// `STRATA_FUZZ_CASES` when set, else `default` cases per property.
fn config(default: u32) -> Config {
    let cases = std::env::var("STRATA_FUZZ_CASES").ok().and_then(|text| text.parse().ok()).unwrap_or(default);
    Config { cases, failure_persistence: None, ..Config::default() }
}

// ------------------------------------------------------------- decoding

/// Decodes `bytes` as `T`; a value must print and, through [`round_trip`],
/// survive a second pass.
fn decode<T: DeserializeOwned + std::fmt::Debug>(bytes: &[u8]) -> Option<T> {
    let value = serde_json::from_slice::<T>(bytes).ok()?;
    let _ = format!("{value:?}");
    Some(value)
}

/// A decoded value serializes, and what it serializes to decodes again.
/// (Not to an equal value: without serde_json's `float_roundtrip` feature a
/// float may come back one unit in the last place away, as
/// `13233404328742165504` as `autoscaling_limit_min_cu` does.)
fn round_trip<T: DeserializeOwned + Serialize + std::fmt::Debug>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Some(value) = decode::<T>(bytes) {
        let text = serde_json::to_vec(&value).map_err(|error| TestCaseError::fail(error.to_string()))?;
        if let Err(error) = serde_json::from_slice::<T>(&text) {
            prop_assert!(false, "{} does not read back: {error}", String::from_utf8_lossy(&text));
        }
    }
    Ok(())
}

/// Decodes `bytes` as every response model (and the parts and lists the
/// client decodes inside its private envelopes): each gives a value or an error.
fn decode_as_every_model(bytes: &[u8]) -> Result<(), TestCaseError> {
    let _ = decode::<ProjectsPage>(bytes);
    let _ = decode::<BranchesPage>(bytes);
    let _ = decode::<OperationsPage>(bytes);
    let _ = decode::<ConsumptionPage>(bytes);
    let _ = decode::<ConsumptionPageV2>(bytes);
    let _ = decode::<BranchConsumptionPage>(bytes);
    let _ = decode::<CreatedProject>(bytes);
    let _ = decode::<CreatedBranch>(bytes);
    let _ = decode::<BranchOperations>(bytes);
    let _ = decode::<EndpointOperations>(bytes);
    let _ = decode::<DatabaseOperations>(bytes);
    let _ = decode::<RoleOperations>(bytes);
    let _ = decode::<ProjectWithOperations>(bytes);
    let _ = decode::<Vec<Endpoint>>(bytes);
    let _ = decode::<Vec<Operation>>(bytes);
    let _ = decode::<Vec<ApiKey>>(bytes);
    let _ = decode::<Option<Role>>(bytes);
    let _ = decode::<Value>(bytes);
    round_trip::<Project>(bytes)?;
    round_trip::<Branch>(bytes)?;
    round_trip::<Endpoint>(bytes)?;
    round_trip::<Operation>(bytes)?;
    round_trip::<Database>(bytes)?;
    round_trip::<Role>(bytes)?;
    round_trip::<ConnectionParameters>(bytes)?;
    round_trip::<ConnectionDetails>(bytes)?;
    round_trip::<ApiKey>(bytes)?;
    round_trip::<CreatedApiKey>(bytes)?;
    round_trip::<CurrentUser>(bytes)?;
    round_trip::<ProjectConsumption>(bytes)?;
    round_trip::<ConsumptionPeriod>(bytes)?;
    round_trip::<ConsumptionTimeframe>(bytes)?;
    round_trip::<ProjectConsumptionV2>(bytes)?;
    round_trip::<BranchConsumptionV2>(bytes)?;
    round_trip::<Pagination>(bytes)?;
    round_trip::<CursorPagination>(bytes)?;
    round_trip::<ProjectSettings>(bytes)?;
    round_trip::<ProjectQuota>(bytes)?;
    round_trip::<DefaultEndpointSettings>(bytes)?;
    round_trip::<EndpointSettings>(bytes)?;
    round_trip::<OperationStatus>(bytes)?;
    round_trip::<OperationAction>(bytes)?;
    round_trip::<EndpointState>(bytes)?;
    round_trip::<EndpointType>(bytes)?;
    round_trip::<BranchState>(bytes)?;
    round_trip::<ProjectId>(bytes)?;
    round_trip::<BranchId>(bytes)?;
    round_trip::<EndpointId>(bytes)?;
    round_trip::<OperationId>(bytes)?;
    round_trip::<ApiKeyId>(bytes)?;
    if let Some(status) = decode::<OperationStatus>(bytes) {
        let _ = status.outcome();
    }
    Ok(())
}

/// Decodes `value` (as its JSON text) as every model, and as the model of
/// its place in the API, which must then be a value or an error of decoding.
fn decode_value_as_every_model(value: &Value) -> Result<(), TestCaseError> {
    let bytes = serde_json::to_vec(value).map_err(|error| TestCaseError::fail(error.to_string()))?;
    decode_as_every_model(&bytes)
}

// -------------------------------------------------------------- samples

/// One answer of the fake server: `METHOD /path`, the status and the body.
type Sample = (String, u16, Value);

/// What the fake server answered to a short session of client calls: every
/// JSON body of every response, errors included, with its method and path.
fn samples() -> &'static [Sample] {
    static SAMPLES: OnceLock<Vec<Sample>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let samples = runtime.block_on(capture_samples());
        assert!(samples.len() >= 20, "the fake server answered only {} bodies", samples.len());
        samples
    })
}

/// Drives the fake server through the calls a provisioning run makes; the
/// results do not matter here, only the bodies the fake answered.
async fn capture_samples() -> Vec<Sample> {
    const KEY: &str = "napi_fuzzSAMPLESkey";
    let fake = FakeNeon::start(FakeNeonConfig {
        api_key: Some(KEY.to_owned()),
        operation_duration: std::time::Duration::from_millis(1),
        ..FakeNeonConfig::default()
    })
    .await
    .expect("the fake server starts");
    let client = NeonClient::new(NeonApiConfig::new(Secret::new(KEY)).with_base_url(fake.base_url()).fast_for_tests())
        .expect("a client");
    let _ = client.current_user().await;
    if let Ok(key) = client.create_api_key("fuzz").await {
        let _ = client.list_api_keys().await;
        let _ = client.revoke_api_key(key.id).await;
    }
    let new_project = NewProject {
        name: Some("fuzz".into()),
        settings: Some(ProjectSettings {
            quota: Some(ProjectQuota { logical_size_bytes: Some(1 << 30), ..ProjectQuota::default() }),
            ..ProjectSettings::default()
        }),
        ..NewProject::default()
    };
    if let Ok(created) = client.create_project(&new_project).await {
        let project_id = created.project.id.clone();
        let _ = client.wait_for_operations(&project_id, &created.operations).await;
        let _ = client.get_project(&project_id).await;
        let _ = client.list_projects_page(None, 10).await;
        let _ = client
            .update_project(&project_id, &ProjectUpdate { name: Some("fuzz-2".into()), ..ProjectUpdate::default() })
            .await;
        let request = BranchCreateRequest {
            branch: NewBranch { name: Some("fuzz-branch".into()), ..NewBranch::default() },
            endpoints: vec![NewBranchEndpoint::read_write()],
        };
        if let Ok(branch) = client.create_branch(&project_id, &request).await {
            let branch_id = branch.branch.id.clone();
            let _ = client.wait_for_operations(&project_id, &branch.operations).await;
            let _ = client.list_branches_page(&project_id, None, 10).await;
            let _ = client.get_branch(&project_id, &branch_id).await;
            let _ = client.list_branch_endpoints(&project_id, &branch_id).await;
            let _ = client.list_endpoints(&project_id).await;
            if let Some(endpoint) = branch.endpoints.first() {
                let _ = client.get_endpoint(&project_id, &endpoint.id).await;
            }
            if let Ok(role) = client.create_role(&project_id, &branch_id, "fuzz_role").await {
                let _ = client.wait_for_operations(&project_id, &role.operations).await;
            }
            if let Ok(database) = client.create_database(&project_id, &branch_id, "fuzz_db", "fuzz_role").await {
                let _ = client.wait_for_operations(&project_id, &database.operations).await;
            }
            let _ = client.list_roles(&project_id, &branch_id).await;
            let _ = client.list_databases(&project_id, &branch_id).await;
            let _ = client.get_role(&project_id, &branch_id, "fuzz_role").await;
            let _ = client.reveal_role_password(&project_id, &branch_id, "fuzz_role").await;
            let uri = ConnectionUriRequest {
                branch_id: Some(branch_id.clone()),
                endpoint_id: None,
                database_name: "fuzz_db".into(),
                role_name: "fuzz_role".into(),
                pooled: true,
            };
            let _ = client.connection_uri(&project_id, &uri).await;
            let _ = client.get_database(&project_id, &branch_id, "missing").await;
        }
        let _ = client.list_operations_page(&project_id, None, 10).await;
        if let Some(operation) = created.operations.first() {
            let _ = client.get_operation(&project_id, &operation.id).await;
        }
    }
    let _ = client.get_project(&ProjectId::from("no-such-project")).await;
    let samples = fake
        .requests()
        .into_iter()
        .filter_map(|request| Some((format!("{} {}", request.method, request.path), request.status, request.response?)))
        .collect();
    fake.shutdown().await;
    samples
}

// --------------------------------------------------------------- inputs

/// Field names of the models, so random objects hit real fields.
fn key() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        4 => prop::sample::select(vec![
            "id", "name", "project_id", "branch_id", "endpoint_id", "parent_id", "project", "branch", "branches",
            "endpoint", "endpoints", "operations", "operation", "roles", "role", "databases", "database", "projects",
            "pagination", "cursor", "next", "connection_uris", "connection_uri", "connection_parameters", "password",
            "key", "uri", "status", "action", "type", "current_state", "created_at", "updated_at", "settings", "quota",
            "periods", "consumption", "period_start", "timeframe_start", "active_time_seconds", "autoscaling_limit_min_cu",
            "suspend_timeout_seconds", "default", "protected", "revoked", "code", "message", "request_id", "owner_name",
            "pg_version", "region_id", "host", "logical_size", "written_data_bytes", "provisioner", "pooler_mode",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ]
}

/// Leaves of every JSON type, with the values a drifting API sends.
fn leaf() -> impl Strategy<Value = Value> + Clone {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![i64::MIN, -1, 0, 1, i64::from(i32::MAX) + 1, i64::MAX]).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |n| serde_json::Number::from_f64(n).map(Value::Number)),
        "\\PC{0,24}".prop_map(Value::String),
        prop::sample::select(vec![
            "2024-01-02T03:04:05Z",
            "2024-01-02T03:04:05.123456789012+25:00",
            "0000-01-01T00:00:00Z",
            "+275760-09-13T00:00:00Z",
            "2016-12-31T23:59:60Z",
            "not a date",
            "finished",
            "running",
            "read_write",
            "teleporting",
            "br-aged-salad-637688",
            "postgresql://user:secret@host/db",
            "",
        ])
        .prop_map(|text| Value::String(text.to_owned())),
    ]
}

/// Random JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> + Clone {
    leaf().prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// The JSON pointers of every node of `value`.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                pointers(item, format!("{at}/{index}"), out);
            }
        }
        Value::Object(entries) => {
            for (name, item) in entries {
                pointers(item, format!("{at}/{}", name.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// One way to damage a sample.
#[derive(Debug, Clone)]
enum Damage {
    /// Put another value at a node (another type, usually).
    Replace(prop::sample::Index, Value),
    /// Remove a node from its object or array.
    Remove(prop::sample::Index),
    /// Wrap a node in an array, as a field that became a list.
    Wrap(prop::sample::Index),
}

fn damage() -> impl Strategy<Value = Damage> + Clone {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), json_value()).prop_map(|(at, value)| Damage::Replace(at, value)),
        2 => any::<prop::sample::Index>().prop_map(Damage::Remove),
        1 => any::<prop::sample::Index>().prop_map(Damage::Wrap),
    ]
}

fn apply(value: &mut Value, damage: &Damage) {
    let mut all = Vec::new();
    pointers(value, String::new(), &mut all);
    let pick = |at: &prop::sample::Index| all[at.index(all.len())].clone();
    match damage {
        Damage::Replace(at, replacement) => {
            if let Some(node) = value.pointer_mut(&pick(at)) {
                *node = replacement.clone();
            }
        }
        Damage::Wrap(at) => {
            if let Some(node) = value.pointer_mut(&pick(at)) {
                *node = Value::Array(vec![node.take()]);
            }
        }
        Damage::Remove(at) => {
            let pointer = pick(at);
            let Some((parent, last)) = pointer.rsplit_once('/') else { return };
            match value.pointer_mut(parent) {
                Some(Value::Object(entries)) => {
                    entries.remove(&last.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(items)) => {
                    if let Ok(index) = last.parse::<usize>()
                        && index < items.len()
                    {
                        items.remove(index);
                    }
                }
                _ => {}
            }
        }
    }
}

/// A captured sample, by index.
fn sample() -> impl Strategy<Value = Value> + Clone {
    any::<prop::sample::Index>().prop_map(|at| {
        let samples = samples();
        samples[at.index(samples.len())].2.clone()
    })
}

// ------------------------------------------------------------ properties

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn random_bytes_decode_or_fail(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_as_every_model(&bytes)?;
    }

    #[test]
    fn random_json_decodes_or_fails(value in json_value()) {
        decode_value_as_every_model(&value)?;
    }

    #[test]
    fn samples_with_a_node_of_another_type_decode_or_fail(mut value in sample(), damages in prop::collection::vec(damage(), 1..4)) {
        for damage in &damages {
            apply(&mut value, damage);
        }
        decode_value_as_every_model(&value)?;
    }

    #[test]
    fn samples_cut_short_decode_or_fail(value in sample(), at in any::<prop::sample::Index>(), pretty in any::<bool>()) {
        let text = if pretty { serde_json::to_vec_pretty(&value) } else { serde_json::to_vec(&value) }
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        let cut = &text[..at.index(text.len() + 1)];
        decode_as_every_model(cut)?;
    }

    #[test]
    fn samples_damaged_byte_by_byte_decode_or_fail(
        value in sample(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = serde_json::to_vec(&value).map_err(|error| TestCaseError::fail(error.to_string()))?;
        for (at, byte, kind) in edits {
            if bytes.is_empty() {
                break;
            }
            let at = at.index(bytes.len());
            match kind {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        decode_as_every_model(&bytes)?;
    }
}

/// A sample decodes as the model the client reads it as: by method and
/// path for answers, and the API's `{code, message}` for errors. (The client
/// reads some answers through private envelopes such as `{"endpoints": [...]}`;
/// their content is checked here.)
fn decodes_as_its_model(place: &str, status: u16, value: &Value) -> Result<(), String> {
    fn model<T: DeserializeOwned>(value: &Value) -> Result<(), String> {
        T::deserialize(value).map(drop).map_err(|error| error.to_string())
    }
    fn inside<T: DeserializeOwned>(value: &Value, key: &str) -> Result<(), String> {
        model::<T>(value.get(key).ok_or_else(|| format!("no {key:?}"))?)
    }
    if status >= 400 {
        return value.get("message").and_then(Value::as_str).map(drop).ok_or_else(|| "no message".to_owned());
    }
    let (method, path) = place.split_once(' ').ok_or("no method")?;
    let segments: Vec<&str> = path.split('/').filter(|segment| !segment.is_empty()).collect();
    match (method, segments.as_slice()) {
        ("GET", ["users", "me"]) => model::<CurrentUser>(value),
        ("POST", ["api_keys"]) => model::<CreatedApiKey>(value),
        ("GET", ["api_keys"]) => model::<Vec<ApiKey>>(value),
        ("DELETE", ["api_keys", _]) => model::<ApiKey>(value),
        ("POST", ["projects"]) => model::<CreatedProject>(value),
        ("GET", ["projects"]) => model::<ProjectsPage>(value),
        ("GET" | "PATCH", ["projects", _]) => model::<ProjectWithOperations>(value),
        ("POST", ["projects", _, "branches"]) => model::<CreatedBranch>(value),
        ("GET", ["projects", _, "branches"]) => model::<BranchesPage>(value),
        ("GET", ["projects", _, "branches", _]) => inside::<Branch>(value, "branch"),
        ("GET", ["projects", _, "endpoints"] | ["projects", _, "branches", _, "endpoints"]) => {
            inside::<Vec<Endpoint>>(value, "endpoints")
        }
        ("GET", ["projects", _, "endpoints", _]) => inside::<Endpoint>(value, "endpoint"),
        ("POST", ["projects", _, "branches", _, "roles"]) => model::<RoleOperations>(value),
        ("POST", ["projects", _, "branches", _, "databases"]) => model::<DatabaseOperations>(value),
        ("GET", ["projects", _, "branches", _, "roles"]) => inside::<Vec<Role>>(value, "roles"),
        ("GET", ["projects", _, "branches", _, "databases"]) => inside::<Vec<Database>>(value, "databases"),
        ("GET", ["projects", _, "branches", _, "roles", _]) => inside::<Role>(value, "role"),
        ("GET", ["projects", _, "operations"]) => model::<OperationsPage>(value),
        ("GET", ["projects", _, "operations", _]) => inside::<Operation>(value, "operation"),
        _ => Ok(()),
    }
}

// --------------------------------------------------------- JSON's edges

/// Every captured sample decodes as the model of its place, unharmed, and
/// nested 10,000 deep, numbers past i64 and f64, lone surrogates, duplicate
/// keys and a body of 1 MiB give a value or an error.
#[test]
fn samples_and_json_edge_cases_decode_or_fail() {
    for (place, status, value) in samples() {
        if let Err(failure) = decode_value_as_every_model(value) {
            panic!("{place}: {failure}");
        }
        if let Err(message) = decodes_as_its_model(place, *status, value) {
            panic!("{place} ({status}) does not decode as its model: {message}\n{value}");
        }
    }
    let deep_array = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{}null{}", "{\"project\":".repeat(10_000), "}".repeat(10_000));
    let edge_cases: Vec<Vec<u8>> = vec![
        deep_array.into_bytes(),
        deep_object.into_bytes(),
        b"{\"projects\":[{\"id\":\"p\",\"logical_size\":18446744073709551616}]}".to_vec(),
        b"{\"project\":{\"id\":\"p\",\"pg_version\":1e400}}".to_vec(),
        b"{\"project\":{\"id\":\"p\",\"pg_version\":-0}}".to_vec(),
        b"{\"id\":\"\\ud800\",\"name\":\"\\udc00\\ud800\"}".to_vec(),
        b"{\"id\":\"a\",\"id\":\"b\",\"id\":7}".to_vec(),
        b"{\"id\":\"a\"} trailing".to_vec(),
        b"\xef\xbb\xbf{\"id\":\"a\"}".to_vec(),
        b"{\"id\":\"a\",\"created_at\":\"+275760-09-13T00:00:00Z\"}".to_vec(),
        b"{\"id\":\"a\",\"created_at\":\"2016-12-31T23:59:60.999999999Z\"}".to_vec(),
        format!("{{\"id\":\"{}\"}}", "x".repeat(1 << 20)).into_bytes(),
        b"".to_vec(),
        b"null".to_vec(),
        b"<html><body>502 Bad Gateway</body></html>".to_vec(),
    ];
    for bytes in &edge_cases {
        if let Err(failure) = decode_as_every_model(bytes) {
            panic!("{:?}: {failure}", String::from_utf8_lossy(&bytes[..bytes.len().min(80)]));
        }
    }
}
