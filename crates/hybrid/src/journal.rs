//! The durable write journal: where the hybrid store puts a write or a
//! delete while its primary is down, acknowledging it as journaled, until
//! the replayer applies it to the primary in order and removes it. Zero loss
//! is the point: once [`Journal::append`] returns, the entry survives a
//! crash or a power cut.
//!
//! # On disk
//!
//! ```text
//! <dir>/journal.lock                       advisory lock (Journal::lock_shared / lock_exclusive)
//! <dir>/entries/00000000000000000042.entry a pending entry, named by its sequence number
//! <dir>/staging/<pid>-<nanos>-<n>.tmp      an entry being written (never read as an entry)
//! <dir>/parked/00000000000000000007.entry  a parked entry, byte for byte as it was appended
//! <dir>/parked/00000000000000000007.reason why it was parked (JSON: reason, rows, parked_at_micros)
//! ```
//!
//! Sequence numbers are zero-padded to 20 digits (every `u64` fits) so that
//! the lexical order of names is their numeric order. One file per entry:
//! an entry is published whole by the protocol of `strata_store_kit::fs`
//! (written under `staging/`, fsynced, hard-linked under `entries/` with a
//! `link(2)` that never replaces a name, `entries/` fsynced), so there is no
//! torn tail to repair and several processes can append to one journal
//! without a lock: an appender that finds its number taken tries the next.
//!
//! # Entry format (version 1, integers little-endian)
//!
//! ```text
//! 0   8 bytes  magic "STRJRNL\n"
//! 8   u16      format version (1)
//! 10  u8       kind: 1 write, 2 delete
//! 11  u8       reserved (0)
//! 12  i64      appended at, microseconds since the epoch (UTC)
//! 20  u64      rows (the batch's; 0 for a delete)
//! 28  u64      payload length
//! 36  payload  write: the batch as an Arrow IPC stream (strata_store_kit::ipc, bit-exact);
//!              delete: u16 symbol length, the symbol's UTF-8, i64 range start, i64 range end
//! end 32 bytes SHA-256 of every byte before it
//! ```
//!
//! The checksum is SHA-256 (`sha2`, already in the tree for ga-coord's
//! fitness cache) rather than a hand-written CRC-32: no table code to
//! review, and it catches any damage, not only the burst errors a CRC is
//! built for. Its cost is noise next to the fsyncs of an append. Every
//! version keeps "the last 32 bytes are the SHA-256 of the rest", so any
//! damaged byte, the version's included, reads as corrupt.
//!
//! # Order and sequence numbers
//!
//! [`Journal::append`] numbers an entry one above the largest number it
//! finds pending or parked, and above every number this handle (or a clone)
//! has appended, read, removed or parked (a high-water mark in memory), so
//! an append that starts after another one returned sorts after it while
//! that one is still in the journal. A process that starts after a full
//! drain (nothing pending, nothing parked) may reuse numbers of entries
//! already applied and removed; that is fine only because an empty journal
//! has no order left to keep, and it is why [`Journal::remove`] must only
//! be called for an entry the caller read and applied under the exclusive
//! lock (see [`Journal::lock_exclusive`]), never blindly again later.
//!
//! # Errors
//!
//! Every error is a `StoreError` of backend `journal` that names the path
//! and a remedy: a full disk or missing permissions are `Unavailable` (free
//! space or fix the mode, then retry), as is any other I/O failure. A failed
//! fsync is returned, never retried and trusted ("fsyncgate": after a failed
//! write-back Linux may drop the dirty pages and report it once), and the
//! append it belongs to is withdrawn. A damaged entry is an `Internal` error
//! whose source is a [`CorruptEntry`]: test it with [`is_corrupt`] and park
//! the entry; every other error of [`Journal::read`] is not a reason to park.
//!
//! All calls block; async callers run them on `spawn_blocking`.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use strata_core::{BarBatch, Result, StoreError, Symbol, TimeRange, Timestamp};
use strata_store_kit::fs::{self as durable, Published};
use strata_store_kit::ipc;

/// The backend name in the journal's errors and health reports.
pub const BACKEND: &str = "journal";

/// A staging file untouched for this long belongs to an append that died
/// (a live append writes, fsyncs and links its file within moments);
/// [`Journal::open`] deletes it.
pub const STALE_STAGING: Duration = Duration::from_secs(600);

