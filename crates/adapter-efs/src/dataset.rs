//! The dataset engine (blocking): partition snapshots, the visibility rule,
//! merging files by key, writing a batch, compaction and deletion.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use arrow::array::{AsArray, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{filter_record_batch, interleave_record_batch, sort_to_indices, take_record_batch};
use arrow::datatypes::TimestampMicrosecondType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::EnabledStatistics;
use parquet::file::statistics::Statistics;
use strata_core::{BarBatch, Result, StoreError, bar_schema};
use strata_formats::read::hive;

use crate::BACKEND;
use crate::config::EfsConfig;
use crate::error::{arrow_error, corrupt, format_error, io_error, parquet_error};
use crate::layout::{self, data_file_name, parse_data_file_name};
use crate::publish::{self, BatchState, Published};

/// Key-value metadata keys Strata writes into each data file's footer.
const KEY_BATCH: &str = "strata.batch";
const KEY_BATCH_FILES: &str = "strata.batch_files";
const KEY_COVERS: &str = "strata.covers_through";
const KEY_ABSORBED: &str = "strata.absorbed";

/// How often a reader or compactor starts a partition over when files vanish
/// under it (a concurrent compaction removed them) before giving up.
const SNAPSHOT_ATTEMPTS: usize = 16;

/// One published data file, opened (the handle keeps it readable even if a
/// compactor unlinks it meanwhile) with its footer read.
pub(crate) struct DataFile {
    pub(crate) path: PathBuf,
    pub(crate) position: u64,
    pub(crate) batch: String,
    pub(crate) batch_files: u32,
    pub(crate) covers_through: Option<u64>,
    pub(crate) absorbed: Vec<String>,
    pub(crate) metadata: ArrowReaderMetadata,
    /// The leaf column index of `timestamp` (0 in files of this layout, 1
    /// in files of the previous one, which also hold a symbol column).
    timestamp_column: Option<usize>,
    pub(crate) file: File,
    pub(crate) modified: SystemTime,
}

impl DataFile {
    /// The order of this file's rows against other files: a compaction's rows
    /// rank as the newest file it covers, anything else by its position.
    fn effective_order(&self) -> (u64, u64) {
        (self.covers_through.unwrap_or(self.position), self.position)
    }

    fn rows(&self) -> u64 {
        self.metadata.metadata().file_metadata().num_rows().max(0) as u64
    }

    /// `(min, max)` timestamp of each row group (from the statistics).
    fn row_group_ranges(&self) -> Vec<Option<(i64, i64)>> {
        let timestamp = self.metadata.metadata().row_groups().iter().map(|group| {
            let column = group.columns().get(self.timestamp_column?)?;
            match column.statistics()? {
                Statistics::Int64(values) => Some((*values.min_opt()?, *values.max_opt()?)),
                _ => None,
            }
        });
        timestamp.collect()
    }
}

/// A listing of one partition directory.
pub(crate) struct Snapshot {
    /// The partition's symbol (from its path: files hold no symbol column).
    pub(crate) symbol: String,
    /// Data files by ascending position.
    pub(crate) files: Vec<DataFile>,
    /// Staging names with their modification time: only in a partition
    /// directory moved over from the previous layout, which staged in place.
    pub(crate) staging: Vec<(PathBuf, SystemTime)>,
}

/// Lists and opens a partition; `Ok(None)` when a listed file vanished
/// before it could be opened (take a new snapshot).
pub(crate) fn snapshot(dir: &Path) -> Result<Option<Snapshot>> {
    let symbol = partition_symbol(dir)?;
    // `readdir` racing a link and an unlink may return neither name (POSIX
    // leaves names added or removed during the listing unspecified): a
    // compaction's new file and the old files it replaced could both be
    // missed. Two equal listings in a row mean no name changed during the second.
    let mut previous = list_names(dir)?;
    for _ in 0..SNAPSHOT_ATTEMPTS {
        let current = list_names(dir)?;
        if current == previous {
            break;
        }
        previous = current;
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Ok(Some(Snapshot { symbol, files: Vec::new(), staging: Vec::new() }));
        }
        Err(error) => return Err(io_error("listing", dir, error)),
    };
    let mut positions = Vec::new();
    let mut staging = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| io_error("listing", dir, error))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if parse_data_file_name(name).is_some() {
            // Positions come from the stable listing below.
        } else if layout::is_staging_name(name) {
            let modified = entry.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
            staging.push((entry.path(), modified));
        }
    }
    positions.extend(previous.iter().filter_map(|name| parse_data_file_name(name)));
    positions.sort_unstable();
    let mut files = Vec::with_capacity(positions.len());
    for position in positions {
        match open_data_file(&dir.join(data_file_name(position)), position)? {
            Some(file) => files.push(file),
            None => return Ok(None),
        }
    }
    Ok(Some(Snapshot { symbol, files, staging }))
}

