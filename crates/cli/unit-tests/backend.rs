//! Unit tests of `src/backend.rs` (kept out of `src/`, which holds the commands, their
//! output and the composition root).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use crate::backend::*;
use crate::cli::StorageArgs;

fn args(backend: Option<&str>) -> StorageArgs {
    StorageArgs { backend: backend.map(str::to_string), ..StorageArgs::default() }
}

#[test]
fn backends_parse_case_insensitively() {
    assert_eq!("duckdb".parse::<StorageBackend>(), Ok(StorageBackend::DuckDb));
    assert_eq!(" DuckDB ".parse::<StorageBackend>(), Ok(StorageBackend::DuckDb));
    assert_eq!("memory".parse::<StorageBackend>(), Ok(StorageBackend::Memory));
}

#[test]
fn unknown_backend_names_variable_value_and_accepted_values() {
    let message = "mongodb".parse::<StorageBackend>().unwrap_err().to_string();
    for needle in
        ["STORAGE_BACKEND", "\"mongodb\"", "duckdb", "memory", "neon (or postgres, postgresql, pg)", "efs", "hybrid"]
    {
        assert!(message.contains(needle), "{needle:?} missing from: {message}");
    }
    assert_eq!(" Hybrid ".parse::<StorageBackend>(), Ok(StorageBackend::Hybrid));
    assert!(!message.contains("planned"), "every designed backend exists: {message}");
    assert_eq!(" EFS ".parse::<StorageBackend>(), Ok(StorageBackend::Efs));
    assert_eq!("Neon".parse::<StorageBackend>(), Ok(StorageBackend::Neon));
    for alias in ["postgres", "PostgreSQL", " pg "] {
        assert_eq!(alias.parse::<StorageBackend>(), Ok(StorageBackend::Neon), "{alias}");
    }
}

/// The storage options of `strata ARGS... summary`, as clap reads and checks them.
fn parsed(flags: &[&str]) -> Result<StorageArgs, clap::Error> {
    use clap::FromArgMatches as _;
    let argv = ["strata"].iter().chain(flags).chain(&["summary"]).copied();
    let matches = crate::cli::command().try_get_matches_from(argv)?;
    crate::cli::Cli::from_arg_matches(&matches).map(|cli| cli.storage)
}

#[test]
fn defaults_and_flags() {
    let config = StorageConfig::from_env_and_flags(&args(None)).unwrap();
    assert_eq!(config.backend, StorageBackend::DuckDb);
    assert_eq!(config.duckdb_path(), PathBuf::from(DEFAULT_DUCKDB_PATH));
    assert_eq!(config.describe(), "duckdb ./strata.duckdb");
    let memory = StorageConfig::from_env_and_flags(&args(Some("memory"))).unwrap();
    assert_eq!(memory.describe(), "memory");
    let waiting = parsed(&["--lock-wait", "2.5"]).unwrap();
    assert_eq!(waiting.duckdb.lock_wait, Some(std::time::Duration::from_millis(2500)));
    for bad in ["-1", "NaN", "soon"] {
        let message = parsed(&[&format!("--lock-wait={bad}")]).unwrap_err().to_string();
        assert!(message.contains("--lock-wait") && message.contains("seconds >= 0"), "{message}");
        assert!(message.contains("STRATA_DUCKDB_LOCK_WAIT"), "{message}");
    }
    let message = parsed(&["--pg-statement-timeout", "0"]).unwrap_err().to_string();
    assert!(message.contains("seconds > 0"), "{message}");
}

#[test]
fn timescaledb_and_migrate_are_on_unless_switched_off() {
    let switch = |flag: &str, value: &str| parsed(&[flag, value]).map(|args| (args.pg.timescaledb, args.pg.migrate));
    assert_eq!(parsed(&[]).unwrap().pg.timescaledb, None, "unset means on (see neon_config)");
    assert_eq!(switch("--pg-timescaledb", "ON").unwrap(), (Some(true), None));
    assert_eq!(switch("--pg-timescaledb", "false").unwrap(), (Some(false), None));
    assert_eq!(switch("--pg-migrate", "0").unwrap(), (None, Some(false)));
    let message = switch("--pg-timescaledb", "maybe").unwrap_err().to_string();
    assert!(message.contains("--pg-timescaledb") && message.contains("maybe"), "{message}");
}

#[cfg(feature = "memory")]
#[tokio::test]
async fn memory_backend_builds_both_ports() {
    let config = StorageConfig::from_env_and_flags(&args(Some("memory"))).unwrap();
    let stores = build_stores(&config, Access::Read).await.unwrap();
    assert_eq!(stores.market.to_string(), "memory");
    assert_eq!(stores.evolution.to_string(), "memory");
    assert!(!stores.shared(), "a memory store is this process's alone");
}
