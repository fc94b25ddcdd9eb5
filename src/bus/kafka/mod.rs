//! The bus on Kafka (`rdkafka`, bundled librdkafka). Producer: idempotent, `acks=all`, keyed with
//! Kafka's murmur2 partitioner (the same partition the in-process bus picks), batched with
//! `linger.ms` and lz4, a bounded queue that makes `publish` wait when full, and every record
//! awaited until the broker acknowledged it. Consumers: consumer groups with manual commits
//! (offsets are committed only when the caller says the batch is stored), `cooperative-sticky`
//! assignment. Topics are created explicitly through the admin API.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};

mod group;
mod resume;

use super::{
    validate_topic_name, Bus, BusError, BusMessage, CommitOffset, Consumer, GroupMember, OutRecord, PartitionLag,
    PendingCommit,
};
use crate::config::{BrokerFlavor, BusConfig};

/// How long a metadata or offset request to the broker may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Records fetched for one partition that may wait for the partition's actor.
const PARTITION_BUFFER: usize = 2_500;
/// One fetch may take this share of `bus.kafka.prefetch_kbytes`, compressed (see `consumer_config`).
const FETCH_SHARE: u64 = 4;
/// Records librdkafka keeps fetched ahead per partition (`queued.min.messages`).
const QUEUED_PER_PARTITION: u32 = 1_000;
/// librdkafka refuses a `fetch.max.bytes` below its `message.max.bytes` (1,000,000 by default).
const MIN_FETCH_BYTES: u64 = 1 << 20;

/// `fetch.max.bytes` for a prefetch budget of `prefetch_kbytes`: its share, at least one message.
fn fetch_max_bytes(prefetch_kbytes: u32) -> u64 {
    (u64::from(prefetch_kbytes) * 1024 / FETCH_SHARE).max(MIN_FETCH_BYTES)
}

pub struct KafkaBus {
    base: ClientConfig,
    flavor: BrokerFlavor,
    session_timeout_ms: u64,
    prefetch_kbytes: u32,
    /// The node id when consumers are static group members (`bus.kafka.static_membership`).
    static_member: Option<String>,
    producer: FutureProducer<AuthWatch>,
    admin: AdminClient<AuthWatch>,
    auth: AuthWatch,
    replication: i32,
}

fn kafka_err(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Kafka(format!("{what}: {e}"))
}

/// Remembers the last authentication failure librdkafka reported for the node's producer and admin
/// client, and when. A wrong SCRAM password otherwise surfaces only as an operation that times out;
/// with this the error says why, and topic creation (what a node does first) gives up as soon as
/// the broker refuses the client.
#[derive(Clone, Default)]
struct AuthWatch {
    refused: Arc<std::sync::Mutex<Option<(std::time::Instant, String)>>>,
}

impl rdkafka::ClientContext for AuthWatch {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed)
        ) {
            *self.refused.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((std::time::Instant::now(), reason.to_owned()));
        }
        tracing::error!(target: "librdkafka", %error, reason, "Kafka client error.");
    }
}

impl AuthWatch {
    /// `what` failed with `e`, and why, when the broker refused to authenticate the client.
    fn err(&self, what: &str, e: impl std::fmt::Display) -> BusError {
        match self.refused.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some((_, reason)) => {
                BusError::Kafka(format!("{what}: {e}; the broker refused to authenticate the client: {reason}"))
            }
            None => kafka_err(what, e),
        }
    }

    /// A refusal reported after `since`.
    fn refused_since(&self, since: std::time::Instant) -> Option<String> {
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused.as_ref().filter(|(at, _)| *at >= since).map(|(_, reason)| reason.clone())
    }

    /// Runs `op`, giving up early when the broker refuses to authenticate the client meanwhile (an
    /// earlier refusal does not count: the broker may have learnt the user since).
    async fn unless_refused<T, E: std::fmt::Display>(
        &self,
        what: &str,
        op: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, BusError> {
        let since = std::time::Instant::now();
        tokio::pin!(op);
        loop {
            tokio::select! {
                biased;
                done = &mut op => return done.map_err(|e| self.err(what, e)),
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if let Some(reason) = self.refused_since(since) {
                        return Err(BusError::Kafka(format!(
                            "{what}: the broker refused to authenticate the client: {reason}"
                        )));
                    }
                }
            }
        }
    }
}

