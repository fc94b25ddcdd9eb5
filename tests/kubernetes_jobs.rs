//! Cluster mode (`queue_manager.workers = "kubernetes"`), configured from a TOML file: queue-manager
//! creates a seed-shaped `batch/v1` Job per task through the real `kube` client, follows the Jobs
//! on a watch and deletes them on `stop`; each Job runs the `streamforge` binary in its one-task
//! mode, and its worker reports over the real broker (Apache Kafka, started by `.ci/run`).
//!
//! No Kubernetes API server can be installed here: the API calls are served by the recorded
//! stand-in of `tests/common/kube_api.rs` on loopback, which also runs each Job's container as a
//! process (see its doc comment for exactly what it does and does not do).
//!
//! The Job objects equal the golden files in `tests/fixtures/kubernetes/` (queue id and its random
//! suffix written as `wf-QUEUE-ID` and `SUFFIX`). After an intended change of their shape, write
//! them again with `STREAMFORGE_BLESS=1` and review the diff.
#![cfg(all(feature = "kafka", feature = "kubernetes"))]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use streamforge::app::node::Node;

use common::kafka::Broker;
use common::kube_api::{FailRule, KubeApi};

/// On Apache Kafka (each pod's worker is one more client of the broker; tansu is covered by the
/// embedded-mode tests of the same protocol).
mod apache_kafka_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seed_scenario_1_runs_as_jobs_shaped_like_the_golden_files() {
        if let Some(broker) = crate::common::kafka::apache() {
            super::seed_scenario_1_runs_as_jobs_shaped_like_the_golden_files(&broker).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_job_is_replaced_and_stop_deletes_the_workflows_jobs() {
        if let Some(broker) = crate::common::kafka::apache() {
            super::a_failed_job_is_replaced_and_stop_deletes_the_workflows_jobs(&broker).await
        }
    }
}

struct Cluster {
    node: Node,
    api: KubeApi,
    base: String,
    http: reqwest::Client,
    store: String,
    pods: PathBuf,
}

/// The manager's node from `manager.toml` (cluster mode, the stand-in's URL), and the ConfigMap
/// its Jobs mount: the same broker, store and (offline) exchange.
async fn cluster(broker: &Broker, dir: &Path, fail: FailRule) -> Cluster {
    let (config_dir, pods) = (dir.join("configmap"), dir.join("pods"));
    std::fs::create_dir_all(&config_dir).unwrap();
    let api = KubeApi::start(Path::new(env!("CARGO_BIN_EXE_streamforge")), &config_dir, &pods, fail).await;
    let store = format!("sqlite://{}", dir.join("sf.db").display());
    let shared = format!(
        r#"
[bus]
url = "{bus}"
[bus.kafka]
flavor = "{flavor}"
[store]
url = "{store}"
[connector]
flush_interval_ms = 50
[loader]
page_limit = 500
"#,
        bus = broker.bus_url(),
        flavor = broker.flavor_setting(),
    );
    let manager = format!(
        r#"{shared}
[node]
id = "{id}"
admin_addr = "127.0.0.1:0"

[queue_manager]
workers = "kubernetes"

[kubernetes]
api_url = "{url}"
namespace = "stf"
image = "streamforge:test"
config_map = "streamforge-config"
secrets = ["streamforge-kafka"]
node_selector = {{ "streamforge-worker" = "true" }}
"#,
        id = common::unique_name("k8s-manager"),
        url = api.url,
    );
    let path = dir.join("manager.toml");
    std::fs::write(&path, manager).unwrap();
    let config = streamforge::config::load(Some(&path), std::iter::empty()).unwrap();
    let node = Node::start(config, Some(common::sample_dir())).await.unwrap();
    // The workers reach the same replay server the manager's offline node serves.
    let b = &node.ctx.config.binance;
    let map = format!("{shared}\n[binance]\nrest_url = \"{}\"\nws_url = \"{}\"\n", b.rest_url, b.ws_url);
    std::fs::write(config_dir.join("streamforge.toml"), map).unwrap();
    let base = format!("http://{}", node.admin_addr());
    Cluster { node, api, base, http: reqwest::Client::new(), store, pods }
}

impl Cluster {
    async fn get(&self, path: &str) -> Value {
        let text = self.http.get(format!("{}{path}", self.base)).send().await.unwrap().text().await.unwrap();
        serde_json::from_str(&text).unwrap()
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, serde_json::from_str(&r.text().await.unwrap()).unwrap())
    }

    async fn until_ended(&self, id: &str, timeout: Duration) -> Value {
        common::wait_until("the workflow to end", timeout, || async {
            let wf = self.get(&format!("/api/v1/workflows/{id}")).await;
            ["finished", "failed", "stopped"].contains(&wf["status"].as_str()?).then_some(wf)
        })
        .await
    }

