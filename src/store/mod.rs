//! Where records end up: the [`Store`] trait (idempotent batched upserts by natural key,
//! high-water marks for resuming, workflow records, graphs, the model registry, the gaps the
//! exchange confirmed) and its implementations, picked by `store.url` alone: embedded SQLite,
//! PostgreSQL (feature `postgres`) and ArangoDB; candles derived from stored ones ([`derived`]);
//! holes in stored series found and filled from the exchange ([`repair`]).

pub mod arango;
pub mod derived;
#[cfg(feature = "postgres")]
pub mod postgres;
mod registry;
pub mod repair;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::model::{Candle, DataRecord, GraphSnapshot, PriceLevel, RecordKind, Trade};
pub use registry::ModelRecord;

use crate::workflow::{Status, Workflow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid collection name {0:?}: use 1-63 characters from [a-z0-9_], starting with a letter")]
    InvalidCollection(String),
    #[error("collection `{collection}` holds {existing} records; cannot write {requested} records into it")]
    KindMismatch { collection: String, existing: &'static str, requested: &'static str },
    #[error(
        "store url {0:?} is not supported: use sqlite://PATH (e.g. sqlite://./data/streamforge.db), sqlite::memory:, postgres://USER@HOST:PORT/DB or arangodb://USER:PASSWORD@HOST:8529/DB"
    )]
    UnsupportedUrl(String),
    #[error("store url {0:?} needs the `{1}` feature: build with `cargo build --release --features {1}`")]
    FeatureMissing(String, &'static str),
    #[error("the database at {url} is unreachable: {reason}")]
    Unavailable { url: String, reason: String },
    #[error("database error: {0}")]
    Database(String),
    #[error("cannot open the SQLite database at {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("cannot create the directory {path} for the database: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
    #[error("the store's worker thread stopped: {0}")]
    Worker(String),
    #[error("cannot use store.password_file {path}: {reason}")]
    PasswordFile { path: String, reason: String },
}

impl StoreError {
    /// Whether retrying the same call later can succeed (a busy or unreachable database) as
    /// opposed to a request that will always fail.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
            || matches!(self, StoreError::Worker(_) | StoreError::Unavailable { .. })
    }
}

/// Summary of one collection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CollectionInfo {
    pub name: String,
    pub kind: &'static str,
    pub rows: u64,
}

/// Which workflows [`Store::workflows`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowQuery {
    pub status: Option<Status>,
    pub limit: u32,
    pub offset: u64,
}

/// A page of workflows and how many match in all.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct WorkflowPage {
    pub total: u64,
    pub workflows: Vec<Workflow>,
}

/// A span of a symbol's sequence (open times of candles, ids of trades), both ends included,
/// that the exchange confirmed it has no records for: a repair asked for it and got none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ConfirmedGap {
    pub first_missing: i64,
    pub last_missing: i64,
}

/// A batch of records to write, shared so that a writer can retry it without copying it.
pub type Batch = Arc<Vec<DataRecord>>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes `records` into `collection` in one transaction: either all are visible or none.
    /// A record whose natural key is already stored replaces it (idempotent; within a batch the
    /// last one wins). Creates the collection on first use; a collection holds one record kind.
    async fn upsert(&self, collection: &str, records: Batch) -> Result<(), StoreError>;

    /// The latest stored position for `symbol` in `collection`: candle open time, trade id, or
    /// depth final update id. `None` when nothing is stored.
    async fn high_water_mark(&self, collection: &str, symbol: &str) -> Result<Option<i64>, StoreError>;

    /// Candles of `symbol` with `from <= open_time < to`, ascending.
    async fn candles(&self, collection: &str, symbol: &str, from: i64, to: i64) -> Result<Vec<Candle>, StoreError>;

    /// Trades (and aggregate trades) of `symbol` with `from <= time < to`, ascending by id.
    async fn trades(&self, collection: &str, symbol: &str, from: i64, to: i64) -> Result<Vec<Trade>, StoreError>;

    /// Every collection with its kind and row count.
    async fn collections(&self) -> Result<Vec<CollectionInfo>, StoreError>;

    /// Creates or replaces a workflow record.
    async fn put_workflow(&self, workflow: &Workflow) -> Result<(), StoreError>;

    async fn workflow(&self, id: &str) -> Result<Option<Workflow>, StoreError>;

    /// Workflows, newest first (by creation, then id), optionally of one status, one page.
    async fn workflows(&self, query: &WorkflowQuery) -> Result<WorkflowPage, StoreError>;

    /// Takes or renews `owner`'s lease on workflow `id` until `until` (epoch ms), atomically: it
    /// succeeds when nobody holds it, `owner` does, or the holder's lease ended before `now`.
    /// Returns whether `owner` holds it now (the one queue-manager that acts on the workflow).
    async fn claim_workflow(&self, id: &str, owner: &str, now: i64, until: i64) -> Result<bool, StoreError>;

    /// Writes a graph snapshot (vertices and edges) in one transaction, replacing the one with
    /// the same name and time.
    async fn put_graph(&self, graph: &GraphSnapshot) -> Result<(), StoreError>;

    /// The snapshot of graph `name` at `time`.
    async fn graph(&self, name: &str, time: i64) -> Result<Option<GraphSnapshot>, StoreError>;

    /// Registers a trained model, replacing the record with the same name and version.
    async fn put_model(&self, model: &ModelRecord) -> Result<(), StoreError>;

    /// A model of family `name`: `version`, or the newest when `None`.
    async fn model(&self, name: &str, version: Option<i64>) -> Result<Option<ModelRecord>, StoreError>;

    /// Records spans of `symbol`'s sequence in `collection` the exchange has no records for
    /// (kept once each, however often recorded).
    async fn put_confirmed_gaps(&self, collection: &str, symbol: &str, gaps: &[ConfirmedGap])
        -> Result<(), StoreError>;

    /// The confirmed gaps of `symbol` in `collection`, in order.
    async fn confirmed_gaps(&self, collection: &str, symbol: &str) -> Result<Vec<ConfirmedGap>, StoreError>;
}

