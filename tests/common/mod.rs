//! Helpers shared by the integration tests: the bundled recording, read independently of the
//! replay server, and condition waits with a deadline instead of sleeps.

#![allow(dead_code)]

pub mod browser;
pub mod kafka;
#[cfg(feature = "kubernetes")]
pub mod kube_api;
pub mod proxy;

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use streamforge::config::Config;
use streamforge::model::Decimal;

pub fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")
}

/// One recorded candle as the file holds it: open time and the exact decimal text of OHLCV.
#[derive(Debug, Clone, PartialEq)]
pub struct FileCandle {
    pub open_time: i64,
    pub ohlcv: [Decimal; 5],
}

impl FileCandle {
    /// The candle as a store or the bus holds it (freqtrade keeps no quote volume, trade count or
    /// taker volumes).
    pub fn candle(&self, symbol: &str, interval: streamforge::model::Interval) -> streamforge::model::Candle {
        let [open, high, low, close, volume] = self.ohlcv;
        streamforge::model::Candle {
            symbol: symbol.into(),
            interval,
            open_time: self.open_time,
            close_time: self.open_time + interval.millis() - 1,
            open,
            high,
            low,
            close,
            volume,
            quote_volume: None,
            trades: None,
            taker_buy_base: None,
            taker_buy_quote: None,
            closed: true,
        }
    }
}

/// Reads a freqtrade kline file of the sample with serde_json's own number parsing, keeping each
/// number's text (not going through the replay server's code).
pub fn recorded_candles(symbol_file: &str) -> Vec<FileCandle> {
    freqtrade_candles(&sample_dir().join("klines/selskas_spot_1m_2021-04-24_2021-04-26").join(symbol_file))
}

/// The candles of a gzipped freqtrade kline file, each number as the file writes it.
pub fn freqtrade_candles(path: &Path) -> Vec<FileCandle> {
    let text = read_gz(path);
    // Split rows by hand so every number keeps the digits the file has.
    let inner = text.trim().trim_start_matches("[[").trim_end_matches("]]");
    inner
        .split("],[")
        .map(|row| {
            let f: Vec<&str> = row.split(',').collect();
            let d = |s: &str| s.parse::<Decimal>().or_else(|_| Decimal::from_scientific(s)).unwrap();
            FileCandle { open_time: f[0].parse().unwrap(), ohlcv: [d(f[1]), d(f[2]), d(f[3]), d(f[4]), d(f[5])] }
        })
        .collect()
}

pub fn read_gz(path: &Path) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_string(&mut text).unwrap();
    text
}

/// The raw aggregate trades of the XRPETH recording (`{"a","p","q","f","l","T","m","M"}`), read
/// straight from the file.
pub fn recorded_agg_trades() -> Vec<serde_json::Value> {
    let path = sample_dir().join("trades/freqtrade_XRP_ETH_aggtrades_2019-10/XRP_ETH-aggTrades.json.gz");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&read_gz(&path)).unwrap();
    rows.into_iter().map(|mut r| r["info"].take()).collect()
}

/// The `data` of every `ethusdt@trade` message of the capture, in file order, read straight from
/// the files.
pub fn recorded_capture_trades() -> Vec<serde_json::Value> {
    let dir = sample_dir().join("ws/hftbacktest_raw_binance/spot");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut trades = Vec::new();
    for f in files {
        for line in read_gz(&f).lines() {
            let mut v: serde_json::Value = serde_json::from_str(line.split_once(' ').unwrap().1).unwrap();
            if v["stream"] == "ethusdt@trade" {
                trades.push(v["data"].take());
            }
        }
    }
    trades
}

/// Gaps in a sorted list of open times: (first missing, last missing, count).
pub fn true_gaps(open_times: &[i64], step: i64) -> Vec<(i64, i64, u64)> {
    open_times
        .windows(2)
        .filter(|w| w[1] - w[0] > step)
        .map(|w| (w[0] + step, w[1] - step, ((w[1] - w[0]) / step - 1) as u64))
        .collect()
}

/// A config for tests: the given store, everything else default, quick flushes.
pub fn test_config(store_url: &str) -> Config {
    let mut c = Config::default();
    c.store.url = store_url.to_owned();
    c.connector.flush_interval_ms = 50;
    // Recorded streams as fast as the loaders read them (a node's default is the recorded pace).
    c.node.replay_speed = 0.0;
    c
}

/// Waits until `check` returns Some, polling every 10 ms, failing the test after `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A topic or group name no other test (or earlier run against the same broker) uses.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Runs one connector for `route` under a tree that ends once it has drained the topic; returns
/// what it wrote and the ended tree.
pub async fn drain_with_connector(
    ctx: &streamforge::app::NodeContext,
    route: streamforge::actors::connector::ConnectorRoute,
    timeout: Duration,
) -> (std::sync::Arc<streamforge::actors::connector::ConnectorShared>, streamforge::supervision::Tree) {
    use streamforge::supervision::{Restart, Strategy, SupervisorArgs, Tree};
    let shared = std::sync::Arc::new(streamforge::actors::connector::ConnectorShared::default());
    shared.drain.store(true, std::sync::atomic::Ordering::Release);
    let spec = ctx.connector_child(route, shared.clone(), Restart::Transient);
    let mut tree = Tree::start(SupervisorArgs {
        auto_shutdown: true,
        ..ctx.supervisor_args("drain", Strategy::OneForOne, vec![spec])
    })
    .await
    .unwrap();
    tree.wait_for(timeout).await.unwrap();
    (shared, tree)
}

