//! The connector: consumes a data topic in batches, upserts each batch into the store, and only
//! then commits the batch's offsets — at-least-once delivery plus idempotent upserts, so nothing is
//! lost and nothing is stored twice. A message it cannot decode goes to the dead-letter topic.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

use super::dead_letter::json_error_reason;
use super::{DeadLetters, Telemetry};
use crate::admin::metrics::Metrics;
use crate::admin::LagWatch;
use crate::bus::{Bus, BusMessage, CommitOffset, Consumer, GroupMember, PendingCommit};
use crate::model::{DataRecord, EventStatus, QueueEvent, RecordKind};
use crate::store::{Batch, Store, StoreError};
use crate::supervision::Heartbeat;

/// Shared between the connector's incarnations and whoever runs it.
#[derive(Debug, Default)]
pub struct ConnectorShared {
    /// Set when no more records will be published: the connector finishes once it has caught up.
    pub drain: AtomicBool,
    /// Records written to the store, over every incarnation.
    pub written: AtomicU64,
}

/// What a connector reads and where it writes.
#[derive(Debug, Clone)]
pub struct ConnectorRoute {
    /// The workflow it reports on in `queue-events`.
    pub queue_id: String,
    pub topic: String,
    /// Consumer group; connectors of one group share the topic's partitions.
    pub group: String,
    /// Store collection. A depth topic also carries book snapshots, another record kind, which
    /// go to `<collection>_books` (see [`ConnectorRoute::collection_of`]).
    pub collection: String,
}

impl ConnectorRoute {
    /// Where records of `kind` are stored: book snapshots beside the depth events they are cut
    /// from, in `<collection>_books` (a collection holds one record kind); the rest in `collection`.
    pub fn collection_of(&self, kind: RecordKind) -> String {
        match kind {
            RecordKind::BookSnapshot => format!("{}_books", self.collection),
            _ => self.collection.clone(),
        }
    }

    /// `batch` split by the collection each record goes to; the batch itself (no copy) when it
    /// all goes to one, as it does on every topic but a depth topic.
    fn split(&self, batch: Batch) -> Vec<(String, Batch)> {
        let first = batch.first().map(DataRecord::kind);
        if batch.iter().all(|r| Some(r.kind()) == first) {
            return first.map(|k| vec![(self.collection_of(k), batch)]).unwrap_or_default();
        }
        let mut parts: Vec<(String, Vec<DataRecord>)> = Vec::new();
        for r in batch.iter() {
            let collection = self.collection_of(r.kind());
            match parts.iter_mut().find(|(c, _)| *c == collection) {
                Some((_, part)) => part.push(r.clone()),
                None => parts.push((collection, vec![r.clone()])),
            }
        }
        parts.into_iter().map(|(c, part)| (c, Arc::new(part))).collect()
    }
}

/// Where a connector's records come from.
#[derive(Clone)]
pub enum ConnectorSource {
    /// A member of the route's group reading whatever partitions the group gives it (a
    /// workflow's connector, which drains the topic and finishes).
    Group,
    /// One partition of a node's group member, handed over by the partition assigner.
    Partition(Arc<dyn GroupMember>, u32),
}

pub struct ConnectorArgs {
    pub route: ConnectorRoute,
    pub source: ConnectorSource,
    /// Beaten on every poll; the supervisor restarts a connector that stops beating.
    pub heartbeat: Heartbeat,
    /// Flush when this many records are pending…
    pub batch_size: usize,
    /// …or when the oldest pending record has waited this long.
    pub flush_interval: Duration,
    pub bus: Arc<dyn Bus>,
    pub store: Arc<dyn Store>,
    pub telemetry: Telemetry,
    pub dead_letters: DeadLetters,
    pub metrics: Arc<Metrics>,
    pub shared: Arc<ConnectorShared>,
    /// Held while the connector runs, when it reads its whole group (its lag is reported then).
    pub lag: Option<LagWatch>,
}

pub enum ConnectorMsg {
    Poll,
    /// Fail now, dropping the batch in memory, as a crash would: chaos and recovery tests use it to
    /// prove that uncommitted records are delivered again.
    Fail(String),
}

pub struct Connector;

