//! Random numbers and YCSB's key choosers: scrambled zipfian, skewed-latest and uniform.

/// splitmix64: small, fast, and good enough to pick keys and operations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// YCSB's zipfian constant.
pub const THETA: f64 = 0.99;

/// Gray et al.'s zipfian generator over ranks [0, n), as YCSB's `ZipfianGenerator`: rank 0 is
/// the most popular.
pub struct Zipf {
    n: f64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Zipf {
    /// Over `n` items, computing zeta(n) (about 20 ms for a million).
    pub fn new(n: u64, theta: f64) -> Self {
        Self::with_zetan(n, theta, zeta(n, theta))
    }

    fn with_zetan(n: u64, theta: f64, zetan: f64) -> Self {
        let zeta2 = zeta(2, theta);
        let nf = n as f64;
        Zipf {
            n: nf,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta: (1.0 - (2.0 / nf).powf(1.0 - theta)) / (1.0 - zeta2 / zetan),
        }
    }

    pub fn next(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let r = (self.n * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(self.n as u64 - 1)
    }
}

/// YCSB's `ScrambledZipfianGenerator`: a zipfian over 10^10 items (YCSB's precomputed zeta),
/// hashed with 64-bit FNV onto [0, n), so the popular keys are spread over the key space.
pub struct ScrambledZipf {
    inner: Zipf,
    n: u64,
}

const ITEM_COUNT: u64 = 10_000_000_000;
const ZETAN: f64 = 26.469_028_201_783_02;

impl ScrambledZipf {
    pub fn new(n: u64) -> Self {
        ScrambledZipf {
            inner: Zipf::with_zetan(ITEM_COUNT, THETA, ZETAN),
            n,
        }
    }

    pub fn next(&self, rng: &mut Rng) -> u64 {
        fnv64(self.inner.next(rng)) % self.n
    }
}

/// YCSB's `Utils.fnvhash64`.
pub fn fnv64(mut v: u64) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for _ in 0..8 {
        h ^= v & 0xff;
        h = h.wrapping_mul(1_099_511_628_211);
        v >>= 8;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_is_skewed_and_in_range() {
        let z = ScrambledZipf::new(1000);
        let mut rng = Rng::new(1);
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            counts[z.next(&mut rng) as usize] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        // YCSB's scrambled zipfian gives its ten most popular ranks H(10) / zeta ≈ 2.93 / 26.47
        // ≈ 11% of the picks (uniform keys would give 1%).
        let top: u32 = counts[..10].iter().sum();
        assert!(
            (9_000..16_000).contains(&top),
            "top 10 keys: {top} of 100000"
        );
        let latest = Zipf::new(1000, THETA);
        assert!((0..10_000).all(|_| latest.next(&mut rng) < 1000));
    }
}
