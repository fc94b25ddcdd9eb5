//! The replay server speaks Binance's REST and WebSocket API over the bundled recording, with
//! Binance's paging rules, limits and error bodies, on a real loopback socket.

mod common;

use futures_util::StreamExt;
use serde_json::Value;
use streamforge::replay::ReplayServer;
use tokio_tungstenite::tungstenite::Message;

async fn server() -> ReplayServer {
    ReplayServer::start_dir(&common::sample_dir(), "127.0.0.1:0", 0.0, Default::default()).await.unwrap()
}

async fn get(server: &ReplayServer, path_and_query: &str) -> (u16, Option<String>, Value) {
    let resp = reqwest::get(format!("{}{path_and_query}", server.rest_url())).await.unwrap();
    let status = resp.status().as_u16();
    let weight = resp.headers().get("x-mbx-used-weight-1m").map(|v| v.to_str().unwrap().to_owned());
    let body = resp.bytes().await.unwrap();
    (status, weight, serde_json::from_slice(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn klines_page_like_binance_over_the_recording() {
    let s = server().await;
    let recorded = common::recorded_candles("ETH_USDT-1m.json.gz");
    let start = recorded[100].open_time;
    let (status, weight, page) =
        get(&s, &format!("/api/v3/klines?symbol=ETHUSDT&interval=1m&startTime={start}&limit=5")).await;
    assert_eq!(status, 200);
    assert!(weight.unwrap().parse::<u32>().unwrap() >= 2, "weight header is sent");
    let rows = page.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for (row, want) in rows.iter().zip(&recorded[100..105]) {
        let row = row.as_array().unwrap();
        assert_eq!(row.len(), 12, "Binance's 12-field row");
        assert_eq!(row[0].as_i64().unwrap(), want.open_time);
        assert_eq!(row[6].as_i64().unwrap(), want.open_time + 59_999);
        let open: streamforge::model::Decimal = row[1].as_str().unwrap().parse().unwrap();
        assert_eq!(open, want.ohlcv[0]);
        assert_eq!(row[1].as_str().unwrap().split('.').nth(1).map(str::len), Some(8), "8 decimals like Binance");
    }
    // endTime bounds the page; without startTime the latest rows up to endTime come back.
    let end = recorded[9].open_time;
    let (_, _, page) = get(&s, &format!("/api/v3/klines?symbol=ETHUSDT&interval=1m&endTime={end}&limit=3")).await;
    let opens: Vec<i64> = page.as_array().unwrap().iter().map(|r| r[0].as_i64().unwrap()).collect();
    assert_eq!(opens, recorded[7..10].iter().map(|c| c.open_time).collect::<Vec<_>>());
    // Default limit is 500.
    let (_, _, page) = get(&s, "/api/v3/klines?symbol=ETHUSDT&interval=1m&startTime=0").await;
    assert_eq!(page.as_array().unwrap().len(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_binance_error_bodies() {
    let s = server().await;
    for (query, code) in [
        ("/api/v3/klines?interval=1m", -1102),
        ("/api/v3/klines?symbol=NOPEUSDT&interval=1m", -1121),
        ("/api/v3/klines?symbol=ETHUSDT&interval=2m", -1120),
        ("/api/v3/klines?symbol=ETHUSDT&interval=5m", -1120),
        ("/api/v3/klines?symbol=ETHUSDT&interval=1m&limit=1001", -1130),
        ("/api/v3/klines?symbol=ETHUSDT&interval=1m&startTime=abc", -1100),
        ("/api/v3/klines?symbol=ETHUSDT&interval=1m&startTime=5&endTime=1", -1023),
        ("/api/v3/aggTrades?symbol=XRPETH&limit=0", -1130),
        ("/api/v3/depth?symbol=SOLUSDT", -1121), // klines only: no depth recorded
    ] {
        let (status, _, body) = get(&s, query).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["code"].as_i64(), Some(code), "{query}: {body}");
        assert!(!body["msg"].as_str().unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agg_trades_page_by_from_id_and_depth_serves_the_recorded_snapshot() {
    let s = server().await;
    let (_, _, first) = get(&s, "/api/v3/aggTrades?symbol=XRPETH&fromId=0&limit=3").await;
    let ids: Vec<i64> = first.as_array().unwrap().iter().map(|t| t["a"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![13_519_807, 13_519_808, 13_519_809]);
    assert_eq!(first[0]["p"], "0.00141342", "raw Binance fields as recorded");
    let (_, _, next) = get(&s, "/api/v3/aggTrades?symbol=XRPETH&fromId=13519809&limit=2").await;
    assert_eq!(next[0]["a"].as_i64(), Some(13_519_809));
    let (_, _, all) = get(&s, "/api/v3/aggTrades?symbol=XRPETH&fromId=0&limit=1000").await;
    let ids: Vec<i64> = all.as_array().unwrap().iter().map(|t| t["a"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "contiguous aggregate ids");

    let (status, _, depth) = get(&s, "/api/v3/depth?symbol=ETHUSDT&limit=5").await;
    assert_eq!(status, 200);
    assert_eq!(depth["lastUpdateId"].as_i64(), Some(35_346_513_512));
    assert_eq!(depth["bids"].as_array().unwrap().len(), 5);
    assert_eq!(depth["bids"][0][0], "2683.80000000");

    let (_, _, info) = get(&s, "/api/v3/exchangeInfo").await;
    let symbols: Vec<&str> =
        info["symbols"].as_array().unwrap().iter().map(|s| s["symbol"].as_str().unwrap()).collect();
    for sym in ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPETH"] {
        assert!(symbols.contains(&sym), "{symbols:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_streams_replay_the_capture_raw_and_combined() {
    let s = server().await;
    let url = format!("{}/stream?streams=ethusdt@trade/ethusdt@depth@100ms", s.ws_url());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut streams = std::collections::BTreeSet::new();
    let mut last_u = None;
    for _ in 0..200 {
        let Some(Ok(Message::Text(text))) = ws.next().await else { panic!("stream ended early") };
        let v: Value = serde_json::from_str(&text).unwrap();
        let stream = v["stream"].as_str().unwrap().to_owned();
        if stream == "ethusdt@depth@100ms" {
            let (first, last) = (v["data"]["U"].as_i64().unwrap(), v["data"]["u"].as_i64().unwrap());
            if let Some(prev) = last_u {
                assert_eq!(first, prev + 1, "recorded depth events chain without gaps");
            }
            last_u = Some(last);
        }
        streams.insert(stream);
    }
    assert_eq!(streams.into_iter().collect::<Vec<_>>(), vec!["ethusdt@depth@100ms", "ethusdt@trade"]);

    let (mut raw, _) = tokio_tungstenite::connect_async(format!("{}/ws/ethusdt@trade", s.ws_url())).await.unwrap();
    let Some(Ok(Message::Text(text))) = raw.next().await else { panic!("no message") };
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((v["e"].as_str(), v["s"].as_str()), (Some("trade"), Some("ETHUSDT")), "raw payload, no wrapper");
    streamforge::model::Trade::from_ws_trade(text.as_bytes()).unwrap();

    let resp = reqwest::get(format!("{}/ws/dogeusdt@trade", s.rest_url())).await.unwrap();
    assert_eq!(resp.status().as_u16(), 400, "unrecorded streams are refused with a reason");
}
