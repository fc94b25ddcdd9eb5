//! One conformance suite every store backend passes, on real recorded data: idempotent upserts,
//! mixed new/existing keys, high-water marks per record kind, workflow and model-registry round
//! trips, graph write/read, concurrent writers on different partitions, and a batch that fails in
//! the database leaving nothing behind.
//!
//! Backends: SQLite always; PostgreSQL (feature `postgres`) against the server named by
//! `STREAMFORGE_TEST_POSTGRES_URL` — `.ci/run` starts one on loopback and sets it, together with
//! `STREAMFORGE_REQUIRE_ALL=1`, which turns a missing URL into a failure instead of a
//! reported skip. ArangoDB runs when `ARANGO_URL` names a server
//! (`arangodb://USER:PASSWORD@HOST:8529/DB`, a database the suite may create and fill) and is
//! otherwise skipped with a printed notice: no ArangoDB server can run on the CI machines, and none
//! is faked.

mod common;

use std::sync::Arc;

use streamforge::model::{BookSnapshot, Candle, DataRecord, DepthUpdate, Edge, GraphSnapshot, Interval, Trade, Vertex};
use streamforge::replay::ReplayData;
use streamforge::store::{ModelRecord, Store, StoreError, WorkflowPage, WorkflowQuery};
use streamforge::workflow::{Status, Step, Task, Workflow, WorkflowRequest};

/// A collection (table) name no other test or earlier run against the same database uses.
fn collection(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// The real recorded 1m candles of `symbol` (BTCUSDT, ETHUSDT, SOLUSDT), via the sample's loader.
fn recorded_candles(symbol: &str) -> Vec<Candle> {
    let data = ReplayData::load(&common::sample_dir()).unwrap();
    let interval: Interval = "1m".parse().unwrap();
    data.candles(symbol, interval)
}

fn candle_records(symbol: &str) -> Vec<DataRecord> {
    recorded_candles(symbol).into_iter().map(DataRecord::Candle).collect()
}

/// Real Binance REST responses kept as fixtures.
fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rest").join(name)).unwrap()
}

fn agg_trades() -> Vec<DataRecord> {
    Trade::from_rest_agg_trades("BTCUSDT", &fixture("http_spot_market_agg_trades.json"))
        .unwrap()
        .into_iter()
        .map(DataRecord::Trade)
        .collect()
}

fn snapshot() -> BookSnapshot {
    BookSnapshot::from_rest("BTCUSDT", &fixture("http_spot_market_depth.json")).unwrap()
}

/// How a backend is opened, and how a test reaches around the store into its database.
#[async_trait::async_trait]
trait Backend: Send + Sync {
    async fn open(&self) -> Arc<dyn Store>;
    /// Creates a table named `name` with an incompatible layout directly in the database, so
    /// that creating the collection `name` fails midway through a batch.
    async fn sabotage(&self, name: &str);
}

struct Sqlite(tempfile::TempDir);

impl Sqlite {
    fn url(&self) -> String {
        format!("sqlite://{}", self.0.path().join("conformance.db").display())
    }
}

#[async_trait::async_trait]
impl Backend for Sqlite {
    async fn open(&self) -> Arc<dyn Store> {
        streamforge::store::open(&self.url()).await.unwrap()
    }

    async fn sabotage(&self, name: &str) {
        let conn = rusqlite::Connection::open(self.0.path().join("conformance.db")).unwrap();
        conn.execute_batch(&format!("CREATE TABLE {name} (unrelated INTEGER)")).unwrap();
    }
}

#[cfg(feature = "postgres")]
struct Postgres(String);

#[cfg(feature = "postgres")]
#[async_trait::async_trait]
impl Backend for Postgres {
    async fn open(&self) -> Arc<dyn Store> {
        streamforge::store::open(&self.0).await.unwrap()
    }

    async fn sabotage(&self, name: &str) {
        let (client, conn) = tokio_postgres::connect(&self.0, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client.batch_execute(&format!("CREATE TABLE {name} (unrelated INTEGER)")).await.unwrap();
    }
}

struct Arango(String);

#[async_trait::async_trait]
impl Backend for Arango {
    async fn open(&self) -> Arc<dyn Store> {
        streamforge::store::open(&self.0).await.unwrap()
    }

