//! The in-process bus: Kafka's semantics (partitions, consumer groups, committed offsets,
//! at-least-once redelivery) in memory, bounded by one byte budget for the whole process.
//!
//! Bound: the records of every topic together take at most `bus.memory_bytes` (payload, key and
//! a fixed per-record overhead). A data topic's records are dropped as soon as every consumer
//! group subscribed to it has committed past them, so a pipeline that keeps up holds only what is
//! in flight. When a publish would go over the budget, what else may go makes way, oldest first:
//! committed records of the control topics (kept until then as recent history for late readers)
//! and records of topics no group has ever subscribed to, as Kafka's retention would drop them.
//! When all that is left is still needed by some group, `publish` waits for a commit
//! (backpressure) rather than drop it. So the bus never grows with the number of topics or with
//! how many records have passed. The shared control topics (`queue-events`, `queue-control`,
//! `graph-snapshots`, `dead-letter`) never wait: their few records may go over the budget, so that
//! an actor's report cannot wait on the data it has not read yet.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;

use super::{
    partition_for_key, validate_topic_name, Bus, BusError, BusMessage, CommitOffset, Consumer, GroupEvent, GroupMember,
    OutRecord, PartitionLag, RevokeAck,
};

/// What one stored record costs beside its payload and key (its slot, the two `Bytes`, offsets).
pub const RECORD_OVERHEAD: usize = 64;

pub struct MemoryBus {
    topics: Mutex<HashMap<String, Arc<TopicLog>>>,
    budget: Arc<Budget>,
    next_member: AtomicU64,
}

/// The bytes all topics' records may take together.
struct Budget {
    limit: usize,
    used: AtomicUsize,
    /// Woken when a commit may have made records droppable.
    space: Notify,
    /// Publishers waiting for `space`: readers then commit what they hold without delay.
    waiting: AtomicUsize,
}

impl Budget {
    /// Takes `size` bytes if they fit (a record larger than the whole budget fits an empty bus).
    fn take(&self, size: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + size <= self.limit || used == 0).then_some(used + size)
            })
            .is_ok()
    }

    /// Takes `size` bytes even over the limit: for the shared control topics (below).
    fn take_anyway(&self, size: usize) {
        self.used.fetch_add(size, Ordering::AcqRel);
    }

    fn give_back(&self, size: usize) {
        self.used.fetch_sub(size, Ordering::AcqRel);
    }
}

struct TopicLog {
    name: Arc<str>,
    state: Mutex<TopicState>,
    /// Woken when records are appended or a group's membership changes.
    data: Notify,
    /// The bus's budget, which commits on this topic may free.
    budget: Arc<Budget>,
}

struct TopicState {
    partitions: Vec<PartitionLog>,
    groups: HashMap<String, GroupState>,
    round_robin: u32,
}

#[derive(Default)]
struct PartitionLog {
    /// Offset of `records[0]`.
    base: u64,
    records: VecDeque<Stored>,
}

struct Stored {
    key: Option<Bytes>,
    payload: Bytes,
    timestamp_ms: i64,
}

impl Stored {
    /// What it counts against the budget.
    fn size(&self) -> usize {
        record_size(&self.key, &self.payload)
    }
}

fn record_size(key: &Option<Bytes>, payload: &Bytes) -> usize {
    RECORD_OVERHEAD + payload.len() + key.as_ref().map_or(0, Bytes::len)
}

struct GroupState {
    committed: Vec<Option<u64>>,
    members: BTreeSet<u64>,
    generation: u64,
}

