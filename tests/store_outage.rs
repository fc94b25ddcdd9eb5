//! PostgreSQL becomes unreachable while a connector writes into it (a loopback relay in front of
//! the real server is cut: live connections closed, new ones refused). The connector must keep
//! its offsets uncommitted and retry with pauses — the bus holds the records — and once the
//! database is back, write every record exactly once. Errors name the database and the reason.
#![cfg(feature = "postgres")]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::proxy::TcpProxy;
use common::{sample_dir, test_config, wait_until};
use streamforge::actors::connector::ConnectorRoute;
use streamforge::app::NodeContext;
use streamforge::bus::OutRecord;
use streamforge::model::{DataRecord, Interval};
use streamforge::replay::ReplayData;
use streamforge::store::{self, StoreError};

fn server_addr(url: &str) -> SocketAddr {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        other => panic!("a TCP host is needed, not {other:?}"),
    };
    format!("{host}:{}", config.get_ports().first().copied().unwrap_or(5432)).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_down_nothing_is_committed_and_afterwards_everything_is_written_once() {
    let Some(server) = common::postgres_url() else { return };
    let proxy = TcpProxy::start(server_addr(&server)).await;
    let database = common::fresh_postgres_database(&server).await;
    let direct = common::with_database(&server, &database);
    let user = server.parse::<tokio_postgres::Config>().unwrap().get_user().unwrap_or("postgres").to_owned();
    let url = format!("postgres://{user}@{}/{database}", proxy.addr);

    let mut config = test_config(&url);
    config.connector.batch_size = 500;
    let ctx = NodeContext::open(config).await.unwrap();
    let topic = "outage-candles";
    ctx.bus.ensure_topic(topic, 3).await.unwrap();
    let data = ReplayData::load(&sample_dir()).unwrap();
    let interval: Interval = "1m".parse().unwrap();
    let candles: Vec<_> = data.candles("BTCUSDT", interval);
    let records: Vec<OutRecord> =
        candles.iter().map(|c| OutRecord::keyed(b"BTCUSDT", DataRecord::Candle(c.clone()).to_bytes())).collect();
    ctx.bus.publish(topic, records).await.unwrap();

    // Down before the connector starts: its first write already fails.
    proxy.cut();
    let down_since = std::time::Instant::now();
    let direct_err = ctx.store.upsert("probe", vec![DataRecord::Candle(candles[0].clone())].into()).await.unwrap_err();
    assert!(matches!(direct_err, StoreError::Unavailable { .. }), "{direct_err:?}");
    assert!(direct_err.is_transient());
    let text = direct_err.to_string();
    assert!(text.contains("unreachable") && text.contains(&proxy.addr.to_string()), "a clear error: {text}");

    let route = ConnectorRoute {
        queue_id: "outage".into(),
        topic: topic.into(),
        group: "connector-outage".into(),
        collection: "btcusdt_outage".into(),
    };
    let drain = {
        let ctx = ctx.clone();
        tokio::spawn(async move { common::drain_with_connector(&ctx, route, Duration::from_secs(120)).await })
    };
    let failed = || ctx.metrics.errors.with_label_values(&["connector", "store_unavailable"]).get();
    wait_until("three failed attempts to write", Duration::from_secs(30), || async { (failed() >= 3).then_some(()) })
        .await;
    let lag: u64 = ctx.bus.lag("connector-outage", topic).await.unwrap().iter().map(|p| p.lag()).sum();
    assert_eq!(lag, candles.len() as u64, "nothing is committed while the database is down");
    assert!(!drain.is_finished(), "the connector waits, it does not give up");
    // Down for 20 s in all, as an operator's restart of the database would be.
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(down_since.elapsed())).await;
    let lag: u64 = ctx.bus.lag("connector-outage", topic).await.unwrap().iter().map(|p| p.lag()).sum();
    assert_eq!(lag, candles.len() as u64, "still nothing committed after 20 s down");
    let attempts = failed();

    proxy.restore();
    let (shared, _tree) = drain.await.unwrap();
    assert_eq!(shared.written.load(std::sync::atomic::Ordering::Acquire), candles.len() as u64);
    let lag: u64 = ctx.bus.lag("connector-outage", topic).await.unwrap().iter().map(|p| p.lag()).sum();
    assert_eq!(lag, 0, "everything committed once written");

    // Read back without the relay: every candle exactly once, exactly as recorded.
    let store = store::open(&direct).await.unwrap();
    let stored = store.candles("btcusdt_outage", "BTCUSDT", i64::MIN, i64::MAX).await.unwrap();
    assert_eq!(stored, candles);
    assert_eq!(store.collections().await.unwrap().iter().map(|c| c.rows).sum::<u64>(), candles.len() as u64);
    eprintln!(
        "chaos verdict: PostgreSQL unreachable for 20 s ({attempts} failed writes, offsets held back); {} of {} candles \
         stored once after it came back, 0 lost, 0 duplicated",
        stored.len(),
        candles.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_at_start_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener); // nothing listens there now
    let err = match store::open(&format!("postgres://postgres@{addr}/streamforge")).await {
        Err(e) => e,
        Ok(_) => panic!("connected to nothing"),
    };
    let text = err.to_string();
    assert!(text.contains("unreachable") && text.contains(&addr.to_string()), "{text}");
    let err = match store::open("postgres://postgres@127.0.0.1:5432/db?sslmode=sometimes").await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a bad URL was accepted"),
    };
    assert!(err.contains("invalid PostgreSQL url"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_insists_on_tls() {
    let Some(server) = common::postgres_url() else { return };
    // The test server has no TLS: with sslmode=require the store must refuse to go on in clear.
    let url = format!("{server}{}sslmode=require", if server.contains('?') { "&" } else { "?" });
    let err = match store::open(&url).await {
        Err(e) => e.to_string(),
        Ok(_) => return eprintln!("the test server speaks TLS; nothing to check"),
    };
    assert!(err.to_lowercase().contains("tls") || err.to_lowercase().contains("ssl"), "{err}");
}

/// `store.password_file` from a TOML file, through the binary: a `run` whose `[store]` names a
/// PostgreSQL user in its URL and the password in a file (a mounted secret, as the pods of
/// deploy/ read it) logs in to a server that asks for the password and stores the candles; a
/// wrong password fails the run at once, saying why, and the password is never printed. The
/// server is a private one with scram-sha-256 (the shared one trusts everyone).
#[test]
fn the_database_password_is_read_from_the_file_the_config_names() {
    let Some(pg) = common::PasswordPostgres::start("s3cret-of-the-database") else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = |password: &str| {
        std::fs::write(dir.path().join("password"), format!("{password}\n")).unwrap();
        let config = dir.path().join("node.toml");
        std::fs::write(
            &config,
            format!(
                "[store]\nurl = \"postgres://postgres@127.0.0.1:{}/postgres\"\npassword_file = \"{}\"\n",
                pg.port,
                dir.path().join("password").display()
            ),
        )
        .unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_streamforge"))
            .args(["run", "--offline", "--symbols", "BTCUSDT", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let wrong = run("not-the-password");
    let said = format!("{}{}", String::from_utf8_lossy(&wrong.stdout), String::from_utf8_lossy(&wrong.stderr));
    assert!(!wrong.status.success(), "a wrong password is refused:\n{said}");
    assert!(said.contains("password authentication failed"), "the error says why:\n{said}");
    assert!(!said.contains("not-the-password"), "the password is never printed:\n{said}");

    let right = run("s3cret-of-the-database");
    let said = format!("{}{}", String::from_utf8_lossy(&right.stdout), String::from_utf8_lossy(&right.stderr));
    assert!(right.status.success(), "{said}");
    assert!(!said.contains("s3cret-of-the-database"), "the password is never printed:\n{said}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("postgres://postgres:s3cret-of-the-database@127.0.0.1:{}/postgres", pg.port);
        let store = store::open(&url).await.unwrap();
        let stored: u64 =
            store.collections().await.unwrap().iter().filter(|c| c.name.starts_with("btcusdt_")).map(|c| c.rows).sum();
        let recorded = common::recorded_candles("BTC_USDT-1m.json.gz").len() as u64;
        assert_eq!(stored, recorded, "every recorded candle stored through the password from the file");
    });
}
