//! The REST backfill loader (the seeds' `loader-api-*`): pages through one symbol's klines,
//! aggregate trades or trades over a time range (see [`SequencedKind`]) and publishes them, keyed
//! by symbol, to a data topic. Progress lives outside the actor so that a restarted loader
//! continues from the last acknowledged page instead of starting over.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::watch;

use super::Telemetry;
use crate::admin::metrics::Metrics;
use crate::bus::{Bus, OutRecord};
use crate::exchange::binance::{BinanceRest, ExchangeError, Sequenced, SequencedKind};
use crate::model::{format_ms, EventStatus, QueueEvent};
use crate::supervision::{Heartbeat, Unrecoverable};

/// One backfill: `symbol`'s records of `kind` whose time is in `[start_ms, end_ms)`.
#[derive(Debug, Clone)]
pub struct BackfillJob {
    pub queue_id: String,
    pub symbol: String,
    pub kind: Arc<dyn SequencedKind>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub topic: String,
    /// Rows per request (Binance allows at most 1000).
    pub page_limit: u32,
}

/// The `producer` of a loader's events: `loader-api-candles-1m__btcusdt`.
pub fn producer_name(job_type: &str, symbol: &str) -> String {
    format!("loader-{}__{}", job_type.replace('_', "-"), symbol.to_ascii_lowercase())
}

impl BackfillJob {
    /// The seeds' `type` of this job, e.g. `api_candles_1m` or `api_agg_trades`.
    pub fn job_type(&self) -> String {
        self.kind.job_type()
    }
}

/// Records absent at the exchange between two present ones: candles of a period without trades,
/// or trade ids that never came. `first_missing`/`last_missing` are sequences (open times of
/// candles, ids of trades).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Gap {
    pub first_missing: i64,
    pub last_missing: i64,
    pub missing: u64,
}

/// Where a loader stands; survives restarts.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoaderProgress {
    /// Sequence of the newest published record, or the one just before the range: the next
    /// request asks for what follows it. `None` until the loader knows where the range starts.
    pub cursor: Option<i64>,
    pub records: u64,
    pub pages: u64,
    /// Times (candle open time, trade time) of the first and the newest record loaded.
    pub first_time: Option<i64>,
    pub last_time: Option<i64>,
    pub gaps: Vec<Gap>,
    pub done: bool,
    /// Why the loader gave up: an exchange answer no retry can change (a rejected request). Set
    /// with `done`; the loader is then stopped, not restarted.
    pub failed: Option<String>,
}

pub struct LoaderArgs {
    pub job: BackfillJob,
    pub rest: BinanceRest,
    pub bus: Arc<dyn Bus>,
    pub telemetry: Telemetry,
    pub metrics: Arc<Metrics>,
    pub progress: Arc<watch::Sender<LoaderProgress>>,
    /// The store's high-water mark for this symbol when the workflow started: a backfill that
    /// was stopped or killed continues after it instead of from the start.
    pub stored: Option<i64>,
    /// Beaten before every request; a request that hangs past the supervisor's timeout is a stall.
    pub heartbeat: Heartbeat,
}

pub enum LoaderMsg {
    NextPage,
}

pub struct Loader;

pub struct LoaderState {
    args: LoaderArgs,
    producer: String,
}

const FAMILY: &str = "loader";
const RETRIES: u32 = 4;

/// Holes in the sequence between consecutive records (and the previous page's last one).
fn find_gaps(step: Option<i64>, last_before: Option<i64>, page: &[Sequenced]) -> Vec<Gap> {
    let Some(step) = step else {
        return Vec::new();
    };
    let mut prev = last_before;
    let mut gaps = Vec::new();
    for r in page {
        if let Some(p) = prev {
            if r.seq > p + step {
                gaps.push(Gap {
                    first_missing: p + step,
                    last_missing: r.seq - step,
                    missing: ((r.seq - p) / step - 1) as u64,
                });
            }
        }
        prev = Some(r.seq);
    }
    gaps
}

impl LoaderState {
    fn event(&self, status: EventStatus) -> QueueEvent {
        QueueEvent::new(&self.args.job.queue_id, &self.producer, status)
            .symbol(&self.args.job.symbol)
            .kind(self.args.job.job_type())
    }