    /// Every pod's log, for a failure's message.
    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(&self.pods).into_iter().flatten().flatten() {
            let log = std::fs::read_to_string(entry.path().join("log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            out += &format!(
                "--- {}\n{}\n",
                entry.file_name().to_string_lossy(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        out
    }
}

fn step<'a>(wf: &'a Value, name: &str) -> &'a Value {
    wf["steps"].as_array().unwrap().iter().find(|s| s["step"] == name).unwrap_or_else(|| panic!("no {name} in {wf}"))
}

fn history(wf: &Value) -> Vec<String> {
    wf["history"].as_array().unwrap().iter().map(|d| d["what"].as_str().unwrap_or_default().to_owned()).collect()
}

/// A Job as the golden files hold it: the workflow's id and its random suffix replaced.
fn normalized(job: &Value, queue_id: &str) -> Value {
    let suffix = queue_id.rsplit('-').next().unwrap();
    let text = job.to_string().replace(queue_id, "wf-QUEUE-ID").replace(&format!("-{suffix}-"), "-SUFFIX-");
    serde_json::from_str(&text).unwrap()
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubernetes").join(format!("{name}.json"))
}

fn env_of(job: &Value, name: &str) -> Option<String> {
    job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
        .and_then(|v| v["value"].as_str().map(str::to_owned))
}

/// Seed scenario 1 in cluster mode: one request, and every step is a Job whose pod runs the
/// binary's one-task mode — loaders and connectors per symbol, then the graph builder (and with
/// feature `trainer` the GNN trainer, the only Job that asks for a GPU). Every Job equals its
/// golden file; the counts are the recording's; a connector is told to drain once its loader's
/// Job is done (its start again, which the existing Job answers); every Job ends `Complete`.
async fn seed_scenario_1_runs_as_jobs_shaped_like_the_golden_files(broker: &Broker) {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(broker, dir.path(), Box::new(|_| None)).await;
    let mut steps = vec!["load", "store", "graph"];
    if cfg!(feature = "trainer") {
        steps.push("train");
    }
    let request = json!({
        "symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT"], "types": ["api_candles_1m"], "steps": steps,
        "graph": {"window": 60, "threshold": 0.3, "top_k": 2, "every": 60},
        "train": {"lookback": 4, "train": 1500, "validation": 300, "test": 300, "epochs": 2, "seeds": 1},
    });
    let (status, created) = c.post("/api/v1/workflows", &request).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let wf = c.until_ended(&id, Duration::from_secs(600)).await;
    assert_eq!(wf["status"], "finished", "{wf:#}\n{}", c.logs());

    // True counts: every recorded candle, stored once, reported by the loader's pod.
    for (i, (symbol, file)) in
        [("BTCUSDT", "BTC_USDT-1m.json.gz"), ("ETHUSDT", "ETH_USDT-1m.json.gz"), ("SOLUSDT", "SOL_USDT-1m.json.gz")]
            .into_iter()
            .enumerate()
    {
        let recorded = common::recorded_candles(file).len() as u64;
        let loader = &step(&wf, "load")["tasks"][i];
        assert_eq!((loader["symbol"].as_str(), loader["records_written"].as_u64()), (Some(symbol), Some(recorded)));
        let collection = format!("{}_api_candles_1m_2021_04_24", symbol.to_ascii_lowercase());
        let db = streamforge::store::open(&c.store).await.unwrap();
        assert_eq!(db.candles(&collection, symbol, i64::MIN, i64::MAX).await.unwrap().len() as u64, recorded);
    }
    #[cfg(feature = "trainer")]
    {
        let model = c.node.ctx.store.model("tgcn_1m_w60", None).await.unwrap().expect("a registered model");
        assert_eq!(model.version, 1);
    }

