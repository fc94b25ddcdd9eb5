//! A kline backfill workflow: one loader publishing to the workflow's data topic and one connector
//! writing that topic into the workflow's collection, named as the seeds name them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{AppError, NodeContext};
use crate::actors::connector::{ConnectorRoute, ConnectorShared};
use crate::actors::loader::{KlineJob, KlineLoader, KlineLoaderArgs, LoaderProgress};
use crate::bus::topics::data_topic;
use crate::exchange::binance::BinanceRest;
use crate::model::{format_ms, Interval};
use crate::store::collection_name;
use crate::supervision::{ChildSpec, Restart};

/// `wf-btcusdt-api_candles_5m-20240801-a1b2c3`: readable, and unique per submission.
pub fn new_queue_id(symbol: &str, kind: &str, start_ms: i64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let date: String = format_ms(start_ms).chars().take(10).filter(|c| *c != '-').collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let salt = nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!("wf-{}-{kind}-{date}-{:06x}", symbol.to_ascii_lowercase(), (salt ^ (salt >> 24)) & 0xff_ffff)
}

/// A loader beats before each request; one request may take the client's 30 s timeout plus a 5 s
/// retry pause, so silence for this long means it is stuck.
const LOADER_HEARTBEAT: Duration = Duration::from_secs(60);

pub struct KlineWorkflow {
    pub job: KlineJob,
    pub collection: String,
    pub progress: Arc<watch::Sender<LoaderProgress>>,
    pub connector: Arc<ConnectorShared>,
}

impl KlineWorkflow {
    /// A workflow with the seeds' names: data topic `<queue_id>-data`, collection
    /// `<symbol>_api_candles_<interval>_<start date>` (stable across runs of the same backfill).
    pub fn new(
        queue_id: Option<String>,
        symbol: &str,
        interval: Interval,
        (start_ms, end_ms): (i64, i64),
        topic: Option<String>,
        collection: Option<String>,
        page_limit: u32,
    ) -> KlineWorkflow {
        let symbol = symbol.to_ascii_uppercase();
        let kind = format!("api_candles_{interval}");
        let queue_id = queue_id.unwrap_or_else(|| new_queue_id(&symbol, &kind, start_ms));
        let start_date: String = format_ms(start_ms).chars().take(10).collect();
        KlineWorkflow {
            collection: collection.unwrap_or_else(|| collection_name(&symbol, &kind, &start_date)),
            job: KlineJob {
                topic: topic.unwrap_or_else(|| data_topic(&queue_id)),
                queue_id,
                symbol,
                interval,
                start_ms,
                end_ms,
                page_limit,
            },
            progress: Arc::new(watch::channel(LoaderProgress::default()).0),
            connector: Arc::new(ConnectorShared::default()),
        }
    }

    /// A backfill that was stopped or killed continues after the newest candle the store already
    /// has for this collection and symbol (its high-water mark), not from the start. Candles are
    /// stored in order per symbol (one partition, commits in offset order), so everything before
    /// the mark is stored too.
    async fn resume_from_store(&self, ctx: &NodeContext) -> Result<(), AppError> {
        let job = &self.job;
        let Some(mark) = ctx.store.high_water_mark(&self.collection, &job.symbol).await? else {
            return Ok(());
        };
        if !(job.start_ms..job.end_ms).contains(&mark) {
            return Ok(());
        }
        // Calendar intervals (1M) cannot step by a fixed width: the last stored candle is fetched
        // again, an idempotent upsert.
        let next = if job.interval.is_fixed() { mark + job.interval.millis() } else { mark };
        self.progress.send_modify(|p| {
            if p.next_open_time < next {
                p.next_open_time = next;
                p.last_open_time = Some(mark);
            }
        });
        tracing::info!(symbol = %job.symbol, collection = %self.collection, from = %format_ms(next), "Resuming the backfill after the store's newest candle.");
        Ok(())
    }

    /// Creates the data topic; returns the connector and the loader as supervised children. A
    /// `long_running` workflow (a node's job) gets partitioned connectors that share the topic
    /// with the other nodes of its group; otherwise one connector drains the topic and finishes.
    pub async fn children(
        &self,
        ctx: &NodeContext,
        rest: &BinanceRest,
        long_running: bool,
    ) -> Result<(ChildSpec, ChildSpec), AppError> {
        ctx.bus.ensure_topic(&self.job.topic, ctx.config.bus.partitions).await?;
        self.resume_from_store(ctx).await?;
        let route = ConnectorRoute {
            queue_id: self.job.queue_id.clone(),
            topic: self.job.topic.clone(),
            group: format!("connector-{}", self.collection),
            collection: self.collection.clone(),
        };
        let connector = if long_running {
            ctx.partitioned_connectors(route)
        } else {
            ctx.connector_child(route, self.connector.clone(), Restart::Transient)
        };
        let loader = {
            let (ctx, job, rest, progress) = (ctx.clone(), self.job.clone(), rest.clone(), self.progress.clone());
            let id = format!("loader:{}", self.job.queue_id);
            ChildSpec::with_heartbeat(id, "loader", Restart::Transient, Some(LOADER_HEARTBEAT), move |heartbeat| {
                let args = KlineLoaderArgs {
                    job: job.clone(),
                    rest: rest.clone(),
                    bus: ctx.bus.clone(),
                    telemetry: ctx.telemetry.clone(),
                    metrics: ctx.metrics.clone(),
                    progress: progress.clone(),
                    heartbeat,
                };
                (KlineLoader, args)
            })
        };
        Ok((connector, loader))
    }
}
