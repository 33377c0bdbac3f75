//! An in-process fake of the Neon API v2 for tests (feature `fake-server`):
//! in-memory projects, branches, endpoints, databases, roles, operations and
//! API keys; synthetic, deterministic consumption for the v2 consumption
//! endpoints (see [`FAKE_ORG_ID`] and the `consumption` module); operations
//! that go from `running` to `finished` after a delay,
//! 423 for mutations while they run; 404/409/422 with the API's error body;
//! and fault injection (error statuses, HTML bodies, 429 with `Retry-After`,
//! delays, dropped connections).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use strata_neon_api::fake::{Fault, FakeNeon, FakeNeonConfig};
//!
//! let fake = FakeNeon::start(FakeNeonConfig::default()).await?;
//! let project = fake.seed_project("demo");
//! fake.inject(Fault::rate_limited("1").times(2));
//! println!("point NEON_API_BASE_URL at {} (project {project})", fake.base_url());
//! # Ok(()) }
//! ```

mod consumption;
mod routes;

pub use consumption::{FAKE_CHILD_BRANCH_BYTES, FAKE_MONTH_SECONDS, FAKE_ORG_ID, FAKE_ROOT_BRANCH_BYTES};

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct FakeNeonConfig {
    /// The API key the fake accepts; `None` accepts any non-empty bearer token.
    pub api_key: Option<String>,
    /// How long an operation stays `running` before it is `finished`.
    pub operation_duration: Duration,
    /// Whether mutations of a project answer 423 while its operations run (as the real API does).
    pub lock_while_running: bool,
    /// Whether new projects store role passwords (so `reveal_password` works).
    pub store_passwords: bool,
    /// The status an operation shows while it runs (`running`; tests may use an unknown value).
    pub running_status: String,
    /// A real PostgreSQL server (`postgresql://host:port/?sslmode=disable`) that every
    /// connection URI the fake hands out points at, pooled and direct alike, with the
    /// database, role and password of the API call; only its scheme, host, port and
    /// query parameters are used. `None` (the default) gives URIs of made-up
    /// `*.fake.neon.local` hosts that lead nowhere. The fake creates nothing on that
    /// server: each database and role must exist there already (see [`postgres_setup`]).
    pub postgres: Option<url::Url>,
    /// With `postgres`: a branch other than the project's default has databases of its
    /// own on that server, named by [`branch_database_name`], so a test can stand a
    /// second database in for a branch's copy of the data (a real branch is a
    /// copy-on-write snapshot; the fake copies nothing, the test makes the database).
    pub branch_databases: bool,
}

/// The database on the real server that stands for `database` of the non-default
/// branch `branch` under [`FakeNeonConfig::branch_databases`]: `<database>_<branch>`,
/// the branch name in lowercase letters, digits and `_`, cut to PostgreSQL's 63 bytes.
pub fn branch_database_name(database: &str, branch: &str) -> String {
    let safe: String =
        branch.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let mut name = format!("{database}_{safe}");
    name.truncate(63);
    name
}

