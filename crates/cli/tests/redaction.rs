//! End-to-end: a password given in `DATABASE_URL`, in any form sqlx or libpq
//! accepts (user information, `?password=`, `&sslpassword=`, `PASSWORD=`, a
//! percent-encoded name or value, a secret-looking unknown parameter) or in a
//! malformed URL or a libpq `key=value` string, never reaches `strata`'s
//! stdout or stderr: not for `migrate`, `health` (text and JSON), `ingest`,
//! `summary`, `query`, `digest`, `runs list`, `evolve` or `worker`, not at
//! `RUST_LOG=info` or `debug`, not on error paths (invalid URL, libpq string,
//! bad setting, refused connection, unknown database).
//!
//! Runs against the PostgreSQL at `DATABASE_URL`, which has to accept any
//! password (trust authentication, as `cargo xtask test`'s throwaway cluster
//! does): the passwords here are made up so that they can be looked for.
#![cfg(feature = "neon")]
#![allow(clippy::unwrap_used)]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Log levels every command runs at.
const LOG_LEVELS: [&str; 2] = ["info", "debug"];

/// The test server, from `DATABASE_URL` (`postgres://USER@HOST:PORT/DATABASE?QUERY`).
#[derive(Debug, Clone)]
struct Server {
    url: String,
    user: String,
    host_port: String,
    database: String,
    /// Query parameters of `DATABASE_URL` (such as `sslmode=disable`), `&`-joined.
    query: String,
}

impl Server {
    /// `DATABASE_URL` split up, or `None` (test skipped) when it is unset and not required.
    fn from_env() -> Option<Server> {
        let url = common::database_url()?;
        let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, host_port) = authority.rsplit_once('@').unwrap_or(("", authority));
        let user = userinfo.split(':').next().filter(|user| !user.is_empty()).unwrap_or("postgres");
        let (database, query) = path.split_once('?').unwrap_or((path, ""));
        Some(Server {
            url: url.clone(),
            user: user.to_string(),
            host_port: host_port.to_string(),
            database: if database.is_empty() { "postgres".to_string() } else { database.to_string() },
            query: query.to_string(),
        })
    }

    /// A URL to the test database with `password` as user information (when
    /// given) and `extra` query parameters after the server's own.
    fn url(&self, password: Option<&str>, extra: &str) -> String {
        self.url_to(&self.host_port, &self.database, password, extra)
    }

    fn url_to(&self, host_port: &str, database: &str, password: Option<&str>, extra: &str) -> String {
        let userinfo = match password {
            Some(password) => format!("{}:{password}", self.user),
            None => self.user.clone(),
        };
        let query: Vec<&str> = [self.query.as_str(), extra].into_iter().filter(|part| !part.is_empty()).collect();
        let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
        format!("postgres://{userinfo}@{host_port}/{database}{query}")
    }
}

/// One way of writing a connection string, and the secrets in it.
struct Form {
    name: &'static str,
    url: String,
    /// Texts that must appear nowhere.
    secrets: Vec<String>,
    /// Whether the URL strata shows keeps a masked password (`***`).
    masked: bool,
}

mod common;

use common::Run;

/// Runs `strata` on the neon backend with `url` as `DATABASE_URL`.
fn strata(url: &str, schema: &str, log: &str, arguments: &[&str]) -> Run {
    common::run(command(url, schema, log).args(arguments))
}

fn command(url: &str, schema: &str, log: &str) -> Command {
    let mut command = common::command(&[
        ("STORAGE_BACKEND", "neon"),
        ("DATABASE_URL", url),
        ("STRATA_PG_SCHEMA", schema),
        ("RUST_LOG", log),
    ]);
    command.env_remove("STRATA_PG_MIGRATE").stdin(Stdio::null());
    command
}

/// Fails when any secret, or a distinctive piece of it, is in what `run` printed.
#[track_caller]
fn assert_hidden(form: &Form, what: &str, run: &Run) {
    for secret in &form.secrets {
        for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            assert!(
                !text.contains(secret.as_str()),
                "{}: `{what}` printed the secret {secret:?} on {stream}:\n{text}",
                form.name
            );
        }
    }
}

