//! The three ports: traits that adapters implement and callers hold as `Arc<dyn Port>`.

pub mod evolution;
pub mod market;
pub mod provision;
