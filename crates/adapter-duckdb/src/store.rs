//! `DuckDbStore` and its connection handling: opening the file (refusing
//! anything that is not a DuckDB database, creating it only when asked,
//! read-only when this user cannot write it, with a lock wait), migrating
//! the schema, one writer connection behind a mutex, a small pool of cloned
//! read connections, and running every DuckDB call on tokio's blocking pool.

use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use duckdb::{AccessMode, Config, Connection};
use strata_core::policy::Backoff;
use strata_core::{Capabilities, HealthReport, HealthStatus, Result, StoreError, Timestamp};

use crate::config::{DuckDbConfig, OpenMode};
use crate::error::{self, BACKEND, ResultExt};
use crate::file::{self, Found};
use crate::schema;

/// Idle read connections kept for reuse.
const MAX_IDLE_READERS: usize = 8;

/// Market data and evolution state in one DuckDB file.
///
/// Cheap to clone: clones share the database. Opening the same file twice in
/// one process also shares it (DuckDB's file lock only keeps *other*
/// processes out, and two database instances on one file would corrupt it).
#[derive(Clone)]
pub struct DuckDbStore {
    pub(crate) db: Arc<Database>,
    /// Whether the open that made this store created the file.
    created: bool,
}

/// What a DuckDB file store can do: durable, one host (a file lock admits
/// one writing process), digests and deletes inside DuckDB.
pub(crate) const CAPABILITIES: Capabilities = Capabilities {
    durable: true,
    shared_across_hosts: false,
    server_side_digest: true,
    cheap_delete: true,
    transactions: true,
};

impl fmt::Display for DuckDbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(BACKEND)
    }
}

impl fmt::Debug for DuckDbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DuckDb({})", self.db.path.display())
    }
}

impl DuckDbStore {
    /// Opens the file and its schema as `config.mode` says (see
    /// [`OpenMode`]): an existing file that is not a DuckDB database is
    /// refused with `InvalidInput` and left unchanged; a missing file is
    /// created (with its directory) only in [`OpenMode::Create`], else it is
    /// `NotFound` and nothing is created; a file this user cannot write is
    /// opened read-only in [`OpenMode::Read`] and refused with
    /// `InvalidInput` in the writing modes.
    ///
    /// While another process holds the file, retries with exponential backoff
    /// and jitter for up to `config.lock_wait`, then returns `Unavailable`
    /// naming the file and the process that holds it. Opening a file this
    /// process already has open returns a store sharing that database (its
    /// `threads` setting stays as first opened).
    pub async fn open(config: DuckDbConfig) -> Result<Self> {
        run_blocking("opening the database", move || open_blocking(config)).await
    }

    /// The database file (absolute), or `:memory:`.
    pub fn path(&self) -> &Path {
        &self.db.path
    }

    /// Whether opening this store created its file (only [`OpenMode::Create`] does).
    pub fn created_file(&self) -> bool {
        self.created
    }

    /// Whether the file is open read-only because this user cannot write it
    /// (only in [`OpenMode::Read`]); every write then fails with `InvalidInput`.
    pub fn is_read_only(&self) -> bool {
        self.db.read_only
    }

