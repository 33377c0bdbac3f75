//! End-to-end: no secret given to `strata` ever shows, at `RUST_LOG=trace`, in
//! what a subcommand prints (stdout, stderr, a panic message, `--json`), in
//! what `serve` and `--metrics-listen` answer over HTTP, in a file Strata
//! writes, or in a row it stores. Every run gets the three secrets a
//! deployment holds: a `DATABASE_URL` with a password in its user information
//! and in `?password=`, a `NEON_API_KEY` and a `STRATA_API_TOKEN`. Some runs
//! add more: a store URL with a password as an argument (`copy`, `verify`),
//! `--api-key`, a wrong bearer token, a right or wrong database password.
//!
//! - Every subcommand on the neon backend, against the server at
//!   `DATABASE_URL`, which has to accept any password (trust authentication,
//!   as `cargo xtask test`'s throwaway cluster does); `copy` and `verify`
//!   between it and DuckDB files; `hybrid` with its primary down (writes go
//!   to the journal), then up (`sync`); `efs` with its evolution state in
//!   PostgreSQL; `duckdb`; `--help` of every subcommand.
//! - `serve`: the right bearer token gets 200, a wrong or missing one 401, and
//!   neither token is in its logs or answers.
//! - A wrong password against a throwaway cluster that checks passwords
//!   (`scram-sha-256`), and TLS failures: `sslmode=require` and `verify-full`
//!   against a server without TLS, `verify-full` with an untrusted CA.
//! - `strata neon ...` against `strata neon fake-server`, and against a small
//!   HTTP server of this file that answers 401 (JSON), 500 (JSON) or 502 (an
//!   HTML page), each body quoting the request's API key back, as a careless
//!   API or proxy may; a refused and a malformed `NEON_API_BASE_URL`.
//! - At the end of each test, every file under its directory (the current
//!   directory, `HOME` and `TMPDIR` of every run: DuckDB files, the hybrid
//!   journal, CSV and Parquet outputs) byte for byte, and every row of the
//!   PostgreSQL schemas it used.
//!
//! A secret is letters and digits unique to this process and is looked for in
//! any letter case. Files are scanned as stored: a secret inside a compressed
//! Parquet page or DuckDB segment would escape the file scan (the rows it came
//! from are checked in PostgreSQL, and every output is checked as printed).
#![cfg(all(feature = "neon", feature = "neon-api"))]
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, mpsc};
use std::time::{Duration, Instant};

use common::{Run, http_get as get};
use strata_testpg::{Cluster, ClusterOptions, TestCertificates};

/// Password in `DATABASE_URL`'s user information (every run).
const DATABASE_PASSWORD: &str = "dbpw";
/// Password in `DATABASE_URL`'s query, `?password=` (every run).
const DATABASE_QUERY_PASSWORD: &str = "dbquery";
/// `NEON_API_KEY` (every run).
const NEON_API_KEY: &str = "neonkey";
/// `STRATA_API_TOKEN` (every run).
const API_TOKEN: &str = "apitoken";
/// A bearer token `serve` must refuse.
const WRONG_TOKEN: &str = "wrongtoken";
/// Password of a store URL given as an argument (`copy`, `verify`).
const ARGUMENT_PASSWORD: &str = "argpw";
/// `?password=` of a store URL given as an argument.
const ARGUMENT_QUERY_PASSWORD: &str = "argquery";
/// The real password of the cluster that checks passwords.
const RIGHT_PASSWORD: &str = "rightpw";
/// A password that cluster refuses.
const WRONG_PASSWORD: &str = "wrongpw";
/// An API key given with `--api-key` instead of `NEON_API_KEY`.
const FLAG_API_KEY: &str = "flagkey";

/// Every secret's tag; every output is checked for every secret.
const TAGS: [&str; 10] = [
    DATABASE_PASSWORD,
    DATABASE_QUERY_PASSWORD,
    NEON_API_KEY,
    API_TOKEN,
    WRONG_TOKEN,
    ARGUMENT_PASSWORD,
    ARGUMENT_QUERY_PASSWORD,
    RIGHT_PASSWORD,
    WRONG_PASSWORD,
    FLAG_API_KEY,
];

/// Every secret, lowercased (they are compared without regard to case).
static SECRETS: LazyLock<Vec<String>> = LazyLock::new(|| TAGS.iter().map(|tag| secret(tag).to_lowercase()).collect());

/// The secret of `tag`: letters and digits only, unique to this process, so
/// that neither percent-encoding nor JSON or XML escaping can disguise it.
fn secret(tag: &str) -> String {
    // The process id padded to 10 digits: a secret's length must not depend on it (the API
    // token must be at least 16 characters, and a 3-digit pid made it 15).
    format!("Zq{tag}{:010}Xv", std::process::id())
}

/// Fails when `text`, which `what` printed or wrote (`channel` says where),
/// holds any secret in any letter case; shows the text around it.
#[track_caller]
fn assert_hidden(what: &str, channel: &str, text: &[u8]) {
    let lower = String::from_utf8_lossy(text).to_lowercase();
    for secret in SECRETS.iter() {
        if let Some(at) = lower.find(secret.as_str()) {
            let bytes = lower.as_bytes();
            let around =
                String::from_utf8_lossy(&bytes[at.saturating_sub(400)..(at + secret.len() + 400).min(bytes.len())]);
            panic!("`{what}` leaked the secret {secret:?} in {channel}:\n...{around}...");
        }
    }
}

