//! The one interface every row of the results implements: a built-in router, a WebAssembly or
//! native plugin, an `exec:` program, a reference bound. The runner
//! ([`crate::eval::run`]) catches panics, validates and scores in one place; a new kind of
//! router is one new implementation of [`Contestant`].

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use routereval_sdk::{Params, Queries, RouterError, Split};

use crate::data::{Pool, RouterDataset, SplitData};
use crate::eval::bounds::Bound;
pub use crate::eval::outcome::ContestantKind;
use crate::eval::outcome::{Answer, Attempt};
pub use crate::eval::registry::is_valid_name;
use crate::eval::registry::{Factory, Registry};
use crate::failure::Failure;

/// One evaluation's input: the dataset and the pool. A contestant shows a router only the views
/// ([`Job::views`]): train and validation splits with scores, test queries without.
#[derive(Clone, Copy, Debug)]
pub struct Job<'a> {
    /// The benchmark.
    pub dataset: &'a RouterDataset,
    /// The pool of candidates.
    pub pool: &'a Pool,
}

fn queries(split: &SplitData) -> Result<Queries<'_>, RouterError> {
    Queries::new(
        split.len(),
        split.embeddings.cols(),
        split.embeddings.as_slice(),
        &split.prompts,
    )
}

impl<'a> Job<'a> {
    /// What a router sees of the pool: the train and validation splits, and the test queries.
    ///
    /// # Errors
    /// Inconsistent shapes (a loaded dataset has passed its checks, so never in practice).
    pub fn views(&self) -> Result<(Split<'a>, Split<'a>, Queries<'a>), RouterError> {
        let (ds, pool) = (self.dataset, self.pool);
        let train = Split::new(
            queries(&ds.train)?,
            ds.training_scores(pool).as_slice(),
            &pool.models,
        )?;
        let val = Split::new(queries(&ds.val)?, pool.val_scores.as_slice(), &pool.models)?;
        Ok((train, val, queries(&ds.test)?))
    }
}

/// A row of the results: something that answers a pool with a routing (or metrics).
///
/// Implementations turn every failure of their own into a [`Failure`] in the [`Attempt`]; the
/// runner adds where it happened, catches a panic that escapes, validates a routing and
/// computes the metrics.
pub trait Contestant: Send + Sync + fmt::Debug {
    /// The row label: `knn`, `knn:k=7`, `knn@wasm`, `oracle (bound)` is shown from `oracle`.
    fn label(&self) -> &str;

    /// How it is loaded.
    fn kind(&self) -> ContestantKind;

    /// Whether its metrics are its own word (an `exec:` program that prints them).
    fn self_reported(&self) -> bool {
        false
    }

    /// Runs one evaluation.
    fn evaluate(&self, job: &Job<'_>) -> Attempt;

    /// What a rerun needs to reproduce its rows (the file and its sha256, the ABI, the
    /// command), for the JSON document; `None` for what the engine itself defines.
    fn provenance(&self) -> Option<serde_json::Value> {
        None
    }

    /// Its estimated cost on a task of `shape`, in seconds on one core (what workers start
    /// largest-first and shards are balanced by). Unknown contestants (plugins, programs) are
    /// estimated as a moderate router whose work grows with training rows x (dimension +
    /// candidates).
    fn cost(&self, shape: &TaskShape) -> f64 {
        1e-7 * shape.train_rows * (shape.dim + shape.m)
    }
}

/// The sizes that decide what an evaluation costs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TaskShape {
    /// Training queries.
    pub train_rows: f64,
    /// Test queries.
    pub test_rows: f64,
    /// Embedding dimension.
    pub dim: f64,
    /// Candidates.
    pub m: f64,
}

