//! A program that embeds the engine and registers a router of its own, built in, with no
//! plugin: the way to go when you trust your router and want to debug it natively. Here the
//! router is `best-on-val`, the candidate with the best mean score on the *validation* split
//! (the built-in `best-on-train` uses the training split); it runs next to the built-in routers
//! and the bounds, on the embedded data or any dataset (the engine's options all work).
//!
//! Run: `cargo run --release -p embed-engine` (add `-- --help` for the options, or
//! `-- --router best-on-val --router best-on-train` for just the two).

use std::process::ExitCode;

use routereval_engine::Registry;
use routereval_engine::cli::main_with;
use routereval_sdk::{Params, Queries, Router, RouterError, Routing, Split, argmax};

/// Always the candidate best on the validation split.
#[derive(Debug, Default)]
struct BestOnVal {
    best: usize,
    m: usize,
}

impl Router for BestOnVal {
    fn new(params: &Params) -> Result<Self, RouterError> {
        params.expect_only(&[])?;
        Ok(BestOnVal::default())
    }

    fn fit(&mut self, _train: &Split<'_>, val: &Split<'_>) -> Result<(), RouterError> {
        self.m = val.num_candidates();
        self.best = argmax(&val.candidate_means())
            .ok_or_else(|| RouterError::Fit("the pool has no candidates".into()))?;
        Ok(())
    }

    fn route(&self, queries: &Queries<'_>) -> Result<Routing, RouterError> {
        Routing::one_hot(self.m, vec![self.best as u32; queries.len()])
    }
}

fn main() -> ExitCode {
    // 1. Start from the engine's built-in routers and add ours under a name.
    let mut registry = Registry::builtin();
    registry
        .register::<BestOnVal>(
            "best-on-val",
            "always the candidate with the best mean validation score",
            "none",
        )
        .expect("the name is free");

    // 2. Run the engine's command line with it: with no --router, the registered routers (but
    //    the slow mlp) and the bounds are evaluated.
    main_with(&registry)
}
