//! The trainer's one random generator (xorshift64), drawn on the host: a seed then gives the same
//! shuffled graphs and the same initial weights on every device, where each burn backend's own
//! generator would draw different weights on the CPU and on CUDA from the same seed.

pub struct Seeded(u64);

impl Seeded {
    pub fn new(seed: u64) -> Seeded {
        // Any seed, 0 included, gives a non-zero state (xorshift stays at 0 for ever).
        Seeded(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut s = self.0;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.0 = s;
        s
    }

    /// Uniform in `[-bound, bound)`.
    pub fn symmetric(&mut self, bound: f32) -> f32 {
        // The top 24 bits: every f32 in [0, 1) they make is exact.
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * unit - 1.0) * bound
    }

    /// A permutation of `0..n` (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, (self.next_u64() % (i as u64 + 1)) as usize);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_repeat_for_a_seed_and_stay_in_range() {
        let draw = |seed| {
            let mut r = Seeded::new(seed);
            (0..1000).map(|_| r.symmetric(0.5)).collect::<Vec<f32>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        assert!(a.iter().all(|x| (-0.5..0.5).contains(x)), "inside ±0.5");
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 0.05, "centred: {mean}");
        let mut p = Seeded::new(0).permutation(50);
        assert_ne!(p, (0..50).collect::<Vec<_>>());
        p.sort_unstable();
        assert_eq!(p, (0..50).collect::<Vec<_>>(), "each index once");
    }
}
