//! The command line: `routereval-engine [run] [OPTIONS]` and `routereval-engine routers`.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use std::sync::Arc;

use routereval_sdk::Params;

use crate::config::RunConfig;
use crate::data::{Difficulty, RouterDataset};
use crate::native::{self, Isolation, NativePlugin, PluginFormat};
use crate::routers::{Contender, Registry};
use crate::run::{self, EvalResult, Selection};
use crate::sandbox::SandboxPolicy;
use crate::wasm::{self, WasmHost, WasmPlugin};
use crate::{dataset, embedded, isolate, report};

const EXAMPLES: &str = "\
Examples:
  routereval-engine                              the built-in routers (but mlp) and bounds on the embedded data
  routereval-engine --router knn:k=10 --router oracle
  routereval-engine --dataset data/router_dataset --difficulty easy --format json
  routereval-engine --config configs/default.toml
  routereval-engine --router knn --plugin my_router.wasm:k=7 --fuel 1000000000000
  routereval-engine --plugin target/release/libmy_router.so --isolate process
  routereval-engine --plugin 'exec:python3 examples/python-router/knn_router.py {npz} {out}'
  routereval-engine synth -o data/synth           the 12-benchmark synthetic suite, m up to 1000
  routereval-engine routers                      list routers, their parameters, and the bounds
  routereval-engine build-dataset data/queries.jsonl --rows train   pools by RouterEval's rules
  routereval-engine inspect gsm8k_router_dataset.pkl   shapes, pools, accuracies, leakage

Exit status: 0 when every evaluation succeeded, 1 when some failed (the others are still
reported), 2 on a usage, config or dataset error.";

/// Evaluates LLM routers on RouterEval-format benchmarks and computes mu, V_R, V_B and Ep.
#[derive(Debug, Parser)]
#[command(
    name = "routereval-engine",
    version,
    args_conflicts_with_subcommands = true,
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate routers (the default: `routereval-engine --router knn` is `run --router knn`)
    Run(Box<RunArgs>),
    /// List the built-in routers with their parameters, and the reference bounds
    Routers,
    /// Build a router dataset from a population (every model scored on every query) by
    /// RouterEval's rules, and show its split and pools
    BuildDataset(BuildArgs),
    /// Write a synthetic suite with the shapes of RouterEval's 12 benchmarks (a population of
    /// 2,000 LLMs from an item-response model, pools up to m = 1000), one pickle per benchmark
    Synth(SynthArgs),
    /// Show what datasets hold: shapes, pools and models, accuracies per split, fractional
    /// scores, prompts shared between splits, checksums
    Inspect(InspectArgs),
    /// Serve one isolated native-plugin evaluation on standard input (the engine runs itself
    /// with this; not for people)
    #[command(name = "__native-worker", hide = true)]
    NativeWorker,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum IsolateArg {
    /// In-process for native plugins whose SHA-256 is trusted (--trust, `trusted_plugins`),
    /// a child process per evaluation for the others
    Auto,
    /// A child process per evaluation for every native plugin
    Process,
    /// Every native plugin in the engine's process (a crash ends the run)
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DifficultyArg {
    Easy,
    Hard,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

/// Options of `inspect`.
#[derive(Clone, Debug, Args)]
pub struct InspectArgs {
    /// Datasets, as --dataset takes them
    #[arg(value_name = "DATASET", required = true)]
    datasets: Vec<PathBuf>,
    /// Output format [default: table]
    #[arg(long, value_enum)]
    format: Option<Format>,
}

/// Options of `build-dataset`.
#[derive(Clone, Debug, Args)]
pub struct BuildArgs {
    /// The population: `queries.jsonl` (first line {"models": [...]}, then one query per line
    /// with "row", "split", "task", "prompt", "scores") with its embeddings `.npy`
    #[arg(value_name = "INPUT")]
    input: PathBuf,
    /// The embeddings (`queries x dim` .npy, row i = the query whose "row" is i) [default: the
    /// only .npy beside INPUT]
    #[arg(long, value_name = "FILE")]
    embeddings: Option<PathBuf>,
    /// Only the rows whose "split" is this, e.g. `train` [default: every row]
    #[arg(long, value_name = "SPLIT")]
    rows: Option<String>,
    /// The benchmark's name [default: INPUT's stem, or its directory for `queries.jsonl`]
    #[arg(long, value_name = "NAME")]
    benchmark: Option<String>,
    #[command(flatten)]
    pools: PoolArgs,
    /// Seed of the split and the strong_to_weak draws
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output format of the summary [default: table]
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write the dataset to FILE (atomically), in the layout --to names
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// The layout of --output: RouterEval's pickle, readable by Python's pickle with numpy 1
    /// or 2, and by --dataset
    #[arg(long, value_enum, default_value = "routereval-pkl")]
    to: ExportFormat,
}

/// Options of `synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// The directory to write `<benchmark>_router_dataset.pkl` files into (created if missing;
    /// each file written atomically); `--dataset DIR` then evaluates on all of them
    #[arg(long, short = 'o', value_name = "DIR")]
    output: PathBuf,
    /// Seed of the population, the items, the split and the pool draws
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// LLMs in the population (pools of m = 1000 need about 1,500)
    #[arg(long, default_value_t = 2000)]
    models: usize,
    /// Only these benchmarks [default: all 12]
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    benchmarks: Vec<String>,
    #[command(flatten)]
    pools: PoolArgs,
    /// Embedding dimension
    #[arg(long, default_value_t = 768)]
    dim: usize,
    /// Item counts are RouterEval's times this (e.g. 0.1 for a quick suite)
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Output format of the summary [default: table]
    #[arg(long, value_enum)]
    format: Option<Format>,
}

/// The pools to build, shared by `build-dataset` and `synth`.
#[derive(Clone, Debug, Args)]
struct PoolArgs {
    /// Pool sizes (below 10 easy, else hard)
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "M,...",
        default_value = "3,5,10,100,1000"
    )]
    sizes: Vec<usize>,
    /// Draws per strong_to_weak pool
    #[arg(long, default_value_t = 1000)]
    draws: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    /// `*_router_dataset.pkl`, as RouterEval's get_router_dataset.py writes it
    RouterevalPkl,
}

