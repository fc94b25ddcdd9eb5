//! A REST backfill workflow (klines, aggregate trades or trades of one symbol over a time range):
//! one loader publishing to the workflow's data topic and one connector writing that topic into
//! the workflow's collection, named as the seeds name them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{AppError, NodeContext};
use crate::actors::connector::{ConnectorRoute, ConnectorShared};
use crate::actors::loader::{BackfillJob, Loader, LoaderArgs, LoaderProgress};
use crate::bus::topics::data_topic;
use crate::exchange::binance::{ArchiveReport, Archived, BinanceArchive, BinanceRest, SequencedKind};
use crate::store::collection_name;
use crate::supervision::{ChildSpec, Restart};
use crate::workflow::new_queue_id;

/// A loader beats before each request; one request may take the client's 30 s timeout plus a 5 s
/// retry pause, so silence for this long means it is stuck.
const LOADER_HEARTBEAT: Duration = Duration::from_secs(60);

pub struct BackfillWorkflow {
    pub job: BackfillJob,
    pub collection: String,
    pub progress: Arc<watch::Sender<LoaderProgress>>,
    pub connector: Arc<ConnectorShared>,
    /// The archive-then-REST source, once the loader is made on a node with an archive
    /// (`binance.archive_url`) and for a kind the archive holds.
    archived: std::sync::OnceLock<Option<Arc<Archived>>>,
}

impl BackfillWorkflow {
    /// A workflow with the seeds' names: data topic `<queue_id>-data`, collection
    /// `<symbol>_<type>_<start date>`, e.g. `btcusdt_api_candles_1m_2024_08_01` (stable across
    /// runs of the same backfill).
    pub fn new(
        queue_id: Option<String>,
        symbol: &str,
        kind: Arc<dyn SequencedKind>,
        (start_ms, end_ms): (i64, i64),
        topic: Option<String>,
        collection: Option<String>,
        page_limit: u32,
    ) -> BackfillWorkflow {
        let symbol = symbol.to_ascii_uppercase();
        let job_type = kind.job_type();
        let queue_id = queue_id.unwrap_or_else(|| new_queue_id(&symbol, &job_type, start_ms));
        BackfillWorkflow {
            collection: collection.unwrap_or_else(|| collection_name(&symbol, &job_type, start_ms)),
            job: BackfillJob {
                topic: topic.unwrap_or_else(|| data_topic(&queue_id)),
                queue_id,
                symbol,
                kind,
                start_ms,
                end_ms,
                page_limit,
            },
            progress: Arc::new(watch::channel(LoaderProgress::default()).0),
            connector: Arc::new(ConnectorShared::default()),
            archived: std::sync::OnceLock::new(),
        }
    }

    /// The job the loader runs: from the node's archive first, where it has one that holds this
    /// kind (made once, so that a restarted loader keeps what it knows of the archive).
    fn loader_job(&self, ctx: &NodeContext) -> Result<BackfillJob, AppError> {
        let mut job = self.job.clone();
        let archived = match self.archived.get() {
            Some(archived) => archived.clone(),
            None => {
                let archive = match ctx.config.binance.archive() {
                    Some(url) => Some(BinanceArchive::new(url, ctx.metrics.clone())?),
                    None => None,
                };
                let archived = archive.and_then(|a| Archived::wrap(job.kind.clone(), a, job.end_ms)).map(Arc::new);
                self.archived.get_or_init(|| archived).clone()
            }
        };
        if let Some(archived) = archived {
            job.kind = archived;
        }
        Ok(job)
    }

    /// What the loader took from the archive; `None` without one.
    pub fn archive_report(&self) -> Option<ArchiveReport> {
        self.archived.get()?.as_ref().map(|a| a.report())
    }

    /// Where the workflow's connector reads and writes.
    pub fn route(&self) -> ConnectorRoute {
        ConnectorRoute {
            queue_id: self.job.queue_id.clone(),
            topic: self.job.topic.clone(),
            group: crate::bus::topics::connector_group(&self.collection),
            collection: self.collection.clone(),
        }
    }

    /// Creates the data topic; returns the loader as a supervised child. A backfill that was
    /// stopped or killed continues after the newest record the store has for this collection and
    /// symbol. Records are stored in order per symbol (one partition, commits in offset order), so
    /// everything before that mark is stored too.
    pub async fn loader(&self, ctx: &NodeContext, rest: &BinanceRest) -> Result<ChildSpec, AppError> {
        ctx.bus.ensure_topic(&self.job.topic, ctx.config.bus.partitions).await?;
        let stored = ctx.store.high_water_mark(&self.collection, &self.job.symbol).await?;
        let (ctx, job, rest, progress) = (ctx.clone(), self.loader_job(ctx)?, rest.clone(), self.progress.clone());
        let id = format!("loader:{}:{}", self.job.queue_id, self.collection);
        Ok(ChildSpec::with_heartbeat(id, "loader", Restart::Transient, Some(LOADER_HEARTBEAT), move |heartbeat| {
            let args = LoaderArgs {
                job: job.clone(),
                stored,
                rest: rest.clone(),
                bus: ctx.bus.clone(),
                telemetry: ctx.telemetry.clone(),
                metrics: ctx.metrics.clone(),
                progress: progress.clone(),
                heartbeat,
            };
            (Loader, args)
        }))
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
        let loader = self.loader(ctx, rest).await?;
        let connector = if long_running {
            ctx.partitioned_connectors(self.route())
        } else {
            ctx.connector_child(self.route(), self.connector.clone(), Restart::Transient)
        };
        Ok((connector, loader))
    }
}
