//! The verifier actor (target `gap-verifier`, the workflows' `verify` step): repairs each series a
//! workflow stored (`store::repair`) — holes anywhere in its range asked of the exchange and
//! filled, spans the exchange confirms empty kept so that they are never asked again — one series
//! per message, reporting each confirmed-empty span as a `gap` event and finishing with the count
//! of records it filled. Repairing is idempotent, so a restarted actor starts over.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::Telemetry;
use crate::exchange::binance::BinanceRest;
use crate::model::{EventStatus, QueueEvent};
use crate::store::repair::repair;
use crate::store::Store;
use crate::workers::Target;
use crate::workflow::DataType;

/// One stored series of a workflow, as the `verify` command carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerifySeries {
    pub symbol: String,
    /// The workflow's type, e.g. `api_candles_1m`.
    pub kind: String,
    pub collection: String,
    /// `[start, end)` epoch ms.
    pub range: (i64, i64),
}

#[derive(Clone)]
pub struct VerifierArgs {
    pub queue_id: String,
    pub series: Vec<VerifySeries>,
    pub store: Arc<dyn Store>,
    pub rest: BinanceRest,
    pub telemetry: Telemetry,
}

pub enum VerifierMsg {
    Next,
}

pub struct Verifier;

pub struct VerifierState {
    args: VerifierArgs,
    /// The next series to repair.
    next: usize,
    filled: u64,
    confirmed_empty: u64,
}

impl VerifierState {
    fn event(&self, status: EventStatus) -> QueueEvent {
        QueueEvent::new(&self.args.queue_id, Target::GapVerifier.name(), status).kind("verify")
    }
}

impl Actor for Verifier {
    type Msg = VerifierMsg;
    type State = VerifierState;
    type Arguments = VerifierArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<VerifierMsg>,
        args: VerifierArgs,
    ) -> Result<VerifierState, ActorProcessingErr> {
        let state = VerifierState { args, next: 0, filled: 0, confirmed_empty: 0 };
        let message = format!("Verifying {} stored series", state.args.series.len());
        state.args.telemetry.emit(state.event(EventStatus::Started).message(message)).await;
        myself.send_message(VerifierMsg::Next)?;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<VerifierMsg>,
        msg: VerifierMsg,
        state: &mut VerifierState,
    ) -> Result<(), ActorProcessingErr> {
        let VerifierMsg::Next = msg;
        let Some(series) = state.args.series.get(state.next).cloned() else {
            let message = format!(
                "Filled {} records; {} span(s) confirmed empty at the exchange",
                state.filled, state.confirmed_empty
            );
            let done = state.event(EventStatus::Finished).records_written(state.filled).message(message);
            state.args.telemetry.emit(done).await;
            myself.stop(None);
            return Ok(());
        };
        let kind = DataType::parse(&series.kind)
            .ok()
            .and_then(|t| t.backfill())
            .ok_or_else(|| format!("{}: not a stored series type", series.kind))?;
        let a = &state.args;
        let report =
            repair(a.store.as_ref(), &a.rest, &series.collection, &series.symbol, kind.as_ref(), series.range).await?;
        for span in &report.confirmed_empty {
            let message = format!(
                "{}: no {} from {} to {} at the exchange ({} missing) — confirmed, not asked again",
                series.symbol,
                kind.noun(),
                kind.show(span.first),
                kind.show(span.last),
                span.records
            );
            state.args.telemetry.emit(state.event(EventStatus::Gap).symbol(&series.symbol).message(message)).await;
        }
        state.filled += report.filled.iter().map(|s| s.records).sum::<u64>();
        state.confirmed_empty += report.confirmed_empty.len() as u64;
        state.next += 1;
        let message = format!(
            "{} in {}: {} hole(s), {} records filled so far",
            series.symbol,
            series.collection,
            report.holes.len(),
            state.filled
        );
        let progress = state.event(EventStatus::Loading).records_written(state.filled).message(message);
        state.args.telemetry.emit(progress).await;
        myself.send_message(VerifierMsg::Next)?;
        Ok(())
    }
}
