//! Loads recorded Binance data from a folder laid out like `data/sample/`:
//! - `klines/**/<BASE>_<QUOTE>-<interval>.json[.gz]` — freqtrade kline JSON;
//! - `ws/**/<symbol>_<yyyymmdd>.gz` — raw WebSocket captures, lines `<recv_ns> <raw JSON>`, where a
//!   line is a combined-stream message or a REST depth snapshot;
//! - `trades/**/<BASE>_<QUOTE>-aggTrades.json[.gz]` — REST aggTrades, raw or as ccxt dicts with the
//!   raw trade in `info`.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::klines::KlineSeries;
use crate::exchange::binance::{LocalBook, SequencedKind};
use crate::model::{decimal_from_json_number, BookSnapshot, Decimal, DepthUpdate, Interval, ParseError, Trade};

#[derive(Debug, thiserror::Error)]
pub enum ReplayDataError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{0} holds no recorded data: expected klines/**/<BASE>_<QUOTE>-<interval>.json[.gz], ws/**/<symbol>_<yyyymmdd>.gz or trades/**/<BASE>_<QUOTE>-aggTrades.json[.gz]")]
    Empty(PathBuf),
}

/// One recorded candle. Freqtrade files carry OHLCV only; candles derived from recorded trades
/// have the totals too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KlineRow {
    pub open_time: i64,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: Decimal,
    /// Boxed: most recorded candles have none, and a replay may hold millions of them.
    pub totals: Option<Box<KlineTotals>>,
}

/// What a candle knows beyond OHLCV when it is built from trades.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KlineTotals {
    pub quote_volume: Decimal,
    pub trades: u64,
    pub taker_buy_base: Decimal,
    pub taker_buy_quote: Decimal,
}

impl KlineRow {
    /// The candle of the trades `trades` (at least one, in id order) that opened at `open_time`,
    /// computed as Binance computes klines; the buyer is the taker when it is not the maker.
    pub fn from_trades(open_time: i64, trades: &[Trade]) -> KlineRow {
        let (first, last) = (&trades[0], &trades[trades.len() - 1]);
        let quote = |t: &Trade| t.price * t.qty;
        let takers = || trades.iter().filter(|t| !t.is_buyer_maker);
        KlineRow {
            open_time,
            open: first.price,
            high: trades.iter().map(|t| t.price).max().unwrap_or(first.price),
            low: trades.iter().map(|t| t.price).min().unwrap_or(first.price),
            close: last.price,
            volume: trades.iter().map(|t| t.qty).sum(),
            totals: Some(Box::new(KlineTotals {
                quote_volume: trades.iter().map(quote).sum(),
                trades: trades.len() as u64,
                taker_buy_base: takers().map(|t| t.qty).sum(),
                taker_buy_quote: takers().map(quote).sum(),
            })),
        }
    }

    /// The recorded candle as a domain record. Freqtrade recordings have no quote volume, trade
    /// count or taker volumes: those stay empty, never invented.
    pub fn candle(&self, symbol: &str, interval: Interval) -> crate::model::Candle {
        crate::model::Candle {
            symbol: symbol.to_owned(),
            interval,
            open_time: self.open_time,
            close_time: self.open_time + interval.millis() - 1,
            open: self.open,
            high: self.high,
            low: self.low,
            close: self.close,
            volume: self.volume,
            quote_volume: self.totals.as_ref().map(|t| t.quote_volume),
            trades: self.totals.as_ref().map(|t| t.trades),
            taker_buy_base: self.totals.as_ref().map(|t| t.taker_buy_base),
            taker_buy_quote: self.totals.as_ref().map(|t| t.taker_buy_quote),
            closed: true,
        }
    }
}

/// One recorded (aggregate) trade, kept as Binance's REST JSON plus the fields used for paging.
#[derive(Debug, Clone)]
pub struct TradeRow {
    pub id: i64,
    pub time: i64,
    pub raw: Arc<RawValue>,
}

/// One recorded WebSocket message, held once: the combined-stream text and where its `data`
/// lies in it (a capture's 48 MB of text used to be held twice, whole and as `data`).
#[derive(Debug, Clone)]
pub struct WsRow {
    pub recv_ns: i64,
    /// Stream name, e.g. `ethusdt@depth@100ms` (one allocation per stream, shared by its rows).
    pub stream: Arc<str>,
    /// The whole combined-stream message `{"stream":…,"data":…}` as received.
    combined: Arc<str>,
    /// Byte range of its `data` in `combined`.
    data: (u32, u32),
}

