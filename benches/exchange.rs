//! Binance stream handling on the bundled real capture (`cargo bench --bench exchange`):
//! WebSocket message decode + normalize (combined-stream envelope → `Trade` / `DepthUpdate`), goal
//! ≥ 1,000,000 messages/s per core; order-book diff apply, goal ≥ 2,000,000 level updates/s; and
//! the WebSocket path as the peers measure it (`ws_path_to_bus`: the BTC+ETH `@trade` and
//! `@depth@100ms` messages decoded, every depth event applied to a verified book, records encoded
//! and published to the in-process bus, no store), goal ≤ 2.0 µs per message.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::collections::HashMap;

use streamforge::bus::{memory::MemoryBus, Bus, OutRecord};
use streamforge::exchange::binance::{BookStep, LocalBook, StreamMessage};
use streamforge::model::{DataRecord, DepthUpdate, Trade};
use streamforge::replay::ReplayData;

fn exchange(c: &mut Criterion) {
    let data = ReplayData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")).unwrap();
    let eth = &data.symbols["ETHUSDT"];
    let messages: Vec<String> = eth
        .ws
        .iter()
        .filter(|r| r.stream.ends_with("@trade") || r.stream.ends_with("@depth@100ms"))
        .map(|r| r.combined().to_owned())
        .collect();
    let snapshot = data.book_at("ETHUSDT", None).unwrap().unwrap();
    let updates: Vec<DepthUpdate> = eth
        .ws
        .iter()
        .filter(|r| r.stream.ends_with("@depth@100ms"))
        .map(|r| DepthUpdate::from_ws(r.data().as_bytes()).unwrap())
        .filter(|u| u.final_update_id > snapshot.last_update_id)
        .collect();
    let levels: u64 = updates.iter().map(|u| (u.bids.len() + u.asks.len()) as u64).sum();

    let mut g = c.benchmark_group("exchange");
    // The whole capture, then each stream alone (a depth event carries ~40 levels, a trade one).
    let trades: Vec<String> = messages.iter().filter(|m| m.contains("@trade")).cloned().collect();
    let depths: Vec<String> = messages.iter().filter(|m| m.contains("@depth")).cloned().collect();
    for (name, set) in [("ws_decode_normalize", &messages), ("ws_decode_trade", &trades), ("ws_decode_depth", &depths)]
    {
        g.throughput(Throughput::Elements(set.len() as u64));
        g.bench_function(name, |b| b.iter(|| decode_all(set)));
    }
    g.throughput(Throughput::Elements(levels));
    g.bench_function("book_apply_level_updates", |b| {
        b.iter_batched(
            || {
                let mut book = LocalBook::new("ETHUSDT");
                book.on_snapshot(&snapshot).unwrap();
                (book, updates.clone())
            },
            |(mut book, updates)| {
                for u in updates {
                    assert!(matches!(book.on_event(&u), BookStep::Applied));
                }
                book
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
    ws_path(c, &data);
}

/// The loaders' work per message, as a peer's benchmark counts it: decode, verified book, bus.
fn ws_path(c: &mut Criterion, data: &ReplayData) {
    let mut messages: Vec<(i64, String)> = Vec::new();
    let mut snapshots = Vec::new();
    for symbol in ["BTCUSDT", "ETHUSDT"] {
        let lower = symbol.to_ascii_lowercase();
        let wanted = [format!("{lower}@trade"), format!("{lower}@depth@100ms")];
        let d = &data.symbols[symbol];
        messages.extend(
            d.ws.iter()
                .filter(|r| wanted.iter().any(|w| **w == *r.stream))
                .map(|r| (r.recv_ns, r.combined().to_owned())),
        );
        snapshots.push((symbol, data.book_at(symbol, None).unwrap().unwrap()));
    }
    messages.sort_by_key(|(t, _)| *t);
    let messages: Vec<String> = messages.into_iter().map(|(_, m)| m).collect();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut g = c.benchmark_group("exchange");
    g.throughput(Throughput::Elements(messages.len() as u64));
    g.bench_function("ws_path_to_bus", |b| {
        b.iter_batched(
            || {
                let bus = MemoryBus::new(64 << 20);
                rt.block_on(bus.ensure_topic("ws", 3)).unwrap();
                let books: HashMap<String, LocalBook> = snapshots
                    .iter()
                    .map(|(s, snap)| {
                        let mut book = LocalBook::new(s);
                        book.on_snapshot(snap).unwrap();
                        (s.to_string(), book)
                    })
                    .collect();
                (bus, books)
            },
            |(bus, mut books)| {
                for chunk in messages.chunks(100) {
                    let mut out = Vec::with_capacity(chunk.len());
                    for m in chunk {
                        let msg = StreamMessage::parse(m).unwrap();
                        let record = if msg.stream.ends_with("@trade") {
                            DataRecord::Trade(Trade::from_ws_trade(msg.data()).unwrap())
                        } else {
                            let update = DepthUpdate::from_ws(msg.data()).unwrap();
                            let step = books.get_mut(&update.symbol).unwrap().on_event(&update);
                            assert!(matches!(step, BookStep::Applied | BookStep::Stale), "{step:?}");
                            DataRecord::DepthUpdate(update)
                        };
                        out.push(OutRecord::keyed(record.symbol(), record.to_bytes()));
                    }
                    rt.block_on(bus.publish("ws", out)).unwrap();
                }
                bus
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// Envelope → stream → normalized record, as the WebSocket loader does.
fn decode_all(messages: &[String]) -> usize {
    let mut n = 0usize;
    for m in messages {
        let msg = StreamMessage::parse(m).unwrap();
        let data = msg.data();
        if msg.stream.ends_with("@trade") {
            n += Trade::from_ws_trade(data).unwrap().id as usize & 1;
        } else {
            n += DepthUpdate::from_ws(data).unwrap().bids.len();
        }
    }
    n
}

criterion_group!(benches, exchange);
criterion_main!(benches);