/// Fails when a run shows a secret or crashed: killed by a signal, exit
/// code 101 (a panic) or a panic message on stderr (a panicking thread).
#[track_caller]
fn assert_clean(what: &str, run: &Run) {
    assert_hidden(what, "stdout", run.stdout.as_bytes());
    assert_hidden(what, "stderr", run.stderr.as_bytes());
    assert!(run.code.is_some() && run.code != Some(101), "`{what}` crashed ({:?}):\n{}", run.code, run.stderr);
    assert!(!run.stderr.contains("panicked at"), "`{what}` panicked:\n{}", run.stderr);
}

/// Where and how `strata` runs: a directory and the environment of every run there.
#[derive(Debug, Clone)]
struct Place {
    directory: PathBuf,
    env: Vec<(String, String)>,
}

impl Place {
    /// Runs in `directory` (created) at `RUST_LOG=trace` with `DATABASE_URL`
    /// = `database_url`, the API key and token secrets, `HOME` and `TMPDIR`
    /// inside `directory` (so whatever Strata writes there is scanned too),
    /// and `env` on top.
    fn new(directory: &Path, database_url: &str, env: &[(&str, &str)]) -> Place {
        let (home, temporary) = (directory.join("home"), directory.join("tmp"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&temporary).unwrap();
        let place = Place {
            directory: directory.to_path_buf(),
            env: vec![
                ("RUST_LOG".into(), "trace".into()),
                ("DATABASE_URL".into(), database_url.into()),
                ("NEON_API_KEY".into(), secret(NEON_API_KEY)),
                ("STRATA_API_TOKEN".into(), secret(API_TOKEN)),
                ("HOME".into(), home.to_str().unwrap().into()),
                ("TMPDIR".into(), temporary.to_str().unwrap().into()),
            ],
        };
        place.with(env)
    }

    /// The same place with `env` added or replaced.
    fn with(&self, env: &[(&str, &str)]) -> Place {
        let mut place = self.clone();
        for (name, value) in env {
            place.env.retain(|(existing, _)| existing != name);
            place.env.push((name.to_string(), value.to_string()));
        }
        place
    }

    /// `strata arguments` here, stdin closed, no inherited setting that could change what it does.
    fn command(&self, arguments: &[&str]) -> Command {
        let mut command = common::command(&[]);
        for variable in [
            "STRATA_PG_MIGRATE",
            "STRATA_EFS_ROOT",
            "STRATA_LISTEN",
            "STRATA_METRICS_LISTEN",
            "STRATA_FAKE_NEON_POSTGRES",
            "NEON_API_BASE_URL",
            "NEON_PROJECT_ID",
            "PGPASSWORD",
            "PGPASSFILE",
            "PGSSLMODE",
            "PGSSLROOTCERT",
        ] {
            command.env_remove(variable);
        }
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command.current_dir(&self.directory).args(arguments).stdin(Stdio::null());
        command
    }

    /// How a run is named in failures: the backend and the arguments.
    fn describe(&self, arguments: &[&str]) -> String {
        let backend = self.env.iter().find(|(name, _)| name == "STORAGE_BACKEND").map_or("-", |(_, value)| value);
        format!("STORAGE_BACKEND={backend} strata {}", arguments.join(" "))
    }

    /// Runs `strata arguments`; checks that it shows no secret and did not crash.
    fn run(&self, arguments: &[&str]) -> Run {
        let started = Instant::now();
        let run = common::run(&mut self.command(arguments));
        let what = self.describe(arguments);
        if started.elapsed() > Duration::from_secs(5) {
            eprintln!("`{what}` took {:.1} s", started.elapsed().as_secs_f64());
        }
        assert_clean(&what, &run);
        run
    }

    /// [`Place::run`], which must succeed.
    #[track_caller]
    fn ok(&self, arguments: &[&str]) -> Run {
        let run = self.run(arguments);
        assert_eq!(run.code, Some(0), "`{}` failed:\n{}\n{}", self.describe(arguments), run.stdout, tail(&run.stderr));
        run
    }

    /// [`Place::run`], which must fail and say `shown` (in any letter case) on stdout or stderr.
    #[track_caller]
    fn fails(&self, arguments: &[&str], shown: &str) -> Run {
        let run = self.run(arguments);
        let what = self.describe(arguments);
        assert_ne!(run.code, Some(0), "`{what}` succeeded:\n{}\n{}", run.stdout, tail(&run.stderr));
        let printed = format!("{}\n{}", run.stdout, run.stderr).to_lowercase();
        assert!(
            printed.contains(&shown.to_lowercase()),
            "`{what}` does not say {shown:?}:\n{}\n{}",
            run.stdout,
            tail(&run.stderr)
        );
        run
    }
}

/// The last lines of a (trace-level, long) stderr, for failure messages.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// `url` (a `postgres://` URL) with `password` as its user's password and
/// `extra` (`name=value&...`) added to its query.
fn with_password(url: &str, password: &str, extra: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (authority, tail) = rest.find(['/', '?']).map_or((rest, "/"), |at| rest.split_at(at));
    let (userinfo, host) = authority.rsplit_once('@').unwrap_or(("", authority));
    let user = userinfo.split(':').next().filter(|user| !user.is_empty()).unwrap_or("postgres");
    let separator = match (extra.is_empty(), tail.contains('?')) {
        (true, _) => "",
        (false, true) => "&",
        (false, false) => "?",
    };
    format!("{scheme}://{user}:{password}@{host}{tail}{separator}{extra}")
}

/// `DATABASE_URL` with a password in its user information and in `?password=`.
fn password_url(url: &str) -> String {
    with_password(url, &secret(DATABASE_PASSWORD), &format!("password={}", secret(DATABASE_QUERY_PASSWORD)))
}

/// Whether the server lets in a made-up password (trust authentication).
fn accepts_any_password(place: &Place) -> bool {
    let run = place.run(&["health"]);
    let refused = format!("{}{}", run.stdout, run.stderr).contains("authentication failed");
    if refused {
        eprintln!(
            "skipped: the server at DATABASE_URL checks passwords; this test needs one that accepts any \
             (trust authentication, as `cargo xtask test` starts)"
        );
    }
    !refused
}

/// A small CSV (AAPL, March 2000 to early 2001) cut from the sample data.
fn small_csv(directory: &Path) -> String {
    let text = std::fs::read_to_string(common::sample("quandl_wiki_stocks_daily.csv")).unwrap();
    let head: Vec<&str> = text.lines().take(250).collect();
    let path = directory.join("aapl.csv");
    std::fs::write(&path, head.join("\n") + "\n").unwrap();
    path.to_str().unwrap().to_string()
}

/// A short evolution on the small CSV's AAPL bars.
const EVOLVE: [&str; 13] = [
    "evolve",
    "--symbols",
    "AAPL",
    "--start",
    "2000-03-01",
    "--end",
    "2000-12-01",
    "--population",
    "4",
    "--generations",
    "1",
    "--workers",
    "1",
];

/// Fails when any file under `directory` holds a secret; returns the files' paths.
fn assert_no_file_holds_a_secret(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                assert_hidden(&format!("the file {}", path.display()), "its bytes", &bytes);
                files.push(path);
            }
        }
    }
    files
}