/// What an entry asks of the primary.
#[derive(Debug, Clone, PartialEq)]
pub enum JournalOp {
    /// Upsert a batch (`MarketDataStore::write_bars`).
    Write(BarBatch),
    /// Delete a symbol's bars in a range (`MarketDataStore::delete_bars`).
    Delete {
        /// The symbol whose bars go.
        symbol: Symbol,
        /// The half-open range of timestamps.
        range: TimeRange,
    },
}

impl JournalOp {
    /// Rows the operation carries: the batch's length, 0 for a delete.
    pub fn rows(&self) -> u64 {
        match self {
            JournalOp::Write(batch) => batch.len() as u64,
            JournalOp::Delete { .. } => 0,
        }
    }
}

/// One pending entry as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its sequence number (replay order).
    pub seq: u64,
    /// What it asks of the primary.
    pub op: JournalOp,
    /// When it was appended, microseconds since the epoch (UTC).
    pub appended_at_micros: i64,
}

/// A parked entry: set aside because it could not be applied (the primary
/// refused it) or read (it is corrupt), so it no longer blocks the entries
/// behind it. Its file stays under `parked/` for a person to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// Its sequence number.
    pub seq: u64,
    /// Why it was parked.
    pub reason: String,
    /// Rows it carries, as its header says (0 when the header is unreadable).
    pub rows: u64,
    /// When it was parked, microseconds since the epoch (0 when not recorded).
    pub parked_at_micros: i64,
}

/// The journal's state for health reports and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JournalStats {
    /// Pending entries.
    pub depth: usize,
    /// Rows in pending entries (as their headers say).
    pub rows: u64,
    /// When the oldest pending entry was appended, microseconds since the epoch.
    pub oldest_micros: Option<i64>,
    /// Parked entries.
    pub parked: usize,
}

/// A journal directory. Cheap to clone (the clones share one high-water
/// mark); several handles and processes may use one directory at once.
#[derive(Debug, Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

/// A held lock on the journal (`<dir>/journal.lock`, `flock(2)` through
/// `std::fs::File::lock`); dropping it unlocks.
#[derive(Debug)]
pub struct JournalLock {
    file: File,
}

/// The source of the `Internal` error [`Journal::read`] returns for an entry
/// that is damaged: truncated, failing its checksum, or not decodable. Such
/// an entry can never be replayed; park it. Find it with [`is_corrupt`] or
/// [`CorruptEntry::of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptEntry {
    /// The entry's sequence number.
    pub seq: u64,
    /// Its file.
    pub path: PathBuf,
}

/// Whether `error` is [`Journal::read`]'s report of a corrupt entry (an
/// `Internal` error whose source is a [`CorruptEntry`]), the one read error
/// after which the replayer should park the entry rather than stop.
pub fn is_corrupt(error: &StoreError) -> bool {
    CorruptEntry::of(error).is_some()
}

impl CorruptEntry {
    /// The corrupt entry `error` reports, if that is what it reports.
    pub fn of(error: &StoreError) -> Option<&CorruptEntry> {
        match error {
            StoreError::Internal { source: Some(source), .. } => source.downcast_ref::<CorruptEntry>(),
            _ => None,
        }
    }
}

impl std::fmt::Display for CorruptEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "journal entry {} is corrupt", self.seq)
    }
}

impl std::error::Error for CorruptEntry {}

impl Drop for JournalLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first says so.
        let _ = self.file.unlock();
    }
}

const ENTRIES_DIR: &str = "entries";
const STAGING_DIR: &str = "staging";
const PARKED_DIR: &str = "parked";
const LOCK_FILE: &str = "journal.lock";
const ENTRY_SUFFIX: &str = ".entry";
const REASON_SUFFIX: &str = ".reason";
const SEQ_DIGITS: usize = 20;

const MAGIC: &[u8; 8] = b"STRJRNL\n";
const VERSION: u16 = 1;
const KIND_WRITE: u8 = 1;
const KIND_DELETE: u8 = 2;
const HEADER_LEN: usize = 36;
const CHECKSUM_LEN: usize = 32;

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    entries: PathBuf,
    staging: PathBuf,
    parked: PathBuf,
    lock_path: PathBuf,
    /// Every sequence number this handle appended, read, removed or parked
    /// is at most this.
    high_water: AtomicU64,
}

/// The fixed fields at the start of every entry.
#[derive(Debug, Clone, Copy)]
struct Header {
    kind: u8,
    appended_at_micros: i64,
    rows: u64,
    payload_len: u64,
}

