//! The demo's random numbers: SplitMix64, seeded from the clock for what only has to look
//! lively (arrivals, think times, faults), or from a tracking number for what must come out the
//! same every time (a synthetic passport holder, so that QC can read the MRZ back).

use std::time::Duration;

/// A small deterministic generator (SplitMix64). Not for secrets: PINs and tokens come from the
/// OS random source in [`crate::auth`].
#[derive(Debug, Clone)]
pub struct Dice(u64);

impl Dice {
    /// A generator seeded with `seed`.
    pub fn seeded(seed: u64) -> Self {
        Dice(seed)
    }

    /// A generator seeded from the clock and `salt` (different in every run and every task).
    pub fn from_clock(salt: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Dice((nanos as u64) ^ salt.rotate_left(32) ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// A generator seeded from a text (FNV-1a): the same text, the same numbers.
    pub fn of_text(text: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Dice(h)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Exponentially distributed with this mean.
    pub fn exponential(&mut self, mean: Duration) -> Duration {
        let u = self.unit().max(1e-12);
        mean.mul_f64(-u.ln()).min(mean * 20)
    }

    /// `base` give or take a third.
    pub fn around(&mut self, base: Duration) -> Duration {
        base.mul_f64(2.0 / 3.0 + self.unit() * 2.0 / 3.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_gives_the_same_numbers() {
        let a: Vec<u64> = (0..4)
            .scan(Dice::of_text("DM-1"), |d, _| Some(d.next_u64()))
            .collect();
        let b: Vec<u64> = (0..4)
            .scan(Dice::of_text("DM-1"), |d, _| Some(d.next_u64()))
            .collect();
        let c: Vec<u64> = (0..4)
            .scan(Dice::of_text("DM-2"), |d, _| Some(d.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn draws_stay_in_range() {
        let mut d = Dice::seeded(7);
        for _ in 0..10_000 {
            let u = d.unit();
            assert!((0.0..1.0).contains(&u));
            assert!(d.below(5) < 5);
            let e = d.exponential(Duration::from_secs(1));
            assert!(e <= Duration::from_secs(20));
        }
    }
}