/// Fails when a row of a table or view in `schema` holds a secret (every row
/// rendered as XML by the server, read with psql).
fn assert_no_row_holds_a_secret(admin_url: &str, schema: &str) {
    let sql = format!(
        "SELECT query_to_xml(format('SELECT * FROM %I.%I', table_schema, table_name), true, false, '')::text \
         FROM information_schema.tables WHERE table_schema = '{schema}'"
    );
    let output = Command::new("psql")
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", admin_url, "-c", &sql])
        .output()
        .unwrap();
    assert!(output.status.success(), "psql: {}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stdout.len() > 1000, "the schema {schema} holds rows: {}", String::from_utf8_lossy(&output.stdout));
    assert_hidden(&format!("the tables of schema {schema}"), "their rows", &output.stdout);
}

/// Which pipe a line of a [`Background`] process came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pipe {
    Stdout,
    Stderr,
}

/// A `strata` process that keeps running (`serve`, `worker
/// --metrics-listen`, `neon fake-server`), its output read on threads.
struct Background {
    what: String,
    child: Child,
    lines: mpsc::Receiver<(Pipe, String)>,
    stdout: String,
    stderr: String,
}

impl Background {
    fn start(what: &str, mut command: Command) -> Background {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("strata starts");
        let (send, lines) = mpsc::channel();
        let pipes: [(Pipe, Box<dyn Read + Send>); 2] = [
            (Pipe::Stdout, Box::new(child.stdout.take().unwrap())),
            (Pipe::Stderr, Box::new(child.stderr.take().unwrap())),
        ];
        for (pipe, reader) in pipes {
            let send = send.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(reader);
                let mut line = Vec::new();
                while reader.read_until(b'\n', &mut line).is_ok_and(|read| read > 0) {
                    if send.send((pipe, String::from_utf8_lossy(&line).into_owned())).is_err() {
                        break;
                    }
                    line.clear();
                }
            });
        }
        Background { what: what.to_string(), child, lines, stdout: String::new(), stderr: String::new() }
    }

    fn keep(&mut self, pipe: Pipe, line: &str) {
        match pipe {
            Pipe::Stdout => self.stdout.push_str(line),
            Pipe::Stderr => self.stderr.push_str(line),
        }
    }

    /// Waits up to 60 s for a line on `pipe` that contains `marker`, and returns it.
    fn line_with(&mut self, pipe: Pipe, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok((from, line)) => {
                    self.keep(from, &line);
                    if from == pipe && line.contains(marker) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!("`{}` exited ({status}) before saying {marker:?}:\n{}", self.what, tail(&self.stderr));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("`{}` did not say {marker:?} within 60 s:\n{}", self.what, tail(&self.stderr));
    }

    /// The address after `http://` on the first stderr line containing `marker`.
    fn address(&mut self, marker: &str) -> SocketAddr {
        let line = self.line_with(Pipe::Stderr, marker);
        let rest = line.split("http://").nth(1).unwrap_or_else(|| panic!("no address in {line:?}"));
        let address: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != '/').collect();
        address.parse().unwrap()
    }

    /// Lets it run for up to `patience`, then stops it with SIGTERM, and
    /// returns what it printed, checked for secrets and crashes.
    fn finish(mut self, patience: Duration) -> Run {
        let deadline = Instant::now() + patience;
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.child.try_wait().unwrap().is_none() {
            let pid = self.child.id().to_string();
            assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "`{}` did not stop within 30 s of SIGTERM", self.what);
            std::thread::sleep(Duration::from_millis(50));
        };
        // The reader threads end when the pipes close with the process.
        while let Ok((pipe, line)) = self.lines.recv_timeout(Duration::from_secs(10)) {
            self.keep(pipe, &line);
        }
        let run = Run {
            code: status.code(),
            stdout: std::mem::take(&mut self.stdout),
            stderr: std::mem::take(&mut self.stderr),
        };
        assert_hidden(&self.what, "stdout", run.stdout.as_bytes());
        assert_hidden(&self.what, "stderr", run.stderr.as_bytes());
        assert!(!run.stderr.contains("panicked at"), "`{}` panicked:\n{}", self.what, run.stderr);
        run
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every subcommand on the neon, hybrid, efs and duckdb backends at trace
/// level, with all secrets in the environment; then every file and row.
#[test]
fn every_subcommand_at_trace_level_keeps_the_secrets_out_of_output_files_and_rows() {
    let Some(url) = common::database_url() else { return };
    let schemas = [
        common::unique_schema("secrets_neon"),
        common::unique_schema("secrets_hybrid"),
        common::unique_schema("secrets_efs"),
    ];
    let _guards = schemas.each_ref().map(|schema| common::DropSchema::new(&url, schema));
    let directory = tempfile::tempdir().unwrap();
    let database_url = password_url(&url);
    let neon = Place::new(
        &directory.path().join("neon"),
        &database_url,
        &[("STORAGE_BACKEND", "neon"), ("STRATA_PG_SCHEMA", &schemas[0])],
    );
    if !accepts_any_password(&neon) {
        return;
    }
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| hybrid_commands(directory.path(), &url, &schemas[1]));
        scope.spawn(|| efs_and_duckdb_commands(directory.path(), &database_url, &schemas[2]));
        scope.spawn(|| help_and_usage_errors(directory.path(), &database_url));
        neon_commands(&neon, &url, &schemas[0]);
    });
    let files = assert_no_file_holds_a_secret(directory.path());
    for expected in [
        "neon/out/aapl.csv",
        "neon/out/aapl.parquet",
        "neon/out/generated.csv",
        "neon/out/copy.duckdb",
        "hybrid/strata.duckdb",
        "efs/dataset",
        "duckdb/strata.duckdb",
    ] {
        let expected = directory.path().join(expected);
        assert!(files.iter().any(|file| file.starts_with(&expected)), "no file {} was written", expected.display());
    }
    let journal = directory.path().join("hybrid/strata.duckdb.hybrid");
    assert!(files.iter().any(|file| file.starts_with(&journal)), "the hybrid journal was scanned");
    for schema in &schemas {
        assert_no_row_holds_a_secret(&url, schema);
    }
    eprintln!("{} files scanned; the subcommands ran in {:.1} s", files.len(), started.elapsed().as_secs_f64());
}

