//! queue-manager through the doors users use: a node on embedded defaults (in-process bus, SQLite)
//! serving the recorded sample offline, workflows created, followed and stopped over the HTTP API
//! and with the `streamforge ctl` binary, and every kind of bad request answered with a 4xx and a
//! reason.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use streamforge::app::node::Node;
use streamforge::config::Config;
use streamforge::replay::{ReplayFaults, ReplayServer};

fn config(store: &str) -> Config {
    let mut c = common::test_config(store);
    c.node.admin_addr = "127.0.0.1:0".into();
    c
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn of(node: &Node) -> Api {
        Api { base: format!("http://{}", node.admin_addr()), http: reqwest::Client::new() }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let req = self.http.post(format!("{}{path}", self.base)).header("content-type", "application/json");
        self.send(req.body(body.to_string())).await
    }

    async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let req = self.http.post(format!("{}{path}", self.base)).header("content-type", content_type);
        self.send(req.body(body)).await
    }

    /// Creates the workflow `request` asks for and polls it until it has ended: (id, workflow).
    async fn run_to_end(&self, request: &Value) -> (String, Value) {
        let (status, created) = self.post("/api/v1/workflows", request).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        let wf = self.until_ended(&id).await;
        (id, wf)
    }

    /// Polls the workflow until it has ended; fails after 60 s showing where it stands.
    async fn until_ended(&self, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (status, wf) = self.get(&format!("/api/v1/workflows/{id}")).await;
            assert_eq!(status, 200, "{wf}");
            if ["finished", "failed", "stopped"].contains(&wf["status"].as_str().unwrap()) {
                return wf;
            }
            assert!(tokio::time::Instant::now() < deadline, "{id} did not end within 60 s: {wf:#}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn step<'a>(wf: &'a Value, name: &str) -> &'a Value {
    wf["steps"].as_array().unwrap().iter().find(|s| s["step"] == name).unwrap_or_else(|| panic!("no {name} in {wf}"))
}

/// Seed scenario 1 without the train step (not yet a workflow step): candles of two symbols
/// loaded, stored and turned into correlation graphs, from one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_loads_stores_and_builds_graphs_with_true_counts() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let node = Node::start(config(&url), Some(common::sample_dir())).await.unwrap();
    let api = Api::of(&node);
    let request = json!({
        "symbols": ["BTCUSDT", "ETHUSDT"], "types": ["api_candles_1m"], "steps": ["load", "store", "graph"],
        "graph": {"window": 60, "threshold": 0.3, "top_k": 3, "every": 30},
    });
    let (status, created) = api.post("/api/v1/workflows", &request).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wf-btcusdt-api_candles_1m-20210424-"), "{id}");
    assert_eq!(created["status"], "running");

    let wf = api.until_ended(&id).await;
    assert_eq!(wf["status"], "finished", "{wf:#}");
    for (symbol, file) in [("BTCUSDT", "BTC_USDT-1m.json.gz"), ("ETHUSDT", "ETH_USDT-1m.json.gz")] {
        let recorded = common::recorded_candles(file).len() as u64;
        for name in ["load", "store"] {
            let task = step(&wf, name)["tasks"].as_array().unwrap().iter().find(|t| t["symbol"] == symbol).unwrap();
            assert_eq!(task["records_written"].as_u64(), Some(recorded), "{name} of {symbol}: {task}");
            assert_eq!(task["status"], "finished");
        }
        let collection = format!("{}_api_candles_1m_2021_04_24", symbol.to_ascii_lowercase());
        let stored = node.ctx.store.candles(&collection, symbol, i64::MIN, i64::MAX).await.unwrap();
        assert_eq!(stored.len() as u64, recorded, "{symbol}: rows in {collection}");
    }
    assert_eq!(step(&wf, "load")["gaps"], 2, "the 2021-04-25 outage, once per symbol");
    let graph = step(&wf, "graph");
    assert_eq!(graph["status"], "finished");
    let snapshots = graph["records_written"].as_u64().unwrap();
    assert!(snapshots > 10, "{graph}");
    let history: Vec<&str> = wf["history"].as_array().unwrap().iter().map(|d| d["what"].as_str().unwrap()).collect();
    assert_eq!(history.first(), Some(&"created"));
    assert_eq!(history.last(), Some(&"finished: every step finished"));
    assert!(history.iter().any(|h| h.starts_with("finished: 8072 records")), "{history:?}");
    // The workflow's connectors have ended: their groups' lag is no longer reported.
    let groups = ["connector-btcusdt_api_candles_1m_2021_04_24", "connector-ethusdt_api_candles_1m_2021_04_24"];
    let listed = |lag: &Value| -> Vec<String> {
        let parts = lag["partitions"].as_array().unwrap();
        parts.iter().filter_map(|p| p["group"].as_str()).filter(|g| groups.contains(g)).map(str::to_owned).collect()
    };
    common::wait_until("the finished workflow's lag series gone", Duration::from_secs(30), || async {
        let (status, lag) = api.get("/api/v1/lag").await;
        (status == 200 && listed(&lag).is_empty()).then_some(())
    })
    .await;

    let (status, page) = api.get("/api/v1/workflows?status=finished").await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 1);
    assert_eq!(page["workflows"][0]["id"], id.as_str());
    let (_, running) = api.get("/api/v1/workflows?status=running").await;
    assert_eq!(running["total"], 0);
    // Stopping an ended workflow is a conflict, with the reason.
    let (status, body) = api.post(&format!("/api/v1/workflows/{id}/stop"), &json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["reason"].as_str().unwrap().contains("already finished"), "{body}");
    node.run_until(async {}).await.unwrap();
}

