//! Binance REST endpoints over recorded data, with Binance's paging rules, limits, error bodies and
//! the `X-MBX-USED-WEIGHT-1M` header.

use std::collections::HashMap;
use std::fmt::Write;

use actix_web::{web, HttpResponse};

use super::data::{KlineRow, SymbolData, TradeRow};
use super::ReplayState;
use crate::model::{now_ms, Decimal, Interval, PriceLevel};

/// An error answered the way Binance answers it: HTTP 4xx and `{"code":…,"msg":…}`.
#[derive(Debug)]
pub(super) struct ApiError {
    status: u16,
    code: i32,
    msg: String,
}

impl ApiError {
    pub(super) fn bad(code: i32, msg: impl Into<String>) -> Self {
        ApiError { status: 400, code, msg: msg.into() }
    }

    pub(super) fn response(&self, weight: u32) -> HttpResponse {
        let status =
            actix_web::http::StatusCode::from_u16(self.status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
        HttpResponse::build(status)
            .insert_header(("X-MBX-USED-WEIGHT-1M", weight.to_string()))
            .json(serde_json::json!({ "code": self.code, "msg": self.msg }))
    }
}

type Query = web::Query<HashMap<String, String>>;

fn mandatory<'a>(q: &'a Query, name: &str) -> Result<&'a str, ApiError> {
    q.get(name).map(String::as_str).filter(|v| !v.is_empty()).ok_or_else(|| {
        ApiError::bad(-1102, format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."))
    })
}

fn optional_i64(q: &Query, name: &str) -> Result<Option<i64>, ApiError> {
    q.get(name)
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                ApiError::bad(
                    -1100,
                    format!("Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."),
                )
            })
        })
        .transpose()
}

fn limit(q: &Query, default: i64, max: i64) -> Result<usize, ApiError> {
    let l = optional_i64(q, "limit")?.unwrap_or(default);
    if !(1..=max).contains(&l) {
        return Err(ApiError::bad(-1130, format!("Data sent for parameter 'limit' is not valid: {l} (1 to {max}).")));
    }
    Ok(l as usize)
}

fn symbol<'a>(state: &'a ReplayState, q: &Query) -> Result<(String, &'a SymbolData), ApiError> {
    let s = mandatory(q, "symbol")?.to_ascii_uppercase();
    match state.data.symbols.get(&s) {
        Some(d) => Ok((s, d)),
        None => Err(ApiError::bad(-1121, "Invalid symbol.")),
    }
}

/// Binance prints prices and quantities with 8 decimals; never round a value with more.
pub(super) fn binance_decimal(d: Decimal) -> String {
    let mut d = d;
    if d.scale() < 8 {
        d.rescale(8);
    }
    d.to_string()
}

fn kline_json(out: &mut String, r: &KlineRow, interval: Interval) {
    let _ = write!(
        out,
        "[{},\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",{},",
        r.open_time,
        binance_decimal(r.open),
        binance_decimal(r.high),
        binance_decimal(r.low),
        binance_decimal(r.close),
        binance_decimal(r.volume),
        r.open_time + interval.millis() - 1
    );
    // Freqtrade recordings carry no quote volume, trade count or taker volumes: sent as null,
    // never invented.
    let _ = match &r.totals {
        Some(t) => write!(
            out,
            "\"{}\",{},\"{}\",\"{}\",\"0\"]",
            binance_decimal(t.quote_volume),
            t.trades,
            binance_decimal(t.taker_buy_base),
            binance_decimal(t.taker_buy_quote)
        ),
        None => write!(out, "null,null,null,null,\"0\"]"),
    };
}

fn json_array<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
    out
}

fn ok_json(body: String, weight: u32) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("X-MBX-USED-WEIGHT-1M", weight.to_string()))
        .content_type("application/json;charset=UTF-8")
        .body(body)
}