impl WsRow {
    /// A recorded combined-stream message whose `data` is `combined[data]`.
    fn recorded(recv_ns: i64, stream: Arc<str>, combined: &str, data: std::ops::Range<usize>) -> WsRow {
        WsRow { recv_ns, stream, combined: Arc::from(combined), data: (data.start as u32, data.end as u32) }
    }

    /// A message of our own making: `data` wrapped as Binance's combined stream wraps it.
    fn wrap(recv_ns: i64, stream: Arc<str>, data: &str) -> WsRow {
        let prefix = format!("{{\"stream\":\"{stream}\",\"data\":");
        let combined = format!("{prefix}{data}}}");
        WsRow::recorded(recv_ns, stream, &combined, prefix.len()..prefix.len() + data.len())
    }

    /// The whole combined-stream message, as a `/stream?streams=…` connection receives it.
    pub fn combined(&self) -> &str {
        &self.combined
    }

    /// Just its `data`, as a `/ws/<stream>` connection receives it.
    pub fn data(&self) -> &str {
        &self.combined[self.data.0 as usize..self.data.1 as usize]
    }
}

/// Everything recorded for one symbol.
#[derive(Debug, Default)]
pub struct SymbolData {
    pub base: String,
    pub quote: String,
    /// Recorded candles by interval, held compactly ([`KlineSeries`]).
    pub klines: BTreeMap<Interval, KlineSeries>,
    pub agg_trades: Vec<TradeRow>,
    /// The capture's `@trade` messages in `/api/v3/historicalTrades` shape, in id order.
    pub trades: Vec<TradeRow>,
    /// The REST depth snapshot found in the capture, raw.
    pub depth_snapshot: Option<Arc<RawValue>>,
    pub ws: Vec<WsRow>,
}

/// All data of a folder, by upper-case symbol (`ETHUSDT`).
#[derive(Debug, Default)]
pub struct ReplayData {
    pub symbols: BTreeMap<String, SymbolData>,
}

fn read_maybe_gz(path: &Path) -> Result<Box<dyn Read>, ReplayDataError> {
    let file = std::fs::File::open(path).map_err(|source| ReplayDataError::Io { path: path.to_owned(), source })?;
    let reader = BufReader::new(file);
    Ok(if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    })
}

