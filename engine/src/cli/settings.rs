//! The effective settings of a run: the `--config` file merged with the command line (each
//! option given on the command line wins), checked once, before anything is loaded.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use routereval_sdk::Params;

use crate::cli::args::{DifficultyArg, IsolateArg, ReportFormat, RunArgs};
use crate::cli::config::RunConfig;
use crate::data::Difficulty;
use crate::eval::contestant::{self, SharedContestant};
use crate::eval::registry::Registry;
use crate::eval::run::Selection;
use crate::plugin::policy::SandboxPolicy;
use crate::plugin::wasm;

/// The effective run settings, after merging the config file and the command line.
#[derive(Debug)]
pub struct Plan {
    pub seed: u64,
    pub datasets: Vec<PathBuf>,
    /// Compute the datasets' embeddings from their prompts with this model (`--embed-model`).
    pub embed: Option<crate::data::embed::EmbedOptions>,
    pub contestants: Vec<Spec>,
    pub policy: SandboxPolicy,
    pub cache_dir: Option<PathBuf>,
    pub isolate: IsolateArg,
    pub trusted: Vec<String>,
    pub worker_exe: Option<PathBuf>,
    pub selection: Selection,
    pub format: ReportFormat,
    pub threads: Option<usize>,
}

/// A row of the results, before plugins are loaded.
#[derive(Debug)]
pub enum Spec {
    /// A built-in router or a bound, ready.
    Ready(SharedContestant),
    Plugin {
        path: PathBuf,
        params: Params,
    },
    /// `exec:COMMAND`, built once the run's limits are known.
    Exec(String),
}

/// Splits `FILE[:KEY=VALUE,...]`: the whole text when it names a file, else at the last `:`.
fn parse_plugin(spec: &str, seed: u64) -> Result<Spec> {
    if spec.starts_with("exec:") || spec.starts_with("exec[") {
        return Ok(Spec::Exec(spec.to_string()));
    }
    let (path, rest) = if Path::new(spec).is_file() {
        (spec, "")
    } else {
        match spec.rsplit_once(':') {
            Some((p, rest)) if rest.contains('=') => (p, rest),
            _ => (spec, ""),
        }
    };
    if !Path::new(path).is_file() {
        bail!("--plugin `{path}`: no such file");
    }
    let params =
        Params::parse(rest, seed).map_err(|e| anyhow::anyhow!("--plugin `{spec}`: {e}"))?;
    Ok(Spec::Plugin {
        path: PathBuf::from(path),
        params,
    })
}

