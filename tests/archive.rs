//! Backfills through Binance's public data archive (issue 18, items 1 and 2): the replay server
//! serves the archive's layout (daily and monthly ZIP files of CSV, a sha256 `.CHECKSUM` beside
//! each) built from real recorded candles — BTCUSDT 1m, 2021-04-02 → 2021-05-14 20:25, from
//! `tests/fixtures/klines/selskas_1m_5m_2021-04/` (PROVENANCE.md there) — and `streamforge run`,
//! configured through a config file's `binance.archive_url` or `--archive-url`, takes whole months
//! and days from it and only the rest over REST.

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{freqtrade_candles, FileCandle};
use streamforge::exchange::binance::{sha256_hex, unzip_csv};
use streamforge::model::{parse_date_or_time_ms, Candle, Decimal};
use streamforge::replay::{ReplayFaults, ReplayServer};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/klines/selskas_1m_5m_2021-04/BTC_USDT-1m.json.gz")
}

/// A replay folder holding the BTCUSDT 1m recording only.
fn recording() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let klines = dir.path().join("klines/selskas");
    std::fs::create_dir_all(&klines).unwrap();
    std::fs::copy(fixture(), klines.join("BTC_USDT-1m.json.gz")).unwrap();
    dir
}

fn recorded_between(from: &str, to: &str) -> Vec<FileCandle> {
    let (from, to) = (parse_date_or_time_ms(from).unwrap(), parse_date_or_time_ms(to).unwrap());
    freqtrade_candles(&fixture()).into_iter().filter(|c| (from..to).contains(&c.open_time)).collect()
}

fn fields(c: &Candle) -> (i64, i64, [Decimal; 5]) {
    (c.open_time, c.close_time, [c.open, c.high, c.low, c.close, c.volume])
}

/// Where `run` is told of the archive.
enum Archive<'a> {
    None,
    /// `binance.archive_url` in the config file.
    InFile(&'a str),
    /// `run --archive-url`.
    Flag(&'a str),
}

/// `streamforge run` on a config file with `store.url`, `binance.rest_url` and the archive as
/// `archive` says; its JSON summary.
fn run(dir: &Path, name: &str, rest_url: &str, archive: Archive, range: &str) -> (String, serde_json::Value) {
    let store = format!("sqlite://{}", dir.join(format!("{name}.db")).display());
    let (in_file, flag) = match archive {
        Archive::None => (String::new(), Vec::new()),
        Archive::InFile(url) => (format!("archive_url = \"{url}\"\n"), Vec::new()),
        Archive::Flag(url) => (String::new(), vec!["--archive-url".to_owned(), url.to_owned()]),
    };
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!("[store]\nurl = \"{store}\"\n\n[binance]\nrest_url = \"{rest_url}\"\n{in_file}\n[connector]\nflush_interval_ms = 50\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_streamforge"))
        .args(["run", "--config", config.to_str().unwrap(), "--symbols", "BTCUSDT", "--time-range", range, "--json"])
        .args(flag)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (store, serde_json::from_slice(&out.stdout).unwrap())
}

/// The candles the run stored, in open-time order.
fn stored(rt: &tokio::runtime::Runtime, store: &str, summary: &serde_json::Value) -> Vec<Candle> {
    let collection = summary["symbols"][0]["collection"].as_str().unwrap().to_owned();
    rt.block_on(async {
        let db = streamforge::store::open(store).await.unwrap();
        db.candles(&collection, "BTCUSDT", i64::MIN, i64::MAX).await.unwrap()
    })
}

fn assert_stored_exactly(stored: &[Candle], recorded: &[FileCandle], what: &str) {
    let one_minute = "1m".parse().unwrap();
    let want: Vec<_> = recorded.iter().map(|f| fields(&f.candle("BTCUSDT", one_minute))).collect();
    let got: Vec<_> = stored.iter().map(fields).collect();
    let first_difference = got.iter().zip(&want).position(|(g, w)| g != w);
    assert_eq!((got.len(), first_difference), (want.len(), None), "{what}: every recorded candle once, as recorded");
}

