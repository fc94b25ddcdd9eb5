//! Binance spot REST: typed calls with Binance's error bodies turned into errors that know whether
//! a retry can help.

use std::sync::Arc;
use std::time::Duration;

use super::limit::WeightLimiter;
use crate::admin::metrics::Metrics;
use crate::model::{now_ms, BookSnapshot, Candle, Interval, ParseError, Trade};

pub const DEFAULT_REST_URL: &str = "https://api.binance.com";

/// Request weights (Binance spot API docs).
const KLINES_WEIGHT: u32 = 2;
const AGG_TRADES_WEIGHT: u32 = 4;
const HISTORICAL_TRADES_WEIGHT: u32 = 25;
const EXCHANGE_INFO_WEIGHT: u32 = 20;

/// A depth snapshot's weight by its `limit`.
pub(super) fn depth_weight(limit: u32) -> u32 {
    match limit {
        ..=100 => 5,
        101..=500 => 25,
        501..=1000 => 50,
        _ => 250,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("cannot reach {url}: {source}")]
    Transport { url: String, source: reqwest::Error },
    #[error("{url} answered HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("{url} sent a body that is not Binance's format: {source}")]
    Decode { url: String, source: ParseError },
    #[error("invalid REST base URL {0:?}: expected http(s)://host[:port]")]
    BaseUrl(String),
    #[error("WebSocket {url}: {reason}")]
    WebSocket { url: String, reason: String },
}

impl ExchangeError {
    /// True when retrying cannot help (a rejected request, an unreadable body).
    pub fn is_terminal(&self) -> bool {
        match self {
            ExchangeError::Transport { .. } | ExchangeError::WebSocket { .. } => false,
            // 429 and 418 hold the node's budget for the wait they name: a later retry is safe.
            ExchangeError::Status { status, .. } => !matches!(status, 429 | 418) && *status < 500,
            ExchangeError::Decode { .. } | ExchangeError::BaseUrl(_) => true,
        }
    }

    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ExchangeError::Transport { .. } => "transport",
            ExchangeError::WebSocket { .. } => "websocket",
            ExchangeError::Status { status: 429, .. } => "rate_limited",
            ExchangeError::Status { status: 418, .. } => "banned",
            ExchangeError::Status { status, .. } if *status >= 500 => "server",
            ExchangeError::Status { .. } => "rejected",
            ExchangeError::Decode { .. } => "decode",
            ExchangeError::BaseUrl(_) => "config",
        }
    }
}

/// `base_url` without trailing slashes, refused unless http(s), and a client for it whose requests
/// give up after `timeout`.
pub(super) fn http_client(base_url: &str, timeout: Duration) -> Result<(Arc<str>, reqwest::Client), ExchangeError> {
    let base = base_url.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(ExchangeError::BaseUrl(base_url.to_owned()));
    }
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|source| ExchangeError::Transport { url: base.to_owned(), source })?;
    Ok((Arc::from(base), http))
}

/// The error of an answer other than 200, with the start of its body.
pub(super) fn status_error(url: &str, status: u16, body: &[u8]) -> ExchangeError {
    let body = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
    ExchangeError::Status { url: url.to_owned(), status, body }
}

/// A Binance REST client bound to one base URL (the real exchange or a replay server).
#[derive(Clone)]
pub struct BinanceRest {
    http: reqwest::Client,
    base: Arc<str>,
    metrics: Arc<Metrics>,
    limiter: Arc<WeightLimiter>,
}

/// 429 and 418 answers in a row one call waits out before it reports the error (the budget stays
/// held for the last one's wait all the same).
const MAX_REFUSED: u32 = 5;
/// The wait after a 429 without a usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The wait after a 418 without a usable `Retry-After`: Binance's bans last 2 minutes to 3 days,
/// and asking again before one is over extends it, so this errs long.
const DEFAULT_BAN: Duration = Duration::from_secs(300);

/// How long a 429 (rate limited) or 418 (banned) answer holds every request of the node; `None`
/// for any other status.
fn refusal_wait(status: u16, retry_after: Option<Duration>) -> Option<Duration> {
    match status {
        429 => Some(retry_after.unwrap_or(DEFAULT_RETRY_AFTER)),
        418 => Some(retry_after.unwrap_or_else(|| {
            tracing::warn!(wait_s = DEFAULT_BAN.as_secs(), "Binance answered 418 without Retry-After; assuming a ban.");
            DEFAULT_BAN
        })),
        _ => None,
    }
}

impl BinanceRest {
    /// A client spending from `limiter`, the process's one weight budget (a client with a budget
    /// of its own would send requests the node's budget does not know of).
    pub fn new(base_url: &str, metrics: Arc<Metrics>, limiter: Arc<WeightLimiter>) -> Result<Self, ExchangeError> {
        let (base, http) = http_client(base_url, Duration::from_secs(30))?;
        Ok(BinanceRest { http, base, metrics, limiter })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Where its requests and refusals are counted.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// A GET costing `weight`, within the node's budget. A 429 (rate limited) or 418 (banned) holds
    /// every request of the node for its `Retry-After` — the last of `MAX_REFUSED` in a row too,
    /// before it is returned — and is retried; any other failure is returned.
    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
        weight: u32,
    ) -> Result<(String, bytes::Bytes), ExchangeError> {
        let url = format!("{}{}", self.base, path);
        let mut refused = 0;
        loop {
            self.limiter.acquire(weight).await;
            let resp = self
                .http
                .get(&url)
                .query(query)
                .send()
                .await
                .map_err(|source| ExchangeError::Transport { url: url.clone(), source })?;
            let header =
                |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
            if let Some(used) = header("x-mbx-used-weight-1m") {
                self.metrics.rest_weight_used.with_label_values(&["binance"]).set(used as i64);
                self.limiter.observe(used.min(u32::MAX as u64) as u32).await;
            }
            let retry_after = header("retry-after").map(Duration::from_secs);
            let status = resp.status().as_u16();
            let body = resp.bytes().await.map_err(|source| ExchangeError::Transport { url: url.clone(), source })?;
            if let Some(wait) = refusal_wait(status, retry_after) {
                let kind = if status == 418 { "banned" } else { "rate_limited" };
                self.metrics.errors.with_label_values(&["rest", kind]).inc();
                tracing::warn!(%url, status, wait_ms = wait.as_millis() as u64, "Binance refused; every request waits as told.");
                self.limiter.hold(wait).await;
                refused += 1;
                if refused < MAX_REFUSED {
                    continue;
                }
            }
            if status != 200 {
                return Err(status_error(&url, status, &body));
            }
            return Ok((url, body));
        }
    }

