//! The whole conformance suite through the socket: a server over a fresh
//! in-memory store in a temporary directory, and a `SocketStore` client.

use std::sync::Arc;

use strata_adapter_mock::MemoryStore;
use strata_store_socket::{SocketServer, SocketStore};

strata_tests::conformance_suite!(|| async {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let path = directory.path().join("memory.sock");
    let store = Arc::new(MemoryStore::new());
    let server = SocketServer::bind(&path, store.clone(), store).await.expect("binding the socket");
    let client = SocketStore::connect(&path).await.expect("connecting to the socket");
    assert_eq!(client.to_string(), "socket(memory)");
    // Dropped after the client: the server first, then the directory.
    (Arc::new(client), (server, directory))
});
