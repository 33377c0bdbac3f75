//! The whole conformance suite again, through PgBouncer in transaction mode
//! (`STRATA_PGBOUNCER_URL`, started by `cargo xtask test`): the worst case of
//! Neon's `-pooler` endpoints. No session state, no named prepared
//! statement, no session advisory lock may leak between transactions.

mod common;

strata_tests::conformance_suite!(|| async { common::fresh_store(true).await });
