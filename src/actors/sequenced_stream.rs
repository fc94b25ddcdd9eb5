//! The WebSocket loader of a sequenced stream (the seeds' `loader-ws-*` for trades, aggregate
//! trades and klines; see [`crate::exchange::binance::SequencedKind`]): one connection carrying the
//! stream of each of its symbols, every record published to a data topic keyed by symbol. After
//! every reconnect (the link reconnects with backoff, gives up on silent connections and renews
//! them before 24 h) what each symbol missed is fetched over REST from its last published record
//! on, and records already published are skipped, so the published sequence has no hole.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::stream::{StreamArgs, Subscribed, MAX_BATCH, READ_WAIT};
use crate::bus::OutRecord;
use crate::exchange::binance::{LinkEvent, SequencedKind, StreamLink, PAGE};
use crate::model::DataRecord;

pub struct SequencedStreamArgs {
    pub stream: StreamArgs,
    pub kind: Arc<dyn SequencedKind>,
    /// Sequence of the newest record published, per symbol. Shared by the loader's incarnations:
    /// one restarted after a failure resumes (over REST) where the failed one stopped.
    pub published: Published,
}

/// See [`SequencedStreamArgs::published`].
pub type Published = Arc<Mutex<HashMap<String, i64>>>;

pub enum SequencedStreamMsg {
    Connect,
    Read,
}

pub struct SequencedStream;

pub struct SequencedStreamState {
    args: SequencedStreamArgs,
    link: StreamLink,
    _subscribed: Subscribed,
}

fn lock(p: &Published) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

impl SequencedStreamState {
    /// Publishes the records not published yet, in sequence order per symbol; returns how many.
    async fn publish(&mut self, records: Vec<(String, i64, DataRecord)>) -> Result<u64, ActorProcessingErr> {
        let mut out = Vec::with_capacity(records.len());
        let mut newest: HashMap<String, i64> = HashMap::new();
        {
            let published = lock(&self.args.published);
            for (symbol, seq, record) in records {
                let last = newest.get(&symbol).or(published.get(&symbol)).copied().unwrap_or(i64::MIN);
                if seq <= last {
                    continue;
                }
                newest.insert(symbol, seq);
                out.push(OutRecord::keyed(record.symbol(), record.to_bytes()));
            }
        }
        let n = out.len() as u64;
        if n > 0 {
            self.args.stream.bus.publish(&self.args.stream.topic, out).await?;
            self.args.stream.metrics.records_out.with_label_values(&["loader-ws"]).inc_by(n);
            // Only once the bus has them: a failure before this re-fetches them after the restart.
            lock(&self.args.published).extend(newest);
        }
        Ok(n)
    }

    /// Fetches over REST what each symbol missed since its last published record.
    async fn backfill(&mut self) -> Result<(), ActorProcessingErr> {
        let symbols: Vec<(String, i64)> = lock(&self.args.published).iter().map(|(s, id)| (s.clone(), *id)).collect();
        let (kind, label) = (self.args.kind.clone(), self.args.kind.label());
        for (symbol, mut last) in symbols {
            loop {
                self.args.stream.heartbeat.beat();
                let (page, more) = kind.after(&self.args.stream.rest, &symbol, last, PAGE).await?;
                last = page.last().map_or(last, |r| r.seq);
                let n = self.publish(page.into_iter().map(|r| (symbol.clone(), r.seq, r.record)).collect()).await?;
                self.args.stream.metrics.backfilled.with_label_values(&[label]).inc_by(n);
                if n > 0 {
                    tracing::info!(%symbol, records = n, stream = label, "Backfilled what was missed while disconnected.");
                }
                if !more {
                    break;
                }
            }
        }
        Ok(())
    }
}

impl Actor for SequencedStream {
    type Msg = SequencedStreamMsg;
    type State = SequencedStreamState;
    type Arguments = SequencedStreamArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SequencedStreamMsg>,
        args: SequencedStreamArgs,
    ) -> Result<SequencedStreamState, ActorProcessingErr> {
        let streams = args.stream.symbols.iter().map(|s| args.kind.stream(s)).collect();
        let link = StreamLink::new(args.stream.ws.clone(), streams, args.stream.link.clone(), myself.get_id().pid());
        myself.send_message(SequencedStreamMsg::Connect)?;
        let _subscribed = args.stream.subscribed(args.kind.label());
        Ok(SequencedStreamState { args, link, _subscribed })
    }

    async fn handle(
        &self,
        myself: ActorRef<SequencedStreamMsg>,
        msg: SequencedStreamMsg,
        state: &mut SequencedStreamState,
    ) -> Result<(), ActorProcessingErr> {
        state.args.stream.heartbeat.beat();
        let label = state.args.kind.label();
        let event = match msg {
            SequencedStreamMsg::Connect => state.link.connect().await,
            SequencedStreamMsg::Read => state.link.read(READ_WAIT, MAX_BATCH).await,
        };
        match event {
            LinkEvent::Connected => state.backfill().await?,
            LinkEvent::Messages(messages, bad) => {
                state.args.stream.metrics.ws_messages.with_label_values(&[label]).inc_by(messages.len() as u64);
                state.args.stream.skip_bad_frames(bad).await?;
                let mut records = Vec::with_capacity(messages.len());
                for m in &messages {
                    match state.args.kind.decode(m) {
                        Ok(Some(r)) => records.push(r),
                        Ok(None) => {}
                        Err(error) => state.args.stream.skip_undecodable(m, &error).await?,
                    }
                }
                state.publish(records).await?;
            }
            LinkEvent::Idle => {}
            LinkEvent::Down { retry_in, failure, .. } => {
                if failure {
                    state.args.stream.metrics.ws_reconnects.with_label_values(&[label]).inc();
                }
                myself.send_after(retry_in, || SequencedStreamMsg::Connect);
                return Ok(());
            }
        }
        myself.send_message(SequencedStreamMsg::Read)?;
        Ok(())
    }
}