    /// Runs `work` with the writer connection on the blocking pool. Writes are
    /// serialised by the writer mutex; `work` opens its own transaction.
    pub(crate) async fn with_writer<T, F>(&self, what: &'static str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        if self.db.read_only {
            return Err(StoreError::invalid(format!(
                "{what}: the DuckDB store {} is open read-only, because this user cannot write it",
                self.db.path.display()
            )));
        }
        let db = Arc::clone(&self.db);
        run_blocking(what, move || work(&mut db.writer())).await
    }

    /// Runs `work` with a read connection on the blocking pool. Reads see the
    /// latest committed state and do not wait for writers.
    pub(crate) async fn with_reader<T, F>(&self, what: &'static str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        run_blocking(what, move || {
            let reader = Database::reader(&db)?;
            work(&reader)
        })
        .await
    }

    /// A real round trip plus facts about the file.
    pub(crate) async fn health_report(&self) -> Result<HealthReport> {
        let path = self.db.path.clone();
        self.with_reader("checking health", move |connection| {
            let answer: i32 = connection.query_row("SELECT 1", [], |row| row.get(0)).during("running SELECT 1")?;
            let version = connection.version().during("reading the DuckDB version")?;
            let bars: i64 = connection.query_row(schema::COUNT_BARS, [], |row| row.get(0)).during("counting bars")?;
            let status = if answer == 1 { HealthStatus::Healthy } else { HealthStatus::Down };
            let mut details = vec![
                ("path".to_string(), path.display().to_string()),
                ("duckdb_version".to_string(), version),
                ("schema_version".to_string(), schema::SCHEMA_VERSION.to_string()),
            ];
            if let Ok(metadata) = std::fs::metadata(&path) {
                details.push(("file_bytes".to_string(), metadata.len().to_string()));
            }
            details.push(("bars".to_string(), bars.to_string()));
            Ok(HealthReport { backend: BACKEND.to_string(), status, details, components: Vec::new() })
        })
        .await
    }
}

/// The shared state behind every clone of a store.
#[derive(Debug)]
pub(crate) struct Database {
    /// Absolute path of the file (or `:memory:`).
    path: PathBuf,
    /// Opened with DuckDB's `READ_ONLY` access mode: no migration, no writes.
    read_only: bool,
    /// The one connection that writes; it owns the `TEMP` staging table.
    writer: Mutex<Connection>,
    /// A connection used only to clone new read connections, so opening a
    /// reader never waits for a write.
    origin: Mutex<Connection>,
    /// Read connections waiting for reuse.
    idle_readers: Mutex<Vec<Connection>>,
}

impl Database {
    /// Opens the file (waiting for its lock up to `config.lock_wait`),
    /// migrates the schema and prepares the writer; read-only, checks that
    /// the schema is current instead.
    fn open(path: PathBuf, config: &DuckDbConfig, read_only: bool) -> Result<Self> {
        let started = Instant::now();
        // Waits for another process's lock for exactly `lock_wait`: the last
        // attempt is made when the wait ends.
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), config.lock_wait);
        let mut attempt = 0;
        let mut writer = loop {
            attempt += 1;
            match open_connection(&path, config.threads, config.memory_limit.as_deref(), read_only) {
                Ok(connection) => break connection,
                Err(failure) if error::is_lock_conflict(&failure) => {
                    let Some(delay) = backoff.delay_until_budget(attempt, started.elapsed()) else {
                        // "after waiting" only when the caller asked to wait.
                        let waited = if config.lock_wait.is_zero() { Duration::ZERO } else { started.elapsed() };
                        return Err(error::open_error(&path, waited, failure));
                    };
                    if attempt == 1 {
                        tracing::info!(path = %path.display(), wait = ?config.lock_wait, "DuckDB file is locked by another process; waiting");
                    }
                    std::thread::sleep(delay);
                }
                Err(failure) => return Err(error::open_error(&path, started.elapsed(), failure)),
            }
        };
        if read_only {
            check_schema(&writer, &path)?;
        } else {
            migrate(&mut writer)?;
            writer.execute_batch(schema::CREATE_STAGING).during("creating the staging table")?;
        }
        let origin = writer.try_clone().during("opening a read connection")?;
        tracing::debug!(path = %path.display(), read_only, "opened DuckDB store");
        Ok(Database {
            path,
            read_only,
            writer: Mutex::new(writer),
            origin: Mutex::new(origin),
            idle_readers: Mutex::new(Vec::new()),
        })
    }

    /// The writer connection. A panic while it was held leaves no open
    /// transaction behind (a dropped transaction rolls back), so a poisoned
    /// lock is taken over.
    fn writer(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A read connection, reused when one is idle.
    pub(crate) fn reader(db: &Arc<Database>) -> Result<Reader> {
        let idle = db.idle_readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let connection = match idle {
            Some(connection) => connection,
            None => db
                .origin
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .try_clone()
                .during("opening a read connection")?,
        };
        Ok(Reader { db: Arc::clone(db), connection: Some(connection) })
    }
}

