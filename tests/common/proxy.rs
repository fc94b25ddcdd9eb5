//! A TCP relay on loopback in front of a real server, which a test can cut (live connections are
//! closed, new ones refused) and restore: a database or broker outage without touching the server.
//! It can also swallow the server's answers while still passing the client's requests on — a
//! connection that dies after the request reached the server and before its answer came back.
//! And it can delay what it passes on, each way, like a long link (see [`TcpProxy::delay`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

#[derive(Default)]
struct State {
    down: AtomicBool,
    swallow: AtomicBool,
    /// Bytes of the server's answers dropped while swallowing.
    swallowed: AtomicU64,
    /// Bytes of the clients' requests passed on while swallowing.
    passed_while_swallowing: AtomicU64,
    live: Mutex<Vec<AbortHandle>>,
    /// Each way, what is read is written this long (plus up to `jitter`) later, in order.
    delay: Mutex<(Duration, Duration)>,
}

pub struct TcpProxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

/// Copies `from` to `to` until either side closes; with `answers`, drops what comes while the
/// proxy swallows. With a delay set, the writing is a task of its own that writes each chunk when
/// it is due, so the delay is a latency, not a slower read.
async fn pump(
    from: tokio::net::tcp::OwnedReadHalf,
    to: tokio::net::tcp::OwnedWriteHalf,
    answers: bool,
    state: Arc<State>,
) {
    let (delay, jitter) = *state.delay.lock().unwrap();
    if delay.is_zero() && jitter.is_zero() {
        return copy(from, to, answers, state).await;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(1024);
    let writer = async move {
        let mut to = to;
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    let reader = async move {
        let mut from = from;
        let mut buf = vec![0u8; 64 * 1024];
        let mut last_due = tokio::time::Instant::now();
        let mut draw = state.as_ref() as *const State as u64 | 1;
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // xorshift: jitter in [0, jitter), never reordering (a chunk is due after the one before).
            draw ^= draw << 13;
            draw ^= draw >> 7;
            draw ^= draw << 17;
            let extra = if jitter.is_zero() { Duration::ZERO } else { jitter.mul_f64((draw % 1000) as f64 / 1000.0) };
            last_due = last_due.max(tokio::time::Instant::now() + delay + extra);
            if tx.send((last_due, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    };
    tokio::join!(reader, writer);
}

/// [`pump`] without a delay.
async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    answers: bool,
    state: Arc<State>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let swallowing = state.swallow.load(Ordering::Acquire);
        if answers && swallowing {
            state.swallowed.fetch_add(n as u64, Ordering::AcqRel);
            continue;
        }
        if swallowing {
            state.passed_while_swallowing.fetch_add(n as u64, Ordering::AcqRel);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> TcpProxy {
        TcpProxy::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), target)
    }

    /// A relay on `listener` (e.g. the port a broker advertises) to `target`.
    pub fn start_on(listener: TcpListener, target: SocketAddr) -> TcpProxy {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if st.down.load(Ordering::Acquire) {
                    drop(client); // refused: closed at once
                    continue;
                }
                let st2 = st.clone();
                let relay = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else { return };
                    let (client_rx, client_tx) = client.into_split();
                    let (server_rx, server_tx) = server.into_split();
                    let requests = pump(client_rx, server_tx, false, st2.clone());
                    let answers = pump(server_rx, client_tx, true, st2);
                    tokio::select! { _ = requests => {}, _ = answers => {} }
                });
                st.live.lock().unwrap().push(relay.abort_handle());
            }
        });
        TcpProxy { addr, state, accept }
    }

    /// Closes every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.state.down.store(true, Ordering::Release);
        self.close_live();
    }

    pub fn restore(&self) {
        self.state.down.store(false, Ordering::Release);
    }

    /// From now on the server's answers are dropped; the clients' requests still reach it.
    pub fn swallow_answers(&self) {
        self.state.swallow.store(true, Ordering::Release);
    }

    /// Closes every relayed connection and relays normally again (new connections are accepted).
    pub fn reset_connections(&self) {
        self.close_live();
        self.state.swallow.store(false, Ordering::Release);
    }

    /// From now on (for connections made after this), each way, every chunk is passed on `delay`
    /// plus up to `jitter` after it was read, in order: a link with that one-way latency.
    pub fn delay(&self, delay: Duration, jitter: Duration) {
        *self.state.delay.lock().unwrap() = (delay, jitter);
    }

    /// (bytes of answers swallowed, bytes of requests passed on meanwhile).
    pub fn swallowed(&self) -> (u64, u64) {
        (self.state.swallowed.load(Ordering::Acquire), self.state.passed_while_swallowing.load(Ordering::Acquire))
    }

    fn close_live(&self) {
        for relay in self.state.live.lock().unwrap().drain(..) {
            relay.abort();
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