/// The `.reason` file of a parked entry.
#[derive(Debug, Serialize, Deserialize)]
struct ParkedRecord {
    reason: String,
    rows: u64,
    parked_at_micros: i64,
}

impl Journal {
    /// Opens the journal in `dir`, creating it and its subdirectories
    /// durably (each new directory's parent fsynced, and the journal's
    /// parent and itself fsynced in any case, in case an earlier opener died
    /// between creating and syncing), and deletes staging files left by
    /// appends that died ([`STALE_STAGING`]) and reasons left by parks that
    /// died before moving their entry.
    pub fn open(dir: &Path) -> Result<Journal> {
        let dir = dir.to_path_buf();
        let inner = Inner {
            entries: dir.join(ENTRIES_DIR),
            staging: dir.join(STAGING_DIR),
            parked: dir.join(PARKED_DIR),
            lock_path: dir.join(LOCK_FILE),
            dir,
            high_water: AtomicU64::new(0),
        };
        // No bound: every missing ancestor is created.
        durable::ensure_dir(Path::new("/"), &inner.dir)
            .map_err(|error| io_error("creating the journal directory", &inner.dir, error))?;
        for sub in [&inner.entries, &inner.staging, &inner.parked] {
            durable::ensure_dir(&inner.dir, sub).map_err(|error| io_error("creating", sub, error))?;
        }
        match inner.dir.parent() {
            Some(parent) if parent.as_os_str().is_empty() => sync_dir(Path::new("."))?,
            Some(parent) => sync_dir(parent)?,
            None => {}
        }
        sync_dir(&inner.dir)?;
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&inner.lock_path)
            .map_err(|error| io_error("creating the lock file", &inner.lock_path, error))?;
        let journal = Journal { inner: Arc::new(inner) };
        journal.remove_stale_staging()?;
        journal.remove_orphan_reasons()?;
        Ok(journal)
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Appends `op` and returns its sequence number. Durable when it
    /// returns: the entry was written under `staging/` and fsynced,
    /// hard-linked under `entries/` as the next free number (a number
    /// another appender took first is skipped), and `entries/` fsynced.
    /// On an error nothing is acknowledged: an entry already linked when
    /// the directory's fsync failed is withdrawn again (best effort; a
    /// withdrawn entry that survives anyway is replayed like any other,
    /// which is harmless: writes are upserts).
    pub fn append(&self, op: &JournalOp) -> Result<u64> {
        let payload = encode_payload(op)?;
        let header = Header {
            kind: match op {
                JournalOp::Write(_) => KIND_WRITE,
                JournalOp::Delete { .. } => KIND_DELETE,
            },
            appended_at_micros: Timestamp::now().micros(),
            rows: op.rows(),
            payload_len: payload.len() as u64,
        }
        .encode();
        let staged = self.inner.staging.join(staging_name("entry"));
        durable::write_staged(
            &staged,
            |mut out| {
                let mut hasher = Sha256::new();
                hasher.update(header);
                hasher.update(&payload);
                out.write_all(&header)
                    .and_then(|()| out.write_all(&payload))
                    .and_then(|()| out.write_all(&hasher.finalize()))
                    .map_err(|error| io_error("writing", &staged, error))?;
                Ok(out)
            },
            |operation, error| io_error(operation, &staged, error),
        )?;
        let published = self.publish_entry(&staged);
        // The staging name goes only after `entries/` was fsynced (or the
        // publish failed): before that it may be the only durable name.
        let removed = durable::remove_if_present(&staged).map_err(|error| io_error("removing", &staged, error));
        let seq = published?;
        if let Err(error) = removed {
            // The entry is durable; a leftover staging file is only space.
            tracing::warn!("{error}");
        }
        Ok(seq)
    }

    /// The sequence numbers of the pending entries, ascending (replay order).
    pub fn pending(&self) -> Result<Vec<u64>> {
        let mut pending = list_seqs(&self.inner.entries, ENTRY_SUFFIX)?;
        pending.sort_unstable();
        if let Some(&last) = pending.last() {
            self.raise_high_water(last);
        }
        Ok(pending)
    }

