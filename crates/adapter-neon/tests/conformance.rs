//! The cross-backend conformance suite against PostgreSQL at `DATABASE_URL`
//! (`cargo xtask test` starts a throwaway cluster when it is unset); every
//! case gets its own schema, dropped afterwards.

mod common;

strata_tests::conformance_suite!(|| async { common::fresh_store(false).await });
