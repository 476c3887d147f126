//! The ranking: entries by mean V_B over the leaderboard's pools on one part (public, or
//! private once revealed), ties broken by fuel (less first) then by who came first; per-benchmark
//! columns; and for each entry whether it differs significantly from the next one down.
//!
//! **Neighbour significance.** The statistic is the difference of the two entries' mean V_B.
//! Each pool's V_B is a mean over its part's queries of `score / best single`, and the pools of a
//! benchmark share those queries, so the difference is a sum over (benchmark, query) units of
//! `sum over the benchmark's pools of (score_a - score_b) / (best_p * pools)`. The paired
//! sign-flip test of [`crate::eval::stats::paired_p_value`] flips whole units (a query's
//! contribution to every pool together), the exchangeability the null hypothesis gives.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use crate::eval::stats::{Resampler, derive_seed, interval, paired_p_value};
use crate::leaderboard::db::{Db, PoolRecord, ResultRow, Submission};
use crate::leaderboard::score::{BEST_SINGLE, Part, part_resampler, part_rows};

/// p-values below this mark a neighbour difference as significant.
pub const ALPHA: f64 = 0.05;

/// Fuel with an SI prefix and three significant digits: `935.5 M`, `129.4 G`.
pub fn fuel_text(f: i64) -> String {
    let v = f as f64;
    let (scaled, prefix) = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|(s, _)| v >= *s)
        .map_or((v, ""), |(s, p)| (v / s, p));
    if prefix.is_empty() {
        format!("{f}")
    } else {
        format!("{scaled:.1} {prefix}")
    }
}

/// One ranked entry.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    /// 1-based rank.
    pub rank: usize,
    /// The submission.
    pub submission: Submission,
    /// Mean V_B over the pools on the part.
    pub mean_vb: Option<f64>,
    /// Its bootstrap interval (each benchmark's part resampled as for the pools' intervals).
    pub mean_vb_ci: Option<(f64, f64)>,
    /// Mean V_B per benchmark (in [`Ranking::benchmarks`] order).
    pub per_benchmark: Vec<Option<f64>>,
    /// Per-pool results (in [`Ranking::pools`] order).
    pub results: Vec<ResultRow>,
    /// The paired test against the next entry down: its p-value.
    pub p_vs_next: Option<f64>,
}

impl Entry {
    /// Whether it differs significantly from the next entry down.
    pub fn differs_from_next(&self) -> Option<bool> {
        self.p_vs_next.map(|p| p < ALPHA)
    }
}

/// A reference row (oracle, random, the best single model): the engine's, not an entry.
#[derive(Clone, Debug, Serialize)]
pub struct BoundRow {
    /// `oracle`, `random`, `best-single`.
    pub name: String,
    /// Mean V_B over the pools.
    pub mean_vb: Option<f64>,
    /// Per benchmark.
    pub per_benchmark: Vec<Option<f64>>,
}

