//! The WebSocket aggregate-trade loader (the seeds' `loader-ws-*`): one connection carrying the
//! `<symbol>@aggTrade` streams of its symbols, each trade published to a data topic keyed by
//! symbol. A connection that fails, closes or stays silent is opened again with backoff and
//! jitter; right after, the trades missed meanwhile are fetched over REST (`aggTrades` from the
//! last id seen), so the published aggregate-trade ids of every symbol have no hole. Trades already
//! published (the REST pages overlap the new connection) are skipped by id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::admin::metrics::Metrics;
use crate::bus::{Bus, OutRecord};
use crate::exchange::binance::{BinanceRest, BinanceWs, StreamMessage, WsConnection};
use crate::model::{DataRecord, Trade};
use crate::supervision::{Backoff, Heartbeat, Jitter};

const STREAM: &str = "aggTrade";
/// Rows per REST backfill request (Binance's maximum).
const BACKFILL_PAGE: u32 = 1000;
/// Longest one read waits, so the actor beats its heartbeat and handles stop requests.
const READ_WAIT: Duration = Duration::from_secs(1);
/// Messages taken per read when more are already waiting.
const MAX_BATCH: usize = 1000;

pub struct AggTradeStreamArgs {
    /// Upper-case symbols, at most 1,024 (one connection).
    pub symbols: Vec<String>,
    pub topic: String,
    pub ws: BinanceWs,
    pub rest: BinanceRest,
    pub bus: Arc<dyn Bus>,
    pub metrics: Arc<Metrics>,
    pub heartbeat: Heartbeat,
    /// Between reconnection attempts.
    pub backoff: Backoff,
    /// A connection that sends nothing for this long, not even a ping, is treated as dead.
    pub silence: Duration,
    /// Connections are renewed after this long, before Binance's 24 h cut-off; give each
    /// connection of a node a different age so that they do not all renew at once.
    pub max_age: Duration,
}

pub enum AggTradeStreamMsg {
    Connect,
    Read,
}

pub struct AggTradeStream;

pub struct AggTradeStreamState {
    args: AggTradeStreamArgs,
    streams: Vec<String>,
    conn: Option<WsConnection>,
    /// Newest aggregate trade id published, per symbol.
    last_id: HashMap<String, i64>,
    /// Connection attempts failed in a row.
    failures: u32,
    jitter: Jitter,
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

    fn retry_later(&mut self, myself: &ActorRef<AggTradeStreamMsg>, why: &str) {
        self.conn = None;
        self.failures += 1;
        let delay = self.args.backoff.delay(self.failures, self.jitter.next_unit());
        tracing::warn!(
            streams = self.streams.len(),
            delay_ms = delay.as_millis() as u64,
            why,
            "WebSocket lost; reconnecting."
        );
        myself.send_after(delay, || AggTradeStreamMsg::Connect);
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
    type Arguments = AggTradeStreamArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<AggTradeStreamMsg>,
        args: AggTradeStreamArgs,
    ) -> Result<AggTradeStreamState, ActorProcessingErr> {
        let streams = args.symbols.iter().map(|s| format!("{}@aggTrade", s.to_ascii_lowercase())).collect();
        myself.send_message(AggTradeStreamMsg::Connect)?;
        let seed = myself.get_id().pid();
        Ok(AggTradeStreamState {
            args,
            streams,
            conn: None,
            last_id: HashMap::new(),
            failures: 0,
            jitter: Jitter::new(seed),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<AggTradeStreamMsg>,
        msg: AggTradeStreamMsg,
        state: &mut AggTradeStreamState,
    ) -> Result<(), ActorProcessingErr> {
        state.args.heartbeat.beat();
        match msg {
            AggTradeStreamMsg::Connect => match state.args.ws.connect(&state.streams).await {
                Ok(conn) => {
                    state.conn = Some(conn);
                    state.backfill().await?;
                    myself.send_message(AggTradeStreamMsg::Read)?;
                }
                Err(error) => state.retry_later(&myself, &error.to_string()),
            },
            AggTradeStreamMsg::Read => {
                let Some(conn) = state.conn.as_mut() else { return Ok(()) };
                if conn.age() >= state.args.max_age {
                    // Renewed before the exchange cuts it; the backfill covers the switch.
                    tracing::info!(streams = state.streams.len(), "Renewing the WebSocket connection before 24 h.");
                    state.conn = None;
                    myself.send_message(AggTradeStreamMsg::Connect)?;
                    return Ok(());
                }
                let first = match tokio::time::timeout(READ_WAIT, conn.next()).await {
                    Err(_) => {
                        if conn.idle() >= state.args.silence {
                            state.args.metrics.ws_reconnects.with_label_values(&[STREAM]).inc();
                            state.retry_later(&myself, "silent connection");
                        } else {
                            myself.send_message(AggTradeStreamMsg::Read)?;
                        }
                        return Ok(());
                    }
                    Ok(Some(Ok(m))) => m,
                    Ok(Some(Err(error))) => {
                        state.args.metrics.ws_reconnects.with_label_values(&[STREAM]).inc();
                        state.retry_later(&myself, &error.to_string());
                        return Ok(());
                    }
                    Ok(None) => {
                        state.args.metrics.ws_reconnects.with_label_values(&[STREAM]).inc();
                        state.retry_later(&myself, "closed by the server");
                        return Ok(());
                    }
                };
                let mut trades: Vec<Trade> = decode(&first).into_iter().collect();
                while trades.len() < MAX_BATCH {
                    match conn.next().now_or_never() {
                        Some(Some(Ok(m))) => trades.extend(decode(&m)),
                        _ => break,
                    }
                }
                state.args.metrics.ws_messages.with_label_values(&[STREAM]).inc_by(trades.len() as u64);
                state.failures = 0;
                state.publish(trades).await?;
                myself.send_message(AggTradeStreamMsg::Read)?;
            }
        }
        Ok(())
    }
}
