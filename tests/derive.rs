//! Candles derived from candles (issue 18): 5m candles computed from Binance's recorded 1m candles
//! must equal Binance's own recorded 5m candles of the same symbols and times, field for field —
//! through the library and through `streamforge derive` on a store. The recordings are in
//! `tests/fixtures/klines/selskas_1m_5m_2021-04/` (PROVENANCE.md there): BTC, ETH and SOL / USDT, 1m
//! from 2021-04-02 to 2021-05-14 and 5m over the same span, with the real outage of 2021-04-25.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{freqtrade_candles, FileCandle};
use streamforge::model::derive::{derive, period_start};
use streamforge::model::{Candle, DataRecord, Interval};
use streamforge::store;

const SYMBOLS: [(&str, &str); 3] = [("BTCUSDT", "BTC_USDT"), ("ETHUSDT", "ETH_USDT"), ("SOLUSDT", "SOL_USDT")];
/// 2021-04-24 00:00 UTC: from here on the 1m and 5m recordings agree everywhere.
const AGREED_FROM: i64 = 1_619_222_400_000;

/// Where the two recordings disagree, because they were downloaded at different times and Binance
/// restated these candles in between (the collection's PROVENANCE.md notes the 2021-04-23 one):
/// 5m open times (UTC) whose recorded 5m candle is not the sum of the recorded 1m ones.
const RESTATED: [&str; 17] = [
    "2021-04-21T08:05Z",
    "2021-04-22T02:10Z",
    "2021-04-22T02:15Z",
    "2021-04-22T02:20Z",
    "2021-04-23T01:40Z",
    "2021-04-23T01:45Z",
    "2021-04-23T01:50Z",
    "2021-04-23T01:55Z",
    "2021-04-23T02:00Z",
    "2021-04-23T02:05Z",
    "2021-04-23T02:10Z",
    "2021-04-23T02:15Z",
    "2021-04-23T02:20Z",
    "2021-04-23T02:25Z",
    "2021-04-23T02:35Z",
    "2021-04-23T02:40Z",
    "2021-04-23T02:45Z",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/klines/selskas_1m_5m_2021-04")
}

fn recorded(pair: &str, interval: &str) -> Vec<FileCandle> {
    freqtrade_candles(&fixtures().join(format!("{pair}-{interval}.json.gz")))
}

fn fields(c: &Candle) -> (i64, i64, [streamforge::model::Decimal; 5]) {
    (c.open_time, c.close_time, [c.open, c.high, c.low, c.close, c.volume])
}

#[test]
fn five_minute_candles_derived_from_one_minute_ones_are_binances_own() {
    let five: Interval = "5m".parse().unwrap();
    let restated: Vec<i64> = RESTATED.iter().map(|t| streamforge::model::parse_date_or_time_ms(t).unwrap()).collect();
    let mut compared = 0;
    for (symbol, pair) in SYMBOLS {
        let one: Vec<Candle> = recorded(pair, "1m").iter().map(|f| f.candle(symbol, "1m".parse().unwrap())).collect();
        let want: Vec<Candle> = recorded(pair, "5m").iter().map(|f| f.candle(symbol, five)).collect();
        let end = want.last().unwrap().close_time + 1;
        let derived: Vec<Candle> =
            derive(&one, five, i64::MAX).unwrap().into_iter().filter(|c| c.open_time < end).collect();
        // The same periods: none invented for the outage of 2021-04-25 04:01–08:44, none missing.
        let periods = |v: &[Candle]| v.iter().map(|c| c.open_time).collect::<Vec<_>>();
        assert_eq!(periods(&derived), periods(&want), "{symbol}: the periods");
        let outage = streamforge::model::parse_date_or_time_ms("2021-04-25T04:05Z").unwrap();
        assert!(!periods(&derived).contains(&outage), "{symbol}: no candle for the outage");
        for (d, w) in derived.iter().zip(&want) {
            if restated.contains(&d.open_time) {
                continue;
            }
            assert_eq!(fields(d), fields(w), "{symbol} at {}", streamforge::model::format_ms(d.open_time));
            compared += 1;
        }
        // The restated candles really differ (the list hides nothing else), and only before the
        // span the rest of the tests use.
        for t in &restated {
            if let (Some(d), Some(w)) =
                (derived.iter().find(|c| c.open_time == *t), want.iter().find(|c| c.open_time == *t))
            {
                assert!(*t < AGREED_FROM);
                if symbol == "SOLUSDT" || *t != restated[0] {
                    assert_ne!(
                        fields(d),
                        fields(w),
                        "{symbol} at {}: listed as restated",
                        streamforge::model::format_ms(*t)
                    );
                }
            }
        }
    }
    assert!(compared > 35_000, "{compared} candles compared field for field");
}

