//! queue-manager's costs, through the admin API of an in-process node on embedded defaults (and
//! the Kafka bus when `STREAMFORGE_TEST_KAFKA` names a broker, with `--features kafka`):
//! - ping round trip, ping published on `queue-control` → the dummy's pong read back from
//!   `queue-events` (the `rtt_ms` the API measures), p50 / p99;
//! - workflows created per second through `POST /api/v1/workflows` (dummy workflows that stay
//!   open), one client and eight at once;
//! - with 1,000 open workflows: p50 / p99 of `GET /api/v1/workflows?limit=50` and of
//!   `GET /api/v1/workflows/{id}`, and the process's resident memory.
//!
//! Prints its measurements; no assertions (benches measure, tests assert).

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use streamforge::app::node::Node;
use streamforge::config::Config;

const PINGS: usize = 300;
const OPEN: usize = 1_000;
const READS: usize = 500;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib / 1024.0
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    let r = http.post(url).header("content-type", "application/json").body(body.to_string()).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    serde_json::from_str(&r.text().await.unwrap()).unwrap()
}

fn config(bus: Option<String>) -> Config {
    let mut c = Config::default();
    c.store.url = "sqlite::memory:".into();
    c.node.admin_addr = "127.0.0.1:0".into();
    c.node.id = common::unique("bench-node");
    c.dummy.enabled = true;
    c.dummy.queue_id = "q-bench".into();
    c.dummy.tick_ms = 60_000;
    if let Some(url) = bus {
        c.bus.url = url;
    }
    c
}

async fn pings(label: &str, bus: Option<String>) {
    let node = Node::start(config(bus), None).await.unwrap();
    let (http, url) = (reqwest::Client::new(), format!("http://{}/api/v1/ping", node.admin_addr()));
    let body = json!({"target": "dummy", "queue_id": "q-bench", "timeout_ms": 5000});
    let _ = post(&http, &url, &body).await; // warm up the consumers
    let mut rtts = Vec::with_capacity(PINGS);
    for _ in 0..PINGS {
        let answer = post(&http, &url, &body).await;
        rtts.push(answer["pongs"][0]["rtt_ms"].as_f64().expect("a pong"));
    }
    rtts.sort_by(f64::total_cmp);
    println!(
        "ping rtt ({label}): p50 {:.2} ms, p99 {:.2} ms over {PINGS} pings",
        percentile(&rtts, 0.5),
        percentile(&rtts, 0.99)
    );
    node.run_until(async {}).await.unwrap();
}

async fn open_workflows() {
    let rss_before = rss_mib();
    let node = Node::start(config(None), Some(std::path::PathBuf::from("data/sample"))).await.unwrap();
    let base = format!("http://{}", node.admin_addr());
    let http = reqwest::Client::new();
    let request =
        json!({"symbols": ["BTCUSDT"], "types": ["dummy"], "dummy": {"ticks": 1_000_000, "tick_ms": 600_000}});
    let create = format!("{base}/api/v1/workflows");
    let started = Instant::now();
    let mut ids = Vec::with_capacity(OPEN);
    for _ in 0..OPEN / 2 {
        ids.push(post(&http, &create, &request).await["id"].as_str().unwrap().to_owned());
    }
    let one = started.elapsed();
    let started = Instant::now();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (http, create, request) = (http.clone(), create.clone(), request.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..OPEN / 2 / 8 {
                    ids.push(post(&http, &create, &request).await["id"].as_str().unwrap().to_owned());
                }
                ids
            })
        })
        .collect();
    for c in clients {
        ids.extend(c.await.unwrap());
    }
    let eight = started.elapsed();
    println!(
        "workflows created: {:.0}/s with one client, {:.0}/s with eight ({} open)",
        (OPEN / 2) as f64 / one.as_secs_f64(),
        (OPEN / 2 / 8 * 8) as f64 / eight.as_secs_f64(),
        ids.len()
    );
    tokio::time::sleep(Duration::from_secs(2)).await; // every dummy started
    for (label, path) in [("list (limit 50)", None), ("get", Some(()))] {
        let mut took = Vec::with_capacity(READS);
        for i in 0..READS {
            let url = match path {
                None => format!("{base}/api/v1/workflows?limit=50&status=running"),
                Some(()) => format!("{base}/api/v1/workflows/{}", ids[i * 7 % ids.len()]),
            };
            let t = Instant::now();
            let r = http.get(&url).send().await.unwrap();
            assert!(r.status().is_success());
            let _ = r.bytes().await.unwrap();
            took.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        took.sort_by(f64::total_cmp);
        println!(
            "{label} with {} open workflows: p50 {:.2} ms, p99 {:.2} ms",
            ids.len(),
            percentile(&took, 0.5),
            percentile(&took, 0.99)
        );
    }
    println!(
        "resident memory with {} open workflows (and their dummies): {:.0} MiB ({:.0} MiB before the node)",
        ids.len(),
        rss_mib(),
        rss_before
    );
    // Not stopped gracefully: the supervisor stops its children one after the other, each dummy at
    // its next poll (up to 1 s), which for a thousand takes minutes (see the issue note).
    drop(node);
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        pings("memory bus", None).await;
        match std::env::var("STREAMFORGE_TEST_KAFKA") {
            Ok(addr) if cfg!(feature = "kafka") => {
                pings(&format!("Kafka at {addr}"), Some(format!("kafka://{addr}"))).await
            }
            _ => println!("ping rtt (Kafka): skipped (build with --features kafka and set STREAMFORGE_TEST_KAFKA)"),
        }
        open_workflows().await;
    });
}
