//! # routereval-engine
//!
//! Evaluates LLM routers the way the RouterEval benchmark does, with the metrics computed by the
//! engine rather than by the router: a router returns, for each test query, its belief over the
//! candidate LLMs (and optionally its choice); the engine validates that output and computes
//! mu, V_R, V_B and Ep from test scores the router never sees.
//!
//! The binary `routereval-engine` is a thin wrapper over [`cli::main_with`]. Programs that embed
//! the engine (to evaluate a router of their own without building a plugin) register it in a
//! [`routers::Registry`] and call the same function:
//!
//! ```no_run
//! use routereval_engine::routers::Registry;
//!
//! fn main() -> std::process::ExitCode {
//!     let registry = Registry::builtin();
//!     // registry.register::<MyRouter>("mine", "what it does", "its parameters").unwrap();
//!     routereval_engine::cli::main_with(&registry)
//! }
//! ```
//!
//! [`cli::run_cli`] takes the arguments and output streams explicitly (the tests use it).
//!
//! Modules, in data-flow order: [`pickle`] and [`dataset`] read datasets (never executing
//! anything), [`embedded`] holds the default data, [`data`] is the data model, [`run`] plans and
//! executes evaluations in parallel, [`wasm`] loads and runs WebAssembly plugins under the
//! [`sandbox`] policy, [`validate`] checks router output, [`metrics`] and [`bounds`]
//! are pure functions, [`report`] renders tables and JSON, [`cli`] and [`config`] are the user
//! interface.

pub mod bounds;
pub mod build;
pub mod cli;
pub mod config;
pub mod data;
pub mod dataset;
pub mod embedded;
pub mod exec;
pub mod export;
pub mod import;
pub mod inspect;
pub mod isolate;
pub mod metrics;
pub mod native;
pub mod pickle;
pub mod report;
pub mod routers;
pub mod run;
pub mod sandbox;
pub mod synth;
pub mod validate;
pub mod wasm;
