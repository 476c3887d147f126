//! # routereval-engine
//!
//! Evaluates LLM routers the way the RouterEval benchmark does, with the metrics computed by the
//! engine rather than by the router: a router returns, for each test query, its belief over the
//! candidate LLMs (and optionally its choice); the engine validates that output and computes
//! mu, V_R, V_B and Ep from test scores the router never sees.
//!
//! The binary `routereval-engine` is a thin wrapper over [`cli::run_cli`]. Programs that embed
//! the engine (to evaluate a router of their own without building a plugin) register it in a
//! [`routers::Registry`] and call the same function:
//!
//! ```no_run
//! use routereval_engine::cli::{Io, run_cli};
//! use routereval_engine::routers::Registry;
//!
//! let mut registry = Registry::builtin();
//! // registry.register::<MyRouter>("mine", "what it does", "its parameters")?;
//! let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
//! let mut io = Io { out: &mut out, err: &mut err, err_is_terminal: false };
//! let status = run_cli(["routereval-engine", "--router", "knn"], &registry, &mut io);
//! std::process::exit(status);
//! ```
//!
//! Modules, in data-flow order: [`pickle`] and [`dataset`] read datasets (never executing
//! anything), [`embedded`] holds the default data, [`data`] is the data model, [`run`] plans and
//! executes evaluations in parallel, [`validate`] checks router output, [`metrics`] and [`bounds`]
//! are pure functions, [`report`] renders tables and JSON, [`cli`] and [`config`] are the user
//! interface.

pub mod bounds;
pub mod cli;
pub mod config;
pub mod data;
pub mod dataset;
pub mod embedded;
pub mod metrics;
pub mod pickle;
pub mod report;
pub mod routers;
pub mod run;
pub mod validate;