/// The symbol of a partition directory, from its `symbol=` component
/// (`strata_formats::read::hive`, the mechanism every Hive reader of Strata uses).
fn partition_symbol(dir: &Path) -> Result<String> {
    match hive::symbol_from_path(dir) {
        Some(Ok(symbol)) => Ok(symbol.to_string()),
        Some(Err(message)) => Err(corrupt(dir, message)),
        None => Err(corrupt(dir, "not inside a symbol=... directory")),
    }
}

/// The sorted names in `dir` (empty when it does not exist).
fn list_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error("listing", dir, error)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| io_error("listing", dir, error))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// Opens a data file and reads its footer; `None` when it is gone.
fn open_data_file(path: &Path, position: u64) -> Result<Option<DataFile>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error("opening", path, error)),
    };
    let stat = file.metadata().map_err(|error| io_error("inspecting", path, error))?;
    let metadata = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
        .map_err(|error| parquet_error("reading the footer of", path, error))?;
    let mut values: HashMap<&str, &str> = HashMap::new();
    if let Some(pairs) = metadata.metadata().file_metadata().key_value_metadata() {
        for pair in pairs {
            if let Some(value) = &pair.value {
                values.insert(pair.key.as_str(), value.as_str());
            }
        }
    }
    let batch =
        values.get(KEY_BATCH).map(|b| b.to_string()).ok_or_else(|| corrupt(path, "no strata.batch in the footer"))?;
    let batch_files = values.get(KEY_BATCH_FILES).and_then(|n| n.parse().ok()).unwrap_or(1);
    let covers_through = values.get(KEY_COVERS).and_then(|n| n.parse().ok());
    let timestamp_column =
        metadata.metadata().file_metadata().schema_descr().columns().iter().position(|c| c.name() == "timestamp");
    let absorbed = values
        .get(KEY_ABSORBED)
        .map(|list| list.split(',').filter(|b| !b.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    Ok(Some(DataFile {
        path: path.to_path_buf(),
        position,
        batch,
        batch_files,
        covers_through,
        absorbed,
        metadata,
        timestamp_column,
        file,
        modified: stat.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    }))
}

/// Signals that a query must start over (see [`Resolver::live`]).
pub(crate) struct Restart;

/// Decides which files count, remembering each multi-partition batch's fate
/// for the whole query so a batch is seen in all its partitions or in none.
pub(crate) struct Resolver {
    root: PathBuf,
    decided: HashMap<String, BatchState>,
}

impl Resolver {
    pub(crate) fn new(root: &Path) -> Self {
        Resolver { root: root.to_path_buf(), decided: HashMap::new() }
    }

    /// The state of `file`'s batch: a single-file batch commits by being published.
    pub(crate) fn state(&mut self, file: &DataFile) -> Result<BatchState> {
        if file.batch_files <= 1 {
            return Ok(BatchState::Committed);
        }
        if let Some(state) = self.decided.get(&file.batch) {
            return Ok(*state);
        }
        let state = publish::read_marker(&self.root, &file.batch)?;
        self.decided.insert(file.batch.clone(), state);
        Ok(state)
    }

    /// The files of `snapshot` a reader uses, oldest effective order first:
    /// committed files not covered by a committed compaction. `Err(Restart)`
    /// when a compaction absorbed a batch this query already treated as
    /// pending (the batch committed meanwhile): the query's view would mix.
    pub(crate) fn live<'a>(
        &mut self,
        snapshot: &'a Snapshot,
    ) -> Result<std::result::Result<Vec<&'a DataFile>, Restart>> {
        let mut committed = Vec::new();
        for file in &snapshot.files {
            if self.state(file)? == BatchState::Committed {
                committed.push(file);
            }
        }
        let covered = committed.iter().filter_map(|file| file.covers_through).max();
        let mut live: Vec<&DataFile> =
            committed.into_iter().filter(|file| covered.is_none_or(|covered| file.position > covered)).collect();
        for file in &live {
            for batch in &file.absorbed {
                let before = self.decided.insert(batch.clone(), BatchState::Committed);
                if matches!(before, Some(BatchState::Pending | BatchState::Aborted)) {
                    return Ok(Err(Restart));
                }
            }
        }
        live.sort_by_key(|file| file.effective_order());
        Ok(Ok(live))
    }
}