fn read_all(path: &Path) -> Result<Vec<u8>, ReplayDataError> {
    let mut buf = Vec::new();
    read_maybe_gz(path)?
        .read_to_end(&mut buf)
        .map_err(|source| ReplayDataError::Io { path: path.to_owned(), source })?;
    Ok(buf)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ReplayDataError> {
    if !dir.is_dir() {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| ReplayDataError::Io { path: dir.to_owned(), source })?;
    for entry in entries {
        let path = entry.map_err(|source| ReplayDataError::Io { path: dir.to_owned(), source })?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

/// `BTC_USDT-1m.json.gz` → ("BTC", "USDT", "1m"); `XRP_ETH-aggTrades.json` → (…, "aggTrades").
fn split_pair_name(file_name: &str) -> Option<(String, String, String)> {
    let stem = file_name.strip_suffix(".gz").unwrap_or(file_name).strip_suffix(".json")?;
    let (pair, suffix) = stem.split_once('-')?;
    let (base, quote) = pair.split_once('_')?;
    let upper_alnum = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    (upper_alnum(base) && upper_alnum(quote)).then(|| (base.to_owned(), quote.to_owned(), suffix.to_owned()))
}

/// `ethusdt_20240808.gz` → "ETHUSDT".
fn capture_symbol(file_name: &str) -> Option<String> {
    let stem = file_name.strip_suffix(".gz")?;
    let (sym, date) = stem.rsplit_once('_')?;
    let ok = date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) && !sym.is_empty();
    ok.then(|| sym.to_ascii_uppercase())
}

fn format_err(path: &Path, reason: impl ToString) -> ReplayDataError {
    ReplayDataError::Format { path: path.to_owned(), reason: reason.to_string() }
}

fn parse_klines(path: &Path) -> Result<Vec<KlineRow>, ReplayDataError> {
    let rows: Vec<(i64, f64, f64, f64, f64, f64)> =
        serde_json::from_slice(&read_all(path)?).map_err(|e| format_err(path, e))?;
    let dec = |field, v| decimal_from_json_number(field, v).map_err(|e: ParseError| format_err(path, e));
    let mut out = rows
        .into_iter()
        .map(|(t, o, h, l, c, v)| {
            Ok(KlineRow {
                open_time: t,
                open: dec("open", o)?,
                high: dec("high", h)?,
                low: dec("low", l)?,
                close: dec("close", c)?,
                volume: dec("volume", v)?,
                totals: None,
            })
        })
        .collect::<Result<Vec<_>, ReplayDataError>>()?;
    out.sort_by_key(|r| r.open_time);
    out.dedup_by_key(|r| r.open_time);
    Ok(out)
}

#[derive(Deserialize)]
struct AggIds {
    a: i64,
    #[serde(rename = "T")]
    time: i64,
}

fn parse_agg_trades(path: &Path) -> Result<Vec<TradeRow>, ReplayDataError> {
    let items: Vec<Box<RawValue>> = serde_json::from_slice(&read_all(path)?).map_err(|e| format_err(path, e))?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        #[derive(Deserialize)]
        struct Ccxt {
            info: Box<RawValue>,
        }
        let raw = match serde_json::from_str::<Ccxt>(item.get()) {
            Ok(c) => c.info,
            Err(_) => item,
        };
        let ids: AggIds = serde_json::from_str(raw.get()).map_err(|e| format_err(path, e))?;
        out.push(TradeRow { id: ids.a, time: ids.time, raw: Arc::from(raw) });
    }
    out.sort_by_key(|r| r.id);
    out.dedup_by_key(|r| r.id);
    Ok(out)
}

#[derive(Deserialize)]
struct Combined<'a> {
    stream: &'a str,
    #[serde(borrow)]
    data: &'a RawValue,
}

fn parse_capture(path: &Path, sym: &mut SymbolData) -> Result<(), ReplayDataError> {
    let reader = BufReader::new(read_maybe_gz(path)?);
    let mut streams: HashMap<String, Arc<str>> = HashMap::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| ReplayDataError::Io { path: path.to_owned(), source })?;
        let Some((ts, json)) = line.split_once(' ') else {
            continue;
        };
        let bad = |e: &dyn std::fmt::Display| format_err(path, format!("line {}: {e}", n + 1));
        let recv_ns: i64 = ts.parse().map_err(|e| bad(&e))?;
        if let Ok(m) = serde_json::from_str::<Combined<'_>>(json) {
            let stream = match streams.get(m.stream) {
                Some(s) => s.clone(),
                None => streams.entry(m.stream.to_owned()).or_insert_with(|| Arc::from(m.stream)).clone(),
            };
            // `data` borrows from `json`: its offset there is where the raw text lies.
            let start = m.data.get().as_ptr() as usize - json.as_ptr() as usize;
            sym.ws.push(WsRow::recorded(recv_ns, stream, json, start..start + m.data.get().len()));
        } else if json.contains("\"lastUpdateId\"") {
            let raw: Box<RawValue> = serde_json::from_str(json).map_err(|e| bad(&e))?;
            // The first snapshot is the one the capture's book was built from.
            sym.depth_snapshot.get_or_insert_with(|| Arc::from(raw));
        }
    }
    Ok(())
}

