//! The part of ArangoDB's HTTP API the store uses, over the reqwest client the node already has:
//! databases, collections, indexes, named graphs, AQL cursors and stream transactions.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::store::StoreError;

/// ArangoDB error numbers the store reacts to.
const ERROR_DUPLICATE_NAME: i64 = 1207;
const ERROR_WRITE_CONFLICT: i64 = 1200;
const ERROR_GRAPH_DUPLICATE: i64 = 1925;

#[derive(Clone)]
pub struct ArangoClient {
    http: reqwest::Client,
    /// `http://host:port`
    base: String,
    database: String,
    user: String,
    password: Option<String>,
    /// `host:port/db`, for messages.
    pub target: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "errorNum", default)]
    num: i64,
    #[serde(rename = "errorMessage", default)]
    message: String,
}

#[derive(Deserialize)]
struct CursorBody {
    #[serde(default)]
    result: Vec<Value>,
    #[serde(rename = "hasMore", default)]
    has_more: bool,
    #[serde(default)]
    id: Option<String>,
}

/// A failed call: the HTTP status and ArangoDB's error number and message.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub num: i64,
    pub message: String,
}

impl ArangoClient {
    /// From `arangodb://USER[:PASSWORD]@HOST:PORT/DB` (HTTP) or `arangodbs://…` (HTTPS).
    pub fn from_url(url: &str) -> Result<ArangoClient, StoreError> {
        let bad = |why: &str| StoreError::Database(format!("invalid ArangoDB url {url:?}: {why}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let http_scheme = match scheme {
            "arangodb" => "http",
            "arangodbs" => "https",
            _ => return Err(bad("use arangodb:// or arangodbs://")),
        };
        let (auth, location) = rest.rsplit_once('@').unwrap_or(("root", rest));
        let (user, password) = match auth.split_once(':') {
            Some((u, p)) => (u.to_owned(), Some(p.to_owned())),
            None => (auth.to_owned(), None),
        };
        let (host, database) = location.split_once('/').ok_or_else(|| bad("no database: …@HOST:PORT/DB"))?;
        if host.is_empty() || database.is_empty() || database.contains('/') {
            return Err(bad("expected …@HOST:PORT/DB"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(ArangoClient {
            http,
            base: format!("{http_scheme}://{host}"),
            database: database.to_owned(),
            user,
            password,
            target: format!("{host}/{database}"),
        })
    }

    fn unavailable(&self, reason: impl ToString) -> StoreError {
        StoreError::Unavailable { url: self.target.clone(), reason: reason.to_string() }
    }

    /// Turns a failed call into a store error: unreachable or overloaded servers and write
    /// conflicts are transient, the rest are failed requests.
    pub fn error(&self, e: ApiError) -> StoreError {
        if e.status == 503 || e.num == ERROR_WRITE_CONFLICT {
            self.unavailable(format!("{} [ArangoDB error {}]", e.message, e.num))
        } else {
            StoreError::Database(format!("{} [ArangoDB error {}, HTTP {}]", e.message, e.num, e.status))
        }
    }

    /// One request against `path` (below `/_db/<database>` unless it starts with `/_api/database`);
    /// `trx` runs it inside a stream transaction.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        trx: Option<&str>,
    ) -> Result<Result<Value, ApiError>, StoreError> {
        let url = if path.starts_with("/_api/database") {
            format!("{}/_db/_system{path}", self.base)
        } else {
            format!("{}/_db/{}{path}", self.base, self.database)
        };
        let mut req = self.http.request(method, &url).basic_auth(&self.user, self.password.as_deref());
        if let Some(b) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(b.to_string());
        }
        if let Some(id) = trx {
            req = req.header("x-arango-trx-id", id);
        }
        let resp = req.send().await.map_err(|e| self.unavailable(e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| self.unavailable(e))?;
        if (200..300).contains(&status) {
            let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Ok(Ok(value));
        }
        let body: ErrorBody = serde_json::from_slice(&bytes)
            .unwrap_or(ErrorBody { num: 0, message: String::from_utf8_lossy(&bytes).chars().take(300).collect() });
        Ok(Err(ApiError { status, num: body.num, message: body.message }))
    }

    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Result<Value, StoreError> {
        self.call(method, path, body, None).await?.map_err(|e| self.error(e))
    }

    /// Creates the database when it is missing.
    pub async fn ensure_database(&self) -> Result<(), StoreError> {
        match self.call(reqwest::Method::POST, "/_api/database", Some(&json!({ "name": self.database })), None).await? {
            Ok(_) => Ok(()),
            Err(e) if e.status == 409 || e.num == ERROR_DUPLICATE_NAME => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Creates a document (or, with `edge`, an edge) collection when it is missing, with a
    /// persistent index on `index` when given; returns whether the existing collection is an
    /// edge collection (`None` when it was just created).
    pub async fn ensure_collection(&self, name: &str, edge: bool, index: &[&str]) -> Result<Option<bool>, StoreError> {
        let body = json!({ "name": name, "type": if edge { 3 } else { 2 } });
        let existing = match self.call(reqwest::Method::POST, "/_api/collection", Some(&body), None).await? {
            Ok(_) => None,
            Err(e) if e.status == 409 || e.num == ERROR_DUPLICATE_NAME => {
                let info = self.ok(reqwest::Method::GET, &format!("/_api/collection/{name}"), None).await?;
                Some(info["type"].as_i64() == Some(3))
            }
            Err(e) => return Err(self.error(e)),
        };
        if !index.is_empty() {
            let body = json!({ "type": "persistent", "fields": index });
            self.ok(reqwest::Method::POST, &format!("/_api/index?collection={name}"), Some(&body)).await?;
        }
        Ok(existing)
    }

    /// Creates the named graph when it is missing.
    pub async fn ensure_graph(&self, name: &str, edges: &str, vertices: &str) -> Result<(), StoreError> {
        let body = json!({
            "name": name,
            "edgeDefinitions": [{ "collection": edges, "from": [vertices], "to": [vertices] }],
        });
        match self.call(reqwest::Method::POST, "/_api/gharial", Some(&body), None).await? {
            Ok(_) => Ok(()),
            Err(e) if e.status == 409 || e.num == ERROR_GRAPH_DUPLICATE => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Runs an AQL query (inside stream transaction `trx` when given) and returns every result,
    /// following the cursor.
    pub async fn query(&self, aql: &str, bind: Value, trx: Option<&str>) -> Result<Vec<Value>, StoreError> {
        let body = json!({ "query": aql, "bindVars": bind, "batchSize": 10_000 });
        let first = self.call(reqwest::Method::POST, "/_api/cursor", Some(&body), trx).await?;
        let mut page: CursorBody = serde_json::from_value(first.map_err(|e| self.error(e))?)
            .map_err(|e| StoreError::Corrupt(format!("cursor answer: {e}")))?;
        let mut out = std::mem::take(&mut page.result);
        while page.has_more {
            let id = page.id.clone().ok_or_else(|| StoreError::Corrupt("cursor without id".into()))?;
            let path = format!("/_api/cursor/{id}");
            // POST reads the next batch since ArangoDB 3.11; older servers know only PUT.
            let next = match self.call(reqwest::Method::POST, &path, None, trx).await? {
                Err(e) if e.status == 405 || e.status == 404 => {
                    self.call(reqwest::Method::PUT, &path, None, trx).await?
                }
                other => other,
            };
            page = serde_json::from_value(next.map_err(|e| self.error(e))?)
                .map_err(|e| StoreError::Corrupt(format!("cursor answer: {e}")))?;
            out.append(&mut page.result);
        }
        Ok(out)
    }

    /// Begins a stream transaction writing `collections`; returns its id.
    pub async fn begin(&self, collections: &[&str]) -> Result<String, StoreError> {
        let body = json!({ "collections": { "write": collections } });
        let answer = self.ok(reqwest::Method::POST, "/_api/transaction/begin", Some(&body)).await?;
        answer["result"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Corrupt("transaction without id".into()))
    }

    pub async fn commit(&self, trx: &str) -> Result<(), StoreError> {
        self.ok(reqwest::Method::PUT, &format!("/_api/transaction/{trx}"), None).await.map(drop)
    }

    /// Aborts a stream transaction; failures are ignored (the server drops idle ones itself).
    pub async fn abort(&self, trx: &str) {
        let _ = self.call(reqwest::Method::DELETE, &format!("/_api/transaction/{trx}"), None, None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_user_password_server_and_database() {
        let c = ArangoClient::from_url("arangodb://root:secret@127.0.0.1:8529/streamforge").unwrap();
        assert_eq!((c.base.as_str(), c.database.as_str()), ("http://127.0.0.1:8529", "streamforge"));
        assert_eq!((c.user.as_str(), c.password.as_deref()), ("root", Some("secret")));
        assert_eq!(c.target, "127.0.0.1:8529/streamforge", "no password in messages");
        let c = ArangoClient::from_url("arangodbs://reader@db.internal:8530/market").unwrap();
        assert_eq!((c.base.as_str(), c.password), ("https://db.internal:8530", None));
        for bad in ["arangodb://root@127.0.0.1:8529", "http://root@h:1/db", "arangodb://root@h:1/a/b"] {
            let err = ArangoClient::from_url(bad).err().unwrap().to_string();
            assert!(err.contains("invalid ArangoDB url"), "{bad}: {err}");
        }
    }
}