pub fn resolve(args: &RunArgs, registry: &Registry) -> Result<Plan> {
    let cfg = match &args.config {
        Some(p) => RunConfig::load(p)?,
        None => RunConfig::default(),
    };
    let seed = args.seed.or(cfg.seed).unwrap_or(0);
    let mut contestants = Vec::new();
    if !args.routers.is_empty() || !args.plugins.is_empty() {
        for spec in &args.routers {
            contestants.push(Spec::Ready(
                contestant::parse(spec, seed, registry)
                    .map_err(|e| anyhow::anyhow!("--router {e}"))?,
            ));
        }
        for spec in &args.plugins {
            contestants.push(parse_plugin(spec, seed)?);
        }
    } else if !cfg.routers.is_empty() {
        for entry in &cfg.routers {
            if let Some(command) = &entry.exec {
                if entry.plugin.is_some() || !entry.params.is_empty() {
                    bail!(
                        "config router `{}`: an `exec` router takes neither `plugin` nor \
                         `params` (its options go in the command)",
                        entry.label()
                    );
                }
                contestants.push(Spec::Exec(match &entry.name {
                    Some(name) => format!("exec[{name}]:{command}"),
                    None => format!("exec:{command}"),
                }));
                continue;
            }
            let params = entry.params(seed)?;
            match (&entry.name, &entry.plugin) {
                (Some(name), _) => contestants.push(Spec::Ready(
                    contestant::build_seeded(name, params, seed, registry)
                        .map_err(|e| anyhow::anyhow!("config router `{name}`: {e}"))?,
                )),
                (None, Some(path)) => {
                    if !path.is_file() {
                        bail!("config plugin `{}`: no such file", path.display());
                    }
                    contestants.push(Spec::Plugin {
                        path: path.clone(),
                        params,
                    });
                }
                (None, None) => {
                    bail!("config: a [[router]] has none of `name`, `plugin` and `exec`")
                }
            }
        }
    } else {
        for r in registry.iter().filter(|r| r.in_default_run) {
            contestants.push(Spec::Ready(
                contestant::parse(&r.name, seed, registry).map_err(|e| anyhow::anyhow!(e))?,
            ));
        }
        for b in ["oracle", "random", "r_o:p=0.5"] {
            contestants.push(Spec::Ready(
                contestant::parse(b, seed, registry).map_err(|e| anyhow::anyhow!(e))?,
            ));
        }
    }
    let mut policy = cfg.sandbox.clone().unwrap_or_default();
    // Each sandbox option given on the command line overrides the config's value.
    let overrides = [
        (args.fuel, &mut policy.fuel),
        (args.memory_limit, &mut policy.memory_mib),
        (args.stack_limit, &mut policy.stack_kib),
        (args.max_output, &mut policy.max_output_mib),
        (args.max_log, &mut policy.max_log_kib),
    ];
    for (given, field) in overrides {
        if let Some(v) = given {
            *field = v;
        }
    }
    policy.timeout_secs = args.timeout.unwrap_or(policy.timeout_secs);
    policy.nan_canonicalization = args
        .nan_canonicalization
        .unwrap_or(policy.nan_canonicalization);
    policy.host_kernels = args.host_kernels.unwrap_or(policy.host_kernels);
    policy.check().map_err(|e| anyhow::anyhow!(e))?;
    let cache_dir = if args.no_cache {
        None
    } else {
        args.cache_dir
            .clone()
            .or(cfg.cache_dir.clone())
            .or_else(wasm::default_cache_dir)
    };
    let isolate = match args.isolate {
        Some(i) => i,
        None => match cfg.isolate.as_deref() {
            None | Some("auto") => IsolateArg::Auto,
            Some("process") => IsolateArg::Process,
            Some("none") => IsolateArg::None,
            Some(other) => bail!("config: isolate `{other}` is not auto, process or none"),
        },
    };
    let mut trusted = Vec::new();
    for (origin, t) in cfg
        .trusted_plugins
        .iter()
        .map(|t| ("config trusted_plugins", t))
        .chain(args.trusted.iter().map(|t| ("--trust", t)))
    {
        let t = t.trim().to_ascii_lowercase();
        if t.len() != 64 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!(
                "{origin}: `{t}` is not a SHA-256 (64 hex digits); `sha256sum FILE` or the JSON \
                 output's `plugins` list gives it"
            );
        }
        trusted.push(t);
    }
    let difficulty = match args.difficulty {
        Some(DifficultyArg::Easy) => Some(Difficulty::Easy),
        Some(DifficultyArg::Hard) => Some(Difficulty::Hard),
        Some(DifficultyArg::All) => None,
        None => match cfg.difficulty.as_deref() {
            None | Some("all") => None,
            Some("easy") => Some(Difficulty::Easy),
            Some("hard") => Some(Difficulty::Hard),
            Some(other) => bail!("config: difficulty `{other}` is not easy, hard or all"),
        },
    };
    let format = match args.out.format {
        Some(f) => f,
        None => match cfg.format.as_deref() {
            None | Some("table") => ReportFormat::Table,
            Some("json") => ReportFormat::Json,
            Some("jsonl") => ReportFormat::Jsonl,
            Some("csv") => ReportFormat::Csv,
            Some("markdown") => ReportFormat::Markdown,
            Some(other) => {
                bail!("config: format `{other}` is not table, json, jsonl, csv or markdown")
            }
        },
    };
    let datasets = if args.datasets.is_empty() {
        cfg.datasets
    } else {
        args.datasets.clone()
    };
    Ok(Plan {
        seed,
        datasets,
        embed: args
            .embed_model
            .as_deref()
            .map(crate::data::embed::EmbedOptions::new),
        contestants,
        policy,
        cache_dir,
        isolate,
        trusted,
        worker_exe: args.worker_exe.clone(),
        selection: Selection {
            difficulty,
            candidates: args.candidates.clone().or(cfg.candidates),
            groups: args.groups.clone().or(cfg.groups),
        },
        format,
        threads: args.threads.or(cfg.threads),
    })
}
