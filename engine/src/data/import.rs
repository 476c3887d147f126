//! Importers: populations (every model scored on every query) in the layouts researchers bring,
//! turned into router datasets by [`crate::data::build`].
//!
//! - **`queries.jsonl` + embeddings `.npy`** (the layout of LLMRouter's data in
//!   `../shared/data/llmrouter`): a first line `{"models": [...]}`, then one query per line,
//!   `{"row": i, "split": "train"|"test", "task": ..., "prompt": ..., "scores": [one per
//!   model]}`; row `i` of the `.npy` (float32 or float64, `queries x dim`) is query `row`'s
//!   embedding. The `.npy` is given, or the only `.npy` beside the `.jsonl`.
//! - **A wide CSV**: a header row, then one query per row: a `prompt` column, optional `task`,
//!   `split` and `row` columns, and one score column per model (every other column, named by
//!   the model). Embeddings as for the jsonl; row `i` of the `.npy` is the query whose `row` is
//!   `i`, or the `i`-th data row when there is no `row` column.
//! - **RouterEval's per-evaluation `.npz`**, as its `test_router.py` writes for each pool
//!   (`train_embed`, `val_embed`, `test_embed`, `train_score`, `val_score`, `test_score`): a
//!   router dataset of that one pool (models named `model-0`, ...; no prompts), read directly,
//!   with no split or pool to build.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::data::Matrix;
use crate::data::build::Population;

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
    /// Compute the embeddings from the prompts with this model instead of reading a `.npy`.
    pub embed: Option<crate::data::embed::EmbedOptions>,
}

/// The formats `--dataset` and `build-dataset` read, by file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A RouterEval `*_router_dataset.pkl`.
    RouterEvalPickle,
    /// `queries.jsonl` + embeddings `.npy`.
    QueriesJsonl,
    /// A wide CSV + embeddings `.npy`.
    WideCsv,
    /// RouterEval's per-evaluation `.npz` (one pool).
    RouterEvalNpz,
}

/// The format of `path`, by its extension.
pub fn detect(path: &Path) -> Option<Format> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("pkl" | "pickle") => Some(Format::RouterEvalPickle),
        Some("jsonl") => Some(Format::QueriesJsonl),
        Some("csv") => Some(Format::WideCsv),
        Some("npz") => Some(Format::RouterEvalNpz),
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
             one with --embeddings FILE.npy, or compute them from the prompts with \
             --embed-model DIR (a local sentence-transformers model such as all-MiniLM-L6-v2; \
             `routereval-engine embed --help` says where to get one)",
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
        if let Some(j) = r.scores.iter().position(|v| !(0.0..=1.0).contains(v)) {
            bail!(
                "`{p}` line {}: the score of model `{}` is {}, outside [0, 1] (1 correct, 0 \
                 wrong, a fraction for partial credit)",
                k + 1,
                models[j].escape_debug(),
                crate::util::short_number(r.scores[j])
            );
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
    let embeddings = embeddings_for(path, opts, &rows, &prompts)?;
    let n = rows.len();
    Ok(Population {
        benchmark: benchmark_of(path, opts),
        source: path.display().to_string(),
        models,
        tasks,
        prompts,
        embeddings,
        scores: Matrix::new(n, scores.len() / n, scores),
    })
}

/// The embeddings of `rows`: from the `.npy` for `input`, or computed from `prompts` when
/// `opts.embed` names a model.
fn embeddings_for(
    input: &Path,
    opts: &ImportOptions,
    rows: &[usize],
    prompts: &[String],
) -> Result<Matrix<f32>> {
    if let Some(e) = &opts.embed {
        if let Some(i) = prompts.iter().position(|p| p.is_empty()) {
            bail!(
                "`{}`: query {} (row {}) has no prompt, so its embedding cannot be computed",
                input.display(),
                i + 1,
                rows[i]
            );
        }
        return Ok(crate::data::embed::embed_texts(prompts, e)?.0);
    }
    let npy = find_embeddings(input, opts.embeddings.as_deref())?;
    let all = read_npy_matrix(&npy)?;
    let mut emb = Vec::with_capacity(rows.len() * all.cols());
    for &r in rows {
        if r >= all.rows() {
            bail!(
                "`{}` names row {r}, but the embeddings `{}` have {} rows",
                input.display(),
                npy.display(),
                all.rows()
            );
        }
        emb.extend_from_slice(all.row(r));
    }
    Ok(Matrix::new(rows.len(), all.cols(), emb))
}