/// A real component a test needs is missing: the test is reported as skipped and passes, unless
/// `STREAMFORGE_REQUIRE_ALL=1` (set by `.ci/run`), where it fails.
pub fn missing(what: &str) {
    if std::env::var("STREAMFORGE_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!("STREAMFORGE_REQUIRE_ALL=1 but {what}");
    }
    eprintln!("SKIPPED: {what}");
}

/// The PostgreSQL server the tests may use (`.ci/run` starts one and sets
/// `STREAMFORGE_TEST_POSTGRES_URL`), or `None` (see [`missing`]).
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("STREAMFORGE_TEST_POSTGRES_URL").ok();
    if url.is_none() {
        missing("STREAMFORGE_TEST_POSTGRES_URL is not set (postgres://… of a server the tests may use)");
    }
    url
}

/// A new, empty database on the server of `server_url`; returns its name.
#[cfg(feature = "postgres")]
pub async fn fresh_postgres_database(server_url: &str) -> String {
    let (client, conn) = tokio_postgres::connect(server_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("sf_test_{}_{}", std::process::id(), nanos % 1_000_000_000_000);
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    name
}

/// `server_url` with its database replaced by `database`.
pub fn with_database(server_url: &str, database: &str) -> String {
    let (base, _) = server_url.rsplit_once('/').unwrap();
    format!("{base}/{database}")
}

/// Whether `python3` can import `modules` (comma-separated).
pub fn python_has(modules: &str) -> bool {
    std::process::Command::new("python3").args(["-c", &format!("import {modules}")]).status().is_ok_and(|s| s.success())
}

/// Checks that the store at `store_url` holds, in the workflow collection of `symbol`'s 1m candles
/// from 2021-04-24, every recorded candle of `file` opened before 2021-04-26 exactly once, in
/// order; returns how many that is.
pub async fn assert_sample_candles_stored_once(store_url: &str, symbol: &str, file: &str) -> u64 {
    // The workflows ask for 2021-04-24:2021-04-26; the recording runs on after it.
    let recorded: Vec<i64> =
        recorded_candles(file).iter().map(|c| c.open_time).filter(|t| *t < 1_619_395_200_000).collect();
    let collection = format!("{}_api_candles_1m_2021_04_24", symbol.to_ascii_lowercase());
    let db = streamforge::store::open(store_url).await.unwrap();
    let stored: Vec<i64> =
        db.candles(&collection, symbol, i64::MIN, i64::MAX).await.unwrap().iter().map(|c| c.open_time).collect();
    let first_difference = stored.iter().zip(&recorded).position(|(a, b)| a != b);
    assert_eq!((stored.len(), first_difference), (recorded.len(), None), "{symbol}: every candle once, in order");
    recorded.len() as u64
}

/// A PostgreSQL server of a test's own that asks for a password (scram-sha-256) — the shared
/// server `.ci/run` starts trusts every connection, which would let a missing password through.
/// Debian's server binaries, a new cluster in a temporary folder, run as `postgres` when the tests
/// run as root; stopped when dropped.
pub struct PasswordPostgres {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

/// Runs `line` in a shell, as `postgres` when this process is root (the server refuses root).
fn as_postgres(line: &str) -> std::process::Output {
    let root = std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    let mut cmd = if root {
        let mut c = std::process::Command::new("su");
        c.args(["postgres", "-s", "/bin/sh", "-c", line]);
        c
    } else {
        let mut c = std::process::Command::new("sh");
        c.args(["-c", line]);
        c
    };
    cmd.output().expect("a shell runs")
}

impl PasswordPostgres {
    /// A server whose superuser `postgres` has `password`, or `None` (see [`missing`]).
    pub fn start(password: &str) -> Option<PasswordPostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|d| {
            d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("postgres").exists()).max()
        });
        let Some(bin) = bin else {
            missing("PostgreSQL's server binaries (Debian's postgresql; .ci/run installs them)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let _ = std::process::Command::new("chown").arg("postgres").arg(dir.path()).status();
        std::fs::write(dir.path().join("pw"), password).unwrap();
        let _ = std::process::Command::new("chown").arg("postgres").arg(dir.path().join("pw")).status();
        let d = dir.path().display();
        let init = as_postgres(&format!(
            "'{}/initdb' -D '{d}/data' -U postgres --auth=scram-sha-256 --pwfile='{d}/pw' -E UTF8",
            bin.display()
        ));
        assert!(init.status.success(), "initdb: {}", String::from_utf8_lossy(&init.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let start = as_postgres(&format!(
            "'{}/pg_ctl' -D '{d}/data' -l '{d}/server.log' -w -t 60 -o \"-c listen_addresses=127.0.0.1 -p {port} -k '{d}' -c fsync=off\" start",
            bin.display()
        ));
        assert!(start.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&start.stderr));
        Some(PasswordPostgres { port, bin, dir })
    }
}

impl Drop for PasswordPostgres {
    fn drop(&mut self) {
        as_postgres(&format!(
            "'{}/pg_ctl' -D '{}/data' -m immediate stop",
            self.bin.display(),
            self.dir.path().display()
        ));
    }
}
