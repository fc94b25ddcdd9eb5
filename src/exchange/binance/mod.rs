//! Binance spot: the REST client used by loaders.

mod rest;

pub use rest::{BinanceRest, ExchangeError, DEFAULT_REST_URL};
