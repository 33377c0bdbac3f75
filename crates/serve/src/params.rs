//! Query parameters of the `/v1` routes, parsed with core's parsers
//! (`Symbol` and `Timestamp` `FromStr`) into core's queries. Messages follow
//! the CLI's: a bad value reads `invalid value 'X' for 'start': <core's
//! reason>` as clap's `for '--start <TIME>'` does, and a reversed window is
//! refused with the text of `strata query`'s check, naming `start` and `end`.

use std::str::FromStr;

use strata_core::{BarQuery, DigestQuery, Order, Symbol, Timestamp};

use crate::config::Limits;
use crate::format::BarFormat;

/// A parameter the client got wrong (400), with the message to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRequest(pub(crate) String);

/// What `/v1/bars` asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BarsRequest {
    /// The store query.
    pub(crate) query: BarQuery,
    /// `format=`, which overrides the `Accept` header.
    pub(crate) format: Option<BarFormat>,
}

/// Parameters `/v1/bars` takes.
const BARS_PARAMS: &str = "symbols (or symbol), start, end, limit, order, format";
/// Parameters `/v1/digest` takes.
const DIGEST_PARAMS: &str = "symbols (or symbol), start, end";

/// `/v1/bars?symbols=A,B&start=..&end=..&limit=N&order=asc|desc&format=..`:
/// symbols are required (comma-separated, and `symbols=`/`symbol=` may
/// repeat); the other parameters may appear once each.
pub(crate) fn bars(pairs: &[(String, String)], limits: &Limits) -> Result<BarsRequest, BadRequest> {
    let mut symbols = Symbols::new(limits.max_symbols);
    let mut window = Window::default();
    let mut limit: Once<usize> = Once::new("limit");
    let mut order: Once<Order> = Once::new("order");
    let mut format: Once<BarFormat> = Once::new("format");
    for (key, value) in pairs {
        match key.as_str() {
            "symbols" | "symbol" => symbols.add(key, value)?,
            "start" | "end" => window.set(key, value)?,
            "limit" => limit.set(parse_value(key, value)?)?,
            "order" => set_order(&mut order, value)?,
            "format" => format.set(BarFormat::from_param(value).ok_or_else(|| {
                BadRequest(format!("invalid value '{value}' for 'format' [possible values: {}]", BarFormat::PARAMS))
            })?)?,
            _ => return Err(unexpected(key, "/v1/bars", BARS_PARAMS)),
        }
    }
    if symbols.list.is_empty() {
        return Err(BadRequest(
            "the following required parameter was not provided: symbols (e.g. /v1/bars?symbols=AAPL,MSFT)".into(),
        ));
    }
    let (start, end) = window.checked()?;
    Ok(BarsRequest {
        query: BarQuery {
            symbols: symbols.list,
            start,
            end,
            limit: limit.value,
            order: order.value.unwrap_or_default(),
        },
        format: format.value,
    })
}

/// `/v1/digest?symbols=..&start=..&end=..`: no symbols means every symbol.
pub(crate) fn digest(pairs: &[(String, String)], limits: &Limits) -> Result<DigestQuery, BadRequest> {
    let mut symbols = Symbols::new(limits.max_symbols);
    let mut window = Window::default();
    for (key, value) in pairs {
        match key.as_str() {
            "symbols" | "symbol" => symbols.add(key, value)?,
            "start" | "end" => window.set(key, value)?,
            _ => return Err(unexpected(key, "/v1/digest", DIGEST_PARAMS)),
        }
    }
    let (start, end) = window.checked()?;
    Ok(DigestQuery { symbols: symbols.list, start, end })
}

/// A route that takes no parameters (`/v1/summary`).
pub(crate) fn none(pairs: &[(String, String)], route: &str) -> Result<(), BadRequest> {
    match pairs.first() {
        Some((key, _)) => Err(BadRequest(format!("unexpected parameter '{key}'; {route} takes no parameters"))),
        None => Ok(()),
    }
}

/// Refuses a window whose start is after its end, with `strata query`'s
/// message (`crates/cli/src/exit.rs`, `check_window`) naming the parameters.
/// An equal start and end (an empty half-open window) is allowed.
pub(crate) fn check_window(start: Option<Timestamp>, end: Option<Timestamp>) -> Result<(), BadRequest> {
    match (start, end) {
        (Some(start), Some(end)) if start > end => {
            Err(BadRequest(format!("start {start} is after end {end}; the window is [start, end)")))
        }
        _ => Ok(()),
    }
}

fn set_order(order: &mut Once<Order>, value: &str) -> Result<(), BadRequest> {
    let parsed = match value {
        "asc" => Order::Ascending,
        "desc" => Order::Descending,
        _ => return Err(BadRequest(format!("invalid value '{value}' for 'order' [possible values: asc, desc]"))),
    };
    order.set(parsed)
}

/// `value` parsed by its type's `FromStr`, or clap's message for `key`.
fn parse_value<T>(key: &str, value: &str) -> Result<T, BadRequest>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|error| BadRequest(format!("invalid value '{value}' for '{key}': {error}")))
}

fn unexpected(key: &str, route: &str, accepted: &str) -> BadRequest {
    BadRequest(format!("unexpected parameter '{key}'; {route} takes {accepted}"))
}

/// The requested symbols, bounded by a limit counted before parsing.
struct Symbols {
    list: Vec<Symbol>,
    max: usize,
}

