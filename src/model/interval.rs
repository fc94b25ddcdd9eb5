//! Kline intervals as Binance names them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ParseError;

/// A Binance kline interval (`1s` … `1M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval {
    name: &'static str,
    millis: i64,
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Every interval Binance serves. `1M` is a calendar month; its length here is nominal (31 days)
/// and is only used as an upper bound for paging, never to invent candles.
const ALL: [Interval; 16] = [
    Interval { name: "1s", millis: 1_000 },
    Interval { name: "1m", millis: MINUTE },
    Interval { name: "3m", millis: 3 * MINUTE },
    Interval { name: "5m", millis: 5 * MINUTE },
    Interval { name: "15m", millis: 15 * MINUTE },
    Interval { name: "30m", millis: 30 * MINUTE },
    Interval { name: "1h", millis: HOUR },
    Interval { name: "2h", millis: 2 * HOUR },
    Interval { name: "4h", millis: 4 * HOUR },
    Interval { name: "6h", millis: 6 * HOUR },
    Interval { name: "8h", millis: 8 * HOUR },
    Interval { name: "12h", millis: 12 * HOUR },
    Interval { name: "1d", millis: DAY },
    Interval { name: "3d", millis: 3 * DAY },
    Interval { name: "1w", millis: 7 * DAY },
    Interval { name: "1M", millis: 31 * DAY },
];

impl Interval {
    pub const S1: Interval = ALL[0];

    pub fn as_str(&self) -> &'static str {
        self.name
    }

    /// Length in milliseconds (nominal for `1M`).
    pub fn millis(&self) -> i64 {
        self.millis
    }

    /// Whether consecutive candles are exactly `millis()` apart (not true of calendar months).
    pub fn is_fixed(&self) -> bool {
        self.name != "1M"
    }
}

impl FromStr for Interval {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        ALL.iter().copied().find(|i| i.name == s).ok_or_else(|| ParseError::Interval(s.to_owned()))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_binance_interval_and_rejects_others() {
        assert_eq!("1m".parse::<Interval>().unwrap().millis(), 60_000);
        assert_eq!("1s".parse::<Interval>().unwrap().millis(), 1_000);
        assert_eq!("1M".parse::<Interval>().unwrap().as_str(), "1M");
        assert!("2m".parse::<Interval>().is_err());
        assert!("".parse::<Interval>().is_err());
    }
}
