//! Backfill from Binance's archive vs REST alone (`cargo bench --bench archive`): the same range —
//! BTC, ETH and SOL / USDT 1m, 2021-04-02 → 2021-05-15 (≈184,000 recorded candles,
//! `tests/fixtures/klines/selskas_1m_5m_2021-04/`) — backfilled into a fresh SQLite store through
//! the replay server, once taking whole months and days from its archive (REST for the last day)
//! and once over REST only. Prints candles per second (exchange to store, the summary's own
//! clock) and the REST requests and weight each used, from the server's counters; three runs each,
//! the median. Twice: on loopback as it is, and with 50 ms added to every answer (REST and archive),
//! nearer what a client far from Binance sees.

use std::path::Path;
use std::time::Duration;

use streamforge::app::run::{backfill, RunOptions};
use streamforge::config::Config;
use streamforge::exchange::binance::backfill_kind;
use streamforge::model::parse_time_range;
use streamforge::replay::{ReplayFaults, ReplayServer};

const RUNS: usize = 3;

struct Measured {
    candles: u64,
    per_sec: f64,
    klines_requests: u64,
    archive_requests: u64,
    weight: u64,
}

async fn once(dir: &Path, archive: bool, delay: Duration, store: &Path) -> Measured {
    let faults = ReplayFaults { rest_delay: delay, ..Default::default() };
    let server = ReplayServer::start_dir(dir, "127.0.0.1:0", 0.0, faults).await.unwrap();
    let mut config = Config::default();
    config.store.url = format!("sqlite://{}", store.display());
    config.binance.rest_url = server.rest_url();
    config.binance.archive_url = archive.then(|| server.archive_url());
    let (start, end) = parse_time_range("2021-04-02:2021-05-15").unwrap();
    let summary = backfill(RunOptions {
        config,
        symbols: vec!["BTCUSDT".into(), "ETHUSDT".into(), "SOLUSDT".into()],
        kind: backfill_kind("api_candles_1m").unwrap(),
        start_ms: Some(start),
        end_ms: Some(end),
        offline_data: None,
        archive: false,
    })
    .await
    .unwrap();
    let stats = server.stats();
    server.stop().await;
    Measured {
        candles: summary.records,
        per_sec: summary.records_per_sec,
        klines_requests: stats.requests.get("klines").copied().unwrap_or(0),
        archive_requests: stats.requests.get("archive").copied().unwrap_or(0),
        weight: stats.weight_by_window.values().map(|w| u64::from(*w)).sum(),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that does not name this benchmark skips it.
    if std::env::args().skip(1).any(|a| !a.starts_with("--") && !"archive".contains(a.as_str())) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    println!(
        "{:<8} {:>6} {:>8} {:>12} {:>10} {:>11} {:>8}",
        "path", "delay", "candles", "candles/s", "klines req", "archive req", "weight"
    );
    for delay in [Duration::ZERO, Duration::from_millis(50)] {
        for (name, archive) in [("archive", true), ("rest", false)] {
            let mut runs: Vec<Measured> = (0..RUNS)
                .map(|_| {
                    let tmp = tempfile::tempdir().unwrap();
                    rt.block_on(once(&dir, archive, delay, &tmp.path().join("bench.db")))
                })
                .collect();
            runs.sort_by(|a, b| a.per_sec.total_cmp(&b.per_sec));
            let m = &runs[RUNS / 2];
            println!(
                "{name:<8} {:>4}ms {:>8} {:>12.0} {:>10} {:>11} {:>8}",
                delay.as_millis(),
                m.candles,
                m.per_sec,
                m.klines_requests,
                m.archive_requests,
                m.weight
            );
        }
    }
}
