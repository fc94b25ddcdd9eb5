//! A consumer-group member whose partitions are worked on by separate actors.
//!
//! One librdkafka consumer per member, polled by one dedicated thread (the *fetcher*). The fetcher
//! routes each record into the bounded channel of its partition; the actor of that partition reads
//! the channel and commits through the shared consumer. Rebalance callbacks run on the fetcher
//! thread between polls, which gives the order the protocol needs:
//!
//! - assignment: the partition's channel exists before its first record is polled, and the
//!   member reports [`GroupEvent::Assigned`];
//! - revocation: the fetcher stops routing the partition, reports [`GroupEvent::Revoked`] and
//!   blocks until the owner acknowledges that the partition's actor has flushed, committed and
//!   stopped (or [`REVOKE_TIMEOUT`] passes) — only then does librdkafka complete the rebalance.
//!
//! A restarted partition actor asks for its partition again: the fetcher opens a fresh channel and
//! seeks the partition back to the group's committed offset, so what the crashed incarnation had
//! read but not committed is read again. librdkafka discards records fetched before a seek.
//! Assignments and seeks start at the committed offset (a batch before it on tansu, see
//! [`super::resume`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};

use super::resume::{self, ResumePoints, Rewinding};
use super::{commit_sync, kafka_err, start_commit, to_bus_message, OffsetsReader};
use crate::bus::{BusError, BusMessage, CommitOffset, Consumer, GroupEvent, GroupMember, PendingCommit, RevokeAck};

/// Longest a revocation waits for the partitions' actors to flush, commit and stop.
pub const REVOKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one poll of the fetcher may block, so that it serves requests and stops promptly.
const FETCH_POLL: Duration = Duration::from_millis(50);

type Route = mpsc::Sender<BusMessage>;
type Inbox = mpsc::Receiver<BusMessage>;

/// State shared by the fetcher thread (through the consumer's context) and the member.
struct GroupContext {
    topic: Arc<str>,
    /// Records per partition that may wait for their actor.
    capacity: usize,
    /// Assigned partition → channel of its actor.
    routes: Mutex<HashMap<u32, Route>>,
    /// Channels opened at assignment that no actor has taken yet.
    inbox: Mutex<HashMap<u32, Inbox>>,
    events: mpsc::UnboundedSender<GroupEvent>,
    resume: Arc<ResumePoints>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl GroupContext {
    fn partitions_of(&self, tpl: &TopicPartitionList) -> Vec<u32> {
        tpl.elements_for_topic(&self.topic).iter().map(|e| e.partition() as u32).collect()
    }

    /// Opens a fresh channel for `partition`; records still in the old one are dropped with it.
    fn open_route(&self, partition: u32) -> Inbox {
        let (tx, rx) = mpsc::channel(self.capacity);
        lock(&self.routes).insert(partition, tx);
        rx
    }
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        resume::rebalance(self, consumer, err, tpl);
    }
}

impl Rewinding for GroupContext {
    fn resume(&self) -> &Arc<ResumePoints> {
        &self.resume
    }

    fn before_revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let partitions = self.partitions_of(tpl);
        {
            let mut routes = lock(&self.routes);
            let mut inbox = lock(&self.inbox);
            for p in &partitions {
                routes.remove(p);
                inbox.remove(p);
            }
        }
        let lost = consumer.assignment_lost();
        tracing::info!(topic = %self.topic, ?partitions, lost, "Partitions revoked; stopping their actors.");
        let (ack, answered) = RevokeAck::pair();
        if self.events.send(GroupEvent::Revoked { partitions, lost, ack }).is_ok()
            && answered.recv_timeout(REVOKE_TIMEOUT).is_err()
        {
            tracing::warn!(topic = %self.topic, "Revoked partitions' actors did not stop in time; rebalancing anyway.");
        }
    }

    fn after_assign(&self, tpl: &TopicPartitionList) {
        let partitions = self.partitions_of(tpl);
        if partitions.is_empty() {
            return;
        }
        for p in &partitions {
            let rx = self.open_route(*p);
            lock(&self.inbox).insert(*p, rx);
        }
        tracing::info!(topic = %self.topic, ?partitions, "Partitions assigned.");
        let _ = self.events.send(GroupEvent::Assigned(partitions));
    }
}

