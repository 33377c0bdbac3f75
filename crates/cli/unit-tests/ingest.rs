//! Unit tests of `src/ingest.rs` (kept out of `src/`, which holds the commands, their
//! output and the composition root).

use std::path::PathBuf;

use strata_formats::inputs::{InputFile, Tally};
use strata_formats::{BarFileFormat, ReadOptions, SuspectedSplit};

use super::*;

#[test]
fn split_notes_give_advice_and_are_capped() {
    let suspected = SuspectedSplit {
        symbol: "AAPL".into(),
        timestamp: "2005-02-28".parse().unwrap(),
        ratio: 44.68 / 88.99,
        split: strata_formats::splits::SplitRatio { new: 2, old: 1 },
    };
    assert_eq!(
        split_notes(std::slice::from_ref(&suspected), false),
        vec![
            "AAPL 2005-02-28 opens at 0.50x the previous close: an unadjusted 2:1 split? use --adjust with a \
             file that has an adjusted close"
                .to_string()
        ]
    );
    assert!(split_notes(std::slice::from_ref(&suspected), true)[0].ends_with("does not remove it; check the data"));
    let many = split_notes(&vec![suspected; SHOWN_SPLITS + 3], false);
    assert_eq!(many.len(), SHOWN_SPLITS + 1);
    assert_eq!(many[SHOWN_SPLITS], "... and 3 more overnight moves that look like unadjusted splits");
}

#[test]
fn the_report_shows_fifty_problems_and_counts_the_rest() {
    let mut text = String::from("symbol,timestamp,open,high,low,close,volume,note\n");
    for day in 1..=28 {
        text.push_str(&format!("A,2020-02-{day:02},x,y,1,1,1,\n"));
    }
    let directory = tempfile::tempdir().unwrap();
    let path: PathBuf = directory.path().join("many.csv");
    std::fs::write(&path, text).unwrap();
    let files = [InputFile { index: 0, path, format: BarFileFormat::Csv, dataset: None }];
    let mut tally = Tally::new(&files, SHOWN_PROBLEMS);
    let options = ReadOptions { chunk_rows: 10, ..ReadOptions::default() };
    for chunk in files[0].read(&options).unwrap() {
        tally.check(&chunk);
    }
    let report = problem_report(&tally);
    assert!(report.starts_with("28 of 28 rows are invalid (56 problems); nothing was written"), "{report}");
    assert_eq!(report.lines().count(), 1 + SHOWN_PROBLEMS + 1, "{report}");
    assert!(report.ends_with("\n  ... and 6 more"), "{report}");
    assert!(report.contains("many.csv:26: column high: \"y\" is not a number"), "{report}");
    assert_eq!(tally.notes.len(), 1);
    assert!(tally.notes[0].ends_with("many.csv: ignoring column \"note\""), "{}", tally.notes[0]);
}

#[test]
fn chunks_are_kept_for_the_write_until_they_outgrow_the_budget() {
    let mut text = String::from("symbol,timestamp,open,high,low,close,volume\n");
    for day in 1..=28 {
        text.push_str(&format!("A,2020-02-{day:02},1,2,1,1.5,100\n"));
    }
    let directory = tempfile::tempdir().unwrap();
    let path: PathBuf = directory.path().join("bars.csv");
    std::fs::write(&path, text).unwrap();
    let files = [InputFile { index: 0, path, format: BarFileFormat::Csv, dataset: None }];
    let options = ReadOptions { chunk_rows: 10, ..ReadOptions::default() };
    let mut kept = KeptChunks::new(&files);
    for chunk in files[0].read(&options).unwrap() {
        kept.keep(chunk);
    }
    let batches = kept.into_batches().expect("28 rows fit");
    let rows: Vec<usize> = batches.iter().map(|(batch, _)| batch.len()).collect();
    assert_eq!(rows, [10, 10, 8], "every chunk, in order");
    assert!(batches[1].1.ends_with("bars.csv:12"), "each batch says where it starts: {}", batches[1].1);

    let mut small = KeptChunks::with_budget(&files, 1);
    for chunk in files[0].read(&options).unwrap() {
        small.keep(chunk);
    }
    assert!(small.into_batches().is_none(), "over the budget, the write reads the files again");
}
