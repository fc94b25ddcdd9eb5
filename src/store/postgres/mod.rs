//! The PostgreSQL store (`store.url = postgres://USER[:PASSWORD]@HOST:PORT/DB[?sslmode=require]`):
//! a connection pool, the catalog schema migrated at start, one table per collection with the
//! natural key as primary key, and batches written as one transactional `UNNEST` upsert.
//! Connection failures are [`StoreError::Unavailable`] (transient): the connector keeps its
//! offsets uncommitted and retries, and the bus holds the data meanwhile.

mod migrations;
mod tables;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::{
    batch_kind, validate_collection, Batch, CollectionInfo, ConfirmedGap, KnownKinds, ModelRecord, Store, StoreError,
    WorkflowPage, WorkflowQuery,
};
use crate::model::{Candle, DataRecord, Edge, GraphSnapshot, RecordKind, Trade, TradeKind, Vertex};
use crate::workflow::{Status, Workflow};
pub use migrations::MIGRATIONS;

/// Connections a node keeps open at most.
const POOL_SIZE: usize = 8;
/// How long a caller waits for a connection (or for a new one to be made) before the database
/// counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PostgresStore {
    pool: Pool,
    /// `host:port/db`, for messages (never the password).
    target: String,
    kinds: KnownKinds,
}

/// The error text PostgreSQL gave (its message, detail and SQLSTATE), not just "db error".
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let detail = db.detail().map(|d| format!(" ({d})")).unwrap_or_default();
            format!("{}{detail} [SQLSTATE {}]", db.message(), db.code().code())
        }
        None => e.to_string(),
    }
}

/// Classifies a driver error: a lost or refused connection, or a server that asks the client to
/// retry, is transient; anything else is a failed request.
pub(super) fn db_error(e: tokio_postgres::Error) -> StoreError {
    let retry = match e.code() {
        None => true, // I/O: the connection is gone
        Some(code) => {
            let c = code.code();
            c.starts_with("08") // connection exception
                || c.starts_with("53") // insufficient resources
                || c.starts_with("57P") // server shutting down / cannot connect now
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
        }
    };
    if retry {
        StoreError::Unavailable { url: String::new(), reason: describe(&e) }
    } else {
        StoreError::Database(describe(&e))
    }
}

fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Database(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Keeps the last of records sharing a natural key: one statement cannot update a row twice.
fn last_per_key(records: &[DataRecord]) -> Vec<&DataRecord> {
    let mut seen = HashSet::with_capacity(records.len());
    let mut out: Vec<&DataRecord> = records.iter().rev().filter(|r| seen.insert(r.natural_key())).collect();
    out.reverse();
    out
}

impl PostgresStore {
    /// Connects, applies pending migrations and loads the catalog. Fails with every detail the
    /// server gave when the database cannot be reached or the URL is wrong.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Database(format!("invalid PostgreSQL url: {e}")))?;
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".into());
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let target = format!("{host}:{port}/{}", config.get_dbname().unwrap_or_default());
        let manager =
            Manager::from_config(config, tls()?, ManagerConfig { recycling_method: RecyclingMethod::Verified });
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Database(format!("connection pool: {e}")))?;
        let store = PostgresStore { pool, target, kinds: KnownKinds::default() };
        let mut client = store.client().await?;
        let applied = migrations::migrate(&mut client).await.map_err(|e| store.located(e))?;
        let rows = client.query("SELECT name, kind FROM sf_collections", &[]).await.map_err(|e| store.err(e))?;
        for row in rows {
            let (name, kind): (&str, &str) = (row.get(0), row.get(1));
            store.kinds.insert(name, super::parse_kind(kind)?);
        }
        tracing::info!(database = %store.target, migrations_applied = applied, collections = store.kinds.len(), "PostgreSQL store ready.");
        Ok(store)
    }

    /// Puts this database's address into an unavailability error.
    fn located(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Unavailable { reason, .. } => StoreError::Unavailable { url: self.target.clone(), reason },
            other => other,
        }
    }

    fn err(&self, e: tokio_postgres::Error) -> StoreError {
        self.located(db_error(e))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| {
            let reason = match e {
                PoolError::Timeout(_) => format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
                PoolError::Backend(e) => describe(&e),
                other => other.to_string(),
            };
            StoreError::Unavailable { url: self.target.clone(), reason }
        })
    }

    /// The kind `collection` holds, asking the database when this node has not seen it (another
    /// node may have created it).
    async fn kind_of(&self, collection: &str) -> Result<Option<RecordKind>, StoreError> {
        validate_collection(collection)?;
        if let Some(k) = self.kinds.get(collection) {
            return Ok(Some(k));
        }
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT kind FROM sf_collections WHERE name = $1", &[&collection])
            .await
            .map_err(|e| self.err(e))?;
        let kind = row.map(|r| super::parse_kind(r.get(0))).transpose()?;
        if let Some(k) = kind {
            self.kinds.insert(collection, k);
        }
        Ok(kind)
    }

    /// Whether `collection` exists and holds `kind`; an error when it holds another kind.
    async fn holds(&self, collection: &str, kind: RecordKind) -> Result<bool, StoreError> {
        super::check_kind(collection, self.kind_of(collection).await?, kind)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn upsert(&self, collection: &str, records: Batch) -> Result<(), StoreError> {
        let Some(kind) = batch_kind(collection, &records)? else {
            return Ok(());
        };
        validate_collection(collection)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(e))?;
        if self.kinds.get(collection).is_none() {
            // Serialises creators of the same collection across nodes; the table appears with the
            // batch's commit or not at all.
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&collection]).await.map_err(|e| self.err(e))?;
            let existing = tx
                .query_opt("SELECT kind FROM sf_collections WHERE name = $1", &[&collection])
                .await
                .map_err(|e| self.err(e))?
                .map(|r| super::parse_kind(r.get(0)))
                .transpose()?;
            if existing.is_none() {
                tx.batch_execute(&tables::ddl(collection, kind)).await.map_err(|e| self.err(e))?;
                tx.execute(
                    "INSERT INTO sf_collections (name, kind, created_at) VALUES ($1, $2, $3)",
                    &[&collection, &kind.as_str(), &crate::model::now_ms()],
                )
                .await
                .map_err(|e| self.err(e))?;
            }
            super::check_kind(collection, existing, kind)?;
        }
        super::check_kind(collection, self.kinds.get(collection), kind)?;
        let unique = last_per_key(&records);
        let params = tables::upsert_params(kind, &unique);
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let stmt = tx.prepare_cached(&tables::upsert_sql(collection, kind)).await.map_err(|e| self.err(e))?;
        tx.execute(&stmt, &refs).await.map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        self.kinds.insert(collection, kind);
        Ok(())
    }

    async fn high_water_mark(&self, collection: &str, symbol: &str) -> Result<Option<i64>, StoreError> {
        let Some(kind) = self.kind_of(collection).await? else {
            return Ok(None);
        };
        let column = tables::sequence_column(kind);
        let client = self.client().await?;
        let row = client
            .query_one(&format!("SELECT MAX({column}) FROM {collection} WHERE symbol = $1"), &[&symbol])
            .await
            .map_err(|e| self.err(e))?;
        Ok(row.get(0))
    }

    async fn candles(&self, collection: &str, symbol: &str, from: i64, to: i64) -> Result<Vec<Candle>, StoreError> {
        if !self.holds(collection, RecordKind::Candle).await? {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT symbol, interval, open_time, close_time, open, high, low, close, volume, quote_volume,
                        trades, taker_buy_base, taker_buy_quote, closed
                     FROM {collection} WHERE symbol = $1 AND open_time >= $2 AND open_time < $3 ORDER BY open_time"
                ),
                &[&symbol, &from, &to],
            )
            .await
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| {
                let interval: &str = r.get(1);
                Ok(Candle {
                    symbol: r.get(0),
                    interval: interval.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))?,
                    open_time: r.get(2),
                    close_time: r.get(3),
                    open: r.get(4),
                    high: r.get(5),
                    low: r.get(6),
                    close: r.get(7),
                    volume: r.get(8),
                    quote_volume: r.get(9),
                    trades: r.get::<_, Option<i64>>(10).map(|n| n as u64),
                    taker_buy_base: r.get(11),
                    taker_buy_quote: r.get(12),
                    closed: r.get(13),
                })
            })
            .collect()
    }

    async fn trades(&self, collection: &str, symbol: &str, from: i64, to: i64) -> Result<Vec<Trade>, StoreError> {
        if !self.holds(collection, RecordKind::Trade).await? {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT symbol, kind, id, price, qty, time, is_buyer_maker, first_trade_id, last_trade_id
                     FROM {collection} WHERE symbol = $1 AND time >= $2 AND time < $3 ORDER BY kind, id"
                ),
                &[&symbol, &from, &to],
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| Trade {
                symbol: r.get(0),
                kind: if r.get::<_, &str>(1) == TradeKind::AggTrade.as_str() {
                    TradeKind::AggTrade
                } else {
                    TradeKind::Trade
                },
                id: r.get(2),
                price: r.get(3),
                qty: r.get(4),
                time: r.get(5),
                is_buyer_maker: r.get(6),
                first_trade_id: r.get(7),
                last_trade_id: r.get(8),
            })
            .collect())
    }

    async fn collections(&self) -> Result<Vec<CollectionInfo>, StoreError> {
        let client = self.client().await?;
        let rows =
            client.query("SELECT name, kind FROM sf_collections ORDER BY name", &[]).await.map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row.get(0);
            let kind = super::parse_kind(row.get(1))?;
            let count: i64 =
                client.query_one(&format!("SELECT COUNT(*) FROM {name}"), &[]).await.map_err(|e| self.err(e))?.get(0);
            out.push(CollectionInfo { name, kind: kind.as_str(), rows: count as u64 });
        }
        Ok(out)
    }

    async fn put_workflow(&self, workflow: &Workflow) -> Result<(), StoreError> {
        let body = super::to_json(workflow)?;
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO sf_workflows (id, status, body, created_at, updated_at) VALUES ($1, $2, $3::text::jsonb, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, body = EXCLUDED.body,
                    updated_at = EXCLUDED.updated_at",
                &[&workflow.id, &workflow.status.as_str(), &body, &workflow.created_at, &workflow.updated_at],
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn workflow(&self, id: &str) -> Result<Option<Workflow>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT body::text FROM sf_workflows WHERE id = $1", &[&id])
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| super::from_json(r.get(0))).transpose()
    }

    async fn workflows(&self, query: &WorkflowQuery) -> Result<WorkflowPage, StoreError> {
        let client = self.client().await?;
        let status = query.status.map(Status::as_str);
        let total: i64 = client
            .query_one("SELECT COUNT(*) FROM sf_workflows WHERE $1::text IS NULL OR status = $1", &[&status])
            .await
            .map_err(|e| self.err(e))?
            .get(0);
        let rows = client
            .query(
                "SELECT body::text FROM sf_workflows WHERE $1::text IS NULL OR status = $1
                 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
                &[&status, &i64::from(query.limit), &(query.offset as i64)],
            )
            .await
            .map_err(|e| self.err(e))?;
        let workflows =
            rows.iter().map(|r| super::from_json(r.get(0))).collect::<Result<Vec<Workflow>, StoreError>>()?;
        Ok(WorkflowPage { total: total as u64, workflows })
    }

    async fn claim_workflow(&self, id: &str, owner: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "INSERT INTO sf_workflow_leases (id, owner, until) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET owner = EXCLUDED.owner, until = EXCLUDED.until
                 WHERE sf_workflow_leases.owner = EXCLUDED.owner OR sf_workflow_leases.until < $4",
                &[&id, &owner, &until, &now],
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(changed == 1)
    }

    async fn put_graph(&self, g: &GraphSnapshot) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(e))?;
        // Replacing the snapshot drops its old vertices and edges (ON DELETE CASCADE).
        tx.execute("DELETE FROM sf_graphs WHERE name = $1 AND time = $2", &[&g.name, &g.time])
            .await
            .map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO sf_graphs (name, time, window_start, window_end, feature_names)
             VALUES ($1, $2, $3, $4, $5::text::jsonb)",
            &[&g.name, &g.time, &g.window_start, &g.window_end, &super::to_json(&g.feature_names)?],
        )
        .await
        .map_err(|e| self.err(e))?;
        let symbols: Vec<&str> = g.vertices.iter().map(|v| v.symbol.as_str()).collect();
        let features = g.vertices.iter().map(|v| super::to_json(&v.features)).collect::<Result<Vec<_>, _>>()?;
        tx.execute(
            "INSERT INTO sf_graph_vertices (graph, time, symbol, features)
             SELECT $1, $2, s, f::jsonb FROM UNNEST($3::text[], $4::text[]) AS x(s, f)",
            &[&g.name, &g.time, &symbols, &features],
        )
        .await
        .map_err(|e| self.err(e))?;
        let from: Vec<&str> = g.edges.iter().map(|e| e.from.as_str()).collect();
        let to: Vec<&str> = g.edges.iter().map(|e| e.to.as_str()).collect();
        let weight: Vec<f64> = g.edges.iter().map(|e| e.weight).collect();
        tx.execute(
            "INSERT INTO sf_graph_edges (graph, time, from_symbol, to_symbol, weight)
             SELECT $1, $2, f, t, w FROM UNNEST($3::text[], $4::text[], $5::float8[]) AS x(f, t, w)",
            &[&g.name, &g.time, &from, &to, &weight],
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn graph(&self, name: &str, time: i64) -> Result<Option<GraphSnapshot>, StoreError> {
        let client = self.client().await?;
        let Some(head) = client
            .query_opt(
                "SELECT window_start, window_end, feature_names::text FROM sf_graphs WHERE name = $1 AND time = $2",
                &[&name, &time],
            )
            .await
            .map_err(|e| self.err(e))?
        else {
            return Ok(None);
        };
        let vertices = client
            .query(
                "SELECT symbol, features::text FROM sf_graph_vertices WHERE graph = $1 AND time = $2 ORDER BY symbol",
                &[&name, &time],
            )
            .await
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| Ok(Vertex { symbol: r.get(0), features: super::from_json(r.get(1))? }))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let edges = client
            .query(
                "SELECT from_symbol, to_symbol, weight FROM sf_graph_edges WHERE graph = $1 AND time = $2
                 ORDER BY from_symbol, to_symbol",
                &[&name, &time],
            )
            .await
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| Edge { from: r.get(0), to: r.get(1), weight: r.get(2) })
            .collect();
        Ok(Some(GraphSnapshot {
            name: name.to_owned(),
            time,
            window_start: head.get(0),
            window_end: head.get(1),
            feature_names: super::from_json(head.get(2))?,
            vertices,
            edges,
        }))
    }

    async fn put_model(&self, m: &ModelRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO sf_models (name, version, uri, metrics, created_at) VALUES ($1, $2, $3, $4::text::jsonb, $5)
                 ON CONFLICT (name, version) DO UPDATE SET uri = EXCLUDED.uri, metrics = EXCLUDED.metrics,
                    created_at = EXCLUDED.created_at",
                &[&m.name, &m.version, &m.uri, &super::to_json(&m.metrics)?, &m.created_at],
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn model(&self, name: &str, version: Option<i64>) -> Result<Option<ModelRecord>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT version, uri, metrics::text, created_at FROM sf_models
                 WHERE name = $1 AND ($2::int8 IS NULL OR version = $2) ORDER BY version DESC LIMIT 1",
                &[&name, &version],
            )
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| {
            Ok(ModelRecord {
                name: name.to_owned(),
                version: r.get(0),
                uri: r.get(1),
                metrics: super::from_json(r.get(2))?,
                created_at: r.get(3),
            })
        })
        .transpose()
    }

    async fn put_confirmed_gaps(
        &self,
        collection: &str,
        symbol: &str,
        gaps: &[ConfirmedGap],
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(e))?;
        for g in gaps {
            tx.execute(
                "INSERT INTO sf_confirmed_gaps (collection, symbol, first_missing, last_missing) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&collection, &symbol, &g.first_missing, &g.last_missing],
            )
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    async fn confirmed_gaps(&self, collection: &str, symbol: &str) -> Result<Vec<ConfirmedGap>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT first_missing, last_missing FROM sf_confirmed_gaps
                 WHERE collection = $1 AND symbol = $2 ORDER BY first_missing, last_missing",
                &[&collection, &symbol],
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(|r| ConfirmedGap { first_missing: r.get(0), last_missing: r.get(1) }).collect())
    }
}
