//! queue-manager, "the brain" (seed 001 §4.1): takes workflow requests, writes their records,
//! sends `start` commands on `queue-control` for each step as its turn comes, follows the
//! workers' reports on `queue-events`, and writes every decision into the workflow's history.
//!
//! It runs as an actor in the node's tree (`queue-manager`); the HTTP API reaches it through a
//! [`ManagerHandle`], which also fans the events it reads out to API listeners (pings, the event
//! stream). Open workflows are reloaded from the store when it (re)starts.
//!
//! Workers are started and stopped through a [`Launcher`]: in embedded mode (the default) as
//! actors of this node's tree, in cluster mode as Kubernetes Jobs (see [`crate::workers::launch`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::broadcast;

use super::{new_queue_id, DataType, RequestProblems, Status, Step, Task, Workflow, WorkflowRequest, WorkflowSpec};
use crate::actors::verifier::VerifySeries;
use crate::actors::{connector, dummy, json_error_reason, loader};
use crate::app::NodeContext;
use crate::bus::{commit_positions, topics, Consumer};
use crate::exchange::binance::BinanceRest;
use crate::model::{now_ms, Command, EventStatus, Interval, QueueControl, QueueEvent};
use crate::replay::ReplayData;
use crate::store::{collection_name, WorkflowQuery};
use crate::workers::host::live_producer;
use crate::workers::launch::{attempt_of, stop_for, Launcher, WorkerExit};
use crate::workers::Target;

/// Why a request was not carried out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ManagerError {
    #[error("invalid workflow: {0}")]
    Invalid(RequestProblems),
    #[error("workflow {0} not found")]
    NotFound(String),
    #[error("workflow {id} is already {status}")]
    Ended { id: String, status: Status },
    #[error("queue-manager is unavailable: {0}")]
    Unavailable(String),
}

pub enum ManagerMsg {
    Submit(Box<WorkflowRequest>, RpcReplyPort<Result<Workflow, ManagerError>>),
    Stop(String, RpcReplyPort<Result<Workflow, ManagerError>>),
    Poll,
}

/// How the API reaches queue-manager; survives the actor's restarts.
#[derive(Clone)]
pub struct ManagerHandle {
    actor: Arc<Mutex<Option<ActorRef<ManagerMsg>>>>,
    events: broadcast::Sender<QueueEvent>,
}

impl Default for ManagerHandle {
    fn default() -> Self {
        ManagerHandle { actor: Arc::default(), events: broadcast::channel(EVENT_FANOUT).0 }
    }
}

/// Events buffered for slow API listeners before they miss some.
const EVENT_FANOUT: usize = 4096;
/// Longest an API call waits for queue-manager (a submit writes the record and the commands).
const CALL_MS: u64 = 30_000;

impl ManagerHandle {
    fn actor(&self) -> Result<ActorRef<ManagerMsg>, ManagerError> {
        self.actor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| ManagerError::Unavailable("it is (re)starting; try again".into()))
    }

    pub async fn submit(&self, request: WorkflowRequest) -> Result<Workflow, ManagerError> {
        let actor = self.actor()?;
        ractor::call_t!(actor, ManagerMsg::Submit, CALL_MS, Box::new(request))
            .map_err(|e| ManagerError::Unavailable(e.to_string()))?
    }

    pub async fn stop(&self, id: &str) -> Result<Workflow, ManagerError> {
        let actor = self.actor()?;
        ractor::call_t!(actor, ManagerMsg::Stop, CALL_MS, id.to_owned())
            .map_err(|e| ManagerError::Unavailable(e.to_string()))?
    }

    /// Every event queue-manager reads from now on.
    pub fn events(&self) -> broadcast::Receiver<QueueEvent> {
        self.events.subscribe()
    }
}

pub struct ManagerArgs {
    pub ctx: NodeContext,
    pub handle: ManagerHandle,
    /// Offline: the recording, whose spans stand in for ranges left out.
    pub recorded: Option<Arc<ReplayData>>,
}

pub struct QueueManager;

