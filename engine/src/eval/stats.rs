//! Whether a difference is real: bootstrap confidence intervals for `mu` and paired
//! comparisons between routers, all over the test queries.
//!
//! - **Interval of `mu`**: the percentile bootstrap. The test queries are resampled with
//!   replacement `replicates` times; the interval is the `(1 - level) / 2` and
//!   `(1 + level) / 2` quantiles of the resampled means.
//! - **The same resamples for every row of a benchmark.** All pools of a benchmark share its
//!   test queries, so one set of resampling weights per test set (seeded by the run's
//!   statistics seed, the benchmark and its size) serves every row on it. Then the replicates
//!   of two rows subtract to the *paired* bootstrap of their difference, and averaging the
//!   replicates of several rows (a table cell over groups, a summary over benchmarks, whose test
//!   sets are resampled independently) gives the bootstrap of that average, correlations
//!   included.
//! - **p-value of a paired difference**: the paired randomisation (sign-flip) test of "the two
//!   routers' scores on a query are exchangeable". It assumes no distribution and is exact in
//!   finite samples. When every per-query difference is -1, 0 or 1 (0/1 scores, the common
//!   case) its distribution depends only on the discordant queries, and it *is* McNemar's exact
//!   test (a two-sided binomial test on the discordant pairs, Dietterich 1998's recommendation
//!   for comparing two classifiers on one test set), computed exactly; otherwise it is computed
//!   from `replicates` seeded random sign flips, `p = (k + 1) / (R + 1)`.
//!
//! **Architecture invariant**: pure functions of their inputs and seeds; nothing here reads
//! files, clocks or global state, so a merged set of shards gives the numbers of one run.

use routereval_kernels::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// How the statistics are computed (recorded in the manifest).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct StatsConfig {
    /// Bootstrap resamples (and sign flips); 0 turns the statistics off.
    pub replicates: usize,
    /// Seed of the resampling.
    pub seed: u64,
    /// Coverage of the intervals, e.g. 0.95.
    pub level: f64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            replicates: 2000,
            seed: 0,
            level: 0.95,
        }
    }
}

/// A seed for one named stream (a benchmark's test set, a pair of routers), derived from the
/// statistics seed so that streams are independent and do not depend on the plan's order.
pub fn derive_seed(seed: u64, parts: &[&str]) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The bootstrap resampling weights of one test set: for each query, how often each replicate
/// drew it (`n x replicates`, query-major so that a row's replicates accumulate contiguously).
#[derive(Clone, Debug)]
pub struct Resampler {
    n: usize,
    replicates: usize,
    counts: Vec<u32>,
}

impl Resampler {
    /// `replicates` resamples of `n` queries, drawn with replacement from `seed`.
    pub fn new(n: usize, replicates: usize, seed: u64) -> Resampler {
        let mut counts = vec![0u32; n * replicates];
        let mut rng = Rng::new(seed);
        if n > 0 {
            for b in 0..replicates {
                for _ in 0..n {
                    let i = rng.below(n as u64) as usize;
                    counts[i * replicates + b] += 1;
                }
            }
        }
        Resampler {
            n,
            replicates,
            counts,
        }
    }

    /// The test set's size.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the test set is empty.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The mean of `scores` under each resample (`scores` has one value per query).
    ///
    /// # Panics
    /// When `scores` does not have one value per query.
    pub fn means(&self, scores: &[f64]) -> Vec<f64> {
        assert_eq!(scores.len(), self.n, "one score per test query");
        let r = self.replicates;
        let mut sums = vec![0.0f64; r];
        for (i, &s) in scores.iter().enumerate() {
            if s == 0.0 {
                continue;
            }
            let w = &self.counts[i * r..(i + 1) * r];
            for (acc, &c) in sums.iter_mut().zip(w) {
                *acc += s * f64::from(c);
            }
        }
        let n = self.n.max(1) as f64;
        sums.iter_mut().for_each(|v| *v /= n);
        sums
    }
}

/// The `q` quantile of `sorted` (ascending), interpolating linearly between order statistics
/// (Hyndman and Fan's type 7, numpy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// The percentile interval of `replicates` at `level`; `None` when there are none.
pub fn interval(replicates: &[f64], level: f64) -> Option<(f64, f64)> {
    if replicates.is_empty() {
        return None;
    }
    let mut s = replicates.to_vec();
    s.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    Some((quantile(&s, tail), quantile(&s, 1.0 - tail)))
}