/// The estimated cost, in seconds on one core, of the built-in router `name` with `params` on a
/// task of `shape`: each router's work model (what its training loop multiplies) times a
/// constant fitted on the synthetic paper sweep (`scripts/sweep`, 2 cores, 2026-11-29: summed
/// seconds per router over its 180 evaluations), scaled by the parameters that multiply the
/// work (epochs; a mini-batch epoch costs about half a batch-1 epoch).
pub fn builtin_cost(name: &str, params: &Params, shape: &TaskShape) -> f64 {
    let TaskShape {
        train_rows: n,
        test_rows: t,
        dim: d,
        m,
    } = *shape;
    let epochs = |default: f64| params.f64_or("epochs", default).unwrap_or(default) / default;
    let batched = if params.f64_or("batch", 1.0).is_ok_and(|b| b > 1.0) {
        0.5
    } else {
        1.0
    };
    match name {
        // Batch-1 Adam through 768 -> 256 -> 256 -> m: every sample touches every weight.
        "mlp" => 3.5e-8 * n * (d + 256.0 + m) * 256.0 * epochs(100.0) * batched,
        // One d -> m layer (LinearR), one logistic regression per candidate, a rank-64
        // factorisation: work in training rows x dimension x candidates.
        "linear" => 4e-9 * n * d * m * epochs(10.0) * batched + 2e-7 * n,
        "logreg" => 6.5e-9 * n * d * m + 2e-7 * n,
        "mf" => 1e-9 * n * d * m + 2e-7 * n,
        // Distances between test and training queries; k-means over the training queries.
        "knn" => 2.5e-11 * n * t * d,
        "cluster" => 2e-8 * n * d,
        "best-on-train" => 1e-9 * n * m,
        _ => 1e-7 * n * (d + m),
    }
}

/// A shared, loaded contestant.
pub type SharedContestant = Arc<dyn Contestant>;

/// The name a plugin reports for itself, if it is a usable one: trimmed, at most 64
/// characters, [`is_valid_name`]. (A plugin is then named after its file instead.)
pub fn reported_name(raw: &str) -> Option<String> {
    let name = raw.trim();
    (name.len() <= 64 && is_valid_name(name)).then(|| name.to_string())
}

/// A row's label: `name`, then `:params` when there are any, with `seed=N` among them when the
/// router's own seed differs from the run's (two seeds of one router are two rows).
pub fn row_label(name: &str, params: &Params, run_seed: u64) -> String {
    let mut shown: Vec<String> = Vec::new();
    if !params.is_empty() {
        shown.push(params.to_string());
    }
    if params.seed() != run_seed {
        shown.push(format!("seed={}", params.seed()));
    }
    if shown.is_empty() {
        name.to_string()
    } else {
        format!("{name}:{}", shown.join(","))
    }
}

/// A router linked into the engine, from the [`Registry`].
#[derive(Clone)]
pub struct BuiltinRouter {
    name: String,
    params: Params,
    label: String,
    factory: Factory,
}

impl fmt::Debug for BuiltinRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuiltinRouter")
            .field("name", &self.name)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl BuiltinRouter {
    /// The registry name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Contestant for BuiltinRouter {
    fn label(&self) -> &str {
        &self.label
    }

    fn kind(&self) -> ContestantKind {
        ContestantKind::Builtin
    }

    fn cost(&self, shape: &TaskShape) -> f64 {
        builtin_cost(&self.name, &self.params, shape)
    }

    fn evaluate(&self, job: &Job<'_>) -> Attempt {
        // The router runs in this process: its panic is caught here, at the stage it happened,
        // and becomes a `panic` failure as a plugin's would.
        let mut stage = "create";
        let run = catch_unwind(AssertUnwindSafe(|| {
            let mut router = (self.factory)(&self.params)?;
            let (train, val, test) = job.views()?;
            stage = "fit";
            router.fit(&train, &val)?;
            stage = "route";
            router.route(&test)
        }));
        let answer = match run {
            Ok(Ok(routing)) => Ok(Answer::Routing(routing)),
            Ok(Err(e)) => Err(Failure::from_router(stage, &e)),
            Err(payload) => Err(Failure::from_router(
                stage,
                &RouterError::from_panic(&*payload),
            )),
        };
        Attempt::of(answer)
    }
}

