//! Contract tests against the OpenAPI spec: every request the client sends
//! validates against the spec (bodies strictly, query parameters by name),
//! every response of the fake validates too, the spec's examples and sampled
//! instances of every modeled schema deserialise into the models, the models
//! name only fields the spec has, and the enums know every value of the spec.

use std::collections::BTreeSet;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use strata_neon_api::models::*;
use strata_neon_api::provision::{EphemeralBranchRequest, NeonProvisioner, TenantPlan};
use strata_neon_api::{NeonClient, ProjectId};

use crate::schema::{Spec, load_spec, sample, validate};
use crate::support::start;

/// The spec operations the client covers (operationId, method, path template).
pub(crate) const COVERED: &[(&str, &str, &str)] = &[
    ("listProjects", "get", "/projects"),
    ("createProject", "post", "/projects"),
    ("getProject", "get", "/projects/{project_id}"),
    ("updateProject", "patch", "/projects/{project_id}"),
    ("deleteProject", "delete", "/projects/{project_id}"),
    ("listProjectOperations", "get", "/projects/{project_id}/operations"),
    ("getProjectOperation", "get", "/projects/{project_id}/operations/{operation_id}"),
    ("getConnectionURI", "get", "/projects/{project_id}/connection_uri"),
    ("createProjectBranch", "post", "/projects/{project_id}/branches"),
    ("listProjectBranches", "get", "/projects/{project_id}/branches"),
    ("getProjectBranch", "get", "/projects/{project_id}/branches/{branch_id}"),
    ("updateProjectBranch", "patch", "/projects/{project_id}/branches/{branch_id}"),
    ("deleteProjectBranch", "delete", "/projects/{project_id}/branches/{branch_id}"),
    ("restoreProjectBranch", "post", "/projects/{project_id}/branches/{branch_id}/restore"),
    ("setDefaultProjectBranch", "post", "/projects/{project_id}/branches/{branch_id}/set_as_default"),
    ("listProjectBranchEndpoints", "get", "/projects/{project_id}/branches/{branch_id}/endpoints"),
    ("listProjectBranchDatabases", "get", "/projects/{project_id}/branches/{branch_id}/databases"),
    ("createProjectBranchDatabase", "post", "/projects/{project_id}/branches/{branch_id}/databases"),
    ("getProjectBranchDatabase", "get", "/projects/{project_id}/branches/{branch_id}/databases/{database_name}"),
    ("updateProjectBranchDatabase", "patch", "/projects/{project_id}/branches/{branch_id}/databases/{database_name}"),
    ("deleteProjectBranchDatabase", "delete", "/projects/{project_id}/branches/{branch_id}/databases/{database_name}"),
    ("listProjectBranchRoles", "get", "/projects/{project_id}/branches/{branch_id}/roles"),
    ("createProjectBranchRole", "post", "/projects/{project_id}/branches/{branch_id}/roles"),
    ("getProjectBranchRole", "get", "/projects/{project_id}/branches/{branch_id}/roles/{role_name}"),
    ("deleteProjectBranchRole", "delete", "/projects/{project_id}/branches/{branch_id}/roles/{role_name}"),
    (
        "getProjectBranchRolePassword",
        "get",
        "/projects/{project_id}/branches/{branch_id}/roles/{role_name}/reveal_password",
    ),
    (
        "resetProjectBranchRolePassword",
        "post",
        "/projects/{project_id}/branches/{branch_id}/roles/{role_name}/reset_password",
    ),
    ("createProjectEndpoint", "post", "/projects/{project_id}/endpoints"),
    ("listProjectEndpoints", "get", "/projects/{project_id}/endpoints"),
    ("getProjectEndpoint", "get", "/projects/{project_id}/endpoints/{endpoint_id}"),
    ("updateProjectEndpoint", "patch", "/projects/{project_id}/endpoints/{endpoint_id}"),
    ("deleteProjectEndpoint", "delete", "/projects/{project_id}/endpoints/{endpoint_id}"),
    ("startProjectEndpoint", "post", "/projects/{project_id}/endpoints/{endpoint_id}/start"),
    ("suspendProjectEndpoint", "post", "/projects/{project_id}/endpoints/{endpoint_id}/suspend"),
    ("restartProjectEndpoint", "post", "/projects/{project_id}/endpoints/{endpoint_id}/restart"),
    ("getConsumptionHistoryPerProject", "get", "/consumption_history/projects"),
    ("getConsumptionHistoryPerProjectV2", "get", "/consumption_history/v2/projects"),
    ("getConsumptionHistoryPerBranchV2", "get", "/consumption_history/v2/branches"),
    ("listApiKeys", "get", "/api_keys"),
    ("createApiKey", "post", "/api_keys"),
    ("revokeApiKey", "delete", "/api_keys/{key_id}"),
    ("getCurrentUserInfo", "get", "/users/me"),
];

