//! The live dashboard (`/ui`) through the doors a user has: a node started from a TOML file with
//! `[[streams]]` and `[[connectors]]`, the replay server streaming the bundled BTCUSDT/ETHUSDT
//! capture at its recorded pace, and the page in a real headless Chromium (see
//! `common::browser`). Set `STREAMFORGE_SCREENSHOT_DIR` to keep the screenshots the docs show.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use streamforge::app::node::Node;
use streamforge::config::{self, Config};
use streamforge::model::DataRecord;
use streamforge::replay::{ReplayFaults, ReplayServer};

use common::browser::{chromium, Browser};

/// The config file a user writes for a BTC + ETH monitor, pointed at `replay`.
fn monitor_file(dir: &Path, admin: &str, replay: &ReplayServer, extra: &str) -> Config {
    let text = format!(
        r#"
[node]
admin_addr = "{admin}"
[store]
url = "sqlite://{db}"
[binance]
rest_url = "{rest}"
ws_url = "{ws}"
[connector]
flush_interval_ms = 50
{extra}
[[streams]]
kind = "trade"
symbols = ["BTCUSDT", "ETHUSDT"]
topic = "live-trades"

[[streams]]
kind = "depth"
symbols = ["BTCUSDT", "ETHUSDT"]
topic = "live-depth"
snapshot_ms = 100

[[connectors]]
topic = "live-trades"
collection = "live_trades"
"#,
        db = dir.join("sf.db").display(),
        rest = replay.rest_url(),
        ws = replay.ws_url(),
    );
    let path = dir.join("monitor.toml");
    std::fs::write(&path, text).unwrap();
    config::load(Some(&path), Vec::new()).unwrap()
}

/// The replay server over the bundled capture, its streams at `speed` times the recorded pace.
async fn capture_replay(speed: f64) -> ReplayServer {
    ReplayServer::start_dir(&common::sample_dir(), "127.0.0.1:0", speed, ReplayFaults::default()).await.unwrap()
}

/// The prices of `symbol`'s trades in the capture, read straight from the files.
fn recorded_prices(symbol: &str) -> BTreeSet<String> {
    let dir = common::sample_dir().join("ws/hftbacktest_raw_binance/spot");
    let stream = format!("{}@trade", symbol.to_ascii_lowercase());
    let mut prices = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        for line in common::read_gz(&entry.unwrap().path()).lines() {
            let v: Value = serde_json::from_str(line.split_once(' ').unwrap().1).unwrap();
            if v["stream"] == stream {
                prices.insert(v["data"]["p"].as_str().unwrap().to_owned());
            }
        }
    }
    prices
}