/// The whole ranking of one part.
#[derive(Clone, Debug, Serialize)]
pub struct Ranking {
    /// The leaderboard's title.
    pub title: String,
    /// Which part.
    pub part: Part,
    /// Whether the private part is revealed.
    pub revealed: bool,
    /// The pools.
    pub pools: Vec<PoolRecord>,
    /// The benchmarks, in pool order.
    pub benchmarks: Vec<String>,
    /// Test queries per benchmark on this part.
    pub part_rows: Vec<usize>,
    /// The ranked entries.
    pub entries: Vec<Entry>,
    /// Submissions that failed, newest first, with their results.
    pub failed: Vec<Entry>,
    /// Submissions waiting or being scored.
    pub pending: Vec<Submission>,
    /// Reference rows.
    pub bounds: Vec<BoundRow>,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Means per benchmark and overall of per-pool V_B. A pool without one is left out: V_B is
/// undefined only where every model of the pool scores 0 on the part, and there every router's
/// mu is 0 too, so such a pool tells entries apart no more than it ranks them.
fn summarise(
    pools: &[PoolRecord],
    benchmarks: &[String],
    value: impl Fn(usize) -> Option<f64>,
) -> (Option<f64>, Vec<Option<f64>>) {
    let all: Vec<f64> = (0..pools.len()).filter_map(&value).collect();
    let per = benchmarks
        .iter()
        .map(|b| {
            let v: Vec<f64> = (0..pools.len())
                .filter(|&i| &pools[i].benchmark == b)
                .filter_map(&value)
                .collect();
            mean(&v)
        })
        .collect();
    (mean(&all), per)
}

impl Ranking {
    /// The ranking of `part` from the database.
    ///
    /// # Errors
    /// A database error.
    pub fn build(db: &Db, part: Part) -> Result<Ranking> {
        let config = db.config()?;
        let pools = db.pools()?;
        let datasets = db.datasets()?;
        let mut benchmarks: Vec<String> = Vec::new();
        for p in &pools {
            if !benchmarks.contains(&p.benchmark) {
                benchmarks.push(p.benchmark.clone());
            }
        }
        let rows_of: BTreeMap<String, Vec<usize>> = datasets
            .iter()
            .map(|d| {
                let rows = part_rows(d.test_rows, &d.public_rows, part);
                (d.benchmark.clone(), rows)
            })
            .collect();
        let in_part = |benchmark: &str| -> &[usize] { &rows_of[benchmark] };
        let part_sizes = benchmarks.iter().map(|b| in_part(b).len()).collect();
        // Reference rows.
        let mut by_bound: BTreeMap<String, BTreeMap<i64, Option<f64>>> = BTreeMap::new();
        let mut best: BTreeMap<i64, f64> = BTreeMap::new();
        for (pool, bound, p, vb, mu) in db.bounds()? {
            if p != part.as_str() {
                continue;
            }
            if bound == BEST_SINGLE {
                best.insert(pool, mu);
            }
            by_bound.entry(bound).or_default().insert(pool, vb);
        }
        let mut bounds: Vec<BoundRow> = by_bound
            .into_iter()
            .map(|(name, per_pool)| {
                let (mean_vb, per_benchmark) = summarise(&pools, &benchmarks, |i| {
                    per_pool.get(&pools[i].id).copied().flatten()
                });
                BoundRow {
                    name,
                    mean_vb,
                    per_benchmark,
                }
            })
            .collect();
        bounds.sort_by(|a, b| {
            b.mean_vb
                .unwrap_or(f64::MIN)
                .total_cmp(&a.mean_vb.unwrap_or(f64::MIN))
        });
        let mut entries = Vec::new();
        let mut failed = Vec::new();
        let mut pending = Vec::new();
        for s in db.submissions()? {
            match s.status.as_str() {
                "queued" | "running" => {
                    pending.push(s);
                    continue;
                }
                _ => {}
            }
            let results = db.results(s.id)?;
            let vb_of = |i: usize| -> Option<f64> {
                results
                    .iter()
                    .find(|r| r.pool == pools[i].id)
                    .and_then(|r| r.part(part))
                    .and_then(|p| p.vb)
            };
            let (mean_vb, per_benchmark) = summarise(&pools, &benchmarks, vb_of);
            let entry = Entry {
                rank: 0,
                submission: s,
                mean_vb,
                mean_vb_ci: None,
                per_benchmark,
                results,
                p_vs_next: None,
            };
            if entry.submission.status == "scored" {
                entries.push(entry);
            } else {
                failed.push(entry);
            }
        }
        entries.sort_by(|a, b| {
            let (va, vb) = (a.mean_vb.unwrap_or(f64::MIN), b.mean_vb.unwrap_or(f64::MIN));
            vb.total_cmp(&va)
                .then(
                    a.submission
                        .fuel
                        .unwrap_or(i64::MAX)
                        .cmp(&b.submission.fuel.unwrap_or(i64::MAX)),
                )
                .then(a.submission.id.cmp(&b.submission.id))
        });
        failed.reverse();
        for (i, e) in entries.iter_mut().enumerate() {
            e.rank = i + 1;
        }
        // Intervals of the mean and neighbour comparisons, from the per-query scores.
        let stats = config.statistics;
        if stats.replicates > 0 {
            // The pools that enter the mean (those with a best single model above 0).
            let informative = pools
                .iter()
                .filter(|p| best.get(&p.id).is_some_and(|&b| b > 0.0))
                .count()
                .max(1);
            // Each benchmark's part resampled as the per-pool intervals are (same seeds), so the
            // mean's replicates are the average of the pools' replicates.
            let resamplers: Vec<Option<Resampler>> = benchmarks
                .iter()
                .map(|b| part_resampler(&stats, b, part, in_part(b).len()))
                .collect();
            // Per benchmark, per query of the part: the query's share of the mean V_B times the
            // benchmark's query count (`sum over pools of score / (best * pools)`).
            let contributions = |e: &Entry| -> Option<Vec<Vec<f64>>> {
                let mut out = Vec::new();
                for b in &benchmarks {
                    let rows = in_part(b);
                    let mut acc = vec![0.0f64; rows.len()];
                    for p in pools.iter().filter(|p| &p.benchmark == b) {
                        let scores = e.results.iter().find(|r| r.pool == p.id)?.scores.as_ref()?;
                        let best = *best.get(&p.id)?;
                        if best <= 0.0 {
                            continue;
                        }
                        let w = 1.0 / (best * informative as f64);
                        for (a, &q) in acc.iter_mut().zip(rows) {
                            *a += scores.get(q)? * w;
                        }
                    }
                    out.push(acc);
                }
                Some(out)
            };
            let all: Vec<Option<Vec<Vec<f64>>>> = entries.iter().map(contributions).collect();
            for (e, c) in entries.iter_mut().zip(&all) {
                let Some(c) = c else { continue };
                let mut reps = vec![0.0f64; stats.replicates];
                for (acc, r) in c.iter().zip(&resamplers) {
                    let Some(r) = r.as_ref().filter(|r| !r.is_empty()) else {
                        continue;
                    };
                    for (x, m) in reps.iter_mut().zip(r.means(acc)) {
                        *x += m;
                    }
                }
                e.mean_vb_ci = interval(&reps, stats.level);
            }
            // The paired test's units: (benchmark, query), each its exact share of the mean.
            let units = |c: &Vec<Vec<f64>>| -> Vec<f64> {
                c.iter()
                    .flat_map(|acc| {
                        let n = acc.len().max(1) as f64;
                        acc.iter().map(move |v| v / n)
                    })
                    .collect()
            };
            for i in 0..entries.len().saturating_sub(1) {
                if let (Some(a), Some(b)) = (&all[i], &all[i + 1]) {
                    let seed = derive_seed(
                        stats.seed,
                        &[
                            "neighbours",
                            &entries[i].submission.id.to_string(),
                            &entries[i + 1].submission.id.to_string(),
                            part.as_str(),
                        ],
                    );
                    entries[i].p_vs_next =
                        Some(paired_p_value(&units(a), &units(b), stats.replicates, seed).0);
                }
            }
        }
        Ok(Ranking {
            title: config.title,
            part,
            revealed: db.revealed()?,
            pools,
            benchmarks,
            part_rows: part_sizes,
            entries,
            failed,
            pending,
            bounds,
        })
    }

