//! pyarrow reads `/v1/bars` straight from the URL as an Arrow stream and
//! gets the rows `query_bars` returns (`STRATA_PYTHON` names a Python with
//! pyarrow; skipped when unset unless `STRATA_REQUIRE_SERVICES=1`).

use std::process::Command;
use std::sync::Arc;

use strata_core::{BarQuery, MarketDataStore};
use strata_serve::Sources;

use crate::support::{expected, filled_store, skip_or_fail, start};

/// Reads the stream at argv[1] and prints rows, the sum of trade_count, the
/// sum of close, the first and last timestamps (µs), and the timestamp type.
const SCRIPT: &str = r#"
import sys, urllib.request
import pyarrow, pyarrow.compute as pc, pyarrow.ipc
table = pyarrow.ipc.open_stream(urllib.request.urlopen(sys.argv[1])).read_all()
ts = table.column("timestamp")
print(table.num_rows, pc.sum(table.column("trade_count")).as_py(), repr(pc.sum(table.column("close")).as_py()),
      ts[0].value, ts[-1].value, table.schema.field("timestamp").type)
"#;

#[tokio::test]
async fn pyarrow_reads_the_arrow_stream_from_the_url() {
    let Some(python) = std::env::var_os("STRATA_PYTHON") else {
        skip_or_fail("STRATA_PYTHON is not set (a Python with pyarrow, e.g. ~/.cache/strata/venv/bin/python)");
        return;
    };
    let store: Arc<dyn MarketDataStore> = filled_store().await;
    let server = start(Sources::new(store.clone()), |_| {}).await;
    let query = BarQuery { symbols: vec!["SYN000".parse().unwrap(), "SYN002".parse().unwrap()], ..BarQuery::default() };
    let want = expected(store.as_ref(), query).await;
    let url = server.url("/v1/bars?symbols=SYN000,SYN002&format=arrow");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python).args(["-c", SCRIPT, &url]).env("NO_PROXY", "127.0.0.1").output()
    })
    .await
    .unwrap()
    .expect("python runs");
    assert!(output.status.success(), "pyarrow failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(fields[0].parse::<usize>().unwrap(), want.len(), "{stdout}");
    let trades: i64 = want.iter().filter_map(|bar| bar.trade_count).sum();
    assert_eq!(fields[1].parse::<i64>().unwrap(), trades, "{stdout}");
    let close: f64 = want.iter().map(|bar| bar.close).sum();
    let python_close: f64 = fields[2].parse().unwrap();
    assert!((python_close - close).abs() <= close.abs() * 1e-12, "close sums {python_close} vs {close}");
    assert_eq!(fields[3].parse::<i64>().unwrap(), want[0].timestamp.micros());
    assert_eq!(fields[4].parse::<i64>().unwrap(), want[want.len() - 1].timestamp.micros());
    assert_eq!(&fields[5..], ["timestamp[us,", "tz=UTC]"], "{stdout}");
}
