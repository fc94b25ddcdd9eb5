//! `streamforge derive`: candles of longer intervals (5m, 15m, 1h, 4h, 1d, …) computed from stored
//! candles of a shorter one (`model::derive`), stored in `candles_<interval>` like any other candles:
//! idempotent upserts by natural key, so deriving a span again replaces what it derived before.

use std::fmt;

use super::args::{render, Common, LogArgs};
use super::AppError;
use crate::model::derive::{derivable, derive, period_start};
use crate::model::{format_ms, parse_time_range, DataRecord, Interval};
use crate::store::{self, Store};

/// Derived candles are written in transactions of this many.
const BATCH: usize = 5_000;

/// `streamforge derive`'s command line.
#[derive(clap::Args, Debug, Clone)]
pub struct DeriveArgs {
    #[command(flatten)]
    pub common: Common,
    /// Symbols, e.g. BTCUSDT,ETHUSDT.
    #[arg(long, value_delimiter = ',', required = true)]
    pub symbols: Vec<String>,
    /// Intervals to derive, each a whole multiple of the source's, at most 1d.
    #[arg(long, value_delimiter = ',', default_value = "5m,15m,1h,4h,1d")]
    pub intervals: Vec<String>,
    /// The collection holding the source candles.
    #[arg(long, default_value = "candles_1m")]
    pub source: String,
    /// START:END (end exclusive), e.g. 2021-04-24:2021-05-13; the periods that straddle it are
    /// derived whole. Default: everything the source holds.
    #[arg(long)]
    pub time_range: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What one symbol and interval came to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Derived {
    pub symbol: String,
    pub interval: String,
    pub collection: String,
    /// Source candles read.
    pub source_candles: usize,
    /// Candles derived and stored.
    pub candles: usize,
    /// Of those, still open (their period ends after the source's last candle).
    pub open: usize,
    pub first: Option<i64>,
    pub last: Option<i64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DeriveReport {
    pub source: String,
    pub derived: Vec<Derived>,
}

impl fmt::Display for DeriveReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "From {}:", self.source)?;
        writeln!(
            f,
            "{:<12} {:<8} {:<14} {:>8} {:>8} {:>6}  span",
            "symbol", "interval", "collection", "source", "derived", "open"
        )?;
        for d in &self.derived {
            let span = match (d.first, d.last) {
                (Some(a), Some(b)) => format!("{} → {}", format_ms(a), format_ms(b)),
                _ => "nothing stored".into(),
            };
            writeln!(
                f,
                "{:<12} {:<8} {:<14} {:>8} {:>8} {:>6}  {span}",
                d.symbol, d.interval, d.collection, d.source_candles, d.candles, d.open
            )?;
        }
        Ok(())
    }
}

/// The collection derived candles of `interval` go to.
pub fn candles_collection(interval: Interval) -> String {
    format!("candles_{interval}")
}

/// `streamforge derive`: reads, derives and stores; returns the summary to print.
pub async fn run(args: DeriveArgs, log: &LogArgs) -> Result<String, AppError> {
    let config = args.common.config(log, |_| {})?;
    let mut problems = Vec::new();
    let mut intervals = Vec::new();
    for i in &args.intervals {
        match i.parse::<Interval>() {
            Ok(i) => intervals.push(i),
            Err(e) => problems.push(format!("--intervals: {e}")),
        }
    }
    let range = match &args.time_range {
        Some(r) => match parse_time_range(r) {
            Ok(r) => Some(r),
            Err(e) => {
                problems.push(format!("--time-range: {e}"));
                None
            }
        },
        None => None,
    };
    if let Err(e) = store::validate_collection(&args.source) {
        problems.push(format!("--source: {e}"));
    }
    if !problems.is_empty() {
        return Err(AppError::Usage(problems.join("\n")));
    }
    let store = store::open_configured(&config.store).await?;
    let report = derive_all(store.as_ref(), &args.source, &args.symbols, &intervals, range).await?;
    Ok(render(&report, args.json))
}

/// Derives `intervals` of each of `symbols` from `source` over `range` (whole periods) and stores
/// them in `candles_<interval>`.
pub async fn derive_all(
    store: &dyn Store,
    source: &str,
    symbols: &[String],
    intervals: &[Interval],
    range: Option<(i64, i64)>,
) -> Result<DeriveReport, AppError> {
    let mut report = DeriveReport { source: source.to_owned(), derived: Vec::new() };
    let longest = intervals.iter().copied().max_by_key(|i| i.millis());
    for symbol in symbols.iter().map(|s| s.to_ascii_uppercase()) {
        // Widened to whole periods of the longest interval, so no derived candle is cut short.
        let (from, to) = match (range, longest) {
            (Some((from, to)), Some(l)) => (period_start(from, l), period_start(to - 1, l) + l.millis()),
            _ => (i64::MIN, i64::MAX),
        };
        let candles = store.candles(source, &symbol, from, to).await?;
        let until = candles.last().map_or(to, |c| (c.close_time + 1).min(to));
        for &interval in intervals {
            if let Some(first) = candles.first() {
                derivable(first.interval, interval).map_err(|e| AppError::Usage(format!("{source}: {e}")))?;
            }
            let derived = derive(&candles, interval, until).map_err(|e| AppError::Usage(format!("{source}: {e}")))?;
            let collection = candles_collection(interval);
            for chunk in derived.chunks(BATCH) {
                let records = chunk.iter().cloned().map(DataRecord::Candle).collect();
                store.upsert(&collection, std::sync::Arc::new(records)).await?;
            }
            report.derived.push(Derived {
                symbol: symbol.clone(),
                interval: interval.to_string(),
                collection,
                source_candles: candles.len(),
                candles: derived.len(),
                open: derived.iter().filter(|c| !c.closed).count(),
                first: derived.first().map(|c| c.open_time),
                last: derived.last().map(|c| c.open_time),
            });
        }
    }
    Ok(report)
}
