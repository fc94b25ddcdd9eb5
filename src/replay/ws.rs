//! Binance WebSocket endpoints over recorded captures: `/ws/<stream>` (raw payloads) and
//! `/stream?streams=a/b` (combined `{"stream","data"}` wrappers), paced like the recording.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};

use super::data::{SymbolData, WsRow};
use super::rest::ApiError;
use super::{ConnectionFault, ReplayState};
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
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => break,
                    msg = incoming.recv() => match msg {
                        Some(Ok(Message::Ping(p))) => { if session.pong(&p).await.is_err() { return; } }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                        Some(Ok(_)) => {}
                    },
                }
            }
        }
        if SymbolData::is_depth(&row) {
            if let Ok(update) = DepthUpdate::from_ws(row.data().as_bytes()) {
                state.set_depth_position(&update.symbol, update.final_update_id);
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
        if state.faults.bad_ws_frames.contains(&sent) {
            let cut = text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i);
            tracing::info!(streams = %key, at = sent, "Fault: a malformed frame sent.");
            if session.text(text[..cut].to_owned()).await.is_err() {
                return;
            }
        }
        sent += 1;
        if session.text(text.to_owned()).await.is_err() {
            return;
        }
    }
    let _ = session
        .close(Some(CloseReason { code: CloseCode::Normal, description: Some("end of recording".into()) }))
        .await;
}
