//! The reproducibility manifest of a run (in every JSON document and results file), the plan
//! that decides its numbers (what `--resume` and `merge` check), each evaluation's identity, and
//! the way back from a manifest to a run (`rerun`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use routereval_sdk::Params;
use serde_json::{Value as Json, json};

use crate::cli::args::{DifficultyArg, IsolateArg, RunArgs};
use crate::cli::settings::Plan;
use crate::data::RouterDataset;
use crate::eval::contestant::{SharedContestant, row_label};
use crate::eval::run::Task;
use crate::eval::stats::StatsConfig;

/// How a contestant was given, so that a rerun can give it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContestantSpec {
    /// `--router SPEC` (a built-in router or a bound; its label parses back to it).
    Router(String),
    /// `--plugin FILE[:PARAMS]`, the file by its absolute path.
    Plugin(String),
    /// `--plugin exec[NAME]:COMMAND`.
    Exec(String),
}

impl ContestantSpec {
    /// A plugin file with its parameters.
    pub fn plugin(path: &Path, params: &Params, seed: u64) -> ContestantSpec {
        let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        ContestantSpec::Plugin(row_label(&abs.display().to_string(), params, seed))
    }

    fn to_json(&self) -> Json {
        match self {
            ContestantSpec::Router(s) => json!({ "router": s }),
            ContestantSpec::Plugin(s) => json!({ "plugin": s }),
            ContestantSpec::Exec(s) => json!({ "plugin": s }),
        }
    }
}

pub use crate::data::inspect::dataset_checksums;

fn contestant_identity(c: &SharedContestant) -> Json {
    let mut id = json!({ "label": c.label(), "kind": c.kind() });
    if let Some(p) = c.provenance() {
        // What decides a plugin's numbers: its bytes and ABI, or a program's command; not where
        // the file lies (shards on other machines have other paths).
        for k in ["sha256", "abi", "command"] {
            if let Some(v) = p.get(k) {
                id[k] = v.clone();
            }
        }
    }
    id
}

fn selection_json(plan: &Plan) -> Json {
    json!({
        "difficulty": plan.selection.difficulty,
        "candidates": plan.selection.candidates,
        "groups": plan.selection.groups,
    })
}

/// The plan: everything that decides the evaluations' numbers (not where files lie, not the
/// thread count, not the statistics settings, which only the reports use).
pub fn plan_json(
    plan: &Plan,
    datasets: &[RouterDataset],
    sha256: &[String],
    contestants: &[SharedContestant],
    evaluations: usize,
) -> Json {
    let mut j = json!({
        "seed": plan.seed,
        "datasets": datasets.iter().zip(sha256).map(|(d, h)| json!({
            "benchmark": d.benchmark, "sha256": h,
        })).collect::<Vec<_>>(),
        "contestants": contestants.iter().map(contestant_identity).collect::<Vec<_>>(),
        "selection": selection_json(plan),
        "sandbox": serde_json::to_value(&plan.policy).unwrap_or(Json::Null),
        "evaluations": evaluations,
    });
    // Only when set, so the plans (and task ids) of runs without it are unchanged.
    if let Some(e) = &plan.embed {
        j["embed_model"] = embed_identity(e);
    }
    j
}

/// What decides embeddings computed by `--embed-model`: the model's weights and tokenizer
/// (sha256) and the length limit, plus where the model was (for `rerun`).
pub fn embed_identity(e: &crate::data::embed::EmbedOptions) -> Json {
    let sha = |f: &str| {
        crate::util::file_sha256(&e.model.join(f)).unwrap_or_else(|_| "unreadable".to_string())
    };
    json!({
        "path": std::fs::canonicalize(&e.model)
            .map_or_else(|_| e.model.display().to_string(), |p| p.display().to_string()),
        "weights_sha256": sha("model.safetensors"),
        "tokenizer_sha256": sha("tokenizer.json"),
        "max_length": e.max_length,
    })
}

/// Each task's identity: a digest of its dataset (sha256), pool, contestant (label, kind,
/// plugin sha256), the seed and the sandbox policy.
pub fn task_ids(
    plan: &Json,
    datasets: &[RouterDataset],
    sha256: &[String],
    contestants: &[SharedContestant],
    tasks: &[Task],
) -> Vec<String> {
    let mut common = json!({ "seed": plan["seed"], "sandbox": plan["sandbox"] });
    if let Some(e) = plan.get("embed_model") {
        common["embed_model"] = json!({
            "weights_sha256": e["weights_sha256"], "tokenizer_sha256": e["tokenizer_sha256"],
            "max_length": e["max_length"],
        });
    }
    let common = common.to_string();
    tasks
        .iter()
        .map(|t| {
            let ds = &datasets[t.dataset];
            let pool = &ds.pools[t.pool];
            let id = json!({
                "dataset": sha256[t.dataset],
                "benchmark": ds.benchmark,
                "pool": [t.pool, pool.difficulty.as_str(), pool.m(), pool.group],
                "contestant": contestant_identity(&contestants[t.contestant]),
                "common": common,
            });
            crate::util::sha256_hex(id.to_string().as_bytes())[..32].to_string()
        })
        .collect()
}

