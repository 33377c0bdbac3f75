//! A dead server fails in seconds: a refusal from this machine and a host
//! name that does not resolve are not "a Neon compute waking up", the retry
//! budget is a flag, and `strata health --timeout` bounds the whole check.
//! No PostgreSQL is needed: every server here is missing or fake.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Runs `strata` on the neon backend at `url` and says how long it took.
fn neon(url: &str, arguments: &[&str]) -> (common::Run, Duration) {
    let started = Instant::now();
    let run = common::strata(&[("STORAGE_BACKEND", "neon"), ("DATABASE_URL", url)], arguments);
    (run, started.elapsed())
}

#[test]
fn a_refused_loopback_connection_fails_at_once() {
    let (run, took) = neon("postgres://u:secretpw@127.0.0.1:1/db", &["summary"]);
    let run = run.exits(1);
    assert!(took < Duration::from_secs(5), "took {took:?}\n{}", run.stderr);
    assert!(run.stderr.contains("refused") && run.stderr.contains("127.0.0.1:1"), "{}", run.stderr);
    assert!(!run.stderr.contains("waking up"), "{}", run.stderr);
    assert!(!format!("{}{}", run.stdout, run.stderr).contains("secretpw"), "{run:?}");
}

#[test]
fn a_host_name_that_does_not_resolve_fails_at_once() {
    // RFC 2606: `.invalid` never resolves.
    let (run, took) = neon("postgres://u:secretpw@strata-no-such-host.invalid:5432/db", &["summary"]);
    let run = run.exits(1);
    assert!(took < Duration::from_secs(5), "took {took:?}\n{}", run.stderr);
    assert!(run.stderr.contains("does not resolve"), "{}", run.stderr);
    assert!(!format!("{}{}", run.stdout, run.stderr).contains("secretpw"), "{run:?}");
}

#[test]
fn the_retry_budget_bounds_a_retried_failure() {
    // Accepts and drops every connection at once: a transient failure, retried.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            drop(connection);
        }
    });
    let url = format!("postgres://u:secretpw@127.0.0.1:{port}/db?sslmode=disable");
    let (run, took) = neon(&url, &["--pg-retry-budget", "1", "summary"]);
    let run = run.exits(1);
    assert!(run.stderr.contains("retrying for up to 1s"), "not retried:\n{}", run.stderr);
    assert!(took < Duration::from_secs(5), "took {took:?}\n{}", run.stderr);
    assert!(!format!("{}{}", run.stdout, run.stderr).contains("secretpw"), "{run:?}");
    let refused = neon(&url, &["--pg-retry-budget=-1", "summary"]).0.exits(2);
    assert!(refused.stderr.contains("STRATA_PG_RETRY_BUDGET"), "{}", refused.stderr);
}

#[test]
fn health_timeout_bounds_a_server_that_never_answers() {
    // Accepts TCP (the backlog does) but never reads nor answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("postgres://u:secretpw@127.0.0.1:{port}/db?sslmode=disable");
    let (run, took) = neon(&url, &["health", "--timeout", "1"]);
    let run = run.exits(1);
    assert!(took < Duration::from_secs(5), "took {took:?}\n{}", run.stderr);
    assert!(run.stdout.contains("ok       false") && run.stdout.contains("timed out after 1 s"), "{}", run.stdout);
    let (json, _) = neon(&url, &["health", "--timeout", "1", "--json"]);
    let document = json.exits(1).json();
    assert_eq!(document["ok"], false);
    assert!(document["error"].as_str().unwrap().contains("timed out"), "{document}");
    assert!(!format!("{}{}", run.stdout, run.stderr).contains("secretpw"), "{run:?}");
    drop(listener);
}

#[test]
fn connect_timeout_in_the_url_bounds_each_attempt() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // libpq's minimum is 2 s; with no retry budget left, one attempt is made.
    let url = format!("postgres://u:secretpw@127.0.0.1:{port}/db?sslmode=disable&connect_timeout=2");
    let (run, took) = neon(&url, &["--pg-retry-budget", "0", "summary"]);
    let run = run.exits(1);
    assert!(took < Duration::from_secs(6), "took {took:?}\n{}", run.stderr);
    assert!(!run.stderr.contains("connect_timeout is not one strata uses"), "{}", run.stderr);
    assert!(!format!("{}{}", run.stdout, run.stderr).contains("secretpw"), "{run:?}");
    drop(listener);
}
