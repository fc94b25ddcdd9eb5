//! The worker host: the first child of a node's `workers` supervisor. It reads `queue-control`
//! (its own consumer group per node, so every node sees every command) and
//! - on `start` addressed to this node (`"node": "<node id>"`, as queue-manager sends them in
//!   embedded mode) turns the command into a worker and starts it under the supervisor;
//! - on `stop` stops exactly the workers of that `queue_id` (and `target`, `symbol`, `type`, when
//!   given; only this node's when it names a `node`);
//! - on `ping` answers with a `pong` for each of its running workers the ping addresses.
//!
//! A start that cannot be carried out (a bad field, no candles for a graph) is answered with an
//! `error` event marked `finished`: the task is over, and queue-manager fails its step.
//! A start for a connector that runs already and says `"drain": true` tells it that its loader
//! has published everything.
//! What the host started lives outside the actor, so a restarted host still knows its workers.
//!
//! In a process's one-task mode (a Job of cluster mode: `[job]` with a `target`) the host starts
//! the job's worker at once, takes the commands addressed to that task (no `node` needed), and
//! reports through [`HostShared::outcome`] when it has ended.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::Value;

use super::Target;
use crate::actors::connector::{self, ConnectorRoute, ConnectorShared};
use crate::actors::deriver::{Deriver, DeriverArgs};
use crate::actors::dummy::{self, DummyOptions};
use crate::actors::graph::GraphProgress;
use crate::actors::json_error_reason;
use crate::actors::loader;
use crate::actors::verifier::{Verifier, VerifierArgs, VerifySeries};
use crate::app::node::{stream_child, CONNECTION_MAX_AGE};
use crate::app::{BackfillWorkflow, NodeContext};
use crate::bus::{commit_positions, topics::QUEUE_CONTROL, Consumer};
use crate::config::StreamConfig;
use crate::exchange::binance::BinanceRest;
use crate::graph::align;
use crate::model::{parse_time_range, Command, EventStatus, Interval, QueueControl, QueueEvent};
use crate::store::Store;
use crate::supervision::{ChildSpec, ChildState, Restart, SupervisorMsg};
use crate::workflow::{DataType, DummySettings, GraphSettings};

/// A worker the host started.
#[derive(Debug, Clone)]
struct Started {
    target: Target,
    symbol: Option<String>,
    kind: Option<String>,
    /// Its id under the `workers` supervisor.
    child: String,
    /// The `producer` of its events.
    producer: String,
}

/// How the one task of a one-task process ended: `Err` with the reason when it failed.
pub type JobOutcome = Result<(), String>;

/// What the host started, kept across its restarts.
pub struct HostShared {
    workers: Mutex<BTreeMap<String, Vec<Started>>>,
    /// `<queue_id>/<collection>` → the workflow connector of that collection.
    connectors: Mutex<HashMap<String, Arc<ConnectorShared>>>,
    /// One-task mode: set once the task has ended.
    outcome: watch::Sender<Option<JobOutcome>>,
    /// When the host first started, Unix seconds.
    started_at: f64,
}

impl Default for HostShared {
    fn default() -> Self {
        HostShared {
            workers: Mutex::default(),
            connectors: Mutex::default(),
            outcome: watch::channel(None).0,
            started_at: crate::model::unix_seconds_now(),
        }
    }
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HostShared {
    /// One-task mode: resolves to how the task ended.
    pub fn outcome(&self) -> watch::Receiver<Option<JobOutcome>> {
        self.outcome.subscribe()
    }
}

pub struct HostArgs {
    pub ctx: NodeContext,
    pub shared: Arc<HostShared>,
    /// One-task mode: the `start` of this process's one worker.
    pub job: Option<QueueControl>,
}

pub enum HostMsg {
    Poll,
}

pub struct WorkerHost;

pub struct HostState {
    args: HostArgs,
    control: Box<dyn Consumer>,
    supervisor: Option<ActorRef<SupervisorMsg>>,
    rest: BinanceRest,
    producer: String,
    /// One-task mode: this process's events, and how the task ended as its worker said.
    told: Option<broadcast::Receiver<QueueEvent>>,
    said: Option<JobOutcome>,
}

/// Longest a supervisor call may take: a worker's graceful stop (flush and commit) included.
const SUPERVISOR_CALL_MS: u64 = 60_000;
/// A dummy holds nothing to flush: one that does not stop at once (it hangs) is killed soon.
const DUMMY_SHUTDOWN: Duration = Duration::from_millis(500);
/// Longest wait for commands in one poll.
const POLL_WAIT: Duration = Duration::from_millis(100);

/// Why a start failed, for the `error` event: the producer the task's events would have had.
struct StartFailed {
    producer: String,
    reason: String,
}

fn field<'a>(name: &str, value: &'a Option<String>) -> Result<&'a str, String> {
    value.as_deref().filter(|v| !v.is_empty()).ok_or_else(|| format!("the command has no `{name}`"))
}

