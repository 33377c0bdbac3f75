//! Both Strata ports served over a Unix socket, so that other processes can
//! use a store that only one process may hold.
//!
//! # Why
//!
//! The default backend is one DuckDB file, and DuckDB lets one process hold
//! a file. While `strata evolve` or `strata worker` runs, every other
//! `strata` command (runs list/show/cancel, summary, query, ingest) would
//! fail with a lock error. Instead, the process that holds the file serves
//! the two ports with a [`SocketServer`] on a socket beside the file, and a
//! process that finds the file locked uses a [`SocketStore`] connected to
//! that socket: an `Arc<dyn MarketDataStore>` and `Arc<dyn EvolutionStore>`
//! like any other, whose `Display` is `socket(<served store>)`.
//!
//! This crate is a transport: it takes and gives `Arc<dyn …>` ports and
//! knows no adapter.
//!
//! ```no_run
//! # async fn example(store: std::sync::Arc<strata_adapter_mock::MemoryStore>) -> strata_core::Result<()> {
//! use strata_store_socket::{SocketServer, SocketStore};
//!
//! // In the process that holds the store:
//! let server = SocketServer::bind("/data/strata.duckdb.sock", store.clone(), store).await?;
//! // In another process of the same user:
//! let remote = SocketStore::connect("/data/strata.duckdb.sock").await?;
//! # drop((server, remote)); Ok(()) }
//! ```
//!
//! # Protocol (version 1)
//!
//! A stream of frames: a `u32` big-endian length, then that many bytes
//! (at most [`MAX_FRAME`]). Frames are JSON unless the JSON frame just before
//! announced a binary one.
//!
//! 1. The client sends `{"strata_socket": 1}`. The server answers
//!    `{"strata_socket": 1, "market": {"display", "capabilities"}, "evolution": {…}}`,
//!    or, for a version it does not speak, `{"strata_socket": 1, "error": "…"}`
//!    and closes. Either side that sees another version fails with a message
//!    naming both versions ("use the same strata build on both sides"), so a
//!    future format change fails cleanly instead of garbling data.
//! 2. Then requests, one at a time per connection: one JSON request per port
//!    method (`{"GetRun": {"run": "r1"}}`, `"ListRuns"`, …), answered by one
//!    JSON response (`{"Run": {…}}`, or `{"Error": {…}}` carrying the
//!    [`StoreError`](strata_core::StoreError)'s kind, fields, source text and
//!    `retries_exhausted` flag, rebuilt as the same kind and message on the
//!    client).
//! 3. `WriteBars` is followed by one binary frame: the batch as an Arrow IPC
//!    stream. `QueryBars` is answered by any number of `"Batch"` responses,
//!    each followed by an Arrow IPC frame, sent as the store yields them,
//!    then `"End"` or one `Error`. Bars are therefore bit-exact (floats,
//!    nulls, the UTC zone); floats inside evolution records travel as their
//!    IEEE-754 bit patterns, so NaN statistics survive JSON too.
//!
//! Connections: unary calls share a small pool of connections, one call at a
//! time each; a query stream holds a connection of its own, and dropping the
//! stream early closes that connection (the server notices and stops
//! producing), so an abandoned stream never wedges other calls.
//!
//! # Failures
//!
//! When the serving process goes away (exits, crashes, drops its server) a
//! call or stream in flight, and every later call, fails with `Unavailable`:
//! "the strata process serving `<path>` went away". The client never retries by
//! itself: the outcome of a call in flight is unknown, and `lease_tasks` or
//! `complete_tasks` must not be repeated blindly.
//!
//! # Security model
//!
//! Only the same user may use the socket: [`SocketServer::bind`] creates it
//! inside a fresh 0700 directory, sets mode 0600 and only then renames it
//! into place, so no other user can connect even for an instant, and each
//! connection's peer credentials must match the socket owner's uid. Anyone
//! who can connect can do anything the stores can (write, delete, cancel
//! runs): the same as being able to open the DuckDB file. Ids and symbols are
//! validated again when the server reads them.
//!
//! # Not supported
//!
//! - Other hosts: a Unix socket is local. Use a shared backend (Neon) to
//!   coordinate workers on many machines.
//! - Provisioning (`Provisioner`) is not served.
//! - A batch larger than [`MAX_FRAME`] (1 GiB of Arrow, about 13 million bars)
//!   cannot be written in one call; write it in parts.
//! - Calls are not cancelled on the server: dropping a unary call's future
//!   closes its connection, but the serving process finishes the call.
//! - A `SocketStore` belongs to the Tokio runtime that opened its connections.
//! - Protocol versions are not negotiated: both sides must speak the same one.
//!   Additions that keep every existing frame readable stay within version 1:
//!   a completion's `cache_key` is optional (absent reads as none; an older
//!   server ignores it, so the completion is recorded but not cached), and a
//!   request an older server does not know (`ReleaseTasks`, `CachedFitness`,
//!   `RequeueParked`) is refused by it as malformed, an `Internal` error,
//!   never misread.

mod client;
mod frame;
mod server;
mod wire;

pub use client::SocketStore;
pub use frame::MAX_FRAME;
pub use server::SocketServer;
pub use wire::PROTOCOL_VERSION;

/// The conventional socket path for a store file: `<file>.sock` beside it
/// (`/data/strata.duckdb` → `/data/strata.duckdb.sock`).
pub fn socket_path_for(file: &std::path::Path) -> std::path::PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".sock");
    std::path::PathBuf::from(name)
}
