//! Importers: populations (every model scored on every query) in the layouts researchers bring,
//! turned into router datasets by [`crate::build`].
//!
//! - **`queries.jsonl` + embeddings `.npy`** (the layout of LLMRouter's data in
//!   `../shared/data/llmrouter`): a first line `{"models": [...]}`, then one query per line,
//!   `{"row": i, "split": "train"|"test", "task": ..., "prompt": ..., "scores": [one per
//!   model]}`; row `i` of the `.npy` (float32 or float64, `queries x dim`) is query `row`'s
//!   embedding. The `.npy` is given, or the only `.npy` beside the `.jsonl`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::build::Population;
use crate::data::Matrix;

/// What to import.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// The embeddings file; default: the only `.npy` beside the input.
    pub embeddings: Option<PathBuf>,
    /// Keep only rows whose `split` is this (e.g. `train`); default: every row.
    pub rows: Option<String>,
    /// The benchmark's name; default: the file's stem, or its directory's name for a file
    /// called `queries.jsonl`.
    pub benchmark: Option<String>,
}

/// The formats `--dataset` and `build-dataset` read, by file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A RouterEval `*_router_dataset.pkl`.
    RouterEvalPickle,
    /// `queries.jsonl` + embeddings `.npy`.
    QueriesJsonl,
}

/// The format of `path`, by its extension.
pub fn detect(path: &Path) -> Option<Format> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("pkl" | "pickle") => Some(Format::RouterEvalPickle),
        Some("jsonl") => Some(Format::QueriesJsonl),
        _ => None,
    }
}

#[derive(Deserialize)]
struct Header {
    models: Vec<String>,
}

#[derive(Deserialize)]
struct Row {
    row: usize,
    #[serde(default)]
    split: Option<String>,
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    scores: Vec<f64>,
}

fn benchmark_of(path: &Path, opts: &ImportOptions) -> String {
    if let Some(b) = &opts.benchmark {
        return b.clone();
    }
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("dataset");
    if stem == "queries"
        && let Some(dir) = path.canonicalize().ok().and_then(|p| {
            p.parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_os_string())
        })
    {
        return dir.to_string_lossy().into_owned();
    }
    stem.to_string()
}

/// The embeddings file for `input`: the one given, else the only `.npy` in its directory.
fn find_embeddings(input: &Path, given: Option<&Path>) -> Result<PathBuf> {
    if let Some(g) = given {
        return Ok(g.to_path_buf());
    }
    let dir = input
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut npys: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list `{}`", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "npy"))
        .collect();
    npys.sort();
    match npys.len() {
        1 => Ok(npys.remove(0)),
        0 => bail!(
            "`{}` has no embeddings: routers need one vector per query. Put a `.npy` \
             (queries x dim, float32, row i = the query whose \"row\" is i) beside it, or name \
             one with --embeddings FILE.npy (any sentence-embedding model will do, e.g. \
             all-MiniLM-L6-v2 or RoBERTa as RouterEval uses)",
            input.display()
        ),
        _ => bail!(
            "`{}` has several `.npy` files beside it ({}); name the embeddings with \
             --embeddings FILE.npy",
            input.display(),
            npys.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Reads a 2-D float32 or float64 `.npy`.
pub fn read_npy_matrix(path: &Path) -> Result<Matrix<f32>> {
    use ndarray::Array2;
    use ndarray_npy::ReadNpyExt;
    let open = || {
        std::fs::File::open(path)
            .with_context(|| format!("cannot open embeddings `{}`", path.display()))
    };
    let arr: Array2<f32> = match Array2::<f32>::read_npy(open()?) {
        Ok(a) => a,
        Err(first) => match Array2::<f64>::read_npy(open()?) {
            Ok(a) => a.mapv(|v| v as f32),
            Err(_) => bail!(
                "`{}` is not a 2-D float32 or float64 .npy (queries x dim): {first}",
                path.display()
            ),
        },
    };
    let (rows, cols) = arr.dim();
    let data = if arr.is_standard_layout() {
        arr.into_raw_vec_and_offset().0
    } else {
        arr.iter().copied().collect()
    };
    Ok(Matrix::new(rows, cols, data))
}

/// Reads the `queries.jsonl` + `.npy` layout.
///
/// # Errors
/// A file cannot be read, a line is not the layout (named with its number), a query's scores
/// do not match the models or are not finite, the embeddings are missing or do not cover every
/// row.
pub fn read_queries_jsonl(path: &Path, opts: &ImportOptions) -> Result<Population> {
    let p = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{p}`"))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, first)) = lines.next() else {
        bail!("`{p}` is empty");
    };
    let header: Header = serde_json::from_str(first).with_context(|| {
        format!("`{p}` line 1 must be {{\"models\": [model names, one per score column]}}")
    })?;
    let models = header.models;
    if models.is_empty() {
        bail!("`{p}` line 1 lists no models");
    }
    let (mut tasks, mut prompts, mut scores, mut rows) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (k, line) in lines {
        let r: Row = serde_json::from_str(line).with_context(|| {
            format!(
                "`{p}` line {}: expected {{\"row\", \"split\", \"task\", \"prompt\", \
                 \"scores\"}}",
                k + 1
            )
        })?;
        if let Some(want) = &opts.rows
            && r.split.as_deref() != Some(want.as_str())
        {
            continue;
        }
        if r.scores.len() != models.len() {
            bail!(
                "`{p}` line {}: {} scores for {} models",
                k + 1,
                r.scores.len(),
                models.len()
            );
        }
        if let Some(bad) = r.scores.iter().find(|v| !v.is_finite()) {
            bail!("`{p}` line {}: score {bad} is not a finite number", k + 1);
        }
        tasks.push(r.task.unwrap_or_default());
        prompts.push(r.prompt.unwrap_or_default());
        scores.extend(r.scores);
        rows.push(r.row);
    }
    if rows.is_empty() {
        match &opts.rows {
            Some(s) => bail!("`{p}` has no row whose split is `{s}`"),
            None => bail!("`{p}` has no queries"),
        }
    }
    let npy = find_embeddings(path, opts.embeddings.as_deref())?;
    let all = read_npy_matrix(&npy)?;
    let mut emb = Vec::with_capacity(rows.len() * all.cols());
    for &r in &rows {
        if r >= all.rows() {
            bail!(
                "`{p}` names row {r}, but the embeddings `{}` have {} rows",
                npy.display(),
                all.rows()
            );
        }
        emb.extend_from_slice(all.row(r));
    }
    let n = rows.len();
    Ok(Population {
        benchmark: benchmark_of(path, opts),
        source: path.display().to_string(),
        models,
        tasks,
        prompts,
        embeddings: Matrix::new(n, all.cols(), emb),
        scores: Matrix::new(n, scores.len() / n, scores),
    })
}

/// Reads a population in any importer format.
///
/// # Errors
/// An unknown format, or the importer's errors.
pub fn read_population(path: &Path, opts: &ImportOptions) -> Result<Population> {
    match detect(path) {
        Some(Format::QueriesJsonl) => read_queries_jsonl(path, opts),
        Some(Format::RouterEvalPickle) => bail!(
            "`{}` is already a router dataset (a RouterEval pickle): evaluate it with --dataset",
            path.display()
        ),
        None => bail!(
            "`{}`: unknown format; this engine imports `queries.jsonl` (+ embeddings `.npy`) \
             and reads RouterEval `*_router_dataset.pkl`",
            path.display()
        ),
    }
}
