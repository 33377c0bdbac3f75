//! Throwaway PostgreSQL for tests and `cargo xtask`: a cluster made with the
//! system's `initdb`/`pg_ctl` on a free loopback port in a temporary
//! directory (removed on drop), an optional PgBouncer in transaction mode in
//! front of it, and a test CA with a server certificate for TLS tests.
//!
//! PostgreSQL and PgBouncer refuse to run as root; when the current user is
//! root, every server command runs as the `postgres` user via `runuser` and
//! the directory is handed to that user. Binaries are found through
//! `STRATA_PG_BIN`, then `pg_config --bindir`, then the newest
//! `/usr/lib/postgresql/*/bin`. Only the standard library is used.

use std::fmt::Write as _;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where the PostgreSQL server binaries live.
pub fn pg_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("STRATA_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Where `pgbouncer` is, if installed.
pub fn pgbouncer_bin() -> Option<PathBuf> {
    ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer", "/usr/local/bin/pgbouncer"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it right after).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs `program args` as the server user (`postgres` when we are root).
fn server_command(program: &Path, as_postgres: bool) -> Command {
    if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn check(output: Output, what: &str) -> io::Result<Output> {
    if output.status.success() {
        Ok(output)
    } else {
        Err(io::Error::other(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

/// A fresh directory under the system temp dir, owned by the server user.
fn make_dir(prefix: &str, as_postgres: bool) -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let unique = format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
    );
    let dir = std::env::temp_dir().join(unique);
    std::fs::create_dir_all(&dir)?;
    if as_postgres {
        check(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).output()?, "chown")?;
    }
    Ok(dir)
}

/// TLS material for a cluster: a CA and a server certificate it signed for
/// `localhost` and `127.0.0.1`.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    /// The CA certificate (PEM) clients should trust.
    pub ca_cert: PathBuf,
    /// The server certificate (PEM).
    pub server_cert: PathBuf,
    /// The server key (PEM).
    pub server_key: PathBuf,
}

impl TestCertificates {
    /// Makes a CA and a server certificate with the `openssl` command in `dir`.
    pub fn generate(dir: &Path, name: &str) -> io::Result<Self> {
        let path = |file: &str| dir.join(format!("{name}-{file}"));
        let run = |args: &[&str]| -> io::Result<()> {
            check(Command::new("openssl").args(args).stdin(Stdio::null()).output()?, "openssl").map(drop)
        };
        let (ca_key, ca_cert, key, csr, cert, ext) =
            (path("ca.key"), path("ca.crt"), path("server.key"), path("server.csr"), path("server.crt"), path("ext"));
        let s = |p: &Path| p.to_string_lossy().into_owned();
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
            "-keyout",
            &s(&ca_key),
            "-out",
            &s(&ca_cert),
        ])?;
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &s(&key),
            "-out",
            &s(&csr),
        ])?;
        std::fs::write(
            &ext,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )?;
        run(&[
            "x509",
            "-req",
            "-in",
            &s(&csr),
            "-CA",
            &s(&ca_cert),
            "-CAkey",
            &s(&ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &s(&ext),
            "-out",
            &s(&cert),
        ])?;
        Ok(TestCertificates { ca_cert, server_cert: cert, server_key: key })
    }
}

/// How to make a cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Serve TLS with these certificates (also accepts plain connections).
    pub tls: Option<TestCertificates>,
    /// Extra `postgresql.conf` lines (`name = value`).
    pub settings: Vec<(String, String)>,
    /// `fsync = off` for speed in tests that do not test durability.
    pub no_fsync: bool,
}

/// A running throwaway PostgreSQL cluster, stopped and deleted on drop.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
    running: bool,
    keep: bool,
}

