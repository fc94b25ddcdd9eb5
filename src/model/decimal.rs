//! Exact decimals for prices and quantities: Binance sends them as strings and we keep their value.

use std::str::FromStr;

pub use rust_decimal::Decimal;

use super::ParseError;

/// One side of a book level: `[price, quantity]`, as Binance sends it.
pub type PriceLevel = (Decimal, Decimal);

/// Parses a Binance decimal string (`"58720.45000000"`), keeping its scale.
pub fn parse_decimal(field: &'static str, value: &str) -> Result<Decimal, ParseError> {
    exact_decimal(value).map_err(|_| ParseError::Decimal { field, value: value.to_owned() })
}

/// The shape Binance writes every price and quantity in — up to 28 digits with at most one point
/// (`"2683.80000000"`) — read directly; anything else goes through `rust_decimal`'s parser. Both
/// give the same value and scale (checked by a property test); this is just a few times faster,
/// and a depth event carries some 80 of them.
pub(crate) fn exact_decimal(s: &str) -> Result<Decimal, rust_decimal::Error> {
    match plain_decimal(s.as_bytes()) {
        Some((d, taken)) if taken == s.len() => Ok(d),
        _ => Decimal::from_str(s),
    }
}

/// The decimal at the start of `bytes` when it is a plain one — digits with at most one point,
/// at least one digit after a point, at most 19 digits (so the mantissa fits a u64, the common
/// case and cheaper than i128) — and how many bytes it took; `None` for anything else. Readers of
/// JSON call it on the text after a string's opening quote, which saves finding the closing
/// quote and checking UTF-8 first: the digits are the check.
#[inline(always)]
pub(crate) fn plain_decimal(bytes: &[u8]) -> Option<(Decimal, usize)> {
    const MAX_DIGITS: usize = 19;
    let digit = |i: usize| bytes.get(i).map(|b| b.wrapping_sub(b'0')).filter(|d| *d <= 9);
    let (mut mantissa, mut i) = (0u64, 0);
    while let Some(d) = digit(i) {
        if i == MAX_DIGITS {
            return None;
        }
        mantissa = mantissa * 10 + u64::from(d);
        i += 1;
    }
    let whole = i;
    let mut scale = 0;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        // Binance writes eight decimals: read them at once when they are there.
        if let Some(eight) = bytes.get(i..i + 8).and_then(eight_digits).filter(|_| whole + 8 <= MAX_DIGITS) {
            mantissa = mantissa * 100_000_000 + eight;
            (i, scale) = (i + 8, 8);
        }
        while let Some(d) = digit(i) {
            if whole + scale == MAX_DIGITS {
                return None;
            }
            mantissa = mantissa * 10 + u64::from(d);
            (i, scale) = (i + 1, scale + 1);
        }
        if scale == 0 {
            return None;
        }
    } else if whole == 0 {
        return None;
    }
    Some((Decimal::from_parts(mantissa as u32, (mantissa >> 32) as u32, 0, false, scale as u32), i))
}

/// The value of eight ASCII digits, all checked, computed with a few multiplications instead of
/// eight (the usual SWAR reading: pairs, then quads, then the whole).
fn eight_digits(chunk: &[u8]) -> Option<u64> {
    let v = u64::from_le_bytes(chunk.try_into().ok()?);
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    // Every byte 0x30..=0x39: its high nibble is 3, and adding 6 keeps it 3.
    if v & HIGH != ZEROS || v.wrapping_add(0x0606_0606_0606_0606) & HIGH != ZEROS {
        return None;
    }
    let v = v - ZEROS;
    let pairs = (v * 10 + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let quads = (pairs * 100 + (pairs >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((quads * 10_000 + (quads >> 32)) & 0xFFFF_FFFF)
}

/// A decimal's text as `Decimal`'s `Display` writes it (every digit of its scale kept:
/// `"58720.45000000"`), built on the stack: the bus and the stores write several per record, and
/// `rust_decimal`'s own formatting was the top symbol of the hot paths' profiles.
pub struct DecimalText {
    buf: [u8; 48],
    len: usize,
}

/// `d`'s text, piece by piece into `push`.
fn write_text(d: &Decimal, mut push: impl FnMut(&[u8])) {
    let mut digits = itoa::Buffer::new();
    let mantissa = d.mantissa().unsigned_abs();
    // Every Binance price and quantity fits 64 bits, whose formatting is several times cheaper.
    let digits = match u64::try_from(mantissa) {
        Ok(m) => digits.format(m),
        Err(_) => digits.format(mantissa),
    }
    .as_bytes();
    let scale = d.scale() as usize;
    if d.is_sign_negative() {
        push(b"-");
    }
    if digits.len() <= scale {
        push(b"0.");
        for _ in digits.len()..scale {
            push(b"0");
        }
        push(digits);
    } else {
        let point = digits.len() - scale;
        push(&digits[..point]);
        if scale > 0 {
            push(b".");
            push(&digits[point..]);
        }
    }
}

/// Appends `d`'s text to `out`: what [`DecimalText`] holds, without the copy.
pub(crate) fn push_decimal(out: &mut Vec<u8>, d: &Decimal) {
    write_text(d, |bytes| out.extend_from_slice(bytes));
}

/// Appends `levels` as [`level_serde`] writes them, `[["price","qty"],…]`, straight into `out`.
pub(crate) fn push_levels(out: &mut Vec<u8>, levels: &[PriceLevel]) {
    out.push(b'[');
    for (i, (price, qty)) in levels.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"[\"" } else { b",[\"" });
        push_decimal(out, price);
        out.extend_from_slice(b"\",\"");
        push_decimal(out, qty);
        out.extend_from_slice(b"\"]");
    }
    out.push(b']');
}

