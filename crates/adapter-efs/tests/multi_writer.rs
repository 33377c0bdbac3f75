//! Eight writer processes (this test binary started again with
//! `STRATA_EFS_TEST_WRITER` set) append and upsert overlapping symbols and
//! days in one dataset; some are SIGKILLed at random moments. Then every
//! acknowledged batch is there with its last value, no key appears twice,
//! no staging or torn file is visible to a Hive reader, compaction leaves one
//! file per partition, a replayed batch changes nothing, and the odd symbols
//! round-trip. Assertions never depend on timing.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use strata_adapter_efs::{EfsConfig, EfsStore};
use strata_core::{Bar, BarBatch, BarQuery, DigestQuery, MarketDataStore, MarketDataStoreExt, Symbol, Timestamp};

const WRITER_ENV: &str = "STRATA_EFS_TEST_WRITER";
const ROOT_ENV: &str = "STRATA_EFS_TEST_ROOT";
const WRITERS: usize = 8;
const BATCHES: usize = 24;
const SYMBOLS: [&str; 4] = ["BTC-USD", "BRK.B", "7203", "^GSPC"];
/// Writers killed at a random moment.
const DOOMED: [usize; 3] = [1, 4, 6];
/// Slots (minutes) per writer and day; a batch covers a sliding window of them.
const SLOTS: usize = 30;
const WINDOW: usize = 12;

/// Days that straddle a year boundary, so most batches span several partitions.
fn days() -> [Timestamp; 3] {
    [
        Timestamp::parse("2023-12-30").unwrap(),
        Timestamp::parse("2023-12-31").unwrap(),
        Timestamp::parse("2024-01-01").unwrap(),
    ]
}

/// The keys batch `n` of writer `w` writes: a window of its slots on every
/// symbol and day. Writers interleave their minutes, so keys never collide
/// across writers while partitions and days are shared by all.
fn keys(writer: usize, batch: usize) -> Vec<(&'static str, Timestamp)> {
    let first = (batch * 5) % (SLOTS - WINDOW);
    let mut out = Vec::new();
    for symbol in SYMBOLS {
        for day in days() {
            for slot in first..first + WINDOW {
                let minute = (slot * WRITERS + writer) as i64;
                out.push((symbol, day.plus_micros(minute * 60_000_000)));
            }
        }
    }
    out
}

/// The value that identifies (writer, batch): `trade_count = batch * 100 + writer`.
fn bars(writer: usize, batch: usize) -> Vec<Bar> {
    keys(writer, batch)
        .into_iter()
        .map(|(symbol, timestamp)| Bar {
            symbol: symbol.to_string(),
            timestamp,
            open: 10.0 + writer as f64,
            high: 20.0 + writer as f64,
            low: 5.0,
            close: 10.5 + batch as f64 / 100.0,
            volume: batch as f64,
            vwap: None,
            trade_count: Some((batch * 100 + writer) as i64),
        })
        .collect()
}

fn config(root: &Path) -> EfsConfig {
    // A low threshold so compaction runs often while others write.
    EfsConfig::new(root).with_compact_after_files(4)
}

/// Not a test on its own: with `STRATA_EFS_TEST_WRITER` set, writes its
/// batches and prints `ACK <n>` after each acknowledged one.
#[test]
fn writer_child() {
    let (Ok(writer), Ok(root)) = (std::env::var(WRITER_ENV), std::env::var(ROOT_ENV)) else { return };
    let writer: usize = writer.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = EfsStore::open(config(Path::new(&root))).await.unwrap();
        let mut out = std::io::stdout();
        for batch in 0..BATCHES {
            store.write_bars(BarBatch::from_bars(&bars(writer, batch))).await.unwrap();
            writeln!(out, "ACK {batch}").unwrap();
            out.flush().unwrap();
        }
        writeln!(out, "DONE").unwrap();
    });
}

/// A tiny seeded generator (xorshift64*), seeded from the clock and printed.
struct Random(u64);

impl Random {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % below.max(1)
    }
}

