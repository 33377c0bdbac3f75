//! `DuckDbStore` and its connection handling: opening the file (with a lock
//! wait), migrating the schema, one writer connection behind a mutex, a small
//! pool of cloned read connections, and running every DuckDB call on tokio's
//! blocking pool.

use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use backon::{BlockingRetryable, ExponentialBuilder};
use duckdb::{AccessMode, Config, Connection};
use strata_core::{HealthReport, Result, StoreError, Timestamp};

use crate::config::DuckDbConfig;
use crate::error::{self, BACKEND, ResultExt};
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
}

impl fmt::Debug for DuckDbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DuckDb({})", self.db.path.display())
    }
}

impl DuckDbStore {
    /// Opens (creating when missing) the file and its schema.
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

    /// Runs `work` with the writer connection on the blocking pool. Writes are
    /// serialised by the writer mutex; `work` opens its own transaction.
    pub(crate) async fn with_writer<T, F>(&self, what: &'static str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
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
            let mut details = vec![
                ("path".to_string(), path.display().to_string()),
                ("duckdb_version".to_string(), version),
                ("schema_version".to_string(), schema::SCHEMA_VERSION.to_string()),
            ];
            if let Ok(metadata) = std::fs::metadata(&path) {
                details.push(("file_bytes".to_string(), metadata.len().to_string()));
            }
            details.push(("bars".to_string(), bars.to_string()));
            Ok(HealthReport { backend: BACKEND, ok: answer == 1, details })
        })
        .await
    }
}

/// The shared state behind every clone of a store.
#[derive(Debug)]
pub(crate) struct Database {
    /// Absolute path of the file (or `:memory:`).
    path: PathBuf,
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
    /// migrates the schema and prepares the writer.
    fn open(path: PathBuf, config: &DuckDbConfig) -> Result<Self> {
        let started = Instant::now();
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(1))
            .without_max_times()
            .with_total_delay(Some(config.lock_wait));
        let mut writer = (|| open_connection(&path, config.threads))
            .retry(backoff)
            .sleep(std::thread::sleep)
            .when(error::is_lock_conflict)
            .notify(|_, delay| {
                tracing::info!(path = %path.display(), ?delay, "DuckDB file is locked by another process; retrying");
            })
            .call()
            .map_err(|error| error::open_error(&path, started.elapsed(), error))?;
        migrate(&mut writer)?;
        writer.execute_batch(schema::CREATE_STAGING).during("creating the staging table")?;
        let origin = writer.try_clone().during("opening a read connection")?;
        tracing::debug!(path = %path.display(), "opened DuckDB store");
        Ok(Database {
            path,
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
fn open_files() -> MutexGuard<'static, HashMap<PathBuf, Weak<Database>>> {
    static OPEN_FILES: OnceLock<Mutex<HashMap<PathBuf, Weak<Database>>>> = OnceLock::new();
    OPEN_FILES.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner)
}

fn open_blocking(config: DuckDbConfig) -> Result<DuckDbStore> {
    if config.is_in_memory() {
        return Ok(DuckDbStore { db: Arc::new(Database::open(config.path.clone(), &config)?) });
    }
    let path = absolute_path(&config.path)?;
    let mut open_files = open_files();
    open_files.retain(|_, database| database.strong_count() > 0);
    if let Some(db) = open_files.get(&path).and_then(Weak::upgrade) {
        return Ok(DuckDbStore { db });
    }
    let db = Arc::new(Database::open(path.clone(), &config)?);
    open_files.insert(path, Arc::downgrade(&db));
    Ok(DuckDbStore { db })
}

/// The absolute, symlink-free path of the file, creating its directory.
fn absolute_path(path: &Path) -> Result<PathBuf> {
    let file_name = path
        .file_name()
        .ok_or_else(|| StoreError::invalid(format!("DuckDB path {} does not name a file", path.display())))?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&directory).map_err(|error| {
        StoreError::invalid(format!("cannot create the directory {} of the DuckDB file: {error}", directory.display()))
    })?;
    let directory = directory.canonicalize().map_err(|error| {
        StoreError::invalid(format!("cannot resolve the directory {}: {error}", directory.display()))
    })?;
    Ok(directory.join(file_name))
}

fn open_connection(path: &Path, threads: Option<usize>) -> duckdb::Result<Connection> {
    // No extension may be installed or loaded behind our back: there is no
    // network, and a loaded ICU would change how TIMESTAMPTZ casts behave.
    let mut config = Config::default().access_mode(AccessMode::ReadWrite)?.enable_autoload_extension(false)?;
    if let Some(threads) = threads {
        config = config.threads(i64::try_from(threads.max(1)).unwrap_or(i64::MAX))?;
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
        let error = DuckDbStore::open(config).await.unwrap_err();
        eprintln!("lock error: {error}");
        assert!(matches!(error, StoreError::Unavailable { backend: "duckdb", .. }), "{error:?}");
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
        assert!(store.health_report().await.unwrap().ok);
    }

    #[tokio::test]
    async fn opening_waits_for_a_lock_that_is_released() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("released.duckdb");
        let mut child = hold_in_another_process(&path, Duration::from_millis(500));
        let config = DuckDbConfig::new(&path).with_lock_wait(Duration::from_secs(30));
        let store = DuckDbStore::open(config).await.unwrap();
        assert!(store.health_report().await.unwrap().ok);
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
        assert!(store.health_report().await.unwrap().ok);
    }
}