/// The element-wise mean of several rows' replicates: the bootstrap of their average.
pub fn mean_replicates(rows: &[&[f64]]) -> Option<Vec<f64>> {
    let first = rows.first()?;
    let k = rows.len() as f64;
    let mut out = vec![0.0; first.len()];
    for r in rows {
        if r.len() != out.len() {
            return None;
        }
        for (o, v) in out.iter_mut().zip(r.iter()) {
            *o += v;
        }
    }
    out.iter_mut().for_each(|v| *v /= k);
    Some(out)
}

/// Which test gave a comparison's p-value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PairedTest {
    /// Every per-query difference is -1, 0 or 1: the exact sign-flip test, which is McNemar's
    /// exact test on the discordant queries.
    McnemarExact,
    /// Fractional differences: the sign-flip test by seeded Monte Carlo.
    SignFlip,
}

impl PairedTest {
    /// `mcnemar_exact` or `sign_flip`.
    pub fn as_str(self) -> &'static str {
        match self {
            PairedTest::McnemarExact => "mcnemar_exact",
            PairedTest::SignFlip => "sign_flip",
        }
    }
}

/// The two-sided p-value of the paired sign-flip test of `a` against `b` (one value per query
/// each), and which form of it was used. `flips` and `seed` drive the Monte Carlo form.
///
/// # Panics
/// When `a` and `b` differ in length.
pub fn paired_p_value(a: &[f64], b: &[f64], flips: usize, seed: u64) -> (f64, PairedTest) {
    assert_eq!(a.len(), b.len(), "paired scores");
    let d: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| x - y)
        .filter(|d| *d != 0.0)
        .collect();
    if d.iter().all(|&v| v == 1.0 || v == -1.0) {
        let wins = d.iter().filter(|&&v| v > 0.0).count() as u64;
        let n = d.len() as u64;
        return (mcnemar_exact(wins, n - wins), PairedTest::McnemarExact);
    }
    let observed = d.iter().sum::<f64>().abs();
    // Ties within rounding count as extreme: a flip that reproduces the observed statistic.
    let tol = 1e-9 * d.iter().map(|v| v.abs()).sum::<f64>().max(1.0);
    let mut rng = Rng::new(seed);
    let mut extreme = 0usize;
    for _ in 0..flips {
        let mut t = 0.0;
        let mut bits = 0u64;
        for (k, &v) in d.iter().enumerate() {
            if k % 64 == 0 {
                bits = rng.next_u64();
            }
            t += if bits & 1 == 1 { v } else { -v };
            bits >>= 1;
        }
        if t.abs() >= observed - tol {
            extreme += 1;
        }
    }
    (
        (extreme + 1) as f64 / (flips + 1) as f64,
        PairedTest::SignFlip,
    )
}

/// McNemar's exact test: two-sided binomial test of `b` successes against `c` under p = 1/2,
/// `min(1, 2 P(X <= min(b, c)))`, 1 when there are no discordant pairs.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // ln C(n, i) - n ln 2, summed in log space (n can be tens of thousands).
    let ln2n = n as f64 * std::f64::consts::LN_2;
    let mut ln_c = 0.0f64;
    let mut terms = Vec::with_capacity(k as usize + 1);
    for i in 0..=k {
        if i > 0 {
            ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        terms.push(ln_c - ln2n);
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tail = max.exp() * terms.iter().map(|t| (t - max).exp()).sum::<f64>();
    (2.0 * tail).min(1.0)
}

/// A paired comparison of one row against another on the same test queries.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// The row compared against.
    pub against: String,
    /// `mu` of the row minus `mu` of `against`.
    pub diff: f64,
    /// The paired-bootstrap interval of `diff`.
    pub ci_low: f64,
    /// Its upper end.
    pub ci_high: f64,
    /// The paired test's two-sided p-value.
    pub p_value: f64,
    /// Which test.
    pub test: PairedTest,
}

