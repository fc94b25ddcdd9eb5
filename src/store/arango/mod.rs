//! The ArangoDB store (`store.url = arangodb://USER:PASSWORD@HOST:8529/DB`, `arangodbs://` for
//! HTTPS) — the seeds' target database. A document collection per collection name (as the seeds
//! name them), documents keyed by the natural key (`BTCUSDT:1m:1722470400000`), each batch one
//! AQL `INSERT … OPTIONS { overwriteMode: "replace" }` (a single query is atomic on a single
//! server); graphs as vertex and edge collections with ArangoDB `_from`/`_to` edges and a named
//! graph `sf_market_graph`, each snapshot written in one stream transaction. The database, the
//! catalog collections and the graph are created when missing.
//!
//! It talks to ArangoDB's HTTP API with the node's own reqwest client rather than `arangors`,
//! which would bring a second HTTP stack for the dozen calls used here.

mod client;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{
    batch_kind, check_kind, validate_collection, Batch, CollectionInfo, ConfirmedGap, KnownKinds, ModelRecord, Store,
    StoreError, WorkflowPage, WorkflowQuery,
};
use crate::model::{Candle, DataRecord, Edge, GraphSnapshot, NaturalKey, RecordKind, Trade, Vertex};
use crate::workflow::{Status, Workflow};
use client::ArangoClient;

const COLLECTIONS: &str = "sf_collections";
const WORKFLOWS: &str = "sf_workflows";
const LEASES: &str = "sf_workflow_leases";
const GRAPHS: &str = "sf_graphs";
const VERTICES: &str = "sf_graph_vertices";
const EDGES: &str = "sf_graph_edges";
const MODELS: &str = "sf_models";
const CONFIRMED_GAPS: &str = "sf_confirmed_gaps";
const GRAPH: &str = "sf_market_graph";

pub struct ArangoStore {
    client: ArangoClient,
    kinds: KnownKinds,
}

/// A record's document key: its natural key, `:`-joined.
fn document_key(record: &DataRecord) -> String {
    match record.natural_key() {
        NaturalKey::Candle(s, i, t) => format!("{s}:{i}:{t}"),
        NaturalKey::Trade(s, k, id) => format!("{s}:{k}:{id}"),
        NaturalKey::Depth(s, u) | NaturalKey::Snapshot(s, u) => format!("{s}:{u}"),
    }
}

