//! Evaluates the `best-on-train` router with the engine, next to the built-in routers and the
//! bounds, on the embedded data (or any dataset: the engine's options all work).
//!
//! Run: `cargo run --release -p best-on-train` (add `-- --help` for the options).

use std::io::IsTerminal;
use std::process::ExitCode;

use best_on_train::BestOnTrain;
use routereval_engine::cli::{Io, run_cli};
use routereval_engine::routers::Registry;

fn main() -> ExitCode {
    // 1. Start from the engine's built-in routers and add ours under a name.
    let mut registry = Registry::builtin();
    registry
        .register::<BestOnTrain>(
            "best-on-train",
            "always the candidate with the best mean training score",
            "none",
        )
        .expect("the name is free");

    // 2. With no --router, the engine runs every registered router and the bounds.
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let err_is_terminal = err.is_terminal();
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        err_is_terminal,
    };
    let status = run_cli(std::env::args_os(), &registry, &mut io);
    ExitCode::from(u8::try_from(status).unwrap_or(2))
}