impl Cluster {
    /// `initdb` + `pg_ctl start` on a free loopback port.
    pub fn start(options: &ClusterOptions) -> io::Result<Cluster> {
        let bin = pg_bin_dir().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no PostgreSQL server binaries (initdb, pg_ctl): install the Debian postgresql package, \
                 set STRATA_PG_BIN, or set DATABASE_URL to an existing server",
            )
        })?;
        let as_postgres = is_root();
        let dir = make_dir("strata-pg", as_postgres)?;
        let data = dir.join("data");
        let output = server_command(&bin.join("initdb"), as_postgres)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-instructions", "-D"])
            .arg(&data)
            .output()?;
        check(output, "initdb")?;
        let port = free_port()?;
        let mut conf = String::new();
        let _ = writeln!(conf, "port = {port}");
        let _ = writeln!(conf, "listen_addresses = '127.0.0.1'");
        let _ = writeln!(conf, "unix_socket_directories = '{}'", dir.display());
        let _ = writeln!(conf, "max_connections = 200");
        let _ = writeln!(conf, "shared_buffers = '256MB'");
        if options.no_fsync {
            let _ = writeln!(conf, "fsync = off\nsynchronous_commit = off\nfull_page_writes = off");
        }
        if let Some(tls) = &options.tls {
            let copy = |from: &Path, name: &str| -> io::Result<PathBuf> {
                let to = dir.join(name);
                std::fs::copy(from, &to)?;
                Ok(to)
            };
            let cert = copy(&tls.server_cert, "server.crt")?;
            let key = copy(&tls.server_key, "server.key")?;
            if as_postgres {
                check(Command::new("chown").args(["postgres:postgres"]).arg(&cert).arg(&key).output()?, "chown")?;
            }
            check(Command::new("chmod").arg("600").arg(&key).output()?, "chmod")?;
            let _ =
                writeln!(conf, "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'", cert.display(), key.display());
        }
        for (name, value) in &options.settings {
            let _ = writeln!(conf, "{name} = {value}");
        }
        let conf_path = data.join("postgresql.auto.conf");
        let mut existing = std::fs::read_to_string(&conf_path).unwrap_or_default();
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing)?;
        let mut cluster = Cluster { bin, dir, port, as_postgres, running: false, keep: false };
        cluster.start_again()?;
        Ok(cluster)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of another database on this cluster.
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The cluster's directory (data, socket, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn pg_ctl(&self, args: &[&str]) -> io::Result<Output> {
        let log = self.dir.join("server.log");
        server_command(&self.bin.join("pg_ctl"), self.as_postgres)
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(&log)
            .args(args)
            .stdin(Stdio::null())
            .output()
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start_again(&mut self) -> io::Result<()> {
        let output = self.pg_ctl(&["-w", "-t", "60", "start"])?;
        if !output.status.success() {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            return Err(io::Error::other(format!(
                "pg_ctl start failed: {}{}\n{log}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        self.running = true;
        // Wait for TCP too (pg_ctl -w checks the socket).
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::other("the server did not open its TCP port within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops the server: `immediate` is a crash-like stop (no checkpoint,
    /// connections dropped), otherwise a fast shutdown.
    pub fn stop(&mut self, immediate: bool) -> io::Result<()> {
        let mode = if immediate { "immediate" } else { "fast" };
        check(self.pg_ctl(&["-w", "-m", mode, "stop"])?, "pg_ctl stop")?;
        self.running = false;
        Ok(())
    }

    /// Runs SQL with `psql` against `database`; returns its output (unaligned, tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> io::Result<String> {
        let psql = self.bin.join("psql");
        let program = if psql.exists() { psql } else { PathBuf::from("psql") };
        let output = Command::new(program)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url_for(database))
            .arg("-c")
            .arg(sql)
            .output()?;
        Ok(String::from_utf8_lossy(&check(output, "psql")?.stdout).into_owned())
    }
}

impl Cluster {
    /// Leaves the server running after this value is dropped (for
    /// `cargo xtask pg start`); returns its directory for [`stop_detached`].
    pub fn detach(mut self) -> PathBuf {
        self.keep = true;
        self.dir.clone()
    }
}

/// Stops a cluster left running by [`Cluster::detach`] and deletes its directory.
pub fn stop_detached(dir: &Path) -> io::Result<()> {
    let bin = pg_bin_dir().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no PostgreSQL binaries"))?;
    let output = server_command(&bin.join("pg_ctl"), is_root())
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-w", "-m", "fast", "stop"])
        .output()?;
    let stopped = output.status.success();
    std::fs::remove_dir_all(dir)?;
    if stopped { Ok(()) } else { check(output, "pg_ctl stop").map(drop) }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.keep || std::env::var_os("STRATA_KEEP_PG").is_some() {
            return;
        }
        if self.running {
            let _ = self.stop(true);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A schema on a server, dropped (`CASCADE`, with `psql`) when this guard
/// goes, whether the test passed or not: the one place tests and benchmarks
/// clean up the schemas they create.
#[derive(Debug)]
pub struct TempSchema {
    url: String,
    schema: String,
}

impl TempSchema {
    /// Guards `schema` on the server at `url` (nothing is created here).
    pub fn new(url: &str, schema: &str) -> Self {
        TempSchema { url: url.to_string(), schema: schema.to_string() }
    }

    /// The schema name.
    pub fn name(&self) -> &str {
        &self.schema
    }

    /// Drops the schema now; also what dropping the guard does.
    pub fn drop_now(&self) -> io::Result<()> {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_identifier(&self.schema));
        let output = Command::new("psql").args(["-X", "-q", "-d", &self.url, "-c", &sql]).output()?;
        check(output, "psql DROP SCHEMA").map(drop)
    }
}

impl Drop for TempSchema {
    fn drop(&mut self) {
        let _ = self.drop_now();
    }
}

/// `name` as a quoted SQL identifier.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PgBouncer in transaction mode in front of a server, stopped on drop.
#[derive(Debug)]
pub struct Bouncer {
    dir: PathBuf,
    port: u16,
    child: std::process::Child,
}

impl Bouncer {
    /// Starts PgBouncer (transaction pooling, trust auth) on a free port in
    /// front of `127.0.0.1:upstream_port`, for any database.
    pub fn start(upstream_port: u16, user: &str) -> io::Result<Bouncer> {
        let bin = pgbouncer_bin().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "pgbouncer is not installed (Debian package `pgbouncer`)")
        })?;
        let as_postgres = is_root();
        let dir = make_dir("strata-pgbouncer", as_postgres)?;
        let port = free_port()?;
        let auth = dir.join("userlist.txt");
        std::fs::write(&auth, format!("\"postgres\" \"\"\n\"{user}\" \"\"\n"))?;
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host=127.0.0.1 port={upstream_port}\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {auth}\npool_mode = transaction\n\
                 max_client_conn = 500\ndefault_pool_size = 20\nlogfile = {log}\n\
                 server_reset_query =\nignore_startup_parameters = \npidfile = {pid}\n",
                auth = auth.display(),
                log = dir.join("pgbouncer.log").display(),
                pid = dir.join("pgbouncer.pid").display()
            ),
        )?;
        if as_postgres {
            check(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).output()?, "chown")?;
        }
        let child = server_command(&bin, as_postgres)
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        wait_for_listener(port, &dir)?;
        Ok(Bouncer { dir, port, child })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILLs PgBouncer (a crash: every client connection drops at once).
    pub fn kill(&mut self) -> io::Result<()> {
        // `runuser` does not pass SIGKILL on: kill pgbouncer itself by its pid file.
        let pid_file = self.dir.join("pgbouncer.pid");
        let pid = std::fs::read_to_string(&pid_file)?;
        check(Command::new("kill").arg("-KILL").arg(pid.trim()).output()?, "kill pgbouncer")?;
        let _ = self.child.kill();
        self.child.wait()?;
        let _ = std::fs::remove_file(pid_file);
        Ok(())
    }

    /// Starts PgBouncer again after [`Bouncer::kill`], on the same port.
    pub fn restart(&mut self) -> io::Result<()> {
        let bin =
            pgbouncer_bin().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "pgbouncer is not installed"))?;
        self.child = server_command(&bin, is_root())
            .arg(self.dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        wait_for_listener(self.port, &self.dir)
    }

    /// A URL for `user` on `database` through the bouncer.
    pub fn url_for(&self, user: &str, database: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{database}", self.port)
    }
}

/// Waits (15 s at most) until PgBouncer of `dir` listens on `port`.
fn wait_for_listener(port: u16, dir: &Path) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default();
            return Err(io::Error::other(format!("pgbouncer did not listen within 15 s: {log}")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        // `runuser` does not pass SIGKILL on: stop pgbouncer itself by its pid file.
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg("-TERM").arg(pid.trim()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