/// Options of `run`.
#[derive(Clone, Debug, Default, Args)]
pub struct RunArgs {
    /// A RouterEval `*_router_dataset.pkl` file, or a directory of them, each a benchmark
    /// (repeatable). Default: the embedded LLMRouter data (9 LLMs)
    #[arg(long = "dataset", short = 'd', value_name = "PATH")]
    datasets: Vec<PathBuf>,
    /// A router or bound with parameters, e.g. `knn:k=10`, `oracle`, `random`, `r_o:p=0.5`
    /// (repeatable; rows in this order). Default: the built-in routers (all but the slow `mlp`,
    /// see `routers`) and the bounds oracle,
    /// random and r_o:p=0.5
    #[arg(long = "router", short = 'r', value_name = "NAME[:KEY=VALUE,...]")]
    routers: Vec<String>,
    /// A router plugin with parameters, e.g. `my_router.wasm:k=7` (repeatable; rows after the
    /// --router rows): a WebAssembly component (built for wasm32-wasip2), run in the sandbox,
    /// or a native library (`libmy_router.so`, `.dylib`, `.dll`, built with the router crate's
    /// `native-plugin` feature), run at native speed, isolated as --isolate says; or a command,
    /// `exec[NAME]:COMMAND`, run per pool with `{npz}` replaced by RouterEval's .npz of the
    /// pool: it prints mu, V_B, Ep (self-reported), or, with `{out}` in the command, saves its
    /// N_test x m belief there as .npy for the engine to score
    #[arg(long = "plugin", short = 'p', value_name = "FILE[:KEY=VALUE,...]")]
    plugins: Vec<String>,
    /// Which pools: easy (m = 3, 5), hard (m = 10, 100, 1000) or all [default: all]
    #[arg(long, value_enum)]
    difficulty: Option<DifficultyArg>,
    /// Only pools of these sizes, e.g. `3,5`
    #[arg(long, value_delimiter = ',', value_name = "M,...")]
    candidates: Option<Vec<usize>>,
    /// Only pools of these groups: all_strong, all_weak, strong_to_weak (or a dataset's own)
    #[arg(long = "group", value_delimiter = ',', value_name = "GROUP,...")]
    groups: Option<Vec<String>>,
    /// Output format [default: table]
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Seed handed to every router (a router's own `seed=` parameter overrides it) [default: 0]
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads [default: one per core]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// A TOML run configuration (see configs/); command-line options override it
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Write the output to FILE (atomically) instead of standard output
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Report each evaluation on standard error as it finishes (default when stderr is a
    /// terminal)
    #[arg(long)]
    progress: bool,
    /// Fuel budget per evaluation, about one unit per WebAssembly instruction; 0 for none
    /// [default: 10000000000000]
    #[arg(long, value_name = "N", help_heading = SANDBOX)]
    fuel: Option<u64>,
    /// Wall-clock deadline per evaluation, in seconds [default: 3600]
    #[arg(long, value_name = "SECONDS", help_heading = SANDBOX)]
    timeout: Option<f64>,
    /// Linear memory cap per evaluation, in MiB (at most 4096) [default: 2048]
    #[arg(long, value_name = "MIB", help_heading = SANDBOX)]
    memory_limit: Option<u64>,
    /// WebAssembly stack cap, in KiB [default: 1024]
    #[arg(long, value_name = "KIB", help_heading = SANDBOX)]
    stack_limit: Option<u64>,
    /// Cap on a routing's size, in MiB [default: 256]
    #[arg(long, value_name = "MIB", help_heading = SANDBOX)]
    max_output: Option<u64>,
    /// Cap on what an evaluation may log, in KiB [default: 64]
    #[arg(long, value_name = "KIB", help_heading = SANDBOX)]
    max_log: Option<u64>,
    /// Canonicalise NaNs after float operations (bit-identical results on every host)
    /// [default: true]
    #[arg(long, value_name = "BOOL", help_heading = SANDBOX)]
    nan_canonicalization: Option<bool>,
    /// Compute the SDK's matrix kernel natively in the engine, charged to the plugin's fuel
    /// (false: in WebAssembly, bit-identical on every host, several times slower) [default: true]
    #[arg(long, value_name = "BOOL", help_heading = SANDBOX)]
    host_kernels: Option<bool>,
    /// Where compiled plugins are cached [default: $ROUTEREVAL_CACHE_DIR, else
    /// $XDG_CACHE_HOME/routereval-engine, else ~/.cache/routereval-engine]
    #[arg(long, value_name = "DIR", help_heading = SANDBOX)]
    cache_dir: Option<PathBuf>,
    /// Compile plugins afresh and cache nothing
    #[arg(long, help_heading = SANDBOX, conflicts_with = "cache_dir")]
    no_cache: bool,
    /// Where native plugins run [default: auto]
    #[arg(long, value_enum, value_name = "MODE", help_heading = NATIVE)]
    isolate: Option<IsolateArg>,
    /// Trust the native plugin with this SHA-256 (hex, as the JSON output's `plugins` lists
    /// it): with --isolate auto it runs in-process (repeatable; adds to `trusted_plugins`)
    #[arg(long = "trust", value_name = "SHA256", help_heading = NATIVE)]
    trusted: Vec<String>,
    /// The executable isolated evaluations run in [default: this program]
    #[arg(long, value_name = "FILE", hide = true)]
    worker_exe: Option<PathBuf>,
}

const SANDBOX: &str =
    "Plugin limits (WebAssembly; timeout, output and log caps also bind isolated native plugins)";
const NATIVE: &str = "Native plugins";

/// Where the CLI writes, and whether standard error is a terminal.
#[allow(
    missing_debug_implementations,
    reason = "holds trait objects for the output streams"
)]
pub struct Io<'a> {
    /// Standard output.
    pub out: &'a mut (dyn Write + Send),
    /// Standard error.
    pub err: &'a mut (dyn Write + Send),
    /// Whether standard error is a terminal (progress is shown by default then).
    pub err_is_terminal: bool,
}