/// The record as a document: its bus JSON (decimals as Binance's strings) plus `_key`.
fn document(record: &DataRecord) -> Result<Value, StoreError> {
    let mut doc = serde_json::to_value(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    doc["_key"] = Value::String(document_key(record));
    Ok(doc)
}

fn record(doc: Value) -> Result<DataRecord, StoreError> {
    serde_json::from_value(doc).map_err(|e| StoreError::Corrupt(format!("stored document: {e}")))
}

/// The attribute holding a record's sequence (high-water marks) and the indexes of its kind.
fn layout(kind: RecordKind) -> (&'static str, &'static [&'static str]) {
    match kind {
        RecordKind::Candle => ("open_time", &["symbol", "open_time"]),
        RecordKind::Trade => ("id", &["symbol", "time"]),
        RecordKind::DepthUpdate => ("final_update_id", &["symbol", "final_update_id"]),
        RecordKind::BookSnapshot => ("last_update_id", &["symbol", "last_update_id"]),
    }
}

impl ArangoStore {
    /// Connects, creating the database, the catalog collections and the named graph when
    /// missing, and loads the catalog.
    pub async fn connect(url: &str) -> Result<ArangoStore, StoreError> {
        let client = ArangoClient::from_url(url)?;
        client.ensure_database().await?;
        client.ensure_collection(COLLECTIONS, false, &[]).await?;
        client.ensure_collection(WORKFLOWS, false, &["status", "updated_at"]).await?;
        client.ensure_collection(LEASES, false, &[]).await?;
        client.ensure_collection(GRAPHS, false, &[]).await?;
        client.ensure_collection(VERTICES, false, &["graph", "time"]).await?;
        client.ensure_collection(EDGES, true, &["graph", "time"]).await?;
        client.ensure_collection(MODELS, false, &["name", "version"]).await?;
        client.ensure_collection(CONFIRMED_GAPS, false, &["collection", "symbol"]).await?;
        client.ensure_graph(GRAPH, EDGES, VERTICES).await?;
        let kinds = KnownKinds::default();
        for c in client.query("FOR c IN @@c RETURN c", json!({ "@c": COLLECTIONS }), None).await? {
            let (name, kind) = (c["_key"].as_str().unwrap_or_default(), c["kind"].as_str().unwrap_or_default());
            kinds.insert(name, super::parse_kind(kind)?);
        }
        tracing::info!(database = %client.target, collections = kinds.len(), "ArangoDB store ready.");
        Ok(ArangoStore { client, kinds })
    }

    async fn kind_of(&self, collection: &str) -> Result<Option<RecordKind>, StoreError> {
        validate_collection(collection)?;
        if let Some(k) = self.kinds.get(collection) {
            return Ok(Some(k));
        }
        let found = self
            .client
            .query("RETURN DOCUMENT(@@c, @name).kind", json!({ "@c": COLLECTIONS, "name": collection }), None)
            .await?;
        let kind = found.first().and_then(Value::as_str).map(super::parse_kind).transpose()?;
        if let Some(k) = kind {
            self.kinds.insert(collection, k);
        }
        Ok(kind)
    }

    async fn records(
        &self,
        collection: &str,
        kind: RecordKind,
        filter: &str,
        bind: Value,
    ) -> Result<Vec<DataRecord>, StoreError> {
        if !check_kind(collection, self.kind_of(collection).await?, kind)? {
            return Ok(Vec::new());
        }
        let mut bind = bind;
        bind["@c"] = Value::String(collection.to_owned());
        let aql = format!("FOR d IN @@c {filter} RETURN UNSET(d, '_key', '_id', '_rev')");
        self.client.query(&aql, bind, None).await?.into_iter().map(record).collect()
    }

    /// Runs `steps` (AQL, bind variables) in one stream transaction writing `collections`.
    async fn transaction(&self, collections: &[&str], steps: Vec<(&str, Value)>) -> Result<(), StoreError> {
        let trx = self.client.begin(collections).await?;
        for (aql, bind) in steps {
            if let Err(e) = self.client.query(aql, bind, Some(&trx)).await {
                self.client.abort(&trx).await;
                return Err(e);
            }
        }
        self.client.commit(&trx).await
    }
}

#[async_trait]
impl Store for ArangoStore {
    async fn upsert(&self, collection: &str, records: Batch) -> Result<(), StoreError> {
        let Some(kind) = batch_kind(collection, &records)? else {
            return Ok(());
        };
        let known = self.kind_of(collection).await?;
        check_kind(collection, known, kind)?;
        if known.is_none() {
            let (_, index) = layout(kind);
            self.client.ensure_collection(collection, false, index).await?;
        }
        let docs = records.iter().map(document).collect::<Result<Vec<_>, _>>()?;
        self.client
            .query(
                "FOR d IN @docs INSERT d INTO @@c OPTIONS { overwriteMode: 'replace' }",
                json!({ "docs": docs, "@c": collection }),
                None,
            )
            .await?;
        if known.is_none() {
            // Registered only once the first batch is in: a failed batch leaves no collection in
            // the catalog.
            self.client
                .query(
                    "INSERT { _key: @name, kind: @kind, created_at: @now } INTO @@c OPTIONS { overwriteMode: 'ignore' }",
                    json!({ "@c": COLLECTIONS, "name": collection, "kind": kind.as_str(), "now": crate::model::now_ms() }),
                    None,
                )
                .await?;
            self.kinds.insert(collection, kind);
        }
        Ok(())
    }

    async fn high_water_mark(&self, collection: &str, symbol: &str) -> Result<Option<i64>, StoreError> {
        let Some(kind) = self.kind_of(collection).await? else {
            return Ok(None);
        };
        let (sequence, _) = layout(kind);
        let found = self
            .client
            .query(
                "FOR d IN @@c FILTER d.symbol == @s COLLECT AGGREGATE m = MAX(d.@f) RETURN m",
                json!({ "@c": collection, "s": symbol, "f": sequence }),
                None,
            )
            .await?;
        Ok(found.first().and_then(Value::as_i64))
    }

    async fn candles(&self, collection: &str, symbol: &str, from: i64, to: i64) -> Result<Vec<Candle>, StoreError> {
        let filter = "FILTER d.symbol == @s AND d.open_time >= @from AND d.open_time < @to SORT d.open_time";
        let found =
            self.records(collection, RecordKind::Candle, filter, json!({ "s": symbol, "from": from, "to": to }));
        Ok(found
            .await?
            .into_iter()
            .filter_map(|r| if let DataRecord::Candle(c) = r { Some(c) } else { None })
            .collect())
    }

    async fn trades(&self, collection: &str, symbol: &str, from: i64, to: i64) -> Result<Vec<Trade>, StoreError> {
        let filter = "FILTER d.symbol == @s AND d.time >= @from AND d.time < @to SORT d.kind, d.id";
        let found = self.records(collection, RecordKind::Trade, filter, json!({ "s": symbol, "from": from, "to": to }));
        Ok(found.await?.into_iter().filter_map(|r| if let DataRecord::Trade(t) = r { Some(t) } else { None }).collect())
    }

    async fn collections(&self) -> Result<Vec<CollectionInfo>, StoreError> {
        let catalog =
            self.client.query("FOR c IN @@c SORT c._key RETURN c", json!({ "@c": COLLECTIONS }), None).await?;
        let mut out = Vec::with_capacity(catalog.len());
        for c in catalog {
            let name = c["_key"].as_str().unwrap_or_default().to_owned();
            let kind = super::parse_kind(c["kind"].as_str().unwrap_or_default())?;
            let count = self.client.query("RETURN LENGTH(@@c)", json!({ "@c": name }), None).await?;
            let rows = count.first().and_then(Value::as_u64).unwrap_or(0);
            out.push(CollectionInfo { name, kind: kind.as_str(), rows });
        }
        Ok(out)
    }

    async fn put_workflow(&self, workflow: &Workflow) -> Result<(), StoreError> {
        let doc = json!({ "_key": workflow.id, "status": workflow.status.as_str(), "updated_at": workflow.updated_at, "body": workflow });
        self.client
            .query(
                "INSERT @doc INTO @@c OPTIONS { overwriteMode: 'replace' }",
                json!({ "@c": WORKFLOWS, "doc": doc }),
                None,
            )
            .await
            .map(drop)
    }

    async fn workflow(&self, id: &str) -> Result<Option<Workflow>, StoreError> {
        let found =
            self.client.query("RETURN DOCUMENT(@@c, @id).body", json!({ "@c": WORKFLOWS, "id": id }), None).await?;
        match found.into_iter().next() {
            None | Some(Value::Null) => Ok(None),
            Some(body) => serde_json::from_value(body).map(Some).map_err(|e| StoreError::Corrupt(e.to_string())),
        }
    }

    async fn workflows(&self, query: &WorkflowQuery) -> Result<WorkflowPage, StoreError> {
        let status = query.status.map(Status::as_str);
        let found = self
            .client
            .query(
                "LET all = (FOR d IN @@c FILTER @status == null OR d.status == @status RETURN d)
                 RETURN { total: LENGTH(all), workflows: (FOR d IN all SORT d.body.created_at DESC, d._key DESC
                    LIMIT @offset, @limit RETURN d.body) }",
                json!({ "@c": WORKFLOWS, "status": status, "offset": query.offset, "limit": query.limit }),
                None,
            )
            .await?;
        #[derive(serde::Deserialize)]
        struct Found {
            total: u64,
            workflows: Vec<Workflow>,
        }
        let page: Found = serde_json::from_value(found.into_iter().next().unwrap_or_default())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(WorkflowPage { total: page.total, workflows: page.workflows })
    }

    /// One AQL query is one transaction on a single server: the read and the write of the lease
    /// happen together.
    async fn claim_workflow(&self, id: &str, owner: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        let found = self
            .client
            .query(
                "LET held = DOCUMENT(@@c, @id)
                 FILTER held == null OR held.owner == @owner OR held.until < @now
                 UPSERT { _key: @id } INSERT { _key: @id, owner: @owner, until: @until }
                    UPDATE { owner: @owner, until: @until } IN @@c
                 RETURN true",
                json!({ "@c": LEASES, "id": id, "owner": owner, "now": now, "until": until }),
                None,
            )
            .await?;
        Ok(!found.is_empty())
    }

    async fn put_graph(&self, g: &GraphSnapshot) -> Result<(), StoreError> {
        let at = format!("{}:{}", g.name, g.time);
        let head = json!({
            "_key": at, "name": g.name, "time": g.time, "window_start": g.window_start,
            "window_end": g.window_end, "feature_names": g.feature_names,
        });
        let vertices: Vec<Value> = g
            .vertices
            .iter()
            .map(|v| json!({ "_key": format!("{at}:{}", v.symbol), "graph": g.name, "time": g.time, "symbol": v.symbol, "features": v.features }))
            .collect();
        let edges: Vec<Value> = g
            .edges
            .iter()
            .map(|e| {
                json!({
                    "_key": format!("{at}:{}:{}", e.from, e.to),
                    "_from": format!("{VERTICES}/{at}:{}", e.from),
                    "_to": format!("{VERTICES}/{at}:{}", e.to),
                    "graph": g.name, "time": g.time, "from": e.from, "to": e.to, "weight": e.weight,
                })
            })
            .collect();
        let of_snapshot = json!({ "g": g.name, "t": g.time });
        let steps = vec![
            (
                "FOR d IN sf_graph_edges FILTER d.graph == @g AND d.time == @t REMOVE d IN sf_graph_edges",
                of_snapshot.clone(),
            ),
            (
                "FOR d IN sf_graph_vertices FILTER d.graph == @g AND d.time == @t REMOVE d IN sf_graph_vertices",
                of_snapshot,
            ),
            ("INSERT @head INTO sf_graphs OPTIONS { overwriteMode: 'replace' }", json!({ "head": head })),
            ("FOR v IN @vs INSERT v INTO sf_graph_vertices", json!({ "vs": vertices })),
            ("FOR e IN @es INSERT e INTO sf_graph_edges", json!({ "es": edges })),
        ];
        self.transaction(&[GRAPHS, VERTICES, EDGES], steps).await
    }

    async fn graph(&self, name: &str, time: i64) -> Result<Option<GraphSnapshot>, StoreError> {
        let key = format!("{name}:{time}");
        let head = self.client.query("RETURN DOCUMENT(@@c, @k)", json!({ "@c": GRAPHS, "k": key }), None).await?;
        let Some(head) = head.into_iter().next().filter(|h| !h.is_null()) else {
            return Ok(None);
        };
        let bind = json!({ "g": name, "t": time });
        let vertices = self
            .client
            .query(
                "FOR v IN sf_graph_vertices FILTER v.graph == @g AND v.time == @t SORT v.symbol RETURN v",
                bind.clone(),
                None,
            )
            .await?
            .into_iter()
            .map(|v| serde_json::from_value::<Vertex>(v).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let edges = self
            .client
            .query(
                "FOR e IN sf_graph_edges FILTER e.graph == @g AND e.time == @t SORT e.from, e.to RETURN e",
                bind,
                None,
            )
            .await?
            .into_iter()
            .map(|e| serde_json::from_value::<Edge>(e).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let int =
            |field: &str| head[field].as_i64().ok_or_else(|| StoreError::Corrupt(format!("graph {key}: {field}")));
        Ok(Some(GraphSnapshot {
            name: name.to_owned(),
            time,
            window_start: int("window_start")?,
            window_end: int("window_end")?,
            feature_names: serde_json::from_value(head["feature_names"].clone())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            vertices,
            edges,
        }))
    }

    async fn put_model(&self, m: &ModelRecord) -> Result<(), StoreError> {
        let mut doc = serde_json::to_value(m).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        doc["_key"] = Value::String(format!("{}:{}", m.name, m.version));
        self.client
            .query(
                "INSERT @doc INTO @@c OPTIONS { overwriteMode: 'replace' }",
                json!({ "@c": MODELS, "doc": doc }),
                None,
            )
            .await
            .map(drop)
    }

    async fn model(&self, name: &str, version: Option<i64>) -> Result<Option<ModelRecord>, StoreError> {
        let found = self
            .client
            .query(
                "FOR m IN @@c FILTER m.name == @n AND (@v == null OR m.version == @v) SORT m.version DESC LIMIT 1
                 RETURN UNSET(m, '_key', '_id', '_rev')",
                json!({ "@c": MODELS, "n": name, "v": version }),
                None,
            )
            .await?;
        found
            .into_iter()
            .next()
            .map(|m| serde_json::from_value(m).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    async fn put_confirmed_gaps(
        &self,
        collection: &str,
        symbol: &str,
        gaps: &[ConfirmedGap],
    ) -> Result<(), StoreError> {
        let docs: Vec<Value> = gaps
            .iter()
            .map(|g| {
                json!({
                    "_key": format!("{collection}:{symbol}:{}:{}", g.first_missing, g.last_missing),
                    "collection": collection,
                    "symbol": symbol,
                    "first_missing": g.first_missing,
                    "last_missing": g.last_missing,
                })
            })
            .collect();
        self.client
            .query(
                "FOR d IN @docs INSERT d INTO @@c OPTIONS { overwriteMode: 'ignore' }",
                json!({ "@c": CONFIRMED_GAPS, "docs": docs }),
                None,
            )
            .await
            .map(drop)
    }

    async fn confirmed_gaps(&self, collection: &str, symbol: &str) -> Result<Vec<ConfirmedGap>, StoreError> {
        let found = self
            .client
            .query(
                "FOR g IN @@c FILTER g.collection == @coll AND g.symbol == @s SORT g.first_missing, g.last_missing
                 RETURN { first_missing: g.first_missing, last_missing: g.last_missing }",
                json!({ "@c": CONFIRMED_GAPS, "coll": collection, "s": symbol }),
                None,
            )
            .await?;
        found.into_iter().map(|g| serde_json::from_value(g).map_err(|e| StoreError::Corrupt(e.to_string()))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_keyed_by_the_natural_key_and_read_back_whole() {
        let body = include_bytes!("../../../tests/fixtures/rest/http_spot_market_klines.json");
        let candle = Candle::from_rest_klines("BTCUSDT", "1m".parse().unwrap(), body, i64::MAX).unwrap().remove(0);
        let key = format!("BTCUSDT:1m:{}", candle.open_time);
        let rec = DataRecord::Candle(candle);
        let doc = document(&rec).unwrap();
        assert_eq!(doc["_key"], key);
        assert_eq!(doc["open"], "60685.22000000", "decimals keep Binance's digits");
        let mut stored = doc.clone();
        for meta in ["_key", "_id", "_rev"] {
            stored.as_object_mut().unwrap().remove(meta);
        }
        assert_eq!(record(stored).unwrap(), rec);
        let body = include_bytes!("../../../tests/fixtures/rest/http_spot_market_agg_trades.json");
        let trade = DataRecord::Trade(Trade::from_rest_agg_trades("BTCUSDT", body).unwrap().remove(0));
        assert!(document_key(&trade).starts_with("BTCUSDT:agg_trade:"));
    }
}
