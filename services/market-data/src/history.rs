//! Candle history from CSV files, as `wizdata import candles` reads them.
//!
//! Two layouts are understood, by their header:
//! - Yahoo: `Date,Open,High,Low,Close,Adj Close,Volume`
//! - `Date,Time,Open,High,Low,Close,Volume,OpenInterest` (or one `Datetime`
//!   column instead of Date and Time).
//!
//! Times are UTC. Every bad row is reported with its line number, so a file
//! can be fixed in one pass.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::Read;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use prost_types::Timestamp;
use wizdata::r#type::v1::{Candle, Interval};

use crate::interval::{code, width_seconds};

/// A row that cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the file.
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

struct Layout {
    date: usize,
    time: Option<usize>,
    open: usize,
    high: usize,
    low: usize,
    close: usize,
    volume: usize,
}

impl Layout {
    fn from_header(header: &csv::StringRecord) -> Result<Self, String> {
        let columns: HashMap<String, usize> = header
            .iter()
            .enumerate()
            .map(|(index, name)| (name.trim().to_ascii_lowercase().replace(['_', ' '], ""), index))
            .collect();
        let find = |name: &str| columns.get(name).copied();
        let need = |name: &str| find(name).ok_or_else(|| format!("the header has no {name:?} column"));
        let date = find("date").or_else(|| find("datetime")).ok_or_else(|| {
            "the header names neither Date nor Datetime; expected Date,Open,High,Low,Close,Adj Close,Volume or Date,Time,Open,High,Low,Close,Volume,OpenInterest".to_owned()
        })?;
        Ok(Self {
            date,
            time: find("time"),
            open: need("open")?,
            high: need("high")?,
            low: need("low")?,
            close: need("close")?,
            volume: need("volume")?,
        })
    }
}

/// The candles of a CSV file at `interval`, or every bad row.
pub fn parse_candles(reader: impl Read, interval: Interval) -> Result<Vec<Candle>, Vec<RowError>> {
    let width = width_seconds(interval)
        .ok_or_else(|| vec![RowError { line: 0, message: "an interval is required: 1m, 5m, 15m, 1h or 1d".into() }])?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(reader);
    let header = reader.headers().map_err(|error| vec![RowError { line: 1, message: error.to_string() }])?.clone();
    let layout = Layout::from_header(&header).map_err(|message| vec![RowError { line: 1, message }])?;
    let mut candles = Vec::new();
    let mut errors = Vec::new();
    let mut first_line_of: HashMap<i64, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map_or(0, |position| position.line());
                errors.push(RowError { line, message: error.to_string() });
                continue;
            }
        };
        let line = record.position().map_or(0, |position| position.line());
        match parse_row(&record, &layout, interval, width) {
            Ok(candle) => {
                let open_time = candle.open_time.expect("parsed candles have a time").seconds;
                match first_line_of.entry(open_time) {
                    Entry::Occupied(first) => {
                        errors.push(RowError { line, message: format!("duplicates the bar of line {}", first.get()) })
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(line);
                        candles.push(candle);
                    }
                }
            }
            Err(message) => errors.push(RowError { line, message }),
        }
    }
    if errors.is_empty() { Ok(candles) } else { Err(errors) }
}

fn parse_row(record: &csv::StringRecord, layout: &Layout, interval: Interval, width: i64) -> Result<Candle, String> {
    let field = |index: usize, name: &str| match record.get(index) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(format!("{name} is missing")),
    };
    let number = |index: usize, name: &str| -> Result<f64, String> {
        let text = field(index, name)?;
        let value: f64 = text.parse().map_err(|_| format!("{name} {text:?} is not a number"))?;
        if value.is_finite() && value >= 0.0 {
            Ok(value)
        } else {
            Err(format!("{name} {text} is not a non-negative number"))
        }
    };
    let date_text = field(layout.date, "date")?;
    let time_text = match layout.time {
        Some(index) => Some(field(index, "time")?),
        None => None,
    };
    let open_time = parse_time(date_text, time_text)?.and_utc().timestamp();
    if open_time.rem_euclid(width) != 0 {
        return Err(format!("{date_text} {} is not on a {} boundary", time_text.unwrap_or(""), code(interval)));
    }
    let (open, high, low, close) = (
        number(layout.open, "open")?,
        number(layout.high, "high")?,
        number(layout.low, "low")?,
        number(layout.close, "close")?,
    );
    let volume = number(layout.volume, "volume")?;
    check_price_order(open, high, low, close).map_err(|(_, why)| why)?;
    Ok(Candle {
        open_time: Some(Timestamp { seconds: open_time, nanos: 0 }),
        open,
        high,
        low,
        close,
        volume,
        trade_count: 0,
        closed: true,
    })
}

/// A bar's prices in order: low <= open, close <= high. The error names the
/// field at fault and why.
pub(crate) fn check_price_order(open: f64, high: f64, low: f64, close: f64) -> Result<(), (&'static str, String)> {
    if high < low {
        return Err(("high", format!("high {high} is below low {low}")));
    }
    if open > high || close > high {
        return Err(("high", format!("high {high} is below open {open} or close {close}")));
    }
    if open < low || close < low {
        return Err(("low", format!("low {low} is above open {open} or close {close}")));
    }
    Ok(())
}

const DATE_FORMATS: [&str; 4] = ["%Y-%m-%d", "%Y%m%d", "%m/%d/%Y", "%Y/%m/%d"];
const TIME_FORMATS: [&str; 4] = ["%H:%M:%S", "%H:%M", "%H%M%S", "%H:%M:%S%.f"];
const DATETIME_FORMATS: [&str; 4] =
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"];