/// A reference bound (oracle, random, r_o(p)) as a row.
#[derive(Clone, Debug)]
pub struct BoundContestant {
    bound: Bound,
    label: String,
}

impl BoundContestant {
    /// The bound as a contestant.
    pub fn new(bound: Bound) -> BoundContestant {
        BoundContestant {
            label: bound.label(),
            bound,
        }
    }
}

impl Contestant for BoundContestant {
    fn label(&self) -> &str {
        &self.label
    }

    fn kind(&self) -> ContestantKind {
        ContestantKind::Bound
    }

    fn cost(&self, shape: &TaskShape) -> f64 {
        // A pass over the test scores.
        1e-9 * shape.test_rows * shape.m
    }

    fn evaluate(&self, job: &Job<'_>) -> Attempt {
        let test = &job.pool.test_scores;
        Attempt::of(Ok(Answer::Metrics {
            metrics: self.bound.evaluate(test, job.dataset.acc_ref),
            per_query: Some(self.bound.per_query(test)),
        }))
    }
}

/// Parses `NAME[:key=value,...]`: a registered router or a bound (`oracle`, `random`,
/// `r_o:p=0.5`). Router parameters are checked by building the router once.
///
/// # Errors
/// An unknown name (the message lists the known ones) or invalid parameters.
pub fn parse(spec: &str, seed: u64, registry: &Registry) -> Result<SharedContestant, String> {
    let (name, rest) = spec.split_once(':').unwrap_or((spec, ""));
    let params = Params::parse(rest, seed).map_err(|e| format!("`{spec}`: {e}"))?;
    build_seeded(name.trim(), params, seed, registry).map_err(|e| format!("`{spec}`: {e}"))
}

/// Builds a contestant from a name and parameters (see [`parse`]); the label never shows the
/// seed.
///
/// # Errors
/// An unknown name (the message lists the known ones) or invalid parameters.
pub fn build(name: &str, params: Params, registry: &Registry) -> Result<SharedContestant, String> {
    let seed = params.seed();
    build_seeded(name, params, seed, registry)
}

/// As [`build`], in a run whose seed is `run_seed`: a router whose own seed differs is labelled
/// with it (`mlp:epochs=5,seed=1`), so that two seeds of one router are two rows.
///
/// # Errors
/// As [`build`].
pub fn build_seeded(
    name: &str,
    params: Params,
    run_seed: u64,
    registry: &Registry,
) -> Result<SharedContestant, String> {
    if let Some(bound) = Bound::parse(name, &params)? {
        return Ok(Arc::new(BoundContestant::new(bound)));
    }
    if name.ends_with(".wasm") || [".so", ".dylib", ".dll"].iter().any(|e| name.ends_with(e)) {
        return Err(format!(
            "`{name}` is a file: load plugins with --plugin {name}"
        ));
    }
    let Some(info) = registry.get(name) else {
        let known: Vec<&str> = registry
            .iter()
            .map(|r| r.name.as_str())
            .chain(["oracle", "random", "r_o:p=<p>"])
            .collect();
        return Err(format!(
            "unknown router `{name}`; known: {} (see `routereval-engine routers`)",
            known.join(", ")
        ));
    };
    // A router that panics when built fails in each evaluation (kind `panic`), as a plugin
    // would; only an error it returns is a usage error here.
    let built = catch_unwind(AssertUnwindSafe(|| (info.factory)(&params)));
    if let Ok(Err(e)) = built {
        return Err(e.to_string());
    }
    let label = row_label(name, &params, run_seed);
    Ok(Arc::new(BuiltinRouter {
        name: name.to_string(),
        params,
        label,
        factory: info.factory,
    }))
}
