//! The chaos matrix (issue 16): named faults against every backend, each
//! store built by the composition root exactly as `strata` builds it, and a
//! table of scenario, backend, acknowledged rows, rows found and verdict.
//!
//! Every scenario asserts the same four things where they apply: no
//! acknowledged row is lost, no partial batch is ever visible (each batch
//! writes its own keys, every price equal to its number, so a row tells which
//! batch wrote it), the failure is a clear error of the right kind, and the
//! store is usable once the fault clears. A scenario that cannot apply to a
//! backend says why in the table (an in-memory store does not outlive its
//! process); a fault this machine cannot make (a mount without the
//! privilege) is a skip with its reason, and a failure under
//! `STRATA_REQUIRE_SERVICES=1` as root.
//!
//! | scenario | fault |
//! |---|---|
//! | `writer-sigkill` | the writing process SIGKILLed at random points, round after round |
//! | `write-cancelled` | the write's future dropped at random points (a request aborted, a task cancelled) |
//! | `server-restart` | PostgreSQL stopped (`-m immediate`) mid-stream and started again |
//! | `pgbouncer-kill` | PgBouncer (transaction mode) SIGKILLed mid-stream and started again |
//! | `proxy-drop` | every connection cut by a TCP proxy, again and again |
//! | `proxy-stall` | a TCP proxy that stops forwarding (a black hole) for longer than the timeouts |
//! | `disk-full` | a small filesystem (tmpfs) filling up during the writes |
//! | `read-only` | the data directory remounted read-only |
//! | `store-locked` | the DuckDB file locked by another program; the bars table locked by another session |
//! | `clock-jump` | workers whose clocks are 3 hours off (libfaketime) lease tasks: leases use the store's clock |
//!
//! Settings: `STRATA_CHAOS_BACKENDS` (default `memory,duckdb,efs,neon,hybrid`),
//! `STRATA_CHAOS_SCENARIOS` (default all), `STRATA_CHAOS_ROUNDS` (kill and
//! cancel rounds, default 4; `cargo xtask chaos` runs 25),
//! `STRATA_CHAOS_REPORT` (a JSON file for the table). The PostgreSQL
//! scenarios run on a throwaway cluster of their own (they stop it).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser as _;
use strata_compose::args::StorageArgs;
use strata_compose::{Access, StorageConfig};
use strata_core::evolution::{LeaseRequest, RunStatus, TaskState};
use strata_core::{Bar, BarBatch, BarQuery, MarketDataStore, MarketDataStoreExt as _, Symbol, Timestamp};
use strata_testpg::{Bouncer, Cluster, ClusterOptions};

/// Rows per batch: enough that a kill often lands inside one.
const ROWS: usize = 500;
/// 2020-01-01: old enough that the hybrid stack routes reads to its primary.
const DAY0: i64 = 1_577_836_800_000_000;
const MINUTE: i64 = 60_000_000;
const SYMBOL: &str = "CHAOS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Memory,
    DuckDb,
    Efs,
    Neon,
    Hybrid,
}

impl Backend {
    const ALL: [Backend; 5] = [Backend::Memory, Backend::DuckDb, Backend::Efs, Backend::Neon, Backend::Hybrid];

    fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::DuckDb => "duckdb",
            Backend::Efs => "efs",
            Backend::Neon => "neon",
            Backend::Hybrid => "hybrid",
        }
    }

    fn uses_postgres(self) -> bool {
        matches!(self, Backend::Neon | Backend::Hybrid)
    }
}

/// Batch `number`: `ROWS` one-minute bars of its own, every price `number + 1`.
fn batch(number: u64) -> BarBatch {
    let value = number as f64 + 1.0;
    let bars: Vec<Bar> = (0..ROWS)
        .map(|row| Bar {
            symbol: SYMBOL.to_string(),
            timestamp: Timestamp(DAY0 + (number as i64 * ROWS as i64 + row as i64) * MINUTE),
            open: value,
            high: value,
            low: value,
            close: value,
            // Not compressible: a disk fills with Parquet as with DuckDB.
            volume: (spread(number * ROWS as u64 + row as u64) % 1_000_000) as f64,
            vwap: None,
            trade_count: Some(number as i64),
        })
        .collect();
    BarBatch::from_bars(&bars)
}

/// A well-mixed function of `value` (splitmix64's finaliser).
fn spread(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where one backend's store of one scenario lives, and how to open it as `strata` would.
struct Target {
    backend: Backend,
    dir: PathBuf,
    _guard: tempfile::TempDir,
    /// The PostgreSQL URL (neon, hybrid).
    url: Option<String>,
    schema: String,
    /// Extra flags (timeouts a scenario needs short).
    extra: Vec<String>,
}

impl Target {
    fn new(backend: Backend, url: Option<String>) -> Target {
        let guard = tempfile::tempdir().unwrap();
        let dir = guard.path().to_path_buf();
        std::fs::create_dir_all(dir.join("data/efs")).unwrap();
        Target {
            backend,
            dir,
            _guard: guard,
            url,
            schema: common::unique("chaos"),
            // A plain neon store rides out a short outage by retrying; the hybrid journals instead.
            extra: if backend == Backend::Neon { vec!["--pg-retry-budget".into(), "10".into()] } else { Vec::new() },
        }
    }

    fn flags(&self) -> Vec<String> {
        let data = self.dir.join("data");
        let mut flags = vec![
            "--backend".to_string(),
            self.backend.name().to_string(),
            "--duckdb-path".to_string(),
            data.join("store.duckdb").display().to_string(),
            "--efs-root".to_string(),
            data.join("efs").display().to_string(),
            "--pg-schema".to_string(),
            self.schema.clone(),
            "--hybrid-primary".to_string(),
            "neon".to_string(),
            "--hybrid-timeout".to_string(),
            "3".to_string(),
        ];
        flags.extend(self.extra.iter().cloned());
        flags
    }

    fn config(&self) -> StorageConfig {
        config_from(&self.flags(), self.url.clone())
    }

    async fn open(&self) -> anyhow::Result<strata_compose::MarketStores> {
        strata_compose::build_market(&self.config(), Access::Write).await
    }

    /// A writer process (`chaos_writer_child`) on this target, from batch `from` on.
    fn spawn_writer(&self, from: u64, env: &[(&str, &str)]) -> Writer {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "chaos_writer_child", "--nocapture", "--test-threads", "1"])
            .env("STRATA_CHAOS_CHILD", "writer")
            .env("STRATA_CHAOS_FLAGS", self.flags().join("\t"))
            .env("STRATA_CHAOS_URL", self.url.clone().unwrap_or_default())
            .env("STRATA_CHAOS_FROM", from.to_string())
            .env_remove("STORAGE_BACKEND")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        Writer::spawn(command)
    }
}

