//! The control-plane endpoints of the admin server, under `/api/v1`: workflows (create, list,
//! get, stop), `ping` and the `events` stream, behind the token check of [`super::auth`], and
//! their OpenAPI document ([`ApiDoc`], served at `/openapi.json`). Every error is JSON
//! `{"error", "reason"}` with a 4xx status for what the caller must fix; 503 only when
//! queue-manager itself cannot answer right now.

use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::auth::Access;
use super::AdminState;
use crate::model::{unix_seconds_now, Command, EventStatus, QueueControl};
use crate::store::{WorkflowPage, WorkflowQuery};
use crate::workflow::manager::ManagerError;
use crate::workflow::{Status, Workflow, WorkflowRequest};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Workflows per page at most.
const MAX_PAGE: u32 = 500;

/// Every error answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What kind of error, e.g. `bad request`, `invalid workflow`, `unauthorized`.
    pub error: String,
    /// What to fix, in words.
    pub reason: String,
    /// For an invalid workflow: every problem, one each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

pub fn error(status: actix_web::http::StatusCode, error: &str, reason: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody { error: error.into(), reason: reason.into(), problems: Vec::new() })
}

fn bad_request(reason: impl Into<String>) -> HttpResponse {
    error(actix_web::http::StatusCode::BAD_REQUEST, "bad request", reason)
}

fn not_enabled() -> HttpResponse {
    error(actix_web::http::StatusCode::NOT_FOUND, "not found", "queue-manager is not enabled on this node")
}

fn manager_error(e: ManagerError) -> HttpResponse {
    use actix_web::http::StatusCode;
    match &e {
        ManagerError::Invalid(problems) => HttpResponse::UnprocessableEntity().json(ErrorBody {
            error: "invalid workflow".into(),
            reason: problems.to_string(),
            problems: problems.0.clone(),
        }),
        ManagerError::NotFound(_) => error(StatusCode::NOT_FOUND, "not found", e.to_string()),
        ManagerError::Ended { .. } => error(StatusCode::CONFLICT, "conflict", e.to_string()),
        ManagerError::Unavailable(_) => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()),
    }
}

/// Creates a workflow: its record, then the `start` commands of its first steps.
#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows", request_body = WorkflowRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "created and started", body = Workflow),
        (status = 400, description = "malformed JSON or unknown fields", body = ErrorBody),
        (status = 401, description = "no or a wrong bearer token", body = ErrorBody),
        (status = 403, description = "a valid identity without the role (admin.oidc.role)", body = ErrorBody),
        (status = 413, description = "body over 64 KiB", body = ErrorBody),
        (status = 415, description = "not JSON", body = ErrorBody),
        (status = 422, description = "fields that are wrong, each problem listed", body = ErrorBody),
        (status = 503, description = "queue-manager, the store or exchangeInfo cannot answer now", body = ErrorBody)))]
async fn create(state: web::Data<AdminState>, body: web::Json<WorkflowRequest>) -> HttpResponse {
    let Some(manager) = state.manager.as_ref() else { return not_enabled() };
    match manager.submit(body.into_inner()).await {
        Ok(wf) => HttpResponse::Created().json(wf),
        Err(e) => manager_error(e),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only workflows of this status.
    status: Option<Status>,
    /// Workflows per page (1-500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Workflows to skip.
    offset: Option<u64>,
}

/// Workflows, newest first.
#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows", params(ListQuery),
    responses((status = 200, description = "one page", body = WorkflowPage),
        (status = 400, description = "a bad query string", body = ErrorBody),
        (status = 503, description = "the store cannot answer now", body = ErrorBody)))]
async fn list(state: web::Data<AdminState>, query: web::Query<ListQuery>) -> HttpResponse {
    let status = query.status;
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

/// One workflow: its request, steps with tasks, history and owner.
#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = String, Path, description = "queue id")),
    responses((status = 200, body = Workflow), (status = 404, description = "no such workflow", body = ErrorBody),
        (status = 503, description = "the store cannot answer now", body = ErrorBody)))]
async fn get(state: web::Data<AdminState>, id: web::Path<String>) -> HttpResponse {
    match state.store.workflow(&id).await {
        Ok(Some(wf)) => HttpResponse::Ok().json(wf),
        Ok(None) => manager_error(ManagerError::NotFound(id.into_inner())),
        Err(e) => error(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()),
    }
}

/// Stops a workflow and its workers.
#[utoipa::path(post, path = "/api/v1/workflows/{id}/stop", tag = "workflows", params(("id" = String, Path, description = "queue id")),
    security(("bearer" = [])),
    responses((status = 200, description = "stopped", body = Workflow),
        (status = 401, description = "no or a wrong bearer token", body = ErrorBody),
        (status = 403, description = "a valid identity without the role (admin.oidc.role)", body = ErrorBody),
        (status = 404, description = "no such workflow", body = ErrorBody),
        (status = 409, description = "it had ended already", body = ErrorBody),
        (status = 503, description = "queue-manager cannot answer now", body = ErrorBody)))]