impl SymbolData {
    /// The recorded klines as the `<symbol>@kline_<interval>` WebSocket stream `stream`: one
    /// closed kline event per candle, sent when it closes. Fields the recording lacks (quote
    /// volume, trade count, taker volumes, trade ids) are `null`, never invented. Built when a
    /// connection asks for it (held for every candle, they were most of a large replay's memory);
    /// empty when `stream` is not such a stream of this symbol.
    pub fn kline_rows(&self, symbol: &str, stream: &str) -> Vec<WsRow> {
        let wanted = stream.strip_prefix(&format!("{}@kline_", symbol.to_ascii_lowercase()));
        let Some((interval, rows)) = wanted.and_then(|w| self.klines.iter().find(|(i, _)| i.to_string() == w)) else {
            return Vec::new();
        };
        let stream: Arc<str> = Arc::from(stream);
        rows.iter()
            .map(|r| {
                let close = r.open_time + interval.millis() - 1;
                let (n, q, buy_base, buy_quote) = match &r.totals {
                    Some(t) => (
                        t.trades.to_string(),
                        format!("\"{}\"", t.quote_volume),
                        format!("\"{}\"", t.taker_buy_base),
                        format!("\"{}\"", t.taker_buy_quote),
                    ),
                    None => ("null".into(), "null".into(), "null".into(), "null".into()),
                };
                let data = format!(
                    "{{\"e\":\"kline\",\"E\":{},\"s\":\"{symbol}\",\"k\":{{\"t\":{},\"T\":{close},\"s\":\"{symbol}\",\"i\":\"{interval}\",\"f\":null,\"L\":null,\"o\":\"{}\",\"c\":\"{}\",\"h\":\"{}\",\"l\":\"{}\",\"v\":\"{}\",\"n\":{n},\"x\":true,\"q\":{q},\"V\":{buy_base},\"Q\":{buy_quote},\"B\":\"0\"}}}}",
                    close + 1,
                    r.open_time,
                    r.open,
                    r.close,
                    r.high,
                    r.low,
                    r.volume
                );
                WsRow::wrap((close + 1) * 1_000_000, stream.clone(), &data)
            })
            .collect()
    }

    /// The kline streams [`SymbolData::kline_rows`] serves for `symbol`.
    pub fn kline_streams(&self, symbol: &str) -> Vec<String> {
        self.klines.keys().map(|i| format!("{}@kline_{i}", symbol.to_ascii_lowercase())).collect()
    }

    /// The capture's `@trade` messages as `/api/v3/historicalTrades` rows (`quoteQty` is price ×
    /// quantity, as Binance computes it), in id order; returns the decoded trades.
    fn add_historical_trades(&mut self, symbol: &str) -> Result<Vec<Trade>, ParseError> {
        #[derive(Deserialize)]
        struct BestMatch {
            #[serde(rename = "M", default = "yes")]
            best: bool,
        }
        fn yes() -> bool {
            true
        }
        let stream = format!("{}@trade", symbol.to_ascii_lowercase());
        let mut trades = Vec::new();
        for row in self.ws.iter().filter(|r| *r.stream == *stream) {
            let t = Trade::from_ws_trade(row.data().as_bytes())?;
            let best: BestMatch = serde_json::from_str(row.data())?;
            let raw = serde_json::json!({
                "id": t.id,
                "price": t.price.to_string(),
                "qty": t.qty.to_string(),
                "quoteQty": (t.price * t.qty).to_string(),
                "time": t.time,
                "isBuyerMaker": t.is_buyer_maker,
                "isBestMatch": best.best,
            });
            self.trades.push(TradeRow {
                id: t.id,
                time: t.time,
                raw: Arc::from(RawValue::from_string(raw.to_string())?),
            });
            trades.push(t);
        }
        self.trades.sort_by_key(|r| r.id);
        trades.sort_by_key(|t| t.id);
        Ok(trades)
    }

    /// A capture has trades but no aggregate trades; Binance serves both. Aggregates them as
    /// Binance does as far as a capture shows it: consecutive trades at the same time and price
    /// on the same side make one aggregate trade (Binance also requires the same taker order,
    /// which a capture does not show). Aggregate ids are the replay's own, consecutive, starting
    /// at the first trade id.
    fn derive_agg_trades(&mut self, trades: &[Trade]) -> Result<(), ParseError> {
        if !self.agg_trades.is_empty() {
            return Ok(());
        }
        let mut groups: Vec<&[Trade]> = Vec::new();
        let mut rest = trades;
        while let Some(first) = rest.first() {
            let same =
                |t: &Trade| t.time == first.time && t.price == first.price && t.is_buyer_maker == first.is_buyer_maker;
            let n = rest.iter().take_while(|t| same(t)).count();
            groups.push(&rest[..n]);
            rest = &rest[n..];
        }
        let base = trades.first().map_or(0, |t| t.id);
        for (n, group) in groups.into_iter().enumerate() {
            let (first, last) = (&group[0], &group[group.len() - 1]);
            let qty: Decimal = group.iter().map(|t| t.qty).sum();
            let raw = serde_json::json!({
                "a": base + n as i64,
                "p": first.price.to_string(),
                "q": qty.to_string(),
                "f": first.id,
                "l": last.id,
                "T": first.time,
                "m": first.is_buyer_maker,
                "M": true,
            });
            let raw = Arc::from(RawValue::from_string(raw.to_string())?);
            self.agg_trades.push(TradeRow { id: base + n as i64, time: first.time, raw });
        }
        Ok(())
    }