/// The neon backend, one subcommand after another on one schema.
fn neon_commands(neon: &Place, url: &str, schema: &str) {
    let csv = small_csv(&neon.directory);
    std::fs::create_dir_all(neon.directory.join("out")).unwrap();
    neon.ok(&["migrate"]);
    neon.ok(&["migrate", "--json"]).json();
    let health = neon.ok(&["health"]);
    assert!(health.stdout.contains("***"), "the URL is shown masked:\n{}", health.stdout);
    neon.ok(&["health", "--json"]).json();
    neon.ok(&["ingest", &csv]);
    neon.ok(&["ingest", "--dry-run", &csv]);
    neon.ok(&["ingest", "--summary", &csv]);
    neon.ok(&["summary"]);
    let summary = neon.ok(&["summary", "--json"]).json();
    assert!(summary.to_string().contains("AAPL"), "{summary}");
    neon.ok(&["query", "AAPL", "--limit", "2"]);
    neon.ok(&["query", "AAPL", "--limit", "3", "--format", "json"]);
    neon.ok(&["query", "AAPL", "--output", "out/aapl.csv"]);
    neon.ok(&["query", "AAPL", "--output", "out/aapl.parquet"]);
    neon.ok(&["digest", "AAPL"]);
    neon.ok(&["digest", "--json"]);
    neon.ok(&["generate", "--symbols", "2", "--bars", "30", "--output", "out/generated.csv"]);
    neon.ok(&["generate", "--symbols", "1", "--bars", "30", "--ingest", "--summary"]);
    let evolved = neon.ok(&[&EVOLVE[..], &["--run-id", "secrets", "--json"]].concat()).json();
    assert_eq!(evolved["status"], "completed", "{evolved}");
    neon.ok(&["runs", "list"]);
    neon.ok(&["runs", "list", "--json"]).json();
    neon.ok(&["runs", "show", "secrets"]);
    neon.ok(&["runs", "show", "secrets", "--json"]).json();
    neon.ok(&["runs", "status", "secrets", "--json"]).json();
    neon.fails(&["runs", "cancel", "secrets"], "already completed");
    // Resuming a completed run reports it again.
    neon.ok(&["runs", "resume", "secrets", "--workers", "1", "--json"]).json();
    neon.ok(&["worker", "--exit-when-idle", "0.1"]);

    // A worker's /metrics while it runs.
    let what = "strata worker --exit-when-idle 3 --metrics-listen 127.0.0.1:0";
    let mut worker =
        Background::start(what, neon.command(&["worker", "--exit-when-idle", "3", "--metrics-listen", "127.0.0.1:0"]));
    let address = worker.address("metrics at");
    let (status, metrics) = get(address, "/metrics", &[]);
    assert_eq!(status, 200, "{metrics}");
    assert_hidden("GET /metrics of a worker", "the body", metrics.as_bytes());
    let run = worker.finish(Duration::from_secs(60));
    assert_eq!(run.code, Some(0), "{what}:\n{}", tail(&run.stderr));

    // copy and verify between the server (a URL with other passwords, given as an argument) and DuckDB files.
    let store = with_password(
        url,
        &secret(ARGUMENT_PASSWORD),
        &format!("schema={schema}&password={}", secret(ARGUMENT_QUERY_PASSWORD)),
    );
    neon.ok(&["copy", &store, "duckdb:out/copy.duckdb"]);
    neon.ok(&["copy", &store, "duckdb:out/copy-json.duckdb", "--json"]).json();
    neon.ok(&["verify", &store, "duckdb:out/copy.duckdb"]);
    neon.ok(&["verify", "duckdb:out/copy.duckdb", &store, "--json"]).json();
    neon.ok(&["verify", &store, "duckdb:out/copy.duckdb", "--repair", "--symbols", "AAPL"]);

    // Commands of other backends, run on this one.
    neon.fails(&["compact"], "nothing to compact");
    neon.fails(&["compact", "--json"], "nothing to compact");
    neon.ok(&["sync"]);
    neon.ok(&["sync", "--json"]).json();
}

