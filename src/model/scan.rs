//! A reader of JSON in one exact byte layout (fixed key order, no whitespace, no escapes): the
//! layouts Binance sends and our own writers write. Each step returns `None` when the bytes are
//! not what it expects, and the caller hands the whole payload to serde, which reads any layout
//! and gives the error. Decimals are read with [`plain_decimal`] right after their opening quote.

use super::decimal::{plain_decimal, Decimal, PriceLevel};

pub(crate) struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    pub fn new(b: &'a [u8]) -> Scan<'a> {
        Scan { b, i: 0 }
    }

    /// All bytes were read.
    pub fn end(&self) -> Option<()> {
        (self.i == self.b.len()).then_some(())
    }

    pub fn lit(&mut self, s: &[u8]) -> Option<()> {
        let end = self.i + s.len();
        (self.b.get(self.i..end)? == s).then(|| self.i = end)
    }

    pub fn int(&mut self) -> Option<i64> {
        let start = self.i;
        let mut v: i64 = 0;
        while let Some(d) = self.b.get(self.i).filter(|c| c.is_ascii_digit()) {
            v = v.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
            self.i += 1;
        }
        (self.i > start).then_some(v)
    }

    /// The text of a string without escapes, after its opening quote; the closing quote is
    /// consumed.
    pub fn text(&mut self) -> Option<&'a str> {
        let start = self.i;
        let len = self.b.get(start..)?.iter().position(|c| *c == b'"' || *c == b'\\')?;
        (self.b[start + len] == b'"').then_some(())?;
        self.i = start + len + 1;
        std::str::from_utf8(&self.b[start..start + len]).ok()
    }

    /// A plain decimal string's value after its opening quote; the closing quote is consumed.
    #[inline(always)]
    pub fn decimal(&mut self) -> Option<Decimal> {
        let (d, taken) = plain_decimal(self.b.get(self.i..)?)?;
        self.i += taken;
        self.lit(b"\"")?;
        Some(d)
    }

    /// `[["price","qty"],…]`
    fn levels(&mut self) -> Option<Vec<PriceLevel>> {
        self.lit(b"[")?;
        let mut out = Vec::with_capacity(32);
        if self.lit(b"]").is_some() {
            return Some(out);
        }
        loop {
            self.lit(b"[\"")?;
            let price = self.decimal()?;
            self.lit(b",\"")?;
            let qty = self.decimal()?;
            self.lit(b"]")?;
            out.push((price, qty));
            if self.lit(b",").is_none() {
                self.lit(b"]")?;
                return Some(out);
            }
        }
    }

    /// The two sides of a book that end an object, `<bid_key>[…]<ask_key>[…]}`, and then the input.
    pub fn sides_to_end(&mut self, bid_key: &[u8], ask_key: &[u8]) -> Option<(Vec<PriceLevel>, Vec<PriceLevel>)> {
        self.lit(bid_key)?;
        let bids = self.levels()?;
        self.lit(ask_key)?;
        let asks = self.levels()?;
        self.lit(b"}")?;
        self.end()?;
        Some((bids, asks))
    }

    /// `null` or a plain decimal string.
    pub fn opt_decimal(&mut self) -> Option<Option<Decimal>> {
        if self.lit(b"null").is_some() {
            return Some(None);
        }
        self.lit(b"\"")?;
        self.decimal().map(Some)
    }

    /// `null` or a non-negative integer.
    pub fn opt_int(&mut self) -> Option<Option<i64>> {
        if self.lit(b"null").is_some() {
            return Some(None);
        }
        self.int().map(Some)
    }

    pub fn bool(&mut self) -> Option<bool> {
        if self.lit(b"true").is_some() {
            return Some(true);
        }
        self.lit(b"false").map(|()| false)
    }
}
