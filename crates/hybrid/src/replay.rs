//! The background replayer lives with the failover store (`crate::failover::FailoverStore::drain` and `spawn_replayer`); this module re-exports it under the name the crate doc uses.

pub use crate::failover::{DrainReport, ReplayHandle};
