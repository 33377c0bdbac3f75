//! Fuzzing the `strata` binary's command line (issue 16, item 1): every
//! argument that is parsed, the environment variables the binary reads, and
//! the store URLs of `copy` and `verify`, each vector run as a real process.
//!
//! The command tree comes from the binary itself: `strata -h`, then `strata
//! CMD -h` for every command listed, recursively (`runs`, `neon`, `neon
//! branch`, ...), read for subcommands, flags, value names, `[possible
//! values: ...]` and `[env: ...]`. A new command or flag is fuzzed without
//! touching this file. Each vector is built by a seeded PRNG from value pools
//! picked by value name (TIME, SECONDS, N, SYMBOL, FILE, store URLs, ...):
//! valid values and invalid ones (empty, 100,000 characters, non-UTF-8 bytes,
//! control characters, overflowing numbers, NaN, `1e309`, `2020-02-30`,
//! `+275760-09-13`, offsets, paths that are missing, directories or
//! `/dev/null`, bad schemes and ports), plus repeated and unknown flags, `--`,
//! stray positionals, shuffled tokens, and 0-3 environment variables set to
//! such values. Four kinds of case: one per command first (so every command
//! is run), then random commands, `ingest` of small CSV and Parquet files with
//! one bad row, and one environment variable alone on a command that is
//! otherwise valid.
//!
//! Each runs in its own directory (a copy of a small DuckDB store, the input
//! files), with no storage variable inherited, `DATABASE_URL` unset (a
//! PostgreSQL URL, when one is fuzzed, points at 127.0.0.1 port 1, where
//! nothing listens) and the `neon` commands pointed at a `strata neon
//! fake-server` this test starts. Each run must:
//! - not panic: no exit code 101, no "panicked at" or "RUST_BACKTRACE" on
//!   stderr, no death by a signal, and no hang (killed after 20 s);
//! - on exit code 2 (invalid input), name what was wrong: a flag, an argument
//!   or a value given (quoted or as a word; clap's usage line does not
//!   count), an option or argument of the command, or a setting by its
//!   variable; for a variable alone, a variable by name;
//! - on exit code 2, leave no new file of data behind (a store's directories,
//!   locks and bookkeeping may appear when it is opened; a store the command
//!   said it created may stay), and after a command that writes (`ingest`,
//!   `generate`, `evolve`, `runs`, `copy`, ...) leave the store's summary and
//!   its GA runs as they were ("never writes part of a rejected input"); no
//!   run leaves a `*.partial` file;
//! - for `ingest` of a bad row with otherwise valid arguments: exit 2 naming
//!   FILE:LINE (FILE:row N for Parquet) and "nothing was written".
//!
//! Not run to completion: `serve`, `worker` and `neon fake-server` run until
//! stopped, and so does `evolve --workers 0` (it waits for `strata worker`
//! processes), so they get 3 s: one that exits by then is checked like any
//! other; one still running has passed parsing and validation and is killed.
//! `evolve` gets `--generations 1 --population 4` unless the vector sets them
//! (at its default size it takes 7 s, twice that beside other runs). Values
//! that would make a valid command run long or hog the machine are
//! left out of the pools: `generate --bars` in the millions (`--bars
//! 4000000000 --interval 1s` is a valid 4-billion-row request),
//! `--population`/`--generations` near their maxima, `--workers`,
//! `--duckdb-threads` and `--batch` in the billions (threads and tasks),
//! PostgreSQL URLs other than port 1 of a loopback address, Neon API URLs
//! other than the fake's (a refused connection is retried for seconds), and
//! absolute paths an output could land on (only `/dev/null`, `/dev/stdin`
//! and `/proc/version` as inputs, a symlink to `/dev/null` elsewhere).
//!
//! By default 300 vectors run (about 350 processes with the help pages,
//! the setup and the store checks), 4 at a time: 20-30 s on 2 cores. Longer:
//! `STRATA_FUZZ_CASES=3000 cargo test --workspace --test fuzz_args -- --nocapture`.
//! `STRATA_FUZZ_SEED=N` replays a run (the seed is printed first),
//! `STRATA_FUZZ_THREADS=N` sets the parallelism.
//!
//! A failing vector is shrunk (arguments and variables dropped while the
//! failure persists), printed, and written to
//! `$CARGO_TARGET_TMPDIR/fuzz_args-failures/`; copy it to
//! `tests/corpus/args/NAME.txt`, where every file is replayed first on every
//! run. Corpus format, one argument per line:
//! - `# ...` is a comment; blank lines are skipped;
//! - `@env NAME=VALUE` sets a variable, `@unset NAME` removes one;
//! - `@expect-exit N`, `@expect-output TEXT` (must appear on stdout or
//!   stderr) and `@expect-names NAME...` (on exit 2, one of these or another
//!   variable must be named, instead of the usual candidates) are extra checks;
//! - a line starting with `\` is escaped: `\\` is a backslash, `\xHH` any byte
//!   (non-UTF-8 too), `\n`, `\t`; `\` alone is the empty argument; every other
//!   line is one argument, verbatim;
//! - `{case}` is replaced by the run's directory, `{neon}`, `{neon_key}` and
//!   `{neon_project}` by the fake Neon API's URL, key and project.

#![cfg(feature = "duckdb")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Vectors generated by default (the corpus and the help pages come on top).
const DEFAULT_CASES: usize = 300;
/// Processes run at once by default.
const DEFAULT_THREADS: usize = 4;
/// A process still running after this long hangs.
const TIMEOUT: Duration = Duration::from_secs(20);
/// How long a command that runs until stopped is given.
const DAEMON_WINDOW: Duration = Duration::from_secs(3);
/// The commands that run until stopped.
const DAEMONS: [&str; 3] = ["serve", "worker", "fake-server"];
/// Bytes of stdout and stderr kept per run.
const KEPT_OUTPUT: usize = 1 << 20;
/// Failures shrunk and written out per run (the first of each kind and command).
const SHRUNK_FAILURES: usize = 4;
/// Runs one failure may take to shrink.
const SHRINK_RUNS: usize = 40;

/// Variables the binary reads that `common::STORAGE_VARIABLES` does not list:
/// removed from every run (with every `[env: ...]` of the help pages).
const MORE_VARIABLES: &[&str] = &[
    "STRATA_EFS_ROOT",
    "STRATA_DUCKDB_LOCK_WAIT",
    "STRATA_DUCKDB_THREADS",
    "STRATA_PG_MAX_CONNECTIONS",
    "STRATA_PG_STATEMENT_TIMEOUT",
    "STRATA_PG_RETRY_BUDGET",
    "STRATA_PG_MIGRATE",
    "STRATA_PG_PARTITION",
    "STRATA_PG_CHUNK_INTERVAL",
    "STRATA_PG_TIMESCALEDB",
    "STRATA_API_TOKEN",
    "STRATA_LISTEN",
    "STRATA_METRICS_LISTEN",
    "STRATA_FAKE_NEON_POSTGRES",
    "NEON_API_KEY",
    "NEON_PROJECT_ID",
    "NEON_API_BASE_URL",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "COLUMNS",
];

/// Variables read with `std::env::var` rather than through a flag, fuzzed too.
const EXTRA_VARIABLES: &[(&str, Role)] = &[
    ("DATABASE_URL", Role::DbUrl),
    ("NEON_DATABASE_URL", Role::DbUrl),
    ("STRATA_PG_POOLER", Role::Bool),
    ("STRATA_API_TOKEN", Role::Token),
    ("RUST_LOG", Role::LogFilter),
    ("HOSTNAME", Role::Name),
];

/// A dead PostgreSQL: nothing listens on port 1, and a refused loopback port fails at once.
const DEAD_POSTGRES: &str = "postgres://strata:fuzzpw@127.0.0.1:1/strata";

/// Command lines that succeed against the case's store, for the variable-alone cases.
const VALID_COMMANDS: &[&[&str]] = &[
    &["summary", "--json"],
    &["health"],
    &["digest", "SYN000"],
    &["query", "SYN000", "--limit", "2", "--format", "csv"],
    &["runs", "list"],
    &["ingest", "good.csv"],
    &["generate", "--symbols", "1", "--bars", "3", "--ingest"],
];

// ------------------------------------------------------------------ random

/// SplitMix64: small, seedable, good enough to pick test inputs.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True `percent` times in 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn pick_ref<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ------------------------------------------------------------ command tree

/// One option of a help page.
#[derive(Debug, Clone)]
struct Flag {
    long: String,
    short: Option<String>,
    /// The value name (`N` of `--limit <N>`), `None` for a switch.
    value: Option<String>,
    /// Takes several values (`<SYMBOL>...`).
    many: bool,
    choices: Vec<String>,
    env: Option<String>,
    /// `[default: X]`.
    default: Option<String>,
}

/// One positional argument of a help page.
#[derive(Debug, Clone)]
struct Positional {
    name: String,
    required: bool,
    many: bool,
}

/// A command of the tree: its path (`["neon", "branch", "create"]`) and what its help lists.
#[derive(Debug, Clone)]
struct Spec {
    path: Vec<String>,
    flags: Vec<Flag>,
    positionals: Vec<Positional>,
    children: Vec<String>,
    /// The options of the usage line (`--symbols` of `strata generate --symbols <N> ...`): required ones.
    required: Vec<String>,
}

/// Reads one help page (`-h`, unwrapped): commands, positionals and options.
fn parse_help(path: Vec<String>, text: &str) -> Spec {
    #[derive(PartialEq)]
    enum Section {
        Other,
        Commands,
        Arguments,
        Options,
    }
    let mut spec =
        Spec { path, flags: Vec::new(), positionals: Vec::new(), children: Vec::new(), required: Vec::new() };
    let mut section = Section::Other;
    for line in text.lines() {
        if let Some(usage) = line.strip_prefix("Usage: ") {
            for word in usage.split(|c: char| c.is_whitespace() || c == '<' || c == '|') {
                if word.starts_with("--") {
                    spec.required.push(word.to_string());
                }
            }
        }
        if !line.is_empty() && !line.starts_with(' ') {
            section = match line {
                "Commands:" => Section::Commands,
                "Arguments:" => Section::Arguments,
                heading if heading.ends_with(':') && heading.to_ascii_lowercase().contains("options") => {
                    Section::Options
                }
                _ => Section::Other,
            };
            continue;
        }
        match section {
            Section::Commands => {
                let Some(rest) = line.strip_prefix("  ") else { continue };
                let name: String =
                    rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
                if !name.is_empty() && !rest.starts_with(' ') && name != "help" {
                    spec.children.push(name);
                }
            }
            Section::Arguments => {
                let Some(rest) = line.strip_prefix("  ") else { continue };
                let (required, close) = match rest.chars().next() {
                    Some('<') => (true, '>'),
                    Some('[') => (false, ']'),
                    _ => continue,
                };
                let Some(end) = rest.find(close) else { continue };
                let name = rest[1..end].to_string();
                let many = rest[end + 1..].starts_with("...");
                spec.positionals.push(Positional { name, required, many });
            }
            Section::Options => {
                if let Some(flag) = parse_flag(line) {
                    spec.flags.push(flag);
                }
            }
            Section::Other => {}
        }
    }
    spec
}

