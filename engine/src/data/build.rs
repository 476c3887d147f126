//! Building a router dataset from a population: every model of a leaderboard scored on every
//! query of a benchmark, with each query's sub-benchmark (task), prompt and embedding. The rules
//! are RouterEval's (`get_router_dataset.py`):
//!
//! - **Split** 80/10/10 into train / validation / test, stratified by task: each task's
//!   queries are shuffled, the first `floor(0.8 n)` train, up to `floor(0.9 n)` validation, the
//!   rest test.
//! - **Pools** of each requested size `m` (easy: 3, 5; hard: 10, 100, 1000), from the models
//!   sorted by mean score over all queries, ignoring those at or below 0.1 and those above 0.9:
//!   `all_weak` is the window of `m` consecutive models within the weakest
//!   `max(models / 5, m)` whose oracle accuracy (mean over queries of the best score) is
//!   highest, the first such window on ties; `all_strong` the same within the strongest;
//!   `strong_to_weak` splits the eligible models into `m` bands of equal size (the first bands
//!   one larger when it does not divide) and keeps the best oracle of 1000 draws of one model
//!   per band. A pool whose size the population cannot fill is skipped and reported.
//! - **Labels** for non-binary scores: a model's training label on a query is 1 where its score
//!   is at least 0.95 x the best score in the pool on that query (RouterEval does this for
//!   TruthfulQA, whose routers train on it; it is written for any pool with fractional
//!   training scores, and used for training only for TruthfulQA, as in RouterEval).
//!
//! Sums are numpy's pairwise summation, so means and oracle accuracies, and with them every
//! comparison between windows, come out as in RouterEval's script.
//!
//! **What cannot be replicated bit for bit**: the original draws both the split's shuffles and
//! the strong_to_weak samples from numpy's *global* random state, seeded once (42) and then
//! consumed by every shuffle of every task and every earlier draw, in the order the script
//! happens to visit them (and its input's task order comes from leaderboard files we do not
//! have). The same seed therefore gives a split and draws that depend on everything before
//! them. Here each task's shuffle and each pool's draws come from their own stream, derived from
//! the seed and the task's name or the pool's size: the same seed gives the same dataset
//! whatever else is built, the split has RouterEval's proportions per task, and the windows
//! (all_strong, all_weak), which use no randomness, are RouterEval's exactly.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use routereval_sdk::Rng;
use serde::{Deserialize, Serialize};

use crate::data::{Difficulty, Matrix, Pool, RouterDataset, SplitData, TRUTHFULQA, acc_ref};

/// Every model scored on every query of one benchmark.
#[derive(Clone, Debug, PartialEq)]
pub struct Population {
    /// Benchmark name.
    pub benchmark: String,
    /// Where it came from.
    pub source: String,
    /// Model names, one per score column.
    pub models: Vec<String>,
    /// The sub-benchmark of each query (stratifies the split).
    pub tasks: Vec<String>,
    /// The prompt of each query.
    pub prompts: Vec<String>,
    /// One embedding per query.
    pub embeddings: Matrix<f32>,
    /// `queries x models` scores.
    pub scores: Matrix<f64>,
}

impl Population {
    /// Number of queries.
    pub fn len(&self) -> usize {
        self.scores.rows()
    }

    /// Whether there are no queries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How to build.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildOptions {
    /// Pool sizes; below 10 easy, else hard.
    pub sizes: Vec<usize>,
    /// Seed of the split and of the strong_to_weak draws (RouterEval: 42).
    pub seed: u64,
    /// Draws per strong_to_weak pool (RouterEval: 1000).
    pub draws: usize,
    /// On which items the models' accuracies that choose the pools are computed.
    pub select_on: SelectOn,
}

