//! The monitor actor: reads the node's stream topics in its own consumer group
//! (`monitor-<node id>`), keeps the [`Hub`]'s boards, fills each symbol's candles from the store
//! once its first live trade shows where the stream begins, and pushes frames on time: changes
//! every `monitor.push_ms`, health every second (from the node's metrics and supervision tree,
//! the same numbers `/metrics` and `/api/v1/supervision` serve).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::Hub;
use crate::app::NodeContext;
use crate::bus::{commit_positions, Consumer};
use crate::model::{unix_seconds_now, DataRecord};
use crate::supervision::{ChildState, TreeNode};

/// One stream topic the monitor reads.
#[derive(Debug, Clone)]
pub struct MonitorSource {
    pub topic: String,
    /// The `[[streams]]` kind: `trade`, `aggTrade`, `kline_<i>`, `depth`.
    pub kind: String,
    pub symbols: Vec<String>,
    /// Where a connector stores this topic, if one does (the candles' history is read there).
    pub collection: Option<String>,
}

pub struct MonitorArgs {
    /// The node's bus, store, metrics, tree and lag source.
    pub ctx: NodeContext,
    pub hub: Arc<Hub>,
    pub sources: Vec<MonitorSource>,
}

pub enum MonitorMsg {
    Poll,
}

pub struct Monitor;

pub struct MonitorState {
    args: MonitorArgs,
    consumers: Vec<Box<dyn Consumer>>,
    /// Symbol → the topic its tape and candles come from (a `trade` stream before an
    /// `aggTrade` one, so that no trade counts twice) and the collection that stores it.
    trade_source: HashMap<String, (String, Option<String>)>,
    /// Symbols whose candles have been filled from the store.
    filled: Vec<String>,
    last_push: Instant,
    last_second: Instant,
    last_lag: Instant,
    started: f64,
}

/// How long one topic's poll waits for records.
const POLL_WAIT: Duration = Duration::from_millis(20);
const POLL_MAX: usize = 2_000;
/// Consumer lag is read from the bus this often (a round trip per group on Kafka).
const LAG_EVERY: Duration = Duration::from_secs(5);

impl MonitorState {
    fn apply(&mut self, topic: &str, record: DataRecord) {
        let symbol = record.symbol().to_owned();
        let takes_trades = self.trade_source.get(&symbol).is_some_and(|(t, _)| t == topic);
        self.args.hub.with_board(&symbol, |b| {
            b.messages += 1;
            match record {
                DataRecord::Trade(t) if takes_trades => b.trade(t),
                DataRecord::BookSnapshot(s) => b.book(s),
                DataRecord::DepthUpdate(_) => b.diff(),
                DataRecord::Trade(_) | DataRecord::Candle(_) => {}
            }
        });
    }

    /// Candles of the minutes before a symbol's first live trade, from its stored trades.
    async fn fill_from_store(&mut self) {
        let due: Vec<(String, String, (i64, i64))> = self
            .trade_source
            .iter()
            .filter(|(s, _)| !self.filled.contains(s))
            .filter_map(|(s, (_, coll))| {
                let first = self.args.hub.with_board(s, |b| b.first_live_trade).flatten()?;
                Some((s.clone(), coll.clone()?, first))
            })
            .collect();
        let window = self.args.hub.config().candles as i64 * 60_000;
        for (symbol, collection, (first_id, first_time)) in due {
            self.filled.push(symbol.clone());
            let from = first_time - first_time.rem_euclid(60_000) - window;
            match self.args.ctx.store.trades(&collection, &symbol, from, first_time + 1).await {
                Ok(stored) => {
                    let before: Vec<_> = stored.into_iter().filter(|t| t.id < first_id).collect();
                    tracing::info!(%symbol, %collection, trades = before.len(), "Dashboard candles filled from the store.");
                    self.args.hub.with_board(&symbol, |b| b.fill(&before));
                }
                // Not stored yet (a new node): the chart starts with the live trades.
                Err(error) => tracing::debug!(%symbol, %collection, %error, "No stored trades for the dashboard."),
            }
        }
    }

