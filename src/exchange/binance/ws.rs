//! Binance WebSocket market streams over the combined endpoint (`/stream?streams=a/b`), whose
//! messages arrive wrapped as `{"stream": "<name>", "data": {…}}`. Server pings are answered by
//! tungstenite itself (the pong goes out with the next read), as Binance requires within a minute.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::ExchangeError;

pub const DEFAULT_WS_URL: &str = "wss://stream.binance.com:9443";
/// Binance serves at most this many streams on one connection.
pub const MAX_STREAMS_PER_CONNECTION: usize = 1024;

/// A Binance WebSocket endpoint (the real exchange or a replay server).
#[derive(Clone)]
pub struct BinanceWs {
    base: Arc<str>,
}

/// One data message of a combined stream: `{"stream":"…","data":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMessage {
    /// e.g. `ethusdt@depth@100ms`
    pub stream: String,
    /// The `data` object's JSON, as received; decoding it is the record decoder's job (which
    /// reports malformed JSON).
    data: String,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    stream: String,
    #[serde(borrow)]
    data: &'a RawValue,
}

impl StreamMessage {
    pub fn data(&self) -> &[u8] {
        self.data.as_bytes()
    }

    /// Splits the envelope. Binance's own layout (`{"stream":"…","data":…}`, stream first, no
    /// whitespace) is split without reading `data` twice; anything else goes through serde.
    pub fn parse(text: &str) -> Result<StreamMessage, serde_json::Error> {
        let fast = || {
            let rest = text.strip_prefix("{\"stream\":\"")?;
            let quote = rest.find(['"', '\\'])?;
            let data = rest[quote..].strip_prefix("\",\"data\":")?.strip_suffix('}')?;
            (data.starts_with('{') && data.ends_with('}'))
                .then(|| StreamMessage { stream: rest[..quote].to_owned(), data: data.to_owned() })
        };
        match fast() {
            Some(m) => Ok(m),
            None => {
                let e: Envelope<'_> = serde_json::from_str(text)?;
                Ok(StreamMessage { stream: e.stream, data: e.data.get().to_owned() })
            }
        }
    }
}

/// A frame that is not a message of the combined-stream protocol: counted, dead-lettered with its
/// raw text and skipped — the connection and the other streams on it go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFrame {
    /// `malformed` (not a combined-stream JSON message) or `binary` (Binance sends text only).
    pub reason: &'static str,
    pub error: String,
    pub text: String,
}

/// What a connection delivered: a message, or a frame to skip.
#[derive(Debug)]
pub enum Frame {
    Message(StreamMessage),
    Bad(BadFrame),
}

pub struct WsConnection {
    url: String,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    opened: Instant,
    /// Last frame of any kind (data or ping): the connection is alive.
    last_frame: Instant,
}

impl BinanceWs {
    pub fn new(base_url: &str) -> Result<BinanceWs, ExchangeError> {
        let base = base_url.trim_end_matches('/');
        if !(base.starts_with("ws://") || base.starts_with("wss://")) {
            return Err(ExchangeError::BaseUrl(base_url.to_owned()));
        }
        Ok(BinanceWs { base: Arc::from(base) })
    }

    /// Opens one connection carrying `streams` (1 to [`MAX_STREAMS_PER_CONNECTION`]).
    pub async fn connect(&self, streams: &[String]) -> Result<WsConnection, ExchangeError> {
        let url = format!("{}/stream?streams={}", self.base, streams.join("/"));
        if streams.is_empty() || streams.len() > MAX_STREAMS_PER_CONNECTION {
            let reason = format!("{} streams asked; one connection carries 1 to 1024", streams.len());
            return Err(ExchangeError::WebSocket { url, reason });
        }
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| ExchangeError::WebSocket { url: url.clone(), reason: e.to_string() })?;
        let now = Instant::now();
        Ok(WsConnection { url, socket, opened: now, last_frame: now })
    }
}

impl WsConnection {
    /// The next data frame; `None` once the server has closed the connection, an error when the
    /// protocol failed (only that takes the connection down).
    pub async fn next(&mut self) -> Option<Result<Frame, ExchangeError>> {
        loop {
            let frame = match self.socket.next().await? {
                Ok(frame) => frame,
                Err(e) => return Some(Err(self.error(e.to_string()))),
            };
            self.last_frame = Instant::now();
            let text = match frame {
                Message::Text(t) => t,
                Message::Close(_) => return None,
                Message::Binary(b) => {
                    let text = String::from_utf8_lossy(&b).into_owned();
                    let error = format!("a binary frame of {} bytes", b.len());
                    return Some(Ok(Frame::Bad(BadFrame { reason: "binary", error, text })));
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            return Some(Ok(match StreamMessage::parse(text.as_str()) {
                Ok(m) => Frame::Message(m),
                Err(e) => Frame::Bad(BadFrame {
                    reason: "malformed",
                    error: format!("not a combined-stream message ({e}): {}", head(text.as_str())),
                    text: text.as_str().to_owned(),
                }),
            }));
        }
    }

    /// How long the server has sent nothing, not even a ping (Binance pings every 20 s).
    pub fn idle(&self) -> Duration {
        self.last_frame.elapsed()
    }

    /// How long the connection has been open (Binance cuts connections at 24 h).
    pub fn age(&self) -> Duration {
        self.opened.elapsed()
    }

    fn error(&self, reason: String) -> ExchangeError {
        ExchangeError::WebSocket { url: self.url.clone(), reason }
    }
}

fn head(s: &str) -> &str {
    s.char_indices().nth(200).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_split_the_same_whatever_their_layout() {
        let raw = r#"{"stream":"ethusdt@trade","data":{"e":"trade","E":1,"s":"ETHUSDT","t":5,"p":"1.0","q":"2.0","T":1,"m":false,"M":true}}"#;
        let fast = StreamMessage::parse(raw).unwrap();
        assert_eq!(fast.stream, "ethusdt@trade");
        assert!(fast.data().starts_with(b"{\"e\":\"trade\"") && fast.data().ends_with(b"true}"));
        let spaced = r#"{ "data": {"e":"trade","E":1,"s":"ETHUSDT","t":5,"p":"1.0","q":"2.0","T":1,"m":false,"M":true}, "stream": "ethusdt@trade" }"#;
        assert_eq!(StreamMessage::parse(spaced).unwrap(), fast, "another layout goes through serde");
        assert!(StreamMessage::parse(r#"{"result":null,"id":1}"#).is_err());
    }
}