/// On which items the accuracies that choose a pool's models (the all_strong and all_weak
/// windows, the strong_to_weak draw's bands) are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SelectOn {
    /// Every item, the test split included: RouterEval's rule (`get_router_dataset.py`), which
    /// reproduces its released pools but lets the test labels shape them.
    #[default]
    All,
    /// The training split only: the test labels play no part in which models a pool holds.
    Train,
}

impl SelectOn {
    /// `all` or `train`, as the command line and the dataset file say it.
    pub fn as_str(self) -> &'static str {
        match self {
            SelectOn::All => "all",
            SelectOn::Train => "train",
        }
    }

    /// The rule read back from a dataset file (`pool_selection`).
    pub fn parse(s: &str) -> Option<SelectOn> {
        match s {
            "all" => Some(SelectOn::All),
            "train" => Some(SelectOn::Train),
            _ => None,
        }
    }
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            sizes: vec![3, 5, 10, 100, 1000],
            seed: 42,
            draws: 1000,
            select_on: SelectOn::All,
        }
    }
}

/// A pool that was not built, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Its size.
    pub m: usize,
    /// Its group.
    pub group: String,
    /// Why.
    pub reason: String,
}

/// numpy's pairwise summation of a contiguous `f64` vector (`np.add.reduce`): blocks of up to
/// 128 values summed with eight accumulators, halves above that.
pub fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut s = 0.0;
        for &x in a {
            s += x;
        }
        s
    } else if n <= 128 {
        let mut r = [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]];
        let mut i = 8;
        while i < n - (n % 8) {
            for (k, acc) in r.iter_mut().enumerate() {
                *acc += a[i + k];
            }
            i += 8;
        }
        let mut s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            s += a[i];
            i += 1;
        }
        s
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

fn mean(a: &[f64]) -> f64 {
    pairwise_sum(a) / a.len() as f64
}

/// Python's `seq[start:stop]` bounds for a sequence of `len`, negative indices counting from
/// the end and everything clamped.
fn py_slice(len: usize, start: i64, stop: i64) -> std::ops::Range<usize> {
    let fix = |i: i64| -> usize {
        let len = len as i64;
        (if i < 0 { (i + len).max(0) } else { i.min(len) }) as usize
    };
    let (a, b) = (fix(start), fix(stop));
    a..b.max(a)
}

/// The scores by model: `models x queries`, each row contiguous (as RouterEval's `dataset`),
/// with each model's mean; and, when every score is 0 or 1, each model's correct answers as a
/// bit set, so an oracle over a thousand models is a thousand ORs of a few hundred words and a
/// population count. The count is exact, and so is numpy's pairwise sum of zeros and ones (every
/// partial sum is a small integer), so both give the same mean to the bit.
struct ByModel {
    n: usize,
    rows: Vec<f64>,
    means: Vec<f64>,
    bits: Option<Vec<u64>>,
    words: usize,
}

impl ByModel {
    fn new(scores: &Matrix<f64>) -> ByModel {
        let (n, m) = (scores.rows(), scores.cols());
        let mut rows = vec![0.0; n * m];
        for i in 0..n {
            for (j, &v) in scores.row(i).iter().enumerate() {
                rows[j * n + i] = v;
            }
        }
        let words = n.div_ceil(64);
        let binary = rows.iter().all(|&v| v == 0.0 || v == 1.0);
        let bits = binary.then(|| {
            let mut bits = vec![0u64; words * m];
            for j in 0..m {
                let set = &mut bits[j * words..(j + 1) * words];
                for (i, &v) in rows[j * n..(j + 1) * n].iter().enumerate() {
                    if v == 1.0 {
                        set[i / 64] |= 1 << (i % 64);
                    }
                }
            }
            bits
        });
        let means = (0..m).map(|j| mean(&rows[j * n..(j + 1) * n])).collect();
        ByModel {
            n,
            rows,
            means,
            bits,
            words,
        }
    }

    fn model(&self, j: usize) -> &[f64] {
        &self.rows[j * self.n..(j + 1) * self.n]
    }

