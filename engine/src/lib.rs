//! # routereval-engine
//!
//! Evaluates LLM routers the way the RouterEval benchmark does, with the metrics computed by the
//! engine rather than by the router: a router returns, for each test query, its belief over the
//! candidate LLMs (and optionally its choice); the engine validates that output and computes
//! mu, V_R, V_B and Ep from test scores the router never sees.
//!
//! The binary `routereval-engine` is a thin wrapper over [`cli::main_with`]. Programs that embed
//! the engine (to evaluate a router of their own without building a plugin) register it in a
//! [`Registry`] and call the same function:
//!
//! ```no_run
//! use routereval_engine::Registry;
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
//! The modules are layers, in data-flow order; a layer imports only the layers above it in this
//! list, never one below (see `ARCHITECTURE.md`):
//!
//! 1. [`util`] and [`failure`]: leaves. Text helpers; the vocabulary of failures
//!    ([`failure::FailureKind`]) every layer below reports in.
//! 2. [`data`]: datasets: the model, the pickle reader that executes nothing, RouterEval's
//!    layout and other formats, building, exporting, the synthetic suite, the embedded data.
//! 3. [`eval`]: the plan, the [`eval::contestant::Contestant`] interface, the registry of
//!    built-in routers, validation, metrics and bounds, the runner.
//! 4. [`plugin`]: contestants the engine does not link: WebAssembly components under the
//!    sandbox policy, native libraries (isolated in child processes), `exec:` programs.
//! 5. [`report`]: tables and JSON.
//! 6. [`leaderboard`]: submitted components scored on hidden test labels, kept in SQLite, ranked,
//!    exported and served over HTTP.
//! 7. [`cli`]: the command line: arguments, settings from config and flags, one module per
//!    command.

pub mod cli;
pub mod data;
pub mod eval;
pub mod failure;
pub mod leaderboard;
pub mod plugin;
pub mod report;
pub mod util;

pub use eval::registry::Registry;
