//! The durable write journal on real temporary directories: round trips,
//! order, concurrent appenders, crash leftovers, corruption, parking and locks.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use strata_core::{Bar, BarBatch, StoreError, TimeRange, Timestamp};
use strata_hybrid::journal::{self, CorruptEntry, Journal, JournalOp, JournalStats, STALE_STAGING};
use strata_tests::fixtures::{self, BASE, MINUTE};

fn write_op(symbol: &str, count: usize) -> JournalOp {
    JournalOp::Write(fixtures::batch(&fixtures::series(symbol, BASE, MINUTE, count)))
}

fn delete_op(symbol: &str) -> JournalOp {
    JournalOp::Delete {
        symbol: fixtures::symbol(symbol),
        range: TimeRange::new(BASE, BASE.plus_micros(MINUTE)).unwrap(),
    }
}

fn entry_file(journal: &Journal, seq: u64) -> PathBuf {
    journal.dir().join("entries").join(format!("{seq:020}.entry"))
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir).unwrap().map(|item| item.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn an_entry_reads_back_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("journal")).unwrap();
    let mut bars = fixtures::series("AAPL", BASE, MINUTE, 3);
    bars[0].close = 0.1 + 0.2;
    bars[0].vwap = Some(f64::from_bits(0x3FF0_0000_0000_0001));
    bars[1].vwap = None;
    bars[1].trade_count = None;
    bars[2].volume = 0.0;
    let before = Timestamp::now().micros();
    let seq = journal.append(&JournalOp::Write(BarBatch::from_bars(&bars))).unwrap();
    let entry = journal.read(seq).unwrap();
    assert_eq!(entry.seq, seq);
    assert!((before..=Timestamp::now().micros()).contains(&entry.appended_at_micros));
    let JournalOp::Write(batch) = entry.op else { panic!("a write reads back as a write: {:?}", entry.op) };
    let read: Vec<Bar> = batch.to_bars();
    fixtures::assert_same_bars(&read, &bars, "journal round trip");
    assert_eq!((read[1].vwap, read[1].trade_count), (None, None));

    let seq = journal.append(&delete_op("MSFT")).unwrap();
    assert_eq!(journal.read(seq).unwrap().op, delete_op("MSFT"));
    let everything = JournalOp::Delete { symbol: fixtures::symbol("MSFT"), range: TimeRange::all() };
    let seq = journal.append(&everything).unwrap();
    assert_eq!(journal.read(seq).unwrap().op, everything);
    let seq = journal.append(&JournalOp::Write(BarBatch::empty())).unwrap();
    assert_eq!(journal.read(seq).unwrap().op, JournalOp::Write(BarBatch::empty()));
}

#[test]
fn entries_keep_their_order_across_many_appends_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    assert!(journal.is_empty().unwrap());
    let mut appended = Vec::new();
    for index in 0..120 {
        let op = if index % 7 == 3 { delete_op("AAPL") } else { write_op("AAPL", 1 + index % 5) };
        appended.push((journal.append(&op).unwrap(), op));
    }
    assert!(appended.windows(2).all(|pair| pair[0].0 < pair[1].0), "numbers rise with every append");
    let reopened = Journal::open(dir.path()).unwrap();
    let pending = reopened.pending().unwrap();
    assert_eq!(pending, appended.iter().map(|(seq, _)| *seq).collect::<Vec<_>>());
    for (seq, op) in &appended {
        assert_eq!(&reopened.read(*seq).unwrap().op, op, "entry {seq}");
    }
    assert!(!reopened.is_empty().unwrap());
}

#[test]
fn numbers_are_never_reused_while_anything_is_pending_or_parked_or_was_seen() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let first = journal.append(&write_op("A", 1)).unwrap();
    let second = journal.append(&write_op("A", 1)).unwrap();
    journal.remove(second).unwrap();
    let third = journal.append(&write_op("A", 1)).unwrap();
    assert!(third > second, "this handle removed {second}, so it never hands it out again: got {third}");
    journal.park(third, "refused").unwrap();
    journal.remove(first).unwrap();
    let other = Journal::open(dir.path()).unwrap();
    let fourth = other.append(&write_op("A", 1)).unwrap();
    assert!(fourth > third, "a parked entry's number stays taken for a fresh handle: got {fourth}");
}

