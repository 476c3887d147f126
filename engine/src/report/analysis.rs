//! The statistics of a result set: each row's interval for `mu`, its paired comparisons in its
//! pool, and the intervals of averages (table cells over groups, summaries over benchmarks).
//! Everything is a function of the rows (their per-query scores) and the [`StatsConfig`], so a
//! merged set of shards reports exactly what one run reports.

use rayon::prelude::*;

use crate::eval::run::EvalResult;
use crate::eval::stats::{self, Comparison, Resampler, StatsConfig};

/// The reference router every row is compared against, when the run has it.
pub const REFERENCE_ROUTER: &str = "best-on-train";

/// One row's statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RowStats {
    /// The interval of `mu`.
    pub ci: Option<(f64, f64)>,
    /// Against `best-on-train` in the same pool.
    pub vs_best_on_train: Option<Comparison>,
    /// Against the pool's best router (by `mu`; the first in row order on ties).
    pub vs_best: Option<Comparison>,
}

/// The statistics of a result set.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// How they were computed.
    pub config: StatsConfig,
    /// Per row, in the rows' order.
    pub rows: Vec<RowStats>,
    /// Per row, its bootstrap replicates of `mu` (when it has per-query scores).
    replicates: Vec<Option<Vec<f64>>>,
}

/// Whether a row takes part in comparisons: a router (not a bound) that the engine scored.
fn comparable(r: &EvalResult) -> bool {
    !r.is_bound() && !r.self_reported && r.is_ok() && r.query_scores.is_some()
}