pub struct ManagerState {
    args: ManagerArgs,
    launcher: Box<dyn Launcher>,
    /// Starts the launcher could not carry out, handled with its exits on the next poll.
    unstarted: Vec<WorkerExit>,
    events: Box<dyn Consumer>,
    rest: BinanceRest,
    open: BTreeMap<String, Workflow>,
    dirty: BTreeSet<String>,
    last_flush: Instant,
    /// When the leases were last renewed.
    last_lease: Instant,
    /// The exchange's symbols and when they were read.
    listed: Option<(Instant, BTreeSet<String>)>,
    producer: String,
}

/// Why queue-manager restarts a worker.
#[derive(Debug, Clone, Copy)]
enum Heal {
    /// No event for `stall_after_ms`.
    Stalled,
    /// Its worker gave up (an `error` event marked `finished`).
    GaveUp,
}

impl Heal {
    fn label(self) -> &'static str {
        match self {
            Heal::Stalled => crate::admin::metrics::RESTART_REASONS[0],
            Heal::GaveUp => crate::admin::metrics::RESTART_REASONS[1],
        }
    }
}

/// How often progress (not status changes, which are written at once) reaches the store.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// How long the exchange's symbol list is trusted.
const LISTED_FOR: Duration = Duration::from_secs(600);
/// Longest one poll of `queue-events` waits: API calls queue behind it in the actor's mailbox.
const POLL_WAIT: Duration = Duration::from_millis(10);
/// Open workflows are reloaded from the store in pages of this many.
const RELOAD_PAGE: u32 = 500;

impl ManagerState {
    fn node(&self) -> &str {
        &self.args.ctx.config.node.id
    }

    async fn listed(&mut self) -> Result<BTreeSet<String>, ManagerError> {
        if let Some((at, symbols)) = &self.listed {
            if at.elapsed() < LISTED_FOR {
                return Ok(symbols.clone());
            }
        }
        let symbols: BTreeSet<String> = self
            .rest
            .symbols()
            .await
            .map_err(|e| ManagerError::Unavailable(format!("cannot read the exchange's symbols: {e}")))?
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        self.listed = Some((Instant::now(), symbols.clone()));
        Ok(symbols)
    }

    async fn submit(&mut self, request: WorkflowRequest) -> Result<Workflow, ManagerError> {
        let listed = self.listed().await?;
        let spec = request.validate(Some(&listed), self.args.recorded.is_some()).map_err(ManagerError::Invalid)?;
        let now = now_ms();
        let start = self.range_of(&spec, &spec.symbols[0], &spec.types[0]).map_or(now, |r| r.0);
        let id = new_queue_id(&spec.symbols[0], spec.types[0].as_str(), start);
        let mut wf = Workflow::new(id.clone(), spec, now);
        if !self.claim(&mut wf).await.map_err(|e| ManagerError::Unavailable(e.to_string()))? {
            return Err(ManagerError::Unavailable(format!("another queue-manager holds {id}")));
        }
        self.advance(&mut wf).await;
        self.args.ctx.store.put_workflow(&wf).await.map_err(|e| ManagerError::Unavailable(e.to_string()))?;
        tracing::info!(queue_id = %wf.id, status = %wf.status, "Workflow submitted.");
        let reply = wf.clone();
        self.keep(wf).await;
        Ok(reply)
    }

    async fn stop(&mut self, id: &str) -> Result<Workflow, ManagerError> {
        let Some(mut wf) = self.open.remove(id) else {
            let stored =
                self.args.ctx.store.workflow(id).await.map_err(|e| ManagerError::Unavailable(e.to_string()))?;
            return Err(match stored {
                Some(wf) => ManagerError::Ended { id: wf.id, status: wf.status },
                None => ManagerError::NotFound(id.to_owned()),
            });
        };
        wf.stop("stop requested", now_ms());
        let written = self.args.ctx.store.put_workflow(&wf).await;
        self.dirty.remove(id);
        self.keep(wf.clone()).await;
        written.map_err(|e| ManagerError::Unavailable(e.to_string()))?;
        tracing::info!(queue_id = %id, "Workflow stopped.");
        Ok(wf)
    }

