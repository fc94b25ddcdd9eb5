//! The control-plane endpoints of the admin server, under `/api/v1`: workflows (create, list,
//! get, stop), `ping` and the `events` stream, behind the token check of [`super::auth`]. Every error is JSON `{"error", "reason"}` with a 4xx status for what the
//! caller must fix; 503 only when queue-manager itself cannot answer right now.

use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::Access;
use super::AdminState;
use crate::bus::{topics, OutRecord};
use crate::model::{unix_seconds_now, Command, EventStatus, QueueControl};
use crate::store::WorkflowQuery;
use crate::workflow::manager::{ManagerError, ManagerHandle};
use crate::workflow::{Status, WorkflowRequest};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Workflows per page at most.
const MAX_PAGE: u32 = 500;

pub fn error(status: actix_web::http::StatusCode, error: &str, reason: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": error, "reason": reason.into() }))
}

fn bad_request(reason: impl Into<String>) -> HttpResponse {
    error(actix_web::http::StatusCode::BAD_REQUEST, "bad request", reason)
}

fn manager(state: &AdminState) -> Result<&ManagerHandle, HttpResponse> {
    state.manager.as_ref().ok_or_else(|| {
        error(actix_web::http::StatusCode::NOT_FOUND, "not found", "queue-manager is not enabled on this node")
    })
}

fn manager_error(e: ManagerError) -> HttpResponse {
    use actix_web::http::StatusCode;
    match &e {
        ManagerError::Invalid(problems) => HttpResponse::UnprocessableEntity().json(serde_json::json!({
            "error": "invalid workflow",
            "reason": problems.to_string(),
            "problems": problems.0,
        })),
        ManagerError::NotFound(_) => error(StatusCode::NOT_FOUND, "not found", e.to_string()),
        ManagerError::Ended { .. } => error(StatusCode::CONFLICT, "conflict", e.to_string()),
        ManagerError::Unavailable(_) => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()),
    }
}