impl Comparison {
    /// Compares row `a` (scores, replicates, `mu`) against row `b`, labelled `against`.
    #[allow(clippy::too_many_arguments, reason = "two rows of three parts each")]
    pub fn new(
        against: &str,
        (a_scores, a_reps, a_mu): (&[f64], &[f64], f64),
        (b_scores, b_reps, b_mu): (&[f64], &[f64], f64),
        cfg: &StatsConfig,
        seed: u64,
    ) -> Comparison {
        let diffs: Vec<f64> = a_reps.iter().zip(b_reps).map(|(x, y)| x - y).collect();
        let (ci_low, ci_high) = interval(&diffs, cfg.level).unwrap_or((f64::NAN, f64::NAN));
        let (p_value, test) = paired_p_value(a_scores, b_scores, cfg.replicates, seed);
        Comparison {
            against: against.to_string(),
            diff: a_mu - b_mu,
            ci_low,
            ci_high,
            p_value,
            test,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy() {
        // numpy.quantile([1, 2, 3, 4], [0.025, 0.5, 0.975]) = 1.075, 2.5, 3.925
        let s = [1.0, 2.0, 3.0, 4.0];
        assert!((quantile(&s, 0.025) - 1.075).abs() < 1e-12);
        assert!((quantile(&s, 0.5) - 2.5).abs() < 1e-12);
        assert!((quantile(&s, 0.975) - 3.925).abs() < 1e-12);
    }

    #[test]
    fn mcnemar_by_hand() {
        // 2 wins against 8 losses: P(X <= 2) for Binomial(10, 1/2) = 56/1024; two-sided 0.109375.
        assert!((mcnemar_exact(2, 8) - 0.109375).abs() < 1e-12);
        assert!((mcnemar_exact(8, 2) - 0.109375).abs() < 1e-12);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert_eq!(mcnemar_exact(5, 5), 1.0);
        // Large n does not overflow: 6000 vs 4000 is far from 1/2.
        let p = mcnemar_exact(6000, 4000);
        assert!(p > 0.0 && p < 1e-80, "{p}");
    }

    #[test]
    fn a_row_against_itself_is_no_difference() {
        let scores: Vec<f64> = (0..300).map(|i| f64::from(i % 3 == 0)).collect();
        let r = Resampler::new(scores.len(), 500, 7);
        let reps = r.means(&scores);
        let mu = scores.iter().sum::<f64>() / 300.0;
        let cfg = StatsConfig::default();
        let c = Comparison::new("x", (&scores, &reps, mu), (&scores, &reps, mu), &cfg, 1);
        assert_eq!(
            (c.diff, c.ci_low, c.ci_high, c.p_value),
            (0.0, 0.0, 0.0, 1.0)
        );
        let frac: Vec<f64> = (0..50).map(|i| f64::from(i) / 50.0).collect();
        assert_eq!(paired_p_value(&frac, &frac, 100, 3).0, 1.0);
    }

    #[test]
    fn sign_flip_finds_a_real_shift_and_not_a_null_one() {
        let mut rng = Rng::new(11);
        let a: Vec<f64> = (0..400).map(|_| rng.next_f64()).collect();
        let shifted: Vec<f64> = a.iter().map(|v| (v + 0.1).min(1.0)).collect();
        let (p, t) = paired_p_value(&shifted, &a, 2000, 5);
        assert_eq!(t, PairedTest::SignFlip);
        assert!(p < 0.001, "{p}");
        let noise: Vec<f64> = a.iter().map(|_| rng.next_f64()).collect();
        let swapped: Vec<f64> = noise.clone();
        let (p, _) = paired_p_value(&noise, &swapped, 2000, 5);
        assert_eq!(p, 1.0);
    }

    /// The interval's coverage on Bernoulli test sets whose true mean is known: within 2 points
    /// of the nominal 95%.
    #[test]
    fn bootstrap_interval_covers_the_true_mu_95_percent_of_the_time() {
        let (experiments, n, replicates, p) = (1000, 400, 1000, 0.62);
        let mut rng = Rng::new(2026);
        let mut covered = 0;
        for e in 0..experiments {
            let scores: Vec<f64> = (0..n).map(|_| f64::from(rng.next_f64() < p)).collect();
            let r = Resampler::new(n, replicates, derive_seed(0, &["coverage", &e.to_string()]));
            let (lo, hi) = interval(&r.means(&scores), 0.95).unwrap();
            if lo <= p && p <= hi {
                covered += 1;
            }
        }
        let coverage = f64::from(covered) / f64::from(experiments);
        assert!((coverage - 0.95).abs() <= 0.02, "coverage {coverage}");
    }
}