    /// A capture has every trade but no klines: its 1s klines are computed from the trades (a
    /// second without trades has no kline, as at Binance).
    fn derive_second_klines(&mut self, trades: &[Trade]) {
        if trades.is_empty() || self.klines.contains_key(&Interval::S1) {
            return;
        }
        let mut rows = Vec::new();
        let mut rest = trades;
        while let Some(first) = rest.first() {
            let open_time = first.time - first.time.rem_euclid(1000);
            let n = rest.iter().take_while(|t| t.time - open_time < 1000).count();
            rows.push(KlineRow::from_trades(open_time, &rest[..n]));
            rest = &rest[n..];
        }
        self.klines.insert(Interval::S1, KlineSeries::from_rows(&rows));
    }

    /// Serves the recorded aggregate trades as the `<symbol>@aggTrade` WebSocket stream too: the
    /// same trades in Binance's WebSocket event shape, paced by their trade times.
    fn add_agg_trade_stream(&mut self, symbol: &str) {
        if self.agg_trades.is_empty() {
            return;
        }
        let stream: Arc<str> = Arc::from(format!("{}@aggTrade", symbol.to_ascii_lowercase()));
        for t in &self.agg_trades {
            let fields = t.raw.get().trim_start().strip_prefix('{').unwrap_or_default();
            let data = format!("{{\"e\":\"aggTrade\",\"E\":{},\"s\":\"{symbol}\",{fields}", t.time);
            self.ws.push(WsRow::wrap(t.time * 1_000_000, stream.clone(), &data));
        }
    }

    /// Whether `row` is a `@depth` diff event.
    pub fn is_depth(row: &WsRow) -> bool {
        row.stream.contains("@depth")
    }
}

impl ReplayData {
    /// The book of `symbol` after update `update_id` (the recorded snapshot with every recorded
    /// depth event up to that id applied); the recorded snapshot itself when `None`. `None` when
    /// nothing was recorded for the symbol.
    pub fn book_at(&self, symbol: &str, update_id: Option<i64>) -> Option<Result<BookSnapshot, ParseError>> {
        let data = self.symbols.get(symbol)?;
        let raw = data.depth_snapshot.as_ref()?;
        Some((|| {
            let snapshot = BookSnapshot::from_rest(symbol, raw.get().as_bytes())?;
            let mut book = LocalBook::new(symbol);
            if book.on_snapshot(&snapshot).is_err() {
                return Ok(snapshot);
            }
            let until = update_id.unwrap_or(snapshot.last_update_id);
            for row in data.ws.iter().filter(|r| SymbolData::is_depth(r)) {
                let update = DepthUpdate::from_ws(row.data().as_bytes())?;
                if update.final_update_id > until {
                    break;
                }
                book.on_event(&update);
            }
            Ok(book.book().map_or(snapshot, |b| b.top(None)))
        })())
    }

