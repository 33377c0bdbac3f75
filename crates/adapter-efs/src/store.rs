//! `EfsStore`: the `MarketDataStore` port over the dataset engine, every
//! filesystem call on tokio's blocking pool.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use futures::stream::BoxStream;
use strata_core::digest::DigestAccumulator;
use strata_core::{
    BarBatch, BarQuery, Capabilities, DayDigest, DigestQuery, HealthReport, HealthStatus, MarketDataStore,
    MarketSummary, Order, Result, StoreError, Symbol, SymbolSummary, TimeRange, Timestamp, WriteReport,
};

use crate::BACKEND;
use crate::config::EfsConfig;
use crate::dataset::{self, Resolver, Restart, Rewrite};
use crate::error::{arrow_error, io_error};
use crate::layout;
use crate::publish;

/// What this backend can promise (see the crate docs for the reasoning).
pub const CAPABILITIES: Capabilities = Capabilities {
    // An acknowledged write is fsynced (file, then directory) before the ack.
    durable: true,
    // Any host that mounts the share reads and writes it; the protocol needs no lock server.
    shared_across_hosts: true,
    // The digest streams rows to this process; no server computes it.
    server_side_digest: false,
    // A delete rewrites every partition (symbol, year) its range touches.
    cheap_delete: false,
    // A batch is atomic, but there are no multi-statement transactions or checks that commit with it.
    transactions: false,
};

/// Market data as a Hive-partitioned Parquet dataset under one directory.
/// Cheap to clone; clones share nothing but the configuration.
#[derive(Debug, Clone)]
pub struct EfsStore {
    config: EfsConfig,
}

impl fmt::Display for EfsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(BACKEND)
    }
}

impl EfsStore {
    /// Opens the dataset under `config.root`, creating `bars/` (the Hive
    /// dataset) and `_strata/` (staging files, batch markers) when missing.
    /// The root itself must exist (an unmounted share must not turn into a
    /// local directory): a missing root is `Unavailable`. So is a root in the
    /// previous layout (`symbol=*` directories right under it), with the
    /// commands that move it into `bars/`.
    pub async fn open(config: EfsConfig) -> Result<Self> {
        let root = config.root.clone();
        blocking(move || {
            let metadata = fs::metadata(&root).map_err(|error| io_error("opening the dataset root", &root, error))?;
            if !metadata.is_dir() {
                return Err(StoreError::unavailable(
                    BACKEND,
                    format!("the dataset root {} is not a directory", root.display()),
                    None,
                ));
            }
            refuse_previous_layout(&root)?;
            publish::ensure_dir(&root, &publish::batches_dir(&root))?;
            publish::ensure_dir(&root, &layout::staging_dir(&root))?;
            publish::ensure_dir(&root, &layout::data_root(&root))
        })
        .await?;
        Ok(EfsStore { config })
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &EfsConfig {
        &self.config
    }

    /// Merges the files of one partition (`symbol`, `year`) into one, as a
    /// write does when the partition has more than
    /// [`EfsConfig::compact_after_files`] files. Pending batches younger than
    /// [`EfsConfig::stale_after`] and everything after them stay as they are.
    pub async fn compact(&self, symbol: &Symbol, year: i32) -> Result<()> {
        let config = self.config.clone();
        let dir = layout::partition_dir(&config.root, symbol.as_str(), year);
        blocking(move || {
            dataset::rewrite(&config, &dir, Rewrite::Compact)?;
            dataset::remove_stale_staging_in(&config, &layout::staging_dir(&config.root))
        })
        .await
    }

    /// Compacts every partition (those with one file and nothing stale are
    /// left as they are) and removes stale staging files (`_strata/staging/`,
    /// and those a previous layout left in partition or marker directories).
    /// Returns the number of partitions visited.
    pub async fn compact_all(&self) -> Result<usize> {
        let config = self.config.clone();
        blocking(move || {
            let mut visited = 0;
            for years in dataset::partitions(&config.root)?.into_values() {
                for (_, dir) in years {
                    dataset::rewrite(&config, &dir, Rewrite::Compact)?;
                    visited += 1;
                }
            }
            dataset::remove_stale_staging_in(&config, &layout::staging_dir(&config.root))?;
            dataset::remove_stale_staging_in(&config, &publish::batches_dir(&config.root))?;
            Ok(visited)
        })
        .await
    }
}

/// Refuses a root in the previous layout, whose partition directories sat
/// right under it: this layout would silently ignore them.
fn refuse_previous_layout(root: &Path) -> Result<()> {
    let entries = fs::read_dir(root).map_err(|error| io_error("listing the dataset root", root, error))?;
    let mut found = 0usize;
    for entry in entries {
        let entry = entry.map_err(|error| io_error("listing", root, error))?;
        if entry.file_name().to_str().is_some_and(|name| name.starts_with("symbol=")) {
            found += 1;
        }
    }
    if found == 0 {
        return Ok(());
    }
    let shown = root.display();
    Err(StoreError::unavailable(
        BACKEND,
        format!(
            "{shown} holds {found} symbol=... partition director{} in the previous layout, where the dataset sat \
             right under the root; the dataset now lives in {shown}/bars (so that the root's other files do not \
             stop Python readers). With no Strata writer running, move it: \
             mkdir -p '{shown}/bars' && mv '{shown}'/symbol=* '{shown}/bars/' (batch markers in _strata/ stay valid)",
            if found == 1 { "y" } else { "ies" }
        ),
        None,
    ))
}

/// Runs blocking filesystem work off the async runtime.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| StoreError::internal(BACKEND, format!("a filesystem task failed: {error}")))?
}

