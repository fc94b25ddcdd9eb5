//! Binance spot: the REST client used by loaders, the public data archive (and the source that
//! takes a backfill from it before REST), the WebSocket stream client and the local order
//! book.

mod archive;
mod archived;
pub mod book;
mod keeper;
mod limit;
mod link;
mod rest;
mod sequenced;
mod snapshots;
mod ws;

pub use archive::{sha256_hex, unzip_csv, BinanceArchive, Dataset, Fetched, Period, DEFAULT_ARCHIVE_URL};
pub use archived::{ArchiveReport, Archived};
pub use book::{BookFault, BookStep, LocalBook, OrderBook};
pub use keeper::{BookKeeper, Fed, KeeperError, MAX_SNAPSHOT_MISSES};
pub use limit::{WeightLimiter, WEIGHT_PER_MINUTE};
pub use link::{LinkEvent, LinkPolicy, StreamLink};
pub use rest::{BinanceRest, ExchangeError, DEFAULT_REST_URL};
pub use sequenced::{backfill_kind, sequenced_kind, Klines, Sequenced, SequencedKind, TradeStream, PAGE};
pub use snapshots::{SnapshotPlan, DEFAULT_SNAPSHOT_LIMIT, MAX_SNAPSHOT_LIMIT};
pub use ws::{BadFrame, BinanceWs, Frame, StreamMessage, WsConnection, DEFAULT_WS_URL, MAX_STREAMS_PER_CONNECTION};
