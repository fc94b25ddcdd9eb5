//! What the dashboard shows of one symbol, kept from the records of the node's streams: the
//! trade tape, 1m candles built from the trades (as Binance builds klines), the latest verified
//! book (the best levels a depth loader publishes from its local book) and counters. It turns
//! into a full `snapshot` frame for a new client, and into `update` frames of what changed since
//! the previous one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::model::{BookSnapshot, Decimal, PriceLevel, Trade};

/// One minute.
const MINUTE_MS: i64 = 60_000;

/// A 1m candle built from trades.
#[derive(Debug, Clone, PartialEq)]
pub struct MinuteCandle {
    pub open_time: i64,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: Decimal,
    pub trades: u64,
}

impl MinuteCandle {
    fn new(open_time: i64, t: &Trade) -> Self {
        MinuteCandle { open_time, open: t.price, high: t.price, low: t.price, close: t.price, volume: t.qty, trades: 1 }
    }

    /// Adds a later trade of the same minute.
    fn add(&mut self, t: &Trade) {
        self.high = self.high.max(t.price);
        self.low = self.low.min(t.price);
        self.close = t.price;
        self.volume += t.qty;
        self.trades += 1;
    }

    fn to_json(&self) -> Value {
        json!({
            "t": self.open_time, "o": self.open.to_string(), "h": self.high.to_string(), "l": self.low.to_string(),
            "c": self.close.to_string(), "v": self.volume.to_string(), "n": self.trades,
        })
    }
}

/// What is known about a symbol's order book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookState {
    /// No depth record seen yet.
    Waiting,
    /// Verified books arrive as often as the depth loader publishes them.
    Synced,
    /// Depth diffs arrive but no verified book has for three snapshot intervals: the loader is
    /// rebuilding its book from a new snapshot.
    Resyncing,
}

impl BookState {
    pub fn as_str(self) -> &'static str {
        match self {
            BookState::Waiting => "waiting",
            BookState::Synced => "synced",
            BookState::Resyncing => "resyncing",
        }
    }
}

/// One symbol's board.
pub struct SymbolBoard {
    pub symbol: String,
    tape_len: usize,
    candles_len: usize,
    levels: usize,
    /// How often the depth loader publishes a verified book.
    snapshot_every: Duration,
    tape: VecDeque<Trade>,
    /// Trades since the previous update frame (at most a tape's worth).
    new_trades: Vec<Trade>,
    candles: VecDeque<MinuteCandle>,
    /// Open times of candles changed since the previous update frame.
    changed_candles: Vec<i64>,
    book: Option<BookSnapshot>,
    book_changed: bool,
    book_at: Option<Instant>,
    last_diff_at: Option<Instant>,
    /// Records of this symbol seen on the node's streams.
    pub messages: u64,
    /// Messages in the last whole second (see [`SymbolBoard::tick_second`]).
    rate: u64,
    messages_a_second_ago: u64,
    /// The id of the first trade seen live, once one has been: the store is read for what came
    /// before it.
    pub first_live_trade: Option<(i64, i64)>,
}

impl SymbolBoard {
    pub fn new(symbol: &str, tape_len: usize, candles_len: usize, levels: usize, snapshot_every: Duration) -> Self {
        SymbolBoard {
            symbol: symbol.to_owned(),
            tape_len,
            candles_len,
            levels,
            snapshot_every,
            tape: VecDeque::with_capacity(tape_len),
            new_trades: Vec::new(),
            candles: VecDeque::with_capacity(candles_len),
            changed_candles: Vec::new(),
            book: None,
            book_changed: false,
            book_at: None,
            last_diff_at: None,
            messages: 0,
            rate: 0,
            messages_a_second_ago: 0,
            first_live_trade: None,
        }
    }

    /// A trade from the live stream: on the tape and in its candle.
    pub fn trade(&mut self, t: Trade) {
        self.first_live_trade.get_or_insert((t.id, t.time));
        self.add_to_candles(&t);
        if self.tape.len() == self.tape_len {
            self.tape.pop_front();
        }
        self.tape.push_back(t.clone());
        if self.new_trades.len() == self.tape_len {
            self.new_trades.remove(0);
        }
        self.new_trades.push(t);
    }

    /// Stored trades from before the first live one: into the candles only (the tape is live).
    pub fn fill(&mut self, stored: &[Trade]) {
        for t in stored {
            self.add_to_candles(t);
        }
    }