/// Every file under `root/bars`, the Hive dataset, hidden names included:
/// readers pointed at it (polars' directory scan refuses any file that is
/// not `.parquet`) must find nothing but published data files.
fn hive_listing(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![root.join("bars")];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Asserts that every listed file is a complete Parquet file named
/// `part-<position>.parquet`; a file removed meanwhile by compaction is fine.
fn assert_no_torn_or_staging_file(root: &Path) -> usize {
    let mut checked = 0;
    for path in hive_listing(root) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("part-") && name.ends_with(".parquet"), "a Hive reader would list {path:?}");
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => panic!("{path:?}: {error}"),
        };
        let reader = parquet::file::reader::SerializedFileReader::new(file);
        assert!(reader.is_ok(), "{path:?} is not a complete Parquet file: {:?}", reader.err());
        checked += 1;
    }
    checked
}

/// Reads everything and asserts keys are unique and ordered within each symbol.
async fn read_all_unique(store: &EfsStore) -> Vec<Bar> {
    try_read_all_unique(store).await.unwrap()
}

/// As [`read_all_unique`], or the retryable error the port allows when the
/// dataset changed under a query that had already streamed rows.
async fn try_read_all_unique(store: &EfsStore) -> strata_core::Result<Vec<Bar>> {
    let bars = store.collect_bars(BarQuery::default()).await?;
    for pair in bars.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            a.symbol < b.symbol || (a.symbol == b.symbol && a.timestamp < b.timestamp),
            "duplicate or out of order: {a:?} then {b:?}"
        );
    }
    Ok(bars)
}