/// The client settings shared by producer, consumers and admin: servers and security.
fn base_config(brokers: &str, cfg: &BusConfig) -> Result<ClientConfig, BusError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers).set("client.id", "streamforge");
    let k = &cfg.kafka;
    // The operator's extra properties first, so that what StreamForge sets below wins (the config
    // refuses the properties it owns, see `OWNED_LIBRDKAFKA_PROPERTIES`).
    for (key, value) in &k.librdkafka {
        c.set(key, value);
    }
    if let Some(p) = &k.security_protocol {
        c.set("security.protocol", p);
    }
    if let Some(m) = &k.sasl_mechanism {
        c.set("sasl.mechanism", m);
    }
    if let Some(u) = &k.sasl_username {
        c.set("sasl.username", u);
    }
    if let Some(path) = &k.sasl_password_file {
        // The password comes from a file (a mounted secret) and is never logged.
        let password = std::fs::read_to_string(path)
            .map_err(|e| BusError::Kafka(format!("cannot read bus.kafka.sasl_password_file {path}: {e}")))?;
        c.set("sasl.password", password.trim_end_matches(['\n', '\r']));
    }
    for (key, value) in [
        ("ssl.ca.location", &k.ssl_ca_location),
        ("ssl.certificate.location", &k.ssl_certificate_location),
        ("ssl.key.location", &k.ssl_key_location),
    ] {
        if let Some(v) = value {
            c.set(key, v);
        }
    }
    Ok(c)
}

impl KafkaBus {
    /// Connects to the brokers of `kafka://host:port[,host:port…]`; `node` is the node id, which
    /// names the consumers' `group.instance.id` under `bus.kafka.static_membership`.
    pub fn new(brokers: &str, cfg: &BusConfig, node: &str) -> Result<KafkaBus, BusError> {
        let base = base_config(brokers, cfg)?;
        let auth = AuthWatch::default();
        let producer: FutureProducer<AuthWatch> = base
            .clone()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", cfg.kafka.linger_ms.to_string())
            .set("batch.num.messages", resume::MAX_BATCH_RECORDS.to_string())
            .set("compression.type", &cfg.kafka.compression)
            .set("queue.buffering.max.messages", cfg.kafka.queue_max_messages.to_string())
            .set("message.timeout.ms", cfg.kafka.delivery_timeout_ms.to_string())
            .create_with_context(auth.clone())
            .map_err(|e| kafka_err("cannot create the Kafka producer", e))?;
        let admin =
            base.create_with_context(auth.clone()).map_err(|e| kafka_err("cannot create the Kafka admin client", e))?;
        Ok(KafkaBus {
            base,
            flavor: cfg.kafka.flavor,
            producer,
            admin,
            auth,
            replication: cfg.replication,
            session_timeout_ms: cfg.kafka.session_timeout_ms,
            prefetch_kbytes: cfg.kafka.prefetch_kbytes,
            static_member: cfg.kafka.static_membership.then(|| node.to_owned()),
        })
    }

    /// Settings of a group member: manual commits only, earliest when the group has no offset,
    /// cooperative-sticky assignment (a rebalance moves only the partitions that change owner).
    fn consumer_config(&self, group: &str, topic: &str) -> ClientConfig {
        let mut c = self.base.clone();
        if let Some(node) = &self.static_member {
            // One member per node and topic in a group: the name survives a pod's restart.
            c.set("group.instance.id", format!("{node}-{topic}"));
        }
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set("heartbeat.interval.ms", (self.session_timeout_ms / 10).clamp(100, 3000).to_string())
            // Bounded prefetch: librdkafka's defaults let every consumer queue 64 MiB ahead. A full
            // queue postpones the next fetch by `fetch.queue.backoff.ms` (1 s by default), which with
            // a small queue left the connector idle: 32k records/s at 4 MiB, 163k with 10 ms.
            .set("queued.max.messages.kbytes", self.prefetch_kbytes.to_string())
            .set("fetch.queue.backoff.ms", "10")
            // The queue's bound is checked before a fetch; the response comes on top, compressed
            // (lz4 shrinks our JSON about fourfold) and decompressed whole. With a fetch as large
            // as the queue and librdkafka's 100,000 records per partition, a node draining 20
            // topics held 482 MB, nearly everything it read; a quarter of the budget per fetch, a
            // quarter of that per partition and 1,000 records per partition (half a connector
            // batch; the partition's channel holds more): 160 MB, at the same rate.
            .set("fetch.max.bytes", fetch_max_bytes(self.prefetch_kbytes).to_string())
            .set("max.partition.fetch.bytes", (fetch_max_bytes(self.prefetch_kbytes) / 4).to_string())
            .set("queued.min.messages", QUEUED_PER_PARTITION.to_string());
        c
    }

