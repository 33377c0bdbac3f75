//! The Provisioner port over the fake: idempotent branch, database and role
//! provisioning, ephemeral branches with guaranteed cleanup, evolution
//! branches and tenants.

use std::sync::Arc;
use std::time::Duration;

use strata_core::ports::provision::{BranchPoint, BranchSpec, Pooling};
use strata_core::{Provisioner, StoreError, Timestamp};
use strata_neon_api::Ensured;
use strata_neon_api::provision::{EphemeralBranchRequest, NeonProvisioner, TenantPlan};
use strata_neon_api::{NeonClient, ProjectId};

use crate::support::start;

async fn provisioner() -> (strata_neon_api::fake::FakeNeon, NeonClient, NeonProvisioner) {
    let (fake, client) = start().await;
    let project_id = ProjectId::new(fake.seed_project("shared"));
    let provisioner = NeonProvisioner::new(client.clone(), project_id);
    (fake, client, provisioner)
}

fn spec(name: &str, at: BranchPoint) -> BranchSpec {
    BranchSpec { name: name.into(), parent: None, at }
}

#[tokio::test]
async fn the_port_is_idempotent_through_a_dyn_provisioner() {
    let (fake, _client, provisioner) = provisioner().await;
    let project = provisioner.project_id().to_string();
    let port: Arc<dyn Provisioner> = Arc::new(provisioner);

    let first = port.ensure_branch(spec("feature", BranchPoint::Head)).await.unwrap();
    let again = port.ensure_branch(spec("feature", BranchPoint::Head)).await.unwrap();
    assert_eq!(first, again);
    let child =
        BranchSpec { name: "child".into(), parent: Some("feature".into()), at: BranchPoint::Lsn("0/16B3748".into()) };
    port.ensure_branch(child).await.unwrap();
    let at = Timestamp::parse("2026-01-01").unwrap();
    port.ensure_branch(spec("yesterday", BranchPoint::Timestamp(at))).await.unwrap();
    let missing_parent = BranchSpec { name: "x".into(), parent: Some("nope".into()), at: BranchPoint::Head };
    assert!(matches!(port.ensure_branch(missing_parent).await.unwrap_err(), StoreError::NotFound { .. }));

    let password = port.ensure_role("feature", "app").await.unwrap().unwrap();
    let revealed = port.ensure_role("feature", "app").await.unwrap().unwrap();
    assert_eq!(password, revealed, "an existing role's password is revealed");
    port.ensure_database("feature", "app_db", "app").await.unwrap();
    port.ensure_database("feature", "app_db", "app").await.unwrap();
    let pooled = port.connection_uri("feature", "app_db", "app", Pooling::Pooled).await.unwrap();
    let direct = port.connection_uri("feature", "app_db", "app", Pooling::Direct).await.unwrap();
    assert!(pooled.expose().contains("-pooler.") && !direct.expose().contains("-pooler."));
    assert!(pooled.expose().contains(password.expose()));

    assert!(port.drop_database("feature", "app_db").await.unwrap());
    assert!(!port.drop_database("feature", "app_db").await.unwrap());
    assert!(!port.drop_database("no-such-branch", "app_db").await.unwrap());
    assert!(matches!(
        port.ensure_database("no-such-branch", "d", "app").await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert!(port.delete_branch("child").await.unwrap());
    assert!(port.delete_branch("feature").await.unwrap());
    assert!(!port.delete_branch("feature").await.unwrap());
    assert!(!fake.branch_names(&project).contains(&"feature".to_owned()));
}

#[tokio::test]
async fn an_ephemeral_branch_is_deleted_after_success_failure_and_panic() {
    let (fake, _client, provisioner) = provisioner().await;
    let project = provisioner.project_id().to_string();

    let length = provisioner
        .with_ephemeral_branch(EphemeralBranchRequest::new("ok-run"), |info| async move {
            assert!(info.connection_uri.expose().starts_with("postgresql://strata:"));
            assert!(info.connection_uri.expose().contains("-pooler."));
            Ok::<_, StoreError>(info.branch.name.len())
        })
        .await
        .unwrap();
    assert_eq!(length, "ok-run".len());
    assert_eq!(fake.branch_names(&project), ["main"]);

    let mut direct = EphemeralBranchRequest::new("failing-run");
    direct.pooling = Pooling::Direct;
    let error = provisioner
        .with_ephemeral_branch(direct, |info| async move {
            assert!(!info.connection_uri.expose().contains("-pooler."));
            Err::<(), _>(StoreError::Conflict { what: "the tests failed".into() })
        })
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }));
    assert_eq!(fake.branch_names(&project), ["main"]);

    let task_provisioner = provisioner.clone();
    let panicked = tokio::spawn(async move {
        task_provisioner
            .with_ephemeral_branch(EphemeralBranchRequest::new("panicking-run"), |_info| async move {
                if true {
                    panic!("the caller blew up");
                }
                Ok::<(), StoreError>(())
            })
            .await
    })
    .await;
    assert!(panicked.unwrap_err().is_panic());
    assert_eq!(fake.branch_names(&project), ["main"]);
}

