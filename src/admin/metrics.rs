//! Every Prometheus metric of a node, named in one place: `streamforge_<what>_<unit>_total` for
//! counters, labels drawn from bounded sets (actor family, error kind — never a symbol or offset).

use prometheus::core::Metric as _;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Records an actor took in (from the exchange or the bus).
    pub records_in: IntCounterVec,
    /// Records an actor handed on (to the bus or the store).
    pub records_out: IntCounterVec,
    pub batches: IntCounterVec,
    pub batch_latency: HistogramVec,
    /// How long a stored record took to be committed, by actor and since when: `append` (its bus
    /// append time, i.e. when the loader published what the exchange sent) or `poll` (when the
    /// connector took it off the bus).
    pub record_latency: HistogramVec,
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
    /// WebSocket frames skipped, by reason (`malformed`, `binary`, `undecodable`).
    pub ws_bad_frames: IntCounterVec,
    /// Trades missed while a stream was away and fetched over REST, by stream kind.
    pub backfilled: IntCounterVec,
    /// Local order books rebuilt from a new snapshot, by reason (`gap`, `crossed`, `no_straddle`, `precision`, `overflow`).
    pub book_resyncs: IntCounterVec,
    /// Weight of the depth snapshot requests answered.
    pub book_snapshot_weight: IntCounter,
    /// Time from a depth loader's (re)connect, or a book's break, until every book of the
    /// connection is in sync again.
    pub book_sync_seconds: Histogram,
    /// Workflows this node's queue-manager follows, by status (`pending`, `running`).
    pub workflows: IntGaugeVec,
    /// Workflows ended under this node's queue-manager, by status (`finished`, `failed`, `stopped`).
    pub workflows_ended: IntCounterVec,
    /// Workers queue-manager restarted, by reason (`stalled`, `gave_up`).
    pub worker_restarts: IntCounterVec,
    /// Dashboard event streams open now.
    pub monitor_clients: IntGauge,
    /// Dashboard clients dropped for falling behind.
    pub monitor_dropped: IntCounter,
    /// Dashboard frames sent, by kind (`snapshot`, `update`, `health`).
    pub monitor_frames: IntCounterVec,
    /// Symbols this node's WebSocket loaders subscribe to now, by stream kind: a stream kind whose
    /// messages stop while this is above zero is silent.
    pub ws_symbols: IntGaugeVec,
    /// Supervisors that exceeded their restart intensity and gave up.
    pub supervisor_give_ups: IntCounter,
    /// Admin API responses, by status class (`2xx` … `5xx`).
    pub http_requests: IntCounterVec,
    /// Files asked of Binance's archive, by result (`ARCHIVE_RESULTS`).
    pub archive_files: IntCounterVec,
}

// The known label sets: every series below is exported at zero from start-up, so that `rate()`
// alerts and dashboards read 0 rather than "no data" before the first increment. The code that
// counts takes its labels from these sets; each owner's tests check that its labels are in them.
const OPEN_STATUSES: [&str; 2] = ["pending", "running"];
const ENDED_STATUSES: [&str; 3] = ["finished", "failed", "stopped"];
const MONITOR_FRAMES: [&str; 3] = ["snapshot", "update", "health"];
/// What a record's latency is counted from (`streamforge_record_latency_seconds{since}`).
pub const LATENCY_SINCE: [&str; 2] = ["append", "poll"];
pub const RESTART_REASONS: [&str; 2] = ["stalled", "gave_up"];
/// Families of the node's supervision tree (`ChildSpec::family`): `streamforge_actor_up` and
/// `streamforge_actor_restarts_total`.
pub const FAMILIES: [&str; 13] = [
    "supervisor",
    "admin",
    "monitor",
    "host",
    "queue-manager",
    "loader",
    "connector",
    "assigner",
    "graph",
    "verifier",
    "deriver",
    "dummy",
    "trainer",
];
/// Actors that count the records they take in, and those that count what they hand on.
pub const RECORDS_IN: [&str; 2] = ["loader", "connector"];
pub const RECORDS_OUT: [&str; 3] = ["loader", "connector", "loader-ws"];
/// Why an exchange call failed (`ExchangeError::metric_label`), counted as a loader's error kind.
pub const EXCHANGE_ERRORS: [&str; 8] =
    ["transport", "websocket", "rate_limited", "banned", "server", "rejected", "decode", "config"];