/// The rows of `files` (oldest effective order first) with timestamps in
/// `[start, end)`, one row per timestamp (the newest file's), ascending, in
/// the canonical schema with `symbol` (the partition's) on every row. A
/// symbol column in a file (the previous layout's) is not read.
pub(crate) fn merge(
    files: &[&DataFile],
    symbol: &str,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<Option<RecordBatch>> {
    let mut batches: Vec<(usize, RecordBatch)> = Vec::new();
    for (rank, file) in files.iter().enumerate() {
        let groups: Vec<usize> = file
            .row_group_ranges()
            .into_iter()
            .enumerate()
            .filter(|(_, range)| {
                range.is_none_or(|(min, max)| start.is_none_or(|s| max >= s) && end.is_none_or(|e| min < e))
            })
            .map(|(index, _)| index)
            .collect();
        if groups.is_empty() {
            continue;
        }
        let handle = file.file.try_clone().map_err(|error| io_error("opening", &file.path, error))?;
        let roots: Vec<usize> = (file.metadata.schema().fields().iter().enumerate())
            .filter(|(_, field)| field.name() != hive::SYMBOL_KEY)
            .map(|(index, _)| index)
            .collect();
        let projection = ProjectionMask::roots(file.metadata.parquet_schema(), roots);
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(handle, file.metadata.clone())
            .with_projection(projection)
            .with_row_groups(groups)
            .with_batch_size(1 << 16)
            .build()
            .map_err(|error| parquet_error("reading", &file.path, error))?;
        for batch in reader {
            let batch = batch.map_err(|error| corrupt(&file.path, format!("reading: {error}")))?;
            let batch = hive::with_path_symbol(&batch, symbol).map_err(|error| corrupt(&file.path, error))?;
            let batch = restrict(batch, start, end)?;
            if batch.num_rows() > 0 {
                batches.push((rank, batch));
            }
        }
    }
    if batches.is_empty() {
        return Ok(None);
    }
    let single_file = batches.iter().all(|(rank, _)| *rank == batches[0].0);
    let schema = batches[0].1.schema();
    if single_file {
        let parts: Vec<RecordBatch> = batches.into_iter().map(|(_, batch)| batch).collect();
        return arrow::compute::concat_batches(&schema, &parts).map(Some).map_err(|e| arrow_error("concatenating", e));
    }
    // (timestamp, newer-first rank, batch, row): sorted, the first row of each timestamp wins.
    let mut keys: Vec<(i64, std::cmp::Reverse<usize>, usize, usize)> = Vec::new();
    for (index, (rank, batch)) in batches.iter().enumerate() {
        let timestamps = timestamps(batch);
        keys.extend(
            timestamps.values().iter().enumerate().map(|(row, ts)| (*ts, std::cmp::Reverse(*rank), index, row)),
        );
    }
    keys.sort_unstable();
    keys.dedup_by_key(|key| key.0);
    let indices: Vec<(usize, usize)> = keys.iter().map(|key| (key.2, key.3)).collect();
    let parts: Vec<&RecordBatch> = batches.iter().map(|(_, batch)| batch).collect();
    interleave_record_batch(&parts, &indices).map(Some).map_err(|e| arrow_error("merging files", e))
}

/// The timestamp column of a batch in the canonical schema.
fn timestamps(batch: &RecordBatch) -> &arrow::array::PrimitiveArray<TimestampMicrosecondType> {
    batch.column(1).as_primitive::<TimestampMicrosecondType>()
}

/// Keeps the rows of `batch` within `[start, end)`.
fn restrict(batch: RecordBatch, start: Option<i64>, end: Option<i64>) -> Result<RecordBatch> {
    if start.is_none() && end.is_none() {
        return Ok(batch);
    }
    let values = timestamps(&batch).values();
    let inside = |ts: i64| start.is_none_or(|s| ts >= s) && end.is_none_or(|e| ts < e);
    if values.iter().all(|ts| inside(*ts)) {
        return Ok(batch);
    }
    let mask: BooleanArray = values.iter().map(|ts| Some(inside(*ts))).collect();
    filter_record_batch(&batch, &mask).map_err(|e| arrow_error("filtering", e))
}

/// Reads a partition as a reader does, taking new snapshots while files
/// vanish under it. `Err(Restart)` as [`Resolver::live`].
pub(crate) fn read_partition(
    dir: &Path,
    resolver: &mut Resolver,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<std::result::Result<Option<RecordBatch>, Restart>> {
    for _ in 0..SNAPSHOT_ATTEMPTS {
        let Some(snapshot) = snapshot(dir)? else { continue };
        let live = match resolver.live(&snapshot)? {
            Ok(live) => live,
            Err(restart) => return Ok(Err(restart)),
        };
        return merge(&live, &snapshot.symbol, start, end).map(Ok);
    }
    Err(StoreError::unavailable(BACKEND, format!("{}: files kept vanishing while reading; retry", dir.display()), None))
}

/// The partitions of the dataset: symbol -> years (ascending), symbols in byte order.
pub(crate) fn partitions(root: &Path) -> Result<BTreeMap<String, Vec<(i32, PathBuf)>>> {
    let mut out = BTreeMap::new();
    let data = layout::data_root(root);
    let entries = match fs::read_dir(&data) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(error) => return Err(io_error("listing the dataset", &data, error)),
    };
    for entry in entries {
        let entry = entry.map_err(|error| io_error("listing", &data, error))?;
        let name = entry.file_name();
        let Some(symbol) = name.to_str().and_then(|n| n.strip_prefix("symbol=")).and_then(layout::decode_symbol) else {
            continue;
        };
        let years = list_years(&entry.path())?;
        if !years.is_empty() {
            out.insert(symbol, years);
        }
    }
    Ok(out)
}

/// The year partitions under one symbol directory, ascending.
pub(crate) fn list_years(symbol_dir: &Path) -> Result<Vec<(i32, PathBuf)>> {
    let entries = match fs::read_dir(symbol_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error("listing", symbol_dir, error)),
    };
    let mut years = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| io_error("listing", symbol_dir, error))?;
        let name = entry.file_name();
        if let Some(year) = name.to_str().and_then(|n| n.strip_prefix("year=")).and_then(|y| y.parse().ok()) {
            years.push((year, entry.path()));
        }
    }
    years.sort();
    Ok(years)
}

