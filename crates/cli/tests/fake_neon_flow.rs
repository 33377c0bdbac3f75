//! "Try it without a Neon account", end to end: `strata neon fake-server
//! --postgres` hands out connection URIs of a real local PostgreSQL, and
//! `strata migrate`, `ingest` and `summary` with `STORAGE_BACKEND=neon` work
//! through one of them. The database and role are made with psql first (the
//! fake cannot create them) and dropped afterwards, even when the test fails.
//!
//! The server is the one of `DATABASE_URL` (its host, port and user), else
//! `postgres://postgres@127.0.0.1:5432/postgres`; without one the test skips,
//! and fails under `STRATA_REQUIRE_SERVICES=1`.

#![allow(clippy::unwrap_used)]
#![cfg(all(feature = "neon-api", feature = "neon"))]

use std::process::Command;

mod common;

use common::{DropDatabaseAndRole, FakeNeon, Run, admin_url, sample_arg, url_of};

/// Runs `strata arguments` with the fake's environment and `env`.
fn strata(fake: &FakeNeon, env: &[(&str, &str)], arguments: &[&str]) -> Run {
    fake.strata(env, arguments)
}

#[test]
fn the_fake_servers_uris_lead_to_a_real_postgres_that_strata_can_use() {
    let Some(admin) = admin_url() else { return };
    let admin_parts = url_of(&admin);
    let server = admin_parts.server().to_owned();
    let name = format!("strata_fake_flow_{}", std::process::id());
    let _cleanup = DropDatabaseAndRole { admin: admin.clone(), database: name.clone(), role: name.clone() };

    let postgres = format!("postgres://{server}/?sslmode=disable");
    let fake = FakeNeon::start(&["--postgres", &postgres, "--seed-database", &name, "--seed-role", &name]);
    // The banner says the database and role must exist, and how to make them.
    let banner = fake.banner.join("\n");
    assert!(banner.contains(&format!("point at the PostgreSQL server {server}")), "{banner}");
    assert!(banner.contains("must exist"), "{banner}");
    assert!(banner.contains("createuser -h ") && banner.contains(&format!("--login {name}")), "{banner}");
    assert!(banner.contains(&format!("--owner {name} {name}")), "{banner}");

    strata(&fake, &[], &["neon", "branch", "create", "demo"]).success();
    let uri = strata(&fake, &[], &["neon", "connection-uri", "--branch", "demo", "--database", &name, "--role", &name])
        .success()
        .stdout
        .trim()
        .to_owned();
    let prefix = format!("postgresql://{name}:");
    assert!(uri.starts_with(&prefix), "{uri}");
    assert!(uri.ends_with(&format!("@{server}/{name}?sslmode=disable")), "{uri}");
    let direct = strata(
        &fake,
        &[],
        &["neon", "connection-uri", "--branch", "demo", "--database", &name, "--role", &name, "--direct"],
    )
    .success();
    assert_eq!(direct.stdout.trim(), uri, "pooled and direct both lead to the one server");

    // What the banner asks for: the role (with the URI's password) and its database.
    let password = uri[prefix.len()..].split_once('@').unwrap().0.to_owned();
    let created_role = Command::new("psql")
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", &admin, "-c"])
        .arg(format!("CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'"))
        .status()
        .unwrap();
    assert!(created_role.success());
    let created_database = Command::new("psql")
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", &admin, "-c"])
        .arg(format!("CREATE DATABASE \"{name}\" OWNER \"{name}\""))
        .status()
        .unwrap();
    assert!(created_database.success());

    let neon = [("STORAGE_BACKEND", "neon"), ("DATABASE_URL", uri.as_str())];
    strata(&fake, &neon, &["migrate"]).success();
    let csv = sample_arg("sp500_daily.csv");
    strata(&fake, &neon, &["ingest", &csv]).success();
    let summary = strata(&fake, &neon, &["summary", "--json"]).success().json();
    let total = summary["total_rows"].as_u64().unwrap();
    assert!(total > 5000, "{summary}");
    assert_eq!(summary["symbols"][0]["symbol"], "^GSPC", "{summary}");
    let rows: u64 = common::psql(&uri, "SELECT count(*) FROM ohlcv_bars").parse().unwrap_or(0);
    assert_eq!(rows, total, "the rows are in the real database");
}

#[test]
fn without_postgres_the_banner_says_the_uris_lead_nowhere() {
    let rejected = common::run(
        common::command(&[])
            .args(["neon", "fake-server", "--port", "0", "--postgres", "http://nope"])
            .env_remove("STRATA_FAKE_NEON_POSTGRES"),
    )
    .exits(2);
    assert!(rejected.stderr.contains("--postgres"), "{rejected:?}");

    let fake = FakeNeon::start(&[]);
    let banner = fake.banner.join("\n");
    assert!(banner.contains("made-up hosts") && banner.contains("--postgres URL"), "{banner}");
}