/// Drops the schema when the test ends, whether it passed or not.
struct DropSchema(String, String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.1);
        let _ = Command::new("psql").args(["-X", "-q", "-d", &self.0, "-c", &sql]).output();
    }
}

/// A small CSV (AAPL, March 2000 to early 2001) cut from the sample data.
fn small_csv(directory: &Path) -> PathBuf {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/quandl_wiki_stocks_daily.csv");
    let text = std::fs::read_to_string(sample).unwrap();
    let head: Vec<&str> = text.lines().take(250).collect();
    let path = directory.join("aapl.csv");
    std::fs::write(&path, head.join("\n") + "\n").unwrap();
    path
}

/// A secret unique to this process and `tag`: letters and digits only, so
/// that percent-encoding cannot disguise it.
fn secret(tag: &str) -> String {
    format!("Zq{tag}{}Xv", std::process::id())
}

/// Whether the server lets in a made-up password (trust authentication).
fn accepts_any_password(server: &Server) -> bool {
    let url = server.url(Some(&secret("probe")), "");
    let run = strata(&url, &format!("redact_probe_{}", std::process::id()), "warn", &["health"]);
    let _cleanup = DropSchema(server.url.clone(), format!("redact_probe_{}", std::process::id()));
    let refused = run.stderr.contains("authentication") || run.stdout.contains("authentication");
    if refused {
        eprintln!(
            "skipped: the server at DATABASE_URL checks passwords; these tests need one that accepts any \
             (trust authentication, as `cargo xtask test` starts)"
        );
    }
    !refused
}

/// Every form the drivers accept, each with its own secrets; all of them connect.
fn working_forms(server: &Server) -> Vec<Form> {
    let special = secret("special");
    let encoded_special = format!("p%40ss%2Fw%3Frd%23%20{special}");
    let mut forms = vec![
        Form {
            name: "userinfo",
            url: server.url(Some(&secret("userinfo")), ""),
            secrets: vec![secret("userinfo")],
            masked: true,
        },
        Form {
            name: "userinfo, percent-encoded @ / ? # and space",
            url: server.url(Some(&encoded_special), ""),
            secrets: vec![special.clone(), encoded_special.clone(), "p@ss/w?rd#".to_string()],
            masked: true,
        },
        Form {
            name: "userinfo with an unencoded @",
            url: server.url(Some(&format!("pa@{}", secret("at"))), ""),
            secrets: vec![secret("at")],
            masked: true,
        },
        Form {
            name: "?password=",
            url: server.url(None, &format!("password={}", secret("query"))),
            secrets: vec![secret("query")],
            masked: true,
        },
        Form {
            name: "&password= after another parameter",
            url: server.url(None, &format!("application_name=redaction&password={}", secret("amp"))),
            secrets: vec![secret("amp")],
            masked: true,
        },
        Form {
            name: "?password= with a percent-encoded value",
            url: server.url(None, &format!("password=a%26b%3D{}%20c", secret("pct"))),
            secrets: vec![secret("pct")],
            masked: true,
        },
        Form {
            name: "?pass%77ord= (percent-encoded name)",
            url: server.url(None, &format!("pass%77ord={}", secret("pctname"))),
            secrets: vec![secret("pctname")],
            masked: true,
        },
        Form {
            name: "?PASSWORD= (upper case, ignored by sqlx)",
            url: server.url(None, &format!("PASSWORD={}", secret("upper"))),
            secrets: vec![secret("upper")],
            masked: false,
        },
        Form {
            name: "&sslpassword=",
            url: server.url(None, &format!("application_name=redaction&sslpassword={}", secret("sslpw"))),
            secrets: vec![secret("sslpw")],
            masked: false,
        },
        Form {
            name: "unknown secret-looking parameters",
            url: server.url(None, &format!("api_token={}&client_secret={}", secret("token"), secret("clsecret"))),
            secrets: vec![secret("token"), secret("clsecret")],
            masked: false,
        },
        Form {
            name: "every place at once",
            url: server.url(
                Some(&secret("allui")),
                &format!("password={}&sslpassword={}&Password={}", secret("allq"), secret("allssl"), secret("allcase")),
            ),
            secrets: vec![secret("allui"), secret("allq"), secret("allssl"), secret("allcase")],
            masked: true,
        },
    ];
    for form in &mut forms {
        // The percent-encoded spelling of a secret must not show either.
        let encoded: Vec<String> = form.secrets.iter().map(|secret| secret.replace('@', "%40")).collect();
        form.secrets.extend(encoded);
    }
    forms
}