/// A workflow stopped while loading (the exchange answers slowly) ends as `stopped`, and its
/// workers leave the tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_workflow_and_its_workers() {
    let faults = ReplayFaults { rest_delay: Duration::from_millis(400), ..Default::default() };
    let replay = ReplayServer::start_dir(&common::sample_dir(), "127.0.0.1:0", 0.0, faults).await.unwrap();
    let mut c = config("sqlite::memory:");
    c.binance.rest_url = replay.rest_url();
    let node = Node::start(c, None).await.unwrap();
    let api = Api::of(&node);
    let request = json!({"symbols": ["BTCUSDT"], "types": ["api_candles_1m"], "time_range": "2021-04-24:2021-04-26"});
    let (status, created) = api.post("/api/v1/workflows", &request).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let workers = |tree: &Value| -> Vec<String> {
        let root = tree["children"].as_array().unwrap();
        let family = root.iter().find(|c| c["id"] == "workers").unwrap();
        family["children"]
            .as_array()
            .map_or(Vec::new(), |c| c.iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect())
    };
    common::wait_until("the workflow's loader in the tree", Duration::from_secs(10), || async {
        let (_, tree) = api.get("/api/v1/supervision").await;
        workers(&tree).iter().any(|w| w.contains(&id)).then_some(())
    })
    .await;

    let (status, stopped) = api.post(&format!("/api/v1/workflows/{id}/stop"), &json!({})).await;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(step(&stopped, "load")["status"], "stopped");
    common::wait_until("the workers to leave the tree", Duration::from_secs(10), || async {
        let (_, tree) = api.get("/api/v1/supervision").await;
        let left = workers(&tree);
        (left == ["worker-host"]).then_some(())
    })
    .await;
    let (_, stored) = api.get(&format!("/api/v1/workflows/{id}")).await;
    assert_eq!(stored["status"], "stopped");
    assert_eq!(stored["history"].as_array().unwrap().last().unwrap()["what"], "stopped: stop requested");
    node.run_until(async {}).await.unwrap();
    replay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_4xx_with_the_reason() {
    let node = Node::start(config("sqlite::memory:"), Some(common::sample_dir())).await.unwrap();
    let api = Api::of(&node);
    let reason = |body: &Value| body["reason"].as_str().unwrap_or_default().to_owned();
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "unknown symbol",
            json!({"symbols": ["NOPEUSDT"], "types": ["api_trades"]}),
            422,
            "not listed by the exchange",
        ),
        (
            "reversed range",
            json!({"symbols": ["BTCUSDT"], "types": ["api_trades"], "time_range": "2021-04-26:2021-04-24"}),
            422,
            "START before END",
        ),
        ("unknown type", json!({"symbols": ["BTCUSDT"], "types": ["api_candles_7m"]}), 422, "unknown type"),
        (
            "unknown step",
            json!({"symbols": ["BTCUSDT"], "types": ["api_trades"], "steps": ["fly"]}),
            422,
            "unknown step",
        ),
        (
            "unknown field",
            json!({"symbols": ["BTCUSDT"], "types": ["api_trades"], "colour": "red"}),
            400,
            "unknown field `colour`",
        ),
        ("wrong shape", json!({"symbols": "BTCUSDT", "types": ["api_trades"]}), 400, "invalid type"),
    ];
    for (what, body, want, needle) in cases {
        let (status, answer) = api.post("/api/v1/workflows", &body).await;
        assert_eq!(status, want, "{what}: {answer}");
        assert!(reason(&answer).contains(needle), "{what}: {answer}");
        assert!(answer["error"].is_string(), "{what}: {answer}");
    }
    let (status, answer) = api.post_raw("/api/v1/workflows", "application/json", "{\"symbols\": [").await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = api.post_raw("/api/v1/workflows", "text/plain", "{}").await;
    assert_eq!(status, 415, "{answer}");
    let huge = format!("{{\"symbols\": [\"{}\"], \"types\": []}}", "A".repeat(100_000));
    let (status, answer) = api.post_raw("/api/v1/workflows", "application/json", huge).await;
    assert_eq!(status, 413, "{answer}");
    let (status, answer) = api.get("/api/v1/workflows/wf-nope").await;
    assert_eq!((status, answer["error"].as_str()), (404, Some("not found")), "{answer}");
    let (status, answer) = api.post("/api/v1/workflows/wf-nope/stop", &json!({})).await;
    assert_eq!(status, 404, "{answer}");
    for query in ["status=done", "limit=0", "limit=x", "offset=-1", "colour=red"] {
        let (status, answer) = api.get(&format!("/api/v1/workflows?{query}")).await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert!(!reason(&answer).is_empty(), "{query}: {answer}");
    }
    let (status, answer) = api.post("/api/v1/ping", &json!({"target": "toaster"})).await;
    assert_eq!(status, 400, "{answer}");
    assert!(reason(&answer).contains("dummy-service"), "{answer}");
    node.run_until(async {}).await.unwrap();
}

