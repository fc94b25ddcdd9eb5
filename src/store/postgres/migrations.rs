//! The catalog schema, as numbered migrations applied at start: each runs once, under an advisory
//! lock, so nodes starting together do not race; applied versions are kept in
//! `sf_schema_migrations`. Never edit a released migration: add the next one.
//! (Collection tables are created on first write from [`super::tables`], not here.)

use tokio_postgres::Client;

use super::StoreError;

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "catalog and workflows",
        sql: "
CREATE TABLE sf_collections (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE sf_workflows (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    body JSONB NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX sf_workflows_status ON sf_workflows (status, updated_at);
",
    },
    Migration {
        version: 2,
        name: "graphs and the model registry",
        sql: "
CREATE TABLE sf_graphs (
    name TEXT NOT NULL,
    time BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    window_end BIGINT NOT NULL,
    feature_names JSONB NOT NULL,
    PRIMARY KEY (name, time)
);
CREATE TABLE sf_graph_vertices (
    graph TEXT NOT NULL,
    time BIGINT NOT NULL,
    symbol TEXT NOT NULL,
    features JSONB NOT NULL,
    PRIMARY KEY (graph, time, symbol),
    FOREIGN KEY (graph, time) REFERENCES sf_graphs (name, time) ON DELETE CASCADE
);
CREATE TABLE sf_graph_edges (
    graph TEXT NOT NULL,
    time BIGINT NOT NULL,
    from_symbol TEXT NOT NULL,
    to_symbol TEXT NOT NULL,
    weight DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (graph, time, from_symbol, to_symbol),
    FOREIGN KEY (graph, time) REFERENCES sf_graphs (name, time) ON DELETE CASCADE
);
CREATE TABLE sf_models (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    uri TEXT NOT NULL,
    metrics JSONB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
",
    },
    Migration {
        version: 3,
        name: "workflow leases",
        sql: "
CREATE TABLE sf_workflow_leases (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until BIGINT NOT NULL
);
",
    },
    Migration {
        version: 4,
        name: "confirmed gaps",
        sql: "
CREATE TABLE sf_confirmed_gaps (
    collection TEXT NOT NULL,
    symbol TEXT NOT NULL,
    first_missing BIGINT NOT NULL,
    last_missing BIGINT NOT NULL,
    PRIMARY KEY (collection, symbol, first_missing, last_missing)
);
",
    },
];

/// An arbitrary constant naming the lock every node takes to migrate.
const MIGRATION_LOCK: i64 = 0x5354_5246_4f52_4745; // "STRFORGE"

/// Applies the migrations this database has not seen, in order, in one transaction under an
/// advisory lock (concurrent starters wait, then find nothing left to do); returns how many ran.
pub async fn migrate(client: &mut Client) -> Result<usize, StoreError> {
    let tx = client.transaction().await.map_err(super::db_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(super::db_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS sf_schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(super::db_error)?;
    let done: Vec<i32> = tx
        .query("SELECT version FROM sf_schema_migrations", &[])
        .await
        .map_err(super::db_error)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut applied = 0;
    for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        tx.batch_execute(m.sql).await.map_err(|e| {
            StoreError::Database(format!("migration {} ({}) failed: {}", m.version, m.name, super::describe(&e)))
        })?;
        tx.execute("INSERT INTO sf_schema_migrations (version, name) VALUES ($1, $2)", &[&m.version, &m.name])
            .await
            .map_err(super::db_error)?;
        tracing::info!(version = m.version, name = m.name, "Applied a schema migration.");
        applied += 1;
    }
    tx.commit().await.map_err(super::db_error)?;
    Ok(applied)
}
