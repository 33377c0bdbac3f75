//! Retries, Retry-After, 423 while operations run, timeouts, the deadline, the
//! rate limiter and waiting for operations.

use std::time::{Duration, Instant, SystemTime};

use strata_neon_api::fake::{FakeNeonConfig, Fault};
use strata_neon_api::models::{BranchCreateRequest, NewBranch, OperationOutcome};
use strata_neon_api::{NeonError, ProjectId, RateLimitPolicy, RetryPolicy};

use crate::support::{start, start_with};

fn branch(name: &str) -> BranchCreateRequest {
    BranchCreateRequest { branch: NewBranch { name: Some(name.into()), ..NewBranch::default() }, endpoints: vec![] }
}

fn statuses(fake: &strata_neon_api::fake::FakeNeon, method: &str, path_suffix: &str) -> Vec<u16> {
    fake.requests().iter().filter(|r| r.method == method && r.path.ends_with(path_suffix)).map(|r| r.status).collect()
}

#[tokio::test]
async fn rate_limited_503_and_423_are_retried_even_for_post() {
    let (fake, client) = start().await;
    let project_id = ProjectId::new(fake.seed_project("p"));
    fake.inject(Fault::rate_limited("0").on("POST", "/branches"));
    fake.inject(Fault::unavailable("0").on("POST", "/branches"));
    fake.inject(Fault::status(423).on("POST", "/branches"));
    let created = client.create_branch(&project_id, &branch("b")).await.unwrap();
    assert_eq!(created.branch.name, "b");
    assert_eq!(statuses(&fake, "POST", "/branches"), [429, 503, 423, 201]);
    assert_eq!(fake.branch_names(project_id.as_str()).len(), 2, "created exactly once");
}

#[tokio::test]
async fn retry_after_in_seconds_is_honoured() {
    let (fake, client) = start().await;
    fake.inject(Fault::rate_limited("1").on("GET", "/users/me"));
    let started = Instant::now();
    client.current_user().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(950), "waited only {:?}", started.elapsed());
    assert_eq!(statuses(&fake, "GET", "/users/me"), [429, 200]);
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_understood() {
    // A Retry-After cap far above the bound below, so that a date misread as
    // a delay would show however loaded the machine is.
    let (fake, client) = start_with(FakeNeonConfig::default(), |mut config| {
        config.retry.max_retry_after = Duration::from_secs(60);
        config
    })
    .await;
    let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(30));
    fake.inject(Fault::unavailable(past).on("GET", "/users/me"));
    let started = Instant::now();
    client.current_user().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "a date in the past means retry now");
    assert_eq!(statuses(&fake, "GET", "/users/me"), [503, 200]);
}

#[tokio::test]
async fn mutations_during_running_operations_get_423_and_are_retried_until_the_lock_clears() {
    let (fake, client) = start().await;
    let project_id = ProjectId::new(fake.seed_project("p"));
    let first = client.create_branch(&project_id, &branch("first")).await.unwrap();
    assert!(first.operations.iter().all(|operation| operation.outcome() == OperationOutcome::Pending));
    // No wait: the project is locked by the first branch's operations.
    let second = client.create_branch(&project_id, &branch("second")).await.unwrap();
    assert_eq!(second.branch.name, "second");
    let posts = statuses(&fake, "POST", "/branches");
    assert!(posts.contains(&423), "{posts:?}");
    assert_eq!(posts.last(), Some(&201));
}

#[tokio::test]
async fn other_5xx_are_retried_for_get_but_not_for_post() {
    let (fake, client) = start().await;
    let project_id = ProjectId::new(fake.seed_project("p"));
    fake.inject(Fault::status(500).on("GET", "/projects/").times(2));
    assert_eq!(client.get_project(&project_id).await.unwrap().id, project_id);

    fake.inject(Fault::status(500).on("POST", "/branches"));
    let error = client.create_branch(&project_id, &branch("b")).await.unwrap_err();
    assert_eq!(error.status(), Some(500));
    assert_eq!(statuses(&fake, "POST", "/branches"), [500], "a POST is not repeated after a 500");
}

#[tokio::test]
async fn deletes_are_idempotent_on_purpose_and_retried_after_a_502() {
    let (fake, client) = start().await;
    let project_id = ProjectId::new(fake.seed_project("p"));
    let created = client.create_branch(&project_id, &branch("b")).await.unwrap();
    client.wait_for_operations(&project_id, &created.operations).await.unwrap();
    fake.inject(Fault::html(502).on("DELETE", "/branches/"));
    assert!(client.delete_branch_if_exists(&project_id, &created.branch.id).await.unwrap());
    assert_eq!(statuses(&fake, "DELETE", created.branch.id.as_str()), [502, 200]);
}

