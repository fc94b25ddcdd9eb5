//! The graph actor (the seeds' `graph-builder`): steps a [`GraphBuilder`] through aligned candles,
//! writes each snapshot through the store (vertices and edges) and announces it with a
//! `graph-snapshot` event on the bus for the trainer. Rows are taken in chunks so the actor stays
//! responsive; progress lives outside it, and a restarted actor rebuilds its rolling state from the
//! rows before the first unfinished one without writing them again.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::watch;

use super::Telemetry;
use crate::bus::{topics, Bus, OutRecord};
use crate::graph::{density, Aligned, GraphBuilder, GraphConfig};
use crate::model::{format_ms, EventStatus, GraphSnapshot, QueueEvent};
use crate::store::Store;
use crate::workers::Target;

/// Rows stepped per message.
const CHUNK: usize = 256;

/// What a snapshot looked like, for summaries.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SnapshotSummary {
    pub time: i64,
    /// Vertices with a candle at `time`.
    pub vertices: usize,
    pub edges: usize,
    pub density: f64,
    /// The strongest pairs by |correlation|, each once: (a, b, correlation).
    pub strongest: Vec<(String, String, f64)>,
}

impl SnapshotSummary {
    pub fn of(g: &GraphSnapshot, top: usize) -> SnapshotSummary {
        let mut pairs: Vec<(String, String, f64)> =
            g.edges.iter().filter(|e| e.from < e.to).map(|e| (e.from.clone(), e.to.clone(), e.weight)).collect();
        pairs.sort_by(|a, b| b.2.abs().total_cmp(&a.2.abs()).then_with(|| a.0.cmp(&b.0)));
        pairs.truncate(top);
        SnapshotSummary {
            time: g.time,
            vertices: g.vertices.iter().filter(|v| v.features.last().copied() == Some(1.0)).count(),
            edges: g.edges.len(),
            density: density(g),
            strongest: pairs,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct GraphProgress {
    /// The first row not stepped yet.
    pub next_row: usize,
    pub snapshots: Vec<SnapshotSummary>,
    pub done: bool,
}

pub struct GraphArgs {
    pub queue_id: String,
    pub config: GraphConfig,
    pub aligned: Arc<Aligned>,
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub telemetry: Telemetry,
    pub progress: Arc<watch::Sender<GraphProgress>>,
}

pub enum GraphMsg {
    Next,
}

pub struct GraphActor;

pub struct GraphState {
    args: GraphArgs,
    builder: GraphBuilder,
}

impl GraphState {
    fn event(&self, status: EventStatus) -> QueueEvent {
        QueueEvent::new(&self.args.queue_id, Target::GraphBuilder.name(), status).kind("graph")
    }

    /// Steps the next chunk of rows; returns whether rows are left.
    async fn chunk(&mut self) -> Result<bool, ActorProcessingErr> {
        let from = self.args.progress.borrow().next_row;
        let rows = &self.args.aligned.rows;
        let to = (from + CHUNK).min(rows.len());
        let mut made = Vec::new();
        for row in &rows[from..to] {
            if let Some(g) = self.builder.step(row) {
                self.args.store.put_graph(&g).await?;
                made.push(g);
            }
        }
        if !made.is_empty() {
            let events: Vec<OutRecord> = made
                .iter()
                .map(|g| {
                    let body = serde_json::json!({
                        "event": "graph-snapshot", "name": g.name, "time": g.time,
                        "window_start": g.window_start, "window_end": g.window_end,
                        "vertices": g.vertices.len(), "edges": g.edges.len(),
                    });
                    OutRecord::keyed(g.name.as_bytes(), body.to_string().into_bytes())
                })
                .collect();
            self.args.bus.publish(topics::GRAPH_SNAPSHOTS, events).await?;
        }
        let summaries: Vec<SnapshotSummary> = made.iter().map(|g| SnapshotSummary::of(g, 3)).collect();
        self.args.progress.send_modify(|p| {
            p.next_row = to;
            p.snapshots.extend(summaries);
        });
        let written = self.args.progress.borrow().snapshots.len() as u64;
        self.args.telemetry.emit(self.event(EventStatus::Loading).records_written(written)).await;
        Ok(to < rows.len())
    }
}

impl Actor for GraphActor {
    type Msg = GraphMsg;
    type State = GraphState;
    type Arguments = GraphArgs;

    async fn pre_start(&self, myself: ActorRef<GraphMsg>, args: GraphArgs) -> Result<GraphState, ActorProcessingErr> {
        args.bus.ensure_topic(topics::GRAPH_SNAPSHOTS, 1).await?;
        let mut builder = GraphBuilder::new(args.config.clone(), args.aligned.symbols.clone(), args.aligned.step_ms);
        // After a restart: the rolling state of the rows already done, without writing again.
        let done = args.progress.borrow().next_row;
        for row in &args.aligned.rows[..done] {
            builder.step(row);
        }
        let state = GraphState { args, builder };
        let message = format!(
            "Building {} over {} symbols from {}",
            state.args.config.name,
            state.args.aligned.symbols.len(),
            state.args.aligned.rows.get(done).map_or("-".into(), |r| format_ms(r.time))
        );
        state.args.telemetry.emit(state.event(EventStatus::Started).message(message)).await;
        myself.send_message(GraphMsg::Next)?;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<GraphMsg>,
        msg: GraphMsg,
        state: &mut GraphState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            GraphMsg::Next => {
                if state.chunk().await? {
                    myself.send_message(GraphMsg::Next)?;
                } else {
                    state.args.progress.send_modify(|p| p.done = true);
                    let n = state.args.progress.borrow().snapshots.len();
                    let message = format!("Built {n} snapshots of {}", state.args.config.name);
                    state
                        .args
                        .telemetry
                        .emit(state.event(EventStatus::Finished).records_written(n as u64).message(message))
                        .await;
                    myself.stop(None);
                }
            }
        }
        Ok(())
    }
}