fn extra<T: serde::de::DeserializeOwned>(cmd: &QueueControl, name: &str) -> Result<T, String> {
    let v = cmd.extra.get(name).cloned().unwrap_or(Value::Null);
    serde_json::from_value(v).map_err(|e| format!("the command's `{name}` is invalid: {e}"))
}

impl HostState {
    fn supervisor(&self) -> Result<&ActorRef<SupervisorMsg>, ActorProcessingErr> {
        Ok(self.supervisor.as_ref().ok_or("the worker host has no supervisor")?)
    }

    fn node(&self) -> &str {
        &self.args.ctx.config.node.id
    }

    /// The worker a `start` asks for, as child specs, with the producer of its events.
    async fn build(&mut self, cmd: &QueueControl, target: Target) -> Result<(ChildSpec, String), StartFailed> {
        let ctx = &self.args.ctx;
        let fail = |producer: &str, reason: String| StartFailed { producer: producer.to_owned(), reason };
        match target {
            Target::LoaderProducer => {
                let (symbol, kind) = (cmd.symbol.clone().unwrap_or_default(), cmd.kind.clone().unwrap_or_default());
                let producer = loader::producer_name(&kind, &symbol);
                let bad = |reason: String| fail(&producer, reason);
                field("symbol", &cmd.symbol).map_err(bad)?;
                let job = crate::exchange::binance::backfill_kind(&kind)
                    .ok_or_else(|| bad(format!("a loader cannot load type {kind:?}")))?;
                let range = parse_time_range(field("time_range", &cmd.time_range).map_err(bad)?)
                    .map_err(|e| bad(e.to_string()))?;
                let wf = BackfillWorkflow::new(
                    Some(cmd.queue_id.clone()),
                    &symbol,
                    job,
                    range,
                    cmd.kafka_topic.clone(),
                    cmd.collection_name.clone(),
                    ctx.config.loader.page_limit,
                );
                let spec = wf.loader(ctx, &self.rest).await.map_err(|e| bad(e.to_string()))?;
                Ok((spec, producer))
            }
            Target::LoaderWs => {
                let (symbol, kind) = (cmd.symbol.clone().unwrap_or_default(), cmd.kind.clone().unwrap_or_default());
                let producer = live_producer(&kind, &symbol);
                let bad = |reason: String| fail(&producer, reason);
                field("symbol", &cmd.symbol).map_err(bad)?;
                let stream = DataType::parse(&kind).ok().and_then(|t| t.stream_kind());
                let stream = stream.ok_or_else(|| bad(format!("a live loader cannot stream type {kind:?}")))?;
                let topic = field("kafka_topic", &cmd.kafka_topic).map_err(bad)?.to_owned();
                ctx.bus.ensure_topic(&topic, ctx.config.bus.partitions).await.map_err(|e| bad(e.to_string()))?;
                let id = format!("stream:{}:{kind}:{symbol}", cmd.queue_id);
                let entry = StreamConfig { kind: stream, symbols: vec![symbol.clone()], topic, ..Default::default() };
                let spec = stream_child(ctx, &entry, entry.symbols.clone(), id, CONNECTION_MAX_AGE)
                    .map_err(|e| bad(e.to_string()))?;
                Ok((spec, producer))
            }
            Target::Connector => {
                let collection = cmd.collection_name.clone().unwrap_or_default();
                let producer = connector::producer_name(&collection);
                let bad = |reason: String| fail(&producer, reason);
                field("collection_name", &cmd.collection_name).map_err(bad)?;
                crate::store::validate_collection(&collection).map_err(|e| bad(e.to_string()))?;
                let topic = field("kafka_topic", &cmd.kafka_topic).map_err(bad)?.to_owned();
                ctx.bus.ensure_topic(&topic, ctx.config.bus.partitions).await.map_err(|e| bad(e.to_string()))?;
                let shared = Arc::<ConnectorShared>::default();
                // `drain`: its loader finished before this connector started (a resumed workflow).
                shared.drain.store(drains(cmd).map_err(bad)?, Ordering::Release);
                let key = format!("{}/{collection}", cmd.queue_id);
                locked(&self.args.shared.connectors).insert(key, shared.clone());
                let route = ConnectorRoute {
                    queue_id: cmd.queue_id.clone(),
                    topic,
                    group: crate::bus::topics::connector_group(&collection),
                    collection,
                };
                Ok((ctx.connector_child(route, shared, Restart::Transient), producer))
            }
            Target::GraphBuilder => {
                let producer = Target::GraphBuilder.name();
                let bad = |reason: String| fail(producer, reason);
                let settings: GraphSettings = extra(cmd, "graph").map_err(bad)?;
                let name = field("collection_name", &cmd.collection_name).map_err(bad)?.to_owned();
                let (aligned, _) = stored_candles(&ctx.store, cmd).await.map_err(bad)?;
                if aligned.rows.len() <= settings.window {
                    let rows = aligned.rows.len();
                    return Err(bad(format!(
                        "{rows} candles per symbol are too few for a window of {}",
                        settings.window
                    )));
                }
                let config = settings.config(name);
                let progress = Arc::new(tokio::sync::watch::channel(GraphProgress::default()).0);
                let id = format!("graph:{}", cmd.queue_id);
                let spec = ctx.graph_child(id, cmd.queue_id.clone(), config, Arc::new(aligned), progress);
                Ok((spec, producer.to_owned()))
            }
            Target::GapVerifier => {
                let producer = Target::GapVerifier.name();
                let bad = |reason: String| fail(producer, reason);
                let series: Vec<VerifySeries> = extra(cmd, "series").map_err(bad)?;
                if series.is_empty() {
                    return Err(bad("no stored series to verify".into()));
                }
                let args = VerifierArgs {
                    queue_id: cmd.queue_id.clone(),
                    series,
                    store: ctx.store.clone(),
                    rest: ctx.binance_rest().map_err(|e| bad(e.to_string()))?,
                    telemetry: ctx.telemetry.clone(),
                };
                let id = format!("verify:{}", cmd.queue_id);
                // Transient: a failed repair is restarted (it is idempotent), a finished one is not.
                let spec = ChildSpec::new(id, "verifier", Restart::Transient, move || (Verifier, args.clone()));
                Ok((spec, producer.to_owned()))
            }
            Target::CandleDeriver => {
                let producer = Target::CandleDeriver.name();
                let bad = |reason: String| fail(producer, reason);
                let symbols: Vec<String> = extra(cmd, "symbols").map_err(bad)?;
                let collections: Vec<String> = extra(cmd, "collections").map_err(bad)?;
                if symbols.len() != collections.len() || symbols.is_empty() {
                    return Err(bad("every symbol needs its collection".into()));
                }
                let intervals: Vec<String> = extra(cmd, "intervals").map_err(bad)?;
                let intervals: Vec<Interval> = intervals
                    .iter()
                    .map(|i| i.parse::<Interval>().map_err(|e| bad(e.to_string())))
                    .collect::<Result<_, _>>()?;
                let range =
                    cmd.time_range.as_deref().map(parse_time_range).transpose().map_err(|e| bad(e.to_string()))?;
                let args = DeriverArgs {
                    queue_id: cmd.queue_id.clone(),
                    sources: symbols.into_iter().zip(collections).collect(),
                    intervals,
                    range,
                    store: ctx.store.clone(),
                    telemetry: ctx.telemetry.clone(),
                };
                let id = format!("derive:{}", cmd.queue_id);
                // Transient: a failed derivation is restarted (it is idempotent), a finished one is not.
                let spec = ChildSpec::new(id, "deriver", Restart::Transient, move || (Deriver, args.clone()));
                Ok((spec, producer.to_owned()))
            }
            Target::Dummy => {
                let symbol = cmd.symbol.clone();
                let producer = dummy::producer_name(&cmd.queue_id, symbol.as_deref());
                let settings: DummySettings = extra(cmd, "dummy").map_err(|r| fail(&producer, r))?;
                let attempt: u32 = extra::<Option<u32>>(cmd, "attempt").map_err(|r| fail(&producer, r))?.unwrap_or(1);
                let options = DummyOptions {
                    symbol,
                    simulate_loading: true,
                    finish_after: Some(settings.ticks),
                    hang_after: settings.hang_after.filter(|_| attempt <= settings.hang_attempts),
                    fail_after: settings.fail_after.filter(|_| settings.fail_attempts.is_none_or(|n| attempt <= n)),
                    hosted: true,
                    ..DummyOptions::new(cmd.queue_id.clone(), Duration::from_millis(settings.tick_ms))
                };
                let id = format!("dummy:{}:{}", cmd.queue_id, options.symbol.as_deref().unwrap_or("-"));
                // queue-manager restarts a workflow's dummy (a new child), not its supervisor.
                let spec = ctx.dummy_child(id, options, Restart::Temporary).with_shutdown(DUMMY_SHUTDOWN);
                Ok((spec, producer))
            }
            #[cfg(feature = "trainer")]
            Target::Trainer => {
                let producer = Target::Trainer.name();
                let bad = |reason: String| fail(producer, reason);
                let graph: GraphSettings = extra(cmd, "graph").map_err(bad)?;
                let t: crate::workflow::TrainSettings = extra(cmd, "train").map_err(bad)?;
                let name = field("collection_name", &cmd.collection_name).map_err(bad)?.to_owned();
                let (aligned, interval) = stored_candles(&ctx.store, cmd).await.map_err(bad)?;
                let opts = crate::app::train::TrainOptions {
                    data: crate::app::graph::GraphOptions {
                        config: (*ctx.config).clone(),
                        symbols: aligned.symbols.clone(),
                        interval,
                        start_ms: None,
                        end_ms: None,
                        offline_data: None,
                        graph: graph.config(name.clone()),
                    },
                    lookback: t.lookback,
                    eval: crate::trainer::evaluate::EvalConfig {
                        split: crate::trainer::split::SplitConfig {
                            train: t.train,
                            validation: t.validation,
                            test: t.test,
                            purge: graph.window + t.lookback + 1,
                        },
                        fit: crate::trainer::fit::FitConfig {
                            hidden: t.hidden,
                            epochs: t.epochs,
                            patience: t.patience,
                            batch_size: t.batch_size,
                            learning_rate: t.learning_rate,
                            seed: t.seed,
                        },
                        seeds: t.seeds,
                    },
                    artifacts: t.artifacts,
                    name,
                    device: t.device,
                };
                let args = super::train::TrainWorkerArgs {
                    ctx: ctx.clone(),
                    queue_id: cmd.queue_id.clone(),
                    aligned: Arc::new(aligned),
                    opts,
                };
                let id = format!("trainer:{}", cmd.queue_id);
                // Temporary: queue-manager, not a supervisor, starts a failed training again.
                let spec = ChildSpec::new(id, "trainer", Restart::Temporary, move || {
                    (super::train::TrainWorker, args.clone())
                });
                Ok((spec, producer.to_owned()))
            }
            #[cfg(not(feature = "trainer"))]
            Target::Trainer => {
                Err(fail(target.name(), "this binary was built without the trainer (--features trainer)".into()))
            }
        }
    }