    /// An edge collection of that name: documents without `_from`/`_to` cannot go in.
    async fn sabotage(&self, name: &str) {
        let rest = self.0.split_once("://").unwrap().1;
        let (auth, location) = rest.rsplit_once('@').unwrap();
        let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
        let (host, db) = location.split_once('/').unwrap();
        let scheme = if self.0.starts_with("arangodbs") { "https" } else { "http" };
        let resp = reqwest::Client::new()
            .post(format!("{scheme}://{host}/_db/{db}/_api/collection"))
            .basic_auth(user, Some(password))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "name": name, "type": 3 }).to_string())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "creating the edge collection: {}", resp.status());
    }
}

async fn same_batch_twice_gives_the_same_rows(b: &dyn Backend) {
    let store = b.open().await;
    let name = collection("idem");
    let batch = candle_records("BTCUSDT");
    store.upsert(&name, batch.clone().into()).await.unwrap();
    let once = store.candles(&name, "BTCUSDT", i64::MIN, i64::MAX).await.unwrap();
    store.upsert(&name, batch.clone().into()).await.unwrap();
    let twice = store.candles(&name, "BTCUSDT", i64::MIN, i64::MAX).await.unwrap();
    assert_eq!(once.len(), batch.len());
    assert_eq!(once, twice, "writing the same batch again changes nothing");
    let want: Vec<Candle> = recorded_candles("BTCUSDT");
    assert_eq!(twice, want, "every field round-trips exactly, decimals with their scale");
    let info = store.collections().await.unwrap().into_iter().find(|c| c.name == name).unwrap();
    assert_eq!((info.kind, info.rows), ("candle", batch.len() as u64));
}

async fn a_batch_of_new_and_existing_keys_updates_and_inserts(b: &dyn Backend) {
    let store = b.open().await;
    let name = collection("mixed");
    let all = recorded_candles("ETHUSDT");
    let first: Vec<DataRecord> = all[..600].iter().cloned().map(DataRecord::Candle).collect();
    store.upsert(&name, first.into()).await.unwrap();
    // The second batch overlaps the first by 300 candles, each revised, and repeats one key
    // within itself: the last occurrence wins.
    let mut revised: Vec<Candle> = all[300..900].to_vec();
    for c in &mut revised[..300] {
        c.close += rust_decimal::Decimal::new(1, 2);
    }
    let mut second: Vec<DataRecord> = revised.iter().cloned().map(DataRecord::Candle).collect();
    let mut again = revised[0].clone();
    again.volume = rust_decimal::Decimal::new(4242, 1);
    second.push(DataRecord::Candle(again.clone()));
    store.upsert(&name, second.into()).await.unwrap();
    let stored = store.candles(&name, "ETHUSDT", i64::MIN, i64::MAX).await.unwrap();
    assert_eq!(stored.len(), 900);
    assert_eq!(stored[..300], all[..300], "rows the second batch did not touch stay");
    assert_eq!(stored[300], again, "the last occurrence of a key in a batch wins");
    assert_eq!(stored[301..900], revised[1..], "existing keys are updated, new ones inserted");
}

async fn high_water_marks_follow_each_record_kind(b: &dyn Backend) {
    let store = b.open().await;
    let (candles, trades, depth, snaps) =
        (collection("hwm_c"), collection("hwm_t"), collection("hwm_d"), collection("hwm_s"));
    assert_eq!(store.high_water_mark(&candles, "SOLUSDT").await.unwrap(), None, "no collection yet");
    let sol = recorded_candles("SOLUSDT");
    store.upsert(&candles, sol.iter().cloned().map(DataRecord::Candle).collect::<Vec<_>>().into()).await.unwrap();
    store.upsert(&candles, candle_records("BTCUSDT")[..10].to_vec().into()).await.unwrap();
    assert_eq!(store.high_water_mark(&candles, "SOLUSDT").await.unwrap(), sol.iter().map(|c| c.open_time).max());
    assert_eq!(store.high_water_mark(&candles, "ETHUSDT").await.unwrap(), None, "per symbol");

    let t = agg_trades();
    store.upsert(&trades, t.clone().into()).await.unwrap();
    let max_id = t.iter().map(|r| if let DataRecord::Trade(t) = r { t.id } else { 0 }).max();
    assert_eq!(store.high_water_mark(&trades, "BTCUSDT").await.unwrap(), max_id);

    let raw = r#"{"e":"depthUpdate","E":1723161255308,"s":"ETHUSDT","U":35346513499,"u":35346513505,"b":[["2683.80000000","3.02920000"]],"a":[["2733.70000000","0.00000000"]]}"#;
    let d = DepthUpdate::from_ws(raw.as_bytes()).unwrap();
    store.upsert(&depth, vec![DataRecord::DepthUpdate(d)].into()).await.unwrap();
    assert_eq!(store.high_water_mark(&depth, "ETHUSDT").await.unwrap(), Some(35_346_513_505));

    store.upsert(&snaps, vec![DataRecord::BookSnapshot(snapshot())].into()).await.unwrap();
    assert_eq!(store.high_water_mark(&snaps, "BTCUSDT").await.unwrap(), Some(snapshot().last_update_id));
}