/// What to put in a data file's footer besides the rows.
pub(crate) struct FileFacts<'a> {
    pub(crate) batch: &'a str,
    pub(crate) batch_files: usize,
    pub(crate) covers_through: Option<u64>,
    pub(crate) absorbed: &'a [String],
}

/// Writes `rows` as a staged Parquet file in `dir` and publishes it under
/// the next free position; returns the position.
pub(crate) fn publish_data_file(
    config: &EfsConfig,
    dir: &Path,
    rows: &RecordBatch,
    facts: &FileFacts<'_>,
) -> Result<u64> {
    publish::ensure_dir(&config.root, dir)?;
    let staging = layout::staging_dir(&config.root);
    publish::ensure_dir(&config.root, &staging)?;
    let mut metadata = vec![
        KeyValue::new(KEY_BATCH.to_string(), facts.batch.to_string()),
        KeyValue::new(KEY_BATCH_FILES.to_string(), facts.batch_files.to_string()),
    ];
    if let Some(covers) = facts.covers_through {
        metadata.push(KeyValue::new(KEY_COVERS.to_string(), covers.to_string()));
        metadata.push(KeyValue::new(KEY_ABSORBED.to_string(), facts.absorbed.join(",")));
    }
    let properties = strata_formats::write::parquet_properties()
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(config.row_group_rows.max(1)))
        .set_key_value_metadata(Some(metadata))
        .build();
    let bars = BarBatch::try_new(rows.clone())?;
    let staged = publish::write_staged(&staging, "data", |out, path| {
        let mut writer =
            strata_formats::write::ParquetWriter::without_symbol(out, properties).map_err(|e| format_error(path, e))?;
        writer.write(&bars).map_err(|e| format_error(path, e))?;
        writer.finish().map_err(|e| format_error(path, e))
    })?;
    let claimed = claim_position(dir, &staged);
    let removed = publish::remove_if_present(&staged);
    let position = claimed?;
    removed?;
    Ok(position)
}