#[test]
fn two_handles_appending_from_threads_lose_and_overwrite_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let handles = [Journal::open(dir.path()).unwrap(), Journal::open(dir.path()).unwrap()];
    let (threads, per_thread) = (8usize, 25usize);
    let appended: Vec<Vec<(u64, String)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let journal = handles[thread % 2].clone();
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for index in 0..per_thread {
                        let symbol = format!("T{thread}I{index}");
                        let seq = journal.append(&write_op(&symbol, 1 + index % 3)).unwrap();
                        mine.push((seq, symbol));
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().map(|worker| worker.join().unwrap()).collect()
    });
    for mine in &appended {
        assert!(mine.windows(2).all(|pair| pair[0].0 < pair[1].0), "one thread's appends keep its order");
    }
    let all: Vec<(u64, String)> = appended.into_iter().flatten().collect();
    let numbers: BTreeSet<u64> = all.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(numbers.len(), threads * per_thread, "every append got its own number");
    assert_eq!(handles[0].pending().unwrap(), numbers.iter().copied().collect::<Vec<_>>());
    for (seq, symbol) in &all {
        let JournalOp::Write(batch) = handles[1].read(*seq).unwrap().op else { panic!("entry {seq} is a write") };
        assert_eq!(batch.to_bars()[0].symbol, *symbol, "entry {seq} holds the batch appended under it");
    }
    assert!(names(&dir.path().join("staging")).is_empty(), "no staging file is left behind");
}

#[test]
fn a_staging_file_left_by_a_crash_is_ignored_and_cleaned_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let seq = journal.append(&write_op("AAPL", 2)).unwrap();
    // A crash after writing the staged copy of an entry, before publishing it:
    // a whole entry and a torn one.
    let staging = dir.path().join("staging");
    let whole = staging.join("entry-1-1-0.tmp");
    fs::copy(entry_file(&journal, seq), &whole).unwrap();
    let torn = staging.join("entry-1-1-1.tmp");
    fs::write(&torn, b"STRJRNL\n torn").unwrap();
    let fresh = staging.join("entry-2-2-2.tmp");
    fs::write(&fresh, b"an append of another process, in progress").unwrap();
    let long_ago = SystemTime::now() - STALE_STAGING * 2;
    for path in [&whole, &torn] {
        fs::File::options().write(true).open(path).unwrap().set_modified(long_ago).unwrap();
    }
    assert_eq!(journal.pending().unwrap(), vec![seq], "staging files are never entries");
    let reopened = Journal::open(dir.path()).unwrap();
    assert_eq!(reopened.pending().unwrap(), vec![seq]);
    assert_eq!(names(&staging), BTreeSet::from(["entry-2-2-2.tmp".to_string()]), "only the stale ones go");
    let next = reopened.append(&write_op("AAPL", 1)).unwrap();
    assert_eq!(reopened.pending().unwrap(), vec![seq, next]);
}

#[test]
fn a_flipped_byte_anywhere_in_an_entry_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    for op in [delete_op("AAPL"), write_op("AAPL", 3)] {
        let seq = journal.append(&op).unwrap();
        let path = entry_file(&journal, seq);
        let original = fs::read(&path).unwrap();
        let step = if original.len() > 400 { 7 } else { 1 };
        for position in (0..original.len()).step_by(step) {
            let mut damaged = original.clone();
            damaged[position] ^= 0x10;
            fs::write(&path, &damaged).unwrap();
            let error = journal.read(seq).unwrap_err();
            assert!(journal::is_corrupt(&error), "byte {position} of {}: {error:?}", original.len());
            assert_eq!(CorruptEntry::of(&error).map(|corrupt| corrupt.seq), Some(seq));
            assert!(error.to_string().contains(&path.display().to_string()), "{error}");
        }
        fs::write(&path, &original[..original.len() - 1]).unwrap();
        assert!(journal::is_corrupt(&journal.read(seq).unwrap_err()), "a truncated entry is corrupt");
        fs::write(&path, b"").unwrap();
        assert!(journal::is_corrupt(&journal.read(seq).unwrap_err()), "an empty entry is corrupt");
        fs::write(&path, &original).unwrap();
        assert_eq!(journal.read(seq).unwrap().op, op);
    }
    let missing = journal.read(999).unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing:?}");
    assert!(!journal::is_corrupt(&missing), "a missing entry is not a reason to park");
}

