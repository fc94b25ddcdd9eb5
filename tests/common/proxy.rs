//! A TCP relay on loopback in front of a real server, which a test can cut (live connections are
//! closed, new ones refused) and restore: a database or broker outage without touching the server.
//! It can also swallow the server's answers while still passing the client's requests on — a
//! connection that dies after the request reached the server and before its answer came back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
}

pub struct TcpProxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

/// Copies `from` to `to` until either side closes; with `answers`, drops what comes while the
/// proxy swallows.
async fn pump(
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