/// A read connection that goes back to the pool when dropped.
#[derive(Debug)]
pub(crate) struct Reader {
    db: Arc<Database>,
    connection: Option<Connection>,
}

impl Deref for Reader {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.connection.as_ref().expect("a reader holds its connection until dropped")
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            let mut idle = self.db.idle_readers.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(connection);
            }
        }
    }
}

/// Runs blocking DuckDB work on tokio's blocking pool.
pub(crate) async fn run_blocking<T, F>(what: &'static str, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join_error) => Err(error::internal(what, join_error)),
    }
}

/// Files this process has open, so a second open shares the first database.
pub(crate) fn open_files() -> MutexGuard<'static, HashMap<PathBuf, Weak<Database>>> {
    static OPEN_FILES: OnceLock<Mutex<HashMap<PathBuf, Weak<Database>>>> = OnceLock::new();
    OPEN_FILES.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner)
}

fn open_blocking(config: DuckDbConfig) -> Result<DuckDbStore> {
    if config.is_in_memory() {
        return Ok(DuckDbStore { db: Arc::new(Database::open(config.path.clone(), &config, false)?), created: false });
    }
    let path = absolute_path(&config.path, config.mode)?;
    let mut open_files = open_files();
    open_files.retain(|_, database| database.strong_count() > 0);
    if let Some(db) = open_files.get(&path).and_then(Weak::upgrade) {
        if db.read_only && config.mode != OpenMode::Read {
            return Err(file::read_only_error(&path));
        }
        return Ok(DuckDbStore { db, created: false });
    }
    // Only a file this process does not have open is looked at (see `file`).
    let (read_only, created) = match (file::inspect(&path)?, config.mode) {
        (Found::Missing, OpenMode::Create) => {
            file::check_can_create(&path)?;
            (false, true)
        }
        (Found::Missing, OpenMode::Existing | OpenMode::Read) => {
            return Err(StoreError::not_found(format!(
                "DuckDB store {} (the file does not exist; nothing was created)",
                path.display()
            )));
        }
        (Found::Database { writable: true }, _) => (false, false),
        (Found::Database { writable: false }, OpenMode::Read) => (true, false),
        (Found::Database { writable: false }, OpenMode::Create | OpenMode::Existing) => {
            return Err(file::read_only_error(&path));
        }
    };
    let db = Arc::new(Database::open(path.clone(), &config, read_only)?);
    if created {
        tracing::info!(path = %path.display(), "created a new DuckDB store");
    }
    open_files.insert(path, Arc::downgrade(&db));
    Ok(DuckDbStore { db, created })
}

/// The absolute, symlink-free path of the file. Creates its directory in
/// [`OpenMode::Create`]; in the other modes a missing directory is `NotFound`.
pub(crate) fn absolute_path(path: &Path, mode: OpenMode) -> Result<PathBuf> {
    let file_name = path
        .file_name()
        .ok_or_else(|| StoreError::invalid(format!("DuckDB path {} does not name a file", path.display())))?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if mode != OpenMode::Create && !directory.is_dir() {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        return Err(StoreError::not_found(format!(
            "DuckDB store {} (its directory {} does not exist; nothing was created)",
            absolute.display(),
            directory.display()
        )));
    }
    std::fs::create_dir_all(&directory).map_err(|error| {
        StoreError::invalid(format!("cannot create the directory {} of the DuckDB file: {error}", directory.display()))
    })?;
    let directory = directory.canonicalize().map_err(|error| {
        StoreError::invalid(format!("cannot resolve the directory {}: {error}", directory.display()))
    })?;
    Ok(directory.join(file_name))
}

pub(crate) fn open_connection(
    path: &Path,
    threads: Option<usize>,
    memory_limit: Option<&str>,
    read_only: bool,
) -> duckdb::Result<Connection> {
    // No extension may be installed or loaded behind our back: there is no
    // network, and a loaded ICU would change how TIMESTAMPTZ casts behave.
    let access = if read_only { AccessMode::ReadOnly } else { AccessMode::ReadWrite };
    let mut config = Config::default().access_mode(access)?.enable_autoload_extension(false)?;
    if let Some(threads) = threads {
        config = config.threads(i64::try_from(threads.max(1)).unwrap_or(i64::MAX))?;
    }
    if let Some(limit) = memory_limit {
        config = config.max_memory(limit)?;
    }
    Connection::open_with_flags(path, config)
}

