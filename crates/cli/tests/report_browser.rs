//! Seeing a run in a real browser (issue 17): headless Chromium, driven over
//! the Chrome DevTools protocol on a pipe (`--remote-debugging-pipe`: no
//! port, no WebSocket, no driver), opens
//! - the report `strata report` wrote for a real run (the README's main job,
//!   smaller): no script error, no console error, no request but the file
//!   itself (it is self-contained), every chart drawn with the series and
//!   points the run implies (read from the DOM: generations, bars of the
//!   windows, genes, population), the crosshair answering the mouse;
//! - the index of a running `strata serve`: a run started after the page
//!   loaded appears, then moves from "no generation evaluated" to completed
//!   as a worker evaluates it, all without a reload; its report at
//!   `/runs/RUN` is drawn too.
//!
//! Screenshots go to `$CARGO_TARGET_DIR/test-artifacts/` (report.png,
//! dashboard.png, served-report.png). Chromium (Debian's `chromium`) is
//! optional locally and required under `STRATA_REQUIRE_SERVICES` (CI
//! installs it); `STRATA_CHROMIUM` names another binary.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{Served, sample_arg, strata_in};

/// The Chromium binary, or `None` (skipped) when there is none and it is not required.
fn chromium() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("STRATA_CHROMIUM") {
        Some(path) => vec![PathBuf::from(path)],
        None => ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .filter_map(|name| {
                std::env::var_os("PATH")
                    .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file()))
            })
            .collect(),
    };
    if let Some(found) = candidates.into_iter().find(|path| path.is_file()) {
        return Some(found);
    }
    assert!(
        std::env::var_os("STRATA_REQUIRE_SERVICES").is_none(),
        "chromium is required for the browser tests (apt-get install chromium, or STRATA_CHROMIUM=/path/to/chrome)"
    );
    eprintln!("chromium is not installed (apt-get install chromium): the browser tests are skipped");
    None
}

/// Where screenshots are kept: `test-artifacts` in the target directory.
fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        // target/debug/strata -> target
        Path::new(env!("CARGO_BIN_EXE_strata")).ancestors().nth(2).unwrap().to_path_buf()
    });
    let directory = target.join("test-artifacts");
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

