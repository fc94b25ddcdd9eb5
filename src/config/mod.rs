//! Configuration as validated data: defaults < TOML file < `STREAMFORGE__SECTION__KEY` environment
//! variables < the seeds' plain variables (`QUEUE_ID`, `SYMBOL`, `TYPE`, `KAFKA_TOPIC`,
//! `COLLECTION_NAME`, `TIME_RANGE`). Every problem is collected and reported together.

mod load;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

pub use load::{load, load_text, load_with, ConfigErrors};

use crate::exchange::binance::{
    backfill_kind, SnapshotPlan, DEFAULT_ARCHIVE_URL, DEFAULT_REST_URL, DEFAULT_SNAPSHOT_LIMIT, DEFAULT_WS_URL,
    MAX_SNAPSHOT_LIMIT,
};
use crate::model::parse_time_range;
use crate::store::validate_collection;

/// A node's whole configuration. Every field has a default, so an empty file is valid.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub node: NodeConfig,
    pub bus: BusConfig,
    pub store: StoreConfig,
    pub binance: BinanceConfig,
    pub loader: LoaderConfig,
    pub connector: ConnectorConfig,
    pub supervision: SupervisionConfig,
    pub dummy: DummyConfig,
    pub admin: AdminConfig,
    pub queue_manager: QueueManagerConfig,
    /// The Jobs queue-manager creates when `queue_manager.workers = "kubernetes"`.
    pub kubernetes: KubernetesConfig,
    pub job: JobConfig,
    /// Long-running connectors: each consumes a stable topic into a collection.
    pub connectors: Vec<ConnectorRouteConfig>,
    /// Real-time WebSocket loaders: each publishes its symbols' stream to a stable topic.
    pub streams: Vec<StreamConfig>,
    /// The live dashboard at `/ui` over the node's streams.
    pub monitor: MonitorConfig,
    /// Where trained models' S3 credentials come from.
    pub artifacts: ArtifactsConfig,
    pub log: LogConfig,
}

/// The model store's credentials (`train --artifacts s3://…`, the `train` workflow step).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ArtifactsConfig {
    /// A folder of files named after the S3 settings they hold — `access_key_id`,
    /// `secret_access_key`, and where needed `session_token`, `endpoint`, `region` — as a mounted
    /// secret (Vault CSI) lays them out; read when models are saved or loaded, never logged.
    /// Unset: the `AWS_*` environment variables.
    pub s3_credentials_dir: Option<String>,
}

/// One `[[streams]]` entry (`Default` only to spell the optional keys out in code).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// `aggTrade`, `trade`, `kline_<interval>` (backfilled over REST after a reconnect, so the
    /// sequence has no hole) or `depth` (diff events plus a local order book whose best levels are
    /// published every second).
    pub kind: String,
    /// Upper-case symbols; more than 1,024 are spread over several connections.
    pub symbols: Vec<String>,
    /// Stable topic the records go to, keyed by symbol.
    pub topic: String,
    /// `depth` only: how often the best levels of each verified book are published, in ms
    /// (default 1000; at least 100, i.e. at most ten books a second per symbol).
    #[serde(default)]
    pub snapshot_ms: Option<u64>,
    /// `depth` only: levels a side of the REST snapshot each book starts from, 1 to 5000
    /// (default 1000). Its weight: 5 up to 100, 25 up to 500, 50 up to 1000, 250 above.
    #[serde(default)]
    pub snapshot_limit: Option<u32>,
    /// `depth` only: `snapshot_limit` for particular symbols of the entry, e.g.
    /// `{ BTCUSDT = 5000 }`. Snapshots are fetched in the order the symbols are listed.
    #[serde(default)]
    pub snapshot_limits: BTreeMap<String, u32>,
}

impl StreamConfig {
    /// A `depth` entry's book snapshot interval.
    pub fn snapshot_every(&self) -> Duration {
        Duration::from_millis(self.snapshot_ms.unwrap_or(1000))
    }

    /// A `depth` entry's REST snapshot depth for `symbol`.
    pub fn snapshot_limit_of(&self, symbol: &str) -> u32 {
        self.snapshot_limits.get(symbol).copied().or(self.snapshot_limit).unwrap_or(DEFAULT_SNAPSHOT_LIMIT)
    }

    /// How the books of `symbols` (some of the entry's) get their snapshots: in the listed order,
    /// each at its depth.
    pub fn snapshot_plan(&self, symbols: &[String]) -> SnapshotPlan {
        SnapshotPlan::new(symbols.iter().map(|s| (s.clone(), self.snapshot_limit_of(s))))
    }

