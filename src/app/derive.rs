//! `streamforge derive`: candles of longer intervals (5m, 15m, 1h, 4h, 1d, …) computed from stored
//! candles of a shorter one and stored in `candles_<interval>` (`store::derived`).

use std::fmt;

use super::args::{render, Common, LogArgs};
use super::AppError;
use crate::model::{format_ms, parse_time_range, Interval};
use crate::store::derived::{derive_candles, DeriveCandlesError, Derived};
use crate::store::{self, Store};

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
    for symbol in symbols {
        let derived = derive_candles(store, symbol, source, intervals, range).await.map_err(|e| match e {
            DeriveCandlesError::Store(e) => AppError::Store(e),
            DeriveCandlesError::Derive { .. } => AppError::Usage(e.to_string()),
        })?;
        report.derived.extend(derived);
    }
    Ok(report)
}
