#!/usr/bin/env python3
"""The seed-style Python connector the Kafka connector path is measured against (issue 15, docs/performance.md).

    python_connector.py BOOTSTRAP TOPIC RECORDS

What the seeds' arango-connector does, written the way a careful Python engineer would: aiokafka on uvloop,
orjson, batches of up to 2,000 records (`getmany`), each batch upserted into SQLite in one transaction with the
same table and upsert as StreamForge's SQLite store (WAL, synchronous=NORMAL), and the offsets committed only
after the transaction — the same guarantees as `streamforge bench --paths connector`. A fresh consumer group reads
TOPIC (what the bench filled) from the start until RECORDS are stored, and prints one JSON line: records,
seconds, records_per_s, cpu_us_per_record (user + system CPU of this process from the first record on).
Needs `pip install aiokafka uvloop orjson cramjam` (cramjam: aiokafka's lz4, the topics are lz4-compressed as StreamForge produces them).
"""
import asyncio
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
import uuid

import orjson
import uvloop
from aiokafka import AIOKafkaConsumer

UPSERT = """INSERT INTO candles (symbol, interval, open_time, close_time, open, high, low, close, volume,
    quote_volume, trades, taker_buy_base, taker_buy_quote, closed)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (symbol, interval, open_time) DO UPDATE SET close_time = excluded.close_time,
    open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
    volume = excluded.volume, quote_volume = excluded.quote_volume, trades = excluded.trades,
    taker_buy_base = excluded.taker_buy_base, taker_buy_quote = excluded.taker_buy_quote, closed = excluded.closed"""


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def row(value):
    c = orjson.loads(value)
    return (c["symbol"], c["interval"], c["open_time"], c["close_time"], c["open"], c["high"], c["low"], c["close"],
            c["volume"], c["quote_volume"], c["trades"], c["taker_buy_base"], c["taker_buy_quote"], int(c["closed"]))


async def main(bootstrap, topic, records):
    db_dir = tempfile.mkdtemp(prefix="peer-connector-")
    db = sqlite3.connect(os.path.join(db_dir, "store.db"), isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("""CREATE TABLE candles (symbol TEXT NOT NULL, interval TEXT NOT NULL, open_time INTEGER NOT NULL,
        close_time INTEGER NOT NULL, open TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL, close TEXT NOT NULL,
        volume TEXT NOT NULL, quote_volume TEXT, trades INTEGER, taker_buy_base TEXT, taker_buy_quote TEXT,
        closed INTEGER NOT NULL, PRIMARY KEY (symbol, interval, open_time)) WITHOUT ROWID""")
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"peer-{uuid.uuid4()}",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    stored, started, cpu0 = 0, None, None
    try:
        while stored < records:
            batches = await consumer.getmany(timeout_ms=100, max_records=2000)
            rows = [row(m.value) for msgs in batches.values() for m in msgs]
            if not rows:
                continue
            if started is None:
                started, cpu0 = time.monotonic(), cpu_seconds()
            db.execute("BEGIN")
            db.executemany(UPSERT, rows)
            db.execute("COMMIT")
            await consumer.commit()
            stored += len(rows)
    finally:
        await consumer.stop()
    seconds, cpu = time.monotonic() - started, cpu_seconds() - cpu0
    print(json.dumps({"path": "python-connector", "records": stored, "seconds": seconds,
                      "records_per_s": stored / seconds, "cpu_us_per_record": cpu * 1e6 / stored}))


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