/// Parses a `--postgres` URL for [`FakeNeonConfig::postgres`]: a `postgres://` or
/// `postgresql://` URL with a host.
pub fn parse_postgres_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text.trim()).map_err(|error| format!("not a URL: {error}"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!("expected a postgres:// or postgresql:// URL, got scheme {:?}", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL names no host (e.g. postgres://127.0.0.1:5432/?sslmode=disable)".to_owned());
    }
    Ok(url)
}

/// The connection URI of `role` (with `password`) to `database` on the real
/// server `server`: its scheme (as `postgresql`), host, port and query
/// parameters (`sslmode=...`), nothing else of it.
pub fn real_server_uri(server: &url::Url, role: &str, password: &str, database: &str) -> String {
    let mut uri = server.clone();
    // Both schemes are non-special, so these setters cannot fail on a URL with a host.
    let _ = uri.set_scheme("postgresql");
    let _ = uri.set_username(role);
    let _ = uri.set_password(Some(password));
    uri.set_path(&format!("/{database}"));
    uri.set_fragment(None);
    uri.to_string()
}

/// Shell commands that create `role` and `database` (owned by the role) on the real
/// server `server`, as its `--postgres` URL's user (a superuser, or one allowed to
/// create roles and databases): what a user runs before connecting through the
/// fake's URIs. The last one sets the role's password, for servers that ask for it.
pub fn postgres_setup(server: &url::Url, role: &str, database: &str, password: &str) -> Vec<String> {
    let mut target = String::new();
    if let Some(host) = server.host_str() {
        target.push_str(&format!(" -h {}", host.trim_start_matches('[').trim_end_matches(']')));
    }
    if let Some(port) = server.port() {
        target.push_str(&format!(" -p {port}"));
    }
    if !server.username().is_empty() {
        target.push_str(&format!(" -U {}", shell_word(server.username())));
    }
    let sql = format!("ALTER ROLE \"{role}\" PASSWORD '{password}'");
    vec![
        format!("createuser{target} --login {}", shell_word(role)),
        format!("createdb{target} --owner {} {}", shell_word(role), shell_word(database)),
        format!("psql{target} -d postgres -c {}", shell_word(&sql)),
    ]
}

/// `text` quoted for a POSIX shell when it needs it.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':' | '@' | '%' | '+'));
    if plain { text.to_owned() } else { format!("'{}'", text.replace('\'', "'\\''")) }
}

impl Default for FakeNeonConfig {
    fn default() -> Self {
        FakeNeonConfig {
            api_key: None,
            operation_duration: Duration::from_millis(50),
            lock_while_running: true,
            store_passwords: true,
            running_status: "running".to_owned(),
            postgres: None,
            branch_databases: false,
        }
    }
}

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status and the API's JSON error body.
    Status(u16),
    /// Answer with this status and an HTML body, as a proxy in front of the API would.
    HtmlStatus(u16),
    /// Answer 429 with this `Retry-After` value (seconds or an HTTP date).
    RateLimited(String),
    /// Answer 503 with this `Retry-After` value.
    Unavailable(String),
    /// Wait this long, then handle the request normally.
    Delay(Duration),
    /// Send the headers, then drop the connection before the body.
    DropConnection,
}

/// A fault applied to the next matching requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// What happens.
    pub kind: FaultKind,
    /// Only requests with this method (any when `None`).
    pub method: Option<String>,
    /// Only requests whose path (after `/api/v2`) contains this text (any when `None`).
    pub path_contains: Option<String>,
    /// How many requests it applies to.
    pub times: u32,
}

impl Fault {
    fn new(kind: FaultKind) -> Self {
        Fault { kind, method: None, path_contains: None, times: 1 }
    }

    /// An error status with the API's JSON error body.
    pub fn status(status: u16) -> Self {
        Fault::new(FaultKind::Status(status))
    }

    /// An error status with an HTML body (a proxy's 502 page).
    pub fn html(status: u16) -> Self {
        Fault::new(FaultKind::HtmlStatus(status))
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after: impl Into<String>) -> Self {
        Fault::new(FaultKind::RateLimited(retry_after.into()))
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(retry_after: impl Into<String>) -> Self {
        Fault::new(FaultKind::Unavailable(retry_after.into()))
    }

    /// A delay before the normal answer.
    pub fn delay(delay: Duration) -> Self {
        Fault::new(FaultKind::Delay(delay))
    }

    /// A connection dropped before the body.
    pub fn drop_connection() -> Self {
        Fault::new(FaultKind::DropConnection)
    }

    /// Applies to the next `times` matching requests.
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }

    /// Applies only to requests with `method` whose path contains `path`.
    pub fn on(mut self, method: &str, path: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self.path_contains = Some(path.to_owned());
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|wanted| wanted == method)
            && self.path_contains.as_deref().is_none_or(|wanted| path.contains(wanted))
    }
}

/// A request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path after `/api/v2`, percent-decoded.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// JSON body, if any.
    pub body: Option<Value>,
    /// Status answered (0 for a dropped connection).
    pub status: u16,
    /// JSON body answered, if any.
    pub response: Option<Value>,
}

/// A running fake server. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeNeon {
    address: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Mutex<FakeNeonConfig>,
    pub(crate) state: Mutex<State>,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn config(&self) -> FakeNeonConfig {
        self.config.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) counter: u64,
    pub(crate) projects: BTreeMap<String, FakeProject>,
    pub(crate) api_keys: Vec<Value>,
    pub(crate) faults: VecDeque<Fault>,
    pub(crate) requests: Vec<RecordedRequest>,
    pub(crate) failing_operations: u32,
}