/// The whole program: runs the process's command line with the routers of `registry` on the
/// real standard streams, and turns the status into an exit code. The `routereval-engine`
/// binary is this with the built-in routers; a program that adds its own routers calls it with
/// its registry.
pub fn main_with(registry: &Registry) -> std::process::ExitCode {
    use std::io::IsTerminal;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let err_is_terminal = err.is_terminal();
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        err_is_terminal,
    };
    let status = run_cli(std::env::args_os(), registry, &mut io);
    std::process::ExitCode::from(u8::try_from(status).unwrap_or(2))
}

/// Runs the command line `args` (including the program name) with the routers of `registry`.
/// Returns the exit status: 0 all evaluations succeeded, 1 some failed, 2 a usage or input error.
pub fn run_cli<I, T>(args: I, registry: &Registry, io: &mut Io<'_>) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let text = if io.err_is_terminal {
                e.render().ansi().to_string()
            } else {
                e.render().to_string()
            };
            return match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = write!(io.out, "{}", e.render());
                    0
                }
                _ => {
                    let _ = write!(io.err, "{text}");
                    2
                }
            };
        }
    };
    let result = match cli.command {
        Some(Command::NativeWorker) => Ok(isolate::worker_main()),
        Some(Command::Routers) => list_routers(registry, io.out).map(|()| 0),
        Some(Command::BuildDataset(args)) => build_dataset(&args, io.out).map(|()| 0),
        Some(Command::Inspect(args)) => inspect(&args, io.out).map(|()| 0),
        Some(Command::Synth(args)) => synth(&args, io.out, io.err).map(|()| 0),
        Some(Command::Run(args)) => run(&args, registry, io),
        None => run(&cli.run, registry, io),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Errors quote files and plugins (keys, names, messages): no escape sequences.
            let text = format!("{e:#}");
            let _ = writeln!(
                io.err,
                "error: {}",
                report::terminal_safe_keeping(&text, true)
            );
            2
        }
    }
}

