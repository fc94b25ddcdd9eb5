//! The supervisor actor: OTP's restart types and strategies, restart intensity with escalation,
//! exponential backoff with jitter, heartbeats, dynamic children, ordered start and reverse stop.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::time::Instant;

use super::backoff::{Backoff, Jitter};
use super::heartbeat::Heartbeat;
use super::spec::{ChildSpec, Restart, StartContext, Unrecoverable};
use super::view::{ChildState, ChildView, TreeView};
use super::Strategy;
use crate::actors::Telemetry;
use crate::admin::metrics::Metrics;
use crate::model::{now_ms, EventStatus, QueueEvent};

/// More than `max_restarts` restarts within `within` makes the supervisor give up.
#[derive(Debug, Clone, Copy)]
pub struct Intensity {
    pub max_restarts: u32,
    pub within: Duration,
}

impl Default for Intensity {
    /// OTP's default is 1 restart in 5 s; data actors restart on transient faults more often.
    fn default() -> Self {
        Intensity { max_restarts: 10, within: Duration::from_secs(60) }
    }
}

#[derive(Clone)]
pub struct SupervisorArgs {
    /// Path in the tree (`node/connectors`); set by the parent for nested supervisors.
    pub name: String,
    pub strategy: Strategy,
    pub children: Vec<ChildSpec>,
    pub intensity: Intensity,
    pub backoff: Backoff,
    /// Stop (normally) once every child has exited and none is due a restart.
    pub auto_shutdown: bool,
    pub metrics: Arc<Metrics>,
    /// Where restarts and give-ups are reported on `queue-events`.
    pub telemetry: Option<Telemetry>,
    pub view: TreeView,
    /// Fixed jitter seed (tests); random otherwise.
    pub jitter_seed: Option<u64>,
}

impl SupervisorArgs {
    /// A supervisor with default intensity and backoff, no telemetry, a fresh view.
    pub fn new(name: impl Into<String>, strategy: Strategy, children: Vec<ChildSpec>, metrics: Arc<Metrics>) -> Self {
        SupervisorArgs {
            name: name.into(),
            strategy,
            children,
            intensity: Intensity::default(),
            backoff: Backoff::default(),
            auto_shutdown: false,
            metrics,
            telemetry: None,
            view: TreeView::default(),
            jitter_seed: None,
        }
    }
}

pub enum SupervisorMsg {
    /// The children, in start order.
    Children(RpcReplyPort<Vec<ChildView>>),
    /// Adds and starts a child at run time (per symbol, per partition).
    StartChild(ChildSpec, RpcReplyPort<Result<(), String>>),
    /// Stops a child gracefully and forgets it; replies whether it existed.
    TerminateChild(String, RpcReplyPort<bool>),
    /// A backoff ran out: start these children (if still due, `generation` matches).
    RestartDue(Vec<u64>, u64),
    CheckHeartbeats,
}

pub struct Supervisor;

struct Child {
    spec: ChildSpec,
    cell: Option<ActorCell>,
    state: ChildState,
    restarts: u32,
    /// Failures since the child last ran for `backoff.reset_after`.
    consecutive: u32,
    last_error: Option<String>,
    up_since_ms: Option<i64>,
    started: Instant,
    heartbeat: Heartbeat,
    stalled: bool,
    dynamic: bool,
    /// Generation of the restart scheduled for it, if any.
    pending_restart: Option<u64>,
}

pub struct SupervisorState {
    path: String,
    strategy: Strategy,
    intensity: Intensity,
    backoff: Backoff,
    auto_shutdown: bool,
    metrics: Arc<Metrics>,
    telemetry: Option<Telemetry>,
    view: TreeView,
    jitter: Jitter,
    children: BTreeMap<u64, Child>,
    by_actor: HashMap<ActorId, u64>,
    by_id: HashMap<String, u64>,
    next_seq: u64,
    generation: u64,
    recent_restarts: VecDeque<Instant>,
    heartbeat_timer: Option<(Duration, JoinHandle<()>)>,
}

impl Child {
    fn view(&self) -> ChildView {
        ChildView {
            id: self.spec.id.clone(),
            kind: self.spec.family,
            state: self.state,
            restarts: self.restarts,
            last_error: self.last_error.clone(),
            up_since_ms: self.up_since_ms,
            cell: self.cell.clone(),
        }
    }
}

impl SupervisorState {
    fn publish(&self, seq: u64) {
        if let Some(c) = self.children.get(&seq) {
            self.view.set(&self.path, seq, c.view());
        }
    }

