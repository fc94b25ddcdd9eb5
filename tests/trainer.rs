//! The GNN trainer (feature `trainer`, burn's CPU backend): the graph convolution against a hand
//! computation, learning on a task only the graph can solve (a sanity check, not the
//! evaluation), reproducibility, saving and loading (identical predictions; clear errors for a
//! missing, corrupt or mismatched model) through `file://` and through `s3://` against a real
//! S3-protocol server (moto from PyPI, started here; reported as skipped where it cannot run).
#![cfg(feature = "trainer")]

mod common;

use std::process::{Child, Command, Stdio};

use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use burn::nn::LinearConfig;
use burn::tensor::{Tensor, TensorData};
use streamforge::trainer::artifacts::{Artifacts, ModelConfig, FORMAT};
use streamforge::trainer::dataset::{Dataset, Sample};
use streamforge::trainer::evaluate::{evaluate, EvalConfig};
use streamforge::trainer::fit::{batch, fit, predict, FitConfig, GraphUse, Scaler};
use streamforge::trainer::model::{graph_conv, TemporalGcn};
use streamforge::trainer::split::SplitConfig;

type B = Flex;
type AB = Autodiff<Flex>;

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec().unwrap()
}

#[test]
fn a_graph_convolution_equals_the_hand_computation() {
    let device = Default::default();
    // Three nodes, edges 0–1 (weight −0.5: the sign does not enter Â) and 1–2 (0.25).
    let mut samples = vec![Sample {
        time: 0,
        features: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        edges: vec![(0, 1, -0.5), (1, 0, -0.5), (1, 2, 0.25), (2, 1, 0.25)],
        next_return: vec![0.01, -0.01, 0.0],
    }];
    samples[0].next_return[2] = f32::NAN;
    let ds = Dataset {
        symbols: vec!["A".into(), "B".into(), "C".into()],
        feature_names: vec!["f0".into(), "f1".into()],
        lookback: 1,
        step_ms: 1,
        samples,
        window: 2,
    };
    let unit = Scaler { mean: vec![0.0, 0.0], std: vec![1.0, 1.0] };
    let b = batch(&ds, &[0], &unit, &GraphUse::Graph);
    // Ã = |W| + I, degrees 1.5, 1.75, 1.25, Â = D^-1/2 Ã D^-1/2.
    let d = [1.5f32, 1.75, 1.25];
    let at = [[1.0, 0.5, 0.0], [0.5, 1.0, 0.25], [0.0, 0.25, 1.0]];
    let mut want_a = Vec::new();
    for i in 0..3 {
        for j in 0..3 {
            want_a.push(at[i][j] / (d[i] * d[j]).sqrt());
        }
    }
    for (got, want) in b.a.iter().zip(&want_a) {
        assert!((got - want).abs() < 1e-6, "Â: {:?} vs {want_a:?}", b.a);
    }
    assert_eq!((b.labels.clone(), b.mask.clone()), (vec![1.0, 0.0, 0.0], vec![1.0, 1.0, 0.0]), "unknown label masked");

    // Â X W + b with W = [[1, 0], [0, -1]] (2 → 2), b = [0.5, 0].
    let mut w = LinearConfig::new(2, 2).init::<B>(&device);
    w.weight = Param::from_tensor(Tensor::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, -1.0], [2, 2]), &device));
    w.bias = Some(Param::from_tensor(Tensor::from_data(TensorData::new(vec![0.5f32, 0.0], [2]), &device)));
    let a = Tensor::<B, 3>::from_data(TensorData::new(b.a.clone(), [1, 3, 3]), &device);
    let x = Tensor::<B, 3>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [1, 3, 2]), &device);
    let got = values(graph_conv(a, x, &w));
    let xs = [[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]];
    for i in 0..3 {
        let ax: Vec<f32> = (0..2).map(|k| (0..3).map(|j| want_a[i * 3 + j] * xs[j][k]).sum()).collect();
        let want = [ax[0] + 0.5, -ax[1]];
        for k in 0..2 {
            assert!((got[i * 2 + k] - want[k]).abs() < 1e-5, "node {i}: {got:?}");
        }
    }
}