impl Symbols {
    fn new(max: usize) -> Self {
        Symbols { list: Vec::new(), max }
    }

    /// Adds the comma-separated symbols of one `symbols=` (or `symbol=`) value.
    fn add(&mut self, key: &str, value: &str) -> Result<(), BadRequest> {
        for text in value.split(',') {
            if self.list.len() == self.max {
                return Err(BadRequest(format!(
                    "too many symbols: at most {} per request; split the request",
                    self.max
                )));
            }
            self.list.push(parse_value(key, text)?);
        }
        Ok(())
    }
}

/// `start` and `end`, each at most once.
#[derive(Default)]
struct Window {
    start: Option<Timestamp>,
    end: Option<Timestamp>,
}

impl Window {
    fn set(&mut self, key: &str, value: &str) -> Result<(), BadRequest> {
        let slot = if key == "start" { &mut self.start } else { &mut self.end };
        if slot.is_some() {
            return Err(repeated(key));
        }
        *slot = Some(parse_value(key, value)?);
        Ok(())
    }

    fn checked(self) -> Result<(Option<Timestamp>, Option<Timestamp>), BadRequest> {
        check_window(self.start, self.end)?;
        Ok((self.start, self.end))
    }
}

/// A parameter that may be given once.
struct Once<T> {
    name: &'static str,
    value: Option<T>,
}

impl<T> Once<T> {
    fn new(name: &'static str) -> Self {
        Once { name, value: None }
    }

    fn set(&mut self, value: T) -> Result<(), BadRequest> {
        if self.value.is_some() {
            return Err(repeated(self.name));
        }
        self.value = Some(value);
        Ok(())
    }
}

fn repeated(name: &str) -> BadRequest {
    BadRequest(format!("the parameter '{name}' cannot be given more than once"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pairs(query: &str) -> Vec<(String, String)> {
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (key.to_string(), value.to_string())
            })
            .collect()
    }

    fn bars_error(query: &str) -> String {
        bars(&pairs(query), &Limits::default()).unwrap_err().0
    }

    #[test]
    fn a_full_query_parses_with_core_parsers() {
        let request =
            bars(&pairs("symbols=AAPL,MSFT&symbol=^GSPC&start=2020-01-02&end=2020-01-03T12:00:00Z&limit=5&order=desc&format=csv"), &Limits::default())
                .unwrap();
        let symbols: Vec<&str> = request.query.symbols.iter().map(Symbol::as_str).collect();
        assert_eq!(symbols, ["AAPL", "MSFT", "^GSPC"]);
        assert_eq!(request.query.start, Some(Timestamp::parse("2020-01-02").unwrap()));
        assert_eq!(request.query.end, Some(Timestamp::parse("2020-01-03T12:00:00Z").unwrap()));
        assert_eq!((request.query.limit, request.query.order), (Some(5), Order::Descending));
        assert_eq!(request.format, Some(BarFormat::Csv));
    }

    #[test]
    fn messages_read_like_the_cli() {
        assert!(
            bars_error("start=2020-01-01").starts_with("the following required parameter was not provided: symbols")
        );
        assert_eq!(
            bars_error("symbols=AAPL&start=garbage"),
            "invalid value 'garbage' for 'start': invalid input: \"garbage\" is not a timestamp; use RFC 3339 \
             (2020-01-02T15:04:05Z) or a date (2020-01-02)"
        );
        assert_eq!(
            bars_error("symbols=AAPL&start=2020-01-03&end=2020-01-02"),
            "start 2020-01-03T00:00:00Z is after end 2020-01-02T00:00:00Z; the window is [start, end)"
        );
        assert_eq!(
            bars_error("symbols=AAPL&limit=-1"),
            "invalid value '-1' for 'limit': invalid digit found in string"
        );
        assert!(bars_error("symbols=A/B").starts_with("invalid value 'A/B' for 'symbols': invalid input: symbol"));
        assert_eq!(bars_error("symbols=A&order=up"), "invalid value 'up' for 'order' [possible values: asc, desc]");
        assert_eq!(bars_error("symbols=A&limit=1&limit=2"), "the parameter 'limit' cannot be given more than once");
        assert!(bars_error("symbols=A&synbols=B").starts_with("unexpected parameter 'synbols'; /v1/bars takes"));
        assert!(bars_error("symbols=A&format=xml").starts_with("invalid value 'xml' for 'format'"));
    }

    #[test]
    fn equal_start_and_end_is_an_empty_window_not_an_error() {
        assert!(bars(&pairs("symbols=A&start=2020-01-02&end=2020-01-02"), &Limits::default()).is_ok());
    }

    #[test]
    fn the_symbol_limit_counts_every_value() {
        let limits = Limits { max_symbols: 2, ..Limits::default() };
        assert!(bars(&pairs("symbols=A,B"), &limits).is_ok());
        assert!(bars(&pairs("symbols=A&symbol=B&symbols=C"), &limits).unwrap_err().0.contains("at most 2"));
        assert!(digest(&pairs("symbols=A,B,C"), &limits).unwrap_err().0.contains("at most 2"));
    }

    #[test]
    fn digest_symbols_are_optional_and_summary_takes_nothing() {
        assert_eq!(digest(&[], &Limits::default()).unwrap(), DigestQuery::default());
        assert!(none(&pairs("x=1"), "/v1/summary").unwrap_err().0.contains("takes no parameters"));
    }
}
