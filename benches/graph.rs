//! Graph builder step time at 100 assets (the bundled `data/markets`, real 1h candles): one
//! rolling update of 4,950 pair correlations and 100 assets' moments, with and without building a
//! snapshot (edge selection over every pair, vertex features) at that step.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamforge::graph::{align, GraphBuilder, GraphConfig};
use streamforge::model::Interval;
use streamforge::replay::ReplayData;

fn graph_step(c: &mut Criterion) {
    let data = ReplayData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/markets")).unwrap();
    let hour: Interval = "1h".parse().unwrap();
    let series = data.all_candles(hour);
    let aligned = align(&series, hour.millis()).unwrap();
    assert_eq!(aligned.symbols.len(), 100);
    let mut g = c.benchmark_group("graph_step_100_assets");
    g.throughput(Throughput::Elements(1));
    for (label, every) in [("update_only", usize::MAX), ("update_and_snapshot", 1)] {
        let config =
            GraphConfig { name: "bench".into(), window: 168, min_periods: 84, threshold: 0.5, top_k: 5, every };
        let mut builder = GraphBuilder::new(config, aligned.symbols.clone(), aligned.step_ms);
        for row in &aligned.rows[..200] {
            builder.step(row);
        }
        let mut rows = aligned.rows[200..].iter().cycle();
        g.bench_function(label, |b| b.iter(|| builder.step(rows.next().unwrap())));
    }
    g.finish();
}

criterion_group!(benches, graph_step);
criterion_main!(benches);
