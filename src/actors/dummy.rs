//! The dummy actor, the seeds' test double (seed 001 §4.5, appendix F): answers `ping` on
//! `queue-control` with a `pong` event, simulates loading (`--simulate-loading`) and fails on
//! purpose (`--fail-after N`: after N ticks it sends an `error` event and fails). As a workflow's
//! worker it finishes after N ticks, or hangs (goes silent) to exercise queue-manager's healing.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

use super::dead_letter::json_error_reason;
use super::{DeadLetters, Telemetry};
use crate::bus::topics::{DUMMY_GROUP_PREFIX, QUEUE_CONTROL};
use crate::bus::{commit_positions, Bus, Consumer};
use crate::model::{Command, EventStatus, QueueControl, QueueEvent};
use crate::workers::{host::reply_to, Target};

#[derive(Debug, Clone)]
pub struct DummyOptions {
    pub queue_id: String,
    /// The symbol of a workflow's dummy task (its events carry it, its producer names it).
    pub symbol: Option<String>,
    /// Emit a `loading` event with a growing `records_written` every tick.
    pub simulate_loading: bool,
    /// Fail after this many ticks (counted from each start).
    pub fail_after: Option<u32>,
    /// Send `finished` and stop after this many ticks (a workflow's dummy task).
    pub finish_after: Option<u32>,
    /// Go silent after this many ticks: no events, no answers, no heartbeat (a hung worker).
    pub hang_after: Option<u32>,
    /// Started by a worker host for a workflow: the host stops it (it ignores `stop` itself) and
    /// no supervisor restarts it, so its `error` event says `finished` (queue-manager restarts it).
    pub hosted: bool,
    pub tick: Duration,
}

impl DummyOptions {
    /// A dummy that only answers pings.
    pub fn new(queue_id: impl Into<String>, tick: Duration) -> DummyOptions {
        DummyOptions {
            queue_id: queue_id.into(),
            symbol: None,
            simulate_loading: false,
            fail_after: None,
            finish_after: None,
            hang_after: None,
            hosted: false,
            tick,
        }
    }
}

pub struct DummyArgs {
    pub options: DummyOptions,
    pub bus: Arc<dyn Bus>,
    pub telemetry: Telemetry,
    pub dead_letters: DeadLetters,
}

pub enum DummyMsg {
    Tick,
}

pub struct Dummy;

pub struct DummyState {
    args: DummyArgs,
    control: Box<dyn Consumer>,
    producer: String,
    ticks: u32,
    next_tick: Instant,
    simulated_records: u64,
}

/// The `producer` of a dummy's events: `dummy__<queue_id>[__<symbol>]`.
pub fn producer_name(queue_id: &str, symbol: Option<&str>) -> String {
    match symbol {
        Some(s) => format!("{DUMMY_GROUP_PREFIX}{queue_id}__{}", s.to_ascii_lowercase()),
        None => format!("{DUMMY_GROUP_PREFIX}{queue_id}"),
    }
}

/// Longest one poll of `queue-control` waits (a command ends the wait at once; a stop waits for it).
const MAX_POLL_WAIT: Duration = Duration::from_secs(1);

/// Records a simulated loading step claims to have written.
const SIMULATED_RECORDS_PER_TICK: u64 = 1000;

impl DummyState {
    fn event(&self, status: EventStatus) -> QueueEvent {
        let ev = QueueEvent::new(&self.args.options.queue_id, &self.producer, status).kind("dummy");
        match &self.args.options.symbol {
            Some(s) => ev.symbol(s),
            None => ev,
        }
    }