/// Headless Chromium with one page, driven over the DevTools protocol on
/// fds 3 (commands in) and 4 (answers and events out), NUL-separated JSON.
struct Browser {
    child: Child,
    input: ChildStdin,
    messages: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    /// Every event of the page so far.
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

const WIDTH: u32 = 1440;
const HEIGHT: u32 = 900;

impl Browser {
    fn launch(binary: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        // The shell gives the browser our stdin as fd 3 and our stdout as fd 4.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
            .arg(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--mute-audio",
                "--remote-debugging-pipe",
                &format!("--window-size={WIDTH},{HEIGHT}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("chromium starts");
        let input = child.stdin.take().unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let (send, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = Vec::new();
            while output.read_until(0, &mut buffer).is_ok_and(|read| read > 0) {
                if buffer.last() == Some(&0) {
                    buffer.pop();
                }
                if let Ok(message) = serde_json::from_slice::<Value>(&buffer)
                    && send.send(message).is_err()
                {
                    break;
                }
                buffer.clear();
            }
        });
        let mut browser = Browser {
            child,
            input,
            messages,
            next_id: 0,
            session: String::new(),
            events: Vec::new(),
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().unwrap().to_string();
        let attached = browser.call("Target.attachToTarget", json!({"targetId": target, "flatten": true}));
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable", "Network.enable"] {
            browser.call(domain, json!({}));
        }
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false}),
        );
        browser
    }

    /// Sends a command (to the page once attached) and waits for its answer; events meanwhile are kept.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.input.write_all(&bytes).unwrap();
        self.input.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self.messages.recv_timeout(left).unwrap_or_else(|_| panic!("no answer to {method} in 60 s"));
            if message["id"] == json!(id) {
                assert!(message.get("error").is_none(), "{method} failed: {message}");
                return message["result"].clone();
            }
            if message.get("method").is_some() {
                self.events.push(message);
            }
        }
    }

    /// Takes events until one named `method` arrives after `from` events, within `limit`.
    fn wait_event(&mut self, method: &str, from: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self.events[from.min(self.events.len())..].iter().any(|event| event["method"] == method) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(message) if message.get("method").is_some() => self.events.push(message),
                Ok(_) => {}
                Err(_) => panic!("no {method} within {limit:?}"),
            }
        }
    }

    /// Opens `url` and waits for its load event.
    fn open(&mut self, url: &str) {
        let from = self.events.len();
        let answer = self.call("Page.navigate", json!({"url": url}));
        assert!(answer.get("errorText").is_none(), "cannot open {url}: {answer}");
        self.wait_event("Page.loadEventFired", from, Duration::from_secs(60));
    }

    /// The value of a JavaScript expression in the page (promises awaited).
    fn eval(&mut self, expression: &str) -> Value {
        let answer = self
            .call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true, "awaitPromise": true}));
        assert!(answer.get("exceptionDetails").is_none(), "{expression} threw: {answer}");
        answer["result"]["value"].clone()
    }

    /// Script exceptions, console errors and error log entries so far.
    fn errors(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|event| {
                let params = &event["params"];
                match event["method"].as_str()? {
                    "Runtime.exceptionThrown" => Some(params["exceptionDetails"].to_string()),
                    "Runtime.consoleAPICalled" if params["type"] == "error" => Some(params["args"].to_string()),
                    "Log.entryAdded" if params["entry"]["level"] == "error" => Some(params["entry"].to_string()),
                    _ => None,
                }
            })
            .collect()
    }

    /// URLs the page requested since event `from` (data: URLs left out).
    fn requests(&self, from: usize) -> Vec<String> {
        self.events[from..]
            .iter()
            .filter(|event| event["method"] == "Network.requestWillBeSent")
            .filter_map(|event| event["params"]["request"]["url"].as_str().map(str::to_string))
            .filter(|url| !url.starts_with("data:"))
            .collect()
    }

    /// Moves the mouse to (x, y) in CSS pixels of the viewport.
    fn hover(&mut self, x: f64, y: f64) {
        self.call("Input.dispatchMouseEvent", json!({"type": "mouseMoved", "x": x, "y": y}));
    }

    /// Saves the whole page as a PNG (at most 6,000 pixels tall).
    fn screenshot(&mut self, path: &Path) {
        let metrics = self.call("Page.getLayoutMetrics", json!({}));
        let height = metrics["cssContentSize"]["height"].as_f64().unwrap_or(f64::from(HEIGHT)).min(6_000.0);
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1}}),
        );
        let png = base64_decode(shot["data"].as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (with padding) to bytes.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        other => panic!("not base64: {other}"),
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
    let mut bytes = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut word = 0u32;
        for (position, c) in chunk.iter().enumerate() {
            word |= u32::from(value(*c)) << (18 - 6 * position);
        }
        bytes.extend_from_slice(&word.to_be_bytes()[1..chunk.len()]);
    }
    bytes
}

/// What the page drew: every `svg.chart` with its series, as the DOM has them.
const CHARTS: &str = r#"(() => [...document.querySelectorAll('svg.chart')].map(svg => ({
  id: svg.dataset.chart,
  declared: Number(svg.dataset.seriesCount),
  width: svg.getBoundingClientRect().width,
  series: [...svg.querySelectorAll('[data-series]')].map(element => ({
    name: element.dataset.series,
    tag: element.tagName,
    points: Number(element.dataset.points),
    source: Number(element.dataset.sourcePoints || element.dataset.points),
    drawn: element.tagName === 'polyline' ? element.points.numberOfItems
         : element.tagName === 'polygon' ? element.points.numberOfItems / 2
         : element.childElementCount,
    extent: element.getBBox().width + element.getBBox().height,
    counts: [...element.querySelectorAll('rect')].map(rect => Number(rect.dataset.count)),
  })),
})))()"#;

/// The page's charts by id, each checked: as many series as it declares,
/// each drawn with the points it declares (at least one) and visible.
fn charts(browser: &mut Browser) -> std::collections::BTreeMap<String, Vec<Value>> {
    let mut by_id = std::collections::BTreeMap::new();
    for chart in browser.eval(CHARTS).as_array().unwrap() {
        let id = chart["id"].as_str().unwrap().to_string();
        let series = chart["series"].as_array().unwrap().clone();
        assert_eq!(series.len() as u64, chart["declared"].as_u64().unwrap(), "chart {id}: {chart}");
        assert!(chart["width"].as_f64().unwrap() > 200.0, "chart {id} is laid out: {chart}");
        for one in &series {
            assert_eq!(one["drawn"], one["points"], "chart {id}, series {}: drawn as declared", one["name"]);
            assert!(one["points"].as_u64().unwrap() > 0, "chart {id}, series {} has points", one["name"]);
            assert!(one["extent"].as_f64().unwrap() > 0.0, "chart {id}, series {} is visible", one["name"]);
        }
        assert!(by_id.insert(id.clone(), series).is_none(), "chart ids are unique: {id}");
    }
    by_id
}