    /// Keeps an open workflow in memory; an ended one is done with: counted, and its workers
    /// let go of (finished) or stopped (failed, stopped).
    async fn keep(&mut self, wf: Workflow) {
        if wf.status.is_terminal() {
            self.args.ctx.metrics.workflows_ended.with_label_values(&[wf.status.as_str()]).inc();
            match wf.status {
                Status::Finished => self.launcher.finished(&wf.id).await,
                _ => self.launcher.stop(QueueControl::new(Command::Stop, wf.id.clone())).await,
            }
        } else {
            self.open.insert(wf.id.clone(), wf);
        }
    }

    /// `streamforge_workflows{status}` from what this manager follows now.
    fn count_open(&self) {
        for status in [Status::Pending, Status::Running] {
            let n = self.open.values().filter(|w| w.status == status).count();
            self.args.ctx.metrics.workflows.with_label_values(&[status.as_str()]).set(n as i64);
        }
    }

    /// Starts a task's worker; a start that cannot happen is handled as a worker that gave up.
    async fn launch(&mut self, cmd: QueueControl, producer: &str) {
        let attempt = attempt_of(&cmd);
        let queue_id = cmd.queue_id.clone();
        if let Err(reason) = self.launcher.start(cmd, producer).await {
            tracing::warn!(%queue_id, %producer, %reason, "A worker could not be started.");
            let reason = format!("cannot start the worker: {reason}");
            self.unstarted.push(WorkerExit { queue_id, producer: producer.to_owned(), attempt, reason });
        }
    }

    /// A `start` of one of `step`'s workers.
    fn start_command(&self, wf: &Workflow, step: Step) -> QueueControl {
        let mut cmd = QueueControl::new(Command::Start, wf.id.clone());
        cmd.target = Some(step.target().name().to_owned());
        cmd.telemetry_id = Some(topics::QUEUE_EVENTS.to_owned());
        // What runs the worker: this binary, as a Job's image in cluster mode.
        cmd.image = Some(self.args.ctx.config.kubernetes.image.clone());
        cmd
    }

    /// The range of `symbol`'s `kind` records: the request's, or offline the recording's.
    fn range_of(&self, spec: &WorkflowSpec, symbol: &str, kind: &DataType) -> Result<(i64, i64), String> {
        if let Some(r) = spec.time_range {
            return Ok(r);
        }
        let recorded = kind.backfill().and_then(|k| self.args.recorded.as_ref()?.recorded_range(symbol, k.as_ref()));
        recorded.ok_or_else(|| format!("the recording has no {kind} of {symbol}"))
    }

