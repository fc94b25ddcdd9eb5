//! A recorded candle series held compactly: rows in chunks of [`CHUNK`] (a page of
//! `/api/v3/klines` at most), each chunk's rows delta-encoded as variable-length integers and
//! decoded when a page, a stream or a listing asks for them. A 1m candle takes ~20 bytes instead
//! of the 96 of a decoded [`KlineRow`]: a replay of 1.2M candles held 118 MB of rows before.
//!
//! Row encoding, each value relative to the same value of the previous row in the chunk (the
//! first row relative to zero): open time; then for open, high, low, close, volume the scale (one
//! byte) and the mantissa; then a byte saying whether trade totals follow, and if so quote volume,
//! trade count and the two taker volumes the same way. Integers are zigzag LEB128.

use rust_decimal::Decimal;

use super::data::{KlineRow, KlineTotals};

/// Rows per chunk.
pub const CHUNK: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KlineSeries {
    chunks: Vec<Chunk>,
    len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Chunk {
    first_open_time: i64,
    last_open_time: i64,
    bytes: Box<[u8]>,
}

impl KlineSeries {
    /// The series of `rows`, which must be in open-time order without repeats.
    pub fn from_rows(rows: &[KlineRow]) -> KlineSeries {
        let chunks = rows
            .chunks(CHUNK)
            .map(|chunk| {
                let mut enc = Encoder::default();
                for r in chunk {
                    enc.row(r);
                }
                Chunk {
                    first_open_time: chunk[0].open_time,
                    last_open_time: chunk[chunk.len() - 1].open_time,
                    bytes: enc.out.into_boxed_slice(),
                }
            })
            .collect();
        KlineSeries { chunks, len: rows.len() }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Open times of the first and the last row.
    pub fn span(&self) -> Option<(i64, i64)> {
        Some((self.chunks.first()?.first_open_time, self.chunks.last()?.last_open_time))
    }

    /// Every row, in order.
    pub fn iter(&self) -> impl Iterator<Item = KlineRow> + '_ {
        self.chunks.iter().flat_map(Chunk::rows)
    }

    /// The rows of the chunks that a page of at most `limit` rows (≤ [`CHUNK`]) can come from:
    /// the first rows from `start` on, or without `start` the last rows up to `end`. The caller
    /// cuts the page out of them.
    pub fn rows_around(&self, start: Option<i64>, end: Option<i64>, limit: usize) -> Vec<KlineRow> {
        let hi = end.map_or(self.chunks.len(), |e| self.chunks.partition_point(|c| c.first_open_time <= e));
        let span = limit.div_ceil(CHUNK) + 1;
        let (lo, hi) = match start {
            Some(s) => {
                let lo = self.chunks.partition_point(|c| c.last_open_time < s);
                (lo.min(hi), hi.min(lo + span))
            }
            None => (hi.saturating_sub(span), hi),
        };
        self.chunks[lo..hi].iter().flat_map(Chunk::rows).collect()
    }

    /// The rows whose open time is in `[start, end)`, as an archive file of that span holds them.
    pub fn rows_between(&self, start: i64, end: i64) -> Vec<KlineRow> {
        let lo = self.chunks.partition_point(|c| c.last_open_time < start);
        let hi = self.chunks.partition_point(|c| c.first_open_time < end).max(lo);
        self.chunks[lo..hi].iter().flat_map(Chunk::rows).filter(|r| (start..end).contains(&r.open_time)).collect()
    }
}

impl Chunk {
    fn rows(&self) -> impl Iterator<Item = KlineRow> + '_ {
        let mut dec = Decoder { bytes: &self.bytes, at: 0, prev: Prev::default() };
        std::iter::from_fn(move || dec.row())
    }
}

/// The previous row's values, which the next row's are relative to.
#[derive(Default)]
struct Prev {
    open_time: i64,
    ohlcv: [i128; 5],
    totals: [i128; 4],
}

#[derive(Default)]
struct Encoder {
    out: Vec<u8>,
    prev: Prev,
}

impl Encoder {
    fn int(&mut self, v: i128) {
        let mut z = ((v << 1) ^ (v >> 127)) as u128;
        loop {
            let byte = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                self.out.push(byte);
                return;
            }
            self.out.push(byte | 0x80);
        }
    }

    fn decimal(&mut self, d: &Decimal, prev: &mut i128) {
        self.out.push(d.scale() as u8);
        self.int(d.mantissa() - *prev);
        *prev = d.mantissa();
    }

    fn row(&mut self, r: &KlineRow) {
        self.int(i128::from(r.open_time - self.prev.open_time));
        self.prev.open_time = r.open_time;
        let mut ohlcv = self.prev.ohlcv;
        for (d, prev) in [&r.open, &r.high, &r.low, &r.close, &r.volume].into_iter().zip(&mut ohlcv) {
            self.decimal(d, prev);
        }
        self.prev.ohlcv = ohlcv;
        match &r.totals {
            None => self.out.push(0),
            Some(t) => {
                self.out.push(1);
                let mut totals = self.prev.totals;
                self.decimal(&t.quote_volume, &mut totals[0]);
                self.int(i128::from(t.trades) - totals[1]);
                totals[1] = i128::from(t.trades);
                self.decimal(&t.taker_buy_base, &mut totals[2]);
                self.decimal(&t.taker_buy_quote, &mut totals[3]);
                self.prev.totals = totals;
            }
        }
    }
}