/// The manifest: what produced the results, and how to produce them again.
pub fn manifest_json(
    plan: &Plan,
    datasets: &[RouterDataset],
    sha256: &[String],
    contestants: &[SharedContestant],
    specs: &[ContestantSpec],
    stats: &StatsConfig,
    threads: usize,
) -> Json {
    let plugins: Vec<Json> = contestants.iter().filter_map(|c| c.provenance()).collect();
    json!({
        "engine": crate::util::engine_json(),
        "sdk_version": routereval_sdk::SDK_VERSION,
        "wit": routereval_sdk::abi::WIT_PACKAGE,
        "seed": plan.seed,
        "embed_model": plan.embed.as_ref().map(embed_identity),
        "datasets": datasets.iter().zip(sha256).map(|(d, h)| {
            let source = if d.source.starts_with("embedded:") {
                d.source.clone()
            } else {
                std::fs::canonicalize(&d.source)
                    .map_or_else(|_| d.source.clone(), |p| p.display().to_string())
            };
            json!({ "benchmark": d.benchmark, "source": source, "sha256": h })
        }).collect::<Vec<_>>(),
        "contestants": contestants.iter().zip(specs).map(|(c, s)| json!({
            "label": c.label(), "kind": c.kind(), "given_as": s.to_json(),
        })).collect::<Vec<_>>(),
        "plugins": plugins,
        "selection": selection_json(plan),
        "sandbox": serde_json::to_value(&plan.policy).unwrap_or(Json::Null),
        "isolate": format!("{:?}", plan.isolate).to_lowercase(),
        "trusted_plugins": plan.trusted,
        "threads": threads,
        "cpu": crate::util::cpu_json(),
        "statistics": stats,
    })
}

/// The run a manifest describes, as command-line arguments; checks each dataset file is still
/// the one recorded.
///
/// # Errors
/// The manifest lacks a field, or a dataset is missing or changed.
pub fn run_args_from(manifest: &Json, what: &Path) -> Result<RunArgs> {
    let field = |k: &str| {
        manifest
            .get(k)
            .ok_or_else(|| anyhow::anyhow!("`{}`: the manifest has no `{k}`", what.display()))
    };
    let mut args = RunArgs::default();
    if let Some(path) = manifest
        .get("embed_model")
        .and_then(|e| e.get("path"))
        .and_then(Json::as_str)
    {
        args.embed_model = Some(PathBuf::from(path));
    }
    for d in field("datasets")?.as_array().into_iter().flatten() {
        let source = d["source"].as_str().unwrap_or_default();
        if source.starts_with("embedded:") {
            continue;
        }
        let path = PathBuf::from(source);
        if !path.is_file() {
            bail!(
                "dataset `{source}` of the recorded run is not there any more; put it back (sha256 \
                 {}) to rerun",
                d["sha256"].as_str().unwrap_or("?")
            );
        }
        let now = crate::util::file_sha256(&path)
            .with_context(|| format!("cannot read dataset `{source}`"))?;
        if Some(now.as_str()) != d["sha256"].as_str() {
            bail!(
                "dataset `{source}` changed since the recorded run (sha256 {} then, {now} now)",
                d["sha256"].as_str().unwrap_or("?")
            );
        }
        args.datasets.push(path);
    }
    for c in field("contestants")?.as_array().into_iter().flatten() {
        let given = &c["given_as"];
        if let Some(r) = given.get("router").and_then(Json::as_str) {
            args.routers.push(r.to_string());
        } else if let Some(p) = given.get("plugin").and_then(Json::as_str) {
            args.plugins.push(p.to_string());
        } else {
            bail!("`{}`: a contestant without `given_as`", what.display());
        }
    }
    args.seed = field("seed")?.as_u64();
    let sel = field("selection")?;
    args.difficulty = match sel["difficulty"].as_str() {
        Some("easy") => Some(DifficultyArg::Easy),
        Some("hard") => Some(DifficultyArg::Hard),
        _ => Some(DifficultyArg::All),
    };
    args.candidates = serde_json::from_value(sel["candidates"].clone()).unwrap_or(None);
    args.groups = serde_json::from_value(sel["groups"].clone()).unwrap_or(None);
    let policy: crate::plugin::policy::SandboxPolicy =
        serde_json::from_value(field("sandbox")?.clone())
            .with_context(|| format!("`{}`: the manifest's `sandbox`", what.display()))?;
    args.fuel = Some(policy.fuel);
    args.timeout = Some(policy.timeout_secs);
    args.memory_limit = Some(policy.memory_mib);
    args.stack_limit = Some(policy.stack_kib);
    args.max_output = Some(policy.max_output_mib);
    args.max_log = Some(policy.max_log_kib);
    args.nan_canonicalization = Some(policy.nan_canonicalization);
    args.host_kernels = Some(policy.host_kernels);
    args.isolate = match manifest["isolate"].as_str() {
        Some("process") => Some(IsolateArg::Process),
        Some("none") => Some(IsolateArg::None),
        _ => Some(IsolateArg::Auto),
    };
    args.trusted = serde_json::from_value(manifest["trusted_plugins"].clone()).unwrap_or_default();
    args.threads = manifest["threads"].as_u64().map(|t| t as usize);
    let stats: StatsConfig = serde_json::from_value(field("statistics")?.clone())
        .with_context(|| format!("`{}`: the manifest's `statistics`", what.display()))?;
    args.out.bootstrap = Some(stats.replicates);
    args.shard = match manifest.get("shard") {
        Some(s) if !s.is_null() => Some(format!("{}/{}", s["index"], s["count"])),
        _ => None,
    };
    Ok(args)
}