/// The hybrid backend: its primary down (writes journaled), then up (`sync`).
fn hybrid_commands(directory: &Path, url: &str, schema: &str) {
    let down_url = format!(
        "postgres://postgres:{}@127.0.0.1:1/postgres?password={}",
        secret(DATABASE_PASSWORD),
        secret(DATABASE_QUERY_PASSWORD)
    );
    let down = Place::new(
        &directory.join("hybrid"),
        &down_url,
        &[("STORAGE_BACKEND", "hybrid"), ("STRATA_PG_SCHEMA", schema)],
    );
    let up = down.with(&[("DATABASE_URL", &password_url(url))]);
    let csv = small_csv(&down.directory);
    let ingest = down.ok(&["ingest", &csv]);
    assert!(ingest.stdout.contains("journaled"), "{}", ingest.stdout);
    down.ok(&["query", "AAPL", "--limit", "2"]);
    down.ok(&["summary", "--json"]).json();
    down.fails(&["health", "--json"], "degraded");
    down.fails(&["health"], "degraded");
    down.fails(&["sync", "--json"], "remaining");
    down.fails(&["sync"], "remain");
    up.ok(&["sync", "--json"]).json();
    up.ok(&["sync"]);
    up.ok(&["health", "--json"]).json();
    up.ok(&["digest", "--json"]);
    let store = with_password(url, &secret(ARGUMENT_PASSWORD), &format!("schema={schema}"));
    up.ok(&["verify", &store, "duckdb:strata.duckdb", "--json"]).json();
}

/// The efs backend (its evolution state in PostgreSQL) and the duckdb backend, `DATABASE_URL` set for both.
fn efs_and_duckdb_commands(directory: &Path, database_url: &str, schema: &str) {
    let root = directory.join("efs/dataset");
    std::fs::create_dir_all(&root).unwrap();
    let efs = Place::new(
        &directory.join("efs"),
        database_url,
        &[("STORAGE_BACKEND", "efs"), ("STRATA_EFS_ROOT", root.to_str().unwrap()), ("STRATA_PG_SCHEMA", schema)],
    );
    let csv = small_csv(&efs.directory);
    efs.ok(&["ingest", &csv]);
    efs.ok(&["summary", "--json"]).json();
    efs.ok(&["health"]);
    efs.ok(&["health", "--json"]).json();
    efs.ok(&["compact", "--json"]).json();
    efs.ok(&[&EVOLVE[..], &["--json"]].concat()).json();
    efs.ok(&["runs", "list", "--json"]).json();

    let duckdb = Place::new(&directory.join("duckdb"), database_url, &[("STORAGE_BACKEND", "duckdb")]);
    let csv = small_csv(&duckdb.directory);
    duckdb.ok(&["ingest", &csv]);
    duckdb.ok(&["health", "--json"]).json();
    duckdb.ok(&["summary"]);
}

/// `--help` of every subcommand, `--version`, and usage errors.
fn help_and_usage_errors(directory: &Path, database_url: &str) {
    let place = Place::new(&directory.join("help"), database_url, &[("STORAGE_BACKEND", "neon")]);
    let mut commands: Vec<Vec<&str>> = vec![vec!["--help"], vec!["--version"], vec!["help"]];
    for command in [
        "ingest", "query", "summary", "migrate", "compact", "health", "generate", "digest", "evolve", "worker", "runs",
        "serve", "sync", "copy", "verify", "neon",
    ] {
        commands.push(vec![command, "--help"]);
    }
    for command in ["list", "show", "status", "cancel", "resume"] {
        commands.push(vec!["runs", command, "--help"]);
    }
    for command in [
        &["projects", "list"][..],
        &["branch", "create"],
        &["branch", "list"],
        &["branch", "delete"],
        &["connection-uri"],
        &["operations", "wait"],
        &["fake-server"],
    ] {
        commands.push([&["neon"][..], command, &["--help"]].concat());
    }
    for arguments in &commands {
        place.ok(arguments);
    }
    place.fails(&["query"], "SYMBOL");
    place.fails(&["--backend", "nosuch", "health"], "nosuch");
    place.fails(&["serve", "--listen", "0.0.0.0:0", "--max-requests", "0"], "max-requests");
    place.fails(&["neon", "branch", "list", "--pg-schema", "x"], "storage options");
}