struct Decoder<'a> {
    bytes: &'a [u8],
    at: usize,
    prev: Prev,
}

impl Decoder<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn int(&mut self) -> Option<i128> {
        let (mut z, mut shift) = (0u128, 0);
        loop {
            let b = self.byte()?;
            z |= u128::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some((z >> 1) as i128 ^ -((z & 1) as i128));
            }
            shift += 7;
        }
    }

    fn decimal(&mut self, prev: &mut i128) -> Option<Decimal> {
        let scale = u32::from(self.byte()?);
        *prev += self.int()?;
        // The mantissa and scale were a Decimal's when encoded.
        Decimal::try_from_i128_with_scale(*prev, scale).ok()
    }

    fn row(&mut self) -> Option<KlineRow> {
        if self.at == self.bytes.len() {
            return None;
        }
        let open_time = self.prev.open_time + i64::try_from(self.int()?).ok()?;
        self.prev.open_time = open_time;
        let mut p = self.prev.ohlcv;
        let (open, high, low, close, volume) = (
            self.decimal(&mut p[0])?,
            self.decimal(&mut p[1])?,
            self.decimal(&mut p[2])?,
            self.decimal(&mut p[3])?,
            self.decimal(&mut p[4])?,
        );
        self.prev.ohlcv = p;
        let totals = match self.byte()? {
            0 => None,
            _ => {
                let mut t = self.prev.totals;
                let quote_volume = self.decimal(&mut t[0])?;
                t[1] += self.int()?;
                let trades = u64::try_from(t[1]).ok()?;
                let taker_buy_base = self.decimal(&mut t[2])?;
                let taker_buy_quote = self.decimal(&mut t[3])?;
                self.prev.totals = t;
                Some(Box::new(KlineTotals { quote_volume, trades, taker_buy_base, taker_buy_quote }))
            }
        };
        Some(KlineRow { open_time, open, high, low, close, volume, totals })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::model::Interval;
    use crate::replay::ReplayData;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn row(open_time: i64, close: &str, totals: bool) -> KlineRow {
        KlineRow {
            open_time,
            open: d("60685.22000000"),
            high: d("60700.1"),
            low: d("0.00000001"),
            close: d(close),
            volume: d("1313200.01340410"),
            totals: totals.then(|| {
                Box::new(KlineTotals {
                    quote_volume: d("79644.12345678"),
                    trades: 1_234,
                    taker_buy_base: d("0"),
                    taker_buy_quote: d("99999999999999999999.5"),
                })
            }),
        }
    }

    #[test]
    fn rows_come_back_exactly_scales_included() {
        let rows: Vec<KlineRow> =
            (0..2_500).map(|i| row(i * 60_000 - 600_000, &format!("{}.5", 3000 - i), i % 3 == 0)).collect();
        let series = KlineSeries::from_rows(&rows);
        assert_eq!(series.len(), rows.len());
        assert_eq!(series.span(), Some((-600_000, 2_499 * 60_000 - 600_000)));
        let back: Vec<KlineRow> = series.iter().collect();
        assert_eq!(back, rows);
        assert_eq!(back[7].high.to_string(), "60700.1");
        assert_eq!(back[3].totals.as_ref().unwrap().taker_buy_quote.to_string(), "99999999999999999999.5");
        assert!(KlineSeries::from_rows(&[]).iter().next().is_none());
    }

    /// Every page a client can ask for is inside the rows `rows_around` hands back.
    #[test]
    fn pages_are_within_the_chunks_handed_back() {
        let rows: Vec<KlineRow> = (0..2_500).map(|i| row(i * 10, "1", false)).collect();
        let series = KlineSeries::from_rows(&rows);
        for (start, end, limit) in [
            (Some(0), None, 1000),
            (Some(9_995), None, 1000),
            (Some(10_000), Some(10_500), 1000),
            (None, Some(24_990), 1000),
            (None, Some(10_005), 1000),
            (None, None, 500),
            (Some(30_000), None, 5),
            (Some(5), Some(3), 5),
        ] {
            let around = series.rows_around(start, end, limit);
            let wanted: Vec<i64> = match start {
                Some(s) => rows
                    .iter()
                    .map(|r| r.open_time)
                    .filter(|t| *t >= s && end.is_none_or(|e| *t <= e))
                    .take(limit)
                    .collect(),
                None => {
                    let upto: Vec<i64> =
                        rows.iter().map(|r| r.open_time).filter(|t| end.is_none_or(|e| *t <= e)).collect();
                    upto[upto.len().saturating_sub(limit)..].to_vec()
                }
            };
            let times: std::collections::BTreeSet<i64> = around.iter().map(|r| r.open_time).collect();
            assert!(wanted.iter().all(|t| times.contains(t)), "{start:?} {end:?} {limit}");
        }
    }

    /// The bundled 1m candles take a fraction of their decoded size.
    #[test]
    fn recorded_candles_are_held_compactly() {
        let data = ReplayData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")).unwrap();
        let m: Interval = "1m".parse().unwrap();
        let series = data.symbols.values().filter_map(|s| s.klines.get(&m)).next().unwrap();
        let bytes: usize = series.chunks.iter().map(|c| c.bytes.len()).sum();
        assert!(series.len() > 1000);
        assert!(bytes < series.len() * 32, "{bytes} bytes for {} rows", series.len());
    }
}
