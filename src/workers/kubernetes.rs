//! Cluster mode (`queue_manager.workers = "kubernetes"`): a `batch/v1` Job per task, shaped like
//! seed 002's Appendix B, created, watched and deleted through the `kube` client.
//!
//! A Job runs this binary as `streamforge node` in its one-task mode: the seed's variables
//! (`QUEUE_ID SYMBOL TYPE KAFKA_TOPIC COLLECTION_NAME TIME_RANGE`) plus `TARGET` (the worker) and
//! `JOB_EXTRA` (the start command's other fields, JSON) say what to do; the ConfigMap named in
//! `kubernetes.config_map` says where the bus and the store are; secrets are mounted as files.
//! Its worker reports on `queue-events` like an embedded one; the Job's own state matters only
//! when it fails without a report (a pod killed, an image that cannot be pulled): the watcher
//! hands that to queue-manager as a [`WorkerExit`], and the task gets its next attempt — a new
//! Job, since the attempt is part of the name. A `stop` deletes the workflow's Jobs that still
//! run; ended ones are left to `ttlSecondsAfterFinished`, with their logs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::Value;

use super::launch::{attempt_of, send, Launcher, WorkerExit};
use super::Target;
use crate::app::{AppError, NodeContext};
use crate::bus::Bus;
use crate::config::{KubernetesConfig, ResourcesConfig};
use crate::model::QueueControl;

/// Where the ConfigMap's `streamforge.toml` is mounted.
pub const CONFIG_DIR: &str = "/etc/streamforge";
/// Where each secret is mounted, in a folder of its name.
pub const SECRETS_DIR: &str = "/var/run/secrets/streamforge";
/// The one writable folder of a worker (its root filesystem is read-only).
pub const SCRATCH_DIR: &str = "/var/lib/streamforge";

/// Labels every Job carries; `queue_id` selects a workflow's Jobs.
const APP_LABEL: (&str, &str) = ("app", "streamforge");
const TARGET_LABEL: &str = "streamforge.io/target";
const SYMBOL_LABEL: &str = "streamforge.io/symbol";
const TYPE_LABEL: &str = "streamforge.io/type";
const ATTEMPT_LABEL: &str = "streamforge.io/attempt";
/// The `producer` of the task's events, so that a failed Job can be told to queue-manager.
const PRODUCER_ANNOTATION: &str = "streamforge.io/producer";
/// A GPU node's taint, as the NVIDIA GPU Operator sets it.
const GPU: &str = "nvidia.com/gpu";
/// Longest name of a Kubernetes object that is also a DNS label.
const MAX_NAME: usize = 63;

/// `job-<target>-<symbol>-<queue id suffix>[-<type>]-a<attempt>`, e.g.
/// `job-arango-connector-btcusdt-abc123-candles-5m-a1`: unique per task and attempt, a DNS label.
pub fn job_name(cmd: &QueueControl) -> String {
    let target = cmd.target.as_deref().unwrap_or("worker");
    let suffix = cmd.queue_id.rsplit('-').next().unwrap_or(&cmd.queue_id);
    let mut parts = vec!["job".to_owned(), target.to_owned()];
    parts.extend(cmd.symbol.clone());
    parts.push(suffix.to_owned());
    // Tasks of one target and symbol differ by type (the graph and trainer have one task).
    if let Some(kind) =
        cmd.kind.as_deref().filter(|_| cmd.symbol.is_some() && cmd.target.as_deref() != Some("dummy-service"))
    {
        parts.push(kind.trim_start_matches("api_").to_owned());
    }
    parts.push(format!("a{}", attempt_of(cmd)));
    let name: String =
        parts.join("-").to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    if name.len() <= MAX_NAME {
        return name;
    }
    // Too long (a long symbol): keep the start and end, and a hash of the whole.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let tail = format!("-{:06x}-a{}", hash & 0xff_ffff, attempt_of(cmd));
    format!("{}{tail}", name[..MAX_NAME - tail.len()].trim_end_matches('-'))
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
}