/// The best bid and ask of every `symbol` book snapshot the node publishes on `topic` from now on,
/// by update id. A group of the test's own reads them and commits as it goes, as any reader of the
/// in-process bus must: it drops what every group has committed, so a group that joins later
/// would not see them.
struct BookWatch {
    books: Arc<std::sync::Mutex<HashMap<i64, (String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl BookWatch {
    async fn start(node: &Node, topic: &str, symbol: &'static str) -> BookWatch {
        let mut consumer = node.ctx.bus.subscribe("dashboard-test-check", topic).await.unwrap();
        let books = Arc::new(std::sync::Mutex::new(HashMap::new()));
        let seen = books.clone();
        let task = tokio::spawn(async move {
            loop {
                // The node's bus goes with the node: the watch ends there.
                let Ok(batch) = consumer.poll(10_000, Duration::from_millis(200)).await else { return };
                for m in &batch {
                    if let Ok(DataRecord::BookSnapshot(b)) = DataRecord::from_bytes(&m.payload) {
                        if b.symbol == symbol {
                            let best = (b.bids[0].0.to_string(), b.asks[0].0.to_string());
                            seen.lock().unwrap().insert(b.last_update_id, best);
                        }
                    }
                }
                if consumer.commit(&streamforge::bus::commit_positions(&batch)).await.is_err() {
                    return;
                }
            }
        });
        BookWatch { books, task }
    }

    /// The node's best levels at `update_id`, once its snapshot has been read.
    async fn at(&self, update_id: i64) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(best) = self.books.lock().unwrap().get(&update_id) {
                return best.clone();
            }
            assert!(Instant::now() < deadline, "the node published no book at {update_id}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for BookWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn json_of(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

const NUMBERS: &str = "(() => { const v = (id) => document.getElementById(id).dataset.value; \
    return { last: v('last-price'), bid: v('best-bid'), ask: v('best-ask'), update_id: v('book-update-id'), \
    messages: Number(v('messages')), symbol: document.getElementById('title-symbol').textContent, \
    status: document.getElementById('conn-status').dataset.state, \
    reconnects: Number(document.getElementById('conn-status').dataset.reconnects) }; })()";

async fn numbers(b: &mut Browser) -> Value {
    b.eval(NUMBERS).await
}

/// The page's message counter goes up within three seconds.
async fn counter_moves(b: &mut Browser) {
    let before = numbers(b).await["messages"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = numbers(b).await["messages"].as_u64().unwrap();
    assert!(after > before, "the message counter moved: {before} → {after}");
}

/// The page shows a last trade price of the recording, a best bid below the best ask equal to the
/// node's own verified book at the update id it shows, a message counter that moves, switches
/// symbol, fits 1280×800 and a phone, is keyboard-usable with labelled controls and readable
/// contrast, and reconnects by itself after the node restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_recorded_market_from_the_nodes_book_and_reconnects_after_a_restart() {
    if chromium().is_none() {
        return common::missing("chromium is not installed (apt-get install chromium)");
    }
    let dir = tempfile::tempdir().unwrap();
    let replay = capture_replay(1.0).await;
    let admin = format!("127.0.0.1:{}", common::kafka::free_port());
    let config = monitor_file(dir.path(), &admin, &replay, "");
    let node = Node::start(config.clone(), None).await.unwrap();
    let books = BookWatch::start(&node, "live-depth", "ETHUSDT").await;
    let mut page = Browser::open(&format!("http://{admin}/ui"), 1280, 800).await;

    let ready = "(() => { const v = (id) => document.getElementById(id).dataset.value; \
        return v('last-price') && v('book-update-id') && v('best-bid') && v('best-ask'); })()";
    page.wait_for("a trade and a verified book on the page", ready, Duration::from_secs(60)).await;
    let shown = numbers(&mut page).await;
    assert_eq!(shown["symbol"], "ETHUSDT", "monitor.symbol opens first");
    let last = shown["last"].as_str().unwrap();
    assert!(recorded_prices("ETHUSDT").contains(last), "{last} is a price of the recording");
    let (bid, ask) = (shown["bid"].as_str().unwrap(), shown["ask"].as_str().unwrap());
    assert!(bid.parse::<f64>().unwrap() < ask.parse::<f64>().unwrap(), "bid {bid} < ask {ask}");
    let update_id: i64 = shown["update_id"].as_str().unwrap().parse().unwrap();
    let node_book = books.at(update_id).await;
    assert_eq!((bid.to_owned(), ask.to_owned()), node_book, "the page's best levels are the node's at {update_id}");
    counter_moves(&mut page).await;
    let ladder =
        page.eval("document.querySelectorAll('#bids tr').length + document.querySelectorAll('#asks tr').length").await;
    assert_eq!(ladder, json!(2 * config.monitor.levels), "a full ladder");

    // Accessible basics: labelled controls, headings, keyboard focus, contrast of text.
    let a11y = page
        .eval(
            "(() => { const lum = (c) => { const [r, g, b] = c.match(/\\d+/g).slice(0, 3).map((x) => { x /= 255; \
             return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; }; \
             const ratio = (el) => { const s = getComputedStyle(el); let bg = el; \
             while (bg && getComputedStyle(bg).backgroundColor === 'rgba(0, 0, 0, 0)') bg = bg.parentElement; \
             const [a, b] = [lum(s.color), lum(getComputedStyle(bg || document.body).backgroundColor)].sort((x, y) => y - x); \
             return (a + 0.05) / (b + 0.05); }; \
             const texts = ['h1', 'h2', 'dt', 'dd', 'th', 'td', '.conn'].flatMap((q) => [...document.querySelectorAll(q)]); \
             return { labelled: [...document.querySelectorAll('select, input')].every((e) => e.labels.length > 0), \
             h1: document.querySelectorAll('h1').length, h2: document.querySelectorAll('h2').length, \
             contrast: Math.min(...texts.map(ratio)) }; })()",
        )
        .await;
    assert_eq!(a11y["labelled"], true, "{a11y}");
    assert_eq!(a11y["h1"], 1, "{a11y}");
    assert!(a11y["h2"].as_u64().unwrap() >= 5, "{a11y}");
    assert!(a11y["contrast"].as_f64().unwrap() >= 4.5, "WCAG AA contrast for text: {a11y}");
    page.tab().await;
    assert_eq!(page.eval("document.activeElement.className").await, "skip", "the first Tab reaches the skip link");
    page.tab().await;
    assert_eq!(page.eval("document.activeElement.id").await, "symbol", "then the symbol picker");
    let fits = "document.documentElement.scrollWidth <= window.innerWidth";
    assert_eq!(page.eval(fits).await, true, "no sideways scrolling at 1280×800");
    if let Ok(out) = std::env::var("STREAMFORGE_SCREENSHOT_DIR") {
        std::fs::write(Path::new(&out).join("dashboard.png"), page.screenshot().await).unwrap();
    }
    page.resize(390, 844).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(page.eval(fits).await, true, "no sideways scrolling at phone width");
    page.resize(1280, 800).await;

    // Another of the node's symbols.
    page.eval("(() => { const s = document.getElementById('symbol'); s.value = 'BTCUSDT'; s.dispatchEvent(new Event('change')); })()")
        .await;
    let btc = "(() => document.getElementById('title-symbol').textContent === 'BTCUSDT' && document.getElementById('last-price').dataset.value)()";
    let btc_last = page.wait_for("BTCUSDT's last trade", btc, Duration::from_secs(30)).await;
    assert!(recorded_prices("BTCUSDT").contains(btc_last.as_str().unwrap()), "{btc_last}");

    // The node restarts on the same address; the page notices, reconnects and moves on.
    let counted = numbers(&mut page).await["messages"].as_u64().unwrap();
    node.run_until(async {}).await.unwrap();
    page.wait_for(
        "the page to see the node gone",
        "document.getElementById('conn-status').dataset.state === 'reconnecting'",
        Duration::from_secs(20),
    )
    .await;
    let node = Node::start(config, None).await.unwrap();
    let back = "(() => { const s = document.getElementById('conn-status'); return s.dataset.state === 'live' && Number(s.dataset.reconnects) >= 1; })()";
    page.wait_for("the page to reconnect", back, Duration::from_secs(30)).await;
    let text = page.eval("document.getElementById('conn-status').textContent").await;
    assert!(text.as_str().unwrap().contains("reconnected"), "the page says it reconnected: {text}");
    // Until the new node's first frame the page still shows the old node's numbers: the new node
    // counts its messages from zero.
    let fresh = format!("Number(document.getElementById('messages').dataset.value) < {counted}");
    page.wait_for("the new node's first frame", &fresh, Duration::from_secs(30)).await;
    page.wait_for("BTCUSDT again after the restart", btc, Duration::from_secs(30)).await;
    counter_moves(&mut page).await;
    node.run_until(async {}).await.unwrap();
    replay.stop().await;
}

/// A client that stops reading is dropped once its buffer is full, and the others keep getting
/// frames: a slow tab cannot grow the node's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_while_the_others_keep_up() {
    let dir = tempfile::tempdir().unwrap();
    let replay = capture_replay(1.0).await;
    let config = monitor_file(dir.path(), "127.0.0.1:0", &replay, "[monitor]\nclient_buffer = 2\nlevels = 20\n");
    let node = Node::start(config, None).await.unwrap();
    let base = format!("http://{}", node.admin_addr());

    // The slow one: a tiny receive window, a request, and never a read.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    let mut slow = socket.connect(node.admin_addr()).await.unwrap();
    let request = format!("GET /api/v1/monitor/ETHUSDT/stream HTTP/1.1\r\nHost: {}\r\n\r\n", node.admin_addr());
    tokio::io::AsyncWriteExt::write_all(&mut slow, request.as_bytes()).await.unwrap();

    let mut fast = reqwest::get(format!("{base}/api/v1/monitor/ETHUSDT/stream")).await.unwrap();
    assert_eq!(fast.headers()["content-type"], "text/event-stream");
    let frames = Arc::new(AtomicUsize::new(0));
    let counted = frames.clone();
    let reader = tokio::spawn(async move {
        while let Ok(Some(chunk)) = fast.chunk().await {
            counted.fetch_add(String::from_utf8_lossy(&chunk).matches("event: ").count(), Ordering::Relaxed);
        }
    });
    common::wait_until("the slow client to be dropped", Duration::from_secs(120), || {
        let base = base.clone();
        async move {
            let m = reqwest::get(format!("{base}/metrics")).await.ok()?.text().await.ok()?;
            let dropped = m.lines().find_map(|l| l.strip_prefix("streamforge_monitor_clients_dropped_total "))?;
            (dropped.trim().parse::<f64>().ok()? >= 1.0).then_some(())
        }
    })
    .await;
    // The reading client is served all along, and still is.
    let before = frames.load(Ordering::Relaxed);
    common::wait_until("more frames for the reading client", Duration::from_secs(10), || {
        let now = frames.load(Ordering::Relaxed);
        async move { (now >= before + 10).then_some(()) }
    })
    .await;
    let m = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    assert!(m.contains("streamforge_monitor_clients 1"), "only the reading client is left:\n{m}");
    drop(slow);
    reader.abort();
    node.run_until(async {}).await.unwrap();
    replay.stop().await;
}

/// Bad monitor requests get a 4xx with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_symbols_get_a_404_with_the_symbols_the_node_streams() {
    let dir = tempfile::tempdir().unwrap();
    let replay = capture_replay(1.0).await;
    let node = Node::start(monitor_file(dir.path(), "127.0.0.1:0", &replay, ""), None).await.unwrap();
    let base = format!("http://{}", node.admin_addr());
    let info: Value = json_of(reqwest::get(format!("{base}/api/v1/monitor")).await.unwrap().text().await.unwrap());
    assert_eq!(info["symbols"], json!(["BTCUSDT", "ETHUSDT"]));
    assert_eq!(info["default"], "ETHUSDT");
    for path in ["/api/v1/monitor/XRPETH", "/api/v1/monitor/XRPETH/stream", "/api/v1/monitor/eth%20usdt"] {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body = json_of(r.text().await.unwrap());
        assert!(body["reason"].as_str().unwrap().contains("ETHUSDT"), "{path}: {body}");
    }
    node.run_until(async {}).await.unwrap();
    replay.stop().await;
}

/// With `admin.protect_reads` the monitor API wants the token like every read endpoint; the page
/// itself (no data in it) is served to anyone, and asks for the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_protected_reads_the_monitor_wants_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let replay = capture_replay(1.0).await;
    let token = "a-token-of-twenty-characters";
    let extra = format!("[admin]\ntoken = \"{token}\"\nprotect_reads = true\n");
    let node = Node::start(monitor_file(dir.path(), "127.0.0.1:0", &replay, &extra), None).await.unwrap();
    let base = format!("http://{}", node.admin_addr());
    let http = reqwest::Client::new();
    for path in ["/api/v1/monitor", "/api/v1/monitor/ETHUSDT", "/api/v1/monitor/ETHUSDT/stream"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without the token");
    }
    let r = http.get(format!("{base}/api/v1/monitor/ETHUSDT")).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let page = http.get(format!("{base}/ui")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("id=\"login\""), "the page has the token form");
    node.run_until(async {}).await.unwrap();
    replay.stop().await;
}

/// After a restart the chart starts with the minutes the store holds from before it: the first
/// node stores a few minutes of trades (the capture at 20× its pace), the second, which streams on
/// from there, shows candles older than anything it received live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_chart_is_filled_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let replay = capture_replay(20.0).await;
    let config = monitor_file(dir.path(), "127.0.0.1:0", &replay, "");
    let node = Node::start(config.clone(), None).await.unwrap();
    let store = node.ctx.store.clone();
    let stored_until =
        common::wait_until("three minutes of ETHUSDT trades stored", Duration::from_secs(60), || async {
            let trades = store.trades("live_trades", "ETHUSDT", 0, i64::MAX).await.ok()?;
            let (first, last) = (trades.iter().map(|t| t.time).min()?, trades.iter().map(|t| t.time).max()?);
            (last - first > 180_000).then_some(last)
        })
        .await;
    node.run_until(async {}).await.unwrap();
    let stored_until = store
        .trades("live_trades", "ETHUSDT", 0, i64::MAX)
        .await
        .unwrap()
        .iter()
        .map(|t| t.time)
        .max()
        .unwrap()
        .max(stored_until);
    let node = Node::start(config, None).await.unwrap();
    let base = format!("http://{}", node.admin_addr());
    let boundary = stored_until - stored_until % 60_000;
    let board =
        common::wait_until("candles from the store, older than the live trades", Duration::from_secs(30), || async {
            let b = json_of(reqwest::get(format!("{base}/api/v1/monitor/ETHUSDT")).await.ok()?.text().await.ok()?);
            let live = b["trades"].as_array().is_some_and(|t| !t.is_empty());
            (live && b["candles"][0]["t"].as_i64().is_some_and(|t| t < boundary)).then_some(b)
        })
        .await;
    let live_from = board["trades"].as_array().unwrap().iter().map(|t| t["t"].as_i64().unwrap()).min().unwrap();
    assert!(live_from > stored_until, "the new node streams on from where the first stopped");
    node.run_until(async {}).await.unwrap();
    replay.stop().await;
}

