//! A router that always picks the candidate with the best mean score on the training split.
//!
//! It ignores the query entirely, so it is the bar any real router must clear: a router that
//! cannot beat it has learnt nothing about which model suits which query. Copy this file to
//! start your own router: implement `new`, `fit` and `route`, and return a belief per query.

use routereval_sdk::{Params, Queries, Router, RouterError, Routing, Split, argmax};

/// Always the model best on train.
#[derive(Clone, Debug, Default)]
pub struct BestOnTrain {
    best: usize,
    m: usize,
}

impl Router for BestOnTrain {
    fn new(params: &Params) -> Result<Self, RouterError> {
        // Reject typos such as `bestontrain:k=3`: this router has no hyperparameters.
        params.expect_only(&[])?;
        Ok(BestOnTrain::default())
    }

    fn fit(&mut self, train: &Split<'_>, _val: &Split<'_>) -> Result<(), RouterError> {
        // Mean training score per candidate; the first best on ties.
        let means = train.candidate_means();
        self.best = argmax(&means)
            .ok_or_else(|| RouterError::Fit("the pool has no candidates".to_string()))?;
        self.m = train.num_candidates();
        Ok(())
    }

    fn route(&self, queries: &Queries<'_>) -> Result<Routing, RouterError> {
        // Certain of one model for every query: Ep = 0.
        Routing::one_hot(self.m, vec![self.best as u32; queries.len()])
    }
}

/// The router's card: its name, summary and parameters with their defaults, read by
/// `export_router!`, the engine's registry and `routereval-engine routers`.
impl routereval_sdk::Describe for BestOnTrain {
    const ABOUT: routereval_sdk::About = routereval_sdk::About {
        name: "best-on-train",
        summary: "always the candidate with the best mean training score, whatever the query: the bar any router must clear",
        params: &[],
    };
}

routereval_sdk::export_router!(BestOnTrain, about);