/// The requests the replay server counted, from `GET /replay/stats`.
fn requests(rt: &tokio::runtime::Runtime, server: &ReplayServer, endpoint: &str) -> u64 {
    let url = format!("{}/replay/stats", server.rest_url());
    let body = rt.block_on(async { reqwest::get(url).await.unwrap().bytes().await.unwrap() });
    let stats: serde_json::Value = serde_json::from_slice(&body).unwrap();
    stats["requests"][endpoint].as_u64().unwrap_or(0)
}

fn start(rt: &tokio::runtime::Runtime, dir: &Path, faults: ReplayFaults) -> ReplayServer {
    rt.block_on(ReplayServer::start_dir(dir, "127.0.0.1:0", 0.0, faults)).unwrap()
}

#[test]
fn two_months_from_the_archive_and_a_rest_tail_store_exactly_the_recording_for_a_fraction_of_the_weight() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = recording();
    let work = tempfile::tempdir().unwrap();
    let range = "2021-04-02:2021-05-15";
    let recorded = recorded_between("2021-04-02", "2021-05-15");

    let server = start(&rt, data.path(), ReplayFaults::default());
    let (store, summary) =
        run(work.path(), "archive", &server.rest_url(), Archive::InFile(&server.archive_url()), range);
    assert_stored_exactly(&stored(&rt, &store, &summary), &recorded, "archive + REST");
    // April as one monthly file (the range holds all of it that was recorded), May's first 13 days
    // as daily files; 2021-05-14, the recording's "today", is not archived yet: REST's.
    let archive = &summary["symbols"][0]["archive"];
    assert_eq!(archive["files"], 14, "{archive}");
    assert_eq!(archive["missing"], serde_json::json!(["BTCUSDT-1m-2021-05-14.zip"]), "{archive}");
    assert_eq!(archive["rejected"], serde_json::json!([]));
    let tail = recorded.iter().filter(|c| c.open_time >= parse_date_or_time_ms("2021-05-14").unwrap()).count();
    assert_eq!(archive["records"], (recorded.len() - tail) as u64);
    assert_eq!(summary["symbols"][0]["loaded"], recorded.len() as u64);
    let archive_klines = requests(&rt, &server, "klines");
    assert_eq!(archive_klines, tail.div_ceil(1000) as u64, "REST pages only the tail ({tail} candles)");
    // Each file and its checksum once (together), and the tail day's, missing.
    assert_eq!(requests(&rt, &server, "archive"), 15 * 2);
    rt.block_on(server.stop());

    // The same range over REST alone, on a fresh server: the same candles, ~30 times the weight.
    let server = start(&rt, data.path(), ReplayFaults::default());
    let (store, summary) = run(work.path(), "rest", &server.rest_url(), Archive::None, range);
    assert_stored_exactly(&stored(&rt, &store, &summary), &recorded, "REST only");
    assert!(summary["symbols"][0].get("archive").is_none(), "no archive configured: {summary}");
    let rest_klines = requests(&rt, &server, "klines");
    assert_eq!(rest_klines, recorded.len().div_ceil(1000) as u64);
    assert_eq!(requests(&rt, &server, "archive"), 0);
    assert!(
        archive_klines * 10 < rest_klines,
        "klines requests: {archive_klines} with the archive, {rest_klines} without"
    );
    rt.block_on(server.stop());
}

