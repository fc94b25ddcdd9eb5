//! Consumer lag of the node's consumer groups, per partition: the quantity KEDA scales on, exported
//! as `streamforge_consumer_lag` and served by `GET /api/v1/lag`.
//!
//! A partitioned connector's lag is reported by the node that owns the partition (its assigner
//! says when the group assigns and revokes it), so that summing the series of every node counts
//! each partition once; a connector that reads its group's partitions as one member reports all of
//! them, while it runs (the [`LagWatch`] it holds). A series whose partition this node no longer
//! reports is removed at the next reading.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use super::metrics::Metrics;
use crate::bus::{Bus, PartitionLag};

type Pair = (String, String);

/// The (group, topic) pairs this node consumes, which of their partitions it reports, and how to
/// read their lag.
#[derive(Clone)]
pub struct LagSource {
    bus: Arc<dyn Bus>,
    targets: Arc<Mutex<BTreeMap<Pair, Reported>>>,
    /// The series exported at the last reading: (group, topic, partition).
    exported: Arc<Mutex<BTreeSet<(String, String, u32)>>>,
}

/// The partitions of a pair this node reports.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reported {
    /// Every partition, for as long as this many connectors read the group as one member.
    Every(usize),
    Owned(BTreeSet<u32>),
}

/// A connector's claim that its (group, topic) lag be reported; the pair stops being reported when
/// the last claim is dropped (a workflow's connector that finished, or stopped).
pub struct LagWatch {
    source: LagSource,
    pair: Pair,
}

impl Drop for LagWatch {
    fn drop(&mut self) {
        let mut targets = lock(&self.source.targets);
        if let Some(Reported::Every(n)) = targets.get_mut(&self.pair) {
            *n -= 1;
            if *n == 0 {
                targets.remove(&self.pair);
            }
        }
    }
}

