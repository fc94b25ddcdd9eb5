//! The depth loader: one connection carrying the `<symbol>@depth@100ms` streams of its symbols.
//! Every depth event is published to a data topic (keyed by symbol; natural key `(symbol,
//! final_update_id)`), and a local order book per symbol is kept with Binance's algorithm (see
//! [`crate::exchange::binance::BookKeeper`]); every `snapshot_every` the best `depth` levels of each
//! synchronised book go to the same topic as a book snapshot (its first levels are the best bid and
//! ask). After a reconnect every book is rebuilt from a new snapshot, as events were missed. The
//! REST snapshots are fetched beside the reading (in the plan's order and depths), so the socket
//! keeps being read while they come; each read takes the ones that have arrived.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

use super::stream::{StreamArgs, Subscribed, MAX_BATCH, READ_WAIT};
use crate::bus::OutRecord;
use crate::exchange::binance::{BookKeeper, Fed, LinkEvent, SnapshotPlan, StreamLink, StreamMessage};
use crate::model::{DataRecord, DepthUpdate};

const STREAM: &str = "depth";

pub struct BookStreamArgs {
    pub stream: StreamArgs,
    /// Levels a side in the published snapshots.
    pub depth: usize,
    pub snapshot_every: Duration,
    /// The order and depth of the symbols' REST snapshots.
    pub snapshots: SnapshotPlan,
}

pub enum BookStreamMsg {
    Connect,
    Read,
}

pub struct BookStream;

pub struct BookStreamState {
    args: BookStreamArgs,
    link: StreamLink,
    books: BookKeeper,
    last_snapshot: Instant,
    _subscribed: Subscribed,
}

impl BookStreamState {
    async fn publish(&self, records: Vec<DataRecord>) -> Result<(), ActorProcessingErr> {
        if records.is_empty() {
            return Ok(());
        }
        let n = records.len() as u64;
        let out = records.into_iter().map(|r| OutRecord::keyed(r.symbol(), r.to_bytes())).collect();
        self.args.stream.bus.publish(&self.args.stream.topic, out).await?;
        self.args.stream.metrics.records_out.with_label_values(&["loader-ws"]).inc_by(n);
        Ok(())
    }

    /// The best levels of every synchronised book.
    async fn publish_snapshots(&mut self) -> Result<(), ActorProcessingErr> {
        self.last_snapshot = Instant::now();
        let depth = Some(self.args.depth);
        let snapshots = self.books.books().map(|b| DataRecord::BookSnapshot(b.top(depth)));
        self.publish(snapshots.collect()).await
    }

    async fn take(&mut self, messages: Vec<StreamMessage>) -> Result<(), ActorProcessingErr> {
        self.args.stream.metrics.ws_messages.with_label_values(&[STREAM]).inc_by(messages.len() as u64);
        let mut records = Vec::with_capacity(messages.len());
        for m in messages {
            let update = match DepthUpdate::from_ws(m.data()) {
                Ok(u) => u,
                Err(error) => {
                    self.args.stream.skip_undecodable(&m, &error).await?;
                    continue;
                }
            };
            if let Some(Fed::Resynced(fault)) = self.books.feed(&update) {
                self.args.stream.metrics.book_resyncs.with_label_values(&[fault.reason()]).inc();
            }
            records.push(DataRecord::DepthUpdate(update));
        }
        self.publish(records).await
    }
}

impl Actor for BookStream {
    type Msg = BookStreamMsg;
    type State = BookStreamState;
    type Arguments = BookStreamArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<BookStreamMsg>,
        args: BookStreamArgs,
    ) -> Result<BookStreamState, ActorProcessingErr> {
        let streams = args.stream.symbols.iter().map(|s| format!("{}@depth@100ms", s.to_ascii_lowercase())).collect();
        let link = StreamLink::new(args.stream.ws.clone(), streams, args.stream.link.clone(), myself.get_id().pid());
        myself.send_message(BookStreamMsg::Connect)?;
        let books = BookKeeper::new(args.stream.rest.clone(), args.stream.metrics.clone(), &args.snapshots);
        let _subscribed = args.stream.subscribed(STREAM);
        Ok(BookStreamState { args, link, books, last_snapshot: Instant::now(), _subscribed })
    }

    async fn handle(
        &self,
        myself: ActorRef<BookStreamMsg>,
        msg: BookStreamMsg,
        state: &mut BookStreamState,
    ) -> Result<(), ActorProcessingErr> {
        state.args.stream.heartbeat.beat();
        let event = match msg {
            BookStreamMsg::Connect => state.link.connect().await,
            BookStreamMsg::Read => state.link.read(READ_WAIT, MAX_BATCH).await,
        };
        match event {
            LinkEvent::Connected => state.books.restart(),
            LinkEvent::Messages(messages, bad) => {
                state.args.stream.skip_bad_frames(bad).await?;
                state.take(messages).await?;
                state.books.take_fetched()?;
            }
            LinkEvent::Idle => state.books.take_fetched()?,
            LinkEvent::Down { retry_in, failure, .. } => {
                if failure {
                    state.args.stream.metrics.ws_reconnects.with_label_values(&[STREAM]).inc();
                }
                // The books as they were when the stream went away, with the snapshots under way.
                state.books.settle().await?;
                state.publish_snapshots().await?;
                myself.send_after(retry_in, || BookStreamMsg::Connect);
                return Ok(());
            }
        }
        if state.last_snapshot.elapsed() >= state.args.snapshot_every {
            state.publish_snapshots().await?;
        }
        myself.send_message(BookStreamMsg::Read)?;
        Ok(())
    }
}