    /// Whether the brokers list `topic` with partitions (metadata, Describe permission). Any
    /// failure reads as "no": creating the topic then says what is wrong.
    async fn topic_exists(&self, topic: &str) -> bool {
        let (producer, topic) = (self.producer.clone(), topic.to_owned());
        tokio::task::spawn_blocking(move || {
            let metadata = producer.client().fetch_metadata(Some(&topic), REQUEST_TIMEOUT).ok();
            metadata.is_some_and(|m| {
                m.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            })
        })
        .await
        .unwrap_or(false)
    }

    fn offsets_reader(&self, group: &str) -> OffsetsReader {
        OffsetsReader { base: self.base.clone(), group: group.to_owned(), flavor: self.flavor }
    }
}

/// Commits `offsets` of `topic` for the consumer's group and waits for the broker's answer.
async fn commit_sync<K, X>(consumer: Arc<K>, topic: &str, offsets: &[CommitOffset]) -> Result<(), BusError>
where
    K: rdkafka::consumer::Consumer<X> + Send + Sync + 'static,
    X: ConsumerContext + 'static,
{
    start_commit(consumer, topic, offsets)?.wait().await
}

/// Starts committing `offsets` of `topic` for the consumer's group, on a blocking thread
/// (librdkafka's synchronous commit blocks until the broker answers).
fn start_commit<K, X>(consumer: Arc<K>, topic: &str, offsets: &[CommitOffset]) -> Result<PendingCommit, BusError>
where
    K: rdkafka::consumer::Consumer<X> + Send + Sync + 'static,
    X: ConsumerContext + 'static,
{
    let mut tpl = TopicPartitionList::new();
    for c in offsets {
        tpl.add_partition_offset(topic, c.partition as i32, Offset::Offset(c.next_offset as i64))
            .map_err(|e| kafka_err("bad offset", e))?;
    }
    Ok(PendingCommit::running(tokio::task::spawn_blocking(move || {
        consumer.commit(&tpl, CommitMode::Sync).map_err(|e| kafka_err("cannot commit offsets", e))
    })))
}

/// Reads a group's committed offsets and its topic's ends with a client of the group that never
/// joins it.
struct OffsetsReader {
    base: ClientConfig,
    group: String,
    flavor: BrokerFlavor,
}

impl OffsetsReader {
    /// Committed and end offsets of every partition of `topic` (blocking).
    fn lag(&self, topic: &str) -> Result<Vec<PartitionLag>, BusError> {
        let client: BaseConsumer = self
            .base
            .clone()
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| kafka_err("cannot create a Kafka client for offsets", e))?;
        group_lag(&client, topic, self.flavor)
    }
}

#[async_trait]
impl Bus for KafkaBus {
    async fn ensure_topic(&self, topic: &str, partitions: u32) -> Result<(), BusError> {
        validate_topic_name(topic)?;
        // A topic that exists is left as it is, unasked: creating it needs the Create permission,
        // which a least-privilege user (deploy/strimzi's KafkaUser) has only on the topics
        // StreamForge creates at run time.
        if self.topic_exists(topic).await {
            return Ok(());
        }
        let new = NewTopic::new(topic, partitions.max(1) as i32, TopicReplication::Fixed(self.replication));
        let opts = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = self.auth.unless_refused("create topics", self.admin.create_topics([&new], &opts)).await?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => return Err(self.auth.err(&format!("cannot create topic {name}"), code)),
            }
        }
        Ok(())
    }

    async fn publish(&self, topic: &str, records: Vec<OutRecord>) -> Result<(), BusError> {
        let mut deliveries = Vec::with_capacity(records.len());
        for rec in &records {
            let mut record = FutureRecord::<[u8], [u8]>::to(topic).payload(&rec.payload[..]);
            if let Some(k) = &rec.key {
                record = record.key(&k[..]);
            }
            // A full local queue slows the caller down; nothing is dropped.
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(self.auth.err(&format!("cannot enqueue a record for {topic}"), e)),
                }
            }
        }
        // Written means acknowledged by the broker.
        for d in deliveries {
            match d.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    return Err(self.auth.err(&format!("the broker did not take a record for {topic}"), e))
                }
                Err(_) => return Err(BusError::Closed),
            }
        }
        Ok(())
    }

    async fn subscribe(&self, group: &str, topic: &str) -> Result<Box<dyn Consumer>, BusError> {
        let consumer: StreamConsumer<TopicContext> = self
            .consumer_config(group, topic)
            .create_with_context(TopicContext { resume: Arc::new(resume::ResumePoints::new(self.flavor)) })
            .map_err(|e| kafka_err("cannot create a Kafka consumer", e))?;
        consumer.subscribe(&[topic]).map_err(|e| kafka_err(&format!("cannot subscribe to {topic}"), e))?;
        let offsets = Arc::new(self.offsets_reader(group));
        Ok(Box::new(KafkaConsumer { consumer: Arc::new(consumer), offsets, topic: Arc::from(topic) }))
    }

    async fn join(&self, group: &str, topic: &str) -> Result<Arc<dyn GroupMember>, BusError> {
        let member = group::KafkaMember::join(
            &self.consumer_config(group, topic),
            self.offsets_reader(group),
            topic,
            PARTITION_BUFFER,
        )?;
        Ok(Arc::new(member))
    }

    async fn lag(&self, group: &str, topic: &str) -> Result<Vec<PartitionLag>, BusError> {
        let reader = self.offsets_reader(group);
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || reader.lag(&topic)).await.map_err(|e| kafka_err("offset lookup task", e))?
    }
}

