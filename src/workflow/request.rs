//! What a user asks for ([`WorkflowRequest`], the JSON of `POST /api/v1/workflows`) and what it
//! becomes once every field is checked ([`WorkflowSpec`]). Every problem is reported at once.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Step;
use crate::exchange::binance::{backfill_kind, SequencedKind};
use crate::model::{format_ms, now_ms, parse_time_range, Interval};

/// A seed data type: `api_candles_<interval>`, `api_agg_trades`, `api_trades` (REST backfills over a
/// time range) or `ws_trades`, `ws_agg_trades`, `ws_klines_<interval>`, `ws_depth` (live streams).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "api_candles_5m")]
pub struct DataType(String);

impl DataType {
    pub fn parse(s: &str) -> Result<DataType, String> {
        let known = match s {
            "api_agg_trades" | "api_trades" | "ws_trades" | "ws_agg_trades" | "ws_depth" | "dummy" => true,
            _ => s
                .strip_prefix("api_candles_")
                .or_else(|| s.strip_prefix("ws_klines_"))
                .is_some_and(|i| i.parse::<Interval>().is_ok()),
        };
        if known {
            Ok(DataType(s.to_owned()))
        } else {
            Err(format!(
                "unknown type {s:?}: expected api_candles_<interval>, api_agg_trades, api_trades, ws_trades, \
                 ws_agg_trades, ws_klines_<interval>, ws_depth or dummy (intervals 1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The test double's type: a dummy worker per symbol (seed 001 §4.5) that loads nothing.
    pub fn is_dummy(&self) -> bool {
        self.0 == "dummy"
    }

    /// A live WebSocket stream (no time range, runs until stopped).
    pub fn is_live(&self) -> bool {
        self.0.starts_with("ws_")
    }

    /// The WebSocket stream kind of a live type (`trade`, `aggTrade`, `kline_<i>`, `depth`).
    pub fn stream_kind(&self) -> Option<String> {
        match self.0.as_str() {
            "ws_trades" => Some("trade".into()),
            "ws_agg_trades" => Some("aggTrade".into()),
            "ws_depth" => Some("depth".into()),
            other => other.strip_prefix("ws_klines_").map(|i| format!("kline_{i}")),
        }
    }

    /// Whether a connector can store what its loader publishes (every type but `ws_depth`, whose
    /// diffs and book snapshots share one topic).
    pub fn is_storable(&self) -> bool {
        !self.is_dummy() && self.0 != "ws_depth"
    }

    /// What a REST loader pages through for this type; `None` for live types.
    pub fn backfill(&self) -> Option<Arc<dyn SequencedKind>> {
        backfill_kind(&self.0)
    }

    /// The candle interval of `api_candles_<i>` / `ws_klines_<i>`.
    pub fn candle_interval(&self) -> Option<Interval> {
        self.0.strip_prefix("api_candles_").or_else(|| self.0.strip_prefix("ws_klines_"))?.parse().ok()
    }
}

impl TryFrom<String> for DataType {
    type Error = String;
    fn try_from(s: String) -> Result<DataType, String> {
        DataType::parse(&s)
    }
}

impl From<DataType> for String {
    fn from(t: DataType) -> String {
        t.0
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How correlation graphs are built: the `graph` step's settings, and the defaults of
/// `streamforge graph` and `train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GraphSettings {
    /// Candles in the rolling correlation window.
    pub window: usize,
    /// Least |correlation| of an edge.
    pub threshold: f64,
    /// Edges kept per vertex, strongest first (0: all over the threshold).
    pub top_k: usize,
    /// A snapshot every this many candles.
    pub every: usize,
}

impl GraphSettings {
    /// The builder's configuration for graph family `name`: a pair needs half a window of
    /// returns (at least 2) before it may get an edge.
    pub fn config(&self, name: impl Into<String>) -> crate::graph::GraphConfig {
        crate::graph::GraphConfig {
            name: name.into(),
            window: self.window,
            min_periods: (self.window / 2).max(2),
            threshold: self.threshold,
            top_k: self.top_k,
            every: self.every,
        }
    }

    /// A family's default name: `<prefix>_<interval>_w<window>`, e.g. `corr_1h_w168`.
    pub fn family(&self, prefix: &str, interval: crate::model::Interval) -> String {
        format!("{prefix}_{interval}_w{}", self.window).to_ascii_lowercase()
    }
}

impl Default for GraphSettings {
    fn default() -> Self {
        GraphSettings { window: 168, threshold: 0.5, top_k: 5, every: 24 }
    }
}

/// How the `train` step trains the temporal GNN (defaults as `streamforge train`, except smaller
/// walk-forward parts so that a few days of minute candles make a fold).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSettings {
    /// Snapshots (steps) of history per sample.
    pub lookback: usize,
    /// Samples per walk-forward part.
    pub train: usize,
    pub validation: usize,
    pub test: usize,
    pub hidden: usize,
    pub epochs: usize,
    pub patience: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Seeds per model (seed, seed + 1, …).
    pub seeds: usize,
    pub seed: u64,
    /// `cpu`, `cuda` or `auto`.
    pub device: String,
    /// Where models go: `file://DIR` or `s3://BUCKET/PREFIX`.
    pub artifacts: String,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            lookback: 8,
            train: 1500,
            validation: 300,
            test: 300,
            hidden: 16,
            epochs: 15,
            patience: 3,
            batch_size: 32,
            learning_rate: 0.001,
            seeds: 5,
            seed: 7,
            device: "cpu".into(),
            artifacts: "file://./models".into(),
        }
    }
}

/// What a `dummy` workflow's workers do (the test double; for exercising queue-manager).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DummySettings {
    /// Ticks until a dummy finishes.
    pub ticks: u32,
    pub tick_ms: u64,
    /// Go silent after this many ticks, on attempts up to `hang_attempts`.
    pub hang_after: Option<u32>,
    pub hang_attempts: u32,
    /// Fail after this many ticks, on attempts up to `fail_attempts` (every attempt when unset).
    pub fail_after: Option<u32>,
    pub fail_attempts: Option<u32>,
}

impl Default for DummySettings {
    fn default() -> Self {
        DummySettings {
            ticks: 5,
            tick_ms: 100,
            hang_after: None,
            hang_attempts: 1,
            fail_after: None,
            fail_attempts: None,
        }
    }
}

/// `POST /api/v1/workflows` as sent. Unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"symbols": ["BTCUSDT", "ETHUSDT"], "types": ["api_candles_5m"], "time_range": "2024-08-01:2024-09-01", "steps": ["load", "store", "graph"]}))]
pub struct WorkflowRequest {
    /// Upper-case symbols listed by the exchange, e.g. `["BTCUSDT", "ETHUSDT"]`.
    pub symbols: Vec<String>,
    /// Seed data types, e.g. `["api_candles_5m", "api_trades"]`.
    pub types: Vec<String>,
    /// `START:END` (`2024-08-01:2024-09-01`, times as `YYYY-MM-DD[THH:MM[:SS]Z]` or epoch ms),
    /// end exclusive. Required for REST types unless the node is offline (then: each symbol's
    /// recorded span); refused for live types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_range: Option<String>,
    /// Default: `load, store` (`load, store, graph` when the types include candles of two or more
    /// symbols).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphSettings>,
    /// For `dummy` workflows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dummy: Option<DummySettings>,
    /// For the `train` step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<TrainSettings>,
    /// For the `derive` step: the intervals derived from the loaded candles, e.g. `["5m", "1h"]`
    /// (default: those of 5m, 15m, 1h, 4h and 1d that are whole multiples of the loaded interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derive: Option<Vec<String>>,
}

/// A request with every field checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowSpec {
    pub symbols: Vec<String>,
    pub types: Vec<DataType>,
    /// `[start, end)` in epoch ms; `None` for live streams, or offline for the recorded span.
    #[schema(value_type = Option<Vec<i64>>)]
    pub time_range: Option<(i64, i64)>,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub graph: GraphSettings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dummy: Option<DummySettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<TrainSettings>,
    /// The intervals of the `derive` step, into `candles_<interval>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub derive: Vec<String>,
}