/// Two communities of 4 nodes; a node's label is the sign of the sum of its neighbours' first
/// feature at the last step — invisible without the graph (its own features are independent of
/// it).
fn community_task(samples: usize) -> Dataset {
    let (n, t, f) = (8usize, 2usize, 2usize);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    };
    let mut edges = Vec::new();
    for i in 0..n {
        for j in 0..n {
            if i != j && i / 4 == j / 4 {
                edges.push((i as u16, j as u16, 0.8));
            }
        }
    }
    let samples = (0..samples)
        .map(|s| {
            let features: Vec<f32> = (0..t * n * f).map(|_| rand()).collect();
            let last = |node: usize| features[((t - 1) * n + node) * f];
            let next_return = (0..n)
                .map(|i| {
                    let sum: f32 = (0..n).filter(|&j| j != i && j / 4 == i / 4).map(last).sum();
                    if sum > 0.0 {
                        0.01
                    } else {
                        -0.01
                    }
                })
                .collect();
            Sample { time: s as i64 * 1000, features, edges: edges.clone(), next_return }
        })
        .collect();
    Dataset {
        symbols: (0..n).map(|i| format!("S{i}")).collect(),
        feature_names: vec!["ret_1".into(), "other".into()],
        lookback: t,
        step_ms: 1000,
        samples,
        window: 2,
    }
}

fn accuracy(ds: &Dataset, samples: &[usize], p: &[Vec<f32>]) -> f64 {
    let (mut right, mut all) = (0, 0);
    for (k, &s) in samples.iter().enumerate() {
        for (node, score) in p[k].iter().enumerate() {
            right += usize::from((*score > 0.5) == ds.samples[s].label(node).unwrap());
            all += 1;
        }
    }
    right as f64 / all as f64
}

fn small_fit(epochs: usize, seed: u64) -> FitConfig {
    FitConfig { hidden: 16, epochs, patience: epochs, batch_size: 16, learning_rate: 0.01, seed }
}

#[test]
fn the_network_learns_a_task_only_the_graph_can_solve() {
    let device = Default::default();
    let ds = community_task(600);
    let (train, val, test): (Vec<usize>, Vec<usize>, Vec<usize>) =
        ((0..400).collect(), (400..500).collect(), (500..600).collect());
    let scaler = Scaler::fit(&ds, &train);
    let init = |d: &_| TemporalGcn::<AB>::new(2, 2, 16, 1, d);
    let (with_graph, log) =
        fit::<AB, _>(init, &ds, &train, &val, &scaler, &GraphUse::Graph, &small_fit(30, 1), &device);
    assert!(log.train_loss.last().unwrap() < &(log.train_loss[0] * 0.7), "the loss falls: {:?}", log.train_loss);
    let (alone, _) = fit::<AB, _>(init, &ds, &train, &val, &scaler, &GraphUse::Identity, &small_fit(30, 1), &device);
    let acc_graph = accuracy(&ds, &test, &predict(&with_graph, &ds, &test, &scaler, &GraphUse::Graph, &device));
    let acc_alone = accuracy(&ds, &test, &predict(&alone, &ds, &test, &scaler, &GraphUse::Identity, &device));
    assert!(acc_graph > 0.8, "with the graph: {acc_graph}");
    assert!(acc_alone < 0.65, "without it the task is guesswork: {acc_alone}");
}

#[test]
fn two_cpu_runs_give_identical_metrics() {
    let device = Default::default();
    let ds = community_task(220);
    let cfg = EvalConfig {
        split: SplitConfig { train: 100, validation: 30, test: 30, purge: 3 },
        fit: small_fit(3, 11),
        seeds: 2,
    };
    let first = evaluate::<AB>(&ds, &cfg, &device, |_, _, _| {});
    let second = evaluate::<AB>(&ds, &cfg, &device, |_, _, _| {});
    assert_eq!(first.folds.len(), 2);
    assert_eq!(first.rows, second.rows, "a seed fixes initialisation and data order");
    let gnn = first.overall("gnn").unwrap();
    assert!(gnn.accuracy > first.overall("majority").unwrap().accuracy, "{first}");
}

