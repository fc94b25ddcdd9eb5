//! Hole repair (issue 18, item 3) through `streamforge repair`: rows deleted from the middle of a
//! stored range behind the store's back (SQL) come back from the exchange, the real outage of
//! 2021-04-25 is reported as confirmed empty, and a second repair asks the exchange nothing. The
//! exchange is the replay server over real recorded BTCUSDT 1m candles
//! (`tests/fixtures/klines/selskas_1m_5m_2021-04/`, PROVENANCE.md there).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{freqtrade_candles, true_gaps};
use streamforge::model::{parse_date_or_time_ms, Decimal};
use streamforge::replay::{ReplayFaults, ReplayServer};

const RANGE: &str = "2021-04-20:2021-04-30";
const COLLECTION: &str = "btcusdt_api_candles_1m_2021_04_20";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/klines/selskas_1m_5m_2021-04/BTC_USDT-1m.json.gz")
}

fn cli(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_streamforge")).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn klines_requests(rt: &tokio::runtime::Runtime, server: &ReplayServer) -> u64 {
    let url = format!("{}/replay/stats", server.rest_url());
    let body = rt.block_on(async { reqwest::get(url).await.unwrap().bytes().await.unwrap() });
    serde_json::from_slice::<serde_json::Value>(&body).unwrap()["requests"]["klines"].as_u64().unwrap_or(0)
}

fn stored(db: &Path) -> Vec<(i64, [Decimal; 5])> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(&format!("SELECT open_time, open, high, low, close, volume FROM {COLLECTION} ORDER BY open_time"))
        .unwrap();
    let d = |r: &rusqlite::Row, i| r.get::<_, String>(i).unwrap().parse::<Decimal>().unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, [d(r, 1), d(r, 2), d(r, 3), d(r, 4), d(r, 5)])))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn span(v: &serde_json::Value) -> (i64, i64, u64) {
    (v["first"].as_i64().unwrap(), v["last"].as_i64().unwrap(), v["records"].as_u64().unwrap())
}

#[test]
fn deleted_rows_come_back_the_outage_is_confirmed_empty_and_a_second_repair_asks_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("klines/selskas")).unwrap();
    std::fs::copy(fixture(), data.path().join("klines/selskas/BTC_USDT-1m.json.gz")).unwrap();
    let server =
        rt.block_on(ReplayServer::start_dir(data.path(), "127.0.0.1:0", 0.0, ReplayFaults::default())).unwrap();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("repair.db");
    let config = work.path().join("repair.toml");
    std::fs::write(
        &config,
        format!("[store]\nurl = \"sqlite://{}\"\n[binance]\nrest_url = \"{}\"\n", db.display(), server.rest_url()),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let base = ["--config", config, "--symbols", "BTCUSDT", "--json"];

    let (from, to) = streamforge::model::parse_time_range(RANGE).unwrap();
    let recorded: Vec<(i64, [Decimal; 5])> = freqtrade_candles(&fixture())
        .into_iter()
        .filter(|c| (from..to).contains(&c.open_time))
        .map(|c| (c.open_time, c.ohlcv))
        .collect();
    let loaded = cli(&[&["run", "--time-range", RANGE][..], &base].concat());
    assert_eq!(loaded["symbols"][0]["collection"], COLLECTION);
    assert_eq!(stored(&db), recorded);

    // Behind the store's back: four hours of 2021-04-22 and ten minutes of 2021-04-27.
    let lost = [("2021-04-22T10:00Z", "2021-04-22T13:59Z"), ("2021-04-27T00:00Z", "2021-04-27T00:09Z")];
    let conn = rusqlite::Connection::open(&db).unwrap();
    for (a, b) in lost {
        let (a, b) = (parse_date_or_time_ms(a).unwrap(), parse_date_or_time_ms(b).unwrap());
        conn.execute(&format!("DELETE FROM {COLLECTION} WHERE open_time BETWEEN ?1 AND ?2"), [a, b]).unwrap();
    }
    drop(conn);
    assert_eq!(stored(&db).len(), recorded.len() - 250);

    let before = klines_requests(&rt, &server);
    let report = &cli(&[&["repair", "--range", RANGE][..], &base].concat())["reports"][0];
    assert_eq!(stored(&db), recorded, "the store is the recording again");
    let filled: Vec<_> = report["filled"].as_array().unwrap().iter().map(span).collect();
    let lost_spans: Vec<(i64, i64, u64)> = lost
        .iter()
        .zip([240, 10])
        .map(|((a, b), n)| (parse_date_or_time_ms(a).unwrap(), parse_date_or_time_ms(b).unwrap(), n))
        .collect();
    assert_eq!(filled, lost_spans, "{report}");
    // What the exchange never had is what the recording lacks: the maintenance of 2021-04-20
    // 02:00 (150 min) and the outage of 2021-04-25 04:01–08:44.
    let open_times: Vec<i64> = recorded.iter().map(|c| c.0).collect();
    let outage = true_gaps(&open_times, 60_000);
    assert_eq!(outage.len(), 2, "{outage:?}");
    let confirmed: Vec<_> = report["confirmed_empty"].as_array().unwrap().iter().map(span).collect();
    assert_eq!(confirmed, outage, "{report}");
    assert!(streamforge::model::format_ms(outage[0].0).starts_with("2021-04-20T02:00"));
    assert!(streamforge::model::format_ms(outage[1].0).starts_with("2021-04-25T04:"));
    assert_eq!(report["holes"].as_array().unwrap().len(), 4);
    let asked = klines_requests(&rt, &server) - before;
    assert_eq!(report["requests"].as_u64(), Some(asked));
    assert_eq!(asked, 4, "one request per hole");

    // Again: the outage is known, nothing is lost, nothing is asked.
    let before = klines_requests(&rt, &server);
    let again = &cli(&[&["repair", "--range", RANGE][..], &base].concat())["reports"][0];
    assert_eq!(klines_requests(&rt, &server), before, "no request: {again}");
    assert_eq!(again["requests"], 0);
    let known: Vec<_> = again["known_empty"].as_array().unwrap().iter().map(span).collect();
    assert_eq!(known, outage);
    assert!(again["filled"].as_array().unwrap().is_empty() && again["confirmed_empty"].as_array().unwrap().is_empty());
    rt.block_on(server.stop());
}

/// Bad invocations are refused before any work, every problem listed, exit code 2.
#[test]
fn a_bad_repair_invocation_lists_every_problem() {
    let out = Command::new(env!("CARGO_BIN_EXE_streamforge"))
        .args(["repair", "--symbols", "BTCUSDT", "--interval", "7m", "--range", "2021-05-01:2021-04-01"])
        .args(["--collection", "Bad-Name", "--store", "sqlite::memory:"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    for problem in ["--interval", "--range", "--collection"] {
        assert!(said.contains(problem), "{problem}: {said}");
    }
}