/// The partitions a query reads, symbols in byte order, each symbol's years in `order`.
fn planned_partitions(
    root: &Path,
    symbols: &[Symbol],
    start: Option<i64>,
    end: Option<i64>,
    order: Order,
) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let all: Vec<(String, Vec<(i32, PathBuf)>)> = if symbols.is_empty() {
        dataset::partitions(root)?.into_iter().collect()
    } else {
        let mut wanted: Vec<&str> = symbols.iter().map(Symbol::as_str).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut out = Vec::new();
        for symbol in wanted {
            out.push((symbol.to_string(), dataset::list_years(&layout::symbol_dir(root, symbol))?));
        }
        out
    };
    Ok(all
        .into_iter()
        .map(|(symbol, years)| {
            let mut dirs: Vec<PathBuf> = years
                .into_iter()
                .filter(|(year, _)| {
                    let (first, next) = layout::year_bounds(*year);
                    start.is_none_or(|s| next > s) && end.is_none_or(|e| first < e)
                })
                .map(|(_, dir)| dir)
                .collect();
            if order == Order::Descending {
                dirs.reverse();
            }
            (symbol, dirs)
        })
        .collect())
}

/// Reads the bars of `query` in port order, handing `emit` batches of at
/// most `batch_rows` rows. When the view would mix (a multi-partition batch
/// committed and was compacted during the read) it starts over as long as
/// nothing was emitted; after that it returns `Err(Restart)` and the caller
/// decides (a query fails with `Unavailable`, a digest starts over).
fn scan(
    config: &EfsConfig,
    query: &BarQuery,
    mut emit: impl FnMut(RecordBatch) -> Result<bool>,
) -> Result<std::result::Result<(), Restart>> {
    let start = query.start.map(Timestamp::micros);
    let end = query.end.map(Timestamp::micros);
    let mut emitted = false;
    for _ in 0..8 {
        let mut resolver = Resolver::new(&config.root);
        match scan_once(config, query, start, end, &mut resolver, &mut emit, &mut emitted)? {
            Ok(()) => return Ok(Ok(())),
            Err(Restart) if !emitted => continue,
            Err(Restart) => return Ok(Err(Restart)),
        }
    }
    Ok(Err(Restart))
}

/// The error of a read whose view kept mixing.
fn changed_under_us(what: &str) -> StoreError {
    StoreError::unavailable(
        BACKEND,
        format!("a multi-partition batch committed and was compacted during this {what}; run it again"),
        None,
    )
}

fn scan_once(
    config: &EfsConfig,
    query: &BarQuery,
    start: Option<i64>,
    end: Option<i64>,
    resolver: &mut Resolver,
    emit: &mut impl FnMut(RecordBatch) -> Result<bool>,
    emitted: &mut bool,
) -> Result<std::result::Result<(), Restart>> {
    let limit = query.limit.unwrap_or(usize::MAX);
    let batch_rows = config.query_batch_rows.max(1);
    for (_symbol, dirs) in planned_partitions(&config.root, &query.symbols, start, end, query.order)? {
        let mut returned = 0usize;
        for dir in dirs {
            if returned >= limit {
                break;
            }
            let rows = match dataset::read_partition(&dir, resolver, start, end)? {
                Ok(Some(rows)) => rows,
                Ok(None) => continue,
                Err(restart) => return Ok(Err(restart)),
            };
            let rows = if query.order == Order::Descending {
                let reversed: UInt32Array = (0..rows.num_rows() as u32).rev().collect();
                take_record_batch(&rows, &reversed).map_err(|e| arrow_error("reversing", e))?
            } else {
                rows
            };
            let wanted = rows.num_rows().min(limit - returned);
            returned += wanted;
            let mut offset = 0;
            while offset < wanted {
                let length = batch_rows.min(wanted - offset);
                *emitted = true;
                if !emit(rows.slice(offset, length))? {
                    return Ok(Ok(()));
                }
                offset += length;
            }
        }
    }
    Ok(Ok(()))
}