/// `  -o, --output <FILE>  Write ... [env: X=] [possible values: a, b]` or `      --json  ...`.
fn parse_flag(line: &str) -> Option<Flag> {
    let (short, rest) = if line.starts_with("  -") && !line.starts_with("  --") && line.get(4..6) == Some(", ") {
        (Some(line.get(2..4)?.to_string()), line.get(6..)?)
    } else {
        (None, line.strip_prefix("      ")?)
    };
    let name = rest.strip_prefix("--")?;
    let length = name.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).unwrap_or(name.len());
    if length == 0 {
        return None;
    }
    let long = format!("--{}", &name[..length]);
    let after = &name[length..];
    let after = after.strip_prefix(' ').or_else(|| after.strip_prefix('=')).unwrap_or(after);
    let after = after.strip_prefix('[').unwrap_or(after);
    let (value, many) = match after.strip_prefix('<') {
        Some(inside) => {
            let end = inside.find('>')?;
            (Some(inside[..end].to_string()), inside[end + 1..].trim_start_matches(']').starts_with("..."))
        }
        None => (None, false),
    };
    let choices = bracketed(line, "[possible values: ")
        .map(|list| list.split(", ").map(str::to_string).collect())
        .unwrap_or_default();
    let env = bracketed(line, "[env: ").map(|text| text.split('=').next().unwrap_or_default().to_string());
    let default = bracketed(line, "[default: ").map(str::to_string);
    Some(Flag { long, short, value, many, choices, env, default })
}

/// The text between `opening` and the next `]`.
fn bracketed<'a>(line: &'a str, opening: &str) -> Option<&'a str> {
    let start = line.find(opening)? + opening.len();
    let end = line[start..].find(']')? + start;
    Some(&line[start..end])
}