/// Runs everything the client and the provisioner can send, then checks each recorded request.
async fn record_all_traffic() -> (strata_neon_api::fake::FakeNeon, NeonClient) {
    let (fake, client) = start().await;
    crate::client::exercise_everything(&client).await;
    let project_id = ProjectId::new(fake.seed_project("shared"));
    let provisioner = NeonProvisioner::new(client.clone(), project_id).with_endpoint(NewBranchEndpoint {
        endpoint_type: EndpointType::ReadWrite,
        autoscaling_limit_min_cu: Some(0.25),
        autoscaling_limit_max_cu: Some(2.0),
        suspend_timeout_seconds: Some(300),
        settings: None,
    });
    provisioner
        .with_ephemeral_branch(EphemeralBranchRequest::new("contract"), |_| async {
            Ok::<_, strata_core::StoreError>(())
        })
        .await
        .unwrap();
    provisioner.ensure_tenant_database("t1", None).await.unwrap();
    NeonProvisioner::ensure_tenant_project(&client, "t2", &TenantPlan::Premium, Some("aws-us-east-2")).await.unwrap();
    NeonProvisioner::ensure_tenant_project(&client, "t2", &TenantPlan::Basic, None).await.unwrap();
    (fake, client)
}

fn parameter_names(spec: &Spec, path_item: &Value, operation: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for list in [path_item.get("parameters"), operation.get("parameters")].into_iter().flatten() {
        for parameter in list.as_array().into_iter().flatten() {
            let parameter = spec.resolve(parameter);
            if parameter["in"] == "query" {
                names.insert(parameter["name"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    names
}

#[tokio::test]
async fn every_request_the_client_sends_and_every_fake_answer_match_the_spec() {
    let Some(spec) = load_spec() else { return };
    let (fake, _client) = record_all_traffic().await;
    let mut errors = Vec::new();
    let mut hit: BTreeSet<String> = BTreeSet::new();
    for request in fake.requests() {
        let Some((template, operation)) = spec.operation(&request.method, &request.path) else {
            errors.push(format!("{} {} is not in the spec", request.method, request.path));
            continue;
        };
        let operation_id = operation["operationId"].as_str().unwrap_or_default().to_owned();
        hit.insert(operation_id.clone());
        if let Some(body) = &request.body {
            match operation.pointer("/requestBody/content/application~1json/schema") {
                Some(schema) => {
                    for error in validate(&spec, schema, body, true) {
                        errors.push(format!("{operation_id} request body: {error}"));
                    }
                }
                None => errors.push(format!("{operation_id} takes no body but got {body}")),
            }
        }
        let allowed = parameter_names(&spec, &spec.root["paths"][template], operation);
        let query = request.query.clone().unwrap_or_default();
        for (name, _) in url::form_urlencoded::parse(query.as_bytes()) {
            if !allowed.contains(name.as_ref()) {
                errors.push(format!("{operation_id}: query parameter {name:?} is not in the spec"));
            }
        }
        // The fake's successful answers follow the spec's response schemas (not strictly:
        // the real API adds fields too).
        if let (true, Some(response)) = ((200..300).contains(&request.status), &request.response) {
            let status = request.status.to_string();
            let declared = operation["responses"].get(&status).map(|declared| spec.resolve(declared));
            match declared.and_then(|declared| declared.pointer("/content/application~1json/schema")) {
                Some(schema) => {
                    for error in validate(&spec, schema, response, false) {
                        errors.push(format!("{operation_id} fake response {status}: {error}"));
                    }
                }
                None => {
                    errors.push(format!("{operation_id}: the fake answered {status}, which the spec does not declare"))
                }
            }
        }
    }
    assert!(errors.is_empty(), "{} contract violations:\n{}", errors.len(), errors.join("\n"));
    let missing: Vec<&str> = COVERED.iter().map(|(id, _, _)| *id).filter(|id| !hit.contains(*id)).collect();
    assert!(missing.is_empty(), "covered operations the tests never called: {missing:?}");
}

#[test]
fn every_covered_operation_exists_in_the_spec_with_its_method_and_path() {
    let Some(spec) = load_spec() else { return };
    for (operation_id, method, template) in COVERED {
        let operation = &spec.root["paths"][*template][*method];
        assert_eq!(operation["operationId"], *operation_id, "{method} {template}");
    }
}

#[test]
fn the_spec_request_examples_validate_against_their_own_schemas() {
    let Some(spec) = load_spec() else { return };
    let mut checked = 0;
    for (_, method, template) in COVERED {
        let operation = &spec.root["paths"][*template][*method];
        let Some(content) = operation.pointer("/requestBody/content/application~1json") else { continue };
        let schema = &content["schema"];
        let mut examples: Vec<&Value> = content.get("example").into_iter().collect();
        for example in content.get("examples").and_then(Value::as_object).into_iter().flat_map(|map| map.values()) {
            examples.push(&example["value"]);
        }
        for example in examples {
            let errors = validate(&spec, schema, example, false);
            assert!(errors.is_empty(), "{method} {template}: {errors:?}");
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} examples");
}

fn decode<T: DeserializeOwned>(value: &Value) -> Result<(), String> {
    serde_json::from_value::<T>(value.clone()).map(|_| ()).map_err(|error| error.to_string())
}

/// Decodes a response body into one model, or says why it could not.
type Decoder = fn(&Value) -> Result<(), String>;

/// How the client decodes the 2xx body of each covered operation.
fn decoder(operation_id: &str) -> Option<Decoder> {
    #[derive(serde::Deserialize)]
    struct ProjectBody {
        #[allow(dead_code)]
        project: Project,
    }
    #[derive(serde::Deserialize)]
    struct BranchBody {
        #[allow(dead_code)]
        branch: Branch,
    }
    #[derive(serde::Deserialize)]
    struct EndpointsBody {
        #[allow(dead_code)]
        endpoints: Vec<Endpoint>,
    }
    #[derive(serde::Deserialize)]
    struct EndpointBody {
        #[allow(dead_code)]
        endpoint: Endpoint,
    }
    #[derive(serde::Deserialize)]
    struct DatabasesBody {
        #[allow(dead_code)]
        databases: Vec<Database>,
    }
    #[derive(serde::Deserialize)]
    struct DatabaseBody {
        #[allow(dead_code)]
        database: Database,
    }
    #[derive(serde::Deserialize)]
    struct RolesBody {
        #[allow(dead_code)]
        roles: Vec<Role>,
    }
    #[derive(serde::Deserialize)]
    struct RoleBody {
        #[allow(dead_code)]
        role: Role,
    }
    #[derive(serde::Deserialize)]
    struct OperationBody {
        #[allow(dead_code)]
        operation: Operation,
    }
    #[derive(serde::Deserialize)]
    struct Uri {
        #[allow(dead_code)]
        uri: String,
    }
    #[derive(serde::Deserialize)]
    struct Password {
        #[allow(dead_code)]
        password: String,
    }
    Some(match operation_id {
        "listProjects" => decode::<ProjectsPage>,
        "createProject" => decode::<CreatedProject>,
        "getProject" | "deleteProject" => decode::<ProjectBody>,
        "updateProject" => decode::<strata_neon_api::ProjectWithOperations>,
        "listProjectOperations" => decode::<OperationsPage>,
        "getProjectOperation" => decode::<OperationBody>,
        "getConnectionURI" => decode::<Uri>,
        "createProjectBranch" => decode::<CreatedBranch>,
        "listProjectBranches" => decode::<BranchesPage>,
        "getProjectBranch" => decode::<BranchBody>,
        "updateProjectBranch" | "deleteProjectBranch" | "restoreProjectBranch" | "setDefaultProjectBranch" => {
            decode::<BranchOperations>
        }
        "listProjectBranchEndpoints" | "listProjectEndpoints" => decode::<EndpointsBody>,
        "getProjectEndpoint" => decode::<EndpointBody>,
        "createProjectEndpoint"
        | "updateProjectEndpoint"
        | "deleteProjectEndpoint"
        | "startProjectEndpoint"
        | "suspendProjectEndpoint"
        | "restartProjectEndpoint" => decode::<EndpointOperations>,
        "listProjectBranchDatabases" => decode::<DatabasesBody>,
        "getProjectBranchDatabase" => decode::<DatabaseBody>,
        "createProjectBranchDatabase" | "updateProjectBranchDatabase" | "deleteProjectBranchDatabase" => {
            decode::<DatabaseOperations>
        }
        "listProjectBranchRoles" => decode::<RolesBody>,
        "getProjectBranchRole" => decode::<RoleBody>,
        "createProjectBranchRole" | "deleteProjectBranchRole" | "resetProjectBranchRolePassword" => {
            decode::<RoleOperations>
        }
        "getProjectBranchRolePassword" => decode::<Password>,
        "getConsumptionHistoryPerProject" => decode::<ConsumptionPage>,
        "getConsumptionHistoryPerProjectV2" => decode::<ConsumptionPageV2>,
        "getConsumptionHistoryPerBranchV2" => decode::<BranchConsumptionPage>,
        "listApiKeys" => decode::<Vec<ApiKey>>,
        "createApiKey" => decode::<CreatedApiKey>,
        "revokeApiKey" => decode::<ApiKey>,
        "getCurrentUserInfo" => decode::<CurrentUser>,
        _ => return None,
    })
}

#[test]
fn every_spec_example_and_sampled_response_of_a_covered_operation_deserialises() {
    let Some(spec) = load_spec() else { return };
    let mut failures = Vec::new();
    let mut examples = 0;
    for (operation_id, method, template) in COVERED {
        let decode = decoder(operation_id).unwrap_or_else(|| panic!("no decoder for {operation_id}"));
        let operation = &spec.root["paths"][*template][*method];
        for (status, response) in operation["responses"].as_object().into_iter().flatten() {
            if !status.starts_with('2') {
                continue;
            }
            let response = spec.resolve(response);
            let Some(content) = response.pointer("/content/application~1json") else { continue };
            let schema = &content["schema"];
            let mut instances: Vec<(String, Value)> = vec![
                ("minimal sample".into(), sample(&spec, schema, false, 0)),
                ("full sample".into(), sample(&spec, schema, true, 0)),
            ];
            for example in [content.get("example"), spec.resolve(schema).get("example")].into_iter().flatten() {
                instances.push(("example".into(), example.clone()));
                examples += 1;
            }
            for (what, instance) in instances {
                if let Err(error) = decode(&instance) {
                    failures.push(format!("{operation_id} {status} {what}: {error}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(examples >= 5, "only {examples} examples found");
}

/// Checks a model against a component schema: its examples and samples deserialise, and every
/// field the model serialises is a property the spec names.
fn check_model<T: DeserializeOwned + Serialize>(spec: &Spec, schemas: &[&str], failures: &mut Vec<String>) {
    let mut properties: BTreeSet<String> = BTreeSet::new();
    for name in schemas {
        let schema = spec.schema(name);
        properties.extend(schema["properties"].as_object().into_iter().flatten().map(|(key, _)| key.clone()));
        let mut instances = vec![sample(spec, schema, false, 0), sample(spec, schema, true, 0)];
        instances.extend(schema.get("example").cloned());
        for instance in instances {
            match serde_json::from_value::<T>(instance.clone()) {
                Ok(model) => {
                    let emitted = serde_json::to_value(&model).unwrap();
                    for key in emitted.as_object().into_iter().flatten().map(|(key, _)| key) {
                        if !properties.contains(key)
                            && !schemas.iter().any(|other| spec.schema(other)["properties"].get(key).is_some())
                        {
                            failures.push(format!("{name}: the model has field {key:?}, which the spec does not"));
                        }
                    }
                }
                Err(error) => failures.push(format!("{name}: {error} in {instance}")),
            }
        }
    }
}

#[test]
fn every_modeled_schema_deserialises_and_models_name_only_spec_fields() {
    let Some(spec) = load_spec() else { return };
    let mut failures = Vec::new();
    check_model::<Project>(&spec, &["Project", "ProjectListItem"], &mut failures);
    check_model::<Branch>(&spec, &["Branch"], &mut failures);
    check_model::<Endpoint>(&spec, &["Endpoint"], &mut failures);
    check_model::<Operation>(&spec, &["Operation"], &mut failures);
    check_model::<Database>(&spec, &["Database"], &mut failures);
    check_model::<Role>(&spec, &["Role"], &mut failures);
    check_model::<ConnectionDetails>(&spec, &["ConnectionDetails"], &mut failures);
    check_model::<ConnectionParameters>(&spec, &["ConnectionParameters"], &mut failures);
    check_model::<ApiKey>(&spec, &["ApiKeysListResponseItem", "ApiKeyRevokeResponse"], &mut failures);
    check_model::<CreatedApiKey>(&spec, &["ApiKeyCreateResponse"], &mut failures);
    check_model::<CurrentUser>(&spec, &["CurrentUserInfoResponse"], &mut failures);
    check_model::<ProjectConsumption>(&spec, &["ConsumptionHistoryPerProject"], &mut failures);
    check_model::<ConsumptionPeriod>(&spec, &["ConsumptionHistoryPerPeriod"], &mut failures);
    check_model::<ConsumptionTimeframe>(&spec, &["ConsumptionHistoryPerTimeframe"], &mut failures);
    check_model::<ProjectConsumptionV2>(&spec, &["ConsumptionHistoryPerProjectV2"], &mut failures);
    check_model::<BranchConsumptionV2>(&spec, &["ConsumptionHistoryPerBranchV2"], &mut failures);
    check_model::<ConsumptionPeriodV2>(&spec, &["ConsumptionHistoryPerPeriodV2"], &mut failures);
    check_model::<ConsumptionTimeframeV2>(&spec, &["ConsumptionHistoryPerTimeframeV2"], &mut failures);
    check_model::<ConsumptionMetricValue>(&spec, &["ConsumptionMetricValue"], &mut failures);
    check_model::<Pagination>(&spec, &["Pagination"], &mut failures);
    check_model::<CursorPagination>(&spec, &["CursorPagination"], &mut failures);
    check_model::<ProjectQuota>(&spec, &["ProjectQuota"], &mut failures);
    check_model::<ProjectSettings>(&spec, &["ProjectSettingsData"], &mut failures);
    check_model::<DefaultEndpointSettings>(&spec, &["DefaultEndpointSettings"], &mut failures);
    check_model::<EndpointSettings>(&spec, &["EndpointSettingsData"], &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_enums_know_exactly_the_values_of_the_spec() {
    let Some(spec) = load_spec() else { return };
    let cases: &[(&str, &[&str])] = &[
        ("EndpointType", EndpointType::KNOWN),
        ("EndpointState", EndpointState::KNOWN),
        ("EndpointPoolerMode", EndpointPoolerMode::KNOWN),
        ("OperationStatus", OperationStatus::KNOWN),
        ("OperationAction", OperationAction::KNOWN),
        ("ConsumptionHistoryGranularity", ConsumptionGranularity::KNOWN),
    ];
    for (name, known) in cases {
        let in_spec: BTreeSet<&str> =
            spec.schema(name)["enum"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        let in_model: BTreeSet<&str> = known.iter().copied().collect();
        assert_eq!(in_spec, in_model, "{name} drifted from the spec");
    }
}