    fn add_to_candles(&mut self, t: &Trade) {
        let open_time = t.time - t.time.rem_euclid(MINUTE_MS);
        let oldest = self.candles.front().map(|c| c.open_time);
        if self.candles.len() == self.candles_len && oldest.is_some_and(|o| open_time < o) {
            return;
        }
        match self.candles.binary_search_by_key(&open_time, |c| c.open_time) {
            Ok(i) => self.candles[i].add(t),
            Err(i) => {
                self.candles.insert(i, MinuteCandle::new(open_time, t));
                if self.candles.len() > self.candles_len {
                    self.candles.pop_front();
                }
            }
        }
        if !self.changed_candles.contains(&open_time) {
            self.changed_candles.push(open_time);
        }
    }

    /// A verified book from the depth loader.
    pub fn book(&mut self, mut b: BookSnapshot) {
        b.bids.truncate(self.levels);
        b.asks.truncate(self.levels);
        self.book = Some(b);
        self.book_changed = true;
        self.book_at = Some(Instant::now());
    }

    /// A depth diff: the stream is alive, whether or not a verified book follows.
    pub fn diff(&mut self) {
        self.last_diff_at = Some(Instant::now());
    }

    pub fn book_state(&self) -> BookState {
        let stale = 3 * self.snapshot_every;
        match (self.book_at, self.last_diff_at) {
            (None, None) => BookState::Waiting,
            (Some(at), _) if at.elapsed() <= stale => BookState::Synced,
            (_, Some(diff)) if diff.elapsed() <= stale => BookState::Resyncing,
            (Some(_), _) => BookState::Synced,
            (None, Some(_)) => BookState::Resyncing,
        }
    }

    /// Once a second: the message rate of the second that ended.
    pub fn tick_second(&mut self) {
        self.rate = self.messages - self.messages_a_second_ago;
        self.messages_a_second_ago = self.messages;
    }

    /// Everything, for a client that has just connected.
    pub fn snapshot(&self) -> Value {
        self.frame(self.tape.iter(), self.candles.iter(), true)
    }

    /// What changed since the previous update; `None` when nothing did.
    pub fn update(&mut self) -> Option<Value> {
        if self.new_trades.is_empty() && self.changed_candles.is_empty() && !self.book_changed {
            return None;
        }
        let changed: Vec<&MinuteCandle> =
            self.candles.iter().filter(|c| self.changed_candles.contains(&c.open_time)).collect();
        let frame = self.frame(self.new_trades.iter(), changed.into_iter(), self.book_changed);
        self.new_trades.clear();
        self.changed_candles.clear();
        self.book_changed = false;
        Some(frame)
    }

