//! Depth snapshots fetched beside the reading path: a book that needs one asks for it, and it
//! arrives later while its loader goes on reading the stream (the book buffers meanwhile, bounded).
//! At most [`CONCURRENT`] fetches run at once, symbols listed first go first, each symbol at its own
//! depth, every request within the node's weight budget; one symbol is fetched at most once a second.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use super::rest::depth_weight;
use super::{BinanceRest, ExchangeError};
use crate::admin::metrics::Metrics;
use crate::model::BookSnapshot;

/// The depth a book's REST snapshot has unless configured otherwise (weight 50).
pub const DEFAULT_SNAPSHOT_LIMIT: u32 = 1000;
/// The deepest snapshot Binance serves (weight 250).
pub const MAX_SNAPSHOT_LIMIT: u32 = 5000;
/// Snapshot requests of one loader under way at once. More would only queue at the weight budget,
/// and the ones queued behind keep the configured order.
pub const CONCURRENT: usize = 4;
/// A symbol's snapshot is fetched at most this often (one that missed the stream, a resync).
const REFETCH_EVERY: Duration = Duration::from_secs(1);

/// Each symbol's snapshot depth, in the order their snapshots are fetched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotPlan(Vec<(String, u32)>);

impl SnapshotPlan {
    pub fn new(limits: impl IntoIterator<Item = (String, u32)>) -> SnapshotPlan {
        SnapshotPlan(limits.into_iter().collect())
    }

    /// The symbols, first to fetch first.
    pub fn symbols(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(s, _)| s.as_str())
    }
}

/// A fetch that ended: the snapshot, or why there is none.
#[derive(Debug)]
pub struct Fetched {
    pub symbol: String,
    pub result: Result<BookSnapshot, ExchangeError>,
}

type Fetch = (String, u32, Result<BookSnapshot, ExchangeError>);

pub struct SnapshotFetcher {
    rest: BinanceRest,
    metrics: Arc<Metrics>,
    /// Symbol → (its place in the plan, its depth).
    plan: HashMap<String, (usize, u32)>,
    /// Asked for and not started, by place in the plan.
    queued: BTreeSet<(usize, String)>,
    /// Queued or under way.
    wanted: HashSet<String>,
    last_start: HashMap<String, Instant>,
    tasks: JoinSet<Fetch>,
    /// Weight of the requests answered so far.
    weight: u64,
}

impl SnapshotFetcher {
    pub fn new(rest: BinanceRest, metrics: Arc<Metrics>, plan: &SnapshotPlan) -> SnapshotFetcher {
        let plan = plan.0.iter().enumerate().map(|(i, (s, limit))| (s.clone(), (i, *limit))).collect();
        SnapshotFetcher {
            rest,
            metrics,
            plan,
            queued: BTreeSet::new(),
            wanted: HashSet::new(),
            last_start: HashMap::new(),
            tasks: JoinSet::new(),
            weight: 0,
        }
    }

    /// Asks for `symbol`'s snapshot, unless one is already asked for; symbols outside the plan are
    /// ignored.
    pub fn request(&mut self, symbol: &str) {
        if self.wanted.contains(symbol) {
            return;
        }
        let Some(&(place, _)) = self.plan.get(symbol) else { return };
        self.wanted.insert(symbol.to_owned());
        self.queued.insert((place, symbol.to_owned()));
        self.start_queued();
    }

    /// Drops every fetch asked for or under way (their answers would predate a new connection).
    pub fn reset(&mut self) {
        self.tasks = JoinSet::new();
        self.queued.clear();
        self.wanted.clear();
    }

    /// Weight of the snapshot requests answered so far.
    pub fn weight(&self) -> u64 {
        self.weight
    }

    /// Whether a fetch is asked for or under way.
    pub fn busy(&self) -> bool {
        !self.tasks.is_empty()
    }

    /// The next fetch to end; never resolves while none is under way. Cancel-safe.
    pub async fn next(&mut self) -> Fetched {
        loop {
            match self.tasks.join_next().await {
                Some(joined) => return self.finish(joined),
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// A fetch that has ended, if one has.
    pub fn try_next(&mut self) -> Option<Fetched> {
        self.tasks.try_join_next().map(|joined| self.finish(joined))
    }

    fn finish(&mut self, joined: Result<Fetch, JoinError>) -> Fetched {
        // Tasks are only ever aborted by dropping their set, so a join error is a panic.
        let (symbol, limit, result) = joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        if !matches!(result, Err(ExchangeError::Transport { .. })) {
            let weight = u64::from(depth_weight(limit));
            self.weight += weight;
            self.metrics.book_snapshot_weight.inc_by(weight);
        }
        self.wanted.remove(&symbol);
        self.start_queued();
        Fetched { symbol, result }
    }

    fn start_queued(&mut self) {
        while self.tasks.len() < CONCURRENT {
            let Some((_, symbol)) = self.queued.pop_first() else { break };
            let now = Instant::now();
            let start = self.last_start.get(&symbol).map_or(now, |last| (*last + REFETCH_EVERY).max(now));
            self.last_start.insert(symbol.clone(), start);
            let (rest, limit) = (self.rest.clone(), self.plan[&symbol].1);
            self.tasks.spawn(async move {
                tokio::time::sleep_until(start).await;
                let result = rest.depth(&symbol, limit).await;
                (symbol, limit, result)
            });
        }
    }
}
