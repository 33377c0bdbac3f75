//! Unit tests of `src/backend.rs` (kept out of `src/`, which holds the commands, their
//! output and the composition root).

#![allow(clippy::unwrap_used)]

use super::*;

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
    for needle in [
        "STORAGE_BACKEND",
        "\"mongodb\"",
        "duckdb",
        "memory",
        "neon (or postgres, postgresql, pg)",
        "efs",
        "planned, not in this build: hybrid",
        "not in this build",
    ] {
        assert!(message.contains(needle), "{needle:?} missing from: {message}");
    }
    let planned = "Hybrid".parse::<StorageBackend>().unwrap_err().to_string();
    assert!(planned.contains("hybrid is planned"), "{planned}");
    assert_eq!(" EFS ".parse::<StorageBackend>(), Ok(StorageBackend::Efs));
    assert_eq!("Neon".parse::<StorageBackend>(), Ok(StorageBackend::Neon));
    for alias in ["postgres", "PostgreSQL", " pg "] {
        assert_eq!(alias.parse::<StorageBackend>(), Ok(StorageBackend::Neon), "{alias}");
    }
}

#[test]
fn defaults_and_flags() {
    let config = StorageConfig::from_env_and_flags(&args(None)).unwrap();
    assert_eq!(config.backend, StorageBackend::DuckDb);
    assert_eq!(config.duckdb.path, PathBuf::from(DEFAULT_DUCKDB_PATH));
    assert_eq!(config.describe(), "duckdb ./strata.duckdb");
    let memory = StorageConfig::from_env_and_flags(&args(Some("memory"))).unwrap();
    assert_eq!(memory.describe(), "memory");
    let waiting = StorageArgs {
        duckdb: crate::cli::DuckDbArgs { lock_wait: Some(2.5), ..Default::default() },
        ..StorageArgs::default()
    };
    assert_eq!(
        StorageConfig::from_env_and_flags(&waiting).unwrap().duckdb.lock_wait,
        Some(Duration::from_millis(2500))
    );
    let negative = StorageArgs {
        duckdb: crate::cli::DuckDbArgs { lock_wait: Some(-1.0), ..Default::default() },
        ..StorageArgs::default()
    };
    assert_eq!(StorageConfig::from_env_and_flags(&negative), Err(ConfigError::LockWait(-1.0)));
}

#[test]
fn timescaledb_is_on_unless_switched_off() {
    let neon = |timescaledb: Option<&str>, chunks: Option<&str>| {
        let args = StorageArgs {
            pg: crate::cli::PgArgs {
                timescaledb: timescaledb.map(str::to_string),
                chunk_interval: chunks.map(str::to_string),
                ..Default::default()
            },
            ..StorageArgs::default()
        };
        StorageConfig::from_env_and_flags(&args).map(|config| config.neon)
    };
    assert!(neon(None, None).unwrap().timescaledb);
    assert!(neon(Some("ON"), None).unwrap().timescaledb);
    assert!(!neon(Some(" false "), None).unwrap().timescaledb);
    assert!(!neon(Some("0"), None).unwrap().timescaledb);
    let message = neon(Some("maybe"), None).unwrap_err().to_string();
    assert!(message.contains("STRATA_PG_TIMESCALEDB") && message.contains("true or false"), "{message}");
    assert_eq!(neon(None, Some("30d")).unwrap().chunk_interval.as_deref(), Some("30d"));
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
