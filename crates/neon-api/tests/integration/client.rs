//! Every public call of the client against the fake server.

use std::collections::BTreeMap;

use chrono::{Duration as ChronoDuration, Utc};
use futures::TryStreamExt;
use strata_neon_api::models::*;
use strata_neon_api::{ConnectionUriRequest, Ensured, NeonClient, NeonError, ProjectId};

use crate::support::{self, start, start_with};

/// Calls every public method of the client once or more and checks the answers.
/// The contract test runs it too, to validate every request body sent.
pub(crate) async fn exercise_everything(client: &NeonClient) {
    // The user and API keys.
    let user = client.current_user().await.unwrap();
    assert_eq!(user.id, "fake-user");
    let key = client.create_api_key("ci-key").await.unwrap();
    assert_eq!(key.name, "ci-key");
    assert!(client.list_api_keys().await.unwrap().iter().any(|listed| listed.id == key.id));
    let revoked = client.revoke_api_key(key.id).await.unwrap();
    assert_eq!(revoked.revoked, Some(true));
    assert!(!client.list_api_keys().await.unwrap().iter().any(|listed| listed.id == key.id));

    // A project with settings, quota and default endpoint settings.
    let new_project = NewProject {
        name: Some("trading".into()),
        region_id: Some("aws-us-east-2".into()),
        pg_version: Some(17),
        settings: Some(ProjectSettings {
            quota: Some(ProjectQuota {
                active_time_seconds: Some(0),
                compute_time_seconds: Some(0),
                written_data_bytes: Some(0),
                data_transfer_bytes: Some(0),
                logical_size_bytes: None,
            }),
            enable_logical_replication: Some(false),
            ..ProjectSettings::default()
        }),
        default_endpoint_settings: Some(DefaultEndpointSettings {
            autoscaling_limit_min_cu: Some(0.25),
            autoscaling_limit_max_cu: Some(4.0),
            suspend_timeout_seconds: Some(300),
            ..DefaultEndpointSettings::default()
        }),
        history_retention_seconds: Some(604_800),
        store_passwords: Some(true),
        branch: Some(NewProjectBranch {
            name: Some("main".into()),
            role_name: Some("owner".into()),
            database_name: Some("trading".into()),
        }),
        ..NewProject::default()
    };
    let created = client.create_project(&new_project).await.unwrap();
    let project_id = created.project.id.clone();
    assert_eq!(created.project.name, "trading");
    assert!(!created.operations.is_empty());
    assert_eq!(created.roles[0].name, "owner");
    assert!(created.roles[0].password.is_some());
    assert!(created.connection_uris[0].connection_uri.expose().starts_with("postgresql://owner:"));
    client.wait_for_operations(&project_id, &created.operations).await.unwrap();
    let main = created.branch.clone().unwrap();
    assert!(main.is_default());

    let project = client.get_project(&project_id).await.unwrap();
    assert_eq!(project.settings.unwrap().quota.unwrap().active_time_seconds, Some(0));
    let updated = client
        .update_project(
            &project_id,
            &ProjectUpdate {
                name: Some("trading-2".into()),
                settings: Some(ProjectSettings {
                    quota: Some(ProjectQuota { logical_size_bytes: Some(1 << 30), ..ProjectQuota::default() }),
                    ..ProjectSettings::default()
                }),
                default_endpoint_settings: Some(DefaultEndpointSettings {
                    autoscaling_limit_max_cu: Some(2.0),
                    ..DefaultEndpointSettings::default()
                }),
                history_retention_seconds: Some(86_400),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.project.name, "trading-2");
    assert!(client.list_projects().try_collect::<Vec<_>>().await.unwrap().iter().any(|p| p.id == project_id));

    // Branches: from the default head with a compute, at an LSN, at a timestamp.
    let evolution = client
        .create_branch(
            &project_id,
            &BranchCreateRequest {
                branch: NewBranch {
                    name: Some("evolution".into()),
                    parent_id: Some(main.id.clone()),
                    ..NewBranch::default()
                },
                endpoints: vec![NewBranchEndpoint {
                    endpoint_type: EndpointType::ReadWrite,
                    autoscaling_limit_min_cu: Some(0.25),
                    autoscaling_limit_max_cu: Some(1.0),
                    suspend_timeout_seconds: Some(60),
                    settings: None,
                }],
            },
        )
        .await
        .unwrap();
    assert_eq!(evolution.branch.parent_id.as_ref(), Some(&main.id));
    assert_eq!(evolution.endpoints.len(), 1);
    client.wait_for_operations(&project_id, &evolution.operations).await.unwrap();
    let at_lsn = client
        .create_branch(
            &project_id,
            &BranchCreateRequest {
                branch: NewBranch {
                    name: Some("at-lsn".into()),
                    parent_lsn: Some("0/1A2B3C4".into()),
                    ..NewBranch::default()
                },
                endpoints: vec![],
            },
        )
        .await
        .unwrap();
    assert_eq!(at_lsn.branch.parent_lsn.as_deref(), Some("0/1A2B3C4"));
    client.wait_for_operations(&project_id, &at_lsn.operations).await.unwrap();
    let at_time = client
        .create_branch(
            &project_id,
            &BranchCreateRequest {
                branch: NewBranch {
                    name: Some("at-time".into()),
                    parent_timestamp: Some(Utc::now() - ChronoDuration::hours(1)),
                    protected: Some(false),
                    ..NewBranch::default()
                },
                endpoints: vec![],
            },
        )
        .await
        .unwrap();
    assert!(at_time.branch.parent_timestamp.is_some());
    client.wait_for_operations(&project_id, &at_time.operations).await.unwrap();

    let branch_id = evolution.branch.id.clone();
    assert_eq!(client.get_branch(&project_id, &branch_id).await.unwrap().name, "evolution");
    let renamed = client
        .update_branch(
            &project_id,
            &at_time.branch.id,
            &BranchUpdate { name: Some("at-time-renamed".into()), protected: Some(true) },
        )
        .await
        .unwrap();
    assert_eq!(renamed.branch.name, "at-time-renamed");
    let restored = client
        .restore_branch(
            &project_id,
            &at_lsn.branch.id,
            &BranchRestore {
                source_branch_id: main.id.clone(),
                source_lsn: None,
                source_timestamp: Some(Utc::now() - ChronoDuration::minutes(5)),
                preserve_under_name: Some("at-lsn-before-restore".into()),
            },
        )
        .await
        .unwrap();
    client.wait_for_operations(&project_id, &restored.operations).await.unwrap();
    let branch_endpoints = client.list_branch_endpoints(&project_id, &branch_id).await.unwrap();
    assert_eq!(branch_endpoints.len(), 1);
    assert_eq!(branch_endpoints[0].autoscaling_limit_max_cu, Some(1.0));
    let names: Vec<String> = client.all_branches(&project_id).await.unwrap().into_iter().map(|b| b.name).collect();
    assert_eq!(names.len(), 4, "{names:?}");

    // Endpoints: a read-only compute with autoscaling, suspend timeout and pooler settings.
    let mut pooler = BTreeMap::new();
    pooler.insert("default_pool_size".to_owned(), "64".to_owned());
    let mut replica = NewEndpoint::new(branch_id.clone(), EndpointType::ReadOnly);
    replica.autoscaling_limit_min_cu = Some(0.5);
    replica.autoscaling_limit_max_cu = Some(2.0);
    replica.suspend_timeout_seconds = Some(-1);
    replica.settings = Some(EndpointSettings { pg_settings: None, pgbouncer_settings: Some(pooler) });
    replica.pooler_enabled = Some(true);
    replica.name = Some("replica".into());
    let endpoint = client.create_endpoint(&project_id, &replica).await.unwrap();
    client.wait_for_operations(&project_id, &endpoint.operations).await.unwrap();
    let endpoint_id = endpoint.endpoint.id.clone();
    assert_eq!(endpoint.endpoint.endpoint_type, Some(EndpointType::ReadOnly));
    assert_eq!(client.get_endpoint(&project_id, &endpoint_id).await.unwrap().suspend_timeout_seconds, Some(-1));
    assert!(client.list_endpoints(&project_id).await.unwrap().iter().any(|e| e.id == endpoint_id));
    let changed = client
        .update_endpoint(
            &project_id,
            &endpoint_id,
            &EndpointUpdate {
                autoscaling_limit_max_cu: Some(3.0),
                suspend_timeout_seconds: Some(600),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.endpoint.autoscaling_limit_max_cu, Some(3.0));
    client.wait_for_operations(&project_id, &changed.operations).await.unwrap();
    let suspended = client.suspend_endpoint(&project_id, &endpoint_id).await.unwrap();
    assert_eq!(suspended.endpoint.current_state, Some(EndpointState::Idle));
    client.wait_for_operations(&project_id, &suspended.operations).await.unwrap();
    let started = client.start_endpoint(&project_id, &endpoint_id).await.unwrap();
    assert_eq!(started.endpoint.current_state, Some(EndpointState::Active));
    client.wait_for_operations(&project_id, &started.operations).await.unwrap();
    let restarted = client.restart_endpoint(&project_id, &endpoint_id).await.unwrap();
    client.wait_for_operations(&project_id, &restarted.operations).await.unwrap();
    let operations = client.delete_endpoint(&project_id, &endpoint_id).await.unwrap();
    client.wait_for_operations(&project_id, &operations).await.unwrap();
    assert!(client.get_endpoint(&project_id, &endpoint_id).await.unwrap_err().is_not_found());

    // Roles and databases.
    let role = client.create_role(&project_id, &branch_id, "worker").await.unwrap();
    let password = role.role.password.clone().unwrap();
    client.wait_for_operations(&project_id, &role.operations).await.unwrap();
    assert!(client.list_roles(&project_id, &branch_id).await.unwrap().iter().any(|r| r.name == "worker"));
    assert_eq!(client.get_role(&project_id, &branch_id, "worker").await.unwrap().name, "worker");
    assert_eq!(client.reveal_role_password(&project_id, &branch_id, "worker").await.unwrap(), password);
    let reset = client.reset_role_password(&project_id, &branch_id, "worker").await.unwrap();
    client.wait_for_operations(&project_id, &reset.operations).await.unwrap();
    let new_password = reset.role.password.unwrap();
    assert_ne!(new_password, password);
    assert_eq!(client.reveal_role_password(&project_id, &branch_id, "worker").await.unwrap(), new_password);

    let database = client.create_database(&project_id, &branch_id, "strategies db", "worker").await.unwrap();
    client.wait_for_operations(&project_id, &database.operations).await.unwrap();
    assert_eq!(
        client.get_database(&project_id, &branch_id, "strategies db").await.unwrap().owner_name.as_deref(),
        Some("worker")
    );
    let renamed = client
        .update_database(
            &project_id,
            &branch_id,
            "strategies db",
            &DatabaseUpdate { name: Some("strategies".into()), owner_name: Some("owner".into()) },
        )
        .await
        .unwrap();
    client.wait_for_operations(&project_id, &renamed.operations).await.unwrap();
    let databases = client.list_databases(&project_id, &branch_id).await.unwrap();
    assert!(databases.iter().any(|d| d.name == "strategies" && d.owner_name.as_deref() == Some("owner")));

    // Connection URIs, pooled and direct.
    let request = ConnectionUriRequest {
        branch_id: Some(branch_id.clone()),
        endpoint_id: None,
        database_name: "strategies".into(),
        role_name: "worker".into(),
        pooled: true,
    };
    let pooled = client.connection_uri(&project_id, &request).await.unwrap();
    assert!(pooled.expose().contains("-pooler.") && pooled.expose().contains(new_password.expose()));
    let direct = client.connection_uri(&project_id, &ConnectionUriRequest { pooled: false, ..request }).await.unwrap();
    assert!(!direct.expose().contains("-pooler."));

    // Idempotent helpers: a second run finds everything in place.
    let ensure_request = BranchCreateRequest {
        branch: NewBranch { name: Some("ci".into()), ..NewBranch::default() },
        endpoints: vec![NewBranchEndpoint::read_write()],
    };
    let (ci, first) = client.ensure_branch(&project_id, &ensure_request).await.unwrap();
    let (ci_again, second) = client.ensure_branch(&project_id, &ensure_request).await.unwrap();
    assert_eq!((first, second, &ci.id), (Ensured::Created, Ensured::Existed, &ci_again.id));
    let (role_password, first) = client.ensure_role(&project_id, &ci.id, "ci_user").await.unwrap();
    assert!(role_password.is_some() && first == Ensured::Created);
    assert_eq!(client.ensure_role(&project_id, &ci.id, "ci_user").await.unwrap(), (None, Ensured::Existed));
    assert_eq!(client.ensure_database(&project_id, &ci.id, "ci_db", "ci_user").await.unwrap(), Ensured::Created);
    assert_eq!(client.ensure_database(&project_id, &ci.id, "ci_db", "ci_user").await.unwrap(), Ensured::Existed);
    assert!(client.delete_database_if_exists(&project_id, &ci.id, "ci_db").await.unwrap());
    assert!(!client.delete_database_if_exists(&project_id, &ci.id, "ci_db").await.unwrap());
    assert!(client.delete_role_if_exists(&project_id, &ci.id, "ci_user").await.unwrap());
    assert!(!client.delete_role_if_exists(&project_id, &ci.id, "ci_user").await.unwrap());
    assert!(client.delete_branch_if_exists(&project_id, &ci.id).await.unwrap());
    assert!(!client.delete_branch_if_exists(&project_id, &ci.id).await.unwrap());

    // Plain deletes.
    let operations = client.delete_database(&project_id, &branch_id, "strategies").await.unwrap();
    client.wait_for_operations(&project_id, &operations).await.unwrap();
    let operations = client.delete_role(&project_id, &branch_id, "worker").await.unwrap();
    client.wait_for_operations(&project_id, &operations).await.unwrap();
    let default = client.set_default_branch(&project_id, &branch_id).await.unwrap();
    assert!(default.branch.is_default());
    assert_eq!(client.default_branch(&project_id).await.unwrap().unwrap().id, branch_id);
    let operations = client.delete_branch(&project_id, &at_lsn.branch.id).await.unwrap();
    client.wait_for_operations(&project_id, &operations).await.unwrap();
    assert!(client.get_branch(&project_id, &at_lsn.branch.id).await.unwrap_err().is_not_found());

    // Operations: one by one and listed.
    let listed: Vec<Operation> = client.list_operations(&project_id).try_collect().await.unwrap();
    assert!(listed.len() >= 10, "{}", listed.len());
    assert!(listed.iter().all(|operation| operation.outcome() == OperationOutcome::Done));
    let one = client.get_operation(&project_id, &listed[0].id).await.unwrap();
    assert_eq!(one.id, listed[0].id);

    // Consumption.
    let consumption: Vec<ProjectConsumption> = client
        .consumption_history(&ConsumptionQuery {
            from: Utc::now() - ChronoDuration::days(1),
            to: Utc::now(),
            granularity: ConsumptionGranularity::Hourly,
            project_ids: vec![project_id.clone()],
            org_id: None,
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(consumption.len(), 1);
    assert_eq!(consumption[0].project_id, project_id);

    // Consumption in the invoiced metrics (v2), per project and per branch.
    let org_id = client.get_project(&project_id).await.unwrap().org_id.expect("the fake's projects have an org");
    let query = ConsumptionQueryV2 {
        org_id,
        from: Utc::now() - ChronoDuration::days(1),
        to: Utc::now() + ChronoDuration::days(1),
        granularity: ConsumptionGranularity::Daily,
        metrics: ConsumptionMetric::for_projects(),
        project_ids: vec![project_id.clone()],
        branch_ids: Vec::new(),
    };
    let per_project: Vec<ProjectConsumptionV2> = client.consumption_per_project(&query).try_collect().await.unwrap();
    assert_eq!(per_project.len(), 1);
    let totals = consumption_totals(&per_project[0].periods);
    assert_eq!(totals.len(), 8, "{totals:?}");
    assert!(totals["root_branch_bytes_month"] > 0, "{totals:?}");
    let per_branch: Vec<BranchConsumptionV2> = client
        .consumption_per_branch(&ConsumptionQueryV2 {
            metrics: ConsumptionMetric::for_branches(),
            branch_ids: vec![main.id.clone()],
            ..query.clone()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(per_branch.len(), 1);
    assert_eq!(per_branch[0].branch_id, main.id);
    assert!(consumption_totals(&per_branch[0].periods)["root_branch_bytes_month"] > 0);

    // Deleting the project.
    assert_eq!(client.delete_project(&project_id).await.unwrap().unwrap().id, project_id);
    assert!(client.get_project(&project_id).await.unwrap_err().is_not_found());
    assert!(!client.delete_project_if_exists(&project_id).await.unwrap());
}

#[tokio::test]
async fn every_public_call_works_against_the_fake() {
    let (_fake, client) = start().await;
    exercise_everything(&client).await;
}

#[tokio::test]
async fn project_pagination_stops_on_a_short_or_empty_page_although_the_cursor_stays() {
    for (projects, expected_list_requests) in [(0, 1), (4, 3), (5, 3)] {
        let (fake, client) = start_with(Default::default(), |mut config| {
            config.page_size = 2;
            config
        })
        .await;
        for index in 0..projects {
            fake.seed_project(&format!("p{index}"));
        }
        let listed: Vec<_> = client.list_projects().try_collect().await.unwrap();
        assert_eq!(listed.len(), projects);
        let requests = fake.requests().iter().filter(|request| request.path == "/projects").count();
        assert_eq!(requests, expected_list_requests, "{projects} projects");
    }
}

#[tokio::test]
async fn branch_pagination_follows_the_opaque_next_cursor() {
    let (fake, client) = start_with(Default::default(), |mut config| {
        config.page_size = 2;
        config
    })
    .await;
    let project_id = ProjectId::new(fake.seed_project("p"));
    for index in 0..4 {
        let request = BranchCreateRequest {
            branch: NewBranch { name: Some(format!("b{index}")), ..NewBranch::default() },
            endpoints: vec![],
        };
        let created = client.create_branch(&project_id, &request).await.unwrap();
        client.wait_for_operations(&project_id, &created.operations).await.unwrap();
    }
    let names: Vec<String> = client.all_branches(&project_id).await.unwrap().into_iter().map(|b| b.name).collect();
    assert_eq!(names, ["main", "b0", "b1", "b2", "b3"]);
    let pages = fake.requests().iter().filter(|r| r.method == "GET" && r.path.ends_with("/branches")).count();
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn operation_pagination_walks_every_page() {
    let (fake, client) = start_with(Default::default(), |mut config| {
        config.page_size = 3;
        config
    })
    .await;
    let project_id = ProjectId::new(fake.seed_project("p"));
    let main = client.default_branch(&project_id).await.unwrap().unwrap();
    for index in 0..7 {
        let created = client.create_role(&project_id, &main.id, &format!("r{index}")).await.unwrap();
        client.wait_for_operations(&project_id, &created.operations).await.unwrap();
    }
    let operations: Vec<_> = client.list_operations(&project_id).try_collect().await.unwrap();
    assert_eq!(operations.len(), 7);
    let mut ids: Vec<_> = operations.iter().map(|operation| operation.id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 7, "no operation is listed twice");
}

#[tokio::test]
async fn api_errors_keep_status_code_message_and_request_id() {
    let (fake, client) = start().await;
    let project_id = ProjectId::new(fake.seed_project("p"));
    let missing = client.get_branch(&project_id, &"br-missing".into()).await.unwrap_err();
    match &missing {
        NeonError::Api { status, code, message, request_id, route, .. } => {
            assert_eq!(*status, 404);
            assert_eq!(code, "");
            assert!(message.contains("br-missing"), "{message}");
            assert!(request_id.as_deref().is_some_and(|id| id.starts_with("fake-request-")));
            assert_eq!(*route, "/projects/{project_id}/branches/{branch_id}");
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert!(missing.to_string().contains("HTTP 404"));

    let main = client.default_branch(&project_id).await.unwrap().unwrap();
    let duplicate = client.create_role(&project_id, &main.id, "neondb_owner").await.unwrap_err();
    assert!(duplicate.is_conflict(), "{duplicate}");

    let mut bad = NewEndpoint::new(main.id.clone(), EndpointType::ReadOnly);
    bad.autoscaling_limit_min_cu = Some(4.0);
    bad.autoscaling_limit_max_cu = Some(1.0);
    let invalid = client.create_endpoint(&project_id, &bad).await.unwrap_err();
    assert_eq!(invalid.status(), Some(422));
    assert!(matches!(strata_core::StoreError::from(invalid), strata_core::StoreError::InvalidInput(_)));

    // The seeds' "-1 = no limit" quota is invalid: zero means unlimited.
    let negative = NewProject {
        settings: Some(ProjectSettings {
            quota: Some(ProjectQuota { active_time_seconds: Some(-1), ..ProjectQuota::default() }),
            ..ProjectSettings::default()
        }),
        ..NewProject::default()
    };
    assert_eq!(client.create_project(&negative).await.unwrap_err().status(), Some(422));
}

#[tokio::test]
async fn a_wrong_api_key_is_refused_with_401_and_not_retried() {
    let (fake, _client) = start().await;
    let config = strata_neon_api::NeonApiConfig::new(strata_neon_api::Secret::new("napi_wrong"))
        .with_base_url(fake.base_url())
        .fast_for_tests();
    let client = NeonClient::new(config).unwrap();
    let error = client.current_user().await.unwrap_err();
    assert_eq!(error.status(), Some(401));
    assert_eq!(fake.request_count(), 1);
    let _ = support::API_KEY;
}

#[tokio::test]
async fn a_bad_configuration_is_reported_without_the_key() {
    let config = strata_neon_api::NeonApiConfig::new(strata_neon_api::Secret::new("napi_abc\nxyz"))
        .with_base_url("http://x/api/v2");
    let error = NeonClient::new(config).unwrap_err();
    assert!(matches!(error, NeonError::Config(_)));
    assert!(!error.to_string().contains("napi_abc"));
    let config = strata_neon_api::NeonApiConfig::new(strata_neon_api::Secret::new("k")).with_base_url("not a url");
    assert!(matches!(NeonClient::new(config).unwrap_err(), NeonError::Config(_)));
}

#[tokio::test]
async fn the_small_conveniences_work() {
    let fake = strata_neon_api::fake::FakeNeon::start(Default::default()).await.unwrap();
    assert_eq!(fake.base_url(), format!("http://{}/api/v2", fake.address()));
    let client = NeonClient::with_key(fake.base_url(), strata_neon_api::Secret::new("any-key")).unwrap();
    assert_eq!(client.config().base_url, fake.base_url());
    assert_eq!(client.config().page_size, 100);
    let id = fake.seed_project("p");
    assert_eq!(fake.project_ids(), vec![id.clone()]);
    fake.set_operation_duration(std::time::Duration::from_secs(3600));
    let project_id = ProjectId::new(id.as_str());
    let main = client.default_branch(&project_id).await.unwrap().unwrap();
    let created = client.create_role(&project_id, &main.id, "r").await.unwrap();
    assert_eq!(created.operations[0].outcome(), OperationOutcome::Pending);
    let page = client.list_projects_page(None, 1).await.unwrap();
    assert_eq!(page.pagination.unwrap().cursor.as_deref(), Some(id.as_str()));
    let mut config = client.config().clone();
    config.retry = strata_neon_api::RetryPolicy::none();
    let no_retries = NeonClient::new(config).unwrap();
    fake.shutdown().await;
    let error = no_retries.current_user().await.unwrap_err();
    assert!(matches!(error, NeonError::Transport { attempts: 1, .. }), "{error:?}");
}

#[tokio::test]
async fn the_fakes_consumption_is_synthetic_deterministic_and_checked_like_the_apis() {
    let (fake, client) = start().await;
    let project_id = ProjectId::new(fake.seed_project("usage"));
    let main = client.default_branch(&project_id).await.unwrap().unwrap();
    let created = main.created_at.unwrap();
    let day = created.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let query = ConsumptionQueryV2 {
        org_id: strata_neon_api::fake::FAKE_ORG_ID.to_owned(),
        from: day,
        to: day + ChronoDuration::days(1),
        granularity: ConsumptionGranularity::Daily,
        metrics: ConsumptionMetric::for_branches(),
        project_ids: vec![project_id.clone()],
        branch_ids: Vec::new(),
    };
    // One daily timeframe; the default branch exists from its creation to the end of the day,
    // with its compute at 0.25 CU and 1 GiB of storage.
    let branches: Vec<BranchConsumptionV2> = client.consumption_per_branch(&query).try_collect().await.unwrap();
    assert_eq!(branches.len(), 1);
    let frame = &branches[0].periods[0].consumption;
    assert_eq!(frame.len(), 1);
    assert_eq!((frame[0].timeframe_start, frame[0].timeframe_end), (Some(query.from), Some(query.to)));
    let seconds = (query.to - created).num_seconds();
    let totals = consumption_totals(&branches[0].periods);
    assert_eq!(totals["compute_unit_seconds"], seconds / 4);
    let bytes = strata_neon_api::fake::FAKE_ROOT_BRANCH_BYTES as i64;
    assert_eq!(totals["root_branch_bytes_month"], bytes * seconds / strata_neon_api::fake::FAKE_MONTH_SECONDS as i64);
    assert_eq!(totals["child_branch_bytes_month"], 0);
    let metric_names: Vec<&str> = frame[0].metrics.iter().map(|metric| metric.metric_name.as_str()).collect();
    assert_eq!(metric_names, ConsumptionMetric::KNOWN[..6]);

    // What the API refuses, the fake refuses.
    let refused = |query: ConsumptionQueryV2| {
        let client = client.clone();
        async move { client.consumption_per_branch(&query).try_collect::<Vec<_>>().await.unwrap_err() }
    };
    let status = |error: NeonError| error.status();
    assert_eq!(status(refused(ConsumptionQueryV2 { org_id: "org-other".into(), ..query.clone() }).await), Some(404));
    let week = ConsumptionQueryV2 {
        granularity: ConsumptionGranularity::Hourly,
        from: day - ChronoDuration::days(8),
        ..query.clone()
    };
    assert_eq!(status(refused(week).await), Some(406));
    let per_project_only = ConsumptionQueryV2 { metrics: vec![ConsumptionMetric::ExtraBranchesMonth], ..query.clone() };
    assert_eq!(status(refused(per_project_only).await), Some(400));
    let backwards = ConsumptionQueryV2 { to: query.from, ..query.clone() };
    assert_eq!(status(refused(backwards).await), Some(400));
    let without_projects = ConsumptionQueryV2 { project_ids: Vec::new(), ..query.clone() };
    assert!(matches!(refused(without_projects).await, NeonError::InvalidArgument(_)));
}