/// Publishes `staged` as `part-<p>.parquet` for the smallest free `p` above
/// every listed position, then checks that no compaction already covers `p`
/// (a writer whose listing was stale could take a position a compaction
/// freed; positions are otherwise claimed without gaps, so a free position
/// below the maximum was freed by a compaction that is still listed).
fn claim_position(dir: &Path, staged: &Path) -> Result<u64> {
    for _ in 0..64 {
        let listed = list_positions(dir)?;
        let mut position = listed.last().copied().unwrap_or(0) + 1;
        let mut published = false;
        for _ in 0..256 {
            match publish::publish_no_replace(staged, &dir.join(data_file_name(position)))? {
                Published::Ours => {
                    published = true;
                    break;
                }
                Published::Taken => position += 1,
            }
        }
        if !published {
            continue;
        }
        publish::fsync_dir(dir)?;
        if covered_by_a_compaction(dir, position)? {
            let target = dir.join(data_file_name(position));
            if publish::same_file(staged, &target)? {
                publish::remove_if_present(&target)?;
            }
            continue;
        }
        return Ok(position);
    }
    Err(StoreError::unavailable(BACKEND, format!("{}: too many concurrent writers; retry", dir.display()), None))
}

/// The data file positions in `dir`, ascending.
fn list_positions(dir: &Path) -> Result<Vec<u64>> {
    let mut positions: Vec<u64> = fs::read_dir(dir)
        .map_err(|error| io_error("listing", dir, error))?
        .filter_map(|entry| entry.ok()?.file_name().to_str().and_then(parse_data_file_name))
        .collect();
    positions.sort_unstable();
    Ok(positions)
}

/// Whether a file above `position` is a compaction covering it.
/// A file that vanished while being checked was removed by a compaction
/// whose own file is then listed: the check starts over.
fn covered_by_a_compaction(dir: &Path, position: u64) -> Result<bool> {
    'listing: for _ in 0..SNAPSHOT_ATTEMPTS {
        for later in list_positions(dir)?.into_iter().filter(|p| *p > position) {
            match open_data_file(&dir.join(data_file_name(later)), later)? {
                Some(file) if file.covers_through.is_some_and(|covers| covers >= position) => return Ok(true),
                Some(_) => {}
                None => continue 'listing,
            }
        }
        return Ok(false);
    }
    Err(StoreError::unavailable(
        BACKEND,
        format!("{}: files kept vanishing while publishing; retry", dir.display()),
        None,
    ))
}

/// Writes a validated, non-empty batch: one file per (symbol, year), then,
/// for more than one file, the batch's commit marker. Returns the touched
/// partition directories.
pub(crate) fn write_batch(config: &EfsConfig, batch: &BarBatch) -> Result<Vec<PathBuf>> {
    let record = batch.record_batch();
    let columns = batch.columns();
    let mut groups: BTreeMap<(String, i32), Vec<u32>> = BTreeMap::new();
    for row in 0..batch.len() {
        let key = (columns.symbol.value(row).to_string(), layout::year_of(columns.timestamp.value(row)));
        groups.entry(key).or_default().push(row as u32);
    }
    let mut parts = Vec::with_capacity(groups.len());
    for ((symbol, year), rows) in groups {
        let part = take_record_batch(record, &UInt32Array::from(rows)).map_err(|e| arrow_error("splitting", e))?;
        let order = sort_to_indices(part.column(1), None, None).map_err(|e| arrow_error("sorting", e))?;
        let sorted = take_record_batch(&part, &order).map_err(|e| arrow_error("sorting", e))?;
        parts.push((layout::partition_dir(&config.root, &symbol, year), sorted));
    }
    for _attempt in 0..4 {
        let batch_id = layout::unique_id();
        let facts = FileFacts { batch: &batch_id, batch_files: parts.len(), covers_through: None, absorbed: &[] };
        for (dir, rows) in &parts {
            publish_data_file(config, dir, rows, &facts)?;
        }
        if parts.len() == 1
            || publish::decide_batch(&config.root, &batch_id, BatchState::Committed)? == BatchState::Committed
        {
            return Ok(parts.into_iter().map(|(dir, _)| dir).collect());
        }
        tracing::info!(batch = %batch_id, "a delete aborted this batch before it committed; writing it again");
    }
    Err(StoreError::unavailable(BACKEND, "concurrent deletes kept aborting this batch; retry", None))
}

