//! Exponential backoff with jitter between restarts of the same child, so a dead dependency
//! (broker, database, exchange) does not cause a restart storm.

use std::time::Duration;

/// How long to wait before the n-th consecutive restart of a child.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first restart; `Duration::ZERO` restarts at once, every time.
    pub min: Duration,
    /// The delay never exceeds this.
    pub max: Duration,
    /// A child that ran this long without failing starts over at `min`.
    pub reset_after: Duration,
    /// Each delay is drawn from `[d * (1 - jitter), d]`, so restarts of many children spread out.
    pub jitter: f64,
}

impl Backoff {
    /// No delay at all (tests, benchmarks).
    pub const NONE: Backoff =
        Backoff { min: Duration::ZERO, max: Duration::ZERO, reset_after: Duration::ZERO, jitter: 0.0 };

    /// The delay before restart number `consecutive` (1 = the first after a stable period), given a
    /// uniform random number `unit` in `[0, 1)`.
    pub fn delay(&self, consecutive: u32, unit: f64) -> Duration {
        if self.min.is_zero() {
            return Duration::ZERO;
        }
        let exp = consecutive.saturating_sub(1).min(30);
        let base = self.min.saturating_mul(1u32 << exp).min(self.max.max(self.min));
        let factor = 1.0 - self.jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0);
        base.mul_f64(factor)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
            jitter: 0.5,
        }
    }
}

/// A small deterministic generator (splitmix64) for jitter: no global state, seedable in tests.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Jitter(seed)
    }

    /// Seeded from the standard library's per-process random hash keys.
    pub fn from_entropy() -> Self {
        use std::hash::{BuildHasher, Hasher};
        Jitter(std::collections::hash_map::RandomState::new().build_hasher().finish())
    }

    /// Uniform in `[0, 1)`.
    pub fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Backoff {
        Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(5),
            reset_after: Duration::from_secs(60),
            jitter: 0.5,
        }
    }

    #[test]
    fn grows_exponentially_and_is_capped() {
        let b = Backoff { jitter: 0.0, ..policy() };
        let delays: Vec<u64> = (1..=9).map(|n| b.delay(n, 0.7).as_millis() as u64).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(b.delay(1000, 0.0), Duration::from_secs(5), "no overflow for long streaks");
    }

    #[test]
    fn jitter_stays_within_its_band_and_varies() {
        let b = policy();
        let mut rng = Jitter::new(7);
        let draws: Vec<Duration> = (0..200).map(|_| b.delay(3, rng.next_unit())).collect();
        assert!(draws.iter().all(|d| *d >= Duration::from_millis(200) && *d <= Duration::from_millis(400)));
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(distinct.len() > 100, "jittered, not constant");
    }

    #[test]
    fn zero_minimum_means_no_backoff() {
        assert_eq!(Backoff::NONE.delay(50, 0.3), Duration::ZERO);
    }

    #[test]
    fn units_are_uniform_enough() {
        let mut rng = Jitter::new(1);
        let xs: Vec<f64> = (0..10_000).map(|_| rng.next_unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
}