#[test]
fn eight_writers_some_killed_leave_every_acknowledged_batch_and_no_duplicate() {
    if std::env::var(WRITER_ENV).is_ok() {
        return;
    }
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path().to_path_buf();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("seed {seed}");
    let mut random = Random(seed);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(EfsStore::open(config(&root))).unwrap();

    // Start the writers; a thread per writer records its acknowledgements.
    let acked: Arc<Mutex<Vec<Option<usize>>>> = Arc::new(Mutex::new(vec![None; WRITERS]));
    let kill_after: Vec<Option<usize>> =
        (0..WRITERS).map(|w| DOOMED.contains(&w).then(|| 1 + random.next(BATCHES as u64 - 4) as usize)).collect();
    let mut children = Vec::new();
    let mut readers = Vec::new();
    for writer in 0..WRITERS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
            .env(WRITER_ENV, writer.to_string())
            .env(ROOT_ENV, &root)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let acked = Arc::clone(&acked);
        let (tell, told) = std::sync::mpsc::channel::<usize>();
        readers.push(std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest may print the test name on the same line first.
                if let Some((_, number)) = line.split_once("ACK ") {
                    let number: usize = number.trim().parse().unwrap();
                    acked.lock().unwrap()[writer] = Some(number);
                    let _ = tell.send(number);
                }
            }
        }));
        children.push((child, told));
    }

    // While they write: Strata's reader never sees a duplicate, and a Hive
    // listing never shows a staging or torn file.
    let writing = Arc::new(AtomicBool::new(true));
    let watcher = {
        let writing = Arc::clone(&writing);
        let root = root.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let store = runtime.block_on(EfsStore::open(config(&root))).unwrap();
            let mut rounds = 0;
            while writing.load(Ordering::SeqCst) {
                assert_no_torn_or_staging_file(&root);
                match runtime.block_on(try_read_all_unique(&store)) {
                    Ok(_) => rounds += 1,
                    Err(error) => assert!(error.is_retryable(), "a concurrent read failed: {error}"),
                }
            }
            rounds
        })
    };

    // Kill the doomed writers once they acknowledged their chosen number of
    // batches, after a random pause so the kill lands anywhere in a write.
    for (writer, (child, told)) in children.iter_mut().enumerate() {
        if let Some(after) = kill_after[writer] {
            while let Ok(number) = told.recv() {
                if number + 1 >= after {
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(random.next(20_000)));
            child.kill().unwrap();
            eprintln!("killed writer {writer} after ack {:?}", acked.lock().unwrap()[writer]);
        }
    }
    for (writer, (mut child, _)) in children.into_iter().enumerate() {
        let status = child.wait().unwrap();
        if !DOOMED.contains(&writer) {
            assert!(status.success(), "writer {writer} failed: {status}");
        }
    }
    for reader in readers {
        reader.join().unwrap();
    }
    writing.store(false, Ordering::SeqCst);
    let rounds = watcher.join().unwrap();
    eprintln!("{rounds} concurrent read rounds");
    let acked = acked.lock().unwrap().clone();
    for writer in (0..WRITERS).filter(|w| !DOOMED.contains(w)) {
        assert_eq!(acked[writer], Some(BATCHES - 1), "writer {writer} acknowledged every batch");
    }

    runtime.block_on(async {
        let store = EfsStore::open(config(&root)).await.unwrap();
        let stored = read_all_unique(&store).await;
        let by_key: BTreeMap<(String, Timestamp), &Bar> =
            stored.iter().map(|bar| ((bar.symbol.clone(), bar.timestamp), bar)).collect();
        if std::panic::catch_unwind(|| check_acknowledged(&by_key, &acked)).is_err() {
            dump(&root);
            panic!("see the dump above");
        }

        // A crashed writer's leftovers: compaction with `stale_after = 0`
        // (no writer is alive now) aborts its unfinished batches and
        // removes its staging files; then every partition is one file.
        let cleaner = EfsStore::open(config(&root).with_stale_after(Duration::ZERO)).await.unwrap();
        let digest_before = store.digest(DigestQuery::default()).await.unwrap();
        cleaner.compact_all().await.unwrap();
        assert_eq!(store.digest(DigestQuery::default()).await.unwrap(), digest_before, "compaction changes no row");
        let listed = hive_listing(&root);
        let mut per_partition: BTreeMap<PathBuf, usize> = BTreeMap::new();
        for path in &listed {
            *per_partition.entry(path.parent().unwrap().to_path_buf()).or_default() += 1;
        }
        assert_eq!(per_partition.len(), SYMBOLS.len() * 2, "one partition per symbol and year: {per_partition:?}");
        assert!(per_partition.values().all(|files| *files == 1), "one file per partition: {per_partition:?}");
        assert_no_torn_or_staging_file(&root);
        assert!(
            walk_all(&root).iter().all(|path| !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".strata-stage-")),
            "compaction removed the crashed writers' staging files"
        );
        let health = store.health().await.unwrap();
        assert!(health.ok(), "healthy after compaction: {health:?}");

        // An external reader that reads every listed file sees each key once.
        let mut external: Vec<(String, i64)> = Vec::new();
        for path in &listed {
            let file = std::fs::File::open(path).unwrap();
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
            let symbol = strata_formats::read::hive::symbol_from_path(path).unwrap().unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                assert!(batch.schema().column_with_name("symbol").is_none(), "the symbol is only in the path");
                let batch = strata_formats::read::hive::with_path_symbol(&batch, symbol.as_str()).unwrap();
                let bars = BarBatch::try_new(batch).unwrap().to_bars();
                external.extend(bars.into_iter().map(|bar| (bar.symbol, bar.timestamp.micros())));
            }
        }
        let total = external.len();
        external.sort();
        external.dedup();
        assert_eq!(external.len(), total, "a compacted dataset shows no duplicate to a Hive reader");
        assert_eq!(total, stored.len(), "the Hive reader sees what Strata sees");

        // Replaying an acknowledged batch changes nothing.
        let writer = (0..WRITERS).find(|w| !DOOMED.contains(w)).unwrap();
        store.write_bars(BarBatch::from_bars(&bars(writer, BATCHES - 1))).await.unwrap();
        assert_eq!(store.digest(DigestQuery::default()).await.unwrap(), digest_before, "a replay changes nothing");

        // The odd symbols round-trip, in their directories' encoded form.
        let summary = store.summary().await.unwrap();
        let mut expected: Vec<&str> = SYMBOLS.to_vec();
        expected.sort_unstable();
        let listed_symbols: Vec<&str> = summary.symbols.iter().map(|s| s.symbol.as_str()).collect();
        assert_eq!(listed_symbols, expected);
        for (symbol, dir) in [
            ("BRK.B", "symbol=BRK.B"),
            ("7203", "symbol=7203"),
            ("^GSPC", "symbol=%5EGSPC"),
            ("BTC-USD", "symbol=BTC-USD"),
        ] {
            assert!(root.join("bars").join(dir).is_dir(), "{symbol} lives in bars/{dir}");
            let mut stream = store.query_bars(BarQuery::symbol(Symbol::new(symbol).unwrap()));
            let first = stream.next().await.unwrap().unwrap();
            assert!(first.to_bars().iter().all(|bar| bar.symbol == symbol), "{symbol} reads back unchanged");
        }
    });
}