/// A child `streamforge node` and the first line of its standard output that starts with `prefix`.
fn spawn_node(args: &[&str], prefix: &str) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamforge"))
        .args(args)
        .env_remove("STREAMFORGE_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("the node printed no line starting with {prefix:?}"));
    (child, line)
}

/// The real-time path end to end from the file a user writes: `streamforge node --config FILE`
/// with `[[streams]]` and `[[connectors]]` stores every trade of the capture, with no hole in
/// the trade ids, and prints the dashboard's URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_from_a_toml_file_stores_every_captured_trade_without_a_hole() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sf.db");
    let file = dir.path().join("node.toml");
    let text = format!(
        "[node]\noffline = true\nreplay_speed = 0\nadmin_addr = \"127.0.0.1:0\"\n[store]\nurl = \"sqlite://{}\"\n\
         [[streams]]\nkind = \"trade\"\nsymbols = [\"ETHUSDT\"]\ntopic = \"eth-trades\"\n\
         [[connectors]]\ntopic = \"eth-trades\"\ncollection = \"eth_trades\"\n",
        db.display()
    );
    std::fs::write(&file, text).unwrap();
    let (mut child, line) = spawn_node(&["node", "--config", file.to_str().unwrap()], "Dashboard: ");
    assert!(line.starts_with("Dashboard: http://127.0.0.1:") && line.ends_with("/ui"), "{line}");
    let want: Vec<i64> = common::recorded_capture_trades().iter().map(|t| t["t"].as_i64().unwrap()).collect();
    let store = streamforge::store::open(&format!("sqlite://{}", db.display())).await.unwrap();
    let stored = common::wait_until("every captured trade stored", Duration::from_secs(120), || async {
        let trades = store.trades("eth_trades", "ETHUSDT", 0, i64::MAX).await.ok()?;
        (trades.len() >= want.len()).then_some(trades)
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let ids: Vec<i64> = stored.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), want.len(), "none twice");
    assert_eq!(ids, (want[0]..=want[want.len() - 1]).collect::<Vec<_>>(), "no hole in the trade ids");
    let mut recorded = want.clone();
    recorded.sort();
    assert_eq!(ids, recorded, "exactly the captured trades");
}