#[tokio::test]
async fn an_html_502_from_a_proxy_still_gives_a_useful_error() {
    let (fake, client) = start_with(FakeNeonConfig::default(), |mut config| {
        config.retry.max_attempts = 3;
        config
    })
    .await;
    fake.inject(Fault::html(502).times(10));
    let error = client.current_user().await.unwrap_err();
    let text = error.to_string();
    assert_eq!(error.status(), Some(502));
    assert!(text.contains("502 Bad Gateway") && text.contains("after 3 attempts"), "{text}");
    assert!(!text.contains('<'), "tags are stripped: {text}");
    match error {
        NeonError::Api { request_id, attempts, .. } => {
            assert!(request_id.is_some());
            assert_eq!(attempts, 3);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn dropped_connections_are_retried_for_get_but_not_for_post() {
    let (fake, client) = start().await;
    let project_id = ProjectId::new(fake.seed_project("p"));
    fake.inject(Fault::drop_connection().on("GET", "/projects/"));
    assert_eq!(client.get_project(&project_id).await.unwrap().id, project_id);

    fake.inject(Fault::drop_connection().on("POST", "/branches"));
    let error = client.create_branch(&project_id, &branch("b")).await.unwrap_err();
    assert!(matches!(error, NeonError::Transport { attempts: 1, .. }), "{error:?}");
}

#[tokio::test]
async fn a_slow_answer_times_out_and_a_get_is_retried() {
    let (fake, client) = start_with(FakeNeonConfig::default(), |mut config| {
        config.request_timeout = Duration::from_millis(100);
        config
    })
    .await;
    fake.inject(Fault::delay(Duration::from_millis(400)).on("GET", "/users/me"));
    client.current_user().await.unwrap();
    assert_eq!(statuses(&fake, "GET", "/users/me").last(), Some(&200));

    fake.inject(Fault::delay(Duration::from_millis(400)).on("POST", "/api_keys"));
    let error = client.create_api_key("k").await.unwrap_err();
    assert!(matches!(error, NeonError::Timeout { attempts: 1, .. }), "{error:?}");
}

#[tokio::test]
async fn the_overall_deadline_bounds_retries() {
    let (fake, client) = start_with(FakeNeonConfig::default(), |mut config| {
        config.deadline = Duration::from_millis(200);
        config.retry = RetryPolicy {
            max_attempts: 1000,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(40),
            max_retry_after: Duration::from_secs(1),
        };
        config
    })
    .await;
    fake.inject(Fault::status(503).times(10_000));
    let started = Instant::now();
    let error = client.current_user().await.unwrap_err();
    // Without the deadline the 10,000 failures take 1000 attempts of 20-40 ms (20-40 s).
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    assert!(matches!(error.status(), Some(503)) || matches!(error, NeonError::Timeout { .. }), "{error:?}");
}

#[tokio::test]
async fn the_client_side_rate_limiter_spaces_bursts_on_one_route() {
    let (fake, client) = start_with(FakeNeonConfig::default(), |mut config| {
        config.rate_limit = RateLimitPolicy {
            global_limit: 700,
            global_window: Duration::from_secs(60),
            route_limit: 2,
            route_window: Duration::from_millis(150),
        };
        config
    })
    .await;
    let started = Instant::now();
    for _ in 0..5 {
        client.current_user().await.unwrap();
    }
    // Five requests at two per 150 ms need at least two full windows.
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    assert_eq!(fake.request_count(), 5);
}

#[tokio::test]
async fn waiting_fails_on_a_failed_operation() {
    let (fake, client) = start().await;
    let project_id = ProjectId::new(fake.seed_project("p"));
    fake.fail_next_operations(1);
    let created = client.create_branch(&project_id, &branch("b")).await.unwrap();
    let error = client.wait_for_operations(&project_id, &created.operations).await.unwrap_err();
    match error {
        NeonError::OperationFailed { status, action, error, .. } => {
            assert_eq!(status, "failed");
            assert_eq!(action, "create_branch");
            assert_eq!(error.as_deref(), Some("injected operation failure"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn waiting_keeps_polling_through_unknown_statuses_until_finished() {
    let config = FakeNeonConfig { running_status: "defragmenting".into(), ..FakeNeonConfig::default() };
    let (fake, client) = start_with(config, |config| config).await;
    let project_id = ProjectId::new(fake.seed_project("p"));
    let created = client.create_branch(&project_id, &branch("b")).await.unwrap();
    assert_eq!(created.operations[0].status.as_ref().map(|s| s.as_str()), Some("defragmenting"));
    client.wait_for_operations(&project_id, &created.operations).await.unwrap();
    let operation = client.get_operation(&project_id, &created.operations[0].id).await.unwrap();
    assert_eq!(operation.outcome(), OperationOutcome::Done);
}

#[tokio::test]
async fn waiting_gives_up_at_its_timeout_and_names_the_pending_operations() {
    let config = FakeNeonConfig { operation_duration: Duration::from_secs(3600), ..FakeNeonConfig::default() };
    let (fake, client) = start_with(config, |config| config).await;
    let project_id = ProjectId::new(fake.seed_project("p"));
    let created = client.create_branch(&project_id, &branch("b")).await.unwrap();
    let error = client
        .wait_for_operations_within(&project_id, &created.operations, Duration::from_millis(50))
        .await
        .unwrap_err();
    match &error {
        NeonError::OperationsTimeout { pending, .. } => assert_eq!(pending, &vec![created.operations[0].id.clone()]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(strata_core::StoreError::from(error), strata_core::StoreError::Timeout { .. }));
}

#[tokio::test]
async fn settings_updates_are_retried_after_a_500_but_renames_are_not() {
    let (fake, client) = start().await;
    let project_id = ProjectId::new(fake.seed_project("p"));
    fake.inject(Fault::status(500).on("PATCH", "/projects/"));
    let update = strata_neon_api::models::ProjectUpdate { history_retention_seconds: Some(3600), ..Default::default() };
    assert_eq!(
        client.update_project(&project_id, &update).await.unwrap().project.history_retention_seconds,
        Some(3600)
    );

    let main = client.default_branch(&project_id).await.unwrap().unwrap();
    fake.inject(Fault::status(500).on("PATCH", "/branches/"));
    let rename = strata_neon_api::models::BranchUpdate { name: Some("trunk".into()), protected: None };
    assert_eq!(client.update_branch(&project_id, &main.id, &rename).await.unwrap_err().status(), Some(500));
    assert_eq!(statuses(&fake, "PATCH", main.id.as_str()), [500]);
}