/// What [`rewrite`] does with a partition.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rewrite {
    /// Merge the files of the resolved prefix into one when there is more
    /// than one (or garbage to remove); pending batches younger than
    /// `stale_after` end the prefix.
    Compact,
    /// Remove `[start, end)`; every pending batch is aborted (or found
    /// committed) first so the delete covers every committed row.
    Delete { start: i64, end: i64 },
}

/// Compacts or deletes within one partition; returns the rows removed.
pub(crate) fn rewrite(config: &EfsConfig, dir: &Path, action: Rewrite) -> Result<u64> {
    for _ in 0..SNAPSHOT_ATTEMPTS {
        let Some(snapshot) = snapshot(dir)? else { continue };
        remove_stale_staging(config, &snapshot.staging)?;
        let mut resolver = Resolver::new(&config.root);
        let now = SystemTime::now();
        let mut prefix_end = 0;
        for file in &snapshot.files {
            let mut state = resolver.state(file)?;
            if state == BatchState::Pending {
                let stale = now.duration_since(file.modified).is_ok_and(|age| age >= config.stale_after);
                if matches!(action, Rewrite::Delete { .. }) || stale {
                    state = publish::decide_batch(&config.root, &file.batch, BatchState::Aborted)?;
                    resolver.decided.insert(file.batch.clone(), state);
                }
            }
            if state == BatchState::Pending {
                break;
            }
            prefix_end += 1;
        }
        let Some(covers) = snapshot.files[..prefix_end].last().map(|file| file.position) else { return Ok(0) };
        // A compaction's rows rank at its `covers_through`, so a compaction
        // published after the first pending file can hold rows that rank at
        // or below `covers`: the new file must include it too, because it
        // will claim to hold every row ranking at or below `covers`.
        let mut files = snapshot.files;
        let beyond = files.split_off(prefix_end);
        let (extras, _rest): (Vec<DataFile>, Vec<DataFile>) =
            beyond.into_iter().partition(|file| file.covers_through.is_some_and(|through| through <= covers));
        files.extend(extras);
        let prefix = Snapshot { symbol: snapshot.symbol, files, staging: Vec::new() };
        let live = match resolver.live(&prefix)? {
            Ok(live) => live,
            Err(Restart) => continue,
        };
        let garbage = prefix.files.len() > live.len();
        let merged = merge(&live, &prefix.symbol, None, None)?;
        let (kept, removed) = match (action, merged) {
            (Rewrite::Delete { start, end }, Some(rows)) => {
                let before = rows.num_rows();
                let kept = restrict_out(rows, start, end)?;
                let removed = (before - kept.num_rows()) as u64;
                (Some(kept), removed)
            }
            (_, merged) => (merged, 0),
        };
        // Files this rewrite removes; compacting pays only when it removes
        // more files than the one it adds (or removes garbage).
        let removable = prefix.files.iter().filter(|file| file.position <= covers).count();
        let worth_it = match action {
            Rewrite::Compact => removable >= 2 || (removable == 1 && garbage),
            Rewrite::Delete { .. } => removed > 0 || garbage,
        };
        if !worth_it {
            return Ok(0);
        }
        let mut absorbed: Vec<String> = live
            .iter()
            .filter(|file| file.batch_files > 1)
            .map(|file| file.batch.clone())
            .chain(live.iter().flat_map(|file| file.absorbed.iter().cloned()))
            .collect();
        absorbed.sort();
        absorbed.dedup();
        let batch_id = layout::unique_id();
        let facts = FileFacts { batch: &batch_id, batch_files: 1, covers_through: Some(covers), absorbed: &absorbed };
        let rows = kept.unwrap_or_else(|| RecordBatch::new_empty(bar_schema()));
        publish_data_file(config, dir, &rows, &facts)?;
        // Everything at or below `covers` is now superseded: remove it. The
        // included compactions above the pending file stay (they rank below
        // the new file, so they change nothing): removing them would free
        // positions no compaction covers, which a writer with a stale
        // listing could then claim below newer files.
        for file in prefix.files.iter().filter(|file| file.position <= covers) {
            publish::remove_if_present(&file.path)?;
        }
        publish::fsync_dir(dir)?;
        return Ok(removed);
    }
    Err(StoreError::unavailable(
        BACKEND,
        format!("{}: files kept vanishing while rewriting; retry", dir.display()),
        None,
    ))
}

