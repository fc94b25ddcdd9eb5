//! Exchanges the loaders read from. Binance is the one there is.

pub mod binance;
