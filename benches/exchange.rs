//! Binance stream handling on the bundled real ETHUSDT capture (`cargo bench --bench exchange`):
//! WebSocket message decode + normalize (combined-stream envelope → `Trade` / `DepthUpdate`), goal
//! ≥ 1,000,000 messages/s per core; and order-book diff apply, goal ≥ 2,000,000 level updates/s.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamforge::exchange::binance::{BookStep, LocalBook, StreamMessage};
use streamforge::model::{DepthUpdate, Trade};
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
                    assert!(matches!(book.on_event(u), BookStep::Applied));
                }
                book
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