    /// The tasks and commands of `step`.
    fn plan(&self, wf: &Workflow, step: Step) -> Result<(Vec<Task>, Vec<QueueControl>), String> {
        let spec = &wf.spec;
        let (mut tasks, mut commands) = (Vec::new(), Vec::new());
        match step {
            Step::Load if spec.dummy.is_some() => {
                for symbol in &spec.symbols {
                    let mut task = Task::new(dummy::producer_name(&wf.id, Some(symbol)));
                    task.symbol = Some(symbol.clone());
                    task.kind = Some("dummy".into());
                    let mut cmd = self.start_command(wf, step);
                    cmd.target = Some(Target::Dummy.name().to_owned());
                    cmd.symbol = Some(symbol.clone());
                    cmd.kind = Some("dummy".into());
                    cmd.extra.insert("dummy".into(), serde_json::to_value(&spec.dummy).unwrap_or_default());
                    tasks.push(task);
                    commands.push(cmd);
                }
            }
            Step::Load | Step::Store => {
                for symbol in &spec.symbols {
                    for kind in &spec.types {
                        if step == Step::Store && !kind.is_storable() {
                            continue;
                        }
                        // A live stream's collection is named after the day it started.
                        let range = match kind.is_live() {
                            true => (wf.created_at, wf.created_at),
                            false => self.range_of(spec, symbol, kind)?,
                        };
                        let collection = collection_name(symbol, kind.as_str(), range.0);
                        let topic = topics::data_topic(&format!("{}-{}", wf.id, collection));
                        let producer = match step {
                            Step::Load if kind.is_live() => live_producer(kind.as_str(), symbol),
                            Step::Load => loader::producer_name(kind.as_str(), symbol),
                            _ => connector::producer_name(&collection),
                        };
                        let mut task = Task::new(producer);
                        task.symbol = Some(symbol.clone());
                        task.kind = Some(kind.to_string());
                        task.collection = Some(collection.clone());
                        tasks.push(task);
                        let mut cmd = self.start_command(wf, step);
                        if step == Step::Load && kind.is_live() {
                            cmd.target = Some(Target::LoaderWs.name().to_owned());
                        }
                        cmd.symbol = Some(symbol.clone());
                        cmd.kind = Some(kind.to_string());
                        cmd.time_range = (!kind.is_live()).then(|| WorkflowSpec::range_text(range));
                        cmd.kafka_topic = Some(topic);
                        cmd.collection_name = Some(collection);
                        commands.push(cmd);
                    }
                }
            }
            Step::Verify => {
                let mut series = Vec::new();
                for kind in spec.types.iter().filter(|t| t.is_storable() && !t.is_live()) {
                    for symbol in &spec.symbols {
                        let range = self.range_of(spec, symbol, kind)?;
                        series.push(VerifySeries {
                            symbol: symbol.clone(),
                            kind: kind.to_string(),
                            collection: collection_name(symbol, kind.as_str(), range.0),
                            range,
                        });
                    }
                }
                let mut cmd = self.start_command(wf, step);
                cmd.extra.insert("series".into(), serde_json::to_value(&series).unwrap_or_default());
                tasks.push(Task::new(step.target().name()));
                commands.push(cmd);
            }
            Step::Derive => {
                let (kind, _, symbols, collections) = self.candle_sources(wf)?;
                let mut cmd = self.start_command(wf, step);
                cmd.kind = Some(kind.to_string());
                cmd.time_range = spec.time_range.map(WorkflowSpec::range_text);
                cmd.extra.insert("symbols".into(), symbols.into());
                cmd.extra.insert("collections".into(), collections.into());
                cmd.extra.insert("intervals".into(), spec.derive.clone().into());
                tasks.push(Task::new(step.target().name()));
                commands.push(cmd);
            }
            Step::Graph | Step::Train => {
                let (kind, interval, symbols, collections) = self.candle_sources(wf)?;
                let mut cmd = self.start_command(wf, step);
                cmd.kind = Some(kind.to_string());
                cmd.time_range = spec.time_range.map(WorkflowSpec::range_text);
                cmd.extra.insert("symbols".into(), symbols.into());
                cmd.extra.insert("collections".into(), collections.into());
                cmd.extra.insert("interval".into(), interval.to_string().into());
                cmd.extra.insert("graph".into(), serde_json::to_value(&spec.graph).unwrap_or_default());
                if step == Step::Graph {
                    cmd.collection_name = Some(spec.graph.family("corr", interval));
                } else {
                    cmd.collection_name = Some(spec.graph.family("tgcn", interval));
                    cmd.extra.insert("train".into(), serde_json::to_value(&spec.train).unwrap_or_default());
                }
                tasks.push(Task::new(step.target().name()));
                commands.push(cmd);
            }
        }
        for (task, cmd) in tasks.iter_mut().zip(&mut commands) {
            cmd.extra.insert("attempt".into(), 1.into());
            task.command = Some(cmd.clone());
        }
        Ok((tasks, commands))
    }

    /// The candles the derive, graph and train steps read: the request's candle type, its
    /// interval, and each symbol's collection (named as the load and store steps name it).
    fn candle_sources(&self, wf: &Workflow) -> Result<(DataType, Interval, Vec<String>, Vec<String>), String> {
        let kind = wf.spec.graph_candles().ok_or("graph and train need candles")?.clone();
        let interval = kind.candle_interval().ok_or("graph and train need candles")?;
        let mut collections = Vec::new();
        for symbol in &wf.spec.symbols {
            let range = self.range_of(&wf.spec, symbol, &kind)?;
            collections.push(collection_name(symbol, kind.as_str(), range.0));
        }
        Ok((kind, interval, wf.spec.symbols.clone(), collections))
    }

    /// Fails task `i` of `step`, and with it the step and the workflow, for `reason`.
    async fn give_up(&mut self, wf: &mut Workflow, step: Step, i: usize, reason: &str) {
        let Some(s) = wf.step_mut(step) else { return };
        let task = &mut s.tasks[i];
        task.status = Status::Failed;
        let why = format!("{}: {reason}", task.producer);
        let producer = task.producer.clone();
        wf.fail(step, &why, now_ms());
        self.report(wf, &producer, EventStatus::Error, &why).await;
    }