#[derive(Debug)]
pub(crate) struct FakeProject {
    pub(crate) json: Value,
    pub(crate) branches: BTreeMap<String, FakeBranch>,
    pub(crate) branch_order: Vec<String>,
    pub(crate) endpoints: BTreeMap<String, Value>,
    pub(crate) operations: Vec<FakeOperation>,
}

#[derive(Debug)]
pub(crate) struct FakeBranch {
    pub(crate) json: Value,
    pub(crate) databases: BTreeMap<String, Value>,
    pub(crate) roles: BTreeMap<String, FakeRole>,
}

#[derive(Debug)]
pub(crate) struct FakeRole {
    pub(crate) json: Value,
    pub(crate) password: String,
}

#[derive(Debug)]
pub(crate) struct FakeOperation {
    pub(crate) json: Value,
    pub(crate) finish_at: Instant,
    pub(crate) final_status: &'static str,
    pub(crate) running_status: String,
}

impl FakeOperation {
    pub(crate) fn is_running(&self, now: Instant) -> bool {
        now < self.finish_at
    }

    pub(crate) fn status(&self, now: Instant) -> &str {
        if self.is_running(now) { &self.running_status } else { self.final_status }
    }

    pub(crate) fn to_json(&self, now: Instant) -> Value {
        let mut json = self.json.clone();
        json["status"] = Value::from(self.status(now));
        json
    }
}