async fn trades_round_trip(b: &dyn Backend) {
    let store = b.open().await;
    let name = collection("trades");
    let batch = agg_trades();
    store.upsert(&name, batch.clone().into()).await.unwrap();
    let stored = store.trades(&name, "BTCUSDT", i64::MIN, i64::MAX).await.unwrap();
    let want: Vec<Trade> =
        batch.into_iter().map(|r| if let DataRecord::Trade(t) = r { t } else { unreachable!() }).collect();
    assert_eq!(stored, want);
}

async fn workflows_round_trip(b: &dyn Backend) {
    let store = b.open().await;
    let id = collection("wf");
    assert_eq!(store.workflow(&id).await.unwrap(), None);
    let request: WorkflowRequest = serde_json::from_value(serde_json::json!({
        "symbols": ["BTCUSDT"], "types": ["api_candles_5m"], "time_range": "2024-08-01:2024-08-02",
    }))
    .unwrap();
    let mut wf = Workflow::new(id.clone(), request.validate(None, false).unwrap(), 1_722_470_400_000);
    wf.start_step(Step::Load, vec![Task::new("loader-api-candles-5m__btcusdt")], 1_722_470_400_001);
    store.put_workflow(&wf).await.unwrap();
    assert_eq!(store.workflow(&id).await.unwrap().as_ref(), Some(&wf));
    wf.steps[0].tasks[0].records_written = 288;
    wf.steps[0].tasks[0].status = Status::Finished;
    wf.settle(Step::Load, 1_722_470_460_000);
    store.put_workflow(&wf).await.unwrap();
    assert_eq!(store.workflow(&id).await.unwrap(), Some(wf), "the second write replaces the first");
}

/// Leases: one owner at a time; the owner renews; another takes over only once it has expired.
async fn workflow_leases_have_one_owner_at_a_time(b: &dyn Backend) {
    let store = b.open().await;
    let id = collection("lease");
    assert!(store.claim_workflow(&id, "node-a", 1_000, 2_000).await.unwrap(), "free: taken");
    assert!(!store.claim_workflow(&id, "node-b", 1_500, 2_500).await.unwrap(), "held: refused");
    assert!(store.claim_workflow(&id, "node-a", 1_900, 3_000).await.unwrap(), "the owner renews");
    assert!(!store.claim_workflow(&id, "node-b", 2_500, 3_500).await.unwrap(), "renewed: still refused");
    assert!(store.claim_workflow(&id, "node-b", 3_001, 4_000).await.unwrap(), "expired: taken over");
    assert!(!store.claim_workflow(&id, "node-a", 3_100, 4_100).await.unwrap(), "the old owner lost it");
    // Two claimants at once: exactly one wins.
    let other = collection("lease2");
    let (s1, s2) = (store.clone(), b.open().await);
    let (o1, o2) = (other.clone(), other.clone());
    let (a, c) = tokio::join!(
        tokio::spawn(async move { s1.claim_workflow(&o1, "node-a", 10, 20).await.unwrap() }),
        tokio::spawn(async move { s2.claim_workflow(&o2, "node-c", 10, 20).await.unwrap() }),
    );
    assert!(a.unwrap() ^ c.unwrap(), "exactly one of two concurrent claims wins");
}

