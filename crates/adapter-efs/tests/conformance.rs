//! The cross-backend conformance suite (`strata-tests`) against `EfsStore`:
//! every case gets a fresh dataset root in its own temporary directory.

use std::sync::Arc;

use strata_adapter_efs::{EfsConfig, EfsStore};

strata_tests::market_conformance!(|| async {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = EfsStore::open(EfsConfig::new(directory.path())).await.expect("opening a fresh dataset");
    (Arc::new(store), directory)
});
