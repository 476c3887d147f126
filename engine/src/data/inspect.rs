//! `routereval-engine inspect DATASET`: what a router dataset holds, before anyone evaluates on
//! it: shapes, pools with their models, each model's and the oracle's accuracy per split, how
//! many scores are fractional, prompts shared between splits (leakage), and checksums.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use serde::Serialize;

use crate::data::{Matrix, Pool, RouterDataset};

/// The accuracies of one pool on one split.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SplitStats {
    /// Queries.
    pub n: usize,
    /// Each model's mean score, in column order.
    pub model_means: Vec<f64>,
    /// The best single model's mean score.
    pub best_single: f64,
    /// Its name.
    pub best_model: String,
    /// Mean over queries of the best score (the oracle router).
    pub oracle: f64,
    /// Fraction of scores that are neither 0 nor 1.
    pub fractional: f64,
}

/// One pool.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolReport {
    /// Easy or hard.
    pub difficulty: String,
    /// Size.
    pub m: usize,
    /// Group.
    pub group: String,
    /// Model names.
    pub models: Vec<String>,
    /// Train, validation and test.
    pub train: SplitStats,
    /// Validation.
    pub val: SplitStats,
    /// Test.
    pub test: SplitStats,
    /// Whether binarised training labels are present.
    pub train_labels: bool,
}

/// A whole dataset.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Benchmark.
    pub benchmark: String,
    /// Where it was read from.
    pub source: String,
    /// SHA-256 of the file, when it is one file.
    pub sha256: Option<String>,
    /// Queries per split.
    pub queries: [usize; 3],
    /// Embedding dimension.
    pub dim: usize,
    /// Whether the dataset carries prompts.
    pub prompts: bool,
    /// Test prompts that also occur in train, validation prompts that occur in train, test
    /// prompts that occur in validation (exact text, empty prompts ignored).
    pub shared_prompts: SharedPrompts,
    /// The pools.
    pub pools: Vec<PoolReport>,
    /// Which items chose the pools' models (`all`, `train`), when this engine built the file;
    /// `None` for RouterEval's own files and others.
    pub pool_selection: Option<String>,
}

/// Prompts shared between splits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SharedPrompts {
    /// Test prompts also in train.
    pub test_in_train: usize,
    /// Validation prompts also in train.
    pub val_in_train: usize,
    /// Test prompts also in validation.
    pub test_in_val: usize,
}

fn stats<T: Copy + Into<f64>>(scores: &Matrix<T>, models: &[String]) -> SplitStats {
    let (n, m) = (scores.rows(), scores.cols());
    // The same sums as the metrics' (`run` and `inspect` agree to the last bit).
    let model_means = scores.column_means();
    let (best_j, best_single) = scores.best_column();
    let fractional = scores
        .as_slice()
        .iter()
        .filter(|&&v| {
            let v: f64 = v.into();
            v != 0.0 && v != 1.0
        })
        .count() as f64
        / (n * m).max(1) as f64;
    SplitStats {
        n,
        best_model: models.get(best_j).cloned().unwrap_or_default(),
        best_single,
        oracle: scores.mean_row_max(),
        model_means,
        fractional,
    }
}

fn pool_report(p: &Pool) -> PoolReport {
    PoolReport {
        difficulty: p.difficulty.as_str().to_string(),
        m: p.m(),
        group: p.group.clone(),
        models: p.models.clone(),
        train: stats(&p.train_scores, &p.models),
        val: stats(&p.val_scores, &p.models),
        test: stats(&p.test_scores, &p.models),
        train_labels: p.train_labels.is_some(),
    }
}

fn shared(a: &[String], b: &[String]) -> usize {
    let set: HashSet<&str> = b
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    a.iter().filter(|s| set.contains(s.as_str())).count()
}

