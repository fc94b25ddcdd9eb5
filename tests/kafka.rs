//! The Kafka bus against real Kafka-protocol brokers on loopback, each test once per broker of the
//! matrix (Apache Kafka: `STREAMFORGE_TEST_KAFKA`; tansu: `STREAMFORGE_TEST_TANSU`; both started by
//! `.ci/run`), checked with an independent client (Python confluent-kafka,
//! `tests/tools/kafka_client.py`). Built with `--features kafka`.
#![cfg(feature = "kafka")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use streamforge::actors::connector::ConnectorRoute;
use streamforge::app::NodeContext;
use streamforge::bus::{commit_positions, partition_for_key, topics, BusError, GroupEvent, GroupMember, OutRecord};
use streamforge::config::BrokerFlavor;
use streamforge::model::{Candle, DataRecord};

use common::kafka::{consume, python, Broker};

crate::on_every_broker!(
    records_keep_per_key_order_and_an_independent_client_reads_them_back,
    poison_messages_are_dead_lettered_without_blocking_their_partition,
    lag_matches_what_the_broker_reports,
    members_split_partitions_and_a_revocation_waits_for_the_owner_to_commit,
    a_member_resuming_inside_a_producer_batch_gets_the_rest_of_it,
);

async fn records_keep_per_key_order_and_an_independent_client_reads_them_back(broker: &Broker) {
    // The smallest prefetch the config allows: its fetch size must still be one librdkafka takes.
    let mut config = broker.config("sqlite::memory:");
    config.bus.kafka.prefetch_kbytes = 1024;
    let ctx = NodeContext::open(config).await.unwrap();
    let topic = common::unique_name("order");
    ctx.bus.ensure_topic(&topic, 3).await.unwrap();
    let keys = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"];
    let records: Vec<OutRecord> =
        (0..250).flat_map(|i| keys.map(|k| OutRecord::keyed(k, format!("{k}:{i}").into_bytes()))).collect();
    ctx.bus.publish(&topic, records).await.unwrap();

    let mut consumer = ctx.bus.subscribe(&common::unique_name("g"), &topic).await.unwrap();
    let got = consume(&mut consumer, 1000).await;
    let mut per_key: BTreeMap<String, Vec<(u32, u64, String)>> = BTreeMap::new();
    for m in &got {
        let key = String::from_utf8(m.key.clone().unwrap().to_vec()).unwrap();
        per_key.entry(key).or_default().push((m.partition, m.offset, String::from_utf8(m.payload.to_vec()).unwrap()));
    }
    for (key, msgs) in &per_key {
        assert!(msgs.iter().all(|m| m.0 == msgs[0].0), "{key} stays in one partition");
        let values: Vec<String> = msgs.iter().map(|m| m.2.clone()).collect();
        assert_eq!(values, (0..250).map(|i| format!("{key}:{i}")).collect::<Vec<_>>(), "{key} in order");
        assert_eq!(msgs[0].0, streamforge::bus::partition_for_key(key.as_bytes(), 3), "murmur2, as the in-process bus");
    }

    let independent = python(&["read", &broker.addr, &topic, "1000"]);
    assert_eq!(independent.len(), 1000);
    for v in &independent {
        let key = v["key"].as_str().unwrap();
        let ours = &per_key[key];
        let found = ours.iter().find(|m| m.1 == v["offset"].as_u64().unwrap()).unwrap();
        assert_eq!(
            (found.0 as u64, found.2.as_str()),
            (v["partition"].as_u64().unwrap(), v["value"].as_str().unwrap())
        );
    }
}

fn recorded_candles() -> Vec<Candle> {
    let body = include_bytes!("fixtures/rest/http_spot_market_klines.json");
    Candle::from_rest_klines("BTCUSDT", "1m".parse().unwrap(), body, i64::MAX).unwrap()
}