    /// RouterEval's `oracle_router`: mean over queries of the best score among `models`.
    fn oracle(&self, models: &[usize]) -> f64 {
        if let Some(bits) = &self.bits {
            let w = self.words;
            let mut any = bits[models[0] * w..(models[0] + 1) * w].to_vec();
            for &j in &models[1..] {
                for (a, &b) in any.iter_mut().zip(&bits[j * w..(j + 1) * w]) {
                    *a |= b;
                }
            }
            let count: u32 = any.iter().map(|x| x.count_ones()).sum();
            return f64::from(count) / self.n as f64;
        }
        let mut best = self.model(models[0]).to_vec();
        for &j in &models[1..] {
            for (b, &v) in best.iter_mut().zip(self.model(j)) {
                // np.max propagates NaN; scores are checked finite on import.
                if v > *b {
                    *b = v;
                }
            }
        }
        mean(&best)
    }
}

/// The best window of `m` consecutive models in `region` (first on ties).
fn best_window(data: &ByModel, region: &[usize], m: usize) -> Option<Vec<usize>> {
    if region.len() < m || m == 0 {
        return None;
    }
    let mut best: Option<(f64, usize)> = None;
    for start in 0..=region.len() - m {
        let score = data.oracle(&region[start..start + m]);
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, start));
        }
    }
    best.map(|(_, s)| region[s..s + m].to_vec())
}

/// A stream of its own for `tag`, derived from the seed.
pub(crate) fn stream(seed: u64, tag: &str) -> Rng {
    // FNV-1a of the tag, mixed with the seed: stable across platforms and versions.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tag.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    Rng::new(seed ^ h.rotate_left(17))
}

/// Selects the candidates of one pool: model indices in RouterEval's order (ascending mean for
/// the windows, band order for strong_to_weak), or why not.
pub fn select(
    scores: &Matrix<f64>,
    m: usize,
    group: &str,
    seed: u64,
    draws: usize,
) -> std::result::Result<Vec<usize>, String> {
    let data = ByModel::new(scores);
    select_in(&data, scores.cols(), m, group, seed, draws)
}

fn select_in(
    data: &ByModel,
    n_models: usize,
    m: usize,
    group: &str,
    seed: u64,
    draws: usize,
) -> std::result::Result<Vec<usize>, String> {
    let means = &data.means;
    let mut sorted: Vec<usize> = (0..n_models).collect();
    // Stable: equal means keep column order (numpy's default sort is stable for the small
    // arrays of the official data; see the module docs).
    sorted.sort_by(|&a, &b| means[a].total_cmp(&means[b]));
    let Some(first) = sorted.iter().position(|&j| means[j] > 0.1) else {
        return Err("no model has a mean score above 0.1".into());
    };
    let last = sorted
        .iter()
        .position(|&j| means[j] > 0.9)
        .unwrap_or(n_models);
    let split_point = (n_models / 5).max(m);
    match group {
        "all_weak" => {
            let r = py_slice(n_models, first as i64, (first + split_point) as i64);
            best_window(data, &sorted[r], m).ok_or_else(|| {
                format!(
                    "the weakest region holds {} eligible model(s), fewer than {m}",
                    py_slice(n_models, first as i64, (first + split_point) as i64).len()
                )
            })
        }
        "all_strong" => {
            let r = py_slice(n_models, last as i64 - split_point as i64, last as i64);
            let len = r.len();
            best_window(data, &sorted[r], m)
                .ok_or_else(|| format!("the strongest region holds {len} model(s), fewer than {m}"))
        }
        "strong_to_weak" => {
            let valid = &sorted[first..last.max(first)];
            if valid.len() < m || m == 0 {
                return Err(format!(
                    "{} model(s) score in (0.1, 0.9], fewer than {m} bands",
                    valid.len()
                ));
            }
            let (size, extra) = (valid.len() / m, valid.len() % m);
            let mut bands = Vec::with_capacity(m);
            let mut at = 0;
            for b in 0..m {
                let end = at + size + usize::from(b < extra);
                bands.push(&valid[at..end]);
                at = end;
            }
            let mut rng = stream(seed, &format!("strong_to_weak/{m}"));
            let mut best: Option<(f64, Vec<usize>)> = None;
            for _ in 0..draws.max(1) {
                let pick: Vec<usize> = bands
                    .iter()
                    .map(|band| band[rng.below(band.len() as u64) as usize])
                    .collect();
                let score = data.oracle(&pick);
                if best.as_ref().is_none_or(|(b, _)| score > *b) {
                    best = Some((score, pick));
                }
            }
            Ok(best.map(|(_, p)| p).unwrap_or_default())
        }
        other => Err(format!(
            "unknown group `{other}` (all_strong, all_weak, strong_to_weak)"
        )),
    }
}

