//! A backfill source that takes what Binance's archive has and the rest over REST: a
//! [`SequencedKind`] wrapping another, so that the loader, the connector, the store and resuming
//! work as for REST alone. Paging follows the sequence: after the last record handed out, the next
//! comes from the archive file of the period it falls in — the calendar month for klines when the
//! whole rest of that month is wanted, else the day — checksum verified; where the archive has no
//! such file (the days since its last publication, a day it never got) or rejects it (a checksum
//! that does not match after retries), REST pages up to the end of that period, and the archive
//! takes over again after it. The two meet on the sequence, so neither a gap nor an overlap.
//!
//! A file is handed out in pages of at most [`ARCHIVE_PAGE`] records, decoded as they are handed
//! out; one file per backfill is in memory at a time, as its CSV text.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::archive::{BinanceArchive, CsvFile, Dataset, Fetched, Period};
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

struct State {
    /// Files not to ask for again: missing or rejected.
    unavailable: BTreeSet<Period>,
    /// The file in hand, read up to the records handed out.
    current: Option<(Period, CsvFile)>,
    /// The end of the last file read to its end: nothing after the cursor is left before it.
    read_through: i64,
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
        let state = Mutex::new(State {
            unavailable: BTreeSet::new(),
            current: None,
            read_through: i64::MIN,
            last: None,
            report,
        });
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

    /// The next page of the file in hand after `last`; `None` when it has no more. A file found
    /// unreadable part-way is rejected from there on (what it handed out was read whole) and
    /// remembered, so that its span comes over REST.
    fn page_in_hand(&self, symbol: &str, last: i64) -> Option<Vec<Sequenced>> {
        let mut state = self.state();
        let (period, mut file) = state.current.take()?;
        let mut page = Vec::new();
        let mut prev = last;
        loop {
            match file.next_record() {
                // Before the cursor (a range that starts inside the file), or a repeat.
                Ok(Some(r)) if r.seq <= prev => continue,
                Ok(Some(r)) => {
                    prev = r.seq;
                    page.push(r);
                    if page.len() == ARCHIVE_PAGE {
                        state.current = Some((period, file));
                        break;
                    }
                }
                Ok(None) => {
                    state.read_through = state.read_through.max(period.end_ms());
                    break;
                }
                Err(e) => {
                    self.reject_part_way(&mut state, symbol, period, &e);
                    break;
                }
            }
        }
        let tail = page.last()?;
        state.last = Some((tail.seq, tail.time));
        state.report.records += page.len() as u64;
        Some(page)
    }

    /// Rejects the file of `period` in hand, found unreadable part-way: counted, reported, dropped
    /// and remembered, so that the rest of its span comes over REST.
    fn reject_part_way(&self, state: &mut State, symbol: &str, period: Period, error: &ParseError) {
        let name = self.dataset.file_name(symbol, period);
        tracing::warn!(file = %name, %error, "Archive file rejected part-way: the rest of its span comes over REST.");
        self.archive.count_rejected();
        state.report.rejected.push((name, error.to_string()));
        state.unavailable.insert(period);
        state.current = None;
    }

    /// The first record at or after `start_ms` of the file in hand (`day`'s), left to be handed
    /// out next; `None` when the file has none; `Err` when the file turned out unreadable (it is
    /// then rejected).
    fn first_at_or_after(&self, symbol: &str, day: Period, start_ms: i64) -> Result<Option<Sequenced>, ()> {
        let mut state = self.state();
        let Some((_, file)) = state.current.as_mut() else { return Ok(None) };
        loop {
            match file.next_record() {
                Ok(Some(r)) if r.time < start_ms => continue,
                Ok(Some(r)) => {
                    file.unread();
                    state.last = Some((r.seq - 1, r.time));
                    return Ok(Some(r));
                }
                Ok(None) => {
                    state.current = None;
                    state.read_through = state.read_through.max(day.end_ms());
                    return Ok(None);
                }
                Err(e) => {
                    self.reject_part_way(&mut state, symbol, day, &e);
                    return Err(());
                }
            }
        }
    }

    /// Asks the archive for `period`'s file; true when it is now in hand. A file that is missing or
    /// rejected is remembered, so that it is asked for once.
    async fn fetch(&self, symbol: &str, period: Period) -> Result<bool, ExchangeError> {
        let name = self.dataset.file_name(symbol, period);
        let fetched = self.archive.file(self.dataset, symbol, period).await?;
        let mut state = self.state();
        match fetched {
            Fetched::Csv(file) => {
                state.report.files += 1;
                state.current = Some((period, file));
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
            match self.first_at_or_after(symbol, day, start_ms) {
                Ok(Some(first)) if first.time >= end_ms => return Ok(None),
                Ok(Some(first)) => return Ok(Some(first.seq - 1)),
                Ok(None) => t = day.end_ms(),
                Err(()) => return self.inner.before(rest, symbol, start_ms, end_ms).await,
            }
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
        if let Some(page) = self.page_in_hand(symbol, last) {
            return Ok((page, true));
        }
        // Where the loader resumes after the store's newest trade, its day is unknown: REST.
        let Some(next) = self.next_time(last) else {
            return self.over_rest(rest, symbol, last, limit, None).await;
        };
        let mut t = next.max(self.state().read_through);
        loop {
            if t >= self.end_ms {
                return Ok((Vec::new(), false));
            }
            let period = self.period_for(t);
            let unavailable = self.state().unavailable.contains(&period);
            if !unavailable && self.fetch(symbol, period).await? {
                if let Some(page) = self.page_in_hand(symbol, last) {
                    return Ok((page, true));
                }
                t = t.max(self.state().read_through);
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