/// `streamforge_errors_total{actor, kind}` beside the loader's exchange errors.
pub const ERRORS: [(&str, &str); 7] = [
    ("connector", "injected"),
    ("connector", "store"),
    ("connector", "store_unavailable"),
    ("telemetry", "publish"),
    ("rest", "rate_limited"),
    ("rest", "banned"),
    ("monitor", "decode"),
];
/// Why a WebSocket frame was skipped (`BadFrame::reason`, and `undecodable` data).
pub const BAD_FRAMES: [&str; 3] = ["malformed", "binary", "undecodable"];
/// Why a message went to the dead-letter topic (`actors::dead_letter::json_error_reason`, and the
/// WebSocket loaders' bad frames).
pub const DEAD_LETTER_REASONS: [&str; 5] = ["wrong_schema", "malformed_json", "malformed", "binary", "undecodable"];
/// WebSocket stream kinds (`SequencedKind::label`, and `depth`); the sequenced ones backfill.
pub const STREAMS: [&str; 4] = ["aggTrade", "trade", "kline", "depth"];
pub const BACKFILLED_STREAMS: [&str; 3] = ["aggTrade", "trade", "kline"];
/// Why a local order book was rebuilt (`BookFault::reason`).
pub const BOOK_RESYNCS: [&str; 5] = ["gap", "no_straddle", "crossed", "precision", "overflow"];
/// queue-events statuses (`streamforge_queue_events_total{status}`).
pub const EVENT_STATUSES: [&str; 9] =
    ["started", "loading", "finished", "error", "pong", "gap", "restarting", "stopped", "other"];
/// What became of an archive file (`streamforge_archive_files_total{result}`): `verified` (used),
/// `missing` (not published: its span comes over REST), `checksum_mismatch` (one download whose
/// sha256 differs from its `.CHECKSUM`; downloaded again), `rejected` (given up: nothing of it
/// used, its span over REST).
pub const ARCHIVE_RESULTS: [&str; 4] = ["verified", "missing", "checksum_mismatch", "rejected"];
/// Status classes of `streamforge_http_requests_total{code}`.
pub const HTTP_CODES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];
/// The exchanges whose REST weight is reported.
const EXCHANGES: [&str; 1] = ["binance"];

/// A metric without labels, registered (it is there, at zero, from start-up).
fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, m: prometheus::Result<M>) -> M {
    let m = m.expect("metric definition is valid");
    registry.register(Box::new(m.clone())).expect("metric names are unique");
    m
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric definition is valid");
    registry.register(Box::new(c.clone())).expect("metric names are unique");
    c
}

