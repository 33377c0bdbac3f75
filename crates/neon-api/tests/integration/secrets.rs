//! No secret (API key, password, connection URI) in any log line, at any level,
//! or in any error message or `Debug` output.

use strata_neon_api::fake::Fault;
use strata_neon_api::models::{BranchCreateRequest, NewBranch, NewBranchEndpoint};
use strata_neon_api::provision::{EphemeralBranchRequest, NeonProvisioner};
use strata_neon_api::{ConnectionUriRequest, NeonApiConfig, NeonClient, ProjectId, Secret};

use crate::support::{API_KEY, LogCapture, start};

#[tokio::test]
async fn secrets_never_reach_logs_errors_or_debug_output() {
    let capture = LogCapture::global();
    let (fake, client) = start().await;
    let project_id = ProjectId::new(fake.seed_project("p"));
    let mut secrets: Vec<String> = vec![API_KEY.to_owned()];
    let mut rendered: Vec<String> = Vec::new();

    let request = BranchCreateRequest {
        branch: NewBranch { name: Some("s".into()), ..NewBranch::default() },
        endpoints: vec![NewBranchEndpoint::read_write()],
    };
    let (branch, _) = client.ensure_branch(&project_id, &request).await.unwrap();
    let role = client.create_role(&project_id, &branch.id, "secretive").await.unwrap();
    secrets.push(role.role.password.clone().unwrap().expose().to_owned());
    rendered.push(format!("{role:?}"));
    client.wait_for_operations(&project_id, &role.operations).await.unwrap();
    let revealed = client.reveal_role_password(&project_id, &branch.id, "secretive").await.unwrap();
    rendered.push(format!("{revealed:?} {revealed}"));
    let reset = client.reset_role_password(&project_id, &branch.id, "secretive").await.unwrap();
    secrets.push(reset.role.password.clone().unwrap().expose().to_owned());
    rendered.push(format!("{reset:?}"));
    client.wait_for_operations(&project_id, &reset.operations).await.unwrap();
    let uri = client
        .connection_uri(
            &project_id,
            &ConnectionUriRequest {
                branch_id: Some(branch.id.clone()),
                endpoint_id: None,
                database_name: "neondb".into(),
                role_name: "secretive".into(),
                pooled: true,
            },
        )
        .await
        .unwrap();
    secrets.push(uri.expose().to_owned());
    rendered.push(format!("{uri:?} {uri}"));
    let key = client.create_api_key("k").await.unwrap();
    secrets.push(key.key.expose().to_owned());
    rendered.push(format!("{key:?}"));
    let created = client.create_project(&Default::default()).await.unwrap();
    for details in &created.connection_uris {
        secrets.push(details.connection_uri.expose().to_owned());
    }
    rendered.push(format!("{created:?}"));

    // Errors of every kind.
    fake.inject(Fault::html(502).times(30));
    rendered.push(client.current_user().await.unwrap_err().to_string());
    fake.clear_faults();
    fake.inject(Fault::drop_connection().on("POST", "/api_keys"));
    let transport = client.create_api_key("x").await.unwrap_err();
    rendered.push(format!("{transport} {transport:?}"));
    let missing = client.get_role(&project_id, &branch.id, "nobody").await.unwrap_err();
    rendered.push(format!("{missing} {missing:?}"));
    let unauthorized = NeonClient::new(NeonApiConfig::new(Secret::new("napi_other")).with_base_url(fake.base_url()))
        .unwrap()
        .current_user()
        .await
        .unwrap_err();
    rendered.push(format!("{unauthorized} {unauthorized:?}"));
    rendered.push(format!("{client:?}"));

    // The provisioner, failures included.
    let provisioner = NeonProvisioner::new(client.clone(), project_id.clone());
    let outcome: Result<(), strata_core::StoreError> = provisioner
        .with_ephemeral_branch(EphemeralBranchRequest::new("ephemeral-secret"), |info| async move {
            Err(strata_core::StoreError::Conflict { what: format!("failing on purpose with {:?}", info) })
        })
        .await;
    rendered.push(format!("{outcome:?}"));

    let logs = capture.text();
    assert!(logs.contains("neon api response"), "the capture works: {logs}");
    for secret in &secrets {
        assert!(!secret.is_empty());
        assert!(!logs.contains(secret.as_str()), "a secret is in the logs");
        for text in &rendered {
            assert!(!text.contains(secret.as_str()), "a secret is in: {text}");
        }
    }
    // Passwords embedded in URIs are secrets on their own, too.
    assert!(!logs.contains("npg_fakeSecret"));
    assert!(rendered.iter().all(|text| !text.contains("npg_fakeSecret")));
}
