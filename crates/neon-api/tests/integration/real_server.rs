//! The fake pointed at a real PostgreSQL server (`FakeNeonConfig::postgres`):
//! every connection URI it hands out leads to that server, with the database,
//! role and password of the API call; its answers still follow the spec.

use strata_neon_api::fake::FakeNeonConfig;
use strata_neon_api::models::{BranchCreateRequest, NewBranch, NewBranchEndpoint, NewProject, NewProjectBranch};
use strata_neon_api::{ConnectionUriRequest, ProjectId};

use crate::schema::{load_spec, validate};
use crate::support::{start, start_with};

fn local_server() -> FakeNeonConfig {
    let server = url::Url::parse("postgres://127.0.0.1:55432/?sslmode=disable").unwrap();
    FakeNeonConfig { postgres: Some(server), ..FakeNeonConfig::default() }
}

#[tokio::test]
async fn every_connection_uri_points_at_the_real_server() {
    let (fake, client) = start_with(local_server(), |config| config).await;
    let project = NewProject {
        name: Some("local".into()),
        branch: Some(NewProjectBranch {
            name: Some("main".into()),
            role_name: Some("owner".into()),
            database_name: Some("trading".into()),
        }),
        ..NewProject::default()
    };
    let created = client.create_project(&project).await.unwrap();
    let project_id = created.project.id.clone();
    client.wait_for_operations(&project_id, &created.operations).await.unwrap();
    let password = created.roles[0].password.as_ref().unwrap().expose().to_owned();
    let details = &created.connection_uris[0];
    assert_eq!(
        details.connection_uri.expose(),
        format!("postgresql://owner:{password}@127.0.0.1:55432/trading?sslmode=disable")
    );
    let parameters = details.connection_parameters.as_ref().unwrap();
    assert_eq!(parameters.host.as_deref(), Some("127.0.0.1"));
    assert_eq!(parameters.pooler_host.as_deref(), Some("127.0.0.1"));

    // A branch with a compute: its creation answer has the URI too, and GET connection_uri,
    // pooled or direct, gives the same server (it has no pooler in front).
    let request = BranchCreateRequest {
        branch: NewBranch { name: Some("demo".into()), ..NewBranch::default() },
        endpoints: vec![NewBranchEndpoint::read_write()],
    };
    let (branch, _) = client.ensure_branch(&project_id, &request).await.unwrap();
    let expected = format!("postgresql://owner:{password}@127.0.0.1:55432/trading?sslmode=disable");
    let uri = ConnectionUriRequest {
        branch_id: Some(branch.id.clone()),
        endpoint_id: None,
        database_name: "trading".into(),
        role_name: "owner".into(),
        pooled: true,
    };
    let pooled = client.connection_uri(&project_id, &uri).await.unwrap();
    let direct = client.connection_uri(&project_id, &ConnectionUriRequest { pooled: false, ..uri }).await.unwrap();
    assert_eq!(pooled.expose(), expected);
    assert_eq!(direct.expose(), expected);

    let branch_answers: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|request| request.method == "POST" && request.path.ends_with("/branches") && request.status == 201)
        .collect();
    assert_eq!(branch_answers.len(), 1);
    let answer = branch_answers[0].response.as_ref().unwrap();
    assert_eq!(answer["connection_uris"][0]["connection_uri"], expected.as_str());

    // The seeded project's role password is what the banner of `strata neon fake-server` shows.
    let seeded = fake.seed_project("seeded");
    let password = fake.role_password(&seeded, "neondb_owner").unwrap();
    let uri = ConnectionUriRequest {
        branch_id: None,
        endpoint_id: None,
        database_name: "neondb".into(),
        role_name: "neondb_owner".into(),
        pooled: true,
    };
    let seeded_uri = client.connection_uri(&ProjectId::new(seeded.as_str()), &uri).await.unwrap();
    assert_eq!(
        seeded_uri.expose(),
        format!("postgresql://neondb_owner:{password}@127.0.0.1:55432/neondb?sslmode=disable")
    );
    assert_eq!(fake.role_password(&seeded, "nobody"), None);

    // Seeded with other names, for a database and role made for it on the real server.
    let named = fake.seed_project_with("named", "demo_db", "demo_role");
    let password = fake.role_password(&named, "demo_role").unwrap();
    let uri = ConnectionUriRequest { database_name: "demo_db".into(), role_name: "demo_role".into(), ..uri };
    let named_uri = client.connection_uri(&ProjectId::new(named.as_str()), &uri).await.unwrap();
    assert_eq!(
        named_uri.expose(),
        format!("postgresql://demo_role:{password}@127.0.0.1:55432/demo_db?sslmode=disable")
    );
}

#[tokio::test]
async fn without_a_real_server_uris_name_made_up_neon_hosts() {
    let (fake, client) = start().await;
    let project_id = ProjectId::new(fake.seed_project("made-up"));
    let request = BranchCreateRequest {
        branch: NewBranch { name: Some("demo".into()), ..NewBranch::default() },
        endpoints: vec![NewBranchEndpoint::read_write()],
    };
    let created = client.create_branch(&project_id, &request).await.unwrap();
    let uri = created.connection_uris[0].connection_uri.expose();
    assert!(
        uri.starts_with("postgresql://neondb_owner:") && uri.ends_with(".fake.neon.local/neondb?sslmode=require"),
        "{uri}"
    );
    let parameters = created.connection_uris[0].connection_parameters.as_ref().unwrap();
    assert!(parameters.pooler_host.as_deref().unwrap().contains("-pooler."));
}

/// The answers with real-server URIs validate against the spec's response schemas.
#[tokio::test]
async fn real_server_answers_match_the_spec() {
    let Some(spec) = load_spec() else { return };
    let (fake, client) = start_with(local_server(), |config| config).await;
    let project_id = ProjectId::new(fake.seed_project("spec"));
    let request = BranchCreateRequest {
        branch: NewBranch { name: Some("demo".into()), ..NewBranch::default() },
        endpoints: vec![NewBranchEndpoint::read_write()],
    };
    client.ensure_branch(&project_id, &request).await.unwrap();
    let uri = ConnectionUriRequest {
        branch_id: None,
        endpoint_id: None,
        database_name: "neondb".into(),
        role_name: "neondb_owner".into(),
        pooled: false,
    };
    client.connection_uri(&project_id, &uri).await.unwrap();
    let mut errors = Vec::new();
    for request in fake.requests() {
        let Some((_, operation)) = spec.operation(&request.method, &request.path) else { continue };
        let (true, Some(response)) = ((200..300).contains(&request.status), &request.response) else { continue };
        let status = request.status.to_string();
        let declared = operation["responses"].get(&status).map(|declared| spec.resolve(declared));
        if let Some(schema) = declared.and_then(|declared| declared.pointer("/content/application~1json/schema")) {
            for error in validate(&spec, schema, response, false) {
                errors.push(format!("{} {}: {error}", request.method, request.path));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
