//! Binance's public market-data archive (`data.binance.vision`): one ZIP of CSV per symbol, kind
//! and day (`daily/`) or calendar month (`monthly/`), each with a `.CHECKSUM` file beside it
//! holding the ZIP's sha256 (`<hex>  <file name>`):
//! `spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2021-04.zip`,
//! `spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2021-05-03.zip`,
//! `spot/daily/trades/BTCUSDT/BTCUSDT-trades-2021-05-03.zip`.
//!
//! The CSV has no header (a header line is skipped where one appears). Timestamps are
//! milliseconds, except in spot files from 2025-01-01 on, which carry microseconds; both are read.
//! - klines: `open_time, open, high, low, close, volume, close_time, quote_volume, trades,
//!   taker_buy_base, taker_buy_quote, ignore`
//! - aggTrades: `agg_trade_id, price, qty, first_trade_id, last_trade_id, time, is_buyer_maker,
//!   is_best_match`
//! - trades: `trade_id, price, qty, quote_qty, time, is_buyer_maker, is_best_match`

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, NaiveDate, TimeZone, Utc};

use super::rest::{http_client, status_error};
use super::{ExchangeError, Sequenced};
use crate::admin::metrics::Metrics;
use crate::model::{parse_decimal, Candle, DataRecord, Interval, ParseError, Trade, TradeKind};

/// Where Binance serves the archive (the `data/` folder of data.binance.vision).
pub const DEFAULT_ARCHIVE_URL: &str = "https://data.binance.vision/data";

/// Downloads of one file whose sha256 does not match its `.CHECKSUM` before the file is rejected.
const CHECKSUM_ATTEMPTS: u32 = 3;

/// What an archive file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    Klines(Interval),
    AggTrades,
    Trades,
}

/// The span one archive file covers: a UTC day or a calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    Day(NaiveDate),
    /// The month of this date (always its first day).
    Month(NaiveDate),
}

fn midnight_ms(d: NaiveDate) -> i64 {
    Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN)).timestamp_millis()
}

impl Period {
    /// The day of `ms` (UTC).
    pub fn day_of(ms: i64) -> Period {
        Period::Day(Utc.timestamp_millis_opt(ms).single().unwrap_or_default().date_naive())
    }

    /// The calendar month of `ms` (UTC).
    pub fn month_of(ms: i64) -> Period {
        let d = Utc.timestamp_millis_opt(ms).single().unwrap_or_default().date_naive();
        Period::Month(d.with_day(1).unwrap_or(d))
    }

    pub fn start_ms(&self) -> i64 {
        match self {
            Period::Day(d) | Period::Month(d) => midnight_ms(*d),
        }
    }

    /// The start of the next period.
    pub fn end_ms(&self) -> i64 {
        match self {
            Period::Day(d) => midnight_ms(*d) + 86_400_000,
            Period::Month(d) => midnight_ms(d.checked_add_months(chrono::Months::new(1)).unwrap_or(*d)),
        }
    }

    /// `2021-04-02` or `2021-04`, as file names carry it.
    pub fn label(&self) -> String {
        match self {
            Period::Day(d) => d.format("%Y-%m-%d").to_string(),
            Period::Month(d) => d.format("%Y-%m").to_string(),
        }
    }

    fn folder(&self) -> &'static str {
        match self {
            Period::Day(_) => "daily",
            Period::Month(_) => "monthly",
        }
    }

    /// The period a file name's label and its folder (`daily`, `monthly`) name.
    fn parse(folder: &str, label: &str) -> Option<Period> {
        match folder {
            "daily" if label.len() == 10 => NaiveDate::parse_from_str(label, "%Y-%m-%d").ok().map(Period::Day),
            "monthly" if label.len() == 7 => {
                NaiveDate::parse_from_str(&format!("{label}-01"), "%Y-%m-%d").ok().map(Period::Month)
            }
            _ => None,
        }
    }
}

impl Dataset {
    /// `BTCUSDT-1m`, `BTCUSDT-aggTrades`: what every file name of this dataset starts with.
    fn stem(&self, symbol: &str) -> String {
        match self {
            Dataset::Klines(i) => format!("{symbol}-{i}"),
            Dataset::AggTrades => format!("{symbol}-aggTrades"),
            Dataset::Trades => format!("{symbol}-trades"),
        }
    }

    /// `BTCUSDT-1m-2021-04.zip`.
    pub fn file_name(&self, symbol: &str, period: Period) -> String {
        format!("{}-{}.zip", self.stem(symbol), period.label())
    }

