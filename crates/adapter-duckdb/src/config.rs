//! `DuckDbConfig`: where the DuckDB file lives and how to open it. A plain
//! struct; only the composition root reads environment variables.

use std::path::PathBuf;
use std::time::Duration;

/// How to open a [`crate::DuckDbStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuckDbConfig {
    /// The database file. `:memory:` opens a private in-memory database.
    pub path: PathBuf,
    /// What to do when the file is missing or this user cannot write it
    /// (default [`OpenMode::Create`]).
    pub mode: OpenMode,
    /// How long to keep retrying, with exponential backoff and jitter, while
    /// another process holds the file's lock. Zero (the default) fails at once.
    pub lock_wait: Duration,
    /// DuckDB worker threads; `None` lets DuckDB use every core.
    pub threads: Option<usize>,
    /// DuckDB's `memory_limit` (`512MB`, `2GiB`): what its buffer pool, sorts and
    /// joins may hold before they evict or spill to `<file>.tmp/`; `None` keeps
    /// DuckDB's default, 80% of the machine's memory.
    pub memory_limit: Option<String>,
}

impl DuckDbConfig {
    /// A config for the file at `path` with no lock wait and DuckDB's default threads.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DuckDbConfig {
            path: path.into(),
            lock_wait: Duration::ZERO,
            threads: None,
            memory_limit: None,
            mode: OpenMode::Create,
        }
    }

    /// Sets [`DuckDbConfig::mode`].
    pub fn with_mode(mut self, mode: OpenMode) -> Self {
        self.mode = mode;
        self
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

/// How [`crate::DuckDbStore::open`] treats the file.
///
/// In every mode an existing file must be a DuckDB database (the bytes
/// `DUCK` at offset 8 of its header): anything else, such as a CSV or
/// Parquet file, an empty file or a directory, is refused with
/// `InvalidInput` and left unchanged. A missing file whose write-ahead log
/// (`FILE.wal`) exists is refused too, because DuckDB would delete that log
/// when creating a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenMode {
    /// For writing: the file (and its directory) is created when missing,
    /// which [`crate::DuckDbStore::created_file`] reports. A file this user
    /// cannot write is refused with `InvalidInput`.
    #[default]
    Create,
    /// For writing to a store that must already exist: a missing file is
    /// `NotFound` and nothing is created. A file this user cannot write is
    /// refused with `InvalidInput`.
    Existing,
    /// For reading: a missing file is `NotFound` and nothing is created (not
    /// even its directory). A file this user cannot write is opened
    /// read-only (DuckDB's `READ_ONLY` access mode, as `duckdb -readonly`),
    /// and writes through that store fail with `InvalidInput`.
    Read,
}