pub struct ConnectorState {
    args: ConnectorArgs,
    consumer: Box<dyn Consumer>,
    producer: String,
    pending: Vec<DataRecord>,
    /// Positions to commit with the next flush, including dead-lettered messages.
    positions: Vec<CommitOffset>,
    /// When the pending records arrived, for the latency they are observed with once committed.
    arrivals: Arrivals,
    deadline: Option<Instant>,
    in_flight: Option<InFlight>,
    /// The offsets of the last stored batch, on their way to the broker.
    committing: Option<PendingCommit>,
}

/// A batch being written by the store, with what to commit once it is.
struct InFlight {
    write: tokio::task::JoinHandle<Result<(), StoreError>>,
    batch: Batch,
    positions: Vec<CommitOffset>,
    arrivals: Arrivals,
    count: u64,
    started: std::time::Instant,
}

/// When a batch's records were appended to the bus (epoch ms, one per record) and when the
/// connector polled them (one instant per poll, with how many records it brought).
#[derive(Default)]
struct Arrivals {
    appended: Vec<i64>,
    polled: Vec<(std::time::Instant, u64)>,
}

impl Arrivals {
    /// Observes every record's latency into `streamforge_record_latency_seconds`, now that the
    /// batch is committed.
    fn observe(&self, metrics: &Metrics) {
        let since_append = metrics.record_latency.with_label_values(&[FAMILY, "append"]);
        let now = crate::model::now_ms();
        for &t in &self.appended {
            since_append.observe((now - t).max(0) as f64 / 1000.0);
        }
        let since_poll = metrics.record_latency.with_label_values(&[FAMILY, "poll"]);
        for &(at, n) in &self.polled {
            let secs = at.elapsed().as_secs_f64();
            for _ in 0..n {
                since_poll.observe(secs);
            }
        }
    }
}

const FAMILY: &str = "connector";
/// Longest a poll may block, so that stop and fail requests are handled promptly.
const MAX_POLL_WAIT: Duration = Duration::from_millis(100);
/// The `producer` of a workflow connector's events: `connector__<collection>`.
pub fn producer_name(collection: &str) -> String {
    format!("connector__{collection}")
}

/// How long a draining connector waits for more records before asking the bus whether any are left.
const DRAINED_POLL_WAIT: Duration = Duration::from_millis(10);
/// Pauses between attempts to write a batch while the store is unreachable: doubling up to the cap.
const STORE_RETRY_FIRST: Duration = Duration::from_millis(200);
const STORE_RETRY_MAX: Duration = Duration::from_secs(5);

impl ConnectorState {
    fn event(&self, status: EventStatus) -> QueueEvent {
        QueueEvent::new(&self.args.route.queue_id, &self.producer, status).kind("connector")
    }

    fn track(&mut self, m: &BusMessage) {
        match self.positions.iter_mut().find(|c| c.partition == m.partition) {
            Some(c) => c.next_offset = c.next_offset.max(m.offset + 1),
            None => self.positions.push(CommitOffset { partition: m.partition, next_offset: m.offset + 1 }),
        }
    }

    async fn take(&mut self, messages: Vec<BusMessage>) -> Result<(), ActorProcessingErr> {
        self.args.metrics.records_in.with_label_values(&[FAMILY]).inc_by(messages.len() as u64);
        let (polled, before) = (std::time::Instant::now(), self.pending.len());
        for m in messages {
            match DataRecord::from_bytes(&m.payload) {
                Ok(record) => {
                    self.pending.push(record);
                    self.arrivals.appended.push(m.timestamp_ms);
                }
                Err(e) => {
                    self.args.dead_letters.send(&self.producer, &m, json_error_reason(&e), &e.to_string()).await?
                }
            }
            self.track(&m);
        }
        let taken = (self.pending.len() - before) as u64;
        if taken > 0 {
            self.arrivals.polled.push((polled, taken));
        }
        if self.deadline.is_none() && !self.positions.is_empty() {
            self.deadline = Some(Instant::now() + self.args.flush_interval);
        }
        Ok(())
    }

    /// Hands the pending batch to the store (one transaction) without waiting for it, so the next
    /// batch is decoded while this one is written. At most one write is in flight: the previous one
    /// is awaited and committed first, keeping commits in offset order.
    async fn flush(&mut self) -> Result<(), ActorProcessingErr> {
        self.complete_write().await?;
        if self.positions.is_empty() {
            return Ok(());
        }
        let batch: Batch = Arc::new(std::mem::take(&mut self.pending));
        let positions = std::mem::take(&mut self.positions);
        let arrivals = std::mem::take(&mut self.arrivals);
        self.deadline = None;
        let count = batch.len() as u64;
        let started = std::time::Instant::now();
        let write = self.write(batch.clone());
        self.in_flight = Some(InFlight { write, batch, positions, arrivals, count, started });
        Ok(())
    }

