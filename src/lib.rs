//! StreamForge: Binance market data through a bus into a store, run by supervised actors.
//!
//! Module map:
//! - [`model`]: normalized records (candle, trade, depth, snapshot), their bus encoding, candles
//!   derived from shorter ones (`model::derive`) and the `queue-control` / `queue-events` protocol.
//! - [`bus`]: the bus trait (topics, partitions, consumer groups) and the in-process bus.
//! - [`store`]: the store trait (idempotent upserts, high-water marks, workflows, confirmed gaps), its
//!   backends, candles derived from stored ones, and holes repaired from the exchange.
//! - [`exchange`]: the Binance REST client used by loaders, Binance's data archive, the WebSocket
//!   client and the local order book.
//! - [`graph`]: correlation graphs of many assets from aligned candles (graph builder).
//! - [`replay`]: a Binance-compatible HTTP/WebSocket server over recorded data, with Binance's archive
//!   layout (tests, offline demo).
//! - [`actors`]: loader, connector, stream, graph, gap verifier, candle-deriver, trainer and dummy actors, and the
//!   telemetry they emit.
//! - [`monitor`]: the live dashboard's boards (tape, 1m candles, verified book) and the actor and
//!   clients that feed and read them.
//! - [`workflow`]: workflows (requests, statuses, steps, history) and queue-manager, which runs them.
//! - [`workers`]: the worker kinds by `target` name, the worker host that starts them on command, and
//!   the launchers that place them (embedded, or Kubernetes Jobs with feature `kubernetes`).
//! - [`trainer`]: GNN training data, walk-forward splits, metrics (and the model with `trainer`).
//! - [`supervision`]: supervisors that restart failed actors.
//! - [`admin`]: the admin HTTP server (`/healthz`, `/readyz`, `/metrics`, the `/api/v1` workflow API, the
//!   dashboard at `/ui`) and metrics.
//! - [`http`]: how the HTTP servers (admin, replay) are run.
//! - [`log`]: structured logging setup.
//! - [`config`]: configuration as validated data (TOML + environment).
//! - [`app`]: the commands the binary runs (`run`, `node`, `dummy`, `graph`, `derive`, `repair`, `train`, `book`,
//!   `ctl`, `replay-server`, `bench`), each with its arguments and `run`; [`app::args`] what they share.

pub mod actors;
pub mod admin;
pub mod app;
pub mod bus;
pub mod config;
pub mod exchange;
pub mod graph;
pub mod http;
pub mod log;
pub mod model;
pub mod monitor;
pub mod replay;
pub mod store;
pub mod supervision;
pub mod trainer;
pub mod workers;
pub mod workflow;
