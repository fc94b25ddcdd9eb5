//! `streamforge repair`: finds the holes of stored series anywhere in a range — missing open times
//! of candles, missing ids of (aggregate) trades — asks the exchange for exactly those spans, stores
//! what comes back, and records what the exchange confirms empty so that it is not asked again
//! (`store::repair`). Prints, per symbol, the holes, what was filled, and what is empty at the
//! exchange (newly confirmed, or known).

use std::fmt;
use std::sync::Arc;

use super::args::{render, Common, LogArgs};
use super::run::RunKind;
use super::{start_replay, AppError};
use crate::admin::metrics::Metrics;
use crate::exchange::binance::{BinanceRest, SequencedKind, WeightLimiter};
use crate::model::{parse_time_range, Interval};
use crate::store::repair::{repair, RepairError, RepairReport, Span};
use crate::store::{self, collection_name};

/// `streamforge repair`'s command line.
#[derive(clap::Args, Debug, Clone)]
pub struct RepairArgs {
    #[command(flatten)]
    pub common: Common,
    /// Symbols, e.g. BTCUSDT,ETHUSDT.
    #[arg(long, value_delimiter = ',', required = true)]
    pub symbols: Vec<String>,
    /// What the series holds: klines (at --interval), aggTrades or trades.
    #[arg(long, value_enum, default_value_t = RunKind::Klines)]
    pub kind: RunKind,
    /// Kline interval.
    #[arg(long, default_value = "1m")]
    pub interval: String,
    /// FROM:TO (TO exclusive), e.g. 2021-04-20:2021-04-30.
    #[arg(long, visible_alias = "time-range")]
    pub range: String,
    /// The collection to repair; default: the one `run` fills for a backfill starting at FROM
    /// (`<symbol>_<type>_<FROM date>`), per symbol.
    #[arg(long)]
    pub collection: Option<String>,
    /// Binance REST base URL (overrides binance.rest_url).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Print the reports as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Repairs {
    /// What was repaired: shows spans as times (candles) or ids (trades).
    #[serde(skip)]
    pub kind: Arc<dyn SequencedKind>,
    pub reports: Vec<RepairReport>,
}

fn spans(kind: &dyn SequencedKind, spans: &[Span]) -> String {
    let shown: Vec<String> =
        spans.iter().map(|s| format!("{} → {} ({})", kind.show(s.first), kind.show(s.last), s.records)).collect();
    if shown.is_empty() {
        "none".into()
    } else {
        shown.join(", ")
    }
}

impl fmt::Display for Repairs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind.as_ref();
        for r in &self.reports {
            writeln!(
                f,
                "{} in {}: {} stored, {} hole(s), {} request(s)",
                r.symbol,
                r.collection,
                r.scanned,
                r.holes.len(),
                r.requests
            )?;
            writeln!(f, "  filled: {}", spans(kind, &r.filled))?;
            writeln!(f, "  empty at the exchange, confirmed now: {}", spans(kind, &r.confirmed_empty))?;
            writeln!(f, "  empty at the exchange, known (not asked): {}", spans(kind, &r.known_empty))?;
        }
        Ok(())
    }
}

/// `streamforge repair`: repairs each symbol's series; returns the reports to print.
pub async fn run(args: RepairArgs, log: &LogArgs) -> Result<String, AppError> {
    let config = args.common.config(log, |c| {
        if let Some(url) = &args.base_url {
            c.binance.rest_url = url.clone();
        }
    })?;
    let mut problems = Vec::new();
    let kind = args.kind.sequenced(&args.interval).map_err(|e| problems.push(e.to_string())).ok();
    let range = parse_time_range(&args.range).map_err(|e| problems.push(format!("--range: {e}"))).ok();
    if let Some(c) = &args.collection {
        if let Err(e) = store::validate_collection(c) {
            problems.push(format!("--collection: {e}"));
        }
    }
    if args.kind == RunKind::Klines && args.interval.parse::<Interval>().is_ok_and(|i| !i.is_fixed()) {
        problems.push(format!("--interval {}: calendar months have no fixed step to find holes by", args.interval));
    }
    let (Some(kind), Some(range), true) = (kind, range, problems.is_empty()) else {
        return Err(AppError::Usage(problems.join("\n")));
    };
    let replay = match args.common.offline_dir(&config) {
        Some(dir) => Some(start_replay(&dir, 0.0).await?.0),
        None => None,
    };
    let rest_url = replay.as_ref().map_or_else(|| config.binance.rest_url.clone(), |r| r.rest_url());
    let limiter = Arc::new(WeightLimiter::new(config.binance.weight_share));
    let rest = BinanceRest::new(&rest_url, Arc::new(Metrics::new()), limiter)?;
    let store = store::open_configured(&config.store).await?;
    let mut reports = Vec::new();
    let mut outcome = Ok(());
    for symbol in &args.symbols {
        let symbol = symbol.to_ascii_uppercase();
        let collection = args.collection.clone().unwrap_or_else(|| collection_name(&symbol, &kind.job_type(), range.0));
        match repair(store.as_ref(), &rest, &collection, &symbol, kind.as_ref(), range).await {
            Ok(report) => reports.push(report),
            Err(RepairError::Store(e)) => outcome = Err(e.into()),
            Err(RepairError::Exchange(e)) => outcome = Err(e.into()),
            Err(e @ RepairError::NoStep(_)) => outcome = Err(AppError::Usage(e.to_string())),
        }
        if outcome.is_err() {
            break;
        }
    }
    if let Some(r) = &replay {
        r.stop().await;
    }
    outcome?;
    Ok(render(&Repairs { kind, reports }, args.json))
}