fn ctl(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_streamforge"))
        .arg("ctl")
        .args(["--url", url])
        .args(args)
        .env_remove("STREAMFORGE_TOKEN")
        .output()
        .unwrap()
}

/// The `derive` step (issue 18), started with `ctl workflows start --steps load,store,derive
/// --derive 5m,1h`: after the 1m candles of BTCUSDT and ETHUSDT are stored, the candle deriver
/// stores their 5m and 1h candles in `candles_5m` and `candles_1h`, each equal to what the library
/// derives from the stored 1m candles (and none for the periods of the 2021-04-25 outage); the
/// step reports how many it stored. A request whose intervals do not fit the loaded candles is
/// refused (422, as every invalid workflow) naming each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_derive_step_stores_the_longer_candles_of_what_the_workflow_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let node = Node::start(config(&url), Some(common::sample_dir())).await.unwrap();
    let api = Api::of(&node);
    let base = format!("http://{}", node.admin_addr());
    let out = tokio::task::spawn_blocking(move || {
        ctl(
            &base,
            &[
                "workflows",
                "start",
                "--symbols",
                "BTCUSDT,ETHUSDT",
                "--types",
                "api_candles_1m",
                "--steps",
                "load,store,derive",
                "--derive",
                "5m,1h",
                "--json",
            ],
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let wf = api.until_ended(created["id"].as_str().unwrap()).await;
    assert_eq!(wf["status"], "finished", "{wf:#}");
    let derive = step(&wf, "derive");
    assert_eq!(derive["status"], "finished");
    let mut expected = 0;
    for symbol in ["BTCUSDT", "ETHUSDT"] {
        let collection = format!("{}_api_candles_1m_2021_04_24", symbol.to_ascii_lowercase());
        let one = node.ctx.store.candles(&collection, symbol, i64::MIN, i64::MAX).await.unwrap();
        for interval in ["5m", "1h"] {
            let until = one.last().unwrap().close_time + 1;
            let want = streamforge::model::derive::derive(&one, interval.parse().unwrap(), until).unwrap();
            let stored =
                node.ctx.store.candles(&format!("candles_{interval}"), symbol, i64::MIN, i64::MAX).await.unwrap();
            assert_eq!(stored, want, "{symbol} {interval}");
            expected += want.len() as u64;
        }
        let five = node.ctx.store.candles("candles_5m", symbol, i64::MIN, i64::MAX).await.unwrap();
        let outage = streamforge::model::parse_date_or_time_ms("2021-04-25T06:00Z").unwrap();
        assert!(five.iter().all(|c| c.open_time != outage), "{symbol}: no candle invented for the outage");
    }
    assert_eq!(derive["records_written"].as_u64(), Some(expected), "{derive}");

    let (status, refused) = api
        .post(
            "/api/v1/workflows",
            &json!({"symbols": ["BTCUSDT"], "types": ["api_candles_5m"], "steps": ["load", "store", "derive"], "derive": ["1m", "7m", "3d"]}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    let text = refused.to_string();
    assert!(text.contains("1m") && text.contains("7m") && text.contains("3d"), "every bad interval named: {text}");
    let (status, refused) = api
        .post(
            "/api/v1/workflows",
            &json!({"symbols": ["BTCUSDT"], "types": ["api_trades"], "steps": ["load", "store", "derive"]}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.to_string().contains("derive needs candles"), "{refused}");
}

/// The `verify` step (issue 18): a workflow that loads, stores and verifies BTCUSDT's 1m candles
/// finds nothing lost and records the real 2021-04-25 outage as confirmed empty at the exchange;
/// after rows are deleted behind the store's back (SQL), a workflow of the verify step alone asks
/// the exchange for them and stores them again, counting them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verify_step_repairs_stored_series_and_confirms_the_outage() {
    use streamforge::store::ConfirmedGap;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sf.db");
    let node = Node::start(config(&format!("sqlite://{}", db.display())), Some(common::sample_dir())).await.unwrap();
    let api = Api::of(&node);
    let request = json!({"symbols": ["BTCUSDT"], "types": ["api_candles_1m"], "steps": ["load", "store", "verify"]});
    let (_, wf) = api.run_to_end(&request).await;
    assert_eq!(wf["status"], "finished", "{wf:#}");
    let verify = step(&wf, "verify");
    assert_eq!(
        (verify["status"].as_str(), verify["records_written"].as_u64()),
        (Some("finished"), Some(0)),
        "{verify}"
    );
    let collection = "btcusdt_api_candles_1m_2021_04_24";
    let stored = node.ctx.store.candles(collection, "BTCUSDT", i64::MIN, i64::MAX).await.unwrap();
    let open_times: Vec<i64> = stored.iter().map(|c| c.open_time).collect();
    let outage: Vec<ConfirmedGap> = common::true_gaps(&open_times, 60_000)
        .into_iter()
        .map(|(first_missing, last_missing, _)| ConfirmedGap { first_missing, last_missing })
        .collect();
    assert!(streamforge::model::format_ms(outage[0].first_missing).starts_with("2021-04-25T04:"), "{outage:?}");
    assert_eq!(node.ctx.store.confirmed_gaps(collection, "BTCUSDT").await.unwrap(), outage);

    let (from, to) = (
        streamforge::model::parse_date_or_time_ms("2021-04-24T12:00Z").unwrap(),
        streamforge::model::parse_date_or_time_ms("2021-04-24T12:59Z").unwrap(),
    );
    let deleted = rusqlite::Connection::open(&db)
        .unwrap()
        .execute(&format!("DELETE FROM {collection} WHERE open_time BETWEEN ?1 AND ?2"), [from, to])
        .unwrap();
    assert_eq!(deleted, 60);
    let (_, wf) =
        api.run_to_end(&json!({"symbols": ["BTCUSDT"], "types": ["api_candles_1m"], "steps": ["verify"]})).await;
    assert_eq!(wf["status"], "finished", "{wf:#}");
    assert_eq!(step(&wf, "verify")["records_written"].as_u64(), Some(60), "{wf:#}");
    assert_eq!(node.ctx.store.candles(collection, "BTCUSDT", i64::MIN, i64::MAX).await.unwrap(), stored);

    let (status, refused) = api
        .post("/api/v1/workflows", &json!({"symbols": ["ETHUSDT"], "types": ["ws_depth"], "steps": ["verify"]}))
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.to_string().contains("verify repairs stored REST series"), "{refused}");
}

/// `ctl` against a running node: start prints JSON naming the workflow, show reports it, ping
/// prints the dummy's round trip, and a missing pong is an error with `--expect-pong`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_starts_shows_and_pings() {
    let mut c = config("sqlite::memory:");
    c.dummy.enabled = true;
    c.dummy.queue_id = "q-ctl".into();
    let node = Node::start(c, Some(common::sample_dir())).await.unwrap();
    let url = format!("http://{}", node.admin_addr());
    let u = url.clone();
    let out = tokio::task::spawn_blocking(move || {
        ctl(
            &u,
            &[
                "workflows",
                "start",
                "--symbols",
                "BTCUSDT",
                "--types",
                "api_candles_1m",
                "--steps",
                "load,store",
                "--json",
            ],
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let wf: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = wf["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wf-btcusdt-api_candles_1m-"), "{wf}");
    Api::of(&node).until_ended(&id).await;

    let (u, i) = (url.clone(), id.clone());
    let shown = tokio::task::spawn_blocking(move || ctl(&u, &["workflows", "show", &i])).await.unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains(&format!("{id}  finished")), "{text}");
    assert!(text.lines().any(|l| l.trim_start().starts_with("store") && l.contains("finished")), "{text}");

    let u = url.clone();
    let ping = tokio::task::spawn_blocking(move || ctl(&u, &["ping", "dummy", "--expect-pong"])).await.unwrap();
    let text = String::from_utf8_lossy(&ping.stdout);
    assert!(ping.status.success(), "{text}{}", String::from_utf8_lossy(&ping.stderr));
    let rtt: f64 = text
        .split("rtt ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no rtt in {text}"));
    assert!(text.contains("pong from dummy__q-ctl (q-ctl)") && rtt > 0.0, "{text}");

    let u = url.clone();
    let silent = tokio::task::spawn_blocking(move || {
        ctl(&u, &["ping", "graph-builder", "--expect-pong", "--timeout-ms", "300"])
    })
    .await
    .unwrap();
    assert_eq!(silent.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&silent.stderr).contains("no pong from graph-builder within 300 ms"));

    let u = url.clone();
    let listed = tokio::task::spawn_blocking(move || ctl(&u, &["workflows", "list", "--json"])).await.unwrap();
    let page: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let ids: BTreeSet<&str> = page["workflows"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap()).collect();
    assert!(ids.contains(id.as_str()), "{page}");
    node.run_until(async {}).await.unwrap();
}

/// `queue_manager.enabled = false` from the config file (and the environment, which wins): the
/// node runs no queue-manager and no worker host, and the workflow API says so with a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_configured_without_queue_manager_says_so() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(
        &mut file,
        b"[store]\nurl = \"sqlite::memory:\"\n[node]\nadmin_addr = \"127.0.0.1:0\"\n[queue_manager]\nenabled = true\n",
    )
    .unwrap();
    let env = vec![("STREAMFORGE__QUEUE_MANAGER__ENABLED".to_owned(), "false".to_owned())];
    let c = streamforge::config::load(Some(file.path()), env).unwrap();
    assert!(!c.queue_manager.enabled);
    let node = Node::start(c, None).await.unwrap();
    let api = Api::of(&node);
    let (status, body) = api.post("/api/v1/workflows", &json!({"symbols": ["BTCUSDT"], "types": ["api_trades"]})).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["reason"].as_str().unwrap().contains("queue-manager is not enabled"), "{body}");
    let (_, tree) = api.get("/api/v1/supervision").await;
    let ids: Vec<&str> = tree["children"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(!ids.contains(&"queue-manager") && !ids.contains(&"workers"), "{ids:?}");
    node.run_until(async {}).await.unwrap();
}