impl WorkflowSpec {
    /// The `time_range` of a command: `START:END` as the seeds write it.
    pub fn range_text(range: (i64, i64)) -> String {
        format!("{}:{}", format_ms(range.0), format_ms(range.1))
    }

    /// Whether the workflow runs until stopped.
    pub fn is_live(&self) -> bool {
        self.types.iter().any(DataType::is_live)
    }

    /// The candle type the graph step reads (the first candle type of the request).
    pub fn graph_candles(&self) -> Option<&DataType> {
        self.types.iter().find(|t| t.candle_interval().is_some() && !t.is_live())
    }
}

/// Everything wrong with a request, one line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct RequestProblems(pub Vec<String>);

/// Binance opened on 2017-07-14: nothing can be loaded from before.
const EXCHANGE_OPENED_MS: i64 = 1_500_000_000_000;

/// What the `derive` step derives when the request names no intervals (those that are whole
/// multiples of the loaded interval).
const DERIVED_BY_DEFAULT: [&str; 5] = ["5m", "15m", "1h", "4h", "1d"];

impl WorkflowRequest {
    /// The `derive` step's intervals, checked against the loaded candles' interval (problems are
    /// added to `problems`); empty without the step.
    fn derive_intervals(&self, types: &[DataType], steps: &[Step], problems: &mut Vec<String>) -> Vec<String> {
        if !steps.contains(&Step::Derive) {
            if self.derive.is_some() {
                problems.push("derive: only for workflows with the derive step".to_owned());
            }
            return Vec::new();
        }
        let loaded = types.iter().find(|t| !t.is_live()).and_then(DataType::candle_interval);
        let Some(loaded) = loaded else {
            problems.push("steps: derive needs candles: add an api_candles_<interval> type".to_owned());
            return Vec::new();
        };
        let Some(asked) = &self.derive else {
            return DERIVED_BY_DEFAULT
                .iter()
                .filter_map(|i| i.parse::<Interval>().ok())
                .filter(|i| crate::model::derive::derivable(loaded, *i).is_ok())
                .map(|i| i.to_string())
                .collect();
        };
        if asked.is_empty() {
            problems.push("derive: name at least one interval, e.g. [\"5m\", \"1h\"]".to_owned());
        }
        let mut intervals = Vec::new();
        for i in asked {
            match i.parse::<Interval>() {
                Err(e) => problems.push(format!("derive: {e}")),
                Ok(i) if intervals.contains(&i.to_string()) => problems.push(format!("derive: {i} is named twice")),
                Ok(i) => match crate::model::derive::derivable(loaded, i) {
                    Ok(()) => intervals.push(i.to_string()),
                    Err(e) => problems.push(format!("derive: {e}")),
                },
            }
        }
        intervals
    }