    /// Answers the commands addressed to this dummy; returns false when told to stop.
    async fn handle_commands(&mut self) -> Result<bool, ActorProcessingErr> {
        // Short polls keep the actor responsive to a stop between them, however long its tick.
        let wait = self.next_tick.saturating_duration_since(Instant::now()).min(MAX_POLL_WAIT);
        let messages = self.control.poll(100, wait).await?;
        let mut keep_running = true;
        for m in &messages {
            let cmd: QueueControl = match serde_json::from_slice(&m.payload) {
                Ok(c) => c,
                Err(e) => {
                    self.args.dead_letters.send(&self.producer, m, json_error_reason(&e), &e.to_string()).await?;
                    continue;
                }
            };
            let addressed = ["dummy", Target::Dummy.name()].iter().any(|t| cmd.is_for(&self.args.options.queue_id, t));
            if !addressed || !keep_running {
                continue;
            }
            match cmd.command {
                Command::Ping => {
                    let reply = self.event(EventStatus::Pong).message(format!("pong to ping at {}", cmd.timestamp));
                    self.args.telemetry.emit(reply_to(reply, &cmd)).await;
                }
                Command::Stop if !self.args.options.hosted => {
                    self.args.telemetry.emit(self.event(EventStatus::Stopped).message("Stopped on command")).await;
                    keep_running = false;
                }
                Command::Start | Command::Stop | Command::Other(_) => {}
            }
        }
        if !messages.is_empty() {
            self.control.commit(&commit_positions(&messages)).await?;
        }
        Ok(keep_running)
    }
}

impl Actor for Dummy {
    type Msg = DummyMsg;
    type State = DummyState;
    type Arguments = DummyArgs;

    async fn pre_start(&self, _myself: ActorRef<DummyMsg>, args: DummyArgs) -> Result<DummyState, ActorProcessingErr> {
        let producer = producer_name(&args.options.queue_id, args.options.symbol.as_deref());
        let control = args.bus.subscribe(&producer, QUEUE_CONTROL).await?;
        let state = DummyState {
            next_tick: Instant::now() + args.options.tick,
            args,
            control,
            producer,
            ticks: 0,
            simulated_records: 0,
        };
        state.args.telemetry.emit(state.event(EventStatus::Started).message("Dummy ready for ping")).await;
        Ok(state)
    }

    async fn post_start(&self, myself: ActorRef<DummyMsg>, _state: &mut DummyState) -> Result<(), ActorProcessingErr> {
        myself.send_message(DummyMsg::Tick)?;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<DummyMsg>,
        _msg: DummyMsg,
        state: &mut DummyState,
    ) -> Result<(), ActorProcessingErr> {
        if !state.handle_commands().await? {
            myself.stop(None);
            return Ok(());
        }
        if Instant::now() >= state.next_tick {
            state.ticks += 1;
            state.next_tick += state.args.options.tick;
            if state.args.options.simulate_loading {
                state.simulated_records += SIMULATED_RECORDS_PER_TICK;
                let ev = state
                    .event(EventStatus::Loading)
                    .records_written(state.simulated_records)
                    .message(format!("Simulated {} records", state.simulated_records));
                state.args.telemetry.emit(ev).await;
            }
            if state.args.options.hang_after.is_some_and(|n| state.ticks >= n) {
                tracing::warn!(queue_id = %state.args.options.queue_id, ticks = state.ticks, "Dummy hangs (on purpose).");
                std::future::pending::<()>().await;
            }
            if state.args.options.finish_after.is_some_and(|n| state.ticks >= n) {
                let ev = state.event(EventStatus::Finished).records_written(state.simulated_records);
                state.args.telemetry.emit(ev.message(format!("Finished after {} ticks", state.ticks))).await;
                myself.stop(None);
                return Ok(());
            }
            if state.args.options.fail_after.is_some_and(|n| state.ticks >= n) {
                let reason = format!("Simulated failure after {} ticks", state.ticks);
                let mut ev = state.event(EventStatus::Error).message(reason.clone());
                ev.finished = state.args.options.hosted;
                state.args.telemetry.emit(ev).await;
                return Err(reason.into());
            }
        }
        myself.send_message(DummyMsg::Tick)?;
        Ok(())
    }
}
