//! Binance's public data archive over the recording, laid out as data.binance.vision lays it out
//! under `/data/`: `spot/{daily,monthly}/klines/<SYMBOL>/<interval>/<SYMBOL>-<interval>-<period>.zip`,
//! `spot/{daily,monthly}/{aggTrades,trades}/<SYMBOL>/<SYMBOL>-<kind>-<period>.zip`, each ZIP holding
//! one header-less CSV and a `.CHECKSUM` (`<sha256>  <file name>`) beside it. Timestamps are
//! milliseconds, microseconds for periods from 2025-01-01 on, as Binance changed them for spot.
//!
//! The archive lags the exchange: a file exists for a period that is over before the recording's
//! last day (the "today" whose records only REST has) and that holds recorded records. Faults
//! name files by a part of their name (`2021-05-03`, `BTCUSDT-1m-2021-04`): missing ones are
//! answered 404; corrupt ones carry a changed CSV under the genuine file's checksum; unreadable
//! ones a CSV broken half-way under a checksum that matches it. A file is built
//! once, when first asked for, and kept (its checksum is of the same bytes).

use std::fmt::Write as _;
use std::io::Write as _;

use actix_web::{web, HttpResponse};
use serde_json::Value;

use super::data::{KlineRow, SymbolData, TradeRow};
use super::rest::binance_decimal;
use super::ReplayState;
use crate::exchange::binance::{sha256_hex, Dataset, Period};

/// From this day (2025-01-01) on, spot archive files carry microseconds.
const MICROS_FROM_MS: i64 = 1_735_689_600_000;

/// `GET /data/{path}`: an archive file, its checksum, or 404 (after `rest_delay`, as every answer).
pub(super) async fn file(state: web::Data<ReplayState>, path: web::Path<String>) -> HttpResponse {
    state.gate.count("archive");
    if !state.faults.rest_delay.is_zero() {
        tokio::time::sleep(state.faults.rest_delay).await;
    }
    let not_found = |why: String| HttpResponse::NotFound().content_type("text/plain").body(why);
    let Some((dataset, symbol, period, checksum)) = Dataset::parse_path(&path) else {
        return not_found(format!("no such archive path: {path}"));
    };
    let name = dataset.file_name(&symbol, period);
    let named = |entries: &[String]| entries.iter().any(|e| !e.is_empty() && name.contains(e.as_str()));
    if named(&state.faults.missing_archive) {
        return not_found(format!("{name}: not in the archive (injected)"));
    }
    let cached = state.archive_files.lock().unwrap_or_else(|e| e.into_inner()).get(&name).cloned();
    let (zip, csv) = match cached {
        Some(zip) => (zip, None),
        None => {
            let Some(csv) = state.data.symbols.get(&symbol).and_then(|data| csv_of(data, dataset, period)) else {
                return not_found(format!("{name}: not in the archive"));
            };
            let csv = if named(&state.faults.unreadable_archive) { broken_half_way(&csv) } else { csv };
            let zip = bytes::Bytes::from(zip_one(&name.replace(".zip", ".csv"), &csv));
            state.archive_files.lock().unwrap_or_else(|e| e.into_inner()).insert(name.clone(), zip.clone());
            (zip, Some(csv))
        }
    };
    if checksum {
        return HttpResponse::Ok().content_type("text/plain").body(format!("{}  {name}\n", sha256_hex(&zip)));
    }
    if named(&state.faults.corrupt_archive) {
        let csv = csv.or_else(|| crate::exchange::binance::unzip_csv(&zip).ok()).unwrap_or_default();
        return HttpResponse::Ok()
            .content_type("application/zip")
            .body(zip_one(&name.replace(".zip", ".csv"), &corrupted(&csv)));
    }
    HttpResponse::Ok().content_type("application/zip").body(zip)
}

/// A ZIP of one deflated entry (the fastest level: the archive's format, not its size, is what
/// the tests need), byte for byte the same for the same input (a fixed timestamp).
fn zip_one(name: &str, content: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .last_modified_time(zip::DateTime::default());
    zip.start_file(name, options).expect("a ZIP in memory takes an entry");
    zip.write_all(content).expect("a ZIP in memory takes its content");
    zip.finish().expect("a ZIP in memory is finished").into_inner()
}

/// The CSV with its first record's second field (a price) changed: still well-formed, but not
/// what the exchange recorded.
fn corrupted(csv: &[u8]) -> Vec<u8> {
    with_line(
        csv,
        |_| 0,
        |line| {
            let mut fields: Vec<String> = line.split(',').map(str::to_owned).collect();
            if let Some(price) = fields.get_mut(1) {
                price.insert(0, '9');
            }
            fields.join(",")
        },
    )
}

/// The CSV with its middle line cut to its first field: a line no reader can take.
fn broken_half_way(csv: &[u8]) -> Vec<u8> {
    with_line(csv, |lines| lines / 2, |line| line.split(',').next().unwrap_or_default().to_owned())
}