    /// Whether nothing is pending (parked entries do not count).
    pub fn is_empty(&self) -> Result<bool> {
        let dir = &self.inner.entries;
        for item in fs::read_dir(dir).map_err(|error| io_error("listing", dir, error))? {
            let item = item.map_err(|error| io_error("listing", dir, error))?;
            if item.file_name().to_str().and_then(|name| parse_name(name, ENTRY_SUFFIX)).is_some() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads pending entry `seq`, verifying its checksum. A missing entry
    /// is `NotFound`; a damaged one an `Internal` error for which
    /// [`is_corrupt`] is true (park it); an entry of a newer format version
    /// an `Internal` error that is not (replay it with that version); an I/O
    /// failure `Unavailable`.
    pub fn read(&self, seq: u64) -> Result<Entry> {
        let path = self.entry_path(seq);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::not_found(format!("journal entry {seq} ({})", path.display())));
            }
            Err(error) => return Err(io_error("reading", &path, error)),
        };
        self.raise_high_water(seq);
        let corrupt = |problem: String| corrupt(seq, &path, &problem);
        if bytes.len() < HEADER_LEN + CHECKSUM_LEN {
            return Err(corrupt(format!("truncated to {} bytes", bytes.len())));
        }
        let (body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if Sha256::digest(body).as_slice() != checksum {
            return Err(corrupt("its checksum does not match its content".to_string()));
        }
        let header = Header::decode(body).map_err(|problem| match problem {
            HeaderProblem::Corrupt(problem) => corrupt(problem),
            HeaderProblem::Version(version) => StoreError::internal(
                BACKEND,
                format!(
                    "journal entry {} has format version {version}, newer than this strata's {VERSION}: replay the journal with the strata that wrote it",
                    path.display()
                ),
            ),
        })?;
        let payload = &body[HEADER_LEN..];
        if payload.len() as u64 != header.payload_len {
            return Err(corrupt(format!(
                "its header announces {} payload bytes, it holds {}",
                header.payload_len,
                payload.len()
            )));
        }
        let op = match header.kind {
            KIND_WRITE => {
                let batch = ipc::decode_batch(payload, BACKEND).map_err(|error| corrupt(error.to_string()))?;
                if batch.len() as u64 != header.rows {
                    return Err(corrupt(format!(
                        "its header announces {} rows, its batch holds {}",
                        header.rows,
                        batch.len()
                    )));
                }
                JournalOp::Write(batch)
            }
            KIND_DELETE => decode_delete(payload).map_err(corrupt)?,
            other => return Err(corrupt(format!("unknown entry kind {other}"))),
        };
        Ok(Entry { seq, op, appended_at_micros: header.appended_at_micros })
    }

    /// Removes entry `seq` after the primary confirmed it, and fsyncs
    /// `entries/` so that it is not replayed again after a crash (if that
    /// fsync fails the error is returned and the entry may come back:
    /// replaying it again is harmless). Removing an entry already removed
    /// is `Ok`. Call it only for an entry read and applied under the
    /// exclusive lock (see the module doc on sequence numbers).
    pub fn remove(&self, seq: u64) -> Result<()> {
        let path = self.entry_path(seq);
        durable::remove_if_present(&path).map_err(|error| io_error("removing", &path, error))?;
        self.raise_high_water(seq);
        sync_dir(&self.inner.entries)
    }

