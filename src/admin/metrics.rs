//! Every Prometheus metric of a node, named in one place: `streamforge_<what>_<unit>_total` for
//! counters, labels drawn from bounded sets (actor family, error kind — never a symbol or offset).

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    /// Records an actor took in (from the exchange or the bus).
    pub records_in: IntCounterVec,
    /// Records an actor handed on (to the bus or the store).
    pub records_out: IntCounterVec,
    pub batches: IntCounterVec,
    pub batch_latency: HistogramVec,
    pub errors: IntCounterVec,
    pub restarts: IntCounterVec,
    pub actor_up: IntGaugeVec,
    pub dead_letters: IntCounterVec,
    pub events: IntCounterVec,
    pub rest_weight_used: IntGaugeVec,
    /// Records not yet committed by a consumer group, per partition (what KEDA scales on).
    pub consumer_lag: IntGaugeVec,
    /// WebSocket messages received, by stream kind (`aggTrade`, `trade`, `depth`, `kline`).
    pub ws_messages: IntCounterVec,
    /// WebSocket connections lost and opened again, by stream kind.
    pub ws_reconnects: IntCounterVec,
    /// Trades missed while a stream was away and fetched over REST, by stream kind.
    pub backfilled: IntCounterVec,
    /// Local order books rebuilt from a new snapshot, by reason (`gap`, `crossed`, `no_straddle`).
    pub book_resyncs: IntCounterVec,
    /// Workflows this node's queue-manager follows, by status (`pending`, `running`).
    pub workflows: IntGaugeVec,
    /// Workflows ended under this node's queue-manager, by status (`finished`, `failed`, `stopped`).
    pub workflows_ended: IntCounterVec,
    /// Workers queue-manager restarted, by reason (`stalled`, `gave_up`).
    pub worker_restarts: IntCounterVec,
}

/// The label sets of the workflow series, there (at zero) from start-up.
const OPEN_STATUSES: [&str; 2] = ["pending", "running"];
const ENDED_STATUSES: [&str; 3] = ["finished", "failed", "stopped"];
pub const RESTART_REASONS: [&str; 2] = ["stalled", "gave_up"];

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric definition is valid");
    registry.register(Box::new(c.clone())).expect("metric names are unique");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("metric definition is valid");
    registry.register(Box::new(g.clone())).expect("metric names are unique");
    g
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let batch_latency = HistogramVec::new(
            HistogramOpts::new("streamforge_batch_latency_seconds", "Time to write one batch to its sink.")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            &["actor"],
        )
        .expect("metric definition is valid");
        registry.register(Box::new(batch_latency.clone())).expect("metric names are unique");
        let m = Metrics {
            records_in: counter(&registry, "streamforge_records_in_total", "Records taken in, by actor.", &["actor"]),
            records_out: counter(
                &registry,
                "streamforge_records_out_total",
                "Records handed on, by actor.",
                &["actor"],
            ),
            batches: counter(&registry, "streamforge_batches_total", "Batches written, by actor.", &["actor"]),
            batch_latency,
            errors: counter(&registry, "streamforge_errors_total", "Errors, by actor and kind.", &["actor", "kind"]),
            restarts: counter(
                &registry,
                "streamforge_actor_restarts_total",
                "Restarts by a supervisor, by actor.",
                &["actor"],
            ),
            actor_up: gauge(&registry, "streamforge_actor_up", "Running instances, by actor.", &["actor"]),
            dead_letters: counter(
                &registry,
                "streamforge_dead_letters_total",
                "Messages sent to the dead-letter topic, by reason.",
                &["reason"],
            ),
            ws_messages: counter(
                &registry,
                "streamforge_ws_messages_total",
                "WebSocket messages received, by stream kind.",
                &["stream"],
            ),
            ws_reconnects: counter(
                &registry,
                "streamforge_ws_reconnects_total",
                "WebSocket connections lost and opened again, by stream kind.",
                &["stream"],
            ),
            backfilled: counter(
                &registry,
                "streamforge_backfilled_trades_total",
                "Trades missed during a reconnect and fetched over REST, by stream kind.",
                &["stream"],
            ),
            book_resyncs: counter(
                &registry,
                "streamforge_book_resyncs_total",
                "Local order books rebuilt from a new snapshot, by reason.",
                &["reason"],
            ),
            events: counter(
                &registry,
                "streamforge_queue_events_total",
                "queue-events published, by status.",
                &["status"],
            ),
            rest_weight_used: gauge(
                &registry,
                "streamforge_rest_weight_used",
                "Last X-MBX-USED-WEIGHT-1M reported by the exchange.",
                &["exchange"],
            ),
            consumer_lag: gauge(
                &registry,
                "streamforge_consumer_lag",
                "Records of a topic partition not yet committed by a consumer group.",
                &["group", "topic", "partition"],
            ),
            workflows: gauge(
                &registry,
                "streamforge_workflows",
                "Workflows this node's queue-manager follows, by status.",
                &["status"],
            ),
            workflows_ended: counter(
                &registry,
                "streamforge_workflows_ended_total",
                "Workflows ended under this node's queue-manager, by status.",
                &["status"],
            ),
            worker_restarts: counter(
                &registry,
                "streamforge_worker_restarts_total",
                "Workers queue-manager restarted, by reason.",
                &["reason"],
            ),
            registry,
        };
        for status in OPEN_STATUSES {
            m.workflows.with_label_values(&[status]).set(0);
        }
        for status in ENDED_STATUSES {
            m.workflows_ended.with_label_values(&[status]).inc_by(0);
        }
        for reason in RESTART_REASONS {
            m.worker_restarts.with_label_values(&[reason]).inc_by(0);
        }
        m
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