impl PartitionLog {
    fn end(&self) -> u64 {
        self.base + self.records.len() as u64
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the log half-written (every mutation is a single
    // push/pop), so a poisoned lock is still safe to use.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryBus {
    /// A bus whose records take at most `bytes` together (see the module's doc).
    pub fn new(bytes: usize) -> Self {
        let budget = Budget {
            limit: bytes.max(1),
            used: AtomicUsize::new(0),
            space: Notify::new(),
            waiting: AtomicUsize::new(0),
        };
        MemoryBus { topics: Mutex::new(HashMap::new()), budget: Arc::new(budget), next_member: AtomicU64::new(1) }
    }

    /// The bytes the records of every topic take now.
    pub fn used_bytes(&self) -> usize {
        self.budget.used.load(Ordering::Acquire)
    }

    /// Drops droppable records of every topic (one lock at a time) until `want` bytes are freed
    /// or none is left; returns the bytes freed, already given back to the budget.
    fn reclaim_everywhere(&self, want: usize) -> usize {
        let logs: Vec<Arc<TopicLog>> = lock(&self.topics).values().cloned().collect();
        let mut freed = 0;
        for log in logs {
            if freed >= want {
                break;
            }
            freed += lock(&log.state).reclaim(want - freed);
        }
        self.budget.give_back(freed);
        freed
    }

    fn topic(&self, name: &str) -> Result<Arc<TopicLog>, BusError> {
        lock(&self.topics).get(name).cloned().ok_or_else(|| BusError::UnknownTopic(name.to_owned()))
    }

    /// Adds a member to `group` on `topic`, which changes the group's assignment.
    fn add_member(&self, group: &str, topic: &str) -> Result<(Arc<TopicLog>, u64), BusError> {
        let log = self.topic(topic)?;
        let member = self.next_member.fetch_add(1, Ordering::Relaxed);
        {
            let mut st = lock(&log.state);
            let n = st.partitions.len();
            let g = st.groups.entry(group.to_owned()).or_insert_with(|| GroupState {
                committed: vec![None; n],
                members: BTreeSet::new(),
                generation: 0,
            });
            g.members.insert(member);
            g.generation += 1;
        }
        log.data.notify_waiters();
        Ok((log, member))
    }
}

impl TopicState {
    /// The partitions of `member` in `group`: partition `p` belongs to the member at index
    /// `p % members` in id order. `None` when it is not a member.
    fn assignment(&self, group: &str, member: u64) -> Option<Vec<u32>> {
        let g = self.groups.get(group)?;
        let me = g.members.iter().position(|m| *m == member)?;
        let n = g.members.len();
        Some((0..self.partitions.len()).filter(|p| p % n == me).map(|p| p as u32).collect())
    }

    /// Where a member that takes `partition` over starts: the group's committed offset.
    fn resume_position(&self, group: &str, partition: u32) -> u64 {
        let part = &self.partitions[partition as usize];
        let committed = self.groups.get(group).and_then(|g| g.committed[partition as usize]);
        committed.unwrap_or(part.base).max(part.base)
    }

    /// Drops head records every group has committed past (with no groups, any), partition by
    /// partition, until `want` bytes are freed or none is droppable; returns the bytes freed (the
    /// caller gives them back to the budget).
    fn reclaim(&mut self, want: usize) -> usize {
        let mut freed = 0;
        for p in 0..self.partitions.len() {
            let min_committed = self.groups.values().map(|g| g.committed[p].unwrap_or(0)).min().unwrap_or(u64::MAX);
            let log = &mut self.partitions[p];
            while freed < want && log.base < min_committed {
                let Some(dropped) = log.records.pop_front() else { break };
                log.base += 1;
                freed += dropped.size();
            }
            if freed >= want {
                break;
            }
        }
        freed
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn ensure_topic(&self, topic: &str, partitions: u32) -> Result<(), BusError> {
        validate_topic_name(topic)?;
        let partitions = partitions.max(1);
        let mut topics = lock(&self.topics);
        if let Some(existing) = topics.get(topic) {
            let have = lock(&existing.state).partitions.len() as u32;
            return if have == partitions {
                Ok(())
            } else {
                Err(BusError::PartitionMismatch { topic: topic.to_owned(), existing: have, requested: partitions })
            };
        }
        let log = TopicLog {
            name: Arc::from(topic),
            state: Mutex::new(TopicState {
                partitions: (0..partitions).map(|_| PartitionLog::default()).collect(),
                groups: HashMap::new(),
                round_robin: 0,
            }),
            data: Notify::new(),
            budget: self.budget.clone(),
        };
        topics.insert(topic.to_owned(), Arc::new(log));
        Ok(())
    }

    async fn publish(&self, topic: &str, records: Vec<OutRecord>) -> Result<(), BusError> {
        let log = self.topic(topic)?;
        let now = crate::model::now_ms();
        // The control topics (events, commands, dead letters) never wait for data to be consumed:
        // a connector reports its start before it reads, and waiting there for the space its own
        // unread records hold would never end. What they carry is small and goes over the budget.
        let control = super::topics::is_shared(topic);
        let mut pending = records.into_iter().peekable();
        while let Some(first) = pending.peek() {
            let waiting_for = record_size(&first.key, &first.payload);
            let space = self.budget.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            {
                let mut st = lock(&log.state);
                let n = st.partitions.len() as u32;
                while let Some(rec) = pending.peek() {
                    let size = record_size(&rec.key, &rec.payload);
                    if !self.budget.take(size) {
                        // This topic's own droppable records first.
                        let freed = st.reclaim(size);
                        self.budget.give_back(freed);
                        if control {
                            self.budget.take_anyway(size);
                        } else if !self.budget.take(size) {
                            break;
                        }
                    }
                    let p = match &rec.key {
                        Some(k) => partition_for_key(k, n),
                        None => {
                            st.round_robin = st.round_robin.wrapping_add(1);
                            st.round_robin % n
                        }
                    } as usize;
                    let rec = pending.next().expect("peeked");
                    st.partitions[p].records.push_back(Stored {
                        key: rec.key,
                        payload: rec.payload,
                        timestamp_ms: now,
                    });
                }
            }
            log.data.notify_waiters();
            if pending.peek().is_some() && self.reclaim_everywhere(waiting_for) == 0 {
                // The budget is spent on records some group still needs: wait for a commit.
                self.budget.waiting.fetch_add(1, Ordering::AcqRel);
                let _waiting = Waiting(&self.budget.waiting);
                space.await;
            }
        }
        Ok(())
    }

    async fn subscribe(&self, group: &str, topic: &str) -> Result<Box<dyn Consumer>, BusError> {
        let (log, member) = self.add_member(group, topic)?;
        Ok(Box::new(MemoryConsumer {
            log,
            group: group.to_owned(),
            member: Some(member),
            generation: 0,
            positions: HashMap::new(),
            order: Vec::new(),
        }))
    }

    async fn lag(&self, group: &str, topic: &str) -> Result<Vec<PartitionLag>, BusError> {
        let log = self.topic(topic)?;
        let st = lock(&log.state);
        Ok(st
            .partitions
            .iter()
            .enumerate()
            .map(|(p, part)| {
                let committed = st.groups.get(group).and_then(|g| g.committed[p]).unwrap_or(part.base);
                PartitionLag { topic: topic.to_owned(), partition: p as u32, committed, end: part.end() }
            })
            .collect())
    }

    async fn join(&self, group: &str, topic: &str) -> Result<Arc<dyn GroupMember>, BusError> {
        let (log, member) = self.add_member(group, topic)?;
        Ok(Arc::new(MemoryMember {
            log,
            group: group.to_owned(),
            member,
            assigned: tokio::sync::Mutex::new(Vec::new()),
        }))
    }
}

/// A group member whose partitions are each read by their own [`MemoryConsumer`]. In one
/// process there is no rebalance protocol to hold up: a revocation is reported and not waited for.
struct MemoryMember {
    log: Arc<TopicLog>,
    group: String,
    member: u64,
    /// The assignment last reported through `next_event`.
    assigned: tokio::sync::Mutex<Vec<u32>>,
}

#[async_trait]
impl GroupMember for MemoryMember {
    async fn next_event(&self) -> Result<GroupEvent, BusError> {
        let mut reported = self.assigned.lock().await;
        loop {
            let changed = self.log.data.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = lock(&self.log.state).assignment(&self.group, self.member).ok_or(BusError::Closed)?;
            let revoked: Vec<u32> = reported.iter().copied().filter(|p| !now.contains(p)).collect();
            if !revoked.is_empty() {
                reported.retain(|p| now.contains(p));
                return Ok(GroupEvent::Revoked { partitions: revoked, lost: false, ack: RevokeAck::none() });
            }
            let added: Vec<u32> = now.iter().copied().filter(|p| !reported.contains(p)).collect();
            if !added.is_empty() {
                reported.extend(&added);
                return Ok(GroupEvent::Assigned(added));
            }
            changed.await;
        }
    }

    async fn partition(&self, partition: u32) -> Result<Box<dyn Consumer>, BusError> {
        let st = lock(&self.log.state);
        let mine = st.assignment(&self.group, self.member).unwrap_or_default();
        if !mine.contains(&partition) {
            return Err(BusError::NotAssigned { topic: self.log.name.to_string(), partition });
        }
        let position = st.resume_position(&self.group, partition);
        Ok(Box::new(MemoryConsumer {
            log: self.log.clone(),
            group: self.group.clone(),
            member: None,
            generation: 0,
            positions: HashMap::from([(partition, position)]),
            order: vec![partition],
        }))
    }

    fn group(&self) -> &str {
        &self.group
    }

    fn topic(&self) -> &str {
        &self.log.name
    }
}

impl Drop for MemoryMember {
    fn drop(&mut self) {
        leave(&self.log, &self.group, self.member);
    }
}

/// Removes `member` from `group`; the others take its partitions over.
fn leave(log: &TopicLog, group: &str, member: u64) {
    let mut st = lock(&log.state);
    if let Some(g) = st.groups.get_mut(group) {
        g.members.remove(&member);
        g.generation += 1;
    }
    drop(st);
    log.data.notify_waiters();
}

struct MemoryConsumer {
    log: Arc<TopicLog>,
    group: String,
    /// Its id as a group member; `None` for the consumer of one partition of a [`MemoryMember`],
    /// whose assignment is fixed.
    member: Option<u64>,
    /// Group generation this member's assignment was computed for.
    generation: u64,
    /// Assigned partition → next offset to read.
    positions: HashMap<u32, u64>,
    /// Assigned partitions, in the order they are served.
    order: Vec<u32>,
}

impl MemoryConsumer {
    /// Re-reads the assignment after a membership change. Newly assigned partitions resume from
    /// the committed offset.
    fn sync_assignment(&mut self, st: &TopicState) {
        let (Some(member), Some(g)) = (self.member, st.groups.get(&self.group)) else {
            return;
        };
        if g.generation == self.generation {
            return;
        }
        self.generation = g.generation;
        let Some(assigned) = st.assignment(&self.group, member) else {
            return;
        };
        self.positions.retain(|p, _| assigned.contains(p));
        for p in &assigned {
            self.positions.entry(*p).or_insert_with(|| st.resume_position(&self.group, *p));
        }
        self.order = assigned;
    }

    fn read(&mut self, max: usize) -> Vec<BusMessage> {
        let log = self.log.clone();
        let st = lock(&log.state);
        self.sync_assignment(&st);
        let mut out = Vec::new();
        for p in self.order.clone() {
            if out.len() >= max {
                break;
            }
            let part = &st.partitions[p as usize];
            let pos = self.positions.get_mut(&p).expect("assigned partition has a position");
            *pos = (*pos).max(part.base);
            let start = (*pos - part.base) as usize;
            for (i, rec) in part.records.iter().skip(start).take(max - out.len()).enumerate() {
                out.push(BusMessage {
                    topic: self.log.name.clone(),
                    partition: p,
                    offset: *pos + i as u64,
                    key: rec.key.clone(),
                    payload: rec.payload.clone(),
                    timestamp_ms: rec.timestamp_ms,
                });
            }
            *pos = out.iter().filter(|m| m.partition == p).map(|m| m.offset + 1).max().unwrap_or(*pos);
        }
        // Serve partitions fairly: the next poll starts after the one served first this time.
        if !self.order.is_empty() {
            self.order.rotate_left(1);
        }
        out
    }
}

#[async_trait]
impl Consumer for MemoryConsumer {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<BusMessage>, BusError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let log = self.log.clone();
            let data = log.data.notified();
            tokio::pin!(data);
            data.as_mut().enable();
            let out = self.read(max.max(1));
            if !out.is_empty() {
                return Ok(out);
            }
            if tokio::time::timeout_at(deadline, data).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn commit(&mut self, offsets: &[CommitOffset]) -> Result<(), BusError> {
        let log = self.log.clone();
        {
            let mut st = lock(&log.state);
            self.sync_assignment(&st);
            for c in offsets {
                if !self.positions.contains_key(&c.partition) {
                    return Err(BusError::NotAssigned { topic: self.log.name.to_string(), partition: c.partition });
                }
            }
            let g = st.groups.get_mut(&self.group).ok_or(BusError::Closed)?;
            for c in offsets {
                let slot = &mut g.committed[c.partition as usize];
                *slot = Some(slot.unwrap_or(0).max(c.next_offset));
            }
            if !super::topics::is_shared(&log.name) {
                let freed = st.reclaim(usize::MAX);
                log.budget.give_back(freed);
            }
        }
        log.budget.space.notify_waiters();
        Ok(())
    }

    async fn pending(&mut self) -> Result<u64, BusError> {
        let log = self.log.clone();
        let st = lock(&log.state);
        self.sync_assignment(&st);
        Ok(self.positions.iter().map(|(p, pos)| st.partitions[*p as usize].end().saturating_sub(*pos)).sum())
    }

    fn topic(&self) -> &str {
        &self.log.name
    }

    fn producers_waiting(&self) -> bool {
        self.log.budget.waiting.load(Ordering::Acquire) > 0
    }
}

/// Counts a publisher as waiting while it lives (a cancelled publish stops counting too).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        if let Some(member) = self.member {
            leave(&self.log, &self.group, member);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, v: &str) -> OutRecord {
        OutRecord::keyed(key, Bytes::copy_from_slice(v.as_bytes()))
    }

    const T: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn uncommitted_records_are_redelivered_after_restart() {
        let bus = MemoryBus::new(1 << 20);
        bus.ensure_topic("d", 2).await.unwrap();
        bus.publish("d", (0..10).map(|i| rec(&format!("k{i}"), &i.to_string())).collect()).await.unwrap();
        let mut c = bus.subscribe("g", "d").await.unwrap();
        let first = c.poll(100, T).await.unwrap();
        assert_eq!(first.len(), 10);
        // Commit only part of it, then "crash".
        let half: Vec<_> = first.iter().filter(|m| m.partition == 0).cloned().collect();
        c.commit(&crate::bus::commit_positions(&half)).await.unwrap();
        drop(c);
        let mut c = bus.subscribe("g", "d").await.unwrap();
        let again = c.poll(100, T).await.unwrap();
        assert_eq!(again.len(), 10 - half.len(), "exactly the uncommitted records come back");
        assert!(again.iter().all(|m| m.partition == 1));
    }

    #[tokio::test]
    async fn same_key_keeps_order_in_one_partition() {
        let bus = MemoryBus::new(1 << 20);
        bus.ensure_topic("d", 4).await.unwrap();
        bus.publish("d", (0..50).map(|i| rec("BTCUSDT", &i.to_string())).collect()).await.unwrap();
        let mut c = bus.subscribe("g", "d").await.unwrap();
        let got = c.poll(100, T).await.unwrap();
        assert!(got.iter().all(|m| m.partition == partition_for_key(b"BTCUSDT", 4)));
        let values: Vec<String> = got.iter().map(|m| String::from_utf8(m.payload.to_vec()).unwrap()).collect();
        assert_eq!(values, (0..50).map(|i| i.to_string()).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn group_members_share_partitions_and_groups_are_independent() {
        let bus = MemoryBus::new(1 << 20);
        bus.ensure_topic("d", 4).await.unwrap();
        let mut a = bus.subscribe("g", "d").await.unwrap();
        let mut b = bus.subscribe("g", "d").await.unwrap();
        let mut other = bus.subscribe("h", "d").await.unwrap();
        bus.publish("d", (0..200).map(|i| rec(&format!("k{i}"), "x")).collect()).await.unwrap();
        let ga = a.poll(1000, T).await.unwrap();
        let gb = b.poll(1000, T).await.unwrap();
        assert_eq!(ga.len() + gb.len(), 200);
        assert!(!ga.is_empty() && !gb.is_empty());
        let pa: BTreeSet<u32> = ga.iter().map(|m| m.partition).collect();
        assert!(gb.iter().all(|m| !pa.contains(&m.partition)), "no partition is read by two members");
        assert_eq!(other.poll(1000, T).await.unwrap().len(), 200);
        // When b leaves, a takes its partitions over from the committed offsets (none: earliest).
        drop(b);
        let after = a.poll(1000, T).await.unwrap();
        assert_eq!(after.len(), gb.len());
    }

    #[tokio::test]
    async fn a_full_budget_applies_backpressure_until_commit() {
        // Room for four one-byte records with one-byte keys.
        let bus = Arc::new(MemoryBus::new(4 * (RECORD_OVERHEAD + 2)));
        bus.ensure_topic("d", 1).await.unwrap();
        let mut c = bus.subscribe("g", "d").await.unwrap();
        bus.publish("d", (0..4).map(|i| rec("k", &i.to_string())).collect()).await.unwrap();
        let b2 = bus.clone();
        let blocked = tokio::spawn(async move { b2.publish("d", vec![rec("k", "4")]).await });
        let got = c.poll(10, T).await.unwrap();
        assert_eq!(got.len(), 4);
        assert!(!blocked.is_finished(), "publish waits while the oldest record is uncommitted");
        tokio::time::sleep(T).await;
        assert!(c.producers_waiting(), "the reader is told a producer waits");
        c.commit(&crate::bus::commit_positions(&got)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), blocked).await.unwrap().unwrap().unwrap();
        assert!(!c.producers_waiting());
        let lag = bus.lag("g", "d").await.unwrap();
        assert_eq!((lag[0].committed, lag[0].end, lag[0].lag()), (4, 5, 1));
        assert_eq!(bus.used_bytes(), RECORD_OVERHEAD + 2, "the committed four were dropped at the commit");
    }

    /// A data topic's records go as soon as every group has committed past them; a control
    /// topic's committed records stay as history until the budget needs their room.
    #[tokio::test]
    async fn data_records_are_dropped_once_every_group_has_committed_them() {
        let one = RECORD_OVERHEAD + 2;
        let bus = MemoryBus::new(100 * one);
        bus.ensure_topic("d", 1).await.unwrap();
        let mut first = bus.subscribe("g1", "d").await.unwrap();
        let mut second = bus.subscribe("g2", "d").await.unwrap();
        bus.publish("d", (0..5).map(|i| rec("k", &i.to_string())).collect()).await.unwrap();
        let got = first.poll(10, T).await.unwrap();
        first.commit(&crate::bus::commit_positions(&got[..3])).await.unwrap();
        assert_eq!(bus.used_bytes(), 5 * one, "g2 has committed nothing yet");
        let got = second.poll(10, T).await.unwrap();
        second.commit(&crate::bus::commit_positions(&got[..2])).await.unwrap();
        assert_eq!(bus.used_bytes(), 3 * one, "the two both groups committed are gone");
        second.commit(&crate::bus::commit_positions(&got)).await.unwrap();
        assert_eq!(bus.used_bytes(), 2 * one, "g1 still needs offsets 3 and 4");

        let events = crate::bus::topics::QUEUE_EVENTS;
        bus.ensure_topic(events, 1).await.unwrap();
        let mut reader = bus.subscribe("qm", events).await.unwrap();
        bus.publish(events, vec![rec("k", "e")]).await.unwrap();
        let got = reader.poll(10, T).await.unwrap();
        reader.commit(&crate::bus::commit_positions(&got)).await.unwrap();
        assert_eq!(bus.used_bytes(), 3 * one, "a committed event stays for a late reader");
        let mut late = bus.subscribe("late", events).await.unwrap();
        assert_eq!(late.poll(10, T).await.unwrap().len(), 1);
    }

    /// One budget for every topic: a topic nobody reads gives way to the others, records a group
    /// has not committed are kept (the producer waits), and committed ones make room.
    #[tokio::test]
    async fn the_budget_is_shared_by_every_topic_and_keeps_what_is_not_consumed() {
        let one = RECORD_OVERHEAD + 2;
        let bus = Arc::new(MemoryBus::new(10 * one));
        for t in ["a", "b", "nobody"] {
            bus.ensure_topic(t, 2).await.unwrap();
        }
        let mut reader = bus.subscribe("g", "a").await.unwrap();
        let _b_reader = bus.subscribe("gb", "b").await.unwrap();
        bus.publish("a", (0..6).map(|i| rec("k", &i.to_string())).collect()).await.unwrap();
        bus.publish("nobody", (0..4).map(|i| rec("k", &i.to_string())).collect()).await.unwrap();
        assert_eq!(bus.used_bytes(), 10 * one);
        bus.publish("b", (0..4).map(|i| rec("k", &i.to_string())).collect()).await.unwrap();
        assert_eq!(bus.used_bytes(), 10 * one);
        let kept = |lag: Vec<PartitionLag>| lag.iter().map(|p| p.end - p.committed).sum::<u64>();
        assert_eq!(kept(bus.lag("x", "nobody").await.unwrap()), 0, "the topic nobody reads gave way");
        let got = reader.poll(100, T).await.unwrap();
        assert_eq!(got.len(), 6, "nothing g had not committed was dropped");
        let b2 = bus.clone();
        // One-byte payloads, like the first six, so that six fit where those six were.
        let letters = ["a", "b", "c", "d", "e", "f"];
        let more = letters.iter().map(|l| rec("k", l)).collect();
        let blocked = tokio::spawn(async move { b2.publish("a", more).await });
        tokio::time::sleep(T).await;
        assert!(!blocked.is_finished(), "the budget is spent on what g and gb have not committed");
        reader.commit(&crate::bus::commit_positions(&got)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), blocked).await.unwrap().unwrap().unwrap();
        assert_eq!(bus.used_bytes(), 10 * one);
        let rest = reader.poll(100, T).await.unwrap();
        let values: BTreeSet<String> = rest.iter().map(|m| String::from_utf8(m.payload.to_vec()).unwrap()).collect();
        assert_eq!(values, letters.iter().map(|l| l.to_string()).collect(), "every new record arrives");
        assert_eq!(kept(bus.lag("gb", "b").await.unwrap()), 4, "gb's records were kept all along");
    }

    /// A connector reports its start on `queue-events` before it reads: when its unread records
    /// fill the budget, that report must not wait for them (it did, and nothing moved again).
    #[tokio::test]
    async fn control_topics_never_wait_for_data_to_be_consumed() {
        let one = RECORD_OVERHEAD + 2;
        let bus = Arc::new(MemoryBus::new(4 * one));
        bus.ensure_topic("d", 1).await.unwrap();
        bus.ensure_topic(crate::bus::topics::QUEUE_EVENTS, 1).await.unwrap();
        let _reader = bus.subscribe("g", "d").await.unwrap();
        let _events = bus.subscribe("qm", crate::bus::topics::QUEUE_EVENTS).await.unwrap();
        bus.publish("d", (0..4).map(|i| rec("k", &i.to_string())).collect()).await.unwrap();
        let event = bus.publish(crate::bus::topics::QUEUE_EVENTS, vec![rec("k", "e")]);
        tokio::time::timeout(T, event).await.expect("an event does not wait").unwrap();
        assert_eq!(bus.used_bytes(), 5 * one, "it is accounted, over the budget");
        let b2 = bus.clone();
        let data = tokio::spawn(async move { b2.publish("d", vec![rec("k", "4")]).await });
        tokio::time::sleep(T).await;
        assert!(!data.is_finished(), "data still waits for a commit");
    }

    #[tokio::test]
    async fn unknown_topics_and_bad_names_are_errors() {
        let bus = MemoryBus::new(10);
        assert!(matches!(bus.publish("nope", vec![]).await, Err(BusError::UnknownTopic(_))));
        assert!(matches!(bus.ensure_topic("bad name", 1).await, Err(BusError::InvalidTopicName(_))));
        bus.ensure_topic("t", 2).await.unwrap();
        assert!(matches!(bus.ensure_topic("t", 3).await, Err(BusError::PartitionMismatch { .. })));
    }

    #[tokio::test]
    async fn group_members_hand_partitions_over_and_resume_from_the_commit() {
        let bus = MemoryBus::new(1 << 20);
        bus.ensure_topic("d", 4).await.unwrap();
        let first = bus.join("g", "d").await.unwrap();
        let assigned = |e: GroupEvent| match e {
            GroupEvent::Assigned(p) => p,
            other => panic!("expected an assignment, got {other:?}"),
        };
        assert_eq!(assigned(first.next_event().await.unwrap()), [0, 1, 2, 3]);
        bus.publish("d", (0..40).map(|i| rec(&format!("k{i}"), &i.to_string())).collect()).await.unwrap();
        let mut p1 = first.partition(1).await.unwrap();
        let read = p1.poll(100, T).await.unwrap();
        assert!(!read.is_empty() && read.iter().all(|m| m.partition == 1), "only its own partition");
        let half = &read[..read.len() / 2];
        p1.commit(&crate::bus::commit_positions(half)).await.unwrap();

        let second = bus.join("g", "d").await.unwrap();
        match first.next_event().await.unwrap() {
            GroupEvent::Revoked { partitions, lost, .. } => assert_eq!((partitions, lost), (vec![1, 3], false)),
            other => panic!("expected a revocation, got {other:?}"),
        }
        assert_eq!(assigned(second.next_event().await.unwrap()), [1, 3]);
        assert!(matches!(first.partition(1).await, Err(BusError::NotAssigned { partition: 1, .. })));
        let mut taken = second.partition(1).await.unwrap();
        let again = taken.poll(100, T).await.unwrap();
        assert_eq!(again.first().map(|m| m.offset), Some(half.len() as u64), "resumes at the committed offset");
        assert_eq!(again.len(), read.len() - half.len());

        drop(second);
        drop(taken);
        assert_eq!(
            assigned(first.next_event().await.unwrap()),
            [1, 3],
            "a member that leaves gives its partitions back"
        );
    }
}