/// `streamforge node --offline` with no config runs the demo: the bundled BTCUSDT and ETHUSDT
/// capture streamed to the dashboard and stored, and the dashboard's URL printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_node_without_a_config_runs_the_demo_and_prints_the_dashboard_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let (mut child, line) =
        spawn_node(&["node", "--offline", "--admin-addr", "127.0.0.1:0", "--store", &url], "Dashboard: ");
    let base = line.trim_start_matches("Dashboard: ").trim_end_matches("/ui").to_owned();
    let page = reqwest::get(format!("{base}/ui")).await.unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.text().await.unwrap().contains("/ui/app.js"));
    let info: Value = json_of(reqwest::get(format!("{base}/api/v1/monitor")).await.unwrap().text().await.unwrap());
    assert_eq!(info["symbols"], json!(["BTCUSDT", "ETHUSDT"]), "{info}");
    let store = streamforge::store::open(&url).await.unwrap();
    common::wait_until("the demo to store trades of both symbols", Duration::from_secs(60), || async {
        let eth = store.trades("demo_trades", "ETHUSDT", 0, i64::MAX).await.ok()?;
        let btc = store.trades("demo_trades", "BTCUSDT", 0, i64::MAX).await.ok()?;
        (!eth.is_empty() && !btc.is_empty()).then_some(())
    })
    .await;
    let board: Value =
        json_of(reqwest::get(format!("{base}/api/v1/monitor/ETHUSDT")).await.unwrap().text().await.unwrap());
    assert_eq!(board["book"]["state"], "synced", "{board}");

    // Every actor family of the demo's tree is one whose series exist from start-up, and series
    // of what has not happened are there at zero (a `rate()` alert reads 0, not "no data").
    let tree: Value = json_of(reqwest::get(format!("{base}/api/v1/supervision")).await.unwrap().text().await.unwrap());
    let mut kinds = BTreeSet::new();
    let mut todo = vec![&tree];
    while let Some(node) = todo.pop() {
        kinds.insert(node["kind"].as_str().unwrap().to_owned());
        todo.extend(node["children"].as_array().into_iter().flatten());
    }
    for kind in &kinds {
        assert!(streamforge::admin::metrics::FAMILIES.contains(&kind.as_str()), "{kind} of {kinds:?}");
    }
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    for zero in [
        "streamforge_errors_total{actor=\"loader\",kind=\"banned\"} 0",
        "streamforge_errors_total{actor=\"connector\",kind=\"store_unavailable\"} 0",
        "streamforge_dead_letters_total{reason=\"malformed_json\"} 0",
        "streamforge_book_resyncs_total{reason=\"precision\"} 0",
        "streamforge_actor_restarts_total{actor=\"connector\"} 0",
        "streamforge_actor_up{actor=\"trainer\"} 0",
    ] {
        assert!(metrics.contains(zero), "{zero} in\n{metrics}");
    }
    let _ = child.kill();
    let _ = child.wait();
}
