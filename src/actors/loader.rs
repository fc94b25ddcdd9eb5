//! The REST kline loader: pages through a symbol's klines over a time range from a Binance base URL
//! and publishes them, keyed by symbol, to a data topic. Progress lives outside the actor so that a
//! restarted loader continues from the last acknowledged page instead of starting over.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::watch;

use super::Telemetry;
use crate::admin::metrics::Metrics;
use crate::bus::{Bus, OutRecord};
use crate::exchange::binance::{BinanceRest, ExchangeError};
use crate::model::{format_ms, Candle, DataRecord, EventStatus, Interval, QueueEvent};
use crate::supervision::Heartbeat;

/// One backfill: `symbol` at `interval`, candles opening in `[start_ms, end_ms)`.
#[derive(Debug, Clone)]
pub struct KlineJob {
    pub queue_id: String,
    pub symbol: String,
    pub interval: Interval,
    pub start_ms: i64,
    pub end_ms: i64,
    pub topic: String,
    /// Rows per request (Binance allows at most 1000).
    pub page_limit: u32,
}

impl KlineJob {
    /// The seeds' `type` of this job, e.g. `api_candles_1m`.
    pub fn kind(&self) -> String {
        format!("api_candles_{}", self.interval)
    }
}

/// Candles absent from the exchange between two present ones.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Gap {
    /// Open time of the first missing candle.
    pub first_missing: i64,
    /// Open time of the last missing candle.
    pub last_missing: i64,
    pub missing: u64,
}

/// Where a loader stands; survives restarts.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoaderProgress {
    /// Open time the next request starts from.
    pub next_open_time: i64,
    pub records: u64,
    pub pages: u64,
    pub first_open_time: Option<i64>,
    pub last_open_time: Option<i64>,
    pub gaps: Vec<Gap>,
    pub done: bool,
}

pub struct KlineLoaderArgs {
    pub job: KlineJob,
    pub rest: BinanceRest,
    pub bus: Arc<dyn Bus>,
    pub telemetry: Telemetry,
    pub metrics: Arc<Metrics>,
    pub progress: Arc<watch::Sender<LoaderProgress>>,
    /// Beaten before every request; a request that hangs past the supervisor's timeout is a stall.
    pub heartbeat: Heartbeat,
}

pub enum LoaderMsg {
    NextPage,
}

pub struct KlineLoader;

pub struct LoaderState {
    args: KlineLoaderArgs,
    producer: String,
}

const FAMILY: &str = "loader";
const RETRIES: u32 = 4;

impl LoaderState {
    fn event(&self, status: EventStatus) -> QueueEvent {
        QueueEvent::new(&self.args.job.queue_id, &self.producer, status)
            .symbol(&self.args.job.symbol)
            .kind(self.args.job.kind())
    }

    /// One page, retrying errors that a retry can fix with a growing pause.
    async fn fetch(&self, from: i64) -> Result<Vec<Candle>, ExchangeError> {
        let job = &self.args.job;
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            self.args.heartbeat.beat();
            match self.args.rest.klines(&job.symbol, job.interval, from, job.end_ms - 1, job.page_limit).await {
                Ok(c) => return Ok(c),
                Err(error) if !error.is_terminal() && attempt < RETRIES => {
                    self.args.metrics.errors.with_label_values(&[FAMILY, error.metric_label()]).inc();
                    tracing::warn!(symbol = %job.symbol, attempt, %error, "Kline page failed; retrying.");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                Err(error) => {
                    self.args.metrics.errors.with_label_values(&[FAMILY, error.metric_label()]).inc();
                    return Err(error);
                }
            }
        }
    }

    /// Holes between consecutive candles of this page (and the previous page's last one).
    fn find_gaps(&self, last_before: Option<i64>, page: &[Candle]) -> Vec<Gap> {
        let step = self.args.job.interval.millis();
        if !self.args.job.interval.is_fixed() {
            return Vec::new();
        }
        let mut prev = last_before;
        let mut gaps = Vec::new();
        for c in page {
            if let Some(p) = prev {
                if c.open_time > p + step {
                    gaps.push(Gap {
                        first_missing: p + step,
                        last_missing: c.open_time - step,
                        missing: ((c.open_time - p) / step - 1) as u64,
                    });
                }
            }
            prev = Some(c.open_time);
        }
        gaps
    }