fn series<'a>(charts: &'a std::collections::BTreeMap<String, Vec<Value>>, chart: &str) -> &'a [Value] {
    charts.get(chart).unwrap_or_else(|| panic!("no chart {chart}: {:?}", charts.keys().collect::<Vec<_>>()))
}

fn names(series: &[Value]) -> Vec<&str> {
    series.iter().map(|one| one["name"].as_str().unwrap()).collect()
}

/// Distinct timestamps of `symbols` in `[start, end)`: the x axis of a basket's curves.
fn union_of_timestamps(directory: &Path, symbols: &[&str], start: &str, end: &str) -> usize {
    let mut arguments = vec!["query"];
    arguments.extend(symbols);
    arguments.extend(["--start", start, "--end", end, "--format", "csv"]);
    let csv = strata_in(directory, &[], &arguments).success().stdout;
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = header.iter().position(|name| *name == "timestamp").unwrap();
    lines.map(|line| line.split(',').nth(column).unwrap().to_string()).collect::<BTreeSet<_>>().len()
}

#[test]
fn a_report_opens_offline_without_errors_and_draws_every_chart() {
    let Some(binary) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path();
    strata_in(here, &[], &["ingest", "--adjust", &sample_arg("quandl_wiki_stocks_daily_adj.csv")]).success();
    let (population, generations) = (12, 4);
    let evolved = strata_in(
        here,
        &[],
        &[
            "evolve",
            "--strategy",
            "ma-crossover",
            "--symbols",
            "AAPL",
            "MSFT",
            "IBM",
            "--start",
            "2003-01-01",
            "--end",
            "2010-01-01",
            "--test-end",
            "2013-01-01",
            "--population",
            "12",
            "--generations",
            "4",
            "--seed",
            "42",
            "--workers",
            "2",
            "--json",
        ],
    )
    .success()
    .json();
    let run = evolved["run"].as_str().unwrap().to_string();
    let shown = strata_in(here, &[], &["runs", "show", &run, "--json", "--top", "10"]).success().json();
    let stats = shown["generation_stats"].as_array().unwrap().len();
    assert_eq!(stats, generations);
    let best = shown["best"].as_array().unwrap();
    let genes: Vec<String> = best[0]["genome"].as_object().unwrap().keys().cloned().collect();

    // The terminal chart of the same run.
    let chart = strata_in(here, &[], &["runs", "show", &run, "--chart"]).success().stdout;
    assert!(chart.contains("fitness per generation (* best, . mean)"), "{chart}");
    assert!(chart.contains('┤') && chart.contains('*'), "{chart}");

    let written = strata_in(here, &[], &["report", &run, "--output", "report.html"]).success();
    assert!(written.stderr.contains("wrote report.html"), "{}", written.stderr);
    let report = here.join("report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    for remote in ["http://", "https://", "src=\"//", "href=\"//"] {
        assert!(!html.contains(remote), "the report refers to nothing outside itself ({remote})");
    }

    let mut browser = Browser::launch(&binary);
    let url = format!("file://{}", report.display());
    let from = browser.events.len();
    browser.open(&url);
    assert_eq!(browser.eval("document.body.dataset.ready"), json!("1"), "the script ran to its end");
    assert_eq!(browser.eval("window.strataErrors"), json!([]));
    assert_eq!(browser.eval("document.getElementById('script-errors').hidden"), json!(true));
    assert_eq!(browser.requests(from), std::slice::from_ref(&url), "the report loads nothing but itself");

    let charts = charts(&mut browser);
    let mut expected: BTreeSet<String> = [
        "fitness",
        "diversity",
        "equity-in-sample",
        "drawdown-in-sample",
        "equity-out-of-sample",
        "drawdown-out-of-sample",
        "trades",
    ]
    .map(String::from)
    .into();
    expected.extend(genes.iter().map(|gene| format!("gene-{gene}")));
    assert_eq!(charts.keys().cloned().collect::<BTreeSet<_>>(), expected);

    // Fitness: a band and two lines, one point per generation; diversity: one line.
    let fitness = series(&charts, "fitness");
    assert_eq!(names(fitness), ["spread", "best", "mean"]);
    assert!(fitness.iter().all(|one| one["points"] == json!(generations)), "{fitness:?}");
    assert_eq!(series(&charts, "diversity")[0]["points"], json!(generations));

    // Equity: the 3 best genomes and buy and hold, over every trading day of the window.
    let curves = best.len().min(3);
    for (window, start, end) in
        [("in-sample", "2003-01-01", "2010-01-01"), ("out-of-sample", "2010-01-01", "2013-01-01")]
    {
        let days = union_of_timestamps(here, &["AAPL", "MSFT", "IBM"], start, end);
        let equity = series(&charts, &format!("equity-{window}"));
        assert_eq!(equity.len(), curves + 1, "{window}: {equity:?}");
        assert_eq!(equity.last().unwrap()["name"], "buy-and-hold");
        for one in equity {
            assert_eq!(one["source"], json!(days), "{window} {}: one point per day", one["name"]);
        }
        let drawdown = series(&charts, &format!("drawdown-{window}"));
        assert_eq!(names(drawdown), ["genome-1", "buy-and-hold"]);
        assert!(drawdown.iter().all(|one| one["source"] == json!(days)), "{drawdown:?}");
    }

    // Trades: AAPL's closes in the training window, a marker per trade by the position taken.
    let aapl_days = union_of_timestamps(here, &["AAPL"], "2003-01-01", "2010-01-01");
    let trades = series(&charts, "trades");
    assert_eq!(trades[0]["name"], "price");
    assert_eq!(trades[0]["source"], json!(aapl_days));
    let markers = names(&trades[1..]);
    assert!(!markers.is_empty() && markers.iter().all(|name| ["long", "short", "flat"].contains(name)), "{markers:?}");
    let marked: u64 = trades[1..].iter().map(|one| one["points"].as_u64().unwrap()).sum();
    assert_eq!(browser.eval("document.querySelectorAll('table.trades tbody tr').length"), json!(marked));

    // Genes: every individual of the last generation in one bin, and the best genome marked.
    for gene in &genes {
        let histogram = series(&charts, &format!("gene-{gene}"));
        assert_eq!(names(histogram), ["count", "best"]);
        let counted: u64 = histogram[0]["counts"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum();
        assert_eq!(counted, population, "gene {gene}");
    }

    // The table: every best genome, each with its out-of-sample row.
    assert_eq!(browser.eval("document.querySelectorAll('table.best tr[data-rank]').length"), json!(best.len()));
    assert_eq!(browser.eval("document.querySelectorAll('table.best tr.oos').length"), json!(best.len()));
    let data = browser.eval("document.getElementById('data').innerText");
    for expected in ["AAPL,MSFT,IBM [2003-01-01T00:00:00Z, 2010-01-01T00:00:00Z)", "fingerprint", "IBM"] {
        assert!(data.as_str().unwrap().contains(expected), "{expected} in {data}");
    }

    // The crosshair follows the mouse over the fitness chart.
    let middle = browser.eval(
        "(() => { const svg = document.querySelector('svg[data-chart=fitness]'); \
         svg.scrollIntoView({block: 'center'}); const r = svg.getBoundingClientRect(); \
         return [r.left + r.width / 2, r.top + r.height / 2]; })()",
    );
    let (x, y) = (middle[0].as_f64().unwrap(), middle[1].as_f64().unwrap());
    assert!(y > 0.0 && y < f64::from(HEIGHT), "the fitness chart is on the screen: {middle}");
    browser.hover(x, y);
    let tooltip =
        browser.eval("(() => { const t = document.getElementById('tooltip'); return t.hidden ? '' : t.innerText; })()");
    let tooltip = tooltip.as_str().unwrap();
    assert!(tooltip.contains("generation") && tooltip.contains("best") && tooltip.contains("mean"), "{tooltip:?}");
    browser.hover(1.0, 1.0);
    browser.eval("window.scrollTo(0, 0)");

    browser.screenshot(&artifacts().join("report.png"));
    assert_eq!(browser.errors(), Vec::<String>::new(), "no script or console errors");
}

/// The index's row of `run` as the page shows it now, or `null`.
fn row(browser: &mut Browser, run: &str) -> Value {
    browser.eval(&format!(
        "(() => {{ const r = document.querySelector('tr[data-run=\"{run}\"]'); \
         return r ? {{status: r.dataset.status, evaluated: Number(r.dataset.evaluated), \
         polls: Number(document.body.dataset.polls || 0), marker: window.loadedOnce === true}} : null; }})()"
    ))
}

/// Polls the page until `done(row)` holds, within `limit`; returns that row.
fn wait_for_row(browser: &mut Browser, run: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let now = row(browser, run);
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "the index never showed what was expected for {run}; last: {now}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_served_index_follows_a_run_without_a_reload() {
    let Some(binary) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path();
    strata_in(here, &[], &["ingest", &sample_arg("sp500_daily.csv")]).success();
    let mut server = Served::start(here, &[], &["serve", "--listen", "127.0.0.1:0"]);
    let address = server.address("serving");
    let (status, runs) = common::http_get(address, "/runs.json", &[]);
    assert_eq!((status, runs.trim()), (200, r#"{"runs":[]}"#));

    let mut browser = Browser::launch(&binary);
    browser.open(&format!("http://{address}/"));
    assert_eq!(browser.eval("document.body.dataset.ready"), json!("1"));
    // Set once; a reload would lose it.
    browser.eval("window.loadedOnce = true");
    let coverage = browser.eval("document.querySelector('tr[data-symbol=\"^GSPC\"]').innerText");
    assert!(coverage.as_str().unwrap().contains("5,031"), "the stored bars per symbol: {coverage}");
    let empty = browser.eval("document.getElementById('runs-body').innerText");
    assert!(empty.as_str().unwrap().contains("No runs yet"), "{empty}");

    // A coordinator alone: the run appears, with its first generation waiting for a worker.
    let run = "dashboard-run";
    let mut coordinator = Served::start(
        here,
        &[],
        &[
            "evolve",
            "--symbols",
            "^GSPC",
            "--population",
            "8",
            "--generations",
            "3",
            "--workers",
            "0",
            "--run-id",
            run,
            "--json",
        ],
    );
    let waiting = wait_for_row(&mut browser, run, Duration::from_secs(60), |row| {
        row["status"] == "running" && row["evaluated"] == 0
    });
    assert_eq!(waiting["marker"], json!(true), "the run appeared without a reload: {waiting}");

    // A worker evaluates it: the same page shows it completed.
    let mut worker = Served::start(here, &[], &["worker", "--exit-when-done", run, "--ttl", "10"]);
    let finished = wait_for_row(&mut browser, run, Duration::from_secs(120), |row| {
        row["status"] == "completed" && row["evaluated"] == 3
    });
    assert_eq!(finished["marker"], json!(true), "completed without a reload: {finished}");
    assert!(finished["polls"].as_u64().unwrap() > waiting["polls"].as_u64().unwrap(), "{waiting} then {finished}");
    assert_eq!(worker.wait(Duration::from_secs(60)), Some(0), "{}", worker.seen.join("\n"));
    assert_eq!(coordinator.wait(Duration::from_secs(60)), Some(0), "{}", coordinator.seen.join("\n"));
    let shown = browser.eval(&format!("document.querySelector('tr[data-run=\"{run}\"]').innerText"));
    assert!(shown.as_str().unwrap().contains("3/3"), "{shown}");
    browser.screenshot(&artifacts().join("dashboard.png"));

    // Its report, one click away.
    let from = browser.events.len();
    browser.eval(&format!("document.querySelector('a[href=\"runs/{run}\"]').click()"));
    browser.wait_event("Page.loadEventFired", from, Duration::from_secs(60));
    assert_eq!(browser.eval("location.pathname"), json!(format!("/runs/{run}")));
    assert_eq!(browser.eval("document.body.dataset.ready"), json!("1"));
    let charts = charts(&mut browser);
    assert_eq!(series(&charts, "fitness")[1]["points"], json!(3));
    assert!(charts.contains_key("equity-in-sample") && charts.contains_key("trades"), "{:?}", charts.keys());
    browser.screenshot(&artifacts().join("served-report.png"));
    assert_eq!(browser.errors(), Vec::<String>::new(), "no script or console errors");

    let (status, missing) = common::http_get(address, "/runs/no-such-run", &[]);
    assert_eq!(status, 404, "{missing}");
    let (code, stderr) = server.terminate();
    assert_eq!(code, Some(0), "{stderr}");
}