    async fn start(&mut self, cmd: &QueueControl, target: Target) -> Result<(), ActorProcessingErr> {
        // A start for a worker that runs already (a restarted queue-manager resending its
        // commands) is answered by that worker.
        let running = locked(&self.args.shared.workers).get(&cmd.queue_id).is_some_and(|ws| {
            ws.iter().any(|w| {
                w.target == target && w.symbol == cmd.symbol && w.kind == cmd.kind && self.is_running(&w.child)
            })
        });
        if running {
            if target == Target::Connector && drains(cmd).unwrap_or(false) {
                let key = format!("{}/{}", cmd.queue_id, cmd.collection_name.as_deref().unwrap_or_default());
                if let Some(c) = locked(&self.args.shared.connectors).get(&key) {
                    tracing::info!(queue_id = %cmd.queue_id, collection = %key, "Its loader is done; the connector drains.");
                    c.drain.store(true, Ordering::Release);
                }
            }
            tracing::debug!(queue_id = %cmd.queue_id, %target, "Worker already running; start ignored.");
            return Ok(());
        }
        let outcome = match self.build(cmd, target).await {
            Ok((spec, producer)) => {
                let child = spec.id.clone();
                let started = ractor::call_t!(self.supervisor()?, SupervisorMsg::StartChild, SUPERVISOR_CALL_MS, spec)?;
                match started {
                    Ok(()) => {
                        tracing::info!(queue_id = %cmd.queue_id, %target, %child, "Worker started on command.");
                        let entry =
                            Started { target, symbol: cmd.symbol.clone(), kind: cmd.kind.clone(), child, producer };
                        locked(&self.args.shared.workers).entry(cmd.queue_id.clone()).or_default().push(entry);
                        Ok(())
                    }
                    Err(reason) => Err(StartFailed { producer, reason }),
                }
            }
            Err(failed) => Err(failed),
        };
        if let Err(StartFailed { producer, reason }) = outcome {
            tracing::warn!(queue_id = %cmd.queue_id, %target, %reason, "Cannot start the worker.");
            let mut ev = QueueEvent::new(&cmd.queue_id, &producer, EventStatus::Error).message(reason);
            ev.finished = true;
            ev.symbol = cmd.symbol.clone();
            ev.kind = cmd.kind.clone();
            self.args.ctx.telemetry.emit(ev).await;
        }
        Ok(())
    }

