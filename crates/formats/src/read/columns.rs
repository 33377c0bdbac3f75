//! `ColumnMap`: which input column (a CSV header field or a Parquet column)
//! feeds which bar field, found by name with the usual aliases.

use std::collections::HashMap;

/// Which input column feeds which bar field, by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ColumnMap {
    pub(super) symbol: Option<usize>,
    pub(super) timestamp: usize,
    pub(super) open: usize,
    pub(super) high: usize,
    pub(super) low: usize,
    pub(super) close: usize,
    pub(super) volume: usize,
    pub(super) vwap: Option<usize>,
    pub(super) trade_count: Option<usize>,
    /// The adjusted close, when [`super::ReadOptions::adjust`] is set (the
    /// column is then required); without it the column is ignored.
    pub(super) adj_close: Option<usize>,
    /// Columns that are not bar fields, by their original name.
    pub(super) ignored: Vec<String>,
    /// Number of columns in the input.
    pub(super) width: usize,
}

/// The names an adjusted close column may have (any case), for messages.
pub(crate) const ADJ_CLOSE_NAMES: &str = "adj_close, adj close, adjclose, adjusted_close or adjusted close";

/// The bar field a column name stands for (case-insensitive; `date`,
/// `datetime` and `time` mean the timestamp, `ticker` the symbol; `adj close`
/// and its spellings the vendor's adjusted close, `adj_close`).
pub(super) fn canonical_column(name: &str) -> Option<&'static str> {
    let name = name.trim().trim_start_matches('\u{feff}').trim().to_ascii_lowercase();
    Some(match name.as_str() {
        "symbol" | "ticker" => "symbol",
        "timestamp" | "date" | "datetime" | "time" => "timestamp",
        "open" => "open",
        "high" => "high",
        "low" => "low",
        "close" => "close",
        "volume" => "volume",
        "vwap" => "vwap",
        "trade_count" => "trade_count",
        "adj_close" | "adj close" | "adjclose" | "adjusted_close" | "adjusted close" => "adj_close",
        _ => return None,
    })
}