#[async_trait::async_trait]
impl MarketDataStore for EfsStore {
    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn write_bars(&self, batch: BarBatch) -> Result<WriteReport> {
        batch.validate()?;
        let rows = batch.len() as u64;
        if rows == 0 {
            return Ok(WriteReport::committed(0));
        }
        let config = self.config.clone();
        blocking(move || {
            let touched = dataset::write_batch(&config, &batch)?;
            // The batch is committed; compaction is housekeeping whose failure the write does not report.
            for dir in touched {
                match dataset::partition_facts(&config, &dir) {
                    Ok((files, _, _)) if files > config.compact_after_files => {
                        if let Err(error) = dataset::rewrite(&config, &dir, Rewrite::Compact) {
                            tracing::warn!(partition = %dir.display(), "compaction after a write failed: {error}");
                        }
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(partition = %dir.display(), "cannot inspect after a write: {error}"),
                }
            }
            Ok(WriteReport::committed(rows))
        })
        .await
    }

    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>> {
        if query.is_trivially_empty() {
            return Box::pin(futures::stream::empty());
        }
        let config = self.config.clone();
        strata_store_kit::lazy_blocking_producer(strata_store_kit::DEFAULT_DEPTH, BACKEND, move |sender| {
            let outcome = scan(&config, &query, |rows| {
                let batch = BarBatch::try_new(rows)?;
                Ok(sender.blocking_send(Ok(batch)).is_ok())
            })?;
            outcome.map_err(|Restart| changed_under_us("query"))
        })
    }

    async fn summary(&self) -> Result<MarketSummary> {
        let config = self.config.clone();
        blocking(move || {
            for _ in 0..8 {
                let mut resolver = Resolver::new(&config.root);
                let mut symbols = Vec::new();
                let mut restarted = false;
                'symbols: for (symbol, years) in dataset::partitions(&config.root)? {
                    let mut entry: Option<SymbolSummary> = None;
                    for (_, dir) in years {
                        let Ok(found) = dataset::partition_summary(&dir, &mut resolver)? else {
                            restarted = true;
                            break 'symbols;
                        };
                        let Some((rows, first, last)) = found else { continue };
                        let summary = entry.get_or_insert(SymbolSummary {
                            symbol: symbol.clone(),
                            first: Timestamp(first),
                            last: Timestamp(last),
                            rows: 0,
                        });
                        summary.rows += rows;
                        summary.first = summary.first.min(Timestamp(first));
                        summary.last = summary.last.max(Timestamp(last));
                    }
                    symbols.extend(entry);
                }
                if !restarted {
                    return Ok(MarketSummary { symbols });
                }
            }
            Err(StoreError::unavailable(BACKEND, "the dataset kept changing during the summary; retry", None))
        })
        .await
    }

    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>> {
        let bars = BarQuery { symbols: query.symbols, start: query.start, end: query.end, ..BarQuery::default() };
        if bars.is_trivially_empty() {
            return Ok(Vec::new());
        }
        let config = self.config.clone();
        blocking(move || {
            // A restart starts the accumulator over too.
            for _ in 0..8 {
                let mut accumulator = DigestAccumulator::new();
                let outcome = scan(&config, &bars, |rows| {
                    accumulator.add_batch(&BarBatch::try_new(rows)?);
                    Ok(true)
                })?;
                if outcome.is_ok() {
                    return Ok(accumulator.finish());
                }
            }
            Err(changed_under_us("digest"))
        })
        .await
    }