    fn health(&self) -> Value {
        let (m, node) = (&self.args.ctx.metrics, &self.args.ctx.config.node.id);
        let mut tree = json!({ "actors": 0, "running": 0, "restarting": 0, "stopped": 0, "restarts": 0, "down": [] });
        if let Some(root) = self.args.ctx.view.tree(node) {
            count(&root, &mut tree);
        }
        json!({
            "node": node,
            "uptime_s": (unix_seconds_now() - self.started).round(),
            "tree": tree,
            "metrics": {
                "consumer_lag": m.total("streamforge_consumer_lag"),
                "ws_reconnects": m.total("streamforge_ws_reconnects_total"),
                "book_resyncs": m.total("streamforge_book_resyncs_total"),
                "rest_weight_used": m.total("streamforge_rest_weight_used"),
                "dead_letters": m.total("streamforge_dead_letters_total"),
                "ws_messages": m.total("streamforge_ws_messages_total"),
                "actor_restarts": m.total("streamforge_actor_restarts_total"),
            },
            "clients": self.args.hub.clients(),
            "clients_dropped": m.total("streamforge_monitor_clients_dropped_total"),
        })
    }
}

/// Adds `node` and its descendants to the tree summary.
fn count(node: &TreeNode, summary: &mut Value) {
    let c = &node.child;
    let inc = |summary: &mut Value, key: &str, by: u64| {
        summary[key] = json!(summary[key].as_u64().unwrap_or(0) + by);
    };
    inc(summary, "actors", 1);
    inc(summary, "restarts", u64::from(c.restarts));
    let state = match c.state {
        ChildState::Running => "running",
        ChildState::Restarting => "restarting",
        ChildState::Stopped => "stopped",
        ChildState::Failed => "failed",
    };
    inc(summary, state, 1);
    if c.state != ChildState::Running {
        if let Some(down) = summary["down"].as_array_mut() {
            down.push(json!(c.id));
        }
    }
    for child in &node.children {
        count(child, summary);
    }
}

impl Actor for Monitor {
    type Msg = MonitorMsg;
    type State = MonitorState;
    type Arguments = MonitorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<MonitorMsg>,
        args: MonitorArgs,
    ) -> Result<MonitorState, ActorProcessingErr> {
        let group = crate::bus::topics::monitor_group(&args.ctx.config.node.id);
        let mut consumers = Vec::new();
        let mut trade_source: HashMap<String, (String, Option<String>)> = HashMap::new();
        for s in &args.sources {
            consumers.push(args.ctx.bus.subscribe(&group, &s.topic).await?);
            if s.kind == "trade" || s.kind == "aggTrade" {
                for sym in &s.symbols {
                    let better = !trade_source.contains_key(sym) || s.kind == "trade";
                    if better {
                        trade_source.insert(sym.clone(), (s.topic.clone(), s.collection.clone()));
                    }
                }
            }
        }
        myself.send_message(MonitorMsg::Poll)?;
        let now = Instant::now();
        Ok(MonitorState {
            args,
            consumers,
            trade_source,
            filled: Vec::new(),
            last_push: now,
            last_second: now,
            last_lag: now - LAG_EVERY,
            started: unix_seconds_now(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<MonitorMsg>,
        _msg: MonitorMsg,
        state: &mut MonitorState,
    ) -> Result<(), ActorProcessingErr> {
        let mut consumers = std::mem::take(&mut state.consumers);
        let polled = async {
            for consumer in consumers.iter_mut() {
                let messages = consumer.poll(POLL_MAX, POLL_WAIT).await?;
                if messages.is_empty() {
                    continue;
                }
                for m in &messages {
                    match DataRecord::from_bytes(&m.payload) {
                        Ok(record) => state.apply(&m.topic, record),
                        Err(_) => state.args.ctx.metrics.errors.with_label_values(&["monitor", "decode"]).inc(),
                    }
                }
                consumer.commit(&commit_positions(&messages)).await?;
            }
            Ok::<_, crate::bus::BusError>(())
        }
        .await;
        state.consumers = consumers;
        polled?;
        state.fill_from_store().await;
        let push_every = Duration::from_millis(state.args.hub.config().push_ms);
        if state.last_push.elapsed() >= push_every {
            state.last_push = Instant::now();
            state.args.hub.push_updates();
        }
        if state.last_lag.elapsed() >= LAG_EVERY {
            state.last_lag = Instant::now();
            state.args.ctx.lag.read(&state.args.ctx.metrics).await;
        }
        if state.last_second.elapsed() >= Duration::from_secs(1) {
            state.last_second = Instant::now();
            let health = state.health();
            state.args.hub.push_health(&health);
        }
        if state.consumers.is_empty() {
            // Nothing to read: wake up for the health frames only.
            myself.send_after(Duration::from_millis(200), || MonitorMsg::Poll);
        } else {
            myself.send_message(MonitorMsg::Poll)?;
        }
        Ok(())
    }
}