/// Opens the store of `[store]`: its `url`, with the password of `password_file` (a mounted
/// secret) put into the URL's user part when one is given.
pub async fn open_configured(cfg: &crate::config::StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    match &cfg.password_file {
        None => open(&cfg.url).await,
        Some(path) => open(&with_password(&cfg.url, path)?).await,
    }
}

/// `url` with the password read from the file at `path` (a trailing newline dropped).
fn with_password(url: &str, path: &str) -> Result<String, StoreError> {
    let bad = |reason: String| StoreError::PasswordFile { path: path.to_owned(), reason };
    let password = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let mut parsed = reqwest::Url::parse(url).map_err(|_| bad("store.url is not a URL with a host".into()))?;
    if parsed.scheme() == "sqlite" || parsed.username().is_empty() {
        return Err(bad("store.url names no database user (postgres://USER@HOST/DB)".into()));
    }
    parsed
        .set_password(Some(password.trim_end_matches(['\n', '\r'])))
        .map_err(|_| bad("store.url has no host".into()))?;
    Ok(parsed.into())
}

/// Opens the store named by a URL: `sqlite://PATH`, `sqlite::memory:`, `postgres://…` (also
/// `postgresql://…`; `?sslmode=require` for TLS) or `arangodb://…` (`arangodbs://` for HTTPS).
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url == "sqlite::memory:" {
        return Ok(Arc::new(sqlite::SqliteStore::open_in_memory()?));
    }
    match url.split_once("://") {
        Some(("sqlite", path)) if !path.is_empty() => {
            let path = path.to_owned();
            let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&path))
                .await
                .map_err(|e| StoreError::Worker(e.to_string()))??;
            Ok(Arc::new(store))
        }
        Some(("arangodb" | "arangodbs", _)) => Ok(Arc::new(arango::ArangoStore::connect(url).await?)),
        #[cfg(feature = "postgres")]
        Some(("postgres" | "postgresql", _)) => Ok(Arc::new(postgres::PostgresStore::connect(url).await?)),
        #[cfg(not(feature = "postgres"))]
        Some(("postgres" | "postgresql", _)) => Err(StoreError::FeatureMissing(url.to_owned(), "postgres")),
        _ => Err(StoreError::UnsupportedUrl(url.to_owned())),
    }
}

/// The one kind of record a batch holds; a batch mixing kinds is refused whole.
pub fn batch_kind(collection: &str, records: &[DataRecord]) -> Result<Option<RecordKind>, StoreError> {
    let Some(first) = records.first() else {
        return Ok(None);
    };
    let kind = first.kind();
    match records.iter().find(|r| r.kind() != kind) {
        Some(other) => Err(StoreError::KindMismatch {
            collection: collection.to_owned(),
            existing: kind.as_str(),
            requested: other.kind().as_str(),
        }),
        None => Ok(Some(kind)),
    }
}

/// Collection names become table names: keep them to a safe alphabet.
pub fn validate_collection(name: &str) -> Result<(), StoreError> {
    let ok = (1..=63).contains(&name.len())
        && name.as_bytes()[0].is_ascii_lowercase()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidCollection(name.to_owned()))
    }
}

/// The seeds' collection naming, after the day of `start_ms`: `btcusdt_api_candles_5m_2024_08_01`.
pub fn collection_name(symbol: &str, kind: &str, start_ms: i64) -> String {
    let day: String =
        crate::model::format_ms(start_ms).chars().take(10).map(|c| if c == '-' { '_' } else { c }).collect();
    format!("{}_{kind}_{day}", symbol.to_ascii_lowercase())
}

/// What this node knows of the collections' kinds (networked stores: another node may have
/// created a collection this one has not seen, so a miss is asked of the database).
#[derive(Debug, Default)]
pub(crate) struct KnownKinds(std::sync::Mutex<std::collections::HashMap<String, RecordKind>>);

impl KnownKinds {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, RecordKind>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, collection: &str) -> Option<RecordKind> {
        self.map().get(collection).copied()
    }

    pub(crate) fn insert(&self, collection: &str, kind: RecordKind) {
        self.map().insert(collection.to_owned(), kind);
    }

    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }
}

/// Whether a collection of kind `existing` (`None`: not created yet) can be read or written as
/// `kind`: `Ok(false)` when it does not exist, an error when it holds another kind.
pub(crate) fn check_kind(collection: &str, existing: Option<RecordKind>, kind: RecordKind) -> Result<bool, StoreError> {
    match existing {
        None => Ok(false),
        Some(k) if k == kind => Ok(true),
        Some(other) => Err(StoreError::KindMismatch {
            collection: collection.to_owned(),
            existing: other.as_str(),
            requested: kind.as_str(),
        }),
    }
}

pub(crate) fn parse_kind(s: &str) -> Result<RecordKind, StoreError> {
    [RecordKind::Candle, RecordKind::Trade, RecordKind::DepthUpdate, RecordKind::BookSnapshot]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown collection kind {s:?}")))
}

/// Price levels as stored: `[["price","qty"], …]` with Binance's decimal strings.
pub(crate) fn levels_json(levels: &[PriceLevel]) -> String {
    crate::model::Levels(levels).to_json()
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}