/// `strata PATH -h`, which must succeed.
fn help(directory: &Path, path: &[String]) -> String {
    let output = common::command(&[])
        .current_dir(directory)
        .env("COLUMNS", "10000")
        .args(path)
        .arg("-h")
        .output()
        .expect("the strata binary runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "strata {} -h failed:\n{text}{}",
        path.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// Every command, from `strata -h` down, groups included.
fn command_tree(directory: &Path) -> Vec<Spec> {
    let mut tree = Vec::new();
    let mut pending = vec![Vec::new()];
    while let Some(path) = pending.pop() {
        let spec = parse_help(path.clone(), &help(directory, &path));
        for child in &spec.children {
            let mut next = path.clone();
            next.push(child.clone());
            pending.push(next);
        }
        tree.push(spec);
    }
    tree.sort_by(|a, b| a.path.cmp(&b.path));
    tree
}

/// The command an argument vector runs: command names followed down the tree.
fn command_of(args: &[OsString], tree: &[Spec]) -> Vec<String> {
    command_words(args, tree).into_iter().map(|(_, word)| word).collect()
}

/// The arguments that name the command, with their positions.
fn command_words(args: &[OsString], tree: &[Spec]) -> Vec<(usize, String)> {
    let mut words: Vec<(usize, String)> = Vec::new();
    for (position, arg) in args.iter().enumerate() {
        let Some(text) = arg.to_str() else { continue };
        let path: Vec<String> = words.iter().map(|(_, word)| word.clone()).collect();
        let Some(spec) = tree.iter().find(|spec| spec.path == path) else { break };
        if spec.children.iter().any(|child| child == text) {
            words.push((position, text.to_string()));
        }
    }
    words
}

/// True when any argument names a command that runs until stopped (on the safe side), or asks for no
/// in-process workers (`evolve --workers 0` waits for `strata worker` processes that never come).
fn is_daemon(args: &[OsString]) -> bool {
    let zero = |text: &str| text.parse::<u32>() == Ok(0);
    args.iter().any(|arg| DAEMONS.iter().any(|daemon| arg.as_os_str() == OsStr::new(daemon)))
        || args.windows(2).any(|pair| pair[0] == "--workers" && pair[1].to_str().is_some_and(zero))
        || args.iter().any(|arg| arg.to_str().and_then(|text| text.strip_prefix("--workers=")).is_some_and(zero))
}

/// The commands that write to the store (bars or GA runs).
const WRITERS: [&str; 10] =
    ["ingest", "generate", "evolve", "runs", "worker", "copy", "verify", "migrate", "sync", "compact"];

/// True when the vector may write to the store: a command that writes, anywhere.
fn writes_store(args: &[OsString]) -> bool {
    args.iter().any(|arg| WRITERS.iter().any(|writer| arg.as_os_str() == OsStr::new(writer)))
}

// ------------------------------------------------------------------ values

/// What a value means, which picks its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Time,
    Seconds,
    Number,
    /// A count that must stay small (threads, tasks, generated rows).
    SmallNumber,
    /// `generate --bars`: small, or so large the range check refuses it.
    Bars,
    Float,
    Signed,
    Symbol,
    Input,
    StoreFile,
    Dir,
    Output,
    StoreUrl,
    DbUrl,
    Backend,
    Primary,
    Bool,
    Interval,
    ChunkInterval,
    Partition,
    Addr,
    Port,
    NeonUrl,
    ApiKey,
    NeonProject,
    RunId,
    Name,
    Lsn,
    PgSchema,
    Token,
    LogFilter,
    Choice,
    Text,
}

/// The role of a flag's value: by the flag's name first, then by its value name.
fn role_for(flag: &str, value: &str, has_choices: bool) -> Role {
    let by_flag = match flag {
        "--duckdb-path" => Some(Role::StoreFile),
        "--efs-root" | "--hybrid-state-dir" => Some(Role::Dir),
        "--output" => Some(Role::Output),
        "--backend" => Some(Role::Backend),
        "--hybrid-primary" => Some(Role::Primary),
        "--pg-partition" => Some(Role::Partition),
        "--pg-chunk-interval" => Some(Role::ChunkInterval),
        "--interval" => Some(Role::Interval),
        "--base-url" => Some(Role::NeonUrl),
        "--api-key" => Some(Role::ApiKey),
        "--project" => Some(Role::NeonProject),
        "--postgres" => Some(Role::DbUrl),
        "--lsn" => Some(Role::Lsn),
        "--at" => Some(Role::Time),
        "--min-cu" | "--max-cu" | "--cost-bps" => Some(Role::Float),
        "--suspend-timeout" => Some(Role::Signed),
        "--listen" | "--metrics-listen" => Some(Role::Addr),
        "--port" => Some(Role::Port),
        "--run" | "--resume" | "--run-id" | "--exit-when-done" | "--id" => Some(Role::RunId),
        "--pg-schema" => Some(Role::PgSchema),
        "--bars" => Some(Role::Bars),
        "--workers"
        | "--duckdb-threads"
        | "--batch"
        | "--pg-max-connections"
        | "--operation-ms"
        | "--population"
        | "--generations" => Some(Role::SmallNumber),
        _ => None,
    };
    if let Some(role) = by_flag {
        return role;
    }
    if has_choices {
        return Role::Choice;
    }
    match value {
        "TIME" => Role::Time,
        "SECONDS" => Role::Seconds,
        "SYMBOL" => Role::Symbol,
        "FILE|DIR" => Role::Input,
        "FILE" => Role::Output,
        "DIR" => Role::Dir,
        "A" | "B" => Role::StoreUrl,
        "URL" => Role::DbUrl,
        "BACKEND" => Role::Backend,
        "BOOL" => Role::Bool,
        "INTERVAL" => Role::Interval,
        "ADDR" => Role::Addr,
        "RUN" | "ID" | "RUN_ID" => Role::RunId,
        "CU" | "BPS" => Role::Float,
        "N" | "ROWS" | "DAYS" | "S" | "MS" | "TOP" | "SHOW" => Role::Number,
        "NAME" | "BRANCH" | "OPERATIONS" | "STRATEGY" => Role::Name,
        "KEY" => Role::ApiKey,
        "LSN" => Role::Lsn,
        _ => Role::Text,
    }
}

fn os(text: &str) -> OsString {
    OsString::from(text)
}

/// Values that are wrong almost everywhere; none holds a `/`, so none is a path elsewhere.
fn nasty(rng: &mut Rng) -> OsString {
    match rng.below(10) {
        0 => os(""),
        1 => {
            let unit = rng.pick(&["x", "9", "A", "é", "-"]);
            os(&unit.repeat(100_000 / unit.len()))
        }
        2 => OsString::from_vec(
            rng.pick(&[&b"\xff\xfe"[..], b"AAPL\xc3\x28", b"\x80abc", b"2020-01-01\xff", b"caf\xe9.csv"]).to_vec(),
        ),
        3 => os(rng.pick(&["\x01\x02", "\x1b[31mred\x1b[0m", "a\tb", "\r\n", "\x7f", "line\nbreak", "\u{85}"])),
        4 => os(rng.pick(&["😀", "日本語", "\u{202e}vsc.doog", "\u{feff}AAPL", "Ä", "\u{0301}", "𝟙𝟚𝟛"])),
        5 => os(rng.pick(&[" ", "  ", "\u{a0}", "\t"])),
        6 => os(rng.pick(&["-", "--", "-1", "-x", "--=", "---", "-h", "--json", "--help"])),
        7 => os(rng.pick(&["=", "%00", "%zz", "%2e%2e", "\\", "'", "\"", "${HOME}", "$(id)", "*", "?", "{}", "[]"])),
        8 => os(rng.pick(&["null", "true", "0", "NaN", "-0", "1e309", "{\"a\":1}", "[1,2]", "key=value"])),
        _ => os(rng.pick(&["serve", "help", "ingest", "neon", "runs", "memory:", "duckdb:", "efs:"])),
    }
}

const TIMES: &[&str] = &[
    "2020-01-01",
    "2019-06-01",
    "2019-03-01T00:00:00Z",
    "2019-01-01T09:30:00-05:00",
    "2020-02-30",
    "2021-02-29",
    "2020-02-29",
    "0000-01-01",
    "+275760-09-13",
    "-271821-04-20",
    "-0001-01-01",
    "1899-12-31",
    "1900-01-01",
    "1900-01-01T00:00:00Z",
    "2199-12-31T23:59:59.999999Z",
    "2200-01-01",
    "9999-12-31T23:59:59Z",
    "10000-01-01",
    "2020-01-01T00:00:00+14:00",
    "2020-01-01T00:00:00-23:59",
    "2020-01-01T00:00:00+24:00",
    "2020-01-01T00:00:00+99:99",
    "2020-01-01T25:00:00Z",
    "2020-01-01T23:59:60Z",
    "2016-12-31T23:59:60Z",
    "2020-01-01 00:00:00",
    "2020-01-01T00:00:00",
    "2020-01-01t00:00:00z",
    "2020-13-01",
    "2020-00-10",
    "20200101",
    "1577836800",
    "1e9",
    "now",
    "2020-01-01T00:00:00.123456789012Z",
    "2020-W01-1",
    "2020-001",
    "2020-01-01Z",
    "２０２０-01-01",
    "2020-1-1",
    " 2020-01-01 ",
    "2020-01-01T00:00:00Z[UTC]",
    "T",
];

const SECONDS: &[&str] = &[
    "0",
    "0.5",
    "1",
    "2",
    "30",
    "-1",
    "-0",
    "-0.0",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "1e309",
    "1e-9",
    "5e-324",
    "1e19",
    "18446744073709551615",
    "18446744073709551616",
    "1.7976931348623157e308",
    "9223372036854775807",
    "0x10",
    "1_0",
    " 2 ",
    "1s",
    "P1D",
    "3,5",
];

const SMALL_NUMBERS: &[&str] = &["0", "1", "2", "3", "5", "10"];

const BAD_NUMBERS: &[&str] = &[
    "-1",
    "-0",
    "+1",
    "01",
    " 5",
    "5 ",
    "1.5",
    "1e3",
    "NaN",
    "inf",
    "0x10",
    "1_000",
    "٣",
    "9999999999999999999999999999999999999999",
    "18446744073709551616",
    "-9223372036854775809",
    "x",
    "1,000",
    "",
];

/// The largest values of the integer types: fine where a number is only compared or stored.
const HUGE_NUMBERS: &[&str] = &["4294967295", "4294967296", "9223372036854775807", "18446744073709551615"];

const SYMBOLS: &[&str] = &[
    "SYN000",
    "SYN001",
    "AAPL",
    "^GSPC",
    "BRK.B",
    "A",
    "aapl",
    " AAPL",
    "a b",
    "A/B",
    "A,B",
    "x'; DROP TABLE ohlcv_bars; --",
    "\u{202e}A",
    "Ä",
    "SYN999",
    "-A",
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "^",
    ".",
];

const INPUTS: &[&str] = &[
    "good.csv",
    "good.parquet",
    "bad.csv",
    "bad.parquet",
    "nosym.csv",
    "adj.csv",
    "empty.csv",
    "header.csv",
    "garbage.bin",
    "corrupt.parquet",
    "truncated.parquet",
    "hive",
    "subdir",
    "missing.csv",
    "efs",
    "devnull",
    "/dev/null",
    "/dev/stdin",
    "/proc/version",
    "./good.csv",
    "good.csv/",
    "GOOD.CSV",
    "*.csv",
    "{case}/good.csv",
    "strata.duckdb",
    "notadb.duckdb",
];

const STORE_FILES: &[&str] = &[
    "strata.duckdb",
    "new.duckdb",
    "subdir",
    "subdir/new.duckdb",
    "missing/deep/x.duckdb",
    "good.csv",
    "notadb.duckdb",
    "devnull",
    "empty.csv",
    ".",
    "..",
    "{case}/strata.duckdb",
];

const DIRS: &[&str] =
    &["efs", "subdir", "missing", "good.csv", "devnull", ".", "{case}/efs", "new-state", "missing/deep"];

const OUTPUTS: &[&str] = &[
    "out.csv",
    "out.parquet",
    "out.jsonl",
    "out.json",
    "out",
    "out.txt",
    "out.CSV",
    "subdir",
    "subdir/out.csv",
    "missing/out.csv",
    "good.csv",
    "devnull",
    ".",
    "..",
    "{case}/out.parquet",
];

/// Every PostgreSQL URL names port 1 of a loopback address, or cannot be parsed.
const STORE_URLS: &[&str] = &[
    "memory:",
    "memory:x",
    " memory: ",
    "MEMORY:",
    "duckdb:strata.duckdb",
    "duckdb:",
    "duckdb:new.duckdb",
    "duckdb:subdir",
    "duckdb:good.csv",
    "duckdb:notadb.duckdb",
    "duckdb:devnull",
    "duckdb:missing/x.duckdb",
    "duckdb:{case}/strata.duckdb",
    "DUCKDB:strata.duckdb",
    "efs:efs",
    "efs:",
    "efs:good.csv",
    "efs:missing",
    "efs:subdir",
    "postgres://strata:fuzzpw@127.0.0.1:1/strata",
    "postgresql://127.0.0.1:1/db?schema=fuzz",
    "postgres://127.0.0.1:1/db?schema=",
    "postgres://127.0.0.1:1/db?schema=a;drop",
    "postgres://u:p%zz@127.0.0.1:1/db",
    "postgres://%41@127.0.0.1:1/db",
    "postgres://127.0.0.1:99999/db",
    "postgres://127.0.0.1:-1/db",
    "postgres://127.0.0.1:port/db",
    "postgres://[::1/db",
    "postgres://127.0.0.1:1/db?sslmode=bogus",
    "postgres://127.0.0.1:1/db?connect_timeout=x",
    "postgres://127.0.0.1:1/db?connect_timeout=99999999999999999999",
    "mysql://127.0.0.1:1/db",
    "s3://bucket/x",
    "file:strata.duckdb",
    "http://127.0.0.1:1",
    "strata.duckdb",
    "postgresql:",
];

const DB_URLS: &[&str] = &[
    DEAD_POSTGRES,
    "postgresql://127.0.0.1:1/db?schema=fuzz",
    "postgres://127.0.0.1:99999/db",
    "postgres://u:p%zz@127.0.0.1:1/db",
    "postgres://127.0.0.1:1/db?sslmode=bogus",
    "postgres://127.0.0.1:1/db?connect_timeout=x",
    "garbage",
    "mysql://127.0.0.1:1/db",
];

const BACKENDS: &[&str] = &[
    "duckdb",
    "memory",
    "neon",
    "postgres",
    "pg",
    "efs",
    "hybrid",
    "DuckDB",
    " memory ",
    "mongodb",
    "duck db",
    "duckdb,memory",
    "MEMORY",
];

const PRIMARIES: &[&str] = &["neon", "efs", "EFS", "duckdb", "memory", "s3", "postgres"];
const BOOLS: &[&str] = &["true", "false", "1", "0", "yes", "no", "on", "off", "TRUE", "maybe", "2"];
const INTERVALS: &[&str] = &[
    "1m",
    "5m",
    "1h",
    "1d",
    "30s",
    "60",
    "0",
    "-1m",
    "1x",
    "m",
    "1.5m",
    "9223372036854775807s",
    "106751991167d",
    "1e3s",
    "١m",
    "mm",
    "1ms",
    "0s",
    "86400",
    "  1h",
];
const CHUNK_INTERVALS: &[&str] = &["90d", "7d", "12h", "30min", "3600s", "0d", "36501d", "1y", "2w", "-1d", "1 d"];
const PARTITIONS: &[&str] = &["day", "week", "month", "year", "decade", "DAY"];
const ADDRS: &[&str] = &[
    "127.0.0.1:0",
    "localhost:0",
    "127.0.0.1:99999",
    "127.0.0.1",
    "0.0.0.0:0",
    "999.0.0.1:0",
    ":0",
    "127.0.0.1:-1",
    "127.0.0.1:0:0",
];
const PORTS: &[&str] = &["0", "65536", "-1", "x", "99999999999"];
const NEON_URLS: &[&str] = &[
    "{neon}",
    "{neon}/",
    "{neon}/v2",
    "{neon}?x=%zz",
    "http://127.0.0.1:99999",
    "not a url",
    "ftp://127.0.0.1/",
    "http://[::1",
    "http://",
];
const API_KEYS: &[&str] = &["{neon_key}", "wrong-key", "  ", "Bearer x", "key\nwith newline", "ké"];
const NEON_PROJECTS: &[&str] = &["{neon_project}", "nope", "a/b", "../projects", "%2e%2e", "a?b#c"];
const RUN_IDS: &[&str] = &["fuzzrun", "nope", "a b", "run/1", "RUN", "fuzzrun ", "🙂", "run-0"];
const NAMES: &[&str] = &["fuzz-a", "fuzz-b", "main", "a/b", "-x", "ünï", "br-nope", "production"];
const LSNS: &[&str] = &["0/1A2B3C4", "0/0", "FFFFFFFF/FFFFFFFF", "zz", "0/", "1/2/3"];
const PG_SCHEMAS: &[&str] =
    &["public", "strata_fuzz", "1abc", "a-b", "Robert'); DROP TABLE x;--", "pg_catalog", "ünï", "A"];
const TOKENS: &[&str] = &["short", "0123456789abcdef0123456789abcdef0123456789", "a b c d e f g h i j k l m n o p"];
const LOG_FILTERS: &[&str] = &["trace", "info", "strata=debug", "garbage[", "=", "warn,,,", "off"];
const FLOATS: &[&str] = &["0", "0.25", "1", "2", "5.5", "-1", "-0", "NaN", "inf", "-inf", "1e309", "1e-320", "abc"];
const SIGNED: &[&str] = &[
    "-1",
    "0",
    "300",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "x",
    "1.5",
];
const TEXTS: &[&str] = &["x", "abc", "fuzz", "0", "true", "ma-crossover", "AAPL"];

/// A value for `role`; about one in eight is [`nasty`] instead.
fn value(rng: &mut Rng, role: Role, choices: &[String]) -> OsString {
    if rng.chance(12) {
        return nasty(rng);
    }
    let number = |rng: &mut Rng, huge: bool| {
        let roll = rng.below(10);
        if roll < 5 {
            os(rng.pick(SMALL_NUMBERS))
        } else if roll < 8 || !huge {
            os(rng.pick(BAD_NUMBERS))
        } else {
            os(rng.pick(HUGE_NUMBERS))
        }
    };
    match role {
        Role::Time => os(rng.pick(TIMES)),
        Role::Seconds => os(rng.pick(SECONDS)),
        Role::Number => number(rng, true),
        Role::SmallNumber => number(rng, false),
        Role::Bars => {
            if rng.chance(20) {
                os(rng.pick(&["10000000000", "9223372036854775807", "18446744073709551615"]))
            } else {
                number(rng, false)
            }
        }
        Role::Float => os(rng.pick(FLOATS)),
        Role::Signed => os(rng.pick(SIGNED)),
        Role::Symbol => os(rng.pick(SYMBOLS)),
        Role::Input => {
            if rng.chance(5) {
                OsString::from_vec(b"caf\xe9.csv".to_vec())
            } else {
                os(rng.pick(INPUTS))
            }
        }
        Role::StoreFile => os(rng.pick(STORE_FILES)),
        Role::Dir => os(rng.pick(DIRS)),
        Role::Output => os(rng.pick(OUTPUTS)),
        Role::StoreUrl => os(rng.pick(STORE_URLS)),
        Role::DbUrl => os(rng.pick(DB_URLS)),
        Role::Backend => os(rng.pick(BACKENDS)),
        Role::Primary => os(rng.pick(PRIMARIES)),
        Role::Bool => os(rng.pick(BOOLS)),
        Role::Interval => os(rng.pick(INTERVALS)),
        Role::ChunkInterval => os(rng.pick(CHUNK_INTERVALS)),
        Role::Partition => os(rng.pick(PARTITIONS)),
        Role::Addr => os(rng.pick(ADDRS)),
        Role::Port => os(rng.pick(PORTS)),
        Role::NeonUrl => os(rng.pick(NEON_URLS)),
        Role::ApiKey => os(rng.pick(API_KEYS)),
        Role::NeonProject => os(rng.pick(NEON_PROJECTS)),
        Role::RunId => os(rng.pick(RUN_IDS)),
        Role::Name => os(rng.pick(NAMES)),
        Role::Lsn => os(rng.pick(LSNS)),
        Role::PgSchema => os(rng.pick(PG_SCHEMAS)),
        Role::Token => os(rng.pick(TOKENS)),
        Role::LogFilter => os(rng.pick(LOG_FILTERS)),
        Role::Choice if !choices.is_empty() => {
            let choice = rng.pick_ref(choices).clone();
            match rng.below(8) {
                0 => os(&choice.to_ascii_uppercase()),
                1 => os(&choice[..choice.len().div_ceil(2)]),
                2 => os(&format!("{choice} ")),
                3 => os("bogus"),
                _ => os(&choice),
            }
        }
        Role::Choice | Role::Text => os(rng.pick(TEXTS)),
    }
}

// ------------------------------------------------------------------- cases

/// One argument vector and its environment, with what it must do beyond the common checks.
#[derive(Debug, Clone, Default)]
struct Case {
    /// How it was made (for the report).
    origin: String,
    args: Vec<OsString>,
    /// Variables set (`Some`) or removed (`None`) on top of the clean environment.
    env: Vec<(String, Option<OsString>)>,
    expect_exit: Option<i32>,
    expect_output: Vec<String>,
    /// On exit 2, one of these must be named (instead of the usual candidates).
    expect_names: Option<Vec<String>>,
}

/// The storage settings a case starts from: mostly the DuckDB file in the case's directory.
fn profile(rng: &mut Rng) -> Vec<(String, Option<OsString>)> {
    let set = |pairs: &[(&str, &str)]| -> Vec<(String, Option<OsString>)> {
        pairs.iter().map(|(name, value)| (name.to_string(), Some(os(value)))).collect()
    };
    match rng.below(20) {
        0..=8 => Vec::new(),
        9..=10 => set(&[("STORAGE_BACKEND", "duckdb")]),
        11..=13 => set(&[("STORAGE_BACKEND", "memory")]),
        14..=15 => set(&[("STORAGE_BACKEND", "efs"), ("STRATA_EFS_ROOT", "efs")]),
        16..=17 => set(&[("STORAGE_BACKEND", "hybrid"), ("STRATA_HYBRID_PRIMARY", "efs"), ("STRATA_EFS_ROOT", "efs")]),
        18 => set(&[("STORAGE_BACKEND", "neon"), ("DATABASE_URL", DEAD_POSTGRES)]),
        _ => set(&[("STORAGE_BACKEND", "hybrid"), ("DATABASE_URL", DEAD_POSTGRES)]),
    }
}

/// What the generator knows of the binary.
#[derive(Debug)]
struct Grammar {
    tree: Vec<Spec>,
    /// Options of `strata -h`: accepted before the subcommand too.
    top_flags: Vec<Flag>,
    /// Every variable fuzzed, with the role of its values.
    variables: Vec<(String, Role)>,
}

impl Grammar {
    fn new(tree: Vec<Spec>) -> Self {
        let top_flags =
            tree.iter().find(|spec| spec.path.is_empty()).map(|spec| spec.flags.clone()).unwrap_or_default();
        let mut variables: BTreeMap<String, Role> = BTreeMap::new();
        for flag in tree.iter().flat_map(|spec| &spec.flags) {
            if let (Some(env), Some(value)) = (&flag.env, &flag.value) {
                variables.insert(env.clone(), role_for(&flag.long, value, !flag.choices.is_empty()));
            }
        }
        for (name, role) in EXTRA_VARIABLES {
            variables.entry(name.to_string()).or_insert(*role);
        }
        Grammar { tree, top_flags, variables: variables.into_iter().collect() }
    }

    fn spec(&self, path: &[String]) -> Option<&Spec> {
        self.tree.iter().find(|spec| spec.path == path)
    }

    fn leaves(&self) -> Vec<&Spec> {
        self.tree.iter().filter(|spec| spec.children.is_empty()).collect()
    }

    /// Case `index` of a run seeded with `seed`: one per command first, then a mix.
    fn case(&self, seed: u64, index: usize) -> Case {
        let mut rng = Rng::new(seed, index as u64);
        let leaves = self.leaves();
        if index < leaves.len() {
            return self.command_case(&mut rng, leaves[index], format!("command {index}"));
        }
        match rng.below(100) {
            0..=3 => self.garbage_case(&mut rng),
            4..=21 => self.ingest_case(&mut rng),
            22..=33 => self.variable_case(&mut rng),
            _ => {
                // Groups too (`strata runs`, `strata neon branch`), and the commands that run until stopped less often.
                let spec = loop {
                    let spec = rng.pick_ref(&self.tree);
                    let daemon = spec.path.last().is_some_and(|name| DAEMONS.contains(&name.as_str()));
                    if spec.path.is_empty() || (!spec.children.is_empty() && !rng.chance(15)) {
                        continue;
                    }
                    if daemon && !rng.chance(30) {
                        continue;
                    }
                    break spec;
                };
                self.command_case(&mut rng, spec, "random command".to_string())
            }
        }
    }

    /// A value for `flag`, in one of its spellings.
    fn push_flag(&self, rng: &mut Rng, tokens: &mut Vec<OsString>, flag: &Flag) {
        let Some(value_name) = &flag.value else {
            if rng.chance(5) {
                tokens.push(os(&format!("{}={}", flag.long, rng.pick(&["true", "", "1"]))));
            } else {
                tokens.push(os(&flag.long));
            }
            return;
        };
        let role = role_for(&flag.long, value_name, !flag.choices.is_empty());
        let first = value(rng, role, &flag.choices);
        match (rng.below(10), &flag.short) {
            (0..=5, _) => {
                tokens.push(os(&flag.long));
                tokens.push(first);
            }
            (6..=7, _) => {
                let mut joined = os(&format!("{}=", flag.long));
                joined.push(&first);
                tokens.push(joined);
            }
            (8, Some(short)) => {
                let mut joined = os(short);
                joined.push(&first);
                tokens.push(joined);
            }
            (_, Some(short)) => {
                tokens.push(os(short));
                tokens.push(first);
            }
            (_, None) => {
                tokens.push(os(&flag.long));
                tokens.push(first);
            }
        }
        if flag.many {
            for _ in 0..rng.below(3) {
                tokens.push(value(rng, role, &flag.choices));
            }
        }
    }

    /// `spec`'s path, positionals and flags, with some chaos.
    fn command_case(&self, rng: &mut Rng, spec: &Spec, origin: String) -> Case {
        let mut path: Vec<OsString> = spec.path.iter().map(|name| os(name)).collect();
        if rng.chance(3) {
            let at = rng.below(path.len());
            path[at] = match rng.below(3) {
                0 => os(&spec.path[at].to_ascii_uppercase()),
                1 => os(&spec.path[at][..spec.path[at].len() - 1]),
                _ => nasty(rng),
            };
        }
        let storeless = spec.path.first().is_some_and(|name| name == "neon");
        let mut before = Vec::new();
        if !storeless && rng.chance(20) {
            let globals: Vec<&Flag> = self.top_flags.iter().filter(|flag| flag.value.is_some()).collect();
            if !globals.is_empty() {
                let flag = globals[rng.below(globals.len())];
                self.push_flag(rng, &mut before, flag);
            }
        }
        let mut tokens: Vec<OsString> = Vec::new();
        for positional in &spec.positionals {
            let count = match (positional.required, positional.many) {
                (true, _) if rng.chance(8) => 0,
                (true, true) => 1 + rng.below(3),
                (true, false) => 1,
                (false, true) => rng.below(3),
                (false, false) => rng.below(2),
            };
            let role = role_for("", &positional.name, false);
            for _ in 0..count {
                tokens.push(value(rng, role, &[]));
            }
        }
        let top: BTreeSet<&str> = self.top_flags.iter().map(|flag| flag.long.as_str()).collect();
        let own: Vec<&Flag> = spec
            .flags
            .iter()
            .filter(|flag| !top.contains(flag.long.as_str()) && flag.long != "--help" && flag.long != "--version")
            .collect();
        let global: Vec<&Flag> = spec
            .flags
            .iter()
            .filter(|flag| top.contains(flag.long.as_str()) && flag.long != "--help" && flag.long != "--version")
            .collect();
        let mut chosen: Vec<&Flag> = Vec::new();
        for _ in 0..rng.below(5) {
            let pool = if !own.is_empty() && (global.is_empty() || rng.chance(70)) { &own } else { &global };
            if !pool.is_empty() {
                chosen.push(pool[rng.below(pool.len())]);
            }
        }
        if rng.chance(2)
            && let Some(help) = spec.flags.iter().find(|flag| flag.long == "--help" || flag.long == "--version")
        {
            chosen.push(help);
        }
        for flag in &chosen {
            self.push_flag(rng, &mut tokens, flag);
        }
        // Chaos.
        if rng.chance(6) && !chosen.is_empty() {
            let flag = chosen[rng.below(chosen.len())];
            self.push_flag(rng, &mut tokens, flag);
        }
        if rng.chance(6) {
            let unknown = rng.pick(&["--no-such-flag", "--Backend", "-Z", "--json=maybe", "--jso", "--duckdb", "-"]);
            tokens.insert(rng.below(tokens.len() + 1), os(unknown));
        }
        if rng.chance(5) {
            tokens.insert(rng.below(tokens.len() + 1), os("--"));
        }
        if rng.chance(5) {
            tokens.push(nasty(rng));
        }
        if rng.chance(5) && !tokens.is_empty() {
            let at = rng.below(tokens.len());
            tokens[at] = nasty(rng);
        }
        if rng.chance(4) {
            for at in (1..tokens.len()).rev() {
                tokens.swap(at, rng.below(at + 1));
            }
        }
        // Safe bounds: `evolve` at its default size (50 x 10) takes 7 s, more beside other runs.
        if spec.path == ["evolve"] && !tokens.iter().any(|token| token.to_string_lossy().starts_with("--resume")) {
            for (flag, bound) in [("--generations", "1"), ("--population", "4")] {
                if !tokens.iter().any(|token| token.to_string_lossy().starts_with(flag)) {
                    tokens.push(os(flag));
                    tokens.push(os(bound));
                }
            }
        }
        let mut args = before;
        args.extend(path);
        args.extend(tokens);
        let mut env = profile(rng);
        if rng.chance(25) {
            for _ in 0..1 + rng.below(3) {
                let (name, role) = rng.pick_ref(&self.variables).clone();
                env.retain(|(set, _)| *set != name);
                env.push((name, if rng.chance(10) { None } else { Some(value(rng, role, &[])) }));
            }
        }
        Case { origin, args, env, ..Case::default() }
    }

    /// Tokens with no valid command, or none at all.
    fn garbage_case(&self, rng: &mut Rng) -> Case {
        let mut args = Vec::new();
        for _ in 0..rng.below(5) {
            args.push(match rng.below(4) {
                0 => nasty(rng),
                1 if !self.top_flags.is_empty() => os(&rng.pick_ref(&self.top_flags).long),
                2 => os(rng.pick(&["help", "--version", "-V", "bogus", "Ingest", "ingest-", "runs", "neon"])),
                _ => value(rng, Role::Text, &[]),
            });
        }
        Case { origin: "garbage".to_string(), args, env: profile(rng), ..Case::default() }
    }

    /// `ingest` of the fixtures; half with one bad row and otherwise valid arguments, which must be refused by
    /// FILE:LINE with nothing written.
    fn ingest_case(&self, rng: &mut Rng) -> Case {
        let Some(spec) = self.spec(&["ingest".to_string()]) else { return self.garbage_case(rng) };
        if !rng.chance(50) {
            let mut case = self.command_case(rng, spec, "ingest".to_string());
            if rng.chance(60) {
                // Make the files the point: 1-3 inputs.
                let mut args = vec![os("ingest")];
                for _ in 0..1 + rng.below(3) {
                    args.push(value(rng, Role::Input, &[]));
                }
                args.extend(case.args.into_iter().skip_while(|arg| arg != "ingest").skip(1));
                case.args = args;
            }
            return case;
        }
        let mut files: Vec<&str> = Vec::new();
        for good in ["good.csv", "good.parquet", "hive"] {
            if rng.chance(30) {
                files.push(good);
            }
        }
        let (bad, named) = if rng.chance(50) { ("bad.csv", "bad.csv:4") } else { ("bad.parquet", "bad.parquet:row 3") };
        files.insert(rng.below(files.len() + 1), bad);
        let mut tokens: Vec<OsString> = files.iter().map(|file| os(file)).collect();
        for flag in ["--dry-run", "--summary"] {
            if rng.chance(30) {
                tokens.insert(rng.below(tokens.len() + 1), os(flag));
            }
        }
        if rng.chance(30) {
            tokens.push(os("--batch-rows"));
            tokens.push(os(rng.pick(&["1", "2", "3", "100"])));
        }
        let mut args = vec![os("ingest")];
        args.extend(tokens);
        Case {
            origin: "ingest with a bad row".to_string(),
            args,
            env: profile(rng),
            expect_exit: Some(2),
            expect_output: vec![named.to_string(), "nothing was written".to_string()],
            expect_names: None,
        }
    }

    /// One variable alone, on a command that works without it: on exit 2 the message names the variable.
    fn variable_case(&self, rng: &mut Rng) -> Case {
        let (name, role) = rng.pick_ref(&self.variables).clone();
        let command: &[&str] = match name.as_str() {
            "NEON_API_KEY" | "NEON_PROJECT_ID" | "NEON_API_BASE_URL" => {
                if rng.chance(50) {
                    &["neon", "branch", "list"]
                } else {
                    &["neon", "projects", "list"]
                }
            }
            "STRATA_LISTEN" | "STRATA_API_TOKEN" => &["serve"],
            "STRATA_METRICS_LISTEN" => {
                &["evolve", "--symbols", "SYN000", "--population", "4", "--generations", "1", "--workers", "1"]
            }
            "STRATA_FAKE_NEON_POSTGRES" => &["neon", "fake-server", "--port", "0"],
            _ => rng.pick(VALID_COMMANDS),
        };
        let mut env = if name.starts_with("STRATA_HYBRID") {
            vec![
                ("STORAGE_BACKEND".to_string(), Some(os("hybrid"))),
                ("STRATA_HYBRID_PRIMARY".to_string(), Some(os("efs"))),
                ("STRATA_EFS_ROOT".to_string(), Some(os("efs"))),
            ]
        } else if name == "STRATA_EFS_ROOT" {
            vec![("STORAGE_BACKEND".to_string(), Some(os("efs")))]
        } else if name.starts_with("STRATA_PG") {
            vec![
                ("STORAGE_BACKEND".to_string(), Some(os("neon"))),
                ("DATABASE_URL".to_string(), Some(os(DEAD_POSTGRES))),
            ]
        } else {
            Vec::new()
        };
        env.retain(|(set, _)| *set != name);
        env.push((name.clone(), if rng.chance(5) { None } else { Some(value(rng, role, &[])) }));
        Case {
            origin: format!("{name} alone"),
            args: command.iter().map(|arg| os(arg)).collect(),
            env,
            expect_names: Some(vec![name]),
            ..Case::default()
        }
    }
}

// ------------------------------------------------------------------ corpus

/// A value as one corpus line: verbatim when that reads back the same, else escaped.
fn encode(value: &OsStr) -> String {
    let bytes = value.as_bytes();
    if let Ok(text) = std::str::from_utf8(bytes)
        && !text.is_empty()
        && !text.starts_with(['\\', '#', '@'])
        && !text.chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
        && text.trim() == text
    {
        return text.to_string();
    }
    let mut line = String::from("\\");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                line.push_str("\\\\");
            } else if c.is_control() || c.is_whitespace() {
                let mut buffer = [0u8; 4];
                for byte in c.encode_utf8(&mut buffer).bytes() {
                    write!(line, "\\x{byte:02x}").unwrap();
                }
            } else {
                line.push(c);
            }
        }
        for byte in chunk.invalid() {
            write!(line, "\\x{byte:02x}").unwrap();
        }
    }
    line
}

