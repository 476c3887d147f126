//! Evaluates the `best-on-train` router built in, with no plugin: registered with the engine
//! next to the built-in routers and the bounds, on the embedded data (or any dataset: the
//! engine's options all work). The way to go when you trust your router and want to debug it
//! natively.
//!
//! Run: `cargo run --release -p embed-engine` (add `-- --help` for the options).

use std::process::ExitCode;

use best_on_train::BestOnTrain;
use routereval_engine::cli::main_with;
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

    // 2. Run the engine's command line with it: with no --router, every registered router and
    //    the bounds are evaluated.
    main_with(&registry)
}
