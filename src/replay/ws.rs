//! Binance WebSocket endpoints over recorded captures: `/ws/<stream>` (raw payloads) and
//! `/stream?streams=a/b` (combined `{"stream","data"}` wrappers), paced like the recording.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};

use super::data::{SymbolData, WsRow};
use super::rest::ApiError;
use super::{ConnectionFault, HostileFrame, ReplayState};
use crate::model::DepthUpdate;

#[derive(Clone, Copy)]
enum Framing {
    Raw,
    Combined,
}

/// The recorded messages of `streams`, merged in receive order.
fn select(state: &ReplayState, streams: &[String]) -> Vec<WsRow> {
    let mut rows: Vec<WsRow> = Vec::new();
    for stream in streams {
        let symbol = stream.split('@').next().unwrap_or_default().to_ascii_uppercase();
        if let Some(d) = state.data.symbols.get(&symbol) {
            rows.extend(d.ws.iter().filter(|r| &*r.stream == stream).cloned());
            rows.extend(d.kline_rows(&symbol, stream));
        }
    }
    rows.sort_by_key(|r| r.recv_ns);
    rows
}

fn recorded_streams(state: &ReplayState) -> Vec<String> {
    let mut names: Vec<String> = state
        .data
        .symbols
        .iter()
        .flat_map(|(symbol, d)| d.ws.iter().map(|r| r.stream.to_string()).chain(d.kline_streams(symbol)))
        .collect();
    names.sort();
    names.dedup();
    names
}

pub(super) async fn single(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<ReplayState>,
    path: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    serve(req, body, state, vec![path.into_inner()], Framing::Raw)
}

