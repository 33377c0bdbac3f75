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

use common::{FakeNeon, Run, sample_arg};

/// The server to use, as an admin URL (a superuser or a user who may create
/// roles and databases) to its `postgres` database; `None` to skip.
fn admin_url() -> Option<String> {
    let configured = std::env::var("DATABASE_URL").ok().filter(|url| !url.trim().is_empty());
    let mut url = url_of(configured.as_deref().unwrap_or("postgres://postgres@127.0.0.1:5432/postgres"));
    url.set_path("/postgres");
    url.set_query(None);
    let url = url.to_string();
    let reachable = Command::new("psql")
        .args(["-X", "-At", "-d", &url, "-c", "SELECT 1"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !reachable {
        assert!(
            std::env::var("STRATA_REQUIRE_SERVICES").is_err(),
            "no PostgreSQL reachable with psql at {url} (set DATABASE_URL)"
        );
        eprintln!("no PostgreSQL reachable with psql at {url} (set DATABASE_URL): skipped");
        return None;
    }
    Some(url)
}

/// A minimal parse of a `postgres://` URL: scheme, user, host, port, path, query.
fn url_of(text: &str) -> Url {
    let (scheme, rest) = text.split_once("://").expect("a postgres:// URL");
    let (authority, rest) = rest.split_once('/').map_or((rest, ""), |(authority, rest)| (authority, rest));
    let (path, query) = rest.split_once('?').map_or((rest, None), |(path, query)| (path, Some(query.to_owned())));
    Url { scheme: scheme.to_owned(), authority: authority.to_owned(), path: format!("/{path}"), query }
}

struct Url {
    scheme: String,
    authority: String,
    path: String,
    query: Option<String>,
}

impl Url {
    fn set_path(&mut self, path: &str) {
        self.path = path.to_owned();
    }

    fn set_query(&mut self, query: Option<&str>) {
        self.query = query.map(str::to_owned);
    }

    /// host[:port], without the user.
    fn server(&self) -> &str {
        self.authority.rsplit_once('@').map_or(self.authority.as_str(), |(_, server)| server)
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.path)?;
        match &self.query {
            Some(query) => write!(f, "?{query}"),
            None => Ok(()),
        }
    }
}

/// Drops the database and the role when the test ends, passed or not.
struct DropDatabaseAndRole {
    admin: String,
    database: String,
    role: String,
}

impl Drop for DropDatabaseAndRole {
    fn drop(&mut self) {
        common::psql(&self.admin, &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database));
        common::psql(&self.admin, &format!("DROP ROLE IF EXISTS \"{}\"", self.role));
    }
}

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
