//! Which key each operation touches: uniform or zipfian over a fixed key space.
//!
//! The zipfian generator is the one YCSB uses (Gray et al., "Quickly Generating
//! Billion-Record Synthetic Databases", SIGMOD 1994): after computing
//! ζ(n, θ) = Σ_{i=1..n} 1/i^θ once, each draw costs one `powf`. Rank 0 is the
//! most popular item, drawn with probability 1/ζ(n, θ); rank k with
//! probability ∝ 1/(k+1)^θ. As in YCSB's "scrambled zipfian", ranks are then
//! mapped to keys through a fixed permutation of the key space, so the hot keys
//! are spread over it rather than being `key:0`, `key:1`, … side by side.

use crate::rng::Rng;

/// How keys are drawn from the key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// Zipfian with exponent `--theta` (YCSB's default 0.99: with 100,000 keys
    /// the hottest key gets about 8% of the operations, the hottest 1% of keys
    /// about 60%).
    Zipfian,
}

/// ζ(n, θ) = Σ_{i=1..n} 1/i^θ.
pub fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

/// YCSB's zipfian generator over ranks `0..n`.
#[derive(Debug, Clone)]
pub struct Zipfian {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    half_pow_theta: f64,
}

impl Zipfian {
    /// A generator over `n >= 1` items with exponent `0 < theta < 1`.
    pub fn new(n: u64, theta: f64) -> Result<Zipfian, String> {
        if n == 0 {
            return Err("the key space must hold at least one key".into());
        }
        if !(theta > 0.0 && theta < 1.0) {
            return Err(format!(
                "zipfian theta must be strictly between 0 and 1, got {theta}"
            ));
        }
        let zetan = zeta(n, theta);
        let zeta2 = zeta(2, theta);
        let eta = if n > 2 {
            (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan)
        } else {
            0.0
        };
        Ok(Zipfian {
            n,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
            half_pow_theta: 0.5f64.powf(theta),
        })
    }

    /// Number of items.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The exponent θ.
    pub fn theta(&self) -> f64 {
        self.theta
    }

    /// ζ(n, θ): rank 0 is drawn with probability 1/ζ(n, θ).
    pub fn zetan(&self) -> f64 {
        self.zetan
    }

    /// The rank in `0..n` for a uniform `u` in `[0, 1)`.
    pub fn rank(&self, u: f64) -> u64 {
        let uz = u * self.zetan;
        if uz < 1.0 || self.n == 1 {
            return 0;
        }
        if uz < 1.0 + self.half_pow_theta || self.n == 2 {
            return 1;
        }
        let r = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(self.n - 1)
    }

    /// Draws a rank.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        self.rank(rng.next_f64())
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Chooses key indexes in `0..n` and spells them as fixed-width keys.
#[derive(Debug, Clone)]
pub struct KeyChooser {
    n: u64,
    zipf: Option<Zipfian>,
    /// The permutation rank -> index is `(mul * rank + add) mod n`, a bijection
    /// because `gcd(mul, n) == 1`.
    mul: u64,
    add: u64,
    prefix: String,
    width: usize,
}

impl KeyChooser {
    /// A chooser over `n` keys named `{prefix}{index}`, the index zero-padded
    /// to the width of `n - 1` so every key has the same length.
    pub fn new(
        n: u64,
        distribution: Distribution,
        theta: f64,
        prefix: &str,
    ) -> Result<KeyChooser, String> {
        if n == 0 {
            return Err("--keys must be at least 1".into());
        }
        let zipf = match distribution {
            Distribution::Uniform => None,
            Distribution::Zipfian => Some(Zipfian::new(n, theta)?),
        };
        let mut mul = 0x9E37_79B9_7F4A_7C15 % n;
        while n > 1 && gcd(mul.max(1), n) != 1 {
            mul = (mul + 1) % n;
        }
        let mul = mul.max(1);
        Ok(KeyChooser {
            n,
            zipf,
            mul,
            add: 0x2545_F491_4F6C_DD1D % n,
            prefix: prefix.to_string(),
            width: (n - 1).max(1).to_string().len(),
        })
    }

    /// Size of the key space.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Always false: a key space holds at least one key.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The key index a zipfian rank maps to (a fixed permutation).
    pub fn scramble(&self, rank: u64) -> u64 {
        ((self.mul as u128 * rank as u128 + self.add as u128) % self.n as u128) as u64
    }

    /// Draws a key index.
    pub fn choose(&self, rng: &mut Rng) -> u64 {
        match &self.zipf {
            None => rng.below(self.n),
            Some(z) => self.scramble(z.sample(rng)),
        }
    }