fn quantities(pairs: [(&str, &str); 2]) -> Option<BTreeMap<String, Quantity>> {
    let map: BTreeMap<String, Quantity> =
        pairs.into_iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.to_owned(), Quantity(v.to_owned()))).collect();
    (!map.is_empty()).then_some(map)
}

fn resources(r: &ResourcesConfig, gpus: u32) -> ResourceRequirements {
    let requests = quantities([("cpu", &r.cpu_request), ("memory", &r.memory_request)]);
    let mut limits = quantities([("cpu", &r.cpu_limit), ("memory", &r.memory_limit)]);
    if gpus > 0 {
        limits.get_or_insert_with(BTreeMap::new).insert(GPU.into(), Quantity(gpus.to_string()));
    }
    ResourceRequirements { limits, requests, ..Default::default() }
}

/// The Job of a `start` command whose events come from `producer`.
pub fn job_for(cmd: &QueueControl, producer: &str, k: &KubernetesConfig) -> Job {
    let name = job_name(cmd);
    let target = cmd.target.clone().unwrap_or_default();
    let trainer = Target::parse(&target) == Some(Target::Trainer);
    let gpus = if trainer { k.gpus } else { 0 };
    let mut labels = BTreeMap::from([
        (APP_LABEL.0.to_owned(), APP_LABEL.1.to_owned()),
        ("queue_id".to_owned(), cmd.queue_id.clone()),
        (TARGET_LABEL.to_owned(), target.clone()),
        (ATTEMPT_LABEL.to_owned(), attempt_of(cmd).to_string()),
    ]);
    if let Some(symbol) = &cmd.symbol {
        labels.insert(SYMBOL_LABEL.to_owned(), symbol.clone());
    }
    if let Some(kind) = &cmd.kind {
        labels.insert(TYPE_LABEL.to_owned(), kind.clone());
    }
    // The seed's variables, those the command has, then the two of one-task mode.
    let mut vars: Vec<EnvVar> = [
        ("QUEUE_ID", Some(&cmd.queue_id)),
        ("SYMBOL", cmd.symbol.as_ref()),
        ("TYPE", cmd.kind.as_ref()),
        ("KAFKA_TOPIC", cmd.kafka_topic.as_ref()),
        ("COLLECTION_NAME", cmd.collection_name.as_ref()),
        ("TIME_RANGE", cmd.time_range.as_ref()),
        ("TARGET", Some(&target)),
    ]
    .into_iter()
    .filter_map(|(n, v)| v.map(|v| env(n, v.clone())))
    .collect();
    let mut extra = cmd.extra.clone();
    extra.remove("node");
    vars.push(env("JOB_EXTRA", Value::Object(extra).to_string()));
    // The pod's name is the node id: its own consumer group for `queue-control`.
    vars.push(EnvVar {
        name: "STREAMFORGE__NODE__ID".into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: "metadata.name".into(), api_version: None }),
            ..Default::default()
        }),
    });
    let mut args = vec!["node".to_owned()];
    let (mut volumes, mut mounts) = (Vec::new(), Vec::new());
    let mut mount = |name: &str, path: &str, read_only: bool, volume: Volume| {
        mounts.push(VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            read_only: Some(read_only),
            ..Default::default()
        });
        volumes.push(Volume { name: name.into(), ..volume });
    };
    if !k.config_map.is_empty() {
        args.extend(["--config".to_owned(), format!("{CONFIG_DIR}/streamforge.toml")]);
        let source = ConfigMapVolumeSource { name: k.config_map.clone(), ..Default::default() };
        mount("config", CONFIG_DIR, true, Volume { config_map: Some(source), ..Default::default() });
    }
    for secret in &k.secrets {
        let source = SecretVolumeSource { secret_name: Some(secret.clone()), ..Default::default() };
        let path = format!("{SECRETS_DIR}/{secret}");
        mount(&format!("secret-{secret}"), &path, true, Volume { secret: Some(source), ..Default::default() });
    }
    let scratch = Volume { empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() };
    mount("scratch", SCRATCH_DIR, false, scratch);
    let container = Container {
        name: target.clone(),
        image: Some(if gpus > 0 && !k.trainer_image.is_empty() { &k.trainer_image } else { &k.image }.clone()),
        image_pull_policy: Some(k.image_pull_policy.clone()),
        args: Some(args),
        env: Some(vars),
        working_dir: Some(SCRATCH_DIR.into()),
        resources: Some(resources(if trainer { &k.trainer_resources } else { &k.worker_resources }, gpus)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let tolerations = (gpus > 0).then(|| {
        vec![Toleration {
            key: Some(GPU.into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }]
    });
    // A GPU trainer goes where the GPU Operator found a GPU, besides the operator's own choice.
    let mut node_selector = k.node_selector.clone();
    if gpus > 0 {
        node_selector.extend(k.gpu_node_selector.clone());
    }
    let pod = PodSpec {
        restart_policy: Some("Never".into()),
        service_account_name: (!k.service_account.is_empty()).then(|| k.service_account.clone()),
        // Workers talk to the bus and the store, never to the Kubernetes API.
        automount_service_account_token: Some(false),
        node_selector: (!node_selector.is_empty()).then_some(node_selector),
        tolerations,
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(10001),
            run_as_group: Some(10001),
            fs_group: Some(10001),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
            ..Default::default()
        }),
        containers: vec![container],
        volumes: Some(volumes),
        ..Default::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(k.namespace.clone()),
            labels: Some(labels.clone()),
            annotations: Some(BTreeMap::from([(PRODUCER_ANNOTATION.to_owned(), producer.to_owned())])),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(k.backoff_limit),
            ttl_seconds_after_finished: Some(k.ttl_seconds_after_finished),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The label selector of the Jobs a `stop` command selects.
pub fn selector(cmd: &QueueControl) -> String {
    let mut parts = vec![format!("{}={}", APP_LABEL.0, APP_LABEL.1), format!("queue_id={}", cmd.queue_id)];
    if let Some(target) = cmd.target.as_deref().and_then(Target::parse) {
        parts.push(format!("{TARGET_LABEL}={target}"));
    }
    if let Some(symbol) = &cmd.symbol {
        parts.push(format!("{SYMBOL_LABEL}={symbol}"));
    }
    // One symbol's loaders of two types are two tasks: a restart of one leaves the other running.
    if let Some(kind) = &cmd.kind {
        parts.push(format!("{TYPE_LABEL}={kind}"));
    }
    parts.join(",")
}

/// Whether a Job has completed or failed.
fn ended(job: &Job) -> bool {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions
        .is_some_and(|cs| cs.iter().any(|c| ["Complete", "Failed"].contains(&c.type_.as_str()) && c.status == "True"))
}

/// A Job that failed, as its worker's exit; `None` while it has not.
fn failure(job: &Job) -> Option<WorkerExit> {
    let failed =
        job.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Failed" && c.status == "True")?;
    let labels = job.metadata.labels.as_ref()?;
    let producer = job.metadata.annotations.as_ref()?.get(PRODUCER_ANNOTATION)?;
    let name = job.metadata.name.as_deref().unwrap_or("?");
    let why =
        [failed.reason.as_deref(), failed.message.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(": ");
    Some(WorkerExit {
        queue_id: labels.get("queue_id")?.clone(),
        producer: producer.clone(),
        attempt: labels.get(ATTEMPT_LABEL)?.parse().ok()?,
        reason: format!("Job {name} failed: {why}"),
    })
}

/// Jobs through the Kubernetes API.
pub struct Kubernetes {
    api: Api<Job>,
    bus: Arc<dyn Bus>,
    config: KubernetesConfig,
    exits: Arc<Mutex<Vec<WorkerExit>>>,
    watcher: tokio::task::JoinHandle<()>,
}

/// The watcher's pause after a failed list or watch, doubling up to the maximum.
const WATCH_BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));
/// A watch is renewed after this long (the API server ends it anyway).
const WATCH_TIMEOUT_SECS: u32 = 290;

impl Kubernetes {
    /// A client for `kubernetes.api_url` (or in-cluster / `KUBECONFIG`) and the Jobs of its
    /// namespace; starts watching them.
    pub async fn connect(ctx: &NodeContext) -> Result<Kubernetes, AppError> {
        let k = ctx.config.kubernetes.clone();
        let bad = |e: String| AppError::Usage(format!("kubernetes: {e}"));
        let mut config = match k.api_url.as_str() {
            "" => kube::Config::infer().await.map_err(|e| bad(e.to_string()))?,
            url => kube::Config::new(url.parse().map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?),
        };
        config.default_namespace = k.namespace.clone();
        let client = kube::Client::try_from(config).map_err(|e| bad(e.to_string()))?;
        let api = Api::<Job>::namespaced(client, &k.namespace);
        let exits = Arc::new(Mutex::new(Vec::new()));
        let watcher = tokio::spawn(watch(api.clone(), exits.clone()));
        Ok(Kubernetes { api, bus: ctx.bus.clone(), config: k, exits, watcher })
    }
}

impl Drop for Kubernetes {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// Follows the Jobs (a list, then a watch from its version, again after every end) and notes
/// each failed one once.
async fn watch(api: Api<Job>, exits: Arc<Mutex<Vec<WorkerExit>>>) {
    let selector = format!("{}={}", APP_LABEL.0, APP_LABEL.1);
    let mut told: BTreeSet<String> = BTreeSet::new();
    let mut note = |job: &Job| {
        if let Some(exit) = failure(job) {
            if told.insert(job.metadata.name.clone().unwrap_or_default()) {
                tracing::warn!(queue_id = %exit.queue_id, reason = %exit.reason, "A worker's Job failed.");
                exits.lock().unwrap_or_else(|e| e.into_inner()).push(exit);
            }
        }
    };
    let mut pause = WATCH_BACKOFF.0;
    loop {
        let listed = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list,
            Err(error) => {
                tracing::warn!(%error, "Cannot list the workers' Jobs; trying again.");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(WATCH_BACKOFF.1);
                continue;
            }
        };
        listed.items.iter().for_each(&mut note);
        let version = listed.metadata.resource_version.unwrap_or_default();
        let params = WatchParams::default().labels(&selector).timeout(WATCH_TIMEOUT_SECS);
        match api.watch(&params, &version).await {
            Ok(stream) => {
                pause = WATCH_BACKOFF.0;
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(WatchEvent::Added(job) | WatchEvent::Modified(job)) => note(&job),
                        Ok(WatchEvent::Deleted(_) | WatchEvent::Bookmark(_)) => {}
                        // 410 Gone (the version is too old) and the like: list again.
                        Ok(WatchEvent::Error(status)) => {
                            tracing::debug!(?status, "The Jobs' watch ended; listing again.");
                            break;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "The Jobs' watch broke; listing again.");
                            break;
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "Cannot watch the workers' Jobs; trying again.");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(WATCH_BACKOFF.1);
            }
        }
    }
}

