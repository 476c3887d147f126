//! Reading router datasets: RouterEval's `*_router_dataset.pkl` files (through the safe pickle
//! reader) and the embedded default dataset.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::data::pickle::{self, ArrayData, NdArray, Value};
use crate::data::{Difficulty, Matrix, Pool, RouterDataset, SplitData, acc_ref};

/// The suffix of RouterEval's dataset files; what precedes it is the benchmark's name.
pub const PICKLE_SUFFIX: &str = "_router_dataset.pkl";

/// The layout RouterEval's files have, for error messages.
const LAYOUT_HINT: &str = "a RouterEval router dataset is a dict with 'easy' and/or 'hard' \
     (pools: size -> group -> {'data': {'train_score', 'val_score', 'test_score'[, 'train_label']}, \
     'model'}), 'embedding' ({'train_embed', 'val_embed', 'test_embed'}) and 'prompt' \
     ({'train_prompt', 'val_prompt', 'test_prompt'})";

/// Loads every dataset `path` names: a `*_router_dataset.pkl` file, a directory, whose
/// `*_router_dataset.pkl` files are loaded as separate benchmarks (sorted by name), or a
/// population to build a dataset from (`queries.jsonl` + embeddings, see [`crate::data::import`]).
///
/// # Errors
/// When the path does not exist, a directory holds no dataset file, or a file cannot be read.
pub fn load_path(path: &Path) -> Result<Vec<RouterDataset>> {
    load_path_with(path, None)
}

/// As [`load_path`]; with `embed`, every dataset's embeddings are computed from its prompts
/// with that model (a population then needs no `.npy`; a pickle's embeddings are replaced).
///
/// # Errors
/// As [`load_path`], and as [`crate::data::embed::embed_dataset`].
pub fn load_path_with(
    path: &Path,
    embed: Option<&crate::data::embed::EmbedOptions>,
) -> Result<Vec<RouterDataset>> {
    let mut sets = load_path_inner(path, embed)?;
    if let Some(e) = embed {
        for ds in &mut sets {
            // A population's embeddings were computed as it was read.
            if !ds.source.ends_with(".jsonl") && !ds.source.ends_with(".csv") {
                crate::data::embed::embed_dataset(ds, e)?;
                ds.check_values()
                    .map_err(|err| anyhow::anyhow!("in `{}`: {err}", ds.source))?;
            }
        }
    }
    Ok(sets)
}

fn load_path_inner(
    path: &Path,
    embed: Option<&crate::data::embed::EmbedOptions>,
) -> Result<Vec<RouterDataset>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot open dataset `{}`", path.display()))?;
    if meta.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list directory `{}`", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(PICKLE_SUFFIX))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            bail!(
                "directory `{}` holds no `*{PICKLE_SUFFIX}` file; pass a dataset file or a \
                 directory of RouterEval router datasets",
                path.display()
            );
        }
        use rayon::prelude::*;
        files.par_iter().map(|f| load_pickle_file(f)).collect()
    } else if crate::data::import::detect(path) == Some(crate::data::import::Format::RouterEvalNpz)
    {
        let ds = crate::data::import::read_routereval_npz(path)?;
        ds.check_values()
            .map_err(|e| anyhow::anyhow!("in `{}`: {e}", path.display()))?;
        Ok(vec![ds])
    } else if matches!(
        crate::data::import::detect(path),
        Some(crate::data::import::Format::QueriesJsonl | crate::data::import::Format::WideCsv)
    ) {
        // A population: built into a router dataset by RouterEval's rules (default sizes,
        // seed 42); `build-dataset` shows what it builds.
        let pop = crate::data::import::read_population(
            path,
            &crate::data::import::ImportOptions {
                embed: embed.cloned(),
                ..Default::default()
            },
        )?;
        let (ds, _skipped) =
            crate::data::build::build(&pop, &crate::data::build::BuildOptions::default())?;
        ds.check_values()
            .map_err(|e| anyhow::anyhow!("in `{}`: {e}", path.display()))?;
        Ok(vec![ds])
    } else {
        Ok(vec![load_pickle_file(path)?])
    }
}