fn config_from(flags: &[String], url: Option<String>) -> StorageConfig {
    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        storage: StorageArgs,
    }
    let flags = Flags::parse_from(std::iter::once("chaos".to_string()).chain(flags.iter().cloned()));
    let mut config = StorageConfig::from_env_and_flags(&flags.storage).unwrap();
    config.database_url = url.filter(|url| !url.is_empty());
    config
}

/// A writer child process and what it printed: `ready`, `ack N`, `error N KIND MESSAGE`.
struct Writer {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
    acked: BTreeSet<u64>,
    errors: Vec<String>,
    /// One past the highest batch number it started.
    next: u64,
}

impl Writer {
    fn spawn(mut command: Command) -> Writer {
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut writer =
            Writer { child, lines, reader: Some(reader), acked: BTreeSet::new(), errors: Vec::new(), next: 0 };
        let started = Instant::now();
        loop {
            match writer.lines.recv_timeout(Duration::from_secs(60)) {
                // libtest prints "test chaos_writer_child ... " before the child writes.
                Ok(line) if line.ends_with("ready") => break,
                Ok(line) => writer.take(&line),
                Err(error) => panic!("the writer child never got ready: {error}"),
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the writer child never got ready");
        }
        writer
    }

    fn take(&mut self, line: &str) {
        let Some(at) = line.find("ack ").or_else(|| line.find("error ")).or_else(|| line.find("start ")) else {
            return;
        };
        let mut parts = line[at..].splitn(3, ' ');
        let word = parts.next().unwrap_or_default();
        let Some(number) = parts.next().and_then(|n| n.parse::<u64>().ok()) else { return };
        self.next = self.next.max(number + 1);
        match word {
            "ack" => {
                self.acked.insert(number);
            }
            "error" => self.errors.push(parts.next().unwrap_or_default().to_string()),
            _ => {}
        }
    }

    /// Reads what it printed so far.
    fn poll(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.take(&line);
        }
    }

    /// Waits until `count` more batches are acknowledged (at most `within`).
    fn wait_for_acks(&mut self, count: usize, within: Duration) -> bool {
        self.poll();
        let target = self.acked.len() + count;
        let started = Instant::now();
        while self.acked.len() < target && started.elapsed() < within {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.take(&line);
            }
        }
        self.acked.len() >= target
    }

    /// SIGKILL, then everything it printed before it died.
    fn kill(mut self) -> (BTreeSet<u64>, Vec<String>, u64) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.poll();
        (self.acked, self.errors, self.next)
    }
}