    /// The file's path under the archive's base URL: `spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2021-04.zip`.
    pub fn path(&self, symbol: &str, period: Period) -> String {
        let file = self.file_name(symbol, period);
        match self {
            Dataset::Klines(i) => format!("spot/{}/klines/{symbol}/{i}/{file}", period.folder()),
            Dataset::AggTrades => format!("spot/{}/aggTrades/{symbol}/{file}", period.folder()),
            Dataset::Trades => format!("spot/{}/trades/{symbol}/{file}", period.folder()),
        }
    }

    /// What a path under the base URL names: the dataset, the symbol, the period, and whether it is
    /// the `.CHECKSUM` file. `None` for anything else.
    pub fn parse_path(path: &str) -> Option<(Dataset, String, Period, bool)> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (folder, dataset, symbol, file) = match parts.as_slice() {
            ["spot", folder, "klines", symbol, interval, file] => {
                (*folder, Dataset::Klines(interval.parse().ok()?), *symbol, *file)
            }
            ["spot", folder, "aggTrades", symbol, file] => (*folder, Dataset::AggTrades, *symbol, *file),
            ["spot", folder, "trades", symbol, file] => (*folder, Dataset::Trades, *symbol, *file),
            _ => return None,
        };
        let (file, checksum) = match file.strip_suffix(".CHECKSUM") {
            Some(zip) => (zip, true),
            None => (file, false),
        };
        let label = file.strip_suffix(".zip")?.strip_prefix(&dataset.stem(symbol))?.strip_prefix('-')?;
        Some((dataset, symbol.to_owned(), Period::parse(folder, label)?, checksum))
    }

    /// One CSV line's record; `None` for a header (some files have one) or a blank line.
    fn parse_line(&self, symbol: &str, line: &str) -> Result<Option<Sequenced>, String> {
        let line = line.trim_end_matches('\r');
        if !line.starts_with(|c: char| c.is_ascii_digit()) {
            return Ok(None);
        }
        let fields: Vec<&str> = line.split(',').collect();
        match self {
            Dataset::Klines(i) => kline_row(symbol, *i, &fields),
            Dataset::AggTrades => agg_trade_row(symbol, &fields),
            Dataset::Trades => trade_row(symbol, &fields),
        }
        .map(Some)
    }
}

/// An archive file's CSV, its checksum verified, decoded a record at a time: a day of a busy
/// symbol's trades is millions of lines, held as text (≈70 bytes a trade) rather than decoded.
#[derive(Debug)]
pub struct CsvFile {
    dataset: Dataset,
    symbol: String,
    text: String,
    /// Byte offset of the next line, and of the line read last.
    pos: usize,
    last_start: usize,
    /// 1-based number of the next line.
    line: usize,
}

impl CsvFile {
    pub fn new(dataset: Dataset, symbol: &str, text: String) -> CsvFile {
        CsvFile { dataset, symbol: symbol.to_owned(), text, pos: 0, last_start: 0, line: 1 }
    }

    /// The next record, `None` at the end; a line that is not a record of the dataset is an error
    /// naming it.
    pub fn next_record(&mut self) -> Result<Option<Sequenced>, ParseError> {
        while self.pos < self.text.len() {
            let rest = &self.text[self.pos..];
            let len = rest.find('\n').map_or(rest.len(), |n| n + 1);
            let (start, line) = (self.pos, self.line);
            self.pos += len;
            self.line += 1;
            match self.dataset.parse_line(&self.symbol, rest[..len].trim_end_matches('\n')) {
                Ok(Some(record)) => {
                    self.last_start = start;
                    return Ok(Some(record));
                }
                Ok(None) => continue,
                Err(reason) => return Err(csv_error(line, reason)),
            }
        }
        Ok(None)
    }

    /// Reads the record returned last again on the next call.
    pub fn unread(&mut self) {
        let skipped_lines = self.text[self.last_start..self.pos].matches('\n').count();
        self.line -= skipped_lines.max(1);
        self.pos = self.last_start;
    }
}

fn csv_error(line: usize, reason: String) -> ParseError {
    ParseError::Csv { line, reason }
}

/// An archive timestamp in epoch ms: values of 10^14 and more are microseconds (ms that large
/// would be thousands of years away; µs that small are 1973).
pub fn archive_time_ms(value: i64) -> i64 {
    if value >= 100_000_000_000_000 {
        value / 1000
    } else {
        value
    }
}

fn field<'a>(fields: &[&'a str], i: usize, name: &str) -> Result<&'a str, String> {
    fields.get(i).copied().ok_or_else(|| format!("{} columns, no `{name}`", fields.len()))
}

