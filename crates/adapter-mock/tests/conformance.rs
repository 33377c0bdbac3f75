//! Runs the whole conformance suite of `strata-tests` against `MemoryStore`, one invocation per port.

strata_tests::market_conformance!(|| async { std::sync::Arc::new(strata_adapter_mock::MemoryStore::new()) });
strata_tests::evolution_conformance!(|| async { std::sync::Arc::new(strata_adapter_mock::MemoryStore::new()) });