pub(super) async fn combined(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<ReplayState>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, actix_web::Error> {
    let streams: Vec<String> = q
        .get("streams")
        .map(|s| s.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    serve(req, body, state, streams, Framing::Combined)
}

fn serve(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<ReplayState>,
    streams: Vec<String>,
    framing: Framing,
) -> Result<HttpResponse, actix_web::Error> {
    if streams.is_empty() || streams.len() > 1024 {
        return Ok(ApiError::bad(
            -1100,
            "Give 1 to 1024 streams, e.g. /stream?streams=ethusdt@trade/ethusdt@depth@100ms",
        )
        .response(0));
    }
    let rows = select(&state, &streams);
    if rows.is_empty() {
        let msg =
            format!("The replay has no recording of {streams:?}; recorded streams: {:?}.", recorded_streams(&state));
        return Ok(ApiError::bad(-1121, msg).response(0));
    }
    // The stream is live: a connection starts where the recording has got to, not at its start.
    let key = streams.join("/");
    let start = state.stream_position(&key).unwrap_or(0).min(rows.len());
    let (response, session, incoming) = actix_ws::handle(&req, body)?;
    actix_web::rt::spawn(replay(rows, start, key, framing, state, session, incoming));
    Ok(response)
}

/// Sends `rows` at the recorded pace divided by the server's speed (0 = as fast as the client
/// reads), answering pings, until the recording ends or the client leaves. Depth events move the
/// server's book forward (REST snapshots follow it); those the faults name are not sent.
async fn replay(
    rows: Vec<WsRow>,
    start_at: usize,
    key: String,
    framing: Framing,
    state: web::Data<ReplayState>,
    mut session: actix_ws::Session,
    mut incoming: actix_ws::MessageStream,
) {
    let speed = state.speed;
    let (mut depth_events, mut sent) = (0u64, 0u64);
    // A depth event held back by a `Late` fault: (symbol, text).
    let mut late: Option<(String, String)> = None;
    let start = tokio::time::Instant::now();
    let t0 = rows.get(start_at).map_or(0, |r| r.recv_ns);
    for (i, row) in rows.into_iter().enumerate().skip(start_at) {
        if let Some(fault) = state.connection_fault() {
            // What happens while the client is away is never sent to anyone.
            state.set_stream_position(&key, i + state.faults.ws_drop_skips as usize);
            tracing::info!(streams = %key, at = i, ?fault, "Fault: WebSocket connection taken away.");
            if fault == ConnectionFault::Silence {
                // Read (and ignore) whatever the client sends until it gives up and leaves.
                while let Some(Ok(_)) = incoming.recv().await {}
            }
            return;
        }
        state.set_stream_position(&key, i + 1);
        if speed > 0.0 {
            let due = start + Duration::from_nanos(((row.recv_ns - t0).max(0) as f64 / speed) as u64);
            if !answer_pings_until(due, &mut session, &mut incoming).await {
                return;
            }
        }
        let mut depth_symbol = None;
        if SymbolData::is_depth(&row) {
            if let Ok(update) = DepthUpdate::from_ws(row.data().as_bytes()) {
                state.set_depth_position(&update.symbol, update.final_update_id);
                depth_symbol = Some(update.symbol);
            }
            depth_events += 1;
            if state.faults.drop_depth_events.contains(&(depth_events - 1)) {
                tracing::info!(stream = %row.stream, event = depth_events - 1, "Fault: depth event not sent.");
                continue;
            }
        }
        let text = match framing {
            Framing::Raw => row.data(),
            Framing::Combined => row.combined(),
        };
        let mut hold = false;
        for (_, fault) in state.faults.hostile_ws.iter().filter(|(at, _)| *at == sent) {
            tracing::info!(streams = %key, at = sent, ?fault, "Fault: a hostile frame.");
            let bad = match fault {
                HostileFrame::Truncated => {
                    let cut = text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i);
                    text[..cut].to_owned()
                }
                HostileFrame::Garbage => "\u{1}<html>502 Bad Gateway}{".to_owned(),
                HostileFrame::Binary => {
                    if session.binary(vec![0xde, 0xad, 0xbe, 0xef]).await.is_err() {
                        return;
                    }
                    continue;
                }
                HostileFrame::Huge(bytes) => format!("{{\"filler\":\"{}\"}}", "x".repeat(*bytes)),
                HostileFrame::Unexpected => {
                    let data = r#"{"e":"surprise","E":"soon"}"#;
                    match framing {
                        Framing::Raw => data.to_owned(),
                        Framing::Combined => format!("{{\"stream\":\"{}\",\"data\":{data}}}", row.stream),
                    }
                }
                HostileFrame::Late => {
                    hold = depth_symbol.is_some();
                    continue;
                }
                HostileFrame::Stall(pause) => {
                    if !answer_pings_until(tokio::time::Instant::now() + *pause, &mut session, &mut incoming).await {
                        return;
                    }
                    continue;
                }
            };
            if session.text(bad).await.is_err() {
                return;
            }
        }
        sent += 1;
        if hold {
            late = depth_symbol.map(|s| (s, text.to_owned()));
            continue;
        }
        if session.text(text.to_owned()).await.is_err() {
            return;
        }
        if let Some((symbol, held)) = late.take_if(|(s, _)| depth_symbol.as_ref() == Some(s)) {
            tracing::info!(%symbol, "Fault: a depth event sent after the next one.");
            if session.text(held).await.is_err() {
                return;
            }
        }
    }
    let _ = session
        .close(Some(CloseReason { code: CloseCode::Normal, description: Some("end of recording".into()) }))
        .await;
}

/// Waits until `due`, answering the client's pings; false once the client has gone.
async fn answer_pings_until(
    due: tokio::time::Instant,
    session: &mut actix_ws::Session,
    incoming: &mut actix_ws::MessageStream,
) -> bool {
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(due) => return true,
            msg = incoming.recv() => match msg {
                Some(Ok(Message::Ping(p))) => { if session.pong(&p).await.is_err() { return false; } }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return false,
                Some(Ok(_)) => {}
            },
        }
    }
}
