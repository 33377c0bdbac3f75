//! The harness every end-to-end test of the `strata` binary shares: run the
//! built executable with a clean storage environment, read what it printed,
//! find the shipped sample data, reach the test PostgreSQL, drop a schema.
//! Each test file includes it with `mod common;` and uses what it needs.

#![allow(dead_code, unused_imports, unreachable_pub)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Storage settings a test must not inherit from the shell that runs it.
pub const STORAGE_VARIABLES: &[&str] = &[
    "STORAGE_BACKEND",
    "STRATA_DUCKDB_PATH",
    "DATABASE_URL",
    "NEON_DATABASE_URL",
    "STRATA_PG_SCHEMA",
    "STRATA_PG_POOLER",
    "STRATA_HYBRID_PRIMARY",
    "STRATA_HYBRID_HOT_DAYS",
    "STRATA_HYBRID_WARM_DAYS",
    "STRATA_HYBRID_STATE_DIR",
    "STRATA_HYBRID_TIMEOUT",
];

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts exit code 0 and hands the run back.
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(self.code, Some(0), "expected success\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// Asserts exit code `code` and hands the run back.
    #[track_caller]
    pub fn exits(self, code: i32) -> Self {
        assert_eq!(self.code, Some(code), "expected exit {code}\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// stdout as one JSON document.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

/// A file of the sample data shipped with the repository (`data/`).
pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data").join(name)
}

/// `sample(name)` as a string argument.
pub fn sample_arg(name: &str) -> String {
    sample(name).to_str().expect("a UTF-8 path").to_string()
}

/// The executable under test: `STRATA_TEST_BIN` when set (an installed
/// binary, or a copy that a rebuild cannot replace while a long loop of
/// runs goes on), else the one cargo built for these tests.
pub fn executable() -> std::ffi::OsString {
    std::env::var_os("STRATA_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_strata").into())
}

/// A `strata` command with a clean storage environment (see
/// [`STORAGE_VARIABLES`]), `RUST_LOG=warn`, and `env` on top.
pub fn command(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(executable());
    for variable in STORAGE_VARIABLES {
        command.env_remove(variable);
    }
    command.env("RUST_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Runs `strata arguments` in `directory` with `env`.
pub fn strata_in(directory: &Path, env: &[(&str, &str)], arguments: &[&str]) -> Run {
    run(command(env).current_dir(directory).args(arguments))
}

/// Runs `strata arguments` in the current directory with `env`.
pub fn strata(env: &[(&str, &str)], arguments: &[&str]) -> Run {
    run(command(env).args(arguments))
}

/// Runs a prepared command to the end and collects what it printed.
pub fn run(command: &mut Command) -> Run {
    let output = command.output().expect("the strata binary runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The test PostgreSQL (`DATABASE_URL`), or `None` when it is unset and not
/// required; under `STRATA_REQUIRE_SERVICES` a missing one fails the test.
pub fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(std::env::var("STRATA_REQUIRE_SERVICES").is_err(), "DATABASE_URL is required");
            eprintln!("DATABASE_URL is not set: skipped");
            None
        }
    }
}

/// A schema name unique to this test process and `tag`.
pub fn unique_schema(tag: &str) -> String {
    format!("{tag}_{}", std::process::id())
}

/// Runs `sql` with psql against `url`; returns stdout trimmed (`-At`).
pub fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql").args(["-X", "-At", "-d", url, "-c", sql]).output().expect("psql runs");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Drops the schema when the test ends, whether it passed or not.
pub use strata_testpg::TempSchema as DropSchema;

// The real PostgreSQL behind `strata neon fake-server --postgres`.

/// The server to use, as an admin URL (a superuser or a user who may create
/// roles and databases) to its `postgres` database; `None` to skip.
pub fn admin_url() -> Option<String> {
    let configured = std::env::var("DATABASE_URL").ok().filter(|url| !url.trim().is_empty());
    let mut url = url_of(configured.as_deref().unwrap_or("postgres://postgres@127.0.0.1:5432/postgres"));
    url.set_path("/postgres");
    url.set_query(None);
    let url = url.to_string();
    let reachable = Command::new("psql")
        .args(["-X", "-At", "-d", &url, "-c", "SELECT 1"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !reachable {
        assert!(
            std::env::var("STRATA_REQUIRE_SERVICES").is_err(),
            "no PostgreSQL reachable with psql at {url} (set DATABASE_URL)"
        );
        eprintln!("no PostgreSQL reachable with psql at {url} (set DATABASE_URL): skipped");
        return None;
    }
    Some(url)
}

/// A minimal parse of a `postgres://` URL: scheme, user, host, port, path, query.
pub fn url_of(text: &str) -> Url {
    let (scheme, rest) = text.split_once("://").expect("a postgres:// URL");
    let (authority, rest) = rest.split_once('/').map_or((rest, ""), |(authority, rest)| (authority, rest));
    let (path, query) = rest.split_once('?').map_or((rest, None), |(path, query)| (path, Some(query.to_owned())));
    Url { scheme: scheme.to_owned(), authority: authority.to_owned(), path: format!("/{path}"), query }
}

pub struct Url {
    pub scheme: String,
    pub authority: String,
    pub path: String,
    pub query: Option<String>,
}

impl Url {
    pub fn set_path(&mut self, path: &str) {
        self.path = path.to_owned();
    }

    pub fn set_query(&mut self, query: Option<&str>) {
        self.query = query.map(str::to_owned);
    }

    /// host[:port], without the user.
    pub fn server(&self) -> &str {
        self.authority.rsplit_once('@').map_or(self.authority.as_str(), |(_, server)| server)
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.path)?;
        match &self.query {
            Some(query) => write!(f, "?{query}"),
            None => Ok(()),
        }
    }
}

/// Drops the database and the role when the test ends, passed or not.
pub struct DropDatabaseAndRole {
    pub admin: String,
    pub database: String,
    pub role: String,
}

impl Drop for DropDatabaseAndRole {
    fn drop(&mut self) {
        psql(&self.admin, &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database));
        psql(&self.admin, &format!("DROP ROLE IF EXISTS \"{}\"", self.role));
    }
}

/// A `strata neon fake-server` child process on a free port, killed when dropped.
pub struct FakeNeon {
    child: std::process::Child,
    /// The `export NAME=value` lines it printed, which end its banner.
    pub environment: Vec<(String, String)>,
    /// Every line it printed up to those.
    pub banner: Vec<String>,
}

impl Drop for FakeNeon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FakeNeon {
    /// Starts the fake with `arguments` (operations finish after 20 ms).
    pub fn start(arguments: &[&str]) -> FakeNeon {
        use std::io::BufRead as _;
        let mut child = command(&[])
            .args(["neon", "fake-server", "--port", "0", "--operation-ms", "20"])
            .args(arguments)
            .env_remove("STRATA_FAKE_NEON_POSTGRES")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("strata neon fake-server starts");
        let stdout = child.stdout.take().expect("its stdout is piped");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let (mut environment, mut banner) = (Vec::new(), Vec::new());
        while environment.len() < 3 {
            let line = lines.next().and_then(Result::ok).expect("the fake prints its banner");
            if let Some((name, value)) = line.strip_prefix("export ").and_then(|rest| rest.split_once('=')) {
                environment.push((name.to_owned(), value.to_owned()));
            }
            banner.push(line);
        }
        FakeNeon { child, environment, banner }
    }

    /// Runs `strata arguments` with the fake's environment and `env`.
    pub fn strata(&self, env: &[(&str, &str)], arguments: &[&str]) -> Run {
        let mut command = command(env);
        for (name, value) in &self.environment {
            command.env(name, value);
        }
        run(command.args(arguments))
    }
}

/// One HTTP/1.1 GET with `Connection: close`: the status code and the raw
/// body (the responses read here are not chunked: /metrics, /health, errors).
pub fn http_get(address: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).expect("connects to the server");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("sets a read timeout");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    std::io::Write::write_all(&mut stream, request.as_bytes()).expect("sends the request");
    let mut response = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut response).expect("reads the response");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or(String::new(), |(_, body)| body.to_string());
    (status, body)
}

