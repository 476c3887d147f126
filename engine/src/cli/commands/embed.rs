//! `routereval-engine embed`: sentence embeddings of prompts with a local encoder.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::cli::args::EmbedArgs;
use crate::data::embed::{EmbedOptions, EmbedSummary, embed_dataset, embed_texts};
use crate::data::import::{Format, detect};

pub fn embed(args: &EmbedArgs, out: &mut dyn Write) -> Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let out_ext = args.output.extension().and_then(|e| e.to_str());
    let input_format = detect(&args.input);
    match (input_format, out_ext) {
        (Some(Format::RouterEvalPickle), Some("npy" | "pkl" | "pickle")) => {}
        (Some(Format::QueriesJsonl | Format::WideCsv), Some("npy")) => {}
        (Some(Format::QueriesJsonl | Format::WideCsv), _) => bail!(
            "`{}`: the embeddings of a queries.jsonl or CSV are written as a .npy (texts x dim); \
             name the output OUT.npy",
            args.output.display()
        ),
        (Some(Format::RouterEvalPickle), _) => bail!(
            "`{}`: write a .npy (train, val, then test rows) or a .pkl (the dataset with its \
             embeddings replaced)",
            args.output.display()
        ),
        _ => bail!(
            "`{}`: cannot tell its format; give a queries.jsonl (.jsonl), a CSV (.csv) or a \
             router dataset (.pkl)",
            args.input.display()
        ),
    }
    let opts = EmbedOptions {
        model: args.model.clone(),
        batch: args.batch,
        max_length: args.max_length,
        progress: true,
    };
    let mut b = rayon::ThreadPoolBuilder::new();
    if let Some(n) = args.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        b = b.num_threads(n);
    }
    let pool = b.build().context("cannot start the worker threads")?;
    let summary = pool.install(|| -> Result<EmbedSummary> {
        if input_format == Some(Format::RouterEvalPickle) {
            let mut ds = crate::data::load::load_pickle_file(&args.input)?;
            let summary = embed_dataset(&mut ds, &opts)?;
            if out_ext == Some("npy") {
                let d = ds.train.embeddings.cols();
                let rows = ds.train.len() + ds.val.len() + ds.test.len();
                let mut all = Vec::with_capacity(rows * d);
                for s in [&ds.train, &ds.val, &ds.test] {
                    all.extend_from_slice(s.embeddings.as_slice());
                }
                write_npy(&args.output, rows, d, all)?;
            } else {
                crate::data::export::write_routereval_pickle(&ds, &args.output)?;
            }
            Ok(summary)
        } else {
            let prompts = if input_format == Some(Format::QueriesJsonl) {
                read_jsonl_prompts(&args.input)?
            } else {
                read_csv_prompts(&args.input, &args.column)?
            };
            let (m, summary) = embed_texts(&prompts, &opts)?;
            write_npy(&args.output, m.rows(), m.cols(), m.as_slice().to_vec())?;
            Ok(summary)
        }
    })?;
    writeln!(
        out,
        "embedded {} prompts with {} ({}-d, {} pooling{}, at most {} tokens) in {:.1} s -> {}",
        summary.texts,
        args.model.display(),
        summary.dim,
        summary.pooling,
        if summary.normalized {
            ", L2-normalised"
        } else {
            ""
        },
        summary.max_length,
        summary.seconds,
        args.output.display()
    )?;
    Ok(())
}

fn write_npy(path: &Path, rows: usize, cols: usize, data: Vec<f32>) -> Result<()> {
    use ndarray_npy::WriteNpyExt;
    let arr = ndarray::Array2::from_shape_vec((rows, cols), data)?;
    let mut bytes = Vec::new();
    arr.write_npy(&mut bytes)
        .with_context(|| format!("cannot encode `{}`", path.display()))?;
    crate::util::write_atomically(path, &bytes)
}

/// Puts `prompts` in the order of their `rows` when every prompt has one (row i of the output
/// is the query whose "row" is i, as the importers read a `.npy`), else keeps file order.
fn order_by_rows(
    path: &Path,
    prompts: Vec<String>,
    rows: Vec<Option<usize>>,
) -> Result<Vec<String>> {
    let p = path.display();
    if prompts.is_empty() {
        bail!("`{p}` has no prompts");
    }
    if rows.iter().all(Option::is_none) {
        return Ok(prompts);
    }
    if let Some(i) = rows.iter().position(Option::is_none) {
        bail!(
            "`{p}`: query {} has no row number while others have one; give every query a \"row\" \
             or none",
            i + 1
        );
    }
    let n = prompts.len();
    let mut out: Vec<Option<String>> = vec![None; n];
    for (prompt, row) in prompts.into_iter().zip(rows.into_iter().flatten()) {
        if row >= n {
            bail!(
                "`{p}`: row {row} is out of range: the rows of {n} queries must be 0 to {}",
                n - 1
            );
        }
        if out[row].replace(prompt).is_some() {
            bail!("`{p}`: row {row} appears twice");
        }
    }
    Ok(out.into_iter().flatten().collect())
}

fn read_jsonl_prompts(path: &Path) -> Result<Vec<String>> {
    let p = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{p}`"))?;
    let (mut prompts, mut rows) = (Vec::new(), Vec::new());
    for (k, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("`{p}` line {}: not JSON", k + 1))?;
        match v.get("prompt") {
            Some(serde_json::Value::String(s)) => {
                prompts.push(s.clone());
                rows.push(match v.get("row") {
                    None => None,
                    Some(r) => Some(r.as_u64().map(|r| r as usize).ok_or_else(|| {
                        anyhow::anyhow!("`{p}` line {}: \"row\" is not a row number", k + 1)
                    })?),
                });
            }
            Some(_) => bail!("`{p}` line {}: \"prompt\" is not a string", k + 1),
            // The header of the population layout ({"models": [...]}) holds no prompt.
            None if v.get("models").is_some() => {}
            None => bail!(
                "`{p}` line {}: no \"prompt\"; each line is {{\"prompt\": TEXT, ...}} (\"row\" \
                 optional: it orders the output)",
                k + 1
            ),
        }
    }
    order_by_rows(path, prompts, rows)
}

fn read_csv_prompts(path: &Path, column: &str) -> Result<Vec<String>> {
    let p = path.display();
    let (mut reader, header) = crate::data::import::open_csv(path)?;
    let Some(col) = header.iter().position(|h| h == column) else {
        bail!(
            "`{p}` has no `{column}` column (its columns: {}); name the prompts' column with \
             --column NAME",
            header.join(", ")
        );
    };
    let row_col = header.iter().position(|h| h == "row");
    let (mut prompts, mut rows) = (Vec::new(), Vec::new());
    for (k, record) in reader.records().enumerate() {
        let rec = record.with_context(|| format!("`{p}` line {}", k + 2))?;
        prompts.push(rec.get(col).unwrap_or("").to_string());
        rows.push(match row_col {
            None => None,
            Some(c) => {
                let t = rec.get(c).unwrap_or("").trim();
                Some(t.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "`{p}` line {}, column `row`: `{t}` is not a row number",
                        k + 2
                    )
                })?)
            }
        });
    }
    order_by_rows(path, prompts, rows)
}
