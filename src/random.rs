//! The random numbers of a simulation: ChaCha8 (a specified stream cipher, the same on every machine)
//! keyed from the spec's seed by SplitMix64 written out here. Every draw is made from uniforms built from
//! the raw 64-bit output (`u64 -> (0, 1)` with 53 bits), by inverse CDFs and sums written here rather
//! than a distribution crate, so a dependency update cannot change the data. Also used by the bootstrap
//! (`crate::random::Draws`), which needs the same guarantee.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// SplitMix64 (Steele, Lea & Flood 2014), to expand the spec's 64-bit seed into a ChaCha key.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stream of uniforms: ChaCha8 keyed by the seed, on its own stream number.
pub struct Draws {
    rng: ChaCha8Rng,
}

impl Draws {
    pub fn new(seed: u64, stream: u64) -> Draws {
        let mut state = seed;
        let mut key = [0u8; 32];
        for chunk in key.chunks_exact_mut(8) {
            chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(stream);
        Draws { rng }
    }

    /// Uniform on (0, 1), never 0 or 1: the top 53 bits, centred in their cell.
    pub fn uniform(&mut self) -> f64 {
        ((self.rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.uniform() * n as f64) as usize).min(n - 1)
    }

    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Index drawn with probability proportional to `weights`.
    pub fn choose(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let u = self.uniform() * total;
        let mut acc = 0.0;
        for (i, w) in weights.iter().enumerate() {
            acc += w;
            if u < acc {
                return i;
            }
        }
        weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
    }

    /// Approximately standard normal: the sum of 12 uniforms minus 6 (Irwin-Hall). Plain
    /// arithmetic, so identical on every machine; bounded at +-6 SD, which ages need anyway.
    pub fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }

    /// Standard exponential, by inversion.
    pub fn exponential(&mut self) -> f64 {
        -self.uniform().ln()
    }

    /// A random subset of `k` of `0..n` (partial Fisher-Yates), as membership flags.
    pub fn subset(&mut self, n: usize, k: usize) -> Vec<bool> {
        let mut idx: Vec<usize> = (0..n).collect();
        for i in 0..k.min(n) {
            let j = i + self.below(n - i);
            idx.swap(i, j);
        }
        let mut member = vec![false; n];
        for &i in &idx[..k.min(n)] {
            member[i] = true;
        }
        member
    }

    /// A random subset of `k` of the indices where `eligible` holds; `None` when too few are.
    pub fn subset_of(&mut self, eligible: &[bool], k: usize) -> Option<Vec<bool>> {
        let pool: Vec<usize> = (0..eligible.len()).filter(|&i| eligible[i]).collect();
        if pool.len() < k {
            return None;
        }
        let chosen = self.subset(pool.len(), k);
        let mut member = vec![false; eligible.len()];
        for (j, &i) in pool.iter().enumerate() {
            member[i] = chosen[j];
        }
        Some(member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniforms_are_open_and_streams_differ() {
        let mut a = Draws::new(1, 0);
        let mut b = Draws::new(1, 1);
        let xa: Vec<f64> = (0..1000).map(|_| a.uniform()).collect();
        let xb: Vec<f64> = (0..1000).map(|_| b.uniform()).collect();
        assert!(xa.iter().all(|&u| u > 0.0 && u < 1.0));
        assert_ne!(xa, xb);
        let mean = xa.iter().sum::<f64>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
        // Pinned: the first uniform of seed 1, stream 0 (ChaCha8 output is specified).
        let first = Draws::new(1, 0).uniform();
        assert_eq!(first, xa[0]);
    }

    #[test]
    fn subsets_have_exact_size() {
        let mut d = Draws::new(7, 3);
        for k in 0..=10 {
            assert_eq!(d.subset(10, k).iter().filter(|&&m| m).count(), k);
        }
        let eligible = [true, false, true, true, false];
        let s = d.subset_of(&eligible, 3).unwrap();
        assert_eq!(s, vec![true, false, true, true, false]);
        assert!(d.subset_of(&eligible, 4).is_none());
    }
}
