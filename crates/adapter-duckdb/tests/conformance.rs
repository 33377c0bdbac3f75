//! The cross-backend conformance suite (`strata-tests`) against `DuckDbStore`:
//! every case gets a fresh DuckDB file in its own temporary directory, which
//! outlives the store.

use std::sync::Arc;

use strata_adapter_duckdb::{DuckDbConfig, DuckDbStore};

strata_tests::conformance_suite!(|| async {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let config = DuckDbConfig::new(directory.path().join("conformance.duckdb")).with_threads(2);
    let store = DuckDbStore::open(config).await.expect("opening a fresh DuckDB file");
    (Arc::new(store), directory)
});