/// With `admin.token_file` (a mounted secret), mutating endpoints need the bearer token; reads
/// stay open; `ctl` sends the token from `STREAMFORGE_TOKEN`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_requests_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "tok-0123456789abcdef\n").unwrap();
    let mut c = config("sqlite::memory:");
    c.admin.token_file = Some(token_file.display().to_string());
    c.dummy.enabled = true;
    let node = Node::start(c, Some(common::sample_dir())).await.unwrap();
    let api = Api::of(&node);
    let body = json!({"symbols": ["BTCUSDT"], "types": ["api_candles_1m"], "steps": ["load"]});
    let (status, answer) = api.post("/api/v1/workflows", &body).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer["reason"].as_str().unwrap().contains("Authorization: Bearer"), "{answer}");
    let wrong = api.http.post(format!("{}/api/v1/workflows", api.base)).bearer_auth("tok-0123456789abcdeX");
    let (status, _) = api.send(wrong.header("content-type", "application/json").body(body.to_string())).await;
    assert_eq!(status, 401);
    // Refused before the body is read: a malformed body without a token is a 401, not a 400.
    let (status, _) = api.post_raw("/api/v1/workflows", "application/json", "{").await;
    assert_eq!(status, 401);
    let (status, _) = api.post("/api/v1/ping", &json!({"target": "dummy"})).await;
    assert_eq!(status, 401);
    let right = api.http.post(format!("{}/api/v1/workflows", api.base)).bearer_auth("tok-0123456789abcdef");
    let (status, created) = api.send(right.header("content-type", "application/json").body(body.to_string())).await;
    assert_eq!(status, 201, "{created}");
    let (status, _) = api.get("/api/v1/workflows").await;
    assert_eq!(status, 200, "reads are open unless admin.protect_reads");

    let url = format!("http://{}", node.admin_addr());
    let ping = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_streamforge"))
            .args(["ctl", "--url", &url, "ping", "dummy", "--expect-pong"])
            .env("STREAMFORGE_TOKEN", "tok-0123456789abcdef")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(ping.status.success(), "{}", String::from_utf8_lossy(&ping.stderr));
    node.run_until(async {}).await.unwrap();
}