/// Selects `[start, end]` then the first `limit` rows; with only `end`, the last `limit` rows up to
/// it; with neither, the last `limit` rows — Binance's rules for klines and aggTrades.
fn page<T>(rows: &[T], key: impl Fn(&T) -> i64, start: Option<i64>, end: Option<i64>, limit: usize) -> &[T] {
    let hi = end.map_or(rows.len(), |e| rows.partition_point(|r| key(r) <= e));
    match start {
        Some(s) => {
            let lo = rows.partition_point(|r| key(r) < s).min(hi);
            &rows[lo..hi.min(lo + limit)]
        }
        None => &rows[hi.saturating_sub(limit)..hi],
    }
}

pub(super) async fn klines(state: web::Data<ReplayState>, q: Query) -> HttpResponse {
    let weight = match state.admit("klines", 2).await {
        Ok(w) => w,
        Err(refused) => return refused,
    };
    let result: Result<String, ApiError> = (|| {
        let (sym, data) = symbol(&state, &q)?;
        let interval: Interval =
            mandatory(&q, "interval")?.parse().map_err(|_| ApiError::bad(-1120, "Invalid interval."))?;
        let limit = limit(&q, 500, 1000)?;
        let (start, end) = (optional_i64(&q, "startTime")?, optional_i64(&q, "endTime")?);
        if let (Some(s), Some(e)) = (start, end) {
            if s > e {
                return Err(ApiError::bad(-1023, "Start time is greater than end time."));
            }
        }
        let Some(rows) = data.klines.get(&interval) else {
            let recorded: Vec<&str> = data.klines.keys().map(|i| i.as_str()).collect();
            return Err(ApiError::bad(
                -1120,
                format!("The replay has no {interval} klines for {sym}; recorded intervals: {recorded:?}."),
            ));
        };
        let mut out = String::with_capacity(limit * 120);
        out.push('[');
        let around = rows.rows_around(start, end, limit);
        for (i, r) in page(&around, |r| r.open_time, start, end, limit).iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            kline_json(&mut out, r, interval);
        }
        out.push(']');
        Ok(out)
    })();
    match result {
        Ok(body) => ok_json(body, weight),
        Err(e) => e.response(weight),
    }
}

pub(super) async fn agg_trades(state: web::Data<ReplayState>, q: Query) -> HttpResponse {
    trades_by_id(state, q, "aggTrades", 4, "aggTrade", |d| &d.agg_trades).await
}

pub(super) async fn historical_trades(state: web::Data<ReplayState>, q: Query) -> HttpResponse {
    trades_by_id(state, q, "historicalTrades", 25, "trade", |d| &d.trades).await
}

/// `aggTrades` / `historicalTrades`: paged by `fromId` (or by time); while the matching stream
/// (`<symbol>@<stream>`) is being replayed, only the trades it has reached exist.
async fn trades_by_id(
    state: web::Data<ReplayState>,
    q: Query,
    endpoint: &str,
    cost: u32,
    stream: &str,
    rows_of: fn(&SymbolData) -> &[TradeRow],
) -> HttpResponse {
    let weight = match state.admit(endpoint, cost).await {
        Ok(w) => w,
        Err(refused) => return refused,
    };
    let result: Result<String, ApiError> = (|| {
        let (sym, data) = symbol(&state, &q)?;
        let limit = limit(&q, 500, 1000)?;
        let all = rows_of(data);
        let live = state.stream_position(&format!("{}@{stream}", sym.to_ascii_lowercase()));
        let rows = &all[..live.map_or(all.len(), |p| p.min(all.len()))];
        let selected = match optional_i64(&q, "fromId")? {
            Some(from) => {
                let lo = rows.partition_point(|r| r.id < from);
                &rows[lo..rows.len().min(lo + limit)]
            }
            None => page(rows, |r| r.time, optional_i64(&q, "startTime")?, optional_i64(&q, "endTime")?, limit),
        };
        Ok(json_array(selected.iter().map(|r| r.raw.get())))
    })();
    match result {
        Ok(body) => ok_json(body, weight),
        Err(e) => e.response(weight),
    }
}

