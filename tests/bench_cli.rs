//! `streamforge bench` as a user runs it: every path on the bundled recording, on the embedded
//! defaults and through Apache Kafka, reported as JSON and as a table. What is asserted is what the
//! report must get right whatever the machine: how many records each path saw and stored (counted
//! here from the recording itself), and figures that are consistent — never how fast.

mod common;

use std::process::Command;

use streamforge::model::Interval;
use streamforge::replay::ReplayData;

fn bench(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_streamforge"))
        .env_remove("STREAMFORGE_LOG")
        .arg("bench")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The bundled recording's 1m candles, and its `@trade` + `@depth@100ms` messages.
fn recorded() -> (u64, u64) {
    let data = ReplayData::load(&common::sample_dir()).unwrap();
    let m: Interval = "1m".parse().unwrap();
    let candles = data.symbols.values().filter_map(|d| d.klines.get(&m)).map(|k| k.len() as u64).sum();
    let messages = data
        .symbols
        .iter()
        .map(|(s, d)| {
            let s = s.to_ascii_lowercase();
            let wanted = [format!("{s}@trade"), format!("{s}@depth@100ms")];
            d.ws.iter().filter(|r| wanted.iter().any(|w| **w == *r.stream)).count() as u64
        })
        .sum();
    (candles, messages)
}

fn assert_report(report: &serde_json::Value, bus: &str, asked: &[&str]) {
    let (candles, messages) = recorded();
    assert_eq!(report["bus"], bus);
    let paths = report["paths"].as_array().unwrap();
    let names: Vec<&str> = paths.iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(names, asked);
    for p in paths {
        let name = p["path"].as_str().unwrap();
        let (records, unit) = if name == "websocket" { (messages, "ws_messages") } else { (candles, "candles") };
        assert_eq!(p["records"], records, "{name}: {p}");
        assert_eq!(p["unit"], unit, "{name}");
        let stored = p["stored"].as_u64().unwrap();
        if name == "websocket" {
            // Every trade and depth event is stored (one record each), book snapshots beside them.
            assert!(stored > messages, "{name}: {p}");
        } else {
            assert_eq!(stored, candles, "{name}: every candle stored once");
        }
        let (p50, p99) = (p["p50_ms"].as_f64().unwrap(), p["p99_ms"].as_f64().unwrap());
        assert!(0.0 < p50 && p50 <= p99, "{name}: {p}");
        for field in ["seconds", "records_per_s", "peak_rss_mb", "cpu_us_per_record"] {
            assert!(p[field].as_f64().unwrap() > 0.0, "{name}: {field} in {p}");
        }
        let rate = p["records"].as_f64().unwrap() / p["seconds"].as_f64().unwrap();
        assert!((rate - p["records_per_s"].as_f64().unwrap()).abs() < 1e-6 * rate, "{name}: {p}");
    }
}

#[test]
fn bench_measures_every_path_on_the_embedded_defaults() {
    let out = bench(&["--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_report(&report, "memory://", &["rest", "connector", "websocket"]);
}

/// `--paths drain`: a node with a `[[connectors]]` route per symbol's topic stores every candle.
#[test]
fn bench_drains_one_topic_per_symbol() {
    let out = bench(&["--json", "--paths", "drain"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_report(&report, "memory://", &["drain"]);
}

#[test]
fn bench_prints_a_table_of_the_asked_paths() {
    let out = bench(&["--paths", "connector"]);
    let table = String::from_utf8_lossy(&out.stdout);
    let (candles, _) = recorded();
    let header = table.lines().nth(1).unwrap();
    for column in ["records/s", "p50 ms", "p99 ms", "peak RSS MB", "CPU µs/record"] {
        assert!(header.contains(column), "{table}");
    }
    let row = table.lines().find(|l| l.starts_with("connector")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.split_whitespace().nth(1) == Some(candles.to_string().as_str()), "{table}");
    assert!(!table.contains("\nrest") && !table.contains("\nwebsocket"), "{table}");
}

#[cfg(feature = "kafka")]
#[test]
fn bench_measures_every_path_through_kafka() {
    let Some(broker) = common::kafka::apache() else { return };
    let url = broker.bus_url();
    let out = bench(&["--json", "--bus", &url, "--paths", "rest,connector,websocket,drain"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_report(&report, &url, &["rest", "connector", "websocket", "drain"]);
}

#[test]
fn bench_rejects_an_interval_the_recording_lacks() {
    let out = Command::new(env!("CARGO_BIN_EXE_streamforge"))
        .args(["bench", "--paths", "rest", "--interval", "1w"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no 1w klines recorded"));
}

/// `--data DIR` with klines only (as the larger recordings are): the REST path loads DIR's candles
/// and the WebSocket path replays the bundled capture, which the report names.
#[test]
fn bench_takes_another_recording_and_the_bundled_capture_for_websocket() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(common::sample_dir().join("klines"), dir.path().join("klines")).unwrap();
    let data = dir.path().to_str().unwrap();
    let out = bench(&["--json", "--data", data, "--paths", "rest,websocket"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (candles, messages) = recorded();
    assert_eq!(report["data"], data);
    assert_eq!(report["capture"], "data/sample");
    assert_eq!(report["paths"][0]["records"], candles);
    assert_eq!(report["paths"][1]["records"], messages);
}