/// Listing: newest first, filtered by status, paged, with the total that matches.
async fn workflows_are_listed_by_status_newest_first(b: &dyn Backend) {
    let store = b.open().await;
    let prefix = collection("wfl");
    let spec = serde_json::from_value::<WorkflowRequest>(serde_json::json!({
        "symbols": ["ETHUSDT"], "types": ["api_trades"], "time_range": "2024-08-01:2024-08-02", "steps": ["load"],
    }))
    .unwrap()
    .validate(None, false)
    .unwrap();
    // Creation times past any earlier run's (and any real workflow's) make these the newest in a
    // database other runs have used.
    let base = 4_000_000_000_000 + streamforge::model::now_ms() * 10;
    for i in 0..5i64 {
        let mut wf = Workflow::new(format!("{prefix}_{i}"), spec.clone(), base + i);
        if i % 2 == 1 {
            wf.stop("test", base + i);
        }
        store.put_workflow(&wf).await.unwrap();
    }
    let ids = |page: &WorkflowPage| page.workflows.iter().map(|w| w.id.clone()).collect::<Vec<_>>();
    let all = store.workflows(&WorkflowQuery { status: None, limit: 3, offset: 0 }).await.unwrap();
    assert_eq!(ids(&all), [4, 3, 2].map(|i| format!("{prefix}_{i}")));
    assert!(all.total >= 5);
    let stopped = store.workflows(&WorkflowQuery { status: Some(Status::Stopped), limit: 1, offset: 1 }).await.unwrap();
    assert_eq!(ids(&stopped), [format!("{prefix}_1")]);
    let pending =
        store.workflows(&WorkflowQuery { status: Some(Status::Pending), limit: 10, offset: 0 }).await.unwrap();
    assert_eq!(&ids(&pending)[..3], [4, 2, 0].map(|i| format!("{prefix}_{i}")));
    assert!(pending.workflows.iter().all(|w| w.status == Status::Pending));
}

async fn graphs_and_models_round_trip(b: &dyn Backend) {
    let store = b.open().await;
    let name = collection("corr_1m_w60");
    let vertex = |s: &str, f: [f64; 3]| Vertex { symbol: s.into(), features: f.to_vec() };
    let edge = |a: &str, b: &str, w: f64| Edge { from: a.into(), to: b.into(), weight: w };
    let mut g = GraphSnapshot {
        name: name.clone(),
        time: 1_619_308_800_000,
        window_start: 1_619_305_200_000,
        window_end: 1_619_308_860_000,
        feature_names: vec!["ret_1".into(), "vol_60".into(), "volume_z".into()],
        vertices: vec![
            vertex("BTCUSDT", [0.0012, 0.0031, -0.4]),
            vertex("ETHUSDT", [-0.0004, 0.0042, 1.25]),
            vertex("SOLUSDT", [0.0101, 0.0093, 2.5]),
        ],
        edges: vec![edge("BTCUSDT", "ETHUSDT", 0.83), edge("BTCUSDT", "SOLUSDT", -0.21)],
    };
    assert_eq!(store.graph(&name, g.time).await.unwrap(), None);
    store.put_graph(&g).await.unwrap();
    assert_eq!(store.graph(&name, g.time).await.unwrap().as_ref(), Some(&g));
    g.edges.truncate(1);
    g.vertices[0].features[2] = 0.1;
    store.put_graph(&g).await.unwrap();
    assert_eq!(store.graph(&name, g.time).await.unwrap(), Some(g.clone()), "rewriting a snapshot replaces it whole");
    assert_eq!(store.graph(&name, g.time + 60_000).await.unwrap(), None);

    let model = |version: i64| ModelRecord {
        name: name.clone(),
        version,
        uri: format!("file:///models/{name}/{version}.mpk"),
        metrics: serde_json::json!({"balanced_accuracy": 0.51 + version as f64 / 100.0, "seeds": 5}),
        created_at: 1_700_000_000_000 + version,
    };
    assert_eq!(store.model(&name, None).await.unwrap(), None);
    store.put_model(&model(1)).await.unwrap();
    store.put_model(&model(2)).await.unwrap();
    assert_eq!(store.model(&name, None).await.unwrap(), Some(model(2)), "the newest version");
    assert_eq!(store.model(&name, Some(1)).await.unwrap(), Some(model(1)));
    assert_eq!(store.model(&name, Some(3)).await.unwrap(), None);
}

/// The spans a repair found empty at the exchange: kept once each, in order, per collection and
/// symbol.
async fn confirmed_gaps_are_kept_once_per_collection_and_symbol(b: &dyn Backend) {
    use streamforge::store::ConfirmedGap;
    let store = b.open().await;
    let name = collection("candles_1m");
    let gap = |a: i64, z: i64| ConfirmedGap { first_missing: a, last_missing: z };
    assert!(store.confirmed_gaps(&name, "BTCUSDT").await.unwrap().is_empty());
    let outage = gap(1_619_323_260_000, 1_619_340_240_000);
    let maintenance = gap(1_618_884_000_000, 1_618_892_940_000);
    store.put_confirmed_gaps(&name, "BTCUSDT", &[outage, maintenance]).await.unwrap();
    store.put_confirmed_gaps(&name, "BTCUSDT", &[outage]).await.unwrap();
    assert_eq!(store.confirmed_gaps(&name, "BTCUSDT").await.unwrap(), vec![maintenance, outage]);
    assert!(store.confirmed_gaps(&name, "ETHUSDT").await.unwrap().is_empty());
    assert!(store.confirmed_gaps(&collection("other"), "BTCUSDT").await.unwrap().is_empty());
}