    fn add(&mut self, spec: ChildSpec, dynamic: bool) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_id.insert(spec.id.clone(), seq);
        self.children.insert(
            seq,
            Child {
                spec,
                cell: None,
                state: ChildState::Stopped,
                restarts: 0,
                consecutive: 0,
                last_error: None,
                up_since_ms: None,
                started: Instant::now(),
                heartbeat: Heartbeat::new(),
                stalled: false,
                dynamic,
                pending_restart: None,
            },
        );
        seq
    }

    fn forget(&mut self, seq: u64) {
        if let Some(c) = self.children.remove(&seq) {
            self.by_id.remove(&c.spec.id);
        }
        self.view.remove(&self.path, seq);
    }

    /// Starts one child; on success it is running and visible.
    async fn start_child(&mut self, myself: &ActorRef<SupervisorMsg>, seq: u64) -> Result<(), ActorProcessingErr> {
        let path = self.path.clone();
        let Some(child) = self.children.get_mut(&seq) else { return Ok(()) };
        let heartbeat = Heartbeat::new();
        let ctx =
            StartContext { supervisor: myself.get_cell(), path, heartbeat: heartbeat.clone(), view: self.view.clone() };
        let cell = child.spec.start(ctx).await?;
        self.by_actor.insert(cell.get_id(), seq);
        child.cell = Some(cell);
        child.state = ChildState::Running;
        child.up_since_ms = Some(now_ms());
        child.started = Instant::now();
        child.heartbeat = heartbeat;
        child.stalled = false;
        child.pending_restart = None;
        self.metrics.actor_up.with_label_values(&[child.spec.family]).inc();
        if let Some(timeout) = child.spec.heartbeat {
            self.watch_heartbeats(myself, timeout);
        }
        self.publish(seq);
        Ok(())
    }

    /// Ensures heartbeats are checked at least twice per `timeout`.
    fn watch_heartbeats(&mut self, myself: &ActorRef<SupervisorMsg>, timeout: Duration) {
        let period = (timeout / 2).max(Duration::from_millis(5));
        if self.heartbeat_timer.as_ref().is_some_and(|(p, _)| *p <= period) {
            return;
        }
        if let Some((_, old)) = self.heartbeat_timer.take() {
            old.abort();
        }
        let handle = myself.send_interval(period, || SupervisorMsg::CheckHeartbeats);
        self.heartbeat_timer = Some((period, handle));
    }

    /// Stops one running child gracefully within its shutdown time, else kills it.
    async fn stop_child(&mut self, seq: u64) {
        let Some(child) = self.children.get_mut(&seq) else { return };
        child.pending_restart = None;
        let Some(cell) = child.cell.take() else {
            child.state = ChildState::Stopped;
            return;
        };
        self.by_actor.remove(&cell.get_id());
        child.state = ChildState::Stopped;
        self.metrics.actor_up.with_label_values(&[child.spec.family]).dec();
        if cell.stop_and_wait(Some("shutdown".into()), Some(child.spec.shutdown)).await.is_err() {
            tracing::warn!(supervisor = %self.path, child = %child.spec.id, "Child did not stop in time; killed.");
            cell.kill();
        }
        if child.spec.restart == Restart::Temporary {
            self.forget(seq);
        } else {
            self.publish(seq);
        }
    }

    /// Stops every child, last started first.
    async fn stop_all(&mut self) {
        let seqs: Vec<u64> = self.children.keys().rev().copied().collect();
        for seq in seqs {
            self.stop_child(seq).await;
        }
    }

    /// Records a restart; false when that exceeds the intensity.
    fn allow_restart(&mut self) -> bool {
        let now = Instant::now();
        while self.recent_restarts.front().is_some_and(|t| now.duration_since(*t) > self.intensity.within) {
            self.recent_restarts.pop_front();
        }
        self.recent_restarts.push_back(now);
        self.recent_restarts.len() as u32 <= self.intensity.max_restarts
    }

    /// A `queue-events` event from this supervisor about `child`, with machine-readable `extra`.
    async fn emit(&self, child: &str, status: EventStatus, message: String, extra: serde_json::Value) {
        if let Some(t) = &self.telemetry {
            let mut event = QueueEvent::new(&self.path, child, status).kind("supervision").message(message);
            if let serde_json::Value::Object(fields) = extra {
                event.extra = fields;
            }
            t.emit(event).await;
        }
    }

    /// Stops all children and returns the error that escalates to the parent.
    async fn give_up(&mut self, child: &str) -> ActorProcessingErr {
        let why = format!(
            "{}: more than {} restarts within {:?}; giving up",
            self.path, self.intensity.max_restarts, self.intensity.within
        );
        tracing::error!(supervisor = %self.path, child, max_restarts = self.intensity.max_restarts,
            within_secs = self.intensity.within.as_secs_f64(), "Restart intensity exceeded; supervisor gives up.");
        self.metrics.supervisor_give_ups.inc();
        let extra = serde_json::json!({ "supervisor": self.path, "gave_up": true });
        self.emit(child, EventStatus::Error, why.clone(), extra).await;
        self.stop_all().await;
        self.view.supervisor_stopped(&self.path);
        why.into()
    }

    /// Whether nothing runs or waits to run.
    fn idle(&self) -> bool {
        self.children.values().all(|c| c.state.ended())
    }

    /// A child exited (`error` is `None` for a normal exit; `unrecoverable` when no restart can
    /// mend it).
    async fn on_exit(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: ActorId,
        error: Option<String>,
        unrecoverable: bool,
    ) -> Result<(), ActorProcessingErr> {
        let Some(seq) = self.by_actor.remove(&id) else { return Ok(()) };
        let Some(child) = self.children.get_mut(&seq) else { return Ok(()) };
        child.cell = None;
        self.metrics.actor_up.with_label_values(&[child.spec.family]).dec();
        let error = match (child.stalled, child.spec.heartbeat) {
            (true, Some(t)) => Some(format!("stalled: no heartbeat within {t:?}")),
            _ => error,
        };
        let restart = !unrecoverable
            && match child.spec.restart {
                Restart::Permanent => true,
                Restart::Transient => error.is_some(),
                Restart::Temporary => false,
            };
        let child_id = child.spec.id.clone();
        match &error {
            Some(e) => {
                tracing::warn!(supervisor = %self.path, child = %child_id, error = %e, restart, "Child failed.");
                child.last_error = Some(e.clone());
            }
            None => tracing::info!(supervisor = %self.path, child = %child_id, restart, "Child exited normally."),
        }
        if !restart {
            child.state = if unrecoverable { ChildState::Failed } else { ChildState::Stopped };
            if child.spec.restart == Restart::Temporary || child.dynamic {
                self.forget(seq);
            } else {
                self.publish(seq);
            }
            if self.auto_shutdown && self.idle() {
                tracing::info!(supervisor = %self.path, "All children finished; supervisor stops.");
                myself.stop(None);
            }
            return Ok(());
        }
        if !self.allow_restart() {
            return Err(self.give_up(&child_id).await);
        }
        let child = self.children.get_mut(&seq).expect("child present");
        if child.started.elapsed() >= self.backoff.reset_after {
            child.consecutive = 0;
        }
        child.consecutive += 1;
        let delay = self.backoff.delay(child.consecutive, self.jitter.next_unit());

        // The strategy decides who restarts with it; the others among them stop first, newest first.
        let children = &self.children;
        let live = || children.iter().filter(|(s, c)| **s == seq || !c.state.ended()).map(|(s, _)| *s).collect();
        let affected = self.strategy.affected(live, seq);
        for s in affected.iter().rev().filter(|s| **s != seq) {
            self.stop_child(*s).await;
        }
        let affected: Vec<u64> = affected.into_iter().filter(|s| self.children.contains_key(s)).collect();
        for s in &affected {
            let c = self.children.get_mut(s).expect("affected child present");
            c.restarts += 1;
            c.state = ChildState::Restarting;
            self.metrics.restarts.with_label_values(&[c.spec.family]).inc();
            self.publish(*s);
        }
        let message = format!(
            "{child_id} exited ({}); restarting {} child(ren) in {:?} (restart {} of at most {} per {:?})",
            error.as_deref().unwrap_or("normally"),
            affected.len(),
            delay,
            self.recent_restarts.len(),
            self.intensity.max_restarts,
            self.intensity.within
        );
        tracing::info!(supervisor = %self.path, child = %child_id, delay_ms = delay.as_millis() as u64,
            strategy = ?self.strategy, "Restarting.");
        let extra = serde_json::json!({
            "supervisor": self.path,
            "delay_ms": delay.as_millis() as u64,
            "restarts": self.children.get(&seq).map_or(0, |c| c.restarts),
            "error": error,
        });
        self.emit(&child_id, EventStatus::Restarting, message, extra).await;
        if delay.is_zero() {
            self.restart_now(myself, affected).await
        } else {
            self.schedule(myself, affected, delay);
            Ok(())
        }
    }

    fn schedule(&mut self, myself: &ActorRef<SupervisorMsg>, seqs: Vec<u64>, delay: Duration) {
        self.generation += 1;
        let generation = self.generation;
        for s in &seqs {
            if let Some(c) = self.children.get_mut(s) {
                c.pending_restart = Some(generation);
                c.state = ChildState::Restarting;
            }
        }
        myself.send_after(delay, move || SupervisorMsg::RestartDue(seqs, generation));
    }

    /// Starts `seqs` in order. A child that fails to start counts as a failure: it is retried after
    /// its backoff, within the restart intensity.
    async fn restart_now(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        seqs: Vec<u64>,
    ) -> Result<(), ActorProcessingErr> {
        for seq in seqs {
            if let Err(e) = self.start_child(myself, seq).await {
                let Some(child) = self.children.get_mut(&seq) else { continue };
                let id = child.spec.id.clone();
                tracing::warn!(supervisor = %self.path, child = %id, error = %e, "Child failed to start.");
                child.last_error = Some(e.to_string());
                child.consecutive += 1;
                let delay = self.backoff.delay(child.consecutive, self.jitter.next_unit());
                if !self.allow_restart() {
                    return Err(self.give_up(&id).await);
                }
                self.schedule(myself, vec![seq], delay);
            }
        }
        Ok(())
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState {
            path: args.name,
            strategy: args.strategy,
            intensity: args.intensity,
            backoff: args.backoff,
            auto_shutdown: args.auto_shutdown,
            metrics: args.metrics,
            telemetry: args.telemetry,
            view: args.view,
            jitter: args.jitter_seed.map(Jitter::new).unwrap_or_else(Jitter::from_entropy),
            children: BTreeMap::new(),
            by_actor: HashMap::new(),
            by_id: HashMap::new(),
            next_seq: 0,
            generation: 0,
            recent_restarts: VecDeque::new(),
            heartbeat_timer: None,
        };
        state.view.supervisor_started(&state.path, state.strategy);
        let seqs: Vec<u64> = args.children.into_iter().map(|spec| state.add(spec, false)).collect();
        for seq in seqs {
            // A child that cannot start makes the supervisor fail to start, as in OTP.
            if let Err(e) = state.start_child(&myself, seq).await {
                state.stop_all().await;
                state.view.supervisor_stopped(&state.path);
                return Err(e);
            }
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Children(reply) => {
                let _ = reply.send(state.children.values().map(Child::view).collect());
            }
            SupervisorMsg::StartChild(spec, reply) => {
                if state.by_id.contains_key(&spec.id) {
                    let _ = reply.send(Err(format!("{}: a child with id {} already exists", state.path, spec.id)));
                    return Ok(());
                }
                let seq = state.add(spec, true);
                let outcome = state.start_child(&myself, seq).await.map_err(|e| e.to_string());
                if outcome.is_err() {
                    state.forget(seq);
                }
                let _ = reply.send(outcome);
            }
            SupervisorMsg::TerminateChild(id, reply) => {
                let found = state.by_id.get(&id).copied();
                if let Some(seq) = found {
                    state.stop_child(seq).await;
                    state.forget(seq);
                }
                let _ = reply.send(found.is_some());
            }
            SupervisorMsg::RestartDue(seqs, generation) => {
                let due: Vec<u64> = seqs
                    .into_iter()
                    .filter(|s| state.children.get(s).is_some_and(|c| c.pending_restart == Some(generation)))
                    .collect();
                state.restart_now(&myself, due).await?;
            }
            SupervisorMsg::CheckHeartbeats => {
                for child in state.children.values_mut() {
                    let (Some(timeout), Some(cell)) = (child.spec.heartbeat, &child.cell) else { continue };
                    if !child.stalled && child.heartbeat.last().elapsed() > timeout {
                        tracing::warn!(supervisor = %state.path, child = %child.spec.id, timeout_ms = timeout.as_millis() as u64,
                            "Child missed its heartbeat; killing it.");
                        child.stalled = true;
                        cell.kill();
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let unrecoverable = err.downcast_ref::<Unrecoverable>().is_some();
                state.on_exit(&myself, cell.get_id(), Some(err.to_string()), unrecoverable).await
            }
            // A kill is abnormal in OTP terms; any other stop is a normal exit.
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let error = (reason.as_deref() == Some("killed")).then(|| "killed".to_owned());
                state.on_exit(&myself, cell.get_id(), error, false).await
            }
            _ => Ok(()),
        }
    }

    /// Stops children in reverse start order, each within its shutdown time (then killed).
    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some((_, timer)) = state.heartbeat_timer.take() {
            timer.abort();
        }
        state.stop_all().await;
        state.view.supervisor_stopped(&state.path);
        Ok(())
    }
}