/// The 80/10/10 split, stratified by task: (train, val, test) query indices, each task's in
/// shuffled order, tasks in name order.
pub fn split(tasks: &[String], seed: u64) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut by_task: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, t) in tasks.iter().enumerate() {
        by_task.entry(t.as_str()).or_default().push(i);
    }
    let (mut train, mut val, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for (task, mut idx) in by_task {
        stream(seed, &format!("split/{task}")).shuffle(&mut idx);
        let n = idx.len();
        let (a, b) = (n * 8 / 10, n * 9 / 10);
        train.extend_from_slice(&idx[..a]);
        val.extend_from_slice(&idx[a..b]);
        test.extend_from_slice(&idx[b..]);
    }
    (train, val, test)
}

fn rows<T: Copy>(m: &Matrix<T>, idx: &[usize]) -> Matrix<T> {
    let mut data = Vec::with_capacity(idx.len() * m.cols());
    for &i in idx {
        data.extend_from_slice(m.row(i));
    }
    Matrix::new(idx.len(), m.cols(), data)
}

fn to_f32(m: &Matrix<f64>) -> Matrix<f32> {
    Matrix::new(
        m.rows(),
        m.cols(),
        m.as_slice().iter().map(|&v| v as f32).collect(),
    )
}

/// RouterEval's `process_label`: 1 where a score is at least 0.95 x the row's best.
pub fn labels(scores: &Matrix<f64>) -> Matrix<f32> {
    let mut out = Vec::with_capacity(scores.rows() * scores.cols());
    for i in 0..scores.rows() {
        let row = scores.row(i);
        let best = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        out.extend(row.iter().map(|&v| f32::from(u8::from(v >= 0.95 * best))));
    }
    Matrix::new(scores.rows(), scores.cols(), out)
}

