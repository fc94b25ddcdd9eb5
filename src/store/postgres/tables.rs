//! One table per collection, its columns and primary key given by the record kind (the natural
//! key), and the batched upsert of each kind: one `INSERT … SELECT FROM UNNEST(arrays) ON CONFLICT
//! DO UPDATE` statement per batch — a single round trip whatever the batch size.

use tokio_postgres::types::ToSql;

use crate::model::{DataRecord, RecordKind};
use crate::store::levels_json;

/// `CREATE TABLE` (and indexes) for a new collection of `kind`. Names were validated to
/// `[a-z][a-z0-9_]*`.
pub fn ddl(name: &str, kind: RecordKind) -> String {
    match kind {
        RecordKind::Candle => format!(
            "CREATE TABLE {name} (
                symbol TEXT NOT NULL, interval TEXT NOT NULL, open_time BIGINT NOT NULL, close_time BIGINT NOT NULL,
                open NUMERIC NOT NULL, high NUMERIC NOT NULL, low NUMERIC NOT NULL, close NUMERIC NOT NULL,
                volume NUMERIC NOT NULL, quote_volume NUMERIC, trades BIGINT, taker_buy_base NUMERIC,
                taker_buy_quote NUMERIC, closed BOOLEAN NOT NULL,
                PRIMARY KEY (symbol, interval, open_time));
             CREATE INDEX {name}_time ON {name} (open_time);"
        ),
        RecordKind::Trade => format!(
            "CREATE TABLE {name} (
                symbol TEXT NOT NULL, kind TEXT NOT NULL, id BIGINT NOT NULL, price NUMERIC NOT NULL,
                qty NUMERIC NOT NULL, time BIGINT NOT NULL, is_buyer_maker BOOLEAN NOT NULL,
                first_trade_id BIGINT, last_trade_id BIGINT,
                PRIMARY KEY (symbol, kind, id));
             CREATE INDEX {name}_time ON {name} (symbol, time);"
        ),
        RecordKind::DepthUpdate => format!(
            "CREATE TABLE {name} (
                symbol TEXT NOT NULL, final_update_id BIGINT NOT NULL, first_update_id BIGINT NOT NULL,
                event_time BIGINT NOT NULL, bids JSONB NOT NULL, asks JSONB NOT NULL,
                PRIMARY KEY (symbol, final_update_id));
             CREATE INDEX {name}_time ON {name} (symbol, event_time);"
        ),
        RecordKind::BookSnapshot => format!(
            "CREATE TABLE {name} (
                symbol TEXT NOT NULL, last_update_id BIGINT NOT NULL, bids JSONB NOT NULL, asks JSONB NOT NULL,
                PRIMARY KEY (symbol, last_update_id))"
        ),
    }
}

/// The column holding a record's position in its symbol's sequence (high-water marks).
pub fn sequence_column(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Candle => "open_time",
        RecordKind::Trade => "id",
        RecordKind::DepthUpdate => "final_update_id",
        RecordKind::BookSnapshot => "last_update_id",
    }
}