    fn validate(&self, i: usize, errs: &mut Vec<String>) {
        if self.kind != "depth" && crate::exchange::binance::sequenced_kind(&self.kind).is_none() {
            errs.push(format!(
                "streams[{i}].kind: {:?} is not aggTrade, trade, kline_<interval> (e.g. kline_1m) or depth",
                self.kind
            ));
        }
        if self.symbols.is_empty() {
            errs.push(format!("streams[{i}].symbols: name at least one symbol"));
        }
        for sym in &self.symbols {
            if sym.is_empty() || !sym.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
                errs.push(format!("streams[{i}].symbols: {sym:?} is not an upper-case symbol like BTCUSDT"));
            }
        }
        if let Err(e) = crate::bus::validate_topic_name(&self.topic) {
            errs.push(format!("streams[{i}].topic: {e}"));
        }
        let depth = self.kind == "depth";
        let book_keys = [
            ("snapshot_ms", self.snapshot_ms.is_some()),
            ("snapshot_limit", self.snapshot_limit.is_some()),
            ("snapshot_limits", !self.snapshot_limits.is_empty()),
        ];
        for (key, _) in book_keys.iter().filter(|(_, set)| *set && !depth) {
            errs.push(format!("streams[{i}].{key}: only a depth stream keeps order books"));
        }
        if let Some(ms) = self.snapshot_ms.filter(|ms| *ms < 100) {
            errs.push(format!("streams[{i}].snapshot_ms: {ms} is below 100"));
        }
        let limits = self.snapshot_limit.map(|l| ("snapshot_limit".to_owned(), l));
        let per_symbol = self.snapshot_limits.iter().map(|(s, l)| (format!("snapshot_limits.{s}"), *l));
        for (key, limit) in limits.into_iter().chain(per_symbol) {
            if !(1..=MAX_SNAPSHOT_LIMIT).contains(&limit) {
                errs.push(format!(
                    "streams[{i}].{key}: {limit} is not a depth Binance serves (1 to {MAX_SNAPSHOT_LIMIT})"
                ));
            }
        }
        for sym in self.snapshot_limits.keys().filter(|s| !self.symbols.contains(s)) {
            errs.push(format!("streams[{i}].snapshot_limits: {sym:?} is not one of the entry's symbols"));
        }
    }
}

/// `[monitor]`: the dashboard served at `/ui` and the event stream it draws from.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    pub enabled: bool,
    /// The symbol the page opens with when the node streams it.
    pub symbol: String,
    /// How often a client is sent what changed, in ms (at least 100: ten frames a second).
    pub push_ms: u64,
    /// Trades on the tape.
    pub tape: usize,
    /// 1m candles in the chart.
    pub candles: usize,
    /// Price levels a side on the ladder (at most the 20 a depth loader publishes).
    pub levels: usize,
    /// Frames a client may have unsent; a client that falls further behind is dropped (its page
    /// reconnects and starts again from a fresh snapshot).
    pub client_buffer: usize,
    /// Event streams open at once; more get a 503.
    pub max_clients: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            enabled: true,
            symbol: "ETHUSDT".into(),
            push_ms: 100,
            tape: 40,
            candles: 120,
            levels: 15,
            client_buffer: 64,
            max_clients: 32,
        }
    }
}

/// One `[[connectors]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConnectorRouteConfig {
    pub topic: String,
    pub collection: String,
    /// Consumer group; nodes with the same group share the topic's partitions.
    /// Default: `connector-<collection>`.
    #[serde(default)]
    pub group: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Node name; in a StatefulSet the pod name (`streamforge-0`).
    pub id: String,
    /// Admin HTTP address (`/healthz`, `/readyz`, `/metrics`).
    pub admin_addr: String,
    /// Serve the bundled recorded data on loopback and load from it instead of Binance.
    pub offline: bool,
    /// Folder of recorded data for offline mode (laid out like `data/sample`).
    pub offline_data: String,
    /// Offline mode: the pace of the recorded WebSocket streams (1 = as recorded, 10 = ten times
    /// faster, 0 = as fast as the loaders read).
    pub replay_speed: f64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: "streamforge-0".into(),
            admin_addr: "127.0.0.1:9400".into(),
            offline: false,
            offline_data: "data/sample".into(),
            replay_speed: 1.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// `memory://` (in-process, the default) or `kafka://HOST:PORT[,HOST:PORT…]`.
    pub url: String,
    /// Partitions of the topics this node creates.
    pub partitions: u32,
    /// Replication factor of the topics this node creates (Kafka).
    pub replication: i32,
    /// In-process bus: bytes all topics' records may take together (payload, key and a
    /// per-record overhead); committed records make way first, then producers wait.
    pub memory_bytes: usize,
    pub kafka: KafkaConfig,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            url: "memory://".into(),
            partitions: 3,
            replication: 1,
            memory_bytes: 8 << 20,
            kafka: KafkaConfig::default(),
        }
    }
}