    fn write(&self, batch: Batch) -> tokio::task::JoinHandle<Result<(), StoreError>> {
        let parts = self.args.route.split(batch);
        let store = self.args.store.clone();
        tokio::spawn(async move {
            // One transaction per collection: a failure after the first leaves it stored and the
            // offsets uncommitted, and its upserts are idempotent when the batch comes again.
            for (collection, part) in parts {
                store.upsert(&collection, part).await?;
            }
            Ok(())
        })
    }

    /// Waits for the commit under way, if any.
    async fn finish_commit(&mut self) -> Result<(), ActorProcessingErr> {
        if let Some(commit) = self.committing.take() {
            commit.wait().await?;
        }
        Ok(())
    }

    /// Waits for the write in flight and for its offsets to be committed.
    async fn settle(&mut self) -> Result<(), ActorProcessingErr> {
        self.complete_write().await?;
        self.finish_commit().await
    }

    /// Waits for the write in flight; commits its offsets only once the store has the records
    /// (the commit goes on while the next batch is read: [`Self::finish_commit`] waits for it).
    /// While the store is unreachable the same batch is retried with growing pauses and nothing is
    /// committed (the bus keeps the records); any other store error fails the connector.
    async fn complete_write(&mut self) -> Result<(), ActorProcessingErr> {
        let Some(mut w) = self.in_flight.take() else {
            return Ok(());
        };
        let (mut pause, mut failures) = (STORE_RETRY_FIRST, 0u32);
        loop {
            let outcome = (&mut w.write).await.map_err(|e| StoreError::Worker(e.to_string()))?;
            match outcome {
                Ok(()) => break,
                Err(error) if error.is_transient() => {
                    self.args.metrics.errors.with_label_values(&[FAMILY, "store_unavailable"]).inc();
                    if failures == 0 {
                        tracing::warn!(collection = %self.args.route.collection, %error, "Store unavailable; holding offsets and retrying the batch.");
                        let message = format!("Store unavailable, retrying (offsets not committed): {error}");
                        self.args.telemetry.emit(self.event(EventStatus::Error).message(message)).await;
                    }
                    failures += 1;
                    self.args.heartbeat.beat();
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(STORE_RETRY_MAX);
                    w.write = self.write(w.batch.clone());
                }
                Err(error) => {
                    self.args.metrics.errors.with_label_values(&[FAMILY, "store"]).inc();
                    self.args.telemetry.emit(self.event(EventStatus::Error).message(error.to_string())).await;
                    return Err(error.into());
                }
            }
        }
        if failures > 0 {
            tracing::info!(collection = %self.args.route.collection, failures, "Store reachable again; batch written.");
        }
        self.finish_commit().await?;
        self.committing = Some(self.consumer.start_commit(&w.positions).await?);
        w.arrivals.observe(&self.args.metrics);
        if w.count > 0 {
            self.args.metrics.batch_latency.with_label_values(&[FAMILY]).observe(w.started.elapsed().as_secs_f64());
            self.args.metrics.batches.with_label_values(&[FAMILY]).inc();
            self.args.metrics.records_out.with_label_values(&[FAMILY]).inc_by(w.count);
            let total = self.args.shared.written.fetch_add(w.count, Ordering::AcqRel) + w.count;
            let message = format!("Stored {total} records in {}", self.args.route.collection);
            self.args.telemetry.emit(self.event(EventStatus::Loading).records_written(total).message(message)).await;
        }
        Ok(())
    }
}