async fn concurrent_writers_on_different_partitions_all_land(b: &dyn Backend) {
    // Partition connectors of one collection write different symbols at the same time, the
    // collection new to all of them.
    let name = collection("concurrent");
    let mut tasks = Vec::new();
    for symbol in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
        let store = b.open().await;
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            for chunk in candle_records(symbol).chunks(500) {
                store.upsert(&name, chunk.to_vec().into()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let store = b.open().await;
    for symbol in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
        let stored = store.candles(&name, symbol, i64::MIN, i64::MAX).await.unwrap();
        assert_eq!(stored, recorded_candles(symbol), "{symbol}");
    }
}

async fn a_failed_batch_leaves_nothing_behind(b: &dyn Backend) {
    let store = b.open().await;
    // Refused before the database: two kinds in one batch.
    let name = collection("failed");
    let mut mixed = candle_records("BTCUSDT")[..5].to_vec();
    mixed.extend(agg_trades());
    assert!(matches!(store.upsert(&name, mixed.into()).await, Err(StoreError::KindMismatch { .. })));
    // Refused by the collection: it holds another kind.
    store.upsert(&name, candle_records("BTCUSDT")[..5].to_vec().into()).await.unwrap();
    let err = store.upsert(&name, agg_trades().into()).await.unwrap_err();
    assert!(err.to_string().contains("holds candle records"), "{err}");
    assert_eq!(store.trades(&name, "BTCUSDT", i64::MIN, i64::MAX).await.unwrap_err().to_string(), {
        StoreError::KindMismatch { collection: name.clone(), existing: "candle", requested: "trade" }.to_string()
    });
    // Failing inside the database, midway: the collection's table cannot be made.
    let broken = collection("broken");
    b.sabotage(&broken).await;
    let err = store.upsert(&broken, candle_records("ETHUSDT").into()).await.unwrap_err();
    assert!(!err.is_transient(), "a request that will always fail is not retried: {err}");
    let store = b.open().await; // a fresh view, nothing cached
    let names: Vec<String> = store.collections().await.unwrap().into_iter().map(|c| c.name).collect();
    assert!(!names.contains(&broken), "the failed batch registered nothing: {names:?}");
    assert!(names.contains(&name));
    assert_eq!(store.high_water_mark(&broken, "ETHUSDT").await.unwrap(), None);
    let kept = store.candles(&name, "BTCUSDT", i64::MIN, i64::MAX).await.unwrap();
    assert_eq!(kept.len(), 5, "earlier batches are untouched");
}

macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            conformance!(@tests $make;
                same_batch_twice_gives_the_same_rows,
                a_batch_of_new_and_existing_keys_updates_and_inserts,
                high_water_marks_follow_each_record_kind,
                trades_round_trip,
                workflows_round_trip,
                workflows_are_listed_by_status_newest_first,
                workflow_leases_have_one_owner_at_a_time,
                graphs_and_models_round_trip,
                confirmed_gaps_are_kept_once_per_collection_and_symbol,
                concurrent_writers_on_different_partitions_all_land,
                a_failed_batch_leaves_nothing_behind
            );
        }
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let make: fn() -> Option<Box<dyn Backend>> = $make;
                match make() {
                    Some(backend) => super::$name(backend.as_ref()).await,
                    None => return,
                }
            }
        )*
    };
}

conformance!(sqlite, || Some(Box::new(Sqlite(tempfile::tempdir().unwrap()))));

#[cfg(feature = "postgres")]
conformance!(postgres, || common::postgres_url().map(|url| Box::new(Postgres(url)) as Box<dyn Backend>));

conformance!(arangodb, || match std::env::var("ARANGO_URL") {
    Ok(url) => Some(Box::new(Arango(url)) as Box<dyn Backend>),
    Err(_) => {
        eprintln!("SKIPPED: ArangoDB conformance — set ARANGO_URL=arangodb://USER:PASSWORD@HOST:8529/DB to run it");
        None
    }
});