    /// Parks entry `seq` with `reason`: writes `parked/<seq>.reason`
    /// durably, then moves the entry to `parked/<seq>.entry` (an atomic
    /// rename: the entry is pending or parked, never both) and fsyncs both
    /// directories. A parked entry no longer counts as pending. Parking an
    /// entry already parked is `Ok` (its first reason stays); parking an
    /// entry that is neither pending nor parked is `NotFound`.
    pub fn park(&self, seq: u64, reason: &str) -> Result<()> {
        let source = self.entry_path(seq);
        let target = self.parked_entry_path(seq);
        if !exists(&source)? {
            return self.already_parked(seq, &target);
        }
        self.raise_high_water(seq);
        let rows = read_header(&source).map_or(0, |header| header.rows);
        let record = ParkedRecord { reason: reason.to_string(), rows, parked_at_micros: Timestamp::now().micros() };
        let text = serde_json::to_vec_pretty(&record)
            .map_err(|error| StoreError::internal(BACKEND, format!("encoding the reason of entry {seq}: {error}")))?;
        let staged = self.inner.staging.join(staging_name("reason"));
        durable::write_staged(
            &staged,
            |mut out| {
                out.write_all(&text).map_err(|error| io_error("writing", &staged, error))?;
                Ok(out)
            },
            |operation, error| io_error(operation, &staged, error),
        )?;
        let reason_path = self.reason_path(seq);
        if let Err(error) = fs::rename(&staged, &reason_path) {
            let _ = durable::remove_if_present(&staged);
            return Err(io_error("publishing the reason", &reason_path, error));
        }
        sync_dir(&self.inner.parked)?;
        match fs::rename(&source, &target) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                // Removed or parked by someone else meanwhile.
                if !exists(&target)? {
                    let _ = durable::remove_if_present(&reason_path);
                }
                return self.already_parked(seq, &target);
            }
            Err(error) => return Err(io_error("moving the entry to", &target, error)),
        }
        sync_dir(&self.inner.parked)?;
        sync_dir(&self.inner.entries)
    }

    /// The parked entries, ascending by sequence number.
    pub fn parked(&self) -> Result<Vec<Parked>> {
        let mut seqs = list_seqs(&self.inner.parked, ENTRY_SUFFIX)?;
        seqs.sort_unstable();
        let mut parked = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let path = self.reason_path(seq);
            let record = match fs::read(&path) {
                Ok(bytes) => serde_json::from_slice::<ParkedRecord>(&bytes).ok(),
                Err(error) if error.kind() == io::ErrorKind::NotFound => None,
                Err(error) => return Err(io_error("reading", &path, error)),
            };
            parked.push(match record {
                Some(record) => {
                    Parked { seq, reason: record.reason, rows: record.rows, parked_at_micros: record.parked_at_micros }
                }
                None => Parked {
                    seq,
                    reason: format!("no reason recorded ({} is missing or unreadable)", path.display()),
                    rows: read_header(&self.parked_entry_path(seq)).map_or(0, |header| header.rows),
                    parked_at_micros: 0,
                },
            });
        }
        Ok(parked)
    }

    /// Depth, rows and oldest entry of the pending entries (from their
    /// headers; an entry whose header is unreadable counts with no rows),
    /// and the number of parked entries.
    pub fn stats(&self) -> Result<JournalStats> {
        let pending = self.pending()?;
        let mut stats = JournalStats { depth: pending.len(), ..JournalStats::default() };
        for seq in pending {
            // An entry removed by a replayer since the listing has no header.
            if let Some(header) = read_header(&self.entry_path(seq)) {
                stats.rows += header.rows;
                let oldest = stats.oldest_micros.get_or_insert(header.appended_at_micros);
                *oldest = (*oldest).min(header.appended_at_micros);
            }
        }
        stats.parked = list_seqs(&self.inner.parked, ENTRY_SUFFIX)?.len();
        Ok(stats)
    }

    /// Takes the journal's lock shared, waiting while someone holds it
    /// exclusively. Writers hold it shared from "is the journal empty?"
    /// until their write went to the primary or the journal; the replayer
    /// holds it exclusively. The lock is `flock(2)` on `<dir>/journal.lock`
    /// through a file opened for this lock, so two handles (or processes)
    /// exclude each other; it is advisory, and appends do not need it.
    pub fn lock_shared(&self) -> Result<JournalLock> {
        let file = self.open_lock_file()?;
        file.lock_shared().map_err(|error| io_error("locking (shared)", &self.inner.lock_path, error))?;
        Ok(JournalLock { file })
    }

    /// Takes the journal's lock exclusively, waiting for every holder.
    pub fn lock_exclusive(&self) -> Result<JournalLock> {
        let file = self.open_lock_file()?;
        file.lock().map_err(|error| io_error("locking (exclusive)", &self.inner.lock_path, error))?;
        Ok(JournalLock { file })
    }

    /// Takes the journal's lock exclusively if nobody holds it; `None` when
    /// someone does.
    pub fn try_lock_exclusive(&self) -> Result<Option<JournalLock>> {
        let file = self.open_lock_file()?;
        match file.try_lock() {
            Ok(()) => Ok(Some(JournalLock { file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(error)) => Err(io_error("locking (exclusive)", &self.inner.lock_path, error)),
        }
    }

    /// Links `staged` under the next free number and fsyncs `entries/`.
    fn publish_entry(&self, staged: &Path) -> Result<u64> {
        let mut seq = self.next_seq()?;
        let target = loop {
            let target = self.entry_path(seq);
            match durable::publish_no_replace(staged, &target) {
                Ok(Published::Ours) => break target,
                Ok(Published::Taken) => seq = next(seq)?,
                Err(error) => return Err(io_error("publishing", &target, error)),
            }
        };
        self.raise_high_water(seq);
        if let Err(error) = durable::fsync_dir(&self.inner.entries) {
            // The name may or may not be on disk, and a second fsync could
            // succeed without it (fsyncgate): withdraw the entry and fail.
            let _ = durable::remove_if_present(&target);
            return Err(io_error(
                "syncing (the append was withdrawn; nothing was acknowledged)",
                &self.inner.entries,
                error,
            ));
        }
        Ok(seq)
    }

    /// One above every pending and parked number and the high-water mark.
    fn next_seq(&self) -> Result<u64> {
        let listed = list_seqs(&self.inner.entries, ENTRY_SUFFIX)?
            .into_iter()
            .chain(list_seqs(&self.inner.parked, ENTRY_SUFFIX)?)
            .max()
            .unwrap_or(0);
        next(listed.max(self.inner.high_water.load(Ordering::SeqCst)))
    }

    fn raise_high_water(&self, seq: u64) {
        self.inner.high_water.fetch_max(seq, Ordering::SeqCst);
    }

    /// `Ok` when `seq` is parked already, `NotFound` otherwise.
    fn already_parked(&self, seq: u64, target: &Path) -> Result<()> {
        if exists(target)? {
            Ok(())
        } else {
            Err(StoreError::not_found(format!(
                "journal entry {seq} (neither pending nor parked in {})",
                self.inner.dir.display()
            )))
        }
    }

    fn entry_path(&self, seq: u64) -> PathBuf {
        self.inner.entries.join(file_name(seq, ENTRY_SUFFIX))
    }

    fn parked_entry_path(&self, seq: u64) -> PathBuf {
        self.inner.parked.join(file_name(seq, ENTRY_SUFFIX))
    }

    fn reason_path(&self, seq: u64) -> PathBuf {
        self.inner.parked.join(file_name(seq, REASON_SUFFIX))
    }

    fn open_lock_file(&self) -> Result<File> {
        let path = &self.inner.lock_path;
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|error| io_error("opening the lock file", path, error))
    }

    /// Deletes staging files untouched for [`STALE_STAGING`] (their append
    /// died before publishing, so nothing was acknowledged). Younger ones
    /// may belong to a live append of another process and stay.
    fn remove_stale_staging(&self) -> Result<()> {
        let dir = &self.inner.staging;
        let now = SystemTime::now();
        for item in fs::read_dir(dir).map_err(|error| io_error("listing", dir, error))? {
            let item = item.map_err(|error| io_error("listing", dir, error))?;
            let path = item.path();
            let metadata = match item.metadata() {
                Ok(metadata) if metadata.is_file() => metadata,
                Ok(_) => continue,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(io_error("inspecting", &path, error)),
            };
            let modified = metadata.modified().map_err(|error| io_error("inspecting", &path, error))?;
            if now.duration_since(modified).is_ok_and(|age| age >= STALE_STAGING) {
                tracing::info!("removing {}, left by an append that did not finish", path.display());
                durable::remove_if_present(&path).map_err(|error| io_error("removing", &path, error))?;
            }
        }
        Ok(())
    }

    /// Deletes `.reason` files whose entry is neither parked nor pending
    /// (a park that died before moving its entry, which was later removed).
    /// Pending entries are listed first: a park moving its entry meanwhile
    /// is then seen in one listing or the other.
    fn remove_orphan_reasons(&self) -> Result<()> {
        let pending = list_seqs(&self.inner.entries, ENTRY_SUFFIX)?;
        let parked = list_seqs(&self.inner.parked, ENTRY_SUFFIX)?;
        for seq in list_seqs(&self.inner.parked, REASON_SUFFIX)? {
            if !pending.contains(&seq) && !parked.contains(&seq) {
                let path = self.reason_path(seq);
                durable::remove_if_present(&path).map_err(|error| io_error("removing", &path, error))?;
            }
        }
        Ok(())
    }
}