fn trained() -> (TemporalGcn<B>, Dataset, Scaler) {
    let device = Default::default();
    let ds = community_task(120);
    let train: Vec<usize> = (0..80).collect();
    let val: Vec<usize> = (80..100).collect();
    let scaler = Scaler::fit(&ds, &train);
    let init = |d: &_| TemporalGcn::<AB>::new(2, 2, 8, 1, d);
    let (model, _) = fit::<AB, _>(init, &ds, &train, &val, &scaler, &GraphUse::Graph, &small_fit(2, 3), &device);
    (model, ds, scaler)
}

fn config_of(ds: &Dataset, scaler: &Scaler, hidden: usize) -> ModelConfig {
    ModelConfig {
        format: FORMAT,
        name: "tgcn_test".into(),
        version: 1,
        symbols: ds.symbols.clone(),
        feature_names: ds.feature_names.clone(),
        interval: "1h".into(),
        lookback: ds.lookback,
        hidden,
        graph_window: 2,
        graph_min_periods: 2,
        graph_threshold: 0.5,
        graph_top_k: 3,
        scaler: scaler.clone(),
        fit: small_fit(2, 3),
        trained_from: 0,
        trained_to: 79_000,
    }
}

async fn save_and_load_round_trip(artifacts: &Artifacts) {
    let device = Default::default();
    let (model, ds, scaler) = trained();
    let config = config_of(&ds, &scaler, 8);
    let url = artifacts.save(&model, &config, &serde_json::json!({"ok": true}), "table").await.unwrap();
    assert!(url.ends_with("tgcn_test/1"), "{url}");
    let (loaded, got_config) = artifacts.load::<B>("tgcn_test", 1, &device).await.unwrap();
    assert_eq!(got_config, config);
    let test: Vec<usize> = (100..120).collect();
    let before = predict(&model, &ds, &test, &scaler, &GraphUse::Graph, &device);
    let after = predict(&loaded, &ds, &test, &scaler, &GraphUse::Graph, &device);
    assert_eq!(before, after, "the loaded model predicts exactly what the saved one did");
}