async fn stop(state: web::Data<AdminState>, id: web::Path<String>) -> HttpResponse {
    let Some(manager) = state.manager.as_ref() else { return not_enabled() };
    match manager.stop(&id).await {
        Ok(wf) => HttpResponse::Ok().json(wf),
        Err(e) => manager_error(e),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PingRequest {
    /// A worker target, e.g. `dummy-service`, `loader-producer`.
    #[schema(example = "dummy-service")]
    target: String,
    /// Default `*`: every workflow's workers of that target (then pongs are collected for the
    /// whole timeout; with a queue id the first one ends the wait).
    #[serde(default)]
    queue_id: Option<String>,
    /// How long to wait for pongs, ms (default 2000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 5000)]
    timeout_ms: Option<u64>,
}

/// One answer to a ping.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Pong {
    pub producer: String,
    pub queue_id: String,
    /// From the ping's publication to the pong's arrival here, ms.
    pub rtt_ms: f64,
    pub message: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PingAnswer {
    pub target: String,
    pub ping_id: String,
    pub pongs: Vec<Pong>,
}

/// Longest a ping may wait for pongs.
const MAX_PING_WAIT_MS: u64 = 5_000;

/// Sends a `ping` on `queue-control` and collects the `pong`s that answer it within the timeout,
/// each with its round-trip time.
#[utoipa::path(post, path = "/api/v1/ping", tag = "workers", request_body = PingRequest, security(("bearer" = [])),
    responses((status = 200, description = "the pongs that came in time (none when nobody answered)", body = PingAnswer),
        (status = 400, description = "an unknown target, a bad timeout, malformed JSON", body = ErrorBody),
        (status = 401, description = "no or a wrong bearer token", body = ErrorBody),
        (status = 403, description = "a valid identity without the role (admin.oidc.role)", body = ErrorBody),
        (status = 413, description = "body over 64 KiB", body = ErrorBody),
        (status = 415, description = "not JSON", body = ErrorBody),
        (status = 503, description = "the bus cannot take the ping now", body = ErrorBody)))]
async fn ping(state: web::Data<AdminState>, body: web::Json<PingRequest>) -> HttpResponse {
    let Some(manager) = state.manager.as_ref() else { return not_enabled() };
    let req = body.into_inner();
    if crate::workers::Target::parse(&req.target).is_none() {
        let names: Vec<&str> = crate::workers::Target::ALL.iter().map(|t| t.name()).collect();
        return bad_request(format!("target {:?} is unknown: one of {}", req.target, names.join(", ")));
    }
    let timeout = req.timeout_ms.unwrap_or(2000);
    if !(1..=MAX_PING_WAIT_MS).contains(&timeout) {
        return bad_request(format!("timeout_ms: {timeout} is not in 1..={MAX_PING_WAIT_MS}"));
    }
    let ping_id = format!("ping-{:x}", rand_id());
    let mut cmd = QueueControl::new(Command::Ping, req.queue_id.clone().unwrap_or_else(|| "*".into()));
    cmd.target = Some(req.target.clone());
    cmd.extra.insert("ping_id".into(), ping_id.clone().into());
    let mut events = manager.events();
    let sent = std::time::Instant::now();
    if let Err(e) = crate::workers::launch::send(&state.bus, &cmd).await {
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
            pongs.push(Pong {
                producer: ev.producer,
                queue_id: ev.queue_id,
                rtt_ms: sent.elapsed().as_secs_f64() * 1000.0,
                message: ev.message,
            });
            // One pong is what a ping of a single worker waits for; more may follow for a while.
            if req.queue_id.is_some() {
                break;
            }
        }
    }
    HttpResponse::Ok().json(PingAnswer { target: req.target, ping_id, pongs })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Only the events of this workflow.
    queue_id: Option<String>,
}

/// How often an idle event stream sends a comment, so that proxies keep it open.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// `queue-events` as server-sent events (`event: <status>`, `data: <the event's JSON>`), from now
/// on, for as long as the client listens.
#[utoipa::path(get, path = "/api/v1/events", tag = "workers", params(EventsQuery),
    responses((status = 200, description = "an endless text/event-stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "a bad query string", body = ErrorBody)))]
async fn events(state: web::Data<AdminState>, query: web::Query<EventsQuery>) -> HttpResponse {
    let Some(manager) = state.manager.as_ref() else { return not_enabled() };
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

/// The OpenAPI 3 document of `/api/v1`, generated from the handlers and types above.
#[derive(OpenApi)]
#[openapi(
    info(title = "StreamForge admin API", description = "Workflows (queue-manager), pings, queue-events and the live monitor of a StreamForge node."),
    paths(create, list, get, stop, ping, events, super::server::supervision, super::server::lag,
        super::ui::monitor, super::ui::board, super::ui::stream),
    components(schemas(ErrorBody, Pong, PingAnswer, WorkflowRequest, Workflow, WorkflowPage)),
    modifiers(&BearerAuth),
    tags((name = "workflows", description = "queue-manager's workflows"), (name = "workers", description = "pings and events"),
        (name = "node", description = "the node's tree and lag"),
        (name = "monitor", description = "the dashboard's boards and their event stream"))
)]
pub struct ApiDoc;

/// The `bearer` security scheme the mutating endpoints name (`admin.token`).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
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
    let auth = req.app_data::<web::Data<AdminState>>().map(|state| state.auth.clone());
    let verdict = match auth {
        Some(auth) => auth.check(req.request(), access).await,
        None => Ok(()),
    };
    match verdict {
        Ok(()) => next.call(req).await.map(ServiceResponse::map_into_boxed_body),
        Err(refusal) => Ok(req.into_response(super::auth::refuse(refusal))),
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