#[test]
fn derive_stores_every_interval_from_the_store_through_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("candles.db").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let one_minute: Interval = "1m".parse().unwrap();
    rt.block_on(async {
        let store = store::open(&url).await.unwrap();
        for (symbol, pair) in SYMBOLS {
            let records: Vec<DataRecord> =
                recorded(pair, "1m").iter().map(|f| DataRecord::Candle(f.candle(symbol, one_minute))).collect();
            store.upsert("candles_1m", std::sync::Arc::new(records)).await.unwrap();
        }
    });
    // A range that does not start on a day: the periods that straddle it are derived whole.
    let derive_cli = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_streamforge"))
            .args(["derive", "--store", &url, "--symbols", "BTCUSDT,ETHUSDT,SOLUSDT"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = derive_cli(&["--intervals", "5m,1h,1d", "--time-range", "2021-04-24T10:07Z:2021-05-13", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["derived"].as_array().unwrap().len(), 9, "3 symbols × 3 intervals");

    let expected_five = rt.block_on(async {
        let store = store::open(&url).await.unwrap();
        let (from, to) = (
            streamforge::model::parse_date_or_time_ms("2021-04-24").unwrap(),
            streamforge::model::parse_date_or_time_ms("2021-05-13").unwrap(),
        );
        let mut expected_five = 0;
        for (symbol, pair) in SYMBOLS {
            let five: Interval = "5m".parse().unwrap();
            let stored = store.candles("candles_5m", symbol, i64::MIN, i64::MAX).await.unwrap();
            let want: Vec<Candle> = recorded(pair, "5m")
                .iter()
                .filter(|f| (from..to).contains(&f.open_time))
                .map(|f| f.candle(symbol, five))
                .collect();
            assert_eq!(stored.len(), want.len(), "{symbol}: 5m candles of the whole days of the range");
            expected_five += want.len() as u64;
            for (s, w) in stored.iter().zip(&want) {
                assert_eq!(fields(s), fields(w), "{symbol} 5m at {}", streamforge::model::format_ms(s.open_time));
                assert!(s.closed);
            }
            // 1d from 1m equals 1d from the stored 5m: one aggregation, whatever the step.
            let days = store.candles("candles_1d", symbol, i64::MIN, i64::MAX).await.unwrap();
            assert_eq!(days.len(), 19, "{symbol}: 2021-04-24 … 2021-05-12");
            let via_five = derive(&stored, "1d".parse().unwrap(), to).unwrap();
            assert_eq!(days.iter().map(fields).collect::<Vec<_>>(), via_five.iter().map(fields).collect::<Vec<_>>());
            assert_eq!(days[0].open_time, period_start(from, "1d".parse().unwrap()));
        }
        expected_five
    });
    // Deriving again stores nothing twice.
    let again = derive_cli(&["--intervals", "5m", "--time-range", "2021-04-24:2021-05-13"]);
    assert!(again.status.success());
    let table = String::from_utf8_lossy(&again.stdout);
    assert!(table.contains("candles_5m") && table.contains("BTCUSDT"), "{table}");
    rt.block_on(async {
        let store = store::open(&url).await.unwrap();
        let rows = store.collections().await.unwrap().into_iter().find(|c| c.name == "candles_5m").unwrap().rows;
        assert_eq!(rows, expected_five, "one row per symbol and 5m period, however often derived");
    });

    // Every problem of the invocation at once, exit code 2.
    let bad = derive_cli(&["--intervals", "7m,3d", "--time-range", "2021-05-13:2021-04-24"]);
    assert_eq!(bad.status.code(), Some(2));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("7m") && said.contains("--time-range"), "{said}");
    let not_derivable = derive_cli(&["--intervals", "3d"]);
    assert_eq!(not_derivable.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&not_derivable.stderr).contains("whole multiple"),
        "{}",
        String::from_utf8_lossy(&not_derivable.stderr)
    );
}
