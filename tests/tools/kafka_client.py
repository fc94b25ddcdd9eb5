#!/usr/bin/env python3
"""An independent Kafka client for the tests (confluent-kafka, its own librdkafka build).

  kafka_client.py read BOOTSTRAP TOPIC COUNT      -> JSON lines {partition, offset, key, value}
  kafka_client.py offsets BOOTSTRAP TOPIC GROUP   -> JSON lines {partition, committed, end}
  kafka_client.py scram-user BOOTSTRAP USER PASSWORD -> creates (or updates) a SCRAM-SHA-512 user
                                                     through the broker's admin API
  kafka_client.py keda-lag BOOTSTRAP TOPIC GROUP  -> JSON lines {partition, committed, end, lag}, the
                                                     way KEDA's Kafka scaler computes lag
  kafka_client.py members BOOTSTRAP GROUP         -> JSON lines {member_id, group_instance_id, partitions}
                                                     of the group's members (DescribeGroups)
"""
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion


def read(bootstrap, topic, count):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "independent-" + uuid.uuid4().hex,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    c.subscribe([topic])
    got = 0
    # Stop at `count`, or once the topic has been quiet for 5 s after the first record (so a
    # caller that does not know the count reads everything there is), or after 60 s.
    deadline = time.time() + 60
    quiet_until = None
    while got < count and time.time() < deadline and (quiet_until is None or time.time() < quiet_until):
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        quiet_until = time.time() + 5
        print(json.dumps({
            "partition": m.partition(),
            "offset": m.offset(),
            "key": m.key().decode(),
            "value": m.value().decode(),
        }))
        got += 1
    c.close()


def offsets(bootstrap, topic, group):
    """Committed offsets of the group, and each partition's end as a fetch response reports it.

    tansu 0.6.0 answers ListOffsets(latest) with the last record batch's base offset + 1, so the
    end is read from the high watermark of a fetch made just below the listed end (the same
    protocol fact the Kafka bus relies on; on other brokers both agree).
    """
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    meta = c.list_topics(topic, timeout=10)
    parts = [TopicPartition(topic, p) for p in sorted(meta.topics[topic].partitions)]
    listed = {tp.partition: c.get_watermark_offsets(tp, timeout=10) for tp in parts}
    fetch_from = [TopicPartition(topic, p, high - 1) for p, (low, high) in listed.items() if high > low]
    if fetch_from:
        c.assign(fetch_from)
        seen = set()
        deadline = time.time() + 10
        while len(seen) < len(fetch_from) and time.time() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                seen.add(m.partition())
    for tp in c.committed(parts, timeout=10):
        low, high = listed[tp.partition]
        if high > low:
            high = max(high, c.get_watermark_offsets(TopicPartition(topic, tp.partition), cached=True)[1])
        committed = tp.offset if tp.offset >= 0 else low
        print(json.dumps({"partition": tp.partition, "committed": committed, "end": high}))
    c.close()


def keda_lag(bootstrap, topic, group):
    """Per partition: the newest offset as ListOffsets(latest) lists it, less the group's committed
    offset (KEDA's kafka scaler; with no commit it counts from the earliest offset, as under
    offsetResetPolicy=earliest). The scaler sums the lag over the partitions."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    meta = c.list_topics(topic, timeout=10)
    parts = [TopicPartition(topic, p) for p in sorted(meta.topics[topic].partitions)]
    for tp in c.committed(parts, timeout=10):
        low, high = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
        committed = tp.offset if tp.offset >= 0 else low
        print(json.dumps({"partition": tp.partition, "committed": committed, "end": high, "lag": high - committed}))
    c.close()


def members(bootstrap, group):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    description = admin.describe_consumer_groups([group])[group].result(timeout=30)
    for m in description.members:
        partitions = sorted(tp.partition for tp in (m.assignment.topic_partitions if m.assignment else []))
        print(json.dumps({"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                          "partitions": partitions}))


def scram_user(bootstrap, user, password):
    """AlterUserScramCredentials (KIP-554), as Strimzi's user operator does for a KafkaUser."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    upsert = UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                          password.encode())
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(timeout=30)
    print(json.dumps({"user": user, "mechanism": "SCRAM-SHA-512"}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "read":
        read(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "offsets":
        offsets(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "scram-user":
        scram_user(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "members":
        members(sys.argv[2], sys.argv[3])
    elif cmd == "keda-lag":
        keda_lag(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("unknown command " + cmd)