/// Why a header could not be decoded.
enum HeaderProblem {
    Corrupt(String),
    Version(u16),
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[0..8].copy_from_slice(MAGIC);
        bytes[8..10].copy_from_slice(&VERSION.to_le_bytes());
        bytes[10] = self.kind;
        bytes[11] = 0;
        bytes[12..20].copy_from_slice(&self.appended_at_micros.to_le_bytes());
        bytes[20..28].copy_from_slice(&self.rows.to_le_bytes());
        bytes[28..36].copy_from_slice(&self.payload_len.to_le_bytes());
        bytes
    }

    /// The header at the start of `bytes` (at least [`HEADER_LEN`] long).
    fn decode(bytes: &[u8]) -> std::result::Result<Header, HeaderProblem> {
        let field = |range: std::ops::Range<usize>| -> std::result::Result<[u8; 8], HeaderProblem> {
            bytes
                .get(range)
                .and_then(|slice| slice.try_into().ok())
                .ok_or_else(|| HeaderProblem::Corrupt("truncated header".to_string()))
        };
        if bytes.get(0..8) != Some(MAGIC.as_slice()) {
            return Err(HeaderProblem::Corrupt("it does not start with the journal's magic bytes".to_string()));
        }
        let version = match bytes.get(8..10) {
            Some(&[low, high]) => u16::from_le_bytes([low, high]),
            _ => return Err(HeaderProblem::Corrupt("truncated header".to_string())),
        };
        if version != VERSION {
            return Err(HeaderProblem::Version(version));
        }
        Ok(Header {
            kind: bytes.get(10).copied().unwrap_or_default(),
            appended_at_micros: i64::from_le_bytes(field(12..20)?),
            rows: u64::from_le_bytes(field(20..28)?),
            payload_len: u64::from_le_bytes(field(28..36)?),
        })
    }
}

