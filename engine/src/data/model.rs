//! The data model: a router dataset is one benchmark's queries (split into train, validation and
//! test) and its candidate pools.

use crate::util::short_number;
use std::fmt;

/// A dense row-major matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix<T> {
    rows: usize,
    cols: usize,
    data: Vec<T>,
}

impl<T: Copy> Matrix<T> {
    /// Wraps `data` (`rows * cols` values, row-major).
    ///
    /// # Panics
    /// When the length does not match.
    pub fn new(rows: usize, cols: usize, data: Vec<T>) -> Self {
        assert_eq!(
            rows * cols,
            data.len(),
            "matrix data does not match its shape"
        );
        Matrix { rows, cols, data }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The value at `(i, j)`.
    pub fn get(&self, i: usize, j: usize) -> T {
        self.data[i * self.cols + j]
    }

    /// Column `j`, copied.
    pub fn column(&self, j: usize) -> Vec<T> {
        (0..self.rows).map(|i| self.get(i, j)).collect()
    }

    /// A new matrix made of the given columns of `self`, in order.
    pub fn select_columns(&self, cols: &[usize]) -> Self {
        let mut data = Vec::with_capacity(self.rows * cols.len());
        for i in 0..self.rows {
            let r = self.row(i);
            data.extend(cols.iter().map(|&j| r[j]));
        }
        Matrix::new(self.rows, cols.len(), data)
    }
}

/// The statistics of a score matrix that the metrics, the bounds, `inspect` and `build-dataset`
/// all show, computed here once so that they agree to the last bit: sums in f64, row by row.
impl<T: Copy + Into<f64>> Matrix<T> {
    /// Each column's mean: a candidate's mean score.
    pub fn column_means(&self) -> Vec<f64> {
        let mut sums = vec![0.0; self.cols];
        for i in 0..self.rows {
            for (s, &v) in sums.iter_mut().zip(self.row(i)) {
                *s += v.into();
            }
        }
        sums.iter().map(|s| s / self.rows.max(1) as f64).collect()
    }

    /// The best column mean, `max_j mean_i S_ij` (the best single candidate), with its column;
    /// the first on ties.
    pub fn best_column(&self) -> (usize, f64) {
        self.column_means()
            .into_iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |best, (j, v)| {
                if v > best.1 { (j, v) } else { best }
            })
    }

    /// The mean over rows of each row's maximum, `mean_i max_j S_ij` (the oracle's score).
    pub fn mean_row_max(&self) -> f64 {
        (0..self.rows)
            .map(|i| {
                self.row(i)
                    .iter()
                    .map(|&v| v.into())
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .sum::<f64>()
            / self.rows.max(1) as f64
    }

    /// The mean of every entry (the score of uniformly random routing).
    pub fn mean(&self) -> f64 {
        self.data.iter().map(|&v| v.into()).sum::<f64>() / self.data.len().max(1) as f64
    }
}

/// Pool difficulty: RouterEval's easy pools have m in {3, 5}, hard pools m in {10, 100, 1000}.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    /// Few candidates.
    Easy,
    /// Many candidates.
    Hard,
}

impl Difficulty {
    /// The key used in the pickle files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Difficulty::Easy => "easy",
            Difficulty::Hard => "hard",
        }
    }
}

impl fmt::Display for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The queries of one split.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitData {
    /// Embeddings, one row per query.
    pub embeddings: Matrix<f32>,
    /// Prompts, one per query (empty strings when the dataset has none).
    pub prompts: Vec<String>,
}

