//! Which (symbol, time range) the cache holds completely.
//!
//! A read that went to the primary for a symbol's whole range `[start, end)`
//! (no limit) saw every row the primary had there; once those rows are in the
//! cache, the range is *covered* and later reads of it are answered by the
//! cache alone. A range that is only partly cached is never returned as if it
//! were complete: the uncovered gaps are read from the primary.
//!
//! Coverage never reaches past the moment the primary was read (bars stamped
//! later may still arrive from other hosts). Writes through the hybrid stack
//! go to the cache too, so they keep coverage true; a cache write that fails
//! removes the coverage of what it would have written.
//!
//! The record is a small JSON file beside the journal, replaced atomically
//! (written, fsynced, renamed, directory fsynced) under an exclusive lock, so
//! several processes sharing one cache file share it. Readers reload it only
//! when its modification time or size changed.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use strata_core::{Result, StoreError, Timestamp};

/// Half-open `[start, end)` in microseconds since the epoch.
pub type Interval = (i64, i64);

/// The covered intervals of each symbol, sorted and disjoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CoverageMap {
    /// Symbol to its covered intervals.
    pub symbols: BTreeMap<String, Vec<Interval>>,
}

impl CoverageMap {
    /// Adds `[start, end)` to `symbol`'s coverage, merging touching intervals.
    pub fn add(&mut self, symbol: &str, start: i64, end: i64) {
        if start >= end {
            return;
        }
        let intervals = self.symbols.entry(symbol.to_string()).or_default();
        intervals.push((start, end));
        intervals.sort_unstable();
        let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
        for &(s, e) in intervals.iter() {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        *intervals = merged;
    }

    /// Removes `[start, end)` from `symbol`'s coverage.
    pub fn remove(&mut self, symbol: &str, start: i64, end: i64) {
        let Some(intervals) = self.symbols.get_mut(symbol) else { return };
        let mut kept = Vec::with_capacity(intervals.len() + 1);
        for &(s, e) in intervals.iter() {
            if e <= start || s >= end {
                kept.push((s, e));
                continue;
            }
            if s < start {
                kept.push((s, start));
            }
            if e > end {
                kept.push((end, e));
            }
        }
        if kept.is_empty() {
            self.symbols.remove(symbol);
        } else {
            *intervals = kept;
        }
    }

    /// Splits `[start, end)` of `symbol` into ascending pieces, each marked
    /// covered (`true`) or not.
    pub fn split(&self, symbol: &str, start: i64, end: i64) -> Vec<(Interval, bool)> {
        let mut pieces = Vec::new();
        let mut at = start;
        for &(s, e) in self.symbols.get(symbol).map(Vec::as_slice).unwrap_or_default() {
            if e <= at {
                continue;
            }
            if s >= end {
                break;
            }
            if s > at {
                pieces.push(((at, s), false));
                at = s;
            }
            let stop = e.min(end);
            pieces.push(((at, stop), true));
            at = stop;
            if at >= end {
                break;
            }
        }
        if at < end {
            pieces.push(((at, end), false));
        }
        pieces
    }

    /// Whether `[start, end)` of `symbol` is covered entirely.
    pub fn covers(&self, symbol: &str, start: i64, end: i64) -> bool {
        start >= end || matches!(self.split(symbol, start, end).as_slice(), [(_, true)])
    }
}

/// A file's (modified time, size): changed when the file was replaced.
type FileStamp = (SystemTime, u64);

/// The coverage file of one cache, shared by the processes using it.
#[derive(Debug)]
pub struct Coverage {
    path: PathBuf,
    lock_path: PathBuf,
    /// The last map read, with the file's (modified, size) when read.
    loaded: Mutex<(Option<FileStamp>, Arc<CoverageMap>)>,
}

impl Coverage {
    /// The coverage recorded in `dir` (created when missing).
    pub fn open(dir: &Path) -> Result<Coverage> {
        fs::create_dir_all(dir).map_err(|error| io_error("creating", dir, error))?;
        Ok(Coverage {
            path: dir.join("coverage.json"),
            lock_path: dir.join("coverage.lock"),
            loaded: Mutex::new((None, Arc::default())),
        })
    }