impl Analysis {
    /// Computes the statistics of `results` (no statistics when `config.replicates` is 0).
    pub fn new(results: &[EvalResult], config: StatsConfig) -> Analysis {
        let mut replicates: Vec<Option<Vec<f64>>> = vec![None; results.len()];
        if config.replicates > 0 {
            // One resampler per test set (a benchmark and its size), in first-seen order.
            let mut sets: Vec<(&str, usize, Vec<usize>)> = Vec::new();
            for (i, r) in results.iter().enumerate() {
                let Some(q) = &r.query_scores else { continue };
                if !r.is_ok() {
                    continue;
                }
                match sets
                    .iter_mut()
                    .find(|(b, n, _)| *b == r.benchmark && *n == q.len())
                {
                    Some(s) => s.2.push(i),
                    None => sets.push((&r.benchmark, q.len(), vec![i])),
                }
            }
            for (bench, n, rows) in sets {
                let seed = stats::derive_seed(config.seed, &["test-set", bench, &n.to_string()]);
                let resampler = Resampler::new(n, config.replicates, seed);
                let reps: Vec<(usize, Vec<f64>)> = rows
                    .par_iter()
                    .map(|&i| {
                        let q = results[i].query_scores.as_deref().expect("has scores");
                        (i, resampler.means(q))
                    })
                    .collect();
                for (i, r) in reps {
                    replicates[i] = Some(r);
                }
            }
        }
        let mut rows: Vec<RowStats> = replicates
            .iter()
            .map(|r| RowStats {
                ci: r.as_deref().and_then(|r| stats::interval(r, config.level)),
                ..RowStats::default()
            })
            .collect();
        // Paired comparisons, pool by pool.
        let mut pools: Vec<Vec<usize>> = Vec::new();
        for (i, r) in results.iter().enumerate() {
            if !comparable(r) || replicates[i].is_none() {
                continue;
            }
            // Rows are paired only on the same queries: same pool, same number of scores (a
            // results file from elsewhere could hold rows of another test set under one name).
            let n = r.query_scores.as_ref().map_or(0, |q| q.len());
            let same = |j: &usize| {
                let o = &results[*j];
                o.benchmark == r.benchmark
                    && o.difficulty == r.difficulty
                    && o.m == r.m
                    && o.group == r.group
                    && o.query_scores.as_ref().map_or(0, |q| q.len()) == n
            };
            match pools.iter_mut().find(|p| p.first().is_some_and(same)) {
                Some(p) => p.push(i),
                None => pools.push(vec![i]),
            }
        }
        let compare = |a: usize, b: usize| -> Comparison {
            let (ra, rb) = (&results[a], &results[b]);
            let seed = stats::derive_seed(
                config.seed,
                &[
                    "paired",
                    &ra.benchmark,
                    &ra.difficulty.to_string(),
                    &ra.m.to_string(),
                    &ra.group,
                    &ra.router,
                    &rb.router,
                ],
            );
            Comparison::new(
                &rb.router,
                (
                    ra.query_scores.as_deref().expect("comparable"),
                    replicates[a].as_deref().expect("comparable"),
                    ra.metrics().expect("comparable").mu,
                ),
                (
                    rb.query_scores.as_deref().expect("comparable"),
                    replicates[b].as_deref().expect("comparable"),
                    rb.metrics().expect("comparable").mu,
                ),
                &config,
                seed,
            )
        };
        let pairs: Vec<(usize, Option<Comparison>, Option<Comparison>)> = pools
            .par_iter()
            .flat_map_iter(|pool| {
                let reference = pool
                    .iter()
                    .copied()
                    .find(|&i| results[i].router == REFERENCE_ROUTER);
                let mu = |i: usize| results[i].metrics().map_or(f64::NEG_INFINITY, |m| m.mu);
                let best = pool
                    .iter()
                    .copied()
                    .reduce(|b, i| if mu(i) > mu(b) { i } else { b });
                pool.iter()
                    .map(|&i| {
                        (
                            i,
                            reference.map(|r| compare(i, r)),
                            best.map(|b| compare(i, b)),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        for (i, vs_ref, vs_best) in pairs {
            rows[i].vs_best_on_train = vs_ref;
            rows[i].vs_best = vs_best;
        }
        Analysis {
            config,
            rows,
            replicates,
        }
    }

    /// The interval of the mean `mu` of `rows` (indices into the result set): the percentile
    /// interval of their averaged replicates. `None` when any has no replicates.
    pub fn mean_interval(&self, rows: &[usize]) -> Option<(f64, f64)> {
        let reps: Option<Vec<&[f64]>> = rows
            .iter()
            .map(|&i| self.replicates.get(i)?.as_deref())
            .collect();
        let mean = stats::mean_replicates(&reps?)?;
        stats::interval(&mean, self.config.level)
    }

    /// The interval of a mean of means: each inner list of rows averaged, then the averages
    /// averaged (a summary over benchmarks of cells over groups).
    pub fn mean_of_means_interval(&self, groups: &[Vec<usize>]) -> Option<(f64, f64)> {
        let inner: Option<Vec<Vec<f64>>> = groups
            .iter()
            .map(|rows| {
                let reps: Option<Vec<&[f64]>> = rows
                    .iter()
                    .map(|&i| self.replicates.get(i)?.as_deref())
                    .collect();
                stats::mean_replicates(&reps?)
            })
            .collect();
        let inner = inner?;
        let refs: Vec<&[f64]> = inner.iter().map(Vec::as_slice).collect();
        stats::interval(&stats::mean_replicates(&refs)?, self.config.level)
    }

    /// The interval of the mean paired difference between `rows` and `against` (index pairs):
    /// the bootstrap of an averaged difference.
    pub fn mean_diff_interval(&self, pairs: &[(usize, usize)]) -> Option<(f64, f64)> {
        let diffs: Option<Vec<Vec<f64>>> = pairs
            .iter()
            .map(|&(a, b)| {
                let (ra, rb) = (
                    self.replicates.get(a)?.as_deref()?,
                    self.replicates.get(b)?.as_deref()?,
                );
                Some(ra.iter().zip(rb).map(|(x, y)| x - y).collect())
            })
            .collect();
        let diffs = diffs?;
        let refs: Vec<&[f64]> = diffs.iter().map(Vec::as_slice).collect();
        let mean = stats::mean_replicates(&refs)?;
        stats::interval(&mean, self.config.level)
    }
}
