//! The JSON shapes of reports, written once: a health report (also
//! `strata health --json`), the market summary (as `strata summary --json`)
//! and one day's digest (as a line of `strata digest --json`).

use serde_json::{Value, json};
use strata_core::{DayDigest, HealthReport, MarketSummary};

/// A health report as JSON: `backend`, `ok`, `status`, `details` (an object,
/// see below) and `components` (the parts' reports, recursively).
///
/// A detail's value is an integer when it parses as one, a float when its
/// key ends in `_ms`, a boolean for `true`/`false`, and otherwise a string,
/// so a version such as `16.10` is never read as the number 16.1.
pub fn health_json(report: &HealthReport) -> Value {
    let details: serde_json::Map<String, Value> =
        report.details.iter().map(|(key, value)| (key.clone(), detail_json(key, value))).collect();
    let components: Vec<Value> = report.components.iter().map(health_json).collect();
    json!({
        "backend": report.backend,
        "ok": report.ok(),
        "status": report.status.as_str(),
        "details": details,
        "components": components,
    })
}

/// A health detail as JSON (see [`health_json`]).
fn detail_json(key: &str, value: &str) -> Value {
    if let Ok(integer) = value.parse::<i64>() {
        return json!(integer);
    }
    match value.parse::<f64>() {
        Ok(float) if float.is_finite() && key.ends_with("_ms") => json!(float),
        _ => value.parse::<bool>().map_or_else(|_| json!(value), |flag| json!(flag)),
    }
}

/// A market summary as JSON, the shape of `strata summary --json`:
/// `{"symbols": [{"symbol", "first", "last", "rows"}], "symbol_count", "total_rows"}`
/// with `first` and `last` as RFC 3339 UTC.
pub fn summary_json(summary: &MarketSummary) -> Value {
    let symbols: Vec<Value> = summary
        .symbols
        .iter()
        .map(|entry| {
            json!({
                "symbol": entry.symbol,
                "first": entry.first.to_string(),
                "last": entry.last.to_string(),
                "rows": entry.rows,
            })
        })
        .collect();
    json!({
        "symbols": symbols,
        "symbol_count": summary.symbols.len(),
        "total_rows": summary.total_rows(),
    })
}

/// One (symbol, day) digest as JSON, a line of `strata digest --json`:
/// `{"symbol", "day" (YYYY-MM-DD), "rows", "hash" (16 hex digits)}`.
pub fn digest_json(digest: &DayDigest) -> Value {
    json!({
        "symbol": digest.symbol,
        "day": digest.day.to_string(),
        "rows": digest.rows,
        "hash": digest.hash_hex(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use strata_core::{HealthStatus, SymbolSummary, Timestamp};

    use super::*;

    #[test]
    fn details_keep_their_type_and_versions_stay_text() {
        let report = HealthReport::new("hybrid(neon, duckdb)", HealthStatus::Degraded)
            .with_detail("queue_depth", "12")
            .with_detail("round_trip_ms", "1.5")
            .with_detail("server_version", "16.10")
            .with_detail("timescaledb", "false")
            .with_component(HealthReport::new("neon", HealthStatus::Down));
        let value = health_json(&report);
        assert_eq!(value["ok"], json!(false));
        assert_eq!(value["status"], json!("degraded"));
        assert_eq!(value["details"]["queue_depth"], json!(12));
        assert_eq!(value["details"]["round_trip_ms"], json!(1.5));
        assert_eq!(value["details"]["server_version"], json!("16.10"));
        assert_eq!(value["details"]["timescaledb"], json!(false));
        assert_eq!(value["components"][0]["status"], json!("down"));
    }

    #[test]
    fn the_summary_has_the_cli_shape() {
        let summary = MarketSummary {
            symbols: vec![SymbolSummary {
                symbol: "AAPL".into(),
                first: Timestamp::parse("2020-01-02").unwrap(),
                last: Timestamp::parse("2020-01-03T15:30:00Z").unwrap(),
                rows: 2,
            }],
        };
        assert_eq!(
            summary_json(&summary),
            json!({
                "symbols": [{"symbol": "AAPL", "first": "2020-01-02T00:00:00Z", "last": "2020-01-03T15:30:00Z", "rows": 2}],
                "symbol_count": 1,
                "total_rows": 2,
            })
        );
    }
}