fn list_routers(registry: &Registry, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "routers (use as --router NAME[:key=value,...]):")?;
    for r in registry.iter() {
        writeln!(out, "  {:<10} {}", r.name, r.summary)?;
        writeln!(out, "  {:<10} parameters: {} (and seed)", "", r.params)?;
    }
    writeln!(
        out,
        "reference bounds (computed by the engine from the test scores):"
    )?;
    writeln!(out, "  {:<10} the best model for every query", "oracle")?;
    writeln!(
        out,
        "  {:<10} a uniformly random model for every query",
        "random"
    )?;
    writeln!(
        out,
        "  {:<10} the oracle with probability p, else random (exact expectation); p=0.5 by default",
        "r_o:p=<p>"
    )?;
    writeln!(
        out,
        "WebAssembly plugins (components of {}), run in the sandbox:\n  --plugin FILE.wasm[:key=value,...]",
        wasm::ABI
    )?;
    writeln!(
        out,
        "native plugins (libraries of {}), isolated per --isolate:\n  --plugin {}[:key=value,...]",
        native::ABI,
        native::library_file_name("router")
    )?;
    Ok(())
}

fn inspect(args: &InspectArgs, out: &mut dyn Write) -> Result<()> {
    let mut reports = Vec::new();
    for path in &args.datasets {
        let sha = if path.is_file() {
            Some(native::file_sha256(path)?)
        } else {
            None
        };
        for ds in dataset::load_path(path)? {
            reports.push(crate::inspect::inspect(&ds, sha.clone()));
        }
    }
    match args.format.unwrap_or(Format::Table) {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&reports)?)?,
        Format::Table => {
            for r in &reports {
                write!(out, "{}", crate::inspect::to_text(r))?;
            }
        }
    }
    Ok(())
}

