//! The message bus: topics split into key-hashed partitions, consumer groups with committed
//! offsets, at-least-once delivery. Actors see only the [`Bus`] and [`Consumer`] traits; the
//! in-process [`memory::MemoryBus`] is the embedded default and Kafka slots in beside it.

#[cfg(feature = "kafka")]
pub mod kafka;
pub mod memory;
mod partitioner;
pub mod topics;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub use partitioner::partition_for_key;

/// A record read from a topic.
#[derive(Debug, Clone)]
pub struct BusMessage {
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: u64,
    pub key: Option<Bytes>,
    pub payload: Bytes,
    /// Append time, epoch ms.
    pub timestamp_ms: i64,
}

/// A record to append to a topic.
#[derive(Debug, Clone)]
pub struct OutRecord {
    pub key: Option<Bytes>,
    pub payload: Bytes,
}

impl OutRecord {
    pub fn keyed(key: impl AsRef<[u8]>, payload: impl Into<Bytes>) -> Self {
        OutRecord { key: Some(Bytes::copy_from_slice(key.as_ref())), payload: payload.into() }
    }
}

/// The position a group has committed on one partition: the offset of the next record to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitOffset {
    pub partition: u32,
    pub next_offset: u64,
}

/// Consumer lag of a group on one partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: u32,
    pub committed: u64,
    pub end: u64,
}

impl PartitionLag {
    pub fn lag(&self) -> u64 {
        self.end.saturating_sub(self.committed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("topic `{0}` does not exist; create it first (topics are never auto-created)")]
    UnknownTopic(String),
    #[error("topic `{topic}` already exists with {existing} partitions, asked for {requested}")]
    PartitionMismatch { topic: String, existing: u32, requested: u32 },
    #[error("invalid topic name {0:?}: use 1-249 characters from [a-zA-Z0-9._-]")]
    InvalidTopicName(String),
    #[error("bus url {0:?} is not supported: use memory:// or kafka://HOST:PORT[,HOST:PORT…]")]
    UnsupportedUrl(String),
    #[error("this build has no Kafka support; rebuild with `--features kafka` to use {0}")]
    KafkaNotBuilt(String),
    #[error("Kafka: {0}")]
    Kafka(String),
    #[error("commit for partition {partition} of `{topic}` which this consumer is not assigned")]
    NotAssigned { topic: String, partition: u32 },
    #[error("the bus is shut down")]
    Closed,
}

/// A message bus with Kafka's model.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Creates `topic` with `partitions` partitions if it does not exist.
    async fn ensure_topic(&self, topic: &str, partitions: u32) -> Result<(), BusError>;

    /// Appends records in order; returns once the bus has acknowledged all of them. Records with
    /// the same key land in the same partition, so per-key order holds. May wait while the topic
    /// is full (backpressure), never drops.
    async fn publish(&self, topic: &str, records: Vec<OutRecord>) -> Result<(), BusError>;

    /// Joins `group` as a new member consuming `topic`. Partitions are shared among the group's
    /// members; each resumes from the group's committed offsets (earliest when none).
    async fn subscribe(&self, group: &str, topic: &str) -> Result<Box<dyn Consumer>, BusError>;

    /// Lag of `group` on every partition of `topic`.
    async fn lag(&self, group: &str, topic: &str) -> Result<Vec<PartitionLag>, BusError>;

    /// Joins `group` on `topic` as a member that hands each assigned partition to its own
    /// consumer (one actor per partition) and reports assignment changes as [`GroupEvent`]s.
    async fn join(&self, group: &str, topic: &str) -> Result<Arc<dyn GroupMember>, BusError>;
}

/// A change of the partitions assigned to a [`GroupMember`].
#[derive(Debug)]
pub enum GroupEvent {
    /// These partitions are now this member's: start their work.
    Assigned(Vec<u32>),
    /// These partitions are being taken away. The rebalance waits until `ack` is answered (or a
    /// timeout passes), so the member flushes and commits their work first. `lost` means the
    /// group already gave them to another member (e.g. this one missed its session): do not
    /// commit, just stop.
    Revoked { partitions: Vec<u32>, lost: bool, ack: RevokeAck },
}

/// Answers a revocation: dropping it (or calling [`RevokeAck::done`]) lets the rebalance go on.
#[derive(Debug)]
pub struct RevokeAck(Option<std::sync::mpsc::Sender<()>>);

impl RevokeAck {
    /// An acknowledgement nobody waits for.
    pub fn none() -> Self {
        RevokeAck(None)
    }

    /// One whose answer arrives on the returned receiver.
    pub fn pair() -> (Self, std::sync::mpsc::Receiver<()>) {
        let (tx, rx) = std::sync::mpsc::channel();
        (RevokeAck(Some(tx)), rx)
    }

