//! `routereval-engine [run]`: load the datasets and contestants, run the plan, render the
//! results.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::args::{IsolateArg, OutputArgs, ReportFormat, RunArgs};
use crate::cli::manifest;
use crate::cli::settings::{Plan, Spec, resolve};
use crate::cli::{ExitStatus, Io};
use crate::data::RouterDataset;
use crate::eval::contestant::{Contestant, SharedContestant};
use crate::eval::registry::Registry;
use crate::eval::run::{self, EvalResult};
use crate::eval::stats::StatsConfig;
use crate::plugin::native::{self, Isolation, NativeContestant, NativePlugin, PluginFormat};
use crate::plugin::wasm::{WasmContestant, WasmHost, WasmPlugin};
use crate::report::Report;
use crate::report::results_file::{self, Header, Shard};

fn load_datasets(
    paths: &[PathBuf],
    embed: Option<&crate::data::embed::EmbedOptions>,
) -> Result<Vec<RouterDataset>> {
    let mut all = Vec::new();
    if paths.is_empty() {
        let mut ds = crate::data::embedded::default_dataset()?;
        if let Some(e) = embed {
            crate::data::embed::embed_dataset(&mut ds, e)?;
        }
        all.push(ds);
    }
    for p in paths {
        all.extend(crate::data::load::load_path_with(p, embed)?);
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

/// Loads the plugins (compiling WebAssembly ones or reading the compiled cache; loading or
/// probing native ones) and checks the row labels are distinct.
fn load_contestants(
    plan: &mut Plan,
    err: &mut dyn Write,
) -> Result<(Vec<SharedContestant>, Vec<manifest::ContestantSpec>)> {
    let specs = std::mem::take(&mut plan.contestants);
    let mut host = None;
    let mut contestants = Vec::with_capacity(specs.len());
    let mut given = Vec::with_capacity(specs.len());
    for spec in specs {
        let (path, params) = match spec {
            Spec::Ready(c) => {
                given.push(manifest::ContestantSpec::Router(c.label().to_string()));
                contestants.push(c);
                continue;
            }
            Spec::Plugin { path, params } => {
                given.push(manifest::ContestantSpec::plugin(&path, &params, plan.seed));
                (path, params)
            }
            Spec::Exec(spec) => {
                given.push(manifest::ContestantSpec::Exec(spec.clone()));
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
    Ok((contestants, given))
}

/// Everything a run loaded and decided before evaluating: what the manifest and the results
/// file describe.
#[allow(
    missing_debug_implementations,
    reason = "holds contestants and datasets"
)]
pub struct Prepared {
    pub plan: Plan,
    pub datasets: Vec<RouterDataset>,
    /// Each dataset's sha256 (of its file; of the bytes for the embedded data).
    pub dataset_sha256: Vec<String>,
    pub contestants: Vec<SharedContestant>,
    /// How each contestant is given again (`rerun`).
    pub specs: Vec<manifest::ContestantSpec>,
    pub tasks: Vec<run::Task>,
    pub stats: StatsConfig,
    pub header: Header,
    pub pool: rayon::ThreadPool,
}

impl Prepared {
    /// Each task's cost estimate (see [`run::estimate`]).
    pub fn estimates(&self) -> Vec<f64> {
        self.tasks
            .iter()
            .map(|t| run::estimate(&self.datasets, &self.contestants, t))
            .collect()
    }

    /// The tasks this run evaluates: all, or its shard's.
    pub fn mine(&self, estimates: &[f64]) -> Vec<usize> {
        match self.header.shard {
            None => (0..self.tasks.len()).collect(),
            Some(s) => run::shard_tasks(estimates, s.index, s.count),
        }
    }

    /// The plan as JSON lines, one per evaluation of this run (its shard's), with identity,
    /// estimate and shard: what `--dry-run` prints.
    pub fn plan_lines(&self) -> String {
        let estimates = self.estimates();
        let mut out = String::new();
        for i in self.mine(&estimates) {
            let t = &self.tasks[i];
            let ds = &self.datasets[t.dataset];
            let pool = &ds.pools[t.pool];
            let line = serde_json::json!({
                "task": i,
                "id": self.header.task_ids[i],
                "router": self.contestants[t.contestant].label(),
                "benchmark": ds.benchmark,
                "difficulty": pool.difficulty,
                "m": pool.m(),
                "group": pool.group,
                "estimate": estimates[i],
                "shard": self.header.shard,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        out
    }
}

/// Resolves, loads and plans a run (nothing is evaluated).
///
/// # Errors
/// A usage, config, dataset or plugin-loading error.
pub fn prepare(
    args: &RunArgs,
    registry: &Registry,
    err: &mut (dyn Write + Send),
) -> Result<Prepared> {
    let mut plan = resolve(args, registry)?;
    let shard = args
        .shard
        .as_deref()
        .map(Shard::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    let stats = StatsConfig {
        replicates: args
            .out
            .bootstrap
            .unwrap_or(StatsConfig::default().replicates),
        ..StatsConfig::default()
    };
    // Plugins run on these threads, WebAssembly stack included.
    let pool = plan.policy.worker_pool(plan.threads)?;
    let datasets = pool.install(|| load_datasets(&plan.datasets, plan.embed.as_ref()))?;
    let dataset_sha256 = pool.install(|| manifest::dataset_checksums(&datasets))?;
    let (contestants, specs) = pool.install(|| load_contestants(&mut plan, err))?;
    let tasks = run::plan(&datasets, &contestants, &plan.selection);
    if tasks.is_empty() {
        bail!(
            "no pool matches the selection (difficulty, --candidates, --group); the datasets have: {}",
            describe_pools(&datasets)
        );
    }
    let plan_json =
        manifest::plan_json(&plan, &datasets, &dataset_sha256, &contestants, tasks.len());
    let ids = manifest::task_ids(&plan_json, &datasets, &dataset_sha256, &contestants, &tasks);
    let mut manifest = manifest::manifest_json(
        &plan,
        &datasets,
        &dataset_sha256,
        &contestants,
        &specs,
        &stats,
        pool.current_num_threads(),
    );
    // A shard's own documents say which part of the plan they hold (`rerun` repeats that part).
    if let Some(s) = shard {
        manifest["shard"] = serde_json::json!({ "index": s.index, "count": s.count });
    }
    Ok(Prepared {
        header: Header::new(plan_json, ids, shard, manifest),
        plan,
        datasets,
        dataset_sha256,
        contestants,
        specs,
        tasks,
        stats,
        pool,
    })
}

/// How progress is shown on standard error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// Nothing.
    Quiet,
    /// One line per evaluation (`--progress`, for logs).
    Lines,
    /// The progress bar (standard error is a terminal).
    Bar,
}

/// The evaluations of a prepared run (its shard), carried on from `--results` with `--resume`
/// and appended to it as they finish. Returns the rows of the shard in plan order.
///
/// # Errors
/// The results file is of another plan, unreadable, or cannot be written.
pub fn evaluate(
    p: &Prepared,
    results_path: Option<&Path>,
    resume: bool,
    mode: ProgressMode,
    err: &mut (dyn Write + Send),
) -> Result<Vec<EvalResult>> {
    let n = p.tasks.len();
    let estimates = p.estimates();
    let mine = p.mine(&estimates);
    let mut done: Vec<Option<EvalResult>> = vec![None; n];
    let writer = match results_path {
        None => None,
        Some(path) if resume && path.exists() => {
            let contents = results_file::read(path)?;
            if contents.header.plan_id != p.header.plan_id {
                let diffs = results_file::plan_differences(&contents.header.plan, &p.header.plan);
                bail!(
                    "--resume: `{}` is the results file of a different plan; it differs in:\n  {}\n\
                     use another --results file, or remove it to start over",
                    path.display(),
                    diffs.join("\n  ")
                );
            }
            if contents.header.shard != p.header.shard {
                let show = |s: Option<Shard>| {
                    s.map_or_else(
                        || "the whole plan".to_string(),
                        |s| format!("shard {}/{}", s.index, s.count),
                    )
                };
                bail!(
                    "--resume: `{}` holds {}, this run is {}",
                    path.display(),
                    show(contents.header.shard),
                    show(p.header.shard)
                );
            }
            let mut kept = 0usize;
            for rec in contents.records {
                if rec.task >= n || p.header.task_ids[rec.task] != rec.id {
                    bail!(
                        "--resume: `{}` has an evaluation (task {}) that is not this plan's; \
                         the file was edited or mixed with another",
                        path.display(),
                        rec.task
                    );
                }
                if done[rec.task].is_none() {
                    kept += 1;
                }
                done[rec.task] = Some(rec.result);
            }
            if mode != ProgressMode::Quiet {
                let _ = writeln!(
                    err,
                    "resuming `{}`: {kept} of {} evaluations done{}",
                    path.display(),
                    mine.len(),
                    if contents.torn {
                        "; a torn last line (an evaluation cut off by a kill) is redone"
                    } else {
                        ""
                    }
                );
            }
            Some(results_file::Writer::reopen(path, contents.complete_len)?)
        }
        Some(path) => Some(results_file::Writer::create(path, &p.header)?),
    };
    let todo: Vec<usize> = mine
        .iter()
        .copied()
        .filter(|&i| done[i].is_none())
        .collect();
    let todo_tasks: Vec<run::Task> = todo.iter().map(|&i| p.tasks[i]).collect();
    let writer = Mutex::new((writer, None::<anyhow::Error>));
    let progress = Progress::new(mode, todo.len(), err);
    let labels = |i: usize| {
        let t = &p.tasks[todo[i]];
        let ds = &p.datasets[t.dataset];
        let pool = &ds.pools[t.pool];
        format!(
            "{} {} {} m={} {}",
            crate::util::terminal_safe(p.contestants[t.contestant].label()),
            crate::util::terminal_safe(&ds.benchmark),
            pool.difficulty,
            pool.m(),
            crate::util::terminal_safe(&pool.group)
        )
    };
    let on_start = |i: usize| progress.started(&labels(i));
    let on_done = |i: usize, r: &EvalResult| {
        {
            let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
            let (file, failed) = &mut *w;
            if let (Some(f), None) = (file.as_mut(), failed.as_ref())
                && let Err(e) =
                    f.append(todo[i], &p.header.task_ids[todo[i]], estimates[todo[i]], r)
            {
                *failed = Some(e);
            }
        }
        progress.finished(&labels(i), r);
    };
    let fresh = p.pool.install(|| {
        run::execute(
            &p.datasets,
            &p.contestants,
            &todo_tasks,
            &on_start,
            &on_done,
        )
    });
    progress.finish();
    if let (_, Some(e)) = writer.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e.context(
            "the results file is incomplete; --resume carries on once the cause is fixed",
        ));
    }
    for (i, r) in todo.into_iter().zip(fresh) {
        done[i] = Some(r);
    }
    Ok(mine
        .into_iter()
        .map(|i| done[i].take().expect("evaluated or resumed"))
        .collect())
}

/// Renders `results` as `out` asks (format, file, plots).
///
/// # Errors
/// An output file or the plots cannot be written.
pub fn render(
    results: &[EvalResult],
    manifest: serde_json::Value,
    stats: StatsConfig,
    format: ReportFormat,
    out: &OutputArgs,
    stdout: &mut dyn Write,
) -> Result<Vec<PathBuf>> {
    let report = Report::new(results, stats, manifest);
    let text = report.render(format.to_report())?;
    match &out.output {
        Some(path) => crate::util::write_atomically(path, text.as_bytes())?,
        None => stdout.write_all(text.as_bytes())?,
    }
    match &out.plots {
        Some(dir) => crate::report::plots::write_plots(results, &report.analysis, dir),
        None => Ok(Vec::new()),
    }
}

/// Runs the evaluations `args` ask for and writes the report; the status says whether any
/// failed.
///
/// # Errors
/// A usage, config, dataset or plugin-loading error: nothing was evaluated.
pub fn run(args: &RunArgs, registry: &Registry, io: &mut Io<'_>) -> Result<ExitStatus> {
    let started = Instant::now();
    let mode = if args.quiet {
        ProgressMode::Quiet
    } else if args.progress {
        ProgressMode::Lines
    } else if io.err_is_terminal {
        ProgressMode::Bar
    } else {
        ProgressMode::Quiet
    };
    let prepared = prepare(args, registry, &mut *io.err)?;
    if args.dry_run {
        io.out.write_all(prepared.plan_lines().as_bytes())?;
        let estimates = prepared.estimates();
        let mine = prepared.mine(&estimates);
        let total: f64 = mine.iter().map(|&i| estimates[i]).sum();
        let _ = writeln!(
            io.err,
            "{} evaluations, estimated {} on one core (built-in routers' work models; plugins \
             roughly)",
            mine.len(),
            if total < 120.0 {
                format!("{total:.0} s")
            } else {
                format!("{:.0} min", total / 60.0)
            }
        );
        return Ok(ExitStatus::Success);
    }
    let results = evaluate(
        &prepared,
        args.results.as_deref(),
        args.resume,
        mode,
        &mut *io.err,
    )?;
    let plots = render(
        &results,
        prepared.header.manifest.clone(),
        prepared.stats,
        prepared.plan.format,
        &args.out,
        &mut *io.out,
    )?;
    let failed = results.iter().filter(|r| !r.is_ok()).count();
    if mode != ProgressMode::Quiet {
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
        for p in &plots {
            let _ = writeln!(io.err, "plot: {}", p.display());
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

/// Progress on standard error: a bar (indicatif) with evaluations done, rate, ETA and the
/// evaluation running; or a line per evaluation; or nothing.
struct Progress<'a> {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    lines: Mutex<(usize, &'a mut (dyn Write + Send))>,
    total: usize,
}

impl<'a> Progress<'a> {
    fn new(mode: ProgressMode, total: usize, err: &'a mut (dyn Write + Send)) -> Progress<'a> {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} evaluations, {per_sec}, ETA {eta}  {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Progress {
            mode,
            bar,
            lines: Mutex::new((0, err)),
            total,
        }
    }

    fn started(&self, what: &str) {
        if let Some(b) = &self.bar {
            b.set_message(format!("running {what}"));
        }
    }

    fn finished(&self, what: &str, r: &EvalResult) {
        if let Some(b) = &self.bar {
            b.inc(1);
            if let Err(e) = &r.outcome {
                b.println(format!("failed ({}): {what}", e.kind));
            }
            return;
        }
        if self.mode != ProgressMode::Lines {
            return;
        }
        let mut g = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        let status = match &r.outcome {
            Ok(m) => match r.fuel {
                Some(f) => format!("ok mu={:.4} fuel={f}", m.mu),
                None => format!("ok mu={:.4}", m.mu),
            },
            Err(e) => format!("failed ({})", e.kind),
        };
        let line = format!(
            "[{}/{}] {what}: {status} in {:.2}s\n",
            g.0, self.total, r.seconds
        );
        let _ = g.1.write_all(line.as_bytes());
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
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