/// Exports the series of `counter` (one label) for each of `values`, at zero.
fn at_zero(counter: &IntCounterVec, values: &[&str]) {
    for v in values {
        counter.with_label_values(&[v]).inc_by(0);
    }
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
        let record_latency = HistogramVec::new(
            HistogramOpts::new(
                "streamforge_record_latency_seconds",
                "Time from a record's bus append (since=append) or poll (since=poll) to the commit after it was stored.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0, 120.0,
            ]),
            &["actor", "since"],
        )
        .expect("metric definition is valid");
        registry.register(Box::new(record_latency.clone())).expect("metric names are unique");
        let book_sync_seconds = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "streamforge_book_sync_seconds",
                    "Time from a depth loader's (re)connect or a book's break until every book of the connection is in sync.",
                )
                .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0]),
            ),
        );
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
            record_latency,
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
            ws_bad_frames: counter(
                &registry,
                "streamforge_ws_bad_frames_total",
                "WebSocket frames skipped (counted and dead-lettered), by reason.",
                &["reason"],
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
            book_snapshot_weight: register(
                &registry,
                IntCounter::new(
                    "streamforge_book_snapshot_weight_total",
                    "Request weight of the depth snapshots answered.",
                ),
            ),
            book_sync_seconds,
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
            monitor_clients: register(
                &registry,
                IntGauge::new("streamforge_monitor_clients", "Dashboard event streams open."),
            ),
            monitor_dropped: register(
                &registry,
                IntCounter::new(
                    "streamforge_monitor_clients_dropped_total",
                    "Dashboard clients dropped because they fell behind.",
                ),
            ),
            monitor_frames: counter(
                &registry,
                "streamforge_monitor_frames_total",
                "Dashboard frames sent, by kind.",
                &["kind"],
            ),
            ws_symbols: gauge(
                &registry,
                "streamforge_ws_symbols",
                "Symbols the WebSocket loaders subscribe to, by stream kind.",
                &["stream"],
            ),
            supervisor_give_ups: register(
                &registry,
                IntCounter::new(
                    "streamforge_supervisor_give_ups_total",
                    "Supervisors that exceeded their restart intensity and gave up.",
                ),
            ),
            http_requests: counter(
                &registry,
                "streamforge_http_requests_total",
                "Admin API responses, by status class.",
                &["code"],
            ),
            archive_files: counter(
                &registry,
                "streamforge_archive_files_total",
                "Files asked of Binance's archive, by result.",
                &["result"],
            ),
            registry,
        };
        for since in LATENCY_SINCE {
            m.record_latency.with_label_values(&["connector", since]);
        }
        m.batch_latency.with_label_values(&["connector"]);
        at_zero(&m.batches, &["connector"]);
        at_zero(&m.restarts, &FAMILIES);
        for family in FAMILIES {
            m.actor_up.with_label_values(&[family]).add(0);
        }
        at_zero(&m.records_in, &RECORDS_IN);
        at_zero(&m.records_out, &RECORDS_OUT);
        at_zero(&m.archive_files, &ARCHIVE_RESULTS);
        for kind in EXCHANGE_ERRORS {
            m.errors.with_label_values(&["loader", kind]).inc_by(0);
        }
        for (actor, kind) in ERRORS {
            m.errors.with_label_values(&[actor, kind]).inc_by(0);
        }
        at_zero(&m.dead_letters, &DEAD_LETTER_REASONS);
        at_zero(&m.ws_messages, &STREAMS);
        at_zero(&m.ws_reconnects, &STREAMS);
        at_zero(&m.ws_bad_frames, &BAD_FRAMES);
        at_zero(&m.backfilled, &BACKFILLED_STREAMS);
        at_zero(&m.book_resyncs, &BOOK_RESYNCS);
        at_zero(&m.events, &EVENT_STATUSES);
        for exchange in EXCHANGES {
            m.rest_weight_used.with_label_values(&[exchange]).set(0);
        }
        at_zero(&m.monitor_frames, &MONITOR_FRAMES);
        for status in OPEN_STATUSES {
            m.workflows.with_label_values(&[status]).set(0);
        }
        at_zero(&m.workflows_ended, &ENDED_STATUSES);
        at_zero(&m.worker_restarts, &RESTART_REASONS);
        for stream in STREAMS {
            m.ws_symbols.with_label_values(&[stream]).set(0);
        }
        at_zero(&m.http_requests, &HTTP_CODES);
        m
    }

    /// Counts an admin API response of `status` under its class.
    pub fn http_response(&self, status: u16) {
        let class = match status {
            ..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.http_requests.with_label_values(&[class]).inc();
    }

    /// The sum of every series of the metric family `name` (0 when it has none yet).
    pub fn total(&self, name: &str) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| {
                let counter = f.get_field_type() == prometheus::proto::MetricType::COUNTER;
                f.get_metric()
                    .iter()
                    .map(move |m| if counter { m.get_counter().get_value() } else { m.get_gauge().get_value() })
            })
            .sum::<f64>()
            + 0.0 // an empty sum is -0.0
    }

    /// The `q` quantile (0..=1) of the connectors' record latency since `since` (`append` or `poll`),
    /// in seconds, interpolated within its bucket as Prometheus' `histogram_quantile` does; `None`
    /// before anything was stored.
    pub fn record_latency_quantile(&self, since: &str, q: f64) -> Option<f64> {
        let h = self.record_latency.with_label_values(&["connector", since]).metric();
        let h = h.get_histogram();
        let total = h.get_sample_count() as f64;
        if total == 0.0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for b in h.get_bucket() {
            let (upper, count) = (b.upper_bound(), b.cumulative_count() as f64);
            if count >= rank {
                let inside = count - below;
                return Some(if inside == 0.0 { upper } else { lower + (upper - lower) * (rank - below) / inside });
            }
            (lower, below) = (upper, count);
        }
        // Beyond the last bucket: its bound is the best that can be said.
        Some(lower)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The series of `name` whose labels include every pair of `labels`, with its value.
    fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            let matches = if labels.is_empty() {
                rest.is_empty()
            } else {
                labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            };
            matches.then(|| value.parse().ok()).flatten()
        })
    }

    #[test]
    fn every_known_label_set_is_exported_at_zero_before_anything_happens() {
        let text = Metrics::new().render();
        let zero = |name: &str, labels: &[(&str, &str)]| {
            assert_eq!(value(&text, name, labels), Some(0.0), "{name} {labels:?} in\n{text}");
        };
        for family in FAMILIES {
            zero("streamforge_actor_up", &[("actor", family)]);
            zero("streamforge_actor_restarts_total", &[("actor", family)]);
        }
        for actor in RECORDS_IN {
            zero("streamforge_records_in_total", &[("actor", actor)]);
        }
        for actor in RECORDS_OUT {
            zero("streamforge_records_out_total", &[("actor", actor)]);
        }
        for kind in EXCHANGE_ERRORS {
            zero("streamforge_errors_total", &[("actor", "loader"), ("kind", kind)]);
        }
        for (actor, kind) in ERRORS {
            zero("streamforge_errors_total", &[("actor", actor), ("kind", kind)]);
        }
        for reason in DEAD_LETTER_REASONS {
            zero("streamforge_dead_letters_total", &[("reason", reason)]);
        }
        for stream in STREAMS {
            zero("streamforge_ws_messages_total", &[("stream", stream)]);
            zero("streamforge_ws_reconnects_total", &[("stream", stream)]);
        }
        for stream in BACKFILLED_STREAMS {
            zero("streamforge_backfilled_trades_total", &[("stream", stream)]);
        }
        for reason in BAD_FRAMES {
            zero("streamforge_ws_bad_frames_total", &[("reason", reason)]);
        }
        for reason in BOOK_RESYNCS {
            zero("streamforge_book_resyncs_total", &[("reason", reason)]);
        }
        for status in EVENT_STATUSES {
            zero("streamforge_queue_events_total", &[("status", status)]);
        }
        zero("streamforge_batches_total", &[("actor", "connector")]);
        zero("streamforge_batch_latency_seconds_count", &[("actor", "connector")]);
        zero("streamforge_rest_weight_used", &[("exchange", "binance")]);
        zero("streamforge_monitor_clients", &[]);
        zero("streamforge_book_snapshot_weight_total", &[]);
        zero("streamforge_book_sync_seconds_count", &[]);
        zero("streamforge_supervisor_give_ups_total", &[]);
        for stream in STREAMS {
            zero("streamforge_ws_symbols", &[("stream", stream)]);
        }
        for code in HTTP_CODES {
            zero("streamforge_http_requests_total", &[("code", code)]);
        }
    }

    #[test]
    fn responses_are_counted_by_status_class() {
        let m = Metrics::new();
        for status in [200, 204, 302, 400, 401, 404, 500, 503] {
            m.http_response(status);
        }
        let text = m.render();
        for (code, n) in [("2xx", 2.0), ("3xx", 1.0), ("4xx", 3.0), ("5xx", 2.0)] {
            assert_eq!(value(&text, "streamforge_http_requests_total", &[("code", code)]), Some(n), "{code}");
        }
    }
}