/// Opens a CSV and reads its header row (names trimmed).
///
/// # Errors
/// When the file cannot be read or has no header row.
pub fn open_csv(path: &Path) -> Result<(csv::Reader<std::fs::File>, Vec<String>)> {
    let p = path.display();
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("cannot read `{p}`"))?;
    let header: Vec<String> = reader
        .headers()
        .with_context(|| format!("`{p}`: cannot read the header row"))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    Ok((reader, header))
}

/// Reads a wide CSV: `prompt`, optional `task` / `split` / `row`, one score column per model.
///
/// # Errors
/// A file cannot be read, there is no `prompt` column or no model column, a score is not a
/// finite number (named by line and column), the embeddings are missing or too short.
pub fn read_wide_csv(path: &Path, opts: &ImportOptions) -> Result<Population> {
    let p = path.display();
    let (mut reader, header) = open_csv(path)?;
    let col = |name: &str| header.iter().position(|h| h == name);
    let Some(prompt_col) = col("prompt") else {
        bail!(
            "`{p}` has no `prompt` column (its columns: {}); a wide CSV has `prompt`, optional \
             `task`, `split` and `row`, and one score column per model",
            header.join(", ")
        );
    };
    let (task_col, split_col, row_col) = (col("task"), col("split"), col("row"));
    let model_cols: Vec<usize> = (0..header.len())
        .filter(|&i| ![Some(prompt_col), task_col, split_col, row_col].contains(&Some(i)))
        .collect();
    if model_cols.is_empty() {
        bail!(
            "`{p}` has no score columns: every column besides prompt, task, split and row is a model"
        );
    }
    let (mut tasks, mut prompts, mut scores, mut rows) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (k, record) in reader.records().enumerate() {
        let line = k + 2;
        let rec = record.with_context(|| format!("`{p}` line {line}"))?;
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("").to_string();
        if let Some(want) = &opts.rows
            && get(split_col) != *want
        {
            continue;
        }
        for &c in &model_cols {
            let text = rec.get(c).unwrap_or("").trim();
            let v: f64 = text
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "`{p}` line {line}, column `{}`: `{}` is not a finite number",
                        header[c].escape_debug(),
                        text.escape_debug()
                    )
                })?;
            if !(0.0..=1.0).contains(&v) {
                bail!(
                    "`{p}` line {line}, column `{}`: the score {} is outside [0, 1] (1 correct, \
                     0 wrong, a fraction for partial credit)",
                    header[c].escape_debug(),
                    crate::util::short_number(v)
                );
            }
            scores.push(v);
        }
        let row = match row_col {
            Some(c) => {
                let text = rec.get(c).unwrap_or("").trim();
                text.parse().map_err(|_| {
                    anyhow::anyhow!("`{p}` line {line}, column `row`: `{text}` is not a row number")
                })?
            }
            None => k,
        };
        rows.push(row);
        tasks.push(get(task_col));
        prompts.push(get(Some(prompt_col)));
    }
    if rows.is_empty() {
        bail!(
            "`{p}` has no queries{}",
            opts.rows
                .as_ref()
                .map(|s| format!(" whose split is `{s}`"))
                .unwrap_or_default()
        );
    }
    let n = rows.len();
    let embeddings = embeddings_for(path, opts, &rows, &prompts)?;
    Ok(Population {
        benchmark: benchmark_of(path, opts),
        source: path.display().to_string(),
        models: model_cols.iter().map(|&c| header[c].clone()).collect(),
        tasks,
        prompts,
        embeddings,
        scores: Matrix::new(n, model_cols.len(), scores),
    })
}