/// A node whose workflow API would be reachable from other machines without a token does not start.
#[test]
fn an_open_api_on_a_public_address_is_refused_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_streamforge"))
        .args(["node", "--store", "sqlite::memory:", "--admin-addr", "0.0.0.0:0"])
        .env_remove("STREAMFORGE__ADMIN__TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reachable from other machines") && err.contains("admin.token_file"), "{err}");
}

/// `GET /api/v1/events` as `ctl events`: the server-sent events of one queue id as they come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_events_streams_the_events_of_one_queue_id() {
    let mut c = config("sqlite::memory:");
    c.dummy.enabled = true;
    c.dummy.queue_id = "q-sse".into();
    c.dummy.simulate_loading = true;
    c.dummy.tick_ms = 50;
    let node = Node::start(c, None).await.unwrap();
    let url = format!("http://{}", node.admin_addr());
    let out = tokio::task::spawn_blocking(move || {
        ctl(&url, &["events", "--queue-id", "q-sse", "--json", "--timeout-ms", "1500"])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let loading: Vec<u64> =
        events.iter().filter(|e| e["status"] == "loading").map(|e| e["records_written"].as_u64().unwrap()).collect();
    assert!(loading.len() >= 5, "{events:#?}");
    assert!(loading.windows(2).all(|w| w[1] > w[0]), "in order: {loading:?}");
    assert!(events.iter().all(|e| e["queue_id"] == "q-sse" && e["producer"] == "dummy__q-sse"), "{events:#?}");
    node.run_until(async {}).await.unwrap();
}

/// Every event on `queue-events` so far (read by a group of the test's own).
async fn all_events(node: &Node, group: &str) -> Vec<Value> {
    let mut events = node.ctx.bus.subscribe(group, streamforge::bus::topics::QUEUE_EVENTS).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let msgs = events.poll(1000, Duration::from_millis(200)).await.unwrap();
        if msgs.is_empty() {
            return seen;
        }
        seen.extend(msgs.iter().map(|m| serde_json::from_slice::<Value>(&m.payload).unwrap()));
    }
}

