//! The dashboard's cost to the node: `streamforge node --offline` (the demo: the bundled BTC/ETH
//! capture streamed at its recorded pace) as a child process, then five dashboard clients reading
//! its event stream for a minute, then a sixth that stops reading. Prints the node's resident
//! memory and CPU (of one core) every ten seconds, from `/proc/<pid>`; no assertions (benches
//! measure, tests assert).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn proc_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// User + system CPU seconds the process has used.
fn proc_cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat (utime, stime), counted after the name: 12 and 13; 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Samples the node every ten seconds for `span`.
async fn sample(pid: u32, what: &str, span: Duration, frames: &AtomicU64) {
    let start = Instant::now();
    let (mut cpu, mut at) = (proc_cpu_s(pid), Instant::now());
    while start.elapsed() < span {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let (now_cpu, now) = (proc_cpu_s(pid), Instant::now());
        let share = (now_cpu - cpu) / (now - at).as_secs_f64() * 100.0;
        println!(
            "{what:<34} t={:>3.0}s  rss {:>6.1} MiB  cpu {:>5.1} %  frames read {}",
            start.elapsed().as_secs_f64(),
            proc_rss_mib(pid),
            share,
            frames.load(Ordering::Relaxed)
        );
        (cpu, at) = (now_cpu, now);
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = format!("sqlite://{}", dir.path().join("bench.db").display());
    let mut node = Command::new(env!("CARGO_BIN_EXE_streamforge"))
        .args(["node", "--offline", "--admin-addr", &format!("127.0.0.1:{port}"), "--store", &store])
        .env("STREAMFORGE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = node.id();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{base}/readyz")).await.map(|r| r.status() != 200).unwrap_or(true) {
        assert!(Instant::now() < deadline, "the node did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let frames = Arc::new(AtomicU64::new(0));
    sample(pid, "no dashboard", Duration::from_secs(20), &frames).await;

    let mut readers = Vec::new();
    for _ in 0..5 {
        let (url, frames) = (format!("{base}/api/v1/monitor/ETHUSDT/stream"), frames.clone());
        readers.push(tokio::spawn(async move {
            let mut resp = reqwest::get(url).await.unwrap();
            while let Ok(Some(chunk)) = resp.chunk().await {
                frames.fetch_add(chunk.iter().filter(|b| **b == b'\n').count() as u64 / 3, Ordering::Relaxed);
            }
        }));
    }
    sample(pid, "five dashboards", Duration::from_secs(60), &frames).await;

    // One more that asks and never reads.
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut stalled, b"GET /api/v1/monitor/ETHUSDT/stream HTTP/1.1\r\nHost: bench\r\n\r\n")
        .unwrap();
    sample(pid, "five dashboards + one not reading", Duration::from_secs(40), &frames).await;
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    for line in metrics.lines().filter(|l| l.starts_with("streamforge_monitor_")) {
        println!("{line}");
    }
    for r in readers {
        r.abort();
    }
    drop(stalled);
    let _ = node.kill();
    let _ = node.wait();
}
