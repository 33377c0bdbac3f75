//! `EfsConfig`: where the dataset lives and the knobs of its write protocol (no environment reading).

use std::path::PathBuf;
use std::time::Duration;

/// How to open an [`EfsStore`](crate::EfsStore). The composition root fills
/// it (from `STRATA_EFS_ROOT` and flags); this crate never reads the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfsConfig {
    /// The dataset's root directory (a mounted share). It must exist: the
    /// store refuses to create it, so an unmounted share is an error rather
    /// than a dataset silently written to the local disk under the mount point.
    pub root: PathBuf,
    /// A write that leaves a partition with more than this many data files
    /// compacts that partition (merges them into one). Default 16.
    pub compact_after_files: usize,
    /// Staging files and unresolved multi-partition batches older than this
    /// are a crashed writer's leftovers: health reports them and compaction
    /// removes or aborts them. Only liveness depends on it, never correctness
    /// (an abort is a no-replace publish that a live writer's commit loses or
    /// wins atomically). Default 15 minutes.
    pub stale_after: Duration,
    /// Rows per Parquet row group (the unit of statistics pruning). Default 131,072.
    pub row_group_rows: usize,
    /// The most rows one batch of a query stream holds. Default 65,536.
    pub query_batch_rows: usize,
}

impl EfsConfig {
    /// The defaults for a dataset under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        EfsConfig {
            root: root.into(),
            compact_after_files: 16,
            stale_after: Duration::from_secs(15 * 60),
            row_group_rows: 131_072,
            query_batch_rows: 65_536,
        }
    }

    /// Sets [`Self::compact_after_files`] (at least 1).
    pub fn with_compact_after_files(mut self, files: usize) -> Self {
        self.compact_after_files = files.max(1);
        self
    }

    /// Sets [`Self::stale_after`].
    pub fn with_stale_after(mut self, age: Duration) -> Self {
        self.stale_after = age;
        self
    }
}