#[tokio::test]
async fn a_dropped_ephemeral_guard_deletes_its_branch_in_the_background() {
    let (fake, _client, provisioner) = provisioner().await;
    let project = provisioner.project_id().to_string();
    let guard = provisioner.create_ephemeral_branch(&EphemeralBranchRequest::new("forgotten")).await.unwrap();
    assert_eq!(guard.info().branch.name, "forgotten");
    drop(guard);
    for _ in 0..200 {
        if fake.branch_names(&project) == ["main"] {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the branch was not deleted: {:?}", fake.branch_names(&project));
}

#[tokio::test]
async fn a_half_provisioned_ephemeral_branch_is_removed() {
    let (fake, _client, provisioner) = provisioner().await;
    let project = provisioner.project_id().to_string();
    let mut request = EphemeralBranchRequest::new("half");
    request.role = String::new(); // The fake refuses an empty role name with 422.
    let error = provisioner.create_ephemeral_branch(&request).await.unwrap_err();
    assert!(matches!(error, StoreError::InvalidInput(_)), "{error:?}");
    assert_eq!(fake.branch_names(&project), ["main"]);
}

#[tokio::test]
async fn each_evolution_run_gets_its_own_named_branch() {
    let (fake, _client, provisioner) = provisioner().await;
    let project = provisioner.project_id().to_string();
    let branch = provisioner.ensure_evolution_branch("Run 7", None).await.unwrap();
    assert_eq!(branch.name, "evolution-run-7");
    assert_eq!(provisioner.ensure_evolution_branch("Run 7", None).await.unwrap(), branch);
    assert!(fake.branch_names(&project).contains(&"evolution-run-7".to_owned()));
    assert!(provisioner.delete_evolution_branch("Run 7").await.unwrap());
    assert!(!provisioner.delete_evolution_branch("Run 7").await.unwrap());
}

#[tokio::test]
async fn each_worker_of_a_run_gets_a_child_branch_of_the_runs_branch() {
    let (_fake, client, provisioner) = provisioner().await;
    let worker = provisioner.ensure_worker_branch("Run 8", "host-1").await.unwrap();
    assert_eq!(worker.name, "evolution-run-8/worker-host-1");
    assert_eq!(provisioner.ensure_worker_branch("Run 8", "host-1").await.unwrap(), worker);
    let branches = client.all_branches(provisioner.project_id()).await.unwrap();
    let run = branches.iter().find(|branch| branch.name == "evolution-run-8").unwrap();
    let child = branches.iter().find(|branch| branch.name == worker.name).unwrap();
    assert_eq!(child.parent_id.as_ref(), Some(&run.id));
    let purpose = NeonProvisioner::branch_purpose(&child.name).unwrap();
    assert_eq!((purpose.run(), purpose.worker()), ("run-8", Some("host-1")));
    assert!(provisioner.delete_worker_branch("Run 8", "host-1").await.unwrap());
    assert!(!provisioner.delete_worker_branch("Run 8", "host-1").await.unwrap());
    assert!(provisioner.delete_evolution_branch("Run 8").await.unwrap());
}

#[tokio::test]
async fn tenants_get_a_database_in_the_shared_project() {
    let (_fake, client, provisioner) = provisioner().await;
    let tenant = provisioner.ensure_tenant_database("acme.io", None).await.unwrap();
    assert_eq!((tenant.database.as_str(), tenant.role.as_str()), ("tenant_acme_io", "tenant_acme_io_owner"));
    assert!(tenant.connection_uri.expose().contains("/tenant_acme_io?"));
    let again = provisioner.ensure_tenant_database("acme.io", None).await.unwrap();
    assert_eq!(again.database, tenant.database);
    let main = client.default_branch(provisioner.project_id()).await.unwrap().unwrap();
    let databases = client.list_databases(provisioner.project_id(), &main.id).await.unwrap();
    assert_eq!(databases.iter().filter(|database| database.name == "tenant_acme_io").count(), 1);
    assert!(provisioner.drop_tenant_database("acme.io").await.unwrap());
    assert!(!provisioner.drop_tenant_database("acme.io").await.unwrap());
}

#[tokio::test]
async fn tenants_get_a_project_with_their_plans_quota() {
    let (_fake, client, _provisioner) = provisioner().await;
    let created = NeonProvisioner::ensure_tenant_project(&client, "Acme", &TenantPlan::Premium, None).await.unwrap();
    assert_eq!(created.ensured, Ensured::Created);
    assert_eq!(created.project.name, "tenant-acme");
    assert!(created.default_branch_id.is_some());
    let project = client.get_project(&created.project.id).await.unwrap();
    assert_eq!(project.settings.unwrap().quota.unwrap(), TenantPlan::Premium.quota());
    let defaults = project.default_endpoint_settings.unwrap();
    assert_eq!((defaults.autoscaling_limit_min_cu, defaults.autoscaling_limit_max_cu), (Some(0.25), Some(4.0)));
    assert_eq!(project.history_retention_seconds, Some(604_800));

    let downgraded = NeonProvisioner::ensure_tenant_project(&client, "Acme", &TenantPlan::Basic, None).await.unwrap();
    assert_eq!(downgraded.ensured, Ensured::Existed);
    assert_eq!(downgraded.project.id, created.project.id);
    let project = client.get_project(&created.project.id).await.unwrap();
    assert_eq!(project.settings.unwrap().quota.unwrap(), TenantPlan::Basic.quota());

    assert!(NeonProvisioner::delete_tenant_project(&client, "Acme").await.unwrap());
    assert!(!NeonProvisioner::delete_tenant_project(&client, "Acme").await.unwrap());
}