/// The archive named with `run --archive-url` this time.
#[test]
fn a_corrupt_file_is_rejected_by_its_checksum_and_a_missing_day_comes_over_rest() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = recording();
    let work = tempfile::tempdir().unwrap();
    let faults = ReplayFaults {
        corrupt_archive: vec!["2021-05-03".into()],
        missing_archive: vec!["2021-05-06".into()],
        ..Default::default()
    };
    let server = start(&rt, data.path(), faults);
    let (store, summary) =
        run(work.path(), "faults", &server.rest_url(), Archive::Flag(&server.archive_url()), "2021-05-01:2021-05-10");
    // Nothing of the corrupt file is stored (its first candle's open was changed under the genuine
    // checksum): the day came over REST, like the missing one, and the store is the recording.
    let stored = stored(&rt, &store, &summary);
    assert_stored_exactly(&stored, &recorded_between("2021-05-01", "2021-05-10"), "around the faults");
    let archive = &summary["symbols"][0]["archive"];
    assert_eq!(archive["files"], 7, "{archive}");
    assert_eq!(archive["missing"], serde_json::json!(["BTCUSDT-1m-2021-05-06.zip"]));
    let rejected = archive["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{archive}");
    assert_eq!(rejected[0][0], "BTCUSDT-1m-2021-05-03.zip");
    assert!(rejected[0][1].as_str().unwrap().contains(".CHECKSUM"), "{archive}");
    // The corrupt file was downloaded three times (with its checksum each time) before it was
    // given up; each of the two days took two REST pages.
    assert_eq!(requests(&rt, &server, "archive"), (7 + 3 + 1) * 2);
    assert_eq!(requests(&rt, &server, "klines"), 4);
    rt.block_on(server.stop());
}

/// A file the exchange published broken (its checksum matches, a line half-way is no candle): what
/// came before the line is used, the file is rejected from there, and the rest of its day comes
/// over REST.
#[test]
fn a_file_unreadable_half_way_is_rejected_from_there_and_its_day_finished_over_rest() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = recording();
    let work = tempfile::tempdir().unwrap();
    let faults = ReplayFaults { unreadable_archive: vec!["2021-05-04".into()], ..Default::default() };
    let server = start(&rt, data.path(), faults);
    let (store, summary) =
        run(work.path(), "broken", &server.rest_url(), Archive::InFile(&server.archive_url()), "2021-05-01:2021-05-10");
    let recorded = recorded_between("2021-05-01", "2021-05-10");
    assert_stored_exactly(&stored(&rt, &store, &summary), &recorded, "around the broken file");
    let archive = &summary["symbols"][0]["archive"];
    let rejected = archive["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{archive}");
    assert_eq!(rejected[0][0], "BTCUSDT-1m-2021-05-04.zip");
    let day = recorded_between("2021-05-04", "2021-05-05").len();
    let why = rejected[0][1].as_str().unwrap();
    assert!(why.contains(&format!("line {}", day / 2 + 1)), "{why}");
    assert_eq!(archive["files"], 9, "{archive}");
    assert_eq!(archive["records"], (recorded.len() - (day - day / 2)) as u64, "{archive}");
    assert_eq!(requests(&rt, &server, "klines"), 1, "the rest of the day, one page");
    rt.block_on(server.stop());
}

