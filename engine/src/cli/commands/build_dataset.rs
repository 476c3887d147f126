//! `routereval-engine build-dataset`: a router dataset from a population, by RouterEval's rules.

use std::io::Write;

use anyhow::Result;

use crate::cli::args::{BuildArgs, Format};

pub fn build_dataset(args: &BuildArgs, out: &mut dyn Write) -> Result<()> {
    use crate::data::build::{BuildOptions, build};
    use crate::data::import::{ImportOptions, read_population};
    let pop = read_population(
        &args.input,
        &ImportOptions {
            embeddings: args.embeddings.clone(),
            rows: args.rows.clone(),
            benchmark: args.benchmark.clone(),
            embed: args
                .embed_model
                .as_deref()
                .map(crate::data::embed::EmbedOptions::new),
        },
    )?;
    let opts = BuildOptions {
        sizes: args.pools.sizes.clone(),
        seed: args.seed,
        draws: args.pools.draws,
        select_on: args.pools.select_on.into(),
    };
    let (ds, skipped) = build(&pop, &opts)?;
    ds.check_values()
        .map_err(|e| anyhow::anyhow!("in `{}`: {e}", args.input.display()))?;
    if let Some(path) = &args.output {
        crate::data::export::write_routereval_pickle(&ds, path)?;
    }
    // The same sums as the metrics' and `inspect`'s.
    let test_means = |p: &crate::data::Pool| p.test_scores.column_means();
    let oracle = |p: &crate::data::Pool| p.test_scores.mean_row_max();
    match args.format.unwrap_or(Format::Table) {
        Format::Json => {
            let pools: Vec<serde_json::Value> = ds
                .pools
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "difficulty": p.difficulty.as_str(), "m": p.m(), "group": p.group,
                        "models": p.models, "test_means": test_means(p), "test_oracle": oracle(p),
                        "train_labels": p.train_labels.is_some(),
                    })
                })
                .collect();
            let skipped: Vec<serde_json::Value> = skipped
                .iter()
                .map(|s| serde_json::json!({"m": s.m, "group": s.group, "reason": s.reason}))
                .collect();
            let doc = serde_json::json!({
                "benchmark": ds.benchmark, "source": ds.source, "models": pop.models.len(),
                "queries": pop.len(), "dim": pop.embeddings.cols(), "seed": opts.seed,
                "split": {"train": ds.train.len(), "val": ds.val.len(), "test": ds.test.len()},
                "pools": pools, "skipped": skipped,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
        Format::Table => {
            writeln!(
                out,
                "{}: {} queries x {} models, {}-d embeddings; split {} / {} / {} (seed {})",
                crate::util::terminal_safe(&ds.benchmark),
                pop.len(),
                pop.models.len(),
                pop.embeddings.cols(),
                ds.train.len(),
                ds.val.len(),
                ds.test.len(),
                opts.seed
            )?;
            writeln!(
                out,
                "{:<10} {:<6} {:<15} {:>8} {:>8}  models (test mean)",
                "difficulty", "m", "group", "oracle", "or/bsm"
            )?;
            for p in &ds.pools {
                let means = test_means(p);
                let best = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let o = oracle(p);
                let shown: Vec<String> = p
                    .models
                    .iter()
                    .zip(&means)
                    .take(10)
                    .map(|(m, v)| format!("{} ({v:.3})", crate::util::terminal_safe(m)))
                    .collect();
                let more = if p.m() > 10 {
                    format!(", ... {} more", p.m() - 10)
                } else {
                    String::new()
                };
                writeln!(
                    out,
                    "{:<10} {:<6} {:<15} {:>8.4} {:>8.4}  {}{more}",
                    p.difficulty.as_str(),
                    p.m(),
                    crate::util::terminal_safe(&p.group),
                    o,
                    o / best,
                    shown.join(", ")
                )?;
            }
            for s in &skipped {
                writeln!(out, "skipped m={} {}: {}", s.m, s.group, s.reason)?;
            }
        }
    }
    Ok(())
}