    /// The current map (re-read when the file changed since the last read;
    /// shared, so the hot read path does not copy it).
    pub fn current(&self) -> Result<Arc<CoverageMap>> {
        let stamp = fs::metadata(&self.path).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
        let mut loaded = self.loaded.lock().map_err(|_| internal("coverage lock poisoned"))?;
        if stamp.is_some() && loaded.0 == stamp {
            return Ok(Arc::clone(&loaded.1));
        }
        let map = Arc::new(self.read_file()?);
        *loaded = (stamp, Arc::clone(&map));
        Ok(map)
    }

    /// Applies `change` to the recorded map under the exclusive lock and
    /// replaces the file durably.
    pub fn update(&self, change: impl FnOnce(&mut CoverageMap)) -> Result<()> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(|error| io_error("opening", &self.lock_path, error))?;
        lock.lock().map_err(|error| io_error("locking", &self.lock_path, error))?;
        let mut map = self.read_file()?;
        change(&mut map);
        let staged = self.path.with_extension("json.tmp");
        let text = serde_json::to_vec(&map).map_err(|error| internal(&error.to_string()))?;
        let mut file = File::create(&staged).map_err(|error| io_error("creating", &staged, error))?;
        file.write_all(&text).and_then(|()| file.sync_all()).map_err(|error| io_error("writing", &staged, error))?;
        fs::rename(&staged, &self.path).map_err(|error| io_error("replacing", &self.path, error))?;
        if let Some(dir) = self.path.parent() {
            strata_store_kit::fs::fsync_dir(dir).map_err(|error| io_error("syncing", dir, error))?;
        }
        let stamp = fs::metadata(&self.path).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
        if let Ok(mut loaded) = self.loaded.lock() {
            *loaded = (stamp, Arc::new(map));
        }
        Ok(())
    }

    /// Records `[start, end)` of `symbol` as held completely.
    pub fn add(&self, symbol: &str, start: Timestamp, end: Timestamp) -> Result<()> {
        self.update(|map| map.add(symbol, start.0, end.0))
    }

    /// Forgets `[start, end)` of `symbol`.
    pub fn remove(&self, symbol: &str, start: Timestamp, end: Timestamp) -> Result<()> {
        self.update(|map| map.remove(symbol, start.0, end.0))
    }

    fn read_file(&self) -> Result<CoverageMap> {
        match fs::read(&self.path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(map) => Ok(map),
                // A damaged record only costs reads from the primary: start afresh.
                Err(error) => {
                    tracing::warn!("ignoring the unreadable cache coverage {}: {error}", self.path.display());
                    Ok(CoverageMap::default())
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(CoverageMap::default()),
            Err(error) => Err(io_error("reading", &self.path, error)),
        }
    }
}

fn io_error(operation: &str, path: &Path, error: std::io::Error) -> StoreError {
    StoreError::internal("cache-coverage", format!("{operation} {}: {error}", path.display()))
}

fn internal(what: &str) -> StoreError {
    StoreError::internal("cache-coverage", what.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn add_merges_and_split_marks_gaps() {
        let mut map = CoverageMap::default();
        map.add("A", 10, 20);
        map.add("A", 30, 40);
        map.add("A", 20, 25);
        assert_eq!(map.symbols["A"], vec![(10, 25), (30, 40)]);
        assert_eq!(
            map.split("A", 0, 50),
            vec![((0, 10), false), ((10, 25), true), ((25, 30), false), ((30, 40), true), ((40, 50), false)]
        );
        assert!(map.covers("A", 12, 25));
        assert!(!map.covers("A", 12, 26));
        assert!(!map.covers("B", 0, 1));
        assert_eq!(map.split("A", 32, 35), vec![((32, 35), true)]);
    }

    #[test]
    fn remove_cuts_holes() {
        let mut map = CoverageMap::default();
        map.add("A", 0, 100);
        map.remove("A", 40, 60);
        assert_eq!(map.symbols["A"], vec![(0, 40), (60, 100)]);
        map.remove("A", 0, 100);
        assert!(!map.symbols.contains_key("A"));
    }

    #[test]
    fn the_file_is_shared_between_handles() {
        let dir = tempfile::tempdir().unwrap();
        let one = Coverage::open(dir.path()).unwrap();
        let two = Coverage::open(dir.path()).unwrap();
        one.add("A", Timestamp(0), Timestamp(10)).unwrap();
        assert!(two.current().unwrap().covers("A", 0, 10));
        two.remove("A", Timestamp(5), Timestamp(10)).unwrap();
        assert!(!one.current().unwrap().covers("A", 0, 10));
        assert!(one.current().unwrap().covers("A", 0, 5));
    }
}
