//! `routereval-engine [run]`: load the datasets and contestants, run the plan, render the
//! results.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::cli::args::{Format, IsolateArg, RunArgs};
use crate::cli::settings::{Plan, Spec, resolve};
use crate::cli::{ExitStatus, Io};
use crate::data::RouterDataset;
use crate::eval::contestant::{Contestant, SharedContestant};
use crate::eval::registry::Registry;
use crate::eval::run::{self, EvalResult};
use crate::plugin::native::{self, Isolation, NativeContestant, NativePlugin, PluginFormat};
use crate::plugin::wasm::{WasmContestant, WasmHost, WasmPlugin};
use crate::report;

fn load_datasets(paths: &[PathBuf]) -> Result<Vec<RouterDataset>> {
    if paths.is_empty() {
        return Ok(vec![crate::data::embedded::default_dataset()?]);
    }
    let mut all = Vec::new();
    for p in paths {
        all.extend(crate::data::load::load_path(p)?);
    }
    let mut names: Vec<&str> = all.iter().map(|d| d.benchmark.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!(
            "benchmark `{}` is loaded twice; give each dataset once",
            w[0]
        );
    }
    Ok(all)
}

fn describe_pools(datasets: &[RouterDataset]) -> String {
    datasets
        .iter()
        .map(|d| {
            let pools: Vec<String> = d
                .pools
                .iter()
                .map(|p| format!("{} m={} {}", p.difficulty, p.m(), p.group))
                .collect();
            format!("{}: {}", d.benchmark, pools.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("out")
    ));
    std::fs::write(&tmp, text).with_context(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move `{}` to `{}`", tmp.display(), path.display()))
}

/// Loads the plugins (compiling WebAssembly ones or reading the compiled cache; loading or
/// probing native ones) and checks the row labels are distinct.
fn load_contestants(plan: &mut Plan, err: &mut dyn Write) -> Result<Vec<SharedContestant>> {
    let specs = std::mem::take(&mut plan.contestants);
    let mut host = None;
    let mut contestants = Vec::with_capacity(specs.len());
    for spec in specs {
        let (path, params) = match spec {
            Spec::Ready(c) => {
                contestants.push(c);
                continue;
            }
            Spec::Plugin { path, params } => (path, params),
            Spec::Exec(spec) => {
                let router =
                    crate::plugin::exec::ExecRouter::parse(&spec, plan.seed, &plan.policy)?;
                if router.reporting() == crate::plugin::exec::Reporting::SelfReported {
                    let _ = writeln!(
                        err,
                        "note: `{}` prints its own metrics (RouterEval's contract): its rows are \
                         marked self-reported; put {{out}} in the command and save the routing \
                         there to have the engine compute them",
                        router.label()
                    );
                }
                contestants.push(Arc::new(router));
                continue;
            }
        };
        let (unusable, contestant) = match native::sniff(&path)? {
            PluginFormat::Wasm => {
                let host = match &host {
                    Some(h) => h,
                    None => {
                        host.insert(WasmHost::new(plan.policy.clone(), plan.cache_dir.clone())?)
                    }
                };
                let plugin = WasmPlugin::load(host, &path)?;
                (
                    plugin.unusable().cloned(),
                    Arc::new(WasmContestant::new(Arc::new(plugin), params, plan.seed))
                        as SharedContestant,
                )
            }
            PluginFormat::Native => {
                let sha = native::file_sha256(&path)?;
                let isolation = match plan.isolate {
                    IsolateArg::None => Isolation::InProcess,
                    IsolateArg::Process => Isolation::Process,
                    IsolateArg::Auto if plan.trusted.contains(&sha) => Isolation::InProcess,
                    IsolateArg::Auto => Isolation::Process,
                };
                let worker = match &plan.worker_exe {
                    Some(w) => w.clone(),
                    None => std::env::current_exe()
                        .context("cannot find this program's executable to run isolated plugins")?,
                };
                let plugin =
                    NativePlugin::load_hashed(&path, sha, isolation, &worker, &plan.policy)?;
                (
                    plugin.unusable().cloned(),
                    Arc::new(NativeContestant::new(Arc::new(plugin), params, plan.seed))
                        as SharedContestant,
                )
            }
        };
        if let Some(e) = unusable {
            let _ = writeln!(
                err,
                "warning: every evaluation of plugin `{}` will fail ({}): {}",
                crate::util::terminal_safe(&path.display().to_string()),
                e.kind,
                crate::util::terminal_safe_keeping(&e.message, true)
            );
        }
        contestants.push(contestant);
    }
    let mut labels: Vec<&str> = contestants.iter().map(|c| c.label()).collect();
    labels.sort();
    if let Some(w) = labels.windows(2).find(|w| w[0] == w[1]) {
        bail!(
            "router `{}` is given twice (plugins are named by their router; give two builds \
             different names with export_router!(Router, name = \"...\"), two commands with \
             exec[NAME]:COMMAND)",
            w[0]
        );
    }
    Ok(contestants)
}

/// Runs the evaluations `args` ask for and writes the table or JSON; the status says whether
/// any failed.
///
/// # Errors
/// A usage, config, dataset or plugin-loading error: nothing was evaluated.
pub fn run(args: &RunArgs, registry: &Registry, io: &mut Io<'_>) -> Result<ExitStatus> {
    let started = Instant::now();
    let mut plan = resolve(args, registry)?;
    let pool = {
        // Plugins run on these threads, WebAssembly stack included.
        let stack = usize::try_from(plan.policy.stack_kib * 1024)? + (8 << 20);
        let mut b = rayon::ThreadPoolBuilder::new().stack_size(stack);
        if let Some(n) = plan.threads {
            if n == 0 {
                bail!("--threads must be at least 1");
            }
            b = b.num_threads(n);
        }
        b.build().context("cannot start the worker threads")?
    };
    let datasets = pool.install(|| load_datasets(&plan.datasets))?;
    let contestants = pool.install(|| load_contestants(&mut plan, &mut *io.err))?;
    let tasks = run::plan(&datasets, &contestants, &plan.selection);
    if tasks.is_empty() {
        bail!(
            "no pool matches the selection (difficulty, --candidates, --group); the datasets have: {}",
            describe_pools(&datasets)
        );
    }
    let show = args.progress || io.err_is_terminal;
    let total = tasks.len();
    let done = Mutex::new((0usize, &mut *io.err));
    let on_done = |r: &EvalResult| {
        if !show {
            return;
        }
        let mut g = done.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        let status = match &r.outcome {
            Ok(m) => match r.fuel {
                Some(f) => format!("ok mu={:.4} fuel={f}", m.mu),
                None => format!("ok mu={:.4}", m.mu),
            },
            Err(e) => format!("failed ({})", e.kind),
        };
        let line = format!(
            "[{}/{total}] {} {} {} m={} {}: {status} in {:.2}s\n",
            g.0,
            crate::util::terminal_safe(&r.router),
            crate::util::terminal_safe(&r.benchmark),
            r.difficulty,
            r.m,
            crate::util::terminal_safe(&r.group),
            r.seconds
        );
        let _ = g.1.write_all(line.as_bytes());
    };
    let results = pool.install(|| run::execute(&datasets, &contestants, &tasks, &on_done));
    let text = match plan.format {
        Format::Table => report::to_table(&results),
        Format::Json => {
            let mut doc = report::to_json(&results, plan.seed);
            let plugins: Vec<serde_json::Value> =
                contestants.iter().filter_map(|c| c.provenance()).collect();
            if !plugins.is_empty() {
                // What a rerun needs to reproduce the plugin rows: the exact files and limits.
                doc["plugins"] = serde_json::Value::Array(plugins);
                doc["sandbox"] = serde_json::to_value(&plan.policy)?;
            }
            let mut s = serde_json::to_string_pretty(&doc)?;
            s.push('\n');
            s
        }
    };
    match &args.output {
        Some(path) => write_atomically(path, &text)?,
        None => io.out.write_all(text.as_bytes())?,
    }
    let failed = results.iter().filter(|r| !r.is_ok()).count();
    if show {
        // Where the time went: each row's evaluations summed (they overlap across threads).
        let mut per_router: Vec<(&str, f64, usize)> = Vec::new();
        for r in &results {
            match per_router.iter_mut().find(|(n, _, _)| *n == r.router) {
                Some(e) => {
                    e.1 += r.seconds;
                    e.2 += 1;
                }
                None => per_router.push((&r.router, r.seconds, 1)),
            }
        }
        let _ = writeln!(io.err, "time per router (evaluations summed over threads):");
        for (name, secs, n) in &per_router {
            let name = crate::util::terminal_safe(name);
            let _ = writeln!(io.err, "  {name:<24} {secs:>10.2} s in {n} evaluations");
        }
        let peak = peak_memory_mib().map_or_else(String::new, |m| format!(", peak memory {m} MiB"));
        let _ = writeln!(
            io.err,
            "{} evaluations ({} ok, {failed} failed) in {:.2}s{peak}",
            results.len(),
            results.len() - failed,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(if failed > 0 {
        ExitStatus::SomeFailed
    } else {
        ExitStatus::Success
    })
}

/// The most resident memory this process has had, in MiB (Linux's `VmHWM`; `None` elsewhere):
/// what a run with plugins cost the machine, the engine and every sandbox together.
fn peak_memory_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib.div_ceil(1024))
}