    /// The ranking as plain text (`leaderboard show`).
    pub fn to_text(&self) -> String {
        use crate::util::terminal_safe;
        let mut out = String::new();
        let total: usize = self.part_rows.iter().sum();
        out.push_str(&format!(
            "{}: {} part ({} test queries over {} benchmark(s), {} pool(s)); ranked by mean V_B, \
             ties by fuel\n\n",
            terminal_safe(&self.title),
            self.part.as_str(),
            total,
            self.benchmarks.len(),
            self.pools.len()
        ));
        let mut head = vec![
            "rank".to_string(),
            "entry".into(),
            "name".into(),
            "author".into(),
            "mean V_B".into(),
            "interval".into(),
        ];
        if self.benchmarks.len() > 1 {
            head.extend(self.benchmarks.iter().cloned());
        }
        head.extend(["fuel".to_string(), "vs next".into()]);
        let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        let clip = |s: &str| -> String {
            let s = terminal_safe(s);
            if s.chars().count() > 32 {
                format!("{}…", s.chars().take(31).collect::<String>())
            } else {
                s.into_owned()
            }
        };
        let mut rows: Vec<Vec<String>> = Vec::new();
        for e in &self.entries {
            let mut r = vec![
                e.rank.to_string(),
                format!("#{}", e.submission.id),
                clip(&e.submission.name),
                clip(e.submission.author.as_deref().unwrap_or("-")),
                fmt(e.mean_vb),
                e.mean_vb_ci
                    .map_or(String::new(), |(lo, hi)| format!("[{lo:.4}, {hi:.4}]")),
            ];
            if self.benchmarks.len() > 1 {
                r.extend(e.per_benchmark.iter().map(|v| fmt(*v)));
            }
            r.push(e.submission.fuel.map_or("-".into(), fuel_text));
            r.push(match e.p_vs_next {
                None => "".into(),
                Some(p) if p < ALPHA => format!("p={p:.3} differs"),
                Some(p) => format!("p={p:.3} ~"),
            });
            rows.push(r);
        }
        let sep = rows.len();
        for b in &self.bounds {
            let mut r = vec![
                String::new(),
                String::new(),
                format!("{} (bound)", b.name),
                String::new(),
                fmt(b.mean_vb),
                String::new(),
            ];
            if self.benchmarks.len() > 1 {
                r.extend(b.per_benchmark.iter().map(|v| fmt(*v)));
            }
            r.extend([String::new(), String::new()]);
            rows.push(r);
        }
        let widths: Vec<usize> = (0..head.len())
            .map(|c| {
                rows.iter()
                    .map(|r| r[c].chars().count())
                    .chain([head[c].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |r: &[String]| -> String {
            r.iter()
                .zip(&widths)
                .map(|(s, w)| format!("{s:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        out.push_str(&line(&head));
        out.push('\n');
        let rule = "-".repeat(widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1));
        out.push_str(&rule);
        out.push('\n');
        if self.entries.is_empty() {
            out.push_str("(no scored entries yet)\n");
        }
        for (i, r) in rows.iter().enumerate() {
            if i == sep {
                out.push_str(&rule);
                out.push('\n');
            }
            out.push_str(&line(r));
            out.push('\n');
        }
        if !self.failed.is_empty() {
            out.push_str("\nfailed:\n");
            for e in &self.failed {
                let s = &e.submission;
                out.push_str(&format!(
                    "  #{} {} ({}): {}: {}\n",
                    s.id,
                    clip(&s.name),
                    clip(s.author.as_deref().unwrap_or("-")),
                    s.error_kinds.as_deref().unwrap_or("?"),
                    terminal_safe(crate::util::clip(
                        s.error
                            .as_deref()
                            .unwrap_or("")
                            .lines()
                            .next()
                            .unwrap_or(""),
                        160
                    ))
                ));
            }
        }
        if !self.pending.is_empty() {
            out.push_str("\nwaiting:\n");
            for s in &self.pending {
                out.push_str(&format!("  #{} {} ({})\n", s.id, clip(&s.name), s.status));
            }
        }
        out
    }
}
