//! End-to-end test of `strata neon`: starts `strata neon fake-server` and drives
//! it with the other `strata neon` subcommands, as a user would from a shell.

#![allow(clippy::unwrap_used)]
#![cfg(feature = "neon-api")]

mod common;

use common::{FakeNeon, Run};

/// Starts the fake with a seeded project.
fn start_fake() -> FakeNeon {
    FakeNeon::start(&["--seed-project", "cli-test"])
}

/// Runs `strata neon ...` against the fake.
fn neon(fake: &FakeNeon, arguments: &[&str]) -> Run {
    fake.strata(&[], &[&["neon"], arguments].concat())
}

#[test]
fn neon_commands_work_against_the_fake_server() {
    let fake = start_fake();
    let projects = neon(&fake, &["projects", "list"]).success();
    assert!(projects.stdout.contains("cli-test"), "{}", projects.stdout);

    let created = neon(&fake, &["branch", "create", "ci-1", "--max-cu", "2"]).success();
    assert!(created.stdout.starts_with("created ci-1"), "{}", created.stdout);
    let again = neon(&fake, &["branch", "create", "ci-1", "--json"]).success();
    let again: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(again["created"], false);
    assert_eq!(again["branch"]["name"], "ci-1");
    neon(&fake, &["branch", "create", "yesterday", "--parent", "main", "--at", "2026-01-01", "--no-endpoint"])
        .success();

    let listed = neon(&fake, &["branch", "list", "--json"]).success();
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|branch| branch["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["main", "ci-1", "yesterday"]);

    let pooled = neon(&fake, &["connection-uri", "--branch", "ci-1", "--database", "neondb", "--role", "neondb_owner"])
        .success();
    assert!(pooled.stdout.trim().starts_with("postgresql://neondb_owner:"), "{}", pooled.stdout);
    assert!(pooled.stdout.contains("-pooler."));
    let direct = neon(
        &fake,
        &["connection-uri", "--branch", "ci-1", "--database", "neondb", "--role", "neondb_owner", "--direct"],
    )
    .success();
    assert!(!direct.stdout.contains("-pooler."));

    let waited = neon(&fake, &["operations", "wait", "--timeout", "10", "--json"]).success();
    assert!(waited.stdout.contains("finished"), "{}", waited.stdout);

    let deleted = neon(&fake, &["branch", "delete", "ci-1"]).success();
    assert!(deleted.stdout.contains("deleted ci-1"), "{}", deleted.stdout);
    let gone = neon(&fake, &["branch", "delete", "ci-1"]).success();
    assert!(gone.stdout.contains("does not exist"), "{}", gone.stdout);

    // Input errors exit with 2 and say what is wrong, without the API key.
    let rejected = neon(&fake, &["branch", "create", "bad", "--min-cu", "4", "--max-cu", "1"]);
    assert_eq!(rejected.code, Some(2), "{rejected:?}");
    assert!(rejected.stderr.contains("HTTP 422"), "{}", rejected.stderr);
    let unknown = neon(&fake, &["connection-uri", "--branch", "nope", "--database", "d", "--role", "r"]);
    assert_eq!(unknown.code, Some(2), "{unknown:?}");
}

#[test]
fn missing_credentials_are_named() {
    let run = common::run(
        common::command(&[]).args(["neon", "branch", "list"]).env_remove("NEON_API_KEY").env_remove("NEON_PROJECT_ID"),
    )
    .exits(2);
    assert!(run.stderr.contains("NEON_API_KEY"), "{run:?}");
}

#[test]
fn help_teaches_with_examples() {
    let help = common::strata(&[], &["neon", "--help"]).success().stdout;
    for expected in
        ["NEON_API_KEY", "NEON_PROJECT_ID", "NEON_API_BASE_URL", "Examples:", "fake-server", "connection-uri"]
    {
        assert!(help.contains(expected), "{expected} missing from:\n{help}");
    }
}