    async fn finish(&self, myself: &ActorRef<LoaderMsg>) {
        self.args.progress.send_modify(|p| p.done = true);
        let p = self.args.progress.borrow().clone();
        let message = format!(
            "Loaded {} candles of {} {} ({} → {}), {} gap(s)",
            p.records,
            self.args.job.symbol,
            self.args.job.interval,
            p.first_open_time.map(format_ms).unwrap_or_else(|| "-".into()),
            p.last_open_time.map(format_ms).unwrap_or_else(|| "-".into()),
            p.gaps.len()
        );
        tracing::info!(symbol = %self.args.job.symbol, records = p.records, gaps = p.gaps.len(), "Backfill finished.");
        self.args.telemetry.emit(self.event(EventStatus::Finished).records_written(p.records).message(message)).await;
        myself.stop(None);
    }
}

impl Actor for KlineLoader {
    type Msg = LoaderMsg;
    type State = LoaderState;
    type Arguments = KlineLoaderArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<LoaderMsg>,
        args: KlineLoaderArgs,
    ) -> Result<LoaderState, ActorProcessingErr> {
        let producer = format!("loader-api-candles__{}", args.job.symbol.to_ascii_lowercase());
        let resumed = {
            let mut resumed = false;
            args.progress.send_modify(|p| {
                if p.next_open_time == 0 {
                    p.next_open_time = args.job.start_ms;
                } else {
                    resumed = true;
                }
            });
            resumed
        };
        let state = LoaderState { args, producer };
        let from = state.args.progress.borrow().next_open_time;
        let message = if resumed {
            format!("Resuming {} from {}", state.args.job.symbol, format_ms(from))
        } else {
            format!("Loading {} {} from {}", state.args.job.symbol, state.args.job.interval, format_ms(from))
        };
        state.args.telemetry.emit(state.event(EventStatus::Started).message(message)).await;
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<LoaderMsg>,
        _state: &mut LoaderState,
    ) -> Result<(), ActorProcessingErr> {
        myself.send_message(LoaderMsg::NextPage)?;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<LoaderMsg>,
        msg: LoaderMsg,
        state: &mut LoaderState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LoaderMsg::NextPage => {
                let (from, last_before) = {
                    let p = state.args.progress.borrow();
                    (p.next_open_time, p.last_open_time)
                };
                if from >= state.args.job.end_ms {
                    state.finish(&myself).await;
                    return Ok(());
                }
                let page = match state.fetch(from).await {
                    Ok(page) => page,
                    Err(error) => {
                        state.args.telemetry.emit(state.event(EventStatus::Error).message(error.to_string())).await;
                        return Err(error.into());
                    }
                };
                let Some(last) = page.last() else {
                    state.finish(&myself).await;
                    return Ok(());
                };
                let next = if state.args.job.interval.is_fixed() {
                    last.open_time + state.args.job.interval.millis()
                } else {
                    last.close_time + 1
                };
                let gaps = state.find_gaps(last_before, &page);
                let (n, first, last_open) = (page.len() as u64, page[0].open_time, last.open_time);
                let full_page = page.len() as u32 >= state.args.job.page_limit;
                let symbol = state.args.job.symbol.clone();
                let records: Vec<OutRecord> = page
                    .into_iter()
                    .map(|c| OutRecord::keyed(symbol.as_bytes(), DataRecord::Candle(c).to_bytes()))
                    .collect();
                state.args.metrics.records_in.with_label_values(&[FAMILY]).inc_by(n);
                // Progress moves only once the bus has acknowledged the page.
                state.args.bus.publish(&state.args.job.topic, records).await?;
                state.args.metrics.records_out.with_label_values(&[FAMILY]).inc_by(n);
                state.args.progress.send_modify(|p| {
                    p.next_open_time = next;
                    p.records += n;
                    p.pages += 1;
                    p.first_open_time.get_or_insert(first);
                    p.last_open_time = Some(last_open);
                    p.gaps.extend(gaps.iter().cloned());
                });
                for g in &gaps {
                    let message = format!(
                        "No klines from {} to {} ({} missing) — reported, not filled",
                        format_ms(g.first_missing),
                        format_ms(g.last_missing),
                        g.missing
                    );
                    tracing::info!(symbol = %symbol, missing = g.missing, "{message}");
                    state.args.telemetry.emit(state.event(EventStatus::Gap).message(message)).await;
                }
                let total = state.args.progress.borrow().records;
                state.args.telemetry.emit(state.event(EventStatus::Loading).records_written(total)).await;
                if full_page {
                    myself.send_message(LoaderMsg::NextPage)?;
                } else {
                    state.finish(&myself).await;
                }
            }
        }
        Ok(())
    }
}