impl FakeNeon {
    /// Starts a fake on a free loopback port.
    pub async fn start(config: FakeNeonConfig) -> std::io::Result<FakeNeon> {
        FakeNeon::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts a fake on `address` (port 0 picks a free one).
    pub async fn bind(address: SocketAddr, config: FakeNeonConfig) -> std::io::Result<FakeNeon> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared { config: Mutex::new(config), state: Mutex::new(State::default()) });
        let router = routes::router(Arc::clone(&shared));
        let (shutdown, shutdown_signal) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = shutdown_signal.await;
            });
            if let Err(error) = server.await {
                tracing::warn!(%error, "fake neon server stopped");
            }
        });
        Ok(FakeNeon { address, shared, shutdown: Some(shutdown), task: Some(task) })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The base URL to give a client, ending in `/api/v2`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v2", self.address)
    }

    /// Queues a fault for the next matching requests.
    pub fn inject(&self, fault: Fault) {
        self.shared.state().faults.push_back(fault);
    }

    /// Removes every queued fault.
    pub fn clear_faults(&self) {
        self.shared.state().faults.clear();
    }

    /// Makes the next `count` operations end in `failed` instead of `finished`.
    pub fn fail_next_operations(&self, count: u32) {
        self.shared.state().failing_operations = count;
    }

    /// Changes how long operations run.
    pub fn set_operation_duration(&self, duration: Duration) {
        self.shared.config.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).operation_duration = duration;
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.clone()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        self.shared.state().requests.len()
    }

    /// Creates a project directly (no operations to wait for) with a default branch
    /// `main`, a read-write compute, the role `neondb_owner` and the database `neondb`.
    /// Returns its id.
    pub fn seed_project(&self, name: &str) -> String {
        let mut state = self.shared.state();
        let config = self.shared.config();
        routes::insert_project(&mut state, &config, name, None, None).0
    }

    /// Like [`FakeNeon::seed_project`] with the database `database` owned by the role
    /// `role` instead of `neondb` and `neondb_owner`. Returns the project id.
    pub fn seed_project_with(&self, name: &str, database: &str, role: &str) -> String {
        let mut state = self.shared.state();
        let config = self.shared.config();
        let options = serde_json::json!({ "branch": { "database_name": database, "role_name": role } });
        routes::insert_project(&mut state, &config, name, Some(&options), None).0
    }

    /// The password of `role` on the default branch of `project_id` (for the
    /// banner of `strata neon fake-server --postgres`).
    pub fn role_password(&self, project_id: &str, role: &str) -> Option<String> {
        let state = self.shared.state();
        let project = state.projects.get(project_id)?;
        let branch = project.branches.values().find(|branch| branch.json["default"] == true)?;
        branch.roles.get(role).map(|role| role.password.clone())
    }

    /// What `strata neon fake-server` prints at start for the project
    /// `project_id`: how its URIs are made and, with a real server behind them
    /// (`postgres`), the commands that create the seeded `database` and `role`
    /// there; then the `export` lines, last, so scripts may stop reading there.
    pub fn banner(&self, project_id: &str, postgres: Option<&url::Url>, database: &str, role: &str) -> Vec<String> {
        let mut lines = vec!["Fake Neon API listening (any API key is accepted).".to_string()];
        match postgres {
            Some(server) => {
                let password = self.role_password(project_id, role).unwrap_or_default();
                let address = match (server.host_str(), server.port()) {
                    (Some(host), Some(port)) => format!("{host}:{port}"),
                    (host, _) => host.unwrap_or_default().to_owned(),
                };
                lines.push(format!(
                    "# Connection URIs (pooled and direct) point at the PostgreSQL server {address} (--postgres)."
                ));
                lines.push(
                    "# The fake creates no database or role there: each one you ask a URI for must exist.".into(),
                );
                lines.push(format!("# For the seeded database {database} and role {role}, run once:"));
                lines.extend(postgres_setup(server, role, database, &password).iter().map(|c| format!("#   {c}")));
                lines.push("# (the last one only if the server asks for passwords; other names likewise)".into());
            }
            None => lines
                .push("# Its connection URIs name made-up hosts; --postgres URL points them at a real server.".into()),
        }
        lines.push("Use it with:".into());
        lines.push(format!("export NEON_API_BASE_URL={}", self.base_url()));
        lines.push("export NEON_API_KEY=fake".into());
        lines.push(format!("export NEON_PROJECT_ID={project_id}"));
        lines
    }

    /// The ids of every project, for assertions.
    pub fn project_ids(&self) -> Vec<String> {
        self.shared.state().projects.keys().cloned().collect()
    }

    /// The names of a project's branches, for assertions.
    pub fn branch_names(&self, project_id: &str) -> Vec<String> {
        let state = self.shared.state();
        state
            .projects
            .get(project_id)
            .map(|project| {
                project.branches.values().filter_map(|branch| branch.json["name"].as_str().map(str::to_owned)).collect()
            })
            .unwrap_or_default()
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves until the task is cancelled (for `strata neon fake-server`).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakeNeon {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> url::Url {
        url::Url::parse(text).unwrap()
    }

    #[test]
    fn real_server_uris_keep_host_port_and_query_and_take_the_rest_from_the_call() {
        let server = url("postgres://admin:secret@127.0.0.1:5432/postgres?sslmode=disable#x");
        assert_eq!(
            real_server_uri(&server, "app", "npg_pw", "trading"),
            "postgresql://app:npg_pw@127.0.0.1:5432/trading?sslmode=disable"
        );
        let plain = url("postgresql://db.internal");
        assert_eq!(real_server_uri(&plain, "r", "p", "d"), "postgresql://r:p@db.internal/d");
        let v6 = url("postgres://[::1]:6543/?sslmode=require&connect_timeout=5");
        assert_eq!(
            real_server_uri(&v6, "r", "p", "d"),
            "postgresql://r:p@[::1]:6543/d?sslmode=require&connect_timeout=5"
        );
        // Names that need it are percent-encoded.
        let odd = real_server_uri(&plain, "user@x", "p/w", "my db");
        assert_eq!(odd, "postgresql://user%40x:p%2Fw@db.internal/my%20db");
    }

    #[test]
    fn only_postgres_urls_with_a_host_are_accepted() {
        assert!(parse_postgres_url("postgres://127.0.0.1:5432/?sslmode=disable").is_ok());
        assert!(parse_postgres_url(" postgresql://localhost ").is_ok());
        assert!(parse_postgres_url("http://127.0.0.1:5432/").unwrap_err().contains("postgres://"));
        assert!(parse_postgres_url("postgres:///db").unwrap_err().contains("no host"));
        assert!(parse_postgres_url("127.0.0.1:5432").is_err());
    }

    #[test]
    fn setup_commands_target_the_server_and_quote_names() {
        let server = url("postgres://postgres@127.0.0.1:5432/?sslmode=disable");
        let commands = postgres_setup(&server, "neondb_owner", "neondb", "npg_x");
        assert_eq!(
            commands,
            [
                "createuser -h 127.0.0.1 -p 5432 -U postgres --login neondb_owner",
                "createdb -h 127.0.0.1 -p 5432 -U postgres --owner neondb_owner neondb",
                "psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -c 'ALTER ROLE \"neondb_owner\" PASSWORD '\\''npg_x'\\'''",
            ]
        );
        let bare = postgres_setup(&url("postgres://localhost"), "my role", "db", "p");
        assert_eq!(bare[0], "createuser -h localhost --login 'my role'");
    }
}