fn parse_time(date: &str, time: Option<&str>) -> Result<NaiveDateTime, String> {
    let parse_date = |text: &str| DATE_FORMATS.iter().find_map(|format| NaiveDate::parse_from_str(text, format).ok());
    match time {
        Some(time) => {
            let day = parse_date(date).ok_or_else(|| format!("date {date:?} is not a date (YYYY-MM-DD)"))?;
            let at = TIME_FORMATS
                .iter()
                .find_map(|format| NaiveTime::parse_from_str(time, format).ok())
                .ok_or_else(|| format!("time {time:?} is not a time (HH:MM[:SS])"))?;
            Ok(day.and_time(at))
        }
        None => parse_date(date)
            .map(|day| day.and_time(NaiveTime::MIN))
            .or_else(|| DATETIME_FORMATS.iter().find_map(|format| NaiveDateTime::parse_from_str(date, format).ok()))
            .ok_or_else(|| format!("date {date:?} is not a date (YYYY-MM-DD) or date and time")),
    }
}

/// Candles per ImportCandles message.
const CANDLES_PER_MESSAGE: usize = 1000;

/// Streams `candles` to a market data service's ImportCandles, over any
/// channel a generated client takes.
pub async fn import<C>(
    client: &mut wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient<C>,
    symbol: &str,
    interval: Interval,
    candles: Vec<Candle>,
) -> Result<wizdata::marketdata::v1::ImportCandlesResponse, tonic::Status>
where
    C: tonic::client::GrpcService<tonic::body::Body>,
    C::Error: Into<tonic::codegen::StdError>,
    C::ResponseBody: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
    <C::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let mut messages: Vec<wizdata::marketdata::v1::ImportCandlesRequest> = candles
        .chunks(CANDLES_PER_MESSAGE)
        .map(|chunk| wizdata::marketdata::v1::ImportCandlesRequest {
            symbol: String::new(),
            interval: 0,
            candles: chunk.to_vec(),
        })
        .collect();
    if messages.is_empty() {
        messages.push(Default::default());
    }
    messages[0].symbol = symbol.to_owned();
    messages[0].interval = interval as i32;
    Ok(client.import_candles(tokio_stream::iter(messages)).await?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(errors: Vec<RowError>) -> Vec<(u64, String)> {
        errors.into_iter().map(|error| (error.line, error.message)).collect()
    }

    #[test]
    fn reads_the_yahoo_layout() {
        let csv = "Date,Open,High,Low,Close,Adj Close,Volume\n\
                   1995-01-03,2.179012,2.191358,2.117284,2.117284,1.883304,36301200\n\
                   1995-01-04,2.123457,2.148148,2.092592,2.135803,1.899776,46051600\n";
        let candles = parse_candles(csv.as_bytes(), Interval::OneDay).unwrap();
        assert_eq!(candles.len(), 2);
        assert_eq!(candles[0].open_time.unwrap().seconds, 789_091_200);
        assert_eq!(
            (candles[0].open, candles[0].high, candles[0].low, candles[0].close),
            (2.179012, 2.191358, 2.117284, 2.117284)
        );
        assert_eq!(candles[1].volume, 46_051_600.0);
    }

    #[test]
    fn reads_the_date_time_layout() {
        let csv = "Date,Time,Open,High,Low,Close,Volume,OpenInterest\n\
                   2015-09-23,20:57:00,3067,3068,3066,3066,182,0\n\
                   2015-09-23,20:58:00,3066,3066,3065,3065,10,0\n";
        let candles = parse_candles(csv.as_bytes(), Interval::OneMinute).unwrap();
        assert_eq!(candles[1].open_time.unwrap().seconds, 1_443_041_880);
    }

    #[test]
    fn reports_every_bad_row_by_line() {
        let csv = "Date,Open,High,Low,Close,Adj Close,Volume\n\
                   1995-01-03,2.1,2.2,2.0,2.1,2.1,100\n\
                   1995-01-04,2.1,,2.0,2.1,2.1,100\n\
                   1995-01-05,2.1,abc,2.0,2.1,2.1,100\n\
                   1995-01-06,2.1,1.9,2.0,2.1,2.1,100\n\
                   1995-01-03,2.1,2.2,2.0,2.1,2.1,100\n\
                   1995-01-07\n";
        let errors = lines(parse_candles(csv.as_bytes(), Interval::OneDay).unwrap_err());
        assert_eq!(
            errors,
            vec![
                (3, "high is missing".to_owned()),
                (4, "high \"abc\" is not a number".to_owned()),
                (5, "high 1.9 is below low 2".to_owned()),
                (6, "duplicates the bar of line 2".to_owned()),
                (7, "open is missing".to_owned()),
            ]
        );
    }

    #[test]
    fn refuses_times_off_the_interval_boundary_and_unknown_layouts() {
        let csv = "Datetime,Open,High,Low,Close,Volume,OpenInterest\n2015-09-23T20:57:42.146,1,1,1,1,1,0\n";
        let errors = lines(parse_candles(csv.as_bytes(), Interval::OneMinute).unwrap_err());
        assert_eq!(errors[0].0, 2);
        assert!(errors[0].1.contains("not on a 1m boundary"), "{errors:?}");
        let errors = lines(parse_candles("Symbol,Price\nX,1\n".as_bytes(), Interval::OneDay).unwrap_err());
        assert_eq!(errors[0].0, 1);
    }
}