#[async_trait]
impl Launcher for Kubernetes {
    fn mode(&self) -> &'static str {
        "kubernetes"
    }

    async fn start(&self, cmd: QueueControl, producer: &str) -> Result<(), String> {
        // On `queue-control` too: a running worker takes its orders there (a connector's drain).
        send(&self.bus, &cmd).await.map_err(|e| e.to_string())?;
        let job = job_for(&cmd, producer, &self.config);
        let name = job.metadata.name.clone().unwrap_or_default();
        match self.api.create(&PostParams::default(), &job).await {
            Ok(_) => {
                tracing::info!(queue_id = %cmd.queue_id, job = %name, "Job created.");
                Ok(())
            }
            // This attempt's Job exists (a resumed workflow, a drain order): it runs already.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(format!("the Job {name} was refused: {e}")),
        }
    }

    /// Deletes the selected Jobs that have not ended (their pods get SIGTERM: the worker flushes
    /// and commits); ended ones stay, with their logs, until `ttlSecondsAfterFinished`.
    async fn stop(&self, cmd: QueueControl) {
        let selector = selector(&cmd);
        super::launch::publish(&self.bus, cmd.clone()).await;
        let jobs = match self.api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list.items,
            Err(error) => return tracing::warn!(%error, %selector, "Cannot list the Jobs to stop."),
        };
        for job in jobs.iter().filter(|j| !ended(j)) {
            let name = job.metadata.name.clone().unwrap_or_default();
            match self.api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => tracing::info!(queue_id = %cmd.queue_id, job = %name, "Job deleted."),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => tracing::warn!(%error, job = %name, "Cannot delete the Job."),
            }
        }
    }

    async fn announce(&self, cmd: QueueControl) {
        super::launch::publish(&self.bus, cmd).await
    }

    /// Jobs belong to the cluster, not to this node: the new owner follows them as they are.
    async fn release(&self, _queue_id: &str) {}

    fn exits(&self) -> Vec<WorkerExit> {
        std::mem::take(&mut *self.exits.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Command;

    fn start(target: &str, symbol: Option<&str>, kind: &str, attempt: u64) -> QueueControl {
        let mut cmd = QueueControl::new(Command::Start, "wf-btcusdt-api_candles_5m-20240801-abc123");
        cmd.target = Some(target.into());
        cmd.symbol = symbol.map(str::to_owned);
        cmd.kind = Some(kind.into());
        cmd.extra.insert("attempt".into(), attempt.into());
        cmd
    }

    #[test]
    fn names_follow_the_seed_and_are_dns_labels() {
        assert_eq!(
            job_name(&start("arango-connector", Some("BTCUSDT"), "api_candles_5m", 1)),
            "job-arango-connector-btcusdt-abc123-candles-5m-a1"
        );
        assert_eq!(job_name(&start("graph-builder", None, "api_candles_5m", 2)), "job-graph-builder-abc123-a2");
        assert_eq!(
            job_name(&start("dummy-service", Some("ETHUSDT"), "dummy", 3)),
            "job-dummy-service-ethusdt-abc123-a3"
        );
        let long = job_name(&start("loader-producer", Some("1000000BABYDOGEUSDTPERPETUAL"), "api_agg_trades", 12));
        assert!(long.len() <= MAX_NAME, "{long}");
        assert!(long.starts_with("job-loader-producer-1000000babydoge") && long.ends_with("-a12"), "{long}");
        assert!(long.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{long}");
    }

    /// Whether a label selector of `k=v` terms (all that [`selector`] writes) selects a Job.
    fn selects(selector: &str, job: &Job) -> bool {
        let labels = job.metadata.labels.as_ref().expect("labelled");
        selector.split(',').all(|term| {
            let (k, v) = term.split_once('=').expect("k=v");
            labels.get(k).is_some_and(|l| l == v)
        })
    }

    #[test]
    fn a_restart_stops_only_its_own_tasks_job() {
        let k = KubernetesConfig::default();
        let candles = start("loader-producer", Some("BTCUSDT"), "api_candles_1m", 1);
        let trades = start("loader-producer", Some("BTCUSDT"), "api_trades", 1);
        let (candles_job, trades_job) = (job_for(&candles, "p", &k), job_for(&trades, "p", &k));
        let stop = selector(&super::super::launch::stop_for(&trades));
        assert!(selects(&stop, &trades_job), "{stop}");
        assert!(!selects(&stop, &candles_job), "{stop} must leave the candles loader of the same symbol");
        let whole = selector(&QueueControl::new(Command::Stop, trades.queue_id.clone()));
        assert!(selects(&whole, &trades_job) && selects(&whole, &candles_job), "{whole}");
    }

    #[test]
    fn a_stop_selects_its_workflows_jobs() {
        let mut stop = QueueControl::new(Command::Stop, "wf-x-abc123");
        assert_eq!(selector(&stop), "app=streamforge,queue_id=wf-x-abc123");
        stop.target = Some("connector".into());
        stop.symbol = Some("BTCUSDT".into());
        assert_eq!(
            selector(&stop),
            "app=streamforge,queue_id=wf-x-abc123,streamforge.io/target=arango-connector,streamforge.io/symbol=BTCUSDT"
        );
    }
}
