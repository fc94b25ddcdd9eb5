//! The analysis example of `docs/analysis.md` (`docs/examples/volume_volatility.py`, pandas) run
//! for real on what `run --offline` stored — in SQLite, and in PostgreSQL when one is configured —
//! and checked against the same statistics computed here from the store: hourly volume against
//! hourly realized volatility of 1m log returns, and the taker-buy share of the aggregate trades.
//! Needs python3 with pandas (and psycopg for PostgreSQL); `.ci/run` installs them.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{sample_dir, test_config};
use streamforge::app::run::{backfill, RunOptions};
use streamforge::exchange::binance::backfill_kind;
use streamforge::store::Store;

/// Loads BTCUSDT 1m candles and XRPETH aggregate trades into `store_url`; returns the two
/// collections.
async fn load(store_url: &str) -> (String, String) {
    let mut collections = Vec::new();
    for (job_type, symbol) in [("api_candles_1m", "BTCUSDT"), ("api_agg_trades", "XRPETH")] {
        let opts = RunOptions {
            config: test_config(store_url),
            symbols: vec![symbol.into()],
            kind: backfill_kind(job_type).unwrap(),
            start_ms: None,
            end_ms: None,
            offline_data: Some(sample_dir()),
            archive: false,
        };
        collections.push(backfill(opts).await.unwrap().symbols[0].collection.clone());
    }
    (collections[0].clone(), collections[1].clone())
}

/// Runs the example with `args`; returns the JSON it printed.
fn example(args: &[&str]) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/volume_volatility.py");
    let out = Command::new("python3").arg(path).args(args).output().unwrap();
    assert!(out.status.success(), "the example failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn script(source: &[&str], candles: &str, trades: &str) -> serde_json::Value {
    let with = |rest: &[&str]| example(&[source, rest].concat());
    serde_json::json!({
        "candles": with(&["--candles", candles, "--symbol", "BTCUSDT"]),
        "trades": with(&["--candles", candles, "--trades", trades, "--symbol", "XRPETH"]),
    })
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let (vx, vy): (f64, f64) = (x.iter().map(|a| (a - mx).powi(2)).sum(), y.iter().map(|b| (b - my).powi(2)).sum());
    cov / (vx * vy).sqrt()
}

/// Checks the script's answer against the statistics computed here from `store`.
async fn check(store: &dyn Store, candles: &str, trades: &str, answer: &serde_json::Value) {
    let stored = store.candles(candles, "BTCUSDT", i64::MIN, i64::MAX).await.unwrap();
    // hour → (volume, sum of squared returns, returns)
    let mut hours: BTreeMap<i64, (f64, f64, u32)> = BTreeMap::new();
    for (i, c) in stored.iter().enumerate() {
        let h = hours.entry(c.open_time / 3_600_000).or_default();
        h.0 += c.volume.to_string().parse::<f64>().unwrap();
        if i > 0 && c.open_time - stored[i - 1].open_time == 60_000 {
            let close = |k: usize| stored[k].close.to_string().parse::<f64>().unwrap();
            h.1 += (close(i) / close(i - 1)).ln().powi(2);
            h.2 += 1;
        }
    }
    let kept: Vec<&(f64, f64, u32)> = hours.values().filter(|h| h.2 >= 30).collect();
    let volume: Vec<f64> = kept.iter().map(|h| h.0).collect();
    let vol: Vec<f64> = kept.iter().map(|h| h.1.sqrt()).collect();
    let c = &answer["candles"];
    assert_eq!(c["candles"].as_u64().unwrap(), stored.len() as u64);
    assert_eq!(c["hours"].as_u64().unwrap(), kept.len() as u64);
    let want = pearson(&volume, &vol);
    let got = c["pearson"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-9, "pearson: script {got}, here {want}");
    assert!(want > 0.5, "on this sample volume and volatility move together: {want}");

    let t = store.trades(trades, "XRPETH", i64::MIN, i64::MAX).await.unwrap();
    let total: f64 = t.iter().map(|t| t.qty.to_string().parse::<f64>().unwrap()).sum();
    let buys: f64 = t.iter().filter(|t| !t.is_buyer_maker).map(|t| t.qty.to_string().parse::<f64>().unwrap()).sum();
    let tr = &answer["trades"];
    assert_eq!(tr["trades"].as_u64().unwrap(), t.len() as u64);
    assert!((tr["taker_buy_share"].as_f64().unwrap() - buys / total).abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_reads_sqlite_into_pandas() {
    if !common::python_has("pandas") {
        return common::missing("python3 with pandas (pip install pandas)");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sf.db");
    let url = format!("sqlite://{}", file.display());
    let (candles, trades) = load(&url).await;
    let answer = script(&["--sqlite", file.to_str().unwrap()], &candles, &trades);
    let store = streamforge::store::open(&url).await.unwrap();
    check(store.as_ref(), &candles, &trades, &answer).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_reads_postgres_into_pandas() {
    let Some(server) = common::postgres_url() else { return };
    if !common::python_has("pandas, psycopg") {
        return common::missing("python3 with pandas and psycopg (pip install pandas \"psycopg[binary]\")");
    }
    let url = common::with_database(&server, &common::fresh_postgres_database(&server).await);
    let (candles, trades) = load(&url).await;
    let answer = script(&["--postgres", &url], &candles, &trades);
    let store = streamforge::store::open(&url).await.unwrap();
    check(store.as_ref(), &candles, &trades, &answer).await;
}