/// Keeps the rows of `batch` outside `[start, end)`.
fn restrict_out(batch: RecordBatch, start: i64, end: i64) -> Result<RecordBatch> {
    let mask: BooleanArray = timestamps(&batch).values().iter().map(|ts| Some(*ts < start || *ts >= end)).collect();
    filter_record_batch(&batch, &mask).map_err(|e| arrow_error("filtering", e))
}

/// Removes staging files older than `stale_after` (a crashed writer's).
pub(crate) fn remove_stale_staging(config: &EfsConfig, staging: &[(PathBuf, SystemTime)]) -> Result<()> {
    let now = SystemTime::now();
    for (path, modified) in staging {
        if now.duration_since(*modified).is_ok_and(|age| age >= config.stale_after) {
            publish::remove_if_present(path)?;
        }
    }
    Ok(())
}

/// Removes the stale staging files of one directory.
pub(crate) fn remove_stale_staging_in(config: &EfsConfig, dir: &Path) -> Result<()> {
    let now = SystemTime::now();
    for entry in fs::read_dir(dir).map_err(|error| io_error("listing", dir, error))? {
        let entry = entry.map_err(|error| io_error("listing", dir, error))?;
        let name = entry.file_name();
        if name.to_str().is_some_and(layout::is_staging_name) {
            let modified = entry.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
            if now.duration_since(modified).is_ok_and(|age| age >= config.stale_after) {
                publish::remove_if_present(&entry.path())?;
            }
        }
    }
    Ok(())
}

/// Row count, first and last timestamp of a partition.
pub(crate) type PartitionSummary = (u64, i64, i64);

/// Row count and first/last timestamp of a partition as a reader sees it.
pub(crate) fn partition_summary(
    dir: &Path,
    resolver: &mut Resolver,
) -> Result<std::result::Result<Option<PartitionSummary>, Restart>> {
    for _ in 0..SNAPSHOT_ATTEMPTS {
        let Some(snapshot) = snapshot(dir)? else { continue };
        let live = match resolver.live(&snapshot)? {
            Ok(live) => live,
            Err(restart) => return Ok(Err(restart)),
        };
        if let [only] = live.as_slice() {
            let ranges = only.row_group_ranges();
            if ranges.iter().all(Option::is_some) {
                let min = ranges.iter().flatten().map(|r| r.0).min();
                let max = ranges.iter().flatten().map(|r| r.1).max();
                return Ok(Ok(min.zip(max).map(|(min, max)| (only.rows(), min, max))));
            }
        }
        let merged = merge(&live, &snapshot.symbol, None, None)?;
        return Ok(Ok(merged.filter(|rows| rows.num_rows() > 0).map(|rows| {
            let values = timestamps(&rows).values();
            (rows.num_rows() as u64, values[0], values[values.len() - 1])
        })));
    }
    Err(StoreError::unavailable(BACKEND, format!("{}: files kept vanishing while reading; retry", dir.display()), None))
}

/// Facts about a partition for `health`: (data files, bytes, stale staging files).
pub(crate) fn partition_facts(config: &EfsConfig, dir: &Path) -> Result<(usize, u64, usize)> {
    let mut files = 0;
    let mut bytes = 0;
    let mut stale = 0;
    let now = SystemTime::now();
    for entry in fs::read_dir(dir).map_err(|error| io_error("listing", dir, error))? {
        let entry = entry.map_err(|error| io_error("listing", dir, error))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(metadata) = entry.metadata() else { continue };
        if parse_data_file_name(name).is_some() {
            files += 1;
            bytes += metadata.len();
        } else if layout::is_staging_name(name) {
            let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if now.duration_since(modified).is_ok_and(|age| age >= config.stale_after) {
                stale += 1;
            }
        }
    }
    Ok((files, bytes, stale))
}