/// `POST /api/v1/workflows`: 201 with the new workflow.
async fn create(state: web::Data<AdminState>, body: web::Json<WorkflowRequest>) -> HttpResponse {
    let manager = match manager(&state) {
        Ok(m) => m,
        Err(r) => return r,
    };
    match manager.submit(body.into_inner()).await {
        Ok(wf) => HttpResponse::Created().json(wf),
        Err(e) => manager_error(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    limit: Option<u32>,
    offset: Option<u64>,
}

/// `GET /api/v1/workflows?status=running&limit=50&offset=0`: newest first.
async fn list(state: web::Data<AdminState>, query: web::Query<ListQuery>) -> HttpResponse {
    let status = match query.status.as_deref().map(str::parse::<Status>).transpose() {
        Ok(s) => s,
        Err(reason) => return bad_request(format!("status: {reason}")),
    };
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return bad_request(format!("limit: {limit} is not in 1..={MAX_PAGE}"));
    }
    let query = WorkflowQuery { status, limit, offset: query.offset.unwrap_or(0) };
    match state.store.workflows(&query).await {
        Ok(page) => HttpResponse::Ok().json(page),
        Err(e) => error(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()),
    }
}

/// `GET /api/v1/workflows/{id}`.
async fn get(state: web::Data<AdminState>, id: web::Path<String>) -> HttpResponse {
    match state.store.workflow(&id).await {
        Ok(Some(wf)) => HttpResponse::Ok().json(wf),
        Ok(None) => manager_error(ManagerError::NotFound(id.into_inner())),
        Err(e) => error(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()),
    }
}

/// `POST /api/v1/workflows/{id}/stop`: 200 with the stopped workflow, 409 when it had ended.
async fn stop(state: web::Data<AdminState>, id: web::Path<String>) -> HttpResponse {
    let manager = match manager(&state) {
        Ok(m) => m,
        Err(r) => return r,
    };
    match manager.stop(&id).await {
        Ok(wf) => HttpResponse::Ok().json(wf),
        Err(e) => manager_error(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PingRequest {
    /// A worker target, e.g. `dummy-service`, `loader-producer`.
    target: String,
    /// Default `*`: every workflow's workers of that target.
    #[serde(default)]
    queue_id: Option<String>,
    /// How long to collect pongs, ms (default 2000, at most 30000).
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// `POST /api/v1/ping`: sends a `ping` on `queue-control` and collects the `pong`s that answer it
/// within the timeout, each with its round-trip time.
async fn ping(state: web::Data<AdminState>, body: web::Json<PingRequest>) -> HttpResponse {
    let manager = match manager(&state) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let req = body.into_inner();
    if crate::workers::Target::parse(&req.target).is_none() {
        let names: Vec<&str> = crate::workers::Target::ALL.iter().map(|t| t.name()).collect();
        return bad_request(format!("target {:?} is unknown: one of {}", req.target, names.join(", ")));
    }
    let timeout = req.timeout_ms.unwrap_or(2000);
    if !(1..=30_000).contains(&timeout) {
        return bad_request(format!("timeout_ms: {timeout} is not in 1..=30000"));
    }
    let ping_id = format!("ping-{:x}", rand_id());
    let mut cmd = QueueControl::new(Command::Ping, req.queue_id.clone().unwrap_or_else(|| "*".into()));
    cmd.target = Some(req.target.clone());
    cmd.extra.insert("ping_id".into(), ping_id.clone().into());
    let mut events = manager.events();
    let sent = std::time::Instant::now();
    let payload = serde_json::to_vec(&cmd).unwrap_or_default();
    if let Err(e) =
        state.bus.publish(topics::QUEUE_CONTROL, vec![OutRecord::keyed(cmd.queue_id.as_bytes(), payload)]).await
    {
        return error(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string());
    }
    let mut pongs = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout);
    loop {
        let ev = match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(ev)) => ev,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(_)) | Err(_) => break,
        };
        if ev.status == EventStatus::Pong && ev.extra.get("ping_id").and_then(|v| v.as_str()) == Some(&ping_id) {
            pongs.push(serde_json::json!({
                "producer": ev.producer,
                "queue_id": ev.queue_id,
                "rtt_ms": sent.elapsed().as_secs_f64() * 1000.0,
                "message": ev.message,
            }));
            // One pong is what a ping of a single worker waits for; more may follow for a while.
            if req.queue_id.is_some() {
                break;
            }
        }
    }
    HttpResponse::Ok().json(serde_json::json!({ "target": req.target, "ping_id": ping_id, "pongs": pongs }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    queue_id: Option<String>,
}

/// How often an idle event stream sends a comment, so that proxies keep it open.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// `GET /api/v1/events[?queue_id=…]`: `queue-events` as server-sent events (`event: <status>`,
/// `data: <the event's JSON>`), from now on, for as long as the client listens.
async fn events(state: web::Data<AdminState>, query: web::Query<EventsQuery>) -> HttpResponse {
    let manager = match manager(&state) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let rx = manager.events();
    let filter = query.into_inner().queue_id;
    let stream = futures_util::stream::unfold((rx, filter), |(mut rx, filter)| async move {
        loop {
            let frame = match tokio::time::timeout(KEEPALIVE, rx.recv()).await {
                Err(_) => ": keepalive\n\n".to_owned(),
                Ok(Ok(ev)) if filter.as_ref().is_none_or(|q| *q == ev.queue_id) => {
                    let status = serde_json::to_value(&ev.status).ok();
                    let name = status.as_ref().and_then(|v| v.as_str()).unwrap_or("event").to_owned();
                    format!("event: {name}\ndata: {}\n\n", serde_json::to_string(&ev).unwrap_or_default())
                }
                Ok(Ok(_)) => continue,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => format!(": {n} events missed\n\n"),
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
            };
            return Some((Ok::<_, actix_web::Error>(web::Bytes::from(frame)), (rx, filter)));
        }
    });
    HttpResponse::Ok().content_type("text/event-stream").insert_header(("cache-control", "no-cache")).streaming(stream)
}

fn rand_id() -> u64 {
    let nanos = (unix_seconds_now() * 1e9) as u64;
    nanos ^ (std::process::id() as u64).rotate_left(32)
}

/// JSON bodies: at most [`MAX_BODY`]; malformed or unknown fields are a 400 with serde's reason.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(MAX_BODY).error_handler(|err, _req| {
        let response = match &err {
            actix_web::error::JsonPayloadError::Overflow { .. }
            | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => error(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload too large",
                format!("request bodies are limited to {MAX_BODY} bytes"),
            ),
            actix_web::error::JsonPayloadError::ContentType => error(
                actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported media type",
                "send the body as JSON with `Content-Type: application/json`",
            ),
            other => bad_request(other.to_string()),
        };
        actix_web::error::InternalError::from_response(err, response).into()
    })
}

/// Query strings: a malformed one is a 400 with the reason.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let response = bad_request(err.to_string());
        actix_web::error::InternalError::from_response(err, response).into()
    })
}

/// Checks the caller before the request's body is even read: GET and HEAD are reads, the rest
/// writes (see [`Auth`]).
async fn authorize(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let access = match *req.method() {
        Method::GET | Method::HEAD => Access::Read,
        _ => Access::Write,
    };
    let verdict = match req.app_data::<web::Data<AdminState>>() {
        Some(state) => state.auth.check(req.request(), access),
        None => Ok(()),
    };
    match verdict {
        Ok(()) => next.call(req).await.map(ServiceResponse::map_into_boxed_body),
        Err(refused) => Ok(req.into_response(refused)),
    }
}

/// `/api/v1/…`: `extra` adds the endpoints defined elsewhere (the tree, lag) under the same checks.
pub fn scope(
    extra: fn(&mut web::ServiceConfig),
) -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::scope("/api/v1")
        .wrap(actix_web::middleware::from_fn(authorize))
        .app_data(json_config())
        .app_data(query_config())
        .configure(extra)
        .route("/workflows", web::post().to(create))
        .route("/workflows", web::get().to(list))
        .route("/workflows/{id}", web::get().to(get))
        .route("/workflows/{id}/stop", web::post().to(stop))
        .route("/ping", web::post().to(ping))
        .route("/events", web::get().to(events))
}