/// Every key of every acknowledged batch holds the value of that batch or of
/// a later batch of the same writer (a later one may have landed unacknowledged
/// just before a kill); writers that finished hold exactly their last value.
fn check_acknowledged(by_key: &BTreeMap<(String, Timestamp), &Bar>, acked: &[Option<usize>]) {
    for (writer, acked) in acked.iter().enumerate() {
        let Some(last_acked) = *acked else { continue };
        // The last acknowledged batch that wrote each key.
        let mut expected: BTreeMap<(String, Timestamp), usize> = BTreeMap::new();
        for batch in 0..=last_acked {
            for (symbol, timestamp) in keys(writer, batch) {
                expected.insert((symbol.to_string(), timestamp), batch);
            }
        }
        for (key, batch) in expected {
            let bar =
                by_key.get(&key).unwrap_or_else(|| panic!("writer {writer}: acknowledged key {key:?} is missing"));
            let count = bar.trade_count.unwrap() as usize;
            assert_eq!(count % 100, writer, "{key:?} belongs to writer {writer}: {bar:?}");
            let stored_batch = count / 100;
            if DOOMED.contains(&writer) {
                assert!(
                    stored_batch == batch
                        || (stored_batch == last_acked + 1
                            && keys(writer, stored_batch).iter().any(|k| (k.0.to_string(), k.1) == key)),
                    "writer {writer} {key:?}: stored batch {stored_batch}, acknowledged {batch} (last ack {last_acked})"
                );
            } else {
                assert_eq!(stored_batch, batch, "writer {writer} {key:?}: the last write wins");
            }
            assert_eq!(
                bar,
                &&bars(writer, stored_batch).into_iter().find(|b| (b.symbol.clone(), b.timestamp) == key).unwrap()
            );
        }
    }
}

/// Every file under `root`, hidden ones included.
fn walk_all(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.path().is_dir() {
                pending.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

/// Debug: every file of every partition with its footer facts and the writer-1 values it holds.
fn dump(root: &Path) {
    for path in walk_all(root) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let meta = std::fs::metadata(&path).unwrap();
        if !name.starts_with("part-") {
            let text = if path.to_string_lossy().contains("_strata") {
                std::fs::read_to_string(&path).unwrap_or_default()
            } else {
                String::new()
            };
            eprintln!("{} {:?} {}", path.display(), meta.modified().unwrap(), text.trim());
            continue;
        }
        let file = std::fs::File::open(&path).unwrap();
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let kv: Vec<String> = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .iter()
            .filter(|k| k.key.starts_with("strata"))
            .map(|k| format!("{}={}", k.key, k.value.clone().unwrap_or_default()))
            .collect();
        let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
        for batch in builder.build().unwrap() {
            for bar in BarBatch::try_new(batch.unwrap()).unwrap().to_bars() {
                *counts.entry(bar.trade_count.unwrap()).or_default() += 1;
            }
        }
        eprintln!("{} {:?} {kv:?} {counts:?}", path.display(), meta.modified().unwrap());
    }
}
