//! `strata-adapter-efs`: the [`MarketDataStore`](strata_core::MarketDataStore)
//! port over a Hive-partitioned Parquet dataset in one directory, usually an
//! AWS EFS or other NFS share mounted by every worker. Safe with many writer
//! processes on many hosts without a lock server; readable as is by pyarrow,
//! pandas, polars and DuckDB. It implements the market-data port only
//! (evolution state lives in DuckDB or PostgreSQL; the composition root pairs them).
//!
//! ```no_run
//! # async fn example() -> strata_core::Result<()> {
//! use strata_adapter_efs::{EfsConfig, EfsStore};
//! let store = EfsStore::open(EfsConfig::new("/mnt/efs/strata")).await?;
//! assert_eq!(store.to_string(), "efs");
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! ```text
//! ROOT/bars/symbol=<percent-encoded symbol>/year=<YYYY>/part-<20-digit position>.parquet
//! ROOT/_strata/staging/.strata-stage-<id>.tmp    a write in progress (or a crashed one)
//! ROOT/_strata/batches/<batch id>                "committed" / "aborted" (multi-partition batches)
//! ```
//!
//! - **`ROOT/bars` is a plain Hive dataset**: nothing but `symbol=` and
//!   `year=` directories and complete, published `.parquet` files. Files are
//!   written in `_strata/staging/` and published into their partition by a
//!   hard link (`link` within one filesystem is atomic, on NFS too), and
//!   Strata's bookkeeping stays in `_strata/`, so readers pointed at
//!   `ROOT/bars` never meet a foreign file.
//! - **Time partition: the UTC year.** Daily bars give ~252 rows per
//!   symbol-year (a month would give ~21-row files, a day one row); minute
//!   bars give ~98k (equities, 390 a day) to ~525k (crypto, 24/7) rows per
//!   symbol-year, i.e. a few MB to ~20 MB zstd: files neither tiny nor huge.
//!   On EFS the number of files, not bytes, is the cost (~10-20 ms per safe
//!   publish), so a coarse partition plus compaction wins. Queries prune
//!   years by path and row groups (131,072 rows each) by their timestamp
//!   statistics.
//! - **Files**: the canonical schema of [`strata_core::bar_schema`] *without
//!   the `symbol` column* (timestamps `timestamp[us, tz=UTC]`), written by
//!   [`strata_formats::write::ParquetWriter::without_symbol`]: zstd,
//!   page-level statistics (so the column and offset indexes are written),
//!   the Arrow schema in the footer. The symbol is only in the path, as
//!   pyarrow's `write_to_dataset` and pandas' `to_parquet(partition_cols=...)`
//!   write it; Strata's reader adds the column back from the path
//!   ([`strata_formats::read::hive`], the same code `strata ingest` uses for
//!   datasets written by pandas, pyarrow or polars). Each file holds one
//!   partition's rows sorted by timestamp, unique per timestamp. The footer's
//!   key-value metadata carries `strata.batch`, `strata.batch_files` and, for
//!   a compaction, `strata.covers_through` and `strata.absorbed`.
//! - **Symbols** are percent-encoded exactly as pyarrow (`uriparser`) and
//!   DuckDB (`HivePartitioning::Escape`, DuckDB >= 1.1) encode partition
//!   values: every byte outside `A-Z a-z 0-9 - . _ ~` becomes `%XX`
//!   (`^GSPC` -> `%5EGSPC`, `EURUSD=X` -> `EURUSD%3DX`, and `BTC/USD`, which
//!   core validation refuses today, would be `BTC%2FUSD`). pyarrow
//!   (`HivePartitioning(segment_encoding="uri")`, the default), DuckDB
//!   (URL-decoding since PR duckdb#12974) and polars decode the value back.
//! - **The previous layout** (partitions right under `ROOT`, files with a
//!   `symbol` column, staging files inside partitions) is refused at open
//!   with the commands that move it: `mkdir ROOT/bars && mv ROOT/symbol=*
//!   ROOT/bars/`. Moved files are read as they are (their symbol column is
//!   not read: the path decides), and compaction rewrites them in this
//!   layout and removes their stale staging files.
//!
//! # Reading the dataset from Python
//!
//! What a user passes, checked by `tests/readers.rs` with the versions
//! `.ci/requirements-readers.txt` pins (pyarrow 26.0.1, pandas 3.1.1, polars
//! 2.1.0, duckdb 2.0.1): each gives back Strata's rows with the symbols
//! unchanged (`BRK.B`, `^GSPC`, `EURUSD=X`, `7203`, `0050`), `timestamp` as
//! microseconds in UTC and every float bit for bit. Point them at `ROOT/bars`:
//!
//! ```python
//! import duckdb, pandas as pd, polars as pl, pyarrow.dataset as ds
//! bars = root + "/bars"
//! table = ds.dataset(bars, format="parquet", partitioning="hive").to_table()
//! frame = pd.read_parquet(bars)
//! frame = pl.scan_parquet(bars).collect()
//! rel = duckdb.sql(f"select * from read_parquet('{bars}/**/*.parquet', hive_partitioning = true)")
//! ```
//!
//! - **All-digit symbols.** Readers that infer partition types from the
//!   paths type `symbol` as an integer when *every* symbol of the dataset is
//!   all digits (`symbol=7203`, `symbol=0050`: `0050` would come back as
//!   `50`); one symbol with a letter keeps the column a string. Pass the
//!   partition types to be safe whatever the symbols:
//!
//! ```python
//! import pyarrow as pa
//! hive = ds.partitioning(pa.schema([("symbol", pa.string()), ("year", pa.int32())]), flavor="hive")
//! table = ds.dataset(bars, format="parquet", partitioning=hive).to_table()
//! frame = pd.read_parquet(bars, partitioning=hive)
//! frame = pl.scan_parquet(bars, hive_schema={"symbol": pl.String, "year": pl.Int32}).collect()
//! rel = duckdb.sql(f"select * from read_parquet('{bars}/**/*.parquet', hive_partitioning = true, "
//!                  "hive_types = {'symbol': 'VARCHAR', 'year': 'INTEGER'})")
//! ```
//!
//! - **pandas** gives `symbol` as a categorical (pyarrow reads partition
//!   values as a dictionary); `trade_count` with nulls comes back as float64
//!   with NaN, and `dtype_backend="numpy_nullable"` keeps `Int64`.
//! - All four see a key once per file holding it until its partition is
//!   compacted (`EfsStore::compact_all`), so an upsert not yet compacted
//!   shows twice; append-only writes never do.
//!
//! # Write protocol (no lock server; every step is one atomic NFS operation)
//!
//! 1. Validate the batch (`BarBatch::validate`); an invalid batch writes
//!    nothing. Split it by (symbol, year), sort each part by timestamp.
//! 2. For each part: write `_strata/staging/.strata-stage-<random>.tmp`
//!    (created with `O_EXCL`), `fsync` it, close it.
//! 3. Claim a position: `link(staged, <partition>/part-<max listed + 1>.parquet)`. `link`
//!    never replaces a name, so exactly one writer gets each position; on
//!    `EEXIST` the writer tries the next one (an `EEXIST` whose target is
//!    our own inode is a retransmitted LINK that succeeded: success). Then
//!    `fsync` the directory and unlink the staged name. A file is never
//!    written, appended or renamed over once it has a `part-` name.
//! 4. A batch of one part is committed by step 3. A batch of several parts
//!    is committed by publishing `_strata/batches/<batch>` containing
//!    `committed` the same way (staged in `_strata/staging/`, fsynced,
//!    `link`ed, directory fsynced);
//!    until then no Strata reader uses its files. A compactor or a delete may
//!    instead publish `aborted` under the same name: whichever `link` lands
//!    first decides, atomically; a writer that finds `aborted` writes its
//!    batch again under a new id.
//! 5. The write is acknowledged only after that, so an acknowledged batch
//!    is durable (EFS makes data durable across zones on `fsync`/close).
//!
//! **Reading.** A partition's visible rows: take the committed files
//! (single-file batches, and multi-file batches whose marker says
//! `committed`), drop every file whose position is at or below the largest
//! `covers_through` of a committed compaction, then merge by key with the
//! newest *effective order* winning (a file's position; a compaction's
//! `covers_through`). A query decides each multi-partition batch once, so it
//! sees a batch in all its partitions or in none; if a compaction absorbed a
//! batch the query had seen as pending, the query starts over (or, once it
//! has streamed rows, fails with a retryable `Unavailable`). Files are kept
//! open while read, so a compactor unlinking them does not tear a read
//! (POSIX; NFS clients "silly-rename" open files); a file that vanished
//! before it was opened makes the reader list the partition again. A
//! partition is listed until two listings in a row agree, because `readdir`
//! racing a publish and an unlink may miss both names.
//!
//! **Compaction** (`EfsStore::compact`, and automatically after a write that
//! leaves more than `compact_after_files` files): resolve the files in
//! position order, aborting pending batches older than `stale_after` (a
//! crashed writer) and stopping at the first younger pending one; merge the
//! resolved prefix (through position `N`), plus any compaction published
//! beyond the pending file whose rows rank at or below `N`, into one new
//! file with `covers_through = N` (invariant: a compaction holds every row
//! that ranks at or below its `covers_through`), publish it at a new
//! position (step 3), and only then unlink the files at or below `N` (the
//! included compactions above the pending file stay: unlinking them would
//! free positions no compaction covers). Readers that list before the new
//! file see the old files; after it, they ignore the old files, so no reader
//! ever sees a key twice or misses one. Rows written concurrently land at
//! positions above `N`, rank above the compaction and survive. A writer whose
//! stale listing let it claim a position a compaction had freed sees that
//! compaction (which covers its position) right after linking, removes its
//! file and claims again. **`delete_bars`** is a compaction of each touched
//! partition that also drops the range; it aborts every pending batch first
//! (their writers retry), so it covers every committed row.
//!
//! **Crashes.** A crash before step 3 leaves a staging file in
//! `_strata/staging/`, outside the dataset (no reader lists it; health
//! reports it once older than `stale_after`; compaction removes it). A crash between the parts of a multi-partition batch leaves
//! published files without a commit: Strata ignores them, compaction aborts
//! and removes them after `stale_after`. External readers (pyarrow, DuckDB)
//! do see such files until then, and see a key twice when it was upserted
//! and its partition not yet compacted: append-only writes (new keys, the
//! common case) never show duplicates, and a compacted partition is one file.
//!
//! **Why this is safe on NFS / EFS.** NFSv4 `LINK`, `REMOVE`, `CREATE` with
//! `EXCLUSIVE4` and `RENAME` are single server operations, atomic on the
//! server; EFS supports hard links and rename but not mandatory locks (all
//! locks are advisory, so the protocol uses none) nor a persistent reply
//! cache (hence the inode check on `EEXIST`). Close-to-open consistency: a
//! file's data is flushed to the server by `close`/`fsync` before its name
//! is published, and another client's `open` after the publish revalidates
//! and sees the full contents; a published name never changes contents, so
//! no client can cache stale data for it (no `ESTALE` from overwrite in place).
//! Directory listings may be cached: mount with `lookupcache=positive` (or
//! `actimeo` small) so new names appear quickly; a stale listing only delays
//! visibility, it never breaks the rules above.
//!
//! Recommended mount options (AWS's, plus listing freshness):
//! `nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,lookupcache=positive`.
//! Never `soft` (a timed-out write can corrupt silently) and never `async`
//! exports. Clocks only matter for `stale_after` (liveness: when a crashed
//! writer's leftovers are cleaned), never for which value wins.
//!
//! # Capabilities
//!
//! durable (fsync of file and directory before the ack), shared across hosts
//! (the protocol above), no server-side digest (rows stream to this process
//! through core's [`DigestAccumulator`](strata_core::digest::DigestAccumulator)),
//! no cheap delete (a delete rewrites each touched partition), no
//! transactions (a batch is atomic, nothing more).
//!
//! # Limits
//!
//! Memory per query is one partition's merged rows (a symbol-year). Pruning
//! is by partition path and row-group statistics; page-index pruning is not
//! used yet. Batch markers of multi-partition batches are never removed.

mod config;
mod dataset;
pub mod doctor;
mod error;
mod layout;
mod publish;
mod store;

pub use config::EfsConfig;
pub use store::{CAPABILITIES, EfsStore};

/// The backend's short name, as `Display` prints it.
pub(crate) const BACKEND: &str = "efs";

/// Encodes a symbol as a Hive partition value, as pyarrow and DuckDB do
/// (exposed for tests and tools that list the dataset).
pub fn encode_symbol(symbol: &str) -> String {
    layout::encode_symbol(symbol)
}

/// Decodes a Hive partition value back to the symbol.
pub fn decode_symbol(value: &str) -> Option<String> {
    layout::decode_symbol(value)
}