    /// Restarts the worker of task `i` of `step` (stopping what is left of it first), or fails the
    /// step once it has had `max_attempts` starts.
    async fn heal(&mut self, wf: &mut Workflow, step: Step, i: usize, why: Heal, reason: &str) {
        let now = now_ms();
        let max = self.args.ctx.config.queue_manager.max_attempts;
        let Some(s) = wf.step_mut(step) else { return };
        let task = &mut s.tasks[i];
        if task.attempts >= max || task.command.is_none() {
            let why = format!("{reason}; gave up after {} attempt(s)", task.attempts);
            self.give_up(wf, step, i, &why).await;
            return;
        }
        let producer = task.producer.clone();
        self.args.ctx.metrics.worker_restarts.with_label_values(&[why.label()]).inc();
        task.attempts += 1;
        task.status = Status::Running;
        task.last_event_at = Some(now);
        let attempt = task.attempts;
        let mut start = task.command.clone().expect("checked above");
        s.attempts = s.attempts.max(attempt);
        start.extra.insert("attempt".into(), attempt.into());
        start.timestamp = crate::model::unix_seconds_now();
        let stop = stop_for(&start);
        let what = format!("restarting {producer} (attempt {attempt} of {max}): {reason}");
        wf.decide(now, Some(step), what.clone());
        tracing::warn!(queue_id = %wf.id, %producer, attempt, %reason, "Restarting a worker.");
        self.report(wf, &producer, EventStatus::Restarting, &what).await;
        self.launcher.stop(stop).await;
        self.launch(start, &producer).await;
    }

    /// Restarts the workers that ended unreported (a failed Job) or never started: the attempt
    /// that ended must be the task's current one, and the task still running.
    async fn handle_exits(&mut self) {
        let mut exits = self.launcher.exits();
        exits.append(&mut self.unstarted);
        for exit in exits {
            let Some(mut wf) = self.open.remove(&exit.queue_id) else { continue };
            let current = wf.task_of(&exit.producer).filter(|(step, i)| {
                wf.step(*step)
                    .is_some_and(|s| s.tasks[*i].status == Status::Running && s.tasks[*i].attempts == exit.attempt)
            });
            if let Some((step, i)) = current {
                self.report(&wf, &exit.producer, EventStatus::Error, &exit.reason).await;
                self.heal(&mut wf, step, i, Heal::GaveUp, &exit.reason).await;
                self.write(&wf).await;
            }
            self.keep(wf).await;
        }
    }

    /// queue-manager's own decisions on `queue-events`, for everyone who follows them.
    async fn report(&mut self, wf: &Workflow, about: &str, status: EventStatus, message: &str) {
        let mut ev = QueueEvent::new(&wf.id, &self.producer, status).message(message);
        ev.extra.insert("worker".into(), about.into());
        self.args.ctx.telemetry.emit(ev).await;
    }

    /// Restarts the workers that have been silent for longer than `stall_after_ms`. A connector
    /// is not silent while its loader is still loading (it waits for records).
    async fn check_stalls(&mut self) {
        let now = now_ms();
        let stall = self.args.ctx.config.queue_manager.stall_after_ms as i64;
        let ids: Vec<String> = self.open.keys().cloned().collect();
        for id in ids {
            let Some(mut wf) = self.open.remove(&id) else { continue };
            // Live stream loaders watch their own connections (silence, heartbeats) and a live
            // connector may rightly wait: a live workflow is not judged by its events.
            if wf.spec.is_live() {
                self.keep(wf).await;
                continue;
            }
            let loading = wf.step(Step::Load).is_some_and(|s| s.status == Status::Running);
            let stalled: Vec<(Step, usize, i64)> = wf
                .steps
                .iter()
                .filter(|s| s.status == Status::Running && !(s.step == Step::Store && loading))
                .flat_map(|s| s.tasks.iter().enumerate().map(move |(i, t)| (s.step, i, t)))
                .filter(|(_, _, t)| t.status == Status::Running)
                .filter_map(|(step, i, t)| {
                    let silent = now - t.last_event_at.unwrap_or(now);
                    (silent > stall).then_some((step, i, silent))
                })
                .collect();
            for (step, i, silent) in &stalled {
                if !wf.status.is_terminal() {
                    self.heal(&mut wf, *step, *i, Heal::Stalled, &format!("no event for {silent} ms")).await;
                }
            }
            if !stalled.is_empty() {
                self.write(&wf).await;
            }
            self.keep(wf).await;
        }
    }

