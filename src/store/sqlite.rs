//! The embedded store: one SQLite file (bundled SQLite, WAL), a table per collection.
//!
//! Decimals are stored as Binance's text so their value is exact; read them in SQL with
//! `CAST(close AS REAL)` or in pandas with `astype(float)` / `Decimal`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{
    batch_kind, check_kind, from_json, levels_json, parse_kind, to_json, validate_collection, Batch, CollectionInfo,
    ConfirmedGap, ModelRecord, Store, StoreError, WorkflowPage, WorkflowQuery,
};
use crate::model::{
    Candle, DataRecord, Decimal, DecimalText, Edge, GraphSnapshot, RecordKind, Trade, TradeKind, Vertex,
};
use crate::workflow::{Status, Workflow};

pub struct SqliteStore {
    conn: Arc<Mutex<Inner>>,
}

struct Inner {
    conn: Connection,
    /// Collection → kind, mirrored from `sf_collections`.
    kinds: HashMap<String, RecordKind>,
}

const CATALOG: &str = "
CREATE TABLE IF NOT EXISTS sf_collections (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sf_workflows (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sf_workflow_leases (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sf_graphs (
    name TEXT NOT NULL, time INTEGER NOT NULL, window_start INTEGER NOT NULL, window_end INTEGER NOT NULL,
    feature_names TEXT NOT NULL, PRIMARY KEY (name, time)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sf_graph_vertices (
    graph TEXT NOT NULL, time INTEGER NOT NULL, symbol TEXT NOT NULL, features TEXT NOT NULL,
    PRIMARY KEY (graph, time, symbol)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sf_graph_edges (
    graph TEXT NOT NULL, time INTEGER NOT NULL, from_symbol TEXT NOT NULL, to_symbol TEXT NOT NULL,
    weight REAL NOT NULL, PRIMARY KEY (graph, time, from_symbol, to_symbol)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sf_models (
    name TEXT NOT NULL, version INTEGER NOT NULL, uri TEXT NOT NULL, metrics TEXT NOT NULL,
    created_at INTEGER NOT NULL, PRIMARY KEY (name, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sf_confirmed_gaps (
    collection TEXT NOT NULL, symbol TEXT NOT NULL, first_missing INTEGER NOT NULL, last_missing INTEGER NOT NULL,
    PRIMARY KEY (collection, symbol, first_missing, last_missing)
) WITHOUT ROWID;";

fn table_ddl(name: &str, kind: RecordKind) -> String {
    match kind {
        RecordKind::Candle => format!(
            "CREATE TABLE IF NOT EXISTS {name} (
                symbol TEXT NOT NULL, interval TEXT NOT NULL, open_time INTEGER NOT NULL,
                close_time INTEGER NOT NULL, open TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL,
                close TEXT NOT NULL, volume TEXT NOT NULL, quote_volume TEXT, trades INTEGER,
                taker_buy_base TEXT, taker_buy_quote TEXT, closed INTEGER NOT NULL,
                PRIMARY KEY (symbol, interval, open_time)) WITHOUT ROWID"
        ),
        RecordKind::Trade => format!(
            "CREATE TABLE IF NOT EXISTS {name} (
                symbol TEXT NOT NULL, kind TEXT NOT NULL, id INTEGER NOT NULL, price TEXT NOT NULL,
                qty TEXT NOT NULL, time INTEGER NOT NULL, is_buyer_maker INTEGER NOT NULL,
                first_trade_id INTEGER, last_trade_id INTEGER,
                PRIMARY KEY (symbol, kind, id)) WITHOUT ROWID"
        ),
        RecordKind::DepthUpdate => format!(
            "CREATE TABLE IF NOT EXISTS {name} (
                symbol TEXT NOT NULL, final_update_id INTEGER NOT NULL, first_update_id INTEGER NOT NULL,
                event_time INTEGER NOT NULL, bids TEXT NOT NULL, asks TEXT NOT NULL,
                PRIMARY KEY (symbol, final_update_id)) WITHOUT ROWID"
        ),
        RecordKind::BookSnapshot => format!(
            "CREATE TABLE IF NOT EXISTS {name} (
                symbol TEXT NOT NULL, last_update_id INTEGER NOT NULL, bids TEXT NOT NULL, asks TEXT NOT NULL,
                PRIMARY KEY (symbol, last_update_id)) WITHOUT ROWID"
        ),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, in WAL mode.
    pub fn open(path: &str) -> Result<Self, StoreError> {
        if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::CreateDir { path: dir.display().to_string(), source })?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open { path: path.to_owned(), source })?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Several processes may open the same file at once (nodes sharing a volume). Switching to
        // WAL and creating the catalog can answer "busy" without waiting for the busy handler, so
        // those first steps are retried for a while.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let attempt = conn
                .pragma_update(None, "journal_mode", "WAL")
                .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
                .and_then(|()| conn.execute_batch(CATALOG));
            match attempt {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        }
        Self::init(conn)
    }

    /// A private in-memory database (tests, benchmarks).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(CATALOG)?;
        let kinds = catalog(&conn)?;
        Ok(SqliteStore { conn: Arc::new(Mutex::new(Inner { conn, kinds })) })
    }

    /// Runs `f` on the connection off the async runtime.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }
}

impl Inner {
    /// The kind `collection` holds; a collection this store has not seen is looked up in the
    /// catalog, as another process (a node's connector, for a reader) may have created it.
    fn kind_of(&mut self, collection: &str) -> Result<Option<RecordKind>, StoreError> {
        validate_collection(collection)?;
        if !self.kinds.contains_key(collection) {
            self.kinds = catalog(&self.conn)?;
        }
        Ok(self.kinds.get(collection).copied())
    }

    /// Whether `collection` exists and holds `kind`; an error when it holds another kind.
    fn holds(&mut self, collection: &str, kind: RecordKind) -> Result<bool, StoreError> {
        check_kind(collection, self.kind_of(collection)?, kind)
    }
}

/// Every collection of the catalog with its kind.
fn catalog(conn: &Connection) -> Result<HashMap<String, RecordKind>, StoreError> {
    let mut stmt = conn.prepare("SELECT name, kind FROM sf_collections")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut kinds = HashMap::new();
    for row in rows {
        let (name, kind) = row?;
        kinds.insert(name, parse_kind(&kind)?);
    }
    Ok(kinds)
}

/// Checks that `collection` holds `kind`, creating its table inside `tx` when new.
fn ensure_collection(
    kinds: &HashMap<String, RecordKind>,
    tx: &Transaction<'_>,
    collection: &str,
    kind: RecordKind,
) -> Result<(), StoreError> {
    validate_collection(collection)?;
    match kinds.get(collection) {
        Some(k) if *k == kind => Ok(()),
        Some(k) => Err(StoreError::KindMismatch {
            collection: collection.to_owned(),
            existing: k.as_str(),
            requested: kind.as_str(),
        }),
        None => {
            tx.execute_batch(&table_ddl(collection, kind))?;
            tx.execute(
                "INSERT OR IGNORE INTO sf_collections (name, kind, created_at) VALUES (?1, ?2, ?3)",
                params![collection, kind.as_str(), crate::model::now_ms()],
            )?;
            Ok(())
        }
    }
}

fn write_batch(
    tx: &Transaction<'_>,
    collection: &str,
    kind: RecordKind,
    records: &[DataRecord],
) -> Result<(), StoreError> {
    match kind {
        RecordKind::Candle => {
            let mut stmt = tx.prepare_cached(&format!(
                "INSERT INTO {collection} (symbol, interval, open_time, close_time, open, high, low, close, volume,
                    quote_volume, trades, taker_buy_base, taker_buy_quote, closed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT (symbol, interval, open_time) DO UPDATE SET close_time = excluded.close_time,
                    open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
                    volume = excluded.volume, quote_volume = excluded.quote_volume, trades = excluded.trades,
                    taker_buy_base = excluded.taker_buy_base, taker_buy_quote = excluded.taker_buy_quote,
                    closed = excluded.closed"
            ))?;
            for r in records {
                let DataRecord::Candle(c) = r else { continue };
                stmt.execute(params![
                    c.symbol,
                    c.interval.as_str(),
                    c.open_time,
                    c.close_time,
                    DecimalText::new(&c.open).as_str(),
                    DecimalText::new(&c.high).as_str(),
                    DecimalText::new(&c.low).as_str(),
                    DecimalText::new(&c.close).as_str(),
                    DecimalText::new(&c.volume).as_str(),
                    c.quote_volume.as_ref().map(DecimalText::new).as_ref().map(DecimalText::as_str),
                    c.trades.map(|n| n as i64),
                    c.taker_buy_base.as_ref().map(DecimalText::new).as_ref().map(DecimalText::as_str),
                    c.taker_buy_quote.as_ref().map(DecimalText::new).as_ref().map(DecimalText::as_str),
                    c.closed,
                ])?;
            }
        }
        RecordKind::Trade => {
            let mut stmt = tx.prepare_cached(&format!(
                "INSERT INTO {collection} (symbol, kind, id, price, qty, time, is_buyer_maker, first_trade_id, last_trade_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (symbol, kind, id) DO UPDATE SET price = excluded.price, qty = excluded.qty,
                    time = excluded.time, is_buyer_maker = excluded.is_buyer_maker,
                    first_trade_id = excluded.first_trade_id, last_trade_id = excluded.last_trade_id"
            ))?;
            for r in records {
                let DataRecord::Trade(t) = r else { continue };
                stmt.execute(params![
                    t.symbol,
                    t.kind.as_str(),
                    t.id,
                    DecimalText::new(&t.price).as_str(),
                    DecimalText::new(&t.qty).as_str(),
                    t.time,
                    t.is_buyer_maker,
                    t.first_trade_id,
                    t.last_trade_id,
                ])?;
            }
        }
        RecordKind::DepthUpdate => {
            let mut stmt = tx.prepare_cached(&format!(
                "INSERT INTO {collection} (symbol, final_update_id, first_update_id, event_time, bids, asks)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (symbol, final_update_id) DO UPDATE SET first_update_id = excluded.first_update_id,
                    event_time = excluded.event_time, bids = excluded.bids, asks = excluded.asks"
            ))?;
            for r in records {
                let DataRecord::DepthUpdate(d) = r else {
                    continue;
                };
                stmt.execute(params![
                    d.symbol,
                    d.final_update_id,
                    d.first_update_id,
                    d.event_time,
                    levels_json(&d.bids),
                    levels_json(&d.asks)
                ])?;
            }
        }
        RecordKind::BookSnapshot => {
            let mut stmt = tx.prepare_cached(&format!(
                "INSERT INTO {collection} (symbol, last_update_id, bids, asks) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (symbol, last_update_id) DO UPDATE SET bids = excluded.bids, asks = excluded.asks"
            ))?;
            for r in records {
                let DataRecord::BookSnapshot(s) = r else {
                    continue;
                };
                stmt.execute(params![s.symbol, s.last_update_id, levels_json(&s.bids), levels_json(&s.asks)])?;
            }
        }
    }
    Ok(())
}

fn dec(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Decimal> {
    let s: String = row.get(idx)?;
    s.parse().map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

fn opt_dec(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Option<Decimal>> {
    let s: Option<String> = row.get(idx)?;
    s.map(|s| s.parse())
        .transpose()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

#[async_trait]
impl Store for SqliteStore {
    async fn upsert(&self, collection: &str, records: Batch) -> Result<(), StoreError> {
        let collection = collection.to_owned();
        self.with(move |inner| {
            let Some(kind) = batch_kind(&collection, &records)? else {
                return Ok(());
            };
            let Inner { conn, kinds } = inner;
            let tx = conn.transaction()?;
            ensure_collection(kinds, &tx, &collection, kind)?;
            write_batch(&tx, &collection, kind, &records)?;
            tx.commit()?;
            kinds.insert(collection, kind);
            Ok(())
        })
        .await
    }

    async fn high_water_mark(&self, collection: &str, symbol: &str) -> Result<Option<i64>, StoreError> {
        let (collection, symbol) = (collection.to_owned(), symbol.to_owned());
        self.with(move |inner| {
            let Some(kind) = inner.kind_of(&collection)? else {
                return Ok(None);
            };
            let column = match kind {
                RecordKind::Candle => "open_time",
                RecordKind::Trade => "id",
                RecordKind::DepthUpdate => "final_update_id",
                RecordKind::BookSnapshot => "last_update_id",
            };
            let sql = format!("SELECT MAX({column}) FROM {collection} WHERE symbol = ?1");
            Ok(inner.conn.query_row(&sql, [symbol], |r| r.get::<_, Option<i64>>(0))?)
        })
        .await
    }

    async fn candles(&self, collection: &str, symbol: &str, from: i64, to: i64) -> Result<Vec<Candle>, StoreError> {
        let (collection, symbol) = (collection.to_owned(), symbol.to_owned());
        self.with(move |inner| {
            if !inner.holds(&collection, RecordKind::Candle)? {
                return Ok(Vec::new());
            }
            let mut stmt = inner.conn.prepare(&format!(
                "SELECT symbol, interval, open_time, close_time, open, high, low, close, volume, quote_volume,
                        trades, taker_buy_base, taker_buy_quote, closed
                 FROM {collection} WHERE symbol = ?1 AND open_time >= ?2 AND open_time < ?3 ORDER BY open_time"
            ))?;
            let rows = stmt.query_map(params![symbol, from, to], |r| {
                let interval: String = r.get(1)?;
                Ok(Candle {
                    symbol: r.get(0)?,
                    interval: interval.parse().map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
                    })?,
                    open_time: r.get(2)?,
                    close_time: r.get(3)?,
                    open: dec(r, 4)?,
                    high: dec(r, 5)?,
                    low: dec(r, 6)?,
                    close: dec(r, 7)?,
                    volume: dec(r, 8)?,
                    quote_volume: opt_dec(r, 9)?,
                    trades: r.get::<_, Option<i64>>(10)?.map(|n| n as u64),
                    taker_buy_base: opt_dec(r, 11)?,
                    taker_buy_quote: opt_dec(r, 12)?,
                    closed: r.get(13)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn trades(&self, collection: &str, symbol: &str, from: i64, to: i64) -> Result<Vec<Trade>, StoreError> {
        let (collection, symbol) = (collection.to_owned(), symbol.to_owned());
        self.with(move |inner| {
            if !inner.holds(&collection, RecordKind::Trade)? {
                return Ok(Vec::new());
            }
            let mut stmt = inner.conn.prepare(&format!(
                "SELECT symbol, kind, id, price, qty, time, is_buyer_maker, first_trade_id, last_trade_id
                 FROM {collection} WHERE symbol = ?1 AND time >= ?2 AND time < ?3 ORDER BY kind, id"
            ))?;
            let rows = stmt.query_map(params![symbol, from, to], |r| {
                let kind: String = r.get(1)?;
                Ok(Trade {
                    symbol: r.get(0)?,
                    kind: if kind == TradeKind::AggTrade.as_str() { TradeKind::AggTrade } else { TradeKind::Trade },
                    id: r.get(2)?,
                    price: dec(r, 3)?,
                    qty: dec(r, 4)?,
                    time: r.get(5)?,
                    is_buyer_maker: r.get(6)?,
                    first_trade_id: r.get(7)?,
                    last_trade_id: r.get(8)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn collections(&self) -> Result<Vec<CollectionInfo>, StoreError> {
        self.with(|inner| {
            inner.kinds = catalog(&inner.conn)?;
            let mut names: Vec<(String, RecordKind)> = inner.kinds.iter().map(|(n, k)| (n.clone(), *k)).collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            names
                .into_iter()
                .map(|(name, kind)| {
                    let rows: i64 = inner.conn.query_row(&format!("SELECT COUNT(*) FROM {name}"), [], |r| r.get(0))?;
                    Ok(CollectionInfo { name, kind: kind.as_str(), rows: rows as u64 })
                })
                .collect()
        })
        .await
    }

    async fn put_workflow(&self, workflow: &Workflow) -> Result<(), StoreError> {
        let wf = workflow.clone();
        self.with(move |inner| {
            let body = to_json(&wf)?;
            inner.conn.execute(
                "INSERT INTO sf_workflows (id, status, body, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, body = excluded.body,
                    updated_at = excluded.updated_at",
                params![wf.id, wf.status.as_str(), body, wf.created_at, wf.updated_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn workflow(&self, id: &str) -> Result<Option<Workflow>, StoreError> {
        let id = id.to_owned();
        self.with(move |inner| {
            let body: Option<String> =
                inner.conn.query_row("SELECT body FROM sf_workflows WHERE id = ?1", [id], |r| r.get(0)).optional()?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn workflows(&self, query: &WorkflowQuery) -> Result<WorkflowPage, StoreError> {
        let (status, limit, offset) = (query.status.map(Status::as_str), query.limit, query.offset as i64);
        self.with(move |inner| {
            let total: i64 = inner.conn.query_row(
                "SELECT COUNT(*) FROM sf_workflows WHERE ?1 IS NULL OR status = ?1",
                [status],
                |r| r.get(0),
            )?;
            let mut stmt = inner.conn.prepare_cached(
                "SELECT body FROM sf_workflows WHERE ?1 IS NULL OR status = ?1
                 ORDER BY created_at DESC, id DESC LIMIT ?2 OFFSET ?3",
            )?;
            let bodies = stmt.query_map(params![status, limit, offset], |r| r.get::<_, String>(0))?;
            let workflows = bodies.map(|b| from_json(&b?)).collect::<Result<Vec<Workflow>, StoreError>>()?;
            Ok(WorkflowPage { total: total as u64, workflows })
        })
        .await
    }

    async fn claim_workflow(&self, id: &str, owner: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.with(move |inner| {
            let changed = inner.conn.execute(
                "INSERT INTO sf_workflow_leases (id, owner, until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, until = excluded.until
                 WHERE sf_workflow_leases.owner = excluded.owner OR sf_workflow_leases.until < ?4",
                params![id, owner, until, now],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn put_graph(&self, graph: &GraphSnapshot) -> Result<(), StoreError> {
        let g = graph.clone();
        self.with(move |inner| {
            let tx = inner.conn.transaction()?;
            for table in ["sf_graph_vertices", "sf_graph_edges"] {
                tx.execute(&format!("DELETE FROM {table} WHERE graph = ?1 AND time = ?2"), params![g.name, g.time])?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO sf_graphs (name, time, window_start, window_end, feature_names)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![g.name, g.time, g.window_start, g.window_end, to_json(&g.feature_names)?],
            )?;
            {
                let mut v = tx.prepare("INSERT INTO sf_graph_vertices (graph, time, symbol, features) VALUES (?1, ?2, ?3, ?4)")?;
                for vertex in &g.vertices {
                    v.execute(params![g.name, g.time, vertex.symbol, to_json(&vertex.features)?])?;
                }
                let mut e = tx.prepare(
                    "INSERT INTO sf_graph_edges (graph, time, from_symbol, to_symbol, weight) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for edge in &g.edges {
                    e.execute(params![g.name, g.time, edge.from, edge.to, edge.weight])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn graph(&self, name: &str, time: i64) -> Result<Option<GraphSnapshot>, StoreError> {
        let name = name.to_owned();
        self.with(move |inner| {
            let head: Option<(i64, i64, String)> = inner
                .conn
                .query_row(
                    "SELECT window_start, window_end, feature_names FROM sf_graphs WHERE name = ?1 AND time = ?2",
                    params![name, time],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((window_start, window_end, feature_names)) = head else {
                return Ok(None);
            };
            let mut stmt = inner.conn.prepare(
                "SELECT symbol, features FROM sf_graph_vertices WHERE graph = ?1 AND time = ?2 ORDER BY symbol",
            )?;
            let vertices = stmt
                .query_map(params![name, time], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                .map(|row| {
                    let (symbol, features) = row?;
                    Ok(Vertex { symbol, features: from_json(&features)? })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let mut stmt = inner.conn.prepare(
                "SELECT from_symbol, to_symbol, weight FROM sf_graph_edges WHERE graph = ?1 AND time = ?2
                 ORDER BY from_symbol, to_symbol",
            )?;
            let edges = stmt
                .query_map(params![name, time], |r| Ok(Edge { from: r.get(0)?, to: r.get(1)?, weight: r.get(2)? }))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(GraphSnapshot {
                name,
                time,
                window_start,
                window_end,
                feature_names: from_json(&feature_names)?,
                vertices,
                edges,
            }))
        })
        .await
    }

    async fn put_model(&self, model: &ModelRecord) -> Result<(), StoreError> {
        let m = model.clone();
        self.with(move |inner| {
            inner.conn.execute(
                "INSERT OR REPLACE INTO sf_models (name, version, uri, metrics, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![m.name, m.version, m.uri, to_json(&m.metrics)?, m.created_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn model(&self, name: &str, version: Option<i64>) -> Result<Option<ModelRecord>, StoreError> {
        let name = name.to_owned();
        self.with(move |inner| {
            let row: Option<(i64, String, String, i64)> = inner
                .conn
                .query_row(
                    "SELECT version, uri, metrics, created_at FROM sf_models
                     WHERE name = ?1 AND (?2 IS NULL OR version = ?2) ORDER BY version DESC LIMIT 1",
                    params![name, version],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            row.map(|(version, uri, metrics, created_at)| {
                Ok(ModelRecord { name, version, uri, metrics: from_json(&metrics)?, created_at })
            })
            .transpose()
        })
        .await
    }

    async fn put_confirmed_gaps(
        &self,
        collection: &str,
        symbol: &str,
        gaps: &[ConfirmedGap],
    ) -> Result<(), StoreError> {
        let (collection, symbol, gaps) = (collection.to_owned(), symbol.to_owned(), gaps.to_vec());
        self.with(move |inner| {
            let tx = inner.conn.transaction()?;
            for g in &gaps {
                tx.execute(
                    "INSERT OR IGNORE INTO sf_confirmed_gaps (collection, symbol, first_missing, last_missing)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![collection, symbol, g.first_missing, g.last_missing],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn confirmed_gaps(&self, collection: &str, symbol: &str) -> Result<Vec<ConfirmedGap>, StoreError> {
        let (collection, symbol) = (collection.to_owned(), symbol.to_owned());
        self.with(move |inner| {
            let mut stmt = inner.conn.prepare(
                "SELECT first_missing, last_missing FROM sf_confirmed_gaps
                 WHERE collection = ?1 AND symbol = ?2 ORDER BY first_missing, last_missing",
            )?;
            let rows = stmt.query_map(params![collection, symbol], |r| {
                Ok(ConfirmedGap { first_missing: r.get(0)?, last_missing: r.get(1)? })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

/// The behaviour every store shares is checked by `tests/store_conformance.rs`; here only what is
/// SQLite's own.
#[cfg(test)]
mod tests {
    use super::*;

    fn candles() -> Vec<DataRecord> {
        let body = include_bytes!("../../tests/fixtures/rest/http_spot_market_klines.json");
        Candle::from_rest_klines("BTCUSDT", "1m".parse().unwrap(), body, i64::MAX)
            .unwrap()
            .into_iter()
            .map(DataRecord::Candle)
            .collect()
    }

    #[tokio::test]
    async fn reopening_a_file_keeps_collections_and_uses_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/sf.db");
        let path = path.to_str().unwrap();
        {
            let store = SqliteStore::open(path).unwrap();
            store.upsert("c", candles().into()).await.unwrap();
        }
        let store = SqliteStore::open(path).unwrap();
        let rows = store.collections().await.unwrap().iter().find(|c| c.name == "c").map_or(0, |c| c.rows);
        assert_eq!(rows, 10);
        let mode: String = store.conn.lock().unwrap().conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }
}