impl ColumnMap {
    /// Maps column names (a CSV header or a Parquet schema) to bar fields.
    /// `fixed_symbol` says whether [`super::ReadOptions::symbol`] is set and
    /// `adjust` whether [`super::ReadOptions::adjust`] is; the messages call
    /// them `--symbol` and `--adjust`, as the `strata` command line does.
    /// Without `adjust` an adjusted close column is listed as ignored.
    pub(super) fn from_names<'a>(
        names: impl IntoIterator<Item = &'a str>,
        fixed_symbol: bool,
        adjust: bool,
    ) -> Result<Self, String> {
        let names: Vec<&str> = names.into_iter().collect();
        let mut found: HashMap<&'static str, usize> = HashMap::new();
        let mut ignored = Vec::new();
        for (index, name) in names.iter().enumerate() {
            match canonical_column(name) {
                Some("adj_close") if !adjust => ignored.push(name.to_string()),
                Some(field) => {
                    if let Some(previous) = found.insert(field, index) {
                        return Err(format!(
                            "columns {:?} and {:?} both hold the {field}; keep one",
                            names[previous], name
                        ));
                    }
                }
                None => ignored.push(name.to_string()),
            }
        }
        if names.iter().all(|name| name.trim().is_empty()) {
            return Err("the file is empty or its header line is blank; expected a header such as \
                        symbol,timestamp,open,high,low,close,volume"
                .into());
        }
        let missing: Vec<&str> = ["timestamp", "open", "high", "low", "close", "volume"]
            .into_iter()
            .filter(|field| !found.contains_key(field))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "missing column{} {}; found {} (names match case-insensitively; the timestamp may also be \
                 called date, datetime or time)",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
            ));
        }
        let symbol = found.get("symbol").copied();
        match (symbol, fixed_symbol) {
            (None, false) => {
                return Err("there is no symbol column; pass --symbol SYMBOL to load a file of one symbol".into());
            }
            (Some(_), true) => {
                return Err("the file has a symbol column, so --symbol does not apply; drop --symbol".into());
            }
            _ => {}
        }
        let adj_close = found.get("adj_close").copied();
        if adjust && adj_close.is_none() {
            return Err(format!(
                "--adjust needs an adjusted close column, and there is none; it may be called {ADJ_CLOSE_NAMES} \
                 (any case); found {}. Drop --adjust to load the prices as they are",
                names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(ColumnMap {
            symbol,
            timestamp: found["timestamp"],
            open: found["open"],
            high: found["high"],
            low: found["low"],
            close: found["close"],
            volume: found["volume"],
            vwap: found.get("vwap").copied(),
            trade_count: found.get("trade_count").copied(),
            adj_close,
            ignored,
            width: names.len(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn map(header: &str, fixed_symbol: bool) -> Result<ColumnMap, String> {
        ColumnMap::from_names(header.split(','), fixed_symbol, false)
    }

    fn adjusted(header: &str) -> Result<ColumnMap, String> {
        ColumnMap::from_names(header.split(','), false, true)
    }

    #[test]
    fn an_adjusted_close_is_used_only_with_adjust() {
        for name in ["adj_close", "Adj Close", "ADJ CLOSE", "Adjusted_Close", "adjusted close", "AdjClose"] {
            let header = format!("symbol,date,open,high,low,close,volume,{name}");
            let columns = adjusted(&header).unwrap();
            assert_eq!(columns.adj_close, Some(7), "{name}");
            assert!(columns.ignored.is_empty(), "{name}");
            let columns = map(&header, false).unwrap();
            assert_eq!((columns.adj_close, columns.ignored.clone()), (None, vec![name.to_string()]), "{name}");
        }
        let missing = adjusted("symbol,date,open,high,low,close,volume").unwrap_err();
        assert!(missing.starts_with("--adjust needs an adjusted close column"), "{missing}");
        assert!(missing.contains(ADJ_CLOSE_NAMES), "{missing}");
        let header = "symbol,date,open,high,low,close,volume,adj_close,Adj Close";
        let twice = adjusted(header).unwrap_err();
        assert!(twice.contains("\"adj_close\" and \"Adj Close\" both hold the adj_close"), "{twice}");
        assert_eq!(map(header, false).unwrap().ignored.len(), 2);
    }

    #[test]
    fn header_mapping_is_case_insensitive_and_knows_aliases() {
        let columns = map("Date,Open,High,Low,Close,Adj Close,Volume", true).unwrap();
        assert_eq!((columns.timestamp, columns.open, columns.close, columns.volume), (0, 1, 4, 6));
        assert_eq!(columns.symbol, None);
        assert_eq!(columns.ignored, vec!["Adj Close".to_string()]);
        let columns = map("\u{feff}SYMBOL, DateTime ,open,high,low,close,volume,VWAP,Trade_Count", false).unwrap();
        assert_eq!(
            (columns.symbol, columns.timestamp, columns.vwap, columns.trade_count),
            (Some(0), 1, Some(7), Some(8))
        );
        assert!(columns.ignored.is_empty());
        assert_eq!(map("ticker,time,open,high,low,close,volume", false).unwrap().symbol, Some(0));
    }

    #[test]
    fn header_mapping_explains_what_is_wrong() {
        let missing = map("symbol,timestamp,open,high,volume", false).unwrap_err();
        assert!(missing.contains("missing columns low, close"), "{missing}");
        let twice = map("symbol,date,timestamp,open,high,low,close,volume", false).unwrap_err();
        assert!(twice.contains("\"date\" and \"timestamp\""), "{twice}");
        let no_symbol = map("date,open,high,low,close,volume", false).unwrap_err();
        assert!(no_symbol.contains("--symbol"), "{no_symbol}");
        let both = map("symbol,date,open,high,low,close,volume", true).unwrap_err();
        assert!(both.contains("drop --symbol"), "{both}");
        assert!(map("", false).unwrap_err().contains("empty"));
    }
}