    /// Starts every step whose turn has come.
    async fn advance(&mut self, wf: &mut Workflow) {
        loop {
            let startable = wf.startable();
            if startable.is_empty() {
                return;
            }
            // Connectors first: each is ready to drain its topic when its loader finishes.
            for step in startable.into_iter().rev() {
                let now = now_ms();
                match self.plan(wf, step) {
                    Ok((tasks, commands)) => {
                        let producers: Vec<String> = tasks.iter().map(|t| t.producer.clone()).collect();
                        wf.start_step(step, tasks, now);
                        for (cmd, producer) in commands.into_iter().zip(producers) {
                            self.launch(cmd, &producer).await;
                        }
                    }
                    Err(reason) => {
                        wf.fail(step, &reason, now);
                        return;
                    }
                }
            }
        }
    }

    /// Applies a worker's report to its workflow.
    async fn apply(&mut self, ev: &QueueEvent) {
        let Some(mut wf) = self.open.remove(&ev.queue_id) else { return };
        let now = now_ms();
        let mut changed = false;
        if let Some((step, i)) = wf.task_of(&ev.producer) {
            let task = &mut wf.steps.iter_mut().find(|s| s.step == step).expect("the step of a task").tasks[i];
            task.last_event_at = Some(now);
            if let Some(n) = ev.records_written {
                task.records_written = task.resumed_from + n;
            }
            if ev.message.is_some() {
                task.message = ev.message.clone();
            }
            let (mut gave_up, mut refused, mut loaded) = (None, None, None);
            match &ev.status {
                EventStatus::Finished => {
                    task.status = Status::Finished;
                    loaded = task.collection.clone().filter(|_| step == Step::Load);
                    changed = true;
                }
                EventStatus::Gap => task.gaps += 1,
                EventStatus::Error => {
                    task.errors += 1;
                    if ev.finished {
                        let reason = ev.message.clone().unwrap_or_else(|| format!("{} failed", ev.producer));
                        // No restart can change an answer such as "Invalid symbol".
                        if ev.retryable == Some(false) {
                            refused = Some(reason);
                        } else {
                            gave_up = Some(reason);
                        }
                    }
                    changed = true;
                }
                _ => {}
            }
            if let Some(collection) = loaded {
                self.drain(&mut wf, &collection).await;
            }
            match (gave_up, refused) {
                (Some(reason), _) => self.heal(&mut wf, step, i, Heal::GaveUp, &reason).await,
                (_, Some(reason)) => self.give_up(&mut wf, step, i, &format!("{reason}; not retried")).await,
                (None, None) => {
                    if wf.settle(step, now) {
                        self.advance(&mut wf).await;
                    }
                }
            }
            wf.updated_at = now;
            self.dirty.insert(wf.id.clone());
        }
        changed |= wf.status.is_terminal();
        if changed {
            self.write(&wf).await;
        }
        self.keep(wf).await;
    }

    /// Tells the connector of `collection` that its loader has published everything: it drains
    /// its topic and finishes. The order stays in the task's command, so that a restarted or
    /// resumed connector drains too.
    async fn drain(&mut self, wf: &mut Workflow, collection: &str) {
        let Some(store) = wf.step_mut(Step::Store) else { return };
        let Some(task) =
            store.tasks.iter_mut().find(|t| t.status == Status::Running && t.collection.as_deref() == Some(collection))
        else {
            return;
        };
        let Some(cmd) = task.command.as_mut() else { return };
        cmd.extra.insert("drain".into(), true.into());
        cmd.timestamp = crate::model::unix_seconds_now();
        let (cmd, producer) = (cmd.clone(), task.producer.clone());
        self.launch(cmd, &producer).await;
    }

    async fn write(&mut self, wf: &Workflow) {
        match self.args.ctx.store.put_workflow(wf).await {
            Ok(()) => {
                self.dirty.remove(&wf.id);
            }
            Err(error) => tracing::warn!(%error, queue_id = %wf.id, "Cannot write the workflow; will retry."),
        }
    }