async fn poison_messages_are_dead_lettered_without_blocking_their_partition(broker: &Broker) {
    let ctx = NodeContext::open(broker.config("sqlite::memory:")).await.unwrap();
    let topic = common::unique_name("poison");
    ctx.bus.ensure_topic(&topic, 1).await.unwrap();
    let candles = recorded_candles();
    let mut records: Vec<OutRecord> =
        candles.iter().map(|c| OutRecord::keyed("BTCUSDT", DataRecord::Candle(c.clone()).to_bytes())).collect();
    records.insert(2, OutRecord::keyed("BTCUSDT", &b"\xff\xfe not json"[..]));
    records.insert(6, OutRecord::keyed("BTCUSDT", &br#"{"record":"candle","oops":true}"#[..]));
    ctx.bus.publish(&topic, records).await.unwrap();
    let group = common::unique_name("connector");
    let route = ConnectorRoute {
        queue_id: "wf-kafka".into(),
        topic: topic.clone(),
        group: group.clone(),
        collection: "btcusdt_poison".into(),
    };
    let (shared, _) = common::drain_with_connector(&ctx, route, Duration::from_secs(120)).await;
    assert_eq!(shared.written.load(Ordering::Acquire), 10, "every good record after the poison ones was stored");
    let stored = ctx.store.candles("btcusdt_poison", "BTCUSDT", 0, i64::MAX).await.unwrap();
    assert_eq!(stored, candles);
    let lag: u64 = ctx.bus.lag(&group, &topic).await.unwrap().iter().map(|p| p.lag()).sum();
    assert_eq!(lag, 0, "committed past the poison");
    let letters = python(&["read", &broker.addr, topics::DEAD_LETTER, "100000"]);
    let mine: Vec<&serde_json::Value> = letters
        .iter()
        .map(|v| &v["value"])
        .filter(|v| v.as_str().unwrap().contains(&format!("\"source_topic\":\"{topic}\"")))
        .collect();
    assert_eq!(mine.len(), 2, "both poison messages are in the dead-letter topic");
}

async fn lag_matches_what_the_broker_reports(broker: &Broker) {
    let ctx = NodeContext::open(broker.config("sqlite::memory:")).await.unwrap();
    let topic = common::unique_name("lag");
    ctx.bus.ensure_topic(&topic, 3).await.unwrap();
    let records: Vec<OutRecord> =
        (0..900).map(|i| OutRecord::keyed(format!("k{i}"), format!("{i}").into_bytes())).collect();
    ctx.bus.publish(&topic, records).await.unwrap();
    let group = common::unique_name("lagging");
    let mut consumer = ctx.bus.subscribe(&group, &topic).await.unwrap();
    let got = consume(&mut consumer, 300).await;
    consumer.commit(&commit_positions(&got)).await.unwrap();
    let ours = ctx.bus.lag(&group, &topic).await.unwrap();
    let theirs = broker.independent_lag(&topic, &group);
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(&theirs) {
        assert_eq!(o.partition as u64, t["partition"].as_u64().unwrap());
        assert_eq!((o.committed, o.end), (t["committed"].as_u64().unwrap(), t["end"].as_u64().unwrap()));
    }
    assert_eq!(ours.iter().map(|p| p.lag()).sum::<u64>(), 600, "{ours:?} after consuming {:?}", commit_positions(&got));
    if broker.flavor == BrokerFlavor::Kafka {
        // Apache Kafka lists the true end: a fetch reports the same, so the tansu work-around is
        // not needed there.
        let ends =
            |v: &[serde_json::Value]| v.iter().map(|p| (p["partition"].clone(), p["end"].clone())).collect::<Vec<_>>();
        let fetched = python(&["offsets", &broker.addr, &topic, &group]);
        assert_eq!(ends(&fetched), ends(&theirs), "listed end = fetched end");
    }
}

/// A committed offset inside a producer batch: the next member of the group starts exactly there
/// and gets the rest of the batch (Apache Kafka serves the batch that holds the offset; on tansu
/// the member rewinds a batch, see `src/bus/kafka/resume.rs`).
async fn a_member_resuming_inside_a_producer_batch_gets_the_rest_of_it(broker: &Broker) {
    let ctx = NodeContext::open(broker.config("sqlite::memory:")).await.unwrap();
    let (topic, group) = (common::unique_name("resume"), common::unique_name("resume-group"));
    ctx.bus.ensure_topic(&topic, 1).await.unwrap();
    // One publish: the producer sends the 1,000 records in a few large batches.
    let records: Vec<OutRecord> = (0..1000).map(|i| OutRecord::keyed("k", format!("{i}"))).collect();
    ctx.bus.publish(&topic, records).await.unwrap();
    {
        let mut first = ctx.bus.subscribe(&group, &topic).await.unwrap();
        let read = consume(&mut first, 1000).await;
        first.commit(&commit_positions(&read[..337])).await.unwrap();
    }
    let mut next = ctx.bus.subscribe(&group, &topic).await.unwrap();
    let rest = consume(&mut next, 663).await;
    let offsets: Vec<u64> = rest.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, (337..1000).collect::<Vec<u64>>(), "exactly the records after the commit, in order");
    let values: Vec<String> = rest.iter().map(|m| String::from_utf8(m.payload.to_vec()).unwrap()).collect();
    assert_eq!(values[0], "337");
    assert!(next.poll(10, Duration::from_secs(1)).await.unwrap().is_empty(), "nothing more, nothing twice");
}

/// The next assignment change of `member`; fails after a minute.
async fn next_event(member: &Arc<dyn GroupMember>) -> GroupEvent {
    tokio::time::timeout(Duration::from_secs(60), member.next_event()).await.expect("a rebalance").unwrap()
}

async fn members_split_partitions_and_a_revocation_waits_for_the_owner_to_commit(broker: &Broker) {
    let ctx = NodeContext::open(broker.config("sqlite::memory:")).await.unwrap();
    let (topic, group) = (common::unique_name("members"), common::unique_name("members-group"));
    ctx.bus.ensure_topic(&topic, 4).await.unwrap();
    let records: Vec<OutRecord> = (0..400).map(|i| OutRecord::keyed(format!("k{i}"), format!("{i}"))).collect();
    ctx.bus.publish(&topic, records).await.unwrap();

    let first = ctx.bus.join(&group, &topic).await.unwrap();
    let GroupEvent::Assigned(all) = next_event(&first).await else { panic!("first event is an assignment") };
    assert_eq!(all.iter().copied().collect::<BTreeSet<u32>>(), BTreeSet::from([0, 1, 2, 3]));
    // The first member reads every partition to its end; it has committed none of it yet.
    let mut readers = BTreeMap::new();
    for p in all {
        let mut c = first.partition(p).await.unwrap();
        let expected = (0..400).filter(|i| partition_for_key(format!("k{i}").as_bytes(), 4) == p).count();
        let read = consume(&mut c, expected).await;
        assert!(read.iter().all(|m| m.partition == p), "partition {p} reads only itself");
        readers.insert(p, (c, read));
    }

    let second = ctx.bus.join(&group, &topic).await.unwrap();
    let GroupEvent::Revoked { partitions: revoked, lost, ack } = next_event(&first).await else {
        panic!("the first member gives partitions up")
    };
    assert!(!lost && !revoked.is_empty() && revoked.len() < 4, "cooperative: some, not all, move: {revoked:?}");
    // The owner commits what it read of the revoked partitions, slowly: the rebalance must wait.
    let mut committed = BTreeMap::new();
    for p in &revoked {
        let (c, read) = readers.get_mut(p).unwrap();
        c.commit(&commit_positions(read)).await.unwrap();
        committed.insert(*p, read.last().unwrap().offset + 1);
    }
    // While the revocation is unanswered the rebalance waits: the second member is given nothing.
    let early = tokio::time::timeout(Duration::from_secs(2), second.next_event()).await;
    assert!(early.is_err(), "the second member was assigned before the revocation was answered: {early:?}");
    ack.done();

    let GroupEvent::Assigned(taken) = next_event(&second).await else { panic!("the second member is assigned") };
    assert_eq!(taken.iter().copied().collect::<BTreeSet<u32>>(), revoked.iter().copied().collect(), "what moved");
    for p in &taken {
        assert!(
            matches!(first.partition(*p).await, Err(BusError::NotAssigned { .. })),
            "p{p} is no longer the first's"
        );
        let mut c = second.partition(*p).await.unwrap();
        let rest = c.poll(1_000, Duration::from_secs(2)).await.unwrap();
        let resumes = rest.first().map(|m| m.offset);
        // Every record of the partition was read and committed by the first member.
        assert!(resumes.is_none() || resumes >= Some(committed[p]), "p{p} resumes after the commit: {resumes:?}");
        assert_eq!(rest.len(), 0, "nothing of p{p} is read twice");
    }
}