    fn frame<'a>(
        &self,
        trades: impl Iterator<Item = &'a Trade>,
        candles: impl Iterator<Item = &'a MinuteCandle>,
        with_book: bool,
    ) -> Value {
        let trades: Vec<Value> = trades
            .map(|t| json!({"id": t.id, "p": t.price.to_string(), "q": t.qty.to_string(), "t": t.time, "m": t.is_buyer_maker}))
            .collect();
        let candles: Vec<Value> = candles.map(MinuteCandle::to_json).collect();
        let mut frame = json!({
            "symbol": self.symbol,
            "messages": self.messages,
            "rate": self.rate,
            "trades": trades,
            "candles": candles,
            "stats": self.stats(),
        });
        if with_book {
            frame["book"] = self.book_json();
        }
        frame
    }

    fn book_json(&self) -> Value {
        let levels = |side: &[PriceLevel]| -> Vec<[String; 2]> {
            side.iter().map(|(p, q)| [p.to_string(), q.to_string()]).collect()
        };
        match &self.book {
            Some(b) => json!({
                "update_id": b.last_update_id,
                "bids": levels(&b.bids),
                "asks": levels(&b.asks),
                "state": self.book_state().as_str(),
            }),
            None => json!({ "update_id": null, "bids": [], "asks": [], "state": self.book_state().as_str() }),
        }
    }

    /// Last price, best bid and ask, mid, spread (absolute and in basis points of the mid) and
    /// the imbalance of the shown levels, (bid qty − ask qty) / (bid qty + ask qty).
    fn stats(&self) -> Value {
        let last = self.tape.back().map(|t| t.price.to_string());
        let book = self.book.as_ref();
        let (bid, ask) = (book.and_then(|b| b.bids.first()), book.and_then(|b| b.asks.first()));
        let mut stats = json!({ "last": last, "book_state": self.book_state().as_str() });
        if let (Some((bid, _)), Some((ask, _))) = (bid, ask) {
            let mid = (bid + ask) / Decimal::TWO;
            let spread = ask - bid;
            let bps = if mid.is_zero() { Decimal::ZERO } else { spread / mid * Decimal::from(10_000) };
            stats["bid"] = json!(bid.to_string());
            stats["ask"] = json!(ask.to_string());
            stats["mid"] = json!(mid.normalize().to_string());
            stats["spread"] = json!(spread.normalize().to_string());
            stats["spread_bps"] = json!(bps.round_dp(3).normalize().to_string());
        }
        if let Some(b) = book {
            let bids: Decimal = b.bids.iter().map(|(_, q)| q).sum();
            let asks: Decimal = b.asks.iter().map(|(_, q)| q).sum();
            if !(bids + asks).is_zero() {
                stats["imbalance"] = json!(((bids - asks) / (bids + asks)).round_dp(4).normalize().to_string());
            }
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TradeKind;

    fn trade(id: i64, time: i64, price: &str, qty: &str) -> Trade {
        Trade {
            symbol: "ETHUSDT".into(),
            kind: TradeKind::Trade,
            id,
            price: price.parse().unwrap(),
            qty: qty.parse().unwrap(),
            time,
            is_buyer_maker: false,
            first_trade_id: None,
            last_trade_id: None,
        }
    }

    #[test]
    fn candles_are_built_from_trades_minute_by_minute_and_stored_ones_fill_before() {
        let mut b = SymbolBoard::new("ETHUSDT", 3, 2, 5, Duration::from_secs(1));
        b.trade(trade(10, 120_500, "2", "1"));
        b.trade(trade(11, 121_000, "3", "0.5"));
        b.trade(trade(12, 179_999, "1", "2"));
        b.fill(&[trade(8, 61_000, "5", "1"), trade(9, 119_999, "4", "1")]);
        let snap = b.snapshot();
        let c = snap["candles"].as_array().unwrap();
        assert_eq!(c.len(), 2, "two minutes kept: {snap}");
        assert_eq!((c[0]["t"].as_i64(), c[0]["o"].as_str(), c[0]["c"].as_str()), (Some(60_000), Some("5"), Some("4")));
        assert_eq!(c[1]["t"], 120_000);
        assert_eq!((c[1]["o"].as_str(), c[1]["h"].as_str(), c[1]["l"].as_str()), (Some("2"), Some("3"), Some("1")));
        assert_eq!((c[1]["c"].as_str(), c[1]["v"].as_str(), c[1]["n"].as_u64()), (Some("1"), Some("3.5"), Some(3)));
        assert_eq!(b.first_live_trade, Some((10, 120_500)));
        // A trade older than the kept window is left out rather than opening an old candle.
        b.fill(&[trade(1, 0, "9", "1")]);
        assert_eq!(b.snapshot()["candles"][0]["t"], 60_000);
    }

    #[test]
    fn an_update_carries_only_what_changed_and_the_tape_keeps_the_newest() {
        let mut b = SymbolBoard::new("ETHUSDT", 2, 10, 1, Duration::from_secs(1));
        for id in 0..3 {
            b.trade(trade(id, 1_000 + id, "2", "1"));
        }
        let first = b.update().unwrap();
        let ids: Vec<i64> = first["trades"].as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, [1, 2]);
        assert_eq!(first["stats"]["last"], "2");
        assert!(b.update().is_none(), "nothing new, no frame");
        let book = BookSnapshot {
            symbol: "ETHUSDT".into(),
            last_update_id: 7,
            bids: vec![("1.5".parse().unwrap(), "3".parse().unwrap()), ("1.4".parse().unwrap(), "1".parse().unwrap())],
            asks: vec![("2.5".parse().unwrap(), "1".parse().unwrap())],
        };
        b.book(book);
        let u = b.update().unwrap();
        assert_eq!(u["trades"].as_array().unwrap().len(), 0);
        assert_eq!(u["book"]["update_id"], 7);
        assert_eq!(u["book"]["bids"].as_array().unwrap().len(), 1, "cut to the configured levels");
        assert_eq!(u["book"]["state"], "synced");
        let s = &u["stats"];
        assert_eq!(
            (s["mid"].as_str(), s["spread"].as_str(), s["spread_bps"].as_str()),
            (Some("2"), Some("1"), Some("5000"))
        );
        assert_eq!(s["imbalance"], "0.5");
    }

    #[test]
    fn a_book_is_resyncing_while_diffs_arrive_without_verified_books() {
        let mut b = SymbolBoard::new("ETHUSDT", 2, 2, 5, Duration::from_millis(1));
        assert_eq!(b.book_state(), BookState::Waiting);
        b.diff();
        assert_eq!(b.book_state(), BookState::Resyncing);
        b.book(BookSnapshot { symbol: "ETHUSDT".into(), last_update_id: 1, bids: vec![], asks: vec![] });
        assert_eq!(b.book_state(), BookState::Synced);
        std::thread::sleep(Duration::from_millis(5));
        b.diff();
        assert_eq!(b.book_state(), BookState::Resyncing);
    }
}