/// Builds the router dataset of `pop` by RouterEval's rules; returns it with the pools that
/// could not be built.
///
/// # Errors
/// An empty population, or one whose shapes disagree.
pub fn build(pop: &Population, opts: &BuildOptions) -> Result<(RouterDataset, Vec<Skipped>)> {
    let (n, n_models) = (pop.len(), pop.models.len());
    if n == 0 || n_models == 0 {
        bail!("`{}` has no queries or no models", pop.source);
    }
    if pop.scores.cols() != n_models
        || pop.tasks.len() != n
        || pop.prompts.len() != n
        || pop.embeddings.rows() != n
    {
        bail!(
            "`{}`: {} queries with {} tasks, {} prompts and {} embeddings, {} models with {} \
             score columns",
            pop.source,
            n,
            pop.tasks.len(),
            pop.prompts.len(),
            pop.embeddings.rows(),
            n_models,
            pop.scores.cols()
        );
    }
    let (train, val, test) = split(&pop.tasks, opts.seed);
    let split_data = |idx: &[usize]| SplitData {
        embeddings: rows(&pop.embeddings, idx),
        prompts: idx.iter().map(|&i| pop.prompts[i].clone()).collect(),
    };
    // The accuracies that choose the pools: on every item (RouterEval) or on the training
    // split only (no test labels involved).
    let data = match opts.select_on {
        SelectOn::All => ByModel::new(&pop.scores),
        SelectOn::Train => ByModel::new(&rows(&pop.scores, &train)),
    };
    let mut pools = Vec::new();
    let mut skipped = Vec::new();
    for &m in &opts.sizes {
        for group in ["all_strong", "all_weak", "strong_to_weak"] {
            match select_in(&data, n_models, m, group, opts.seed, opts.draws) {
                Err(reason) => skipped.push(Skipped {
                    m,
                    group: group.into(),
                    reason,
                }),
                Ok(cols) => {
                    let chosen = pop.scores.select_columns(&cols);
                    let train_scores = rows(&chosen, &train);
                    let fractional = train_scores
                        .as_slice()
                        .iter()
                        .any(|&v| v != 0.0 && v != 1.0);
                    pools.push(Pool {
                        difficulty: if m < 10 {
                            Difficulty::Easy
                        } else {
                            Difficulty::Hard
                        },
                        group: group.into(),
                        models: cols.iter().map(|&j| pop.models[j].clone()).collect(),
                        train_labels: (fractional || pop.benchmark == TRUTHFULQA)
                            .then(|| labels(&train_scores)),
                        train_scores: to_f32(&train_scores),
                        val_scores: to_f32(&rows(&chosen, &val)),
                        test_scores: rows(&chosen, &test),
                    });
                }
            }
        }
    }
    let mut ds = RouterDataset {
        benchmark: pop.benchmark.clone(),
        acc_ref: acc_ref(&pop.benchmark),
        source: pop.source.clone(),
        train: split_data(&train),
        val: split_data(&val),
        test: split_data(&test),
        pools,
        split_indices: Some([&train, &val, &test].map(|v| v.iter().map(|&i| i as i64).collect())),
        pool_selection: Some(opts.select_on),
    };
    ds.sort_pools();
    Ok((ds, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bit-set oracle (0/1 scores) and the float path give the same mean to the bit, on
    /// query counts that end mid-word and on subsets of every size, and so pick the same
    /// windows.
    #[test]
    fn the_bit_set_oracle_equals_the_float_path() {
        let mut rng = Rng::new(17);
        for n in [1usize, 63, 64, 65, 200, 1001] {
            let m = 40;
            let data: Vec<f64> = (0..n * m)
                .map(|k| f64::from(u8::from(rng.next_u64().is_multiple_of(2 + k as u64 % 5))))
                .collect();
            let bits = ByModel::new(&Matrix::new(n, m, data));
            assert!(bits.bits.is_some(), "0/1 scores take the bit-set path");
            let float = ByModel {
                bits: None,
                ..ByModel::new(&bits_matrix(&bits))
            };
            for size in 1..=m {
                let start = (rng.next_u64() as usize) % (m - size + 1);
                let models: Vec<usize> = (start..start + size).collect();
                let (a, b) = (bits.oracle(&models), float.oracle(&models));
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "n={n} models {models:?}: {a} vs {b}"
                );
            }
            let region: Vec<usize> = (0..m).collect();
            for w in [1, 3, 10] {
                assert_eq!(
                    best_window(&bits, &region, w),
                    best_window(&float, &region, w)
                );
            }
        }
    }

    /// The queries x models matrix a [`ByModel`] was made from.
    fn bits_matrix(b: &ByModel) -> Matrix<f64> {
        let m = b.rows.len() / b.n;
        let mut out = vec![0.0; b.n * m];
        for j in 0..m {
            for i in 0..b.n {
                out[i * m + j] = b.rows[j * b.n + i];
            }
        }
        Matrix::new(b.n, m, out)
    }

    #[test]
    fn pairwise_sum_matches_numpy_order() {
        // Below 8 values: left to right.
        assert_eq!(pairwise_sum(&[1.0, 2.0, 3.0]), 6.0);
        // 0.1 x 10: numpy's np.sum gives 1.0 (eight accumulators, then the rest), plain left to
        // right gives 0.9999999999999999.
        assert_eq!(pairwise_sum(&[0.1; 10]), 1.0);
        assert_ne!([0.1f64; 10].iter().sum::<f64>(), 1.0);
        // Above 128: halves.
        let v: Vec<f64> = (0..1000).map(|i| f64::from(i) * 0.001).collect();
        let halves = pairwise_sum(&v[..496]) + pairwise_sum(&v[496..]);
        assert_eq!(pairwise_sum(&v), halves);
    }

    #[test]
    fn python_slices() {
        assert_eq!(py_slice(9, 4, 9), 4..9);
        assert_eq!(py_slice(9, -2, 9), 7..9);
        assert_eq!(py_slice(9, -20, 3), 0..3);
        assert_eq!(py_slice(9, 5, 3), 5..5);
    }

    /// 6 models with means 0.05, 0.2, 0.4, 0.6, 0.8, 0.95 on 20 queries, built so that windows
    /// differ in oracle accuracy.
    fn toy() -> Matrix<f64> {
        let means = [0.05, 0.2, 0.4, 0.6, 0.8, 0.95];
        let n = 20;
        let mut data = vec![0.0; n * 6];
        for (j, &p) in means.iter().enumerate() {
            let ones = (p * n as f64).round() as usize;
            for k in 0..ones {
                // Spread each model's correct answers differently.
                let i = (k * (j + 3) + j) % n;
                let mut i2 = i;
                while data[i2 * 6 + j] == 1.0 {
                    i2 = (i2 + 1) % n;
                }
                data[i2 * 6 + j] = 1.0;
            }
        }
        Matrix::new(n, 6, data)
    }

    #[test]
    fn windows_and_bands_follow_the_rules() {
        let s = toy();
        // Eligible: means in (0.1, 0.9]: models 1..=4. split_point = max(6 / 5, m) = m.
        let weak = select(&s, 2, "all_weak", 42, 1000).unwrap();
        assert_eq!(weak, vec![1, 2], "the weakest region is exactly m models");
        let strong = select(&s, 2, "all_strong", 42, 1000).unwrap();
        assert_eq!(strong, vec![3, 4]);
        let s2w = select(&s, 2, "strong_to_weak", 42, 1000).unwrap();
        // Bands: [1, 2] and [3, 4], one model from each.
        assert!(
            [1, 2].contains(&s2w[0]) && [3, 4].contains(&s2w[1]),
            "{s2w:?}"
        );
        assert!(select(&s, 5, "strong_to_weak", 42, 1000).is_err());
        assert_eq!(select(&s, 2, "strong_to_weak", 42, 1000), Ok(s2w));
    }

    #[test]
    fn split_is_eighty_ten_ten_per_task_and_seeded() {
        let tasks: Vec<String> = (0..47)
            .map(|i| if i < 30 { "a" } else { "b" }.to_string())
            .collect();
        let (tr, va, te) = split(&tasks, 42);
        // a: 30 -> 24 / 3 / 3; b: 17 -> 13 / 2 / 2.
        assert_eq!((tr.len(), va.len(), te.len()), (37, 5, 5));
        let mut all: Vec<usize> = tr.iter().chain(&va).chain(&te).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..47).collect::<Vec<_>>());
        assert_eq!(split(&tasks, 42), (tr.clone(), va, te));
        assert_ne!(split(&tasks, 7).0, tr);
    }

    #[test]
    fn labels_are_relative_to_the_best_model() {
        let s = Matrix::new(2, 3, vec![0.5, 0.48, 0.2, 0.0, 0.0, 0.0]);
        assert_eq!(labels(&s).as_slice(), &[1.0, 1.0, 0.0, 1.0, 1.0, 1.0]);
    }
}
