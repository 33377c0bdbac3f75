//! The whole conformance suite through [`strata_tests::passthrough::PassThrough`]
//! (`Arc<dyn …>` in, `Arc<dyn …>` out) over the in-memory store and over a
//! DuckDB file: a decorator that forwards every method keeps every contract,
//! so the decorators to come (retry, cache, failover) start from ports that
//! can be wrapped.

use std::sync::Arc;

use strata_tests::passthrough::PassThrough;

mod memory {
    use super::*;

    strata_tests::conformance_suite!(|| async {
        Arc::new(PassThrough::new(Arc::new(strata_adapter_mock::MemoryStore::new())))
    });
}

mod duckdb {
    use super::*;

    strata_tests::conformance_suite!(|| async {
        use strata_adapter_duckdb::{DuckDbConfig, DuckDbStore};
        let directory = tempfile::tempdir().expect("a temporary directory");
        let store = DuckDbStore::open(DuckDbConfig::new(directory.path().join("wrapped.duckdb"))).await.expect("open");
        (Arc::new(PassThrough::new(Arc::new(store))), directory)
    });
}
