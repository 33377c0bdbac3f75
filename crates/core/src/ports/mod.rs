//! The three ports: traits that adapters implement and callers hold as `Arc<dyn Port>`.

pub mod evolution;
pub mod market;
pub mod provision;

/// What a store can do, as plain facts a decorator or the composition root
/// reads to refuse a composition that makes no sense (a cache that is not
/// durable cannot hold a write journal; a store one host owns cannot
/// coordinate workers on many hosts).
///
/// An operation a store cannot do at all returns
/// [`StoreError::Unsupported`](crate::StoreError::Unsupported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Capabilities {
    /// Acknowledged writes survive a crash of this process.
    pub durable: bool,
    /// Processes on other hosts can open the same store at once.
    pub shared_across_hosts: bool,
    /// `digest` runs inside the backend (no rows cross the wire).
    pub server_side_digest: bool,
    /// `delete_bars` does not rewrite unrelated data.
    pub cheap_delete: bool,
    /// A write and its checks commit together or not at all.
    pub transactions: bool,
}

impl Capabilities {
    /// The capabilities of both `a` and `b` (what a store composed of the two
    /// can promise when every operation goes through both).
    pub fn intersection(a: Capabilities, b: Capabilities) -> Capabilities {
        Capabilities {
            durable: a.durable && b.durable,
            shared_across_hosts: a.shared_across_hosts && b.shared_across_hosts,
            server_side_digest: a.server_side_digest && b.server_side_digest,
            cheap_delete: a.cheap_delete && b.cheap_delete,
            transactions: a.transactions && b.transactions,
        }
    }
}