/// The inverse of [`encode`].
fn decode(line: &str) -> OsString {
    let Some(escaped) = line.strip_prefix('\\') else { return os(line) };
    let mut bytes = Vec::new();
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buffer = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            continue;
        }
        match chars.next() {
            Some('\\') => bytes.push(b'\\'),
            Some('n') => bytes.push(b'\n'),
            Some('t') => bytes.push(b'\t'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                bytes.push(u8::from_str_radix(&hex, 16).unwrap_or_else(|_| panic!("bad \\x escape in {line:?}")));
            }
            other => panic!("unknown escape \\{other:?} in {line:?}"),
        }
    }
    OsString::from_vec(bytes)
}

impl Case {
    /// The case in the corpus format (see the module documentation).
    fn to_corpus(&self) -> String {
        let mut text = format!("# {}\n", self.origin.replace('\n', " "));
        for (name, value) in &self.env {
            match value {
                Some(value) => {
                    let encoded = encode(value);
                    writeln!(text, "@env {name}={encoded}").unwrap();
                }
                None => writeln!(text, "@unset {name}").unwrap(),
            }
        }
        if let Some(code) = self.expect_exit {
            writeln!(text, "@expect-exit {code}").unwrap();
        }
        for output in &self.expect_output {
            writeln!(text, "@expect-output {output}").unwrap();
        }
        if let Some(names) = &self.expect_names {
            writeln!(text, "@expect-names {}", names.join(" ")).unwrap();
        }
        for arg in &self.args {
            text.push_str(&encode(arg));
            text.push('\n');
        }
        text
    }