    /// `GET /api/v3/klines` for `[start, end]` (open times, ms), at most `limit` rows.
    pub async fn klines(
        &self,
        symbol: &str,
        interval: Interval,
        start: i64,
        end: i64,
        limit: u32,
    ) -> Result<Vec<Candle>, ExchangeError> {
        let query = [
            ("symbol", symbol.to_owned()),
            ("interval", interval.to_string()),
            ("startTime", start.to_string()),
            ("endTime", end.to_string()),
            ("limit", limit.to_string()),
        ];
        let (url, body) = self.get("/api/v3/klines", &query, KLINES_WEIGHT).await?;
        Candle::from_rest_klines(symbol, interval, &body, now_ms())
            .map_err(|source| ExchangeError::Decode { url, source })
    }

    /// `GET /api/v3/aggTrades` from aggregate trade id `from_id` on, at most `limit` (≤ 1000).
    pub async fn agg_trades(&self, symbol: &str, from_id: i64, limit: u32) -> Result<Vec<Trade>, ExchangeError> {
        let query = [("symbol", symbol.to_owned()), ("fromId", from_id.to_string()), ("limit", limit.to_string())];
        let (url, body) = self.get("/api/v3/aggTrades", &query, AGG_TRADES_WEIGHT).await?;
        Trade::from_rest_agg_trades(symbol, &body).map_err(|source| ExchangeError::Decode { url, source })
    }

    /// `GET /api/v3/aggTrades` with trade times in `[start, end]` (ms), at most `limit` (≤ 1000).
    pub async fn agg_trades_between(
        &self,
        symbol: &str,
        start: i64,
        end: i64,
        limit: u32,
    ) -> Result<Vec<Trade>, ExchangeError> {
        let query = [
            ("symbol", symbol.to_owned()),
            ("startTime", start.to_string()),
            ("endTime", end.to_string()),
            ("limit", limit.to_string()),
        ];
        let (url, body) = self.get("/api/v3/aggTrades", &query, AGG_TRADES_WEIGHT).await?;
        Trade::from_rest_agg_trades(symbol, &body).map_err(|source| ExchangeError::Decode { url, source })
    }

    /// `GET /api/v3/historicalTrades` from trade id `from_id` on, at most `limit` (≤ 1000).
    pub async fn historical_trades(&self, symbol: &str, from_id: i64, limit: u32) -> Result<Vec<Trade>, ExchangeError> {
        let query = [("symbol", symbol.to_owned()), ("fromId", from_id.to_string()), ("limit", limit.to_string())];
        let (url, body) = self.get("/api/v3/historicalTrades", &query, HISTORICAL_TRADES_WEIGHT).await?;
        Trade::from_rest_trades(symbol, &body).map_err(|source| ExchangeError::Decode { url, source })
    }

    /// `GET /api/v3/exchangeInfo`: the symbols the exchange lists, with their status (`TRADING`, `BREAK`, …).
    pub async fn symbols(&self) -> Result<Vec<(String, String)>, ExchangeError> {
        #[derive(serde::Deserialize)]
        struct Info {
            symbols: Vec<Listed>,
        }
        #[derive(serde::Deserialize)]
        struct Listed {
            symbol: String,
            status: String,
        }
        let (url, body) = self.get("/api/v3/exchangeInfo", &[], EXCHANGE_INFO_WEIGHT).await?;
        let info: Info = serde_json::from_slice(&body)
            .map_err(|e| ExchangeError::Decode { url, source: crate::model::ParseError::Json(e) })?;
        Ok(info.symbols.into_iter().map(|l| (l.symbol, l.status)).collect())
    }

    /// `GET /api/v3/depth`: the book's `limit` best levels a side (5, 10, 20, 50, 100, 500, 1000 or
    /// 5000; weight 5 to 250).
    pub async fn depth(&self, symbol: &str, limit: u32) -> Result<BookSnapshot, ExchangeError> {
        let query = [("symbol", symbol.to_owned()), ("limit", limit.to_string())];
        let (url, body) = self.get("/api/v3/depth", &query, depth_weight(limit)).await?;
        BookSnapshot::from_rest(symbol, &body).map_err(|source| ExchangeError::Decode { url, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_errors_are_counted_under_labels_exported_from_start_up() {
        let url = || "http://127.0.0.1:1/api/v3/klines".to_owned();
        let status = |status| ExchangeError::Status { url: url(), status, body: String::new() };
        let errors = [
            status(429),
            status(418),
            status(503),
            status(400),
            ExchangeError::BaseUrl("ftp://x".into()),
            ExchangeError::WebSocket { url: url(), reason: "closed".into() },
        ];
        for e in &errors {
            assert!(crate::admin::metrics::EXCHANGE_ERRORS.contains(&e.metric_label()), "{e}: {}", e.metric_label());
        }
    }
}
