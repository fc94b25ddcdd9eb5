//! The WebSocket aggregate-trade loader (the seeds' `loader-ws-*`): one connection carrying the
//! `<symbol>@aggTrade` streams of its symbols, each trade published to a data topic keyed by
//! symbol. A connection that fails, closes or stays silent is opened again with backoff and
//! jitter; right after, the trades missed meanwhile are fetched over REST (`aggTrades` from the
//! last id seen), so the published aggregate-trade ids of every symbol have no hole. Trades already
//! published (the REST pages overlap the new connection) are skipped by id.

use std::collections::HashMap;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::stream::{StreamArgs, MAX_BATCH, READ_WAIT};
use crate::bus::OutRecord;
use crate::exchange::binance::{LinkEvent, StreamLink, StreamMessage};
use crate::model::{DataRecord, Trade};

const STREAM: &str = "aggTrade";
/// Rows per REST backfill request (Binance's maximum).
const BACKFILL_PAGE: u32 = 1000;

pub enum AggTradeStreamMsg {
    Connect,
    Read,
}

pub struct AggTradeStream;

pub struct AggTradeStreamState {
    args: StreamArgs,
    link: StreamLink,
    /// Newest aggregate trade id published, per symbol.
    last_id: HashMap<String, i64>,
}

impl AggTradeStreamState {
    /// Publishes the trades not published yet, in id order per symbol; returns how many.
    async fn publish(&mut self, trades: Vec<Trade>) -> Result<u64, ActorProcessingErr> {
        let mut out = Vec::with_capacity(trades.len());
        for t in trades {
            let last = self.last_id.entry(t.symbol.clone()).or_insert(i64::MIN);
            if t.id <= *last {
                continue;
            }
            *last = t.id;
            let key = t.symbol.clone();
            out.push(OutRecord::keyed(key, DataRecord::Trade(t).to_bytes()));
        }
        let n = out.len() as u64;
        if n > 0 {
            self.args.bus.publish(&self.args.topic, out).await?;
            self.args.metrics.records_out.with_label_values(&["loader-ws"]).inc_by(n);
        }
        Ok(n)
    }

    /// Fetches over REST what each symbol missed since its last published trade.
    async fn backfill(&mut self) -> Result<(), ActorProcessingErr> {
        let symbols: Vec<(String, i64)> = self.last_id.iter().map(|(s, id)| (s.clone(), *id)).collect();
        for (symbol, mut last) in symbols {
            loop {
                self.args.heartbeat.beat();
                let page = self.args.rest.agg_trades(&symbol, last + 1, BACKFILL_PAGE).await?;
                let full = page.len() as u32 >= BACKFILL_PAGE;
                last = page.last().map_or(last, |t| t.id);
                let n = self.publish(page).await?;
                self.args.metrics.backfilled.with_label_values(&[STREAM]).inc_by(n);
                if n > 0 {
                    tracing::info!(%symbol, trades = n, "Backfilled trades missed while disconnected.");
                }
                if !full {
                    break;
                }
            }
        }
        Ok(())
    }
}

fn decode(msg: &StreamMessage) -> Option<Trade> {
    Trade::from_ws_agg_trade(msg.data.get().as_bytes())
        .inspect_err(|error| tracing::warn!(stream = %msg.stream, %error, "Undecodable aggTrade; skipped."))
        .ok()
}

impl Actor for AggTradeStream {
    type Msg = AggTradeStreamMsg;
    type State = AggTradeStreamState;
    type Arguments = StreamArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<AggTradeStreamMsg>,
        args: StreamArgs,
    ) -> Result<AggTradeStreamState, ActorProcessingErr> {
        let streams = args.symbols.iter().map(|s| format!("{}@aggTrade", s.to_ascii_lowercase())).collect();
        let link = StreamLink::new(args.ws.clone(), streams, args.link.clone(), myself.get_id().pid());
        myself.send_message(AggTradeStreamMsg::Connect)?;
        Ok(AggTradeStreamState { args, link, last_id: HashMap::new() })
    }

    async fn handle(
        &self,
        myself: ActorRef<AggTradeStreamMsg>,
        msg: AggTradeStreamMsg,
        state: &mut AggTradeStreamState,
    ) -> Result<(), ActorProcessingErr> {
        state.args.heartbeat.beat();
        let event = match msg {
            AggTradeStreamMsg::Connect => state.link.connect().await,
            AggTradeStreamMsg::Read => state.link.read(READ_WAIT, MAX_BATCH).await,
        };
        match event {
            LinkEvent::Connected => state.backfill().await?,
            LinkEvent::Messages(messages) => {
                state.args.metrics.ws_messages.with_label_values(&[STREAM]).inc_by(messages.len() as u64);
                let trades = messages.iter().filter_map(decode).collect();
                state.publish(trades).await?;
            }
            LinkEvent::Idle => {}
            LinkEvent::Down { retry_in, failure, .. } => {
                if failure {
                    state.args.metrics.ws_reconnects.with_label_values(&[STREAM]).inc();
                }
                myself.send_after(retry_in, || AggTradeStreamMsg::Connect);
                return Ok(());
            }
        }
        myself.send_message(AggTradeStreamMsg::Read)?;
        Ok(())
    }
}