/// `serve` with the token: the right one gets 200, a wrong or missing one
/// 401, and neither token is in its logs (trace) or its answers.
#[test]
fn serve_admits_only_the_right_token_and_logs_neither() {
    let Some(url) = common::database_url() else { return };
    let schema = common::unique_schema("secrets_serve");
    let _guard = common::DropSchema::new(&url, &schema);
    let directory = tempfile::tempdir().unwrap();
    let place = Place::new(
        directory.path(),
        &password_url(&url),
        &[("STORAGE_BACKEND", "neon"), ("STRATA_PG_SCHEMA", &schema)],
    );
    if !accepts_any_password(&place) {
        return;
    }
    let csv = small_csv(directory.path());
    place.ok(&["ingest", &csv]);
    let what = "strata serve --listen 127.0.0.1:0";
    let mut served = Background::start(what, place.command(&["serve", "--listen", "127.0.0.1:0"]));
    let address = served.address("serving");
    let right = format!("Bearer {}", secret(API_TOKEN));
    let wrong = format!("Bearer {}", secret(WRONG_TOKEN));
    let wrong_in_query = format!("/v1/bars?symbols=AAPL&access_token={}", secret(WRONG_TOKEN));
    for path in ["/health", "/v1/summary", "/v1/bars?symbols=AAPL&limit=3", "/v1/digest?symbols=AAPL", "/metrics"] {
        let right_header = [("Authorization", right.as_str())];
        let wrong_header = [("Authorization", wrong.as_str())];
        for (headers, expected) in [(&right_header[..], 200), (&wrong_header[..], 401), (&[][..], 401)] {
            let (status, body) = get(address, path, headers);
            let request = format!("GET {path} with {} header(s)", headers.len());
            assert_eq!(status, expected, "{request}:\n{body}");
            assert_hidden(&request, "the answer", body.as_bytes());
        }
    }
    let (status, body) = get(address, &wrong_in_query, &[]);
    assert_eq!(status, 401, "{body}");
    assert_hidden("GET /v1/bars with a token in the query", "the answer", body.as_bytes());
    let run = served.finish(Duration::ZERO);
    assert_eq!(run.code, Some(0), "{}", tail(&run.stderr));
    assert!(run.stderr.lines().count() > 20, "trace logging was on:\n{}", run.stderr);
    assert!(run.stderr.contains("/v1/summary"), "requests are logged at trace level:\n{}", tail(&run.stderr));
    assert_no_file_holds_a_secret(directory.path());
}

/// A throwaway cluster, or `None` (skipped) when PostgreSQL's server
/// binaries are missing and services are not required.
fn cluster(options: &ClusterOptions) -> Option<Cluster> {
    match Cluster::start(options) {
        Ok(cluster) => Some(cluster),
        Err(error) => {
            assert!(std::env::var_os("STRATA_REQUIRE_SERVICES").is_none(), "cannot start a cluster: {error}");
            eprintln!("skipped: cannot start a PostgreSQL cluster: {error}");
            None
        }
    }
}