/// The CSV with one line, the `which(number of lines)`-th (0-based), rewritten by `change`.
fn with_line(csv: &[u8], which: impl Fn(usize) -> usize, change: impl Fn(&str) -> String) -> Vec<u8> {
    let text = String::from_utf8_lossy(csv);
    let lines: Vec<&str> = text.lines().collect();
    let at = which(lines.len());
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i == at {
            out.push_str(&change(line));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out.into_bytes()
}

/// Whether the archive has `period` for records spanning `first..=last` (times): it is over
/// before the last record's day and overlaps the recording.
fn published(period: Period, first: i64, last: i64) -> bool {
    period.end_ms() <= Period::day_of(last).start_ms() && period.end_ms() > first
}

/// An archive timestamp: ms, µs from 2025 on.
fn stamp(out: &mut String, ms: i64) {
    let _ = if ms >= MICROS_FROM_MS { write!(out, "{}", ms * 1000) } else { write!(out, "{ms}") };
}

/// The CSV of `period`'s file of `dataset`, if the archive has it.
fn csv_of(data: &SymbolData, dataset: Dataset, period: Period) -> Option<Vec<u8>> {
    let (start, end) = (period.start_ms(), period.end_ms());
    let mut out = String::new();
    match dataset {
        Dataset::Klines(interval) => {
            let series = data.klines.get(&interval)?;
            let (first, last) = series.span()?;
            if !published(period, first, last) {
                return None;
            }
            let rows = series.rows_between(start, end);
            for r in &rows {
                kline_line(&mut out, r, interval.millis());
            }
        }
        Dataset::AggTrades | Dataset::Trades => {
            let rows = if dataset == Dataset::AggTrades { &data.agg_trades } else { &data.trades };
            let first = rows.iter().map(|r| r.time).min()?;
            let last = rows.iter().map(|r| r.time).max()?;
            if !published(period, first, last) {
                return None;
            }
            for r in rows.iter().filter(|r| (start..end).contains(&r.time)) {
                trade_line(&mut out, r, dataset == Dataset::AggTrades)?;
            }
        }
    }
    Some(out.into_bytes())
}

/// `open_time,open,high,low,close,volume,close_time,quote_volume,trades,taker_buy_base,
/// taker_buy_quote,0`; what the recording lacks (freqtrade has no totals) is left empty.
fn kline_line(out: &mut String, r: &KlineRow, interval_ms: i64) {
    stamp(out, r.open_time);
    for d in [r.open, r.high, r.low, r.close, r.volume] {
        let _ = write!(out, ",{}", binance_decimal(d));
    }
    out.push(',');
    stamp(out, r.open_time + interval_ms - 1);
    let _ = match &r.totals {
        Some(t) => write!(
            out,
            ",{},{},{},{},0",
            binance_decimal(t.quote_volume),
            t.trades,
            binance_decimal(t.taker_buy_base),
            binance_decimal(t.taker_buy_quote)
        ),
        None => write!(out, ",,,,,0"),
    };
    out.push('\n');
}

/// aggTrades `a,p,q,f,l,T,m,M`; trades `id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch`, from
/// the recorded REST JSON.
fn trade_line(out: &mut String, r: &TradeRow, aggregate: bool) -> Option<()> {
    let v: Value = serde_json::from_str(r.raw.get()).ok()?;
    let text = |k: &str| v.get(k).map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string()));
    let flag = |k: &str| if v.get(k).and_then(Value::as_bool).unwrap_or(false) { "True" } else { "False" };
    if aggregate {
        let _ = write!(out, "{},{},{},{},{},", r.id, text("p")?, text("q")?, text("f")?, text("l")?);
        stamp(out, r.time);
        let _ = writeln!(out, ",{},{}", flag("m"), flag("M"));
    } else {
        let _ = write!(out, "{},{},{},{},", r.id, text("price")?, text("qty")?, text("quoteQty")?);
        stamp(out, r.time);
        let _ = writeln!(out, ",{},{}", flag("isBuyerMaker"), flag("isBestMatch"));
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_published_for_periods_over_before_the_last_recorded_day() {
        let day = |s: &str| Period::day_of(crate::model::parse_date_or_time_ms(s).unwrap());
        let month = |s: &str| Period::month_of(crate::model::parse_date_or_time_ms(s).unwrap());
        let (first, last) = (
            crate::model::parse_date_or_time_ms("2021-04-02").unwrap(),
            crate::model::parse_date_or_time_ms("2021-05-14T20:25").unwrap(),
        );
        assert!(published(month("2021-04-01"), first, last));
        assert!(!published(month("2021-05-01"), first, last), "May is not over on the 14th");
        assert!(published(day("2021-05-13"), first, last));
        assert!(!published(day("2021-05-14"), first, last), "the last day is REST's");
        assert!(!published(day("2021-04-01"), first, last), "before the recording");
    }

    #[test]
    fn the_same_csv_zips_to_the_same_bytes_and_unzips_back() {
        let csv = b"1637971200000,0.00002853,0.00002854,0.00002851,0.00002854,36304.20000000,1637971259999,,,,,0\n";
        let (a, b) = (zip_one("ADABTC-1m-2021-11-27.csv", csv), zip_one("ADABTC-1m-2021-11-27.csv", csv));
        assert_eq!(sha256_hex(&a), sha256_hex(&b));
        assert_eq!(crate::exchange::binance::unzip_csv(&a).unwrap(), csv);
        assert_ne!(corrupted(csv), csv.to_vec());
    }
}