    /// The revoked partitions' work is flushed, committed and stopped.
    pub fn done(self) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(());
        }
    }
}

/// One member of a consumer group whose partitions are worked on separately. Leaving the group
/// happens when the last handle (the member and every partition consumer) is dropped.
#[async_trait]
pub trait GroupMember: Send + Sync {
    /// The next assignment change; `Err(Closed)` once the member has left.
    async fn next_event(&self) -> Result<GroupEvent, BusError>;

    /// A consumer of one assigned partition, starting at the group's committed offset (earliest
    /// when none): after a crash of the partition's actor, what it had not committed is read
    /// again. Fails with [`BusError::NotAssigned`] for a partition this member does not own.
    async fn partition(&self, partition: u32) -> Result<Box<dyn Consumer>, BusError>;

    fn group(&self) -> &str;

    fn topic(&self) -> &str;
}

/// One member of a consumer group on one topic. Dropping it leaves the group; uncommitted
/// records are then delivered again to whichever member takes the partition over.
#[async_trait]
pub trait Consumer: Send {
    /// Up to `max` records from the assigned partitions, waiting at most `timeout` for the first.
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<BusMessage>, BusError>;

    /// Commits positions (the next offset to read) for the group.
    async fn commit(&mut self, offsets: &[CommitOffset]) -> Result<(), BusError>;

    /// Starts committing `offsets` and hands back the commit to wait for, so that the caller
    /// reads and decodes on while the broker answers (a synchronous commit per batch held the
    /// Kafka connector path to two thirds of its rate). The caller waits for one before starting
    /// the next, which keeps commits in order. By default the commit is made before returning.
    async fn start_commit(&mut self, offsets: &[CommitOffset]) -> Result<PendingCommit, BusError> {
        self.commit(offsets).await?;
        Ok(PendingCommit::done())
    }

    /// Records of this member's partitions it has not read yet (at least 1 while that is not
    /// known, e.g. before the first assignment). Zero means it has read everything there is.
    async fn pending(&mut self) -> Result<u64, BusError>;

    /// The topic this member consumes.
    fn topic(&self) -> &str;

    /// Whether a producer is waiting for records to be committed before it can publish (the
    /// in-process bus's byte budget is spent): a reader holding a partial batch should write and
    /// commit it now rather than wait to fill it. A broker never waits on its readers: `false`.
    fn producers_waiting(&self) -> bool {
        false
    }
}

/// Opens the bus named by `bus.url`: `memory://` (the embedded default) or `kafka://brokers`;
/// `node` (the node id) names the Kafka consumers' static group membership.
#[cfg_attr(not(feature = "kafka"), allow(unused_variables))]
pub fn open(cfg: &crate::config::BusConfig, node: &str) -> Result<Arc<dyn Bus>, BusError> {
    match cfg.url.split_once("://") {
        Some(("memory", _)) => Ok(Arc::new(memory::MemoryBus::new(cfg.memory_bytes))),
        #[cfg(feature = "kafka")]
        Some(("kafka", brokers)) if !brokers.is_empty() => Ok(Arc::new(kafka::KafkaBus::new(brokers, cfg, node)?)),
        #[cfg(not(feature = "kafka"))]
        Some(("kafka", _)) => Err(BusError::KafkaNotBuilt(cfg.url.clone())),
        _ => Err(BusError::UnsupportedUrl(cfg.url.clone())),
    }
}

/// A commit under way ([`Consumer::start_commit`]); `wait` gives its outcome.
pub struct PendingCommit(Option<tokio::task::JoinHandle<Result<(), BusError>>>);

impl PendingCommit {
    pub fn done() -> PendingCommit {
        PendingCommit(None)
    }

    pub fn running(task: tokio::task::JoinHandle<Result<(), BusError>>) -> PendingCommit {
        PendingCommit(Some(task))
    }

    pub async fn wait(self) -> Result<(), BusError> {
        match self.0 {
            None => Ok(()),
            Some(task) => task.await.map_err(|e| BusError::Kafka(format!("commit task: {e}")))?,
        }
    }
}

/// Highest `offset + 1` per partition in a batch: what to commit once the batch is stored.
pub fn commit_positions(messages: &[BusMessage]) -> Vec<CommitOffset> {
    let mut out: Vec<CommitOffset> = Vec::new();
    for m in messages {
        match out.iter_mut().find(|c| c.partition == m.partition) {
            Some(c) => c.next_offset = c.next_offset.max(m.offset + 1),
            None => out.push(CommitOffset { partition: m.partition, next_offset: m.offset + 1 }),
        }
    }
    out
}

pub(crate) fn validate_topic_name(topic: &str) -> Result<(), BusError> {
    let ok = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(BusError::InvalidTopicName(topic.to_owned()))
    }
}
