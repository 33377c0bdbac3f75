//! `DuckDbConfig`: where the DuckDB file lives and how to open it. A plain
//! struct; only the composition root reads environment variables.

use std::path::PathBuf;
use std::time::Duration;

/// How to open a [`crate::DuckDbStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuckDbConfig {
    /// The database file; created (with its parent directory) when missing.
    /// `:memory:` opens a private in-memory database.
    pub path: PathBuf,
    /// How long to keep retrying, with exponential backoff and jitter, while
    /// another process holds the file's lock. Zero (the default) fails at once.
    pub lock_wait: Duration,
    /// DuckDB worker threads; `None` lets DuckDB use every core.
    pub threads: Option<usize>,
}

impl DuckDbConfig {
    /// A config for the file at `path` with no lock wait and DuckDB's default threads.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DuckDbConfig { path: path.into(), lock_wait: Duration::ZERO, threads: None }
    }

    /// Sets [`DuckDbConfig::lock_wait`].
    pub fn with_lock_wait(mut self, lock_wait: Duration) -> Self {
        self.lock_wait = lock_wait;
        self
    }

    /// Sets [`DuckDbConfig::threads`].
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Whether this is a private in-memory database rather than a file.
    pub fn is_in_memory(&self) -> bool {
        self.path.as_os_str() == IN_MEMORY
    }
}

/// The path that opens an in-memory database.
pub const IN_MEMORY: &str = ":memory:";