impl SplitData {
    /// Number of queries.
    pub fn len(&self) -> usize {
        self.embeddings.rows()
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One candidate pool: `m` models and their scores on every split.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// Easy or hard.
    pub difficulty: Difficulty,
    /// Group: `all_strong`, `all_weak`, `strong_to_weak` (or another name a dataset uses).
    pub group: String,
    /// Model names, in column order.
    pub models: Vec<String>,
    /// Training scores, `N_train x m`, as routers see them.
    pub train_scores: Matrix<f32>,
    /// Validation scores, `N_val x m`.
    pub val_scores: Matrix<f32>,
    /// Test scores, `N_test x m`, kept in f64: only the engine reads them.
    pub test_scores: Matrix<f64>,
    /// Binarised training labels (TruthfulQA: 1 where a model scores >= 0.95 x the best model).
    pub train_labels: Option<Matrix<f32>>,
}

impl Pool {
    /// Number of candidates.
    pub fn m(&self) -> usize {
        self.models.len()
    }
}

/// The TruthfulQA benchmark's name in RouterEval; its routers train on `train_label`.
pub const TRUTHFULQA: &str = "harness_truthfulqa_mc_0";

/// The reference accuracies (a strong model such as GPT-4) of RouterEval's 12 benchmarks.
pub const ACC_REF: [(&str, f64); 12] = [
    ("arc", 0.852),
    ("hellaswag", 0.953),
    ("mmlu", 0.864),
    (TRUTHFULQA, 0.669),
    ("winogrande", 0.875),
    ("gsm8k", 0.92),
    ("ifeval", 0.7689),
    ("bbh", 0.8303),
    ("gpqa", 0.397),
    ("math", 0.4),
    ("musr", 0.699),
    ("mmlu_pro", 0.637),
];

/// The reference accuracy of a RouterEval benchmark, `None` for any other name.
pub fn acc_ref(benchmark: &str) -> Option<f64> {
    ACC_REF
        .iter()
        .find(|(b, _)| *b == benchmark)
        .map(|&(_, a)| a)
}

/// A router dataset: one benchmark, its three splits and its pools.
#[derive(Clone, Debug, PartialEq)]
pub struct RouterDataset {
    /// Benchmark name (from the file name: `gsm8k_router_dataset.pkl` is `gsm8k`).
    pub benchmark: String,
    /// Reference accuracy for V_R, known for RouterEval's 12 benchmarks.
    pub acc_ref: Option<f64>,
    /// Where the data came from (a path, or `embedded:...`).
    pub source: String,
    /// Training queries.
    pub train: SplitData,
    /// Validation queries.
    pub val: SplitData,
    /// Test queries.
    pub test: SplitData,
    /// Candidate pools, sorted by difficulty, size and group.
    pub pools: Vec<Pool>,
    /// Which rows of the benchmark each split holds (`split_index` in RouterEval's files),
    /// when known.
    pub split_indices: Option<[Vec<i64>; 3]>,
    /// Which items chose the pools' models, when this engine built the dataset
    /// (`pool_selection` in the file): RouterEval's rule (`all`) or the training split only.
    pub pool_selection: Option<crate::data::build::SelectOn>,
}

impl RouterDataset {
    /// The training scores routers learn from for `pool`: `train_label` for TruthfulQA (whose
    /// raw scores are not binary), as RouterEval does, else `train_score`.
    pub fn training_scores<'a>(&self, pool: &'a Pool) -> &'a Matrix<f32> {
        match (&pool.train_labels, self.benchmark == TRUTHFULQA) {
            (Some(labels), true) => labels,
            _ => &pool.train_scores,
        }
    }

    /// Sorts pools by difficulty, size, then group (RouterEval's three groups first, in the
    /// paper's order).
    pub fn sort_pools(&mut self) {
        self.pools.sort_by_key(pool_order);
    }

    /// Checks what no router and no metric can work with, whatever format the data came from:
    /// embeddings of no dimension or not finite in `f32` (the precision routers see), and scores
    /// or labels outside `[0, 1]` (RouterEval's scores: 1 correct, 0 wrong, fractions for
    /// partial credit, as TruthfulQA's). Fields are named in RouterEval's layout.
    ///
    /// # Errors
    /// The first offending field, with its row and column and what to do.
    pub fn check_values(&self) -> Result<(), String> {
        for (s, split) in [
            ("train", &self.train),
            ("val", &self.val),
            ("test", &self.test),
        ] {
            let e = &split.embeddings;
            if e.cols() == 0 && e.rows() > 0 {
                return Err(format!(
                    "['embedding']['{s}_embed'] has {} rows of 0 values: routers need an \
                     embedding of at least one dimension per query (compute them with a \
                     sentence-embedding model)",
                    e.rows()
                ));
            }
            if let Some(i) = e.as_slice().iter().position(|v| !v.is_finite()) {
                return Err(format!(
                    "['embedding']['{s}_embed'] row {}, column {}: {} is not a finite float32 \
                     (embeddings are read as float32; values beyond about 3.4e38 overflow)",
                    i / e.cols(),
                    i % e.cols(),
                    e.as_slice()[i]
                ));
            }
        }
        for p in &self.pools {
            let at = format!("['{}'][{}]['{}']['data']", p.difficulty, p.m(), p.group);
            let out_of_range = |field: &str, cols: usize, i: usize, v: f64| {
                let v = short_number(v);
                let model = p.models.get(i % cols.max(1)).map_or("", String::as_str);
                format!(
                    "{at}['{field}'] row {}, column {} (model `{}`): {v} is outside [0, 1]; \
                     scores are 1 for a correct answer, 0 for a wrong one, a fraction for \
                     partial credit",
                    i / cols.max(1),
                    i % cols.max(1),
                    model.escape_debug()
                )
            };
            for (field, m) in [
                ("train_score", &p.train_scores),
                ("val_score", &p.val_scores),
            ] {
                if let Some(i) = first_outside_unit(m.as_slice()) {
                    return Err(out_of_range(field, m.cols(), i, f64::from(m.as_slice()[i])));
                }
            }
            let t = &p.test_scores;
            if let Some(i) = first_outside_unit(t.as_slice()) {
                return Err(out_of_range("test_score", t.cols(), i, t.as_slice()[i]));
            }
            if let Some(l) = &p.train_labels
                && let Some(i) = first_outside_unit(l.as_slice())
            {
                return Err(out_of_range(
                    "train_label",
                    l.cols(),
                    i,
                    f64::from(l.as_slice()[i]),
                ));
            }
        }
        Ok(())
    }
}