/// The upsert statement for a batch of `kind` into `name`.
pub fn upsert_sql(name: &str, kind: RecordKind) -> String {
    match kind {
        RecordKind::Candle => format!(
            "INSERT INTO {name} (symbol, interval, open_time, close_time, open, high, low, close, volume,
                quote_volume, trades, taker_buy_base, taker_buy_quote, closed)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::numeric[], $6::numeric[],
                $7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[], $11::int8[], $12::numeric[],
                $13::numeric[], $14::bool[])
             ON CONFLICT (symbol, interval, open_time) DO UPDATE SET close_time = EXCLUDED.close_time,
                open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
                volume = EXCLUDED.volume, quote_volume = EXCLUDED.quote_volume, trades = EXCLUDED.trades,
                taker_buy_base = EXCLUDED.taker_buy_base, taker_buy_quote = EXCLUDED.taker_buy_quote,
                closed = EXCLUDED.closed"
        ),
        RecordKind::Trade => format!(
            "INSERT INTO {name} (symbol, kind, id, price, qty, time, is_buyer_maker, first_trade_id, last_trade_id)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::numeric[], $5::numeric[], $6::int8[],
                $7::bool[], $8::int8[], $9::int8[])
             ON CONFLICT (symbol, kind, id) DO UPDATE SET price = EXCLUDED.price, qty = EXCLUDED.qty,
                time = EXCLUDED.time, is_buyer_maker = EXCLUDED.is_buyer_maker,
                first_trade_id = EXCLUDED.first_trade_id, last_trade_id = EXCLUDED.last_trade_id"
        ),
        RecordKind::DepthUpdate => format!(
            "INSERT INTO {name} (symbol, final_update_id, first_update_id, event_time, bids, asks)
             SELECT s, u, f, e, b::jsonb, a::jsonb
             FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::text[], $6::text[]) AS x(s, u, f, e, b, a)
             ON CONFLICT (symbol, final_update_id) DO UPDATE SET first_update_id = EXCLUDED.first_update_id,
                event_time = EXCLUDED.event_time, bids = EXCLUDED.bids, asks = EXCLUDED.asks"
        ),
        RecordKind::BookSnapshot => format!(
            "INSERT INTO {name} (symbol, last_update_id, bids, asks)
             SELECT s, u, b::jsonb, a::jsonb FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[]) AS x(s, u, b, a)
             ON CONFLICT (symbol, last_update_id) DO UPDATE SET bids = EXCLUDED.bids, asks = EXCLUDED.asks"
        ),
    }
}

/// The statement's parameters, one array per column, for records all of one kind.
pub fn upsert_params(kind: RecordKind, records: &[&DataRecord]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    macro_rules! column {
        ($variant:ident, |$r:ident| $e:expr) => {
            Box::new(
                records
                    .iter()
                    .filter_map(|r| match r {
                        DataRecord::$variant($r) => Some($e),
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            ) as Box<dyn ToSql + Sync + Send>
        };
    }
    match kind {
        RecordKind::Candle => vec![
            column!(Candle, |c| c.symbol.clone()),
            column!(Candle, |c| c.interval.as_str().to_owned()),
            column!(Candle, |c| c.open_time),
            column!(Candle, |c| c.close_time),
            column!(Candle, |c| c.open),
            column!(Candle, |c| c.high),
            column!(Candle, |c| c.low),
            column!(Candle, |c| c.close),
            column!(Candle, |c| c.volume),
            column!(Candle, |c| c.quote_volume),
            column!(Candle, |c| c.trades.map(|n| n as i64)),
            column!(Candle, |c| c.taker_buy_base),
            column!(Candle, |c| c.taker_buy_quote),
            column!(Candle, |c| c.closed),
        ],
        RecordKind::Trade => vec![
            column!(Trade, |t| t.symbol.clone()),
            column!(Trade, |t| t.kind.as_str().to_owned()),
            column!(Trade, |t| t.id),
            column!(Trade, |t| t.price),
            column!(Trade, |t| t.qty),
            column!(Trade, |t| t.time),
            column!(Trade, |t| t.is_buyer_maker),
            column!(Trade, |t| t.first_trade_id),
            column!(Trade, |t| t.last_trade_id),
        ],
        RecordKind::DepthUpdate => vec![
            column!(DepthUpdate, |d| d.symbol.clone()),
            column!(DepthUpdate, |d| d.final_update_id),
            column!(DepthUpdate, |d| d.first_update_id),
            column!(DepthUpdate, |d| d.event_time),
            column!(DepthUpdate, |d| levels_json(&d.bids)),
            column!(DepthUpdate, |d| levels_json(&d.asks)),
        ],
        RecordKind::BookSnapshot => vec![
            column!(BookSnapshot, |s| s.symbol.clone()),
            column!(BookSnapshot, |s| s.last_update_id),
            column!(BookSnapshot, |s| levels_json(&s.bids)),
            column!(BookSnapshot, |s| levels_json(&s.asks)),
        ],
    }
}