/// Kafka client settings: producer tuning and security. Secrets are read from files.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Producer batching delay, ms.
    pub linger_ms: u64,
    /// `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub compression: String,
    /// Records the producer may hold before `publish` waits.
    pub queue_max_messages: u32,
    /// How long the producer keeps retrying a record (e.g. through a broker outage), ms.
    pub delivery_timeout_ms: u64,
    /// A consumer silent for this long leaves its group and its partitions move to the others, ms.
    pub session_timeout_ms: u64,
    /// What one consumer may fetch ahead of its connector, in KiB (librdkafka's
    /// `queued.max.messages.kbytes`, whose default lets each consumer hold 64 MiB; one fetch, still
    /// compressed, takes at most a quarter of it): a node's memory grows with its consumers times
    /// this. At least 1024.
    pub prefetch_kbytes: u32,
    /// Static group membership: every consumer sets `group.instance.id` to `<node.id>-<topic>`, so
    /// a pod that restarts under the same name (a StatefulSet ordinal) gets its partitions back
    /// without a rebalance, as long as it is back within `session_timeout_ms`. The price: a member
    /// that leaves for good (a scale-down) keeps its partitions for that long. Off by default.
    pub static_membership: bool,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub security_protocol: Option<String>,
    /// e.g. `SCRAM-SHA-512`.
    pub sasl_mechanism: Option<String>,
    /// e.g. `user-streamforge`.
    pub sasl_username: Option<String>,
    /// File holding the SASL password (a mounted secret); the password is never logged.
    pub sasl_password_file: Option<String>,
    pub ssl_ca_location: Option<String>,
    pub ssl_certificate_location: Option<String>,
    pub ssl_key_location: Option<String>,
    /// Which implementation of the protocol the brokers are: `kafka` (Apache Kafka, Strimzi,
    /// any broker that answers as it does; the default) or `tansu`, which turns on the client-side
    /// work-arounds for tansu 0.6's incompatibilities (docs/kafka.md).
    pub flavor: BrokerFlavor,
    /// More librdkafka properties for every client of the node (e.g. `"fetch.max.bytes"`,
    /// `debug = "cgrp"`), set before StreamForge's own. Properties StreamForge owns for its
    /// delivery guarantees or reads from other keys are refused at start.
    pub librdkafka: BTreeMap<String, String>,
}

/// The broker implementation a node talks to (`bus.kafka.flavor`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BrokerFlavor {
    /// Apache Kafka and brokers that answer as it does.
    #[default]
    Kafka,
    /// tansu 0.6: the end of a partition is read from a fetch (ListOffsets under-reports it), and
    /// assignments start a producer batch before the committed offset (a fetch inside a batch
    /// skips the rest of it).
    Tansu,
}

/// librdkafka properties that `bus.kafka.librdkafka` may not set: StreamForge's delivery
/// guarantees rest on them, or other keys set them.
pub const OWNED_LIBRDKAFKA_PROPERTIES: [&str; 21] = [
    "bootstrap.servers",
    "metadata.broker.list",
    "client.id",
    "group.id",
    "group.instance.id",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "partition.assignment.strategy",
    "partitioner",
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "queued.max.messages.kbytes",
    "fetch.max.bytes",
    "fetch.queue.backoff.ms",
];

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            linger_ms: 5,
            compression: "lz4".into(),
            queue_max_messages: 100_000,
            delivery_timeout_ms: 300_000,
            session_timeout_ms: 45_000,
            prefetch_kbytes: 4096,
            static_membership: false,
            security_protocol: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password_file: None,
            ssl_ca_location: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
            flavor: BrokerFlavor::Kafka,
            librdkafka: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH`, `sqlite::memory:`, `postgres://USER@HOST/DB`, `arangodb://USER@HOST/DB`.
    pub url: String,
    /// File holding the database password (a mounted secret), put into `url`'s user part at
    /// start; the password is never logged. Without it the password is whatever `url` says.
    pub password_file: Option<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { url: "sqlite://./data/streamforge.db".into(), password_file: None }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BinanceConfig {
    /// REST base URL.
    pub rest_url: String,
    /// WebSocket market-stream base URL.
    pub ws_url: String,
    /// Share of Binance's 6,000 weight a minute the node's REST calls may spend (0 < share ≤ 1).
    pub weight_share: f64,
    /// Binance's public data archive (daily and monthly ZIP + CHECKSUM files), which backfills take
    /// whole days and months from, over REST only what it lacks. Unset: data.binance.vision while
    /// `rest_url` is Binance's own, no archive otherwise (a replay server serves one at
    /// `<its URL>/data`: set it); `""`: no archive.
    pub archive_url: Option<String>,
}