    async fn flush(&mut self) {
        self.last_flush = Instant::now();
        self.count_open();
        for id in std::mem::take(&mut self.dirty) {
            if let Some(wf) = self.open.get(&id).cloned() {
                self.write(&wf).await;
            }
        }
    }

    async fn poll(&mut self) -> Result<(), ActorProcessingErr> {
        let messages = self.events.poll(500, POLL_WAIT).await?;
        for m in &messages {
            let ev: QueueEvent = match serde_json::from_slice(&m.payload) {
                Ok(ev) => ev,
                Err(e) => {
                    self.args.ctx.dead_letters.send(&self.producer, m, json_error_reason(&e), &e.to_string()).await?;
                    continue;
                }
            };
            let _ = self.args.handle.events.send(ev.clone());
            self.apply(&ev).await;
        }
        if !messages.is_empty() {
            self.events.commit(&commit_positions(&messages)).await?;
        }
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.handle_exits().await;
            self.check_stalls().await;
            self.flush().await;
            self.tend_leases().await?;
        }
        Ok(())
    }

    /// The open workflows in the store, as a restarted manager finds them.
    async fn reload(&mut self) -> Result<(), ActorProcessingErr> {
        for status in [Status::Pending, Status::Running] {
            let mut offset = 0;
            loop {
                let query = WorkflowQuery { status: Some(status), limit: RELOAD_PAGE, offset };
                let page = self.args.ctx.store.workflows(&query).await?;
                let n = page.workflows.len();
                for wf in page.workflows {
                    self.open.insert(wf.id.clone(), wf);
                }
                if n < RELOAD_PAGE as usize {
                    break;
                }
                offset += n as u64;
            }
        }
        if !self.open.is_empty() {
            tracing::info!(open = self.open.len(), "Following the open workflows found in the store.");
        }
        let ids: Vec<String> = self.open.keys().cloned().collect();
        for id in ids {
            if let Some(mut wf) = self.open.remove(&id) {
                if self.claim(&mut wf).await? {
                    self.resume(&mut wf).await;
                    self.write(&wf).await;
                    self.keep(wf).await;
                }
            }
        }
        self.last_lease = Instant::now();
        Ok(())
    }

    /// Takes or renews this node's lease on `wf`; notes a takeover in its history.
    async fn claim(&mut self, wf: &mut Workflow) -> Result<bool, crate::store::StoreError> {
        let now = now_ms();
        let until = now + self.args.ctx.config.queue_manager.lease_ms as i64;
        let node = self.node().to_owned();
        if !self.args.ctx.store.claim_workflow(&wf.id, &node, now, until).await? {
            return Ok(false);
        }
        if wf.owner.as_deref() != Some(node.as_str()) {
            if let Some(previous) = wf.owner.replace(node.clone()) {
                wf.decide(now, None, format!("taken over by queue-manager on {node}: {previous}'s lease ended"));
                tracing::info!(queue_id = %wf.id, %previous, "Took a workflow over.");
            }
        }
        Ok(true)
    }

    /// Renews the leases of the workflows this manager follows (dropping any another one holds
    /// now) and takes over open workflows whose owner's lease has ended.
    async fn tend_leases(&mut self) -> Result<(), ActorProcessingErr> {
        if self.last_lease.elapsed() < Duration::from_millis(self.args.ctx.config.queue_manager.lease_ms / 3) {
            return Ok(());
        }
        self.last_lease = Instant::now();
        let ids: Vec<String> = self.open.keys().cloned().collect();
        for id in ids {
            let Some(mut wf) = self.open.remove(&id) else { continue };
            if self.claim(&mut wf).await? {
                self.keep(wf).await;
            } else {
                tracing::warn!(queue_id = %id, "Another queue-manager holds this workflow now; no longer following it.");
                self.dirty.remove(&id);
                // This node's workers of it are the new owner's to restart, not ours to keep.
                self.launcher.release(&id).await;
            }
        }
        for status in [Status::Pending, Status::Running] {
            let query = WorkflowQuery { status: Some(status), limit: RELOAD_PAGE, offset: 0 };
            for mut wf in self.args.ctx.store.workflows(&query).await?.workflows {
                if self.open.contains_key(&wf.id) || !self.claim(&mut wf).await? {
                    continue;
                }
                self.resume(&mut wf).await;
                self.write(&wf).await;
                self.keep(wf).await;
            }
        }
        Ok(())
    }

    /// Starts the worker of every running task again: workers that run already ignore it; the
    /// others (their node died) start and resume — loaders after the store's newest record,
    /// connectors from their group's committed offsets (draining at once when their loader had
    /// finished: their command says so). The counts of loaders and connectors continue from the
    /// rows their collection holds: the records a loader resumes after.
    async fn resume(&mut self, wf: &mut Workflow) {
        let rows: std::collections::HashMap<String, u64> = match self.args.ctx.store.collections().await {
            Ok(c) => c.into_iter().map(|c| (c.name, c.rows)).collect(),
            Err(error) => {
                tracing::warn!(%error, "Cannot count the stored rows; resumed counts start from the last reported.");
                Default::default()
            }
        };
        let now = now_ms();
        let mut commands = Vec::new();
        for s in wf.steps.iter_mut().filter(|s| s.status == Status::Running) {
            for t in s.tasks.iter_mut().filter(|t| t.status == Status::Running) {
                let Some(mut cmd) = t.command.clone() else { continue };
                cmd.timestamp = crate::model::unix_seconds_now();
                let stored = t.collection.as_ref().and_then(|c| rows.get(c)).copied();
                t.resumed_from = match s.step {
                    Step::Load | Step::Store => stored.unwrap_or(t.records_written),
                    // A verifier, a deriver, a graph builder and a trainer start over.
                    Step::Verify | Step::Derive | Step::Graph | Step::Train => 0,
                };
                t.records_written = t.resumed_from;
                t.last_event_at = Some(now);
                t.command = Some(cmd.clone());
                commands.push((cmd, t.producer.clone()));
            }
        }
        wf.decide(
            now,
            None,
            format!("resumed by queue-manager on {}: {} worker(s) started again", self.node(), commands.len()),
        );
        for (cmd, producer) in commands {
            self.launch(cmd, &producer).await;
        }
    }
}

