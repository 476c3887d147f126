//! `routereval-engine rerun FILE`: runs a recorded run again from its manifest (in a JSON
//! document or a results file) and says whether every number is identical, timings aside.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value as Json;

use crate::cli::args::RerunArgs;
use crate::cli::commands::run::{ProgressMode, evaluate, prepare};
use crate::cli::manifest::run_args_from;
use crate::cli::{ExitStatus, Io};
use crate::eval::registry::Registry;
use crate::report::Report;
use crate::report::results_file;

/// The numbers of a row that must come out the same (not its timing).
const COMPARED: [&str; 10] = [
    "mu",
    "vr",
    "vb",
    "ep",
    "status",
    "error",
    "fuel",
    "ci_low",
    "ci_high",
    "self_reported",
];

fn key(row: &Json) -> String {
    format!(
        "{} on {} {} m={} {}",
        row["router"].as_str().unwrap_or("?"),
        row["benchmark"].as_str().unwrap_or("?"),
        row["difficulty"].as_str().unwrap_or("?"),
        row["m"],
        row["group"].as_str().unwrap_or("?")
    )
}

/// The recorded manifest and rows (as JSON rows, with statistics).
fn recorded(path: &Path) -> Result<(Json, Vec<Json>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    let first = text.lines().next().unwrap_or_default();
    if serde_json::from_str::<Json>(first)
        .ok()
        .is_some_and(|v| v.get("routereval_results").is_some())
    {
        let c = results_file::read(path)?;
        let results: Vec<_> = c.records.into_iter().map(|r| r.result).collect();
        let stats =
            serde_json::from_value(c.header.manifest["statistics"].clone()).unwrap_or_default();
        let report = Report::new(&results, stats, c.header.manifest.clone());
        let rows = report.to_json()["results"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        return Ok((c.header.manifest, rows));
    }
    let doc: Json = serde_json::from_str(&text).with_context(|| {
        format!(
            "`{}` is neither a results file nor a JSON document of a run",
            path.display()
        )
    })?;
    let Some(manifest) = doc.get("manifest").filter(|m| m.is_object()) else {
        bail!(
            "`{}` has no manifest (written by an older engine?); rerun needs `run --format json` \
             or `--results` output of this version",
            path.display()
        );
    };
    let rows = doc["results"].as_array().cloned().unwrap_or_default();
    Ok((manifest.clone(), rows))
}

/// Reruns and compares.
///
/// # Errors
/// The file is unreadable, a dataset changed, or the run cannot start.
pub fn rerun(args: &RerunArgs, registry: &Registry, io: &mut Io<'_>) -> Result<ExitStatus> {
    let (manifest, rows) = recorded(&args.file)?;
    let mut run_args = run_args_from(&manifest, &args.file)?;
    if args.threads.is_some() {
        run_args.threads = args.threads;
    }
    let recorded_revision = manifest["engine"]["git_revision"]
        .as_str()
        .map(str::to_string);
    let prepared = prepare(&run_args, registry, &mut *io.err)?;
    let mode = if io.err_is_terminal {
        ProgressMode::Bar
    } else {
        ProgressMode::Quiet
    };
    let results = evaluate(&prepared, None, false, mode, &mut *io.err)?;
    let report = Report::new(&results, prepared.stats, prepared.header.manifest.clone());
    let now = report.to_json();
    let mut fresh: BTreeMap<String, Json> = BTreeMap::new();
    for r in now["results"].as_array().into_iter().flatten() {
        fresh.insert(key(r), r.clone());
    }
    let mut differences = Vec::new();
    for old in &rows {
        let k = key(old);
        match fresh.remove(&k) {
            None => differences.push(format!("{k}: not in the rerun")),
            Some(new) => {
                for f in COMPARED {
                    // A recorded row lacks fields an older format did not have: not a difference.
                    if old.get(f).is_some() && old[f] != new[f] {
                        differences.push(format!("{k}: {f} was {}, now {}", old[f], new[f]));
                    }
                }
            }
        }
    }
    for k in fresh.keys() {
        differences.push(format!("{k}: new in the rerun"));
    }
    let now_revision = option_env!("ROUTEREVAL_GIT_REVISION");
    let mut out = String::new();
    if differences.is_empty() {
        out.push_str(&format!(
            "identical: {} evaluations, every number the same (timings aside)\n",
            rows.len()
        ));
    } else {
        out.push_str(&format!(
            "different: {} difference(s) in {} evaluations\n",
            differences.len(),
            rows.len()
        ));
        for d in &differences {
            out.push_str(&format!("  {}\n", crate::util::terminal_safe(d)));
        }
    }
    if recorded_revision.as_deref() != now_revision {
        out.push_str(&format!(
            "note: recorded with engine revision {}, rerun with {}\n",
            recorded_revision.as_deref().unwrap_or("unknown"),
            now_revision.unwrap_or("unknown")
        ));
    }
    io.out.write_all(out.as_bytes())?;
    Ok(if differences.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::SomeFailed
    })
}
