//! Supervision costs:
//! - `restart_latency`: from a child's failure to its replacement running (no backoff); prints
//!   p50 / p99 over many restarts;
//! - `dynamic_children`: starting 10,000 dynamic children one request each, then restarting all
//!   of them after each fails once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use streamforge::admin::metrics::Metrics;
use streamforge::supervision::{Backoff, ChildSpec, Intensity, Restart, Strategy, SupervisorArgs, SupervisorMsg, Tree};
use tokio::sync::mpsc;

/// Reports each start (time, cell) and fails when asked.
struct Probe;

impl Actor for Probe {
    type Msg = ();
    type State = ();
    type Arguments = mpsc::UnboundedSender<(Instant, ActorCell)>;

    async fn pre_start(&self, me: ActorRef<()>, started: Self::Arguments) -> Result<(), ActorProcessingErr> {
        let _ = started.send((Instant::now(), me.get_cell()));
        Ok(())
    }

    async fn handle(&self, _me: ActorRef<()>, _msg: (), _s: &mut ()) -> Result<(), ActorProcessingErr> {
        Err("benchmark failure".into())
    }
}

fn probe(id: String, started: &mpsc::UnboundedSender<(Instant, ActorCell)>) -> ChildSpec {
    let started = started.clone();
    ChildSpec::new(id, "probe", Restart::Permanent, move || (Probe, started.clone()))
}

fn tree_args(children: Vec<ChildSpec>) -> SupervisorArgs {
    SupervisorArgs {
        intensity: Intensity { max_restarts: u32::MAX, within: Duration::from_secs(1) },
        backoff: Backoff::NONE,
        ..SupervisorArgs::new("bench", Strategy::OneForOne, children, Arc::new(Metrics::new()))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn restart_latency(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tree = rt.block_on(Tree::start(tree_args(vec![probe("p".into(), &tx)]))).unwrap();
    let mut cell = rt.block_on(rx.recv()).unwrap().1;
    let mut all = Vec::new();
    let mut g = c.benchmark_group("restart_latency");
    g.bench_function("failure_to_replacement_running", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t0 = Instant::now();
                    cell.send_message(()).unwrap();
                    let (at, next) = rx.recv().await.unwrap();
                    let latency = at.duration_since(t0);
                    all.push(latency);
                    total += latency;
                    cell = next;
                }
                total
            })
        })
    });
    g.finish();
    all.sort();
    if all.is_empty() {
        return; // filtered out
    }
    println!(
        "restart latency over {} restarts: p50 {:?}, p99 {:?}, max {:?}",
        all.len(),
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        all.last().unwrap()
    );
    tree.shutdown();
    let _ = rt.block_on(tree.wait_for(Duration::from_secs(10)));
}

fn dynamic_children(c: &mut Criterion) {
    const N: usize = 10_000;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut g = c.benchmark_group("dynamic_children");
    g.sample_size(10).throughput(Throughput::Elements(N as u64));
    let (mut spawn_total, mut restart_total, mut runs) = (Duration::ZERO, Duration::ZERO, 0u32);
    g.bench_function("spawn_and_restart_10000", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (tx, mut rx) = mpsc::unbounded_channel();
                    let mut tree = Tree::start(tree_args(Vec::new())).await.unwrap();
                    let t0 = Instant::now();
                    for i in 0..N {
                        ractor::call!(tree.supervisor(), SupervisorMsg::StartChild, probe(format!("p{i}"), &tx))
                            .unwrap()
                            .unwrap();
                    }
                    let spawned = t0.elapsed();
                    let mut cells = Vec::with_capacity(N);
                    for _ in 0..N {
                        cells.push(rx.recv().await.unwrap().1);
                    }
                    let t1 = Instant::now();
                    for cell in &cells {
                        cell.send_message(()).unwrap();
                    }
                    for _ in 0..N {
                        rx.recv().await.unwrap();
                    }
                    let restarted = t1.elapsed();
                    spawn_total += spawned;
                    restart_total += restarted;
                    runs += 1;
                    total += spawned + restarted;
                    tree.shutdown();
                    tree.wait_for(Duration::from_secs(60)).await.unwrap();
                }
                total
            })
        })
    });
    g.finish();
    println!(
        "10,000 dynamic children: spawn {:?}, restart all {:?} (mean of {runs} runs)",
        spawn_total / runs.max(1),
        restart_total / runs.max(1)
    );
}

criterion_group!(benches, restart_latency, dynamic_children);
criterion_main!(benches);