/// A long-running `strata` child process (`serve`, `worker`, `evolve`) whose
/// stderr is read line by line on a thread.
pub struct Served {
    pub child: std::process::Child,
    lines: mpsc::Receiver<String>,
    /// Every stderr line read so far.
    pub seen: Vec<String>,
}

impl Served {
    /// Starts `strata arguments` in `directory` with `env`.
    pub fn start(directory: &Path, env: &[(&str, &str)], arguments: &[&str]) -> Served {
        let mut child = command(env)
            .current_dir(directory)
            .args(arguments)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("strata starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Served { child, lines, seen: Vec::new() }
    }

    /// Waits for a stderr line containing `marker` and returns the address after `http://` in it.
    pub fn address(&mut self, marker: &str) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(marker)
                        && let Some(rest) = line.split("http://").nth(1)
                    {
                        let address: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != '/').collect();
                        return address.parse().expect("an address after http://");
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!("strata exited with {status} before serving:\n{}", self.seen.join("\n"));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("no line with {marker:?} within 60 s:\n{}", self.seen.join("\n"));
    }

    /// Sends SIGTERM and returns the exit code and everything printed on stderr.
    pub fn terminate(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill(1) runs").success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("the child's status") {
                break status;
            }
            assert!(Instant::now() < deadline, "strata did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        self.seen.extend(self.lines.try_iter());
        // The reader thread sees the end of the pipe once the process is gone.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(line);
        }
        (status.code(), self.seen.join("\n"))
    }

    /// Waits for the process to exit by itself within `limit` and returns its exit code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("the child's status") {
                self.seen.extend(self.lines.try_iter());
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("still running after {limit:?}:\n{}", self.seen.join("\n"));
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
