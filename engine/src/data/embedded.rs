//! The default dataset, shipped inside the binary.
//!
//! It is the real LLMRouter data (9 LLMs, 5,608 queries of 14 tasks, MIT licence; see
//! `engine/data/llmrouter/PROVENANCE.md`) as the RouterEval-format pickle
//! `llmrouter_router_dataset.pkl`, embedded byte for byte. Why this form: it is the original
//! file (its checksum proves its provenance, a test checks it), it is read by the same safe
//! reader as every user's file (so the default run exercises that path), and it needs no
//! generated artefact or conversion step. Its pools are those of the file (easy, m = 3 and 5, in
//! three groups each), plus one pool of all 9 models (group `all_models`) assembled from the
//! columns of those pools, which between them cover every model.

use anyhow::{Result, bail};

use crate::data::load::from_pickle_bytes;
use crate::data::{Difficulty, Matrix, Pool, RouterDataset};

/// The embedded pickle, byte for byte as in the LLMRouter data release.
pub const LLMROUTER_PICKLE: &[u8] =
    include_bytes!("../../data/llmrouter/llmrouter_router_dataset.pkl");

/// The name the embedded dataset's benchmark goes by.
pub const DEFAULT_BENCHMARK: &str = "llmrouter";

/// The group name of the pool of every model.
pub const ALL_MODELS_GROUP: &str = "all_models";

/// Loads the embedded default dataset, with the pool of all models added.
///
/// # Errors
/// Only if the embedded file were corrupt (a test guards against that).
pub fn default_dataset() -> Result<RouterDataset> {
    let mut ds = from_pickle_bytes(
        LLMROUTER_PICKLE,
        DEFAULT_BENCHMARK,
        "embedded:llmrouter_router_dataset.pkl",
    )?;
    let all = union_pool(&ds.pools, ALL_MODELS_GROUP)?;
    ds.pools.push(all);
    ds.sort_pools();
    Ok(ds)
}

/// Builds a pool of every model that appears in `pools`, sorted by name, from their score
/// columns; fails if one model's scores differ between pools (they come from one matrix).
///
/// # Errors
/// When a model's columns disagree between pools or there are no pools.
pub fn union_pool(pools: &[Pool], group: &str) -> Result<Pool> {
    let mut names: Vec<&str> = pools
        .iter()
        .flat_map(|p| p.models.iter().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        bail!("no pools to take models from");
    }
    // For each model, the first (pool, column) where it appears; later appearances must agree.
    let mut source = Vec::with_capacity(names.len());
    for name in &names {
        let mut first: Option<(usize, usize)> = None;
        for (pi, p) in pools.iter().enumerate() {
            for (j, _) in p.models.iter().enumerate().filter(|(_, n)| n == name) {
                match first {
                    None => first = Some((pi, j)),
                    Some((fp, fj)) => {
                        let (a, b) = (&pools[fp], p);
                        if a.train_scores.column(fj) != b.train_scores.column(j)
                            || a.val_scores.column(fj) != b.val_scores.column(j)
                            || a.test_scores.column(fj) != b.test_scores.column(j)
                        {
                            bail!(
                                "model `{name}` has different scores in pools {} m={} and {} m={}",
                                a.group,
                                a.m(),
                                b.group,
                                b.m()
                            );
                        }
                    }
                }
            }
        }
        source.push(first.expect("every name comes from some pool"));
    }
    fn gather<T: Copy>(cols: Vec<Vec<T>>) -> Matrix<T> {
        let (m, n) = (cols.len(), cols[0].len());
        let mut data = Vec::with_capacity(n * m);
        for i in 0..n {
            data.extend(cols.iter().map(|c| c[i]));
        }
        Matrix::new(n, m, data)
    }
    let train = gather(
        source
            .iter()
            .map(|&(p, j)| pools[p].train_scores.column(j))
            .collect(),
    );
    let val = gather(
        source
            .iter()
            .map(|&(p, j)| pools[p].val_scores.column(j))
            .collect(),
    );
    let test = gather(
        source
            .iter()
            .map(|&(p, j)| pools[p].test_scores.column(j))
            .collect(),
    );
    Ok(Pool {
        difficulty: Difficulty::Easy,
        group: group.to_string(),
        models: names.iter().map(|s| s.to_string()).collect(),
        train_scores: train,
        val_scores: val,
        test_scores: test,
        train_labels: None,
    })
}