/// `streamforge run --offline --archive`: the bundled aggregate trades (XRPETH, 2019-10-11 →
/// 10-13) from the replay server's archive for the two whole days, REST for the last.
#[test]
fn offline_aggregate_trades_come_from_the_archive_then_rest() {
    let work = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", work.path().join("trades.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_streamforge"))
        .args([
            "run",
            "--offline",
            "--kind",
            "aggTrades",
            "--symbols",
            "XRPETH",
            "--archive",
            "--store",
            &store,
            "--json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let recorded = common::recorded_agg_trades();
    let symbol = &summary["symbols"][0];
    assert_eq!(
        (symbol["loaded"].as_u64(), symbol["stored"].as_u64()),
        (Some(recorded.len() as u64), Some(recorded.len() as u64))
    );
    let archive = &symbol["archive"];
    assert_eq!(archive["files"], 2, "{archive}");
    assert_eq!(archive["missing"], serde_json::json!(["XRPETH-aggTrades-2019-10-13.zip"]));
    let before_last_day = parse_date_or_time_ms("2019-10-13").unwrap();
    let archived = recorded.iter().filter(|t| t["T"].as_i64().unwrap() < before_last_day).count();
    assert_eq!(archive["records"], archived as u64);
    // Stored once each, with the exchange's ids and values.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let collection = symbol["collection"].as_str().unwrap().to_owned();
    let trades = rt.block_on(async {
        let db = streamforge::store::open(&store).await.unwrap();
        db.trades(&collection, "XRPETH", i64::MIN, i64::MAX).await.unwrap()
    });
    let ids: Vec<i64> = trades.iter().map(|t| t.id).collect();
    let want: Vec<i64> = recorded.iter().map(|t| t["a"].as_i64().unwrap()).collect();
    assert_eq!(ids, want);
    let first = &recorded[0];
    assert_eq!(trades[0].price.to_string(), first["p"].as_str().unwrap());
    assert_eq!((trades[0].first_trade_id, trades[0].time), (first["f"].as_i64(), first["T"].as_i64().unwrap()));
}

/// `streamforge replay-server --corrupt-archive … --missing-archive …`: the files as Binance's
/// archive lays them out, read with the project's ZIP reader and checked by hand.
#[test]
fn the_replay_server_serves_the_archive_layout_with_injectable_faults() {
    let data = recording();
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamforge"))
        .args(["replay-server", "--data", data.path().to_str().unwrap(), "--addr", "127.0.0.1:0", "--speed", "0"])
        .args(["--corrupt-archive", "2021-05-03", "--missing-archive", "2021-05-06"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().rsplit_once("archive ").map(|(_, url)| url.to_owned()).unwrap_or_else(|| panic!("{line}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let get = |path: &str| {
        let url = format!("{base}/spot/{path}");
        rt.block_on(async {
            let resp = reqwest::get(url).await.unwrap();
            (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
        })
    };
    let file = |period: &str, name: &str| format!("{period}/klines/BTCUSDT/1m/BTCUSDT-1m-{name}.zip");

    // April, whole: the checksum file names the ZIP, the ZIP holds one CSV of every recorded
    // candle of April in Binance's 12 columns, 8 decimals, totals the recording lacks left empty.
    let (status, zip) = get(&file("monthly", "2021-04"));
    assert_eq!(status, 200);
    let (_, checksum) = get(&format!("{}.CHECKSUM", file("monthly", "2021-04")));
    assert_eq!(String::from_utf8(checksum).unwrap(), format!("{}  BTCUSDT-1m-2021-04.zip\n", sha256_hex(&zip)));
    let csv = String::from_utf8(unzip_csv(&zip).unwrap()).unwrap();
    let april = recorded_between("2021-04-01", "2021-05-01");
    assert_eq!(csv.lines().count(), april.len());
    let first: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(first.len(), 12);
    assert_eq!(first[0].parse::<i64>().unwrap(), april[0].open_time);
    assert_eq!(first[6].parse::<i64>().unwrap(), april[0].open_time + 59_999);
    for (text, value) in first[1..6].iter().zip(april[0].ohlcv) {
        assert_eq!(text.parse::<Decimal>().unwrap(), value);
        assert_eq!(text.split_once('.').unwrap().1.len(), 8, "{text}");
    }
    assert_eq!(&first[7..], ["", "", "", "", "0"]);

    // A day of May: there. The corrupt day: its ZIP does not match its checksum. The missing day,
    // the recording's last day, and the month that is not over: 404.
    assert_eq!(get(&file("daily", "2021-05-02")).0, 200);
    let (_, corrupt) = get(&file("daily", "2021-05-03"));
    let (_, said) = get(&format!("{}.CHECKSUM", file("daily", "2021-05-03")));
    assert_ne!(String::from_utf8(said).unwrap().split_whitespace().next().unwrap(), sha256_hex(&corrupt));
    for missing in [file("daily", "2021-05-06"), file("daily", "2021-05-14"), file("monthly", "2021-05")] {
        assert_eq!(get(&missing).0, 404, "{missing}");
    }
    assert_eq!(get("daily/klines/BTCUSDT/1m/not-a-file.zip").0, 404);
    child.kill().unwrap();
    child.wait().unwrap();
}
