//! The `streamforge` binary as a user runs it: exit codes, error messages, the admin endpoints of a
//! node, and a graceful stop on SIGTERM.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_streamforge"));
    c.env_remove("STREAMFORGE_LOG");
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn run_offline_prints_a_summary_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["run", "--offline", "--symbols", "BTCUSDT", "--time-range", "2021-04-25:2021-04-26", "--store"])
        .arg(format!("sqlite://{}", dir.path().join("x.db").display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("BTCUSDT"), "{stdout}");
    // 1440 minutes minus the 284-minute outage.
    assert!(stdout.contains("1156"), "{stdout}");
    assert!(stdout.contains("gap: 2021-04-25T04:01:00Z → 2021-04-25T08:44:00Z (284 candles missing"), "{stdout}");
    assert!(stdout.contains("records/s"), "{stdout}");
}

/// Runs `cmd` to its end, killing it and failing with `stuck` if that takes longer than `limit`.
fn output_within(mut cmd: Command, limit: Duration, stuck: &str) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{stuck}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// A symbol the exchange does not list is refused before any work starts, from `exchangeInfo`
/// (it used to be asked for, answered "Invalid symbol", and the loader restarted for ever).
#[test]
fn run_refuses_a_symbol_the_exchange_does_not_list() {
    let mut run = bin();
    run.args(["run", "--offline", "--symbols", "BTCUSDT,NOPEUSDT", "--store", "sqlite::memory:"]);
    let out = output_within(run, Duration::from_secs(60), "the run kept going");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not listed by the exchange (exchangeInfo): NOPEUSDT"), "{}", stderr(&out));
}

/// An exchange answer no retry can change (HTTP 400: the replay has no 5m klines of these
/// symbols) fails the run at once with the exchange's message, and its workflow is recorded as
/// failed — no restarts with growing backoff for ever.
#[test]
fn a_request_the_exchange_refuses_fails_the_run_instead_of_being_retried_for_ever() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let mut run = bin();
    run.args(["run", "--offline", "--symbols", "BTCUSDT", "--interval", "5m", "--store"])
        .arg(format!("sqlite://{}", db.display()));
    let out = output_within(run, Duration::from_secs(60), "the refused backfill was retried");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("BTCUSDT:") && err.contains("HTTP 400") && err.contains("no 5m klines"), "{err}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let statuses = rt.block_on(async {
        let store = streamforge::store::open(&format!("sqlite://{}", db.display())).await.unwrap();
        let all = streamforge::store::WorkflowQuery { status: None, limit: 10, offset: 0 };
        let page = store.workflows(&all).await.unwrap();
        page.workflows.into_iter().map(|w| w.status.as_str().to_owned()).collect::<Vec<_>>()
    });
    assert_eq!(statuses, ["failed"]);
}

/// A bus budget (`bus.memory_bytes`, from the config file) far below what one connector batch
/// holds does not stall the backfill: while the loader waits for space, the connectors write and
/// commit their partial batches at once instead of waiting out a ten-minute flush interval.
#[test]
fn a_small_bus_budget_makes_connectors_commit_early_instead_of_stalling() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("small-bus.toml");
    std::fs::write(
        &config,
        "[bus]\nmemory_bytes = 1048576\n[connector]\nbatch_size = 100000\nflush_interval_ms = 600000\n",
    )
    .unwrap();
    let mut run = bin();
    run.args(["run", "--offline", "--json", "--config"])
        .arg(&config)
        .arg("--store")
        .arg(format!("sqlite://{}", dir.path().join("x.db").display()));
    let out = output_within(run, Duration::from_secs(120), "the backfill stalled on a full bus");
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let symbols = summary["symbols"].as_array().unwrap();
    let total: u64 = symbols.iter().map(|s| s["stored"].as_u64().unwrap()).sum();
    // Each candle costs the budget its 64-byte overhead and a bus record of over 100 bytes (its
    // symbol, times and nine numbers as JSON): more than the budget passed.
    assert!(total * (64 + 100) > 1 << 20, "{total} candles would have fit the budget");
    for s in symbols {
        assert_eq!(s["stored"], s["loaded"], "{s}");
    }
}

/// `--data DIR` alone replays the recording (it used to be ignored without `--offline`, and the
/// command went to live Binance). Binance's address is set to a closed loopback port, so the old
/// behaviour fails here instead of leaving the machine.
#[test]
fn data_implies_offline() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .env("STREAMFORGE__BINANCE__REST_URL", "http://127.0.0.1:9")
        .args(["run", "--symbols", "BTCUSDT", "--time-range", "2021-04-25:2021-04-26", "--data"])
        .arg(common::sample_dir())
        .arg("--store")
        .arg(format!("sqlite://{}", dir.path().join("x.db").display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1156"), "the recorded candles were loaded: {stdout}");
}

#[test]
fn node_exits_non_zero_when_its_tree_gives_up() {
    let out = bin()
        .args([
            "dummy",
            "--fail-after",
            "1",
            "--tick-ms",
            "5",
            "--store",
            "sqlite::memory:",
            "--admin-addr",
            "127.0.0.1:0",
        ])
        .env("STREAMFORGE__SUPERVISION__MAX_RESTARTS", "2")
        .env("STREAMFORGE__SUPERVISION__BACKOFF_MIN_MS", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("giving up"), "{err}");
    assert!(err.contains("Restart intensity exceeded"), "{err}");
}

/// `[dummy]` from the file is the dummy's setting; each flag overrides its key, and the flags are
/// applied before validation, so `--admin-addr` mends the file's bad address.
#[test]
fn dummy_flags_override_the_files_dummy_section_and_mend_bad_values() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "[node]\nadmin_addr = \"not-an-address\"\n[dummy]\nfail_after = 1\ntick_ms = 3600000").unwrap();
    let mut child = bin()
        .args(["dummy", "--tick-ms", "5", "--store", "sqlite::memory:", "--admin-addr", "127.0.0.1:0", "--config"])
        .arg(file.path())
        .env("STREAMFORGE__SUPERVISION__MAX_RESTARTS", "2")
        .env("STREAMFORGE__SUPERVISION__BACKOFF_MIN_MS", "0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // With the file's hour-long tick the dummy would not fail for an hour.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("--tick-ms 5 did not override dummy.tick_ms = 3600000 of the file");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(1), "fail_after = 1 of the file: {}", stderr(&out));
    assert!(stderr(&out).contains("giving up"), "{}", stderr(&out));
}