    fn from_corpus(origin: String, text: &str) -> Case {
        let mut case = Case { origin, ..Case::default() };
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("@env ") {
                let (name, value) = rest.split_once('=').unwrap_or_else(|| panic!("@env NAME=VALUE: {line:?}"));
                case.env.push((name.to_string(), Some(decode(value))));
            } else if let Some(name) = line.strip_prefix("@unset ") {
                case.env.push((name.to_string(), None));
            } else if let Some(code) = line.strip_prefix("@expect-exit ") {
                case.expect_exit = Some(code.trim().parse().unwrap());
            } else if let Some(output) = line.strip_prefix("@expect-output ") {
                case.expect_output.push(output.to_string());
            } else if let Some(names) = line.strip_prefix("@expect-names ") {
                case.expect_names = Some(names.split_whitespace().map(str::to_string).collect());
            } else if line.starts_with('@') {
                panic!("unknown directive {line:?} in {}", case.origin);
            } else {
                case.args.push(decode(line));
            }
        }
        case
    }
}

/// Every `tests/corpus/args/*.txt`, by name.
fn corpus() -> Vec<Case> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/args");
    let Ok(entries) = std::fs::read_dir(&directory) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "txt"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            Case::from_corpus(format!("corpus {}", path.file_name().unwrap().to_string_lossy()), &text)
        })
        .collect()
}

// ------------------------------------------------------------------- world