    async fn delete_bars(&self, symbol: &Symbol, range: TimeRange) -> Result<u64> {
        if range.start >= range.end {
            return Ok(0);
        }
        let config = self.config.clone();
        let symbol = symbol.clone();
        blocking(move || {
            let (start, end) = (range.start.micros(), range.end.micros());
            let dir = layout::symbol_dir(&config.root, symbol.as_str());
            let mut removed = 0;
            for (year, partition) in dataset::list_years(&dir)? {
                let (first, next) = layout::year_bounds(year);
                if next > start && first < end {
                    removed += dataset::rewrite(&config, &partition, Rewrite::Delete { start, end })?;
                }
            }
            Ok(removed)
        })
        .await
    }

    async fn health(&self) -> Result<HealthReport> {
        let config = self.config.clone();
        blocking(move || health(&config)).await
    }
}

/// A real round trip (create, write, fsync, remove a probe in
/// `_strata/staging/`, then list every partition) and the dataset's shape.
fn health(config: &EfsConfig) -> Result<HealthReport> {
    let root = &config.root;
    let staging = layout::staging_dir(root);
    let probe = publish::write_staged(&staging, "probe", |mut out, path| {
        out.write_all(b"probe\n").map_err(|error| io_error("writing", path, error))?;
        Ok(out)
    })?;
    publish::remove_if_present(&probe)?;
    publish::fsync_dir(&staging)?;
    let (mut partitions, mut files, mut bytes, mut widest, mut stale, mut needing) =
        (0usize, 0usize, 0u64, 0usize, 0usize, 0usize);
    let mut symbols = 0usize;
    for years in dataset::partitions(root)?.into_values() {
        symbols += 1;
        for (_, dir) in years {
            let (count, size, leftovers) = dataset::partition_facts(config, &dir)?;
            partitions += 1;
            files += count;
            bytes += size;
            widest = widest.max(count);
            stale += leftovers;
            if count > config.compact_after_files {
                needing += 1;
            }
        }
    }
    stale += dataset::partition_facts(config, &staging)?.2;
    stale += dataset::partition_facts(config, &publish::batches_dir(root))?.2;
    let mut reasons = Vec::new();
    if needing > 0 {
        reasons.push(format!(
            "{needing} partition(s) hold more than {} files: run compaction",
            config.compact_after_files
        ));
    }
    if stale > 0 {
        reasons.push(format!(
            "{stale} staging file(s) older than {:?} left by crashed writers: compaction removes them",
            config.stale_after
        ));
    }
    let status = if reasons.is_empty() { HealthStatus::Healthy } else { HealthStatus::Degraded };
    let mut report = HealthReport::new(BACKEND, status)
        .with_detail("root", root.display().to_string())
        .with_detail("symbols", symbols.to_string())
        .with_detail("partitions", partitions.to_string())
        .with_detail("files", files.to_string())
        .with_detail("bytes", bytes.to_string())
        .with_detail("max_files_per_partition", widest.to_string())
        .with_detail("stale_staging_files", stale.to_string())
        .with_detail("layout", "bars/symbol=<percent-encoded>/year=<YYYY>/part-<position>.parquet");
    for reason in reasons {
        report = report.with_detail("degraded", reason);
    }
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use strata_core::{Bar, MarketDataStoreExt as _};

    use super::*;
    use crate::dataset::FileFacts;

    fn bar(symbol: &str, day: &str, close: f64) -> Bar {
        Bar {
            symbol: symbol.into(),
            timestamp: Timestamp::parse(day).unwrap(),
            open: 10.0,
            high: 20.0,
            low: 5.0,
            close,
            volume: 1.0,
            vwap: None,
            trade_count: None,
        }
    }

    async fn store(root: &Path, compact_after_files: usize) -> EfsStore {
        EfsStore::open(EfsConfig::new(root).with_compact_after_files(compact_after_files)).await.unwrap()
    }

    fn data_files(dir: &Path) -> usize {
        fs::read_dir(dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with("part-")).count()
    }

    #[tokio::test]
    async fn a_missing_root_is_unavailable_and_says_so() {
        let directory = tempfile::tempdir().unwrap();
        let error = EfsStore::open(EfsConfig::new(directory.path().join("not-mounted"))).await.unwrap_err();
        assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
        assert!(error.to_string().contains("not-mounted") && error.to_string().contains("mounted"), "{error}");
    }

    #[tokio::test]
    async fn many_files_degrade_health_until_compaction_merges_them() {
        let directory = tempfile::tempdir().unwrap();
        let writer = store(directory.path(), 100).await;
        for (day, close) in [("2024-01-02", 11.0), ("2024-01-03", 12.0), ("2024-01-02", 13.0)] {
            writer.write_bars(BarBatch::from_bars(&[bar("^GSPC", day, close)])).await.unwrap();
        }
        let partition = layout::partition_dir(directory.path(), "^GSPC", 2024);
        assert_eq!(data_files(&partition), 3);
        let strict = store(directory.path(), 2).await;
        let health = strict.health().await.unwrap();
        assert_eq!(health.status, HealthStatus::Degraded, "{health:?}");
        let before = strict.collect_bars(BarQuery::default()).await.unwrap();
        assert_eq!(before.iter().map(|b| b.close).collect::<Vec<_>>(), [13.0, 12.0], "the last write wins");
        strict.compact(&Symbol::new("^GSPC").unwrap(), 2024).await.unwrap();
        assert_eq!(data_files(&partition), 1, "compaction leaves one file");
        assert_eq!(strict.collect_bars(BarQuery::default()).await.unwrap(), before, "and the same rows");
        assert!(strict.health().await.unwrap().ok());
    }

    #[tokio::test]
    async fn an_uncommitted_multi_partition_batch_is_invisible_until_a_delete_aborts_it() {
        let directory = tempfile::tempdir().unwrap();
        let store = store(directory.path(), 100).await;
        store.write_bars(BarBatch::from_bars(&[bar("A", "2024-01-02", 11.0)])).await.unwrap();
        // Half of a two-partition batch whose writer died before its marker.
        let partition = layout::partition_dir(directory.path(), "A", 2024);
        let pending = BarBatch::from_bars(&[bar("A", "2024-01-02", 99.0), bar("A", "2024-01-05", 99.0)]);
        let facts = FileFacts { batch: "deadbeef", batch_files: 2, covers_through: None, absorbed: &[] };
        dataset::publish_data_file(store.config(), &partition, pending.record_batch(), &facts).unwrap();
        let seen = store.collect_bars(BarQuery::default()).await.unwrap();
        assert_eq!(seen, vec![bar("A", "2024-01-02", 11.0)], "Strata ignores files of an uncommitted batch");
        // A young pending batch blocks compaction past it but is left alone.
        store.compact(&Symbol::new("A").unwrap(), 2024).await.unwrap();
        assert_eq!(publish::read_marker(directory.path(), "deadbeef").unwrap(), publish::BatchState::Pending);
        // A delete aborts it so that it cannot commit later under the deleted range.
        let all = TimeRange::all();
        assert_eq!(store.delete_bars(&Symbol::new("A").unwrap(), all).await.unwrap(), 1);
        assert_eq!(publish::read_marker(directory.path(), "deadbeef").unwrap(), publish::BatchState::Aborted);
        assert!(store.collect_bars(BarQuery::default()).await.unwrap().is_empty());
        assert_eq!(data_files(&partition), 1, "one empty file records the delete");
        let summary = store.summary().await.unwrap();
        assert!(summary.symbols.is_empty(), "{summary:?}");
    }

    /// A data file of the previous layout: the canonical schema (with the
    /// symbol column) straight under `root/symbol=.../year=...`.
    fn write_previous_layout_file(root: &Path, bars: &[Bar], position: u64) -> PathBuf {
        let dir = root.join(format!("symbol={}", layout::encode_symbol(&bars[0].symbol))).join("year=2024");
        fs::create_dir_all(&dir).unwrap();
        let metadata = vec![
            parquet::file::metadata::KeyValue::new("strata.batch".to_string(), format!("old{position}")),
            parquet::file::metadata::KeyValue::new("strata.batch_files".to_string(), "1".to_string()),
        ];
        let properties = strata_formats::write::parquet_properties().set_key_value_metadata(Some(metadata)).build();
        let path = dir.join(layout::data_file_name(position));
        let file = fs::File::create(&path).unwrap();
        let mut writer = strata_formats::write::ParquetWriter::with_properties(file, properties).unwrap();
        writer.write(&BarBatch::from_bars(bars)).unwrap();
        writer.finish().unwrap();
        path
    }

    #[tokio::test]
    async fn a_root_in_the_previous_layout_is_refused_and_reads_once_moved() {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path();
        let old = [bar("^GSPC", "2024-01-02", 11.0), bar("^GSPC", "2024-01-03", 12.0)];
        let path = write_previous_layout_file(root, &old, 1);
        fs::write(path.with_file_name(".strata-stage-data-dead.tmp"), b"torn").unwrap();
        fs::create_dir_all(root.join("_strata/batches")).unwrap();
        let error = EfsStore::open(EfsConfig::new(root)).await.unwrap_err();
        assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
        let text = error.to_string();
        assert!(text.contains("previous layout") && text.contains("/bars"), "{text}");
        assert!(text.contains(&format!("mv '{}'/symbol=* '{}/bars/'", root.display(), root.display())), "{text}");
        assert!(!root.join("bars").exists(), "a refused open creates nothing");

        // The move the message gives.
        fs::create_dir(root.join("bars")).unwrap();
        fs::rename(root.join("symbol=%5EGSPC"), root.join("bars/symbol=%5EGSPC")).unwrap();
        let store = EfsStore::open(EfsConfig::new(root).with_stale_after(std::time::Duration::ZERO)).await.unwrap();
        assert_eq!(store.collect_bars(BarQuery::default()).await.unwrap(), old.to_vec(), "old files read as they are");
        // An upsert lands in a file without the symbol column; both merge.
        store.write_bars(BarBatch::from_bars(&[bar("^GSPC", "2024-01-03", 13.0)])).await.unwrap();
        let expected = vec![old[0].clone(), bar("^GSPC", "2024-01-03", 13.0)];
        assert_eq!(store.collect_bars(BarQuery::default()).await.unwrap(), expected);
        let summary = store.summary().await.unwrap();
        assert_eq!((summary.symbols[0].symbol.as_str(), summary.symbols[0].rows), ("^GSPC", 2));
        store.compact_all().await.unwrap();
        let partition = layout::partition_dir(root, "^GSPC", 2024);
        let names: Vec<String> =
            fs::read_dir(&partition).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 1, "one compacted file, the old staging file removed: {names:?}");
        assert_eq!(store.collect_bars(BarQuery::default()).await.unwrap(), expected);
    }

    #[tokio::test]
    async fn crash_leftovers_in_the_staging_directory_break_nothing() {
        let directory = tempfile::tempdir().unwrap();
        let store =
            EfsStore::open(EfsConfig::new(directory.path()).with_stale_after(std::time::Duration::ZERO)).await.unwrap();
        let staging = layout::staging_dir(directory.path());
        fs::write(staging.join(layout::staging_name("data")), b"PAR1 torn").unwrap();
        fs::write(staging.join(layout::staging_name("marker")), b"commi").unwrap();
        let bars = [bar("A", "2024-01-02", 11.0), bar("B", "2023-01-02", 12.0)];
        store.write_bars(BarBatch::from_bars(&bars)).await.unwrap();
        assert_eq!(store.collect_bars(BarQuery::default()).await.unwrap(), bars.to_vec());
        let health = store.health().await.unwrap();
        assert_eq!(health.status, HealthStatus::Degraded, "stale leftovers are reported: {health:?}");
        store.compact_all().await.unwrap();
        assert_eq!(fs::read_dir(&staging).unwrap().count(), 0, "compaction removes them");
        assert!(store.health().await.unwrap().ok());
        // Nothing but partition directories and data files under bars/.
        let mut pending = vec![layout::data_root(directory.path())];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(dir).unwrap().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.path().is_dir() {
                    assert!(name.contains('='), "{name}");
                    pending.push(entry.path());
                } else {
                    assert!(layout::parse_data_file_name(&name).is_some(), "{name}");
                }
            }
        }
    }

    #[tokio::test]
    async fn a_batch_spanning_years_commits_with_a_marker_and_reads_in_order() {
        let directory = tempfile::tempdir().unwrap();
        let store = store(directory.path(), 100).await;
        let bars = [bar("B", "2023-12-29", 11.0), bar("B", "2024-01-02", 12.0), bar("7203", "2024-01-02", 13.0)];
        store.write_bars(BarBatch::from_bars(&bars)).await.unwrap();
        let markers = fs::read_dir(publish::batches_dir(directory.path())).unwrap().count();
        assert_eq!(markers, 1, "three partitions, one commit marker");
        let read = store.collect_bars(BarQuery::default()).await.unwrap();
        assert_eq!(read, vec![bars[2].clone(), bars[0].clone(), bars[1].clone()], "symbols in byte order, then time");
        let latest = store.collect_bars(BarQuery::latest(Symbol::new("B").unwrap(), 1)).await.unwrap();
        assert_eq!(latest, vec![bars[1].clone()], "descending across year partitions");
        assert!(directory.path().join("bars/symbol=7203/year=2024").is_dir());
        let files = dataset::partitions(directory.path()).unwrap();
        assert_eq!(files.keys().collect::<Vec<_>>(), ["7203", "B"]);
    }
}