/// Asks the fetcher to restart a partition from the group's committed offset.
struct Reopen {
    partition: u32,
    reply: oneshot::Sender<Result<Inbox, BusError>>,
}

pub(super) struct KafkaMember {
    consumer: Arc<BaseConsumer<GroupContext>>,
    group: String,
    topic: Arc<str>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<GroupEvent>>,
    requests: Mutex<std_mpsc::Sender<Reopen>>,
    stop: Arc<AtomicBool>,
    offsets: Arc<OffsetsReader>,
}

impl KafkaMember {
    /// Joins with the consumer settings `config` (group id included) and starts the fetcher.
    pub(super) fn join(
        config: &ClientConfig,
        offsets: OffsetsReader,
        topic: &str,
        capacity: usize,
    ) -> Result<KafkaMember, BusError> {
        let (events_tx, events) = mpsc::unbounded_channel();
        let context = GroupContext {
            topic: Arc::from(topic),
            capacity: capacity.max(1),
            routes: Mutex::default(),
            inbox: Mutex::default(),
            events: events_tx,
            resume: Arc::new(ResumePoints::new(offsets.flavor)),
        };
        let consumer: BaseConsumer<GroupContext> =
            config.create_with_context(context).map_err(|e| kafka_err("cannot create a Kafka consumer", e))?;
        consumer.subscribe(&[topic]).map_err(|e| kafka_err(&format!("cannot subscribe to {topic}"), e))?;
        let consumer = Arc::new(consumer);
        let (requests, incoming) = std_mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let fetcher =
            Fetcher { consumer: consumer.clone(), topic: Arc::from(topic), requests: incoming, stop: stop.clone() };
        std::thread::Builder::new()
            .name(format!("kafka-fetch-{topic}"))
            .spawn(move || fetcher.run())
            .map_err(|e| kafka_err("cannot start the fetcher thread", e))?;
        Ok(KafkaMember {
            consumer,
            group: offsets.group.clone(),
            topic: Arc::from(topic),
            events: tokio::sync::Mutex::new(events),
            requests: Mutex::new(requests),
            stop,
            offsets: Arc::new(offsets),
        })
    }
}

#[async_trait]
impl GroupMember for KafkaMember {
    async fn next_event(&self) -> Result<GroupEvent, BusError> {
        self.events.lock().await.recv().await.ok_or(BusError::Closed)
    }

    async fn partition(&self, partition: u32) -> Result<Box<dyn Consumer>, BusError> {
        let first = lock(&self.consumer.context().inbox).remove(&partition);
        let inbox = match first {
            Some(rx) => rx,
            None => {
                let (reply, answer) = oneshot::channel();
                lock(&self.requests).send(Reopen { partition, reply }).map_err(|_| BusError::Closed)?;
                answer.await.map_err(|_| BusError::Closed)??
            }
        };
        Ok(Box::new(PartitionConsumer {
            consumer: self.consumer.clone(),
            inbox,
            topic: self.topic.clone(),
            partition,
            position: None,
            offsets: self.offsets.clone(),
        }))
    }

    fn group(&self) -> &str {
        &self.group
    }

    fn topic(&self) -> &str {
        &self.topic
    }
}

impl Drop for KafkaMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The thread that polls the member's consumer.
struct Fetcher {
    consumer: Arc<BaseConsumer<GroupContext>>,
    topic: Arc<str>,
    requests: std_mpsc::Receiver<Reopen>,
    stop: Arc<AtomicBool>,
}

impl Fetcher {
    fn run(self) {
        while !self.stop.load(Ordering::Acquire) {
            match self.consumer.poll(FETCH_POLL) {
                Some(Ok(m)) => {
                    let record = to_bus_message(&m, &self.topic);
                    drop(m);
                    self.route(record);
                }
                Some(Err(error)) => tracing::warn!(topic = %self.topic, %error, "Kafka consumer error."),
                None => {}
            }
            while let Ok(request) = self.requests.try_recv() {
                let _ = request.reply.send(self.reopen(request.partition));
            }
        }
        // Leaving happens when the last handle drops the consumer: librdkafka then revokes the
        // assignment (no owner is left to wait for) and leaves the group.
    }