fn synth(args: &SynthArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    use crate::synth::{SynthOptions, Written, write_suite};
    let opts = SynthOptions {
        seed: args.seed,
        models: args.models,
        dim: args.dim,
        scale: args.scale,
        benchmarks: args.benchmarks.clone(),
        build: crate::build::BuildOptions {
            sizes: args.pools.sizes.clone(),
            seed: args.seed,
            draws: args.pools.draws,
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

fn build_dataset(args: &BuildArgs, out: &mut dyn Write) -> Result<()> {
    use crate::build::{BuildOptions, build};
    use crate::import::{ImportOptions, read_population};
    let pop = read_population(
        &args.input,
        &ImportOptions {
            embeddings: args.embeddings.clone(),
            rows: args.rows.clone(),
            benchmark: args.benchmark.clone(),
        },
    )?;
    let opts = BuildOptions {
        sizes: args.pools.sizes.clone(),
        seed: args.seed,
        draws: args.pools.draws,
    };
    let (ds, skipped) = build(&pop, &opts)?;
    ds.check_values()
        .map_err(|e| anyhow::anyhow!("in `{}`: {e}", args.input.display()))?;
    if let Some(path) = &args.output {
        match args.to {
            ExportFormat::RouterevalPkl => crate::export::write_routereval_pickle(&ds, path)?,
        }
    }
    let test_means = |p: &crate::data::Pool| -> Vec<f64> {
        (0..p.m())
            .map(|j| crate::build::pairwise_sum(&p.test_scores.column(j)) / ds.test.len() as f64)
            .collect()
    };
    let oracle = |p: &crate::data::Pool| -> f64 {
        let best: Vec<f64> = (0..ds.test.len())
            .map(|i| {
                p.test_scores
                    .row(i)
                    .iter()
                    .copied()
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect();
        crate::build::pairwise_sum(&best) / best.len() as f64
    };
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
                report::terminal_safe(&ds.benchmark),
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
                    .map(|(m, v)| format!("{} ({v:.3})", report::terminal_safe(m)))
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
                    report::terminal_safe(&p.group),
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

/// The effective run settings, after merging the config file and the command line.
struct Plan {
    seed: u64,
    datasets: Vec<PathBuf>,
    contenders: Vec<Spec>,
    policy: SandboxPolicy,
    cache_dir: Option<PathBuf>,
    isolate: IsolateArg,
    trusted: Vec<String>,
    worker_exe: Option<PathBuf>,
    selection: Selection,
    format: Format,
    threads: Option<usize>,
}

/// A row of the results, before plugins are loaded.
enum Spec {
    Ready(Contender),
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

fn resolve(args: &RunArgs, registry: &Registry) -> Result<Plan> {
    let cfg = match &args.config {
        Some(p) => RunConfig::load(p)?,
        None => RunConfig::default(),
    };
    let seed = args.seed.or(cfg.seed).unwrap_or(0);
    let mut contenders = Vec::new();
    if !args.routers.is_empty() || !args.plugins.is_empty() {
        for spec in &args.routers {
            contenders.push(Spec::Ready(
                Contender::parse(spec, seed, registry)
                    .map_err(|e| anyhow::anyhow!("--router {e}"))?,
            ));
        }
        for spec in &args.plugins {
            contenders.push(parse_plugin(spec, seed)?);
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
                contenders.push(Spec::Exec(match &entry.name {
                    Some(name) => format!("exec[{name}]:{command}"),
                    None => format!("exec:{command}"),
                }));
                continue;
            }
            let params = entry.params(seed)?;
            match (&entry.name, &entry.plugin) {
                (Some(name), _) => contenders.push(Spec::Ready(
                    Contender::build_seeded(name, params, seed, registry)
                        .map_err(|e| anyhow::anyhow!("config router `{name}`: {e}"))?,
                )),
                (None, Some(path)) => {
                    if !path.is_file() {
                        bail!("config plugin `{}`: no such file", path.display());
                    }
                    contenders.push(Spec::Plugin {
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
            contenders.push(Spec::Ready(
                Contender::parse(&r.name, seed, registry).map_err(|e| anyhow::anyhow!(e))?,
            ));
        }
        for b in ["oracle", "random", "r_o:p=0.5"] {
            contenders.push(Spec::Ready(
                Contender::parse(b, seed, registry).map_err(|e| anyhow::anyhow!(e))?,
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
    let format = match args.format {
        Some(f) => f,
        None => match cfg.format.as_deref() {
            None | Some("table") => Format::Table,
            Some("json") => Format::Json,
            Some(other) => bail!("config: format `{other}` is not table or json"),
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
        contenders,
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

fn load_datasets(paths: &[PathBuf]) -> Result<Vec<RouterDataset>> {
    if paths.is_empty() {
        return Ok(vec![embedded::default_dataset()?]);
    }
    let mut all = Vec::new();
    for p in paths {
        all.extend(dataset::load_path(p)?);
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
fn load_contenders(plan: &mut Plan, err: &mut dyn Write) -> Result<Vec<Contender>> {
    let specs = std::mem::take(&mut plan.contenders);
    let mut host = None;
    let mut contenders = Vec::with_capacity(specs.len());
    for spec in specs {
        let (path, params) = match spec {
            Spec::Ready(c) => {
                contenders.push(c);
                continue;
            }
            Spec::Plugin { path, params } => (path, params),
            Spec::Exec(spec) => {
                let router = crate::exec::ExecRouter::parse(&spec, plan.seed, &plan.policy)?;
                if router.reporting() == crate::exec::Reporting::SelfReported {
                    let _ = writeln!(
                        err,
                        "note: `{}` prints its own metrics (RouterEval's contract): its rows are \
                         marked self-reported; put {{out}} in the command and save the routing \
                         there to have the engine compute them",
                        router.label()
                    );
                }
                contenders.push(Contender::Exec(Arc::new(router)));
                continue;
            }
        };
        let (unusable, contender) = match native::sniff(&path)? {
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
                    Contender::wasm(Arc::new(plugin), params, plan.seed),
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
                    Contender::native(Arc::new(plugin), params, plan.seed),
                )
            }
        };
        if let Some(e) = unusable {
            let _ = writeln!(
                err,
                "warning: every evaluation of plugin `{}` will fail ({}): {}",
                report::terminal_safe(&path.display().to_string()),
                e.kind,
                report::terminal_safe_keeping(&e.message, true)
            );
        }
        contenders.push(contender);
    }
    let mut labels: Vec<String> = contenders.iter().map(Contender::label).collect();
    labels.sort();
    if let Some(w) = labels.windows(2).find(|w| w[0] == w[1]) {
        bail!(
            "router `{}` is given twice (plugins are named by their router; give two builds \
             different names with export_router!(Router, name = \"...\"), two commands with \
             exec[NAME]:COMMAND)",
            w[0]
        );
    }
    Ok(contenders)
}

fn run(args: &RunArgs, registry: &Registry, io: &mut Io<'_>) -> Result<i32> {
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
    let contenders = pool.install(|| load_contenders(&mut plan, &mut *io.err))?;
    let tasks = run::plan(&datasets, &contenders, &plan.selection);
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
        let status = match (&r.metrics, &r.error) {
            (Some(m), _) => match r.fuel {
                Some(f) => format!("ok mu={:.4} fuel={f}", m.mu),
                None => format!("ok mu={:.4}", m.mu),
            },
            (_, Some(e)) => format!("failed ({})", e.kind),
            _ => String::new(),
        };
        let line = format!(
            "[{}/{total}] {} {} {} m={} {}: {status} in {:.2}s\n",
            g.0,
            report::terminal_safe(&r.router),
            report::terminal_safe(&r.benchmark),
            r.difficulty,
            r.m,
            report::terminal_safe(&r.group),
            r.seconds
        );
        let _ = g.1.write_all(line.as_bytes());
    };
    let results = pool.install(|| run::execute(registry, &datasets, &contenders, &tasks, &on_done));
    let text = match plan.format {
        Format::Table => report::to_table(&results),
        Format::Json => {
            let mut doc = report::to_json(&results, plan.seed);
            let plugins: Vec<serde_json::Value> = contenders
                .iter()
                .filter_map(|c| match c {
                    Contender::Wasm { plugin, label, .. } => Some(serde_json::json!({
                        "router": label,
                        "path": plugin.path(),
                        "sha256": plugin.sha256(),
                        "sdk_version": plugin.sdk_version(),
                        "abi": wasm::ABI,
                    })),
                    Contender::Native { plugin, label, .. } => Some(serde_json::json!({
                        "router": label,
                        "path": plugin.path(),
                        "sha256": plugin.sha256(),
                        "sdk_version": plugin.sdk_version(),
                        "abi": native::ABI,
                        "isolation": plugin.isolation(),
                    })),
                    Contender::Exec(e) => Some(serde_json::json!({
                        "router": e.label(),
                        "command": e.command(),
                        "self_reported": e.reporting() == crate::exec::Reporting::SelfReported,
                    })),
                    _ => None,
                })
                .collect();
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
            let name = report::terminal_safe(name);
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
    Ok(if failed > 0 { 1 } else { 0 })
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