/// Committed and end offsets of every partition of `topic` for the client's group (blocking). The
/// end is the broker's listed end (ListOffsets latest, as KEDA reads it); on tansu, the end a fetch
/// reports (see [`fetched_high_watermarks`]).
fn group_lag(client: &BaseConsumer, topic: &str, flavor: BrokerFlavor) -> Result<Vec<PartitionLag>, BusError> {
    let metadata = client
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(|e| kafka_err(&format!("cannot read metadata of {topic}"), e))?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    if partitions.is_empty() {
        return Err(BusError::UnknownTopic(topic.to_owned()));
    }
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition(topic, *p);
    }
    let committed = client
        .committed_offsets(tpl, REQUEST_TIMEOUT)
        .map_err(|e| kafka_err(&format!("cannot read committed offsets of {topic}"), e))?;
    let mut marks = Vec::with_capacity(partitions.len());
    for p in &partitions {
        let (low, high) = client
            .fetch_watermarks(topic, *p, REQUEST_TIMEOUT)
            .map_err(|e| kafka_err(&format!("cannot read offsets of {topic}/{p}"), e))?;
        marks.push((*p, low, high));
    }
    let ends = match flavor {
        BrokerFlavor::Kafka => marks.iter().map(|m| m.2).collect(),
        BrokerFlavor::Tansu => fetched_high_watermarks(client, topic, &marks)?,
    };
    Ok(marks
        .iter()
        .zip(ends)
        .map(|((p, low, _), end)| {
            let committed = match committed.find_partition(topic, *p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => *low,
            };
            PartitionLag { topic: topic.to_owned(), partition: *p as u32, committed: committed as u64, end: end as u64 }
        })
        .collect())
}

/// The end offset of each partition as a fetch response reports it.
///
/// Broker incompatibility (tansu 0.6.0, `bus.kafka.flavor = "tansu"` only): ListOffsets(latest)
/// answers the base offset of the last record batch plus one, not the offset after its last record
/// — with batching producers (every real one) it under-reports the end by up to a batch. Fetch
/// responses carry the true high watermark, so this fetches from just below the listed end of each
/// non-empty partition and reads the watermark librdkafka cached from that response. Apache Kafka
/// lists the true end, so there the listed end is used as it is. No client setting avoids it short
/// of one-record batches (`batch.num.messages=1`), which cut producer throughput about sevenfold.
fn fetched_high_watermarks(
    client: &BaseConsumer,
    topic: &str,
    marks: &[(i32, i64, i64)],
) -> Result<Vec<i64>, BusError> {
    let mut tpl = TopicPartitionList::new();
    for (p, low, high) in marks {
        if high > low {
            tpl.add_partition_offset(topic, *p, Offset::Offset(high - 1)).map_err(|e| kafka_err("bad offset", e))?;
        }
    }
    if tpl.count() == 0 {
        return Ok(marks.iter().map(|m| m.2).collect());
    }
    client.assign(&tpl).map_err(|e| kafka_err("cannot assign partitions to read watermarks", e))?;
    let wanted = tpl.count();
    let mut seen = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
    while seen.len() < wanted && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = client.poll(Duration::from_millis(100)) {
            seen.insert(m.partition());
        }
    }
    let _ = client.unassign();
    Ok(marks
        .iter()
        .map(|(p, _, high)| match cached_watermarks(client.client(), topic, *p) {
            Some((_, fetched)) if fetched > *high => fetched,
            _ => *high,
        })
        .collect())
}