/// The secrets never show, whatever the command and the log level, and
/// each command still works and says where it is connected.
#[test]
fn no_command_prints_a_password_at_any_log_level() {
    let Some(server) = Server::from_env() else { return };
    if !accepts_any_password(&server) {
        return;
    }
    let directory = std::env::temp_dir().join(format!("strata-redaction-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let csv = small_csv(&directory);
    let csv = csv.to_str().unwrap().to_string();
    let forms = working_forms(&server);
    std::thread::scope(|scope| {
        for (index, form) in forms.iter().enumerate() {
            let server = &server;
            let csv = csv.as_str();
            scope.spawn(move || check_every_command(server, form, index, csv));
        }
    });
    let _ = std::fs::remove_dir_all(&directory);
}

fn check_every_command(server: &Server, form: &Form, index: usize, csv: &str) {
    let schema = format!("redact_{}_{index}", std::process::id());
    let _cleanup = DropSchema(server.url.clone(), schema.clone());
    let evolve = [
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
    let commands: [&[&str]; 11] = [
        &["migrate"],
        &["health"],
        &["health", "--json"],
        &["ingest", csv],
        &["summary"],
        &["query", "AAPL", "--limit", "2"],
        &["digest", "AAPL"],
        &["runs", "list"],
        &evolve,
        &["worker", "--exit-when-idle", "0.1"],
        &["runs", "list", "--json"],
    ];
    for log in LOG_LEVELS {
        for arguments in commands {
            let what = format!("RUST_LOG={log} strata {}", arguments.join(" "));
            let run = strata(&form.url, &schema, log, arguments);
            assert_hidden(form, &what, &run);
            assert_eq!(run.code, Some(0), "{}: `{what}` failed:\n{}{}", form.name, run.stdout, run.stderr);
        }
        // The non-secret parts are still shown.
        let health = strata(&form.url, &schema, log, &["health"]);
        assert!(health.stdout.contains(&server.host_port), "{}: {}", form.name, health.stdout);
        let migrate = strata(&form.url, &schema, log, &["migrate"]);
        assert!(migrate.stdout.contains(&server.host_port), "{}: {}", form.name, migrate.stdout);
        if form.masked {
            assert!(health.stdout.contains("***"), "{}: {}", form.name, health.stdout);
        }
    }
}

/// Connection strings that cannot work: each fails, says why, and shows no secret.
#[test]
fn failures_never_print_a_password() {
    let Some(server) = Server::from_env() else { return };
    if !accepts_any_password(&server) {
        return;
    }
    let schema = format!("redact_fail_{}", std::process::id());
    let directory = std::env::temp_dir().join(format!("strata-redaction-fail-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let csv = small_csv(&directory);
    let csv = csv.to_str().unwrap();
    let _cleanup = DropSchema(server.url.clone(), schema.clone());
    let host_port = server.host_port.as_str();
    let (host, _) = host_port.rsplit_once(':').unwrap_or((host_port, ""));
    let database = server.database.as_str();
    let user = server.user.as_str();
    let quoted = secret("quoted");
    // (name, DATABASE_URL, secrets, expected exit code, a text the error must show)
    let cases: Vec<(&str, String, Vec<String>, i32, &str)> = vec![
        (
            "an unparsable port",
            format!("postgres://{user}:{}@{host}:99999/{database}?password={}", secret("port"), secret("portq")),
            vec![secret("port"), secret("portq")],
            2,
            "99999",
        ),
        (
            "an unencoded / in the password",
            format!("postgres://{user}:ab/{}@{host_port}/{database}", secret("slash")),
            vec![secret("slash")],
            2,
            "DATABASE_URL",
        ),
        (
            "an unencoded # and ? in the password",
            format!("postgres://{user}:a#b?{}@{host_port}/{database}", secret("hash")),
            vec![secret("hash")],
            2,
            "DATABASE_URL",
        ),
        (
            "a libpq key=value string",
            format!("host={host} port=5432 user={user} password={} dbname={database}", secret("libpq")),
            vec![secret("libpq")],
            2,
            "key=value",
        ),
        (
            "a libpq string with a quoted password",
            format!(r"host={host} password='a b\'{quoted}' dbname={database} sslpassword = {}", secret("sslkv")),
            vec![quoted.clone(), secret("sslkv")],
            2,
            "key=value",
        ),
        (
            "another scheme",
            format!("mysql://{user}:{}@{host_port}/{database}", secret("scheme")),
            vec![secret("scheme")],
            2,
            "postgres://",
        ),
        (
            "an unknown database",
            format!(
                "postgres://{user}:{}@{host_port}/no_such_database_{}?password={}",
                secret("db"),
                std::process::id(),
                secret("dbq")
            ),
            vec![secret("db"), secret("dbq")],
            1,
            "no_such_database",
        ),
        (
            "an unknown sslmode",
            server.url(Some(&secret("tls")), &format!("sslpassword={}&sslmode=sometimes", secret("tlsq"))),
            vec![secret("tls"), secret("tlsq")],
            2,
            "sslmode=sometimes",
        ),
    ];
    for (name, url, secrets, code, shown) in &cases {
        let form = Form { name, url: url.clone(), secrets: secrets.clone(), masked: false };
        for log in LOG_LEVELS {
            for arguments in [&["health"][..], &["summary"], &["ingest", csv], &["runs", "list"]] {
                let what = format!("RUST_LOG={log} strata {}", arguments.join(" "));
                let run = strata(url, &schema, log, arguments);
                assert_hidden(&form, &what, &run);
                // `health` reports a store it cannot open as unhealthy (exit 1) on stdout.
                if arguments[0] == "health" {
                    assert_eq!(run.code, Some(1), "{name}: `{what}`:\n{}{}", run.stdout, run.stderr);
                } else {
                    assert_eq!(run.code, Some(*code), "{name}: `{what}`:\n{}{}", run.stdout, run.stderr);
                }
                let printed = format!("{}{}", run.stdout, run.stderr);
                assert!(printed.contains(shown), "{name}: `{what}` does not show {shown:?}:\n{printed}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&directory);
}

/// A server that refuses connections: what is printed (at info and debug,
/// whether the failure is immediate, as for this loopback address, or
/// retried) shows no secret either. The run is stopped after 1.5 s at most.
#[test]
fn retrying_a_refused_connection_prints_no_password() {
    let Some(server) = Server::from_env() else { return };
    let form = Form {
        name: "a refused connection",
        url: server.url_to(
            "127.0.0.1:1",
            &server.database,
            Some(&secret("refused")),
            &format!("password={}&sslpassword={}", secret("refusedq"), secret("refusedssl")),
        ),
        secrets: vec![secret("refused"), secret("refusedq"), secret("refusedssl")],
        masked: true,
    };
    for log in LOG_LEVELS {
        let mut child = command(&form.url, "public", log)
            .arg("health")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the strata binary starts");
        let mut stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(1500) && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        let run = Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: reader.join().unwrap(),
        };
        assert_hidden(&form, &format!("RUST_LOG={log} strata health"), &run);
        // A refused loopback address fails at once (health prints its report on stdout).
        let printed = format!("{}{}", run.stdout, run.stderr);
        assert!(printed.contains("127.0.0.1:1"), "the failure names the server:\n{printed}");
    }
}
