//! Real disk faults under `strata ingest`, and what the user is told: a file
//! size limit (`ulimit -f`, which applies to root too, unlike permissions) is
//! an "unavailable" resource with a remedy, never a write-write "conflict";
//! the `--lock-wait` hint appears only for a file another process holds, and
//! `--lock-wait N` waits N seconds.

#![cfg(feature = "duckdb")]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{run, strata_in};

/// `strata` under a shell that limits files it writes to `kib` KiB and
/// ignores SIGXFSZ, so a write past the limit fails with EFBIG instead of
/// killing the process.
fn strata_with_file_limit(directory: &std::path::Path, kib: u64, arguments: &[&str]) -> common::Run {
    let mut shell = Command::new("bash");
    shell.current_dir(directory).arg("-c").arg(format!("ulimit -f {kib}; trap '' XFSZ; exec \"$0\" \"$@\""));
    shell.arg(common::executable()).args(arguments);
    for variable in common::STORAGE_VARIABLES {
        shell.env_remove(variable);
    }
    shell.env("RUST_LOG", "warn");
    run(&mut shell)
}

#[test]
fn a_file_size_limit_is_a_resource_error_with_a_remedy_not_a_conflict() {
    let directory = tempfile::tempdir().unwrap();
    let outcome = strata_with_file_limit(
        directory.path(),
        2048,
        &["--duckdb-path", "limited.duckdb", "generate", "--ingest", "--symbols", "4", "--bars", "400000"],
    );
    assert_ne!(outcome.code, Some(0), "a 2 MiB limit cannot hold 1.6 million bars:\n{}", outcome.stderr);
    let stderr = outcome.stderr.to_lowercase();
    assert!(stderr.contains("file size limit"), "names the cause:\n{}", outcome.stderr);
    assert!(!stderr.contains("conflict"), "a full disk is not a write-write conflict:\n{}", outcome.stderr);
    assert!(!stderr.contains("--lock-wait"), "the lock hint is for locks only:\n{}", outcome.stderr);
    assert!(!stderr.contains("panicked"), "{}", outcome.stderr);
}

#[test]
fn lock_wait_waits_the_seconds_given_and_the_hint_is_shown_for_a_lock_only() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("held.duckdb");
    let path_arg = path.to_str().unwrap();
    strata_in(
        directory.path(),
        &[],
        &["--duckdb-path", path_arg, "generate", "--ingest", "--symbols", "1", "--bars", "100"],
    )
    .success();
    // Another program holds the file (as the duckdb shell or a notebook
    // would): an exclusive POSIX record lock, which is what DuckDB takes. A
    // strata process holding it would serve it instead (tests/held_file.rs).
    let mut holder = std::process::Command::new("python3")
        .args(["-c", "import fcntl, sys, time\nf = open(sys.argv[1], 'r+b')\nfcntl.lockf(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(120)", path_arg])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "held", "the holder took the lock");

    let refused = strata_in(directory.path(), &[], &["--duckdb-path", path_arg, "summary"]);
    assert_ne!(refused.code, Some(0));
    assert!(refused.stderr.contains("--lock-wait"), "a lock gets the hint:\n{}", refused.stderr);

    let started = Instant::now();
    let waited = strata_in(directory.path(), &[], &["--duckdb-path", path_arg, "--lock-wait", "2", "summary"]);
    let elapsed = started.elapsed();
    assert_ne!(waited.code, Some(0));
    assert!(elapsed >= Duration::from_secs(2), "--lock-wait 2 waits two seconds, waited {elapsed:?}");
    assert!(waited.stderr.contains("after waiting 2"), "says how long it waited:\n{}", waited.stderr);
    assert!(!waited.stderr.contains("--lock-wait SECONDS"), "no hint once the user waited:\n{}", waited.stderr);

    holder.kill().unwrap();
    holder.wait().unwrap();
}