/// The index of the first value of `xs` outside `[0, 1]` (NaN included). Chunks are tested
/// without branches, so the scan runs at memory speed on the millions of scores of large pools.
fn first_outside_unit<T: Copy + Into<f64>>(xs: &[T]) -> Option<usize> {
    const CHUNK: usize = 256;
    let outside = |v: T| -> bool {
        let v: f64 = v.into();
        !(0.0..=1.0).contains(&v)
    };
    for (c, chunk) in xs.chunks(CHUNK).enumerate() {
        if chunk.iter().fold(false, |acc, &v| acc | outside(v)) {
            return chunk
                .iter()
                .position(|&v| outside(v))
                .map(|i| c * CHUNK + i);
        }
    }
    None
}

fn pool_order(p: &Pool) -> (Difficulty, usize, usize, String) {
    let g = match p.group.as_str() {
        "all_strong" => 0,
        "all_weak" => 1,
        "strong_to_weak" => 2,
        _ => 3,
    };
    (p.difficulty, p.m(), g, p.group.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(benchmark: &str, labels: bool) -> (RouterDataset, Pool) {
        let split = |n: usize| SplitData {
            embeddings: Matrix::new(n, 1, vec![1.0; n]),
            prompts: vec![String::new(); n],
        };
        let pool = Pool {
            difficulty: Difficulty::Easy,
            group: "all_strong".into(),
            models: vec!["a".into(), "b".into()],
            train_scores: Matrix::new(2, 2, vec![0.2, 0.9, 1.0, 0.5]),
            val_scores: Matrix::new(1, 2, vec![0.0, 1.0]),
            test_scores: Matrix::new(1, 2, vec![1.0, 0.0]),
            train_labels: labels.then(|| Matrix::new(2, 2, vec![0.0, 1.0, 1.0, 0.0])),
        };
        let ds = RouterDataset {
            benchmark: benchmark.into(),
            acc_ref: acc_ref(benchmark),
            source: "test".into(),
            train: split(2),
            val: split(1),
            test: split(1),
            pools: vec![pool.clone()],
            split_indices: None,
            pool_selection: None,
        };
        (ds, pool)
    }

    #[test]
    fn truthfulqa_trains_on_labels_others_on_scores() {
        let (ds, pool) = dataset(TRUTHFULQA, true);
        assert_eq!(ds.acc_ref, Some(0.669));
        assert_eq!(ds.training_scores(&pool).as_slice(), &[0.0, 1.0, 1.0, 0.0]);
        let (ds, pool) = dataset("gsm8k", true);
        assert_eq!(ds.training_scores(&pool).as_slice(), &[0.2, 0.9, 1.0, 0.5]);
        let (ds, pool) = dataset(TRUTHFULQA, false);
        assert_eq!(ds.training_scores(&pool).as_slice(), &[0.2, 0.9, 1.0, 0.5]);
        assert_eq!(acc_ref("llmrouter"), None);
    }

    #[test]
    fn matrix_columns() {
        let m = Matrix::new(2, 3, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(m.column(1), vec![2, 5]);
        assert_eq!(m.select_columns(&[2, 0]).as_slice(), &[3, 1, 6, 4]);
    }
}