/// The input files of every case's directory: (relative path, content).
fn fixtures() -> Vec<(PathBuf, Vec<u8>)> {
    const HEADER: &str = "symbol,timestamp,open,high,low,close,volume\n";
    let good = format!(
        "{HEADER}AAPL,2021-01-04T00:00:00Z,10,11,9,10.5,1000\nAAPL,2021-01-05T00:00:00Z,10.5,11.5,10,11,1200\n\
         ^GSPC,2021-01-04T00:00:00Z,3700,3770,3660,3760,5000000\n\
         ^GSPC,2021-01-05T00:00:00Z,3760,3790,3740,3780,4800000\n"
    );
    // Line 4 has its high below its low.
    let bad = format!(
        "{HEADER}BAD,2021-02-01T00:00:00Z,10,11,9,10.5,1000\nBAD,2021-02-02T00:00:00Z,10,11,9,10.5,1000\n\
         BAD,2021-02-03T00:00:00Z,10,8,9,10.5,1000\nBAD,2021-02-04T00:00:00Z,10,11,9,10.5,1000\n"
    );
    let nosym = "date,open,high,low,close,volume\n2021-03-01,1,2,0.5,1.5,10\n2021-03-02,1.5,2,1,1.8,12\n";
    let adj = "symbol,date,open,high,low,close,adj_close,volume\nADJ,2021-03-01,10,11,9,10,5,100\n\
               ADJ,2021-03-02,10,12,9,11,5.5,100\n";
    let good_parquet = parquet(Some("PQ"), &[[10.0, 11.0, 9.0, 10.5, 1.0], [10.5, 11.5, 10.0, 11.0, 2.0]]);
    // Row 3 has its high below its low.
    let bad_parquet = parquet(
        Some("BADPQ"),
        &[[10.0, 11.0, 9.0, 10.5, 1.0], [10.0, 11.0, 9.0, 10.5, 1.0], [10.0, 8.0, 9.0, 10.5, 1.0]],
    );
    let hive = parquet(None, &[[20.0, 21.0, 19.0, 20.5, 5.0]]);
    let mut corrupt = good_parquet.clone();
    let footer = corrupt.len() - 8;
    corrupt[footer..footer + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let truncated = good_parquet[..good_parquet.len() / 2].to_vec();
    let mut garbage: Vec<u8> = (0..=255u8).cycle().take(2000).collect();
    garbage.extend_from_slice(b"PAR1\xff\xfe,,,\n\n\"");
    vec![
        (PathBuf::from("good.csv"), good.clone().into_bytes()),
        (PathBuf::from(OsString::from_vec(b"caf\xe9.csv".to_vec())), good.into_bytes()),
        (PathBuf::from("bad.csv"), bad.into_bytes()),
        (PathBuf::from("nosym.csv"), nosym.as_bytes().to_vec()),
        (PathBuf::from("adj.csv"), adj.as_bytes().to_vec()),
        (PathBuf::from("empty.csv"), Vec::new()),
        (PathBuf::from("header.csv"), HEADER.as_bytes().to_vec()),
        (PathBuf::from("garbage.bin"), garbage),
        (PathBuf::from("good.parquet"), good_parquet),
        (PathBuf::from("bad.parquet"), bad_parquet),
        (PathBuf::from("corrupt.parquet"), corrupt),
        (PathBuf::from("truncated.parquet"), truncated),
        (PathBuf::from("hive/symbol=HIV/part-0.parquet"), hive),
        (PathBuf::from("notadb.duckdb"), b"not a DuckDB database\n".to_vec()),
        (PathBuf::from("file.txt"), b"text\n".to_vec()),
    ]
}

/// A Parquet file of daily bars from 2021-04-01 (with a symbol column when `symbol` is given).
fn parquet(symbol: Option<&str>, rows: &[[f64; 5]]) -> Vec<u8> {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    if let Some(symbol) = symbol {
        fields.push(Field::new("symbol", DataType::Utf8, false));
        columns.push(Arc::new(StringArray::from(vec![symbol; rows.len()])));
    }
    fields.push(Field::new("timestamp", DataType::Utf8, false));
    let days: Vec<String> = (0..rows.len()).map(|day| format!("2021-04-{:02}T00:00:00Z", day + 1)).collect();
    columns.push(Arc::new(StringArray::from(days)));
    for (index, name) in ["open", "high", "low", "close", "volume"].iter().enumerate() {
        fields.push(Field::new(*name, DataType::Float64, false));
        columns.push(Arc::new(Float64Array::from(rows.iter().map(|row| row[index]).collect::<Vec<f64>>())));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let mut bytes = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    bytes
}

/// Everything the cases share.
struct World {
    root: tempfile::TempDir,
    /// The prepared store: its files, copied into every case's directory.
    store_files: Vec<(PathBuf, Vec<u8>)>,
    fixtures: Vec<(PathBuf, Vec<u8>)>,
    /// What `summary --json` says of the prepared store.
    summary: String,
    /// What `runs list --json` says of it.
    runs: String,
    /// Every path of a freshly prepared case directory.
    fresh_paths: BTreeSet<PathBuf>,
    grammar: Grammar,
    /// Removed from every run.
    clean_variables: Vec<String>,
    /// Set on every run (the fake Neon API, a listen address that cannot collide).
    base_env: Vec<(String, String)>,
    placeholders: Vec<(String, String)>,
    next_directory: AtomicUsize,
    processes: AtomicUsize,
}

impl World {
    fn new(fake: &common::FakeNeon) -> Self {
        let root = tempfile::tempdir().unwrap();
        let tree = command_tree(root.path());
        let grammar = Grammar::new(tree);
        let mut clean_variables: BTreeSet<String> =
            common::STORAGE_VARIABLES.iter().map(|name| name.to_string()).collect();
        clean_variables.extend(MORE_VARIABLES.iter().map(|name| name.to_string()));
        clean_variables.extend(grammar.variables.iter().map(|(name, _)| name.clone()));
        let mut base_env = vec![("STRATA_LISTEN".to_string(), "127.0.0.1:0".to_string())];
        base_env.extend(fake.environment.iter().cloned());
        let lookup = |name: &str| {
            fake.environment.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()).unwrap_or_default()
        };
        let placeholders = vec![
            ("{neon}".to_string(), lookup("NEON_API_BASE_URL")),
            ("{neon_key}".to_string(), lookup("NEON_API_KEY")),
            ("{neon_project}".to_string(), lookup("NEON_PROJECT_ID")),
        ];
        let mut world = World {
            root,
            store_files: Vec::new(),
            fixtures: fixtures(),
            summary: String::new(),
            runs: String::new(),
            fresh_paths: BTreeSet::new(),
            grammar,
            clean_variables: clean_variables.into_iter().collect(),
            base_env,
            placeholders,
            next_directory: AtomicUsize::new(0),
            processes: AtomicUsize::new(0),
        };
        world.prepare_store();
        let probe = world.case_directory();
        world.fresh_paths = listing(&probe);
        world
    }

    /// The store every case starts from: synthetic bars, the good fixture, one finished GA run.
    fn prepare_store(&mut self) {
        let directory = self.case_directory();
        let setup: [&[&str]; 3] = [
            &["generate", "--symbols", "2", "--bars", "260", "--interval", "1d", "--start", "2019-01-01", "--ingest"],
            &["ingest", "good.csv"],
            &[
                "evolve",
                "--symbols",
                "SYN000",
                "--population",
                "4",
                "--generations",
                "1",
                "--run-id",
                "fuzzrun",
                "--workers",
                "1",
                "--json",
            ],
        ];
        for args in setup {
            let run = self.run_clean(&directory, args);
            assert_eq!(run.code, Some(0), "setup `strata {}` failed:\n{}\n{}", args.join(" "), run.stdout, run.stderr);
        }
        for entry in std::fs::read_dir(&directory).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            let text = name.to_string_lossy();
            if text.starts_with("strata.duckdb") && !text.ends_with(".sock") && entry.file_type().unwrap().is_file() {
                self.store_files.push((PathBuf::from(&name), std::fs::read(entry.path()).unwrap()));
            }
        }
        assert!(!self.store_files.is_empty(), "setup created no store");
        let run = self.run_clean(&directory, &["summary", "--json"]);
        self.summary = run.stdout;
        let parsed: serde_json::Value = serde_json::from_str(self.summary.trim()).unwrap();
        self.runs = self.run_clean(&directory, &["runs", "list", "--json"]).stdout;
        assert!(self.runs.contains("fuzzrun"), "{}", self.runs);
        assert!(parsed["total_rows"].as_u64().unwrap() > 500, "{}", self.summary);
    }

    /// `strata args` in `directory` with only the clean environment (setup and store checks).
    fn run_clean(&self, directory: &Path, args: &[&str]) -> Outcome {
        let case = Case { args: args.iter().map(|arg| os(arg)).collect(), ..Case::default() };
        self.run(&case, directory)
    }

    /// A new directory holding the store and the fixtures.
    fn case_directory(&self) -> PathBuf {
        let number = self.next_directory.fetch_add(1, Ordering::Relaxed);
        let directory = self.root.path().join(format!("case-{number}"));
        std::fs::create_dir(&directory).unwrap();
        for (path, bytes) in self.store_files.iter().chain(&self.fixtures) {
            let path = directory.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        for empty in ["subdir", "efs"] {
            std::fs::create_dir(directory.join(empty)).unwrap();
        }
        std::os::unix::fs::symlink("/dev/null", directory.join("devnull")).unwrap();
        directory
    }

    /// `value` with the placeholders replaced.
    fn substitute(&self, value: &OsStr, directory: &Path) -> OsString {
        let bytes = value.as_bytes();
        if !bytes.contains(&b'{') {
            return value.to_owned();
        }
        let mut text = bytes.to_vec();
        let case = ("{case}".to_string(), directory.to_string_lossy().into_owned());
        for (from, to) in self.placeholders.iter().chain(std::iter::once(&case)) {
            text = replace(&text, from.as_bytes(), to.as_bytes());
        }
        OsString::from_vec(text)
    }

    /// Runs `case` in `directory`: killed at [`TIMEOUT`], or at [`DAEMON_WINDOW`] for a daemon.
    fn run(&self, case: &Case, directory: &Path) -> Outcome {
        self.processes.fetch_add(1, Ordering::Relaxed);
        let mut command = common::command(&[]);
        for name in &self.clean_variables {
            command.env_remove(name);
        }
        for (name, value) in &self.base_env {
            command.env(name, value);
        }
        for (name, value) in &case.env {
            match value {
                Some(value) => command.env(name, self.substitute(value, directory)),
                None => command.env_remove(name),
            };
        }
        command.args(case.args.iter().map(|arg| self.substitute(arg, directory)));
        command.current_dir(directory).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let limit = if is_daemon(&case.args) { DAEMON_WINDOW } else { TIMEOUT };
        let started = Instant::now();
        let mut child = command.spawn().expect("the strata binary starts");
        let stdout = drain(child.stdout.take().unwrap());
        let stderr = drain(child.stderr.take().unwrap());
        let (status, killed) = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break (status, false);
            }
            if started.elapsed() >= limit {
                let _ = child.kill();
                break (child.wait().unwrap(), true);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Outcome {
            code: status.code(),
            signal: status.signal(),
            killed,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
            elapsed: started.elapsed(),
        }
    }

    /// Runs `case` in a new directory and checks it.
    fn try_case(&self, case: &Case) -> (Outcome, Option<Failure>) {
        let directory = self.case_directory();
        let outcome = self.run(case, &directory);
        let failure = self.check(case, &outcome, &directory);
        if failure.is_none() {
            let _ = std::fs::remove_dir_all(&directory);
        }
        (outcome, failure)
    }

    /// The checks of the module documentation.
    fn check(&self, case: &Case, outcome: &Outcome, directory: &Path) -> Option<Failure> {
        let fail = |kind: Kind, detail: String| {
            let signature = signature(kind, &detail, &outcome.stderr);
            Some(Failure { kind, detail, signature, case: case.clone() })
        };
        let daemon = is_daemon(&case.args);
        if outcome.killed && !daemon {
            return fail(Kind::Hang, format!("still running after {TIMEOUT:?}; killed"));
        }
        if outcome.code == Some(101)
            || outcome.stderr.contains("panicked at")
            || outcome.stderr.contains("RUST_BACKTRACE")
        {
            return fail(Kind::Panic, format!("exit code {:?}", outcome.code));
        }
        if !outcome.killed && outcome.signal.is_some() {
            return fail(Kind::Crash, format!("killed by signal {:?}", outcome.signal));
        }
        if outcome.killed {
            return None;
        }
        if let Some(path) = partial_file(directory) {
            return fail(Kind::PartialWrite, format!("{} was left behind", path.display()));
        }
        let both = format!("{}\n{}", outcome.stdout, outcome.stderr);
        if let Some(code) = case.expect_exit
            && outcome.code != Some(code)
        {
            return fail(Kind::Expectation, format!("expected exit code {code}, got {:?}", outcome.code));
        }
        for expected in &case.expect_output {
            if !both.contains(expected.as_str()) {
                return fail(Kind::Expectation, format!("the output does not contain {expected:?}"));
            }
        }
        if outcome.code != Some(2) {
            return None;
        }
        // A variable alone must be named, or the setting its value made wrong or necessary
        // (`STRATA_HYBRID_PRIMARY=neon` needs `DATABASE_URL`).
        let candidates = match &case.expect_names {
            Some(names) => {
                names.iter().cloned().chain(self.grammar.variables.iter().map(|(name, _)| name.clone())).collect()
            }
            None => self.name_candidates(case, directory),
        };
        // clap's usage line and its "try '--help'" name the command, not what was wrong.
        let message: String = both
            .lines()
            .filter(|line| !line.trim_start().starts_with("Usage:") && !line.contains("For more information, try"))
            .collect::<Vec<_>>()
            .join("\n");
        let named = candidates.iter().any(|candidate| message.contains(candidate.as_str()))
            || (case.expect_names.is_none()
                && self.values(case, directory).iter().any(|value| contains_word(&message, value)));
        if !named {
            let shown: Vec<String> = candidates.iter().take(12).map(|candidate| shorten(candidate, 60)).collect();
            return fail(Kind::Unnamed, format!("exit 2 names none of {shown:?}"));
        }
        // Directories and a store's locks and bookkeeping may appear when a store is opened; files of data may not.
        let created: Vec<PathBuf> = listing(directory)
            .difference(&self.fresh_paths)
            .filter(|path| !directory.join(path).is_dir())
            .filter(|path| {
                let name = path.file_name().unwrap_or_default().as_bytes();
                !name.ends_with(b".lock") && name != b"coverage.json"
            })
            .filter(|path| !announced_store(&outcome.stderr, directory, path))
            .cloned()
            .collect();
        if !created.is_empty() {
            return fail(Kind::PartialWrite, format!("rejected, but created {created:?}"));
        }
        // The store: bars (summary) and GA runs (runs list), unless its file is as it was.
        let unchanged = self
            .store_files
            .iter()
            .all(|(path, bytes)| std::fs::read(directory.join(path)).ok().as_ref() == Some(bytes));
        if writes_store(&case.args) && !unchanged {
            let store = ["--backend", "duckdb", "--duckdb-path", "strata.duckdb"];
            for (what, expected) in [("summary", &self.summary), ("runs", &self.runs)] {
                let args: Vec<&str> = store
                    .iter()
                    .copied()
                    .chain(if what == "runs" { vec!["runs", "list", "--json"] } else { vec!["summary", "--json"] })
                    .collect();
                let run = self.run_clean(directory, &args);
                if run.stdout.trim() != expected.trim() {
                    return fail(
                        Kind::PartialWrite,
                        format!(
                            "rejected, but the store's {what} changed: {}{}",
                            shorten(&run.stdout, 400),
                            run.stderr
                        ),
                    );
                }
            }
        }
        None
    }

    /// What an exit-2 message may name: flags and values given (quoted as clap and `{:?}` quote them),
    /// variables set or read, the command's argument names, required options and defaults.
    fn name_candidates(&self, case: &Case, directory: &Path) -> Vec<String> {
        let mut candidates = Vec::new();
        let words = command_words(&case.args, &self.grammar.tree);
        let command: Vec<String> = words.iter().map(|(_, word)| word.clone()).collect();
        let mut value = |text: &str| {
            // clap quotes values (`unexpected argument ' ' found`), strata quotes with `{:?}`.
            candidates.push(format!("'{text}'"));
            candidates.push(format!("{text:?}"));
            // clap drops escape sequences and control characters but a line break when it prints a value.
            let printable: String = strip_escapes(text).chars().filter(|c| !c.is_control() || *c == '\n').collect();
            candidates.push(format!("'{printable}'"));
            if text.trim().is_empty() {
                // Unquoted, only between spaces (`cannot tell the format of \u{85} from`).
                if !text.is_empty() {
                    candidates.push(format!(" {text} "));
                }
                return;
            }
            let count = text.chars().count();
            if count >= 3 || (count == 2 && !text.chars().any(|c| c.is_alphanumeric()) && text != "--") {
                let escaped = format!("{text:?}");
                candidates.push(escaped[1..escaped.len() - 1].to_string());
                candidates.push(text.chars().take(40).collect());
                candidates.push(text.to_string());
            }
            // A store URL's path (`devnull` of `duckdb:devnull`).
            if let Some((_, rest)) = text.split_once(':')
                && rest.chars().count() >= 3
            {
                candidates.push(rest.to_string());
            }
        };
        let mut flags = Vec::new();
        for (position, arg) in case.args.iter().enumerate() {
            if words.iter().any(|(at, _)| *at == position) {
                continue;
            }
            let text = self.substitute(arg, directory).to_string_lossy().into_owned();
            if let Some(flag) = text.strip_prefix("--") {
                let (name, rest) = flag.split_once('=').unwrap_or((flag, ""));
                flags.push(format!("--{name}"));
                value(rest);
            } else if text.starts_with('-') && text.len() >= 2 && text.is_char_boundary(2) {
                flags.push(text[..2].to_string());
                value(&text[2..]);
            }
            value(&text);
        }
        candidates.extend(flags);
        candidates.extend(case.env.iter().map(|(name, _)| name.clone()));
        // A message that names a setting names the field (`needs DATABASE_URL`).
        candidates.extend(self.grammar.variables.iter().map(|(name, _)| name.clone()));
        if let Some(spec) = self.grammar.spec(&command) {
            for positional in &spec.positionals {
                candidates.push(format!("<{}>", positional.name));
                candidates.push(format!("[{}]", positional.name));
            }
            // `required arguments were not provided: --end` may name any option (`--test-end` requires `--end`).
            candidates.extend(spec.required.iter().cloned());
            candidates.extend(spec.flags.iter().map(|flag| flag.long.clone()));
            candidates.extend(spec.flags.iter().filter_map(|flag| flag.default.clone()));
            if !spec.children.is_empty() {
                candidates.extend(["<COMMAND>".to_string(), "subcommand".to_string(), "Commands:".to_string()]);
            }
        }
        // The backend named as the reason (`the duckdb backend has nothing to compact`), a server's refusal.
        candidates.extend(["backend".to_string(), "failed with HTTP".to_string()]);
        candidates.retain(|candidate| candidate.chars().count() >= 2);
        candidates
    }

    /// Every value given, as text: arguments (and the value of `--flag=value`) and variables' values.
    fn values(&self, case: &Case, directory: &Path) -> Vec<String> {
        let words = command_words(&case.args, &self.grammar.tree);
        let mut values = Vec::new();
        for (position, arg) in case.args.iter().enumerate() {
            if words.iter().any(|(at, _)| *at == position) {
                continue;
            }
            let text = self.substitute(arg, directory).to_string_lossy().into_owned();
            if let Some((_, value)) = text.split_once('=') {
                values.push(value.to_string());
            }
            values.push(text);
        }
        for value in case.env.iter().filter_map(|(_, value)| value.as_ref()) {
            values.push(self.substitute(value, directory).to_string_lossy().into_owned());
        }
        values.retain(|value| !value.trim().is_empty());
        values
    }

    /// Drops arguments and variables while `failure` persists, then shortens long arguments.
    fn shrink(&self, failure: &Failure) -> Case {
        let mut best = failure.case.clone();
        let mut runs = 0;
        let same = |case: &Case, runs: &mut usize| {
            *runs += 1;
            self.try_case(case).1.is_some_and(|again| again.signature == failure.signature)
        };
        let mut changed = true;
        while changed && runs < SHRINK_RUNS {
            changed = false;
            for index in (0..best.env.len()).rev() {
                let mut candidate = best.clone();
                candidate.env.remove(index);
                if runs < SHRINK_RUNS && same(&candidate, &mut runs) {
                    best = candidate;
                    changed = true;
                }
            }
            for index in (0..best.args.len()).rev() {
                if index >= best.args.len() {
                    continue;
                }
                let mut candidate = best.clone();
                candidate.args.remove(index);
                if runs < SHRINK_RUNS && same(&candidate, &mut runs) {
                    best = candidate;
                    changed = true;
                }
            }
            for index in 0..best.args.len() {
                let bytes = best.args[index].as_bytes();
                if bytes.len() > 64 {
                    let mut candidate = best.clone();
                    candidate.args[index] = OsString::from_vec(bytes[..64].to_vec());
                    if runs < SHRINK_RUNS && same(&candidate, &mut runs) {
                        best = candidate;
                        changed = true;
                    }
                }
            }
        }
        best.origin = format!("{} (shrunk: {:?})", failure.case.origin, failure.kind);
        best
    }
}

/// Reads a pipe to the end on a thread, keeping the first [`KEPT_OUTPUT`] bytes.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buffer = [0u8; 1 << 16];
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    let room = KEPT_OUTPUT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buffer[..read.min(room)]);
                }
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

