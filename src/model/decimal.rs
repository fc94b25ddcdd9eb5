//! Exact decimals for prices and quantities: Binance sends them as strings and we keep their value.

use std::str::FromStr;

pub use rust_decimal::Decimal;

use super::ParseError;

/// One side of a book level: `[price, quantity]`, as Binance sends it.
pub type PriceLevel = (Decimal, Decimal);

/// Parses a Binance decimal string (`"58720.45000000"`), keeping its scale.
pub(crate) fn parse_decimal(field: &'static str, value: &str) -> Result<Decimal, ParseError> {
    exact_decimal(value).map_err(|_| ParseError::Decimal { field, value: value.to_owned() })
}

/// The shape Binance writes every price and quantity in — up to 28 digits with at most one point
/// (`"2683.80000000"`) — read directly; anything else goes through `rust_decimal`'s parser. Both
/// give the same value and scale (checked by a property test); this is just a few times faster,
/// and a depth event carries some 80 of them.
pub(crate) fn exact_decimal(s: &str) -> Result<Decimal, rust_decimal::Error> {
    let bytes = s.as_bytes();
    // Up to 19 digits the mantissa fits a u64: the common case, and cheaper than i128.
    if bytes.is_empty() || bytes.len() > 20 {
        return Decimal::from_str(s);
    }
    let (mut mantissa, mut scale, mut point, mut digits) = (0u64, 0u32, false, 0);
    for &b in bytes {
        match b {
            b'0'..=b'9' if digits < 19 => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                digits += 1;
                scale += u32::from(point);
            }
            b'.' if !point => point = true,
            _ => return Decimal::from_str(s),
        }
    }
    if digits == 0 || (point && scale == 0) {
        return Decimal::from_str(s);
    }
    Ok(Decimal::from_parts(mantissa as u32, (mantissa >> 32) as u32, 0, false, scale))
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
    use super::PriceLevel;
    use std::borrow::Cow;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(levels: &[PriceLevel], s: S) -> Result<S::Ok, S::Error> {
        let as_strings: Vec<[String; 2]> = levels.iter().map(|(p, q)| [p.to_string(), q.to_string()]).collect();
        as_strings.serialize(s)
    }

    /// `[price, qty]` as Binance sends it; borrowed from the input when it has no escapes.
    #[derive(Deserialize)]
    struct Level<'a>(#[serde(borrow)] Cow<'a, str>, #[serde(borrow)] Cow<'a, str>);

    /// Reads the levels straight into the result, without an intermediate vector.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PriceLevel>, D::Error> {
        struct Levels;
        impl<'de> serde::de::Visitor<'de> for Levels {
            type Value = Vec<PriceLevel>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of [\"price\", \"quantity\"] pairs")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(32));
                while let Some(Level(p, q)) = seq.next_element::<Level<'de>>()? {
                    let price = super::exact_decimal(&p).map_err(serde::de::Error::custom)?;
                    let qty = super::exact_decimal(&q).map_err(serde::de::Error::custom)?;
                    out.push((price, qty));
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Levels)
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

    proptest::proptest! {
        #[test]
        fn the_direct_reader_agrees_with_rust_decimal(s in "[0-9]{0,20}(\\.[0-9]{0,12})?|-?[0-9.]{1,6}|[0-9]{29,31}") {
            let direct = exact_decimal(&s).map(|d| d.to_string());
            let general = Decimal::from_str(&s).map(|d| d.to_string());
            proptest::prop_assert_eq!(direct.ok(), general.ok(), "{:?}", s);
        }
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