/// The benchmark name a file stands for: its name before `_router_dataset.pkl`, else its stem.
pub fn benchmark_name(path: &Path) -> String {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("dataset");
    match name.strip_suffix(PICKLE_SUFFIX) {
        Some(b) if !b.is_empty() => b.to_string(),
        _ => path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(name)
            .to_string(),
    }
}

/// Reads one RouterEval pickle file without executing anything in it.
///
/// # Errors
/// When the file cannot be read, is not a valid pickle, names a global other than numpy's array
/// reconstructors, or does not have RouterEval's layout.
pub fn load_pickle_file(path: &Path) -> Result<RouterDataset> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    from_pickle_bytes(&bytes, &benchmark_name(path), &path.display().to_string())
}

/// Decodes a RouterEval pickle held in memory. `source` names it in error messages.
///
/// # Errors
/// As [`load_pickle_file`].
pub fn from_pickle_bytes(bytes: &[u8], benchmark: &str, source: &str) -> Result<RouterDataset> {
    let value = pickle::read(bytes)
        .with_context(|| format!("`{source}` is not a pickle this reader accepts"))?;
    let ds = from_value(value, benchmark, source).with_context(|| format!("in `{source}`"))?;
    ds.check_values()
        .map_err(|e| anyhow::anyhow!("in `{source}`: {e}"))?;
    Ok(ds)
}

