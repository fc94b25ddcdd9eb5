//! Exact decimals for prices and quantities: Binance sends them as strings and we keep their value.

use std::str::FromStr;

pub use rust_decimal::Decimal;

use super::ParseError;

/// One side of a book level: `[price, quantity]`, as Binance sends it.
pub type PriceLevel = (Decimal, Decimal);

/// Parses a Binance decimal string (`"58720.45000000"`), keeping its scale.
pub(crate) fn parse_decimal(field: &'static str, value: &str) -> Result<Decimal, ParseError> {
    Decimal::from_str(value).map_err(|_| ParseError::Decimal { field, value: value.to_owned() })
}

/// Turns a JSON number (as written by freqtrade from Binance's strings) into the exact decimal
/// it was written as. `f64`'s `Display` prints the shortest digits that round-trip, which are the
/// digits the writer printed, so no value is altered.
pub fn decimal_from_json_number(field: &'static str, value: f64) -> Result<Decimal, ParseError> {
    if !value.is_finite() {
        return Err(ParseError::Decimal { field, value: value.to_string() });
    }
    parse_decimal(field, &format!("{value}"))
}

pub(crate) mod level_serde {
    //! `[["price","qty"], …]` ⇄ `Vec<(Decimal, Decimal)>` with the strings kept exact.
    use super::{Decimal, PriceLevel};
    use std::borrow::Cow;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(levels: &[PriceLevel], s: S) -> Result<S::Ok, S::Error> {
        let as_strings: Vec<[String; 2]> = levels.iter().map(|(p, q)| [p.to_string(), q.to_string()]).collect();
        as_strings.serialize(s)
    }

    /// `[price, qty]` as Binance sends it; borrowed from the input when it has no escapes.
    #[derive(Deserialize)]
    struct Level<'a>(#[serde(borrow)] Cow<'a, str>, #[serde(borrow)] Cow<'a, str>);

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PriceLevel>, D::Error> {
        let raw: Vec<Level<'de>> = Vec::deserialize(d)?;
        raw.into_iter()
            .map(|Level(p, q)| {
                let price = p.parse::<Decimal>().map_err(serde::de::Error::custom)?;
                let qty = q.parse::<Decimal>().map_err(serde::de::Error::custom)?;
                Ok((price, qty))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binance_strings_keep_their_scale() {
        let d = parse_decimal("p", "58720.45000000").unwrap();
        assert_eq!(d.to_string(), "58720.45000000");
        assert_eq!(d, Decimal::from_str("58720.45").unwrap());
    }

    #[test]
    fn json_numbers_become_the_decimal_they_were_written_as() {
        for (f, s) in
            [(58720.45, "58720.45"), (0.00141342, "0.00141342"), (61.685675, "61.685675"), (1e-8, "0.00000001")]
        {
            assert_eq!(decimal_from_json_number("v", f).unwrap(), Decimal::from_str(s).unwrap());
        }
        assert!(decimal_from_json_number("v", f64::NAN).is_err());
    }
}