    /// Reads every recognised file under `dir`.
    pub fn load(dir: &Path) -> Result<ReplayData, ReplayDataError> {
        let mut data = ReplayData::default();
        let mut files = Vec::new();
        walk(&dir.join("klines"), &mut files)?;
        for path in &files {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let Some((base, quote, interval)) = split_pair_name(name) else {
                continue;
            };
            let Ok(interval) = interval.parse::<Interval>() else {
                continue;
            };
            let mut rows = parse_klines(path)?;
            let sym = data.entry(&base, &quote);
            // A series is packed as soon as its file is read, so that only one file's rows are
            // ever held decoded; a second file of the same series (rare) is merged into it.
            if let Some(earlier) = sym.klines.get(&interval) {
                rows = earlier.iter().chain(rows).collect();
                rows.sort_by_key(|r| r.open_time);
                rows.dedup_by_key(|r| r.open_time);
            }
            sym.klines.insert(interval, KlineSeries::from_rows(&rows));
        }
        files.clear();
        walk(&dir.join("trades"), &mut files)?;
        for path in &files {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let Some((base, quote, suffix)) = split_pair_name(name) else {
                continue;
            };
            if suffix != "aggTrades" {
                continue;
            }
            let rows = parse_agg_trades(path)?;
            let sym = data.entry(&base, &quote);
            sym.agg_trades.extend(rows);
            sym.agg_trades.sort_by_key(|r| r.id);
            sym.agg_trades.dedup_by_key(|r| r.id);
        }
        files.clear();
        walk(&dir.join("ws"), &mut files)?;
        for path in &files {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let Some(symbol) = capture_symbol(name) else {
                continue;
            };
            let sym = data.symbols.entry(symbol).or_default();
            parse_capture(path, sym)?;
        }
        for (symbol, sym) in data.symbols.iter_mut() {
            let trades = sym.add_historical_trades(symbol).map_err(|e| format_err(&dir.join("ws"), e))?;
            sym.derive_agg_trades(&trades).map_err(|e| format_err(&dir.join("ws"), e))?;
            sym.derive_second_klines(&trades);
            sym.add_agg_trade_stream(symbol);
            sym.ws.sort_by_key(|r| r.recv_ns);
        }
        if data.symbols.is_empty() {
            return Err(ReplayDataError::Empty(dir.to_owned()));
        }
        Ok(data)
    }

    fn entry(&mut self, base: &str, quote: &str) -> &mut SymbolData {
        let sym = self.symbols.entry(format!("{base}{quote}")).or_default();
        sym.base = base.to_owned();
        sym.quote = quote.to_owned();
        sym
    }

    /// `symbol`'s recorded candles at `interval` as domain records; empty when none are recorded.
    pub fn candles(&self, symbol: &str, interval: Interval) -> Vec<crate::model::Candle> {
        let rows = self.symbols.get(symbol).and_then(|d| d.klines.get(&interval));
        rows.map(|r| r.iter().map(|k| k.candle(symbol, interval)).collect()).unwrap_or_default()
    }

    /// Every symbol's recorded candles at `interval` (symbols without any left out), by symbol.
    pub fn all_candles(&self, interval: Interval) -> Vec<(String, Vec<crate::model::Candle>)> {
        self.symbols.keys().map(|s| (s.clone(), self.candles(s, interval))).filter(|(_, c)| !c.is_empty()).collect()
    }

    /// Symbols with records for a backfill of `job_type` (`api_candles_<interval>`,
    /// `api_agg_trades`, `api_trades`).
    pub fn recorded_symbols(&self, job_type: &str) -> Vec<String> {
        self.symbols.keys().filter(|s| self.recorded_span(s, job_type).is_some()).cloned().collect()
    }

    /// The range `[first, last + step)` a backfill of `kind` over `symbol`'s recording covers: what
    /// an offline backfill with no bounds of its own loads.
    pub fn recorded_range(&self, symbol: &str, kind: &dyn SequencedKind) -> Option<(i64, i64)> {
        let (first, last) = self.recorded_span(symbol, &kind.job_type())?;
        Some((first, last + kind.step().unwrap_or(1)))
    }

    /// First and last time of `symbol`'s records for a backfill of `job_type`: open times of
    /// klines, trade times of (aggregate) trades.
    pub fn recorded_span(&self, symbol: &str, job_type: &str) -> Option<(i64, i64)> {
        let data = self.symbols.get(symbol)?;
        let trades = |rows: &[TradeRow]| Some((rows.iter().map(|r| r.time).min()?, rows.iter().map(|r| r.time).max()?));
        match job_type {
            "api_agg_trades" => trades(&data.agg_trades),
            "api_trades" => trades(&data.trades),
            _ => {
                let interval: Interval = job_type.strip_prefix("api_candles_")?.parse().ok()?;
                data.klines.get(&interval)?.span()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_recognised() {
        assert_eq!(split_pair_name("BTC_USDT-1m.json.gz"), Some(("BTC".into(), "USDT".into(), "1m".into())));
        assert_eq!(split_pair_name("XRP_ETH-aggTrades.json"), Some(("XRP".into(), "ETH".into(), "aggTrades".into())));
        assert_eq!(split_pair_name("XRP_ETH-1m.feather"), None);
        assert_eq!(capture_symbol("ethusdt_20240808.gz"), Some("ETHUSDT".into()));
        assert_eq!(capture_symbol("btcusdt_20230405.dat.gz"), None);
    }
}