#[test]
fn bad_config_lists_every_problem_and_exits_2() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "[connector]\nbatch_size = 0\nflush_interval = 5\n[loader]\npage_limit = 5000").unwrap();
    let out = bin()
        .args(["node", "--config"])
        .arg(file.path())
        .env("STREAMFORGE__NODE__ADMIN_ADDR", "not-an-address")
        .env("TYPE", "api_candles_7m")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for needle in [
        "flush_interval",
        "page_limit",
        "admin_addr",
        "job.type (TYPE)",
        "job.symbol (SYMBOL)",
        "job.time_range (TIME_RANGE)",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
}

#[test]
fn bad_arguments_say_what_is_wrong_and_exit_2() {
    for (args, needle) in [
        (vec!["run", "--offline", "--interval", "2m"], "--interval"),
        (vec!["run", "--offline", "--start", "yesterday"], "--start"),
        (vec!["run", "--offline", "--time-range", "2021-04-26:2021-04-25"], "--time-range"),
        (vec!["run", "--symbols", "BTCUSDT"], "--start"),
        (vec!["run", "--offline", "--data", "/nonexistent/folder"], "not found"),
        (vec!["run", "--frobnicate"], "--frobnicate"),
    ] {
        let out = bin().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn node_serves_health_readiness_and_metrics_and_stops_on_sigterm() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = bin()
        .args(["node", "--offline", "--log-json", "--store", "sqlite::memory:", "--admin-addr", &addr])
        .env("SYMBOL", "ETHUSDT")
        .env("TYPE", "api_candles_1m")
        .env("TIME_RANGE", "2021-04-24:2021-04-25")
        .env("STREAMFORGE__DUMMY__ENABLED", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = rt.block_on(async {
        loop {
            assert!(Instant::now() < deadline, "node did not become ready");
            if let Ok(r) = reqwest::get(format!("{base}/readyz")).await {
                if r.status().as_u16() == 200 {
                    let m = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
                    // Ready, and the job's 1440 candles have gone through the connector.
                    if m.contains("streamforge_records_out_total{actor=\"connector\"} 1440") {
                        break m;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert!(metrics.contains("streamforge_batch_latency_seconds_bucket"), "{metrics}");
    assert!(metrics.contains("streamforge_actor_up{actor=\"dummy\"} 1"), "{metrics}");
    rt.block_on(async {
        let body = reqwest::get(format!("{base}/api/v1/supervision")).await.unwrap().text().await.unwrap();
        let tree: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!((tree["id"].as_str(), tree["strategy"].as_str()), (Some("streamforge-0"), Some("one_for_one")));
        let families: Vec<&str> =
            tree["children"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(families, ["admin", "connectors", "loaders", "workers", "queue-manager", "dummies"], "start order");
        let connectors = &tree["children"][1];
        assert_eq!(connectors["kind"], "supervisor");
        // The job's connectors: the group's partition assigner, then one connector per partition
        // it was assigned (this node is the group's only member, so all of them).
        let group = &connectors["children"][0];
        assert_eq!(group["id"], "connectors:ethusdt_api_candles_1m_2021_04_24");
        let members: Vec<(&str, &str, &str)> = group["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["id"].as_str().unwrap(), c["kind"].as_str().unwrap(), c["state"].as_str().unwrap()))
            .collect();
        let partitions = streamforge::config::Config::default().bus.partitions;
        assert_eq!(members.len(), 1 + partitions as usize, "{members:?}");
        assert_eq!(members[0], ("assigner:ethusdt_api_candles_1m_2021_04_24", "assigner", "running"));
        for (p, (id, kind, state)) in members[1..].iter().enumerate() {
            assert_eq!(*id, format!("connector:ethusdt_api_candles_1m_2021_04_24:p{p}"));
            assert_eq!((*kind, *state), ("connector", "running"));
        }
        let connector = &group["children"][1];
        assert_eq!(connector["restarts"], 0);
        assert!(connector["up_since_ms"].as_i64().unwrap() > 0);
        let loader = &tree["children"][2]["children"][0];
        assert_eq!(
            (loader["kind"].as_str(), loader["state"].as_str()),
            (Some("loader"), Some("stopped")),
            "finished its job"
        );
        let h = reqwest::get(format!("{base}/healthz")).await.unwrap();
        assert_eq!(h.status().as_u16(), 200);
        let missing = reqwest::get(format!("{base}/nope")).await.unwrap();
        assert_eq!(missing.status().as_u16(), 404);
        assert!(missing.text().await.unwrap().contains("/metrics"));
    });
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "graceful stop exits 0");
    let mut logs = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut logs).unwrap();
    let first = logs.lines().next().unwrap();
    let parsed: serde_json::Value = serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert!(parsed["message"].is_string() || parsed["fields"].is_object(), "{first}");
    assert!(logs.contains("Shutdown requested"), "{logs}");
}