impl Default for BinanceConfig {
    fn default() -> Self {
        BinanceConfig {
            rest_url: DEFAULT_REST_URL.into(),
            ws_url: DEFAULT_WS_URL.into(),
            weight_share: 0.9,
            archive_url: None,
        }
    }
}

impl BinanceConfig {
    /// The archive backfills use, if any (see [`BinanceConfig::archive_url`]).
    pub fn archive(&self) -> Option<&str> {
        match self.archive_url.as_deref() {
            Some("") => None,
            Some(url) => Some(url),
            None => (self.rest_url.trim_end_matches('/') == DEFAULT_REST_URL).then_some(DEFAULT_ARCHIVE_URL),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LoaderConfig {
    /// Rows per REST request, 1-1000.
    pub page_limit: u32,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig { page_limit: 1000 }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Records per store transaction.
    pub batch_size: usize,
    /// Longest a record waits in a partial batch, ms.
    pub flush_interval_ms: u64,
}

impl Default for ConnectorConfig {
    fn default() -> Self {
        ConnectorConfig { batch_size: 2000, flush_interval_ms: 500 }
    }
}

impl ConnectorConfig {
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisionConfig {
    /// More than this many restarts…
    pub max_restarts: u32,
    /// …within this many seconds makes a supervisor give up.
    pub within_secs: u64,
    /// Delay before the first restart of a failing child, ms (0 = restart at once).
    pub backoff_min_ms: u64,
    /// Longest delay between restarts, ms.
    pub backoff_max_ms: u64,
    /// A child that ran this long starts over at the minimum delay, s.
    pub backoff_reset_secs: u64,
    /// Fraction of each delay drawn at random, 0-1.
    pub backoff_jitter: f64,
}

impl SupervisionConfig {
    pub fn intensity(&self) -> crate::supervision::Intensity {
        crate::supervision::Intensity { max_restarts: self.max_restarts, within: Duration::from_secs(self.within_secs) }
    }

    pub fn backoff(&self) -> crate::supervision::Backoff {
        crate::supervision::Backoff {
            min: Duration::from_millis(self.backoff_min_ms),
            max: Duration::from_millis(self.backoff_max_ms),
            reset_after: Duration::from_secs(self.backoff_reset_secs),
            jitter: self.backoff_jitter,
        }
    }
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        SupervisionConfig {
            max_restarts: 10,
            within_secs: 60,
            backoff_min_ms: 100,
            backoff_max_ms: 30_000,
            backoff_reset_secs: 60,
            backoff_jitter: 0.5,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DummyConfig {
    pub enabled: bool,
    pub queue_id: String,
    pub simulate_loading: bool,
    /// Fail after this many ticks; 0 = never.
    pub fail_after: u32,
    pub tick_ms: u64,
}

impl Default for DummyConfig {
    fn default() -> Self {
        DummyConfig { enabled: false, queue_id: "dummy".into(), simulate_loading: false, fail_after: 0, tick_ms: 1000 }
    }
}

/// A secret from the configuration: compared and used, never printed (`Debug` shows `***`).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Who may use the admin API's mutating endpoints (`POST /api/v1/…`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Static bearer token (`STREAMFORGE__ADMIN__TOKEN`); never logged.
    pub token: Option<Secret>,
    /// File holding the token (a mounted secret), read at start.
    pub token_file: Option<String>,
    /// Require the token for the read-only endpoints too (health and metrics stay open).
    pub protect_reads: bool,
    /// Accept JSON Web Tokens from the cluster's identity provider (Keycloak, seed 000 §10.2) too.
    pub oidc: Option<OidcConfig>,
}

/// An OpenID Connect identity provider whose access tokens the admin API accepts.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The tokens' `iss`, e.g. `https://keycloak.example/realms/streamforge`.
    pub issuer: String,
    /// Required in the tokens' `aud`.
    pub audience: String,
    /// Where the provider publishes its signing keys (Keycloak:
    /// `<issuer>/protocol/openid-connect/certs`).
    pub jwks_url: String,
    /// Dotted path of the claim listing the caller's roles (an array, or a space-separated string).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// The role a caller needs for the mutating endpoints.
    #[serde(default = "default_role")]
    pub role: String,
}

fn default_role_claim() -> String {
    "realm_access.roles".into()
}

fn default_role() -> String {
    "streamforge-operator".into()
}

/// queue-manager and the worker host: workflows over the admin API (`/api/v1/workflows`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QueueManagerConfig {
    /// Run queue-manager on this node and host the workers it starts by command.
    pub enabled: bool,
    /// A worker silent (no event) for this long is restarted, ms. Connectors waiting for their
    /// loader are not counted as silent.
    pub stall_after_ms: u64,
    /// Starts of one worker (the first included) before its step fails.
    pub max_attempts: u32,
    /// How long a queue-manager's claim on a workflow lasts without renewal, ms: when its node
    /// dies, another node's queue-manager takes the workflow over after at most this long.
    pub lease_ms: u64,
    /// Where the workers run: `embedded` (actors of this node) or `kubernetes` (a Job per task).
    pub workers: WorkersMode,
}

impl Default for QueueManagerConfig {
    fn default() -> Self {
        QueueManagerConfig {
            enabled: true,
            stall_after_ms: 300_000,
            max_attempts: 3,
            lease_ms: 15_000,
            workers: WorkersMode::Embedded,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WorkersMode {
    Embedded,
    Kubernetes,
}

/// The shape of the `batch/v1` Jobs of cluster mode (seed 002, Appendix B). Secrets are only
/// referenced: mounted as files, never copied into the Job.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The API server; empty: in-cluster (the pod's service account), else `KUBECONFIG`.
    pub api_url: String,
    /// Where the Jobs go.
    pub namespace: String,
    /// The worker image: this binary.
    pub image: String,
    /// The image of `gnn-trainer` Jobs that ask for a GPU (the CUDA build, `Dockerfile.cuda`);
    /// empty: `image`.
    pub trainer_image: String,
    pub image_pull_policy: String,
    /// The Jobs' service account (none: the namespace's default).
    pub service_account: String,
    /// A ConfigMap holding `streamforge.toml`, mounted at `/etc/streamforge` and passed as `--config`.
    pub config_map: String,
    /// Secrets mounted read-only at `/var/run/secrets/streamforge/<name>`.
    pub secrets: Vec<String>,
    /// Labels a worker's node must have, e.g. `{ "streamforge-worker" = "true" }`.
    pub node_selector: BTreeMap<String, String>,
    /// Pod retries of one Job before it fails (queue-manager then starts a new attempt).
    pub backoff_limit: i32,
    /// A finished Job is removed this long after it ended.
    pub ttl_seconds_after_finished: i32,
    /// Requests and limits of every worker but the trainer.
    pub worker_resources: ResourcesConfig,
    /// Requests and limits of `gnn-trainer` Jobs, which also ask for `gpus` GPUs.
    pub trainer_resources: ResourcesConfig,
    /// `nvidia.com/gpu` of a trainer Job (0: it trains on the CPU), with the GPU toleration.
    pub gpus: u32,
    /// Labels a GPU trainer's node must have besides `node_selector`: by default the one the
    /// NVIDIA GPU Operator puts on nodes with a GPU.
    pub gpu_node_selector: BTreeMap<String, String>,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            api_url: String::new(),
            namespace: "stf".into(),
            image: concat!("streamforge:", env!("CARGO_PKG_VERSION")).into(),
            trainer_image: String::new(),
            image_pull_policy: "IfNotPresent".into(),
            service_account: String::new(),
            config_map: "streamforge-config".into(),
            secrets: Vec::new(),
            node_selector: Default::default(),
            backoff_limit: 2,
            ttl_seconds_after_finished: 3600,
            worker_resources: ResourcesConfig {
                cpu_request: "250m".into(),
                memory_request: "256Mi".into(),
                cpu_limit: "2".into(),
                memory_limit: "1Gi".into(),
            },
            trainer_resources: ResourcesConfig {
                cpu_request: "2".into(),
                memory_request: "4Gi".into(),
                cpu_limit: "8".into(),
                memory_limit: "16Gi".into(),
            },
            gpus: 1,
            gpu_node_selector: BTreeMap::from([("nvidia.com/gpu.present".to_owned(), "true".to_owned())]),
        }
    }
}

/// A Kubernetes quantity as written in manifests: a decimal number and an optional suffix.
fn is_quantity(q: &str) -> bool {
    let number = q.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &q[number.len()..];
    let suffixes = ["", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    !number.is_empty() && number.parse::<f64>().is_ok_and(|n| n >= 0.0) && suffixes.contains(&suffix)
}

/// A container's requests and limits, as Kubernetes quantities (`250m`, `1Gi`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ResourcesConfig {
    pub cpu_request: String,
    pub memory_request: String,
    pub cpu_limit: String,
    pub memory_limit: String,
}

/// One workflow, as the seeds' Kubernetes Jobs receive it in plain environment variables.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct JobConfig {
    /// The one worker this process runs (`TARGET`: a Job of cluster mode), by its seed name;
    /// none: a loader and a connector of the backfill, for as long as the node runs.
    pub target: Option<String>,
    /// The start command's other fields (`JOB_EXTRA`) as a JSON object: a graph's symbols and
    /// settings, the attempt, …
    pub extra: Option<String>,
    pub queue_id: Option<String>,
    pub symbol: Option<String>,
    /// `api_candles_<interval>` (e.g. `api_candles_5m`), `api_agg_trades` or `api_trades`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub kafka_topic: Option<String>,
    pub collection_name: Option<String>,
    /// `YYYY-MM-DD:YYYY-MM-DD`
    pub time_range: Option<String>,
}

impl JobConfig {
    pub fn is_set(&self) -> bool {
        *self != JobConfig::default()
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// JSON lines instead of human-readable output.
    pub json: bool,
    /// A `tracing` filter, e.g. `info` or `streamforge=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { json: false, level: "info,actix_server=warn".into() }
    }
}

fn valid_url(url: &str, schemes: &[&str]) -> bool {
    url.split_once("://").is_some_and(|(s, rest)| schemes.contains(&s) && !rest.is_empty())
}

impl Config {
    /// Checks every field without touching the network or the disk; returns all problems.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.node.id.trim().is_empty() {
            errs.push("node.id: must not be empty (use the pod name, e.g. streamforge-0)".into());
        }
        if self.node.admin_addr.parse::<SocketAddr>().is_err() {
            errs.push(format!(
                "node.admin_addr: {:?} is not HOST:PORT with an IP host (e.g. 127.0.0.1:9400)",
                self.node.admin_addr
            ));
        }
        if self.queue_manager.max_attempts == 0 {
            errs.push("queue_manager.max_attempts: must be at least 1".into());
        }
        if self.queue_manager.lease_ms < 1_000 {
            errs.push("queue_manager.lease_ms: must be at least 1000".into());
        }
        if self.queue_manager.stall_after_ms < 100 {
            errs.push("queue_manager.stall_after_ms: must be at least 100".into());
        }
        if self.admin.token.is_some() && self.admin.token_file.is_some() {
            errs.push("admin.token and admin.token_file: set one of them, not both".into());
        }
        if self.admin.token.as_ref().is_some_and(|t| t.0.trim().len() < 16) {
            errs.push("admin.token: use at least 16 characters".into());
        }
        if let Some(o) = &self.admin.oidc {
            if !(o.jwks_url.starts_with("http://") || o.jwks_url.starts_with("https://")) {
                errs.push(format!("admin.oidc.jwks_url: {:?} is not an http(s):// URL", o.jwks_url));
            }
            for (key, value) in
                [("issuer", &o.issuer), ("audience", &o.audience), ("role_claim", &o.role_claim), ("role", &o.role)]
            {
                if value.trim().is_empty() {
                    errs.push(format!("admin.oidc.{key}: must not be empty"));
                }
            }
        }
        let open = self.admin.token.is_none() && self.admin.token_file.is_none() && self.admin.oidc.is_none();
        let loopback = self.node.admin_addr.parse::<SocketAddr>().is_ok_and(|a| a.ip().is_loopback());
        if open && !loopback && self.queue_manager.enabled {
            errs.push(format!(
                "node.admin_addr: {} is reachable from other machines but the workflow API has no token: set admin.token_file (or admin.token, or admin.oidc), or bind 127.0.0.1",
                self.node.admin_addr
            ));
        }
        match self.bus.url.split_once("://") {
            Some(("memory", _)) => {}
            Some(("kafka", brokers)) if !brokers.is_empty() => {}
            _ => errs.push(format!("bus.url: {:?} is not memory:// or kafka://HOST:PORT", self.bus.url)),
        }
        if self.bus.replication < 1 {
            errs.push("bus.replication: must be at least 1".into());
        }
        let k = &self.bus.kafka;
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&k.compression.as_str()) {
            errs.push(format!("bus.kafka.compression: {:?} is not none, gzip, snappy, lz4 or zstd", k.compression));
        }
        if let Some(p) = &k.security_protocol {
            if !["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"].contains(&p.as_str()) {
                errs.push(format!(
                    "bus.kafka.security_protocol: {p:?} is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
                ));
            }
            if p.starts_with("SASL")
                && (k.sasl_mechanism.is_none() || k.sasl_username.is_none() || k.sasl_password_file.is_none())
            {
                errs.push(format!(
                    "bus.kafka: {p} needs sasl_mechanism (e.g. SCRAM-SHA-512), sasl_username and sasl_password_file"
                ));
            }
        }
        if k.prefetch_kbytes < 1024 {
            errs.push(format!(
                "bus.kafka.prefetch_kbytes: {} is below 1024 (a fetch must hold a whole record, up to 1 MB)",
                k.prefetch_kbytes
            ));
        }
        for key in k.librdkafka.keys() {
            if OWNED_LIBRDKAFKA_PROPERTIES.contains(&key.as_str()) {
                errs.push(format!(
                    "bus.kafka.librdkafka.\"{key}\": set by StreamForge itself (its delivery guarantees or another bus key); remove it"
                ));
            }
        }
        if self.bus.partitions == 0 {
            errs.push("bus.partitions: must be at least 1".into());
        }
        if self.bus.memory_bytes < 1 << 20 {
            errs.push(format!("bus.memory_bytes: {} is below 1 MiB (1048576)", self.bus.memory_bytes));
        }
        if self.store.url != "sqlite::memory:"
            && !valid_url(&self.store.url, &["sqlite", "postgres", "postgresql", "arangodb", "arangodbs"])
        {
            errs.push(format!(
                "store.url: {:?} is not sqlite://PATH, sqlite::memory:, postgres://USER@HOST:PORT/DB or arangodb://USER:PASSWORD@HOST:PORT/DB",
                self.store.url
            ));
        }
        if !valid_url(&self.binance.rest_url, &["http", "https"]) {
            errs.push(format!("binance.rest_url: {:?} is not an http(s) URL", self.binance.rest_url));
        }
        if !valid_url(&self.binance.ws_url, &["ws", "wss"]) {
            errs.push(format!("binance.ws_url: {:?} is not a ws(s) URL", self.binance.ws_url));
        }
        if let Some(url) = self.binance.archive_url.as_deref().filter(|u| !u.is_empty()) {
            if !valid_url(url, &["http", "https"]) {
                errs.push(format!("binance.archive_url: {url:?} is not an http(s) URL (\"\" turns the archive off)"));
            }
        }
        if !(self.binance.weight_share > 0.0 && self.binance.weight_share <= 1.0) {
            errs.push(format!("binance.weight_share: {} is not in (0, 1]", self.binance.weight_share));
        }
        if !(1..=1000).contains(&self.loader.page_limit) {
            errs.push(format!(
                "loader.page_limit: {} is outside 1-1000 (Binance's maximum is 1000)",
                self.loader.page_limit
            ));
        }
        if self.connector.batch_size == 0 {
            errs.push("connector.batch_size: must be at least 1".into());
        }
        if self.connector.flush_interval_ms == 0 {
            errs.push("connector.flush_interval_ms: must be at least 1".into());
        }
        if self.supervision.within_secs == 0 {
            errs.push("supervision.within_secs: must be at least 1".into());
        }
        if self.supervision.backoff_max_ms < self.supervision.backoff_min_ms {
            errs.push(format!(
                "supervision.backoff_max_ms: {} is below backoff_min_ms {}",
                self.supervision.backoff_max_ms, self.supervision.backoff_min_ms
            ));
        }
        if !(0.0..=1.0).contains(&self.supervision.backoff_jitter) {
            errs.push(format!("supervision.backoff_jitter: {} is outside 0-1", self.supervision.backoff_jitter));
        }
        if self.dummy.tick_ms == 0 {
            errs.push("dummy.tick_ms: must be at least 1".into());
        }
        if let Err(e) = crate::log::filter(&self.log.level) {
            errs.push(format!("log.level: {e}"));
        }
        if self.job.is_set() {
            self.validate_job(&mut errs);
        }
        if self.queue_manager.workers == WorkersMode::Kubernetes {
            self.validate_kubernetes(&mut errs);
        }
        for (i, s) in self.streams.iter().enumerate() {
            s.validate(i, &mut errs);
        }
        if !(self.node.replay_speed >= 0.0 && self.node.replay_speed.is_finite()) {
            errs.push(format!("node.replay_speed: {} is not a pace of 0 or more", self.node.replay_speed));
        }
        self.validate_monitor(&mut errs);
        for (i, c) in self.connectors.iter().enumerate() {
            if let Err(e) = crate::bus::validate_topic_name(&c.topic) {
                errs.push(format!("connectors[{i}].topic: {e}"));
            }
            if let Err(e) = validate_collection(&c.collection) {
                errs.push(format!("connectors[{i}].collection: {e}"));
            }
            let depth = self.streams.iter().any(|s| s.kind == "depth" && s.topic == c.topic);
            if depth && validate_collection(&format!("{}_books", c.collection)).is_err() {
                errs.push(format!(
                    "connectors[{i}].collection: {:?} is too long for a depth topic, whose book snapshots go to <collection>_books (at most 57 characters)",
                    c.collection
                ));
            }
        }
        errs
    }

    fn validate_monitor(&self, errs: &mut Vec<String>) {
        let m = &self.monitor;
        if m.push_ms < 100 {
            errs.push(format!(
                "monitor.push_ms: {} is below 100 (ten frames a second is what a page can draw)",
                m.push_ms
            ));
        }
        for (key, value, max) in [
            ("tape", m.tape, 1_000),
            ("candles", m.candles, 1_440),
            ("levels", m.levels, 20),
            ("client_buffer", m.client_buffer, 4_096),
            ("max_clients", m.max_clients, 10_000),
        ] {
            if !(1..=max).contains(&value) {
                errs.push(format!("monitor.{key}: {value} is outside 1-{max}"));
            }
        }
        if m.symbol.is_empty() || !m.symbol.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
            errs.push(format!("monitor.symbol: {:?} is not an upper-case symbol like ETHUSDT", m.symbol));
        }
    }

    fn validate_kubernetes(&self, errs: &mut Vec<String>) {
        let k = &self.kubernetes;
        if !cfg!(feature = "kubernetes") {
            errs.push("queue_manager.workers: \"kubernetes\" needs a binary built with `--features kubernetes`".into());
        }
        let dns_label = |v: &str| {
            !v.is_empty()
                && v.len() <= 63
                && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !v.starts_with('-')
                && !v.ends_with('-')
        };
        if !dns_label(&k.namespace) {
            errs.push(format!("kubernetes.namespace: {:?} is not a namespace name (a DNS label)", k.namespace));
        }
        if k.image.trim().is_empty() {
            errs.push("kubernetes.image: name the worker image".into());
        }
        if !["Always", "IfNotPresent", "Never"].contains(&k.image_pull_policy.as_str()) {
            errs.push(format!(
                "kubernetes.image_pull_policy: {:?} is not Always, IfNotPresent or Never",
                k.image_pull_policy
            ));
        }
        if !k.api_url.is_empty() && reqwest::Url::parse(&k.api_url).is_err() {
            errs.push(format!("kubernetes.api_url: {:?} is not a URL", k.api_url));
        }
        if k.backoff_limit < 0 {
            errs.push("kubernetes.backoff_limit: must not be negative".into());
        }
        if k.ttl_seconds_after_finished < 0 {
            errs.push("kubernetes.ttl_seconds_after_finished: must not be negative".into());
        }
        for (name, r) in [("worker_resources", &k.worker_resources), ("trainer_resources", &k.trainer_resources)] {
            for (key, q) in [
                ("cpu_request", &r.cpu_request),
                ("memory_request", &r.memory_request),
                ("cpu_limit", &r.cpu_limit),
                ("memory_limit", &r.memory_limit),
            ] {
                if !q.is_empty() && !is_quantity(q) {
                    errs.push(format!("kubernetes.{name}.{key}: {q:?} is not a quantity like 250m, 2 or 1Gi"));
                }
            }
        }
    }

    fn validate_job(&self, errs: &mut Vec<String>) {
        let j = &self.job;
        if let Some(extra) = &j.extra {
            if !matches!(serde_json::from_str(extra), Ok(serde_json::Value::Object(_))) {
                errs.push(format!("job.extra (JOB_EXTRA): {extra:?} is not a JSON object"));
            }
        }
        match j.target.as_deref().map(|t| (t, crate::workers::Target::parse(t))) {
            None | Some((_, Some(crate::workers::Target::LoaderProducer))) => {}
            Some((t, None)) => {
                let names: Vec<&str> = crate::workers::Target::ALL.iter().map(|t| t.name()).collect();
                errs.push(format!("job.target (TARGET): {t:?} is not one of {}", names.join(", ")));
                return;
            }
            // Any other worker checks its own fields when it starts, as it does a command's.
            Some((_, Some(_))) => {
                if j.queue_id.as_deref().is_none_or(str::is_empty) {
                    errs.push("job.queue_id (QUEUE_ID): required when a job names its target".into());
                }
                return;
            }
        }
        match j.symbol.as_deref() {
            None | Some("") => errs.push("job.symbol (SYMBOL): required when a job is configured, e.g. BTCUSDT".into()),
            Some(s) if !s.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                errs.push(format!("job.symbol (SYMBOL): {s:?} is not a Binance symbol like BTCUSDT"))
            }
            Some(_) => {}
        }
        match j.kind.as_deref() {
            None => errs.push("job.type (TYPE): required when a job is configured, e.g. api_candles_5m".into()),
            Some(k) if backfill_kind(k).is_none() => errs.push(format!(
                "job.type (TYPE): {k:?} is not supported; use api_candles_<interval> with a Binance interval (e.g. api_candles_1m), api_agg_trades or api_trades"
            )),
            Some(_) => {}
        }
        match j.time_range.as_deref() {
            None => errs.push(
                "job.time_range (TIME_RANGE): required when a job is configured, e.g. 2024-08-01:2024-08-02".into(),
            ),
            Some(r) => {
                if let Err(e) = parse_time_range(r) {
                    errs.push(format!("job.time_range (TIME_RANGE): {e}"));
                }
            }
        }
        if let Some(c) = &j.collection_name {
            if let Err(e) = validate_collection(c) {
                errs.push(format!("job.collection_name (COLLECTION_NAME): {e}"));
            }
        }
        if let Some(t) = &j.kafka_topic {
            if let Err(e) = crate::bus::validate_topic_name(t) {
                errs.push(format!("job.kafka_topic (KAFKA_TOPIC): {e}"));
            }
        }
    }
}