    /// Stops the workers of the command's `queue_id` (only those of its `target`, `symbol` and
    /// `type` where it names them).
    async fn stop(&mut self, cmd: &QueueControl, target: Option<Target>) -> Result<(), ActorProcessingErr> {
        let queue_id = cmd.queue_id.as_str();
        let matches = |w: &Started| {
            target.is_none_or(|t| t == w.target)
                && (cmd.symbol.is_none() || cmd.symbol == w.symbol)
                && (cmd.kind.is_none() || cmd.kind == w.kind)
        };
        let stopping: Vec<Started> = {
            let mut workers = locked(&self.args.shared.workers);
            let Some(list) = workers.get_mut(queue_id) else { return Ok(()) };
            let (stop, keep): (Vec<Started>, Vec<Started>) = list.drain(..).partition(matches);
            *list = keep;
            if list.is_empty() {
                workers.remove(queue_id);
            }
            stop
        };
        let was_running: Vec<bool> = stopping.iter().map(|w| self.is_running(&w.child)).collect();
        for (w, running) in stopping.iter().zip(was_running) {
            ractor::call_t!(self.supervisor()?, SupervisorMsg::TerminateChild, SUPERVISOR_CALL_MS, w.child.clone())?;
            if running {
                let ev = QueueEvent::new(queue_id, &w.producer, EventStatus::Stopped).message("Stopped on command");
                self.args.ctx.telemetry.emit(ev).await;
            }
        }
        if !locked(&self.args.shared.workers).contains_key(queue_id) {
            locked(&self.args.shared.connectors).retain(|k, _| !k.starts_with(&format!("{queue_id}/")));
        }
        Ok(())
    }