#[tokio::test]
async fn a_saved_model_loads_and_predicts_identically_and_bad_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = Artifacts::open(&format!("file://{}", dir.path().display()), &Default::default()).unwrap();
    save_and_load_round_trip(&artifacts).await;
    let device = Default::default();
    let folder = dir.path().join("tgcn_test/1");

    let missing = artifacts.load::<B>("tgcn_test", 2, &device).await.err().unwrap().to_string();
    assert!(missing.contains("tgcn_test/2/config.json"), "{missing}");

    // A config that describes another network than the weights hold.
    let (_, ds, scaler) = trained();
    let other = serde_json::to_string(&config_of(&ds, &scaler, 32)).unwrap();
    std::fs::write(folder.join("config.json"), other).unwrap();
    let mismatch = artifacts.load::<B>("tgcn_test", 1, &device).await.err().unwrap().to_string();
    assert!(mismatch.contains("model.mpk") && mismatch.contains("32 hidden units"), "{mismatch}");

    std::fs::write(folder.join("config.json"), serde_json::to_string(&config_of(&ds, &scaler, 8)).unwrap()).unwrap();
    std::fs::write(folder.join("model.mpk"), b"not a model").unwrap();
    let corrupt = artifacts.load::<B>("tgcn_test", 1, &device).await.err().unwrap().to_string();
    assert!(corrupt.contains("model.mpk") && corrupt.contains("not a burn record"), "{corrupt}");

    std::fs::write(folder.join("config.json"), "{\"format\": 99}").unwrap();
    let foreign = artifacts.load::<B>("tgcn_test", 1, &device).await.err().unwrap().to_string();
    assert!(foreign.contains("config.json"), "{foreign}");
}

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_round_trip_through_a_real_s3_server() {
    if !common::python_has("moto.server") {
        return common::missing("python3 with moto (pip install \"moto[server]\") for the S3 artifact test");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("python3")
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _moto = Moto(child);
    let endpoint = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    common::wait_until("moto listening", std::time::Duration::from_secs(30), || async {
        http.put(format!("{endpoint}/models")).send().await.ok().filter(|r| r.status().is_success()).map(drop)
    })
    .await;
    let options = [
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec();
    let artifacts = Artifacts::open_with("s3://models/streamforge", options).unwrap();
    save_and_load_round_trip(&artifacts).await;
    // The same through `artifacts.s3_credentials_dir` of a TOML file: one file per setting, as a
    // mounted secret lays them out (deploy/overlays/prod/worker.toml); the endpoint is among them,
    // so without the folder the client would not find the server.
    let secret = tempfile::tempdir().unwrap();
    for (file, value) in [
        ("access_key_id", "test"),
        ("secret_access_key", "test"),
        ("endpoint", endpoint.as_str()),
        ("region", "us-east-1"),
        ("allow_http", "true"),
        ("virtual_hosted_style_request", "false"),
    ] {
        std::fs::write(secret.path().join(file), format!("{value}\n")).unwrap();
    }
    let file = secret.path().join("node.toml");
    std::fs::write(&file, format!("[artifacts]\ns3_credentials_dir = \"{}\"\n", secret.path().display())).unwrap();
    let config = streamforge::config::load(Some(&file), Vec::<(String, String)>::new()).unwrap();
    let from_files = Artifacts::open("s3://models/from-files", &config.artifacts).unwrap();
    save_and_load_round_trip(&from_files).await;
    let listing = http.get(format!("{endpoint}/models?list-type=2")).send().await.unwrap().text().await.unwrap();
    assert!(listing.contains("from-files/tgcn_test/1/model.mpk"), "{listing}");
    std::fs::remove_file(secret.path().join("access_key_id")).unwrap();
    let refused = Artifacts::open("s3://models/from-files", &config.artifacts).err().expect("no access key, no store");
    assert!(refused.to_string().contains("access_key_id"), "{refused}");
    // The objects are really on the server.
    let listing = http.get(format!("{endpoint}/models?list-type=2")).send().await.unwrap().text().await.unwrap();
    assert!(listing.contains("streamforge/tgcn_test/1/model.mpk"), "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn train_offline_saves_registers_and_predict_reads_the_model_back() {
    use streamforge::app::graph::{GraphOptions, MARKETS_DATA};
    use streamforge::app::train::{predict as predict_latest, train, PredictOptions, TrainOptions};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let models = format!("file://{}", dir.path().join("models").display());
    let data = GraphOptions {
        config: common::test_config(&url),
        symbols: ["BTCUSDT", "ETHUSDT", "ADAUSDT", "XRPUSDT", "LTCUSDT", "LINKUSDT"].map(String::from).to_vec(),
        interval: "1h".parse().unwrap(),
        start_ms: Some(1_609_459_200_000), // 2021-01-01
        end_ms: Some(1_612_137_600_000),   // 2021-02-01
        offline_data: Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(MARKETS_DATA)),
        graph: streamforge::graph::GraphConfig {
            name: "corr".into(),
            window: 48,
            min_periods: 24,
            threshold: 0.5,
            top_k: 3,
            every: 1,
        },
    };
    let opts = TrainOptions {
        data: data.clone(),
        lookback: 4,
        eval: EvalConfig {
            split: SplitConfig { train: 300, validation: 72, test: 72, purge: 53 },
            fit: small_fit(2, 5),
            seeds: 1,
        },
        artifacts: models.clone(),
        name: "tgcn_1h_test".into(),
        device: "cpu".into(),
    };
    let first = train(opts.clone()).await.unwrap();
    assert_eq!((first.version, first.assets), (1, 6));
    assert!(first.evaluation.folds.len() >= 2, "{} folds", first.evaluation.folds.len());
    for f in &first.evaluation.folds {
        assert!(f.train.end + 53 <= f.validation.start && f.validation.end + 53 <= f.test.start);
    }
    assert!(first.evaluation.overall("gnn").unwrap().accuracy < 0.6, "above 60% would be a leakage alarm");
    let second = train(opts).await.unwrap();
    assert_eq!(second.version, 2, "each run registers the next version");
    let store = streamforge::store::open(&url).await.unwrap();
    let record = store.model("tgcn_1h_test", None).await.unwrap().unwrap();
    assert_eq!((record.version, record.uri.as_str()), (2, second.url.as_str()));
    assert!(record.metrics["gnn"]["balanced_accuracy"].is_number(), "{}", record.metrics);
    assert!(std::path::Path::new(&second.url.replace("file://", "")).join("evaluation.txt").exists());

    let forecast = predict_latest(PredictOptions {
        config: data.config,
        offline_data: data.offline_data,
        start_ms: data.start_ms,
        end_ms: data.end_ms,
        artifacts: models.clone(),
        name: "tgcn_1h_test".into(),
        version: None,
    })
    .await
    .unwrap();
    assert_eq!(forecast.version, 2);
    assert_eq!(forecast.predictions.len(), 6);
    assert_eq!(forecast.time, 1_612_134_000_000, "the last candle of the range: 2021-01-31 23:00");
    assert!(forecast.predictions.iter().all(|p| (0.0..=1.0).contains(&p.up)));
}

/// CUDA (feature `cuda`): the same evaluation on the GPU as on the CPU — the same seeded initial
/// weights (drawn on the host), the same batches in the same order — gives the CPU's training
/// losses within 1e-3 and its scores within 0.01; the mean epoch time of both is printed. It needs
/// an NVIDIA GPU and its driver, which the project's CI machines do not have, so it is ignored
/// unless asked for: `cargo test --features cuda --test trainer -- --ignored cuda_`.
#[cfg(feature = "cuda")]
#[test]
#[ignore = "needs an NVIDIA GPU and its driver"]
fn cuda_training_gives_the_cpu_results_within_tolerance() {
    assert!(
        matches!(streamforge::trainer::device::choose("cuda"), Ok((streamforge::trainer::device::Device::Cuda, None))),
        "no usable CUDA here: {:?}",
        streamforge::trainer::device::choose("cuda")
    );
    let ds = community_task(600);
    let cfg = EvalConfig {
        split: SplitConfig { train: 300, validation: 60, test: 60, purge: 3 },
        fit: small_fit(10, 5),
        seeds: 2,
    };
    let cpu = evaluate::<AB>(&ds, &cfg, &Default::default(), |_, _, _| {});
    let gpu = evaluate::<Autodiff<burn::backend::Cuda>>(&ds, &cfg, &Default::default(), |_, _, _| {});
    assert_eq!(cpu.logs.len(), gpu.logs.len());
    for (c, g) in cpu.logs.iter().zip(&gpu.logs) {
        assert!(!c.train_loss.is_empty() && !g.train_loss.is_empty());
        for (a, b) in c.train_loss.iter().zip(&g.train_loss) {
            assert!(
                (a - b).abs() <= 1e-3 * a.abs().max(1.0),
                "training losses: CPU {:?}, CUDA {:?}",
                c.train_loss,
                g.train_loss
            );
        }
    }
    assert_eq!(cpu.rows.len(), gpu.rows.len());
    for (c, g) in cpu.rows.iter().zip(&gpu.rows) {
        let (a, b) = (&c.scores, &g.scores);
        for (what, x, y) in [
            ("accuracy", a.accuracy, b.accuracy),
            ("balanced accuracy", a.balanced_accuracy, b.balanced_accuracy),
            ("MCC", a.mcc, b.mcc),
        ] {
            assert!((x - y).abs() <= 0.01, "{} fold {:?} {what}: CPU {x}, CUDA {y}", c.model, c.fold);
        }
    }
    let per_epoch = |e: &streamforge::trainer::evaluate::Evaluation| {
        e.logs.iter().map(|l| l.seconds).sum::<f64>() / e.logs.iter().map(|l| l.epochs).sum::<usize>().max(1) as f64
    };
    eprintln!(
        "cuda verdict: {} score rows equal within 0.01; s per GNN epoch: CPU {:.4}, CUDA {:.4}",
        cpu.rows.len(),
        per_epoch(&cpu),
        per_epoch(&gpu)
    );
}
