//! The deriver actor (target `candle-deriver`, the workflows' `derive` step): derives the longer
//! candles of each symbol of a workflow from the candles its store step wrote
//! (`store::derived`), one symbol per message, reporting progress on `queue-events` and finishing
//! with the count of candles it stored. Deriving is idempotent, so a restarted actor starts over.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::Telemetry;
use crate::model::{EventStatus, Interval, QueueEvent};
use crate::store::derived::derive_candles;
use crate::store::Store;
use crate::workers::Target;

#[derive(Clone)]
pub struct DeriverArgs {
    pub queue_id: String,
    /// Each symbol with the collection holding its source candles.
    pub sources: Vec<(String, String)>,
    pub intervals: Vec<Interval>,
    /// `[start, end)` epoch ms, or everything the sources hold.
    pub range: Option<(i64, i64)>,
    pub store: Arc<dyn Store>,
    pub telemetry: Telemetry,
}

pub enum DeriverMsg {
    Next,
}

pub struct Deriver;

pub struct DeriverState {
    args: DeriverArgs,
    /// The next source to derive from.
    next: usize,
    written: u64,
}

impl DeriverState {
    fn event(&self, status: EventStatus) -> QueueEvent {
        QueueEvent::new(&self.args.queue_id, Target::CandleDeriver.name(), status).kind("derive")
    }
}

impl Actor for Deriver {
    type Msg = DeriverMsg;
    type State = DeriverState;
    type Arguments = DeriverArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<DeriverMsg>,
        args: DeriverArgs,
    ) -> Result<DeriverState, ActorProcessingErr> {
        let state = DeriverState { args, next: 0, written: 0 };
        let intervals: Vec<String> = state.args.intervals.iter().map(ToString::to_string).collect();
        let message = format!("Deriving {} candles of {} symbols", intervals.join(", "), state.args.sources.len());
        state.args.telemetry.emit(state.event(EventStatus::Started).message(message)).await;
        myself.send_message(DeriverMsg::Next)?;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<DeriverMsg>,
        msg: DeriverMsg,
        state: &mut DeriverState,
    ) -> Result<(), ActorProcessingErr> {
        let DeriverMsg::Next = msg;
        let Some((symbol, source)) = state.args.sources.get(state.next).cloned() else {
            let message = format!("Derived {} candles", state.written);
            let done = state.event(EventStatus::Finished).records_written(state.written).message(message);
            state.args.telemetry.emit(done).await;
            myself.stop(None);
            return Ok(());
        };
        let a = &state.args;
        let derived = derive_candles(a.store.as_ref(), &symbol, &source, &a.intervals, a.range).await?;
        state.written += derived.iter().map(|d| d.candles as u64).sum::<u64>();
        state.next += 1;
        let message = format!("{symbol}: {} candles derived so far", state.written);
        let progress = state.event(EventStatus::Loading).records_written(state.written).message(message);
        state.args.telemetry.emit(progress).await;
        myself.send_message(DeriverMsg::Next)?;
        Ok(())
    }
}