/// The header of the entry file at `path`, unverified (no checksum): for
/// statistics only. `None` when it is missing or unreadable.
fn read_header(path: &Path) -> Option<Header> {
    let mut bytes = [0u8; HEADER_LEN];
    File::open(path).and_then(|mut file| file.read_exact(&mut bytes)).ok()?;
    Header::decode(&bytes).ok()
}

fn encode_payload(op: &JournalOp) -> Result<Vec<u8>> {
    match op {
        JournalOp::Write(batch) => ipc::encode_batch(batch, BACKEND),
        JournalOp::Delete { symbol, range } => {
            let text = symbol.as_str().as_bytes();
            let length = u16::try_from(text.len())
                .map_err(|_| StoreError::invalid(format!("symbol of {} bytes is too long to journal", text.len())))?;
            let mut payload = Vec::with_capacity(2 + text.len() + 16);
            payload.extend_from_slice(&length.to_le_bytes());
            payload.extend_from_slice(text);
            payload.extend_from_slice(&range.start.micros().to_le_bytes());
            payload.extend_from_slice(&range.end.micros().to_le_bytes());
            Ok(payload)
        }
    }
}

fn decode_delete(payload: &[u8]) -> std::result::Result<JournalOp, String> {
    let truncated = || "truncated delete payload".to_string();
    let length = payload.get(0..2).map(|bytes| u16::from_le_bytes([bytes[0], bytes[1]])).ok_or_else(truncated)?;
    let (text, rest) = payload[2..].split_at_checked(usize::from(length)).ok_or_else(truncated)?;
    let [start, end]: [i64; 2] = match rest {
        [s0, s1, s2, s3, s4, s5, s6, s7, e0, e1, e2, e3, e4, e5, e6, e7] => [
            i64::from_le_bytes([*s0, *s1, *s2, *s3, *s4, *s5, *s6, *s7]),
            i64::from_le_bytes([*e0, *e1, *e2, *e3, *e4, *e5, *e6, *e7]),
        ],
        _ => return Err(format!("a delete payload ends with {} bytes, not a range's 16", rest.len())),
    };
    let text = std::str::from_utf8(text).map_err(|error| format!("the symbol is not UTF-8: {error}"))?;
    let symbol = Symbol::new(text).map_err(|error| error.to_string())?;
    let range = TimeRange::new(Timestamp(start), Timestamp(end)).map_err(|error| error.to_string())?;
    Ok(JournalOp::Delete { symbol, range })
}

/// The sequence numbers named `<20 digits><suffix>` in `dir`.
fn list_seqs(dir: &Path, suffix: &str) -> Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for item in fs::read_dir(dir).map_err(|error| io_error("listing", dir, error))? {
        let item = item.map_err(|error| io_error("listing", dir, error))?;
        if let Some(seq) = item.file_name().to_str().and_then(|name| parse_name(name, suffix)) {
            seqs.push(seq);
        }
    }
    Ok(seqs)
}

fn file_name(seq: u64, suffix: &str) -> String {
    format!("{seq:0width$}{suffix}", width = SEQ_DIGITS)
}