#[test]
fn parked_entries_leave_the_queue_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    assert_eq!(journal.stats().unwrap(), JournalStats::default());
    let before = Timestamp::now().micros();
    let first = journal.append(&write_op("AAPL", 4)).unwrap();
    let second = journal.append(&delete_op("AAPL")).unwrap();
    let third = journal.append(&write_op("MSFT", 2)).unwrap();
    let stats = journal.stats().unwrap();
    assert_eq!((stats.depth, stats.rows, stats.parked), (3, 6, 0));
    let oldest = journal.read(first).unwrap().appended_at_micros;
    assert_eq!(stats.oldest_micros, Some(oldest));
    assert!(oldest >= before);

    journal.park(first, "invalid input: row 2 has high < low").unwrap();
    journal.park(first, "a second reason").unwrap();
    // A corrupt entry parks too; its header is unreadable, so it counts no rows.
    fs::write(entry_file(&journal, third), b"garbage").unwrap();
    journal.park(third, "unreadable journal entry").unwrap();
    assert_eq!(journal.pending().unwrap(), vec![second]);
    let parked = journal.parked().unwrap();
    assert_eq!(
        parked.iter().map(|p| (p.seq, p.reason.as_str(), p.rows)).collect::<Vec<_>>(),
        vec![(first, "invalid input: row 2 has high < low", 4), (third, "unreadable journal entry", 0)]
    );
    assert!(parked.iter().all(|p| p.parked_at_micros >= oldest));
    let stats = journal.stats().unwrap();
    assert_eq!((stats.depth, stats.rows, stats.parked), (1, 0, 2));
    assert!(matches!(journal.read(first), Err(StoreError::NotFound { .. })), "a parked entry is not pending");
    assert!(matches!(journal.park(999, "x"), Err(StoreError::NotFound { .. })));
    let reopened = Journal::open(dir.path()).unwrap();
    assert_eq!(reopened.parked().unwrap(), parked, "parking is durable");
}

#[test]
fn removing_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let seq = journal.append(&write_op("AAPL", 1)).unwrap();
    journal.remove(seq).unwrap();
    journal.remove(seq).unwrap();
    journal.remove(12345).unwrap();
    assert!(journal.is_empty().unwrap());
    assert!(journal.pending().unwrap().is_empty());
    assert_eq!(journal.stats().unwrap().depth, 0);
}

#[test]
fn an_exclusive_lock_excludes_shared_and_exclusive_holders_of_other_handles() {
    let dir = tempfile::tempdir().unwrap();
    let (replayer, writer) = (Journal::open(dir.path()).unwrap(), Journal::open(dir.path()).unwrap());
    let shared = writer.lock_shared().unwrap();
    let another_shared = replayer.lock_shared().unwrap();
    assert!(replayer.try_lock_exclusive().unwrap().is_none(), "shared holders keep the replayer out");
    drop((shared, another_shared));
    let exclusive = replayer.try_lock_exclusive().unwrap().unwrap();
    assert!(writer.try_lock_exclusive().unwrap().is_none(), "one exclusive holder at a time");
    assert!(replayer.try_lock_exclusive().unwrap().is_none(), "even for the same handle: each lock is its own file");
    let (sender, receiver) = std::sync::mpsc::channel();
    let waiting = std::thread::spawn(move || {
        let lock = writer.lock_shared().unwrap();
        sender.send(()).unwrap();
        drop(lock);
    });
    assert!(
        receiver.recv_timeout(std::time::Duration::from_millis(200)).is_err(),
        "a shared lock waits for the exclusive holder"
    );
    drop(exclusive);
    receiver.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    waiting.join().unwrap();
    let blocking = replayer.lock_exclusive().unwrap();
    drop(blocking);
}

#[test]
fn open_creates_missing_parents() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("state").join("hybrid").join("journal");
    let journal = Journal::open(&deep).unwrap();
    assert_eq!(journal.dir(), deep);
    for sub in ["entries", "staging", "parked", "journal.lock"] {
        assert!(deep.join(sub).exists(), "{sub}");
    }
}

#[test]
fn an_unwritable_journal_says_where_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    fs::write(&file, b"x").unwrap();
    let error = Journal::open(&file.join("journal")).unwrap_err();
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    assert_eq!(error.backend(), Some("journal"));
    assert!(error.to_string().contains("not-a-directory"), "{error}");
    assert!(error.to_string().contains("in the way"), "{error}");
}