impl Actor for QueueManager {
    type Msg = ManagerMsg;
    type State = ManagerState;
    type Arguments = ManagerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<ManagerMsg>,
        args: ManagerArgs,
    ) -> Result<ManagerState, ActorProcessingErr> {
        let group = topics::manager_group(&args.ctx.config.node.id);
        let events = args.ctx.bus.subscribe(&group, topics::QUEUE_EVENTS).await?;
        let rest = args.ctx.binance_rest()?;
        let launcher = crate::workers::launcher(&args.ctx).await?;
        tracing::info!(mode = launcher.mode(), "queue-manager starts its workers.");
        let mut state = ManagerState {
            producer: format!("queue-manager__{}", args.ctx.config.node.id),
            args,
            launcher,
            unstarted: Vec::new(),
            events,
            rest,
            open: BTreeMap::new(),
            dirty: BTreeSet::new(),
            last_flush: Instant::now(),
            last_lease: Instant::now(),
            listed: None,
        };
        state.reload().await?;
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<ManagerMsg>,
        state: &mut ManagerState,
    ) -> Result<(), ActorProcessingErr> {
        *state.args.handle.actor.lock().unwrap_or_else(|e| e.into_inner()) = Some(myself.clone());
        myself.send_message(ManagerMsg::Poll)?;
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ManagerMsg>,
        state: &mut ManagerState,
    ) -> Result<(), ActorProcessingErr> {
        *state.args.handle.actor.lock().unwrap_or_else(|e| e.into_inner()) = None;
        state.flush().await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ManagerMsg>,
        msg: ManagerMsg,
        state: &mut ManagerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ManagerMsg::Submit(request, reply) => {
                let _ = reply.send(state.submit(*request).await);
            }
            ManagerMsg::Stop(id, reply) => {
                let _ = reply.send(state.stop(&id).await);
            }
            ManagerMsg::Poll => {
                state.poll().await?;
                myself.send_message(ManagerMsg::Poll)?;
            }
        }
        Ok(())
    }
}
