//! Binance's request-weight rules as the replay server enforces them: 6,000 weight a minute per IP
//! (the window can be shortened with the budget unchanged, for benchmarks on a scaled clock)
//! (`X-MBX-USED-WEIGHT-1M` on every answer); over it, HTTP 429 with `Retry-After`; a request
//! before that wait is over earns a 418 ban (Binance bans for 2 minutes to 3 days, here 2 minutes
//! unless a fault says otherwise), and so does one sent during the ban, which starts it again.
//! Faults can add 429s, or start with the IP banned. Counters say what a client did, for tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use actix_web::HttpResponse;
use serde::Serialize;

use super::WEIGHT_LIMIT_1M;
use crate::model::now_ms;

/// What clients have asked of the server so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayStats {
    /// Requests per endpoint (`klines`, `aggTrades`, `depth`, …), answered or refused.
    pub requests: BTreeMap<String, u64>,
    /// 429 answers.
    pub rate_limited: u64,
    /// 418 answers: requests sent while told to wait, or while banned.
    pub banned: u64,
    /// 5xx answers (injected).
    pub server_errors: u64,
    /// Weight spent per budget window (keyed by the window's start, epoch ms).
    pub weight_by_window: BTreeMap<i64, u32>,
    /// Depth snapshots served per symbol: the `limit` of each, in order.
    pub depth_limits: BTreeMap<String, Vec<usize>>,
}

#[derive(Default)]
struct GateState {
    minute: i64,
    used: u32,
    served: u64,
    /// Epoch ms before which the client was told (429) to wait.
    wait_until: i64,
    banned_until: i64,
    stats: ReplayStats,
}

/// The weight budget of the server's one client IP (loopback).
pub(super) struct Gate {
    state: Mutex<GateState>,
    /// Every n-th request is answered 429 (a fault), with this `Retry-After` in seconds.
    every_429: Option<(u64, u64)>,
    /// Every n-th request is answered 503 (a fault): the outcome is unknown to the client.
    every_503: Option<u64>,
    /// The budget's window: a minute, as at Binance (shorter in benchmarks).
    window_ms: i64,
    /// How long a ban lasts.
    ban_ms: i64,
}

/// A request the budget turns away: 429 (wait `retry_after_ms`) or 418 (banned).
pub(super) struct Refusal {
    status: u16,
    retry_after_ms: i64,
    used: u32,
    msg: &'static str,
}

impl Refusal {
    pub(super) fn response(&self) -> HttpResponse {
        let code = actix_web::http::StatusCode::from_u16(self.status).expect("429, 418 and 503 are valid statuses");
        let secs = (self.retry_after_ms.max(0) + 999) / 1000;
        HttpResponse::build(code)
            .insert_header(("Retry-After", secs.to_string()))
            .insert_header(("X-MBX-USED-WEIGHT-1M", self.used.to_string()))
            .json(serde_json::json!({ "code": -1003, "msg": self.msg }))
    }
}

fn refuse(status: u16, retry_after_ms: i64, used: u32, msg: &'static str) -> Refusal {
    Refusal { status, retry_after_ms, used, msg }
}

impl Gate {
    pub(super) fn new(faults: &super::ReplayFaults) -> Gate {
        let ban_ms = faults.ban.as_millis() as i64;
        let banned_until = if faults.banned_at_start { now_ms() + ban_ms } else { 0 };
        Gate {
            state: Mutex::new(GateState { banned_until, ..Default::default() }),
            every_429: faults.rate_limit_every.map(|n| (n.max(1), faults.retry_after_secs)),
            every_503: faults.server_error_every.map(|n| n.max(1)),
            window_ms: (faults.weight_window.as_millis() as i64).max(1),
            ban_ms,
        }
    }

    pub(super) fn stats(&self) -> ReplayStats {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).stats.clone()
    }

    /// Counts a depth snapshot served.
    pub(super) fn served_depth(&self, symbol: &str, limit: usize) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.stats.depth_limits.entry(symbol.to_owned()).or_default().push(limit);
    }

    /// Counts a request that spends no REST weight (the archive is another host at Binance).
    pub(super) fn count(&self, endpoint: &str) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *st.stats.requests.entry(endpoint.to_owned()).or_default() += 1;
    }

    /// Spends `weight` for a request to `endpoint`: the minute's total, or the refusal to send.
    pub(super) fn admit(&self, endpoint: &str, weight: u32) -> Result<u32, Refusal> {
        let now = now_ms();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *st.stats.requests.entry(endpoint.to_owned()).or_default() += 1;
        if now / self.window_ms != st.minute {
            (st.minute, st.used) = (now / self.window_ms, 0);
        }
        let used = st.used;
        if now < st.banned_until || now < st.wait_until {
            st.stats.banned += 1;
            st.banned_until = now + self.ban_ms;
            return Err(refuse(418, self.ban_ms, used, "Way too many requests; IP banned for ignoring 429 or 418."));
        }
        st.served += 1;
        if let Some((n, secs)) = self.every_429 {
            if st.served.is_multiple_of(n) {
                st.stats.rate_limited += 1;
                st.wait_until = now + secs as i64 * 1000;
                return Err(refuse(429, secs as i64 * 1000, used, "Too many requests (injected)."));
            }
        }
        if self.every_503.is_some_and(|n| st.served.is_multiple_of(n)) {
            st.stats.server_errors += 1;
            return Err(Refusal { status: 503, retry_after_ms: 0, used, msg: "Service unavailable (injected)." });
        }
        if used + weight > WEIGHT_LIMIT_1M {
            st.stats.rate_limited += 1;
            let next_minute = (now / self.window_ms + 1) * self.window_ms;
            st.wait_until = next_minute;
            return Err(refuse(
                429,
                next_minute - now,
                used,
                "Too much request weight used; current limit is 6000 request weight per 1 MINUTE.",
            ));
        }
        st.used += weight;
        let window_start = st.minute * self.window_ms;
        *st.stats.weight_by_window.entry(window_start).or_default() = st.used;
        Ok(st.used)
    }
}