impl Reported {
    fn includes(&self, partition: u32) -> bool {
        match self {
            Reported::Every(_) => true,
            Reported::Owned(owned) => owned.contains(&partition),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupLag {
    pub group: String,
    #[serde(flatten)]
    pub partition: PartitionLag,
    pub lag: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn pair(group: &str, topic: &str) -> Pair {
    (group.to_owned(), topic.to_owned())
}

impl LagSource {
    pub fn new(bus: Arc<dyn Bus>) -> Self {
        LagSource { bus, targets: Arc::default(), exported: Arc::default() }
    }

    /// Reports the lag of every partition of `group` on `topic` until the returned watch (and
    /// every other watch of the pair) is dropped.
    pub fn watch(&self, group: &str, topic: &str) -> LagWatch {
        let mut targets = lock(&self.targets);
        let reported = targets.entry(pair(group, topic)).or_insert(Reported::Every(0));
        match reported {
            Reported::Every(n) => *n += 1,
            Reported::Owned(_) => *reported = Reported::Every(1),
        }
        LagWatch { source: self.clone(), pair: pair(group, topic) }
    }

    /// Reports `partition` of `group` on `topic`, which the group assigned this node.
    pub fn own(&self, group: &str, topic: &str, partition: u32) {
        let mut targets = lock(&self.targets);
        let reported = targets.entry(pair(group, topic)).or_insert_with(|| Reported::Owned(BTreeSet::new()));
        if let Reported::Owned(owned) = reported {
            owned.insert(partition);
        }
    }

    /// Stops reporting `partition`, which the group took back (or whose worker stopped).
    pub fn disown(&self, group: &str, topic: &str, partition: u32) {
        let mut targets = lock(&self.targets);
        let key = pair(group, topic);
        if let Some(Reported::Owned(owned)) = targets.get_mut(&key) {
            owned.remove(&partition);
            if owned.is_empty() {
                targets.remove(&key);
            }
        }
    }

    /// Reads the lag of every reported partition from the bus, updates the gauge and removes the
    /// series of partitions no longer reported. A pair that cannot be read (the broker is away) is
    /// skipped and logged, its series left as they were, so the rest is still reported.
    pub async fn read(&self, metrics: &Metrics) -> Vec<GroupLag> {
        let targets: Vec<(Pair, Reported)> = lock(&self.targets).iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut out = Vec::new();
        let mut unread = BTreeSet::new();
        for ((group, topic), reported) in targets {
            match self.bus.lag(&group, &topic).await {
                Ok(parts) => {
                    for p in parts.into_iter().filter(|p| reported.includes(p.partition)) {
                        let partition = p.partition.to_string();
                        metrics.consumer_lag.with_label_values(&[&group, &topic, &partition]).set(p.lag() as i64);
                        out.push(GroupLag { group: group.clone(), lag: p.lag(), partition: p });
                    }
                }
                Err(error) => {
                    tracing::warn!(group, topic, %error, "Cannot read consumer lag.");
                    unread.insert((group, topic));
                }
            }
        }
        let now: BTreeSet<(String, String, u32)> =
            out.iter().map(|l| (l.group.clone(), l.partition.topic.clone(), l.partition.partition)).collect();
        let mut exported = lock(&self.exported);
        let (kept, gone): (BTreeSet<_>, BTreeSet<_>) =
            std::mem::take(&mut *exported).into_iter().partition(|(g, t, _)| unread.contains(&pair(g, t)));
        for (group, topic, partition) in gone.difference(&now) {
            let _ = metrics.consumer_lag.remove_label_values(&[group, topic, &partition.to_string()]);
        }
        *exported = now.into_iter().chain(kept).collect();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::memory::MemoryBus;
    use crate::bus::OutRecord;

    fn series(metrics: &Metrics) -> Vec<String> {
        metrics.render().lines().filter(|l| l.starts_with("streamforge_consumer_lag{")).map(str::to_owned).collect()
    }

    /// A partitioned connector's partitions are reported while this node owns them; revoked, their
    /// series go.
    #[tokio::test]
    async fn owned_partitions_are_reported_and_revoked_ones_removed() {
        let bus = Arc::new(MemoryBus::new(1 << 20));
        bus.ensure_topic("t", 3).await.unwrap();
        let records = (0..30).map(|i| OutRecord::keyed(format!("k{i}"), "x")).collect();
        bus.publish("t", records).await.unwrap();
        let (lag, metrics) = (LagSource::new(bus), Metrics::new());
        assert!(lag.read(&metrics).await.is_empty());
        for p in 0..3 {
            lag.own("g", "t", p);
        }
        let all = lag.read(&metrics).await;
        assert_eq!(all.iter().map(|l| l.lag).sum::<u64>(), 30);
        assert_eq!(series(&metrics).len(), 3);
        lag.disown("g", "t", 1);
        let left: Vec<u32> = lag.read(&metrics).await.iter().map(|l| l.partition.partition).collect();
        assert_eq!(left, [0, 2]);
        let shown = series(&metrics);
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(shown.iter().all(|s| !s.contains("partition=\"1\"")), "{shown:?}");
        lag.disown("g", "t", 0);
        lag.disown("g", "t", 2);
        assert!(lag.read(&metrics).await.is_empty());
        assert!(series(&metrics).is_empty(), "no series left once nothing is owned");
    }

    /// A group read as one member is reported while a connector holds a watch on it; once the last
    /// watch is dropped (the workflow's connector ended) its series go.
    #[tokio::test]
    async fn a_watched_pair_is_reported_until_its_last_watch_is_dropped() {
        let bus = Arc::new(MemoryBus::new(1 << 20));
        bus.ensure_topic("t", 2).await.unwrap();
        let records = (0..10).map(|i| OutRecord::keyed(format!("k{i}"), "x")).collect();
        bus.publish("t", records).await.unwrap();
        let (lag, metrics) = (LagSource::new(bus), Metrics::new());
        let (first, second) = (lag.watch("g", "t"), lag.watch("g", "t"));
        assert_eq!(lag.read(&metrics).await.iter().map(|l| l.lag).sum::<u64>(), 10);
        drop(first);
        assert_eq!(lag.read(&metrics).await.len(), 2, "one connector still reads the group");
        assert_eq!(series(&metrics).len(), 2);
        drop(second);
        assert!(lag.read(&metrics).await.is_empty());
        assert!(series(&metrics).is_empty(), "no series left once no connector reads the pair");
    }
}