fn replace(text: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if rest.starts_with(from) {
            out.extend_from_slice(to);
            rest = &rest[from.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// Every path under `directory`, relative, symlinks not followed.
fn listing(directory: &Path) -> BTreeSet<PathBuf> {
    let mut paths = BTreeSet::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                pending.push(path.clone());
            }
            paths.insert(path.strip_prefix(directory).unwrap().to_path_buf());
        }
    }
    paths
}

/// The first `*.partial` file under `directory`.
fn partial_file(directory: &Path) -> Option<PathBuf> {
    listing(directory).into_iter().find(|path| path.as_os_str().as_bytes().ends_with(b".partial"))
}

/// True for a store (or its side files) that a command said it created: a write command makes a missing store
/// before it can find its input wrong (`evolve` with no bars in its window).
fn announced_store(stderr: &str, directory: &Path, path: &Path) -> bool {
    stderr.lines().filter_map(|line| line.strip_prefix("note: created a new DuckDB store at ")).any(|store| {
        let store = Path::new(store.trim());
        let store = store.strip_prefix(directory).unwrap_or(store);
        let store = store.strip_prefix(".").unwrap_or(store);
        path.as_os_str().as_bytes().starts_with(store.as_os_str().as_bytes()) || store.starts_with(path)
    })
}