    /// Checks every field. `listed`: the symbols the exchange lists (`exchangeInfo`), when known.
    /// `offline`: ranges may be left out (each symbol's recorded span is loaded).
    pub fn validate(&self, listed: Option<&BTreeSet<String>>, offline: bool) -> Result<WorkflowSpec, RequestProblems> {
        let mut problems = Vec::new();
        if self.symbols.is_empty() {
            problems.push("symbols: at least one symbol is required, e.g. [\"BTCUSDT\"]".to_owned());
        }
        let mut symbols = Vec::new();
        for s in &self.symbols {
            let shaped = (2..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            if !shaped {
                problems.push(format!("symbols: {s:?} is not a symbol: use 2-20 upper-case letters and digits"));
            } else if listed.is_some_and(|l| !l.contains(s)) {
                problems.push(format!("symbols: {s} is not listed by the exchange (exchangeInfo)"));
            } else if symbols.contains(s) {
                problems.push(format!("symbols: {s} is named twice"));
            } else {
                symbols.push(s.clone());
            }
        }
        if self.types.is_empty() {
            problems.push("types: at least one type is required, e.g. [\"api_candles_5m\"]".to_owned());
        }
        let mut types: Vec<DataType> = Vec::new();
        for t in &self.types {
            match DataType::parse(t) {
                Ok(t) if types.contains(&t) => problems.push(format!("types: {t} is named twice")),
                Ok(t) => types.push(t),
                Err(e) => problems.push(format!("types: {e}")),
            }
        }
        let dummy = types.iter().any(DataType::is_dummy);
        if dummy && types.len() > 1 {
            problems.push("types: dummy is a test type of its own; do not mix it with data types".to_owned());
        }
        let live = types.iter().filter(|t| t.is_live()).count();
        if live > 0 && live < types.len() {
            problems
                .push("types: a workflow is either a backfill (api_*) or a live stream (ws_*), not both".to_owned());
        }
        let time_range = match &self.time_range {
            Some(r) => match parse_time_range(r) {
                Ok((start, end)) => {
                    if start < EXCHANGE_OPENED_MS {
                        problems.push(format!(
                            "time_range: starts at {} before the exchange opened (2017-07-14)",
                            format_ms(start)
                        ));
                    }
                    if start > now_ms() {
                        problems.push(format!("time_range: starts at {} in the future", format_ms(start)));
                    }
                    Some((start, end))
                }
                Err(e) => {
                    problems.push(format!("time_range: {e}"));
                    None
                }
            },
            None => None,
        };
        if live > 0 && self.time_range.is_some() {
            problems.push("time_range: live streams (ws_*) have no range; they run until stopped".to_owned());
        }
        if live == 0 && !dummy && !types.is_empty() && self.time_range.is_none() && !offline {
            problems.push("time_range: required for REST types, e.g. \"2024-08-01:2024-09-01\"".to_owned());
        }
        let has_candles = types.iter().any(|t| t.candle_interval().is_some() && !t.is_live());
        let steps = match &self.steps {
            None if dummy => vec![Step::Load],
            None if !types.iter().any(DataType::is_storable) => vec![Step::Load],
            None if has_candles && symbols.len() > 1 => vec![Step::Load, Step::Store, Step::Graph],
            None => vec![Step::Load, Step::Store],
            Some(names) => {
                let mut steps = Vec::new();
                for name in names {
                    match name.parse::<Step>() {
                        Ok(s) if steps.contains(&s) => problems.push(format!("steps: {s} is named twice")),
                        Ok(s) => steps.push(s),
                        Err(e) => problems.push(format!("steps: {e}")),
                    }
                }
                if names.is_empty() {
                    problems.push("steps: at least one of load, store, verify, derive, graph, train".to_owned());
                }
                steps.sort();
                steps
            }
        };
        if steps.contains(&Step::Store) && !dummy && !types.is_empty() && !types.iter().any(DataType::is_storable) {
            problems.push("steps: store: ws_depth is published to its topic, not stored (yet); drop store".to_owned());
        }
        if dummy && steps.iter().any(|s| *s != Step::Load) {
            problems.push("steps: dummy workers only load (steps: [\"load\"])".to_owned());
        }
        if self.dummy.is_some() && !dummy {
            problems.push("dummy: only for workflows of type dummy".to_owned());
        }
        if steps.contains(&Step::Store) && !steps.contains(&Step::Load) {
            problems.push("steps: store writes what load loads; add load".to_owned());
        }
        if steps.contains(&Step::Verify) && !types.iter().any(|t| t.is_storable() && !t.is_live()) {
            problems.push(
                "steps: verify repairs stored REST series (api_candles_<interval>, api_agg_trades, api_trades): add one"
                    .to_owned(),
            );
        }
        if steps.contains(&Step::Graph) && !has_candles {
            problems.push("steps: graph needs candles: add an api_candles_<interval> type".to_owned());
        }
        if steps.contains(&Step::Train) && !cfg!(feature = "trainer") {
            problems.push("steps: train needs a binary built with the trainer (--features trainer)".to_owned());
        }
        if steps.contains(&Step::Train) && !has_candles {
            problems.push("steps: train needs candles: add an api_candles_<interval> type".to_owned());
        }
        if steps.iter().any(|s| matches!(s, Step::Graph | Step::Train)) && symbols.len() < 2 {
            problems.push("steps: graph and train correlate symbols: name at least two".to_owned());
        }
        if self.train.is_some() && !steps.contains(&Step::Train) {
            problems.push("train: only for workflows with the train step".to_owned());
        }
        let train = steps.contains(&Step::Train).then(|| self.train.clone().unwrap_or_default());
        if let Some(t) = &train {
            if t.lookback < 1 || t.seeds < 1 || t.epochs < 1 || t.batch_size < 1 || t.hidden < 1 {
                problems.push("train: lookback, seeds, epochs, batch_size and hidden must be at least 1".to_owned());
            }
            if !["cpu", "cuda", "auto"].contains(&t.device.as_str()) {
                problems.push(format!("train: device {:?} is not cpu, cuda or auto", t.device));
            }
            if !(t.artifacts.starts_with("file://") || t.artifacts.starts_with("s3://")) {
                problems.push(format!("train: artifacts {:?} is not file://DIR or s3://BUCKET/PREFIX", t.artifacts));
            }
        }
        let derive = self.derive_intervals(&types, &steps, &mut problems);
        let graph = self.graph.clone().unwrap_or_default();
        if self.graph.is_some() {
            problems.extend(graph.config("check").problems().into_iter().map(|p| format!("graph: {p}")));
        }
        if problems.is_empty() {
            let dummy = dummy.then(|| self.dummy.clone().unwrap_or_default());
            Ok(WorkflowSpec { symbols, types, time_range, steps, graph, dummy, train, derive })
        } else {
            Err(RequestProblems(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: serde_json::Value) -> WorkflowRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn seed_scenario_one_is_one_request() {
        let r = request(serde_json::json!({
            "symbols": ["BTCUSDT", "ETHUSDT"], "types": ["api_candles_5m", "api_trades"],
            "time_range": "2024-08-01:2024-09-01", "steps": ["load", "store", "graph"],
        }));
        let spec = r.validate(None, false).unwrap();
        assert_eq!(spec.steps, vec![Step::Load, Step::Store, Step::Graph]);
        assert_eq!(spec.time_range, Some((1_722_470_400_000, 1_725_148_800_000)));
        assert_eq!(spec.graph_candles().map(DataType::as_str), Some("api_candles_5m"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let r = request(serde_json::json!({
            "symbols": ["btcusdt", "NOPEUSDT"], "types": ["api_candles_7m", "ws_trades", "api_trades"],
            "time_range": "2024-09-01:2024-08-01", "steps": ["load", "fly"],
        }));
        let listed: BTreeSet<String> = ["BTCUSDT".to_owned()].into();
        let RequestProblems(p) = r.validate(Some(&listed), false).unwrap_err();
        let all = p.join("\n");
        for needle in [
            "\"btcusdt\" is not a symbol",
            "NOPEUSDT is not listed",
            "unknown type \"api_candles_7m\"",
            "either a backfill",
            "time_range: invalid time range",
            "unknown step \"fly\"",
            "live streams",
        ] {
            assert!(all.contains(needle), "{needle:?} missing from:\n{all}");
        }
    }

    #[test]
    fn ranges_are_required_online_and_optional_offline() {
        let r = request(serde_json::json!({"symbols": ["BTCUSDT"], "types": ["api_trades"]}));
        assert!(r.validate(None, false).unwrap_err().0[0].contains("required for REST types"));
        assert_eq!(r.validate(None, true).unwrap().time_range, None);
    }

    #[test]
    fn impossible_ranges_and_orphan_steps_are_refused() {
        let r = request(serde_json::json!({
            "symbols": ["BTCUSDT"], "types": ["api_trades"], "time_range": "2010-01-01:2010-02-01",
            "steps": ["store", "graph"],
        }));
        let all = r.validate(None, false).unwrap_err().0.join("\n");
        assert!(all.contains("before the exchange opened"), "{all}");
        assert!(all.contains("store writes what load loads"), "{all}");
        assert!(all.contains("graph needs candles"), "{all}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_value::<WorkflowRequest>(serde_json::json!({
            "symbols": ["BTCUSDT"], "types": ["api_trades"], "colour": "red",
        }))
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    }
}