pub(super) async fn depth(state: web::Data<ReplayState>, q: Query) -> HttpResponse {
    let requested = q.get("limit").and_then(|l| l.parse::<i64>().ok()).unwrap_or(100);
    let cost = match requested {
        ..=100 => 5,
        101..=500 => 25,
        501..=1000 => 50,
        _ => 250,
    };
    let weight = match state.admit("depth", cost).await {
        Ok(w) => w,
        Err(refused) => return refused,
    };
    let result: Result<String, ApiError> = (|| {
        let (sym, _) = symbol(&state, &q)?;
        let limit = limit(&q, 100, 5000)?;
        state.gate.served_depth(&sym, limit);
        let book = state
            .data
            .book_at(&sym, state.depth_position(&sym))
            .ok_or_else(|| ApiError::bad(-1121, format!("The replay has no depth snapshot recorded for {sym}.")))?
            .map_err(|e| ApiError {
                status: 500,
                code: -1000,
                msg: format!("recorded depth data is unreadable: {e}"),
            })?;
        let side = |levels: &[PriceLevel]| {
            let cut: Vec<[String; 2]> =
                levels.iter().take(limit).map(|(p, q)| [p.to_string(), q.to_string()]).collect();
            serde_json::to_string(&cut).expect("strings serialize")
        };
        Ok(format!(
            "{{\"lastUpdateId\":{},\"bids\":{},\"asks\":{}}}",
            book.last_update_id,
            side(&book.bids),
            side(&book.asks)
        ))
    })();
    match result {
        Ok(body) => ok_json(body, weight),
        Err(e) => e.response(weight),
    }
}

pub(super) async fn exchange_info(state: web::Data<ReplayState>) -> HttpResponse {
    let weight = match state.admit("exchangeInfo", 20).await {
        Ok(w) => w,
        Err(refused) => return refused,
    };
    let symbols: Vec<serde_json::Value> = state
        .data
        .symbols
        .iter()
        .map(|(s, d)| {
            serde_json::json!({
                "symbol": s,
                "status": "TRADING",
                "baseAsset": d.base,
                "quoteAsset": d.quote,
            })
        })
        .collect();
    let body = serde_json::json!({
        "timezone": "UTC",
        "serverTime": now_ms(),
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": super::WEIGHT_LIMIT_1M},
        ],
        "exchangeFilters": [],
        "symbols": symbols,
    });
    ok_json(body.to_string(), weight)
}

pub(super) async fn ping(state: web::Data<ReplayState>) -> HttpResponse {
    match state.admit("ping", 1).await {
        Ok(w) => ok_json("{}".into(), w),
        Err(refused) => refused,
    }
}

pub(super) async fn time(state: web::Data<ReplayState>) -> HttpResponse {
    match state.admit("time", 1).await {
        Ok(w) => ok_json(format!("{{\"serverTime\":{}}}", now_ms()), w),
        Err(refused) => refused,
    }
}

/// `GET /replay/stats`: what clients have asked so far (not a Binance endpoint; for tests).
pub(super) async fn stats(state: web::Data<ReplayState>) -> HttpResponse {
    HttpResponse::Ok().json(state.gate.stats())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_follows_binance_rules() {
        let rows: Vec<i64> = (0..10).map(|i| i * 10).collect();
        let k = |r: &i64| *r;
        assert_eq!(page(&rows, k, Some(15), None, 3), &[20, 30, 40]);
        assert_eq!(page(&rows, k, Some(15), Some(30), 10), &[20, 30]);
        assert_eq!(page(&rows, k, None, Some(45), 2), &[30, 40]);
        assert_eq!(page(&rows, k, None, None, 2), &[80, 90]);
        assert!(page(&rows, k, Some(95), None, 5).is_empty());
        assert!(page(&rows, k, Some(50), Some(40), 5).is_empty());
    }

    #[test]
    fn decimals_print_like_binance() {
        assert_eq!(binance_decimal("58720.45".parse().unwrap()), "58720.45000000");
        assert_eq!(binance_decimal("0.000000001".parse().unwrap()), "0.000000001");
    }
}
