//! The request-weight budget that every REST call of a node shares. Binance allows 6,000 weight
//! a minute per IP and reports the minute's total in `X-MBX-USED-WEIGHT-1M`; a 429 says to wait
//! `Retry-After` seconds, and a request sent before that earns a 418 ban. The limiter spends at
//! most `share` of the budget, takes the server's count when it is higher than its own (other
//! processes on the IP spend too), and holds every request while a 429's wait runs.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::model::now_ms;

/// Binance's weight budget per minute and IP.
pub const WEIGHT_PER_MINUTE: u32 = 6000;

#[derive(Debug)]
struct Budget {
    /// Epoch minute the count belongs to.
    minute: i64,
    used: u32,
    /// No request before this (a 429's `Retry-After`).
    hold_until: Option<Instant>,
}

#[derive(Debug)]
pub struct WeightLimiter {
    limit: u32,
    /// Length of the budget's window in ms: Binance's minute (shorter only in benchmarks against
    /// a replay server that counts the same way).
    window_ms: i64,
    budget: Mutex<Budget>,
}

impl WeightLimiter {
    /// A limiter spending at most `share` (0 < share ≤ 1) of the per-minute budget.
    pub fn new(share: f64) -> WeightLimiter {
        Self::with_window(share, Duration::from_secs(60))
    }

    /// The same budget counted over `window` instead of a minute (benchmarks on a scaled clock).
    pub fn with_window(share: f64, window: Duration) -> WeightLimiter {
        let limit = ((WEIGHT_PER_MINUTE as f64) * share.clamp(0.0, 1.0)).floor().max(1.0) as u32;
        let window_ms = (window.as_millis() as i64).max(1);
        let budget = Budget { minute: now_ms() / window_ms, used: 0, hold_until: None };
        WeightLimiter { limit, window_ms, budget: Mutex::new(budget) }
    }

    /// Time until the next window starts, when Binance's count resets.
    fn until_next_window(&self) -> Duration {
        Duration::from_millis((self.window_ms - now_ms().rem_euclid(self.window_ms)) as u64)
    }

    /// The weight it spends at most per minute.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Waits until `weight` fits in this minute's share (and any 429 wait is over), then spends it.
    pub async fn acquire(&self, weight: u32) {
        loop {
            let wait = {
                let mut b = self.budget.lock().await;
                let minute = now_ms() / self.window_ms;
                if minute != b.minute {
                    (b.minute, b.used) = (minute, 0);
                }
                match b.hold_until {
                    Some(t) if t > Instant::now() => t - Instant::now(),
                    _ if b.used + weight <= self.limit || b.used == 0 => {
                        b.hold_until = None;
                        b.used += weight;
                        return;
                    }
                    _ => self.until_next_window(),
                }
            };
            tracing::debug!(wait_ms = wait.as_millis() as u64, weight, "Waiting for REST weight budget.");
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes the server's count of this minute's weight when it is higher than the limiter's.
    pub async fn observe(&self, used: u32) {
        let mut b = self.budget.lock().await;
        if b.minute == now_ms() / self.window_ms {
            b.used = b.used.max(used);
        }
    }

    /// A 429: no request goes out for `retry_after`.
    pub async fn hold(&self, retry_after: Duration) {
        let mut b = self.budget.lock().await;
        let until = Instant::now() + retry_after;
        b.hold_until = Some(b.hold_until.map_or(until, |t| t.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_429_holds_every_request_for_its_retry_after() {
        let limiter = WeightLimiter::new(1.0);
        limiter.hold(Duration::from_secs(3)).await;
        let t0 = Instant::now();
        limiter.acquire(2).await;
        assert!(t0.elapsed() >= Duration::from_secs(3), "waited {:?}", t0.elapsed());
    }

    #[tokio::test]
    async fn the_share_caps_what_it_spends_and_the_server_count_is_taken_when_higher() {
        let limiter = WeightLimiter::new(0.5);
        assert_eq!(limiter.limit(), 3000);
        limiter.observe(2_990).await;
        limiter.acquire(10).await; // 3,000: still within the share
        let blocked = tokio::time::timeout(Duration::from_millis(50), limiter.acquire(1)).await;
        // Unless the minute turned over during the test, the next request must wait for it.
        if now_ms() % 60_000 > 100 {
            assert!(blocked.is_err(), "a request over the share waits for the next minute");
        }
    }
}
