//! Where a consumer starts on a newly assigned partition, and the rebalance handling shared by
//! both kinds of group member.
//!
//! Broker incompatibility (tansu 0.6.0, `bus.kafka.flavor = "tansu"` only): a fetch at offset `o`
//! returns only the record batches whose *base* offset is at least `o` (`offsets.split_off(&offset)`
//! in its storage engine). A committed offset usually lies inside a producer batch, so a member
//! resuming there would skip the rest of that batch — silently, when later batches exist. Apache
//! Kafka returns the batch that contains `o` (and librdkafka drops the records before `o`), so
//! there the member starts at the committed offset itself. On tansu it starts fetching
//! [`TANSU_REWIND`] records before the committed offset (a producer batch never holds more, see
//! `batch.num.messages`) and drops the records below it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, RebalanceProtocol};
use rdkafka::{Offset, TopicPartitionList};

use super::REQUEST_TIMEOUT;
use crate::config::BrokerFlavor;

/// The most records one producer batch holds (the producer's `batch.num.messages`).
pub const MAX_BATCH_RECORDS: i64 = 10_000;
/// How far before the committed offset a tansu member starts fetching: one whole batch.
pub const TANSU_REWIND: i64 = MAX_BATCH_RECORDS;

/// The first offset to deliver per assigned partition: the group's committed offset.
pub struct ResumePoints {
    starts: Mutex<HashMap<i32, i64>>,
    /// Records fetched before the committed offset (0 on Apache Kafka).
    rewind: i64,
}

impl ResumePoints {
    pub fn new(flavor: BrokerFlavor) -> ResumePoints {
        let rewind = match flavor {
            BrokerFlavor::Kafka => 0,
            BrokerFlavor::Tansu => TANSU_REWIND,
        };
        ResumePoints { starts: Mutex::default(), rewind }
    }

    /// Whether a fetched record is at or after its partition's resume point.
    pub fn keep(&self, partition: i32, offset: i64) -> bool {
        self.starts.lock().unwrap_or_else(|e| e.into_inner()).get(&partition).is_none_or(|s| offset >= *s)
    }

    /// Drops the records before their partition's resume point.
    pub fn retain(&self, records: &mut Vec<crate::bus::BusMessage>) {
        let starts = self.starts.lock().unwrap_or_else(|e| e.into_inner());
        records.retain(|m| starts.get(&(m.partition as i32)).is_none_or(|s| m.offset as i64 >= *s));
    }

    /// Points `partition` at the group's committed offset and returns where to fetch from (the
    /// offset itself, rewound on tansu).
    fn rewound(&self, partition: i32, committed: Offset) -> Offset {
        match committed {
            Offset::Offset(c) => {
                self.starts.lock().unwrap_or_else(|e| e.into_inner()).insert(partition, c);
                Offset::Offset((c - self.rewind).max(0))
            }
            // No commit yet: from the beginning (`auto.offset.reset = earliest`), nothing to drop.
            _ => {
                self.starts.lock().unwrap_or_else(|e| e.into_inner()).remove(&partition);
                Offset::Beginning
            }
        }
    }

    /// The committed offset of each partition of `tpl` (rewound on tansu); the list to assign.
    fn rewind<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, tpl: &TopicPartitionList) -> TopicPartitionList {
        let committed = consumer.committed_offsets(tpl.clone(), REQUEST_TIMEOUT).unwrap_or_else(|error| {
            tracing::warn!(%error, "Cannot read committed offsets; assigning at them unrewound.");
            tpl.clone()
        });
        let mut out = TopicPartitionList::new();
        for e in committed.elements() {
            let start = self.rewound(e.partition(), e.offset());
            // Only fails for an offset it cannot represent, which `rewound` never returns.
            let _ = out.add_partition_offset(e.topic(), e.partition(), start);
        }
        out
    }

    /// Seeks `partition` back to the group's committed offset (rewound on tansu); used when the actor of
    /// a partition restarts and must read again what it had not committed.
    pub fn reopen<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        topic: &str,
        partition: i32,
    ) -> rdkafka::error::KafkaResult<Offset> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        let committed = consumer.committed_offsets(tpl, REQUEST_TIMEOUT)?;
        let offset = committed.find_partition(topic, partition).map_or(Offset::Invalid, |e| e.offset());
        let start = self.rewound(partition, offset);
        consumer.seek(topic, partition, start, REQUEST_TIMEOUT)?;
        Ok(start)
    }
}

/// A consumer context that assigns at the committed offsets (rewound on tansu). `before_revoke` runs before partitions are
/// taken away, `after_assign` once new ones are fetching.
pub trait Rewinding: ConsumerContext + Sized {
    fn resume(&self) -> &Arc<ResumePoints>;
    fn before_revoke(&self, _consumer: &BaseConsumer<Self>, _tpl: &TopicPartitionList) {}
    fn after_assign(&self, _tpl: &TopicPartitionList) {}
}

/// The rebalance callback of a [`Rewinding`] context (librdkafka's contract: assign or unassign
/// before returning, incrementally under the cooperative protocol).
pub fn rebalance<C: Rewinding>(
    ctx: &C,
    consumer: &BaseConsumer<C>,
    err: rdkafka::types::RDKafkaRespErr,
    tpl: &mut TopicPartitionList,
) {
    use rdkafka::types::RDKafkaRespErr::{RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS, RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS};
    let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
    let outcome = match err {
        RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
            let rewound = ctx.resume().rewind(consumer, tpl);
            let done = if cooperative { consumer.incremental_assign(&rewound) } else { consumer.assign(&rewound) };
            ctx.after_assign(tpl);
            done
        }
        RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
            ctx.before_revoke(consumer, tpl);
            if cooperative {
                consumer.incremental_unassign(tpl)
            } else {
                consumer.unassign()
            }
        }
        other => {
            tracing::warn!(error = ?other, "Rebalance failed; leaving the assignment.");
            consumer.unassign()
        }
    };
    if let Err(error) = outcome {
        tracing::warn!(%error, "Cannot apply a rebalance.");
    }
}