/// The writer of `writer-sigkill` and `pgbouncer-kill`, run as a child process.
#[test]
fn chaos_writer_child() {
    if std::env::var("STRATA_CHAOS_CHILD").as_deref() != Ok("writer") {
        return;
    }
    let flags: Vec<String> = std::env::var("STRATA_CHAOS_FLAGS").unwrap().split('\t').map(str::to_string).collect();
    let url = std::env::var("STRATA_CHAOS_URL").ok();
    let from: u64 = std::env::var("STRATA_CHAOS_FROM").unwrap().parse().unwrap();
    common::runtime().block_on(async move {
        let stores = strata_compose::build_market(&config_from(&flags, url), Access::Write).await.unwrap();
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready").unwrap();
        out.flush().unwrap();
        for number in from.. {
            writeln!(out, "start {number}").unwrap();
            out.flush().unwrap();
            match stores.market.write_bars(batch(number)).await {
                Ok(_) => writeln!(out, "ack {number}").unwrap(),
                Err(error) => {
                    let message = error.to_string().replace('\n', " ");
                    writeln!(out, "error {number} {}: {message}", error.kind()).unwrap();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            out.flush().unwrap();
        }
    });
}

/// Batch number -> rows of it that are visible.
async fn census(store: &dyn MarketDataStore) -> Result<BTreeMap<u64, usize>, String> {
    let bars = store
        .collect_bars(BarQuery::symbol(Symbol::new(SYMBOL).unwrap()))
        .await
        .map_err(|error| format!("reading the bars back failed: {error}"))?;
    let mut counts = BTreeMap::new();
    for bar in bars {
        *counts.entry(bar.close as u64 - 1).or_insert(0) += 1;
    }
    Ok(counts)
}

/// What a scenario measured: rows acknowledged, rows of those found, a note.
#[derive(Debug, Default)]
struct Tally {
    acknowledged: u64,
    found: u64,
    note: String,
}

/// Every acknowledged batch complete, no batch partial.
fn judge(acked: &BTreeSet<u64>, counts: &BTreeMap<u64, usize>, note: String) -> Result<Tally, String> {
    let mut found = 0u64;
    for number in acked {
        let rows = counts.get(number).copied().unwrap_or(0);
        if rows != ROWS {
            return Err(format!("acknowledged batch {number} has {rows} of {ROWS} rows"));
        }
        found += rows as u64;
    }
    if let Some((number, rows)) = counts.iter().find(|(_, rows)| **rows != ROWS) {
        return Err(format!("batch {number} is partly visible: {rows} of {ROWS} rows"));
    }
    let unacked = counts.keys().filter(|number| !acked.contains(number)).count();
    let note = if unacked > 0 { format!("{note}; {unacked} unacknowledged batches landed whole") } else { note };
    Ok(Tally { acknowledged: (acked.len() * ROWS) as u64, found, note: note.trim_start_matches("; ").to_string() })
}

/// Opens the target again (draining a hybrid journal into its primary),
/// checks every acknowledged batch and that no batch is partial, and writes
/// and reads one more batch.
async fn verify_reopened(target: &Target, acked: &BTreeSet<u64>, next: u64, note: String) -> Result<Tally, String> {
    let stores = target.open().await.map_err(|error| format!("the store does not open after the fault: {error:#}"))?;
    verify(&stores, acked, next, note).await
}

async fn verify(
    stores: &strata_compose::MarketStores,
    acked: &BTreeSet<u64>,
    next: u64,
    note: String,
) -> Result<Tally, String> {
    drain(stores).await?;
    let tally = judge(acked, &census(stores.market.as_ref()).await?, note)?;
    usable(stores, next).await?;
    Ok(tally)
}

/// Replays a hybrid stack's journal into its primary (a minute at most).
async fn drain(stores: &strata_compose::MarketStores) -> Result<(), String> {
    let Some(hybrid) = &stores.hybrid else { return Ok(()) };
    let started = Instant::now();
    loop {
        let report = hybrid.stack.sync().await.map_err(|error| format!("replaying the journal failed: {error}"))?;
        if report.remaining == 0 {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!("the journal did not drain in a minute: {report:?}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The store takes a new batch and shows it whole.
async fn usable(stores: &strata_compose::MarketStores, number: u64) -> Result<(), String> {
    stores
        .market
        .write_bars(batch(number))
        .await
        .map_err(|error| format!("the store does not take a write after the fault: {error}"))?;
    drain(stores).await?;
    let counts = census(stores.market.as_ref()).await?;
    match counts.get(&number) {
        Some(&rows) if rows == ROWS => Ok(()),
        other => Err(format!("a batch written after the fault shows {other:?} of {ROWS} rows")),
    }
}

/// A small xorshift generator: reproducible from its seed, printed on failure.
struct Random(u64);

impl Random {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below.max(1)
    }
}

/// What the matrix shares: the throwaway cluster, the rounds, the random seed.
struct Lab {
    cluster: Option<Cluster>,
    rounds: u64,
    random: Mutex<Random>,
    seed: u64,
    as_root: bool,
}

impl Lab {
    fn url(&self) -> Option<String> {
        self.cluster.as_ref().map(|cluster| format!("{}?connect_timeout=2", cluster.url()))
    }

    fn target(&self, backend: Backend) -> Target {
        Target::new(backend, if backend.uses_postgres() { self.url() } else { None })
    }

    fn random(&self, below: u64) -> u64 {
        self.random.lock().unwrap().next(below)
    }

    fn cluster(&self) -> &Cluster {
        self.cluster.as_ref().expect("the PostgreSQL scenarios run with a cluster")
    }

    fn cluster_mut(&mut self) -> &mut Cluster {
        self.cluster.as_mut().expect("the PostgreSQL scenarios run with a cluster")
    }
}

/// How a scenario ended on one backend.
enum Outcome {
    Passed(Tally),
    Failed(String),
    /// Does not apply to this backend, and why.
    NotApplicable(&'static str),
    /// This machine cannot make the fault, and why.
    Skipped(String),
}

type Scenario = fn(&mut Lab, Backend) -> Outcome;

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    common::runtime().block_on(future)
}

fn outcome(result: Result<Tally, String>) -> Outcome {
    match result {
        Ok(tally) => Outcome::Passed(tally),
        Err(reason) => Outcome::Failed(reason),
    }
}

// --- writer-sigkill -------------------------------------------------------

fn writer_sigkill(lab: &mut Lab, backend: Backend) -> Outcome {
    if backend == Backend::Memory {
        return Outcome::NotApplicable("an in-memory store ends with its process");
    }
    let target = lab.target(backend);
    let (mut acked, mut next) = (BTreeSet::new(), 0u64);
    for _ in 0..lab.rounds {
        let writer = target.spawn_writer(next, &[]);
        std::thread::sleep(Duration::from_millis(20 + lab.random(600)));
        let (round_acked, errors, round_next) = writer.kill_after_poll();
        if let Some(error) = errors.first() {
            return Outcome::Failed(format!("a write failed with no fault injected: {error}"));
        }
        acked.extend(round_acked);
        // The batch in flight when it died may or may not have landed, whole.
        next = round_next.max(next) + 1;
    }
    let note = format!("{} kills", lab.rounds);
    outcome(block_on(verify_reopened(&target, &acked, next + 1, note)))
}

impl Writer {
    fn kill_after_poll(mut self) -> (BTreeSet<u64>, Vec<String>, u64) {
        self.poll();
        self.kill()
    }
}

// --- write-cancelled ------------------------------------------------------

fn write_cancelled(lab: &mut Lab, backend: Backend) -> Outcome {
    let target = lab.target(backend);
    let rounds = lab.rounds * 4;
    let delays: Vec<u64> = (0..rounds).map(|_| lab.random(40)).collect();
    outcome(block_on(async {
        let stores = target.open().await.map_err(|error| format!("open: {error:#}"))?;
        let mut acked = BTreeSet::new();
        let mut cancelled = 0;
        for (number, delay) in delays.iter().enumerate() {
            let store = stores.market.clone();
            let number = number as u64;
            let write = tokio::spawn(async move { store.write_bars(batch(number)).await });
            tokio::time::sleep(Duration::from_millis(*delay)).await;
            write.abort();
            match write.await {
                Ok(Ok(_)) => {
                    acked.insert(number);
                }
                Ok(Err(error)) => return Err(format!("batch {number} failed with no fault injected: {error}")),
                Err(_) => cancelled += 1,
            }
        }
        // Work a cancelled call left running (a blocking DuckDB append) ends on its own.
        tokio::time::sleep(Duration::from_millis(500)).await;
        verify(&stores, &acked, rounds + 1, format!("{cancelled} of {rounds} writes cancelled")).await
    }))
}

// --- in-process writer for the network faults ----------------------------

/// A task writing batch after batch into `store` until stopped, recording acks and errors.
struct Stream {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeSet<u64>>>,
    errors: Arc<Mutex<Vec<(String, Duration)>>>,
    next: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Stream {
    fn start(store: Arc<dyn MarketDataStore>) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let next = Arc::new(AtomicU64::new(0));
        let task = {
            let (stop, acked, errors, next) = (stop.clone(), acked.clone(), errors.clone(), next.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let number = next.fetch_add(1, Ordering::SeqCst);
                    let started = Instant::now();
                    match store.write_bars(batch(number)).await {
                        Ok(_) => {
                            acked.lock().unwrap().insert(number);
                        }
                        Err(error) => {
                            errors.lock().unwrap().push((format!("{}: {error}", error.kind()), started.elapsed()));
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            })
        };
        Stream { stop, acked, errors, next, task }
    }

    fn acks(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits until `count` more acks arrive, at most `within`.
    async fn more_acks(&self, count: usize, within: Duration) -> bool {
        let target = self.acks() + count;
        let started = Instant::now();
        while self.acks() < target {
            if started.elapsed() > within {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    async fn finish(self) -> (BTreeSet<u64>, Vec<(String, Duration)>, u64) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(Duration::from_secs(120), self.task).await;
        let acked = self.acked.lock().unwrap().clone();
        let errors = self.errors.lock().unwrap().clone();
        (acked, errors, self.next.load(Ordering::SeqCst))
    }
}

/// Errors a network fault may cause: unavailable or timeout, nothing else.
fn check_error_kinds(errors: &[(String, Duration)]) -> Result<(), String> {
    match errors.iter().find(|(error, _)| !(error.starts_with("unavailable") || error.starts_with("timeout"))) {
        Some((error, _)) => Err(format!("a network fault gave an error of the wrong kind: {error}")),
        None => Ok(()),
    }
}

fn error_note(errors: &[(String, Duration)]) -> String {
    match errors.first() {
        None => "no write failed".to_string(),
        Some((first, _)) => {
            let slowest = errors.iter().map(|(_, took)| *took).max().unwrap_or_default();
            let first: String = first.chars().take(60).collect();
            format!("{} failed writes (slowest {slowest:.1?}), first: {first}", errors.len())
        }
    }
}

// --- server-restart --------------------------------------------------------

fn server_restart(lab: &mut Lab, backend: Backend) -> Outcome {
    if !backend.uses_postgres() {
        return Outcome::NotApplicable("no server");
    }
    let target = lab.target(backend);
    let down_for = Duration::from_millis(1500 + lab.random(1500));
    let cluster = lab.cluster_mut();
    outcome(common::runtime().block_on(async {
        let stores = target.open().await.map_err(|error| format!("open: {error:#}"))?;
        let stream = Stream::start(stores.market.clone());
        if !stream.more_acks(5, Duration::from_secs(30)).await {
            return Err("no writes before the fault".into());
        }
        cluster.stop(true).map_err(|error| format!("pg_ctl stop: {error}"))?;
        tokio::time::sleep(down_for).await;
        cluster.start_again().map_err(|error| format!("pg_ctl start: {error}"))?;
        let carried_on = stream.more_acks(5, Duration::from_secs(60)).await;
        let (acked, errors, next) = stream.finish().await;
        if !carried_on {
            return Err(format!("the same store did not carry on after the restart ({})", error_note(&errors)));
        }
        check_error_kinds(&errors)?;
        let note = format!("down {down_for:.1?}; {}", error_note(&errors));
        verify(&stores, &acked, next + 1, note).await
    }))
}

// --- pgbouncer-kill --------------------------------------------------------

fn pgbouncer_kill(lab: &mut Lab, backend: Backend) -> Outcome {
    if backend != Backend::Neon {
        return Outcome::NotApplicable(if backend == Backend::Hybrid { "neon's pooler path" } else { "no pooler" });
    }
    let mut bouncer = match Bouncer::start(lab.cluster().port(), "postgres") {
        Ok(bouncer) => bouncer,
        Err(error) => return skip_or_fail(format!("pgbouncer: {error}")),
    };
    let database = lab.cluster().url().rsplit('/').next().unwrap_or("postgres").to_string();
    let mut target = lab.target(backend);
    let direct = target.url.clone();
    target.url = Some(format!("{}?connect_timeout=2", bouncer.url_for("postgres", &database)));
    let mut writer = target.spawn_writer(0, &[("STRATA_PG_POOLER", "1")]);
    let result = (|| {
        if !writer.wait_for_acks(5, Duration::from_secs(30)) {
            return Err("no writes before the fault".to_string());
        }
        std::thread::sleep(Duration::from_millis(lab.random(300)));
        bouncer.kill().map_err(|error| format!("killing pgbouncer: {error}"))?;
        std::thread::sleep(Duration::from_millis(1000));
        bouncer.restart().map_err(|error| format!("restarting pgbouncer: {error}"))?;
        if !writer.wait_for_acks(5, Duration::from_secs(60)) {
            return Err("the writer did not carry on through the restarted pgbouncer".to_string());
        }
        Ok(())
    })();
    let (acked, errors, next) = writer.kill();
    if let Err(reason) = result {
        return Outcome::Failed(format!("{reason}; errors: {errors:?}"));
    }
    let errors: Vec<(String, Duration)> = errors.into_iter().map(|error| (error, Duration::ZERO)).collect();
    if let Err(reason) = check_error_kinds(&errors) {
        return Outcome::Failed(reason);
    }
    // Checked directly on the server, not through the pooler.
    target.url = direct;
    let note = format!("{} failed writes", errors.len());
    outcome(block_on(verify_reopened(&target, &acked, next + 1, note)))
}

fn skip_or_fail(reason: String) -> Outcome {
    if common::required() { Outcome::Failed(reason) } else { Outcome::Skipped(reason) }
}

// --- the TCP proxy ---------------------------------------------------------

/// A TCP proxy in front of a server that can cut every connection or stop forwarding.
struct Proxy {
    port: u16,
    stalled: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    closed: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(AtomicBool::new(false));
        {
            let (stalled, connections, closed) = (stalled.clone(), connections.clone(), closed.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if closed.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                    {
                        let mut open = connections.lock().unwrap();
                        open.push(client.try_clone().unwrap());
                        open.push(server.try_clone().unwrap());
                    }
                    for (from, to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                        let stalled = stalled.clone();
                        std::thread::spawn(move || pump(from, to, &stalled));
                    }
                }
            });
        }
        Proxy { port, stalled, connections, closed }
    }

    /// Cuts every open connection (both directions).
    fn cut(&self) -> usize {
        let mut open = self.connections.lock().unwrap();
        let count = open.len() / 2;
        for stream in open.drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        count
    }

    fn stall(&self, on: bool) {
        self.stalled.store(on, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        self.cut();
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` to `to`, holding the bytes back while `stalled`.
fn pump(mut from: TcpStream, mut to: TcpStream, stalled: &AtomicBool) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        while stalled.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if to.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

fn through_proxy(lab: &Lab, backend: Backend, proxy: &Proxy) -> Target {
    let mut target = lab.target(backend);
    let url = lab.cluster().url().replace(&format!(":{}/", lab.cluster().port()), &format!(":{}/", proxy.port));
    target.url = Some(format!("{url}?connect_timeout=2"));
    target
}

// --- proxy-drop ------------------------------------------------------------

fn proxy_drop(lab: &mut Lab, backend: Backend) -> Outcome {
    if !backend.uses_postgres() {
        return Outcome::NotApplicable("no network");
    }
    let proxy = Proxy::start(lab.cluster().port());
    let target = through_proxy(lab, backend, &proxy);
    let pauses: Vec<u64> = (0..6).map(|_| 100 + lab.random(400)).collect();
    outcome(block_on(async {
        let stores = target.open().await.map_err(|error| format!("open: {error:#}"))?;
        let stream = Stream::start(stores.market.clone());
        if !stream.more_acks(3, Duration::from_secs(30)).await {
            return Err("no writes before the fault".into());
        }
        let mut cut = 0;
        for pause in pauses {
            tokio::time::sleep(Duration::from_millis(pause)).await;
            cut += proxy.cut();
        }
        let carried_on = stream.more_acks(5, Duration::from_secs(60)).await;
        let (acked, errors, next) = stream.finish().await;
        if !carried_on {
            return Err(format!("the same store did not carry on after the cuts ({})", error_note(&errors)));
        }
        check_error_kinds(&errors)?;
        verify(&stores, &acked, next + 1, format!("{cut} connections cut; {}", error_note(&errors))).await
    }))
}

// --- proxy-stall -----------------------------------------------------------

/// The proxy stops forwarding for longer than the store's timeouts: writes
/// fail with a timeout (neon: no answer within the statement timeout and a
/// margin) or are journaled (hybrid), within a bound, never hang.
fn proxy_stall(lab: &mut Lab, backend: Backend) -> Outcome {
    if !backend.uses_postgres() {
        return Outcome::NotApplicable("no network");
    }
    let proxy = Proxy::start(lab.cluster().port());
    let mut target = through_proxy(lab, backend, &proxy);
    target.extra = ["--pg-statement-timeout", "2", "--pg-retry-budget", "1"].map(str::to_string).to_vec();
    // The longest a write may take with the server unreachable: the stall
    // deadline (twice the statement timeout, the connect timeout and a
    // margin) for each attempt within the retry budget.
    let bound = Duration::from_secs(25);
    outcome(block_on(async {
        let stores = target.open().await.map_err(|error| format!("open: {error:#}"))?;
        let stream = Stream::start(stores.market.clone());
        if !stream.more_acks(3, Duration::from_secs(30)).await {
            return Err("no writes before the fault".into());
        }
        proxy.stall(true);
        let stalled_at = Instant::now();
        // A hybrid stack journals within its primary timeout; neon fails within its deadline.
        let answered = if backend == Backend::Hybrid {
            stream.more_acks(3, bound).await
        } else {
            let started = Instant::now();
            loop {
                if !stream.errors.lock().unwrap().is_empty() {
                    break true;
                }
                if started.elapsed() > bound {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let took = stalled_at.elapsed();
        // A read through the stalled link answers too (an error, or the hybrid's cache), within the bound.
        let read_started = Instant::now();
        let read = tokio::time::timeout(bound, census(stores.market.as_ref())).await;
        let read_took = read_started.elapsed();
        proxy.stall(false);
        proxy.cut();
        let carried_on = stream.more_acks(5, Duration::from_secs(60)).await;
        let (acked, errors, next) = stream.finish().await;
        if !answered {
            return Err(format!("writes hung through a stall of {took:.1?} (bound {bound:?})"));
        }
        let read = match read {
            Err(_) => return Err(format!("a read hung through the stall (bound {bound:?})")),
            Ok(Ok(_)) => "the read answered from the cache".to_string(),
            Ok(Err(_)) => format!("the read failed after {read_took:.1?}"),
        };
        if !carried_on {
            return Err(format!("the same store did not carry on after the stall ({})", error_note(&errors)));
        }
        check_error_kinds(&errors)?;
        let note = format!("the write answered {took:.1?} into the stall, {read}; {}", error_note(&errors));
        verify(&stores, &acked, next + 1, note).await
    }))
}

// --- disk-full and read-only (mounts) -------------------------------------

/// A filesystem mounted over `path` for a scenario, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(path: &Path, size: &str) -> Result<Mount, String> {
        mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"], path)?;
        Ok(Mount(path.to_path_buf()))
    }

    fn read_only_bind(path: &Path) -> Result<Mount, String> {
        mount(&["--bind"], path)?;
        let mount = Mount(path.to_path_buf());
        let status = Command::new("mount").args(["-o", "remount,ro,bind"]).arg(path).output();
        match status {
            Ok(output) if output.status.success() => Ok(mount),
            Ok(output) => Err(String::from_utf8_lossy(&output.stderr).trim().to_string()),
            Err(error) => Err(error.to_string()),
        }
    }

    fn remount(&self, options: &str) -> Result<(), String> {
        let output = Command::new("mount").args(["-o", options]).arg(&self.0).output().map_err(|e| e.to_string())?;
        if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).trim().to_string()) }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount(arguments: &[&str], path: &Path) -> Result<(), String> {
    let source_is_path = arguments == ["--bind"];
    let mut command = Command::new("mount");
    command.args(arguments);
    if source_is_path {
        command.arg(path);
    }
    let output = command.arg(path).output().map_err(|error| format!("mount: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("mount {}: {}", arguments.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
    }
}

/// A mount this machine refused: a failure as root under STRATA_REQUIRE_SERVICES, else a skip.
fn mount_refused(lab: &Lab, reason: String) -> Outcome {
    if lab.as_root && common::required() { Outcome::Failed(reason) } else { Outcome::Skipped(reason) }
}

fn disk_full(lab: &mut Lab, backend: Backend) -> Outcome {
    if !matches!(backend, Backend::DuckDb | Backend::Efs) {
        return Outcome::NotApplicable(match backend {
            Backend::Memory => "no disk",
            Backend::Hybrid => "its cache is the duckdb row",
            _ => "the server's disk",
        });
    }
    let target = lab.target(backend);
    // Small enough to fill in seconds: Parquet files are smaller than DuckDB's blocks.
    let size = if backend == Backend::Efs { "1m" } else { "3m" };
    let mount = match Mount::tmpfs(&target.dir.join("data"), size) {
        Ok(mount) => mount,
        Err(reason) => return mount_refused(lab, reason),
    };
    std::fs::create_dir_all(target.dir.join("data/efs")).unwrap();
    let result = block_on(async {
        let stores = target.open().await.map_err(|error| format!("open: {error:#}"))?;
        let mut acked = BTreeSet::new();
        let mut failure = None;
        for number in 0..2000u64 {
            match stores.market.write_bars(batch(number)).await {
                Ok(_) => {
                    acked.insert(number);
                }
                Err(error) => {
                    failure = Some((number, error));
                    break;
                }
            }
        }
        let Some((failed_at, error)) = failure else {
            return Err(format!("2000 batches fit in a {size} filesystem: the fault never happened"));
        };
        let message = error.to_string().to_lowercase();
        if !(message.contains("space") || message.contains("full")) {
            return Err(format!("a full disk is reported as: {error}"));
        }
        if error.kind() == "conflict" || error.kind() == "invalid_input" {
            return Err(format!("a full disk is reported as a {} error: {error}", error.kind()));
        }
        mount.remount("remount,size=512m")?;
        // The fault has cleared: the same handle carries on, or a new process does.
        let same_handle = usable(&stores, failed_at + 1).await;
        if same_handle.is_ok() {
            acked.insert(failed_at + 1);
        }
        drop(stores);
        let note = match &same_handle {
            Ok(()) => format!("full at batch {failed_at}: {}; the open store carried on", error.kind()),
            Err(why) => format!("full at batch {failed_at}: {}; reopened ({why})", error.kind()),
        };
        verify_reopened(&target, &acked, failed_at + 2, note).await
    });
    drop(mount);
    outcome(result)
}

fn read_only(lab: &mut Lab, backend: Backend) -> Outcome {
    if !matches!(backend, Backend::DuckDb | Backend::Efs) {
        return Outcome::NotApplicable(match backend {
            Backend::Memory => "no directory",
            Backend::Hybrid => "its cache is the duckdb row",
            _ => "the server's directory",
        });
    }
    let target = lab.target(backend);
    let data = target.dir.join("data");
    let acked: BTreeSet<u64> = (0..3).collect();
    let written = block_on(async {
        let stores = target.open().await.map_err(|error| format!("open: {error:#}"))?;
        for number in &acked {
            stores.market.write_bars(batch(*number)).await.map_err(|error| format!("write: {error}"))?;
        }
        Ok::<_, String>(())
    });
    if let Err(reason) = written {
        return Outcome::Failed(reason);
    }
    let mount = match Mount::read_only_bind(&data) {
        Ok(mount) => mount,
        Err(reason) => return mount_refused(lab, reason),
    };
    let result = block_on(async {
        let refused = match target.open().await {
            Err(error) => format!("{error:#}"),
            Ok(stores) => match stores.market.write_bars(batch(10)).await {
                Err(error) => error.to_string(),
                Ok(_) => return Err("a write to a read-only directory was acknowledged".to_string()),
            },
        };
        let lower = refused.to_lowercase();
        if !lower.contains("mounted read-only") {
            return Err(format!("a read-only directory is reported as: {refused}"));
        }
        let mut config = target.config();
        config.background_replay = false;
        let reader = strata_compose::build_market(&config, Access::Read)
            .await
            .map_err(|error| format!("reading a read-only store fails: {error:#}"))?;
        let seen = census(reader.market.as_ref()).await?;
        drop(reader);
        judge(&acked, &seen, String::new())?;
        mount.remount("remount,rw,bind")?;
        let first: String = refused.chars().take(200).collect();
        verify_reopened(&target, &acked, 11, format!("refused: {first}")).await
    });
    drop(mount);
    outcome(result)
}

// --- store-locked ----------------------------------------------------------

fn store_locked(lab: &mut Lab, backend: Backend) -> Outcome {
    match backend {
        Backend::Memory | Backend::Efs => {
            Outcome::NotApplicable(if backend == Backend::Memory { "no file" } else { "readers take no lock" })
        }
        Backend::DuckDb | Backend::Hybrid => duckdb_file_locked(lab, backend),
        Backend::Neon => table_locked(lab),
    }
}

fn duckdb_file_locked(lab: &mut Lab, backend: Backend) -> Outcome {
    let target = lab.target(backend);
    let acked: BTreeSet<u64> = (0..2).collect();
    if let Err(reason) = block_on(async {
        let stores = target.open().await.map_err(|error| format!("open: {error:#}"))?;
        for number in &acked {
            stores.market.write_bars(batch(*number)).await.map_err(|error| format!("write: {error}"))?;
        }
        drain(&stores).await
    }) {
        return Outcome::Failed(reason);
    }
    let file = target.dir.join("data/store.duckdb");
    // Another program holds the file, as the duckdb shell or a notebook would:
    // an exclusive POSIX record lock, which is what DuckDB takes.
    let mut holder = Command::new("python3")
        .args(["-c", "import fcntl, sys, time\nf = open(sys.argv[1], 'r+b')\nfcntl.lockf(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(120)"])
        .arg(&file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let _ = std::io::BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line);
    let result = block_on(async {
        if line.trim() != "held" {
            return Err("the holder did not take the lock".to_string());
        }
        let refused = match target.open().await {
            Err(error) => format!("{error:#}"),
            Ok(_) => return Err("the store opened for writing while another program held its file".to_string()),
        };
        if !refused.to_lowercase().contains("lock") {
            return Err(format!("a held file is reported as: {refused}"));
        }
        let _ = holder.kill();
        let _ = holder.wait();
        let first: String = refused.chars().take(200).collect();
        verify_reopened(&target, &acked, 3, format!("refused: {first}")).await
    });
    let _ = holder.kill();
    let _ = holder.wait();
    outcome(result)
}

fn table_locked(lab: &mut Lab) -> Outcome {
    let mut target = lab.target(Backend::Neon);
    target.extra = ["--pg-statement-timeout", "2"].map(str::to_string).to_vec();
    let acked: BTreeSet<u64> = (0..2).collect();
    outcome(block_on(async {
        let stores = target.open().await.map_err(|error| format!("open: {error:#}"))?;
        for number in &acked {
            stores.market.write_bars(batch(*number)).await.map_err(|error| format!("write: {error}"))?;
        }
        // Another session holds the bars table for 6 s.
        let sql = format!(
            "BEGIN; LOCK TABLE {}.ohlcv_bars IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(6); COMMIT;",
            target.schema
        );
        let mut holder = Command::new("psql")
            .args(["-X", "-q", "-d", target.url.as_deref().unwrap(), "-c", &sql])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        let started = Instant::now();
        let refused = stores.market.write_bars(batch(5)).await;
        let took = started.elapsed();
        let _ = tokio::task::spawn_blocking(move || holder.wait()).await;
        let error = match refused {
            Ok(_) => return Err("a write went through a table another session held locked".to_string()),
            Err(error) => error,
        };
        if error.kind() != "timeout" || took > Duration::from_secs(5) {
            return Err(format!("a held lock gave after {took:.1?}: {}: {error}", error.kind()));
        }
        verify(&stores, &acked, 6, format!("timeout after {took:.1?}")).await
    }))
}

// --- clock-jump ------------------------------------------------------------

/// A lease child: leases up to 4 tasks of the run, prints its clock and what it got.
#[test]
fn chaos_lease_child() {
    if std::env::var("STRATA_CHAOS_CHILD").as_deref() != Ok("lease") {
        return;
    }
    let flags: Vec<String> = std::env::var("STRATA_CHAOS_FLAGS").unwrap().split('\t').map(str::to_string).collect();
    let url = std::env::var("STRATA_CHAOS_URL").ok();
    let worker = std::env::var("STRATA_CHAOS_WORKER").unwrap();
    let max_tasks: u32 = std::env::var("STRATA_CHAOS_MAX").unwrap().parse().unwrap();
    common::runtime().block_on(async move {
        let stores = strata_compose::build_stores(&config_from(&flags, url), Access::Write).await.unwrap();
        let request = LeaseRequest {
            worker: strata_tests::fixtures::worker_id(&worker),
            run: Some(strata_tests::fixtures::run_id("chaos-clock")),
            max_tasks,
            ttl: Duration::from_secs(60),
        };
        let leased = stores.evolution.lease_tasks(request).await.unwrap();
        println!("clock {}", Timestamp::now().micros() / 1_000_000);
        println!("leased {}", leased.len());
    });
}

/// The multi-threaded libfaketime (`/usr/lib/<multiarch>/faketime/libfaketimeMT.so.1`).
fn libfaketime() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib")
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("faketime/libfaketimeMT.so.1"))
        .find(|path| path.is_file())
}

fn lease_child(target: &Target, worker: &str, max_tasks: u32, offset: &str) -> Result<(i64, usize), String> {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "chaos_lease_child", "--nocapture", "--test-threads", "1"])
        .env("STRATA_CHAOS_CHILD", "lease")
        .env("STRATA_CHAOS_FLAGS", target.flags().join("\t"))
        .env("STRATA_CHAOS_URL", target.url.clone().unwrap_or_default())
        .env("STRATA_CHAOS_WORKER", worker)
        .env("STRATA_CHAOS_MAX", max_tasks.to_string())
        .env("LD_PRELOAD", libfaketime().unwrap())
        .env("FAKETIME", offset)
        .env("DONT_FAKE_MONOTONIC", "1")
        .output()
        .map_err(|error| format!("lease child: {error}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value =
        |word: &str| stdout.lines().find_map(|line| line.split_once(word).map(|(_, rest)| rest.trim().to_string()));
    match (value("clock "), value("leased ")) {
        (Some(clock), Some(leased)) => Ok((clock.parse().unwrap(), leased.parse().unwrap())),
        _ => Err(format!("the lease child failed:\n{stdout}{}", String::from_utf8_lossy(&output.stderr))),
    }
}

fn clock_jump(lab: &mut Lab, backend: Backend) -> Outcome {
    match backend {
        Backend::Memory => return Outcome::NotApplicable("one process: the store's clock is the client's"),
        Backend::Efs => return Outcome::NotApplicable("evolution state lives in duckdb or neon"),
        Backend::Hybrid => return Outcome::NotApplicable("evolution state lives in its primary (neon row)"),
        Backend::DuckDb | Backend::Neon => {}
    }
    if libfaketime().is_none() {
        return skip_or_fail("libfaketime is missing (Debian package faketime)".to_string());
    }
    let target = lab.target(backend);
    outcome(block_on(async {
        // This process holds the store (for duckdb: the file, served to the children).
        let stores = strata_compose::build_stores(&target.config(), Access::Write)
            .await
            .map_err(|error| format!("open: {error:#}"))?;
        let store = stores.evolution.clone();
        let run = strata_tests::fixtures::run_with_tasks(store.as_ref(), "chaos-clock", 4, 3).await;
        store.set_run_status(&run, RunStatus::Running).await.map_err(|error| error.to_string())?;
        let mine = store
            .lease_tasks(LeaseRequest {
                run: Some(run.clone()),
                ..strata_tests::fixtures::lease_request("steady", 1, Duration::from_secs(60))
            })
            .await
            .map_err(|error| error.to_string())?;
        let now = Timestamp::now().micros() / 1_000_000;
        // A worker 3 hours behind: if its clock set the expiry, its lease would be long expired for everyone else.
        let t = target_ref(&target);
        let (behind_clock, behind) =
            tokio::task::spawn_blocking(move || lease_child(&t, "behind", 1, "-3h")).await.unwrap()?;
        // A worker 3 hours ahead: if its clock judged expiry, it would take every lease there is.
        let t = target_ref(&target);
        let (ahead_clock, ahead) =
            tokio::task::spawn_blocking(move || lease_child(&t, "ahead", 4, "+3h")).await.unwrap()?;
        for (name, clock, hours) in [("behind", behind_clock, -3), ("ahead", ahead_clock, 3)] {
            let off = clock - now - hours * 3600;
            if off.abs() > 120 {
                return Err(format!("the {name} child's clock was not moved {hours} h (libfaketime did not apply)"));
            }
        }
        if mine.len() != 1 || behind != 1 || ahead != 2 {
            return Err(format!(
                "leases granted: steady {}, behind {behind}, ahead {ahead}; expected 1, 1, 2",
                mine.len()
            ));
        }
        let requeued = store.requeue_expired().await.map_err(|error| error.to_string())?;
        let tasks = store.list_tasks(&run, 0).await.map_err(|error| error.to_string())?;
        let held = tasks.iter().filter(|task| task.state == TaskState::Leased).count() as u64;
        if requeued != 0 || held != 4 {
            return Err(format!("after the jumps: {requeued} leases requeued as expired, {held} of 4 still held"));
        }
        Ok(Tally { acknowledged: 4, found: held, note: "leases granted/held; clocks -3 h and +3 h".to_string() })
    }))
}

/// A copy of what a lease child needs from `target` (it outlives no scope).
fn target_ref(target: &Target) -> Target {
    Target {
        backend: target.backend,
        dir: target.dir.clone(),
        _guard: tempfile::tempdir().unwrap(),
        url: target.url.clone(),
        schema: target.schema.clone(),
        extra: target.extra.clone(),
    }
}

// --- the matrix ------------------------------------------------------------

const SCENARIOS: [(&str, Scenario); 10] = [
    ("writer-sigkill", writer_sigkill),
    ("write-cancelled", write_cancelled),
    ("server-restart", server_restart),
    ("pgbouncer-kill", pgbouncer_kill),
    ("proxy-drop", proxy_drop),
    ("proxy-stall", proxy_stall),
    ("disk-full", disk_full),
    ("read-only", read_only),
    ("store-locked", store_locked),
    ("clock-jump", clock_jump),
];

fn listed(variable: &str) -> Option<Vec<String>> {
    std::env::var(variable)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .map(|value| value.split(',').map(|part| part.trim().to_ascii_lowercase()).collect())
}

#[test]
fn chaos_matrix() {
    if std::env::var("STRATA_CHAOS_CHILD").is_ok() {
        return;
    }
    let backends: Vec<Backend> = match listed("STRATA_CHAOS_BACKENDS") {
        Some(names) => Backend::ALL.into_iter().filter(|backend| names.iter().any(|n| n == backend.name())).collect(),
        None => Backend::ALL.to_vec(),
    };
    let scenarios: Vec<(&str, Scenario)> = match listed("STRATA_CHAOS_SCENARIOS") {
        Some(names) => SCENARIOS.into_iter().filter(|(name, _)| names.iter().any(|n| n == name)).collect(),
        None => SCENARIOS.to_vec(),
    };
    let needs_postgres = backends.iter().any(|backend| backend.uses_postgres());
    let cluster = if needs_postgres {
        match Cluster::start(&ClusterOptions::default()) {
            Ok(cluster) => Some(cluster),
            Err(error) if !common::required() => {
                eprintln!("chaos: no throwaway PostgreSQL cluster ({error}): the neon and hybrid rows are skipped");
                None
            }
            Err(error) => panic!("cannot start a throwaway PostgreSQL cluster: {error}"),
        }
    } else {
        None
    };
    let seed = std::env::var("STRATA_CHAOS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id()));
    let rounds = std::env::var("STRATA_CHAOS_ROUNDS").ok().and_then(|rounds| rounds.parse().ok()).unwrap_or(4);
    let mut lab = Lab {
        cluster,
        rounds,
        random: Mutex::new(Random(seed | 1)),
        seed,
        as_root: Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.starts_with(b"0")),
    };
    let mut rows = Vec::new();
    for (name, scenario) in &scenarios {
        for backend in &backends {
            if backend.uses_postgres() && lab.cluster.is_none() {
                rows.push((*name, *backend, Outcome::Skipped("no PostgreSQL".into()), Duration::ZERO));
                continue;
            }
            let started = Instant::now();
            let result = scenario(&mut lab, *backend);
            eprintln!("chaos: {name} on {} done in {:.1?}", backend.name(), started.elapsed());
            rows.push((*name, *backend, result, started.elapsed()));
        }
    }
    let table = render(&rows);
    println!("\nchaos matrix (seed {}, {} rounds)\n{table}", lab.seed, lab.rounds);
    if let Ok(path) = std::env::var("STRATA_CHAOS_REPORT") {
        std::fs::write(&path, json(&rows, lab.seed, lab.rounds)).unwrap();
    }
    let failed: Vec<String> = rows
        .iter()
        .filter_map(|(name, backend, outcome, _)| match outcome {
            Outcome::Failed(reason) => Some(format!("{name} on {}: {reason}", backend.name())),
            _ => None,
        })
        .collect();
    assert!(failed.is_empty(), "chaos scenarios failed (seed {}):\n{}\n{table}", lab.seed, failed.join("\n"));
}

fn verdict(outcome: &Outcome) -> (&'static str, String, String, String) {
    match outcome {
        Outcome::Passed(tally) => ("pass", tally.acknowledged.to_string(), tally.found.to_string(), tally.note.clone()),
        Outcome::Failed(reason) => ("FAIL", "-".into(), "-".into(), reason.clone()),
        Outcome::NotApplicable(why) => ("n/a", "-".into(), "-".into(), (*why).to_string()),
        Outcome::Skipped(why) => ("skipped", "-".into(), "-".into(), why.clone()),
    }
}

fn render(rows: &[(&str, Backend, Outcome, Duration)]) -> String {
    let mut text = format!(
        "{:<16} {:<8} {:>12} {:>10} {:<8} {:>7}  {}\n",
        "scenario", "backend", "acknowledged", "found", "verdict", "seconds", "note"
    );
    for (name, backend, outcome, took) in rows {
        let (verdict, acknowledged, found, note) = verdict(outcome);
        text.push_str(&format!(
            "{name:<16} {:<8} {acknowledged:>12} {found:>10} {verdict:<8} {:>7.1}  {note}\n",
            backend.name(),
            took.as_secs_f64()
        ));
    }
    text
}

fn json(rows: &[(&str, Backend, Outcome, Duration)], seed: u64, rounds: u64) -> String {
    let quote = |text: &str| format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', " "));
    let entries: Vec<String> = rows
        .iter()
        .map(|(name, backend, outcome, took)| {
            let (verdict, acknowledged, found, note) = verdict(outcome);
            let number = |text: &str| if text == "-" { "null".to_string() } else { text.to_string() };
            format!(
                "{{\"scenario\":{},\"backend\":{},\"acknowledged_rows\":{},\"rows_found\":{},\"verdict\":{},\"seconds\":{:.2},\"note\":{}}}",
                quote(name),
                quote(backend.name()),
                number(&acknowledged),
                number(&found),
                quote(verdict),
                took.as_secs_f64(),
                quote(&note)
            )
        })
        .collect();
    format!("{{\"seed\":{seed},\"rounds\":{rounds},\"rows\":[\n{}\n]}}\n", entries.join(",\n"))
}