    /// Hands a record to its partition's actor, waiting while that actor's channel is full (the
    /// backpressure that keeps memory bounded). A record of a partition without an actor is
    /// dropped: it is not committed, so it is read again by whoever owns the partition next.
    fn route(&self, record: BusMessage) {
        let ctx = self.consumer.context();
        if !ctx.resume.keep(record.partition as i32, record.offset as i64) {
            return;
        }
        let route = lock(&ctx.routes).get(&record.partition).cloned();
        if let Some(tx) = route {
            let _ = tx.blocking_send(record);
        }
    }

    fn reopen(&self, partition: u32) -> Result<Inbox, BusError> {
        let ctx = self.consumer.context();
        if !lock(&ctx.routes).contains_key(&partition) {
            return Err(BusError::NotAssigned { topic: self.topic.to_string(), partition });
        }
        let rx = ctx.open_route(partition);
        let offset = ctx
            .resume
            .reopen(&self.consumer, &self.topic, partition as i32)
            .map_err(|e| kafka_err(&format!("cannot rewind partition {partition}"), e))?;
        tracing::info!(topic = %self.topic, partition, ?offset, "Partition reopened at the committed offset.");
        Ok(rx)
    }
}

/// The consumer of one partition of a [`KafkaMember`].
struct PartitionConsumer {
    consumer: Arc<BaseConsumer<GroupContext>>,
    inbox: Inbox,
    topic: Arc<str>,
    partition: u32,
    /// Offset after the last record read.
    position: Option<u64>,
    offsets: Arc<OffsetsReader>,
}

impl PartitionConsumer {
    fn check_assigned(&self, offsets: &[CommitOffset]) -> Result<(), BusError> {
        match offsets.iter().find(|c| c.partition != self.partition) {
            Some(c) => Err(BusError::NotAssigned { topic: self.topic.to_string(), partition: c.partition }),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Consumer for PartitionConsumer {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<BusMessage>, BusError> {
        let mut out = Vec::new();
        match tokio::time::timeout(timeout, self.inbox.recv()).await {
            Err(_) => return Ok(out),
            // Revoked: nothing more comes; the assigner stops this consumer's actor (which flushes
            // and commits) before the rebalance completes.
            Ok(None) => {
                tokio::time::sleep(timeout).await;
                return Ok(out);
            }
            Ok(Some(m)) => out.push(m),
        }
        while out.len() < max {
            match self.inbox.try_recv() {
                Ok(m) => out.push(m),
                Err(_) => break,
            }
        }
        self.position = out.last().map(|m| m.offset + 1).or(self.position);
        Ok(out)
    }

    async fn commit(&mut self, offsets: &[CommitOffset]) -> Result<(), BusError> {
        self.check_assigned(offsets)?;
        commit_sync(self.consumer.clone(), &self.topic, offsets).await
    }

    async fn start_commit(&mut self, offsets: &[CommitOffset]) -> Result<PendingCommit, BusError> {
        self.check_assigned(offsets)?;
        start_commit(self.consumer.clone(), &self.topic, offsets)
    }

    async fn pending(&mut self) -> Result<u64, BusError> {
        let (offsets, topic, partition, position) =
            (self.offsets.clone(), self.topic.to_string(), self.partition, self.position);
        tokio::task::spawn_blocking(move || {
            let lag = offsets.lag(&topic)?;
            let p = lag.iter().find(|l| l.partition == partition).ok_or(BusError::UnknownTopic(topic))?;
            Ok(p.end.saturating_sub(position.unwrap_or(0).max(p.committed)))
        })
        .await
        .map_err(|e| kafka_err("offset lookup task", e))?
    }

    fn topic(&self) -> &str {
        &self.topic
    }
}
