//! A multi-day 1m backfill of two symbols through the real binaries: `replay-server` (the bundled
//! recording, each REST answer slowed by 100 ms) and `run`. Killed halfway (SIGKILL) and started
//! again, the backfill continues from the store's high-water mark: the store ends identical to
//! the recording, and the second run needs fewer requests than a full run.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{recorded_candles, sample_dir};
use streamforge::store;

const PAGE: usize = 500;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(base: &str, store_url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_streamforge"));
    c.args(["run", "--base-url", base, "--store", store_url, "--symbols", "BTCUSDT,ETHUSDT"])
        .args(["--time-range", "2021-04-24:2021-04-27"])
        .env("STREAMFORGE__LOADER__PAGE_LIMIT", PAGE.to_string())
        .env("STREAMFORGE__CONNECTOR__FLUSH_INTERVAL_MS", "100")
        .env_remove("STREAMFORGE_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

async fn kline_requests(base: &str) -> u64 {
    let body = reqwest::get(format!("{base}/replay/stats")).await.unwrap().text().await.unwrap();
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    stats["requests"]["klines"].as_u64().unwrap_or(0)
}

async fn rows(store_url: &str) -> u64 {
    let store = store::open(store_url).await.unwrap();
    store.collections().await.unwrap().iter().map(|c| c.rows).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backfill_resumes_from_the_store_and_ends_identical_with_fewer_requests() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = Killed(
        Command::new(env!("CARGO_BIN_EXE_streamforge"))
            .args(["replay-server", "--data"])
            .arg(sample_dir())
            .args(["--addr", &format!("127.0.0.1:{port}"), "--rest-delay-ms", "100"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{base}/api/v3/ping")).await.is_err() {
        assert!(Instant::now() < deadline, "replay server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let recorded =
        [("BTCUSDT", recorded_candles("BTC_USDT-1m.json.gz")), ("ETHUSDT", recorded_candles("ETH_USDT-1m.json.gz"))];
    let total: usize = recorded.iter().map(|(_, r)| r.len()).sum();

    // First run: killed once some but not all of the candles are stored.
    let mut first = Killed(run(&base, &store_url).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = rows(&store_url).await;
        if stored >= 2 * PAGE as u64 {
            break;
        }
        assert!(first.0.try_wait().unwrap().is_none(), "the first run ended before it could be killed");
        assert!(Instant::now() < deadline, "nothing stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let killed_at = rows(&store_url).await;
    assert!(killed_at < total as u64, "killed halfway: {killed_at} of {total}");
    let first_requests = kline_requests(&base).await;

    // Second run: continues after the stored candles.
    let status = run(&base, &store_url).status().unwrap();
    assert!(status.success());
    let second_requests = kline_requests(&base).await - first_requests;
    // What a run from scratch asks for, measured on a fresh store.
    let fresh = format!("sqlite://{}", dir.path().join("fresh.db").display());
    assert!(run(&base, &fresh).status().unwrap().success());
    let full_run = kline_requests(&base).await - first_requests - second_requests;
    assert!(second_requests < full_run, "resumed: {second_requests} requests, a full run needs {full_run}");

    let store = store::open(&store_url).await.unwrap();
    for (symbol, want) in &recorded {
        let collection = format!("{}_api_candles_1m_2021_04_24", symbol.to_ascii_lowercase());
        let got = store.candles(&collection, symbol, i64::MIN, i64::MAX).await.unwrap();
        assert_eq!(got.len(), want.len(), "{symbol}: row count");
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.open_time, [g.open, g.high, g.low, g.close, g.volume]), (w.open_time, w.ohlcv), "{symbol}");
        }
    }
}
