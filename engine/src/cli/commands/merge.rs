//! `routereval-engine merge FILES...`: joins results files (the shards of one plan, or one run's
//! file) into the report one run would have written.

use std::io::Write;

use anyhow::{Result, bail};

use crate::cli::ExitStatus;
use crate::cli::args::{MergeArgs, ReportFormat};
use crate::cli::commands::run::render;
use crate::eval::run::EvalResult;
use crate::eval::stats::StatsConfig;
use crate::report::results_file::{self, Contents};

/// The rows of `files` in plan order, with the manifest and statistics settings of their plan.
///
/// # Errors
/// A file is unreadable, the files are of different plans, or evaluations are missing or
/// recorded twice with different identities.
pub fn merged(
    files: &[std::path::PathBuf],
) -> Result<(Vec<EvalResult>, serde_json::Value, StatsConfig)> {
    let mut all: Vec<(std::path::PathBuf, Contents)> = Vec::new();
    for f in files {
        all.push((f.clone(), results_file::read(f)?));
    }
    let (first_path, first) = &all[0];
    for (path, c) in &all[1..] {
        if c.header.plan_id != first.header.plan_id {
            let diffs = results_file::plan_differences(&first.header.plan, &c.header.plan);
            bail!(
                "`{}` and `{}` are results of different plans; they differ in:\n  {}",
                first_path.display(),
                path.display(),
                diffs
                    .join("\n  ")
                    .replace("the file has", "the first has")
                    .replace("this run has", "the other has")
            );
        }
    }
    let n = first.header.tasks();
    let mut rows: Vec<Option<(&results_file::Record, usize)>> = vec![None; n];
    for (k, (path, c)) in all.iter().enumerate() {
        for rec in &c.records {
            // `results_file::read` has checked that the task is the plan's.
            match rows[rec.task] {
                Some((prev, first)) if prev.id != rec.id => bail!(
                    "`{}` and `{}` record evaluation {} with different identities",
                    all[first].0.display(),
                    path.display(),
                    rec.task
                ),
                // The same evaluation in two files (a file given twice, a shard run twice) is one
                // evaluation if its numbers agree; otherwise which to report is not ours to pick.
                Some((prev, first)) if !results_file::same_numbers(prev, rec) => bail!(
                    "`{}` and `{}` record evaluation {} ({} on {} m={} {}) with different \
                     results; keep one of them",
                    all[first].0.display(),
                    path.display(),
                    rec.task,
                    rec.result.router,
                    rec.result.benchmark,
                    rec.result.m,
                    rec.result.group
                ),
                Some(_) => {}
                None => rows[rec.task] = Some((rec, k)),
            }
        }
    }
    let missing: Vec<usize> = (0..n).filter(|&i| rows[i].is_none()).collect();
    if !missing.is_empty() {
        let shards: Vec<String> = all
            .iter()
            .map(|(p, c)| match c.header.shard {
                Some(s) => format!("{} (shard {}/{})", p.display(), s.index, s.count),
                None => format!("{} (whole plan)", p.display()),
            })
            .collect();
        let counts = first.header.shard.map_or(String::new(), |s| {
            format!("; the plan has {} shards: give every shard's file", s.count)
        });
        bail!(
            "{} of the plan's {n} evaluations are in none of the files (the first: task {}){counts}; \
             given: {}. An unfinished shard carries on with `run ... --shard I/N --results FILE \
             --resume`",
            missing.len(),
            missing[0],
            shards.join(", ")
        );
    }
    let stats: StatsConfig =
        serde_json::from_value(first.header.manifest["statistics"].clone()).unwrap_or_default();
    let results = rows
        .into_iter()
        .map(|r| r.expect("checked").0.result.clone())
        .collect();
    // The merged set is the whole plan: the report's manifest is the plan's, not a shard's.
    let mut manifest = first.header.manifest.clone();
    if let Some(m) = manifest.as_object_mut() {
        m.remove("shard");
    }
    Ok((results, manifest, stats))
}

/// Merges and renders.
///
/// # Errors
/// See [`merged`]; an output cannot be written.
pub fn merge(args: &MergeArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<ExitStatus> {
    let (results, manifest, mut stats) = merged(&args.files)?;
    if let Some(b) = args.out.bootstrap {
        stats.replicates = b;
    }
    let plots = render(
        &results,
        manifest,
        stats,
        args.out.format.unwrap_or(ReportFormat::Table),
        &args.out,
        out,
    )?;
    for p in plots.iter().filter(|_| !args.quiet) {
        let _ = writeln!(err, "plot: {}", p.display());
    }
    Ok(if results.iter().any(|r| !r.is_ok()) {
        ExitStatus::SomeFailed
    } else {
        ExitStatus::Success
    })
}