/// `text` without ANSI escape sequences (`\x1b[31m`).
fn strip_escapes(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            while chars.next().is_some_and(|c| !c.is_ascii_alphabetic()) {}
        } else {
            out.push(c);
        }
    }
    out
}

/// True when `word` appears in `text` on its own: between spaces, quotes, brackets or punctuation.
fn contains_word(text: &str, word: &str) -> bool {
    let boundary = |c: Option<char>| c.is_none_or(|c| c.is_whitespace() || "'\"`()[]{}<>,;:".contains(c));
    text.match_indices(word)
        .any(|(at, _)| boundary(text[..at].chars().next_back()) && boundary(text[at + word.len()..].chars().next()))
}

fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let head: String = text.chars().take(limit).collect();
    format!("{head}... ({} chars)", text.chars().count())
}

/// What one run did.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    signal: Option<i32>,
    /// Killed by this test (a hang, or a daemon that ran its window).
    killed: bool,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Panic,
    Crash,
    Hang,
    Unnamed,
    PartialWrite,
    Expectation,
}

#[derive(Debug)]
struct Failure {
    kind: Kind,
    detail: String,
    /// What a shrunk case must still show: the kind and where it panicked, or the start of its message.
    signature: String,
    case: Case,
}

/// The part of a failure that shrinking keeps: a panic's location, the first words of a message.
fn signature(kind: Kind, detail: &str, stderr: &str) -> String {
    let cut = |text: &str| text.split(['\'', '"', ':']).next().unwrap_or_default().trim().to_string();
    let about = match kind {
        Kind::Panic => stderr
            .split("panicked at ")
            .nth(1)
            .map(|rest| rest.split(':').take(2).collect::<Vec<_>>().join(":"))
            .unwrap_or_default(),
        Kind::Unnamed | Kind::Expectation => {
            let line = stderr.lines().find(|line| !line.trim().is_empty()).unwrap_or_default();
            cut(line.strip_prefix("error: ").unwrap_or(line))
        }
        Kind::Crash | Kind::Hang | Kind::PartialWrite => cut(detail),
    };
    format!("{kind:?}: {about}")
}

// -------------------------------------------------------------------- test

#[test]
fn every_argument_either_parses_or_is_refused_by_name() {
    let started = Instant::now();
    let seed = std::env::var("STRATA_FUZZ_SEED").ok().and_then(|text| text.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    let count: usize =
        std::env::var("STRATA_FUZZ_CASES").ok().and_then(|text| text.parse().ok()).unwrap_or(DEFAULT_CASES);
    let threads: usize =
        std::env::var("STRATA_FUZZ_THREADS").ok().and_then(|text| text.parse().ok()).unwrap_or(DEFAULT_THREADS).max(1);
    eprintln!("fuzz_args: seed {seed} (STRATA_FUZZ_SEED={seed} replays it), {count} cases, {threads} threads");

    let fake = common::FakeNeon::start(&[]);
    let world = World::new(&fake);
    let grammar = &world.grammar;
    for wanted in
        [&["ingest"][..], &["query"], &["copy"], &["verify"], &["runs", "list"], &["neon", "branch", "create"]]
    {
        let path: Vec<String> = wanted.iter().map(|name| name.to_string()).collect();
        let spec = grammar
            .spec(&path)
            .unwrap_or_else(|| panic!("`strata {}` is missing from the help pages", wanted.join(" ")));
        assert!(!spec.flags.is_empty(), "no options read from `strata {} -h`", wanted.join(" "));
    }
    assert!(grammar.leaves().len() >= 25, "only {} commands found", grammar.leaves().len());
    assert!(grammar.variables.iter().any(|(name, _)| name == "STRATA_DUCKDB_LOCK_WAIT"), "{:?}", grammar.variables);
    let setup = started.elapsed();

    let mut cases = corpus();
    let replayed = cases.len();
    cases.extend((0..count).map(|index| grammar.case(seed, index)));

    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<Failure>> = Mutex::new(Vec::new());
    let tally: Mutex<BTreeMap<(String, String), usize>> = Mutex::new(BTreeMap::new());
    let slowest: Mutex<(Duration, String)> = Mutex::new((Duration::ZERO, String::new()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(index) else { break };
                    let (outcome, failure) = world.try_case(case);
                    let command = command_of(&case.args, &grammar.tree).join(" ");
                    let result = match (outcome.killed, outcome.code) {
                        (true, _) => "survived".to_string(),
                        (false, Some(code)) => format!("exit {code}"),
                        (false, None) => "signal".to_string(),
                    };
                    *tally.lock().unwrap().entry((command.clone(), result)).or_default() += 1;
                    {
                        let mut slowest = slowest.lock().unwrap();
                        if !outcome.killed && outcome.elapsed > slowest.0 {
                            *slowest = (outcome.elapsed, format!("{} ({command})", case.origin));
                        }
                    }
                    if let Some(failure) = failure {
                        eprintln!(
                            "FAILED {:?}: {}\n{}--- stdout\n{}\n--- stderr\n{}",
                            failure.kind,
                            failure.detail,
                            failure.case.to_corpus(),
                            shorten(&outcome.stdout, 2000),
                            shorten(&outcome.stderr, 2000)
                        );
                        failures.lock().unwrap().push(failure);
                    }
                }
            });
        }
    });

    let mut commands: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ((command, result), times) in tally.into_inner().unwrap() {
        commands
            .entry(if command.is_empty() { "(none)".to_string() } else { command })
            .or_default()
            .push(format!("{result} x{times}"));
    }
    for (command, results) in &commands {
        eprintln!("  {command:<28} {}", results.join(", "));
    }
    let (slow, slow_case) = slowest.into_inner().unwrap();
    eprintln!(
        "fuzz_args: {} corpus + {count} cases, {} processes ({} help pages) in {:.1} s (setup {:.1} s); slowest run \
         {:.1} s: {slow_case}",
        replayed,
        world.processes.load(Ordering::Relaxed) + grammar.tree.len(),
        grammar.tree.len(),
        started.elapsed().as_secs_f64(),
        setup.as_secs_f64(),
        slow.as_secs_f64()
    );

    let mut failures = failures.into_inner().unwrap();
    if failures.is_empty() {
        return;
    }
    failures.sort_by_key(|failure| failure.kind);
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz_args-failures");
    std::fs::create_dir_all(&out).unwrap();
    let mut report = format!("{} of {} vectors failed (seed {seed}):\n", failures.len(), cases.len());
    let mut shrunk_keys = BTreeSet::new();
    for (number, failure) in failures.iter().enumerate() {
        let key = (failure.kind, command_of(&failure.case.args, &grammar.tree));
        let case = if shrunk_keys.len() < SHRUNK_FAILURES && shrunk_keys.insert(key) {
            world.shrink(failure)
        } else {
            failure.case.clone()
        };
        let file = out.join(format!("{seed}-{number}.txt"));
        std::fs::write(&file, case.to_corpus()).unwrap();
        let (outcome, _) = world.try_case(&case);
        writeln!(
            report,
            "\n{:?}: {} (written to {})\n{}--- exit {:?}, stderr:\n{}",
            failure.kind,
            failure.detail,
            file.display(),
            case.to_corpus(),
            outcome.code,
            shorten(&outcome.stderr, 1500)
        )
        .unwrap();
    }
    drop(fake);
    panic!("{report}");
}

#[test]
fn corpus_lines_read_back_as_written() {
    let values: Vec<OsString> = vec![
        os("plain"),
        os(""),
        os(" padded "),
        os("#hash"),
        os("@at"),
        os("\\back\\slash"),
        os("tab\there\nnewline\r"),
        os("日本語 😀"),
        os("\u{a0}\u{202e}"),
        OsString::from_vec(b"caf\xe9.csv\xff".to_vec()),
    ];
    for value in values {
        let line = encode(&value);
        assert!(!line.contains('\n') && !line.is_empty(), "{line:?}");
        assert_eq!(decode(&line), value, "{line:?}");
    }
    let case = Case {
        origin: "round trip".to_string(),
        args: vec![os("query"), os(""), OsString::from_vec(b"\xff".to_vec())],
        env: vec![("A".to_string(), Some(os("x=y"))), ("B".to_string(), None)],
        expect_exit: Some(2),
        expect_output: vec!["text".to_string()],
        expect_names: Some(vec!["A".to_string()]),
    };
    let back = Case::from_corpus("round trip".to_string(), &case.to_corpus());
    assert_eq!(back.args, case.args);
    assert_eq!(back.env, case.env);
    assert_eq!(
        (back.expect_exit, back.expect_output, back.expect_names),
        (case.expect_exit, case.expect_output, case.expect_names)
    );
}