fn int(fields: &[&str], i: usize, name: &str) -> Result<i64, String> {
    let v = field(fields, i, name)?;
    v.parse().map_err(|_| format!("`{name}` is not an integer: {v:?}"))
}

fn decimal(fields: &[&str], i: usize, name: &'static str) -> Result<crate::model::Decimal, String> {
    parse_decimal(name, field(fields, i, name)?).map_err(|e| e.to_string())
}

/// An empty field is a value the source did not have: never invented.
fn optional_decimal(fields: &[&str], i: usize, name: &'static str) -> Result<Option<crate::model::Decimal>, String> {
    match fields.get(i) {
        None | Some(&"") => Ok(None),
        Some(_) => decimal(fields, i, name).map(Some),
    }
}

fn flag(fields: &[&str], i: usize, name: &str) -> Result<bool, String> {
    match field(fields, i, name)? {
        v if v.eq_ignore_ascii_case("true") => Ok(true),
        v if v.eq_ignore_ascii_case("false") => Ok(false),
        v => Err(format!("`{name}` is not True/False: {v:?}")),
    }
}

fn kline_row(symbol: &str, interval: Interval, f: &[&str]) -> Result<Sequenced, String> {
    let open_time = archive_time_ms(int(f, 0, "open_time")?);
    let trades = match f.get(8) {
        None | Some(&"") => None,
        Some(_) => Some(int(f, 8, "trades")?.try_into().map_err(|_| "`trades` is negative".to_owned())?),
    };
    let candle = Candle {
        symbol: symbol.to_owned(),
        interval,
        open_time,
        close_time: archive_time_ms(int(f, 6, "close_time")?),
        open: decimal(f, 1, "open")?,
        high: decimal(f, 2, "high")?,
        low: decimal(f, 3, "low")?,
        close: decimal(f, 4, "close")?,
        volume: decimal(f, 5, "volume")?,
        quote_volume: optional_decimal(f, 7, "quote_volume")?,
        trades,
        taker_buy_base: optional_decimal(f, 9, "taker_buy_base")?,
        taker_buy_quote: optional_decimal(f, 10, "taker_buy_quote")?,
        closed: true,
    };
    Ok(Sequenced { seq: open_time, time: open_time, record: DataRecord::Candle(candle) })
}

fn agg_trade_row(symbol: &str, f: &[&str]) -> Result<Sequenced, String> {
    let t = Trade {
        symbol: symbol.to_owned(),
        kind: TradeKind::AggTrade,
        id: int(f, 0, "agg_trade_id")?,
        price: decimal(f, 1, "price")?,
        qty: decimal(f, 2, "qty")?,
        first_trade_id: Some(int(f, 3, "first_trade_id")?),
        last_trade_id: Some(int(f, 4, "last_trade_id")?),
        time: archive_time_ms(int(f, 5, "time")?),
        is_buyer_maker: flag(f, 6, "is_buyer_maker")?,
    };
    Ok(Sequenced { seq: t.id, time: t.time, record: DataRecord::Trade(t) })
}

fn trade_row(symbol: &str, f: &[&str]) -> Result<Sequenced, String> {
    let t = Trade {
        symbol: symbol.to_owned(),
        kind: TradeKind::Trade,
        id: int(f, 0, "trade_id")?,
        price: decimal(f, 1, "price")?,
        qty: decimal(f, 2, "qty")?,
        first_trade_id: None,
        last_trade_id: None,
        time: archive_time_ms(int(f, 4, "time")?),
        is_buyer_maker: flag(f, 5, "is_buyer_maker")?,
    };
    Ok(Sequenced { seq: t.id, time: t.time, record: DataRecord::Trade(t) })
}

/// The sha256 of `bytes`, lower-case hex, as `.CHECKSUM` files write it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The CSV inside an archive ZIP (its one `.csv` entry).
pub fn unzip_csv(zip: &[u8]) -> Result<Vec<u8>, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(|e| format!("not a ZIP: {e}"))?;
    let index = (0..archive.len())
        .find(|&i| archive.name_for_index(i).is_some_and(|n| n.ends_with(".csv")))
        .ok_or("the ZIP holds no .csv")?;
    let mut entry = archive.by_index(index).map_err(|e| format!("unreadable ZIP entry: {e}"))?;
    let mut csv = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut csv).map_err(|e| format!("unreadable ZIP entry: {e}"))?;
    Ok(csv)
}

/// What the archive answered for one file.
#[derive(Debug)]
pub enum Fetched {
    /// The file's CSV, its checksum verified.
    Csv(CsvFile),
    /// The archive has no such file (not published yet, or never).
    Missing,
    /// The file was there but is not to be trusted: why. Nothing of it may be used.
    Rejected(String),
}

