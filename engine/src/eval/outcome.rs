//! What one evaluation gives: a contestant's [`Attempt`] (its answer or its failure, with the fuel
//! and log), and the row of the results, [`EvalResult`], once the runner has validated and
//! scored the answer.

use std::fmt;
use std::sync::Arc;

use routereval_sdk::Routing;
use serde::{Deserialize, Serialize};

use crate::data::Difficulty;
use crate::eval::metrics::Metrics;
use crate::failure::Failure;

/// How a contestant is loaded (the `kind` of its results).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContestantKind {
    /// Linked into the engine (the registry).
    Builtin,
    /// A WebAssembly component, run in the sandbox.
    Wasm,
    /// A native library, in-process or isolated in child processes.
    Native,
    /// A program run per evaluation.
    Exec,
    /// A reference bound computed by the engine.
    Bound,
}

impl ContestantKind {
    /// `builtin`, `wasm`, `native`, `exec` or `bound`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContestantKind::Builtin => "builtin",
            ContestantKind::Wasm => "wasm",
            ContestantKind::Native => "native",
            ContestantKind::Exec => "exec",
            ContestantKind::Bound => "bound",
        }
    }
}

impl fmt::Display for ContestantKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a contestant answers for one pool.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// A routing of the test queries, which the runner validates and scores.
    Routing(Routing),
    /// Metrics it computed itself: a reference bound (the engine's own code, from the test
    /// scores, with the per-query values behind its `mu`), or an `exec:` program that prints
    /// them (self-reported, flagged on the row, no per-query values).
    Metrics {
        /// The four numbers.
        metrics: Metrics,
        /// The score behind `mu` for each test query, when known.
        per_query: Option<Vec<f64>>,
    },
}

/// A contestant's attempt at one pool: its answer or its failure, and what it used on the way.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    /// The answer, or why there is none.
    pub answer: Result<Answer, Failure>,
    /// Fuel a WebAssembly plugin consumed: its deterministic compute cost.
    pub fuel: Option<u64>,
    /// What the plugin or program logged (capped by the policy); empty when nothing.
    pub log: String,
}

impl Attempt {
    /// An attempt with nothing but its answer (or failure).
    pub fn of(answer: Result<Answer, Failure>) -> Attempt {
        Attempt {
            answer,
            fuel: None,
            log: String::new(),
        }
    }
}

/// One row of the results: which evaluation, and its metrics or its failure (exactly one of the
/// two: [`EvalResult::outcome`]).
#[derive(Clone, Debug, PartialEq)]
pub struct EvalResult {
    /// The contestant's label.
    pub router: String,
    /// How the contestant was loaded.
    pub kind: ContestantKind,
    /// Whether the metrics are the router's own word (an exec router that prints them): the
    /// engine did not compute them, and they are never a verified result.
    pub self_reported: bool,
    /// Benchmark name.
    pub benchmark: String,
    /// Pool difficulty.
    pub difficulty: Difficulty,
    /// Pool size.
    pub m: usize,
    /// Pool group.
    pub group: String,
    /// The metrics, or the failure.
    pub outcome: Result<Metrics, Failure>,
    /// The score of the routed candidate on each test query, in test order (`mu` is their
    /// mean): what the confidence intervals and paired comparisons resample. `None` for
    /// failures and self-reported metrics.
    pub query_scores: Option<Arc<[f64]>>,
    /// Wall time of the evaluation (fit, route, validation and metrics).
    pub seconds: f64,
    /// Fuel a WebAssembly plugin consumed: its deterministic compute cost.
    pub fuel: Option<u64>,
    /// What a WebAssembly plugin, an isolated native plugin or a program logged (capped by the
    /// policy), when anything.
    pub log: Option<String>,
}

impl EvalResult {
    /// Whether it succeeded.
    pub fn is_ok(&self) -> bool {
        self.outcome.is_ok()
    }

    /// Whether the contestant is a reference bound.
    pub fn is_bound(&self) -> bool {
        self.kind == ContestantKind::Bound
    }

    /// The metrics, when it succeeded.
    pub fn metrics(&self) -> Option<&Metrics> {
        self.outcome.as_ref().ok()
    }

    /// The failure, when it did not.
    pub fn error(&self) -> Option<&Failure> {
        self.outcome.as_ref().err()
    }
}
