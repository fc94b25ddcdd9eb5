//! A backfill source that takes what Binance's archive has and the rest over REST: a
//! [`SequencedKind`] wrapping another, so that the loader, the connector, the store and resuming
//! work as for REST alone. Paging follows the sequence: after the last record handed out, the next
//! comes from the archive file of the period it falls in — the calendar month for klines when the
//! whole rest of that month is wanted, else the day — checksum verified; where the archive has no
//! such file (the days since its last publication, a day it never got) or rejects it (a checksum
//! that does not match after retries), REST pages up to the end of that period, and the archive
//! takes over again after it. The two meet on the sequence, so neither a gap nor an overlap.
//!
//! A file is handed out in pages of at most [`ARCHIVE_PAGE`] records; one file per backfill is in
//! memory at a time.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::archive::{BinanceArchive, Dataset, Fetched, Period};
use super::{BinanceRest, ExchangeError, Sequenced, SequencedKind, StreamMessage};
use crate::model::{now_ms, DataRecord, ParseError};

/// Records handed to the loader per call, from an archive file.
pub const ARCHIVE_PAGE: usize = 10_000;

/// What a backfill took from the archive, for its summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ArchiveReport {
    /// The archive's base URL.
    pub url: String,
    /// Files used, their checksums verified.
    pub files: u64,
    /// Records handed on from them.
    pub records: u64,
    /// Files the archive does not have (their spans came over REST), by name.
    pub missing: Vec<String>,
    /// Files rejected, by name, with why: nothing of them was used; their spans came over REST.
    pub rejected: Vec<(String, String)>,
}

#[derive(Default)]
struct State {
    /// Files not to ask for again: missing or rejected.
    unavailable: BTreeSet<Period>,
    /// The file in hand and its records, in sequence order.
    current: Option<(Period, Arc<Vec<Sequenced>>)>,
    /// Sequence and time of the last record handed out.
    last: Option<(i64, i64)>,
    report: ArchiveReport,
}

/// The archive first, then REST, for one backfill (one symbol, up to `end_ms`).
pub struct Archived {
    inner: Arc<dyn SequencedKind>,
    dataset: Dataset,
    archive: BinanceArchive,
    end_ms: i64,
    state: Mutex<State>,
}

impl Archived {
    /// `None` when `inner`'s records are not in the archive.
    pub fn wrap(inner: Arc<dyn SequencedKind>, archive: BinanceArchive, end_ms: i64) -> Option<Archived> {
        let dataset = inner.archive_dataset()?;
        let report = ArchiveReport { url: archive.base_url().to_owned(), ..Default::default() };
        let state = Mutex::new(State { report, ..Default::default() });
        Some(Archived { inner, dataset, archive, end_ms, state })
    }

    pub fn report(&self) -> ArchiveReport {
        self.state().report.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The file whose span holds time `t`: the month for klines when all of the rest of the month
    /// is wanted and the month is over (and its file not known to be unavailable), else the day.
    fn period_for(&self, t: i64) -> Period {
        if let Dataset::Klines(_) = self.dataset {
            let month = Period::month_of(t);
            let whole = month.end_ms() <= self.end_ms && month.end_ms() <= now_ms();
            if whole && !self.state().unavailable.contains(&month) {
                return month;
            }
        }
        Period::day_of(t)
    }

    /// The next page of the file in hand after `last`, if it has more; otherwise the end of its
    /// span (from where the next file is wanted).
    fn page_in_hand(&self, last: i64) -> Result<Vec<Sequenced>, Option<i64>> {
        let mut state = self.state();
        let Some((period, records)) = state.current.clone() else {
            return Err(None);
        };
        let from = records.partition_point(|r| r.seq <= last);
        if from == records.len() {
            state.current = None;
            return Err(Some(period.end_ms()));
        }
        let page = records[from..(from + ARCHIVE_PAGE).min(records.len())].to_vec();
        let tail = &page[page.len() - 1];
        state.last = Some((tail.seq, tail.time));
        state.report.records += page.len() as u64;
        Ok(page)
    }

    /// Asks the archive for `period`'s file; true when it is now in hand. A file that is missing or
    /// rejected is remembered, so that it is asked for once.
    async fn fetch(&self, symbol: &str, period: Period) -> Result<bool, ExchangeError> {
        let name = self.dataset.file_name(symbol, period);
        let fetched = self.archive.file(self.dataset, symbol, period).await?;
        let mut state = self.state();
        match fetched {
            Fetched::Records(mut records) => {
                records.sort_by_key(|r| r.seq);
                records.dedup_by_key(|r| r.seq);
                state.report.files += 1;
                state.current = Some((period, Arc::new(records)));
                return Ok(true);
            }
            Fetched::Missing => state.report.missing.push(name),
            Fetched::Rejected(why) => state.report.rejected.push((name, why)),
        }
        state.unavailable.insert(period);
        Ok(false)
    }

    /// REST's page after `last`, cut at `until` (where the archive may take over again) unless
    /// that would leave nothing.
    async fn over_rest(
        &self,
        rest: &BinanceRest,
        symbol: &str,
        last: i64,
        limit: u32,
        until: Option<i64>,
    ) -> Result<(Vec<Sequenced>, bool), ExchangeError> {
        let (mut page, mut more) = self.inner.after(rest, symbol, last, limit).await?;
        if let Some(cut) = until.and_then(|u| page.iter().position(|r| r.time >= u)).filter(|&c| c > 0) {
            page.truncate(cut);
            more = true;
        }
        if let Some(tail) = page.last() {
            self.state().last = Some((tail.seq, tail.time));
        }
        Ok((page, more))
    }

    /// The time from which the record after `last` is looked for: the next open time of klines,
    /// the time of the trade `last` when it is the last one handed out; `None` if unknown.
    fn next_time(&self, last: i64) -> Option<i64> {
        match self.dataset {
            Dataset::Klines(i) => Some(last + i.millis()),
            _ => self.state().last.filter(|(seq, _)| *seq == last).map(|(_, time)| time),
        }
    }
}

#[async_trait]
impl SequencedKind for Archived {
    fn stream(&self, symbol: &str) -> String {
        self.inner.stream(symbol)
    }