fn history(wf: &Value) -> Vec<String> {
    wf["history"].as_array().unwrap().iter().map(|d| d["what"].as_str().unwrap().to_owned()).collect()
}

/// A worker that hangs (a dummy gone silent) is detected after `stall_after_ms` and restarted;
/// the new one finishes the task. The decision is in the history and on `queue-events`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_worker_is_restarted_and_the_workflow_finishes() {
    let mut c = config("sqlite::memory:");
    c.queue_manager.stall_after_ms = 2000;
    let node = Node::start(c, Some(common::sample_dir())).await.unwrap();
    let api = Api::of(&node);
    let request = json!({
        "symbols": ["BTCUSDT"], "types": ["dummy"],
        "dummy": {"ticks": 6, "tick_ms": 50, "hang_after": 2, "hang_attempts": 1},
    });
    let (status, created) = api.post("/api/v1/workflows", &request).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let wf = api.until_ended(&id).await;
    assert_eq!(wf["status"], "finished", "{wf:#}");
    let task = &step(&wf, "load")["tasks"][0];
    assert_eq!((task["attempts"].as_u64(), task["status"].as_str()), (Some(2), Some("finished")), "{task}");
    let h = history(&wf);
    let restart = h.iter().find(|d| d.starts_with("restarting ")).unwrap_or_else(|| panic!("{h:?}"));
    assert!(restart.contains(&format!("dummy__{id}__btcusdt (attempt 2 of 3): no event for")), "{restart}");
    let metrics = reqwest::get(format!("{}/metrics", api.base)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("streamforge_worker_restarts_total{reason=\"stalled\"} 1"), "{metrics}");
    assert!(metrics.contains("streamforge_worker_restarts_total{reason=\"gave_up\"} 0"), "{metrics}");
    assert!(metrics.contains("streamforge_workflows_ended_total{status=\"finished\"} 1"), "{metrics}");
    assert!(metrics.contains("streamforge_workflows{status=\"running\"} "), "{metrics}");
    let events = all_events(&node, "test-hung").await;
    let said: Vec<&Value> =
        events.iter().filter(|e| e["queue_id"] == id.as_str() && e["status"] == "restarting").collect();
    assert_eq!(said.len(), 1, "{events:#?}");
    assert_eq!(said[0]["producer"], "queue-manager__streamforge-0");
    node.run_until(async {}).await.unwrap();
}