/// The low and high watermarks librdkafka cached from the last fetch response of a partition
/// (`rd_kafka_get_watermark_offsets`, which the rdkafka crate does not wrap); `None` before any
/// fetch.
fn cached_watermarks<C: rdkafka::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid for the life of `client`; the topic is a NUL-terminated
    // string that outlives the call; low/high are valid for writes. The call only reads librdkafka's
    // own cache and does not block.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            client.native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some((low, high))
}

/// The context of a whole-topic member: assigns at the committed offsets (see [`resume`]).
struct TopicContext {
    resume: Arc<resume::ResumePoints>,
}

impl rdkafka::ClientContext for TopicContext {}

impl ConsumerContext for TopicContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: rdkafka::types::RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        resume::rebalance(self, consumer, err, tpl);
    }
}

impl resume::Rewinding for TopicContext {
    fn resume(&self) -> &Arc<resume::ResumePoints> {
        &self.resume
    }
}

struct KafkaConsumer {
    consumer: Arc<StreamConsumer<TopicContext>>,
    offsets: Arc<OffsetsReader>,
    topic: Arc<str>,
}

fn to_bus_message(m: &rdkafka::message::BorrowedMessage<'_>, topic: &Arc<str>) -> BusMessage {
    BusMessage {
        topic: topic.clone(),
        partition: m.partition() as u32,
        offset: m.offset() as u64,
        key: m.key().map(Bytes::copy_from_slice),
        payload: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
        timestamp_ms: m.timestamp().to_millis().unwrap_or_default(),
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<BusMessage>, BusError> {
        let mut out = Vec::new();
        let first = match tokio::time::timeout(timeout, self.consumer.recv()).await {
            Err(_) => return Ok(out),
            Ok(r) => r.map_err(|e| kafka_err("cannot consume", e))?,
        };
        out.push(to_bus_message(&first, &self.topic));
        drop(first);
        // Take what is already fetched without waiting (no timer per record).
        while out.len() < max {
            match self.consumer.recv().now_or_never() {
                Some(Ok(m)) => out.push(to_bus_message(&m, &self.topic)),
                Some(Err(e)) => return Err(kafka_err("cannot consume", e)),
                None => break,
            }
        }
        self.consumer.context().resume.retain(&mut out);
        Ok(out)
    }

    async fn commit(&mut self, offsets: &[CommitOffset]) -> Result<(), BusError> {
        commit_sync(self.consumer.clone(), &self.topic, offsets).await
    }

    async fn start_commit(&mut self, offsets: &[CommitOffset]) -> Result<PendingCommit, BusError> {
        start_commit(self.consumer.clone(), &self.topic, offsets)
    }

    /// Records of this member's partitions it has not read yet: the partitions' ends (see
    /// [`group_lag`]) less its positions (or the group's committed offsets where it has read
    /// nothing since its assignment). Before its first
    /// assignment it cannot know and answers "at least one".
    async fn pending(&mut self) -> Result<u64, BusError> {
        let (consumer, offsets, topic) = (self.consumer.clone(), self.offsets.clone(), self.topic.to_string());
        tokio::task::spawn_blocking(move || {
            let positions = consumer.position().map_err(|e| kafka_err("cannot read positions", e))?;
            let mine = positions.elements_for_topic(&topic);
            if mine.is_empty() {
                return Ok(1);
            }
            let lag = offsets.lag(&topic)?;
            let mut pending = 0u64;
            for e in mine {
                let Some(p) = lag.iter().find(|l| l.partition == e.partition() as u32) else { return Ok(1) };
                let position = match e.offset() {
                    Offset::Offset(o) => (o as u64).max(p.committed),
                    _ => p.committed,
                };
                pending += p.end.saturating_sub(position);
            }
            Ok(pending)
        })
        .await
        .map_err(|e| kafka_err("offset lookup task", e))?
    }

    fn topic(&self) -> &str {
        &self.topic
    }
}

impl Drop for KafkaBus {
    fn drop(&mut self) {
        let _ = self.producer.flush(Duration::from_secs(5));
    }
}