    fn label(&self) -> &'static str {
        self.inner.label()
    }

    fn decode(&self, msg: &StreamMessage) -> Result<Option<(String, i64, DataRecord)>, ParseError> {
        self.inner.decode(msg)
    }

    fn job_type(&self) -> String {
        self.inner.job_type()
    }

    fn noun(&self) -> &'static str {
        self.inner.noun()
    }

    fn step(&self) -> Option<i64> {
        self.inner.step()
    }

    fn archive_dataset(&self) -> Option<Dataset> {
        Some(self.dataset)
    }

    fn show(&self, seq: i64) -> String {
        self.inner.show(seq)
    }

    /// Klines page by time, free; trades are located in the archive's file of the range's first
    /// day(s), and over REST where the archive has no such file.
    async fn before(
        &self,
        rest: &BinanceRest,
        symbol: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Option<i64>, ExchangeError> {
        if let Dataset::Klines(_) = self.dataset {
            return self.inner.before(rest, symbol, start_ms, end_ms).await;
        }
        let mut t = start_ms;
        while t < end_ms {
            let day = Period::day_of(t);
            let unavailable = self.state().unavailable.contains(&day);
            if unavailable || !self.fetch(symbol, day).await? {
                return self.inner.before(rest, symbol, start_ms, end_ms).await;
            }
            let mut state = self.state();
            let records = state.current.as_ref().map(|(_, r)| r.clone()).unwrap_or_default();
            if let Some(first) = records.iter().find(|r| r.time >= start_ms) {
                if first.time >= end_ms {
                    return Ok(None);
                }
                state.last = Some((first.seq - 1, first.time));
                return Ok(Some(first.seq - 1));
            }
            t = day.end_ms();
        }
        Ok(None)
    }

    async fn after(
        &self,
        rest: &BinanceRest,
        symbol: &str,
        last: i64,
        limit: u32,
    ) -> Result<(Vec<Sequenced>, bool), ExchangeError> {
        let done_until = match self.page_in_hand(last) {
            Ok(page) => return Ok((page, true)),
            Err(done_until) => done_until,
        };
        // Where the loader resumes after the store's newest trade, its day is unknown: REST.
        let Some(next) = self.next_time(last) else {
            return self.over_rest(rest, symbol, last, limit, None).await;
        };
        let mut t = next.max(done_until.unwrap_or(i64::MIN));
        loop {
            if t >= self.end_ms {
                return Ok((Vec::new(), false));
            }
            let period = self.period_for(t);
            let unavailable = self.state().unavailable.contains(&period);
            if !unavailable && self.fetch(symbol, period).await? {
                match self.page_in_hand(last) {
                    Ok(page) => return Ok((page, true)),
                    Err(end) => t = end.unwrap_or(period.end_ms()),
                }
                continue;
            }
            if let Period::Month(_) = period {
                // Its days, then.
                continue;
            }
            return self.over_rest(rest, symbol, last, limit, Some(period.end_ms())).await;
        }
    }
}