/// A cluster whose `postgres` role has the password [`RIGHT_PASSWORD`] and
/// that checks it (`scram-sha-256`) on every TCP connection.
fn password_cluster() -> Option<Cluster> {
    let cluster = cluster(&ClusterOptions { no_fsync: true, ..ClusterOptions::default() })?;
    cluster
        .psql(
            "postgres",
            &format!(
                "SET password_encryption = 'scram-sha-256'; ALTER ROLE postgres PASSWORD '{}'",
                secret(RIGHT_PASSWORD)
            ),
        )
        .unwrap();
    let rules = "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n";
    std::fs::write(cluster.dir().join("data/pg_hba.conf"), rules).unwrap();
    cluster.psql("postgres", "SELECT pg_reload_conf()").unwrap();
    // The reload is asynchronous: wait until a connection without a password is refused.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = Command::new("psql")
            .args(["-X", "-w", "-At", "-d", &cluster.url(), "-c", "SELECT 1"])
            .env_remove("PGPASSWORD")
            .env("PGPASSFILE", "/dev/null")
            .output()
            .unwrap();
        if !output.status.success() && String::from_utf8_lossy(&output.stderr).contains("password") {
            return Some(cluster);
        }
        assert!(Instant::now() < deadline, "the cluster still lets anyone in after pg_reload_conf()");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A cluster serving TLS with a certificate of its own test CA, trusting any
/// connection; also the CA's certificate and another, untrusted CA's.
fn tls_cluster(directory: &Path) -> Option<(Cluster, PathBuf, PathBuf)> {
    let certificates = match TestCertificates::generate(directory, "secrets") {
        Ok(certificates) => certificates,
        Err(error) if std::env::var_os("STRATA_REQUIRE_SERVICES").is_none() => {
            eprintln!("skipped: openssl unavailable: {error}");
            return None;
        }
        Err(error) => panic!("openssl: {error}"),
    };
    let stranger = TestCertificates::generate(directory, "stranger").unwrap();
    let cluster =
        cluster(&ClusterOptions { tls: Some(certificates.clone()), no_fsync: true, ..ClusterOptions::default() })?;
    Some((cluster, certificates.ca_cert, stranger.ca_cert))
}

/// A wrong password against a server that checks passwords, and TLS that
/// fails (not offered by the server; an untrusted certificate): every
/// command fails, says why, and shows no password.
#[test]
fn a_wrong_password_and_failed_tls_never_show_a_password() {
    let directory = tempfile::tempdir().unwrap();
    let certificates = directory.path().join("certificates");
    std::fs::create_dir_all(&certificates).unwrap();
    let (checking, tls) = std::thread::scope(|scope| {
        let checking = scope.spawn(password_cluster);
        let tls = scope.spawn(|| tls_cluster(&certificates));
        (checking.join().unwrap(), tls.join().unwrap())
    });
    let (Some(checking), Some((tls, trusted_ca, untrusted_ca))) = (checking, tls) else { return };
    let csv = small_csv(directory.path());
    let neon = [("STORAGE_BACKEND", "neon"), ("STRATA_PG_SCHEMA", "secrets")];
    let place = |name: &str, url: &str| Place::new(&directory.path().join(name), url, &neon);
    let checking_url = |password: &str, query: &str| {
        format!("postgres://postgres:{password}@127.0.0.1:{}/postgres?sslmode=disable{query}", checking.port())
    };
    let tls_url = |query: &str| {
        format!(
            "postgres://postgres:{}@localhost:{}/postgres?sslmode=verify-full&password={}{query}",
            secret(DATABASE_PASSWORD),
            tls.port(),
            secret(DATABASE_QUERY_PASSWORD)
        )
    };
    let untrusted = tls_url(&format!("&sslrootcert={}", untrusted_ca.display()));
    let without_tls = checking_url(&secret(RIGHT_PASSWORD), "").replace("sslmode=disable", "sslmode=require");
    let without_tls_verified = without_tls.replace("sslmode=require", "sslmode=verify-full");
    // A refused certificate is not retried (it was, for the whole 30 s retry budget, until
    // this test found it): these runs use the default budget and still end at once.
    // (place, DATABASE_URL, more environment, the text every failure shows)
    let failing = [
        ("wrong", checking_url(&secret(WRONG_PASSWORD), ""), &[][..], "authentication failed"),
        (
            "wrong-query",
            format!(
                "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable&password={}",
                checking.port(),
                secret(WRONG_PASSWORD)
            ),
            &[][..],
            "authentication failed",
        ),
        ("require", without_tls, &[][..], "TLS"),
        ("verify-full", without_tls_verified, &[][..], "TLS"),
        ("untrusted", untrusted, &[][..], "certificate"),
        ("no-root", tls_url(""), &[][..], "certificate"),
    ];
    std::thread::scope(|scope| {
        // The right password and the trusted CA work: the failures below are the password's and TLS's.
        scope.spawn(|| place("right", &checking_url(&secret(RIGHT_PASSWORD), "")).ok(&["health"]));
        let trusted = tls_url(&format!("&sslrootcert={}", trusted_ca.display()));
        scope.spawn(move || place("trusted", &trusted).ok(&["health"]));
        for (name, url, env, shown) in &failing {
            let place = place(name, url).with(env);
            let csv = csv.as_str();
            scope.spawn(move || {
                for arguments in [
                    &["health"][..],
                    &["health", "--json"],
                    &["migrate"],
                    &["summary"],
                    &["ingest", csv],
                    &["runs", "list"],
                    &["query", "AAPL", "--limit", "1"],
                    &["digest", "--json"],
                    &["worker", "--exit-when-idle", "0.1"],
                ] {
                    place.fails(arguments, shown);
                }
            });
        }
        // A wrong password in a store URL given as an argument.
        let copy = place("copy", &checking_url(&secret(RIGHT_PASSWORD), ""));
        let source = checking_url(&secret(WRONG_PASSWORD), &format!("&password={}", secret(ARGUMENT_QUERY_PASSWORD)));
        scope.spawn(move || {
            copy.fails(&["copy", &source, "duckdb:copy.duckdb"], "authentication failed");
            copy.fails(&["verify", &source, "duckdb:copy.duckdb", "--json"], "authentication failed");
        });
        // The hybrid backend journals what a primary that refuses the password did not take.
        let hybrid = Place::new(
            &directory.path().join("hybrid"),
            &checking_url(&secret(WRONG_PASSWORD), ""),
            &[("STORAGE_BACKEND", "hybrid"), ("STRATA_PG_SCHEMA", "secrets")],
        );
        let csv = csv.as_str();
        scope.spawn(move || {
            let ingest = hybrid.ok(&["ingest", csv]);
            assert!(ingest.stdout.contains("journaled"), "{}", ingest.stdout);
            hybrid.fails(&["health", "--json"], "authentication failed");
            hybrid.fails(&["sync", "--json"], "remaining");
        });
    });
    assert_no_file_holds_a_secret(directory.path());
}

/// What a [`FakeApi`] answers to every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// 401 with the API's JSON error, quoting the key it refused.
    Unauthorized,
    /// 500 with a JSON error whose message quotes the request (headers included).
    InternalError,
    /// 502 with a proxy's HTML page quoting the request (headers included).
    BadGateway,
}

impl Answer {
    fn status(self) -> u16 {
        match self {
            Answer::Unauthorized => 401,
            Answer::InternalError => 500,
            Answer::BadGateway => 502,
        }
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that answers every request with one
/// [`Answer`]; stops accepting when dropped.
struct FakeApi {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl FakeApi {
    fn start(answer: Answer) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    std::thread::spawn(move || answer_one(stream, answer));
                }
            }
        });
        FakeApi { address, stop }
    }

    /// `NEON_API_BASE_URL` of this server.
    fn base_url(&self) -> String {
        format!("http://{}/api/v2", self.address)
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.address);
    }
}