impl DecimalText {
    pub fn new(d: &Decimal) -> DecimalText {
        let mut out = DecimalText { buf: [0; 48], len: 0 };
        write_text(d, |bytes| out.push(bytes));
        out
    }

    /// The longest text is 31 bytes: a sign, then 29 digits (a 96-bit mantissa) and a point, or
    /// `0.` and 28 digits (the largest scale).
    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits, '-' and '.' were written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// Serde for a `Decimal` as its exact text, written with [`DecimalText`] and read with
/// [`exact_decimal`] (`#[serde(with = "decimal_text")]`).
pub(crate) mod decimal_text {
    use std::borrow::Cow;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::{exact_decimal, Decimal, DecimalText};

    pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(DecimalText::new(d).as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let text = <Cow<'de, str>>::deserialize(d)?;
        exact_decimal(&text).map_err(serde::de::Error::custom)
    }

    /// The same for an `Option<Decimal>` (`null` when absent).
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
            let text = <Option<Cow<'de, str>>>::deserialize(d)?;
            text.map(|t| exact_decimal(&t).map_err(serde::de::Error::custom)).transpose()
        }
    }
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

/// Price levels serialized as Binance writes them, `[["price","qty"], …]`.
pub struct Levels<'a>(pub &'a [PriceLevel]);

impl Levels<'_> {
    /// The JSON text serde writes for these levels, written directly.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(2 + self.0.len() * 32);
        push_levels(&mut out, self.0);
        // Only brackets, quotes, commas, digits, points and signs were written.
        String::from_utf8(out).unwrap_or_default()
    }
}

impl serde::Serialize for Levels<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        level_serde::serialize(self.0, s)
    }
}

pub(crate) mod level_serde {
    //! `[["price","qty"], …]` ⇄ `Vec<(Decimal, Decimal)>` with the strings kept exact.
    use super::PriceLevel;
    use std::borrow::Cow;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(levels: &[PriceLevel], s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(levels.len()))?;
        for (p, q) in levels {
            seq.serialize_element(&[super::DecimalText::new(p).as_str(), super::DecimalText::new(q).as_str()])?;
        }
        seq.end()
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
        fn the_direct_reader_agrees_with_rust_decimal(s in "[0-9]{0,20}(\\.[0-9]{0,12})?|[0-9]{0,12}\\.[0-9/:]{7,10}|-?[0-9.]{1,6}|[0-9]{29,31}") {
            let direct = exact_decimal(&s).map(|d| d.to_string());
            let general = Decimal::from_str(&s).map(|d| d.to_string());
            proptest::prop_assert_eq!(direct.ok(), general.ok(), "{:?}", s);
        }
    }

    proptest::proptest! {
        #[test]
        fn decimal_text_is_what_display_writes(m in proptest::num::i128::ANY, scale in 0u32..=28) {
            let m = m >> 32; // 96 bits
            let d = Decimal::from_i128_with_scale(m, scale);
            let text = DecimalText::new(&d);
            proptest::prop_assert_eq!(text.as_str(), d.to_string());
        }
    }

    #[test]
    fn eight_digits_at_once_are_the_digits_one_by_one() {
        for s in ["00000000", "12345678", "99999999", "80000000", "00000001"] {
            assert_eq!(eight_digits(s.as_bytes()), s.parse().ok(), "{s}");
        }
        for s in ["1234567a", "/2345678", ":2345678", "1234 678"] {
            assert_eq!(eight_digits(s.as_bytes()), None, "{s}");
        }
        assert_eq!(
            plain_decimal(b"2683.80000000\"]").map(|(d, n)| (d.to_string(), n)),
            Some(("2683.80000000".into(), 13))
        );
    }

    #[test]
    fn levels_are_written_as_serde_writes_them() {
        let levels: Vec<PriceLevel> = [("2683.80000000", "3.02920000"), ("-1.5", "0"), ("100", "0.00000001")]
            .map(|(p, q)| (p.parse().unwrap(), q.parse().unwrap()))
            .into();
        for n in 0..=levels.len() {
            assert_eq!(Levels(&levels[..n]).to_json(), serde_json::to_string(&Levels(&levels[..n])).unwrap());
        }
    }

    #[test]
    fn decimal_text_of_binance_values() {
        for s in ["58720.45000000", "0.00000001", "0", "0.00000000", "-1.50", "1313200.01340410", "100"] {
            let d = Decimal::from_str(s).unwrap();
            assert_eq!(DecimalText::new(&d).as_str(), d.to_string(), "{s}");
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