/// Inspects `ds`; `sha256` is the file's checksum when there is one file.
pub fn inspect(ds: &RouterDataset, sha256: Option<String>) -> Report {
    Report {
        benchmark: ds.benchmark.clone(),
        source: ds.source.clone(),
        sha256,
        queries: [ds.train.len(), ds.val.len(), ds.test.len()],
        dim: ds.train.embeddings.cols(),
        prompts: [&ds.train, &ds.val, &ds.test]
            .iter()
            .any(|s| s.prompts.iter().any(|p| !p.is_empty())),
        shared_prompts: SharedPrompts {
            test_in_train: shared(&ds.test.prompts, &ds.train.prompts),
            val_in_train: shared(&ds.val.prompts, &ds.train.prompts),
            test_in_val: shared(&ds.test.prompts, &ds.val.prompts),
        },
        pools: ds.pools.iter().map(pool_report).collect(),
        pool_selection: ds.pool_selection.map(|s| s.as_str().to_string()),
    }
}

/// The report as text.
pub fn to_text(r: &Report) -> String {
    use crate::util::terminal_safe as safe;
    let mut s = String::new();
    let _ = writeln!(s, "{} ({})", safe(&r.benchmark), safe(&r.source));
    if let Some(h) = &r.sha256 {
        let _ = writeln!(s, "  sha256 {h}");
    }
    let [tr, va, te] = r.queries;
    let _ = writeln!(
        s,
        "  queries: train {tr}, val {va}, test {te}; {}-d embeddings; {}",
        r.dim,
        if r.prompts { "prompts" } else { "no prompts" }
    );
    let _ = writeln!(
        s,
        "  pools chosen by: {}",
        match r.pool_selection.as_deref() {
            Some("all") =>
                "accuracy on all items, the test split included (RouterEval's rule; \
                            --select-on all)",
            Some("train") => "accuracy on the training split only (--select-on train)",
            _ => "not recorded (not built by this engine; RouterEval's files use all items)",
        }
    );
    let sp = &r.shared_prompts;
    let _ = writeln!(
        s,
        "  prompts shared between splits: test in train {}, val in train {}, test in val {}",
        sp.test_in_train, sp.val_in_train, sp.test_in_val
    );
    let _ = writeln!(
        s,
        "  {:<6} {:<5} {:<15} {:>7} {:>7} {:>7} {:>7} {:>6}  best single on test; models",
        "pool", "m", "group", "oracle", "best", "or/bsm", "train", "frac"
    );
    for p in &r.pools {
        let names: Vec<String> = p.models.iter().map(|m| safe(m).into_owned()).collect();
        let models = if p.m <= 10 {
            names.join(", ")
        } else {
            format!(
                "{}, ... ({} models)",
                names[..5.min(names.len())].join(", "),
                p.m
            )
        };
        let _ = writeln!(
            s,
            "  {:<6} {:<5} {:<15} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>6.3}  {}; {models}",
            p.difficulty,
            p.m,
            safe(&p.group),
            p.test.oracle,
            p.test.best_single,
            p.test.oracle / p.test.best_single,
            p.train.oracle,
            p.train.fractional,
            safe(&p.test.best_model)
        );
    }
    let _ = writeln!(
        s,
        "  (oracle, best and or/bsm on test; train = oracle on train; frac = fraction of \
         fractional training scores)"
    );
    s
}

/// The sha256 of each dataset's file (of the embedded bytes for the embedded data).
///
/// # Errors
/// A dataset file cannot be read again.
pub fn dataset_checksums(datasets: &[RouterDataset]) -> Result<Vec<String>> {
    use rayon::prelude::*;
    datasets
        .par_iter()
        .map(|d| {
            if d.source.starts_with("embedded:") {
                return Ok(crate::util::sha256_hex(
                    crate::data::embedded::LLMROUTER_PICKLE,
                ));
            }
            crate::util::file_sha256(Path::new(&d.source))
                .with_context(|| format!("cannot read dataset `{}` to checksum it", d.source))
        })
        .collect()
}