impl Actor for Connector {
    type Msg = ConnectorMsg;
    type State = ConnectorState;
    type Arguments = ConnectorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<ConnectorMsg>,
        args: ConnectorArgs,
    ) -> Result<ConnectorState, ActorProcessingErr> {
        let (consumer, producer) = match &args.source {
            ConnectorSource::Group => {
                (args.bus.subscribe(&args.route.group, &args.route.topic).await?, producer_name(&args.route.collection))
            }
            ConnectorSource::Partition(member, p) => {
                (member.partition(*p).await?, format!("connector__{}__p{p}", args.route.collection))
            }
        };
        let state = ConnectorState {
            consumer,
            producer,
            pending: Vec::with_capacity(args.batch_size),
            positions: Vec::new(),
            arrivals: Arrivals::default(),
            deadline: None,
            in_flight: None,
            committing: None,
            args,
        };
        let message = format!("Consuming {} into {}", state.args.route.topic, state.args.route.collection);
        state.args.telemetry.emit(state.event(EventStatus::Started).message(message)).await;
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<ConnectorMsg>,
        _state: &mut ConnectorState,
    ) -> Result<(), ActorProcessingErr> {
        myself.send_message(ConnectorMsg::Poll)?;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ConnectorMsg>,
        msg: ConnectorMsg,
        state: &mut ConnectorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ConnectorMsg::Fail(reason) => {
                state.args.metrics.errors.with_label_values(&[FAMILY, "injected"]).inc();
                return Err(format!("injected failure: {reason}").into());
            }
            ConnectorMsg::Poll => {
                state.args.heartbeat.beat();
                let room = state.args.batch_size.saturating_sub(state.pending.len()).max(1);
                let draining = state.args.shared.drain.load(Ordering::Acquire);
                // Once draining, poll briefly: an empty answer is then checked against the bus (which
                // may cost a broker round trip) rather than waited out.
                let wait = if draining {
                    DRAINED_POLL_WAIT
                } else {
                    state
                        .deadline
                        .map(|d| d.saturating_duration_since(Instant::now()))
                        .unwrap_or(MAX_POLL_WAIT)
                        .min(MAX_POLL_WAIT)
                };
                let messages = state.consumer.poll(room, wait).await?;
                let got = messages.len();
                state.take(messages).await?;
                let due = state.deadline.is_some_and(|d| Instant::now() >= d);
                // Flush on size or age; once draining, also when the topic has nothing more to give;
                // and at once when a producer waits for the bus's space that these records hold.
                let pressed = !state.positions.is_empty() && state.consumer.producers_waiting();
                if state.pending.len() >= state.args.batch_size || due || (draining && got == 0) || pressed {
                    state.flush().await?;
                }
                if got == 0 {
                    // Idle: nothing to overlap the write and commit with, so finish them now.
                    state.settle().await?;
                }
                if draining && got == 0 && state.positions.is_empty() && state.consumer.pending().await? == 0 {
                    let total = state.args.shared.written.load(Ordering::Acquire);
                    let message = format!("Caught up: {total} records in {}", state.args.route.collection);
                    state
                        .args
                        .telemetry
                        .emit(state.event(EventStatus::Finished).records_written(total).message(message))
                        .await;
                    myself.stop(None);
                    return Ok(());
                }
                myself.send_message(ConnectorMsg::Poll)?;
            }
        }
        Ok(())
    }

    /// A graceful stop (shutdown, not a failure) writes and commits what is pending.
    async fn post_stop(
        &self,
        _myself: ActorRef<ConnectorMsg>,
        state: &mut ConnectorState,
    ) -> Result<(), ActorProcessingErr> {
        state.flush().await?;
        state.settle().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BookSnapshot, DepthUpdate};

    fn route() -> ConnectorRoute {
        ConnectorRoute { queue_id: "q".into(), topic: "t".into(), group: "g".into(), collection: "eth_depth".into() }
    }

    #[test]
    fn a_depth_topics_book_snapshots_go_beside_its_events() {
        let depth = br#"{"e":"depthUpdate","E":1723161255308,"s":"ETHUSDT","U":35346513499,"u":35346513505,"b":[["2683.80000000","3.02920000"]],"a":[]}"#;
        let event = DataRecord::DepthUpdate(DepthUpdate::from_ws(depth).unwrap());
        let book = DataRecord::BookSnapshot(BookSnapshot {
            symbol: "ETHUSDT".into(),
            last_update_id: 35346513505,
            bids: vec![],
            asks: vec![],
        });
        let parts = route().split(Arc::new(vec![event.clone(), book.clone(), event.clone()]));
        let names: Vec<(&str, usize)> = parts.iter().map(|(c, b)| (c.as_str(), b.len())).collect();
        assert_eq!(names, [("eth_depth", 2), ("eth_depth_books", 1)]);
        assert_eq!(*parts[1].1, [book]);

        let one_kind: Batch = Arc::new(vec![event.clone(), event]);
        let parts = route().split(one_kind.clone());
        assert!(parts.len() == 1 && Arc::ptr_eq(&parts[0].1, &one_kind), "one kind: the batch as it is");
        assert!(route().split(Arc::new(Vec::new())).is_empty());
    }
}