fn keys_of(v: &Value) -> Vec<String> {
    match v {
        Value::Dict(items) => items
            .iter()
            .map(|(k, _)| match k {
                Value::Str(s) => format!("'{s}'"),
                Value::Int(i) => i.to_string(),
                other => other.describe(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn field<'a>(v: &'a Value, key: &str, path: &str) -> Result<&'a Value> {
    match v.get(key) {
        Some(x) => Ok(x),
        None => bail!(
            "{path} has no key '{key}' (found: {})",
            list_or_none(&keys_of(v))
        ),
    }
}

fn list_or_none(keys: &[String]) -> String {
    if keys.is_empty() {
        "no keys".into()
    } else {
        keys.join(", ")
    }
}

fn as_array<'a>(v: &'a Value, path: &str, ndim: usize) -> Result<&'a NdArray> {
    match v {
        Value::Array(a) if a.shape.len() == ndim => Ok(a),
        Value::Array(a) => bail!("{path} must be a {ndim}-d array, found shape {:?}", a.shape),
        other => bail!("{path} must be a numpy array, found {}", other.describe()),
    }
}

fn matrix_f64(v: &Value, path: &str) -> Result<Matrix<f64>> {
    let a = as_array(v, path, 2)?;
    let data: Vec<f64> = match &a.data {
        ArrayData::F64(x) => x.clone(),
        ArrayData::F32(x) => x.iter().map(|&v| f64::from(v)).collect(),
        ArrayData::I64(x) => x.iter().map(|&v| v as f64).collect(),
        ArrayData::Bool(x) => x.iter().map(|&v| f64::from(u8::from(v))).collect(),
        ArrayData::Str(_) => bail!("{path} must hold numbers, found strings"),
    };
    if let Some(i) = data.iter().position(|x| !x.is_finite()) {
        bail!(
            "{path} holds a non-finite value ({}) at row {}, column {}",
            data[i],
            i / a.shape[1].max(1),
            i % a.shape[1].max(1)
        );
    }
    Ok(Matrix::new(a.shape[0], a.shape[1], data))
}

fn matrix_f32(v: &Value, path: &str) -> Result<Matrix<f32>> {
    if let Value::Array(NdArray {
        shape,
        data: ArrayData::F32(x),
    }) = v
        && shape.len() == 2
    {
        if x.iter().any(|v| !v.is_finite()) {
            bail!("{path} holds a non-finite value");
        }
        return Ok(Matrix::new(shape[0], shape[1], x.clone()));
    }
    let m = matrix_f64(v, path)?;
    // Values beyond float32 become infinite here; `RouterDataset::check_values` refuses them.
    let data = m.as_slice().iter().map(|&x| x as f32).collect();
    Ok(Matrix::new(m.rows(), m.cols(), data))
}

fn strings(v: &Value, path: &str) -> Result<Vec<String>> {
    match v {
        Value::Array(NdArray {
            shape,
            data: ArrayData::Str(s),
        }) if shape.len() == 1 => Ok(s.clone()),
        Value::List(items) | Value::Tuple(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| match x {
                Value::Str(s) => Ok(s.clone()),
                other => bail!("{path}[{i}] must be a str, found {}", other.describe()),
            })
            .collect(),
        other => bail!(
            "{path} must be a 1-d array of str, found {}",
            other.describe()
        ),
    }
}

/// Explains what a file of another layout holds and what it lacks.
fn wrong_layout(top: &Value) -> anyhow::Error {
    let keys = keys_of(top);
    if !matches!(top, Value::Dict(_)) {
        return anyhow::anyhow!(
            "not a RouterEval router dataset: the pickle holds {}, not a dict; {LAYOUT_HINT}",
            top.describe()
        );
    }
    let mut missing = Vec::new();
    if top.get("easy").is_none() && top.get("hard").is_none() {
        missing.push("'easy'/'hard' (the candidate pools)");
    }
    if top.get("embedding").is_none() {
        missing.push("'embedding' (train_embed, val_embed, test_embed: one vector per query)");
    }
    let mut msg = format!(
        "not a RouterEval router dataset: found top-level keys {}; missing {}",
        list_or_none(&keys),
        missing.join(" and ")
    );
    if let (Some(data), Some(model)) = (top.get("data"), top.get("model")) {
        let names = strings(model, "model").unwrap_or_default();
        let extra: Vec<String> = keys_of(data)
            .into_iter()
            .filter(|k| !k.ends_with("_score'"))
            .collect();
        msg.push_str(&format!(
            ". It looks like a single pool of {} models ({}) with no difficulty levels or pool \
             groups",
            names.len(),
            names.join(", ")
        ));
        if !extra.is_empty() {
            msg.push_str(&format!(
                ", plus fields this engine does not use ({})",
                extra.join(", ")
            ));
        }
    }
    if top.get("embedding").is_none() {
        msg.push_str(
            ". Routers need an embedding per query: compute them for train/val/test prompts \
             with any sentence-embedding model and store them under 'embedding'",
        );
    }
    msg.push_str(&format!(". Expected layout: {LAYOUT_HINT}"));
    anyhow::anyhow!(msg)
}

/// Interprets a decoded pickle as a RouterEval router dataset.
///
/// # Errors
/// When the layout differs from RouterEval's; the message names the offending field.
pub fn from_value(top: Value, benchmark: &str, source: &str) -> Result<RouterDataset> {
    if !matches!(top, Value::Dict(_))
        || (top.get("easy").is_none() && top.get("hard").is_none())
        || top.get("embedding").is_none()
    {
        return Err(wrong_layout(&top));
    }
    let emb = field(&top, "embedding", "the dataset")?;
    let mut splits = Vec::new();
    for s in ["train", "val", "test"] {
        let key = format!("{s}_embed");
        let path = format!("['embedding']['{key}']");
        let e = matrix_f32(field(emb, &key, "['embedding']")?, &path)?;
        let prompts = match top.get("prompt") {
            None => vec![String::new(); e.rows()],
            Some(p) => {
                let key = format!("{s}_prompt");
                let path = format!("['prompt']['{key}']");
                let pr = strings(field(p, &key, "['prompt']")?, &path)?;
                if pr.len() != e.rows() {
                    bail!(
                        "{path} has {} prompts but ['embedding']['{s}_embed'] has {} rows",
                        pr.len(),
                        e.rows()
                    );
                }
                pr
            }
        };
        splits.push(SplitData {
            embeddings: e,
            prompts,
        });
    }
    let dims: Vec<usize> = splits.iter().map(|s| s.embeddings.cols()).collect();
    if dims.iter().any(|&d| d != dims[0]) {
        bail!("the embedding dimensions of train, val and test differ: {dims:?}");
    }
    let [train, val, test]: [SplitData; 3] = splits
        .try_into()
        .map_err(|_| anyhow::anyhow!("three splits expected"))?;
    if train.is_empty() || test.is_empty() {
        bail!(
            "the dataset has {} training and {} test queries; both must be non-empty",
            train.len(),
            test.len()
        );
    }

    let mut pools = Vec::new();
    for difficulty in [Difficulty::Easy, Difficulty::Hard] {
        let Some(by_size) = top.get(difficulty.as_str()) else {
            continue;
        };
        let Value::Dict(sizes) = by_size else {
            bail!(
                "['{difficulty}'] must be a dict keyed by pool size, found {}",
                by_size.describe()
            );
        };
        for (size, groups) in sizes {
            let m = match size {
                Value::Int(m) if *m > 0 => *m as usize,
                other => bail!(
                    "['{difficulty}'] is keyed by pool sizes (positive ints), found {}",
                    other.describe()
                ),
            };
            let Value::Dict(groups) = groups else {
                bail!(
                    "['{difficulty}'][{m}] must be a dict keyed by group, found {}",
                    groups.describe()
                );
            };
            for (group, pool) in groups {
                let Value::Str(group) = group else {
                    bail!(
                        "['{difficulty}'][{m}] is keyed by group names, found {}",
                        group.describe()
                    );
                };
                let at = format!("['{difficulty}'][{m}]['{group}']");
                pools.push(read_pool(
                    pool,
                    &at,
                    difficulty,
                    m,
                    group,
                    [&train, &val, &test],
                )?);
            }
        }
    }
    if pools.is_empty() {
        bail!("the dataset has no candidate pools: 'easy' and 'hard' are empty");
    }
    // `split_index` is informative (routers never see it): kept when it is what RouterEval
    // writes, one integer array per split of the split's length.
    let split_indices = top.get("split_index").and_then(|si| {
        let one = |key: &str, want: usize| match si.get(key) {
            Some(Value::Array(NdArray {
                shape,
                data: ArrayData::I64(v),
            })) if shape.len() == 1 && v.len() == want => Some(v.clone()),
            _ => None,
        };
        Some([
            one("train_indices", train.len())?,
            one("val_indices", val.len())?,
            one("test_indices", test.len())?,
        ])
    });
    // `pool_selection` is informative too: written by this engine's `build-dataset` and `synth`.
    let pool_selection = match top.get("pool_selection") {
        Some(Value::Str(s)) => crate::data::build::SelectOn::parse(s),
        _ => None,
    };
    let mut ds = RouterDataset {
        split_indices,
        pool_selection,
        benchmark: benchmark.to_string(),
        acc_ref: acc_ref(benchmark),
        source: source.to_string(),
        train,
        val,
        test,
        pools,
    };
    ds.sort_pools();
    Ok(ds)
}

fn read_pool(
    pool: &Value,
    at: &str,
    difficulty: Difficulty,
    m: usize,
    group: &str,
    splits: [&SplitData; 3],
) -> Result<Pool> {
    let models = strings(field(pool, "model", at)?, &format!("{at}['model']"))?;
    if models.len() != m {
        bail!(
            "{at}['model'] names {} models, the pool size is {m}",
            models.len()
        );
    }
    let data = field(pool, "data", at)?;
    let dat = format!("{at}['data']");
    let mut mats = Vec::new();
    for (s, split) in ["train", "val", "test"].iter().zip(splits) {
        let key = format!("{s}_score");
        let path = format!("{dat}['{key}']");
        let mat = matrix_f64(field(data, &key, &dat)?, &path)?;
        if mat.rows() != split.len() || mat.cols() != m {
            bail!(
                "{path} has shape ({}, {}), expected ({}, {m}): one row per {s} query, one column \
                 per model",
                mat.rows(),
                mat.cols(),
                split.len()
            );
        }
        mats.push(mat);
    }
    let train_labels = match data.get("train_label") {
        None => None,
        Some(v) => {
            let path = format!("{dat}['train_label']");
            let l = matrix_f32(v, &path)?;
            if l.rows() != splits[0].len() || l.cols() != m {
                bail!(
                    "{path} has shape ({}, {}), expected ({}, {m})",
                    l.rows(),
                    l.cols(),
                    splits[0].len()
                );
            }
            Some(l)
        }
    };
    let to_f32 = |x: &Matrix<f64>| {
        Matrix::new(
            x.rows(),
            x.cols(),
            x.as_slice().iter().map(|&v| v as f32).collect(),
        )
    };
    let test_scores = mats.pop().expect("three score matrices");
    Ok(Pool {
        difficulty,
        group: group.to_string(),
        models,
        train_scores: to_f32(&mats[0]),
        val_scores: to_f32(&mats[1]),
        test_scores,
        train_labels,
    })
}