/// A worker that fails on every attempt ends its workflow as `failed` after `max_attempts`, with
/// the reason; each restart and the give-up are in the history and on `queue-events`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_keeps_failing_fails_the_workflow_with_the_reason() {
    let mut c = config("sqlite::memory:");
    c.queue_manager.max_attempts = 2;
    let node = Node::start(c, Some(common::sample_dir())).await.unwrap();
    let api = Api::of(&node);
    let request = json!({
        "symbols": ["ETHUSDT"], "types": ["dummy"], "dummy": {"ticks": 50, "tick_ms": 20, "fail_after": 1},
    });
    let (id, wf) = api.run_to_end(&request).await;
    assert_eq!(wf["status"], "failed", "{wf:#}");
    let message = wf["message"].as_str().unwrap();
    assert!(message.contains("Simulated failure after 1 ticks; gave up after 2 attempt(s)"), "{message}");
    let h = history(&wf);
    assert_eq!(h.iter().filter(|d| d.starts_with("restarting ")).count(), 1, "{h:?}");
    assert!(h.last().unwrap().starts_with("failed: dummy__"), "{h:?}");
    let events = all_events(&node, "test-failing").await;
    let mine: Vec<&Value> = events.iter().filter(|e| e["queue_id"] == id.as_str()).collect();
    assert!(mine.iter().any(|e| e["status"] == "restarting"), "{mine:#?}");
    assert!(
        mine.iter().any(|e| e["status"] == "error" && e["producer"] == "queue-manager__streamforge-0"),
        "the give-up is announced: {mine:#?}"
    );
    node.run_until(async {}).await.unwrap();
}