/// Brings the file's schema to [`schema::SCHEMA_VERSION`] in one transaction.
fn migrate(connection: &mut Connection) -> Result<()> {
    let transaction = connection.transaction().during("starting the schema migration")?;
    transaction.execute_batch(schema::CREATE_VERSION_TABLE).during("creating the schema_version table")?;
    let current: Option<i32> =
        transaction.query_row(schema::CURRENT_VERSION, [], |row| row.get(0)).during("reading the schema version")?;
    let current = current.unwrap_or(0);
    if current > schema::SCHEMA_VERSION {
        return Err(StoreError::internal(
            BACKEND,
            format!(
                "the file has schema version {current} but this build knows only up to {}; use a newer strata",
                schema::SCHEMA_VERSION
            ),
        ));
    }
    for (version, migration) in schema::MIGRATIONS.iter().enumerate().skip(usize::try_from(current).unwrap_or(0)) {
        transaction.execute_batch(migration).during("migrating the schema")?;
        let applied = i32::try_from(version + 1).unwrap_or(i32::MAX);
        transaction
            .execute(schema::RECORD_VERSION, duckdb::params![applied, Timestamp::now().micros()])
            .during("recording the schema version")?;
    }
    transaction.commit().during("committing the schema migration")
}

/// Checks, without writing, that a file opened read-only has this build's
/// schema: it cannot be migrated, so an older or a foreign one is refused.
fn check_schema(connection: &Connection, path: &Path) -> Result<()> {
    let has_version_table: bool = connection
        .query_row(schema::HAS_VERSION_TABLE, [], |row| row.get(0))
        .during("looking for the schema_version table")?;
    let current: Option<i32> = if has_version_table {
        connection.query_row(schema::CURRENT_VERSION, [], |row| row.get(0)).during("reading the schema version")?
    } else {
        None
    };
    match current {
        Some(version) if version == schema::SCHEMA_VERSION => Ok(()),
        Some(version) if version > schema::SCHEMA_VERSION => Err(StoreError::internal(
            BACKEND,
            format!(
                "the file has schema version {version} but this build knows only up to {}; use a newer strata",
                schema::SCHEMA_VERSION
            ),
        )),
        found => Err(StoreError::invalid(format!(
            "{} is read-only for this user and {}; it can only be read once a user who can write it has \
             opened it with this version of strata",
            path.display(),
            match found {
                Some(version) => format!(
                    "has schema version {version}, older than this build's {}, so it cannot be migrated",
                    schema::SCHEMA_VERSION
                ),
                None => "is a DuckDB database without Strata's tables".to_string(),
            }
        ))),
    }
}