    /// The key with index `i`, e.g. `key:00042` for 100,000 keys.
    pub fn key(&self, i: u64) -> Vec<u8> {
        format!("{}{:0width$}", self.prefix, i, width = self.width).into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(z: &Zipfian, draws: usize, seed: u64) -> Vec<u64> {
        let mut rng = Rng::new(seed);
        let mut h = vec![0u64; z.n() as usize];
        for _ in 0..draws {
            h[z.sample(&mut rng) as usize] += 1;
        }
        h
    }

    #[test]
    fn zipfian_head_matches_the_exact_probabilities() {
        let n = 1000;
        let z = Zipfian::new(n, 0.99).unwrap();
        let draws = 400_000;
        let h = histogram(&z, draws, 1);
        // The generator is exact for ranks 0 and 1.
        for k in 0..2u64 {
            let p = 1.0 / ((k + 1) as f64).powf(0.99) / z.zetan();
            let got = h[k as usize] as f64 / draws as f64;
            assert!((got - p).abs() / p < 0.03, "rank {k}: {got} vs {p}");
        }
        // Beyond them it approximates: the mass of the 10 and 100 hottest
        // ranks stays within a few percent of the exact zipfian CDF.
        for top in [10usize, 100] {
            let exact: f64 =
                (1..=top).map(|i| 1.0 / (i as f64).powf(0.99)).sum::<f64>() / z.zetan();
            let got = h[..top].iter().sum::<u64>() as f64 / draws as f64;
            assert!(
                (got - exact).abs() / exact < 0.05,
                "top {top}: {got} vs {exact}"
            );
        }
        // Popularity falls with rank.
        assert!(h[0] > h[1] && h[1] > h[5] && h[5] > h[50] && h[50] > h[500]);
    }

    #[test]
    fn zipfian_skew_grows_with_theta() {
        let n = 10_000;
        let share_of_top_1pct = |theta: f64| {
            let z = Zipfian::new(n, theta).unwrap();
            let h = histogram(&z, 200_000, 2);
            h[..100].iter().sum::<u64>() as f64 / 200_000.0
        };
        let low = share_of_top_1pct(0.5);
        let high = share_of_top_1pct(0.99);
        // Uniform would give 1%.
        assert!(low > 0.05 && low < 0.2, "theta 0.5: {low}");
        assert!(high > 0.5, "theta 0.99: {high}");
    }

    #[test]
    fn zipfian_rejects_bad_parameters_and_handles_tiny_spaces() {
        assert!(Zipfian::new(0, 0.99).is_err());
        assert!(Zipfian::new(10, 1.0).is_err());
        assert!(Zipfian::new(10, 0.0).is_err());
        let one = Zipfian::new(1, 0.99).unwrap();
        assert_eq!(one.rank(0.999), 0);
        let two = Zipfian::new(2, 0.99).unwrap();
        let h = histogram(&two, 10_000, 3);
        assert_eq!(h.len(), 2);
        assert!(h[0] > h[1] && h[1] > 0);
        for u in [0.0, 0.5, 0.999_999] {
            assert!(Zipfian::new(3, 0.5).unwrap().rank(u) < 3);
        }
    }

    #[test]
    fn scramble_is_a_permutation() {
        for n in [1u64, 2, 7, 10, 1000, 1024, 99_991, 100_000] {
            let c = KeyChooser::new(n, Distribution::Zipfian, 0.99, "k").unwrap();
            let mut seen = vec![false; n as usize];
            for r in 0..n {
                let i = c.scramble(r) as usize;
                assert!(!seen[i], "n {n}: index {i} twice");
                seen[i] = true;
            }
        }
    }

    #[test]
    fn uniform_chooser_covers_the_key_space_evenly() {
        let c = KeyChooser::new(100, Distribution::Uniform, 0.99, "key:").unwrap();
        let mut rng = Rng::new(4);
        let mut h = [0u32; 100];
        for _ in 0..200_000 {
            h[c.choose(&mut rng) as usize] += 1;
        }
        for (i, &count) in h.iter().enumerate() {
            assert!((1800..2200).contains(&count), "key {i}: {count}");
        }
    }

    #[test]
    fn zipfian_chooser_hot_key_gets_its_share() {
        let n = 1000;
        let c = KeyChooser::new(n, Distribution::Zipfian, 0.99, "key:").unwrap();
        let mut rng = Rng::new(5);
        let mut h = vec![0u32; n as usize];
        for _ in 0..200_000 {
            h[c.choose(&mut rng) as usize] += 1;
        }
        let hottest = (0..n as usize).max_by_key(|&i| h[i]).unwrap();
        assert_eq!(hottest as u64, c.scramble(0));
        let share = h[hottest] as f64 / 200_000.0;
        let expected = 1.0 / zeta(n, 0.99);
        assert!(
            (share - expected).abs() / expected < 0.05,
            "{share} vs {expected}"
        );
    }

    #[test]
    fn keys_have_a_fixed_width() {
        let c = KeyChooser::new(100_000, Distribution::Uniform, 0.99, "key:").unwrap();
        assert_eq!(c.key(42), b"key:00042");
        assert_eq!(c.key(99_999), b"key:99999");
        let one = KeyChooser::new(1, Distribution::Uniform, 0.99, "k").unwrap();
        assert_eq!(one.key(0), b"k0");
    }
}