    let sent = c.api.created();
    let mut firsts: Vec<&Value> = Vec::new();
    for job in &sent {
        if !firsts.iter().any(|f| f["metadata"]["name"] == job["metadata"]["name"]) {
            firsts.push(job);
        }
    }
    let targets: Vec<&str> =
        firsts.iter().map(|j| j["metadata"]["labels"]["streamforge.io/target"].as_str().unwrap()).collect();
    let mut expected = vec!["arango-connector"; 3];
    expected.extend(["loader-producer"; 3]);
    expected.push("graph-builder");
    if cfg!(feature = "trainer") {
        expected.push("gnn-trainer");
    }
    assert_eq!(targets, expected, "connectors first, then loaders, then one Job per later step");
    let bless = std::env::var("STREAMFORGE_BLESS").is_ok_and(|v| v == "1");
    for job in &firsts {
        let job = normalized(job, &id);
        let name = job["metadata"]["name"].as_str().unwrap().to_owned();
        let path = golden(&name);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, serde_json::to_string_pretty(&job).unwrap() + "\n").unwrap();
            continue;
        }
        let want: Value = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (bless with STREAMFORGE_BLESS=1)", path.display())),
        )
        .unwrap();
        assert_eq!(
            job,
            want,
            "{name} differs from {}:\n{}",
            path.display(),
            serde_json::to_string_pretty(&job).unwrap()
        );
        let gpus = &job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"];
        let trainer = job["metadata"]["labels"]["streamforge.io/target"] == "gnn-trainer";
        assert_eq!(!gpus.is_null(), trainer, "{name}: a GPU for the trainer only");
        assert_eq!(job["spec"]["template"]["spec"]["tolerations"].is_array(), trainer, "{name}: the GPU toleration");
        let on_gpu_node = &job["spec"]["template"]["spec"]["nodeSelector"]["nvidia.com/gpu.present"];
        assert_eq!(on_gpu_node == "true", trainer, "{name}: the GPU Operator's node label for the trainer only");
    }
    // The drain orders: each connector's start again, now with `"drain": true`, which its
    // running Job answers (409 AlreadyExists) and its pod reads on `queue-control`.
    let drains: Vec<&Value> = sent
        .iter()
        .filter(|j| env_of(j, "JOB_EXTRA").is_some_and(|e| serde_json::from_str::<Value>(&e).unwrap()["drain"] == true))
        .collect();
    assert_eq!(drains.len(), 3, "one drain order per connector");
    assert!(drains.iter().all(|j| j["metadata"]["labels"]["streamforge.io/target"] == "arango-connector"));
    // Each pod's process exits on its own once its worker is done (the last, the trainer's, just
    // after the workflow finished); ended Jobs are left to their TTL, with their logs.
    let jobs = common::wait_until("every pod to exit", Duration::from_secs(30), || async {
        let jobs = c.api.jobs();
        jobs.values().all(|j| j["status"]["conditions"].is_array()).then_some(jobs)
    })
    .await;
    assert!(c.api.deleted().is_empty(), "{:?}", c.api.deleted());
    for (name, job) in &jobs {
        assert_eq!(job["status"]["conditions"][0]["type"], "Complete", "{name}: {job}\n{}", c.logs());
    }
    assert_eq!(jobs.len(), firsts.len());
    c.node.run_until(async {}).await.unwrap();
}

/// A Job whose pod never runs (the stand-in fails it, as a node would on an image that cannot be
/// pulled) is seen on the watch: queue-manager records why, and the task's next attempt is a new
/// Job (`…-a2`) whose pod runs. `stop` then deletes the workflow's running Job (found by its
/// `queue_id` label), and the pod's process is gone.
async fn a_failed_job_is_replaced_and_stop_deletes_the_workflows_jobs(broker: &Broker) {
    let dir = tempfile::tempdir().unwrap();
    let fail: FailRule = Box::new(|job| {
        (job["metadata"]["labels"]["streamforge.io/attempt"] == "1")
            .then(|| ("BackoffLimitExceeded".to_owned(), "Job has reached the specified backoff limit".to_owned()))
    });
    let c = cluster(broker, dir.path(), fail).await;
    let request = json!({"symbols": ["BTCUSDT"], "types": ["dummy"], "dummy": {"ticks": 1_000_000, "tick_ms": 50}});
    let (status, created) = c.post("/api/v1/workflows", &request).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let suffix = id.rsplit('-').next().unwrap().to_owned();
    let (first, second) =
        (format!("job-dummy-service-btcusdt-{suffix}-a1"), format!("job-dummy-service-btcusdt-{suffix}-a2"));
    let pod_log = c.pods.join(format!("{second}-pod")).join("log");
    common::wait_until("the second attempt's worker to run", Duration::from_secs(60), || async {
        let log = std::fs::read_to_string(&pod_log).unwrap_or_default();
        log.contains("Worker started on command").then_some(())
    })
    .await;
    let wf = c.get(&format!("/api/v1/workflows/{id}")).await;
    assert_eq!(wf["status"], "running", "{wf:#}");
    let task = &step(&wf, "load")["tasks"][0];
    assert_eq!(task["attempts"], 2, "{wf:#}");
    let decisions = history(&wf);
    let why = format!("Job {first} failed: BackoffLimitExceeded: Job has reached the specified backoff limit");
    assert!(decisions.iter().any(|d| d.contains("attempt 2") && d.contains(&why)), "{decisions:#?}");
    let pids = c.api.running_pids();
    assert_eq!(pids.len(), 1, "the second attempt's pod runs");

    let (status, stopped) = c.post(&format!("/api/v1/workflows/{id}/stop"), &json!({})).await;
    assert_eq!((status, stopped["status"].as_str()), (200, Some("stopped")), "{stopped}");
    common::wait_until("the running Job to be deleted", Duration::from_secs(20), || async {
        (c.api.deleted() == [second.clone()]).then_some(())
    })
    .await;
    let left: Vec<String> = c.api.jobs().into_keys().collect();
    assert_eq!(left, std::slice::from_ref(&first), "the failed Job stays, with its logs, until its TTL");
    common::wait_until("the pod's process to end", Duration::from_secs(20), || async {
        let alive = std::process::Command::new("kill").args(["-0", &pids[0].to_string()]).status().unwrap().success();
        (!alive).then_some(())
    })
    .await;
    c.node.run_until(async {}).await.unwrap();
}
