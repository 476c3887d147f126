//! `routereval-engine synth`: the synthetic 12-benchmark suite.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Result;

use crate::cli::args::{Format, SynthArgs};

pub fn synth(args: &SynthArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    use crate::data::synth::{SynthOptions, Written, write_suite};
    let opts = SynthOptions {
        seed: args.seed,
        models: args.models,
        dim: args.dim,
        scale: args.scale,
        benchmarks: args.benchmarks.clone(),
        build: crate::data::build::BuildOptions {
            sizes: args.pools.sizes.clone(),
            seed: args.seed,
            draws: args.pools.draws,
            select_on: args.pools.select_on.into(),
        },
    };
    let n = opts.specs()?.len();
    let start = Instant::now();
    // Progress goes to stderr as each file lands (in completion order); `err` is not Sync,
    // so lines are queued and printed by this thread.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let written = std::thread::scope(|s| -> Result<Vec<Written>> {
        let worker = s.spawn(|| {
            let tx = Mutex::new(tx);
            write_suite(&opts, &args.output, &|w: &Written| {
                let line = format!(
                    "synth: wrote {} ({} pools, {:.1} MB) in {:.1} s",
                    w.path.display(),
                    w.pools,
                    w.bytes as f64 / 1e6,
                    w.seconds
                );
                let _ = tx.lock().map(|t| t.send(line));
            })
        });
        let mut done = 0;
        for line in rx {
            done += 1;
            let _ = writeln!(err, "[{done}/{n}] {line}");
        }
        worker
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("synth panicked")))
    })?;
    let seconds = start.elapsed().as_secs_f64();
    match args.format.unwrap_or(Format::Table) {
        Format::Json => {
            let doc = serde_json::json!({
                "seed": opts.seed, "models": opts.models, "dim": opts.dim, "scale": opts.scale,
                "sizes": opts.build.sizes, "draws": opts.build.draws, "seconds": seconds,
                "benchmarks": written,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
        Format::Table => {
            writeln!(
                out,
                "synthetic suite, seed {}, {} LLMs, {}-d embeddings, in `{}`:",
                opts.seed,
                opts.models,
                opts.dim,
                args.output.display()
            )?;
            writeln!(
                out,
                "  {:<24} {:>6} {:>5} {:>5} {:>6} {:>10}",
                "benchmark", "train", "val", "test", "pools", "MB"
            )?;
            for w in &written {
                writeln!(
                    out,
                    "  {:<24} {:>6} {:>5} {:>5} {:>6} {:>10.1}",
                    w.benchmark,
                    w.queries[0],
                    w.queries[1],
                    w.queries[2],
                    w.pools,
                    w.bytes as f64 / 1e6
                )?;
                for s in &w.skipped {
                    writeln!(out, "    skipped {s}")?;
                }
            }
            writeln!(
                out,
                "{} files, {:.1} MB in {seconds:.1} s; evaluate with --dataset {}",
                written.len(),
                written.iter().map(|w| w.bytes).sum::<u64>() as f64 / 1e6,
                args.output.display()
            )?;
        }
    }
    Ok(())
}