fn npz_matrix<R: std::io::Read + std::io::Seek>(
    npz: &mut ndarray_npy::NpzReader<R>,
    path: &Path,
    name: &str,
) -> Result<Matrix<f64>> {
    use ndarray::Array2;
    let arr: Array2<f64> = match npz.by_name::<ndarray::OwnedRepr<f64>, ndarray::Ix2>(name) {
        Ok(a) => a,
        Err(first) => match npz.by_name::<ndarray::OwnedRepr<f32>, ndarray::Ix2>(name) {
            Ok(a) => a.mapv(f64::from),
            Err(_) => bail!(
                "`{}` has no 2-D float array `{name}` ({first}); RouterEval's .npz holds \
                 train_embed, val_embed, test_embed, train_score, val_score and test_score",
                path.display()
            ),
        },
    };
    let (rows, cols) = arr.dim();
    Ok(Matrix::new(rows, cols, arr.iter().copied().collect()))
}

/// Reads RouterEval's per-evaluation `.npz` as a one-pool router dataset.
///
/// # Errors
/// The file is not a zip of `.npy` arrays, an array is missing, or the shapes disagree.
pub fn read_routereval_npz(path: &Path) -> Result<crate::data::RouterDataset> {
    use crate::data::{Difficulty, Pool, RouterDataset, SplitData, acc_ref};
    let p = path.display();
    let file = std::fs::File::open(path).with_context(|| format!("cannot open `{p}`"))?;
    let mut npz = ndarray_npy::NpzReader::new(file)
        .with_context(|| format!("`{p}` is not an .npz (a zip of .npy arrays)"))?;
    let mut get = |name: &str| npz_matrix(&mut npz, path, name);
    let (te, ve, se) = (get("train_embed")?, get("val_embed")?, get("test_embed")?);
    let (ts, vs, ss) = (get("train_score")?, get("val_score")?, get("test_score")?);
    let m = ts.cols();
    for (what, e, s) in [("train", &te, &ts), ("val", &ve, &vs), ("test", &se, &ss)] {
        if e.rows() != s.rows() || s.cols() != m || e.cols() != te.cols() {
            bail!(
                "`{p}`: {what}_embed is {} x {} and {what}_score {} x {}; the rows must agree, \
                 and every split have {m} score columns and {}-d embeddings",
                e.rows(),
                e.cols(),
                s.rows(),
                s.cols(),
                te.cols()
            );
        }
    }
    if m == 0 || ts.rows() == 0 || ss.rows() == 0 {
        bail!("`{p}` has no candidates, or no training or test queries");
    }
    let f32s = |m: &Matrix<f64>| {
        Matrix::new(
            m.rows(),
            m.cols(),
            m.as_slice().iter().map(|&v| v as f32).collect(),
        )
    };
    let split = |e: &Matrix<f64>| SplitData {
        embeddings: f32s(e),
        prompts: vec![String::new(); e.rows()],
    };
    let benchmark = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("npz")
        .to_string();
    Ok(RouterDataset {
        acc_ref: acc_ref(&benchmark),
        benchmark,
        source: p.to_string(),
        train: split(&te),
        val: split(&ve),
        test: split(&se),
        pools: vec![Pool {
            difficulty: if m < 10 {
                Difficulty::Easy
            } else {
                Difficulty::Hard
            },
            group: "npz".into(),
            models: (0..m).map(|j| format!("model-{j}")).collect(),
            train_scores: f32s(&ts),
            val_scores: f32s(&vs),
            test_scores: ss,
            train_labels: None,
        }],
        split_indices: None,
        pool_selection: None,
    })
}

/// Reads a population in any importer format.
///
/// # Errors
/// An unknown format, or the importer's errors.
pub fn read_population(path: &Path, opts: &ImportOptions) -> Result<Population> {
    match detect(path) {
        Some(Format::QueriesJsonl) => read_queries_jsonl(path, opts),
        Some(Format::WideCsv) => read_wide_csv(path, opts),
        Some(Format::RouterEvalNpz) => bail!(
            "`{}` is already one evaluation's data (RouterEval's .npz): evaluate it with --dataset",
            path.display()
        ),
        Some(Format::RouterEvalPickle) => bail!(
            "`{}` is already a router dataset (a RouterEval pickle): evaluate it with --dataset",
            path.display()
        ),
        None => bail!(
            "`{}`: unknown format; this engine imports `queries.jsonl` or a wide `.csv` (each \
             with an embeddings `.npy`) and reads RouterEval `*_router_dataset.pkl`",
            path.display()
        ),
    }
}