    fn is_running(&self, child: &str) -> bool {
        self.args.ctx.view.find(child).is_some_and(|c| c.state == ChildState::Running)
    }

    /// A `pong` for each running worker the ping addresses.
    async fn pong(&mut self, cmd: &QueueControl, target: Option<Target>) {
        let addressed: Vec<(String, Started)> = locked(&self.args.shared.workers)
            .iter()
            .filter(|(q, _)| cmd.queue_id == "*" || **q == cmd.queue_id)
            .flat_map(|(q, ws)| ws.iter().map(move |w| (q.clone(), w.clone())))
            .filter(|(_, w)| target.is_none_or(|t| t == w.target))
            .collect();
        let running: Vec<(String, Started)> =
            addressed.into_iter().filter(|(_, w)| self.is_running(&w.child)).collect();
        for (queue_id, w) in running {
            let ev = QueueEvent::new(&queue_id, &w.producer, EventStatus::Pong).message(format!(
                "{} on {}",
                w.child,
                self.node()
            ));
            self.args.ctx.telemetry.emit(reply_to(ev, cmd)).await;
        }
    }

    async fn handle_commands(&mut self) -> Result<(), ActorProcessingErr> {
        let messages = self.control.poll(100, POLL_WAIT).await?;
        for m in &messages {
            let cmd: QueueControl = match serde_json::from_slice(&m.payload) {
                Ok(c) => c,
                Err(e) => {
                    let reason = json_error_reason(&e);
                    self.args.ctx.dead_letters.send(&self.producer, m, reason, &e.to_string()).await?;
                    continue;
                }
            };
            // A one-task process reads `queue-control` from its beginning (a new consumer group):
            // stops and pings sent before it started are not for it (a stop of the attempt before).
            if self.args.job.is_some() && cmd.command != Command::Start && cmd.timestamp < self.args.shared.started_at {
                continue;
            }
            let target = match cmd.target.as_deref() {
                None | Some("*") => None,
                Some(name) => match Target::parse(name) {
                    Some(t) => Some(t),
                    None => continue,
                },
            };
            match cmd.command {
                Command::Start => {
                    let here = cmd.extra.get("node").and_then(Value::as_str) == Some(self.node());
                    if let (true, Some(target)) = (here || self.is_job(&cmd), target) {
                        self.start(&cmd, target).await?;
                    }
                }
                // A stop naming a node is for that node's workers only (a manager letting go).
                Command::Stop if cmd.extra.get("node").and_then(Value::as_str).is_none_or(|n| n == self.node()) => {
                    self.stop(&cmd, target).await?
                }
                Command::Ping if target != Some(Target::Dummy) => self.pong(&cmd, target).await,
                Command::Stop | Command::Ping | Command::Other(_) => {}
            }
        }
        if !messages.is_empty() {
            self.control.commit(&commit_positions(&messages)).await?;
        }
        self.settle_job();
        Ok(())
    }

