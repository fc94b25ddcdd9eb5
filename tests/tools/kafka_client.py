#!/usr/bin/env python3
"""An independent Kafka client for the tests (confluent-kafka, its own librdkafka build).

  kafka_client.py read BOOTSTRAP TOPIC COUNT      -> JSON lines {partition, offset, key, value}
  kafka_client.py offsets BOOTSTRAP TOPIC GROUP   -> JSON lines {partition, committed, end}
"""
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, TopicPartition


def read(bootstrap, topic, count):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "independent-" + uuid.uuid4().hex,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    c.subscribe([topic])
    got = 0
    deadline = time.time() + 60
    while got < count and time.time() < deadline:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        print(json.dumps({
            "partition": m.partition(),
            "offset": m.offset(),
            "key": m.key().decode(),
            "value": m.value().decode(),
        }))
        got += 1
    c.close()


def offsets(bootstrap, topic, group):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    meta = c.list_topics(topic, timeout=10)
    parts = [TopicPartition(topic, p) for p in sorted(meta.topics[topic].partitions)]
    for tp in c.committed(parts, timeout=10):
        low, high = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
        committed = tp.offset if tp.offset >= 0 else low
        print(json.dumps({"partition": tp.partition, "committed": committed, "end": high}))
    c.close()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "read":
        read(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "offsets":
        offsets(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("unknown command " + cmd)