/// A store on a fresh file in a new temporary directory (for unit tests);
/// keep the directory alive as long as the store.
#[cfg(test)]
pub(crate) async fn open_in_temp_dir() -> (tempfile::TempDir, DuckDbStore) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let config = crate::DuckDbConfig::new(directory.path().join("test.duckdb"));
    let store = DuckDbStore::open(config).await.expect("a DuckDB store in a temporary directory");
    (directory, store)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::BufRead;
    use std::process::{Child, Command, Stdio};

    use super::*;

    /// Environment variable that turns [`lock_holder_child`] into a process holding a file.
    const LOCK_CHILD: &str = "STRATA_DUCKDB_TEST_LOCK_CHILD";
    /// How long the child holds the file, in milliseconds.
    const LOCK_HOLD_MS: &str = "STRATA_DUCKDB_TEST_LOCK_HOLD_MS";

    /// Not a test on its own: when [`LOCK_CHILD`] names a file, opens it,
    /// says so on stdout and holds it for [`LOCK_HOLD_MS`] (default a minute).
    #[tokio::test]
    async fn lock_holder_child() {
        let Ok(path) = std::env::var(LOCK_CHILD) else { return };
        let hold = std::env::var(LOCK_HOLD_MS).ok().and_then(|ms| ms.parse().ok()).unwrap_or(60_000);
        let store = DuckDbStore::open(DuckDbConfig::new(path)).await.unwrap();
        println!("holding");
        std::thread::sleep(Duration::from_millis(hold));
        drop(store);
    }

    /// Starts this test binary as a second process holding `path`, and waits until it does.
    fn hold_in_another_process(path: &Path, hold: Duration) -> Child {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "store::tests::lock_holder_child", "--nocapture", "--test-threads=1"])
            .env(LOCK_CHILD, path)
            .env(LOCK_HOLD_MS, hold.as_millis().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        loop {
            let line = lines.next().expect("the lock holder died before holding").unwrap();
            // The test harness prints the test's name on the same line first.
            if line.ends_with("holding") {
                break;
            }
        }
        child
    }

    #[tokio::test]
    async fn a_file_held_by_another_process_is_unavailable_with_a_useful_message() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().canonicalize().unwrap().join("held.duckdb");
        let mut child = hold_in_another_process(&path, Duration::from_secs(60));

        let config = DuckDbConfig::new(&path).with_lock_wait(Duration::from_millis(400));
        let started = Instant::now();
        let error = DuckDbStore::open(config).await.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(400), "waited the whole lock wait: {:?}", started.elapsed());
        eprintln!("lock error: {error}");
        assert!(matches!(error, StoreError::Unavailable { .. }) && error.backend() == Some("duckdb"), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(&format!("PID {}", child.id())), "{message}");
        assert!(message.contains("STRATA_DUCKDB_PATH"), "{message}");
        assert!(message.contains("after waiting"), "{message}");
        let no_wait = DuckDbStore::open(DuckDbConfig::new(&path)).await.unwrap_err();
        assert!(matches!(no_wait, StoreError::Unavailable { .. }), "{no_wait:?}");

        child.kill().unwrap();
        child.wait().unwrap();
        let store = DuckDbStore::open(DuckDbConfig::new(&path)).await.unwrap();
        assert!(store.health_report().await.unwrap().ok());
    }

    #[tokio::test]
    async fn opening_waits_for_a_lock_that_is_released() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("released.duckdb");
        let mut child = hold_in_another_process(&path, Duration::from_millis(500));
        let config = DuckDbConfig::new(&path).with_lock_wait(Duration::from_secs(30));
        let store = DuckDbStore::open(config).await.unwrap();
        assert!(store.health_report().await.unwrap().ok());
        child.wait().unwrap();
    }

    #[tokio::test]
    async fn opening_a_file_twice_in_one_process_shares_it_and_reopening_keeps_the_data() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nested").join("shared.duckdb");
        let first = DuckDbStore::open(DuckDbConfig::new(&path)).await.unwrap();
        let relative_alias = directory.path().join("nested").join("..").join("nested").join("shared.duckdb");
        let second = DuckDbStore::open(DuckDbConfig::new(relative_alias)).await.unwrap();
        assert!(Arc::ptr_eq(&first.db, &second.db));
        first
            .with_writer("test", |connection| {
                connection.execute_batch("INSERT INTO workers VALUES ('w', 'h', 1, 0, 0)").during("insert")
            })
            .await
            .unwrap();
        drop((first, second));
        let reopened = DuckDbStore::open(DuckDbConfig::new(&path)).await.unwrap();
        let workers: i64 = reopened
            .with_reader("test", |connection| {
                connection.query_row("SELECT count(*) FROM workers", [], |row| row.get(0)).during("count")
            })
            .await
            .unwrap();
        assert_eq!(workers, 1);
        let version: i32 = reopened
            .with_reader("test", |connection| {
                connection.query_row(schema::CURRENT_VERSION, [], |row| row.get(0)).during("version")
            })
            .await
            .unwrap();
        assert_eq!(version, schema::SCHEMA_VERSION);
    }

    #[tokio::test]
    async fn in_memory_databases_work() {
        let store = DuckDbStore::open(DuckDbConfig::new(crate::IN_MEMORY)).await.unwrap();
        assert!(store.health_report().await.unwrap().ok());
    }

    const MODES: [OpenMode; 3] = [OpenMode::Create, OpenMode::Existing, OpenMode::Read];

    /// Opens `path` in `mode`, expecting `InvalidInput`; returns its message.
    async fn refused(path: &Path, mode: OpenMode) -> String {
        let error = DuckDbStore::open(DuckDbConfig::new(path).with_mode(mode)).await.unwrap_err();
        assert!(matches!(error, StoreError::InvalidInput(_)), "{mode:?} {}: {error:?}", path.display());
        error.to_string()
    }

    /// The names in `directory`, sorted.
    fn names(directory: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(directory)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// One bar, to see that data survives.
    fn a_bar() -> strata_core::Bar {
        strata_core::Bar {
            symbol: "AAPL".into(),
            timestamp: Timestamp::parse("2000-01-03").unwrap(),
            open: 1.5,
            high: 2.0,
            low: 1.0,
            close: 1.75,
            volume: 100.0,
            vwap: None,
            trade_count: None,
        }
    }

    #[tokio::test]
    async fn a_real_duckdb_file_has_duck_at_offset_8() {
        let (directory, store) = open_in_temp_dir().await;
        drop(store);
        let bytes = std::fs::read(directory.path().join("test.duckdb")).unwrap();
        assert_eq!(&bytes[file::MAGIC_OFFSET..file::MAGIC_OFFSET + 4], file::MAGIC);
        assert!(file::is_duckdb_header(&bytes));
    }

    #[tokio::test]
    async fn files_that_are_not_duckdb_databases_are_refused_in_every_mode_and_left_unchanged() {
        let directory = tempfile::tempdir().unwrap();
        let csv = b"symbol,date,open,high,low,close,volume\nAAPL,2000-01-03,1.5,2,1,1.75,100\n".to_vec();
        let mut parquet = b"PAR1\x15\x04\x15\x80\x01\x15\x80\x01".to_vec();
        parquet.extend_from_slice(b"\x00\x00\x00\x00PAR1");
        let random: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let cases: [(&str, Vec<u8>, &str); 5] = [
            ("s.csv", csv, "it looks like a CSV file"),
            ("s.parquet", parquet, "it looks like a Parquet file"),
            ("random.duckdb", random, "it looks like a file in an unknown format"),
            ("empty.duckdb", Vec::new(), "is an empty file"),
            ("short.duckdb", b"DUCKDUCK".to_vec(), "it looks like a text file"),
        ];
        for (name, bytes, expected) in &cases {
            let path = directory.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            for mode in MODES {
                let message = refused(&path, mode).await;
                assert!(message.contains(&path.display().to_string()), "{message}");
                assert!(message.contains(expected), "{name} {mode:?}: {message}");
                assert_eq!(&std::fs::read(&path).unwrap(), bytes, "{name} changed");
            }
        }
        let folder = directory.path().join("folder");
        std::fs::create_dir(&folder).unwrap();
        for mode in MODES {
            assert!(refused(&folder, mode).await.contains("is a directory"));
        }
        let mut expected: Vec<String> = cases.iter().map(|(name, ..)| name.to_string()).collect();
        expected.push("folder".to_string());
        expected.sort();
        assert_eq!(names(directory.path()), expected, "no write-ahead log or other file appeared");
        assert!(names(&folder).is_empty());
    }

    #[tokio::test]
    async fn a_missing_file_is_created_only_in_create_mode() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("not").join("there").join("typo.duckdb");
        for mode in [OpenMode::Existing, OpenMode::Read] {
            let error = DuckDbStore::open(DuckDbConfig::new(&path).with_mode(mode)).await.unwrap_err();
            assert!(matches!(error, StoreError::NotFound { .. }), "{error:?}");
            assert!(error.to_string().contains("typo.duckdb"), "{error}");
            assert!(names(directory.path()).is_empty(), "{mode:?} created {:?}", names(directory.path()));
        }
        let sibling = directory.path().join("typo.duckdb");
        for mode in [OpenMode::Existing, OpenMode::Read] {
            let error = DuckDbStore::open(DuckDbConfig::new(&sibling).with_mode(mode)).await.unwrap_err();
            assert!(matches!(error, StoreError::NotFound { .. }), "{error:?}");
            assert!(error.to_string().contains(&sibling.display().to_string()), "{error}");
            assert!(names(directory.path()).is_empty());
        }

        let created = DuckDbStore::open(DuckDbConfig::new(&path).with_mode(OpenMode::Create)).await.unwrap();
        assert!(created.created_file() && !created.is_read_only());
        drop(created);
        for mode in MODES {
            let reopened = DuckDbStore::open(DuckDbConfig::new(&path).with_mode(mode)).await.unwrap();
            assert!(!reopened.created_file(), "{mode:?}");
            assert!(!reopened.is_read_only(), "{mode:?}: a writable file is opened read-write");
        }
    }

    #[tokio::test]
    async fn an_orphaned_write_ahead_log_is_never_deleted() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("strata.duckdb");
        let wal = directory.path().join("strata.duckdb.wal");
        std::fs::write(&wal, b"log entries of a database that was moved away").unwrap();
        for mode in MODES {
            let message = refused(&path, mode).await;
            assert!(message.contains("write-ahead log") && message.contains(&wal.display().to_string()), "{message}");
        }
        assert_eq!(std::fs::read(&wal).unwrap(), b"log entries of a database that was moved away");
        assert!(!path.exists());
        let message = refused(&wal, OpenMode::Read).await;
        assert!(message.contains(&format!("the database it belongs to is {}", path.display())), "{message}");
    }

    /// Tests run as root in CI, and root may write any file: `writable` then
    /// goes by the permission bits (no write bit at all means read-only, as
    /// `chmod a-w` intends), so this test means the same for root and others.
    #[tokio::test]
    async fn a_file_this_user_cannot_write_is_read_read_only_and_never_written() {
        use std::os::unix::fs::PermissionsExt as _;
        use strata_core::{BarBatch, BarQuery, MarketDataStore as _, MarketDataStoreExt as _, Symbol};

        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("shared.duckdb");
        let store = DuckDbStore::open(DuckDbConfig::new(&path)).await.unwrap();
        store.write_bars(BarBatch::from_bars(&[a_bar()])).await.unwrap();
        drop(store);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
        let before = std::fs::read(&path).unwrap();
        let listing = names(directory.path());

        for mode in [OpenMode::Create, OpenMode::Existing] {
            let message = refused(&path, mode).await;
            assert!(message.contains("read-only for this user"), "{message}");
        }
        let store = DuckDbStore::open(DuckDbConfig::new(&path).with_mode(OpenMode::Read)).await.unwrap();
        assert!(store.is_read_only() && !store.created_file());
        let bars = store.collect_bars(BarQuery::symbol(Symbol::new("AAPL").unwrap())).await.unwrap();
        assert_eq!(bars, vec![a_bar()]);
        assert_eq!(store.summary().await.unwrap().total_rows(), 1);
        assert!(store.health().await.unwrap().ok());
        let write = store.write_bars(BarBatch::from_bars(&[a_bar()])).await.unwrap_err();
        assert!(matches!(write, StoreError::InvalidInput(_)), "{write:?}");
        assert!(write.to_string().contains("open read-only"), "{write}");
        // A second open in this process shares the read-only database, but not for writing.
        let again = DuckDbStore::open(DuckDbConfig::new(&path).with_mode(OpenMode::Read)).await.unwrap();
        assert!(Arc::ptr_eq(&store.db, &again.db));
        assert!(refused(&path, OpenMode::Create).await.contains("read-only"));
        drop((store, again));

        assert_eq!(std::fs::read(&path).unwrap(), before, "a read-only open changed the file");
        assert_eq!(names(directory.path()), listing, "a read-only open left a file behind");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o444);
    }

    #[tokio::test]
    async fn a_read_only_duckdb_file_without_strata_tables_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;

        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("foreign.duckdb");
        let connection = Connection::open(&path).unwrap();
        connection.execute_batch("CREATE TABLE notes (text VARCHAR); INSERT INTO notes VALUES ('hi')").unwrap();
        drop(connection);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
        let message = refused(&path, OpenMode::Read).await;
        assert!(message.contains("without Strata's tables"), "{message}");
    }
}