/// A request the exchange refuses — 1s candles of SOLUSDT, which the replay has only at 1m,
/// answered `400 {"code":-1120}` — fails its workflow at the first attempt with the
/// exchange's message, and no restart (it would get the same answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_exchange_refuses_fails_at_once_without_a_restart() {
    let node = Node::start(config("sqlite::memory:"), Some(common::sample_dir())).await.unwrap();
    let api = Api::of(&node);
    let request = json!({"symbols": ["SOLUSDT"], "types": ["api_candles_1s"], "time_range": "2021-04-24:2021-04-25"});
    let (_, wf) = api.run_to_end(&request).await;
    assert_eq!(wf["status"], "failed", "{wf:#}");
    let message = wf["message"].as_str().unwrap();
    assert!(message.contains("-1120") && message.contains("not retried"), "{message}");
    let h = history(&wf);
    assert!(!h.iter().any(|d| d.starts_with("restarting ")), "no restart: {h:?}");
    let load = step(&wf, "load")["tasks"][0].clone();
    assert_eq!((load["status"].as_str(), load["attempts"].as_u64()), (Some("failed"), Some(1)), "{load}");
    let metrics = reqwest::get(format!("http://{}/metrics", node.admin_addr())).await.unwrap().text().await.unwrap();
    let restarts: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("streamforge_worker_restarts_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(restarts, 0.0, "queue-manager restarted nothing");
    node.run_until(async {}).await.unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A node process on `port` with the store at `store`, loading from `rest_url`.
fn node_process(store: &str, port: u16, rest_url: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_streamforge"))
        .args(["node", "--store", store, "--admin-addr", &format!("127.0.0.1:{port}")])
        .env("STREAMFORGE__BINANCE__REST_URL", rest_url)
        .env("STREAMFORGE__LOADER__PAGE_LIMIT", "500")
        .env("STREAMFORGE__CONNECTOR__FLUSH_INTERVAL_MS", "50")
        .env_remove("STREAMFORGE_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// queue-manager SIGKILLed mid-workflow (its node and workers with it): the next node on the same
/// store picks the workflow up, starts its workers again and finishes it, with every recorded
/// candle stored exactly once and true counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_queue_manager_is_resumed_by_the_next_one_with_nothing_lost() {
    let faults = ReplayFaults { rest_delay: Duration::from_millis(400), ..Default::default() };
    let replay = ReplayServer::start_dir(&common::sample_dir(), "127.0.0.1:0", 0.0, faults).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("sf.db").display());
    let port = free_port();
    let api = Api { base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() };
    let ready = || async {
        common::wait_until("the node to be ready", Duration::from_secs(20), || async {
            let r = api.http.get(format!("{}/readyz", api.base)).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await
    };
    let mut first = node_process(&store, port, &replay.rest_url());
    ready().await;
    let request = json!({
        "symbols": ["BTCUSDT", "ETHUSDT"], "types": ["api_candles_1m"], "time_range": "2021-04-24:2021-04-26",
        "steps": ["load", "store"],
    });
    let (status, created) = api.post("/api/v1/workflows", &request).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    common::wait_until("some candles stored", Duration::from_secs(30), || async {
        let (_, wf) = api.get(&format!("/api/v1/workflows/{id}")).await;
        (step(&wf, "store")["records_written"].as_u64()? >= 1000).then_some(())
    })
    .await;
    first.kill().unwrap();
    first.wait().unwrap();

    let mut second = node_process(&store, port, &replay.rest_url());
    ready().await;
    let wf = api.until_ended(&id).await;
    second.kill().unwrap();
    second.wait().unwrap();
    replay.stop().await;

    assert_eq!(wf["status"], "finished", "{wf:#}");
    let h = history(&wf);
    assert!(h.iter().any(|d| d.starts_with("resumed by queue-manager on streamforge-0: 4 worker(s)")), "{h:?}");
    for (symbol, file) in [("BTCUSDT", "BTC_USDT-1m.json.gz"), ("ETHUSDT", "ETH_USDT-1m.json.gz")] {
        let stored = common::assert_sample_candles_stored_once(&store, symbol, file).await;
        for name in ["load", "store"] {
            let task = step(&wf, name)["tasks"].as_array().unwrap().iter().find(|t| t["symbol"] == symbol).unwrap();
            assert_eq!(task["records_written"].as_u64(), Some(stored), "{name} of {symbol}: {task}");
        }
    }
}

/// Seed scenario 2: trades and the order book of ETHUSDT in real time (the replay server's WebSocket
/// over the recorded capture). The workflow stays `running`, stores every trade with no hole in the
/// ids, and ends on `stop` with its workers gone from the tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_workflow_runs_until_stopped_and_stores_every_trade() {
    let node = Node::start(config("sqlite::memory:"), Some(common::sample_dir())).await.unwrap();
    let api = Api::of(&node);
    let (status, created) =
        api.post("/api/v1/workflows", &json!({"symbols": ["ETHUSDT"], "types": ["ws_trades", "ws_depth"]})).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let steps: Vec<&str> = created["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["load", "store"]);
    assert_eq!(step(&created, "load")["tasks"].as_array().unwrap().len(), 2, "a live loader per type");
    let store_tasks = step(&created, "store")["tasks"].as_array().unwrap();
    assert_eq!(store_tasks.len(), 1, "depth is published, not stored: {store_tasks:?}");
    let collection = store_tasks[0]["collection"].as_str().unwrap().to_owned();

    let recorded: Vec<i64> = common::recorded_capture_trades().iter().map(|t| t["t"].as_i64().unwrap()).collect();
    let stored = common::wait_until("every recorded trade stored", Duration::from_secs(60), || async {
        let trades = node.ctx.store.trades(&collection, "ETHUSDT", i64::MIN, i64::MAX).await.ok()?;
        (trades.len() >= recorded.len()).then_some(trades)
    })
    .await;
    let ids: Vec<i64> = stored.iter().map(|t| t.id).collect();
    assert_eq!(ids, recorded, "every trade once, in order");
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "no hole in the trade ids");
    let (_, wf) = api.get(&format!("/api/v1/workflows/{id}")).await;
    assert_eq!(wf["status"], "running", "a live workflow runs until stopped");

    let (status, stopped) = api.post(&format!("/api/v1/workflows/{id}/stop"), &json!({})).await;
    assert_eq!((status, stopped["status"].as_str()), (200, Some("stopped")), "{stopped}");
    common::wait_until("the live workers to leave the tree", Duration::from_secs(15), || async {
        let (_, tree) = api.get("/api/v1/supervision").await;
        let workers = tree["children"].as_array()?.iter().find(|c| c["id"] == "workers")?.clone();
        let left: Vec<String> =
            workers["children"].as_array()?.iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect();
        (left == ["worker-host"]).then_some(())
    })
    .await;
    node.run_until(async {}).await.unwrap();
}

/// Seed scenario 1 in full (feature `trainer`): one request loads, stores, builds graphs and
/// trains the GNN on three symbols' recorded candles; the model is saved and registered.
#[cfg(feature = "trainer")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_trains_and_registers_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let node = Node::start(config(&url), Some(common::sample_dir())).await.unwrap();
    let api = Api::of(&node);
    let artifacts = format!("file://{}", dir.path().join("models").display());
    let request = json!({
        "symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT"], "types": ["api_candles_1m"],
        "steps": ["load", "store", "graph", "train"],
        "graph": {"window": 60, "threshold": 0.3, "top_k": 2, "every": 60},
        "train": {"lookback": 4, "train": 1500, "validation": 300, "test": 300, "epochs": 2, "seeds": 1,
                  "artifacts": artifacts},
    });
    let (status, created) = api.post("/api/v1/workflows", &request).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let wf = api.until_ended(&id).await;
    assert_eq!(wf["status"], "finished", "{wf:#}");
    let train = step(&wf, "train");
    let message = train["tasks"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("Registered tgcn_1m_w60 v1 at file://"), "{message}");
    let model = node.ctx.store.model("tgcn_1m_w60", None).await.unwrap().expect("a registered model");
    assert_eq!(model.version, 1);
    assert!(message.contains(&model.uri), "{message} vs {}", model.uri);
    assert!(train["records_written"].as_u64().unwrap() > 2000, "samples: {train}");
    node.run_until(async {}).await.unwrap();
}