fn parse_name(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != SEQ_DIGITS || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn next(seq: u64) -> Result<u64> {
    seq.checked_add(1).ok_or_else(|| StoreError::internal(BACKEND, "the journal's sequence numbers are exhausted"))
}

/// A staging file name no other append uses: the process id, the time and
/// a counter of this process.
fn staging_name(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_nanos());
    format!("{tag}-{}-{nanos}-{count}.tmp", std::process::id())
}

fn exists(path: &Path) -> Result<bool> {
    path.try_exists().map_err(|error| io_error("inspecting", path, error))
}

fn sync_dir(dir: &Path) -> Result<()> {
    durable::fsync_dir(dir).map_err(|error| io_error("syncing", dir, error))
}

/// The `Internal` error of a damaged entry, with a [`CorruptEntry`] source.
fn corrupt(seq: u64, path: &Path, problem: &str) -> StoreError {
    StoreError::Internal {
        backend: BACKEND.into(),
        what: format!("entry {}: {problem}; it cannot be replayed: park it", path.display()),
        source: Some(Box::new(CorruptEntry { seq, path: path.to_path_buf() })),
    }
}

/// An I/O failure of `operation` on `path`, with a remedy. Every kind is
/// `Unavailable` (a later attempt, after the remedy, may succeed; a retried
/// append writes and fsyncs a new file, it never trusts a second fsync of
/// the old one) except a timeout.
fn io_error(operation: &str, path: &Path, error: io::Error) -> StoreError {
    let shown = path.display();
    let remedy = match error.kind() {
        io::ErrorKind::NotFound => "it does not exist: was the journal directory removed while in use? Check the path",
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            "permission denied: this user needs read and write access to the journal directory (check its owner and mode, and that the filesystem is not mounted read-only)"
        }
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            "the disk is full or over quota: free space (journaled writes wait here until the primary is back), then retry"
        }
        io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory | io::ErrorKind::AlreadyExists => {
            "something else is in the way: the journal needs a directory of its own; move that file or choose another journal directory"
        }
        io::ErrorKind::TimedOut => return StoreError::timeout(BACKEND, format!("{operation} {shown}: {error}")),
        _ => "the disk failed: check it (dmesg) and the journal directory, then retry",
    };
    StoreError::unavailable(BACKEND, format!("{operation} {shown}: {remedy}"), Some(Box::new(error)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_numerically_and_nothing_else_parses() {
        assert_eq!(file_name(42, ENTRY_SUFFIX), "00000000000000000042.entry");
        assert_eq!(file_name(u64::MAX, ENTRY_SUFFIX).len(), SEQ_DIGITS + ENTRY_SUFFIX.len());
        assert!(file_name(9, ENTRY_SUFFIX) < file_name(10, ENTRY_SUFFIX));
        assert_eq!(parse_name(&file_name(u64::MAX, ENTRY_SUFFIX), ENTRY_SUFFIX), Some(u64::MAX));
        for other in
            ["42.entry", "0000000000000000004x.entry", "00000000000000000042.reason", "99999999999999999999.entry"]
        {
            assert_eq!(parse_name(other, ENTRY_SUFFIX), None, "{other}");
        }
    }

    #[test]
    fn a_header_round_trips_and_a_newer_version_is_not_corrupt() {
        let header = Header { kind: KIND_WRITE, appended_at_micros: -5, rows: 7, payload_len: 9 }.encode();
        let decoded = Header::decode(&header).ok().unwrap();
        assert_eq!(
            (decoded.kind, decoded.appended_at_micros, decoded.rows, decoded.payload_len),
            (KIND_WRITE, -5, 7, 9)
        );
        let mut newer = header;
        newer[8] = 2;
        assert!(matches!(Header::decode(&newer), Err(HeaderProblem::Version(2))));
        let mut alien = header;
        alien[0] = b'X';
        assert!(matches!(Header::decode(&alien), Err(HeaderProblem::Corrupt(_))));
    }

    #[test]
    fn io_errors_name_the_path_and_a_remedy() {
        let path = Path::new("/var/lib/strata/journal");
        let full = io_error("writing", path, io::Error::from(io::ErrorKind::StorageFull));
        assert!(matches!(full, StoreError::Unavailable { .. }), "{full:?}");
        assert!(full.to_string().contains("/var/lib/strata/journal") && full.to_string().contains("full"), "{full}");
        let denied = io_error("writing", path, io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(denied.to_string().contains("permission"), "{denied}");
        assert_eq!(denied.backend(), Some(BACKEND));
    }
}