    /// Retries errors that a retry can fix with a growing pause; REST reads are idempotent.
    async fn retrying<T, F>(&self, what: &str, call: impl Fn() -> F) -> Result<T, ExchangeError>
    where
        F: std::future::Future<Output = Result<T, ExchangeError>>,
    {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            // A call can wait minutes for the node's budget (a 418 holds it for the ban): alive.
            match self.args.heartbeat.during(call()).await {
                Ok(v) => return Ok(v),
                Err(error) if !error.is_terminal() && attempt < RETRIES => {
                    self.args.metrics.errors.with_label_values(&[FAMILY, error.metric_label()]).inc();
                    tracing::warn!(symbol = %self.args.job.symbol, attempt, %error, "{what} failed; retrying.");
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

    /// Where paging starts: just before the range, or after the store's high-water mark when
    /// the store already holds the start of the range. `None`: the exchange has nothing in range.
    async fn locate(&self) -> Result<Option<i64>, ExchangeError> {
        let job = &self.args.job;
        let before = self
            .retrying("Locating the range", || job.kind.before(&self.args.rest, &job.symbol, job.start_ms, job.end_ms));
        let Some(before) = before.await? else {
            return Ok(None);
        };
        match self.args.stored {
            Some(mark) if mark > before => {
                tracing::info!(symbol = %job.symbol, after = %job.kind.show(mark), "Resuming the backfill after the store's newest record.");
                Ok(Some(mark))
            }
            _ => Ok(Some(before)),
        }
    }

    async fn finish(&self, myself: &ActorRef<LoaderMsg>) {
        self.args.progress.send_modify(|p| p.done = true);
        let p = self.args.progress.borrow().clone();
        let job = &self.args.job;
        let message = format!(
            "Loaded {} {} of {} ({} → {}), {} gap(s)",
            p.records,
            job.kind.noun(),
            job.symbol,
            p.first_time.map(format_ms).unwrap_or_else(|| "-".into()),
            p.last_time.map(format_ms).unwrap_or_else(|| "-".into()),
            p.gaps.len()
        );
        tracing::info!(symbol = %job.symbol, records = p.records, gaps = p.gaps.len(), "Backfill finished.");
        self.args.telemetry.emit(self.event(EventStatus::Finished).records_written(p.records).message(message)).await;
        myself.stop(None);
    }

    /// Fetches, publishes and accounts for one page; returns whether more may follow.
    async fn next_page(&mut self) -> Result<bool, ActorProcessingErr> {
        let known = self.args.progress.borrow().cursor;
        let cursor = match known {
            Some(c) => c,
            None => match self.locate().await? {
                Some(c) => c,
                None => return Ok(false),
            },
        };
        self.args.progress.send_modify(|p| p.cursor = Some(cursor));
        let job = self.args.job.clone();
        let (mut page, more) =
            self.retrying("A page", || job.kind.after(&self.args.rest, &job.symbol, cursor, job.page_limit)).await?;
        let past_end = page.iter().position(|r| r.time >= job.end_ms);
        if let Some(cut) = past_end {
            page.truncate(cut);
        }
        let more = more && past_end.is_none();
        let Some(last) = page.last() else {
            return Ok(false);
        };
        let last_before = Some(cursor).filter(|_| self.args.progress.borrow().records > 0);
        let gaps = find_gaps(job.kind.step(), last_before, &page);
        let (n, first_time, last_time, last_seq) = (page.len() as u64, page[0].time, last.time, last.seq);
        let records: Vec<OutRecord> =
            page.into_iter().map(|r| OutRecord::keyed(job.symbol.as_bytes(), r.record.to_bytes())).collect();
        self.args.metrics.records_in.with_label_values(&[FAMILY]).inc_by(n);
        // Progress moves only once the bus has acknowledged the page.
        self.args.bus.publish(&job.topic, records).await?;
        self.args.metrics.records_out.with_label_values(&[FAMILY]).inc_by(n);
        self.args.progress.send_modify(|p| {
            p.cursor = Some(last_seq);
            p.records += n;
            p.pages += 1;
            p.first_time.get_or_insert(first_time);
            p.last_time = Some(last_time);
            p.gaps.extend(gaps.iter().cloned());
        });
        for g in &gaps {
            let message = format!(
                "No {} from {} to {} ({} missing) — reported, not filled",
                job.kind.noun(),
                job.kind.show(g.first_missing),
                job.kind.show(g.last_missing),
                g.missing
            );
            tracing::info!(symbol = %job.symbol, missing = g.missing, "{message}");
            self.args.telemetry.emit(self.event(EventStatus::Gap).message(message)).await;
        }
        let total = self.args.progress.borrow().records;
        self.args.telemetry.emit(self.event(EventStatus::Loading).records_written(total)).await;
        Ok(more)
    }
}

impl Actor for Loader {
    type Msg = LoaderMsg;
    type State = LoaderState;
    type Arguments = LoaderArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<LoaderMsg>,
        args: LoaderArgs,
    ) -> Result<LoaderState, ActorProcessingErr> {
        let job = &args.job;
        let producer = producer_name(&job.job_type(), &job.symbol);
        let message = match args.progress.borrow().cursor {
            Some(c) => format!("Resuming {} {} after {}", job.symbol, job.kind.noun(), job.kind.show(c)),
            None => format!("Loading {} {} from {}", job.symbol, job.kind.noun(), format_ms(job.start_ms)),
        };
        let state = LoaderState { args, producer };
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
            LoaderMsg::NextPage => match state.next_page().await {
                Ok(true) => myself.send_message(LoaderMsg::NextPage)?,
                Ok(false) => state.finish(&myself).await,
                Err(error) => {
                    let mut event = state.event(EventStatus::Error).message(error.to_string());
                    // Restarting would ask the same and get the same answer, for ever: the loader
                    // fails as unrecoverable (its supervisor marks it failed and leaves it) and
                    // says it is over, for good.
                    let terminal = error.downcast_ref::<ExchangeError>().is_some_and(ExchangeError::is_terminal);
                    event.finished = terminal;
                    event.retryable = terminal.then_some(false);
                    state.args.telemetry.emit(event).await;
                    if !terminal {
                        return Err(error);
                    }
                    tracing::error!(symbol = %state.args.job.symbol, %error, "The exchange refused the backfill; giving up.");
                    state.args.progress.send_modify(|p| {
                        p.failed = Some(error.to_string());
                        p.done = true;
                    });
                    return Err(Box::new(Unrecoverable(error.to_string())));
                }
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DataRecord, Trade, TradeKind};

    fn trade(id: i64) -> Sequenced {
        let t = Trade {
            symbol: "ETHUSDT".into(),
            kind: TradeKind::Trade,
            id,
            price: "2683.81".parse().unwrap(),
            qty: "0.0042".parse().unwrap(),
            time: 1_723_161_253_999 + id,
            is_buyer_maker: false,
            first_trade_id: None,
            last_trade_id: None,
        };
        Sequenced { seq: id, time: t.time, record: DataRecord::Trade(t) }
    }

    #[test]
    fn gaps_are_holes_in_the_sequence_including_across_pages() {
        let page: Vec<Sequenced> = [11, 12, 15, 16, 20].into_iter().map(trade).collect();
        let gaps = find_gaps(Some(1), Some(9), &page);
        assert_eq!(
            gaps,
            vec![
                Gap { first_missing: 10, last_missing: 10, missing: 1 },
                Gap { first_missing: 13, last_missing: 14, missing: 2 },
                Gap { first_missing: 17, last_missing: 19, missing: 3 },
            ]
        );
        assert!(find_gaps(Some(1), Some(10), &page[..2]).is_empty());
        assert!(find_gaps(None, Some(1), &page).is_empty(), "calendar months have no fixed step");
        let minutes: Vec<Sequenced> = [0, 60_000, 240_000].into_iter().map(trade).collect();
        assert_eq!(
            find_gaps(Some(60_000), None, &minutes),
            vec![Gap { first_missing: 120_000, last_missing: 180_000, missing: 2 }]
        );
    }
}
