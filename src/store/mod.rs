//! Where records end up: the [`Store`] trait (idempotent batched upserts by natural key,
//! high-water marks for resuming, workflow records) and its embedded SQLite implementation.
//! Networked stores implement the same trait and are picked by `store.url` alone.

pub mod sqlite;
mod workflow;

use std::sync::Arc;

use async_trait::async_trait;

use crate::model::{Candle, DataRecord, Trade};
pub use workflow::Workflow;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid collection name {0:?}: use 1-63 characters from [a-z0-9_], starting with a letter")]
    InvalidCollection(String),
    #[error("collection `{collection}` holds {existing} records; cannot write {requested} records into it")]
    KindMismatch { collection: String, existing: &'static str, requested: &'static str },
    #[error(
        "store url {0:?} is not supported: use sqlite://PATH (e.g. sqlite://./data/streamforge.db) or sqlite::memory:"
    )]
    UnsupportedUrl(String),
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
}

impl StoreError {
    /// Whether retrying the same call later can succeed (a busy or unreachable database) as
    /// opposed to a request that will always fail.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
            || matches!(self, StoreError::Worker(_))
    }
}

/// Summary of one collection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CollectionInfo {
    pub name: String,
    pub kind: &'static str,
    pub rows: u64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes `records` into `collection` in one transaction: either all are visible or none.
    /// A record whose natural key is already stored replaces it (idempotent). Creates the
    /// collection on first use; a collection holds one record kind.
    async fn upsert(&self, collection: &str, records: Vec<DataRecord>) -> Result<(), StoreError>;

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
}

/// Opens the store named by a URL: `sqlite://PATH` or `sqlite::memory:`.
pub fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url == "sqlite::memory:" {
        return Ok(Arc::new(sqlite::SqliteStore::open_in_memory()?));
    }
    match url.split_once("://") {
        Some(("sqlite", path)) if !path.is_empty() => Ok(Arc::new(sqlite::SqliteStore::open(path)?)),
        _ => Err(StoreError::UnsupportedUrl(url.to_owned())),
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

/// The seeds' collection naming: `btcusdt_api_candles_5m_2024_08_01`.
pub fn collection_name(symbol: &str, kind: &str, start_date: &str) -> String {
    format!("{}_{}_{}", symbol.to_ascii_lowercase(), kind, start_date.replace('-', "_"))
}