    /// Whether `cmd` is for this one-task process's task.
    fn is_job(&self, cmd: &QueueControl) -> bool {
        self.args.job.as_ref().is_some_and(|job| {
            job.queue_id == cmd.queue_id
                && job.target == cmd.target
                && job.symbol == cmd.symbol
                && job.kind == cmd.kind
                && job.collection_name == cmd.collection_name
        })
    }

    /// One-task mode: once the task's worker has ended (or was stopped, or never started), says
    /// how — as the worker reported it (`finished`, or an `error` that ends the task).
    fn settle_job(&mut self) {
        let (Some(job), Some(told)) = (&self.args.job, &mut self.told) else { return };
        if self.args.shared.outcome.borrow().is_some() {
            return;
        }
        loop {
            match told.try_recv() {
                Ok(ev) if ev.queue_id == job.queue_id => match ev.status {
                    EventStatus::Finished => self.said = Some(Ok(())),
                    EventStatus::Error if ev.finished => {
                        self.said = Some(Err(ev.message.unwrap_or_else(|| format!("{} failed", ev.producer))))
                    }
                    _ => {}
                },
                Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        let started = locked(&self.args.shared.workers).get(&job.queue_id).and_then(|ws| ws.first().cloned());
        let outcome = match started {
            // Stopped on command, or never started (its error event says why).
            None => self.said.take().unwrap_or(Ok(())),
            Some(w) if self.args.ctx.view.find(&w.child).is_some_and(|c| !c.state.ended()) => return,
            Some(w) => self.said.take().unwrap_or_else(|| Err(format!("{} ended without a report", w.child))),
        };
        tracing::info!(queue_id = %job.queue_id, ?outcome, "The job's worker has ended.");
        self.args.shared.outcome.send_replace(Some(outcome));
    }
}

/// The `start` of a one-task process's worker, from `[job]` (a Job's variables); `None` when the
/// job names no target (the node's older form: a backfill's loader and connector).
pub fn job_command(j: &crate::config::JobConfig) -> Option<QueueControl> {
    let target = Target::parse(j.target.as_deref()?)?;
    let mut cmd = QueueControl::new(Command::Start, j.queue_id.clone().unwrap_or_default());
    cmd.target = Some(target.name().to_owned());
    cmd.symbol = j.symbol.clone();
    cmd.kind = j.kind.clone();
    cmd.time_range = j.time_range.clone();
    cmd.kafka_topic = j.kafka_topic.clone();
    cmd.collection_name = j.collection_name.clone();
    if let Some(Ok(Value::Object(extra))) = j.extra.as_deref().map(serde_json::from_str::<Value>) {
        cmd.extra = extra;
    }
    Some(cmd)
}

/// Whether a connector's `start` says that its loader is done.
fn drains(cmd: &QueueControl) -> Result<bool, String> {
    Ok(extra::<Option<bool>>(cmd, "drain")?.unwrap_or(false))
}

/// The stored candles a graph or train command names (`symbols`, their `collections`,
/// `interval`, `time_range`), aligned on open time.
async fn stored_candles(
    store: &Arc<dyn Store>,
    cmd: &QueueControl,
) -> Result<(crate::graph::Aligned, Interval), String> {
    let symbols: Vec<String> = extra(cmd, "symbols")?;
    let collections: Vec<String> = extra(cmd, "collections")?;
    let interval: Interval =
        extra::<String>(cmd, "interval")?.parse().map_err(|e: crate::model::ParseError| e.to_string())?;
    let (from, to) = match &cmd.time_range {
        Some(r) => parse_time_range(r).map_err(|e| e.to_string())?,
        None => (i64::MIN, i64::MAX),
    };
    if symbols.len() != collections.len() || symbols.len() < 2 {
        return Err("at least two symbols are needed, each with its collection".into());
    }
    let mut series = Vec::with_capacity(symbols.len());
    for (symbol, collection) in symbols.iter().zip(&collections) {
        let candles = store.candles(collection, symbol, from, to).await.map_err(|e| e.to_string())?;
        series.push((symbol.clone(), candles));
    }
    Ok((align(&series, interval.millis())?, interval))
}

/// The `producer` of a live loader's task: `loader-ws-trades__ethusdt`.
pub fn live_producer(kind: &str, symbol: &str) -> String {
    format!("loader-{}__{}", kind.replace('_', "-"), symbol.to_ascii_lowercase())
}

/// A `pong` carries the ping's `ping_id` and `timestamp`, so that the sender can match it and
/// measure the round trip.
pub fn reply_to(mut pong: QueueEvent, ping: &QueueControl) -> QueueEvent {
    if let Some(id) = ping.extra.get("ping_id") {
        pong.extra.insert("ping_id".into(), id.clone());
    }
    pong.extra.insert("ping_timestamp".into(), ping.timestamp.into());
    pong
}

impl Actor for WorkerHost {
    type Msg = HostMsg;
    type State = HostState;
    type Arguments = HostArgs;

    async fn pre_start(&self, _myself: ActorRef<HostMsg>, args: HostArgs) -> Result<HostState, ActorProcessingErr> {
        let producer = format!("worker-host__{}", args.ctx.config.node.id);
        let group = crate::bus::topics::workers_group(&args.ctx.config.node.id);
        let control = args.ctx.bus.subscribe(&group, QUEUE_CONTROL).await?;
        let rest = args.ctx.binance_rest()?;
        Ok(HostState { args, control, supervisor: None, rest, producer, told: None, said: None })
    }

    async fn post_start(&self, myself: ActorRef<HostMsg>, state: &mut HostState) -> Result<(), ActorProcessingErr> {
        let supervisor = myself.try_get_supervisor().ok_or("the worker host needs a supervisor of its own")?;
        state.supervisor = Some(supervisor.into());
        // One-task mode: the job's worker starts with the host (a restarted host finds it running).
        if let Some(job) = state.args.job.clone() {
            let target = job.target.as_deref().and_then(Target::parse).ok_or("the job names no known target")?;
            state.told = Some(state.args.ctx.telemetry.subscribe());
            state.start(&job, target).await?;
        }
        myself.send_message(HostMsg::Poll)?;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<HostMsg>,
        _msg: HostMsg,
        state: &mut HostState,
    ) -> Result<(), ActorProcessingErr> {
        state.handle_commands().await?;
        myself.send_message(HostMsg::Poll)?;
        Ok(())
    }
}