/// Reads one request (head and body) and answers it as `answer` says.
fn answer_one(mut stream: TcpStream, answer: Answer) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut request = Vec::new();
    let mut buffer = [0_u8; 4096];
    let head_end = loop {
        if let Some(at) = request.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (found, value) = line.split_once(':')?;
            found.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
        })
    };
    let length: usize = header("content-length").and_then(|value| value.parse().ok()).unwrap_or(0);
    while request.len() < head_end + length {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
    let authorization = header("authorization").unwrap_or_default();
    let key = authorization.split_once(' ').map_or(authorization.as_str(), |(_, key)| key);
    let (reason, content_type, body) = match answer {
        Answer::Unauthorized => (
            "Unauthorized",
            "application/json",
            serde_json::json!({ "code": "", "message": format!("authorization failed: the API key {key} is not valid") })
                .to_string(),
        ),
        Answer::InternalError => (
            "Internal Server Error",
            "application/json",
            serde_json::json!({ "message": format!("internal error handling authorization: {authorization}\n{head}") })
                .to_string(),
        ),
        Answer::BadGateway => (
            "Bad Gateway",
            "text/html",
            format!(
                "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>\
                 <pre>authorization: {authorization}\n{head}</pre></body></html>"
            ),
        ),
    };
    let response = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        answer.status(),
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// `strata neon` subcommands that call the API, for every failing server.
const NEON_CALLS: [&[&str]; 8] = [
    &["neon", "projects", "list"],
    &["neon", "projects", "list", "--json"],
    &["neon", "branch", "list"],
    &["neon", "branch", "list", "--json"],
    &["neon", "branch", "create", "secrets-1"],
    &["neon", "branch", "delete", "secrets-1"],
    &["neon", "connection-uri", "--database", "neondb", "--role", "neondb_owner"],
    &["neon", "operations", "wait", "--timeout", "5"],
];

/// `strata neon ...` with the API key: against the fake Neon API, which
/// answers; and against servers that answer 401, 500 and 502 with bodies
/// that quote the key back. The key shows nowhere.
#[test]
fn neon_commands_never_show_the_api_key_whatever_the_api_answers() {
    let directory = tempfile::tempdir().unwrap();
    // The neon commands open no store; the URL leads nowhere but is there, as in a deployment.
    let database_url = with_password(
        "postgres://postgres@127.0.0.1:1/postgres",
        &secret(DATABASE_PASSWORD),
        &format!("password={}", secret(DATABASE_QUERY_PASSWORD)),
    );
    let base = Place::new(directory.path(), &database_url, &[]);

    let what = "strata neon fake-server --port 0";
    let mut fake =
        Background::start(what, base.command(&["neon", "fake-server", "--port", "0", "--operation-ms", "20"]));
    let mut exported = Vec::new();
    while exported.len() < 3 {
        let line = fake.line_with(Pipe::Stdout, "export ");
        let (name, value) = line.trim().trim_start_matches("export ").split_once('=').unwrap();
        exported.push((name.to_string(), value.to_string()));
    }
    let variable = |wanted: &str| exported.iter().find(|(name, _)| name == wanted).unwrap().1.clone();
    let (base_url, project) = (variable("NEON_API_BASE_URL"), variable("NEON_PROJECT_ID"));
    // The fake's NEON_API_KEY is not used: the secret one stays.
    let at_fake = base.with(&[("NEON_API_BASE_URL", &base_url), ("NEON_PROJECT_ID", &project)]);
    at_fake.ok(&["neon", "projects", "list"]);
    at_fake.ok(&["neon", "projects", "list", "--json"]).json();
    at_fake.ok(&["neon", "--api-key", &secret(FLAG_API_KEY), "projects", "list"]);
    at_fake.ok(&["neon", "branch", "create", "secrets-1", "--max-cu", "2"]);
    at_fake.ok(&["neon", "branch", "create", "secrets-1", "--json"]).json();
    at_fake.ok(&["neon", "branch", "list"]);
    at_fake.ok(&["neon", "branch", "list", "--json"]).json();
    let uri = at_fake.ok(&[
        "neon",
        "connection-uri",
        "--branch",
        "secrets-1",
        "--database",
        "neondb",
        "--role",
        "neondb_owner",
    ]);
    assert!(uri.stdout.starts_with("postgresql://neondb_owner:"), "{}", uri.stdout);
    at_fake
        .ok(&[
            "neon",
            "connection-uri",
            "--branch",
            "secrets-1",
            "--database",
            "neondb",
            "--role",
            "neondb_owner",
            "--direct",
            "--json",
        ])
        .json();
    at_fake.ok(&["neon", "operations", "wait", "--timeout", "10", "--json"]).json();
    at_fake.fails(&["neon", "branch", "create", "bad", "--min-cu", "4", "--max-cu", "1"], "HTTP 422");
    at_fake.fails(&["neon", "connection-uri", "--branch", "nope", "--database", "d", "--role", "r"], "nope");
    at_fake.ok(&["neon", "branch", "delete", "secrets-1"]);
    at_fake.ok(&["neon", "branch", "delete", "secrets-1", "--json"]).json();
    // The fake itself saw the key on every request.
    let run = fake.finish(Duration::ZERO);
    assert!(run.stdout.contains("NEON_API_BASE_URL"), "{}", run.stdout);

    let servers = [Answer::Unauthorized, Answer::InternalError, Answer::BadGateway]
        .map(|answer| (answer, FakeApi::start(answer)));
    std::thread::scope(|scope| {
        for (answer, server) in &servers {
            let place = base.with(&[("NEON_API_BASE_URL", &server.base_url()), ("NEON_PROJECT_ID", "proj-secrets")]);
            let shown = format!("HTTP {}", answer.status());
            for arguments in NEON_CALLS {
                let (place, shown) = (place.clone(), shown.clone());
                scope.spawn(move || place.fails(arguments, &shown));
            }
            if *answer == Answer::Unauthorized {
                let flag = secret(FLAG_API_KEY);
                scope.spawn(move || place.fails(&["neon", "--api-key", &flag, "branch", "list"], "HTTP 401"));
            }
        }
        // No server at all, and a base URL that is not one.
        let refused =
            base.with(&[("NEON_API_BASE_URL", "http://127.0.0.1:1/api/v2"), ("NEON_PROJECT_ID", "proj-secrets")]);
        scope.spawn(move || refused.fails(&["neon", "branch", "list"], "could not reach"));
        let malformed = base.with(&[("NEON_API_BASE_URL", "not a url"), ("NEON_PROJECT_ID", "proj-secrets")]);
        scope.spawn(move || malformed.fails(&["neon", "projects", "list"], "NEON_API_BASE_URL"));
    });
    assert_no_file_holds_a_secret(directory.path());
}