/// A client of the archive at one base URL.
#[derive(Clone)]
pub struct BinanceArchive {
    http: reqwest::Client,
    base: Arc<str>,
    metrics: Arc<Metrics>,
}

impl BinanceArchive {
    pub fn new(base_url: &str, metrics: Arc<Metrics>) -> Result<Self, ExchangeError> {
        // Files are large: a month of 1m klines, a day of a busy symbol's trades.
        let (base, http) = http_client(base_url, Duration::from_secs(300))?;
        Ok(BinanceArchive { http, base, metrics })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Counts a file rejected after it was verified: its CSV turned out unreadable part-way.
    pub fn count_rejected(&self) {
        self.metrics.archive_files.with_label_values(&["rejected"]).inc();
    }

    /// `None` for a 404; the body otherwise; a transport error or another status is an error
    /// (retryable as the loader retries REST calls).
    async fn get(&self, url: &str) -> Result<Option<bytes::Bytes>, ExchangeError> {
        let transport = |source| ExchangeError::Transport { url: url.to_owned(), source };
        let resp = self.http.get(url).send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        let body = resp.bytes().await.map_err(transport)?;
        if status != 200 {
            return Err(status_error(url, status, &body));
        }
        Ok(Some(body))
    }

    /// One file's records. A ZIP whose sha256 differs from its `.CHECKSUM` is downloaded again, up
    /// to [`CHECKSUM_ATTEMPTS`] times, then rejected; so is one without a checksum, or whose CSV
    /// cannot be read. Counted in `streamforge_archive_files_total{result}`.
    pub async fn file(&self, dataset: Dataset, symbol: &str, period: Period) -> Result<Fetched, ExchangeError> {
        let url = format!("{}/{}", self.base, dataset.path(symbol, period));
        let count = |result: &str| self.metrics.archive_files.with_label_values(&[result]).inc();
        let mut attempt = 0;
        let verdict = loop {
            attempt += 1;
            // Both at once: a file costs one round trip.
            let checksum_url = format!("{url}.CHECKSUM");
            let (zip, checksum) = tokio::try_join!(self.get(&url), self.get(&checksum_url))?;
            let Some(zip) = zip else {
                count("missing");
                return Ok(Fetched::Missing);
            };
            let Some(checksum) = checksum else {
                break "the archive has no .CHECKSUM for it".to_owned();
            };
            let expected = String::from_utf8_lossy(&checksum).split_whitespace().next().unwrap_or("").to_lowercase();
            let actual = sha256_hex(&zip);
            if actual != expected {
                count("checksum_mismatch");
                tracing::warn!(%url, attempt, %expected, %actual, "An archive file does not match its checksum.");
                if attempt < CHECKSUM_ATTEMPTS {
                    continue;
                }
                break format!("sha256 {actual} differs from its .CHECKSUM {expected} ({attempt} downloads)");
            }
            match unzip_csv(&zip).and_then(|csv| String::from_utf8(csv).map_err(|e| format!("not UTF-8: {e}"))) {
                Ok(text) => {
                    count("verified");
                    return Ok(Fetched::Csv(CsvFile::new(dataset, symbol, text)));
                }
                Err(reason) => break reason,
            }
        };
        count("rejected");
        tracing::warn!(%url, reason = %verdict, "Archive file rejected: nothing of it is used.");
        Ok(Fetched::Rejected(verdict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record of a CSV, in file order.
    fn records(dataset: Dataset, symbol: &str, csv: &str) -> Vec<Sequenced> {
        let mut file = CsvFile::new(dataset, symbol, csv.to_owned());
        std::iter::from_fn(|| file.next_record().unwrap()).collect()
    }

    #[test]
    fn paths_name_the_period_and_parse_back() {
        let day = Period::day_of(1_620_000_000_000); // 2021-05-03T00:00:00Z
        let month = Period::month_of(1_620_000_000_000);
        let one_minute: Interval = "1m".parse().unwrap();
        assert_eq!(
            Dataset::Klines(one_minute).path("BTCUSDT", month),
            "spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2021-05.zip"
        );
        assert_eq!(
            Dataset::AggTrades.path("ETHUSDT", day),
            "spot/daily/aggTrades/ETHUSDT/ETHUSDT-aggTrades-2021-05-03.zip"
        );
        assert_eq!(Dataset::Trades.file_name("ETHUSDT", day), "ETHUSDT-trades-2021-05-03.zip");
        assert_eq!((day.start_ms(), day.end_ms()), (1_620_000_000_000, 1_620_086_400_000));
        assert_eq!((month.start_ms(), month.end_ms()), (1_619_827_200_000, 1_622_505_600_000));
        for (dataset, period) in
            [(Dataset::Klines(one_minute), month), (Dataset::AggTrades, day), (Dataset::Trades, day)]
        {
            let path = dataset.path("BTCUSDT", period);
            assert_eq!(Dataset::parse_path(&path), Some((dataset, "BTCUSDT".into(), period, false)));
            assert_eq!(
                Dataset::parse_path(&format!("{path}.CHECKSUM")),
                Some((dataset, "BTCUSDT".into(), period, true))
            );
        }
        // A daily label in the monthly folder, another symbol's file, an unknown kind.
        assert_eq!(Dataset::parse_path("spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2021-05-03.zip"), None);
        assert_eq!(Dataset::parse_path("spot/daily/klines/BTCUSDT/1m/ETHUSDT-1m-2021-05-03.zip"), None);
        assert_eq!(Dataset::parse_path("spot/daily/bookTicker/BTCUSDT/BTCUSDT-bookTicker-2021-05-03.zip"), None);
    }

    /// The first rows of a real archive file (nautilus_trader's copy of
    /// `ADABTC-1m-2021-11-27.csv`, tests/fixtures/archive/PROVENANCE.md), and the same candle as
    /// a 2025 file writes it, in microseconds.
    #[test]
    fn reads_kline_csv_in_milliseconds_and_microseconds() {
        let csv =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/archive/ADABTC-1m-2021-11-27.csv"))
                .unwrap();
        let one_minute: Interval = "1m".parse().unwrap();
        let rows = records(Dataset::Klines(one_minute), "ADABTC", &String::from_utf8(csv).unwrap());
        assert_eq!(rows.len(), 10);
        let DataRecord::Candle(first) = &rows[0].record else { panic!("a candle") };
        assert_eq!((rows[0].seq, first.close_time), (1_637_971_200_000, 1_637_971_259_999));
        assert_eq!(first.open.to_string(), "0.00002853");
        assert_eq!(first.volume.to_string(), "36304.20000000");
        assert_eq!((first.trades, first.taker_buy_quote.map(|d| d.to_string())), (Some(79), Some("0.55694227".into())));
        assert!(rows.windows(2).all(|w| w[1].seq == w[0].seq + 60_000));

        let micros = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n\
                      1735689600000000,0.00002853,0.00002854,0.00002851,0.00002854,36304.20000000,1735689659999999,1.03547608,79,19523.00000000,0.55694227,0\n";
        let rows = records(Dataset::Klines(one_minute), "ADABTC", micros);
        let DataRecord::Candle(c) = &rows[0].record else { panic!("a candle") };
        assert_eq!((c.open_time, c.close_time), (1_735_689_600_000, 1_735_689_659_999));
    }

    #[test]
    fn reads_trade_csv_and_names_the_bad_line() {
        let agg = "13519807,0.00141342,23.00000000,15373518,15373519,1570752011620,True,True\n";
        let rows = records(Dataset::AggTrades, "XRPETH", agg);
        let DataRecord::Trade(t) = &rows[0].record else { panic!("a trade") };
        assert_eq!(
            (t.id, t.first_trade_id, t.last_trade_id, t.time),
            (13_519_807, Some(15_373_518), Some(15_373_519), 1_570_752_011_620)
        );
        assert!(t.is_buyer_maker && t.kind == TradeKind::AggTrade);

        let trades = "1528411466,2683.81000000,0.00420000,11.27200200,1723161253999000,false,true\n";
        let rows = records(Dataset::Trades, "ETHUSDT", trades);
        let DataRecord::Trade(t) = &rows[0].record else { panic!("a trade") };
        assert_eq!((t.id, t.time, t.is_buyer_maker), (1_528_411_466, 1_723_161_253_999, false));

        let bad = "1528411466,2683.81,0.0042,11.27,1723161253999,false,true\n1528411467,x,0.0042,11.27,1723161253999,false,true\n";
        let mut file = CsvFile::new(Dataset::Trades, "ETHUSDT", bad.into());
        assert_eq!(file.next_record().unwrap().map(|r| r.seq), Some(1_528_411_466));
        file.unread();
        assert_eq!(file.next_record().unwrap().map(|r| r.seq), Some(1_528_411_466), "read again after unread");
        let err = file.next_record().unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("price"), "{err}");
    }

    #[test]
    fn checksums_are_lower_case_sha256_hex() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
